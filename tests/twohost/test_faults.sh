#!/bin/bash
# test_faults.sh - the pair under faults (contract section 6): the other
# sync daemon killed, the link cut before and during a commit, and a crash
# (SIGKILL via MILTER_ALIAS_CRASH_AT) at every named point of the two-phase
# commit on the side it belongs to.  After each fault the crashed daemon is
# restarted without the crash point and must resolve the change by itself:
#   250 => the alias resolves on both hosts;  5xx => on neither;
#   4xx => on both or on neither once recovery has run;
#   the maps are identical (verify exit 0 on both, same entries);
#   retrying a 4xx request is safe (the alias ends on both, exactly once);
#   and in the end the owner has exactly one confirmation from each server.
# Requests are sent to host a, so a is the coordinator and b the participant.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2034  # read by lib2.sh
TW_SUITE=faults
# shellcheck source=lib2.sh
. "$here/lib2.sh"

# All crash points (milter-alias-peer(8)); TW_CRASH_POINTS may narrow them.
CRASH_POINTS=${TW_CRASH_POINTS:-"coord-after-prepare coord-after-votes coord-after-commit-record coord-after-apply part-after-prepare part-after-decision part-after-apply"}

tw_begin

# retry_safe DESC NAME LOGIN : after a 4xx, send the same request again on a
#   (once more if it is 4xx again) and check the alias ends on both hosts,
#   exactly once, owned by LOGIN.  A 5xx "already exists" is a safe answer
#   when recovery had already committed the first attempt.
retry_safe() {
	local desc=$1 name=$2 login=$3 c
	tw_request a "$login" "new $name"
	c=$(tw_eom_class)
	if [ "$c" = 4xx ]; then
		tw_wait_converged 20 >/dev/null 2>&1
		tw_request a "$login" "new $name"; c=$(tw_eom_class)
	fi
	case $c in
		2xx) th_pass "$desc: retry answered 250" ;;
		5xx) if th_smtp_reply EOM | grep -qi "already exists" && [ -n "$(tw_q a "$name@example.org")" ]; then
			th_pass "$desc: retry answered 5xx already exists (the first attempt had been committed)"
		     else th_fail "$desc: retry answered $(th_smtp_reply EOM | head -n1)"; fi ;;
		*) th_fail "$desc: retry answered $c: $(th_smtp_reply EOM 2>/dev/null | head -n1)" ;;
	esac
	th_check "$desc: converged after the retry" tw_wait_converged 20
	tw_check_invariant "$desc (after retry)" "$name@example.org" 2xx "$login@example.org"
	tw_check_confirmations "$desc" "$login" "$name@example.org"
}

# --- peer loss ------------------------------------------------------------------
t0=$EPOCHREALTIME
th_check "kill -9 b's milter-alias-peer" tw_kill_peer b
before=$(tw_map_entries a)
tw_request a alice "new lost-peer"
tw_expect_class "peer down: request on a gets 4xx" 4xx
th_check_eq "peer down: a's map unchanged" "$before" "$(tw_map_entries a)"
th_check_eq "peer down: lost-peer does not resolve on a" "" "$(tw_q a lost-peer@example.org)"
th_check "restart b" tw_start_peer b
th_check "recovered after b's restart (verify 0 on both, nothing in doubt, connected)" tw_wait_recovered 30
tw_check_invariant "peer loss" lost-peer@example.org 4xx alice@example.org
retry_safe "peer loss" lost-peer alice
echo "# peer loss: $(awk -v s="$t0" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s"

# --- link cut just before a request -------------------------------------------
t0=$EPOCHREALTIME
mark_b=$(tw_log_mark "$(tw_peer_log b)")
th_link_down b
tw_request a alice "new cut-before"
tw_expect_class "link cut before the request: 4xx" 4xx
th_link_up b
th_check "link up: recovered (verify 0 on both, nothing in doubt, connected)" tw_wait_recovered 40
# a's prepare went into the cut link and a gave up on it (4xx, aborted).
# Its TCP segments must not reach b once the link is back (TCP would send
# them again for a while after a plain close): b would prepare a change
# that was aborted long ago, defer mail to the address and hold it in
# doubt until it asks a.  Retransmissions back off to several seconds, so
# b's log is watched for 15 s.
_b_prepared_late() { tw_log_since "$(tw_peer_log b)" "$mark_b" | grep -qE "prepared for .*address=cut-before@"; }
if _th_poll 15 _b_prepared_late; then
	th_fail "the aborted prepare never reaches b later (b: $(tw_log_since "$(tw_peer_log b)" "$mark_b" | grep -E "cut-before" | head -n 2 | tr '\n' '|'))"
else
	th_pass "the aborted prepare never reaches b later (15 s watched)"
fi
tw_check_invariant "cut before" cut-before@example.org 4xx alice@example.org
retry_safe "cut before" cut-before alice
echo "# cut before: $(awk -v s="$t0" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s"

# --- link cut during a commit ----------------------------------------------------
# The request is sent in the background; the link goes down as soon as b's
# log mentions the name (b has seen the prepare), or after 2 s at the latest.
# A commit takes milliseconds, so this usually cuts just after it (250); the
# frozen-participant case below cuts in the middle for certain.
t0=$EPOCHREALTIME
mark=$(tw_log_mark "$(tw_peer_log b)")
out=$(th_dir a)/swaks.cut-during
TH_SWAKS_OUT=$out tw_request a alice "new cut-during" >/dev/null &
req=$!
_seen() { tw_log_since "$(tw_peer_log b)" "$mark" | grep -qE "prepared for .*cut-during|cut-during"; }
if _th_poll 2 _seen; then how="after b logged the prepare"; else how="after 2 s (b logged nothing)"; fi
th_link_down b
wait $req
class=$(tw_eom_class "$out")
echo "# cut during ($how): request answered $class: $(th_smtp_reply EOM "$out" 2>/dev/null | head -n1)"
case $class in
	2xx|4xx) th_pass "link cut during the commit: 250 or 4xx ($class)" ;;
	*) th_fail "link cut during the commit: 250 or 4xx (got $class)" ;;
esac
if [ "$class" = 2xx ]; then
	th_check_eq "cut during, 250: the alias resolves on a at once" alice@example.org "$(tw_q a cut-during@example.org)"
fi
th_link_up b
th_check "link up: recovered (verify 0 on both, nothing in doubt, connected)" tw_wait_recovered 40
tw_check_invariant "cut during" cut-during@example.org "$class" alice@example.org
if [ "$class" = 2xx ]; then tw_check_confirmations "cut during" alice cut-during@example.org
else retry_safe "cut during" cut-during alice; fi
echo "# cut during: $(awk -v s="$t0" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s"

# --- link cut while b holds a prepared change -------------------------------------
# b's daemon is frozen (SIGSTOP) so that a's prepare waits in b's socket;
# the link goes down, b is thawed: b prepares and votes into the dead link,
# a hears nothing within commit_timeout.  b is now in doubt until the link
# is back and it asks a.
t0=$EPOCHREALTIME
bpid=$(tw_peer_pid b)
mark_a=$(tw_log_mark "$(tw_peer_log a)"); mark_b=$(tw_log_mark "$(tw_peer_log b)")
out=$(th_dir a)/swaks.cut-frozen
kill -STOP "$bpid"
TH_SWAKS_OUT=$out tw_request a alice "new cut-frozen" >/dev/null &
req=$!
_a_prepared() { tw_log_since "$(tw_peer_log a)" "$mark_a" | grep -qE "prepare .*address=cut-frozen@"; }
_th_poll 5 _a_prepared || tw_msg "a did not log its prepare of cut-frozen"
sleep 0.3	# the prepare is on its way / in b's socket
th_link_down b
kill -CONT "$bpid"
wait $req
class=$(tw_eom_class "$out")
echo "# cut with b frozen: request answered $class: $(th_smtp_reply EOM "$out" 2>/dev/null | head -n1)"
th_check_eq "link cut after the prepare reached b: 4xx" 4xx "$class"
_b_prepared() { tw_log_since "$(tw_peer_log b)" "$mark_b" | grep -qE "prepared for .*address=cut-frozen@"; }
if _th_poll 3 _b_prepared; then th_pass "b prepared cut-frozen (it is in doubt now)"
else th_fail "b prepared cut-frozen (b's log: $(tw_log_since "$(tw_peer_log b)" "$mark_b" | tail -n 3 | tr '\n' '|'))"; fi
th_check_eq "link down: no server applies the undecided change" ":" \
	"$(tw_q a cut-frozen@example.org):$(tw_q b cut-frozen@example.org)"
th_link_up b
th_check "link up: recovered, b's in-doubt change resolved (verify 0, nothing in doubt, connected)" tw_wait_recovered 40
tw_check_invariant "cut with b frozen" cut-frozen@example.org "$class" alice@example.org
[ "$class" = 2xx ] || retry_safe "cut with b frozen" cut-frozen alice
echo "# cut with b frozen: $(awk -v s="$t0" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s"

# --- a crash at every point of the commit -----------------------------------------
for point in $CRASH_POINTS; do
	t0=$EPOCHREALTIME
	case $point in
		coord-*) side=a ;;
		part-*) side=b ;;
		*) th_fail "unknown crash point $point"; continue ;;
	esac
	name=crash-$point
	if ! tw_restart_peer $side "$point"; then
		th_fail "$point: restart $side with MILTER_ALIAS_CRASH_AT=$point"; continue
	fi
	pid=$(tw_peer_pid $side)
	tw_wait_recovered 20 || th_fail "$point: pair recovered before the request"
	before_a=$(tw_map_entries a); before_b=$(tw_map_entries b)
	tw_request a alice "new $name"
	class=$(tw_eom_class)
	reply=$(th_smtp_reply EOM 2>/dev/null | head -n1)
	if th_wait_dead "$pid" 10; then
		th_pass "$point: $side's daemon crashed there (request answered $class: $reply)"
	else
		th_fail "$point: $side's daemon crashed there (still alive 10 s after the request, which answered $class: $reply)"
		tw_kill_peer $side
	fi
	case $class in
		2xx|4xx) th_pass "$point: 250 or 4xx ($class)" ;;
		*) th_fail "$point: 250 or 4xx (got $class: $reply)" ;;
	esac
	if [ "$class" = 2xx ]; then
		# visible on the coordinator the moment it is reported committed
		th_check_eq "$point: 250 => resolves on a at once" alice@example.org "$(tw_q a "$name@example.org")"
	fi
	if [ "$class" = 4xx ]; then
		# the surviving host shows no half-applied change while the other
		# is down: either nothing changed or the whole alias is there
		live=$(tw_other $side)
		if [ "$live" = a ]; then before=$before_a; else before=$before_b; fi
		if [ "$(tw_map_entries $live)" = "$before" ] || [ -n "$(tw_q $live "$name@example.org")" ]; then
			th_pass "$point: $live consistent while $side is down"
		else th_fail "$point: $live consistent while $side is down: $(diff <(echo "$before") <(tw_map_entries $live) | tr '\n' ' ')"; fi
	fi
	th_check "$point: restart $side without the crash point" tw_start_peer $side
	th_check "$point: recovered by itself (verify 0 on both, nothing in doubt, connected)" tw_wait_recovered 30
	tw_check_invariant "$point" "$name@example.org" "$class" alice@example.org
	if [ "$class" = 4xx ]; then retry_safe "$point" "$name" alice
	elif [ "$class" = 2xx ]; then tw_check_confirmations "$point" alice "$name@example.org"; fi
	echo "# $point: $(awk -v s="$t0" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s"
done

# a last all-clear: a normal request still works on both sides
tw_request b bob "new all-clear"
tw_expect_class "after all faults: a request on b gets 250" 2xx
tw_check_invariant "all-clear" all-clear@example.org 2xx bob@example.org
tw_check_confirmations "all-clear" bob all-clear@example.org

tw_wall test_faults
th_summary
