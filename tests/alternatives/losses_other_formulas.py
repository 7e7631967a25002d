"""A correct answer to kata 13 (losses) with other stable formulas than the reference: the max
shift through torch.where and nan_to_num-free masking, BCE from logaddexp-style softplus,
cross-entropy from one-hot weights."""

from __future__ import annotations

import torch
from torch import Tensor


def reduce_loss(loss: Tensor, reduction: str = "mean") -> Tensor:
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"unknown reduction {reduction!r}")
    return {"none": loss, "mean": loss.mean() if reduction == "mean" else loss,
            "sum": loss.sum() if reduction == "sum" else loss}[reduction]


def logsumexp(x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    top = torch.amax(x, dim, keepdim=True).detach()
    top = torch.where(top.isfinite(), top, torch.zeros((), dtype=x.dtype))
    out = (x - top).exp().sum(dim, keepdim=True).log() + top
    return out if keepdim else out.squeeze(dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return x - logsumexp(x, dim, keepdim=True)


def _softplus(z: Tensor) -> Tensor:
    """log(1 + exp(z)), stable for any z."""
    return z.clamp(min=0) + (-z.abs()).exp().log1p()


def binary_cross_entropy_with_logits(logits: Tensor, target: Tensor,
                                     pos_weight: Tensor | None = None,
                                     reduction: str = "mean") -> Tensor:
    positive = _softplus(-logits)  # -log(sigmoid(x))
    negative = _softplus(logits)  # -log(1 - sigmoid(x))
    weight = 1 if pos_weight is None else pos_weight
    return reduce_loss(weight * target * positive + (1 - target) * negative, reduction)


def cross_entropy(logits: Tensor, target: Tensor, *, ignore_index: int = -100,
                  label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    c = logits.shape[1]
    logp = log_softmax(logits, 1)
    valid = target != ignore_index
    classes = torch.arange(c).view(1, c, *([1] * (logits.dim() - 2)))
    one_hot = (classes == target.masked_fill(~valid, 0).unsqueeze(1)).to(logits.dtype)
    weights = one_hot * (1 - label_smoothing) + label_smoothing / c
    loss = -(weights * logp).sum(1) * valid
    if reduction == "mean":
        return loss.sum() / valid.sum()
    return reduce_loss(loss, reduction)
