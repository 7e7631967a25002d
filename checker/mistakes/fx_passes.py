"""Known mistakes for kata fx_passes."""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake


def _ref():
    return _solution_of("fx_passes")


# ----------------------------------------------------------------------------- node_table


@mistake("node_table", "The target was turned into text: FX keeps the function object itself for call_function.")
def target_as_text(module):
    return [(name, op, str(target), args, users) for name, op, target, args, users in _ref().node_table(module)]


@mistake("node_table", "Only the top-level Nodes of args were replaced by names: Nodes nested in a tuple or a list (the output's, torch.cat's) stayed Nodes.")
def shallow_args(module):
    import torch.fx as fx

    gm = fx.symbolic_trace(module)
    return [(n.name, n.op, n.target, tuple(a.name if isinstance(a, fx.Node) else a for a in n.args),
             tuple(u.name for u in n.users)) for n in gm.graph.nodes]


@mistake("node_table", "users was taken for the nodes a node reads (its inputs); users are the nodes that read it.")
def users_are_inputs(module):
    import torch.fx as fx

    gm = fx.symbolic_trace(module)
    return [(n.name, n.op, n.target, fx.node.map_arg(n.args, lambda a: a.name),
             tuple(a.name for a in n.all_input_nodes)) for n in gm.graph.nodes]


@mistake("node_table", "The target was used as the name: a placeholder `input` is named input_1, the submodule `layers.0` is layers_0.")
def target_as_name(module):
    return [(target if isinstance(target, str) else name, op, target, args, users)
            for name, op, target, args, users in _ref().node_table(module)]


@mistake("node_table", "Placeholders and the output were left out: they are nodes of the graph too.")
def calls_only(module):
    return [row for row in _ref().node_table(module) if row[1] not in ("placeholder", "output")]


# ----------------------------------------------------------------------------- replace_calls


@mistake("replace_calls", "Targets were matched by name: torch.relu and F.relu (or operator.add and torch.add) are different functions with one name.")
def match_by_name(gm, old, new):
    count = 0
    for node in gm.graph.nodes:
        if node.op == "call_function" and getattr(node.target, "__name__", None) == old.__name__:
            node.target = new
            count += 1
    gm.recompile()
    return count


@mistake("replace_calls", "Method calls with old's name (x.relu()) were rewritten too; only call_function nodes whose target is old change.")
def methods_too(gm, old, new):
    count = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is old:
            node.target = new
            count += 1
        elif node.op == "call_method" and node.target == old.__name__:
            node.op, node.target = "call_function", new
            count += 1
    gm.recompile()
    return count


@mistake("replace_calls", "The graph was changed but gm.recompile() was never called: forward still runs the old code.")
def no_recompile(gm, old, new):
    count = 0
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is old:
            node.target = new
            count += 1
    return count


@mistake("replace_calls", "A new node was inserted and the users moved to it, but the old node was never erased: a dead node is left.")
def old_node_left(gm, old, new):
    count = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is old:
            with gm.graph.inserting_after(node):
                fresh = gm.graph.call_function(new, node.args, node.kwargs)
            node.replace_all_uses_with(fresh)
            count += 1
    gm.recompile()
    return count


# ----------------------------------------------------------------------------- fuse_add_relu


def _fuse(gm, fused, *, is_add=None, is_relu=None, lonely=True, erase=True, recompile=True, users_of_relu=False):
    import torch.fx as fx

    ref = _ref()
    is_add = is_add or ref._is_add
    is_relu = is_relu or ref._is_relu
    count = 0
    for relu in list(gm.graph.nodes):
        if not is_relu(relu) or len(relu.args) != 1:
            continue
        add = relu.args[0]
        if not isinstance(add, fx.Node) or not is_add(add):
            continue
        if lonely and len((relu if users_of_relu else add).users) != 1:
            continue
        with gm.graph.inserting_before(relu):
            node = gm.graph.call_function(fused, add.args)
        relu.replace_all_uses_with(node)
        if erase:
            gm.graph.erase_node(relu)
            if not add.users:
                gm.graph.erase_node(add)
        count += 1
    if recompile:
        gm.recompile()
    return count


@mistake("fuse_add_relu", "F.relu's kwargs were not looked at: F.relu(t, inplace=True) is not one of the relus to fuse.")
def ignores_inplace(gm, fused):
    import torch
    import torch.nn.functional as F

    return _fuse(gm, fused, is_relu=lambda n: n.op == "call_function" and n.target in (torch.relu, F.relu)
                 or n.op == "call_method" and n.target == "relu")


@mistake("fuse_add_relu", "An add read by other nodes too was fused: it is then computed twice (and the pair is not a fusion).")
def fuses_shared_add(gm, fused):
    return _fuse(gm, fused, lonely=False)


@mistake("fuse_add_relu", "The relu's users were counted instead of the add's: what must have no other reader is the add.")
def counts_relu_users(gm, fused):
    return _fuse(gm, fused, users_of_relu=True)


@mistake("fuse_add_relu", "Only torch.relu / F.relu were matched: t.relu() is a call_method node with the target 'relu'.")
def misses_method_relu(gm, fused):
    ref = _ref()
    return _fuse(gm, fused, is_relu=lambda n: n.op == "call_function" and ref._is_relu(n))


@mistake("fuse_add_relu", "Only a + b (operator.add) was matched: torch.add(a, b) is an add too.")
def misses_torch_add(gm, fused):
    import operator

    ref = _ref()
    return _fuse(gm, fused, is_add=lambda n: ref._is_add(n) and n.target is operator.add)


@mistake("fuse_add_relu", "torch.add's kwargs were ignored: torch.add(a, b, alpha=0.5) is a + 0.5 * b, not a + b.")
def ignores_alpha(gm, fused):
    import operator

    import torch

    return _fuse(gm, fused, is_add=lambda n: n.op == "call_function" and n.target in (operator.add, torch.add)
                 and len(n.args) == 2)


@mistake("fuse_add_relu", "The relu and the add were left in the graph after their users moved to the fused node: dead nodes.")
def leaves_dead_pair(gm, fused):
    return _fuse(gm, fused, erase=False)


@mistake("fuse_add_relu", "The graph was rewritten but gm.recompile() was never called: forward still runs add and relu.")
def fuse_no_recompile(gm, fused):
    return _fuse(gm, fused, recompile=False)


# ----------------------------------------------------------------------------- fold_constants


def _fold(gm, *, deep=True, modules=True, no_grad=True, erase=True, count_kept=False, fresh_names=True,
          recompile=True, pure=True):
    import contextlib
    import functools

    import torch
    import torch.fx as fx

    calls = ("call_function", "call_method", "call_module") if modules else ("call_function", "call_method")
    constant = {}
    folded = 0
    with torch.no_grad() if no_grad else contextlib.nullcontext():
        for node in gm.graph.nodes:
            if node.op == "get_attr":
                constant[node] = functools.reduce(getattr, node.target.split("."), gm)
            elif node.op in calls and (not pure or not node.is_impure()) and all(
                    n in constant and (deep or n.op == "get_attr") for n in node.all_input_nodes):
                args = fx.node.map_arg(node.args, constant.__getitem__)
                kwargs = fx.node.map_arg(node.kwargs, constant.__getitem__)
                if node.op == "call_function":
                    constant[node] = node.target(*args, **kwargs)
                elif node.op == "call_method":
                    constant[node] = getattr(args[0], node.target)(*args[1:], **kwargs)
                else:
                    constant[node] = gm.get_submodule(node.target)(*args, **kwargs)
                folded += 1
    kept = 0
    for node in reversed(list(gm.graph.nodes)):
        if node.op != "get_attr" and node in constant:
            if any(user not in constant for user in node.users):
                name = f"_folded_{kept}"
                while fresh_names and hasattr(gm, name):
                    name += "_"
                kept += 1
                if hasattr(gm, name):
                    delattr(gm, name)
                setattr(gm, name, constant[node])
                with gm.graph.inserting_before(node):
                    node.replace_all_uses_with(gm.graph.get_attr(name))
            if erase:
                gm.graph.erase_node(node)
    if erase:
        for node in list(gm.graph.nodes):
            if node.op == "get_attr" and not node.users:
                gm.graph.erase_node(node)
    if recompile:
        gm.recompile()
    return kept if count_kept else folded


@mistake("fold_constants", "Only nodes that read get_attrs directly were folded: a constant's constant (w.t() * 2) is constant too.")
def one_level(gm):
    return _fold(gm, deep=False)


@mistake("fold_constants", "call_module nodes were not folded: a submodule applied to a parameter is constant too.")
def skips_modules(gm):
    return _fold(gm, modules=False)


@mistake("fold_constants", "The constants were computed with autograd recording: the stored values require grad and hold their graph.")
def folds_with_grad(gm):
    return _fold(gm, no_grad=False)


@mistake("fold_constants", "The folded values were stored but the constant nodes that computed them were left in the graph.")
def keeps_constant_nodes(gm):
    return _fold(gm, erase=False)


@mistake("fold_constants", "The count was of the values stored, not of the constant call nodes folded.")
def counts_stored_values(gm):
    return _fold(gm, count_kept=True)


@mistake("fold_constants", "The new attributes got fixed names without checking: an existing attribute of that name was overwritten.")
def overwrites_attributes(gm):
    return _fold(gm, fresh_names=False)


@mistake("fold_constants", "Impure nodes were folded too: a torch._assert on the parameters must stay in the graph, to run on every call.")
def folds_impure(gm):
    return _fold(gm, pure=False)


@mistake("fold_constants", "The graph was changed but gm.recompile() was never called: forward still computes the constants.")
def fold_no_recompile(gm):
    return _fold(gm, recompile=False)


# ----------------------------------------------------------------------------- make_backend


@mistake("make_backend", "The graph was counted when it was compiled, not each time it ran: calls must grow with every run.")
def counts_at_compile(log):
    import torch

    def backend(gm, example_inputs):
        log.append({"ops": [n.target for n in gm.graph.nodes if n.op.startswith("call")],
                    "inputs": [tuple(x.shape) if isinstance(x, torch.Tensor) else "sym" for x in example_inputs],
                    "calls": 1})
        return gm.forward

    return backend


@mistake("make_backend", "The runs were counted on the latest record (log[-1]), not on the record of the graph that ran.")
def counts_latest(log):
    import torch

    def backend(gm, example_inputs):
        log.append({"ops": [n.target for n in gm.graph.nodes if n.op.startswith("call")],
                    "inputs": [tuple(x.shape) if isinstance(x, torch.Tensor) else "sym" for x in example_inputs],
                    "calls": 0})

        def run(*args):
            log[-1]["calls"] += 1
            return gm.forward(*args)

        return run

    return backend


@mistake("make_backend", "Symbolic sizes were left out of the inputs: under dynamic shapes dynamo passes them as example inputs too.")
def tensors_only(log):
    import torch

    def backend(gm, example_inputs):
        record = {"ops": [n.target for n in gm.graph.nodes if n.op.startswith("call")],
                  "inputs": [tuple(x.shape) for x in example_inputs if isinstance(x, torch.Tensor)], "calls": 0}
        log.append(record)

        def run(*args):
            record["calls"] += 1
            return gm.forward(*args)

        return run

    return backend


@mistake("make_backend", "Every node's target was recorded, placeholders and output included; only call nodes are ops.")
def every_node(log):
    import torch

    def backend(gm, example_inputs):
        record = {"ops": [n.target for n in gm.graph.nodes],
                  "inputs": [tuple(x.shape) if isinstance(x, torch.Tensor) else "sym" for x in example_inputs],
                  "calls": 0}
        log.append(record)

        def run(*args):
            record["calls"] += 1
            return gm.forward(*args)

        return run

    return backend
