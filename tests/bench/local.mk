# tests/bench: make bench (issue 7) -- performance figures, not tests.
# Not part of "make check".  Run as root: tests/bench/run.sh.
EXTRA_PROGRAMS = tests/bench/noop-milter
tests_bench_noop_milter_SOURCES = tests/bench/noop-milter.c
tests_bench_noop_milter_CFLAGS = $(AM_CFLAGS) $(MILTER_CFLAGS)
tests_bench_noop_milter_LDADD = $(MILTER_LIBS)
CLEANFILES += tests/bench/noop-milter
EXTRA_DIST += \
	tests/bench/run.sh \
	tests/bench/bench-standalone.sh \
	tests/bench/bench-pair.sh \
	tests/bench/smtpload.py \
	tests/bench/delayproxy.py \
	tests/bench/genmap.py \
	tests/bench/common.sh \
	tests/bench/RESULTS.md

.PHONY: bench
bench: all tests/bench/noop-milter
	top_builddir=$(abs_top_builddir) $(SHELL) $(srcdir)/tests/bench/run.sh
