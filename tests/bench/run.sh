#!/bin/bash
# tests/bench/run.sh -- make bench: the six measurements (a)-(f) of RESULTS.md.
# Run as root on a machine set up for tests/run-all.sh (Postfix, Dovecot,
# swaks, smtp-source).  Figures, not pass/fail: it prints one table with
# each target and "met" / "not met (why)".  Knobs (environment):
#   BENCH_ROUNDS=3 BENCH_MSGS=1000 BENCH_PROCS=20   (a)(b)
#   BENCH_LAT_N=30 BENCH_LAT_GAP=1                  (c)(d) requests per point,
#                                                   seconds between them
#   BENCH_SIZES="100 10000 100000"                  (d)(f)
#   BENCH_CONNS=500                                 (f)
#   BENCH_RAPID=1000 BENCH_PAR=4                    (e)
#   BENCH_DELAY_MS=40                               (c) proxy, per direction
#   BENCH_ONLY=standalone|pair                      run one half
#   BENCH_OUT=/var/tmp/milter-alias-bench-out       logs and raw figures
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "bench: must run as root" >&2; exit 1; }
OUT=${BENCH_OUT:-/var/tmp/milter-alias-bench-out}; export BENCH_OUT=$OUT
mkdir -p "$OUT"; : > "$OUT/results"
echo "bench: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%d MB", $2/1024}' /proc/meminfo), $(postconf -d -h mail_version 2>/dev/null | sed 's/^/Postfix /'), $(uname -r); started $(date -u +%FT%TZ)"
# run a snapshot of the binaries, so that a rebuild during the run cannot
# change or break them
B=$OUT/bin; TOP=${top_builddir:-$(cd "$HERE/../.." && pwd)}
mkdir -p "$B/milter" "$B/peer" "$B/tests/bench"
for f in milter/milter-alias peer/milter-alias-peer peer/milter-aliasctl tests/bench/noop-milter; do
    [ -x "$TOP/$f" ] || { echo "bench: $TOP/$f is not built (make all tests/bench/noop-milter)" >&2; exit 1; }
    cp "$TOP/$f" "$B/$f"
done
export top_builddir=$B
t0=$SECONDS
for part in standalone pair; do
    [ -n "${BENCH_ONLY:-}" ] && [ "$BENCH_ONLY" != "$part" ] && continue
    bash "$HERE/bench-$part.sh" 2> >(tee -a "$OUT/$part.err" >&2) | tee -a "$OUT/results" | grep -v '^RESULT|' || :
done
echo
echo "make bench: results ($((SECONDS - t0)) s; raw figures and logs in $OUT)"
printf '%-4s %-62s %-70s %-16s %s\n' id measurement value target verdict
grep '^RESULT|' "$OUT/results" | while IFS='|' read -r _ id m v t verdict; do
    printf '%-4s %-62s %-70s %-16s %s\n' "$id" "$m" "$v" "$t" "$verdict"
done
