"""Hidden checks for the kata backward_engine. torch's own engine (.backward()) is the oracle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch

from checker.helpers import (
    CheckFailure,
    assert_close,
    assert_not_shares_storage,
    describe,
    fail,
    graph_picture,
    randn,
    random_shape,
)
from checker.sandbox.errors import ForbiddenAPI

pytestmark = pytest.mark.kata("backward_engine")


# ----------------------------------------------------------------------------- helpers


def _first_lines(text: str, n: int = 8) -> str:
    lines = str(text).strip().splitlines()
    return "\n    ".join(lines[:n]) + ("\n    ..." if len(lines) > n else "")


def learner(what: str, fn: Callable, hint: str = ""):
    """Call the learner (``fn`` goes through impl.*, i.e. under the kata's rules); whatever it
    raises becomes a teaching failure. A stub's NotImplementedError is left alone."""
    try:
        return fn()
    except (NotImplementedError, AssertionError):
        raise
    except ForbiddenAPI as exc:
        fail(f"{what}: {exc}.")
    except Exception as exc:
        fail(f"{what} raised {type(exc).__name__}:\n    {_first_lines(exc)}"
             + (f"\n  Try: {hint}" if hint else ""))


def is_leaf_node(node) -> bool:
    return type(node).__name__ == "AccumulateGrad"


def reachable(root) -> list:
    """Every node reachable from root, depth first, each once (the check's own walk)."""
    out, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        out.append(node)
        stack.extend(child for child, _ in reversed(node.next_functions))
    return out


def numbered(root) -> dict:
    """A stable label per node: its type name and its rank in a depth-first walk."""
    return {node: f"{type(node).__name__}#{i}" for i, node in enumerate(reachable(root))}


def numbered_graph(root, names: dict | None = None) -> str:
    """The graph as indented lines, each node with its #label (leaves with their name)."""
    labels = numbered(root)
    lines, seen = [], set()

    def walk(node, depth, input_nr):
        if len(lines) >= 40:
            return
        label = labels[node]
        if is_leaf_node(node) and names:
            label += f" (leaf {names.get(id(node.variable), '?')})"
        slot = f"  -> slot {input_nr}" if input_nr else ""
        if node in seen:
            lines.append("    " + "  " * depth + label + " (again)" + slot)
            return
        seen.add(node)
        lines.append("    " + "  " * depth + label + slot)
        for child, nr in node.next_functions:
            if child is not None:
                walk(child, depth + 1, nr)

    walk(root, 0, 0)
    return "\n".join(lines)


def history_picture(t: torch.Tensor) -> str:
    """A gradient that carries autograd history, drawn next to the history-free expectation."""
    return graph_picture(None, t.grad_fn)


# ----------------------------------------------------------------------------- hidden graphs


@dataclass
class Graph:
    """A hidden model: its leaves (name -> tensor), the root and the gradient to seed it with."""

    leaves: dict[str, torch.Tensor]
    root: torch.Tensor
    gradient: torch.Tensor | None
    packed: list = field(default_factory=list)  # [unpack count] per saved tensor
    grad_mode: list = field(default_factory=list)  # torch.is_grad_enabled() at each unpack

    def names(self) -> dict:
        return {id(t): name for name, t in self.leaves.items()}


def leaf_values(p: int, q: int) -> dict[str, torch.Tensor]:
    """Fresh leaf values (torch's seeded generator); W is a transposed (non-contiguous) leaf."""
    return {
        "a": randn(p, q), "b": randn(p, q), "x": randn(p, q), "c (constant)": randn(p, q),
        "W": randn(q, q).T * 0.5, "bias": randn(q), "col (p, 1)": randn(p, 1),
        "s (0-d)": randn(()),
    }


def instantiate(values: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> dict:
    """Leaves for one run: copies of the values (same layout), .grad preset where asked."""
    leaves = {}
    for name, v in values.items():
        t = torch.empty_strided(v.shape, v.stride(), dtype=v.dtype).copy_(v)
        t.requires_grad_(not name.startswith("c "))
        if name in grads:  # laid out like the leaf, as AccumulateGrad would have made it
            t.grad = torch.empty_like(t).copy_(grads[name])
        leaves[name] = t
    return leaves


def counting_hooks(packed: list, grad_mode: list):
    """Count how often each saved tensor is read, and note the grad mode it is read in (a node
    unpacks its saved tensors when it runs, in the caller's grad mode)."""
    def pack(t):
        packed.append(0)
        return (len(packed) - 1, t)

    def unpack(p):
        i, t = p
        packed[i] += 1
        grad_mode.append(torch.is_grad_enabled())
        return t

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack)


class CubeAndScale(torch.autograd.Function):
    """A custom Function: its node has no __call__ (node.apply runs this backward). Arguments
    (k: float, x, c, z, w): one gradient per ARGUMENT comes back: c's although c needs none,
    None for w although w needs one, and for z the very gradient that reached y1."""

    @staticmethod
    def forward(ctx, k, x, c, z, w):
        ctx.k = k
        ctx.save_for_backward(x, c)
        return k * x * c, x * x * x + z

    @staticmethod
    def backward(ctx, g0, g1):
        x, c = ctx.saved_tensors
        return None, ctx.k * c * g0 + 3 * x * x * g1, ctx.k * x * g0, g1, None


class Cube(torch.autograd.Function):
    """A custom Function of one tensor whose backward returns a bare tensor, not a tuple."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


CUSTOM_HINT = ("a node of a custom torch.autograd.Function is not callable: node.apply(*grads) "
               "runs its backward (a gradient for every output: zeros where none arrived, as the "
               "engine does) and returns one gradient per FORWARD ARGUMENT; keep those where "
               "node.needs_input_grad[i] is True, they pair in order with the next_functions "
               "edges whose node is not None.")


UNARY = ["sin", "tanh", "gauss", "affine", "sigmoid", "matmul_w", "bias", "unbind_stack",
         "split_cat", "cumsum", "index_perm", "colsum_mul", "leaky", "const_mul", "col_bias",
         "scale", "custom"]
BINARY = ["add", "sub", "mul", "mul_tanh", "div_soft"]


def random_program(rng, p: int, q: int, n_ops: int) -> list:
    """A random sequence of ops on (p, q) tensors; operands are often reused (diamonds)."""
    program = []
    n_values = 3  # a, b, x

    def pick(n: int) -> int:  # the newest value half the time, else any earlier one
        return n - 1 if rng.random() < 0.45 else int(rng.integers(0, n))

    for _ in range(n_ops):
        if rng.random() < 0.4:
            op = BINARY[int(rng.integers(len(BINARY)))]
            program.append((op, (pick(n_values), pick(n_values)), None))
        else:
            op = UNARY[int(rng.integers(len(UNARY)))]
            extra = None
            if op == "unbind_stack":
                extra = [int(v) for v in rng.integers(0, q, size=q)]
            elif op == "split_cat":
                cut = int(rng.integers(1, p))
                extra = [cut, p - cut]
            elif op == "index_perm":
                extra = [int(v) for v in rng.permutation(p)]
            program.append((op, (pick(n_values),), extra))
        n_values += 1
    n_out = int(rng.integers(1, 4))
    outputs = sorted({n_values - 1, *(int(v) for v in rng.integers(3, n_values, size=n_out))})
    return [program, outputs]


def apply_op(op: str, args: list, extra, leaves: dict) -> torch.Tensor:
    t = args[0]
    if op == "sin":
        return t.sin()
    if op == "tanh":
        return t.tanh()
    if op == "gauss":
        return torch.exp(-t * t)
    if op == "affine":
        return t * 0.7 + 0.3
    if op == "sigmoid":
        return t.sigmoid()
    if op == "matmul_w":
        return t @ leaves["W"]
    if op == "bias":
        return t + leaves["bias"]
    if op == "unbind_stack":
        parts = t.unbind(1)
        return torch.stack([parts[j] for j in extra], 1)
    if op == "split_cat":
        return torch.cat(t.split(extra, 0)[::-1], 0)
    if op == "cumsum":
        return t.cumsum(1) * 0.3
    if op == "index_perm":
        return t[extra]
    if op == "colsum_mul":
        return t * t.mean(0, keepdim=True)
    if op == "leaky":
        return torch.where(t > 0, t, 0.1 * t)
    if op == "const_mul":
        return t * leaves["c (constant)"]
    if op == "col_bias":
        return t - leaves["col (p, 1)"]
    if op == "scale":
        return t * leaves["s (0-d)"]
    if op == "custom":
        return CubeAndScale.apply(0.5, t, leaves["c (constant)"], leaves["b"], leaves["x"])[0]
    u = args[1]
    if op == "add":
        return t + u
    if op == "sub":
        return t - u
    if op == "mul":
        return t * u
    if op == "mul_tanh":
        return t * u.tanh()
    if op == "div_soft":
        return t / (1 + u * u)
    raise ValueError(op)


def build(program: list, leaves: dict, weights: list, scalar: bool) -> torch.Tensor:
    ops, outputs = program
    values = [leaves["a"], leaves["b"], leaves["x"]]
    for op, operands, extra in ops:
        values.append(apply_op(op, [values[i] for i in operands], extra, leaves))
    total = sum(values[i] * w for i, w in zip(outputs, weights, strict=True))
    return total.sum() if scalar else total


def handmade(kind: str, leaves: dict) -> torch.Tensor:
    """Graphs that every engine bug trips over."""
    a, b, x, c = leaves["a"], leaves["b"], leaves["x"], leaves["c (constant)"]
    if kind == "diamond with paths of unequal length":
        s = x.sin()
        long = (s.tanh() * 2).sigmoid()
        return (s * long + b).sum()
    if kind == "one gradient tensor handed to two edges":
        p, r = a.tanh(), b.sigmoid()
        h = p + r  # AddBackward0 passes the very same tensor to both of its edges
        return (h * c).sum() + (p * p).sum() + (r * x).sum()
    if kind == "multi-output ops (unbind, split) with unused and repeated outputs":
        parts = a.unbind(1)
        q = len(parts)
        stacked = torch.stack([parts[0], parts[q - 1], parts[0]] + [parts[1]] * (q - 3), 1)
        top, rest = (stacked * x).split([1, a.shape[0] - 1], 0)
        return (torch.cat([rest, top * 3], 0) * c).sum()
    if kind == "a tensor used twice by one op, and constants":
        # Two ops that each take x twice (x * x, x + x) and a deep third parent (x @ W): x's
        # node has 3 parents but 5 edges in, so counting parents instead of edges releases it
        # before x @ W has run, with a FIFO or a LIFO ready queue alike.
        deep = (x @ leaves["W"]).sin().cos().sigmoid().tanh() * 0.5
        return (x * x * c + (x + x).tanh() + deep - b * c).sum()
    if kind == CUSTOM:
        y0, y1 = CubeAndScale.apply(0.5, x.sin(), c, b, a)
        z0, _ = CubeAndScale.apply(-1.5, a + b, c, x, b)  # its second output is never used
        return (y0 * b).sum() + y1.tanh().sum() + (z0 * a).sum() + Cube.apply(b.tanh()).sum()
    if kind == NON_SCALAR:
        p = a.tanh() * b
        return p + p.sin()  # AddBackward0 hands the caller's gradient itself to both edges
    raise ValueError(kind)


NON_SCALAR = "non-scalar y = p + p.sin(), backward(y, gradient)"
CUSTOM = "graph through a custom autograd.Function with two outputs, one of them unused"


HANDMADE = [
    "diamond with paths of unequal length",
    "one gradient tensor handed to two edges",
    "multi-output ops (unbind, split) with unused and repeated outputs",
    "a tensor used twice by one op, and constants",
    NON_SCALAR,
    CUSTOM,
]


def graph_pair(rng, kind: str | None, *, preset_grads: bool = False, scalar: bool = True):
    """The same model built twice (reference, learner), each with its own leaves and counters."""
    p, q = random_shape(rng, 2, 4, 7)
    values = leaf_values(p, q)
    grads = {}
    if preset_grads:
        for name in ("a", "W", "bias"):
            grads[name] = randn(*values[name].shape)
    program = None if kind else random_program(rng, p, q, int(rng.integers(8, 15)))
    weights = [randn(p, q) for _ in range(len(program[1]))] if program else []
    gradient = randn(p, q) if (kind == NON_SCALAR or not (scalar or kind)) else None
    pair = []
    for _ in range(2):
        leaves = instantiate(values, grads)
        packed: list = []
        grad_mode: list = []
        with counting_hooks(packed, grad_mode):
            if kind:
                root = handmade(kind, leaves)
            else:
                root = build(program, leaves, weights, scalar)
        pair.append(Graph(leaves, root, gradient, packed, grad_mode))
    return pair, kind or f"random graph of {len(program[0])} ops"


def expected_grads(ref: Graph) -> dict:
    torch.autograd.backward(ref.root, ref.gradient)
    return {name: (None if t.grad is None else t.grad.clone()) for name, t in ref.leaves.items()}


def compare_leaf_grads(mine: Graph, expected: dict, label: str, given=None) -> None:
    names = mine.names()
    if given is not None:
        assert_close(mine.gradient, given,
                     f"the gradient passed to backward(y, gradient) on the {label}, afterwards",
                     hint="backward must not write into the caller's gradient. A node may hand the "
                     "very tensor it received to several edges (AddBackward0 does), so sum slots "
                     "out of place (slots[nr] = slots[nr] + g), never with += .")
    for name, t in mine.leaves.items():
        want = expected[name]
        what = f"{name}.grad after your backward(loss) on the {label}"
        if want is None:
            if t.grad is not None:
                fail(f"{what}: expected None (this leaf is not in the graph or needs no grad), "
                     f"got {describe(t.grad)}.")
            continue
        if t.grad is None:
            fail(f"{what}: expected a gradient, got None — no gradient reached the leaf.\n"
                 f"  the graph:\n{numbered_graph(mine.root.grad_fn, names)}\n"
                 "  Try: every AccumulateGrad node in your order must be handed its summed "
                 "gradient (accumulate_grad(node, grad)).")
        try:
            assert_close(t.grad, want, what)
        except CheckFailure as exc:
            fail(f"{exc}\n  the graph (gradient flows from the top):\n"
                 f"{numbered_graph(mine.root.grad_fn, names)}\n"
                 "  Try: a node runs once, after ALL its incoming gradients are summed slot by slot "
                 "(slot = input_nr); a leaf that already has .grad gets the new gradient added.")


# ----------------------------------------------------------------------------- topological_order


def check_order(order, root, label: str, names: dict) -> None:
    labels = numbered(root)
    picture = numbered_graph(root, names)
    if not isinstance(order, list | tuple):
        fail(f"topological_order(loss.grad_fn) on the {label}: expected a list of nodes, got "
             f"{describe(order)}.")
    want = reachable(root)
    got_labels = [labels.get(n, f"foreign {type(n).__name__}") for n in order]
    counts: dict = {}
    for n in order:
        counts[n] = counts.get(n, 0) + 1
    repeated = [labels.get(n, "?") for n, k in counts.items() if k > 1]
    missing = [labels[n] for n in want if n not in counts]
    extra = [g for g, n in zip(got_labels, order, strict=True) if n not in labels]
    if repeated or missing or extra:
        problem = (f"{', '.join(repeated)} appear more than once" if repeated else
                   f"{', '.join(missing)} are missing" if missing else
                   f"{', '.join(extra)} are not in the graph (None entries are edges to nothing)")
        fail(f"topological_order(loss.grad_fn) on the {label}: every reachable node exactly once "
             f"was expected; {problem}.\n  your order: {', '.join(got_labels)}\n"
             f"  the graph:\n{picture}\n"
             "  Try: keep a set of nodes already seen; a node reached by two paths (a diamond) "
             "is still one node. Skip None in next_functions.")
    position = {n: i for i, n in enumerate(order)}
    for node in want:
        for child, _ in node.next_functions:
            if child is not None and position[child] < position[node]:
                fail(
                    f"topological_order(loss.grad_fn) on the {label}: {labels[child]} comes "
                    f"before {labels[node]}, but {labels[node]} sends gradient into "
                    f"{labels[child]}; a node may only run once everything that feeds it has "
                    f"run.\n  your order: {', '.join(got_labels)}\n  the graph:\n{picture}\n"
                    "  Try: count each node's incoming edges first (its dependencies), then emit "
                    "a node only when its count drops to zero (Kahn's algorithm) — or reverse a "
                    "depth-first post-order."
                )


@pytest.mark.exercise("topological_order")
def test_order_on_handmade_graphs(impl, rng):
    for kind in HANDMADE:
        (_, mine), label = graph_pair(rng, kind)
        root = mine.root.grad_fn
        order = learner(f"topological_order on the {kind}", lambda root=root: impl.topological_order(root))
        check_order(order, root, label, mine.names())


@pytest.mark.exercise("topological_order")
def test_order_on_hidden_random_graphs(impl, rng):
    for _ in range(6):
        (_, mine), label = graph_pair(rng, None)
        root = mine.root.grad_fn
        order = learner(f"topological_order on a {label}", lambda root=root: impl.topological_order(root))
        check_order(order, root, label, mine.names())


@pytest.mark.exercise("topological_order")
def test_order_on_a_chain_of_3000_ops(impl, rng):
    x = randn(int(rng.integers(2, 5)), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y.sin() if rng.random() < 0.5 else y * 0.9
    root = y.grad_fn
    order = learner("topological_order on a chain of 3001 nodes", lambda: impl.topological_order(root),
                    "torch's engine walks a chain of any length; a recursive walk stops at Python's "
                    "recursion limit (about 1000 frames). Use an explicit stack or queue.")
    check_order(order, root, "chain of 3001 nodes", {id(x): "x"})


# ----------------------------------------------------------------------------- call_node


def node_cases(rng):
    """(label, node, grad_outputs, expected gradient per next_functions entry, keep-alive)."""
    p, q = random_shape(rng, 2, 4, 7)
    a, b, x = randn(p, q, requires_grad=True), randn(p, q, requires_grad=True), randn(p, q, requires_grad=True)
    c, bias = randn(p, q), randn(q, requires_grad=True)
    g = randn(p, q)
    cases = []
    y = a * b
    cases.append(("y = a * b", y.grad_fn, [g], [g * b.detach(), g * a.detach()], y))
    y = a * c
    cases.append(("y = a * c (c needs no grad)", y.grad_fn, [g], [g * c, None], y))
    y = a + bias
    cases.append(("y = a + bias (broadcast)", y.grad_fn, [g], [g, g.sum(0)], y))
    col, s = randn(p, 1, requires_grad=True), randn((), requires_grad=True)
    y = col - a
    cases.append(("y = col - a, col of shape (p, 1) (broadcast)", y.grad_fn, [g],
                  [g.sum(1, keepdim=True), -g], y))
    y = a * s
    cases.append(("y = a * s, s 0-d (broadcast)", y.grad_fn, [g], [g * s.detach(), (g * a.detach()).sum()],
                  y))
    y = x * x
    cases.append(("y = x * x (x twice in one op)", y.grad_fn, [g], [g * x.detach()] * 2, y))
    h = a.tanh()
    y = h.sin()
    cases.append(("y = h.sin() with h = a.tanh()", y.grad_fn, [g], [g * h.detach().cos()], y))
    parts = a.unbind(1)
    sel = [int(v) for v in rng.integers(0, q, size=q)]
    y = torch.stack([parts[j] for j in sel], 1)
    cases.append((f"y = torch.stack([a.unbind(1)[j] for j in {sel}], 1)", y.grad_fn, [g],
                  [g[:, k] for k in range(q)], y))
    grads_in = [randn(p) if j % 2 == 0 else None for j in range(q)]
    dense = torch.stack([gi if gi is not None else torch.zeros(p, dtype=torch.float64)
                         for gi in grads_in], 1)
    cases.append((f"the UnbindBackward0 node of a.unbind(1), gradients for outputs "
                  f"{[j for j in range(q) if j % 2 == 0]} only", parts[0].grad_fn, grads_in,
                  [dense], parts))
    return cases


def check_call(got, node, expected_grads, label: str) -> None:
    what = f"call_node(node, grad_outputs) for {label}"
    want = [(child, nr, eg) for (child, nr), eg in zip(node.next_functions, expected_grads, strict=True)
            if child is not None and eg is not None]
    if not isinstance(got, list | tuple) or not all(isinstance(e, tuple | list) and len(e) == 3
                                                    for e in got):
        fail(f"{what}: expected a list of (next_node, input_nr, grad) triples, got {describe(got)}.")
    def show(entries):
        return "[" + ", ".join(f"({type(n).__name__ if n is not None else None}, {nr}, "
                               f"{tuple(t.shape) if isinstance(t, torch.Tensor) else t})"
                               for n, nr, t in entries) + "]"
    if len(got) != len(want):
        fail(f"{what}:\n  expected {len(want)} entries {show(want)}\n  got      {len(got)} entries "
             f"{show(got)}\n  next_functions = "
             f"{[(type(n).__name__ if n is not None else None, nr) for n, nr in node.next_functions]}\n"
             "  Try: one entry per next_functions edge, in order, skipping edges whose node is None "
             "(an input that needs no gradient) and gradients that come back None; never merge two "
             "edges that lead to the same node.")
    for k, ((n, nr, eg), (gn, gnr, gg)) in enumerate(zip(want, got, strict=True)):
        if gn is not n or gnr != nr:
            fail(f"{what}: entry {k} should go to ({type(n).__name__}, input_nr={nr}), yours goes to "
                 f"({type(gn).__name__}, input_nr={gnr}).\n  Try: pair the i-th gradient the node "
                 "returns with node.next_functions[i] = (next_node, input_nr), as they are.")
        if isinstance(gg, torch.Tensor) and gg.shape != eg.shape:
            fail(f"{what}, entry {k} (gradient for {type(n).__name__}, input_nr={nr}): shape "
                 f"{tuple(gg.shape)}, but that input has shape {tuple(eg.shape)}.\n"
                 "  A node does not undo broadcasting: the engine sums the gradient down to "
                 "next_node._input_metadata[input_nr].shape (validate_outputs in engine.cpp).\n"
                 "  Try: grad.sum_to_size(shape) when the shapes differ.")
        assert_close(gg, eg, f"{what}, entry {k} (gradient for {type(n).__name__}, input_nr={nr})")
        if gg.requires_grad or gg.grad_fn is not None:
            fail(f"{what}, entry {k}: the gradient carries autograd history (requires_grad=True):\n"
                 + history_picture(gg)
                 + "\n  Without create_graph the engine runs nodes with grad mode off; otherwise "
                 "every backward builds a second graph.\n  Try: call the node inside "
                 "`with torch.no_grad():`.")


def check_grad_mode_off(grad_mode: list, what: str) -> None:
    """The nodes read their saved tensors in the grad mode they ran in: it must have been off."""
    if any(grad_mode):
        fail(f"{what}: the node ran with grad mode ON (it read its saved tensors under grad mode), "
             "so its gradients recorded a graph of their own, even if it was detached afterwards.\n"
             "  Without create_graph the engine runs every node with grad mode off.\n"
             "  Try: call the node inside `with torch.no_grad():`.")


def run_call_cases(impl, cases: list, grad_mode: list, hint: str = "") -> None:
    for label, node, grad_outputs, expected, _alive in cases:
        grad_mode.clear()
        before = [None if t is None else t.clone() for t in grad_outputs]
        got = learner(f"call_node on {label}",
                      lambda node=node, go=grad_outputs: impl.call_node(node, list(go)), hint)
        check_call(got, node, expected, label)
        for k, (t, was) in enumerate(zip(grad_outputs, before, strict=True)):
            if t is not None:
                assert_close(t, was, f"call_node on {label}: grad_outputs[{k}] afterwards",
                             hint="never write into the gradients you are given.")
        check_grad_mode_off(grad_mode, f"call_node on {label}")


@pytest.mark.exercise("call_node")
def test_call_node_routes_each_gradient_to_its_edge(impl, rng):
    packed, grad_mode = [], []
    with counting_hooks(packed, grad_mode):
        cases = node_cases(rng)
    run_call_cases(impl, cases, grad_mode)


def custom_cases(rng):
    """Nodes of a custom autograd.Function, with both, one, or the other output's gradient."""
    p, q = random_shape(rng, 2, 4, 7)
    x, c = randn(p, q, requires_grad=True), randn(p, q)
    z, w = randn(p, q, requires_grad=True), randn(p, q, requires_grad=True)
    g0, g1 = randn(p, q), randn(p, q)
    k = float(rng.uniform(0.5, 2.0))
    y0, y1 = CubeAndScale.apply(k, x, c, z, w)
    cube = Cube.apply(x)
    xd, zero = x.detach(), torch.zeros(p, q, dtype=torch.float64)
    label = f"the node of a custom Function, (y0, y1) = CubeAndScale.apply({k:.3g}, x, c, z, w)"
    return [(f"{label}, gradients for y0 and y1", y0.grad_fn, [g0, g1],
             [k * c * g0 + 3 * xd * xd * g1, None, g1, None], (y0, y1)),
            (f"{label}, gradient for y0 only", y0.grad_fn, [g0, None],
             [k * c * g0 + zero, None, zero, None], (y0, y1)),
            (f"{label}, gradient for y1 only", y0.grad_fn, [None, g1],
             [3 * xd * xd * g1, None, g1, None], (y0, y1)),
            ("the node of a custom Function of one input, y = Cube.apply(x), whose backward "
             "returns a bare tensor", cube.grad_fn, [g0], [3 * xd * xd * g0], cube)]


@pytest.mark.exercise("call_node")
def test_call_node_on_a_custom_function_node(impl, rng):
    packed, grad_mode = [], []
    with counting_hooks(packed, grad_mode):
        cases = custom_cases(rng)
    run_call_cases(impl, cases, grad_mode, CUSTOM_HINT)


@pytest.mark.exercise("call_node")
def test_call_node_with_no_gradient_at_all(impl, rng):
    p, q = random_shape(rng, 2, 4, 7)
    a = randn(p, q, requires_grad=True)
    parts = a.unbind(0)
    node = parts[0].grad_fn
    got = learner(f"call_node(UnbindBackward0 node of a.unbind(0), [None] * {p})",
                  lambda: impl.call_node(node, [None] * p),
                  hint="no gradient reached the node at all; the engine never runs such a node "
                  "(called anyway, a node answers None, or zeros). Return [] when every "
                  "grad_output is None.")
    if not isinstance(got, list | tuple) or len(got) != 0:
        fail(f"call_node(UnbindBackward0 node of a.unbind(0), [None] * {p}): no gradient reached "
             f"the node at all, so nothing may flow on; expected [], got {describe(got)}.\n"
             "  (Called anyway, many nodes return zeros: wasted work, and zeros where torch has "
             "None.)\n  Try: if every grad_output is None, return [] without calling the node.")


# ----------------------------------------------------------------------------- accumulate_grad


def leaf_and_node(values: torch.Tensor):
    """A leaf laid out like ``values`` and its AccumulateGrad node (the graph kept alive)."""
    leaf = torch.empty_strided(values.shape, values.stride(), dtype=values.dtype).copy_(values)
    leaf.requires_grad_()
    y = leaf * 1.0
    return leaf, y.grad_fn.next_functions[0][0], y


def leaf_layouts(rng):
    p, q = random_shape(rng, 2, 3, 7)
    r = int(rng.integers(2, 5))
    wide = torch.zeros(p, 2 * q + 1, dtype=torch.float64)
    gapped3 = torch.zeros(r, 2 * p, q, dtype=torch.float64)[:, ::2].permute(2, 0, 1)
    return [
        ("a contiguous leaf", randn(p, q)),
        ("a transposed leaf (W = w.T)", randn(q, p).T),
        ("a leaf that is every other column of a wider tensor", wide[:, 1::2].copy_(randn(p, q))),
        ("a permuted 3-D leaf (w.permute(2, 0, 1))", randn(p, r, q).permute(2, 0, 1)),
        ("a permuted 3-D leaf with gaps", gapped3.copy_(randn(q, r, p))),
        ("a leaf with a size-1 dimension (shape (1, q).T)", randn(1, q).T),
        ("a 0-d leaf", randn(())),
    ]


def layout_of(t: torch.Tensor) -> tuple:
    """Strides where they matter: a size-1 dimension's stride is never part of the contract."""
    return tuple(st if n != 1 else None for n, st in zip(t.shape, t.stride(), strict=True))


@pytest.mark.exercise("accumulate_grad")
def test_first_gradient_is_a_copy_laid_out_like_the_leaf(impl, rng):
    for k, (label, values) in enumerate(leaf_layouts(rng)):
        g = randn(values.shape, requires_grad=k % 2 == 1)  # history must not reach .grad
        g_before = g.detach().clone()
        ref, ref_node, _ = leaf_and_node(values)
        torch.autograd.backward(ref * 1.0, g.detach())  # torch's AccumulateGrad decides the layout
        leaf, node, _alive = leaf_and_node(values)
        learner(f"accumulate_grad on {label}", lambda node=node, g=g: impl.accumulate_grad(node, g))
        what = f"leaf.grad after accumulate_grad(node, g) on {label} whose .grad was None"
        if leaf.grad is None:
            fail(f"{what}: still None.\n  Try: the leaf is node.variable; set its .grad.")
        assert_close(leaf.grad, ref.grad, what)
        assert_close(g, g_before, "the incoming gradient g after accumulate_grad (must not change)")
        assert_not_shares_storage(
            leaf.grad, g, what,
            hint="store a copy: the engine may hand the very same gradient tensor to several "
            "leaves (AddBackward0 does), and the next in-place accumulation into one .grad "
            "would change the others.")
        if layout_of(leaf.grad) != layout_of(ref.grad):
            fail(f"{what}: strides {leaf.grad.stride()}, torch's AccumulateGrad gives "
                 f"{ref.grad.stride()} (the leaf has {leaf.stride()}).\n"
                 "  The 'gradient layout contract': a dense leaf's .grad has the leaf's own strides, "
                 "so optimisers walk param and grad in the same order; a leaf with gaps in its "
                 "memory gets a row-major (contiguous) .grad.\n"
                 "  Try: torch.empty_like(leaf) does both (a dense leaf's strides, else "
                 "contiguous); copy the gradient into it.")
        if leaf.grad.requires_grad:
            fail(f"{what}: .grad requires grad:\n{history_picture(leaf.grad)}\n"
                 "  Try: build it under torch.no_grad().")


@pytest.mark.exercise("accumulate_grad")
def test_later_gradients_add_in_place(impl, rng):
    for k, (label, values) in enumerate(leaf_layouts(rng)):
        g, old = randn(values.shape, requires_grad=k % 2 == 0), randn(values.shape)
        leaf, node, _alive = leaf_and_node(values)
        leaf.grad = old.clone()
        before = leaf.grad
        ptr = before.data_ptr()
        learner(f"accumulate_grad on {label}", lambda node=node, g=g: impl.accumulate_grad(node, g))
        what = f"leaf.grad after accumulate_grad(node, g) on {label} whose .grad was already set"
        assert_close(leaf.grad, old + g.detach(), what,
                     hint="gradients accumulate: the new .grad is old .grad + g (= replaces it).")
        if leaf.grad is not before or leaf.grad.data_ptr() != ptr:
            fail(f"{what}: .grad is a new tensor; AccumulateGrad adds in place, so .grad stays the "
                 "same tensor (DistributedDataParallel's gradient buckets and anyone holding "
                 "p.grad rely on it).\n  Try: under torch.no_grad(), leaf.grad += g (or add_).")
        if leaf.grad.requires_grad:
            fail(f"{what}: .grad requires grad (g did, and the addition recorded it):\n"
                 f"{history_picture(leaf.grad)}\n  Try: add under torch.no_grad().")


@pytest.mark.exercise("accumulate_grad")
def test_one_gradient_tensor_for_two_leaves(impl, rng):
    p, q = random_shape(rng, 2, 3, 7)
    a_values, b_values = randn(p, q), randn(p, q)
    a, node_a, _ka = leaf_and_node(a_values)
    b, node_b, _kb = leaf_and_node(b_values)
    g, g2 = randn(p, q), randn(p, q)
    expected_b = g.clone()
    learner("accumulate_grad(node_a, g); accumulate_grad(node_b, g); accumulate_grad(node_a, g2)",
            lambda: (impl.accumulate_grad(node_a, g), impl.accumulate_grad(node_b, g),
                     impl.accumulate_grad(node_a, g2)))
    assert_close(b.grad, expected_b,
                 "b.grad after accumulate_grad(node_a, g); accumulate_grad(node_b, g); "
                 "accumulate_grad(node_a, g2) — for y = a + b, AddBackward0 hands the SAME tensor "
                 "g to both leaves",
                 hint="b.grad changed when a.grad was updated: both held the same tensor. Store "
                 "a copy the first time.")
    assert_close(a.grad, g + g2, "a.grad after the same three calls")


@pytest.mark.exercise("accumulate_grad")
def test_accumulate_grad_is_your_own(impl, rng):
    leaf, node, _alive = leaf_and_node(randn(*random_shape(rng, 2)))
    fired = []
    leaf.register_post_accumulate_grad_hook(lambda t: fired.append(True))
    learner("accumulate_grad(node, g)", lambda: impl.accumulate_grad(node, randn(*leaf.shape)))
    if fired:
        fail("accumulate_grad(node, g) ran PyTorch's own AccumulateGrad (node(g) fired the leaf's "
             "post-accumulate-grad hook).\n  Try: write the accumulation yourself: node.variable "
             "is the leaf; set or add to its .grad.")


# ----------------------------------------------------------------------------- backward


@pytest.mark.exercise("backward")
def test_backward_on_handmade_graphs(impl, rng):
    for kind in HANDMADE:
        (ref, mine), label = graph_pair(rng, kind)
        expected = expected_grads(ref)
        given = None if mine.gradient is None else mine.gradient.clone()
        learner(f"backward on the {kind}",
                lambda mine=mine: impl.backward(mine.root, mine.gradient),
                CUSTOM_HINT if kind == CUSTOM else "")
        compare_leaf_grads(mine, expected, label, given)


@pytest.mark.exercise("backward")
def test_backward_on_hidden_random_graphs(impl, rng):
    for k in range(6):
        scalar = k % 2 == 0
        (ref, mine), label = graph_pair(rng, None, preset_grads=k % 3 == 1, scalar=scalar)
        if k % 3 == 1:
            label += " whose leaves a, W, bias already had .grad"
        if not scalar:
            label += ", non-scalar output y with backward(y, gradient)"
        expected = expected_grads(ref)
        given = None if mine.gradient is None else mine.gradient.clone()
        learner(f"backward on a {label}",
                lambda mine=mine: impl.backward(mine.root, mine.gradient))
        compare_leaf_grads(mine, expected, label, given)


@pytest.mark.exercise("backward")
def test_backward_runs_every_node_once(impl, rng):
    pairs = [graph_pair(rng, HANDMADE[0])] + [graph_pair(rng, None) for _ in range(3)]
    for (ref, mine), label in pairs:
        expected_grads(ref)
        learner(f"backward(loss) on the {label}", lambda mine=mine: impl.backward(mine.root))
        if mine.packed != ref.packed:
            extra = sum(mine.packed) - sum(ref.packed)
            fail(
                f"backward(loss) on the {label}: the nodes' saved tensors were read "
                f"{sum(mine.packed)} times; torch's engine reads them {sum(ref.packed)} times "
                f"({'+' if extra > 0 else ''}{extra}). Some node ran "
                f"{'more than once' if extra > 0 else 'not at all'}.\n"
                f"  the graph:\n{numbered_graph(mine.root.grad_fn, mine.names())}\n"
                "  Try: never call a node as soon as one gradient arrives (that re-runs everything "
                "below a diamond, exponentially often); collect its gradients, then call it once, "
                "in topological order."
            )


@pytest.mark.exercise("backward")
def test_backward_uses_your_accumulate_grad(impl, rng):
    (ref, mine), label = graph_pair(rng, HANDMADE[3])
    expected = expected_grads(ref)
    fired = []
    for t in mine.leaves.values():
        if t.requires_grad:
            t.register_post_accumulate_grad_hook(lambda t: fired.append(True))
    learner(f"backward(loss) on the {label}", lambda: impl.backward(mine.root))
    compare_leaf_grads(mine, expected, label)
    if fired:
        fail(f"backward(loss) on the {label} ran PyTorch's own AccumulateGrad nodes (the leaves' "
             "post-accumulate-grad hooks fired).\n  Try: hand AccumulateGrad nodes to your "
             "accumulate_grad instead of calling them.")


@pytest.mark.exercise("backward")
def test_backward_runs_nodes_with_grad_mode_off(impl, rng):
    (ref, mine), label = graph_pair(rng, CUSTOM)
    expected_grads(ref)
    given = randn(())
    given.requires_grad_()  # a gradient with history: still no history may reach any .grad
    learner(f"backward(loss, gradient) on the {label}", lambda: impl.backward(mine.root, given),
            CUSTOM_HINT)
    check_grad_mode_off(mine.grad_mode, f"backward(loss) on the {label}")
    for name, t in mine.leaves.items():
        if t.grad is not None and (t.grad.requires_grad or t.grad.grad_fn is not None):
            fail(f"{name}.grad after backward(loss, gradient) where gradient requires grad: it "
                 f"carries autograd history:\n{history_picture(t.grad)}\n"
                 "  Without create_graph, no gradient records a graph.\n"
                 "  Try: run the nodes and the accumulation under torch.no_grad().")


@pytest.mark.exercise("backward")
def test_backward_from_one_output_of_a_multi_output_op(impl, rng):
    p, q = random_shape(rng, 2, 4, 7)
    values = randn(p, q)
    k = int(rng.integers(1, p))
    gradient = randn(q)
    grads = []
    for run in ("torch", "yours"):
        a = values.clone().requires_grad_()
        root = a.tanh().unbind(0)[k]  # the root is output k of UnbindBackward0
        if run == "torch":
            torch.autograd.backward(root, gradient)
        else:
            learner(f"backward(y, gradient) with y = a.tanh().unbind(0)[{k}]",
                    lambda root=root: impl.backward(root, gradient),
                    "the root's gradient belongs in slot y.output_nr of y.grad_fn.")
        grads.append(a.grad)
    if grads[1] is None:
        fail(f"a.grad after backward(y, gradient) with y = a.tanh().unbind(0)[{k}]: None.")
    assert_close(grads[1], grads[0], f"a.grad after backward(y, gradient) with y = "
                 f"a.tanh().unbind(0)[{k}] (y is output {k} of its node)",
                 hint="seed the root node's slot y.output_nr, not slot 0: one slot per output "
                 "(len(y.grad_fn._input_metadata)).")


@pytest.mark.exercise("backward")
def test_backward_on_a_chain_of_3000_ops(impl, rng):
    n = 3000
    x = randn(int(rng.integers(2, 5)), requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0001 + 0.001
    learner(f"backward(loss) on a chain of {2 * n} nodes (y = y * 1.0001 + 0.001, {n} times)",
            lambda: impl.backward(y.sum()),
            "torch's engine walks a chain of any length; a recursive walk stops at Python's "
            "recursion limit (about 1000 frames). Use an explicit stack or queue.")
    if x.grad is None:
        fail(f"x.grad after backward on a chain of {2 * n} nodes: None.")
    assert_close(x.grad, torch.full_like(x, 1.0001 ** n), f"x.grad after backward on a chain of "
                 f"{2 * n} nodes")


ERRORS = ["a non-scalar root without a gradient", "a root that needs no gradient (no grad_fn)"]


@pytest.mark.exercise("backward")
def test_backward_refuses_what_torch_refuses(impl, rng):
    p, q = random_shape(rng, 2, 2, 6)
    for label in ERRORS:
        a = randn(p, q, requires_grad=True)
        root = a * 2 if label == ERRORS[0] else randn(p, q).sum()
        exc = None
        try:
            impl.backward(root)
        except NotImplementedError:
            raise
        except (RuntimeError, ValueError, TypeError) as e:
            exc = e
        except Exception as e:  # anything else (a ForbiddenAPI, say) is a failure of its own
            fail(f"backward(y) on {label} raised {type(e).__name__}: {e}.")
        if exc is None:
            fail(f"backward(y) on {label} returned normally; torch's Tensor.backward raises "
                 "RuntimeError here (\"grad can be implicitly created only for scalar outputs\", "
                 "\"element 0 of tensors does not require grad and does not have a grad_fn\").\n"
                 "  Try: seed with ones only when y has one element; raise RuntimeError when it "
                 "has no grad_fn.")
        if a.grad is not None:
            fail(f"backward(y) on {label}: raised, but a.grad was written first ({describe(a.grad)}).")
