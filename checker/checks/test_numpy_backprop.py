"""Hidden checks for the kata numpy_backprop. torch's autograd (retain_grad) is the oracle.

The learner's file may not import torch (static scan plus a runtime guard); the autograd entry
points are also forbidden while its functions run, in case torch is reached some other way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from checker.helpers import (
    assert_close,
    assert_equal,
    describe,
    fail,
    random_shape,
    trajectory_picture,
)

pytestmark = pytest.mark.kata("numpy_backprop")

DT = torch.float64
GRAD_ORDER = ("z2", "h1", "z1", "W2", "b2", "W1", "b1")  # the order backprop produces them
RTOL, ATOL = 1e-7, 1e-10


def _snapshot(value: Any) -> Any:
    if type(value) is np.ndarray:
        return value.copy()
    if type(value) is dict:
        return {k: _snapshot(v) for k, v in value.items()}
    return value


def _changed(value: Any, before: Any) -> bool:
    if type(before) is np.ndarray:
        return (type(value) is not np.ndarray or value.shape != before.shape
                or not np.array_equal(value, before, equal_nan=True))
    if type(before) is dict:
        return (type(value) is not dict or sorted(value) != sorted(before)
                or any(_changed(value[k], v) for k, v in before.items()))
    return False


def call(impl: Any, name: str, *args: Any) -> Any:
    """Run the learner's ``name`` under the rules (checker.sandbox.forbid.forbid_imports refuses
    a direct ``__import__("torch")`` too: it judges by the calling frame), on the caller's own
    arrays, which must be unchanged afterwards (no function here works in place)."""
    before = [_snapshot(a) for a in args]
    result = getattr(impl, name)(*args)
    for i, (a, b) in enumerate(zip(args, before, strict=True)):
        if _changed(a, b):
            fail(f"{name}: argument {i + 1} ({describe(b) if type(b) is np.ndarray else 'a dict of arrays'}) "
                 "was changed by your function; it belongs to the caller.\n  Try: "
                 + ("dict(params) copies the dict, not the arrays in it: copy every array "
                    "before updating it in place." if type(b) is dict else
                    "compute into new arrays (g = grad_out * mask, not grad_out *= mask)."))
    return result


def as_float(value: Any, what: str) -> float:
    if type(value) is float or isinstance(value, np.floating):
        return float(value)
    if type(value) is np.ndarray and value.shape == () and value.dtype.kind == "f":
        return float(value)
    fail(f"{what}: expected the loss as a Python float, got {describe(value)}.")
    raise AssertionError  # unreachable


def pair(got: Any, what: str) -> tuple[Any, Any]:
    if type(got) not in (tuple, list) or len(got) != 2:
        fail(f"{what}: expected a pair (loss, gradients), got {describe(got)}.")
    return got[0], got[1]


def np_of(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().copy()


def layouts_np(a: np.ndarray):
    """The same values as contiguous, Fortran-ordered and strided-slice arrays."""
    yield "C-contiguous", a.copy()
    yield "Fortran-ordered (a transpose's layout)", np.asfortranarray(a)
    wide = np.zeros((a.shape[0], 2 * a.shape[1] + 1))
    wide[:, 1::2] = a
    yield "every other column of a wider array", wide[:, 1::2]


# ----------------------------------------------------------------------------- linear


@pytest.mark.exercise("linear_backward")
def test_linear_backward_matches_torch(impl, rng):
    n, d_in, d_out = random_shape(rng, 3, 2, 8)
    x = torch.randn(n, d_in, dtype=DT, requires_grad=True)
    W = torch.randn(d_out, d_in, dtype=DT, requires_grad=True)
    b = torch.randn(d_out, dtype=DT, requires_grad=True)
    g = torch.randn(n, d_out, dtype=DT)
    (F.linear(x, W, b) * g).sum().backward()  # = .backward(g), minus a slow first-use import
    expected = (np_of(x.grad), np_of(W.grad), np_of(b.grad))
    for (lx, xa), (lw, wa) in zip(layouts_np(np_of(x)), layouts_np(np_of(W)), strict=True):
        what = f"linear_backward(x {lx} {(n, d_in)}, W {lw} {(d_out, d_in)}, grad_out {(n, d_out)})"
        got = call(impl, "linear_backward", xa, wa, np_of(g))
        if type(got) not in (tuple, list) or len(got) != 3:
            fail(f"{what}: expected (grad_x, grad_W, grad_b), got {describe(got)}.")
        hints = (
            "grad_x = grad_out @ W: (N, out) @ (out, in).",
            "grad_W = grad_out.T @ x, shaped like W (out, in) — not x.T @ grad_out, its transpose.",
            "b is added to every row of the batch: grad_b sums grad_out over the batch (axis 0).",
        )
        for name, e, gt, hint in zip(("grad_x", "grad_W", "grad_b"), expected, got, hints, strict=True):
            assert_close(gt, e, f"{what}: {name}", rtol=RTOL, atol=ATOL, hint=hint)


# ----------------------------------------------------------------------------- activations


@pytest.mark.exercise("activation_backward")
def test_activation_backward_matches_torch(impl, rng):
    for kind, act in (("relu", torch.relu), ("tanh", torch.tanh)):
        shape = random_shape(rng, 2, 3, 8)
        x = torch.randn(shape, dtype=DT) * 2
        x[torch.rand(shape) < 0.25] = 0.0  # exact zeros: which side of 0 does ReLU's gradient take?
        x.requires_grad_(True)
        g = torch.randn(shape, dtype=DT)
        (act(x) * g).sum().backward()
        what = f"activation_backward({kind!r}, x of shape {shape} with some exact zeros, grad_out)"
        got = call(impl, "activation_backward", kind, np_of(x), np_of(g))
        hint = ("torch's ReLU lets the gradient through only where x > 0 (strictly): at x == 0 "
                "it is 0." if kind == "relu" else
                "d tanh(x)/dx = 1 - tanh(x)**2: take tanh of the input first.")
        assert_close(got, np_of(x.grad), what, rtol=RTOL, atol=ATOL, hint=hint)


@pytest.mark.exercise("activation_backward")
def test_activation_backward_rejects_unknown_kind(impl, rng):
    x = rng.standard_normal((3, 4))
    what = "activation_backward('sigmoid', x, grad_out)"
    try:
        got = call(impl, "activation_backward", "sigmoid", x, x)
    except ValueError:
        return
    fail(f"{what}: expected ValueError for an unknown activation, got {describe(got)}.")


# ----------------------------------------------------------------------------- cross-entropy


def ce_reference(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    z = torch.tensor(logits, dtype=DT, requires_grad=True)
    loss = F.cross_entropy(z, torch.tensor(targets))
    loss.backward()
    return float(loss), np_of(z.grad)


CE_EDGES = [  # every run: (logits, targets, what they catch)
    (np.array([[0.0, 800.0, -5.0], [1000.0, 0.0, 1.0]]), np.array([0, 1]),
     "logits hundreds apart within a row: the target's probability underflows to 0"),
    (np.array([[2.0, 2.0, 2.0, 2.0]]), np.array([3]), "one row of tied logits (N = 1)"),
    (np.array([[-700.0, -720.0], [-710.0, -700.0], [-705.0, -705.0]]), np.array([1, 0, 1]),
     "very negative logits: exp underflows for every class"),
    (np.array([[-1000.0, -1001.0, -999.5], [1000.0, 999.0, 1001.0]]), np.array([2, 0]),
     "rows 2000 apart: only each row's own max keeps both finite"),
]


@pytest.mark.exercise("softmax_cross_entropy")
def test_softmax_cross_entropy_extreme_logits(impl):
    for logits, targets, label in CE_EDGES:
        e_loss, e_grad = ce_reference(logits, targets)
        what = f"softmax_cross_entropy(logits {logits.tolist()}, targets {targets.tolist()}) — {label}"
        loss, grad = pair(call(impl, "softmax_cross_entropy", logits, targets), what)
        loss = as_float(loss, f"{what}: loss")
        hint = ("work in log space: log_softmax = shifted - log(sum(exp(shifted))) with shifted = "
                "logits - row max; log(softmax) of an underflowed probability is -inf.")
        assert_close(np.array(loss), np.array(e_loss), f"{what}: loss", rtol=RTOL, atol=ATOL,
                     hint=hint)
        assert_close(grad, e_grad, f"{what}: grad_logits", rtol=RTOL, atol=ATOL, hint=hint)


@pytest.mark.exercise("softmax_cross_entropy")
def test_softmax_cross_entropy_matches_torch(impl, rng):
    for scale, offset in ((1.0, 0.0), (3.0, 0.0), (1.0, 750.0), (300.0, 0.0)):
        n, c = random_shape(rng, 2, 3, 9)
        logits = rng.standard_normal((n, c)) * scale + offset * (1 + rng.random((n, 1)))
        targets = rng.integers(0, c, size=n)
        e_loss, e_grad = ce_reference(logits, targets)
        what = (f"softmax_cross_entropy(logits {(n, c)}"
                + (f" with values up to {logits.max():.0f}" if offset else "") + ", targets)")
        loss, grad = pair(call(impl, "softmax_cross_entropy", logits, targets), what)
        loss = as_float(loss, f"{what}: loss")
        hint = ("subtract each row's max before np.exp: exp of a few hundred overflows to inf."
                if offset or scale > 100 else
                "loss = mean over rows of -log_softmax(logits)[row, target].")
        assert_close(np.array(loss), np.array(e_loss), f"{what}: loss", rtol=RTOL, atol=ATOL, hint=hint)
        assert_close(grad, e_grad, f"{what}: grad_logits", rtol=RTOL, atol=ATOL,
                     hint="(softmax(logits) - one_hot(targets)) / N — the loss is a batch MEAN, "
                     "so every row's gradient carries 1/N.")


# ----------------------------------------------------------------------------- MLP


def random_params(rng, d: int, h: int, c: int, scale: float = 0.5) -> dict[str, np.ndarray]:
    return {
        "W1": rng.standard_normal((h, d)) * scale, "b1": rng.standard_normal(h) * 0.1,
        "W2": rng.standard_normal((c, h)) * scale, "b2": rng.standard_normal(c) * 0.1,
    }


def mlp_reference(params: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray,
                  activation: str, weight_decay: float) -> tuple[float, dict[str, np.ndarray]]:
    """Loss and d loss / d every named tensor, by torch autograd with retain_grad."""
    p = {k: torch.tensor(v, dtype=DT, requires_grad=True) for k, v in params.items()}
    act = torch.relu if activation == "relu" else torch.tanh
    z1 = F.linear(torch.tensor(x, dtype=DT), p["W1"], p["b1"])
    h1 = act(z1)
    z2 = F.linear(h1, p["W2"], p["b2"])
    for t in (z1, h1, z2):
        t.retain_grad()
    loss = F.cross_entropy(z2, torch.tensor(targets))
    loss = loss + 0.5 * weight_decay * (p["W1"].square().sum() + p["W2"].square().sum())
    loss.backward()
    grads = {"z1": z1.grad, "h1": h1.grad, "z2": z2.grad, **{k: v.grad for k, v in p.items()}}
    return float(loss), {k: np_of(v) for k, v in grads.items()}


MLP_HINTS = {
    "z2": "d loss / d logits is the cross-entropy gradient, (softmax - one_hot) / N.",
    "h1": "h1 feeds z2 = h1 @ W2.T + b2: grad_h1 = grad_z2 @ W2.",
    "z1": "through the activation, evaluated at z1 (its input).",
    "W2": "grad_z2.T @ h1 — plus weight_decay * W2: W2 is used twice (layer and penalty), "
          "so its two gradients ADD.",
    "b2": "sum of grad_z2 over the batch.",
    "W1": "grad_z1.T @ x — plus weight_decay * W1: W1 is used twice (layer and penalty), "
          "so its two gradients ADD.",
    "b1": "sum of grad_z1 over the batch.",
}


def mlp_problem(rng, weight_decay: float):
    n, d, h, c = random_shape(rng, 4, 3, 10)
    params = random_params(rng, d, h, c)
    x = rng.standard_normal((n, d))
    targets = rng.integers(0, c, size=n)
    return (n, d, h, c), params, x, targets


@pytest.mark.exercise("mlp_gradients")
def test_mlp_gradients_match_torch(impl, rng):
    for activation, weight_decay in (("relu", 0.0), ("tanh", 0.0), ("relu", 0.05), ("tanh", 0.2)):
        (n, d, h, c), params, x, targets = mlp_problem(rng, weight_decay)
        e_loss, e_grads = mlp_reference(params, x, targets, activation, weight_decay)
        before = {k: v.copy() for k, v in params.items()}
        what = (f"mlp_gradients({activation!r}, weight_decay={weight_decay}) with N={n}, D={d}, "
                f"H={h}, C={c}")
        loss, grads = pair(call(impl, "mlp_gradients", params, x, targets, activation,
                                weight_decay), what)
        loss = as_float(loss, f"{what}: loss")
        assert_close(np.array(loss), np.array(e_loss), f"{what}: loss", rtol=RTOL, atol=ATOL,
                     hint="mean cross-entropy of z2, plus 0.5 * weight_decay * (sum W1**2 + sum W2**2).")
        if type(grads) is not dict:
            fail(f"{what}: expected the gradients as a dict, got {describe(grads)}.")
        assert_equal(sorted(grads), sorted(GRAD_ORDER), f"{what}: the gradient names",
                     hint="one entry per named tensor: z2, h1, z1, W2, b2, W1, b1.")
        for name in GRAD_ORDER:  # backward order: the first wrong one is where the bug is
            assert_close(grads[name], e_grads[name], f"{what}: d loss / d {name}", rtol=RTOL,
                         atol=ATOL, hint=MLP_HINTS[name])
        for name, value in before.items():
            if not np.array_equal(params[name], value):
                fail(f"{what}: params[{name!r}] was modified. Compute gradients into new arrays; "
                     "an in-place op on a parameter changes the caller's model.")


@pytest.mark.exercise("mlp_gradients")
def test_mlp_gradients_defaults(impl, rng):
    (n, d, h, c), params, x, targets = mlp_problem(rng, 0.0)
    e_loss, e_grads = mlp_reference(params, x, targets, "relu", 0.0)
    what = f"mlp_gradients(params, x, targets) (defaults: relu, no weight decay) with N={n}, D={d}"
    loss, grads = pair(call(impl, "mlp_gradients", params, x, targets), what)
    assert_close(np.array(as_float(loss, f"{what}: loss")), np.array(e_loss), f"{what}: loss",
                 rtol=RTOL, atol=ATOL, hint="keep the signature's defaults: activation=\"relu\", "
                 "weight_decay=0.0.")
    if type(grads) is not dict or sorted(grads) != sorted(GRAD_ORDER):
        fail(f"{what}: expected the gradients as a dict with keys {sorted(GRAD_ORDER)}, got "
             f"{describe(grads)}.")
    for name in GRAD_ORDER:
        assert_close(grads[name], e_grads[name], f"{what}: d loss / d {name}", rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------- training


def torch_trajectory(params, x, targets, activation, weight_decay, lr, steps):
    p = {k: torch.tensor(v, dtype=DT, requires_grad=True) for k, v in params.items()}
    act = torch.relu if activation == "relu" else torch.tanh
    xt, tt = torch.tensor(x, dtype=DT), torch.tensor(targets)
    losses = []
    for _ in range(steps):
        z2 = F.linear(act(F.linear(xt, p["W1"], p["b1"])), p["W2"], p["b2"])
        loss = F.cross_entropy(z2, tt) + 0.5 * weight_decay * (
            p["W1"].square().sum() + p["W2"].square().sum())
        loss.backward()
        losses.append(float(loss))
        with torch.no_grad():
            for v in p.values():
                v -= lr * v.grad
                v.grad = None
    return losses, {k: np_of(v) for k, v in p.items()}


@pytest.mark.exercise("train_sgd")
def test_train_sgd_follows_torch_trajectory(impl, rng):
    for activation, weight_decay, steps in (("relu", 0.01, 8), ("tanh", 0.0, 8), ("relu", 0.1, 0),
                                            ("tanh", 0.05, 1)):
        (n, d, h, c), params, x, targets = mlp_problem(rng, weight_decay)
        lr = 0.5
        e_losses, e_params = torch_trajectory(params, x, targets, activation, weight_decay, lr, steps)
        before = {k: v.copy() for k, v in params.items()}
        what = (f"train_sgd({activation!r}, weight_decay={weight_decay}, lr={lr}, steps={steps}) "
                f"with N={n}, D={d}, H={h}, C={c}")
        losses, trained = pair(call(impl, "train_sgd", params, x, targets, activation,
                                    weight_decay, lr, steps), what)
        if type(losses) not in (list, tuple) or len(losses) != steps:
            fail(f"{what}: expected a list of {steps} losses, got {describe(losses)}.")
        got_losses = [as_float(v, f"{what}: losses[{i}]") for i, v in enumerate(losses)]
        for name, value in before.items():
            if not np.array_equal(params[name], value):
                fail(f"{what}: the caller's params[{name!r}] changed. Copy every array before "
                     "updating in place: dict(params) copies the dict, not the arrays in it.")
        if not np.allclose(got_losses, e_losses, rtol=RTOL, atol=ATOL):
            fail(f"{what}: the losses leave torch's trajectory.\n"
                 + trajectory_picture(e_losses, got_losses)
                 + "\n  expected " + ", ".join(f"{v:.6f}" for v in e_losses)
                 + "\n  got      " + ", ".join(f"{v:.6f}" for v in got_losses)
                 + "\n  Try: losses[i] is the loss BEFORE step i's update; the update is "
                 "p = p - lr * grad (downhill), with your mlp_gradients.")
        if steps > 1 and not got_losses[-1] < got_losses[0]:
            fail(f"{what}: the loss did not fall ({got_losses[0]:.6f} -> {got_losses[-1]:.6f}).")
        if type(trained) is not dict or sorted(trained) != sorted(params):
            fail(f"{what}: expected final params with keys {sorted(params)}, got {describe(trained)}.")
        for name in ("W1", "b1", "W2", "b2"):
            assert_close(trained[name], e_params[name], f"{what}: final {name}", rtol=RTOL,
                         atol=ATOL, hint="after `steps` updates p = p - lr * grad.")
