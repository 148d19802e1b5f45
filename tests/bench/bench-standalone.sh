#!/bin/bash
# tests/bench/bench-standalone.sh -- measurements (a) (b) (c)-standalone (d) (f) of RESULTS.md
# on one real Postfix+Dovecot host (tests/postfix/lib.sh) in namespace mb-a,
# root /var/tmp/milter-alias-bench.  Prints RESULT| lines (see common.sh).
# Knobs: BENCH_ROUNDS (3) BENCH_MSGS (1000 per run) BENCH_PROCS (20)
#        BENCH_LAT_N (30 requests per latency run)
#        BENCH_SIZES ("100 10000 100000") BENCH_CONNS (500)
set -u
. "$(dirname "$0")/common.sh"
export TH_ROOT=${BENCH_ROOT:-/var/tmp/milter-alias-bench} TH_NS_PREFIX=${BENCH_NS:-mb-}
. "$BENCH_DIR/../postfix/lib.sh"
ROUNDS=${BENCH_ROUNDS:-3} MSGS=${BENCH_MSGS:-1000} PROCS=${BENCH_PROCS:-20}
LAT_N=${BENCH_LAT_N:-30} SIZES=${BENCH_SIZES:-100 10000 100000} CONNS=${BENCH_CONNS:-500}
MILTER=$BTOP/milter/milter-alias PEER=$BTOP/peer/milter-alias-peer CTL=$BTOP/peer/milter-aliasctl
NOOP=$BTOP/tests/bench/noop-milter

th_require_root || exit 1
th_init "$TH_ROOT" "$TH_NS_PREFIX" || exit 1
th_cleanup_trap a
th_host_create a 198.51.100.1 || exit 1
H=$(th_dir a) IP=198.51.100.1 CONF=$(th_conf_path a) MAP=$(th_map_file a)
th_write_conf a "max_aliases_per_user = 1000000" "max_requests_per_hour = 1000000" >/dev/null
# a sink: sink@example.org -> discard:, so delivery costs nothing
echo "sink@example.org sink@discard.example.test" >> "$H/postfix/virtual"
postmap -c "$H/postfix" "hash:$H/postfix/virtual"
th_postconf a "default_process_limit = 600" >/dev/null

start_peer() { PEER_PID=$(th_daemon a "$H/peer.log" "$PEER" -f -c "$CONF"); _th_poll 20 "$CTL" -c "$CONF" status >/dev/null 2>&1; }
start_peer
MILTER_PID=$(th_daemon a "$H/milter.log" "$MILTER" -f -c "$CONF")
th_wait_socket "$(th_milter_socket a)" || { bmsg "milter did not start"; tail "$H/milter.log" >&2; exit 1; }
NOOP_SOCK=unix:$H/run/noop.sock
NOOP_PID=$(th_daemon a "$H/noop.log" "$NOOP" "$NOOP_SOCK")
th_wait_socket "$NOOP_SOCK" || { bmsg "noop-milter did not start"; exit 1; }
th_host_start a || exit 1
OUT=${BENCH_OUT:-/var/tmp/milter-alias-bench-out}/standalone; mkdir -p "$OUT"
trap 'cp "$H"/*.log "$H"/lat.* "$OUT/" 2>/dev/null; _th_on_exit' EXIT
MS=$(th_milter_socket a)

# ------------------------------------------------------------ (a) (b) --
# configurations: N no milter; M milter on submission only (the deployment);
# MB milter on port 25 too (for unauthenticated CPU); F noop milter on both.
setcfg() {
    case $1 in
    N)  th_postconf a "mua_milters =" "smtpd_milters =" ;;
    M)  th_postconf a "mua_milters = $MS" "smtpd_milters =" ;;
    MB) th_postconf a "mua_milters = $MS" "smtpd_milters = $MS" ;;
    F)  th_postconf a "mua_milters = $NOOP_SOCK" "smtpd_milters = $NOOP_SOCK" ;;
    esac
    th_reload a >/dev/null; sleep 1
}
run25() { # prints msgs/s
    local t0 t1
    t0=${EPOCHREALTIME}
    th_exec a nice -n 10 smtp-source -s "$PROCS" -m "$MSGS" -d -l 1024 -f bench@example.net \
        -t sink@example.org "$IP:25" >/dev/null 2>&1
    t1=${EPOCHREALTIME}
    calc "$MSGS/($t1-$t0)" 1
}
run587() {
    local out
    out=$(th_exec a $LOAD tput "$IP" 587 "$PROCS" "$MSGS" --auth alice:secret-alice) || bmsg "submission run had errors: $out"
    awk '{printf "%.1f", $1/$2}' <<<"$out"
}
declare -A R
bmsg "(a)(b): $ROUNDS interleaved rounds x 4 configurations, $MSGS msgs per run"
for r in $(seq "$ROUNDS"); do
    for cfg in N M MB F; do
        setcfg "$cfg"
        case $cfg in MB) pid=$MILTER_PID ;; F) pid=$NOOP_PID ;; *) pid=$MILTER_PID ;; esac
        c0=$(cpu_ticks "$pid"); v25=$(run25); c1=$(cpu_ticks "$pid")
        v587=$(run587); c2=$(cpu_ticks "$pid")
        R[$cfg,25]+="$v25 " R[$cfg,587]+="$v587 "
        R[$cfg,cpu25]+="$(( (c1-c0)*TICK_US/MSGS )) " R[$cfg,cpu587]+="$(( (c2-c1)*TICK_US/MSGS )) "
        # ratios of this round (N ran just before)
        if [ "$cfg" != N ]; then
            R[$cfg,r25]+="$(calc "$v25/${R[N,last25]}") " R[$cfg,r587]+="$(calc "$v587/${R[N,last587]}") "
        else R[N,last25]=$v25 R[N,last587]=$v587; fi
        bmsg "round $r $cfg: port25 $v25 msg/s, submission $v587 msg/s, cpu ticks $((c1-c0)) / $((c2-c1))"
    done
done
med() { tr ' ' '\n' <<<"${R[$1]}" | grep . | median; }
bmsg "medians msg/s: none 25=$(med N,25) 587=$(med N,587); milter 25=$(med M,25) 587=$(med M,587); noop 25=$(med F,25) 587=$(med F,587)"
r=$(med M,r25); v="ratio $r (median of $ROUNDS; $(med M,25) vs $(med N,25) msg/s)"
# port 25 runs the same configuration in N and M: any difference is noise
if le 0.90 "$r" && le "$r" 1.10; then result a1 "port 25 throughput, milter on submission only / none" "$v" "1.00" "met (identical port-25 path; deviation is run-to-run noise)"
else result a1 "port 25 throughput, milter on submission only / none" "$v" "1.00" "not met (outside +-10 %: noisy machine, rerun)"; fi
r=$(med M,r587); v="ratio $r ($(med M,587) vs $(med N,587) msg/s; noop floor $(med F,r587))"
if ge "$r" 0.90; then result a2 "submission (AUTH) throughput, milter / none" "$v" ">= 0.90" "met"
else result a2 "submission (AUTH) throughput, milter / none" "$v" ">= 0.90" "not met (noop floor keeps $(med F,r587))"; fi
for k in 25:unauthenticated:a3 587:authenticated:a4; do
    p=${k%%:*} rest=${k#*:} lab=${rest%%:*} id=${rest#*:}
    m=$(med MB,cpu$p) f=$(med F,cpu$p)
    x=$(awk -v m="$m" -v f="$f" 'BEGIN {if (f>0) printf "%.2f", m/f; else print "inf"}')
    v="$m us/msg vs floor $f us/msg = ${x}x"
    if [ "$x" != inf ] && le "$x" 1.1; then result "b${id#a}" "milter CPU per $lab message" "$v" "<= 1.1x floor" "met"
    else result "b${id#a}" "milter CPU per $lab message" "$v" "<= 1.1x floor" "not met (more callbacks/work than the floor)"; fi
done
setcfg M

# ------------------------------------------------------ (c) standalone --
lat() { # PREFIX COUNT -> file of "ms code"
    th_exec a $LOAD latency "$IP" 587 alice:secret-alice "$1" "$2" > "$H/lat.$1" 2>>"$H/lat.err"
    local bad; bad=$(awk '$2 != 250' "$H/lat.$1" | wc -l)
    [ "$bad" = 0 ] || bmsg "$bad of $2 requests $1 were not answered 250: $(awk '$2!=250 {print $2}' "$H/lat.$1" | sort | uniq -c | tr '\n' ' ')"
    printf '%s %s\n' "$(cut -d' ' -f1 "$H/lat.$1" | pctl 50)" "$(cut -d' ' -f1 "$H/lat.$1" | pctl 99)"
}
bmsg "(c) standalone: $LAT_N requests"
read -r p50 p99 < <(lat cs "$LAT_N")
result c1 "create latency, standalone (EOM -> 250)" "p50 $p50 ms, p99 $p99 ms" "(none)" "measured"

# ----------------------------------------------------------- (d) (f) --
declare -A P50
for n in $SIZES; do
    kill -TERM "$PEER_PID"; _th_poll 10 sh -c "! kill -0 $PEER_PID 2>/dev/null"
    rm -f "$H/milter-alias/journal" "$H/milter-alias/history"
    $PY "$BENCH_DIR/genmap.py" "$n" alice@example.org a.example.test > "$MAP"
    chown "$TH_DAEMON_USER:" "$MAP"
    runuser -u "$TH_DAEMON_USER" -- postmap -c "$H/postfix" "lmdb:$MAP"
    start_peer || { bmsg "peer did not start with $n aliases"; tail "$H/peer.log" >&2; }
    bmsg "(d) $n aliases ($(stat -c %s "$MAP") bytes): $LAT_N requests"
    read -r p50 p99 < <(lat "d$n" "$LAT_N")
    P50[$n]=$p50
    result "d" "create latency at $n aliases (standalone)" "p50 $p50 ms, p99 $p99 ms, map $(( $(stat -c %s "$MAP") / 1024 )) KiB" "" ""
done
first=${SIZES%% *} last=${SIZES##* }
x=$(calc "${P50[$last]}/${P50[$first]}" 2)
if le "$x" 1.5; then result d "p50($last) / p50($first)" "${x}x" "<= 1.5x" "met"
else result d "p50($last) / p50($first)" "${x}x" "<= 1.5x" "not met"; fi
hp=$(hwm_kb "$PEER_PID") hm=$(hwm_kb "$MILTER_PID")
result f1 "peak RSS milter-alias-peer at $last aliases" "$((hp/1024)) MB ($hp kB)" "<= 20 MB" "$( [ "$hp" -le 20480 ] && echo met || echo 'not met')"
result f2 "peak RSS milter-alias at $last aliases" "$((hm/1024)) MB ($hm kB)" "<= 20 MB" "$( [ "$hm" -le 20480 ] && echo met || echo 'not met')"
bmsg "(f) $CONNS concurrent milter connections"
th_exec a $PY "$BENCH_DIR/smtpload.py" milterconns "$MS" "$CONNS" 2 > "$H/conns.out" 2>&1 || bmsg "milterconns: $(tail -n 3 "$H/conns.out")"
hm=$(hwm_kb "$MILTER_PID") got=$(head -n 1 "$H/conns.out")
result f3 "peak RSS milter-alias, $CONNS concurrent connections (to MAIL, authenticated)" "$((hm/1024)) MB ($hm kB; $got connections held)" "<= 20 MB" "$( [ "$hm" -le 20480 ] && echo met || echo 'not met (one thread and its stack per connection, libmilter)')"
exit 0
