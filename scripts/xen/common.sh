# SPDX-License-Identifier: MIT
# Shared settings for scripts/xen/*.sh (bash).  Sourced, not run.
# shellcheck shell=bash disable=SC2034
#
# Every path and version is a variable that the environment (or xen.mk)
# may override.  Defaults put everything under build/xen/.

XVMSG_TOP=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
XVMSG_XEN_SCRIPTS=$XVMSG_TOP/scripts/xen

# The architecture of the Xen system (Debian's name): amd64 (Xen on x86 in
# qemu-system-x86_64) or arm64 (Xen on Arm in qemu-system-aarch64).
XVMSG_XEN_ARCH=${XVMSG_XEN_ARCH:-amd64}
# Which Debian release the images come from: bookworm (Debian 12: Xen 4.17,
# Linux 6.1, libraries from the host, which is Debian 12) or trixie (Debian
# 13: Xen 4.20, Linux 6.12; every library from trixie's .debs, our programs
# built in the trixie chroot of scripts/kbuild/trixie-chroot.sh).
XVMSG_DISTRO=${XVMSG_DISTRO:-bookworm}
# XVMSG_GUEST_KERNEL: when set, the guest runs another kernel than dom0 and
# the driver domain: 7.x (trixie-backports' newest) or 6.12-trixie
# (trixie's).  Its modules and xvmsg.ko come from that kernel.
XVMSG_GUEST_KERNEL=${XVMSG_GUEST_KERNEL:-}
# XVMSG_GUEST2_KERNEL: the kernel of the kmod plan's second guest
# (xvmsg-guest2, tests/xen/kmod/net-dom0.sh).  Empty (the default) or the
# same as XVMSG_GUEST_KERNEL: the first guest's kernel and image.  7.x or
# 6.12-trixie under a first guest on dom0's kernel: a guest image of its
# own (guest2.cpio.gz: that kernel's modules and xvmsg.ko), a mixed-kernel
# run of the module (make check's Debian 12 kmod run gives guest 2 7.x).
XVMSG_GUEST2_KERNEL=${XVMSG_GUEST2_KERNEL:-}
[ "$XVMSG_GUEST2_KERNEL" = "$XVMSG_GUEST_KERNEL" ] && XVMSG_GUEST2_KERNEL=
case ${XVMSG_XEN_ARCH:-amd64}/$XVMSG_GUEST_KERNEL/$XVMSG_GUEST2_KERNEL in
*/) ;;
amd64//7.x | amd64//6.12-trixie) ;;
arm64/*) echo "xen: error: XVMSG_GUEST2_KERNEL=$XVMSG_GUEST2_KERNEL with XVMSG_XEN_ARCH=arm64: Xen on Arm has one kernel, Debian 12's 6.1" >&2
	exit 1 ;;
*/?*/*) echo "xen: error: XVMSG_GUEST2_KERNEL=$XVMSG_GUEST2_KERNEL: a second guest kernel goes with a first guest on dom0's kernel (XVMSG_GUEST_KERNEL=$XVMSG_GUEST_KERNEL)" >&2
	exit 1 ;;
*) echo "xen: error: XVMSG_GUEST2_KERNEL=$XVMSG_GUEST2_KERNEL: 7.x or 6.12-trixie" >&2; exit 1 ;;
esac
# Each combination has its own output folder, so they can be built side by
# side: build/xen (amd64, bookworm), build/xen-trixie, build/xen-arm64.
# Xen on Arm is built from Debian 12 only, with one kernel for all domains.
case $XVMSG_XEN_ARCH/$XVMSG_DISTRO in
amd64/bookworm) XVMSG_XEN_TRIPLET=x86_64-linux-gnu; _out=build/xen ;;
amd64/trixie) XVMSG_XEN_TRIPLET=x86_64-linux-gnu; _out=build/xen-trixie ;;
arm64/bookworm) XVMSG_XEN_TRIPLET=aarch64-linux-gnu; _out=build/xen-arm64 ;;
arm64/trixie)
	echo "xen: error: XVMSG_XEN_ARCH=arm64 with XVMSG_DISTRO=trixie: Xen on Arm is built from Debian 12 (bookworm) only" >&2
	exit 1 ;;
*/bookworm | */trixie)
	echo "xen: error: XVMSG_XEN_ARCH=$XVMSG_XEN_ARCH: amd64 or arm64" >&2; exit 1 ;;
*) echo "xen: error: XVMSG_DISTRO=$XVMSG_DISTRO: bookworm or trixie" >&2; exit 1 ;;
esac
# The .debs are shared by a distro's images with and without another guest
# kernel.
_cache=$XVMSG_TOP/$_out/cache
case $XVMSG_XEN_ARCH/$XVMSG_GUEST_KERNEL in
*/) ;;
amd64/7.x | amd64/6.12-trixie) _out=$_out-guest-$XVMSG_GUEST_KERNEL ;;
arm64/*)
	echo "xen: error: XVMSG_GUEST_KERNEL=$XVMSG_GUEST_KERNEL with XVMSG_XEN_ARCH=arm64: Xen on Arm has one kernel, Debian 12's 6.1" >&2
	exit 1 ;;
*) echo "xen: error: XVMSG_GUEST_KERNEL=$XVMSG_GUEST_KERNEL: 7.x or 6.12-trixie" >&2; exit 1 ;;
esac

# Where things go.
XVMSG_XEN_OUT=${XVMSG_XEN_OUT:-$XVMSG_TOP/$_out}
XVMSG_XEN_CACHE=${XVMSG_XEN_CACHE:-$_cache}                     # downloaded .debs
XVMSG_XEN_ROOT=${XVMSG_XEN_ROOT:-$XVMSG_XEN_OUT/root}           # all .debs extracted
XVMSG_XEN_WORK=${XVMSG_XEN_WORK:-$XVMSG_XEN_OUT/work}           # image trees
XVMSG_XEN_IMAGES=${XVMSG_XEN_IMAGES:-$XVMSG_XEN_OUT/images}     # what QEMU boots
XVMSG_XEN_OVERLAY=${XVMSG_XEN_OVERLAY:-$XVMSG_XEN_OUT/overlay}  # hooks, see mkimages.sh
# Relative paths given in the environment are relative to the top folder.
for _v in XVMSG_XEN_OUT XVMSG_XEN_CACHE XVMSG_XEN_ROOT XVMSG_XEN_WORK XVMSG_XEN_IMAGES XVMSG_XEN_OVERLAY; do
	case ${!_v} in /*) ;; *) printf -v "$_v" '%s/%s' "$XVMSG_TOP" "${!_v}" ;; esac
done
unset _v _out _cache

# The one pinned kernel ABI.  It must match the linux-headers package that
# out-of-tree modules are built against (vermagic).  Pinned rather than
# "whatever linux-image-amd64 depends on today" so that a new point release
# does not silently change the tested kernel; fetch.sh falls back to
# linux-image-amd64's dependency (with a warning) only when this one can no
# longer be downloaded.
XVMSG_XEN_KABI=${XVMSG_XEN_KABI:-6.1.0-56-amd64}
# The same for trixie's images (XVMSG_DISTRO=trixie).
XVMSG_XEN_KABI_TRIXIE=${XVMSG_XEN_KABI_TRIXIE:-6.12.117+deb13-amd64}
# The guest kernel of XVMSG_GUEST_KERNEL=7.x (trixie-backports).
XVMSG_XEN_KABI_7X=${XVMSG_XEN_KABI_7X:-7.3.4+deb13-amd64}

if [ "$XVMSG_DISTRO" = trixie ]; then
	XVMSG_XEN_SERIES=4.20
	XVMSG_XEN_KABI=$XVMSG_XEN_KABI_TRIXIE
else
	XVMSG_XEN_SERIES=4.17
	# The same ABI for the other architecture (6.1.0-56-amd64 -> 6.1.0-56-arm64).
	XVMSG_XEN_KABI=${XVMSG_XEN_KABI%-*}-$XVMSG_XEN_ARCH
fi
XVMSG_XEN_LIBEXEC=/usr/lib/xen-$XVMSG_XEN_SERIES/bin
# The trixie chroot (scripts/kbuild/trixie-chroot.sh): trixie's .debs are
# fetched with its apt, our programs built in it.
XVMSG_KBUILD_OUT=${XVMSG_KBUILD_OUT:-$XVMSG_TOP/build/kbuild}
# Where the trixie build of our programs goes (scripts/xen/build-trixie.sh).
XVMSG_TRIXIE_BUILD=${XVMSG_TRIXIE_BUILD:-$XVMSG_TOP/build/trixie}

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
