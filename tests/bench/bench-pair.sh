#!/bin/bash
# tests/bench/bench-pair.sh -- measurements (c) two servers and (e), on a
# synchronised pair (tests/twohost/lib2.sh, TW_SUITE=bench, namespaces mc-*,
# root /var/tmp/milter-alias-twohost-bench).  Prints RESULT| lines.
# Knobs: BENCH_LAT_N (30) BENCH_RAPID (1000 creates) BENCH_PAR (4 parallel
#        aliasctl per server) BENCH_DELAY_MS (40 per direction)
set -u
. "$(dirname "$0")/common.sh"
TW_SUITE=bench
export TH_NS_PREFIX=${BENCH_PAIR_NS:-mc-}
TW_CONF_EXTRA="max_aliases_per_user = 1000000
max_requests_per_hour = 1000000"
. "$BENCH_DIR/../twohost/lib2.sh"
LAT_N=${BENCH_LAT_N:-30} RAPID=${BENCH_RAPID:-1000} PAR=${BENCH_PAR:-4} DELAY=${BENCH_DELAY_MS:-40}
TW_COPY_BINARIES=0
tw_preflight || exit 1
OUT=${BENCH_OUT:-/var/tmp/milter-alias-bench-out}/pair; mkdir -p "$OUT"
save() { for n in a b; do cp "$(th_dir $n)"/*.log "$(th_dir $n)"/lat.* "$OUT/" 2>/dev/null
    for f in "$(th_dir $n)"/*.log; do cp "$f" "$OUT/$n-$(basename "$f")" 2>/dev/null; done; done; }
tw_setup || { bmsg "pair setup failed"; save; exit 1; }
trap 'save; _th_on_exit' EXIT

# quiet : wait (at most 60 s) until both Postfix queues are empty, so that
# a latency point does not share the machine with the confirmations of
# the point before
queues_empty() { local n; for n in a b; do
    th_exec "$n" postqueue -c "$(th_confdir "$n")" -p 2>/dev/null | grep -q 'Mail queue is empty' || return 1
    done; }
quiet() { _th_poll 60 queues_empty || bmsg "mail queues still busy after 60 s"; }
lat() { # HOST PREFIX COUNT -> "p50 p99"
    local h; h=$(th_dir "$1")
    th_exec "$1" $LOAD latency "$(tw_ip "$1")" 587 alice:secret-alice "$2" "$3" > "$h/lat.$2" 2>>"$h/lat.err"
    local bad; bad=$(awk '$2 != 250' "$h/lat.$2" | wc -l)
    [ "$bad" = 0 ] || bmsg "$bad of $3 requests $2 were not answered 250"
    printf '%s %s\n' "$(cut -d' ' -f1 "$h/lat.$2" | pctl 50)" "$(cut -d' ' -f1 "$h/lat.$2" | pctl 99)"
}
bmsg "(c) two servers on the namespace link: $LAT_N requests"
quiet
read -r p50 p99 < <(lat a pl "$LAT_N")
result c2 "create latency, two servers, direct link" "p50 $p50 ms, p99 $p99 ms" "(none)" "measured"

# ------------------------------------------------- (c) through a proxy --
bmsg "(c) two servers through a ${DELAY} ms/direction proxy: $LAT_N requests"
for n in a b; do
    o=$(tw_other "$n")
    th_daemon "$n" "$(th_dir "$n")/proxy.log" $PY "$BENCH_DIR/delayproxy.py" \
        "127.0.0.1:7466" "$(tw_ip "$o"):$TW_PORT" "$DELAY" > "$(th_dir "$n")/proxy.pid"
    sed -i "s/address = \"$(tw_ip "$o"):$TW_PORT\"/address = \"127.0.0.1:7466\"/" "$(tw_conf "$n")"
done
sleep 0.5
for n in a b; do tw_restart_peer "$n" || exit 1; done
tw_wait_recovered 30 || bmsg "pair not recovered through the proxy"
quiet
read -r p50 p99 < <(lat a px "$LAT_N")
lim=$(calc "2*$DELAY+25" 0)
v="p50 $p50 ms, p99 $p99 ms"
if le "$p50" "$lim"; then result c3 "create latency, two servers, ${DELAY}+${DELAY} ms proxy" "$v" "p50 <= $lim ms" "met"
else result c3 "create latency, two servers, ${DELAY}+${DELAY} ms proxy" "$v" "p50 <= $lim ms" "not met"; fi
tw_wait_converged 30 && bmsg "verify identical after the proxy run"
# back to the direct link for (e)
for n in a b; do
    kill "$(cat "$(th_dir "$n")/proxy.pid")" 2>/dev/null
    sed -i "s/address = \"127.0.0.1:7466\"/address = \"$(tw_ip "$(tw_other "$n")"):$TW_PORT\"/" "$(tw_conf "$n")"
done
for n in a b; do tw_restart_peer "$n" || exit 1; done
tw_wait_recovered 30 || bmsg "pair not recovered on the direct link"

# ------------------------------------------------------------------ (e) --
bmsg "(e) $RAPID creates, half on each server, $PAR parallel per server"
half=$((RAPID / 2))
t0=$EPOCHREALTIME
# each create is retried (up to 30 times, 0.2 s apart) when the daemon
# answers "try again later", as an SMTP client retries a 4xx
add1() { local i; for i in $(seq 30); do
    "$CTL" -c "$1" add "$2@example.org" --owner alice >/dev/null 2>&1 && { echo "ok $i"; return 0; }
    sleep 0.2; done; echo "fail $i"; }
export -f add1; export CTL
for n in a b; do
    seq 1 "$half" | sed "s/^/rf$n/" |
        xargs -P "$PAR" -I{} bash -c 'add1 "$0" "$1"' "$(tw_conf $n)" {} >"$OUT/rapid-$n.out" 2>&1 &
done
wait
t1=$EPOCHREALTIME
rate=$(calc "$((2*half))/($t1-$t0)" 1)
tw_wait_converged 60; va=$(tw_verify a) vb=$(tw_verify b)
ca=$(tw_map_entries a | wc -l) cb=$(tw_map_entries b | wc -l)
made=$(grep -c '^rf' <(tw_map_entries a) || :)
tries=$(cat "$OUT"/rapid-[ab].out | awk '{t+=$2; if ($2>1) r++} END {printf "%d attempts, %d creates needed a retry", t, r}')
v="$rate creates/s ($made of $((2*half)) in $(calc "$t1-$t0" 1) s); verify a=$va b=$vb; entries a=$ca b=$cb; $tries"
if [ "$va" = 0 ] && [ "$vb" = 0 ] && [ "$made" = $((2*half)) ]; then result e "rapid fire, $((2*half)) creates split over both" "$v" "verify identical" "met"
else result e "rapid fire, $((2*half)) creates split over both" "$v" "verify identical" "not met (see counts)"; fi

exit 0
