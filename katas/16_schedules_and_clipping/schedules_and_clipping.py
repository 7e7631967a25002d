"""Kata 16 — schedules_and_clipping: gradient clipping and learning-rate schedules by hand.

Two small pieces that sit around every ``optimizer.step()``:

* before it, ``clip_grad_norm_`` rescales all gradients together so that their joint norm is
  at most ``max_norm`` — in place, because the optimizer reads the very ``.grad`` tensors;
* after it, a scheduler writes the next learning rate into ``optimizer.param_groups`` —
  and must be able to stop, be saved, and resume as if nothing happened.

Rules: ``torch.nn.utils.clip_grad_norm_`` (with ``get_total_norm`` / ``clip_grads_with_norm_``)
and ``torch.optim.lr_scheduler`` are off-limits while your code runs — the checks compare you
with them. Tensor maths (``torch.linalg.vector_norm``, ``mul_``, ...) is fine.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import math  # noqa: F401
from collections.abc import Iterable

import torch


def total_grad_norm(
    parameters: Iterable[torch.Tensor] | torch.Tensor, norm_type: float = 2.0
) -> torch.Tensor:
    """The norm of all gradients together, as if they were concatenated into one vector.

    ``parameters`` is a tensor or any iterable of tensors (a list, or ``model.parameters()``,
    which is a generator). Parameters whose ``.grad`` is None are skipped. ``norm_type`` is
    p (1.0, 2.0, 3.5, ...) or ``math.inf`` for the largest absolute value. Return a 0-dim
    tensor (with no gradient at all: ``torch.tensor(0.0)``).

    Example:
        >>> a, b = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
        >>> a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
        >>> total_grad_norm([a, b])
        tensor(5.)
        >>> total_grad_norm([a, b], math.inf)
        tensor(4.)
    """
    raise NotImplementedError("total_grad_norm: see `kata lesson`, or `kata hint` for a nudge")


def clip_grad_norm_(
    parameters: Iterable[torch.Tensor] | torch.Tensor, max_norm: float, norm_type: float = 2.0
) -> torch.Tensor:
    """Scale every gradient IN PLACE so that their total norm is at most ``max_norm``.

    The same gradients as ``torch.nn.utils.clip_grad_norm_`` leaves (its 1e-6 guard against
    a zero norm included: see the example), and in place: each ``.grad`` stays the same
    tensor on the same storage (optimizers and hooks hold references to it). Gradients whose
    total norm is within ``max_norm`` keep their values; None grads stay None. Return the
    total norm from BEFORE clipping, as a 0-dim tensor.

    Example:
        >>> w = torch.zeros(2, requires_grad=True)
        >>> w.grad = torch.tensor([3.0, 4.0])
        >>> clip_grad_norm_([w], max_norm=1.0)
        tensor(5.)
        >>> w.grad                       # scaled by 1 / (5 + 1e-6)
        tensor([0.6000, 0.8000])
    """
    raise NotImplementedError("clip_grad_norm_: see `kata lesson`, or `kata hint` for a nudge")


def warmup_cosine_lr(
    step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
) -> float:
    """The learning rate at ``step`` of a linear warmup followed by a cosine decay.

    * warmup: a straight line from 0 at step 0 up to ``base_lr`` at ``warmup_steps``;
    * decay: half a period of a cosine, from ``base_lr`` at ``warmup_steps`` down to
      ``min_lr`` at ``total_steps`` (halfway between the two at the middle step);
    * ``min_lr`` from ``total_steps`` on.

    ``warmup_steps`` may be 0; ``total_steps > warmup_steps``. Return a Python float.

    Example:
        >>> [round(warmup_cosine_lr(s, 1.0, 2, 6), 4) for s in range(8)]
        [0.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    """
    raise NotImplementedError("warmup_cosine_lr: see `kata lesson`, or `kata hint` for a nudge")


class WarmupCosine:
    """A scheduler that writes ``warmup_cosine_lr`` into every param group of ``optimizer``.

    Same protocol as ``torch.optim.lr_scheduler.LambdaLR``:

    * right after construction, every group's ``"lr"`` is the step-0 lr;
    * after the n-th ``step()``, every group's ``"lr"`` is the step-n lr;
    * ``get_last_lr()`` returns the lrs last written, one float per group.

    Each group follows the schedule from its own base lr; ``min_lr`` is shared. A group's
    base lr is its ``"initial_lr"`` when it already has one (an optimizer loaded from a
    checkpoint), else its ``"lr"`` at construction; either way the group carries
    ``"initial_lr"`` afterwards, as with every torch scheduler.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = WarmupCosine(opt, warmup_steps=2, total_steps=6)
        >>> opt.param_groups[0]["lr"]
        0.0
        >>> sched.step(); sched.get_last_lr()
        [0.5]
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
        min_lr: float = 0.0,
    ) -> None:
        raise NotImplementedError("WarmupCosine.__init__: see `kata lesson`, or `kata hint` for a nudge")

    def step(self) -> None:
        raise NotImplementedError("WarmupCosine.step: see `kata lesson`, or `kata hint` for a nudge")

    def get_last_lr(self) -> list[float]:
        raise NotImplementedError("WarmupCosine.get_last_lr: see `kata lesson`, or `kata hint` for a nudge")


class ResumableWarmupCosine(WarmupCosine):
    """``WarmupCosine`` that can be checkpointed mid-run and resumed exactly.

    * ``state_dict()`` returns a NEW dict of plain Python data (ints, floats, lists — no
      optimizer, no tensors), so that ``torch.load(..., weights_only=True)`` accepts it and
      later steps do not change a dict already handed out;
    * ``load_state_dict(state)`` restores the counter and base lrs (and hyperparameters) and
      writes the lr of the restored step into the optimizer's groups right away — the next
      ``optimizer.step()`` must use it, whether the optimizer was restored before or after.

    A resumed run (new model, new optimizer, new scheduler, all loaded from a checkpoint
    taken at step k) must use exactly the lrs of the run that never stopped.

    Example:
        >>> p = torch.nn.Parameter(torch.zeros(1))
        >>> opt = torch.optim.SGD([p], lr=1.0)
        >>> sched = ResumableWarmupCosine(opt, 2, 6)
        >>> for _ in range(3):
        ...     opt.step(); sched.step()
        >>> state = sched.state_dict()                       # at step 3
        >>> opt2 = torch.optim.SGD([p], lr=1.0)
        >>> opt2.load_state_dict(opt.state_dict())
        >>> sched2 = ResumableWarmupCosine(opt2, 2, 6)       # writes lr(0) into opt2 ...
        >>> sched2.load_state_dict(state)                    # ... and this puts lr(3) back
        >>> sched2.get_last_lr() == sched.get_last_lr(), opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        (True, True)
    """

    def state_dict(self) -> dict:
        raise NotImplementedError("ResumableWarmupCosine.state_dict: see `kata lesson`, or `kata hint` for a nudge")

    def load_state_dict(self, state_dict: dict) -> None:
        raise NotImplementedError("ResumableWarmupCosine.load_state_dict: see `kata lesson`, or `kata hint` for a nudge")
