#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/xen/run-qemu.sh judges a run by its serial log: a stand-in QEMU
# prints chosen lines, and the runner must pass or fail as the log says.
# Faults a plan may pass through (an initramfs that could not be unpacked,
# busybox usage text) must fail a run that printed PASS.
set -u
# The tree: XVMSG_TOP (make check-unit sets it), else this script's.
top=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
run=$top/scripts/xen/run-qemu.sh
[ -x "$run" ] || { echo "no $run"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/images" "$tmp/out"
: >"$tmp/images/xen"
: >"$tmp/images/vmlinuz"
: >"$tmp/images/dom0.cpio.gz"

# The stand-in: writes $tmp/lines into the chardev's logfile= and exits.
cat >"$tmp/qemu" <<EOQ
#!/bin/sh
for a in "\$@"; do
	case \$a in *logfile=*) log=\${a#*logfile=}; log=\${log%%,*} ;; esac
done
cat "$tmp/lines" >>"\$log"
exit 0
EOQ
chmod +x "$tmp/qemu"

pass=0 fail=0
# case NAME WANT_RC EXPECT_IN_STDERR LINE...
case_() {
	local name=$1 want=$2 expect=$3 rc
	shift 3
	printf '%s\n' "$@" >"$tmp/lines"
	XVMSG_XEN_IMAGES=$tmp/images XVMSG_XEN_OUT=$tmp/out XVMSG_XEN_QEMU=$tmp/qemu \
		XVMSG_XEN_SERIAL=0 XVMSG_XEN_TIMEOUT=60 "$run" >"$tmp/stdout" 2>"$tmp/stderr"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "FAIL $name: exit $rc, want $want"; sed 's/^/  | /' "$tmp/stderr"
		fail=$((fail + 1)); return
	fi
	if [ -n "$expect" ] && ! grep -qF -- "$expect" "$tmp/stderr"; then
		echo "FAIL $name: stderr lacks '$expect'"; sed 's/^/  | /' "$tmp/stderr"
		fail=$((fail + 1)); return
	fi
	echo "ok   $name"
	pass=$((pass + 1))
}

case_ "a clean PASS passes" 0 "PASS" \
	"Xen version 4.17" "XVMSG-STAGE all good (uptime 1s)" "XVMSG-RESULT: PASS"
case_ "FAIL fails" 1 "FAIL: it broke" "XVMSG-RESULT: FAIL it broke"
case_ "no result fails" 1 "no XVMSG-RESULT line" "Xen version 4.17"
case_ "a domU's initramfs that did not unpack fails a PASS" 1 "Initramfs unpacking failed" \
	"XVMSG-RESULT: PASS" "[xvmsg-guest] [    1.2] Initramfs unpacking failed: write error"
case_ "busybox usage text fails a PASS" 1 "busybox usage text" \
	"XVMSG-RESULT: PASS" "[xvmsg-driver] grep: unrecognized option '--line-buffered'" \
	"[xvmsg-driver] BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary."

# dom0's kernel panicking before /init (nothing of the plan ran) boots once
# more: a stand-in that panics on its first start and passes on the second.
cat >"$tmp/qemu2" <<EOQ
#!/bin/sh
for a in "\$@"; do
	case \$a in *logfile=*) log=\${a#*logfile=}; log=\${log%%,*} ;; esac
done
n=\$(cat "$tmp/starts" 2>/dev/null || echo 0); n=\$((n + 1)); echo \$n >"$tmp/starts"
if [ \$n = 1 ]; then cat "$tmp/lines1" >>"\$log"; else cat "$tmp/lines2" >>"\$log"; fi
exit 0
EOQ
chmod +x "$tmp/qemu2"
# retry NAME WANT_RC WANT_STARTS EXPECT: with lines1 and lines2 written.
retry() {
	local rc starts
	rm -f "$tmp/starts"
	XVMSG_XEN_IMAGES=$tmp/images XVMSG_XEN_OUT=$tmp/out XVMSG_XEN_QEMU=$tmp/qemu2 \
		XVMSG_XEN_SERIAL=0 XVMSG_XEN_TIMEOUT=60 "$run" >"$tmp/stdout" 2>"$tmp/stderr"
	rc=$? starts=$(cat "$tmp/starts")
	if [ "$rc" -ne "$2" ] || [ "$starts" -ne "$3" ] || ! grep -qF -- "$4" "$tmp/stderr"; then
		echo "FAIL $1: exit $rc (want $2), $starts starts (want $3), or stderr lacks '$4'"
		sed 's/^/  | /' "$tmp/stderr"; fail=$((fail + 1)); return
	fi
	echo "ok   $1"
	pass=$((pass + 1))
}
printf '%s\n' "Xen version 4.20" "Linux version 6.12" "[    4.53] Oops: int3: 0000 [#1]" \
	"[    4.54] Kernel panic - not syncing: Fatal exception in interrupt" >"$tmp/lines1"
printf '%s\n' "Xen version 4.20" "Linux version 6.12" "Run /init as init process" "XVMSG-RESULT: PASS" >"$tmp/lines2"
retry "a dom0 panic before /init: booted once more, passes" 0 2 "booting once more"
cp "$tmp/lines1" "$tmp/lines2"
retry "the same panic twice: fails, no third boot" 1 2 "KERNEL PANIC in dom0"
printf '%s\n' "Xen version 4.20" "Linux version 6.12" "Run /init as init process" \
	"Kernel panic - not syncing: in the plan" >"$tmp/lines1"
printf '%s\n' "XVMSG-RESULT: PASS" >"$tmp/lines2"
retry "a dom0 panic after /init: fails, no second boot" 1 1 "KERNEL PANIC in dom0"

echo "run-qemu: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
