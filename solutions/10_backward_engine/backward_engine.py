"""Reference solution for kata 10 — backward_engine."""

from __future__ import annotations

import itertools

import torch


def topological_order(root) -> list:
    # Kahn's algorithm: count the edges into every node, then release a node once every
    # node that sends it gradient has been emitted (what engine.cpp's compute_dependencies does).
    # Both walks use an explicit stack: a chain of thousands of ops is deeper than Python's
    # recursion limit.
    dependencies: dict = {}
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            dependencies[child] = dependencies.get(child, 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    order = []
    ready = [root]
    while ready:
        node = ready.pop()
        order.append(node)
        for child, _ in node.next_functions:
            if child is None:
                continue
            dependencies[child] -= 1
            if dependencies[child] == 0:
                ready.append(child)
    return order


def _run_custom(node, grad_outputs: list) -> tuple[list, list]:
    """A custom autograd.Function's node has no __call__: node.apply runs its backward, which
    takes every output's gradient (None made zeros, as the engine's PyNode does) and answers one
    gradient per FORWARD ARGUMENT. The arguments that need a gradient (node.needs_input_grad)
    are, in order, the edges of next_functions that lead somewhere."""
    metadata = node._input_metadata
    grads = [g if g is not None else torch.zeros(metadata[i].shape, dtype=metadata[i].dtype,
                                                 device=metadata[i].device)
             for i, g in enumerate(grad_outputs)]
    results = node.apply(*grads)
    if isinstance(results, torch.Tensor):
        results = (results,)
    wanted = list(itertools.compress(results, node.needs_input_grad))
    return [edge for edge in node.next_functions if edge[0] is not None], wanted


def call_node(node, grad_outputs: list) -> list:
    if all(g is None for g in grad_outputs):
        return []
    routed = []
    with torch.no_grad():
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            edges, grad_inputs = _run_custom(node, grad_outputs)
        else:
            edges, grad_inputs = node.next_functions, node(*grad_outputs)
        if isinstance(grad_inputs, torch.Tensor):  # a node with one edge returns a bare tensor
            grad_inputs = (grad_inputs,)
        for (child, input_nr), grad in zip(edges, grad_inputs, strict=True):
            if child is None or grad is None:
                continue
            shape = tuple(child._input_metadata[input_nr].shape)
            if tuple(grad.shape) != shape:  # a broadcast input: what validate_outputs does
                grad = grad.sum_to_size(shape)
            routed.append((child, input_nr, grad))
    return routed


def accumulate_grad(node, grad: torch.Tensor) -> None:
    variable = node.variable
    with torch.no_grad():
        if variable.grad is None:
            fresh = torch.empty_like(variable)  # a dense leaf's own strides...
            if fresh.stride() != variable.stride():  # ...but a leaf with gaps gets row-major
                fresh = torch.empty_like(variable, memory_format=torch.contiguous_format)
            fresh.copy_(grad)
            variable.grad = fresh
        else:
            variable.grad += grad


def backward(tensor: torch.Tensor, gradient: torch.Tensor | None = None) -> None:
    if gradient is None:
        if tensor.numel() != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        gradient = torch.ones_like(tensor)
    root = tensor.grad_fn
    if root is None:
        raise RuntimeError("the tensor has no grad_fn: nothing to differentiate")
    # The root may be any output of its op (y = a.unbind(0)[1]): its slot is y.output_nr.
    seed = [None] * len(root._input_metadata)
    seed[tensor.output_nr] = gradient
    buffers = {root: seed}
    for node in topological_order(root):
        grads = buffers.pop(node, None)
        if grads is None:
            continue
        if type(node).__name__ == "AccumulateGrad":
            accumulate_grad(node, *grads)  # its one slot: a gradient arrived, or no buffer
            continue
        for child, input_nr, grad in call_node(node, grads):
            slots = buffers.setdefault(child, [None] * len(child._input_metadata))
            # Out of place: the same gradient tensor may have been handed to another edge too.
            slots[input_nr] = grad if slots[input_nr] is None else slots[input_nr] + grad
