# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# The Debian 13 (trixie) chroot, shared by scripts/kbuild/check-builds.sh
# (module builds against trixie's headers) and scripts/xen/ (the Xen 4.20
# reference system: trixie's .debs, our programs built for trixie).
# Sourced, not run.  Needs root (debootstrap, chroot, unshare).
#
# Set before sourcing (defaults shown):
#   XVMSG_TOP                 the top folder
#   XVMSG_KBUILD_OUT          build/kbuild: the chroot is $XVMSG_KBUILD_OUT/trixie
#   XVMSG_DEBIAN_MIRROR       http://deb.debian.org/debian
# The caller may define log MSG... (progress on stderr); a default is given.

TX_OUT=${XVMSG_KBUILD_OUT:-$XVMSG_TOP/build/kbuild}
case $TX_OUT in /*) ;; *) TX_OUT=$XVMSG_TOP/$TX_OUT ;; esac
MIRROR=${XVMSG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CHROOT=$TX_OUT/trixie
# gcc-14 builds trixie's kernel headers; pahole for BTF; libelf/libssl for
# kbuild's tools; perl for 6.12's kernel-doc (W=1).
TRIXIE_PKGS=gcc-14,gcc-14-for-host,make,libc6-dev,libelf1t64,libssl3t64,zlib1g,pahole,perl,ca-certificates

declare -F log >/dev/null || log() { printf '[trixie] %s\n' "$*" >&2; }

# in_chroot CMD...: run CMD in the chroot with /proc mounted (objtool reads
# it), in a mount namespace of its own so nothing stays mounted.
# TX_BINDS="HOSTDIR:CHROOTDIR ..." bind-mounts folders for this command.
in_chroot() {
	# shellcheck disable=SC2016
	unshare --mount --propagation private -- sh -c '
		root=$1; shift
		mount -t proc proc "$root/proc" || exit 1
		for b in $TX_BINDS; do
			mkdir -p "$root${b#*:}" && mount --bind "${b%%:*}" "$root${b#*:}" || exit 1
		done
		exec chroot "$root" "$@"' sh "$CHROOT" "$@"
}

# make_chroot: debootstrap the chroot once.  Prints why on failure.
make_chroot() {
	[ -f "$CHROOT/.xvmsg-ok" ] && return 0
	[ "$(id -u)" -eq 0 ] || { echo "the trixie chroot needs root"; return 1; }
	if ! dpkg-query -W -f='${Status}' debootstrap 2>/dev/null | grep -q "install ok installed"; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
			>/dev/null 2>&1 || { echo "apt-get install debootstrap failed"; return 1; }
	fi
	[ -f /usr/share/debootstrap/scripts/trixie ] ||
		{ echo "this debootstrap does not know trixie"; return 1; }
	log "debootstrap trixie into $CHROOT (about 500 MB, a few minutes)"
	rm -rf "$CHROOT.tmp"
	mkdir -p "$TX_OUT/debootstrap-cache"
	if ! debootstrap --variant=minbase --include="$TRIXIE_PKGS" \
		--cache-dir="$TX_OUT/debootstrap-cache" trixie "$CHROOT.tmp" "$MIRROR" \
		>"$TX_OUT/debootstrap.log" 2>&1; then
		rm -rf "$CHROOT.tmp"
		echo "debootstrap trixie from $MIRROR failed (see $TX_OUT/debootstrap.log)"
		return 1
	fi
	echo "deb $MIRROR trixie-backports main" >"$CHROOT.tmp/etc/apt/sources.list.d/backports.list"
	touch "$CHROOT.tmp/.xvmsg-ok"
	rm -rf "$CHROOT" && mv "$CHROOT.tmp" "$CHROOT"
}

# chroot_update: apt-get update in the chroot, once a run.
chroot_updated=0
chroot_update() {
	[ "$chroot_updated" = 1 ] && return 0
	chroot_updated=1
	in_chroot apt-get update -qq >/dev/null 2>&1 || log "apt-get update in the chroot failed: using its lists"
}

# trixie_headers SUITE: the ABI that linux-headers-amd64 of SUITE (trixie,
# trixie-backports) depends on, from the chroot's lists.
trixie_headers() {
	local ver
	ver=$(in_chroot apt-cache madison linux-headers-amd64 2>/dev/null |
		awk -F' *[|] *' -v s="$1/" 'index($3, s) {print $2}' | sort -V | tail -n1)
	[ -n "$ver" ] && in_chroot apt-cache depends "linux-headers-amd64=$ver" 2>/dev/null |
		sed -n 's/^ *Depends: linux-headers-\([0-9.]*+deb13-amd64\)$/\1/p' | head -n1
}

# chroot_install STAMP PKG...: apt-get install PKGs in the chroot unless
# STAMP (a name) says this list was installed already.  Log in
# $TX_OUT/trixie-install.log.
chroot_install() {
	local stamp=$CHROOT/.xvmsg-$1
	shift
	[ "$(cat "$stamp" 2>/dev/null)" = "$*" ] && return 0
	chroot_update
	log "installing in the trixie chroot: $*"
	in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
		>"$TX_OUT/trixie-install.log" 2>&1 || return 1
	echo "$*" >"$stamp"
}

# chroot_download DIR PKG...: apt-get download PKGs (trixie's, or
# trixie-backports' when named PKG/trixie-backports) into the host folder
# DIR.
chroot_download() {
	local dir=$1
	shift
	mkdir -p "$dir"
	# shellcheck disable=SC2016
	TX_BINDS="$dir:/mnt/xvmsg-debs" in_chroot sh -c \
		'cd /mnt/xvmsg-debs && apt-get download -qq -o APT::Sandbox::User=root "$@"' sh "$@"
}

# chroot_headers ABI: linux-headers-ABI extracted in the chroot (the headers
# package depends on the kernel image, so its three packages are extracted
# rather than installed).  Prints why on failure.
chroot_headers() {
	local abi=$1 ver=${1%-amd64} suite=
	[ -f "$CHROOT/usr/src/linux-headers-$abi/.xvmsg-ok" ] && return 0
	[ -f "$CHROOT/usr/src/linux-headers-$abi/Makefile" ] && return 0
	log "extracting linux-headers-$abi in the chroot"
	case $abi in *~bpo* | 7.*) suite=/trixie-backports ;; esac
	# shellcheck disable=SC2016
	in_chroot sh -c 'mkdir -p /var/cache/xvmsg && cd /var/cache/xvmsg && rm -f ./*.deb &&
		apt-get download -qq "$@" && for d in ./*.deb; do dpkg -x "$d" /; done' sh \
		"linux-headers-$abi$suite" "linux-headers-$ver-common$suite" "linux-kbuild-$ver$suite" \
		>"$TX_OUT/trixie-install.log" 2>&1 ||
		{ echo "apt-get download of linux-headers-$abi in the chroot failed (see $TX_OUT/trixie-install.log)"; return 1; }
	touch "$CHROOT/usr/src/linux-headers-$abi/.xvmsg-ok"
}
