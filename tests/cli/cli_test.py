#!/usr/bin/env python3
"""Behaviour of the `culstm` program: commands work, and every bad command line or file gets a one-line error and a
non-zero exit (2 for a bad command line, 1 otherwise), never a crash. Standard library only.

usage: cli_test.py PATH_TO_CULSTM WORK_DIR
"""
import os
import struct
import subprocess
import sys

CULSTM, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
failures = []
passed = 0


def path(name):
    return os.path.join(WORK, name)


def run(*args):
    p = subprocess.run([CULSTM, *args], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def expect(name, args, code, stdout_has=None, stderr_has=None, stdout_lacks=None):
    global passed
    rc, out, err = run(*args)
    problems = []
    if rc != code:
        problems.append(f"exit {rc}, expected {code}")
    if rc < 0:
        problems.append(f"killed by signal {-rc}")
    for needle in [stdout_has] if isinstance(stdout_has, str) else stdout_has or []:
        if needle not in out:
            problems.append(f"stdout lacks {needle!r}")
    if stdout_lacks and stdout_lacks in out:
        problems.append(f"stdout has {stdout_lacks!r}")
    if stderr_has and stderr_has not in err:
        problems.append(f"stderr lacks {stderr_has!r}")
    if code != 0 and len(err.strip().splitlines()) != 1:
        problems.append(f"expected a one-line error, got {len(err.strip().splitlines())} lines")
    if problems:
        failures.append(f"{name}: {'; '.join(problems)}\n  args: {args}\n  stdout: {out[-2000:]}\n  stderr: {err[-2000:]}")
    else:
        passed += 1
    return out


def write_npy(name, descr, shape, payload):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join(f"{d}, " for d in shape) if len(shape) != 1 else f"{shape[0]},")
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path(name), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload)


def read_npy_shape(name):
    with open(path(name), "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", "bad magic"
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hlen].decode()
    shape_text = header.split("'shape': (")[1].split(")")[0]
    return tuple(int(v) for v in shape_text.replace(" ", "").split(",") if v), len(data) - 10 - hlen


# --- commands that work -----------------------------------------------------------------------------------------
expect("help", ["help"], 0, stdout_has="usage: culstm")
expect("info", ["info"], 0, stdout_has="backend reference available")
expect("check default", ["check"], 0, stdout_has="reference")
expect("check options", ["check", "--config", "input=3,hidden=5,proj=2,layers=2,dir=rev,peepholes=1,gate_clip=2,"
       "cell_clip=1,gate_act=hard_sigmoid:0.2:0.5,input_forget=1,batch=3,steps=4,dtype=bf16"], 0,
       stdout_has="reference")
expect("plan", ["plan", "--config", "layers=3,dir=bi"], 0, stdout_has="layer 2 direction 1")
# The cuda backend's engine and the cudnn backend's algorithm: check has one cuda row per explicit engine (skipped
# with the reason where no GPU is), or the one asked for; plan and run take both (the reference ignores them).
expect("check engine rows", ["check", "--config", "batch=2,steps=3"], 0,
       stdout_has=["\ncuda/stepwise ", "\ncuda/persistent ", "\ncudnn "])
expect("check one engine", ["check", "--engine", "persistent", "--cudnn-algo", "persist_static", "--config",
       "batch=2,steps=3"], 0, stdout_has=["\ncuda/persistent ", "\ncudnn/persist_static "],
       stdout_lacks="cuda/stepwise")
expect("check engine auto", ["check", "--engine", "auto", "--config", "batch=2,steps=3"], 0,
       stdout_has="\ncuda/auto ", stdout_lacks="cuda/persistent")
for engine in ["auto", "stepwise", "persistent"]:
    for algo in ["auto", "standard", "persist_static", "persist_static_small_h", "persist_dynamic"]:
        expect(f"plan {engine} {algo}", ["plan", "--backend", "reference", "--engine", engine, "--cudnn-algo", algo,
               "--config", "layers=1"], 0, stdout_has="engine=reference")
cfg = "input=6,hidden=10,proj=4,layers=2,dir=bi,batch=3,steps=7,lengths=mixed"
expect("make-example", ["make-example", "--config", cfg, "--weights", path("m.safetensors"), "--input", path("x.npy"),
       "--lengths", path("len.npy"), "--h0", path("h0.npy"), "--c0", path("c0.npy")], 0, stdout_has="wrote")
expect("run", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--lengths", path("len.npy"),
       "--h0", path("h0.npy"), "--c0", path("c0.npy"), "--output", path("y.npy"), "--hn", path("hn.npy"),
       "--cn", path("cn.npy"), "--backend", "reference"], 0, stdout_has="ran")
if not failures:
    shape, nbytes = read_npy_shape("y.npy")
    if shape != (7, 3, 8) or nbytes != 7 * 3 * 8 * 4:
        failures.append(f"y.npy: expected shape (7, 3, 8) f32, got {shape} with {nbytes} bytes")
    shape, _ = read_npy_shape("hn.npy")
    if shape != (4, 3, 4):
        failures.append(f"hn.npy: expected shape (4, 3, 4), got {shape}")
    shape, _ = read_npy_shape("cn.npy")
    if shape != (4, 3, 10):
        failures.append(f"cn.npy: expected shape (4, 3, 10), got {shape}")
    # Deterministic: a second run writes the same bytes.
    expect("run again", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--lengths",
           path("len.npy"), "--h0", path("h0.npy"), "--c0", path("c0.npy"), "--output", path("y2.npy"),
           "--backend", "reference"], 0)
    if open(path("y.npy"), "rb").read() != open(path("y2.npy"), "rb").read():
        failures.append("run is not deterministic: y.npy != y2.npy")
if os.path.exists(path("y.npy")):
    expect("run engine and algo", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--lengths",
           path("len.npy"), "--h0", path("h0.npy"), "--c0", path("c0.npy"), "--output", path("y_engine.npy"),
           "--backend", "reference", "--engine", "stepwise", "--cudnn-algo", "standard"], 0, stdout_has="ran")
    if os.path.exists(path("y_engine.npy")) and open(path("y.npy"), "rb").read() != open(path("y_engine.npy"), "rb").read():
        failures.append("--engine/--cudnn-algo changed the reference backend's output: y_engine.npy != y.npy")
expect("run auto with dtype", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--output",
       path("y16.npy"), "--dtype", "f16"], 0)

# --- bad command lines: exit 2 ----------------------------------------------------------------------------------
expect("no command", [], 2)
expect("unknown command", ["frobnicate"], 2, stderr_has="unknown command")
expect("unknown option", ["check", "--bogus"], 2, stderr_has="unknown option")
expect("missing value", ["check", "--config"], 2, stderr_has="missing value")
expect("bad config key", ["check", "--config", "hiddn=4"], 2, stderr_has="unknown key")
expect("bad config number", ["check", "--config", "hidden=abc"], 2, stderr_has="not an integer")
expect("bad activation", ["plan", "--config", "gate_act=swish"], 2, stderr_has="gate_act")
expect("run missing weights", ["run", "--input", path("x.npy"), "--output", path("y.npy")], 2,
       stderr_has="--weights")
expect("bad backend", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--output",
       path("y.npy"), "--backend", "tpu"], 2, stderr_has="backend")
for cmd in [["check"], ["plan"], ["run", "--weights", path("nope.safetensors"), "--input", path("nope.npy"),
                                 "--output", path("y.npy")]]:
    expect(f"bad engine ({cmd[0]})", cmd + ["--engine", "warp"], 2,
           stderr_has="--engine: expected auto, stepwise or persistent, got 'warp'")
    expect(f"bad cudnn algo ({cmd[0]})", cmd + ["--cudnn-algo", "fastest"], 2,
           stderr_has="--cudnn-algo: expected auto, standard, persist_static, persist_static_small_h or "
                      "persist_dynamic, got 'fastest'")
    expect(f"engine without value ({cmd[0]})", cmd + ["--engine"], 2, stderr_has="missing value")
expect("engine is no option of convert", ["convert", "--weights", path("m.safetensors"), "--output",
       path("o.safetensors"), "--engine", "stepwise"], 2, stderr_has="unknown option '--engine'")
expect("bad dtype", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--output", path("y.npy"),
       "--dtype", "f8"], 2, stderr_has="dtype")

# --- bad specs and files: exit 1 --------------------------------------------------------------------------------
expect("invalid spec", ["check", "--config", "hidden=4,proj=4"], 1, stderr_has="InvalidSpec")
expect("missing input file", ["run", "--weights", path("m.safetensors"), "--input", path("nope.npy"), "--output",
       path("y.npy")], 1, stderr_has="IoError")
with open(path("m.safetensors"), "rb") as f:
    model_bytes = f.read()
with open(path("truncated.safetensors"), "wb") as f:
    f.write(model_bytes[: len(model_bytes) // 2])
expect("truncated weights", ["run", "--weights", path("truncated.safetensors"), "--input", path("x.npy"),
       "--output", path("y.npy")], 1, stderr_has="FormatError")
with open(path("garbage.safetensors"), "wb") as f:
    f.write(b"\xff" * 64)
expect("garbage weights", ["run", "--weights", path("garbage.safetensors"), "--input", path("x.npy"), "--output",
       path("y.npy")], 1, stderr_has="FormatError")
with open(path("garbage.npy"), "wb") as f:
    f.write(b"\x93NUMPY\x01\x00\xff\xff{'descr'")
expect("garbage input", ["run", "--weights", path("m.safetensors"), "--input", path("garbage.npy"), "--output",
       path("y.npy")], 1, stderr_has="FormatError")
write_npy("x_wrong.npy", "<f4", (7, 3, 5), b"\0" * (7 * 3 * 5 * 4))
expect("wrong input features", ["run", "--weights", path("m.safetensors"), "--input", path("x_wrong.npy"),
       "--output", path("y.npy")], 1, stderr_has="ShapeMismatch")
write_npy("x_rank2.npy", "<f4", (7, 18), b"\0" * (7 * 18 * 4))
expect("rank-2 input", ["run", "--weights", path("m.safetensors"), "--input", path("x_rank2.npy"), "--output",
       path("y.npy")], 1, stderr_has="ShapeMismatch")
write_npy("len_bad.npy", "<i4", (3,), struct.pack("<3i", 7, 8, 1))
expect("length above T", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--lengths",
       path("len_bad.npy"), "--output", path("y.npy")], 1, stderr_has="LengthOutOfRange")
write_npy("len_count.npy", "<i4", (2,), struct.pack("<2i", 7, 1))
expect("lengths count", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--lengths",
       path("len_count.npy"), "--output", path("y.npy")], 1, stderr_has="ShapeMismatch")
write_npy("len_float.npy", "<f4", (3,), struct.pack("<3f", 7, 1, 1))
expect("float lengths", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--lengths",
       path("len_float.npy"), "--output", path("y.npy")], 1, stderr_has="DtypeMismatch")
write_npy("h0_bad.npy", "<f4", (4, 3, 10), b"\0" * (4 * 3 * 10 * 4))
expect("h0 wrong size", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--h0",
       path("h0_bad.npy"), "--output", path("y.npy")], 1, stderr_has="--h0")
# Every state/lengths file must have exactly the expected shape: the right element count in another order (ONNX's
# layout-1 [B, D, H], or rank 2) is refused with both shapes named, never read as [L*D, B, R].
for stale in ["y_h0_bdh.npy", "y_h0_rank2.npy", "y_c0_bdh.npy", "y_len_rank2.npy"]:
    if os.path.exists(path(stale)):
        os.remove(path(stale))
write_npy("h0_bdh.npy", "<f4", (3, 4, 4), b"\0" * (3 * 4 * 4 * 4))
expect("h0 same count, other order", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--h0",
       path("h0_bdh.npy"), "--output", path("y_h0_bdh.npy")], 1,
       stderr_has="ShapeMismatch: --h0 " + path("h0_bdh.npy") + ": expected shape [4, 3, 4] ([L*D, B, R]), got [3, 4, 4]")
write_npy("h0_rank2.npy", "<f4", (12, 4), b"\0" * (12 * 4 * 4))
expect("h0 rank 2", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--h0", path("h0_rank2.npy"),
       "--output", path("y_h0_rank2.npy")], 1, stderr_has="got [12, 4]")
write_npy("c0_bdh.npy", "<f4", (3, 4, 10), b"\0" * (3 * 4 * 10 * 4))
expect("c0 same count, other order", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--c0",
       path("c0_bdh.npy"), "--output", path("y_c0_bdh.npy")], 1,
       stderr_has="--c0 " + path("c0_bdh.npy") + ": expected shape [4, 3, 10] ([L*D, B, H]), got [3, 4, 10]")
write_npy("len_rank2.npy", "<i4", (1, 3), struct.pack("<3i", 7, 1, 1))
expect("lengths rank 2", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--lengths",
       path("len_rank2.npy"), "--output", path("y_len_rank2.npy")], 1,
       stderr_has="expected shape [3] ([B]), got [1, 3]")
for refused in ["y_h0_bdh.npy", "y_h0_rank2.npy", "y_c0_bdh.npy", "y_len_rank2.npy"]:
    if os.path.exists(path(refused)):
        failures.append(f"a refused run wrote its output {refused}")
expect("output dir missing", ["run", "--weights", path("m.safetensors"), "--input", path("x.npy"), "--output",
       path("no/such/dir/y.npy")], 1, stderr_has="IoError")

# --- other frameworks' naming conventions: run --naming/--onnx-node and convert ------------------------------------
import json


def write_safetensors(name, tensors, metadata=None):
    """tensors: {name: (shape, list of floats)} written as F32."""
    header, data = {}, b""
    for key, (shape, values) in sorted(tensors.items()):
        payload = struct.pack(f"<{len(values)}f", *values)
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    with open(path(name), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def pb_varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def pb_field(number, payload):  # a length-delimited field
    return pb_varint(number << 3 | 2) + pb_varint(len(payload)) + payload


def pb_int(number, v):
    return pb_varint(number << 3) + pb_varint(v)


def onnx_tensor(name, dims, values):  # TensorProto: dims 1, data_type 2 (FLOAT), name 8, raw_data 9
    return (b"".join(pb_int(1, d) for d in dims) + pb_int(2, 1) + pb_field(8, name.encode())
            + pb_field(9, struct.pack(f"<{len(values)}f", *values)))


def onnx_lstm_model(hidden, inputs):  # ModelProto{ir_version 1, graph 7{node 1, initializer 5}}
    w = [((k % 7) - 3) * 0.05 for k in range(4 * hidden * inputs)]
    r = [((k % 5) - 2) * 0.05 for k in range(4 * hidden * hidden)]
    b = [((k % 3) - 1) * 0.1 for k in range(8 * hidden)]
    attr = pb_field(1, b"hidden_size") + pb_int(20, 2) + pb_int(3, hidden)
    node = (b"".join(pb_field(1, n.encode()) for n in ["X", "W", "R", "B"]) + pb_field(2, b"Y")
            + pb_field(3, b"the_lstm") + pb_field(4, b"LSTM") + pb_field(5, attr))
    graph = (pb_field(1, node) + pb_field(5, onnx_tensor("W", [1, 4 * hidden, inputs], w))
             + pb_field(5, onnx_tensor("R", [1, 4 * hidden, hidden], r)) + pb_field(5, onnx_tensor("B", [1, 8 * hidden], b)))
    return pb_int(1, 8) + pb_field(7, graph)


expect("convert pytorch", ["convert", "--weights", path("m.safetensors"), "--output", path("m_conv.safetensors")], 0,
       stdout_has="wrote")
expect("run converted", ["run", "--weights", path("m_conv.safetensors"), "--input", path("x.npy"), "--lengths",
       path("len.npy"), "--h0", path("h0.npy"), "--c0", path("c0.npy"), "--output", path("y_conv.npy"),
       "--backend", "reference"], 0)
if os.path.exists(path("y_conv.npy")) and open(path("y.npy"), "rb").read() != open(path("y_conv.npy"), "rb").read():
    failures.append("convert changed the model: y_conv.npy != y.npy")

# A Keras 3 LSTM(3) on 2 features: kernel [2, 12], recurrent_kernel [3, 12], bias [12]; Keras inputs are [B, T, F].
write_safetensors("keras.safetensors", {
    "lstm/lstm_cell/kernel": ([2, 12], [0.01 * k for k in range(24)]),
    "lstm/lstm_cell/recurrent_kernel": ([3, 12], [-0.01 * k for k in range(36)]),
    "lstm/lstm_cell/bias": ([12], [0.1] * 12)},
    {"culstm.layers": '["lstm"]', "culstm.keras": '{"keras_version": "3.4.1", "recurrent_activation": "sigmoid"}'})
write_npy("x_keras.npy", "<f4", (2, 4, 2), struct.pack("<16f", *[0.1 * k for k in range(16)]))
expect("run keras", ["run", "--weights", path("keras.safetensors"), "--naming", "keras", "--input",
       path("x_keras.npy"), "--output", path("y_keras.npy"), "--backend", "reference"], 0, stdout_has="batch_major")
expect("run keras auto", ["run", "--weights", path("keras.safetensors"), "--input", path("x_keras.npy"), "--output",
       path("y_keras2.npy"), "--backend", "reference"], 0)
expect("convert keras", ["convert", "--weights", path("keras.safetensors"), "--output", path("keras_conv.safetensors")],
       0, stdout_has="H=3")
expect("run keras converted", ["run", "--weights", path("keras_conv.safetensors"), "--input", path("x_keras.npy"),
       "--output", path("y_keras3.npy"), "--backend", "reference"], 0)
if os.path.exists(path("y_keras3.npy")) and open(path("y_keras.npy"), "rb").read() != open(path("y_keras3.npy"), "rb").read():
    failures.append("convert changed the Keras model: y_keras3.npy != y_keras.npy")
expect("keras as pytorch", ["run", "--weights", path("keras.safetensors"), "--naming", "pytorch", "--input",
       path("x_keras.npy"), "--output", path("y.npy")], 1, stderr_has="weight_ih_l0")

# Keras models culstm cannot express, as real Keras made them (tests/conformance/gen_keras.py): every refusal is one
# line naming the option, exit 1, and no output file.
KERAS_FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance", "fixtures", "keras")
write_npy("x_keras_b3t6i4.npy", "<f4", (3, 6, 4), struct.pack("<72f", *[0.01 * k for k in range(72)]))
write_npy("x_keras_b2t5i3.npy", "<f4", (2, 5, 3), struct.pack("<30f", *[0.03 * k for k in range(30)]))
for fixture, option in (("bidirectional_backward_relu", "activation='relu'"), ("stack_units_5_7", "units=7")):
    weights = os.path.join(KERAS_FIXTURES, fixture + ".safetensors")
    for command, output in (("run", "y_refused.npy"), ("convert", "refused.safetensors")):
        args = [command, "--weights", weights, "--output", path(output)]
        if command == "run":
            args += ["--input", path("x_keras_b2t5i3.npy"), "--backend", "reference"]
        expect(f"keras {fixture} {command}", args, 1, stderr_has=option)
        if os.path.exists(path(output)):
            failures.append(f"keras {fixture} {command}: refused, yet wrote {output}")
# An explicit backward_layer with the same options is the backward direction: (B, T, 2u).
expect("keras explicit backward_layer", ["run", "--weights", os.path.join(KERAS_FIXTURES,
       "bidirectional_explicit_backward.safetensors"), "--input", path("x_keras_b3t6i4.npy"), "--output",
       path("y_explicit.npy"), "--backend", "reference"], 0, stdout_has="bidirectional")

with open(path("lstm.onnx"), "wb") as f:
    f.write(onnx_lstm_model(hidden=3, inputs=2))
write_npy("x_onnx.npy", "<f4", (4, 2, 2), struct.pack("<16f", *[0.1 * k for k in range(16)]))
expect("run onnx", ["run", "--weights", path("lstm.onnx"), "--onnx-node", "the_lstm", "--input", path("x_onnx.npy"),
       "--output", path("y_onnx.npy"), "--backend", "reference"], 0, stdout_has="H=3")
expect("convert onnx", ["convert", "--weights", path("lstm.onnx"), "--output", path("onnx_conv.safetensors")], 0)
expect("onnx wrong node", ["run", "--weights", path("lstm.onnx"), "--onnx-node", "nope", "--input", path("x_onnx.npy"),
       "--output", path("y.npy")], 2, stderr_has="the_lstm")
with open(path("truncated.onnx"), "wb") as f:
    f.write(onnx_lstm_model(hidden=3, inputs=2)[:100])
expect("truncated onnx", ["run", "--weights", path("truncated.onnx"), "--input", path("x_onnx.npy"), "--output",
       path("y.npy")], 1, stderr_has="FormatError")
expect("bad naming", ["run", "--weights", path("m.safetensors"), "--naming", "caffe", "--input", path("x.npy"),
       "--output", path("y.npy")], 2, stderr_has="--naming")
expect("onnx-node on safetensors", ["convert", "--weights", path("m.safetensors"), "--onnx-node", "x", "--output",
       path("o.safetensors")], 2, stderr_has="--onnx-node")
expect("convert missing output", ["convert", "--weights", path("m.safetensors")], 2, stderr_has="--output")

print(f"cli: {passed} passed, {len(failures)} failed")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
