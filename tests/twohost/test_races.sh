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
# A request answered 4xx is retried by its sender after the round: it must
# then hear "already exists" (or get the name if nobody did).
#   TW_RACE_ROUNDS   number of rounds (default 20)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2034  # read by lib2.sh
TW_SUITE=races
# shellcheck source=lib2.sh
. "$here/lib2.sh"
ROUNDS=${TW_RACE_ROUNDS:-20}
# alice and bob send ROUNDS requests and their retries within minutes
export TW_CONF_EXTRA="max_requests_per_hour = $((ROUNDS * 3 + 30))"

tw_begin

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
		at=$(awk -v t="$EPOCHREALTIME" 'BEGIN { printf "%.3f", t + 0.7 }')
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
	# a retry of a 4xx request is safe: the loser now hears "already
	# exists" (or, if nobody got the name, gets it), and nothing diverges
	owner=$(tw_q a "$name@example.org") retried='' had_owner=''
	[ -z "$owner" ] || had_owner=1
	maps_before=$(tw_map_entries a; echo "-- b"; tw_map_entries b)
	for x in "a alice $ca" "b bob $cb"; do
		set -- $x
		[ "$3" = 4xx ] || continue
		retried=1
		f=$dir/race.$i.$1.retry
		TH_SWAKS_OUT=$f tw_request "$1" "$2" "new $name" >/dev/null
		rc=$(tw_eom_class "$f")
		if [ -n "$owner" ]; then
			if [ "$rc" = 5xx ] && th_smtp_reply EOM "$f" | grep -qi "already exists"; then
				th_pass "round $i: $2's retry on $1 after 4xx: 5xx already exists"
			else th_fail "round $i: $2's retry on $1 after 4xx: 5xx already exists (got $rc: $(th_smtp_reply EOM "$f" 2>/dev/null | head -n1))"; fi
		else
			th_check_eq "round $i: $2's retry on $1 gets the free name" 2xx "$rc"
			[ "$rc" = 2xx ] && owner=$2@example.org
		fi
	done
	if [ -n "$retried" ] && [ -n "$had_owner" ]; then
		# refused retries: nothing may have changed anywhere
		th_check_eq "round $i: the refused retries changed no map" "$maps_before" \
			"$(tw_map_entries a; echo "-- b"; tw_map_entries b)"
	elif [ -n "$retried" ]; then
		tw_wait_converged 20 || th_fail "round $i: converged after the retries"
		if [ -n "$owner" ]; then tw_check_invariant "round $i after retries" "$name@example.org" 2xx "$owner"
		else tw_check_invariant "round $i after retries" "$name@example.org" 5xx; fi
	fi
	# the winner's change alone was confirmed: one message per server
	[ -z "$owner" ] || tw_check_confirmations "round $i" "${owner%@*}" "$name@example.org" 10
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

tw_wall test_races
th_summary
