#!/bin/bash
# test_arm64.sh - the arm64 package for Debian 12, built on this amd64
# machine and tested where it will run (issue 14).  Run as root; it fails
# (never skips) when it cannot run.
#
#  1. build: "make dist" makes the release tarball, and
#     contrib/cross-build-arm64.sh cross-builds the arm64 .deb from it in a
#     clean amd64 root with Debian's cross toolchain and bookworm's arm64
#     -dev packages (dpkg-buildpackage -a arm64), and compiles the unit
#     tests for arm64 in the same build tree;
#  2. the .deb: Architecture arm64, AArch64 ELF binaries, lintian;
#  3. a clean bookworm arm64 root: debootstrap --arch arm64
#     --variant=minbase, cached as a tarball in $MA_ARM64_CACHE (redone
#     after 7 days) and unpacked fresh each run; its binaries run under
#     qemu-user (qemu-user-static, registered with binfmt_misc with the F
#     flag, so they run inside the chroot);
#  4. in that root: Postfix, postfix-lmdb, Dovecot and what the unit tests
#     need from bookworm arm64, then the .deb with plain "apt-get install
#     ./x.deb"; its postinst (user, directories, TLS key by the arm64
#     milter-aliasctl) is checked;
#  5. library versions: every versioned symbol the binaries need
#     (readelf -V: GLIBC_2.x and the other libraries' versions) is defined
#     by the libraries of the bookworm arm64 root, every NEEDED library is
#     there, and every versioned Depends (dpkg-shlibdeps's, e.g. libc6 (>=
#     2.34)) is met by the root's packages;
#  6. the unit tests as arm64 binaries: "make check" of the cross-built
#     tree inside the arm64 root (Criterion unit tests, milter protocol
#     tests of the arm64 daemons, CLI tests), in a network namespace with
#     only loopback;
#  7. a mixed pair: host b is the arm64 root in a network namespace (its
#     own arm64 Postfix and Dovecot, the installed package's daemons started
#     as their systemd units would: user milter-alias, groups postdrop and
#     postfix, no new privileges, no capabilities, UMask 0007, the runtime
#     directory, READY=1 on NOTIFY_SOCKET for the Type=notify peer unit);
#     host a is an amd64 host of tests/twohost/lib2.sh (this tree's
#     binaries, the host's Postfix).  They peer over mutual TLS with pinned
#     keys.  An alias requested by mail on the arm64 server is committed
#     and confirmed on both, one requested on the amd64 server too; a
#     disable travels arm64 -> amd64; verify finds both maps identical.
#     systemd is not booted in the arm64 root: systemd as PID 1 under
#     qemu-user is not dependable, and a chroot in a namespace is what
#     lets the arm64 server join the amd64 one on the test network.
#
# Output: "ok   - ..." / "FAIL - ..." lines, timings, "N passed, M failed".
#
# Environment:
#   MA_ARM64_WORK    work directory, emptied first (/var/tmp/milter-alias-arm64)
#   MA_ARM64_CACHE   cache: debootstrap tarballs, .debs, the cross-build root
#                    (/var/cache/milter-alias-tests)
#   DR_REFRESH=1     debootstrap (and prepare the cross-build root) again
#   MA_ARM64_KEEP=1  leave the work directory and the hosts (debugging)
#   MA_ARM64_DEB=FILE MA_ARM64_CHECK=FILE  test these instead of building
#                    (the .deb and the -check.tar of cross-build-arm64.sh -t)
set -uo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source=../../contrib/debroot.sh
. "$top/contrib/debroot.sh"
. "$top/tests/package/mailconf.sh"

WORK=${MA_ARM64_WORK:-/var/tmp/milter-alias-arm64}
CACHE=${MA_ARM64_CACHE:-/var/cache/milter-alias-tests}
ROOT=$WORK/root
ARCH=arm64
TRIPLET=aarch64-linux-gnu
T0=$(date +%s)

# The amd64 side: lib2.sh's host a.  Its own test root and namespaces (ta-*).
TW_SUITE=arm64
export TH_ROOT=$WORK/hosts TH_NS_PREFIX=tm-
# shellcheck source=../twohost/lib2.sh
. "$top/tests/twohost/lib2.sh"
TW_COMMIT_TIMEOUT=15            # the arm64 side runs emulated
B_IP=198.51.100.2

# ------------------------------------------------------------- reporting --
# th_pass / th_fail / th_check / th_check_eq / th_summary come from lib.sh
TIMINGS=
_lap=$T0
step() { printf '\n--- %s\n' "$*"; }
lap() {
	local now; now=$(date +%s)
	TIMINGS="$TIMINGS
  $1: $((now - _lap)) s"
	printf '    [%s: %d s]\n' "$1" $((now - _lap))
	_lap=$now
}
finish() {
	echo "timings:$TIMINGS"
	echo "total time: $(( $(date +%s) - T0 )) s"
	th_summary
}
fatal() { th_fail "$*"; echo "cannot go on"; finish; exit 1; }

# rx CMD... : CMD in the arm64 root (this machine's network namespace: only
# for what needs no network)
rx() { dr_chroot "$ROOT" "$@"; }
# bx CMD... : CMD in the arm64 root, in host b's network namespace
bx() { ip netns exec "$(th_ns b)" chroot "$ROOT" /usr/bin/env -i \
	PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

cleanup() {
	local rc=$?
	if [ "${MA_ARM64_KEEP:-0}" = 1 ]; then
		echo "MA_ARM64_KEEP=1: leaving $WORK and the hosts running"
	else
		th_host_destroy a >/dev/null 2>&1
		th_host_destroy b >/dev/null 2>&1
		_th_switch_gc
		[ -n "${NOTIFY_PID:-}" ] && kill "$NOTIFY_PID" 2>/dev/null
		dr_rm_root "$WORK" || :
	fi
	rm -f "$CACHE/.lock-arm64.pid"
	return $rc
}

# ------------------------------------------------------------ preflight --
step "preflight"
[ "$(id -u)" = 0 ] || fatal "must run as root (debootstrap, chroot, network namespaces)"
missing=
for c in make debootstrap readelf lintian dpkg-deb swaks postmap postfix ip nsenter python3; do
	command -v "$c" >/dev/null || missing="$missing $c"
done
[ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || [ -x /usr/bin/qemu-aarch64-static ] ||
	missing="$missing qemu-user-static"
[ -z "$missing" ] || fatal "missing:$missing (contrib/install-deps.sh installs them)"
[ -f "$top/Makefile" ] || fatal "$top is not configured (autoreconf -fi && ./configure)"
SUITE=$(dr_suite) && MIRROR=$(dr_mirror) || fatal "release or mirror unknown"
echo "release $SUITE, mirror $MIRROR, work $WORK, cache $CACHE"
# binfmt_misc: mounted, and qemu-aarch64 registered with the F flag (the
# interpreter is opened at registration, so arm64 binaries run in a chroot)
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
	mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
		fatal "cannot mount binfmt_misc"
fi
bf=/proc/sys/fs/binfmt_misc/qemu-aarch64
if ! grep -qx enabled "$bf" 2>/dev/null; then
	update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || update-binfmts --import qemu-aarch64 >/dev/null 2>&1
fi
grep -qx enabled "$bf" 2>/dev/null || fatal "qemu-aarch64 is not registered with binfmt_misc (qemu-user-static, binfmt-support)"
th_check "binfmt_misc runs arm64 binaries through qemu-user, opened at registration (flag F)" \
	grep -qE '^flags: .*F' "$bf"
sed -n 's/^interpreter /    interpreter: /p' "$bf"

mkdir -p "$CACHE" "$CACHE/apt-archives-$ARCH/partial" || fatal "cannot create $CACHE"
exec 9>"$CACHE/.lock-arm64"
flock -n 9 || fatal "another test_arm64.sh holds $CACHE/.lock-arm64"
trap cleanup EXIT
trap 'exit 130' INT TERM
th_destroy_all >/dev/null 2>&1
dr_rm_root "$WORK" || fatal "cannot clean $WORK (mounts left?)"
mkdir -p "$WORK/build" || fatal "cannot create $WORK"
lap preflight

# ---------------------------------------------------------------- build --
step "1. cross-build the arm64 .deb from the release tarball"
if [ -n "${MA_ARM64_DEB:-}" ]; then
	cp "$MA_ARM64_DEB" "$WORK/build/" && cp "$MA_ARM64_CHECK" "$WORK/build/" ||
		fatal "MA_ARM64_DEB needs MA_ARM64_CHECK too"
	echo "testing the given $MA_ARM64_DEB (no build)"
else
	version=$(sed -n 's/^PACKAGE_VERSION = //p' "$top/Makefile")
	if ! make -C "$top" dist >"$WORK/dist.log" 2>&1; then
		tail -n 20 "$WORK/dist.log"; fatal "make dist"
	fi
	mv "$top/milter-alias-$version.tar.gz" "$WORK/" || fatal "make dist made no tarball"
	th_pass "make dist: milter-alias-$version.tar.gz"
	if MA_CROSS_CACHE=$CACHE MA_CROSS_WORK=$WORK/crossbuild \
		"$top/contrib/cross-build-arm64.sh" -t -o "$WORK/build" \
		"$WORK/milter-alias-$version.tar.gz" 2>&1 | sed 's/^/    /'; then
		th_pass "contrib/cross-build-arm64.sh: dpkg-buildpackage -a arm64, tests compiled for arm64"
	else
		fatal "the cross build (log: $WORK/build/*.build)"
	fi
fi
DEB=$(ls "$WORK"/build/milter-alias_*_$ARCH.deb 2>/dev/null | head -n1)
CHECKTAR=$(ls "$WORK"/build/milter-alias_*_$ARCH-check.tar 2>/dev/null | head -n1)
[ -n "$DEB" ] && [ -n "$CHECKTAR" ] || fatal "no arm64 .deb or check tarball"
echo "package: $DEB ($(stat -c %s "$DEB") bytes)"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
echo "Depends: $DEPENDS"
lap build

# -------------------------------------------------------- the .deb itself --
step "2. the package: architecture, ELF machine, lintian"
th_check_eq "Architecture: $ARCH" "$ARCH" "$(dpkg-deb -f "$DEB" Architecture)"
mkdir -p "$WORK/debx" && dpkg-deb -x "$DEB" "$WORK/debx" || fatal "dpkg-deb -x"
BINS=
for b in usr/sbin/milter-alias usr/sbin/milter-alias-peer usr/sbin/milter-aliasctl; do
	m=$(readelf -h "$WORK/debx/$b" 2>/dev/null | sed -n 's/^ *Machine: *//p')
	c=$(readelf -h "$WORK/debx/$b" 2>/dev/null | sed -n 's/^ *Class: *//p')
	th_check_eq "/$b is a 64-bit AArch64 ELF" "ELF64 AArch64" "$c $m"
	BINS="$BINS $b"
done
lintian --fail-on error,warning "$DEB" >"$WORK/lintian.log" 2>&1
rc=$?
grep -v 'running with root privileges' "$WORK/lintian.log" | sed 's/^/    /'
if [ $rc = 0 ]; then th_pass "lintian: no errors, no warnings"; else th_fail "lintian (status $rc)"; fi
lap package

# ---------------------------------------------------------- arm64 root --
step "3. a clean $SUITE $ARCH root (debootstrap --arch $ARCH --variant=minbase)"
BASE=$CACHE/debootstrap-$SUITE-$ARCH-minbase.tar
dr_debootstrap_cached "$BASE" "$ARCH" "$SUITE" "$MIRROR" "$WORK/debootstrap" |
	sed 's/^/    /'
[ -s "$BASE" ] || fatal "debootstrap --arch $ARCH"
# mount_root : /proc, /run, and a /dev of its own (as a container has):
# the machine's /dev is not shared with the root
mount_root() {
	local n dn ma mi
	mount -t proc proc "$ROOT/proc" || return 1
	mount -t tmpfs -o mode=0755,size=1m tmpfs "$ROOT/dev" || return 1
	for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
		IFS=: read -r dn ma mi <<<"$n"
		mknod -m 666 "$ROOT/dev/$dn" c "$ma" "$mi" || return 1
	done
	mkdir -p "$ROOT/dev/shm" "$ROOT/dev/pts"
	mount -t tmpfs -o mode=1777 tmpfs "$ROOT/dev/shm" || return 1
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$ROOT/dev/pts" || return 1
	ln -s pts/ptmx "$ROOT/dev/ptmx"
	ln -s /proc/self/fd "$ROOT/dev/fd"
	ln -s /proc/self/fd/0 "$ROOT/dev/stdin"; ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
	ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
	mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run" || return 1
	mount --bind "$CACHE/apt-archives-$ARCH" "$ROOT/var/cache/apt/archives"
}
# What the test needs in the root besides the package: Postfix and Dovecot
# for host b; make, python3, gnutls-bin (certtool) and Criterion's runtime
# for "make check".  Installing them under emulation takes minutes, so the
# root with them is cached too (never with the package or its own
# libraries: those come from the mirror each run, by apt-get install ./deb).
ROOT_PKGS="postfix postfix-lmdb dovecot-core python3 make gnutls-bin libcriterion3 procps"
TOOLS=$CACHE/debootstrap-$SUITE-$ARCH-tools-$(echo "$ROOT_PKGS" | sha256sum | cut -c1-10).tar
if [ "${DR_REFRESH:-0}" = 1 ] || [ ! -s "$TOOLS" ] || [ "$BASE" -nt "$TOOLS" ] ||
   [ -n "$(find "$TOOLS" -mtime +7 2>/dev/null)" ]; then
	echo "    preparing $TOOLS (not cached)"
	dr_unpack "$BASE" "$ROOT" || fatal "unpack $BASE"
	mount_root || fatal "mounts in the root"
	dr_apt_prepare "$ROOT"
	echo "postfix postfix/main_mailer_type select No configuration" | rx debconf-set-selections
	t=$(date +%s)
	# shellcheck disable=SC2086
	if ! { rx apt-get update -q && rx apt-get install -y -q $ROOT_PKGS; } >"$WORK/apt-root.log" 2>&1; then
		tail -n 30 "$WORK/apt-root.log"; fatal "apt-get in the $ARCH root (log: $WORK/apt-root.log)"
	fi
	th_pass "installed in the $ARCH root: $ROOT_PKGS ($(( $(date +%s) - t )) s, under emulation)"
	dr_umount_all "$ROOT"
	rm -f "$CACHE"/debootstrap-"$SUITE"-"$ARCH"-tools-*.tar
	tar -C "$ROOT" -cf "$TOOLS.new" . && mv "$TOOLS.new" "$TOOLS" || fatal "caching $TOOLS"
	echo "    cached as $TOOLS"
else
	echo "    cached root with the test's tools: $TOOLS ($(date -r "$TOOLS" '+%F %T'))"
	dr_unpack "$TOOLS" "$ROOT" || fatal "unpack $TOOLS"
	th_pass "fresh $ARCH root (debootstrap + $ROOT_PKGS) unpacked from its tarball"
fi
mount_root || fatal "mounts in the root"
th_check_eq "the root is $ARCH (dpkg --print-architecture)" "$ARCH" "$(rx dpkg --print-architecture)"
th_check_eq "its programs run as aarch64 (uname -m under qemu-user)" aarch64 "$(rx uname -m)"
th_check "the package is not installed yet" bash -c "! chroot '$ROOT' dpkg -s milter-alias >/dev/null 2>&1"
lap root

step "4. the .deb, installed with apt-get from $SUITE $ARCH"
dr_apt_prepare "$ROOT"
t=$(date +%s)
rx apt-get update -q >"$WORK/apt-update.log" 2>&1 || { tail -n 20 "$WORK/apt-update.log"; fatal "apt-get update in the root"; }
echo "    apt-get update: $(( $(date +%s) - t )) s"
rm -f "$ROOT/etc/dpkg/dpkg.cfg.d/debroot-unsafe-io"
mkdir -p "$ROOT/var/tmp/pkg" && cp "$DEB" "$ROOT/var/tmp/pkg/" && chmod 644 "$ROOT"/var/tmp/pkg/*.deb
DEB_IN=/var/tmp/pkg/$(basename "$DEB")
rx apt-get install -y -q "$DEB_IN" >"$WORK/install.log" 2>&1
rc=$?
grep -vE '^(Reading|Building|Selecting|\(Reading|Preparing|Unpacking|Get:)' "$WORK/install.log" | tail -n 15 | sed 's/^/    /'
th_check_eq "apt-get install ./$(basename "$DEB") (no --force) exits 0" 0 "$rc"
[ "$rc" = 0 ] || fatal "the package did not install"
th_check_eq "dpkg: installed" "install ok installed" "$(rx dpkg-query -W -f='${Status}' milter-alias)"
th_check "postinst made the system user milter-alias" rx getent passwd milter-alias
th_check_eq "postinst made the TLS key with the arm64 milter-aliasctl: milter-alias, 0600" \
	"milter-alias 600" "$(rx stat -c '%U %a' /etc/milter-alias/tls/key.pem 2>&1)"
th_check_eq "the arm64 milter-aliasctl pin prints one sha256// line" 1 \
	"$(rx milter-aliasctl pin 2>&1 | grep -cE '^sha256//[A-Za-z0-9+/]{43}=$')"
for b in milter-alias-peer milter-alias; do
	th_check "$b -t passes on the shipped config" rx "$b" -t -c /etc/milter-alias/milter-alias.conf
done
lap install

# ------------------------------------------------------ library versions --
step "5. library versions: the binaries need nothing newer than $SUITE $ARCH has"
# libfile NAME : the root's copy of shared library NAME (multiarch dirs)
libfile() {
	local d
	for d in lib/$TRIPLET usr/lib/$TRIPLET lib usr/lib; do
		[ -e "$ROOT/$d/$1" ] && { readlink -f "$ROOT/$d/$1"; return 0; }
	done
	return 1
}
# version_needs FILE : "LIBRARY VERSION" for each versioned symbol need
version_needs() {
	readelf -V -W "$1" | awk '
		/^Version needs section/ { s = 1; next }
		/^Version (definition|symbols) section/ { s = 0 }
		s && / File: / { for (i = 1; i <= NF; i++) if ($i == "File:") f = $(i + 1) }
		s && / Name: / && f != "" { for (i = 1; i <= NF; i++) if ($i == "Name:") print f, $(i + 1) }'
}
# version_defs FILE : the version names FILE defines
version_defs() {
	readelf -V -W "$1" | awk '
		/^Version definition section/ { s = 1; next }
		/^Version (needs|symbols) section/ { s = 0 }
		s && / Name: / { for (i = 1; i <= NF; i++) if ($i == "Name:") print $(i + 1) }'
}
newest_glibc=
for b in $BINS; do
	f=$WORK/debx/$b
	bad=
	n=0
	for lib in $(readelf -d -W "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		libfile "$lib" >/dev/null || bad="$bad $lib(missing)"
	done
	while read -r lib ver; do
		[ -n "$lib" ] || continue
		n=$((n + 1))
		lf=$(libfile "$lib") || { bad="$bad $lib(missing)"; continue; }
		version_defs "$lf" | grep -qxF "$ver" || bad="$bad $lib:$ver"
	done < <(version_needs "$f")
	g=$(version_needs "$f" | awk '$2 ~ /^GLIBC_[0-9.]+$/ { sub(/GLIBC_/, "", $2); print $2 }' |
		sort -t. -k1,1n -k2,2n -k3,3n | tail -n1)
	[ -z "$g" ] || newest_glibc=$(printf '%s\n' "$newest_glibc" "$g" | grep . |
		sort -t. -k1,1n -k2,2n -k3,3n | tail -n1)
	if [ -z "$bad" ] && [ "$n" -gt 0 ]; then
		th_pass "/$b: all $n versioned symbol needs (newest GLIBC_$g) are defined by $SUITE $ARCH's libraries"
	else
		th_fail "/$b: versions $SUITE $ARCH does not have:${bad:- (no version needs read)}"
	fi
done
version_needs "$WORK/debx/usr/sbin/milter-alias-peer" | awk '{ print $1 }' | sort | uniq -c |
	awk '{ printf "    milter-alias-peer needs %s versions of %s\n", $1, $2 }'
th_check "the check can fail: GLIBC_2.99 is not among the versions the root's libc defines" \
	bash -c "! { $(declare -f version_defs); version_defs '$(libfile libc.so.6)'; } | grep -qx GLIBC_2.99"
th_check "... while GLIBC_2.17 is (sanity of the reading)" \
	bash -c "{ $(declare -f version_defs); version_defs '$(libfile libc.so.6)'; } | grep -qx GLIBC_2.17"
rootglibc=$(rx dpkg-query -W -f='${Version}' libc6)
echo "    newest glibc symbol version needed: GLIBC_$newest_glibc; the root's libc6: $rootglibc"
th_check "GLIBC_$newest_glibc <= the root's glibc ${rootglibc%%-*}" \
	dpkg --compare-versions "${rootglibc%%-*}" ge "$newest_glibc"
for b in $BINS; do
	th_check "/$b: ldd in the root finds every library" \
		bash -c "out=\$(chroot '$ROOT' ldd /$b 2>&1) && ! grep -q 'not found' <<<\"\$out\""
done
# every versioned Depends (what dpkg-shlibdeps wrote) is met in the root
while read -r dep; do
	[ -n "$dep" ] || continue
	pkg=${dep%% *}; op=$(sed -n 's/.*(\([<>=]*\) .*/\1/p' <<<"$dep"); ver=$(sed -n 's/.*(.* \(.*\))/\1/p' <<<"$dep")
	[ -n "$op" ] || continue
	have=$(rx dpkg-query -W -f='${Version}' "${pkg%:*}" 2>/dev/null)
	case $op in '>=') cop=ge ;; '>>') cop=gt ;; '=') cop=eq ;; '<<') cop=lt ;; '<=') cop=le ;; *) cop=ge ;; esac
	th_check "Depends: $dep is met by $SUITE $ARCH's $pkg ${have:-(not installed)}" \
		dpkg --compare-versions "${have:-0}" "$cop" "$ver"
done < <(tr ',' '\n' <<<"$DEPENDS" | sed 's/^ *//; s/ *$//' | grep -v '|')
if grep -q 'dpkg-shlibdeps' "$WORK"/build/*.build 2>/dev/null; then
	grep -E 'dpkg-shlibdeps: (warning|error)' "$WORK"/build/*.build | sed 's/^/    /'
fi
lap libraries

step "5b. the mail system the administrator of the arm64 server has"
# Host b's mail system, as an administrator would have it on the Pi:
# example.org a local domain (alice, bob, carol: /var/mail/USER), Dovecot
# for SASL, submission with AUTH, smtpd chrooted as Debian ships it.
ma_write_mailconf "$ROOT" b.example.test all tests/arm64/test_arm64.sh 1 ||
	fatal "write the $ARCH root's main.cf, aliases and dovecot.conf"
: >"$ROOT/etc/dovecot/users"
for u in $TH_USERS; do
	printf '%s:{PLAIN}%s::::::\n' "$u" "$(th_password "$u")" >>"$ROOT/etc/dovecot/users"
done
if ! { rx chown root:dovecot /etc/dovecot/users && rx chmod 640 /etc/dovecot/users &&
       for u in $TH_USERS; do rx useradd -M -s /usr/sbin/nologin "$u" || exit 1; done &&
       rx newaliases &&
       rx postconf -M 'submission/inet=submission inet n - y - - smtpd' &&
       rx postconf -P 'submission/inet/syslog_name=postfix/submission' \
		'submission/inet/smtpd_sasl_auth_enable=yes' \
		'submission/inet/smtpd_tls_security_level=none' \
		'submission/inet/smtpd_relay_restrictions=$mua_relay_restrictions'; } \
		>"$WORK/mailsetup.log" 2>&1; then
	cat "$WORK/mailsetup.log"; fatal "Postfix/Dovecot setup in the $ARCH root"
fi
th_pass "the root's Postfix and Dovecot configured (host b's mail system)"
lap mail-setup

# ---------------------------------------------------- unit tests on arm64 --
step "6. make check as arm64 binaries in the $ARCH root (own network namespace)"
mkdir -p "$ROOT/build" && tar -C "$ROOT/build" -xf "$CHECKTAR" || fatal "unpack $CHECKTAR"
SRCDIR=/build/$(tar -tf "$CHECKTAR" | head -n1 | cut -d/ -f1)
th_check_eq "the test programs are arm64 (tests/unit/test_msg)" AArch64 \
	"$(readelf -h "$ROOT$SRCDIR/tests/unit/test_msg" 2>/dev/null | sed -n 's/^ *Machine: *//p')"
t=$(date +%s)
unshare --net sh -c "ip link set lo up && exec chroot '$ROOT' /usr/bin/env -i \
	PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
	sh -c 'cd $SRCDIR && make check'" >"$WORK/check.log" 2>&1
rc=$?
echo "    make check took $(( $(date +%s) - t )) s"
grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' "$WORK/check.log" | tr '\n' ' ' | sed 's/^/    /'; echo
grep -E '^(FAIL|ERROR|XPASS|SKIP):' "$WORK/check.log" | sed 's/^/    /'
th_check_eq "make check in the $ARCH root exits 0" 0 "$rc"
# a test that skips itself here would hide what this layer is for
th_check_eq "make check in the $ARCH root: no test skipped itself" "" \
	"$(grep -E '^SKIP:' "$WORK/check.log" | tr '\n' ' ')"
for log in "$ROOT$SRCDIR"/tests/unit/*.log; do
	[ -e "$log" ] || continue
	n=$(basename "$log" .log)
	[ "$n" = test-suite ] && continue
	s=$(grep -E 'Synthesis: Tested' "$log" | tail -n1)
	# every test the binary has ran (Criterion counts a skipped one out)
	all=$(rx "$SRCDIR/tests/unit/$n" --list 2>/dev/null | grep -cE '^[^:]+: [0-9]+ tests?$' >/dev/null &&
	      rx "$SRCDIR/tests/unit/$n" --list 2>/dev/null | sed -nE 's/^[^:]+: ([0-9]+) tests?$/\1/p' |
	      awk '{ t += $1 } END { print t + 0 }')
	if [ -n "$s" ] && grep -qE "Tested: ${all:-x} \| Passing: ${all:-x} \| Failing: 0 \| Crashing: 0" <<<"$s"; then
		th_pass "arm64 $n: all $all tests pass: $s"
	else
		th_fail "arm64 $n: ${s:-no Criterion synthesis} (the binary lists ${all:-?} tests)"
		grep -E '\[----\]|\[FAIL\]' "$log" | head -n 10 | sed 's/^/      /'
	fi
done
for log in "$ROOT$SRCDIR"/tests/milter/run.sh.log "$ROOT$SRCDIR"/tests/milter/cli.sh.log; do
	n=$(basename "$log" .sh.log)
	s=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" 2>/dev/null | tail -n1)
	if [ -n "$s" ] && grep -qE ' 0 failed' <<<"$s"; then
		th_pass "arm64 milter tests $n.sh: $s"
	else
		th_fail "arm64 milter tests $n.sh: ${s:-no result line}"
		grep -E '^not ok' "$log" 2>/dev/null | head -n 10 | sed 's/^/      /'
	fi
done
lap make-check

# ------------------------------------------------------------ mixed pair --
step "7. a mixed pair: b = the arm64 root, a = an amd64 host (tests/twohost/lib2.sh)"
tw_preflight || fatal "the amd64 side (lib2.sh preflight)"
th_init "$TH_ROOT" "$TH_NS_PREFIX" || fatal "th_init"
th_host_create a "$(tw_ip a)" || fatal "create host a"
th_net_create b "$B_IP" || fatal "create host b's network namespace"
tw_keys a || fatal "keys of a"
rx milter-aliasctl pin >"$(th_dir b)/pin" || fatal "pin of b"
tw_write_conf a >/dev/null || fatal "conf of a"

# milter-alias on host a needs nothing else; host b: the arm64 tools.
# tw_ctl, tw_q and tw_map_entries ask b's own arm64 programs and files.
eval "$(declare -f tw_ctl | sed '1s/tw_ctl/_tw_ctl_native/')"
tw_ctl() { if [ "$1" = b ]; then shift; bx milter-aliasctl "$@"; else _tw_ctl_native "$@"; fi; }
eval "$(declare -f tw_q | sed '1s/tw_q/_tw_q_native/')"
tw_q() { if [ "$1" = b ]; then rx postmap -q "$2" lmdb:/var/lib/milter-alias/aliases 2>/dev/null || :; else _tw_q_native "$@"; fi; }
eval "$(declare -f tw_map_entries | sed '1s/tw_map_entries/_tw_map_entries_native/')"
tw_map_entries() {
	if [ "$1" = b ]; then grep -vE '^[[:space:]]*(#|$)' "$ROOT/var/lib/milter-alias/aliases" 2>/dev/null | sort
	else _tw_map_entries_native "$@"; fi
}

# The pair, as the administrator adds it to the shipped configuration.
cat >>"$ROOT/etc/milter-alias/milter-alias.conf" <<EOF

# added by tests/arm64/test_arm64.sh: b (arm64) peers with a (amd64)
node_name = "b.example.test"
commit_timeout = $TW_COMMIT_TIMEOUT
listen = "$B_IP:$TW_PORT"
tls {
  key_file  = "/etc/milter-alias/tls/key.pem"
  cert_file = "/etc/milter-alias/tls/cert.pem"
}
peer "a.example.test" {
  address = "$(tw_ip a):$TW_PORT"
  pin     = "$(tw_pin a)"
}
EOF
th_check "milter-alias-peer -t (arm64) accepts b's pair configuration" \
	rx milter-alias-peer -t -c /etc/milter-alias/milter-alias.conf
touch -d "@$(( $(date +%s) - 10 ))" "$ROOT/etc/postfix/main.cf" "$ROOT/etc/postfix/master.cf"
rm -f "$ROOT/usr/sbin/policy-rc.d"

# unit_start NAME LOG [GROUPS] : start /usr/sbin/NAME in b's namespace as
# the package's unit does: User/Group milter-alias (+ SupplementaryGroups),
# NoNewPrivileges, an empty CapabilityBoundingSet, UMask 0007, and
# NOTIFY_SOCKET for the peer (Type=notify).  -f: log to stderr, into LOG
# (the unit's syslog lines go to the journal, which this root has not).
unit_start() {
	local name=$1 log=$2 groups=(--clear-groups)
	[ -z "${3:-}" ] || groups=(--groups="$3")
	th_daemon b "$log" chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 ${NOTIFY:+NOTIFY_SOCKET=$NOTIFY} \
		sh -c 'umask 0007; exec "$@"' unit \
		setpriv --reuid=milter-alias --regid=milter-alias "${groups[@]}" \
		--no-new-privs --bounding-set=-all --inh-caps=-all \
		"/usr/sbin/$name" -f -c /etc/milter-alias/milter-alias.conf 9>&-
}
blog=$(th_dir b)
# RuntimeDirectory=milter-alias, mode 0750
install -d -o "$(rx id -u milter-alias)" -g "$(rx id -g milter-alias)" -m 0750 "$ROOT/run/milter-alias"
# a NOTIFY_SOCKET listener, as systemd is for Type=notify
python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777)
s.settimeout(300)
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        try:
            f.write(s.recv(4096) + b"\n")
        except socket.timeout:
            break
' "$ROOT/run/notify.sock" "$blog/notify.txt" 9>&- &
NOTIFY_PID=$!
_th_poll 5 test -S "$ROOT/run/notify.sock"
t=$(date +%s)
BPEER=$(NOTIFY=/run/notify.sock unit_start milter-alias-peer "$blog/peer.log" milter-alias,postdrop,postfix)
if _th_poll 60 grep -q 'READY=1' "$blog/notify.txt"; then
	th_pass "arm64 milter-alias-peer started as its unit: READY=1 on NOTIFY_SOCKET ($(( $(date +%s) - t )) s)"
else
	tail -n 20 "$blog/peer.log"; fatal "arm64 milter-alias-peer sends READY=1"
fi
unit_start milter-alias "$blog/milter.log" milter-alias >/dev/null
th_wait_socket "$ROOT/var/spool/postfix/milter-alias/milter.sock" 60 ||
	{ tail -n 20 "$blog/milter.log"; fatal "arm64 milter-alias creates its socket"; }
th_pass "arm64 milter-alias started as its unit: socket in Postfix's chroot"
# creds PATTERN : "uid=N nnp=N capeff=HEX groups=..." of b's process running PATTERN
creds() {
	local p
	for p in $(ip netns pids "$(th_ns b)"); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qE "$1" || continue
		awk '/^Uid:/ { u = $3 } /^NoNewPrivs:/ { n = $2 } /^CapEff:/ { c = $2 }
			/^Groups:/ { for (i = 2; i <= NF; i++) g = g (i > 2 ? "," : "") $i }
			END { printf "uid=%s nnp=%s capeff=%s groups=%s\n", u, n, c, g }' "/proc/$p/status"
		return
	done
	echo "not running"
}
uid=$(rx id -u milter-alias)
groups=$( { rx id -g milter-alias; rx getent group postdrop | cut -d: -f3; rx getent group postfix | cut -d: -f3; } |
	sort -n | paste -sd, -)
th_check_eq "arm64 milter-alias-peer: user milter-alias, NoNewPrivs, no capabilities, + postdrop, postfix" \
	"uid=$uid nnp=1 capeff=0000000000000000 groups=$groups" "$(creds '/usr/sbin/milter-alias-peer ')"
# postfix-setup --apply by the arm64 milter-aliasctl, then Postfix starts
bx milter-aliasctl postfix-setup --apply >"$blog/setup-apply.txt" 2>&1
rc=$?
sed 's/^/    /' "$blog/setup-apply.txt"
th_check_eq "arm64 milter-aliasctl postfix-setup --apply exits 0" 0 "$rc"
rx chown -R milter-alias:milter-alias /var/lib/milter-alias 2>/dev/null
if ! { bx /usr/lib/postfix/configure-instance.sh - && bx postfix start &&
       bx dovecot; } >"$blog/start.log" 2>&1 9>&-; then
	cat "$blog/start.log"; fatal "starting Postfix and Dovecot on b"
fi
if _th_poll 60 _th_listening "$(th_ns b)" "$B_IP" 25 587 &&
   _th_poll 30 test -S "$ROOT/var/spool/postfix/private/auth"; then
	th_pass "arm64 Postfix listens on $B_IP:25 and :587, arm64 Dovecot's SASL socket is there"
else
	tail -n 20 "$ROOT/var/log/mail.log"; fatal "Postfix/Dovecot on b"
fi
th_check "arm64 postfix check is clean" bash -c "[ -z \"\$(chroot '$ROOT' postfix check 2>&1)\" ]"

# host a: lib2.sh's way
# (9>&-: no daemon may hold the run's lock)
tw_start_peer a 9>&- || fatal "amd64 milter-alias-peer on a"
tw_start_milter a 9>&- || fatal "amd64 milter-alias on a"
tw_wire_access a 9>&- || fatal "access map on a"
th_host_start a 9>&- || fatal "Postfix and Dovecot on a"
t=$(date +%s)
if tw_wait_converged 90 && tw_wait_connected 60; then
	th_pass "pair up: amd64 a and arm64 b connected, verify identical on both ($(( $(date +%s) - t )) s)"
else
	tw_dump_logs 20; tail -n 20 "$blog/peer.log"; fatal "the mixed pair connects"
fi
lap pair-up

# mbox_confirmations USER NODE ALIAS : confirmations for ALIAS in USER's
# mbox on b that passed through NODE (X-Milter-Alias-Server)
mbox_confirmations() {
	awk -v subj="Subject: Alias $3 is ready" -v srv="X-Milter-Alias-Server: $2" '
		/^From / { if (s && h) n++; s = h = 0; next }
		index($0, subj) == 1 { s = 1 }
		index($0, srv) == 1 { h = 1 }
		END { if (s && h) n++; print n + 0 }' "$ROOT/var/mail/$1" 2>/dev/null || echo 0
}
_mbox_has() { [ "$(mbox_confirmations "$@")" -ge 1 ]; }
# confirmed ALIAS USER : the alias resolves on both, through each server's
# own map a confirmation reached USER there, exactly once
confirmed() {
	local alias=$1 user=$2
	th_check_eq "postmap -q on a (amd64) resolves $alias" "$user@example.org" "$(tw_q a "$alias")"
	th_check_eq "postmap -q on b (arm64 postmap, arm64-written lmdb) resolves $alias" \
		"$user@example.org" "$(tw_q b "$alias")"
	th_check_eq "the amd64 postmap reads b's arm64-written lmdb map the same" "$user@example.org" \
		"$(postmap -q "$alias" "lmdb:$ROOT/var/lib/milter-alias/aliases" 2>&1)"
	_th_poll 30 _tw_has_confirmation a "$user" "$alias"
	_th_poll 60 _mbox_has "$user" b.example.test "$alias"
	sleep 2
	th_check_eq "one confirmation for $alias on each server (a: Maildir, b: /var/mail/$user)" \
		"a=1 b=1" "a=$(tw_confirmations a "$user" "$alias") b=$(mbox_confirmations "$user" b.example.test "$alias")"
}

step "7b. an alias requested by mail on the arm64 server"
t=$(date +%s)
tw_request b alice "new pi-shop for the mixed pair"
tw_expect_class "request 'new pi-shop' on b (arm64) by submission with AUTH: 250 ($(( $(date +%s) - t )) s)" 2xx ||
	{ tail -n 15 "$blog/peer.log"; tail -n 15 "$ROOT/var/log/mail.log"; }
confirmed pi-shop@example.org alice
th_check_eq "mail to pi-shop on a (amd64, port 25): 250" 250 "$(tw_mail_to a pi-shop@example.org "order via a")"
th_check "... delivered to alice on a" th_wait_mail a alice "Subject: order via a" 20
th_check_eq "mail to pi-shop on b (arm64, port 25): 250" 250 "$(tw_mail_to b pi-shop@example.org "order via b")"
th_check "... delivered to alice on b (/var/mail/alice)" \
	_th_poll 30 grep -q '^Subject: order via b' "$ROOT/var/mail/alice"
lap arm64-request

step "7c. an alias requested on the amd64 server, a change made on the arm64 one"
tw_request a bob "new vps-shop"
tw_expect_class "request 'new vps-shop' on a (amd64): 250" 2xx
confirmed vps-shop@example.org bob
tw_request b alice "new pi-shop"
tw_expect_class "duplicate 'new pi-shop' on b (arm64): 5xx" 5xx
tw_request b bob "disable vps-shop"
tw_expect_class "owner bob disables vps-shop on b (arm64): 250" 2xx
for h in a b; do
	th_check_eq "the disabled vps-shop is refused on $h (RCPT 5xx)" 5 \
		"$(tw_mail_to $h vps-shop@example.org | cut -c1)"
done
th_check "milter-aliasctl list (arm64) shows both aliases" \
	bash -c "out=\$(ip netns exec '$(th_ns b)' chroot '$ROOT' milter-aliasctl list) &&
		grep -q pi-shop@example.org <<<\"\$out\" && grep -q vps-shop@example.org <<<\"\$out\""
if why=$(tw_wait_converged 60 && tw_maps_identical); then
	th_pass "verify on both: identical maps (the digests of amd64 and arm64 agree)"
else
	th_fail "verify on both: identical maps: $why"
fi
th_check_eq "the map sources hold the same entries on both" "$(tw_map_entries a)" "$(tw_map_entries b)"
th_check_eq "nothing in doubt on either server" "0 0" "$(tw_in_doubt a) $(tw_in_doubt b)"
# The journals: the prepare and commit records of every change, which
# travel over the peer link, are byte for byte the same on both
# architectures ("done" and "confirmed" are each server's own).
shared() { grep -E '^v=[0-9]+ rec=(prepare|commit) ' "$1" 2>/dev/null | sort; }
ja=$(th_dir a)/milter-alias/journal
jb=$ROOT/var/lib/milter-alias/journal
th_check_eq "the journals of a (amd64) and b (arm64) hold the same prepare/commit records (3 changes)" \
	"6 $(shared "$ja" | md5sum)" "$(shared "$jb" | grep -c .) $(shared "$jb" | md5sum)"
lap amd64-request

step "7d. the arm64 sync daemon restarted: it reads its journal back"
kill -TERM "$BPEER"
_gone() { ! kill -0 "$1" 2>/dev/null; }
th_check "the arm64 milter-alias-peer exits on SIGTERM" _th_poll 30 _gone "$BPEER"
: >"$blog/notify.txt"
t=$(date +%s)
BPEER=$(NOTIFY=/run/notify.sock unit_start milter-alias-peer "$blog/peer.log" milter-alias,postdrop,postfix)
if _th_poll 60 grep -q 'READY=1' "$blog/notify.txt"; then
	th_pass "restarted: READY=1 again ($(( $(date +%s) - t )) s)"
else
	tail -n 20 "$blog/peer.log"; th_fail "the restarted arm64 milter-alias-peer sends READY=1"
fi
if why=$(tw_wait_converged 60 && tw_maps_identical); then
	th_pass "after the restart: verify identical on both, nothing in doubt"
else
	th_fail "after the restart: verify identical on both: $why"
fi
tw_request b carol "new after-restart"
tw_expect_class "request 'new after-restart' on the restarted b: 250" 2xx
th_check_eq "... resolves on a (amd64)" carol@example.org "$(tw_q a after-restart@example.org)"
for h in a b; do
	th_check_eq "status on $h: healthy" 0 "$(tw_ctl $h status >/dev/null 2>&1; echo $?)"
done
lap restart

step "summary"
finish
