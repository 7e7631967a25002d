"""Reference solution for kata 06 — the autograd graph."""

from __future__ import annotations

import torch
from torch import nn


def topo_order(root: torch.autograd.graph.Node) -> list[torch.autograd.graph.Node]:
    # Reverse post-order of a depth-first walk: a node is finished only after everything it
    # feeds is finished, so reversing the finishing order puts each node before its inputs.
    finished: list = []
    seen: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            finished.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child, _ in reversed(node.next_functions):
            if child is not None and id(child) not in seen:
                stack.append((child, False))
    return finished[::-1]


def graph_leaves(root: torch.autograd.graph.Node) -> list[torch.Tensor]:
    leaves = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if hasattr(node, "variable"):  # AccumulateGrad
            leaves.append(node.variable)
        stack.extend(child for child, _ in node.next_functions)
    return leaves


def retained_grads(x, w1, b1, w2, upstream) -> dict[str, torch.Tensor | None]:
    h = x @ w1 + b1
    a = h.tanh()
    y = a @ w2
    for t in (h, a, y):
        t.retain_grad()
    y.backward(upstream)
    return {"x": x.grad, "w1": w1.grad, "b1": b1.grad, "w2": w2.grad,
            "h": h.grad, "a": a.grad, "y": y.grad}


_DIFFERENTIABLE = {"sin", "exp", "floor", "sum", "clone", "add", "mul"}


def predict_flags(leaves, program) -> dict[str, tuple[bool, bool, bool]]:
    # A tensor is a small record; names that refer to the same tensor share the record.
    tensors: dict[str, dict] = {
        name: {"rg": bool(rg), "grad_fn": False, "inf": False} for name, (_, rg) in leaves.items()
    }
    for out, op, inputs, mode in program:
        ins = [tensors[i] for i in inputs]
        if op == "requires_grad_":
            ins[0]["rg"] = True
            tensors[out] = ins[0]
            continue
        if op == "detach":  # a view: it keeps the inference-ness of its base
            tensors[out] = {"rg": False, "grad_fn": False, "inf": ins[0]["inf"]}
            continue
        records = mode == "grad" and op in _DIFFERENTIABLE and any(t["rg"] for t in ins)
        tensors[out] = {"rg": records, "grad_fn": records, "inf": mode == "inference_mode"}
    return {name: (t["rg"], not t["grad_fn"], t["inf"]) for name, t in tensors.items()}


def frozen_backbone_loss(backbone: nn.Module, head: nn.Module, x: torch.Tensor,
                         target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        features = backbone(x)
    return ((head(features) - target) ** 2).mean()
