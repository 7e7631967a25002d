"""Alternative correct answers for debugging: the reference, with the functions below in
place of its own (test material: each must pass `kata check debugging --file` on every
seed)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from checker.mistakes import _solution_of

_reference = _solution_of("debugging")
numerical_jacobian = _reference.numerical_jacobian
mixes_samples = _reference.mixes_samples


def nan_source(model: nn.Module, x: torch.Tensor) -> str | None:
    out = model(x).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autograd.set_detect_anomaly(True):
            try:
                torch.autograd.grad(out, [p for p in model.parameters()])
            except RuntimeError as exc:
                return str(exc).split()[1].strip("'")
    return None


def dead_units(model: nn.Module, x: torch.Tensor) -> dict[str, list[int]]:
    relus = {name: m for name, m in model.named_modules() if isinstance(m, nn.ReLU)}
    alive: dict[str, set[int]] = {name: set() for name in relus}
    sizes: dict[str, int] = {}
    def hook(module, args, out, name):
        sizes[name] = out.shape[-1]
        alive[name].update(torch.nonzero(out.reshape(-1, out.shape[-1]))[:, 1].tolist())

    handles = [m.register_forward_hook(lambda m, a, out, name=name: hook(m, a, out, name))
               for name, m in relus.items()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {name: [u for u in range(sizes[name]) if u not in alive[name]] for name in relus}


def first_explosion(model: nn.Module, x: torch.Tensor, upstream: torch.Tensor,
                    threshold: float) -> tuple[str, str] | None:
    events: list[tuple[str, str]] = []

    def explodes(t):
        return t is not None and not bool(torch.all(t.abs() <= threshold))  # NaN fails <=

    handles = []
    for name, m in model.named_modules():
        if list(m.children()):
            continue
        handles.append(m.register_forward_hook(
            lambda m, a, out, name=name: events.append(("forward", name)) if explodes(out) else None))
        handles.append(m.register_full_backward_hook(
            lambda m, gi, go, name=name: events.append(("backward", name)) if explodes(gi[0]) else None))
    try:
        out = model(x)
        if not events:
            out.backward(upstream)
    finally:
        for h in handles:
            h.remove()
    return events[0] if events else None


def wrong_gradients(fn: type[torch.autograd.Function],
                    inputs: tuple[torch.Tensor, ...]) -> list[int]:
    wrong = []
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        trial = tuple(u.detach().clone().requires_grad_(j == i) for j, u in enumerate(inputs))
        try:
            torch.autograd.gradcheck(fn.apply, trial, eps=1e-6, atol=1e-5, rtol=1e-3)
        except Exception:  # GradcheckError, or the engine's RuntimeError for a wrong shape
            wrong.append(i)
    return wrong
