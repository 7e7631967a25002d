"""Hidden checks for the cpp_extension kata: the learner's C++ is built (checker.cppbuild) and
judged through PyTorch itself: the dispatcher's registrations, torch.library.opcheck,
gradcheck, torch.compile with a non-inductor backend, and torch's own arithmetic as the oracle.

The learner's functions only return source text (inside the rules window, like every call
into their file); building it runs a compiler, which is the judge's work and happens outside
that window. Every call into the built code — the pybind11 function, the operator — runs
inside the window and the input and state guards again.

Exercises are judged apart: each check builds one translation unit holding the learner's
source for its exercise and, for what that exercise does not cover, the check's own
reference pieces (``_REF_*``, in a C++ namespace of their own). The operator namespace comes
from the build's hash (``KATA_NS``), so every distinct source gets a fresh one; messages
show it as ``ns``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from checker.contracts import guarded
from checker.cppbuild import NOT_BUILT, BuildError, Built, Chunk, build, cache_root, chunk_in
from checker.helpers import (
    assert_close,
    describe,
    fail,
    layouts,
    opcheck_failures,
    opcheck_message,
    random_shape,
    require_torch,
)

pytestmark = pytest.mark.kata("cpp_extension")

if hasattr(torch, "_logging"):
    torch._logging.set_logs(dynamo=logging.ERROR)

_REF_DEF_CPU = r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ExpandUtils.h>
#include <ATen/ops/empty.h>
namespace kata_check {
at::Tensor sqdiff_cpu(const at::Tensor& x, const at::Tensor& y) {
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), "sqdiff: dtypes differ");
  const auto shape = at::infer_size(x.sizes(), y.sizes());
  const at::Tensor a = x.expand(shape).contiguous(), b = y.expand(shape).contiguous();
  at::Tensor out = at::empty(shape, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sqdiff", [&] {
    const scalar_t* p = a.data_ptr<scalar_t>();
    const scalar_t* q = b.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = (p[i] - q[i]) * (p[i] - q[i]);
  });
  return out;
}
}  // namespace kata_check
TORCH_LIBRARY(KATA_NS, m) { m.def("sqdiff(Tensor x, Tensor y) -> Tensor"); }
TORCH_LIBRARY_IMPL(KATA_NS, CPU, m) { m.impl("sqdiff", &kata_check::sqdiff_cpu); }
"""

_REF_META = r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/ExpandUtils.h>
#include <ATen/ops/empty.h>
namespace kata_check {
at::Tensor sqdiff_meta(const at::Tensor& x, const at::Tensor& y) {
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), "sqdiff: dtypes differ");
  return at::empty_symint(at::infer_size_symdimvector(x.sym_sizes(), y.sym_sizes()), x.options());
}
}  // namespace kata_check
TORCH_LIBRARY_IMPL(KATA_NS, Meta, m) { m.impl("sqdiff", &kata_check::sqdiff_meta); }
"""

_REF_AUTOGRAD = r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/ExpandUtils.h>
#include <ATen/TensorOperators.h>
#include <torch/csrc/autograd/custom_function.h>
namespace kata_check {
struct SqDiffFn : public torch::autograd::Function<SqDiffFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& y) {
    ctx->save_for_backward({x, y});
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = c10::Dispatcher::singleton().findSchemaOrThrow(KATA_NS_STR "::sqdiff", "")
        .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
    return op.call(x, y);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    const auto s = ctx->get_saved_variables();
    const at::Tensor d = g[0] * 2 * (s[0] - s[1]);
    return {at::sum_to(d, s[0].sym_sizes()), at::sum_to(-d, s[1].sym_sizes())};
  }
};
at::Tensor sqdiff_autograd(const at::Tensor& x, const at::Tensor& y) {
  return SqDiffFn::apply(x, y);
}
}  // namespace kata_check
TORCH_LIBRARY_IMPL(KATA_NS, Autograd, m) { m.impl("sqdiff", &kata_check::sqdiff_autograd); }
"""

# Pairs of shapes that broadcast, the edge cases first: empty shapes, size 0 and 1, one
# shape longer than the other on either side, repeated sizes.
_SHAPE_PAIRS = [
    ((), ()), ((3,), ()), ((), (2, 3)), ((1,), (4,)), ((4,), (1,)), ((0,), (1,)),
    ((1,), (0,)), ((5, 0), (1, 0)), ((2, 1, 4), (3, 1)), ((3, 1), (2, 1, 4)), ((1, 1), (1,)),
    ((2, 2), (2,)), ((6, 1, 1), (1, 5, 1)),
    ((2, 1), (2,)), ((2, 1), (1, 2)),  # as many elements, other shapes: still a broadcast
]
_NOT_BROADCASTABLE = [((3,), (4,)), ((2, 3), (3, 2)), ((0,), (2,)), ((2, 1), (4, 3)),
                      ((5, 2, 3), (4, 1))]


# ----------------------------------------------------------------------------- building


class _Clean:
    """Turns the build's namespace into 'ns' in every message."""

    def __init__(self) -> None:
        self.ns = ""

    def __call__(self, text: str) -> str:
        return text.replace(self.ns, "ns") if self.ns else text


def _learner_source(impl, name: str) -> Chunk:
    text = getattr(impl, name)()
    if type(text) is not str:
        fail(f"{name}() must return the C++ source as a str, got {describe(text)}.")
    if not text.strip():
        fail(f"{name}() returned an empty string: write the C++ source there.")
    return chunk_in(text, impl.module.__file__)


def _build(chunks: list[Chunk], *, python_module: bool = False) -> Built:
    """Build and load: loading runs the library's static initializers (the registrations,
    and whatever else a source puts there), so it runs under the state guard."""
    try:
        with guarded("loading your compiled library", build, ()):
            return build(chunks, python_module=python_module, root=cache_root())
    except BuildError as exc:
        fail(f"{NOT_BUILT}:\n{exc}\n  Try: fix this first error (the others often "
             "follow from it); `kata lesson` lists the headers each piece needs.")
    raise AssertionError  # unreachable


@contextlib.contextmanager
def _native(impl, what: str, clean: _Clean, window: bool = True) -> Iterator[None]:
    """A call into the built code: the rules window (unless the judge's own machinery, a
    compiler, drives it), and its exceptions as failures."""
    try:
        with impl.rules() if window else contextlib.nullcontext():
            yield
    except NotImplementedError:
        raise
    except AssertionError as exc:
        fail(clean(str(exc)))
    except Exception as exc:
        first = clean(str(exc).strip()).splitlines()
        fail(f"{what} raised {type(exc).__name__}: {first[0] if first else ''}")


def _op(built: Built):
    return getattr(torch.ops, built.namespace).sqdiff


def _ops_build(impl, clean: _Clean, learner: str, *refs: str) -> Any:
    """Build the learner's ``learner`` source with the check's ``refs``; the op packet."""
    chunk = _learner_source(impl, learner)
    built = _build([Chunk(r) for r in refs if r is _REF_DEF_CPU] + [chunk]
                   + [Chunk(r) for r in refs if r is not _REF_DEF_CPU])
    clean.ns = built.namespace
    try:
        return _op(built)
    except (AttributeError, RuntimeError):
        fail(f"{learner}(): the build registered no operator ns::sqdiff.\n  Try: "
             "TORCH_LIBRARY(KATA_NS, m) { m.def(\"sqdiff(Tensor x, Tensor y) -> Tensor\"); }")
    raise AssertionError  # unreachable


def _has_kernel(packet, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(packet.default.name(), key)


def _expected(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x.detach().double() - y.detach().double()) ** 2).to(x.dtype)


def _call_op(impl, clean: _Clean, op, x, y, what: str) -> torch.Tensor:
    with guarded("sqdiff", op, (x, y)), _native(impl, what, clean):
        return op(x, y)


def _pairs(rng, count: int = 3) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The fixed corpus, then random broadcasting pairs with distinct sizes."""
    drawn = []
    for _ in range(count):
        full = random_shape(rng, int(rng.integers(1, 4)))
        a = tuple(1 if rng.random() < 0.3 else s for s in full)
        b = tuple(1 if rng.random() < 0.3 else s for s in full)[int(rng.integers(0, len(full))):]
        drawn.append((a, b))
    return _SHAPE_PAIRS + drawn


def _opcheck(clean: _Clean, op, args, utils: tuple[str, ...], what: str,
             hints: dict[str, str] | None = None) -> None:
    try:
        failed = opcheck_failures(op, args, utils)
    except Exception as exc:
        fail(clean(f"torch.library.opcheck({what}) raised {type(exc).__name__}: "
                   f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"))
    if failed:
        fail(opcheck_message(failed, what, clean, hints))


# ----------------------------------------------------------------------------- bound_function


def _module(impl):
    built = _build([_learner_source(impl, "bound_function")], python_module=True)
    fn = getattr(built.module, "broadcast_shape", None)
    if fn is None:
        fail("bound_function(): the module has no function broadcast_shape.\n  Try: "
             "PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def(\"broadcast_shape\", "
             "&broadcast_shape, ...); }")
    return fn


def _call_bound(impl, fn, a, b, keywords: bool = False):
    what = f"broadcast_shape(a={list(a)}, b={list(b)})" if keywords else \
        f"broadcast_shape({list(a)}, {list(b)})"
    clean = _Clean()
    with guarded("broadcast_shape", fn, (list(a), list(b))), _native(impl, what, clean):
        return (fn(a=list(a), b=list(b)) if keywords else fn(list(a), list(b))), what


@pytest.mark.exercise("bound_function")
def test_bound_function_values(impl, rng):
    fn = _module(impl)
    for a, b in _pairs(rng) + [((2**31,), (1,)), ((3, 1), (2**33,))]:  # sizes past 32 bits
        got, what = _call_bound(impl, fn, a, b)
        expected = list(torch.broadcast_shapes(a, b))
        if type(got) is not list or any(type(v) is not int for v in got) or got != expected:
            fail(f"{what}:\n  expected {expected!r}\n  got      {got!r}\n  Try: align the "
                 "shapes at their last dimension; a size of 1 stretches to the other size (0 "
                 "included), a missing dimension counts as 1. Return std::vector<int64_t> "
                 "(pybind11/stl.h makes it a list of ints).")


@pytest.mark.exercise("bound_function")
def test_bound_function_keywords(impl, rng):
    fn = _module(impl)
    a, b = (2, 1, 3), (4, 1)
    try:
        got, what = _call_bound(impl, fn, a, b, keywords=True)
    except AssertionError as exc:
        fail(f"{exc}\n  Try: name the arguments in the binding: py::arg(\"a\"), py::arg(\"b\").")
    if got != [2, 4, 3]:
        fail(f"{what}: expected [2, 4, 3], got {got!r}.")


def _names_shape(text: str, shape) -> bool:
    """Whether ``text`` writes ``shape`` as a list or a tuple, every size in order."""
    sizes = r"\s*,\s*".join(str(int(d)) for d in shape)
    return bool(re.search(rf"[\[(]\s*{sizes}\s*,?\s*[\])]", text))


@pytest.mark.exercise("bound_function")
def test_bound_function_errors(impl, rng):
    fn = _module(impl)
    for a, b in _NOT_BROADCASTABLE:
        what = f"broadcast_shape({list(a)}, {list(b)})"
        try:
            with guarded("broadcast_shape", fn, (list(a), list(b))), impl.rules():
                got = fn(list(a), list(b))
        except ValueError as exc:
            text = str(exc)
            if not text.strip():
                fail(f"{what} raised ValueError with an empty message.\n  Try: say which "
                     "shapes do not broadcast.")
            missing = [list(s) for s in (a, b) if not _names_shape(text, s)]
            if missing:
                fail(f"{what} raised ValueError({text.strip()[:200]!r}), which does not name "
                     f"the shape {missing[0]}.\n  Try: write each shape in the message as a "
                     "list, every size in order: [3, 4].")
            continue
        except Exception as exc:
            fail(f"{what} raised {type(exc).__name__}: {str(exc).strip()[:200]}\n  expected "
                 "ValueError.\n  Try: throw py::value_error(...): pybind11 turns it into "
                 "Python's ValueError (std::runtime_error becomes RuntimeError, and an "
                 "uncaught non-standard exception aborts the process).")
        fail(f"{what}: expected ValueError (the shapes do not broadcast), got {got!r}.")


# ----------------------------------------------------------------------------- cpu_operator


def _cpu_op(impl, clean: _Clean):
    """The learner's schema and CPU kernel, with the check's Meta kernel (for opcheck): one
    build serves every check of the exercise."""
    return _ops_build(impl, clean, "cpu_operator", _REF_META)


@pytest.mark.exercise("cpu_operator")
def test_cpu_operator_schema(impl, rng):
    clean = _Clean()
    op = _cpu_op(impl, clean)
    schema = clean(str(op.default._schema))
    expected = "ns::sqdiff(Tensor x, Tensor y) -> Tensor"
    if schema != expected:
        fail(f"the schema of ns::sqdiff is\n    {schema}\n  expected\n    {expected}\n  Try: "
             "m.def(\"sqdiff(Tensor x, Tensor y) -> Tensor\") in TORCH_LIBRARY(KATA_NS, m): "
             "argument names are part of the schema, and (a!) would declare a write.")


@pytest.mark.exercise("cpu_operator")
def test_cpu_operator_dispatch_keys(impl, rng):
    clean = _Clean()
    op = _cpu_op(impl, clean)
    has = {key: _has_kernel(op, key) for key in
           ("CPU", "CompositeImplicitAutograd", "CompositeExplicitAutograd", "Autograd",
            "AutogradCPU")}
    if not has["CPU"] or any(v for k, v in has.items() if k != "CPU"):
        shown = ", ".join(k for k, v in has.items() if v) or "none"
        fail(f"ns::sqdiff has kernels for: {shown} (and Meta, the check's own); expected "
             "yours for CPU only.\n  Try: "
             "register the kernel in TORCH_LIBRARY_IMPL(KATA_NS, CPU, m) { m.impl(\"sqdiff\", "
             "&your_kernel); } and give m.def only the schema: a kernel passed to m.def "
             "becomes CompositeImplicitAutograd, for every backend and autograd alike.")


@pytest.mark.exercise("cpu_operator")
def test_cpu_operator_values(impl, rng):
    clean = _Clean()
    op = _cpu_op(impl, clean)
    for n, (a, b) in enumerate(_pairs(rng)):
        dtype = torch.float64 if n % 2 == 0 else torch.float32
        x, y = torch.randn(a, dtype=dtype), torch.randn(b, dtype=dtype)
        for label, xv in list(layouts(x))[: 4 if n < len(_SHAPE_PAIRS) else 8]:
            what = f"sqdiff(x {tuple(a)} [{label}], y {tuple(b)}, {str(dtype)[6:]})"
            got = _call_op(impl, clean, op, xv, y, what)
            expected = _expected(xv, y)
            assert_close(got, expected, what, hint="out = (x - y)**2 elementwise, x and y "
                         "broadcast together; read each input at its strides (or make it "
                         "contiguous after expanding it) — data_ptr walks memory, not indices.")
            if type(got) is torch.Tensor and not got.is_contiguous():
                fail(f"{what}: the result has strides {got.stride()}; expected a new "
                     "contiguous tensor (as at::empty(shape, x.options()) makes).")
        for label, yv in list(layouts(y))[1:3]:
            what = f"sqdiff(x {tuple(a)}, y {tuple(b)} [{label}], {str(dtype)[6:]})"
            assert_close(_call_op(impl, clean, op, x, yv, what), _expected(x, yv), what)


@pytest.mark.exercise("cpu_operator")
def test_cpu_operator_checks(impl, rng):
    """TORCH_CHECK failures reach Python as RuntimeError, with the learner's own message."""
    clean = _Clean()
    op = _cpu_op(impl, clean)
    cases = [
        (torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float32),
         "same dtype", "x and y of different dtypes (float64, float32)"),
        (torch.arange(3), torch.arange(3), "floating-point", "integer x and y (int64)"),
        (torch.randn(3, dtype=torch.complex64), torch.randn(3, dtype=torch.complex64),
         "floating-point", "complex x and y (complex64)"),
        (torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool), "floating-point",
         "boolean x and y"),
        (torch.randn(2, 3), torch.randn(3, 2), None, "x (2, 3) and y (3, 2), not broadcastable"),
    ]
    for x, y, phrase, label in cases:
        what = f"sqdiff({label})"
        try:
            with guarded("sqdiff", op, (x, y)), impl.rules():
                got = op(x, y)
        except RuntimeError as exc:
            text = clean(str(exc))
            if phrase and phrase not in text:
                fail(f"{what} raised RuntimeError, but its message does not say \"{phrase}\":\n"
                     f"    {text.strip().splitlines()[0][:200]}\n  Try: "
                     f"TORCH_CHECK(condition, \"sqdiff: ... {phrase} ...\", ...) — the message "
                     "is yours, the stub says what it must contain.")
            continue
        except Exception as exc:
            fail(f"{what} raised {type(exc).__name__}, expected RuntimeError: "
                 f"{clean(str(exc))[:200]}")
        fail(f"{what}: expected RuntimeError, got {describe(got)}.\n  Try: TORCH_CHECK the "
             "arguments before computing: an unchecked kernel reads memory as the wrong type "
             "or past its end.")


@pytest.mark.exercise("cpu_operator")
def test_cpu_operator_opcheck(impl, rng):
    require_torch("2.4", "torch.library.opcheck")
    clean = _Clean()
    op = _cpu_op(impl, clean)
    a = random_shape(rng, 2)
    x = torch.randn(a[::-1], dtype=torch.float64).t()
    y = torch.randn(a[1], dtype=torch.float64)
    _opcheck(clean, op, (x, y), ("test_schema", "test_faketensor"),
             f"sqdiff, x {tuple(x.shape)} transposed, y {tuple(y.shape)}",
             hints={"test_schema": "the kernel must not write into x or y.",
                    "test_faketensor": "the result must be a new contiguous tensor of the "
                    "broadcast shape in x's dtype, as the fake kernel describes it."})


# ----------------------------------------------------------------------------- autograd_kernel


def _autograd_op(impl, clean: _Clean):
    return _ops_build(impl, clean, "autograd_kernel", _REF_DEF_CPU, _REF_META)


@pytest.mark.exercise("autograd_kernel")
def test_autograd_kernel_registered(impl, rng):
    clean = _Clean()
    op = _autograd_op(impl, clean)
    if not (_has_kernel(op, "Autograd") or _has_kernel(op, "AutogradCPU")):
        fail("ns::sqdiff has no autograd kernel.\n  Try: TORCH_LIBRARY_IMPL(KATA_NS, Autograd, "
             "m) { m.impl(\"sqdiff\", &your_autograd_wrapper); }")
    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, dtype=torch.float64)
    out = _call_op(impl, clean, op, x, y, "sqdiff(x requiring grad, y)")
    if type(out) is not torch.Tensor or out.grad_fn is None:
        fail(f"sqdiff(x requiring grad, y) returned {describe(out)} without a grad_fn: "
             "autograd does not know how to differentiate it.\n  Try: return "
             "YourFunction::apply(x, y) from the Autograd kernel.")


@pytest.mark.exercise("autograd_kernel")
def test_autograd_kernel_gradients(impl, rng):
    clean = _Clean()
    op = _autograd_op(impl, clean)
    needs = [(True, True), (True, False), (False, True)]
    for n, (a, b) in enumerate(_pairs(rng)):
        nx, ny = needs[n % 3]
        x = torch.randn(a, dtype=torch.float64, requires_grad=nx)
        y = torch.randn(b, dtype=torch.float64, requires_grad=ny)
        grad = torch.randn(torch.broadcast_shapes(a, b), dtype=torch.float64)
        what = (f"the gradients of sqdiff(x {tuple(a)}, y {tuple(b)}) for a random upstream "
                f"gradient, requires_grad=(x: {nx}, y: {ny})")
        xr, yr = x.detach().clone().requires_grad_(nx), y.detach().clone().requires_grad_(ny)
        ((xr - yr) ** 2).backward(grad)
        with guarded("sqdiff", op, (x, y)), _native(impl, what, clean):
            op(x, y).backward(grad)
        hint = ("d/dx (x - y)^2 = 2 (x - y), d/dy = -2 (x - y), times the upstream gradient; a "
                "broadcast input's gradient is summed back to its own shape (at::sum_to).")
        for name, t, ref in (("x", x, xr), ("y", y, yr)):
            if ref.grad is None:
                if t.grad is not None:
                    fail(f"{what}: {name}.grad is set although {name} does not require grad.")
                continue
            assert_close(t.grad, ref.grad, f"{what}: {name}.grad", hint=hint)


@pytest.mark.exercise("autograd_kernel")
def test_autograd_kernel_notices_inputs_changed_in_place(impl, rng):
    """What backward reads must be what forward saw: an input changed in place after the
    forward makes backward refuse, as (x - y) ** 2 does (the saved tensors' versions)."""
    clean = _Clean()
    op = _autograd_op(impl, clean)
    n = int(random_shape(rng, 1)[0])
    base = torch.randn(n, dtype=torch.float64, requires_grad=True)
    x, y = base * 1, torch.randn(n, dtype=torch.float64)
    what = f"out = sqdiff(x, y) for x ({n},) requiring grad, then x.add_(100), then out.sum().backward()"
    with guarded("sqdiff", op, (x, y)), _native(impl, what, clean):
        out = op(x, y)
    with torch.no_grad():
        x.add_(100)
    try:
        with impl.rules():
            out.sum().backward()
    except RuntimeError as exc:
        if "inplace" in str(exc) or "in-place" in str(exc):
            return
        first = clean(str(exc).strip()).splitlines()
        fail(f"{what} raised RuntimeError: {first[0] if first else ''}")
    fail(f"{what}: backward ran and gave base.grad = {base.grad.tolist()[:4]}..., computed from "
         "the changed x (torch's own (x - y) ** 2 refuses: \"one of the variables needed for "
         "gradient computation has been modified by an inplace operation\").\n  Try: keep what "
         "backward needs with ctx->save_for_backward(...) and read it back with "
         "ctx->get_saved_variables(): saved variables remember their version.")


@pytest.mark.exercise("autograd_kernel")
def test_autograd_kernel_gradcheck(impl, rng):
    clean = _Clean()
    op = _autograd_op(impl, clean)
    a = random_shape(rng, 2)
    x = torch.randn(a[0], 1, dtype=torch.float64, requires_grad=True)
    y = torch.randn(a[1], dtype=torch.float64, requires_grad=True)
    what = f"torch.autograd.gradcheck(sqdiff, (x {tuple(x.shape)}, y {tuple(y.shape)}))"
    with _native(impl, what, clean):
        ok = torch.autograd.gradcheck(op, (x, y), raise_exception=False)
    if not ok:
        fail(f"{what}: your backward disagrees with finite differences.")


@pytest.mark.exercise("autograd_kernel")
def test_autograd_kernel_opcheck(impl, rng):
    """test_aot_dispatch_dynamic traces forward and backward with symbolic sizes."""
    require_torch("2.4", "torch.library.opcheck")
    clean = _Clean()
    op = _autograd_op(impl, clean)
    a = random_shape(rng, 2)
    x = torch.randn(a[0], 1, dtype=torch.float64, requires_grad=True)
    y = torch.randn(a[1], dtype=torch.float64, requires_grad=True)
    _opcheck(clean, op, (x, y), ("test_schema", "test_autograd_registration",
                                 "test_aot_dispatch_dynamic"),
             f"sqdiff, x {tuple(x.shape)}, y {tuple(y.shape)}, both requiring grad",
             hints={"test_aot_dispatch_dynamic": "the backward is traced with sizes that are "
                    "symbols: use x.sym_sizes() (not sizes()) for the shape you sum back to.",
                    "test_autograd_registration": "register the Autograd kernel (not "
                    "CompositeImplicitAutograd) and call the op below autograd "
                    "(at::AutoDispatchBelowADInplaceOrView) from forward."})


# ----------------------------------------------------------------------------- meta_kernel


def _meta_op(impl, clean: _Clean):
    return _ops_build(impl, clean, "meta_kernel", _REF_DEF_CPU)


@pytest.mark.exercise("meta_kernel")
def test_meta_kernel_shapes(impl, rng):
    clean = _Clean()
    op = _meta_op(impl, clean)
    if not _has_kernel(op, "Meta"):
        fail("ns::sqdiff has no Meta kernel.\n  Try: TORCH_LIBRARY_IMPL(KATA_NS, Meta, m) "
             "{ m.impl(\"sqdiff\", &your_meta_kernel); }")
    for n, (a, b) in enumerate(_pairs(rng)):
        dtype = torch.float64 if n % 2 else torch.float32
        x = torch.empty(a, dtype=dtype, device="meta")
        y = torch.empty(b, dtype=dtype, device="meta")
        what = f"sqdiff on meta tensors x {tuple(a)}, y {tuple(b)}, {str(dtype)[6:]}"
        out = _call_op(impl, clean, op, x, y, what)
        shape = tuple(torch.broadcast_shapes(a, b))
        if (type(out) is not torch.Tensor or tuple(out.shape) != shape or out.dtype != dtype
                or out.device.type != "meta" or not out.is_contiguous()):
            fail(f"{what}: the Meta kernel returned {describe(out)}; expected a contiguous "
                 f"tensor of shape {shape}, dtype {str(dtype)[6:]}, device meta.\n  Try: "
                 "at::empty_symint(broadcast shape, x.options()): options carry dtype and "
                 "device; a meta kernel never reads data.")
    x = torch.empty(4, 3, device="meta").t()  # (3, 4), strides (1, 3): the output is still (4, 1)
    what = "sqdiff on meta tensors x (3, 4) transposed (strides (1, 3)), y (4,), float32"
    out = _call_op(impl, clean, op, x, torch.empty(4, device="meta"), what)
    if type(out) is not torch.Tensor or tuple(out.shape) != (3, 4) or not out.is_contiguous():
        fail(f"{what}: the Meta kernel returned {describe(out)}; expected a contiguous tensor "
             "of shape (3, 4), as the CPU kernel returns.\n  Try: a fake output must have the "
             "real one's strides: make it from the broadcast shape, not like an input.")
    for what, dtypes in (("different dtypes (float64, float32)", (torch.float64, torch.float32)),
                         ("an integer dtype (int64, int64)", (torch.int64, torch.int64)),
                         ("a complex dtype (complex64, complex64)",
                          (torch.complex64, torch.complex64)),
                         ("bool (bool, bool)", (torch.bool, torch.bool))):
        what = f"sqdiff on meta tensors of {what}"
        try:
            with guarded("sqdiff", op, ()), impl.rules():
                got = op(torch.empty(2, dtype=dtypes[0], device="meta"),
                         torch.empty(2, dtype=dtypes[1], device="meta"))
        except RuntimeError:
            continue
        fail(f"{what}: expected RuntimeError, got {describe(got)}.\n  Try: a meta kernel "
             "checks its arguments like the real one (TORCH_CHECK), so errors surface while "
             "tracing.")


@pytest.mark.exercise("meta_kernel")
def test_meta_kernel_opcheck(impl, rng):
    require_torch("2.4", "torch.library.opcheck")
    clean = _Clean()
    op = _meta_op(impl, clean)
    a = random_shape(rng, 2)
    x = torch.randn(a[0], 1, dtype=torch.float64)
    y = torch.randn(a[1], dtype=torch.float64)
    _opcheck(clean, op, (x, y), ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
             f"sqdiff, x {tuple(x.shape)}, y {tuple(y.shape)}",
             hints={"test_aot_dispatch_dynamic": "sizes are symbols while tracing: "
                    "x.sizes() throws on them; x.sym_sizes(), at::infer_size_symdimvector and "
                    "at::empty_symint work on both.",
                    "test_faketensor": "the fake result must match the real one: broadcast "
                    "shape, x's dtype, contiguous."})


@pytest.mark.exercise("meta_kernel")
def test_meta_kernel_compiles_fullgraph(impl, rng):
    require_torch("2.2", "torch.compiler.reset")
    from torch._dynamo.testing import CompileCounterWithBackend

    clean = _Clean()
    op = _meta_op(impl, clean)

    def f(x, y):
        return op(x, y).sum(dim=-1)

    torch.compiler.reset()
    try:
        counter = CompileCounterWithBackend("aot_eager")
        compiled = torch.compile(f, backend=counter, fullgraph=True, dynamic=True)
        for _ in range(2):
            n, m = random_shape(rng, 2)
            x = torch.randn(n, 1, dtype=torch.float64)
            y = torch.randn(m, dtype=torch.float64)
            what = f"torch.compile(fullgraph=True) of a function calling sqdiff, x ({n}, 1), y ({m},)"
            with _native(impl, what, clean, window=False):
                got = compiled(x, y)
            assert_close(got, f(x, y), what)
        if counter.frame_count != 1:
            fail(f"a function calling sqdiff compiled {counter.frame_count} times for two "
                 "input sizes under dynamic=True, expected once.")
    finally:
        torch.compiler.reset()



# ----------------------------------------------------------------------------- warming


def _warm(checks: set[str] | None = None) -> None:
    """Build the precompiled headers the checks will need (once per torch version), then pay
    opcheck's and AOTAutograd's lazy set-up on the checks' own reference operator: an armed
    process of the warm worker does this while the learner reads and edits, before any save."""
    from checker.cppbuild import precompiled_header

    def wanted(prefix: str) -> bool:
        return checks is None or any(c.startswith(prefix) for c in checks)

    kinds = {"ops"} | ({"pybind11"} if wanted("test_bound_function") else set())
    kinds |= {"autograd"} if wanted("test_autograd_kernel") else set()
    for kind in sorted(kinds):
        precompiled_header(cache_root(), kind)
    if not any(wanted(f"test_{e}") for e in ("cpu_operator", "autograd_kernel", "meta_kernel")):
        return
    built = build([Chunk(_REF_DEF_CPU), Chunk(_REF_META), Chunk(_REF_AUTOGRAD)], root=cache_root())
    x = torch.randn(3, 1, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.library.opcheck(_op(built), (x, y))


kata_warm = _warm
