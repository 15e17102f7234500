#!/usr/bin/env python3
"""Conformance fixtures from real PyTorch (torch.nn.LSTM on the CPU, float32).

Weights are stored under nn.LSTM.state_dict() names (weight_ih_l0, weight_hh_l0_reverse, weight_hr_l1, ...), so the
PyTorch importer (Naming::kPyTorch) reads them as a user's checkpoint. Per-sequence lengths go through
torch.nn.utils.rnn.pack_padded_sequence (enforce_sorted=False) and pad_packed_sequence(total_length=T): that is
PyTorch's way to honour lengths (a padded tensor without packing runs over the padding). PyTorch cannot pack a
sequence of length 0, so length-0 rows are covered by the other frameworks.

Run: tests/conformance/setup_venv.sh pytorch && build/conformance/venv-pytorch/bin/python tests/conformance/gen_pytorch.py
"""
import numpy as np
import torch

import common

FRAMEWORK = "pytorch"


def make_case(name, seed, *, I, H, T, B, L=1, bidirectional=False, proj=0, bias=True, batch_first=False,
              lengths=None, h0=False, c0=False, prefix="", note=""):
    rng = common.rng_for(seed)
    D = 2 if bidirectional else 1
    R = proj if proj else H
    lstm = torch.nn.LSTM(I, H, num_layers=L, bias=bias, batch_first=batch_first, bidirectional=bidirectional,
                         proj_size=proj)
    # Weights from a seeded NumPy generator (not torch's RNG), scale 0.6 so the gates leave their linear range.
    state = {k: torch.from_numpy(common.uniform(rng, tuple(v.shape), 0.6)) for k, v in lstm.state_dict().items()}
    lstm.load_state_dict(state)
    lstm.eval()
    x = common.uniform(rng, (B, T, I) if batch_first else (T, B, I))
    h0_np = common.uniform(rng, (L * D, B, R)) if h0 else None
    c0_np = common.uniform(rng, (L * D, B, H)) if c0 else None
    if (h0_np is None) != (c0_np is None):
        # nn.LSTM takes both or neither; the missing one is zeros, which is also culstm's meaning of "absent".
        h0_np = h0_np if h0_np is not None else np.zeros((L * D, B, R), np.float32)
        c0_np = c0_np if c0_np is not None else np.zeros((L * D, B, H), np.float32)
    hx = None if h0_np is None else (torch.from_numpy(h0_np), torch.from_numpy(c0_np))
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if lengths is not None:
            packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths, dtype=torch.int64),
                                                             batch_first=batch_first, enforce_sorted=False)
            y_packed, (h_n, c_n) = lstm(packed, hx)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y_packed, batch_first=batch_first, padding_value=0.0,
                                                          total_length=T)
        else:
            y, (h_n, c_n) = lstm(xt, hx)
    expected = common.expected_spec(I, H, proj_size=proj, num_layers=L,
                                    direction="bidirectional" if bidirectional else "forward", bias=bias,
                                    layout="batch_major" if batch_first else "seq_major")
    options = dict(input_size=I, hidden_size=H, num_layers=L, bidirectional=bidirectional, proj_size=proj,
                   bias=bias, batch_first=batch_first, seq_len=T, batch=B, lengths=lengths, h0=h0, c0=c0,
                   packed=lengths is not None)
    meta = {
        "framework_version": torch.__version__,
        "options": options,
        "description": note,
        "seed": str(seed),
        "y_layout": "batch_major" if batch_first else "seq_major",  # [B,T,D*R] / [T,B,D*R], as culstm
        "state_layout": "ldbr",  # h_n [L*D, B, R], c_n [L*D, B, H], as culstm
        "y_padding": "value",  # pad_packed_sequence writes padding_value (0) at t >= len
        # The layout is how nn.LSTM was called (batch_first), not something a state_dict records.
        "spec_from_call": "layout",
    }
    adjustments = ["layout_from_call"]
    weights = {prefix + k: v.numpy() for k, v in state.items()}
    if prefix:
        # The LSTM inside a larger model's state_dict: its names carry the module path, other modules' tensors sit
        # beside it (ignored by the importer).
        meta["prefix"] = prefix
        weights["decoder.weight"] = common.uniform(rng, (3, 2 * H))
        weights["decoder.bias"] = common.uniform(rng, (3,))
    common.write_fixture(FRAMEWORK, name, weights=weights,
                         inputs=dict(x=x, lengths=lengths, h0=h0_np if h0 else None, c0=c0_np if c0 else None),
                         outputs=dict(y=y.numpy(), h_n=h_n.numpy(), c_n=c_n.numpy()), meta=meta,
                         expected=expected, naming="pytorch", adjustments=adjustments)


def main():
    torch.set_num_threads(1)
    common.clean(FRAMEWORK)
    make_case("l1_fwd", 101, I=5, H=7, T=6, B=3, note="one layer, zero initial state")
    make_case("l1_fwd_t1_b1", 102, I=3, H=4, T=1, B=1, h0=True, c0=True, note="T=1, B=1")
    make_case("l1_fwd_h1", 103, I=1, H=1, T=8, B=2, h0=True, c0=True, note="I=1, H=1")
    make_case("l2_fwd_h0c0", 104, I=6, H=8, T=7, B=4, L=2, h0=True, c0=True, note="two layers, h0 and c0")
    make_case("l3_bi_h0c0", 105, I=4, H=5, T=5, B=3, L=3, bidirectional=True, h0=True, c0=True,
              note="three bidirectional layers")
    make_case("l1_bi_batch_first", 106, I=7, H=6, T=8, B=2, bidirectional=True, batch_first=True, h0=True, c0=True,
              note="batch_first=True")
    make_case("l2_proj", 107, I=5, H=9, T=6, B=3, L=2, proj=4, h0=True, c0=True, note="proj_size=4")
    make_case("l2_bi_proj_batch_first", 108, I=6, H=8, T=5, B=2, L=2, bidirectional=True, proj=3, batch_first=True,
              h0=True, c0=True, note="bidirectional, proj_size=3, batch_first")
    make_case("l1_nobias", 109, I=4, H=6, T=6, B=3, bias=False, h0=True, c0=True, note="bias=False")
    make_case("l1_packed", 110, I=5, H=6, T=7, B=4, lengths=[7, 3, 5, 1], h0=True, c0=True,
              note="PackedSequence, unsorted lengths")
    make_case("l2_bi_packed", 111, I=4, H=5, T=8, B=4, L=2, bidirectional=True, lengths=[2, 8, 5, 1], h0=True,
              c0=True, note="two bidirectional layers, PackedSequence")
    make_case("l2_bi_proj_packed_batch_first", 112, I=6, H=7, T=6, B=3, L=2, bidirectional=True, proj=5,
              batch_first=True, lengths=[4, 6, 1], h0=True, c0=True,
              note="bidirectional, projection, batch_first, PackedSequence")
    make_case("l3_packed_zero_state", 113, I=3, H=16, T=8, B=4, L=3, lengths=[8, 8, 3, 6],
              note="three layers, PackedSequence, no initial state, H=16")
    make_case("l2_bi_prefixed", 115, I=4, H=5, T=6, B=2, L=2, bidirectional=True, h0=True, c0=True,
              prefix="encoder.lstm.", note="state_dict of a model holding the LSTM as encoder.lstm, beside a decoder")
    make_case("l1_h0_only", 116, I=3, H=4, T=5, B=2, h0=True, note="h0 given, c0 absent (zeros)")
    make_case("l1_bi_max16", 114, I=16, H=16, T=8, B=4, bidirectional=True, h0=True, c0=True,
              note="largest sizes used: I=H=16, T=8, B=4")


if __name__ == "__main__":
    main()
