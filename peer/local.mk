# peer/: the sync daemon milter-alias-peer(8) and its client milter-aliasctl(8).
noinst_LIBRARIES += peer/libpeer.a
peer_libpeer_a_CFLAGS = $(AM_CFLAGS) $(GNUTLS_CFLAGS) $(LMDB_CFLAGS)
peer_libpeer_a_SOURCES = \
	peer/commit.c peer/commit.h \
	peer/ctlserver.c peer/ctlserver.h \
	peer/engine-private.h \
	peer/engine.c peer/engine.h \
	peer/journal.c peer/journal.h \
	peer/lmdbmap.c peer/lmdbmap.h \
	peer/mapstate.c peer/mapstate.h \
	peer/notify.c peer/notify.h \
	peer/sync.c peer/sync.h \
	peer/peers.c peer/peers.h \
	peer/postfix.c peer/postfix.h \
	peer/tls.c peer/tls.h

sbin_PROGRAMS += peer/milter-alias-peer
peer_milter_alias_peer_SOURCES = peer/main.c
peer_milter_alias_peer_LDADD = peer/libpeer.a $(COMMON_LIBS) $(LMDB_LIBS)

sbin_PROGRAMS += peer/milter-aliasctl
# postfix-setup is the CLI's alone: not in the daemon's library.
peer_milter_aliasctl_SOURCES = peer/aliasctl.c \
	peer/setup.c peer/setup.h peer/setup-private.h \
	peer/setup-look.c peer/setup-plan.c peer/setup-apply.c peer/setup-report.c \
	peer/setup-state.c
peer_milter_aliasctl_CFLAGS = $(AM_CFLAGS) $(GNUTLS_CFLAGS)
peer_milter_aliasctl_LDADD = peer/libpeer.a $(COMMON_LIBS) $(LMDB_LIBS)
dist_man_MANS += peer/milter-alias-peer.8 peer/milter-aliasctl.8
