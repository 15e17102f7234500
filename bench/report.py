#!/usr/bin/env python3
"""Merges the JSON files of culstm_bench, torch_lstm_bench.py and sync_microbench into the README table (markdown)
and a PNG plot of culstm's speedup over cuDNN vs batch (matplotlib; without it the table is still written), in
bench/results/<date>-<device>/ (or --out-dir). Only real runs belong in bench/results/ (bench/README.md).

    python3 bench/report.py culstm_bench.json torch_lstm.json sync_microbench.json [--out-dir DIR] [--command CMD]
    python3 bench/report.py --self-test --work /tmp/x      (checks this script on made-up records, never in results/)
"""

import argparse
import datetime
import json
import math
import os
import re
import shutil
import sys

CULSTM_BACKENDS = ("cuda",)
CUDNN_BACKENDS = ("cudnn", "culstm-cudnn")
CONFIG_KEYS = ("batch", "input_size", "hidden_size", "proj_size", "seq_len", "layers", "directions", "dtype")


def load(paths):
    bench, torch_recs, sync = [], [], []
    for path in paths:
        with open(path) as f:
            records = json.load(f)
        if not isinstance(records, list):
            raise SystemExit("report.py: %s: expected a JSON list of records" % path)
        for r in records:
            if r.get("benchmark") == "sync_microbench":
                sync.append(r)
            elif r.get("backend") == "torch":
                torch_recs.append(r)
            elif "backend" in r:
                bench.append(r)
    return bench, torch_recs, sync


def ok(r):
    return r is not None and r.get("status") == "ok" and isinstance(r.get("median_us"), (int, float))


def key_of(r):
    return tuple(r.get(k) for k in CONFIG_KEYS)


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown-device"


def fmt(v, spec="%.2f", missing="—"):
    return spec % v if isinstance(v, (int, float)) and math.isfinite(v) else missing


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


class Row:
    """One configuration: culstm's records (one per engine), cuDNN's best, torch's."""

    def __init__(self, key):
        self.key = key
        self.culstm = []  # records of backend cuda
        self.cudnn = []   # records of backends cudnn / culstm-cudnn
        self.torch = None

    def cfg(self, name):
        return self.key[CONFIG_KEYS.index(name)]

    def cudnn_best(self):
        good = [r for r in self.cudnn if ok(r)]
        return min(good, key=lambda r: r["median_us"]) if good else None

    def culstm_best(self):
        good = [r for r in self.culstm if ok(r)]
        return min(good, key=lambda r: r["median_us"]) if good else None

    def target(self):
        for r in self.culstm + self.cudnn + ([self.torch] if self.torch else []):
            if isinstance(r.get("target_speedup"), (int, float)):
                return r["target_speedup"]
        b, h = self.cfg("batch"), self.cfg("hidden_size")
        return 3.0 if b <= 8 and 512 <= h <= 1024 else 1.5 if 64 <= b <= 256 else 1.0

    def sort_key(self):
        return (self.cfg("dtype"), self.cfg("layers"), self.cfg("directions"), self.cfg("seq_len"),
                self.cfg("hidden_size"), self.cfg("batch"), self.cfg("input_size"), self.cfg("proj_size"))


def build_rows(bench, torch_recs):
    rows = {}
    for r in bench:
        row = rows.setdefault(key_of(r), Row(key_of(r)))
        (row.culstm if r["backend"] in CULSTM_BACKENDS else row.cudnn).append(r)
    for r in torch_recs:
        row = rows.setdefault(key_of(r), Row(key_of(r)))
        if row.torch is None or (ok(r) and (not ok(row.torch) or r["median_us"] < row.torch["median_us"])):
            row.torch = r
    return sorted(rows.values(), key=Row.sort_key)


def first(records, field, default="unknown"):
    for r in records:
        v = r.get(field)
        if v not in (None, ""):
            return v
    return default


def values(records, field):
    return sorted({str(r.get(field)) for r in records if r.get(field) not in (None, "")})


def markdown(bench, torch_recs, sync, rows, command):
    everything = bench + torch_recs + sync
    lines = []
    device = first(everything, "device")
    lines.append("# culstm benchmark: %s" % device)
    lines.append("")
    lines.append("- device: %s; driver: %s; commit: %s" % (device, ", ".join(values(everything, "driver")) or "?",
                                                           ", ".join(values(everything, "commit")) or "?"))
    stamps = values(everything, "timestamp")
    if stamps:
        lines.append("- measured: %s .. %s (UTC)" % (stamps[0], stamps[-1]))
    lines.append("- culstm %s; CUDA runtime %s; cuDNN %s; torch %s (cuDNN %s)" % (
        first(bench, "culstm_version", "?"), first(bench, "cuda_runtime", "?"), first(bench, "cudnn_version", "?"),
        first(torch_recs, "torch_version", "?"), first(torch_recs, "cudnn_version", "?")))
    ceilings = {}
    for r in bench:
        if isinstance(r.get("gemm_tflops"), (int, float)):
            ceilings[(r.get("dtype"), r.get("math"))] = r["gemm_tflops"]
    if ceilings or first(bench, "copy_gbps", None):
        parts = ["cuBLAS GEMM %s%s %.0f TFLOP/s" % (dt, "" if m == "tensor" else "/" + m, v)
                 for (dt, m), v in sorted(ceilings.items())]
        copy = first(bench, "copy_gbps", None)
        if isinstance(copy, (int, float)):
            parts.append("device-to-device copy %.0f GB/s (read + write)" % copy)
        lines.append("- measured ceilings: " + "; ".join(parts))
    lines.append("- timing: %s mode; CUDA events around forward() on one stream; median of >= 20 timed calls after "
                 "warm-up; inputs rotated through > L2 (bench/README.md)" % ", ".join(values(bench + torch_recs,
                                                                                          "timing_mode") or ["?"]))
    if command:
        lines.append("- command: `%s`" % command)
    lines.append("")

    # The targets, measured.
    lines.append("## The issue's targets (measured)")
    lines.append("")
    classes = [("batch <= 8, H 512-1024: >= 3x per step vs cuDNN's fastest", 3.0),
               ("batch 64-256: >= 1.5x", 1.5), ("every other configuration: >= 1.0x", 1.0)]
    any_culstm = any(r.culstm_best() for r in rows)
    for label, bar in classes:
        members = [r for r in rows if r.target() == bar]
        both = [r for r in members if r.culstm_best() and r.cudnn_best()]
        speedups = [r.cudnn_best()["median_us"] / r.culstm_best()["median_us"] for r in both]
        met = sum(1 for s in speedups if s >= bar)
        if not members:
            lines.append("- %s: no configuration measured" % label)
        elif not speedups:
            lines.append("- %s: %d configurations, none with both culstm and cuDNN measured" % (label, len(members)))
        else:
            lines.append("- %s: **%d of %d met** (speedup min %.2fx, geometric mean %.2fx, max %.2fx)" % (
                label, met, len(speedups), min(speedups), geomean(speedups), max(speedups)))
    if not any_culstm:
        reasons = sorted({(r.get("error") or r.get("status"))[:160] for row in rows for r in row.culstm
                          if not ok(r)})
        lines.append("")
        lines.append("culstm's `cuda` backend produced no timing in this run%s" %
                     (": " + "; ".join(reasons) if reasons else " (not run)."))
    lines.append("")

    # The main table.
    lines.append("## Per configuration")
    lines.append("")
    lines.append("Per-step latency = median time of one forward() over T. Speedup = cuDNN's (or torch's) median over "
                 "culstm's. x floor = culstm's median over max(FLOPs / GEMM rate, bytes / copy bandwidth, "
                 "recurrence floor).")
    lines.append("")
    lines.append("| B | I | H | P | T | L | dir | dtype | culstm engine | culstm µs/step | cuDNN µs/step (algo) | "
                 "torch µs/step | vs cuDNN | vs torch | target | met | x floor (kind) | TFLOP/s |")
    lines.append("|" + "---|" * 18)
    for row in rows:
        best_cudnn = row.cudnn_best()
        torch_r = row.torch if ok(row.torch) else None
        c = row.culstm_best()
        # One row per configuration: culstm's fastest engine (the others in its engine cell).
        cudnn_txt = "—"
        if best_cudnn:
            cudnn_txt = "%s (%s)" % (fmt(best_cudnn["median_us"] / row.cfg("seq_len")),
                                     (best_cudnn.get("algo") or "?") +
                                     ("" if best_cudnn["backend"] == "cudnn" else ", via culstm"))
        vs_cudnn = best_cudnn["median_us"] / c["median_us"] if c and best_cudnn else None
        vs_torch = torch_r["median_us"] / c["median_us"] if c and torch_r else None
        met = "—" if vs_cudnn is None else ("yes" if vs_cudnn >= row.target() else "**no**")
        floor = c.get("ratio_to_floor") if c else None
        floor_txt = "%s (%s)" % (fmt(floor, "%.1f"), c.get("floor_kind") or "?") if c and floor else "—"
        engine = "—"
        if c:
            engine = engine_name(c)
            others = ["%s %s" % (engine_name(r), fmt(r["median_us"] / row.cfg("seq_len")))
                      for r in row.culstm if ok(r) and r is not c]
            if others:
                engine += " (" + ", ".join(others) + ")"
        elif row.culstm:
            engine = row.culstm[0].get("status", "?")
        lines.append("| %d | %d | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | ≥%.1fx | %s | %s | %s |"
                     % (row.cfg("batch"), row.cfg("input_size"), row.cfg("hidden_size"), row.cfg("proj_size"),
                        row.cfg("seq_len"), row.cfg("layers"), "bi" if row.cfg("directions") == 2 else "uni",
                        row.cfg("dtype"), engine,
                        fmt(c["median_us"] / row.cfg("seq_len")) if c else "—", cudnn_txt,
                        fmt(torch_r["median_us"] / row.cfg("seq_len")) if torch_r else "—",
                        fmt(vs_cudnn, "%.2fx"), fmt(vs_torch, "%.2fx"), row.target(), met, floor_txt,
                        fmt(c.get("tflops") if c else None, "%.1f")))
    lines.append("")

    # cuDNN's algorithms.
    alg_rows = [row for row in rows if any(r.get("algos") for r in row.cudnn)]
    if alg_rows:
        lines.append("## cuDNN's algorithms (median µs per forward; the fastest fully timed one is the baseline)")
        lines.append("")
        lines.append("| B | I | H | T | L | dir | dtype | backend | standard | persist_static | persist_static_small_h "
                     "| persist_dynamic | auto |")
        lines.append("|" + "---|" * 13)
        for row in alg_rows:
            for r in row.cudnn:
                algos = r.get("algos") or {}
                cells = []
                for name in ("standard", "persist_static", "persist_static_small_h", "persist_dynamic", "auto"):
                    a = algos.get(name)
                    if not a:
                        cells.append("")
                    elif a.get("status") == "ok":
                        cells.append(fmt(a.get("median_us"), "%.1f") + (" (quick)" if a.get("quick") else "") +
                                     (" **best**" if name == r.get("algo") else ""))
                    else:
                        cells.append(a.get("status", "?"))
                lines.append("| %d | %d | %d | %d | %d | %s | %s | %s | %s |" % (
                    row.cfg("batch"), row.cfg("input_size"), row.cfg("hidden_size"), row.cfg("seq_len"),
                    row.cfg("layers"), "bi" if row.cfg("directions") == 2 else "uni", row.cfg("dtype"),
                    r["backend"], " | ".join(cells)))
        lines.append("")

    # Sync microbenchmark.
    if sync:
        lines.append("## Cross-block step synchronization (sync_microbench, ns per step)")
        lines.append("")
        grids = sorted({r["grid"] for r in sync})
        lines.append("| scheme | variant | H | " + " | ".join("grid %d" % g for g in grids) + " |")
        lines.append("|" + "---|" * (3 + len(grids)))
        groups = {}
        for r in sync:
            groups.setdefault((r["scheme"], r["variant"], r["hidden"]), {})[r["grid"]] = r
        for (scheme, variant, hidden), by_grid in sorted(groups.items()):
            cells = []
            for g in grids:
                r = by_grid.get(g)
                if r is None:
                    cells.append("")
                elif r.get("status") == "ok":
                    cells.append(fmt(r.get("ns_per_step_median"), "%.0f"))
                else:
                    cells.append(r.get("status", "?"))
            lines.append("| %s | %s | %s | %s |" % (scheme, variant, hidden or "—", " | ".join(cells)))
        bad = [r for r in sync if r.get("status") in ("wrong", "timeout", "error")]
        if bad:
            lines.append("")
            lines.append("Failed or wrong schemes: " + "; ".join(
                "%s/%s grid %d H %d: %s %s" % (r["scheme"], r["variant"], r["grid"], r["hidden"], r["status"],
                                               r.get("note", "")) for r in bad))
        lines.append("")

    failures = [r for r in bench + torch_recs if r.get("status") not in ("ok",)]
    if failures:
        lines.append("## Not measured")
        lines.append("")
        seen = set()
        for r in failures:
            what = "%s %s: %s: %s" % (r.get("backend"), describe(r), r.get("status"), (r.get("error") or "")[:200])
            if what not in seen:
                seen.add(what)
                lines.append("- " + what)
        lines.append("")
    return "\n".join(lines) + "\n"


def engine_name(r):
    """The engine that ran; with the one asked for when it was chosen explicitly and differs."""
    actual, asked = r.get("engine") or "?", r.get("engine_requested") or "default"
    return actual if asked in ("default", actual) else "%s→%s" % (asked, actual)


def describe(r):
    return "B=%s I=%s H=%s P=%s T=%s L=%s %s %s" % (r.get("batch"), r.get("input_size"), r.get("hidden_size"),
                                                    r.get("proj_size"), r.get("seq_len"), r.get("layers"),
                                                    "bi" if r.get("directions") == 2 else "uni", r.get("dtype"))


def plot(rows, path):
    """Top: culstm's speedup over cuDNN's fastest vs batch; bottom: per-step latency of every backend vs batch."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written (the table is complete)"
    dtypes = sorted({row.cfg("dtype") for row in rows})
    if not dtypes:
        return "nothing to plot"
    fig, axes = plt.subplots(2, len(dtypes), figsize=(6.5 * len(dtypes), 9), squeeze=False)
    for col, dt in enumerate(dtypes):
        series_speed, series_lat = {}, {}
        for row in rows:
            if row.cfg("dtype") != dt:
                continue
            label = "H=%d T=%d L=%d %s" % (row.cfg("hidden_size"), row.cfg("seq_len"), row.cfg("layers"),
                                           "bi" if row.cfg("directions") == 2 else "uni")
            c, d = row.culstm_best(), row.cudnn_best()
            if c and d:
                series_speed.setdefault(label, []).append((row.cfg("batch"), d["median_us"] / c["median_us"]))
            for name, r in (("culstm", c), ("cuDNN", d), ("torch", row.torch if ok(row.torch) else None)):
                if r:
                    series_lat.setdefault((name, label), []).append((row.cfg("batch"),
                                                                     r["median_us"] / row.cfg("seq_len")))
        labels = sorted({label for _, label in series_lat} | set(series_speed))
        cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
        color = {label: cycle[k % len(cycle)] for k, label in enumerate(labels)}  # one colour per configuration
        ax = axes[0][col]
        for label, pts in sorted(series_speed.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=color[label], label=label)
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.axhline(1.5, color="gray", lw=0.8, ls=":")
        ax.axhline(3.0, color="gray", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch")
        ax.set_ylabel("speedup over cuDNN's fastest (x)")
        ax.set_title("%s: culstm / cuDNN" % dt + ("" if series_speed else " (no culstm measurement)"))
        if series_speed:
            ax.legend(fontsize=6)
        ax = axes[1][col]
        styles = {"culstm": "-", "cuDNN": "--", "torch": ":"}
        for (name, label), pts in sorted(series_lat.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=styles[name], marker=".", color=color[label],
                    label="%s %s" % (name, label))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch")
        ax.set_ylabel("µs per step (median)")
        ax.set_title("%s: per-step latency" % dt)
        if series_lat:
            ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ""


def default_out_dir(records):
    device = first(records, "device", "unknown-device")
    stamp = first(records, "timestamp", "")
    date = stamp[:10] if re.match(r"\d{4}-\d{2}-\d{2}", stamp) else datetime.date.today().isoformat()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    return os.path.join(root, "%s-%s" % (date, slug(device)))


def report(paths, out_dir, command, copy_inputs=True):
    bench, torch_recs, sync = load(paths)
    if not (bench or torch_recs or sync):
        raise SystemExit("report.py: no records in %s" % ", ".join(paths))
    out_dir = out_dir or default_out_dir(bench + torch_recs + sync)
    os.makedirs(out_dir, exist_ok=True)
    rows = build_rows(bench, torch_recs)
    md_path = os.path.join(out_dir, "results.md")
    with open(md_path, "w") as f:
        f.write(markdown(bench, torch_recs, sync, rows, command))
    note = plot(rows, os.path.join(out_dir, "speedup.png"))
    if copy_inputs:
        for p in paths:
            dst = os.path.join(out_dir, os.path.basename(p))
            if os.path.abspath(p) != os.path.abspath(dst):
                shutil.copyfile(p, dst)
    print("report: %s%s" % (md_path, "" if not note else " (%s)" % note))
    return md_path


def self_test(work):
    """Made-up records through the whole script, into `work` (never bench/results/)."""
    os.makedirs(work, exist_ok=True)
    base = dict(device="Test GPU", driver="0.0", commit="selftest", input_size=512, hidden_size=512, proj_size=0,
                seq_len=100, layers=1, directions=1, dtype="bf16", status="ok", timestamp="2000-01-01T00:00:00Z",
                timing_mode="latency")
    bench, torch_recs = [], []
    for b, culstm_us, cudnn_us in ((1, 300.0, 1200.0), (64, 900.0, 1000.0)):
        bench.append(dict(base, backend="cuda", engine="persistent", batch=b, median_us=culstm_us,
                          target_speedup=3.0 if b <= 8 else 1.5, ratio_to_floor=2.0, floor_kind="recurrence",
                          tflops=1.0, gemm_tflops=700.0, math="tensor", copy_gbps=3000.0))
        bench.append(dict(base, backend="cudnn", engine="standard", algo="standard", batch=b, median_us=cudnn_us,
                          algos={"standard": {"status": "ok", "median_us": cudnn_us, "runs": 20, "quick": False},
                                 "persist_static": {"status": "unsupported", "error": "x"}}))
        torch_recs.append(dict(base, backend="torch", engine="cudnn", batch=b, median_us=cudnn_us * 1.1))
    bench.append(dict(base, backend="cuda", engine="stepwise", engine_requested="stepwise", batch=1, median_us=600.0))
    bench.append(dict(base, backend="cuda", batch=8, status="unsupported", error="NotImplemented: test",
                      median_us=None))
    sync = [dict(benchmark="sync_microbench", device="Test GPU", scheme="flags", variant="exchange", grid=g,
                 hidden=512, cluster=0, ns_per_step_median=900.0 + g, status="ok", timestamp="2000-01-01T00:00:00Z")
            for g in (8, 132)]
    paths = []
    for name, recs in (("culstm_bench.json", bench), ("torch_lstm.json", torch_recs), ("sync.json", sync)):
        paths.append(os.path.join(work, name))
        with open(paths[-1], "w") as f:
            json.dump(recs, f)
    out = os.path.join(work, "report")
    md = open(report(paths, out, "self-test", copy_inputs=False)).read()
    expect = ["| 1 | 512 | 512 | 0 | 100 | 1 | uni | bf16 | persistent (stepwise 6.00) | 3.00 | 12.00 (standard) | "
              "13.20 | 4.00x |",
              "| 64 | 512 | 512 | 0 | 100 | 1 | uni | bf16 | persistent | 9.00 | 10.00 (standard) | 11.00 | 1.11x |",
              "batch <= 8, H 512-1024: >= 3x per step vs cuDNN's fastest: **1 of 1 met**",
              "batch 64-256: >= 1.5x: **0 of 1 met**", "| flags | exchange | 512 | 908 | 1032 |",
              "NotImplemented: test"]
    missing = [e for e in expect if e not in md]
    if missing:
        print("report.py self-test FAILED; missing from results.md:\n  " + "\n  ".join(missing))
        print(md)
        return 1
    print("report.py self-test passed (%s)" % out)
    return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="JSON files of culstm_bench, torch_lstm_bench.py, sync_microbench")
    p.add_argument("--out-dir", help="default: bench/results/<date>-<device>/")
    p.add_argument("--command", default="", help="the command that produced the inputs (recorded in the table)")
    p.add_argument("--no-copy", action="store_true", help="do not copy the input JSON files into the output folder")
    p.add_argument("--self-test", action="store_true")
    p.add_argument("--work", default="/tmp/culstm_report_self_test", help="--self-test's scratch folder")
    a = p.parse_args(argv)
    if a.self_test:
        return self_test(a.work)
    if not a.inputs:
        p.error("no input files")
    report(a.inputs, a.out_dir, a.command, copy_inputs=not a.no_copy)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
