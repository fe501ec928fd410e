#!/bin/sh
# SPDX-License-Identifier: MIT
# shellcheck shell=dash
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
# xvmsg.bench_size=MiB (defaults 3, 5, 32), or the environment variables
# XVMSG_BENCH_REPS, _SECS, _SIZE.  On an existing host (scripts/bench-xen.sh
# --host) XVMSG_BENCH_EXISTING=1: the domains XVMSG_BENCH_DRIVER and
# XVMSG_BENCH_GUEST already run, xvmsg devices get ids from
# XVMSG_BENCH_DEVID on, the PV disk is XVMSG_BENCH_VDEV, and everything is
# detached at the end.
# shellcheck source=scripts/xen/init/lib.sh disable=SC1090,SC1091
. "${XVMSG_BENCH_LIB:-/etc/xvmsg/lib.sh}"

cmdline_value() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n1; }
REPS=${XVMSG_BENCH_REPS:-$(cmdline_value xvmsg.bench_reps)}
SECS=${XVMSG_BENCH_SECS:-$(cmdline_value xvmsg.bench_secs)}
SIZE=${XVMSG_BENCH_SIZE:-$(cmdline_value xvmsg.bench_size)}
REPS=${REPS:-3} SECS=${SECS:-5} SIZE=${SIZE:-32}
EXISTING=${XVMSG_BENCH_EXISTING:-0}
DRIVER=${XVMSG_BENCH_DRIVER:-xvmsg-driver}
GUEST=${XVMSG_BENCH_GUEST:-xvmsg-guest}
B=${XVMSG_BENCH_DEVID:-0}
VDEV=${XVMSG_BENCH_VDEV:-xvdb}
POOL_PAGES=1024
mkdir -p "$XV_RUN"
echo "XVMSG-BENCH-PARAMS reps=$REPS secs=$SECS size_mib=$SIZE pool_pages=$POOL_PAGES"

truncate -s "${SIZE}M" /run/full.img || xv_fail "image"
if [ "$EXISTING" = 1 ] && pidof xvmsg-backend >/dev/null; then
	echo "xvmsg: using the xvmsg-backend already running in dom0"
else
	xvmsg-backend --bus xen --log-level info >/run/xvmsg-backend-dom0.log 2>&1 &
	xv_wait 20 grep -q "serving on xen bus" /run/xvmsg-backend-dom0.log || xv_fail "dom0 backend did not start"
fi

if [ "$EXISTING" != 1 ]; then
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
# Both up (init ran), or the reason they are not.
xv_wait_console 150 xvmsg-driver "XVMSG-MARK driver up" \
	xvmsg-guest "XVMSG-MARK guest up" || xv_fail "$XV_WHY"
fi
d=$(xv_domid "$DRIVER") || xv_fail "no domain $DRIVER"
g=$(xv_domid "$GUEST") || xv_fail "no domain $GUEST"
# A directory each domU owns (a domain cannot create keys in its home):
# the domU scripts wait for it, then write up/ready there.
for dom in "$d" "$g"; do
	xenstore-rm "/local/domain/$dom/xvmsg-bench" 2>/dev/null
	xenstore-write "/local/domain/$dom/xvmsg-bench/size" "$SIZE" &&
		xenstore-chmod -r "/local/domain/$dom/xvmsg-bench" "n$dom" || xv_fail "xenstore setup"
done
xv_wait 300 xenstore-exists "/local/domain/$d/xvmsg-bench/up" ||
	xv_fail "the driver domain's script did not start (xvmsg-bench/up)"
xv_wait 300 xenstore-exists "/local/domain/$g/xvmsg-bench/ready" ||
	xv_fail "the guest's script did not start (xvmsg-bench/ready)"
loopdev=$(xenstore-read "/local/domain/$d/xvmsg-bench/loop") || xv_fail "no loop device"

xv_stage "attach: pool and grant disks (driver domain), full disk (dom0), blkback disk (driver domain)"
xvmsg-ctl --timeout 60 attach "$GUEST" "$DRIVER" blk path=/run/pool.img,serial=pool --devid "$B" \
	--pool-pages "$POOL_PAGES" >/dev/null || xv_fail "attach pool disk"
xvmsg-ctl --timeout 60 attach "$GUEST" "$DRIVER" blk path=/run/grant.img,serial=grant --devid $((B + 1)) \
	--mode grant >/dev/null || xv_fail "attach grant disk"
xvmsg-ctl --timeout 60 attach "$GUEST" Domain-0 blk path=/run/full.img,serial=full --devid $((B + 2)) \
	--mode full >/dev/null || xv_fail "attach full-mode disk"
# Xen's PV disk from the driver domain.  libxl in dom0 writes both xenstore
# halves and waits for blkback's InitWait; it runs no hotplug script for a
# backend in another domain (that is xl devd's job there).  The driver
# domain does that part itself: driver-bench.sh writes physical-device.
t0=$(xv_uptime)
timeout 120 xl block-attach "$GUEST" \
	"backend=$DRIVER,vdev=$VDEV,backendtype=phy,format=raw,access=rw,target=$loopdev" \
	>"$XV_RUN/block-attach.log" 2>&1 || { cat "$XV_RUN/block-attach.log"; xv_fail "xl block-attach"; }
xv_stage "xl block-attach (backend=xvmsg-driver) took $(($(xv_uptime) - t0)) s"
xvmsg-ctl list
# The guest's result lines as they come (its whole console is copied at the
# end too; report.py counts each cell once), so that a run that times out
# still shows how far it got.
[ "$EXISTING" = 1 ] || tail -n +1 -f "$(xv_console_log xvmsg-guest)" | while IFS= read -r l; do
	case $l in *XVMSG-BENCH-*|*XVMSG-MARK*|*xvmsg:*) echo "[xvmsg-guest] $l" ;; esac
done &
xenstore-write "/local/domain/$g/xvmsg-bench/go" "$REPS $SECS $SIZE $VDEV" || xv_fail "xenstore"

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
	seq=${req%% *}
	# All four at once: xvmsg-ctl waits for each backend to answer.
	rm -f "$XV_RUN"/snap-*
	pids=
	for dev in pool grant full; do
		case $dev in
		pool) devid=$B ;;
		grant) devid=$((B + 1)) ;;
		full) devid=$((B + 2)) ;;
		esac
		xvmsg-ctl --timeout 60 stats "$GUEST" "$devid" >"$XV_RUN/snap-$dev" 2>&1 || echo FAIL >>"$XV_RUN/snap-$dev" &
		pids="$pids $!"
	done
	xenstore-write "$dx/snap" "$seq" || xv_fail "xenstore"
	xv_wait 60 sh -c "[ \"\$(xenstore-read $dx/ack 2>/dev/null)\" = $seq ]" ||
		xv_fail "the driver domain did not answer snapshot $seq"
	echo "XVMSG-BENCH-SNAP seq=$seq dev=blk $(xenstore-read "$dx/ctr")"
	# shellcheck disable=SC2086
	wait $pids
	for dev in pool grant full; do
		grep -q FAIL "$XV_RUN/snap-$dev" && { cat "$XV_RUN/snap-$dev"; xv_fail "stats $dev"; }
		echo "XVMSG-BENCH-SNAP seq=$seq dev=$dev $(awk '{ printf "%s=%s ", $1, $2 }' "$XV_RUN/snap-$dev")"
	done
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
if [ "$EXISTING" = 1 ]; then
	for i in 0 1 2; do xvmsg-ctl detach "$GUEST" $((B + i)) || echo "xvmsg: detach $((B + i)) failed"; done
	xl block-detach "$GUEST" "$VDEV" || echo "xvmsg: xl block-detach $VDEV failed"
	xenstore-write "$dx/quit" 1
fi
[ -f /run/xvmsg-backend-dom0.log ] && tail -n 5 /run/xvmsg-backend-dom0.log | sed 's/^/  | dom0 backend: /'
exit 0
