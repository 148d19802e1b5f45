#!/bin/bash
# cross-build-arm64.sh - build the arm64 .deb of milter-alias for this
# machine's Debian release (12, bookworm) on an amd64 machine, with
# Debian's cross toolchain, in a clean throw-away root: what
# "sbuild --host=arm64" does, without sbuild's setup.
#
#   contrib/cross-build-arm64.sh [-o OUTDIR] [-t] milter-alias-VERSION.tar.gz
#
#   1. a clean amd64 root of this machine's release (debootstrap
#      --variant=minbase, the mirror taken from this machine's own apt
#      sources), with arm64 added as a foreign architecture,
#      crossbuild-essential-arm64, dpkg-dev, debhelper, and the package's
#      Build-Depends for arm64 as apt resolves them from debian/control
#      (apt-get build-dep -a arm64 -P cross,nocheck), plus libcriterion-dev
#      for arm64 (the unit tests).  This root is kept as a tarball in
#      $CACHE and made again when debian/control's Build-Depends change or
#      after 7 days.  The build never touches this machine's own dpkg.
#   2. a fresh copy of that root; the release tarball (from "make dist")
#      is unpacked in it and built with
#          dpkg-buildpackage -a arm64 -P cross,nocheck -us -uc -b
#      i.e. compiled and linked against bookworm's arm64 libraries, so the
#      binaries cannot need a newer C library than bookworm arm64 has.
#      Tests cannot run during a cross build (the binaries are arm64);
#   3. with -t: "make check TESTS=" in the same build tree compiles the
#      unit tests and the milter driver for arm64 with the package's own
#      flags, and the whole built tree is packed as
#      OUTDIR/milter-alias_VERSION_arm64-check.tar, to run "make check" in
#      an arm64 root (tests/arm64/test_arm64.sh does, under qemu-user).
#
# Output in OUTDIR (default .): the .deb, .buildinfo, .changes, the build
# log milter-alias_VERSION_arm64.build, and with -t the check tarball.
# Run as root (chroot).  Needs debootstrap; nothing of arm64 on this machine.
#
# Environment:
#   MA_CROSS_CACHE   where the build root is cached (/var/cache/milter-alias-tests)
#   MA_CROSS_WORK    work directory, removed afterwards (/var/tmp/milter-alias-crossbuild)
#   DR_REFRESH=1     make the cached roots again
#   MA_CROSS_KEEP=1  leave the work directory
set -uo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=debroot.sh
. "$here/debroot.sh"

HOST_ARCH=arm64
CACHE=${MA_CROSS_CACHE:-/var/cache/milter-alias-tests}
WORK=${MA_CROSS_WORK:-/var/tmp/milter-alias-crossbuild}
OUT=.
TESTS=0
# what the build root holds besides the package's Build-Depends
BUILD_PKGS="crossbuild-essential-$HOST_ARCH dpkg-dev debhelper fakeroot"
TEST_PKGS="libcriterion-dev:$HOST_ARCH"

usage() { echo "usage: $0 [-o OUTDIR] [-t] milter-alias-VERSION.tar.gz" >&2; exit 2; }
die() { echo "cross-build-arm64: $*" >&2; exit 1; }
while getopts o:t opt; do
	case $opt in
		o) OUT=$OPTARG ;;
		t) TESTS=1 ;;
		*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# = 1 ] || usage
TARBALL=$(readlink -f "$1")
[ -f "$TARBALL" ] || die "no such file: $1"
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap is missing (contrib/install-deps.sh)"
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || die "cannot create $OUT"
base=$(basename "$TARBALL" .tar.gz)
VERSION=${base#milter-alias-}
[ "$VERSION" != "$base" ] || die "$TARBALL is not named milter-alias-VERSION.tar.gz"
SUITE=$(dr_suite) && MIRROR=$(dr_mirror) || exit 1
BUILD_ARCH=$(dpkg --print-architecture)
[ "$BUILD_ARCH" = amd64 ] || echo "note: building on $BUILD_ARCH, not amd64" >&2

mkdir -p "$CACHE" "$CACHE/apt-archives-crossbuild/partial" || die "cannot create $CACHE"
exec 8>"$CACHE/.lock-crossbuild"
flock -n 8 || die "another cross build holds $CACHE/.lock-crossbuild"
ROOT=$WORK/root
cleanup() {
	dr_kill_root "$ROOT"
	dr_umount_all "$WORK"
	[ "${MA_CROSS_KEEP:-0}" = 1 ] || dr_rm_root "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
dr_rm_root "$WORK" || die "cannot clean $WORK"
mkdir -p "$WORK/src" && tar -C "$WORK/src" -xzf "$TARBALL" || die "cannot unpack $TARBALL"
SRC=$WORK/src/milter-alias-$VERSION
[ -f "$SRC/debian/control" ] || die "$TARBALL has no debian/control"

T0=$(date +%s)
lap() { echo "  [$1: $(( $(date +%s) - T0 )) s]"; T0=$(date +%s); }

# -- 1. the build root, cached ------------------------------------------------
# Its name carries a hash of the Build-Depends and of what is added here,
# so a changed debian/control makes a new one.
key=$( { sed -n '/^Build-Depends/,/^[A-Z]/p' "$SRC/debian/control"
	 echo "$SUITE $BUILD_ARCH $HOST_ARCH $BUILD_PKGS $TEST_PKGS"; } | sha256sum | cut -c1-10)
BROOT_TAR=$CACHE/crossbuild-$SUITE-$BUILD_ARCH-$HOST_ARCH-$key.tar
if [ "${DR_REFRESH:-0}" = 1 ] || [ ! -s "$BROOT_TAR" ] ||
   [ -n "$(find "$BROOT_TAR" -mtime +7 2>/dev/null)" ]; then
	echo "preparing the cross-build root (not cached: $BROOT_TAR)"
	dr_debootstrap_cached "$CACHE/debootstrap-$SUITE-minbase.tar" "$BUILD_ARCH" "$SUITE" \
		"$MIRROR" "$WORK/debootstrap" || exit 1
	dr_unpack "$CACHE/debootstrap-$SUITE-minbase.tar" "$ROOT" || exit 1
	dr_apt_prepare "$ROOT"
	mkdir -p "$ROOT/tmp/deps/debian" && cp "$SRC/debian/control" "$ROOT/tmp/deps/debian/"
	mount --bind "$CACHE/apt-archives-crossbuild" "$ROOT/var/cache/apt/archives" || die "bind mount"
	mount -t proc proc "$ROOT/proc" || die "mount /proc"
	# shellcheck disable=SC2086
	if ! { dr_chroot "$ROOT" dpkg --add-architecture "$HOST_ARCH" &&
	       dr_chroot "$ROOT" apt-get update -q &&
	       dr_chroot "$ROOT" apt-get install -y -q $BUILD_PKGS &&
	       dr_chroot "$ROOT" apt-get build-dep -y -q -a "$HOST_ARCH" -P cross,nocheck /tmp/deps &&
	       dr_chroot "$ROOT" apt-get install -y -q $TEST_PKGS; } >"$WORK/prepare.log" 2>&1; then
		tail -n 30 "$WORK/prepare.log"; die "preparing the build root (log: $WORK/prepare.log)"
	fi
	dr_umount_all "$ROOT"
	rm -rf "$ROOT/tmp/deps" "$ROOT"/var/lib/apt/lists/*_Packages* 2>/dev/null
	dr_apt_unprepare "$ROOT"
	rm -f "$CACHE"/crossbuild-"$SUITE"-"$BUILD_ARCH"-"$HOST_ARCH"-*.tar
	tar -C "$ROOT" -cf "$BROOT_TAR.new" . && mv "$BROOT_TAR.new" "$BROOT_TAR" ||
		die "caching $BROOT_TAR"
	echo "cached as $BROOT_TAR"
	lap prepare-root
else
	echo "cached cross-build root: $BROOT_TAR ($(date -r "$BROOT_TAR" '+%F %T'))"
fi
dr_unpack "$BROOT_TAR" "$ROOT" || exit 1
mount -t proc proc "$ROOT/proc" || die "mount /proc"
lap unpack-root

# -- 2. dpkg-buildpackage -a arm64 ------------------------------------------------
mkdir -p "$ROOT/build"
cp "$TARBALL" "$ROOT/build/milter-alias_$VERSION.orig.tar.gz"
tar -C "$ROOT/build" -xzf "$TARBALL" || die "unpack in the root"
LOG=$OUT/milter-alias_${VERSION}_$HOST_ARCH.build
echo "dpkg-buildpackage -a $HOST_ARCH --build-profiles=cross,nocheck -us -uc -b (log: $LOG)"
if ! dr_chroot "$ROOT" sh -c "cd /build/milter-alias-$VERSION &&
	DEB_BUILD_OPTIONS='nocheck parallel=$(nproc)' \
	dpkg-buildpackage -a $HOST_ARCH --build-profiles=cross,nocheck -us -uc -b" >"$LOG" 2>&1; then
	tail -n 40 "$LOG"; die "dpkg-buildpackage failed (log: $LOG)"
fi
grep -E 'warning:' "$LOG" | grep -vE 'dpkg-(buildpackage|source|genchanges|architecture)' | sort -u | head -n 20
lap dpkg-buildpackage
for f in "$ROOT"/build/milter-alias_"$VERSION"*_"$HOST_ARCH".{deb,buildinfo,changes}; do
	[ -f "$f" ] && cp "$f" "$OUT/"
done
DEB=$OUT/milter-alias_$(dpkg-deb -f "$ROOT"/build/milter-alias_*_"$HOST_ARCH".deb Version 2>/dev/null)_$HOST_ARCH.deb
[ -f "$DEB" ] || die "no $HOST_ARCH .deb was built"
echo "built: $DEB"

# -- 3. the unit tests, compiled for arm64 in the package's build tree --------
if [ "$TESTS" = 1 ]; then
	if ! dr_chroot "$ROOT" sh -c "cd /build/milter-alias-$VERSION &&
		make -j$(nproc) check TESTS=" >>"$LOG" 2>&1; then
		tail -n 30 "$LOG"; die "compiling the tests for $HOST_ARCH failed (log: $LOG)"
	fi
	CHECK=$OUT/milter-alias_${VERSION}_$HOST_ARCH-check.tar
	tar -C "$ROOT/build" -cf "$CHECK" "milter-alias-$VERSION" || die "packing the build tree"
	echo "built tree with the $HOST_ARCH tests: $CHECK"
	lap tests
fi
exit 0
