"""Reference solution for kata 19 — debugging."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def nan_source(model: nn.Module, x: torch.Tensor) -> str | None:
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        with torch.autograd.detect_anomaly(check_nan=True):
            torch.autograd.grad(model(x).sum(), params)
    except RuntimeError as exc:
        return str(exc).split("'")[1]
    return None


def dead_units(model: nn.Module, x: torch.Tensor) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    handles = []

    def record(name: str):
        def hook(module, args, output):
            alive = (output != 0).reshape(-1, output.shape[-1]).any(dim=0)
            found[name] = [int(i) for i in (~alive).nonzero().flatten()]

        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            handles.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return found


def numerical_jacobian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       eps: float) -> torch.Tensor:
    flat = x.detach().clone().reshape(-1)
    columns = []
    for j in range(flat.numel()):
        step = torch.zeros_like(flat)
        step[j] = eps
        plus = f((flat + step).reshape(x.shape))
        minus = f((flat - step).reshape(x.shape))
        columns.append(((plus - minus) / (2 * eps)).reshape(-1))
    rows = f(x.detach().clone()).numel()
    if not columns:
        return torch.zeros(rows, 0, dtype=x.dtype)
    return torch.stack(columns, dim=1)


def _explodes(t: torch.Tensor, threshold: float) -> bool:
    return bool((~torch.isfinite(t)).any() or (t.abs() > threshold).any())


def first_explosion(model: nn.Module, x: torch.Tensor, upstream: torch.Tensor,
                    threshold: float) -> tuple[str, str] | None:
    forward: list[str] = []
    backward: list[str] = []
    handles = []

    def on_forward(name: str):
        def hook(module, args, output):
            if _explodes(output, threshold):
                forward.append(name)

        return hook

    def on_backward(name: str):
        def hook(module, grad_input, grad_output):
            if _explodes(grad_input[0], threshold):
                backward.append(name)

        return hook

    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            handles.append(module.register_forward_hook(on_forward(name)))
            handles.append(module.register_full_backward_hook(on_backward(name)))
    try:
        out = model(x)
        if forward:
            return ("forward", forward[0])
        torch.autograd.grad(out, x, upstream)
    finally:
        for handle in handles:
            handle.remove()
    return ("backward", backward[0]) if backward else None


def wrong_gradients(fn: type[torch.autograd.Function],
                    inputs: tuple[torch.Tensor, ...]) -> list[int]:
    wrong = []
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        others = [u.detach() for u in inputs]

        def only(v: torch.Tensor, i: int = i, others: list = others) -> torch.Tensor:
            return fn.apply(*others[:i], v, *others[i + 1:])

        try:
            ok = torch.autograd.gradcheck(only, (t.detach().clone().requires_grad_(),),
                                          raise_exception=False)
        except RuntimeError:
            ok = False
        if not ok:
            wrong.append(i)
    return wrong


def mixes_samples(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  pred: torch.Tensor, target: torch.Tensor) -> bool:
    with torch.no_grad():
        whole = loss_fn(pred, target)
        alone = torch.stack([loss_fn(pred[i:i + 1], target[i:i + 1])
                             for i in range(pred.shape[0])]).mean()
    return not torch.allclose(whole, alone)
