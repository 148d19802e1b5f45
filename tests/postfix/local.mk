# tests/postfix: real Postfix + Dovecot hosts in network namespaces (run by
# tests/run-all.sh as root, not by make check).
EXTRA_DIST += tests/postfix/lib.sh tests/postfix/test_harness.sh \
	tests/postfix/test_setup.sh tests/postfix/test_standalone.sh \
	tests/postfix/test_maps.sh
