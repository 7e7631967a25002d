"""Hidden checks for the kata adam. torch.optim.Adam / AdamW are the oracle.

Every step is compared with torch.optim run on a copy of the same parameter and the same
gradients, in float64: the change made to the parameter, and the state (``step``,
``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``). Steps 1, 2 and 3 are judged one at a time
(a bias-correction off-by-one shows at step 1); a 50-step training trajectory with random
hyper-parameters must stay on torch's, and when it leaves, the message names the first step
and parameter and draws both loss curves. Structure is asserted too: the parameter and the
state are updated in place, the caller's gradient is left alone, the state has torch's layout,
and the foreach step runs a fixed number of tensor ops whatever the number of parameters.
"""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from checker.contracts import in_place
from checker.helpers import (
    CheckFailure,
    assert_close,
    assert_equal,
    describe,
    fail,
    learner_caller,
    random_shape,
    trajectory_picture,
)

pytestmark = pytest.mark.kata("adam")

# Every step updates the parameter and its state in place (the contract); nothing else.
for _name in ("adam_step_", "adamw_step_", "amsgrad_step_"):
    in_place(_name, "param", "state")
in_place("foreach_adam_", "params", "states")

MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
# Updates are compared to 1e-6 (relative, and of lr): any arrangement of the arithmetic in
# float64 with Python-float bias corrections agrees with torch to ~1e-15. Bias corrections
# taken from the float32 step tensor do not when beta2 is close to 1 (1 - beta2**t then keeps
# only a few digits): the fixed BOUNDARY_BETAS cases, run every time, have beta2 = 0.99999,
# where the float32 error is ~1e-3; random betas rarely come that close.
STEP_RTOL = 1e-6
BOUNDARY_BETAS = (0.0, 0.99999)  # beta1 = 0: exp_avg is the grad itself; beta2 near 1
# Adam amplifies rounding in coordinates whose gradient is near 0 (their update is about
# +-lr whatever the gradient's size): float64 variants stay within ~1e-10 * lr of torch over
# 50 steps, so a trajectory is judged to 1e-5 * lr; a real mistake drifts by O(lr).
TRAJECTORY_ATOL = 1e-5


def _warm_up(checks: set[str] | None = None) -> None:
    """torch.optim's first step imports torch._dynamo (seconds): pay it at collection time.
    Every flavour the checks use gets one step with a real backward, so a warm worker's armed
    process (which runs this again as ``kata_warm``) has each code path ready."""
    for decoupled in (False, True):
        for amsgrad in (False, True):
            for foreach in (False, True):
                p = torch.zeros(2, 2, requires_grad=True)
                (p * p).sum().backward()
                cls = torch.optim.AdamW if decoupled else torch.optim.Adam
                cls([p], amsgrad=amsgrad, foreach=foreach, weight_decay=0.1).step()


_warm_up()
kata_warm = _warm_up


# ----------------------------------------------------------------------------- helpers


call = learner_caller("write the update with tensor ops (lerp_, mul_, addcmul_, sqrt, addcdiv_ "
                      "or their torch._foreach_* forms); torch.optim is the reference here.")


def sig(x: float) -> float:
    """A hyper-parameter rounded to 4 significant digits, so messages stay readable."""
    return float(f"{x:.4g}")


def hyper(rng, *, weight_decay: bool | None = None) -> dict:
    """Random hyper-parameters. eps is large enough, somewhere, to matter against tiny grads."""
    if weight_decay is None:
        weight_decay = bool(rng.random() < 0.7)
    return {
        "lr": sig(10 ** rng.uniform(-2.5, -1)),
        "betas": (sig(rng.uniform(0.5, 0.95)), sig(rng.uniform(0.9, 0.9995))),
        "eps": sig(10 ** rng.uniform(-8, -3)),
        "weight_decay": sig(rng.uniform(0.05, 0.5)) if weight_decay else 0.0,
    }


def boundary_hypers(rng) -> list[dict]:
    """Hyper-parameters at each boundary that changes behaviour, run every time: beta2 near 1
    (where a float32 bias correction loses digits) with and without weight decay, beta1 = 0
    (exp_avg is then the gradient itself), and a weight decay of exactly 1."""
    base = hyper(rng, weight_decay=True)
    beta1, beta2 = base["betas"]
    return [dict(base, betas=(beta1, BOUNDARY_BETAS[1])),
            dict(base, weight_decay=0.0, betas=(beta1, BOUNDARY_BETAS[1])),
            dict(base, betas=(BOUNDARY_BETAS[0], beta2)),
            dict(base, weight_decay=1.0)]


def show(hp: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in hp.items())


def mixed(shape, scale_low: float = -4.0) -> torch.Tensor:
    """float64 values whose magnitudes span 10**scale_low .. 1 (tiny entries make eps matter)."""
    mags = torch.empty(shape, dtype=torch.float64).uniform_(scale_low, 0.0)
    return torch.randn(shape, dtype=torch.float64) * 10**mags


def torch_state(param: torch.Tensor, amsgrad: bool = False) -> dict:
    """A fresh state laid out exactly as torch.optim.Adam's _init_group lays it out."""
    state = {
        "step": torch.tensor(0.0),
        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
    }
    if amsgrad:
        state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def make_optimizer(params, hp: dict, *, decoupled: bool, amsgrad: bool, foreach: bool = False):
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return cls(params, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"],
               weight_decay=hp["weight_decay"], amsgrad=amsgrad, foreach=foreach)


def reference_steps(param0, grads, hp, *, decoupled, amsgrad):
    """torch.optim's parameter and state after each step, on its own copies."""
    p = param0.clone().requires_grad_(True)
    opt = make_optimizer([p], hp, decoupled=decoupled, amsgrad=amsgrad)
    out = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        out.append((p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}))
    return out


def check_step_value(step, k: int, what: str) -> None:
    if type(step) is not torch.Tensor:
        fail(f"{what}: state['step'] is {describe(step)}; torch.optim keeps it as a 0-dim "
             "float32 tensor (torch.tensor(0.0)) and increments it in place.\n"
             "  Try: create it as torch.tensor(0.0), then state['step'] += 1 in each step.")
    if step.dim() != 0 or step.dtype != torch.float32:
        fail(f"{what}: state['step'] is {describe(step)}; expected a 0-dim float32 tensor.")
    if float(step) != float(k):
        fail(f"{what}: state['step'] is {float(step):g}, expected {k}: add exactly 1 per step, "
             "before the bias corrections use it.")


def compare_state(state, ref_state, k: int, what: str, ptrs: dict | None = None,
                  rtol: float = STEP_RTOL) -> None:
    """The learner's state after step k against torch.optim's, key by key.

    Entries are compared to ``rtol`` of their own largest magnitude as well (entries near 0
    carry the rounding of their neighbours).
    """
    if not isinstance(state, dict):
        fail(f"{what}: the state is {describe(state)}, expected the dict that was passed in.")
    assert_equal(sorted(state), sorted(ref_state), f"{what}: the state's keys",
                 hint="keep exactly torch.optim's keys: step, exp_avg, exp_avg_sq (and "
                 "max_exp_avg_sq with amsgrad).")
    check_step_value(state["step"], k, what)
    if ptrs is not None and state["step"] is not ptrs["step"]:
        fail(f"{what}: state['step'] is a new tensor after step {k}; increment the one in the "
             "state in place (state['step'] += 1), as torch.optim does: a state_dict or "
             "another reference to it would keep the old count.")
    for key in MOMENTS:
        if key not in ref_state:
            continue
        got = state[key]
        scale = float(ref_state[key].abs().max())
        assert_close(got, ref_state[key], f"{what}: state[{key!r}] after step {k}",
                     rtol=rtol, atol=rtol * scale,
                     hint={"exp_avg": "exp_avg <- beta1*exp_avg + (1-beta1)*grad, with the "
                           "weight-decayed grad for Adam's L2 decay (AdamW's decoupled decay "
                           "never enters the moments).",
                           "exp_avg_sq": "exp_avg_sq <- beta2*exp_avg_sq + (1-beta2)*grad**2 "
                           "(no bias correction stored in the state).",
                           "max_exp_avg_sq": "max_exp_avg_sq <- max(max_exp_avg_sq, exp_avg_sq) "
                           "of the raw (not bias-corrected) exp_avg_sq, kept in the state."}[key])
        if ptrs is not None and got.data_ptr() != ptrs[key]:
            fail(f"{what}: state[{key!r}] is a new tensor after step {k}; torch.optim updates "
                 "its state tensors in place (the optimiser's state_dict holds them).\n"
                 "  Try: exp_avg.lerp_(...), exp_avg_sq.mul_(...).addcmul_(...), "
                 "torch.maximum(..., out=...).")


def state_ptrs(state: dict) -> dict:
    """What must stay put across a step: each moment's memory, and the step tensor itself."""
    return {k: (v if k == "step" else v.data_ptr()) for k, v in state.items()}


def run_steps(impl, fn_name: str, hp: dict, *, decoupled: bool, amsgrad: bool,
              shape, transposed=False, extra=None, defaults=False) -> None:
    """Steps 1, 2, 3 of the learner's single-tensor step, each compared with torch.optim.
    With ``defaults``, the learner is called with every argument by name and no
    hyper-parameter, and ``hp`` must be its documented defaults."""
    param0 = mixed(shape, scale_low=-1.0)
    if transposed:
        param0 = param0.t().contiguous().t()
    grads = [mixed(shape) * (0.3**k if amsgrad else 1.0) for k in range(3)]
    if amsgrad:  # the first grad is the largest: max_exp_avg_sq must then hold it
        grads[0] = grads[0] * 4
    ref = reference_steps(param0, grads, hp, decoupled=decoupled, amsgrad=amsgrad)

    p = param0.clone().requires_grad_(True)
    state = torch_state(p, amsgrad)
    ptrs = state_ptrs(state)
    fn = getattr(impl, fn_name)
    kwargs = dict(hp, **(extra or {}))
    for k, g in enumerate(grads, start=1):
        what = (f"{fn_name}(param=..., grad=..., state=...) with the default hyper-parameters "
                f"({show(kwargs)}), step {k} of 3" if defaults else
                f"{fn_name}(param {tuple(p.shape)}, grad, state, {show(kwargs)}), step {k} of 3")
        before = p.detach().clone()
        g_in = g.clone()
        p_ptr = p.data_ptr()
        if defaults:
            call(what, fn, param=p, grad=g_in, state=state)
        else:
            call(what, fn, p, g_in, state, **kwargs)
        if p.data_ptr() != p_ptr:
            fail(f"{what}: the parameter now points to new memory; update it in place "
                 "(param.addcdiv_, param.mul_) under torch.no_grad().")
        if not torch.equal(g_in, g):
            fail(f"{what}: your step changed the caller's gradient tensor.\n"
                 "  Try: grad = grad.add(param, alpha=weight_decay) makes a new tensor; "
                 "grad.add_(...) overwrites p.grad, which the caller may still use.")
        ref_p, ref_state = ref[k - 1]
        compare_state(state, ref_state, k, what, ptrs)
        delta = p.detach() - before
        ref_delta = ref_p - before
        hint = ("the update is -lr/(1-beta1**t) * exp_avg / (sqrt(exp_avg_sq)/sqrt(1-beta2**t) "
                "+ eps) with t the step count AFTER incrementing (t=1 on the first step, read as "
                "a Python float with state['step'].item(): a float32 1 - beta2**t loses digits); "
                "eps is added outside the square root.")
        if decoupled and hp["weight_decay"]:
            hint = ("AdamW first shrinks the parameter: param *= 1 - lr*weight_decay, then "
                    "takes the plain Adam step (the decay never enters exp_avg/exp_avg_sq). "
                    + hint[0].upper() + hint[1:])
        elif hp["weight_decay"]:
            hint = ("Adam's weight_decay is L2: grad = grad + weight_decay*param before the "
                    "moments are updated. " + hint[0].upper() + hint[1:])
        assert_close(delta, ref_delta, f"{what}: the change your step made to the parameter",
                     rtol=STEP_RTOL, atol=STEP_RTOL * hp["lr"], hint=hint)


def trajectory_problem(rng):
    """A small regression net: named float64 parameters and fixed data for an MSE loss."""
    d_in, d_hid, d_out = random_shape(rng, 3, 3, 7)
    params = {
        "w1": torch.randn(d_hid, d_in, dtype=torch.float64) * 0.7,
        "b1": torch.randn(d_hid, dtype=torch.float64) * 0.1,
        "w2": torch.randn(d_out, d_hid, dtype=torch.float64) * 0.7,
        "b2": torch.randn(d_out, dtype=torch.float64) * 0.1,
    }
    x = torch.randn(24, d_in, dtype=torch.float64)
    y = torch.sin(x @ torch.randn(d_in, d_out, dtype=torch.float64))
    return params, x, y


def mse_loss(x, y):
    def loss_fn(ps):
        h = torch.tanh(x @ ps[0].T + ps[1])
        return ((h @ ps[2].T + ps[3] - y) ** 2).mean()

    return loss_fn


# torch.optim's trajectories, by content: a warm worker's armed process computes them before
# the learner saves (kata_prepare), the check finds them here; other inputs simply miss.
_REFERENCE: dict = {}


def reference_trajectory(problem, hp: dict, *, decoupled: bool, amsgrad: bool, foreach: bool,
                         steps: int = 50):
    """torch.optim's loss before each step, parameters after each step and final state."""
    params, x, y = problem
    key = (tuple((t.shape, t.numpy().tobytes()) for t in (*params.values(), x, y)),
           repr(sorted(hp.items())), decoupled, amsgrad, foreach, steps)
    if key not in _REFERENCE:
        loss_fn = mse_loss(x, y)
        ref_ps = [t.clone().requires_grad_(True) for t in params.values()]
        opt = make_optimizer(ref_ps, hp, decoupled=decoupled, amsgrad=amsgrad, foreach=foreach)
        ref_losses, ref_params = [], []
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn(ref_ps)
            loss.backward()
            ref_losses.append(float(loss.detach()))
            opt.step()
            ref_params.append([p.detach().clone() for p in ref_ps])
        ref_states = [{k: v.clone() for k, v in opt.state[p].items()} for p in ref_ps]
        _REFERENCE[key] = ref_losses, ref_params, ref_states
    return _REFERENCE[key]


def all_close(got_steps, ref_steps, lr: float) -> bool:
    """Every parameter after every step within the trajectory's tolerance, in one comparison
    (the step-by-step comparison, which names the first step that strays, runs only if not)."""
    pairs = [(g, r) for got, ref in zip(got_steps, ref_steps, strict=True)
             for g, r in zip(got, ref, strict=True)]
    if any(g.shape != r.shape or g.dtype != r.dtype for g, r in pairs):
        return False
    got = torch.cat([g.reshape(-1) for g, _ in pairs])
    ref = torch.cat([r.reshape(-1) for _, r in pairs])
    return bool(torch.allclose(got, ref, rtol=STEP_RTOL, atol=TRAJECTORY_ATOL * lr))


def trajectory_check(make_case):
    """Mark a trajectory check whose case (function, hyper-parameters, flags) comes from
    ``make_case(rng, **params)``: its prepare hook makes the same draws as the check (same rng,
    torch's generator seeded alike) and runs torch.optim ahead."""
    def prepare(rng, **params) -> None:
        case = make_case(rng, **params)
        reference_trajectory(trajectory_problem(rng), case["hp"], decoupled=case["decoupled"],
                             amsgrad=case["amsgrad"], foreach=case["foreach"])

    def mark(check):
        check.kata_prepare = prepare
        return check

    return mark


def run_trajectory(impl, rng, case: dict, steps: int = 50) -> None:
    """``steps`` training steps with the learner's optimiser against torch.optim's."""
    fn_name, hp, extra = case["fn"], case["hp"], case.get("extra")
    decoupled, amsgrad, foreach = case["decoupled"], case["amsgrad"], case["foreach"]
    problem = trajectory_problem(rng)
    names_params, x, y = problem
    loss_fn = mse_loss(x, y)
    names = list(names_params)
    ref_losses, ref_params, ref_states = reference_trajectory(
        problem, hp, decoupled=decoupled, amsgrad=amsgrad, foreach=foreach, steps=steps)

    ps = [t.clone().requires_grad_(True) for t in names_params.values()]
    states = [torch_state(p, amsgrad) for p in ps]
    fn = getattr(impl.module, fn_name)
    kwargs = dict(hp, **(extra or {}))
    label = "torch.optim.AdamW" if decoupled else "torch.optim.Adam"
    what = f"{steps} training steps with {fn_name}({show(kwargs)})"
    losses, params_after = [], []
    with impl.rules():
        for _ in range(steps):
            loss = loss_fn(ps)
            grads = torch.autograd.grad(loss, ps)
            losses.append(float(loss.detach()))
            if foreach:
                call(what, fn, ps, list(grads), states, **kwargs)
            else:
                for p, g, s in zip(ps, grads, states, strict=True):
                    call(what, fn, p, g, s, **kwargs)
            params_after.append([p.detach().clone() for p in ps])
    for k in ([] if all_close(params_after, ref_params, hp["lr"]) else range(steps)):
        for name, got, exp in zip(names, params_after[k], ref_params[k], strict=True):
            try:
                assert_close(got, exp, f"parameter {name!r} after step {k + 1}",
                             rtol=STEP_RTOL, atol=TRAJECTORY_ATOL * hp["lr"])
            except CheckFailure as exc:
                fail(f"{what}: your trajectory leaves {label}'s at step {k + 1} (of {steps}), "
                     f"first at parameter {name!r}.\n  {exc}\n"
                     f"  Training loss per step:\n{trajectory_picture(ref_losses, losses)}\n"
                     "  Try: compare steps 1-3 by hand with torch.optim; a drift that starts "
                     "late points at the bias corrections, eps or the weight decay.")
    for name, state, ref_state in zip(names, states, ref_states, strict=True):
        compare_state(state, ref_state, steps, f"{what}: parameter {name!r}",
                      rtol=TRAJECTORY_ATOL)


class OpCounter(TorchDispatchMode):
    """Counts the aten ops that run, by name (the learner's code runs inside it)."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


# ----------------------------------------------------------------------------- init_state


@pytest.mark.exercise("init_state")
@pytest.mark.parametrize("amsgrad", [False, True])
def test_init_state_has_torchs_layout(impl, rng, amsgrad):
    for dtype, transposed in ((torch.float64, True), (torch.float32, False)):
        shape = random_shape(rng, 2, 2, 7)
        param = torch.randn(*shape, dtype=dtype)
        if transposed:
            param = param.t().contiguous().t()
        param.requires_grad_(True)
        ref_p = param.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
        opt = torch.optim.Adam([ref_p], amsgrad=amsgrad)
        ref_p.grad = torch.zeros_like(ref_p)
        opt.step()
        ref = opt.state[ref_p]
        layout = "transposed " if transposed else ""
        what = f"init_state({layout}param {describe(param)}, amsgrad={amsgrad})"
        state = call(what, impl.init_state, param, amsgrad)
        if not isinstance(state, dict):
            fail(f"{what}: expected a dict, got {describe(state)}.")
        assert_equal(sorted(state), sorted(ref), f"{what}: the state's keys",
                     hint="torch.optim.Adam keeps 'step', 'exp_avg', 'exp_avg_sq', and "
                     "'max_exp_avg_sq' only when amsgrad=True.")
        check_step_value(state["step"], 0, what)
        seen = {}
        for key in MOMENTS:
            if key not in ref:
                continue
            got = state[key]
            assert_close(got, torch.zeros_like(ref[key]), f"{what}: state[{key!r}]",
                         check_stride=True,
                         hint="torch.zeros_like(param, memory_format=torch.preserve_format) "
                         "keeps the parameter's dtype, shape AND strides.")
            if got.requires_grad:
                fail(f"{what}: state[{key!r}] requires grad; optimiser state is plain data.")
            if got.untyped_storage().data_ptr() == param.untyped_storage().data_ptr():
                fail(f"{what}: state[{key!r}] shares memory with the parameter.")
            for other, ptr in seen.items():
                if got.untyped_storage().data_ptr() == ptr:
                    fail(f"{what}: state[{key!r}] and state[{other!r}] are the same memory; "
                         "each moment needs its own zeros, or one update overwrites the other.")
            seen[key] = got.untyped_storage().data_ptr()
        again = call(what, impl.init_state, param, amsgrad)
        if not amsgrad:
            default = call("init_state(param=...)", impl.init_state, param=param)
            if not isinstance(default, dict) or sorted(default) != sorted(ref):
                fail(f"init_state(param=...) with amsgrad left at its default (False) returned "
                     f"the keys {sorted(default) if isinstance(default, dict) else default!r}; "
                     f"expected {sorted(ref)}.")
        for key, value in state.items():
            other = again.get(key) if isinstance(again, dict) else None
            if other is value or (isinstance(other, torch.Tensor) and
                                  other.untyped_storage().data_ptr()
                                  == value.untyped_storage().data_ptr()):
                fail(f"{what}: two calls returned the same {key!r} tensor; every parameter "
                     "needs a state of its own, or one parameter's step moves another's.")


# ----------------------------------------------------------------------------- adam_step_


@pytest.mark.exercise("adam_step_")
def test_adam_steps_1_2_3(impl, rng):
    hp = hyper(rng, weight_decay=True)
    run_steps(impl, "adam_step_", hp, decoupled=False, amsgrad=False,
              shape=random_shape(rng, 2, 3, 8))


@pytest.mark.exercise("adam_step_")
def test_adam_steps_without_weight_decay_on_transposed_param(impl, rng):
    hp = hyper(rng, weight_decay=False)
    run_steps(impl, "adam_step_", hp, decoupled=False, amsgrad=False,
              shape=random_shape(rng, 2, 3, 8), transposed=True)


@pytest.mark.exercise("adam_step_")
def test_adam_steps_at_boundary_hyperparameters(impl, rng):
    for hp in boundary_hypers(rng):
        run_steps(impl, "adam_step_", hp, decoupled=False, amsgrad=False,
                  shape=random_shape(rng, 2, 3, 8))


ADAM_DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


@pytest.mark.exercise("adam_step_")
def test_adam_step_defaults(impl, rng):
    run_steps(impl, "adam_step_", ADAM_DEFAULTS, decoupled=False, amsgrad=False,
              shape=random_shape(rng, 2, 3, 8), defaults=True)


def _adam_case(rng) -> dict:
    return {"fn": "adam_step_", "hp": hyper(rng), "decoupled": False, "amsgrad": False,
            "foreach": False}


@pytest.mark.exercise("adam_step_")
@trajectory_check(_adam_case)
def test_adam_trajectory_matches_torch(impl, rng):
    run_trajectory(impl, rng, _adam_case(rng))


# ----------------------------------------------------------------------------- adamw_step_


@pytest.mark.exercise("adamw_step_")
def test_adamw_steps_1_2_3(impl, rng):
    hp = hyper(rng, weight_decay=True)
    run_steps(impl, "adamw_step_", hp, decoupled=True, amsgrad=False,
              shape=random_shape(rng, 2, 3, 8))


@pytest.mark.exercise("adamw_step_")
def test_adamw_steps_at_boundary_hyperparameters(impl, rng):
    for hp in boundary_hypers(rng):
        run_steps(impl, "adamw_step_", hp, decoupled=True, amsgrad=False,
                  shape=random_shape(rng, 2, 3, 8), transposed=True)


@pytest.mark.exercise("adamw_step_")
def test_adamw_step_defaults(impl, rng):
    run_steps(impl, "adamw_step_", dict(ADAM_DEFAULTS, weight_decay=1e-2), decoupled=True,
              amsgrad=False, shape=random_shape(rng, 2, 3, 8), defaults=True)


def _adamw_case(rng) -> dict:
    return {"fn": "adamw_step_", "hp": hyper(rng, weight_decay=True), "decoupled": True,
            "amsgrad": False, "foreach": False}


@pytest.mark.exercise("adamw_step_")
@trajectory_check(_adamw_case)
def test_adamw_trajectory_matches_torch(impl, rng):
    run_trajectory(impl, rng, _adamw_case(rng))


# ----------------------------------------------------------------------------- amsgrad_step_


@pytest.mark.exercise("amsgrad_step_")
@pytest.mark.parametrize("decoupled", [False, True])
def test_amsgrad_steps_1_2_3(impl, rng, decoupled):
    """With weight decay, and ``decoupled`` left at its default (False: L2) when not set."""
    hp = hyper(rng, weight_decay=True)
    run_steps(impl, "amsgrad_step_", hp, decoupled=decoupled, amsgrad=True,
              shape=random_shape(rng, 2, 3, 8), extra={"decoupled": True} if decoupled else None)


@pytest.mark.exercise("amsgrad_step_")
@pytest.mark.parametrize("decoupled", [False, True])
def test_amsgrad_steps_at_boundary_hyperparameters(impl, rng, decoupled):
    for hp in boundary_hypers(rng):
        run_steps(impl, "amsgrad_step_", hp, decoupled=decoupled, amsgrad=True,
                  shape=random_shape(rng, 2, 3, 8), extra={"decoupled": decoupled})


@pytest.mark.exercise("amsgrad_step_")
def test_amsgrad_step_defaults(impl, rng):
    run_steps(impl, "amsgrad_step_", ADAM_DEFAULTS, decoupled=False, amsgrad=True,
              shape=random_shape(rng, 2, 3, 8), defaults=True)


def _amsgrad_case(rng) -> dict:
    decoupled = bool(rng.random() < 0.5)
    return {"fn": "amsgrad_step_", "hp": hyper(rng), "decoupled": decoupled, "amsgrad": True,
            "foreach": False, "extra": {"decoupled": decoupled}}


@pytest.mark.exercise("amsgrad_step_")
@trajectory_check(_amsgrad_case)
def test_amsgrad_trajectory_matches_torch(impl, rng):
    run_trajectory(impl, rng, _amsgrad_case(rng))


# ----------------------------------------------------------------------------- foreach_adam_


def foreach_case(rng, n: int, *, amsgrad: bool, decoupled: bool, hp: dict):
    """n parameters of distinct shapes whose states sit at different step counts."""
    params, grads, ref_params, opts = [], [], [], []
    for _ in range(n):
        shape = random_shape(rng, 2, 2, 6)
        p = mixed(shape, scale_low=-1.0)
        params.append(p.clone().requires_grad_(True))
        ref_params.append(p.clone().requires_grad_(True))
        grads.append(mixed(shape))
    # A parameter that joined late has taken fewer steps: its bias corrections differ.
    history = [int(rng.integers(0, 3)) for _ in range(n)]
    states = []
    for p, ref_p, h in zip(params, ref_params, history, strict=True):
        opt = make_optimizer([ref_p], hp, decoupled=decoupled, amsgrad=amsgrad)
        for _ in range(h):
            ref_p.grad = mixed(tuple(p.shape))
            opt.step()
        with torch.no_grad():
            p.copy_(ref_p)
        state = torch_state(p, amsgrad)
        for k, v in opt.state[ref_p].items():
            state[k].copy_(v)
        states.append(state)
        opts.append(opt)
    return params, grads, states, ref_params, opts, history


def judge_foreach_step(impl, rng, hp: dict, *, amsgrad: bool, decoupled: bool,
                       defaults: bool = False, omit: tuple[str, ...] = ()) -> None:
    """One foreach step against torch.optim; the flags named in ``omit`` are left at their
    defaults in the call (their values here must be those defaults)."""
    params, grads, states, ref_params, opts, history = foreach_case(
        rng, 4, amsgrad=amsgrad, decoupled=decoupled, hp=hp)
    for ref_p, g, opt in zip(ref_params, grads, opts, strict=True):
        ref_p.grad = g.clone()
        opt.step()
    kwargs = {k: v for k, v in dict(hp, amsgrad=amsgrad, decoupled=decoupled).items()
              if k not in omit}
    what = (f"foreach_adam_(4 params, grads, states, {show(kwargs)}) with states at steps "
            f"{history}")
    grads_in = [g.clone() for g in grads]
    before = [p.detach().clone() for p in params]
    ptrs = [p.data_ptr() for p in params]
    state_before = [state_ptrs(s) for s in states]
    if defaults:
        what = ("foreach_adam_(params=..., grads=..., states=...) with the default "
                f"hyper-parameters ({show(kwargs)})")
        call(what, impl.foreach_adam_, params=params, grads=grads_in, states=states)
    else:
        call(what, impl.foreach_adam_, params, grads_in, states, **kwargs)
    for i, (p, ref_p, opt) in enumerate(zip(params, ref_params, opts, strict=True)):
        if p.data_ptr() != ptrs[i]:
            fail(f"{what}: parameter {i} now points to new memory; update params in place "
                 "(torch._foreach_addcdiv_, torch._foreach_mul_).")
        if not torch.equal(grads_in[i], grads[i]):
            fail(f"{what}: your step changed the caller's gradient {i}.\n"
                 "  Try: torch._foreach_add(grads, params, alpha=weight_decay) returns new "
                 "tensors; the in-place form overwrites the caller's .grad.")
        compare_state(states[i], opt.state[ref_p], history[i] + 1, f"{what}: parameter {i}",
                      state_before[i])
        assert_close(p.detach() - before[i], ref_p.detach() - before[i],
                     f"{what}: the change to parameter {i} (its state was at step {history[i]})",
                     rtol=STEP_RTOL, atol=STEP_RTOL * hp["lr"],
                     hint="each parameter's bias corrections use ITS OWN step count; read "
                     "every state['step'] after the increment.")


@pytest.mark.exercise("foreach_adam_")
@pytest.mark.parametrize("decoupled", [False, True])
def test_foreach_step_matches_torch_per_parameter(impl, rng, decoupled):
    for amsgrad in (False, True):  # with L2 decay, decoupled is also left at its default
        judge_foreach_step(impl, rng, hyper(rng, weight_decay=True), amsgrad=amsgrad,
                           decoupled=decoupled, omit=() if decoupled else ("decoupled",))
    for hp in boundary_hypers(rng):
        judge_foreach_step(impl, rng, hp, amsgrad=hp["betas"][0] == 0, decoupled=decoupled)


@pytest.mark.exercise("foreach_adam_")
def test_foreach_defaults(impl, rng):
    judge_foreach_step(impl, rng, ADAM_DEFAULTS, amsgrad=False, decoupled=False, defaults=True)


@pytest.mark.exercise("foreach_adam_")
def test_foreach_of_no_parameters(impl, rng):
    hp = hyper(rng, weight_decay=True)
    what = f"foreach_adam_([], [], [], {show(hp)})"
    got = call(what, impl.foreach_adam_, [], [], [], **hp)
    if got is not None:
        fail(f"{what}: returned {describe(got)}; a step returns None (it works in place).")


@pytest.mark.exercise("foreach_adam_")
@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("weight_decay", [False, True])
def test_foreach_runs_a_fixed_number_of_tensor_ops(impl, rng, decoupled, weight_decay):
    hp = hyper(rng, weight_decay=weight_decay)
    counts = {}
    for n in (2, 7):
        params, grads, states, *_ = foreach_case(rng, n, amsgrad=True, decoupled=decoupled,
                                                 hp=hp)
        what = (f"foreach_adam_({n} params, ..., amsgrad=True, decoupled={decoupled}, "
                f"weight_decay={hp['weight_decay']!r})")
        impl.foreach_adam_  # a missing name fails with the proxy's message  # noqa: B018
        fn = impl.module.foreach_adam_  # unguarded: the guards' own copies are not counted
        with impl.rules(), OpCounter() as counter:
            call(what, fn, params, grads, states, **hp, amsgrad=True, decoupled=decoupled)
        counts[n] = counter.counts
    grown = sorted(op for op in set(counts[2]) | set(counts[7])
                   if op != "_local_scalar_dense" and counts[7][op] > counts[2][op])
    if grown:
        table = ", ".join(f"{op}: {counts[2][op]} -> {counts[7][op]}" for op in grown)
        fail(f"foreach_adam_(..., decoupled={decoupled}, weight_decay={hp['weight_decay']!r}) "
             "runs more tensor ops as the number of parameters grows "
             f"(2 params -> 7 params: {table}).\n"
             "  A foreach step handles the whole list with one torch._foreach_* call per stage "
             "(only reading each step count with .item() may grow).\n"
             "  Try: torch._foreach_add_(steps, 1), torch._foreach_lerp_(exp_avgs, grads, "
             "1 - beta1), torch._foreach_mul_/addcmul_, torch._foreach_sqrt, _foreach_div_, "
             "_foreach_add_, and torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes).")


def _foreach_case(rng, decoupled: bool) -> dict:
    amsgrad = bool(rng.random() < 0.5)
    return {"fn": "foreach_adam_", "hp": hyper(rng), "decoupled": decoupled, "amsgrad": amsgrad,
            "foreach": True, "extra": {"amsgrad": amsgrad, "decoupled": decoupled}}


@pytest.mark.exercise("foreach_adam_")
@pytest.mark.parametrize("decoupled", [False, True])
@trajectory_check(_foreach_case)
def test_foreach_trajectory_matches_torch(impl, rng, decoupled):
    run_trajectory(impl, rng, _foreach_case(rng, decoupled))
