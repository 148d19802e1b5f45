# common/: shared code, linked into every program as a convenience library.
noinst_LIBRARIES += common/libcommon.a
common_libcommon_a_CFLAGS = $(AM_CFLAGS) $(CONFUSE_CFLAGS) $(GNUTLS_CFLAGS)
common_libcommon_a_SOURCES = \
	common/aliasmap.c common/aliasmap.h \
	common/conf.c common/conf.h \
	common/crashpoint.c common/crashpoint.h \
	common/daemon.c common/daemon.h \
	common/ctlproto.c common/ctlproto.h \
	common/ctlsock.c common/ctlsock.h \
	common/fsutil.c common/fsutil.h \
	common/log.c common/log.h \
	common/msg.c common/msg.h \
	common/pftool.c common/pftool.h \
	common/privs.c common/privs.h \
	common/replies.h \
	common/request.c common/request.h \
	common/run.c common/run.h \
	common/util.c common/util.h

COMMON_LIBS = common/libcommon.a $(CONFUSE_LIBS) $(GNUTLS_LIBS) $(PTHREAD_LIBS)
dist_man_MANS += common/milter-alias.conf.5
