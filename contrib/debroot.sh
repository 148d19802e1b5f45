# shellcheck shell=bash
# contrib/debroot.sh - helpers for throw-away Debian roots made with
# debootstrap, for contrib/cross-build-arm64.sh and tests/arm64/.
# Source it from bash; nothing here calls exit.  Functions return non-zero
# on failure with a "debroot:" message on stderr.
#
#   dr_mirror                 the Debian mirror this machine's apt uses
#   dr_suite                  this machine's release (bookworm)
#   dr_mounts_under DIR       mount points at or below DIR, deepest first
#   dr_umount_all DIR         unmount them all
#   dr_root_pids DIR          pids whose root directory is DIR or below
#   dr_kill_root DIR          SIGKILL those
#   dr_rm_root DIR            kill, unmount and remove DIR (refuses if a
#                             mount is left)
#   dr_debootstrap_cached TAR ARCH SUITE MIRROR TMP [EXTRA...]
#                             debootstrap --variant=minbase --arch ARCH into
#                             TMP and keep it as TAR, unless TAR exists and
#                             is younger than 7 days (DR_REFRESH=1 forces)
#   dr_unpack TAR DIR         a fresh copy of the root in DIR
#   dr_apt_prepare DIR        the machine's own apt sources, resolv.conf, no
#                             daemon starts (policy-rc.d), fast dpkg
#   dr_apt_unprepare DIR      undo policy-rc.d and the fast dpkg setting
#   dr_chroot DIR CMD...      CMD in the root with a clean environment
#
# The mirror is never written here: it is read from the machine's apt
# sources, so the roots come from the same place as the machine's packages.

dr_msg() { printf 'debroot: %s\n' "$*" >&2; }

dr_mirror() {
	local m
	m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
	[ -n "$m" ] || m=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
	[ -n "$m" ] || { dr_msg "no mirror in /etc/apt/sources.list.d/debian.sources (URIs:) or sources.list"; return 1; }
	echo "$m"
}

dr_suite() {
	local s
	s=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$s" ] || { dr_msg "cannot tell this machine's release from /etc/os-release"; return 1; }
	echo "$s"
}

dr_mounts_under() {
	awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

dr_umount_all() {
	local m
	for m in $(dr_mounts_under "$1"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || :
	done
}

dr_root_pids() {
	local d r
	for d in /proc/[0-9]*; do
		r=$(readlink "$d/root" 2>/dev/null) || continue
		case $r in "$1"|"$1"/*) echo "${d#/proc/}" ;; esac
	done
}

dr_kill_root() {
	local p
	for p in $(dr_root_pids "$1"); do kill -KILL "$p" 2>/dev/null; done
	return 0
}

dr_rm_root() {
	[ -d "$1" ] || return 0
	case $1 in /?*/?*) ;; *) dr_msg "refusing to remove '$1'"; return 1 ;; esac
	dr_kill_root "$1"
	sleep 0.2
	dr_umount_all "$1"
	if [ -n "$(dr_mounts_under "$1")" ]; then
		dr_msg "$1 still has mounts: not removed"; return 1
	fi
	rm -rf --one-file-system "$1"
}

dr_debootstrap_cached() {
	local tar=$1 arch=$2 suite=$3 mirror=$4 tmp=$5 t
	shift 5
	if [ "${DR_REFRESH:-0}" != 1 ] && [ -s "$tar" ] &&
	   [ -z "$(find "$tar" -mtime +7 2>/dev/null)" ]; then
		echo "cached root: $tar ($(date -r "$tar" '+%F %T'))"
		return 0
	fi
	echo "debootstrap --arch $arch --variant=minbase $suite $mirror (not cached)"
	t=$(date +%s)
	dr_rm_root "$tmp" || return 1
	if ! debootstrap --arch "$arch" --variant=minbase "$@" "$suite" "$tmp" "$mirror" \
		>"$tmp.log" 2>&1; then
		tail -n 20 "$tmp.log" >&2; dr_msg "debootstrap failed (log: $tmp.log)"; return 1
	fi
	dr_umount_all "$tmp"
	tar -C "$tmp" -cf "$tar.new.$$" . && mv "$tar.new.$$" "$tar" ||
		{ rm -f "$tar.new.$$"; dr_msg "caching $tar failed"; return 1; }
	rm -rf --one-file-system "$tmp"
	echo "debootstrap took $(( $(date +%s) - t )) s; cached as $tar"
}

dr_unpack() {
	dr_rm_root "$2" || return 1
	mkdir -p "$2" && tar -C "$2" -xf "$1" || { dr_msg "unpacking $1 failed"; return 1; }
}

dr_apt_prepare() {
	local root=$1
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || :
	# the machine's own apt sources (release, updates, security)
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
		: >"$root/etc/apt/sources.list"
	fi
	echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/debroot-unsafe-io"
	# no daemon may start inside a chroot (it would run in this machine's network)
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	# no recommends, no documentation: smaller and faster roots
	printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
		>"$root/etc/apt/apt.conf.d/90debroot"
}

dr_apt_unprepare() {
	rm -f "$1/usr/sbin/policy-rc.d" "$1/etc/dpkg/dpkg.cfg.d/debroot-unsafe-io"
}

dr_chroot() {
	local root=$1; shift
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
