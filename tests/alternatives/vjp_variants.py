"""Alternative correct answers for vjp: the reference, with the functions below in
place of its own (test material: each must pass `kata check vjp --file` on every seed)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from checker.mistakes import _solution_of

_reference = _solution_of('vjp')
linear_vjp = _reference.linear_vjp
softmax_vjp = _reference.softmax_vjp
layer_norm_vjp = _reference.layer_norm_vjp
jvp_by_double_vjp = _reference.jvp_by_double_vjp


def reduce_vjp(
    grad_out: torch.Tensor,
    in_shape: tuple[int, ...],
    dim: int | tuple[int, ...] | None,
    keepdim: bool,
    mean: bool,
) -> torch.Tensor:
    n = len(in_shape)
    if dim is None:
        dims = tuple(range(n))
    elif isinstance(dim, int):
        dims = (dim % n,)
    else:
        dims = tuple(d % n for d in dim)
    kept = [1 if d in dims else s for d, s in enumerate(in_shape)]
    grad = grad_out.reshape(kept) * torch.ones(in_shape, dtype=grad_out.dtype)
    if mean:
        count = 1
        for d in dims:
            count *= in_shape[d]
        grad = grad / count
    return grad


def jacobian_from_backward(
    y: torch.Tensor, x: torch.Tensor, backward: Callable[[torch.Tensor], None]
) -> torch.Tensor:
    rows = []
    for i in range(y.numel()):
        v = torch.zeros(y.numel(), dtype=y.dtype)
        v[i] = 1.0
        if x.grad is not None:
            x.grad.zero_()
        backward(v.reshape(y.shape))
        rows.append(x.grad.clone())
    return torch.stack(rows).reshape(*y.shape, *x.shape)
