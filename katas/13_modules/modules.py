"""Kata 13 — modules: nn.Module from the inside.

An nn.Module is a Python object with three registries — ``_parameters``, ``_buffers`` and
``_modules`` — filled by ``__setattr__`` (assigning an nn.Parameter or a Module) and by
``register_buffer``. Everything else follows from them: ``parameters()`` (what an optimiser
trains), ``state_dict()`` (what a checkpoint saves), ``.to()`` / ``.double()`` (what moves
and converts), ``train()`` / ``eval()`` (the ``training`` flag every submodule reads).

In this kata you register things the right way, count and freeze parameters, write dropout
and batch norm that honour ``self.training``, and initialise weights by hand with the
variance Kaiming and Xavier derived.

Rules: torch's own versions are off-limits while your code runs — nn.init's kaiming/xavier
functions and fan/gain helpers, nn.Dropout / F.dropout, nn.BatchNorm* / F.batch_norm. Build
from tensors, nn.Parameter, register_buffer and plain tensor ops. (nn.Linear builds its
weight with nn.init, so create weights yourself with nn.Parameter here.)
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Block(nn.Module):
    """A layer that owns one of each kind of state. ``Block(in_features, out_features)``.

    Register, in this order:
      - parameter ``weight``: (out_features, in_features), ``torch.randn(...) / sqrt(in)``;
      - parameter ``bias``: (out_features,), zeros;
      - persistent buffer ``scale``: (out_features,), ones;
      - persistent buffer ``calls``: a 0-dim int64 tensor, 0 — counts training forwards;
      - NON-persistent buffer ``offsets``: ``torch.linspace(-1, 1, out_features)`` (derived
        data: it follows ``.to()`` but is not saved in the state_dict);
      - submodule ``norm``: ``nn.LayerNorm(out_features)``.

    ``forward(x)`` for x of shape (..., in_features): in training mode only, add 1 to
    ``calls`` (in place); return ``norm(x @ weight.T + bias) * scale + offsets``.

    Example:
        >>> b = Block(3, 4)
        >>> list(b.state_dict())
        ['weight', 'bias', 'scale', 'calls', 'norm.weight', 'norm.bias']
        >>> [n for n, _ in b.named_buffers()]
        ['scale', 'calls', 'offsets']
        >>> b.double().offsets.dtype, b.calls.dtype
        (torch.float64, torch.int64)
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        raise NotImplementedError("Block: see `kata lesson`, or `kata hint` for a nudge")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError("Block.forward: see `kata lesson`, or `kata hint` for a nudge")


def freeze_(module: nn.Module, prefixes: list[str]) -> tuple[int, int]:
    """Freeze the parameters under ``prefixes``; return (trainable, frozen) element counts.

    A prefix names a submodule (``"encoder"``, ``"encoder.0"``) or a parameter
    (``"norm.weight"``): a parameter is frozen when one of its names equals a prefix or starts
    with ``prefix + "."`` (so ``"encoder"`` does not reach ``"encoder2"``). A tied parameter
    (one tensor reachable under two names) is frozen if either name matches —
    ``named_parameters(remove_duplicate=False)`` lists both. Freeze with
    ``requires_grad_(False)`` on the parameter itself; never unfreeze anything that was
    frozen before. Then count the elements (``numel``) of trainable and of frozen
    parameters, each tensor once even if tied; buffers are not parameters.

    Example:
        >>> m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
        >>> freeze_(m, ["0"])
        (10, 16)
        >>> m[0].weight.requires_grad, m[1].weight.requires_grad
        (False, True)
    """
    raise NotImplementedError("freeze_: see `kata lesson`, or `kata hint` for a nudge")


class Dropout(nn.Module):
    """Inverted dropout, like nn.Dropout. ``Dropout(p=0.5)``; ValueError unless 0 <= p <= 1.

    In training mode (``self.training``, which ``.train()`` / ``.eval()`` set) zero each
    element independently with probability ``p`` — a fresh random mask on every call, drawn
    from torch's global generator — and scale the survivors by ``1 / (1 - p)`` so the
    expected value is unchanged. ``p == 1`` zeroes everything (no nan). In eval mode return
    the input unchanged. No parameters, no buffers.

    Example:
        >>> d = Dropout(0.25)
        >>> y = d(torch.ones(8))        # every entry is 0 or 1/0.75 = 1.3333
        >>> d.eval()(torch.ones(3))
        tensor([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        raise NotImplementedError("Dropout: see `kata lesson`, or `kata hint` for a nudge")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError("Dropout.forward: see `kata lesson`, or `kata hint` for a nudge")


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    """Fill ``tensor`` in place from N(0, std**2) with std = gain / sqrt(fan); return it.

    For a weight of shape (out, in, *kernel): receptive = prod(kernel) (1 for a 2-D weight),
    fan_in = in * receptive, fan_out = out * receptive; ``mode`` picks which one. ``gain``
    depends on ``nonlinearity``: "linear" and "sigmoid" 1, "tanh" 5/3, "relu" sqrt(2),
    "leaky_relu" sqrt(2 / (1 + a**2)). Fewer than 2 dims raises ValueError. Work under
    ``torch.no_grad()`` (weights are leaves that require grad) and return ``tensor`` itself.

    Example:
        >>> w = kaiming_normal_(torch.empty(256, 4096), nonlinearity="relu")
        >>> round(w.std().item() * math.sqrt(4096) / math.sqrt(2), 1)    # std = sqrt(2/4096)
        1.0
    """
    raise NotImplementedError("kaiming_normal_: see `kata lesson`, or `kata hint` for a nudge")


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Fill ``tensor`` in place from U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).

    Fans as in ``kaiming_normal_``. The variance of U(-b, b) is b**2 / 3 =
    gain**2 * 2 / (fan_in + fan_out) — Glorot's compromise between the forward and the
    backward pass. Fewer than 2 dims raises ValueError. Return ``tensor`` itself.

    Example:
        >>> w = xavier_uniform_(torch.empty(30, 10))
        >>> bool(w.abs().max() <= math.sqrt(6 / 40))
        True
    """
    raise NotImplementedError("xavier_uniform_: see `kata lesson`, or `kata hint` for a nudge")


class BatchNorm1d(nn.Module):
    """Batch norm over (N, C) or (N, C, L) inputs, equal to nn.BatchNorm1d.
    ``BatchNorm1d(num_features, eps=1e-5, momentum=0.1)``.

    Register parameters ``weight`` (ones) and ``bias`` (zeros), and buffers ``running_mean``
    (zeros), ``running_var`` (ones) and ``num_batches_tracked`` (0-dim int64 0), in this
    order, all of shape (C,) but the last — so the state_dict keys match torch's.

    Training mode normalises each channel with the batch's statistics and updates the
    running statistics and num_batches_tracked exactly as nn.BatchNorm1d does (momentum=None
    included); eval mode uses the running statistics and updates nothing. The output has
    x's shape and is differentiable in x, weight and bias.

    Example:
        >>> bn = BatchNorm1d(2)
        >>> _ = bn(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))
        >>> bn.running_mean, bn.running_var, bn.num_batches_tracked
        (tensor([0.1000, 2.0000]), tensor([ 1.1000, 20.9000]), tensor(1))
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        raise NotImplementedError("BatchNorm1d: see `kata lesson`, or `kata hint` for a nudge")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError("BatchNorm1d.forward: see `kata lesson`, or `kata hint` for a nudge")
