"""Hidden checks for kata fx_passes. torch.fx and dynamo are the oracle.

The modules are programs: ``Net`` runs a list of steps in forward, so symbolic_trace unrolls
each program into a graph with the spellings the contract names (``a + b``, ``torch.add``,
``F.relu``, ``t.relu()``, a ReLU module, parameters, submodules, kwargs, nested args). Each
check runs a fixed corpus of programs on every seed, then random ones.

References: ``node_table`` against the check's own walk of torch.fx's trace;
``replace_calls`` against ``torch.fx.Transformer``; ``fuse_add_relu`` against
``torch.fx.subgraph_rewriter.replace_pattern`` with one pattern per spelling pair (its matcher
refuses a match whose inner add is read from outside, as the contract does; it also refuses
``relu(c + c)``, two pattern inputs bound to one node, so no program adds a value to itself);
``fold_constants`` against ``torch.fx.experimental.const_fold.split_const_subgraphs``;
``make_backend`` against what dynamo hands the backend in the same run. Every compile goes to
the learner's backend or a recording one, never to Inductor.
Graphs are compared as computations (expression trees from the output, names and order
aside) and as multisets of (op, target), which a dead node left behind changes.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import logging
import operator
import sys
import warnings
from collections.abc import Callable, Iterator

import pytest
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from checker.helpers import assert_close, fail, learner_caller, skip_guard_latency_profile

pytestmark = pytest.mark.kata("fx_passes")

if hasattr(torch, "_logging"):
    torch._logging.set_logs(dynamo=logging.ERROR)

_call = learner_caller("write the pass yourself on the Graph API (gm.graph.nodes, "
                      "inserting_before, call_function, replace_all_uses_with, erase_node, "
                      "gm.recompile()); torch.fx's rewriters are the checks' reference.")

F64 = torch.float64

# Inductor's own passes (its constant folder, pattern matcher, compiler) must not do the work:
# the checks never load them, so one that appears while the learner's code runs was loaded by
# it. (Other katas' checks may have loaded them into a warm worker before: only what appears
# during the call counts.)
_INDUCTOR = ("torch._inductor.compile_fx", "torch._inductor.constant_folding",
             "torch._inductor.pattern_matcher", "torch._inductor.freezing")


def inductor_loaded() -> frozenset:
    return frozenset(m for m in _INDUCTOR if m in sys.modules)


def no_inductor(what: str, before: frozenset) -> None:
    loaded = sorted(inductor_loaded() - before)
    if loaded:
        fail(f"{what}: your code loaded {', '.join(loaded)}. Inductor is off-limits in this kata: "
             "its cold start takes seconds, and its passes would do the exercise for you.\n"
             "  Try: work on the FX graph yourself; a backend may simply run gm.")


def call(what: str, fn: Callable, *args):
    """The learner's function under the rules; Inductor's modules must stay unloaded."""
    before = inductor_loaded()
    try:
        return _call(what, fn, *args)
    finally:
        no_inductor(what, before)


# ----------------------------------------------------------------------------- programs


def _steps() -> dict[str, Callable]:
    """Each step: (module, values, *operands) -> a new value of shape (n, d)."""
    return {
        # adds and relus, in every spelling the contract names (and some it excludes)
        "add": lambda m, v, i, j: v[i] + v[j],
        "tadd": lambda m, v, i, j: torch.add(v[i], v[j]),
        "tadd_alpha": lambda m, v, i, j: torch.add(v[i], v[j], alpha=0.5),
        "addc": lambda m, v, i, c: v[i] + c,
        "relu": lambda m, v, i: torch.relu(v[i]),
        "frelu": lambda m, v, i: F.relu(v[i]),
        "mrelu": lambda m, v, i: v[i].relu(),
        "relu_mod": lambda m, v, i: m.act(v[i]),
        "frelu_ip": lambda m, v, i: F.relu(v[i], inplace=True),  # only ever on a fresh add
        # other operators
        "mul": lambda m, v, i, j: v[i] * v[j],
        "sigmoid": lambda m, v, i: torch.sigmoid(v[i]),
        "msigmoid": lambda m, v, i: v[i].sigmoid(),
        "tanh": lambda m, v, i: torch.tanh(v[i]),
        "gelu": lambda m, v, i: F.gelu(v[i]),
        "lin": lambda m, v, i: m.proj(v[i]),
        "layers": lambda m, v, i: m.layers(v[i]),
        "mm_w": lambda m, v, i: v[i] @ m.w * 0.3,
        "addb": lambda m, v, i: v[i] + m.b,
        "center": lambda m, v, i: v[i] - torch.mean(v[i], dim=-1, keepdim=True),
        "cat_slice": lambda m, v, i, j: torch.cat([v[i], v[j]], dim=-1)[..., 1:m.d + 1],
        "to64": lambda m, v, i: v[i].to(torch.float64),
        "shape": lambda m, v, i: v[i] * (v[i].shape[-1] ** -0.5),
        # constant subgraphs: parameters only
        "w_t2": lambda m, v, i: v[i] @ (m.w.t() * 0.5),
        "b_exp": lambda m, v, i: v[i] + m.b.exp(),
        "wb": lambda m, v, i: v[i] @ (m.w.t() + m.b.exp()) * 0.3,
        "table": lambda m, v, i: v[i] * m.proj(m.table).sum(0),
        "w_sig": lambda m, v, i: v[i] * torch.sigmoid(m.w).mean(dim=0),
        "b_chain": lambda m, v, i: v[i] - torch.tanh(m.b * 2 + 1).relu(),
        "assert_b": lambda m, v, i: (torch._assert(m.b.abs().sum() >= 0, "b is finite"), v[i] * 1.5)[1],
        "buf": lambda m, v, i: v[i] * (m.s.exp() + 1),  # a buffer: symbolic_trace folds it itself
    }


STEPS = _steps()


class Net(nn.Module):
    """forward(x, y) runs ``program``: each step appends a value; ``outputs`` are returned
    (one value, or a tuple); ``dead`` steps are computed and dropped."""

    def __init__(self, program: list[tuple], outputs: list[int], d: int, seed: int,
                 extra: tuple[str, ...] = ()):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.d = d
        self.w = nn.Parameter(torch.randn(d, d, generator=g, dtype=F64))
        self.b = nn.Parameter(torch.randn(d, generator=g, dtype=F64) * 0.5)
        self.table = nn.Parameter(torch.randn(3, d, generator=g, dtype=F64))
        self.register_buffer("s", torch.rand(d, generator=g, dtype=F64))
        self.proj = nn.Linear(d, d, dtype=F64)
        self.layers = nn.Sequential(nn.Linear(d, d, dtype=F64), nn.Tanh())
        self.act = nn.ReLU()
        for name in extra:  # attributes a folding pass might want to name its constants
            setattr(self, name, nn.Parameter(torch.rand(d, generator=g, dtype=F64) + 0.5))
        self.extra = extra
        self.program = program
        self.outputs = outputs

    def forward(self, x, y):
        values = [x, y]
        for name, *operands in self.program:
            values.append(STEPS[name](self, values, *operands))
        out = values[self.outputs[-1]]
        for name in self.extra:
            out = out * getattr(self, name)
        if len(self.outputs) == 1:
            return out
        return (*[values[i] for i in self.outputs[:-1]], out)

    def describe(self) -> str:
        lines = [f"  v{k + 2} = {name}(" + ", ".join(f"v{o}" if isinstance(o, int) else repr(o) for o in ops) + ")"
                 for k, (name, *ops) in enumerate(self.program)]
        outs = ", ".join(f"v{i}" for i in self.outputs)
        extra = f" (times {', '.join('self.' + e for e in self.extra)})" if self.extra else ""
        return "\n".join(["forward(v0=x, v1=y):", *lines, f"  return {outs}{extra}"])


def _inputs(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randn(n, d, generator=g, dtype=F64)


def random_program(rng, kinds: list[str], length: int, weights: list[float] | None = None) -> tuple[list, list]:
    """A random program over x, y: every value is read by a later step or returned."""
    program: list[tuple] = []
    unread = {0, 1}
    p = None if weights is None else [w / sum(weights) for w in weights]
    for _ in range(length):
        kind = str(rng.choice(kinds, p=p))
        count = len(program) + 2
        arity = STEPS[kind].__code__.co_argcount - 2
        if kind == "addc":
            operands = (int(rng.integers(0, count)), float(round(rng.uniform(-1, 1), 2)))
        elif arity == 2:  # two distinct values: replace_pattern cannot bind a and b to one node
            operands = tuple(int(v) for v in rng.choice(count, size=2, replace=False))
        else:
            operands = (int(rng.integers(0, count)),)
        unread -= {o for o in operands if isinstance(o, int)}
        program.append((kind, *operands))
        unread.add(count)
    outputs = sorted(unread - {0, 1}) or [len(program) + 1]
    if outputs[-1] != len(program) + 1:
        outputs.append(len(program) + 1)
    return program, outputs


def trace(net: nn.Module) -> fx.GraphModule:
    """symbolic_trace of ``net``, leaving ``net`` as it was: tracing stores the constants it
    meets on the module it traces (``_tensor_constant0``; the GraphModule keeps its own
    reference), so a second trace would otherwise name them differently."""
    before = set(vars(net))
    gm = fx.symbolic_trace(net)
    for name in set(vars(net)) - before:
        delattr(net, name)
    return gm


def make_net(program, outputs, seed, extra=()) -> tuple[Net, tuple[torch.Tensor, torch.Tensor]]:
    d = 3 + seed % 3
    return Net(program, outputs, d, seed, extra), _inputs(2 + seed % 4, d, seed + 1)


# ----------------------------------------------------------------------------- comparing graphs


def target_name(target) -> str:
    """A target as text, without memory addresses (stable across runs)."""
    if isinstance(target, str):
        return target
    if getattr(target, "__module__", "") in ("_operator", "operator", "torch", "torch.nn.functional",
                                              "torch._C._nn", None) or "torch" in repr(target):
        try:
            name = fx.node._get_qualified_name(target)
        except Exception:
            name = None
        if name and "0x" not in name:
            return name.replace("_operator.", "operator.")
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or type(target).__name__
    module = {"_operator": "operator", "torch._C._VariableFunctions": "torch",
              "torch._C._nn": "torch._C._nn"}.get(module, module)
    if module.startswith("checker.") or "<locals>" in name:
        return name.rsplit(".", 1)[-1]
    return f"{module}.{name}" if module else name


def _render(value, expr) -> str:
    if isinstance(value, fx.Node):
        return expr(value)
    if isinstance(value, tuple | list):
        inner = ", ".join(_render(v, expr) for v in value)
        if isinstance(value, tuple):
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        return f"[{inner}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v, expr)}" for k, v in value.items()) + "}"
    if callable(value):
        return target_name(value)
    return repr(value)


def computation(gm: fx.GraphModule, constant: Callable[[fx.Node], bool] = lambda n: False) -> str:
    """What gm's output computes, as nested calls of its inputs: names and order aside.
    ``constant(node)``: nodes shown as the leaf "const"."""
    memo: dict[fx.Node, str] = {}

    def expr(node: fx.Node) -> str:
        if node not in memo:
            if constant(node):
                memo[node] = "const"
            elif node.op == "placeholder":
                memo[node] = str(node.target)
            elif node.op == "get_attr":
                memo[node] = f"self.{node.target}"
            else:
                args = [_render(a, expr) for a in node.args]
                args += [f"{k}={_render(v, expr)}" for k, v in node.kwargs.items()]
                head = target_name(node.target)
                head = {"call_method": f".{head}", "call_module": f"self.{head}"}.get(node.op, head)
                memo[node] = f"{head}({', '.join(args)})"
        return memo[node]

    out = next(n for n in gm.graph.nodes if n.op == "output")
    return _render(out.args[0], expr)


def op_counts(gm: fx.GraphModule, skip: Callable[[fx.Node], bool] = lambda n: False) -> collections.Counter:
    return collections.Counter((n.op, target_name(n.target)) for n in gm.graph.nodes if not skip(n))


def _counter_diff(expected: collections.Counter, got: collections.Counter) -> str:
    extra = got - expected
    missing = expected - got
    lines = [f"    one node too many: {op} {t}" if k == 1 else f"    {k} nodes too many: {op} {t}"
             for (op, t), k in sorted(extra.items())]
    lines += [f"    one node missing: {op} {t}" if k == 1 else f"    {k} nodes missing: {op} {t}"
              for (op, t), k in sorted(missing.items())]
    return "\n".join(lines)


def _dead(gm: fx.GraphModule) -> list[str]:
    return [f"{n.op} {target_name(n.target)} ({n.name})" for n in gm.graph.nodes
            if not n.users and not n.is_impure()]  # placeholders and output are impure


def _check_graph(what: str, gm: fx.GraphModule, expected: fx.GraphModule, net: Net, hint: str,
                 constant=lambda n: False, skip_expected=lambda n: False) -> None:
    got_expr = computation(gm, constant)
    exp_expr = computation(expected, constant)
    if got_expr != exp_expr:
        fail(f"{what}: the graph computes\n    {_short(got_expr)}\n  expected\n    {_short(exp_expr)}\n"
             f"  The module:\n{_indent(net.describe())}\n  Try: {hint}")
    dead = _dead(gm)
    if dead:
        fail(f"{what}: the graph computes the right thing, but these nodes are read by no "
             f"node: {', '.join(dead)}.\n  The module:\n{_indent(net.describe())}\n"
             "  Try: erase a node once nothing reads it (gm.graph.erase_node, users first), "
             "or gm.graph.eliminate_dead_code().")
    got_c = op_counts(gm, lambda n: n.op == "get_attr" and constant(n))
    exp_c = op_counts(expected, lambda n: skip_expected(n) or n.op == "get_attr" and constant(n))
    if got_c != exp_c:
        fail(f"{what}: the graph computes the right thing, but its nodes differ:\n"
             f"{_counter_diff(exp_c, got_c)}\n  The module:\n{_indent(net.describe())}\n  Try: {hint}")


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _check_runs(what: str, gm: fx.GraphModule, net: Net, inputs, hint: str) -> None:
    if gm.code.strip() != gm.graph.python_code(root_module="self").src.strip():
        fail(f"{what}: gm.graph was changed, but gm.code is still the code of the old graph:\n"
             f"{_indent(gm.code.strip())}\n  Try: a change to the graph reaches forward only "
             "through gm.recompile(), which regenerates the code from the graph.")
    with torch.no_grad():
        expected = net(*inputs)
    try:
        got = gm(*inputs)
    except Exception as exc:
        fail(f"{what}: running the rewritten gm raised {type(exc).__name__}: "
             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}\n"
             f"  The module:\n{_indent(net.describe())}\n  Try: {hint}")
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, tuple) else (got,)
    if len(got) != len(expected):
        fail(f"{what}: the rewritten gm returned {len(got)} values, expected {len(expected)}.")
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert_close(g.detach() if isinstance(g, torch.Tensor) else g, e, f"{what}: output {k} of the rewritten gm",
                     hint=hint)


def _check_count(what: str, got, expected: int, net: Net, hint: str) -> None:
    if type(got) is not int or got != expected:
        fail(f"{what} returned {got!r}, expected {expected}.\n  The module:\n"
             f"{_indent(net.describe())}\n  Try: {hint}")


# ----------------------------------------------------------------------------- node_table


def _reference_table(module: nn.Module) -> list[tuple]:
    gm = trace(module)
    return [(n.name, n.op, n.target, fx.node.map_arg(n.args, lambda a: a.name),
             tuple(u.name for u in n.users)) for n in gm.graph.nodes]


def _fmt_row(row) -> str:
    if type(row) is not tuple or len(row) != 5:
        return repr(row)[:200]
    name, op, target, args, users = row
    return f"({name!r}, {op!r}, {target_name(target)}, {_render(args, repr)}, {users!r})"


def _kind(value) -> type:
    """FX keeps lists and dicts in args as immutable_list / immutable_dict: a plain list or
    dict is the same answer."""
    for base in (list, dict):
        if isinstance(value, base):
            return base
    return type(value)


def _same(a, b) -> bool:
    if isinstance(b, fx.Node) or isinstance(a, fx.Node):
        return False
    if _kind(a) is not _kind(b):
        return False
    if isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    if callable(b) and not isinstance(b, type):
        return a is b
    return a == b


_FIELDS = ("name", "op", "target", "args", "users")
_FIELD_HINTS = {
    "name": "node.name is unique in the graph; a placeholder's target is the parameter's own "
            "name, which may differ (input -> input_1), and a call_module's target is a path "
            "(layers.0) where its name is layers_0.",
    "op": "node.op, as FX keeps it.",
    "target": "node.target itself: the function object for call_function (compare it with `is`, "
              "not its text), a string for the other ops.",
    "args": "node.args with every Node replaced by its name at any depth (the output node's args "
            "hold a tuple of Nodes; torch.cat's a list): torch.fx.node.map_arg walks them.",
    "users": "node.users: the nodes that READ this one (not the ones it reads: that is "
             "all_input_nodes), in their order.",
}


def _check_table(impl, net: Net, label: str) -> None:
    expected = _reference_table(net)
    what = f"node_table({label})"
    got = call(what, impl.node_table, copy.deepcopy(net))
    if type(got) is not list:
        fail(f"{what}: expected a list of tuples, one per node, got {type(got).__name__}.")
    ops = [r[1] for r in expected]
    if len(got) != len(expected):
        fail(f"{what}: {len(got)} rows, expected {len(expected)} (one per node of the traced graph, "
             f"ops {ops}).\n  The module:\n{_indent(net.describe())}\n  Try: every node, placeholders "
             "and the output included, in gm.graph.nodes order.")
    for k, (row, exp) in enumerate(zip(got, expected, strict=True)):
        if type(row) is not tuple or len(row) != 5:
            fail(f"{what}: row {k} is {_fmt_row(row)}; expected a 5-tuple (name, op, target, args, users) "
                 f"like {_fmt_row(exp)}.")
        for field, g, e in zip(_FIELDS, row, exp, strict=True):
            if not _same(g, e):
                kind = ""
                if _kind(g) is not _kind(e) and isinstance(g, tuple | list) and isinstance(e, tuple | list):
                    kind = f" It is a {_kind(g).__name__}; the contract asks for a {_kind(e).__name__} here."
                fail(f"{what}: row {k} ({exp[0]}, a {exp[1]} node): its {field} is wrong.\n"
                     f"  expected {_fmt_row(exp)}\n  got      {_fmt_row(row)}\n"
                     f"  The module:\n{_indent(net.describe())}\n  Try:{kind} {_FIELD_HINTS[field]}")


class _InputNamed(nn.Module):
    """A parameter called ``input`` (placeholder input_1), a nested submodule (layers.0), a
    parameter read twice, a method with a dtype, a list argument, a slice, kwargs, an unused
    value, a tuple output."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(3, 3, dtype=F64), nn.ReLU())
        self.w = nn.Parameter(torch.ones(3, dtype=F64))

    def describe(self) -> str:
        return ("forward(x, input):\n  h = self.layers(x + self.w)\n  _unused = torch.sigmoid(h)\n"
                "  both = torch.cat([h, input * self.w], dim=1)\n"
                "  return both[:, 1:4].to(torch.float32), torch.sum(h, dim=-1, keepdim=True)")

    def forward(self, x, input):
        h = self.layers(x + self.w)
        _unused = torch.sigmoid(h)
        both = torch.cat([h, input * self.w], dim=1)
        return both[:, 1:4].to(torch.float32), torch.sum(h, dim=-1, keepdim=True)


TABLE_CORPUS = [
    ("a module with `input` and submodule paths", lambda: _InputNamed()),
    ("a module of every spelling", lambda: Net([("add", 0, 1), ("relu", 2), ("tadd", 3, 0), ("mrelu", 4),
                                                ("cat_slice", 5, 2), ("center", 6), ("layers", 7),
                                                ("to64", 8), ("relu_mod", 9), ("shape", 10), ("addc", 11, 0.5)],
                                               [3, 12], 4, 7)),
]


@pytest.mark.exercise("node_table")
def test_node_table_corpus(impl, rng):
    for label, make in TABLE_CORPUS:
        _check_table(impl, make(), label)


@pytest.mark.exercise("node_table")
def test_node_table_random(impl, rng):
    kinds = [k for k in STEPS if k not in ("addc",)] + ["addc"]
    for _ in range(3):
        program, outputs = random_program(rng, kinds, int(rng.integers(4, 9)))
        net, _ = make_net(program, outputs, int(rng.integers(0, 10_000)))
        _check_table(impl, net, "a random module")


# ----------------------------------------------------------------------------- replace_calls


def counting(fn: Callable, name: str) -> tuple[Callable, list]:
    """``fn`` under a new name, counting its calls (to see that the regenerated code calls it)."""
    calls: list[int] = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name
    return wrapper, calls


def _hard_tanh(x):
    return x.clamp(-1, 1)


def _leaky(x, inplace=False):
    return F.leaky_relu(x, 0.1)


REPLACEMENTS = [  # (old, what new computes, label)
    (torch.relu, torch.tanh, "torch.relu -> tanh"),
    (torch.sigmoid, _hard_tanh, "torch.sigmoid -> hard tanh"),
    (operator.add, torch.sub, "operator.add -> sub"),
    (F.relu, _leaky, "F.relu -> leaky relu"),
    (operator.mul, torch.mul, "operator.mul -> torch.mul"),
]


def _swap_reference(gm: fx.GraphModule, old, new) -> tuple[fx.GraphModule, int]:
    count = [0]

    class Swap(fx.Transformer):
        def call_function(self, target, args, kwargs):
            if target is old:
                count[0] += 1
                target = new
            return super().call_function(target, args, kwargs)

    return Swap(gm).transform(), count[0]


def _check_replace(impl, net: Net, inputs, old, make_new, label: str) -> None:
    new, calls = counting(make_new, f"new_{target_name(make_new).rsplit('.', 1)[-1]}")
    expected, count = _swap_reference(trace(net), old, new)
    gm = trace(net)
    what = f"replace_calls(gm, {target_name(old)}, new) [{label}]"
    hint = ("match call_function nodes whose target IS old (`is`, not the name: torch.relu and "
            "F.relu are different functions), change node.target (the args AND kwargs stay), "
            "then gm.recompile() so that forward calls new.")
    got = call(what, impl.replace_calls, gm, old, new)
    _check_count(what, got, count, net, hint)
    _check_graph(what, gm, expected, net, hint)
    with torch.no_grad():  # the reference: the swapped graph, run
        want = expected(*inputs)
    calls.clear()
    got_out = gm(*inputs)
    if len(calls) != count:
        fail(f"{what}: running gm afterwards called new {len(calls)} time(s), expected {count}: "
             f"gm.code still reads\n{_indent(gm.code.strip())}\n  Try: a change to the graph "
             "reaches forward only through gm.recompile(), which regenerates the code.")
    want = want if isinstance(want, tuple) else (want,)
    got_out = got_out if isinstance(got_out, tuple) else (got_out,)
    for k, (g, e) in enumerate(zip(got_out, want, strict=True)):
        assert_close(g.detach(), e, f"{what}: output {k}", hint=hint)


REPLACE_CORPUS = [  # programs where a same-named function or a method must stay
    ([("relu", 0), ("frelu", 1), ("mrelu", 2), ("add", 2, 3), ("relu_mod", 5)], [4, 6]),
    ([("sigmoid", 0), ("msigmoid", 1), ("mul", 2, 3), ("tadd", 4, 0), ("add", 5, 1)], [6]),
    ([("tanh", 0), ("center", 2), ("lin", 3)], [4]),  # nothing to replace
]
# (program, replacement): every replacement where a same-named function, a method or a
# module must stay, and one where there is nothing to replace.
REPLACE_CASES = [(0, 0), (0, 3), (0, 2), (1, 1), (1, 2), (1, 4), (2, 0)]


@pytest.mark.exercise("replace_calls")
def test_replace_calls_corpus(impl, rng):
    for k, r in REPLACE_CASES:
        program, outputs = REPLACE_CORPUS[k]
        net, inputs = make_net(program, outputs, 11 + k)
        old, new, label = REPLACEMENTS[r]
        _check_replace(impl, net, inputs, old, new, label)


@pytest.mark.exercise("replace_calls")
def test_replace_calls_random(impl, rng):
    kinds = ["add", "tadd", "relu", "frelu", "mrelu", "relu_mod", "mul", "sigmoid", "msigmoid",
             "tanh", "lin", "addb", "center"]
    for _ in range(3):
        program, outputs = random_program(rng, kinds, int(rng.integers(4, 9)))
        net, inputs = make_net(program, outputs, int(rng.integers(0, 10_000)))
        old, new, label = REPLACEMENTS[int(rng.integers(0, len(REPLACEMENTS)))]
        _check_replace(impl, net, inputs, old, new, label)


# ----------------------------------------------------------------------------- fuse_add_relu


def _add_relu(a, b):
    return torch.relu(a + b)


def _patterns() -> list[Callable]:
    adds = (lambda a, b: a + b, torch.add)
    relus = (torch.relu, F.relu, lambda t: t.relu())

    def make(add, relu):
        def pattern(a, b):
            return relu(add(a, b))

        return pattern

    return [fx.symbolic_trace(make(add, relu)) for add in adds for relu in relus]


PATTERNS = _patterns()  # traced once: replace_pattern would trace a function on every call


def _fuse_reference(gm: fx.GraphModule, fused: Callable) -> int:
    from torch.fx import subgraph_rewriter

    graph = fx.Graph()
    a, b = graph.placeholder("a"), graph.placeholder("b")
    graph.output(graph.call_function(fused, (a, b)))
    replacement = fx.GraphModule(nn.Module(), graph)
    total = 0
    while True:  # a fused pair may make another one visible: relu(fused(a, b) + c)
        found = sum(len(subgraph_rewriter.replace_pattern(gm, p, replacement)) for p in PATTERNS)
        total += found
        if not found:
            return total


def _check_fuse(impl, net: Net, inputs, label: str) -> None:
    fused, calls = counting(_add_relu, "fused")
    expected = trace(net)
    count = _fuse_reference(expected, fused)
    gm = trace(net)
    what = f"fuse_add_relu(gm, fused) [{label}]"
    hint = ("for each relu (torch.relu, F.relu, .relu()) whose one argument is an add "
            "(operator.add or torch.add, two args, no kwargs) that nothing else reads, insert "
            "fused(*add.args) before the relu, move the relu's users to it, erase the relu and "
            "the add, and gm.recompile().")
    got = call(what, impl.fuse_add_relu, gm, fused)
    _check_count(what, got, count, net, hint)
    _check_graph(what, gm, expected, net, hint)
    calls.clear()
    _check_runs(what, gm, net, inputs, hint)
    if len(calls) != count:
        fail(f"{what}: running gm afterwards called fused {len(calls)} time(s), expected {count}: "
             f"gm.code reads\n{_indent(gm.code.strip())}\n  Try: a change to the graph reaches "
             "forward only through gm.recompile().")


FUSE_CORPUS = [  # (label, program, outputs)
    ("every spelling once", [("add", 0, 1), ("relu", 2), ("tadd", 3, 0), ("frelu", 4), ("add", 5, 1), ("mrelu", 6)], [7]),
    ("an add read twice", [("add", 0, 1), ("relu", 2), ("mul", 3, 2)], [4]),
    ("an add returned too", [("tadd", 0, 1), ("mrelu", 2)], [2, 3]),
    ("a number operand, both orders", [("addc", 0, 0.5), ("frelu", 2), ("tadd", 1, 3), ("relu", 4)], [5]),
    ("torch.add with alpha, a ReLU module", [("tadd_alpha", 0, 1), ("relu", 2), ("add", 3, 0), ("relu_mod", 4),
                                             ("add", 5, 1), ("mrelu", 6)], [7]),
    ("a relu read twice", [("add", 0, 1), ("relu", 2), ("mul", 3, 3)], [4]),
    ("a relu read by two nodes", [("tadd", 0, 1), ("frelu", 2), ("mul", 3, 0), ("tanh", 3)], [4, 5]),
    ("F.relu(inplace=True)", [("add", 0, 1), ("frelu_ip", 2), ("tadd", 3, 1), ("frelu", 4)], [5]),
    ("nothing to fuse", [("mul", 0, 1), ("relu", 2), ("sigmoid", 3), ("add", 4, 0)], [5]),
    ("another method on an add", [("add", 0, 1), ("msigmoid", 2), ("tadd", 3, 0), ("tanh", 4)], [5]),
]


@pytest.mark.exercise("fuse_add_relu")
def test_fuse_add_relu_corpus(impl, rng):
    for k, (label, program, outputs) in enumerate(FUSE_CORPUS):
        net, inputs = make_net(program, outputs, 21 + k)
        _check_fuse(impl, net, inputs, label)


@pytest.mark.exercise("fuse_add_relu")
def test_fuse_add_relu_random(impl, rng):
    kinds = ["add", "tadd", "tadd_alpha", "addc", "relu", "frelu", "mrelu", "relu_mod", "mul", "tanh", "lin", "msigmoid"]
    weights = [4, 3, 1, 2, 3, 3, 3, 1, 1, 1, 1, 1]
    for _ in range(4):
        program, outputs = random_program(rng, kinds, int(rng.integers(5, 11)), weights)
        net, inputs = make_net(program, outputs, int(rng.integers(0, 10_000)))
        _check_fuse(impl, net, inputs, "a random module")


# ----------------------------------------------------------------------------- fold_constants


def _fold_reference(net: Net) -> tuple[fx.GraphModule, int]:
    """const_fold's folded module (run once), and the number of call nodes it folded."""
    from torch.fx.experimental import const_fold

    traced = trace(net)
    calls = sum(n.op in ("call_function", "call_method", "call_module") for n in traced.graph.nodes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folded = const_fold.split_const_subgraphs(trace(net))
        folded.run_folding()
    left = sum(n.op in ("call_function", "call_method", "call_module") and not _folded_read(n)
               for n in folded.graph.nodes)
    return folded, calls - left


def _folded_read(node: fx.Node) -> bool:
    """const_fold's way of reading a folded value: getitem(get_attr _FX_CONST_FOLDED_ATTRS, i)."""
    return node.op == "call_function" and node.target is operator.getitem and isinstance(
        node.args[0], fx.Node) and node.args[0].op == "get_attr" and "_FX_CONST_FOLDED_ATTRS" in str(node.args[0].target)


def _is_constant_leaf(node: fx.Node) -> bool:
    return node.op == "get_attr" or _folded_read(node)


def _attr_value(gm: nn.Module, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _check_fold(impl, net: Net, inputs, label: str) -> None:
    expected, count = _fold_reference(net)
    gm = trace(net)
    before = {name: t.detach().clone() for name, t in gm.named_parameters()}
    what = f"fold_constants(gm) [{label}]"
    hint = ("a node is constant when it is a get_attr or all its input nodes are constant; fold "
            "every constant call node (call_function, call_method AND call_module), keep only "
            "the values the rest reads, as new attributes, and recompile.")
    got = call(what, impl.fold_constants, gm)
    _check_count(what, got, count, net, hint)
    _check_graph(what, gm, expected, net, hint, constant=_is_constant_leaf,
                 skip_expected=lambda n: _folded_read(n) or n.op == "get_attr")
    for name, value in before.items():
        now = _attr_value(gm, name)
        if not isinstance(now, torch.Tensor) or now.shape != value.shape or not torch.equal(now.detach(), value):
            fail(f"{what}: the parameter {name!r} of gm changed (or was replaced).\n"
                 f"  The module:\n{_indent(net.describe())}\n  Try: store each folded value "
                 "under a NEW name (check hasattr(gm, name) first); never overwrite an attribute.")
    for node in gm.graph.nodes:
        if node.op == "get_attr" and node.target not in before:
            value = _attr_value(gm, node.target)
            if isinstance(value, torch.Tensor) and value.requires_grad:
                fail(f"{what}: the folded value gm.{node.target} requires grad (it holds the graph "
                     f"of how it was computed from the parameters).\n  Try: compute the constants "
                     "under torch.no_grad(): they are data now, not a computation to "
                     "differentiate.")
    _check_runs(what, gm, net, inputs, hint + " (Is gm.recompile() called after the change?)")


FOLD_CORPUS = [
    ("a transposed weight", [("w_t2", 0), ("add", 2, 1)], [3], ()),
    ("a chain of four", [("b_chain", 0), ("b_exp", 2)], [3], ()),
    ("two constants meeting", [("wb", 0), ("add", 2, 1)], [3], ()),
    ("a submodule on a parameter", [("table", 0), ("w_sig", 1), ("mul", 2, 3)], [4], ()),
    ("a torch._assert on the parameters (impure: it stays)", [("assert_b", 0), ("b_exp", 2)], [3], ()),
    ("a buffer (traced as a constant already) and nothing to fold", [("buf", 0), ("lin", 2), ("mm_w", 3)], [4], ()),
    ("names a pass might pick", [("w_t2", 0), ("b_exp", 1), ("add", 2, 3)], [4],
     ("_folded_0", "folded_0", "_const_0", "const_0", "_tensor_constant1", "c0", "_fx_const_0")),
]


@pytest.mark.exercise("fold_constants")
def test_fold_constants_corpus(impl, rng):
    for k, (label, program, outputs, extra) in enumerate(FOLD_CORPUS):
        net, inputs = make_net(program, outputs, 31 + k, extra)
        _check_fold(impl, net, inputs, label)


@pytest.mark.exercise("fold_constants")
def test_fold_constants_random(impl, rng):
    kinds = ["w_t2", "b_exp", "table", "w_sig", "b_chain", "add", "relu", "mul", "lin", "mm_w", "addb", "buf",
             "assert_b"]
    for _ in range(3):
        program, outputs = random_program(rng, kinds, int(rng.integers(3, 8)))
        net, inputs = make_net(program, outputs, int(rng.integers(0, 10_000)))
        _check_fold(impl, net, inputs, "a random module")


@pytest.mark.exercise("fold_constants")
def test_fold_constants_twice(impl, rng):
    """A folded graph has nothing left to fold: a second call folds 0 and changes nothing."""
    net, inputs = make_net([("w_t2", 0), ("b_chain", 2), ("add", 3, 1)], [4], int(rng.integers(0, 100)))
    gm = trace(net)
    call("fold_constants(gm)", impl.fold_constants, gm)
    code = gm.code
    again = call("fold_constants(gm) on its own result", impl.fold_constants, gm)
    _check_count("fold_constants(gm) on its own result", again, 0, net,
                 "count the constant call nodes you folded: after a fold only get_attrs are constant.")
    if gm.code != code:
        fail("fold_constants(gm) on its own result changed the graph again:\n"
             f"  before\n{_indent(code.strip())}\n  after\n{_indent(gm.code.strip())}")


# ----------------------------------------------------------------------------- make_backend


@contextlib.contextmanager
def fresh_dynamo() -> Iterator[None]:
    torch.compiler.reset()
    try:
        yield
    finally:
        torch.compiler.reset()


def _record(gm: fx.GraphModule, example_inputs) -> dict:
    return {"ops": [n.target for n in gm.graph.nodes if n.op in ("call_function", "call_method", "call_module")],
            "inputs": [tuple(x.shape) if isinstance(x, torch.Tensor) else "sym" for x in example_inputs],
            "calls": 0}


def _fmt_record(rec) -> str:
    if type(rec) is not dict:
        return repr(rec)[:200]
    ops = rec.get("ops")
    ops_text = "[" + ", ".join(target_name(t) for t in ops) + "]" if isinstance(ops, list) else repr(ops)
    rest = ", ".join(f"{k!r}: {v!r}" for k, v in rec.items() if k != "ops")
    return "{'ops': " + ops_text + (", " + rest if rest else "") + "}"


class _Spy:
    """Stands between dynamo and the learner's backend: computes each graph's expected record
    from what dynamo hands over, runs the backend under the kata's rules, counts the runs."""

    def __init__(self, impl, backend):
        self.impl = impl
        self.backend = backend
        self.expected: list[dict] = []
        self.error: BaseException | None = None

    def __call__(self, gm, example_inputs):
        record = _record(gm, example_inputs)
        self.expected.append(record)
        before = inductor_loaded()
        try:
            with self.impl.rules():
                compiled = self.backend(gm, example_inputs)
            no_inductor("your backend", before)
        except BaseException as exc:
            self.error = exc
            raise
        if not callable(compiled):
            self.error = TypeError(f"the backend returned {type(compiled).__name__}, not a callable")
            raise self.error

        def run(*args):
            record["calls"] += 1
            with self.impl.rules():
                return compiled(*args)

        return run


def _lin_relu():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3, dtype=F64), nn.ReLU())


def _broken(x, y):
    z = torch.relu(x + y)
    torch._dynamo.graph_break()
    return z.sum(-1).sigmoid() * 2


def _plain(x, y):
    return torch.tanh(x) * y.sigmoid() + x.sum()


def _run_backend(impl, label: str, fn, calls: list[tuple], dynamic) -> None:
    log: list = []
    what = f"make_backend(log) [{label}]"
    backend = call(what, impl.make_backend, log)
    if not callable(backend):
        fail(f"{what} returned {type(backend).__name__}; expected the backend, a function (gm, example_inputs).")
    if log:
        fail(f"{what}: make_backend itself appended to log ({len(log)} entries) before any compile.")
    spy = _Spy(impl, backend)
    shapes = []
    with fresh_dynamo():
        compiled = torch.compile(fn, backend=spy, dynamic=dynamic)
        for args in calls:
            shapes.append([tuple(a.shape) for a in args])
            with torch.no_grad():
                want = fn(*args)
            try:
                got = compiled(*args)
            except Exception as exc:
                cause = spy.error or exc
                text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
                if isinstance(cause, NotImplementedError | AssertionError):
                    raise cause from None
                fail(f"{what}: torch.compile(fn, backend=your backend) with inputs of shapes {shapes[-1]} "
                     f"raised {type(cause).__name__}: {text}\n  Try: the backend returns a callable that "
                     "takes the graph's inputs (*args) and returns what gm returns.")
            assert_close(got, want, f"{what}: the compiled function's output for inputs of shapes {shapes[-1]}",
                         hint="the callable your backend returns must compute what gm computes.")
    if type(log) is not list or len(log) != len(spy.expected):
        fail(f"{what}: dynamo handed your backend {len(spy.expected)} graph(s) over calls with shapes "
             f"{shapes}; log holds {len(log)} entries.\n  Try: one dict per call of the backend, appended "
             "to the caller's own list.")
    for k, (got, exp) in enumerate(zip(log, spy.expected, strict=True)):
        if type(got) is not dict or set(got) != set(exp):
            fail(f"{what}: log[{k}] is {_fmt_record(got)}; expected a dict with keys 'ops', 'inputs', 'calls'.")
        ops_ok = type(got["ops"]) is list and len(got["ops"]) == len(exp["ops"]) and all(
            (g is e) if not isinstance(e, str) else g == e for g, e in zip(got["ops"], exp["ops"], strict=True))
        if not ops_ok or got["inputs"] != exp["inputs"] or type(got["inputs"]) is not list or got["calls"] != exp["calls"] \
                or type(got["calls"]) is not int:
            field = "ops" if not ops_ok else "inputs" if got["inputs"] != exp["inputs"] or type(got["inputs"]) is not list else "calls"
            hints = {"ops": "node.target of every call_function, call_method and call_module node of gm, in "
                            "order (placeholders, get_attr and output are not calls).",
                     "inputs": "one entry per example input, in order: tuple(t.shape) for a tensor (the "
                               "parameters dynamo lifted to inputs included), 'sym' for a symbolic size.",
                     "calls": "each graph has its own count, raised when the callable returned for THAT graph "
                              "runs (not when it is compiled, and not the latest graph's count)."}
            fail(f"{what}: over calls with shapes {shapes}, dynamo made {len(exp)} graph(s); log[{k}]'s "
                 f"{field} is wrong.\n  expected {_fmt_record(exp)}\n  got      {_fmt_record(got)}\n"
                 f"  Try: {hints[field]}")


@pytest.mark.exercise("make_backend")
def test_make_backend_static(impl, rng):
    n, d = (int(v) for v in rng.choice(range(2, 7), size=2, replace=False))
    x, y = torch.randn(n, d, dtype=F64), torch.randn(n, d, dtype=F64)
    x2 = torch.randn(n + 1, d, dtype=F64)
    _run_backend(impl, "a function, the same shapes twice, then a new shape (dynamic=False)", _plain,
                 [(x, y), (x.clone(), y.clone()), (x2, x2.clone())], dynamic=False)


@pytest.mark.exercise("make_backend")
def test_make_backend_graph_break_and_module(impl, rng):
    n, d = (int(v) for v in rng.choice(range(2, 7), size=2, replace=False))
    x, y = torch.randn(n, d, dtype=F64), torch.randn(n, d, dtype=F64)
    _run_backend(impl, "a graph break: two graphs", _broken, [(x, y), (y, x), (x, x.clone())], dynamic=False)
    net = _lin_relu()
    _run_backend(impl, "an nn.Module (its parameters become graph inputs)", net,
                 [(torch.randn(n, 4, dtype=F64),), (torch.randn(n, 4, dtype=F64),)], dynamic=False)


@pytest.mark.exercise("make_backend")
def test_make_backend_dynamic(impl, rng):
    n, d = (int(v) for v in rng.choice(range(2, 7), size=2, replace=False))
    _run_backend(impl, "dynamic=True: symbolic sizes among the example inputs", _plain,
                 [(torch.randn(n, d, dtype=F64), torch.randn(n, d, dtype=F64)),
                  (torch.randn(n + 2, d, dtype=F64), torch.randn(n + 2, d, dtype=F64))], dynamic=True)


# ----------------------------------------------------------------------------- warm-up


def _warm(checks: set[str] | None = None) -> None:
    """Pay symbolic_trace's, the rewriter's, const_fold's and dynamo's lazy set-up once, at
    collection, so each check's time is its own."""
    skip_guard_latency_profile()
    net, inputs = make_net([("add", 0, 1), ("relu", 2), ("w_t2", 3), ("table", 4)], [5], 1)
    _fuse_reference(trace(net), _add_relu)
    _fold_reference(net)
    _swap_reference(trace(net), torch.relu, torch.tanh)
    if checks is None or any(c.startswith("test_make_backend") for c in checks):
        with fresh_dynamo():
            for dynamic in (False, True):
                torch.compile(_plain, backend=lambda gm, ex: gm.forward, dynamic=dynamic)(*inputs)
            torch.compile(_broken, backend=lambda gm, ex: gm.forward)(*inputs)


_warm()
kata_warm = _warm
