#!/bin/sh
# SPDX-License-Identifier: MIT
# shellcheck shell=dash
# Smoke test plan, driver-domain side: read the guest's grant reference and
# port from the guest's xenstore directory, map the page, bind the channel,
# answer and wait for the acknowledgement.
# shellcheck source=scripts/xen/init/lib.sh
. /etc/xvmsg/lib.sh

for d in evtchn gntdev xenbus; do
	[ -c /dev/xen/$d ] || xv_fail "no /dev/xen/$d"
done
peer=$(xv_read_wait 150 xvmsg-smoke/peer) || xv_fail "no xvmsg-smoke/peer from dom0"
port=$(xv_read_wait 90 "/local/domain/$peer/xvmsg-smoke/port") ||
	xv_fail "guest $peer published no port"
gref=$(xenstore-read "/local/domain/$peer/xvmsg-smoke/gref") || xv_fail "no gref"
gntshare accept "$peer" "$gref" "$port" 60 || xv_fail "gntshare accept failed"
xv_mark "share ok"
