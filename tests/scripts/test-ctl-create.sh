#!/bin/bash
# SPDX-License-Identifier: MIT
# xvmsg-ctl create and attach-from without Xen: a stand-in xl (XVMSG_XL)
# logs how it is called.  On a host without xenstore, create must run
# 'xl create -p' with the options given, find the domain, fail to open
# xenstore and destroy the paused domain; bad entries are refused before xl
# is run at all.  The parser itself: tests/unit/test-ctl-parse.c.
set -u
top=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${XVMSG_BIN:-$top/build/bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/xl" <<'XL'
#!/bin/sh
echo "$*" >>"$FAKE_XL_LOG"
[ "$1" = "${FAKE_XL_FAIL:-}" ] && { echo "fake xl: $1 failed" >&2; exit 3; }
[ "$1" = domid ] && echo 7
exit 0
XL
chmod +x "$tmp/xl"
export XVMSG_XL=$tmp/xl FAKE_XL_LOG=$tmp/log

pass=0 fail=0
# check NAME WANT_RC WANT_OUTPUT WANT_LOG CTL-ARGS...: the exit status, a
# piece of the output, and the xl calls, one a line ("" for none).
check() {
	local name=$1 want_rc=$2 want_out=$3 want_log=$4 rc out log
	shift 4
	: >"$tmp/log"
	out=$("$bin/xvmsg-ctl" "$@" 2>&1)
	rc=$?
	log=$(cat "$tmp/log")
	if [ "$rc" = "$want_rc" ] && [[ "$out" == *"$want_out"* ]] && [ "$log" = "$want_log" ]; then
		echo "  PASS    $name"; pass=$((pass + 1))
	else
		echo "  FAIL    $name: exit $rc (want $want_rc)"
		echo "$out" | sed 's/^/          out: /'
		echo "$log" | sed 's/^/          xl:  /'
		fail=$((fail + 1))
	fi
}

cfg=$tmp/guest.cfg
cat >"$cfg" <<'CFG'
name = "g1"
memory = 128
xvmsg = [ "blk, backend=drv, path=/srv/d.img, serial=d0",
          "rng, backend=drv" ]
CFG
if [ -e /dev/xen/xenbus ] || [ -S /var/run/xenstored/socket ] || [ -S /run/xenstored/socket ]; then
	echo "  SKIP    create with a stand-in xl: this host has xenstore"
else
	check "create: xl create -p, domid, no xenstore: destroy" 1 \
		"domain g1 destroyed" "create -p -q -e $cfg
domid g1
destroy 7" create "$cfg" -q -e
fi
FAKE_XL_FAIL=create check "create: xl create fails: nothing else" 1 \
	"xl create -p failed (xl exited with status 3); nothing was created" "create -p $cfg" create "$cfg"
FAKE_XL_FAIL=domid check "create: domain not found: destroy by name" 1 \
	"domain g1 destroyed" "create -p $cfg
domid g1
destroy g1" create "$cfg"
XVMSG_XL=$tmp/no-such-xl check "create: no xl" 1 "could not run xl; set XVMSG_XL" "" create "$cfg"

bad=$tmp/bad.cfg
printf 'name = "g1"\nxvmsg = [ "blk, backend=drv, path=/x",\n  "blk, backend=drv, colour=blue" ]\n' >"$bad"
check "create: unknown key refused before xl" 1 \
	"bad.cfg:3: xvmsg entry \"blk, backend=drv, colour=blue\": unknown key 'colour' for blk" "" create "$bad"
printf 'name = "g1"\nxvmsg = [ "nic, backend=drv" ]\n' >"$bad"
check "attach-from: unknown type refused" 1 "bad.cfg:2: xvmsg entry \"nic, backend=drv\": device type 'nic' unknown" \
	"" attach-from "$bad"
printf 'name = "g1"\nxvmsg = [ "rng, devid=1" ]\n' >"$bad"
check "create: missing backend refused" 1 "bad.cfg:2: xvmsg entry \"rng, devid=1\": backend=DOMAIN missing" "" create "$bad"
printf 'name = "g1"\nxvmsg = [ "rng, backend=d",\n"rng, backend=d" ]\n' >"$bad"
check "create: duplicate device refused" 1 "bad.cfg:3: the same device (rng from d) as the entry on line 2" "" create "$bad"
printf 'name = "g1"\nmemory = 128\n' >"$bad"
check "attach-from: no devices" 1 "declares no devices" "" attach-from "$bad"
check "create: KEY=VALUE is not passed to xl" 2 "'memory=512' is not an xl option" "" create "$cfg" memory=512
check "create: -c refused" 2 "'-c' is not allowed" "" create "$cfg" -c
check "create: no such file" 1 "no-such.cfg: No such file or directory" "" create "$tmp/no-such.cfg"
printf 'blk backend=d colour=blue\n' >"$tmp/f.xvmsg"
check "apply still reads description files" 1 "f.xvmsg:1: unknown key 'colour'" "" apply g1 "$tmp/f.xvmsg"

echo "ctl-create: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
