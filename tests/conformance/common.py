"""Shared by the gen_*.py conformance generators: fixture writing, spec JSON, seeded inputs.

A fixture is one safetensors file (tests/conformance/fixtures/<framework>/<case>.safetensors) holding
  - the LSTM weights under the framework's own names and layout (what the importers read),
  - the call's inputs and the framework's outputs under names starting with "conformance.":
      conformance.x, conformance.lengths (i32, optional), conformance.h0, conformance.c0 (optional),
      conformance.y, conformance.h_n, conformance.c_n
    in the layouts listed in the metadata (conformance.y_layout, conformance.state_layout),
  - metadata (all strings): conformance.* keys described in README.md.
Only numpy and safetensors are needed here, so every framework's virtual environment can import it.
"""
import json
import os
import platform
import struct

import numpy as np
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")

# Default (alpha, beta) per activation kind, as culstm's Activation factories (ONNX's defaults).
_DEFAULT_AB = {
    "sigmoid": (0.0, 0.0), "tanh": (0.0, 0.0), "relu": (0.0, 0.0), "affine": (1.0, 0.0),
    "leaky_relu": (0.01, 0.0), "thresholded_relu": (1.0, 0.0), "scaled_tanh": (1.0, 1.0),
    "hard_sigmoid": (0.2, 0.5), "elu": (1.0, 0.0), "softsign": (0.0, 0.0), "softplus": (0.0, 0.0),
}


def act(kind, alpha=None, beta=None):
    a, b = _DEFAULT_AB[kind]
    return {"kind": kind, "alpha": float(np.float32(a if alpha is None else alpha)),
            "beta": float(np.float32(b if beta is None else beta))}


def expected_spec(input_size, hidden_size, *, proj_size=0, num_layers=1, direction="forward", bias=True,
                  layout="seq_major", gate=None, cell=None, hidden=None, gate_clip=None, cell_clip=None,
                  peepholes=False, input_forget=False):
    """The LstmSpec culstm must end up with: sizes plus the "culstm.spec" fields (docs/formats.md)."""
    return {
        "input_size": int(input_size), "hidden_size": int(hidden_size), "proj_size": int(proj_size),
        "num_layers": int(num_layers), "bias": bool(bias), "peepholes": bool(peepholes),
        "spec": {
            "direction": direction, "layout": layout, "dtype": "f32", "math": "strict_f32",
            "gate_activation": gate or act("sigmoid"),
            "cell_activation": cell or act("tanh"),
            "hidden_activation": hidden or act("tanh"),
            "gate_clip": None if gate_clip is None else float(np.float32(gate_clip)),
            "cell_clip": None if cell_clip is None else float(np.float32(cell_clip)),
            "input_forget": bool(input_forget),
        },
    }


def spec_json_fields(spec):
    """The "culstm.spec" metadata (non-inferable fields only) for an expected spec."""
    return json.dumps(spec["spec"], sort_keys=True)


def rng_for(seed):
    return np.random.default_rng(seed)


def uniform(rng, shape, scale=1.0):
    return rng.uniform(-scale, scale, size=shape).astype(np.float32)


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}


def save_safetensors(tensors, path, metadata):
    """Writes a safetensors file byte-for-byte reproducibly (safetensors' own writer orders the metadata by hash,
    so regenerating would change every file): header keys sorted, "__metadata__" first, tensors in name order, the
    header padded with spaces to a multiple of 8. The file is read back with the safetensors package to prove it is
    what that package reads."""
    header = {"__metadata__": dict(sorted(metadata.items()))}
    offset, blobs = 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    with safe_open(path, "np") as f:
        assert f.metadata() == metadata, path
        for name in tensors:
            assert np.array_equal(f.get_tensor(name), tensors[name]), (path, name)


def write_fixture(framework, case, *, weights, inputs, outputs, meta, expected, naming, adjustments=(),
                  extra_files=None):
    """Writes fixtures/<framework>/<case>.safetensors (and any extra files, e.g. the .onnx model).

    weights: {framework name: array}; inputs: x [, lengths, h0, c0]; outputs: y, h_n, c_n.
    meta: extra string metadata (framework version, case options, layouts).
    adjustments: names of the semantic differences the C++ test applies (README.md lists them).
    """
    folder = os.path.join(FIXTURES, framework)
    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for name, value in weights.items():
        assert not name.startswith("conformance."), name
        tensors[name] = f32(value)
    for key in ("x", "h0", "c0"):
        if inputs.get(key) is not None:
            tensors["conformance." + key] = f32(inputs[key])
    if inputs.get("lengths") is not None:
        tensors["conformance.lengths"] = np.ascontiguousarray(np.asarray(inputs["lengths"], dtype=np.int32))
    for key in ("y", "h_n", "c_n"):
        tensors["conformance." + key] = f32(outputs[key])
    if outputs.get("y_last") is not None:  # Keras: the output with return_sequences=False, [B, D*H]
        tensors["conformance.y_last"] = f32(outputs["y_last"])
    metadata = {
        "conformance.framework": framework,
        "conformance.case": case,
        "conformance.naming": naming,
        "conformance.expected_spec": json.dumps(expected, sort_keys=True),
        "conformance.adjustments": ",".join(adjustments),
        "conformance.python": platform.python_version(),
        "conformance.numpy": np.__version__,
    }
    for key, value in meta.items():
        metadata[key if key.startswith(("conformance.", "culstm.")) or "." in key else "conformance." + key] = \
            value if isinstance(value, str) else json.dumps(value)
    path = os.path.join(folder, case + ".safetensors")
    save_safetensors(tensors, path, metadata)
    for name, data in (extra_files or {}).items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return path


def clean(framework):
    """Removes the framework's old fixtures so that a renamed or dropped case does not linger."""
    folder = os.path.join(FIXTURES, framework)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith((".safetensors", ".onnx")):
                os.remove(os.path.join(folder, name))
