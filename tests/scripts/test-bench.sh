#!/bin/bash
# SPDX-License-Identifier: MIT
# xvmsg-bench's harness does not rot: each of its run shapes (the modes
# side by side, --direct, --devices, the noisy neighbour) finishes on the
# loopback bus and prints a number in every column it promises; bad
# arguments are refused with exit status 2.  Speed is not judged here (a
# noisy 2-core machine): the benchmarks print numbers, docs/benchmarks.md
# keeps them.
set -u
top=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${XVMSG_BIN:-$top/build/bin}
bench=$bin/xvmsg-bench
out=$(mktemp -d /tmp/xvmsg-test-bench-XXXXXX)
trap 'rm -rf "$out"' EXIT

pass=0 fail=0
ok() { echo "  PASS    $1"; pass=$((pass + 1)); }
ko() { echo "  FAIL    $1"; fail=$((fail + 1)); sed 's/^/          | /' "$out/log" | tail -15; }

# run NAME ARGS...: exit status 0 and a CSV with at least one data row
# whose numeric fields are all numbers greater than zero where they must be.
run() {
	local name=$1
	shift
	local rc=0
	timeout 120 "$bench" --size 16M --seconds 0.4 --rounds 1 --csv "$out/$name.csv" "$@" \
		>"$out/log" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		ko "$name: exit status $rc ($*)"
		return 1
	fi
	cat "$out/log" >"$out/$name.txt"
	return 0
}

# csv_col FILE COLUMN: the values of that column, one a line.
csv_col() {
	awk -F, -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
		k { print $k }' "$1"
}

# positive FILE COLUMN: the column exists, has rows, and every value of it
# is a number > 0 (an empty cell is not; values are taken whole, line by
# line, never split into words).
positive() {
	local v n=0
	head -n 1 "$1" | tr ',' '\n' | grep -qxF -- "$2" || return 1
	while IFS= read -r v; do
		awk -v x="$v" 'BEGIN { exit !(x ~ /^([0-9]+\.?[0-9]*|\.[0-9]+)$/ && x + 0 > 0) }' ||
			return 1
		n=$((n + 1))
	done < <(csv_col "$1" "$2")
	[ "$n" -gt 0 ]
}

# The checks themselves, on CSVs made here: an empty cell, a cell of two
# words, a cell of text, a missing column and a column without rows fail;
# a column of numbers passes.
printf 'mode,iops\npool,5\ngrant,\n' >"$out/empty.csv"
printf 'mode,iops\npool,5\ngrant,1 2\n' >"$out/words.csv"
printf 'mode,iops\npool,5\ngrant,*\n' >"$out/glob.csv"
printf 'mode,iops\npool,5\ngrant\n' >"$out/short.csv"
printf 'mode,iops\n' >"$out/none.csv"
printf 'mode,iops\npool,5\ngrant,0.25\n' >"$out/good.csv"
: >"$out/log"
for c in empty words glob short none; do
	if positive "$out/$c.csv" iops; then
		ko "positive: the $c.csv column was taken for numbers"
	else
		ok "positive: refuses the $c.csv column"
	fi
done
if positive "$out/good.csv" iops && ! positive "$out/good.csv" nosuch; then
	ok "positive: a column of numbers passes, a missing column does not"
else
	ko "positive: a column of numbers refused, or a missing one passed"
fi

if run modes --workload randread4k; then
	if positive "$out/modes.csv" iops && [ "$(csv_col "$out/modes.csv" mode | sort | tr '\n' ' ')" = "full grant pool raw " ]; then
		ok "modes side by side: pool, grant, full and raw each measured"
	else
		ko "modes side by side: a mode missing or without IOPS"
	fi
fi

if run pair --workload randread4k --mode pool,raw --rounds 2; then
	if positive "$out/pair.csv" iops && [ "$(csv_col "$out/pair.csv" mode | sort | tr '\n' ' ')" = "pool raw " ] &&
	   grep -Eq "^  pool .* µs \+ .* µs = .* µs; rounds [0-9.]+ [0-9.]+, median [0-9.]+$" "$out/pair.txt" &&
	   grep -Eq "^  raw .* µs \+ .* µs = .* µs$" "$out/pair.txt"; then
		ok "--mode pool,raw: both measured, CPU per I/O and the per-round ratios with their median"
	else
		ko "--mode pool,raw: a mode, the CPU per I/O or the per-round ratios missing"
	fi
fi

if run direct --direct --workload randread4k --mode pool; then
	if positive "$out/direct.csv" iops && grep -q "O_DIRECT" "$out/direct.txt"; then
		ok "--direct: measured with the image opened O_DIRECT"
	else
		ko "--direct: no IOPS, or not said to be O_DIRECT"
	fi
fi

if run queues --queues 2 --workload randread4k --mode pool; then
	if positive "$out/queues.csv" iops; then
		ok "--queues 2: a two-queue device measured"
	else
		ko "--queues 2: no IOPS"
	fi
fi

if run devices --devices 3 --workload randread4k --qd 4; then
	if positive "$out/devices.csv" agg_iops && positive "$out/devices.csv" raw_iops &&
	   positive "$out/devices.csv" p99_max_us && [ "$(csv_col "$out/devices.csv" total_qd)" = 12 ]; then
		ok "--devices 3: aggregate, raw at total depth 12, p99 of every device"
	else
		ko "--devices 3: a column missing"
	fi
fi

if run noisy --workload noisy; then
	if positive "$out/noisy.csv" iops && [ "$(csv_col "$out/noisy.csv" case | tr '\n' ' ')" = "b_alone b_beside_a a_beside_b b_alone b_beside_a a_beside_b " ] &&
	   [ "$(csv_col "$out/noisy.csv" mode | tr '\n' ' ')" = "pool pool pool raw raw raw " ]; then
		ok "noisy: B alone, B beside A and A measured, through xvmsg and raw on the file"
	else
		ko "noisy: a case or the raw reference missing"
	fi
	if grep -Eq "^B's p99 beside A / alone: pool [0-9.]+, raw [0-9.]+ \(pool / raw [0-9.]+\)" "$out/noisy.txt"; then
		ok "noisy: B's p99 ratio through xvmsg beside the same ratio on the file"
	else
		ko "noisy: no line comparing B's p99 ratio with raw's"
	fi
fi

# virtio-net: the three frame sizes both ways in every mode beside raw (a
# tap written and read directly), each with packets/s and throughput; the
# modes' rows with their per-packet counters.  Needs /dev/net/tun (tests
# run as root).
rc=0
timeout 120 "$bench" --workload net --seconds 0.3 --rounds 1 --csv "$out/net.csv" \
	>"$out/log" 2>&1 || rc=$?
if [ "$rc" = 0 ]; then
	rows=$(awk -F, 'NR > 1 && $1 != "raw" && $8 != "" && $9 != "" && $10 != ""' "$out/net.csv" | wc -l)
	if positive "$out/net.csv" pps && positive "$out/net.csv" gbit_s &&
	   [ "$(csv_col "$out/net.csv" workload | sort -u | tr '\n' ' ')" = "net1500 net64 net64k " ] &&
	   [ "$(csv_col "$out/net.csv" mode | sort -u | tr '\n' ' ')" = "full grant pool raw " ] &&
	   [ "$(csv_col "$out/net.csv" dir | sort | uniq -c | awk '{ print $1 $2 }' | tr '\n' ' ')" = "12rx 12tx " ] &&
	   [ "$rows" = 18 ]; then
		ok "net: net64, net1500, net64k both ways in pool, grant, full and raw, every column filled"
	else
		# What failed: the rows with an empty or zero cell, and the
		# bench's own warnings (a receive phase that stalled, frames
		# dropped at a tap), not the table's tail.
		{
			grep '^xvmsg-bench: ' "$out/log"
			awk -F, 'NR == 1 || !($5 > 0) || !($7 > 0) ||
				($1 != "raw" && ($8 == "" || $9 == "" || $10 == ""))' "$out/net.csv"
			echo "rows with every counter: $rows of 18"
		} >"$out/why"
		mv "$out/why" "$out/log"
		ko "net: a workload, a mode or a column missing"
	fi
else
	ko "net: exit status $rc (--workload net)"
fi

# bad arguments: exit status 2 and a message, never a run
for bad in "--devices 0" "--devices 65" "--devices x" "--devices 2 --workload noisy" \
	   "--workload noisy --qd 4" "--devices 2 --mode raw" "--workload nosuch" \
	   "--queues 0" "--queues 17" "--workload net --qd 4" "--workload net64 --devices 2" \
	   "--mode pool,nosuch" "--mode pool," "--devices 2 --mode pool,full"; do
	# shellcheck disable=SC2086
	timeout 20 "$bench" $bad >"$out/log" 2>&1
	rc=$?
	if [ "$rc" = 2 ] && grep -q "xvmsg-bench: " "$out/log"; then
		ok "refused: $bad"
	else
		ko "not refused with status 2 (got $rc): $bad"
	fi
done

# a number out of range names the option in full and its range
timeout 20 "$bench" --dev 99 >"$out/log" 2>&1
if grep -q "^xvmsg-bench: --devices: '99' is not in 1..64$" "$out/log" &&
   timeout 20 "$bench" --rounds 1001 2>&1 | grep -q "^xvmsg-bench: --rounds: '1001' is not in 1..1000$" &&
   timeout 20 "$bench" --qd -1 2>&1 | grep -q "^xvmsg-bench: --qd: '-1' is not in 1..256$"; then
	ok "refused numbers: the option's full name and its range"
else
	ko "refused numbers: the message lacks the option or its range: $(head -1 "$out/log")"
fi

echo "test-bench: $pass passed, $fail failed"
[ "$fail" = 0 ]
