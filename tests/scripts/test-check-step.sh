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
[ $fail = 0 ] && echo "check-step: all cases passed"
exit $fail
