"""An alternative correct answer for backward_engine: reversed iterative post-order, a density
test by sorted strides, custom nodes recognised by having no __call__."""

from __future__ import annotations

import torch


def topological_order(root) -> list:
    post, seen, stack = [], {root}, [(root, iter(root.next_functions))]
    while stack:
        node, children = stack[-1]
        for child, _ in children:
            if child is not None and child not in seen:
                seen.add(child)
                stack.append((child, iter(child.next_functions)))
                break
        else:
            post.append(node)
            stack.pop()
    return post[::-1]


def call_node(node, grad_outputs: list) -> list:
    if all(g is None for g in grad_outputs):
        return []
    with torch.no_grad():
        if callable(node):
            out = node(*grad_outputs)
            out = (out,) if isinstance(out, torch.Tensor) else out
            pairs = list(zip(node.next_functions, out, strict=True))
        else:  # a custom Function's node
            full = [torch.zeros(m.shape, dtype=m.dtype) if g is None else g
                    for g, m in zip(grad_outputs, node._input_metadata, strict=True)]
            out = node.apply(*full)
            out = (out,) if isinstance(out, torch.Tensor) else out
            needed = [g for g, need in zip(out, node.needs_input_grad, strict=True) if need]
            edges = [e for e in node.next_functions if e[0] is not None]
            pairs = list(zip(edges, needed, strict=True))
    result = []
    for (child, nr), g in pairs:
        if child is None or g is None:
            continue
        result.append((child, nr, g.sum_to_size(child._input_metadata[nr].shape)))
    return result


def _dense(t: torch.Tensor) -> bool:
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride(), strict=True), key=lambda p: p[1]):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def accumulate_grad(node, grad: torch.Tensor) -> None:
    leaf = node.variable
    with torch.no_grad():
        if leaf.grad is not None:
            leaf.grad.add_(grad)
        elif _dense(leaf):
            leaf.grad = torch.empty_strided(leaf.shape, leaf.stride(), dtype=leaf.dtype).copy_(grad)
        else:
            leaf.grad = grad.clone(memory_format=torch.contiguous_format)


def backward(tensor: torch.Tensor, gradient: torch.Tensor | None = None) -> None:
    if tensor.grad_fn is None:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if gradient is None:
        if tensor.numel() != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        gradient = torch.ones_like(tensor)
    slots = {tensor.grad_fn: {tensor.output_nr: gradient}}
    for node in topological_order(tensor.grad_fn):
        got = slots.pop(node, None)
        if not got:
            continue
        if type(node).__name__ == "AccumulateGrad":
            accumulate_grad(node, got[0])
            continue
        grads = [got.get(i) for i in range(len(node._input_metadata))]
        for child, nr, g in call_node(node, grads):
            into = slots.setdefault(child, {})
            into[nr] = g if nr not in into else into[nr] + g
