"""Hidden checks for the kata schedules_and_clipping.

torch.nn.utils.clip_grad_norm_ (run on copies) and torch.optim.lr_scheduler.LambdaLR are the
oracles. While the learner's code runs, clip_grad_norm_ and LRScheduler are off-limits (the
catalog's rules); get_total_norm and clip_grads_with_norm_ too, where this torch has them.
"""

from __future__ import annotations

import contextlib
import io
import math
import re

import pytest
import torch

from checker.catalog import Rules, load_catalog
from checker.helpers import assert_close, fail, random_shape, trajectory_picture
from checker.sandbox.errors import ForbiddenAPI
from checker.sandbox.forbid import forbid_callables

pytestmark = pytest.mark.kata("schedules_and_clipping")

# Forbidden only where this torch has them (the catalog cannot list names a torch may lack).
_OPTIONAL_FORBID = tuple(
    f"torch.nn.utils.{name}"
    for name in ("get_total_norm", "clip_grads_with_norm_")
    if hasattr(torch.nn.utils, name)
)


@contextlib.contextmanager
def learner(impl):
    """Run the learner's code under the kata's rules; a forbidden call becomes a failure."""
    explain = load_catalog().get("schedules_and_clipping").rules.explain
    try:
        with impl.rules(), forbid_callables(Rules(forbid=_OPTIONAL_FORBID, explain=explain)):
            yield
    except ForbiddenAPI as exc:
        fail(str(exc))


# ----------------------------------------------------------------------------- gradients


def make_params(rng, *, none_at=None):
    """3-5 float64 parameters of distinct shapes with random grads (one non-contiguous), one
    grad left None."""
    n = int(rng.integers(3, 6))
    none_at = int(rng.integers(1, n)) if none_at is None else none_at
    params = []
    for i in range(n):
        shape = random_shape(rng, int(rng.integers(1, 3)), 2, 6)
        p = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        if i != none_at:
            scale = float(rng.uniform(0.5, 3.0))
            if len(shape) == 2 and i % 2 == 0:
                p.grad = (torch.randn(shape[::-1], dtype=torch.float64) * scale).t()
            else:
                p.grad = torch.randn(shape, dtype=torch.float64) * scale
        params.append(p)
    return params


def plant_negative_peak(params):
    """The largest |value| of all the grads becomes a negative entry: an inf norm taken
    without abs() then reads a smaller positive value, every run."""
    grads = [p.grad for p in params if p.grad is not None]
    peak = max(float(g.abs().max()) for g in grads)
    grads[-1][(0,) * grads[-1].dim()] = -(peak + 1.5)
    return params


def copies(params):
    out = []
    for p in params:
        c = p.detach().clone().requires_grad_(True)
        c.grad = None if p.grad is None else p.grad.clone()
        out.append(c)
    return out


def torch_total_norm(params, norm_type):
    """PyTorch's total norm, on copies (clipping with max_norm=inf multiplies by 1)."""
    return torch.nn.utils.clip_grad_norm_(copies(params), float("inf"), norm_type)


def describe_params(params):
    shapes = ", ".join(
        f"{tuple(p.shape)}" + ("" if p.grad is not None else " grad=None") for p in params
    )
    return f"[{shapes}]"


def norm_name(norm_type):
    return "inf" if norm_type == math.inf else f"{norm_type:g}"


@pytest.mark.exercise("total_grad_norm")
def test_total_norm_matches_torch(impl, rng):
    for norm_type in (2.0, 1.0, math.inf, 3.5):
        params = make_params(rng)
        if norm_type == math.inf:
            plant_negative_peak(params)
        expected = torch_total_norm(params, norm_type)
        before = [None if p.grad is None else p.grad.clone() for p in params]
        with learner(impl):
            got = impl.total_grad_norm(params, norm_type)
        assert_close(
            got, expected,
            f"total_grad_norm(params {describe_params(params)}, norm_type={norm_name(norm_type)})",
            hint="take the norm of each .grad (skip None), then the same norm of the vector of "
            "those norms; for inf that is the largest |value| of any gradient.",
        )
        for i, (p, b) in enumerate(zip(params, before, strict=False)):
            if (p.grad is None) != (b is None) or (b is not None and not torch.equal(p.grad, b)):
                fail(f"total_grad_norm changed params[{i}].grad; it must only measure.")


@pytest.mark.exercise("total_grad_norm")
def test_total_norm_takes_generators_single_tensors_and_no_grads(impl, rng):
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)
    ).double()
    model(torch.randn(7, 5, dtype=torch.float64)).pow(2).sum().backward()
    expected = torch_total_norm(list(model.parameters()), 2.0)
    with learner(impl):
        got = impl.total_grad_norm(model.parameters())
    assert_close(got, expected, "total_grad_norm(model.parameters()) — a generator",
                 hint="iterate `parameters` once; it may be a generator, not a list.")
    p = make_params(rng)[0]
    expected = torch_total_norm([p], 2.0)
    with learner(impl):
        got = impl.total_grad_norm(p)
    assert_close(got, expected, "total_grad_norm(p) for one tensor (not a list)",
                 hint="a single tensor counts as the list [tensor].")
    nothing = [torch.zeros(3, requires_grad=True), torch.zeros(2, 2, requires_grad=True)]
    for label, params in (("params whose grads are all None", nothing), ("an empty list", [])):
        with learner(impl):
            got = impl.total_grad_norm(params)
        assert_close(got, torch.tensor(0.0), f"total_grad_norm({label})",
                     check_dtype=False, hint="with no gradient at all, return torch.tensor(0.0).")


def assert_clipped_in_place(params, reference, grads, ptrs, what):
    for i, (p, r) in enumerate(zip(params, reference, strict=False)):
        if r.grad is None:
            if p.grad is not None:
                fail(f"{what}: params[{i}].grad was None and must stay None, but it is now "
                     "a tensor. Skip parameters without a gradient; never create one.")
            continue
        if p.grad is not grads[i]:
            fail(f"{what}: params[{i}].grad is a new tensor; clip_grad_norm_ (trailing "
                 "underscore) must scale the existing gradient in place, e.g. "
                 "p.grad.mul_(coef). Optimizers and hooks hold references to that tensor.")
        if p.grad.untyped_storage().data_ptr() != ptrs[i]:
            fail(f"{what}: params[{i}].grad is the same tensor object but now points at new "
                 "memory (was `.data = ...` used?). Scale the values where they are: mul_.")
        assert_close(p.grad, r.grad, f"{what}: params[{i}].grad after clipping",
                     hint="coef = max_norm / (total + 1e-6), clamped to at most 1.0, multiplies "
                     "every gradient.")


@pytest.mark.exercise("clip_grad_norm_")
def test_clip_matches_torch_in_place(impl, rng):
    for norm_type, fraction in ((2.0, 0.3), (math.inf, 0.5), (1.0, 0.2)):
        params = make_params(rng)
        if norm_type == math.inf:
            plant_negative_peak(params)
        total = float(torch_total_norm(params, norm_type))
        max_norm = round(total * fraction, 3)
        reference = copies(params)
        expected = torch.nn.utils.clip_grad_norm_(reference, max_norm, norm_type)
        grads = [p.grad for p in params]
        ptrs = [None if g is None else g.untyped_storage().data_ptr() for g in grads]
        what = (f"clip_grad_norm_(params {describe_params(params)}, max_norm={max_norm:g}, "
                f"norm_type={norm_name(norm_type)})")
        with learner(impl):
            got = impl.clip_grad_norm_(params, max_norm, norm_type)
        assert_close(got, expected, f"{what} returned",
                     hint="return the total norm measured BEFORE clipping, as a 0-dim tensor.")
        assert_clipped_in_place(params, reference, grads, ptrs, what)


@pytest.mark.exercise("clip_grad_norm_")
def test_clip_below_max_norm_keeps_values(impl, rng):
    params = make_params(rng)
    total = float(torch_total_norm(params, 2.0))
    max_norm = round(total * 1.5 + 1.0, 3)
    reference = copies(params)
    expected = torch.nn.utils.clip_grad_norm_(reference, max_norm)
    grads = [p.grad for p in params]
    ptrs = [None if g is None else g.untyped_storage().data_ptr() for g in grads]
    what = f"clip_grad_norm_(params {describe_params(params)}, max_norm={max_norm:g}) — no clip"
    with learner(impl):
        got = impl.clip_grad_norm_(params, max_norm)
    assert_close(got, expected, f"{what} returned", hint="return the total norm.")
    assert_clipped_in_place(params, reference, grads, ptrs, what)


@pytest.mark.exercise("clip_grad_norm_")
def test_clip_walks_a_generator_and_a_single_tensor(impl, rng):
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)
    ).double()
    model(torch.randn(9, 6, dtype=torch.float64)).pow(2).sum().backward()
    params = list(model.parameters())
    total = float(torch_total_norm(params, 2.0))
    max_norm = round(total * 0.25, 3)
    reference = copies(params)
    torch.nn.utils.clip_grad_norm_(reference, max_norm)
    grads = [p.grad for p in params]
    ptrs = [g.untyped_storage().data_ptr() for g in grads]
    with learner(impl):
        impl.clip_grad_norm_(model.parameters(), max_norm)
    assert_clipped_in_place(
        params, reference, grads, ptrs,
        f"clip_grad_norm_(model.parameters(), max_norm={max_norm:g}) — a generator, which can "
        "be walked only once (make a list first)",
    )
    p = make_params(rng, none_at=-1)[0]
    reference = copies([p])
    expected = torch.nn.utils.clip_grad_norm_(reference, 0.5)
    grads, ptrs = [p.grad], [p.grad.untyped_storage().data_ptr()]
    with learner(impl):
        got = impl.clip_grad_norm_(p, 0.5)
    assert_close(got, expected, "clip_grad_norm_(p, 0.5) for one tensor returned",
                 hint="a single tensor counts as the list [tensor].")
    assert_clipped_in_place([p], reference, grads, ptrs, "clip_grad_norm_(p, 0.5)")


@pytest.mark.exercise("clip_grad_norm_")
def test_clip_without_any_gradient(impl, rng):
    """Every way of having no gradient at all: the total norm is 0 and nothing is scaled."""
    cases = (("params whose grads are all None",
              [torch.zeros(3, requires_grad=True), torch.zeros(2, 2, requires_grad=True)], {}),
             ("an empty list", [], {}),
             ("one tensor without a gradient", torch.zeros(4, requires_grad=True), {}),
             ("params whose grads are all None", [torch.zeros(5, requires_grad=True)],
              {"norm_type": float("inf")}),
             ("a tensor that needs no gradient", [torch.zeros(2)], {"norm_type": 1.0}))
    for label, params, kwargs in cases:
        extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
        what = f"clip_grad_norm_({label}, max_norm=1.0{extra})"
        with learner(impl):
            got = impl.clip_grad_norm_(params, 1.0, **kwargs)
        assert_close(got, torch.nn.utils.clip_grad_norm_([], 1.0), f"{what} returned",
                     check_dtype=False, hint="with no gradient at all, the total norm is "
                     "torch.tensor(0.0) and there is nothing to scale.")
        listed = [params] if isinstance(params, torch.Tensor) else params
        if any(p.grad is not None for p in listed):
            fail(f"{what}: a gradient appeared; parameters without one keep grad None.")


# ----------------------------------------------------------------------------- the schedule


def closed_form(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0


def schedule_configs(rng):
    out = []
    for warmup in (0, int(rng.integers(1, 4)), int(rng.integers(4, 9))):
        total = warmup + int(rng.integers(4, 16))
        base = round(float(rng.uniform(0.05, 1.0)), 4)
        min_lr = 0.0 if warmup == 0 else round(base * float(rng.uniform(0.05, 0.3)), 5)
        out.append((base, warmup, total, min_lr))
    return out


def close_lr(got, expected):
    return math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-15)


def as_lr(got, what):
    if isinstance(got, bool) or not isinstance(got, int | float):
        fail(f"{what}: expected a Python float, got {type(got).__name__} {got!r:.80}. "
             "Learning rates in optimizer.param_groups are plain floats.")
    return float(got)


@pytest.mark.exercise("warmup_cosine_lr")
def test_schedule_at_boundary_steps(impl, rng):
    for base, warmup, total, min_lr in schedule_configs(rng):
        steps = sorted({s for s in (0, 1, warmup - 1, warmup, warmup + 1, (warmup + total) // 2,
                                    total - 1, total, total + 1, total + 7) if s >= 0})
        call = f"warmup_cosine_lr(step, base_lr={base}, warmup_steps={warmup}, " \
               f"total_steps={total}, min_lr={min_lr})"
        rows, bad = [], None
        for s in steps:
            expected = closed_form(s, base, warmup, total, min_lr)
            with learner(impl):
                got = as_lr(impl.warmup_cosine_lr(s, base, warmup, total, min_lr), call)
            ok = close_lr(got, expected)
            rows.append(f"  {' ' if ok else '>'}{s:>5}  {expected:>14.10g}  {got:>14.10g}")
            if not ok and bad is None:
                bad = s
        if bad is not None:
            fail(f"{call} is wrong at step {bad}:\n    step        expected             got\n"
                 + "\n".join(rows)
                 + "\n  Try: step 0 is 0 (with warmup), the end of warmup is exactly base_lr, "
                 "and total_steps onwards is exactly min_lr; progress counts from the end of "
                 "warmup, over half a cosine period.")


@pytest.mark.exercise("warmup_cosine_lr")
def test_schedule_default_min_lr(impl, rng):
    base, warmup, total, _ = schedule_configs(rng)[1]
    call = (f"warmup_cosine_lr(step, base_lr={base}, warmup_steps={warmup}, "
            f"total_steps={total}) with min_lr left at its default")
    for s in (warmup, (warmup + total) // 2, total + 1):
        with learner(impl):
            got = as_lr(impl.warmup_cosine_lr(s, base, warmup, total), call)
        if not close_lr(got, closed_form(s, base, warmup, total)):
            fail(f"{call} at step {s}: expected {closed_form(s, base, warmup, total):.10g}, got "
                 f"{got:.10g}.\n  Try: min_lr defaults to 0.0.")


@pytest.mark.exercise("warmup_cosine_lr")
def test_schedule_follows_closed_form_every_step(impl, rng):
    base, warmup, total, min_lr = schedule_configs(rng)[2]
    expected = [closed_form(s, base, warmup, total, min_lr) for s in range(total + 4)]
    call = (f"warmup_cosine_lr(step, base_lr={base}, warmup_steps={warmup}, "
            f"total_steps={total}, min_lr={min_lr})")
    with learner(impl):
        got = [as_lr(impl.warmup_cosine_lr(s, base, warmup, total, min_lr), call)
               for s in range(total + 4)]
    first = next((s for s, (e, g) in enumerate(zip(expected, got, strict=False)) if not close_lr(g, e)), None)
    if first is not None:
        fail(f"{call} leaves the closed form at step {first}: expected {expected[first]:.10g}, "
             f"got {got[first]:.10g}.\n" + trajectory_picture(expected, got)
             + "\n  Try: linear ramp below warmup_steps, then "
             "min_lr + (base_lr - min_lr) * (1 + cos(pi * progress)) / 2.")


# ----------------------------------------------------------------------------- schedulers


def make_problem(rng):
    """Two float64 parameters in two param groups with distinct lrs, SGD with momentum."""
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    lrs = (round(float(rng.uniform(0.05, 0.2)), 4), round(float(rng.uniform(0.3, 0.6)), 4))
    warmup = int(rng.integers(2, 5))
    total = warmup + int(rng.integers(6, 11))
    min_lr = round(float(rng.uniform(0.001, 0.01)), 5)
    data = [(torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64))
            for _ in range(total + 2)]
    return (w, b), lrs, (warmup, total, min_lr), data


def make_optimizer(params, lrs):
    w, b = params
    return torch.optim.SGD([{"params": [w], "lr": lrs[0]}, {"params": [b], "lr": lrs[1]}],
                           lr=lrs[0], momentum=0.9)


def clone_params(params):
    return tuple(p.detach().clone().requires_grad_(True) for p in params)


def lambda_lr(optimizer, bases, warmup, total, min_lr):
    """PyTorch's own scheduler, driven by the closed form: the reference."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [
        (lambda s, b=b: closed_form(s, b, warmup, total, min_lr) / b) for b in bases
    ])


def train_steps(params, optimizer, step_scheduler, data, start, stop):
    """The loop both runs share; returns the lrs that each optimizer.step() used."""
    used = []
    w, b = params
    for t in range(start, stop):
        used.append([g["lr"] for g in optimizer.param_groups])
        x, y = data[t]
        optimizer.zero_grad()
        ((x @ w.t() + b - y) ** 2).mean().backward()
        optimizer.step()
        step_scheduler()
    return used


def lrs_text(lrs):
    return "[" + ", ".join(f"{v:.6g}" for v in lrs) + "]"


def first_lr_mismatch(expected, got):
    for t, (e, g) in enumerate(zip(expected, got, strict=False)):
        if len(e) != len(g) or not all(close_lr(gv, ev) for ev, gv in zip(e, g, strict=False)):
            return t
    return None


def check_lr_trajectory(expected, got, what, hint):
    t = first_lr_mismatch(expected, got)
    if t is None:
        return
    fail(f"{what}: the lrs used by optimizer.step() leave the reference at step {t}: expected "
         f"{lrs_text(expected[t])}, got {lrs_text(got[t])} (one per param group).\n"
         "  lr of group 1 per step:\n"
         + trajectory_picture([e[-1] for e in expected], [g[-1] for g in got])
         + f"\n  Try: {hint}")


@pytest.mark.exercise("WarmupCosine")
def test_scheduler_writes_the_schedule_like_lambda_lr(impl, rng):
    params, lrs, (warmup, total, min_lr), data = make_problem(rng)
    ref_params = clone_params(params)
    ref_opt = make_optimizer(ref_params, lrs)
    ref_sched = lambda_lr(ref_opt, lrs, warmup, total, min_lr)
    expected = train_steps(ref_params, ref_opt, ref_sched.step, data, 0, total + 2)
    opt = make_optimizer(params, lrs)
    what = f"WarmupCosine(optimizer, warmup_steps={warmup}, total_steps={total}, min_lr={min_lr})"
    last_lrs = []

    def step():
        with learner(impl):
            sched.step()
            last_lrs.append(sched.get_last_lr())

    with learner(impl):
        sched = impl.WarmupCosine(opt, warmup, total, min_lr)
        last_lrs.append(sched.get_last_lr())
    for i, group in enumerate(opt.param_groups):
        if "initial_lr" not in group or group["initial_lr"] != lrs[i]:
            fail(f"{what}: param group {i} should carry initial_lr={lrs[i]} after construction "
                 f"(like every torch scheduler), found {group.get('initial_lr', 'no initial_lr')}."
                 "\n  Try: base = group.setdefault('initial_lr', group['lr']).")
    got = train_steps(params, opt, step, data, 0, total + 2)
    check_lr_trajectory(
        expected, got, what,
        "write the step-0 lr in __init__; step() advances the counter, then writes; every "
        "group scales its own base lr.",
    )
    for t, (used, reported) in enumerate(zip(got, last_lrs, strict=False)):
        if not isinstance(reported, list) or [float(v) for v in reported] != used:
            fail(f"{what}: after {t} calls to step(), get_last_lr() returned {reported!r} but the "
                 f"groups hold {lrs_text(used)}. Return a list with the lr of every group.")
    for i, (p, r) in enumerate(zip(params, ref_params, strict=False)):
        assert_close(p, r, f"{what}: parameter {i} after training with your scheduler")


@pytest.mark.exercise("WarmupCosine")
def test_scheduler_takes_base_lr_from_initial_lr(impl, rng):
    params, lrs, (_, total, min_lr), _ = make_problem(rng)
    opt = make_optimizer(params, lrs)
    for group, base in zip(opt.param_groups, lrs, strict=False):
        group["initial_lr"] = base
        group["lr"] = round(base / 7, 6)  # as after loading a checkpoint taken mid-run
    with learner(impl):
        sched = impl.WarmupCosine(opt, 0, total, min_lr)
        got = [[g["lr"] for g in opt.param_groups]]
        default = impl.WarmupCosine(make_optimizer(clone_params(params), lrs), 0, total)
        for _ in range(total + 1):
            default.step()
        last = default.get_last_lr()
    if first_lr_mismatch([[0.0, 0.0]], [last]) is not None:
        fail(f"WarmupCosine(optimizer, warmup_steps=0, total_steps={total}) with min_lr left "
             f"at its default: after {total + 1} steps the lrs are {last!r}; the default "
             "min_lr is 0.0, where the schedule ends.")
    with learner(impl):
        for _ in range(3):
            sched.step()
            got.append([g["lr"] for g in opt.param_groups])
    expected = [[closed_form(s, b, 0, total, min_lr) for b in lrs] for s in range(4)]
    t = first_lr_mismatch(expected, got)
    if t is not None:
        fail(f"WarmupCosine(optimizer, warmup_steps=0, total_steps={total}, min_lr={min_lr}) on an "
             f"optimizer whose groups carry initial_lr={list(lrs)} but "
             f"lr={lrs_text([round(b / 7, 6) for b in lrs])} (as after loading a checkpoint): "
             f"after {t} steps expected {lrs_text(expected[t])}, got {lrs_text(got[t])}.\n"
             "  Try: the base lr is group['initial_lr'] when the group has one (it is the lr the "
             "run started from); only otherwise group['lr'].")


def plain_data_problem(value, path="state"):
    """The first thing in ``value`` that is not plain Python data, as (path, type name)."""
    if value is None or type(value) in (bool, int, float, str):
        return None
    if type(value) in (list, tuple):
        for i, v in enumerate(value):
            found = plain_data_problem(v, f"{path}[{i}]")
            if found:
                return found
        return None
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str:
                return f"{path} key {k!r}", type(k).__name__
            found = plain_data_problem(v, f"{path}[{k!r}]")
            if found:
                return found
        return None
    return path, type(value).__qualname__


def checkpoint_round_trip(params, optimizer, state, what):
    problem = plain_data_problem(state)
    if not isinstance(state, dict) or problem:
        where, kind = problem if problem else ("state", type(state).__qualname__)
        fail(f"{what}: state_dict() must be a dict of plain Python data (ints, floats, lists), "
             f"but {where} is a {kind}. The optimizer is saved on its own; a scheduler saves "
             "only its own numbers (torch.load(weights_only=True) refuses anything else).")
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "optimizer": optimizer.state_dict(),
                "scheduler": state}, buffer)
    buffer.seek(0)
    try:
        return torch.load(buffer, weights_only=True)
    except Exception as exc:  # noqa: BLE001 — reported to the learner
        found = re.search(r"Unsupported global: GLOBAL [\w.]+", str(exc))
        fail(f"{what}: the checkpoint does not load with torch.load(weights_only=True) "
             f"({found.group(0) if found else type(exc).__name__}). Keep state_dict() to plain "
             "numbers and lists.")


@pytest.mark.exercise("ResumableWarmupCosine")
@pytest.mark.parametrize("order", ["optimizer_first", "scheduler_first"])
def test_resumed_run_continues_identically(impl, rng, order):
    params, lrs, (warmup, total, min_lr), data = make_problem(rng)
    ref_params = clone_params(params)
    ref_opt = make_optimizer(ref_params, lrs)
    ref_sched = lambda_lr(ref_opt, lrs, warmup, total, min_lr)
    expected = train_steps(ref_params, ref_opt, ref_sched.step, data, 0, total + 2)
    k = int(rng.integers(1, warmup)) if order == "optimizer_first" else \
        int(rng.integers(warmup + 1, total - 1))
    what = (f"ResumableWarmupCosine(optimizer, warmup_steps={warmup}, total_steps={total}, "
            f"min_lr={min_lr}) checkpointed after {k} steps")

    def step_of(get_sched):
        def step():
            with learner(impl):
                get_sched().step()
        return step

    opt = make_optimizer(params, lrs)
    with learner(impl):
        sched = impl.ResumableWarmupCosine(opt, warmup, total, min_lr)
    before = train_steps(params, opt, step_of(lambda: sched), data, 0, k)
    with learner(impl):
        state = sched.state_dict()
    ckpt = checkpoint_round_trip(params, opt, state, what)

    new_params = tuple(p.clone().requires_grad_(True) for p in ckpt["params"])
    # The new run is built from defaults that differ from the checkpoint's (other lrs, other
    # schedule lengths): everything must come back from the two state_dicts.
    new_opt = make_optimizer(new_params, tuple(round(v * 3, 4) for v in lrs))
    other = (warmup + 1, total + 3, round(min_lr * 2, 5))
    if order == "optimizer_first":  # the usual recipe: optimizer loaded, then scheduler built
        new_opt.load_state_dict(ckpt["optimizer"])
        with learner(impl):
            new_sched = impl.ResumableWarmupCosine(new_opt, *other)
            new_sched.load_state_dict(ckpt["scheduler"])
        recipe = "optimizer.load_state_dict, then a new scheduler, then its load_state_dict"
    else:
        with learner(impl):
            new_sched = impl.ResumableWarmupCosine(new_opt, *other)
        new_opt.load_state_dict(ckpt["optimizer"])
        with learner(impl):
            new_sched.load_state_dict(ckpt["scheduler"])
        recipe = "a new scheduler, then optimizer.load_state_dict, then the scheduler's"
    recipe += (f"; the new optimizer made with lrs x3 and the new scheduler with "
               f"warmup_steps={other[0]}, total_steps={other[1]}, min_lr={other[2]}")
    with learner(impl):
        reported = new_sched.get_last_lr()
    if not isinstance(reported, list) or first_lr_mismatch([expected[k]], [reported]) is not None:
        fail(f"{what} and resumed ({recipe}): right after load_state_dict, get_last_lr() "
             f"returned {reported!r}; the lrs of step {k} are {lrs_text(expected[k])}.\n"
             "  Try: load_state_dict restores the counter, base lrs and hyper-parameters, "
             "then recomputes the lrs (the ones get_last_lr reports) and writes them.")
    after = train_steps(new_params, new_opt, step_of(lambda: new_sched), data, k, total + 2)
    check_lr_trajectory(
        expected, before + after, f"{what} and resumed ({recipe})",
        "load_state_dict restores the step counter, base lrs and hyper-parameters, then "
        "writes that step's lr into every param group (no extra step).",
    )
    for i, (p, r) in enumerate(zip(new_params, ref_params, strict=False)):
        assert_close(p, r, f"{what}: parameter {i} at the end of the resumed run")


@pytest.mark.exercise("ResumableWarmupCosine")
def test_state_dict_is_a_snapshot(impl, rng):
    params, lrs, (warmup, total, min_lr), _ = make_problem(rng)
    opt = make_optimizer(params, lrs)
    k = int(rng.integers(warmup + 1, total - 2))
    with learner(impl):
        sched = impl.ResumableWarmupCosine(opt, warmup, total, min_lr)
        for _ in range(k):
            sched.step()
        state = sched.state_dict()
        for _ in range(3):
            sched.step()
    other = make_optimizer(clone_params(params), lrs)
    with learner(impl):
        fresh = impl.ResumableWarmupCosine(other, warmup, total, min_lr)
        fresh.load_state_dict(state)
    expected = [closed_form(k, b, warmup, total, min_lr) for b in lrs]
    got = [g["lr"] for g in other.param_groups]
    if first_lr_mismatch([expected], [got]) is not None:
        fail(f"ResumableWarmupCosine: state_dict() taken after {k} steps, then 3 more steps, then "
             f"loaded into a new scheduler: its groups should hold the lrs of step {k}, "
             f"{lrs_text(expected)}, but hold {lrs_text(got)}.\n"
             "  Try: return a NEW dict from state_dict(); a dict that your scheduler keeps "
             "updating changes a checkpoint that was already handed out.")
