#!/bin/sh
# SPDX-License-Identifier: MIT
# End-to-end test on real Xen, dom0 side (the toolstack):
#  1. boot the driver domain and the guest;
#  2. wait until xvmsg-backend runs in the driver domain (unprivileged);
#  3. attach a disk and an rng with xvmsg-ctl, as a user would;
#  4. let the guest write a pattern over the disk, read it back, read random
#     bytes (userspace frontend on the Xen bus, pool mode);
#  5. kill -9 and restart the backend while the guest waits: the guest must
#     reconnect and find the data written before intact;
#  6. print the backend's counters (xvmsg-ctl stats);
#  7. kill -9 and restart the backend again while xvmsg-blkcrash writes with
#     periodic flushes: every write acknowledged before a completed flush
#     must be on the disk (count printed and asserted);
#  8. the guest powers off with its devices attached and a frontend
#     writing: the domain must be fully destroyed (no zombie held by a
#     grant mapping), the backend must map nothing of it and keep serving:
#     a new guest gets new devices and uses them;
#  9. attach a disk to abuse and a witness disk to the new guest; it runs
#     the malicious driver (xvmsg-evil); any FAIL fails the test; the
#     backend must be alive (not restarted) afterwards, its CPU time is
#     printed;
# 10. detach the new guest's devices, check removal.
# Every wait is bounded.  Exit 0 = PASS; xv_fail records why.
. /etc/xvmsg/lib.sh

UP_TIMEOUT=150
STEP_TIMEOUT=120
SEED=0x5eed

# console_line LOG ERE: wait (bounded, 10 s) until a line of the console
# LOG matches ERE.  xenconsoled copies a domain's console ring into LOG as
# the bytes come, so a mark can be there before the rest of its line: read
# a value from a line only once the pattern up to its last word matched.
console_line() {
	xv_wait 10 grep -qE -- "$2" "$1"
}

xv_xl_create_both

xv_wait_console "$UP_TIMEOUT" xvmsg-driver "XVMSG-MARK driver backend up" \
	xvmsg-guest "XVMSG-MARK guest up" || xv_fail "$XV_WHY"
d=$(xv_domid xvmsg-driver) || xv_fail "xvmsg-driver has no domid"
g=$(xv_domid xvmsg-guest) || xv_fail "xvmsg-guest has no domid"
xv_stage "backend running in driver domain $d; guest is domain $g"

# A directory each domU owns for test coordination (not part of xvmsg).
for dom in "$d" "$g"; do
	xenstore-write "/local/domain/$dom/xvmsg-e2e/ready" 0 &&
		xenstore-chmod -r "/local/domain/$dom/xvmsg-e2e" "n$dom" ||
		xv_fail "xenstore setup for domain $dom"
done

xv_stage "xvmsg-ctl attach"
blk=$(xvmsg-ctl attach xvmsg-guest xvmsg-driver blk path=/run/disk.img,serial=e2e-disk) ||
	xv_fail "xvmsg-ctl attach blk failed"
rng=$(xvmsg-ctl apply xvmsg-guest /etc/xvmsg/devices.xvmsg) ||
	xv_fail "xvmsg-ctl apply /etc/xvmsg/devices.xvmsg failed"
# Bad requests are refused with a clear error and leave nothing behind.
if xvmsg-ctl attach xvmsg-guest nosuchdomain blk path=/x 2>"$XV_RUN/ctl-err.log"; then
	xv_fail "xvmsg-ctl accepted an unknown backend domain"
fi
grep -q "unknown domain" "$XV_RUN/ctl-err.log" || xv_fail "unclear error: $(cat "$XV_RUN/ctl-err.log")"
if xvmsg-ctl attach xvmsg-guest xvmsg-driver blk path=/run/disk.img --devid "$blk" 2>/dev/null; then
	xv_fail "xvmsg-ctl accepted a duplicate device id"
fi
# Full mode (foreign mapping) from an unprivileged driver domain: refused
# up front, with the backend's reason, and rolled back.
if xvmsg-ctl attach xvmsg-guest xvmsg-driver rng --mode full 2>"$XV_RUN/ctl-full.log"; then
	xv_fail "an unprivileged backend accepted full mode"
fi
cat "$XV_RUN/ctl-full.log"
grep -q "full mode" "$XV_RUN/ctl-full.log" || xv_fail "unclear refusal: $(cat "$XV_RUN/ctl-full.log")"
xvmsg-ctl list
xv_stage "attached blk as device $blk and rng as device $rng"

xenstore-write "/local/domain/$g/xvmsg-e2e/devices" "$blk $rng $SEED" ||
	xv_fail "cannot hand the device ids to the guest"
xv_wait_console "$STEP_TIMEOUT" xvmsg-guest "XVMSG-MARK guest io done" || xv_fail "$XV_WHY"
xv_stage "guest wrote, verified and read random bytes"

# Restart the backend while the guest is waiting for it.
xv_wait_console "$STEP_TIMEOUT" xvmsg-guest "waiting for the backend to go away" || xv_fail "$XV_WHY"
xenstore-write "/local/domain/$d/xvmsg-e2e/restart" 1 || xv_fail "cannot ask for a restart"
xv_wait_console "$STEP_TIMEOUT" xvmsg-driver "XVMSG-MARK driver backend restarted" \
	xvmsg-guest "XVMSG-MARK guest reconnected" || xv_fail "$XV_WHY"
xv_stage "backend killed and restarted; guest reconnected, data intact"

xv_stage "backend counters (xvmsg-ctl stats)"
xvmsg-ctl stats xvmsg-guest "$blk" | tee "$XV_RUN/stats-blk.txt" || xv_fail "xvmsg-ctl stats failed"
xvmsg-ctl --json stats xvmsg-guest "$rng" || xv_fail "xvmsg-ctl stats rng failed"
# Pool mode: every page mapped is a pool page or the message page: one map of
# the message page plus one per pool chunk, never per request.
requests=$(awk '$1 == "requests" { print $2 }' "$XV_RUN/stats-blk.txt")
maps=$(awk '$1 == "maps" { print $2 }' "$XV_RUN/stats-blk.txt")
pages=$(awk '$1 == "map_pages" { print $2 }' "$XV_RUN/stats-blk.txt")
[ -n "$requests" ] && [ "$requests" -gt 100 ] || xv_fail "too few requests counted: $requests"
[ "$pages" -le 257 ] || xv_fail "backend mapped $pages pages for a 256-page pool"
[ "$maps" -le 6 ] || xv_fail "backend made $maps map calls: pool not kept mapped"
xv_stage "pool mode: $requests requests, $maps map calls, $pages pages (pool 256 + message page)"

# 7. The backend dies (kill -9) under sustained writes and comes back.
GLOG=$(xv_console_log xvmsg-guest)
xenstore-write "/local/domain/$g/xvmsg-e2e/crash" 1 || xv_fail "cannot start the crash writer"
xv_wait_console "$STEP_TIMEOUT" xvmsg-guest "XVMSG-MARK guest writer running" || xv_fail "$XV_WHY"
xenstore-write "/local/domain/$d/xvmsg-e2e/restart2" 1 || xv_fail "cannot ask for the second restart"
xv_wait_console "$STEP_TIMEOUT" xvmsg-driver "XVMSG-MARK driver backend restarted again" \
	xvmsg-guest "XVMSG-MARK guest crash verified" || xv_fail "$XV_WHY"
console_line "$GLOG" 'XVMSG-MARK guest crash verified [0-9]+ acknowledged writes' ||
	xv_fail "incomplete crash line from the guest: '$(grep 'crash verified' "$GLOG" | tail -n1 | tr -d '\r')'"
verified=$(sed -n 's/.*XVMSG-MARK guest crash verified \([0-9]*\) .*/\1/p' "$GLOG" | tail -n1)
[ -n "$verified" ] && [ "$verified" -gt 0 ] || xv_fail "no acknowledged write verified after the crash"
xv_stage "backend killed -9 under sustained writes: $verified acknowledged+flushed writes verified"
# ... and the guest's frontend process is killed -9 under writes (guest-test.sh).
xv_wait_console "$STEP_TIMEOUT" xvmsg-guest "XVMSG-MARK guest frontend killed -9" || xv_fail "$XV_WHY"
console_line "$GLOG" 'XVMSG-MARK guest frontend killed -9 under writes: reopened at once, [0-9]+ flushed writes verified' ||
	xv_fail "incomplete frontend-crash line from the guest"
fe_verified=$(sed -n 's/.*reopened at once, \([0-9]*\) flushed.*/\1/p' "$GLOG" | tail -n1)
xv_stage "guest frontend killed -9 under writes: reopened, $fe_verified flushed writes verified"

# 8. The guest powers off with its devices attached.
xenstore-write "/local/domain/$g/xvmsg-e2e/hold" 1 || xv_fail "cannot ask the guest to hold"
xv_wait_console 60 xvmsg-guest "XVMSG-MARK guest holding devices" || xv_fail "$XV_WHY"
xenstore-write "/local/domain/$d/xvmsg-e2e/premaps" 1 || xv_fail "cannot ask for the mappings"
DLOG=$(xv_console_log xvmsg-driver)
xv_wait_console 30 xvmsg-driver "XVMSG-MARK driver grant mappings before shutdown" || xv_fail "$XV_WHY"
# xenconsoled may have written only the start of the line yet: wait for the
# whole of it (the count and the closing "(backend pid N)") before reading.
console_line "$DLOG" 'XVMSG-MARK driver grant mappings before shutdown: [0-9]+ \(backend pid [0-9]+\)' ||
	xv_fail "incomplete mappings line from the driver domain: '$(grep 'grant mappings before' "$DLOG" | tail -n1 | tr -d '\r')'"
before=$(sed -n 's/.*XVMSG-MARK driver grant mappings before shutdown: \([0-9][0-9]*\) (backend pid.*/\1/p' \
	"$DLOG" | tail -n1)
[ -n "$before" ] && [ "$before" -gt 0 ] || xv_fail "the backend mapped nothing of the guest ($before)"
oldg=$g
xenstore-write "/local/domain/$g/xvmsg-e2e/shutdown" 1 || xv_fail "cannot ask for the shutdown"
xv_wait 60 sh -c "! xl domid xvmsg-guest >/dev/null 2>&1" || xv_fail "the guest did not power off"
# A domain whose pages are still mapped by a backend stays behind as a
# dying "(null)" domain: it must go away.
xv_wait 30 sh -c "! xl list | grep -q '(null)' && [ \$(xl list | wc -l) -eq 3 ]" ||
	{ xl list; xv_fail "the guest is a zombie: its pages are still mapped"; }
xv_stage "guest powered off with its blk and rng attached ($before grant mappings); domain fully destroyed"
xenstore-write "/local/domain/$d/xvmsg-e2e/guestgone" 1 || xv_fail "cannot tell the driver domain"
xv_wait_console 60 xvmsg-driver "XVMSG-MARK driver released after guest shutdown" || xv_fail "$XV_WHY"
xv_stage "backend released every grant mapping of the dead guest on its own"
# The toolstack's part: drop the dead guest's devices (by its old id).
xvmsg-ctl list
xvmsg-ctl detach "$oldg" "$blk" || xv_fail "detach of the dead guest's blk failed"
xvmsg-ctl detach "$oldg" "$rng" || xv_fail "detach of the dead guest's rng failed"
[ -z "$(xenstore-list "/local/domain/$d/backend/xvmsg/$oldg" 2>/dev/null)" ] ||
	xv_fail "the dead guest's backend directories are still there"

# ... and keeps serving: a new guest, new devices, started as an
# administrator would, from an xl config that declares its xvmsg devices
# (xvmsg-ctl create: xl create -p, attach each, xl unpause): the shipped
# config with this test's devices in its xvmsg = [ ... ] list.
cfg=$XV_RUN/xvmsg-guest-e2e.cfg
awk '/^xvmsg *=/ { skip = 1 } !skip { print } skip && /]/ { skip = 0 }' /etc/xen/xvmsg-guest.cfg >"$cfg"
echo 'xvmsg = [ "blk, backend=xvmsg-driver, path=/run/disk2.img, serial=e2e-disk2, devid=20",' >>"$cfg"
echo '          "rng, backend=xvmsg-driver, devid=21" ]' >>"$cfg"
t0=$(xv_uptime)
xvmsg-ctl create "$cfg" >"$XV_RUN/ctl-create.log" 2>&1 ||
	{ cat "$XV_RUN/ctl-create.log"; xv_fail "xvmsg-ctl create of the second guest failed"; }
blk=20 rng=21
g=$(xv_domid xvmsg-guest) || xv_fail "the second guest has no domid"
xv_stage "xvmsg-ctl create: second guest (domain $g), blk $blk and rng $rng from its xl config, in $(($(xv_uptime) - t0)) s"
xenstore-write "/local/domain/$g/xvmsg-e2e/ready" 0 &&
	xenstore-chmod -r "/local/domain/$g/xvmsg-e2e" "n$g" || xv_fail "xenstore setup for domain $g"
xenstore-write "/local/domain/$g/xvmsg-e2e/devices" "$blk $rng 0x5eed2 second" ||
	xv_fail "cannot hand the device ids to the second guest"
xv_wait_console "$UP_TIMEOUT" xvmsg-guest "XVMSG-MARK guest second guest io done" || xv_fail "$XV_WHY"
xv_stage "second guest (domain $g) wrote, verified and read random bytes"

# 9. The malicious driver in the second guest, on a pool disk of its own,
# with a witness disk.  Small pools: the cases open and close the disk many
# times, each open needs a run of consecutive grant refs (see drv-xen.c).
evil=$(xvmsg-ctl attach xvmsg-guest xvmsg-driver blk path=/run/evil.img,serial=evil \
	--pool-pages 32) || xv_fail "xvmsg-ctl attach of the disk to abuse failed"
witness=$(xvmsg-ctl attach xvmsg-guest xvmsg-driver blk path=/run/witness.img,serial=witness \
	--pool-pages 32) ||
	xv_fail "xvmsg-ctl attach of the witness disk failed"
xenstore-write "/local/domain/$d/xvmsg-e2e/evil-begin" 1 || xv_fail "cannot start the evil run"
xv_wait_console 30 xvmsg-driver "XVMSG-MARK driver backend cpu before evil" || xv_fail "$XV_WHY"
xv_stage "malicious driver on device $evil (rng $rng), witness device $witness"
xenstore-write "/local/domain/$g/xvmsg-e2e/evil" "$evil $rng $witness" ||
	xv_fail "cannot hand the evil devices to the guest"
# 15 cases: 74 s of QEMU at load 2.5, 250 s and more under heavy load.
xv_wait_console 400 xvmsg-guest "XVMSG-MARK guest evil done" || xv_fail "$XV_WHY"
if grep -q "XVMSG-GUEST: FAIL evil" "$GLOG"; then
	xv_fail "$(grep -m1 'XVMSG-GUEST: FAIL evil' "$GLOG" | tr -d '\r')"
fi
xenstore-write "/local/domain/$d/xvmsg-e2e/evil-done" 1 || xv_fail "cannot end the evil run"
xv_wait_console 30 xvmsg-driver "XVMSG-MARK driver backend alive after evil" || xv_fail "$XV_WHY"
ncases=$(grep -c "XVMSG-GUEST: PASS evil/" "$GLOG")
cpu=$(grep -m1 "XVMSG-MARK driver backend alive after evil" "$(xv_console_log xvmsg-driver)" |
	sed 's/.*after evil: //' | tr -d '\r')
xv_stage "malicious driver: $ncases cases passed; backend alive, not restarted: $cpu"

xvmsg-ctl detach xvmsg-guest "$blk" || xv_fail "detach blk failed"
xvmsg-ctl detach xvmsg-guest "$rng" || xv_fail "detach rng failed"
xvmsg-ctl detach xvmsg-guest "$evil" || xv_fail "detach of the abused disk failed"
xvmsg-ctl detach xvmsg-guest "$witness" || xv_fail "detach of the witness disk failed"
xv_wait 30 sh -c "! xvmsg-ctl list | grep -q xvmsg-guest" || xv_fail "devices still listed after detach"
xenstore-write "/local/domain/$d/xvmsg-e2e/done" 1
xv_wait_console 60 xvmsg-driver "XVMSG-MARK driver devices released" || xv_fail "$XV_WHY"
xv_stage "detached; the backend released every mapping"
exit 0
