# SPDX-License-Identifier: MIT
# shellcheck shell=dash disable=SC2034
# The network part of the kmod plan (issue 13), shared by the driver domain
# and both guests: . /etc/xvmsg/net-lib.sh after lib.sh.
#
# The driver domain bridges the taps of both guests' NICs (br0, 10.9.0.1);
# guest 1 is 10.9.0.11 on xvtap1, guest 2 (xvmsg-guest2) 10.9.0.12 on
# xvtap2.  dom0 drives every step (net-dom0.sh): it writes a shell command
# to /local/domain/ID/xvmsg-e2e/netN, the domain's agent runs it and says
# "XVMSG-MARK ROLE net N ok" (or FAIL) on its console.  Data goes over TCP
# through busybox's httpd and wget (its nc ends a transfer at 1 KiB when
# stdin ends); the sender prints the SHA-256 of what it serves, the
# receiver compares the one dom0 passes on.

NET_BR=br0
NET_BR_IP=10.9.0.1
NET_PORT=8080
NET_MAC1=52:54:00:9a:00:01
NET_MAC2=52:54:00:9a:00:02
NET_IP1=10.9.0.11
NET_IP2=10.9.0.12
# Guest 1's NIC from a lying backend in dom0 (net-dom0.sh, net_lying_nic):
# its own subnet, dom0's tap xvlie at the other end.
NET_MAC_LIE=52:54:00:9a:00:0e
NET_LIE_IP=10.9.1.11
NET_LIE_PEER=10.9.1.1

# net_ifname MAC: NET_IF, the interface with that address; 1 if none.
# Builtins only: the watcher below runs it every second under TCG.
net_ifname() {
	local i a
	NET_IF=
	for i in /sys/class/net/*; do
		a=
		read -r a <"$i/address" 2>/dev/null
		[ "$a" = "$1" ] && { NET_IF=${i##*/}; return 0; }
	done
	return 1
}

# net_keep MAC IP: until net_stop, every second: give the interface with MAC
# the address IP and bring it up whenever it (re)appears (a new ifindex),
# and print each change of its state: gone (no such interface: detached,
# or the device went with its backend), down (no carrier: the tap is down)
# or up.  The lines "xvmsg-net: MAC IF STATE (uptime N)" are what dom0
# reads.
net_keep() {
	local prev=none st idx seen= c up _
	echo $$ >/run/net-keep.pid
	while [ -e /run/net-keep.pid ]; do
		if ! net_ifname "$1"; then
			st=gone seen=
		else
			idx=
			read -r idx <"/sys/class/net/$NET_IF/ifindex" 2>/dev/null
			if [ "$idx" != "$seen" ]; then
				ip addr add "$2/24" dev "$NET_IF" 2>/dev/null
				ip link set "$NET_IF" up && seen=$idx
			fi
			c=
			read -r c <"/sys/class/net/$NET_IF/carrier" 2>/dev/null
			if [ "$c" = 1 ]; then st=up; else st=down; fi
		fi
		if [ "$st" != "$prev" ]; then
			read -r up _ </proc/uptime
			echo "xvmsg-net: $1 ${NET_IF:--} $st (uptime $up)"
			prev=$st
		fi
		sleep 1
	done
}

# net_agent: serve /run/www over HTTP and run dom0's commands, in order,
# until the command "exit" (net_stop).
net_agent() {
	local n=1 cmd
	mkdir -p /run/www
	httpd -f -p "$NET_PORT" -h /run/www &
	echo $! >/run/net-httpd.pid
	while :; do
		# Blocks on a xenstore watch between reads, instead of reading
		# every 0.4 s: each read forks, and under TCG three domains
		# doing that for the whole run slowed every stage.  The watch
		# fires once when set and again at the next change below
		# xvmsg-e2e (-n 2); the timeout bounds a change that came in
		# between; a watch that fails falls back to a short sleep.
		while ! cmd=$(xenstore-read "xvmsg-e2e/net$n" 2>/dev/null); do
			timeout 5 xenstore-watch -n 2 xvmsg-e2e >/dev/null 2>&1 || sleep 0.4
		done
		[ "$cmd" = exit ] && break
		if (eval "$cmd"); then
			xv_mark "net $n ok"
		else
			xv_mark "FAIL: net $n: $cmd"
		fi
		n=$((n + 1))
	done
	rm -f /run/net-keep.pid
	kill "$(cat /run/net-httpd.pid)" 2>/dev/null
	xv_mark "net $n ok (agent stopped)"
}

# net_serve NAME MIB: NAME, MIB MiB of random bytes, served (instead of the
# one before: tmpfs is RAM, guest 2 has little); its sum printed.
net_serve() {
	rm -f /run/www/*
	dd if=/dev/urandom of="/run/www/$1" bs=1M count="$2" 2>/run/dd.err ||
		{ cat /run/dd.err; df /run; free; return 1; }
	echo "XVMSG-NETSUM $1 $(sha256sum <"/run/www/$1" | cut -d' ' -f1)"
}

# net_fetch IP NAME SUM [SECS]: fetch NAME from IP over TCP, compare its
# SHA-256; give up after SECS (default 240).
net_fetch() {
	local t0 got
	t0=$(cut -d' ' -f1 /proc/uptime)
	# (busybox 1.35's wget -T crashes: timeout bounds it instead).  A hang
	# guard, not a speed test: a loaded host took 114 s for 8 MiB.
	got=$(timeout "${4:-240}" wget -q -O - "http://$1:$NET_PORT/$2" | sha256sum | cut -d' ' -f1)
	echo "xvmsg-net: $2 from $1: $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }') s, sha256 $got"
	[ "$got" = "$3" ] || { echo "xvmsg-net: $2: want sha256 $3"; return 1; }
}

# net_ping IP: three echoes answered.
net_ping() {
	ping -c 3 -W 5 "$1" | tail -2
	ping -c 1 -W 10 "$1" >/dev/null
}

# net_link IFACE up|down: the driver domain's tap up or down (the guest's
# NIC follows through EVENT_CONFIG).
net_link() {
	ip link set "$1" "$2"
}

# net_counters DEVID MAC: the module's counters of the NIC's xvmsg device
# and the interface's, on one line each.
net_counters() {
	local d=/sys/bus/xen/devices/xvmsg-$1/xvmsg k line=
	for k in pool_pages pool_used_bytes pool_full map_errors config_events bounce_in_bytes bounce_out_bytes; do
		line="$line $k $(cat "$d/$k" 2>/dev/null)"
	done
	echo "xvmsg-net: xvmsg-$1:$line"
	net_ifname "$2" || return 0
	line=
	for k in rx_packets tx_packets rx_dropped tx_dropped rx_errors tx_errors; do
		line="$line $k $(cat "/sys/class/net/$NET_IF/statistics/$k")"
	done
	echo "xvmsg-net: $NET_IF:$line"
}

# net_config_events DEVID N: the module passed at least N config changes
# (EVENT_CONFIG) of the device on.
net_config_events() {
	[ "$(cat "/sys/bus/xen/devices/xvmsg-$1/xvmsg/config_events")" -ge "$2" ]
}

# net_quiet_lie MAC IP PEER: the NIC with MAC (net-dom0.sh, net_lying_nic)
# gets IP; PEER is pinged; after the soft-lockup detector's 20 s, the NIC
# must have received and no soft lockup or RCU stall may have been
# reported since the start.
net_quiet_lie() {
	local i=0 n0 n1 rx tx re='soft lockup|rcu_.*(stall|self-detected)|hung_task'
	until net_ifname "$1"; do
		i=$((i + 1))
		[ "$i" -le 60 ] || { echo "xvmsg-net: no interface with $1"; return 1; }
		sleep 0.5
	done
	n0=$(dmesg | grep -cE "$re")
	ip addr add "$2/24" dev "$NET_IF" && ip link set "$NET_IF" up || return 1
	ping -c 5 -W 2 "$3" | tail -2
	sleep 25
	rx=$(cat "/sys/class/net/$NET_IF/statistics/rx_packets")
	tx=$(cat "/sys/class/net/$NET_IF/statistics/tx_packets")
	echo "xvmsg-net: $NET_IF (quiet-bad-id): rx_packets $rx tx_packets $tx"
	n1=$(dmesg | grep -cE "$re")
	if [ "$n1" -ne "$n0" ]; then
		dmesg | grep -E -A12 "$re" | tail -40
		echo "xvmsg-net: $NET_IF: a soft lockup or stall"
		return 1
	fi
	[ "$rx" -gt 0 ] || { echo "xvmsg-net: $NET_IF received nothing: its receive path never ran"; return 1; }
}

# net_gone MAC: the interface with MAC went away within 60 s.
net_gone() {
	local i=0
	while net_ifname "$1"; do
		i=$((i + 1))
		[ "$i" -le 120 ] || { echo "xvmsg-net: $NET_IF ($1) still there"; return 1; }
		sleep 0.5
	done
}
