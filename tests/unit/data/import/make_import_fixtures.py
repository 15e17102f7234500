#!/usr/bin/env python3
"""Makes the small real-framework files that tests/unit/import_framework_test.cpp imports and runs: ONNX models
written by the `onnx` package (and the same converted by tools/export_onnx.py) with outputs from ONNX Runtime, and Keras 3 models exported by tools/export_keras.py
with outputs from Keras itself. They check the importers' gate orders, transposes, bias handling and attribute
mapping against the frameworks, not against culstm's own reading of their documentation.

usage: KERAS_BACKEND=jax python make_import_fixtures.py [OUT_DIR]   (default: this file's folder)
Needs: pip install numpy onnx onnxruntime keras jax safetensors
Not run by CI; the files it writes are committed (a few KB each).
"""
import os
import subprocess
import sys

import numpy as np

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))
rng = np.random.default_rng(2024)


def save(name, array):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(array))


def onnx_fixture(name, I, H, T, B, direction, peepholes, attributes, layout=0):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    D = 2 if direction == "bidirectional" else 1
    W = rng.uniform(-0.5, 0.5, (D, 4 * H, I)).astype(np.float32)
    R = rng.uniform(-0.5, 0.5, (D, 4 * H, H)).astype(np.float32)
    Bias = rng.uniform(-0.5, 0.5, (D, 8 * H)).astype(np.float32)
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(Bias, "B")]
    inputs = ["X", "W", "R", "B", "", "", ""]
    if peepholes:
        P = rng.uniform(-0.5, 0.5, (D, 3 * H)).astype(np.float32)
        inits.append(numpy_helper.from_array(P, "P"))
        inputs.append("P")
    x_shape = [T, B, I] if layout == 0 else [B, T, I]
    node = helper.make_node("LSTM", inputs, ["Y", "Y_h", "Y_c"], name=name, hidden_size=H, direction=direction,
                            layout=layout, **attributes)
    y_shape = [T, D, B, H] if layout == 0 else [B, T, D, H]
    state_shape = [D, B, H] if layout == 0 else [B, D, H]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape),
                               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, state_shape),
                               helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, state_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, name + ".onnx"))
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export_onnx.py"), os.path.join(OUT, name + ".onnx"),
                    os.path.join(OUT, name + "_exported.safetensors")], check=True)
    x = rng.uniform(-1, 1, x_shape).astype(np.float32)
    y, h, c = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": x})
    # culstm's y is [T, B, D*H] (or [B, T, D*H]): ONNX's direction axis moves next to H.
    y = y.transpose(0, 2, 1, 3).reshape(T, B, D * H) if layout == 0 else y.reshape(B, T, D * H)
    if layout == 1:  # ONNX layout 1 states are [B, D, H]; culstm's are [D, B, H]
        h, c = h.transpose(1, 0, 2), c.transpose(1, 0, 2)
    save(name + "_x.npy", x)
    save(name + "_y.npy", y)
    save(name + "_hn.npy", h)
    save(name + "_cn.npy", c)
    print(f"{name}: ONNX Runtime {ort.__version__}, y {y.shape}")


def keras_fixture(name, layers_fn, T, B, I):
    import keras

    model = keras.Sequential([keras.Input((T, I))] + layers_fn(keras))
    for v in model.weights:  # Keras initializes biases to zeros/ones: randomize everything
        v.assign(rng.uniform(-0.5, 0.5, v.shape).astype(np.float32))
    path = os.path.join(OUT, name + ".keras")
    model.save(path)
    out = os.path.join(OUT, name + ".safetensors")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export_keras.py"), path, out], check=True)
    os.remove(path)
    x = rng.uniform(-1, 1, (B, T, I)).astype(np.float32)
    y = np.asarray(model.predict(x, verbose=0))
    save(name + "_x.npy", x)
    save(name + "_y.npy", y)
    print(f"{name}: Keras {keras.__version__} ({keras.backend.backend()}), y {y.shape}")


onnx_fixture("onnx_bidi_peephole", I=3, H=4, T=5, B=2, direction="bidirectional", peepholes=True,
             attributes={"clip": 1.5})
onnx_fixture("onnx_reverse_activations", I=2, H=3, T=4, B=3, direction="reverse", peepholes=False,
             attributes={"activations": ["HardSigmoid", "Tanh", "Softsign"], "activation_alpha": [0.3],
                         "activation_beta": [0.6], "input_forget": 1})  # ONNX Runtime has no layout=1 LSTM
keras_fixture("keras_stacked_hard_sigmoid",
              lambda k: [k.layers.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid"),
                         k.layers.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid")],
              T=5, B=2, I=3)
keras_fixture("keras_bidirectional",
              lambda k: [k.layers.Bidirectional(k.layers.LSTM(3, return_sequences=True)),
                         k.layers.Bidirectional(k.layers.LSTM(3, return_sequences=True))],
              T=4, B=2, I=2)
