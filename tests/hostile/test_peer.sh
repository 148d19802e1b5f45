#!/bin/bash
# test_peer.sh - hostile inputs at every boundary of a real synchronised
# pair, on top of tests/twohost/lib2.sh (TW_SUITE=hostile:
# root /var/tmp/milter-alias-twohost-hostile, namespaces th-a th-b).
# Attacks come from host b's namespace (and from outside any peer key)
# against host a's milter-alias-peer on 198.51.100.1:7465:
#   no certificate, a wrong pin (fresh key), TLS 1.2 only (with the real
#   peer's key), garbage before the handshake, slowloris (50 connections
#   stalled inside a TLS record), oversized frames from an authenticated
#   peer, 300 connections at once (8 unauthenticated ones per peer address).
# Each must be refused and logged by a, and afterwards a is the same
# process, verify exits 0 on both hosts and a create on the pair succeeds
# in both directions.  Then: the control socket refuses another uid by
# SO_PEERCRED even when the socket file is world-accessible; the milter
# survives 500 concurrent sessions with bounded threads and memory and
# answers 4xx (451 4.3.2 beyond 64 in-flight requests) rather than hanging.
# Prints ok/FAIL lines and "N passed, M failed"; FAILs if not root.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2034  # read by lib2.sh
TW_SUITE=hostile
# a flood of requests by three logins must not stop at the hourly rate
TW_CONF_EXTRA="max_requests_per_hour = 100000"
# shellcheck source=../twohost/lib2.sh
. "$here/../twohost/lib2.sh"
PY=$here/hostile.py
MF=$here/milterflood.py
IPA=$(tw_ip a)

tw_preflight || exit 1
if ! tw_setup; then
	th_fail "bring up the pair"; tw_dump_logs 30; th_summary; exit 1
fi
th_pass "pair up ($(tw_elapsed) s)"
PIDA=$(tw_peer_pid a)
LOGA=$(tw_peer_log a)
tried=0 refused=0 healthy=0
seq=0

hpy() { th_exec b "$TW_PY" "$PY" "$1" "$IPA" "$TW_PORT" "${@:2}"; }
tasks() { ls "/proc/$1/task" 2>/dev/null | wc -l; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# healthy DESC : a is the same live process, verify 0 on both, and a create
#   started on each host commits on the pair (the one on b crosses a's port).
healthy() {
	local desc=$1 ok=1 h n
	if [ "$(tw_peer_pid a)" != "$PIDA" ] || ! tw_peer_alive a; then
		th_fail "$desc: a's milter-alias-peer still the same live process"; ok=0
	fi
	for h in a b; do
		[ "$(tw_verify $h)" = 0 ] || { th_fail "$desc: verify on $h exits 0 ($(tw_ctl $h verify 2>&1 | head -n 2 | tr '\n' ' '))"; ok=0; }
	done
	for h in b a; do
		seq=$((seq + 1)); n=hostile-$seq@example.org
		if ! tw_ctl $h add "$n" --owner alice >/dev/null 2>&1; then
			th_fail "$desc: create $n on $h ($(tw_ctl $h add "$n" --owner alice 2>&1 | head -n1))"; ok=0
		fi
	done
	if [ $ok = 1 ] && tw_wait_converged 10 >/dev/null 2>&1; then
		th_pass "$desc: a healthy (same pid $PIDA, verify 0 on both, creates from b and a committed)"
		healthy=$((healthy + 1))
	else
		[ $ok = 0 ] || th_fail "$desc: pair converged after the creates"
	fi
}

# attack DESC LOGPATTERN MODE ARGS... : run hostile.py, expect "refused"
#   and LOGPATTERN in a's peer log, then healthy.
attack() {
	local desc=$1 pat=$2 mark out; shift 2
	tried=$((tried + 1))
	mark=$(tw_log_mark "$LOGA")
	out=$(hpy "$@" 2>&1)
	echo "   client: $out"
	sleep 0.5
	if [[ $out == refused* ]] && _th_poll 12 _logged "$mark" "$pat"; then
		th_pass "$desc: refused and logged ($(tw_log_since "$LOGA" "$mark" | grep -E "$pat" | head -n1 | cut -c1-150))"
		refused=$((refused + 1))
	else
		th_fail "$desc: refused and logged /$pat/ (client: $out; log: $(tw_log_since "$LOGA" "$mark" | tail -n 3 | tr '\n' ' '))"
	fi
	healthy "$desc"
}
_logged() { tw_log_since "$LOGA" "$1" | grep -E "$2" >/dev/null; }
_back_to() { [ $(( $(tasks "$PIDA") - $(incoming) )) = "$1" ] && [ "$(fds "$PIDA")" = "$2" ]; }
# incoming : a's established connections on its peer port: each is served
#   by a thread of its own, and b's pool may open up to 4 (PEERS_POOL)
incoming() { th_exec a ss -Htn state established "( sport = :$TW_PORT )" | grep -c .; }
_milter_idle() { [ "$(tasks "$MP")" -le $((MT0 + 2)) ]; }

echo "# a: pid $PIDA, $(tasks "$PIDA") threads, $(fds "$PIDA") fds, VmRSS $(rss "$PIDA") kB"
T0=$(( $(tasks "$PIDA") - $(incoming) )); F0=$(fds "$PIDA")
K=$(th_dir b)/tls

# --- fresh key: a client nobody pinned --------------------------------
W=$TH_ROOT/wrongkey; mkdir -p "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=b.example.test -keyout "$W/key.pem" -out "$W/cert.pem" >/dev/null 2>&1 ||
	th_fail "openssl: make a fresh key and certificate"
chmod 0644 "$W"/*.pem

REF='peer link: refused connection from 198\.51\.100\.2:[0-9]+: TLS handshake failed'
attack "no client certificate" "$REF" nocert
attack "wrong pin (fresh key, CN of the real peer)" "$REF.*(pin|not configured|unknown)" cert "$W/key.pem" "$W/cert.pem"
attack "TLS 1.2 only (with the real peer's key)" "$REF" tls12 "$K/key.pem" "$K/cert.pem"
attack "garbage before the handshake" "$REF" garbage
attack "oversized frame (2 GiB announced) from the authenticated peer key" \
	'peer b\.example\.test: dropping connection from 198\.51\.100\.2:[0-9]+: .*frame length 2147483647 out of range' \
	oversize "$K/key.pem" "$K/cert.pem" 2147483647
attack "oversized frame (64 KiB + 1) from the authenticated peer key" \
	'dropping connection from 198\.51\.100\.2:[0-9]+: .*frame length 65537 out of range' \
	oversize "$K/key.pem" "$K/cert.pem" 65537

# --- slowloris: 50 connections stalled inside a TLS record ----------------
# b's address is a configured peer's: connections from it not authenticated
# yet may hold 8 (PEERS_UNAUTH_PER_PEER_ADDR) of a's 64 slots at most; the
# rest are refused at accept.  Asserted on outcomes: all 50 ended by the
# server within 8 s (each held one by the 5 s handshake deadline), never
# more than 8 of them held in the handshake at once,
# every one of the 50 in a's log (a line of its own, or counted in a
# summary line: at most 20 such lines per 10 s), and the real peer working
# during and after.  The real peer's own new connections from the same
# address may be refused while its 8 are full; its pooled ones work on.
# (A stranger gets 4: tests/twohost/test_lockout.sh.)
# _accounted MARK ADDR : refusals from ADDR in a's log since MARK, one line
#   each or counted in summary lines "... from ADDR (N)"; sets $acc_lines,
#   $acc_summed.
_accounted() {
	local log re=${2//./\\.}
	log=$(tw_log_since "$LOGA" "$1")
	acc_lines=$(grep -cE "refused connection from $re:" <<<"$log")
	acc_summed=$(grep -oE "from $re \([0-9]+\)" <<<"$log" | sed -E 's/.*\(([0-9]+)\)/\1/' |
		awk '{ s += $1 } END { printf "%d\n", s }')
}
_accounted_ge() { _accounted "$1" 198.51.100.2; [ $((acc_lines + acc_summed)) -ge "$2" ]; }
tried=$((tried + 1))
mark=$(tw_log_mark "$LOGA")
out=$TH_ROOT/slowloris.out
hpy slowloris 50 40 5 >"$out" 2>&1 &
sl=$!
_th_poll 10 grep -q '^opened 50' "$out" || th_fail "slowloris: open 50 connections ($(cat "$out"))"
echo "# during slowloris: a has $(tasks "$PIDA") threads"
healthy "slowloris in progress (50 stalled connections)"
wait $sl
sed 's/^/   client: /' "$out"
nheld=$(sed -nE 's/^held: ([0-9]+),.*/\1/p' "$out")
nref=$(sed -nE 's/.*refused at accept: ([0-9]+),.*/\1/p' "$out")
most=$(sed -nE 's/.*most held at once: ([0-9]+).*/\1/p' "$out")
last=$(sed -nE 's/^refused: 50 of 50 closed by the server after [0-9.]+\.\.([0-9]+)\..*/\1/p' "$out")
sl_ok=1
if [ -n "$last" ] && [ "$last" -lt 8 ] && [ -n "$most" ] && [ "$most" -le 8 ]; then
	th_pass "slowloris: all 50 closed by the server within 8 s (deadline 5 s), at most 8 held in the handshake at once (held $nheld, $most at once; $nref refused at accept) ($(tail -n1 "$out" | sed 's/.*server //'))"
else
	th_fail "slowloris: all 50 closed by the server within 8 s, at most 8 held in the handshake at once (client: $(tr '\n' ' ' < "$out"))"; sl_ok=0
fi
acc_lines=0 acc_summed=0
if _th_poll 15 _accounted_ge "$mark" 50; then
	th_pass "slowloris: all 50 in a's log ($acc_lines lines, $acc_summed counted in summary lines)"
else
	th_fail "slowloris: all 50 in a's log ($acc_lines lines + $acc_summed summed; log: $(tw_log_since "$LOGA" "$mark" | grep -F 198.51.100.2 | tail -n 3 | tr '\n' ' '))"; sl_ok=0
fi
[ $sl_ok = 0 ] || refused=$((refused + 1))
healthy "after slowloris"

# --- 300 connections at once --------------------------------------------
tried=$((tried + 1))
mark=$(tw_log_mark "$LOGA")
out=$(hpy flood 300 3 2>&1)
echo "   client: $out"
# Refused at accept: over the 8 unauthenticated connections b's address may
# hold; the held ones fail their handshakes when the client closes them.
# All 300 must be in a's log, a line each or counted in a summary line
# (which comes when the 10 s window ends): wait 20 s at most.
_th_poll 20 _accounted_ge "$mark" 300 || :
echo "# flood: $acc_lines refusals logged one by one, $acc_summed counted in summary lines, a has $(tasks "$PIDA") threads"
if [ $((acc_lines + acc_summed)) -ge 300 ] && [ "$acc_lines" -le 40 ]; then
	th_pass "300 connections at once: all refused and in a's log ($acc_lines lines, at most 20 per 10 s; $acc_summed counted in summary lines)"
	refused=$((refused + 1))
else
	th_fail "300 connections at once: all in a's log, at most 20 lines per 10 s ($acc_lines lines + $acc_summed summed)"
fi
healthy "after 300 connections"
# The client side keeps a pool of up to 4 connections per peer (PEERS_POOL),
# opened on demand, so a's fds may grow by that much, and b's pool to a
# by as much again (each also a serving thread; those are not counted).
_th_poll 15 _back_to "$T0" "$F0" || :
inc=$(incoming); t_now=$(( $(tasks "$PIDA") - inc )); f_now=$(fds "$PIDA")
if [ "$t_now" -le "$T0" ] && [ "$f_now" -le $((F0 + 4 + 4)) ]; then
	th_pass "a's threads and fds back to the start (threads $t_now <= $T0 besides one per connection b holds ($inc), fds $f_now <= $F0 + both pools of 4)"
else
	th_fail "a's threads and fds back to the start (threads $t_now vs $T0 besides $inc for b's connections, fds $f_now vs $F0 + 4 + 4)"
fi
echo "# a after the peer-port attacks: $(tasks "$PIDA") threads, $(fds "$PIDA") fds, VmRSS $(rss "$PIDA") kB"

# --- control socket: another uid is refused by SO_PEERCRED ---------------
CS=$(th_control_socket a); RD=$(dirname "$CS")
m_run=$(stat -c %a "$RD"); m_cs=$(stat -c %a "$CS")
chmod o+x "$RD"; chmod 666 "$CS"
mark=$(tw_log_mark "$LOGA")
rc=0; out=$(runuser -u nobody -- "$CTL" -c "$(tw_conf a)" add nobody-made@example.org --owner alice 2>&1) || rc=$?
# what the refused user is told, 5 tries each of add and status
msgs=
for _ in 1 2 3 4 5; do
	for v in "add nobody-made@example.org --owner alice" status; do
		# shellcheck disable=SC2086
		o=$(runuser -u nobody -- "$CTL" -c "$(tw_conf a)" $v 2>&1); r=$?
		grep -qi 'permission denied' <<<"$o" || msgs="$msgs [${v%% *}: exit $r: $(tr -s ' \n' ' ' <<<"$o" | cut -c1-90)]"
	done
done
chmod "$m_cs" "$CS"; chmod "$m_run" "$RD"
uidn=$(id -u nobody)
tried=$((tried + 1))
if [ $rc != 0 ] && _th_poll 3 _logged "$mark" "control: refused connection from uid=$uidn"; then
	th_pass "control socket chmod 666: uid nobody refused by SO_PEERCRED (aliasctl add exit $rc: $(head -n1 <<<"$out")) and logged uid=$uidn"
	refused=$((refused + 1))
else
	th_fail "control socket chmod 666: uid nobody refused (exit $rc: $out; log: $(tw_log_since "$LOGA" "$mark" | tail -n 2 | tr '\n' ' '))"
fi
th_check_eq "nothing was created by uid nobody" "" "$(tw_q a nobody-made@example.org)"
th_check_eq "every refused aliasctl call (5 add, 5 status) tells uid nobody 'permission denied'" "" "$msgs"
th_check "the daemon still answers root on its control socket" tw_ctl a status

# --- milter: 500 concurrent sessions --------------------------------------
MP=$(cat "$(th_dir a)/milter.pid")
MS=$(th_milter_socket a); MLOG=$(th_dir a)/milter.log
MT0=$(tasks "$MP")
# "Hang" means what it means to Postfix: no answer to the end of the
# message within milter_content_timeout (300 s), after which Postfix gives
# up on the milter.  On a loaded machine the answers to 200 requests at
# once took up to 59 s (measured), every one of them a 4xx: libmilter runs
# the callbacks on a worker pool that grows slowly, and with the link cut
# each request waits for the sync daemon's connect to b to time out.  A
# bound of 60 s would have called them hung.
HANG=$(postconf -c "$(th_confdir a)" -h milter_content_timeout 2>/dev/null)
HANG=${HANG%s}; [[ $HANG =~ ^[0-9]+$ ]] || HANG=300
echo "# milter a: pid $MP, $(tasks "$MP") threads, VmRSS $(rss "$MP") kB"
mon=$TH_ROOT/milter.mon; : > "$mon"
( while sleep 0.2; do echo "$(tasks "$MP") $(rss "$MP")" >> "$mon"; done ) &
monpid=$!
# baseline: a few requests at once on the healthy pair (informational: on
# a loaded machine some may get 4xx; the reasons are printed)
reasons() { tw_log_since "$MLOG" "$1" | grep -E 'deferred|no answer|refused' |
	sed -E 's/.*login=[a-z]+[^:]*: //' | sort | uniq -c | sort -rn | head -n 4 |
	sed 's/^/#     /'; }
mark=$(tw_log_mark "$MLOG")
out=$(timeout 60 "$TW_PY" "$MF" "$MS" 10 10 m0 0 2>&1)
echo "# milter: 10 requests at once on the healthy pair: $(tail -n1 <<<"$out")"
reasons "$mark"
mark=$(tw_log_mark "$MLOG")
tried=$((tried + 1))
out=$(timeout $((HANG + 120)) "$TW_PY" "$MF" "$MS" 500 150 m1 2 "$HANG" 2>&1)
echo "   client: $(tr '\n' ' ' <<<"$out")"
reasons "$mark"
if grep -qE '^sessions 500/500, .*hang=0 .*dead=0' <<<"$out" && th_alive "$MP"; then
	th_pass "milter: 500 concurrent sessions, 150 requests at once: no crash, no hang ($(tail -n1 <<<"$out"))"
else
	th_fail "milter: 500 concurrent sessions without crash or hang ($out)"
fi
# overload: cut b off, so every commit waits commit_timeout; far more than
# 64 requests are then in flight at once and the rest must get 451 4.3.2
th_link_down b
mark=$(tw_log_mark "$MLOG")
out=$(timeout $((HANG + 120)) "$TW_PY" "$MF" "$MS" 300 200 m2 1 "$HANG" 2>&1)
th_link_up b
echo "   client: $(tr '\n' ' ' <<<"$out")"
reasons "$mark"
kill "$monpid" 2>/dev/null; wait "$monpid" 2>/dev/null
n451=$(sed -nE 's/.*451-4\.3\.2=([0-9]+).*/\1/p' <<<"$out")
n4=$(sed -nE 's/.* 4xx=([0-9]+).*/\1/p' <<<"$out")
# The requirement: 4xx, never a hang or a crash.  How many of them meet
# the in-flight cap (451 4.3.2) depends on how fast the sessions arrive,
# which a loaded machine staggers: reported, not required.
if grep -qE 'hang=0 .*dead=0' <<<"$out" &&
   [ $(( ${n4:-0} + ${n451:-0} )) = 200 ] && th_alive "$MP"; then
	th_pass "milter overloaded (200 requests at once, peer link cut): all 4xx, $n451 of them 451 4.3.2 over the cap of 64, none hung ($HANG s), milter alive ($(sed -nE 's/.*(slowest.*)/\1/p' <<<"$out"))"
	refused=$((refused + 1))
else
	th_fail "milter overloaded: 451 4.3.2 rather than a hang ($out)"
fi
maxt=$(awk '$1 > m { m = $1 } END { print m + 0 }' "$mon")
maxr=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$mon")
echo "# milter a peak: $maxt threads, VmRSS $maxr kB; now $(tasks "$MP") threads"
if [ "$maxt" -le 600 ] && [ "$maxr" -le 262144 ]; then
	th_pass "milter threads and memory bounded under 500 sessions (peak $maxt threads, $maxr kB)"
else
	th_fail "milter threads and memory bounded (peak $maxt threads, $maxr kB)"
fi
_th_poll 20 _milter_idle || :
th_check "milter threads back to idle after the sessions ($(tasks "$MP"))" _milter_idle
tw_wait_recovered 40 >/dev/null 2>&1
healthy "after the milter floods"

echo "# hostile inputs tried $tried, refused $refused, daemon healthy after $healthy checks"
th_summary
