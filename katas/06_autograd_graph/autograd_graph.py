"""Kata 06 — the autograd graph: grad_fn nodes linked by next_functions.

Every tensor produced by a differentiable op on tensors that require grad remembers how it
was made: ``t.grad_fn`` is a node of the backward graph (``MulBackward0``, ``SinBackward0``,
...). `kata lesson` shows how those nodes link up and where the graph ends.

In this kata you walk that graph, keep the gradients of intermediate tensors, predict the
autograd flags of a program's tensors, and cut a graph on purpose.

Rules: ``torch.autograd.grad`` is off-limits while your functions run; gradients come from
``.backward()`` and the graph itself.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import torch
from torch import nn


def topo_order(root: torch.autograd.graph.Node) -> list[torch.autograd.graph.Node]:
    """Every node reachable from ``root`` (the root and the AccumulateGrad nodes included),
    each exactly once, in a topological order: each node comes before every node it feeds
    through ``next_functions`` — the order in which a backward pass can visit them.
    Below, ExpBackward0 must come before SinBackward0: it feeds it.

    Example:
        >>> x = torch.randn(3, requires_grad=True)
        >>> y = x.sin()
        >>> out = (y + y.exp()).sum()
        >>> [type(n).__name__ for n in topo_order(out.grad_fn)]
        ['SumBackward0', 'AddBackward0', 'ExpBackward0', 'SinBackward0', 'AccumulateGrad']
    """
    raise NotImplementedError("topo_order: see `kata lesson`, or `kata hint` for a nudge")


def graph_leaves(root: torch.autograd.graph.Node) -> list[torch.Tensor]:
    """The leaf tensors that a backward from ``root`` accumulates into: the ``variable`` of
    every AccumulateGrad node reachable from ``root``, each exactly once (any order).

    Return the tensors themselves (the same objects as the model's parameters), not copies.

    Example:
        >>> w, b = torch.randn(2, requires_grad=True), torch.randn(2, requires_grad=True)
        >>> c = torch.randn(2)                       # does not require grad: not a leaf here
        >>> out = (w * c + b * w).sum()
        >>> [t is w or t is b for t in graph_leaves(out.grad_fn)]
        [True, True]
    """
    raise NotImplementedError("graph_leaves: see `kata lesson`, or `kata hint` for a nudge")


def retained_grads(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                   upstream: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """Run a small MLP, backpropagate ``upstream`` and report every ``.grad``.

    The MLP: h is x times w1 plus b1 ((n, k) @ (k, m) + (m,) -> (n, m)); a is tanh of h; y is
    a times w2 ((n, m) @ (m, p) -> (n, p)). Backpropagate ``upstream`` (y's shape) from y once.

    Return a dict with the keys "x", "w1", "b1", "w2", "h", "a", "y", each mapped to that
    tensor's ``.grad`` after the backward: the gradient of the backward's result with respect
    to it (a tensor of its shape), for the intermediate tensors h, a, y as for the leaves.
    ``x`` may not require grad: then its entry is None — do not change its ``requires_grad``.
    The leaves' entries are their ``.grad`` tensors themselves.

    Example:
        >>> n, k, m, p = 2, 3, 4, 5
        >>> x = torch.randn(n, k)
        >>> w1, b1 = torch.randn(k, m, requires_grad=True), torch.randn(m, requires_grad=True)
        >>> w2 = torch.randn(m, p, requires_grad=True)
        >>> grads = retained_grads(x, w1, b1, w2, torch.ones(n, p))
        >>> grads["y"]
        tensor([[1., 1., 1., 1., 1.],
                [1., 1., 1., 1., 1.]])
        >>> grads["w2"] is w2.grad, grads["x"], grads["h"].shape
        (True, None, torch.Size([2, 4]))
    """
    raise NotImplementedError("retained_grads: see `kata lesson`, or `kata hint` for a nudge")


def predict_flags(leaves: dict[str, tuple[str, bool]],
                  program: list[tuple[str, str, tuple[str, ...], str]]
                  ) -> dict[str, tuple[bool, bool, bool]]:
    """Predict ``(requires_grad, is_leaf, is_inference)`` of every named tensor after a program.

    ``leaves`` maps a name to ``(dtype, requires_grad)`` with dtype "float64" or "int64":
    tensors made by the user (``torch.randn(4).requires_grad_(flag)``). ``program`` is a list
    of steps ``(out, op, inputs, mode)`` run in order, where mode is "grad" (plain code),
    "no_grad" (inside a ``torch.no_grad()`` block) or "inference_mode" (inside
    ``with torch.inference_mode():``) and op is one of:

        "sin", "exp", "floor", "sum", "clone"    out = op(x)
        "add", "mul"                             out = x + y, x * y
        "argmax", "long"                         out = x.argmax(), x.long()
        "gt"                                     out = x > y
        "detach"                                 out = x.detach()
        "requires_grad_"                         out = x.requires_grad_()  (in place!)

    Every program runs without error in PyTorch. Return the flags of every name (leaves and
    outputs) at the END of the program. Predict them; don't run the program.

    Example:
        >>> predict_flags({"w": ("float64", True)},
        ...               [("y", "sin", ("w",), "grad"), ("z", "exp", ("y",), "no_grad")])
        {'w': (True, True, False), 'y': (True, False, False), 'z': (False, True, False)}
    """
    raise NotImplementedError("predict_flags: see `kata lesson`, or `kata hint` for a nudge")


def frozen_backbone_loss(backbone: nn.Module, head: nn.Module, x: torch.Tensor,
                         target: torch.Tensor) -> torch.Tensor:
    """``((head(backbone(x)) - target) ** 2).mean()`` with the backbone frozen for this loss.

    The returned loss must reach the head's parameters but not a single backbone parameter:
    ``loss.backward()`` fills the head's ``.grad`` and leaves the backbone's None, and the
    graph holds no backbone node at all (nothing is recorded for it). Do not change the
    modules themselves: the backbone's parameters still require grad afterwards (another
    loss may train it), and its train/eval mode stays as it was.

    Example:
        >>> backbone, head = nn.Linear(4, 3), nn.Linear(3, 1)
        >>> x, target = torch.randn(8, 4), torch.randn(8, 1)
        >>> loss = frozen_backbone_loss(backbone, head, x, target)
        >>> loss.backward()
        >>> all(p.grad is None for p in backbone.parameters())
        True
        >>> head.weight.grad.shape, backbone.weight.requires_grad
        (torch.Size([1, 3]), True)
    """
    raise NotImplementedError("frozen_backbone_loss: see `kata lesson`, or `kata hint` for a nudge")
