#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/xen/init/lib.sh's waits in dom0, against a stand-in xl: a domU
# whose kernel panics before /init is created once more with the pairs it
# was first created with; a second such panic, a panic after /init and a
# death without a panic fail the wait as before.
set -u
# The tree: XVMSG_TOP (make check-unit sets it), else this script's.
top=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
lib=$top/scripts/xen/init/lib.sh
[ -f "$lib" ] || { echo "no $lib"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { echo "  PASS    $1"; pass=$((pass + 1)); }
ko() { echo "  FAIL    $1"; fail=$((fail + 1)); }

# The stand-in xl: "xl domid NAME" answers while $ST/up-NAME exists; "xl
# create CFG PAIRS..." records the pairs (one line per create), appends
# $ST/boot-NAME.N (the Nth create) to the domain's console log and leaves
# the domain up unless $ST/dies-NAME.N exists.
mkdir -p "$tmp/bin"
cat >"$tmp/bin/xl" <<'EOX'
#!/bin/sh
case $1 in
domid)	[ -f "$ST/up-$2" ] && cat "$ST/up-$2" ;;
create)	name=$(basename "$2" .cfg)
	shift 2
	for a in "$@"; do printf '<%s>' "$a"; done >>"$ST/create-$name"
	echo >>"$ST/create-$name"
	n=$(wc -l <"$ST/create-$name")
	echo "$((n + 10))" >"$ST/up-$name"
	[ -f "$ST/boot-$name.$n" ] && cat "$ST/boot-$name.$n" >>"$CONS/guest-$name.log"
	[ -f "$ST/dies-$name.$n" ] && rm -f "$ST/up-$name"
	exit 0 ;;
*)	exit 2 ;;
esac
EOX
chmod +x "$tmp/bin/xl"

panic='[    4.67] RIP: e030:text_poke_early+0x68/0xa0
[    4.67] Kernel panic - not syncing: Attempted to kill the idle task!'
booted='[   12.30] Run /init as init process
XVMSG-MARK driver backend up'

# case NAME: a fresh state, lib.sh sourced, the domain created with two
# pairs; the boots are set up by the caller through $ST before wait runs.
setup() {
	ST=$tmp/$1/st CONS=$tmp/$1/console
	rm -rf "${tmp:?}/$1"
	mkdir -p "$ST" "$CONS"
	export ST CONS
}
run_wait() {
	# A subshell per case: lib.sh's globals and xv_fail's exit stay in it.
	(
		PATH=$tmp/bin:$PATH
		# shellcheck source=scripts/xen/init/lib.sh
		. "$lib"
		XV_RUN=$tmp/$1/run XV_CONSOLE_DIR=$CONS
		xv_xl_create xvmsg-driver "extra=\"console=hvc0 it's\"" vcpus=2 >/dev/null ||
			{ echo "WHY: xl create failed"; exit 0; }
		if xv_wait_console 20 xvmsg-driver "XVMSG-MARK driver backend up" >"$tmp/$1/out" 2>&1; then
			echo "WAIT: ok"
		else
			echo "WHY: $XV_WHY"
		fi
	)
}
creates() { wc -l <"$ST/create-xvmsg-driver" 2>/dev/null || echo 0; }

setup once
printf '%s\n' "$panic" >"$ST/boot-xvmsg-driver.1"
: >"$ST/dies-xvmsg-driver.1"
printf '%s\n' "$booted" >"$ST/boot-xvmsg-driver.2"
res=$(run_wait once)
if [ "$res" = "WAIT: ok" ] && [ "$(creates)" = 2 ] &&
   [ "$(sort -u "$ST/create-xvmsg-driver" | wc -l)" = 1 ] &&
   grep -qx '<extra="console=hvc0 it'"'"'s"><vcpus=2>' "$ST/create-xvmsg-driver" &&
   grep -q 'Kernel panic' "$CONS/guest-xvmsg-driver.panic.log" &&
   ! grep -q 'Kernel panic' "$CONS/guest-xvmsg-driver.log" &&
   grep -q 'XVMSG-STAGE xvmsg-driver: its kernel panicked before /init (RIP: e030:text_poke_early+0x68/0xa0); creating it once more' "$tmp/once/out"; then
	ok "panic before /init: created once more with the same pairs, first log kept, the wait goes on"
else
	ko "panic before /init: $res, $(creates) creates: $(tr '\n' ' ' <"$ST/create-xvmsg-driver" 2>/dev/null) $(cat "$tmp/once/out")"
fi

setup twice
printf '%s\n' "$panic" >"$ST/boot-xvmsg-driver.1"
printf '%s\n' "$panic" >"$ST/boot-xvmsg-driver.2"
: >"$ST/dies-xvmsg-driver.1"
: >"$ST/dies-xvmsg-driver.2"
res=$(run_wait twice)
if [ "$res" = "WHY: domain xvmsg-driver is gone (crashed?)" ] && [ "$(creates)" = 2 ]; then
	ok "a second panic before /init: the wait fails, no third create"
else
	ko "a second panic before /init: $res, $(creates) creates"
fi

setup late
printf '%s\n%s\n' "[   12.30] Run /init as init process" "$panic" >"$ST/boot-xvmsg-driver.1"
: >"$ST/dies-xvmsg-driver.1"
res=$(run_wait late)
if [ "$res" = "WHY: domain xvmsg-driver is gone (crashed?)" ] && [ "$(creates)" = 1 ]; then
	ok "a panic after /init (ours may have caused it): the wait fails, not created again"
else
	ko "a panic after /init: $res, $(creates) creates"
fi

setup gone
echo "[    3.00] nothing to see" >"$ST/boot-xvmsg-driver.1"
: >"$ST/dies-xvmsg-driver.1"
res=$(run_wait gone)
if [ "$res" = "WHY: domain xvmsg-driver is gone (crashed?)" ] && [ "$(creates)" = 1 ]; then
	ok "gone without a panic: the wait fails, not created again"
else
	ko "gone without a panic: $res, $(creates) creates"
fi

# xv_hang_dump: a task running (yes) and one of the test's commands asleep
# (head, reading a pipe nobody writes) are listed with their state; an
# ordinary sleeper (sleep) is not; sysrq's w goes where XV_SYSRQ says.
mkfifo "$tmp/fifo"
yes >/dev/null &
p_yes=$!
head -c 1 "$tmp/fifo" >/dev/null &
p_head=$!
sleep 30 &
p_sleep=$!
exec 9>"$tmp/fifo"	# head's open returns: it sleeps in read
sleep 0.5
res=$(XV_SYSRQ=$tmp/sysrq sh -c ". '$lib'; xv_hang_dump 1" 2>&1)
kill "$p_yes" "$p_head" "$p_sleep" 2>/dev/null
exec 9>&-
wait 2>/dev/null
if echo "$res" | grep -Eq "^  $p_yes R yes" && echo "$res" | grep -Eq "^  $p_head S head" &&
   ! echo "$res" | grep -q "^  $p_sleep " && [ "$(cat "$tmp/sysrq" 2>/dev/null)" = w ]; then
	ok "hang dump: running tasks and the test's commands listed, other sleepers not"
else
	ko "hang dump: yes $p_yes, head $p_head, sleep $p_sleep not as expected: $(echo "$res" | head -20)"
fi

echo "test-xen-lib: $pass passed, $fail failed"
[ "$fail" = 0 ]
