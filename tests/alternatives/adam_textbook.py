"""A correct answer to kata 14 (adam) written as the paper's formulas: bias-corrected m_hat and
v_hat as new tensors, the update added in place, decay written per flavour, and a foreach step
built from the out-of-place torch._foreach_* forms."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def init_state(param: Tensor, amsgrad: bool = False) -> dict[str, Tensor]:
    keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    state = {"step": torch.zeros((), dtype=torch.float32)}
    state.update({key: torch.zeros_like(param).detach() for key in keys})
    return state


def _update(param, grad, state, lr, betas, eps, weight_decay, decoupled, amsgrad):
    beta1, beta2 = betas
    with torch.no_grad():
        state["step"].add_(1)
        t = float(state["step"])
        if decoupled:
            param.mul_(1 - lr * weight_decay)
        elif weight_decay:
            grad = grad + weight_decay * param
        state["exp_avg"].mul_(beta1).add_((1 - beta1) * grad)
        state["exp_avg_sq"].mul_(beta2).add_((1 - beta2) * grad * grad)
        v = state["exp_avg_sq"]
        if amsgrad:
            state["max_exp_avg_sq"].copy_(torch.maximum(state["max_exp_avg_sq"], v))
            v = state["max_exp_avg_sq"]
        m_hat = state["exp_avg"] / (1 - beta1**t)
        v_hat_sqrt = v.sqrt() / math.sqrt(1 - beta2**t)
        param.sub_(lr * m_hat / (v_hat_sqrt + eps))


def adam_step_(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    _update(param, grad, state, lr, betas, eps, weight_decay, False, False)


def adamw_step_(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    _update(param, grad, state, lr, betas, eps, weight_decay, True, False)


def amsgrad_step_(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                  weight_decay=0.0, decoupled=False):
    _update(param, grad, state, lr, betas, eps, weight_decay, decoupled, True)


def foreach_adam_(params, grads, states, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                  weight_decay=0.0, amsgrad=False, decoupled=False):
    if len(params) == 0:
        return
    beta1, beta2 = betas
    with torch.no_grad():
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        ts = [float(s) for s in steps]
        if decoupled and weight_decay:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        elif weight_decay:
            grads = torch._foreach_add(grads, torch._foreach_mul(params, weight_decay))
        m = [s["exp_avg"] for s in states]
        v = [s["exp_avg_sq"] for s in states]
        torch._foreach_mul_(m, beta1)
        torch._foreach_add_(m, torch._foreach_mul(grads, 1 - beta1))
        torch._foreach_mul_(v, beta2)
        torch._foreach_add_(v, torch._foreach_mul(torch._foreach_mul(grads, grads), 1 - beta2))
        if amsgrad:
            v_max = [s["max_exp_avg_sq"] for s in states]
            torch._foreach_maximum_(v_max, v)
            v = v_max
        m_hat = torch._foreach_div(m, [1 - beta1**t for t in ts])
        denom = torch._foreach_add(
            torch._foreach_div(torch._foreach_sqrt(v), [math.sqrt(1 - beta2**t) for t in ts]),
            eps)
        torch._foreach_add_(params, torch._foreach_mul(torch._foreach_div(m_hat, denom), -lr))
