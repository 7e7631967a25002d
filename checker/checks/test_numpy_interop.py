"""Hidden checks for the numpy_interop kata. NumPy and torch themselves are the oracles.

Sharing is judged on memory, not on values: a result that must share points at the very
first element of its source (``data_ptr`` against the array's data address) with the same
element strides, so every write through one shows in the other; a result that must copy
touches none of its source's bytes. Values and dtypes come from torch's own conversion of a
fresh copy (to_tensor, to_array), from the NumPy code itself (port_standardize) and from
each library's own seeded generator (paired_noise).
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch

from checker.contracts import assert_exact_type
from checker.helpers import (
    as_array_result,
    as_tensor_result,
    assert_close,
    describe,
    fail,
    layouts,
    random_shape,
)
from checker.inputs import shape_cases
from checker.sandbox.errors import ForbiddenAPI

pytestmark = pytest.mark.kata("numpy_interop")

# The first backward of a process imports lazily (about a second); pay it at import time,
# not inside the first check that runs one.
_warm = torch.ones(2, dtype=torch.float64, requires_grad=True)
(_warm.amax() / (_warm.std(correction=0) + 1)).backward()

F64 = torch.float64
TORCH_HAS = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float16", "float32", "float64", "complex64", "complex128"]
TORCH_LACKS = ["object", "U3", "S2", "datetime64[D]", "timedelta64[s]", "longdouble",
               "clongdouble", "V8", [("x", "<f8"), ("y", "<i4")]]


def fixed() -> np.random.Generator:
    """The fixed corpus's own generator: the same arrays on every seed, so that a failure on
    it reads the same on every seed (random draws come after it, from ``rng``)."""
    return np.random.default_rng(20260)


def call(what, fn, *args):
    """Run the learner's function; an error it raises becomes a failure that names the call."""
    try:
        return fn(*args)
    except (NotImplementedError, AssertionError):
        raise
    except ForbiddenAPI as exc:
        fail(f"{what}: {exc}.\n  Try: reverse every dim with x.permute(...) (NumPy's .T "
             "reverses all of them); mT and transpose(i, j) swap two.")
    except Exception as exc:  # noqa: BLE001 - any error of the learner's code is a verdict
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        hint = WHEN_IT_RAISES.get(what.split("(")[0], "")
        fail(f"{what} raised {type(exc).__name__}: {first}" + (f"\n  Try: {hint}" if hint else ""))


WHEN_IT_RAISES = {
    "to_tensor": "torch refuses to view some arrays (negative strides, a foreign byte order, "
    "strides that are not whole items): hand it a fresh native, writable, contiguous copy of "
    "exactly those.",
    "to_array": ".numpy() refuses tensors that require grad, carry a conj or neg bit, or have "
    "a dtype NumPy lacks: detach() shares the memory, resolving a bit or converting bfloat16 "
    "makes the copy.",
    "port_standardize": "read the NumPy code again: what does each call return in torch, and "
    "which dtypes does torch's std accept?",
    "paired_noise": "build each library's own generator from the seed, and ask it for the "
    "shape and dtype directly.",
}


@contextlib.contextmanager
def quiet():
    """The checks' own conversions of read-only arrays warn (once); that is not the learner's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def byte_span(a: np.ndarray) -> tuple[int, int]:
    """[low, high) of the bytes an array's elements occupy."""
    low = high = address(a)
    for size, stride in zip(a.shape, a.strides, strict=True):
        step = (size - 1) * stride
        low, high = (low + step, high) if step < 0 else (low, high + step)
    return low, high + a.itemsize


def tensor_span(t: torch.Tensor) -> tuple[int, int]:
    start = t.untyped_storage().data_ptr()
    return start, start + t.untyped_storage().nbytes()


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def array_label(a: np.ndarray, label: str) -> str:
    flags = "" if a.flags.writeable else ", read-only"
    return (f"to_tensor({label}: shape={a.shape} strides={a.strides} dtype={a.dtype.str}"
            f"{flags})")


# ----------------------------------------------------------------------------- to_tensor


def arrays_that_share(rng) -> list[tuple[str, np.ndarray]]:
    """Arrays torch can view as they are: every dtype, and strided, offset, transposed, 0-d,
    stride-0, size-1 and unaligned layouts."""
    cases = []
    for name in TORCH_HAS:
        shape = (3, 4)
        cases.append((f"a C-contiguous {name} array", values(rng, shape, name)))
    base = values(rng, (5, 7), "float64")
    cases += [
        ("a transposed (Fortran-order) array", base.T),
        ("every other column", base[:, ::2]),
        ("rows 2 onwards (an offset)", base[2:]),
        ("a column (stride 56 bytes)", base[:, 3]),
        ("a 0-d array", values(rng, (), "float32")),
        ("a size-1 dim", values(rng, (4, 1, 3), "int32")),
        ("a 3-d array permuted", values(rng, (2, 3, 4), "float32").transpose(2, 0, 1)),
        ("a stride-0 writable view (as_strided)",
         np.lib.stride_tricks.as_strided(values(rng, (3,), "float64"), (4, 3), (0, 8))),
        ("a big-endian-spelled 1-byte dtype ('>u1' is native)", values(rng, (3, 4), "uint8")
         .astype(">u1")),
    ]
    unaligned = np.frombuffer(bytearray(8 * 5 + 1), dtype=np.float64, offset=1, count=5)
    unaligned[:] = rng.normal(size=5)
    cases.append(("an unaligned writable float64 array", unaligned))
    return cases


def values(rng, shape, name) -> np.ndarray:
    """Random values of NumPy dtype ``name`` (small integers, finite floats)."""
    dtype = np.dtype(name)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        return rng.integers(0 if dtype.kind == "u" else -50, 50, size=shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def arrays_to_copy(rng) -> list[tuple[str, np.ndarray]]:
    """Arrays torch must not (or cannot) view: negative strides, foreign byte order, strides
    that are not whole items, and read-only memory."""
    base = values(rng, (4, 6), "float64")
    read_only = values(rng, (3, 5), "float32")
    read_only.flags.writeable = False
    ro_t = values(rng, (3, 4), "int64").T
    ro_t.flags.writeable = False
    records = np.zeros(5, dtype=[("x", "<f8"), ("y", "<i4")])
    records["x"] = rng.normal(size=5)
    return [
        ("rows reversed (a negative stride)", base[::-1]),
        ("every other column, reversed", base[:, ::-2]),
        ("a big-endian float64 array", values(rng, (3, 4), "float64").astype(">f8")),
        ("a big-endian int32 array, reversed", values(rng, (6,), "int32").astype(">i4")[::-1]),
        ("an int8 array, reversed (stride -1 byte)", values(rng, (7,), "int8")[::-1]),
        ("a record field (12-byte strides over 8-byte floats)", records["x"]),
        ("a read-only array", read_only),
        ("a read-only transposed array", ro_t),
        ("np.broadcast_to (read-only, stride 0)", np.broadcast_to(values(rng, (4,), "int16"), (3, 4))),
        ("a read-only array, reversed", read_only[::-1]),
    ]


def reference_tensor(a: np.ndarray) -> torch.Tensor:
    """torch's own conversion of a fresh, native, contiguous copy: the values and dtype."""
    with quiet():
        return torch.from_numpy(np.array(a, dtype=a.dtype.newbyteorder("="), order="C", copy=True))


def check_to_tensor(impl, label: str, a: np.ndarray, *, must_copy: bool) -> None:
    what = array_label(a, label)
    writeable = a.flags.writeable
    expected = reference_tensor(a)
    got = as_tensor_result(call(what, impl.to_tensor, a), what)
    if a.flags.writeable != writeable:
        a.flags.writeable = writeable
        fail(f"{what}: your code changed the array's writeable flag. The flag is NumPy's "
             "promise to whoever holds the array; copy the data instead of lifting it.")
    assert_close(got, expected, what, rtol=0, atol=0,
                 hint="the values, shape and dtype of the array (a big-endian '>f8' is "
                 "float64: byte order is storage, not dtype).")
    if a.size == 0:
        return
    itemsize = a.itemsize
    if must_copy:
        if overlaps(tensor_span(got), byte_span(a)):
            reason = ("NumPy marked this memory read-only, but a tensor is always writable: a "
                      "view would let torch (or a later in-place op) change it behind NumPy's "
                      "back. torch.from_numpy only warns about this, once per process."
                      if not a.flags.writeable else
                      "torch cannot express this layout or byte order as a view.")
            fail(f"{what}: the tensor shares the array's memory; a copy was required.\n  {reason}\n"
                 "  Try: hand torch a fresh native, writable, contiguous copy of such arrays.")
        return
    strides = tuple(s // itemsize for s in a.strides)
    if got.data_ptr() != address(a) or tuple(got.stride()) != strides:
        fail(f"{what}: the tensor does not view the array's memory.\n"
             f"  array: data at {address(a):#x}, element strides {strides}\n"
             f"  yours: {describe(got)}, data at {got.data_ptr():#x}\n"
             "  A write through the tensor would not show in the array. Something copied: "
             "torch.tensor(...) always does, and so does making the array contiguous first; "
             "torch.from_numpy and torch.as_tensor view any layout of non-negative whole-item "
             "strides as it is.")


@pytest.mark.exercise("to_tensor")
def test_to_tensor_shares_every_viewable_array(impl, rng):
    for label, a in arrays_that_share(fixed()):
        check_to_tensor(impl, label, a, must_copy=False)


@pytest.mark.exercise("to_tensor")
def test_to_tensor_copies_layouts_torch_cannot_view(impl, rng):
    for label, a in arrays_to_copy(fixed())[:6]:
        check_to_tensor(impl, label, a, must_copy=True)


@pytest.mark.exercise("to_tensor")
def test_to_tensor_copies_read_only_memory(impl, rng):
    for label, a in arrays_to_copy(fixed())[6:]:
        check_to_tensor(impl, label, a, must_copy=True)


@pytest.mark.exercise("to_tensor")
def test_to_tensor_empty_arrays(impl, rng):
    for label, shape in shape_cases(rng, 2)[:1] + [("no elements, 3 dims", (2, 0, 3))]:
        for name in ("float32", "int64"):
            a = values(fixed(), shape, name)
            check_to_tensor(impl, f"{label} {name}", a, must_copy=False)
            check_to_tensor(impl, f"{label} {name}, reversed", a[::-1], must_copy=True)


@pytest.mark.exercise("to_tensor")
def test_to_tensor_rejects_dtypes_torch_lacks(impl, rng):
    for spec in TORCH_LACKS:
        a = np.zeros(random_shape(rng, 1, 2, 5), dtype=spec)
        what = array_label(a, f"an array of {np.dtype(spec)}")
        try:
            reference_tensor(a)
        except TypeError:
            pass
        else:  # pragma: no cover - a torch that learned this dtype: nothing to check
            continue
        try:
            got = impl.to_tensor(a)
        except TypeError:
            continue
        except NotImplementedError:
            raise
        except Exception as exc:  # noqa: BLE001
            fail(f"{what} raised {type(exc).__name__}: {exc}\n  Try: torch has no dtype for "
                 "it: raise TypeError, as torch.from_numpy does.")
        fail(f"{what}: expected TypeError, got {describe(got)}.\n  Try: torch has no dtype "
             "for it; converting it to another dtype silently changes what the values mean.")


@pytest.mark.exercise("to_tensor")
def test_to_tensor_random_arrays(impl, rng):
    for i in range(8):
        name = TORCH_HAS[int(rng.integers(len(TORCH_HAS)))]
        a = values(rng, random_shape(rng, 3, 2, 6), name)
        kind = ["plain", "permuted", "sliced", "reversed", "read-only", "big-endian"][i % 6]
        if kind == "permuted":
            a = a.transpose(tuple(int(d) for d in rng.permutation(3)))
        elif kind == "sliced":
            a = a[:, 1:, ::2]
        elif kind == "reversed":
            a = a[:, ::-1]
        elif kind == "read-only":
            a.flags.writeable = False
        elif kind == "big-endian":
            a = a.astype(a.dtype.newbyteorder(">"))
        must_copy = kind in ("reversed", "read-only") or not a.dtype.isnative
        check_to_tensor(impl, f"a {kind} {name} array", a, must_copy=must_copy)


# ----------------------------------------------------------------------------- to_array

NUMPY_FOR = {torch.bfloat16: np.dtype("float32")}


def tensor_label(t: torch.Tensor, label: str) -> str:
    marks = [m for m, on in (("requires_grad", t.requires_grad), ("conj bit", t.is_conj()),
                             ("neg bit", t.is_neg()), ("inference", t.is_inference())) if on]
    return f"to_array({label}: {describe(t)}{', ' + ', '.join(marks) if marks else ''})"


def check_to_array(impl, label: str, t: torch.Tensor) -> None:
    what = tensor_label(t, label)
    source = t.detach().resolve_conj().resolve_neg()
    expected_dtype = NUMPY_FOR.get(t.dtype)
    plain = source if expected_dtype is None else source.float()
    expected = plain.clone().numpy()
    got = as_array_result(call(what, impl.to_array, t), what)
    assert_close(got, expected, what, rtol=0, atol=0,
                 hint="the tensor's values (a conj or neg view's values are the resolved ones) "
                 "and its dtype: only bfloat16, which NumPy lacks, changes (to float32).")
    if t.numel() == 0:
        return
    if expected_dtype is not None or t.is_conj() or t.is_neg():
        if overlaps(byte_span(got), tensor_span(t)):
            fail(f"{what}: the array shares the tensor's memory, but that memory does not "
                 "hold these values in NumPy's terms (a conj/neg bit is applied lazily; "
                 "bfloat16 has no NumPy dtype).\n  Try: resolve or convert "
                 "first, which makes the copy.")
        return
    strides = tuple(s * t.element_size() for s in t.stride())
    if address(got) != t.data_ptr() or got.strides != strides:
        fail(f"{what}: the array does not view the tensor's memory.\n"
             f"  tensor: data at {t.data_ptr():#x}, byte strides {strides}\n"
             f"  yours:  data at {address(got):#x}, byte strides {got.strides}\n"
             "  A write into the array would not reach the tensor. Something copied: "
             "np.array(...), .clone(), .contiguous(), or a dtype change. requires_grad is no "
             "reason to copy: detach() shares the memory. NumPy views any strides torch has.")
    if not got.flags.writeable:
        fail(f"{what}: the array is read-only; the tensor's memory is writable, and the array "
             "must be a writable view of it.")


def dtype_corpus(rng) -> list[tuple[str, torch.Tensor]]:
    cases = []
    for name in [*TORCH_HAS, "bfloat16"]:
        shape = (3, 4)
        if name == "bfloat16":
            t = torch.from_numpy(values(rng, shape, "float32")).bfloat16()
        else:
            t = torch.from_numpy(values(rng, shape, name)).clone()
        cases.append((f"a {name} tensor", t))
    return cases


@pytest.mark.exercise("to_array")
def test_to_array_every_dtype(impl, rng):
    for label, t in dtype_corpus(fixed()):
        check_to_array(impl, label, t)


@pytest.mark.exercise("to_array")
def test_to_array_every_layout(impl, rng):
    for ndim in (0, 1, 2, 3):
        for shape_label, shape in shape_cases(rng, ndim, draws=1):
            base = torch.from_numpy(fixed().normal(size=shape))
            for layout, t in layouts(base):
                check_to_array(impl, f"{shape_label}, {layout}", t)
    column = torch.from_numpy(fixed().normal(size=(3, 1)).astype("float32"))
    check_to_array(impl, "an expanded tensor (stride 0)", column.expand(3, 4))


@pytest.mark.exercise("to_array")
def test_to_array_requires_grad_and_inference(impl, rng):
    shape = (3, 5)
    leaf = torch.from_numpy(fixed().normal(size=shape)).requires_grad_()
    check_to_array(impl, "a leaf that requires grad", leaf)
    check_to_array(impl, "a transposed leaf that requires grad", leaf.t())
    check_to_array(impl, "a non-leaf result", leaf * 2)
    with torch.inference_mode():
        inf = torch.from_numpy(fixed().normal(size=shape).astype("float32")).clone()
    check_to_array(impl, "an inference tensor", inf)


@pytest.mark.exercise("to_array")
def test_to_array_lazy_conj_and_neg_views(impl, rng):
    z = torch.from_numpy(values(fixed(), (3, 5), "complex128"))
    x = torch.from_numpy(values(fixed(), (3, 5), "float64"))
    cases = [("a conj view", z.conj()), ("a transposed conj view", z.t().conj()),
             ("a neg view of a float tensor", x._neg_view()),
             ("a neg view of a complex tensor", z._neg_view()),
             ("a conj view that requires grad", z.clone().requires_grad_().conj()),
             ("the conj of a real tensor (no bit: a plain view)", x.conj()),
             ("the resolved conj (no bit)", z.conj().resolve_conj())]
    for i in rng.permutation(len(cases)):
        check_to_array(impl, *cases[int(i)])


# ----------------------------------------------------------------------------- port_standardize


def standardize(a: np.ndarray, axis: int) -> np.ndarray:
    """The NumPy code of the stub, verbatim: the oracle."""
    peak = a.max(axis=axis, keepdims=True)
    spread = a.std(axis=axis, keepdims=True)
    return ((a - peak) / (spread + 1)).T


def torch_standardize(x: torch.Tensor, axis: int) -> torch.Tensor:
    """The check's own differentiable version, for the expected gradient."""
    src = x if x.is_floating_point() else x.double()
    spread = src.std(dim=axis, keepdim=True, correction=0)
    out = (x - x.amax(dim=axis, keepdim=True)) / (spread + 1)
    return out.permute(*range(x.dim() - 1, -1, -1))


def check_port(impl, x: torch.Tensor, axis: int, label: str, *, grad: bool) -> None:
    what = f"port_standardize({label}: {describe(x)}, axis={axis})"
    expected = torch.from_numpy(standardize(x.detach().numpy(), axis))
    if grad:
        x = x.detach().clone().requires_grad_()
    got = as_tensor_result(call(what, impl.port_standardize, x, axis), what)
    tol = {torch.float32: (2e-5, 2e-5)}.get(expected.dtype, (1e-9, 1e-9))
    assert_close(got, expected, what, rtol=tol[0], atol=tol[1],
                 hint="read the NumPy line by line: axis is dim; max over an axis gives values "
                 "(torch's max(dim) gives values and indices); NumPy's std divides by N; "
                 "NumPy's .T reverses every axis; NumPy's std of integers is float64.")
    if not grad:
        return
    if not got.requires_grad or got.grad_fn is None:
        fail(f"{what}: x requires grad, but the result has no autograd graph (grad_fn is "
             "None). A trip through NumPy (.numpy(), np.asarray) or .detach() cuts the graph.\n"
             "  Try: compute it with torch ops only.")
    g = torch.randn(expected.shape, dtype=expected.dtype)
    ref_x = x.detach().clone().requires_grad_()
    torch_standardize(ref_x, axis).backward(g)
    got.backward(g)
    assert_close(x.grad, ref_x.grad, f"{what}: x.grad after out.backward(g)",
                 rtol=tol[0] * 10, atol=tol[1] * 10,
                 hint="the values match but the gradient does not: was part of it computed "
                 "from detached data?")


@pytest.mark.exercise("port_standardize")
def test_port_standardize_float_every_axis(impl, rng):
    for ndim in (1, 2, 3, 4):
        shape = random_shape(rng, ndim, 2, 6)
        for axis in range(-ndim, ndim):
            dtype = F64 if (axis + ndim) % 2 == 0 else torch.float32
            x = torch.randn(shape, dtype=dtype) * 3
            check_port(impl, x, axis, f"{ndim}-d", grad=True)


@pytest.mark.exercise("port_standardize")
def test_port_standardize_integer_inputs(impl, rng):
    for ndim, name in ((1, "int64"), (2, "int32"), (3, "int16"), (4, "int8"), (2, "int64")):
        shape = random_shape(rng, ndim, 2, 5)
        axis = int(rng.integers(-ndim, ndim))
        x = torch.from_numpy(rng.integers(-20, 21, size=shape).astype(name))
        check_port(impl, x, axis, f"{ndim}-d {name}", grad=False)


@pytest.mark.exercise("port_standardize")
def test_port_standardize_edge_shapes(impl, rng):
    """Size-1 axes (std 0), ties for the maximum, no elements in another dim."""
    for ndim in (2, 3):
        for label, shape in shape_cases(rng, ndim, draws=0):
            x = torch.randn(shape, dtype=F64)
            for axis in (0, -1):
                if shape[axis] >= 1:  # the contract: the reduced axis has elements
                    # std has no derivative where it is 0 (a single element): values only
                    check_port(impl, x, axis, label, grad=0 not in shape and shape[axis] > 1)
    ties = torch.from_numpy(rng.integers(0, 3, size=(4, 5)).astype("int64"))
    check_port(impl, ties, 1, "ties for the maximum", grad=False)
    check_port(impl, ties.double(), 0, "ties for the maximum, float64", grad=False)


# ----------------------------------------------------------------------------- paired_noise


def expected_noise(shape, seed, dtype):
    """What each library draws when seeded directly: torch.manual_seed inside fork_rng (so
    the check's own global state survives), NumPy's default_rng."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t = torch.randn(shape, dtype=getattr(torch, dtype))
    a = np.random.default_rng(seed).standard_normal(shape, dtype=np.dtype(dtype))
    return t, a


def check_noise(impl, shape, seed, dtype):
    what = f"paired_noise({shape}, seed={seed}, dtype={dtype!r})"
    t_exp, a_exp = expected_noise(shape, seed, dtype)
    got = call(what, impl.paired_noise, shape, seed, dtype)
    assert_exact_type(got, (t_exp, a_exp), what, hint="return a tuple (tensor, ndarray).")
    assert_close(got[0], t_exp, f"{what}: the torch half", rtol=0, atol=0,
                 hint="torch's draws come from a torch.Generator seeded with the seed, drawn "
                 "directly in the dtype asked for: a float32 draw of 16 or more numbers is "
                 "not a float64 draw rounded.")
    assert_close(got[1], a_exp, f"{what}: the NumPy half", rtol=0, atol=0,
                 hint="NumPy's draws come from np.random.default_rng(seed) (PCG64), not the "
                 "legacy np.random.seed / RandomState stream (MT19937), in the dtype asked for.")


@pytest.mark.exercise("paired_noise")
def test_paired_noise_matches_each_library(impl, rng):
    shapes = [(), (0,), (1,), (5,), (16,), (3, 7), (2, 3, 5), (40,)]
    seeds = [0, 1, 2**31 - 1, int(rng.integers(2**31))]
    for i, shape in enumerate(shapes):
        for dtype in ("float64", "float32"):
            check_noise(impl, shape, seeds[i % len(seeds)], dtype)


@pytest.mark.exercise("paired_noise")
def test_paired_noise_is_reproducible_whatever_ran_before(impl, rng):
    shape = random_shape(rng, 2, 4, 9)
    seed = int(rng.integers(2**31))
    for dtype in ("float64", "float32"):
        first = call("paired_noise", impl.paired_noise, shape, seed, dtype)
        torch.randn(7)  # the program draws from the global generators in between
        np.random.standard_normal(7)
        check_noise(impl, shape, seed, dtype)
        again = call("paired_noise", impl.paired_noise, shape, seed, dtype)
        if not (torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])):
            fail(f"paired_noise({shape}, seed={seed}, dtype={dtype!r}) gave different numbers "
                 "on a later call with the same arguments.\n  Try: make a fresh generator on "
                 "every call; one made once and kept moves on with every draw.")


@pytest.mark.exercise("paired_noise")
def test_paired_noise_default_dtype_and_other_seeds(impl, rng):
    for seed in (int(s) for s in rng.integers(2**31, size=3)):
        shape = random_shape(rng, 2, 3, 8)
        t_exp, a_exp = expected_noise(shape, seed, "float64")
        what = f"paired_noise({shape}, seed={seed})"
        got = call(what, impl.paired_noise, shape, seed)
        assert_exact_type(got, (t_exp, a_exp), what, hint="return a tuple (tensor, ndarray).")
        assert_close(got[0], t_exp, f"{what}: the torch half", rtol=0, atol=0,
                     hint="dtype defaults to 'float64' for both halves.")
        assert_close(got[1], a_exp, f"{what}: the NumPy half", rtol=0, atol=0,
                     hint="dtype defaults to 'float64' for both halves.")
