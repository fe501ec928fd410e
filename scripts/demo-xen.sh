#!/bin/sh
# SPDX-License-Identifier: MIT
# The reference system on real Xen, shown to a person: boots Xen 4.17, dom0,
# an unprivileged driver domain running xvmsg-backend and a guest, in QEMU,
# runs the end-to-end plan (tests/xen/e2e) and prints what happened.
# Usage: scripts/demo-xen.sh   (after make xen-images XEN_PLAN=tests/xen/e2e)
# XVMSG_XEN_ARCH=arm64 (make demo XEN_ARCH=arm64): Xen on Arm, whose guests
# are auto-translated (docs/xen.md, "Xen on Arm"); XVMSG_XEN_OUT: the images'
# folder, as for scripts/xen/run-qemu.sh.
set -u
LOG=${XVMSG_XEN_LOG:-${XVMSG_XEN_OUT:-build/xen}/serial.log}

xen=4.17
[ "${XVMSG_DISTRO:-bookworm}" = trixie ] && xen=4.20
if [ "${XVMSG_XEN_ARCH:-amd64}" = arm64 ]; then
	what="Xen $xen on Arm in qemu-system-aarch64, software emulation: about three minutes"
	guests="auto-translated guests"
else
	what="Xen $xen in QEMU, software emulation: about a minute and a half"
	guests="PV guests"
fi
cat <<EOT

=== The reference system on Xen ($what) ===
  dom0          toolstack: xl, xvmsg-ctl
  xvmsg-driver  unprivileged driver domain: xvmsg-backend --bus xen
  xvmsg-guest   the guest: a userspace xvmsg frontend sharing only its pool
  ($guests)

EOT
XVMSG_XEN_SERIAL=0 scripts/xen/run-qemu.sh
rc=$?
echo
echo "--- what each domain said (from $LOG) ---"
tr -d '\r' <"$LOG" |
	grep -a -e 'XVMSG-STAGE' -e 'XVMSG-GUEST' -e 'xvmsg-ctl' -e 'capabilities' \
	-e 'after detach' -e '^\[xvmsg-driver\]   | xvmsg-backend: ' |
	grep -a -v -e 'XVMSG-STAGE dom0 init' -e '\] \[ ' |
	sed -e 's/^XVMSG-STAGE /[dom0] /' -e 's/ (uptime [0-9.]*s)$//' -e 's/^/  /' | uniq
echo
echo "--- xvmsg-ctl stats of the disk, from dom0 ---"
tr -d '\r' <"$LOG" | sed -n '/backend counters (xvmsg-ctl stats)/,/XVMSG-STAGE pool mode/p' |
	grep -a -E '^[a-z_]+ +[0-9]+$' | sed 's/^/  /'
echo
if [ "$rc" -eq 0 ]; then
	echo "demo (Xen): the guest's disk and rng worked through the driver domain, across backend"
	echo "restarts and a guest power-off, and the malicious driver's cases were all survived"
else
	echo "demo (Xen): FAILED, see $LOG"
fi
exit "$rc"
