#!/bin/bash
# SPDX-License-Identifier: MIT
# Download the Debian 12 packages for booting Xen 4.17 in QEMU and extract
# them into a staging root.  Nothing is installed on the host's boot path:
# the .debs are fetched with `apt-get download` and unpacked with `dpkg -x`.
#
#   scripts/xen/fetch.sh            host tools + .debs + staging root
#   XVMSG_XEN_ARCH=arm64 scripts/xen/fetch.sh
#                                   the same for Xen on Arm (build/xen-arm64/):
#                                   the arm64 .debs (apt's multiarch, set up
#                                   here: dpkg --add-architecture arm64) with
#                                   the libraries the x86 images take from the
#                                   host, libxen-dev for cross builds, and the
#                                   kernel headers unpacked into kheaders/
#
# Idempotent: a .deb already in the cache is not downloaded again and the
# staging root is re-extracted only when the set of .debs changed.
#
# Environment: XVMSG_XEN_CACHE (default build/xen/cache), XVMSG_XEN_ROOT
# (default build/xen/root), XVMSG_XEN_KABI (the pinned kernel ABI), see
# scripts/xen/common.sh.
set -euo pipefail
. "$(dirname "$0")/common.sh"
. "$XVMSG_TOP/scripts/debs.sh"

ARCH=$XVMSG_XEN_ARCH
S=$XVMSG_XEN_SERIES
XEN_PKGS="xen-hypervisor-$S-$ARCH xen-utils-$S xen-utils-common xenstore-utils"
# Runtime libraries of the Xen tools.  libxendevicemodel1 and libxentoolcore1
# are needed although xen-utils does not depend on them; libyajl2 is not on
# a minimal host.  Everything else the binaries link (libc, libuuid,
# liblzma, libzstd, zlib, libext2fs, libtinfo, libgcc_s) comes from
# packages of priority required, so for bookworm mkimages.sh takes them
# from the host (Debian 12 too).
LIB_PKGS="libxencall1 libxendevicemodel1 libxenevtchn1 libxenforeignmemory1
 libxengnttab1 libxenhypfs1 libxenmisc$S libxenstore4 libxentoolcore1
 libxentoollog1 libyajl2"
# trixie's images take every library from trixie's .debs, not from the
# host: glibc, what Xen 4.20's libraries link (ldd of xl, xenstored,
# xenconsoled, xen-init-dom0: liblzma, libuuid, zlib, libzstd), libgcc_s
# (dlopened by pthread_cancel), and mkfs.ext4/e2fsck for the guest.
TRIXIE_LIB_PKGS="libc6 libgcc-s1 liblzma5 libuuid1 zlib1g libzstd1
 e2fsprogs libext2fs2t64 libcom-err2 libblkid1 liburing2"
OTHER_PKGS="busybox-static"
# Not the host's architecture: what the x86 images take from the host comes
# from Debian's arm64 packages too (C library, libgcc_s, the libraries of the
# Xen tools and of mke2fs/e2fsck), and libxen-dev and liburing-dev
# (xvmsg-bench's io_uring) for cross-building our programs against the
# staging root.
FOREIGN_PKGS="libc6 libgcc-s1 libuuid1 liblzma5 libzstd1 zlib1g libext2fs2
 libcom-err2 libblkid1 libss2 libfdt1 e2fsprogs libxen-dev liburing2 liburing-dev"

apt_updated=0
apt_update_once() {
	[ "$apt_updated" = 1 ] && return 0
	xen_log "apt-get update"
	apt-get update -qq
	apt_updated=1
}

# Host tools, installed with apt-get when missing.  The kernel headers are
# for building out-of-tree modules that load in the guests (same vermagic).
ensure_host_tools() {
	kabi=$1
	if [ "$ARCH" = amd64 ]; then
		want="qemu-system-x86 cpio kmod xz-utils zstd busybox-static gcc libc6-dev linux-libc-dev${kabi:+ linux-headers-$kabi}"
	else
		# linux-kbuild-6.1: kbuild's host tools (fixdep, modpost, ...)
		# built for this host, used with the arm64 headers (no qemu-user).
		want="qemu-system-arm cpio kmod xz-utils zstd busybox-static binutils gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-kbuild-${kabi%%.0-*}"
	fi
	# shellcheck disable=SC2086
	missing=$(missing_debs $want)
	[ -z "$missing" ] && return 0
	[ "$(id -u)" -eq 0 ] || xen_die "missing host packages:$missing (run as root or apt-get install them)"
	xen_log "installing host packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
		apt_update_once
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
}

# deb_in_cache PKG[:ARCH]: the cached .deb of PKG, or nothing.
deb_in_cache() {
	# apt-get download names files NAME_VERSION_ARCH.deb (":" as %3a).
	ls "$XVMSG_XEN_CACHE/${1%:*}"_*_"$ARCH".deb "$XVMSG_XEN_CACHE/${1%:*}"_*_all.deb 2>/dev/null | tail -n1 || true
}

# qualified PKG...: PKG:ARCH for a foreign architecture, PKG for the host's.
qualified() {
	for p in "$@"; do
		if [ "$ARCH" = amd64 ]; then echo "$p"; else echo "$p:$ARCH"; fi
	done
}

# The foreign architecture known to dpkg and in apt's lists.
ensure_foreign_arch() {
	[ "$ARCH" = amd64 ] && return 0
	if ! dpkg --print-foreign-architectures | grep -qx "$ARCH"; then
		[ "$(id -u)" -eq 0 ] || xen_die "dpkg does not know $ARCH (dpkg --add-architecture $ARCH as root)"
		xen_log "dpkg --add-architecture $ARCH"
		dpkg --add-architecture "$ARCH"
		apt_update_once
	fi
	apt-cache show "xen-utils-4.17:$ARCH" >/dev/null 2>&1 || apt_update_once
}

download_missing() {
	missing=""
	for p in "$@"; do
		[ -n "$(deb_in_cache "$p")" ] || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		xen_log "all $# packages in the cache ($XVMSG_XEN_CACHE)"
		return 0
	fi
	xen_log "downloading:$missing"
	# apt-get download writes into the current directory.  As root it
	# cannot drop to the _apt user for a folder it does not own, hence
	# the sandbox option.
	# shellcheck disable=SC2086
	if ! (cd "$XVMSG_XEN_CACHE" && apt-get download -qq -o APT::Sandbox::User=root $missing); then
		apt_update_once
		# shellcheck disable=SC2086
		(cd "$XVMSG_XEN_CACHE" && apt-get download -qq -o APT::Sandbox::User=root $missing)
	fi
	for p in $missing; do
		[ -n "$(deb_in_cache "$p")" ] || xen_die "apt-get download $p left no .deb"
	done
	xen_log "downloaded"
}

extract_all() {
	kabi=$1; shift
	stamp=$XVMSG_XEN_ROOT/.debs
	list=$(for p in "$@"; do basename "$(deb_in_cache "$p")"; done | sort)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$list" ]; then
		xen_log "staging root up to date ($XVMSG_XEN_ROOT)"
		return 0
	fi
	xen_log "extracting $# packages into $XVMSG_XEN_ROOT"
	tmp=$XVMSG_XEN_ROOT.tmp
	rm -rf "$tmp" && mkdir -p "$tmp"
	for p in "$@"; do
		dpkg -x "$(deb_in_cache "$p")" "$tmp"
	done
	# trixie's packages put everything under /usr (merged /usr): give
	# the staging root the top-level links a trixie system has, so that
	# $ROOT/lib/modules and $ROOT/bin/busybox are where they are on
	# bookworm.
	if [ "$XVMSG_DISTRO" = trixie ]; then
		for d in bin sbin lib lib64; do
			[ -e "$tmp/$d" ] && [ ! -L "$tmp/$d" ] && xen_die "a trixie .deb ships /$d (not merged /usr)"
			[ -e "$tmp/usr/$d" ] && ln -sfn "usr/$d" "$tmp/$d"
		done
	fi
	# The kernel package ships no modules.dep.  (depmod reads foreign
	# modules as well.)
	depmod -b "$tmp" "$kabi"
	echo "$kabi" >"$tmp/.kabi"
	echo "$list" >"$tmp/.debs"
	rm -rf "$XVMSG_XEN_ROOT"
	mv "$tmp" "$XVMSG_XEN_ROOT"
	xen_log "extracted ($(du -sm "$XVMSG_XEN_ROOT" | cut -f1) MB)"
}

# ---- trixie: .debs through the chroot's apt ---------------------------------
# The host is Debian 12: its apt knows no trixie packages.  The trixie chroot
# (scripts/kbuild/trixie-chroot.sh, also used by make check-module-builds)
# downloads them into the cache.
trixie_setup() {
	[ "$(id -u)" -eq 0 ] || xen_die "XVMSG_DISTRO=trixie and XVMSG_GUEST_KERNEL need root (the trixie chroot)"
	# shellcheck source=scripts/kbuild/trixie-chroot.sh
	. "$XVMSG_TOP/scripts/kbuild/trixie-chroot.sh"
	log() { xen_log "$@"; }
	why=$(make_chroot) || xen_die "$why"
}

# trixie_download PKG...: the ones not in the cache, with the chroot's apt
# (PKG/trixie-backports for backports).
trixie_download() {
	local missing="" p
	for p in "$@"; do
		[ -n "$(deb_in_cache "${p%/*}")" ] || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		xen_log "all $# packages in the cache ($XVMSG_XEN_CACHE)"
		return 0
	fi
	xen_log "downloading (trixie):$missing"
	# shellcheck disable=SC2086
	if ! chroot_download "$XVMSG_XEN_CACHE" $missing >/dev/null 2>&1; then
		chroot_update
		# shellcheck disable=SC2086
		chroot_download "$XVMSG_XEN_CACHE" $missing >/dev/null ||
			xen_die "apt-get download in the trixie chroot failed:$missing"
	fi
	for p in $missing; do
		[ -n "$(deb_in_cache "${p%/*}")" ] || xen_die "apt-get download $p left no .deb"
	done
	xen_log "downloaded"
}

# trixie_kabi SUITE PINNED: PINNED if cached or downloadable, else the ABI
# linux-image-amd64 of SUITE depends on.
trixie_kabi() {
	local k
	if [ -n "$2" ]; then
		if [ -n "$(deb_in_cache "linux-image-$2")" ] ||
		   in_chroot apt-cache show "linux-image-$2" >/dev/null 2>&1; then
			echo "$2"; return 0
		fi
	fi
	k=$(trixie_headers "$1")
	if [ -z "$k" ]; then
		chroot_update
		k=$(trixie_headers "$1")
	fi
	[ -n "$k" ] || xen_die "no linux-image-amd64 in $1 (apt-get update in the chroot?)"
	[ -n "$2" ] && echo "xen: warning: linux-image-$2 is gone; using linux-image-$k (update the pinned ABI in scripts/xen/common.sh)" >&2
	echo "$k"
}

# fetch_guest_kernel KERNEL GROOT: a guest's own kernel (XVMSG_GUEST_KERNEL
# into $XVMSG_XEN_OUT/groot, XVMSG_GUEST2_KERNEL into groot2): its image
# package extracted into GROOT and depmod'ed.  mkimages.sh takes that
# guest's vmlinux and modules from there.
fetch_guest_kernel() {
	local suite pin gk groot=$2 sfx pkgs p list
	case $1 in
	7.x) suite=trixie-backports pin=$XVMSG_XEN_KABI_7X ;;
	6.12-trixie) suite=trixie pin=$XVMSG_XEN_KABI_TRIXIE ;;
	*) xen_die "guest kernel '$1': 7.x or 6.12-trixie" ;;
	esac
	gk=$(trixie_kabi "$suite" "$pin")
	xen_log "guest kernel ABI $gk ($1, $suite)"
	sfx=
	[ "$suite" = trixie-backports ] && sfx=/trixie-backports
	trixie_download "linux-image-$gk$sfx"
	# Newer kernels (7.x) split the image package: linux-image-ABI
	# depends on linux-binary-ABI (vmlinuz in /usr/lib/modules/ABI/),
	# linux-modules-ABI and linux-base-ABI (modules.order, .builtin).
	pkgs="linux-image-$gk"
	for p in $(dpkg-deb -f "$(deb_in_cache "linux-image-$gk")" Depends | tr ',|' '\n\n' |
			sed -n "s/^ *\(linux-\(binary\|modules\|base\)-$gk\)\( .*\)\?$/\1/p"); do
		trixie_download "$p$sfx"
		pkgs="$pkgs $p"
	done
	list=$(for p in $pkgs; do basename "$(deb_in_cache "$p")"; done | sort)
	if [ "$(cat "$groot/.debs" 2>/dev/null)" = "$list" ]; then
		xen_log "guest kernel root up to date ($groot)"
		return 0
	fi
	rm -rf "$groot.tmp" && mkdir -p "$groot.tmp"
	for p in $pkgs; do dpkg -x "$(deb_in_cache "$p")" "$groot.tmp"; done
	[ -d "$groot.tmp/usr/lib" ] && [ ! -e "$groot.tmp/lib" ] && ln -s usr/lib "$groot.tmp/lib"
	depmod -b "$groot.tmp" "$gk"
	echo "$gk" >"$groot.tmp/.kabi"
	echo "$list" >"$groot.tmp/.debs"
	rm -rf "$groot" && mv "$groot.tmp" "$groot"
}

fetch_guest_kernels() {
	[ -z "$XVMSG_GUEST_KERNEL" ] || fetch_guest_kernel "$XVMSG_GUEST_KERNEL" "$XVMSG_XEN_OUT/groot"
	[ -z "$XVMSG_GUEST2_KERNEL" ] || fetch_guest_kernel "$XVMSG_GUEST2_KERNEL" "$XVMSG_XEN_OUT/groot2"
	return 0
}

main() {
	xen_lock fetch
	mkdir -p "$XVMSG_XEN_CACHE"
	if [ "$XVMSG_DISTRO" = trixie ] || [ -n "$XVMSG_GUEST_KERNEL$XVMSG_GUEST2_KERNEL" ]; then
		trixie_setup
	fi
	if [ "$XVMSG_DISTRO" = trixie ]; then
		ensure_host_tools ""
		kabi=$(trixie_kabi trixie "$XVMSG_XEN_KABI")
		xen_log "trixie: kernel ABI $kabi, Xen $XVMSG_XEN_SERIES"
		# shellcheck disable=SC2086
		set -- $XEN_PKGS $LIB_PKGS $TRIXIE_LIB_PKGS $OTHER_PKGS "linux-image-$kabi"
		trixie_download "$@"
		extract_all "$kabi" "$@"
		fetch_guest_kernels
		return 0
	fi
	# apt-cache needs package lists; a fresh machine may have none.
	if ! apt-cache show xen-utils-4.17 >/dev/null 2>&1; then
		apt_update_once
	fi
	ensure_foreign_arch
	kabi=$(xen_resolve_kabi)
	xen_log "kernel ABI $kabi, Xen $XVMSG_XEN_SERIES, $ARCH"
	ensure_host_tools "$kabi"
	# shellcheck disable=SC2086
	set -- $(qualified $XEN_PKGS $LIB_PKGS $OTHER_PKGS "linux-image-$kabi")
	# shellcheck disable=SC2086
	[ "$ARCH" = amd64 ] || set -- "$@" $(qualified $FOREIGN_PKGS)
	if [ "$ARCH" = amd64 ]; then
		download_missing "$@"
	else
		download_missing "$@" "linux-headers-$kabi:$ARCH" "linux-headers-${kabi%-*}-common"
		# (The kernel headers, for cross-building the module, go to
		# kheaders/, not the staging root; -common is "Architecture: all".)
	fi
	extract_all "$kabi" "$@"
	[ "$ARCH" = amd64 ] || extract_headers "$kabi"
	fetch_guest_kernels
	return 0
}

# extract_headers KABI: kheaders/usr/src/linux-headers-KABI, a tree to build
# modules against with ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-.  Its
# scripts/ and tools/ point to the host's linux-kbuild (kbuild's host
# programs built for this machine, same kernel series): the arm64 package's
# own are arm64 binaries.
extract_headers() {
	kabi=$1
	kh=$XVMSG_XEN_OUT/kheaders
	stamp=$kh/.debs
	list=$(basename "$(deb_in_cache "linux-headers-$kabi")"; basename "$(deb_in_cache "linux-headers-${kabi%-*}-common")")
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$list" ]; then
		return 0
	fi
	xen_log "extracting the $kabi headers into $kh"
	rm -rf "$kh.tmp" && mkdir -p "$kh.tmp"
	dpkg -x "$(deb_in_cache "linux-headers-$kabi")" "$kh.tmp"
	dpkg -x "$(deb_in_cache "linux-headers-${kabi%-*}-common")" "$kh.tmp"
	kb=/usr/lib/linux-kbuild-${kabi%%.0-*}
	[ -d "$kb/scripts" ] || xen_die "no $kb (linux-kbuild-${kabi%%.0-*} on the host)"
	for d in "$kh.tmp/usr/src/linux-headers-$kabi" "$kh.tmp/usr/src/linux-headers-${kabi%-*}-common"; do
		for l in scripts tools; do
			[ -L "$d/$l" ] || [ ! -e "$d/$l" ] || continue
			rm -f "$d/$l"
			ln -s "$kb/$l" "$d/$l"
		done
	done
	# The flavour's Makefile includes the common one by absolute path.
	sed -i "s|/usr/src/|$kh/usr/src/|" "$kh.tmp/usr/src/linux-headers-$kabi/Makefile"
	echo "$list" >"$kh.tmp/.debs"
	rm -rf "$kh"
	mv "$kh.tmp" "$kh"
}

main "$@"
