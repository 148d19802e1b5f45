# contrib/: what an administrator installs or runs beside the programs.
examplesdir = $(docdir)/examples
dist_examples_DATA = contrib/milter-alias.conf
EXTRA_DIST += contrib/install-deps.sh contrib/demo.sh
