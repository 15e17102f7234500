"""Bad input from Python: each raises the culstm.Error subclass of its StatusCode, with a message naming the
argument, and leaves the out= arrays untouched. Nothing crashes the interpreter."""

from pathlib import Path

import numpy as np
import pytest

import culstm
from conftest import DlpackOnly, random_model

T, B, I, H, L = 5, 3, 3, 4, 2
SENTINEL = 12345.0


@pytest.fixture
def model(rng):
    return random_model(rng, input_size=I, hidden_size=H, num_layers=L, options={"max_batch": 4, "max_seq_len": 8})


@pytest.fixture
def good(rng):
    return {
        "x": rng.standard_normal((T, B, I)).astype(np.float32),
        "lengths": np.array([5, 1, 3], np.int32),
        "h0": np.zeros((L, B, H), np.float32),
        "c0": np.zeros((L, B, H), np.float32),
    }


def sentinel_outputs():
    return (np.full((T, B, H), SENTINEL, np.float32), np.full((L, B, H), SENTINEL, np.float32),
            np.full((L, B, H), SENTINEL, np.float32))


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


# (case id, exception, message fragment, changes to the good arguments, out= override or None)
CASES = [
    ("x_rank_2", culstm.ShapeMismatchError, "x", {"x": np.zeros((T, I), np.float32)}),
    ("x_rank_5", culstm.ShapeMismatchError, "x: rank 5", {"x": np.zeros((1, T, B, I, 1), np.float32)}),
    ("x_features", culstm.ShapeMismatchError, "x", {"x": np.zeros((T, B, I + 1), np.float32)}),
    ("x_f64", culstm.DtypeMismatchError, "x", {"x": np.zeros((T, B, I), np.float64)}),
    ("x_i32", culstm.DtypeMismatchError, "x", {"x": np.zeros((T, B, I), np.int32)}),
    ("x_u8", culstm.DtypeMismatchError, "x: element type", {"x": np.zeros((T, B, I), np.uint8)}),
    ("x_complex", culstm.DtypeMismatchError, "x: element type", {"x": np.zeros((T, B, I), np.complex64)}),
    ("x_non_contiguous", culstm.InvalidArgumentError, "C-contiguous",
     {"x": np.zeros((B, T, I), np.float32).transpose(1, 0, 2)}),
    ("x_not_array", culstm.InvalidArgumentError, "x: expected an array", {"x": "abc"}),
    ("x_none", culstm.NullPointerError, "x", {"x": None}),
    ("batch_above_limit", culstm.ExceedsModelLimitError, "batch",
     {"x": np.zeros((T, 5, I), np.float32), "lengths": None, "h0": None, "c0": None}),
    ("steps_above_limit", culstm.ExceedsModelLimitError, "max_seq_len", {"x": np.zeros((9, B, I), np.float32),
                                                               "lengths": None}),
    ("length_above_t", culstm.LengthOutOfRangeError, "lengths", {"lengths": np.array([6, 1, 1], np.int32)}),
    ("length_negative", culstm.LengthOutOfRangeError, "lengths", {"lengths": np.array([5, -1, 1], np.int32)}),
    ("lengths_i64", culstm.DtypeMismatchError, "lengths", {"lengths": np.array([5, 1, 3], np.int64)}),
    ("lengths_size", culstm.ShapeMismatchError, "lengths", {"lengths": np.array([5, 1, 3, 2], np.int32)}),
    ("lengths_list_not_int", culstm.InvalidArgumentError, "lengths", {"lengths": [5, "1", 3]}),
    ("lengths_list_overflow", culstm.InvalidArgumentError, "lengths", {"lengths": [5, 2**40, 3]}),
    ("h0_shape", culstm.ShapeMismatchError, "h0", {"h0": np.zeros((L, B + 1, H), np.float32)}),
    ("h0_rank", culstm.ShapeMismatchError, "h0", {"h0": np.zeros((B, H), np.float32)}),
    ("c0_dtype", culstm.DtypeMismatchError, "c0", {"c0": np.zeros((L, B, H), np.float16)}),
    ("c0_non_contiguous", culstm.InvalidArgumentError, "c0",
     {"c0": np.zeros((L, H, B), np.float32).transpose(0, 2, 1)}),
]

OUT_CASES = [
    ("y_shape", culstm.ShapeMismatchError, "y", 0, np.full((T, B, H + 1), SENTINEL, np.float32)),
    ("h_n_dtype", culstm.DtypeMismatchError, "h_n", 1, np.full((L, B, H), SENTINEL, np.float64)),
    ("c_n_shape", culstm.ShapeMismatchError, "c_n", 2, np.full((L + 1, B, H), SENTINEL, np.float32)),
    ("y_read_only", culstm.InvalidArgumentError, "read-only", 0, read_only(np.full((T, B, H), SENTINEL,
                                                                                    np.float32))),
]


def assert_untouched(out, skip=None):
    for k, a in enumerate(out):
        if k != skip:
            assert np.all(a == SENTINEL), f"output {k} was written by a failed call"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_argument_raises_its_status_and_writes_nothing(model, good, case):
    _, exception, fragment, changes = case
    args = dict(good, **changes)
    out = sentinel_outputs()
    with pytest.raises(exception, match=fragment):
        model.forward(args["x"], args["lengths"], args["h0"], args["c0"], out=out)
    assert_untouched(out)


@pytest.mark.parametrize("case", OUT_CASES, ids=[c[0] for c in OUT_CASES])
def test_bad_output_raises_and_the_others_stay_untouched(model, good, case):
    _, exception, fragment, index, bad = case
    out = list(sentinel_outputs())
    out[index] = bad
    with pytest.raises(exception, match=fragment):
        model.forward(good["x"], good["lengths"], good["h0"], good["c0"], out=tuple(out))
    assert_untouched(out, skip=index)
    assert np.all(bad == SENTINEL)


def test_bad_keyword_arguments(model, good):
    out = sentinel_outputs()
    with pytest.raises(culstm.InvalidArgumentError, match="out"):
        model.forward(good["x"], out=out[:2])
    with pytest.raises(culstm.InvalidArgumentError, match="stream"):
        model.forward(good["x"], out=out, stream=-1)
    with pytest.raises(culstm.InvalidArgumentError, match="stream"):
        model.forward(good["x"], out=out, stream="default")
    assert_untouched(out)


@pytest.mark.parametrize("padding", [10**400, "abc", None, [1.0]])
def test_padding_value_that_is_no_float_is_refused(model, good, padding):
    out = sentinel_outputs()
    with pytest.raises(culstm.InvalidArgumentError, match="padding_value"):
        model.forward(good["x"], out=out, padding_value=padding)
    assert_untouched(out)


def test_x_above_the_limits_is_refused_before_results_are_allocated(model):
    """A broadcast x of 2**31 sequences (or 2**40 steps) takes no memory; results for it would take 64 GiB or more.
    The library's error about x comes, not NumPy's MemoryError from allocating the results first."""
    huge_batch = np.broadcast_to(np.zeros((T, 1, I), np.float32), (T, 2**31, I))
    with pytest.raises(culstm.InvalidArgumentError, match="x: must be C-contiguous"):
        model.forward(huge_batch)
    huge_steps = np.broadcast_to(np.zeros((1, B, I), np.float32), (2**40, B, I))
    with pytest.raises(culstm.InvalidArgumentError, match="x: must be C-contiguous"):
        model.forward(huge_steps)


@pytest.mark.parametrize("entries", [[["w_ih"]], [None], [5]])
def test_weight_entries_that_are_no_dicts_are_refused(entries):
    spec = culstm.LstmSpec(3, 4)
    with pytest.raises(culstm.InvalidArgumentError, match=r"weights\[0\]: expected a dict"):
        culstm.Model(spec, entries)


def test_model_file_path_with_a_nul_character_is_refused(model, tmp_path):
    """The C++ library would read the path up to the NUL: here the valid file before it."""
    path = tmp_path / "m.safetensors"
    culstm.save_model_file(path, model)
    for load in (culstm.load_model_file, culstm.import_model_file):
        with pytest.raises(culstm.InvalidArgumentError, match="NUL"):
            load(str(path) + "\0ignored")
    with pytest.raises(culstm.InvalidArgumentError, match="NUL"):
        culstm.save_model_file(str(path) + "\0ignored", model)


def test_error_message_quoting_bytes_of_a_corrupt_file_is_kept(tmp_path):
    """An ONNX attribute name that is no UTF-8 (a corrupted file): the error had an empty message, since the
    library's message could not be decoded."""
    data = (Path(__file__).parent.parent / "fuzz" / "corpus" / "onnx" / "typed_constants.onnx").read_bytes()
    assert b"hidden_size" in data
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(data.replace(b"hidden_size", b"\xff" * 11, 1))
    with pytest.raises(culstm.NotSupportedError, match=r"attribute '\\xff.*unknown LSTM attribute"):
        culstm.import_model_file(path)


def test_producer_handing_out_one_capsule_twice_is_refused_not_freed_twice():
    """A __dlpack__ that returns the capsule it keeps: nanobind imported (and later freed) the same tensor on every
    import, a segmentation fault within two calls. Run in a child interpreter: a crash fails this test only."""
    result = run_limited("import numpy as np, culstm\n"
                         "spec = culstm.LstmSpec(3, 4, bias=False)\n"
                         "model = culstm.Model(spec, [{'w_ih': np.ones((16, 3), np.float32),\n"
                         "                             'w_hh': np.ones((16, 4), np.float32)}])\n"
                         "class Reuse:\n"
                         "    def __init__(self, a):\n"
                         "        self.capsule = a.__dlpack__()\n"
                         "    def __dlpack__(self, *args, **kwargs):\n"
                         "        return self.capsule\n"
                         "    def __dlpack_device__(self):\n"
                         "        return (1, 0)\n"
                         "x = Reuse(np.ones((2, 1, 3), np.float32))\n"
                         "out = (np.zeros((2, 1, 4), np.float32), np.zeros((1, 1, 4), np.float32),\n"
                         "       np.zeros((1, 1, 4), np.float32))\n"
                         "for _ in range(4):\n"
                         "    try:\n"
                         "        model.forward(x, out=out)\n"
                         "    except culstm.InvalidArgumentError as e:\n"
                         "        print('refused:', e)\n")
    assert result.returncode == 0, result.stderr
    # Its one capsule is consumed by the first import (reading x's shape), after which it is no array.
    assert result.stdout.count("refused: x: expected an array") == 4, result.stdout


def test_x_with_only_dlpack_gets_its_results_or_a_message(model, good):
    """Results were silently None: the shape to allocate them was read from x.shape only."""
    with pytest.raises(culstm.InvalidArgumentError, match="pass out="):
        model.forward(DlpackOnly(good["x"]))
    out = sentinel_outputs()
    got = model.forward(DlpackOnly(good["x"]), out=out)
    for g, w in zip(got, model.forward(good["x"])):
        assert np.array_equal(g, w)


def test_read_only_buffer_as_output_is_refused_and_not_written(model, good):
    """A memoryview of a bytes object (immutable) was accepted as y and written through; NumPy's flags were the
    only read-only check."""
    y_shape = (T, B, H)
    frozen = bytes(4 * T * B * H)
    view = memoryview(frozen).cast("B").cast("f", y_shape)
    with pytest.raises(culstm.InvalidArgumentError, match="y: the output array is read-only"):
        model.forward(good["x"], out=(view, None, None))
    assert frozen == bytes(len(frozen))
    writable = memoryview(bytearray(len(frozen))).cast("B").cast("f", y_shape)
    got, _, _ = model.forward(good["x"], out=(writable, None, None))
    assert got is writable and np.array_equal(np.asarray(writable), model.forward(good["x"])[0])


def test_closed_model_refuses_calls(model, good):
    out = sentinel_outputs()
    model.close()
    with pytest.raises(culstm.InvalidArgumentError, match="closed"):
        model.forward(good["x"], out=out)
    with pytest.raises(culstm.InvalidArgumentError, match="closed"):
        model.plan()
    assert_untouched(out)
    model.close()  # closing twice is harmless


def test_cuda_backend_without_a_gpu_is_backend_unavailable(rng):
    if culstm._culstm.cuda_device_count() > 0:
        pytest.skip("a GPU is present: the cuda backend is available")
    with pytest.raises(culstm.BackendUnavailableError):
        random_model(rng, options={"backend": "cuda"})


def test_caller_workspace_too_small_is_refused_and_a_large_enough_one_is_used(model, good):
    """The extension's workspace= path (culstm.torch passes PyTorch-allocated workspaces on CUDA) on the CPU."""
    x, lengths = good["x"], good["lengths"]
    want = model.forward(x, lengths)
    size = model._model.workspace_size("cpu", B, T)
    assert size > 0
    out = sentinel_outputs()
    with pytest.raises(culstm.WorkspaceTooSmallError):
        model._model.forward(x, lengths, None, None, *out, np.empty(size - 1, np.uint8), 0, 0.0)
    assert_untouched(out)
    with pytest.raises(culstm.InvalidArgumentError, match="workspace"):
        model._model.forward(x, lengths, None, None, *out, np.empty((size, 2), np.uint8)[:, 0], 0, 0.0)
    assert_untouched(out)
    model._model.forward(x, lengths, None, None, *out, np.empty(size, np.uint8), 0, 0.0)
    for got, w in zip(out, want):
        assert np.array_equal(got, w)


def run_limited(code, memory_bytes=2 << 30):
    """Runs `code` in a fresh interpreter whose address space is capped, so that a call that would allocate tens of
    gigabytes fails there (MemoryError, a non-zero exit) instead of exhausting the machine running the tests."""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          preexec_fn=limit)


def test_weights_of_the_wrong_count_for_a_huge_spec_are_refused_before_allocating():
    """A valid spec of 100 layers of 16384 x 16384 (400 GB of weights) given one weight entry: the count is refused
    without first allocating the spec's weights (it was an out-of-memory kill)."""
    result = run_limited("import culstm\n"
                         "spec = culstm.LstmSpec(16384, 16384, num_layers=100)\n"
                         "try:\n"
                         "    culstm.Model(spec, [{}])\n"
                         "except culstm.ShapeMismatchError as e:\n"
                         "    print('refused:', e)\n")
    assert result.returncode == 0, result.stderr
    assert "refused: weights: expected 100" in result.stdout


def test_a_huge_broadcast_weight_is_refused_before_it_is_converted():
    """np.broadcast_to of 2**31 values takes no memory; its float32 copy (made for any array that is not already
    C-contiguous float32) took 8 GiB before the library refused its size: an out-of-memory kill."""
    result = run_limited("import numpy as np, culstm\n"
                         "spec = culstm.LstmSpec(3, 4)\n"
                         "for huge in (np.broadcast_to(np.float32(0), (2**31, 1)), np.broadcast_to(0.0, (2**31,))):\n"
                         "    try:\n"
                         "        culstm.Model(spec, [{'w_ih': np.zeros((16, 3), np.float32), 'w_hh': huge}])\n"
                         "    except culstm.ShapeMismatchError as e:\n"
                         "        print('refused:', e)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("refused: weights[0].w_hh: 2147483648 values") == 2, result.stdout


def test_a_bad_spec_is_refused_before_its_weights_are_allocated():
    result = run_limited("import culstm\n"
                         "for spec in (culstm.LstmSpec(3, -5), culstm.LstmSpec(3, 5, num_layers=10**9)):\n"
                         "    try:\n"
                         "        culstm.Model(spec, [])\n"
                         "    except culstm.InvalidSpecError as e:\n"
                         "        print('refused:', e)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("refused:") == 2, result.stdout
