#!/bin/bash
# test_servers.sh - the .deb on mail servers as administrators build them
# (the README's test layer 5b, and its "Installing on a real mail server",
# whose steps this test performs).  Run as root; it fails, never skips.
#
# Two pairs of Debian 12 roots booted with systemd-nspawn, each in its own
# network namespace, linked by one bridge in a namespace of its own
# (198.51.100.0/24, TEST-NET-2; the test's mail client sits on the bridge at
# .1, an outside client as far as the servers know):
#
#  pair A  a1, a2: Debian's stock Postfix as debconf's "Internet Site" makes
#          it (example.org in mydestination, local delivery to /var/mail,
#          alias_maps = hash:/etc/aliases, smtpd chrooted), local users
#          alice and bob, Dovecot SASL (passdb pam) on private/auth, the
#          submission service of Debian's master.cf uncommented;
#          milter-alias with map_format = "aliases".
#  pair B  b1 (MariaDB, postfix-mysql) and b2 (SQLite, postfix-sqlite), set
#          up after the ISPmail guide for bookworm: virtual domains,
#          mailboxes and aliases in SQL maps whose .cf files are
#          root:postfix 0640, Dovecot LMTP delivery to /var/vmail, Dovecot
#          SASL with an SQL passdb (login = full address), submission with
#          STARTTLS required and reject_sender_login_mismatch, postscreen on
#          port 25; milter-alias with the default map_format "virtual".
#
# In each pair, in this order: (1) prove the mail setup works without
# milter-alias; (2) install the .deb with apt-get, configure it as the
# README tells an administrator, postfix-setup (report, --apply), status;
# (3) create an alias by mail, see it resolve and deliver on both servers,
# one confirmation per server; (4) an address that already has a home is
# refused; (5) send as the alias; (6) request-address variants; (7) reboot;
# (8) undo postfix-setup as the README says, remove, purge, with ordinary
# mail after each step.
#
# Prepared roots (debootstrap + packages + mail setup) are cached as
# tarballs in $MA_PKGTEST_CACHE (srv-FLAVOR-SUITE-HASH.tar, made again after
# 7 days or when the preparation code changes); every run unpacks fresh
# copies.  Output: "ok   - ..." / "FAIL - ..." lines, timings, and
# "N passed, M failed".
#
# Environment:
#   MA_SRVTEST_WORK   work directory, emptied first (/var/tmp/milter-alias-srvtest)
#   MA_PKGTEST_CACHE  cache shared with test_install.sh (/var/cache/milter-alias-tests)
#   MA_PKGTEST_REFRESH=1  prepare the roots (and debootstrap) again
#   MA_SRVTEST_DEB=FILE   test this .deb instead of building one (debugging)
#   MA_SRVTEST_PAIRS="A B" which pairs to run (both by default; a pair left
#                     out is reported as a FAIL, so CI never runs fewer)
#   MA_SRVTEST_KEEP=1 leave the work directory (containers are stopped)
set -uo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
PY=/usr/bin/python3
T0=$(date +%s)
# shellcheck source=lib.sh
. "$here/lib.sh"

WORK=${MA_SRVTEST_WORK:-/var/tmp/milter-alias-srvtest}
CACHE=${MA_PKGTEST_CACHE:-/var/cache/milter-alias-tests}
PAIRS=${MA_SRVTEST_PAIRS:-A B}
NET=198.51.100
CLIENT=$NET.1
BRNS=ma-srv-br
declare -A IP=([a1]=$NET.11 [a2]=$NET.12 [b1]=$NET.21 [b2]=$NET.22)
declare -A FLAVOR=([a1]=stock [a2]=stock [b1]=mysql [b2]=sqlite)
DOMAIN=example.org
REQ=makealias@$DOMAIN
MAP=/var/lib/milter-alias/aliases
CONF=/etc/milter-alias/milter-alias.conf
fqdn() { echo "$1.$DOMAIN"; }
rootof() { echo "$WORK/$1/root"; }

# ---------------------------------------------------------------- cleanup --
ALL_NS="$BRNS ma-srv-a1 ma-srv-a2 ma-srv-b1 ma-srv-b2"
cleanup() {
	local n p
	for n in "${!CT_PID[@]}"; do ct_stop "$n"; done
	for p in $(root_pids "$WORK"); do kill -KILL "$p" 2>/dev/null; done
	umount_all "$WORK"
	for n in $ALL_NS; do ip netns del "$n" 2>/dev/null; done
	if [ "${MA_SRVTEST_KEEP:-0}" != 1 ] && [ -d "$WORK" ]; then
		if [ -n "$(mounts_under "$WORK")" ]; then
			echo "not removing $WORK: still mounted" >&2
		else
			rm -rf --one-file-system "$WORK"
		fi
	fi
}

# -------------------------------------------------------------- preflight --
step "preflight"
[ "$(id -u)" = 0 ] || fatal "must run as root (debootstrap, chroot, systemd-nspawn, ip netns)"
missing=
for c in make dpkg-buildpackage debootstrap systemd-nspawn nsenter ip swaks "$PY" tar flock; do
	command -v "$c" >/dev/null || missing="$missing $c"
done
perl -MNet::SSLeay -MIO::Socket::SSL -e 1 2>/dev/null || missing="$missing perl-TLS(libnet-ssleay-perl,libio-socket-ssl-perl)"
[ -z "$missing" ] || fatal "missing:$missing (contrib/install-deps.sh installs them)"
[ -f "$top/Makefile" ] || fatal "$top is not configured (autoreconf -fi && ./configure)"
ma_release_and_mirror
echo "release $SUITE, mirror $MIRROR, work $WORK, cache $CACHE, pairs: $PAIRS"
mkdir -p "$CACHE/apt-archives/partial" || fatal "cannot create $CACHE"
# The cache (apt archive, tarballs) is shared with test_install.sh: one at a time.
exec 9>"$CACHE/.lock"
flock -w 900 9 || fatal "$CACHE/.lock is held by another run for 15 minutes"
trap cleanup EXIT
trap 'exit 130' INT TERM
for n in a1 a2 b1 b2; do kill_nspawn_of "$(rootof $n)"; done
if [ -d "$WORK" ]; then
	for p in $(root_pids "$WORK"); do kill -KILL "$p" 2>/dev/null; done
	sleep 0.2
	umount_all "$WORK"
	[ -z "$(mounts_under "$WORK")" ] || fatal "$WORK still has mounts"
	rm -rf --one-file-system "$WORK"
fi
for n in $ALL_NS; do ip netns del "$n" 2>/dev/null; done
mkdir -p "$WORK/build" "$WORK/out" || fatal "cannot create $WORK"
for p in A B; do
	case " $PAIRS " in *" $p "*) ;; *) fail "pair $p not run (MA_SRVTEST_PAIRS=$PAIRS)" ;; esac
done
lap preflight

# ------------------------------------------------------------------ build --
step "build the .deb (make dist, dpkg-buildpackage; make check ran in layers 2 and 5)"
if [ -n "${MA_SRVTEST_DEB:-}" ]; then
	cp "$MA_SRVTEST_DEB" "$WORK/build/" || fatal "cannot copy $MA_SRVTEST_DEB"
	DEB=$WORK/build/$(basename "$MA_SRVTEST_DEB")
	echo "testing given $DEB (MA_SRVTEST_DEB): no build"
else
	DEB_BUILD_OPTIONS=nocheck ma_build_deb "$top" "$WORK/build"
fi
echo "package: $DEB ($(git -C "$top" describe --always --dirty 2>/dev/null))"
DEB_IN=/var/tmp/pkg/$(basename "$DEB")
lap build

# ----------------------------------------------------- prepared root cache --
# What every flavor gets from the mirror (no recommends, like the roots of
# test_install.sh; nothing else is installed later).
PKGS_COMMON="systemd postfix dovecot-core ssl-cert"
PKGS_stock=""
PKGS_mysql="mariadb-server postfix-mysql dovecot-mysql dovecot-lmtpd"
PKGS_sqlite="sqlite3 postfix-sqlite dovecot-sqlite dovecot-lmtpd"

# prep_debconf ROOT MAILNAME DESTINATIONS : the answers to Postfix's
# debconf questions, "Internet Site"
prep_debconf() {
	ma_in_root "$1" debconf-set-selections <<EOF
postfix postfix/main_mailer_type select Internet Site
postfix postfix/mailname string $2
postfix postfix/destinations string $3
postfix postfix/recipient_delim string +
EOF
}

# prep_stock ROOT : pair A.  Debian's Internet Site Postfix for example.org
# with local delivery; Dovecot SASL after Postfix's SASL_README ("Dovecot
# SASL") and Debian's dovecot-core (passdb pam, the auth socket in
# Postfix's queue directory); the submission service of Debian's master.cf
# uncommented; smtpd_sasl_type/path in main.cf.  One existing alias in
# /etc/aliases (sales -> alice).
prep_stock() {
	local r=$1
	ma_in_root "$r" useradd -m -s /bin/bash alice &&
	ma_in_root "$r" useradd -m -s /bin/bash bob &&
	printf 'alice:secret-alice\nbob:secret-bob\n' | ma_in_root "$r" chpasswd &&
	printf 'sales: alice\n' >>"$r/etc/aliases" && ma_in_root "$r" newaliases &&
	cat >"$r/etc/dovecot/local.conf" <<'EOF'
# SASL for Postfix (Postfix SASL_README, "Dovecot SASL")
auth_mechanisms = plain login
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
	[ $? = 0 ] &&
	ma_in_root "$r" postconf -e smtpd_sasl_type=dovecot smtpd_sasl_path=private/auth &&
	# uncomment Debian's submission block (its explanatory comments stay)
	sed -i -E '/^#submission inet/,/^#  -o milter_macro_daemon_name/ s/^#(submission |  -o )/\1/' \
		"$r/etc/postfix/master.cf"
}

# prep_ispmail ROOT DB : pair B, after the ISPmail guide for bookworm, with
# DB = mysql (MariaDB) or sqlite (Mail-in-a-Box style database file)
prep_ispmail() {
	local r=$1 db=$2 t m q pw_a pw_b
	ma_in_root "$r" groupadd -g 5000 vmail &&
	ma_in_root "$r" useradd -g vmail -u 5000 -d /var/vmail -m -s /usr/sbin/nologin vmail || return 1
	pw_a=$(ma_in_root "$r" doveadm pw -s BLF-CRYPT -p secret-alice) &&
	pw_b=$(ma_in_root "$r" doveadm pw -s BLF-CRYPT -p secret-bob) || return 1
	# the schema and rows of the guide
	cat >"$r/root/mailserver.sql" <<EOF
CREATE TABLE virtual_domains (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);
CREATE TABLE virtual_users (id INTEGER PRIMARY KEY, domain_id INTEGER NOT NULL,
  email VARCHAR(100) NOT NULL UNIQUE, password VARCHAR(150) NOT NULL,
  quota BIGINT NOT NULL DEFAULT 0,
  FOREIGN KEY (domain_id) REFERENCES virtual_domains(id) ON DELETE CASCADE);
CREATE TABLE virtual_aliases (id INTEGER PRIMARY KEY, domain_id INTEGER NOT NULL,
  source VARCHAR(100) NOT NULL, destination VARCHAR(100) NOT NULL,
  FOREIGN KEY (domain_id) REFERENCES virtual_domains(id) ON DELETE CASCADE);
INSERT INTO virtual_domains (id, name) VALUES (1, 'example.org');
INSERT INTO virtual_users (domain_id, email, password) VALUES
  (1, 'alice@example.org', '$pw_a'), (1, 'bob@example.org', '$pw_b');
INSERT INTO virtual_aliases (domain_id, source, destination) VALUES
  (1, 'info@example.org', 'alice@example.org');
EOF
	case $db in
	mysql)
		# applied after boot (MariaDB must run): mailserver.sql, then the
		# read-only user Postfix and Dovecot connect as
		{ echo "CREATE DATABASE mailserver; USE mailserver;"
		  sed 's/INTEGER PRIMARY KEY/INT AUTO_INCREMENT PRIMARY KEY/' "$r/root/mailserver.sql"
		  echo "CREATE USER 'mailserver'@'127.0.0.1' IDENTIFIED BY 'db-secret';"
		  echo "GRANT SELECT ON mailserver.* TO 'mailserver'@'127.0.0.1';"
		} >"$r/root/mailserver-mysql.sql" || return 1
		m="user = mailserver
password = db-secret
hosts = 127.0.0.1
dbname = mailserver"
		;;
	sqlite)
		mkdir -p "$r/var/lib/mailserver" &&
		ma_in_root "$r" sqlite3 /var/lib/mailserver/mail.sqlite <"$r/root/mailserver.sql" &&
		ma_in_root "$r" chgrp postfix /var/lib/mailserver/mail.sqlite &&
		chmod 0640 "$r/var/lib/mailserver/mail.sqlite" || return 1
		m="dbpath = /var/lib/mailserver/mail.sqlite"
		;;
	esac
	for t in virtual-mailbox-domains virtual-mailbox-maps virtual-alias-maps email2email; do
		case $t in
		virtual-mailbox-domains) q="SELECT 1 FROM virtual_domains WHERE name='%s'" ;;
		virtual-mailbox-maps) q="SELECT 1 FROM virtual_users WHERE email='%s'" ;;
		virtual-alias-maps) q="SELECT destination FROM virtual_aliases WHERE source='%s'" ;;
		email2email) q="SELECT email FROM virtual_users WHERE email='%s'" ;;
		esac
		printf '%s\nquery = %s\n' "$m" "$q" >"$r/etc/postfix/$db-$t.cf" || return 1
	done
	ma_in_root "$r" sh -c "chgrp postfix /etc/postfix/$db-*.cf && chmod u=rw,g=r,o= /etc/postfix/$db-*.cf" &&
	ma_in_root "$r" postconf -e \
		"virtual_mailbox_domains=$db:/etc/postfix/$db-virtual-mailbox-domains.cf" \
		"virtual_mailbox_maps=$db:/etc/postfix/$db-virtual-mailbox-maps.cf" \
		"virtual_alias_maps=$db:/etc/postfix/$db-virtual-alias-maps.cf,$db:/etc/postfix/$db-email2email.cf" \
		"virtual_transport=lmtp:unix:private/dovecot-lmtp" \
		"smtpd_sasl_type=dovecot" "smtpd_sasl_path=private/auth" "smtpd_sasl_auth_enable=yes" \
		"smtpd_tls_security_level=may" "smtpd_tls_auth_only=yes" \
		"smtpd_sender_login_maps=$db:/etc/postfix/$db-email2email.cf" \
		"postscreen_access_list=permit_mynetworks" \
		"postscreen_greet_action=enforce" "postscreen_dnsbl_action=enforce" \
		"postscreen_dnsbl_sites=zen.spamhaus.org*3 bl.mailspike.net b.barracudacentral.org*2" \
		"postscreen_dnsbl_threshold=3" || return 1
	# master.cf: postscreen in front of port 25, Debian's commented lines
	sed -i -E -e 's/^smtp( +inet .* smtpd)$/#smtp\1/' \
		-e 's/^#(smtp +inet .* postscreen)$/\1/' -e 's/^#(smtpd +pass .*)$/\1/' \
		-e 's/^#(dnsblog +unix .*)$/\1/' -e 's/^#(tlsproxy +unix .*)$/\1/' \
		-e '/^#submission inet/,/^#  -o milter_macro_daemon_name/ s/^#(submission |  -o )/\1/' \
		"$r/etc/postfix/master.cf" &&
	ma_in_root "$r" postconf -P \
		'submission/inet/smtpd_sender_restrictions=reject_sender_login_mismatch,permit_sasl_authenticated,reject' \
		'submission/inet/smtpd_recipient_restrictions=reject_non_fqdn_recipient,reject_unknown_recipient_domain,permit_sasl_authenticated,reject' \
		'submission/inet/smtpd_relay_restrictions=permit_sasl_authenticated,reject' || return 1
	# Dovecot: SQL passdb, mails under /var/vmail, LMTP and auth sockets
	# in Postfix's queue directory
	sed -i -e 's/^!include auth-system.conf.ext/#&/' -e 's/^#!include auth-sql.conf.ext/!include auth-sql.conf.ext/' \
		"$r/etc/dovecot/conf.d/10-auth.conf" || return 1
	grep -q '^!include auth-sql.conf.ext' "$r/etc/dovecot/conf.d/10-auth.conf" || return 1
	case $db in
	mysql) echo "connect = host=127.0.0.1 dbname=mailserver user=mailserver password=db-secret" ;;
	sqlite) echo "connect = /var/lib/mailserver/mail.sqlite" ;;
	esac >"$r/etc/dovecot/dovecot-sql.conf.ext.new"
	cat >>"$r/etc/dovecot/dovecot-sql.conf.ext.new" <<EOF
driver = $db
default_pass_scheme = BLF-CRYPT
password_query = SELECT email AS user, password FROM virtual_users WHERE email='%u'
user_query = SELECT email AS user, 'vmail' AS uid, 'vmail' AS gid, '/var/vmail/%d/%n' AS home FROM virtual_users WHERE email='%u'
iterate_query = SELECT email AS user FROM virtual_users
EOF
	mv "$r/etc/dovecot/dovecot-sql.conf.ext.new" "$r/etc/dovecot/dovecot-sql.conf.ext" &&
	chmod 0640 "$r/etc/dovecot/dovecot-sql.conf.ext" &&
	cat >"$r/etc/dovecot/local.conf" <<'EOF'
# ISPmail: mail under /var/vmail, delivery by LMTP from Postfix, SASL for Postfix
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    mode = 0600
    user = postfix
    group = postfix
  }
}
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
}

# prep_hash FLAVOR : identifies the preparation code and package lists; a
# change makes a new tarball
prep_hash() {
	{ declare -f prep_debconf prep_stock prep_ispmail prepare_root; echo "$PKGS_COMMON"
	  eval "echo \"\$PKGS_$1\""; echo "$SUITE $MIRROR"; } | md5sum | cut -c1-10
}

# prepare_root FLAVOR DIR : a fresh root of that flavor in DIR
prepare_root() {
	local fl=$1 r=$2 pk
	mkdir -p "$r" && tar -C "$r" -xf "$BASE_TAR" || return 1
	mount -t proc proc "$r/proc" &&
	mount --bind "$CACHE/apt-archives" "$r/var/cache/apt/archives" || return 1
	cp /etc/resolv.conf "$r/etc/resolv.conf"
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		cp /etc/apt/sources.list.d/debian.sources "$r/etc/apt/sources.list.d/"
		: >"$r/etc/apt/sources.list"
	fi
	echo force-unsafe-io >"$r/etc/dpkg/dpkg.cfg.d/ma-srvtest-unsafe-io"
	# no daemon may start inside a chroot (it would run in this machine's network)
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"; chmod 755 "$r/usr/sbin/policy-rc.d"
	# the preparing machine's name must not end up in main.cf
	echo "mail.$DOMAIN" >"$r/etc/hostname"
	case $fl in
	stock) prep_debconf "$r" "$DOMAIN" "\$myhostname, $DOMAIN, localhost.localdomain, localhost" ;;
	*) prep_debconf "$r" "mail.$DOMAIN" "\$myhostname, localhost.localdomain, localhost" ;;
	esac || return 1
	eval "pk=\"$PKGS_COMMON \$PKGS_$fl\""
	# shellcheck disable=SC2086
	ma_in_root "$r" apt-get update -q &&
	ma_in_root "$r" apt-get install -y -q --no-install-recommends $pk || return 1
	umount "$r/var/cache/apt/archives" || return 1
	case $fl in
	stock) prep_stock "$r" ;;
	*) prep_ispmail "$r" "$fl" ;;
	esac || return 1
	# Debian's postinst leaves recipient_delimiter empty when the debconf
	# answer was preseeded: the administrator sets it (step 6 needs it)
	[ -n "$(ma_in_root "$r" postconf -h recipient_delimiter)" ] ||
		ma_in_root "$r" postconf -e recipient_delimiter=+ || return 1
	rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/dpkg/dpkg.cfg.d/ma-srvtest-unsafe-io"
	echo "nameserver 127.0.0.1" >"$r/etc/resolv.conf"
	umount_all "$r"
}

step "prepared roots (cached in $CACHE)"
ma_debootstrap_tar "$CACHE" "$WORK"
declare -A ROOT_TAR=()
flavors=
case " $PAIRS " in *" A "*) flavors="stock" ;; esac
case " $PAIRS " in *" B "*) flavors="$flavors mysql sqlite" ;; esac
for fl in $flavors; do
	h=$(prep_hash "$fl")
	tarf=$CACHE/srv-$fl-$SUITE-$h.tar
	ROOT_TAR[$fl]=$tarf
	if [ "${MA_PKGTEST_REFRESH:-0}" != 1 ] && [ -s "$tarf" ] &&
	   [ -z "$(find "$tarf" -mtime +7)" ] && [ "$tarf" -nt "$BASE_TAR" ]; then
		echo "cached prepared root: $tarf ($(date -r "$tarf" '+%F %T'))"
		continue
	fi
	echo "preparing the $fl root (not cached)"
	t=$(date +%s)
	if prepare_root "$fl" "$WORK/prep-$fl" >"$WORK/prep-$fl.log" 2>&1; then
		rm -f "$CACHE"/srv-"$fl"-"$SUITE"-*.tar
		tar -C "$WORK/prep-$fl" -cf "$tarf.new" . && mv "$tarf.new" "$tarf" || fatal "caching $tarf"
		pass "the $fl root prepared in $(( $(date +%s) - t )) s, cached as $tarf"
	else
		umount_all "$WORK/prep-$fl"
		tail -n 30 "$WORK/prep-$fl.log"; fatal "preparing the $fl root (log: $WORK/prep-$fl.log)"
	fi
	rm -rf --one-file-system "$WORK/prep-$fl"
	lap "prepare-$fl-uncached"
done
lap prepared-roots

# ------------------------------------------------------------------ network --
# One bridge in a namespace of its own; a veth pair from it into each
# server's namespace.  The test's client (swaks) runs in the bridge's
# namespace at $CLIENT.
ip netns add $BRNS && ip -n $BRNS link set lo up &&
ip -n $BRNS link add br0 type bridge && ip -n $BRNS link set br0 up &&
ip -n $BRNS addr add "$CLIENT/24" dev br0 || fatal "bridge namespace $BRNS"
# net_add N : namespace ma-srv-N, eth0 with IP[N], its other end on br0
net_add() {
	local n=$1
	ip netns add "ma-srv-$n" && ip -n "ma-srv-$n" link set lo up &&
	ip link add "ve-$n" netns $BRNS type veth peer name eth0 netns "ma-srv-$n" &&
	ip -n $BRNS link set "ve-$n" master br0 && ip -n $BRNS link set "ve-$n" up &&
	ip -n "ma-srv-$n" addr add "${IP[$n]}/24" dev eth0 && ip -n "ma-srv-$n" link set eth0 up
}

# --------------------------------------------------------------- servers --
# setup_server N PEER : N's root from its flavor's tarball, its name, the
# pair's names in /etc/hosts, the package's dependencies downloaded
setup_server() {
	local n=$1 peer=$2 r; r=$(rootof "$1")
	mkdir -p "$r" && tar -C "$r" -xf "${ROOT_TAR[${FLAVOR[$n]}]}" || return 1
	fqdn "$n" >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n%s\t%s %s\n%s\t%s %s\n' \
		"${IP[$n]}" "$(fqdn "$n")" "$n" "${IP[$peer]}" "$(fqdn "$peer")" "$peer" >"$r/etc/hosts"
	[ "${FLAVOR[$n]}" = stock ] || fqdn "$n" >"$r/etc/mailname"
	ma_in_root "$r" postconf -e "myhostname=$(fqdn "$n")" || return 1
	# older than 2 s, or every Postfix command waits for main.cf to settle
	touch -d '@'$(( $(date +%s) - 10 )) "$r/etc/postfix/main.cf" "$r/etc/postfix/master.cf"
	mkdir -p "$r/var/tmp/pkg" && cp "$DEB" "$r/var/tmp/pkg/" && chmod 644 "$r/var/tmp/pkg/"*.deb
	# The package's own dependencies, into the root's apt archive: the
	# container cannot reach the mirror.  Usually already there.
	cp /etc/resolv.conf "$r/etc/resolv.conf"
	ma_in_root "$r" apt-get install -y -q --download-only "$DEB_IN" >"$WORK/$n-download.log" 2>&1
	local rc=$?
	echo "nameserver 127.0.0.1" >"$r/etc/resolv.conf"
	return $rc
}
boot() { # N WHY
	ct_boot "$1" "$(rootof "$1")" "$(fqdn "$1")" "$WORK/nspawn-$1-$2.log" \
		--network-namespace-path="/run/netns/ma-srv-$1" --resolv-conf=off
}
cx() { ct_x "$@"; }
# poweroff_all N... : "systemctl poweroff" in all of them at once, then
# wait for each
poweroff_all() {
	local n
	for n in "$@"; do ct_ask_poweroff "$n"; done
	for n in "$@"; do ct_poweroff "$n" asked; done
}

# ------------------------------------------------------------------ mail --
# sw OUT ARGS... : swaks from the client on the bridge; transcript in OUT
sw() {
	local out=$1; shift
	ip netns exec $BRNS swaks --timeout 60 "$@" >"$out" 2>&1
}
# eom_code FILE : the reply to the end of DATA in a swaks transcript, or
# the first error reply if the session ended before that.  swaks marks
# lines " ->"/"<- " (error "<**"), after STARTTLS " ~>"/"<~ " (error "<~*").
eom_code() {
	awk '/^ *[-~]> \.$/ { dot = 1; next }
	     /^ *<(\*\*|~\*) +[0-9][0-9][0-9]/ && !err { err = $2 }
	     /^ *<(-|~|\*\*|~\*) +[0-9][0-9][0-9]/ { last = $2; if (dot) { print $2; found = 1; exit } }
	     END { if (!found) print (err ? err : last) }' "$1"
}
# reply_text FILE : the error replies of a transcript (for messages)
reply_text() { grep -E '^ *<(\*\*|~\*) ' "$1" | head -n 3 | sed -E 's/^ *<(\*\*|~\*) *//' | tr '\n' ' '; }
show() { sed 's/^/    | /' "$1" | tail -n "${2:-12}"; }
login_of() { # SERVER USER
	case ${FLAVOR[$1]} in stock) echo "$2" ;; *) echo "$2@$DOMAIN" ;; esac
}
# submit N OUT USER ARGS... : by submission (587, STARTTLS, AUTH as USER)
submit() {
	local n=$1 out=$2 u=$3; shift 3
	sw "$out" --server "${IP[$n]}" --port 587 --tls --auth PLAIN \
		--auth-user "$(login_of "$n" "$u")" --auth-password "secret-$u" "$@"
}
# smtp25 N OUT ARGS... : to port 25, as an outside client
smtp25() { local n=$1 out=$2; shift 2; sw "$out" --server "${IP[$n]}" --port 25 "$@"; }
# request N USER SUBJECT [TO] : an alias request; sets OUT (the
# transcript) and CODE (the reply to it)
nreq=0
OUT=
CODE=
request() {
	nreq=$((nreq + 1)); OUT=$WORK/out/req-$nreq-$1-$2.txt
	submit "$1" "$OUT" "$2" --from "$2@$DOMAIN" --to "${4:-$REQ}" \
		--header "Subject: $3" --body "alias request by test_servers.sh"
	CODE=$(eom_code "$OUT")
}
# peer_log N : the sync daemon's last lines (why a request failed)
peer_log() { cx "$1" journalctl --no-pager -q -n "${2:-6}" -u milter-alias-peer.service 2>&1 | sed 's/^/    | /'; }
# mailbox N USER : host path of USER's mailbox on N (mbox or Maildir)
mailbox() {
	case ${FLAVOR[$1]} in
	stock) echo "$(rootof "$1")/var/mail/$2" ;;
	*) echo "$(rootof "$1")/var/vmail/$DOMAIN/$2/Maildir" ;;
	esac
}
# count_mail N USER ERE... : messages in USER's mailbox on N whose header
# matches every ERE (Python's re, multi-line)
count_mail() {
	local box; box=$(mailbox "$1" "$2"); shift 2
	"$PY" - "$box" "$@" <<'EOF'
import mailbox, os, re, sys
p, pats = sys.argv[1], [re.compile(x, re.M | re.I) for x in sys.argv[2:]]
if not os.path.exists(p):
    print(0); sys.exit()
box = mailbox.Maildir(p, factory=None, create=False) if os.path.isdir(p) else mailbox.mbox(p, create=False)
n = 0
for key in box.keys():
    try:
        raw = box.get_bytes(key)
    except Exception:
        continue
    head = raw.replace(b'\r\n', b'\n').split(b'\n\n', 1)[0].decode('latin-1')
    head = re.sub(r'\n[ \t]+', ' ', head)
    if all(x.search(head) for x in pats):
        n += 1
print(n)
EOF
}
has_mail() { [ "$(count_mail "$@")" -ge 1 ]; }
# wait_mail SECONDS N USER ERE... : until such a message is there
wait_mail() { local s=$1; shift; wait_until "$s" has_mail "$@"; }
# queues_empty N... : nothing in the Postfix queue of any of them
queues_empty() {
	local n
	for n in "$@"; do [ -z "$(cx "$n" postqueue -j 2>/dev/null)" ] || return 1; done
}
mail_log() { cx "$1" journalctl --no-pager -q -n "${2:-25}" SYSLOG_FACILITY=2 2>/dev/null | sed 's/^/    | /'; }
# resolves N ADDRESS : what milter-alias's compiled map gives for ADDRESS on N
resolves() {
	case ${FLAVOR[$1]} in
	stock) cx "$1" postalias -q "${2%@*}" "lmdb:$MAP" 2>&1 ;;
	*) cx "$1" postmap -q "$2" "lmdb:$MAP" 2>&1 ;;
	esac
}
resolves_to() { [ "$(resolves "$1" "$2")" = "$3" ]; }

# ordinary_mail N WHEN : port 25 (outside client) and submission (alice,
# AUTH, STARTTLS) to bob: 250 and delivered
ordinary_mail() {
	local n=$1 when=$2 code subj o
	subj="ordinary mail to $n $when by port 25 $RANDOM"
	o=$WORK/out/ord-$n-25-$RANDOM.txt
	smtp25 "$n" "$o" --from someone@elsewhere.test --to "bob@$DOMAIN" --header "Subject: $subj" --body x
	code=$(eom_code "$o")
	if check_eq "$n $when: port 25 accepts mail for bob" 250 "$code"; then
		check "$n $when: it is delivered to bob's mailbox" wait_mail 30 "$n" bob "^Subject: $subj\$" ||
			mail_log "$n"
	else
		show "$o"
	fi
	subj="ordinary mail to $n $when by submission $RANDOM"
	o=$WORK/out/ord-$n-587-$RANDOM.txt
	submit "$n" "$o" alice --from "alice@$DOMAIN" --to "bob@$DOMAIN" --header "Subject: $subj" --body x
	code=$(eom_code "$o")
	if check_eq "$n $when: submission (STARTTLS, AUTH alice) accepts mail for bob" 250 "$code"; then
		check "$n $when: it is delivered to bob's mailbox" wait_mail 30 "$n" bob "^Subject: $subj\$" ||
			mail_log "$n"
	else
		show "$o"
	fi
}

# ------------------------------------------------------------- one pair --
# conf_set N KEY VALUE : the line "KEY = VALUE" in N's milter-alias.conf,
# replacing the shipped (possibly commented) one, as an administrator
# would edit it
conf_set() {
	local f; f=$(rootof "$1")$CONF
	if grep -qE "^#?$2 = " "$f"; then
		sed -i -E "0,/^#?$2 = /s|^#?$2 = .*|$2 = $3|" "$f"
	else
		printf '%s = %s\n' "$2" "$3" >>"$f"
	fi
}

# run_pair P S1 S2 : steps 1-8 on the pair
run_pair() {
	local P=$1 s1=$2 s2=$3 n o code peer fl txt
	fl=${FLAVOR[$s1]}
	step "pair $P: $s1 (${FLAVOR[$s1]}) and $s2 (${FLAVOR[$s2]}): roots and boot"
	for n in $s1 $s2; do
		[ $n = $s1 ] && peer=$s2 || peer=$s1
		setup_server $n $peer || { tail -n 20 "$WORK/$n-download.log"; fatal "$n: root from ${ROOT_TAR[${FLAVOR[$n]}]}"; }
		net_add $n || fatal "$n: network namespace"
	done
	lap "pair-$P-roots"
	for n in $s1 $s2; do
		if boot $n first; then pass "$n boots with systemd (leader ${CT_LEADER[$n]})"
		else fatal "$n: boot (log: $WORK/nspawn-$n-first.log)"; fi
	done
	lap "pair-$P-boot"

	step "pair $P, 1. the mail setup works before milter-alias is installed"
	local failed0=$failed
	if [ "${FLAVOR[$s1]}" = mysql ] || [ "${FLAVOR[$s2]}" = mysql ]; then
		n=$s1; [ "${FLAVOR[$s1]}" = mysql ] || n=$s2
		# the administrator loads the guide's database (ISPmail: mariadb)
		check "$n: the mailserver database loaded into MariaDB" \
			bash -c "nsenter --target ${CT_LEADER[$n]} --mount --uts --ipc --net --pid --root mariadb </$(rootof $n)/root/mailserver-mysql.sql" ||
			fatal "$n: MariaDB setup"
	fi
	for n in $s1 $s2; do
		for u in postfix@- dovecot; do
			check "$n: $u.service runs" cx $n systemctl is-active $u.service ||
				cx $n systemctl status --no-pager $u.service | tail -n 8 | sed 's/^/    | /'
		done
		case ${FLAVOR[$n]} in
		stock)
			check_eq "$n: Debian's Internet Site main.cf: example.org is local, alias_maps hash:/etc/aliases" \
				"yes hash:/etc/aliases" \
				"$(cx $n postconf -h mydestination | grep -qw "$DOMAIN" && echo yes) $(cx $n postconf -h alias_maps)" ;;
		*)
			check_eq "$n: the SQL map files are root:postfix 0640" "root:postfix 640" \
				"$(cx $n stat -c '%U:%G %a' /etc/postfix/${FLAVOR[$n]}-virtual-alias-maps.cf | sort -u)"
			check_eq "$n: the SQL alias map (as root) resolves info@" "alice@$DOMAIN" \
				"$(cx $n postmap -q "info@$DOMAIN" "${FLAVOR[$n]}:/etc/postfix/${FLAVOR[$n]}-virtual-alias-maps.cf" 2>&1)" ;;
		esac
		check_eq "$n: smtpd runs chrooted, as Debian ships it" y \
			"$(cx $n postconf -Fh submission/inet/chroot 2>&1)"
		check_eq "$n: recipient_delimiter is +" + "$(cx $n postconf -h recipient_delimiter)"
		o=$WORK/out/pre-$n-25.txt
		smtp25 $n "$o" --from someone@elsewhere.test --to "alice@$DOMAIN" \
			--header "Subject: before milter-alias on $n" --body x
		code=$(eom_code "$o")
		check_eq "$n: port 25 accepts mail for alice" 250 "$code" || show "$o"
		[ "$code" = 250 ] && { check "$n: it is delivered to alice's mailbox" \
			wait_mail 30 $n alice "^Subject: before milter-alias on $n\$" || mail_log $n; }
		o=$WORK/out/pre-$n-unknown.txt
		smtp25 $n "$o" --from someone@elsewhere.test --to "nosuchuser@$DOMAIN" --body x
		code=$(eom_code "$o")
		check "$n: an unknown recipient is refused 5xx on port 25 ($(reply_text "$o"))" \
			test "${code:0:1}" = 5
		o=$WORK/out/pre-$n-587.txt
		submit $n "$o" alice --from "alice@$DOMAIN" --to "bob@$DOMAIN" \
			--header "Subject: submitted on $n before milter-alias" --body x
		code=$(eom_code "$o")
		check_eq "$n: submission with STARTTLS and AUTH accepts mail from alice" 250 "$code" || show "$o"
		[ "$code" = 250 ] && { check "$n: it is delivered to bob's mailbox" \
			wait_mail 30 $n bob "^Subject: submitted on $n before milter-alias\$" || mail_log $n; }
		o=$WORK/out/pre-$n-587-plain.txt
		sw "$o" --server "${IP[$n]}" --port 587 --auth PLAIN --auth-user "$(login_of $n alice)" \
			--auth-password secret-alice --from "alice@$DOMAIN" --to "bob@$DOMAIN" --body x
		code=$(eom_code "$o")
		check "$n: submission without STARTTLS offers no AUTH" grep -q 'did not advertise authentication' "$o"
	done
	[ "$failed" = "$failed0" ] || fatal "pair $P: the test's own mail setup does not work; nothing after this would mean anything"
	lap "pair-$P-proof"

	step "pair $P, 2. install the .deb, configure it as the README says, postfix-setup"
	for n in $s1 $s2; do
		cx $n apt-get install -y -q "$DEB_IN" >"$WORK/$n-install.log" 2>&1 &
	done
	for n in $s1 $s2; do
		wait -n
	done
	for n in $s1 $s2; do
		check_eq "$n: apt-get install ./$(basename "$DEB"): installed" "install ok installed" \
			"$(cx $n dpkg-query -W -f='${Status}' milter-alias 2>&1)" ||
			{ tail -n 20 "$WORK/$n-install.log"; fatal "$n: the package did not install"; }
	done
	declare -A pin=()
	for n in $s1 $s2; do
		pin[$n]=$(cx $n milter-aliasctl pin 2>&1)
		check "$n: milter-aliasctl pin: ${pin[$n]}" grep -qE '^sha256//[A-Za-z0-9+/=]+$' <<<"${pin[$n]}"
	done
	for n in $s1 $s2; do
		[ $n = $s1 ] && peer=$s2 || peer=$s1
		conf_set $n node_name "\"$(fqdn $n)\""
		conf_set $n domains "{\"$DOMAIN\"}"
		conf_set $n request_address "{\"$REQ\"}"
		[ "$fl" = stock ] && conf_set $n map_format '"aliases"'
		conf_set $n listen '"0.0.0.0:7465"'
		printf '\npeer "%s" {\n  address = "%s:7465"\n  pin     = "%s"\n}\n' \
			"$(fqdn $peer)" "$(fqdn $peer)" "${pin[$peer]}" >>"$(rootof $n)$CONF"
		check "$n: milter-alias-peer -t accepts the edited configuration" cx $n milter-alias-peer -t
		check "$n: milter-alias -t accepts it" cx $n milter-alias -t
	done
	for n in $s1 $s2; do
		check "$n: systemctl restart milter-alias-peer milter-alias" \
			cx $n systemctl restart milter-alias-peer milter-alias
	done
	for n in $s1 $s2; do
		cx $n milter-aliasctl postfix-setup >"$WORK/$n-setup-report.txt" 2>&1
		code=$?
		sed 's/^/    | /' "$WORK/$n-setup-report.txt"
		check_eq "$n: postfix-setup (report): changes pending, exit 1" 1 "$code"
		check "$n: postfix-setup reports no problem" bash -c "! grep -q '^problem:' '$WORK/$n-setup-report.txt'"
		case $fl in
		stock) check "$n: the report adds the map to alias_maps" grep -q 'alias_maps' "$WORK/$n-setup-report.txt" ;;
		*) check "$n: the report adds the map to virtual_alias_maps" grep -q 'virtual_alias_maps' "$WORK/$n-setup-report.txt"
		   check "$n: the report adds the sender-login map to smtpd_sender_login_maps (contract 9)" \
			grep -q 'smtpd_sender_login_maps' "$WORK/$n-setup-report.txt" ;;
		esac
		check "$n: the report puts the milter on the submission service" \
			grep -qE 'mua_milters|smtpd_milters' "$WORK/$n-setup-report.txt"
		cx $n milter-aliasctl postfix-setup --apply >"$WORK/$n-setup-apply.txt" 2>&1
		code=$?
		sed 's/^/    | /' "$WORK/$n-setup-apply.txt" | tail -n 15
		check_eq "$n: postfix-setup --apply exits 0" 0 "$code"
		check "$n: postfix check is clean afterwards" \
			bash -c "[ -z \"\$(nsenter --target ${CT_LEADER[$n]} --mount --uts --net --pid --root postfix check 2>&1)\" ]"
	done
	for n in $s1 $s2; do
		if wait_until 30 cx $n milter-aliasctl status; then
			pass "$n: milter-aliasctl status: healthy (exit 0)"
		else
			fail "$n: milter-aliasctl status: healthy (exit 0) within 30 s"
		fi
		cx $n milter-aliasctl status 2>&1 | sed 's/^/    | /'
	done
	lap "pair-$P-install"

	step "pair $P, 3. an alias created by mail on $s1, on both servers"
	local A1=shop-$P-$RANDOM
	request $s1 alice "new $A1 made by test_servers.sh"; code=$CODE
	txt=$(grep -E '^ *<[-*]{1,2} +[0-9]{3}' "$OUT" | tail -n 1 | sed 's/^ *<[-*]* *//')
	check_eq "$s1: request 'new $A1' (submission, STARTTLS, AUTH alice): 250" 250 "$code" ||
		{ echo "    reply: $txt"; peer_log $s1; }
	for n in $s1 $s2; do
		# status said healthy above: that must mean requests work
		if cx $n milter-aliasctl status >/dev/null 2>&1; then
			check "$n: status is honest: it says healthy and a request really gets 250 (got $code)" \
				test "$code" = 250
		fi
	done
	for n in $s1 $s2; do
		check "$n: the alias resolves in milter-alias's map" \
			wait_until 20 resolves_to $n "$A1@$DOMAIN" "alice@$DOMAIN"
		case $fl in
		stock) check "$n: alias_maps lists the map" bash -c "nsenter --target ${CT_LEADER[$n]} --mount --uts --net --pid --root postconf -h alias_maps | grep -q 'lmdb:$MAP'" ;;
		*) check "$n: virtual_alias_maps lists the map" bash -c "nsenter --target ${CT_LEADER[$n]} --mount --uts --net --pid --root postconf -h virtual_alias_maps | grep -q 'lmdb:$MAP'" ;;
		esac
		o=$WORK/out/to-alias-$n.txt
		smtp25 $n "$o" --from someone@elsewhere.test --to "$A1@$DOMAIN" \
			--header "Subject: order via $A1 on $n" --body x
		code=$(eom_code "$o")
		if check_eq "$n: mail to $A1@ by port 25: 250" 250 "$code"; then
			check "$n: it is delivered to alice's mailbox on $n" \
				wait_mail 30 $n alice "^Subject: order via $A1 on $n\$" || mail_log $n
		else
			echo "    reply: $(reply_text "$o")"
		fi
	done
	for n in $s1 $s2; do
		check "$n: the confirmation of $n arrives in alice's mailbox on $n" \
			wait_mail 30 $n alice "^X-Milter-Alias-Server: $(fqdn $n)\$" "^To: <$A1@$DOMAIN>"
	done
	check "both queues are empty (every confirmation delivered)" \
		wait_until 30 queues_empty $s1 $s2
	for n in $s1 $s2; do
		check_eq "$n: exactly one confirmation for $A1 from $n, none from the other server" "1 0" \
			"$(count_mail $n alice "^To: <$A1@$DOMAIN>" "^X-Milter-Alias-Server: $(fqdn $n)\$") $(count_mail $n alice "^To: <$A1@$DOMAIN>" "^X-Milter-Alias-Server: (?!$(fqdn $n)\$)")"
	done
	check "milter-aliasctl verify: the maps are identical" cx $s1 milter-aliasctl verify
	lap "pair-$P-create"

	step "pair $P, 4. an address that already has a home is refused, on both servers"
	local homes
	case $fl in stock) homes="bob sales" ;; *) homes="info bob" ;; esac
	for n in $s1 $s2; do
		for h in $homes; do
			request $n alice "new $h"; code=$CODE
			check "$n: 'new $h' ($h@$DOMAIN exists outside milter-alias) is refused 5xx (got $code: $(reply_text "$OUT"))" \
				test "${code:0:1}" = 5
		done
	done
	if [ "$fl" != stock ]; then
		# contract 9, "health is honest": a map the check cannot ask (the
		# administrator made one root-only) must show in status, and
		# requests must get 4xx, never 250 or a false 5xx
		local cf=/etc/postfix/${FLAVOR[$s2]}-virtual-alias-maps.cf
		cx $s2 chmod 0600 $cf
		if check "$s2: with $cf root-only, milter-aliasctl status turns unhealthy (exit 1)" \
			wait_until 40 bash -c "! nsenter --target ${CT_LEADER[$s2]} --mount --uts --ipc --net --pid --root milter-aliasctl status"; then
			cx $s2 milter-aliasctl status 2>&1 | grep -i resolve | sed 's/^/    | /'
		fi
		request $s1 alice "new unhealthy-$P-$RANDOM"; code=$CODE
		check "$s1: a request meanwhile gets 4xx ($code: $(reply_text "$OUT"))" test "${code:0:1}" = 4
		cx $s2 chmod 0640 $cf
		check "$s2: with the mode put back, status is healthy again" wait_until 40 cx $s2 milter-aliasctl status
	fi
	lap "pair-$P-homes"

	step "pair $P, 5. send as the alias"
	for n in $s1 $s2; do
		o=$WORK/out/sendas-alice-$n.txt
		submit $n "$o" alice --from "$A1@$DOMAIN" --header "From: <$A1@$DOMAIN>" \
			--to "bob@$DOMAIN" --header "Subject: as $A1 from $n" --body x
		code=$(eom_code "$o")
		check_eq "$n: alice (the owner, AUTH) sends with MAIL FROM and From: $A1@: 250" 250 "$code" ||
			echo "    reply: $(reply_text "$o")"
		[ "$code" = 250 ] && { check "$n: delivered to bob" wait_mail 30 $n bob "^Subject: as $A1 from $n\$" || mail_log $n; }
		if [ "$fl" != stock ]; then
			o=$WORK/out/sendas-bob-$n.txt
			submit $n "$o" bob --from "$A1@$DOMAIN" --to "alice@$DOMAIN" --header "Subject: bob as $A1" --body x
			code=$(eom_code "$o")
			check "$n: bob (AUTH, not the owner) with MAIL FROM $A1@ is refused 5xx, not owned by user (got $code: $(reply_text "$o"))" \
				bash -c "[ '${code:0:1}' = 5 ] && grep -q 'not owned by user' '$o'"
		fi
	done
	lap "pair-$P-sendas"

	step "pair $P, 6. request-address variants: never 250 with nothing done"
	local A2=plus-$P-$RANDOM
	request $s1 alice "new $A2" "makealias+x@$DOMAIN"; code=$CODE
	if [ "$code" = 250 ]; then
		check_eq "$s1: 'new $A2' to makealias+x@ got 250: the alias exists" "alice@$DOMAIN" \
			"$(resolves $s1 "$A2@$DOMAIN")"
	else
		check "$s1: 'new $A2' to makealias+x@ is refused 5xx (got $code: $(reply_text "$OUT"))" test "${code:0:1}" = 5
	fi
	check "$s1: the request to makealias+x@ is delivered to nobody" \
		bash -c "! grep -rqs '^Subject: new $A2' $(rootof $s1)/var/mail $(rootof $s1)/var/vmail"
	if [ "$fl" != stock ]; then
		# the guide enables SASL in main.cf: port 25 offers AUTH after STARTTLS too
		local A3=port25-$P-$RANDOM
		o=$WORK/out/req-port25-$s1.txt
		sw "$o" --server "${IP[$s1]}" --port 25 --tls --auth PLAIN --auth-user "alice@$DOMAIN" \
			--auth-password secret-alice --from "alice@$DOMAIN" --to "$REQ" \
			--header "Subject: new $A3" --body x
		code=$(eom_code "$o")
		if [ "$code" = 250 ]; then
			check_eq "$s1: 'new $A3' by port 25 with AUTH got 250: the alias exists" "alice@$DOMAIN" \
				"$(resolves $s1 "$A3@$DOMAIN")"
		else
			check "$s1: 'new $A3' by port 25 with AUTH is refused 5xx (got $code: $(reply_text "$o"))" test "${code:0:1}" = 5
		fi
	fi
	lap "pair-$P-variants"

	step "pair $P, 7. reboot both servers"
	poweroff_all $s1 $s2
	for n in $s1 $s2; do
		if boot $n second; then pass "$n: reboot"; else fatal "$n: reboot (log: $WORK/nspawn-$n-second.log)"; fi
	done
	for n in $s1 $s2; do
		for u in milter-alias-peer milter-alias postfix@-; do
			check_eq "$n: $u.service active after boot" active "$(cx $n systemctl is-active $u.service 2>&1)"
		done
		check "$n: milter-aliasctl status healthy after boot" wait_until 30 cx $n milter-aliasctl status
	done
	local A4=after-boot-$P-$RANDOM
	request $s2 bob "new $A4"; code=$CODE
	check_eq "$s2: request 'new $A4' (bob) after the reboot: 250" 250 "$code" ||
		{ echo "    reply: $(reply_text "$OUT")"; peer_log $s2 3; }
	for n in $s1 $s2; do
		check "$n: $A4@ resolves to bob" wait_until 20 resolves_to $n "$A4@$DOMAIN" "bob@$DOMAIN"
		check_eq "$n: $A1@ (made before the reboot) still resolves" "alice@$DOMAIN" "$(resolves $n "$A1@$DOMAIN")"
	done
	lap "pair-$P-reboot"

	step "pair $P, 8. undo postfix-setup as the README says, remove, purge"
	local b f
	for n in $s1 $s2; do
		for f in main.cf master.cf; do
			b=$(ls -1 "$(rootof $n)"/etc/postfix/$f.milter-alias-backup.* 2>/dev/null | head -n 1)
			if check "$n: postfix-setup's backup of $f exists (${b##*/})" test -n "$b"; then
				cp -p "$b" "$(rootof $n)/etc/postfix/$f"
			fi
		done
		check "$n: postfix reload" cx $n postfix reload
		check_eq "$n: Postfix no longer names milter-alias" "" \
			"$(cx $n postconf -n 2>/dev/null | grep -E 'milter-alias|milter_alias'; cx $n postconf -P 2>/dev/null | grep -E 'milter-alias|milter_alias')"
		ordinary_mail $n "after undoing postfix-setup"
		cx $n apt-get remove -y -q milter-alias >"$WORK/$n-remove.log" 2>&1
		check_eq "$n: apt-get remove milter-alias exits 0" 0 "$?" || tail -n 12 "$WORK/$n-remove.log"
		ordinary_mail $n "after remove"
		cx $n apt-get purge -y -q milter-alias >"$WORK/$n-purge.log" 2>&1
		check_eq "$n: apt-get purge milter-alias exits 0" 0 "$?" || tail -n 12 "$WORK/$n-purge.log"
		check_eq "$n: dpkg no longer knows the package" "" \
			"$(cx $n dpkg-query -W -f='${Status}' milter-alias 2>/dev/null | grep -v 'not-installed')"
		ordinary_mail $n "after purge"
	done
	lap "pair-$P-remove"
	poweroff_all $s1 $s2
	for n in $s1 $s2; do
		ip netns del "ma-srv-$n" 2>/dev/null
		rm -rf --one-file-system "$WORK/$n"
	done
	lap "pair-$P-teardown"
}

case " $PAIRS " in *" B "*) run_pair B b1 b2 ;; esac
case " $PAIRS " in *" A "*) run_pair A a1 a2 ;; esac

step "summary"
summary
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
