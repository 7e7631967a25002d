"""Kata 21 — fx_passes: the graph below torch.compile, read, rewritten and handed to a backend.

``torch.fx`` turns a module's forward into a ``GraphModule``: a ``Graph`` of ``Node``s (each
with an ``op``, a ``target``, ``args``/``kwargs`` and ``users``) plus the Python code
generated from it. Compilers work on that graph: they read it, rewrite it with passes, and
hand the result to a backend. torch.compile's dynamo produces exactly such a GraphModule and
gives it, with example inputs, to its backend (Inductor by default; yours here).

Here you read a graph, write three passes on the Graph API (replace an operator, fuse
add + relu, fold constants) and write a torch.compile backend of your own.
Rules: torch.fx's own rewriters are off-limits inside your functions —
``torch.fx.subgraph_rewriter.replace_pattern`` (and ``replace_pattern_with_filters``), its
matcher ``SubgraphMatcher``, and ``torch.fx.experimental.const_fold.split_const_subgraphs``:
the checks use them as the reference. So are ``torch.compile`` and looking up dynamo's
backends (Inductor takes seconds to start; the checks compile with your backend).
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import operator  # noqa: F401 — a + b in a traced forward calls operator.add
from collections.abc import Callable

import torch
import torch.fx as fx
import torch.nn.functional as F  # noqa: F401


def node_table(module: torch.nn.Module) -> list[tuple]:
    """Trace ``module`` with ``torch.fx.symbolic_trace`` and describe every node, in graph order.

    One tuple per node: ``(name, op, target, args, users)``:

    - ``name``: the node's name (unique in the graph: ``input_1`` for a parameter called
      ``input``, ``layers_0`` for the submodule ``layers.0``);
    - ``op``: one of "placeholder", "get_attr", "call_function", "call_method",
      "call_module", "output";
    - ``target``: the node's target as FX keeps it: the function object itself for
      call_function (``operator.add``, ``torch.relu``), a string for every other op;
    - ``args``: the node's positional args with every Node in them, however deeply nested in
      tuples, lists or dicts, replaced by that node's name; everything else (numbers, None,
      dtypes, ...) as it is; a tuple, like ``node.args``. (kwargs are not part of the row.)
    - ``users``: a tuple of the names of the nodes that read this one, in the order FX
      keeps them.

    ``module`` is left as it was. Returns a new list.

    Example:
        >>> class AddRelu(torch.nn.Module):
        ...     def forward(self, x, y):
        ...         return torch.relu(x + y)
        >>> for row in node_table(AddRelu()):
        ...     print(row)
        ('x', 'placeholder', 'x', (), ('add',))
        ('y', 'placeholder', 'y', (), ('add',))
        ('add', 'call_function', <built-in function add>, ('x', 'y'), ('relu',))
        ('relu', 'call_function', <built-in method relu of type object at 0x...>, ('add',), ('output',))
        ('output', 'output', 'output', ('relu',), ())
    """
    raise NotImplementedError("node_table: see `kata lesson`, or `kata hint` for a nudge")


def replace_calls(gm: fx.GraphModule, old: Callable, new: Callable) -> int:
    """Make every ``call_function`` node of ``gm`` whose target is ``old`` call ``new`` instead.

    The same args and kwargs, the same place in the graph, the same users. Only
    call_function nodes whose target IS ``old`` (the same object) change: a different
    function with the same name (``torch.relu`` and ``torch.nn.functional.relu``,
    ``operator.add`` and ``torch.add``) and a method call (``x.relu()``, op "call_method") are
    left alone. In place: ``gm`` itself is changed, and afterwards running ``gm`` calls
    ``new`` (its forward code is regenerated). Returns how many nodes were changed (0 when
    there is none: then gm computes what it did).

    Example:
        >>> class M(torch.nn.Module):
        ...     def forward(self, x):
        ...         return torch.sigmoid(x) * 2 + F.relu(x)
        >>> gm = fx.symbolic_trace(M())
        >>> replace_calls(gm, torch.sigmoid, torch.tanh)
        1
        >>> gm(torch.zeros(2))
        tensor([0., 0.])
    """
    raise NotImplementedError("replace_calls: see `kata lesson`, or `kata hint` for a nudge")


def fuse_add_relu(gm: fx.GraphModule, fused: Callable) -> int:
    """Fuse every relu of an add into one call: ``relu(add(a, b))`` becomes ``fused(a, b)``.

    An add is a call_function node ``operator.add`` (``a + b``) or ``torch.add`` with two
    positional args and no kwargs (``torch.add(a, b, alpha=2)`` is not one). A relu is a
    call_function ``torch.relu(t)``, a call_function ``torch.nn.functional.relu(t)`` that is
    not ``inplace=True``, or a call_method ``t.relu()``, with the add's node as its only
    argument. (A ReLU *module*, op "call_module", is not one: leave it.)

    Fuse a pair only when the relu is the add's ONLY user: an add read elsewhere too must
    stay, and the pair with it. A fused pair becomes one call_function node with target
    ``fused`` and args ``(a, b)``, the add's own two args in their order (a node or a number),
    no kwargs; it takes the relu's place for every node that read the relu, and the add and
    relu nodes are gone from the graph. Pairs chain: ``relu(relu(a + b) + c)`` becomes
    ``fused(fused(a, b), c)``. In place on ``gm``, whose code is regenerated. Returns the
    number of pairs fused.

    Example:
        >>> def add_relu(a, b):
        ...     return torch.relu(a + b)
        >>> class M(torch.nn.Module):
        ...     def forward(self, x, y):
        ...         return torch.relu(x + y).relu()
        >>> gm = fx.symbolic_trace(M())
        >>> fuse_add_relu(gm, add_relu)
        1
        >>> [n.op for n in gm.graph.nodes]
        ['placeholder', 'placeholder', 'call_function', 'call_method', 'output']
    """
    raise NotImplementedError("fuse_add_relu: see `kata lesson`, or `kata hint` for a nudge")


def fold_constants(gm: fx.GraphModule) -> int:
    """Compute now, once, every part of ``gm`` that does not depend on its inputs.

    A node is *constant* when it is a ``get_attr`` (a parameter, buffer or tensor attribute
    of gm), or a call node (call_function, call_method or call_module) whose every input
    node is constant and that is not impure (``node.is_impure()``). Every constant call node
    is folded: its value (a tensor, in the modules the checks build) is computed without
    recording autograd, the values that non-constant nodes (or the output) read are stored
    as new tensor attributes of gm (new names: no existing attribute is overwritten) and read
    through new get_attr nodes, and every constant call node is gone from the graph, as is
    every get_attr that nothing reads any more. In place on ``gm``, whose code is
    regenerated; gm computes what it did, with the parameters' values of the moment. Returns
    the number of constant call nodes folded (0 when there is none).

    Example:
        >>> class M(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = torch.nn.Parameter(torch.ones(3, 2))
        ...     def forward(self, x):
        ...         return x @ (self.w.t() * 2)
        >>> gm = fx.symbolic_trace(M())
        >>> fold_constants(gm)
        2
        >>> [n.op for n in gm.graph.nodes]
        ['placeholder', 'get_attr', 'call_function', 'output']
    """
    raise NotImplementedError("fold_constants: see `kata lesson`, or `kata hint` for a nudge")


def make_backend(log: list) -> Callable:
    """A torch.compile backend that records every graph dynamo hands it into ``log``.

    Returns ``backend(gm, example_inputs) -> callable``, to be used as
    ``torch.compile(fn, backend=make_backend(log))``. Each time dynamo calls it (once per
    graph: a graph break or a recompile makes another), it appends one dict to ``log``:

    - ``"ops"``: the targets of gm's call_function, call_method and call_module nodes, in
      graph order, as FX keeps them (``node.target``);
    - ``"inputs"``: one entry per example input, in order: a tensor's shape as a tuple of
      ints, and the string ``"sym"`` for anything else (a symbolic size under dynamic
      shapes);
    - ``"calls"``: 0 at first, then one more each time the compiled graph runs.

    It returns a callable that dynamo calls with the graph's inputs and that must return
    what gm returns (running gm is fine: no Inductor here). ``make_backend`` itself appends
    nothing; ``log`` is only ever appended to.

    Example:
        >>> log = []
        >>> f = torch.compile(lambda x: torch.relu(x) * 2, backend=make_backend(log))
        >>> f(torch.ones(3)), f(torch.ones(3))[0]
        (tensor([2., 2., 2.]), tensor(2.))
        >>> log
        [{'ops': [<built-in method relu of type object at 0x...>, <built-in function mul>], 'inputs': [(3,)], 'calls': 2}]
    """
    raise NotImplementedError("make_backend: see `kata lesson`, or `kata hint` for a nudge")
