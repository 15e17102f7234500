"""culstm.torch.LSTM against torch.nn.LSTM on the CPU: a randomized grid of configurations, PackedSequence input
(unsorted, length 1), state dicts, weights that follow the parameters, the inference-only rule, bad input."""

import itertools
import random

import pytest

from conftest import import_torch, run_in_threads

torch = import_torch()
import culstm  # noqa: E402
import culstm.torch  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

# tests/unit/conformance_test.cpp's bound for PyTorch f32 fixtures: ||out - ref|| / ||ref|| per output.
BOUND = 1e-5


def relative_error(got, want):
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm().clamp_min(1e-30)).item()


def assert_close(got, want, what):
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert got.dtype == want.dtype, what
    err = relative_error(got, want)
    assert err <= BOUND, f"{what}: relative error {err:.3g} > {BOUND}"


def grid():
    """A reproducible random sample of nn.LSTM configurations: layers 1-3, bidirectional, proj_size,
    batch_first, h0/c0 or not, batch 1-7, odd sizes, T=1 included."""
    rnd = random.Random(14)
    cases = []
    for layers, bidirectional, proj, batch_first, states in itertools.product(
            (1, 2, 3), (False, True), (False, True), (False, True), (False, True)):
        hidden = rnd.choice((1, 3, 7, 13))
        cases.append(dict(layers=layers, bidirectional=bidirectional, hidden=hidden,
                          proj=rnd.randint(1, hidden - 1) if proj and hidden > 1 else 0,
                          batch_first=batch_first, states=states, batch=rnd.randint(1, 7),
                          steps=rnd.choice((1, 2, 5, 11)), input=rnd.choice((1, 2, 5, 9))))
    return cases


GRID = grid()


@pytest.mark.parametrize("case", GRID, ids=[f"{i}" for i in range(len(GRID))])
def test_matches_nn_lstm(case):
    torch.manual_seed(hash(tuple(case.values())) % 2**31)
    ref = torch.nn.LSTM(case["input"], case["hidden"], case["layers"], batch_first=case["batch_first"],
                        bidirectional=case["bidirectional"], proj_size=case["proj"])
    ours = culstm.torch.LSTM.from_module(ref)
    B, T = case["batch"], case["steps"]
    x = torch.randn((B, T, case["input"]) if case["batch_first"] else (T, B, case["input"]))
    hx = None
    if case["states"]:
        D = 2 if case["bidirectional"] else 1
        R = case["proj"] or case["hidden"]
        hx = (torch.randn(case["layers"] * D, B, R), torch.randn(case["layers"] * D, B, case["hidden"]))
    with torch.no_grad():
        want_y, (want_h, want_c) = ref(x, hx)
        got_y, (got_h, got_c) = ours(x, hx)
    assert_close(got_y, want_y, "output")
    assert_close(got_h, want_h, "h_n")
    assert_close(got_c, want_c, "c_n")


@pytest.mark.parametrize("batch_first,bidirectional,proj", [(False, False, 0), (True, True, 2), (False, True, 0)])
def test_packed_sequence_unsorted_with_length_one(batch_first, bidirectional, proj):
    torch.manual_seed(3)
    ref = torch.nn.LSTM(4, 6, 2, batch_first=batch_first, bidirectional=bidirectional, proj_size=proj)
    ours = culstm.torch.LSTM.from_module(ref)
    lengths = torch.tensor([3, 1, 7, 2, 7, 1])
    B, T = len(lengths), int(lengths.max())
    padded = torch.randn((B, T, 4) if batch_first else (T, B, 4))
    packed = pack_padded_sequence(padded, lengths, batch_first=batch_first, enforce_sorted=False)
    D = 2 if bidirectional else 1
    hx = (torch.randn(2 * D, B, proj or 6), torch.randn(2 * D, B, 6))
    with torch.no_grad():
        for state in (None, hx):
            want, (want_h, want_c) = ref(packed, state)
            got, (got_h, got_c) = ours(packed, state)
            assert isinstance(got, torch.nn.utils.rnn.PackedSequence)
            assert torch.equal(got.batch_sizes, want.batch_sizes)
            assert torch.equal(got.sorted_indices, want.sorted_indices)
            assert torch.equal(got.unsorted_indices, want.unsorted_indices)
            assert_close(got.data, want.data, "packed output")
            assert_close(got_h, want_h, "h_n")
            assert_close(got_c, want_c, "c_n")
            # The same through lengths= on the padded input.
            y, (h, c) = ours(padded, state, lengths=lengths)
            want_padded, _ = pad_packed_sequence(want, batch_first=batch_first, total_length=T)
            assert_close(y, want_padded, "padded output with lengths=")
            assert_close(h, want_h, "h_n with lengths=")


def test_unbatched_input_and_sorted_packed():
    torch.manual_seed(5)
    ref = torch.nn.LSTM(3, 4, 2)
    ours = culstm.torch.LSTM.from_module(ref)
    x = torch.randn(5, 3)
    hx = (torch.randn(2, 4), torch.randn(2, 4))
    with torch.inference_mode():
        want, (wh, wc) = ref(x, hx)
        got, (gh, gc) = ours(x, hx)
        assert_close(got, want, "unbatched output")
        assert_close(gh, wh, "unbatched h_n")
        packed = pack_padded_sequence(torch.randn(4, 3, 3), torch.tensor([4, 2, 1]))
        want_p, _ = ref(packed)
        got_p, _ = ours(packed)
        assert got_p.sorted_indices is None
        assert_close(got_p.data, want_p.data, "sorted packed output")


def test_state_dict_and_attributes_interchange():
    ref = torch.nn.LSTM(5, 8, 2, bias=True, batch_first=True, dropout=0.25, bidirectional=True, proj_size=3)
    ours = culstm.torch.LSTM(5, 8, 2, bias=True, batch_first=True, dropout=0.25, bidirectional=True, proj_size=3)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for name, p in ref.named_parameters():
        assert getattr(ours, name).shape == p.shape, name
    for attr in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
                 "proj_size"):
        assert getattr(ours, attr) == getattr(ref, attr), attr
    assert ours._flat_weights_names == ref._flat_weights_names
    assert [w.shape for w in ours._flat_weights] == [w.shape for w in ref._flat_weights]
    assert [[w.shape for w in ws] for ws in ours.all_weights] == [[w.shape for w in ws] for ws in ref.all_weights]
    ours.flatten_parameters()  # code written for nn.LSTM calls it
    ours.load_state_dict(ref.state_dict())
    ref.eval()  # nn.LSTM applies its dropout in training mode only; culstm never does
    ref2 = torch.nn.LSTM(5, 8, 2, batch_first=True, bidirectional=True, proj_size=3)
    ref2.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 5)
    with torch.no_grad():
        assert_close(ours(x)[0], ref(x)[0], "after load_state_dict")
        assert_close(ref2(x)[0], ref(x)[0], "nn.LSTM loading culstm's state dict")
    assert "proj_size=3" in repr(ours)
    with pytest.raises(ValueError):
        culstm.torch.LSTM(2, 3, dropout=1.5)
    with pytest.raises(culstm.InvalidSpecError):
        culstm.torch.LSTM(2, 3, proj_size=3)


def test_weights_follow_parameters_and_rebuild_only_on_change(monkeypatch):
    torch.manual_seed(7)
    ref = torch.nn.LSTM(3, 4)
    ours = culstm.torch.LSTM.from_module(ref)
    x = torch.randn(3, 2, 3)
    builds = []
    real_model = culstm._core.Model

    def counting_model(*args, **kwargs):
        builds.append(1)
        return real_model(*args, **kwargs)

    monkeypatch.setattr(culstm._core, "Model", counting_model)
    with torch.no_grad():
        first = ours(x)[0]
        ours(x)
        ours(x)
        assert len(builds) == 1, "the model was rebuilt although no parameter changed"
        ours.weight_hh_l0.mul_(0.5)  # in-place edit
        ref.weight_hh_l0.mul_(0.5)
        assert_close(ours(x)[0], ref(x)[0], "after an in-place edit")
        assert len(builds) == 2
        ref.bias_ih_l0.add_(1.0)
        ours.load_state_dict(ref.state_dict())
        assert_close(ours(x)[0], ref(x)[0], "after load_state_dict")
        assert len(builds) == 3
        ours.to(torch.float64).to(torch.float32)  # new parameter tensors with the same values
        assert_close(ours(x)[0], ref(x)[0], "after .to()")
        assert not torch.equal(first, ours(x)[0])
        # A batch above the limits the model was built for rebuilds it larger.
        big = torch.randn(2, 100, 3)
        assert_close(ours(big)[0], ref(big)[0], "batch of 100")


def test_culstm_variants_through_keywords():
    torch.manual_seed(9)
    m = culstm.torch.LSTM(3, 4, peepholes=True, gate_clip=1.0, cell_clip=2.0, gate_activation="hard_sigmoid",
                          input_forget=False, direction="reverse")
    assert m.peephole_l0.shape == (12,) and m.direction == "reverse" and not m.bidirectional
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        y, (h, c) = m(x)
    # The same network through the core API gives the same bits.
    spec = culstm.LstmSpec(3, 4, peepholes=True, gate_clip=1.0, cell_clip=2.0, gate_activation="hard_sigmoid",
                           direction="reverse")
    core = culstm.Model(spec, [{"w_ih": m.weight_ih_l0.detach(), "w_hh": m.weight_hh_l0.detach(),
                                "b_ih": m.bias_ih_l0.detach(), "b_hh": m.bias_hh_l0.detach(),
                                "peephole": m.peephole_l0.detach()}])
    cy, ch, cc = core.forward(x)
    assert torch.equal(y, cy) and torch.equal(h, ch) and torch.equal(c, cc)


def test_half_precision_parameters_map_to_the_model_dtype():
    torch.manual_seed(11)
    ref = torch.nn.LSTM(3, 4, 2, bidirectional=True)
    x = torch.randn(4, 2, 3)
    for dtype in (torch.float16, torch.bfloat16):
        ours = culstm.torch.LSTM.from_module(ref).to(dtype)
        with torch.no_grad():
            y, (h, c) = ours(x.to(dtype))
            want = ref(x)[0]
        assert y.dtype == dtype
        # Rounding of weights, inputs and outputs to 16 bits: a loose bound of 16-bit precision, not f32's.
        assert relative_error(y.float(), want) < (2e-2 if dtype == torch.bfloat16 else 3e-3)


def test_inference_only_rule_and_bad_input():
    m = culstm.torch.LSTM(3, 4)
    x = torch.randn(2, 1, 3)
    with pytest.raises(culstm.InvalidArgumentError, match=r"torch.no_grad\(\).*torch.inference_mode\(\)"):
        m(x)
    with torch.no_grad():
        with pytest.raises(culstm.DtypeMismatchError, match="x"):
            m(x.double())
        with pytest.raises(culstm.ShapeMismatchError, match="x"):
            m(torch.randn(2, 1, 4))
        with pytest.raises(culstm.ShapeMismatchError, match="x"):
            m(torch.randn(3))
        with pytest.raises(culstm.ShapeMismatchError, match="x"):
            m(torch.randn(1, 2, 1, 3))
        with pytest.raises(culstm.ShapeMismatchError, match="h0"):
            m(x, (torch.zeros(1, 2, 4), torch.zeros(1, 1, 4)))
        with pytest.raises(culstm.InvalidArgumentError, match="hx"):
            m(x, torch.zeros(1, 1, 4))
        with pytest.raises(culstm.LengthOutOfRangeError, match="lengths"):
            m(x, lengths=[3])
        with pytest.raises(culstm.DtypeMismatchError, match="lengths"):
            m(x, lengths=torch.tensor([1.5]))
        with pytest.raises(culstm.InvalidArgumentError, match="from_module"):
            culstm.torch.LSTM.from_module(torch.nn.GRU(3, 4))
        m.eval()  # dropout and train/eval change nothing at inference
        assert m(x)[0].shape == (2, 1, 4)


def test_arguments_of_the_wrong_python_type_or_range_are_refused():
    """What the randomized test (test_fuzz.py) found: these raised AttributeError or RuntimeError, or were
    silently truncated."""
    m = culstm.torch.LSTM(3, 4)
    x = torch.randn(2, 1, 3)
    with torch.no_grad():
        for not_a_tensor in (x.numpy(), x.tolist(), None, 3.0):
            with pytest.raises(culstm.InvalidArgumentError, match="input: expected a torch.Tensor"):
                m(not_a_tensor)
        for hx in ((torch.zeros(1, 1, 4), 2), (x.numpy(), x.numpy())):
            with pytest.raises(culstm.InvalidArgumentError, match="hx: "):
                m(x, hx)
        for lengths in ([2**40], [1.5], ["1"]):
            with pytest.raises(culstm.InvalidArgumentError, match="lengths"):
                m(x, lengths=lengths)
        with pytest.raises(culstm.InvalidArgumentError, match="lengths"):
            m(x, lengths=object())
        # An int64 array of lengths is range-checked, not wrapped to int32 (2**32 + 1 would read as 1).
        with pytest.raises(culstm.LengthOutOfRangeError, match="lengths"):
            m(x, lengths=torch.tensor([2**32 + 1]).numpy())
    # torch objects that are no tensors (torch.Size has module "torch") reach the core's own message, not
    # AttributeError from reading .is_cuda.
    core = culstm.Model(culstm.LstmSpec(3, 4), [{"w_ih": torch.ones(16, 3), "w_hh": torch.ones(16, 4),
                                                 "b_ih": torch.zeros(16), "b_hh": torch.zeros(16)}])
    with pytest.raises(culstm.InvalidArgumentError, match="x: expected an array"):
        core.forward(torch.Size([2, 1, 3]), stream=0)
    with pytest.raises(culstm.InvalidArgumentError, match="h0: expected an array"):
        core.forward(x.numpy(), h0=torch.Size([1, 1, 4]))


def test_tensor_with_the_negative_bit_is_refused_by_the_core_and_resolved_by_the_module():
    """z.conj().imag is a lazily negated view; PyTorch's DLPack export hands over its memory un-negated: the core
    read the values with the wrong sign (found by reading nanobind's import after the randomized test)."""
    m = culstm.torch.LSTM(1, 4)
    values = torch.randn(1, 1, 1)
    negated_view = torch.complex(torch.zeros_like(values), -values).conj().imag  # == values, negative bit set
    assert negated_view.is_neg() and torch.equal(negated_view, values)
    with torch.no_grad():
        want = m(values)
        got = m(negated_view)
    assert torch.equal(got[0], want[0])
    core = culstm.Model(culstm.LstmSpec(1, 4), [{"w_ih": torch.ones(16, 1), "w_hh": torch.ones(16, 4),
                                                 "b_ih": torch.zeros(16), "b_hh": torch.zeros(16)}])
    with pytest.raises(culstm.InvalidArgumentError, match=r"x: .*negative bit.*resolve_neg"):
        core.forward(negated_view)
    out = torch.full((1, 1, 4), 7.0)
    with pytest.raises(culstm.InvalidArgumentError, match=r"h_n: .*negative bit"):
        core.forward(values, out=(None, torch.complex(torch.zeros_like(out), -out).conj().imag, None))


def test_hand_built_packed_sequence_with_bad_sizes_or_indices_is_refused():
    """PyTorch's unpacking trusts a PackedSequence: negative batch sizes made it free an invalid pointer (the
    interpreter aborted); other bad ones raised PyTorch's RuntimeError."""
    from torch.nn.utils.rnn import PackedSequence
    m = culstm.torch.LSTM(3, 4)
    data = torch.randn(3, 3)
    bad = [(culstm.InvalidArgumentError, PackedSequence(data, torch.tensor([2, -1]))),
           (culstm.InvalidArgumentError, PackedSequence(data, torch.tensor([1, 2]))),
           (culstm.InvalidArgumentError, PackedSequence(data, torch.tensor([2, 1], dtype=torch.int32))),
           (culstm.InvalidArgumentError, PackedSequence(data[:0], torch.tensor([], dtype=torch.int64))),
           (culstm.ShapeMismatchError, PackedSequence(data, torch.tensor([5, 1]))),
           (culstm.ShapeMismatchError, PackedSequence(data[:, 0], torch.tensor([2, 1]))),
           (culstm.InvalidArgumentError, PackedSequence(data, torch.tensor([2, 1]), torch.tensor([5, 7]),
                                                        torch.tensor([0, 1]))),
           (culstm.InvalidArgumentError, PackedSequence(data, torch.tensor([2, 1]), torch.tensor([0, 0]),
                                                        torch.tensor([0, 1])))]
    with torch.no_grad():
        for exception, packed in bad:
            with pytest.raises(exception, match="PackedSequence"):
                m(packed)
        good = PackedSequence(data, torch.tensor([2, 1]), torch.tensor([1, 0]), torch.tensor([1, 0]))
        assert m(good)[0].data.shape == (3, 4)


def test_core_forward_on_torch_tensors_writes_out_and_refuses_without_writing():
    m = culstm.torch.LSTM(3, 4)
    model = culstm.Model(culstm.LstmSpec(3, 4), [{"w_ih": m.weight_ih_l0.detach(), "w_hh": m.weight_hh_l0.detach(),
                                                   "b_ih": m.bias_ih_l0.detach(), "b_hh": m.bias_hh_l0.detach()}])
    x = torch.randn(5, 2, 3)
    y, h, c = model.forward(x, torch.tensor([5, 2], dtype=torch.int32))
    assert isinstance(y, torch.Tensor) and y.shape == (5, 2, 4)
    out = (torch.full((5, 2, 4), 9.0), torch.full((1, 2, 4), 9.0), torch.full((1, 2, 4), 9.0))
    with pytest.raises(culstm.DtypeMismatchError, match="lengths"):
        model.forward(x, torch.tensor([5, 2]), out=out)  # int64
    with pytest.raises(culstm.InvalidArgumentError, match="C-contiguous"):
        model.forward(torch.randn(2, 5, 3).transpose(0, 1), out=out)
    with pytest.raises(culstm.InvalidArgumentError, match="expected an array"):
        model.forward(torch.randn(5, 2, 3, device="meta"), out=out)
    assert all(bool((o == 9.0).all()) for o in out)
    model.forward(x, torch.tensor([5, 2], dtype=torch.int32), out=out)
    assert torch.equal(out[0], y)


def test_threads_sharing_one_module_give_single_threaded_bits():
    torch.manual_seed(13)
    lstm = culstm.torch.LSTM(4, 6, 2, bidirectional=True, proj_size=3)
    inputs = [torch.randn(7, 3, 4) for _ in range(6)]
    lengths = torch.tensor([7, 2, 5])
    with torch.no_grad():
        expected = [lstm(x, lengths=lengths) for x in inputs]
    failures = []

    def worker(_):
        with torch.no_grad():
            for _ in range(20):
                for x, (ey, (eh, ec)) in zip(inputs, expected):
                    y, (h, c) = lstm(x, lengths=lengths)
                    if not (torch.equal(y, ey) and torch.equal(h, eh) and torch.equal(c, ec)):
                        failures.append(1)

    run_in_threads(worker)
    assert not failures


def test_ten_thousand_module_calls_leak_no_memory():
    from test_core import _rss_kib
    lstm = culstm.torch.LSTM(3, 5)
    x = torch.randn(4, 2, 3)
    packed = pack_padded_sequence(torch.randn(4, 3, 3), torch.tensor([2, 4, 1]), enforce_sorted=False)
    with torch.inference_mode():
        for _ in range(500):  # warm-up: the model, contexts, PyTorch's own caches
            lstm(x)
            lstm(packed)
        before = _rss_kib()
        for _ in range(5000):
            lstm(x)
            lstm(packed)
        growth = _rss_kib() - before
    assert growth < 4096, f"RSS grew by {growth} KiB over 10k calls"


def test_interpreter_exit_reports_no_leaked_objects():
    """A script that keeps a module in its globals exits cleanly: the op's caches are released before the
    extension's teardown, so nanobind finds no live culstm object and prints no leak report."""
    import subprocess
    import sys
    script = ("import torch, culstm, culstm.torch as ct\n"
              "m = ct.LSTM(4, 6, num_layers=2, bidirectional=True)\n"
              "with torch.no_grad():\n"
              "    m(torch.randn(3, 2, 4))\n"
              "spec = culstm.LstmSpec(input_size=4, hidden_size=6)\n")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "leaked" not in p.stderr, p.stderr


def test_benchmark_modules_run_for_every_dtype_of_its_grid():
    """bench/culstm_torch_bench.py's module pair for each dtype of its grid builds and runs (on the CPU here; the
    benchmark itself needs a GPU), within the benchmark's own bound of nn.LSTM."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[2] / "bench" / "culstm_torch_bench.py"
    spec = importlib.util.spec_from_file_location("culstm_torch_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(3)
    for dtype in bench.GRID["dtype"]:
        ref, ours = bench.make_modules(torch, culstm.torch.LSTM, 8, dtype, device="cpu")
        x = torch.randn(5, 2, 8).to(ref.weight_ih_l0.dtype)
        with torch.inference_mode():
            want, got = ref(x)[0], ours(x)[0]
        assert got.dtype == want.dtype
        assert relative_error(got, want) <= bench.BOUNDS[dtype], dtype
