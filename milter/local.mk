# milter/: the milter, milter-alias(8).
noinst_LIBRARIES += milter/libfilter.a
milter_libfilter_a_CFLAGS = $(AM_CFLAGS) $(MILTER_CFLAGS)
milter_libfilter_a_SOURCES = milter/filter.c milter/filter.h

sbin_PROGRAMS += milter/milter-alias
milter_milter_alias_SOURCES = milter/main.c
milter_milter_alias_CFLAGS = $(AM_CFLAGS) $(MILTER_CFLAGS)
milter_milter_alias_LDADD = milter/libfilter.a $(COMMON_LIBS) $(MILTER_LIBS)
dist_man_MANS += milter/milter-alias.8
