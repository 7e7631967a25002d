"""An alternative correct fx_passes: one graph edit per match with create_node, a worklist of
constants from the get_attrs forwards, register_parameter for folded values and a backend
whose records are built after the graph runs once."""

from __future__ import annotations

import itertools
import operator

import torch
import torch.fx as fx
import torch.nn.functional as F


def node_table(module):
    gm = torch.fx.symbolic_trace(module)
    out = []
    for node in gm.graph.nodes:
        args = torch.fx.node.map_aggregate(node.args, lambda a: a.name if isinstance(a, fx.Node) else a)
        out.append((str(node.name), node.op, node.target, tuple(args), tuple(n.name for n in node.users)))
    return out


def replace_calls(gm, old, new):
    changed = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is old]
    for node in changed:
        with gm.graph.inserting_before(node):
            fresh = gm.graph.create_node("call_function", new, node.args, node.kwargs, name=node.name + "_new")
        node.replace_all_uses_with(fresh)
        gm.graph.erase_node(node)
    gm.recompile()
    return len(changed)


def fuse_add_relu(gm, fused):
    relus = [n for n in gm.graph.nodes
             if (n.op == "call_function" and n.target in (torch.relu, F.relu) and not n.kwargs.get("inplace", False)
                 and set(n.kwargs) <= ({"inplace"} if n.target is F.relu else set()))
             or (n.op == "call_method" and n.target == "relu" and not n.kwargs)]
    n_fused = 0
    for relu in relus:
        if len(relu.args) != 1 or not isinstance(relu.args[0], fx.Node):
            continue
        add = relu.args[0]
        if add.op != "call_function" or add.target not in (operator.add, torch.add) or add.kwargs or len(add.args) != 2:
            continue
        if list(add.users) != [relu]:
            continue
        with gm.graph.inserting_before(relu):
            node = gm.graph.create_node("call_function", fused, add.args)
        relu.replace_all_uses_with(node)
        for dead in (relu, add):
            gm.graph.erase_node(dead)
        n_fused += 1
    gm.recompile()
    return n_fused


def fold_constants(gm):
    const = {n for n in gm.graph.nodes if n.op == "get_attr"}
    changed = True
    while changed:  # grow the constant set until nothing joins
        changed = False
        for node in gm.graph.nodes:
            if node in const or node.op not in ("call_function", "call_method", "call_module") or node.is_impure():
                continue
            if set(node.all_input_nodes) <= const:
                const.add(node)
                changed = True
    env = {}
    for node in gm.graph.nodes:
        if node not in const:
            continue
        a = fx.node.map_arg(node.args, env.__getitem__)
        k = fx.node.map_arg(node.kwargs, env.__getitem__)
        with torch.no_grad():
            if node.op == "get_attr":
                obj = gm
                for part in node.target.split("."):
                    obj = getattr(obj, part)
                env[node] = obj
            elif node.op == "call_function":
                env[node] = node.target(*a, **k)
            elif node.op == "call_method":
                env[node] = getattr(a[0], node.target)(*a[1:], **k)
            else:
                env[node] = gm.get_submodule(node.target)(*a, **k)
    calls = [n for n in gm.graph.nodes if n in const and n.op != "get_attr"]
    counter = itertools.count()
    for node in calls:
        if all(u in const for u in node.users):
            continue
        name = next(f"folded_param_{i}" for i in counter if not hasattr(gm, f"folded_param_{i}"))
        gm.register_parameter(name, torch.nn.Parameter(env[node], requires_grad=False))
        with gm.graph.inserting_before(node):
            attr = gm.graph.get_attr(name)
        node.replace_all_uses_with(attr)
    for node in reversed(calls):
        gm.graph.erase_node(node)
    for node in [n for n in gm.graph.nodes if n.op == "get_attr" and not n.users]:
        gm.graph.erase_node(node)
    gm.recompile()
    return len(calls)


def make_backend(log):
    def backend(gm, example_inputs):
        index = len(log)
        log.append({
            "ops": [n.target for n in gm.graph.nodes if n.op in ("call_function", "call_method", "call_module")],
            "inputs": ["sym" if not isinstance(x, torch.Tensor) else tuple(x.shape) for x in example_inputs],
            "calls": 0,
        })

        def run(*args):
            log[index]["calls"] += 1
            return gm.forward(*args)

        return run

    return backend
