#!/usr/bin/env python3
"""Merges the JSON files of culstm_bench, torch_lstm_bench.py and sync_microbench into the README table (markdown)
and a PNG plot of culstm's speedup over cuDNN vs batch (matplotlib; without it the table is still written), in
bench/results/<date>-<device>/ (or --out-dir). Only real runs belong in bench/results/ (bench/README.md).

    python3 bench/report.py culstm_bench.json torch_lstm.json sync_microbench.json [--out-dir DIR] [--command CMD]
                            [--check-status pass|FAIL|not-run] [--planned PLAN.txt]
    python3 bench/report.py --self-test --work /tmp/x      (checks this script on made-up records, never in results/)

--check-status is the verdict of `culstm check` on benchmark shapes (run_gpu.sh): anything but "pass" opens
results.md with a banner and withholds the target counts. --planned is `culstm_bench --dry-run` output with the same
flags: the configurations the run meant to measure, so that the ones the time budget never reached are counted.
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
# A configuration's shape; rows are keyed on the shape, the settings that change what is measured (f32 math, timing
# mode) and culstm's graph mode (see build_rows), so records measured differently never share a row.
SHAPE_KEYS = ("batch", "input_size", "hidden_size", "proj_size", "seq_len", "layers", "directions", "dtype")
SETTING_KEYS = ("math", "timing_mode")
ROW_KEYS = SHAPE_KEYS + SETTING_KEYS + ("graph_mode",)
# engine_requested of the record that times what Model::create picks on its own (older records lack the field).
DEFAULT_ENGINE_REQUESTS = ("default", None, "")
# Lines of `culstm_bench --dry-run` (and torch_lstm_bench.py --dry-run): "B=1 I=512 H=512 P=0 T=100 L=1 uni bf16".
PLAN_LINE = re.compile(r"B=(\d+) I=(\d+) H=(\d+) P=(\d+) T=(\d+) L=(\d+) (uni|bi) (f32|f16|bf16)\b")
CLASSES = [("batch <= 8, H 512-1024: >= 3x per step vs cuDNN's fastest", 3.0), ("batch 64-256: >= 1.5x", 1.5),
           ("every other configuration: >= 1.0x", 1.0)]


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


def load_plan(path):
    """Shapes (SHAPE_KEYS order) listed by a --dry-run; empty without a file."""
    if not path:
        return []
    shapes = []
    with open(path) as f:
        for line in f:
            m = PLAN_LINE.search(line)
            if m:
                b, i, h, p, t, l, d, dt = m.groups()
                shapes.append((int(b), int(i), int(h), int(p), int(t), int(l), 2 if d == "bi" else 1, dt))
    return shapes


def verification_failure(r):
    """Why a record's outputs must not be trusted ("" when they may). culstm_bench writes status "wrong_output"
    and "verify": "wrong: ..." for a runner whose outputs failed verification; older files have neither field,
    and "verify": "skipped (<why>)" is no failure (the runner could not be compared, e.g. no reference)."""
    bad = ["%s %s" % (field, r[field]) for field in ("verify", "output_check")
           if r.get(field) not in (None, "", "ok") and not str(r[field]).startswith("skipped")]
    if r.get("status") == "wrong_output" and not bad:
        bad = ["outputs failed verification"]
    return "; ".join(bad)


def ok(r):
    """A timing that counts: status ok, a positive finite median, and outputs not found wrong."""
    if r is None or r.get("status") != "ok" or verification_failure(r):
        return False
    m = r.get("median_us")
    return isinstance(m, (int, float)) and math.isfinite(m) and m > 0


def why_not(r):
    """Why a record is no timing that counts, as "<kind>: <detail>" (the kind alone goes into table cells)."""
    if r is None:
        return "not run"
    if verification_failure(r):
        return "wrong_output: " + verification_failure(r)
    if r.get("status") == "ok":
        return "no valid median: %s" % r.get("median_us")
    return r.get("status") or "?"


def shape_of(r):
    return tuple(r.get(k) for k in SHAPE_KEYS)


def graph_of(r):
    return r.get("graph_mode") or None


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown-device"


def fmt(v, spec="%.2f", missing="—"):
    return spec % v if isinstance(v, (int, float)) and math.isfinite(v) else missing


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def target_for(batch, hidden):
    """The issue's bar for a shape (the same rule as culstm_bench's target_speedup)."""
    return 3.0 if batch <= 8 and 512 <= hidden <= 1024 else 1.5 if 64 <= batch <= 256 else 1.0


def describe_shape(shape):
    b, i, h, p, t, l, d, dt = shape
    return "B=%s I=%s H=%s P=%s T=%s L=%s %s %s" % (b, i, h, p, t, l, "bi" if d == 2 else "uni", dt)


def describe(r):
    return describe_shape(shape_of(r))


class Row:
    """One configuration under one set of settings: culstm's records (one per engine), cuDNN's, torch's best."""

    def __init__(self, key):
        self.key = key
        self.culstm = []  # records of backend cuda
        self.cudnn = []   # records of backends cudnn / culstm-cudnn
        self.torch = None

    def add(self, r):
        if r["backend"] in CULSTM_BACKENDS:
            self.culstm.append(r)
        elif r["backend"] in CUDNN_BACKENDS:
            self.cudnn.append(r)
        elif self.torch is None or (ok(r) and (not ok(self.torch) or r["median_us"] < self.torch["median_us"])):
            self.torch = r

    def cfg(self, name):
        return self.key[ROW_KEYS.index(name)]

    def shape(self):
        return self.key[:len(SHAPE_KEYS)]

    def reached(self):
        """culstm_bench got to this configuration (torch alone does not count: it runs after)."""
        return bool(self.culstm or self.cudnn)

    def cudnn_best(self):
        good = [r for r in self.cudnn if ok(r)]
        return min(good, key=lambda r: r["median_us"]) if good else None

    def culstm_default(self):
        """The record of what Model::create picks on its own: the only one the targets are judged on."""
        for r in self.culstm:
            if r.get("engine_requested") in DEFAULT_ENGINE_REQUESTS:
                return r
        for r in self.culstm:  # an explicit "auto" is the same choice
            if r.get("engine_requested") == "auto":
                return r
        return None

    def culstm_forced(self):
        return [r for r in self.culstm if r.get("engine_requested") not in DEFAULT_ENGINE_REQUESTS + ("auto",)]

    def forced_best(self):
        good = [r for r in self.culstm_forced() if ok(r)]
        return min(good, key=lambda r: r["median_us"]) if good else None

    def speedup(self):
        """cuDNN's fastest over culstm's default engine; None when either has no timing."""
        c, d = self.culstm_default(), self.cudnn_best()
        return d["median_us"] / c["median_us"] if ok(c) and d else None

    def target(self):
        for r in self.culstm + self.cudnn + ([self.torch] if self.torch else []):
            if isinstance(r.get("target_speedup"), (int, float)):
                return r["target_speedup"]
        return target_for(self.cfg("batch"), self.cfg("hidden_size"))

    def sort_key(self):
        return (self.cfg("dtype"), self.cfg("layers"), self.cfg("directions"), self.cfg("seq_len"),
                self.cfg("hidden_size"), self.cfg("batch"), self.cfg("input_size"), self.cfg("proj_size"),
                tuple(str(self.cfg(k)) for k in SETTING_KEYS + ("graph_mode",)))


def build_rows(bench, torch_recs):
    """Rows keyed on shape, settings and graph mode. Records that carry a graph mode (culstm's) get their own row
    per mode; records without one (cuDNN's, torch's, older files) join every row of their shape and settings, since
    culstm's graph mode does not change how they were measured."""
    rows = {}
    with_graph = [r for r in bench if graph_of(r)]
    without = [r for r in bench if not graph_of(r)] + list(torch_recs)
    for r in with_graph:
        key = shape_of(r) + tuple(r.get(k) for k in SETTING_KEYS) + (graph_of(r),)
        rows.setdefault(key, Row(key)).add(r)
    for r in without:
        base = shape_of(r) + tuple(r.get(k) for k in SETTING_KEYS)
        targets = [row for key, row in rows.items() if key[:-1] == base]
        if not targets:
            targets = [rows.setdefault(base + (None,), Row(base + (None,)))]
        for row in targets:
            row.add(r)
    return sorted(rows.values(), key=Row.sort_key)


def first(records, field, default="unknown"):
    for r in records:
        v = r.get(field)
        if v not in (None, ""):
            return v
    return default


def values(records, field):
    return sorted({str(r.get(field)) for r in records if r.get(field) not in (None, "")})


def mixed_settings(bench, torch_recs, sync):
    """What differs between the merged records that must not: one run is one device, driver, commit, f32 math,
    timing mode and graph mode. Returns 'field: a, b' strings (empty when all agree)."""
    everything = bench + torch_recs + sync
    out = []
    for field in ("device", "driver", "commit"):
        seen = values(everything, field)
        if len(seen) > 1:
            out.append("%s: %s" % (field, ", ".join(seen)))
    for dtype in sorted({r.get("dtype") for r in bench + torch_recs if r.get("dtype")}):
        seen = values([r for r in bench + torch_recs if r.get("dtype") == dtype], "math")
        if len(seen) > 1:
            out.append("%s math: %s" % (dtype, ", ".join(seen)))
    for field in ("timing_mode", "graph_mode"):
        seen = values(bench + torch_recs, field)
        if len(seen) > 1:
            out.append("%s: %s" % (field, ", ".join(seen)))
    return out


def engine_name(r):
    """The engine that ran; with the one asked for when it was chosen explicitly and differs."""
    actual, asked = r.get("engine") or "?", r.get("engine_requested") or "default"
    return actual if asked in ("default", actual) else "%s→%s" % (asked, actual)


def torch_cell(r, steps):
    if not ok(r):
        return "—"
    notes = [r.get("engine") or "?"]
    if r.get("weights_flat") is False:
        notes.append("weights copied per call")
    return "%s (%s)" % (fmt(r["median_us"] / steps), ", ".join(notes))


def group_shapes(shapes):
    """'T=1000 L=4 bi f32 ×8, ...': shapes grouped on everything but batch and hidden, largest group first."""
    counts = {}
    for s in shapes:
        g = "T=%s L=%s %s %s" % (s[4], s[5], "bi" if s[6] == 2 else "uni", s[7])
        counts[g] = counts.get(g, 0) + 1
    return ", ".join("%s ×%d" % (g, n) for g, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def target_lines(rows, plan, gated):
    """Per class: met X of N (N = every configuration with a cuDNN baseline; culstm failures count as not met),
    then the coverage: what was measured, what had no baseline, what the budget never reached."""
    lines = []
    reached_shapes = {row.shape() for row in rows if row.reached()}
    not_reached = sorted({s for s in plan if s not in reached_shapes} |
                         {row.shape() for row in rows if not row.reached()})
    for label, bar in CLASSES:
        members = [r for r in rows if r.reached() and r.target() == bar]
        unreached = [s for s in not_reached if target_for(s[0], s[2]) == bar]
        with_base = [r for r in members if r.cudnn_best()]
        no_base = [r for r in members if not r.cudnn_best()]
        speedups = [r.speedup() for r in with_base if r.speedup() is not None]
        failed = {}
        for r in with_base:
            if r.speedup() is None:
                reason = why_not(r.culstm_default()).split(":")[0]
                failed[reason] = failed.get(reason, 0) + 1
        if not with_base:
            lines.append("- %s: no configuration with a cuDNN baseline" % label)
        elif gated:
            lines.append("- %s: %d configuration%s with a cuDNN baseline; met count withheld (see the banner)" %
                         (label, len(with_base), "" if len(with_base) == 1 else "s"))
        else:
            text = "- %s: **met %d of %d configurations in the class** (every one with a cuDNN baseline)" % (
                label, sum(1 for s in speedups if s >= bar), len(with_base))
            if speedups:
                text += "; culstm's default engine vs cuDNN's fastest: min %.2fx, geometric mean %.2fx, max %.2fx" % (
                    min(speedups), geomean(speedups), max(speedups))
            if failed:
                text += "; not met for want of a culstm timing: " + ", ".join(
                    "%s %d" % kv for kv in sorted(failed.items()))
            lines.append(text)
        total = len(members) + len(unreached)
        cov = "  - coverage: measured %d of %d (culstm's default engine and cuDNN both timed)" % (len(speedups), total)
        if no_base:
            cov += "; no cuDNN baseline: %d (%s%s)" % (
                len(no_base), "; ".join("%s: cuDNN %s" % (describe_shape(r.shape()),
                                                          why_not(r.cudnn[0] if r.cudnn else None))
                                        for r in no_base[:4]), "; ..." if len(no_base) > 4 else "")
        if unreached:
            cov += "; not reached: %d (%s)" % (len(unreached), group_shapes(unreached))
        lines.append(cov)
    return lines


def markdown(bench, torch_recs, sync, rows, command, check_status=None, plan=()):
    everything = bench + torch_recs + sync
    mixed = mixed_settings(bench, torch_recs, sync)
    # A failed (or missing) correctness gate or merged records from different settings: numbers stay in the table,
    # but no "met" count is printed, so nobody quotes one.
    gated = bool(mixed) or (check_status is not None and check_status != "pass")
    lines = []
    device = first(everything, "device")
    lines.append("# culstm benchmark: %s" % device)
    lines.append("")
    if check_status is not None and check_status != "pass":
        lines.append("> **`culstm check` %s on the benchmark shapes**: culstm's outputs were not shown correct "
                     "before timing, so no target counts are given and every culstm number below is unverified "
                     "(session.log has the check's table)." % ("FAILED" if check_status == "FAIL" else "did not run"))
        lines.append("")
    if mixed:
        lines.append("> **The merged records were not measured under one setting** (%s). Rows are kept apart by "
                     "f32 math, timing mode and graph mode, but no target counts are given: rerun everything in "
                     "one session." % "; ".join(mixed))
        lines.append("")
    lines.append("- device: %s; driver: %s; commit: %s" % (", ".join(values(everything, "device")) or device,
                                                           ", ".join(values(everything, "driver")) or "?",
                                                           ", ".join(values(everything, "commit")) or "?"))
    stamps = values(everything, "timestamp")
    if stamps:
        lines.append("- measured: %s .. %s (UTC)" % (stamps[0], stamps[-1]))
    lines.append("- culstm %s; CUDA runtime %s; cuDNN %s; torch %s (cuDNN %s)" % (
        first(bench, "culstm_version", "?"), first(bench, "cuda_runtime", "?"), first(bench, "cudnn_version", "?"),
        first(torch_recs, "torch_version", "?"), first(torch_recs, "cudnn_version", "?")))
    if check_status is not None:
        lines.append("- correctness gate (`culstm check` on benchmark shapes, before timing): %s" % check_status)
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
    f32 = [r for r in bench + torch_recs if r.get("dtype") == "f32"]
    settings = ["f32 math %s" % ", ".join(values(f32, "math") or ["?"])] if f32 else []
    settings.append("timing %s mode" % ", ".join(values(bench + torch_recs, "timing_mode") or ["?"]))
    culstm_recs = [r for r in bench if r["backend"] in CULSTM_BACKENDS]
    graph_modes = values(culstm_recs, "graph_mode")
    if graph_modes:
        replayed = sum(1 for r in culstm_recs if ((r.get("graph_stats") or {}).get("replays") or 0) > 0)
        settings.append("culstm graph mode %s (timed calls replayed a CUDA graph in %d of %d culstm records)" % (
            ", ".join(graph_modes), replayed, len(culstm_recs)))
    lines.append("- settings: " + "; ".join(settings) + ". CUDA events around forward() on one stream; median of "
                 ">= 20 timed calls after warm-up; inputs rotated through > L2 (bench/README.md)")
    verified = [r for r in culstm_recs if r.get("verify")]
    if verified:
        kinds = {}
        for r in verified:
            k = "ok" if r["verify"] == "ok" else r["verify"].split(" ")[0].rstrip(":")
            kinds[k] = kinds.get(k, 0) + 1
        lines.append("- culstm outputs verified before timing (against %s): %s" % (
            ", ".join(values(verified, "verify_against")) or "?",
            ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    setup = {}
    for r in bench + torch_recs:
        if isinstance(r.get("setup_s"), (int, float)) and math.isfinite(r["setup_s"]):
            setup[r["backend"]] = setup.get(r["backend"], 0.0) + r["setup_s"]
    if setup:
        lines.append("- setup time outside the timed calls, summed: " +
                     ", ".join("%s %.1f s" % kv for kv in sorted(setup.items())))
    if torch_recs:
        lines.append("- torch's time is `nn.LSTM` as a user calls it: Python's per-call overhead (the module call, "
                     "zero h0/c0, allocations) included, eager (no CUDA graph), with the cuDNN algorithm PyTorch picks "
                     "(mostly STANDARD; its persistent algorithms only for some small f16 or H <= 192 shapes), and a "
                     "weight copy on every call where its weights are not flat (marked). 'vs torch' is therefore "
                     "mostly cuDNN STANDARD plus PyTorch's overhead, not a second independent result.")
    if command:
        lines.append("- command: `%s`" % command)
    lines.append("")

    # The targets, measured on culstm's default engine (what a user gets without choosing).
    lines.append("## The issue's targets (measured, culstm's default engine)")
    lines.append("")
    lines.extend(target_lines(rows, plan, gated))
    if not any(ok(r.culstm_default()) for r in rows):
        reasons = sorted({why_not(r)[:160] for row in rows for r in row.culstm if not ok(r)})
        lines.append("")
        lines.append("culstm's `cuda` backend (default engine) produced no timing in this run%s" %
                     (": " + "; ".join(reasons) if reasons else " (not run)."))
    lines.append("")

    # The main table.
    # Settings that differ between rows are shown beside the dtype, so rows that look alike can be told apart.
    varying = [k for k in SETTING_KEYS + ("graph_mode",) if len({r.cfg(k) for r in rows} - {None, ""}) > 1]
    lines.append("## Per configuration")
    lines.append("")
    lines.append("Per-step latency = median time of one forward() over T. Speedup = cuDNN's (or torch's) median over "
                 "the median of culstm's default engine (what `Model::create` picks); the target and 'met' are "
                 "judged on it. 'best forced engine' is the fastest engine forced through "
                 "`ModelOptions::cuda_engine`, with its speedup over cuDNN: the evidence for "
                 "kernels/persistent_traits.h, not what a user gets. x floor = culstm's median over the "
                 "measured-scheme floor, max(FLOPs / GEMM rate, bytes / copy bandwidth, recurrence floor from the "
                 "fastest measured sync scheme): below 1 means the floor model is exceeded, not a proven bound.")
    lines.append("")
    lines.append("| B | I | H | P | T | L | dir | dtype | culstm engine | culstm µs/step | cuDNN µs/step (algo) | "
                 "torch µs/step (engine) | vs cuDNN | vs torch | target | met | best forced engine (vs cuDNN) | "
                 "x floor (kind) | TFLOP/s |")
    lines.append("|" + "---|" * 19)
    for row in rows:
        steps = row.cfg("seq_len")
        best_cudnn = row.cudnn_best()
        torch_r = row.torch if ok(row.torch) else None
        d = row.culstm_default()
        c = d if ok(d) else None
        cudnn_txt = "—"
        if best_cudnn:
            cudnn_txt = "%s (%s)" % (fmt(best_cudnn["median_us"] / steps),
                                     (best_cudnn.get("algo") or "?") +
                                     ("" if best_cudnn["backend"] == "cudnn" else ", via culstm"))
        vs_cudnn = row.speedup()
        vs_torch = torch_r["median_us"] / c["median_us"] if c and torch_r else None
        if not best_cudnn:
            met = "— (no cuDNN baseline)"
        elif gated:
            met = "withheld"
        elif vs_cudnn is None:
            met = "**no (culstm %s)**" % why_not(d).split(":")[0]
        else:
            met = "yes" if vs_cudnn >= row.target() else "**no**"
        floor = c.get("ratio_to_floor") if c else None
        floor_txt = "—"
        if isinstance(floor, (int, float)) and math.isfinite(floor) and floor > 0:
            floor_txt = "%s (%s)" % (fmt(floor, "%.1f"), c.get("floor_kind") or "?")
            if floor < 1:
                floor_txt += " **floor model exceeded**"
        engine = "default=%s" % engine_name(d) if c else ("default: %s" % why_not(d).split(":")[0] if d else "—")
        forced = row.forced_best()
        if forced:
            forced_txt = "%s %s µs/step" % (engine_name(forced), fmt(forced["median_us"] / steps))
            if best_cudnn:
                forced_txt += ", %s" % fmt(best_cudnn["median_us"] / forced["median_us"], "%.2fx")
        elif row.culstm_forced():
            forced_txt = "; ".join("%s: %s" % (r.get("engine_requested"), why_not(r).split(":")[0])
                                   for r in row.culstm_forced())
        else:
            forced_txt = "—"
        dtype = row.cfg("dtype") + ("/tf32" if row.cfg("math") == "tf32" else "")
        dtype += "".join(" %s" % row.cfg(k) for k in varying if k != "math")
        lines.append("| %d | %d | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | ≥%.1fx | %s | %s | %s "
                     "| %s |" % (row.cfg("batch"), row.cfg("input_size"), row.cfg("hidden_size"), row.cfg("proj_size"),
                               steps, row.cfg("layers"), "bi" if row.cfg("directions") == 2 else "uni", dtype,
                               engine, fmt(c["median_us"] / steps) if c else "—", cudnn_txt,
                               torch_cell(row.torch, steps), fmt(vs_cudnn, "%.2fx"), fmt(vs_torch, "%.2fx"),
                               row.target(), met, forced_txt, floor_txt, fmt(c.get("tflops") if c else None, "%.1f")))
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

    # Everything that is not a timing that counts, wrong outputs included.
    failures = [r for r in bench + torch_recs if not ok(r)]
    if failures:
        lines.append("## Not measured")
        lines.append("")
        seen = set()
        for r in failures:
            engine = r.get("engine_requested") or r.get("algo") or ""
            what = "%s%s %s: %s" % (r.get("backend"), "/" + engine if engine else "", describe(r), why_not(r))
            if r.get("error"):
                what += ": " + r["error"][:200]
            if what not in seen:
                seen.add(what)
                lines.append("- " + what)
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(rows, path):
    """Top: speedup of culstm's default engine over cuDNN's fastest vs batch; bottom: per-step latency vs batch."""
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
            d = row.culstm_default()
            c, b = (d if ok(d) else None), row.cudnn_best()
            if row.speedup() is not None:
                series_speed.setdefault(label, []).append((row.cfg("batch"), row.speedup()))
            for name, r in (("culstm", c), ("cuDNN", b), ("torch", row.torch if ok(row.torch) else None)):
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
        ax.set_title("%s: culstm (default engine) / cuDNN" % dt + ("" if series_speed else " (no culstm measurement)"))
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


def report(paths, out_dir, command, copy_inputs=True, check_status=None, plan_path=None):
    bench, torch_recs, sync = load(paths)
    if not (bench or torch_recs or sync):
        raise SystemExit("report.py: no records in %s" % ", ".join(paths))
    out_dir = out_dir or default_out_dir(bench + torch_recs + sync)
    os.makedirs(out_dir, exist_ok=True)
    rows = build_rows(bench, torch_recs)
    md_path = os.path.join(out_dir, "results.md")
    with open(md_path, "w") as f:
        f.write(markdown(bench, torch_recs, sync, rows, command, check_status, load_plan(plan_path)))
    note = plot(rows, os.path.join(out_dir, "speedup.png"))
    if copy_inputs:
        for p in paths:
            dst = os.path.join(out_dir, os.path.basename(p))
            if os.path.abspath(p) != os.path.abspath(dst):
                shutil.copyfile(p, dst)
    print("report: %s%s" % (md_path, "" if not note else " (%s)" % note))
    return md_path


def _write(work, name, records):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        json.dump(records, f)
    return path


def _check(name, md, expect=(), reject=()):
    """Lines of failure for one self-test case (empty when it passed)."""
    missing = ["missing: " + e for e in expect if e not in md]
    present = ["must not appear: " + e for e in reject if e in md]
    if not (missing or present):
        return []
    return ["case %s:" % name] + ["  " + m for m in missing + present] + ["--- results.md ---", md]


def _self_test_torch_args(work):
    """torch_lstm_bench.py's argument handling (S3, W7, W10), through its own functions: no torch needed."""
    import contextlib
    import io
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_lstm_bench as tb
    errors = []

    def parse(argv):
        with contextlib.redirect_stderr(io.StringIO()):
            try:
                return tb.parse_args(argv)
            except SystemExit:
                return None

    for argv in (["--quick", "--batch=8"], ["--quick", "--batch", "8"]):
        a = parse(argv)
        if a is None or a.batch != [8] or a.hidden != [512]:
            errors.append("torch args %s: --quick must leave an explicit --batch alone (got %s)" %
                          (argv, a and (a.batch, a.hidden)))
    for argv in (["--warmup", "-3"], ["--runs", "0"], ["--warmup=0"]):
        if parse(argv) is not None:
            errors.append("torch args %s: must be rejected" % argv)
    rec = dict(backend="cuda", batch=1, input_size=512, hidden_size=512, proj_size=0, seq_len=100, layers=1,
               directions=1, dtype="f32", math="tf32", timing_mode="throughput", status="ok")
    path = _write(work, "torch_from.json", [rec, dict(rec, dtype="bf16", math="tensor")])
    a = parse(["--configs-from", path])
    if a is None or (a.math, a.mode) != ("tf32", "throughput") or len(tb.make_grid(a)) != 2:
        errors.append("torch --configs-from: must take math and mode from the records (got %s)" %
                      (a and (a.math, a.mode)))
    if parse(["--configs-from", path, "--math", "strict"]) is not None:
        errors.append("torch --configs-from with a different --math: must be refused")
    if parse(["--configs-from", path, "--mode", "latency"]) is not None:
        errors.append("torch --configs-from with a different --mode: must be refused")
    mixed = _write(work, "torch_mixed.json", [rec, dict(rec, batch=8, math="strict")])
    if parse(["--configs-from", mixed]) is not None:
        errors.append("torch --configs-from with records of two f32 maths: must be refused")
    for dtype, math_mode, want in (("f32", "strict", False), ("f32", "tf32", True), ("bf16", "strict", True),
                                   ("f16", "strict", True)):
        if tb.allow_tf32_for(dtype, math_mode) is not want:
            errors.append("torch allow_tf32_for(%s, %s) must be %s" % (dtype, math_mode, want))
    errors += _self_test_torch_probe(tb)
    return errors


def _self_test_torch_probe(tb):
    """torch_lstm_bench.py's TF32 flags and path probe against a stand-in for torch (the real one is not needed)."""
    import types
    import warnings
    ns = types.SimpleNamespace
    errors = []
    fake = ns(backends=ns(cudnn=ns(allow_tf32=None, rnn=ns(fp32_precision="ieee")),
                          cuda=ns(matmul=ns(allow_tf32=None))))
    if tb.set_tf32(fake, False) != "ieee" or fake.backends.cudnn.allow_tf32 is not False or \
            fake.backends.cuda.matmul.allow_tf32 is not False:
        errors.append("torch set_tf32: must set both legacy flags and read back cudnn.rnn.fp32_precision")

    class Profile:
        fail = False

        def __init__(self, activities):
            if Profile.fail:
                raise RuntimeError("no profiler here")

        def start(self):
            pass

        def stop(self):
            pass

        def events(self):
            return [ns(name="aten::lstm"), ns(name="aten::_cudnn_rnn")]

    def unflat_model(x):
        warnings.warn("RNN module weights are not part of single contiguous chunk of memory. This means ...")

    fake = ns(profiler=ns(profile=Profile, ProfilerActivity=ns(CPU="cpu")), cuda=ns(synchronize=lambda: None),
              cudnn_is_acceptable=lambda x: False)
    got = tb.probe_path(fake, unflat_model, None)
    if got != ("cudnn", "profiler", False):
        errors.append("torch probe_path: aten::_cudnn_rnn under the profiler and the weight warning must give "
                      "('cudnn', 'profiler', False), got %s" % (got,))
    Profile.fail = True
    got = tb.probe_path(fake, lambda x: None, None)
    if got != ("native", "cudnn_is_acceptable", True):
        errors.append("torch probe_path without a profiler must fall back to torch.cudnn_is_acceptable, got %s" %
                      (got,))
    return errors


def self_test(work):
    """Made-up records through the whole script, into `work` (never bench/results/). One case per behaviour."""
    os.makedirs(work, exist_ok=True)
    base = dict(device="Test GPU", driver="0.0", commit="selftest", input_size=512, hidden_size=512, proj_size=0,
                seq_len=100, layers=1, directions=1, dtype="bf16", math="tensor", status="ok",
                timestamp="2000-01-01T00:00:00Z", timing_mode="latency")
    # culstm records as culstm_bench writes them now: verification, graph mode and stats, setup time.
    cu = dict(base, backend="cuda", verify="ok", verify_rel_l2=1e-3, verify_against="culstm-cudnn", graph_mode="auto",
              graph_stats=dict(direct_runs=20, captures=0, replays=0, updates=0), setup_s=0.5, gemm_tflops=700.0,
              copy_gbps=3000.0, ratio_to_floor=2.0, floor_kind="recurrence", tflops=1.0)
    default = dict(cu, engine="stepwise", engine_requested="default")

    def cudnn(b, us, **kw):
        return dict(base, backend="cudnn", engine="standard", algo="standard", batch=b, median_us=us, **kw,
                    algos={"standard": {"status": "ok", "median_us": us, "runs": 20, "quick": False},
                           "persist_static": {"status": "unsupported", "error": "x"}})

    bench = [
        # B=1: the default engine meets the 3x bar.
        dict(default, batch=1, median_us=300.0), cudnn(1, 1200.0),
        # B=8 (W4): the default engine is slower than cuDNN; a forced engine is fast. Targets follow the default.
        dict(default, batch=8, median_us=2000.0), cudnn(8, 1000.0),
        dict(cu, engine="persistent", engine_requested="persistent", batch=8, median_us=100.0),
        dict(cu, engine="stepwise", engine_requested="stepwise", batch=8, median_us=2010.0),
        # B=2 and B=4 (W2): fast but wrong outputs, as status and as a verify field; neither may count.
        dict(default, batch=2, median_us=100.0, status="wrong_output", verify="wrong: y rel_l2 0.5 > 0.05"),
        cudnn(2, 1000.0),
        dict(default, batch=4, median_us=50.0, verify="wrong: h_n rel_l2 1.0 > 0.05"), cudnn(4, 1000.0),
        # B=6 (W5): culstm failed where cuDNN has a baseline: not met, in the denominator.
        dict(default, batch=6, median_us=None, status="error", error="CUDA error: test"), cudnn(6, 800.0),
        # B=3 (W5): no cuDNN baseline: outside the count, listed.
        dict(default, batch=3, median_us=300.0),
        dict(base, backend="cudnn", batch=3, median_us=None, status="unsupported", error="bf16 not supported"),
        # B=64: default 1.11x, short of 1.5x; the forced persistent engine is unsupported.
        dict(default, batch=64, median_us=900.0), cudnn(64, 1000.0),
        dict(cu, engine="persistent", engine_requested="persistent", batch=64, median_us=None, status="unsupported",
             error="NotImplemented: test"),
        # B=256 (L1): faster than the measured-scheme floor.
        dict(default, batch=256, median_us=500.0, ratio_to_floor=0.8), cudnn(256, 1000.0),
        # B=32: an older record without engine_requested, verify, graph_mode or setup_s still counts.
        dict(base, backend="cuda", engine="stepwise", batch=32, median_us=500.0), cudnn(32, 600.0),
    ]
    torch_recs = [dict(base, backend="torch", engine="cudnn", weights_flat=True, batch=1, median_us=1320.0),
                  dict(base, backend="torch", engine="cudnn", weights_flat=True, batch=64, median_us=1100.0),
                  dict(base, backend="torch", engine="cudnn", weights_flat=False, batch=256, median_us=1500.0)]
    sync = [dict(benchmark="sync_microbench", device="Test GPU", driver="0.0", commit="selftest", scheme="flags",
                 variant="exchange", grid=g, hidden=512, cluster=0, ns_per_step_median=900.0 + g, status="ok",
                 timestamp="2000-01-01T00:00:00Z") for g in (8, 132)]
    paths = [_write(work, "culstm_bench.json", bench), _write(work, "torch_lstm.json", torch_recs),
             _write(work, "sync.json", sync)]
    # The planned grid (culstm_bench --dry-run): what was run plus two configurations the budget never reached.
    plan = os.path.join(work, "plan.txt")
    with open(plan, "w") as f:
        f.write("culstm_bench --dry-run: 10 configurations, order priority\n")
        for b in (1, 2, 3, 4, 6, 8, 32, 64, 256):
            f.write("  tier 0  B=%d I=512 H=512 P=0 T=100 L=1 uni bf16  flops 1  est 1 s\n" % b)
        f.write("  tier 0  B=1 I=512 H=512 P=0 T=1000 L=4 bi bf16  flops 1  est 9 s\n")
        f.write("  tier 0  B=64 I=512 H=512 P=0 T=1000 L=1 uni bf16  flops 1  est 9 s\n")
        f.write("estimated total: 30 s\n")
    errors = []

    md = open(report(paths, os.path.join(work, "pass"), "self-test", copy_inputs=False, check_status="pass",
                     plan_path=plan)).read()
    errors += _check("consistent run, check passed", md, expect=[
        # W4: the default engine's record makes the row; the forced engine has its own column.
        "| 1 | 512 | 512 | 0 | 100 | 1 | uni | bf16 | default=stepwise | 3.00 | 12.00 (standard) | 13.20 (cudnn) | "
        "4.00x | 4.40x | ≥3.0x | yes | — |",
        "| 8 | 512 | 512 | 0 | 100 | 1 | uni | bf16 | default=stepwise | 20.00 | 10.00 (standard) | — | 0.50x | — "
        "| ≥3.0x | **no** | persistent 1.00 µs/step, 10.00x |",
        # W2 and W5: wrong outputs and failures are not met, and counted.
        "| 2 | 512 | 512 | 0 | 100 | 1 | uni | bf16 | default: wrong_output | — | 10.00 (standard) |",
        "≥3.0x | **no (culstm wrong_output)** |", "≥3.0x | **no (culstm error)** |",
        "batch <= 8, H 512-1024: >= 3x per step vs cuDNN's fastest: **met 1 of 5 configurations in the class**",
        "not met for want of a culstm timing: error 1, wrong_output 2",
        # W5 / L5: coverage per class.
        "coverage: measured 2 of 7", "no cuDNN baseline: 1 (B=3 I=512 H=512 P=0 T=100 L=1 uni bf16: cuDNN unsupported)",
        "not reached: 1 (T=1000 L=4 bi bf16 ×1)", "batch 64-256: >= 1.5x: **met 1 of 2 configurations in the class**",
        "coverage: measured 2 of 3", "every other configuration: >= 1.0x: **met 1 of 1 configurations in the class**",
        "| 64 | 512 | 512 | 0 | 100 | 1 | uni | bf16 | default=stepwise | 9.00 | 10.00 (standard) | 11.00 (cudnn) | "
        "1.11x | 1.22x | ≥1.5x | **no** | persistent: unsupported |",
        "| 32 | 512 | 512 | 0 | 100 | 1 | uni | bf16 | default=stepwise | 5.00 | 6.00 (standard) | — | 1.20x |",
        "≥3.0x | — (no cuDNN baseline) |",
        # L1 and W8/W9: the floor flag, torch's engine and weight copy, the note on what torch's time includes.
        "0.8 (recurrence) **floor model exceeded**", "15.00 (cudnn, weights copied per call)",
        "measured-scheme floor", "mostly cuDNN STANDARD plus PyTorch's overhead",
        # The new fields reach the header; the gate's verdict is shown.
        "correctness gate (`culstm check` on benchmark shapes, before timing): pass",
        "culstm graph mode auto (timed calls replayed a CUDA graph in 0 of", "(against culstm-cudnn): ok ",
        "setup time outside the timed calls, summed: cuda ",
        # Not measured: wrong outputs with the reason, failures with the error.
        "- cuda/default B=2 I=512 H=512 P=0 T=100 L=1 uni bf16: wrong_output: verify wrong: y rel_l2 0.5 > 0.05",
        "- cuda/default B=4 I=512 H=512 P=0 T=100 L=1 uni bf16: wrong_output: verify wrong: h_n rel_l2",
        "NotImplemented: test", "| flags | exchange | 512 | 908 | 1032 |"],
        reject=["withheld", "not measured under one setting", "FAILED", "50.00x", "20.00x"])

    md = open(report(paths, os.path.join(work, "fail"), "self-test", copy_inputs=False, check_status="FAIL",
                     plan_path=plan)).read()
    errors += _check("culstm check failed (W3)", md, expect=[
        "> **`culstm check` FAILED on the benchmark shapes**",
        "batch <= 8, H 512-1024: >= 3x per step vs cuDNN's fastest: 5 configurations with a cuDNN baseline; "
        "met count withheld", "| 4.00x | 4.40x | ≥3.0x | withheld |", "coverage: measured 2 of 7"],
        reject=["**met ", "| yes |"])

    md = open(report(paths, os.path.join(work, "norun"), "self-test", copy_inputs=False,
                     check_status="not-run")).read()
    errors += _check("culstm check did not run (W3)", md, expect=["`culstm check` did not run", "met count withheld"],
                     reject=["**met "])

    # W10: culstm tf32 against strict cuDNN and torch, another device's sync file, a throughput torch record.
    mixed_bench = [dict(default, batch=1, dtype="f32", math="tf32", median_us=300.0),
                   cudnn(1, 1200.0, dtype="f32", math="strict")]
    mixed_torch = [dict(base, backend="torch", engine="cudnn", batch=1, dtype="f32", math="strict",
                        median_us=1260.0, timing_mode="throughput")]
    mixed_sync = [dict(sync[0], device="Other GPU")]
    mixed_paths = [_write(work, "mixed_bench.json", mixed_bench), _write(work, "mixed_torch.json", mixed_torch),
                   _write(work, "mixed_sync.json", mixed_sync)]
    md = open(report(mixed_paths, os.path.join(work, "mixed"), "self-test", copy_inputs=False,
                     check_status="pass")).read()
    errors += _check("mixed settings (W10)", md, expect=[
        "**The merged records were not measured under one setting**", "device: Other GPU, Test GPU",
        "f32 math: strict, tf32", "timing_mode: latency, throughput",
        "| f32/tf32 latency | default=stepwise | 3.00 | — |",
        "| f32 throughput | — | — | — | 12.60 (cudnn) |",
        "met count withheld"], reject=["**met ", "4.00x", "4.20x"])

    errors += _self_test_torch_args(work)
    if errors:
        print("report.py self-test FAILED:\n" + "\n".join(errors))
        return 1
    print("report.py self-test passed (%s)" % work)
    return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="JSON files of culstm_bench, torch_lstm_bench.py, sync_microbench")
    p.add_argument("--out-dir", help="default: bench/results/<date>-<device>/")
    p.add_argument("--command", default="", help="the command that produced the inputs (recorded in the table)")
    p.add_argument("--check-status", choices=["pass", "FAIL", "not-run"],
                   help="verdict of `culstm check` on benchmark shapes; anything but pass withholds the target counts")
    p.add_argument("--planned", help="`culstm_bench --dry-run` output with the run's flags (counts what was not "
                                     "reached)")
    p.add_argument("--no-copy", action="store_true", help="do not copy the input JSON files into the output folder")
    p.add_argument("--self-test", action="store_true")
    p.add_argument("--work", default="/tmp/culstm_report_self_test", help="--self-test's scratch folder")
    a = p.parse_args(argv)
    if a.self_test:
        return self_test(a.work)
    if not a.inputs:
        p.error("no input files")
    report(a.inputs, a.out_dir, a.command, copy_inputs=not a.no_copy, check_status=a.check_status,
           plan_path=a.planned)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
