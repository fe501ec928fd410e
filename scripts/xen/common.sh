# SPDX-License-Identifier: MIT
# Shared settings for scripts/xen/*.sh (bash).  Sourced, not run.
# shellcheck shell=bash disable=SC2034
#
# Every path and version is a variable that the environment (or xen.mk)
# may override.  Defaults put everything under build/xen/.

XVMSG_TOP=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
XVMSG_XEN_SCRIPTS=$XVMSG_TOP/scripts/xen

# The architecture of the Xen system (Debian's name): amd64 (Xen on x86 in
# qemu-system-x86_64) or arm64 (Xen on Arm in qemu-system-aarch64).  Each has
# its own output folder, so the two can be built side by side.
XVMSG_XEN_ARCH=${XVMSG_XEN_ARCH:-amd64}
case $XVMSG_XEN_ARCH in
amd64) XVMSG_XEN_TRIPLET=x86_64-linux-gnu; _out=build/xen ;;
arm64) XVMSG_XEN_TRIPLET=aarch64-linux-gnu; _out=build/xen-arm64 ;;
*) echo "xen: error: XVMSG_XEN_ARCH=$XVMSG_XEN_ARCH: amd64 or arm64" >&2; exit 1 ;;
esac

# Where things go.
XVMSG_XEN_OUT=${XVMSG_XEN_OUT:-$XVMSG_TOP/$_out}
unset _out
XVMSG_XEN_CACHE=${XVMSG_XEN_CACHE:-$XVMSG_XEN_OUT/cache}        # downloaded .debs
XVMSG_XEN_ROOT=${XVMSG_XEN_ROOT:-$XVMSG_XEN_OUT/root}           # all .debs extracted
XVMSG_XEN_WORK=${XVMSG_XEN_WORK:-$XVMSG_XEN_OUT/work}           # image trees
XVMSG_XEN_IMAGES=${XVMSG_XEN_IMAGES:-$XVMSG_XEN_OUT/images}     # what QEMU boots
XVMSG_XEN_OVERLAY=${XVMSG_XEN_OVERLAY:-$XVMSG_XEN_OUT/overlay}  # hooks, see mkimages.sh
# Relative paths given in the environment are relative to the top folder.
for _v in XVMSG_XEN_OUT XVMSG_XEN_CACHE XVMSG_XEN_ROOT XVMSG_XEN_WORK XVMSG_XEN_IMAGES XVMSG_XEN_OVERLAY; do
	case ${!_v} in /*) ;; *) printf -v "$_v" '%s/%s' "$XVMSG_TOP" "${!_v}" ;; esac
done
unset _v

# The one pinned kernel ABI.  It must match the linux-headers package that
# out-of-tree modules are built against (vermagic).  Pinned rather than
# "whatever linux-image-amd64 depends on today" so that a new point release
# does not silently change the tested kernel; fetch.sh falls back to
# linux-image-amd64's dependency (with a warning) only when this one can no
# longer be downloaded.
XVMSG_XEN_KABI=${XVMSG_XEN_KABI:-6.1.0-56-amd64}
# The same ABI for the other architecture (6.1.0-56-amd64 -> 6.1.0-56-arm64).
XVMSG_XEN_KABI=${XVMSG_XEN_KABI%-*}-$XVMSG_XEN_ARCH

XVMSG_XEN_SERIES=4.17
XVMSG_XEN_LIBEXEC=/usr/lib/xen-$XVMSG_XEN_SERIES/bin

xen_t0=${xen_t0:-$(date +%s.%N)}

# log MSG...: one progress line on stderr with seconds since the script started.
xen_log() {
	printf '[xen %6.1fs] %s\n' "$(echo "$(date +%s.%N) $xen_t0" | awk '{print $1 - $2}')" "$*" >&2
}

# xen_lock NAME: hold build/xen/NAME.lock until the script ends, so that two
# runs (two make invocations, two sessions) do not build into the same
# folders at once.
xen_lock() {
	mkdir -p "$XVMSG_XEN_OUT"
	exec 8>"$XVMSG_XEN_OUT/$1.lock"
	if ! flock -n 8; then
		xen_log "waiting for $XVMSG_XEN_OUT/$1.lock (another run is building)"
		flock -w 900 8 || xen_die "$XVMSG_XEN_OUT/$1.lock still held after 900 s"
	fi
}

xen_die() {
	printf 'xen: error: %s\n' "$*" >&2
	exit 1
}

# The kernel ABI actually used: the pinned one if stored or downloadable,
# else the one linux-image-ARCH depends on.  Prints e.g. 6.1.0-56-amd64.
xen_resolve_kabi() {
	local a=$XVMSG_XEN_ARCH q=
	[ "$a" = amd64 ] || q=:$a
	k=$XVMSG_XEN_KABI
	if ls "$XVMSG_XEN_CACHE"/linux-image-"$k"_*.deb >/dev/null 2>&1; then
		echo "$k"; return 0
	fi
	if [ -n "$(apt-cache policy "linux-image-$k$q" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '(none)')" ]; then
		echo "$k"; return 0
	fi
	dep=$(apt-cache depends "linux-image-$a$q" 2>/dev/null |
		sed -n "s/^ *Depends: linux-image-\(6\.[0-9.]*-[0-9]*-$a\)\(:$a\)\?\$/\1/p" | head -n1)
	[ -n "$dep" ] || xen_die "linux-image-$k is not downloadable and linux-image-$a has no candidate (apt-get update?)"
	echo "xen: warning: linux-image-$k is gone; using linux-image-$dep (set XVMSG_XEN_KABI=$dep in scripts/xen/common.sh)" >&2
	echo "$dep"
}
