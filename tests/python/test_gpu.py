"""culstm.torch and the core on CUDA tensors: the cuda backend against the CPU reference, stream semantics (work on
the current stream, no host synchronization), CUDA graph capture, no device allocation after warm-up, device
errors. Skips without a usable CUDA device; CULSTM_REQUIRE_GPU=1 (tools/gpu-session.sh) makes that a failure.

NOT YET RUN ON A GPU: written in a session without one. Its bounds are the C++ GPU tests' (provisional there too:
tests/gpu/cuda_backend_test.cpp)."""

import os

import pytest

from conftest import import_torch, run_in_threads

torch = import_torch()
import culstm  # noqa: E402
import culstm.torch  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402



@pytest.fixture(autouse=True)
def require_gpu():
    """Each test skips without a CUDA device (one by one, so that pytest still counts them: a whole-module skip
    collects nothing, which pytest reports as exit code 5), or fails under CULSTM_REQUIRE_GPU."""
    if not torch.cuda.is_available():
        if os.environ.get("CULSTM_REQUIRE_GPU"):
            pytest.fail("CULSTM_REQUIRE_GPU is set but torch sees no CUDA device", pytrace=False)
        pytest.skip("no CUDA device")

CUDA = torch.device("cuda")
# ||out - ref|| / ||ref|| against the float64 CPU reference (tests/gpu/cuda_backend_test.cpp's tolerance_for).
BOUNDS = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def relative_error(got, want):
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    return ((got - want).norm() / want.norm().clamp_min(1e-30)).item()


def pair(dtype=torch.float32, **kwargs):
    """(culstm LSTM on the GPU, the same on the CPU in f32: its reference backend)."""
    torch.manual_seed(0)
    cpu = culstm.torch.LSTM(**kwargs)
    gpu = culstm.torch.LSTM(**kwargs)
    gpu.load_state_dict(cpu.state_dict())
    return gpu.to(CUDA, dtype), cpu


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layers,bidirectional,proj,batch_first", [(1, False, 0, False), (2, True, 3, True),
                                                                  (3, True, 0, False)])
def test_cuda_matches_reference(dtype, layers, bidirectional, proj, batch_first):
    gpu, cpu = pair(dtype, input_size=5, hidden_size=16, num_layers=layers, bidirectional=bidirectional,
                    proj_size=proj, batch_first=batch_first)
    B, T = 7, 9
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5))
    D = 2 if bidirectional else 1
    hx = (torch.randn(layers * D, B, proj or 16), torch.randn(layers * D, B, 16))
    lengths = torch.tensor([9, 1, 4, 9, 2, 7, 3])
    with torch.inference_mode():
        # The CPU reference runs on the values the GPU model holds (rounded to dtype).
        cpu.load_state_dict({k: v.float().cpu() for k, v in gpu.state_dict().items()})
        xg, hg = x.to(CUDA, dtype), tuple(h.to(CUDA, dtype) for h in hx)
        want = cpu(xg.float().cpu(), tuple(h.float().cpu() for h in hg), lengths=lengths)
        got = gpu(xg, hg, lengths=lengths)
        torch.cuda.synchronize()
    assert got[0].device.type == "cuda" and got[0].dtype == dtype
    for g, w, what in ((got[0], want[0], "y"), (got[1][0], want[1][0], "h_n"), (got[1][1], want[1][1], "c_n")):
        err = relative_error(g, w)
        assert err <= BOUNDS[dtype], f"{what}: relative error {err:.3g} > {BOUNDS[dtype]}"


def test_packed_sequence_on_cuda_matches_nn_lstm_on_cpu():
    torch.manual_seed(1)
    ref = torch.nn.LSTM(4, 8, 2, bidirectional=True)
    ours = culstm.torch.LSTM.from_module(ref).to(CUDA)
    lengths = torch.tensor([3, 1, 6, 2, 6, 1])
    padded = torch.randn(6, 6, 4)
    packed = pack_padded_sequence(padded, lengths, enforce_sorted=False)
    with torch.inference_mode():
        want, (wh, _) = ref(packed)
        got, (gh, _) = ours(packed.to(CUDA))
    assert relative_error(got.data, want.data) <= 1e-5
    assert relative_error(gh, wh) <= 1e-5


def test_work_is_enqueued_on_the_current_stream_without_synchronizing():
    lstm = culstm.torch.LSTM(64, 256, 2).to(CUDA)
    x = torch.randn(50, 8, 64, device=CUDA)
    torch.cuda.synchronize()  # x is made on the default stream
    side = torch.cuda.Stream()
    with torch.inference_mode(), torch.cuda.stream(side):
        want = lstm(x)[0]  # warm-up: model upload, context, workspace
        side.synchronize()
        torch.cuda._sleep(2_000_000_000)  # keeps `side` busy for ~1 s: a host sync would wait for it
        got = lstm(x)[0]
        assert not side.query(), "the call synchronized with its stream (or ran elsewhere)"
        assert torch.cuda.current_stream() == side
    side.synchronize()
    assert torch.equal(got, want)


def test_cuda_graph_capture_and_replay():
    lstm = culstm.torch.LSTM(32, 128, 2, batch_first=True).to(CUDA)
    static_x = torch.randn(4, 20, 32, device=CUDA)
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    with torch.inference_mode():
        # Warm up on the stream that will capture: culstm's per-(thread, stream) context is made outside the
        # capture (docs/python.md).
        with torch.cuda.stream(stream):
            for _ in range(3):
                lstm(static_x)
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            static_y, (static_h, _) = lstm(static_x)
        for _ in range(3):
            new_x = torch.randn_like(static_x)
            static_x.copy_(new_x)
            graph.replay()
            torch.cuda.synchronize()
            want_y, (want_h, _) = lstm(new_x)
            assert torch.equal(static_y, want_y)
            assert torch.equal(static_h, want_h)


def test_capture_without_a_warm_up_is_refused_with_its_reason():
    lstm = culstm.torch.LSTM(8, 16).to(CUDA)
    x = torch.randn(5, 2, 8, device=CUDA)
    torch.cuda.synchronize()
    with torch.inference_mode():
        graph = torch.cuda.CUDAGraph()
        with pytest.raises(culstm.InvalidArgumentError, match="before capturing"):
            with torch.cuda.graph(graph):
                lstm(x)
        y, _ = lstm(x)  # outside a capture the same call builds and runs
    assert y.shape == (5, 2, 16) and torch.isfinite(y).all()


def test_repeated_calls_allocate_no_device_memory():
    lstm = culstm.torch.LSTM(32, 128, 2, bidirectional=True).to(CUDA)
    x = torch.randn(30, 16, 32, device=CUDA)
    with torch.inference_mode():
        for _ in range(3):
            lstm(x)
        torch.cuda.synchronize()
        free_before, _ = torch.cuda.mem_get_info()
        reserved_before = torch.cuda.memory_reserved()
        for _ in range(200):
            lstm(x)
        torch.cuda.synchronize()
        free_after, _ = torch.cuda.mem_get_info()
    assert free_after == free_before, "device memory was allocated outside PyTorch's cache"
    assert torch.cuda.memory_reserved() == reserved_before


def test_core_model_on_cuda_arrays_and_device_errors():
    lstm = culstm.torch.LSTM(3, 4).to(CUDA)
    model = culstm.Model(culstm.LstmSpec(3, 4), [{"w_ih": lstm.weight_ih_l0.detach().cpu(),
                                                   "w_hh": lstm.weight_hh_l0.detach().cpu(),
                                                   "b_ih": lstm.bias_ih_l0.detach().cpu(),
                                                   "b_hh": lstm.bias_hh_l0.detach().cpu()}])
    x = torch.randn(5, 2, 3, device=CUDA)
    with torch.inference_mode():
        y, (h, c) = lstm(x)
        cy, ch, cc = model.forward(x)  # the core on CUDA tensors: results on x's device, on the current stream
        assert cy.device == x.device and torch.equal(cy, y) and torch.equal(ch, h) and torch.equal(cc, c)
        out = tuple(torch.full_like(t, 7.0) for t in (y, h, c))
        with pytest.raises(culstm.DeviceMismatchError, match="h0"):
            model.forward(x, None, torch.zeros(1, 2, 4), torch.zeros(1, 2, 4, device=CUDA), out=out)
        with pytest.raises(culstm.DeviceMismatchError, match="y"):
            model.forward(x, out=(torch.empty(5, 2, 4), out[1], out[2]))
        with pytest.raises(culstm.DeviceMismatchError, match="lengths"):
            model.forward(x, torch.tensor([5, 2], dtype=torch.int32, device=CUDA), out=out)
        with pytest.raises(culstm.DeviceMismatchError):
            culstm.Model(culstm.LstmSpec(3, 4), model.weights, backend="reference").forward(x)
        torch.cuda.synchronize()
        assert all(bool((o == 7.0).all()) for o in out)
        with pytest.raises(culstm.DeviceMismatchError, match="h0"):
            lstm(x, (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4, device=CUDA)))
        with pytest.raises(culstm.DeviceMismatchError, match="parameters"):
            lstm(x.cpu())


def test_explicit_stream_gets_the_memory_culstm_allocates():
    """forward(stream=S) allocates its results (and workspace) on S: PyTorch's allocator hands a block freed on one
    stream to the next allocation on that stream without waiting, so memory allocated on the current stream and
    written on S could be handed out again while S still runs."""
    lstm = culstm.torch.LSTM(16, 32).to(CUDA)
    model = culstm.Model(culstm.LstmSpec(16, 32), [{n: getattr(lstm, p).detach().cpu() for n, p in
                                                     (("w_ih", "weight_ih_l0"), ("w_hh", "weight_hh_l0"),
                                                      ("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0"))}])
    x = torch.randn(10, 4, 16, device=CUDA)
    side = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.inference_mode():
        got = model.forward(x, stream=side)
        side.synchronize()
        want = model.forward(x)
        torch.cuda.synchronize()
    segments = torch.cuda.memory_snapshot()

    def stream_of(t):
        p = t.data_ptr()
        return next(s["stream"] for s in segments if s["address"] <= p < s["address"] + s["total_size"])

    assert [stream_of(t) for t in got] == [side.cuda_stream] * 3
    assert [stream_of(t) for t in want] == [torch.cuda.current_stream().cuda_stream] * 3
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_module_on_a_device_that_is_not_the_current_one():
    """As nn.LSTM: a module and input on cuda:1 run while cuda:0 is current (PyTorch exports only tensors of the
    current device through DLPack: the call makes x's device current)."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    gpu, cpu = pair(input_size=5, hidden_size=16, num_layers=2)
    gpu = gpu.to("cuda:1")
    x = torch.randn(9, 3, 5)
    with torch.cuda.device(0), torch.inference_mode():
        got = gpu(x.to("cuda:1"))
        assert torch.cuda.current_device() == 0
        want = cpu(x)
    assert got[0].device == torch.device("cuda:1")
    for g, w, what in ((got[0], want[0], "y"), (got[1][0], want[1][0], "h_n"), (got[1][1], want[1][1], "c_n")):
        err = relative_error(g, w)
        assert err <= BOUNDS[torch.float32], f"{what}: relative error {err:.3g}"


def test_threads_sharing_one_module_on_cuda():
    lstm = culstm.torch.LSTM(16, 64, 2).to(CUDA)
    inputs = [torch.randn(12, 4, 16, device=CUDA) for _ in range(4)]
    with torch.inference_mode():
        expected = [lstm(x)[0] for x in inputs]
    torch.cuda.synchronize()
    failures = []

    def worker(_):
        stream = torch.cuda.Stream()
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(10):
                for x, e in zip(inputs, expected):
                    y = lstm(x)[0]
                    stream.synchronize()
                    if not torch.equal(y, e):
                        failures.append(1)

    run_in_threads(worker)
    assert not failures


def test_compile_and_export_on_cuda():
    """The op on CUDA tensors through torch.compile (aot_eager: fake CUDA tensors, no Triton needed; the venv's
    PyTorch has no Triton) and torch.export."""
    lstm = culstm.torch.LSTM(8, 16, 2, bidirectional=True).to(CUDA).eval()
    x = torch.randn(6, 3, 8, device=CUDA)
    with torch.inference_mode():
        want = lstm(x)
    with torch.no_grad():
        got = torch.compile(lstm, fullgraph=True, backend="aot_eager")(x)
        exported = torch.export.export(lstm, (x,)).module()(x)
    for result in (got, exported):
        assert torch.equal(result[0], want[0])
        assert torch.equal(result[1][0], want[1][0]) and torch.equal(result[1][1], want[1][1])


def test_compile_reduce_overhead_records_the_op_in_cuda_graphs():
    """torch.compile's CUDA graphs (mode="reduce-overhead", inductor's cudagraph trees: a warm-up run on their own
    stream, then the op recorded on that stream and replayed) give the eager results bit for bit."""
    from torch._dynamo.utils import counters
    lstm = culstm.torch.LSTM(8, 16, 2).to(CUDA).eval()
    compiled = torch.compile(lstm, mode="reduce-overhead", fullgraph=True)
    counters.clear()
    with torch.no_grad():
        for _ in range(4):  # warm-up, record, replays
            x = torch.randn(6, 3, 8, device=CUDA)
            y, (h, c) = compiled(x)
            got = (y.clone(), h.clone(), c.clone())  # the graph's outputs are overwritten by its next replay
            del y, h, c
            want_y, (want_h, want_c) = lstm(x)
            for g, w in zip(got, (want_y, want_h, want_c)):
                assert torch.equal(g, w)
    # Inductor ran the op without CUDA graphs when it skipped them (it counts and logs why): then nothing was tested.
    assert counters["inductor"]["cudagraph_skips"] == 0
