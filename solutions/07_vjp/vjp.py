"""Reference solution for kata 07 — vjp."""

from __future__ import annotations

from collections.abc import Callable

import torch


def linear_vjp(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, grad_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    grad_x = grad_out @ w.T
    k, m = w.shape
    grad_w = x.reshape(-1, k).T @ grad_out.reshape(-1, m)
    # b was broadcast up to grad_out's shape: sum away the dims it gained, then the dims
    # where it had size 1 (keeping them).
    grad_b = grad_out
    while grad_b.dim() > b.dim():
        grad_b = grad_b.sum(0)
    for d, size in enumerate(b.shape):
        if size == 1 and grad_b.shape[d] != 1:
            grad_b = grad_b.sum(d, keepdim=True)
    return grad_x, grad_w, grad_b


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
    grad = grad_out
    if not keepdim:
        for d in sorted(dims):
            grad = grad.unsqueeze(d)
    grad = grad.expand(in_shape)
    if mean:
        count = 1
        for d in dims:
            count *= in_shape[d]
        grad = grad / count
    return grad


def softmax_vjp(y: torch.Tensor, grad_out: torch.Tensor, dim: int) -> torch.Tensor:
    return y * (grad_out - (grad_out * y).sum(dim, keepdim=True))


def layer_norm_vjp(
    x: torch.Tensor,
    normalized_shape: tuple[int, ...],
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float,
    grad_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dims = tuple(range(-len(normalized_shape), 0))
    lead = tuple(range(x.dim() - len(normalized_shape)))
    mu = x.mean(dims, keepdim=True)
    var = ((x - mu) ** 2).mean(dims, keepdim=True)
    rstd = (var + eps).rsqrt()
    xhat = (x - mu) * rstd
    g = grad_out * weight
    grad_x = rstd * (g - g.mean(dims, keepdim=True) - xhat * (g * xhat).mean(dims, keepdim=True))
    grad_w = (grad_out * xhat).sum(lead) if lead else grad_out * xhat
    grad_b = grad_out.sum(lead) if lead else grad_out.clone()
    return grad_x, grad_w, grad_b


def jacobian_from_backward(
    y: torch.Tensor, x: torch.Tensor, backward: Callable[[torch.Tensor], None]
) -> torch.Tensor:
    rows = []
    for i in range(y.numel()):
        v = torch.zeros(y.numel(), dtype=y.dtype)
        v[i] = 1.0
        x.grad = None
        backward(v.reshape(y.shape))
        rows.append(x.grad.clone())
    return torch.stack(rows).reshape(*y.shape, *x.shape)


def jvp_by_double_vjp(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    u: torch.Tensor,
    vjp: Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    dummy = torch.zeros_like(f(x))
    return vjp(lambda v: vjp(f, x, v), dummy, u)
