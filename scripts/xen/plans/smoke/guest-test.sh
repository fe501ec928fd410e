#!/bin/sh
# SPDX-License-Identifier: MIT
# shellcheck shell=dash
# Smoke test plan, guest side: offer one granted page and an unbound event
# channel to the driver domain whose domid dom0 puts in xvmsg-smoke/peer;
# publish the grant reference and port next to it.
# shellcheck source=scripts/xen/init/lib.sh
. /etc/xvmsg/lib.sh

for d in evtchn gntalloc xenbus; do
	[ -c /dev/xen/$d ] || xv_fail "no /dev/xen/$d"
done
peer=$(xv_read_wait 150 xvmsg-smoke/peer) || xv_fail "no xvmsg-smoke/peer from dom0"
out=/run/xvmsg/offer
gntshare offer "$peer" "$out" 90 &
pid=$!
xv_wait 30 test -s "$out" || xv_fail "gntshare offer published nothing"
read -r gref port <"$out"
# Both keys in one transaction; they inherit the directory's permissions.
xenstore-write xvmsg-smoke/gref "$gref" xvmsg-smoke/port "$port" ||
	xv_fail "xenstore-write gref/port"
xv_mark "offered gref $gref port $port to domain $peer"
wait "$pid" || xv_fail "gntshare offer failed"
xv_mark "share ok"
