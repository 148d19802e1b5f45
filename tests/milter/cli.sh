#!/bin/bash
# cli.sh - milter-aliasctl against a real standalone milter-alias-peer:
# every verb with --json gives valid JSON, and every bad invocation
# (unknown verb, missing argument, daemon not running, permission denied)
# gets one clear line on stderr and a non-zero exit status.
set -u
# shellcheck source=standalone.sh
. "$(dirname "$0")/standalone.sh" cli
PY=/usr/bin/python3
json() { # DESC CMD... : exit status aside, stdout parses as JSON
	local desc=$1 out; shift
	out=$("$@" 2>/dev/null)
	if "$PY" -c 'import json,sys; json.loads(sys.stdin.read())' <<<"$out" 2>/dev/null; then ok "$desc"
	else bad "$desc (not JSON: $(head -c 200 <<<"$out"))"; fi
}

standalone_conf cli.example.test
cat >> "$T/conf" <<EOF2
tls {
  key_file = "$T/tls/key.pem"
  cert_file = "$T/tls/cert.pem"
}
EOF2
C=(-c "$T/conf")

expect "daemon not running: exit 2, says so" 2 "is milter-alias-peer running" "$CTL" "${C[@]}" status
"$PEER" -f -c "$T/conf" </dev/null >"$T/peer.log" 2>&1 &
pid=$!
for _ in $(seq 50); do [ -S "$T/control.sock" ] && break; sleep 0.1; done

expect "status: healthy, exit 0" 0 "healthy +yes" "$CTL" "${C[@]}" status
expect "add: exit 0" 0 "created" "$CTL" "${C[@]}" add cli@example.org --owner alice --note "from the cli test"
expect "show: the alias and its history" 0 "HISTORY" "$CTL" "${C[@]}" show cli@example.org
expect "list --owner" 0 "cli@example.org" "$CTL" "${C[@]}" list --owner alice
expect "disable: exit 0" 0 "now disabled" "$CTL" "${C[@]}" disable cli@example.org
expect "journal: nothing pending" 0 "no pending" "$CTL" "${C[@]}" journal
expect "verify standalone: identical, exit 0" 0 "identical" "$CTL" "${C[@]}" verify
expect "keygen creates the key" 0 "created" "$CTL" "${C[@]}" keygen
expect "keygen again keeps it" 0 "kept existing" "$CTL" "${C[@]}" keygen
expect "pin: one sha256// line" 0 '^sha256//[A-Za-z0-9+/]{43}=$' "$CTL" "${C[@]}" pin
for v in status list journal verify pin keygen "show cli@example.org" "enable cli@example.org"; do
	# shellcheck disable=SC2086
	json "--json $v" "$CTL" "${C[@]}" --json $v
done

expect "unknown verb: exit 2" 2 'unknown verb "frobnicate"' "$CTL" "${C[@]}" frobnicate
expect "show without an address: exit 2" 2 "wrong number of arguments" "$CTL" "${C[@]}" show
expect "add without --owner: exit 2" 2 "add needs ADDRESS and --owner" "$CTL" "${C[@]}" add x@example.org
expect "disable without an address: exit 2" 2 "needs an alias address" "$CTL" "${C[@]}" disable
expect "not an address: exit 2" 2 "not an alias address" "$CTL" "${C[@]}" disable nonsense
expect "extra argument: exit 2" 2 "wrong number of arguments|unexpected argument" "$CTL" "${C[@]}" status now
expect "no verb: usage, exit 2" 2 "usage: milter-aliasctl" "$CTL" "${C[@]}"
expect "a missing alias: exit 1" 1 "there is no alias" "$CTL" "${C[@]}" show nobody-here@example.org
expect "disable a missing alias: exit 1" 1 "There is no alias" "$CTL" "${C[@]}" disable nobody-here@example.org
expect "bad configuration: exit 2, names the file" 2 "/nonexistent.conf" "$CTL" -c /nonexistent.conf status
# The control socket is a trust boundary of its own: the daemon checks
# again what milter-aliasctl checks (a raw client skips the latter).
raw_admin() { # NOTE OWNER : one op=admin frame, prints the reply line
	"$PY" - "$T/control.sock" "$1" "$2" <<'PYEOF'
import socket, struct, sys, urllib.parse
def enc(v):
	return urllib.parse.quote(v, safe="@.-_:/+")
path, note, owner = sys.argv[1], sys.argv[2], sys.argv[3]
line = "v=1 op=admin verb=new name=rawcheck domain=example.org owner=%s note=%s" % (enc(owner), enc(note))
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.sendall(struct.pack(">I", len(line)) + line.encode())
n = struct.unpack(">I", s.recv(4))[0]
data = b""
while len(data) < n:
	data += s.recv(n - len(data))
print(urllib.parse.unquote(data.decode()))
PYEOF
}
out=$(raw_admin "$(printf 'bad\001note')" alice)
if grep -q "status=perm" <<<"$out" && grep -q "control characters" <<<"$out"; then ok "raw control client: a note with a control character is refused"
else bad "raw control client: a note with a control character is refused (got: $out)"; fi
out=$(raw_admin "$(head -c 201 /dev/zero | tr '\0' x)" alice)
if grep -q "status=perm" <<<"$out"; then ok "raw control client: a note of 201 characters is refused"
else bad "raw control client: a note of 201 characters is refused (got: $out)"; fi
out=$(raw_admin "fine" "ali ce")
if grep -q "status=perm" <<<"$out" && grep -q "login" <<<"$out"; then ok "raw control client: an owner login with a blank is refused"
else bad "raw control client: an owner login with a blank is refused (got: $out)"; fi
expect "raw control client: nothing was created" 1 "there is no alias" "$CTL" "${C[@]}" show rawcheck@example.org
out=$(raw_admin "a fine note" alice)
if grep -q "status=ok" <<<"$out"; then ok "raw control client: a well-formed request works (the checks are not blanket refusals)"
else bad "raw control client: a well-formed request works (got: $out)"; fi

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	# A copy in $T (0755): the build tree may be out of nobody's reach,
	# and an exec failure would also say "Permission denied".
	cp "$CTL" "$T/milter-aliasctl"
	expect "another uid is refused by the socket: exit 2" 2 \
		"cannot connect to .*control.sock: Permission denied" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$T/milter-aliasctl" "${C[@]}" status
else
	bad "permission test needs root and setpriv (util-linux)"
fi

kill -TERM "$pid"; wait "$pid"
rc=$?
[ "$rc" = 0 ] && ok "SIGTERM: the daemon exits 0" || bad "SIGTERM: the daemon exits $rc"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && rm -rf "$T"
[ "$failed" = 0 ]
