#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest kernel module test, driver-domain side: the backend (unprivileged)
# serves two disks, an rng and a console whose host side is a pty.
. /etc/xvmsg/lib.sh
. /etc/xvmsg/net-lib.sh

truncate -s 32M /run/disk0.img && truncate -s 8M /run/disk1.img &&
	truncate -s 16M /run/small16.img /run/small64.img /run/small128.img || xv_fail "images"
truncate -s 8M /run/disk2.img || xv_fail "images"	# guest 2's
# The network (net-dom0.sh): br0 with an address, a persistent tap per
# guest NIC in it, before the backend attaches to them.
xvmsg-net-bridge.sh "$NET_BR" xvtap1 xvtap2 && ip addr add "$NET_BR_IP/24" dev "$NET_BR" &&
	echo 0 >"/sys/class/net/$NET_BR/bridge/forward_delay" || xv_fail "bridge and taps"
net_agent &
LOG=/run/xvmsg-backend.log
# Two queue threads: the blk queues (the pool disk's two, each other
# disk's one) are served there, the rest on the event loop's thread;
# dom0's full-mode backend has none (dom0-test.sh checks both).
xvmsg-backend --bus xen --log-level info --no-full --queue-threads 2 >"$LOG" 2>&1 &
pid=$!
xv_wait 20 grep -q "serving on xen bus" "$LOG" || { cat "$LOG"; xv_fail "backend did not start"; }
xv_mark "backend up"
# The backend's log as it comes (busybox: no grep --line-buffered, no sed
# -u), info lines too (a few per device), each with this domain's uptime
# when it was read: a connection that does not happen shows how far it
# came, and how fast, even when the plan fails before the log is printed
# below.
tail -f "$LOG" | while IFS= read -r l; do
	read -r up _ </proc/uptime
	echo "xvmsg-backend| [$up] $l"
done &
xv_wait 300 test -e /run/con0 || { cat "$LOG"; xv_fail "no console pty"; }
# The guest writes a line to its hvc port: it arrives here.
xv_wait 200 sh -c "timeout 1 cat /run/con0 >>/run/con0.out; grep -q 'hello from the guest kernel' /run/con0.out" ||
	{ cat "$LOG"; xv_fail "nothing from the guest's console"; }
xv_mark "console ok"
xv_wait 600 xenstore-exists xvmsg-e2e/restart || xv_fail "dom0 never asked for the restart"
kill -9 "$pid"
echo "xvmsg: backend (pid $pid) killed with SIGKILL under I/O"
sleep 2
xvmsg-backend --bus xen --log-level info --no-full --queue-threads 2 >>"$LOG" 2>&1 &
pid=$!
xv_wait 20 sh -c "grep -c 'serving on xen bus' $LOG | grep -q 2" || xv_fail "restart failed"
xv_mark "backend restarted"
xv_wait 600 sh -c "grep -q 'console4(dom[0-9]*): removed' $LOG" || xv_fail "devices never removed"
echo "xvmsg: backend log:"
sed 's/^/  | /' "$LOG"
# The backend keeps serving until dom0 shuts this domain down (xl shutdown):
# the kernel runs poweroff_cmd, which stops the backend like an init system
# would (SIGTERM, bounded), then powers off.
cat >/run/xvmsg-poweroff <<EOF
#!/bin/sh
exec >/dev/console 2>&1
echo "XVMSG-MARK driver shutting down: SIGTERM to the backend"
kill -TERM $pid
i=0
while kill -0 $pid 2>/dev/null && [ \$i -lt 10 ]; do sleep 1; i=\$((i + 1)); done
tail -n 3 $LOG | sed 's/^/  | /'
poweroff -f
EOF
chmod +x /run/xvmsg-poweroff && echo /run/xvmsg-poweroff >/proc/sys/kernel/poweroff_cmd ||
	xv_fail "poweroff_cmd"
xv_mark "serving until shutdown"
