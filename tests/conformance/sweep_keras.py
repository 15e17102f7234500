#!/usr/bin/env python3
"""A random sweep of real Keras LSTM models through culstm, used the way a Keras user would (not run in CI: it
needs Keras and takes minutes).

Each model is a random LSTM, stack of LSTMs, Bidirectional(LSTM) or Bidirectional with an explicit backward_layer
(1-3 layers; random sizes, activations, use_bias, go_backwards, masks with lengths including 0, initial states,
return_sequences True or False). Keras computes the outputs (the mask passed as `mask=`, as a Masking layer would
when no initial_state is given). Then, for a model culstm can express:
  route "export"  model.save(.keras) -> tools/export_keras.py (its export() function) -> `culstm run`
  route "paths"   the weights under Keras's own variable paths plus a flat "culstm.keras" (no culstm.layers: the
                  importer finds layer order and each Bidirectional's LSTMs from the paths alone) -> `culstm run`
and y, h_n, c_n are compared with Keras's through the mapping docs/formats.md gives (go_backwards: y reversed in
time; masks: y at valid steps, except Bidirectional, which writes zeros; return_sequences=False: y is the last
layer's h_n, except a length-0 row with an initial state, where the Keras backend decides). For a model culstm
cannot express (a backward_layer or a stacked layer with other options or units, merge_mode other than concat,
go_backwards on a stack) the exporter must refuse it naming the option, and `culstm run` must refuse the weights
with the exporter's culstm.layers (one line, exit 1, no output file).

usage: KERAS_BACKEND=jax|torch python sweep_keras.py CULSTM [--count N] [--seed S] [--work DIR]
Needs the packages of requirements-keras.txt (JAX backend); for KERAS_BACKEND=torch also torch (e.g. 2.15.0).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import export_keras  # noqa: E402

ACTIVATIONS = ["tanh", "relu", "sigmoid", "softsign", "softplus", "elu", "linear", "hard_sigmoid"]
RECURRENT = ["sigmoid", "hard_sigmoid", "tanh", "softsign"]
BOUND = 1e-5  # ‖culstm − Keras‖ / ‖Keras‖ per output, as the conformance fixtures


def numpy(v):
    return np.asarray(keras.ops.convert_to_numpy(v))


def random_case(rng):
    """A model description; `refuse` names the option culstm must refuse, None when culstm can run it."""
    kind = rng.choice(["lstm", "stack", "bidirectional", "explicit_backward"])
    L = 1 if kind == "lstm" else int(rng.integers(1 if "bi" in kind or "explicit" in kind else 2, 4))
    c = dict(kind=kind, L=L, I=int(rng.integers(1, 7)), u=int(rng.integers(1, 7)), T=int(rng.integers(1, 7)),
             B=int(rng.integers(1, 5)), activation=str(rng.choice(ACTIVATIONS)),
             recurrent_activation=str(rng.choice(RECURRENT)), use_bias=bool(rng.random() < 0.8),
             go_backwards=kind == "lstm" and bool(rng.random() < 0.4), masked=bool(rng.random() < 0.5),
             initial_state=bool(rng.random() < 0.5), return_sequences=bool(rng.random() < 0.6),
             merge_mode="concat", differ=None, refuse=None)
    # Now and then something culstm cannot express.
    if rng.random() < 0.3:
        if kind == "bidirectional" and rng.random() < 0.5:
            c["merge_mode"] = str(rng.choice(["sum", "mul", "ave"]))
            c["refuse"] = "merge_mode"
        elif kind == "stack" and rng.random() < 0.3:
            c["go_backwards"] = True
            c["refuse"] = "go_backwards"
        elif kind in ("stack", "explicit_backward") and (kind == "explicit_backward" or L > 1):
            key = str(rng.choice(["activation", "recurrent_activation", "use_bias", "units"]))
            value = {"activation": "relu" if c["activation"] != "relu" else "tanh",
                     "recurrent_activation": "hard_sigmoid" if c["recurrent_activation"] != "hard_sigmoid"
                     else "sigmoid",
                     "use_bias": not c["use_bias"], "units": c["u"] + 1}[key]
            # explicit_backward: the backward LSTM differs; stack: the last layer does
            c["differ"] = (key, value)
            c["refuse"] = key
    return c


def output_width(layer):
    """The features of the layer's output sequence: the next layer's input size."""
    if isinstance(layer, keras.layers.LSTM):
        return layer.units
    forward, backward = layer.forward_layer.units, layer.backward_layer.units
    return forward + backward if layer.merge_mode == "concat" else forward


def build_layers(c):
    """The model's layers, built and given random weights (by the case's own generator)."""
    layers = []
    width = c["I"]
    for l in range(c["L"]):
        options = dict(units=c["u"], activation=c["activation"], recurrent_activation=c["recurrent_activation"],
                       use_bias=c["use_bias"], go_backwards=c["go_backwards"], return_state=True,
                       return_sequences=c["return_sequences"] or l < c["L"] - 1)
        if c["differ"] and c["kind"] == "stack" and l == c["L"] - 1:
            options[c["differ"][0]] = c["differ"][1]
        lstm = keras.layers.LSTM(**options)
        if c["kind"] == "lstm" or c["kind"] == "stack":
            layer = lstm
        else:
            backward = None
            if c["kind"] == "explicit_backward":
                back = dict(options, go_backwards=True)
                if c["differ"]:
                    back[c["differ"][0]] = c["differ"][1]
                backward = keras.layers.LSTM(**back)
            layer = keras.layers.Bidirectional(lstm, backward_layer=backward, merge_mode=c["merge_mode"])
        layer.build((c["B"], c["T"], width))
        width = output_width(layer)
        layers.append(layer)
    return layers


def keras_outputs(c, layers, x, lengths, h0, c0):
    """y (or y_last), and the states per layer and direction, calling the layers as a Sequential model would."""
    mask = None if lengths is None else np.arange(c["T"])[None, :] < lengths[:, None]
    y, h_n, c_n = x, [], []
    for l, layer in enumerate(layers):
        D = 1 if isinstance(layer, keras.layers.LSTM) else 2
        kwargs = {}
        if mask is not None:
            kwargs["mask"] = mask
        if h0 is not None:
            kwargs["initial_state"] = [s for d in range(D) for s in (h0[l * D + d], c0[l * D + d])]
        out = [numpy(o) for o in layer(y, **kwargs)]
        y = out[0]
        h_n += [out[1 + 2 * d] for d in range(D)]
        c_n += [out[2 + 2 * d] for d in range(D)]
    return y, h_n, c_n


def save_model(layers, c, path):
    inputs = keras.Input((c["T"], c["I"]))
    y = inputs
    for layer in layers:
        y = layer(y)[0]
    keras.Model(inputs, y).save(path)


def write_npy(work, name, a):
    p = os.path.join(work, name)
    np.save(p, a)
    return p


def run_culstm(culstm, weights, work, x, lengths, h0, c0):
    out = {k: os.path.join(work, k + ".npy") for k in ("y", "hn", "cn")}
    for p in out.values():
        if os.path.exists(p):
            os.remove(p)
    args = [culstm, "run", "--weights", weights, "--input", write_npy(work, "x.npy", x), "--output", out["y"],
            "--hn", out["hn"], "--cn", out["cn"], "--backend", "reference"]
    if lengths is not None:
        args += ["--lengths", write_npy(work, "lengths.npy", lengths.astype(np.int32))]
    if h0 is not None:
        args += ["--h0", write_npy(work, "h0.npy", h0), "--c0", write_npy(work, "c0.npy", c0)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    got = {k: np.load(v) for k, v in out.items() if os.path.exists(v)}
    return p.returncode, p.stderr, got


def rel(a, b):
    n = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / n) if n > 0 else float(np.linalg.norm(a - b))


def compare(c, keras_out, got, lengths, h0, stats):
    """[problem strings] comparing culstm's outputs with Keras's through the documented mapping."""
    y_k, h_k, c_k = keras_out
    D = 1 if c["kind"] in ("lstm", "stack") else 2
    problems = []
    h_n, c_n = got["hn"], got["cn"]
    for name, mine, theirs in (("h_n", h_n, np.stack(h_k)), ("c_n", c_n, np.stack(c_k))):
        e = rel(mine, theirs)
        if e > BOUND:
            problems.append(f"{name} relative error {e:.3g}")
    if c["return_sequences"]:
        y = got["y"]
        ref = y_k[:, ::-1] if c["go_backwards"] else y_k
        valid = np.ones(ref.shape[:2], bool)
        if lengths is not None and D == 1:  # Keras repeats the previous output at masked steps
            valid = np.arange(c["T"])[None, :] < lengths[:, None]
        e = rel(y[valid], ref[valid])
        if e > BOUND:
            problems.append(f"y relative error {e:.3g}")
    else:
        top = np.concatenate([h_n[-D + d] for d in range(D)], axis=-1)
        rows = np.ones(c["B"], bool)
        if lengths is not None and h0 is not None:
            empty = lengths == 0
            rows = ~empty
            for b in np.nonzero(empty)[0]:  # documented: the Keras backend decides (zeros or h0)
                kind = "zeros" if not y_k[b].any() else ("h0" if np.allclose(y_k[b], top[b]) else "other")
                stats[f"length-0 row with initial state, return_sequences=False: Keras gives {kind}"] += 1
        e = rel(top[rows], y_k[rows])
        if e > BOUND:
            problems.append(f"y (return_sequences=False) vs h_n relative error {e:.3g}")
    return problems


def paths_file(layers, c, path):
    """Keras's own variable paths and a flat culstm.keras, as a user writes them without the exporter."""
    tensors = {w.path: np.ascontiguousarray(numpy(w.value), dtype=np.float32) for layer in layers for w in layer.weights}
    meta = {"keras_version": keras.__version__, "activation": c["activation"],
            "recurrent_activation": c["recurrent_activation"], "go_backwards": c["go_backwards"]}
    save_file(tensors, path, metadata={"culstm.keras": json.dumps(meta)})


def structure_file(layers, path):
    """Keras's own variable paths with culstm.layers as the exporter would write it, but without its checks."""
    lstms, entries = export_keras.stack_lstms(layers, keras.layers.Bidirectional)
    tensors = {w.path: np.ascontiguousarray(numpy(w.value), dtype=np.float32) for layer in layers for w in layer.weights}
    save_file(tensors, path, metadata={"culstm.layers": json.dumps(entries),
                                       "culstm.keras": json.dumps({"keras_version": keras.__version__})})


def sweep_one(c, rng, culstm, work, stats):
    keras.backend.clear_session()
    layers = build_layers(c)
    for layer in layers:
        for w in layer.weights:
            w.assign(rng.uniform(-0.7, 0.7, tuple(w.shape)).astype(np.float32))
    D = 1 if c["kind"] in ("lstm", "stack") else 2
    x = rng.uniform(-1, 1, (c["B"], c["T"], c["I"])).astype(np.float32)
    lengths = rng.integers(0, c["T"] + 1, c["B"]) if c["masked"] else None
    h0 = c0 = None
    if c["initial_state"]:
        h0 = rng.uniform(-1, 1, (c["L"] * D, c["B"], c["u"])).astype(np.float32)
        c0 = rng.uniform(-1, 1, (c["L"] * D, c["B"], c["u"])).astype(np.float32)
    problems = []
    model_path = os.path.join(work, "model.keras")
    save_model(layers, c, model_path)
    exported = os.path.join(work, "exported.safetensors")
    if os.path.exists(exported):
        os.remove(exported)
    if c["refuse"]:
        try:
            export_keras.export(model_path, exported, "", False)
            problems.append(f"export_keras.py accepted it (expected a refusal naming {c['refuse']})")
        except export_keras.Refused as e:
            if c["refuse"] not in str(e):
                problems.append(f"export_keras.py refused without naming {c['refuse']}: {e}")
            if os.path.exists(exported):
                problems.append("export_keras.py refused but wrote its output")
        structured = os.path.join(work, "structured.safetensors")
        structure_file(layers, structured)
        rc, err, got = run_culstm(culstm, structured, work, x, lengths, None, None)
        if rc != 1 or len(err.strip().splitlines()) != 1 or "NotSupported" not in err or c["refuse"] not in err:
            problems.append(f"culstm run: exit {rc}, stderr {err.strip()!r} (expected one NotSupported line naming "
                            f"{c['refuse']})")
        if got:
            problems.append("culstm run refused but wrote outputs")
        stats["refused as expected" if not problems else "refusal problems"] += 1
        return problems
    keras_out = keras_outputs(c, layers, x, lengths, h0, c0)
    export_keras.export(model_path, exported, "", False)
    route_files = [("export", exported)]
    paths = os.path.join(work, "paths.safetensors")
    paths_file(layers, c, paths)
    route_files.append(("paths", paths))
    for route, weights in route_files:
        rc, err, got = run_culstm(culstm, weights, work, x, lengths, h0, c0)
        if rc != 0:
            problems.append(f"{route}: culstm run exit {rc}: {err.strip()}")
            continue
        problems += [f"{route}: {p}" for p in compare(c, keras_out, got, lengths, h0, stats)]
        stats[f"runs compared ({route})"] += 1
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("culstm")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default="")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="sweep_keras_")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    from collections import Counter
    stats, kinds, failures = Counter(), Counter(), []
    for i in range(args.count):
        c = random_case(rng)
        kinds[c["kind"] + (" (refused: %s)" % c["refuse"] if c["refuse"] else "")] += 1
        try:
            problems = sweep_one(c, rng, args.culstm, work, stats)
        except Exception as e:  # a crash in Keras or here is a finding too
            problems = [f"exception {type(e).__name__}: {e}"]
        if problems:
            failures.append((i, c, problems))
            print(f"model {i}: {json.dumps(c)}\n  " + "\n  ".join(problems), flush=True)
    print(f"sweep_keras: keras {keras.__version__}, backend {keras.backend.backend()}, seed {args.seed}: "
          f"{args.count} models")
    for k, v in sorted(kinds.items()):
        print(f"  {v:4d}  {k}")
    for k, v in sorted(stats.items()):
        print(f"  {v:4d}  {k}")
    print(f"{args.count - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
