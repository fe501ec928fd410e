#!/bin/sh
# SPDX-License-Identifier: MIT
# shellcheck shell=dash
# Smoke test plan, dom0 side.  Boots the driver domain and the guest in
# parallel, waits for each to come up, gives each the other's domid in a
# xenstore directory it owns and the other may read, and waits until both
# report that a page was shared (gntalloc -> gntdev) and an interdomain
# event channel fired both ways.  Exit 0 = PASS; on failure xv_fail
# records the reason that /init prints in XVMSG-RESULT.
# shellcheck source=scripts/xen/init/lib.sh
. /etc/xvmsg/lib.sh

UP_TIMEOUT=150
SHARE_TIMEOUT=90

xv_xl_create_both

xv_wait_console "$UP_TIMEOUT" xvmsg-driver "XVMSG-MARK driver up" \
	xvmsg-guest "XVMSG-MARK guest up" || xv_fail "$XV_WHY"
xv_stage "driver domain and guest up"

# Wiring, the toolstack's job: /local/domain/<self>/xvmsg-smoke is owned by
# the domain itself (it writes its keys there) and readable by its peer.
d=$(xv_domid xvmsg-driver) || xv_fail "xvmsg-driver has no domid"
g=$(xv_domid xvmsg-guest) || xv_fail "xvmsg-guest has no domid"
for pair in "$d $g" "$g $d"; do
	# shellcheck disable=SC2086
	set -- $pair
	dir=/local/domain/$1/xvmsg-smoke
	xenstore-write "$dir/peer" "$2" || xv_fail "xenstore-write $dir/peer"
	xenstore-chmod -r "$dir" "n$1" "r$2" || xv_fail "xenstore-chmod $dir"
done
xv_stage "xenstore wired: driver $d, guest $g"

xv_wait_console "$SHARE_TIMEOUT" xvmsg-guest "XVMSG-MARK guest share ok" \
	xvmsg-driver "XVMSG-MARK driver share ok" || xv_fail "$XV_WHY"
xv_stage "page shared and event channel signalled both ways"
exit 0
