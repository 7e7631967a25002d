"""Known mistakes for the kata schedules_and_clipping."""

from __future__ import annotations

import math

import torch

from checker.mistakes import _solution_of, mistake

_sol = _solution_of("schedules_and_clipping")


# ----------------------------------------------------------------------------- total_grad_norm


@mistake("total_grad_norm", "The per-gradient norms were added up; the total is the norm OF those norms.")
def sum_of_norms(parameters, norm_type=2.0):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    norms = [torch.linalg.vector_norm(p.grad, norm_type) for p in parameters if p.grad is not None]
    return torch.stack(norms).sum() if norms else torch.tensor(0.0)


@mistake("total_grad_norm", "The p-norm formula (sum |g|^p)^(1/p) was used for p = inf, where it is meaningless: the inf norm is the largest |g|.")
def inf_by_power_formula(parameters, norm_type=2.0):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    p = float(norm_type)
    total = sum(g.abs().pow(p).sum() for g in grads)
    return total.pow(1.0 / p)


@mistake("total_grad_norm", "The inf norm taken as the largest VALUE (max) instead of the largest magnitude (abs().max()): a large negative entry is missed.")
def inf_norm_without_abs(parameters, norm_type=2.0):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    if norm_type == math.inf:
        return torch.stack([g.max() for g in grads]).max()
    norms = [torch.linalg.vector_norm(g, norm_type) for g in grads]
    return torch.linalg.vector_norm(torch.stack(norms), norm_type)


@mistake("total_grad_norm", "The norm of the parameters (weights) was measured instead of their .grad.")
def weights_not_grads(parameters, norm_type=2.0):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    tensors = [p.detach() for p in parameters if p.grad is not None]
    if not tensors:
        return torch.tensor(0.0)
    norms = [torch.linalg.vector_norm(t, norm_type) for t in tensors]
    return torch.linalg.vector_norm(torch.stack(norms), norm_type)


@mistake("total_grad_norm", "torch.nn.utils.get_total_norm was called: it is the reference and off-limits here.")
def calls_get_total_norm(parameters, norm_type=2.0):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    return torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None],
                                         norm_type)


# ----------------------------------------------------------------------------- clip_grad_norm_


@mistake("clip_grad_norm_", "New gradient tensors were assigned (p.grad = p.grad * coef) instead of scaling the existing ones in place.")
def new_grad_tensors(parameters, max_norm, norm_type=2.0):
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    total = _sol.total_grad_norm(params, norm_type)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in params:
        if p.grad is not None:
            p.grad = p.grad * coef
    return total


@mistake("clip_grad_norm_", "The coefficient was not clamped at 1: gradients smaller than max_norm were scaled UP to it.")
def no_clamp(parameters, max_norm, norm_type=2.0):
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    total = _sol.total_grad_norm(params, norm_type)
    coef = max_norm / (total + 1e-6)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(coef)
    return total


@mistake("clip_grad_norm_", "The norm AFTER clipping was returned; clip_grad_norm_ returns the total norm from before.")
def returns_clipped_norm(parameters, max_norm, norm_type=2.0):
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    _sol.clip_grad_norm_(params, max_norm, norm_type)
    return _sol.total_grad_norm(params, norm_type)


@mistake("clip_grad_norm_", "A generator (model.parameters()) was walked twice: the norm consumed it, so nothing was scaled.")
def generator_walked_twice(parameters, max_norm, norm_type=2.0):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    total = _sol.total_grad_norm(parameters, norm_type)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in parameters:
        if p.grad is not None:
            p.grad.mul_(coef)
    return total


@mistake("clip_grad_norm_", "Parameters without a gradient got one (zeros) instead of being skipped.")
def zeros_for_none_grads(parameters, max_norm, norm_type=2.0):
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return _sol.clip_grad_norm_(params, max_norm, norm_type)


@mistake("clip_grad_norm_", "The norms stacked without a check for an empty list: with no gradient at all torch.stack([]) raises instead of returning 0.")
def no_gradient_crashes(parameters, max_norm, norm_type=2.0):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    params = list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    norms = [torch.linalg.vector_norm(g, norm_type) for g in grads]
    total = torch.linalg.vector_norm(torch.stack(norms), norm_type)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)
    return total


@mistake("clip_grad_norm_", "torch.nn.utils.clip_grad_norm_ was called: it is the reference and off-limits here.")
def calls_torch_clip(parameters, max_norm, norm_type=2.0):
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type)


# ----------------------------------------------------------------------------- warmup_cosine_lr


@mistake("warmup_cosine_lr", "Warmup off by one: (step + 1) / warmup_steps, so step 0 is not 0 and warmup ends a step early.")
def warmup_plus_one(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return _sol.warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr)


@mistake("warmup_cosine_lr", "The cosine's progress was counted from step 0 instead of from the end of warmup.")
def progress_from_zero(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(1.0, step / total_steps)
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


@mistake("warmup_cosine_lr", "A full cosine period (2*pi*progress): the lr comes back up to base_lr at the end.")
def full_period(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * (1 + math.cos(2 * math.pi * progress)) / 2


@mistake("warmup_cosine_lr", "progress was not capped at 1: after total_steps the cosine climbs back up.")
def no_cap_after_total(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


@mistake("warmup_cosine_lr", "min_lr was added on top of the full cosine instead of being the floor it decays to.")
def min_lr_added(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + base_lr * (1 + math.cos(math.pi * progress)) / 2


# ----------------------------------------------------------------------------- WarmupCosine


@mistake("WarmupCosine", "The constructor did not write the step-0 lr: the first optimizer.step() ran at the full base lr.")
class no_initial_write(_sol.WarmupCosine):
    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0):
        self.optimizer = optimizer
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_step = 0
        self._last_lr = list(self.base_lrs)


@mistake("WarmupCosine", "step() wrote the lr before advancing the counter: every lr arrives one step late.")
class write_then_advance(_sol.WarmupCosine):
    def step(self):
        self._write_lrs()
        self.last_step += 1


@mistake("WarmupCosine", "One base lr (the first group's) for every param group; each group scales its own.")
class one_base_lr(_sol.WarmupCosine):
    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0):
        super().__init__(optimizer, warmup_steps, total_steps, min_lr)
        self.base_lrs = [self.base_lrs[0]] * len(self.base_lrs)
        self._write_lrs()


@mistake("WarmupCosine", "The base lr was read from group['lr'], ignoring (and not setting) group['initial_lr'].")
class base_from_current_lr(_sol.WarmupCosine):
    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0):
        self.optimizer = optimizer
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._write_lrs()


@mistake("WarmupCosine", "torch.optim.lr_scheduler.LambdaLR was subclassed: torch's schedulers are the reference and off-limits here.")
class uses_lambda_lr(_sol.WarmupCosine):
    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0):
        self.inner = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        super().__init__(optimizer, warmup_steps, total_steps, min_lr)


# ----------------------------------------------------------------------------- Resumable


@mistake("ResumableWarmupCosine", "load_state_dict restored the counter but did not write the lr into the optimizer: the first resumed step ran at whatever lr the groups held.")
class counter_only(_sol.ResumableWarmupCosine):
    def load_state_dict(self, state_dict):
        self.last_step = state_dict["last_step"]
        self.base_lrs = list(state_dict["base_lrs"])


@mistake("ResumableWarmupCosine", "state_dict() returned the scheduler's __dict__, optimizer included: it is not plain data and torch.load(weights_only=True) refuses it.")
class state_holds_optimizer(_sol.ResumableWarmupCosine):
    def state_dict(self):
        return dict(self.__dict__)

    def load_state_dict(self, state_dict):
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})
        self._write_lrs()


@mistake("ResumableWarmupCosine", "state_dict() returned a live dict that the scheduler keeps updating, so a saved state moves on with the run.")
class live_state(_sol.ResumableWarmupCosine):
    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0):
        super().__init__(optimizer, warmup_steps, total_steps, min_lr)
        self.state = {"last_step": 0, "base_lrs": self.base_lrs, "warmup_steps": warmup_steps,
                      "total_steps": total_steps, "min_lr": min_lr}

    def step(self):
        super().step()
        self.state["last_step"] = self.last_step

    def state_dict(self):
        return self.state


@mistake("ResumableWarmupCosine", "load_state_dict called step() to apply the lr, which advanced the schedule one step too far.")
class steps_after_load(_sol.ResumableWarmupCosine):
    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.step()


@mistake("ResumableWarmupCosine", "load_state_dict wrote the restored lrs into the optimizer but left get_last_lr() reporting the lrs of the new scheduler's step 0.")
class last_lr_not_refreshed(_sol.ResumableWarmupCosine):
    def load_state_dict(self, state_dict):
        last = self.get_last_lr()
        super().load_state_dict(state_dict)
        self._last_lr = last


@mistake("ResumableWarmupCosine", "load_state_dict restored the counter and base lrs but kept the new scheduler's own warmup_steps, total_steps and min_lr.")
class hyperparameters_not_restored(_sol.ResumableWarmupCosine):
    def load_state_dict(self, state_dict):
        self.last_step = state_dict["last_step"]
        self.base_lrs = list(state_dict["base_lrs"])
        self._write_lrs()


@mistake("ResumableWarmupCosine", "load_state_dict kept the base lrs the new scheduler was built with instead of the checkpoint's.")
class base_lrs_not_restored(_sol.ResumableWarmupCosine):
    def load_state_dict(self, state_dict):
        self.last_step = state_dict["last_step"]
        self.warmup_steps = state_dict["warmup_steps"]
        self.total_steps = state_dict["total_steps"]
        self.min_lr = state_dict["min_lr"]
        self._write_lrs()
