#!/bin/sh
# SPDX-License-Identifier: MIT
# End-to-end test, driver-domain side: run xvmsg-backend unprivileged on the
# Xen bus over a disk image in RAM; restart it (kill -9) when dom0 asks;
# show its counters and that it holds nothing once the devices are gone.
. /etc/xvmsg/lib.sh

for dev in evtchn gntdev xenbus; do
	[ -c /dev/xen/$dev ] || xv_fail "no /dev/xen/$dev"
done
caps=$(cat /proc/xen/capabilities 2>/dev/null)
echo "xvmsg: /proc/xen/capabilities: '${caps:-none}' (dom0 would say control_d)"
case "$caps" in *control_d*) xv_fail "the driver domain must not be privileged" ;; esac

truncate -s 16M /run/disk.img || xv_fail "cannot create the disk image"
LOG=/run/xvmsg-backend.log
start_backend() {
	xvmsg-backend --bus xen --log-level info --no-full >>"$LOG" 2>&1 &
	echo $! >/run/xvmsg-backend.pid
}
start_backend
xv_wait 20 grep -q "serving on xen bus" "$LOG" || { cat "$LOG"; xv_fail "xvmsg-backend did not start"; }
grep "serving on xen bus" "$LOG"
xv_mark "backend up"

xv_wait 600 xenstore-exists xvmsg-e2e/restart || xv_fail "dom0 never asked for the restart"
pid=$(cat /run/xvmsg-backend.pid)
kill -9 "$pid"
wait "$pid" 2>/dev/null
echo "xvmsg: backend (pid $pid) killed with SIGKILL"
start_backend
xv_wait 20 sh -c "grep -c 'serving on xen bus' $LOG | grep -q 2" || { cat "$LOG"; xv_fail "restart failed"; }
xv_mark "backend restarted"

xv_wait 600 xenstore-exists xvmsg-e2e/done || xv_fail "dom0 never finished"
pid=$(cat /run/xvmsg-backend.pid)
# After detach: no device left, no grant of the guest mapped.
xv_wait 20 sh -c "grep -c 'removed' $LOG | grep -qv '^0$'" || xv_fail "backend did not remove the devices"
mapped=$(grep -c gntdev "/proc/$pid/maps" 2>/dev/null)
echo "xvmsg: backend mappings of /dev/xen/gntdev after detach: ${mapped:-0}"
[ "${mapped:-0}" -eq 0 ] || xv_fail "backend still maps $mapped grant regions"
kill -TERM "$pid"
wait "$pid" 2>/dev/null
echo "xvmsg: backend log:"
sed 's/^/  | /' "$LOG"
xv_mark "devices released"
