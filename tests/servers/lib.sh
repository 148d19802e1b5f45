# lib.sh - shell helpers shared by the test layers that boot Debian roots
# with systemd-nspawn: tests/package/test_install.sh (layer 5) and
# tests/servers/test_servers.sh (layer 5b).  Sourced, never run; bash only.
#
# The caller sets T0 (start time) before sourcing; everything else is
# defined here:
#   reporting   pass, fail, check, check_eq, fatal, step, lap, summary
#   mounts      mounts_under, umount_all, root_pids
#   host        ma_release_and_mirror (SUITE, MIRROR), ma_build_deb,
#               ma_debootstrap_tar, ma_in_root
#   containers  ct_boot, ct_x, ct_pids, ct_poweroff, ct_stop (several at
#               once, each by a short name)
#   waiting     wait_file_grep, wait_until

# ------------------------------------------------------------- reporting --
passed=0
failed=0
failed_names=
TIMINGS=
_lap=${T0:-$(date +%s)}
pass() { passed=$((passed + 1)); printf 'ok   - %s\n' "$*"; }
fail() {
	failed=$((failed + 1)); failed_names="$failed_names
  $*"; printf 'FAIL - %s\n' "$*"
}
# check DESC CMD... : pass if CMD succeeds (its stdout is dropped)
check() {
	local desc=$1 rc=0; shift
	"$@" >/dev/null || rc=$?
	if [ $rc = 0 ]; then pass "$desc"; else fail "$desc (status $rc)"; fi
	return $rc
}
# check_eq DESC EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; return 0; fi
	fail "$1 (expected '$2', got '$3')"; return 1
}
summary() {
	echo "timings:$TIMINGS"
	echo "total time: $(( $(date +%s) - T0 )) s"
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ] || printf 'failed:%s\n' "$failed_names"
}
# fatal DESC : a step everything after it depends on failed
fatal() { fail "$*"; echo "cannot go on"; exit 1; }
step() { printf '\n--- %s\n' "$*"; }
lap() { # NAME : record the seconds since the previous lap
	local now; now=$(date +%s)
	TIMINGS="$TIMINGS
  $1: $((now - _lap)) s"
	printf '    [%s: %d s]\n' "$1" $((now - _lap))
	_lap=$now
}

# ----------------------------------------------------------------- mounts --
# mounts_under DIR : mount points at or below DIR, deepest first
mounts_under() {
	awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}
umount_all() {
	local m
	for m in $(mounts_under "$1"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || :
	done
}
# root_pids DIR : processes whose root directory is DIR or inside it
root_pids() {
	local d r
	for d in /proc/[0-9]*; do
		r=$(readlink "$d/root" 2>/dev/null) || continue
		case $r in "$1"|"$1"/*) echo "${d#/proc/}" ;; esac
	done
}
# kill_nspawn_of DIR : kill a systemd-nspawn left running on DIR by an
# interrupted earlier run (found by its --directory= argument)
kill_nspawn_of() {
	local d
	for d in /proc/[0-9]*; do
		if [ "$(cat "$d/comm" 2>/dev/null)" = systemd-nspawn ] &&
		   tr '\0' '\n' <"$d/cmdline" 2>/dev/null | grep -qxF -- "--directory=$1"; then
			echo "killing the container of an earlier run (pid ${d#/proc/})"
			kill -KILL "${d#/proc/}" 2>/dev/null
		fi
	done
}

# ------------------------------------------------------------------- host --
# ma_release_and_mirror : SUITE (this machine's release) and MIRROR (the
# mirror this machine itself uses; never a host name written here)
ma_release_and_mirror() {
	SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$SUITE" ] || fatal "cannot tell this machine's release from /etc/os-release"
	MIRROR=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
	[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
	[ -n "$MIRROR" ] || fatal "no mirror in /etc/apt/sources.list.d/debian.sources (URIs:) or sources.list"
}

# ma_build_deb TOP BUILDDIR : "make dist" in TOP, then dpkg-buildpackage
# -us -uc -b from the unpacked tarball in BUILDDIR (DEB_BUILD_OPTIONS from
# the environment); sets DEB.  Reports with pass/fail, fatal on failure.
ma_build_deb() {
	local top=$1 bd=$2 version tarball src debver
	version=$(sed -n 's/^PACKAGE_VERSION = //p' "$top/Makefile")
	if ! make -C "$top" dist >"$bd/dist.log" 2>&1; then
		tail -n 20 "$bd/dist.log"; fatal "make dist"
	fi
	tarball=$top/milter-alias-$version.tar.gz
	[ -f "$tarball" ] || fatal "make dist made no $tarball"
	mv "$tarball" "$bd/milter-alias_$version.orig.tar.gz"
	pass "make dist: milter-alias-$version.tar.gz"
	tar -C "$bd" -xzf "$bd/milter-alias_$version.orig.tar.gz" || fatal "unpack the tarball"
	src=$bd/milter-alias-$version
	[ -f "$src/debian/control" ] || fatal "the tarball has no debian/ (EXTRA_DIST)"
	debver=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
	check_eq "debian/changelog's upstream version is the tarball's" "$version" "${debver%-*}"
	if (cd "$src" && dpkg-buildpackage -us -uc -b) >"$bd/build.log" 2>&1; then
		pass "dpkg-buildpackage -us -uc -b from the tarball${DEB_BUILD_OPTIONS:+ (DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS)}"
	else
		tail -n 40 "$bd/build.log"; fatal "dpkg-buildpackage (log: $bd/build.log)"
	fi
	DEB=$(ls "$bd"/milter-alias_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -n1)
	[ -n "$DEB" ] || fatal "no .deb built"
}

# ma_debootstrap_tar CACHE WORK : BASE_TAR, a tarball of a fresh
# "debootstrap --variant=minbase $SUITE" root, made again when missing,
# older than 7 days or MA_PKGTEST_REFRESH=1
ma_debootstrap_tar() {
	local cache=$1 work=$2 tmp t
	BASE_TAR=$cache/debootstrap-$SUITE-minbase.tar
	if [ "${MA_PKGTEST_REFRESH:-0}" = 1 ] || [ ! -s "$BASE_TAR" ] ||
	   [ -n "$(find "$BASE_TAR" -mtime +7 2>/dev/null)" ]; then
		tmp=$work/debootstrap
		echo "debootstrap --variant=minbase $SUITE $MIRROR (not cached)"
		t=$(date +%s)
		if ! debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
			tail -n 20 "$work/debootstrap.log"; fatal "debootstrap"
		fi
		umount_all "$tmp"
		tar -C "$tmp" -cf "$BASE_TAR.new" . && mv "$BASE_TAR.new" "$BASE_TAR" || fatal "caching $BASE_TAR"
		rm -rf --one-file-system "$tmp"
		echo "debootstrap took $(( $(date +%s) - t )) s; cached as $BASE_TAR"
		lap debootstrap-uncached
	else
		echo "cached root: $BASE_TAR ($(date -r "$BASE_TAR" '+%F %T'))"
	fi
}

# ma_in_root ROOT CMD... : CMD in ROOT with chroot and a clean environment
ma_in_root() {
	local r=$1; shift
	chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# ------------------------------------------------------------- containers --
# Each container has a short name N: CT_PID[N] is its systemd-nspawn,
# CT_LEADER[N] the host pid of its PID 1 (systemd).
declare -A CT_PID=() CT_LEADER=()

# ct_boot N ROOT HOSTNAME LOG NSPAWN-ARGS... : boot ROOT with systemd and
# wait (60 s at most) until systemd says running or degraded
ct_boot() {
	local n=$1 root=$2 host=$3 log=$4 i state=; shift 4
	systemd-nspawn --quiet --directory="$root" --boot --machine="$n" \
		--hostname="$host" --register=no --keep-unit --link-journal=no \
		--console=passive "$@" </dev/null >"$log" 2>&1 &
	CT_PID[$n]=$!
	CT_LEADER[$n]=
	for i in $(seq 1 300); do
		kill -0 "${CT_PID[$n]}" 2>/dev/null || { cat "$log"; return 1; }
		if [ -z "${CT_LEADER[$n]}" ]; then
			CT_LEADER[$n]=$(ct_init "$n")
		elif state=$(ct_x "$n" systemctl is-system-running 2>/dev/null); then
			:
		fi
		case ${state:-} in running|degraded) return 0 ;; esac
		sleep 0.2
	done
	echo "system state of $n after 60 s: ${state:-?}"
	return 1
}
# ct_init N : the host pid of the container's PID 1, a child of its nspawn
ct_init() {
	local p
	for p in $(pgrep -P "${CT_PID[$1]}"); do
		[ "$(awk '/^NSpid:/ { print $NF }' "/proc/$p/status" 2>/dev/null)" = 1 ] &&
			{ echo "$p"; return 0; }
	done
	return 1
}
# ct_pids N : host pids of every process in the container's pid namespace
ct_pids() {
	local ns d leader=${CT_LEADER[$1]:-}
	[ -n "$leader" ] || return 0
	ns=$(readlink "/proc/$leader/ns/pid") || return 0
	for d in /proc/[0-9]*; do
		[ "$(readlink "$d/ns/pid" 2>/dev/null)" = "$ns" ] && echo "${d#/proc/}"
	done
	return 0
}
# ct_x N CMD... : run CMD inside the booted container N, as root
ct_x() {
	local n=$1; shift
	[ -n "${CT_LEADER[$n]:-}" ] || { echo "container $n is not running" >&2; return 125; }
	${CT_TIMEOUT:+timeout -k 5 "$CT_TIMEOUT"} \
	nsenter --target "${CT_LEADER[$n]}" --mount --uts --ipc --net --pid --root --wd \
		/usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}
# ct_stop N : SIGTERM to systemd-nspawn (a clean poweroff), SIGKILL after 30 s
ct_stop() {
	local n=$1 pid=${CT_PID[$1]:-} i
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for i in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || :
	fi
	wait "$pid" 2>/dev/null
	CT_PID[$n]=
	CT_LEADER[$n]=
}
# ct_ask_poweroff N : "systemctl --no-block poweroff" inside, bounded: in
# a container already shutting down, systemd-shutdown stops and kills what
# enters it, and an unbounded nsenter there was seen to hang for good
ct_ask_poweroff() {
	CT_TIMEOUT=15 ct_x "$1" systemctl --no-block poweroff >/dev/null 2>&1 || :
}
# ct_poweroff N [asked] : ask for a poweroff (unless asked already), wait
# for nspawn to exit; ct_stop if it does not
ct_poweroff() {
	local n=$1 i
	[ -n "${2:-}" ] || ct_ask_poweroff "$n"
	for i in $(seq 1 150); do
		kill -0 "${CT_PID[$n]:-0}" 2>/dev/null || break
		sleep 0.2
	done
	ct_stop "$n"
}

# ---------------------------------------------------------------- waiting --
# wait_file_grep FILE PATTERN [SECONDS=20] : FILE (host path) matches the ERE
wait_file_grep() {
	local i
	for i in $(seq 1 $(( ${3:-20} * 5 ))); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}
# wait_until SECONDS CMD... : poll CMD every 0.25 s until it succeeds
wait_until() {
	local end=$(( $(date +%s) + $1 )); shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.25
	done
}
