#!/usr/bin/env python3
"""Conformance fixtures from real ONNX Runtime (CPUExecutionProvider, float32) running one ONNX LSTM node.

Weights are stored in ONNX's own layout and gate order under the node's input names: W [D,4H,I], R [D,4H,H],
B [D,8H] (Wb then Rb), P [D,3H] (gates i,o,f,c; peepholes i,o,f), and the node's attributes as the metadata key
"onnx.attributes" (a JSON object: {"hidden_size": 4, "direction": "forward", "activations": [...], ...}), so the
ONNX importer (Naming::kOnnx) reads them. Some cases also keep the .onnx model itself (conformance.onnx_file) to
exercise import_onnx_file().

Outputs are stored as ONNX Runtime returns them: Y [T,D,B,H], Y_h/Y_c [D,B,H] (layout 0). ONNX Runtime's CPU
LSTM refuses layout=1 ("Batchwise recurrent operations (layout == 1) are not supported"), so the layout-1 case
keeps a layout-1 .onnx file and data ([B,T,I], Y [B,T,D,H], Y_h [B,D,H]) computed by ONNX Runtime on the
equivalent layout-0 node (inputs and outputs transposed), cross-checked against onnx.reference on the layout-1
model when that evaluator supports the case.

Run: tests/conformance/setup_venv.sh onnxruntime && build/conformance/venv-onnxruntime/bin/python tests/conformance/gen_onnxruntime.py
"""
import json

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

import common

FRAMEWORK = "onnxruntime"
OPSET = 21

# ONNX activation name -> culstm kind.
KIND = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "Affine": "affine", "LeakyRelu": "leaky_relu",
        "ThresholdedRelu": "thresholded_relu", "ScaledTanh": "scaled_tanh", "HardSigmoid": "hard_sigmoid",
        "Elu": "elu", "Softsign": "softsign", "Softplus": "softplus"}
USES_ALPHA = {"Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu"}
USES_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}
# What ONNX Runtime uses when the alpha/beta lists run out (measured, see README.md): ONNX's operator defaults for
# LeakyRelu, Elu and HardSigmoid, but 0 for ThresholdedRelu, ScaledTanh and Affine.
ORT_DEFAULT = {"LeakyRelu": (0.01, 0.0), "Elu": (1.0, 0.0), "HardSigmoid": (0.2, 0.5)}


def culstm_activations(names, alphas, betas):
    """ONNX Runtime's reading of activations/activation_alpha/activation_beta: each list is consumed, in order, only
    by the activations that take that parameter."""
    ai, bi, out = iter(alphas or []), iter(betas or []), []
    for name in names:
        da, db = ORT_DEFAULT.get(name, (0.0, 0.0))
        a = next(ai, da) if name in USES_ALPHA else None
        b = next(bi, db) if name in USES_BETA else None
        out.append(common.act(KIND[name], a, b))
    return out


def build_model(attrs, D, H, I, T, B, layout, weights, has_lens, has_h0, has_c0):
    """A one-node ONNX model; weights are initializers, the rest graph inputs."""
    inputs = ["X", "W", "R", "B" if "B" in weights else "", "sequence_lens" if has_lens else "",
              "initial_h" if has_h0 else "", "initial_c" if has_c0 else "", "P" if "P" in weights else ""]
    while inputs[-1] == "":
        inputs.pop()
    node = helper.make_node("LSTM", inputs, ["Y", "Y_h", "Y_c"], name="lstm", **attrs)
    x_shape = [T, B, I] if layout == 0 else [B, T, I]
    s_shape = [D, B, H] if layout == 0 else [B, D, H]
    y_shape = [T, D, B, H] if layout == 0 else [B, T, D, H]
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    if has_lens:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]))
    if has_h0:
        graph_inputs.append(helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, s_shape))
    if has_c0:
        graph_inputs.append(helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, s_shape))
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape),
               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, s_shape),
               helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, s_shape)]
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    graph = helper.make_graph([node], "culstm_conformance", graph_inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="culstm tests/conformance/gen_onnxruntime.py")
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def run_ort(model, feeds):
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["Y", "Y_h", "Y_c"], feeds)


def make_case(name, seed, *, I, H, T, B, direction="forward", lengths=None, h0=False, c0=False, peepholes=False,
              bias=True, clip=None, input_forget=False, activations=None, alphas=None, betas=None, layout=0,
              scale=0.6, keep_onnx=False, note=""):
    rng = common.rng_for(seed)
    D = 2 if direction == "bidirectional" else 1
    weights = {"W": common.uniform(rng, (D, 4 * H, I), scale), "R": common.uniform(rng, (D, 4 * H, H), scale)}
    if bias:
        weights["B"] = common.uniform(rng, (D, 8 * H), scale)
    if peepholes:
        weights["P"] = common.uniform(rng, (D, 3 * H), scale)
    attrs = {"hidden_size": H, "direction": direction}
    if layout:
        attrs["layout"] = layout
    if clip is not None:
        attrs["clip"] = float(clip)
    if input_forget:
        attrs["input_forget"] = 1
    if activations is not None:
        attrs["activations"] = list(activations) * D
        if alphas is not None:
            attrs["activation_alpha"] = [float(a) for a in alphas] * D
        if betas is not None:
            attrs["activation_beta"] = [float(b) for b in betas] * D
    # Inputs in layout 0 ([T,B,I], states [D,B,H]); transposed below for layout 1.
    x0 = common.uniform(rng, (T, B, I))
    h00 = common.uniform(rng, (D, B, H)) if h0 else None
    c00 = common.uniform(rng, (D, B, H)) if c0 else None
    feeds = {"X": x0}
    if lengths is not None:
        feeds["sequence_lens"] = np.asarray(lengths, np.int32)
    if h0:
        feeds["initial_h"] = h00
    if c0:
        feeds["initial_c"] = c00
    attrs0 = dict(attrs)
    attrs0.pop("layout", None)
    model0 = build_model(attrs0, D, H, I, T, B, 0, weights, lengths is not None, h0, c0)
    y, y_h, y_c = run_ort(model0, feeds)
    adjustments = []
    meta = {}
    if layout == 0:
        model, x, h0_out, c0_out = model0, x0, h00, c00
        meta["y_layout"] = "onnx_tdbh"      # Y [T, D, B, H]
        meta["state_layout"] = "onnx_dbh"   # Y_h, Y_c, initial_h, initial_c [D, B, H]
    else:
        model = build_model(attrs, D, H, I, T, B, 1, weights, lengths is not None, h0, c0)
        x = np.ascontiguousarray(x0.transpose(1, 0, 2))
        h0_out = None if h00 is None else np.ascontiguousarray(h00.transpose(1, 0, 2))
        c0_out = None if c00 is None else np.ascontiguousarray(c00.transpose(1, 0, 2))
        y = np.ascontiguousarray(y.transpose(2, 0, 1, 3))      # [T,D,B,H] -> [B,T,D,H]
        y_h = np.ascontiguousarray(y_h.transpose(1, 0, 2))     # [D,B,H] -> [B,D,H]
        y_c = np.ascontiguousarray(y_c.transpose(1, 0, 2))
        meta["y_layout"] = "onnx_btdh"      # Y [B, T, D, H]
        meta["state_layout"] = "onnx_bdh"   # [B, D, H]
        meta["layout1_source"] = ("ONNX Runtime " + onnxruntime.__version__ + " refuses layout=1 on the CPU; outputs "
                                  "are its layout-0 results on the transposed input")
        # onnx.reference's LSTM ignores sequence_lens, clip, activations and input_forget: cross-check only
        # cases without them.
        if lengths is not None or clip is not None or activations is not None or input_forget:
            meta["layout1_crosscheck"] = "not applicable: onnx.reference ignores sequence_lens/clip/activations"
        else:
            from onnx.reference import ReferenceEvaluator
            ref_feeds = {"X": x}
            if h0:
                ref_feeds["initial_h"] = h0_out
            if c0:
                ref_feeds["initial_c"] = c0_out
            r_y, r_h, r_c = ReferenceEvaluator(model).run(None, ref_feeds)
            err = max(float(np.abs(r_y - y).max()), float(np.abs(r_h - y_h).max()), float(np.abs(r_c - y_c).max()))
            meta["layout1_crosscheck"] = "onnx.reference %s on the layout-1 model: max abs difference %.3g" % (
                onnx.__version__, err)
            assert err < 1e-5, err
    if lengths is not None and 0 in lengths:
        # ONNX Runtime writes Y_h = Y_c = 0 for a zero-length sequence; culstm keeps h0/c0 (h_n = h0, c_n = c0).
        zero = [b for b, n in enumerate(lengths) if n == 0]
        hs = y_h[:, zero] if layout == 0 else y_h[zero]
        cs = y_c[:, zero] if layout == 0 else y_c[zero]
        assert not hs.any() and not cs.any(), "ONNX Runtime no longer writes zeros for zero-length sequences"
        adjustments.append("zero_length_state_is_zero")
    acts = culstm_activations(activations or ["Sigmoid", "Tanh", "Tanh"], alphas, betas)
    expected = common.expected_spec(I, H, direction=direction, bias=bias,
                                    layout="batch_major" if layout else "seq_major", gate=acts[0], cell=acts[1],
                                    hidden=acts[2], gate_clip=clip, peepholes=peepholes, input_forget=input_forget)
    meta.update({
        "framework_version": onnxruntime.__version__,
        "onnx_version": onnx.__version__,
        "opset": str(OPSET),
        "onnx.attributes": json.dumps(attrs, sort_keys=True),
        "options": dict(input_size=I, hidden_size=H, seq_len=T, batch=B, direction=direction, lengths=lengths,
                        h0=h0, c0=c0, peepholes=peepholes, bias=bias, clip=clip, input_forget=input_forget,
                        activations=activations, activation_alpha=alphas, activation_beta=betas, layout=layout),
        "description": note,
        "seed": str(seed),
        "y_padding": "value",  # ONNX Runtime writes 0 at t >= sequence_lens[b]
    })
    extra = {}
    if keep_onnx:
        meta["onnx_file"] = name + ".onnx"
        extra[name + ".onnx"] = model.SerializeToString()
    common.write_fixture(FRAMEWORK, name, weights=weights,
                         inputs=dict(x=x, lengths=lengths, h0=h0_out, c0=c0_out),
                         outputs=dict(y=y, h_n=y_h, c_n=y_c), meta=meta, expected=expected, naming="onnx",
                         adjustments=adjustments, extra_files=extra)


def main():
    common.clean(FRAMEWORK)
    make_case("fwd", 201, I=5, H=6, T=7, B=3, note="forward, default activations, no initial state")
    make_case("fwd_t1_b1_nobias", 202, I=3, H=4, T=1, B=1, bias=False, h0=True, c0=True, note="T=1, B=1, no B input")
    make_case("reverse_h0c0", 203, I=4, H=5, T=6, B=2, direction="reverse", h0=True, c0=True, note="direction=reverse")
    make_case("bidirectional_h0c0", 204, I=6, H=7, T=5, B=3, direction="bidirectional", h0=True, c0=True,
              note="direction=bidirectional")
    make_case("fwd_lens_zero", 205, I=4, H=5, T=6, B=4, lengths=[6, 0, 3, 1], h0=True, c0=True,
              note="sequence_lens with a 0 (ONNX Runtime zeroes that row's Y_h/Y_c)")
    make_case("reverse_lens", 206, I=5, H=4, T=7, B=3, direction="reverse", lengths=[2, 7, 4], h0=True, c0=True,
              note="reverse runs t = len-1 .. 0 within each sequence")
    make_case("bidirectional_lens_zero", 207, I=3, H=6, T=8, B=4, direction="bidirectional", lengths=[5, 8, 0, 1],
              h0=True, c0=True, keep_onnx=True, note="bidirectional with sequence_lens incl. 0")
    make_case("peepholes", 208, I=4, H=5, T=6, B=3, peepholes=True, h0=True, c0=True, note="P input")
    make_case("peepholes_bidirectional_lens", 209, I=5, H=4, T=6, B=3, direction="bidirectional", peepholes=True,
              lengths=[6, 2, 4], h0=True, c0=True, note="P, bidirectional, sequence_lens")
    make_case("input_forget", 210, I=4, H=6, T=6, B=2, input_forget=True, h0=True, c0=True,
              note="input_forget=1: f = 1 - i")
    make_case("input_forget_peepholes", 211, I=4, H=5, T=5, B=2, input_forget=True, peepholes=True, h0=True,
              c0=True, note="input_forget=1 with P (the forget peephole is unused)")
    make_case("clip", 212, I=5, H=6, T=6, B=3, clip=0.5, scale=2.0, h0=True, c0=True,
              note="clip=0.5 with large weights, so most pre-activations are clipped")
    make_case("clip_peepholes", 213, I=4, H=5, T=7, B=3, clip=0.7, peepholes=True, scale=2.0, h0=True, c0=True,
              keep_onnx=True, note="clip with peepholes: ORT adds p*c before clipping, and clips o too")
    make_case("clip_peepholes_bidirectional_lens", 214, I=3, H=4, T=6, B=3, direction="bidirectional", clip=1.1,
              peepholes=True, lengths=[3, 6, 0], scale=2.0, h0=True, c0=True, note="clip, P, bidirectional, lens")
    make_case("act_hardsigmoid_default", 215, I=4, H=5, T=6, B=2, activations=["HardSigmoid", "Tanh", "Tanh"],
              h0=True, c0=True, note="HardSigmoid with no alpha/beta lists: 0.2, 0.5")
    make_case("act_hardsigmoid_relu_affine", 216, I=4, H=5, T=6, B=3,
              activations=["HardSigmoid", "Relu", "Affine"], alphas=[0.3, 0.7], betas=[0.45, 0.1], h0=True,
              c0=True, note="HardSigmoid(0.3, 0.45), Relu, Affine(0.7, 0.1)")
    make_case("act_all_alpha_beta", 217, I=5, H=4, T=5, B=2, activations=["HardSigmoid", "ScaledTanh", "Affine"],
              alphas=[0.25, 1.5, 0.8], betas=[0.55, 0.7, -0.2], h0=True, c0=True, keep_onnx=True,
              note="every activation takes alpha and beta, so positional and ORT's reading agree")
    make_case("act_scaled_tanh_consumed", 218, I=4, H=5, T=6, B=2, activations=["Sigmoid", "ScaledTanh", "Affine"],
              alphas=[0.8, 1.5], betas=[0.6, 0.1], h0=True, c0=True,
              note="alpha/beta lists consumed only by activations that take them (ORT): ScaledTanh(0.8, 0.6), "
                   "Affine(1.5, 0.1)")
    make_case("act_leaky_elu_defaults", 219, I=4, H=5, T=6, B=3, activations=["Sigmoid", "LeakyRelu", "Elu"],
              h0=True, c0=True, note="LeakyRelu and Elu with ORT's (= ONNX's) defaults 0.01 and 1.0")
    make_case("act_thresholded_softsign", 220, I=4, H=5, T=6, B=3,
              activations=["Softsign", "ThresholdedRelu", "Softplus"], alphas=[0.2], h0=True, c0=True,
              note="Softsign gates, ThresholdedRelu(0.2) candidate, Softplus hidden")
    make_case("act_bidirectional_lens", 221, I=3, H=4, T=7, B=3, direction="bidirectional",
              activations=["HardSigmoid", "LeakyRelu", "ScaledTanh"], alphas=[0.15, 0.05, 1.2],
              betas=[0.4, 0.9], lengths=[7, 3, 0], h0=True, c0=True,
              note="non-default activations in both directions, sequence_lens incl. 0")
    make_case("layout1_bidirectional_lens", 222, I=4, H=5, T=6, B=3, direction="bidirectional", lengths=[6, 2, 4],
              h0=True, c0=True, layout=1, keep_onnx=True, note="layout=1: X [B,T,I], Y [B,T,D,H], Y_h [B,D,H]")
    make_case("layout1_bidirectional_peepholes", 223, I=5, H=4, T=5, B=2, direction="bidirectional", peepholes=True,
              h0=True, c0=True, layout=1, note="layout=1 with P (cross-checked with onnx.reference)")
    make_case("layout1_fwd_clip_lens", 225, I=3, H=5, T=6, B=3, clip=0.9, scale=2.0, lengths=[0, 6, 3], h0=True,
              c0=True, layout=1, note="layout=1 with clip and sequence_lens incl. 0")
    make_case("onnx_default_alpha_thresholded", 226, I=4, H=5, T=6, B=3,
              activations=["Sigmoid", "ThresholdedRelu", "Tanh"], h0=True, c0=True,
              note="ThresholdedRelu with no alpha list: ORT uses alpha 0, not the operator's 1.0")
    make_case("onnx_default_alpha_affine", 227, I=4, H=5, T=6, B=2, activations=["Sigmoid", "Affine", "Tanh"],
              h0=True, c0=True, note="Affine with no alpha/beta lists: ORT uses 0/0, so g = 0 and c decays")
    make_case("max16", 224, I=16, H=16, T=8, B=4, direction="bidirectional", peepholes=True, lengths=[8, 5, 1, 7],
              h0=True, c0=True, note="largest sizes used: I=H=16, T=8, B=4")


if __name__ == "__main__":
    main()
