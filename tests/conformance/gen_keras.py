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
    output (h0 before any valid step) unless zero_output_for_mask=True (Bidirectional sets it): "y_valid_steps_only".
  - Keras returns states per layer and direction as [B,u] tensors; they are stacked here as [L*D,B,u] (layer-major,
    forward before backward), culstm's order.

Run: tests/conformance/setup_venv.sh keras && build/conformance/venv-keras/bin/python tests/conformance/gen_keras.py
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402

FRAMEWORK = "keras"
# Keras activation name -> culstm activation (Keras 3 definitions).
ACT = {"sigmoid": common.act("sigmoid"), "tanh": common.act("tanh"), "relu": common.act("relu"),
       "hard_sigmoid": common.act("hard_sigmoid", 1.0 / 6.0, 0.5), "softsign": common.act("softsign"),
       "softplus": common.act("softplus"), "elu": common.act("elu", 1.0)}


def make_case(name, seed, *, I, u, T, B, L=1, bidirectional=False, go_backwards=False, activation="tanh",
              recurrent_activation="sigmoid", use_bias=True, lengths=None, initial_state=False,
              zero_output_for_mask=False, note=""):
    """L > 1 stacks L layers (LSTM or Bidirectional(LSTM)), each fed the previous one's output sequence and the same
    mask, as keras.Sequential would; their weights are listed in order in "culstm.layers"."""
    keras.backend.clear_session()
    rng = common.rng_for(seed)
    D = 2 if bidirectional else 1
    layers, names = [], []
    for l in range(L):
        suffix = "_%d" % l if l else ""
        lstm = keras.layers.LSTM(u, activation=activation, recurrent_activation=recurrent_activation,
                                 use_bias=use_bias, return_sequences=True, return_state=True,
                                 go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask,
                                 name="lstm" + suffix)
        layer = keras.layers.Bidirectional(lstm, name="bidirectional" + suffix) if bidirectional else lstm
        layer.build((B, T, I if l == 0 else D * u))
        for w in layer.weights:
            w.assign(common.uniform(rng, tuple(w.shape), 0.6))
        layers.append(layer)
        names.append(layer.name)
    x = common.uniform(rng, (B, T, I))
    h0 = common.uniform(rng, (L * D, B, u)) if initial_state else None
    c0 = common.uniform(rng, (L * D, B, u)) if initial_state else None
    mask = None if lengths is None else np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    y, h_n, c_n = x, [], []
    for l, layer in enumerate(layers):
        kwargs = {}
        if mask is not None:
            kwargs["mask"] = mask
        if initial_state:
            kwargs["initial_state"] = [s for d in range(D) for s in (h0[l * D + d], c0[l * D + d])]
        out = [np.asarray(o) for o in layer(y, **kwargs)]
        y = out[0]
        h_n += [out[1 + 2 * d] for d in range(D)]
        c_n += [out[2 + 2 * d] for d in range(D)]
    h_n, c_n = np.stack(h_n), np.stack(c_n)
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
    direction = "bidirectional" if bidirectional else ("reverse" if go_backwards else "forward")
    expected = common.expected_spec(I, u, num_layers=L, direction=direction, bias=use_bias, layout="batch_major",
                                    gate=ACT[recurrent_activation], cell=ACT[activation], hidden=ACT[activation])
    # What a Keras user's export records next to the weights (docs/formats.md, "culstm.keras"): the layer options
    # the weights cannot tell, and the Keras version (hard_sigmoid is 0.2x+0.5 in Keras 2, x/6+0.5 in Keras 3).
    culstm_keras = {"keras_version": keras.__version__, "activation": activation,
                    "recurrent_activation": recurrent_activation, "go_backwards": go_backwards}
    if bidirectional:
        culstm_keras["merge_mode"] = "concat"
    meta = {
        "framework_version": keras.__version__,
        "backend": "jax " + jax.__version__,
        "culstm.keras": json.dumps(culstm_keras, sort_keys=True),
        "keras.config": json.dumps([layer.get_config() for layer in layers], sort_keys=True, default=str),
        "options": dict(input_size=I, units=u, layers=L, seq_len=T, batch=B, bidirectional=bidirectional,
                        go_backwards=go_backwards, activation=activation, recurrent_activation=recurrent_activation,
                        use_bias=use_bias, lengths=lengths, initial_state=initial_state,
                        zero_output_for_mask=zero_output_for_mask),
        "description": note,
        "seed": str(seed),
        "y_layout": "batch_major",  # [B, T, D*u]; with go_backwards in processing order
        "state_layout": "ldbr",  # stacked [L*D, B, u]
        "y_padding": "carry" if masked_carry else "value",
    }
    if L > 1:
        meta["culstm.layers"] = json.dumps(names)
    weights = {w.path: np.asarray(w.value) for layer in layers for w in layer.weights}
    common.write_fixture(FRAMEWORK, name, weights=weights, inputs=dict(x=x, lengths=lengths, h0=h0, c0=c0),
                         outputs=dict(y=y, h_n=h_n, c_n=c_n), meta=meta, expected=expected, naming="keras",
                         adjustments=adjustments)


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


if __name__ == "__main__":
    main()
