"""Hidden checks for the debugging kata.

Every check builds hidden models from the seed: some with a bug planted at a random layer,
unit, op or input, some clean (there the right diagnosis is "nothing found"). A fixed corpus
runs every time (each kind of bug once, the boundary cases, the clean controls), then random
draws. PyTorch is the oracle: anomaly mode names the NaN's node, the check's own hooks find
dead units and explosions, gradcheck judges each input of a hand-written backward, and
torch's numerical Jacobian is the reference for central differences.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.gradcheck import _get_numerical_jacobian

from checker.catalog import Rules
from checker.contracts import assert_exact_type
from checker.helpers import assert_close, describe, fail, learner_caller
from checker.inputs import boundary_draws
from checker.sandbox.forbid import forbid_callables

pytestmark = pytest.mark.kata("debugging")

call = learner_caller("diagnose with hooks, anomaly mode, gradcheck and your own arithmetic; "
                      "only torch's numerical Jacobians are off-limits")
warnings.filterwarnings("ignore", message="Anomaly Detection has been enabled")
warnings.filterwarnings("ignore", message="Full backward hook is firing")


def leftover_hooks(model: nn.Module) -> list[str]:
    """'name: n in kind' for every module hook still registered on ``model`` or globally."""
    from torch.nn.modules import module as module_mod

    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    found = [f"{name or '(the model itself)'}: {len(getattr(sub, kind))} in {kind}"
             for name, sub in model.named_modules() for kind in kinds if getattr(sub, kind, None)]
    found += [f"global: {len(getattr(module_mod, kind))} in torch.nn.modules.module.{kind}"
              for kind in ("_global_forward_hooks", "_global_forward_pre_hooks",
                           "_global_backward_hooks", "_global_backward_pre_hooks")
              if getattr(module_mod, kind, None)]
    return found


def no_hooks_left(model: nn.Module, what: str) -> None:
    left = leftover_hooks(model)
    if left:
        fail(f"{what}: hooks are still registered afterwards:\n    " + "\n    ".join(left)
             + "\n  A diagnostic must leave the model as it found it: a hook left behind fires "
             "on every later forward and backward.\n  Try: keep every handle and remove them "
             "all in a finally: block.")


# ----------------------------------------------------------------------------- nan_source

# Each risky op, and the backward node anomaly mode names when it produces NaN.
RISKY = {
    "sqrt": (lambda u, s: u.sqrt(), "SqrtBackward0"),
    "log": (lambda u, s: u.log(), "LogBackward0"),
    "rsqrt": (lambda u, s: u.rsqrt(), "RsqrtBackward0"),
    "reciprocal": (lambda u, s: u.reciprocal(), "ReciprocalBackward0"),
    "pow": (lambda u, s: u.pow(0.5), "PowBackward0"),
    "div": (lambda u, s: torch.full_like(u, 2.0) / u, "DivBackward0"),
}


class Guarded(nn.Module):
    """A Linear, then a risky op behind ``where(u > 0, op(u), 0)``. Where the offset keeps u
    above 0 the op only sees safe values; where it does not, the ReLU hands the op exact
    zeros, which ``where`` hides in forward and not in backward (0 * inf = NaN)."""

    def __init__(self, width: int, kind: str, offset: float):
        super().__init__()
        self.lin = nn.Linear(width, width)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, width))
        self.kind = kind
        self.offset = offset

    def forward(self, h):
        u = torch.relu(torch.tanh(self.lin(h)) + self.offset)
        return torch.where(u > 0, RISKY[self.kind][0](u, self), 0.0) * self.scale


def nan_model(rng, kinds: list[str], planted: int | None):
    """Each stage's offset is set from its own values: the planted stage's smallest u lands
    below 0 (the ReLU makes it exactly 0), every other stage's u stays above 0.3."""
    width, batch = int(rng.integers(3, 6)), int(rng.integers(4, 7))
    model = nn.Sequential(*[Guarded(width, kind, 0.0) for kind in kinds]).double()
    x = torch.randn(batch, width, dtype=torch.float64)
    for i, stage in enumerate(model):
        seen: list[torch.Tensor] = []
        handle = stage.lin.register_forward_hook(lambda m, a, out, seen=seen: seen.append(out.tanh()))
        with torch.no_grad():
            model(x)
        handle.remove()
        low = -float(seen[0].min())
        stage.offset = low - float(rng.uniform(0.01, 0.3)) if i == planted else low + float(rng.uniform(0.3, 1.0))
    return model, x


def anomaly_oracle(model, x) -> str | None:
    """Anomaly mode's own answer, run by the check."""
    params = list(model.parameters())
    try:
        with torch.autograd.detect_anomaly():
            torch.autograd.grad(model(x).sum(), params)
    except RuntimeError as exc:
        return str(exc).split("'")[1]
    return None


def nan_cases(rng):
    """Every risky op planted once (at a random place among all six), two clean controls
    (all six ops, then a shorter model), then two random draws."""
    kinds = list(RISKY)
    cases = []
    for kind in kinds:
        order = [str(k) for k in rng.permutation(kinds)]
        cases.append((f"{kind} planted", order, order.index(kind)))
    for label, n in (("clean, all six ops", 6), ("clean, three ops", 3)):
        cases.append((label, [str(k) for k in rng.permutation(kinds)[:n]], None))
    for i in range(2):
        order = [str(k) for k in rng.permutation(kinds)[:int(rng.integers(2, 7))]]
        planted = None if rng.random() < 0.3 else int(rng.integers(0, len(order)))
        cases.append((f"random draw {i + 1}", order, planted))
    return cases


@pytest.mark.exercise("nan_source")
def test_nan_source_names_the_planted_node(impl, rng):
    for label, kinds, planted in nan_cases(rng):
        model, x = nan_model(rng, kinds, planted)
        expected = None if planted is None else RISKY[kinds[planted]][1]
        for p in model.parameters():
            p.grad = None
        got = call("nan_source", impl.nan_source, model, x)
        what = (f"nan_source(model, x) on a model of {len(kinds)} stages "
                f"[{', '.join(kinds)}] ({'NaN planted in stage ' + str(planted) if planted is not None else 'no NaN anywhere'})")
        if got is not None and type(got) is not str:
            fail(f"{what}: returned {describe(got)}; expected a str (the node's class name) or None.")
        if got != expected:
            assert anomaly_oracle(model, x) == expected, label  # torch agrees with the plant
            hint = ("a healthy model has no NaN in backward: return None, not a guess."
                    if expected is None else
                    "anomaly mode's RuntimeError quotes the node that returned NaN; return that "
                    "name exactly as autograd spells it (type(grad_fn).__name__, e.g. "
                    "'SqrtBackward0').")
            fail(f"{what}:\n  expected {expected!r}\n  got      {got!r}\n  Try: {hint}")
        touched = [name for name, p in model.named_parameters() if p.grad is not None]
        if touched:
            fail(f"{what}: afterwards {len(touched)} parameters hold a .grad (e.g. "
                 f"{touched[0]!r}); a diagnostic does not train.\n  Try: torch.autograd.grad("
                 "output, params) returns the gradients instead of accumulating them into .grad.")


# ----------------------------------------------------------------------------- dead_units


def plant_units(model, x, layer: nn.Linear, dead: list[int], zero: list[int], once: list[int]):
    """Make ``layer``'s units ``dead`` (a large negative bias), ``zero`` (weight row and bias
    exactly 0: the ReLU's input is exactly 0 everywhere) and ``once`` (alive on exactly one
    position of the batch); every other unit alive on at least one position."""
    seen = []
    handle = layer.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    h = seen[0].reshape(-1, layer.in_features)
    with torch.no_grad():
        pre = h @ layer.weight.T  # without bias
        for u in range(layer.out_features):
            col = pre[:, u]
            if u in dead:
                layer.bias[u] = -col.abs().max() - 3.0
            elif u in zero:
                layer.weight[u] = 0.0
                layer.bias[u] = 0.0
            elif u in once and col.numel() > 1:
                top = col.topk(2).values
                layer.bias[u] = -(top[0] + top[1]) / 2
            elif (col + layer.bias[u]).max() <= 0:
                layer.bias[u] = -col.max() + 0.5


def relu_model(rng, *, three_d: bool, batch: int, plant: bool, inplace: bool = False):
    d0, d1, d2, d3 = (int(v) for v in rng.choice(range(3, 9), size=4, replace=False))
    model = nn.Sequential(OrderedDict(
        embed=nn.Linear(d0, d1),
        act=nn.ReLU(inplace=inplace),
        body=nn.Sequential(nn.Linear(d1, d2), nn.Tanh(), nn.Linear(d2, d3), nn.ReLU()),
        head=nn.Linear(d3, 2),
    )).double()
    shape = (batch, int(rng.integers(2, 4)), d0) if three_d else (batch, d0)
    x = torch.randn(shape, dtype=torch.float64)
    for layer in (model.embed, model.body[2]):
        units = [int(u) for u in rng.permutation(layer.out_features)]
        if plant:
            n_dead = int(rng.integers(1, max(2, layer.out_features // 2)))
            dead, zero, once = units[:n_dead], units[n_dead:n_dead + 1], units[n_dead + 1:n_dead + 2]
        else:
            dead, zero, once = [], [], units[:1]
        plant_units(model, x, layer, dead, zero, once)
    return model, x


def dead_oracle(model, x) -> dict[str, list[int]]:
    outputs = {}
    handles = [m.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out.clone()))
               for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return {name: [int(u) for u in range(out.shape[-1]) if not out[..., u].any()]
            for name, out in outputs.items()}


def dead_cases(rng):
    return [
        ("2-D batch, dead units planted", dict(three_d=False, batch=int(rng.integers(5, 9)), plant=True)),
        ("3-D batch (N, T, F), dead units planted", dict(three_d=True, batch=int(rng.integers(3, 6)), plant=True)),
        ("in-place ReLU, dead units planted", dict(three_d=False, batch=6, plant=True, inplace=True)),
        ("a batch of one sample", dict(three_d=False, batch=1, plant=True)),
        ("clean control: no dead unit", dict(three_d=False, batch=int(rng.integers(5, 9)), plant=False)),
        ("clean control, 3-D batch", dict(three_d=True, batch=4, plant=False)),
        ("random draw", dict(three_d=bool(rng.random() < 0.5), batch=int(rng.integers(2, 9)),
                             plant=bool(rng.random() < 0.7))),
    ]


@pytest.mark.exercise("dead_units")
def test_dead_units_match_the_planted_ones(impl, rng):
    for label, kwargs in dead_cases(rng):
        model, x = relu_model(rng, **kwargs)
        expected = dead_oracle(model, x)
        got = call("dead_units", impl.dead_units, model, x)
        what = f"dead_units(model, x of shape {tuple(x.shape)}) [{label}]"
        no_hooks_left(model, what)
        if not isinstance(got, dict):
            fail(f"{what}: returned {describe(got)}; expected a dict name -> list of ints.")
        if sorted(got) != sorted(expected):
            fail(f"{what}: the keys are {sorted(got)}; expected {sorted(expected)}, one per "
                 "nn.ReLU module by its name in model.named_modules() — a ReLU without dead "
                 "units maps to [].")
        assert_exact_type(got, expected, what, hint="plain Python ints in lists: [int(i) for i in ...]")
        for name in expected:
            if got[name] != expected[name]:
                fail(f"{what}, ReLU {name!r}:\n  expected dead units {expected[name]}\n  got"
                     f"              {got[name]}\n  Try: a unit (an index of the LAST dim) is dead "
                     "when the ReLU's OUTPUT is exactly zero at every other index — every sample "
                     "and every time step; one positive value anywhere keeps it alive, and an "
                     "input of exactly 0 gives an output of 0 too.")


# ----------------------------------------------------------------------------- numerical_jacobian

# torch's own finite differences are the oracle here, and off-limits to the learner.
_NUMERICAL = tuple(f"torch.autograd.gradcheck.{name}" for name in (
    "_get_numerical_jacobian", "get_numerical_jacobian", "get_numerical_jacobian_wrt_specific_input",
    "_compute_numerical_gradient", "_get_numerical_jvp_fn", "_compute_numerical_jvps_wrt_specific_input",
))


def fd_functions(rng):
    """Smooth functions of one tensor (curved enough that forward differences and the exact
    Jacobian both differ from central differences at a large step)."""
    a = float(rng.uniform(0.5, 2.0))
    return [
        ("t.sin() * a + t ** 3", lambda t: t.sin() * a + t ** 3),
        ("(t ** 3).sum() (0-d output)", lambda t: (t ** 3).sum()),
        ("outer(t.exp(), t.cos()) (a bigger output)", lambda t: torch.outer(t.reshape(-1).exp(), t.reshape(-1).cos())),
        ("t.tanh().flip(0) * t.sum()", lambda t: t.tanh().flip(0) * t.sum() if t.dim() else t.tanh() * t),
    ]


def fd_inputs(rng):
    base = torch.randn(3, 4, dtype=torch.float64)
    return [
        ("a 0-d tensor", torch.tensor(float(rng.normal()), dtype=torch.float64)),
        ("a size-0 tensor (0, 3)", torch.zeros(0, 3, dtype=torch.float64)),
        ("a 1-D tensor", torch.randn(int(rng.integers(2, 6)), dtype=torch.float64)),
        ("a transposed (4, 3) view", base.t()),
        ("every other column of a (3, 8)", torch.randn(3, 8, dtype=torch.float64)[:, ::2]),
        ("a leaf that requires grad", torch.randn(int(rng.integers(2, 5)), dtype=torch.float64,
                                                  requires_grad=True)),
    ]


@pytest.mark.exercise("numerical_jacobian")
def test_numerical_jacobian_matches_torch(impl, rng):
    functions = fd_functions(rng)
    steps = boundary_draws(rng, 1e-5, 1e-2, at=(1e-6, 0.1), log=True)
    explain = "build the finite-difference Jacobian yourself: torch's is the reference here"
    for i, (label, x) in enumerate(fd_inputs(rng)):
        for j, (fname, f) in enumerate(functions):
            eps = steps[(i + j) % len(steps)]
            reference = x.detach().clone().requires_grad_()
            expected = _get_numerical_jacobian(
                f, (reference,), eps=eps)[0][0].T.contiguous()
            what = f"numerical_jacobian(f = {fname}, x = {label} {tuple(x.shape)}, eps={eps:.3g})"
            with forbid_callables(Rules(forbid=_NUMERICAL, explain=explain)):
                got = call("numerical_jacobian", impl.numerical_jacobian, f, x, eps)
            assert_close(
                got, expected, what, rtol=1e-6, atol=1e-8,
                hint="column j is (f(x + eps e_j) - f(x - eps e_j)) / (2 eps), flattened in "
                "row-major order; rows are outputs, columns inputs, shape (f(x).numel(), "
                "x.numel()). Central, not forward, differences — and not the exact Jacobian: "
                "at a large eps they differ.")
            if got.requires_grad:
                fail(f"{what}: the result requires grad (grad_fn="
                     f"{type(got.grad_fn).__name__}): it keeps a graph through f alive.\n  Try: "
                     "perturb a detached copy of x; a finite difference needs no autograd.")


# ----------------------------------------------------------------------------- first_explosion


class GainFn(torch.autograd.Function):
    """Multiplies by ``forward_gain`` in forward and by ``backward_gain`` in backward: a
    hand-written layer whose backward can disagree with its forward."""

    @staticmethod
    def forward(ctx, x, forward_gain, backward_gain):
        ctx.backward_gain = backward_gain
        return x * forward_gain

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.backward_gain, None, None


class Gain(nn.Module):
    def __init__(self, forward_gain: float = 1.0, backward_gain: float = 1.0):
        super().__init__()
        self.forward_gain, self.backward_gain = forward_gain, backward_gain

    def forward(self, x):
        return GainFn.apply(x, self.forward_gain, self.backward_gain)


class Swapped(nn.Module):
    """Registers ``early`` before ``late`` but runs ``late`` first."""

    def __init__(self, width: int):
        super().__init__()
        self.early = nn.Linear(width, width)
        self.late = nn.Linear(width, width)

    def forward(self, h):
        return self.early(torch.tanh(self.late(h)))


def explosion_model(rng, width: int):
    """Linear / Gain / Tanh blocks, one nested: leaf names '0', '1', ..., 'block.early'..."""
    layers: list[tuple[str, nn.Module]] = []
    for i in range(int(rng.integers(2, 4))):
        layers += [(f"lin{i}", nn.Linear(width, width)), (f"gain{i}", Gain()), (f"act{i}", nn.Tanh())]
    layers.insert(int(rng.integers(1, len(layers))), ("block", Swapped(width)))
    layers.append(("head", nn.Linear(width, width)))
    return nn.Sequential(OrderedDict(layers)).double()


def plant_explosion(rng, model, kind: str, threshold: float) -> None:
    leaves = {name: m for name, m in model.named_modules() if next(m.children(), None) is None}
    with torch.no_grad():
        if kind == "huge bias":
            name = str(rng.choice([n for n, m in leaves.items() if isinstance(m, nn.Linear)]))
            leaves[name].bias[int(rng.integers(0, leaves[name].out_features))] = 50 * threshold
        elif kind == "NaN weight":
            name = str(rng.choice([n for n, m in leaves.items() if isinstance(m, nn.Linear)]))
            leaves[name].weight[int(rng.integers(0, leaves[name].out_features)), 0] = math.nan
        elif kind == "both halves of a swapped block":
            model.block.early.bias[0] = 50 * threshold
            model.block.late.bias[0] = 50 * threshold
        elif kind == "huge backward gain":
            name = str(rng.choice([n for n, m in leaves.items() if isinstance(m, Gain)]))
            leaves[name].backward_gain = 1e6 * threshold
        elif kind == "NaN backward gain":
            name = str(rng.choice([n for n, m in leaves.items() if isinstance(m, Gain)]))
            leaves[name].backward_gain = math.nan
        elif kind == "two huge backward gains":
            for name in rng.choice([n for n, m in leaves.items() if isinstance(m, Gain)], 2, replace=False):
                leaves[str(name)].backward_gain = 1e6 * threshold


def explosion_oracle(model, x, upstream, threshold):
    def bad(t):
        return t is not None and bool((~t.isfinite()).any() or (t.abs() > threshold).any())

    fwd, bwd, handles = [], [], []
    for name, m in model.named_modules():
        if next(m.children(), None) is None:
            handles.append(m.register_forward_hook(
                lambda m, a, out, name=name: fwd.append(name) if bad(out) else None))
            handles.append(m.register_full_backward_hook(
                lambda m, gi, go, name=name: bwd.append(name) if bad(gi[0]) else None))
    out = model(x)
    if not fwd:
        torch.autograd.grad(out, x, upstream)
    for h in handles:
        h.remove()
    return ("forward", fwd[0]) if fwd else ("backward", bwd[0]) if bwd else None


def boundary_model(width: int, threshold: float, where: str):
    """Values that reach exactly the threshold and not beyond (greater than explodes, equal
    does not): on inputs of +-1, a Linear of weight threshold * I, or a backward gain of
    exactly the threshold."""
    lin = nn.Linear(width, width)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(width) * (threshold if where == "forward" else 1.0))
        lin.bias.zero_()
    gain = Gain() if where == "forward" else Gain(1.0, threshold)
    return nn.Sequential(lin, gain).double()


def explosion_cases(rng):
    kinds = ["huge bias", "NaN weight", "both halves of a swapped block", "huge backward gain",
             "NaN backward gain", "two huge backward gains", None, None]
    thresholds = boundary_draws(rng, 10.0, 1e4, at=(64.0,), log=True, draws=len(kinds) + 1)
    cases = [(kind or "clean control", kind, t) for kind, t in zip(kinds, thresholds, strict=False)]
    draw = [k for k in kinds][int(rng.integers(0, len(kinds)))]
    cases.append((f"random draw ({draw or 'clean'})", draw, thresholds[-1]))
    return cases


@pytest.mark.exercise("first_explosion")
def test_first_explosion_finds_the_planted_layer(impl, rng):
    width = int(rng.integers(3, 6))
    for label, kind, threshold in explosion_cases(rng):
        model = explosion_model(rng, width)
        if kind:
            plant_explosion(rng, model, kind, threshold)
        batch = int(rng.integers(3, 6))
        x = torch.randn(batch, width, dtype=torch.float64, requires_grad=True)
        upstream = torch.randn(batch, width, dtype=torch.float64)
        found = explosion_oracle(model, x, upstream, threshold)
        side = None if kind is None else "backward" if "backward" in kind else "forward"
        assert (found and found[0]) == side, (label, found)  # the builder's own sanity
        check_explosion(impl, model, x, upstream, threshold, label, found)


@pytest.mark.exercise("first_explosion")
def test_first_explosion_at_the_threshold(impl, rng):
    width = int(rng.integers(3, 6))
    for where in ("forward", "backward"):
        threshold = 64.0
        model = boundary_model(width, threshold, where)
        x = torch.randn(4, width, dtype=torch.float64).sign().requires_grad_()
        upstream = torch.ones(4, width, dtype=torch.float64)
        check_explosion(impl, model, x, upstream, threshold,
                        f"{where} values reach exactly the threshold")


def check_explosion(impl, model, x, upstream, threshold, label, expected="ask torch"):
    names = [n for n, m in model.named_modules() if next(m.children(), None) is None]
    if expected == "ask torch":
        expected = explosion_oracle(model, x, upstream, threshold)
    got = call("first_explosion", impl.first_explosion, model, x, upstream, threshold)
    what = (f"first_explosion(model with leaf modules {names}, x, upstream, threshold={threshold:g}) "
            f"[{label}]")
    no_hooks_left(model, what)
    if got is not None:
        assert_exact_type(got, ("forward", "0"), what, hint="return a tuple of two str, or None")
    if got != expected:
        hints = {
            None: "nothing explodes here: no element is above the threshold (equal is not "
                  "above) and none is NaN or inf. Return None.",
            "forward": "forward hooks fire in the order modules RUN (which is not always the "
                       "order they were registered in); the first whose output has a "
                       "non-finite element or one above the threshold is the answer. NaN "
                       "compares False with everything: test isfinite too.",
            "backward": "full backward hooks fire in the order backward reaches the modules, "
                        "output side first; test grad_input[0] (the gradient a module sends "
                        "back towards x), not grad_output, and count NaN. An explosion spreads "
                        "to every module backward reaches after it: the first one is the source.",
        }
        fail(f"{what}:\n  expected {expected!r}\n  got      {got!r}\n"
             f"  Try: {hints[expected[0] if expected else None]}")


# ----------------------------------------------------------------------------- wrong_gradients

# Each input's share of out = sum_i c_i * h_i(x_i) * x_{i+1}: h and its derivative.
H = {"sin": (torch.sin, torch.cos), "tanh": (torch.tanh, lambda t: 1 - t.tanh() ** 2),
     "exp": (torch.exp, torch.exp), "square": (lambda t: t * t, lambda t: 2 * t)}
BUGS = {
    "doubled": lambda g, mine, other: 2 * g * (mine + other),
    "wrong sign": lambda g, mine, other: -g * (mine + other),
    "half the product rule": lambda g, mine, other: g * mine,
    "ignores grad_output": lambda g, mine, other: mine + other,
    "transposed": lambda g, mine, other: (g * (mine + other)).mT.contiguous(),
    "None": lambda g, mine, other: None,
}


def make_function(rng, k: int, bugs: dict[int, str]) -> type[torch.autograd.Function]:
    """A Function of k same-shaped inputs whose backward is right except for ``bugs``."""
    hs = [str(h) for h in rng.choice(list(H), size=k)]
    cs = [float(c) for c in rng.uniform(0.5, 2.0, size=k)]

    def forward(ctx, *xs):
        ctx.save_for_backward(*xs)
        return sum(cs[i] * H[hs[i]][0](xs[i]) * xs[(i + 1) % k] for i in range(k))

    def backward(ctx, g):
        xs = ctx.saved_tensors
        grads = []
        for j in range(k):
            prev = (j - 1) % k
            mine = cs[j] * H[hs[j]][1](xs[j]) * xs[(j + 1) % k]
            other = cs[prev] * H[hs[prev]][0](xs[prev])
            grads.append(BUGS[bugs[j]](g, mine, other) if j in bugs else g * (mine + other))
        return tuple(grads)

    return type("HandWritten", (torch.autograd.Function,),
                {"forward": staticmethod(forward), "backward": staticmethod(backward)})


def gradcheck_oracle(fn, inputs) -> list[int]:
    wrong = []
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        others = [u.detach() for u in inputs]

        def only(v, i=i, others=others):
            return fn.apply(*others[:i], v, *others[i + 1:])

        try:
            ok = torch.autograd.gradcheck(only, (t.detach().clone().requires_grad_(),),
                                          raise_exception=False)
        except RuntimeError:
            ok = False
        if not ok:
            wrong.append(i)
    return wrong


def gradient_cases(rng):
    """(label, k, bugs, index of an input that does not require grad or None)."""
    def some(k, n):
        return [int(i) for i in rng.choice(k, size=n, replace=False)]

    kinds = list(BUGS)
    cases = [(f"one bug: {kind}", 3, {some(3, 1)[0]: kind}, None) for kind in kinds]
    two = some(4, 2)
    cases += [
        ("two bugs", 4, {two[0]: "wrong sign", two[1]: "half the product rule"}, None),
        ("a buggy input that does not require grad", 3, {0: "doubled", 2: "wrong sign"}, 0),
        ("clean control", 3, {}, None),
        ("clean control, one input without grad", 2, {}, 1),
        ("one input, its backward doubled", 1, {0: "doubled"}, None),
    ]
    k = int(rng.integers(1, 5))
    bugs = {i: str(rng.choice(kinds)) for i in some(k, int(rng.integers(0, k + 1)))}
    cases.append(("random draw", k, bugs, None))
    return cases


@pytest.mark.exercise("wrong_gradients")
def test_wrong_gradients_finds_the_planted_inputs(impl, rng):
    for label, k, bugs, frozen in gradient_cases(rng):
        rows, cols = (int(v) for v in rng.choice(range(2, 5), size=2, replace=False))
        fn = make_function(rng, k, bugs)
        inputs = tuple(torch.randn(rows, cols, dtype=torch.float64).requires_grad_(i != frozen)
                       for i in range(k))
        expected = sorted(i for i in bugs if i != frozen)
        got = call("wrong_gradients", impl.wrong_gradients, fn, inputs)
        planted = ", ".join(f"input {i}: {b}" for i, b in sorted(bugs.items())) or "none"
        what = (f"wrong_gradients(fn, {k} inputs of shape ({rows}, {cols})"
                f"{'' if frozen is None else f', input {frozen} without requires_grad'}) "
                f"[{label}; planted: {planted}]")
        if not isinstance(got, list):
            fail(f"{what}: returned {describe(got)}; expected a sorted list of int indices.")
        assert_exact_type(got, [0] * len(got), what, hint="a list of Python ints")
        if got != expected:
            assert gradcheck_oracle(fn, inputs) == expected, label  # torch agrees with the plant
            fail(f"{what}:\n  expected {expected}\n  got      {got}\n  Try: judge every "
                 "input that requires grad on its own — gradcheck stops at the first mismatch "
                 "it meets, so one call over all inputs names one culprit at most; a gradient "
                 "of the wrong shape makes backward raise (count that input as wrong); never "
                 "report an input that does not require grad.")


# ----------------------------------------------------------------------------- mixes_samples


def mse_bug(p, t):
    return ((p - t) ** 2).mean()


def mse_ok(p, t):
    return ((p.reshape(-1) - t.reshape(-1)) ** 2).mean()


def l1_bug(p, t):
    return (p - t).abs().mean()


def l1_ok(p, t):
    return (p.reshape(t.shape) - t).abs().mean()


def bce_bug(p, t):
    return (F.softplus(p) - p * t).mean()


def bce_ok(p, t):
    return F.binary_cross_entropy_with_logits(p.reshape(-1), t.reshape(-1).to(p.dtype))


def ce_weighted_ok(logits, t):
    """Cross-entropy written by hand with per-class weights: legitimate broadcasts of a (C,)
    and an (N, 1) tensor against (N, C). Nothing mixes."""
    weights = torch.linspace(0.5, 1.5, logits.shape[1], dtype=logits.dtype)
    logp = (logits - logits.logsumexp(dim=1, keepdim=True)) * weights
    return -logp.gather(1, t[:, None]).mean()


def ce_index_bug(logits, t):
    """logp[:, t] picks every sample's log-prob of every sample's class: an (N, N) table."""
    return -(logits - logits.logsumexp(dim=1, keepdim=True))[:, t].mean()


def loss_cases(rng):
    n = int(rng.integers(4, 8))

    def reg(shape, near=None):
        """Predictions, or targets near them (every pair farther apart than each sample's own
        pair: an L1 loss over all pairs only equals the per-sample one when every prediction
        lies on the same side of every target)."""
        if near is None:
            return torch.randn(shape, dtype=torch.float64)
        return near.detach().reshape(shape) + 0.1 * torch.randn(shape, dtype=torch.float64)

    labels = torch.as_tensor(rng.permutation(n) % 2, dtype=torch.float64)  # both 0 and 1
    classes = int(rng.integers(3, 6))
    ce_target = torch.as_tensor(rng.permutation(n) % classes)
    return [
        ("MSE, pred (N,) against target (N, 1), no reshape", mse_bug, reg(n), reg((n, 1)), True),
        ("MSE, pred (N, 1) against target (N,), no reshape", mse_bug, reg((n, 1)), reg(n), True),
        ("MSE, reshaped: right", mse_ok, reg(n), reg((n, 1)), False),
        ("MSE without reshape, shapes equal (N, 1): right", mse_bug, reg((n, 1)), reg((n, 1)), False),
        ("L1, (N,) against (N, 1)", l1_bug, (p := reg(n)), reg((n, 1), p), True),
        ("L1, reshaped: right", l1_ok, (p := reg(n)), reg((n, 1), p), False),
        ("BCE with logits, (N,) against labels (N, 1)", bce_bug, reg(n), labels[:, None], True),
        ("BCE with logits, reshaped: right", bce_ok, reg((n, 1)), labels, False),
        ("cross-entropy with class weights (legit broadcasts): right", ce_weighted_ok,
         reg((n, classes)), ce_target, False),
        ("cross-entropy indexing logp[:, target]", ce_index_bug, reg((n, classes)), ce_target, True),
        ("one sample, (1,) against (1, 1): nothing to mix", mse_bug, reg(1), reg((1, 1)), False),
        ("random draw: MSE, (N,) against (N, 1)", mse_bug, reg(int(rng.integers(2, 9))), None, True),
    ]


@pytest.mark.exercise("mixes_samples")
def test_mixes_samples_matches_the_planted_bug(impl, rng):
    for label, loss_fn, pred, target, planted in loss_cases(rng):
        if target is None:
            target = torch.randn(pred.shape[0], 1, dtype=torch.float64)
        pred = pred.requires_grad_()
        with torch.no_grad():
            whole = loss_fn(pred, target)
            alone = torch.stack([loss_fn(pred[i:i + 1], target[i:i + 1]).reshape(())
                                 for i in range(pred.shape[0])]).mean()
        assert bool(not torch.allclose(whole, alone)) == planted, label  # the builder's sanity
        got = call("mixes_samples", impl.mixes_samples, loss_fn, pred, target)
        what = (f"mixes_samples({loss_fn.__name__}, pred {tuple(pred.shape)}, target "
                f"{tuple(target.shape)}) [{label}]")
        if type(got) is not bool:
            fail(f"{what}: returned {describe(got)}; expected a bool.")
        if got != planted:
            hint = ("this loss is right: shapes that differ, or broadcasts inside the loss, are "
                    "not a bug by themselves — judge what the loss computes, not how its inputs "
                    "look." if not planted else
                    "this loss averages over every (prediction, target) pair, not over samples. "
                    "A batch of one sample cannot mix: compare the batch's loss with the mean "
                    "of each sample's loss alone.")
            fail(f"{what}:\n  expected {planted}\n  got      {got}\n  Try: {hint}")

