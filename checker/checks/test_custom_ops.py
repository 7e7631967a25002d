"""Hidden checks for the kata custom_ops. torch.library's own tests (opcheck), gradcheck and
dynamo with a non-inductor backend are the oracle.

Every check defines its ops in a namespace of its own (``fresh_namespace``): a process may run
a check twice (the diagnosis re-runs a failing check with each known mistake, a warm worker
may run the kata again), and torch.library refuses to define the same op twice. Namespaces
are random, so every message replaces the namespace with ``ns`` to stay reproducible.
Exercises are judged apart: the fake and autograd checks register the learner's pieces on
an op whose kernel the check defines itself.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import warnings
from collections.abc import Iterator

import pytest
import torch
import torch._dynamo

from checker.helpers import (
    assert_close,
    describe,
    fail,
    layouts,
    opcheck_failures,
    opcheck_message,
    random_shape,
    require_torch,
    skip_guard_latency_profile,
)

pytestmark = pytest.mark.kata("custom_ops")

if hasattr(torch, "_logging"):
    torch._logging.set_logs(dynamo=logging.ERROR)


def _require_library() -> None:
    require_torch("2.4", *(f"torch.library.{name}" for name in
                           ("custom_op", "opcheck", "register_fake", "register_autograd")))


def _require_compile() -> None:
    _require_library()
    require_torch("2.2", "torch.compiler.reset")


def fresh_namespace() -> str:
    return f"kata_{uuid.uuid4().hex[:12]}"


class _Namespaced:
    """Turns a namespace into 'ns' in every message, and learner exceptions into failures."""

    def __init__(self, ns: str):
        self.ns = ns

    def clean(self, text: str) -> str:
        return text.replace(self.ns, "ns")

    def fail(self, message: str) -> None:
        fail(self.clean(message))

    def error(self, what: str, exc: BaseException) -> None:
        text = self.clean(str(exc).strip())
        first = text.splitlines()[0] if text else ""
        fail(f"{self.clean(what)} raised {type(exc).__name__}: {first}")

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except NotImplementedError:
            raise
        except AssertionError as exc:
            fail(self.clean(str(exc)))
        except Exception as exc:
            self.error(what, exc)


# ----------------------------------------------------------------------------- dynamo, quietly


@contextlib.contextmanager
def fresh_dynamo() -> Iterator[None]:
    torch.compiler.reset()
    try:
        yield
    finally:
        torch.compiler.reset()


def _reference_sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def _define_reference(ns: str, *, fake: bool, autograd: bool):
    """The check's own sqdist op (NumPy kernel), with the pieces an exercise does not judge."""

    @torch.library.custom_op(f"{ns}::sqdist", mutates_args=())
    def sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        xn, yn = x.detach().numpy(), y.detach().numpy()
        return torch.from_numpy(((xn[:, None, :] - yn[None, :, :]) ** 2).sum(-1)).to(x.dtype)

    if fake:
        sqdist.register_fake(lambda x, y: x.new_empty(x.shape[0], y.shape[0]))
    if autograd:

        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        def backward(ctx, grad):
            x, y = ctx.saved_tensors
            return (2 * (x * grad.sum(1, keepdim=True) - grad @ y),
                    2 * (y * grad.sum(0).unsqueeze(1) - grad.t() @ x))

        sqdist.register_autograd(backward, setup_context=setup_context)
    return sqdist


def _warm(checks: set[str] | None = None) -> None:
    """Pay opcheck's and AOTAutograd's lazy set-up once, at collection, not inside a check;
    an armed process (``kata_warm``) warms only what its own ``checks`` use.
    The shapes are like the checks' (x (n, d), y (m, d), n != m): symbolic shapes cache the
    expressions they meet (sympy), so a warm-up with x and y alike would leave the checks'
    own expressions to a first, much slower, trace."""
    if not all(hasattr(torch.library, n) for n in ("custom_op", "opcheck")):
        return

    def wanted(*names: str) -> bool:
        return checks is None or not checks.isdisjoint(names)

    skip_guard_latency_profile()
    op = _define_reference(fresh_namespace(), fake=True, autograd=True)
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if wanted("test_autograd_passes_opcheck"):
            torch.library.opcheck(op, (x, y))
        elif wanted("test_fake_passes_opcheck"):
            torch.library.opcheck(op, (x, y), test_utils=("test_schema", "test_faketensor"))
        if wanted("test_clip_passes_opcheck"):  # an op that writes to its input
            @torch.library.custom_op(f"{fresh_namespace()}::clip_", mutates_args={"x"})
            def clip_(x: torch.Tensor, lo: float, hi: float) -> None:
                x.clamp_(lo, hi)

            clip_.register_fake(lambda x, lo, hi: None)
            torch.library.opcheck(clip_, (x.detach().clone().t(), -0.5, 0.5),
                                  test_utils=("test_schema", "test_faketensor"))
        if wanted("test_clip_fake_and_compile"):
            from torch._functorch.aot_autograd import aot_function
            from torch._functorch.compilers import nop

            aot_function(lambda a, b: op(a, b).sum(), nop)(x, y).backward()
        if wanted("test_fake_compiles_fullgraph"):
            from torch._dynamo.testing import CompileCounter

            with fresh_dynamo():  # as test_fake_compiles_fullgraph compiles
                torch.compile(lambda a, b: op(a, b).argmin(dim=1), backend=CompileCounter(),
                              fullgraph=True, dynamic=True)(x.detach(), y.detach())


_warm()


def _opcheck(ns: _Namespaced, op, args, utils: tuple[str, ...], what: str,
             hints: dict[str, str] | None = None) -> None:
    try:
        failed = opcheck_failures(op, args, utils)
    except Exception as exc:
        ns.error(f"torch.library.opcheck({what})", exc)
    if failed:
        ns.fail(opcheck_message(failed, what, ns.clean, hints) + "\n"
                "  Try: test_schema checks the declared mutations against what the kernel "
                "really writes; test_faketensor runs your fake impl against the real kernel; "
                "test_aot_dispatch_dynamic traces the op (and its backward) with symbolic shapes.")


def _sqdist_inputs(rng, dtype=torch.float64, requires_grad=False) -> tuple[torch.Tensor, torch.Tensor]:
    n, m, d = random_shape(rng, 3, 2, 7)
    return (torch.randn(n, d, dtype=dtype).requires_grad_(requires_grad),
            torch.randn(m, d, dtype=dtype).requires_grad_(requires_grad))


# ----------------------------------------------------------------------------- define_sqdist


def _learner_sqdist(impl, ns: _Namespaced):
    with ns.guard(f"define_sqdist({ns.ns!r})"):
        op = impl.define_sqdist(ns.ns)
    if not callable(op):
        ns.fail(f"define_sqdist('ns') must return the op (what torch.library.custom_op makes), got {describe(op)}.")
    try:
        packet = getattr(torch.ops, ns.ns).sqdist
    except (AttributeError, RuntimeError):
        ns.fail(f"define_sqdist({ns.ns!r}) registered no operator named {ns.ns}::sqdist.\n"
                "  Try: torch.library.custom_op(f\"{namespace}::sqdist\", mutates_args=()).")
    return op, packet


@pytest.mark.exercise("define_sqdist")
def test_define_sqdist_schema(impl, rng):
    _require_library()
    ns = _Namespaced(fresh_namespace())
    _, packet = _learner_sqdist(impl, ns)
    schema = ns.clean(str(packet.default._schema))
    expected = "ns::sqdist(Tensor x, Tensor y) -> Tensor"
    if schema != expected:
        ns.fail(f"the schema of ns::sqdist is\n    {schema}\n  expected\n    {expected}\n"
                "  Try: name the parameters x and y, annotate them torch.Tensor, return a "
                "torch.Tensor, and declare mutates_args=() — the kernel writes to neither input "
                "(\"unknown\" marks every input as mutated: Tensor(a!)).")


@pytest.mark.exercise("define_sqdist")
def test_define_sqdist_values(impl, rng):
    _require_library()
    ns = _Namespaced(fresh_namespace())
    op, packet = _learner_sqdist(impl, ns)
    for dtype, requires_grad in ((torch.float64, False), (torch.float32, False), (torch.float64, True)):
        x, y = _sqdist_inputs(rng, dtype)
        expected = _reference_sqdist(x.double(), y.double()).to(dtype)
        y.requires_grad_(requires_grad)
        for label, xv in layouts(x):
            xv.requires_grad_(requires_grad)
            what = (f"sqdist(x of shape {tuple(x.shape)} [{label}], y of shape {tuple(y.shape)}, "
                    f"{str(dtype)[6:]}{', both requiring grad' if requires_grad else ''})")
            x_before, y_before = xv.detach().clone(), y.detach().clone()
            with ns.guard(what):
                got = op(xv, y)
                via_ops = packet(xv, y)
            for name, t, before in (("x", xv, x_before), ("y", y, y_before)):
                if not torch.equal(t, before) or t.requires_grad != requires_grad:
                    ns.fail(f"{what}: the kernel changed {name} (its values or requires_grad).\n  "
                            "Try: read the inputs through x.detach().numpy(), which shares x's memory "
                            "and changes nothing about x; compute into new arrays (x - y, not "
                            "x -= y). The schema promises the op mutates nothing.")
            assert_close(got, expected, what, hint="out[i, j] = sum over d of (x[i, d] - y[j, d])**2, "
                         "in the inputs' dtype.")
            assert_close(via_ops, expected, f"torch.ops.ns.sqdist: {what}")


@pytest.mark.exercise("define_sqdist")
def test_define_sqdist_passes_opcheck(impl, rng):
    """The kernel against a plain fake (a new, contiguous (n, m) tensor): opcheck compares
    their shapes, dtypes and strides, and the schema with what the kernel writes."""
    _require_library()
    ns = _Namespaced(fresh_namespace())
    op, _ = _learner_sqdist(impl, ns)
    with ns.guard("register_fake on your sqdist"):
        op.register_fake(lambda x, y: x.new_empty(x.shape[0], y.shape[0]))
    for dtype in (torch.float64, torch.float32):
        x, y = _sqdist_inputs(rng, dtype)
        _opcheck(ns, op, (x.t().contiguous().t(), y), ("test_schema", "test_faketensor"),
                 f"sqdist, x (column-major), y, {str(dtype)[6:]}",
                 hints={"test_faketensor": "return a new contiguous (n, m) tensor in x's dtype, as "
                        "x.new_empty(n, m) would describe it: torch.from_numpy of a transposed or "
                        "strided array keeps NumPy's strides (np.ascontiguousarray fixes that).",
                        "test_schema": "the kernel must not write into x or y."})


# ----------------------------------------------------------------------------- register_sqdist_fake


def _op_with_learner_fake(impl, ns: _Namespaced):
    op = _define_reference(ns.ns, fake=False, autograd=False)
    with ns.guard("register_sqdist_fake(op)"):
        impl.register_sqdist_fake(op)
    return op


@pytest.mark.exercise("register_sqdist_fake")
def test_fake_on_meta_tensors(impl, rng):
    _require_library()
    ns = _Namespaced(fresh_namespace())
    op = _op_with_learner_fake(impl, ns)
    for dtype in (torch.float64, torch.float32):
        n, m, d = random_shape(rng, 3, 2, 7)
        x = torch.empty(n, d, dtype=dtype, device="meta")
        y = torch.empty(m, d, dtype=dtype, device="meta")
        what = f"sqdist on meta tensors x {(n, d)}, y {(m, d)}, {str(dtype)[6:]}"
        with ns.guard(what):
            out = op(x, y)
        if not isinstance(out, torch.Tensor) or (tuple(out.shape), out.dtype, out.device) != ((n, m), dtype, x.device):
            ns.fail(f"{what}: the fake impl returned {describe(out)}; expected a tensor of shape "
                    f"{(n, m)}, dtype {str(dtype)[6:]}, device meta.\n"
                    "  Try: a fake impl only describes the output: x.new_empty(x.shape[0], "
                    "y.shape[0]) inherits dtype and device. It never reads data (meta and fake "
                    "tensors have none).")


@pytest.mark.exercise("register_sqdist_fake")
def test_fake_passes_opcheck(impl, rng):
    _require_library()
    ns = _Namespaced(fresh_namespace())
    op = _op_with_learner_fake(impl, ns)
    x, y = _sqdist_inputs(rng)
    _opcheck(ns, op, (x, y), ("test_schema", "test_faketensor"), "sqdist, x, y")


@pytest.mark.exercise("register_sqdist_fake")
def test_fake_compiles_fullgraph(impl, rng):
    _require_compile()
    from torch._dynamo.testing import CompileCounter

    ns = _Namespaced(fresh_namespace())
    op = _op_with_learner_fake(impl, ns)

    def nearest(x, y):
        return op(x, y).argmin(dim=1)

    with fresh_dynamo():
        counter = CompileCounter()
        compiled = torch.compile(nearest, backend=counter, fullgraph=True, dynamic=True)
        for _ in range(2):
            x, y = _sqdist_inputs(rng)
            expected = nearest(x, y)
            with ns.guard("torch.compile(fullgraph=True) of a function calling sqdist"):
                got = compiled(x, y)
            assert_close(got, expected, "a compiled function calling sqdist")
        if counter.frame_count != 1:
            ns.fail(f"a function calling sqdist compiled {counter.frame_count} times for two "
                    "input sizes under dynamic=True, expected once.")


# ----------------------------------------------------------------------------- register_sqdist_autograd


def _op_with_learner_autograd(impl, ns: _Namespaced):
    op = _define_reference(ns.ns, fake=True, autograd=False)
    with ns.guard("register_sqdist_autograd(op)"):
        impl.register_sqdist_autograd(op)
    return op


def _reference_grads(x, y, grad):
    x, y = x.detach().clone().requires_grad_(x.requires_grad), y.detach().clone().requires_grad_(y.requires_grad)
    _reference_sqdist(x, y).backward(grad)
    return x.grad, y.grad


@pytest.mark.exercise("register_sqdist_autograd")
def test_autograd_gradients(impl, rng):
    _require_library()
    ns = _Namespaced(fresh_namespace())
    op = _op_with_learner_autograd(impl, ns)
    for needs in ((True, True), (True, False), (False, True)):
        x, y = _sqdist_inputs(rng)
        x.requires_grad_(needs[0])
        y.requires_grad_(needs[1])
        grad = torch.randn(x.shape[0], y.shape[0], dtype=torch.float64)
        gx, gy = _reference_grads(x, y, grad)
        what = (f"the gradients of sqdist(x {tuple(x.shape)}, y {tuple(y.shape)}) for a random "
                f"upstream gradient, requires_grad=(x: {needs[0]}, y: {needs[1]})")
        with ns.guard(what):
            op(x, y).backward(grad)
        hint = ("d out[i,j] / d x[i] = 2 (x[i] - y[j]) and / d y[j] = -2 (x[i] - y[j]); sum them "
                "weighted by grad: 2 (x * grad.sum(1) - grad @ y) for x, the transposed sums for y.")
        for name, t, expected in (("x", x, gx), ("y", y, gy)):
            if expected is None:
                if t.grad is not None:
                    ns.fail(f"{what}: {name}.grad is set although {name} does not require grad.")
            else:
                assert_close(t.grad, expected, f"{what}: {name}.grad", hint=hint)


def _check_against_finite_differences(impl, rng, check, failure: str) -> None:
    _require_library()
    ns = _Namespaced(fresh_namespace())
    op = _op_with_learner_autograd(impl, ns)
    x, y = _sqdist_inputs(rng, requires_grad=True)
    call = f"torch.autograd.{check.__name__}(sqdist, (x {tuple(x.shape)}, y {tuple(y.shape)}))"
    # fast_mode: a random projection of the Jacobian; test_autograd_gradients compares the
    # full gradients exactly
    with ns.guard(call):
        ok = check(op, (x, y), raise_exception=False, fast_mode=True)
    if not ok:
        ns.fail(f"{call}: {failure}")


@pytest.mark.exercise("register_sqdist_autograd")
def test_autograd_gradcheck(impl, rng):
    _check_against_finite_differences(impl, rng, torch.autograd.gradcheck,
                                      "your backward disagrees with finite differences.")


@pytest.mark.exercise("register_sqdist_autograd")
def test_autograd_double_backward(impl, rng):
    """A backward written with torch ops on the saved inputs is itself differentiable."""
    _check_against_finite_differences(
        impl, rng, torch.autograd.gradgradcheck,
        "the gradient of your backward disagrees with finite differences.\n  Try: compute "
        "backward with torch ops on the saved x and y themselves (not .detach()ed copies, not "
        "NumPy), so autograd can differentiate backward too (Hessian-vector products, gradient "
        "penalties).")


@pytest.mark.exercise("register_sqdist_autograd")
def test_autograd_passes_opcheck(impl, rng):
    """opcheck's test_aot_dispatch_dynamic is the op under torch.compile, forward and backward:
    AOTAutograd traces the forward (setup_context included) and the backward with fake
    tensors of symbolic sizes, then compares outputs and gradients with eager mode. (With
    dynamo's eager backend the backward would only run eagerly, as test_autograd_gradients
    already runs it.)"""
    _require_compile()
    ns = _Namespaced(fresh_namespace())
    op = _op_with_learner_autograd(impl, ns)
    x, y = _sqdist_inputs(rng, requires_grad=True)
    _opcheck(ns, op, (x, y), ("test_schema", "test_autograd_registration", "test_faketensor",
                              "test_aot_dispatch_dynamic"), "sqdist, x, y requiring grad",
             hints={"test_aot_dispatch_dynamic": "backward must be written with torch ops on its "
                    "inputs: AOTAutograd traces it with fake tensors, which have no data for "
                    "NumPy to read."})


# ----------------------------------------------------------------------------- define_clip_


def _learner_clip(impl, ns: _Namespaced):
    with ns.guard(f"define_clip_({ns.ns!r})"):
        op = impl.define_clip_(ns.ns)
    try:
        packet = getattr(torch.ops, ns.ns).clip_
    except (AttributeError, RuntimeError):
        ns.fail(f"define_clip_({ns.ns!r}) registered no operator named {ns.ns}::clip_.")
    return op, packet


def _what_clip_returns(packet) -> str:
    """For a schema that returns something: whether the op hands back x itself or a new tensor."""
    if not packet.default._schema.returns:
        return ""
    x = torch.randn(3, 2, dtype=torch.float64)
    try:
        ret = packet(x, -0.5, 0.5)
    except Exception as exc:
        return f"  (calling it raised {type(exc).__name__})\n"
    if ret is x or isinstance(ret, torch.Tensor) and ret.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        return "  and it returns x itself (an output that aliases an input)\n"
    return f"  and it returns a new {describe(ret)}\n"


@pytest.mark.exercise("define_clip_")
def test_clip_schema_declares_the_mutation(impl, rng):
    _require_library()
    ns = _Namespaced(fresh_namespace())
    _, packet = _learner_clip(impl, ns)
    schema = packet.default._schema
    written = [a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    shown = ns.clean(str(schema))
    if [a.name for a in schema.arguments] != ["x", "lo", "hi"] or written != ["x"] or len(schema.returns) != 0:
        ns.fail(f"the schema of ns::clip_ is\n    {shown}\n{_what_clip_returns(packet)}  expected x declared as written and "
                "nothing returned, like\n    ns::clip_(Tensor(a0!) x, float lo, float hi) -> ()\n"
                "  Try: mutates_args={'x'} and a return annotation of None. Undeclared mutation "
                "is undefined behaviour: the compiler may reorder or drop a write it does not "
                "know about.")


@pytest.mark.exercise("define_clip_")
def test_clip_mutates_in_place(impl, rng):
    _require_library()
    ns = _Namespaced(fresh_namespace())
    op, _ = _learner_clip(impl, ns)
    x0 = torch.randn(*random_shape(rng, 2, 3, 7), dtype=torch.float64)
    lo, hi = -float(round(rng.uniform(0.2, 0.8), 3)), float(round(rng.uniform(0.2, 0.8), 3))
    expected = x0.clamp(lo, hi)
    for label, x in layouts(x0):
        version = x._version
        what = f"clip_(x of shape {tuple(x.shape)} [{label}], {lo}, {hi})"
        with ns.guard(what):
            ret = op(x, lo, hi)
        if ret is not None:
            ns.fail(f"{what} returned {describe(ret)}; an in-place op returns None.")
        assert_close(x, expected, f"{what}: x after the call", hint="write into x's own memory "
                     "(x.numpy() is a view with x's strides); a .contiguous() copy of a strided x "
                     "is not x.")
        if x._version <= version:
            ns.fail(f"{what}: x._version stayed {x._version}. The op wrote to x behind "
                    "autograd's back.\n  Try: declare the mutation (mutates_args={'x'}); then "
                    "torch.library bumps the version counter for you.")


@pytest.mark.exercise("define_clip_")
def test_clip_a_parameter_under_no_grad(impl, rng):
    """The usual use: clamping a parameter (a leaf that requires grad) under torch.no_grad()."""
    _require_library()
    ns = _Namespaced(fresh_namespace())
    op, _ = _learner_clip(impl, ns)
    param = torch.nn.Parameter(torch.randn(*random_shape(rng, 2, 3, 7), dtype=torch.float64))
    expected = param.detach().clamp(-0.5, 0.5)
    what = f"with torch.no_grad(): clip_(a Parameter of shape {tuple(param.shape)}, -0.5, 0.5)"
    with ns.guard(what), torch.no_grad():
        op(param, -0.5, 0.5)
    assert_close(param.detach(), expected, f"{what}: the parameter after the call",
                 hint="x arrives requiring grad: x.detach().numpy() views its memory (x.numpy() "
                 "refuses a tensor that requires grad).")
    if not param.requires_grad or param.grad_fn is not None:
        ns.fail(f"{what}: the parameter no longer requires grad (or is no longer a leaf).\n  Try: "
                "x.detach() makes a new tensor sharing x's memory; x.detach_() would change x itself.")


@pytest.mark.exercise("define_clip_")
def test_clip_fake_and_compile(impl, rng):
    _require_compile()
    ns = _Namespaced(fresh_namespace())
    op, _ = _learner_clip(impl, ns)
    meta = torch.empty(4, 3, device="meta")
    with ns.guard("clip_ on a meta tensor (the fake impl)"):
        op(meta, -0.5, 0.5)

    def clipped_twice(x):
        op(x, -0.5, 0.5)
        return x * 2

    # The mutation's fate under compile is decided by AOTAutograd (what torch.compile runs
    # after dynamo has captured the graph): it traces the op with fake tensors, turns the
    # in-place op into a functional one and copies the result back into x. Dynamo's capture
    # of a custom op is judged on sqdist (test_fake_compiles_fullgraph).
    from torch._functorch.aot_autograd import aot_function
    from torch._functorch.compilers import nop

    x = torch.randn(*random_shape(rng, 2, 3, 7), dtype=torch.float64)
    expected_x = x.clamp(-0.5, 0.5)
    compiled = aot_function(clipped_twice, nop)
    with ns.guard("AOTAutograd (torch.compile's tracer) on a function calling clip_"):
        out = compiled(x)
    assert_close(x, expected_x, "x after the compiled function clipped it in place",
                 hint="AOTAutograd functionalises the op and copies the result back into x only "
                 "if the schema says x is written.")
    assert_close(out, expected_x * 2, "the compiled function's result")


@pytest.mark.exercise("define_clip_")
def test_clip_passes_opcheck(impl, rng):
    _require_library()
    ns = _Namespaced(fresh_namespace())
    op, _ = _learner_clip(impl, ns)
    # opcheck's test_aot_dispatch_dynamic is left out: for an op that returns nothing and has
    # no gradient it only traces the op, which test_clip_fake_and_compile does with
    # AOTAutograd too, and that check also proves the write reaches x.
    _opcheck(ns, op, (torch.randn(5, 4, dtype=torch.float64).t(), -0.5, 0.5),
             ("test_schema", "test_faketensor"), "clip_, x, -0.5, 0.5")
kata_warm = _warm
