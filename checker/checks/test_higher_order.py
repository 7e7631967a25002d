"""Hidden checks for the kata higher_order. torch.func (functional transforms) is the oracle."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from checker.helpers import assert_close, fail, layouts, random_shape

pytestmark = pytest.mark.kata("higher_order")

# torch.func loads most of its machinery on first use; pay for that at import, not in a check.
_warm = torch.zeros(2, dtype=torch.float64)
vmap(grad(grad(torch.sin)))(_warm)
jvp(grad(lambda t: torch.sin(t).sum()), (_warm,), (_warm,))

NO_GRAPH = ("does not require grad", "does not have a grad_fn")


def differentiating(what: str, why: str, fn, *args):
    """Call ``fn(*args)``; a "does not require grad" error from the learner's code becomes ``why``."""
    try:
        return fn(*args)
    except RuntimeError as exc:
        if any(phrase in str(exc) for phrase in NO_GRAPH):
            fail(f"{what} raised RuntimeError: {exc}\n  {why}")
        raise


FORGOT_CREATE_GRAPH = (
    "The gradient you differentiate a second time has no graph of its own. Did you pass "
    "create_graph=True? Without it autograd returns a plain constant (no grad_fn), so it "
    "cannot be differentiated again."
)


def untouched(x: torch.Tensor, name: str, call: str) -> None:
    if x.requires_grad or x.grad is not None:
        fail(
            f"{call} changed the caller's {name}: requires_grad={x.requires_grad}, "
            f"grad={'None' if x.grad is None else 'set'}.\n"
            f"  Try: work on {name}.detach().requires_grad_() — a new tensor that shares the values "
            "— instead of flipping requires_grad on the caller's tensor."
        )


def no_graph(result, call: str, hint: str) -> None:
    if type(result) is torch.Tensor and result.requires_grad:
        fail(f"{call} returned a tensor that still requires grad (grad_fn="
             f"{type(result.grad_fn).__name__}).\n  {hint}")


# ----------------------------------------------------------------------------- second_derivative


def random_elementwise(rng):
    """A random smooth scalar function, applied elementwise (a sum of random terms)."""
    a, b, c, d, e = (float(v) for v in rng.uniform(0.3, 1.5, size=5) * rng.choice([-1, 1], size=5))
    terms = [
        (f"{a:.3g}*sin({b:.3g}*x)", lambda x: a * torch.sin(b * x)),
        (f"{c:.3g}*x**3", lambda x: c * x**3),
        (f"{d:.3g}*tanh({e:.3g}*x)", lambda x: d * torch.tanh(e * x)),
        (f"exp({b / 3:.3g}*x)", lambda x: torch.exp(b / 3 * x)),
        (f"{e:.3g}*x*cos(x)", lambda x: e * x * torch.cos(x)),
    ]
    chosen = [terms[int(i)] for i in sorted(rng.choice(len(terms), size=3, replace=False))]
    text = " + ".join(t for t, _ in chosen)
    return text, lambda x: sum(fn(x) for _, fn in chosen)


@pytest.mark.exercise("second_derivative")
def test_second_derivative_of_random_functions(impl, rng):
    for _ in range(3):
        text, f = random_elementwise(rng)
        base = torch.randn(*random_shape(rng, 2, 3, 6), dtype=torch.float64)
        expected = vmap(grad(grad(f)))(base.reshape(-1)).reshape(base.shape)
        for layout, x in layouts(base):
            call = f"second_derivative(f, x) for f(x) = {text}, x of shape {tuple(x.shape)} ({layout})"
            got = differentiating(call, FORGOT_CREATE_GRAPH, impl.second_derivative, f, x)
            assert_close(
                got, expected, call,
                hint="differentiate f(x).sum() once with create_graph=True (f is elementwise, so "
                "that gives f'(x) at every point), then differentiate f'(x).sum() again. Read the "
                "results from torch.autograd.grad, not from x.grad, which accumulates.",
            )
            no_graph(got, call, "Only the FIRST grad needs create_graph=True; on the second it "
                     "builds a third-order graph that nobody uses, and keeps it alive.")
            untouched(x, "x", call)


@pytest.mark.exercise("second_derivative")
def test_second_derivative_of_a_linear_function(impl, rng):
    a, b = (float(v) for v in rng.uniform(-2, 2, size=2))
    x = torch.randn(int(rng.integers(3, 9)), dtype=torch.float64)
    call = f"second_derivative(f, x) for the linear f(x) = {a:.3g}*x + {b:.3g}"
    got = differentiating(
        call,
        "For a linear f, f'(x) is a constant: even with create_graph=True the first gradient "
        "has no grad_fn (requires_grad is False), because nothing in it depends on x. The second "
        "derivative is then zero everywhere: check first.requires_grad and return zeros.",
        impl.second_derivative, lambda t: a * t + b, x,
    )
    assert_close(got, torch.zeros_like(x), call, hint="f'' of a linear function is 0.")


# ----------------------------------------------------------------------------- hvp


def random_scalar_function(rng, shape):
    """A random smooth f: tensor of ``shape`` -> scalar, coupled across elements."""
    m, n = shape
    k = int(rng.integers(2, 6))
    A = torch.randn(n, k, dtype=torch.float64)
    B = torch.randn(m, k, dtype=torch.float64)
    C = torch.randn(m, n, dtype=torch.float64) * 0.3
    D = torch.randn(m, n, dtype=torch.float64)
    family = [
        ("(tanh(x @ A)**2 * B).sum()", lambda x: (torch.tanh(x @ A) ** 2 * B).sum()),
        ("logsumexp(x @ A, -1).sum() + (x**3 * C).sum()",
         lambda x: torch.logsumexp(x @ A, dim=-1).sum() + (x**3 * C).sum()),
        ("(sin(x) * C).sum() * (x * D).sum()", lambda x: (torch.sin(x) * C).sum() * (x * D).sum()),
    ]
    return family[int(rng.integers(len(family)))]


@pytest.mark.exercise("hvp")
def test_hvp_matches_torch_func(impl, rng):
    for _ in range(4):
        shape = random_shape(rng, 2, 2, 6)
        text, f = random_scalar_function(rng, shape)
        base = torch.randn(*shape, dtype=torch.float64)
        v = torch.randn(*shape, dtype=torch.float64)
        _, expected = jvp(grad(f), (base,), (v,))  # forward-over-reverse: H @ v
        for layout, x in layouts(base):
            call = f"hvp(f, x, v) for f(x) = {text}, x of shape {tuple(shape)} ({layout})"
            v_before = v.clone()
            got = differentiating(call, FORGOT_CREATE_GRAPH, impl.hvp, f, x, v)
            assert_close(v, v_before, f"{call}: v afterwards (an input: it must not change)")
            assert_close(
                got, expected, call,
                hint="g = grad(f(x), x, create_graph=True); then differentiate g against v: "
                "grad(g, x, grad_outputs=v) (or grad((g * v).sum(), x)). Summing g alone "
                "gives H @ ones, not H @ v.",
            )
            no_graph(got, call, "Only the FIRST grad needs create_graph=True; the second one "
                     "should not build a graph.")
            untouched(x, "x", call)


# ----------------------------------------------------------------------------- gradient_penalty


def critic_case(rng):
    batch, channels, length, hidden = random_shape(rng, 4, 2, 7)
    critic = nn.Sequential(
        nn.Flatten(), nn.Linear(channels * length, hidden), nn.Tanh(), nn.Linear(hidden, 1)
    ).double()
    real = torch.randn(batch, channels, length, dtype=torch.float64)
    fake = torch.randn(batch, channels, length, dtype=torch.float64)
    alpha = torch.rand(batch, 1, 1, dtype=torch.float64)
    return critic, real, fake, alpha


def reference_penalty(critic, real, fake, alpha):
    """The penalty and its gradient for every critic parameter, with torch.func."""
    params = {k: v.detach() for k, v in critic.named_parameters()}
    mixed = alpha * real + (1 - alpha) * fake

    def score(p, xi):
        return functional_call(critic, p, (xi.unsqueeze(0),)).squeeze()

    def penalty(p):
        g = vmap(grad(score, argnums=1), in_dims=(None, 0))(p, mixed)
        return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()

    return penalty(params), grad(penalty)(params)


@pytest.mark.exercise("gradient_penalty")
@pytest.mark.parametrize("stale", [False, True], ids=["no_grad_yet", "critic_grads_set"])
def test_gradient_penalty_value_and_graph(impl, rng, stale):
    critic, real, fake, alpha = critic_case(rng)
    expected, expected_grads = reference_penalty(critic, real, fake, alpha)
    call = (f"gradient_penalty(critic, real, fake, alpha) for a batch of {real.shape[0]} "
            f"samples of shape {tuple(real.shape[1:])}")
    old = {}
    if stale:  # the critic's own loss ran backward first: its .grad already holds values
        call += " whose critic already holds .grad"
        for name, p in critic.named_parameters():
            p.grad = torch.randn_like(p)
            old[name] = (p.grad, p.grad.clone())
    inputs_before = [t.clone() for t in (real, fake, alpha)]
    modes = {name or "critic": m.training for name, m in critic.named_modules()}
    got = impl.gradient_penalty(critic, real, fake, alpha)
    changed = [f"{name} (training={was} before, {not was} after)"
               for name, m in critic.named_modules() if (was := modes[name or "critic"]) != m.training]
    if changed:
        fail(f"{call} switched the critic's mode: {', '.join(changed)}.\n  The caller trains "
             "this critic next; a penalty must leave it in the mode it was given (no .eval() "
             "or .train() here: the penalty is taken in whatever mode the critic is in).")
    for name, t, before in zip(("real", "fake", "alpha"), (real, fake, alpha), inputs_before,
                               strict=True):
        assert_close(t, before, f"{call}: {name} afterwards (an input: it must not change)")
    assert_close(
        got, expected, call,
        hint="the norm is per sample: flatten the gradient to (batch, -1), take the norm of "
        "each row, then the mean of (norm - 1)**2. Differentiate critic(mixed).sum() — a mean "
        "would divide every sample's gradient by the batch size.",
    )
    for name, p in critic.named_parameters():
        if name in old:
            if p.grad is not old[name][0]:
                fail(f"after {call}, critic.{name}.grad is another tensor: leave the critic's "
                     ".grad alone (no zero_grad, no reset); only the caller's .backward() may "
                     "add to it.")
            assert_close(p.grad, old[name][1], f"critic.{name}.grad after {call} (it held a "
                         "gradient already, which must be left as it was)",
                         hint="torch.autograd.grad(..., inputs=mixed) touches no .grad; "
                         ".backward() or zero_grad() would.")
        elif p.grad is not None:
            fail(
                f"after {call}, critic.{name}.grad is already set.\n  Computing the input "
                "gradient with .backward() also fills every parameter's .grad (and the penalty "
                "would be counted twice at the next step). Use torch.autograd.grad(..., "
                "inputs=mixed), which touches nothing else."
            )
    if not got.requires_grad or got.grad_fn is None:
        fail(
            f"{call} returned a penalty with no graph (requires_grad={got.requires_grad}, "
            "grad_fn=None): the critic cannot be trained on it.\n  The penalty is built from "
            "the gradient d critic / d mixed; that gradient only has a graph (so that its norm "
            "can be differentiated with respect to the critic's weights) if you passed "
            "create_graph=True. Did you pass create_graph=True?"
        )
    got.backward()
    for name, p in critic.named_parameters():
        # The last bias does not reach the input gradient: autograd leaves its .grad None.
        assert_close(
            (torch.zeros_like(p) if p.grad is None else p.grad)
            - (old[name][1] if name in old else 0), expected_grads[name],
            f"critic.{name}.grad after {call}.backward()" + (" (minus what it held)" if old else ""),
            hint="the penalty must stay differentiable through the input gradient: "
            "torch.autograd.grad(scores.sum(), mixed, create_graph=True).",
        )
    untouched(real, "real", call)
    untouched(fake, "fake", call)


# ----------------------------------------------------------------------------- meta_gradient


def meta_case(rng):
    d, n_train, n_val = random_shape(rng, 3, 3, 9)
    X_tr, X_val = torch.randn(n_train, d, dtype=torch.float64), torch.randn(n_val, d, dtype=torch.float64)
    y_tr, y_val = torch.randn(n_train, dtype=torch.float64), torch.randn(n_val, dtype=torch.float64)

    def train_loss(w):
        return ((torch.tanh(X_tr @ w) - y_tr) ** 2).mean() + 0.1 * (w**4).sum()

    def val_loss(w):
        return ((torch.tanh(X_val @ w) - y_val) ** 2).mean()

    w = torch.randn(d, dtype=torch.float64) * 0.5
    lr = float(rng.uniform(0.2, 0.6))
    return train_loss, val_loss, w, lr


def unrolled(train_loss, val_loss, lr, steps):
    def outer(w):
        for _ in range(steps):
            w = w - lr * grad(train_loss)(w)
        return val_loss(w)

    return outer


def matches(got, wrong: torch.Tensor, right: torch.Tensor) -> bool:
    """Does the learner's result equal a known wrong answer (that differs from the right one)?"""
    return (
        type(got) is torch.Tensor and got.shape == wrong.shape
        and torch.allclose(got.detach(), wrong, rtol=1e-9, atol=1e-12)
        and not torch.allclose(wrong, right, rtol=1e-7, atol=1e-10)
    )


@pytest.mark.exercise("meta_gradient")
def test_meta_gradient_through_the_inner_steps(impl, rng):
    for steps in (0, 1, 2, 3):
        train_loss, val_loss, w, lr = meta_case(rng)
        expected = grad(unrolled(train_loss, val_loss, lr, steps))(w)
        w_k = w.clone()
        for _ in range(steps):
            w_k = w_k - lr * grad(train_loss)(w_k)
        first_order = grad(val_loss)(w_k)
        before = w.clone()
        call = f"meta_gradient(train_loss, val_loss, w, lr={lr:.3g}, steps={steps})"
        got = differentiating(call, FORGOT_CREATE_GRAPH, impl.meta_gradient,
                              train_loss, val_loss, w, lr, steps)
        if steps == 0:
            assert_close(got, grad(val_loss)(w), f"{call}: no inner step, so the meta-gradient is "
                         "d val_loss / d w at w itself",
                         hint="with steps=0, w_k = w: run the loop zero times, then differentiate "
                         "val_loss(w) (the loop's body must not run once anyway).")
        if matches(got, grad(val_loss)(w), expected):
            fail(f"{call} returned d val_loss / d w at the initial w, ignoring the inner steps.\n"
                 "  Evaluate val_loss at the ADAPTED weights w_k (after the inner steps), then "
                 "differentiate it with respect to the initial w.")
        if matches(got, first_order, expected):
            fail(
                f"{call} returned the FIRST-ORDER approximation, d val / d w_k at the adapted "
                "weights, as if every inner gradient were a constant.\n  The inner gradient "
                "must stay differentiable: did you "
                "pass create_graph=True to the inner torch.autograd.grad? (Updating w in place "
                "under torch.no_grad(), as an optimiser does, cuts the graph the same way; so does "
                "differentiating with respect to the adapted weights instead of the initial w.)"
            )
        assert_close(
            got, expected, call,
            hint="keep one graph from the initial w through every inner step "
            "(w_next = w - lr * g, out of place, g from grad(..., create_graph=True)), then "
            "differentiate val_loss(w_k) with respect to the INITIAL w. Never detach in between.",
        )
        no_graph(got, call, "Only the inner grads need create_graph=True; the final one should "
                 "not build a graph.")
        untouched(w, "w", call)
        if not torch.equal(w, before):
            fail(f"{call} changed the values of the caller's w: update a copy, out of place.")
