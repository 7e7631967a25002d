"""Reference solution for kata 12 — higher_order."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def second_derivative(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_()
    (first,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
    if not first.requires_grad:  # f is linear: f' is a constant with no graph, f'' is zero
        return torch.zeros_like(x)
    (second,) = torch.autograd.grad(first.sum(), x)
    return second


def hvp(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    (hv,) = torch.autograd.grad(g, x, grad_outputs=v)
    return hv


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    mixed = (alpha * real + (1 - alpha) * fake).detach().requires_grad_()
    scores = critic(mixed)
    (g,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = g.flatten(1).norm(dim=1)
    return ((norms - 1) ** 2).mean()


def meta_gradient(
    train_loss: Callable[[torch.Tensor], torch.Tensor],
    val_loss: Callable[[torch.Tensor], torch.Tensor],
    w: torch.Tensor,
    lr: float,
    steps: int,
) -> torch.Tensor:
    w0 = w.detach().requires_grad_()
    current = w0
    for _ in range(steps):
        (g,) = torch.autograd.grad(train_loss(current), current, create_graph=True)
        current = current - lr * g
    (meta,) = torch.autograd.grad(val_loss(current), w0)
    return meta
