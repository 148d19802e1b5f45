#!/bin/bash
# test_campaign.sh - a seeded, reproducible random fault campaign against the
# pair: the guarantees of the README's "Two or more servers".
#
# Each round sends random alias requests on BOTH servers -- new names, and
# new/disable/enable/delete of names of this and earlier rounds, by their
# owner or by somebody else, some of them at the same moment on a and b
# (sometimes for the same name) -- and injects random faults at random
# moments: kill -9 of either sync daemon or milter during a request, a
# restart with a crash point of the two-phase commit armed
# (MILTER_ALIAS_CRASH_AT, milter-alias-peer(8)), a cut link, a clean
# restart of a sync daemon during a request.  Every request goes into a
# ledger (round, step, host, login, verb, name, SMTP class, reply).
#
# After the faults of a round everything dead is started again (without
# crash points), the link is up, and the pair must recover by itself:
# verify says identical on both, nothing in doubt, connected.  Then, for
# every name the round touched, the state both servers report must be the
# same and must be explained by the answers (campaign_model.py): 250 => the
# change happened, 5xx => it did not, 4xx/none => all of it or none of it;
# an active alias resolves (postmap -q) to its owner on both servers; and
# the maps are identical.  Any mismatch is a violation: counted, printed,
# th_fail, and the daemons' logs are saved for the round.
#
# The random stream of round R is seeded from (CAMPAIGN_SEED, R) alone, so
# a round sends the same requests and injects the same faults (at the same
# delays) whatever happened before it; outcomes still depend on timing.
#
# Knobs:
#   CAMPAIGN_SEED         seed (default 1)
#   CAMPAIGN_ROUNDS       number of rounds (default 15: a few minutes, for CI)
#   CAMPAIGN_FIRST_ROUND  number of the first round (default 1); with
#                         CAMPAIGN_ROUNDS=1, replays one round of a seed
#   CAMPAIGN_FINDINGS     where the logs of a round with a violation are
#                         copied (default /var/tmp/milter-alias-campaign-findings)
#   CAMPAIGN_RECOVER      seconds allowed for recovery after a round (default 90)
#   CAMPAIGN_NS, CAMPAIGN_ROOT  namespace prefix (fc-) and test root, so a
#                         long run can go on beside the CI-length one
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2034  # read by lib2.sh
TW_SUITE=campaign
export TH_NS_PREFIX=${CAMPAIGN_NS:-fc-}
export TH_ROOT=${CAMPAIGN_ROOT:-/var/tmp/milter-alias-twohost-campaign}
# Rate and quota limits are not what is tested here; with the defaults the
# logins would be refused (5xx) after 30 requests in an hour.
export TW_CONF_EXTRA="max_requests_per_hour = 1000000
max_aliases_per_user = 1000000"
# shellcheck source=lib2.sh
. "$here/lib2.sh"

SEED=${CAMPAIGN_SEED:-1}
ROUNDS=${CAMPAIGN_ROUNDS:-15}
FIRST=${CAMPAIGN_FIRST_ROUND:-1}
FINDINGS=${CAMPAIGN_FINDINGS:-/var/tmp/milter-alias-campaign-findings}
RECOVER=${CAMPAIGN_RECOVER:-90}
MODEL_PY=$here/campaign_model.py
LOGINS=(alice bob carol)
POINTS=(coord-after-prepare coord-after-votes coord-after-commit-record coord-after-apply
	part-after-prepare part-after-decision part-after-apply)
LAST=$((FIRST + ROUNDS - 1))

echo "campaign: seed=$SEED rounds=$ROUNDS (rounds $FIRST..$LAST)"
echo "# replay: CAMPAIGN_SEED=$SEED CAMPAIGN_FIRST_ROUND=$FIRST CAMPAIGN_ROUNDS=$ROUNDS $0"

tw_preflight || exit 1
# an oracle that accepted everything would make "violations=0" worthless
if ! th_check "the model checker's verdicts on hand-made histories" "$TW_PY" "$MODEL_PY" --self-test; then
	th_summary; exit 1
fi
t_start=$EPOCHREALTIME
if ! tw_setup; then
	th_fail "bring up the pair (hosts, keys, pins, daemons, milters)"
	tw_dump_logs 30; th_summary; exit 1
fi
th_pass "pair up ($(tw_elapsed) s)"

work=$TH_ROOT/campaign
rm -rf "$work"; mkdir -p "$work"
ledger=$work/ledger.tsv
model=$work/model.json
: > "$ledger"; echo '{}' > "$model"

# Counters for the summary line.
n_req=0 n_2xx=0 n_4xx=0 n_5xx=0 n_none=0 n_faults=0 violations=0 rounds_done=0
fault_fired=0	# armed crash points that did kill their daemon
declare -A fault_kind=()
declare -A armed=([a]='' [b]='')	# crash point a host's sync daemon runs with

# rnd N : R = a random number in 0..N-1.  A plain assignment, never inside
# $(...): a subshell would advance its own copy of RANDOM, not ours, and
# the stream (so the campaign) would depend on how the script is written.
R=0
rnd() { R=$((RANDOM % $1)); }

secs() { awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }'; }

# heal : start whatever is dead, restart a sync daemon still armed with a
# crash point without it, bring both links up.
heal() {
	local h
	th_link_up a; th_link_up b
	for h in a b; do
		if ! tw_peer_alive "$h"; then
			tw_start_peer "$h" || th_fail "round $round: start $h's sync daemon again"
		elif [ -n "${armed[$h]}" ]; then
			tw_restart_peer "$h" || th_fail "round $round: restart $h's sync daemon without its crash point"
		fi
		armed[$h]=''
		tw_milter_alive "$h" || tw_start_milter "$h" --again || th_fail "round $round: start $h's milter again"
	done
}

# pick_op : draw one request into OP_LOGIN OP_VERB OP_NAME.  Names are
# cR-K; the name's intended owner is a function of the name alone, so the
# draw never depends on what earlier requests got.  A fresh name is new in
# this round; an old one is from this round or one of the last 6 (it may
# never have been created, or be owned by someone else by now).
pick_op() {
	local r k
	rnd 10
	if [ "$R" -lt 4 ]; then
		fresh=$((fresh + 1)); r=$round k=$fresh
		OP_VERB=new
	else
		# half the time a name of this round (likely to exist by now),
		# else one of the last 6 rounds'
		rnd 2
		if [ "$R" = 0 ] && [ "$fresh" -gt 0 ]; then
			r=$round; rnd "$fresh"; k=$((R + 1))
		else
			rnd 6; r=$((round - 1 - R)); [ "$r" -ge 1 ] || r=$round
			rnd 3; k=$((R + 1))
		fi
		rnd 10
		case $R in 0|1|2) OP_VERB=new ;; 3|4|5) OP_VERB=disable ;;
			6|7) OP_VERB=enable ;; *) OP_VERB=delete ;; esac
	fi
	OP_NAME=c$r-$k
	OP_LOGIN=${LOGINS[$(( (r + k) % 3 ))]}
	rnd 4	# one request in four is by somebody else
	[ "$R" != 0 ] || OP_LOGIN=${LOGINS[$(( (r + k + 1) % 3 ))]}
}

# record STEP HOST LOGIN VERB NAME FILE : classify a finished request and
# append it to the ledger.
record() {
	local class reply
	class=$(tw_eom_class "$6")
	reply=$(th_smtp_reply EOM "$6" 2>/dev/null | head -n1 | tr '\t' ' ') ||
		reply=$(th_smtp_reply RCPT "$6" 2>/dev/null | head -n1 | tr '\t' ' ') || reply=
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$1" "$2" "$3" "$4" "$5" "$class" "$reply" >> "$ledger"
	n_req=$((n_req + 1))
	case $class in
		2xx) n_2xx=$((n_2xx + 1)) ;; 4xx) n_4xx=$((n_4xx + 1)) ;;
		5xx) n_5xx=$((n_5xx + 1)) ;; *) n_none=$((n_none + 1)) ;;
	esac
	[ "${CAMPAIGN_VERBOSE:-1}" = 0 ] || echo "#   $2 $3 '$4 $5' -> $class $reply"
	return 0
}

# fault_note KIND : count one injected fault.
fault_note() {
	n_faults=$((n_faults + 1))
	fault_kind[$1]=$(( ${fault_kind[$1]:-0} + 1 ))
}

# save_findings WHY : copy the pair's logs and the round's ledger aside.
save_findings() {
	local d=$FINDINGS/seed$SEED-round$round h
	mkdir -p "$d"
	for h in a b; do
		cp -f "$(th_dir "$h")/peer.log" "$d/$h-peer.log" 2>/dev/null
		cp -f "$(th_dir "$h")/milter.log" "$d/$h-milter.log" 2>/dev/null
		cp -f "$(th_dir "$h")/maillog" "$d/$h-maillog" 2>/dev/null
		cp -f "$(th_map_file "$h")" "$d/$h-aliases" 2>/dev/null
		tw_ctl "$h" journal > "$d/$h-journal.txt" 2>&1
		tw_ctl "$h" list --json > "$d/$h-list.json" 2>&1
	done
	grep -P "^$round\t" "$ledger" > "$d/ledger.tsv"
	printf '%s\n' "$@" >> "$d/why.txt"
	tw_msg "round $round: logs saved in $d"
}

# violation TEXT : one invariant violation.
violation() {
	violations=$((violations + 1)); round_bad=1
	th_fail "round $round: $*"
}

# wait_log_names HOST MARK NAME : wait (at most 2 s, in short steps: the
# commit takes milliseconds) until HOST's sync daemon log names NAME after
# byte offset MARK.
wait_log_names() {
	local log i; log=$(tw_peer_log "$1")
	for i in $(seq 1 200); do
		tail -c +"$(( $2 + 1 ))" "$log" 2>/dev/null | grep -q -- "address=$3@" && return 0
		sleep 0.01
	done
	return 1
}

# run_step STEP : draw and run one step of the round: one request, or two
# at once (one on a, one on b; sometimes the same name), with a fault or
# not.  Every draw happens before anything runs and whatever the state
# is, so the stream stays the same from one run to the next.
run_step() {
	local step=$1 mode fault fhost fdelay ftrigger fhold fpoint frestart i h mark
	local -a hosts=() logins=() verbs=() names=() files=() pids=()
	rnd 10; mode=$R
	pick_op; hosts+=(a) logins+=("$OP_LOGIN") verbs+=("$OP_VERB") names+=("$OP_NAME")
	if [ "$mode" -lt 4 ]; then
		rnd 2; [ "$R" = 0 ] || hosts[0]=b
	else
		pick_op; hosts+=(b) logins+=("$OP_LOGIN") verbs+=("$OP_VERB") names+=("$OP_NAME")
		if [ "$mode" -ge 7 ]; then
			# the same name on both servers at once, by two logins
			names[1]=${names[0]}
			[ "${logins[1]}" != "${logins[0]}" ] ||
				logins[1]=${LOGINS[$(( (mode + step) % 3 ))]}
			[ "${logins[1]}" != "${logins[0]}" ] ||
				logins[1]=${LOGINS[$(( (mode + step + 1) % 3 ))]}
			rnd 2; [ "$R" = 0 ] || verbs[1]=${verbs[0]}
		fi
	fi
	# the fault: none (4 in 10), or one of five kinds
	rnd 20; fault=$R
	rnd 2; fhost=a; [ "$R" = 0 ] || fhost=b
	# when the fault strikes: mostly within the first 0.6 s, where a request
	# is still on its way (AUTH, DATA, the commit), sometimes later
	rnd 4
	if [ "$R" != 0 ]; then rnd 13; fdelay=$(printf '%d.%02d' 0 $((R * 5)))
	else rnd 7; fdelay=$(printf '%d.%d' $(( (6 + R) / 10 )) $(( (6 + R) % 10 ))); fi
	# or as soon as the struck host's log names the request's alias (it
	# has begun the commit): the window between prepare and decision
	rnd 3; ftrigger="delay"; [ "$R" != 0 ] || ftrigger="log"
	rnd 4; fhold=$R		# seconds a cut link stays down after the requests (0..3)
	rnd ${#POINTS[@]}; fpoint=${POINTS[$R]}
	rnd 2; frestart=$R	# a killed daemon comes back at once (1) or at the end of the round (0)
	case $fault in
		[0-7]) fault=none ;;
		8|9|10) fault="kill-peer" ;;
		11) fault="kill-milter" ;;
		12|13|14) fault="crash-point" ;;
		15|16|17) fault="link-cut" ;;
		*) fault="restart-peer" ;;
	esac
	local desc="step $step:"
	for i in "${!hosts[@]}"; do desc="$desc ${hosts[$i]}:${logins[$i]} '${verbs[$i]} ${names[$i]}'"; done
	[ "$fault" = none ] || desc="$desc + $fault on $fhost"
	case $fault in
		crash-point) desc="$desc ($fpoint)" ;;
		none) ;;
		*) if [ "$ftrigger" = log ]; then desc="$desc when its log names ${names[0]}"
		   else desc="$desc after ${fdelay}s"; fi ;;
	esac
	[ "$fault" != link-cut ] || desc="$desc, up ${fhold}s after the requests"
	echo "# round $round $desc"

	# a crash point is armed before the requests, which then run into it
	if [ "$fault" = crash-point ]; then
		if tw_restart_peer "$fhost" "$fpoint"; then armed[$fhost]=$fpoint
		else tw_msg "round $round: cannot restart $fhost with $fpoint"; fi
		fault_note crash-point
	fi
	mark=$(tw_log_mark "$(tw_peer_log "$fhost")")
	for i in "${!hosts[@]}"; do
		files+=("$work/r$round.s$step.$i")
		TH_SWAKS_OUT=${files[$i]} tw_request "${hosts[$i]}" "${logins[$i]}" \
			"${verbs[$i]} ${names[$i]}" >/dev/null 2>&1 &
		pids+=($!)
	done
	case $fault in
		kill-peer|kill-milter|restart-peer|link-cut)
			if [ "$ftrigger" = log ]; then wait_log_names "$fhost" "$mark" "${names[0]}"
			else sleep "$fdelay"; fi ;;
	esac
	case $fault in
		kill-peer)
			tw_kill_peer "$fhost"; fault_note kill-peer ;;
		kill-milter)
			tw_kill_milter "$fhost"; fault_note kill-milter ;;
		restart-peer)
			# a clean stop lets the change in flight finish; the start is
			# at once, the requests may still be running
			tw_restart_peer "$fhost" || tw_msg "restart of $fhost failed"
			armed[$fhost]=''
			fault_note restart-peer ;;
		link-cut)
			th_link_down "$fhost"; fault_note link-cut ;;
	esac
	wait "${pids[@]}"
	for h in a b; do	# an armed crash point that fired: the daemon stays down until heal
		if [ -n "${armed[$h]}" ] && ! tw_peer_alive "$h"; then
			fault_fired=$((fault_fired + 1)); armed[$h]=''
		fi
	done
	for i in "${!hosts[@]}"; do
		record "$step" "${hosts[$i]}" "${logins[$i]}" "${verbs[$i]}" "${names[$i]}" "${files[$i]}"
	done
	case $fault in
		link-cut) sleep "$fhold"; th_link_up "$fhost" ;;
		kill-peer) [ "$frestart" = 0 ] || { tw_start_peer "$fhost"; armed[$fhost]=''; } ;;
		kill-milter) [ "$frestart" = 0 ] || tw_start_milter "$fhost" --again || :;;
	esac
	return 0
}

# check_round : after heal, wait for recovery and check every invariant
# for the names of this round.
check_round() {
	local why names n qa qb st line out
	if ! tw_wait_recovered "$RECOVER"; then
		violation "no recovery within ${RECOVER}s (verify 0 on both, nothing in doubt, connected)"
		save_findings "no recovery"
		# give it one more chance before checking, so the checks below
		# say what is wrong rather than "cannot ask the peer"
		heal; tw_wait_recovered 60 >/dev/null 2>&1
	fi
	for n in a b; do
		[ "$(tw_in_doubt "$n")" = 0 ] || violation "$n still has changes in doubt after recovery"
	done
	if ! why=$(tw_maps_identical); then violation "maps differ: $why"; fi
	tw_ctl a list --json > "$work/list.a.json" 2>/dev/null
	tw_ctl b list --json > "$work/list.b.json" 2>/dev/null
	out=$("$TW_PY" "$MODEL_PY" "$round" "$model" "$ledger" "$work/list.a.json" "$work/list.b.json" 2>&1)
	while IFS= read -r line; do
		case $line in
			VIOLATION*) violation "${line#VIOLATION }" ;;
			checked*) echo "# round $round: model $line" ;;
			*) violation "model checker: $line" ;;
		esac
	done <<<"$out"
	# what Postfix sees: an active alias resolves to its owner on both
	# servers, anything else the same on both
	names=$(awk -F'\t' -v r="$round" '$1 == r { print $6 }' "$ledger" | sort -u)
	for n in $names; do
		qa=$(tw_q a "$n@$TH_DOMAIN"); qb=$(tw_q b "$n@$TH_DOMAIN")
		st=$("$TW_PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); v=m.get(sys.argv[2]); print("%s %s" % (v[0], v[1]) if v else "absent -")' "$model" "$n")
		if [ "$qa" != "$qb" ]; then
			violation "$n: postmap -q differs: a='$qa' b='$qb' (state $st)"
		elif [ "${st%% *}" = active ] && [ "$qa" != "${st#* }@$TH_DOMAIN" ]; then
			violation "$n: active for ${st#* } but resolves to '$qa'"
		elif [ "${st%% *}" = absent ] && [ -n "$qa" ]; then
			violation "$n: absent but resolves to '$qa'"
		fi
	done
}

for round in $(seq "$FIRST" "$LAST"); do
	t0=$EPOCHREALTIME
	# the round's own stream: the same requests and faults whatever
	# the rounds before did
	RANDOM=$(( (SEED * 1000003 + round) % 2147483647 ))
	fresh=0 round_bad=0
	rnd 4; nsteps=$((R + 3))
	for step in $(seq 1 "$nsteps"); do run_step "$step"; done
	heal
	check_round
	rounds_done=$((rounds_done + 1))
	if [ "$round_bad" = 0 ]; then
		th_pass "round $round: invariants hold ($(secs "$t0") s)"
	else
		save_findings "violations in round $round"
		echo "# re-run this round: CAMPAIGN_SEED=$SEED CAMPAIGN_FIRST_ROUND=$round CAMPAIGN_ROUNDS=1 $0"
		echo "# re-run up to it:   CAMPAIGN_SEED=$SEED CAMPAIGN_ROUNDS=$round $0"
	fi
done

kinds=
for k in $(printf '%s\n' "${!fault_kind[@]}" | sort); do kinds="$kinds $k=${fault_kind[$k]}"; done
echo "campaign: seed=$SEED rounds=$rounds_done faults=$n_faults requests=$n_req (250=$n_2xx 4xx=$n_4xx 5xx=$n_5xx none=$n_none) violations=$violations"
echo "campaign: faults by kind:$kinds (crash points that fired: $fault_fired)"
echo "campaign: wall time $(secs "$t_start") s"
[ "$violations" = 0 ] && th_pass "campaign: no invariant violation in $rounds_done rounds"
th_summary || exit 1
[ "$violations" = 0 ]
