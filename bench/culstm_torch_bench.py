#!/usr/bin/env python3
"""culstm.torch.LSTM against torch.nn.LSTM on the GPU (issue 14), on padded and on PackedSequence input.

Grid: batch 1, 8, 32, 64; hidden 512, 1024 (input = hidden); steps 100, 500; f32 and bf16; one layer, one
direction; input "padded" (every sequence T steps) and "packed" (a PackedSequence of unsorted lengths drawn
uniformly from [T/2, T], the case where nn.LSTM is slowest). Each configuration: both modules made from one
nn.LSTM (culstm.torch.LSTM.from_module), outputs compared before timing (a module whose output differs from the
other's by more than the bound is recorded as wrong_output and never timed), warm-up, then the median of
--runs timed calls with CUDA events on the current stream, under torch.inference_mode(). f32 is strict on both
sides (cuDNN's TF32 off, culstm's math strict_f32); bf16 keeps PyTorch's defaults. Packed timings include what
each module does with the PackedSequence (nn.LSTM: its packed kernels; culstm: pad, run with lengths, re-pack).

Writes <out>/culstm_torch.json (records) and <out>/culstm_torch.md (table); <out> defaults to
bench/results/<date>-<device>-python. --dry-run prints the grid without importing torch.

    python3 bench/culstm_torch_bench.py --dry-run
    PYTHONPATH=build/test/python python3 bench/culstm_torch_bench.py --runs 20 --out $OUT/python-bench
"""

import argparse
import datetime
import itertools
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_lstm_bench import git_commit  # noqa: E402  (one copy of the commit lookup for both benchmarks)

GRID = dict(batch=[1, 8, 32, 64], hidden=[512, 1024], steps=[100, 500], dtype=["f32", "bf16"],
            input=["padded", "packed"])
# ||culstm - nn.LSTM|| / ||nn.LSTM|| accepted before timing (both differ from exact math by their rounding).
BOUNDS = {"f32": 1e-4, "bf16": 5e-2}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", default=GRID["batch"], type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--hidden", default=GRID["hidden"], type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--steps", default=GRID["steps"], type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--dtype", default=GRID["dtype"], type=lambda s: s.split(","))
    p.add_argument("--input", default=GRID["input"], type=lambda s: s.split(","))
    p.add_argument("--runs", type=int, default=20, help="timed calls per module and configuration")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=0, help="stop starting configurations after this (0: none)")
    p.add_argument("--out", default="", help="results folder (default bench/results/<date>-<device>-python)")
    p.add_argument("--dry-run", action="store_true")
    a = p.parse_args(argv)
    for name in ("batch", "hidden", "steps"):
        if any(v <= 0 for v in getattr(a, name)):
            p.error(f"--{name}: expected positive integers")
    for name, allowed in (("dtype", {"f32", "bf16"}), ("input", {"padded", "packed"})):
        bad = set(getattr(a, name)) - allowed
        if bad:
            p.error(f"--{name}: unknown {sorted(bad)} (expected {sorted(allowed)})")
    if a.runs < 1 or a.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    return a


def grid(a):
    return [dict(batch=b, hidden=h, steps=t, dtype=d, input=i)
            for d, i, t, h, b in itertools.product(a.dtype, a.input, a.steps, a.hidden, a.batch)]


def make_modules(torch, lstm_class, hidden, dtype, device="cuda"):
    """(nn.LSTM, culstm.torch.LSTM) of one layer, input = hidden, with the same weights, dtype "f32" | "bf16".
    culstm's math stays strict_f32 for both: the option concerns f32 only (a bf16 model refuses allow_tf32)."""
    ref = torch.nn.LSTM(hidden, hidden).to(device, {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]).eval()
    return ref, lstm_class.from_module(ref).eval()


def describe(c):
    return f"B={c['batch']} H={c['hidden']} T={c['steps']} {c['dtype']} {c['input']}"


def main(argv):
    a = parse_args(argv)
    configs = grid(a)
    if a.dry_run:
        print(f"culstm_torch_bench --dry-run: {len(configs)} configurations x (nn.LSTM, culstm.torch.LSTM)")
        for c in configs:
            print("  " + describe(c))
        return 0

    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    import culstm.torch

    if not torch.cuda.is_available():
        print("culstm_torch_bench: error: torch sees no CUDA device", file=sys.stderr)
        return 1
    props = torch.cuda.get_device_properties(0)
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                f"{datetime.date.today()}-{re.sub(r'[^A-Za-z0-9]+', '-', props.name)}-python")
    os.makedirs(out, exist_ok=True)
    meta = dict(device=props.name, torch=torch.__version__, cuda=str(torch.version.cuda),
                cudnn=str(torch.backends.cudnn.version()), culstm=culstm.version(), commit=git_commit() or "unknown")
    print(f"culstm_torch_bench: {props.name}, torch {meta['torch']}, CUDA {meta['cuda']}, cuDNN {meta['cudnn']}, "
          f"culstm {meta['culstm']}, commit {meta['commit']}; {len(configs)} configurations")
    records = []
    start = time.monotonic()
    gen = torch.Generator().manual_seed(14)
    for c in configs:
        if a.budget_s and time.monotonic() - start > a.budget_s:
            print("culstm_torch_bench: time budget spent; stopping")
            break
        strict = c["dtype"] == "f32"
        torch.backends.cudnn.allow_tf32 = not strict
        torch.backends.cuda.matmul.allow_tf32 = not strict
        B, H, T = c["batch"], c["hidden"], c["steps"]
        ref, ours = make_modules(torch, culstm.torch.LSTM, H, c["dtype"])
        x = torch.randn(T, B, H, generator=gen).to("cuda", ref.weight_ih_l0.dtype)
        if c["input"] == "packed":
            lengths = torch.randint(max(1, T // 2), T + 1, (B,), generator=gen)
            lengths[torch.randint(0, B, (1,), generator=gen)] = T
            arg = pack_padded_sequence(x, lengths, enforce_sorted=False)
        else:
            arg = x
        rec = dict(meta, **c, input_size=H, layers=1, directions=1)
        with torch.inference_mode():
            try:
                want, got = ref(arg)[0], ours(arg)[0]
            except culstm.Error as e:  # recorded; the other configurations still run
                rec["status"], rec["error"] = "error", f"{type(e).__name__}: {e}"
                records.append(rec)
                print(f"{describe(c):40s} error: {rec['error']}")
                continue
            if c["input"] == "packed":
                want, got = want.data, got.data
            err = ((got.float() - want.float()).norm() / want.float().norm().clamp_min(1e-30)).item()
            rec["relative_difference"] = err
            if not err <= BOUNDS[c["dtype"]]:
                rec["status"] = "wrong_output"
                records.append(rec)
                print(f"{describe(c):40s} wrong_output (relative difference {err:.3g})")
                continue
            for name, module in (("torch", ref), ("culstm", ours)):
                for _ in range(a.warmup):
                    module(arg)
                times = []
                for _ in range(a.runs):
                    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    begin.record()
                    module(arg)
                    end.record()
                    end.synchronize()
                    times.append(begin.elapsed_time(end) * 1e3)
                times.sort()
                rec[f"{name}_median_us"] = times[len(times) // 2]
                rec[f"{name}_min_us"] = times[0]
        rec["status"] = "ok"
        rec["speedup"] = rec["torch_median_us"] / rec["culstm_median_us"]
        records.append(rec)
        print(f"{describe(c):40s} nn.LSTM {rec['torch_median_us']:10.1f} us   culstm {rec['culstm_median_us']:10.1f} "
              f"us   speedup {rec['speedup']:.2f}x")
        with open(os.path.join(out, "culstm_torch.json"), "w") as f:
            json.dump(records, f, indent=1)
    with open(os.path.join(out, "culstm_torch.json"), "w") as f:  # also the records of failed configurations
        json.dump(records, f, indent=1)
    with open(os.path.join(out, "culstm_torch.md"), "w") as f:
        f.write(f"# culstm.torch.LSTM vs torch.nn.LSTM — {props.name}\n\n"
                f"torch {meta['torch']}, CUDA {meta['cuda']}, cuDNN {meta['cudnn']}, culstm {meta['culstm']}, "
                f"commit {meta['commit']}; median of {a.runs} calls (CUDA events), inference_mode.\n\n"
                "| input | dtype | B | H | T | nn.LSTM us | culstm us | speedup | status |\n"
                "|---|---|---|---|---|---|---|---|---|\n")
        for r in records:
            f.write(f"| {r['input']} | {r['dtype']} | {r['batch']} | {r['hidden']} | {r['steps']} | "
                    f"{r.get('torch_median_us', float('nan')):.1f} | {r.get('culstm_median_us', float('nan')):.1f} | "
                    f"{r.get('speedup', float('nan')):.2f} | {r['status']} |\n")
    print(f"culstm_torch_bench: wrote {out}/culstm_torch.json and culstm_torch.md")
    return 0 if all(r["status"] == "ok" for r in records) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
