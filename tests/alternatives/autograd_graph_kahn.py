"""Alternative correct answers for autograd_graph: the reference, with the functions below in
place of its own (test material: each must pass `kata check autograd_graph --file` on every seed)."""

from __future__ import annotations

import torch
from torch import nn

from checker.mistakes import _solution_of

_reference = _solution_of('autograd_graph')
graph_leaves = _reference.graph_leaves
retained_grads = _reference.retained_grads
predict_flags = _reference.predict_flags


def topo_order(root: torch.autograd.graph.Node) -> list[torch.autograd.graph.Node]:
    # Reverse post-order of a depth-first walk: a node is finished only after everything it
    # feeds is finished, so reversing the finishing order puts each node before its inputs.
    indegree: dict = {}
    stack, seen = [root], {root}
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            indegree[child] = indegree.get(child, 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    order, ready = [], [root]
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child, _ in node.next_functions:
            if child is not None:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
    return order


def frozen_backbone_loss(backbone: nn.Module, head: nn.Module, x: torch.Tensor,
                         target: torch.Tensor) -> torch.Tensor:
    features = backbone(x).detach()
    return ((head(features) - target) ** 2).mean()
