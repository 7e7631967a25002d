"""Kata 15 — adam: the optimiser step by hand.

torch.optim.Adam keeps, for every parameter, a small state dict and updates the parameter in
place from its gradient. You will write that state and that step yourself, in float64-exact
agreement with torch.optim.
`kata lesson` derives the update and shows where torch.optim's arithmetic departs from
the paper's.

Weight decay comes in two flavours (Adam's L2 vs AdamW's decoupled decay), amsgrad keeps a
running maximum of the second moment, and the last exercise does all of it for a list of
parameters at once with torch._foreach_* ops.

Every step function updates ``param`` (a leaf that requires grad) and the state tensors IN
PLACE, records no autograd history, and returns None. The ``grad`` you are given is the
caller's: it is never modified.

Rules: torch.optim is off-limits while your code runs (the optimiser classes, their step and
the functional adam/adamw) — the checks run torch.optim themselves and compare.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import torch
from torch import Tensor


def init_state(param: Tensor, amsgrad: bool = False) -> dict[str, Tensor]:
    """The fresh optimiser state of one parameter, laid out exactly as torch.optim.Adam's.

    Keys, in this order:
      - ``"step"``: a 0-dim float32 tensor holding 0.0 (``torch.tensor(0.0)``) — a tensor,
        not an int, so that it can be incremented in place and saved in a state_dict;
      - ``"exp_avg"`` and ``"exp_avg_sq"``: zeros with the parameter's shape, dtype, device and
        STRIDES (a transposed parameter gets transposed state), each its own memory;
      - ``"max_exp_avg_sq"``: the same kind of zeros, only when ``amsgrad`` is True.

    Example:
        >>> s = init_state(torch.ones(2, 3, dtype=torch.float64).t())
        >>> sorted(s), s["step"], s["exp_avg"].stride(), s["exp_avg"].dtype
        (['exp_avg', 'exp_avg_sq', 'step'], tensor(0.), (1, 3), torch.float64)
    """
    raise NotImplementedError("init_state: see `kata lesson`, or `kata hint` for a nudge")


def adam_step_(param: Tensor, grad: Tensor, state: dict[str, Tensor], *, lr: float = 1e-3,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 0.0) -> None:
    """One torch.optim.Adam step for one parameter, in place.

    ``weight_decay`` is Adam's classic L2 penalty: the gradient used by the moments is
    ``grad + weight_decay * param`` (a new tensor — leave ``grad`` itself alone).
    Bias corrections use the step count AFTER incrementing it: on the first step t = 1.
    Compute them with Python floats, ``t = state["step"].item()`` (a float32 tensor power
    keeps only a few digits of ``1 - beta2**t`` when beta2 is close to 1).
    ``eps`` is added to ``sqrt(v_hat)``, outside the square root.

    Example (first step, no decay: m_hat = g and v_hat = g*g, so each entry moves by ~lr):
        >>> p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        >>> s = init_state(p)
        >>> adam_step_(p, torch.tensor([0.5, -4.0], dtype=torch.float64), s, lr=0.1)
        >>> p.detach(), s["step"]
        (tensor([ 0.9000, -1.9000], dtype=torch.float64), tensor(1.))
    """
    raise NotImplementedError("adam_step_: see `kata lesson`, or `kata hint` for a nudge")


def adamw_step_(param: Tensor, grad: Tensor, state: dict[str, Tensor], *, lr: float = 1e-3,
                betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                weight_decay: float = 1e-2) -> None:
    """One torch.optim.AdamW step for one parameter, in place: DECOUPLED weight decay.

    Same state and same result as torch.optim.AdamW, to float64 precision.

    Example (zero gradient: only the decay acts; m stays 0 so the Adam part is 0):
        >>> p = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
        >>> adamw_step_(p, torch.zeros(1, dtype=torch.float64), init_state(p), lr=0.1,
        ...             weight_decay=0.5)
        >>> p.detach()
        tensor([1.9000], dtype=torch.float64)
    """
    raise NotImplementedError("adamw_step_: see `kata lesson`, or `kata hint` for a nudge")


def amsgrad_step_(param: Tensor, grad: Tensor, state: dict[str, Tensor], *, lr: float = 1e-3,
                  betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                  weight_decay: float = 0.0, decoupled: bool = False) -> None:
    """One step of Adam (``decoupled=False``) or AdamW (``decoupled=True``) with amsgrad=True.

    In place, returns None: ``param`` and every tensor of ``state`` (made by
    ``init_state(param, amsgrad=True)``) end as ``torch.optim.Adam(..., amsgrad=True)`` (or
    AdamW) leaves the parameter and its state after the same step, float64 included.
    ``grad`` is left as it was.

    Example (the second gradient is ten times smaller, and yet the step is not):
        >>> p = torch.tensor([1.0], requires_grad=True)
        >>> s = init_state(p, amsgrad=True)
        >>> amsgrad_step_(p, torch.tensor([1.0]), s, lr=0.1); p.detach()
        tensor([0.9000])
        >>> amsgrad_step_(p, torch.tensor([0.1]), s, lr=0.1); p.detach(), s["max_exp_avg_sq"]
        (tensor([0.8259]), tensor([0.0010]))
    """
    raise NotImplementedError("amsgrad_step_: see `kata lesson`, or `kata hint` for a nudge")


def foreach_adam_(params: list[Tensor], grads: list[Tensor], states: list[dict[str, Tensor]], *,
                  lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                  eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                  decoupled: bool = False) -> None:
    """One Adam/AdamW step for a whole list of parameters, vectorised like foreach=True.

    The same result as one ``adam_step_`` / ``amsgrad_step_`` per parameter, but the number
    of tensor operations it runs must not grow with the number of parameters (torch's
    ``foreach=True`` path works on whole lists at once). Reading each step count with
    ``.item()`` is the one per-parameter operation allowed. Each parameter's bias corrections
    use its own step count (a parameter added later has taken fewer steps).

    Example:
        >>> ps = [torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)]
        >>> gs = [torch.full((2,), 0.5), torch.full((3,), -0.5)]
        >>> foreach_adam_(ps, gs, [init_state(p) for p in ps], lr=0.1)
        >>> [p.detach() for p in ps]
        [tensor([0.9000, 0.9000]), tensor([1.1000, 1.1000, 1.1000])]
    """
    raise NotImplementedError("foreach_adam_: see `kata lesson`, or `kata hint` for a nudge")
