#!/bin/sh
# install-deps.sh - install what milter-alias needs to build and test, from
# Debian's own packages.  Idempotent; run as root on Debian 12.
set -eu

PKGS="build-essential autoconf automake libtool pkg-config
      libmilter-dev libgnutls28-dev libconfuse-dev liblmdb-dev libcriterion-dev
      postfix postfix-lmdb postfix-sqlite sqlite3 dovecot-core swaks miltertest
      iproute2 procps psmisc python3 gnutls-bin
      libnet-ssleay-perl libio-socket-ssl-perl
      clang libclang-rt-14-dev
      dpkg-dev debhelper fakeroot lintian debootstrap systemd systemd-container
      qemu-user-static binfmt-support"

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: run as root (it calls apt-get)" >&2
	exit 1
fi
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

export DEBIAN_FRONTEND=noninteractive
# Postfix must not ask questions nor configure itself: the tests run their
# own instances, and postfix-setup is the only thing that edits Postfix.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
