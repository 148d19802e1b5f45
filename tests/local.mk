# tests
EXTRA_DIST += tests/run-all.sh
include tests/milter/local.mk
include tests/unit/local.mk
include tests/twohost/local.mk
include tests/postfix/local.mk
