#!/bin/bash
# SPDX-License-Identifier: MIT
# The table of tested combinations in docs/xen.md, kept true by make check.
#
#   scripts/xen/combos.sh check OUT:PLAN...
#
# Each OUT:PLAN is one end-to-end run that make check does: the images'
# folder (build/xen, build/xen-trixie, build/xen-arm64, ...) and the plan's
# name (e2e, kmod).  run-qemu.sh left OUT/results/PLAN (what the images are:
# architecture, distro, Xen version, dom0, driver-domain and guest kernels;
# the result; the date; seconds of QEMU).  This script
#   - writes build/xen-combinations.md: one table row per run, as it
#     happened (date, time), ready to paste into docs/xen.md;
#   - checks docs/xen.md's table (between the "tested-combinations" markers):
#     every run must have a row there with the same Xen, kernels and plan
#     and a result that starts with "pass", and every "e2e" row of the doc
#     that says "pass" must be one of these runs (the others record
#     combinations tried outside make check and how they failed);
#   - checks the "builds" row against the kernels make check-module-builds
#     passed last (build/kbuild/passed).
# Exit 0 iff all hold; otherwise it says which row is missing or stale.
set -u

XVMSG_TOP=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
DOC=${XVMSG_COMBOS_DOC:-$XVMSG_TOP/docs/xen.md}
GEN=${XVMSG_COMBOS_OUT:-$XVMSG_TOP/build/xen-combinations.md}
PASSED=${XVMSG_KBUILD_PASSED:-$XVMSG_TOP/build/kbuild/passed}

# load FILE: its "KEY value" lines into R[KEY] (the first of each key),
# read by the shell itself: a process per field made the check slow on a
# busy machine.
declare -A R
load() {
	local k v
	R=()
	while read -r k v; do
		[ -n "$k" ] && [ -z "${R[$k]+set}" ] && R[$k]=$v
	done <"$1"
}

# xen_cell DISTRO VERSION ARCH: "4.17.7 (Debian 12)"; other architectures
# than amd64 are named: "4.17.7 (Debian 12, arm64)".
xen_cell() {
	local a=
	case ${3:-amd64} in amd64) ;; *) a=", $3" ;; esac
	case $1 in
	bookworm) echo "$2 (Debian 12$a)" ;;
	trixie) echo "$2 (Debian 13$a)" ;;
	*) echo "$2 ($1$a)" ;;
	esac
}

# plan_cell PLAN [NET FAULTS GUEST2 GUEST]: the "what runs" cell; the kmod
# plan's parts (results' "net", "faults" and "guest2" lines) when the images
# said, guest 2's kernel when it is not guest 1's.
plan_cell() {
	local parts=
	case ${2:-} in
	1) parts=", 2 guests with NICs"
	   [ -n "${4:-}" ] && [ "${4:-}" != "${5:-}" ] && parts="$parts (guest 2 on $4)" ;;
	0) parts=", no NICs" ;;
	esac
	case ${3:-} in
	'') ;;
	all) parts="$parts, all lying backends" ;;
	*) parts="$parts, lying backends ${3//,/, }" ;;
	esac
	case $1 in
	*/e2e) echo 'e2e `tests/xen/e2e`, userspace frontend' ;;
	*/kmod) echo "e2e \`tests/xen/kmod\`, \`xvmsg.ko\` + stock virtio drivers$parts" ;;
	*) echo "e2e \`$1\`" ;;
	esac
}

# minutes M min S s
dur() { echo "$(($1 / 60)) min $(($1 % 60)) s"; }

# series: kernel ABIs (stdin, one a line or several) as sorted series.
series() {
	tr ' ' '\n' | sed -n 's/^\([0-9]*\.[0-9]*\)[.0-9]*-[0-9]*-amd64$/\1/p; s/^\([0-9]*\.[0-9]*\)[.0-9]*+\(deb[0-9]*\)-amd64$/\1+\2/p' |
		sort -uV | paste -sd' '
}

# norm5: each row's first five cells, trimmed and "|"-separated (the key
# of a combination), a tab, and its result cell trimmed: one awk for all
# rows (a process per row made the check slow).
norm5() {
	awk -F'|' '{ out = ""; for (i = 2; i <= 6; i++) { c = $i; gsub(/^ +| +$/, "", c); out = out (i > 2 ? "|" : "") c }
		r = $7; gsub(/^ +| +$/, "", r); print out "\t" r }'
}

doc_rows() {
	sed -n '/<!-- tested-combinations begin/,/<!-- tested-combinations end/p' "$DOC" |
		grep '^|' | sed '1,2d'
}

check() {
	local bad=0 run out plan f xen row key
	[ -f "$DOC" ] || { echo "combos: no $DOC"; return 1; }
	mkdir -p "${GEN%/*}"
	: >"$GEN.keys"
	doc_rows >"$GEN.doc"
	[ -s "$GEN.doc" ] || { echo "combos: no table between the tested-combinations markers in $DOC"; rm -f "$GEN.keys" "$GEN.doc"; return 1; }
	norm5 <"$GEN.doc" >"$GEN.dockeys"
	{
		echo "| Xen | dom0 kernel | driver-domain kernel | guest kernel | what runs | result | date |"
		echo "|---|---|---|---|---|---|---|"
	} >"$GEN"
	for run in "$@"; do
		out=${run%%:*} plan=${run#*:}
		case $out in /*) ;; *) out=$XVMSG_TOP/$out ;; esac
		f=$out/results/$plan
		if [ ! -f "$f" ]; then
			echo "combos: no result of $plan in ${out#"$XVMSG_TOP"/} (run it first)"
			bad=1; continue
		fi
		load "$f"
		xen=$(xen_cell "${R[distro]-}" "${R[xen]-}" "${R[arch]-}")
		key="$xen|${R[dom0]-}|${R[driver]-}|${R[guest]-}|$(plan_cell "${R[plan]-}" "${R[net]-}" "${R[faults]-}" "${R[guest2]-}" "${R[guest]-}")"
		row="| ${key//|/ | } | ${R[result],,}, $(dur "${R[seconds]:-0}") of QEMU | ${R[date]-} |"
		echo "$row" >>"$GEN"
		echo "$key" >>"$GEN.keys"
		if [ "${R[result]-}" != PASS ]; then
			echo "combos: ${out#"$XVMSG_TOP"/} $plan did not pass (${R[result]-no result line})"
			bad=1
		fi
		if ! awk -F'\t' -v k="$key" '$1 == k && $2 ~ /^pass/ { ok = 1 } END { exit !ok }' "$GEN.dockeys"; then
			echo "combos: docs/xen.md has no passing row for this run:"
			echo "  $row"
			bad=1
		fi
	done
	# Every e2e row of the doc that says "pass" is a run of make check
	# (rows of combinations make check does not run say how they failed).
	while IFS= read -r r; do
		echo "combos: docs/xen.md lists a combination make check did not run:"
		echo "  $r"
		bad=1
	done < <(awk -F'\t' 'NR == FNR { ran[$0] = 1; next }
		{ split($1, c, "|") } c[5] ~ /^e2e/ && $2 ~ /^pass/ && !($1 in ran) { print FNR }' \
		"$GEN.keys" "$GEN.dockeys" | while read -r n; do sed -n "${n}p" "$GEN.doc"; done)
	# The builds row: the kernels check-module-builds passed, by series
	# (6.1, 6.12+deb12, 6.12+deb13, 7.3+deb13): a point release of a
	# kernel make check does not boot does not make the row false.
	if [ -f "$PASSED" ]; then
		want=$(series <"$PASSED")
		have=$(awk -F'|' '$6 ~ /builds/ { print $5 }' "$GEN.doc" |
			grep -oE '[0-9]+\.[0-9]+[.0-9]*[-+][0-9a-z+.]*-amd64' | series)
		if [ "$want" != "$have" ]; then
			echo "combos: docs/xen.md's builds row lists '$have'; make check-module-builds passed '$want'"
			bad=1
		fi
	else
		echo "combos: no $PASSED (make check-module-builds writes it): builds row not checked"
	fi
	rm -f "$GEN.keys" "$GEN.doc" "$GEN.dockeys"
	if [ "$bad" = 0 ]; then
		echo "  PASS    xen-combinations ($# runs match docs/xen.md; rows in ${GEN#"$XVMSG_TOP"/})"
	else
		echo "  FAIL    xen-combinations (today's rows, to update docs/xen.md: ${GEN#"$XVMSG_TOP"/})"
		cat "$GEN"
	fi
	return "$bad"
}

case ${1:-} in
check) shift; check "$@" ;;
*) echo "usage: $0 check OUT:PLAN..." >&2; exit 2 ;;
esac
