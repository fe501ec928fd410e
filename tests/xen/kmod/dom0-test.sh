#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest kernel module on real Xen, dom0 side.  The guest loads xvmsg.ko and
# stock virtio drivers bind to devices served by xvmsg-backend:
#   vda  pool mode, driver domain          (ext4: mkfs, files, fsck, remount)
#   vdb  grant mode, driver domain         (raw pattern write/verify)
#   vdc  full mode, backend in dom0        (the classic privileged backend)
#   hwrng, and an hvc console line, pool mode, driver domain
# then the module is unloaded and loaded again and the ext4 files checked,
# the backend is killed and restarted under I/O, backends that lie (each
# xvmsg-backend --fault, run in dom0) are survived, and at the end the
# driver domain is shut down under the guest's I/O, then the guest.
. /etc/xvmsg/lib.sh
# The network stages (guest 2, the bridge): net-dom0.sh.
. /etc/xvmsg/net-dom0.sh

UP_TIMEOUT=150
STEP_TIMEOUT=150
# How long xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach waits for a backend to take a device (its
# default, 10 s, is short for TCG on a busy host: under load arm64 runs
# took longer; a backend that answers at all answers in well under 60 s).
ATTACH_TIMEOUT=60

# A privileged backend in dom0, for full mode.
truncate -s 16M /run/dom0-disk.img
xvmsg-backend --bus xen --log-level info >/run/xvmsg-backend-dom0.log 2>&1 &
dom0_backend=$!

xv_stage "xl create xvmsg-driver + xvmsg-guest"
xv_xl_create xvmsg-driver &
p_driver=$!
# Two vCPUs: virtio_blk gets a queue per vCPU of the two-queue pool disk.
xv_xl_create xvmsg-guest vcpus=2 &
p_guest=$!
net_start_guest2 &
p_guest2=$!
wait "$p_driver" || xv_fail "xl create xvmsg-driver failed"
wait "$p_guest" || xv_fail "xl create xvmsg-guest failed"
wait "$p_guest2" || xv_fail "xl create xvmsg-guest2 failed"
xv_wait_console "$UP_TIMEOUT" xvmsg-driver "XVMSG-MARK driver backend up" \
	xvmsg-guest "XVMSG-MARK guest module loaded" || xv_fail "$XV_WHY"
d=$(xv_domid xvmsg-driver) || xv_fail "no driver domid"
g=$(xv_domid xvmsg-guest) || xv_fail "no guest domid"
grep -q "serving on xen bus" /run/xvmsg-backend-dom0.log || xv_fail "dom0 backend not running"

xv_stage "attach: pool disk (2 queues), grant disk, full-mode disk from dom0, rng, console"
xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest xvmsg-driver blk \
	path=/run/disk0.img,serial=pool-disk,queues=2 --devid 0 >/dev/null ||
	xv_fail "attach pool disk"
xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest xvmsg-driver blk path=/run/disk1.img,serial=grant-disk --devid 1 \
	--mode grant >/dev/null || xv_fail "attach grant disk"
xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest Domain-0 blk path=/run/dom0-disk.img,serial=full-disk --devid 2 \
	--mode full >/dev/null || xv_fail "attach full-mode disk"
xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest xvmsg-driver rng --devid 3 --pool-pages 16 >/dev/null ||
	xv_fail "attach rng"
# virtio_console keeps 64 page-sized receive buffers posted: a 384 KiB pool.
xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest xvmsg-driver console pty,link=/run/con0 --devid 4 \
	--pool-pages 96 >/dev/null || xv_fail "attach console"
net_attach
xvmsg-ctl list
for dom in "$d" "$g"; do
	xenstore-write "/local/domain/$dom/xvmsg-e2e/ready" 1 &&
		xenstore-chmod -r "/local/domain/$dom/xvmsg-e2e" "n$dom" || xv_fail "xenstore setup"
done

xv_wait_console "$STEP_TIMEOUT" xvmsg-guest "XVMSG-MARK guest devices ok" || xv_fail "$XV_WHY"
xv_wait_console 60 xvmsg-driver "XVMSG-MARK driver console ok" || xv_fail "$XV_WHY"
xv_stage "ext4 on the pool disk, grant and full disks, hwrng, console: all worked"
net_stages
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
# The driver domain's backend runs --queue-threads 2: both queues of the
# pool disk are served there; dom0's backend (full mode) runs none.
pool_qt=$(awk '$1 == "queue_threads" { print $2 }' "$XV_RUN/stats-0.txt")
full_qt=$(awk '$1 == "queue_threads" { print $2 }' "$XV_RUN/stats-2.txt")
[ "$pool_qt" = 2 ] || xv_fail "pool disk: ${pool_qt:-no} queues on queue threads, want 2"
[ "$full_qt" = 0 ] || xv_fail "full-mode disk: ${full_qt:-no} queues on queue threads, want 0"
# Counters add up over the device's connections: two here (the module was
# reloaded).  Each mapped the 256 pool pages and the message page once, in
# 5 calls (message page + 4 chunks), and nothing per request.
[ "$pool_pages" -eq $((2 * 257)) ] || xv_fail "pool disk: $pool_pages pages mapped, want 2 x 257"
[ "$pool_maps" -eq 10 ] || xv_fail "pool disk: $pool_maps map calls, want 2 x 5 (pool kept mapped)"
[ "$grant_maps" -gt 20 ] || xv_fail "grant disk: only $grant_maps map calls"
xv_stage "pool disk: $reqs requests on 2 queue threads, $pool_maps map calls, $pool_pages pages; grant disk: $grant_maps map calls"

# kill -9 of the backend while the guest writes to the pool disk: the
# requests in flight fail with I/O errors (no hang, no crash), the module
# reconnects to the restarted backend by itself, and the disk is back.
xenstore-write "/local/domain/$g/xvmsg-e2e/io" 1
xv_wait_console 60 xvmsg-guest "XVMSG-MARK guest io running" || xv_fail "$XV_WHY"
net_before_restart
xenstore-write "/local/domain/$d/xvmsg-e2e/restart" 1
xv_wait_console "$STEP_TIMEOUT" xvmsg-driver "XVMSG-MARK driver backend restarted" \
	xvmsg-guest "XVMSG-MARK guest io failed cleanly" \
	xvmsg-guest "XVMSG-MARK guest reattached" || xv_fail "$XV_WHY"
xv_stage "backend killed under I/O: I/O errors in the guest, then reconnected"
net_after_restart
net_guest2_done

for dev in 0 1 2 3 4 $NET_G1_DEVID; do
	xvmsg-ctl detach xvmsg-guest "$dev" || xv_fail "detach $dev"
done
xv_wait_console 60 xvmsg-guest "XVMSG-MARK guest detached" || xv_fail "$XV_WHY"
# (Before net_detached: its lying NIC comes from a backend in dom0.)
kill "$dom0_backend"
wait "$dom0_backend" 2>/dev/null
net_detached
xv_stage "detached"

# Small pools: the driver domain serves disks with 16-, 64- and 128-page
# pools; the guest writes 1 MiB and 4 MiB O_DIRECT requests and runs
# mkfs.ext4 + e2fsck on the smallest (guest-test.sh).  Below the blk
# minimum (8 pages) xvmsg-ctl refuses with the minimum in the message.
if out=$(xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest xvmsg-driver blk path=/run/small16.img --devid 9 \
	--pool-pages 7 2>&1); then
	xv_fail "xvmsg-ctl accepted a 7-page pool for blk"
fi
echo "$out" | grep -q "at least 8 for blk" || xv_fail "7-page pool refused without the minimum: $out"
echo "xvmsg: xvmsg-ctl: $out"
for pages in 16 64 128; do
	xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest xvmsg-driver blk path=/run/small$pages.img,serial=small$pages \
		--devid $((pages == 16 ? 5 : pages == 64 ? 6 : 7)) --pool-pages "$pages" >/dev/null ||
		xv_fail "attach the $pages-page pool disk"
done
xenstore-write "/local/domain/$g/xvmsg-e2e/small" 1 || xv_fail "xenstore"
xv_wait_console 240 xvmsg-guest "XVMSG-MARK guest small pools ok" || xv_fail "$XV_WHY"
t0=$(xv_uptime)
for dev in 5 6 7; do
	xvmsg-ctl detach xvmsg-guest "$dev" || xv_fail "detach $dev"
done
xv_wait_console 120 xvmsg-guest "XVMSG-MARK guest small pools detached" || xv_fail "$XV_WHY"
xv_stage "small pools (16, 64, 128 pages): 1 MiB and 4 MiB O_DIRECT requests, ext4 + e2fsck on 16 pages"

# A lying backend (xvmsg-backend --fault, in dom0): the guest stays up and
# responsive; the disk works (notification storm, used lengths beyond the
# buffers, wrong-token and rewritten responses, a pool snooper) or fails
# with I/O errors (used entries naming descriptors beyond the queue or the
# same one twice, grant-mode pages kept mapped, a backend that stops
# answering or rewrites the avail index, after the module's stall
# watchdog: timeout_ms, which the guest sets to 5 s for these); a backend that rewrites the descriptor table changes nothing
# the guest reads back; a backend that dies in the handshake, or names
# another device type, gives no disk.  Nothing hangs.  FAULTS lists
# fault:mode; tests/xen/kmod/guest-test.sh knows the same names.
FAULTS="irq-storm:pool used-bad-len:pool used-bad-id:pool used-dup-id:pool msg-bad-token:pool
	msg-rewrite:pool keep-mapped:grant vanish-handshake:pool snoop:pool silent:pool
	desc-rewrite:pool avail-rewrite:pool wrong-device-id:pool"
# XVMSG_KMOD_FAULTS (mkimages.sh: /etc/xvmsg/kmod-faults): only the named
# faults (separated by spaces or commas), in FAULTS' order; "all" (the
# default) or empty: every one.
want_faults=$(tr ',' ' ' </etc/xvmsg/kmod-faults 2>/dev/null || echo all)
if [ -n "$want_faults" ] && [ "$want_faults" != all ]; then
	for f in $want_faults; do
		echo " $FAULTS " | tr '\n\t' '  ' | grep -q " $f:" || xv_fail "kmod-faults: no fault named '$f'"
	done
	FAULTS=$(for spec in $FAULTS; do
		case " $want_faults " in *" ${spec%%:*} "*) echo "$spec" ;; esac
	done)
fi
# "N" from the last line of the fault log with "blkDEV(...): ... N WHAT".
fault_count() {
	grep "blk$1(dom$g): " /run/xvmsg-fault.log | grep -o "[0-9]* $2" | tail -1 | cut -d' ' -f1
}
n=0
for spec in $FAULTS; do
	fault=${spec%%:*} mode=${spec#*:}
	n=$((n + 1))
	t0=$(xv_uptime)
	xvmsg-backend --bus xen --log-level warn --fault "$fault" >>/run/xvmsg-fault.log 2>&1 &
	fb=$!
	xv_wait 20 sh -c "grep -c 'fault injection on' /run/xvmsg-fault.log | grep -qx $n" ||
		xv_fail "fault backend $fault did not start"
	dev=$((10 + n))
	xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest Domain-0 blk path=/run/dom0-disk.img,serial=evil-$n \
		--devid "$dev" --mode "$mode" >/dev/null || xv_fail "attach to the $fault backend"
	if [ "$fault" = vanish-handshake ]; then
		# It maps the guest's message page, then exits like a crash.
		xv_wait 60 grep -q "exiting before Connected" /run/xvmsg-fault.log ||
			xv_fail "vanish-handshake: the backend did not get to the handshake"
		wait "$fb"
		rc=$?
		[ "$rc" -eq 3 ] || xv_fail "vanish-handshake: backend exit status $rc, want 3"
		fe=$(xenstore-read "/local/domain/$g/device/xvmsg/$dev/state")
		echo "xvmsg: vanish-handshake: backend exited (3) in the handshake, frontend state $fe"
	fi
	xenstore-write "/local/domain/$g/xvmsg-e2e/fault$n" "$fault" || xv_fail "xenstore"
	if ! xv_wait_console 120 xvmsg-guest "XVMSG-MARK guest survived $fault"; then
		# What the backend saw, for a case that hangs: its log and its
		# counters (SIGUSR1 writes them to the same log).
		why=$XV_WHY
		kill -USR1 "$fb" 2>/dev/null
		sleep 1
		echo "xvmsg: --- $fault: the fault backend's log (last 30 lines) ---"
		tail -30 /run/xvmsg-fault.log | sed 's/^/  | /'
		xv_fail "$why"
	fi
	xvmsg-ctl detach xvmsg-guest "$dev" || xv_fail "detach $dev"
	xv_wait_console 60 xvmsg-guest "XVMSG-MARK guest gone $fault" || xv_fail "$XV_WHY"
	kill "$fb" 2>/dev/null
	wait "$fb" 2>/dev/null
	# The lie really happened (the backend's counters, logged at disconnect).
	what=
	case "$fault" in
	msg-bad-token)
		k=$(fault_count "$dev" "responses with wrong tokens")
		[ "${k:-0}" -gt 0 ] || xv_fail "msg-bad-token: no wrong-token responses sent"
		what=", $k wrong-token responses dropped" ;;
	msg-rewrite)
		k=$(fault_count "$dev" "consumed response slots")
		[ "${k:-0}" -gt 0 ] || xv_fail "msg-rewrite: no slot rewritten"
		what=", $k consumed response slots rewritten" ;;
	snoop)
		grep "blk$dev(dom$g): snoop" /run/xvmsg-fault.log | sed 's/^/  | /'
		scans=$(fault_count "$dev" "idle scans")
		stale=$(fault_count "$dev" "found stale bytes")
		seen=$(fault_count "$dev" "scans during writes")
		[ "${scans:-0}" -gt 0 ] || xv_fail "snoop: the backend never scanned an idle pool"
		[ "${seen:-0}" -gt 0 ] || xv_fail "snoop: the scan never saw the marker in flight (no positive control)"
		[ "$stale" = 0 ] || xv_fail "snoop: $stale idle scans found guest data in freed pool slots"
		what=", $scans idle pool scans found nothing stale; $seen scans during writes saw the marker" ;;
	esac
	xv_stage "backend fault $fault ($mode): guest survived$what ($(($(xv_uptime) - t0)) s)"
done
xenstore-write "/local/domain/$g/xvmsg-e2e/fault$((n + 1))" "done" || xv_fail "xenstore"
[ "$n" -eq 13 ] || xv_stage "backend faults: $n of 13 ran (kmod-faults: $want_faults)"

# The driver domain is shut down while the guest writes to a disk it serves:
# the guest stays up, the writes end with I/O errors, the disk goes away;
# then the guest shuts down cleanly.  Both bounded.
xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest xvmsg-driver blk path=/run/disk0.img,serial=last-disk --devid 30 \
	>/dev/null || xv_fail "attach the last disk"
xenstore-write "/local/domain/$g/xvmsg-e2e/last" 1 || xv_fail "xenstore"
xv_wait_console 90 xvmsg-guest "XVMSG-MARK guest io on the driver domain" \
	xvmsg-driver "XVMSG-MARK driver serving until shutdown" || xv_fail "$XV_WHY"
t0=$(xv_uptime)
if timeout 60 xl shutdown -w xvmsg-driver >/dev/null 2>&1; then
	how="xl shutdown"
else
	xl destroy xvmsg-driver || xv_fail "xl destroy xvmsg-driver"
	how="xl destroy (xl shutdown did not finish in 60 s)"
fi
xv_stage "driver domain down by $how in $(($(xv_uptime) - t0)) s"
xv_wait_console 90 xvmsg-guest "XVMSG-MARK guest survived the driver domain" || xv_fail "$XV_WHY"
t0=$(xv_uptime)
timeout 60 xl shutdown -w xvmsg-guest >/dev/null 2>&1 || xv_fail "xl shutdown of the guest did not finish in 60 s"
xv_stage "guest shut down cleanly in $(($(xv_uptime) - t0)) s"
exit 0
