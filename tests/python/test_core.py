"""The framework-neutral core on NumPy arrays: results bit for bit those of the C++ reference (the culstm CLI on the
same model file and inputs), model files, spec fields, plan, info, threads and memory."""

import os
import resource
import subprocess
import threading

import numpy as np
import pytest

import culstm
from conftest import random_model, run_in_threads

CLI = os.environ.get("CULSTM_CLI")

# (CLI --config, whether batch-first): sizes, projection, layers, directions, variants, mixed lengths with 0 and T.
CLI_CASES = [
    ("input=3,hidden=5,layers=1,dir=fwd,batch=1,steps=1", False),
    ("input=3,hidden=5,proj=2,layers=2,dir=bi,layout=batch,peepholes=1,lengths=mixed,states=1,batch=4,steps=6,"
     "gate_clip=3", True),
    ("input=7,hidden=9,layers=3,dir=rev,lengths=mixed,states=1,batch=5,steps=7,cell_clip=2,input_forget=1", False),
    ("input=4,hidden=6,layers=2,dir=bi,bias=0,gate_act=hard_sigmoid,cell_act=softsign,hidden_act=elu,batch=3,"
     "steps=4,states=1,lengths=mixed", False),
]


@pytest.mark.skipif(not CLI, reason="CULSTM_CLI (the culstm program) not given")
@pytest.mark.parametrize("config,batch_first", CLI_CASES)
def test_numpy_matches_cli_reference_bit_for_bit(tmp_path, config, batch_first):
    def cli(*args):
        subprocess.run([CLI, *args], cwd=tmp_path, check=True, capture_output=True)

    has_states = "states=1" in config
    has_lengths = "lengths=mixed" in config
    example = ["make-example", "--config", config, "--weights", "w.safetensors", "--input", "x.npy"]
    run = ["run", "--weights", "w.safetensors", "--input", "x.npy", "--output", "y.npy", "--hn", "hn.npy",
           "--cn", "cn.npy", "--backend", "reference"]
    if has_lengths:
        example += ["--lengths", "l.npy"]
        run += ["--lengths", "l.npy"]
    if has_states:
        example += ["--h0", "h0.npy", "--c0", "c0.npy"]
        run += ["--h0", "h0.npy", "--c0", "c0.npy"]
    if batch_first:
        run += ["--batch-first"]
    cli(*example)
    cli(*run)

    model = culstm.load_model_file(tmp_path / "w.safetensors", backend="reference")
    assert model.spec.batch_first == batch_first
    load = lambda name: np.load(tmp_path / name)  # noqa: E731
    y, h_n, c_n = model.forward(load("x.npy"), load("l.npy") if has_lengths else None,
                                load("h0.npy") if has_states else None, load("c0.npy") if has_states else None)
    for name, got in (("y.npy", y), ("hn.npy", h_n), ("cn.npy", c_n)):
        want = load(name)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"{name} differs from the CLI's"


def test_forward_writes_out_and_returns_it(rng):
    model = random_model(rng, proj_size=2, num_layers=2, bidirectional=True)
    x = rng.standard_normal((4, 3, 3)).astype(np.float32)
    y, h_n, c_n = model.forward(x, [4, 1, 2])
    out = (np.full_like(y, 7), np.full_like(h_n, 7), np.full_like(c_n, 7))
    got = model.forward(x, [4, 1, 2], out=out)
    assert all(g is o for g, o in zip(got, out))
    for a, b in zip(out, (y, h_n, c_n)):
        assert np.array_equal(a, b)
    # Steps past a sequence's length hold padding_value.
    y2, _, _ = model.forward(x, [4, 1, 2], padding_value=-3.0)
    assert np.all(y2[1:, 1] == -3.0) and np.all(y2[2:, 2] == -3.0)


def test_h0_c0_change_the_result(rng):
    model = random_model(rng, num_layers=2)
    x = rng.standard_normal((3, 2, 3)).astype(np.float32)
    y0, _, _ = model.forward(x)
    zeros = np.zeros((2, 2, 5), np.float32)
    y_zero, _, _ = model.forward(x, None, zeros, zeros)
    assert np.array_equal(y0, y_zero)
    y1, _, _ = model.forward(x, None, np.ones((2, 2, 5), np.float32), zeros)
    assert not np.array_equal(y0, y1)


def test_spec_fields_and_pytorch_names():
    spec = culstm.LstmSpec(input_size=3, hidden_size=8, num_layers=2, bias=False, batch_first=True,
                           bidirectional=True, proj_size=4, dtype="bf16", gate_activation=("hard_sigmoid", 0.25),
                           cell_activation="softsign", hidden_activation=culstm.Activation("elu", 0.5),
                           gate_clip=2.5, cell_clip=1.5, peepholes=True, input_forget=False, math="allow_tf32")
    assert (spec.input_size, spec.hidden_size, spec.num_layers, spec.bias, spec.proj_size) == (3, 8, 2, False, 4)
    assert spec.layout == "batch_major" and spec.batch_first
    assert spec.direction == "bidirectional" and spec.bidirectional and spec.num_directions() == 2
    assert spec.dtype == "bf16" and spec.math == "allow_tf32"
    assert spec.gate_activation == culstm.Activation("hard_sigmoid", 0.25, 0.5)  # ONNX's default beta kept
    assert spec.cell_activation.kind == "softsign"
    assert spec.hidden_activation.alpha == 0.5
    assert spec.gate_clip == 2.5 and spec.cell_clip == 1.5 and spec.peepholes
    assert spec.output_size() == 8 and spec.recurrent_size() == 4
    assert spec.replace(batch_first=False).layout == "seq_major"
    assert spec.replace(hidden_size=9).hidden_size == 9
    assert spec == spec.replace()
    assert culstm.LstmSpec(2, 3, direction="reverse").direction == "reverse"
    with pytest.raises(culstm.InvalidArgumentError, match="direction"):
        culstm.LstmSpec(2, 3, direction="sideways")
    with pytest.raises(culstm.InvalidArgumentError, match="contradicts"):
        culstm.LstmSpec(2, 3, bidirectional=True, direction="forward")
    with pytest.raises(culstm.InvalidArgumentError, match="activation"):
        culstm.LstmSpec(2, 3, gate_activation="swish")


def test_invalid_spec_and_weights_fail_at_construction(rng):
    with pytest.raises(culstm.InvalidSpecError, match="hidden_size"):
        culstm.Model(culstm.LstmSpec(3, 0), [{}])
    spec = culstm.LstmSpec(3, 4)
    with pytest.raises(culstm.ShapeMismatchError, match="w_ih"):
        culstm.Model(spec, [{"w_ih": np.zeros((16, 2), np.float32), "w_hh": np.zeros((16, 4), np.float32),
                             "b_ih": np.zeros(16), "b_hh": np.zeros(16)}])
    with pytest.raises(culstm.ShapeMismatchError, match="entries"):
        culstm.Model(spec, [])
    with pytest.raises(culstm.InvalidArgumentError, match="w_xx"):
        culstm.Model(spec, [{"w_xx": np.zeros(1)}])
    with pytest.raises(culstm.DtypeMismatchError, match="w_ih"):
        culstm.Model(spec, [{"w_ih": "not numbers"}])
    bad = np.zeros((16, 3), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(culstm.InvalidArgumentError):
        culstm.Model(spec, [{"w_ih": bad, "w_hh": np.zeros((16, 4), np.float32), "b_ih": np.zeros(16),
                             "b_hh": np.zeros(16)}])
    with pytest.raises(culstm.InvalidArgumentError, match="backend"):
        random_model(rng, options={"backend": "tpu"})
    with pytest.raises(culstm.InvalidArgumentError, match="incompatible"):
        random_model(rng, options={"max_batch": "many"})  # nanobind would say TypeError


def test_model_file_round_trip_and_import(tmp_path, rng):
    model = random_model(rng, proj_size=3, num_layers=2, bidirectional=True, peepholes=True)
    path = tmp_path / "m.safetensors"
    culstm.save_model_file(path, model)
    loaded = culstm.load_model_file(path)
    imported = culstm.import_model_file(path, naming="pytorch")
    assert loaded.spec == model.spec == imported.spec
    for a, b in zip(loaded.weights, model.weights):
        for name in a:
            assert np.array_equal(a[name], b[name]), name
    x = rng.standard_normal((3, 2, 3)).astype(np.float32)
    for got, want in zip(loaded.forward(x), model.forward(x)):
        assert np.array_equal(got, want)
    with pytest.raises(culstm.IoError):
        culstm.load_model_file(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    with pytest.raises(culstm.FormatError):
        culstm.load_model_file(tmp_path / "junk.safetensors")
    with pytest.raises(culstm.InvalidArgumentError, match="naming"):
        culstm.import_model_file(path, naming="caffe")


def test_plan_info_and_errors_hierarchy(rng):
    model = random_model(rng, num_layers=2)
    assert "engine=reference" in model.plan()
    assert "engine=reference" in model.plan("cpu")
    with pytest.raises(culstm.InvalidArgumentError, match="device"):
        model.plan("tpu:0")
    text = culstm.info()
    assert "backend reference available" in text and culstm.version() in text
    assert issubclass(culstm.ShapeMismatchError, culstm.Error) and issubclass(culstm.Error, RuntimeError)
    assert culstm.ShapeMismatchError.code_name == "ShapeMismatch"
    with pytest.raises(culstm.InvalidArgumentError):
        model.plan(7)  # not a string at all: nanobind's TypeError must not be what the user gets
    with model:
        pass
    assert model.closed


def test_threads_sharing_a_model_give_single_threaded_bits(rng):
    model = random_model(rng, num_layers=2, bidirectional=True, proj_size=2)
    inputs = [rng.standard_normal((6, 3, 3)).astype(np.float32) for _ in range(8)]
    lengths = [6, 2, 4]
    expected = [model.forward(x, lengths) for x in inputs]
    failures = []

    def worker(k):
        for _ in range(20):
            for i, x in enumerate(inputs):
                got = model.forward(x, lengths)
                if not all(np.array_equal(g, e) for g, e in zip(got, expected[i])):
                    failures.append((k, i))

    run_in_threads(worker)
    assert not failures


def _rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_ten_thousand_calls_leak_no_memory(rng):
    model = random_model(rng)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    out = tuple(np.empty_like(a) for a in model.forward(x, [4, 2]))
    bad = x.astype(np.float64)
    for _ in range(1000):  # warm-up: allocator pools, lazily made contexts
        model.forward(x, [4, 2], out=out)
    before = _rss_kib()
    for i in range(10000):
        model.forward(x, [4, 2])
        if i % 10 == 0:
            with pytest.raises(culstm.DtypeMismatchError):
                model.forward(bad)
    growth = _rss_kib() - before
    assert growth < 2048, f"RSS grew by {growth} KiB over 10k calls"


def test_forward_releases_the_gil(rng):
    """Another Python thread keeps running while a long forward is in the library: the longest pause of this
    thread's loop stays far below the call's duration (holding the GIL would pause it for the whole call)."""
    import time
    model = random_model(rng, input_size=64, hidden_size=128)
    x = rng.standard_normal((2000, 4, 64)).astype(np.float32)
    done = threading.Event()
    duration = []

    def run():
        start = time.perf_counter()
        model.forward(x)
        duration.append(time.perf_counter() - start)
        done.set()

    worker = threading.Thread(target=run)
    last = time.perf_counter()
    longest_pause = 0.0
    worker.start()
    while not done.is_set():
        now = time.perf_counter()
        longest_pause = max(longest_pause, now - last)
        last = now
    worker.join()
    assert duration[0] > 0.2, "the call is too short to tell"
    assert longest_pause < duration[0] / 4, f"this thread paused {longest_pause:.3f} s of a {duration[0]:.3f} s call"


FIXTURES = os.path.join(os.path.dirname(__file__), "..", "conformance", "fixtures")


@pytest.mark.parametrize("case", ["act_all_alpha_beta", "clip_peepholes", "layout1_bidirectional_lens"])
def test_import_onnx_file_and_its_safetensors_agree(case, rng):
    onnx = os.path.join(FIXTURES, "onnxruntime", case + ".onnx")
    from_onnx = culstm.import_model_file(onnx, onnx_node="lstm")
    from_tensors = culstm.import_model_file(onnx[:-5] + ".safetensors", naming="onnx")
    assert from_onnx.spec == from_tensors.spec
    for a, b in zip(from_onnx.weights, from_tensors.weights):
        for name in a:
            assert np.array_equal(a[name], b[name]), name
    spec = from_onnx.spec
    x = rng.standard_normal((2, 3, spec.input_size)).astype(np.float32)
    for got, want in zip(from_onnx.forward(x), from_tensors.forward(x)):
        assert np.array_equal(got, want)
    with pytest.raises(culstm.InvalidArgumentError, match="nope"):
        culstm.import_model_file(onnx, onnx_node="nope")


def test_import_keras_naming_detected_and_prefix_checked():
    path = os.path.join(FIXTURES, "keras", "lstm_mask.safetensors")
    model = culstm.import_model_file(path)
    assert (model.spec.input_size, model.spec.hidden_size, model.spec.batch_first) == (4, 5, True)
    with pytest.raises(culstm.FormatError, match="nope/"):
        culstm.import_model_file(path, prefix="nope/")


class Producer:
    """A DLPack producer that is neither NumPy nor PyTorch (as CuPy or JAX arrays are to culstm)."""

    def __init__(self, array):
        self.array = array
        self.shape = array.shape

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def test_any_dlpack_producer_with_out(rng):
    model = random_model(rng, bidirectional=True)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    want = model.forward(x)
    out = tuple(np.zeros_like(w) for w in want)
    with pytest.raises(culstm.InvalidArgumentError, match="out="):
        model.forward(Producer(x))  # culstm cannot allocate in an unknown framework
    model.forward(Producer(x), Producer(np.array([4, 2], np.int32)), out=tuple(Producer(o) for o in out))
    model.forward(Producer(x), out=tuple(Producer(o) for o in out))
    for got, w in zip(out, want):
        assert np.array_equal(got, w)


class ArrayApiProducer(Producer):
    """A CPU array of a framework that follows the array API standard (as JAX's are): culstm allocates its results
    and hands them back through the framework's from_dlpack."""

    class Namespace:
        @staticmethod
        def from_dlpack(array):
            return ArrayApiProducer(np.from_dlpack(array))

    def __init__(self, array):
        super().__init__(array)
        self.dtype = array.dtype

    def __array_namespace__(self, api_version=None):
        return ArrayApiProducer.Namespace


def test_array_api_producer_gets_results_in_its_own_framework(rng):
    model = random_model(rng, proj_size=2, num_layers=2)
    x = rng.standard_normal((5, 3, 3)).astype(np.float32)
    want = model.forward(x)
    got = model.forward(ArrayApiProducer(x))
    for g, w in zip(got, want):
        assert isinstance(g, ArrayApiProducer)
        assert np.array_equal(g.array, w)
    # out= entries given are written and returned as given; the rest come back in the framework
    h_n = np.full_like(want[1], np.nan)
    got = model.forward(ArrayApiProducer(x), out=(None, h_n, None))
    assert got[1] is h_n and np.array_equal(h_n, want[1])
    assert isinstance(got[0], ArrayApiProducer) and np.array_equal(got[0].array, want[0])


def test_jax_arrays_in_and_out(rng):
    jax = pytest.importorskip("jax")  # not in the CI venv; run where JAX is installed
    # JAX's CPU arrays, which this is about. Where JAX has its CUDA plugin (the GPU machine's image), its default
    # device is the GPU (culstm then asks for out=), and starting that backend would take most of the GPU's memory
    # (XLA preallocates) from the tests that follow in this process: only JAX's CPU backend is started.
    jax.config.update("jax_platforms", "cpu")
    model = random_model(rng, bidirectional=True)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    got = model.forward(jax.device_put(x, jax.devices("cpu")[0]), lengths=[4, 1])
    want = model.forward(x, lengths=[4, 1])
    for g, w in zip(got, want):
        assert type(g).__module__.startswith("jax")
        assert np.array_equal(np.asarray(g), w)
