"""Hidden checks for the kata losses. torch.nn.functional is the oracle.

Each loss is compared with torch's on ordinary inputs (float32 and float64, several memory
layouts, every reduction) and on extreme logits (±1e4) where the textbook formula overflows:
there the result must be finite and still equal to torch's. Gradients are compared in float64
with random upstream gradients, through the learner's own autograd graph. Extreme inputs are
judged to a tolerance scaled by the logits' magnitude (a float32 value near 1e4 carries an
absolute rounding of about 1e-3); a wrong formula is off by far more, or not finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from checker.diagnosis import observe
from checker.helpers import (
    CheckFailure,
    as_tensor_result,
    assert_close,
    assert_equal,
    describe,
    expect_raises,
    fail,
    layouts,
    learner_caller,
    random_shape,
)

pytestmark = pytest.mark.kata("losses")

BIG = 1e4
REDUCTIONS = ("none", "mean", "sum")


# ----------------------------------------------------------------------------- helpers


call = learner_caller("write it from exp, log, log1p, amax, where, gather, sum and mean; the "
                      "checks call torch.nn.functional themselves.")


def tol(x: torch.Tensor) -> dict:
    """Tolerances for results built from logits ``x``: scaled by their largest magnitude.

    A float32 result may legitimately differ from torch's in the last few bits of its largest
    intermediate (16 ulps of max|x|), whichever stable formula produced it.
    """
    eps = torch.finfo(x.dtype).eps
    scale = max(1.0, float(x.detach().abs().max())) if x.numel() else 1.0
    if x.dtype == torch.float64:
        return {"rtol": 1e-7, "atol": max(1e-10, 16 * eps * scale)}
    return {"rtol": 1e-5, "atol": max(1e-6, 16 * eps * scale)}


@dataclass
class Case:
    """One call of the learner's function and torch's answer, computed beforehand."""

    what: str
    args: tuple
    kwargs: dict
    expected: torch.Tensor
    logits: torch.Tensor  # sets the tolerance
    finite: bool = False  # the extreme-logit cases: a non-finite value gets its own message


def learner(impl, name: str):
    """The learner's raw function (a missing name fails with the proxy's message)."""
    getattr(impl, name)
    return getattr(impl.module, name)


def judge_all(impl, name: str, cases: list[Case], hint: str) -> None:
    """Run every case in ONE rules window (torch's answers were computed before it opened)."""
    fn = learner(impl, name)

    def observed(*args, **kwargs):  # the calls a diagnosis replays (checker.diagnosis)
        return observe(name, args, kwargs, lambda: fn(*args, **kwargs))

    with impl.rules():
        for case in cases:
            inputs = [a for a in (*case.args, *case.kwargs.values()) if isinstance(a, torch.Tensor)]
            before = [a.clone() for a in inputs]
            got = call(case.what, observed, *case.args, **case.kwargs)
            for a, b in zip(inputs, before, strict=True):
                if not torch.equal(a, b):
                    fail(f"{case.what}: your function changed one of its input tensors in "
                         "place; a loss reads its inputs and returns a new tensor.")
            if case.finite:
                check_finite(got, case.what, hint)
            assert_close(got, case.expected, case.what, **tol(case.logits), hint=hint)


def extreme_logits(shape, dtype) -> torch.Tensor:
    """Logits mixing ordinary values with ±1e4 (and values near ±1e4), no exact zeros."""
    x = torch.randn(shape, dtype=dtype) * 3
    pick = torch.rand(shape)
    x = torch.where(pick < 0.25, BIG + torch.randn(shape, dtype=dtype), x)
    x = torch.where((pick >= 0.25) & (pick < 0.5), -BIG + torch.randn(shape, dtype=dtype), x)
    return x


def check_finite(got, what: str, hint: str) -> None:
    got = as_tensor_result(got, what)
    bad = ~torch.isfinite(got.detach())
    if bool(bad.any()):
        idx = [int(i) for i in bad.nonzero()[0]]
        fail(f"{what}: {int(bad.sum())} of {got.numel()} values are not finite "
             f"(first at index {idx}: {float(got.detach()[tuple(idx)])}) — the torch reference "
             f"is finite everywhere.\n  Try: {hint}")


def _leaves(inputs, wrt):
    return [t.detach().clone().requires_grad_(True) if i in wrt else t
            for i, t in enumerate(inputs)]


def compare_grads(impl_fn, ref_fn, inputs, what: str, hint: str, wrt=(0,)) -> None:
    """The learner's gradients (through its own graph) against torch's, random upstream.

    ``wrt`` are the positions in ``inputs`` to differentiate: the logits, and for BCE the
    target too.
    """
    names = ["logits", "target"]
    leaves = _leaves(inputs, wrt)
    ref_out = ref_fn(*leaves)
    upstream = torch.randn(ref_out.shape, dtype=torch.float64)
    ref_grads = torch.autograd.grad((ref_out * upstream).sum(), [leaves[i] for i in wrt])
    leaves = _leaves(inputs, wrt)
    out = as_tensor_result(call(what, impl_fn, *leaves), what)
    if out.grad_fn is None:
        fail(f"{what}: the result has no grad_fn: autograd cannot reach the inputs. Compute it "
             "with differentiable tensor ops (no .item(), .tolist(), .detach() or numpy).")
    got_grads = torch.autograd.grad((out * upstream).sum(), [leaves[i] for i in wrt],
                                    allow_unused=True)
    for i, g, r in zip(wrt, got_grads, ref_grads, strict=True):
        if g is None:
            fail(f"{what}: no gradient reached the {names[i]}; torch's loss is differentiable "
                 "in it.")
        check_finite(g, f"{what}: gradient w.r.t. the {names[i]}", hint)
        assert_close(g, r, f"{what}: gradient w.r.t. the {names[i]} (random upstream gradient)",
                     **tol(inputs[0]), hint=hint)


# ----------------------------------------------------------------------------- reduce_loss


@pytest.mark.exercise("reduce_loss")
def test_reduce_loss_matches_torch(impl, rng):
    shape = random_shape(rng, 3, 2, 6)
    loss = torch.rand(shape, dtype=torch.float64) * 5
    cases = [Case(f"reduce_loss(loss of shape {shape}, {reduction!r})", (loss.clone(), reduction),
                  {}, {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction], loss)
             for reduction in REDUCTIONS]
    judge_all(impl, "reduce_loss", cases,
              hint="'mean' averages over EVERY element (loss.mean()), not over the first "
              "dimension; 'none' returns the per-element losses unchanged.")


@pytest.mark.exercise("reduce_loss")
def test_reduce_loss_keeps_the_graph(impl, rng):
    shape = random_shape(rng, 2, 2, 6)
    loss = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    got = as_tensor_result(call("reduce_loss(loss, 'mean')", impl.reduce_loss, loss, "mean"),
                           "reduce_loss(loss, 'mean')")
    if got.grad_fn is None:
        fail("reduce_loss(loss requiring grad, 'mean'): the result has no grad_fn; reduce with "
             "tensor ops so that the loss can be backpropagated.")
    (grad,) = torch.autograd.grad(got, loss)
    assert_close(grad, torch.full(shape, 1 / loss.numel(), dtype=torch.float64),
                 f"the gradient of reduce_loss(loss of shape {shape}, 'mean')",
                 hint="every element gets 1/numel of the gradient.")


@pytest.mark.exercise("reduce_loss")
def test_reduce_loss_rejects_unknown_reduction(impl, rng):
    loss = torch.rand(4, dtype=torch.float64)
    for bad in ("avg", "batchmean", "Mean", ""):
        try:
            exc = expect_raises(ValueError, lambda bad=bad: impl.reduce_loss(loss, bad),
                                f"reduce_loss(loss, {bad!r})",
                                hint="raise ValueError for any reduction other than 'none', "
                                "'mean' and 'sum' — a typo must not silently become a mean.")
        except (NotImplementedError, CheckFailure):
            raise
        except Exception as other:  # noqa: BLE001 — reported to the learner
            fail(f"reduce_loss(loss, {bad!r}) raised {type(other).__name__}({other}); expected "
                 "ValueError, the error Python uses for a bad value of the right type.\n"
                 "  Try: raise ValueError(f\"{reduction!r} is not a valid reduction\").")
        if bad not in str(exc):
            fail(f"reduce_loss(loss, {bad!r}) raised ValueError({str(exc)!r}); name the bad "
                 "value in the message so the caller sees their typo.")


# ----------------------------------------------------------------------------- logsumexp


@pytest.mark.exercise("logsumexp")
def test_logsumexp_matches_torch_on_ordinary_inputs(impl, rng):
    cases = []
    for dtype in (torch.float64, torch.float32):
        shape = random_shape(rng, 3, 2, 6)
        base = torch.randn(shape, dtype=dtype) * 3
        for layout, x in layouts(base):
            dim = int(rng.integers(-3, 3))
            keepdim = bool(rng.random() < 0.5)
            cases.append(Case(
                f"logsumexp(x {describe(x)} ({layout}), dim={dim}, keepdim={keepdim})",
                (x, dim, keepdim), {}, torch.logsumexp(x.clone(), dim, keepdim=keepdim), x))
    judge_all(impl, "logsumexp", cases,
              hint="reduce along dim, and keep it with size 1 only when keepdim.")


def size_one_inputs(rng):
    """Shapes with size-1 dims (every run), and each dim to reduce: a squeeze without a dim,
    or a reduction over the wrong dim, changes the result's shape or values here."""
    k = int(rng.integers(3, 6))
    for shape in ((1, k), (k, 1), (1, 1, k), (k, 1, 2)):
        x = torch.randn(shape, dtype=torch.float64) * 3
        for dim in range(-len(shape), len(shape)):
            yield x, dim


def log_probabilities(rng, dtype=torch.float64):
    """Rows of log-probabilities: their logsumexp is 0 to the last bit, so an intermediate
    kept in lower precision (a float32 sum) shows as an absolute error of ~1e-8."""
    rows, cols = random_shape(rng, 2, 3, 8)
    return torch.log_softmax(torch.randn(rows, cols, dtype=dtype) * 4, dim=1)


@pytest.mark.exercise("logsumexp")
def test_logsumexp_edge_cases(impl, rng):
    cases = []
    for x, dim in size_one_inputs(rng):
        for keepdim in (False, True):
            cases.append(Case(f"logsumexp(x of shape {tuple(x.shape)}, dim={dim}, "
                              f"keepdim={keepdim})", (x.clone(), dim, keepdim), {},
                              torch.logsumexp(x, dim, keepdim=keepdim), x))
    x = log_probabilities(rng)
    cases.append(Case(f"logsumexp(x {tuple(x.shape)} float64 whose rows are "
                      "log-probabilities (the result is 0), dim=1)", (x.clone(), 1), {},
                      torch.logsumexp(x, 1), x))
    judge_all(impl, "logsumexp", cases,
              hint="reduce exactly the given dim (squeeze(dim), never a bare squeeze(), which "
              "also drops other size-1 dims), and keep every step in the input's dtype.")


@pytest.mark.exercise("logsumexp")
def test_logsumexp_finite_on_extreme_logits(impl, rng):
    cases = []
    for dtype in (torch.float64, torch.float32):
        rows, cols = random_shape(rng, 2, 3, 8)
        x = extreme_logits((rows, cols), dtype)
        x[0] = BIG + torch.randn(cols, dtype=dtype)  # a row far above the others
        x[1] = -BIG + torch.randn(cols, dtype=dtype)  # and one far below
        cases.append(Case(f"logsumexp(x {describe(x)} with logits around ±1e4, dim=1)",
                          (x.clone(), 1), {}, torch.logsumexp(x.clone(), 1), x, finite=True))
    judge_all(impl, "logsumexp", cases,
              hint="exp(1e4) overflows: subtract each slice's OWN maximum (amax over dim, "
              "keepdim=True) before exp, and add it back after the log.")


@pytest.mark.exercise("logsumexp")
def test_logsumexp_handles_infinities(impl, rng):
    cols = int(rng.integers(3, 7))
    ninf, pinf = float("-inf"), float("inf")
    x = torch.randn(4, cols, dtype=torch.float64)
    x[0] = ninf  # an empty (all -inf) slice: logsumexp is -inf
    x[1, 0] = ninf  # a -inf entry among finite ones just contributes exp(-inf) = 0
    x[2, int(rng.integers(cols))] = pinf  # a +inf entry: the result is +inf
    expected = torch.logsumexp(x.clone(), 1)
    what = f"logsumexp(x, dim=1) for rows [all -inf], [one -inf], [one +inf], [finite] of {cols}"
    got = call(what, impl.logsumexp, x.clone(), 1)
    assert_close(got, expected, what,
                 hint="when the maximum itself is ±inf, shift by 0 instead (torch masks it): "
                 "-inf - (-inf) and inf - inf are nan.")


def compare_grads_over_logits(rng, name: str, ours, theirs, hint: str) -> None:
    """The gradient of ``ours(x, dim)`` against ``theirs`` for ordinary and extreme logits."""
    for kind in ("ordinary", "extreme"):
        shape = random_shape(rng, 2, 3, 8)
        x = (extreme_logits(shape, torch.float64) if kind == "extreme"
             else torch.randn(shape, dtype=torch.float64))
        dim = int(rng.integers(-2, 2))
        compare_grads(lambda t, dim=dim: ours(t, dim), lambda t, dim=dim: theirs(t, dim), [x],
                      f"{name}(x {shape} with {kind} logits, dim={dim})", hint=hint)


@pytest.mark.exercise("logsumexp")
def test_logsumexp_gradient(impl, rng):
    compare_grads_over_logits(rng, "logsumexp", lambda t, d: impl.logsumexp(t, d), torch.logsumexp,
                              hint="the gradient of logsumexp is softmax(x); build the result "
                              "from exp/log/sum of the shifted x so autograd finds it.")


# ----------------------------------------------------------------------------- log_softmax


@pytest.mark.exercise("log_softmax")
def test_log_softmax_matches_torch_on_ordinary_inputs(impl, rng):
    cases = []
    for dtype in (torch.float64, torch.float32):
        shape = random_shape(rng, 3, 2, 6)
        base = torch.randn(shape, dtype=dtype) * 3
        for layout, x in layouts(base):
            dim = int(rng.integers(-3, 3))
            cases.append(Case(f"log_softmax(x {describe(x)} ({layout}), dim={dim})", (x, dim), {},
                              F.log_softmax(x.clone(), dim), x))
    judge_all(impl, "log_softmax", cases,
              hint="x - logsumexp(x, dim, keepdim=True): keepdim makes it broadcast back along "
              "the reduced dim.")


@pytest.mark.exercise("log_softmax")
def test_log_softmax_edge_cases(impl, rng):
    cases = [Case(f"log_softmax(x of shape {tuple(x.shape)}, dim={dim})", (x.clone(), dim), {},
                  F.log_softmax(x, dim), x) for x, dim in size_one_inputs(rng)]
    x = log_probabilities(rng)
    cases.append(Case(f"log_softmax(x {tuple(x.shape)} float64 whose rows are already "
                      "log-probabilities, dim=1)", (x.clone(), 1), {}, F.log_softmax(x, 1), x))
    judge_all(impl, "log_softmax", cases,
              hint="x - logsumexp(x, dim, keepdim=True), for every dim and every shape.")


@pytest.mark.exercise("log_softmax")
def test_log_softmax_finite_on_extreme_logits(impl, rng):
    cases = []
    for dtype in (torch.float64, torch.float32):
        shape = random_shape(rng, 2, 3, 8)
        x = extreme_logits(shape, dtype)
        dim = int(rng.integers(-2, 2))
        cases.append(Case(f"log_softmax(x {describe(x)} with logits around ±1e4, dim={dim})",
                          (x.clone(), dim), {}, F.log_softmax(x.clone(), dim), x, finite=True))
    judge_all(impl, "log_softmax", cases,
              hint="log(softmax(x)) underflows to log(0) = -inf and log(sum(exp(x))) overflows; "
              "x - logsumexp(x) with the max-shifted logsumexp stays finite.")


@pytest.mark.exercise("log_softmax")
def test_log_softmax_gradient(impl, rng):
    compare_grads_over_logits(rng, "log_softmax", lambda t, d: impl.log_softmax(t, d),
                              F.log_softmax,
                              hint="the gradient is upstream - softmax(x) * upstream.sum(dim); a "
                              "finite forward built from differentiable ops gives it for free.")


# ----------------------------------------------------------------------------- BCE


def bce_case(rng, dtype, *, extreme: bool, weighted: bool, soft: bool):
    shape = random_shape(rng, 2, 3, 8)
    x = extreme_logits(shape, dtype) if extreme else torch.randn(shape, dtype=dtype) * 3
    y = torch.rand(shape, dtype=dtype) if soft else (torch.rand(shape) < 0.5).to(dtype)
    pw = torch.rand(shape[-1], dtype=dtype) * 3 + 0.2 if weighted else None
    return x, y, pw


def bce_what(x, weighted, reduction, logits="", target="target"):
    return (f"binary_cross_entropy_with_logits(logits {tuple(x.shape)} {str(x.dtype)[6:]}"
            f"{logits}, {target}, pos_weight={'(C,)' if weighted else None}, "
            f"reduction={reduction!r})")


@pytest.mark.exercise("binary_cross_entropy_with_logits")
def test_bce_matches_torch_on_ordinary_inputs(impl, rng):
    cases = []
    for dtype in (torch.float64, torch.float32):
        for weighted in (False, True):
            x, y, pw = bce_case(rng, dtype, extreme=False, weighted=weighted,
                                soft=bool(rng.random() < 0.5))
            for reduction in REDUCTIONS:
                expected = F.binary_cross_entropy_with_logits(x.clone(), y.clone(),
                                                              pos_weight=pw, reduction=reduction)
                cases.append(Case(bce_what(x, weighted, reduction), (x.clone(), y.clone()),
                                  {"pos_weight": pw, "reduction": reduction}, expected, x))
    judge_all(impl, "binary_cross_entropy_with_logits", cases,
              hint="loss = (1 - y) * x + (1 + (p - 1) * y) * softplus(-x), with p = pos_weight "
              "weighting only the positive (y) term.")


@pytest.mark.exercise("binary_cross_entropy_with_logits")
def test_bce_finite_and_correct_on_extreme_logits(impl, rng):
    cases = []
    for dtype in (torch.float64, torch.float32):
        for weighted in (False, True):
            x, y, pw = bce_case(rng, dtype, extreme=True, weighted=weighted, soft=False)
            expected = F.binary_cross_entropy_with_logits(x.clone(), y.clone(), pos_weight=pw,
                                                          reduction="none")
            cases.append(Case(bce_what(x, weighted, "none", " around ±1e4", "target in {0, 1}"),
                              (x.clone(), y.clone()), {"pos_weight": pw, "reduction": "none"},
                              expected, x, finite=True))
    judge_all(impl, "binary_cross_entropy_with_logits", cases,
              hint="never form log(sigmoid(x)): sigmoid(-1e4) is 0 and log(0) = -inf (a clamp "
              "at -100 is finite but wrong). Use softplus(-x) = max(-x, 0) + log1p(exp(-|x|)).")


@pytest.mark.exercise("binary_cross_entropy_with_logits")
def test_bce_gradient(impl, rng):
    for extreme in (False, True):
        weighted = bool(rng.random() < 0.5)
        x, y, pw = bce_case(rng, torch.float64, extreme=extreme, weighted=weighted, soft=True)
        inputs = [x, y] + ([pw] if weighted else [])
        compare_grads(
            lambda *t: impl.binary_cross_entropy_with_logits(
                t[0], t[1], pos_weight=t[2] if len(t) > 2 else None, reduction="none"),
            lambda *t: F.binary_cross_entropy_with_logits(
                t[0], t[1], pos_weight=t[2] if len(t) > 2 else None, reduction="none"),
            inputs,
            wrt=(0, 1),
            what=f"binary_cross_entropy_with_logits(logits {tuple(x.shape)} "
            f"{'around ±1e4' if extreme else 'ordinary'}, soft target, "
            f"pos_weight={'(C,)' if weighted else None}, reduction='none')",
            hint="d loss/dx is sigmoid(x) - y without pos_weight; a formula whose forward is "
            "finite (no log of a sigmoid) gives finite gradients.")


# ----------------------------------------------------------------------------- cross_entropy


def ce_case(rng, dtype, *, extreme: bool, spatial: bool):
    n, c, d = random_shape(rng, 3, 3, 8)
    shape = (n, c, d) if spatial else (n, c)
    x = extreme_logits(shape, dtype) if extreme else torch.randn(shape, dtype=dtype) * 3
    t_shape = (n, d) if spatial else (n,)
    target = torch.randint(0, c, t_shape)
    return x, target, c


@pytest.mark.exercise("cross_entropy")
@pytest.mark.parametrize("spatial", [False, True])
def test_cross_entropy_matches_torch(impl, rng, spatial):
    cases = []
    for dtype in (torch.float64, torch.float32):
        x, target, c = ce_case(rng, dtype, extreme=False, spatial=spatial)
        smoothing = float(rng.choice([0.0, round(float(rng.uniform(0.05, 0.4)), 3)]))
        # ignore_index: the default -100, or a real class id (its targets are then ignored)
        ignore = int(rng.choice([-100, int(rng.integers(0, c))]))
        drop = torch.rand(target.shape) < 0.3
        target = torch.where(drop, torch.full_like(target, ignore), target)
        target.view(-1)[0] = (ignore + 1) % c if ignore >= 0 else 0  # one position is kept
        for reduction in REDUCTIONS:
            kwargs = {"ignore_index": ignore, "label_smoothing": smoothing, "reduction": reduction}
            expected = F.cross_entropy(x.clone(), target.clone(), **kwargs)
            what = (f"cross_entropy(logits {tuple(x.shape)} {str(dtype)[6:]}, target "
                    f"{tuple(target.shape)} with {int((target == ignore).sum())} ignored, "
                    f"ignore_index={ignore}, label_smoothing={smoothing}, "
                    f"reduction={reduction!r})")
            cases.append(Case(what, (x.clone(), target.clone()), kwargs, expected, x))
    judge_all(impl, "cross_entropy", cases,
              hint="classes are dim 1; ignored positions give 0 and 'mean' divides by the number "
              "of NON-ignored positions; smoothing adds eps * mean_c(-logp) to "
              "(1 - eps) * (-logp[target]), over all C classes.")


@pytest.mark.exercise("cross_entropy")
def test_cross_entropy_edge_cases(impl, rng):
    """Every run: a batch of one, a spatial dim of one, every target ignored (torch's mean is
    then nan: 0 / 0), smoothing 0 and not."""
    c = int(rng.integers(3, 7))
    smoothing = round(float(rng.uniform(0.05, 0.4)), 3)
    n = int(rng.integers(2, 6))
    ignored = torch.full((n,), -100)
    batches = [("a batch of one", torch.randn(1, c, dtype=torch.float64) * 3,
                torch.randint(0, c, (1,))),
               ("a spatial dim of one", torch.randn(n, c, 1, dtype=torch.float64) * 3,
                torch.randint(0, c, (n, 1))),
               ("every target ignored", torch.randn(n, c, dtype=torch.float64) * 3, ignored)]
    cases = []
    for label, x, target in batches:
        for eps in (0.0, smoothing):
            for reduction in REDUCTIONS:
                kwargs = {"label_smoothing": eps, "reduction": reduction}
                expected = F.cross_entropy(x.clone(), target.clone(), **kwargs)
                what = (f"cross_entropy(logits {tuple(x.shape)}, target {target.tolist()} "
                        f"({label}), label_smoothing={eps}, reduction={reduction!r})")
                cases.append(Case(what, (x.clone(), target.clone()), kwargs, expected, x))
    judge_all(impl, "cross_entropy", cases,
              hint="squeeze only the class dim you gathered along (squeeze(1)); with every "
              "target ignored, 'mean' is 0 / 0 = nan as in torch, 'sum' is 0.")


@pytest.mark.exercise("cross_entropy")
def test_cross_entropy_finite_on_extreme_logits(impl, rng):
    cases = []
    for dtype in (torch.float64, torch.float32):
        x, target, c = ce_case(rng, dtype, extreme=True, spatial=False)
        smoothing = round(float(rng.uniform(0.05, 0.3)), 3)
        for reduction in ("none", "mean"):
            kwargs = {"label_smoothing": smoothing, "reduction": reduction}
            expected = F.cross_entropy(x.clone(), target.clone(), **kwargs)
            what = (f"cross_entropy(logits {tuple(x.shape)} {str(dtype)[6:]} around ±1e4, "
                    f"target {tuple(target.shape)}, label_smoothing={smoothing}, "
                    f"reduction={reduction!r})")
            cases.append(Case(what, (x.clone(), target.clone()), kwargs, expected, x, finite=True))
    judge_all(impl, "cross_entropy", cases,
              hint="use your stable log_softmax (x - logsumexp): never exp the raw logits.")


@pytest.mark.exercise("cross_entropy")
def test_cross_entropy_gradient(impl, rng):
    for extreme, spatial in ((False, True), (True, False)):
        x, target, c = ce_case(rng, torch.float64, extreme=extreme, spatial=spatial)
        target = torch.where(torch.rand(target.shape) < 0.25, torch.full_like(target, -100),
                             target)
        target.view(-1)[0] = 0
        smoothing = round(float(rng.uniform(0.05, 0.3)), 3)
        reduction = "mean"
        ref_out = F.cross_entropy(x.clone(), target, label_smoothing=smoothing,
                                  reduction=reduction)
        xr = x.clone().requires_grad_(True)
        (ref_grad,) = torch.autograd.grad(
            F.cross_entropy(xr, target, label_smoothing=smoothing, reduction=reduction), xr)
        what = (f"cross_entropy(logits {tuple(x.shape)} {'around ±1e4' if extreme else ''}, "
                f"target with ignored positions, label_smoothing={smoothing}, reduction='mean')")
        xl = x.clone().requires_grad_(True)
        got = as_tensor_result(call(what, impl.cross_entropy, xl, target.clone(),
                                    label_smoothing=smoothing, reduction=reduction), what)
        assert_close(got, ref_out, what, **tol(x))
        if got.grad_fn is None:
            fail(f"{what}: the loss has no grad_fn; autograd cannot reach the logits.")
        (grad,) = torch.autograd.grad(got, xl)
        assert_close(grad, ref_grad, f"{what}: gradient w.r.t. the logits", **tol(x),
                     hint="ignored positions must get exactly zero gradient (mask with "
                     "torch.where, and leave them out of the mean's count).")


@pytest.mark.exercise("cross_entropy")
def test_cross_entropy_output_shape_and_dtype(impl, rng):
    x, target, c = ce_case(rng, torch.float32, extreme=False, spatial=True)
    what = (f"cross_entropy(logits=logits {tuple(x.shape)}, target=target "
            f"{tuple(target.shape)}, reduction='none') with label_smoothing left at its default")
    got = as_tensor_result(call(what, impl.cross_entropy, logits=x.clone(),
                                target=target.clone(), reduction="none"), what)
    assert_equal(tuple(got.shape), tuple(target.shape), f"{what}: the shape of the result",
                 hint="one loss per target position: the class dim (1) is reduced away.")
    assert_equal(str(got.dtype), str(x.dtype), f"{what}: the dtype of the result")
    assert_close(got, F.cross_entropy(x, target, reduction="none"), what, **tol(x),
                 hint="label_smoothing defaults to 0.0 and ignore_index to -100.")
