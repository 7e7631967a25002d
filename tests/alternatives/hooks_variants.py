"""Alternative correct answers for hooks: the reference, with the functions below in
place of its own (test material: each must pass `kata check hooks --file` on every seed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from checker.mistakes import _solution_of

_reference = _solution_of('hooks')
capture = _reference.capture
optimizer_in_backward = _reference.optimizer_in_backward


def zero_grad(params: Iterable[torch.Tensor], set_to_none: bool = True) -> None:
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
            continue
        p.grad.detach_()
        p.grad.zero_()


def clip_and_record(t: torch.Tensor, max_abs: float, log: list) -> RemovableHandle:
    def hook(grad: torch.Tensor) -> torch.Tensor:
        log.append(torch.tensor(grad.detach().numpy().copy()))
        return torch.clamp(grad, min=-max_abs, max=max_abs)

    return t.register_hook(hook)


def accumulate_microbatches(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    micro_batch_size: int,
) -> float:
    zero_grad(model.parameters(), set_to_none=False)
    n = x.shape[0]
    total = 0.0
    for xb, yb in zip(x.split(micro_batch_size), y.split(micro_batch_size), strict=True):
        loss = loss_fn(model(xb), yb)
        (loss * (len(xb) / n)).backward()
        total += loss.item() * len(xb) / n
    return total
