#!/bin/bash
# valgrind.sh - memcheck for the two daemons.
# milter-alias-peer (standalone) under valgrind --leak-check=full through
# start, aliasctl add/disable/enable/list/status/verify, a milter request,
# SIGTERM; milter-alias under valgrind driven by tests/milter/milter-driver
# with the first two cases of tests/milter/create.script; then each
# valgrind log must show 0 errors and nothing "definitely lost".
# Uses the normal build (top_builddir, default the source tree).
# Prints ok/FAIL lines and "N passed, M failed"; FAILs if not root.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bin=${top_builddir:-$top}
PEER=$bin/peer/milter-alias-peer CTL=$bin/peer/milter-aliasctl
MILTER=$bin/milter/milter-alias DRIVER=$bin/tests/milter/milter-driver
passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
summary() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ] && [ "$passed" -gt 0 ]; }
[ "$(id -u)" = 0 ] || { fail "valgrind.sh must run as root"; summary; exit 1; }
for f in "$PEER" "$CTL" "$MILTER" "$DRIVER" /usr/bin/valgrind; do
	[ -x "$f" ] || { fail "missing $f (make check builds the driver)"; summary; exit 1; }
done
T=$(mktemp -d /tmp/ma-vg.XXXXXX); chmod 755 "$T"
mkdir -p "$T/postfix" "$T/state" "$T/sent"
PPID_=; MPID=
cleanup() {
	for p in $PPID_ $MPID; do kill -KILL "$p" 2>/dev/null; done
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
printf 'compatibility_level = 3.6\nvirtual_alias_maps = lmdb:%s/state/aliases\nalias_maps =\n' "$T" > "$T/postfix/main.cf"
: > "$T/postfix/master.cf"
printf '#!/bin/sh\ncat > %s/sent/$$.eml\n' "$T" > "$T/sendmail"; chmod 755 "$T/sendmail"
CONF=$T/milter-alias.conf
cat > "$CONF" <<EOF
node_name = "a.example.org"
domains = {"example.org"}
request_address = {"makealias@example.org"}
map_format = "virtual"
map_file = "$T/state/aliases"
map_type = "lmdb"
postfix_config_dir = "$T/postfix"
state_dir = "$T/state"
milter_socket = "unix:$T/milter.sock"
control_socket = "$T/control.sock"
sendmail_path = "$T/sendmail"
commit_timeout = 6
user = "root"
EOF
VG=(valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
    --num-callers=30)
ctl() { "$CTL" -c "$CONF" "$@"; }

"${VG[@]}" --log-file="$T/vg-peer.log" "$PEER" -f -c "$CONF" </dev/null >"$T/peer.log" 2>&1 &
PPID_=$!
for _ in $(seq 1 150); do ctl status >/dev/null 2>&1 && break; sleep 0.2; done
if ctl status >/dev/null 2>&1; then ok "milter-alias-peer under valgrind answers status"
else fail "milter-alias-peer under valgrind starts"; cat "$T/peer.log" "$T/vg-peer.log" | tail -n 20; summary; exit 1; fi
"${VG[@]}" --log-file="$T/vg-milter.log" "$MILTER" -f -c "$CONF" </dev/null >"$T/milter.log" 2>&1 &
MPID=$!
for _ in $(seq 1 150); do grep -q 'started socket=' "$T/milter.log" && break; sleep 0.2; done
grep -q 'started socket=' "$T/milter.log" && ok "milter-alias under valgrind starts" ||
	fail "milter-alias under valgrind starts ($(tail -n 3 "$T/milter.log"))"

for c in "add vg-one@example.org --owner alice" "add vg-two@example.org --owner bob" \
	 "disable vg-one@example.org" "enable vg-one@example.org" "delete vg-two@example.org" \
	 "list" "--json list" "status" "status --json" "verify"; do
	# shellcheck disable=SC2086
	if ctl $c >/dev/null 2>&1; then ok "aliasctl $c"; else fail "aliasctl $c (status $?)"; fi
done
# two milter sessions: a create (DISCARD) and a duplicate (550)
awk '/^#case/ { s++; f = sprintf("%s/case%d.script", dir, s) } s >= 1 && s <= 2 { print > f }' \
	dir="$T" "$here/../milter/create.script"
for f in "$T"/case*.script; do
	if timeout 60 "$DRIVER" -t 30 -s "unix:$T/milter.sock" "$f" >"$f.out" 2>&1; then
		ok "milter-driver: $(head -n1 "$f" | sed 's/^#case //')"
	else
		fail "milter-driver: $(head -n1 "$f") ($(tail -n 3 "$f.out" | tr '\n' ' '))"
	fi
done

kill -TERM "$MPID" "$PPID_"
for name in milter peer; do
	if [ $name = peer ]; then p=$PPID_; else p=$MPID; fi
	rc=0; wait "$p" || rc=$?
	log=$T/vg-$name.log
	dl=$(grep -E 'definitely lost:' "$log" | sed -E 's/.*definitely lost: //')
	er=$(grep -E 'ERROR SUMMARY:' "$log" | tail -n1 | sed -E 's/.*ERROR SUMMARY: ([0-9]+) errors.*/\1/')
	[ -n "$dl" ] || dl="0 bytes (no leak summary)"
	grep -q 'All heap blocks were freed' "$log" && dl="0 (all heap blocks were freed)"
	echo "# $name: exit $rc, errors ${er:-?}, definitely lost: $dl"
	cp "$log" "$here/vg-$name.log" 2>/dev/null  # kept for RESULTS.md
	if [ "$rc" = 0 ] && [ "${er:-1}" = 0 ] && [[ $dl == 0* ]]; then
		ok "valgrind: $name daemon exits 0 after SIGTERM, 0 errors, nothing definitely lost"
	else
		fail "valgrind: $name daemon: exit $rc, errors ${er:-?}, definitely lost $dl"
		grep -E -A25 'definitely lost in|Invalid|uninitialised|Mismatched' "$log" | head -n 80
	fi
done
PPID_= MPID=
summary
