"""Kata 10 — backward_engine: re-implement loss.backward() on PyTorch's own graph.

Every tensor made by a differentiable op has a grad_fn: a node of autograd's graph.
node.next_functions is a tuple of (next_node, input_nr) pairs, one per input of the forward
op: next_node is the grad_fn of that input (an AccumulateGrad node for a leaf that requires
grad, None for an input that needs no gradient), and input_nr says which OUTPUT of that
earlier op this input was (0 for single-output ops; unbind/split have several).

    >>> def edges(node):
    ...     return [(type(n).__name__ if n else None, nr) for n, nr in node.next_functions]
    >>> a = torch.randn(3, requires_grad=True); c = torch.randn(3)
    >>> loss = (a.sin() * c).sum()
    >>> type(loss.grad_fn).__name__, edges(loss.grad_fn)
    ('SumBackward0', [('MulBackward0', 0)])
    >>> edges(loss.grad_fn.next_functions[0][0])
    [('SinBackward0', 0), (None, 0)]

Calling a node runs its backward: `node(*grads)` takes one gradient per output of the forward
op (None where none arrived; len(node._input_metadata) of them) and returns one per entry of
next_functions. An AccumulateGrad node's leaf is node.variable.

Rules: torch.autograd.backward, torch.autograd.grad, Tensor.backward and the engine entry
torch.autograd.graph._engine_run_backward are off-limits — you ARE the engine.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import torch


def topological_order(root) -> list:
    """Every node reachable from ``root`` through next_functions, each exactly once, ordered
    so that a node comes BEFORE every node it sends gradient to (its next_functions).

    That is the order in which an engine may run the nodes: by the time a node runs, every
    node that feeds it a gradient has already run. AccumulateGrad nodes are included; None
    entries of next_functions are not nodes.

    Example (y = s * s.tanh(), s = x.sin(): a diamond; SinBackward0 must wait for
    TanhBackward0, which also sends it a gradient):
        >>> x = torch.randn(3, requires_grad=True)
        >>> s = x.sin()
        >>> y = s * s.tanh()
        >>> order = topological_order(y.sum().grad_fn)
        >>> [type(n).__name__ for n in order]
        ['SumBackward0', 'MulBackward0', 'TanhBackward0', 'SinBackward0', 'AccumulateGrad']
    """
    raise NotImplementedError("topological_order: see `kata lesson`, or `kata hint` for a nudge")


def call_node(node, grad_outputs: list) -> list:
    """Run one non-leaf node on the gradients of its outputs; say where each result goes.

    ``grad_outputs`` holds one gradient per output of the forward op (None where nothing
    arrived). Return a list of (next_node, input_nr, grad), one per entry of
    node.next_functions, in order, leaving out edges whose next_node is None and gradients
    that come back None. What the engine guarantees the next node, you guarantee here:

    - each ``grad`` has exactly the shape that next_node expects for that input,
      ``next_node._input_metadata[input_nr].shape`` (see the broadcast bias below);
    - no ``grad`` carries autograd history (no grad_fn), as in a backward without
      create_graph.

    If every grad_output is None, nothing flows: return [] without calling the node. (This
    kata's rule. engine.cpp does call such a node, with undefined gradients; the results are
    the same.)

    Example:
        >>> a = torch.randn(2, 3, requires_grad=True); c = torch.randn(2, 3)
        >>> bias = torch.randn(3, requires_grad=True)
        >>> [(n.variable is a, nr, torch.equal(g, c))          # the (None, 0) edge for c is skipped
        ...  for n, nr, g in call_node((a * c).grad_fn, [torch.ones(2, 3)])]
        [(True, 0, True)]
        >>> [g.shape for _, _, g in call_node((a + bias).grad_fn, [torch.ones(2, 3)])]
        [torch.Size([2, 3]), torch.Size([3])]
    """
    raise NotImplementedError("call_node: see `kata lesson`, or `kata hint` for a nudge")


def accumulate_grad(node, grad: torch.Tensor) -> None:
    """Do what an AccumulateGrad node does with the gradient that reaches its leaf.

    The leaf is node.variable. If its .grad is None, store a NEW tensor holding ``grad``, laid
    out as torch lays it out: with the leaf's own strides when the leaf is dense (no gaps in
    its memory, e.g. a transposed weight), row-major (contiguous) when the leaf has gaps (e.g.
    every other column of a wider tensor) — never ``grad`` itself: the engine may hand the
    same tensor to several leaves. (torch's AccumulateGrad does keep ``grad`` itself when
    nothing else holds a reference to it and its layout already fits; your code cannot see
    who holds it, so it always copies.) Otherwise
    add ``grad`` into the existing .grad in place: .grad stays the same tensor object.
    Neither may record autograd history. Do not call the node itself.

    Example:
        >>> w = torch.randn(3, 2).T.requires_grad_()       # strides (1, 2)
        >>> node = (w * 1).grad_fn.next_functions[0][0]   # AccumulateGrad, node.variable is w
        >>> accumulate_grad(node, torch.ones(2, 3)); w.grad.stride()
        (1, 2)
        >>> g = w.grad; accumulate_grad(node, torch.ones(2, 3)); w.grad is g, w.grad[0, 0]
        (True, tensor(2.))
    """
    raise NotImplementedError("accumulate_grad: see `kata lesson`, or `kata hint` for a nudge")


def backward(tensor: torch.Tensor, gradient: torch.Tensor | None = None) -> None:
    """Your ``tensor.backward(gradient)``: fill .grad of every leaf the graph reaches.

    The leaves' ``.grad`` end up as ``tensor.backward(gradient)`` leaves them, for any graph:
    tensors used twice, diamonds, ops with several outputs (``tensor`` may be any one of
    them). ``gradient`` has ``tensor``'s shape; None means ones, allowed only when ``tensor``
    has one element (otherwise RuntimeError). Every node of the graph is called at most once,
    as the real engine does. Returns None.

    Example:
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> s = x * x
        >>> backward((s + s.exp()).sum())
        >>> x.grad                                 # 2x + 2x * exp(x^2)
        tensor([  7.4366, 222.3926])
    """
    raise NotImplementedError("backward: see `kata lesson`, or `kata hint` for a nudge")
