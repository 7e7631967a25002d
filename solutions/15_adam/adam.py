"""Reference solution for kata 15 — adam."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def init_state(param: Tensor, amsgrad: bool = False) -> dict[str, Tensor]:
    state = {
        "step": torch.tensor(0.0),
        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
    }
    if amsgrad:
        state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


@torch.no_grad()
def _step(param: Tensor, grad: Tensor, state: dict[str, Tensor], lr: float,
          betas: tuple[float, float], eps: float, weight_decay: float, decoupled: bool,
          amsgrad: bool) -> None:
    beta1, beta2 = betas
    state["step"] += 1
    if weight_decay != 0:
        if decoupled:
            param.mul_(1 - lr * weight_decay)
        else:
            grad = grad.add(param, alpha=weight_decay)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step = state["step"].item()
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    second = exp_avg_sq
    if amsgrad:
        torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        second = state["max_exp_avg_sq"]
    denom = (second.sqrt() / math.sqrt(bias_correction2)).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)


def adam_step_(param: Tensor, grad: Tensor, state: dict[str, Tensor], *, lr: float = 1e-3,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 0.0) -> None:
    _step(param, grad, state, lr, betas, eps, weight_decay, decoupled=False, amsgrad=False)


def adamw_step_(param: Tensor, grad: Tensor, state: dict[str, Tensor], *, lr: float = 1e-3,
                betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                weight_decay: float = 1e-2) -> None:
    _step(param, grad, state, lr, betas, eps, weight_decay, decoupled=True, amsgrad=False)


def amsgrad_step_(param: Tensor, grad: Tensor, state: dict[str, Tensor], *, lr: float = 1e-3,
                  betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                  weight_decay: float = 0.0, decoupled: bool = False) -> None:
    _step(param, grad, state, lr, betas, eps, weight_decay, decoupled=decoupled, amsgrad=True)


@torch.no_grad()
def foreach_adam_(params: list[Tensor], grads: list[Tensor], states: list[dict[str, Tensor]], *,
                  lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                  weight_decay: float = 0.0, amsgrad: bool = False,
                  decoupled: bool = False) -> None:
    if not params:
        return
    beta1, beta2 = betas
    steps = [s["step"] for s in states]
    exp_avgs = [s["exp_avg"] for s in states]
    exp_avg_sqs = [s["exp_avg_sq"] for s in states]
    torch._foreach_add_(steps, 1)
    if weight_decay != 0:
        if decoupled:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    counts = [s.item() for s in steps]
    step_sizes = [-lr / (1 - beta1**t) for t in counts]
    bias_correction2_sqrt = [math.sqrt(1 - beta2**t) for t in counts]
    second = exp_avg_sqs
    if amsgrad:
        second = [s["max_exp_avg_sq"] for s in states]
        torch._foreach_maximum_(second, exp_avg_sqs)
    denom = torch._foreach_sqrt(second)
    torch._foreach_div_(denom, bias_correction2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)
