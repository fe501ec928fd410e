#!/bin/sh
# SPDX-License-Identifier: MIT
# End-to-end test, driver-domain side: run xvmsg-backend unprivileged on the
# Xen bus over disk images in RAM; restart it (kill -9) when dom0 asks, twice
# (the second time under sustained writes); show that it maps nothing of a
# guest that powered off with devices attached; report that it survived the
# malicious driver (in a second guest) and its CPU time; show that it holds
# nothing once the devices are gone.
. /etc/xvmsg/lib.sh

for dev in evtchn gntdev xenbus; do
	[ -c /dev/xen/$dev ] || xv_fail "no /dev/xen/$dev"
done
caps=$(cat /proc/xen/capabilities 2>/dev/null)
echo "xvmsg: /proc/xen/capabilities: '${caps:-none}' (dom0 would say control_d)"
case "$caps" in *control_d*) xv_fail "the driver domain must not be privileged" ;; esac

truncate -s 16M /run/disk.img || xv_fail "cannot create the disk image"
# For the malicious driver (a disk to abuse, a witness disk) and the second guest.
truncate -s 4M /run/evil.img && truncate -s 1M /run/witness.img &&
	truncate -s 4M /run/disk2.img || xv_fail "cannot create the extra images"
LOG=/run/xvmsg-backend.log
# As the xvmsg-backend service runs it: the packaged settings file
# (debian/conf/backend.conf: xen bus, full mode off).
start_backend() {
	xvmsg-backend --config /etc/xvmsg/backend.conf >>"$LOG" 2>&1 &
	echo $! >/run/xvmsg-backend.pid
}
start_backend
# The backend's log as it comes, on this console (busybox: no grep
# --line-buffered, no sed -u): when the plan fails, dom0 copies the console
# and the log shows how far each device came.
tail -f "$LOG" 2>/dev/null | while IFS= read -r l; do echo "xvmsg-backend| $l"; done &
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

# gntdev mappings of the backend, and its CPU time (user + system, ms).
gnt_maps() {
	grep -c gntdev "/proc/$1/maps" 2>/dev/null
}
cpu_ms() {
	awk '{ print ($14 + $15) * 10 }' "/proc/$1/stat" 2>/dev/null
}
alive() {
	[ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status"
}

# Again, at a random moment while the guest writes and flushes.
xv_wait 600 xenstore-exists xvmsg-e2e/restart2 || xv_fail "dom0 never asked for the second restart"
sleep "0.$(shuf -i 0-9 -n 1)"
pid=$(cat /run/xvmsg-backend.pid)
kill -9 "$pid"
wait "$pid" 2>/dev/null
echo "xvmsg: backend (pid $pid) killed with SIGKILL under sustained writes"
start_backend
xv_wait 20 sh -c "grep -c 'serving on xen bus' $LOG | grep -q 3" || { cat "$LOG"; xv_fail "restart failed"; }
xv_mark "backend restarted again"

# The guest powers off with its devices attached: the backend must let go
# of every grant it mapped, and keep serving.
xv_wait 600 xenstore-exists xvmsg-e2e/premaps || xv_fail "dom0 never asked for the mappings"
pid=$(cat /run/xvmsg-backend.pid)
# Never print an empty count: gnt_maps says nothing when /proc/$pid is gone.
alive "$pid" || { sed 's/^/  | /' "$LOG"; xv_fail "the backend (pid $pid) is not running while the guest holds its devices"; }
# The guest is writing, so the backend maps its pool; wait (bounded) for it.
xv_wait 15 sh -c "[ \"\$(grep -c gntdev /proc/$pid/maps 2>/dev/null)\" -gt 0 ]"
n=$(gnt_maps "$pid")
[ -n "$n" ] && alive "$pid" ||
	{ sed 's/^/  | /' "$LOG"; xv_fail "the backend (pid $pid) died while the guest holds its devices"; }
# dom0 reads the number from this console line; "(backend pid N)" closes it,
# so dom0 can tell a whole line from one xenconsoled has only partly written.
xv_mark "grant mappings before shutdown: $n (backend pid $pid)"
xv_wait 600 xenstore-exists xvmsg-e2e/guestgone || xv_fail "dom0 never said the guest is gone"
xv_wait 30 sh -c "[ \"\$(grep -c gntdev /proc/$pid/maps)\" -eq 0 ]" ||
	xv_fail "backend still maps $(gnt_maps "$pid") grant regions of a guest that is gone"
alive "$pid" || xv_fail "the backend died when the guest powered off"
xv_mark "released after guest shutdown: 0 grant mappings, backend pid $pid alive"

# The malicious driver: the backend must come out of it alive, not restarted.
xv_wait 600 xenstore-exists xvmsg-e2e/evil-begin || xv_fail "dom0 never started the evil run"
pid=$(cat /run/xvmsg-backend.pid)
cpu0=$(cpu_ms "$pid")
xv_mark "backend cpu before evil: ${cpu0}ms"
xv_wait 600 xenstore-exists xvmsg-e2e/evil-done || xv_fail "dom0 never finished the evil run"
alive "$pid" || { cat "$LOG"; xv_fail "the backend died during the evil run"; }
[ "$(cat /run/xvmsg-backend.pid)" = "$pid" ] && [ "$(grep -c 'serving on xen bus' "$LOG")" -eq 3 ] ||
	xv_fail "the backend was restarted during the evil run"
cpu1=$(cpu_ms "$pid")
# Nothing the malicious driver did may leave the backend busy: over the
# next 2 s it must use under 20 % of a CPU (idle, it uses about nothing).
sleep 2
cpu2=$(cpu_ms "$pid")
[ $((cpu2 - cpu1)) -lt 400 ] ||
	{ cat "$LOG"; xv_fail "the backend stays busy after the evil run: +$((cpu2 - cpu1))ms in 2 s"; }
xv_mark "backend alive after evil: pid $pid, cpu ${cpu1}ms (${cpu0}ms before, +$((cpu1 - cpu0))ms), then +$((cpu2 - cpu1))ms in 2 s idle"

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
