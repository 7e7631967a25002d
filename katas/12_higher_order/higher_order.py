"""Kata 12 — higher_order: differentiating gradients (create_graph=True).

Second derivatives, Hessian-vector products, gradient penalties and meta-learning all need
a gradient that can itself be differentiated. `kata lesson` shows how autograd gives one.

Rules: torch.func (grad, vjp, jvp, jacrev, jacfwd, hessian, ...) and
torch.autograd.functional (hvp, vhp, hessian, jacobian, ...) are off-limits — build
everything with ``torch.autograd.grad``. The checks use torch.func as the oracle.
Never change the caller's tensors: their values, ``requires_grad`` and ``.grad`` stay as
they were. Results are new tensors of the caller's dtype and carry no graph (they do not
require grad), except gradient_penalty's, which must.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def second_derivative(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """f''(x) at every point of ``x``, for an elementwise function ``f``.

    ``f`` maps a tensor to a tensor of the same shape, element by element (like torch.sin).
    ``x`` has any shape; the result has the same shape. If ``f`` is linear, f'' is zero.

    Example:
        >>> second_derivative(lambda t: t**3, torch.tensor([1.0, 2.0]))
        tensor([ 6., 12.])
    """
    raise NotImplementedError("second_derivative: see `kata lesson`, or `kata hint` for a nudge")


def hvp(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The Hessian-vector product H(x) @ v of a scalar function ``f``, without forming H.

    ``f`` maps a tensor shaped like ``x`` to a 0-dim tensor; ``v`` has the shape of ``x``;
    so does the result (H is "flattened x by flattened x", v and H @ v are viewed as x).

    Example:
        >>> f = lambda t: (t[0] ** 2) * t[1]          # H = [[2*t1, 2*t0], [2*t0, 0]]
        >>> hvp(f, torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0]))
        tensor([6., 2.])
    """
    raise NotImplementedError("hvp: see `kata lesson`, or `kata hint` for a nudge")


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """The WGAN-GP gradient penalty, differentiable with respect to the critic's weights.

    mixed = alpha * real + (1 - alpha) * fake   (``alpha`` broadcasts: shape (B, 1, ..., 1))
    penalty = mean over the batch of (|| d critic(mixed)_b / d mixed_b ||_2 - 1) ** 2

    ``real`` and ``fake`` have shape (B, ...); ``critic`` maps (B, ...) to (B, 1). The norm is
    taken per sample, over all of that sample's elements. Return a 0-dim tensor whose
    ``.backward()`` trains the critic; leave the critic's ``.grad`` untouched yourself.

    Example:
        >>> critic = nn.Sequential(nn.Flatten(), nn.Linear(6, 1))   # gradient = the weight row
        >>> _ = nn.init.constant_(critic[1].weight, 0.5)           # ||w|| = sqrt(6 * 0.25)
        >>> real, fake, alpha = torch.randn(4, 2, 3), torch.randn(4, 2, 3), torch.rand(4, 1, 1)
        >>> penalty = gradient_penalty(critic, real, fake, alpha)     # (||w|| - 1) ** 2, any data
        >>> torch.allclose(penalty, (torch.tensor(1.5).sqrt() - 1) ** 2), penalty.requires_grad
        (True, True)
    """
    raise NotImplementedError("gradient_penalty: see `kata lesson`, or `kata hint` for a nudge")


def meta_gradient(
    train_loss: Callable[[torch.Tensor], torch.Tensor],
    val_loss: Callable[[torch.Tensor], torch.Tensor],
    w: torch.Tensor,
    lr: float,
    steps: int,
) -> torch.Tensor:
    """d val_loss(w_k) / d w, through ``steps`` inner SGD steps on ``train_loss`` (MAML).

    w_0 = w;  w_{i+1} = w_i - lr * d train_loss(w_i) / d w_i;  return d val_loss(w_steps) / d w_0,
    shaped like w, exact (the first-order approximation d val_loss / d w_steps is NOT the
    answer). ``steps`` may be 0.

    Example:
        >>> train = lambda w: (w**2).sum(); val = lambda w: w.sum()    # w_1 = (1 - 2*lr) * w
        >>> meta_gradient(train, val, torch.tensor([1.0, 2.0]), lr=0.25, steps=1)
        tensor([0.5000, 0.5000])
    """
    raise NotImplementedError("meta_gradient: see `kata lesson`, or `kata hint` for a nudge")
