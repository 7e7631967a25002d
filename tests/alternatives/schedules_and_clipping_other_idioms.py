"""A correct answer to kata 15 (schedules_and_clipping) in other idioms than the reference: the
total norm from one concatenated vector (max |g| for inf), clipping with a Python-float
coefficient, the schedule as a lambda per group, and the state saved as vars() filtered."""

from __future__ import annotations

import math

import torch


def _grads(parameters):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def total_grad_norm(parameters, norm_type: float = 2.0) -> torch.Tensor:
    grads = _grads(parameters)
    if len(grads) == 0:
        return torch.tensor(0.0)
    flat = torch.cat([g.detach().flatten() for g in grads])
    if math.isinf(norm_type):
        return flat.abs().max()
    return flat.abs().pow(norm_type).sum().pow(1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    total = total_grad_norm(params, norm_type)
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in _grads(params):
            g.detach().mul_(coef)
    return total


def warmup_cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int,
                     min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return step / warmup_steps * base_lr
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))


class WarmupCosine:
    def __init__(self, optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        self.optimizer = optimizer
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        for group in optimizer.param_groups:
            if "initial_lr" not in group:
                group["initial_lr"] = group["lr"]
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_step = -1
        self.step()

    def step(self) -> None:
        self.last_step += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = warmup_cosine_lr(self.last_step, base, self.warmup_steps,
                                           self.total_steps, self.min_lr)

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]


class ResumableWarmupCosine(WarmupCosine):
    def state_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items()
                if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        vars(self).update({k: (list(v) if isinstance(v, list) else v)
                           for k, v in state_dict.items()})
        self.last_step -= 1
        self.step()
