"""Hidden checks for the kata vjp. torch's autograd engine is the oracle, in float64.

The reference VJPs and Jacobians come from the C++ autograd engine, called the way
torch.autograd.grad calls it. Not through torch.func.vjp / jacrev (their pullbacks import
torch._dynamo on first use) nor torch.autograd.grad itself (its _make_grads imports sympy when
given grad_outputs): several seconds of imports for the same engine and the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from checker.helpers import assert_close, assert_equal, describe, fail, layouts, random_shape
from checker.sandbox.dispatch import judge_code, learner_code

pytestmark = pytest.mark.kata("vjp")

# Bound at import, before any rules window swaps the Python-level entry points: the checks'
# own callbacks (backward, vjp) talk to the C++ engine directly, as _engine_run_backward does.
_ENGINE = torch.autograd.Variable._execution_engine
_set_grad_enabled = torch._C._set_grad_enabled
_is_grad_enabled = torch.is_grad_enabled
DT = torch.float64


ARG_NAMES = {"linear_vjp": ("x", "w", "b", "grad_out"),
             "reduce_vjp": ("grad_out", "in_shape", "dim", "keepdim", "mean"),
             "softmax_vjp": ("y", "grad_out", "dim"),
             "layer_norm_vjp": ("x", "normalized_shape", "weight", "bias", "eps", "grad_out")}


def by_hand(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a hand-written VJP under no_grad (no graph is recorded, so no grad_fn to call) on
    the caller's own tensors, which must come back unchanged."""
    before = [a.clone() if type(a) is torch.Tensor else a for a in args]
    with torch.no_grad():
        result = fn(*args)
    names = ARG_NAMES.get(getattr(fn, "__name__", ""), ())
    for i, (a, b) in enumerate(zip(args, before, strict=True)):
        if type(a) is torch.Tensor:
            name = names[i] if i < len(names) else f"argument {i}"
            assert_close(a, b, f"{getattr(fn, '__name__', 'your VJP')}: {name} after the call "
                         "(an input: it must not change)",
                         hint="compute out of place (g = grad_out * w, not grad_out *= w): the "
                         "engine hands the same gradient tensor to other nodes too.")
    return result


def engine_grad(output: torch.Tensor, inputs: tuple[torch.Tensor, ...], cotangent: torch.Tensor,
                *, keep_graph: bool = False, create_graph: bool = False) -> tuple[torch.Tensor, ...]:
    """What torch.autograd.grad(output, inputs, cotangent) returns (unreachable inputs: zeros)."""
    grads = _ENGINE.run_backward((output,), (cotangent,), keep_graph, create_graph, inputs, True, False)
    return tuple(torch.zeros_like(i) if g is None else g for g, i in zip(grads, inputs, strict=True))


def oracle_vjp(f: Callable[..., torch.Tensor], primals: tuple[torch.Tensor, ...],
               cotangent: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """cotangent^T J for each primal, by torch's autograd (outside any rules window)."""
    leaves = tuple(p.detach().clone().requires_grad_(True) for p in primals)
    return tuple(g.detach() for g in engine_grad(f(*leaves), leaves, cotangent))


def oracle_jacobian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """dy/dx with shape y.shape + x.shape, one reverse pass per output element."""
    leaf = x.detach().clone().requires_grad_(True)
    y = f(leaf)
    eye = torch.eye(y.numel(), dtype=y.dtype)
    rows = [engine_grad(y, (leaf,), e.reshape(y.shape), keep_graph=True)[0] for e in eye]
    return torch.stack(rows).reshape(*y.shape, *x.shape).detach()


def tuple_of(got: Any, n: int, what: str) -> tuple:
    if type(got) not in (tuple, list) or len(got) != n:
        fail(f"{what}: expected a tuple of {n} tensors, got {describe(got)}.")
    return tuple(got)


# ----------------------------------------------------------------------------- linear_vjp


def bias_shapes(batch: tuple[int, ...], n: int, m: int) -> list[tuple[int, ...]]:
    shapes = [(m,), (1, m), (n, 1), (), (n, m), (1, 1)]
    if batch:
        shapes += [(*batch, 1, m), (*batch, n, 1)]
    return shapes


@pytest.mark.exercise("linear_vjp")
def test_linear_vjp_matches_torch(impl, rng):
    for batch in ((), (int(rng.integers(2, 4)),)):
        n, k, m = random_shape(rng, 3, 2, 7)
        for b_shape in bias_shapes(batch, n, m):
            x = torch.randn(*batch, n, k, dtype=DT)
            w = torch.randn(k, m, dtype=DT)
            b = torch.randn(b_shape, dtype=DT)
            g = torch.randn(*batch, n, m, dtype=DT)
            expected = oracle_vjp(lambda x, w, b: x @ w + b, (x, w, b), g)
            what = f"linear_vjp(x {tuple(x.shape)}, w {tuple(w.shape)}, b {b_shape}, grad_out {tuple(g.shape)})"
            got = tuple_of(by_hand(impl.linear_vjp, x, w, b, g),
                           3, what)
            hints = (
                "y = x @ w, so grad_x = grad_out @ w.T: a (.., n, m) times an (m, k).",
                "grad_w = x.T @ grad_out, shaped like w (k, m); w is shared by every batch "
                "entry, so sum the per-entry products over the batch.",
                "b was broadcast up to y's shape: sum grad_out over the dims b gained (leading) "
                "and, with keepdim=True, over the dims where b had size 1.",
            )
            for name, e, gt, hint in zip(("grad_x", "grad_w", "grad_b"), expected, got, hints, strict=True):
                assert_close(gt, e, f"{what}: {name}", hint=hint)


@pytest.mark.exercise("linear_vjp")
def test_linear_vjp_empty_batch(impl, rng):
    n, k, m = random_shape(rng, 3, 2, 7)
    for x_shape, b_shape in (((0, k), (1, m)), ((0, k), (m,)), ((2, 0, k), (1, 1, m)),
                             ((0, n, k), (n, 1))):
        x, w = torch.randn(x_shape, dtype=DT), torch.randn(k, m, dtype=DT)
        b = torch.randn(b_shape, dtype=DT)
        y = x @ w + b
        g = torch.randn(y.shape, dtype=DT)
        expected = oracle_vjp(lambda x, w, b: x @ w + b, (x, w, b), g)
        what = (f"linear_vjp(x {tuple(x.shape)}, w {tuple(w.shape)}, b {b_shape}, grad_out "
                f"{tuple(g.shape)}) — an empty batch")
        got = tuple_of(by_hand(impl.linear_vjp, x, w, b, g), 3, what)
        for name, e, gt in zip(("grad_x", "grad_w", "grad_b"), expected, got, strict=True):
            assert_close(gt, e, f"{what}: {name}",
                         hint="an empty batch contributes nothing: the gradients of w and b are "
                         "zeros of their own shapes (a sum over no rows).")


@pytest.mark.exercise("linear_vjp")
def test_linear_vjp_any_layout(impl, rng):
    n, k, m = random_shape(rng, 3, 2, 7)
    x0, w0 = torch.randn(n, k, dtype=DT), torch.randn(k, m, dtype=DT)
    b, g0 = torch.randn(m, dtype=DT), torch.randn(n, m, dtype=DT)
    expected = oracle_vjp(lambda x, w, b: x @ w + b, (x0, w0, b), g0)
    for (lx, x), (lw, w), (lg, g) in zip(layouts(x0), layouts(w0), layouts(g0), strict=True):
        what = f"linear_vjp with x {lx}, w {lw}, grad_out {lg} (n, k, m = {n}, {k}, {m})"
        got = tuple_of(by_hand(impl.linear_vjp, x, w, b, g), 3, what)
        for name, e, gt in zip(("grad_x", "grad_w", "grad_b"), expected, got, strict=True):
            assert_close(gt, e, f"{what}: {name}",
                         hint="work with shapes and ops (.T, @, sum), never with .stride() or "
                         "the raw storage.")


# ----------------------------------------------------------------------------- reduce_vjp


EDGE_REDUCTIONS = [  # every run: dims out of order, negative, size-1 and 1-d shapes
    ((2, 3, 4, 5), (2, 0), False), ((2, 3, 4, 5), (-1, 1), False), ((2, 3, 4, 5), (3, -3), True),
    ((4, 1, 3), (-2, 0), False), ((4, 1, 3), -1, False), ((4, 1, 3), 1, False),
    ((3, 5), (-1, -2), False), ((5,), 0, False), ((5,), -1, True), ((1, 4), None, False),
    ((3, 2, 4), (0, 2, 1), False),
]


def reduce_cases(rng) -> list[tuple[tuple[int, ...], Any, bool, bool]]:
    cases = [(shape, dim, keepdim, mean) for shape, dim, keepdim in EDGE_REDUCTIONS
             for mean in (False, True)]
    for _ in range(14):
        ndim = int(rng.integers(1, 5))
        shape = random_shape(rng, ndim, 2, 6)
        kind = rng.random()
        if kind < 0.15:
            dim, keepdim = None, False
        elif kind < 0.55:
            dim = int(rng.integers(-ndim, ndim))
            keepdim = bool(rng.random() < 0.4)
        else:
            count = int(rng.integers(1, ndim + 1))
            picked = [int(d) for d in rng.choice(ndim, size=count, replace=False)]  # any order
            dim = tuple(d - ndim if rng.random() < 0.4 else d for d in picked)
            keepdim = bool(rng.random() < 0.4)
        for mean in (False, True):
            cases.append((shape, dim, keepdim, mean))
    return cases


@pytest.mark.exercise("reduce_vjp")
def test_reduce_vjp_matches_torch(impl, rng):
    for shape, dim, keepdim, mean in reduce_cases(rng):
        x = torch.randn(shape, dtype=DT)

        def f(x, dim=dim, keepdim=keepdim, mean=mean):
            if dim is None:
                return x.mean() if mean else x.sum()
            return x.mean(dim, keepdim=keepdim) if mean else x.sum(dim, keepdim=keepdim)

        y = f(x)
        g = torch.randn(y.shape, dtype=DT)
        (expected,) = oracle_vjp(f, (x,), g)
        op = "mean" if mean else "sum"
        what = (f"reduce_vjp for y = x.{op}(dim={dim}, keepdim={keepdim}) with x of shape {shape} "
                f"(grad_out shape {tuple(g.shape)})")
        got = by_hand(impl.reduce_vjp, g, shape, dim, keepdim, mean)
        assert_close(got, expected, what,
                     hint="each reduced element gets the grad_out value of its output slot; "
                     "a mean divides by the number of elements reduced into that slot.")


# ----------------------------------------------------------------------------- softmax_vjp


@pytest.mark.exercise("softmax_vjp")
def test_softmax_vjp_matches_torch(impl, rng):
    # every dim of a 3-d y, each named both ways (a negative dim other than -1 included),
    # and a 1-d y, on every run; then random draws
    fixed = [((3, 4, 5), dim) for dim in (0, 1, 2, -1, -2, -3)] + [((4,), 0), ((4,), -1)]
    draws = []
    for _ in range(8):
        ndim = int(rng.integers(1, 4))
        draws.append((random_shape(rng, ndim, 2, 6), int(rng.integers(-ndim, ndim))))
    for shape, dim in [*fixed, *draws]:
        x = torch.randn(shape, dtype=DT) * 2
        y = torch.softmax(x, dim)
        g = torch.randn(shape, dtype=DT)
        (expected,) = oracle_vjp(lambda x, dim=dim: torch.softmax(x, dim), (x,), g)
        what = f"softmax_vjp(y, grad_out, dim={dim}) for shape {shape}"
        got = by_hand(impl.softmax_vjp, y, g, dim)
        assert_close(got, expected, what,
                     hint="every output of a softmax depends on every input along dim: "
                     "grad_x = y * (grad_out - sum(grad_out * y, dim, keepdim=True)).")


@pytest.mark.exercise("softmax_vjp")
def test_softmax_vjp_of_a_transposed_output(impl, rng):
    n, m = random_shape(rng, 2, 3, 7)
    x = (torch.randn(m, n, dtype=DT) * 3).T
    y = torch.softmax(x, 0)
    g = torch.randn(n, m, dtype=DT).T.contiguous().T
    (expected,) = oracle_vjp(lambda x: torch.softmax(x, 0), (x,), g)
    what = f"softmax_vjp(y, grad_out, dim=0) for a transposed y of shape {(n, m)}"
    got = by_hand(impl.softmax_vjp, y, g, 0)
    assert_close(got, expected, what, hint="reduce over `dim`, not over the last dim.")


# ----------------------------------------------------------------------------- layer_norm_vjp


@pytest.mark.exercise("layer_norm_vjp")
def test_layer_norm_vjp_matches_torch(impl, rng):
    # on every run: two leading dims, no leading dim, two normalized dims, a large eps
    fixed = [((3, 4, 5), (5,), 1e-5), ((2, 3, 4), (3, 4), 1e-3), ((6,), (6,), 0.1),
             ((4, 3), (4, 3), 1e-3), ((2, 3, 4, 5), (5,), 0.1)]
    draws = []
    for _ in range(6):
        ndim = int(rng.integers(1, 4))
        shape = random_shape(rng, ndim, 2, 7)
        n_norm = int(rng.integers(1, min(ndim, 2) + 1))
        draws.append((shape, shape[ndim - n_norm:], float(rng.choice([1e-5, 1e-3, 0.1]))))
    for shape, ns, eps in [*fixed, *draws]:
        x = torch.randn(shape, dtype=DT) * 2 + 1
        w = torch.randn(ns, dtype=DT)
        b = torch.randn(ns, dtype=DT)
        g = torch.randn(shape, dtype=DT)
        expected = oracle_vjp(lambda x, w, b, ns=ns, eps=eps: F.layer_norm(x, ns, w, b, eps), (x, w, b), g)
        what = f"layer_norm_vjp for x of shape {shape}, normalized_shape={ns}, eps={eps}"
        got = tuple_of(by_hand(impl.layer_norm_vjp, x, ns, w, b, eps, g), 3, what)
        hints = (
            "mean and variance (biased, divide by N) are functions of x: with g = grad_out * "
            "weight and xhat = (x - mean) * rstd, grad_x = rstd * (g - mean(g) - xhat * "
            "mean(g * xhat)) over the normalized dims.",
            "grad_weight = sum of grad_out * xhat over the leading (non-normalized) dims.",
            "grad_bias = sum of grad_out over the leading (non-normalized) dims.",
        )
        for name, e, gt, hint in zip(("grad_x", "grad_weight", "grad_bias"), expected, got, hints, strict=True):
            assert_close(gt, e, f"{what}: {name}", hint=hint)


# ----------------------------------------------------------------------------- jacobian


class Backward:
    """``backward(v)``: what ``y.backward(v, retain_graph=True, inputs=[x])`` does, counted."""

    def __init__(self, y: torch.Tensor, x: torch.Tensor):
        self.y, self.x, self.calls = y, x, 0

    def __call__(self, v: Any) -> None:
        with judge_code():  # the engine is off-limits to the learner, not to this callback
            self._run(v)

    def _run(self, v: Any) -> None:
        self.calls += 1
        if type(v) is not torch.Tensor:
            fail(f"backward(v) was given {describe(v)}; v must be a tensor shaped like y.")
        if v.shape != self.y.shape:
            fail(f"backward(v): v has shape {tuple(v.shape)} but y has shape {tuple(self.y.shape)}. "
                 "A cotangent has y's shape: it says how much each element of y matters.")
        if v.dtype != self.y.dtype:
            fail(f"backward(v): v has dtype {v.dtype} but y has dtype {self.y.dtype}.")
        _ENGINE.run_backward((self.y,), (v.detach(),), True, False, (self.x,), True, True)


def jacobian_cases(rng):
    """(name, f, x) with non-scalar outputs of shapes unlike their inputs."""
    a, b_, c, d = random_shape(rng, 4, 2, 5)
    A, B = torch.randn(c, a, dtype=DT), torch.randn(b_, d, dtype=DT)
    M = torch.randn(a, c, dtype=DT)
    return [
        (f"y = sin(A @ x @ B) * x.square().mean(), x {(a, b_)} -> y {(c, d)}",
         lambda x: torch.sin(A @ x @ B) * x.square().mean(), torch.randn(a, b_, dtype=DT)),
        (f"y = softmax(x @ M, -1), x {(a,)} -> y {(c,)}",
         lambda x: torch.softmax(x @ M, -1), torch.randn(a, dtype=DT)),
        (f"y = tanh(x).cumsum(0)[:, None] * x.sum(), x {(b_,)} -> y {(b_, 1)}",
         lambda x: torch.tanh(x).cumsum(0)[:, None] * x.sum(), torch.randn(b_, dtype=DT)),
    ]


def jacobian_hint(got: Any, expected: torch.Tensor, stale: torch.Tensor | None, n: int) -> str:
    """What to try, told by what the wrong Jacobian looks like."""
    rows = expected.reshape(n, -1)
    base = torch.zeros_like(rows[0]) if stale is None else stale.reshape(-1)
    shapes = {
        "accumulated": base + rows.cumsum(0),  # x.grad never cleared
        "one tensor": (rows[-1]).expand_as(rows),  # cleared in place, never copied
        "one tensor, accumulated": (base + rows.sum(0)).expand_as(rows),
    }
    if type(got) is torch.Tensor and got.numel() == rows.numel():
        flat = got.detach().reshape(n, -1).to(rows.dtype)
        for kind, pattern in shapes.items():
            if torch.allclose(flat, pattern):
                if kind == "accumulated":
                    return ("each row holds the sum of all VJPs so far: backward(v) ADDS into "
                            "x.grad; clear it (x.grad = None) before every backward(v).")
                return ("every row is the same tensor: x.grad is updated in place, so a row "
                        "that keeps a reference to it changes with the next backward. Keep a "
                        "copy of each row (x.grad.clone()), or set x.grad = None so that every "
                        "backward makes a new one" + (", and clear it before every backward."
                                                      if "accumulated" in kind else "."))
    return ("row i of J (J[i] has x's shape) is the VJP with the one-hot cotangent e_i shaped "
            "like y, read from x.grad after backward(e_i).")


@pytest.mark.exercise("jacobian_from_backward")
def test_jacobian_from_backward_matches_torch(impl, rng):
    for i, (name, f, x0) in enumerate(jacobian_cases(rng)):
        expected = oracle_jacobian(f, x0)
        x = x0.clone().requires_grad_(True)
        stale = i == 0
        if stale:
            x.grad = torch.randn_like(x0)  # left over from an earlier backward
        y = f(x)
        backward = Backward(y, x)
        what = f"jacobian_from_backward for {name}" + (" (x.grad held a stale gradient)" if stale else "")
        stale_grad = None if x.grad is None else x.grad.clone()
        got = impl.jacobian_from_backward(y, x, backward)
        assert_close(got, expected, what, hint=jacobian_hint(got, expected, stale_grad, y.numel()))
        assert_equal(backward.calls, y.numel(), f"{what}: number of backward(v) calls",
                     hint="one backward per output element: a VJP gives one row of J.")


# ----------------------------------------------------------------------------- jvp


class VJP:
    """``vjp(fn, primal, cotangent)``: cotangent^T d fn/d primal, differentiable, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fn: Callable[[torch.Tensor], torch.Tensor], primal: Any, cotangent: Any) -> torch.Tensor:
        with judge_code():  # the engine is off-limits to the learner, not to this callback
            return self._run(fn, primal, cotangent)

    def _run(self, fn: Callable[[torch.Tensor], torch.Tensor], primal: Any, cotangent: Any) -> torch.Tensor:
        self.calls += 1
        for name, t in (("primal", primal), ("cotangent", cotangent)):
            if type(t) is not torch.Tensor:
                fail(f"vjp(fn, primal, cotangent): {name} is {describe(t)}, not a tensor.")
        previous = _is_grad_enabled()
        _set_grad_enabled(True)
        try:
            p = primal.detach().requires_grad_(True)
            with learner_code():  # fn is the learner's: under the kata's rules again
                out = fn(p)
            if type(out) is not torch.Tensor:
                fail(f"vjp(fn, primal, cotangent): fn returned {describe(out)}, not a tensor.")
            if out.shape != cotangent.shape:
                fail(f"vjp(fn, primal, cotangent): the cotangent has shape {tuple(cotangent.shape)} "
                     f"but fn(primal) has shape {tuple(out.shape)}. A cotangent lives where fn's "
                     "OUTPUT lives.")
            if not out.requires_grad:
                return torch.zeros_like(p)
            return engine_grad(out, (p,), cotangent, keep_graph=True, create_graph=True)[0]
        finally:
            _set_grad_enabled(previous)


def jvp_cases(rng):
    a, b_, c = random_shape(rng, 3, 2, 6)
    A = torch.randn(c, a, dtype=DT)
    W = torch.randn(b_, c, dtype=DT)
    return [
        (f"f(x) = tanh(A @ x) * x.sum(), x {(a, b_)} -> {(c, b_)}",
         lambda x: torch.tanh(A @ x) * x.sum(), torch.randn(a, b_, dtype=DT)),
        (f"f(x) = softmax(x @ W, 0), x {(a, b_)} -> {(a, c)}",
         lambda x: torch.softmax(x @ W, 0), torch.randn(a, b_, dtype=DT)),
        (f"f(x) = (x ** 3).cumsum(0), x {(c,)} -> {(c,)}",
         lambda x: (x ** 3).cumsum(0), torch.randn(c, dtype=DT)),
    ]


@pytest.mark.exercise("jvp_by_double_vjp")
def test_jvp_by_double_vjp_matches_torch(impl, rng):
    for name, f, x in jvp_cases(rng):
        u = torch.randn_like(x)
        expected = torch.tensordot(oracle_jacobian(f, x), u, dims=x.dim())  # J u
        vjp = VJP()
        what = f"jvp_by_double_vjp for {name}"
        x_before, u_before = x.clone(), u.clone()
        got = impl.jvp_by_double_vjp(f, x, u, vjp)
        assert_close(x, x_before, f"{what}: x after the call (an input: it must not change)")
        assert_close(u, u_before, f"{what}: u after the call (an input: it must not change)")
        assert_close(got, expected, what,
                     hint="g(v) = vjp(f, x, v) = J^T v is linear in v; vjp(g, v0, u) = J u for "
                     "any v0 shaped like f(x).")
        assert_equal(vjp.calls, 2, f"{what}: number of vjp calls",
                     hint="one JVP costs two VJPs (one inside the other); n VJPs would build the "
                     "whole Jacobian, which is what forward mode saves you from.")
