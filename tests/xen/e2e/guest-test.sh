#!/bin/sh
# SPDX-License-Identifier: MIT
# End-to-end test, guest side: a userspace xvmsg frontend (xvmsg-guest-check,
# driver/ on the Xen bus, pool mode) uses the devices dom0 attached.
. /etc/xvmsg/lib.sh

for dev in evtchn gntalloc xenbus; do
	[ -c /dev/xen/$dev ] || xv_fail "no /dev/xen/$dev"
done
xv_mark "up"
set -- $(xv_read_wait 300 xvmsg-e2e/devices) || xv_fail "dom0 never attached devices"
blk=$1 rng=$2 seed=$3
[ -n "$seed" ] || xv_fail "bad device list from dom0"

xvmsg-guest-check blk-write "$blk" "$seed" || xv_fail "blk write"
xvmsg-guest-check blk-verify "$blk" "$seed" || xv_fail "blk verify"
xvmsg-guest-check rng "$rng" 4096 || xv_fail "rng"
xv_mark "io done"
xvmsg-guest-check blk-survive "$blk" "$seed" 180 || xv_fail "blk across the backend restart"
xv_mark "reconnected"
