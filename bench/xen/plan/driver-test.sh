#!/bin/sh
# SPDX-License-Identifier: MIT
# shellcheck shell=dash
# make bench-xen, driver-domain side: xvmsg-backend (unprivileged) serves the
# pool and grant disks; xen-blkback serves a loop device over a third image.
# Answers dom0's snapshot requests with blkback's counters.
# On an existing host (scripts/bench-xen.sh --host) XVMSG_BENCH_SIZE gives
# the size and an xvmsg-backend already running is used.
# shellcheck source=scripts/xen/init/lib.sh disable=SC1090,SC1091
. "${XVMSG_BENCH_LIB:-/etc/xvmsg/lib.sh}"

SIZE=${XVMSG_BENCH_SIZE:-$(tr ' ' '\n' </proc/cmdline | sed -n 's/^xvmsg.bench_size=//p')}
SIZE=${SIZE:-32}
truncate -s "${SIZE}M" /run/pool.img /run/grant.img /run/blk.img || xv_fail "images"
# blkback's disk: a loop device over the file (what the "block" hotplug
# script would set up).
loopdev=$(losetup -f) && losetup "$loopdev" /run/blk.img || xv_fail "losetup $loopdev"
LOG=/run/xvmsg-backend.log
if pidof xvmsg-backend >/dev/null; then
	echo "xvmsg: using the xvmsg-backend already running here"
else
	xvmsg-backend --bus xen --log-level info --no-full >"$LOG" 2>&1 &
	xv_wait 20 grep -q "serving on xen bus" "$LOG" || { cat "$LOG"; xv_fail "backend did not start"; }
fi
xv_wait 300 xenstore-exists xvmsg-bench || xv_fail "dom0 made no xvmsg-bench directory"
xenstore-write xvmsg-bench/loop "$loopdev" xvmsg-bench/up 1 || xv_fail "xenstore"
xv_mark "backend up"

# The hotplug step xl devd would run here: for each vbd backend directory
# the toolstack made for us, physical-device = the loop device's
# major:minor (hex, as blkback reads it).  blkback then opens it and
# connects once the frontend is ready.
me=$(xenstore-read domid)
mm=$(cat "/sys/block/${loopdev#/dev/}/dev")
pd=$(printf '%x:%x' "${mm%:*}" "${mm#*:}")
be=/local/domain/$me/backend/vbd
xv_wait 600 sh -c "xenstore-list $be 2>/dev/null | grep -q ." || xv_fail "no vbd backend directory"
fe=$(xenstore-list "$be" | head -n1)
vdev=$(xenstore-list "$be/$fe" | head -n1)
bp=$be/$fe/$vdev
xenstore-write "$bp/physical-device" "$pd" "$bp/physical-device-path" "$loopdev" ||
	xv_fail "physical-device"
echo "xvmsg: blkback $bp: physical-device $pd ($loopdev over /run/blk.img)"
xv_wait 120 sh -c "[ \"\$(xenstore-read $bp/state)\" = 4 ]" ||
	xv_fail "blkback never connected (state $(xenstore-read "$bp/state"))"
echo "xvmsg: blkback connected: feature-persistent $(xenstore-read "$bp/feature-persistent" 2>/dev/null)," \
	"max-indirect-segments $(xenstore-read "$bp/feature-max-indirect-segments" 2>/dev/null)"
xv_mark "blkback connected"

# Snapshot requests from dom0: xvmsg-bench/snap = SEQ, answer in ctr, then
# ack = SEQ.  Counters: blkback's statistics (requests, sectors) and the
# interrupts of its event channel (notifications from the frontend).
st=/sys/bus/xen-backend/devices/vbd-$fe-$vdev/statistics
last=
# A watch, not polling: this domain's one vCPU serves the I/O being measured.
xenstore-watch xvmsg-bench | while read -r _; do
	if xenstore-exists xvmsg-bench/quit 2>/dev/null; then
		losetup -d "$loopdev"
		echo "xvmsg: bench over, $loopdev released"
		break
	fi
	seq=$(xenstore-read xvmsg-bench/snap 2>/dev/null)
	[ -z "$seq" ] || [ "$seq" = "$last" ] && continue
	last=$seq
	ctr=
	for f in rd_req wr_req oo_req f_req ds_req rd_sect wr_sect; do
		ctr="$ctr $f=$(cat "$st/$f" 2>/dev/null || echo 0)"
	done
	irq=$(awk '/blkif-backend/ { n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; t += n } END { print t + 0 }' /proc/interrupts)
	xenstore-write xvmsg-bench/ctr "${ctr# } be_irqs=$irq" xvmsg-bench/ack "$seq" || xv_fail "xenstore"
done
