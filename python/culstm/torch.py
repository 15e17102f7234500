"""culstm.torch: a drop-in for torch.nn.LSTM at inference (docs/python.md).

LSTM is a plain nn.Module with nn.LSTM's constructor, forward contract, parameter names and attributes, so state
dicts interchange; it is not a subclass of nn.LSTM, which torch.compile graph-breaks on. Its forward calls the
custom operator culstm::lstm (torch.library, with a fake implementation for shapes), so that torch.compile with
fullgraph=True and torch.export see one opaque op. CUDA tensors run on culstm's `cuda` backend on the current CUDA
stream; CPU tensors on the reference backend (correct, not fast). The op builds the culstm Model from the weight
tensors it is given and keeps it until a weight changes (another tensor, or an in-place edit)."""

import atexit
import json
import math
import threading
import weakref

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils.weak import WeakIdKeyDictionary

from . import _core
from ._errors import error

__all__ = ["LSTM"]

_DTYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}

# culstm's canonical weight fields and the nn.LSTM parameter names that hold them (peephole_* is culstm's own name,
# as in its model files: docs/formats.md).
_FIELDS = (("w_ih", "weight_ih_l{}{}"), ("w_hh", "weight_hh_l{}{}"), ("b_ih", "bias_ih_l{}{}"),
           ("b_hh", "bias_hh_l{}{}"), ("w_hr", "weight_hr_l{}{}"), ("peephole", "peephole_l{}{}"))


def _weight_layout(spec):
    """[(layer, direction, field, parameter name, shape)] in nn.LSTM's parameter order."""
    hidden, proj, recurrent = spec.hidden_size, spec.proj_size, spec.recurrent_size()
    layout = []
    for layer in range(spec.num_layers):
        for d in range(spec.num_directions()):
            suffix = "_reverse" if d == 1 else ""
            shapes = {"w_ih": (4 * hidden, spec.input_size if layer == 0 else spec.output_size()),
                      "w_hh": (4 * hidden, recurrent)}
            if spec.bias:
                shapes["b_ih"] = shapes["b_hh"] = (4 * hidden,)
            if proj:
                shapes["w_hr"] = (proj, hidden)
            if spec.peepholes:
                shapes["peephole"] = (3 * hidden,)
            for field, name in _FIELDS:
                if field in shapes:
                    layout.append((layer, d, field, name.format(layer, suffix), shapes[field]))
    return layout


_ACTIVATIONS = ("gate_activation", "cell_activation", "hidden_activation")


def _config_text(spec, cuda_engine, cudnn_algo):
    """What the op needs besides tensors, as one string argument: the spec's fields (its dtype comes from the
    parameters) and the model options."""
    fields = spec.as_dict()
    del fields["dtype"]
    for name in _ACTIVATIONS:
        fields[name] = [fields[name].kind, fields[name].alpha, fields[name].beta]
    return json.dumps({"spec": fields, "cuda_engine": cuda_engine, "cudnn_algo": cudnn_algo}, sort_keys=True)


def _spec_from_config(config, dtype="f32"):
    fields = dict(config["spec"])
    for name in _ACTIVATIONS:
        fields[name] = tuple(fields[name])
    return _core.LstmSpec(dtype=dtype, **fields)


_config_cache = {}  # config text -> (config, its f32 spec): parsed once per distinct module configuration


def _parse_config(text):
    parsed = _config_cache.get(text)
    if parsed is None:
        config = json.loads(text)
        parsed = _config_cache[text] = (config, _spec_from_config(config))
    return parsed


# ---------------------------------------------------------------------------------------------------------------
# The operator's implementation: a culstm Model per (config, weight tensors), rebuilt when a weight changes.

_cache_lock = threading.Lock()
_cache = None  # WeakIdKeyDictionary: first weight tensor -> {config: _Entry}; dies with the parameter


class _Entry:
    def __init__(self, weights, versions, model):
        self.weights = [weakref.ref(w) for w in weights]  # the very tensors: ids are reused, objects are not
        self.versions = versions
        self.model = model

    def matches(self, weights, versions):
        return versions is not None and versions == self.versions and len(weights) == len(self.weights) and \
            all(r() is w for r, w in zip(self.weights, weights))


def _versions(weights):
    """Each weight's version counter (bumped by every in-place change), or None when there is none to read
    (inference tensors): then the Model is rebuilt on every call, which is correct, only slower."""
    try:
        return tuple(w._version for w in weights)
    except RuntimeError:
        return None


def _limit(needed, default):
    return max(default, 1 << max(0, int(needed) - 1).bit_length())


@atexit.register
def _release_cached_models():
    """The caches hold culstm Models and specs for as long as their parameters live, which for a module held by a
    script's globals is until the interpreter tears its modules down, after the extension's own teardown: nanobind
    would then report them as leaked objects on every exit. Release them while the interpreter is whole."""
    global _cache
    with _cache_lock:
        _cache = None
        _config_cache.clear()


def _model_for(x, weights, config_text):
    """The culstm Model for these weights, built (weights copied to the host as float32, the canonical form) on
    the first call and after any change; its limits grow to the largest (B, T) seen."""
    global _cache
    config, shape_spec = _parse_config(config_text)
    steps, batch = 0, 0  # x of another rank: the library refuses it, naming x
    if x.dim() == 3:
        steps, batch = _core.steps_and_batch(shape_spec, x.shape)
    versions = _versions(weights)
    with _cache_lock:
        if _cache is None:
            _cache = WeakIdKeyDictionary()
        entries = _cache.setdefault(weights[0], {})
        entry = entries.get(config_text)
        if entry is not None and entry.matches(weights, versions) and \
                batch <= entry.model.max_batch and steps <= entry.model.max_seq_len:
            return entry.model
        if x.is_cuda and torch.cuda.is_current_stream_capturing():
            # Building copies the weights to the host and uploads them (a synchronizing copy and allocations): inside
            # a capture that fails with CUDA's "operation not permitted when stream is capturing", which names no
            # cause the caller can act on.
            raise error("InvalidArgument", "culstm.torch.LSTM: this call must build culstm's model (first call, "
                                           "changed parameters, or a batch or sequence beyond the limits built so "
                                           "far), which cannot run while a CUDA graph is being captured: run the "
                                           "module once with this shape before capturing (docs/python.md)")
        dtype = _DTYPES.get(weights[0].dtype)
        if dtype is None:
            raise error("DtypeMismatch", f"culstm.torch.LSTM: parameters of dtype {weights[0].dtype} are not "
                                         f"supported (float32, float16, bfloat16)")
        spec = _spec_from_config(config, dtype)
        layout = _weight_layout(spec)
        if len(layout) != len(weights):
            raise error("ShapeMismatch", f"culstm.torch.LSTM: expected {len(layout)} weight tensors, got "
                                         f"{len(weights)}")
        directions = spec.num_directions()
        layers = [{} for _ in range(spec.num_layers * directions)]
        for (layer, d, field, _, _), w in zip(layout, weights):
            layers[layer * directions + d][field] = w.detach().to("cpu", torch.float32).contiguous()
        old = entry.model if entry is not None else None
        model = _core.Model(spec, layers, max_batch=_limit(batch, old.max_batch if old else 64),
                            max_seq_len=_limit(steps, old.max_seq_len if old else 4096),
                            cuda_engine=config["cuda_engine"], cudnn_algo=config["cudnn_algo"])
        entries[config_text] = _Entry(weights, versions, model)
        return model


def _lstm_impl(x, lengths, h0, c0, weights, config):
    model = _model_for(x, weights, config)
    return model.forward(x, lengths, h0, c0)


def _lstm_fake(x, lengths, h0, c0, weights, config):
    y, h, c = _core.result_shapes(_parse_config(config)[1], x.shape)
    return x.new_empty(y), x.new_empty(h), x.new_empty(c)


# The custom operator (PyTorch >= 2.4): opaque to torch.compile and torch.export, shapes from the fake kernel.
# On an older PyTorch the module calls the implementation directly and works eagerly.
if hasattr(torch, "library") and hasattr(torch.library, "custom_op"):
    @torch.library.custom_op("culstm::lstm", mutates_args=())
    def lstm_op(x: torch.Tensor, lengths: torch.Tensor | None, h0: torch.Tensor | None, c0: torch.Tensor | None,
                weights: list[torch.Tensor], config: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """culstm's LSTM forward: (y, h_n, c_n). config: the JSON of LSTM._config."""
        return _lstm_impl(x, lengths, h0, c0, weights, config)

    lstm_op.register_fake(_lstm_fake)
else:  # pragma: no cover - exercised only on PyTorch < 2.4
    lstm_op = _lstm_impl


# ---------------------------------------------------------------------------------------------------------------

class LSTM(nn.Module):
    """torch.nn.LSTM's constructor and forward, run by culstm, for inference.

    Extra keyword arguments reach culstm's variants: peepholes (parameters peephole_l{k}[_reverse], [3H]),
    gate_clip, cell_clip, gate_activation, cell_activation, hidden_activation (names or (name, alpha[, beta])),
    input_forget, direction ("reverse" for a reverse-only LSTM), math ("allow_tf32"), cuda_engine, cudnn_algo.
    forward(input, hx=None, lengths=None): input [T, B, I] / [B, T, I] (batch_first) / [T, I] unbatched, or a
    PackedSequence; hx (h0 [L*D, B, R], c0 [L*D, B, H]); lengths [B] per-sequence lengths of a padded input.
    Returns (output, (h_n, c_n)) as nn.LSTM does. Inference only: call it under torch.no_grad() or
    torch.inference_mode()."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None, *, peepholes=False, gate_clip=None,
                 cell_clip=None, gate_activation="sigmoid", cell_activation="tanh", hidden_activation="tanh",
                 input_forget=False, direction=None, math="strict_f32", cuda_engine="auto", cudnn_algo="auto"):
        super().__init__()
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)  # accepted as nn.LSTM does; inference applies no dropout (nn.LSTM in eval)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.mode = "LSTM"
        # The spec, checked now by the library (InvalidSpecError naming the field); the op gets it as JSON text.
        spec = _core.LstmSpec(input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
                              bidirectional=bidirectional if direction is None else None, proj_size=proj_size,
                              direction=direction, gate_activation=gate_activation, cell_activation=cell_activation,
                              hidden_activation=hidden_activation, gate_clip=gate_clip, cell_clip=cell_clip,
                              peepholes=peepholes, input_forget=input_forget, math=math)
        spec.validate()
        self.bidirectional = spec.bidirectional
        self.direction = spec.direction
        self.peepholes = peepholes
        self._config = _config_text(spec, cuda_engine, cudnn_algo)
        factory = {"device": device, "dtype": dtype}
        self._flat_weights_names = []
        for _, _, _, name, shape in _weight_layout(spec):
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
            self._flat_weights_names.append(name)
        self.reset_parameters()

    def reset_parameters(self):
        """nn.LSTM's initialization: every parameter uniform in [-1/sqrt(H), 1/sqrt(H)]."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        with torch.no_grad():
            for name in self._flat_weights_names:
                getattr(self, name).uniform_(-bound, bound)

    def flatten_parameters(self):
        """nn.LSTM's call to pack its weights for cuDNN: nothing to do, culstm packs them when it builds its model
        (kept so that code written for nn.LSTM runs unchanged)."""

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        """Parameters per (layer, direction), in nn.LSTM's order."""
        flat = self._flat_weights
        per = len(flat) // (self.num_layers * (2 if self.bidirectional else 1))
        return [flat[i:i + per] for i in range(0, len(flat), per)]

    @classmethod
    def from_module(cls, lstm, **culstm_options):
        """A culstm LSTM with the configuration, device, dtype and parameter values of a torch.nn.LSTM."""
        if not isinstance(lstm, nn.LSTM):
            raise error("InvalidArgument", f"from_module: expected a torch.nn.LSTM, got {type(lstm).__qualname__}")
        first = lstm.weight_ih_l0
        module = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias, lstm.batch_first, lstm.dropout,
                     lstm.bidirectional, lstm.proj_size, device=first.device, dtype=first.dtype, **culstm_options)
        module.load_state_dict(lstm.state_dict())
        module.train(lstm.training)
        return module

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s

    def forward(self, input, hx=None, lengths=None):
        weights = self._flat_weights
        if not isinstance(input, (torch.Tensor, PackedSequence)):
            raise error("InvalidArgument", f"input: expected a torch.Tensor or a PackedSequence, got "
                                           f"{type(input).__qualname__}")
        data = input.data if isinstance(input, PackedSequence) else input
        if torch.is_grad_enabled() and (data.requires_grad or any(w.requires_grad for w in weights)):
            raise error("InvalidArgument", "culstm.torch.LSTM is inference-only and has no backward: run it under "
                                           "torch.no_grad() or torch.inference_mode()")
        if weights and data.device != weights[0].device:
            # nn.LSTM's rule: the input lives where the parameters do (culstm would otherwise run a copy elsewhere).
            raise error("DeviceMismatch", f"input: on {data.device} but the parameters are on {weights[0].device}")
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise error("InvalidArgument", "hx: expected a tuple (h_0, c_0)")
        h0, c0 = (None, None) if hx is None else hx
        for name, state in (("h_0", h0), ("c_0", c0)):
            if state is not None and not isinstance(state, torch.Tensor):
                raise error("InvalidArgument", f"hx: {name} must be a torch.Tensor, got {type(state).__qualname__}")

        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise error("InvalidArgument", "lengths: a PackedSequence carries its own lengths")
            return self._forward_packed(input, h0, c0, weights)

        unbatched = input.dim() == 2
        if unbatched:
            # nn.LSTM's unbatched form: [T, I] with states [L*D, R] / [L*D, H].
            input = input.unsqueeze(0 if self.batch_first else 1)
            h0 = h0.unsqueeze(1) if h0 is not None else None
            c0 = c0.unsqueeze(1) if c0 is not None else None
        if isinstance(lengths, (list, tuple)):
            # As the core takes them: ints that fit int32, never truncated (1.5) or wrapped (2**32 + 1).
            lengths = torch.tensor(_core.int32_lengths(lengths).tolist(), dtype=torch.int32)
        elif lengths is not None and not isinstance(lengths, torch.Tensor):
            try:
                lengths = torch.as_tensor(lengths)  # in its own dtype: int64 values are range-checked below
            except (TypeError, ValueError, RuntimeError) as e:
                raise error("InvalidArgument", f"lengths: expected a tensor or a list of ints, got "
                                               f"{type(lengths).__qualname__} ({e})") from None
        if lengths is not None and lengths.device.type == "cpu" and lengths.dtype == torch.int64:
            # PyTorch's lengths are int64 (pack_padded_sequence's); culstm's are int32 on the host. Values out of
            # range stay out of range (the library names them); other dtypes reach the library as they are.
            lengths = lengths.clamp(-1, 2**31 - 1).to(torch.int32)
        y, h_n, c_n = lstm_op(_contiguous(input), lengths, _contiguous(h0), _contiguous(c0), weights, self._config)
        if unbatched:
            y = y.squeeze(0 if self.batch_first else 1)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return y, (h_n, c_n)

    def _forward_packed(self, packed, h0, c0, weights):
        # Sorted (longest first) padded [T, B, I] and its lengths straight from the packed layout; the states
        # follow the batch order with sorted_indices, as nn.LSTM's permute_hidden does; culstm runs each
        # sequence to its own length, and the output is packed back with the input's batch_sizes and indices.
        _check_packed(packed)
        padded, sorted_lengths = torch._pad_packed_sequence(packed.data, packed.batch_sizes, False, 0.0,
                                                            packed.batch_sizes.numel())
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        if order is not None:
            h0 = h0.index_select(1, order) if h0 is not None else None
            c0 = c0.index_select(1, order) if c0 is not None else None
        spec_batch_first = self.batch_first
        x = padded.transpose(0, 1) if spec_batch_first else padded
        y, h_n, c_n = lstm_op(_contiguous(x), sorted_lengths.to(torch.int32), _contiguous(h0), _contiguous(c0),
                              weights, self._config)
        if spec_batch_first:
            y = y.transpose(0, 1)
        data, batch_sizes = torch._pack_padded_sequence(y, sorted_lengths, False)
        if unorder is not None:
            h_n, c_n = h_n.index_select(1, unorder), c_n.index_select(1, unorder)
        return PackedSequence(data, batch_sizes, order, unorder), (h_n, c_n)


def _check_packed(packed):
    """A PackedSequence can be built by hand with anything in it, and PyTorch's unpacking trusts it: negative batch
    sizes made torch._pad_packed_sequence free an invalid pointer (the interpreter aborted). What
    pack_padded_sequence makes is checked here: data [sum(batch_sizes), I]; batch_sizes a 1-D int64 CPU tensor of
    positive, non-increasing sizes; the indices 1-D int64 of batch_sizes[0] elements, permutations of the batch
    (their values checked where they are on the CPU: on CUDA that would synchronize every call)."""
    data, sizes = packed.data, packed.batch_sizes
    if not isinstance(sizes, torch.Tensor) or sizes.dim() != 1 or sizes.dtype != torch.int64 or \
            sizes.device.type != "cpu" or sizes.numel() == 0:
        raise error("InvalidArgument", "input: a PackedSequence's batch_sizes must be a non-empty 1-D int64 CPU "
                                       "tensor (as pack_padded_sequence makes)")
    if sizes[-1] < 1 or (sizes.numel() > 1 and bool((sizes[1:] > sizes[:-1]).any())):
        raise error("InvalidArgument", f"input: a PackedSequence's batch_sizes must be positive and non-increasing, "
                                       f"got {sizes.tolist()}")
    if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.shape[0] != int(sizes.sum()):
        raise error("ShapeMismatch", f"input: a PackedSequence's data must be [sum(batch_sizes) = {int(sizes.sum())}, "
                                     f"input_size], got {tuple(getattr(data, 'shape', ()))}")
    batch = int(sizes[0])
    for name in ("sorted_indices", "unsorted_indices"):
        index = getattr(packed, name)
        if index is None:
            continue
        if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype != torch.int64 or \
                index.numel() != batch or index.device != data.device:
            raise error("InvalidArgument", f"input: a PackedSequence's {name} must be a 1-D int64 tensor of "
                                           f"{batch} elements on {data.device}")
        if index.device.type == "cpu" and not torch.equal(index.sort().values, torch.arange(batch)):
            raise error("InvalidArgument", f"input: a PackedSequence's {name} must be a permutation of "
                                           f"0..{batch - 1}, got {index.tolist()}")


def _contiguous(t):
    """t as the op takes it: dense, and with a lazy negation (the negative bit of a view such as z.conj().imag)
    applied, as every PyTorch operation sees it (culstm refuses such a tensor: its DLPack export is un-negated)."""
    return t.resolve_neg().contiguous() if t is not None else None
