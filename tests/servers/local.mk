# tests/servers: the Debian package on two pairs of mail servers as
# administrators build them (Debian's stock Postfix; ISPmail with MariaDB
# and SQLite maps), booted with systemd.  Run as root by tests/run-all.sh
# (layer 5b).
EXTRA_DIST += \
	tests/servers/lib.sh \
	tests/servers/local.mk \
	tests/servers/test_servers.sh
