"""Known mistakes for the kata adam."""

from __future__ import annotations

import math

import torch

from checker.mistakes import mistake


def _adam(param, grad, state, lr, betas, eps, weight_decay, *, decoupled=False, amsgrad=False,
          bias_correction=True, step_shift=0, eps_in_sqrt=False, l2_in_place=False,
          decay="before", max_of_corrected=False, store_max=True, use_max=True,
          float32_corrections=False, rebind_step=False):
    """A configurable single-tensor Adam step, each switch one misconception."""
    beta1, beta2 = betas
    with torch.no_grad():
        if rebind_step:
            state["step"] = state["step"] + 1
        else:
            state["step"] += 1
        if weight_decay != 0:
            if decoupled and decay == "before":
                param.mul_(1 - lr * weight_decay)
            elif decoupled and decay == "no_lr":
                param.mul_(1 - weight_decay)
            elif not decoupled:
                grad = grad.add_(param, alpha=weight_decay) if l2_in_place else \
                    grad.add(param, alpha=weight_decay)
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = state["step"].item() + step_shift
        bc1 = 1 - beta1**t if bias_correction else 1.0
        bc2 = 1 - beta2**t if bias_correction else 1.0
        if float32_corrections:  # the powers taken of the float32 step tensor
            bc1 = float(1 - beta1 ** state["step"])
            bc2 = float(1 - beta2 ** state["step"])
        second = state["exp_avg_sq"]
        if amsgrad:
            if max_of_corrected:
                running = torch.maximum(state["max_exp_avg_sq"], second / bc2)
                state["max_exp_avg_sq"].copy_(running)
                second, bc2 = running, 1.0
            else:
                running = torch.maximum(state["max_exp_avg_sq"], second)
                if store_max:
                    state["max_exp_avg_sq"].copy_(running)
                if use_max:
                    second = running
        if eps_in_sqrt:
            denom = (second / bc2 + eps).sqrt()
        else:
            denom = (second.sqrt() / math.sqrt(bc2)).add_(eps)
        param.addcdiv_(state["exp_avg"], denom, value=-lr / bc1)
        if weight_decay != 0 and decoupled and decay == "after":
            param.mul_(1 - lr * weight_decay)


# ----------------------------------------------------------------------------- init_state


@mistake("init_state", "The step count kept as a Python int: torch.optim keeps a 0-dim float32 tensor, incremented in place.")
def step_as_int(param, amsgrad=False):
    state = {"step": 0}
    for key in ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else []):
        state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


@mistake("init_state", "exp_avg and exp_avg_sq are one shared zeros tensor: updating one overwrites the other.")
def shared_moments(param, amsgrad=False):
    zeros = torch.zeros_like(param, memory_format=torch.preserve_format)
    state = {"step": torch.tensor(0.0), "exp_avg": zeros, "exp_avg_sq": zeros}
    if amsgrad:
        state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


@mistake("init_state", "Fresh contiguous zeros of the parameter's shape: the state loses the parameter's strides (preserve_format).")
def contiguous_moments(param, amsgrad=False):
    keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    state = {"step": torch.tensor(0.0)}
    for key in keys:
        state[key] = torch.zeros(tuple(param.shape), dtype=param.dtype)
    return state


_ZERO_STEP = torch.tensor(0.0)


@mistake("init_state", "One step tensor shared by every parameter's state: each parameter's step moves all the others' counts.")
def shared_step(param, amsgrad=False):
    state = {"step": _ZERO_STEP}
    for key in ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else []):
        state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


# ----------------------------------------------------------------------------- adam_step_


@mistake("adam_step_", "No bias correction: the zero-initialised moments make the first steps far too small (or large).")
def no_bias_correction(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    _adam(param, grad, state, lr, betas, eps, weight_decay, bias_correction=False)


@mistake("adam_step_", "Bias correction off by one: 1 - beta**(t+1) instead of 1 - beta**t with t counted from 1.")
def bias_correction_off_by_one(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    _adam(param, grad, state, lr, betas, eps, weight_decay, step_shift=1)


@mistake("adam_step_", "eps inside the square root: sqrt(v_hat + eps) instead of sqrt(v_hat) + eps.")
def eps_inside_sqrt(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    _adam(param, grad, state, lr, betas, eps, weight_decay, eps_in_sqrt=True)


@mistake("adam_step_", "L2 decay added to the gradient in place (grad.add_): the caller's .grad is overwritten.")
def l2_into_grad_in_place(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    _adam(param, grad, state, lr, betas, eps, weight_decay, l2_in_place=True)


@mistake("adam_step_", "Decoupled (AdamW) decay in Adam: torch.optim.Adam's weight_decay is L2, added to the gradient.")
def decoupled_in_adam(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    _adam(param, grad, state, lr, betas, eps, weight_decay, decoupled=True)


@mistake("adam_step_", "Bias corrections computed from the float32 step tensor (1 - beta2 ** state['step']): with beta2 near 1 they keep only a few digits.")
def float32_bias_corrections(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    _adam(param, grad, state, lr, betas, eps, weight_decay, float32_corrections=True)


@mistake("adam_step_", "The step count rebound (state['step'] = state['step'] + 1) instead of incremented in place.")
def step_rebound(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    _adam(param, grad, state, lr, betas, eps, weight_decay, rebind_step=True)


# ----------------------------------------------------------------------------- adamw_step_


@mistake("adamw_step_", "L2 instead of decoupled decay: weight_decay*param added to the gradient, so it passes through the moments.")
def l2_instead_of_decoupled(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    _adam(param, grad, state, lr, betas, eps, weight_decay, decoupled=False)


@mistake("adamw_step_", "Decay not scaled by lr: param *= 1 - weight_decay instead of 1 - lr*weight_decay.")
def decay_without_lr(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    _adam(param, grad, state, lr, betas, eps, weight_decay, decoupled=True, decay="no_lr")


@mistake("adamw_step_", "Decay applied after the Adam update: torch shrinks the parameter before it.")
def decay_after_update(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    _adam(param, grad, state, lr, betas, eps, weight_decay, decoupled=True, decay="after")


# ----------------------------------------------------------------------------- amsgrad_step_


@mistake("amsgrad_step_", "The running max taken over bias-corrected v_hat; torch keeps the max of the raw exp_avg_sq and corrects it by the current step.")
def max_of_bias_corrected(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    _adam(param, grad, state, lr, betas, eps, weight_decay, decoupled=decoupled, amsgrad=True,
          max_of_corrected=True)


@mistake("amsgrad_step_", "The running max computed but never stored: max_exp_avg_sq stays zero, so amsgrad is plain Adam.")
def max_not_stored(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    _adam(param, grad, state, lr, betas, eps, weight_decay, decoupled=decoupled, amsgrad=True,
          store_max=False)


@mistake("amsgrad_step_", "max_exp_avg_sq kept up to date but the denominator still uses exp_avg_sq.")
def max_unused(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    _adam(param, grad, state, lr, betas, eps, weight_decay, decoupled=decoupled, amsgrad=True,
          use_max=False)


# ----------------------------------------------------------------------------- foreach_adam_


@mistake("foreach_adam_", "A Python loop of single-tensor updates: right numbers, but one kernel per parameter per stage, not foreach.")
def python_loop(params, grads, states, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    for p, g, s in zip(params, grads, states, strict=True):
        _adam(p, g, s, lr, betas, eps, weight_decay, decoupled=decoupled, amsgrad=amsgrad)


@mistake("foreach_adam_", "Delegating to torch.optim.Adam/AdamW: the kata asks for the step itself, and torch.optim is off-limits.")
def calls_torch_optim(params, grads, states, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
              foreach=True)
    for p, g, s in zip(params, grads, states, strict=True):
        p.grad = g
        opt.state[p] = s
    opt.step()


@mistake("foreach_adam_", "Calling torch.optim's functional adamw/adam: still torch.optim doing the work, and off-limits.")
def calls_functional_adamw(params, grads, states, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    import torch.optim.adam
    import torch.optim.adamw

    fn = torch.optim.adamw.adamw if decoupled else torch.optim.adam.adam
    with torch.no_grad():
        fn(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
           [s["max_exp_avg_sq"] for s in states] if amsgrad else [],
           [s["step"] for s in states], foreach=True, amsgrad=amsgrad, beta1=betas[0],
           beta2=betas[1], lr=lr, weight_decay=weight_decay, eps=eps, maximize=False)


def _foreach(params, grads, states, lr, betas, eps, weight_decay, amsgrad, decoupled, *,
             one_step_count=False, guard_empty=True, decay_loop=False):
    """A configurable foreach step, each switch one misconception."""
    if guard_empty and not params:
        return
    beta1, beta2 = betas
    with torch.no_grad():
        steps = [s["step"] for s in states]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        torch._foreach_add_(steps, 1)
        if weight_decay != 0:
            if decoupled and decay_loop:
                for p in params:
                    p.mul_(1 - lr * weight_decay)
            elif decoupled:
                torch._foreach_mul_(params, 1 - lr * weight_decay)
            else:
                grads = torch._foreach_add(grads, params, alpha=weight_decay)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        counts = [steps[0].item()] * len(steps) if one_step_count else [s.item() for s in steps]
        second = exp_avg_sqs
        if amsgrad:
            second = [s["max_exp_avg_sq"] for s in states]
            torch._foreach_maximum_(second, exp_avg_sqs)
        denom = torch._foreach_sqrt(second)
        torch._foreach_div_(denom, [math.sqrt(1 - beta2**t) for t in counts])
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denom, [-lr / (1 - beta1**t) for t in counts])


@mistake("foreach_adam_", "One bias correction for the whole list (the first parameter's step): parameters that joined later have their own step counts.")
def shared_step_count(params, grads, states, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    _foreach(params, grads, states, lr, betas, eps, weight_decay, amsgrad, decoupled,
             one_step_count=True)


@mistake("foreach_adam_", "An empty list of parameters not handled: torch._foreach_* ops refuse empty lists, so the step must return before them.")
def no_empty_guard(params, grads, states, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    _foreach(params, grads, states, lr, betas, eps, weight_decay, amsgrad, decoupled,
             guard_empty=False)


@mistake("foreach_adam_", "The decoupled decay applied in a Python loop over the parameters: one kernel per parameter, not foreach.")
def decoupled_decay_in_a_loop(params, grads, states, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    _foreach(params, grads, states, lr, betas, eps, weight_decay, amsgrad, decoupled,
             decay_loop=True)
