"""Hidden checks for the kata custom_function. torch's own ops and gradcheck are the oracle."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import Function

from checker.helpers import (
    assert_close,
    describe,
    fail,
    graph_picture,
    layouts,
    randn,
    random_shape,
)
from checker.sandbox.errors import ForbiddenAPI

pytestmark = pytest.mark.kata("custom_function")

SHAPES = (
    "backward returns one gradient per forward input, in order, each shaped like its input "
    "(None for non-tensor inputs such as dim); it receives one gradient per forward output."
)
MODERN = (
    "write the Function in the modern form: `forward(*inputs)` without ctx, a separate "
    "`setup_context(ctx, inputs, output)` that saves what backward needs, and "
    "`backward(ctx, *grads)`."
)


# ----------------------------------------------------------------------------- helpers


def _first_lines(text: str, n: int = 10) -> str:
    lines = str(text).strip().splitlines()
    return "\n    ".join(lines[:n]) + ("\n    ..." if len(lines) > n else "")


def run(impl, what: str, fn, hint: str = ""):
    """Run code that drives the learner's Function under the kata's rules.

    Whatever the learner's code raises becomes a teaching failure (a stub's
    NotImplementedError is left alone, so the report says "not implemented yet").
    """
    try:
        with impl.rules():
            return fn()
    except (NotImplementedError, AssertionError):
        raise
    except ForbiddenAPI as exc:
        fail(f"{what}: {exc}.")
    except Exception as exc:
        fail(f"{what} raised {type(exc).__name__}:\n    {_first_lines(exc)}"
             + (f"\n  Try: {hint}" if hint else ""))


class _Stand_in(Function):
    """A do-nothing Function: its graph shows what the learner's graph should look like."""

    @staticmethod
    def forward(*args):
        return next(a for a in args if isinstance(a, torch.Tensor)).clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, *grads):  # never runs
        raise AssertionError


def apply_guarded(impl, what: str, F, *args, hint: str = ""):
    """``F.apply(*args)`` through ``run``; the tensor arguments must come back unchanged."""
    before = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args]
    out = run(impl, what, lambda: F.apply(*args), hint)
    for i, (a, b) in enumerate(zip(args, before, strict=True)):
        if b is not None:
            assert_close(a.detach(), b, f"{what}: input {i} after the call (it must not change)",
                         hint="forward runs under no_grad, so an in-place op on an input "
                         "(x.round_(), x.clamp_()) silently changes the caller's tensor: compute "
                         "out of place.")
    return out


def expected_graph(name: str, *inputs):
    """The grad_fn a Function called ``name`` would have when applied to ``inputs``."""
    cls = type(name, (_Stand_in,), {})
    return cls.apply(*inputs).grad_fn


def assert_node_of(out, F, name: str, inputs, what: str) -> None:
    """``out.grad_fn`` must be the node autograd made for the learner's Function F (exercise ``name``)."""
    node = getattr(out, "grad_fn", None)
    want = getattr(F, "_backward_cls", None)
    if want is not None and type(node) is want:
        return
    got = "None (the output has no autograd history)" if node is None else type(node).__name__
    fail(
        f"{what}.grad_fn is {got}; expected {name}Backward, the node autograd creates for your "
        f"Function so that YOUR backward runs.\n"
        + graph_picture(expected_graph(name, *inputs), node)
        + f"\n  Try: make {name} a subclass of torch.autograd.Function and call it through "
        f"{name}.apply(...); do not compose differentiable torch ops (autograd would then "
        "differentiate them itself and your backward would never run)."
    )


def assert_gradcheck(impl, fn, inputs, what: str, *, second_order: bool = False) -> None:
    """torch.autograd.gradcheck (and gradgradcheck) on the learner's Function, float64."""
    check = torch.autograd.gradgradcheck if second_order else torch.autograd.gradcheck
    label = "gradgradcheck" if second_order else "gradcheck"
    try:
        with impl.rules():
            check(fn, inputs)
    except (NotImplementedError, AssertionError):
        raise
    except ForbiddenAPI as exc:
        fail(f"{label} of {what}: {exc}.")
    except Exception as exc:
        if type(exc).__name__ != "GradcheckError":
            hint = SHAPES
        elif second_order:
            hint = ("the gradient of your backward is wrong or missing. backward must be built "
                    "from differentiable torch ops on saved tensors — no .detach(), no "
                    "torch.no_grad(), no @once_differentiable, no NumPy.")
        else:
            hint = ("compare your backward with the derivative of your forward; gradcheck "
                    "perturbs each input element by 1e-6 and compares the slopes.")
        fail(f"torch.autograd.{label} of {what} failed ({type(exc).__name__}):\n    "
             f"{_first_lines(exc, 12)}\n  Try: {hint}")


def grads(outputs, inputs, grad_outputs, **kwargs):
    return torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=True, **kwargs)


def assert_vjp_under_func(impl, F, args, cotangent, expected, what: str) -> None:
    """torch.func.vjp through the learner's Function (needs the setup_context form)."""
    tensor_args = [a for a in args if isinstance(a, torch.Tensor)]

    def f(*ts):
        it = iter(ts)
        return F.apply(*(next(it) if isinstance(a, torch.Tensor) else a for a in args))

    def go():
        out, vjp_fn = torch.func.vjp(f, *tensor_args)
        if isinstance(out, tuple):
            return vjp_fn((cotangent, torch.zeros_like(out[1])))
        return vjp_fn(cotangent)

    got = run(impl, f"torch.func.vjp({what})", go, hint=MODERN)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert_close(g, e, f"torch.func.vjp({what}) gradient for input {i}",
                     hint="under torch.func your setup_context/backward run on wrapped tensors; "
                     "save tensors only with ctx.save_for_backward.")


# ----------------------------------------------------------------------------- StraightThroughRound


@pytest.mark.exercise("StraightThroughRound")
def test_round_values_and_node(impl, rng):
    F = impl.StraightThroughRound
    x = randn(*random_shape(rng, 2)) * 3
    halves = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], dtype=torch.float64)
    x.view(-1)[: halves.numel()] = halves[: x.numel()]  # exact halves: torch rounds them to even
    x.requires_grad_()
    expected = torch.round(x.detach())
    y = apply_guarded(impl, "StraightThroughRound.apply(x)", F, x)
    assert_close(y, expected, "StraightThroughRound.apply(x), x holding 0.5, 1.5, 2.5, -0.5, "
                 "-1.5, -2.5 and random values",
                 hint="forward is torch.round(x), which rounds halves to the even neighbour "
                 "(floor(x + 0.5) rounds them up).")
    assert_node_of(y, F, "StraightThroughRound", (x,), "StraightThroughRound.apply(x)")


@pytest.mark.exercise("StraightThroughRound")
def test_round_passes_gradient_straight_through(impl, rng):
    F = impl.StraightThroughRound
    shape = random_shape(rng, 2)
    base = randn(*shape) * 3
    for layout, x in layouts(base):
        x = x.detach().requires_grad_()
        g = randn(*shape)
        (gx,) = run(impl, f"backward of StraightThroughRound ({layout} x)",
                    lambda x=x, g=g: grads(F.apply(x), x, g), hint=SHAPES)
        if gx is None:
            fail("backward of StraightThroughRound.apply(x) gave x no gradient (None).\n"
                 "  Try: return the incoming gradient from backward.")
        assert_close(gx, g, f"x.grad for StraightThroughRound.apply(x), {layout} x, random "
                     "upstream gradient g",
                     hint="straight-through means d(round x)/dx is treated as 1: backward returns "
                     "grad_output unchanged (not ones, not zeros).")


@pytest.mark.exercise("StraightThroughRound")
def test_round_under_torch_func(impl, rng):
    F = impl.StraightThroughRound
    shape = random_shape(rng, 2)
    x, g = randn(*shape) * 3, randn(*shape)
    assert_vjp_under_func(impl, F, (x,), g, (g,), "StraightThroughRound.apply, x")


# ----------------------------------------------------------------------------- OutputSavingSigmoid


@pytest.mark.exercise("OutputSavingSigmoid")
def test_sigmoid_values_node_gradcheck(impl, rng):
    F = impl.OutputSavingSigmoid
    x = randn(*random_shape(rng, 2), requires_grad=True)
    expected = torch.sigmoid(x.detach())
    y = run(impl, "OutputSavingSigmoid.apply(x)", lambda: F.apply(x))
    assert_close(y, expected, "OutputSavingSigmoid.apply(x)")
    assert_node_of(y, F, "OutputSavingSigmoid", (x,), "OutputSavingSigmoid.apply(x)")
    assert_gradcheck(impl, F.apply, (x,), "OutputSavingSigmoid.apply")


@pytest.mark.exercise("OutputSavingSigmoid")
def test_sigmoid_saves_its_output(impl, rng):
    F = impl.OutputSavingSigmoid
    x = randn(*random_shape(rng, 2), requires_grad=True)
    packed: list[torch.Tensor] = []

    def pack(t):
        packed.append(t)
        return t

    def forward():
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            return F.apply(x)

    y = run(impl, "OutputSavingSigmoid.apply(x)", forward)
    if not isinstance(y, torch.Tensor):
        fail(f"OutputSavingSigmoid.apply(x): expected a tensor, got {describe(y)}.")

    def what_is(t):
        if t.data_ptr() == y.data_ptr() and t.shape == y.shape:
            return "the output y"
        if t.data_ptr() == x.data_ptr() and t.shape == x.shape:
            return "the input x"
        return f"a new tensor of shape {tuple(t.shape)}"

    saved = [what_is(t) for t in packed]
    if saved != ["the output y"]:
        fail(
            "OutputSavingSigmoid saved (via ctx.save_for_backward): "
            + (", ".join(saved) if saved else "nothing")
            + "\n  expected exactly one saved tensor: the output y = sigmoid(x).\n"
            "  Try: in setup_context(ctx, inputs, output) call ctx.save_for_backward(output), and in "
            "backward use sigmoid'(x) = y * (1 - y). Saving the input makes backward recompute "
            "sigmoid; keeping tensors as ctx attributes hides them from autograd's checks."
        )


@pytest.mark.exercise("OutputSavingSigmoid")
def test_sigmoid_saved_output_is_version_checked(impl, rng):
    F = impl.OutputSavingSigmoid
    x = randn(*random_shape(rng, 2), requires_grad=True)
    g = randn(*x.shape)

    def modify_then_backward():
        y = F.apply(x)
        y.mul_(2)  # in place: the saved output is now stale
        try:
            grads(y, x, g)
        except RuntimeError as exc:
            return str(exc)
        return None

    message = run(impl, "OutputSavingSigmoid", modify_then_backward)
    if message is None or "inplace" not in message:
        fail(
            "y = OutputSavingSigmoid.apply(x); y.mul_(2); backward: expected autograd to refuse "
            "(\"one of the variables needed for gradient computation has been modified by an "
            "inplace operation\"), but backward ran on the stale output.\n"
            "  Try: save the output with ctx.save_for_backward(output): autograd then records its "
            "version and catches in-place changes. A tensor kept as ctx.y is not checked."
        )


@pytest.mark.exercise("OutputSavingSigmoid")
def test_sigmoid_double_backward_through_the_saved_output(impl, rng):
    F = impl.OutputSavingSigmoid
    x = randn(*random_shape(rng, 2, 2, 4), requires_grad=True)
    hint = ("save the output itself (ctx.save_for_backward(output)), not output.detach(): the "
            "saved output keeps its link to this node, so autograd can differentiate backward "
            "again (what torch's own sigmoid does).")
    try:
        with impl.rules():
            torch.autograd.gradgradcheck(F.apply, (x,))
    except (NotImplementedError, AssertionError, ForbiddenAPI):
        raise
    except Exception as exc:
        fail(f"torch.autograd.gradgradcheck of OutputSavingSigmoid.apply failed "
             f"({type(exc).__name__}):\n    {_first_lines(exc, 8)}\n  Try: {hint}")


@pytest.mark.exercise("OutputSavingSigmoid")
def test_sigmoid_at_extreme_inputs(impl, rng):
    F = impl.OutputSavingSigmoid
    x = randn(*random_shape(rng, 2)) * 3
    x.view(-1)[:4] = torch.tensor([800.0, -800.0, 40.0, -40.0], dtype=torch.float64)
    x.requires_grad_()
    g = randn(*x.shape)
    y = apply_guarded(impl, "OutputSavingSigmoid.apply(x)", F, x)
    assert_close(y, torch.sigmoid(x.detach()), "OutputSavingSigmoid.apply(x), x holding 800, -800, "
                 "40, -40", hint="torch.sigmoid(x) is stable; 1 / (1 + exp(-x)) overflows.")
    (gx,) = run(impl, "backward of OutputSavingSigmoid.apply(x)", lambda: grads(y, x, g), SHAPES)
    s_ = torch.sigmoid(x.detach())
    assert_close(gx, g * s_ * (1 - s_), "x.grad for OutputSavingSigmoid.apply(x), x holding 800, "
                 "-800, 40, -40", hint="grad * y * (1 - y) from the saved output y.")


@pytest.mark.exercise("OutputSavingSigmoid")
def test_sigmoid_under_torch_func(impl, rng):
    F = impl.OutputSavingSigmoid
    shape = random_shape(rng, 2)
    x, g = randn(*shape), randn(*shape)
    s = torch.sigmoid(x)
    assert_vjp_under_func(impl, F, (x,), g, (g * s * (1 - s),), "OutputSavingSigmoid.apply, x")


# ----------------------------------------------------------------------------- LogSumExp


def lse_cases(rng):
    """(x, dim): 1-3 dims, random dim (sometimes negative), huge and tiny offsets, some -inf."""
    out = []
    for k in range(8):
        ndim = 1 + k % 3
        shape = random_shape(rng, ndim)
        x = randn(*shape) * 4
        shift = [0.0, 1000.0, -1000.0, 750.0][k % 4]
        x = x + shift
        dim = int(rng.integers(0, ndim))
        if rng.random() < 0.5:
            dim -= ndim
        if k % 3 == 2:  # mask some entries with -inf, never a whole slice
            mask = torch.rand(shape) < 0.3
            mask.select(dim, 0).fill_(False)
            x = x.masked_fill(mask, float("-inf"))
        out.append((x, dim))
    for ndim in (2, 3):  # slices at scales 2000 apart: only a per-slice max keeps them all finite
        shape = random_shape(rng, ndim)
        dim = int(rng.integers(-ndim, ndim))
        kept = list(shape)
        kept[dim] = 1
        offsets = torch.tensor(rng.choice([-1000.0, 0.0, 1000.0], size=kept), dtype=torch.float64)
        offsets.view(-1)[:2] = torch.tensor([-1000.0, 1000.0], dtype=torch.float64)
        out.append((randn(*shape) * 4 + offsets, dim))
    for shape, dim in (((3, 1, 4), 2), ((1, 5), -1), ((4, 1), 0), ((2, 1, 1, 3), -1)):
        out.append((randn(*shape) * 4, dim))  # size-1 dims beside the reduced one stay
    return out


@pytest.mark.exercise("LogSumExp")
def test_logsumexp_values_are_stable(impl, rng):
    F = impl.LogSumExp
    for x, dim in lse_cases(rng):
        expected = torch.logsumexp(x, dim)
        got = run(impl, f"LogSumExp.apply(x, dim={dim})", lambda x=x, dim=dim: F.apply(x.clone(), dim))
        assert_close(got, expected,
                     f"LogSumExp.apply(x, dim={dim}) for x of shape {tuple(x.shape)} with values "
                     f"near {float(x[torch.isfinite(x)].mean()):.0f}",
                     hint="exp(1000) overflows to inf and exp(-1000) underflows to 0: subtract the "
                     "max along dim first (each slice its own max, not one max for the whole "
                     "tensor), log(sum(exp(x - m))) + m.")


@pytest.mark.exercise("LogSumExp")
def test_logsumexp_gradcheck_and_node(impl, rng):
    F = impl.LogSumExp
    ndim = 3
    x = randn(*random_shape(rng, ndim, 2, 5), requires_grad=True)
    dim = int(rng.integers(-ndim, ndim))
    y = run(impl, f"LogSumExp.apply(x, dim={dim})", lambda: F.apply(x, dim))
    assert_node_of(y, F, "LogSumExp", (x, dim), f"LogSumExp.apply(x, dim={dim})")
    assert_gradcheck(impl, lambda t: F.apply(t, dim), (x,), f"LogSumExp.apply(x, dim={dim})")


@pytest.mark.exercise("LogSumExp")
def test_logsumexp_gradient_on_huge_inputs(impl, rng):
    F = impl.LogSumExp
    for x, dim in lse_cases(rng):
        ref = x.clone().requires_grad_()
        out = torch.logsumexp(ref, dim)
        g = torch.randn(out.shape, dtype=torch.float64)
        (expected,) = torch.autograd.grad(out, ref, g)
        mine = x.clone().requires_grad_()
        (got,) = run(impl, f"backward of LogSumExp.apply(x, dim={dim})",
                     lambda mine=mine, dim=dim, g=g: grads(F.apply(mine, dim), mine, g), hint=SHAPES)
        if got is None:
            fail(f"LogSumExp.apply(x, dim={dim}): x got no gradient (None).")
        assert_close(got, expected,
                     f"x.grad for LogSumExp.apply(x, dim={dim}), x of shape {tuple(x.shape)} with "
                     f"values near {float(x[torch.isfinite(x)].mean()):.0f}, random upstream gradient",
                     hint="the gradient is softmax(x) along dim times grad_output unsqueezed at dim; "
                     "compute softmax as exp(x - logsumexp) from saved tensors, never exp(x) alone.")


@pytest.mark.exercise("LogSumExp")
def test_logsumexp_under_torch_func(impl, rng):
    F = impl.LogSumExp
    x = randn(*random_shape(rng, 2))
    dim = int(rng.integers(-2, 2))
    g = torch.randn(torch.logsumexp(x, dim).shape, dtype=torch.float64)
    expected = g.unsqueeze(dim) * torch.softmax(x, dim)
    assert_vjp_under_func(impl, F, (x, dim), g, (expected,), f"LogSumExp.apply, x, dim={dim}")


# ----------------------------------------------------------------------------- MatMul


def matmul_inputs(rng):
    n, k, m = random_shape(rng, 3)
    return randn(n, k), randn(k, m), randn(n, m)


@pytest.mark.exercise("MatMul")
def test_matmul_values_grads_gradcheck(impl, rng):
    F = impl.MatMul
    a, b, g = matmul_inputs(rng)
    a.requires_grad_()
    b.requires_grad_()
    expected = a.detach() @ b.detach()
    y = run(impl, "MatMul.apply(a, b)", lambda: F.apply(a, b))
    assert_close(y, expected, f"MatMul.apply(a, b) for a {tuple(a.shape)}, b {tuple(b.shape)}")
    assert_node_of(y, F, "MatMul", (a, b), "MatMul.apply(a, b)")
    assert_gradcheck(impl, F.apply, (a, b), "MatMul.apply(a, b)")


@pytest.mark.exercise("MatMul")
def test_matmul_returns_none_where_no_grad_is_needed(impl, rng):
    F = impl.MatMul
    for needs in ((True, False), (False, True), (True, True)):
        a, b, g = matmul_inputs(rng)
        a.requires_grad_(needs[0])
        b.requires_grad_(needs[1])
        expected = (g @ b.T, a.detach().T @ g)
        label = f"a.requires_grad={needs[0]}, b.requires_grad={needs[1]}"
        y = run(impl, f"MatMul.apply(a, b) with {label}", lambda a=a, b=b: F.apply(a, b))
        assert_node_of(y, F, "MatMul", (a, b), f"MatMul.apply(a, b) with {label}")
        # Call the node's backward directly: autograd would silently drop unneeded gradients.
        raw = run(impl, f"MatMul backward with {label}", lambda y=y, g=g: y.grad_fn.apply(g),
                  hint=SHAPES)
        if not isinstance(raw, tuple) or len(raw) != 2:
            fail(f"MatMul.backward with {label} returned {describe(raw)}; expected a pair "
                 "(grad_a, grad_b).")
        for i, (name, need) in enumerate(zip("ab", needs, strict=True)):
            if not need and raw[i] is not None:
                fail(
                    f"MatMul.backward with {label}: ctx.needs_input_grad is {needs}, yet backward "
                    f"computed grad_{name} ({describe(raw[i])}).\n"
                    f"  expected None for grad_{name}: nobody needs it, and it costs a whole matmul.\n"
                    "  Try: guard each gradient with `if ctx.needs_input_grad[i]` and return None "
                    "otherwise."
                )
            if need:
                if raw[i] is None:
                    fail(f"MatMul.backward with {label} returned None for grad_{name}, which "
                         f"ctx.needs_input_grad={needs} asks for.\n  Try: ctx.needs_input_grad[0] "
                         "is about a (the first input), [1] about b.")
                assert_close(raw[i], expected[i], f"grad_{name} from MatMul.backward with {label}",
                             hint="grad_a = grad @ b^T, grad_b = a^T @ grad.")


@pytest.mark.exercise("MatMul")
def test_matmul_saved_inputs_are_version_checked(impl, rng):
    F = impl.MatMul
    for name in "ab":
        a0, b0, g = matmul_inputs(rng)

        def modify_then_backward(a0=a0, b0=b0, g=g, name=name):
            a, b = a0.requires_grad_() * 1, b0.requires_grad_() * 1  # non-leaves: in place is allowed
            y = F.apply(a, b)
            (a if name == "a" else b).mul_(2)  # the saved input is now stale
            try:
                grads(y, (a0, b0), g)
            except RuntimeError as exc:
                return str(exc)
            return None

        message = run(impl, "MatMul", modify_then_backward)
        if message is None or "inplace" not in message:
            fail(f"y = MatMul.apply(a, b); {name}.mul_(2); backward: expected autograd to refuse "
                 "(\"one of the variables needed for gradient computation has been modified by "
                 "an inplace operation\"), but backward ran on the stale input.\n"
                 "  Try: save a and b with ctx.save_for_backward(a, b): autograd then records "
                 "their versions. Tensors kept as ctx attributes are not checked.")


@pytest.mark.exercise("MatMul")
def test_matmul_under_torch_func(impl, rng):
    F = impl.MatMul
    a, b, g = matmul_inputs(rng)
    assert_vjp_under_func(impl, F, (a, b), g, (g @ b.T, a.T @ g), "MatMul.apply, a, b")


# ----------------------------------------------------------------------------- MaxWithOneHot


def max_input(rng, ties: bool = False):
    ndim = int(rng.integers(2, 4))
    x = randn(*random_shape(rng, ndim))
    dim = int(rng.integers(-ndim, ndim))
    if ties:  # every slice's max reached twice (or more): the one-hot marks the first only
        x = x.round()
        top = x.amax(dim, keepdim=True) + 1
        x.narrow(dim, 0, 1).copy_(top)
        x.narrow(dim, x.shape[dim] - 1, 1).copy_(top)
    return x, dim


@pytest.mark.exercise("MaxWithOneHot")
def test_max_values_and_onehot(impl, rng):
    F = impl.MaxWithOneHot
    for k in range(5):
        x, dim = max_input(rng, ties=k < 2)
        values, index = x.max(dim)
        onehot = torch.zeros_like(x).scatter_(dim, index.unsqueeze(dim), 1.0)
        out = apply_guarded(impl, f"MaxWithOneHot.apply(x, dim={dim})"
                            + (" (ties for the max)" if k < 2 else ""), F, x, dim)
        if not isinstance(out, tuple) or len(out) != 2:
            fail(f"MaxWithOneHot.apply(x, dim={dim}) returned {describe(out)}; expected a pair "
                 "(values, onehot).")
        assert_close(out[0], values, f"values from MaxWithOneHot.apply(x, dim={dim}), x of shape "
                     f"{tuple(x.shape)}")
        assert_close(out[1], onehot, f"onehot from MaxWithOneHot.apply(x, dim={dim}), x of shape "
                     f"{tuple(x.shape)}",
                     hint="onehot has x's shape and dtype: 1.0 at the argmax along dim (the "
                     "FIRST maximal element when several tie, as torch.argmax picks), 0.0 elsewhere.")


@pytest.mark.exercise("MaxWithOneHot")
def test_max_onehot_is_marked_non_differentiable(impl, rng):
    F = impl.MaxWithOneHot
    x, dim = max_input(rng)
    x.requires_grad_()
    out = run(impl, f"MaxWithOneHot.apply(x, dim={dim})", lambda: F.apply(x, dim))
    if not isinstance(out, tuple) or len(out) != 2:
        fail(f"MaxWithOneHot.apply(x, dim={dim}) returned {describe(out)}; expected a pair "
             "(values, onehot).")
    values, onehot = out
    if not values.requires_grad:
        fail(f"values from MaxWithOneHot.apply(x, dim={dim}) does not require grad: only the "
             "one-hot mask should be non-differentiable.\n"
             "  Try: ctx.mark_non_differentiable(onehot) — mark the mask alone.")
    assert_node_of(values, F, "MaxWithOneHot", (x, dim), f"values from MaxWithOneHot.apply(x, dim={dim})")
    if onehot.requires_grad or onehot.grad_fn is not None:
        fail(
            f"onehot from MaxWithOneHot.apply(x, dim={dim}): requires_grad={onehot.requires_grad}, "
            f"grad_fn={type(onehot.grad_fn).__name__ if onehot.grad_fn else None}; expected "
            "requires_grad=False and no grad_fn.\n"
            "  A float output of a Function is differentiable unless you say otherwise, so the "
            "mask would claim to carry a gradient your backward ignores.\n"
            "  Try: in setup_context, ctx.mark_non_differentiable(onehot)."
        )


@pytest.mark.exercise("MaxWithOneHot")
def test_max_gradient_routes_to_the_argmax(impl, rng):
    F = impl.MaxWithOneHot
    for k in range(3):
        x, dim = max_input(rng, ties=k == 0)
        ref = x.clone().requires_grad_()
        values = ref.max(dim).values
        g = randn(*values.shape)
        (expected,) = torch.autograd.grad(values, ref, g)
        mine = x.clone().requires_grad_()
        (got,) = run(impl, f"backward of MaxWithOneHot.apply(x, dim={dim})[0]",
                     lambda mine=mine, dim=dim, g=g: grads(F.apply(mine, dim)[0], mine, g),
                     hint=SHAPES)
        if got is None:
            fail(f"MaxWithOneHot.apply(x, dim={dim}): x got no gradient (None) through values.")
        assert_close(got, expected, f"x.grad through values of MaxWithOneHot.apply(x, dim={dim}), "
                     f"x of shape {tuple(x.shape)}, random upstream gradient",
                     hint="only the winning element of each slice gets the gradient: "
                     "grad_values.unsqueeze(dim) * onehot.")
    x, dim = max_input(rng)
    x = x.requires_grad_()
    assert_gradcheck(impl, lambda t: F.apply(t, dim)[0], (x,), f"MaxWithOneHot.apply(x, dim={dim})[0]")


@pytest.mark.exercise("MaxWithOneHot")
def test_max_under_torch_func(impl, rng):
    F = impl.MaxWithOneHot
    x, dim = max_input(rng)
    values, index = x.max(dim)
    g = randn(*values.shape)
    expected = torch.zeros_like(x).scatter_(dim, index.unsqueeze(dim), g.unsqueeze(dim))
    assert_vjp_under_func(impl, F, (x, dim), g, (expected,), f"MaxWithOneHot.apply, x, dim={dim}")


# ----------------------------------------------------------------------------- Softplus


@pytest.mark.exercise("Softplus")
def test_softplus_values_are_stable(impl, rng):
    F = impl.Softplus
    x = randn(*random_shape(rng, 2)) * 5
    x.view(-1)[:4] = torch.tensor([800.0, -800.0, 40.0, -40.0], dtype=torch.float64)
    expected = torch.nn.functional.softplus(x)
    y = run(impl, "Softplus.apply(x)", lambda: F.apply(x.detach().requires_grad_()))
    assert_close(y, expected, "Softplus.apply(x), x holding 800, -800, 40, -40 and random values",
                 hint="log(1 + exp(800)) overflows: use max(x, 0) + log1p(exp(-|x|)).")
    x = x.requires_grad_()
    y = apply_guarded(impl, "Softplus.apply(x)", F, x)
    assert_node_of(y, F, "Softplus", (x,), "Softplus.apply(x)")
    g = randn(*x.shape)
    (gx,) = run(impl, "backward of Softplus.apply(x)", lambda: grads(y, x, g), SHAPES)
    assert_close(gx, g * torch.sigmoid(x.detach()), "x.grad for Softplus.apply(x), x holding 800, "
                 "-800, 40, -40 and random values",
                 hint="the derivative is sigmoid(x): torch.sigmoid is stable, exp(x) / (1 + exp(x)) "
                 "is NaN at 800.")


@pytest.mark.exercise("Softplus")
def test_softplus_gradcheck_and_gradgradcheck(impl, rng):
    F = impl.Softplus
    x = randn(*random_shape(rng, 2, 2, 4), requires_grad=True)
    assert_gradcheck(impl, F.apply, (x,), "Softplus.apply")
    assert_gradcheck(impl, F.apply, (x,), "Softplus.apply", second_order=True)


@pytest.mark.exercise("Softplus")
def test_softplus_second_derivative(impl, rng):
    F = impl.Softplus
    shape = random_shape(rng, 2)
    x, g, v = randn(*shape), randn(*shape), randn(*shape)
    s = torch.sigmoid(x)
    expected = g * v * s * (1 - s)  # d/dx <v, g * sigmoid(x)>

    def second():
        xx = x.clone().requires_grad_()
        gg = g.clone().requires_grad_()
        (first,) = torch.autograd.grad(F.apply(xx), xx, gg, create_graph=True)
        if not first.requires_grad:
            return None, None
        return torch.autograd.grad(first, (xx, gg), v, allow_unused=True)

    d_x, d_g = run(impl, "double backward of Softplus.apply(x)", second)
    if d_x is None and d_g is None:
        fail("double backward of Softplus.apply(x): the gradient from backward has no graph at "
             "all (create_graph=True, yet it does not require grad).\n"
             "  Try: compute backward with differentiable torch ops on ctx.saved_tensors; no "
             "torch.no_grad() or @once_differentiable around it.")
    if d_x is None:
        fail("double backward of Softplus.apply(x): the gradient from backward depends on the "
             "upstream gradient but not on x: the path through x was cut.\n"
             "  Try: use the saved x as it is: no .detach(), .item() or .numpy() on it.")
    assert_close(d_x, expected, "d/dx of <v, dSoftplus/dx · g> (second derivative, random g and v)",
                 hint="backward returns grad * sigmoid(x) with x from ctx.saved_tensors, "
                 "written so that autograd can differentiate it again.")
    assert_close(d_g, v * s, "d/dg of <v, dSoftplus/dx · g> (backward must be linear in grad)")
    second_at = run(impl, "torch.func.grad(torch.func.grad(Softplus.apply))",
                    lambda: torch.func.grad(torch.func.grad(F.apply))(x[0, 0]), hint=MODERN)
    assert_close(second_at, s[0, 0] * (1 - s[0, 0]),
                 "torch.func.grad(torch.func.grad(Softplus.apply))(x0)")
