# standalone.sh - sourced by the milter layer's shell tests that run a real
# milter-alias-peer alone (no peers) in a temporary directory, with a
# Postfix configuration of its own (never the machine's /etc/postfix).
#
# Sets build, PEER, CTL and T (the directory, "$1" names it); gives ok,
# bad, expect and standalone_conf.

if [ -n "${top_builddir:-}" ]; then
	build=$(cd "$top_builddir" && pwd)
elif [ -x ./peer/milter-aliasctl ]; then
	build=$(pwd)
else
	build=$(cd "$(dirname "$0")/../.." && pwd)
fi
PEER=$build/peer/milter-alias-peer
CTL=$build/peer/milter-aliasctl
[ -x /usr/sbin/postmap ] || { echo "Postfix's postmap is needed"; echo "0 passed, 1 failed"; exit 1; }

T=$(mktemp -d "/tmp/ma-$1.XXXXXX")
chmod 755 "$T"
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }
# expect DESC STATUS PATTERN CMD... : exit status and a stderr/stdout line
expect() {
	local desc=$1 want=$2 pat=$3 out rc; shift 3
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" = "$want" ] && grep -qE -- "$pat" <<<"$out"; then ok "$desc"
	else bad "$desc (exit $rc, want $want; output: $(head -c 300 <<<"$out" | tr '\n' '|'))"; fi
}

# standalone_conf NODE : a main.cf whose only map is the daemon's own
# (LMDB), an empty master.cf, and $T/conf for node NODE, running as the
# current user; a caller may append to $T/conf.
standalone_conf() {
	mkdir -p "$T/pf" "$T/state"
	cat > "$T/pf/main.cf" <<EOF2
compatibility_level = 3.6
virtual_alias_maps = lmdb:$T/state/aliases
virtual_mailbox_maps =
alias_maps =
EOF2
	: > "$T/pf/master.cf"
	cat > "$T/conf" <<EOF2
node_name = "$1"
domains = {"example.org"}
request_address = {"makealias@example.org"}
map_file = "$T/state/aliases"
postfix_config_dir = "$T/pf"
state_dir = "$T/state"
control_socket = "$T/control.sock"
milter_socket = "unix:$T/milter.sock"
sendmail_path = "/bin/true"
user = "$(id -un)"
EOF2
}
