#!/usr/bin/env python3
"""torch.nn.LSTM on the GPU over the same grid as culstm_bench (issue 6), the same way: CUDA events on one
stream, warm-up, >= 20 timed runs, inputs rotated through a pool larger than L2, eval() + torch.no_grad(), cuDNN
enabled as PyTorch uses it (its own algorithm choice), bf16/f16 through the module's dtype. Writes the same JSON
records as culstm_bench with backend "torch" (rewritten after every configuration).

TF32 is set per configuration: f32 follows --math (strict: off), f16/bf16 keep PyTorch's default (on), because
PyTorch gives a bf16 LSTM FMA math (no tensor cores) when cuDNN's allow_tf32 is off. One untimed call per
configuration records the path torch really took (`engine`: cudnn when aten::_cudnn_rnn ran) and whether its
weights were used in place (`weights_flat`: false means a weight copy inside every timed call).
With --configs-from, f32 math and timing mode come from those records (a different --math or --mode is refused).

Needs only torch (no internet, no other package). --dry-run prints the grid without importing torch.

    python3 bench/torch_lstm_bench.py --quick
    python3 bench/torch_lstm_bench.py --configs-from culstm_bench.json --budget-s 90 --json torch_lstm.json
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings

DEFAULT_GRID = dict(batch=[1, 8, 32, 64, 256], hidden=[256, 512, 1024, 2048], steps=[100, 1000], layers=[1, 4],
                    dirs=["uni", "bi"], dtypes=["f32", "bf16"])
QUICK_GRID = dict(batch=[1, 64], hidden=[512], steps=[100], layers=[1], dirs=["uni"])


def int_list(text):
    values = [int(v) for v in text.split(",")]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("expected positive integers, comma-separated")
    return values


def at_least(lo, kind=int):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a number, got '%s'" % text)
        if not v >= lo:  # also rejects nan
            raise argparse.ArgumentTypeError("must be >= %s, got %s" % (lo, text))
        return v
    return parse


def name_list(allowed):
    def parse(text):
        values = text.split(",")
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError("unknown value(s) %s; expected some of %s" % (bad, sorted(allowed)))
        return values
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int_list)
    p.add_argument("--hidden", type=int_list)
    p.add_argument("--steps", type=int_list)
    p.add_argument("--layers", type=int_list)
    p.add_argument("--dirs", type=name_list({"uni", "bi"}))
    p.add_argument("--dtypes", type=name_list({"f32", "f16", "bf16"}))
    p.add_argument("--input", type=at_least(0), default=0, help="input size (0: = hidden)")
    p.add_argument("--proj", type=at_least(0), default=0, help="projection size (0: none)")
    p.add_argument("--quick", action="store_true",
                   help="batch 1,64; hidden 512; steps 100; layers 1; dirs uni (for the options not given)")
    p.add_argument("--configs-from", help="run exactly the configurations of this culstm_bench JSON, in its order, "
                                          "with its f32 math and timing mode")
    p.add_argument("--math", choices=["strict", "tf32"],
                   help="f32 math: strict (no tf32 in cuDNN or cuBLAS, the default) or tf32")
    p.add_argument("--warmup", type=at_least(1), default=3, help="warm-up calls (>= 1: the first sizes the runs)")
    p.add_argument("--runs", type=at_least(1), default=20, help="minimum timed runs")
    p.add_argument("--max-runs", type=at_least(1), default=200)
    p.add_argument("--target-ms", type=at_least(0, float), default=300, help="timed time per configuration")
    p.add_argument("--mode", choices=["latency", "throughput"], help="latency (the default) or throughput")
    p.add_argument("--rotate-mb", type=at_least(0, float), default=0, help="input pool size in MB (default 2 x L2)")
    p.add_argument("--budget-s", type=at_least(0, float), default=0,
                   help="stop cleanly before this many seconds (0: none)")
    p.add_argument("--order", choices=["priority", "grid"], default="priority")
    p.add_argument("--json", default="torch_lstm.json")
    p.add_argument("--commit", default=os.environ.get("CULSTM_COMMIT", ""))
    p.add_argument("--driver", default="")
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="print the grid; no GPU and no torch needed")
    a = p.parse_args(argv)
    # Options given explicitly are not None here, in any spelling (--batch 8, --batch=8): --quick fills the rest.
    for key, value in DEFAULT_GRID.items():
        if getattr(a, key) is None:
            setattr(a, key, list(QUICK_GRID.get(key, value) if a.quick else value))
    a.max_runs = max(a.max_runs, a.runs)
    a.records = None
    if a.configs_from:
        try:
            with open(a.configs_from) as f:
                records = json.load(f)
        except (OSError, ValueError) as e:
            p.error("--configs-from %s: %s" % (a.configs_from, e))
        a.records = [r for r in records if isinstance(r, dict) and "hidden_size" in r and
                     r.get("benchmark") != "sync_microbench"]
        # torch is compared with these records: measure it the same way, or refuse (a silent mismatch would merge
        # a tf32 or throughput culstm number with a strict or latency torch one).
        seen = dict(math=sorted({r["math"] for r in a.records if r.get("dtype") == "f32" and r.get("math")}),
                    mode=sorted({r["timing_mode"] for r in a.records if r.get("timing_mode")}))
        for name, found in seen.items():
            if len(found) > 1:
                p.error("--configs-from %s: its records mix %s %s; run one setting at a time" %
                        (a.configs_from, name, ", ".join(found)))
            if found and getattr(a, name) not in (None, found[0]):
                p.error("--%s %s differs from the %s of --configs-from's records (%s)" %
                        (name, getattr(a, name), name, found[0]))
            if found:
                setattr(a, name, found[0])
    a.math = a.math or "strict"
    a.mode = a.mode or "latency"
    return a


def allow_tf32_for(dtype, math_mode):
    """PyTorch's allow_tf32 flags for one configuration. f32: as --math says (strict = off). f16/bf16: PyTorch's
    default, on: its RNN descriptor gives non-half inputs FMA math (no tensor cores) when cuDNN's flag is off, so
    turning it off would time bf16 in a mode no torch user runs."""
    return math_mode == "tf32" if dtype == "f32" else True


def set_tf32(torch, on):
    """Sets the legacy allow_tf32 flags (every PyTorch reads them; 2.9+ warns they are deprecated, hence the filter).
    The newer fp32_precision flags are only read back: PyTorch raises when the two APIs are set inconsistently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cudnn.allow_tf32 = on
        torch.backends.cuda.matmul.allow_tf32 = on
    try:
        return str(torch.backends.cudnn.rnn.fp32_precision)  # PyTorch >= 2.9 only
    except Exception:  # noqa: BLE001 - older PyTorch: no such flag
        return None


def probe_path(torch, model, x):
    """One untimed call: the path torch took (cudnn when aten::_cudnn_rnn ran, from the CPU profiler; the C++
    dispatch predicate torch.cudnn_is_acceptable if the profiler cannot run), how that was found, and whether the
    weights were used in place (the "not part of single contiguous chunk" warning means they are copied on every
    call, inside the timed region; flatten_parameters() cannot fix it where PyTorch declines to flatten)."""
    prof = None
    try:
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        prof.start()
    except Exception:  # noqa: BLE001 - the profiler is optional here
        prof = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model(x)
            torch.cuda.synchronize()
        finally:
            if prof is not None:
                prof.stop()
    flat = not any("not part of single contiguous chunk" in str(w.message) for w in caught)
    names = None
    if prof is not None:
        try:
            names = {e.name for e in prof.events()}
        except Exception:  # noqa: BLE001
            names = None
    if names and "aten::lstm" in names:
        return ("cudnn" if "aten::_cudnn_rnn" in names else "native"), "profiler", flat
    return ("cudnn" if torch.cudnn_is_acceptable(x) else "native"), "cudnn_is_acceptable", flat


def flops(c):
    """8·B·T·H·(I_l + R) per layer and direction, + 2·B·T·H·P for the projection (docs/design.md §6)."""
    r = c["proj"] or c["hidden"]
    total = 0.0
    for layer in range(c["layers"]):
        i = c["input"] if layer == 0 else c["dirs"] * r
        per = 8.0 * c["batch"] * c["steps"] * c["hidden"] * (i + r)
        if c["proj"]:
            per += 2.0 * c["batch"] * c["steps"] * c["hidden"] * c["proj"]
        total += per * c["dirs"]
    return total


def make_config(batch, input_size, hidden, proj, steps, layers, dirs, dtype, math_mode="strict"):
    c = dict(batch=batch, input=input_size or hidden, hidden=hidden, proj=proj, steps=steps, layers=layers,
             dirs=dirs, dtype=dtype)
    small = batch <= 8 and 512 <= hidden <= 1024
    large = 64 <= batch <= 256
    c["tier"] = 0 if small or large else 1
    c["target_speedup"] = 3.0 if small else 1.5 if large else 1.0
    rate = (150e12 if math_mode == "tf32" else 30e12) if dtype == "f32" else 300e12
    c["est_call_s"] = flops(c) / rate + steps * layers * 8e-6  # same rough model as culstm_bench
    return c


def make_grid(a):
    if a.records is not None:
        grid, seen = [], set()
        for r in a.records:
            key = (r["batch"], r["input_size"], r["hidden_size"], r["proj_size"], r["seq_len"], r["layers"],
                   r["directions"], r["dtype"])
            if key not in seen:
                seen.add(key)
                grid.append(make_config(*key, math_mode=a.math))
        return grid
    grid = []
    for dt in a.dtypes:
        for layers in a.layers:
            for d in a.dirs:
                for steps in a.steps:
                    for hidden in a.hidden:
                        for batch in a.batch:
                            if a.proj and a.proj >= hidden:
                                continue
                            grid.append(make_config(batch, a.input, hidden, a.proj, steps, layers,
                                                    2 if d == "bi" else 1, dt, a.math))
    if a.order == "priority":
        grid.sort(key=lambda c: (c["tier"], c["est_call_s"]))
    return grid


def describe(c):
    return "B=%d I=%d H=%d P=%d T=%d L=%d %s %s" % (c["batch"], c["input"], c["hidden"], c["proj"], c["steps"],
                                                  c["layers"], "bi" if c["dirs"] == 2 else "uni", c["dtype"])


def min_bytes(c, es):
    r = c["proj"] or c["hidden"]
    w = 0.0
    for layer in range(c["layers"]):
        i = c["input"] if layer == 0 else c["dirs"] * r
        w += c["dirs"] * (4.0 * c["hidden"] * (i + r) + 8.0 * c["hidden"] + c["proj"] * c["hidden"])
    x = c["steps"] * c["batch"] * c["input"]
    y = c["steps"] * c["batch"] * c["dirs"] * r
    states = c["layers"] * c["dirs"] * c["batch"] * (r + c["hidden"])
    return (w + x + y + states) * es


def git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def driver_version(device):
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "-i",
                              str(device)], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def write_json(path, records):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("[\n" + ",\n".join("  " + json.dumps(r) for r in records) + ("\n" if records else "") + "]\n")
    os.replace(tmp, path)


def median(values):
    v = sorted(values)
    n = len(v)
    return float("nan") if n == 0 else v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main(argv):
    a = parse_args(argv)
    grid = make_grid(a)
    if a.dry_run:
        print("torch_lstm_bench --dry-run: %d configurations, order %s; f32 math %s, mode %s" %
              (len(grid), "as in " + a.configs_from if a.configs_from else a.order, a.math, a.mode))
        for c in grid:
            print("  tier %d  %s  flops %.3g" % (c["tier"], describe(c), flops(c)))
        return 0

    try:
        import torch  # only here, so that --dry-run works without it
    except ImportError as e:
        print("torch_lstm_bench: error: cannot import torch (%s)" % e, file=sys.stderr)
        return 1

    start = time.monotonic()
    deadline = start + a.budget_s if a.budget_s > 0 else None

    def remaining():
        return deadline - time.monotonic() if deadline else 1e30

    if not torch.cuda.is_available():
        print("torch_lstm_bench: error: torch sees no CUDA device", file=sys.stderr)
        return 1
    dev = torch.device("cuda", a.device)
    torch.cuda.set_device(dev)
    props = torch.cuda.get_device_properties(dev)
    l2 = int(getattr(props, "L2_cache_size", 0) or 50 * 1024 * 1024)
    torch.backends.cudnn.enabled = True  # TF32 flags: per configuration, below
    commit = a.commit or git_commit() or "unknown"
    driver = a.driver or driver_version(a.device) or "unknown"
    meta = dict(device=props.name, driver=driver, commit=commit)
    versions = dict(torch_version=torch.__version__, cuda_runtime=str(torch.version.cuda),
                    cudnn_version=str(torch.backends.cudnn.version()), sm_count=props.multi_processor_count,
                    l2_bytes=l2)
    print("torch_lstm_bench: %s (%d SMs, L2 %.0f MB), driver %s, torch %s, CUDA %s, cuDNN %s, commit %s; "
          "%d configurations" % (props.name, props.multi_processor_count, l2 / 1e6, driver, torch.__version__,
                                 torch.version.cuda, torch.backends.cudnn.version(), commit, len(grid)))
    dtypes = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    pool_min = a.rotate_mb * 1e6 if a.rotate_mb > 0 else 2 * l2
    stream = torch.cuda.current_stream(dev)
    records = []
    print("%-5s %-5s %-5s %-5s %-3s %-3s %-5s %11s %9s %8s  %s" % ("B", "H", "I", "T", "L", "dir", "dtype",
                                                                   "median_us", "step_us", "TFLOP/s", "status"))
    done = 0
    for c in grid:
        if deadline and time.monotonic() >= deadline:
            break
        dt = dtypes[c["dtype"]]
        es = 4 if c["dtype"] == "f32" else 2
        rec = dict(meta)
        rec.update(backend="torch", engine="", algo="", dtype=c["dtype"],
                   math=a.math if c["dtype"] == "f32" else "tensor", batch=c["batch"], input_size=c["input"],
                   hidden_size=c["hidden"], proj_size=c["proj"], seq_len=c["steps"], layers=c["layers"],
                   directions=c["dirs"], median_us=None, min_us=None, max_us=None, mean_us=None, runs=0,
                   warmup=a.warmup, per_step_us=None, flops=flops(c), tflops=None, min_bytes=min_bytes(c, es),
                   target_speedup=c["target_speedup"], priority_tier=c["tier"], timing_mode=a.mode,
                   status="ok", error="", argv=" ".join(sys.argv))
        rec.update(versions)
        # Before building the model: PyTorch reads the flags when it builds cuDNN descriptors, on every call.
        tf32 = allow_tf32_for(c["dtype"], a.math)
        rec.update(cudnn_allow_tf32=tf32, matmul_allow_tf32=tf32, cudnn_rnn_fp32_precision=set_tf32(torch, tf32))
        model = pool = None
        try:
            t0 = time.monotonic()
            model = torch.nn.LSTM(c["input"], c["hidden"], num_layers=c["layers"], bidirectional=c["dirs"] == 2,
                                  proj_size=c["proj"], batch_first=False)
            model = model.to(device=dev, dtype=dt).eval()  # PyTorch's init: uniform in ±1/sqrt(H), never zeros
            x_elems = c["steps"] * c["batch"] * c["input"]
            count = max(2, math.ceil(max(pool_min, 2 * x_elems * es) / (x_elems * es)))
            pool = torch.empty((count, c["steps"], c["batch"], c["input"]), dtype=dt, device=dev).uniform_(-1, 1)
            rec["rotation_buffers"] = count
            rec["rotation_bytes"] = count * x_elems * es
            torch.cuda.synchronize(dev)
            rec["setup_s"] = time.monotonic() - t0
            k = 0
            with torch.no_grad():
                rec["engine"], rec["engine_source"], rec["weights_flat"] = probe_path(torch, model, pool[0])
                call_ms = 0.0
                for w in range(a.warmup):
                    h0 = time.monotonic()
                    y, _ = model(pool[k % count])
                    k += 1
                    torch.cuda.synchronize(dev)
                    call_ms = (time.monotonic() - h0) * 1e3
                    if w == 0 and call_ms * 1e-3 * (a.warmup + a.runs) > remaining():
                        raise TimeoutError("time budget: one call takes %.3g ms" % call_ms)
                runs = max(a.runs, min(a.max_runs, math.ceil(a.target_ms / max(call_ms, 1e-3))))
                left = remaining() * 0.9
                if runs * call_ms * 1e-3 > left:
                    runs = max(a.runs, int(left / (call_ms * 1e-3)))
                if runs * call_ms * 1e-3 > remaining():
                    raise TimeoutError("time budget")
                events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                          for _ in range(runs)]
                enqueue = []
                for i in range(runs):
                    if a.mode == "latency":
                        torch.cuda.synchronize(dev)
                    x = pool[k % count]
                    k += 1
                    h0 = time.perf_counter()
                    events[i][0].record(stream)
                    y, _ = model(x)
                    events[i][1].record(stream)
                    enqueue.append((time.perf_counter() - h0) * 1e6)
                torch.cuda.synchronize(dev)
                us = sorted(s.elapsed_time(e) * 1e3 for s, e in events)
                finite = bool(torch.isfinite(y).all().item())
                nonzero = bool((y != 0).any().item())
            med = median(us)
            rec.update(median_us=med, min_us=us[0], max_us=us[-1], mean_us=sum(us) / len(us), runs=runs,
                       per_step_us=med / c["steps"], tflops=flops(c) / (med * 1e-6) / 1e12,
                       enqueue_us=median(enqueue),
                       output_check="ok" if finite and nonzero else ("nonfinite" if not finite else "all_zero"))
        except TimeoutError as e:
            rec.update(status="skipped", error=str(e))
        except Exception as e:  # noqa: BLE001 - one configuration's failure (OOM, unsupported) must not stop the run
            rec.update(status="error", error="%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300]))
        finally:
            del model, pool
            torch.cuda.empty_cache()
        rec["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        records.append(rec)
        done += 1
        write_json(a.json, records)
        status = rec["status"] if rec["status"] == "ok" else "%s: %s" % (rec["status"], rec["error"][:100])
        fmt = lambda v, spec: (spec % v) if isinstance(v, (int, float)) else "-"  # noqa: E731
        print("%-5d %-5d %-5d %-5d %-3d %-3s %-5s %11s %9s %8s  %s" % (
            c["batch"], c["hidden"], c["input"], c["steps"], c["layers"], "bi" if c["dirs"] == 2 else "uni",
            c["dtype"], fmt(rec["median_us"], "%.1f"), fmt(rec["per_step_us"], "%.2f"), fmt(rec["tflops"], "%.2f"),
            status), flush=True)
    if done < len(grid):
        print("torch_lstm_bench: time budget of %.0f s reached: %d of %d configurations run" %
              (a.budget_s, done, len(grid)))
    write_json(a.json, records)
    print("torch_lstm_bench: %d records in %s (%.0f s)" % (len(records), a.json, time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
