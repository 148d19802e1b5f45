#!/bin/bash
# run.sh [SECONDS] - build the libFuzzer targets with clang and run each one
# for SECONDS (default 60), one after the other.
#
# Each target compiles the project's sources directly (not the gcc-built
# libraries) with -fsanitize=fuzzer,address,undefined.  The seed corpus of
# tests/fuzz/corpus/TARGET is copied to a scratch directory first, so the
# tree is never modified.  Prints, per target, the executions, the final
# coverage (cov: and ft: of libFuzzer's last status line) and the crashes,
# then "N passed, M failed".  A target passes if it ran at least 1000
# inputs, found no crash, leak, timeout or out-of-memory, and none of the
# known crash inputs saved in tests/fuzz/crashes/TARGET (replayed before
# fuzzing) fails any more.  Without clang or libFuzzer every target fails:
# nothing is skipped.
#
# Environment:
#   FUZZ_BUILDDIR  build and scratch directory [tests/fuzz/build]
#   FUZZ_CONFIG_H  directory holding the configure-generated config.h
#                  (the top of the build tree) [the top of the source tree]
#   FUZZ_TARGETS   targets to run [request map wire ctl conf]
#   FUZZ_NICE      niceness of the fuzzers [19]
#   FUZZ_KEEP_GOING=1  for long campaigns: keep fuzzing after a crash
#                  (libFuzzer -fork=1 -ignore_crashes=1 ...) and count the
#                  distinct crashes; the verdict is the same
#   FUZZ_FLAGS     more libFuzzer options for every target (e.g. -only_ascii=1)
#   CLANG          compiler [clang]
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=${1:-60}
builddir=${FUZZ_BUILDDIR:-$here/build}
confdir=${FUZZ_CONFIG_H:-$top}
targets=${FUZZ_TARGETS:-request map wire ctl conf}
nice=${FUZZ_NICE:-19}
keep_going=${FUZZ_KEEP_GOING:-0}
read -r -a extra <<<"${FUZZ_FLAGS:-}"
cc=${CLANG:-clang}
min_execs=1000

case $secs in
''|*[!0-9]*|0) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

# Sources (relative to the top) and -max_len of each target.
sources() {
	case $1 in
	request) echo common/request.c common/util.c ;;
	map)     echo common/aliasmap.c common/fsutil.c common/msg.c common/request.c common/util.c ;;
	wire)    echo common/msg.c common/aliasmap.c common/fsutil.c common/request.c common/util.c ;;
	ctl)     echo common/ctlproto.c common/msg.c common/conf.c common/aliasmap.c common/fsutil.c common/request.c common/util.c ;;
	conf)    echo common/conf.c common/fsutil.c common/request.c common/util.c ;;
	esac
}
max_len() {
	case $1 in
	request) echo 1200 ;;	# above REQUEST_SUBJECT_MAX (998)
	ctl)     echo 2048 ;;
	*)       echo 4096 ;;
	esac
}

ntargets=$(wc -w <<<"$targets")
fail_all() {
	echo "fuzz: $*" >&2
	echo "0 passed, $ntargets failed"
	exit 1
}

command -v "$cc" >/dev/null 2>&1 ||
	fail_all "$cc not found: install clang and libclang-rt-14-dev (contrib/install-deps.sh)"
[ -f "$confdir/config.h" ] ||
	fail_all "no config.h in $confdir: run ./configure first (or set FUZZ_CONFIG_H)"
pkg=$(pkg-config --cflags --libs libconfuse gnutls 2>&1) ||
	fail_all "pkg-config libconfuse gnutls: $pkg"

mkdir -p "$builddir" || fail_all "cannot create $builddir"
# libFuzzer itself: a target that cannot link -fsanitize=fuzzer fails here
# with the compiler's message rather than 5 times over.
probe=$builddir/probe
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >"$probe.log" 2>&1; then
	cat "$probe.log" >&2
	fail_all "$cc cannot build a libFuzzer binary (package libclang-rt-14-dev missing?)"
fi

cflags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=all -Wall -Wextra -Wno-unused-parameter
	-I$confdir -I$top/common -I$top/peer -I$here"
pkg_cflags=$(pkg-config --cflags libconfuse gnutls)
pkg_libs="$(pkg-config --libs libconfuse gnutls) -lpthread"

# The fuzzers report leaks and UB as crashes; keep ASan's defaults otherwise.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# signature - one line naming what failed, from a fuzzer's output: the
# postcondition (with the first words of its message, numbers and quoted
# text left out) or the sanitizer's summary
signature() {
	awk '/postcondition failed/ { p = $0; getline m; sub(/^ +/, "", m)
			gsub(/"[^"]*"/, "\"...\"", m); gsub(/[0-9]+/, "N", m)
			sub(/^.*\/tests\/fuzz\//, "", p); print p " -- " substr(m, 1, 70); exit }
	     /runtime error|SUMMARY: [A-Za-z]+Sanitizer|ERROR: libFuzzer: (fuzz target exited|timeout|out-of-memory)/ {
			sub(/^.*\/(common|peer|tests\/fuzz)\//, ""); gsub(/0x[0-9a-f]+/, ""); print; exit }'
}

passed=0
failed=0
total_execs=0
printf '%-8s %12s %8s %8s %8s  %s\n' target execs cov ft crashes result
for t in $targets; do
	bin=$builddir/fuzz_$t
	work=$builddir/work/$t
	log=$builddir/fuzz_$t.log
	srcs=()
	for s in $(sources "$t"); do srcs+=("$top/$s"); done
	if [ ${#srcs[@]} -eq 0 ] || [ ! -f "$here/fuzz_$t.c" ]; then
		printf '%-8s %12s %8s %8s %8s  %s\n' "$t" - - - - "FAIL (unknown target)"
		failed=$((failed + 1))
		continue
	fi
	# shellcheck disable=SC2086
	if ! nice -n "$nice" "$cc" $cflags $pkg_cflags -o "$bin" "$here/fuzz_$t.c" "${srcs[@]}" \
		$pkg_libs >"$builddir/build_$t.log" 2>&1; then
		printf '%-8s %12s %8s %8s %8s  %s\n' "$t" - - - - "FAIL (build; see $builddir/build_$t.log)"
		sed -n 1,20p "$builddir/build_$t.log"
		failed=$((failed + 1))
		continue
	fi
	rm -rf "$work"
	mkdir -p "$work/corpus" "$work/artifacts"
	if [ -d "$here/corpus/$t" ]; then
		cp "$here/corpus/$t/"* "$work/corpus/" 2>/dev/null
	fi
	# Known crash inputs (tests/fuzz/crashes/TARGET) are replayed first:
	# each one that still fails fails the target, whatever fuzzing finds.
	known=0
	still=0
	replay=""
	for c in "$here/crashes/$t/"*; do
		[ -f "$c" ] || continue
		case $c in *.md) continue ;; esac
		known=$((known + 1))
		if ! (cd "$work" && timeout 60 nice -n "$nice" "$bin" -timeout=10 \
			-rss_limit_mb=2048 "$c") >"$work/replay.log" 2>&1; then
			still=$((still + 1))
			replay+="known crash ${c#"$top"/} still fails: $(signature <"$work/replay.log")"$'\n'
		fi
	done
	dict=()
	[ -f "$here/dict/$t.dict" ] && dict=(-dict="$here/dict/$t.dict")
	mode=()
	[ "$keep_going" = 1 ] && mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
	(cd "$work" && nice -n "$nice" "$bin" "${mode[@]}" \
		-max_total_time="$secs" -max_len="$(max_len "$t")" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "${dict[@]}" "${extra[@]}" \
		"$work/corpus") >"$log" 2>&1
	rc=$?
	# Status lines: "#N  NEW cov: C ft: F ..." or, forked, "#N: cov: C ft: F ...".
	stat=$(grep -a -E '^#[0-9]+:?[[:space:]].*cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
	cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$stat")
	ft=$(sed -E 's/.* ft: ([0-9]+).*/\1/' <<<"$stat")
	if [ "$keep_going" = 1 ]; then
		execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$stat")
		# Forked status lines count coverage another way: measure the
		# final corpus (merged by the jobs) as a plain run reports it.
		stat=$(cd "$work" && nice -n "$nice" "$bin" -runs=0 -max_len="$(max_len "$t")" \
			"$work/corpus" 2>&1 | grep -a -E '^#[0-9]+[[:space:]]+INITED.* cov: ' | tail -n 1)
		cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$stat")
		ft=$(sed -E 's/.* ft: ([0-9]+).*/\1/' <<<"$stat")
	else
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
		[ -z "$execs" ] && [ -n "$stat" ] && execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$stat")
	fi
	execs=${execs:-0}
	ncrash=$(find "$work/artifacts" -type f | wc -l)
	total_execs=$((total_execs + execs))
	why=""
	[ "$rc" -ne 0 ] && why="exit status $rc"
	[ "$ncrash" -gt 0 ] && why="${why:+$why, }$ncrash crash/leak/timeout file(s)"
	[ "$execs" -lt "$min_execs" ] && why="${why:+$why, }fewer than $min_execs executions"
	[ "$still" -gt 0 ] && why="${why:+$why, }$still of $known known crash input(s) still fail"
	if [ -z "$why" ]; then
		result=ok
		passed=$((passed + 1))
	else
		result="FAIL ($why)"
		failed=$((failed + 1))
	fi
	printf '%-8s %12s %8s %8s %8s  %s\n' "$t" "$execs" "${cov:--}" "${ft:--}" "$ncrash" "$result"
	printf '%s' "$replay"
	if [ -n "$why" ] && { [ "$ncrash" -gt 0 ] || [ "$rc" -ne 0 ]; }; then
		echo "--- $t: $log"
		grep -a -E -m 1 -A 12 'postcondition failed|runtime error|==[0-9]+==ERROR|ERROR: libFuzzer' "$log" |
			grep -a -v -E '^ +#[0-9]+ 0x' | head -n 20
		# One line per distinct crash: what failed, and its smallest input.
		for a in "$work/artifacts/"*; do
			[ -f "$a" ] || continue
			sig=$(cd "$work" && timeout 60 nice -n "$nice" "$bin" -timeout=10 \
				-rss_limit_mb=2048 "$a" 2>&1 | signature)
			printf '%s\t%s\t%s\n' "${sig:-(does not reproduce)}" "$(stat -c %s "$a")" "$a"
		done | sort -t "$(printf '\t')" -k1,1 -k2,2n | awk -F '\t' '
			$1 != last { n++; printf "crash %d: %s\n  smallest input (%d bytes): %s\n", n, $1, $2, $3; last = $1 }
			END { printf "%s: %d distinct crash(es)\n", "'"$t"'", n }'
	fi
done
echo "fuzz: $total_execs executions in all, $secs s per target"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
