#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/xen/combos.sh: docs/xen.md's table of tested combinations against
# the results run-qemu.sh leaves.  Stand-in results and a stand-in doc: the
# check must pass when the doc lists exactly the runs (plus rows recording
# failed combinations outside make check), and fail when a run is missing
# from the doc, a row is stale, a row that says pass did not happen, a run
# failed, or the builds row lists other kernels.
set -u
top=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
combos=$top/scripts/xen/combos.sh
[ -x "$combos" ] || { echo "no $combos"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

result() { # OUT PLAN DISTRO XEN GUEST RESULT
	mkdir -p "$tmp/$1/results"
	printf 'distro %s\nxen %s\ndom0 6.1.0-56-amd64\ndriver 6.1.0-56-amd64\nguest %s\nplan tests/xen/%s\nresult %s\ndate 2026-12-04\nseconds 150\n' \
		"$3" "$4" "$5" "$2" "$6" >"$tmp/$1/results/$2"
}
doc() { # rows...
	{
		echo "# doc"
		echo "<!-- tested-combinations begin -->"
		echo "| Xen | dom0 kernel | driver-domain kernel | guest kernel | what runs | result | date |"
		echo "|---|---|---|---|---|---|---|"
		for r in "$@"; do echo "$r"; done
		echo "<!-- tested-combinations end -->"
	} >"$tmp/doc.md"
}
K='e2e `tests/xen/kmod`, `xvmsg.ko` + stock virtio drivers'
ROW1="| 4.17.7 (Debian 12) | 6.1.0-56-amd64 | 6.1.0-56-amd64 | 6.1.0-56-amd64 | $K | pass, 2 min 30 s of QEMU | 2026-12-04 |"
ROW2="| 4.17.7 (Debian 12) | 6.1.0-56-amd64 | 6.1.0-56-amd64 | 7.3.4+deb13-amd64 | $K | pass, 3 min of QEMU | 2026-12-01 |"
BUILDS="| — | — | — | 6.1.0-56-amd64, 7.3.1+deb13-amd64 | builds (\`make check-module-builds\`) | pass | 2026-12-04 |"
printf '6.1.0-56-amd64\n7.3.4+deb13-amd64\n' >"$tmp/passed"

pass=0 fail=0
expect() { # WANT(0|1) NAME
	local rc
	XVMSG_COMBOS_DOC=$tmp/doc.md XVMSG_COMBOS_OUT=$tmp/gen.md XVMSG_KBUILD_PASSED=$tmp/passed \
		"$combos" check ${RUNS:-"$tmp/a:kmod" "$tmp/b:kmod"} >"$tmp/out" 2>&1
	rc=$?
	if { [ "$1" = 0 ] && [ "$rc" = 0 ]; } || { [ "$1" = 1 ] && [ "$rc" != 0 ]; }; then
		pass=$((pass + 1)); echo "  PASS    combos: $2"
	else
		fail=$((fail + 1)); echo "  FAIL    combos: $2 (exit $rc)"; sed 's/^/        | /' "$tmp/out"
	fi
}

result a kmod bookworm 4.17.7 6.1.0-56-amd64 PASS
result b kmod bookworm 4.17.7 7.3.4+deb13-amd64 PASS
doc "$ROW1" "$ROW2" "$BUILDS"
expect 0 "doc lists exactly the runs (dates and times may differ; builds by series)"
grep -qF '| 7.3.4+deb13-amd64 |' "$tmp/gen.md" || { fail=$((fail + 1)); echo "  FAIL    combos: no generated row"; }
doc "$ROW1" "$BUILDS"
expect 1 "a run the doc does not list"
doc "$ROW1" "${ROW2/7.3.4/7.2.0}" "$BUILDS"
expect 1 "a stale row (other guest kernel)"
doc "$ROW1" "$ROW2" "${ROW2/Debian 12/Debian 13}" "$BUILDS"
expect 1 "a row no run backs"
doc "$ROW1" "${ROW2/pass, 3 min/fail, 3 min}" "$BUILDS"
expect 1 "a row that says fail"
doc "$ROW1" "$ROW2" "${ROW2/Debian 12/Debian 13}" "$BUILDS"
expect 1 "a row that says pass but no run backs"
FAILED13=$(echo "${ROW2/Debian 12/Debian 13}" | sed 's/| pass, 3 min of QEMU |/| fail: no answer after the restart (not in make check) |/')
doc "$ROW1" "$ROW2" "$FAILED13" "$BUILDS"
expect 0 "a row that records a failed combination outside make check"
doc "$ROW1" "$ROW2" "${BUILDS/7.3.1+deb13-amd64/6.12.117+deb13-amd64}"
expect 1 "builds row lists other kernels"
result b kmod bookworm 4.17.7 7.3.4+deb13-amd64 FAIL
doc "$ROW1" "$ROW2" "$BUILDS"
expect 1 "a run that failed"
rm -rf "$tmp/b"
expect 1 "a run without a result"

# An arm64 run: its Xen cell names the architecture, and an x86 row with
# the same versions does not stand for it.
mkdir -p "$tmp/c/results"
printf 'arch arm64\ndistro bookworm\nxen 4.17.7\ndom0 6.1.0-56-arm64\ndriver 6.1.0-56-arm64\nguest 6.1.0-56-arm64\nplan tests/xen/kmod\nresult PASS\ndate 2026-12-04\nseconds 170\n' \
	>"$tmp/c/results/kmod"
ROW3="| 4.17.7 (Debian 12, arm64) | 6.1.0-56-arm64 | 6.1.0-56-arm64 | 6.1.0-56-arm64 | $K | pass, 2 min 50 s of QEMU | 2026-12-04 |"
RUNS="$tmp/a:kmod $tmp/c:kmod"
doc "$ROW1" "$ROW3" "$BUILDS"
expect 0 "an arm64 run and its row"
doc "$ROW1" "${ROW3/, arm64/}" "$BUILDS"
expect 1 "an arm64 run under a row without the architecture"

# A kmod run that says which parts ran (net, faults): the row says so too,
# and a row that claims more than ran is stale.
printf 'net 0\nfaults used-bad-id,keep-mapped\n' >>"$tmp/c/results/kmod"
ROW4="| 4.17.7 (Debian 12, arm64) | 6.1.0-56-arm64 | 6.1.0-56-arm64 | 6.1.0-56-arm64 | $K, no NICs, lying backends used-bad-id, keep-mapped | pass, 2 min 50 s of QEMU | 2026-12-04 |"
doc "$ROW1" "$ROW4" "$BUILDS"
expect 0 "a kmod run with some parts and its row"
grep -qF 'no NICs, lying backends used-bad-id, keep-mapped |' "$tmp/gen.md" ||
	{ fail=$((fail + 1)); echo "  FAIL    combos: the generated row does not name the parts"; }
doc "$ROW1" "${ROW4/no NICs, lying backends used-bad-id, keep-mapped/2 guests with NICs, all lying backends}" "$BUILDS"
expect 1 "a row that claims NICs and all lying backends for a run without them"
# Guest 2 on a kernel of its own: the cell names it; the same kernel as
# guest 1's is not named.
printf 'net 1\nguest2 7.3.4+deb13-amd64\nfaults all\n' >>"$tmp/a/results/kmod"
ROW5="| 4.17.7 (Debian 12) | 6.1.0-56-amd64 | 6.1.0-56-amd64 | 6.1.0-56-amd64 | $K, 2 guests with NICs (guest 2 on 7.3.4+deb13-amd64), all lying backends | pass, 2 min 30 s of QEMU | 2026-12-04 |"
doc "$ROW5" "$ROW4" "$BUILDS"
expect 0 "guest 2 on another kernel, named in the cell"
doc "${ROW5/ (guest 2 on 7.3.4+deb13-amd64)/}" "$ROW4" "$BUILDS"
expect 1 "a row that leaves out guest 2's other kernel"
sed -i 's/^guest2 .*/guest2 6.1.0-56-amd64/' "$tmp/a/results/kmod"
doc "${ROW5/ (guest 2 on 7.3.4+deb13-amd64)/}" "$ROW4" "$BUILDS"
expect 0 "guest 2 on guest 1's kernel, not named"
unset RUNS

echo "combos: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
