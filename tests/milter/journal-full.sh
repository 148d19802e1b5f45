#!/bin/bash
# journal-full.sh - a real standalone milter-alias-peer whose journal
# append is cut short (a file size limit put on the running daemon with
# prlimit: the write stops mid-record, then fails with EFBIG): the change
# is refused with a temporary error, the daemon lives on, the journal is
# cut back; once the limit is lifted changes work again and a restart
# reads the journal back (issue 12, item 5).  No root needed.
set -u
# shellcheck source=standalone.sh
. "$(dirname "$0")/standalone.sh" jfull
command -v prlimit >/dev/null || { echo "prlimit (util-linux) is needed"; echo "0 passed, 1 failed"; exit 1; }

pid=
finish() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	echo "$passed passed, $failed failed"
	if [ "$failed" = 0 ]; then rm -rf "$T"; else echo "kept $T"; fi
	[ "$failed" = 0 ]
	exit
}
# start: the daemon in the foreground, up when its control socket answers
start() {
	rm -f "$T/control.sock"
	# Through a pipe: the file size limit must not reach the log file.
	"$PEER" -f -c "$T/conf" </dev/null > >(cat >>"$T/peer.log") 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		"$CTL" "${C[@]}" status >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}
size() { stat -c %s "$T/state/journal"; }

standalone_conf jfull.example.test
C=(-c "$T/conf")

if start; then ok "the daemon starts"; else bad "the daemon starts: $(tail -n 3 "$T/peer.log")"; pid=; finish; fi
expect "add one: created" 0 "created" "$CTL" "${C[@]}" add one@example.org --owner alice
# The next journal record (a prepare of some 300 bytes) gets 100 bytes.
before=$(size)
prlimit --pid "$pid" --fsize=$((before + 100)): ||
	{ bad "prlimit --fsize on the daemon"; finish; }
out=$("$CTL" "${C[@]}" add two@example.org --owner alice 2>&1); rc=$?
if [ "$rc" != 0 ] && ! grep -q created <<<"$out"; then ok "add two past the limit: refused (exit $rc: $out)"
else bad "add two past the limit: refused (exit $rc: $out)"; fi
if kill -0 "$pid" 2>/dev/null; then ok "the daemon survives the file size limit"
else
	wait "$pid"; bad "the daemon survives the file size limit (exit status $?)"; pid=
	finish
fi
after=$(size)
[ "$after" = "$before" ] && ok "the short append was cut off ($after bytes)" ||
	bad "the short append was cut off ($after bytes, $before before)"
# The log goes through cat (above): wait for the line, with a bound.
logged() { grep -q "journal: write(.*journal) failed: File too large" "$T/peer.log"; }
for _ in $(seq 100); do logged && break; sleep 0.1; done
logged && ok "the failure is logged" || bad "the failure is logged"

prlimit --pid "$pid" --fsize=unlimited: || { bad "prlimit lifting the limit"; finish; }
expect "add three after the limit is lifted: created" 0 "created" "$CTL" "${C[@]}" add three@example.org --owner alice

kill -TERM "$pid"; wait "$pid"; pid=
if start; then ok "the daemon starts again on that journal"
else bad "the daemon starts again on that journal: $(tail -n 3 "$T/peer.log" | tr '\n' '|')"; pid=; finish; fi
expect "one survived the restart" 0 "HISTORY" "$CTL" "${C[@]}" show one@example.org
expect "three survived the restart" 0 "HISTORY" "$CTL" "${C[@]}" show three@example.org
expect "two was never created" 1 "there is no alias" "$CTL" "${C[@]}" show two@example.org
finish
