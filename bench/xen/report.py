#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Turn make bench-xen's raw output into CSV, plots and Markdown.

  bench/xen/report.py --serial LOG [--loop CSV...] --out DIR [--check N]
                      [--docs FILE --machine TEXT --commands TEXT]

LOG is the serial console of the QEMU run (or, on a real host,
scripts/bench-xen.sh's collected output) with the XVMSG-BENCH-* lines of
bench/xen/plan/.  --loop takes xvmsg-bench --csv files (the loopback bus).
Writes into DIR: xen-cells.csv (every cell), xen-summary.csv (medians,
spread, ratios to pool, per-request costs), loop.csv, *.dat and *.gp for
gnuplot, and report.md (the tables).  --check N fails (exit 1) unless every
one of the N repetitions has a number for every cell, fio's verify passed
on every disk and every cell has counters from both sides.  --docs FILE
replaces what is between the bench-xen markers in FILE with report.md.
Only the standard library: python3 is in every Debian.
"""
import argparse
import csv
import os
import re
import statistics
import sys

DEVS = ["pool", "grant", "full", "blk"]
COLORS = {"pool": "#4477aa", "grant": "#ee6677", "full": "#228833", "blk": "#ccbb44"}
DEV_LABEL = {"pool": "pool", "grant": "grant", "full": "full (dom0)", "blk": "blkback"}
CELLS = [("randread4k", 1), ("randread4k", 32), ("randwrite4k", 1), ("randwrite4k", 32),
         ("seqread256k", 8), ("seqwrite256k", 8)]
BS = {"randread4k": 4096, "randwrite4k": 4096, "seqread256k": 262144, "seqwrite256k": 262144}
WRITES = {"randwrite4k", "seqwrite256k"}
MARK = re.compile(r"XVMSG-BENCH-(PARAMS|SNAP|CELL|FIO|VERIFY) (.*)$")


def kv(text):
    out = {}
    for w in text.split():
        if "=" in w:
            k, v = w.split("=", 1)
            out[k] = v
    return out


def nums(text):
    """'a=1,b=2' -> {'a': 1, 'b': 2}"""
    out = {}
    for w in text.split(","):
        if "=" in w:
            k, v = w.split("=", 1)
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def parse_serial(path):
    params, snaps, cells, fios, verify = {}, {}, [], {}, {}
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
            m = MARK.search(line)
            if not m:
                continue
            kind, rest = m.groups()
            if kind == "PARAMS":
                params = kv(rest)
            elif kind == "SNAP":
                d = kv(rest)
                snaps[(int(d["seq"]), d["dev"])] = d
            elif kind == "CELL":
                d = kv(rest)
                # The live copy and the console copy at the end: once.
                if not any(c["snap0"] == d["snap0"] and c["dev"] == d["dev"] for c in cells):
                    cells.append(d)
            elif kind == "FIO":
                s0, dev, terse = rest.split(" ", 2)
                key = (int(s0.split("=")[1]), dev.split("=")[1])
                # The live copy and the console copy at the end, which may
                # come cut short: the longer one.
                if len(terse.strip()) > len(fios.get(key, "")):
                    fios[key] = terse.strip()
            elif kind == "VERIFY":
                d = kv(rest)
                verify[d["dev"]] = d
    return params, snaps, cells, fios, verify


def terse(line, write, bs):
    """fio terse v3: the read block starts at field 5, the write block at 46."""
    f = line.split(";")
    if len(f) < 90 or f[0] != "3":
        return None
    b = 46 if write else 5
    pct = {}
    for x in f[b + 12:b + 32]:
        if "%=" in x:
            p, v = x.split("%=")
            pct[float(p)] = float(v)
    kb, ms = float(f[b]), float(f[b + 3])
    # fio rounds IOPS to an integer; under TCG they can be single digits.
    iops = kb * 1024 / bs / (ms / 1000) if ms > 0 else float(f[b + 2])
    return {"kb": kb, "bw_kib": float(f[b + 1]), "iops": iops,
            "p50": pct.get(50.0, 0.0), "p99": pct.get(99.0, 0.0), "error": int(f[4])}


def delta(a, b, key):
    try:
        return float(b[key]) - float(a[key])
    except (KeyError, ValueError):
        return None


def cell_rows(snaps, cells, fios):
    rows = []
    for c in cells:
        dev, wl, qd = c["dev"], c["wl"], int(c["qd"])
        s0, s1 = int(c["snap0"]), int(c["snap1"])
        t = terse(fios.get((s0, dev), ""), wl in WRITES, BS[wl])
        r = {"rep": int(c["rep"]), "dev": dev, "workload": wl, "qd": qd, "rc": int(c["rc"])}
        if t is None:
            rows.append(r)
            continue
        ios = t["kb"] * 1024 / BS[wl]
        r.update(iops=t["iops"], mib_s=t["bw_kib"] / 1024, p50_us=t["p50"], p99_us=t["p99"],
                 ios=ios, fio_error=t["error"])
        a, b = snaps.get((s0, dev)), snaps.get((s1, dev))
        g0, g1 = nums(c.get("g0", "")), nums(c.get("g1", ""))
        per = lambda v: (v / ios) if (v is not None and ios > 0) else None
        if a and b:
            if dev == "blk":
                req = (delta(a, b, "rd_req") or 0) + (delta(a, b, "wr_req") or 0)
                r.update(be_req=per(req), notify_g2b=per(delta(a, b, "be_irqs")),
                         notify_b2g=per(g1.get("irqs", 0) - g0.get("irqs", 0)) if g0 else None)
            else:
                r.update(be_req=per(delta(a, b, "requests")), map_ops=per(delta(a, b, "maps")),
                         map_pages=per(delta(a, b, "map_pages")),
                         unmap_ops=per(delta(a, b, "unmaps")),
                         unmap_pages=per(delta(a, b, "unmap_pages")),
                         notify_g2b=per(delta(a, b, "notify_in")),
                         notify_b2g=per(delta(a, b, "notify_out")))
        if dev != "blk" and g0 and g1:
            d = lambda k: g1.get(k, 0) - g0.get(k, 0)
            r.update(bounced_b=per(d("bounce_in_bytes") + d("bounce_out_bytes")),
                     grants=per(d("grants")), kicks=per(d("kicks")), irqs_vq=per(d("irqs_vq")),
                     pool_full=per(d("pool_full")))
        rows.append(r)
    return rows


CELL_COLS = ["rep", "dev", "workload", "qd", "rc", "iops", "mib_s", "p50_us", "p99_us", "ios",
             "fio_error", "be_req", "map_ops", "map_pages", "unmap_ops", "unmap_pages",
             "notify_g2b", "notify_b2g", "bounced_b", "grants", "kicks", "irqs_vq", "pool_full"]
COST_COLS = ["be_req", "map_ops", "map_pages", "unmap_ops", "unmap_pages", "notify_g2b",
             "notify_b2g", "bounced_b", "grants", "pool_full"]


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def summarize(rows):
    by = {}
    for r in rows:
        if "iops" in r:
            by.setdefault((r["dev"], r["workload"], r["qd"]), []).append(r)
    pool_iops = {(r["rep"], r["workload"], r["qd"]): r["iops"] for r in rows
                 if r["dev"] == "pool" and "iops" in r}
    out = []
    for wl, qd in CELLS:
        for dev in DEVS:
            rs = by.get((dev, wl, qd), [])
            if not rs:
                continue
            iops = [r["iops"] for r in rs]
            ratios = [r["iops"] / pool_iops[(r["rep"], wl, qd)] for r in rs
                      if pool_iops.get((r["rep"], wl, qd))]
            s = {"dev": dev, "workload": wl, "qd": qd, "reps": len(rs),
                 "iops": med(iops), "iops_min": min(iops), "iops_max": max(iops),
                 "mib_s": med([r["mib_s"] for r in rs]),
                 "p50_us": med([r["p50_us"] for r in rs]), "p99_us": med([r["p99_us"] for r in rs]),
                 "ratio_pool": med(ratios), "ratio_min": min(ratios) if ratios else None,
                 "ratio_max": max(ratios) if ratios else None}
            for k in COST_COLS:
                s[k] = med([r.get(k) for r in rs])
            out.append(s)
    return out


SUM_COLS = ["dev", "workload", "qd", "reps", "iops", "iops_min", "iops_max", "mib_s", "p50_us",
            "p99_us", "ratio_pool", "ratio_min", "ratio_max"] + COST_COLS


def fmt(v, nd=2):
    if v is None:
        return "—"
    if isinstance(v, float):
        if abs(v) >= 100:
            return "%.0f" % v
        return ("%." + str(nd) + "f") % v
    return str(v)


def write_csv(path, cols, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if r.get(c) is None else
                        (("%.4g" % r[c]) if isinstance(r.get(c), float) else r[c]) for c in cols])


def read_loop(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            for r in csv.DictReader(f):
                rows.append(r)
    return rows


def loop_summary(rows):
    """Loopback rows keyed like the Xen cells; raw stays at QD 1."""
    out = []
    for wl, qd in CELLS:
        sel = [r for r in rows if r["workload"] == wl and
               (int(r["qd"]) == qd or r["mode"] == "raw")]
        # Each (workload, qd) came from its own xvmsg-bench run: its raw row
        # belongs with the modes of that run only.
        sel = [r for r in sel if r.get("_run") == "%s-%d" % (wl, qd)] or sel
        pool = next((float(r["iops"]) for r in sel if r["mode"] == "pool"), None)
        for mode in ["pool", "grant", "full", "raw"]:
            r = next((x for x in sel if x["mode"] == mode), None)
            if not r:
                continue
            iops = float(r["iops"])
            out.append({"mode": mode, "workload": wl, "qd": int(r["qd"]), "iops": iops,
                        "mib_s": float(r["mib_s"]), "p50_us": float(r["p50_us"]),
                        "p99_us": float(r["p99_us"]),
                        "ratio_pool": iops / pool if pool else None,
                        "maps": r.get("maps_per_req"), "notifies": r.get("notifies_per_req"),
                        "copied": r.get("copied_bytes_per_req")})
    return out


def gnuplot_files(out, summ, loops):
    labels = ["%s QD%d" % (wl, qd) for wl, qd in CELLS]
    with open(os.path.join(out, "xen.dat"), "w") as f:
        f.write("# cell " + " ".join("%s_ratio %s_rmin %s_rmax %s_iops %s_min %s_max" % ((d,) * 6)
                                     for d in DEVS) + "\n")
        for (wl, qd), lab in zip(CELLS, labels):
            row = [lab.replace(" ", "\\n")]
            for d in DEVS:
                s = next((x for x in summ if x["dev"] == d and x["workload"] == wl and x["qd"] == qd), None)
                row += ["%g" % s[k] if s and s[k] is not None else "NaN"
                        for k in ("ratio_pool", "ratio_min", "ratio_max", "iops", "iops_min", "iops_max")]
            f.write('"%s" %s\n' % (row[0], " ".join(row[1:])))
    with open(os.path.join(out, "xen-costs.dat"), "w") as f:
        f.write("# cell dev map_ops notify_g2b notify_b2g bounced_kib\n")
        for (wl, qd), lab in zip(CELLS, labels):
            row = ['"%s"' % lab.replace(" ", "\\n")]
            for d in DEVS:
                s = next((x for x in summ if x["dev"] == d and x["workload"] == wl and x["qd"] == qd), None)
                for k in ("map_ops", "notify_g2b", "notify_b2g"):
                    row.append("%g" % s[k] if s and s[k] is not None else "0")
            f.write(" ".join(row) + "\n")
    if loops:
        with open(os.path.join(out, "loop.dat"), "w") as f:
            f.write("# cell pool grant full raw (IOPS ratio to pool)\n")
            for (wl, qd), lab in zip(CELLS, labels):
                row = ['"%s"' % lab.replace(" ", "\\n")]
                for m in ["pool", "grant", "full", "raw"]:
                    s = next((x for x in loops if x["mode"] == m and x["workload"] == wl and
                              (x["qd"] == qd or m == "raw")), None)
                    row.append("%g" % s["ratio_pool"] if s and s["ratio_pool"] else "NaN")
                f.write(" ".join(row) + "\n")
    common = ('set terminal pngcairo size 1100,520 font "DejaVu Sans,10"\n'
              'set style data histogram\nset style fill solid 0.85 border -1\n'
              'set key top right\nset grid ytics\nset xtics nomirror\nset bmargin 4\n')
    cols = lambda i, k: ":".join(str(2 + 6 * i + k + j) for j in range(3))
    bars = lambda k: ", ".join('%s using %s%s title "%s" lc rgb "%s"' % (
        '"%s/xen.dat"' % out if i == 0 else '""', cols(i, k), ":xtic(1)" if i == 0 else "",
        DEV_LABEL[d], COLORS[d]) for i, d in enumerate(DEVS))
    gp = common + (
        'set output "%s/xen-ratio.png"\n'
        'set title "Xen 4.17 (QEMU): IOPS relative to pool mode in the same repetition, median (bars: min-max)"\n'
        'set ylabel "IOPS / pool IOPS"\nset style histogram errorbars gap 2 lw 1\n'
        'set yrange [0:*]\nplot %s\n'
        'set output "%s/xen-iops.png"\n'
        'set title "Xen 4.17 (QEMU): IOPS, median and min-max of the repetitions"\n'
        'set ylabel "IOPS"\nset logscale y\nset yrange [*:*]\nplot %s\n'
        'unset logscale y\nset style histogram clustered gap 2\n'
        'set output "%s/xen-notify.png"\n'
        'set title "Xen 4.17 (QEMU): event-channel notifications per I/O (guest to backend)"\n'
        'set ylabel "notifications / I/O"\nset yrange [0:*]\n'
        'plot "%s/xen-costs.dat" using 3:xtic(1) title "pool" lc rgb "#4477aa", '
        '"" using 6 title "grant" lc rgb "#ee6677", "" using 9 title "full (dom0)" lc rgb "#228833", '
        '"" using 12 title "blkback" lc rgb "#ccbb44"\n') % (out, bars(0), out, bars(3), out, out)
    if loops:
        gp += ('set output "%s/loop-ratio.png"\n'
               'set title "Loopback bus (xvmsg-bench, same run): IOPS relative to pool mode"\n'
               'set ylabel "IOPS / pool IOPS"\nset logscale y\nset yrange [*:*]\n'
               'plot "%s/loop.dat" using 2:xtic(1) title "pool" lc rgb "#4477aa", '
               '"" using 3 title "grant" lc rgb "#ee6677", "" using 4 title "full" lc rgb "#228833", '
               '"" using 5 title "raw (QD 1, no transport)" lc rgb "#aaaaaa"\n') % (out, out)
    with open(os.path.join(out, "plots.gp"), "w") as f:
        f.write(gp)


def markdown(params, summ, loops, verify, out, machine, commands):
    L = []
    L.append("Parameters: %s repetition(s), %s s per cell, %s MiB images in tmpfs, pool of %s pages "
             "for the pool disk." % (params.get("reps", "?"), params.get("secs", "?"),
                                     params.get("size_mib", "?"), params.get("pool_pages", "?")))
    L.append("")
    if machine:
        L.append("Machine: " + machine)
        L.append("")
    if commands:
        L.append("Commands:")
        L.append("")
        L.append("```sh")
        L.extend(commands.split("\\n"))
        L.append("```")
        L.append("")
    L.append("fio verify (crc32c, 4 KiB and 256 KiB random writes over 8 MiB, read back): " +
             ", ".join("%s %s" % (DEV_LABEL[d], "passed" if verify.get(d, {}).get("rc") == "0"
                                   and verify.get(d, {}).get("err") == "0" else "FAILED")
                       for d in DEVS) + ".")
    L.append("")
    L.append("#### Xen: throughput and latency (medians; spread = min-max of the repetitions)")
    L.append("")
    L.append("| workload | QD | disk | IOPS | spread | MiB/s | clat p50 µs | clat p99 µs | × pool (spread) |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for s in summ:
        L.append("| %s | %d | %s | %s | %s–%s | %s | %s | %s | %s (%s–%s) |" % (
            s["workload"], s["qd"], DEV_LABEL[s["dev"]], fmt(s["iops"], 1), fmt(s["iops_min"], 1),
            fmt(s["iops_max"], 1), fmt(s["mib_s"], 1), fmt(s["p50_us"]), fmt(s["p99_us"]),
            fmt(s["ratio_pool"]), fmt(s["ratio_min"]), fmt(s["ratio_max"])))
    L.append("")
    L.append("#### Xen: costs per I/O (medians, from the backend's and the module's counters)")
    L.append("")
    L.append("`be req`: requests the backend saw per fio I/O; `maps`/`unmaps`: the backend's map "
             "and unmap calls (grant maps in grant mode, foreign-map calls in full mode), "
             "`pages`: pages they mapped; `g→b`, `b→g`: event-channel notifications (xvmsg: the "
             "backend's notify_in/notify_out; blkback: interrupts of its event channel in the "
             "driver domain and in the guest); `bounced`: bytes the guest copied through the "
             "pool; `grants`: grant entries the guest made.  blkback's grant operations are not "
             "counted by anything a domain can read (—).")
    L.append("")
    L.append("| workload | QD | disk | be req | maps | pages | unmaps | g→b | b→g | bounced B | grants |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summ:
        L.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s["workload"], s["qd"], DEV_LABEL[s["dev"]], fmt(s["be_req"]), fmt(s["map_ops"]),
            fmt(s["map_pages"]), fmt(s["unmap_ops"]), fmt(s["notify_g2b"]), fmt(s["notify_b2g"]),
            fmt(s["bounced_b"], 0), fmt(s["grants"])))
    L.append("")
    if loops:
        L.append("#### Loopback bus, same run (`xvmsg-bench`, one run per workload, modes interleaved)")
        L.append("")
        L.append("| workload | QD | mode | IOPS | MiB/s | p50 µs | p99 µs | × pool | maps/req | notifies/req | copied B/req |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for s in loops:
            L.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                s["workload"], s["qd"], s["mode"], fmt(s["iops"]), fmt(s["mib_s"], 1),
                fmt(s["p50_us"]), fmt(s["p99_us"]), fmt(s["ratio_pool"]),
                s["maps"] or "—", s["notifies"] or "—", s["copied"] or "—"))
        L.append("")
    L.append("Plots: `%s/xen-ratio.png` (IOPS relative to pool), `%s/xen-iops.png` (IOPS with "
             "spread), `%s/xen-notify.png` (notifications per I/O)%s.  CSV: `%s/xen-cells.csv` "
             "(every cell), `%s/xen-summary.csv`%s." % (
                 out, out, out, ", `%s/loop-ratio.png` (loopback)" % out if loops else "", out, out,
                 ", `%s/loop.csv`" % out if loops else ""))
    return "\n".join(L) + "\n"


def check(rows, verify, reps, snaps_ok):
    errs = []
    for d in DEVS:
        v = verify.get(d)
        if not v or v.get("rc") != "0" or v.get("err") != "0":
            errs.append("fio verify on the %s disk did not pass (%s)" % (d, v))
    for rep in range(1, reps + 1):
        for wl, qd in CELLS:
            for d in DEVS:
                r = next((x for x in rows if x["rep"] == rep and x["dev"] == d and
                          x["workload"] == wl and x["qd"] == qd), None)
                what = "rep %d %s QD%d on %s" % (rep, wl, qd, d)
                if r is None:
                    errs.append(what + ": no cell")
                elif not r.get("iops") or r.get("rc") != 0 or r.get("fio_error"):
                    errs.append(what + ": no IOPS from fio (rc %s)" % r.get("rc"))
                elif r.get("be_req") is None or r.get("notify_g2b") is None:
                    errs.append(what + ": no backend counters")
                elif d != "blk" and r.get("kicks") is None:
                    errs.append(what + ": no module counters")
                elif not 0.5 < r["be_req"] < 8:
                    errs.append(what + ": backend saw %.2f requests per I/O" % r["be_req"])
    # The modes must really differ where they should: grant maps per
    # request, pool maps nothing and bounces, full maps nothing per request
    # (its cache) or little.
    for r in rows:
        if "map_ops" not in r or r["map_ops"] is None:
            continue
        if r["dev"] == "pool" and (r["map_ops"] > 0.01 or not r.get("bounced_b")):
            errs.append("pool %s QD%d: %.3f maps per I/O, %s bytes bounced" %
                        (r["workload"], r["qd"], r["map_ops"], r.get("bounced_b")))
        if r["dev"] == "grant" and r["map_ops"] < 0.5:
            errs.append("grant %s QD%d: only %.3f maps per I/O" % (r["workload"], r["qd"], r["map_ops"]))
    return errs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serial", required=True)
    ap.add_argument("--loop", nargs="*", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--check", type=int, default=0)
    ap.add_argument("--docs")
    ap.add_argument("--machine", default="")
    ap.add_argument("--commands", default="")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    params, snaps, cells, fios, verify = parse_serial(a.serial)
    rows = cell_rows(snaps, cells, fios)
    write_csv(os.path.join(a.out, "xen-cells.csv"), CELL_COLS, rows)
    summ = summarize(rows)
    write_csv(os.path.join(a.out, "xen-summary.csv"), SUM_COLS, summ)
    loops = []
    if a.loop:
        lrows = []
        for p in a.loop:
            run = os.path.basename(p).replace("loop-", "").replace(".csv", "")
            for r in read_loop([p]):
                r["_run"] = run
                lrows.append(r)
        loops = loop_summary(lrows)
        write_csv(os.path.join(a.out, "loop.csv"),
                  ["mode", "workload", "qd", "iops", "mib_s", "p50_us", "p99_us", "ratio_pool",
                   "maps", "notifies", "copied"], loops)
    gnuplot_files(a.out, summ, loops)
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shown = os.path.relpath(os.path.abspath(a.out), top)
    if shown.startswith(".."):
        shown = os.path.abspath(a.out)
    md = markdown(params, summ, loops, verify, shown, a.machine, a.commands)
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(md)
    print(md)
    if a.docs:
        text = open(a.docs).read()
        b, e = "<!-- bench-xen:begin (generated by make bench-xen) -->", "<!-- bench-xen:end -->"
        i, j = text.find(b), text.find(e)
        if i < 0 or j < i:
            sys.exit("report.py: no bench-xen markers in %s" % a.docs)
        with open(a.docs, "w") as f:
            f.write(text[:i + len(b)] + "\n" + md + text[j:])
    if a.check:
        errs = check(rows, verify, a.check, snaps)
        if errs:
            for e in errs:
                print("bench-xen: FAIL: " + e, file=sys.stderr)
            sys.exit(1)
        print("bench-xen: %d cells, every one with a number and counters; fio verify passed on %s"
              % (len([r for r in rows if "iops" in r]), ", ".join(DEVS)), file=sys.stderr)


if __name__ == "__main__":
    main()
