# tests/milter: milter protocol tests of the real milter-alias binary.
# milter-driver speaks the milter protocol as Postfix does; run.sh starts a
# standalone milter-alias-peer and milter-alias in a temporary directory and
# runs the *.script files through the driver (contract section 5).
check_PROGRAMS += tests/milter/milter-driver
tests_milter_milter_driver_SOURCES = tests/milter/milter-driver.c

TESTS += tests/milter/run.sh tests/milter/cli.sh tests/milter/journal-full.sh
EXTRA_DIST += \
	tests/milter/run.sh \
	tests/milter/cli.sh \
	tests/milter/journal-full.sh \
	tests/milter/standalone.sh \
	tests/milter/rcpt-stage.script \
	tests/milter/bad-requests.script \
	tests/milter/create.script \
	tests/milter/owner.script \
	tests/milter/quota.script \
	tests/milter/daemon-down.script \
	tests/milter/daemon-frozen.script \
	tests/milter/retry.script \
	tests/milter/restarted.script
