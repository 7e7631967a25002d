"""Known mistakes for the kata backward_engine. Each stands in for one exercise; the
backward mistakes bring correct private parts (_order, _call, _accumulate) of their own."""

from __future__ import annotations

import torch

from checker.mistakes import _solution_of, mistake


def _reference():
    return _solution_of("backward_engine")


def _order(root):
    return _reference().topological_order(root)


def _call(node, grads):
    return _reference().call_node(node, grads)


def _accumulate(node, grad):
    _reference().accumulate_grad(node, grad)


def _results(node, grad_outputs):
    """(edges, gradients) as a node answers them; a custom Function's node through node.apply."""
    if isinstance(node, torch.autograd.function.BackwardCFunction):
        return _reference()._run_custom(node, grad_outputs)
    return node.next_functions, node(*grad_outputs)


def _seed(tensor, gradient, slot=None):
    """The root node and its slots, seeded (and refused) as torch does; ``slot`` overrides the
    root's own output_nr."""
    if gradient is None and tensor.numel() != 1:
        raise RuntimeError("grad can be implicitly created only for scalar outputs")
    root = tensor.grad_fn
    if root is None:
        raise RuntimeError("the tensor has no grad_fn")
    seed = [None] * len(root._input_metadata)
    seed[tensor.output_nr if slot is None else slot] = (
        torch.ones_like(tensor) if gradient is None else gradient)
    return root, seed


def _engine(tensor, gradient, slot_sum, slot=None):
    """A correct engine except for how a second gradient meets a slot (``slot_sum``) and, when
    given, the root's ``slot``."""
    root, seed = _seed(tensor, gradient, slot)
    buffers = {root: seed}
    for node in _order(root):
        grads = buffers.pop(node, None)
        if grads is None:
            continue
        if type(node).__name__ == "AccumulateGrad":
            _accumulate(node, grads[0])
            continue
        for child, nr, g in _call(node, grads):
            slots = buffers.setdefault(child, [None] * len(child._input_metadata))
            slots[nr] = g if slots[nr] is None else slot_sum(slots[nr], g)


# ----------------------------------------------------------------------------- topological_order


@mistake("topological_order", "Breadth-first order with a seen-set: a node reached early by a short path runs before a longer path has delivered its gradient.")
def breadth_first(root):
    order, seen, queue = [], {root}, [root]
    while queue:
        node = queue.pop(0)
        order.append(node)
        for child, _ in node.next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                queue.append(child)
    return order


@mistake("topological_order", "Depth-first PRE-order: a node is emitted when first reached, not after everything that feeds it.")
def depth_first_preorder(root):
    order, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        stack.extend(child for child, _ in reversed(node.next_functions) if child is not None)
    return order


@mistake("topological_order", "A depth-first post-order that was never reversed: leaves first, the root last.")
def unreversed_postorder(root):
    return _order(root)[::-1]


def _postorder(root):
    """Depth-first post-order, recursive (the leaves first, the root last)."""
    post, seen = [], set()

    def visit(node):
        if node is None or node in seen:
            return
        seen.add(node)
        for child, _ in node.next_functions:
            visit(child)
        post.append(node)

    visit(root)
    return post


@mistake("topological_order", "No seen-set: a node reached by two paths (a diamond, x * x) is listed twice.")
def no_seen_set(root):
    order, queue = [], [root]
    while queue:
        node = queue.pop(0)
        order.append(node)
        queue.extend(child for child, _ in node.next_functions if child is not None)
    # keep the last occurrence of each node: topological on trees, duplicated on diamonds
    return order


@mistake("topological_order", "Kahn with each node's count set to its number of distinct PARENTS, then decremented once per EDGE: a node that an op uses twice (x * x) is released before its other parents have run.")
def kahn_counts_parents(root):
    from collections import deque

    parents: dict = {}
    seen, stack = {root}, [root]
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            parents.setdefault(child, set()).add(node)
            if child not in seen:
                seen.add(child)
                stack.append(child)
    count = {child: len(ps) for child, ps in parents.items()}
    order, ready = [], deque([root])
    while ready:
        node = ready.popleft()
        order.append(node)
        for child, _ in node.next_functions:
            if child is None:
                continue
            count[child] -= 1
            if count[child] == 0:
                ready.append(child)
    return order


@mistake("topological_order", "A correct reversed depth-first post-order, but recursive: a chain of a few thousand ops passes Python's recursion limit, which torch's engine never meets.")
def recursive_postorder(root):
    return _postorder(root)[::-1]


# ----------------------------------------------------------------------------- call_node


def _route(node, grad_outputs):
    return _pairs(*_results(node, grad_outputs))


def _pairs(edges, outs, strict=True):
    """(next_node, input_nr, grad) per edge that leads somewhere and gets a gradient, summed
    down to the input's shape."""
    if isinstance(outs, torch.Tensor):
        outs = (outs,)
    routed = []
    for (child, nr), grad in zip(edges, outs, strict=strict):
        if child is None or grad is None:
            continue
        shape = tuple(child._input_metadata[nr].shape)
        routed.append((child, nr, grad if tuple(grad.shape) == shape else grad.sum_to_size(shape)))
    return routed


@mistake("call_node", "Ran the node with grad mode on: every gradient records a graph of its own (create_graph by accident).")
def grad_mode_on(node, grad_outputs):
    if all(g is None for g in grad_outputs):
        return []
    return _route(node, grad_outputs)


@mistake("call_node", "Forgot to sum broadcast gradients down to the input's shape (validate_outputs' job): bias gets y's shape.")
def no_sum_to_size(node, grad_outputs):
    if all(g is None for g in grad_outputs):
        return []
    with torch.no_grad():
        edges, outs = _results(node, grad_outputs)
    outs = (outs,) if isinstance(outs, torch.Tensor) else outs
    return [(child, nr, g) for (child, nr), g in zip(edges, outs, strict=True)
            if child is not None and g is not None]


@mistake("call_node", "Dropped input_nr (always 0): a gradient for output k of unbind/split lands in slot 0.")
def input_nr_zero(node, grad_outputs):
    if all(g is None for g in grad_outputs):
        return []
    with torch.no_grad():
        return [(child, 0, g) for child, _, g in _route(node, grad_outputs)]


@mistake("call_node", "Called the node even when no gradient arrived at all: zeros flow on where torch sends nothing.")
def calls_on_all_none(node, grad_outputs):
    with torch.no_grad():
        return _route(node, grad_outputs)


@mistake("call_node", "Called every node as node(*grads): a custom autograd.Function's node is not callable (its backward runs through node.apply).")
def calls_custom_node(node, grad_outputs):
    if all(g is None for g in grad_outputs):
        return []
    with torch.no_grad():
        return _pairs(node.next_functions, node(*grad_outputs))


@mistake("call_node", "Paired node.apply's results (one per FORWARD ARGUMENT, non-tensors included) with next_functions as they come: gradients shift to the wrong edges.")
def custom_results_unmapped(node, grad_outputs):
    if all(g is None for g in grad_outputs):
        return []
    with torch.no_grad():
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            grads = [torch.zeros(m.shape, dtype=m.dtype) if g is None else g
                     for g, m in zip(grad_outputs, node._input_metadata, strict=True)]
            outs = node.apply(*grads)
        else:
            outs = node(*grad_outputs)
        return _pairs(node.next_functions, outs, strict=False)


@mistake("call_node", "Ran the node with grad mode on and detached the results afterwards: right values, but every call built (and threw away) a graph of its own.")
def detaches_afterwards(node, grad_outputs):
    if all(g is None for g in grad_outputs):
        return []
    return [(child, nr, g.detach()) for child, nr, g in _route(node, grad_outputs)]


# ----------------------------------------------------------------------------- accumulate_grad


@mistake("accumulate_grad", "Stored the incoming gradient itself as .grad: leaves handed the same tensor share one .grad.")
def stores_grad_itself(node, grad):
    if node.variable.grad is None:
        node.variable.grad = grad.detach()
    else:
        _accumulate(node, grad)


@mistake("accumulate_grad", "`=` instead of `+=`: a second gradient replaced the first instead of adding to it.")
def overwrites(node, grad):
    node.variable.grad = None
    _accumulate(node, grad)


@mistake("accumulate_grad", "grad = grad + new out of place: right values, but .grad becomes a new tensor.")
def out_of_place(node, grad):
    leaf = node.variable
    if leaf.grad is None:
        _accumulate(node, grad)
    else:
        with torch.no_grad():
            leaf.grad = leaf.grad + grad


def _first_copy(node, grad, make):
    """A first .grad made by ``make(leaf)`` (then filled with grad); later ones added correctly."""
    leaf = node.variable
    if leaf.grad is not None:
        _accumulate(node, grad)
        return
    with torch.no_grad():
        leaf.grad = make(leaf).copy_(grad)


@mistake("accumulate_grad", "grad.clone() for the first gradient: it keeps the gradient's layout, not the leaf's (a transposed weight gets row-major .grad).")
def clone_ignores_layout(node, grad):
    _first_copy(node, grad, lambda leaf: torch.empty(leaf.shape, dtype=leaf.dtype))


@mistake("accumulate_grad", "Copied the leaf's strides even for a leaf with gaps (a slice of every other column): torch gives such a leaf a contiguous .grad.")
def leaf_strides_even_with_gaps(node, grad):
    _first_copy(node, grad, lambda leaf: torch.empty_strided(leaf.shape, leaf.stride(), dtype=leaf.dtype))


@mistake("accumulate_grad", "torch.empty_like(leaf) for every leaf: a leaf with gaps keeps its dimension order (a permuted slice gets a permuted .grad), where torch makes it row-major.")
def empty_like_even_with_gaps(node, grad):
    _first_copy(node, grad, torch.empty_like)


@mistake("accumulate_grad", "No torch.no_grad(): when the incoming gradient has history, the copy and the in-place sum record it, and .grad requires grad.")
def records_history(node, grad):
    leaf = node.variable
    if leaf.grad is None:
        fresh = torch.empty_like(leaf)
        if fresh.stride() != leaf.stride():
            fresh = torch.empty(leaf.shape, dtype=leaf.dtype)
        leaf.grad = fresh.copy_(grad)
    else:
        leaf.grad += grad


@mistake("accumulate_grad", "Called PyTorch's AccumulateGrad node itself instead of writing the accumulation.")
def delegates_to_node(node, grad):
    with torch.no_grad():
        node(grad)


# ----------------------------------------------------------------------------- backward


@mistake("backward", "Called tensor.backward() inside the engine, which this kata puts off-limits.")
def calls_tensor_backward(tensor, gradient=None):
    tensor.backward(gradient)


@mistake("backward", "Overwrote a slot when a second gradient arrived (slots[nr] = g) instead of summing: diamonds lose a branch.")
def overwrites_slot(tensor, gradient=None):
    _engine(tensor, gradient, lambda old, new: new)


@mistake("backward", "Recursion without a buffer: each node is re-run for every gradient that reaches it (exponential below diamonds).")
def recursive_no_buffer(tensor, gradient=None):
    def push(node, input_nr, grad):
        if type(node).__name__ == "AccumulateGrad":
            _accumulate(node, grad)
            return
        slots = [None] * len(node._input_metadata)
        slots[input_nr] = grad
        for child, nr, g in _call(node, slots):
            push(child, nr, g)

    root, seed = _seed(tensor, gradient)
    push(root, tensor.output_nr, seed[tensor.output_nr])


@mistake("backward", "Summed into the slot in place (slots[nr] += g): when one tensor was handed to two edges, the other edge's gradient changes too.")
def in_place_slot_sum(tensor, gradient=None):
    _engine(tensor, gradient, lambda old, new: old.add_(new))


@mistake("backward", "Seeded the root with ones even when a gradient was given: backward(y, gradient) is a VJP with that gradient.")
def always_ones(tensor, gradient=None):
    _engine(tensor, None, lambda old, new: old + new)


@mistake("backward", "Put the root's gradient in slot 0, whatever output of its node the root is (y = a.unbind(0)[1] is output 1).")
def seeds_slot_zero(tensor, gradient=None):
    _engine(tensor, gradient, lambda old, new: old + new, slot=0)


@mistake("backward", "Seeded any root with ones and returned quietly without a grad_fn, where torch raises (non-scalar root without a gradient; a root that needs no gradient).")
def never_raises(tensor, gradient=None):
    if tensor.grad_fn is not None:
        _engine(tensor, torch.ones_like(tensor) if gradient is None else gradient,
                lambda old, new: old + new)


@mistake("backward", "Called PyTorch's AccumulateGrad nodes for the leaves instead of your own accumulate_grad.")
def calls_accumulate_grad_nodes(tensor, gradient=None):
    root, seed = _seed(tensor, gradient)
    buffers = {root: seed}
    for node in _order(root):
        grads = buffers.pop(node, None)
        if grads is None:
            continue
        if type(node).__name__ == "AccumulateGrad":
            with torch.no_grad():
                node(grads[0])
            continue
        for child, nr, g in _call(node, grads):
            slots = buffers.setdefault(child, [None] * len(child._input_metadata))
            slots[nr] = g if slots[nr] is None else slots[nr] + g
