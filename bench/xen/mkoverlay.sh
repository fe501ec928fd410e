#!/bin/bash
# SPDX-License-Identifier: MIT
# The benchmark's additions to the reference images, through mkimages.sh's
# overlay hook (XVMSG_XEN_OVERLAY, scripts/xen/mkimages.sh):
#
#   OVERLAY/guest/usr/lib/xvmsg-bench/fio   Debian 12's fio binary (mode 644)
#   OVERLAY/guest/usr/bin/fio               runs it through the dynamic loader
#   OVERLAY/guest/usr/lib/xvmsg-bench/lib/  the libraries fio uses here
#                                           (libaio, libnuma, zlib) and
#                                           stand-ins for the ones it never
#                                           calls (librbd, librados, libgfapi,
#                                           libnbd, libibverbs, librdmacm,
#                                           libpmem, libpmemblk)
#   OVERLAY/guest.modules                   xen-blkfront (Xen's PV disk)
#   OVERLAY/driver.modules                  xen-blkback and loop
#
#   bench/xen/mkoverlay.sh OVERLAY
#
# Why stand-ins: fio 3.33 in Debian links every ioengine's library; their
# closure (Ceph, GlusterFS, RDMA, ICU...) is 80 MB, and a domU's initramfs
# is unpacked into its memory.  The benchmark uses the libaio engine only.
# fio is bound with BIND_NOW, so each stand-in defines every symbol (with
# its version node) that fio imports from that library, as a function that
# aborts; none is ever called.  That is 2 MB instead of 80.  fio is stored
# without its x bit so that mkimages.sh does not add the host's library
# closure for it.
#
# fio's .deb comes from the Xen cache (XVMSG_XEN_CACHE, apt-get download,
# once); nothing is installed on the host.
set -euo pipefail
. "$(dirname "$0")/../../scripts/xen/common.sh"

OUT=${1:?usage: mkoverlay.sh OVERLAY}
FIO_PKGS="fio libaio1 libnuma1"
# Libraries fio links but never calls with --ioengine=libaio: soname and
# the prefix of the symbols it imports from each.
STUBS="librbd.so.1:rbd_ librados.so.2:rados_ libgfapi.so.0:glfs_ libnbd.so.0:nbd_
	libibverbs.so.1:ibv_ librdmacm.so.1:rdma_ libpmemblk.so.1:pmemblk_ libpmem.so.1:pmem_"
WORK=$XVMSG_TOP/build/bench/fio
CC=${CC:-gcc}

mkdir -p "$XVMSG_XEN_CACHE" "$WORK"
deb_of() { ls "$XVMSG_XEN_CACHE/$1"_*_amd64.deb 2>/dev/null | tail -n1 || true; }
missing=
for p in $FIO_PKGS; do [ -n "$(deb_of "$p")" ] || missing="$missing $p"; done
if [ -n "$missing" ]; then
	xen_log "downloading:$missing"
	# shellcheck disable=SC2086
	(cd "$XVMSG_XEN_CACHE" && apt-get download -qq -o APT::Sandbox::User=root $missing) ||
		{ apt-get update -qq && (cd "$XVMSG_XEN_CACHE" && apt-get download -qq -o APT::Sandbox::User=root $missing); } ||
		xen_die "apt-get download$missing failed"
fi
stamp=$(for p in $FIO_PKGS; do basename "$(deb_of "$p")"; done | sha256sum | cut -c1-16)
ROOT=$WORK/root
if [ "$(cat "$ROOT/.stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$ROOT"
	mkdir -p "$ROOT"
	for p in $FIO_PKGS; do dpkg -x "$(deb_of "$p")" "$ROOT"; done
	echo "$stamp" >"$ROOT/.stamp"
fi
FIO=$ROOT/usr/bin/fio
[ -f "$FIO" ] || xen_die "no fio in $(deb_of fio)"

# Stand-ins, rebuilt when fio changes.
SD=$WORK/stubs
if [ ! -f "$SD/.stamp" ] || [ "$(cat "$SD/.stamp")" != "$stamp" ]; then
	rm -rf "$SD"
	mkdir -p "$SD"
	# "VERSION SYMBOL" of every undefined dynamic symbol.
	objdump -T "$FIO" | awk '/\*UND\*/ { v = $(NF-1); gsub(/[()]/, "", v); print v, $NF }' >"$SD/und"
	for s in $STUBS; do
		so=${s%%:*} pre=${s#*:}
		base=${so%%.so*}
		awk -v pre="$pre" 'index($2, pre) == 1' "$SD/und" >"$SD/$base.syms"
		[ -s "$SD/$base.syms" ] || xen_die "fio imports nothing named $pre* (fio changed?)"
		{
			echo "/* Stand-in for $so: fio links it, the benchmark never calls it. */"
			echo "#include <stdlib.h>"
			awk '{ printf "void %s(void); void %s(void) { abort(); }\n", $2, $2 }' "$SD/$base.syms"
		} >"$SD/$base.c"
		# One version node per version fio asks for (none for "Base").
		awk '$1 != "Base" { s[$1] = s[$1] " " $2 ";" } END { for (v in s) printf "%s {%s };\n", v, s[v] }' \
			"$SD/$base.syms" >"$SD/$base.map"
		vs=
		[ -s "$SD/$base.map" ] && vs="-Wl,--version-script=$SD/$base.map"
		# shellcheck disable=SC2086
		$CC -shared -fPIC -O2 -s -o "$SD/$so" -Wl,-soname,"$so" $vs "$SD/$base.c"
	done
	echo "$stamp" >"$SD/.stamp"
fi

G=$OUT/guest
rm -rf "$G"
mkdir -p "$G/usr/lib/xvmsg-bench/lib" "$G/usr/bin"
install -m 644 "$FIO" "$G/usr/lib/xvmsg-bench/fio"
for s in $STUBS; do install -m 644 "$SD/${s%%:*}" "$G/usr/lib/xvmsg-bench/lib/"; done
# The real libraries: libaio and libnuma from their .debs, zlib and libm
# from the host (priority required, as mkimages.sh takes libc).
for so in libaio.so.1 libnuma.so.1; do
	f=$(find "$ROOT" -name "$so" | head -n1)
	[ -n "$f" ] || xen_die "no $so in the fio packages"
	install -m 644 "$f" "$G/usr/lib/xvmsg-bench/lib/$so"
done
for so in libz.so.1 libm.so.6; do
	f=/lib/x86_64-linux-gnu/$so
	[ -e "$f" ] || xen_die "no $f on the host"
	install -m 644 "$(readlink -f "$f")" "$G/usr/lib/xvmsg-bench/lib/$so"
done
# Every library fio needs is one of these or libc.
for n in $(readelf -d "$FIO" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
	[ "$n" = libc.so.6 ] || [ -f "$G/usr/lib/xvmsg-bench/lib/$n" ] || xen_die "fio needs $n, not provided"
done
cat >"$G/usr/bin/fio" <<'EOS'
#!/bin/sh
# Debian's fio with the benchmark's library folder (bench/xen/mkoverlay.sh).
exec /lib64/ld-linux-x86-64.so.2 --library-path /usr/lib/xvmsg-bench/lib /usr/lib/xvmsg-bench/fio "$@"
EOS
chmod 755 "$G/usr/bin/fio"
echo xen-blkfront >"$OUT/guest.modules"
printf '%s\n' xen-blkback loop >"$OUT/driver.modules"
xen_log "bench overlay in $OUT: fio $(dpkg-deb -f "$(deb_of fio)" Version), $(du -sk "$G" | cut -f1) KiB"
