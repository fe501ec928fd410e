#!/bin/bash
# SPDX-License-Identifier: MIT
# Boot build/xen/images (Xen 4.17, or 4.20 with XVMSG_DISTRO=trixie, or Xen
# on Arm with XVMSG_XEN_ARCH=arm64, + dom0
# with its test plan) in QEMU under TCG and report the outcome; the outcome
# also goes to $XVMSG_XEN_OUT/results/<plan> (scripts/xen/combos.sh).
#
#   scripts/xen/run-qemu.sh
#
# Serial output goes to stdout and to the log file; progress lines with the
# time of each boot milestone go to stderr.  Exits 0 iff the serial line
# showed "XVMSG-RESULT: PASS"; 1 on FAIL or when QEMU stopped without a
# result; 124 when the overall timeout hit (QEMU is killed).  Unless PASS,
# the XVMSG lines and the last 50 lines of the log are shown on stderr.  One QEMU at a time: a lock file serialises runs.
#
# Environment:
#   XVMSG_XEN_TIMEOUT      overall seconds (default 600); dom0's test plan
#                          gets this minus 60 so that it reports first
#   XVMSG_XEN_LOG          serial log (default build/xen/serial.log)
#   XVMSG_XEN_SERIAL=0     do not copy the serial output to stdout
#   XVMSG_XEN_DOM0_APPEND  more dom0 kernel arguments (e.g. xvmsg.shell)
#   XVMSG_XEN_XEN_APPEND   more Xen arguments
#   XVMSG_XEN_QEMU         the QEMU binary (default qemu-system-x86_64,
#                          qemu-system-aarch64 for XVMSG_XEN_ARCH=arm64)
#   XVMSG_XEN_ARCH=arm64   boot build/xen-arm64/images: Xen on Arm on QEMU's
#                          virt machine with EL2 (see below)
#   XVMSG_XEN_ACCEL        tcg (default) or kvm, when /dev/kvm is usable
#                          (x86 only: arm64 is always emulated here)
#   XVMSG_XEN_INTERACTIVE=1  no timeout, no checks: the serial line is this
#                          terminal and dom0 gives a shell after the plan
#                          (xvmsg.shell); Ctrl-a x quits QEMU
set -euo pipefail
. "$(dirname "$0")/common.sh"

IMG=$XVMSG_XEN_IMAGES
TIMEOUT=${XVMSG_XEN_TIMEOUT:-600}
LOG=${XVMSG_XEN_LOG:-$XVMSG_XEN_OUT/serial.log}
SERIAL=${XVMSG_XEN_SERIAL:-1}
ARCH=$XVMSG_XEN_ARCH
if [ "$ARCH" = amd64 ]; then
	QEMU=${XVMSG_XEN_QEMU:-qemu-system-x86_64}
else
	QEMU=${XVMSG_XEN_QEMU:-qemu-system-aarch64}
fi
PLAN_TIMEOUT=$((TIMEOUT - 60))
[ "$PLAN_TIMEOUT" -ge 30 ] || PLAN_TIMEOUT=30

for f in xen vmlinuz dom0.cpio.gz; do
	[ -f "$IMG/$f" ] || xen_die "no $IMG/$f: run scripts/xen/mkimages.sh (or make xen-images)"
done
command -v "$QEMU" >/dev/null || xen_die "no $QEMU: run scripts/xen/fetch.sh"

ACCEL=${XVMSG_XEN_ACCEL:-tcg}
if [ "$ARCH" = amd64 ]; then
	# Known good (docs: shared guide xen-in-qemu.md): -cpu qemu64, since with
	# max or EPYC programs in PV guests crash at random.
	CPU=qemu64
	XEN_ARGS="dom0_mem=512M,max:512M console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all ${XVMSG_XEN_XEN_APPEND:-}"
	DOM0_ARGS="console=hvc0 earlyprintk=xen panic=5 xvmsg.plan_timeout=$PLAN_TIMEOUT ${XVMSG_XEN_DOM0_APPEND:-}"
	QEMU_ARGS=(-machine pc -accel "$ACCEL" -cpu qemu64 -m 1536 -smp 2
		-display none -nic none -no-reboot
		-kernel "$IMG/xen" -append "$XEN_ARGS")
	# dom0's kernel and initramfs: multiboot modules, one -initrd string.
	dom0_modules() { printf "%s\n" -initrd "$IMG/vmlinuz $1,$IMG/dom0.cpio.gz"; }
else
	# Xen on Arm: the virt machine with EL2 (virtualization=on) and GICv3,
	# the device tree made by QEMU.  -kernel loads Xen (an arm64 Image);
	# two guest-loader devices put dom0's kernel (with its command line)
	# and initramfs into RAM and describe them as /chosen/module@ADDR
	# nodes ("multiboot,kernel", "multiboot,ramdisk"), which is how Xen on
	# Arm finds dom0 (docs/misc/arm/device-tree/booting.txt).  No
	# firmware, no bootloader.  cortex-a57: no pointer authentication,
	# whose emulation makes max several times slower under TCG.
	CPU=${XVMSG_XEN_CPU:-cortex-a57}
	[ "$ACCEL" = tcg ] || xen_die "XVMSG_XEN_ACCEL=$ACCEL: Xen on Arm runs under tcg only here"
	# xsm=dummy: Debian's Xen for Arm is built with XSM SILO as the
	# default policy (CONFIG_XSM_SILO_DEFAULT, the Kconfig default on Arm),
	# which refuses grants and event channels between two unprivileged
	# domains -- exactly what a driver domain and its guest use.  (On x86
	# the default is the dummy policy, which lets them.)
	XEN_ARGS="dom0_mem=512M console=dtuart xsm=dummy loglvl=all guest_loglvl=all ${XVMSG_XEN_XEN_APPEND:-}"
	DOM0_ARGS="console=hvc0 panic=5 xvmsg.plan_timeout=$PLAN_TIMEOUT ${XVMSG_XEN_DOM0_APPEND:-}"
	QEMU_ARGS=(-machine virt,virtualization=on,gic-version=3 -accel tcg -cpu "$CPU" -m 1536 -smp 2
		-display none -nic none -no-reboot
		-kernel "$IMG/xen" -append "$XEN_ARGS")
	# RAM starts at 0x40000000 with Xen at +2 MiB; the kernel at +32 MiB,
	# the initramfs 2 MiB-aligned after it.  (QEMU refuses overlaps.)
	mib=$((1024 * 1024))
	k_addr=$((0x42000000))
	ksize=$(stat -c %s "$IMG/vmlinuz")
	i_addr=$(( (k_addr + ksize + 4 * mib) / (2 * mib) * (2 * mib) ))
	# guest-loader takes "," as its own separator: none in the arguments.
	dom0_modules() {
		printf -- '-device\nguest-loader,addr=0x%x,kernel=%s,bootargs=%s\n-device\nguest-loader,addr=0x%x,initrd=%s\n' \
			"$k_addr" "$IMG/vmlinuz" "$1" "$i_addr" "$IMG/dom0.cpio.gz"
	}
fi
mapfile -t DOM0_MODULES < <(dom0_modules "$DOM0_ARGS")
[ "$ARCH" = amd64 ] || case $DOM0_ARGS in *,*) xen_die "a comma in dom0's arguments: $DOM0_ARGS" ;; esac

if [ "${XVMSG_XEN_INTERACTIVE:-0}" = 1 ]; then
	mapfile -t DOM0_MODULES < <(dom0_modules "$DOM0_ARGS xvmsg.shell")
	exec "$QEMU" "${QEMU_ARGS[@]}" -serial mon:stdio "${DOM0_MODULES[@]}"
fi

mkdir -p "$(dirname "$LOG")" "$XVMSG_XEN_OUT"
exec 9>"$XVMSG_XEN_OUT/qemu.lock"
if ! flock -n 9; then
	xen_log "another run-qemu.sh holds $XVMSG_XEN_OUT/qemu.lock; waiting (up to ${TIMEOUT}s)"
	flock -w "$TIMEOUT" 9 || xen_die "still locked after ${TIMEOUT}s"
fi

: >"$LOG"
# fd 3: where QEMU's copy of the serial line goes.  (Not >/dev/stdout: that
# reopens, and truncates, a stdout redirected to a file.)
if [ "$SERIAL" = 1 ]; then exec 3>&1; else exec 3>/dev/null; fi

qpid=
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill "$qpid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$qpid" 2>/dev/null || break
			sleep 0.5
		done
		kill -9 "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

xen_t0=$(date +%s.%N)
xen_log "starting $QEMU (${ACCEL^^}, -cpu $CPU, -m 1536, -smp 2), timeout ${TIMEOUT}s, log $LOG"
[ -f "$IMG/PLAN" ] && xen_log "test plan in the images: $(cat "$IMG/PLAN")"
"$QEMU" "${QEMU_ARGS[@]}" -monitor none \
	-chardev "stdio,id=ser0,signal=off,logfile=$LOG" -serial chardev:ser0 \
	"${DOM0_MODULES[@]}" \
	</dev/null >&3 2>"$XVMSG_XEN_OUT/qemu.stderr" &
qpid=$!

# Milestones: a pattern (fixed string, first hit only) and what it means.
# XVMSG-STAGE lines from dom0 are shown as they come.
milestones=(
	"Xen version 4.|Xen started"
	"*** Building a PV Dom0 ***|Xen builds dom0"
	"*** LOADING DOMAIN 0 ***|Xen builds dom0"
	"Linux version|dom0 kernel starts"
	"Run /init as init process|dom0 kernel runs /init"
	"Panic on CPU|XEN PANIC"
	"Kernel panic|KERNEL PANIC in dom0"
)
declare -A hit=()
SUMMARY=$XVMSG_XEN_OUT/timings.txt
: >"$SUMMARY"

elapsed() { echo "$(date +%s.%N) $xen_t0" | awk '{printf "%.1f", $1 - $2}'; }

note() {
	local t
	t=$(elapsed)
	printf '[run-qemu %6ss] %s\n' "$t" "$1" >&2
	printf '%s\t%s\n' "$t" "$1" >>"$SUMMARY"
}

# scan FROM TO: look at serial lines FROM..TO for milestones.
result=
scan() {
	local chunk m pat what line
	# Without the domU consoles that dom0 copies at the end ("[name] ...").
	chunk=$(sed -n "$1,$2p" "$LOG" | tr -d '\r' | grep -av '^\[[A-Za-z]' || true)
	for m in "${milestones[@]}"; do
		pat=${m%%|*} what=${m#*|}
		[ -n "${hit[$pat]:-}" ] && continue
		if grep -qF -- "$pat" <<<"$chunk"; then
			hit[$pat]=1
			note "$what"
		fi
	done
	while IFS= read -r line; do
		case $line in
		*XVMSG-STAGE*) note "${line#*XVMSG-STAGE }" ;;
		*XVMSG-RESULT:*)
			result=${line#*XVMSG-RESULT: }
			note "result: $result"
			;;
		esac
	done < <(grep -E 'XVMSG-(STAGE|RESULT:)' <<<"$chunk" || true)
}

seen=0
deadline=$(($(date +%s) + TIMEOUT))
status=
while :; do
	# Only whole lines: the last one may still be growing.
	n=$(wc -l <"$LOG")
	if [ "$n" -gt "$seen" ]; then
		scan $((seen + 1)) "$n"
		seen=$n
	fi
	if ! kill -0 "$qpid" 2>/dev/null; then
		wait "$qpid" && qrc=0 || qrc=$?
		qpid=
		n=$(wc -l <"$LOG")
		[ "$n" -gt "$seen" ] && scan $((seen + 1)) "$n"
		note "QEMU exited ($qrc)"
		break
	fi
	if [ -n "$result" ] && [ -z "${result_at:-}" ]; then
		result_at=$(date +%s)
	fi
	# After the result dom0 powers off; give it 30 s, then stop QEMU.
	if [ -n "${result_at:-}" ] && [ "$(date +%s)" -ge $((result_at + 30)) ]; then
		note "QEMU still running 30 s after the result: stopping it"
		cleanup
		qpid=
		break
	fi
	if [ "$(date +%s)" -ge "$deadline" ]; then
		status=timeout
		note "TIMEOUT after ${TIMEOUT}s: stopping QEMU"
		cleanup
		qpid=
		break
	fi
	sleep 0.5
done

# Over the whole log, domU consoles included: faults that a plan may pass
# through but that must not stay unnoticed.
#   - a kernel that could not unpack its initramfs (its domain's memory is
#     too small for it): later steps fail for reasons that look unrelated;
#   - a busybox applet called with an option it does not have: it prints its
#     usage text instead of doing the work.
check_log() {
	local line
	line=$(grep -a -m1 'Initramfs unpacking failed' "$LOG" | tr -d '\r' || true)
	if [ -n "$line" ]; then
		note "FAIL: $line (a kernel's initramfs does not fit its domain's memory)"
		return 1
	fi
	line=$(grep -a -m1 -B1 'multi-call binary' "$LOG" | head -1 | tr -d '\r' || true)
	if [ -n "$line" ]; then
		note "FAIL: busybox usage text in the log (an applet got an option it lacks): $line"
		return 1
	fi
	return 0
}
if ! check_log && [ "$status" != timeout ] && [ "$result" = PASS ]; then
	result="FAIL the log shows a fault (above)"
fi

# results/PLAN: what ran and how it ended, for the table of tested
# combinations (scripts/xen/combos.sh): the images' COMBO (distro, Xen,
# kernels), the plan, the result, the date and the seconds of QEMU.
write_result() {
	local plan name
	plan=$(cat "$IMG/PLAN" 2>/dev/null || echo unknown)
	name=$(basename "$plan")
	mkdir -p "$XVMSG_XEN_OUT/results"
	{
		cat "$IMG/COMBO" 2>/dev/null || true
		echo "plan $plan"
		echo "result $1"
		echo "date $(date -u +%Y-%m-%d)"
		echo "seconds $(elapsed | cut -d. -f1)"
	} >"$XVMSG_XEN_OUT/results/$name.tmp"
	mv "$XVMSG_XEN_OUT/results/$name.tmp" "$XVMSG_XEN_OUT/results/$name"
}
if [ "$status" = timeout ]; then
	write_result TIMEOUT
elif [ "$result" = PASS ]; then
	write_result PASS
else
	write_result FAIL
fi

# dom0's own kernel crashed while booting, before /init and so before
# anything of ours ran: run once more (Debian 13's 6.12 under TCG once hit
# an int3 of its static-key patching in sched_clock_cpu at 4.5 s and
# panicked).  The first log is kept as serial.log.1.  A second such crash,
# or any crash after /init, fails as usual.
if [ "$status" != timeout ] && [ "$result" != PASS ] && [ -n "${hit["Kernel panic"]:-}" ] &&
   [ -z "${hit["Run /init as init process"]:-}" ] && [ "${XVMSG_XEN_RETRIED:-0}" = 0 ]; then
	grep -a -m1 -B2 -A12 'Oops\|Kernel panic' "$LOG" | tr -d '\r' >&2 || true
	cp "$LOG" "$LOG.1"
	xen_log "dom0's kernel panicked before /init (none of the plan ran; its log: $LOG.1): booting once more"
	exec 9>&-
	XVMSG_XEN_RETRIED=1 exec "$0" "$@"
fi

if [ "$status" = timeout ] || [ "$result" != PASS ]; then
	echo "----- XVMSG lines of $LOG -----" >&2
	grep -a 'XVMSG-' "$LOG" | tr -d '\r' >&2 || true
	echo "----- last 50 lines of $LOG -----" >&2
	tail -n 50 "$LOG" | tr -d '\r' >&2
	if [ -s "$XVMSG_XEN_OUT/qemu.stderr" ]; then
		echo "----- QEMU stderr -----" >&2
		cat "$XVMSG_XEN_OUT/qemu.stderr" >&2
	fi
	[ "$status" = timeout ] && exit 124
	if [ -z "$result" ]; then
		xen_log "no XVMSG-RESULT line: FAIL"
	else
		xen_log "FAIL: ${result#FAIL }"
	fi
	exit 1
fi
xen_log "PASS (timings in $SUMMARY)"
exit 0
