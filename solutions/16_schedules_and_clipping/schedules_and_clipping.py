"""Reference solution for kata 16 — schedules_and_clipping."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def total_grad_norm(
    parameters: Iterable[torch.Tensor] | torch.Tensor, norm_type: float = 2.0
) -> torch.Tensor:
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm_type = float(norm_type)
    norms = [torch.linalg.vector_norm(g, norm_type) for g in grads]
    return torch.linalg.vector_norm(torch.stack(norms), norm_type)


def clip_grad_norm_(
    parameters: Iterable[torch.Tensor] | torch.Tensor, max_norm: float, norm_type: float = 2.0
) -> torch.Tensor:
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    params = list(parameters)  # a generator could be walked only once
    total = total_grad_norm(params, norm_type)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef.to(p.grad.device, p.grad.dtype))
    return total


def warmup_cosine_lr(
    step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
) -> float:
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0


class WarmupCosine:
    def __init__(
        self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
        min_lr: float = 0.0,
    ) -> None:
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_lr = min_lr
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_step = 0
        self._write_lrs()

    def _write_lrs(self) -> None:
        self._last_lr = [
            warmup_cosine_lr(self.last_step, base, self.warmup_steps, self.total_steps, self.min_lr)
            for base in self.base_lrs
        ]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=False):
            group["lr"] = lr

    def step(self) -> None:
        self.last_step += 1
        self._write_lrs()

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)


class ResumableWarmupCosine(WarmupCosine):
    def state_dict(self) -> dict:
        return {
            "last_step": self.last_step,
            "base_lrs": list(self.base_lrs),
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "min_lr": self.min_lr,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_step = state_dict["last_step"]
        self.base_lrs = list(state_dict["base_lrs"])
        self.warmup_steps = state_dict["warmup_steps"]
        self.total_steps = state_dict["total_steps"]
        self.min_lr = state_dict["min_lr"]
        self._write_lrs()
