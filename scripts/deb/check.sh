#!/bin/bash
# SPDX-License-Identifier: MIT
# make check-deb: install the packages of make deb (build/deb/) into a
# fresh Debian 12 chroot and check them there.
#
# The base chroot (debootstrap minbase + dkms + the headers of the kernel
# ABI pinned in scripts/xen/common.sh, with the packages' other
# dependencies downloaded but not installed) is made once and kept in
# build/deb-chroot/base; each run installs into a copy of it
# (build/deb-chroot/run), which is removed at the end.  Needs root.
#
#   XVMSG_VERSION      the packages' version (make check-deb passes it)
#   XVMSG_DEB_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   XVMSG_DEB_KEEP=1   keep the run chroot for a look afterwards
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
: "${XVMSG_VERSION:?set XVMSG_VERSION (make check-deb does)}"
ver=$XVMSG_VERSION
out=$top/build/deb
croot=$top/build/deb-chroot
base=$croot/base
run=$croot/run
mirror=${XVMSG_DEB_MIRROR:-http://deb.debian.org/debian}
kabi=$(sed -n 's/^XVMSG_XEN_KABI=.*:-\([^}]*\)}.*/\1/p' "$top/scripts/xen/common.sh")
t0=$(date +%s)

log() { printf '[deb %4ds] %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
die() { printf 'deb: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot)"
[ -n "$kabi" ] || die "no XVMSG_XEN_KABI in scripts/xen/common.sh"
for t in debootstrap lintian; do
	command -v "$t" >/dev/null || {
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends "$t" >/dev/null
	} || die "cannot install $t"
done

mkdir -p "$croot"
exec 9>"$croot/lock"
flock -w 1800 9 || die "$croot/lock held by another run for 30 min"

mounted=""
umount_all() {
	local m
	for m in $mounted; do umount "$m" 2>/dev/null || umount -l "$m"; done
	mounted=""
}
cleanup() {
	umount_all
	if [ "${XVMSG_DEB_KEEP:-0}" != 1 ]; then rm -rf "$run"; fi
	rm -rf "$base.new"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# in_root DIR CMD...: run CMD in the chroot DIR with /proc mounted.
in_root() {
	local dir=$1; shift
	chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 HOME=/root "$@"
}
mount_proc() {
	mount -t proc proc "$1/proc" && mounted="$1/proc $mounted"
}

# ---- the cached base --------------------------------------------------------
# Stamp: what the base was made for; a change of ABI or of dependencies
# makes a new one.
stamp="bookworm minbase kabi=$kabi deps=dkms,systemd,adduser,libxen v1"
if [ ! -f "$base/.xvmsg-stamp" ] || [ "$(cat "$base/.xvmsg-stamp")" != "$stamp" ]; then
	log "making the base chroot in $base (once; about 3-5 minutes)"
	rm -rf "$base.new"
	debootstrap --variant=minbase bookworm "$base.new" "$mirror" >"$croot/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$croot/debootstrap.log"; die "debootstrap failed (log: $croot/debootstrap.log)"; }
	cat >"$base.new/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SOURCES
	# No service starts inside the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$base.new/usr/sbin/policy-rc.d"
	chmod 755 "$base.new/usr/sbin/policy-rc.d"
	mount_proc "$base.new" || die "cannot mount /proc in the chroot"
	{
		in_root "$base.new" apt-get update -qq &&
		in_root "$base.new" apt-get install -y -qq --no-install-recommends \
			dkms "linux-headers-$kabi" systemd &&
		# What dpkg -i will miss; apt-get -f install takes it from here.
		in_root "$base.new" apt-get install -y -qq --no-install-recommends --download-only \
			adduser libxenstore4 libxenevtchn1 libxengnttab1 libxenforeignmemory1
	} >"$croot/base.log" 2>&1 || { umount_all; tail -n 20 "$croot/base.log"; die "base chroot (log: $croot/base.log)"; }
	umount_all
	echo "$stamp" >"$base.new/.xvmsg-stamp"
	rm -rf "$base"
	mv "$base.new" "$base"
	log "base chroot ready"
else
	log "base chroot cached ($base)"
fi

# ---- the checks -------------------------------------------------------------
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "  PASS    $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL    $*"; }
check() {	# check NAME CMD...: PASS when CMD succeeds, else FAIL with its output
	local name=$1 outp; shift
	if outp=$("$@" 2>&1); then ok "$name"; else bad "$name"; printf '%s\n' "$outp" | tail -n 20 | sed 's/^/          /'; fi
}

debs="$out/xvmsg-backend_${ver}_amd64.deb $out/xvmsg-utils_${ver}_amd64.deb $out/xvmsg-dkms_${ver}_all.deb"
check "three packages built ($ver)" ls $debs

# Its whole output goes to build/deb/lintian.log (make deb's folder).
lintian --fail-on error,warning "$out/xvmsg_${ver}_amd64.changes" >"$out/lintian.log" 2>&1
lintian_rc=$?
sed -i '/^running with root privileges is not recommended/d' "$out/lintian.log"
if [ "$lintian_rc" -eq 0 ]; then ok "lintian: no error or warning ($(grep -c . "$out/lintian.log") lines of info or notes)"
else bad "lintian (exit status $lintian_rc)"; sed 's/^/          /' "$out/lintian.log"; fi

log "copying the base chroot"
rm -rf "$run"
cp -a "$base" "$run" || die "cannot copy $base"
mount_proc "$run" || die "cannot mount /proc in the chroot"
mkdir -p "$run/tmp/debs"
cp $debs "$run/tmp/debs/"

log "installing the packages"
inst_log=$croot/install.log
{
	# dpkg -i leaves xvmsg-backend unconfigured (adduser, the Xen libraries);
	# apt-get -f install brings them and configures it.
	in_root "$run" dpkg -i /tmp/debs/xvmsg-backend_${ver}_amd64.deb \
		/tmp/debs/xvmsg-utils_${ver}_amd64.deb /tmp/debs/xvmsg-dkms_${ver}_all.deb
	in_root "$run" apt-get -f install -y -qq --no-install-recommends
} >"$inst_log" 2>&1
installed() {
	local p s
	for p in xvmsg-backend xvmsg-utils xvmsg-dkms; do
		s=$(in_root "$run" dpkg-query -W -f='${Status}' "$p" 2>&1)
		[ "$s" = "install ok installed" ] || { echo "$p: $s"; tail -n 30 "$inst_log"; return 1; }
	done
}
check "dpkg -i + apt-get -f install: all three installed" installed

dkms_installed() {
	local s
	s=$(in_root "$run" dkms status xvmsg 2>&1)
	echo "$s"
	echo "$s" | grep -q "^xvmsg/$ver, $kabi, x86_64: installed"
}
check "dkms built and installed xvmsg/$ver for $kabi" dkms_installed

ko_ok() {
	local ko vm
	ko=$(cd "$run" && ls lib/modules/"$kabi"/updates/dkms/xvmsg.ko* 2>/dev/null | head -n1)
	[ -n "$ko" ] || { echo "no xvmsg.ko in /lib/modules/$kabi/updates/dkms"; return 1; }
	vm=$(in_root "$run" modinfo -F vermagic "/$ko")
	echo "/$ko: vermagic $vm"
	case $vm in "$kabi "*) ;; *) return 1 ;; esac
	in_root "$run" modinfo -F license "/$ko" | grep -qx GPL
}
check "/lib/modules/$kabi/updates/dkms/xvmsg.ko exists (vermagic $kabi, GPL)" ko_ok

autoinstall() {
	grep -qx 'AUTOINSTALL="yes"' "$run/usr/src/xvmsg-$ver/dkms.conf" &&
	grep -qx xvmsg "$run/usr/lib/modules-load.d/xvmsg.conf"
}
check "dkms.conf AUTOINSTALL=yes, modules-load.d loads xvmsg" autoinstall

unit_ok() {
	local u=$run/lib/systemd/system/xvmsg-backend.service
	[ -f "$u" ] || { echo "no unit"; return 1; }
	in_root "$run" systemd-analyze verify /lib/systemd/system/xvmsg-backend.service || return 1
	grep -q '^CapabilityBoundingSet=$' "$u" && grep -q '^NoNewPrivileges=yes' "$u" &&
	grep -q '^ProtectSystem=strict' "$u" && grep -q '^ProtectHome=yes' "$u" &&
	grep -q '^PrivateTmp=yes' "$u" && grep -q '^User=xvmsg' "$u"
}
check "systemd-analyze verify accepts xvmsg-backend.service (hardening present)" unit_ok

user_ok() {
	in_root "$run" getent passwd xvmsg || return 1
	in_root "$run" getent group xvmsg || return 1
	grep -c 'GROUP="xvmsg"' "$run/lib/udev/rules.d/60-xvmsg-backend.rules" | grep -qx 3
}
check "system user and group xvmsg; udev rule gives it gntdev, evtchn, xenbus" user_ok

conffile_ok() {
	in_root "$run" dpkg-query -W -f='${Conffiles}\n' xvmsg-backend | grep -q '^ /etc/xvmsg/backend.conf '
}
check "/etc/xvmsg/backend.conf is a conffile" conffile_ok

version_ok() {
	local v
	v=$(in_root "$run" xvmsg-backend --version) || return 1
	echo "$v"
	case $v in "xvmsg-backend $ver "*) ;; *) return 1 ;; esac
}
check "xvmsg-backend --version runs in the chroot ($ver)" version_ok

config_ok() {
	# No Xen here: the backend must get past the shipped config (a bad
	# one is exit status 2) and fail at the xen bus (status 1).
	local msg rc
	msg=$(in_root "$run" timeout 10 xvmsg-backend --bus xen --config /etc/xvmsg/backend.conf 2>&1)
	rc=$?
	echo "exit status $rc: $msg"
	[ "$rc" -eq 1 ] && echo "$msg" | grep -q 'xen bus: cannot open xenstore'
}
check "the shipped backend.conf parses (fails later, at the missing Xen)" config_ok

check "xvmsg-ctl --help runs in the chroot" in_root "$run" xvmsg-ctl --help

purge_ok() {
	in_root "$run" dpkg --purge xvmsg-dkms xvmsg-backend xvmsg-utils || return 1
	[ -z "$(in_root "$run" dkms status xvmsg)" ] || { in_root "$run" dkms status; return 1; }
	! ls "$run"/lib/modules/"$kabi"/updates/dkms/xvmsg.ko* 2>/dev/null
	[ ! -e "$run/etc/xvmsg/backend.conf" ]
}
check "dpkg --purge removes the module and the config" purge_ok

umount_all
log "done"
echo "deb: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
