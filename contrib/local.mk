# contrib/: what an administrator installs or runs beside the programs.
examplesdir = $(docdir)/examples
dist_examples_DATA = contrib/milter-alias.conf
EXTRA_DIST += contrib/install-deps.sh contrib/demo.sh

# systemd units, made from their .in files here (configure does not touch
# them, so make's $(sbindir) is the one installed into), Dovecot style.
unit_files = contrib/milter-alias.service contrib/milter-alias-peer.service
EXTRA_DIST += contrib/milter-alias.service.in contrib/milter-alias-peer.service.in
CLEANFILES += $(unit_files)
if HAVE_SYSTEMD
systemdsystemunit_DATA = $(unit_files)
else
noinst_DATA = $(unit_files)
endif

edit_unit = sed \
	-e 's|@sbindir[@]|$(sbindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@localstatedir[@]|$(localstatedir)|g' \
	-e 's|@config_file[@]|$(config_file)|g' \
	-e 's|@POSTFIX_GROUP[@]|$(POSTFIX_GROUP)|g'

contrib/milter-alias.service: $(srcdir)/contrib/milter-alias.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib && \
	$(edit_unit) $(srcdir)/contrib/milter-alias.service.in >$@.tmp && mv $@.tmp $@
contrib/milter-alias-peer.service: $(srcdir)/contrib/milter-alias-peer.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib && \
	$(edit_unit) $(srcdir)/contrib/milter-alias-peer.service.in >$@.tmp && mv $@.tmp $@

# Debian packaging (debian/), so that the release tarball builds the .deb
# (tests/package/test_install.sh does exactly that).
EXTRA_DIST += \
	debian/changelog \
	debian/control \
	debian/copyright \
	debian/rules \
	debian/source/format \
	debian/install \
	debian/docs \
	debian/milter-alias.postinst \
	debian/milter-alias.postrm \
	debian/milter-alias.prerm \
	debian/milter-alias.lintian-overrides
