#!/bin/sh
# SPDX-License-Identifier: MIT
# shellcheck shell=dash disable=SC2154
# make bench-xen, guest side: fio (Debian's, bench/xen/mkoverlay.sh) over
# four disks: pool, grant, full (virtio_blk on xvmsg.ko) and blk
# (xen-blkfront).  Each disk is filled, then checked with a verifying write
# job; then every repetition runs every workload on every disk, the disks'
# order rotated per workload and repetition.  Around each fio run it asks
# dom0 for the backends' counters (xvmsg-bench/snap) and reads the module's.
# Output lines (scripts/bench-xen.sh parses them):
#   XVMSG-BENCH-VERIFY dev=D rc=N
#   XVMSG-BENCH-CELL rep=R dev=D wl=W qd=Q snap0=N snap1=N rc=N secs=N g0=... g1=...
#   XVMSG-BENCH-FIO snap0=N dev=D <fio's terse line>
# shellcheck source=scripts/xen/init/lib.sh disable=SC1090,SC1091
. "${XVMSG_BENCH_LIB:-/etc/xvmsg/lib.sh}"

fail() {
	xenstore-write xvmsg-bench/done "$*" 2>/dev/null
	xv_fail "$*"
}

modprobe virtio_blk || xv_fail "virtio_blk"
modprobe xvmsg || xv_fail "modprobe xvmsg"
fio --version >/dev/null || xv_fail "fio does not run"
xv_wait 300 xenstore-exists xvmsg-bench || xv_fail "dom0 made no xvmsg-bench directory"
xenstore-write xvmsg-bench/ready 1 || xv_fail "xenstore"
xv_mark "bench ready"
go=$(xv_read_wait 600 xvmsg-bench/go) || xv_fail "dom0 never said go"
set -- $go
REPS=$1 SECS=$2 SIZE=$3 VDEV=$4

for s in pool grant full; do
	xv_wait 120 xv_disk_with_serial "$s" >/dev/null || { dmesg | tail -20; fail "no $s disk"; }
	eval "dev_$s=/dev/$(xv_disk_with_serial "$s")"
	# The xenbus device of the module under this virtio disk: its counters.
	x=$(readlink -f "/sys/block/$(xv_disk_with_serial "$s")/device" | grep -o 'xvmsg-[0-9]*' | head -n1)
	[ -n "$x" ] || fail "no xvmsg device under the $s disk"
	eval "ctr_$s=/sys/bus/xen/devices/$x/xvmsg"
done
xv_wait 120 test -b "/dev/$VDEV" || { dmesg | tail -20; fail "no xen-blkfront disk /dev/$VDEV"; }
dev_blk=/dev/$VDEV
echo "xvmsg: disks pool $dev_pool grant $dev_grant full $dev_full blk $dev_blk"
echo "xvmsg: blkfront: $(dmesg | grep -i 'blkfront' | tail -n 2 | tr '\n' ' ')"
for d in $dev_pool $dev_grant $dev_full $dev_blk; do
	echo "xvmsg: $d: $(cat /sys/block/${d#/dev/}/size) sectors, max_sectors_kb $(cat /sys/block/${d#/dev/}/queue/max_sectors_kb), max_segments $(cat /sys/block/${d#/dev/}/queue/max_segments)"
done

# Counters on this side: the module's for xvmsg disks, the interrupts of
# blkfront's event channel for the PV disk.
GCTR="grants revokes bounce_in_bytes bounce_out_bytes pool_full kicks irqs_vq irqs_msg irqs_spurious"
gctr() {
	local c out=
	if [ "$1" = blk ]; then
		awk '/blkif/ && !/backend/ { n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; t += n } END { printf "irqs=%d", t }' /proc/interrupts
		return
	fi
	eval "c=\$ctr_$1"
	for k in $GCTR; do out="$out,$k=$(cat "$c/$k")"; done
	echo "${out#,}"
}

SEQ=0
# snap: dom0 prints every disk's backend counters, one XVMSG-BENCH-SNAP
# seq=SEQ dev=D line each.
snap() {
	SEQ=$((SEQ + 1))
	xenstore-write xvmsg-bench/snap "$SEQ all" || fail "xenstore"
	xv_wait 90 sh -c "[ \"\$(xenstore-read xvmsg-bench/ack 2>/dev/null)\" = $SEQ ]" ||
		fail "dom0 did not answer snapshot $SEQ"
}

FIO_COMMON="--ioengine=libaio --direct=1 --numjobs=1 --norandommap --randrepeat=0 --percentile_list=50:99 --disk_util=0"
for dv in pool grant full blk; do
	eval "d=\$dev_$dv"
	t0=$(xv_uptime)
	fio --name=fill --filename="$d" --rw=write --bs=1M --iodepth=4 --size="${SIZE}M" $FIO_COMMON \
		--minimal >/dev/null || fail "fill $dv"
	fio --name=verify --filename="$d" --rw=randwrite --bssplit=4k/50:256k/50 --iodepth=16 \
		--size=8M --verify=crc32c --do_verify=1 --verify_fatal=1 $FIO_COMMON --minimal \
		>/run/verify.out 2>&1
	rc=$?
	# Terse field 5 is fio's error number.
	err=$(grep '^3;' /run/verify.out | cut -d';' -f5 | head -n1)
	echo "XVMSG-BENCH-VERIFY dev=$dv rc=$rc err=${err:-none} secs=$(($(xv_uptime) - t0))"
	[ "$rc" = 0 ] && [ "$err" = 0 ] || { cat /run/verify.out; fail "fio verify on the $dv disk: rc $rc"; }
done

# Workloads: name rw bs qd.
WLS="randread4k:randread:4k:1 randread4k:randread:4k:32 randwrite4k:randwrite:4k:1
	randwrite4k:randwrite:4k:32 seqread256k:read:256k:8 seqwrite256k:write:256k:8"
DEVS="pool grant full blk"
# One fio run per repetition and workload: a job per disk, one after the
# other (stonewall), so fio starts once (seconds under TCG), not four times.
# Each disk's counters change only during its own job, so one snapshot of
# all of them before and one after give every job its own deltas.
ncells=0
r=1
while [ "$r" -le "$REPS" ]; do
	wi=0
	for w in $WLS; do
		IFS=: read -r wl rw bs qd <<EOW
$w
EOW
		# Rotate the disks' order by repetition and workload.
		k=$(((r + wi) % 4))
		order=$(echo $DEVS $DEVS | cut -d' ' -f$((k + 1))-$((k + 4)))
		jobs=
		for dv in $order; do
			eval "d=\$dev_$dv"
			jobs="$jobs --name=$dv --filename=$d --stonewall"
		done
		snap
		s0=$SEQ
		for dv in $DEVS; do eval "g0_$dv=\$(gctr $dv)"; done
		t0=$(xv_uptime)
		# shellcheck disable=SC2086
		out=$(timeout $((4 * SECS + 120)) fio --rw="$rw" --bs="$bs" --iodepth="$qd" \
			--size="${SIZE}M" --time_based --runtime="$SECS" $FIO_COMMON --minimal $jobs 2>&1)
		rc=$?
		if [ "$rc" = 124 ] || [ "$rc" = 143 ]; then
			echo "$out" | tail -n 5
			echo w >/proc/sysrq-trigger
			dmesg | tail -n 60
			fail "fio $wl QD $qd ($order) hung for $((4 * SECS + 120)) s"
		fi
		for dv in $DEVS; do eval "g1_$dv=\$(gctr $dv)"; done
		snap
		for dv in $order; do
			eval "g0=\$g0_$dv g1=\$g1_$dv"
			echo "XVMSG-BENCH-CELL rep=$r dev=$dv wl=$wl qd=$qd snap0=$s0 snap1=$SEQ rc=$rc secs=$(($(xv_uptime) - t0)) g0=$g0 g1=$g1"
			echo "XVMSG-BENCH-FIO snap0=$s0 dev=$dv $(echo "$out" | grep "^3;[^;]*;$dv;" | head -n1)"
			ncells=$((ncells + 1))
		done
		[ "$rc" = 0 ] || { echo "$out" | tail -5; fail "fio $wl QD $qd: rc $rc"; }
		wi=$((wi + 1))
	done
	r=$((r + 1))
done
xv_mark "bench done: $ncells cells"
xenstore-write xvmsg-bench/done ok
