# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# scripts/bench-xen.sh --host: the same matrix on an existing Xen host, no
# QEMU.  Sourced by scripts/bench-xen.sh (TOP, OUT, REPS, SECS, SIZE, DRIVER,
# GUEST, LOOP, run_loop, say are set).  Run as root in dom0, with:
#
#   xvmsg-ctl, xvmsg-backend and xl in dom0's PATH;
#   in the driver domain: xvmsg-backend running (--bus xen --no-full) or
#     startable, xen-blkback and loop loaded, xenstore-* tools, losetup;
#   in the guest: xvmsg.ko (modprobe xvmsg), virtio_blk, xen-blkfront, fio
#     with the libaio engine, xenstore-* tools;
#   XVMSG_BENCH_DRIVER_SH, XVMSG_BENCH_GUEST_SH: a command that runs a shell
#     reading its script from standard input in that domain, e.g.
#     "ssh root@driver sh -s";
#   optional: XVMSG_BENCH_DEVID (first xvmsg devid, default 0),
#     XVMSG_BENCH_VDEV (the PV disk in the guest, default xvdb).
#
# The domU sides are bench/xen/plan/{driver,guest}-test.sh with
# scripts/xen/init/lib.sh, copied to /run/xvmsg-bench/ there; dom0 runs
# bench/xen/plan/dom0-test.sh.  Images are files in /run (tmpfs) of the
# driver domain and dom0.  Everything is detached at the end.
[ -n "$DRIVER" ] && [ -n "$GUEST" ] || { echo "bench-xen: --host needs --driver and --guest" >&2; exit 2; }
# cpu: set by scripts/bench-xen.sh
: "${XVMSG_BENCH_DRIVER_SH:?set XVMSG_BENCH_DRIVER_SH (e.g. ssh root@DRIVER sh -s)}"
: "${XVMSG_BENCH_GUEST_SH:?set XVMSG_BENCH_GUEST_SH (e.g. ssh root@GUEST sh -s)}"
for t in xl xvmsg-ctl xvmsg-backend xenstore-read; do
	command -v "$t" >/dev/null || { echo "bench-xen: no $t in dom0's PATH" >&2; exit 1; }
done
P=$TOP/bench/xen/plan
LIB=$TOP/scripts/xen/init/lib.sh

# install_in SH ROLE: lib.sh and ROLE-test.sh into /run/xvmsg-bench/ there,
# then start it in the background; its output in /run/xvmsg-bench/ROLE.log.
install_in() {
	{
		echo "mkdir -p /run/xvmsg-bench /run/xvmsg && cd /run/xvmsg-bench || exit 1"
		echo "cat >lib.sh <<'XVMSG_BENCH_EOF'"
		sed "s|^XV_ROLE=.*|XV_ROLE=$2|" "$LIB"
		echo "XVMSG_BENCH_EOF"
		echo "cat >$2-test.sh <<'XVMSG_BENCH_EOF'"
		cat "$P/$2-test.sh"
		echo "XVMSG_BENCH_EOF"
		echo "xenstore-rm xvmsg-bench 2>/dev/null"
		echo "XVMSG_BENCH_LIB=/run/xvmsg-bench/lib.sh XVMSG_BENCH_SIZE=$SIZE nohup sh $2-test.sh >$2.log 2>&1 </dev/null &"
	} | $1
}

[ "$LOOP" = 1 ] && run_loop
say "host: driver domain $DRIVER, guest $GUEST; starting the domU sides"
install_in "$XVMSG_BENCH_DRIVER_SH" driver
install_in "$XVMSG_BENCH_GUEST_SH" guest
log=$OUT/serial.log
set +e
XVMSG_BENCH_EXISTING=1 XVMSG_BENCH_DRIVER=$DRIVER XVMSG_BENCH_GUEST=$GUEST \
	XVMSG_BENCH_REPS=$REPS XVMSG_BENCH_SECS=$SECS XVMSG_BENCH_SIZE=$SIZE XVMSG_BENCH_LIB=$LIB \
	timeout $((600 + REPS * 24 * (SECS + 8))) sh "$P/dom0-test.sh" >"$log" 2>&1
rc=$?
set -e
echo "sed 's/^/[guest] /' /run/xvmsg-bench/guest.log" | $XVMSG_BENCH_GUEST_SH >>"$log"
echo "sed 's/^/[driver] /' /run/xvmsg-bench/driver.log" | $XVMSG_BENCH_DRIVER_SH >>"$log"
[ "$rc" = 0 ] || { tail -n 30 "$log" >&2; say "dom0 side failed ($rc); log $log"; exit 1; }
machine="existing Xen host: $(xl info | sed -n 's/^xen_version *: //p') on $(nproc) dom0 vCPUs ($cpu); driver domain $DRIVER, guest $GUEST"
args=(--serial "$log" --out "$OUT" --machine "$machine"
	--commands "scripts/bench-xen.sh --host --driver $DRIVER --guest $GUEST --reps $REPS --secs $SECS")
[ "${#LOOP_CSVS[@]}" -gt 0 ] && args+=(--loop "${LOOP_CSVS[@]}")
[ -n "$DOCS" ] && args+=(--docs "$DOCS")
[ "$CHECK" = 1 ] && args+=(--check "$REPS")
python3 "$TOP/bench/xen/report.py" "${args[@]}" >"$OUT/report.txt" || { say "report: FAIL"; exit 1; }
gnuplot "$OUT/plots.gp"
say "done: $OUT/report.md"
