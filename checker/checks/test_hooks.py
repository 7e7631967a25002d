"""Hidden checks for the kata hooks. torch's own autograd, run without hooks, is the oracle."""

from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from checker.helpers import (
    assert_close,
    assert_equal,
    describe,
    fail,
    random_shape,
    trajectory_picture,
)

pytestmark = pytest.mark.kata("hooks")

# First calls load machinery lazily (torch._dynamo for optimisers): pay for it at import.
_warm = torch.zeros(2, requires_grad=True)
_warm.grad = torch.autograd.grad(_warm * 2, _warm, torch.ones(2))[0]
torch.optim.Adam([_warm]).step()


def leftover_hooks(module: nn.Module) -> list[str]:
    """'name: kind' for every module hook still registered anywhere in ``module``."""
    found = []
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    for name, sub in module.named_modules():
        for kind in kinds:
            if getattr(sub, kind, None):
                found.append(f"{name or '(the model itself)'}: {len(getattr(sub, kind))} in {kind}")
    from torch.nn.modules import module as module_mod

    for kind in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks"):
        if getattr(module_mod, kind, None):
            found.append(f"global: {len(getattr(module_mod, kind))} in torch.nn.modules.module.{kind}")
    return found


# ----------------------------------------------------------------------------- zero_grad


def params_with_grads(rng, *, graph: bool = False) -> list[torch.Tensor]:
    """Leaf parameters of distinct shapes; all but one hold a gradient (one stays None), and
    the first gradient holds NaN and inf (a diverged step: multiplying by 0 keeps NaN)."""
    params = [torch.randn(*random_shape(rng, 2), dtype=torch.float64, requires_grad=True)
              for _ in range(4)]
    used = params[:-1]
    loss = sum(((p * p).sum() * (i + 1.5)) for i, p in enumerate(used))
    loss.backward(create_graph=graph)
    with torch.no_grad():
        params[0].grad.view(-1)[:2] = torch.tensor([float("nan"), float("inf")], dtype=torch.float64)
    return params


@pytest.mark.exercise("zero_grad")
def test_zero_grad_set_to_none(impl, rng):
    params = params_with_grads(rng)
    result = impl.zero_grad(p for p in params)  # any iterable: here a generator
    if result is not None:
        fail(f"zero_grad(params) returned {describe(result)}; it works in place and returns None.")
    for i, p in enumerate(params):
        if p.grad is not None:
            fail(
                f"zero_grad(params) (set_to_none defaults to True): params[{i}].grad is "
                f"{describe(p.grad)}, expected None.\n"
                "  Try: with set_to_none=True drop the gradient (p.grad = None): the memory is freed "
                "and the next backward writes a fresh tensor instead of adding into zeros."
            )


@pytest.mark.exercise("zero_grad")
def test_zero_grad_in_place_keeps_the_tensor(impl, rng):
    params = params_with_grads(rng)
    before = [p.grad for p in params]
    impl.zero_grad(iter(params), set_to_none=False)  # any iterable: here an iterator
    for i, (p, old) in enumerate(zip(params, before, strict=True)):
        what = f"zero_grad(params, set_to_none=False): params[{i}].grad"
        if old is None:
            if p.grad is not None:
                fail(f"{what} was None and became {describe(p.grad)}. A parameter without a "
                     "gradient keeps None: torch only zeroes gradients that exist.")
            continue
        if p.grad is None:
            fail(f"{what} is None; with set_to_none=False the gradient stays and is filled with zeros.")
        if p.grad is not old:
            fail(
                f"{what} is a new tensor; the old gradient tensor must be zeroed in place.\n"
                "  Anything that holds the old one (an optimiser, a hook, a DDP bucket) would never "
                "see the zeros.\n  Try: p.grad.zero_() instead of assigning a new tensor."
            )
        assert_close(p.grad, torch.zeros_like(p), what + (" (it held NaN and inf)" if i == 0 else ""),
                     hint="p.grad.zero_() writes zeros; p.grad.mul_(0) keeps NaN (NaN * 0 = NaN, "
                     "inf * 0 = NaN).")


@pytest.mark.exercise("zero_grad")
def test_zero_grad_a_grad_that_requires_grad_without_history(impl, rng):
    params = params_with_grads(rng)
    params[1].grad = params[1].grad.detach().requires_grad_()  # a leaf .grad that requires grad
    before = params[1].grad
    impl.zero_grad(params, set_to_none=False)
    what = "zero_grad(params, set_to_none=False): params[1].grad, a leaf tensor that required grad"
    if params[1].grad is not before:
        fail(f"{what} is a new tensor; zero the existing one in place.")
    if params[1].grad.requires_grad:
        fail(f"{what} still requires grad.\n  Try: as Optimizer.zero_grad does, detach_() a "
             "gradient that has a grad_fn, else requires_grad_(False), then zero_().")
    assert_close(params[1].grad, torch.zeros_like(params[1]), what)


@pytest.mark.exercise("zero_grad")
def test_zero_grad_detaches_a_grad_with_history(impl, rng):
    params = params_with_grads(rng, graph=True)  # backward(create_graph=True): grads carry a graph
    before = [p.grad for p in params]
    impl.zero_grad(params, set_to_none=False)
    for i, (p, old) in enumerate(zip(params, before, strict=True)):
        if old is None:
            continue
        what = (f"zero_grad(params, set_to_none=False) after backward(create_graph=True): "
                f"params[{i}].grad")
        if p.grad is not old:
            fail(f"{what} is a new tensor; detach and zero the existing one in place.")
        if p.grad.requires_grad or p.grad.grad_fn is not None:
            fail(
                f"{what} still has grad_fn={type(p.grad.grad_fn).__name__} "
                f"(requires_grad={p.grad.requires_grad}).\n"
                "  A gradient made with create_graph=True is part of a graph; zeroing it in place "
                "keeps that graph alive and the next backward adds into a graph node.\n"
                "  Try: p.grad.detach_() when p.grad.grad_fn is not None (else "
                "p.grad.requires_grad_(False)), then p.grad.zero_()."
            )
        assert_close(p.grad, torch.zeros_like(p), what)


# ----------------------------------------------------------------------------- clip_and_record


def handle_of(result, what: str):
    if not callable(getattr(result, "remove", None)):
        fail(f"{what} returned {describe(result)}; return the handle that register_hook gives "
             "back, so the caller can remove the hook.")
    return result


@pytest.mark.exercise("clip_and_record")
def test_clip_on_an_intermediate(impl, rng):
    n, d, k = random_shape(rng, 3, 3, 8)
    x = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    w = torch.randn(d, k, dtype=torch.float64) * 1.5
    c = torch.randn(n, k, dtype=torch.float64) * 3

    def forward():
        h = torch.tanh(x @ w)
        return h, (h * h * c).sum()

    h, out = forward()
    (g_h,) = torch.autograd.grad(out, h, retain_graph=True)
    max_abs = float(g_h.abs().median())
    (expected_x,) = torch.autograd.grad(h, x, g_h.clamp(-max_abs, max_abs))

    h, out = forward()
    log: list = []
    handle = handle_of(impl.clip_and_record(h, max_abs, log),
                       f"clip_and_record(h, max_abs={max_abs:.4g}, log)")
    out.backward()
    handle.remove()
    assert_close(
        x.grad, expected_x,
        f"x.grad, where h = tanh(x @ w) carries your clipping hook (max_abs={max_abs:.4g})",
        hint="the hook must RETURN the clipped gradient (grad.clamp(-max_abs, max_abs)); a hook "
        "that returns None leaves the gradient unchanged. Clip both signs.",
    )
    assert_equal(len(log), 1, "entries in log after one backward pass",
                 hint="append once per call of the hook.")
    assert_close(
        log[0], g_h, "log[0], the recorded gradient of h",
        hint="record the gradient as it arrives, before clipping, and record a copy "
        "(grad.detach().clone()): clamp_ in place would change the recorded tensor too.",
    )


@pytest.mark.exercise("clip_and_record")
def test_clip_on_a_leaf_then_remove(impl, rng):
    a, b = random_shape(rng, 2, 3, 7)
    t = torch.randn(a, b, dtype=torch.float64, requires_grad=True)
    m = torch.randn(b, a, dtype=torch.float64)
    c = torch.randn(a, b, dtype=torch.float64)

    def loss():  # t is used twice: the hook sees the SUM of both contributions, once
        return (torch.sin(t) * c).sum() + (t @ m).pow(2).sum() * 0.5

    grads = [torch.autograd.grad(loss(), t)[0] for _ in range(3)]
    max_abs = float(grads[0].abs().median())
    clipped = grads[0].clamp(-max_abs, max_abs)

    log: list = []
    handle = handle_of(impl.clip_and_record(t, max_abs, log),
                       f"clip_and_record(t, max_abs={max_abs:.4g}, log)")
    loss().backward()
    assert_close(t.grad, clipped, "t.grad after one backward (t is a leaf with your hook)",
                 hint="a tensor hook on a leaf runs before the gradient is accumulated into .grad.")
    loss().backward()
    assert_close(t.grad, 2 * clipped, "t.grad after a second backward (accumulated)")
    assert_equal(len(log), 2, "entries in log after two backward passes",
                 hint="t is used twice, but its hook runs once per backward with the summed gradient.")
    handle.remove()
    if t._backward_hooks:
        fail(
            f"after handle.remove(), t._backward_hooks still holds {len(t._backward_hooks)} "
            "hook(s).\n  Every hook you register must be removable through the handle you "
            "return: register ONE hook that both records and clips."
        )
    loss().backward()
    assert_close(t.grad, 2 * clipped + grads[0], "t.grad after handle.remove() and a third backward",
                 hint="once removed, the hook must no longer clip.")
    assert_equal(len(log), 2, "entries in log after handle.remove() and a third backward")


@pytest.mark.exercise("clip_and_record")
def test_clip_leaves_the_callers_gradient_alone(impl, rng):
    shape = random_shape(rng, 2, 3, 7)
    a = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    u = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(shape, dtype=torch.float64) * 3
    g_before = g.clone()
    max_abs = float(g.abs().median())
    t = a * 1.0
    log: list = []
    what = f"y = t + u, t = a * 1.0 with clip_and_record(t, max_abs={max_abs:.4g}, log); y.backward(g)"
    handle = handle_of(impl.clip_and_record(t, max_abs, log), what)
    (t + u).backward(g)  # AddBackward0 hands the very tensor g to both t's and u's edges
    handle.remove()
    hint = ("the incoming gradient may be the caller's tensor, or one handed to other edges too: "
            "return grad.clamp(...) (a new tensor), never clamp_ in place, and log a copy "
            "(grad.detach().clone()).")
    assert_close(g, g_before, f"{what}: the caller's g afterwards", hint=hint)
    assert_close(u.grad, g_before, f"{what}: u.grad (u's edge got the same gradient tensor)",
                 hint=hint)
    assert_close(a.grad, g_before.clamp(-max_abs, max_abs), f"{what}: a.grad")
    assert_equal(len(log), 1, f"{what}: entries in log")
    if type(log[0]) is not torch.Tensor or log[0].untyped_storage().data_ptr() == g.untyped_storage().data_ptr():
        fail(f"{what}: log[0] is {describe(log[0])} sharing memory with the caller's g: when the "
             f"caller reuses g, your record changes.\n  Try: {hint}")
    assert_close(log[0], g_before, f"{what}: log[0]")


@pytest.mark.exercise("clip_and_record")
def test_clip_keeps_the_gradient_differentiable(impl, rng):
    shape = random_shape(rng, 2, 3, 7)
    base = torch.randn(shape, dtype=torch.float64)
    c = torch.randn(shape, dtype=torch.float64) * 3
    max_abs = 1.0
    runs = []
    for mine in (False, True):
        x = base.clone().requires_grad_()
        t = x * 1.0
        log: list = []
        if mine:
            handle = handle_of(impl.clip_and_record(t, max_abs, log), "clip_and_record(t, 1.0, log)")
        else:
            handle = t.register_hook(lambda g: g.clamp(-max_abs, max_abs))
        (t.sin() * c).sum().backward(create_graph=True)
        handle.remove()
        runs.append(x.grad)
    what = ("x.grad after (t.sin() * c).sum().backward(create_graph=True), t = x * 1.0 carrying "
            "clip_and_record(t, 1.0, log)")
    assert_close(runs[1].detach(), runs[0].detach(), what)
    if not runs[1].requires_grad:
        fail(f"{what}: it has no graph, but with create_graph=True the clipped gradient must stay "
             "differentiable (a gradient penalty differentiates it again).\n  Try: return "
             "grad.clamp(-max_abs, max_abs) from the hook, without detaching grad itself "
             "(grad.detach_() cuts it for everyone); log grad.detach().clone().")


# ----------------------------------------------------------------------------- capture


def capture_model(rng) -> tuple[nn.Module, list[str], int, int]:
    d0, d1, d2, d3 = random_shape(rng, 4, 2, 9)
    model = nn.Sequential(OrderedDict(
        embed=nn.Linear(d0, d1),
        act=nn.Tanh(),
        body=nn.Sequential(nn.Linear(d1, d2), nn.ReLU(), nn.Linear(d2, d3)),
    )).double()
    return model, ["embed", "act", "body.0", "body.1", "body.2"], d0, d3


class Residual(nn.Module):
    """A custom parent module: its forward does work of its own around its children."""

    def __init__(self, width: int, fail: bool = False):
        super().__init__()
        self.inner = nn.Linear(width, width)
        self.gate = nn.Sigmoid()
        self.fail = fail

    def forward(self, x):
        if self.fail:
            raise ValueError("this model's forward fails on purpose")
        return x + self.gate(self.inner(x)) * 0.5


def custom_model(rng, fail: bool = False) -> tuple[nn.Module, list[str], int, int]:
    d0, d1 = random_shape(rng, 2, 2, 9)
    model = nn.Sequential(OrderedDict(
        embed=nn.Linear(d0, d1), block=Residual(d1, fail), head=nn.Tanh(),
    )).double()
    return model, ["embed", "block.inner", "block.gate", "head"], d0, d1


def run_capture(impl, rng, make=capture_model):
    model, names, d0, d3 = make(rng)
    batch = int(rng.integers(3, 7))
    x = torch.randn(batch, d0, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(batch, d3, dtype=torch.float64)

    reference = copy.deepcopy(model)
    acts = {}

    def keep(name):
        def hook(module, args, out):
            out.retain_grad()
            acts[name] = out

        return hook

    handles = [reference.get_submodule(name).register_forward_hook(keep(name)) for name in names]
    reference(x.detach().requires_grad_()).backward(upstream)
    for h in handles:
        h.remove()
    expected = ({k: v.detach() for k, v in acts.items()}, {k: v.grad for k, v in acts.items()})

    got = impl.capture(model, x, upstream)
    if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(d, dict) for d in got)):
        fail(f"capture(model, x, upstream) returned {describe(got)}; expected a pair of dicts "
             "(activations, gradients).")
    return model, reference, names, expected, got


@pytest.mark.exercise("capture")
@pytest.mark.parametrize("make", [capture_model, custom_model], ids=["sequential", "custom_parent"])
def test_capture_matches_retain_grad(impl, rng, make):
    model, reference, names, (exp_acts, exp_grads), (acts, grads) = run_capture(impl, rng, make)
    for label, got in (("activations", acts), ("gradients", grads)):
        assert_equal(
            sorted(got), sorted(names), f"the keys of the {label} dict",
            hint="one entry per leaf module (no children), keyed by its name in "
            "model.named_modules(); containers such as the model itself or 'body' are skipped.",
        )
    for name in names:
        act = acts[name]
        assert_close(act, exp_acts[name], f"activations[{name!r}] (the output of that module)")
        if act.requires_grad:
            fail(
                f"activations[{name!r}] still requires grad (grad_fn={type(act.grad_fn).__name__}): "
                "it keeps the whole forward graph alive for as long as you hold it.\n"
                "  Try: store output.detach() (or a detached clone)."
            )
        assert_close(
            grads[name], exp_grads[name],
            f"gradients[{name!r}] (d loss / d output of that module)",
            hint="a full backward hook receives (module, grad_input, grad_output); the gradient "
            "with respect to the module's OUTPUT is grad_output[0].",
        )
    for (pname, p), (_, q) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        assert_close(p.grad, q.grad, f"model.{pname}.grad after capture(...)",
                     hint="run model(x).backward(upstream) once, with the hooks in place.")


@pytest.mark.exercise("capture")
def test_capture_leaves_no_hooks(impl, rng):
    model, _, _, _, (acts, grads) = run_capture(impl, rng)
    left = leftover_hooks(model)
    if left:
        fail(
            "after capture(...) returned, hooks are still registered:\n    " + "\n    ".join(left)
            + "\n  A hook left behind fires on every later forward/backward and keeps your dicts "
            "(and the tensors in them) alive.\n  Try: keep every handle that register_*_hook "
            "returns and call handle.remove() on each one before returning (a try/finally "
            "makes that hold even when the forward raises)."
        )
    sizes = (len(acts), len(grads))
    x = torch.randn(2, model.embed.in_features, dtype=torch.float64, requires_grad=True)
    model(x).sum().backward()
    assert_equal((len(acts), len(grads)), sizes,
                 "sizes of the (activations, gradients) dicts after one more forward and backward")


@pytest.mark.exercise("capture")
def test_capture_removes_its_hooks_when_forward_raises(impl, rng):
    model, _, d0, d1 = custom_model(rng, fail=True)
    x = torch.randn(3, d0, dtype=torch.float64)
    try:
        impl.capture(model, x, torch.randn(3, d1, dtype=torch.float64))
    except NotImplementedError:
        raise
    except Exception:  # noqa: BLE001 - the model's own error may pass through
        pass
    left = leftover_hooks(model)
    if left:
        fail("capture(model, x, upstream) on a model whose forward raises: hooks are still "
             "registered afterwards:\n    " + "\n    ".join(left)
             + "\n  Try: register, then run inside try: ... finally: remove every handle.")


# ----------------------------------------------------------------------------- accumulate


def accumulate_case(rng, loss_kind: str):
    d_in, hidden, d_out = random_shape(rng, 3, 3, 9)
    micro = int(rng.integers(3, 6))
    n = micro * int(rng.integers(2, 4)) + int(rng.integers(1, micro))  # uneven last micro-batch
    model = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out)).double()
    x = torch.randn(n, d_in, dtype=torch.float64)
    if loss_kind == "mse":
        y = torch.randn(n, d_out, dtype=torch.float64)
        loss_fn = nn.MSELoss()
    else:
        y = torch.as_tensor(rng.integers(0, d_out, size=n))
        loss_fn = nn.CrossEntropyLoss()
    return model, loss_fn, x, y, micro


def check_accumulation(impl, rng, loss_kind: str) -> None:
    model, loss_fn, x, y, micro = accumulate_case(rng, loss_kind)
    n = x.shape[0]
    reference = copy.deepcopy(model)
    expected_loss = loss_fn(reference(x), y)
    expected_loss.backward()
    for p in model.parameters():  # stale gradients from an earlier step
        p.grad = torch.randn_like(p)

    sizes: list[int] = []
    spy = model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        got = impl.accumulate_microbatches(model, loss_fn, x, y, micro)
    finally:
        spy.remove()
    call = f"accumulate_microbatches(model, {type(loss_fn).__name__}(), x, y, micro_batch_size={micro}) with {n} samples"
    expected_sizes = [min(micro, n - s) for s in range(0, n, micro)]
    assert_equal(
        sizes, expected_sizes, f"{call}: the batch sizes model(...) was called with",
        hint="walk the batch in order in slices of micro_batch_size; the last slice holds "
        "whatever is left. Never run the whole batch at once: that is what accumulation avoids.",
    )
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        assert_close(
            p.grad, q.grad, f"{call}: {name}.grad vs the full-batch gradient",
            hint="start from no gradient (the model came in with stale .grad), and scale each "
            "micro-batch's mean loss by its share of the batch, len(micro) / len(batch) — not "
            "by 1 / number_of_micro_batches, which is wrong for the shorter last one.",
        )
    if type(got) is not float:
        fail(f"{call} returned {describe(got)}; expected the full-batch loss as a Python float "
             "(loss.item()).")
    if abs(got - expected_loss.item()) > 1e-9 * max(1.0, abs(expected_loss.item())):
        fail(f"{call} returned loss {got!r}; the full-batch loss is {expected_loss.item()!r}.\n"
             "  Try: add up the scaled micro-batch losses (the same weights as for the gradients).")


@pytest.mark.exercise("accumulate_microbatches")
def test_accumulate_equals_full_batch_mse(impl, rng):
    check_accumulation(impl, rng, "mse")


@pytest.mark.exercise("accumulate_microbatches")
def test_accumulate_equals_full_batch_cross_entropy(impl, rng):
    check_accumulation(impl, rng, "cross_entropy")


# ----------------------------------------------------------------------------- optimizer_in_backward


def tied_model(rng):
    """Parameters of a tiny tied-embedding model: E is used twice (embedding and output)."""
    vocab, dim = random_shape(rng, 2, 4, 9)
    params = [torch.randn(vocab, dim, dtype=torch.float64) * 0.5,
              torch.randn(dim, dim, dtype=torch.float64) * 0.5,
              torch.randn(dim, dtype=torch.float64) * 0.1]
    batches = [(torch.as_tensor(rng.integers(0, vocab, size=6)),
                torch.as_tensor(rng.integers(0, vocab, size=6))) for _ in range(4)]

    def loss(ps, batch):
        emb, w, b = ps
        idx, target = batch
        h = torch.tanh(emb[idx] @ w + b)
        return F.cross_entropy(h @ emb.T, target)

    return params, batches, loss


PARAM_NAMES = ("E (embedding, used twice)", "W", "b")


def make_adam(ps):
    return torch.optim.Adam(ps, lr=0.05, betas=(0.8, 0.95))


@pytest.mark.exercise("optimizer_in_backward")
def test_step_in_backward_matches_the_loop(impl, rng):
    init, batches, loss_fn = tied_model(rng)
    ref = [p.clone().requires_grad_() for p in init]
    opt = make_adam(ref)
    expected, expected_losses = [], []
    for batch in batches:
        opt.zero_grad()
        loss = loss_fn(ref, batch)
        loss.backward()
        opt.step()
        expected.append([p.detach().clone() for p in ref])
        expected_losses.append(loss.item())

    params = [p.clone().requires_grad_() for p in init]
    handles = impl.optimizer_in_backward((p for p in params), make_adam)  # a generator, as
    got_losses = []  # model.parameters() is
    with impl.rules():
        for step, batch in enumerate(batches):
            before = [p.detach().clone() for p in params]
            loss = loss_fn(params, batch)
            loss.backward()
            got_losses.append(loss.item())
            still = [PARAM_NAMES[i].split()[0] for i, p in enumerate(params)
                     if torch.equal(p.detach(), before[i])]
            for i, p in enumerate(params):
                assert_close(
                    p.detach(), expected[step][i],
                    f"parameter {PARAM_NAMES[i]} after step {step + 1} of {len(batches)} "
                    "(the loop only calls loss.backward(); your hooks must do the rest; "
                    f"parameters this backward left unchanged: {', '.join(still) or 'none'})\n"
                    + trajectory_picture(expected_losses[:step + 1], got_losses),
                    hint="register_post_accumulate_grad_hook runs once per parameter per "
                    "backward, AFTER the gradient is fully accumulated into p.grad (E gets "
                    "two contributions). Give each parameter its own optimiser, "
                    "make_optimizer([p]), step it in the hook and free p.grad.",
                )
                if p.grad is not None:
                    fail(
                        f"after loss.backward() of step {step + 1}, params[{i}].grad is "
                        f"{describe(p.grad)}, expected None.\n  The point of stepping inside "
                        "backward is that no gradient outlives its use: set p.grad = None in "
                        "the hook, after the step (otherwise the next backward adds into it)."
                    )
    for h in handles if isinstance(handles, list | tuple) else ():
        getattr(h, "remove", lambda: None)()


@pytest.mark.exercise("optimizer_in_backward")
def test_handles_remove_the_hooks(impl, rng):
    init, batches, loss_fn = tied_model(rng)
    params = [p.clone().requires_grad_() for p in init]
    handles = impl.optimizer_in_backward(params, make_adam)
    if not isinstance(handles, list | tuple):
        fail(f"optimizer_in_backward returned {describe(handles)}; expected a list of handles.")
    assert_equal(len(handles), len(params), "number of handles returned for 3 parameters",
                 hint="one post-accumulate-grad hook per parameter, and return every handle.")
    for h in handles:
        handle_of(h, "optimizer_in_backward(...)[i]").remove()
    for i, p in enumerate(params):
        if getattr(p, "_post_accumulate_grad_hooks", None) or p._backward_hooks:
            fail(f"after removing every handle you returned, params[{i}] still has hooks "
                 "registered: return the handle of every hook you register.")
    before = [p.detach().clone() for p in params]
    loss = loss_fn(params, batches[0])
    expected = torch.autograd.grad(loss, params, retain_graph=True)
    loss.backward()
    for i, (p, old, g) in enumerate(zip(params, before, expected, strict=True)):
        assert_close(p.detach(), old, f"params[{i}] after the handles were removed and one more "
                     "backward ran (no step should happen)")
        assert_close(p.grad, g, f"params[{i}].grad after the handles were removed")
