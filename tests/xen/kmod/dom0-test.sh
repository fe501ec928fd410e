#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest kernel module on real Xen, dom0 side.  The guest loads xvmsg.ko and
# stock virtio drivers bind to devices served by xvmsg-backend:
#   vda  pool mode, driver domain          (ext4: mkfs, files, fsck, remount)
#   vdb  grant mode, driver domain         (raw pattern write/verify)
#   vdc  full mode, backend in dom0        (the classic privileged backend)
#   hwrng, and an hvc console line, pool mode, driver domain
# then the module is unloaded and loaded again and the ext4 files checked,
# the backend is killed and restarted under I/O, and backends that lie
# (notification storms, used lengths beyond the buffers) are survived.
. /etc/xvmsg/lib.sh

UP_TIMEOUT=150
STEP_TIMEOUT=150

# A privileged backend in dom0, for full mode.
truncate -s 16M /run/dom0-disk.img
xvmsg-backend --bus xen --log-level info >/run/xvmsg-backend-dom0.log 2>&1 &
dom0_backend=$!

xv_stage "xl create xvmsg-driver + xvmsg-guest"
xv_xl_create xvmsg-driver &
p_driver=$!
xv_xl_create xvmsg-guest &
p_guest=$!
wait "$p_driver" || xv_fail "xl create xvmsg-driver failed"
wait "$p_guest" || xv_fail "xl create xvmsg-guest failed"
xv_wait_console "$UP_TIMEOUT" xvmsg-driver "XVMSG-MARK driver backend up" \
	xvmsg-guest "XVMSG-MARK guest module loaded" || xv_fail "$XV_WHY"
d=$(xv_domid xvmsg-driver) || xv_fail "no driver domid"
g=$(xv_domid xvmsg-guest) || xv_fail "no guest domid"
grep -q "serving on xen bus" /run/xvmsg-backend-dom0.log || xv_fail "dom0 backend not running"

xv_stage "attach: pool disk, grant disk, full-mode disk from dom0, rng, console"
xvmsg-ctl attach xvmsg-guest xvmsg-driver blk path=/run/disk0.img,serial=pool-disk --devid 0 >/dev/null ||
	xv_fail "attach pool disk"
xvmsg-ctl attach xvmsg-guest xvmsg-driver blk path=/run/disk1.img,serial=grant-disk --devid 1 \
	--mode grant >/dev/null || xv_fail "attach grant disk"
xvmsg-ctl attach xvmsg-guest Domain-0 blk path=/run/dom0-disk.img,serial=full-disk --devid 2 \
	--mode full >/dev/null || xv_fail "attach full-mode disk"
xvmsg-ctl attach xvmsg-guest xvmsg-driver rng --devid 3 --pool-pages 16 >/dev/null ||
	xv_fail "attach rng"
# virtio_console keeps 64 page-sized receive buffers posted: a 384 KiB pool.
xvmsg-ctl attach xvmsg-guest xvmsg-driver console pty,link=/run/con0 --devid 4 \
	--pool-pages 96 >/dev/null || xv_fail "attach console"
xvmsg-ctl list
for dom in "$d" "$g"; do
	xenstore-write "/local/domain/$dom/xvmsg-e2e/ready" 1 &&
		xenstore-chmod -r "/local/domain/$dom/xvmsg-e2e" "n$dom" || xv_fail "xenstore setup"
done

xv_wait_console "$STEP_TIMEOUT" xvmsg-guest "XVMSG-MARK guest devices ok" || xv_fail "$XV_WHY"
xv_wait_console 60 xvmsg-driver "XVMSG-MARK driver console ok" || xv_fail "$XV_WHY"
xv_stage "ext4 on the pool disk, grant and full disks, hwrng, console: all worked"
xenstore-write "/local/domain/$g/xvmsg-e2e/reload" 1
xv_wait_console "$STEP_TIMEOUT" xvmsg-guest "XVMSG-MARK guest reload ok" || xv_fail "$XV_WHY"
xv_stage "module unloaded and loaded again; files intact"

for dev in 0 1 3 4; do
	xvmsg-ctl stats xvmsg-guest "$dev" >"$XV_RUN/stats-$dev.txt" || xv_fail "stats $dev"
done
xvmsg-ctl stats xvmsg-guest 2 >"$XV_RUN/stats-2.txt" || xv_fail "stats 2"
for dev in 0 1 2; do
	echo "device $dev: $(tr '\n' ' ' <"$XV_RUN/stats-$dev.txt")"
done
pool_pages=$(awk '$1 == "map_pages" { print $2 }' "$XV_RUN/stats-0.txt")
pool_maps=$(awk '$1 == "maps" { print $2 }' "$XV_RUN/stats-0.txt")
grant_maps=$(awk '$1 == "maps" { print $2 }' "$XV_RUN/stats-1.txt")
reqs=$(awk '$1 == "requests" { print $2 }' "$XV_RUN/stats-0.txt")
# Counters add up over the device's connections: two here (the module was
# reloaded).  Each mapped the 256 pool pages and the message page once, in
# 5 calls (message page + 4 chunks), and nothing per request.
[ "$pool_pages" -eq $((2 * 257)) ] || xv_fail "pool disk: $pool_pages pages mapped, want 2 x 257"
[ "$pool_maps" -eq 10 ] || xv_fail "pool disk: $pool_maps map calls, want 2 x 5 (pool kept mapped)"
[ "$grant_maps" -gt 20 ] || xv_fail "grant disk: only $grant_maps map calls"
xv_stage "pool disk: $reqs requests, $pool_maps map calls, $pool_pages pages; grant disk: $grant_maps map calls"

# kill -9 of the backend while the guest writes to the pool disk: the
# requests in flight fail with I/O errors (no hang, no crash), the module
# reconnects to the restarted backend by itself, and the disk is back.
xenstore-write "/local/domain/$g/xvmsg-e2e/io" 1
xv_wait_console 60 xvmsg-guest "XVMSG-MARK guest io running" || xv_fail "$XV_WHY"
xenstore-write "/local/domain/$d/xvmsg-e2e/restart" 1
xv_wait_console "$STEP_TIMEOUT" xvmsg-driver "XVMSG-MARK driver backend restarted" \
	xvmsg-guest "XVMSG-MARK guest io failed cleanly" \
	xvmsg-guest "XVMSG-MARK guest reattached" || xv_fail "$XV_WHY"
xv_stage "backend killed under I/O: I/O errors in the guest, then reconnected"

for dev in 0 1 2 3 4; do
	xvmsg-ctl detach xvmsg-guest "$dev" || xv_fail "detach $dev"
done
xv_wait_console 60 xvmsg-guest "XVMSG-MARK guest detached" || xv_fail "$XV_WHY"
kill "$dom0_backend"
wait "$dom0_backend" 2>/dev/null
xv_stage "detached"

# A lying backend (xvmsg-backend --fault, in dom0): the guest stays up and
# responsive, and the disk works (notification storm, used lengths beyond
# the buffers) or fails with I/O errors (used entries naming descriptors
# beyond the queue; a backend that stops answering, after the module's 30 s
# stall watchdog), never hangs.
n=0
for fault in irq-storm used-bad-len used-bad-id silent; do
	n=$((n + 1))
	xvmsg-backend --bus xen --log-level warn --fault "$fault" >>/run/xvmsg-fault.log 2>&1 &
	fb=$!
	xv_wait 20 sh -c "grep -c 'fault injection on' /run/xvmsg-fault.log | grep -qx $n" ||
		xv_fail "fault backend $fault did not start"
	dev=$((10 + n))
	xvmsg-ctl attach xvmsg-guest Domain-0 blk path=/run/dom0-disk.img,serial=evil-$n \
		--devid "$dev" >/dev/null || xv_fail "attach to the $fault backend"
	xenstore-write "/local/domain/$g/xvmsg-e2e/fault$n" "$fault" || xv_fail "xenstore"
	xv_wait_console 120 xvmsg-guest "XVMSG-MARK guest survived $fault" || xv_fail "$XV_WHY"
	xvmsg-ctl detach xvmsg-guest "$dev" || xv_fail "detach $dev"
	xv_wait_console 60 xvmsg-guest "XVMSG-MARK guest gone $fault" || xv_fail "$XV_WHY"
	kill "$fb"
	wait "$fb" 2>/dev/null
	xv_stage "backend fault $fault: guest survived"
done
exit 0
