"""Hidden checks for the kata modules. torch's own modules and nn.init are the oracle.

Registration is judged through torch's views of a module: named_parameters, named_buffers,
named_children, the exact state_dict keys (a non-persistent buffer absent), a strict
load_state_dict round trip, and what .to(dtype) converts (floating buffers yes, an int64
counter no). train() vs eval() is judged on dropout statistics and masks and on batch norm
against nn.BatchNorm1d step by step (outputs, running statistics, gradients). Kaiming and
Xavier initialisations are judged on many draws of non-square weights whose fan_in and
fan_out differ several-fold, so a wrong fan or gain cannot meet the variance tolerance, and
on the shape of the distribution (normal vs uniform).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from checker.contracts import uses_global_rng
from checker.helpers import (
    as_tensor_result,
    assert_close,
    assert_equal,
    describe,
    expect_raises,
    fail,
    learner_caller,
    random_shape,
)

pytestmark = pytest.mark.kata("modules")

uses_global_rng("kaiming_normal_")  # initialisations draw from torch's global generator
uses_global_rng("xavier_uniform_")


# ----------------------------------------------------------------------------- helpers


call = learner_caller("build it from tensors, nn.Parameter, register_buffer and tensor ops "
                      "(normal_, uniform_, rand_like, mean, var).")


def build(impl, what, cls_name, *args, **kwargs):
    """Construct one of the learner's classes under the kata's rules."""
    cls = getattr(impl, cls_name)
    with impl.rules():
        module = call(what, cls, *args, **kwargs)
    if not isinstance(module, nn.Module):
        fail(f"{what}: expected an nn.Module, got {describe(module)}.")
    return module


def run(impl, what, module, *args):
    """Call a learner module's forward under the kata's rules."""
    with impl.rules():
        out = call(what, module, *args)
    return as_tensor_result(out, what)


def names_and_shapes(items):
    return [(name, tuple(t.shape)) for name, t in items]


# ----------------------------------------------------------------------------- Block


def block_sizes(rng):
    return random_shape(rng, 2, 3, 9)


def block_reference(block, x):
    """What Block.forward must compute, from the block's own tensors."""
    h = x @ block.weight.detach().T + block.bias.detach()
    norm = block.norm
    h = F.layer_norm(h, norm.normalized_shape, norm.weight.detach(), norm.bias.detach(), norm.eps)
    return h * block.scale + block.offsets


@pytest.mark.exercise("Block")
def test_block_registers_parameters_buffers_and_submodule(impl, rng):
    fan_in, out = block_sizes(rng)
    what = f"Block({fan_in}, {out})"
    b = build(impl, what, "Block", fan_in, out)
    assert_equal(
        names_and_shapes(b.named_parameters()),
        [("weight", (out, fan_in)), ("bias", (out,)), ("norm.weight", (out,)),
         ("norm.bias", (out,))],
        f"{what}: named_parameters() (name, shape)",
        hint="assign nn.Parameter(...) to self.weight / self.bias (in that order) and an "
        "nn.LayerNorm to self.norm; a buffer or a plain tensor is not a parameter, and a module "
        "kept in a Python list is invisible.")
    for name, p in b.named_parameters():
        if type(p) is not nn.Parameter:
            fail(f"{what}: parameter {name!r} is {describe(p)}, not an nn.Parameter.")
    assert_equal(
        [(n, tuple(t.shape), str(t.dtype)) for n, t in b.named_buffers()],
        [("scale", (out,), "torch.float32"), ("calls", (), "torch.int64"),
         ("offsets", (out,), "torch.float32")],
        f"{what}: named_buffers() (name, shape, dtype)",
        hint="self.register_buffer('scale', torch.ones(out)), then 'calls' (torch.tensor(0)), "
        "then 'offsets' with persistent=False; a tensor assigned as a plain attribute is not a "
        "buffer: it is neither saved nor moved by .to().")
    assert_equal([(n, type(m).__name__) for n, m in b.named_children()], [("norm", "LayerNorm")],
                 f"{what}: named_children()")
    assert_close(b.scale, torch.ones(out), f"{what}: the buffer 'scale'")
    assert_close(b.offsets, torch.linspace(-1.0, 1.0, out), f"{what}: the buffer 'offsets'")
    assert_equal(int(b.calls), 0, f"{what}: the buffer 'calls' before any forward")
    assert_close(b.bias.detach(), torch.zeros(out), f"{what}: the parameter 'bias'",
                 hint="the bias starts at zeros.")
    n_params = sum(p.numel() for p in b.parameters())
    assert_equal(n_params, out * fan_in + 3 * out, f"{what}: the number of parameter elements")


@pytest.mark.exercise("Block")
def test_block_weight_scale(impl, rng):
    # Many weights of a wide layer: randn / sqrt(in) has variance 1 / in; a missing or wrong
    # scale (1, 1 / in, 1 / sqrt(out)) is off by a factor of 2 or more.
    fan_in, out = (int(v) for v in rng.permutation([96, 160]))
    what = f"Block({fan_in}, {out})"
    weights = [build(impl, what, "Block", fan_in, out).weight.detach() for _ in range(4)]
    values = torch.cat([w.reshape(-1) for w in weights]).double()
    ratio = float(values.var()) * fan_in
    if abs(ratio - 1) > 0.08:
        fail(f"{what}: the variance of the weight's entries is {float(values.var()):.4g} over "
             f"{values.numel()} entries (4 blocks); torch.randn(out, in) / sqrt(in) has "
             f"{1 / fan_in:.4g} (off by a factor of {ratio:.3g}).\n"
             "  Try: nn.Parameter(torch.randn(out_features, in_features) / "
             "math.sqrt(in_features)).")
    if abs(float(values.mean())) > 6 / math.sqrt(fan_in * values.numel()):
        fail(f"{what}: the weight's entries have mean {float(values.mean()):.4g}; expected 0.")
    if torch.equal(weights[0], weights[1]):
        fail(f"{what}: two Blocks got the same weight; draw it from torch's generator "
             "(torch.randn) in __init__.")


@pytest.mark.exercise("Block")
def test_block_state_dict_keys_and_strict_round_trip(impl, rng):
    fan_in, out = block_sizes(rng)
    what = f"Block({fan_in}, {out})"
    a = build(impl, what, "Block", fan_in, out)
    assert_equal(list(a.state_dict()), ["weight", "bias", "scale", "calls", "norm.weight",
                                        "norm.bias"],
                 f"{what}: the keys of state_dict(), in order",
                 hint="parameters first, then persistent buffers, then each submodule's keys "
                 "under its name; 'offsets' is registered with persistent=False, so it is not "
                 "saved.")
    with torch.no_grad():
        for t in [*a.parameters(), a.scale]:
            t.copy_(torch.randn(t.shape))
        a.calls.fill_(int(rng.integers(3, 30)))
    b = build(impl, what, "Block", fan_in, out)
    try:
        b.load_state_dict(a.state_dict(), strict=True)
    except RuntimeError as exc:
        fail(f"{what}: loading one Block's state_dict into another with strict=True failed:\n"
             f"  {exc}")
    x = torch.randn(int(rng.integers(2, 6)), fan_in)
    a.eval()
    b.eval()
    expected = run(impl, f"{what}.eval()(x)", a, x)
    got = run(impl, f"{what}.eval()(x) after load_state_dict", b, x)
    assert_close(got, expected, f"{what}: the output of a Block loaded from another's "
                 "state_dict (strict=True), in eval mode",
                 hint="everything forward uses must be a parameter, a persistent buffer, or "
                 "derived data rebuilt in __init__ (like offsets).")
    assert_equal(int(b.calls), int(a.calls), f"{what}: 'calls' after the round trip",
                 hint="a persistent buffer travels with the state_dict.")


@pytest.mark.exercise("Block")
def test_block_buffers_follow_to_dtype(impl, rng):
    fan_in, out = block_sizes(rng)
    what = f"Block({fan_in}, {out}).to(torch.float64)"
    b = build(impl, f"Block({fan_in}, {out})", "Block", fan_in, out)
    b.to(torch.float64)
    got = {name: str(t.dtype) for name, t in [*b.named_parameters(), *b.named_buffers()]}
    expected = {name: "torch.float64" for name in ("weight", "bias", "norm.weight", "norm.bias",
                                                   "scale", "offsets")}
    expected["calls"] = "torch.int64"
    assert_equal(sorted(got.items()), sorted(expected.items()),
                 f"{what}: the dtype of every parameter and buffer",
                 hint=".to(dtype) converts floating-point parameters AND buffers (registered "
                 "ones only) and leaves integer buffers like 'calls' alone.")
    b.eval()
    x = torch.randn(int(rng.integers(2, 6)), fan_in, dtype=torch.float64)
    expected_out = block_reference(b, x)
    got_out = run(impl, f"{what} in eval mode, forward(x float64)", b, x)
    assert_close(got_out, expected_out, f"{what}: forward of a float64 input",
                 hint="norm(x @ weight.T + bias) * scale + offsets.")


@pytest.mark.exercise("Block")
def test_block_counts_training_calls_only(impl, rng):
    fan_in, out = block_sizes(rng)
    what = f"Block({fan_in}, {out})"
    b = build(impl, what, "Block", fan_in, out)
    with torch.no_grad():
        b.scale.copy_(torch.rand(out) + 0.5)
        b.bias.copy_(torch.randn(out))
    x = torch.randn(int(rng.integers(2, 6)), fan_in)
    n_train = int(rng.integers(1, 4))
    calls = b.calls
    for _ in range(n_train):
        got = run(impl, f"{what}(x) in training mode", b, x)
    if b.calls is not calls or int(calls) != n_train:
        fail(f"{what}: after {n_train} training forwards 'calls' is {describe(b.calls)}, a "
             "new tensor: the registered buffer was rebound, not updated, so anything "
             "holding it (a state_dict taken with keep_vars=True, a hook) no longer sees "
             "the count.\n  Try: self.calls += 1 (in place) instead of "
             "self.calls = self.calls + 1.")
    assert_close(got, block_reference(b, x), f"{what}(x) in training mode")
    b.eval()
    run(impl, f"{what}.eval()(x)", b, x)
    assert_equal(int(b.calls), n_train,
                 f"{what}: 'calls' after {n_train} training forwards and 1 in eval mode",
                 hint="count only when self.training is True (train()/eval() set it on every "
                 "submodule).")
    b.train()
    run(impl, f"{what}.train()(x)", b, x)
    assert_equal(int(b.calls), n_train + 1, f"{what}: 'calls' after train() and one more forward")
    if b.calls.dim() != 0 or b.calls.dtype != torch.int64:
        fail(f"{what}: 'calls' became {describe(b.calls)}; keep it a 0-dim int64 buffer "
             "(self.calls += 1 updates it in place).")


# ----------------------------------------------------------------------------- freeze_


class Net(nn.Module):
    """Names that tempt mistakes: encoder vs encoder2, a tied head, buffers in norm."""

    def __init__(self, vocab: int, dim: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.encoder2 = nn.Linear(dim, dim)
        self.norm = nn.BatchNorm1d(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied: one tensor, two names


def expected_freeze(model: nn.Module, prefixes: list[str]) -> set[int]:
    """ids of the parameters that must be frozen: torch's submodule / parameter lookup."""
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    for pre in prefixes:
        try:
            params = list(model.get_submodule(pre).parameters())
        except AttributeError:
            params = [model.get_parameter(pre)]
        frozen |= {id(p) for p in params}
    return frozen


def nested(dim: int, hidden: int) -> nn.Module:
    """Names that repeat at several depths: "1.weight" beside "0.1.weight" and "2.1.bias"."""
    return nn.Sequential(
        nn.Sequential(nn.Linear(dim, hidden), nn.Linear(hidden, dim)),
        nn.Linear(dim, dim, bias=False),
        nn.Sequential(nn.Linear(dim, hidden), nn.Linear(hidden, hidden + 1)),
    )


def judge_freeze(impl, model: nn.Module, described: str, prefixes: list[str],
                 pre_frozen: str) -> None:
    model.get_parameter(pre_frozen).requires_grad_(False)
    ids = expected_freeze(model, prefixes)
    before = dict(model.named_parameters(remove_duplicate=False))
    buffers = {n: t.clone() for n, t in model.named_buffers()}
    expected = (sum(p.numel() for p in model.parameters() if id(p) not in ids),
                sum(p.numel() for p in model.parameters() if id(p) in ids))
    what = f"freeze_(model, {prefixes}) on {described}; {pre_frozen!r} frozen before"
    got = call(what, impl.freeze_, model, prefixes)
    for name, p in model.named_parameters(remove_duplicate=False):
        if before[name] is not p:
            fail(f"{what}: parameter {name!r} was replaced by a new object; freeze the "
                 "existing nn.Parameter in place with requires_grad_(False) (optimisers "
                 "hold references to it).")
    states = {name: p.requires_grad for name, p in model.named_parameters(remove_duplicate=False)}
    want = {name: id(p) not in ids for name, p in before.items()}
    assert_equal(sorted(states.items()), sorted(want.items()),
                 f"{what}: requires_grad of every parameter name (name, requires_grad)",
                 hint="a prefix matches a name equal to it or starting with prefix + '.' "
                 "(from the start of the name: '1' is not '0.1'); tied weights appear under "
                 "both names only with named_parameters(remove_duplicate=False); leave "
                 "parameters that were already frozen frozen.")
    for name, t in model.named_buffers():
        if not torch.equal(t, buffers[name]):
            fail(f"{what}: the buffer {name!r} changed; freezing touches parameters only.")
    if type(got) is not tuple:
        fail(f"{what}: returned {describe(got)}; return a tuple (trainable, frozen).")
    assert_equal(got, expected, f"{what}: the returned (trainable, frozen) counts",
                 hint="count numel() of each parameter tensor once (model.parameters() "
                 "already skips the tied duplicate); buffers are not parameters.")


@pytest.mark.exercise("freeze_")
def test_freeze_matches_torchs_lookup(impl, rng):
    vocab, dim, hidden = random_shape(rng, 3, 3, 9)
    cases = [["encoder"], ["head"], ["encoder.2.bias", "norm"], ["encoder.0", "encoder2"], []]
    for k, prefixes in enumerate(cases):
        judge_freeze(impl, Net(vocab, dim, hidden),
                     "a model with embed, encoder (Sequential), encoder2, norm and a head tied "
                     "to embed.weight", prefixes,
                     ("encoder2.bias", "encoder.2.weight")[k % 2])


@pytest.mark.exercise("freeze_")
def test_freeze_matches_from_the_start_of_names(impl, rng):
    dim, hidden = random_shape(rng, 2, 3, 9)
    described = "Sequential(Sequential(Linear, Linear), Linear, Sequential(Linear, Linear))"
    for k, prefixes in enumerate([["1"], ["0.1", "2.1.bias"], ["1.weight"], ["2"], ["0"]]):
        judge_freeze(impl, nested(dim, hidden), described, prefixes,
                     ("0.0.bias", "2.0.weight")[k % 2])


# ----------------------------------------------------------------------------- Dropout


def drop_probability(rng) -> float:
    """p in [0.2, 0.42] or [0.58, 0.75]: never 0.5, where drop and keep probabilities agree."""
    low, high = (0.2, 0.42) if rng.random() < 0.5 else (0.58, 0.75)
    return round(float(rng.uniform(low, high)), 3)


@pytest.mark.exercise("Dropout")
def test_dropout_training_mask_and_scale(impl, rng):
    p = drop_probability(rng)
    what = f"Dropout({p}) in training mode"
    d = build(impl, f"Dropout({p})", "Dropout", p)
    if list(d.parameters()) or list(d.buffers()):
        fail(f"Dropout({p}): it should own no parameters and no buffers.")
    x = torch.randn(160, 125, dtype=torch.float64)
    x = torch.where(x.abs() < 1e-3, torch.full_like(x, 0.5), x)  # no zeros in the input
    out = guarded_run(impl, f"{what}(x)", d, x)
    assert_equal(tuple(out.shape), tuple(x.shape), f"{what}: output shape")
    dropped = out == 0
    kept_err = (out - x / (1 - p)).abs().masked_fill(dropped, 0).max()
    if float(kept_err) > 1e-9:
        i = int((out - x / (1 - p)).abs().masked_fill(dropped, 0).argmax())
        fail(f"{what}: a kept element must be x / (1 - p) = x * {1 / (1 - p):.6g}; at flat index "
             f"{i}, x = {float(x.view(-1)[i]):.6g} gave {float(out.view(-1)[i]):.6g}.\n"
             "  Try: scale the survivors by 1 / (1 - p) in training, so that E[output] = x and "
             "eval mode can return x unchanged.")
    for axis, label in ((1, "row"), (0, "column")):
        per_line = dropped.double().mean(axis)
        if bool(((per_line == 0) | (per_line == 1)).any()):
            fail(f"{what}: on a (160, 125) input some {label} was dropped or kept as a whole; "
                 "each ELEMENT must be dropped independently.\n"
                 "  Try: a mask of x's full shape, torch.rand_like(x) >= p.")
    rate = float(dropped.double().mean())
    if abs(rate - p) > 0.03:
        fail(f"{what}: {rate:.3f} of the elements were zeroed; expected about p = {p} "
             "(each one independently with probability p).\n"
             "  Try: keep = torch.rand_like(x) >= p drops with probability p (p is the DROP "
             "probability, not the keep probability).")
    default = build(impl, "Dropout()", "Dropout")
    rate = float((run(impl, "Dropout()(x) in training mode", default, x) == 0).double().mean())
    if abs(rate - 0.5) > 0.03:
        fail(f"Dropout() in training mode zeroed {rate:.3f} of the elements; the default p is "
             "0.5.")
    out2 = run(impl, f"{what}(x), a second call", d, x)
    if torch.equal(out2 == 0, dropped):
        fail(f"{what}: two calls dropped exactly the same elements; draw a fresh mask on every "
             "forward (torch.rand_like(x) inside forward).")
    other = build(impl, f"Dropout({p})", "Dropout", p)
    if torch.equal(run(impl, f"a second Dropout({p})(x)", other, x) == 0, out2 == 0):
        fail(f"{what}: two Dropout layers, called one after the other, dropped exactly the same "
             "elements; each call must draw its mask from torch's global generator, which "
             "moves on after every draw (no generator of your own, seeded alike per layer).")
    seed = int(rng.integers(1 << 30))
    masks = []
    for _ in range(2):
        torch.manual_seed(seed)
        masks.append(run(impl, f"torch.manual_seed({seed}); {what}(x)", d, x) == 0)
    if not torch.equal(*masks):
        fail(f"{what}: after torch.manual_seed({seed}) twice, the two calls dropped different "
             "elements; the mask must come from torch's global generator "
             "(torch.rand_like(x)), so that seeding it makes a run reproducible.")


def guarded_run(impl, what, module, x):
    """Call a Dropout on ``x`` and fail if it wrote into ``x`` (the caller's tensor)."""
    before = x.clone()
    out = run(impl, what, module, x)
    if not torch.equal(x, before):
        fail(f"{what}: your forward changed its input x in place; nn.Dropout (inplace=False) "
             "returns a new tensor and leaves the caller's x alone.\n"
             "  Try: x * mask / (1 - p) instead of x.mul_(...).")
    return out


@pytest.mark.exercise("Dropout")
def test_dropout_eval_is_identity_and_edges(impl, rng):
    p = drop_probability(rng)
    d = build(impl, f"Dropout({p})", "Dropout", p)
    x = torch.randn(*random_shape(rng, 3, 2, 7), dtype=torch.float64)
    d.eval()
    got = run(impl, f"Dropout({p}).eval()(x)", d, x)
    assert_close(got, x, f"Dropout({p}) in eval mode",
                 hint="eval() sets self.training = False on the module: return x unchanged "
                 "(no mask, no scaling).")
    d.train()
    big = torch.randn(40, 50, dtype=torch.float64)
    got = run(impl, f"Dropout({p}).eval().train()(x)", d, big)
    if bool((got == 0).sum() == 0):
        fail(f"Dropout({p}) after .eval() then .train(): nothing was dropped; read "
             "self.training in forward instead of a flag of your own.")
    for edge, factor in ((0.0, 1.0), (1.0, 0.0)):
        d = build(impl, f"Dropout({edge})", "Dropout", edge)
        leaf = x.clone().requires_grad_(True)
        what = f"Dropout({edge})(x requiring grad) in training mode"
        got = guarded_run(impl, what, d, leaf)
        assert_close(got, x * factor, what,
                     hint="p = 0 keeps everything; p = 1 drops everything — and 0 * (1/0) is "
                     "nan, so handle p = 1 without dividing by 1 - p.")
        if got.grad_fn is None and got is not leaf:
            fail(f"{what}: the output is cut from the graph (no grad_fn), so a loss built on "
                 "it cannot backpropagate to x.\n  Try: x * 0 (or x * mask) keeps the graph; "
                 "torch.zeros_like(x) and x.detach() do not.")
        upstream = torch.randn(x.shape, dtype=torch.float64)
        (grad,) = torch.autograd.grad((got * upstream).sum(), leaf)
        assert_close(grad, upstream * factor, f"{what}: the gradient w.r.t. x")
    for bad in (-0.1, 1.5):
        expect_raises(ValueError, lambda bad=bad: build(impl, f"Dropout({bad})", "Dropout", bad),
                      f"Dropout({bad})", hint="a probability must lie in [0, 1].")


@pytest.mark.exercise("Dropout")
def test_dropout_gradient(impl, rng):
    p = drop_probability(rng)
    d = build(impl, f"Dropout({p})", "Dropout", p)
    x = torch.randn(*random_shape(rng, 2, 20, 40), dtype=torch.float64, requires_grad=True)
    out = run(impl, f"Dropout({p})(x) in training mode", d, x)
    if out.grad_fn is None:
        fail(f"Dropout({p})(x): the output has no grad_fn; autograd cannot reach x.")
    upstream = torch.randn(out.shape, dtype=torch.float64)
    (grad,) = torch.autograd.grad((out * upstream).sum(), x)
    mask = (out.detach() != 0).double()
    assert_close(grad, upstream * mask / (1 - p),
                 f"the gradient of Dropout({p}) (random upstream gradient)",
                 hint="the gradient is the same mask and scale as the forward: "
                 "upstream * mask / (1 - p).")


# ----------------------------------------------------------------------------- init


INIT_SHAPES = [(12, 700), (700, 12), (6, 80, 3, 5), (5, 90, 4)]  # fans differ 58x, 16/3x, 18x


def expected_fans(shape):
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def draws(impl, fn_name, shape, what, n_draws, **kwargs):
    """Run the learner's init ``n_draws`` times on fresh Parameters; all values, flattened."""
    values = []
    getattr(impl, fn_name)  # a missing name fails with the proxy's message
    fn = getattr(impl.module, fn_name)
    weights = [nn.Parameter(torch.empty(shape, dtype=torch.float64).fill_(float("nan")))
               for _ in range(n_draws)]
    with impl.rules():
        results = [call(what, fn, w, **kwargs) for w in weights]
    for w, got in zip(weights, results, strict=True):
        if got is not w:
            fail(f"{what}: returned {describe(got)}; fill the given tensor in place and return "
                 "that very tensor (as nn.init does).")
        if not w.is_leaf or w.grad_fn is not None or not w.requires_grad:
            fail(f"{what}: the weight is no longer a leaf that requires grad; fill it under "
                 "torch.no_grad().")
        if bool(torch.isnan(w).any()):
            fail(f"{what}: some entries were not filled (still nan).")
        values.append(w.detach().reshape(-1))
    return torch.cat(values)


def check_std(values, std, what, hint):
    got_var = float(values.var())
    ratio = got_var / std**2
    if abs(ratio - 1) > 0.06:
        fail(f"{what}: the variance over {values.numel()} draws is {got_var:.4g}; expected "
             f"{std**2:.4g} (std {std:.4g}) — off by a factor of {ratio:.3g}.\n  Try: {hint}")
    mean = float(values.mean())
    if abs(mean) > 6 * std / math.sqrt(values.numel()):
        fail(f"{what}: the mean over {values.numel()} draws is {mean:.4g}; expected 0.")


@pytest.mark.exercise("kaiming_normal_")
def test_kaiming_normal_variance_matches_fans_and_gain(impl, rng):
    # Every run sees both modes, each nonlinearity, and the defaults (a=0, fan_in, leaky_relu).
    modes = ["fan_in", "fan_out", "fan_in", "fan_out"]
    nonlinearities = [str(v) for v in rng.permutation(["relu", "leaky_relu", "linear", "tanh"])]
    cases = [(shape, str(mode), nonlinearity) for shape, mode, nonlinearity in
             zip(INIT_SHAPES, rng.permutation(modes), nonlinearities, strict=True)]
    for shape, mode, nonlinearity in [*cases, (INIT_SHAPES[0], None, None)]:
        if mode is None:  # every argument left at its default
            fan_in, fan_out = expected_fans(shape)
            std = math.sqrt(2.0 / fan_in)
            what = (f"kaiming_normal_(weight {shape}) with the default a=0, mode='fan_in', "
                    f"nonlinearity='leaky_relu'  [fan_in={fan_in}]")
            check_std(draws(impl, "kaiming_normal_", shape, what, 4), std, what,
                      "the defaults are a=0.0, mode='fan_in', nonlinearity='leaky_relu': "
                      "gain sqrt(2 / (1 + 0**2)) = sqrt(2).")
            continue
        a = round(float(rng.uniform(0.5, 2.5)), 3) if nonlinearity == "leaky_relu" else 0.0
        fan_in, fan_out = expected_fans(shape)
        gain = nn.init.calculate_gain(nonlinearity, a)
        std = gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)
        what = (f"kaiming_normal_(weight {shape}, a={a}, mode={mode!r}, "
                f"nonlinearity={nonlinearity!r})  [fan_in={fan_in}, fan_out={fan_out}]")
        values = draws(impl, "kaiming_normal_", shape, what, 4, a=a, mode=mode,
                       nonlinearity=nonlinearity)
        check_std(values, std, what,
                  "std = gain / sqrt(fan): fan_in = size(1) * receptive field, fan_out = "
                  "size(0) * receptive field (receptive = prod of the sizes after dim 1); "
                  "gain: relu sqrt(2), leaky_relu sqrt(2 / (1 + a**2)), tanh 5/3, linear 1.")
        tail = float((values.abs() > 2 * std).double().mean())
        if not 0.035 < tail < 0.057:
            fail(f"{what}: {tail:.2%} of the values lie beyond 2 std; a normal distribution "
                 "puts 4.55% there (a uniform one none).\n  Try: tensor.normal_(0, std).")


@pytest.mark.exercise("kaiming_normal_")
def test_kaiming_normal_rejects_vectors(impl, rng):
    w = torch.empty(int(rng.integers(3, 9)))
    expect_raises(ValueError, lambda: impl.kaiming_normal_(w), f"kaiming_normal_(vector {tuple(w.shape)})",
                  hint="fans need at least 2 dims: raise ValueError, as nn.init does.")


@pytest.mark.exercise("xavier_uniform_")
def test_xavier_uniform_bound_and_variance(impl, rng):
    cases = [(shape, round(float(rng.uniform(0.5, 2.0)), 3)) for shape in INIT_SHAPES]
    for shape, gain in [*cases, (INIT_SHAPES[0], None)]:  # None: the default gain, 1
        kwargs = {} if gain is None else {"gain": gain}
        gain = 1.0 if gain is None else gain
        fan_in, fan_out = expected_fans(shape)
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        shown = ", ".join([f"weight {shape}", *(f"{k}={v}" for k, v in kwargs.items())])
        what = f"xavier_uniform_({shown})  [fan_in={fan_in}, fan_out={fan_out}]"
        values = draws(impl, "xavier_uniform_", shape, what, 3, **kwargs)
        top = float(values.abs().max())
        if top > bound * (1 + 1e-9):
            fail(f"{what}: a value of magnitude {top:.4g} lies outside the bound "
                 f"{bound:.4g} = gain * sqrt(6 / (fan_in + fan_out)).\n  Try: "
                 "tensor.uniform_(-bound, bound) (a normal distribution has no bound).")
        if top < 0.99 * bound:
            fail(f"{what}: the largest magnitude over {values.numel()} draws is {top:.4g}, well "
                 f"inside the bound {bound:.4g}; U(-bound, bound) reaches close to it.\n  Try: "
                 "bound = gain * sqrt(6 / (fan_in + fan_out)): the sqrt(6) is what makes the "
                 "variance bound**2 / 3 equal 2 / (fan_in + fan_out).")
        check_std(values, bound / math.sqrt(3), what,
                  "bound = gain * sqrt(6 / (fan_in + fan_out)), both fans including the "
                  "receptive field.")


@pytest.mark.exercise("xavier_uniform_")
def test_xavier_uniform_rejects_vectors(impl, rng):
    w = torch.empty(int(rng.integers(3, 9)))
    expect_raises(ValueError, lambda: impl.xavier_uniform_(w), f"xavier_uniform_(vector {tuple(w.shape)})",
                  hint="fans need at least 2 dims: raise ValueError, as nn.init does.")


# ----------------------------------------------------------------------------- BatchNorm1d


def bn_pair(impl, rng, num_features, momentum, dtype=torch.float64):
    eps = float(10 ** rng.uniform(-5, -2))
    what = f"BatchNorm1d({num_features}, eps={eps:.3g}, momentum={momentum})"
    mine = build(impl, what, "BatchNorm1d", num_features, eps=eps, momentum=momentum)
    ref = nn.BatchNorm1d(num_features, eps=eps, momentum=momentum)
    with torch.no_grad():
        ref.weight.copy_(torch.rand(num_features) + 0.5)
        ref.bias.copy_(torch.randn(num_features))
    keys = list(ref.state_dict())
    assert_equal(list(mine.state_dict()), keys, f"{what}: the keys of state_dict(), in order",
                 hint="parameters weight, bias; then buffers running_mean, running_var, "
                 "num_batches_tracked — registered with register_buffer so they are saved.")
    fresh = nn.BatchNorm1d(num_features).state_dict()
    for key, value in mine.state_dict().items():
        assert_close(value, fresh[key], f"{what}: {key} right after construction",
                     hint="weight ones, bias zeros, running_mean zeros, running_var ones, "
                     "num_batches_tracked a 0-dim int64 0.")
    try:
        mine.load_state_dict(ref.state_dict(), strict=True)
    except RuntimeError as exc:
        fail(f"{what}: loading nn.BatchNorm1d's state_dict with strict=True failed:\n  {exc}")
    return mine.to(dtype), ref.to(dtype), what


def compare_bn_state(mine, ref, what):
    for name in ("running_mean", "running_var"):
        assert_close(getattr(mine, name), getattr(ref, name), f"{what}: {name}",
                     hint="running = (1 - m) * running + m * batch_stat, with the UNBIASED "
                     "variance (n / (n - 1)) for running_var; m = momentum, or "
                     "1 / num_batches_tracked when momentum is None.")
    nbt = mine.num_batches_tracked
    if type(nbt) is not torch.Tensor or nbt.dtype != torch.int64 or nbt.dim() != 0:
        fail(f"{what}: num_batches_tracked is {describe(nbt)}; keep a 0-dim int64 buffer.")
    assert_equal(int(nbt), int(ref.num_batches_tracked), f"{what}: num_batches_tracked")


@pytest.mark.exercise("BatchNorm1d")
@pytest.mark.parametrize("momentum", ["random", None, 0.0])  # 0: running stats never move
def test_batchnorm_train_then_eval_matches_torch(impl, rng, momentum):
    c = int(rng.integers(3, 7))
    if momentum == "random":
        momentum = round(float(rng.uniform(0.05, 0.5)), 3)
    mine, ref, what = bn_pair(impl, rng, c, momentum)
    for k in range(3):
        n, length = random_shape(rng, 2, 3, 9)
        shape = (n, c, length) if k == 1 else (n, c)
        x = torch.randn(shape, dtype=torch.float64) * 3 + 2
        expected = ref(x)
        got = run(impl, f"{what} in training mode, batch {k + 1} of shape {shape}", mine, x)
        step = f"{what}, training batch {k + 1} of 3 (shape {shape})"
        assert_close(got, expected.detach(), f"{step}: the output",
                     hint="normalise with the batch mean and BIASED variance over every dim "
                     "but 1 (the channels), then * weight + bias.")
        compare_bn_state(mine, ref, step)
    ref.eval()
    mine.eval()
    n, length = random_shape(rng, 2, 2, 6)
    for shape in ((n, c), (n, c, length)):
        x = torch.randn(shape, dtype=torch.float64)
        expected = ref(x)
        got = run(impl, f"{what} in eval mode, input of shape {shape}", mine, x)
        assert_close(got, expected.detach(), f"{what} after eval(): the output for {shape}",
                     hint="in eval mode normalise with running_mean and running_var (viewed "
                     "as (1, C) or (1, C, 1) to broadcast over dim 1), and update nothing.")
        compare_bn_state(mine, ref, f"{what} after a forward in eval mode on {shape}")


@pytest.mark.exercise("BatchNorm1d")
def test_batchnorm_defaults_match_torch(impl, rng):
    c = int(rng.integers(3, 7))
    mine = build(impl, f"BatchNorm1d({c})", "BatchNorm1d", c).double()
    ref = nn.BatchNorm1d(c).double()
    for k in range(2):
        x = torch.randn(int(rng.integers(3, 7)), c, dtype=torch.float64) * 0.01  # eps matters
        step = f"BatchNorm1d({c}) with the default eps and momentum, training batch {k + 1}"
        assert_close(run(impl, step, mine, x), ref(x).detach(), f"{step}: the output",
                     hint="the defaults are eps=1e-5 and momentum=0.1.")
        compare_bn_state(mine, ref, step)


@pytest.mark.exercise("BatchNorm1d")
def test_batchnorm_gradients_match_torch(impl, rng):
    c = int(rng.integers(3, 7))
    mine, ref, what = bn_pair(impl, rng, c, 0.1)
    n, length = random_shape(rng, 2, 3, 9)
    x = torch.randn(n, c, length, dtype=torch.float64) * 2 - 1
    upstream = torch.randn(n, c, length, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    ref_grads = torch.autograd.grad((ref(xr) * upstream).sum(), [xr, ref.weight, ref.bias])
    xm = x.clone().requires_grad_(True)
    out = run(impl, f"{what}(x of shape {(n, c, length)}) in training mode", mine, xm)
    if out.grad_fn is None:
        fail(f"{what}: the output has no grad_fn; autograd cannot reach x, weight and bias.")
    for name in ("running_mean", "running_var"):
        stat = getattr(mine, name)
        if stat.requires_grad or stat.grad_fn is not None:
            fail(f"{what}: after a training forward on x that requires grad, {name} is "
                 f"{describe(stat)} with grad_fn={type(stat.grad_fn).__name__}: it is part of "
                 "the autograd graph, which it then keeps alive from batch to batch.\n"
                 "  Try: update the running statistics under torch.no_grad() (or from "
                 "mean.detach()), in place.")
    got = torch.autograd.grad((out * upstream).sum(), [xm, mine.weight, mine.bias],
                              allow_unused=True)
    for name, g, r in zip(("x", "weight", "bias"), got, ref_grads, strict=True):
        if g is None:
            fail(f"{what}: no gradient reached {name}.")
        assert_close(g, r, f"{what}: gradient w.r.t. {name} (random upstream gradient)",
                     hint="in training mode the batch mean and variance depend on x: compute "
                     "them from x with autograd on (only the running-stat update goes under "
                     "no_grad).")
