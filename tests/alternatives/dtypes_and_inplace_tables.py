"""An alternative correct answer to kata 04 (dtypes and in-place ops): other code, same rules."""

from __future__ import annotations

import torch

_RANK = {"bool": 0, "int": 1, "float": 2, "complex": 3}


def _cat(dtype):
    if dtype is torch.bool:
        return 0
    return 3 if dtype.is_complex else 2 if dtype.is_floating_point else 1


def _complex_for(dtype):
    return {torch.float16: torch.complex32, torch.float64: torch.complex128}.get(dtype, torch.complex64)


def result_dtype(a, b):
    groups = [[], [], []]  # dimensioned tensors, 0-dim tensors, Python numbers
    for x in (a, b):
        if isinstance(x, torch.Tensor):
            groups[0 if x.dim() else 1].append(x.dtype)
        elif type(x) is bool:
            groups[2].append(torch.bool)
        elif type(x) is int:
            groups[2].append(torch.int64)
        elif type(x) is float:
            groups[2].append(torch.get_default_dtype())
        elif type(x) is complex:
            groups[2].append(_complex_for(torch.get_default_dtype()))
        else:
            raise TypeError(repr(x))
    result = None
    for group in groups:
        if not group:
            continue
        d = group[0]
        for other in group[1:]:
            d = torch.promote_types(d, other)
        if result is None:
            result = d
        elif _cat(d) > _cat(result):
            result = _complex_for(result) if _cat(result) == 2 and _cat(d) == 3 else d
    return result


def joined_shape(op, shapes, dim):
    shapes = [tuple(s) for s in shapes]
    if not shapes:
        raise ValueError("no shapes")
    if op == "unsqueeze" and len(shapes) != 1:
        raise ValueError("one shape")
    if op in ("stack", "unsqueeze"):
        n = len(shapes[0]) + 1
        if dim < -n or dim >= n:
            raise IndexError(dim)
        if len(set(shapes)) != 1:
            raise ValueError("shapes differ")
        d = dim + n if dim < 0 else dim
        s = list(shapes[0])
        s.insert(d, len(shapes) if op == "stack" else 1)
        return tuple(s)
    if op != "cat":
        raise ValueError(op)
    n = len(shapes[0])
    if n == 0:
        raise ValueError("0-d")
    if dim < -n or dim >= n:
        raise IndexError(dim)
    d = dim + n if dim < 0 else dim
    total = 0
    for s in shapes:
        if len(s) != n or s[:d] + s[d + 1:] != shapes[0][:d] + shapes[0][d + 1:]:
            raise ValueError(f"{s} vs {shapes[0]}")
        total += s[d]
    return shapes[0][:d] + (total,) + shapes[0][d + 1:]


_OUTPUT = {"exp", "sqrt", "tanh", "sigmoid", "relu", "reciprocal", "softmax", "pow"}
_INPUT = {"sin", "cos", "log", "square", "abs", "mul", "div", "matmul", "maximum", "pow"}
_OTHER = {"mul", "div", "matmul", "maximum", "pow"}


def breaks_backward(op, victim):
    return op in {"output": _OUTPUT, "input": _INPUT, "other": _OTHER}[victim]


def sigmoid_layer(x, w, b):
    h = x @ w
    h += b
    torch.sigmoid_(h)
    out = h.mul(2)
    out -= 1
    return out


def sgd_update_(params, lr, weight_decay=0.0):
    with torch.no_grad():
        for p in params:
            g = p.grad
            if g is None:
                continue
            if weight_decay:
                g = g.add(p, alpha=weight_decay)
            p.add_(g, alpha=-lr)
