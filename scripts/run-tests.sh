#!/bin/sh
# SPDX-License-Identifier: MIT
# Run test binaries, report each, and end with one "N passed, N failed" line.
# usage: run-tests.sh SUITE BINARY...
set -u
suite=$1
shift
pass=0
fail=0
failed=""
for t in "$@"; do
	name=$(basename "$t")
	start=$(date +%s)
	if "$t" >"$t.log" 2>&1; then
		pass=$((pass + 1))
		echo "  PASS    $suite/$name ($(( $(date +%s) - start ))s)"
	else
		fail=$((fail + 1))
		failed="$failed $name"
		echo "  FAIL    $suite/$name ($(( $(date +%s) - start ))s); its output:"
		sed 's/^/        | /' "$t.log" | tail -n 60
	fi
done
echo "$suite: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
