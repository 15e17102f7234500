#!/usr/bin/env python3
"""Conformance fixtures from real Keras 3 (JAX backend on the CPU, float32): keras.layers.LSTM and
keras.layers.Bidirectional(LSTM).

Weights are stored under Keras' own weight paths ("lstm/lstm_cell/kernel" [I,4u], ".../recurrent_kernel" [u,4u],
".../bias" [4u]; Bidirectional: "bidirectional/forward_lstm/lstm_cell/..." and ".../backward_lstm/..."), gates
i, f, c, o, so the Keras importer (Naming::kKeras) reads them. What weights cannot tell (activations, go_backwards)
is written as "culstm.keras" metadata (keras_version, activation, recurrent_activation, go_backwards, merge_mode),
the order of stacked layers as "culstm.layers"; the layers' get_config() is kept as "keras.config" for reference.

Semantics that differ from culstm's (docs/design.md §2), recorded per fixture in conformance.adjustments and handled by
tests/unit/conformance_test.cpp:
  - Keras 3 hard_sigmoid is relu6(x + 3) / 6 = clamp(x/6 + 0.5, 0, 1): culstm hard_sigmoid(1/6, 0.5).
  - go_backwards=True returns the output sequence in processing order (y[k] belongs to input step T-1-k, and with a
    mask the padded tail is processed first): "y_time_reversed".
  - A mask (our lengths) carries the previous output and state through masked steps; the final state is the state
    after the last valid step (= culstm's h_n/c_n, h0/c0 for length 0), but y at masked steps repeats the last
    output (before any valid step: h0 on JAX's scan, which these fixtures use; zeros on torch) unless
    zero_output_for_mask=True (Bidirectional sets it): "y_valid_steps_only".
  - return_sequences=False returns the last layer's h_n (directions side by side), not y[:, -1]: "y_last_is_h_n".
  - Keras returns states per layer and direction as [B,u] tensors; they are stacked here as [L*D,B,u] (layer-major,
    forward before backward), culstm's order.

Run: tests/conformance/generate.sh keras (tools/export_keras.py is imported from the repository).
"""
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402

# tools/export_keras.py: the new cases carry "culstm.layers" exactly as the exporter writes it, and the exporter's own
# checks must refuse what the importer refuses.
sys.path.insert(0, os.path.join(common.HERE, "..", "..", "tools"))
import export_keras  # noqa: E402

FRAMEWORK = "keras"
# Keras activation name -> culstm activation (Keras 3 definitions).
ACT = {"sigmoid": common.act("sigmoid"), "tanh": common.act("tanh"), "relu": common.act("relu"),
       "hard_sigmoid": common.act("hard_sigmoid", 1.0 / 6.0, 0.5), "softsign": common.act("softsign"),
       "softplus": common.act("softplus"), "elu": common.act("elu", 1.0)}


def make_case(name, seed, *, I, u, T, B, L=1, bidirectional=False, go_backwards=False, activation="tanh",
              recurrent_activation="sigmoid", use_bias=True, lengths=None, initial_state=False,
              zero_output_for_mask=False, backward=None, units=None, last=False, refused=None, note=""):
    """L > 1 stacks L layers (LSTM or Bidirectional(LSTM)), each fed the previous one's output sequence and the same
    mask, as keras.Sequential would; their weights are listed in order in "culstm.layers".

    The cases added for the explicit backward_layer and the refusals describe their layers in "culstm.layers" as
    tools/export_keras.py writes it (from the layer objects: which LSTM is the wrapper's forward_layer and which its
    backward_layer), and check the exporter's own verdict:
      backward  options of an explicit backward_layer=LSTM(..., go_backwards=True) (named "reverse_lstm", a user's
                name that says nothing about its role); None: Keras builds the backward layer itself
      units     the units of each stacked layer, when they differ (u is the first's)
      last      also records Keras's output with return_sequences=False (L = 1) as conformance.y_last
      refused   (status code, message part): culstm's importer must refuse the weights (and export_keras.py the
                model, naming the same option); y, h_n, c_n are still Keras's, for reference
    """
    keras.backend.clear_session()
    rng = common.rng_for(seed)
    D = 2 if bidirectional else 1
    units = units or [u] * L
    exported = backward is not None or units != [u] * L or last or refused is not None

    def build(l, return_sequences):
        suffix = "_%d" % l if l else ""
        options = dict(activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
                       return_sequences=return_sequences, return_state=True, go_backwards=go_backwards,
                       zero_output_for_mask=zero_output_for_mask)
        lstm = keras.layers.LSTM(units[l], name="lstm" + suffix, **options)
        if not bidirectional:
            return lstm
        backward_layer = None
        if backward is not None:
            backward_layer = keras.layers.LSTM(units[l], name="reverse_lstm" + suffix,
                                               **{**options, "go_backwards": True, **backward})
        return keras.layers.Bidirectional(lstm, backward_layer=backward_layer, name="bidirectional" + suffix)

    layers, names = [], []
    for l in range(L):
        layer = build(l, True)
        layer.build((B, T, I if l == 0 else D * units[l - 1]))
        for w in layer.weights:
            w.assign(common.uniform(rng, tuple(w.shape), 0.6))
        layers.append(layer)
        names.append(layer.name)
    x = common.uniform(rng, (B, T, I))
    h0 = common.uniform(rng, (L * D, B, u)) if initial_state else None
    c0 = common.uniform(rng, (L * D, B, u)) if initial_state else None
    mask = None if lengths is None else np.arange(T)[None, :] < np.asarray(lengths)[:, None]

    def call(layer, l, inputs):
        kwargs = {}
        if mask is not None:
            kwargs["mask"] = mask
        if initial_state:
            kwargs["initial_state"] = [s for d in range(D) for s in (h0[l * D + d], c0[l * D + d])]
        return [np.asarray(o) for o in layer(inputs, **kwargs)]

    y, h_n, c_n = x, [], []
    for l, layer in enumerate(layers):
        out = call(layer, l, y)
        y = out[0]
        h_n += [out[1 + 2 * d] for d in range(D)]
        c_n += [out[2 + 2 * d] for d in range(D)]
    # Layers of different units (a refused case) have states of different widths: kept flat, one after another.
    stack = np.stack if len(set(units)) == 1 else (lambda parts: np.concatenate([p.ravel() for p in parts]))
    h_n, c_n = stack(h_n), stack(c_n)
    outputs = dict(y=y, h_n=h_n, c_n=c_n)
    if last:
        assert L == 1
        single = build(0, False)
        single.build((B, T, I))
        single.set_weights(layers[0].get_weights())
        outputs["y_last"] = call(single, 0, x)[0]
    adjustments = []
    if go_backwards:
        assert L == 1, "a stack of go_backwards layers feeds each layer a time-reversed sequence"
        adjustments.append("y_time_reversed")
    masked_carry = lengths is not None and not (zero_output_for_mask or bidirectional)
    if masked_carry:
        adjustments.append("y_valid_steps_only")
    if lengths is not None and not masked_carry:
        pad = np.arange(T)[None, :] >= np.asarray(lengths)[:, None]
        assert not y[pad].any(), "expected zeros at masked steps"
    if last:
        adjustments.append("y_last_is_h_n")
    direction = "bidirectional" if bidirectional else ("reverse" if go_backwards else "forward")
    expected = common.expected_spec(I, u, num_layers=L, direction=direction, bias=use_bias, layout="batch_major",
                                    gate=ACT[recurrent_activation], cell=ACT[activation], hidden=ACT[activation])
    options = dict(input_size=I, units=u, layers=L, seq_len=T, batch=B, bidirectional=bidirectional,
                   go_backwards=go_backwards, activation=activation, recurrent_activation=recurrent_activation,
                   use_bias=use_bias, lengths=lengths, initial_state=initial_state,
                   zero_output_for_mask=zero_output_for_mask)
    if exported:
        options.update(backward_layer=backward, units_per_layer=units, return_sequences_false=last)
    meta = {
        "framework_version": keras.__version__,
        "backend": "jax " + jax.__version__,
        "keras.config": json.dumps([layer.get_config() for layer in layers], sort_keys=True, default=str),
        "options": options,
        "description": note,
        "seed": str(seed),
        "y_layout": "batch_major",  # [B, T, D*u]; with go_backwards in processing order
        "state_layout": "ldbr",  # stacked [L*D, B, u]
        "y_padding": "carry" if masked_carry else "value",
    }
    weights = {w.path: np.asarray(w.value) for layer in layers for w in layer.weights}
    if exported:
        meta.update(exporter_metadata(layers, weights, refused))
    else:
        # What a hand-made export records next to the weights (docs/formats.md, "culstm.keras"): the layer options
        # the weights cannot tell, and the Keras version (hard_sigmoid is 0.2x+0.5 in Keras 2, x/6+0.5 in Keras 3).
        culstm_keras = {"keras_version": keras.__version__, "activation": activation,
                        "recurrent_activation": recurrent_activation, "go_backwards": go_backwards}
        if bidirectional:
            culstm_keras["merge_mode"] = "concat"
        meta["culstm.keras"] = json.dumps(culstm_keras, sort_keys=True)
        if L > 1:
            meta["culstm.layers"] = json.dumps(names)
    if refused is not None:
        meta["expect_error"], meta["expect_message"] = refused
    common.write_fixture(FRAMEWORK, name, weights=weights, inputs=dict(x=x, lengths=lengths, h0=h0, c0=c0),
                         outputs=outputs, meta=meta, expected=expected, naming="keras", adjustments=adjustments)


def exporter_metadata(layers, weights, refused):
    """"culstm.layers" and "culstm.keras" as tools/export_keras.py writes them for these layers, after checking that
    the exporter names the tensors as Keras's own weight paths and refuses exactly the refused cases."""
    lstms, entries = export_keras.stack_lstms(layers, keras.layers.Bidirectional)
    assert set(export_keras.lstm_tensors(lstms, keras, np)) == set(weights), "export_keras.py names != Keras paths"
    try:
        export_keras.check_stack(layers, lstms, keras.layers.Bidirectional)
        assert refused is None, "export_keras.py accepted a case culstm must refuse"
    except export_keras.Refused as e:
        assert refused is not None, "export_keras.py refused: %s" % e
        assert refused[1].split("=")[0] in str(e), (refused, str(e))
    return {"culstm.layers": json.dumps(entries), "culstm.keras": json.dumps({"keras_version": keras.__version__})}


def make_masking_case(name, seed, *, I, u, T, B, lengths, note):
    """keras.layers.Masking feeding an LSTM that also receives initial_state: Keras drops the mask for that layer
    (it runs over the padding), so its outputs are culstm's without lengths. The generator checks that Keras still
    does so, and the fixture holds no lengths: the docs warn users about exactly this."""
    keras.backend.clear_session()
    rng = common.rng_for(seed)
    inputs, h_in, c_in = keras.Input((T, I)), keras.Input((u,)), keras.Input((u,))
    lstm = keras.layers.LSTM(u, return_sequences=True, return_state=True, name="lstm")
    model = keras.Model([inputs, h_in, c_in], lstm(keras.layers.Masking(0.0)(inputs), initial_state=[h_in, c_in]))
    for w in model.weights:
        w.assign(common.uniform(rng, tuple(w.shape), 0.6))
    x = common.uniform(rng, (B, T, I))
    x[np.arange(T)[None, :] >= np.asarray(lengths)[:, None]] = 0.0  # the padding Masking(0.0) masks
    h0, c0 = common.uniform(rng, (1, B, u)), common.uniform(rng, (1, B, u))
    y, h_n, c_n = [np.asarray(o) for o in model([x, h0[0], c0[0]])]
    unmasked = [np.asarray(o) for o in lstm(x, initial_state=[h0[0], c0[0]])]
    assert all(np.array_equal(a, b) for a, b in zip((y, h_n, c_n), unmasked)), "Keras now keeps the mask"
    meta = {
        "framework_version": keras.__version__,
        "backend": "jax " + jax.__version__,
        "keras.config": json.dumps(model.get_config(), sort_keys=True, default=str),
        "options": dict(input_size=I, units=u, seq_len=T, batch=B, masking_lengths=lengths, initial_state=True),
        "description": note,
        "seed": str(seed),
        "y_layout": "batch_major",
        "state_layout": "ldbr",
        "y_padding": "value",
    }
    weights = {w.path: np.asarray(w.value) for w in model.weights}
    meta.update(exporter_metadata([lstm], weights, None))
    expected = common.expected_spec(I, u, layout="batch_major", gate=ACT["sigmoid"], cell=ACT["tanh"],
                                    hidden=ACT["tanh"])
    common.write_fixture(FRAMEWORK, name, weights=weights, inputs=dict(x=x, h0=h0, c0=c0),
                         outputs=dict(y=y, h_n=h_n[None], c_n=c_n[None]), meta=meta, expected=expected,
                         naming="keras")


def main():
    common.clean(FRAMEWORK)
    make_case("lstm", 301, I=5, u=6, T=7, B=3, note="LSTM, sigmoid recurrent activation, zero initial state")
    make_case("lstm_initial_state", 302, I=4, u=5, T=6, B=2, initial_state=True, note="initial_state=[h0, c0]")
    make_case("lstm_hard_sigmoid", 303, I=4, u=6, T=8, B=3, recurrent_activation="hard_sigmoid",
              initial_state=True, note="Keras 3 hard_sigmoid = clamp(x/6 + 0.5, 0, 1)")
    make_case("lstm_t1_b1", 304, I=3, u=4, T=1, B=1, initial_state=True, note="T=1, B=1")
    make_case("lstm_no_bias_softsign", 305, I=5, u=4, T=6, B=2, use_bias=False, activation="softsign",
              initial_state=True, note="use_bias=False, activation=softsign")
    make_case("lstm_go_backwards", 306, I=4, u=5, T=6, B=3, go_backwards=True, initial_state=True,
              note="go_backwards=True: outputs in processing (reversed) order")
    make_case("lstm_mask", 307, I=4, u=5, T=7, B=4, lengths=[7, 3, 0, 1], initial_state=True,
              note="mask from lengths incl. 0; masked steps repeat the previous output")
    make_case("lstm_mask_zero_output", 308, I=3, u=4, T=6, B=3, lengths=[2, 6, 0], initial_state=True,
              zero_output_for_mask=True, recurrent_activation="hard_sigmoid",
              note="mask with zero_output_for_mask=True, hard_sigmoid")
    make_case("lstm_go_backwards_mask", 309, I=5, u=4, T=7, B=3, go_backwards=True, lengths=[4, 7, 1],
              initial_state=True, note="go_backwards with a mask: the padded tail is processed first (masked)")
    make_case("bidirectional", 310, I=4, u=5, T=6, B=2, bidirectional=True, initial_state=True,
              note="Bidirectional(LSTM), merge_mode=concat")
    make_case("bidirectional_mask_hard_sigmoid", 311, I=5, u=6, T=8, B=4, bidirectional=True,
              recurrent_activation="hard_sigmoid", lengths=[8, 2, 5, 0], initial_state=True,
              note="Bidirectional with mask incl. length 0 and hard_sigmoid")
    make_case("stack2_mask", 313, I=4, u=5, T=7, B=3, L=2, lengths=[7, 4, 0], initial_state=True,
              recurrent_activation="hard_sigmoid", note="two stacked LSTM layers (culstm.layers) with a mask")
    make_case("bidirectional_stack2", 314, I=3, u=4, T=6, B=2, L=2, bidirectional=True, lengths=[6, 3],
              initial_state=True, note="two stacked Bidirectional layers with a mask")
    make_case("bidirectional_max16", 312, I=16, u=16, T=8, B=4, bidirectional=True, lengths=[8, 6, 1, 3],
              note="largest sizes used: I=u=16, T=8, B=4; zero initial state")
    # Bidirectional with an explicit backward_layer: Keras names its weights after the user's layer
    # ("bidirectional/reverse_lstm/..."); the structure in culstm.layers says which LSTM is which.
    make_case("bidirectional_explicit_backward", 315, I=4, u=4, T=6, B=3, bidirectional=True, backward={},
              lengths=[6, 2, 0], initial_state=True, last=True,
              note="Bidirectional(LSTM, backward_layer=LSTM(go_backwards=True)) with the same options, mask incl. 0, "
                   "initial state; y_last: return_sequences=False")
    make_case("bidirectional_backward_relu", 316, I=3, u=4, T=5, B=2, bidirectional=True,
              backward={"activation": "relu"}, refused=("NotSupported", "activation='relu'"),
              note="explicit backward_layer with activation=relu: refused (culstm has one activation)")
    make_case("stack_units_5_7", 317, I=3, u=5, T=5, B=2, L=2, units=[5, 7],
              refused=("NotSupported", "units=7"), note="stacked LSTM(5), LSTM(7): refused (one hidden size)")
    make_case("lstm_go_backwards_last", 318, I=4, u=5, T=6, B=4, go_backwards=True, lengths=[6, 3, 0, 1],
              initial_state=True, last=True,
              note="go_backwards with a mask incl. 0 and return_sequences=False: y_last is h_n (Keras's output at t=0)")
    make_masking_case("masking_initial_state", 319, I=3, u=4, T=6, B=3, lengths=[6, 4, 2],
                      note="Masking layer + LSTM with initial_state: Keras drops the mask and runs over the padding")


if __name__ == "__main__":
    main()
