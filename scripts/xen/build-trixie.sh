#!/bin/bash
# SPDX-License-Identifier: MIT
# Build what the images need for Debian 13 inside the trixie chroot
# (scripts/kbuild/trixie-chroot.sh; gcc-14, trixie's glibc and libxen-dev):
#
#   scripts/xen/build-trixie.sh progs
#       xvmsg-backend, xvmsg-ctl, xvmsg-guest-check, xvmsg-evil,
#       xvmsg-blkcrash (make BUILD=build/trixie, so into build/trixie/bin/)
#       and the static gntshare, for XVMSG_DISTRO=trixie
#   scripts/xen/build-trixie.sh module DEST.ko
#       guest-kernel/xvmsg.ko for the guest kernel of the images in
#       XVMSG_XEN_OUT (its ABI in groot/.kabi when XVMSG_GUEST_KERNEL is
#       set, else root/.kabi), against that ABI's headers in the chroot,
#       W=1 -Werror; copied to DEST.ko
#
# The source tree is bind-mounted at /src in the chroot for the build only.
# Incremental: make inside the chroot rebuilds what changed.
set -euo pipefail
. "$(dirname "$0")/common.sh"
# shellcheck source=scripts/kbuild/trixie-chroot.sh
. "$XVMSG_TOP/scripts/kbuild/trixie-chroot.sh"
log() { xen_log "$@"; }

# What the programs need to build in the chroot (gcc-14 is there already
# for the module builds; "gcc" is the plain name make calls).
BUILD_PKGS="gcc make libc6-dev libxen-dev liburing-dev"
WERROR=${WERROR:-1}

setup() {
	[ "$(id -u)" -eq 0 ] || xen_die "building for trixie needs root (the trixie chroot)"
	why=$(make_chroot) || xen_die "$why"
	chroot_install xen-build $BUILD_PKGS ||
		xen_die "apt-get install $BUILD_PKGS in the chroot failed (see $TX_OUT/trixie-install.log)"
}

progs() {
	local rel=${XVMSG_TRIXIE_BUILD#"$XVMSG_TOP"/}
	case $rel in /*) xen_die "XVMSG_TRIXIE_BUILD must be inside $XVMSG_TOP" ;; esac
	setup
	TX_BINDS="$XVMSG_TOP:/src" in_chroot make -C /src --no-print-directory BUILD="$rel" \
		WERROR="$WERROR" CC=gcc \
		"$rel/bin/xvmsg-backend" "$rel/bin/xvmsg-ctl" "$rel/bin/xvmsg-guest-check" \
		"$rel/bin/xvmsg-evil" "$rel/bin/xvmsg-blkcrash"
	if [ ! -f "$XVMSG_TRIXIE_BUILD/bin/gntshare" ] ||
	   [ "$XVMSG_XEN_SCRIPTS/gntshare.c" -nt "$XVMSG_TRIXIE_BUILD/bin/gntshare" ]; then
		xen_log "compiling gntshare (trixie, static)"
		TX_BINDS="$XVMSG_TOP:/src" in_chroot gcc -static -s -O2 -std=gnu11 -Wall -Wextra -Wshadow \
			-Wstrict-prototypes -Wmissing-prototypes -Werror \
			-o "/src/$rel/bin/gntshare" /src/scripts/xen/gntshare.c
	fi
}

# sync_src DEST (scripts/kbuild/module-src.sh)
# shellcheck source=scripts/kbuild/module-src.sh
. "$XVMSG_TOP/scripts/kbuild/module-src.sh"

module() {
	local dest=$1 kabi dir flags
	# XVMSG_KMOD_ROOT: the kernel root fetch.sh extracted for the module
	# (groot2: the kmod plan's second guest, XVMSG_GUEST2_KERNEL).
	if [ -n "${XVMSG_KMOD_ROOT:-}" ]; then
		kabi=$(cat "$XVMSG_KMOD_ROOT/.kabi" 2>/dev/null) || xen_die "no $XVMSG_KMOD_ROOT: run fetch.sh"
	elif [ -n "$XVMSG_GUEST_KERNEL" ]; then
		kabi=$(cat "$XVMSG_XEN_OUT/groot/.kabi" 2>/dev/null) || xen_die "no $XVMSG_XEN_OUT/groot: run fetch.sh"
	else
		kabi=$(cat "$XVMSG_XEN_ROOT/.kabi" 2>/dev/null) || xen_die "no $XVMSG_XEN_ROOT: run fetch.sh"
	fi
	setup
	why=$(chroot_headers "$kabi") || xen_die "$why"
	# The folder make check-module-builds builds in (check-builds.sh,
	# build_chroot), with the same flags: after it, kbuild has nothing
	# left to do here.
	dir=$CHROOT/build/$kabi
	sync_src "$dir"
	flags="W=1"
	[ "$WERROR" = 1 ] && flags="$flags KCFLAGS=-Werror"
	# shellcheck disable=SC2086
	in_chroot make -C "/usr/src/linux-headers-$kabi" \
		M="/build/$kabi/guest-kernel" -j2 $flags modules >"$dir/build.log" 2>&1 ||
		{ tail -n 40 "$dir/build.log" >&2; xen_die "xvmsg.ko for $kabi did not build (log: $dir/build.log)"; }
	if grep -E 'warning:|WARNING:' "$dir/build.log" | grep -qv 'the compiler differs'; then
		grep -E 'warning:|WARNING:' "$dir/build.log" >&2
		xen_die "xvmsg.ko for $kabi: warnings (log: $dir/build.log)"
	fi
	mkdir -p "$(dirname "$dest")"
	cmp -s "$dir/guest-kernel/xvmsg.ko" "$dest" 2>/dev/null || cp "$dir/guest-kernel/xvmsg.ko" "$dest"
	xen_log "xvmsg.ko for $kabi (trixie chroot, gcc-14): $dest"
}

case ${1:-} in
progs) progs ;;
module) [ -n "${2:-}" ] || xen_die "usage: $0 module DEST.ko"; module "$2" ;;
*) echo "usage: $0 progs | module DEST.ko" >&2; exit 2 ;;
esac
