#!/bin/bash
# test_races.sh - concurrent requests for the same name on both hosts
# (contract section 6: the maps never diverge under concurrent requests).
# Each round, alice asks host a and bob asks host b for the same new name at
# the same moment.  Never may both get 250; after the round verify says
# identical on both hosts and the name resolves on both to the owner that
# got 250 (if none did, to nobody, or -- after 4xx only -- to the same one
# of the two on both hosts).
# Odd rounds use two swaks started together; even rounds use smtp-race.py,
# which holds both requests before the final "." and sends both dots at one
# agreed instant, so both milters reach end-of-message together.
#   TW_RACE_ROUNDS   number of rounds (default 20)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
TW_SUITE=races
# shellcheck source=lib2.sh
. "$here/lib2.sh"
ROUNDS=${TW_RACE_ROUNDS:-20}

tw_preflight || exit 1
t_start=$EPOCHREALTIME
if ! tw_setup; then
	th_fail "bring up the pair (hosts, keys, pins, daemons, milters)"
	tw_dump_logs 30; th_summary; exit 1
fi
th_pass "pair up ($(tw_elapsed) s)"

dir=$TH_ROOT
declare -A tally=()
for i in $(seq 1 "$ROUNDS"); do
	name=race$i
	fa=$dir/race.$i.a fb=$dir/race.$i.b
	if [ $((i % 2)) = 1 ]; then
		how=swaks
		TH_SWAKS_OUT=$fa tw_request a alice "new $name" >/dev/null 2>&1 & pa=$!
		TH_SWAKS_OUT=$fb tw_request b bob "new $name" >/dev/null 2>&1 & pb=$!
	else
		how=barrier
		at=$(awk -v t="$EPOCHREALTIME" 'BEGIN { printf "%.3f", t + 1.0 }')
		th_exec a "$TW_PY" "$here/smtp-race.py" "$(tw_ip a)" alice secret-alice "new $name" "$at" >"$fa" 2>&1 & pa=$!
		th_exec b "$TW_PY" "$here/smtp-race.py" "$(tw_ip b)" bob secret-bob "new $name" "$at" >"$fb" 2>&1 & pb=$!
	fi
	wait $pa $pb
	ca=$(tw_eom_class "$fa"); cb=$(tw_eom_class "$fb")
	tally["$ca/$cb"]=$(( ${tally["$ca/$cb"]:-0} + 1 ))
	ra=$(th_smtp_reply EOM "$fa" 2>/dev/null | head -n1); rb=$(th_smtp_reply EOM "$fb" 2>/dev/null | head -n1)
	desc="round $i ($how): a(alice)=$ca b(bob)=$cb"
	if [ "$ca" = 2xx ] && [ "$cb" = 2xx ]; then
		th_fail "$desc: never both 250 [$ra | $rb]"
	elif [ "$ca" = none ] || [ "$cb" = none ]; then
		th_fail "$desc: both requests answered [$ra | $rb]"
	else
		th_pass "$desc: not both 250"
	fi
	if ! tw_wait_converged 20; then
		th_fail "round $i: converged (verify 0 on both, nothing in doubt)"
	fi
	# the loser's refusal must name a reason a person can act on
	for x in "a:$ca:$ra" "b:$cb:$rb"; do
		case $x in *:5xx:*) grep -qiE 'exists|in use' <<<"${x#*:5xx:}" ||
			th_fail "round $i: 5xx for the loser says why (${x#*:5xx:})" ;; esac
	done
	if [ "$ca" = 2xx ]; then tw_check_invariant "round $i winner alice" "$name@example.org" 2xx alice@example.org
	elif [ "$cb" = 2xx ]; then tw_check_invariant "round $i winner bob" "$name@example.org" 2xx bob@example.org
	elif [ "$ca" = 4xx ] || [ "$cb" = 4xx ]; then
		tw_check_invariant "round $i no winner" "$name@example.org" 4xx
		q=$(tw_q a "$name@example.org")
		case $q in ''|alice@example.org|bob@example.org) ;;
			*) th_fail "round $i: resolves to one of the requesters (got $q)" ;; esac
	else
		tw_check_invariant "round $i both refused" "$name@example.org" 5xx
	fi
done
summary=
for k in "${!tally[@]}"; do summary="$summary $k:${tally[$k]}"; done
echo "# outcomes a/b over $ROUNDS rounds:$summary"
# Liveness: a race must not end with nobody getting the name every time.
wins=0
for k in "${!tally[@]}"; do case $k in 2xx/*|*/2xx) wins=$((wins + tally[$k])) ;; esac; done
if [ "$wins" -ge $(( (ROUNDS + 1) / 2 )) ]; then th_pass "someone won at least half of the rounds ($wins of $ROUNDS)"
else th_fail "someone won at least half of the rounds (only $wins of $ROUNDS had a 250)"; fi
th_check "both maps identical at the end" tw_maps_identical

echo "test_races: $(awk -v s="$t_start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s"
th_summary
