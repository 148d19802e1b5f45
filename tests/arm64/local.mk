# tests/arm64: the arm64 .deb cross-built for Debian 12, installed into a
# clean bookworm arm64 root run under qemu-user, its unit tests run there
# as arm64 binaries, and an arm64 server peered with an amd64 one (issue
# 14).  Run as root by tests/run-all.sh.
EXTRA_DIST += \
	tests/arm64/local.mk \
	tests/arm64/test_arm64.sh
