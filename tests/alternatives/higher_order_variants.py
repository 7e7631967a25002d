"""Alternative correct answers for higher_order: the reference, with the functions below in
place of its own (test material: each must pass `kata check higher_order --file` on every seed)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from checker.mistakes import _solution_of

_reference = _solution_of('higher_order')
gradient_penalty = _reference.gradient_penalty


def second_derivative(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_()
    (first,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
    if not first.requires_grad:  # f is linear: f' is a constant with no graph, f'' is zero
        return torch.zeros_like(x).detach()
    (second,) = torch.autograd.grad(first.sum(), x)
    return second


def hvp(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), x)
    return hv


def meta_gradient(
    train_loss: Callable[[torch.Tensor], torch.Tensor],
    val_loss: Callable[[torch.Tensor], torch.Tensor],
    w: torch.Tensor,
    lr: float,
    steps: int,
) -> torch.Tensor:
    w0 = w.clone().requires_grad_()
    current = w0 * 1.0
    for _ in range(steps):
        (g,) = torch.autograd.grad(train_loss(current), current, create_graph=True)
        current = current - lr * g
    (meta,) = torch.autograd.grad(val_loss(current), w0)
    return meta
