#!/bin/bash
# SPDX-License-Identifier: MIT
# Download the Debian 12 packages for booting Xen 4.17 in QEMU and extract
# them into a staging root.  Nothing is installed on the host's boot path:
# the .debs are fetched with `apt-get download` and unpacked with `dpkg -x`.
#
#   scripts/xen/fetch.sh            host tools + .debs + staging root
#
# Idempotent: a .deb already in the cache is not downloaded again and the
# staging root is re-extracted only when the set of .debs changed.
#
# Environment: XVMSG_XEN_CACHE (default build/xen/cache), XVMSG_XEN_ROOT
# (default build/xen/root), XVMSG_XEN_KABI (the pinned kernel ABI), see
# scripts/xen/common.sh.
set -euo pipefail
. "$(dirname "$0")/common.sh"

XEN_PKGS="xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils"
# Runtime libraries of the Xen tools.  libxendevicemodel1 and libxentoolcore1
# are needed although xen-utils does not depend on them; libyajl2 is not on
# a minimal host.  Everything else the binaries link (libc, libuuid,
# liblzma, libzstd, zlib, libext2fs, libtinfo, libgcc_s) comes from
# packages of priority required, so mkimages.sh takes them from the host.
LIB_PKGS="libxencall1 libxendevicemodel1 libxenevtchn1 libxenforeignmemory1
 libxengnttab1 libxenhypfs1 libxenmisc4.17 libxenstore4 libxentoolcore1
 libxentoollog1 libyajl2"
OTHER_PKGS="busybox-static"

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
	want="qemu-system-x86 cpio kmod xz-utils zstd busybox-static gcc libc6-dev linux-libc-dev linux-headers-$kabi"
	missing=""
	for p in $want; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
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

# deb_in_cache PKG: the cached .deb of PKG, or nothing.
deb_in_cache() {
	# apt-get download names files NAME_VERSION_ARCH.deb (":" as %3a).
	ls "$XVMSG_XEN_CACHE/$1"_*_amd64.deb "$XVMSG_XEN_CACHE/$1"_*_all.deb 2>/dev/null | tail -n1 || true
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
	# The kernel package ships no modules.dep.
	depmod -b "$tmp" "$kabi"
	echo "$kabi" >"$tmp/.kabi"
	echo "$list" >"$tmp/.debs"
	rm -rf "$XVMSG_XEN_ROOT"
	mv "$tmp" "$XVMSG_XEN_ROOT"
	xen_log "extracted ($(du -sm "$XVMSG_XEN_ROOT" | cut -f1) MB)"
}

main() {
	xen_lock fetch
	mkdir -p "$XVMSG_XEN_CACHE"
	# apt-cache needs package lists; a fresh machine may have none.
	if ! apt-cache show xen-utils-4.17 >/dev/null 2>&1; then
		apt_update_once
	fi
	kabi=$(xen_resolve_kabi)
	xen_log "kernel ABI $kabi, Xen $XVMSG_XEN_SERIES"
	ensure_host_tools "$kabi"
	# shellcheck disable=SC2086
	set -- $XEN_PKGS $LIB_PKGS $OTHER_PKGS "linux-image-$kabi"
	download_missing "$@"
	extract_all "$kabi" "$@"
}

main "$@"
