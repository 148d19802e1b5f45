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
#
# Further paths (issue 12, item 11), each off by default, so the CI run
# (15 rounds, the five kinds above, a pair) stays as it was and draws the
# same stream; the draws for them come after the default ones of a step:
#   CAMPAIGN_SHAPE=aliases2   map_format = "aliases" with two domains
#                         (example.org, example.net): every request names a
#                         domain, drawn per request, and the two requests of
#                         a step for one name often name it in different
#                         domains.  The map key is the local part, so the
#                         model checks the local part as one name (a name
#                         taken in one domain is taken in both) and postmap
#                         -q asks for the local part.
#   CAMPAIGN_SERVERS=3    a third server c (lib2.sh TW_SERVERS=3: every host
#                         pins the other two); requests and faults go to any
#                         of the three, every check covers all three.
#   CAMPAIGN_FAULTS=LIST  extra fault kinds (comma or space separated); one
#                         step in three gets one of them (drawn) instead of
#                         the fault drawn for it above:
#     diskfull  every state directory is a small tmpfs (CAMPAIGN_DISK_MB,
#               default 16); the struck host's is filled to the last byte
#               with a filler file during the requests and freed 0-3 s
#               after them.
#     handedit  during the requests an administrator appends an entry of
#               their own (handR-S, two targets, the second on a
#               continuation line) to the map source of the struck host,
#               and after the requests the same entry to the other
#               hosts' (so that the maps are meant to be identical).
#               After the round it must still be in every host's file and
#               resolve (postmap -q) to both targets; the model ignores
#               hand entries (names hand*: never requested).
#     hostile   an outside host x (198.51.100.9, network only) floods the
#               struck host's peer port with idle connections
#               (holdopen.py, 64 at once) from before the requests until
#               0-3 s after them.
#   CAMPAIGN_ALL_KINDS=1  everything at once (the long run's setting):
#                         shape aliases2, three servers, all extra faults;
#                         each of the three may still be set explicitly.
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
ALL_KINDS=${CAMPAIGN_ALL_KINDS:-0}
if [ "$ALL_KINDS" = 1 ]; then
	SHAPE=${CAMPAIGN_SHAPE:-aliases2}
	SERVERS=${CAMPAIGN_SERVERS:-3}
	EXTRA_FAULTS=${CAMPAIGN_FAULTS-diskfull,handedit,hostile}
else
	SHAPE=${CAMPAIGN_SHAPE:-pair}
	SERVERS=${CAMPAIGN_SERVERS:-2}
	EXTRA_FAULTS=${CAMPAIGN_FAULTS:-}
fi
read -r -a EXTRA <<<"${EXTRA_FAULTS//,/ }"
for k in "${EXTRA[@]}"; do
	case $k in diskfull|handedit|hostile) ;;
		*) echo "campaign: unknown fault kind '$k' in CAMPAIGN_FAULTS (diskfull, handedit, hostile)" >&2; exit 2 ;;
	esac
done
case $SHAPE in pair|aliases2) ;;
	*) echo "campaign: unknown CAMPAIGN_SHAPE '$SHAPE' (pair, aliases2)" >&2; exit 2 ;;
esac
export TW_SERVERS=$SERVERS
DOMAINS=(example.org)
if [ "$SHAPE" = aliases2 ]; then
	DOMAINS=(example.org example.net)
	export TW_MAP_FORMAT=aliases TW_DOMAINS='"example.org", "example.net"'
fi
has_extra() { local k; for k in "${EXTRA[@]}"; do [ "$k" = "$1" ] && return 0; done; return 1; }
has_extra diskfull && export TW_HOST_HOOK=small_state_fs
# shellcheck source=lib2.sh
. "$here/lib2.sh"

SEED=${CAMPAIGN_SEED:-1}
ROUNDS=${CAMPAIGN_ROUNDS:-15}
FIRST=${CAMPAIGN_FIRST_ROUND:-1}
FINDINGS=${CAMPAIGN_FINDINGS:-/var/tmp/milter-alias-campaign-findings}
RECOVER=${CAMPAIGN_RECOVER:-90}
MODEL_PY=$here/campaign_model.py
MODEL_KEY=	# aliases2: the model's names are local parts
[ "$SHAPE" != aliases2 ] || MODEL_KEY=local
LOGINS=(alice bob carol)
POINTS=(coord-after-prepare coord-after-votes coord-after-commit-record coord-after-apply
	part-after-prepare part-after-decision part-after-apply)
LAST=$((FIRST + ROUNDS - 1))
read -r -a HOSTS <<<"$TW_HOSTS"
HOLD=$here/holdopen.py
XIP=198.51.100.9
DISK_MB=${CAMPAIGN_DISK_MB:-16}

knobs="CAMPAIGN_SEED=$SEED"
[ "$SHAPE" = pair ] || knobs="$knobs CAMPAIGN_SHAPE=$SHAPE"
[ "$SERVERS" = 2 ] || knobs="$knobs CAMPAIGN_SERVERS=$SERVERS"
[ ${#EXTRA[@]} = 0 ] || knobs="$knobs CAMPAIGN_FAULTS=$(IFS=,; echo "${EXTRA[*]}")"
echo "campaign: seed=$SEED rounds=$ROUNDS (rounds $FIRST..$LAST) shape=$SHAPE servers=$SERVERS extra faults=${EXTRA[*]:-none}"
echo "# replay: $knobs CAMPAIGN_FIRST_ROUND=$FIRST CAMPAIGN_ROUNDS=$ROUNDS $0"

# small_state_fs NAME (TW_HOST_HOOK, for diskfull): put the host's state
# directory (which holds the map, the journal and the state) on a tmpfs of
# DISK_MB MB, keeping what th_host_create put there.
small_state_fs() {
	local d tmp
	d=$(th_dir "$1")/milter-alias
	mountpoint -q "$d" && umount -l "$d"
	tmp=$(mktemp -d "$TH_ROOT/.small.XXXXXX") || return 1
	cp -a "$d/." "$tmp/" &&
		mount -t tmpfs -o "size=${DISK_MB}m,mode=0755" cp-small "$d" &&
		cp -a "$tmp/." "$d/" && chown "$TH_DAEMON_USER:$TH_DAEMON_USER" "$d" || return 1
	rm -rf "$tmp"
}
# at exit, before lib.sh's cleanup removes the hosts: stop a flood still
# running, detach the small file systems
eval "_campaign_th_on_exit() $(declare -f _th_on_exit | tail -n +2)"
_th_on_exit() {
	local rc=$? h
	[ -z "${hostile_pid:-}" ] || { kill "$hostile_pid" 2>/dev/null; wait "$hostile_pid" 2>/dev/null; }
	if [ "${TH_KEEP:-0}" != 1 ]; then
		for h in "${HOSTS[@]}"; do
			mountpoint -q "$(th_dir "$h")/milter-alias" 2>/dev/null && umount -l "$(th_dir "$h")/milter-alias"
		done
	fi
	(exit $rc); _campaign_th_on_exit
}

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
th_pass "servers up: ${HOSTS[*]} ($(tw_elapsed) s)"
if has_extra hostile; then
	if ! th_net_create x "$XIP"; then
		th_fail "create the outside host x ($XIP)"; th_summary; exit 1
	fi
	TH_TRAP_HOSTS="$TH_TRAP_HOSTS x"
fi
hostile_pid=

work=$TH_ROOT/campaign
rm -rf "$work"; mkdir -p "$work"
ledger=$work/ledger.tsv
model=$work/model.json
: > "$ledger"; echo '{}' > "$model"

# Counters for the summary line.
n_req=0 n_2xx=0 n_4xx=0 n_5xx=0 n_none=0 n_faults=0 violations=0 rounds_done=0
fault_fired=0	# armed crash points that did kill their daemon
declare -A fault_kind=()
declare -A armed=()	# crash point a host's sync daemon runs with
for h in "${HOSTS[@]}"; do armed[$h]=''; done
hand_entries=()	# "HOST KEY" of this round's hand edits, checked after it

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
	for h in "${HOSTS[@]}"; do th_link_up "$h"; done
	if [ -n "$hostile_pid" ]; then kill "$hostile_pid" 2>/dev/null; wait "$hostile_pid" 2>/dev/null; hostile_pid=; fi
	for h in "${HOSTS[@]}"; do rm -f "$(th_dir "$h")/milter-alias/campaign-filler"; done
	for h in "${HOSTS[@]}"; do
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
	for h in "${HOSTS[@]}"; do
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
		tail -c +"$(( $2 + 1 ))" "$log" 2>/dev/null | grep -q -- "address=${3%@*}@" && return 0
		sleep 0.01
	done
	return 1
}

# host_index NAME : position of NAME in HOSTS.
host_index() { local i; for i in "${!HOSTS[@]}"; do [ "${HOSTS[$i]}" != "$1" ] || { echo "$i"; return; }; done; echo 0; }

# fill_disk HOST : fill HOST's state file system (diskfull) to the last
# byte with a filler file; the step frees it again.
fill_disk() {
	local f; f=$(th_dir "$1")/milter-alias/campaign-filler
	dd if=/dev/zero of="$f" bs=64k >/dev/null 2>&1
	tw_msg "round $round: $1's state file system full ($(df -h --output=used,avail "$(dirname "$f")" | tail -n1 | tr -s ' '))"
}

# hand_key STEP / hand_line STEP : the hand-written entry of this round's
# step STEP: key handR-S, two targets, the second on a continuation line.
hand_key() { echo "hand$round-$1"; }
hand_line() {
	if [ "$SHAPE" = aliases2 ]; then printf '%s:\talice@%s,\n\tbob@%s\n' "$(hand_key "$1")" "$TH_DOMAIN" "$TH_DOMAIN"
	else printf '%s@%s\talice@%s,\n\tbob@%s\n' "$(hand_key "$1")" "$TH_DOMAIN" "$TH_DOMAIN" "$TH_DOMAIN"; fi
}
# hand_edit HOST STEP : append the entry to HOST's map source, as an
# administrator with an editor would (no postmap: the daemon adopts it).
hand_edit() {
	hand_line "$2" >> "$(th_map_file "$1")"
	hand_entries+=("$1 $(hand_key "$2")")
}
# map_query HOST NAME : postmap -q for NAME on HOST: NAME@example.org in a
# virtual map, the local part in an aliases map.
map_query() {
	if [ "$SHAPE" = aliases2 ]; then tw_q "$1" "${2%@*}"; else tw_q "$1" "$2@$TH_DOMAIN"; fi
}
# map_logical HOST : HOST's map source as logical entries (continuation
# lines joined, white space squeezed), sorted.
map_logical() {
	"$TW_PY" -c '
import sys
ents = []
for line in open(sys.argv[1], errors="replace"):
    line = line.rstrip("\n")
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    if line[0] in " \t" and ents:
        ents[-1] += " " + line.strip()
    else:
        ents.append(line.strip())
for e in sorted(" ".join(e.split()) for e in ents):
    print(e)' "$(th_map_file "$1")" 2>&1
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
	# the further paths' draws, only when they are on (the default stream
	# stays what it was)
	if [ "$SERVERS" = 3 ]; then
		# which servers take the requests and which one is struck
		rnd 3; local rot=$R
		for i in "${!hosts[@]}"; do hosts[$i]=${HOSTS[$(( (rot + $(host_index "${hosts[$i]}")) % 3 ))]}; done
		rnd 3; fhost=${HOSTS[$R]}
	fi
	if [ "$SHAPE" = aliases2 ]; then
		# each request names its domain; the same local part in two
		# domains at once is one map key
		for i in "${!names[@]}"; do rnd 2; names[$i]=${names[$i]}@${DOMAINS[$R]}; done
	fi
	if [ ${#EXTRA[@]} -gt 0 ]; then
		# one step in three gets one of them instead of its drawn fault
		rnd 3; local xr=$R
		rnd ${#EXTRA[@]}
		[ "$xr" != 0 ] || fault=${EXTRA[$R]}
	fi
	local desc="step $step:"
	for i in "${!hosts[@]}"; do desc="$desc ${hosts[$i]}:${logins[$i]} '${verbs[$i]} ${names[$i]}'"; done
	[ "$fault" = none ] || desc="$desc + $fault on $fhost"
	case $fault in
		crash-point) desc="$desc ($fpoint)" ;;
		none|hostile) ;;
		*) if [ "$ftrigger" = log ]; then desc="$desc when its log names ${names[0]}"
		   else desc="$desc after ${fdelay}s"; fi ;;
	esac
	case $fault in
		link-cut) desc="$desc, up ${fhold}s after the requests" ;;
		diskfull) desc="$desc, freed ${fhold}s after the requests" ;;
		hostile) desc="$desc (from before the requests), until ${fhold}s after them" ;;
	esac
	echo "# round $round $desc"

	# a crash point is armed before the requests, which then run into it
	if [ "$fault" = crash-point ]; then
		if tw_restart_peer "$fhost" "$fpoint"; then armed[$fhost]=$fpoint
		else tw_msg "round $round: cannot restart $fhost with $fpoint"; fi
		fault_note crash-point
	fi
	# a flood on the peer port is on before the requests start
	if [ "$fault" = hostile ]; then
		ip netns exec "$(th_ns x)" "$TW_PY" "$HOLD" "$(tw_ip "$fhost")" "$TW_PORT" 64 600 0.2 \
			>>"$work/hostile.out" 2>&1 &
		hostile_pid=$!
		_th_poll 5 grep -q '^opened' "$work/hostile.out" || tw_msg "round $round: holdopen.py has not opened its connections yet"
		fault_note hostile
	fi
	mark=$(tw_log_mark "$(tw_peer_log "$fhost")")
	for i in "${!hosts[@]}"; do
		files+=("$work/r$round.s$step.$i")
		TH_SWAKS_OUT=${files[$i]} tw_request "${hosts[$i]}" "${logins[$i]}" \
			"${verbs[$i]} ${names[$i]}" >/dev/null 2>&1 &
		pids+=($!)
	done
	case $fault in
		kill-peer|kill-milter|restart-peer|link-cut|diskfull|handedit)
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
		diskfull)
			fill_disk "$fhost"; fault_note diskfull ;;
		handedit)
			hand_edit "$fhost" "$step"; fault_note handedit ;;
	esac
	wait "${pids[@]}"
	for h in "${HOSTS[@]}"; do	# an armed crash point that fired: the daemon stays down until heal
		if [ -n "${armed[$h]}" ] && ! tw_peer_alive "$h"; then
			fault_fired=$((fault_fired + 1)); armed[$h]=''
		fi
	done
	for i in "${!hosts[@]}"; do
		record "$step" "${hosts[$i]}" "${logins[$i]}" "${verbs[$i]}" "${names[$i]}" "${files[$i]}"
	done
	case $fault in
		link-cut) sleep "$fhold"; th_link_up "$fhost" ;;
		diskfull) sleep "$fhold"; rm -f "$(th_dir "$fhost")/milter-alias/campaign-filler"
			tw_msg "round $round: $fhost freed; its sync daemon logged $(tw_log_since "$(tw_peer_log "$fhost")" "$mark" | grep -ci 'no space left') lines naming the full disk" ;;
		hostile) sleep "$fhold"; kill "$hostile_pid" 2>/dev/null; wait "$hostile_pid" 2>/dev/null
			hostile_pid= ;;
		handedit)	# the administrator makes the same edit on the other servers
			for h in $(tw_others "$fhost"); do hand_edit "$h" "$step"; done ;;
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
	local h lists=() want owner
	for n in "${HOSTS[@]}"; do
		[ "$(tw_in_doubt "$n")" = 0 ] || violation "$n still has changes in doubt after recovery"
	done
	for n in "${HOSTS[@]}"; do
		why=$(tw_verify "$n")
		[ "$why" = 0 ] || violation "maps differ: verify exit $why on $n: $(tw_ctl "$n" verify 2>&1 | head -n 3 | tr '\n' ' ')"
	done
	for n in "${HOSTS[@]:1}"; do
		[ "$(map_logical "${HOSTS[0]}")" = "$(map_logical "$n")" ] ||
			violation "maps differ: entries of ${HOSTS[0]} and $n: $(diff <(map_logical "${HOSTS[0]}") <(map_logical "$n") | head -n 6 | tr '\n' ' ')"
	done
	for h in "${HOSTS[@]}"; do
		tw_ctl "$h" list --json > "$work/list.$h.json" 2>/dev/null
		lists+=("$work/list.$h.json")
	done
	out=$("$TW_PY" "$MODEL_PY" ${MODEL_KEY:+--key "$MODEL_KEY"} "$round" "$model" "$ledger" "${lists[@]}" 2>&1)
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
	[ "$SHAPE" != aliases2 ] || names=$(printf '%s\n' $names | sed 's/@.*//' | sort -u)
	for n in $names; do
		qa=$(map_query "${HOSTS[0]}" "$n")
		st=$("$TW_PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); v=m.get(sys.argv[2]); print("%s %s" % (v[0], v[1]) if v else "absent -")' "$model" "$n")
		for h in "${HOSTS[@]:1}"; do
			qb=$(map_query "$h" "$n")
			[ "$qa" = "$qb" ] || violation "$n: postmap -q differs: ${HOSTS[0]}='$qa' $h='$qb' (state $st)"
		done
		owner=${st#* }; owner=${owner%%|*}	# aliases2: the model's owner is LOGIN|DOMAIN
		if [ "${st%% *}" = active ] && [ "$qa" != "$owner@$TH_DOMAIN" ]; then
			violation "$n: active for $owner but resolves to '$qa'"
		elif [ "${st%% *}" = absent ] && [ -n "$qa" ]; then
			violation "$n: absent but resolves to '$qa'"
		fi
	done
	# hand edits of the round: still in every file, and resolving to both
	# targets (the continuation line too)
	want="alice@$TH_DOMAIN,bob@$TH_DOMAIN"
	for n in "${hand_entries[@]}"; do
		h=${n%% *} n=${n#* }
		grep -qE "^${n}[@:[:space:]]" "$(th_map_file "$h")" ||
			violation "hand edit $n on $h: no longer in the map source"
		if [ "$SHAPE" = aliases2 ]; then qa=$(tw_q "$h" "$n"); else qa=$(tw_q "$h" "$n@$TH_DOMAIN"); fi
		[ "${qa//[[:space:]]/}" = "$want" ] ||
			violation "hand edit $n on $h: postmap -q gives '$qa', not '$want'"
	done
}

for round in $(seq "$FIRST" "$LAST"); do
	t0=$EPOCHREALTIME
	# the round's own stream: the same requests and faults whatever
	# the rounds before did
	RANDOM=$(( (SEED * 1000003 + round) % 2147483647 ))
	fresh=0 round_bad=0 hand_entries=()
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
