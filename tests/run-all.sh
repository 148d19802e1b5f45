#!/bin/bash
# run-all.sh - the whole test suite, from a fresh Debian 12 machine.
#
# Layers, as the README's "Testing against reality" lists them:
#   1. build with -Werror; tests/check_layers.py: no include or call cycle
#   2. make check: Criterion unit tests, milter protocol and CLI tests
#   3. real Postfix + Dovecot, one host, in a network namespace (root)
#   4. two synchronised hosts, with fault injection and races
#   5. the .deb in a clean debootstrap root booted with systemd
#  5b. the .deb on two pairs of servers as administrators build them
#      (Debian's stock Postfix; ISPmail with MariaDB and SQLite maps)
#  5c. the arm64 .deb (cross-built), in a clean bookworm arm64 root under
#      qemu-user: unit tests as arm64 binaries, a mixed arm64/amd64 pair
#   6. fuzzing (libFuzzer, each target FUZZ_SECONDS, default 45)
#   7. ASan+UBSan make check, valgrind, hostile inputs
#   8. make distcheck
# A layer that cannot run fails: nothing is skipped silently.  The last line
# counts test cases over all layers: "total: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
logdir=$top/tests/logs
mkdir -p "$logdir"

passed=0
failed=0
layer_fail=()

say() { printf '\n=== %s\n' "$*"; }

# count LOG - add the "N passed, M failed" line of a test log to the totals
count() {
	local line p f
	line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		echo "no result line in $1" >&2
		failed=$((failed + 1))
		return 1
	fi
	p=$(sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
	f=$(sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed, ([0-9]+) failed.*/\3/' <<<"$line")
	passed=$((passed + p))
	failed=$((failed + f))
}

if [ "$(id -u)" -ne 0 ]; then
	echo "run-all.sh: the real-Postfix layers need root (network namespaces," >&2
	echo "Postfix instances); run it with sudo." >&2
	exit 1
fi
if [ "${MILTER_ALIAS_SKIP_DEPS:-}" != 1 ]; then
	contrib/install-deps.sh || exit 1
fi

say "layer 1: build (-Wall -Wextra -Werror)"
if ! { autoreconf -fi && ./configure -q CFLAGS="-O2 -g -Werror" &&
       make -j"$(nproc)"; } >"$logdir/build.log" 2>&1; then
	tail -n 40 "$logdir/build.log"
	echo "build failed; see $logdir/build.log"
	echo "total: 0 passed, 1 failed"
	exit 1
fi
echo "build ok"
# The modules call and include only downwards (no cycle, the sync
# daemon's layers in order): read from the objects just built.
if /usr/bin/python3 tests/check_layers.py >"$logdir/layers.log" 2>&1; then
	echo "layers: $(tail -n 1 "$logdir/layers.log")"
else
	layer_fail+=("layers")
	cat "$logdir/layers.log"
fi
count "$logdir/layers.log"

say "layer 2: unit and milter protocol tests (make check)"
if make -j"$(nproc)" check >"$logdir/check.log" 2>&1; then
	echo "make check ok"
else
	layer_fail+=("make check")
	grep -E '^(FAIL|ERROR|XPASS)' "$logdir/check.log" || tail -n 30 "$logdir/check.log"
fi
# Criterion: "Synthesis: Tested: N | Passing: P | Failing: F | Crashing: C"
for log in tests/unit/*.log; do
	[ -e "$log" ] || continue
	s=$(grep -E 'Synthesis: Tested' "$log" | tail -n 1)
	if [ -z "$s" ]; then
		echo "no Criterion synthesis in $log"; failed=$((failed + 1)); continue
	fi
	p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$s")
	f=$(sed -E 's/.*Failing: ([0-9]+).*Crashing: ([0-9]+).*/\1+\2/' <<<"$s")
	passed=$((passed + p)); failed=$((failed + f))
	echo "$(basename "$log" .log): $s"
done
for log in tests/milter/*.log; do
	[ -e "$log" ] || continue
	case "$log" in */test-suite.log) continue ;; esac
	count "$log" && echo "$(basename "$log" .log): $(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)"
done

# run_test NAME CMD... - run one test script, its output to $logdir/NAME.log;
# a failure is reported with the log's tail; its "N passed, M failed" line
# goes into the totals either way
run_test() {
	local name=$1; shift
	if "$@" >"$logdir/$name.log" 2>&1; then
		echo "$name: ok"
	else
		layer_fail+=("$name")
		echo "$name: FAILED (tail of $logdir/$name.log follows)"
		tail -n 30 "$logdir/$name.log"
	fi
	count "$logdir/$name.log" &&
		grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$logdir/$name.log" | tail -n 1
}

say "layer 3: real Postfix + Dovecot in a network namespace"
for t in tests/postfix/test_*.sh; do
	run_test "$(basename "$t" .sh)" "$t"
done

say "layer 4: two synchronised hosts: faults, link cuts, races"
for t in tests/twohost/test_*.sh; do
	run_test "twohost_$(basename "$t" .sh)" "$t"
done

say "layer 5: the Debian package, installed into a clean Debian root booted with systemd"
for t in tests/package/test_*.sh; do
	run_test "package_$(basename "$t" .sh)" "$t"
	grep -E '^total time: ' "$logdir/package_$(basename "$t" .sh).log" | tail -n 1
done

say "layer 5b: the .deb on mail servers as administrators build them (two booted pairs)"
run_test servers_test_servers tests/servers/test_servers.sh
grep -E '^total time: ' "$logdir/servers_test_servers.log" | tail -n 1

say "layer 5c: the arm64 package in a clean bookworm arm64 root (qemu-user), mixed with amd64"
for t in tests/arm64/test_*.sh; do
	run_test "arm64_$(basename "$t" .sh)" "$t"
	grep -E '^total time: ' "$logdir/arm64_$(basename "$t" .sh).log" | tail -n 1
done

say "layer 6: libFuzzer targets, ${FUZZ_SECONDS:-45} s each (tests/fuzz/run.sh)"
run_test fuzz tests/fuzz/run.sh "${FUZZ_SECONDS:-45}"

say "layer 7: ASan+UBSan make check, valgrind, hostile inputs (tests/hostile)"
# ASAN_POSTFIX=1 also runs test_standalone.sh on the ASan daemons (+2 min)
for t in asan valgrind test_peer; do
	run_test "hostile_$t" env ASAN_POSTFIX="${ASAN_POSTFIX:-0}" "tests/hostile/$t.sh"
done

say "layer 8: make distcheck"
if make distcheck >"$logdir/distcheck.log" 2>&1; then
	echo "distcheck ok"
	passed=$((passed + 1))
else
	layer_fail+=("distcheck")
	failed=$((failed + 1))
	tail -n 30 "$logdir/distcheck.log"
fi

say "summary"
if [ ${#layer_fail[@]} -gt 0 ]; then
	echo "failed: ${layer_fail[*]}"
	[ "$failed" -gt 0 ] || failed=${#layer_fail[@]}
fi
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#layer_fail[@]} -eq 0 ]
