#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/check-step.sh times make check's steps: a step keeps its command's
# exit status, and the summary names every step, marks the failed one and
# adds the times up.
set -u
top=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
step=$top/scripts/check-step.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
fail=0
no() { echo "FAIL: $*"; fail=1; }

"$step" summary >/dev/null 2>&1 && no "a summary without steps succeeded"
"$step" start || no "start failed"
"$step" "first step" true >/dev/null || no "a passing step failed"
"$step" "slow step" sleep 1 >/dev/null || no "a passing step failed"
"$step" "broken step" sh -c 'exit 3' >/dev/null
rc=$?
[ "$rc" = 3 ] || no "a failing step returned $rc, not its command's 3"
"$step" "no command" >/dev/null 2>&1 && no "a step without a command succeeded"
out=$("$step" summary) || no "summary failed"
for want in "first step" "slow step" "broken step.*failed, exit 3" "total"; do
	echo "$out" | grep -q -- "$want" || no "summary lacks '$want': $out"
done
echo "$out" | grep -q "first step.*failed" && no "the passing step is marked failed"
secs=$(awk '$3 == "slow" { print $1 }' build/check-times.txt)
[ "${secs:-0}" -ge 1 ] || no "the 1 s step was timed ${secs:-nothing}"
total=$(echo "$out" | sed -n 's/^ *total *\([0-9]*\) min \([0-9]*\) s$/\1 \2/p')
[ -n "$total" ] || no "no total line: $out"
"$step" start && [ ! -s build/check-times.txt ] || no "start kept an earlier run's times"

# A background job: its time and status are reported; the total is the wall
# time (the job overlaps the steps), not the sum.
"$step" bg "quick download" sh -c 'echo fetched; exit 4' >/dev/null || no "bg failed to start"
"$step" "overlapping step" sleep 2 >/dev/null || no "a passing step failed"
out=$("$step" summary) || no "summary failed"
echo "$out" | grep -q "quick download (background).*failed, exit 4" || no "summary lacks the background job's failure: $out"
grep -q fetched build/check-bg.log || no "the background job's output is not in build/check-bg.log"
total=$(echo "$out" | sed -n 's/^ *total *\([0-9]*\) min \([0-9]*\) s$/\2/p')
[ "${total:-0}" -ge 2 ] && [ "${total:-99}" -le 4 ] || no "total ${total:-none} s, not the wall time of about 2 s: $out"
# wait: the steps after it start once the background job has ended.
"$step" start
"$step" bg "two-second download" sh -c 'sleep 2; touch build/fetched' >/dev/null
"$step" wait "downloads" >/dev/null || no "wait failed"
[ -e build/fetched ] || no "wait returned before the background job ended"
secs=$(awk '$3 == "downloads" { print $1 }' build/check-times.txt)
[ "${secs:-0}" -ge 1 ] || no "the wait was timed ${secs:-nothing}"
"$step" summary | grep -q "two-second download (background)" || no "summary lacks the ended job"
"$step" wait "nothing to wait for" >/dev/null || no "a wait without a job failed"
# One still running at the summary is ended, with its children.
"$step" start
"$step" bg "slow download" sh -c 'sleep 30 & sleep 30; wait' >/dev/null
sleep 0.5
pid=$(cat build/check-bg.pid)
"$step" "short step" true >/dev/null
out=$("$step" summary) || no "summary failed"
echo "$out" | grep -q "still running; ended it" || no "summary did not end the running job: $out"
sleep 0.5
# (Zombies do not count: this machine's PID 1 may not reap them.)
ps -o stat= -g "$pid" | grep -qv '^Z' && no "the background job or its children survived the summary: $(ps -o pid,stat,cmd -g "$pid")"
[ $fail = 0 ] && echo "check-step: all cases passed"
exit $fail
