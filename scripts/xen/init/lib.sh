# SPDX-License-Identifier: MIT
# shellcheck shell=dash disable=SC2034
# Helpers for /init and the test plans (busybox sh), in every image as
# /etc/xvmsg/lib.sh.  Source it: . /etc/xvmsg/lib.sh
#
# Output conventions, read by scripts/xen/run-qemu.sh and by dom0:
#   XVMSG-STAGE <what> (uptime <s>s)   a milestone (dom0 prints to serial)
#   XVMSG-MARK <role> <what>           a domU milestone, on its console
#   XVMSG-MARK <role> FAIL: <why>      a domU test failed
#   XVMSG-RESULT: PASS | FAIL <why>    printed once by dom0's /init, last

XV_RUN=/run/xvmsg
XV_CONSOLE_DIR=/var/log/xen/console
XV_ROLE=$(cat /etc/xvmsg/role 2>/dev/null || echo unknown)
# A domain booted from another's image may take a role of its own from the
# kernel command line: xvmsg_role=guest2 (the kmod plan's second guest runs
# the guest image and /etc/xvmsg/guest2-test.sh).
for _a in $(cat /proc/cmdline 2>/dev/null); do
	case $_a in xvmsg_role=?*) XV_ROLE=${_a#xvmsg_role=} ;; esac
done
unset _a

# Whole seconds since boot.
xv_uptime() {
	local up _
	read -r up _ </proc/uptime
	echo "${up%.*}"
}

xv_stage() {
	local up _
	read -r up _ </proc/uptime
	echo "XVMSG-STAGE $* (uptime ${up}s)"
}

xv_mark() {
	echo "XVMSG-MARK $XV_ROLE $*"
}

# xv_fail WHY: record why, say so, and end the calling script with 1.
xv_fail() {
	mkdir -p "$XV_RUN"
	echo "$*" >"$XV_RUN/fail-reason"
	xv_mark "FAIL: $*"
	exit 1
}

# xv_wait SECONDS CMD...: run CMD until it succeeds, for at most SECONDS.
# Returns 0 as soon as CMD did, 1 on timeout.
xv_wait() {
	local limit=$1 end
	shift
	end=$(($(xv_uptime) + limit))
	while :; do
		"$@" && return 0
		[ "$(xv_uptime)" -ge "$end" ] && return 1
		sleep 0.2
	done
}

# xv_read_wait SECONDS PATH: print xenstore PATH once it exists and is
# readable.  Relative paths are in this domain's home, /local/domain/<id>.
xv_read_wait() {
	xv_wait "$1" xenstore-exists "$2" 2>/dev/null || return 1
	xenstore-read "$2"
}

# xv_load_modules: insmod what /etc/xvmsg/modules lists, in order.  A module
# that does not load is reported, not fatal (crc32c-intel needs SSE4.2,
# which -cpu qemu64 lacks; the plan checks what it needs).
xv_load_modules() {
	local ko
	[ -f /etc/xvmsg/modules ] || return 0
	while read -r ko; do
		insmod "$ko" 2>/dev/null || echo "xvmsg: insmod $(basename "$ko") failed" >&2
	done </etc/xvmsg/modules
}

# xv_modprobe NAME...: modprobe each NAME unless the kernel has it built in
# (trixie's 6.12 builds virtio_console in; busybox's modprobe does not know
# modules.builtin).
xv_modprobe() {
	local n
	for n in "$@"; do
		grep -q "/$n.ko\$" "/lib/modules/$(uname -r)/modules.builtin" 2>/dev/null && continue
		modprobe "$n" || return 1
	done
}

# ---- dom0 only -----------------------------------------------------------

# xv_domid NAME: the domain's current id.  Re-read it in every poll loop:
# a domain that crashed and was restarted has a new one.
xv_domid() {
	xl domid "$1" 2>/dev/null
}

xv_console_log() {
	echo "$XV_CONSOLE_DIR/guest-$1.log"
}

# xv_wait_console SECONDS NAME TEXT [NAME TEXT]...: wait until each TEXT
# (a fixed string) has appeared on the console of its domain NAME.
# Returns 1 early when one of these domains reports "XVMSG-MARK <role>
# FAIL", could not unpack its initramfs, or disappears; XV_WHY then says why.
xv_wait_console() {
	local limit=$1 end check_at i name text log missing
	shift
	end=$(($(xv_uptime) + limit))
	check_at=0
	XV_WHY=
	while :; do
		missing=
		i=1
		while [ "$i" -lt "$#" ]; do
			eval "name=\${$i} text=\${$((i + 1))}"
			i=$((i + 2))
			log=$(xv_console_log "$name")
			grep -qF -- "$text" "$log" 2>/dev/null && continue
			missing="$missing '$text' on $name,"
			if grep -q 'XVMSG-MARK [^ ]* FAIL' "$log" 2>/dev/null; then
				XV_WHY="$name: $(grep -m1 'XVMSG-MARK [^ ]* FAIL' "$log" | sed 's/.*FAIL: *//' | tr -d '\r')"
				return 1
			fi
			# The domain builder gave the kernel too little memory for
			# its initramfs: nothing of the plan will run there.
			if grep -q 'Initramfs unpacking failed' "$log" 2>/dev/null; then
				XV_WHY="$name: $(grep -m1 'Initramfs unpacking failed' "$log" | sed 's/^\[[^]]*\] *//' | tr -d '\r') (initramfs too large for the domain's memory?)"
				return 1
			fi
			# Every few seconds (xl is slow under TCG): still there?
			# The domid is looked up anew each time.  A kernel that
			# died before /init gets one more boot, and the wait
			# starts again.
			if [ "$(xv_uptime)" -ge "$check_at" ] && ! xv_domid "$name" >/dev/null; then
				if xv_recreate_early_panic "$name"; then
					end=$(($(xv_uptime) + limit))
					continue
				fi
				XV_WHY="domain $name is gone (crashed?)"
				return 1
			fi
		done
		[ -z "$missing" ] && return 0
		[ "$(xv_uptime)" -ge "$check_at" ] && check_at=$(($(xv_uptime) + 3))
		if [ "$(xv_uptime)" -ge "$end" ]; then
			XV_WHY="timeout after ${limit}s waiting for${missing%,}"
			return 1
		fi
		sleep 0.3
	done
}

# xv_disk_with_serial SERIAL: the block device (vda, ...) whose virtio-blk
# serial is SERIAL; 1 if none.
xv_disk_with_serial() {
	local b
	for b in /sys/block/vd*; do
		[ -e "$b" ] || continue
		[ "$(cat "$b/serial" 2>/dev/null)" = "$1" ] && { echo "${b##*/}"; return 0; }
	done
	return 1
}

# xv_xl_create NAME [KEY=VALUE...]: xl create /etc/xen/NAME.cfg (the
# pairs override the file's keys, as xl takes them), its output in
# /run/xvmsg/xl-create-NAME.log; says how long it took.  The pairs are kept
# in /run/xvmsg/xl-args-NAME for xv_recreate_early_panic.
xv_xl_create() {
	local t0 rc a
	mkdir -p "$XV_RUN"
	t0=$(xv_uptime)
	local name=$1
	shift
	{
		printf 'set --'
		for a in "$@"; do
			printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"
		done
		echo
	} >"$XV_RUN/xl-args-$name"
	xl create "/etc/xen/$name.cfg" "$@" >"$XV_RUN/xl-create-$name.log" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		xv_stage "xl create $name done in $(($(xv_uptime) - t0))s, domid $(xv_domid "$name")"
	else
		echo "xvmsg: xl create $name failed ($rc):" >&2
		sed 's/^/  /' "$XV_RUN/xl-create-$name.log" >&2
	fi
	return "$rc"
}

# xv_early_panic NAME: the domain's kernel panicked before it ran /init,
# so nothing of ours ran there.  Seen now and then under TCG with Debian
# 13's 6.12, in early code patching (an int3, or a general protection fault
# in text_poke_early): docs/xen.md, "Known problems".
xv_early_panic() {
	local log
	log=$(xv_console_log "$1")
	grep -q 'Kernel panic - not syncing' "$log" 2>/dev/null &&
		! grep -q 'Run /init as init process' "$log"
}

# xv_recreate_early_panic NAME: if the domain NAME is gone after such a
# panic, create it once more, with the pairs it was created with; its first
# console log is kept as guest-NAME.panic.log (dom0 prints it at the end).
# Returns 1 (nothing done) for any other death, for a second panic, or for
# a domain xv_xl_create did not make (xvmsg-ctl create's).
xv_recreate_early_panic() {
	local name=$1 log where
	[ -e "$XV_RUN/retried-$name" ] && return 1
	[ -f "$XV_RUN/xl-args-$name" ] || return 1	# not made by xv_xl_create
	xv_early_panic "$name" || return 1
	: >"$XV_RUN/retried-$name"
	log=$(xv_console_log "$name")
	mv "$log" "${log%.log}.panic.log"
	where=$(grep -m1 -o 'RIP: [^ ]*' "${log%.log}.panic.log" | tr -d '\r')
	xv_stage "$name: its kernel panicked before /init${where:+ ($where)}; creating it once more"
	(
		# shellcheck disable=SC1090
		. "$XV_RUN/xl-args-$name"
		xv_xl_create "$name" "$@"
	)
}

# xv_xl_create_both: xl create xvmsg-driver and xvmsg-guest in parallel; if
# either fails, xv_fail with the last line of its xl output.
xv_xl_create_both() {
	local p_driver p_guest
	xv_stage "xl create xvmsg-driver + xvmsg-guest"
	xv_xl_create xvmsg-driver &
	p_driver=$!
	xv_xl_create xvmsg-guest &
	p_guest=$!
	wait "$p_driver" || xv_fail "xl create xvmsg-driver failed: $(tail -n1 "$XV_RUN/xl-create-xvmsg-driver.log")"
	wait "$p_guest" || xv_fail "xl create xvmsg-guest failed: $(tail -n1 "$XV_RUN/xl-create-xvmsg-guest.log")"
}

# xv_hang_dump [LINES]: what a hang leaves to see, on the console.  Tasks
# running or in D state, and the test's own commands wherever they sleep
# (sysrq w shows D tasks only: one waiting interruptibly, or spinning, was
# missing from it), each with its kernel stack; each xvmsg device's
# counters and ring indexes (debugfs stats, queues); each virtio disk's
# requests in flight and its blk-mq queues; then sysrq w and the last
# LINES (60) of dmesg.  (XV_SYSRQ: where the w goes; tests point it away
# from the host's /proc/sysrq-trigger.)
xv_hang_dump() {
	local p st comm f dbg
	[ -d /sys/kernel/debug/block ] ||
		mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	echo "xvmsg: tasks (pid state comm wchan, then the kernel stack):"
	for p in /proc/[0-9]*; do
		comm=$(cat "$p/comm" 2>/dev/null) || continue
		st=$(awk '/^State:/ { print $2; exit }' "$p/status" 2>/dev/null)
		case "$st:$comm" in
		R:* | D:* | ?:dd | ?:mkfs.ext4 | ?:mke2fs | ?:mount | ?:umount | ?:sync | \
		?:yes | ?:head | ?:timeout | ?:cmp | ?:sha256sum) ;;
		*) continue ;;
		esac
		echo "  ${p#/proc/} $st $comm $(cat "$p/wchan" 2>/dev/null)"
		sed 's/^/      /' "$p/stack" 2>/dev/null
	done
	for f in /sys/kernel/debug/xvmsg/*/stats /sys/kernel/debug/xvmsg/*/queues; do
		[ -r "$f" ] || continue
		echo "xvmsg: $f:"
		sed 's/^/  /' "$f"
	done
	for f in /sys/block/vd*; do
		[ -d "$f" ] || continue
		echo "xvmsg: ${f##*/}: in flight (read write) $(cat "$f/inflight")"
		dbg=/sys/kernel/debug/block/${f##*/}
		for p in "$dbg"/state "$dbg"/hctx*/state "$dbg"/hctx*/busy \
			 "$dbg"/hctx*/dispatch "$dbg"/requeue_list; do
			[ -r "$p" ] && echo "  $p: $(tr '\n' ';' <"$p")"
		done
	done
	echo w >"${XV_SYSRQ:-/proc/sysrq-trigger}"
	dmesg | tail -n "${1:-60}"
}
