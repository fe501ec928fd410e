#!/bin/sh
# SPDX-License-Identifier: MIT
# make check's steps, timed: each step's wall time goes to build/check-times.txt
# and the last call prints them with the total, so a run's log says where its
# minutes went (README.md quotes them; CI has 90 minutes, make check aims at
# well under 30).
#
# usage: check-step.sh start            forget the times of an earlier run
#        check-step.sh NAME COMMAND...  run COMMAND, record NAME and its time
#        check-step.sh bg NAME COMMAND...
#                                       start COMMAND in the background (its
#                                       output in build/check-bg.log), for
#                                       work that only saves later steps time
#                                       (downloads); a step that needs its
#                                       result does it again if it failed
#        check-step.sh wait NAME        wait for the background job to end,
#                                       recorded as step NAME (the time the
#                                       steps waited for it)
#        check-step.sh summary          print the table, the background job's
#                                       result (ended by then if still
#                                       running) and the total: the wall time
#                                       since start
set -u
times=build/check-times.txt
bg_pid=build/check-bg.pid
bg_log=build/check-bg.log

fmt() {
	printf '%d min %02d s' $(($1 / 60)) $(($1 % 60))
}

case ${1:-} in
start)
	mkdir -p build && : >"$times"
	rm -f build/check-times-bg.txt "$bg_pid"
	date +%s >build/check-start
	exit 0 ;;
bg)
	shift
	[ $# -ge 2 ] || { echo "check-step: bg: NAME COMMAND..." >&2; exit 2; }
	name=$1
	shift
	mkdir -p build
	# Its own session, so that summary can end it and its children.
	setsid sh -c 'start=$(date +%s); "$@"; rc=$?
		echo "$(($(date +%s) - start)) $rc $0 (background)" >>build/check-times-bg.txt' \
		"$name" "$@" >"$bg_log" 2>&1 </dev/null &
	echo $! >"$bg_pid"
	echo "check-step: $name started in the background (log: $bg_log)"
	exit 0 ;;
wait)
	[ $# -ge 2 ] || { echo "check-step: wait: NAME" >&2; exit 2; }
	start=$(date +%s)
	# Not a child of this shell: poll (a zombie has ended; this machine's
	# PID 1 may leave it unreaped).
	if [ -s "$bg_pid" ]; then
		pid=$(cat "$bg_pid")
		while ps -o stat= -p "$pid" 2>/dev/null | grep -qv '^Z'; do
			sleep 1
		done
		rm -f "$bg_pid"
	fi
	secs=$(($(date +%s) - start))
	echo "$secs 0 $2" >>"$times"
	echo "check-step: $2: waited $(fmt "$secs")"
	exit 0 ;;
summary)
	[ -s "$times" ] || { echo "check-step: no steps recorded in $times" >&2; exit 1; }
	if [ -s "$bg_pid" ]; then
		pid=$(cat "$bg_pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "-$pid" 2>/dev/null
			echo "check-step: the background job was still running; ended it"
		fi
		rm -f "$bg_pid"
	fi
	total=0
	echo "make check, time per step:"
	while read -r secs rc name; do
		total=$((total + secs))
		printf '  %-38s %s%s\n' "$name" "$(fmt "$secs")" "$([ "$rc" = 0 ] || echo "  (failed, exit $rc)")"
	done <"$times"
	if [ -s build/check-times-bg.txt ]; then
		while read -r secs rc name; do
			printf '  %-38s %s%s\n' "$name" "$(fmt "$secs")" "$([ "$rc" = 0 ] || echo "  (failed, exit $rc; the steps did it again)")"
		done <build/check-times-bg.txt
		rm -f build/check-times-bg.txt
	fi
	# The total is the wall time: a background job overlaps the steps.
	[ -s build/check-start ] && total=$(($(date +%s) - $(cat build/check-start)))
	printf '  %-38s %s\n' "total" "$(fmt "$total")"
	exit 0 ;;
'')
	echo "usage: check-step.sh start | summary | bg NAME COMMAND... | wait NAME | NAME COMMAND..." >&2
	exit 2 ;;
esac

name=$1
shift
[ $# -gt 0 ] || { echo "check-step: $name: no command" >&2; exit 2; }
mkdir -p build
start=$(date +%s)
"$@"
rc=$?
secs=$(($(date +%s) - start))
echo "$secs $rc $name" >>"$times"
echo "check-step: $name took $(fmt "$secs")$([ "$rc" = 0 ] || echo ", failed (exit $rc)")"
exit "$rc"
