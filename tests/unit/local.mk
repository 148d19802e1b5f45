# tests/unit: Criterion unit tests for the modules in common/.
if HAVE_CRITERION
UNIT_TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(CONFUSE_CFLAGS) $(GNUTLS_CFLAGS)
UNIT_TEST_LDADD = $(COMMON_LIBS) $(CRITERION_LIBS)

check_PROGRAMS += \
	tests/unit/test_util \
	tests/unit/test_msg \
	tests/unit/test_ctlproto \
	tests/unit/test_request \
	tests/unit/test_conf \
	tests/unit/test_aliasmap \
	tests/unit/test_fsutil \
	tests/unit/test_pftool
TESTS += \
	tests/unit/test_util \
	tests/unit/test_msg \
	tests/unit/test_ctlproto \
	tests/unit/test_request \
	tests/unit/test_conf \
	tests/unit/test_aliasmap \
	tests/unit/test_fsutil \
	tests/unit/test_pftool

tests_unit_test_util_SOURCES = tests/unit/test_util.c tests/unit/unit.h
tests_unit_test_util_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_util_LDADD = $(UNIT_TEST_LDADD)

tests_unit_test_msg_SOURCES = tests/unit/test_msg.c tests/unit/unit.h
tests_unit_test_msg_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_msg_LDADD = $(UNIT_TEST_LDADD)

tests_unit_test_ctlproto_SOURCES = tests/unit/test_ctlproto.c tests/unit/unit.h
tests_unit_test_ctlproto_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_ctlproto_LDADD = $(UNIT_TEST_LDADD)

tests_unit_test_request_SOURCES = tests/unit/test_request.c tests/unit/unit.h
tests_unit_test_request_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_request_LDADD = $(UNIT_TEST_LDADD)

tests_unit_test_conf_SOURCES = tests/unit/test_conf.c tests/unit/unit.h
tests_unit_test_conf_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_conf_LDADD = $(UNIT_TEST_LDADD)

tests_unit_test_aliasmap_SOURCES = tests/unit/test_aliasmap.c tests/unit/unit.h
tests_unit_test_aliasmap_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_aliasmap_LDADD = $(UNIT_TEST_LDADD)

tests_unit_test_fsutil_SOURCES = tests/unit/test_fsutil.c tests/unit/unit.h
tests_unit_test_fsutil_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_fsutil_LDFLAGS = -Wl,--wrap=rename
tests_unit_test_fsutil_LDADD = $(UNIT_TEST_LDADD)

tests_unit_test_pftool_SOURCES = tests/unit/test_pftool.c tests/unit/unit.h
tests_unit_test_pftool_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_pftool_LDADD = $(UNIT_TEST_LDADD)
endif

# peer/tls.c (GnuTLS).  One test uses certtool (gnutls-bin) and skips
# itself when it is missing.
if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_tls
TESTS += tests/unit/test_tls
tests_unit_test_tls_SOURCES = tests/unit/test_tls.c tests/unit/unit.h
tests_unit_test_tls_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/peer
tests_unit_test_tls_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_tls_LDADD = peer/libpeer.a $(UNIT_TEST_LDADD)
endif

# peer/peers.c: the listener's admission rules and its limit on log lines
# (pure functions).
if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_peers
TESTS += tests/unit/test_peers
tests_unit_test_peers_SOURCES = tests/unit/test_peers.c tests/unit/unit.h
tests_unit_test_peers_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/peer
tests_unit_test_peers_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_peers_LDADD = peer/libpeer.a $(UNIT_TEST_LDADD)
endif

# peer/lmdbmap.c (LMDB), checked with Postfix's postmap; skips itself
# without postmap and postfix-lmdb.
if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_lmdbmap
TESTS += tests/unit/test_lmdbmap
tests_unit_test_lmdbmap_SOURCES = tests/unit/test_lmdbmap.c tests/unit/unit.h
tests_unit_test_lmdbmap_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/peer
tests_unit_test_lmdbmap_CFLAGS = $(UNIT_TEST_CFLAGS) $(LMDB_CFLAGS)
tests_unit_test_lmdbmap_LDADD = peer/libpeer.a $(UNIT_TEST_LDADD) $(LMDB_LIBS)
endif

# peer/journal.c: failed appends cut off, torn tails at start-up, the
# directory fsync'd.  The wrappers count directory fsyncs and fail
# ftruncate on demand.
if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_journal
TESTS += tests/unit/test_journal
tests_unit_test_journal_SOURCES = tests/unit/test_journal.c tests/unit/unit.h
tests_unit_test_journal_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/peer
tests_unit_test_journal_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_journal_LDFLAGS = -Wl,--wrap=fsync,--wrap=ftruncate
tests_unit_test_journal_LDADD = peer/libpeer.a $(UNIT_TEST_LDADD)
endif

# peer/commit.c: the commit protocol between two or three engines in one
# process, over fake_peers.c instead of peer/peers.c (no sockets, no TLS,
# no root).  fake_peers.o comes before libpeer.a, so the linker never
# pulls peers.o out of it.  Skips itself without postmap and postfix-lmdb.
if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_commit
TESTS += tests/unit/test_commit
tests_unit_test_commit_SOURCES = tests/unit/test_commit.c tests/unit/unit.h \
	tests/unit/fake_peers.c tests/unit/fake_peers.h
tests_unit_test_commit_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/peer
tests_unit_test_commit_CFLAGS = $(UNIT_TEST_CFLAGS)
# A slow or failing fdatasync on demand (decide_acknowledged_only_when_durable).
tests_unit_test_commit_LDFLAGS = -Wl,--wrap=fdatasync,--wrap=rename
tests_unit_test_commit_LDADD = peer/libpeer.a $(UNIT_TEST_LDADD) $(LMDB_LIBS)
endif

# peer/notify.c: the composed mails (no sendmail run) and the kept
# confirmations.
if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_notify
TESTS += tests/unit/test_notify
tests_unit_test_notify_SOURCES = tests/unit/test_notify.c tests/unit/unit.h
tests_unit_test_notify_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/peer
tests_unit_test_notify_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_notify_LDADD = peer/libpeer.a $(UNIT_TEST_LDADD) $(LMDB_LIBS)
endif
