#!/bin/bash
# SPDX-License-Identifier: MIT
# Compile-check the guest module (guest-kernel/) against the kernel headers
# of every kernel a Debian user may run, with W=1 and -Werror:
#
#   6.1    bookworm's kernel, the pinned ABI of the Xen tests
#          (XVMSG_XEN_KABI, scripts/xen/common.sh); host headers package
#   6.12   bookworm's 6.12 (built by gcc-12, like the host): the .debs of
#          linux-headers-6.12-amd64's dependency, extracted under build/
#   6.12-trixie  trixie's 6.12, built by trixie's gcc-14: in a trixie
#          chroot made with debootstrap (.debs extracted there)
#   7.x    the newest kernel of trixie-backports (gcc-14), in the same chroot
#
#   scripts/kbuild/check-builds.sh            all header sets
#   scripts/kbuild/check-builds.sh 6.12 7.x   only some (6.1, 6.12, 6.12-trixie, 7.x)
#
# One line per header set (PASS, FAIL or SKIP with the reason), then
# "module-builds: N passed, N failed".  A set whose packages cannot be had
# (no network, not root, no such package) is skipped, not failed.
#
# Everything fetched stays under build/kbuild/ (XVMSG_KBUILD_OUT): .debs in
# cache/, extracted bookworm headers in bookworm-<abi>/, the trixie chroot
# in trixie/ (debootstrap's .debs in debootstrap-cache/).  Runs after the
# first download nothing but apt-get update in the chroot.
set -u

XVMSG_TOP=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${XVMSG_KBUILD_OUT:-$XVMSG_TOP/build/kbuild}
case $OUT in /*) ;; *) OUT=$XVMSG_TOP/$OUT ;; esac
CACHE=$OUT/cache
MIRROR=${XVMSG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
JOBS=${XVMSG_KBUILD_JOBS:-2}
WERROR=${WERROR:-1}
# The pinned 6.1 ABI, as `make module` uses it.
KABI61=$(sed -n 's/^XVMSG_XEN_KABI=.*:-\([^}]*\)}.*/\1/p' "$XVMSG_TOP/scripts/xen/common.sh")

pass=0 fail=0 skip=0
t0=$(date +%s)

log() { printf '[kbuild %4ds] %s\n' $(($(date +%s) - t0)) "$*" >&2; }
# $OUT/passed: the kernel ABIs that passed in the last run, one a line
# (scripts/xen/combos.sh checks docs/xen.md's "builds" row against it).
result_pass() {
	pass=$((pass + 1))
	echo "  PASS    module-build/$1 ($2s)"
	echo "${1%% *}" >>"$OUT/passed.tmp"
}
result_skip() { skip=$((skip + 1)); echo "  SKIP    module-build/$1: $2"; }
result_fail() {
	fail=$((fail + 1))
	echo "  FAIL    module-build/$1; the build's output:"
	sed 's/^/        | /' "$2" | tail -n 60
}

is_root() { [ "$(id -u)" -eq 0 ]; }
host_has() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# host_install PKG...: apt-get install what is missing (root only).
host_install() {
	missing=""
	for p in "$@"; do host_has "$p" || missing="$missing $p"; done
	[ -z "$missing" ] && return 0
	is_root || { echo "not root, and the host lacks$missing"; return 1; }
	log "installing host packages:$missing"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing \
		>/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$missing >/dev/null 2>&1; } ||
		{ echo "apt-get install$missing failed"; return 1; }
}

# sync_src DEST (scripts/kbuild/module-src.sh)
# shellcheck source=scripts/kbuild/module-src.sh
. "$XVMSG_TOP/scripts/kbuild/module-src.sh"

# clean_log LOG: no compiler or modpost warning in LOG (they pass with
# WERROR=0; modpost's never fail the build).
clean_log() {
	! grep -E 'warning:|WARNING:' "$1" | grep -qv 'the compiler differs'
}

kbuild_flags() {
	echo "W=1 -j$JOBS"
	[ "$WERROR" = 1 ] && echo "KCFLAGS=-Werror"
}

# ---- 6.1: the host's headers package --------------------------------------
check_61() {
	name="$KABI61 (bookworm)"
	kdir=/usr/src/linux-headers-$KABI61
	if [ ! -d "$kdir" ]; then
		why=$(host_install "linux-headers-$KABI61" gcc make) ||
			{ result_skip "$name" "linux-headers-$KABI61: $why"; return; }
	fi
	build_host "$name" "$kdir" "$OUT/mod/$KABI61"
}

# build_host NAME KDIR SRC: build with the host's compiler.
build_host() {
	sync_src "$3"
	start=$(date +%s)
	# shellcheck disable=SC2046
	if make -C "$2" M="$3/guest-kernel" $(kbuild_flags) modules >"$3/build.log" 2>&1 &&
	   clean_log "$3/build.log"; then
		result_pass "$1" $(($(date +%s) - start))
	else
		result_fail "$1" "$3/build.log"
	fi
}

# ---- 6.12: bookworm's .debs, extracted --------------------------------------
# deb_in_cache PKG: the cached .deb of PKG, or nothing.
deb_in_cache() {
	ls "$CACHE/$1"_*_amd64.deb "$CACHE/$1"_*_all.deb 2>/dev/null | tail -n1
}

check_612() {
	# The ABI linux-headers-6.12-amd64 depends on today, else the newest
	# one in the cache (offline).
	abi=$(apt-cache depends linux-headers-6.12-amd64 2>/dev/null |
		sed -n 's/^ *Depends: linux-headers-\(6\.12\.[0-9]*+deb12-amd64\)$/\1/p' | head -n1)
	if [ -z "$abi" ] && is_root; then
		apt-get update -qq >/dev/null 2>&1
		abi=$(apt-cache depends linux-headers-6.12-amd64 2>/dev/null |
			sed -n 's/^ *Depends: linux-headers-\(6\.12\.[0-9]*+deb12-amd64\)$/\1/p' | head -n1)
	fi
	if [ -z "$abi" ]; then
		abi=$(ls "$CACHE" 2>/dev/null | sed -n 's/^linux-headers-\(6\.12\.[0-9]*+deb12-amd64\)_.*/\1/p' |
			sort -V | tail -n1)
	fi
	[ -n "$abi" ] || { result_skip "6.12 (bookworm)" \
		"no linux-headers-6.12-amd64 in apt's lists and none in $CACHE"; return; }
	name="$abi (bookworm)"
	ver=${abi%-amd64}
	pkgs="linux-headers-$abi linux-headers-$ver-common linux-kbuild-$ver"
	# gcc-12 builds these headers, pahole their modules' BTF (vmlinux is in
	# the package).
	why=$(host_install gcc-12 make dwarves libelf1 libssl3) ||
		{ result_skip "$name" "$why"; return; }
	mkdir -p "$CACHE"
	missing=""
	for p in $pkgs; do [ -n "$(deb_in_cache "$p")" ] || missing="$missing $p"; done
	if [ -n "$missing" ]; then
		log "downloading$missing"
		# shellcheck disable=SC2086
		(cd "$CACHE" && apt-get download -qq -o APT::Sandbox::User=root $missing) >/dev/null 2>&1 ||
			{ result_skip "$name" "apt-get download$missing failed"; return; }
	fi
	root=$OUT/bookworm-$abi
	list=$(for p in $pkgs; do basename "$(deb_in_cache "$p")"; done)
	if [ "$(cat "$root/.debs" 2>/dev/null)" != "$list" ]; then
		log "extracting $abi headers into $root"
		rm -rf "$root" && mkdir -p "$root"
		for p in $pkgs; do dpkg -x "$(deb_in_cache "$p")" "$root"; done
		# The flavour's Makefile includes the common one by absolute path.
		sed -i "s|^include /usr/src/|include $root/usr/src/|" \
			"$root/usr/src/linux-headers-$abi/Makefile"
		echo "$list" >"$root/.debs"
	fi
	build_host "$name" "$root/usr/src/linux-headers-$abi" "$OUT/mod/$abi"
}

# ---- 7.x: trixie-backports in a trixie chroot -------------------------------
# make_chroot, in_chroot, chroot_update, trixie_headers, chroot_headers;
# the Xen 4.20 images use the same chroot.
XVMSG_KBUILD_OUT=$OUT
# shellcheck source=scripts/kbuild/trixie-chroot.sh
. "$XVMSG_TOP/scripts/kbuild/trixie-chroot.sh"

# build_chroot NAME ABI: build in the chroot against /usr/src/linux-headers-ABI.
build_chroot() {
	sync_src "$CHROOT/build/$2"
	start=$(date +%s)
	# shellcheck disable=SC2046
	if in_chroot make -C "/usr/src/linux-headers-$2" M="/build/$2/guest-kernel" \
		$(kbuild_flags) modules >"$OUT/build-$2.log" 2>&1 &&
	   clean_log "$OUT/build-$2.log"; then
		result_pass "$1" $(($(date +%s) - start))
	else
		result_fail "$1" "$OUT/build-$2.log"
	fi
}

# trixie's own 6.12.  Its headers package depends on the kernel image, so
# the three packages a build needs are extracted rather than installed.
check_612t() {
	is_root || { result_skip "6.12 (trixie)" "the trixie chroot needs root"; return; }
	why=$(make_chroot) || { result_skip "6.12 (trixie)" "$why"; return; }
	chroot_update
	abi=$(trixie_headers trixie)
	[ -n "$abi" ] || { result_skip "6.12 (trixie)" "trixie has no linux-headers-amd64 (apt-get update in $CHROOT?)"; return; }
	name="$abi (trixie, gcc-14)"
	why=$(chroot_headers "$abi") || { result_skip "$name" "$why"; return; }
	build_chroot "$name" "$abi"
}

check_7x() {
	is_root || { result_skip "7.x (trixie-backports)" "the trixie chroot needs root"; return; }
	why=$(make_chroot) || { result_skip "7.x (trixie-backports)" "$why"; return; }
	chroot_update
	abi=$(trixie_headers trixie-backports)
	[ -n "$abi" ] || { result_skip "7.x (trixie-backports)" \
		"trixie-backports has no linux-headers-amd64 (apt-get update in $CHROOT?)"; return; }
	name="$abi (trixie-backports, gcc-14)"
	if [ ! -d "$CHROOT/usr/src/linux-headers-$abi" ]; then
		log "installing linux-headers-$abi in the chroot"
		in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends -t trixie-backports "linux-headers-$abi" \
			>"$OUT/trixie-install.log" 2>&1 ||
			{ result_skip "$name" "apt-get install linux-headers-$abi in the chroot failed (see $OUT/trixie-install.log)"; return; }
	fi
	build_chroot "$name" "$abi"
}

main() {
	mkdir -p "$OUT"
	exec 9>"$OUT/kbuild.lock"
	flock -w 900 9 || { echo "module-builds: $OUT/kbuild.lock held for 900 s"; exit 1; }
	sets=${*:-6.1 6.12 6.12-trixie 7.x}
	: >"$OUT/passed.tmp"
	for s in $sets; do
		case $s in
		6.1) check_61 ;;
		6.12) check_612 ;;
		6.12-trixie) check_612t ;;
		7.x) check_7x ;;
		*) echo "check-builds.sh: unknown header set $s (6.1, 6.12, 6.12-trixie, 7.x)" >&2; exit 2 ;;
		esac
	done
	mv "$OUT/passed.tmp" "$OUT/passed"
	echo "module-builds: $pass passed, $fail failed$([ "$skip" -gt 0 ] && echo " ($skip skipped)")"
	[ "$fail" -eq 0 ]
}

main "$@"
