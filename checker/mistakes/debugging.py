"""Known mistakes for the debugging kata."""

from __future__ import annotations

import torch
from torch import nn

from checker.mistakes import _solution_of, mistake

_sol = _solution_of("debugging")


# ----------------------------------------------------------------------------- nan_source


@mistake("nan_source", "loss.backward() under anomaly mode: it finds the node but leaves gradients in every parameter's .grad — a diagnostic must not train.")
def backward_fills_grads(model, x):
    try:
        with torch.autograd.detect_anomaly():
            model(x).sum().backward()
    except RuntimeError as exc:
        return str(exc).split("'")[1]
    return None


@mistake("nan_source", "Returned the forward op's name ('sqrt') instead of the backward node's class name ('SqrtBackward0').")
def forward_op_name(model, x):
    name = _sol.nan_source(model, x)
    return None if name is None else name.removesuffix("Backward0").removesuffix("Backward1").lower()


@mistake("nan_source", "Switched anomaly mode on with torch.autograd.set_detect_anomaly(True) and never switched it back: it slows every later backward.")
def anomaly_left_on(model, x):
    torch.autograd.set_detect_anomaly(True)
    params = list(model.parameters())
    try:
        torch.autograd.grad(model(x).sum(), params)
    except RuntimeError as exc:
        return str(exc).split("'")[1]
    return None


@mistake("nan_source", "Without anomaly mode, looked for NaN in the finished gradients and named the output's grad_fn: the NaN is real, but the node that made it is not the last one.")
def names_the_output_node(model, x):
    out = model(x).sum()
    grads = torch.autograd.grad(out, list(model.parameters()))
    if any(g.isnan().any() for g in grads):
        return type(out.grad_fn).__name__
    return None


# ----------------------------------------------------------------------------- dead_units


@mistake("dead_units", "Called a unit dead when it is zero on ANY sample; dead means zero on EVERY sample.")
def zero_anywhere(model, x):
    found, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            handles.append(module.register_forward_hook(
                lambda m, a, out, name=name: found.__setitem__(
                    name, [int(i) for i in (out == 0).reshape(-1, out.shape[-1]).any(0).nonzero().flatten()])))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found


@mistake("dead_units", "Tested the ReLU's input for < 0: an input of exactly 0 also gives an output of 0, and that unit is dead too.")
def input_below_zero(model, x):
    found, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            handles.append(module.register_forward_pre_hook(
                lambda m, args, name=name: found.__setitem__(
                    name, [int(i) for i in (args[0] < 0).reshape(-1, args[0].shape[-1]).all(0).nonzero().flatten()])))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found


@mistake("dead_units", "Reduced over dim 0 only: with (N, T, F) activations a unit must be zero at every sample AND every time step.")
def batch_dim_only(model, x):
    found, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            handles.append(module.register_forward_hook(
                lambda m, a, out, name=name: found.__setitem__(
                    name, sorted({int(i) for i in (out == 0).all(0).nonzero()[:, -1]}))))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found


@mistake("dead_units", "Left ReLUs without dead units out of the dict; every nn.ReLU gets an entry, [] when all its units fire.")
def omits_healthy_relus(model, x):
    return {name: units for name, units in _sol.dead_units(model, x).items() if units}


@mistake("dead_units", "Never removed the forward hooks: they keep firing (and writing into the dict) on every later forward.")
def hooks_left_behind(model, x):
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            module.register_forward_hook(
                lambda m, a, out, name=name: found.__setitem__(
                    name, [int(i) for i in (out == 0).reshape(-1, out.shape[-1]).all(0).nonzero().flatten()]))
    with torch.no_grad():
        model(x)
    return found


# ----------------------------------------------------------------------------- numerical_jacobian


@mistake("numerical_jacobian", "Forward differences (f(x + eps) - f(x)) / eps: an error of order eps, where central differences have eps squared.")
def forward_difference(f, x, eps):
    flat = x.detach().clone().reshape(-1)
    base = f(flat.reshape(x.shape)).reshape(-1)
    columns = []
    for j in range(flat.numel()):
        step = torch.zeros_like(flat)
        step[j] = eps
        columns.append((f((flat + step).reshape(x.shape)).reshape(-1) - base) / eps)
    return torch.stack(columns, 1) if columns else torch.zeros(base.numel(), 0, dtype=x.dtype)


@mistake("numerical_jacobian", "Transposed layout (x.numel(), f(x).numel()), as torch.autograd.gradcheck stores it: rows are outputs here.")
def transposed(f, x, eps):
    return _sol.numerical_jacobian(f, x, eps).T


@mistake("numerical_jacobian", "Divided by eps instead of 2 * eps: the two evaluations are 2 * eps apart.")
def half_the_step(f, x, eps):
    return _sol.numerical_jacobian(f, x, eps) * 2


@mistake("numerical_jacobian", "Nudged x in place and undid it by subtracting eps: x + eps - eps is not x in floating point, so the caller's x changes.")
def nudges_x_in_place(f, x, eps):
    flat = x.view(-1) if x.is_contiguous() else x.reshape(-1)
    columns = []
    rows = f(x).numel()
    for j in range(x.numel()):
        with torch.no_grad():
            flat[j] += eps
            plus = f(x).reshape(-1).clone()
            flat[j] -= 2 * eps
            minus = f(x).reshape(-1).clone()
            flat[j] += eps
        columns.append((plus - minus) / (2 * eps))
    return torch.stack(columns, 1) if columns else torch.zeros(rows, 0, dtype=x.dtype)


@mistake("numerical_jacobian", "Returned the exact Jacobian (autograd): the task is the finite-difference estimate, which differs from it by O(eps^2).")
def exact_jacobian(f, x, eps):
    rows = f(x).numel()
    if x.numel() == 0 or rows == 0:
        return torch.zeros(rows, x.numel(), dtype=x.dtype)
    jac = torch.autograd.functional.jacobian(f, x.detach().clone())
    return jac.reshape(rows, x.numel())


# ----------------------------------------------------------------------------- first_explosion


def _leaves(model):
    return [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]


def _run(model, x, upstream, test, *, order=None, use_grad_output=False):
    fwd, bwd, handles = [], [], []
    for name, m in _leaves(model):
        handles.append(m.register_forward_hook(lambda m, a, out, name=name: fwd.append(name) if test(out) else None))
        handles.append(m.register_full_backward_hook(
            lambda m, gi, go, name=name: bwd.append(name) if test(go[0] if use_grad_output else gi[0]) else None))
    try:
        out = model(x)
        if fwd:
            if order is not None:
                return ("forward", min(fwd, key=order.index))
            return ("forward", fwd[0])
        torch.autograd.grad(out, x, upstream)
    finally:
        for h in handles:
            h.remove()
    return ("backward", bwd[0]) if bwd else None


@mistake("first_explosion", "Tested abs().max() > threshold only: NaN compares False with everything, so a NaN activation or gradient slipped through.")
def nan_slips_through(model, x, upstream, threshold):
    return _run(model, x, upstream, lambda t: t is not None and bool(t.abs().max() > threshold))


@mistake("first_explosion", "Tested grad_output (the gradient arriving at the module's output) instead of grad_input: that blames the module after the source.")
def tests_grad_output(model, x, upstream, threshold):
    return _run(model, x, upstream, lambda t: _sol._explodes(t, threshold), use_grad_output=True)


@mistake("first_explosion", "Took the LAST module backward reaches: an explosion spreads to everything backward reaches after its source.")
def last_in_backward(model, x, upstream, threshold):
    result = _sol.first_explosion(model, x, upstream, threshold)
    if result is None or result[0] == "forward":
        return result
    names = [n for n, _ in _leaves(model)]
    bwd = []
    hooks = [m.register_full_backward_hook(lambda m, gi, go, n=n: bwd.append(n) if _sol._explodes(gi[0], threshold) else None)
             for n, m in _leaves(model)]
    try:
        torch.autograd.grad(model(x), x, upstream)
    finally:
        for h in hooks:
            h.remove()
    return ("backward", bwd[-1]) if bwd else ("backward", names[0])


@mistake("first_explosion", "Took the first exploding module in named_modules() order, the order they were registered in, not the order they run.")
def registration_order(model, x, upstream, threshold):
    return _run(model, x, upstream, lambda t: _sol._explodes(t, threshold),
                order=[n for n, _ in _leaves(model)])


@mistake("first_explosion", "Counted a value equal to the threshold as exploding (>=); only values greater than it explode.")
def at_threshold_explodes(model, x, upstream, threshold):
    return _run(model, x, upstream,
                lambda t: t is not None and bool((~t.isfinite()).any() or (t.abs() >= threshold).any()))


@mistake("first_explosion", "Never removed the hooks: the model keeps testing (and the lists keep growing) on every later forward and backward.")
def hooks_not_removed(model, x, upstream, threshold):
    fwd, bwd = [], []
    for name, m in _leaves(model):
        m.register_forward_hook(lambda m, a, out, name=name: fwd.append(name) if _sol._explodes(out, threshold) else None)
        m.register_full_backward_hook(lambda m, gi, go, name=name: bwd.append(name) if _sol._explodes(gi[0], threshold) else None)
    out = model(x)
    if fwd:
        return ("forward", fwd[0])
    torch.autograd.grad(out, x, upstream)
    return ("backward", bwd[0]) if bwd else None


# ----------------------------------------------------------------------------- wrong_gradients


@mistake("wrong_gradients", "One gradcheck over all inputs at once: it stops at the first mismatch, so a second wrong input goes unreported.")
def one_gradcheck_for_all(fn, inputs):
    try:
        torch.autograd.gradcheck(fn.apply, tuple(t.detach().clone().requires_grad_(t.requires_grad)
                                                 for t in inputs))
    except torch.autograd.gradcheck.GradcheckError as exc:
        return [int(str(exc).split("with respect to input ")[1].split(",")[0])]
    except RuntimeError:
        return [i for i, t in enumerate(inputs) if t.requires_grad][:1]
    return []


@mistake("wrong_gradients", "Judged every input, also those that do not require grad: their backward output is never used, so it cannot be wrong.")
def judges_frozen_inputs(fn, inputs):
    return _sol.wrong_gradients(fn, tuple(t.detach().requires_grad_() for t in inputs))


@mistake("wrong_gradients", "Let a gradient of the wrong shape crash the check: backward raises RuntimeError for it, and that input's gradient is wrong.")
def shape_error_escapes(fn, inputs):
    wrong = []
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        others = [u.detach() for u in inputs]
        ok = torch.autograd.gradcheck(
            lambda v, i=i, others=others: fn.apply(*others[:i], v, *others[i + 1:]),
            (t.detach().clone().requires_grad_(),), raise_exception=False)
        if not ok:
            wrong.append(i)
    return wrong


@mistake("wrong_gradients", "Compared the backward with finite differences for an upstream gradient of ones only: a backward that ignores grad_output agrees with that one.")
def ones_upstream_only(fn, inputs):
    wrong = []
    base = [t.detach() for t in inputs]
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        v = base[i].clone().requires_grad_()
        try:
            out = fn.apply(*base[:i], v, *base[i + 1:])
            (g,) = torch.autograd.grad(out, v, torch.ones_like(out), allow_unused=True)
        except RuntimeError:
            wrong.append(i)
            continue
        numeric = _sol.numerical_jacobian(lambda u, i=i: fn.apply(*base[:i], u, *base[i + 1:]).sum(),
                                          base[i], 1e-6)
        if g is None or not torch.allclose(g.reshape(-1), numeric.reshape(-1), rtol=1e-4, atol=1e-6):
            wrong.append(i)
    return wrong


# ----------------------------------------------------------------------------- mixes_samples


@mistake("mixes_samples", "Judged by the inputs' shapes alone: (N,) against (N, 1) is harmless when the loss reshapes, and equal shapes can hide nothing.")
def shapes_differ(loss_fn, pred, target):
    return pred.shape[0] > 1 and pred.dim() != target.dim()


@mistake("mixes_samples", "Compared the loss with itself on flattened inputs: a loss that needs 2-D logits breaks when flattened, and that is not mixing.")
def flattened_comparison(loss_fn, pred, target):
    with torch.no_grad():
        try:
            flat = loss_fn(pred.reshape(-1), target.reshape(-1))
        except (RuntimeError, IndexError):
            return True
        return not torch.allclose(loss_fn(pred, target), flat)
