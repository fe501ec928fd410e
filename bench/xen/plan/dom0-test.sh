#!/bin/sh
# SPDX-License-Identifier: MIT
# make bench-xen, dom0 side (bench/xen/README.md).  Four disks for the guest,
# each a SIZE MiB image in a tmpfs:
#   pool   xvmsg-backend in the driver domain, pool mode (POOL_PAGES pages)
#   grant  xvmsg-backend in the driver domain, a grant per request
#   full   xvmsg-backend in dom0, full mode (foreign mappings of guest RAM)
#   blk    Xen's PV disk: xen-blkback in the driver domain on a loop device,
#          xen-blkfront in the guest, attached by xl with backend= the
#          driver domain
# then the guest runs fio over them (guest-bench.sh) and asks, before and
# after each cell, for the backend's counters: dom0 answers each request
# with one XVMSG-BENCH-SNAP line on the serial console (xvmsg-ctl stats, or
# the driver domain's blkback counters).  scripts/bench-xen.sh reads them.
#
# Kernel command line: xvmsg.bench_reps=N xvmsg.bench_secs=S
# xvmsg.bench_size=MiB (defaults 3, 5, 32).
. /etc/xvmsg/lib.sh

cmdline_value() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n1; }
REPS=$(cmdline_value xvmsg.bench_reps)
SECS=$(cmdline_value xvmsg.bench_secs)
SIZE=$(cmdline_value xvmsg.bench_size)
REPS=${REPS:-3} SECS=${SECS:-5} SIZE=${SIZE:-32}
POOL_PAGES=1024
echo "XVMSG-BENCH-PARAMS reps=$REPS secs=$SECS size_mib=$SIZE pool_pages=$POOL_PAGES"

truncate -s "${SIZE}M" /run/full.img || xv_fail "image"
xvmsg-backend --bus xen --log-level info >/run/xvmsg-backend-dom0.log 2>&1 &
xv_wait 20 grep -q "serving on xen bus" /run/xvmsg-backend-dom0.log || xv_fail "dom0 backend did not start"

xv_stage "xl create xvmsg-driver + xvmsg-guest"
# More memory than the tests' domains: the driver domain holds three images
# in its tmpfs.
xl create /etc/xen/xvmsg-driver.cfg "memory=$((160 + 3 * SIZE))" \
	"extra=\"console=hvc0 panic=-1 xvmsg.bench_size=$SIZE\"" >"$XV_RUN/xl-driver.log" 2>&1 &
p_driver=$!
xl create /etc/xen/xvmsg-guest.cfg "memory=224" >"$XV_RUN/xl-guest.log" 2>&1 &
p_guest=$!
wait "$p_driver" || { cat "$XV_RUN/xl-driver.log"; xv_fail "xl create xvmsg-driver failed"; }
wait "$p_guest" || { cat "$XV_RUN/xl-guest.log"; xv_fail "xl create xvmsg-guest failed"; }
xv_wait_console 150 xvmsg-driver "XVMSG-MARK driver backend up" \
	xvmsg-guest "XVMSG-MARK guest bench ready" || xv_fail "$XV_WHY"
d=$(xv_domid xvmsg-driver) || xv_fail "no driver domid"
g=$(xv_domid xvmsg-guest) || xv_fail "no guest domid"
for dom in "$d" "$g"; do
	xenstore-write "/local/domain/$dom/xvmsg-bench/size" "$SIZE" &&
		xenstore-chmod -r "/local/domain/$dom/xvmsg-bench" "n$dom" || xv_fail "xenstore setup"
done

xv_stage "attach: pool and grant disks (driver domain), full disk (dom0), blkback disk (driver domain)"
xvmsg-ctl attach xvmsg-guest xvmsg-driver blk path=/run/pool.img,serial=pool --devid 0 \
	--pool-pages "$POOL_PAGES" >/dev/null || xv_fail "attach pool disk"
xvmsg-ctl attach xvmsg-guest xvmsg-driver blk path=/run/grant.img,serial=grant --devid 1 \
	--mode grant >/dev/null || xv_fail "attach grant disk"
xvmsg-ctl attach xvmsg-guest Domain-0 blk path=/run/full.img,serial=full --devid 2 \
	--mode full >/dev/null || xv_fail "attach full-mode disk"
# Xen's PV disk from the driver domain.  libxl in dom0 writes both xenstore
# halves and waits for blkback's InitWait; it runs no hotplug script for a
# backend in another domain (that is xl devd's job there).  The driver
# domain does that part itself: driver-bench.sh writes physical-device.
t0=$(xv_uptime)
timeout 120 xl block-attach xvmsg-guest \
	"backend=xvmsg-driver,vdev=xvdb,backendtype=phy,format=raw,access=rw,target=/dev/loop0" \
	>"$XV_RUN/block-attach.log" 2>&1 || { cat "$XV_RUN/block-attach.log"; xv_fail "xl block-attach"; }
xv_stage "xl block-attach (backend=xvmsg-driver) took $(($(xv_uptime) - t0)) s"
xvmsg-ctl list
xenstore-write "/local/domain/$g/xvmsg-bench/go" "$REPS $SECS $SIZE" || xv_fail "xenstore"

# Counter snapshots until the guest is done.  One line each:
#   XVMSG-BENCH-SNAP seq=N dev=D key=value...
# A xenstore watch rather than polling: dom0 runs the full-mode backend and
# must not spend its CPU time on xenstore-read while the guest measures.
gx=/local/domain/$g/xvmsg-bench dx=/local/domain/$d/xvmsg-bench
mkfifo "$XV_RUN/watch"
xenstore-watch "$gx" >"$XV_RUN/watch" &
wpid=$!
exec 3<"$XV_RUN/watch"
last=
while read -r _ <&3; do
	done_=$(xenstore-read "$gx/done" 2>/dev/null)
	[ -n "$done_" ] && break
	req=$(xenstore-read "$gx/snap" 2>/dev/null)
	[ -z "$req" ] || [ "$req" = "$last" ] && continue
	last=$req
	seq=${req%% *} dev=${req#* }
	case $dev in
	pool) devid=0 ;;
	grant) devid=1 ;;
	full) devid=2 ;;
	blk) devid= ;;
	*) xv_fail "bad snapshot request '$req'" ;;
	esac
	if [ -n "$devid" ]; then
		ctr=$(xvmsg-ctl stats xvmsg-guest "$devid" | awk '{ printf "%s=%s ", $1, $2 }') ||
			xv_fail "stats $dev"
	else
		xenstore-write "$dx/snap" "$seq" || xv_fail "xenstore"
		xv_wait 30 sh -c "[ \"\$(xenstore-read $dx/ack 2>/dev/null)\" = $seq ]" ||
			xv_fail "the driver domain did not answer snapshot $seq"
		ctr=$(xenstore-read "$dx/ctr")
	fi
	echo "XVMSG-BENCH-SNAP seq=$seq dev=$dev $ctr"
	xenstore-write "$gx/ack" "$seq" || xv_fail "xenstore"
done
kill "$wpid" 2>/dev/null
exec 3<&-
[ -n "$done_" ] || xv_fail "the watch on the guest's xenstore directory ended"
case $done_ in
ok) ;;
*) xv_fail "guest: $done_" ;;
esac
xv_stage "guest finished the matrix"
echo "xvmsg: dom0 backend log (last lines):"
tail -n 5 /run/xvmsg-backend-dom0.log | sed 's/^/  | /'
exit 0
