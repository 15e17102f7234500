#!/usr/bin/env python3
"""Conformance fixtures from real MindSpore (CPU, PyNative mode, float32): mindspore.nn.LSTM.

Weights are stored under MindSpore's own parameter names as save_checkpoint() writes them for an nn.LSTM held by a
Cell attribute "encoder" ("encoder.weight_ih_l0", "encoder.weight_hh_l0_reverse", "encoder.bias_ih_l1", ...; gate
order i, f, g, o), read by the MindSpore importer (Naming::kMindSpore) with ImportOptions.prefix = "encoder.".
Without seq_length MindSpore runs its fused CPU LSTM operator; with seq_length it runs its step-by-step
_DynamicRNNBase, which keeps the state of finished sequences (h_n = state after the last valid step, h0 for
length 0) and writes zeros to y at t >= seq_length: the same as culstm.

Run: tests/conformance/setup_venv.sh mindspore && build/conformance/venv-mindspore/bin/python tests/conformance/gen_mindspore.py
"""
import mindspore as ms
import numpy as np
from mindspore import nn

import common

FRAMEWORK = "mindspore"
PREFIX = "encoder."


class Holder(nn.Cell):
    """A model holding the LSTM as "encoder", so checkpoint names carry the "encoder." prefix."""

    def __init__(self, lstm):
        super().__init__()
        self.encoder = lstm

    def construct(self, x, hx=None, seq_length=None):
        return self.encoder(x, hx, seq_length)


def make_case(name, seed, *, I, H, T, B, L=1, bidirectional=False, bias=True, batch_first=False, lengths=None,
              h0=False, note=""):
    rng = common.rng_for(seed)
    D = 2 if bidirectional else 1
    net = Holder(nn.LSTM(I, H, num_layers=L, has_bias=bias, batch_first=batch_first, bidirectional=bidirectional))
    net.set_train(False)
    weights = {}
    for pname, p in net.parameters_and_names():
        value = common.uniform(rng, tuple(p.shape), 0.6)
        p.set_data(ms.Tensor(value))
        weights[p.name] = value
    assert all(k.startswith(PREFIX) for k in weights), list(weights)
    x = common.uniform(rng, (B, T, I) if batch_first else (T, B, I))
    h0_np = common.uniform(rng, (L * D, B, H)) if h0 else None
    c0_np = common.uniform(rng, (L * D, B, H)) if h0 else None
    hx = (ms.Tensor(h0_np), ms.Tensor(c0_np)) if h0 else None
    seq = None if lengths is None else ms.Tensor(np.asarray(lengths, np.int32))
    y, (h_n, c_n) = net(ms.Tensor(x), hx, seq)
    y, h_n, c_n = y.asnumpy(), h_n.asnumpy(), c_n.asnumpy()
    if lengths is not None:
        pad = np.arange(T)[None, :] >= np.asarray(lengths)[:, None]  # [B, T]
        assert not (y.transpose(1, 0, 2) if not batch_first else y)[pad].any(), "expected zeros at t >= seq_length"
    expected = common.expected_spec(I, H, num_layers=L, direction="bidirectional" if bidirectional else "forward",
                                    bias=bias, layout="batch_major" if batch_first else "seq_major")
    meta = {
        "framework_version": ms.__version__,
        "options": dict(input_size=I, hidden_size=H, num_layers=L, bidirectional=bidirectional, has_bias=bias,
                        batch_first=batch_first, seq_len=T, batch=B, seq_length=lengths, h0_c0=h0),
        "description": note,
        "seed": str(seed),
        "prefix": PREFIX,
        "y_layout": "batch_major" if batch_first else "seq_major",
        "state_layout": "ldbr",
        "y_padding": "value",
        "spec_from_call": "layout",
    }
    common.write_fixture(FRAMEWORK, name, weights=weights,
                         inputs=dict(x=x, lengths=lengths, h0=h0_np, c0=c0_np),
                         outputs=dict(y=y, h_n=h_n, c_n=c_n), meta=meta, expected=expected, naming="mindspore",
                         adjustments=["layout_from_call"])


def main():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_device("CPU")
    common.clean(FRAMEWORK)
    make_case("l1_fwd", 401, I=5, H=6, T=7, B=3, note="one layer, fused CPU operator, zero initial state")
    make_case("l2_fwd_h0c0", 402, I=4, H=5, T=6, B=2, L=2, h0=True, note="two layers, h0 and c0")
    make_case("l2_bi_h0c0", 403, I=6, H=4, T=5, B=3, L=2, bidirectional=True, h0=True, note="two bidirectional layers")
    make_case("l1_nobias_batch_first", 404, I=3, H=5, T=6, B=2, bias=False, batch_first=True, h0=True,
              note="has_bias=False, batch_first=True")
    make_case("l1_seq_length", 405, I=4, H=5, T=7, B=4, lengths=[7, 3, 0, 1], h0=True,
              note="seq_length incl. 0 (step-by-step path)")
    make_case("l2_bi_seq_length", 406, I=5, H=4, T=6, B=3, L=2, bidirectional=True, lengths=[2, 6, 0], h0=True,
              note="two bidirectional layers with seq_length incl. 0")
    make_case("l3_bi_seq_length_batch_first", 407, I=3, H=6, T=8, B=4, L=3, bidirectional=True, batch_first=True,
              lengths=[8, 5, 1, 3], h0=True, note="three bidirectional layers, batch_first, seq_length")
    make_case("l1_bi_max16", 408, I=16, H=16, T=8, B=4, bidirectional=True, lengths=[8, 8, 4, 6],
              note="largest sizes used: I=H=16, T=8, B=4; zero initial state")


if __name__ == "__main__":
    main()
