#!/bin/sh
# SPDX-License-Identifier: MIT
# The network of an xvmsg driver domain: a bridge and one persistent tap per
# guest NIC, which xvmsg-backend's net exports attach to (docs/backend.md,
# "Networks").  Run once at boot in the driver domain, as root:
#
#   xvmsg-net-bridge.sh [--user USER] [--uplink IFACE] BRIDGE TAP...
#
# e.g.  xvmsg-net-bridge.sh --user xvmsg --uplink eth0 xvbr0 xvtap-g1 xvtap-g2
#
# --user makes USER the taps' owner: the packaged backend runs as the
# unprivileged user xvmsg, which may attach to taps it owns but not create
# them (that needs CAP_NET_ADMIN).
# then  xvmsg-ctl attach guest1 xvmsg-driver net tap=xvtap-g1,mac=52:54:00:00:01:01
#
# Guests on the same bridge reach each other through it; with --uplink the
# driver domain's interface joins the bridge too (move its address to the
# bridge yourself, or route and NAT from the bridge instead).  Safe to run
# again: what exists is left as it is.  Without iproute2 (busybox's ip has
# no "type bridge" and no tuntap) it uses busybox's brctl and tunctl: the
# reference driver domain's image does (tests/xen/kmod).
set -eu
uplink= user=
while [ $# -gt 0 ]; do
	case $1 in
	--uplink) uplink=$2; shift 2 ;;
	--user) user=$2; shift 2 ;;
	*) break ;;
	esac
done
if [ $# -lt 2 ]; then
	echo "usage: $0 [--user USER] [--uplink IFACE] BRIDGE TAP..." >&2
	exit 2
fi
br=$1
shift
ip link show "$br" >/dev/null 2>&1 || ip link add "$br" type bridge 2>/dev/null || brctl addbr "$br"
ip link set "$br" up
for tap in "$@"; do
	# vnet_hdr: the backend speaks virtio-net headers to the tap
	# (busybox's tunctl: the backend asks for vnet_hdr when it attaches)
	ip link show "$tap" >/dev/null 2>&1 ||
		ip tuntap add dev "$tap" mode tap vnet_hdr ${user:+user "$user"} 2>/dev/null ||
		tunctl ${user:+-u "$user"} -t "$tap" >/dev/null
	ip link set "$tap" master "$br" 2>/dev/null || brctl addif "$br" "$tap"
	ip link set "$tap" up
done
if [ -n "$uplink" ]; then
	ip link set "$uplink" master "$br" 2>/dev/null || brctl addif "$br" "$uplink"
fi
