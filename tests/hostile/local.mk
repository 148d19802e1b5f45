# tests/hostile: sanitizers, valgrind and hostile inputs at every boundary
# (issue 6).  Run as root by tests/run-all.sh; test_peer.sh uses
# tests/twohost/lib2.sh.  Results: tests/hostile/RESULTS.md.
EXTRA_DIST += \
	tests/hostile/RESULTS.md \
	tests/hostile/asan.sh \
	tests/hostile/hostile.py \
	tests/hostile/milterflood.py \
	tests/hostile/test_peer.sh \
	tests/hostile/valgrind.sh
