# shellcheck shell=bash
# tests/bench/common.sh -- helpers shared by the bench scripts.
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BTOP=${top_builddir:-$(cd "$BENCH_DIR/../.." && pwd)}
PY=/usr/bin/python3
LOAD="nice -n 10 $PY $BENCH_DIR/smtpload.py"
# (c)(d): seconds between two create requests, as a user sends them; the
# confirmations of one are then not competing for the CPU with the next
export BENCH_LAT_GAP=${BENCH_LAT_GAP:-1}
# cpu_ticks PID : utime+stime of the whole process (all threads), in ticks
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))
# hwm_kb PID : VmHWM in kB
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.4g\n", (a[NR/2]+a[NR/2+1])/2}'; }
# pctl P : P-th percentile (nearest rank) of the numbers on stdin
pctl() { sort -g | awk -v p="$1" '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} i=int(p/100*NR+0.999999); if (i<1) i=1; if (i>NR) i=NR; print a[i]}'; }
# result ID MEASUREMENT VALUE TARGET VERDICT : one line of the final table
result() { printf 'RESULT|%s|%s|%s|%s|%s\n' "$@"; }
# le A B / ge A B : float compare
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a+0 <= b+0)}'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a+0 >= b+0)}'; }
calc() { awk "BEGIN {printf \"%.${2:-3}f\", $1}"; }
bmsg() { printf 'bench: %s\n' "$*" >&2; }
