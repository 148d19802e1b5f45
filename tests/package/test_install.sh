#!/bin/bash
# test_install.sh - the Debian package, installed for real (the
# README's test layer 5).  Run as root; it fails (never skips) when it cannot run.
#
#  1. build: "make dist" makes the release tarball (the one "make distcheck"
#     checks), and dpkg-buildpackage -us -uc -b builds the .deb from it on
#     this machine, i.e. against the libraries of the release it is then
#     installed on (make check runs inside the package build);
#  2. lintian --fail-on error,warning;
#  3. the member names of the .deb's control archive, read as raw tar
#     headers (as dpkg reads them): ./control, ./postinst, ... ;
#  4. systemd-analyze security --offline=true rates both units <= 2.0;
#  5. a clean Debian root: debootstrap --variant=minbase of the release this
#     machine runs, mirror taken from its own apt sources; the debootstrap
#     result is cached as a tarball in $MA_PKGTEST_CACHE (redone after 7
#     days) and a fresh copy is unpacked every run;
#  6. in that root (chroot): postfix, postfix-lmdb, dovecot-core (SASL only),
#     swaks and systemd from the mirror, and a small Postfix setup: local
#     domain example.org (the shipped config's placeholder, so the config
#     is used as shipped), users alice and bob, submission with SASL, smtpd
#     chrooted as Debian ships it;
#  7. the root is booted with systemd-nspawn (systemd as PID 1, its own
#     network namespace with only loopback), so the units run for real,
#     with all their hardening;
#  8. inside, the .deb is installed with plain "apt-get install ./x.deb" (no
#     --force); checked: user, directories, key, conffile, units enabled
#     and started by the postinst, libc6 requirement met;
#  9. the running units: user, NoNewPrivs, seccomp, no capabilities, groups;
#     the milter socket inside Postfix's chroot (group postfix); ordering;
# 10. milter-aliasctl postfix-setup, then --apply, then again (nothing to
#     do);
# 11. an alias created by mail (swaks with AUTH through the installed
#     Postfix): 250, postmap -q, the confirmation (queued by the peer
#     unit's sendmail/postdrop under NoNewPrivileges) and mail to the alias
#     reach the owner; a request without AUTH is refused;
# 12. reboot: both units come up, peer before milter before Postfix, and
#     the first request after boot works; then a reinstall (the upgrade
#     path: key and aliases kept, units restarted);
# 13. apt-get remove: daemons gone, state kept; Postfix still delivers;
# 14. apt-get purge: user, group, directories, key, units, conffile gone;
# 15. Postfix still delivers ordinary mail (port 25 and submission).
#
# Output: "ok   - ..." / "FAIL - ..." lines, timings, and "N passed, M failed".
#
# Environment:
#   MA_PKGTEST_WORK   work directory, emptied first (/var/tmp/milter-alias-pkgtest)
#   MA_PKGTEST_CACHE  cache for the debootstrap tarball and .debs
#                     (/var/cache/milter-alias-tests)
#   MA_PKGTEST_REFRESH=1  debootstrap again even if the cached root is fresh
#                     (it is redone anyway when older than 7 days)
#   MA_PKGTEST_KEEP=1 leave the work directory (the container is stopped)
#   MA_PKGTEST_DEB=FILE  test this .deb instead of building one (debugging)
set -uo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
PY=/usr/bin/python3

WORK=${MA_PKGTEST_WORK:-/var/tmp/milter-alias-pkgtest}
CACHE=${MA_PKGTEST_CACHE:-/var/cache/milter-alias-tests}
MACHINE=ma-pkgtest
HOSTNAME_C=mail.example.test
ROOT=$WORK/root
T0=$(date +%s)
# reporting, mounts, the debootstrap cache, the build and the container
# helpers are shared with tests/servers/test_servers.sh
# shellcheck source=../servers/lib.sh
. "$top/tests/servers/lib.sh"
. "$top/tests/package/mailconf.sh"

# -------------------------------------------------------------- cleanup --
cleanup() {
	ct_stop "$MACHINE"
	# anything left in the root (chroot phase) or in the container
	local p
	for p in $(root_pids "$ROOT"); do kill -KILL "$p" 2>/dev/null; done
	umount_all "$WORK"
	if [ "${MA_PKGTEST_KEEP:-0}" != 1 ] && [ -d "$WORK" ]; then
		if [ -n "$(mounts_under "$WORK")" ]; then
			echo "not removing $WORK: still mounted" >&2
		else
			rm -rf --one-file-system "$WORK"
		fi
	fi
	rm -f "$CACHE/.lock.pid"
}

# ------------------------------------------------------------ preflight --
step "preflight"
[ "$(id -u)" = 0 ] || fatal "must run as root (debootstrap, chroot, systemd-nspawn)"
missing=
for c in make dpkg-buildpackage dpkg-deb lintian debootstrap systemd-nspawn \
	 systemd-analyze nsenter "$PY" tar; do
	command -v "$c" >/dev/null || missing="$missing $c"
done
[ -z "$missing" ] || fatal "missing commands:$missing (contrib/install-deps.sh installs them)"
[ -f "$top/Makefile" ] || fatal "$top is not configured (autoreconf -fi && ./configure)"
# The mirror this machine itself uses (never a host name written here).
ma_release_and_mirror
echo "release $SUITE, mirror $MIRROR, work $WORK, cache $CACHE"

mkdir -p "$CACHE" "$CACHE/apt-archives/partial" || fatal "cannot create $CACHE"
# One run at a time: the work directory and machine name are fixed.
exec 9>"$CACHE/.lock"
flock -n 9 || fatal "another test_install.sh holds $CACHE/.lock"
trap cleanup EXIT
trap 'exit 130' INT TERM
# Leftovers of an interrupted run: its container, processes, mounts, files.
kill_nspawn_of "$ROOT"
if [ -d "$WORK" ]; then
	for p in $(root_pids "$ROOT"); do kill -KILL "$p" 2>/dev/null; done
	sleep 0.2
	umount_all "$WORK"
	[ -z "$(mounts_under "$WORK")" ] || fatal "$WORK still has mounts"
	rm -rf --one-file-system "$WORK"
fi
mkdir -p "$WORK/build" || fatal "cannot create $WORK"
lap preflight

# ---------------------------------------------------------------- build --
step "1. build the .deb from the release tarball"
if [ -n "${MA_PKGTEST_DEB:-}" ]; then
	cp "$MA_PKGTEST_DEB" "$WORK/build/" || fatal "cannot copy $MA_PKGTEST_DEB"
	DEB=$WORK/build/$(basename "$MA_PKGTEST_DEB")
	echo "testing given $DEB (MA_PKGTEST_DEB): no build"
else
	ma_build_deb "$top" "$WORK/build"
	grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR):' "$WORK/build/build.log" | tr '\n' ' '; echo
	if grep -qE '^# (FAIL|ERROR): +[1-9]' "$WORK/build/build.log"; then
		fail "make check inside the package build"
	fi
fi
echo "package: $DEB ($(stat -c %s "$DEB") bytes)"
dpkg-deb -f "$DEB" Depends | sed 's/^/Depends: /'
lap build

# -------------------------------------------------------------- lintian --
step "2. lintian"
lintian --fail-on error,warning --display-info "$DEB" >"$WORK/lintian.log" 2>&1
rc=$?
grep -v 'running with root privileges' "$WORK/lintian.log" | sed 's/^/    /'
if [ $rc = 0 ]; then pass "lintian: no errors, no warnings"; else fail "lintian (status $rc)"; fi
lap lintian

# ---------------------------------------------- control archive members --
step "3. control archive members, as raw tar headers"
"$PY" - "$DEB" >"$WORK/control-members.txt" <<'EOF'
# Read the .deb (an ar archive) and its control.tar.* by hand: every tar
# member's name, type and mode exactly as stored in its 512-byte header.
import gzip, lzma, sys
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'!<arch>\n', 'not an ar archive'
off, members = 8, {}
while off + 60 <= len(data):
    h = data[off:off + 60]
    name = h[:16].decode().rstrip().rstrip('/')
    size = int(h[48:58].decode().strip())
    members[name] = data[off + 60:off + 60 + size]
    off += 60 + size + (size & 1)
ctl = [n for n in members if n.startswith('control.tar')]
assert len(ctl) == 1, 'control members: %r' % list(members)
raw = members[ctl[0]]
if ctl[0].endswith('.xz'):
    raw = lzma.decompress(raw)
elif ctl[0].endswith('.gz'):
    raw = gzip.decompress(raw)
elif ctl[0] != 'control.tar':
    sys.exit('cannot decompress ' + ctl[0])
print('#ar', ' '.join(members))
pos, longname = 0, None
while pos + 512 <= len(raw):
    hdr = raw[pos:pos + 512]
    if hdr == b'\0' * 512:
        break
    name = hdr[:100].split(b'\0')[0].decode()
    mode = int(hdr[100:108].split(b'\0')[0].strip() or b'0', 8)
    size = int(hdr[124:136].split(b'\0')[0].strip() or b'0', 8)
    typ = chr(hdr[156]) if hdr[156] else '0'
    if hdr[257:262] == b'ustar' and hdr[345:500].strip(b'\0'):
        name = hdr[345:500].split(b'\0')[0].decode() + '/' + name
    body = raw[pos + 512:pos + 512 + size]
    pos += 512 + (size + 511) // 512 * 512
    if typ == 'L':                      # GNU long name for the next member
        longname = body.split(b'\0')[0].decode()
        continue
    if longname is not None:
        name, longname = longname, None
    print('%s %s %04o' % (name, typ, mode))
EOF
[ $? = 0 ] || { cat "$WORK/control-members.txt"; fatal "reading the control archive"; }
sed 's/^/    /' "$WORK/control-members.txt"
member() { grep -E "^$(printf '%s' "$1" | sed 's/\./\\./g') " "$WORK/control-members.txt"; }
check "ar members: debian-binary, control.tar.xz, data.tar.xz in that order" \
	grep -qx '#ar debian-binary control.tar.xz data.tar.xz' "$WORK/control-members.txt"
for m in control md5sums conffiles; do
	check "control archive holds ./$m (regular file)" bash -c "grep -qE '^\./$m 0 ' '$WORK/control-members.txt'"
done
for m in postinst prerm postrm; do
	check_eq "control archive holds ./$m, a regular file, mode 0755" "./$m 0 0755" "$(member "./$m")"
done
check "no member without the ./ prefix (dpkg ignores those)" \
	bash -c "! grep -vE '^(#ar |\./)' '$WORK/control-members.txt'"
mkdir -p "$WORK/ctl" "$WORK/debx"
dpkg-deb -e "$DEB" "$WORK/ctl" && dpkg-deb -x "$DEB" "$WORK/debx" || fatal "dpkg-deb -e/-x"
check "postinst is the project's (creates the user, runs keygen)" \
	grep -q 'milter-aliasctl -c "$CONF" keygen' "$WORK/ctl/postinst"
check "postinst starts the units through debhelper's snippet" \
	grep -q "deb-systemd-invoke \$_dh_action 'milter-alias-peer.service' 'milter-alias.service'" "$WORK/ctl/postinst"
check_eq "conffiles lists the configuration" /etc/milter-alias/milter-alias.conf "$(cat "$WORK/ctl/conffiles")"
lap control

# ------------------------------------------------------ unit hardening --
step "4. systemd-analyze security --offline=true (each unit <= 2.0)"
UNITDIR=lib/systemd/system
for u in milter-alias-peer.service milter-alias.service; do
	f=$WORK/debx/$UNITDIR/$u
	if [ ! -f "$f" ]; then fail "$u is in the package under /$UNITDIR"; continue; fi
	LC_ALL=C.UTF-8 systemd-analyze security --offline=true "$f" >"$WORK/security-$u.txt" 2>&1
	score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' "$WORK/security-$u.txt")
	echo "    $u: the checks it does not pass"
	grep -E '^✗' "$WORK/security-$u.txt" | sed -E 's/ {2,}/  /g; s/^/      /'
	echo "    $(grep 'Overall exposure' "$WORK/security-$u.txt")"
	if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
		pass "$u: exposure $score <= 2.0"
	else
		fail "$u: exposure '${score:-?}' (need <= 2.0)"
	fi
done
lap security

# ---------------------------------------------------------- clean root --
step "5. a clean $SUITE root (debootstrap --variant=minbase)"
ma_debootstrap_tar "$CACHE" "$WORK"
base=$BASE_TAR
mkdir -p "$ROOT" && tar -C "$ROOT" -xf "$base" || fatal "unpack $base"
pass "fresh root unpacked from the debootstrap tarball"
lap unpack-root

# --------------------------------------------- chroot: Postfix & friends --
step "6. Postfix, Dovecot, swaks, systemd in the root (chroot)"
in_root() { ma_in_root "$ROOT" "$@"; }
mount -t proc proc "$ROOT/proc" || fatal "mount /proc in the root"
mount --bind "$CACHE/apt-archives" "$ROOT/var/cache/apt/archives" || fatal "bind the .deb cache"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The machine's own apt sources (release, updates, security), not debootstrap's.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
	cp /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/"
	: >"$ROOT/etc/apt/sources.list"
fi
# Faster dpkg while the root is prepared (no fsync per file); removed again
# before the package itself is installed.
echo force-unsafe-io >"$ROOT/etc/dpkg/dpkg.cfg.d/ma-pkgtest-unsafe-io"
# No daemon may start inside a chroot (it would run in this machine's network).
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"; chmod 755 "$ROOT/usr/sbin/policy-rc.d"
echo "postfix postfix/main_mailer_type select No configuration" | in_root debconf-set-selections
mkdir -p "$ROOT/var/tmp/pkg" && cp "$DEB" "$ROOT/var/tmp/pkg/" && chmod 644 "$ROOT/var/tmp/pkg/"*.deb
DEB_IN=/var/tmp/pkg/$(basename "$DEB")
if ! { in_root apt-get update -q &&
       in_root apt-get install -y -q --no-install-recommends \
		postfix postfix-lmdb dovecot-core swaks systemd &&
       # the package's own dependencies, fetched now: the container has no network
       in_root apt-get install -y -q --download-only "$DEB_IN"; } >"$WORK/apt-root.log" 2>&1; then
	tail -n 30 "$WORK/apt-root.log"; fatal "apt-get in the root (log: $WORK/apt-root.log)"
fi
pass "postfix, postfix-lmdb, dovecot-core, swaks, systemd installed in the root"
check "the package is not installed yet" bash -c "! chroot '$ROOT' dpkg -s milter-alias >/dev/null 2>&1"
lap apt-root

# Mail setup an administrator would have before installing milter-alias:
# example.org is a local domain (alice, bob: /var/mail/USER), Dovecot is
# the SASL server, submission (587) requires SASL, smtpd runs chrooted
# (Debian's master.cf).  Nothing leaves the machine.
ma_write_mailconf "$ROOT" mail.example.test loopback-only tests/package/test_install.sh ||
	fatal "write the root's main.cf, aliases and dovecot.conf"
printf 'alice:{PLAIN}secret-alice::::::\nbob:{PLAIN}secret-bob::::::\n' >"$ROOT/etc/dovecot/users"
printf '127.0.1.1\t%s mail\n' "$HOSTNAME_C" >>"$ROOT/etc/hosts"
echo "$HOSTNAME_C" >"$ROOT/etc/hostname"
if ! { in_root chown root:dovecot /etc/dovecot/users && in_root chmod 640 /etc/dovecot/users &&
       in_root useradd -M -s /usr/sbin/nologin alice && in_root useradd -M -s /usr/sbin/nologin bob &&
       in_root newaliases &&
       in_root postconf -M 'submission/inet=submission inet n - y - - smtpd' &&
       in_root postconf -P 'submission/inet/syslog_name=postfix/submission' \
		'submission/inet/smtpd_sasl_auth_enable=yes' \
		'submission/inet/smtpd_tls_security_level=none' \
		'submission/inet/smtpd_relay_restrictions=$mua_relay_restrictions'; } \
		>"$WORK/mailsetup.log" 2>&1; then
	cat "$WORK/mailsetup.log"; fatal "Postfix/Dovecot setup in the root"
fi
# older than 2 s, or every Postfix command waits for main.cf to settle
touch -d '@'$(( $(date +%s) - 10 )) "$ROOT/etc/postfix/main.cf" "$ROOT/etc/postfix/master.cf"
rm -f "$ROOT/usr/sbin/policy-rc.d" "$ROOT/etc/dpkg/dpkg.cfg.d/ma-pkgtest-unsafe-io"
umount_all "$ROOT"
lap mail-setup

# ------------------------------------------------------------ container --
# boot WHY : boot $ROOT with systemd (own network namespace, only
# loopback) and wait for the system; LEADER is its PID 1's host pid
LEADER=
boot() {
	local rc=0
	ct_boot "$MACHINE" "$ROOT" "$HOSTNAME_C" "$WORK/nspawn-$1.log" --private-network \
		--bind="$CACHE/apt-archives:/var/cache/apt/archives" || rc=1
	LEADER=${CT_LEADER[$MACHINE]}
	return $rc
}
container_pids() { ct_pids "$MACHINE"; }
# cx CMD... : run CMD inside the booted container, as root
cx() { ct_x "$MACHINE" "$@"; }
# poweroff : shut the container down cleanly and wait for nspawn to exit
poweroff() { ct_poweroff "$MACHINE"; LEADER=; }
# swaks_c OUT ARGS... : swaks inside the container to 127.0.0.1, transcript
# in $ROOT/OUT (a path inside the container)
swaks_c() {
	local out=$1; shift
	cx swaks --server 127.0.0.1 --timeout 30 "$@" >"$ROOT$out" 2>&1
}
# eom_code FILE : the reply code to the end of DATA in a swaks transcript,
# or the last reply code if the session ended before that
eom_code() {
	awk '/^ *-> \.$/ { dot = 1; next }
	     /^ *<\*\* +[0-9][0-9][0-9]/ && !err { err = $2 }
	     /^ *<(-|\*\*) +[0-9][0-9][0-9]/ { last = $2; if (dot) { print $2; found = 1; exit } }
	     END { if (!found) print (err ? err : last) }' "$ROOT$1"
}
# request LOGIN SUBJECT : an alias request by submission with AUTH
request() {
	swaks_c /root/req.txt --port 587 --auth PLAIN --auth-user "$1" \
		--auth-password "secret-$1" --from "$1@example.org" \
		--to makealias@example.org --header "Subject: $2" --body "package test"
}
# mail_log [N] : the last N mail-facility lines of the container's journal
mail_log() { cx journalctl --no-pager -q -n "${1:-30}" SYSLOG_FACILITY=2 2>/dev/null | sed 's/^/    /'; }

step "7. boot the root with systemd (systemd-nspawn --boot, own network namespace)"
if boot first; then
	pass "the root boots with systemd as PID 1 (leader pid $LEADER)"
else
	fatal "booting the root with systemd-nspawn (log: $WORK/nspawn-first.log)"
fi
check "Postfix runs (postfix@-.service)" cx systemctl is-active postfix@-.service
check "Dovecot runs (SASL)" cx systemctl is-active dovecot.service
swaks_c /root/pre.txt --port 25 --from someone@elsewhere.test --to alice@example.org \
	--header "Subject: before the package" --body "x"
check_eq "Postfix accepts mail for alice before the package" 250 "$(eom_code /root/pre.txt)"
lap boot

step "8. install the .deb (apt-get install ./x.deb, no --force)"
cx apt-get install -y -q "$DEB_IN" >"$WORK/install.log" 2>&1
rc=$?
sed 's/^/    /' "$WORK/install.log" | grep -vE '^    (Reading|Building|Selecting|\(Reading|Preparing|Unpacking|Get:)' | tail -n 25
check_eq "apt-get install ./$(basename "$DEB") exits 0" 0 "$rc"
[ "$rc" = 0 ] || fatal "the package did not install"
check_eq "dpkg: installed" "install ok installed" "$(cx dpkg-query -W -f='${Status}' milter-alias)"
# The old program's binary needed a newer glibc than its target had.
need=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed -n 's/^ *libc6 (>= \(.*\))$/\1/p')
have=$(cx dpkg-query -W -f='${Version}' libc6)
check "the .deb's libc6 (>= ${need:-?}) is met by the target's libc6 $have" \
	dpkg --compare-versions "$have" ge "${need:-999}"
check "dpkg recorded the postinst it ran (/var/lib/dpkg/info/milter-alias.postinst)" \
	test -x "$ROOT/var/lib/dpkg/info/milter-alias.postinst"
check "postinst printed the postfix-setup hint" grep -q 'milter-aliasctl postfix-setup --apply' "$WORK/install.log"
pw=$(cx getent passwd milter-alias)
check "system user milter-alias exists" test -n "$pw"
IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
check "it is a system account (uid $uid < 1000), no login shell ($shell)" \
	bash -c "[ '${uid:-1000}' -lt 1000 ] && [ '$shell' = /usr/sbin/nologin ]"
check_eq "its home is /var/lib/milter-alias" /var/lib/milter-alias "$home"
check_eq "group milter-alias is its primary group" "$gid" "$(cx getent group milter-alias | cut -d: -f3)"
st() { cx stat -c '%U:%G %a' "$1" 2>&1; }
check_eq "/var/lib/milter-alias: milter-alias, 0755 (Postfix reads the maps)" "milter-alias:milter-alias 755" "$(st /var/lib/milter-alias)"
check_eq "/var/spool/postfix/milter-alias: milter-alias:postfix, 2750" "milter-alias:postfix 2750" \
	"$(st /var/spool/postfix/milter-alias)"
check_eq "/etc/milter-alias/tls: root:milter-alias, 0750" "root:milter-alias 750" "$(st /etc/milter-alias/tls)"
check_eq "TLS key: owned by milter-alias, 0600" "milter-alias:milter-alias 600" "$(st /etc/milter-alias/tls/key.pem)"
check "TLS certificate exists" test -s "$ROOT/etc/milter-alias/tls/cert.pem"
check "milter-aliasctl pin prints one sha256// line" \
	bash -c "[ \"\$(nsenter --target $LEADER --mount --pid --root /usr/sbin/milter-aliasctl pin | grep -c '^sha256//')\" = 1 ]"
conff=$(cx dpkg-query -W -f='${Conffiles}' milter-alias)
md5=$(md5sum "$ROOT/etc/milter-alias/milter-alias.conf" | cut -d' ' -f1)
check_eq "conffile registered with dpkg, unmodified" " /etc/milter-alias/milter-alias.conf $md5" "$(echo "$conff" | grep milter-alias.conf)"
check "milter-alias-peer -t passes on the shipped config" cx milter-alias-peer -t -c /etc/milter-alias/milter-alias.conf
check "milter-alias -t passes on the shipped config" cx milter-alias -t -c /etc/milter-alias/milter-alias.conf
for u in milter-alias-peer milter-alias; do
	check "unit $u.service installed in /$UNITDIR" test -f "$ROOT/$UNITDIR/$u.service"
	check_eq "$u.service enabled" enabled "$(cx systemctl is-enabled $u.service 2>&1)"
	if ! check_eq "$u.service started by the postinst" active "$(cx systemctl is-active $u.service 2>&1)"; then
		cx journalctl --no-pager -q -n 15 -u $u.service | sed 's/^/    /'
	fi
done
lap install

step "9. the running units: credentials, hardening, sockets, ordering"
# unit_creds UNIT : "uid=N nnp=N seccomp=N capeff=HEX groups=G,G" of its main pid
unit_creds() {
	local pid hp
	pid=$(cx systemctl show -p MainPID --value "$1")
	[ -n "$pid" ] && [ "$pid" != 0 ] || { echo "not running"; return; }
	# pid is the container's; find the host pid with that NSpid
	for hp in $(container_pids); do
		[ "$(awk '/^NSpid:/ { print $NF }' "/proc/$hp/status")" = "$pid" ] || continue
		awk '/^Uid:/ { u = $3 } /^NoNewPrivs:/ { n = $2 } /^Seccomp:/ { s = $2 }
			/^CapEff:/ { c = $2 }
			/^Groups:/ { for (i = 2; i <= NF; i++) g = g (i > 2 ? "," : "") $i }
			END { printf "uid=%s nnp=%s seccomp=%s capeff=%s groups=%s\n", u, n, s, c, g }' \
			"/proc/$hp/status"
		return
	done
	echo "pid $pid not found"
}
pdg=$(cx getent group postdrop | cut -d: -f3)
pfg=$(cx getent group postfix | cut -d: -f3)
# supplementary groups as the kernel lists them (sorted): its own group,
# and postdrop and postfix for the peer (SupplementaryGroups=postdrop
# postfix: sendmail's postdrop, and the administrator's map definitions)
peer_groups=$(printf '%s\n' "$gid" "$pdg" "$pfg" | sort -n | paste -sd, -)
check_eq "milter-alias-peer runs as milter-alias, NoNewPrivs, seccomp, no capabilities, + groups postdrop, postfix" \
	"uid=$uid nnp=1 seccomp=2 capeff=0000000000000000 groups=$peer_groups" \
	"$(unit_creds milter-alias-peer.service)"
check_eq "milter-alias runs as milter-alias, NoNewPrivs, seccomp, no capabilities" \
	"uid=$uid nnp=1 seccomp=2 capeff=0000000000000000 groups=$gid" \
	"$(unit_creds milter-alias.service)"
check_eq "milter socket in Postfix's chroot: srwxrwx--- milter-alias:postfix" \
	"srwxrwx--- milter-alias:postfix" \
	"$(cx stat -c '%A %U:%G' /var/spool/postfix/milter-alias/milter.sock 2>&1)"
check_eq "control socket directory /run/milter-alias (RuntimeDirectory): milter-alias 0750" \
	"milter-alias:milter-alias 750" "$(st /run/milter-alias)"
check "milter-aliasctl status: healthy" cx milter-aliasctl status
check "the map was created by the peer unit (StateDirectory)" \
	test -f "$ROOT/var/lib/milter-alias/aliases.lmdb"
check "postfix@-.service is ordered after milter-alias.service" \
	bash -c "nsenter --target $LEADER --mount --pid --root systemctl show -p After --value postfix@-.service | grep -qw milter-alias.service"
check "milter-alias.service is ordered after milter-alias-peer.service" \
	bash -c "nsenter --target $LEADER --mount --pid --root systemctl show -p After --value milter-alias.service | grep -qw milter-alias-peer.service"
lap units

step "10. wire Postfix: milter-aliasctl postfix-setup --apply"
cx milter-aliasctl postfix-setup >"$WORK/setup-report.txt" 2>&1
rc=$?
if grep -q 'unknown verb "postfix-setup"' "$WORK/setup-report.txt"; then
	fatal "this milter-aliasctl has no postfix-setup"
fi
sed 's/^/    /' "$WORK/setup-report.txt"
# exit 1: changes pending (milter-aliasctl(8)); a "problem:" line
# would forbid --apply
check_eq "postfix-setup (report only): changes pending, exit 1" 1 "$rc"
check "postfix-setup finds no problem on a fresh install" \
	bash -c "! grep -q '^problem:' '$WORK/setup-report.txt'"
cx milter-aliasctl postfix-setup --apply >"$WORK/setup-apply.txt" 2>&1
rc=$?
sed 's/^/    /' "$WORK/setup-apply.txt"
check_eq "postfix-setup --apply exits 0" 0 "$rc"
cx milter-aliasctl postfix-setup >"$WORK/setup-again.txt" 2>&1
rc=$?
check_eq "postfix-setup afterwards: no changes needed, exit 0" "0 yes" \
	"$rc $(grep -q 'no changes needed' "$WORK/setup-again.txt" && echo yes)"
check "postfix check is clean" bash -c "[ -z \"\$(nsenter --target $LEADER --mount --pid --root postfix check 2>&1)\" ]"
sleep 1
lap postfix-setup

step "11. create an alias by mail through the installed Postfix"
request alice "new pkg-shop made by the package test"
code=$(eom_code /root/req.txt)
check_eq "request 'new pkg-shop' by submission with AUTH: 250" 250 "$code"
[ "$code" = 250 ] || { sed 's/^/    /' "$ROOT/root/req.txt" | tail -n 12; mail_log; }
check_eq "postmap -q resolves pkg-shop@example.org to its owner" alice@example.org \
	"$(cx postmap -q pkg-shop@example.org lmdb:/var/lib/milter-alias/aliases 2>&1)"
if wait_file_grep "$ROOT/var/mail/alice" '^X-Milter-Alias-Server: ' 20; then
	pass "the confirmation (sendmail -> postdrop under NoNewPrivileges + group postdrop) reaches alice"
else
	fail "the confirmation reaches alice"; mail_log 40
	cx journalctl --no-pager -q -n 20 -u milter-alias-peer.service | sed 's/^/    /'
fi
swaks_c /root/to-alias.txt --port 25 --from someone@elsewhere.test --to pkg-shop@example.org \
	--header "Subject: order 4711 via the alias" --body "x"
check_eq "mail to the new alias (port 25): 250" 250 "$(eom_code /root/to-alias.txt)"
check "mail to the new alias is delivered to alice" \
	wait_file_grep "$ROOT/var/mail/alice" '^Subject: order 4711 via the alias' 20
swaks_c /root/unauth.txt --port 587 --from alice@example.org --to makealias@example.org \
	--header "Subject: new sneaky" --body "x"
check "a request without AUTH is refused (5xx)" bash -c "[[ '$(eom_code /root/unauth.txt)' == 5* ]]"
check "the request message itself is delivered nowhere" \
	bash -c "! grep -qs '^Subject: new pkg-shop' '$ROOT'/var/mail/*"
check "milter-aliasctl list shows the alias" bash -c \
	"nsenter --target $LEADER --mount --pid --root milter-aliasctl list | grep -q pkg-shop@example.org"
lap create-alias

step "12. reboot: the units come up by themselves, before Postfix"
poweroff
if boot second; then pass "reboot"; else fatal "reboot (log: $WORK/nspawn-second.log)"; fi
for u in milter-alias-peer milter-alias; do
	check_eq "$u.service active after boot" active "$(cx systemctl is-active $u.service 2>&1)"
done
ts() { cx systemctl show -p ActiveEnterTimestampMonotonic --value "$1"; }
t_peer=$(ts milter-alias-peer.service); t_milter=$(ts milter-alias.service); t_pf=$(ts postfix@-.service)
echo "    active since (monotonic us): peer $t_peer, milter $t_milter, postfix@- $t_pf"
check "boot order: peer, then milter, then Postfix" \
	bash -c "[ '${t_peer:-0}' -gt 0 ] && [ '$t_peer' -le '${t_milter:-0}' ] && [ '$t_milter' -le '${t_pf:-0}' ]"
request bob "new after-reboot"
check_eq "first request after boot: 250" 250 "$(eom_code /root/req.txt)"
check_eq "the alias made before the reboot still resolves" alice@example.org \
	"$(cx postmap -q pkg-shop@example.org lmdb:/var/lib/milter-alias/aliases 2>&1)"
lap reboot

step "12b. reinstall (the upgrade path of the maintainer scripts)"
keysum=$(md5sum "$ROOT/etc/milter-alias/tls/key.pem" | cut -d' ' -f1)
cx apt-get install -y -q --reinstall "$DEB_IN" >"$WORK/reinstall.log" 2>&1
check_eq "apt-get install --reinstall exits 0" 0 "$?"
check_eq "the TLS key is kept" "$keysum" "$(md5sum "$ROOT/etc/milter-alias/tls/key.pem" | cut -d' ' -f1)"
for u in milter-alias-peer milter-alias; do
	check_eq "$u.service active after the reinstall (restarted)" active "$(cx systemctl is-active $u.service 2>&1)"
done
check_eq "aliases survive the reinstall" alice@example.org \
	"$(cx postmap -q pkg-shop@example.org lmdb:/var/lib/milter-alias/aliases 2>&1)"
lap reinstall

# package_procs : container processes running one of the package's programs
package_procs() {
	local p
	for p in $(container_pids); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qE '^/usr/sbin/milter-alias' && echo "$p"
	done
	return 0
}
# postfix_delivers WHEN : ordinary mail to bob, by port 25 and by
# submission (alice, AUTH), is accepted and delivered
postfix_delivers() {
	local when=$1 code port
	for port in 25 587; do
		local subj="ordinary mail $when (port $port)" auth=()
		[ $port = 25 ] || auth=(--auth PLAIN --auth-user alice --auth-password secret-alice)
		swaks_c /root/ordinary.txt --port $port "${auth[@]}" --from alice@example.org \
			--to bob@example.org --header "Subject: $subj" --body "x"
		code=$(eom_code /root/ordinary.txt)
		check_eq "$when: port $port accepts ordinary mail" 250 "$code"
		[ "$code" = 250 ] || grep -E '<\*\*' "$ROOT/root/ordinary.txt" | sed 's/^/    /'
		if [ "$code" = 250 ]; then
			check "$when: ordinary mail by port $port is delivered" \
				wait_file_grep "$ROOT/var/mail/bob" "^Subject: ${subj//[()]/.}" 15
		fi
	done
}
# postfix_leftovers : main.cf/master.cf settings that name milter-alias
postfix_leftovers() {
	local l
	l=$(cx postconf -n 2>/dev/null | grep -E 'milter-alias|mua_milters'
	    cx postconf -P 2>/dev/null | grep -E 'milter-alias|mua_milters')
	[ -z "$l" ] && return 0
	echo "    Postfix settings that still name milter-alias (the package never edits them):"
	printf '%s\n' "$l" | sed 's/^/      /'
}

step "13a. remove is refused while Postfix still uses milter-alias"
cx apt-get remove -y -q milter-alias >"$WORK/remove-refused.log" 2>&1
rc=$?
sed 's/^/    /' "$WORK/remove-refused.log" | grep -E 'milter-alias:|settings|Take them' | head -n 6
check "apt-get remove fails while Postfix names milter-alias" test "$rc" -ne 0
check "the refusal says what to take out" grep -q "Postfix still uses milter-alias" "$WORK/remove-refused.log"
check_eq "the package is still installed" "install ok installed" \
	"$(cx dpkg-query -W -f='${Status}' milter-alias 2>&1)"
postfix_delivers "after the refused remove"

step "13b. undo postfix-setup from its backups, as the refusal says"
for f in main.cf master.cf; do
	b=$(ls -1 "$ROOT"/etc/postfix/$f.milter-alias-backup.* 2>/dev/null | head -n 1)
	check "postfix-setup's backup of $f exists" test -n "$b"
	[ -n "$b" ] && cp -p "$b" "$ROOT/etc/postfix/$f"
done
cx postfix reload >/dev/null 2>&1
check_eq "Postfix no longer names milter-alias" "" \
	"$(cx postconf -n 2>/dev/null | grep -E 'milter-alias|milter_alias'; cx postconf -P 2>/dev/null | grep -E 'milter-alias|milter_alias')"

step "13. remove the package (apt-get remove, configuration kept)"
cx apt-get remove -y -q milter-alias >"$WORK/remove.log" 2>&1
rc=$?
sed 's/^/    /' "$WORK/remove.log" | grep -vE '^    (Reading|Building|\(Reading)' | tail -n 8
check_eq "apt-get remove milter-alias exits 0" 0 "$rc"
check_eq "dpkg: config-files" "deinstall ok config-files" "$(cx dpkg-query -W -f='${Status}' milter-alias 2>&1)"
check_eq "no process of the package runs after remove" "" "$(package_procs)"
check "remove keeps the user, the state and the key" \
	test -f "$ROOT/var/lib/milter-alias/aliases" -a -f "$ROOT/etc/milter-alias/tls/key.pem" \
	-a -f "$ROOT/etc/milter-alias/milter-alias.conf"
postfix_leftovers
postfix_delivers "after remove"
lap remove

step "14. purge the package"
cx apt-get purge -y -q milter-alias >"$WORK/purge.log" 2>&1
rc=$?
sed 's/^/    /' "$WORK/purge.log" | grep -vE '^    (Reading|Building|\(Reading)' | tail -n 15
check_eq "apt-get purge milter-alias exits 0" 0 "$rc"
check_eq "dpkg no longer knows the package" "" \
	"$(cx dpkg-query -W -f='${Status}' milter-alias 2>/dev/null | grep -v 'not-installed')"
check "user milter-alias is gone" bash -c "! nsenter --target $LEADER --mount --root getent passwd milter-alias"
check "group milter-alias is gone" bash -c "! nsenter --target $LEADER --mount --root getent group milter-alias"
for p in /var/lib/milter-alias /etc/milter-alias /var/spool/postfix/milter-alias /run/milter-alias \
	 /$UNITDIR/milter-alias.service /$UNITDIR/milter-alias-peer.service \
	 /etc/systemd/system/multi-user.target.wants/milter-alias.service \
	 /etc/systemd/system/multi-user.target.wants/milter-alias-peer.service \
	 /usr/sbin/milter-alias /usr/sbin/milter-alias-peer /usr/sbin/milter-aliasctl \
	 /var/lib/dpkg/info/milter-alias.postinst /var/lib/dpkg/info/milter-alias.conffiles; do
	check "gone: $p" bash -c "[ ! -e '$ROOT$p' ] && [ ! -L '$ROOT$p' ]"
done
check "no leftover in /var/lib/systemd/deb-systemd-helper-enabled" \
	bash -c "! find '$ROOT/var/lib/systemd/deb-systemd-helper-enabled' -name 'milter-alias*' | grep -q ."
check_eq "no process of the package runs" "" "$(package_procs)"
for u in milter-alias-peer milter-alias; do
	check_eq "systemd no longer has $u.service" "not-found" \
		"$(cx systemctl show -p LoadState --value $u.service 2>&1)"
done
lap purge

step "15. Postfix after the purge"
postfix_leftovers
postfix_delivers "after purge"
check_eq "nothing deferred in Postfix's queue" 0 "$(cx postqueue -j 2>/dev/null | grep -c .)"
[ "$failed" = 0 ] || mail_log 25
lap after-purge

step "summary"
summary
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
