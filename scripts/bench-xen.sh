#!/bin/bash
# SPDX-License-Identifier: MIT
# The Xen benchmark (docs/benchmarks.md, "On Xen"): fio in a guest over
# virtio-blk disks served by xvmsg-backend in pool, grant and full mode and
# over Xen's own PV disk (blkback), next to xvmsg-bench on the loopback bus.
#
#   scripts/bench-xen.sh [--reps N] [--secs S] [--out DIR] [--docs FILE] [--check]
#       the reference system in QEMU: the images must be built with
#       bench/xen/plan (make bench-xen does that, then runs this)
#   scripts/bench-xen.sh --host --driver NAME --guest NAME [--reps N] [--secs S] [--out DIR]
#       an existing Xen host, run as root in dom0 (see --help)
#
# --check: fail unless every cell has a number and counters and fio's
# verify passed on every disk (bench/xen/report.py --check).
set -euo pipefail
# DRIVER, GUEST, DOCS... are read by bench/xen/host.sh, sourced below.
# shellcheck disable=SC2034
TOP=$(cd "$(dirname "$0")/.." && pwd)
REPS=3 SECS=5 SIZE=32 OUT=$TOP/build/bench DOCS='' CHECK=0 HOST=0 DRIVER='' GUEST='' LOOP=1
LOOP_SECS=
usage() {
	sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
	cat <<'EOT'
Options:
  --reps N        repetitions, each runs every cell once (default 3)
  --secs S        seconds per cell (default 5)
  --size MIB      size of each disk image (default 32)
  --out DIR       output folder (default build/bench)
  --docs FILE     rewrite the generated part of FILE (docs/benchmarks.md)
  --no-loop       skip the loopback xvmsg-bench runs
  --loop-secs S   seconds per mode per workload for xvmsg-bench (default reps x secs)
  --check         exit 1 unless the matrix is complete (the short form in make check)
  --host          a real Xen host instead of QEMU: needs --driver and --guest,
                  XVMSG_BENCH_GUEST_SH and XVMSG_BENCH_DRIVER_SH (commands that
                  run a shell in the guest and the driver domain, e.g.
                  "ssh root@guest sh"), bench/xen/plan/*.sh copied to
                  /etc/xvmsg/ in all three domains, fio in the guest,
                  xvmsg-backend running in both the driver domain and dom0
EOT
}
# shellcheck disable=SC2034
while [ $# -gt 0 ]; do
	case $1 in
	--reps) REPS=$2; shift ;;
	--secs) SECS=$2; shift ;;
	--size) SIZE=$2; shift ;;
	--out) OUT=$2; shift ;;
	--docs) DOCS=$2; shift ;;
	--no-loop) LOOP=0 ;;
	--loop-secs) LOOP_SECS=$2; shift ;;
	--check) CHECK=1 ;;
	--host) HOST=1 ;;
	--driver) DRIVER=$2; shift ;;
	--guest) GUEST=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "bench-xen: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
case $OUT in /*) ;; *) OUT=$TOP/$OUT ;; esac
mkdir -p "$OUT"
t0=$(date +%s)
say() { echo "[bench-xen $(($(date +%s) - t0))s] $*" >&2; }

# Host tools: gnuplot for the plots, python3 for the report.
missing=
for p in gnuplot-nox python3; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "bench-xen: install$missing first" >&2; exit 1; }
	say "installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; }
fi

accel=TCG
if [ -w /dev/kvm ] && grep -qw -e vmx -e svm /proc/cpuinfo; then accel=KVM; fi
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
LOOP_CSVS=()

run_loop() {
	# The loopback bus on this host, same workloads; one xvmsg-bench run per
	# (workload, QD), its modes interleaved in rounds.
	local ls=${LOOP_SECS:-$((REPS * SECS))} w wl qd
	rm -f "$OUT"/loop-*.csv
	for w in randread4k:1 randread4k:32 randwrite4k:1 randwrite4k:32 seqread256k:8 seqwrite256k:8; do
		wl=${w%:*} qd=${w#*:}
		say "loopback: xvmsg-bench --workload $wl --qd $qd --seconds $ls --rounds $REPS"
		"$TOP/build/bin/xvmsg-bench" --workload "$wl" --qd "$qd" --seconds "$ls" --rounds "$REPS" \
			--size 64M --csv "$OUT/loop-$wl-$qd.csv" >"$OUT/loop-$wl-$qd.txt" 2>&1 ||
			{ cat "$OUT/loop-$wl-$qd.txt" >&2; say "xvmsg-bench failed"; exit 1; }
		LOOP_CSVS+=("$OUT/loop-$wl-$qd.csv")
	done
}

if [ "$HOST" = 1 ]; then
	. "$TOP/bench/xen/host.sh"
	exit $?
fi

# ---- the reference system in QEMU ----------------------------------------
IMG=${XVMSG_XEN_OUT:-$TOP/build/xen}
[ "$(cat "$IMG/images/PLAN" 2>/dev/null)" = bench/xen/plan ] ||
	{ echo "bench-xen: $IMG/images was not built with bench/xen/plan: run make bench-xen" >&2; exit 1; }
[ "$LOOP" = 1 ] && run_loop
# Six fio runs per repetition, each four jobs of SECS s plus fio's start
# and the counter snapshots (~30 s under TCG on a busy 2-core host); boot,
# attach and fill take ~4 min there.
timeout=$((360 + REPS * 6 * (4 * SECS + 60)))
say "QEMU ($accel): Xen 4.17, dom0, driver domain, guest; $REPS repetition(s), $SECS s per cell, timeout ${timeout}s"
[ "$accel" = KVM ] && say "KVM is usable: QEMU runs with -accel kvm"
set +e
XVMSG_XEN_OUT=$IMG XVMSG_XEN_TIMEOUT=$timeout XVMSG_XEN_SERIAL=0 XVMSG_XEN_LOG=$OUT/serial.log \
	XVMSG_XEN_ACCEL=${accel,,} \
	XVMSG_XEN_DOM0_APPEND="xvmsg.bench_reps=$REPS xvmsg.bench_secs=$SECS xvmsg.bench_size=$SIZE" \
	"$TOP/scripts/xen/run-qemu.sh"
rc=$?
set -e
[ "$rc" = 0 ] || { say "the QEMU run failed ($rc); serial log $OUT/serial.log"; exit 1; }
say "QEMU run done"

machine="$(nproc) CPUs ($cpu), $mem RAM, Debian $(cat /etc/debian_version); QEMU $(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p') with $accel, -cpu qemu64, 2 vCPUs, 1536 MiB; Xen 4.17, dom0 512 MiB (full-mode backend), driver domain 1 vCPU (xvmsg-backend --no-full, xen-blkback on a loop device), guest 1 vCPU 224 MiB (kernel 6.1, xvmsg.ko, xen-blkfront); disks are files in tmpfs"
cmds="make bench-xen BENCH_REPS=$REPS BENCH_SECS=$SECS BENCH_LOOP_SECS=${LOOP_SECS:-$((REPS * SECS))}
# which runs: bench/xen/mkoverlay.sh build/bench/overlay
#   XVMSG_XEN_OVERLAY=build/bench/overlay make xen-images XEN_PLAN=bench/xen/plan
#   scripts/bench-xen.sh --reps $REPS --secs $SECS --loop-secs ${LOOP_SECS:-$((REPS * SECS))} --docs docs/benchmarks.md --check"
args=(--serial "$OUT/serial.log" --out "$OUT" --machine "$machine" --commands "${cmds//$'\n'/\\n}")
[ "${#LOOP_CSVS[@]}" -gt 0 ] && args+=(--loop "${LOOP_CSVS[@]}")
[ -n "$DOCS" ] && args+=(--docs "$DOCS")
[ "$CHECK" = 1 ] && args+=(--check "$REPS")
python3 "$TOP/bench/xen/report.py" "${args[@]}" >"$OUT/report.txt" || { say "report: FAIL"; exit 1; }
gnuplot "$OUT/plots.gp" || { say "gnuplot failed"; exit 1; }
say "done: $OUT/report.md, $OUT/xen-summary.csv, $OUT/*.png$([ -n "$DOCS" ] && echo ", $DOCS")"
