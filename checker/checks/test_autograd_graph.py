"""Hidden checks for the kata the autograd graph. Each graph is walked by the check itself."""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest
import torch
from torch import nn

from checker.helpers import (
    assert_close,
    describe,
    fail,
    graph_lines,
    graph_picture,
    random_shape,
)

pytestmark = pytest.mark.kata("autograd_graph")

F64 = torch.float64
Node = torch.autograd.graph.Node

# The first backward of a process imports lazily (about a second); pay it at import time.
_warm = torch.ones(2, dtype=F64, requires_grad=True)
_warm.exp().backward(torch.ones(2, dtype=F64))
torch.autograd.grad(_warm.sin(), _warm, torch.ones(2, dtype=F64))


def call(fn, what, *args, hint=""):
    """Run the learner's function; an exception becomes a failure that names the call."""
    try:
        return fn(*args)
    except (NotImplementedError, AssertionError):
        raise
    except Exception as exc:  # noqa: BLE001 - any error of the learner's code is a verdict
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        fail(f"{what} raised {type(exc).__name__}: {first}" + (f"\n  Try: {hint}" if hint else ""))


# ----------------------------------------------------------------------------- the check's walk


def walk(root):
    """(nodes in discovery order, edges as (parent, child) pairs), each node once."""
    nodes, edges, seen, stack = [], [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        for child, _ in node.next_functions:
            if child is not None:
                edges.append((node, child))
                stack.append(child)
    return nodes, edges


def picture(root) -> str:
    return "\n".join("    " + line for line in graph_lines(root, limit=40))


def node_name(node, names=None) -> str:
    name = type(node).__name__
    if name == "AccumulateGrad":
        leaf = (names or {}).get(id(node.variable))
        return f"AccumulateGrad({leaf or 'leaf'} {tuple(node.variable.shape)})"
    return name


# ----------------------------------------------------------------------------- hidden models

UNARY = {"tanh": torch.tanh, "sin": torch.sin, "sigmoid": torch.sigmoid,
         "scale": lambda t: t * 0.5, "neg": torch.neg, "exp": lambda t: (t * 0.1).exp()}
BINARY = {"add": torch.add, "mul": torch.mul, "sub": torch.sub}


def random_model(rng):
    """A random computation over named leaf tensors with reuse (diamonds, x * x) and frozen inputs.

    Returns (root grad_fn, {id(leaf): name} for every leaf, the leaves that require grad
    and are used, the output tensor).
    """
    shape = random_shape(rng, 2, 2, 5)
    n_leaves = int(rng.integers(3, 6))
    leaves = []
    for i in range(n_leaves):
        rg = i < 2 or rng.random() < 0.6
        leaves.append((f"p{i}", torch.randn(shape, dtype=F64, requires_grad=bool(rg))))
    unused = (f"p{n_leaves}", torch.randn(shape, dtype=F64, requires_grad=True))
    pool = [t for _, t in leaves]
    for _ in range(int(rng.integers(5, 10))):
        if rng.random() < 0.5:
            op = list(UNARY)[int(rng.integers(len(UNARY)))]
            a = pool[-1 - int(rng.integers(min(3, len(pool))))]
            pool.append(UNARY[op](a))
        else:
            op = list(BINARY)[int(rng.integers(len(BINARY)))]
            a = pool[int(rng.integers(len(pool)))]  # anywhere: reuse makes diamonds
            b = pool[-1 - int(rng.integers(min(2, len(pool))))]
            pool.append(BINARY[op](a, b))
    # x * x: one node reached twice from the same parent (next_functions lists it twice).
    out = pool[-1] + pool[-3] * pool[0] + leaves[0][1] * leaves[0][1] + pool[-2] * pool[-2]
    out = out.sum()
    names = {id(t): n for n, t in [*leaves, unused]}
    return out.grad_fn, names, out


DIAMOND = "out.grad_fn, out = (y * q + (y.exp() * q).tanh()).sum(), y = p.sin()"


def diamond_model(rng):
    """y = p.sin(); out = (y + y.exp()).sum() with a second leaf: a depth-first pre-order or a
    breadth-first order visits SinBackward0 before ExpBackward0, which feeds it."""
    shape = random_shape(rng, 2, 2, 5)
    p = torch.randn(shape, dtype=F64, requires_grad=True)
    q = torch.randn(shape, dtype=F64, requires_grad=True)
    y = p.sin()
    out = (y * q + (y.exp() * q).tanh()).sum()
    return out.grad_fn, {id(p): "p", id(q): "q"}, out


def module_model(rng):
    """An nn.Module with a frozen parameter and a parameter used twice."""
    d_in, d_hidden, d_out = random_shape(rng, 3, 2, 7)
    first = nn.Linear(d_in, d_hidden).double()
    second = nn.Linear(d_hidden, d_out).double()
    first.bias.requires_grad_(False)
    x = torch.randn(4, d_in, dtype=F64)
    h = torch.tanh(first(x))
    out = (second(h) + second(h * 0.5)).pow(2).mean()
    names = {id(first.weight): "first.weight", id(first.bias): "first.bias (frozen)",
             id(second.weight): "second.weight", id(second.bias): "second.bias",
             id(x): "x (input)"}
    return out.grad_fn, names, out


# ----------------------------------------------------------------------------- topo_order


def check_topo(impl, root, names, label):
    nodes, edges = walk(root)

    def node_name_(node) -> str:
        return node_name(node, names)

    what = f"topo_order({label})"
    got = call(impl.topo_order, what, root,
               hint="skip the None entries of next_functions (inputs that need no gradient).")
    if not isinstance(got, list | tuple):
        fail(f"{what}: expected a list of nodes, got {describe(got)}.")
    for item in got:
        if not isinstance(item, Node):
            fail(f"{what}: expected grad_fn nodes (the objects in next_functions), got "
                 f"a {type(item).__name__} in the list.\n  the graph:\n" + picture(root))
    counts = Counter(id(n) for n in got)
    twice = [n for n in got if counts[id(n)] > 1]
    if twice:
        fail(f"{what}: {node_name_(twice[0])} appears {counts[id(twice[0])]} times. A node "
             "reached along two paths (a tensor used twice) is still one node: keep a set of "
             "the nodes you have visited.\n  the graph:\n" + picture(root))
    expected_ids = {id(n) for n in nodes}
    missing = sorted(node_name_(n) for n in nodes if id(n) not in counts)
    extra = sorted(node_name_(n) for n in got if id(n) not in expected_ids)
    if missing or extra:
        fail(f"{what}: the nodes differ from the graph's.\n"
             + (f"  missing: {', '.join(missing)}\n" if missing else "")
             + (f"  not in this graph: {', '.join(extra)}\n" if extra else "")
             + "  Every node reachable through next_functions belongs in the list, "
             "AccumulateGrad nodes included.\n  the graph:\n" + picture(root))
    if got[0] is not root:
        fail(f"{what}: the order starts with {node_name_(got[0])}, not with the root "
             f"{node_name_(root)}: nothing feeds the root, so it comes first.\n"
             "  the graph:\n" + picture(root))
    pos = {id(n): i for i, n in enumerate(got)}
    feeders: dict[int, list] = {}
    for parent, child in edges:
        feeders.setdefault(id(child), []).append(parent)
    for i, node in enumerate(got):
        late = [p for p in feeders.get(id(node), []) if pos[id(p)] > i]
        if late:
            parent = min(late, key=lambda p: pos[id(p)])
            fail(f"{what}: {node_name_(node)} (position {i}) comes before "
                 f"{node_name_(parent)} (position {pos[id(parent)]}), which feeds it: a node "
                 "may only come once every node that sends it a gradient has come. Placing a "
                 "node when you first reach it is not enough when two paths lead to it; order "
                 "by when a node is finished (reverse post-order) or count incoming edges "
                 "(Kahn).\n"
                 f"  your order: {', '.join(node_name_(n) for n in got)}\n"
                 "  the graph:\n" + picture(root))


@pytest.mark.exercise("topo_order")
def test_topo_order_diamond(impl, rng):
    root, names, out = diamond_model(rng)
    check_topo(impl, root, names, DIAMOND)


@pytest.mark.exercise("topo_order")
def test_topo_order_random_graphs(impl, rng):
    for i in range(3):
        root, names, out = random_model(rng)
        check_topo(impl, root, names, f"hidden model #{i + 1}")


@pytest.mark.exercise("topo_order")
def test_topo_order_module(impl, rng):
    root, names, out = module_model(rng)
    check_topo(impl, root, names, "a two-layer nn.Module")


# ----------------------------------------------------------------------------- graph_leaves


def check_leaves(impl, root, names, label):
    nodes, _ = walk(root)
    expected = [n.variable for n in nodes if type(n).__name__ == "AccumulateGrad"]
    what = f"graph_leaves({label})"
    got = call(impl.graph_leaves, what, root,
               hint="only AccumulateGrad nodes have .variable; skip the None entries of "
               "next_functions.")
    if not isinstance(got, list | tuple):
        fail(f"{what}: expected a list of tensors, got {describe(got)}.")

    def name(t) -> str:
        return names.get(id(t), f"a tensor of shape {tuple(t.shape)}")

    for item in got:
        if not isinstance(item, torch.Tensor):
            fail(f"{what}: expected the leaf tensors themselves, got a {type(item).__name__} in "
                 "the list. An AccumulateGrad node's .variable is the leaf.\n  the graph:\n"
                 + picture(root))
    counts = Counter(id(t) for t in got)
    twice = [t for t in got if counts[id(t)] > 1]
    if twice:
        fail(f"{what}: {name(twice[0])} appears {counts[id(twice[0])]} times. A leaf used by "
             "several ops has ONE AccumulateGrad node that several paths reach; report it "
             "once.\n  the graph:\n" + picture(root))
    exp_ids = {id(t) for t in expected}
    missing = sorted(name(t) for t in expected if id(t) not in counts)
    extra = sorted(name(t) for t in got if id(t) not in exp_ids)
    if missing or extra:
        fail(f"{what}: the leaves differ.\n"
             f"  expected: {', '.join(sorted(name(t) for t in expected))}\n"
             f"  got:      {', '.join(sorted(name(t) for t in got))}\n"
             "  Walk every branch of next_functions; a tensor that does not require grad, "
             "or is never used, has no AccumulateGrad node in this graph. Return the same "
             "tensor objects (no copies, no .detach()).\n  the graph:\n" + picture(root))


@pytest.mark.exercise("graph_leaves")
def test_graph_leaves_diamond(impl, rng):
    root, names, out = diamond_model(rng)
    check_leaves(impl, root, names, DIAMOND)


@pytest.mark.exercise("graph_leaves")
def test_graph_leaves_random_graphs(impl, rng):
    for i in range(3):
        root, names, out = random_model(rng)
        check_leaves(impl, root, names, f"hidden model #{i + 1}")


@pytest.mark.exercise("graph_leaves")
def test_graph_leaves_module(impl, rng):
    root, names, out = module_model(rng)
    check_leaves(impl, root, names, "a two-layer nn.Module with a frozen bias")


# ----------------------------------------------------------------------------- retained_grads


def check_retained(impl, rng, x_grad: bool, preset: bool = False):
    n, k, m, p = random_shape(rng, 4, 2, 7)
    x = torch.randn(n, k, dtype=F64, requires_grad=x_grad)
    w1 = torch.randn(k, m, dtype=F64, requires_grad=True)
    b1 = torch.randn(m, dtype=F64, requires_grad=True)
    w2 = torch.randn(m, p, dtype=F64, requires_grad=True)
    upstream = torch.randn(n, p, dtype=F64)
    before = {name: t.detach().clone() for name, t in (("x", x), ("w1", w1), ("b1", b1),
                                                        ("w2", w2), ("upstream", upstream))}
    old = {}
    if preset:  # gradients from an earlier backward: this one adds to them
        for name, t in (("x", x), ("w1", w1), ("b1", b1), ("w2", w2)):
            if t.requires_grad:
                t.grad = torch.randn(t.shape, dtype=F64)
                old[name] = t.grad.clone()
    # Reference on copies, with torch.autograd.grad (the check may use it; you may not).
    leaves = {name: t.detach().clone().requires_grad_(t.requires_grad)
              for name, t in (("x", x), ("w1", w1), ("b1", b1), ("w2", w2))}
    h = leaves["x"] @ leaves["w1"] + leaves["b1"]
    a = h.tanh()
    y = a @ leaves["w2"]
    wrt = [("h", h), ("a", a), ("y", y)] + [(k_, t) for k_, t in leaves.items() if t.requires_grad]
    grads = torch.autograd.grad(y, [t for _, t in wrt], upstream)
    expected = {name: g + old[name] if name in old else g
                for (name, _), g in zip(wrt, grads, strict=True)}
    what = (f"retained_grads(x {tuple(x.shape)}{'' if x_grad else ' without grad'}"
            f"{', leaves whose .grad holds an earlier gradient' if preset else ''}, ...)")
    got = call(impl.retained_grads, what, x, w1, b1, w2, upstream)
    for name, t in (("x", x), ("w1", w1), ("b1", b1), ("w2", w2), ("upstream", upstream)):
        assert_close(t.detach(), before[name], f"{what}: {name} afterwards (an input: its values "
                     "must not change)")
    if x.requires_grad != x_grad:
        fail(f"{what}: x.requires_grad changed from {x_grad} to {x.requires_grad}. The input "
             "does not need a gradient here; its .grad simply stays None.")
    if not isinstance(got, dict) or set(got) != {"x", "w1", "b1", "w2", "h", "a", "y"}:
        fail(f"{what}: expected a dict with keys x, w1, b1, w2, h, a, y; got {describe(got)}.")
    for name, t in (("w1", w1), ("b1", b1), ("w2", w2)):
        if t.grad is None:
            fail(f"{what}: after your function, {name}.grad is None. Call y.backward(upstream): "
                 "backward is what fills the .grad of leaves (torch.autograd.grad returns "
                 "gradients without storing them).")
        if got[name] is not t.grad:
            fail(f"{what}: grads[{name!r}] is not {name}.grad itself; return the .grad "
                 "attributes as backward left them.")
    for name in ("x", "w1", "b1", "w2", "h", "a", "y"):
        value = got[name]
        if name not in expected:
            if value is not None:
                fail(f"{what}: grads['x'] should be None: x does not require grad, so no "
                     f"gradient is computed for it; got {describe(value)}.")
            continue
        if value is None:
            fail(f"{what}: grads[{name!r}] is None. {name} is not a leaf (it has a grad_fn), "
                 f"and non-leaf tensors drop their gradient after backward unless you call "
                 f"{name}.retain_grad() BEFORE backward."
                 if name in ("h", "a", "y") else f"{what}: grads[{name!r}] is None.")
        assert_close(value, expected[name], f"{what}: grads[{name!r}]",
                     hint="backward ADDS into a leaf's existing .grad: leave it as it was "
                     "before (never zero or reset it)." if name in old else
                     "backpropagate the given upstream gradient (y.backward(upstream)), "
                     "not y.sum().backward(), which uses all ones.")


@pytest.mark.exercise("retained_grads")
def test_retained_grads(impl, rng):
    check_retained(impl, rng, x_grad=True)


@pytest.mark.exercise("retained_grads")
def test_retained_grads_input_without_grad(impl, rng):
    check_retained(impl, rng, x_grad=False)


@pytest.mark.exercise("retained_grads")
def test_retained_grads_accumulate_into_existing_grads(impl, rng):
    check_retained(impl, rng, x_grad=True, preset=True)
    check_retained(impl, rng, x_grad=False, preset=True)


# ----------------------------------------------------------------------------- predict_flags

FLAG_OPS = {
    "sin": lambda x: x.sin(), "exp": lambda x: x.exp(), "floor": lambda x: x.floor(),
    "sum": lambda x: x.sum(), "clone": lambda x: x.clone(), "add": lambda x, y: x + y,
    "mul": lambda x, y: x * y, "argmax": lambda x: x.argmax(), "long": lambda x: x.long(),
    "gt": lambda x, y: x > y, "detach": lambda x: x.detach(),
    "requires_grad_": lambda x: x.requires_grad_(),
}
SPELL = {
    "sin": "{0}.sin()", "exp": "{0}.exp()", "floor": "{0}.floor()", "sum": "{0}.sum()",
    "clone": "{0}.clone()", "add": "{0} + {1}", "mul": "{0} * {1}", "argmax": "{0}.argmax()",
    "long": "{0}.long()", "gt": "{0} > {1}", "detach": "{0}.detach()",
    "requires_grad_": "{0}.requires_grad_()",
}
MODES = {"grad": contextlib.nullcontext, "no_grad": torch.no_grad,
         "inference_mode": torch.inference_mode}


def make_leaf(dtype: str, rg: bool) -> torch.Tensor:
    if dtype == "int64":
        return torch.randint(0, 5, (4,))
    return torch.randn(4, dtype=F64).requires_grad_(rg)


def try_step(env, step) -> bool:
    """Run one step for real; False (and no change) if PyTorch refuses it."""
    out, op, inputs, mode = step
    args = [env[i] for i in inputs]
    if op == "requires_grad_" and (mode == "inference_mode" or args[0].is_inference()):
        return False  # keeps every inference tensor free of requires_grad
    if op == "requires_grad_" and not args[0].is_floating_point():
        return False
    try:
        with MODES[mode]():
            result = FLAG_OPS[op](*args)
    except RuntimeError:
        return False
    if op != "requires_grad_" and any(result is a for a in args):
        return False  # e.g. .long() of an int64 tensor returns the tensor itself
    env[out] = result
    return True


def random_program(rng, modes: tuple[str, ...], steps: int):
    leaves = {"a": ("float64", True), "b": ("float64", bool(rng.random() < 0.5)),
              "n": ("int64", False)}
    if rng.random() < 0.5:
        leaves["c"] = ("float64", False)
    env = {name: make_leaf(*spec) for name, spec in leaves.items()}
    program = []
    names = iter("defghijklmopqrstuvwxyz")
    tries = 0
    while len(program) < steps and tries < 200:
        tries += 1
        op = list(FLAG_OPS)[int(rng.integers(len(FLAG_OPS)))]
        arity = 2 if op in ("add", "mul", "gt") else 1
        pool = list(env)
        inputs = tuple(pool[-1 - int(rng.integers(min(4, len(pool))))] if rng.random() < 0.6
                       else pool[int(rng.integers(len(pool)))] for _ in range(arity))
        mode = modes[int(rng.integers(len(modes)))]
        step = (f"?{len(program)}", op, inputs, mode)
        if try_step(env, step):
            out = next(names)
            env[out] = env.pop(step[0])
            program.append((out, op, inputs, mode))
    return leaves, program, env


def coverage_program():
    """Every trap once: floor keeps requires_grad, requires_grad_ is in place, a no_grad result
    is a leaf, detach of an inference tensor stays an inference tensor."""
    leaves = {"w": ("float64", True), "x": ("float64", False), "k": ("int64", False)}
    program = [
        ("f", "floor", ("w",), "grad"),
        ("g", "mul", ("f", "x"), "no_grad"),
        ("d", "detach", ("w",), "grad"),
        ("r", "requires_grad_", ("d",), "grad"),
        ("s", "sin", ("d",), "grad"),
        ("m", "argmax", ("s",), "grad"),
        ("i", "exp", ("x",), "inference_mode"),
        ("v", "detach", ("i",), "grad"),
        ("u", "detach", ("w",), "inference_mode"),
        ("t", "add", ("i", "w"), "grad"),
        ("c", "gt", ("k", "w"), "grad"),
        ("e", "exp", ("x",), "no_grad"),
        ("q", "requires_grad_", ("x",), "no_grad"),
        ("o", "mul", ("q", "e"), "grad"),
        ("p", "requires_grad_", ("e",), "grad"),
    ]
    env = {name: make_leaf(*spec) for name, spec in leaves.items()}
    for step in program:
        if not try_step(env, step):
            raise RuntimeError(f"the coverage program does not run: {step}")
    return leaves, program, env


def spell_program(leaves, program) -> str:
    lines = [f"    {n} = leaf {dt}{', requires_grad=True' if rg else ''}"
             for n, (dt, rg) in leaves.items()]
    for out, op, inputs, mode in program:
        code = f"{out} = " + SPELL[op].format(*inputs)
        if mode == "no_grad":
            code = f"with torch.no_grad(): {code}"
        elif mode == "inference_mode":
            code = f"with torch.inference_mode(): {code}"
        lines.append("    " + code)
    return "\n".join(lines)


def fmt(flags) -> str:
    rg, leaf, inf = flags
    return f"(requires_grad={rg}, is_leaf={leaf}, is_inference={inf})"


def check_flags(impl, leaves, program, env, label):
    expected = {n: (t.requires_grad, t.is_leaf, t.is_inference()) for n, t in env.items()}
    what = f"predict_flags({label})"
    got = call(impl.predict_flags, what, {k: tuple(v) for k, v in leaves.items()},
               [tuple(s) for s in program])
    code = spell_program(leaves, program)
    if not isinstance(got, dict):
        fail(f"{what}: expected a dict name -> (requires_grad, is_leaf, is_inference), got "
             f"{describe(got)}.")
    for name in [*leaves, *(s[0] for s in program)]:
        if name not in got:
            fail(f"{what}: no entry for {name!r}; report every leaf and every output.\n"
                 f"  the program:\n{code}")
        value = got[name]
        if not (isinstance(value, tuple | list) and len(value) == 3
                and all(type(v) is bool for v in value)):
            fail(f"{what}: {name!r} -> {value!r}; expected a tuple of three bools.")
        if tuple(value) != expected[name]:
            fail(f"{what}: wrong flags for {name!r}.\n  the program:\n{code}\n"
                 f"  {name}: expected {fmt(expected[name])}\n"
                 f"  {' ' * len(name)}  got      {fmt(tuple(value))}\n"
                 "  Try: an op's result requires grad only if grad mode is on, the op is "
                 "differentiable (floor is, with a zero gradient; argmax, long and > are not) "
                 "and an input requires grad; a tensor that does not require grad is always a "
                 "leaf; requires_grad_() changes the tensor itself; ops inside inference_mode "
                 "make inference tensors, and a view (detach) keeps its base's inference-ness.")


@pytest.mark.exercise("predict_flags")
def test_predict_flags_every_trap(impl):
    leaves, program, env = coverage_program()
    check_flags(impl, leaves, program, env, "the program below")


@pytest.mark.exercise("predict_flags")
def test_predict_flags_grad_mode_programs(impl, rng):
    for i in range(3):
        leaves, program, env = random_program(rng, ("grad",), int(rng.integers(6, 10)))
        check_flags(impl, leaves, program, env, f"hidden program #{i + 1}")


@pytest.mark.exercise("predict_flags")
def test_predict_flags_programs_with_modes(impl, rng):
    for i in range(4):
        leaves, program, env = random_program(rng, ("grad", "grad", "no_grad", "inference_mode"),
                                              int(rng.integers(7, 11)))
        check_flags(impl, leaves, program, env, f"hidden program #{i + 1} with modes")


# ----------------------------------------------------------------------------- frozen_backbone_loss


def random_backbone(rng, d_in, d_feat):
    widths = [d_in, *random_shape(rng, int(rng.integers(1, 3)), 3, 8), d_feat]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        layers.append([nn.Tanh, nn.ReLU, nn.Sigmoid][int(rng.integers(3))]())
    return nn.Sequential(*layers).double()


def random_head(rng, d_feat, d_out):
    if rng.random() < 0.5:
        return nn.Linear(d_feat, d_out).double()
    hidden = int(rng.integers(2, 7))
    return nn.Sequential(nn.Linear(d_feat, hidden), nn.Tanh(), nn.Linear(hidden, d_out)).double()


def check_frozen(impl, rng, frozen_head_bias: bool, training: bool):
    d_in, d_feat, d_out = random_shape(rng, 3, 2, 7)
    n = int(rng.integers(3, 9))
    backbone, head = random_backbone(rng, d_in, d_feat), random_head(rng, d_feat, d_out)
    last = head if isinstance(head, nn.Linear) else head[-1]
    if frozen_head_bias:
        last.bias.requires_grad_(False)
    backbone.train(training)
    x, target = torch.randn(n, d_in, dtype=F64), torch.randn(n, d_out, dtype=F64)
    ref = ((head(backbone(x).detach()) - target) ** 2).mean()
    ref_grads = dict(zip([k for k, p in head.named_parameters() if p.requires_grad],
                         torch.autograd.grad(ref, [p for p in head.parameters() if p.requires_grad]),
                         strict=True))
    names = {id(p): f"backbone.{k}" for k, p in backbone.named_parameters()}
    names.update({id(p): f"head.{k}" for k, p in head.named_parameters()})
    what = f"frozen_backbone_loss(backbone with {len(backbone) // 2} Linear layers, head, ...)"
    loss = call(impl.frozen_backbone_loss, what, backbone, head, x, target,
                hint="run the backbone under torch.no_grad() or .detach() its output. Tensors "
                "made under inference_mode cannot be saved for backward (the head's Linear "
                "saves its input), and requires_grad can only be switched on leaves.")
    for k, p in backbone.named_parameters():
        if not p.requires_grad:
            fail(f"{what}: after your function, backbone.{k}.requires_grad is False. Freezing "
                 "by switching the parameters off changes the model for good; cut the graph "
                 "for this loss instead (torch.no_grad() around the backbone, or .detach()).")
    if type(loss) is not torch.Tensor or loss.dim() != 0:
        fail(f"{what}: expected a 0-dim tensor, got {describe(loss)}.")
    assert_close(loss.detach(), ref.detach(), what, hint="((head(features) - target) ** 2).mean()")
    if loss.grad_fn is None:
        fail(f"{what}: the loss has no grad_fn, so backward cannot reach the head. Only the "
             "backbone should run without recording.")
    nodes, _ = walk(loss.grad_fn)
    leaves = [n.variable for n in nodes if type(n).__name__ == "AccumulateGrad"]
    in_backbone = sorted(names.get(id(t), "?") for t in leaves if names.get(id(t), "").startswith("backbone"))
    if in_backbone:
        fail(f"{what}: the loss's graph reaches the backbone: {', '.join(in_backbone)}. "
             "Run the backbone under torch.no_grad() or detach its output (backbone.eval() "
             "does not stop recording: it only changes dropout and batch norm).\n" + graph_picture(ref.grad_fn, loss.grad_fn))
    expected_leaves = sorted(names[id(p)] for p in head.parameters() if p.requires_grad)
    got_leaves = sorted(names.get(id(t), f"a tensor of shape {tuple(t.shape)}") for t in leaves)
    if got_leaves != expected_leaves:
        fail(f"{what}: the loss's graph should end in exactly the head's trainable parameters.\n"
             f"  expected leaves: {', '.join(expected_leaves)}\n"
             f"  got leaves:      {', '.join(got_leaves)}\n" + graph_picture(ref.grad_fn, loss.grad_fn))
    if backbone.training != training:
        fail(f"{what}: your function switched the backbone to "
             f"{'train' if backbone.training else 'eval'} mode. Leave the modules' modes alone.")
    loss.backward()
    for k, p in backbone.named_parameters():
        if p.grad is not None:
            fail(f"{what}: after loss.backward(), backbone.{k}.grad is set.")
    for k, p in head.named_parameters():
        if k in ref_grads:
            assert_close(p.grad, ref_grads[k], f"{what}: head.{k}.grad after loss.backward()")


@pytest.mark.exercise("frozen_backbone_loss")
def test_frozen_backbone_loss(impl, rng):
    check_frozen(impl, rng, frozen_head_bias=False, training=True)


@pytest.mark.exercise("frozen_backbone_loss")
def test_frozen_backbone_loss_eval_backbone_frozen_bias(impl, rng):
    check_frozen(impl, rng, frozen_head_bias=True, training=False)
