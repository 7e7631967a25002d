"""Known mistakes for the kata the autograd graph."""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake


def _ref():
    return _solution_of("autograd_graph")


# ----------------------------------------------------------------------------- topo_order


@mistake("topo_order", "Depth-first pre-order: a node shared by two paths was placed when first reached, before a node that feeds it.")
def dfs_preorder(root):
    order, seen = [], set()

    def visit(node):
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        order.append(node)
        for child, _ in node.next_functions:
            visit(child)

    visit(root)
    return order


@mistake("topo_order", "Breadth-first levels: a node reached early along a short path came before a deeper node that feeds it.")
def bfs_levels(root):
    order, seen, queue = [], {id(root)}, [root]
    while queue:
        node = queue.pop(0)
        order.append(node)
        for child, _ in node.next_functions:
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                queue.append(child)
    return order


@mistake("topo_order", "Post-order (leaves first): the order of a forward pass, the reverse of what backward needs.")
def leaves_first(root):
    return _ref().topo_order(root)[::-1]


@mistake("topo_order", "AccumulateGrad nodes were left out: they are nodes of the graph too (one per leaf that requires grad).")
def skips_accumulate_grad(root):
    return [n for n in _ref().topo_order(root) if type(n).__name__ != "AccumulateGrad"]


@mistake("topo_order", "No visited set: a node reached along two paths was listed twice.")
def no_visited_set(root):
    order = []

    def visit(node):
        for child, _ in node.next_functions:
            if child is not None:
                visit(child)
        order.append(node)

    visit(root)
    return order[::-1]


@mistake("topo_order", "Kahn with in-degrees counted per edge but decremented once per distinct child: a node an op uses twice (x * x) never becomes ready and is lost.")
def kahn_counts_edges_decrements_children(root):
    from collections import deque

    indegree, seen, stack = {}, {id(root)}, [root]
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            indegree[id(child)] = indegree.get(id(child), 0) + 1
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    order, ready = [], deque([root])
    while ready:
        node = ready.popleft()
        order.append(node)
        children = {id(c): c for c, _ in node.next_functions if c is not None}
        for key, child in children.items():
            indegree[key] -= 1
            if indegree[key] == 0:
                ready.append(child)
    return order


# ----------------------------------------------------------------------------- graph_leaves


@mistake("graph_leaves", "Followed only next_functions[0]: the leaves behind the other inputs were never reached.")
def first_branch_only(root):
    leaves, node = [], root
    while node is not None:
        if hasattr(node, "variable"):
            leaves.append(node.variable)
            break
        node = node.next_functions[0][0] if node.next_functions else None
    return leaves


@mistake("graph_leaves", "A leaf used by two ops was reported twice: it has one AccumulateGrad node, reached along two paths.")
def reused_leaf_twice(root):
    leaves = []

    def visit(node):
        if node is None:
            return
        if hasattr(node, "variable"):
            leaves.append(node.variable)
        for child, _ in node.next_functions:
            visit(child)

    visit(root)
    return leaves


@mistake("graph_leaves", "Returned the AccumulateGrad nodes instead of their .variable, the leaf tensors.")
def returns_nodes(root):
    return [n for n in _ref().topo_order(root) if type(n).__name__ == "AccumulateGrad"]


# ----------------------------------------------------------------------------- retained_grads


@mistake("retained_grads", "No retain_grad(): the non-leaf tensors h, a, y drop their .grad after backward.")
def no_retain_grad(x, w1, b1, w2, upstream):
    h = x @ w1 + b1
    a = h.tanh()
    y = a @ w2
    y.backward(upstream)
    return {"x": x.grad, "w1": w1.grad, "b1": b1.grad, "w2": w2.grad,
            "h": h.grad, "a": a.grad, "y": y.grad}


@mistake("retained_grads", "Called y.sum().backward(): that backpropagates all ones, not the given upstream gradient.")
def backward_of_sum(x, w1, b1, w2, upstream):
    h = x @ w1 + b1
    a = h.tanh()
    y = a @ w2
    for t in (h, a, y):
        t.retain_grad()
    y.sum().backward()
    return {"x": x.grad, "w1": w1.grad, "b1": b1.grad, "w2": w2.grad,
            "h": h.grad, "a": a.grad, "y": y.grad}


@mistake("retained_grads", "Switched x.requires_grad on to get a gradient for it, changing the caller's tensor.")
def forces_input_grad(x, w1, b1, w2, upstream):
    x.requires_grad_()
    return _ref().retained_grads(x, w1, b1, w2, upstream)


@mistake("retained_grads", "Asked torch.autograd.grad for the gradients (off-limits here; it also leaves .grad empty).")
def uses_autograd_grad(x, w1, b1, w2, upstream):
    import torch

    h = x @ w1 + b1
    a = h.tanh()
    y = a @ w2
    gh, ga, gw1, gb1, gw2 = torch.autograd.grad(y, [h, a, w1, b1, w2], upstream)
    return {"x": None, "w1": gw1, "b1": gb1, "w2": gw2, "h": gh, "a": ga, "y": upstream}


@mistake("retained_grads", "The leaves' .grad was reset before backward: backward ADDS into an existing .grad, and the caller's earlier gradients are lost.")
def resets_leaf_grads(x, w1, b1, w2, upstream):
    for t in (x, w1, b1, w2):
        t.grad = None
    return _ref().retained_grads(x, w1, b1, w2, upstream)


# ----------------------------------------------------------------------------- predict_flags


def _predict(leaves, program, *, floor_differentiable=True, in_place=True, leaf_results=True,
             views_inherit=True, inference_marks_all=False, flag_obeys_mode=False):
    """The reference rules with one of them switched off."""
    differentiable = {"sin", "exp", "sum", "clone", "add", "mul"} | (
        {"floor"} if floor_differentiable else set())
    tensors = {n: {"rg": bool(rg), "grad_fn": False, "inf": False} for n, (_, rg) in leaves.items()}
    for out, op, inputs, mode in program:
        ins = [tensors[i] for i in inputs]
        if op == "requires_grad_" and flag_obeys_mode and mode != "grad":
            tensors[out] = ins[0]
            continue
        if op == "requires_grad_":
            if in_place:
                ins[0]["rg"] = True
                tensors[out] = ins[0]
            else:
                tensors[out] = dict(ins[0], rg=True)
            continue
        if op == "detach":
            inf = ins[0]["inf"] if views_inherit else mode == "inference_mode"
            if inference_marks_all and mode == "inference_mode":
                inf = True
            tensors[out] = {"rg": False, "grad_fn": not leaf_results, "inf": inf}
            continue
        records = mode == "grad" and op in differentiable and any(t["rg"] for t in ins)
        tensors[out] = {"rg": records, "grad_fn": records or not leaf_results,
                        "inf": mode == "inference_mode"}
    return {n: (t["rg"], not t["grad_fn"], t["inf"]) for n, t in tensors.items()}


@mistake("predict_flags", "floor was taken as non-differentiable because its gradient is zero; it still records a grad_fn.")
def floor_not_differentiable(leaves, program):
    return _predict(leaves, program, floor_differentiable=False)


@mistake("predict_flags", "requires_grad_() was treated as returning a new tensor: the input's own flag was left unchanged.")
def requires_grad_copies(leaves, program):
    return _predict(leaves, program, in_place=False)


@mistake("predict_flags", "An op's result was never taken as a leaf, even one made under no_grad or by argmax that does not require grad.")
def results_never_leaves(leaves, program):
    return _predict(leaves, program, leaf_results=False)


@mistake("predict_flags", "detach() of an inference tensor was taken as a normal tensor; detach(), like a view, keeps its input's inference-ness.")
def inference_views_normal(leaves, program):
    return _predict(leaves, program, views_inherit=False)


@mistake("predict_flags", "Everything made inside inference_mode was taken as an inference tensor, even detach() (which acts like a view here) of a normal tensor.")
def inference_mode_marks_all(leaves, program):
    return _predict(leaves, program, inference_marks_all=True)


@mistake("predict_flags", "requires_grad_() under no_grad was taken as a no-op: grad mode decides what ops record, not the flag you set yourself.")
def requires_grad_obeys_mode(leaves, program):
    return _predict(leaves, program, flag_obeys_mode=True)


# ----------------------------------------------------------------------------- frozen_backbone_loss


@mistake("frozen_backbone_loss", "backbone.eval() was taken for freezing: it changes dropout/batch norm, not gradient recording.")
def eval_is_not_freezing(backbone, head, x, target):
    backbone.eval()
    return ((head(backbone(x)) - target) ** 2).mean()


@mistake("frozen_backbone_loss", "Ran the backbone under inference_mode: its outputs are inference tensors, which the head cannot save for backward.")
def inference_mode_backbone(backbone, head, x, target):
    import torch

    with torch.inference_mode():
        features = backbone(x)
    return ((head(features) - target) ** 2).mean()


@mistake("frozen_backbone_loss", "Froze the backbone by switching its parameters' requires_grad off for good.")
def params_switched_off(backbone, head, x, target):
    for p in backbone.parameters():
        p.requires_grad_(False)
    return ((head(backbone(x)) - target) ** 2).mean()


@mistake("frozen_backbone_loss", "Computed the whole loss under no_grad: nothing is recorded, so the head cannot learn either.")
def everything_under_no_grad(backbone, head, x, target):
    import torch

    with torch.no_grad():
        return ((head(backbone(x)) - target) ** 2).mean()
