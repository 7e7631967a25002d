"""Reference solution for kata 11 — hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def zero_grad(params: Iterable[torch.Tensor], set_to_none: bool = True) -> None:
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
            continue
        if p.grad.grad_fn is not None:
            p.grad.detach_()
        else:
            p.grad.requires_grad_(False)
        p.grad.zero_()


def clip_and_record(t: torch.Tensor, max_abs: float, log: list) -> RemovableHandle:
    def hook(grad: torch.Tensor) -> torch.Tensor:
        log.append(grad.detach().clone())
        return grad.clamp(-max_abs, max_abs)

    return t.register_hook(hook)


def capture(
    model: nn.Module, x: torch.Tensor, upstream: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    activations: dict[str, torch.Tensor] = {}
    gradients: dict[str, torch.Tensor] = {}
    handles = []

    def on_forward(name: str):
        def hook(module, args, output):
            activations[name] = output.detach().clone()

        return hook

    def on_backward(name: str):
        def hook(module, grad_input, grad_output):
            gradients[name] = grad_output[0].detach().clone()

        return hook

    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue
        handles.append(module.register_forward_hook(on_forward(name)))
        handles.append(module.register_full_backward_hook(on_backward(name)))
    try:
        model(x).backward(upstream)
    finally:
        for handle in handles:
            handle.remove()
    return activations, gradients


def accumulate_microbatches(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    micro_batch_size: int,
) -> float:
    zero_grad(model.parameters(), set_to_none=True)
    n = x.shape[0]
    total = 0.0
    for start in range(0, n, micro_batch_size):
        xb, yb = x[start:start + micro_batch_size], y[start:start + micro_batch_size]
        weight = xb.shape[0] / n
        loss = loss_fn(model(xb), yb) * weight
        loss.backward()
        total += loss.item()
    return total


def optimizer_in_backward(
    params: Iterable[torch.Tensor],
    make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
) -> list[RemovableHandle]:
    handles = []
    for p in params:
        optimizer = make_optimizer([p])

        def step(param: torch.Tensor, optimizer=optimizer) -> None:
            optimizer.step()
            param.grad = None

        handles.append(p.register_post_accumulate_grad_hook(step))
    return handles
