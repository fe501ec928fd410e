# SPDX-License-Identifier: MIT
# shellcheck shell=dash
# The network stages of the kmod plan, dom0 side (issue 13); sourced by
# dom0-test.sh, which calls them at their places in its sequence:
#
#   net_start_guest2    xl create of the second guest (with the others)
#   net_attach          guest 2's pool disk, NIC and rng; guest 1's NIC
#   net_stages          ping and checksummed TCP transfers guest -> driver
#                       domain and guest -> guest through the bridge; the
#                       tap's link down and up seen in the guest; guest 1's
#                       NIC detached while guest 2 transfers, attached again
#   net_before_restart  a transfer from guest 2 running when the driver
#                       domain kills -9 its backend (dom0-test.sh's restart)
#   net_after_restart   both guests' NICs went away and came back (down,
#                       then up) without a reboot; ping and a transfer again
#   net_guest2_done     guest 2's devices detached at runtime, picked up as
#                       gone by the still-loaded module
#   net_detached        guest 1's NIC gone; a disk for guest 2 from a backend
#                       in dom0 that offers every transport feature bit
#                       (extra-features); a NIC from a lying backend in
#                       dom0 (quiet-bad-id) received on without a spin and
#                       detached; guest 2 destroyed, the agents stop
#
# The commands the domains run are in net-lib.sh (and guest2-test.sh).
. /etc/xvmsg/net-lib.sh

# XVMSG_KMOD_NET=0 (make check-xen-kmod XVMSG_KMOD_NET=0; mkimages.sh puts
# it in /etc/xvmsg/kmod-net) leaves every network stage out: no second
# guest, no NIC.
NET_ON=$(cat /etc/xvmsg/kmod-net 2>/dev/null || echo 0)
# XVMSG_KMOD_NET_RESTART=0 (/etc/xvmsg/kmod-net-restart) leaves out only the
# NICs' part of the backend's kill -9 (net_before_restart, net_after_restart).
NET_RESTART=$(cat /etc/xvmsg/kmod-net-restart 2>/dev/null || echo 1)
[ "$NET_ON" = 1 ] || NET_RESTART=0
NET_G1_DEVID=8		# guest 1's NIC (0-4, 5-7, 11-23 and 30 are disks etc.)
NET_LIE_DEVID=10	# guest 1's NIC from the lying backend in dom0 (net_detached)
[ "$NET_ON" = 1 ] || NET_G1_DEVID=
NET_MIB=${NET_MIB:-4}	# MiB per checked transfer
# XVMSG_GUEST2_KERNEL (scripts/xen/common.sh) made into xl keys for the
# second guest by mkimages.sh: the kernel and ramdisk it boots.
[ -f /etc/xvmsg/guest2.xl ] && NET_G2_XL=$(cat /etc/xvmsg/guest2.xl)

# net_role NAME: the role a domain's marks carry.
net_role() {
	case $1 in xvmsg-driver) echo driver ;; xvmsg-guest) echo guest ;; xvmsg-guest2) echo guest2 ;; esac
}

# net_send NAME CMD: hand CMD to NAME's agent; prints its number.
net_send() {
	local f="$XV_RUN/net-n.$1" n id
	n=$(($(cat "$f" 2>/dev/null || echo 0) + 1))
	echo "$n" >"$f"
	id=$(xv_domid "$1") || xv_fail "no domain $1"
	xenstore-write "/local/domain/$id/xvmsg-e2e/net$n" "$2" || xv_fail "xenstore-write net$n for $1"
	echo "$n"
}

# net_wait SECONDS NAME N [NAME N]...: the commands are done.
net_wait() {
	local t=$1 args=
	shift
	while [ $# -ge 2 ]; do
		args="$args $1 'XVMSG-MARK $(net_role "$1") net $2 ok'"
		shift 2
	done
	eval "xv_wait_console $t $args" || xv_fail "$XV_WHY"
}

# net_do SECONDS NAME CMD: run CMD in NAME and wait for it.
net_do() {
	local n
	n=$(net_send "$2" "$3")
	net_wait "$1" "$2" "$n"
}

# net_sum NAME FILE: the SHA-256 that NAME printed when it made FILE.
net_sum() {
	tr -d '\r' <"$(xv_console_log "$1")" | awk -v f="$2" '$1 == "XVMSG-NETSUM" && $2 == f { s = $3 } END { print s }'
}

# net_xfer SECONDS FROM FROM_IP TO NAME: FROM serves NET_MIB MiB as NAME,
# TO fetches it over TCP and compares the checksum.
net_xfer() {
	local sum
	net_do 60 "$2" "net_serve $5 $NET_MIB"
	sum=$(net_sum "$2" "$5")
	[ -n "$sum" ] || xv_fail "no checksum of $5 from $2"
	net_do "$1" "$4" "net_fetch $3 $5 $sum"
}

# net_events NAME: how many NIC state lines NAME printed so far.
net_events() {
	tr -d '\r' <"$(xv_console_log "$1")" | grep -c "^xvmsg-net: [0-9a-f:]* [^ ]* [a-z]* (uptime"
}

# net_bounced NAME SINCE: after line SINCE of NAME's NIC state lines, one
# says gone or down and a later one up.
net_bounced() {
	tr -d '\r' <"$(xv_console_log "$1")" | grep "^xvmsg-net: [0-9a-f:]* [^ ]* [a-z]* (uptime" |
		awk -v s="$2" 'NR > s && ($4 == "gone" || $4 == "down") { d = 1 } NR > s && d && $4 == "up" { ok = 1 }
			END { exit !ok }'
}

# net_state NAME: the NIC's last state line.
net_state() {
	tr -d '\r' <"$(xv_console_log "$1")" | grep "^xvmsg-net: [0-9a-f:]* [^ ]* [a-z]* (uptime" | tail -1
}

net_wait_state() {
	xv_wait "$1" sh -c "tr -d '\r' <$(xv_console_log "$2") | grep '^xvmsg-net: [0-9a-f:]* [^ ]* [a-z]* (uptime' | tail -1 | grep -q ' $3 (uptime'" ||
		xv_fail "$2: NIC not $3 after $1 s (last: $(net_state "$2"))"
}

net_start_guest2() {
	[ "$NET_ON" = 1 ] || return 0
	# shellcheck disable=SC2086
	xv_xl_create xvmsg-guest2 'extra="console=hvc0 panic=-1 xvmsg_role=guest2"' $NET_G2_XL
}

net_attach() {
	[ "$NET_ON" = 1 ] || return 0
	local g2
	xv_wait_console 120 xvmsg-guest2 "XVMSG-MARK guest2 module loaded" || xv_fail "$XV_WHY"
	g2=$(xv_domid xvmsg-guest2) || xv_fail "no guest2 domid"
	xenstore-write "/local/domain/$g2/xvmsg-e2e/ready" 1 &&
		xenstore-chmod -r "/local/domain/$g2/xvmsg-e2e" "n$g2" || xv_fail "xenstore setup guest2"
	xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest xvmsg-driver net \
		"tap=xvtap1,mac=$NET_MAC1" --devid "$NET_G1_DEVID" >/dev/null || xv_fail "attach guest 1's NIC"
	xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest2 xvmsg-driver blk \
		path=/run/disk2.img,serial=g2-disk --devid 0 >/dev/null || xv_fail "attach guest 2's disk"
	xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest2 xvmsg-driver net \
		"tap=xvtap2,mac=$NET_MAC2" --devid 1 >/dev/null || xv_fail "attach guest 2's NIC"
	xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest2 xvmsg-driver rng --devid 2 --pool-pages 16 \
		>/dev/null || xv_fail "attach guest 2's rng"
}

net_stages() {
	[ "$NET_ON" = 1 ] || return 0
	local t0 n1 n2 e1 ev f
	t0=$(xv_uptime)
	n1=$(net_send xvmsg-guest2 "g2_disk g2-disk")
	n2=$(net_send xvmsg-guest2 "g2_rng")
	net_wait 120 xvmsg-guest2 "$n1" xvmsg-guest2 "$n2"
	net_wait_state 120 xvmsg-guest up
	net_wait_state 120 xvmsg-guest2 up
	xv_stage "net: guest 2's disk and rng work; both guests' NICs up ($(($(xv_uptime) - t0)) s)"

	t0=$(xv_uptime)
	n1=$(net_send xvmsg-guest "net_ping $NET_BR_IP; net_ping $NET_IP2")
	n2=$(net_send xvmsg-guest2 "net_ping $NET_BR_IP")
	net_wait 90 xvmsg-guest "$n1" xvmsg-guest2 "$n2"
	# (Guest 2 to the driver domain is checked below, under the unplug.)
	net_xfer 300 xvmsg-guest "$NET_IP1" xvmsg-driver g1-to-driver
	net_xfer 300 xvmsg-guest "$NET_IP1" xvmsg-guest2 g1-to-g2
	net_do 30 xvmsg-guest "net_counters $NET_G1_DEVID $NET_MAC1"
	net_do 30 xvmsg-guest2 "net_counters 1 $NET_MAC2"
	xv_stage "net: ping; ${NET_MIB} MiB over TCP checksummed: guest 1 -> driver domain, guest 1 -> guest 2 through br0 ($(($(xv_uptime) - t0)) s)"

	# The tap's link: down in the driver domain, no carrier in the guest
	# (an EVENT_CONFIG through the module to virtio_net), then up again.
	t0=$(xv_uptime)
	net_do 30 xvmsg-driver "net_link xvtap1 down"
	net_wait_state 60 xvmsg-guest down
	net_do 30 xvmsg-driver "net_link xvtap1 up"
	net_wait_state 60 xvmsg-guest up
	net_do 60 xvmsg-guest "net_config_events $NET_G1_DEVID 2 && net_ping $NET_BR_IP"
	xv_stage "net: tap down and up in the driver domain, carrier off and on in guest 1 ($(($(xv_uptime) - t0)) s)"

	# Guest 1's NIC unplugged while guest 2 sends to the driver domain:
	# the file four times over, so that the transfer is still running when
	# the NIC is gone (one 4 MiB fetch took 3-4 s once the NICs had
	# 1024-page pools), without a file guest 2's 112 MiB could not hold.
	t0=$(xv_uptime)
	net_do 60 xvmsg-guest2 "net_serve g2-unplug $NET_MIB"
	ev=$(net_sum xvmsg-guest2 g2-unplug)
	# (one line: xenstore-write keeps a newline as the two characters \n)
	f="net_fetch $NET_IP2 g2-unplug $ev"
	n2=$(net_send xvmsg-driver "$f && $f && $f && $f")
	sleep 1
	xvmsg-ctl detach xvmsg-guest "$NET_G1_DEVID" || xv_fail "detach guest 1's NIC"
	net_wait_state 60 xvmsg-guest gone
	if grep -q "XVMSG-MARK driver net $n2 ok" "$(xv_console_log xvmsg-driver)"; then
		e1="had ended"
	else
		e1="was running"
	fi
	net_wait 300 xvmsg-driver "$n2"
	xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest xvmsg-driver net \
		"tap=xvtap1,mac=$NET_MAC1" --devid "$NET_G1_DEVID" >/dev/null || xv_fail "attach guest 1's NIC again"
	net_wait_state 120 xvmsg-guest up
	net_do 60 xvmsg-guest "net_ping $NET_IP2"
	xv_stage "net: guest 1's NIC detached (guest 2's 4 x $NET_MIB MiB transfer $e1 then) and attached again; guest 2's transfer intact ($(($(xv_uptime) - t0)) s)"
}

# The restart itself is dom0-test.sh's (the driver domain's kill -9).
net_before_restart() {
	[ "$NET_RESTART" = 1 ] || return 0
	NET_EV1=$(net_events xvmsg-guest)
	NET_EV2=$(net_events xvmsg-guest2)
	net_do 60 xvmsg-guest2 "net_serve g2-kill $NET_MIB"
	# Its result does not count: the backend dies under it.
	NET_KILL_N=$(net_send xvmsg-driver "net_fetch $NET_IP2 g2-kill - 100 || true")
	sleep 1
}

net_after_restart() {
	[ "$NET_RESTART" = 1 ] || return 0
	local t0
	t0=$(xv_uptime)
	xv_wait 120 net_bounced xvmsg-guest "$NET_EV1" || xv_fail "guest 1's NIC did not go down and up again"
	xv_wait 120 net_bounced xvmsg-guest2 "$NET_EV2" || xv_fail "guest 2's NIC did not go down and up again"
	net_wait 120 xvmsg-driver "$NET_KILL_N"
	# Through both guests' NICs and the restarted backend.
	net_xfer 300 xvmsg-guest "$NET_IP1" xvmsg-guest2 g1-after
	xv_stage "net: after the kill -9 both NICs went down and came up, no reboot; guest 1 -> guest 2 checked again ($(($(xv_uptime) - t0)) s)"
}

net_guest2_done() {
	[ "$NET_ON" = 1 ] || return 0
	local t0 dev n
	t0=$(xv_uptime)
	for dev in 0 1 2; do
		xvmsg-ctl detach xvmsg-guest2 "$dev" || xv_fail "detach guest 2's device $dev"
	done
	n=$(net_send xvmsg-guest2 "g2_all_gone")
	net_wait 90 xvmsg-guest2 "$n"
	xv_stage "net: guest 2's disk, NIC and rng detached at runtime and gone, module loaded ($(($(xv_uptime) - t0)) s)"
}

# After dom0-test.sh detached guest 1's devices and stopped dom0's backend
# (one backend in dom0 at a time: each serves all of dom0's devices): guest
# 1's NIC is gone; net_g2_extra_features, net_lying_nic; guest 2 is
# destroyed and the agents stop.
net_detached() {
	[ "$NET_ON" = 1 ] || return 0
	net_wait_state 60 xvmsg-guest gone
	net_g2_extra_features
	net_lying_nic
	xl destroy xvmsg-guest2 || xv_fail "xl destroy xvmsg-guest2"
	net_stop xvmsg-guest xvmsg-driver
}

# A disk for guest 2 (trixie-backports' 7.x in make check) whose backend
# (xvmsg-backend --fault extra-features in dom0) offers every transport
# feature bit, IN_ORDER, PACKED and RING_RESET among them, on top of its
# own.  7.x's virtio_ring keeps IN_ORDER, and completes requests by
# position with it: the module must take only what the protocol carries.
# Had it taken one, the backend would refuse FEATURES_OK (never offered by
# the device behind the lie) and no disk would come.
net_g2_extra_features() {
	local t0 fb log=/run/xvmsg-fault-xf.log
	t0=$(xv_uptime)
	truncate -s 16M /run/disk-xf.img || xv_fail "extra-features: image"
	xvmsg-backend --bus xen --log-level warn --fault extra-features >"$log" 2>&1 &
	fb=$!
	xv_wait 20 grep -q "fault injection on" "$log" || xv_fail "the extra-features backend did not start"
	xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest2 Domain-0 blk \
		path=/run/disk-xf.img,serial=g2-xf --devid 3 >/dev/null || xv_fail "attach the extra-features disk"
	net_do 120 xvmsg-guest2 "g2_disk g2-xf && g2_transport_bits g2-xf"
	xvmsg-ctl detach xvmsg-guest2 3 || xv_fail "detach the extra-features disk"
	kill "$fb" 2>/dev/null
	wait "$fb" 2>/dev/null
	grep -q "extra-features: transport bits 0x[0-9a-f]* offered too" "$log" ||
		{ sed 's/^/  | /' "$log"; xv_fail "extra-features: nothing offered"; }
	! grep -q "never offered" "$log" ||
		{ sed 's/^/  | /' "$log"; xv_fail "extra-features: the module accepted a bit never offered"; }
	rm -f /run/disk-xf.img
	xv_stage "guest 2: a disk whose backend offers every transport feature bit (extra-features, dom0): none beyond the protocol's taken, 2 MiB written and read back ($(($(xv_uptime) - t0)) s)"
}

# A NIC whose backend (xvmsg-backend --fault quiet-bad-id in dom0, a tap of
# its own there) completes every transmit with a used entry naming no
# descriptor and never signals the transmit queue.  virtio_net takes
# transmit completions back when it receives, in NAPI, looping while its
# used ring shows entries: had virtio_ring seen those entries, it would
# have broken the queue there and the loop would never end (a soft lockup,
# and the NIC's remove waiting behind it).  Guest 1 pings dom0 (frames go
# out, replies come in), waits out the soft-lockup detector and checks
# that it received; the NIC is detached and goes.
net_lying_nic() {
	local t0 fb k log=/run/xvmsg-fault-net.log
	t0=$(xv_uptime)
	xvmsg-backend --bus xen --log-level warn --fault quiet-bad-id >"$log" 2>&1 &
	fb=$!
	xv_wait 20 grep -q "fault injection on" "$log" || xv_fail "the quiet-bad-id backend did not start"
	xvmsg-ctl --timeout "$ATTACH_TIMEOUT" attach xvmsg-guest Domain-0 net \
		"tap=xvlie,mac=$NET_MAC_LIE" --devid "$NET_LIE_DEVID" >/dev/null ||
		xv_fail "attach the quiet-bad-id NIC"
	xv_wait 30 test -d /sys/class/net/xvlie || xv_fail "no tap xvlie in dom0"
	ip addr add "$NET_LIE_PEER/24" dev xvlie && ip link set xvlie up || xv_fail "dom0: xvlie up"
	net_do 150 xvmsg-guest "net_quiet_lie $NET_MAC_LIE $NET_LIE_IP $NET_LIE_PEER"
	xvmsg-ctl detach xvmsg-guest "$NET_LIE_DEVID" || xv_fail "detach the quiet-bad-id NIC"
	net_do 90 xvmsg-guest "net_gone $NET_MAC_LIE"
	kill "$fb" 2>/dev/null
	wait "$fb" 2>/dev/null
	# The lie really happened (the backend's count, logged at disconnect).
	k=$(grep -o "[0-9]* quiet bad used entries" "$log" | tail -1 | cut -d' ' -f1)
	[ "${k:-0}" -gt 0 ] || { sed 's/^/  | /' "$log"; xv_fail "quiet-bad-id: no transmit completion written"; }
	xv_stage "net: a NIC whose backend writes $k bad transmit completions and never signals them (quiet-bad-id, dom0): guest 1 received, no soft lockup, NIC detached ($(($(xv_uptime) - t0)) s)"
}

# net_stop NAME...: end those domains' agents and NIC watchers (they poll:
# under TCG that costs the later stages time).
net_stop() {
	local name n
	for name in "$@"; do
		n=$(net_send "$name" exit)
		net_wait 30 "$name" "$n"
	done
}
