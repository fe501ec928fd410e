#!/bin/sh
# SPDX-License-Identifier: MIT
# The second guest of the kmod plan (xvmsg-guest2, the guest image booted
# with xvmsg_role=guest2): a pool-mode disk, a NIC and an rng from the same
# driver domain, attached and detached by dom0 at runtime (net-dom0.sh),
# the module loaded once.  Everything it does is a command of dom0's
# (net-lib.sh, net_agent), so it has no sequence of its own.
. /etc/xvmsg/lib.sh
. /etc/xvmsg/net-lib.sh

xv_modprobe virtio_blk virtio_rng virtio_net || xv_fail "virtio drivers"
modprobe xvmsg || xv_fail "modprobe xvmsg"
xv_mark "module loaded"

# g2_disk SERIAL: the disk with that serial appears; 2 MiB written and read
# back with O_DIRECT.
g2_disk() {
	local d
	xv_wait 60 xv_disk_with_serial "$1" >/dev/null || { dmesg | tail -20; return 1; }
	d=/dev/$(xv_disk_with_serial "$1")
	dd if=/dev/urandom of=/run/pat bs=1M count=2 2>/dev/null
	dd if=/run/pat of="$d" bs=64k oflag=direct conv=fsync 2>/dev/null || return 1
	dd if="$d" of=/run/back bs=64k count=32 iflag=direct 2>/dev/null || return 1
	cmp /run/pat /run/back || return 1
	echo "xvmsg: guest2: $d ($1): 2 MiB written and read back"
}
# g2_transport_bits SERIAL: of virtio's transport feature bits (24..41) the
# disk with that serial negotiated only what the protocol carries:
# INDIRECT_DESC (28), VERSION_1 (32), ACCESS_PLATFORM (33); event indices
# (29) the module clears itself.  Its backend offered all of them
# (--fault extra-features): 7.x's virtio_ring would keep IN_ORDER (35).
g2_transport_bits() {
	local d f bit bad=
	d=$(xv_disk_with_serial "$1") || return 1
	f=$(cat "/sys/block/$d/device/features") || return 1
	for bit in $(seq 24 41); do
		case $bit in 28 | 32 | 33) continue ;; esac
		[ "$(echo "$f" | cut -c$((bit + 1)))" = 0 ] || bad="$bad $bit"
	done
	echo "xvmsg: guest2 (Linux $(uname -r)): $d ($1): features $f; transport bits beyond 28, 32, 33:${bad:- none}"
	[ -z "$bad" ]
}
# g2_rng: virtio_rng is a hw_random source and gives bytes.
g2_rng() {
	xv_wait 60 grep -q virtio /sys/class/misc/hw_random/rng_available || return 1
	[ "$(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | wc -c)" -eq 32 ] || return 1
	echo "xvmsg: guest2: hwrng $(cat /sys/class/misc/hw_random/rng_current)"
}
g2_nic_gone() { ! net_ifname "$NET_MAC2" >/dev/null; }
# g2_all_gone: after dom0 detached them: no disk, no virtio rng, no NIC,
# no xvmsg device left; the module still loaded.
g2_all_gone() {
	xv_wait 60 sh -c '! ls /sys/block | grep -q vd' || { echo "xvmsg: guest2: disk still there"; return 1; }
	xv_wait 60 sh -c '! grep -q virtio /sys/class/misc/hw_random/rng_available' ||
		{ echo "xvmsg: guest2: virtio rng still there"; return 1; }
	xv_wait 60 g2_nic_gone || { echo "xvmsg: guest2: NIC still there"; return 1; }
	xv_wait 60 sh -c '! ls /sys/bus/xen/devices | grep -q xvmsg' || { echo "xvmsg: guest2: xvmsg devices left"; return 1; }
	grep -q "^xvmsg " /proc/modules || return 1
	echo "xvmsg: guest2: disk, rng and NIC gone, xvmsg.ko still loaded"
}

net_keep "$NET_MAC2" "$NET_IP2" &
net_agent
