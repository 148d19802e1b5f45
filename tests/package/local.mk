# tests/package: the Debian package built, checked by lintian, installed
# into a clean Debian root booted with systemd, used, and purged (testing.md
# layer 5).  Run as root by tests/run-all.sh.
EXTRA_DIST += \
	tests/package/local.mk \
	tests/package/mailconf.sh \
	tests/package/test_install.sh
