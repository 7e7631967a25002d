"""Reference solution for kata 14 — losses."""

from __future__ import annotations

import torch
from torch import Tensor


def reduce_loss(loss: Tensor, reduction: str = "mean") -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{reduction!r} is not a valid value for reduction: use 'none', 'mean' or 'sum'")


def logsumexp(x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    m = x.amax(dim=dim, keepdim=True).detach()
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)  # all -inf rows, +inf entries
    out = m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return x - logsumexp(x, dim, keepdim=True)


def binary_cross_entropy_with_logits(logits: Tensor, target: Tensor, pos_weight: Tensor | None = None,
                                     reduction: str = "mean") -> Tensor:
    # softplus(-x) = -log(sigmoid(x)) = max(-x, 0) + log1p(exp(-|x|)): exp never overflows.
    softplus_neg = torch.clamp(-logits, min=0) + torch.log1p(torch.exp(-logits.abs()))
    if pos_weight is None:
        loss = (1 - target) * logits + softplus_neg
    else:
        loss = (1 - target) * logits + (1 + (pos_weight - 1) * target) * softplus_neg
    return reduce_loss(loss, reduction)


def cross_entropy(logits: Tensor, target: Tensor, *, ignore_index: int = -100,
                  label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    logp = log_softmax(logits, dim=1)
    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros_like(target))
    loss = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    if label_smoothing:
        loss = (1 - label_smoothing) * loss - label_smoothing * logp.mean(dim=1)
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    if reduction == "mean":
        return loss.sum() / keep.sum()
    return reduce_loss(loss, reduction)
