"""An alternative correct fx_passes: a Transformer for replace_calls, matching from the adds,
folding by interpreting the constant nodes, plain-tensor attributes, a recursive args map and
a backend object."""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F


def _names(value):
    if isinstance(value, fx.Node):
        return value.name
    if isinstance(value, tuple):
        return tuple(_names(v) for v in value)
    if isinstance(value, list):
        return [_names(v) for v in value]
    if isinstance(value, dict):
        return {k: _names(v) for k, v in value.items()}
    return value


def node_table(module):
    graph = fx.Tracer().trace(module)
    rows = []
    for node in graph.nodes:
        rows.append((node.name, node.op, node.target, _names(node.args), tuple(u.name for u in node.users.keys())))
    return rows


def replace_calls(gm, old, new):
    hits = sum(1 for n in gm.graph.nodes if n.op == "call_function" and n.target is old)

    class Swap(fx.Transformer):
        def call_function(self, target, args, kwargs):
            return super().call_function(new if target is old else target, args, kwargs)

    gm.graph = Swap(gm).transform().graph
    gm.recompile()
    return hits


def _add_like(node):
    return (isinstance(node, fx.Node) and node.op == "call_function"
            and (node.target is operator.add or node.target is torch.add)
            and len(node.args) == 2 and len(node.kwargs) == 0)


def _relu_like(node):
    if node.op == "call_method":
        return node.target == "relu" and len(node.args) == 1 and not node.kwargs
    if node.op != "call_function" or len(node.args) != 1:
        return False
    if node.target is torch.relu:
        return not node.kwargs
    return node.target is F.relu and node.kwargs.get("inplace") in (None, False) and set(node.kwargs) <= {"inplace"}


def fuse_add_relu(gm, fused):
    done = 0
    for add in list(gm.graph.nodes):
        if not _add_like(add) or len(add.users) != 1:
            continue
        (relu,) = add.users
        if not _relu_like(relu):
            continue
        with gm.graph.inserting_after(relu):
            new = gm.graph.create_node("call_function", fused, tuple(add.args), {})
        relu.replace_all_uses_with(new)
        gm.graph.erase_node(relu)
        gm.graph.erase_node(add)
        done += 1
    gm.graph.lint()
    gm.recompile()
    return done


def fold_constants(gm):
    interp = fx.Interpreter(gm)
    values = {}
    order = []
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            values[node] = interp.fetch_attr(node.target)
        elif node.op in ("call_function", "call_method", "call_module") and not node.is_impure() \
                and all(i in values for i in node.all_input_nodes):
            args = fx.node.map_arg(node.args, lambda n: values[n])
            kwargs = fx.node.map_arg(node.kwargs, lambda n: values[n])
            with torch.no_grad():
                values[node] = getattr(interp, node.op)(node.target, args, kwargs)
            order.append(node)
    taken = set(dict(gm.named_parameters())) | set(dict(gm.named_buffers())) | set(vars(gm)) | set(dir(gm))
    k = 0
    for node in order:
        if any(u not in values for u in node.users):
            while f"const_{k}" in taken:
                k += 1
            name = f"const_{k}"
            taken.add(name)
            setattr(gm, name, values[node].detach())
            with gm.graph.inserting_after(node):
                attr = gm.graph.get_attr(name)
            node.replace_all_uses_with(attr)
    gm.graph.eliminate_dead_code()
    for node in list(gm.graph.nodes):  # get_attrs are pure, so eliminate_dead_code took them
        if node.op == "get_attr" and len(node.users) == 0:
            gm.graph.erase_node(node)
    gm.recompile()
    return len(order)


class _Recorder:
    def __init__(self, log):
        self.log = log

    def __call__(self, gm, example_inputs):
        entry = dict(ops=[], inputs=[], calls=0)
        for node in gm.graph.nodes:
            if node.op.startswith("call_"):
                entry["ops"].append(node.target)
        for x in example_inputs:
            entry["inputs"].append(tuple(int(s) for s in x.size()) if torch.is_tensor(x) else "sym")
        self.log.append(entry)

        def compiled(*args):
            entry["calls"] = entry["calls"] + 1
            return gm(*args)

        return compiled


def make_backend(log):
    return _Recorder(log)
