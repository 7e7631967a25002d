"""Kata 14 — losses: numerically stable losses.

A loss is a few lines of math — and a trap: written the way the textbook writes it,
log(sum(exp(x))) overflows to inf at x = 1e4 (exp(710) is already inf in float64), and
log(sigmoid(x)) becomes log(0) = -inf at x = -1e4. torch's losses never compute those
intermediates. Write each function below so that it equals torch.nn.functional on ordinary
inputs AND stays finite and correct on extreme logits (±1e4), in value and in gradient
(the checks backpropagate through your code with autograd).

Rules: the torch.nn.functional versions of what you implement are off-limits while your code
runs (F.cross_entropy, F.nll_loss, F.log_softmax, F.binary_cross_entropy[_with_logits],
F.softplus, F.logsigmoid, torch.logsumexp, torch.logaddexp, their Tensor methods and nn
classes). Build them from exp, log, log1p, amax, where, gather, sum, mean, ...
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reduce_loss(loss: Tensor, reduction: str = "mean") -> Tensor:
    """Reduce a tensor of per-element losses the way torch's losses do.

    ``"none"``: return ``loss`` as it is; ``"mean"``: the mean over ALL elements (not only
    over the batch dimension); ``"sum"``: the sum. Anything else raises ``ValueError`` whose
    message names the bad value.

    Example:
        >>> reduce_loss(torch.tensor([[1.0, 2.0], [3.0, 6.0]]), "mean")
        tensor(3.)
        >>> reduce_loss(torch.tensor([1.0, 2.0]), "avg")
        Traceback (most recent call last):
        ValueError: 'avg' is not a valid value for reduction: use 'none', 'mean' or 'sum'
    """
    raise NotImplementedError("reduce_loss: see `kata lesson`, or `kata hint` for a nudge")


def logsumexp(x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x), dim)), computed without overflow — equal to ``torch.logsumexp``.

    No overflow for huge logits (1e4 in float32), and the infinities: a slice that is all ``-inf`` gives ``-inf`` (not nan), a slice holding
    ``+inf`` gives ``+inf``. ``dim`` may be negative; ``keepdim`` keeps it with size 1.
    The gradient must be finite too (it is softmax(x) times the upstream gradient).

    Example:
        >>> logsumexp(torch.tensor([[1e4, 1e4], [0.0, float("-inf")]]), dim=1)
        tensor([10000.6934,     0.0000])
    """
    raise NotImplementedError("logsumexp: see `kata lesson`, or `kata hint` for a nudge")


def log_softmax(x: Tensor, dim: int) -> Tensor:
    """log(softmax(x)) along ``dim``, stable — equal to ``F.log_softmax(x, dim)``.

    Finite wherever the answer is: a logit 2e4 below the maximum gives about -2e4, never
    -inf. Same shape as ``x``.

    Example:
        >>> log_softmax(torch.tensor([0.0, 1e4, -1e4]), dim=0)
        tensor([-10000.,      0., -20000.])
    """
    raise NotImplementedError("log_softmax: see `kata lesson`, or `kata hint` for a nudge")


def binary_cross_entropy_with_logits(logits: Tensor, target: Tensor,
                                     pos_weight: Tensor | None = None,
                                     reduction: str = "mean") -> Tensor:
    """``F.binary_cross_entropy_with_logits``, stable for any logit.

    Per element, with x the logit, y the target in [0, 1] and p the pos_weight (1 if None):
        loss = -[p * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x))]
    It must stay finite and exact for logits of any size (1e4 included), in value and in
    gradient. ``logits`` and ``target`` have the same shape; ``pos_weight`` (optional) broadcasts against
    them, typically one weight per class along the last dim. Then reduce with ``reduction``.

    Example:
        >>> binary_cross_entropy_with_logits(torch.tensor([-1e4, 1e4]), torch.tensor([1.0, 1.0]),
        ...                                  reduction="none")
        tensor([10000.,     0.])
    """
    raise NotImplementedError("binary_cross_entropy_with_logits: see `kata lesson`, or `kata hint` for a nudge")


def cross_entropy(logits: Tensor, target: Tensor, *, ignore_index: int = -100,
                  label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """``F.cross_entropy`` with class-index targets, ``ignore_index`` and ``label_smoothing``.

    ``logits`` is (N, C) or (N, C, d1, ...): the classes are dim 1. ``target`` is (N,) or
    (N, d1, ...) of int64 class indices. With logp the log-softmax of the logits over dim 1, per position:
        loss = (1 - eps) * (-logp[target]) + eps * mean over classes c of (-logp[c])
    (eps = label_smoothing; the smoothing spreads eps over ALL C classes, the target included).
    Positions whose target equals ``ignore_index`` contribute 0 and are left out of the mean:
    ``"mean"`` divides by the number of non-ignored positions; ``"none"`` returns the
    per-position losses (0 where ignored); ``"sum"`` their sum.

    Example:
        >>> cross_entropy(torch.tensor([[1e4, 0.0], [0.0, 0.0]]), torch.tensor([1, -100]))
        tensor(10000.)
    """
    raise NotImplementedError("cross_entropy: see `kata lesson`, or `kata hint` for a nudge")
