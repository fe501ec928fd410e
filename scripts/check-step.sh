#!/bin/sh
# SPDX-License-Identifier: MIT
# make check's steps, timed: each step's wall time goes to build/check-times.txt
# and the last call prints them with the total, so a run's log says where its
# minutes went (README.md quotes them; CI has 90 minutes, make check aims at
# well under 30).
#
# usage: check-step.sh start            forget the times of an earlier run
#        check-step.sh NAME COMMAND...  run COMMAND, record NAME and its time
#        check-step.sh summary          print the table and the total
set -u
times=build/check-times.txt

fmt() {
	printf '%d min %02d s' $(($1 / 60)) $(($1 % 60))
}

case ${1:-} in
start)
	mkdir -p build && : >"$times"
	exit 0 ;;
summary)
	[ -s "$times" ] || { echo "check-step: no steps recorded in $times" >&2; exit 1; }
	total=0
	echo "make check, time per step:"
	while read -r secs rc name; do
		total=$((total + secs))
		printf '  %-38s %s%s\n' "$name" "$(fmt "$secs")" "$([ "$rc" = 0 ] || echo "  (failed, exit $rc)")"
	done <"$times"
	printf '  %-38s %s\n' "total" "$(fmt "$total")"
	exit 0 ;;
'')
	echo "usage: check-step.sh start | summary | NAME COMMAND..." >&2
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
