#!/bin/bash
# asan.sh - the whole "make check" suite (unit, milter protocol, cli tests)
# under AddressSanitizer + UndefinedBehaviorSanitizer.
# Configures a build in tests/hostile/build-asan/src (a copy of the sources;
# configure --enable-sanitizers), builds it, runs make check there with leak detection
# on and every UBSan finding fatal, and counts the automake summary.
# Then (root only, ASAN_POSTFIX=1, the default) runs the one-host real
# Postfix scenario tests/postfix/test_standalone.sh against the ASan
# daemons and greps their logs for sanitizer reports.
# Prints ok/FAIL lines and "N passed, M failed"; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$here/build-asan
CC=${CC:-gcc}
passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
summary() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ] && [ "$passed" -gt 0 ]; }

if [ "$(id -u)" != 0 ]; then
	fail "asan.sh must run as root (the cli and real-Postfix tests need it)"
	summary; exit 1
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs=${ASAN_JOBS:-2}

# The source tree is usually configured in place, which forbids a VPATH
# build from it ("source directory already configured"); so the build runs
# in a private copy of the sources (tracked and untracked, not ignored,
# files plus the generated autotools files), configured there.
mkdir -p "$build"
src=$build/src
if ! ( cd "$top" && { git ls-files -co --exclude-standard 2>/dev/null |
		grep -v '^tests/hostile/build-'; ls -d configure aclocal.m4 config.h.in Makefile.in build-aux m4 2>/dev/null; } |
		tar -cf - -T - ) | { mkdir -p "$src" && tar -xf - -C "$src"; }; then
	fail "copy the sources to $src"; summary; exit 1
fi
if [ ! -f "$src/configure" ]; then
	(cd "$src" && autoreconf -fi) >"$build/autoreconf.log" 2>&1 ||
		{ fail "autoreconf"; summary; exit 1; }
fi
if [ ! -f "$src/Makefile" ] || [ "$src/configure" -nt "$src/Makefile" ]; then
	if (cd "$src" && ./configure -q --enable-sanitizers CC="$CC") >"$build/configure.log" 2>&1; then
		ok "configure --enable-sanitizers CC=$CC (in tests/hostile/build-asan/src)"
	else
		tail -n 20 "$build/configure.log"; fail "configure --enable-sanitizers"; summary; exit 1
	fi
fi
if make -C "$src" -j"$jobs" >"$build/build.log" 2>&1; then
	ok "ASan+UBSan build"
else
	tail -n 30 "$build/build.log"; fail "ASan+UBSan build"; summary; exit 1
fi
grep -q -- '-fsanitize=address,undefined' "$src/Makefile" &&
	ok "build uses -fsanitize=address,undefined" ||
	fail "build uses -fsanitize=address,undefined (SAN_CFLAGS empty?)"

rc=0
make -C "$src" -j"$jobs" check >"$build/check.log" 2>&1 || rc=$?
# automake summary: "# PASS:  N" / "# FAIL:  M" / "# ERROR: E" ...
num() { grep -E "^# $1: +[0-9]+" "$build/check.log" | tail -n 1 | sed -E 's/.* ([0-9]+)$/\1/'; }
p=$(num PASS); f=$(num FAIL); e=$(num ERROR); x=$(num XPASS)
p=${p:-0}; f=${f:-0}; e=${e:-0}; x=${x:-0}
echo "make check under ASan+UBSan: PASS $p, FAIL $f, ERROR $e, XPASS $x (log: $build/check.log)"
if [ "$rc" = 0 ] && [ "$p" -gt 0 ] && [ $((f + e + x)) = 0 ]; then
	ok "make check under ASan+UBSan: $p test programs pass"
else
	grep -E '^(FAIL|ERROR|XPASS):' "$build/check.log"
	fail "make check under ASan+UBSan (status $rc; $f failed, $e errors)"
fi
sanlogs=$(grep -lE 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' \
	$(find "$src/tests" -name '*.log' 2>/dev/null) /dev/null 2>/dev/null)
if [ -z "$sanlogs" ]; then ok "no sanitizer report in any make check log"
else fail "sanitizer reports in: $sanlogs"; grep -hE -A20 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' $sanlogs | head -n 60; fi

# --- the ASan daemons through one real-Postfix scenario ------------------
if [ "${ASAN_POSTFIX:-1}" = 1 ]; then
	plog=$build/test_standalone.log
	root=/var/tmp/milter-alias-asan-standalone
	rc=0
	TH_ROOT=$root TH_NS_PREFIX=az- top_builddir=$src TH_KEEP=1 \
		timeout 600 "$top/tests/postfix/test_standalone.sh" >"$plog" 2>&1 || rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$plog" | tail -n 1)
	if [ "$rc" = 0 ]; then ok "test_standalone.sh with the ASan daemons: $line"
	else tail -n 30 "$plog"; fail "test_standalone.sh with the ASan daemons (status $rc): $line"; fi
	# stop the daemons (SIGTERM: LeakSanitizer reports at exit), then grep
	( export TH_ROOT=$root TH_NS_PREFIX=az-; . "$top/tests/postfix/lib.sh"
	  TH_SWITCH_NS=az-switch; th_host_stop a 8 ) >/dev/null 2>&1
	dl=$(find "$root" -maxdepth 2 \( -name 'peer.log' -o -name 'milter.log' \) 2>/dev/null)
	if [ -z "$dl" ]; then fail "no daemon logs found under $root"
	elif hits=$(grep -hE 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' $dl); then
		fail "sanitizer reports in the daemon logs:"; echo "$hits" | head -n 20
		grep -hE -A25 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' $dl | head -n 80
	else
		ok "no ASan/UBSan/LSan report in the daemon logs ($(echo $dl | wc -w) logs)"
	fi
	cp $dl "$build/" 2>/dev/null
	( export TH_ROOT=$root TH_NS_PREFIX=az-; . "$top/tests/postfix/lib.sh"
	  TH_SWITCH_NS=az-switch; th_destroy_all ) >/dev/null 2>&1
	rm -rf "$root"
fi
summary
