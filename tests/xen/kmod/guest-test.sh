#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest kernel module test, guest side: stock virtio drivers on xvmsg.ko.
. /etc/xvmsg/lib.sh

xv_modprobe virtio_blk virtio_rng virtio_console || xv_fail "virtio drivers"
modprobe xvmsg || xv_fail "modprobe xvmsg"
xv_mark "module loaded"
# The NIC (net-dom0.sh drives it): its address whenever it appears, and
# dom0's commands, beside the rest of this plan.
. /etc/xvmsg/net-lib.sh
net_keep "$NET_MAC1" "$NET_IP1" &
net_agent &
xv_read_wait 300 xvmsg-e2e/ready >/dev/null || xv_fail "dom0 never attached devices"
# If the devices' checks hang, say what the kernel said (the console is all
# we have); once they passed, nothing to say.
( sleep 90; echo "xvmsg: --- blocked tasks 90 s after the attach ---"; echo w >/proc/sysrq-trigger;
  dmesg | tail -120; ls /sys/block ) &
devices_dump=$!

# /dev/vdX of the disk with serial $1 (lib.sh).
disk_with_serial() {
	local d
	d=$(xv_disk_with_serial "$1") && echo "/dev/$d"
}
xv_wait 120 disk_with_serial pool-disk >/dev/null || { dmesg | tail -30; xv_fail "no pool disk appeared"; }
xv_wait 60 disk_with_serial grant-disk >/dev/null || { dmesg | tail -30; xv_fail "no grant disk"; }
xv_wait 60 disk_with_serial full-disk >/dev/null || { dmesg | tail -30; xv_fail "no full-mode disk"; }
pool=$(disk_with_serial pool-disk) grant=$(disk_with_serial grant-disk) full=$(disk_with_serial full-disk)
echo "xvmsg: pool disk $pool, grant disk $grant, full-mode disk $full"

# The pool disk has two queues (queues=2) and this guest two vCPUs:
# virtio_blk uses both, and data written from each CPU reads back.
nq=$(ls "/sys/block/${pool#/dev/}/mq" 2>/dev/null | wc -l)
echo "xvmsg: $(grep -c ^processor /proc/cpuinfo) vCPUs, $pool has $nq blk-mq queues"
[ "$nq" -eq 2 ] || xv_fail "virtio_blk sees $nq queues on the two-queue disk, not 2"
# Interrupts of a queue's event channel (xvmsg-0-qN), all CPUs.
q_irqs() { awk -v n="xvmsg-0-q$1" '$NF == n { s = 0; for (i = 2; i < NF; i++) if ($i ~ /^[0-9]+$/) s += $i; print s }' /proc/interrupts; }
dd if=/dev/urandom of=/run/pattern bs=64k count=32 2>/dev/null
for cpu in 0 1; do
	taskset "$((1 << cpu))" dd if=/run/pattern of="$pool" bs=64k seek=$((cpu * 64)) conv=fsync 2>/dev/null ||
		xv_fail "write on CPU $cpu to $pool"
done
echo 3 >/proc/sys/vm/drop_caches
for cpu in 0 1; do
	taskset "$((1 << cpu))" dd if="$pool" of=/run/back bs=64k skip=$((cpu * 64)) count=32 2>/dev/null ||
		xv_fail "read on CPU $cpu from $pool"
	cmp /run/pattern /run/back || xv_fail "data written from CPU $cpu differs"
done
echo "xvmsg: queue interrupts: q0 $(q_irqs 0), q1 $(q_irqs 1)"
[ "$(q_irqs 0)" -gt 0 ] && [ "$(q_irqs 1)" -gt 0 ] || { grep xvmsg /proc/interrupts; xv_fail "a queue of the two-queue disk carried nothing"; }
xv_mark "two queues ok"

# The module's debugfs, which xv_hang_dump reads when a case hangs: the
# two-queue disk, idle once any readahead of the reads above is done,
# shows both queues with nothing in flight.
[ -d /sys/kernel/debug/xvmsg ] || mount -t debugfs debugfs /sys/kernel/debug
dbg=/sys/kernel/debug/xvmsg/xvmsg-0
both_idle() {
	[ "$(grep -c '^queue [01]: [0-9]* entries.*; in flight 0, with the backend 0; irq [0-9]* port [0-9]*$' "$dbg/queues")" -eq 2 ]
}
xv_wait 10 both_idle; idle=$?
sed 's/^/xvmsg: debugfs queues: /' "$dbg/queues"
[ "$idle" -eq 0 ] || xv_fail "debugfs $dbg/queues does not show two idle queues"
grep -q '^mode  *pool$' "$dbg/stats" || { cat "$dbg/stats"; xv_fail "debugfs $dbg/stats does not say pool mode"; }

# ext4 on the pool disk.
mkfs.ext4 -q -F "$pool" || xv_fail "mkfs.ext4 $pool"
mkdir -p /mnt && mount -t ext4 "$pool" /mnt || xv_fail "mount $pool"
for i in 1 2 3 4; do
	dd if=/dev/urandom of=/mnt/file$i bs=64k count=$((i * 8)) 2>/dev/null || xv_fail "write file$i"
done
(cd /mnt && sha256sum file* >/run/sums)
sync
umount /mnt || xv_fail "umount"
e2fsck -fn "$pool" || xv_fail "e2fsck found problems"
mount -t ext4 "$pool" /mnt && (cd /mnt && sha256sum -c /run/sums) || xv_fail "checksums after remount"
umount /mnt
xv_mark "ext4 ok"

# Raw pattern on the grant and full-mode disks.
for dev in "$grant" "$full"; do
	dd if=/dev/urandom of=/run/pattern bs=1M count=4 2>/dev/null
	dd if=/run/pattern of="$dev" bs=64k conv=fsync 2>/dev/null || xv_fail "write $dev"
	echo 3 >/proc/sys/vm/drop_caches
	dd if="$dev" of=/run/back bs=64k count=64 2>/dev/null || xv_fail "read $dev"
	cmp /run/pattern /run/back || xv_fail "data differs on $dev"
done
xv_mark "grant and full disks ok"

grep -q virtio /sys/class/misc/hw_random/rng_available || xv_fail "no virtio_rng in hw_random"
echo "xvmsg: hw_random current: $(cat /sys/class/misc/hw_random/rng_current)"
dd if=/dev/hwrng of=/run/rnd bs=64 count=1 2>/dev/null || xv_fail "read /dev/hwrng"
[ "$(od -An -tx1 /run/rnd | tr -d ' \n' | wc -c)" -eq 128 ] || xv_fail "short hwrng read"
xv_mark "hwrng ok"

# The virtio console's port 0 is an hvc line after the Xen console (hvc0);
# the lines no driver backs refuse writes with ENODEV.
con=
xv_wait 30 sh -c 'ls /sys/class/virtio-ports/ 2>/dev/null | grep -q vport' ||
	{ dmesg | grep -i virtio | tail; xv_fail "no virtio console port"; }
for n in 1 2 3 4 5 6 7; do
	if printf '' >"/dev/hvc$n" 2>/dev/null; then con=/dev/hvc$n; break; fi
done
[ -n "$con" ] || { dmesg | grep -i "virtio\|hvc" | tail; xv_fail "no virtio console line"; }
echo "xvmsg: virtio console line $con"
for i in 1 2 3 4 5; do echo "hello from the guest kernel $i" >"$con"; sleep 1; done &
kill "$devices_dump" 2>/dev/null
xv_mark "devices ok"

xv_read_wait 300 xvmsg-e2e/reload >/dev/null || xv_fail "dom0 never asked for the reload"
for d in /sys/bus/xen/drivers/xvmsg/xvmsg-*; do
	[ -e "$d" ] && echo "${d##*/}" >/sys/bus/xen/drivers/xvmsg/unbind
done
rmmod xvmsg || xv_fail "rmmod xvmsg"
modprobe xvmsg || xv_fail "modprobe xvmsg again"
xv_wait 120 disk_with_serial pool-disk >/dev/null || xv_fail "pool disk did not come back"
pool=$(disk_with_serial pool-disk)
mount -t ext4 "$pool" /mnt && (cd /mnt && sha256sum -c /run/sums) || xv_fail "files after reload"
umount /mnt
xv_mark "reload ok"

xv_read_wait 300 xvmsg-e2e/io >/dev/null || xv_fail "dom0 never started the restart test"
dd if=/dev/urandom of=/run/pat bs=1M count=1 2>/dev/null
dd if=/run/pat of="$pool" bs=64k oflag=direct conv=fsync 2>/dev/null || xv_fail "write before restart"
( i=0; while dd if=/run/pat of="$pool" bs=64k oflag=direct 2>/dev/null; do i=$((i + 1)); done
  echo "xvmsg: writer stopped by an I/O error after $i passes" ) &
w=$!
sleep 1
xv_mark "io running"
xv_wait 120 sh -c "! kill -0 $w 2>/dev/null" ||
	{ echo w >/proc/sysrq-trigger; dmesg | tail -40; xv_fail "writer hangs after the backend died"; }
xv_mark "io failed cleanly"
xv_wait 120 sh -c 'd=$(for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = pool-disk ] && echo ${b##*/}; done); [ -n "$d" ] && dd if=/dev/$d of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null' ||
	{ dmesg | tail -30; xv_fail "pool disk did not come back after the restart"; }
pool=$(disk_with_serial pool-disk)
dd if="$pool" of=/run/back bs=64k count=16 iflag=direct 2>/dev/null || xv_fail "read after restart"
cmp /run/pat /run/back || xv_fail "data written before the restart is gone"
# An orderly detach is no failure: nothing at error level for it.
broke0=$(dmesg | grep -c "broke a virtqueue")
xv_mark "reattached"
xv_wait 300 sh -c "! ls /sys/block | grep -q vd" || xv_fail "disks still there after detach"
broke1=$(dmesg | grep -c "broke a virtqueue")
[ "$broke1" -eq "$broke0" ] || { dmesg | grep "broke a virtqueue\|connection closed" | tail -5;
	xv_fail "an orderly detach logged $((broke1 - broke0)) 'broke a virtqueue' errors"; }
echo "xvmsg: detach logged at info: $(dmesg | grep -c "connection closed (device detached") 'connection closed' lines, no errors"
xv_mark "detached"

# Small pools (16, 64, 128 pages): the block limits follow the pool, so the
# largest requests the block layer may build (max_sectors_kb raised to
# max_hw_sectors_kb) fit and 1 MiB and 4 MiB O_DIRECT writes complete and
# read back; mkfs.ext4 + e2fsck on the smallest.  Before, virtio_blk built
# requests of 126 pages that no such pool could hold: dd hung, unkillable.
xv_read_wait 300 xvmsg-e2e/small >/dev/null || xv_fail "dom0 never attached the small-pool disks"
dd if=/dev/urandom of=/run/pat4 bs=1M count=4 2>/dev/null
for pages in 16 64 128; do
	xv_wait 60 disk_with_serial "small$pages" >/dev/null || { dmesg | tail -20; xv_fail "no small$pages disk"; }
	d=$(disk_with_serial "small$pages")
	q=/sys/block/${d#/dev/}/queue
	cat "$q/max_hw_sectors_kb" >"$q/max_sectors_kb" || xv_fail "small$pages: max_sectors_kb"
	segs=$(cat "$q/max_segments") segsz=$(cat "$q/max_segment_size") hw=$(cat "$q/max_hw_sectors_kb")
	echo "xvmsg: pool $pages pages: max_segments $segs, max_segment_size $segsz, max_hw_sectors_kb $hw"
	[ $((segs * segsz)) -le $((pages * 4096 / 2)) ] ||
		xv_fail "small$pages: requests of $segs x $segsz bytes do not fit half a $pages-page pool"
	for mb in 1 4; do
		head -c $((mb * 1048576)) /run/pat4 >/run/patn
		dd if=/run/patn of="$d" bs=${mb}M count=1 oflag=direct conv=fsync 2>/dev/null ||
			xv_fail "small$pages: ${mb} MiB O_DIRECT write"
		dd if="$d" of=/run/back bs=${mb}M count=1 iflag=direct 2>/dev/null ||
			xv_fail "small$pages: ${mb} MiB O_DIRECT read"
		cmp /run/patn /run/back || xv_fail "small$pages: ${mb} MiB read back differs"
	done
	id=$((pages == 16 ? 5 : pages == 64 ? 6 : 7))
	echo "xvmsg: small$pages: 1 MiB and 4 MiB O_DIRECT written and read back; pool_full $(cat /sys/bus/xen/devices/xvmsg-$id/xvmsg/pool_full)"
done
d=$(disk_with_serial small16)
mkfs.ext4 -q -F "$d" || xv_fail "mkfs.ext4 on the 16-page pool disk"
mount -t ext4 "$d" /mnt && cp /run/pat4 /mnt/pat4 && sync && umount /mnt || xv_fail "ext4 on small16"
e2fsck -fn "$d" || xv_fail "e2fsck on the 16-page pool disk"
mount -t ext4 "$d" /mnt && cmp /run/pat4 /mnt/pat4 && umount /mnt || xv_fail "file on small16 differs"
xv_mark "small pools ok"
xv_wait 120 sh -c "! ls /sys/block | grep -q vd" || xv_fail "small-pool disks still there after detach"
xv_mark "small pools detached"

# Both vCPUs stay online.  When a lying backend breaks a queue, the module
# hands the requests in flight back as failed and then breaks the device;
# a request a driver adds in between must not be left in flight for ever
# (the probe's partition scan would hang on it).  fail_window_ms keeps that
# moment open for a second, so the scan's next read surely comes in it.
echo 1000 >/sys/module/xvmsg/parameters/fail_window_ms || xv_fail "fail_window_ms"

# Backends that lie (dom0-test.sh, FAULTS: the same order).  The disk of
# fault n is xvmsg device 10 + n.
# They meet a 5 s timeout_ms, not the default 30 s: it bounds both a
# message and the block stall watchdog, so silent and avail-rewrite end
# in a sixth of the time (avail-rewrite checks that the watchdog took it).
# A message round trip takes milliseconds even under TCG, so 5 s still
# fails only a backend that does not answer.
FAULT_TIMEOUT_MS=5000
echo $FAULT_TIMEOUT_MS >/sys/module/xvmsg/parameters/timeout_ms || xv_fail "cannot set timeout_ms"
# A fault that gives no disk: say so, then wait for dom0's detach.
survived_without_disk() {
	xv_mark "survived $fault"
	xv_wait 60 sh -c "! [ -e /sys/bus/xen/devices/xvmsg-$dev ]" ||
		xv_fail "$fault: device not removed"
	xv_mark "gone $fault"
}
# no_bad_page [PREFIX]: a page the backend kept mapped is never freed twice,
# so the page allocator finds no free page with a count (keep-mapped:
# virtio_blk's request memory is a tail page of a higher-order allocation;
# the grant table once took a count on it, the allocator reported it, and
# the late put freed it into the next device's requests).
no_bad_page() {
	dmesg | grep -q "Bad page state" || return 0
	dmesg | grep -A3 "Bad page state" | head -8
	xv_fail "${1:-}the page allocator found a bad page (a page freed while counted)"
}
# dom0 names them one by one (all of them, or the kmod-faults subset) and
# then writes "done".
n=0
while :; do
	n=$((n + 1))
	dev=$((10 + n))
	st=/sys/bus/xen/devices/xvmsg-$dev/xvmsg
	fault=$(xv_read_wait 200 xvmsg-e2e/fault$n) || xv_fail "no fault $n from dom0"
	case $fault in
	done) break ;;
	irq-storm | used-bad-len | used-bad-id | used-dup-id | msg-bad-token | msg-rewrite | \
	keep-mapped | vanish-handshake | snoop | silent | desc-rewrite | avail-rewrite | wrong-device-id) ;;
	*) xv_fail "fault $n is '$fault', not one this plan knows" ;;
	esac
	if [ "$fault" = vanish-handshake ]; then
		# dom0 saw the backend exit after mapping our message page: no
		# disk comes, nothing waits on it, the kernel is fine.
		sleep 2
		! ls /sys/block | grep -q vd || xv_fail "a disk from a backend that died in the handshake"
		echo "xvmsg: vanish-handshake: no disk; xvmsg-$dev $(cat /sys/bus/xen/devices/xvmsg-$dev/state 2>/dev/null); kernel fine"
		survived_without_disk
		continue
	fi
	if [ "$fault" = wrong-device-id ]; then
		# The backend says balloon (5) behind a blk the toolstack
		# attached: the module refuses it, no driver binds.
		xv_wait 60 sh -c "dmesg | grep -q 'xvmsg-$dev: .*device id 5, the toolstack attached .blk.'" ||
			{ dmesg | tail -20; xv_fail "wrong-device-id: not refused"; }
		! ls /sys/bus/virtio/drivers/virtio_balloon 2>/dev/null | grep -q virtio ||
			xv_fail "wrong-device-id: virtio_balloon bound"
		! ls /sys/block | grep -q vd || xv_fail "wrong-device-id: a disk appeared"
		echo "xvmsg: wrong-device-id: $(dmesg | grep -o 'backend reports virtio device id 5.*' | tail -1)"
		survived_without_disk
		continue
	fi
	# The only disk now.  (Not by serial: a broken device cannot answer.)
	xv_wait 60 sh -c 'ls /sys/block | grep -q vd' || { dmesg | tail -20; xv_fail "no disk from the $fault backend"; }
	d=/dev/$(ls /sys/block | grep vd | head -1)
	t0=$(xv_uptime)
	# A read that hangs (timeout cannot end a task in D state) shows where:
	# its tasks, rings and queues after 75 s, unless the case ended before.
	( sleep 75; echo "xvmsg: --- $fault: not done after 75 s ---"; xv_hang_dump 60 ) &
	hang_dump=$!
	# Worked: all 4 MiB came back (a broken device may also shrink to 0
	# bytes, and dd reads nothing from it without an error).
	rm -f /run/rd
	if timeout 60 dd if="$d" of=/run/rd bs=64k count=64 iflag=direct 2>/dev/null &&
		[ "$(wc -c </run/rd)" -eq 4194304 ]; then
		r=worked
	else
		r="failed with an error"
	fi
	case "$fault:$r" in
	used-bad-id:worked | used-dup-id:worked | keep-mapped:worked | silent:worked | \
	avail-rewrite:worked)
		xv_fail "reads from a $fault backend succeeded" ;;
	*:failed*)
		# desc-rewrite: the lie also corrupts the backend's own view of
		# chains it has not taken yet; refusing those is its business.
		case "$fault" in used-bad-id | used-dup-id | keep-mapped | silent | avail-rewrite | \
			desc-rewrite) ;;
		*) xv_fail "$fault: the read failed" ;;
		esac ;;
	esac
	# Still responsive: a process runs and the clock moves.
	[ "$(xv_uptime)" -lt $((t0 + 60)) ] || xv_fail "$fault: 4 MiB read took over 60 s"
	more=
	case "$fault" in
	avail-rewrite)
		# Only the stall watchdog can end this one: it gave up after
		# timeout_ms, as set above (its six checks are whole jiffies
		# each: 5016 ms for 5000 at HZ=250).
		ms=$(dmesg | sed -n "s/.*xvmsg-$dev: no request completed for \([0-9]*\) ms.*/\1/p" | tail -1)
		[ -n "$ms" ] && [ "$ms" -ge "$FAULT_TIMEOUT_MS" ] && [ "$ms" -le $((FAULT_TIMEOUT_MS + 100)) ] ||
			{ dmesg | tail -20; xv_fail "avail-rewrite: no stall after timeout_ms ($FAULT_TIMEOUT_MS ms; ${ms:-none} ms)"; }
		more="; $(dmesg | grep -o 'no request completed for [0-9]* ms' | tail -1)" ;;
	msg-bad-token)
		[ "$(cat $st/msgs_bad)" -gt 0 ] || xv_fail "msg-bad-token: no response dropped"
		more="; $(cat $st/msgs_bad) messages dropped" ;;
	keep-mapped)
		# Grants the backend still maps are not reused: leaked, counted.
		[ "$(cat $st/leaked_pages)" -gt 0 ] || xv_fail "keep-mapped: no page withheld"
		more="; revoke_busy $(cat $st/revoke_busy), leaked_pages $(cat $st/leaked_pages)"
		dmesg | grep -m2 "still map\|withheld" ;;
	snoop)
		# Files full of the marker through ext4; the backend scans the
		# pool whenever it is idle and must not find them.
		mkfs.ext4 -q -F "$d" && mount -t ext4 "$d" /mnt || xv_fail "snoop: mkfs/mount"
		for i in 1 2; do
			yes XVMSG-SECRET- | head -c 1048576 >/mnt/secret$i || xv_fail "snoop: write"
		done
		sync
		umount /mnt || xv_fail "snoop: umount"
		sleep 2	# the backend scans once no request came for 1 s
		more="; 2 MiB of the marker written through ext4" ;;
	esac
	kill "$hang_dump" 2>/dev/null
	echo "xvmsg: $fault: a 4 MiB read $r$more; $(grep -c . /proc/interrupts) interrupt lines, kernel fine"
	xv_mark "survived $fault"
	xv_wait 60 sh -c "! ls /sys/block | grep -q vd" ||
		xv_fail "$fault: disk not removed"
	no_bad_page "$fault: "
	xv_mark "gone $fault"
done

# The driver domain is shut down under our writes: they end with I/O
# errors, the disk goes away, the guest stays up; then dom0 shuts us down
# (xl shutdown runs poweroff_cmd).
cat >/run/xvmsg-poweroff <<'EOF'
#!/bin/sh
echo "XVMSG-MARK guest powering off" >/dev/console
sync
poweroff -f
EOF
chmod +x /run/xvmsg-poweroff && echo /run/xvmsg-poweroff >/proc/sys/kernel/poweroff_cmd ||
	xv_fail "poweroff_cmd"
xv_read_wait 300 xvmsg-e2e/last >/dev/null || xv_fail "dom0 never attached the last disk"
xv_wait 60 disk_with_serial last-disk >/dev/null || { dmesg | tail -20; xv_fail "no last disk"; }
d=$(disk_with_serial last-disk)
dd if=/run/pat of="$d" bs=64k oflag=direct conv=fsync 2>/dev/null || xv_fail "write to the last disk"
( i=0; while dd if=/run/pat of="$d" bs=64k oflag=direct 2>/dev/null; do i=$((i + 1)); done
  echo "xvmsg: writer stopped by an I/O error after $i passes" ) &
w=$!
xv_mark "io on the driver domain's disk"
xv_wait 120 sh -c "! kill -0 $w 2>/dev/null" ||
	{ echo w >/proc/sysrq-trigger; dmesg | tail -40; xv_fail "writer hangs after the driver domain went away"; }
xv_wait 60 sh -c "! ls /sys/block | grep -q vd" || xv_fail "disk still there without its driver domain"
t0=$(xv_uptime)
ls /sys/bus/xen/devices >/dev/null && [ "$(xv_uptime)" -lt $((t0 + 5)) ] || xv_fail "guest sluggish"
dmesg | grep "xvmsg-30" | tail -4
no_bad_page
xv_mark "survived the driver domain's shutdown"
