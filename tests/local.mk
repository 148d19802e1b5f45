# tests
EXTRA_DIST += tests/run-all.sh tests/check_layers.py
include tests/milter/local.mk
include tests/unit/local.mk
include tests/twohost/local.mk
include tests/fuzz/local.mk
include tests/postfix/local.mk
include tests/bench/local.mk
include tests/hostile/local.mk
include tests/package/local.mk
include tests/servers/local.mk
include tests/arm64/local.mk
