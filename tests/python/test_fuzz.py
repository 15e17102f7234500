"""Randomized robustness: nothing a Python user passes can crash the interpreter.

Seeded random cases throw at culstm.LstmSpec, culstm.Model, Model.forward, the model-file loaders and
culstm.torch.LSTM (CPU) what a user might pass: wrong ranks and sizes, every NumPy and PyTorch dtype, non-contiguous,
negative-stride, broadcast and overlapping views, read-only arrays, lists, scalars, strings, bytes, memoryviews,
objects whose __dlpack__ or __array__ raises or returns garbage, out= of wrong length or aliasing the inputs,
lengths outside [0, T], NaN and inf, odd padding_value and stream=, missing, directory and corrupted model files.
Each case must either succeed with the results of the same values given in their plain form (C-contiguous float32
NumPy arrays), or raise a culstm.Error, TypeError or ValueError with a message, leaving its out= arrays and its
inputs untouched. A case that is invalid by construction (wrong dtype, shape, length, ...) must raise.

The cases run in child interpreters (`python test_fuzz.py SEED COUNT`), so that a crash shows as a signal exit
naming the case rather than killing the test runner; nanobind's leak report at exit fails the run too. CI runs a
fixed, bounded set; CULSTM_FUZZ_SEEDS (a count of seeds, or "a-b") and CULSTM_FUZZ_CASES (cases per seed) run
longer (docs/python.md). One case alone: `python test_fuzz.py SEED 1 --first INDEX`."""

import array
import math
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from conftest import DlpackOnly

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "fuzz" / "corpus"
SENTINEL = 12345.0
DEFAULT_SEEDS = range(1, 5)
DEFAULT_CASES = 100


# ---------------------------------------------------------------------------------------------------------------
# The driver (pytest): runs seeds in child interpreters and reports the case that failed or crashed.

def seeds_from_environment():
    text = os.environ.get("CULSTM_FUZZ_SEEDS")
    if not text:
        return DEFAULT_SEEDS
    if "-" in text:
        first, last = (int(v) for v in text.split("-"))
        return range(first, last + 1)
    return range(1, int(text) + 1)


def run_worker(seed, cases, timeout=600):
    """Runs a seed's cases in a child interpreter; returns a list of problems (empty when every case passed)."""
    import culstm
    env = dict(os.environ)  # the child imports the culstm this process imported (PYTHONPATH may be relative)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(culstm.__file__).resolve().parent.parent),
                                         env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, __file__, str(seed), str(cases)], capture_output=True, text=True,
                            timeout=timeout, cwd=HERE, env=env)
    lines = result.stdout.splitlines()
    problems = [line for line in lines if line.startswith("BAD ")]
    if result.returncode != 0:
        started = [line for line in lines if line.startswith("case ")]
        last = started[-1] if started else "(before the first case)"
        how = f"signal {-result.returncode}" if result.returncode < 0 else f"exit status {result.returncode}"
        problems.append(f"seed {seed}: the interpreter ended with {how} during {last}\n{result.stderr[-3000:]}")
    if "leaked" in result.stderr:
        problems.append(f"seed {seed}: nanobind reported leaks at exit:\n{result.stderr[-3000:]}")
    return problems


def test_random_inputs_raise_or_succeed_and_never_crash():
    cases = int(os.environ.get("CULSTM_FUZZ_CASES", DEFAULT_CASES))
    problems = []
    for seed in seeds_from_environment():
        problems += run_worker(seed, cases)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------------------------
# The worker: generates and checks the cases of one seed.

class Invalid:
    """Marks an argument that is invalid by construction: the call must raise."""

    def __init__(self, value, why):
        self.value, self.why = value, why


class Odd:
    """Marks an argument whose outcome is not fixed (it may be refused or accepted): the call must not crash, and if
    it succeeds its results are checked against `plain` (None: not checked)."""

    def __init__(self, value, why, plain=None):
        self.value, self.why, self.plain = value, why, plain


class Case:
    def __init__(self, description):
        self.description = description
        self.invalid = []  # why each invalid-by-construction argument is

    def note(self, arg):
        """Unwraps a generated argument, remembering why it is invalid (if it is)."""
        if isinstance(arg, Invalid):
            self.invalid.append(arg.why)
            return arg.value
        if isinstance(arg, Odd):
            return arg.value
        return arg


class Bad(Exception):
    """A case's outcome the contract forbids."""


def allowed_exception(e):
    import culstm
    return isinstance(e, (culstm.Error, TypeError, ValueError)) and str(e) != ""


# Objects that pretend to be arrays.
class RaisingDlpack:
    def __dlpack__(self, *args, **kwargs):
        raise RuntimeError("this __dlpack__ fails")

    def __dlpack_device__(self):
        return (1, 0)


class GarbageDlpack:
    def __init__(self, garbage):
        self.garbage = garbage

    def __dlpack__(self, *args, **kwargs):
        return self.garbage

    def __dlpack_device__(self):
        return self.garbage


class ReusedCapsule:
    """Returns the one capsule it keeps on every __dlpack__() call (a protocol violation)."""

    def __init__(self):
        self.capsule = np.ones((1, 1, 1, 1, 1), np.float32).__dlpack__()  # rank 5: valid for no argument

    def __dlpack__(self, *args, **kwargs):
        return self.capsule

    def __dlpack_device__(self):
        return (1, 0)


class RaisingArray:
    shape = (2, 2, 2)

    def __array__(self, *args, **kwargs):
        raise RuntimeError("this __array__ fails")


class GarbageArray:
    def __init__(self, garbage):
        self.garbage = garbage

    def __array__(self, *args, **kwargs):
        return self.garbage


class WeirdShape:
    """Has a `shape` that is not a tuple of ints."""

    def __init__(self, shape):
        self.shape = shape


def garbage(r):
    choices = [0, -1, 2**70, 1.5, float("nan"), "abc", b"abc", bytearray(b"abcd"), [], [[1.0]], (1, "2"),
               {"a": 1}, object(), RaisingDlpack(), GarbageDlpack(r.choice([None, 7, "x", (1,), (99, 0)])),
               ReusedCapsule(), RaisingArray(), GarbageArray(r.choice([None, "x", np.zeros((2, 2, 2), object), 5])),
               WeirdShape(r.choice([(1, 2, "3"), "abc", (-1, 2, 3), None, (2**70, 1, 1)])), True, array.array("b"),
               memoryview(b"\0" * 16).cast("f"), np.float32(1.0), np.zeros((), np.float32), slice(1)]
    torch = import_torch()
    if torch is not None:  # torch objects that are no tensors
        choices += [torch.Size([2, 1, 3]), torch.float32, torch.device("cpu"), torch.nn.Linear(1, 1)]
    return r.choice(choices)


NUMPY_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128, object, "U3", "S3",
                "datetime64[s]", "timedelta64[s]", [("a", np.float32)]]


def with_dtype(a, dtype):
    try:
        return a.astype(dtype)
    except (TypeError, ValueError):
        return np.zeros(a.shape, dtype)


def array_variant(r, good, what):
    """`good` (a valid C-contiguous array) or a variant of it: equivalent values in another form (plain = good),
    Odd, or Invalid."""
    kind = r.randrange(22)
    g = good
    if kind <= 4:
        return g
    if kind == 5:  # another dtype
        dtype = r.choice(NUMPY_DTYPES)
        if np.dtype(dtype) == g.dtype:
            return g
        return Invalid(with_dtype(g, dtype), f"{what}: dtype {np.dtype(dtype)}")
    if kind == 6:  # another rank
        rank = r.choice([0, 1, 2, 4, 5, 7, 9])
        shape = tuple(r.randrange(1, 3) for _ in range(rank))
        return Invalid(np.zeros(shape, g.dtype), f"{what}: rank {rank}")
    if kind == 7:  # a dimension off by some, or zero
        if g.ndim == 0:
            return g
        shape = list(g.shape)
        axis = r.randrange(len(shape))
        shape[axis] = r.choice([0, shape[axis] + 1, shape[axis] + 7, max(0, shape[axis] - 1)])
        if tuple(shape) == g.shape:
            return g
        return Odd(np.zeros(shape, g.dtype), f"{what}: shape {tuple(shape)}")  # 0 steps or batch may be valid
    if kind == 8 and g.ndim >= 1 and g.size > 1:  # non-contiguous views of the same values
        view = r.choice([lambda: np.repeat(g, 2, axis=-1)[..., ::2], lambda: g[::-1][::-1] if g.ndim else g,
                         lambda: np.flip(np.flip(g, 0).copy(), 0), lambda: np.asfortranarray(g)])()
        return Odd(view, f"{what}: strides {view.strides}", plain=g)
    if kind == 9 and g.ndim >= 1:  # negative strides (different values: reversed)
        view = g[::-1]
        return Odd(view, f"{what}: negative strides", plain=np.ascontiguousarray(view))
    if kind == 10 and g.ndim >= 1:  # a broadcast view (stride 0), read-only
        first = g[:1]
        view = np.broadcast_to(first, g.shape)
        return Odd(view, f"{what}: broadcast", plain=np.ascontiguousarray(view))
    if kind == 11 and g.ndim >= 1 and g.size > 1:  # an overlapping view (as_strided with a small stride)
        flat = np.ascontiguousarray(g).reshape(-1)
        strides = tuple(flat.itemsize for _ in g.shape)
        view = np.lib.stride_tricks.as_strided(flat, shape=g.shape, strides=strides, writeable=False)
        return Odd(view, f"{what}: overlapping strides", plain=np.ascontiguousarray(view))
    if kind == 12:  # read-only
        ro = g.copy()
        ro.flags.writeable = False
        return Odd(ro, f"{what}: read-only", plain=g)
    if kind == 13:  # a Python list of the values
        return Odd(g.tolist(), f"{what}: list", plain=g)
    if kind == 14:  # a memoryview (buffer protocol)
        return Odd(memoryview(g.copy()), f"{what}: memoryview", plain=g)
    if kind == 15:  # another framework's DLPack producer with the same values
        return Odd(DlpackOnly(g.copy()), f"{what}: DLPack producer", plain=g)
    if kind == 16:  # PyTorch CPU tensor
        torch = import_torch()
        if torch is None or g.dtype.kind not in "fiu":
            return g
        t = torch.from_numpy(g.copy())
        variant = r.randrange(5)
        if variant == 4 and g.dtype == np.float32:  # the same values as a lazily negated view (negative bit)
            negated = torch.complex(torch.zeros_like(t), -t).conj().imag
            return Odd(negated, f"{what}: tensor with the negative bit", plain=g)
        if variant == 1 and t.dim() >= 2:
            return Odd(t.transpose(0, 1).contiguous().transpose(0, 1), f"{what}: transposed tensor", plain=g)
        if variant == 2 and t.dim() >= 1 and t.shape[0] > 0:
            e = t[:1].expand(t.shape)
            return Odd(e, f"{what}: expanded tensor", plain=np.ascontiguousarray(e.numpy()))
        if variant == 3 and g.dtype == np.float32:
            return Odd(t.clone().requires_grad_(True), f"{what}: tensor requiring grad", plain=g)
        return Odd(t, f"{what}: tensor", plain=g)
    if kind == 17 and g.dtype.kind == "f":  # NaN and inf among the values
        v = g.copy()
        if v.size:
            v.reshape(-1)[r.randrange(v.size)] = r.choice([np.nan, np.inf, -np.inf, 3e38])
        return Odd(v, f"{what}: NaN/inf", plain=v)
    if kind == 18:  # an array of another size altogether (huge via broadcasting: no memory)
        shape = [1] * g.ndim
        if g.ndim:
            shape[r.randrange(g.ndim)] = r.choice([2**20, 2**31, 2**40])
        shape = tuple(shape)
        return Odd(np.broadcast_to(np.zeros((), g.dtype), shape), f"{what}: huge broadcast {shape}")
    if kind == 19:
        return Invalid(garbage(r), f"{what}: not an array")
    if kind == 20 and g.dtype in (np.float32, np.int32) and g.ndim >= 1 and g.size:  # read-only: bytes
        frozen = memoryview(g.tobytes()).cast("B").cast("f" if g.dtype == np.float32 else "i", g.shape)
        return Odd(frozen, f"{what}: memoryview of bytes", plain=g)
    return g


def read_only(value):
    """Whether an output candidate is memory its owner marked read-only (or that reads back other values)."""
    if hasattr(value, "is_neg"):
        return value.is_neg()
    if isinstance(value, memoryview):
        return value.readonly
    return isinstance(value, np.ndarray) and not value.flags.writeable


def import_torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def random_spec_sizes(r):
    return dict(input_size=r.randrange(1, 5), hidden_size=r.randrange(2, 6), num_layers=r.randrange(1, 3),
                bidirectional=r.random() < 0.4, batch_first=r.random() < 0.4, bias=r.random() < 0.8,
                peepholes=r.random() < 0.2)


def random_weights(rng, spec):
    """Valid float32 weights for spec, as the list of (layer, direction) dicts Model() takes."""
    H, R, D = spec.hidden_size, spec.recurrent_size(), spec.num_directions()
    layers = []
    for layer in range(spec.num_layers):
        width = spec.input_size if layer == 0 else spec.output_size()
        for _ in range(D):
            w = {"w_ih": rng.uniform(-0.5, 0.5, (4 * H, width)), "w_hh": rng.uniform(-0.5, 0.5, (4 * H, R))}
            if spec.bias:
                w["b_ih"] = rng.uniform(-0.5, 0.5, 4 * H)
                w["b_hh"] = rng.uniform(-0.5, 0.5, 4 * H)
            if spec.proj_size:
                w["w_hr"] = rng.uniform(-0.5, 0.5, (spec.proj_size, H))
            if spec.peepholes:
                w["peephole"] = rng.uniform(-0.5, 0.5, 3 * H)
            layers.append({k: v.astype(np.float32) for k, v in w.items()})
    return layers


def same_values(got, want):
    got = np.asarray(got.detach() if hasattr(got, "detach") else got)
    want = np.asarray(want)
    return got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)


def snapshot(value):
    """A copy of an argument's values to compare after a call (None when it has none we can read)."""
    if getattr(value, "nbytes", 0) > 2**24:
        return None  # the huge broadcast views: read-only, and a copy would take gigabytes
    try:
        if hasattr(value, "detach"):
            return value.detach().clone()
        if isinstance(value, np.ndarray) and value.dtype != object:
            return value.copy()
    except Exception:  # noqa: BLE001  (an argument we cannot copy is not compared)
        pass
    return None


def unchanged(value, before):
    """Whether an argument holds the bytes it held before (NaN included)."""
    if before is None:
        return True
    if hasattr(value, "detach"):
        value = value.detach()
        if value.shape != before.shape:
            return False
        if value.is_floating_point() or value.is_complex():
            return bool(((value == before) | (value.isnan() & before.isnan())).all())
        return bool(value.eq(before).all())
    return value.shape == before.shape and value.tobytes() == before.tobytes()


# -- forward ------------------------------------------------------------------------------------------------------

def forward_case(r, rng):
    import culstm
    sizes = random_spec_sizes(r)
    if r.random() < 0.3:
        sizes["proj_size"] = r.randrange(1, sizes["hidden_size"])
    spec = culstm.LstmSpec(sizes.pop("input_size"), sizes.pop("hidden_size"), **sizes)
    model = culstm.Model(spec, random_weights(rng, spec), max_batch=r.choice([4, 8]), max_seq_len=r.choice([6, 16]))
    T, B = r.randrange(0, 6), r.randrange(1, 5)
    x_shape = (B, T, spec.input_size) if spec.batch_first else (T, B, spec.input_size)
    states = spec.num_layers * spec.num_directions()
    good = {"x": rng.standard_normal(x_shape).astype(np.float32),
            "lengths": rng.integers(0, T + 1, B).astype(np.int32) if r.random() < 0.6 else None,
            "h0": rng.standard_normal((states, B, spec.recurrent_size())).astype(np.float32)
            if r.random() < 0.5 else None,
            "c0": rng.standard_normal((states, B, spec.hidden_size)).astype(np.float32) if r.random() < 0.5 else None}
    case = Case(f"forward {spec.describe()} x{x_shape}")
    args, plain = {}, {}
    for name, g in good.items():
        if g is None:
            value = Invalid(garbage(r), f"{name}: not an array") if r.random() < 0.1 else None
        else:
            value = array_variant(r, g, name)
        if name == "lengths" and g is not None and r.random() < 0.3:  # lengths outside [0, T], or another type
            bad = g.copy()
            bad[r.randrange(B)] = r.choice([-1, T + 1, 2**31 - 1, -2**31])
            value = r.choice([Invalid(bad, "lengths: out of range"), Invalid(bad.tolist(), "lengths: out of range"),
                              Odd(g.tolist(), "lengths: list", plain=g), Odd(tuple(g.tolist()), "tuple", plain=g),
                              Odd(g.astype(np.int64), "lengths: int64"),
                              Invalid([float(v) for v in g], "lengths: floats") if B else g,
                              Invalid([2**40] * B, "lengths: beyond int32"),
                              Invalid([None] * B, "lengths: None values") if B else g])
        plain[name] = value.plain if isinstance(value, Odd) else (g if not isinstance(value, Invalid) else None)
        args[name] = case.note(value)
        case.description += f" {name}={value.why if isinstance(value, (Invalid, Odd)) else 'plain'}"

    # out=: None, or sentinels in the right shapes, some of them wrong, aliasing an input, or junk.
    out, out_plain = None, True
    want_shapes = culstm._core.result_shapes(spec, x_shape)
    choice = r.randrange(8)
    if choice in (1, 2, 3, 4):
        out = [np.full(s, SENTINEL, np.float32) if r.random() < 0.7 else None for s in want_shapes]
        for k in range(3):
            if r.random() < 0.25 and out[k] is not None:
                variant = array_variant(r, out[k], ("y", "h_n", "c_n")[k])
                out_plain = out_plain and not isinstance(variant, (Odd, Invalid))
                out[k] = case.note(variant) if not isinstance(variant, Odd) else variant.value
                if isinstance(variant, Odd):
                    case.description += f" out[{k}]={variant.why}"
                if read_only(out[k]):
                    case.invalid.append(f"out[{k}] is read-only")
        if r.random() < 0.15 and isinstance(args["x"], np.ndarray) and args["x"].dtype == np.float32 and \
                args["x"].flags.c_contiguous and out[0] is not None:
            # x and y in one buffer, overlapping or side by side.
            x_values, nx, ny = args["x"], args["x"].size, int(np.prod(want_shapes[0]))
            overlap = min(r.choice([0, 0, 1, nx]), nx, ny)
            base = np.full(nx + ny - overlap, SENTINEL, np.float32)
            out[0] = base[nx - overlap:].reshape(want_shapes[0])
            case.invalid = [why for why in case.invalid if not why.startswith(("out[0]", "y:"))]  # replaced
            args["x"] = base[:nx].reshape(x_values.shape)
            args["x"][...] = x_values
            out_plain = False
            if overlap and nx and ny:
                case.invalid.append("y overlaps x")
            case.description += f" x and y share a buffer (overlap {overlap})"
        if r.random() < 0.15:  # an output that is an input
            k = r.randrange(3)
            source = r.choice(["x", "h0", "c0"])
            if args[source] is not None and getattr(args[source], "shape", None) == want_shapes[k]:
                out[k] = args[source]
                case.invalid.append(f"out[{k}] is {source}")
        out = tuple(out) if r.random() < 0.8 else list(out)
    elif choice == 5:
        out = Invalid(r.choice([(None, None), (None,) * 4, "abc", np.zeros(3, np.float32), 5, {}]), "out: junk")
        out = case.note(out)
    stream = r.choice([None, None, None, 0, 7, Invalid(-1, "stream -1"), Invalid("s", "stream str"),
                       Invalid(1.5, "stream float"), Odd(2**70, "stream huge"), Invalid(True, "stream bool"),
                       Invalid(type("S", (), {"cuda_stream": "x"})(), "stream object"),
                       type("S", (), {"ptr": 0})()])
    stream = case.note(stream)
    padding = r.choice([0.0, 0.0, -3.0, float("nan"), float("inf"), 1e30, Odd(1e300, "padding 1e300"),
                        Invalid("abc", "padding str"), Invalid(None, "padding None"),
                        Invalid(10**400, "padding beyond float"), Invalid([1.0], "padding list"), np.float64(2.5)])
    padding_plain = padding.value if isinstance(padding, Odd) else padding
    padding = case.note(padding)
    case.description += f" out={'none' if out is None else type(out).__name__} stream={stream!r} padding={padding!r}"
    return case, lambda: check_forward(case, model, args, plain, out, out_plain, stream, padding, padding_plain)


def check_forward(case, model, args, plain, out, out_plain, stream, padding, padding_plain):
    out_arrays = [a for a in (out if isinstance(out, (tuple, list)) else ()) if isinstance(a, np.ndarray)]
    watched = [(a, snapshot(a)) for a in list(args.values()) + out_arrays]
    try:
        got = model.forward(args["x"], args["lengths"], args["h0"], args["c0"], out=out, stream=stream,
                            padding_value=padding)
    except Exception as e:  # noqa: BLE001  (the kind is checked)
        if not allowed_exception(e):
            raise Bad(f"raised {type(e).__name__}: {e}") from e
        for a, before in watched:
            if not unchanged(a, before):
                raise Bad(f"a failed call ({type(e).__name__}: {e}) changed an argument") from e
        return
    if case.invalid:
        raise Bad(f"accepted invalid input: {case.invalid}")
    for name in ("x", "lengths", "h0", "c0"):
        if args[name] is not None and plain[name] is None:
            return  # accepted an argument whose values cannot be told: not crashing is all that is checked
    if padding_plain is None:
        return
    try:
        want = model.forward(plain["x"], plain["lengths"], plain["h0"], plain["c0"], padding_value=padding_plain)
    except Exception as e:  # noqa: BLE001
        raise Bad(f"accepted input whose plain form is refused ({type(e).__name__}: {e})") from e
    if not isinstance(got, tuple) or len(got) != 3:
        raise Bad(f"returned {got!r}")
    for k, (g, w) in enumerate(zip(got, want)):
        if isinstance(out, (tuple, list)) and out[k] is not None and g is not out[k]:
            raise Bad(f"result {k} is not the out= array given")
        if out_plain and not same_values(g, w):
            raise Bad(f"result {k} differs from the plain form's")


# -- Model and LstmSpec -------------------------------------------------------------------------------------------

def model_case(r, rng):
    import culstm
    sizes = random_spec_sizes(r)
    case = Case("model")
    junk_fields = {"input_size": [0, -1, 2**20 + 1, 2**31, 2**70, 2.5, "3", None],
                   "hidden_size": [0, -4, 2**20, 2**31, "x", None], "num_layers": [0, -1, 1025, 2**40, 1.0],
                   "proj_size": [-1, 99, 2**33], "dtype": ["f64", "i32", "x", None, 3],
                   "direction": ["both", 2, None], "layout": ["x", 1], "gate_activation": ["nope", ("relu", "a"),
                                                                                             ("elu", 1.0, 2.0, 3.0),
                                                                                             5, ("affine", 1e40)],
                   "gate_clip": [-1.0, 0.0, float("nan"), float("inf"), "x"], "cell_clip": [-1.0, float("nan")],
                   "math": ["fast", 1], "peepholes": ["yes", None], "bias": [2, "no"]}
    kwargs = dict(sizes)
    for field in r.sample(sorted(junk_fields), r.randrange(0, 3)):
        kwargs[field] = r.choice(junk_fields[field])
        case.description += f" {field}={kwargs[field]!r}"
    try:
        spec = culstm.LstmSpec(kwargs.pop("input_size"), kwargs.pop("hidden_size"), **kwargs)
    except Exception as e:  # noqa: BLE001
        if not allowed_exception(e):
            raise Bad(f"LstmSpec raised {type(e).__name__}: {e}") from e
        return case, lambda: None
    try:
        valid_spec = spec.validate() is None
    except Exception as e:  # noqa: BLE001
        if not allowed_exception(e):
            raise Bad(f"validate raised {type(e).__name__}: {e}") from e
        valid_spec = False
    if not valid_spec:
        case.invalid.append("spec")
        weights = [{}]
    else:
        weights = random_weights(rng, spec)
        if r.random() < 0.5 and weights:
            entry = r.randrange(len(weights))
            name = r.choice(sorted(weights[entry]))
            variant = array_variant(r, weights[entry][name], name)
            if isinstance(variant, (Invalid, Odd)):
                weights[entry][name] = variant.value
                case.description += f" weight {name}: {variant.why}"
                if isinstance(variant, Invalid) and "dtype" not in variant.why and "rank" not in variant.why:
                    # Weights of other dtypes are converted, and any shape with the right count is taken.
                    case.invalid.append(variant.why)
        if r.random() < 0.15:
            weights = r.choice([weights[:-1], weights + [{}], [dict(w, extra=np.zeros(1, np.float32))
                                                                for w in weights],
                                [["w_ih"]] * len(weights), [None] * len(weights), "abc", 5, None])
            case.description += f" weights={type(weights).__name__}"
            case.invalid.append("weights container")
    options = {}
    junk_options = {"backend": ["nope", 3, None, "cudnn", "cuda"], "device": [-1, 2**40, "0", 7],
                    "max_batch": [0, -1, 2**62, 2**70, "x"], "max_seq_len": [0, -5, 2**62, 1.5],
                    "cuda_engine": ["x", None], "cudnn_algo": ["x", 2]}
    for option in r.sample(sorted(junk_options), r.randrange(0, 2)):
        options[option] = r.choice(junk_options[option])
        case.description += f" {option}={options[option]!r}"
    return case, lambda: check_model(case, rng, spec, weights, options)


def check_model(case, rng, spec, weights, options):
    try:
        model = __import__("culstm").Model(spec, weights, **options)
    except Exception as e:  # noqa: BLE001
        if not allowed_exception(e):
            raise Bad(f"Model raised {type(e).__name__}: {e}") from e
        return
    if case.invalid:
        raise Bad(f"Model accepted invalid input: {case.invalid}")
    # A model that was built runs (or refuses cleanly, e.g. limits of 0 or a backend without a GPU).
    steps, batch = 2, 1
    x_shape = (batch, steps, spec.input_size) if spec.batch_first else (steps, batch, spec.input_size)
    try:
        model.forward(rng.standard_normal(x_shape).astype(np.float32))
    except Exception as e:  # noqa: BLE001
        if not allowed_exception(e):
            raise Bad(f"forward raised {type(e).__name__}: {e}") from e
    repr(model)
    model.plan()
    model.close()


# -- model files ----------------------------------------------------------------------------------------------------

def file_case(r, rng, workdir):
    import culstm
    case = Case("file")
    sources = sorted((CORPUS / "safetensors").glob("*.safetensors")) + sorted((CORPUS / "onnx").glob("*.onnx"))
    source = r.choice(sources)
    data = bytearray(source.read_bytes())
    mutation = r.randrange(6)
    if mutation == 0:
        for _ in range(r.randrange(1, 8)):
            data[r.randrange(len(data))] = r.randrange(256)
    elif mutation == 1:
        del data[r.randrange(len(data)):]
    elif mutation == 2 and source.suffix == ".safetensors":
        data[0:8] = r.choice([2**64 - 1, 2**63, len(data), len(data) - 8, 0, 1, 2**32]).to_bytes(8, "little")
    elif mutation == 3:  # a run of random bytes in the header region
        start = r.randrange(min(len(data), 400))
        for i in range(start, min(len(data), start + r.randrange(1, 32))):
            data[i] = r.randrange(256)
    elif mutation == 4:  # a digit in the header JSON made large (offsets, shapes)
        digits = [i for i in range(8, min(len(data), 2000)) if chr(data[i]).isdigit()]
        if digits:
            i = r.choice(digits)
            data[i:i + 1] = str(r.choice([9, 99999999999, 2**63, 18446744073709551615])).encode()
    path = workdir / f"m{r.randrange(10**9)}{source.suffix}"
    path.write_bytes(bytes(data))
    case.description += f" {source.name} mutation {mutation}"
    odd_path = r.choice([None, None, None, None, workdir, workdir / "missing.safetensors", "", "\0", "a\0b",
                         os.devnull, 5, b"x", Path(str(path) + "\0")])
    target = path if odd_path is None else odd_path
    loader = r.choice(["load", "import"])
    naming = r.choice(["auto", "auto", "pytorch", "keras", "onnx", "mindspore", "nope", 3])
    case.description += f" {loader} path={target!r} naming={naming!r}"

    def check():
        try:
            if loader == "load":
                model = culstm.load_model_file(target, prefix=r.choice(["", "", "lstm.", "\0", 5]))
            else:
                model = culstm.import_model_file(target, naming=naming)
        except Exception as e:  # noqa: BLE001
            if not allowed_exception(e):
                raise Bad(f"{loader} raised {type(e).__name__}: {e}") from e
            return
        if odd_path is not None:
            raise Bad(f"{loader} accepted path {odd_path!r}")
        spec = model.spec
        x_shape = (1, 2, spec.input_size) if spec.batch_first else (2, 1, spec.input_size)
        try:
            model.forward(np.ones(x_shape, np.float32))
        except Exception as e:  # noqa: BLE001
            if not allowed_exception(e):
                raise Bad(f"forward after {loader} raised {type(e).__name__}: {e}") from e

    return case, check


# -- culstm.torch.LSTM --------------------------------------------------------------------------------------------

TORCH_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64",
                "complex64"]


def torch_case(r, rng):
    torch = import_torch()
    if torch is None:
        return Case("torch (not installed)"), lambda: None
    import culstm.torch as ct
    sizes = random_spec_sizes(r)
    sizes.pop("peepholes")
    I, H = sizes.pop("input_size"), sizes.pop("hidden_size")
    torch.manual_seed(r.randrange(2**31))
    module = ct.LSTM(I, H, **sizes)
    T, B = r.randrange(1, 5), r.randrange(1, 4)
    D = 2 if sizes["bidirectional"] else 1
    x_shape = (B, T, I) if sizes["batch_first"] else (T, B, I)
    good_x = torch.randn(x_shape)
    good_h = torch.randn(sizes["num_layers"] * D, B, H)
    case = Case(f"torch LSTM({I}, {H}, {sizes}) x{x_shape}")
    x, plain_x = good_x, good_x
    kind = r.randrange(10)
    if kind == 1:
        dtype = getattr(torch, r.choice(TORCH_DTYPES))
        x = good_x.to(dtype)
        if dtype != torch.float32:
            case.invalid.append(f"x dtype {dtype}")
        case.description += f" x {dtype}"
    elif kind == 2:
        x = good_x.transpose(0, 1).contiguous().transpose(0, 1)
        case.description += " x transposed"
    elif kind == 3:
        x = good_x[:1].expand(x_shape)
        plain_x = x.contiguous()
        case.description += " x expanded"
    elif kind == 4:
        x = case.note(Invalid(r.choice([good_x.numpy(), good_x.tolist(), None, "x", 3.0, garbage(r)]),
                              "x not a tensor"))
        case.description += f" x {type(x).__name__}"
    elif kind == 5:
        shape = r.choice([(), (3,), (1, 2, 3, 4), (T, B, I + 1), (T, 0, I)])
        x = torch.zeros(shape)
        if len(shape) != 0 and shape != (T, 0, I):
            case.invalid.append(f"x shape {shape}")
        plain_x = None
        case.description += f" x {shape}"
    elif kind == 7:  # a PackedSequence, built properly or by hand with anything in it
        from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence
        lengths_list = sorted((r.randrange(1, T + 1) for _ in range(B)), reverse=r.random() < 0.5)
        packed = pack_padded_sequence(good_x, torch.tensor(lengths_list), batch_first=sizes["batch_first"],
                                      enforce_sorted=False)
        if r.random() < 0.5:
            x = packed
            plain_x = None  # the results are compared with nn.LSTM's by test_torch.py
            case.description += f" packed {lengths_list}"
        else:
            sizes_junk = r.choice([torch.tensor([2, -1]), torch.tensor([1, 2]), torch.tensor([0]),
                                   torch.tensor([2**40]), torch.tensor([2, 1], dtype=torch.int32),
                                   torch.tensor([[2]]), torch.tensor([], dtype=torch.int64), packed.batch_sizes])
            index_junk = r.choice([None, torch.tensor([5, 7]), torch.tensor([0, 0]), torch.tensor([-1]),
                                   packed.sorted_indices])
            data_junk = r.choice([packed.data, packed.data[:1], packed.data[:, :1], torch.randn(0, I)])
            x = PackedSequence(data_junk, sizes_junk, index_junk, index_junk)
            plain_x = None
            case.description += f" hand-built packed sizes={sizes_junk.tolist()} index={index_junk}"
    elif kind == 6:
        x = good_x.clone()
        x.view(-1)[0] = float(r.choice(["nan", "inf"]))
        plain_x = x
    hx = None
    hkind = r.randrange(8)
    if hkind in (1, 2):
        hx = (good_h, torch.randn(good_h.shape))
    elif hkind == 3:
        hx = case.note(Invalid(r.choice([(good_h,), good_h, (1, 2), "hx",
                                         (good_h, good_h, good_h), (good_h.numpy(), good_h.numpy()),
                                         (good_h.double(), good_h.double()), (good_h[:, :, :1], good_h)]),
                               "hx junk"))
        case.description += " hx junk"
    elif hkind == 4:
        hx = (good_h.transpose(1, 2).contiguous().transpose(1, 2), good_h)
    lengths = None
    lkind = r.randrange(8)
    if lkind in (1, 2):
        lengths = torch.randint(0, T + 1, (B,))
        case.description += f" lengths {lengths.tolist()}"
    elif lkind == 3:
        lengths = r.choice([[T] * B, list(range(B))])
        case.description += f" lengths {lengths}"
    elif lkind == 4:
        lengths = case.note(Invalid(r.choice([[T + 1] * B, [-1] * B, [2**40] * B, ["a"] * B, torch.ones(B, 2),
                                              torch.full((B,), T + 1), torch.ones(B, dtype=torch.float32),
                                              torch.full((B,), 2**40), torch.ones(B + 1, dtype=torch.int32),
                                              "abc", 5.5]), "lengths junk"))
        case.description += f" lengths junk {lengths!r}"
    grad = r.random() < 0.1

    def check():
        watched = [(a, snapshot(a)) for a in (x, *(hx if isinstance(hx, tuple) else ()))
                   if isinstance(a, torch.Tensor)]
        try:
            with torch.set_grad_enabled(grad):
                got = module(x, hx, lengths)
        except Exception as e:  # noqa: BLE001
            if not allowed_exception(e):
                raise Bad(f"raised {type(e).__name__}: {e}") from e
            for a, before in watched:
                if not unchanged(a, before):
                    raise Bad("a failed call changed an argument") from e
            return
        if case.invalid or grad:
            raise Bad(f"accepted invalid input: {case.invalid} grad={grad}")
        if plain_x is None:
            return
        plain_hx = tuple(h.contiguous() for h in hx) if hx is not None else None
        with torch.no_grad():
            want = module(plain_x.contiguous(), plain_hx, lengths)
        for g, w in ((got[0], want[0]), (got[1][0], want[1][0]), (got[1][1], want[1][1])):
            if not same_values(g, w):
                raise Bad("result differs from the plain form's")

    return case, check


# -- the rest of the surface: spec fields set one by one, Activation, plan(), close() under calls, torch parameters

def misc_case(r, rng):
    import culstm
    spec = culstm.LstmSpec(3, 4, num_layers=r.randrange(1, 3), bidirectional=r.random() < 0.5)
    model = culstm.Model(spec, random_weights(rng, spec), max_batch=4, max_seq_len=8)
    what = r.choice(["spec field", "activation", "plan", "close", "torch parameter"])
    case = Case(f"misc {what}")
    junk = r.choice([-1, 0, 2**31, 2**70, 1.5, "x", None, b"x", [1], True, float("nan"), "bidirectional",
                     "batch_major", "f64", ("relu",), culstm.Activation("relu")])
    case.description += f" {junk!r}"

    def check():
        if what == "spec field":
            field = r.choice(list(culstm._core._SPEC_FIELDS) + ["batch_first"])
            try:
                setattr(spec, field, junk)
                spec.validate()
                culstm.Model(spec, random_weights(rng, spec)).forward(np.ones((2, 1, spec.input_size), np.float32)
                                                                       if not spec.batch_first else
                                                                       np.ones((1, 2, spec.input_size), np.float32))
            except Exception as e:  # noqa: BLE001
                if not allowed_exception(e):
                    raise Bad(f"spec.{field} = {junk!r}: {type(e).__name__}: {e}") from e
        elif what == "activation":
            try:
                culstm.Activation(junk, r.choice([None, 1.0, "a", float("inf"), 2**70]))
            except Exception as e:  # noqa: BLE001
                if not allowed_exception(e):
                    raise Bad(f"Activation({junk!r}): {type(e).__name__}: {e}") from e
        elif what == "plan":
            try:
                model.plan(junk)
            except Exception as e:  # noqa: BLE001
                if not allowed_exception(e):
                    raise Bad(f"plan({junk!r}): {type(e).__name__}: {e}") from e
        elif what == "close":
            import threading
            x = rng.standard_normal((8, 4, 3)).astype(np.float32)
            want = model.forward(x)
            problems = []

            def worker():
                for _ in range(20):
                    try:
                        got = model.forward(x)
                    except culstm.InvalidArgumentError as e:
                        if "closed" not in str(e):
                            problems.append(repr(e))
                        return
                    except Exception as e:  # noqa: BLE001
                        problems.append(repr(e))
                        return
                    if not all(same_values(g, w) for g, w in zip(got, want)):
                        problems.append("a forward racing close() returned other results")

            threads = [threading.Thread(target=worker) for _ in range(3)]
            for t in threads:
                t.start()
            model.close()
            for t in threads:
                t.join()
            if problems:
                raise Bad(f"forward racing close(): {problems[0]}")
        else:
            torch = import_torch()
            if torch is None:
                return
            import culstm.torch as ct
            m = ct.LSTM(3, 4, num_layers=2)
            name = r.choice(m._flat_weights_names)
            shape = getattr(m, name).shape
            replacement = r.choice([torch.zeros(1), torch.zeros(shape, dtype=torch.float64),
                                    torch.zeros(shape, dtype=torch.int32), torch.zeros(tuple(reversed(shape))),
                                    torch.zeros(shape).t() if len(shape) == 2 else torch.zeros(shape),
                                    torch.zeros(0), torch.full(shape, float("nan"))])
            case.description += f" {name} <- {replacement.dtype} {tuple(replacement.shape)}"
            with torch.no_grad():
                setattr(m, name, torch.nn.Parameter(replacement, requires_grad=False))
                try:
                    m(torch.randn(2, 1, 3))
                except Exception as e:  # noqa: BLE001
                    if not allowed_exception(e):
                        raise Bad(f"torch parameter {name}: {type(e).__name__}: {e}") from e

    return case, check


# -- the worker's loop ----------------------------------------------------------------------------------------------

def run_cases(seed, count, first=0):
    import warnings
    warnings.simplefilter("ignore")  # NumPy's and PyTorch's warnings about odd conversions are not the point
    bad = 0
    with tempfile.TemporaryDirectory() as workdir:
        for index in range(first, first + count):
            r = random.Random(seed * 1_000_003 + index)
            rng = np.random.default_rng(r.randrange(2**32))
            kind = r.choice(["forward"] * 5 + ["model"] * 2 + ["file"] * 2 + ["torch"] * 2 + ["misc"])
            try:
                if kind == "file":
                    case, check = file_case(r, rng, Path(workdir))
                else:
                    case, check = {"forward": forward_case, "model": model_case, "torch": torch_case,
                                   "misc": misc_case}[kind](r, rng)
                print(f"case {seed}:{index} {case.description}", flush=True)
                check()
            except Bad as e:
                bad += 1
                print(f"BAD {seed}:{index} {kind}: {e}", flush=True)
    print(f"done: {count} cases, {bad} bad", flush=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    start = 0
    if "--first" in arguments:
        at = arguments.index("--first")
        start = int(arguments[at + 1])
        del arguments[at:at + 2]
    run_cases(int(arguments[0]), int(arguments[1]), start)
