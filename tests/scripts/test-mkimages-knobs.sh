#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/xen/mkimages.sh (and common.sh, which it sources) refuses a knob it cannot honour before it
# builds anything (a wrong name would otherwise fail only at the end of a
# boot): XVMSG_KMOD_NET other than 0 or 1, XVMSG_KMOD_FAULTS naming a lying
# backend the plan's dom0-test.sh does not list.  The knobs' good values
# get past the check to the build (stopped here by an output folder that
# cannot be made).
set -u
top=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
mk=$top/scripts/xen/mkimages.sh
[ -x "$mk" ] || { echo "no $mk"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/file"
pass=0 fail=0
# expect WANT(refused|passed) NAME PATTERN ENV...: run mkimages.sh with ENV.
expect() {
	local want=$1 name=$2 pat=$3 rc
	shift 3
	# An output folder under a plain file: main() cannot start.
	env XVMSG_XEN_PLAN="$top/tests/xen/kmod" XVMSG_XEN_OUT="$tmp/file/out" \
		XVMSG_XEN_IMAGES="$tmp/file/out/images" XVMSG_XEN_WORK="$tmp/file/out/work" \
		"$@" "$mk" >"$tmp/out" 2>&1
	rc=$?
	if { [ "$want" = refused ] && [ "$rc" != 0 ] && grep -q -- "$pat" "$tmp/out"; } ||
	   { [ "$want" = passed ] && ! grep -q -- "$pat" "$tmp/out"; }; then
		pass=$((pass + 1)); echo "  PASS    mkimages-knobs: $name"
	else
		fail=$((fail + 1)); echo "  FAIL    mkimages-knobs: $name (exit $rc)"; sed 's/^/        | /' "$tmp/out" | tail -5
	fi
}
expect refused "XVMSG_KMOD_NET=2" "XVMSG_KMOD_NET=2: 0 or 1" XVMSG_KMOD_NET=2
expect refused "an unknown lying backend" "no lying backend named 'bogus'" XVMSG_KMOD_FAULTS=irq-storm,bogus
expect refused "a lying backend's mode is not its name" "no lying backend named 'pool'" XVMSG_KMOD_FAULTS=pool
expect passed "known lying backends, commas or spaces" "XVMSG_KMOD" XVMSG_KMOD_FAULTS="irq-storm,snoop avail-rewrite" XVMSG_KMOD_NET=0
expect passed "all" "XVMSG_KMOD" XVMSG_KMOD_FAULTS=all XVMSG_KMOD_NET=1
# Guest 2's kernel (scripts/xen/common.sh): another one only beside a first
# guest on dom0's kernel, and not on arm64; none, or guest 1's, always.
expect passed "a 7.x guest 1, no guest 2 kernel" "XVMSG_GUEST2_KERNEL" XVMSG_GUEST_KERNEL=7.x
expect passed "guest 2 on guest 1's 7.x" "XVMSG_GUEST2_KERNEL" XVMSG_GUEST_KERNEL=7.x XVMSG_GUEST2_KERNEL=7.x
expect passed "guest 2 on 7.x beside dom0's kernel" "XVMSG_GUEST2_KERNEL=7.x:" XVMSG_GUEST2_KERNEL=7.x
expect refused "guest 2 on 7.x beside a 6.12 guest 1" "goes with a first guest on dom0's kernel" \
	XVMSG_GUEST_KERNEL=6.12-trixie XVMSG_GUEST2_KERNEL=7.x
expect refused "guest 2 on 7.x on arm64" "Xen on Arm has one kernel" XVMSG_XEN_ARCH=arm64 XVMSG_GUEST2_KERNEL=7.x
expect refused "guest 2 on an unknown kernel" "XVMSG_GUEST2_KERNEL=6.5: 7.x or 6.12-trixie" XVMSG_GUEST2_KERNEL=6.5
echo "mkimages-knobs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
