#!/bin/sh
# SPDX-License-Identifier: MIT
# End-to-end test, guest side: a userspace xvmsg frontend (xvmsg-guest-check,
# driver/ on the Xen bus, pool mode) uses the devices dom0 attached; then
# xvmsg-blkcrash writes while dom0 has the backend killed, and the guest
# powers off with its devices attached.  A second guest (dom0 passes
# "second") does the basic I/O on fresh devices, then runs the malicious
# driver (xvmsg-evil) on a disk of its own next to a witness disk.
. /etc/xvmsg/lib.sh

for dev in evtchn gntalloc xenbus; do
	[ -c /dev/xen/$dev ] || xv_fail "no /dev/xen/$dev"
done
xv_mark "up"
set -- $(xv_read_wait 300 xvmsg-e2e/devices) || xv_fail "dom0 never attached devices"
blk=$1 rng=$2 seed=$3 role=$4
[ -n "$seed" ] || xv_fail "bad device list from dom0"

# The malicious driver on a disk of its own; the witness disk must keep
# working.  One process per case (the cases the Xen bus supports), so that
# one case's leftovers do not decide the next; any FAIL line or a non-zero
# exit fails the test, after all cases ran.
evil_run() {
	set -- $(xv_read_wait 300 xvmsg-e2e/evil) || xv_fail "dom0 never attached the evil devices"
	[ -n "$3" ] || xv_fail "bad evil device list from dom0"
	: >/run/evil.log
	bad=
	for c in $(xvmsg-evil --list | awk '!/\(loopback only\)$/ { print $1 }'); do
		read -r t0 _ </proc/uptime
		xvmsg-evil --xen --blk "$1" --rng "$2" --witness "$3" --case "$c" >/run/evil-case.log 2>&1 ||
			bad="$bad $c"
		read -r t1 _ </proc/uptime
		cat /run/evil-case.log
		# Where the stage's time goes (uptime in 1/100 s).
		echo "xvmsg-evil: evil/$c took $(echo "$t0 $t1" | awk '{ printf "%.2f", $2 - $1 }') s"
		cat /run/evil-case.log >>/run/evil.log
	done
	if grep -q "XVMSG-GUEST: FAIL" /run/evil.log; then
		xv_fail "$(grep -m1 'XVMSG-GUEST: FAIL' /run/evil.log)"
	fi
	[ -z "$bad" ] || xv_fail "xvmsg-evil failed:$bad"
	npass=$(grep -c "XVMSG-GUEST: PASS evil/" /run/evil.log)
	[ "$npass" -gt 0 ] || xv_fail "xvmsg-evil ran no case"
	xv_mark "evil done: $npass cases passed"
}

xvmsg-guest-check blk-write "$blk" "$seed" || xv_fail "blk write"
xvmsg-guest-check blk-verify "$blk" "$seed" || xv_fail "blk verify"
xvmsg-guest-check rng "$rng" 4096 || xv_fail "rng"
if [ "$role" = second ]; then
	xv_mark "second guest io done"
	evil_run
	exit 0
fi
# Open/close churn (12 rounds, 36 opens, ~9 s under TCG): the disk and the
# rng in shifting orders with changing pool sizes fragment the guest's grant
# refs; every open must still get a pool of consecutive refs and do I/O
# through it.
xvmsg-guest-check churn "$blk" "$rng" "$seed" 12 || xv_fail "grant-ref churn"
xv_mark "io done"
xvmsg-guest-check blk-survive "$blk" "$seed" 180 || xv_fail "blk across the backend restart"
xv_mark "reconnected"

# Sustained writes with a flush every 16 while dom0 has the backend killed
# (-9) and restarted: the writer reconnects, flushes once more and stops;
# then every write acknowledged before a completed flush must be on the disk.
xv_read_wait 300 xvmsg-e2e/crash >/dev/null || xv_fail "dom0 never started the crash test"
J=/run/blkcrash.journal
xvmsg-blkcrash write --xen --devid "$blk" --journal "$J" --seconds 150 \
	--stop-after-reconnects 1 --depth 32 --flush-every 16 --blocks 1024 \
	>/run/blkcrash-write.log 2>&1 &
wpid=$!
xv_wait 60 sh -c "[ \$(grep -c '^D' $J 2>/dev/null) -ge 20 ]" ||
	{ cat /run/blkcrash-write.log; xv_fail "the crash writer made no progress"; }
xv_mark "writer running"
wait "$wpid"
rc=$?
cat /run/blkcrash-write.log
[ "$rc" -eq 0 ] || xv_fail "crash writer exited $rc"
grep -q "PASS blkcrash write: .* [1-9][0-9]* reconnects" /run/blkcrash-write.log ||
	xv_fail "the crash writer never saw the backend go and come back"
xvmsg-blkcrash verify --xen --devid "$blk" --journal "$J" --no-torn --min 1 \
	>/run/blkcrash-verify.log 2>&1
rc=$?
cat /run/blkcrash-verify.log
[ "$rc" -eq 0 ] || xv_fail "crash verify: $(grep -m1 'FAIL' /run/blkcrash-verify.log)"
n=$(sed -n 's/.*PASS blkcrash verify: \([0-9]*\) acknowledged.*/\1/p' /run/blkcrash-verify.log)
[ -n "$n" ] && [ "$n" -gt 0 ] || xv_fail "crash verify: no acknowledged write verified"
xv_mark "crash verified $n acknowledged writes"

# The frontend itself dies (kill -9) under sustained writes, leaving its
# device Connected and its pool mapped by the backend; a new process opens
# the same device at once (the backend must start over with it), and every
# write acknowledged before a completed flush is there.
J2=/run/fecrash.journal
xvmsg-blkcrash write --xen --devid "$blk" --journal "$J2" --seconds 120 --depth 32 \
	--flush-every 16 --blocks 1024 >/run/fecrash-write.log 2>&1 &
fpid=$!
xv_wait 60 sh -c "[ \$(grep -c '^D' $J2 2>/dev/null) -ge 20 ]" ||
	{ cat /run/fecrash-write.log; xv_fail "the writer to kill made no progress"; }
kill -9 "$fpid"
wait "$fpid" 2>/dev/null
xvmsg-blkcrash verify --xen --devid "$blk" --journal "$J2" --no-torn --min 1 \
	>/run/fecrash-verify.log 2>&1
rc=$?
cat /run/fecrash-verify.log
[ "$rc" -eq 0 ] || xv_fail "after the frontend's kill -9: $(grep -m1 'FAIL' /run/fecrash-verify.log)"
n=$(sed -n 's/.*PASS blkcrash verify: \([0-9]*\) acknowledged.*/\1/p' /run/fecrash-verify.log)
[ -n "$n" ] && [ "$n" -gt 0 ] || xv_fail "after the frontend's kill -9: no write verified"
xv_mark "frontend killed -9 under writes: reopened at once, $n flushed writes verified"

# Power off with the devices attached and a frontend writing to one of them.
xv_read_wait 300 xvmsg-e2e/hold >/dev/null || xv_fail "dom0 never asked to hold the devices"
xvmsg-blkcrash write --xen --devid "$blk" --journal /run/hold.journal --seconds 600 --pool-pages 32 \
	>/run/hold.log 2>&1 &
xv_wait 60 sh -c "grep -q '^D' /run/hold.journal 2>/dev/null" || { cat /run/hold.log; xv_fail "no writes to hold"; }
xv_mark "holding devices"
xv_read_wait 300 xvmsg-e2e/shutdown >/dev/null || xv_fail "dom0 never asked for the shutdown"
xv_mark "powering off with devices attached"
sync
poweroff -f
