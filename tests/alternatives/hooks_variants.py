"""An alternative correct answer (test material) for kata 10 — hooks."""

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
        p.grad.detach_()
        p.grad.zero_()


def clip_and_record(t: torch.Tensor, max_abs: float, log: list) -> RemovableHandle:
    def hook(grad: torch.Tensor) -> torch.Tensor:
        log.append(torch.tensor(grad.detach().numpy().copy()))
        return torch.clamp(grad, min=-max_abs, max=max_abs)

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
    zero_grad(model.parameters(), set_to_none=False)
    n = x.shape[0]
    total = 0.0
    for xb, yb in zip(x.split(micro_batch_size), y.split(micro_batch_size), strict=True):
        loss = loss_fn(model(xb), yb)
        (loss * (len(xb) / n)).backward()
        total += loss.item() * len(xb) / n
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
