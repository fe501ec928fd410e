#!/bin/bash
# SPDX-License-Identifier: MIT
# Build what QEMU boots, from the staging root that fetch.sh extracted:
#
#   build/xen/images/xen             the hypervisor, decompressed (multiboot;
#                                    on arm64 Debian's Image as it is)
#   build/xen/images/vmlinuz         the dom0 kernel (Debian's bzImage; arm64:
#                                    its Image, uncompressed)
#   build/xen/images/dom0.cpio.gz    dom0: busybox, Xen tools, xl configs, and
#                                    under /boot/xvmsg/ the domU kernel
#                                    (uncompressed vmlinux) plus:
#   build/xen/images/driver.cpio.gz  the driver domain   (copies; the ones dom0
#   build/xen/images/guest.cpio.gz   the guest            uses are inside it)
#
# An image is repacked only when the tree it is made of changed (content
# hash in images/.<img>.hash), so a second run takes a few seconds.
#
# XVMSG_XEN_ARCH=arm64 builds the same from the arm64 staging root into
# build/xen-arm64/ (scripts/xen/common.sh): every ELF file then comes from
# Debian's arm64 packages or the cross compiler, libraries are found by
# readelf instead of ldd, and the xl configs get type = "pvh" (Xen on Arm
# has only that kind of guest).
#
# Hooks, for IMG in dom0, driver, guest (all optional):
#   build/xen/overlay/IMG/          every file is copied into the image root,
#                                   last, so it may replace anything; ELF
#                                   executables in it get their libraries
#   build/xen/overlay/IMG.bins      one executable a line: "HOSTPATH [IMAGEPATH]"
#                                   (IMAGEPATH defaults to /usr/bin/NAME);
#                                   its shared libraries are added too
#   build/xen/overlay/IMG.modules   kernel module names to add and load at boot
#   $XVMSG_XEN_<IMG>_BINS           words "HOSTPATH" or "HOSTPATH:IMAGEPATH", as .bins
#   $XVMSG_XEN_<IMG>_KMODS          out-of-tree .ko files, put in
#                                   /lib/modules/KABI/extra/ (depmod'ed, not loaded)
#   $XVMSG_XEN_<IMG>_MODULES        modules loaded at boot (defaults below)
#   $XVMSG_XEN_PLAN                 test-plan folder (default scripts/xen/plans/smoke):
#                                   ROLE-* files go to /etc/xvmsg/ of that image,
#                                   other files to /etc/xvmsg/ of all three
# <IMG> in variable names is DOM0, DRIVER or GUEST.
set -euo pipefail
. "$(dirname "$0")/common.sh"

PLAN=${XVMSG_XEN_PLAN:-$XVMSG_XEN_SCRIPTS/plans/smoke}
case $PLAN in /*) ;; *) PLAN=$XVMSG_TOP/$PLAN ;; esac
[ -d "$PLAN" ] || xen_die "no test plan folder $PLAN"

# The kmod plan's network stages: on by default on x86 (XVMSG_KMOD_NET=0
# leaves them out); Xen on Arm's images have not run them yet.
if [ "$XVMSG_XEN_ARCH" = amd64 ]; then KMOD_NET=${XVMSG_KMOD_NET:-1}; else KMOD_NET=${XVMSG_KMOD_NET:-0}; fi
case $KMOD_NET in 0 | 1) ;; *) xen_die "XVMSG_KMOD_NET=$KMOD_NET: 0 or 1" ;; esac
# XVMSG_KMOD_FAULTS: names from FAULTS in the plan's dom0-test.sh (checked
# here, not at the end of a boot).
if [ "$(basename "$PLAN")" = kmod ] && [ "${XVMSG_KMOD_FAULTS:-all}" != all ]; then
	known=$(sed -n '/^FAULTS="/,/"$/p' "$PLAN/dom0-test.sh" | tr -d '"' | sed 's/^FAULTS=//' |
		tr ' \t' '\n\n' | sed -n 's/:.*//p' | paste -sd' ')
	[ -n "$known" ] || xen_die "no FAULTS list in $PLAN/dom0-test.sh"
	for f in $(echo "$XVMSG_KMOD_FAULTS" | tr ',' ' '); do
		case " $known " in *" $f "*) ;; *) xen_die "XVMSG_KMOD_FAULTS: no lying backend named '$f' (known: $known)" ;; esac
	done
fi

ROOT=$XVMSG_XEN_ROOT
[ -f "$ROOT/.kabi" ] || xen_die "no staging root in $ROOT: run scripts/xen/fetch.sh first"
KABI=$(cat "$ROOT/.kabi")
# The kernel whose modules go into the image being built: dom0's and the
# driver domain's from ROOT; the guest's from GROOT when it runs a kernel
# of its own (XVMSG_GUEST_KERNEL, fetch.sh extracted it there).
KROOT=$ROOT
MODDIR=lib/modules/$KABI
DOM0_KABI=$KABI
GROOT=
if [ -n "$XVMSG_GUEST_KERNEL" ]; then
	GROOT=$XVMSG_XEN_OUT/groot
	[ -f "$GROOT/.kabi" ] || xen_die "no guest kernel in $GROOT: run scripts/xen/fetch.sh first"
fi
# The kmod plan's second guest on a kernel of its own (XVMSG_GUEST2_KERNEL):
# its image, guest2.cpio.gz, from GROOT2.
GROOT2=
if [ -n "$XVMSG_GUEST2_KERNEL" ]; then
	GROOT2=$XVMSG_XEN_OUT/groot2
	[ -f "$GROOT2/.kabi" ] || xen_die "no second guest kernel in $GROOT2: run scripts/xen/fetch.sh first"
	[ -n "${XVMSG_XEN_GUEST2_KMODS:-}" ] || xen_die "XVMSG_GUEST2_KERNEL=$XVMSG_GUEST2_KERNEL: no XVMSG_XEN_GUEST2_KMODS (xvmsg.ko for that kernel)"
fi
ARCH=$XVMSG_XEN_ARCH
TRIPLET=$XVMSG_XEN_TRIPLET
if [ "$ARCH" = amd64 ]; then
	CC=${CC:-gcc}
else
	CC=${XVMSG_XEN_CROSS_CC:-$TRIPLET-gcc}
fi
GZIP_LEVEL=${XVMSG_XEN_GZIP_LEVEL:-6}

# tun: the kmod plan's lying NIC backend runs in dom0 with a tap.
XVMSG_XEN_DOM0_MODULES=${XVMSG_XEN_DOM0_MODULES:-xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs tun}
# bridge and tun: the driver domain bridges the taps of the guests' NICs.
XVMSG_XEN_DRIVER_MODULES=${XVMSG_XEN_DRIVER_MODULES:-xen-evtchn xen-gntdev xen-gntalloc bridge tun}
# ext4 and its helpers are modules in Debian's kernel.
XVMSG_XEN_GUEST_MODULES=${XVMSG_XEN_GUEST_MODULES:-xen-evtchn xen-gntdev xen-gntalloc virtio virtio_ring virtio_blk virtio_console virtio_rng virtio_net ext4}
# Modules never put in an image although something pulls them in (ext4's
# softdep crc32c-intel needs SSE4.2, which -cpu qemu64 lacks).
XVMSG_XEN_MODULES_SKIP=${XVMSG_XEN_MODULES_SKIP-crc32c-intel}

LIBPATH=$ROOT/usr/lib/$TRIPLET:$ROOT/lib/$TRIPLET
# bookworm's x86 images take the libraries that are not Xen's from the host
# (Debian 12 itself); trixie's take all of them from the staging root, and
# trixie's dynamic loader resolves them there.  (arm64's come from the
# staging root too, found with readelf: add_libs_foreign.)
LDSO=
if [ "$XVMSG_DISTRO" = trixie ]; then
	LDSO=$ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	[ -x "$LDSO" ] || xen_die "no $LDSO in the staging root (fetch.sh: libc6)"
fi

# ---- helpers on one image tree ($T) ---------------------------------------

# put SRC DEST: copy one file into the tree (DEST is an absolute image path).
put() {
	mkdir -p "$T$(dirname "$2")"
	cp -L --preserve=mode "$1" "$T$2"
}

# add_libs FILE: the shared libraries FILE needs, and the dynamic loader.
# bookworm: ldd on the host, Xen's libraries from the staging root first.
# trixie: the staging root's loader lists them, from the staging root only.
add_libs() {
	local out lib dest
	if [ "$ARCH" != amd64 ]; then
		add_libs_foreign "$1"
		return
	fi
	if [ -n "$LDSO" ]; then
		# Only dynamic ELF files (the loader crashes on static ones).
		readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter' || return 0
		out=$("$LDSO" --library-path "$LIBPATH" --list "$1" 2>&1) ||
			xen_die "$1: $LDSO --list failed: $out"
	else
		# A static or non-ELF file: nothing to do.
		out=$(LD_LIBRARY_PATH=$LIBPATH ldd "$1" 2>/dev/null) || return 0
	fi
	if echo "$out" | grep -q 'not found'; then
		xen_die "$1: libraries not found: $(echo "$out" | grep 'not found' | tr -s ' \t' ' ')"
	fi
	# "name => /path (addr)", the loader as "/lib64/ld... (addr)" (ldd)
	# or "/lib64/ld... => /its/path (addr)" (ld.so --list): SRC DEST.
	echo "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3, ($1 ~ /^\// ? $1 : "") }
		$1 ~ /^\// && $2 != "=>" { print $1, "" }' |
	while read -r lib dest; do
		[ -n "$dest" ] || dest=${lib#"$ROOT"}
		case $dest in /*) ;; *) dest=/$dest ;; esac
		[ -e "$T$dest" ] || put "$lib" "$dest"
	done
}

# add_libs_foreign FILE: the same for another architecture's ELF file, from
# the staging root only: the interpreter and DT_NEEDED, recursively, read
# with readelf (ldd would have to run the file).
add_libs_foreign() {
	local todo=$1 f n d lib interp seen=" "
	readelf -h "$1" >/dev/null 2>&1 || return 0
	interp=$(readelf -l "$1" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
	if [ -n "$interp" ]; then
		[ -e "$ROOT$interp" ] || xen_die "$1: no interpreter $interp in $ROOT"
		[ -e "$T$interp" ] || put "$ROOT$interp" "$interp"
	fi
	while [ -n "$todo" ]; do
		set -- $todo
		f=$1; shift; todo=$*
		for n in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
			case $seen in *" $n "*) continue ;; esac
			seen="$seen$n "
			lib=
			for d in /lib/$TRIPLET /usr/lib/$TRIPLET /lib /usr/lib; do
				[ -e "$ROOT$d/$n" ] && { lib=$d/$n; break; }
			done
			[ -n "$lib" ] || xen_die "$f: library $n not found in $ROOT"
			[ -e "$T$lib" ] || put "$ROOT$lib" "$lib"
			todo="$todo $ROOT$lib"
		done
	done
}

# add_bin SRC DEST: an executable and its libraries.
add_bin() {
	[ -f "$1" ] || xen_die "no such executable: $1"
	put "$1" "$2"
	add_libs "$1"
}

# add_bins_file FILE: lines "HOSTPATH [IMAGEPATH]"; # comments.
add_bins_file() {
	[ -f "$1" ] || return 0
	sed '/^[[:space:]]*#/d; /^[[:space:]]*$/d' "$1" | while read -r src dst; do
		case $src in /*) ;; *) src=$XVMSG_TOP/$src ;; esac
		add_bin "$src" "${dst:-/usr/bin/$(basename "$src")}"
	done
}

# add_bins_words WORD...: "HOSTPATH" or "HOSTPATH:IMAGEPATH".  A HOSTPATH
# starting with "=" is in the staging root ("=/usr/sbin/mke2fs": the
# distro's own, with its libraries).
add_bins_words() {
	for w in "$@"; do
		src=${w%%:*}
		dst=${w#*:}
		[ "$dst" = "$w" ] && dst=/usr/bin/$(basename "$src")
		case $src in =*) src=$ROOT${src#=} ;; /*) ;; *) src=$XVMSG_TOP/$src ;; esac
		add_bin "$src" "$dst"
	done
}

# busybox and its applet links, made once into work/busybox and copied into
# each tree (hundreds of ln calls per image would dominate a no-op rebuild).
add_busybox() {
	local bb=$XVMSG_XEN_WORK/busybox p
	if stale "$bb/bin/busybox" "$ROOT/bin/busybox"; then
		rm -rf "$bb"
		mkdir -p "$bb/bin"
		cp --preserve=mode "$ROOT/bin/busybox" "$bb/bin/busybox"
		# The applet list: arm64's busybox cannot run here, the host's
		# busybox-static (same Debian package, same applets) lists them.
		bb_list() { if [ "$ARCH" = amd64 ]; then "$ROOT/bin/busybox" "$@"; else busybox "$@"; fi; }
		bb_list --list-full | while read -r p; do
			[ -e "$bb/$p" ] || [ -L "$bb/$p" ] && continue
			mkdir -p "$bb/$(dirname "$p")"
			ln -s /bin/busybox "$bb/$p"
		done
	fi
	cp -a "$bb/." "$T/"
}

add_base() {
	role=$1
	for d in dev proc sys run tmp etc/xvmsg var/log root; do mkdir -p "$T/$d"; done
	chmod 1777 "$T/tmp"
	ln -sfn /run "$T/var/run"
	# The kernel opens /dev/console before it runs /init.
	if [ "$(id -u)" -eq 0 ]; then
		mknod -m 600 "$T/dev/console" c 5 1
	else
		echo "xen: warning: not root, no /dev/console in the $role image (init reopens it)" >&2
	fi
	add_busybox
	put "$XVMSG_XEN_SCRIPTS/init/lib.sh" /etc/xvmsg/lib.sh
	if [ "$role" = dom0 ]; then
		put "$XVMSG_XEN_SCRIPTS/init/dom0-init" /init
	else
		put "$XVMSG_XEN_SCRIPTS/init/domu-init" /init
	fi
	chmod 755 "$T/init"
	echo "$role" >"$T/etc/xvmsg/role"
	# The driver domain starts its backend from the packaged settings file,
	# as the xvmsg-backend service does.
	[ "$role" = driver ] && put "$XVMSG_TOP/debian/conf/backend.conf" /etc/xvmsg/backend.conf
	# The bridge and taps for the backend's NICs (tests/xen/kmod's network).
	[ "$role" = driver ] && put "$XVMSG_TOP/configs/xvmsg-net-bridge.sh" /usr/sbin/xvmsg-net-bridge.sh
	# Test plan: ROLE-* to that role, anything else to all.
	for f in "$PLAN"/*; do
		[ -f "$f" ] || continue
		b=$(basename "$f")
		case $b in
		dom0-*|driver-*|guest-*) [ "${b%%-*}" = "$role" ] || continue ;;
		esac
		put "$f" "/etc/xvmsg/$b"
	done
	# libxenstore and xl call pthread_cancel, which dlopens libgcc_s; ldd
	# does not list it.
	put "$(gcc_s)" "/lib/$TRIPLET/libgcc_s.so.1"
}

gcc_s() {
	local r=
	if [ -n "$LDSO" ]; then
		[ -f "$ROOT/usr/lib/x86_64-linux-gnu/libgcc_s.so.1" ] ||
			xen_die "no libgcc_s.so.1 in the staging root (fetch.sh: libgcc-s1)"
		echo "$ROOT/usr/lib/x86_64-linux-gnu/libgcc_s.so.1"
		return 0
	fi
	# bookworm: the host's on x86, the staging root's on arm64.
	[ "$ARCH" = amd64 ] || r=$ROOT
	for f in "$r/lib/$TRIPLET/libgcc_s.so.1" "$r/usr/lib/$TRIPLET/libgcc_s.so.1"; do
		[ -f "$f" ] && { echo "$f"; return 0; }
	done
	xen_die "no libgcc_s.so.1 in ${r:-the host}"
}

# The xenstore-* tools are one multi-call binary.
add_xenstore_utils() {
	add_bin "$ROOT/usr/bin/xenstore" /usr/bin/xenstore
	for t in read write rm chmod exists list ls watch; do
		ln -sfn xenstore "$T/usr/bin/xenstore-$t"
	done
}

# add_modules NAMES KMODS: kernel modules with their dependencies (from the
# staging root's modules.dep), out-of-tree .ko files, depmod, and
# /etc/xvmsg/modules: the load order for /init.
add_modules() {
	local names=$1 kmods=$2 n k ko
	mkdir -p "$T/$MODDIR/extra"
	for k in $kmods; do
		case $k in /*) ;; *) k=$XVMSG_TOP/$k ;; esac
		put "$k" "/$MODDIR/extra/$(basename "$k")"
	done
	for n in $names; do
		if ! modprobe -d "$KROOT" -S "$KABI" --show-depends "$n" >"$T.deps" 2>/dev/null; then
			[ -f "$T/$MODDIR/extra/$n.ko" ] || xen_die "no kernel module $n in $KABI"
			continue
		fi
		for ko in $(awk '$1 == "insmod" { print $2 }' "$T.deps"); do
			skipped "$ko" && continue
			put_module "$ko"
		done
	done
	rm -f "$T.deps"
	cp "$KROOT/$MODDIR/modules.builtin" "$KROOT/$MODDIR/modules.builtin.modinfo" "$T/$MODDIR/"
	# modules.order, cut down to the modules the image has.
	(cd "$T/$MODDIR" && find . -name '*.ko' | sed 's|^\./||' | LC_ALL=C sort) >"$T.kos"
	awk 'NR == FNR { have[$0] = 1; next } have[$0]' "$T.kos" "$KROOT/$MODDIR/modules.order" \
		>"$T/$MODDIR/modules.order"
	rm -f "$T.kos"
	depmod -b "$T" "$KABI"
	# Load order from the image's own modules.dep, each module once.
	for n in $names; do
		modprobe -d "$T" -S "$KABI" --show-depends "$n"
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' |
		sed "s|^$T||" >"$T/etc/xvmsg/modules"
}

# put_module KO: a module of the kernel tree into the image, at its path
# there.  Compressed ones (trixie's kernels ship .ko.xz) are stored
# decompressed: busybox's insmod and modprobe read plain .ko files, and the
# kernel then needs no in-kernel decompression.
put_module() {
	local dest=${1#"$KROOT"}
	case $dest in
	*.ko.xz) dest=${dest%.xz} ;;
	*.ko.zst) dest=${dest%.zst} ;;
	*.ko.gz) dest=${dest%.gz} ;;
	esac
	[ -f "$T$dest" ] && return 0
	mkdir -p "$T$(dirname "$dest")"
	case $1 in
	*.ko.xz) xz -dc "$1" >"$T$dest" ;;
	*.ko.zst) zstd -qdc "$1" >"$T$dest" ;;
	*.ko.gz) gzip -dc "$1" >"$T$dest" ;;
	*) cp -L --preserve=mode "$1" "$T$dest" ;;
	esac
}

# skipped KO: true if KO is in XVMSG_XEN_MODULES_SKIP (by name).
skipped() {
	local n
	n=$(basename "$1")
	n=${n%%.ko*}
	case " $XVMSG_XEN_MODULES_SKIP " in *" $n "*) return 0 ;; esac
	return 1
}

add_overlay() {
	img=$1
	o=$XVMSG_XEN_OVERLAY/$img
	if [ -d "$o" ]; then
		cp -a "$o/." "$T/"
		find "$o" -type f | while read -r f; do
			if [ -x "$f" ] && [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ]; then
				add_libs "$f"
			fi
		done
	fi
	add_bins_file "$XVMSG_XEN_OVERLAY/$img.bins"
	return 0
}

# The modules an image loads: the role's list, plus the overlay's list.
modules_of() {
	img=$1 list=$2
	f=$XVMSG_XEN_OVERLAY/$img.modules
	[ -f "$f" ] && list="$list $(sed '/^[[:space:]]*#/d' "$f" | tr '\n' ' ')"
	echo "$list"
}

# tree_hash DIR: hash of names, types, modes, link targets and contents.
tree_hash() {
	(
		cd "$1"
		find . -printf '%p %y %m %l\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
	) | sha256sum | cut -d' ' -f1
}

# pack IMG: the tree into images/IMG.cpio.gz unless its hash is unchanged.
pack() {
	img=$1
	out=$XVMSG_XEN_IMAGES/$img.cpio.gz
	h=$(tree_hash "$T")
	if [ -f "$out" ] && [ "$(cat "$XVMSG_XEN_IMAGES/.$img.hash" 2>/dev/null)" = "$h" ]; then
		xen_log "$img.cpio.gz up to date"
		return 0
	fi
	xen_log "packing $img.cpio.gz ($(du -sm "$T" | cut -f1) MB tree)"
	(cd "$T" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
		gzip -"$GZIP_LEVEL" -n >"$out.tmp"
	mv "$out.tmp" "$out"
	echo "$h" >"$XVMSG_XEN_IMAGES/.$img.hash"
	xen_log "$img.cpio.gz: $(du -k "$out" | cut -f1) KiB"
}

new_tree() {
	T=$XVMSG_XEN_WORK/$1
	rm -rf "$T"
	mkdir -p "$T"
}

# ---- inputs built here ---------------------------------------------------

# newer A B: true if A is missing or older than B.
stale() { [ ! -e "$1" ] || [ "$2" -nt "$1" ]; }

# The hypervisor, decompressed: QEMU's multiboot loader needs it raw.
# On arm64 it is an Image already (QEMU's -kernel loads it as Linux's).
make_xen() {
	src=$ROOT/boot/xen-$XVMSG_XEN_SERIES-$ARCH
	[ "$ARCH" = amd64 ] && src=$src.gz
	stale "$XVMSG_XEN_IMAGES/xen" "$src" || return 0
	if [ "$ARCH" = amd64 ]; then
		gzip -dc "$src" >"$XVMSG_XEN_IMAGES/xen.tmp"
	else
		cp "$src" "$XVMSG_XEN_IMAGES/xen.tmp"
	fi
	mv "$XVMSG_XEN_IMAGES/xen.tmp" "$XVMSG_XEN_IMAGES/xen"
	xen_log "xen in place"
}

make_dom0_kernel() {
	src=$ROOT/boot/vmlinuz-$KABI
	stale "$XVMSG_XEN_IMAGES/vmlinuz" "$src" || return 0
	cp "$src" "$XVMSG_XEN_IMAGES/vmlinuz"
}

# The domU kernel: the vmlinux inside Debian's bzImage.  libxenguest can load
# the bzImage itself, but decompressing xz in dom0 under TCG costs ~12 s
# per domain; an uncompressed ELF costs nothing.  (What the kernel tree's
# scripts/extract-vmlinux does, for the one compression Debian uses, xz.)
# (bookworm's kernels are xz-compressed, trixie's zstd-compressed.)
#
# arm64: Debian's vmlinuz is an uncompressed Image, which libxenguest loads
# as it is; it goes into dom0 under the same name, /boot/xvmsg/vmlinux.
make_vmlinux() {
	GVMLINUX= GVMLINUX2=
	if [ "$ARCH" != amd64 ]; then
		VMLINUX=$ROOT/boot/vmlinuz-$KABI
		return 0
	fi
	VMLINUX=$(extract_vmlinux "$ROOT/boot/vmlinuz-$KABI" "$XVMSG_XEN_WORK/vmlinux-$KABI") || exit 1
	if [ -n "$GROOT" ]; then
		GVMLINUX=$(guest_vmlinux "$GROOT") || exit 1
	fi
	GVMLINUX2=
	if [ -n "$GROOT2" ]; then
		GVMLINUX2=$(guest_vmlinux "$GROOT2") || exit 1
	fi
}

# guest_vmlinux GROOT: the vmlinux of the kernel extracted in GROOT.
guest_vmlinux() {
	local gk src
	gk=$(cat "$1/.kabi")
	# 7.x's linux-binary package keeps vmlinuz beside the modules.
	src=$1/boot/vmlinuz-$gk
	[ -f "$src" ] || src=$1/lib/modules/$gk/vmlinuz
	extract_vmlinux "$src" "$XVMSG_XEN_WORK/vmlinux-$gk"
}

# extract_vmlinux BZIMAGE DEST: prints DEST, extracting it if stale.
extract_vmlinux() {
	local src=$1 out=$2 off kind
	echo "$out"
	stale "$out" "$src" || return 0
	xen_log "extracting vmlinux from $(basename "$src")"
	# Each compressed stream that may hold the kernel: MAGIC:DECOMPRESSOR.
	for kind in '\xfd7zXZ\x00:xz' '\x28\xb5\x2f\xfd:zstd'; do
		for off in $(LC_ALL=C grep -obUaP "${kind%:*}" "$src" | cut -d: -f1); do
			tail -c +$((off + 1)) "$src" | "${kind#*:}" -dcq >"$out.tmp" 2>/dev/null || true
			if [ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
				mv "$out.tmp" "$out"
				return 0
			fi
		done
	done
	rm -f "$out.tmp"
	xen_die "no xz- or zstd-compressed ELF kernel found in $src"
}

# The grant/event-channel helper of the smoke test, static: no libraries.
# XVMSG_XEN_GNTSHARE names one built elsewhere (trixie's, in the chroot).
make_gntshare() {
	if [ -n "${XVMSG_XEN_GNTSHARE:-}" ]; then
		GNTSHARE=$XVMSG_XEN_GNTSHARE
		[ -f "$GNTSHARE" ] || xen_die "no $GNTSHARE"
		return 0
	fi
	GNTSHARE=$XVMSG_XEN_WORK/gntshare
	src=$XVMSG_XEN_SCRIPTS/gntshare.c
	stale "$GNTSHARE" "$src" || return 0
	xen_log "compiling gntshare"
	$CC -static -s -O2 -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror -o "$GNTSHARE" "$src"
}

# ---- the three images ----------------------------------------------------

# build_domu IMG MODULES BINS KMODS [KERNEL-ROOT]: IMG.cpio.gz; guest2 (the
# kmod plan's second guest on a kernel of its own) is a guest image with
# the modules of KERNEL-ROOT's kernel.
build_domu() {
	# (name, not img: modules_of and add_overlay set img.)
	local name=$1 mods=$2 bins=$3 kmods=$4 kroot=${5:-} role=$1
	[ "$name" = guest2 ] && role=guest
	new_tree "$name"
	add_base "$role"
	add_xenstore_utils
	add_bin "$GNTSHARE" /usr/bin/gntshare
	# shellcheck disable=SC2086
	add_bins_words $bins
	if [ -n "$kroot" ]; then
		KROOT=$kroot KABI=$(cat "$kroot/.kabi")
		MODDIR=lib/modules/$KABI
	fi
	add_modules "$(modules_of "$role" "$mods")" "$kmods"
	KROOT=$ROOT KABI=$DOM0_KABI MODDIR=lib/modules/$DOM0_KABI
	add_overlay "$role"
	pack "$name"
}

build_dom0() {
	new_tree dom0
	add_base dom0
	add_xenstore_utils
	for b in xl xenstored xenconsoled xen-init-dom0; do
		add_bin "$ROOT$XVMSG_XEN_LIBEXEC/$b" "$XVMSG_XEN_LIBEXEC/$b"
		ln -sfn "$XVMSG_XEN_LIBEXEC/$b" "$T/usr/sbin/$b"
	done
	# shellcheck disable=SC2086
	add_bins_words ${XVMSG_XEN_DOM0_BINS:-}
	add_modules "$(modules_of dom0 "$XVMSG_XEN_DOM0_MODULES")" "${XVMSG_XEN_DOM0_KMODS:-}"
	mkdir -p "$T/etc/xen" "$T/var/lib/xen" "$T/var/lib/xenstored" "$T/var/log/xen/console" "$T/boot/xvmsg"
	: >"$T/etc/xen/xl.conf"     # an empty one silences a warning
	for f in "$XVMSG_TOP"/configs/*.cfg; do
		put "$f" "/etc/xen/$(basename "$f")"
		# Xen on Arm knows one kind of guest, auto-translated with PV
		# drivers, which xl calls pvh.
		# Debian's arm64 kernel sets aside 64 MiB for CMA
		# (CONFIG_CMA_SIZE_MBYTES), which leaves a 160 MiB domU about 32
		# MiB for everything else: cma=0.
		[ "$ARCH" = amd64 ] || sed -i -e 's/^type *= *"pv"/type = "pvh"/' \
			-e 's/^\(extra *= *"[^"]*\)"/\1 cma=0"/' "$T/etc/xen/$(basename "$f")"
	done
	# The domU kernel and initramfs images.  Copies: a hard link to a file
	# outside the tree would be archived with nlink > 1.
	cp "$VMLINUX" "$T/boot/xvmsg/vmlinux"
	cp "$XVMSG_XEN_IMAGES/driver.cpio.gz" "$XVMSG_XEN_IMAGES/guest.cpio.gz" "$T/boot/xvmsg/"
	# A guest with a kernel of its own: every config that boots the guest
	# image boots that kernel (only in these images; configs/ stay as
	# they are).
	if [ -n "$GVMLINUX" ]; then
		cp "$GVMLINUX" "$T/boot/xvmsg/vmlinux-guest"
		grep -l '^ramdisk *= *"/boot/xvmsg/guest.cpio.gz"' "$T"/etc/xen/*.cfg | while read -r f; do
			sed -i 's|^kernel *= *"/boot/xvmsg/vmlinux"|kernel = "/boot/xvmsg/vmlinux-guest"|' "$f"
			grep -q '^kernel = "/boot/xvmsg/vmlinux-guest"' "$f" || xen_die "$f: no kernel line to change"
		done
	fi
	# The kmod plan's second guest (xvmsg-guest2) boots the kernel and
	# image these xl keys name (net-dom0.sh): with XVMSG_GUEST2_KERNEL
	# (common.sh) its own, guest2.cpio.gz with that kernel's modules and
	# xvmsg.ko; else the first guest's.
	if [ -n "$GVMLINUX2" ]; then
		cp "$GVMLINUX2" "$T/boot/xvmsg/vmlinux-guest2"
		cp "$XVMSG_XEN_IMAGES/guest2.cpio.gz" "$T/boot/xvmsg/"
		echo 'kernel="/boot/xvmsg/vmlinux-guest2" ramdisk="/boot/xvmsg/guest2.cpio.gz"' >"$T/etc/xvmsg/guest2.xl"
	elif [ -n "$GVMLINUX" ]; then
		echo 'kernel="/boot/xvmsg/vmlinux-guest" ramdisk="/boot/xvmsg/guest.cpio.gz"' >"$T/etc/xvmsg/guest2.xl"
	else
		echo 'kernel="/boot/xvmsg/vmlinux" ramdisk="/boot/xvmsg/guest.cpio.gz"' >"$T/etc/xvmsg/guest2.xl"
	fi
	# XVMSG_KMOD_NET=0: the kmod plan without its network stages (a
	# second guest, NICs on the driver domain's bridge); KMOD_NET above.
	echo "$KMOD_NET" >"$T/etc/xvmsg/kmod-net"
	# XVMSG_KMOD_FAULTS: which lying backends the kmod plan meets ("all",
	# the default, or their names: tests/xen/kmod/dom0-test.sh, FAULTS).
	echo "${XVMSG_KMOD_FAULTS:-all}" >"$T/etc/xvmsg/kmod-faults"
	# XVMSG_KMOD_NET_RESTART=0: without the NICs' part of the kill -9.
	echo "${XVMSG_KMOD_NET_RESTART:-1}" >"$T/etc/xvmsg/kmod-net-restart"
	add_overlay dom0
	pack dom0
}

write_sizes() {
	(
		cd "$XVMSG_XEN_IMAGES"
		echo "# sizes in KiB (kernel ABI $KABI), written by mkimages.sh"
		du -k --apparent-size xen vmlinuz dom0.cpio.gz driver.cpio.gz guest.cpio.gz
		echo "# inside dom0.cpio.gz:"
		du -k --apparent-size "$VMLINUX" ${GVMLINUX:+"$GVMLINUX"} | sed "s|$XVMSG_XEN_WORK/||"
		for i in dom0 driver guest; do
			echo "$(du -sk --apparent-size "$XVMSG_XEN_WORK/$i" | cut -f1)	$i tree (uncompressed)"
		done
	) >"$XVMSG_XEN_IMAGES/SIZES"
}

# images/COMBO: what these images are, for the table of tested
# combinations (scripts/xen/combos.sh): architecture, distro, Xen version
# (of the hypervisor package), dom0, driver-domain and guest kernel ABIs.
write_combo() {
	local xenver gk=$DOM0_KABI
	xenver=$(sed -n "s/^xen-hypervisor-$XVMSG_XEN_SERIES-${ARCH}_\([0-9.]*\).*/\1/p" "$ROOT/.debs")
	[ -n "$GROOT" ] && gk=$(cat "$GROOT/.kabi")
	{
		echo "arch $ARCH"
		echo "distro $XVMSG_DISTRO"
		echo "xen ${xenver:-$XVMSG_XEN_SERIES}"
		echo "dom0 $DOM0_KABI"
		echo "driver $DOM0_KABI"
		echo "guest $gk"
		# The kmod plan's parts (its stages read the same in dom0's
		# /etc/xvmsg/kmod-*).
		if [ "$(basename "$PLAN")" = kmod ]; then
			if [ "$KMOD_NET" = 1 ]; then
				if [ -n "$GROOT2" ]; then echo "guest2 $(cat "$GROOT2/.kabi")"; else echo "guest2 $gk"; fi
			fi
			echo "net $KMOD_NET"
			echo "faults ${XVMSG_KMOD_FAULTS:-all}"
		fi
	} >"$XVMSG_XEN_IMAGES/COMBO"
}

main() {
	xen_lock mkimages
	mkdir -p "$XVMSG_XEN_IMAGES" "$XVMSG_XEN_WORK"
	make_xen
	make_dom0_kernel
	make_vmlinux
	make_gntshare
	build_domu driver "$XVMSG_XEN_DRIVER_MODULES" "${XVMSG_XEN_DRIVER_BINS:-}" "${XVMSG_XEN_DRIVER_KMODS:-}"
	build_domu guest "$XVMSG_XEN_GUEST_MODULES" "${XVMSG_XEN_GUEST_BINS:-}" "${XVMSG_XEN_GUEST_KMODS:-}" "$GROOT"
	if [ -n "$GROOT2" ]; then
		build_domu guest2 "$XVMSG_XEN_GUEST_MODULES" "${XVMSG_XEN_GUEST_BINS:-}" "$XVMSG_XEN_GUEST2_KMODS" "$GROOT2"
	else
		rm -f "$XVMSG_XEN_IMAGES/guest2.cpio.gz" "$XVMSG_XEN_IMAGES/.guest2.hash"
	fi
	build_dom0
	write_sizes
	# Which test plan these images carry; run-qemu.sh says it.
	echo "${PLAN#"$XVMSG_TOP"/}" >"$XVMSG_XEN_IMAGES/PLAN"
	write_combo
	xen_log "images in $XVMSG_XEN_IMAGES"
	cat "$XVMSG_XEN_IMAGES/SIZES" >&2
}

main "$@"
