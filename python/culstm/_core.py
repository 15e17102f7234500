"""The framework-neutral core: LstmSpec, Model and model files over the C++ API (DESIGN.md §7).

Python maps arguments and results only: every check on shapes, dtypes, lengths and devices is the library's, raised
as the culstm.Error subclass of its StatusCode with its message."""

import array
import contextlib
import sys
from collections.abc import Mapping

from . import _culstm
from ._errors import BY_CODE_NAME, error

Activation = _culstm.Activation

# Fields of the C++ LstmSpec, in the order of include/culstm/spec.h.
_SPEC_FIELDS = ("input_size", "hidden_size", "proj_size", "num_layers", "direction", "bias", "layout",
                "gate_activation", "cell_activation", "hidden_activation", "gate_clip", "cell_clip", "peepholes",
                "input_forget", "dtype", "math")


def _activation(what, value):
    """An Activation from an Activation, a name ("tanh") or a tuple (name, alpha[, beta])."""
    if isinstance(value, Activation):
        return value
    if isinstance(value, str):
        return Activation(value)
    if isinstance(value, tuple) and 1 <= len(value) <= 3 and isinstance(value[0], str):
        return Activation(*value)
    raise error("InvalidArgument", f"{what}: expected an Activation, a name or (name, alpha[, beta]); got {value!r}")


class LstmSpec(_culstm._Spec):
    """What an LSTM network is: every field of the C++ LstmSpec (include/culstm/spec.h), by keyword.

    PyTorch's names work where PyTorch has the option: `batch_first` sets `layout`, `bidirectional` sets
    `direction`. Enumerations are the library's names: direction "forward" | "reverse" | "bidirectional", layout
    "seq_major" | "batch_major", dtype "f32" | "f16" | "bf16", math "strict_f32" | "allow_tf32". Activations are
    names ("sigmoid", "hard_sigmoid", ...), (name, alpha[, beta]) tuples or Activation objects. Arguments after
    hidden_size are keyword-only (nn.LSTM's positional order has dropout, which a spec has not). Nothing is checked
    here: Model() (or validate()) reports a bad spec with the library's message."""

    def __init__(self, input_size=0, hidden_size=0, *, num_layers=1, bias=True, batch_first=None,
                 bidirectional=None, proj_size=0, dtype="f32", direction=None, layout=None, gate_activation="sigmoid",
                 cell_activation="tanh", hidden_activation="tanh", gate_clip=None, cell_clip=None, peepholes=False,
                 input_forget=False, math="strict_f32"):
        super().__init__()
        if bidirectional is not None and direction is not None and \
                (direction == "bidirectional") != bool(bidirectional):
            raise error("InvalidArgument", f"bidirectional={bidirectional} contradicts direction={direction!r}")
        if batch_first is not None and layout is not None and (layout == "batch_major") != bool(batch_first):
            raise error("InvalidArgument", f"batch_first={batch_first} contradicts layout={layout!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.proj_size = proj_size
        self.dtype = dtype
        self.direction = direction if direction is not None else ("bidirectional" if bidirectional else "forward")
        self.layout = layout if layout is not None else ("batch_major" if batch_first else "seq_major")
        self.gate_activation = _activation("gate_activation", gate_activation)
        self.cell_activation = _activation("cell_activation", cell_activation)
        self.hidden_activation = _activation("hidden_activation", hidden_activation)
        self.gate_clip = gate_clip
        self.cell_clip = cell_clip
        self.peepholes = peepholes
        self.input_forget = input_forget
        self.math = math

    @property
    def batch_first(self):
        return self.layout == "batch_major"

    @batch_first.setter
    def batch_first(self, value):
        self.layout = "batch_major" if value else "seq_major"

    @property
    def bidirectional(self):
        return self.direction == "bidirectional"

    def as_dict(self):
        """Every field by name (activations as Activation objects)."""
        return {name: getattr(self, name) for name in _SPEC_FIELDS}

    def replace(self, **changes):
        """A copy with some fields changed (any keyword of the constructor)."""
        fields = self.as_dict()
        if "batch_first" in changes:
            fields.pop("layout")
        if "bidirectional" in changes:
            fields.pop("direction")
        fields.update(changes)
        return LstmSpec(**fields)

    @classmethod
    def _from(cls, spec):
        """An LstmSpec with the fields of a C++ spec returned by the extension."""
        return cls(**{name: getattr(spec, name) for name in _SPEC_FIELDS})

    def __eq__(self, other):
        if not isinstance(other, _culstm._Spec):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _SPEC_FIELDS)

    def __repr__(self):
        return f"LstmSpec({self.describe()})"


_WEIGHT_NAMES = ("w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "peephole")


def _make_weights(spec, layers):
    """The C++ Weights from L*D mappings (index layer * D + direction) of w_ih, w_hh, b_ih, b_hh, w_hr, peephole.

    Each array may have any shape (its values are taken in row-major order) and any float dtype NumPy converts;
    float32 C-contiguous CPU arrays are taken without a conversion. Sizes are checked by the library."""
    if isinstance(layers, _culstm._Weights):
        return layers
    weights = _culstm._Weights.empty_for(spec)  # InvalidSpecError for a bad spec; nothing allocated yet
    directions = weights.num_directions
    layers = list(layers)
    # No weight of this spec has more values than W_ih or W_hh at their widest: an array with more is refused before
    # it is converted (a broadcast array of 2**31 values takes no memory, its float32 copy 8 GiB).
    largest = 4 * spec.hidden_size * max(spec.input_size, spec.output_size())
    if len(layers) != weights.num_layers * directions:
        raise error("ShapeMismatch", f"weights: expected {weights.num_layers * directions} (layer, direction) "
                                     f"entries for {weights.num_layers} layers x {directions} directions, "
                                     f"got {len(layers)}")
    for index, tensors in enumerate(layers):
        layer, direction = divmod(index, directions)
        if not isinstance(tensors, Mapping):
            raise error("InvalidArgument", f"weights[{index}]: expected a dict of arrays by name "
                                           f"({', '.join(_WEIGHT_NAMES)}), got {type(tensors).__qualname__}")
        unknown = set(tensors) - set(_WEIGHT_NAMES)
        if unknown:
            raise error("InvalidArgument", f"weights[{index}]: unknown tensor(s) {sorted(unknown)} "
                                           f"(expected {', '.join(_WEIGHT_NAMES)})")
        for name in _WEIGHT_NAMES:
            values = tensors.get(name)
            if values is None:
                continue  # absent: stays empty (the library checks)
            try:
                weights.set(layer, direction, name, values)
            except BY_CODE_NAME["DtypeMismatch"]:
                weights.set(layer, direction, name, _to_f32_host(f"weights[{index}].{name}", values, largest))
    return weights


def _to_f32_host(what, values, largest):
    count = values.numel() if callable(getattr(values, "numel", None)) else getattr(values, "size", None)
    if isinstance(count, int) and count > largest:
        raise error("ShapeMismatch", f"{what}: {count} values, more than any weight of this spec has ({largest})")
    try:
        import numpy as np
        return np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    except Exception as e:  # any producer NumPy cannot read (a CUDA tensor, a string, ...)
        raise error("DtypeMismatch", f"{what}: cannot be read as float32 values on the CPU ({e})") from None


def int32_lengths(lengths):
    """Lengths given as a list or tuple, as an int32 array.array; InvalidArgumentError for a value that is no int
    or does not fit int32 (never truncated or wrapped)."""
    try:
        return array.array("i", lengths)  # int32 on every platform culstm builds on
    except (TypeError, OverflowError) as e:
        raise error("InvalidArgument", f"lengths: expected int32 values, got {lengths!r} ({e})") from None


def steps_and_batch(spec, x_shape):
    """(T, B) of an x of shape [T, B, I] (seq_major) or [B, T, I] (batch_major)."""
    return (x_shape[1], x_shape[0]) if spec.batch_first else (x_shape[0], x_shape[1])


def result_shapes(spec, x_shape):
    """Shapes of (y, h_n, c_n) for an x of shape x_shape (culstm.hpp's ForwardArgs): y [T, B, D*R] or [B, T, D*R],
    h_n [L*D, B, R], c_n [L*D, B, H]."""
    steps, batch = steps_and_batch(spec, x_shape)
    states = spec.num_layers * spec.num_directions()
    y = (batch, steps, spec.output_size()) if spec.batch_first else (steps, batch, spec.output_size())
    return y, (states, batch, spec.recurrent_size()), (states, batch, spec.hidden_size)


def _call(function, *args):
    """Calls into the extension; an argument of the wrong Python type (nanobind's TypeError, raised before the C++
    code runs) becomes InvalidArgumentError, as every other bad argument does."""
    try:
        return function(*args)
    except TypeError as e:
        raise error("InvalidArgument", str(e)) from None


def _three_sizes(shape):
    return isinstance(shape, tuple) and len(shape) == 3 and all(isinstance(d, int) and d >= 0 for d in shape)


def _path(path):
    """A model file's path as text; a NUL character is refused (the C++ library would read the path only up to
    it: another file)."""
    text = str(path)
    if "\0" in text:
        raise error("InvalidArgument", f"path: contains a NUL character: {text!r}")
    return text


def _module_of(x):
    return type(x).__module__.split(".")[0]


def _torch_tensor(x):
    """Whether x is a PyTorch tensor (torch also has other types: torch.Size, torch.dtype, ...)."""
    return _module_of(x) == "torch" and isinstance(x, sys.modules["torch"].Tensor)


def _empty_like(x, shape):
    """An uninitialized array of x's framework, dtype and device: where results go when out= does not say."""
    framework = _module_of(x)
    if framework == "torch":
        return sys.modules["torch"].empty(shape, dtype=x.dtype, device=x.device)
    if framework == "numpy":
        return sys.modules["numpy"].empty(shape, dtype=x.dtype)
    if framework == "cupy":
        cupy = sys.modules["cupy"]
        with x.device:
            return cupy.empty(shape, dtype=x.dtype)
    if _array_api_on_cpu(x):
        return sys.modules["numpy"].empty(shape, dtype=x.dtype)  # handed back through x's namespace: _in_framework
    raise error("InvalidArgument", f"x: culstm allocates results for NumPy, PyTorch and CuPy arrays, and for CPU "
                                   f"arrays of array-API frameworks (JAX, ...); for {type(x).__module__}."
                                   f"{type(x).__qualname__} pass out=(y, h_n, c_n)")


def _array_api_on_cpu(x):
    """An array of another framework that follows the array API standard (JAX, ...) and lives on the CPU: culstm
    computes its results in NumPy arrays and hands them back through the framework's own from_dlpack."""
    if _module_of(x) in ("torch", "numpy", "cupy") or not hasattr(x, "__array_namespace__"):
        return False
    try:
        return x.__dlpack_device__()[0] == 1  # kDLCPU
    except Exception:  # a producer that cannot say: not this path (forward() reports the array itself)
        return False


def _in_framework(x, result):
    """A result culstm allocated (see _empty_like), as an array of x's framework."""
    if _module_of(result) == "numpy" and _array_api_on_cpu(x):
        return x.__array_namespace__().from_dlpack(result)
    return result


def _stream_handle(stream, x):
    """The cudaStream_t to enqueue on, as an integer: stream= as given (an int, a torch.cuda.Stream or anything with
    .cuda_stream, a CuPy stream or anything with .ptr), else the current stream of x's framework for CUDA arrays,
    else 0 (the legacy default stream; the reference backend ignores it)."""
    if stream is None:
        framework = _module_of(x)
        if _torch_tensor(x) and x.is_cuda:
            return sys.modules["torch"].cuda.current_stream(x.device).cuda_stream
        if framework == "cupy":
            return sys.modules["cupy"].cuda.get_current_stream().ptr
        return 0
    for attribute in ("cuda_stream", "ptr"):
        if hasattr(stream, attribute):
            stream = getattr(stream, attribute)
            break
    if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
        raise error("InvalidArgument", f"stream: expected a cudaStream_t as a non-negative int or a stream object "
                                       f"with .cuda_stream or .ptr; got {stream!r}")
    return stream


def _torch_allocation_stream(x, stream, handle):
    """For a PyTorch CUDA x and an explicit stream=: makes that stream current while culstm allocates the call's
    results and workspace. PyTorch's caching allocator ties a block to the stream current at its allocation and
    hands it, once freed, to the next allocation on that stream without waiting: memory allocated on the current
    stream but used by a call on another stream (the workspace is freed as forward() returns) could be handed out
    again while that call still runs."""
    if stream is None or not _torch_tensor(x) or not x.is_cuda:
        return contextlib.nullcontext()
    torch = sys.modules["torch"]
    if handle == torch.cuda.current_stream(x.device).cuda_stream:
        return contextlib.nullcontext()
    return torch.cuda.stream(torch.cuda.ExternalStream(handle, device=x.device))


class Model:
    """An LSTM ready to run: a spec and its weights.

    backend "auto" follows the data: CPU arrays run on the reference backend (correct, not fast), CUDA arrays on
    the `cuda` backend of their device. A named backend ("reference", "cuda", "cudnn") runs every call, and arrays
    in the other memory are refused (DeviceMismatchError). device, max_batch, max_seq_len, cuda_engine and
    cudnn_algo are the C++ ModelOptions. One Model serves many threads."""

    def __init__(self, spec, weights, *, backend="auto", device=0, max_batch=64, max_seq_len=4096,
                 cuda_engine="auto", cudnn_algo="auto"):
        if not isinstance(spec, _culstm._Spec):
            raise error("InvalidArgument", f"spec: expected a culstm.LstmSpec, got {type(spec).__qualname__}")
        self._model = _call(_culstm._Model, spec, _make_weights(spec, weights), backend, device, max_batch,
                            max_seq_len, cuda_engine, cudnn_algo)
        self._spec = LstmSpec._from(self._model.spec)

    @property
    def spec(self):
        return self._spec

    @property
    def backend(self):
        """The backend asked for ("auto" = by the data's device)."""
        return self._model.backend

    @property
    def max_batch(self):
        return self._model.max_batch

    @property
    def max_seq_len(self):
        return self._model.max_seq_len

    @property
    def closed(self):
        return self._model.closed

    @property
    def weights(self):
        """The canonical weights, a list of L*D dicts (index layer * D + direction) of float32 NumPy arrays."""
        w = self._model.weights
        return [{name: w.get(layer, d, name) for name in _WEIGHT_NAMES}
                for layer in range(w.num_layers) for d in range(w.num_directions)]

    def plan(self, device=None):
        """Plan::explain(): which engine runs each (layer, direction) and why. device: None (the backend Model()
        built: the reference one under "auto"), "cpu", "cuda" or "cuda:N"."""
        return _call(self._model.plan, device)

    def forward(self, x, lengths=None, h0=None, c0=None, *, out=None, stream=None, padding_value=0.0):
        """Runs the network: returns (y, h_n, c_n).

        x [T, B, I] (seq_major) or [B, T, I] (batch_major) of the spec's dtype, on the CPU or a CUDA device; lengths
        [B] int32 on the CPU (or a list of ints); h0 [L*D, B, R], c0 [L*D, B, H] where x is; out=(y, h_n, c_n)
        arrays to write (None entries are allocated in x's framework and device). On CUDA the work is enqueued on
        `stream` (default: the current stream of x's framework) without synchronizing. On failure nothing is
        written."""
        if _torch_tensor(x) and x.is_cuda and x.device.index != sys.modules["torch"].cuda.current_device():
            # PyTorch exports (__dlpack__) only tensors of the current device (BufferError otherwise), as the
            # extension's views of every array need: the call runs with x's device current, as nn.LSTM's does.
            with sys.modules["torch"].cuda.device(x.device):
                return self.forward(x, lengths, h0, c0, out=out, stream=stream, padding_value=padding_value)
        if isinstance(lengths, (list, tuple)):
            lengths = int32_lengths(lengths)
        try:
            padding_value = float(padding_value)
        except (TypeError, ValueError, OverflowError) as e:
            raise error("InvalidArgument", f"padding_value: expected a float, got {padding_value!r} ({e})") from None
        if out is None:
            out = (None, None, None)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise error("InvalidArgument", "out: expected (y, h_n, c_n), each an array or None")
        y, h_n, c_n = out
        for name, a in (("x", x), ("lengths", lengths), ("h0", h0), ("c0", c0), ("y", y), ("h_n", h_n),
                        ("c_n", c_n)):
            if _torch_tensor(a) and a.is_neg():
                # PyTorch exports such a view's memory through DLPack without its negation: culstm would read, or
                # the caller would read back, values of the wrong sign.
                raise error("InvalidArgument", f"{name}: a PyTorch tensor with its negative bit set (a lazily "
                                               f"negated view, e.g. z.conj().imag): pass {name}.resolve_neg()")
        allocated = (y is None, h_n is None, c_n is None)
        shape = getattr(x, "shape", None)
        if not _three_sizes(shape) and x is not None:
            # A producer with no usable `shape` (DLPack only): its shape as the extension views it, so that its
            # results are allocated (or refused with a message) rather than silently not computed.
            shape = _culstm._shape_of(x)
            shape = tuple(shape) if shape is not None else None
        handle = _stream_handle(stream, x)
        with _torch_allocation_stream(x, stream, handle):
            if any(allocated) and self._within_limits(shape):
                # Shapes of the results from x's (the library checks x itself before anything is written).
                shapes = result_shapes(self._spec, shape)
                y, h_n, c_n = (a if a is not None else _empty_like(x, s) for a, s in zip((y, h_n, c_n), shapes))
            workspace = None
            if _three_sizes(shape) and _torch_tensor(x) and x.is_cuda:
                workspace = self._torch_workspace(x, shape)
        self._model.forward(x, lengths, h0, c0, y, h_n, c_n, workspace, handle, padding_value)
        return tuple(_in_framework(x, r) if a else r for r, a in zip((y, h_n, c_n), allocated))

    def _within_limits(self, shape):
        """Whether results can be allocated for an x of this shape: three sizes, B and T within the model's limits.
        Otherwise nothing is allocated and the library refuses x (ExceedsModelLimitError, ShapeMismatchError)
        before it looks at the results: allocating first would fail on memory instead (a broadcast x of 2**31
        sequences takes no memory, its results would)."""
        if not _three_sizes(shape):
            return False
        steps, batch = steps_and_batch(self._spec, shape)
        return batch <= self.max_batch and steps <= self.max_seq_len

    def _torch_workspace(self, x, shape):
        """Workspace for a CUDA tensor from PyTorch's caching allocator: stream-ordered like the call, free of
        cudaMalloc after warm-up, and inside a CUDA graph's private pool while torch.cuda.graph captures (the graph
        owns what its kernels use). None when the size cannot be had: forward() then names the problem."""
        steps, batch = steps_and_batch(self._spec, shape)
        try:
            size = self._model.workspace_size(f"cuda:{x.device.index}", batch, steps)
        except (BY_CODE_NAME["ExceedsModelLimit"], BY_CODE_NAME["InvalidArgument"], BY_CODE_NAME["ShapeMismatch"]):
            return None
        return sys.modules["torch"].empty(size, dtype=sys.modules["torch"].uint8, device=x.device)

    __call__ = forward

    def close(self):
        """Frees the device weights, contexts and workspaces now (after any forward in flight); later calls raise
        InvalidArgumentError."""
        self._model.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"culstm.Model({self._spec.describe()}, backend={self.backend!r})"


def load_model_file(path, prefix="", **options):
    """A Model from a culstm model file (safetensors with nn.LSTM names and culstm.spec metadata; docs/formats.md).
    options: Model()'s keyword arguments."""
    spec, weights = _culstm.load_model_file(_path(path), prefix)
    return Model(LstmSpec._from(spec), weights, **options)


def import_model_file(path, naming="auto", prefix="", onnx_node="", **options):
    """A Model from any supported framework's file: safetensors with PyTorch, Keras, ONNX or MindSpore names
    (`naming` "auto" detects), or an .onnx file's LSTM node (`onnx_node` when there are several)."""
    spec, weights = _culstm.import_model_file(_path(path), naming, prefix, onnx_node)
    return Model(LstmSpec._from(spec), weights, **options)


def save_model_file(path, model):
    """Writes a Model's spec and weights as a culstm model file (what load_model_file reads)."""
    _culstm.save_model_file(_path(path), model.spec, model._model.weights)


def info():
    """What `culstm info` prints: version, build configuration, GPUs, which backends can run."""
    return _culstm.info()


def version():
    return _culstm.version()
