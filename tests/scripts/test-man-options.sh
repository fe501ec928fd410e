#!/bin/bash
# SPDX-License-Identifier: MIT
# Each program's --help and its man page (docs/man/) name the same options,
# long and short, so that neither falls behind when an option is added.
set -u
# The tree: XVMSG_TOP (make check-unit sets it), else this script's; the
# programs: XVMSG_BIN, else build/bin.  XVMSG_XEN=0: built without Xen, so
# there is no xvmsg-ctl to ask.
top=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${XVMSG_BIN:-$top/build/bin}

# options: the options a text names, one a line, sorted: --long and -x.
options() {
	grep -oE -- '(^|[^A-Za-z0-9-])--?[A-Za-z][A-Za-z-]*' |
		sed -E 's/^[^-]*//' | grep -E -- '^(--[a-z][a-z-]*[a-z]|-[A-Za-z])$' | sort -u
}
# man_text PAGE: the roff source with escaped dashes and font changes undone.
man_text() {
	sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/^\.[A-Z]* //' "$1"
}

pass=0 fail=0
# same WHAT A B A_NAME B_NAME: the two sorted lists must match.
same() {
	if [ -n "$2" ] && [ "$2" = "$3" ]; then
		echo "  PASS    $1: $4 and $5 name the same $(echo "$2" | wc -l)"
		pass=$((pass + 1))
	else
		echo "  FAIL    $1: they differ (< only in $4, > only in $5)"
		diff <(echo "$2") <(echo "$3") | grep '^[<>]' | sed 's/^/          /'
		fail=$((fail + 1))
	fi
}
for prog in xvmsg-backend xvmsg-ctl; do
	if [ "$prog" = xvmsg-ctl ] && [ "${XVMSG_XEN:-1}" = 0 ]; then
		echo "  SKIP    $prog: built without Xen"; continue
	fi
	page=$top/docs/man/$prog.8
	if [ ! -x "$bin/$prog" ] || [ ! -f "$page" ]; then
		echo "  FAIL    $prog: no $bin/$prog or no $page"; fail=$((fail + 1)); continue
	fi
	same "$prog" "$("$bin/$prog" --help | options)" "$(man_text "$page" | options)" \
		"--help" "$prog.8"
done
# The module's parameters (module_param* in guest-kernel/) and xvmsg.4.
page=$top/docs/man/xvmsg.4
params=$(grep -ohE 'module_param(_cb)?\([a-z_]+' "$top"/guest-kernel/*.c | sed 's/.*(//' | sort -u)
man=$(sed -e 's/\\f[BIRP]//g' "$page" 2>/dev/null | grep -oE '^\.BI [a-z_]+=' | sed 's/^\.BI //; s/=$//' | sort -u)
same xvmsg.ko "$params" "$man" "module_param" "xvmsg.4"
echo "man-options: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
