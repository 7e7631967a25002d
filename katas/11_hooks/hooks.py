"""Kata 11 — hooks: tensor and module hooks, gradient accumulation, stepping inside backward.

Autograd lets you run your own code at fixed points of a backward pass: when a tensor's
gradient arrives (tensor hooks), around a module's forward and backward (module hooks), and
right after a leaf's gradient has been accumulated into ``.grad`` (post-accumulate-grad
hooks). Every ``register_*hook`` call returns a handle; ``handle.remove()`` takes it off.

Rules: ``torch.optim.Optimizer.zero_grad`` and ``torch.nn.Module.zero_grad`` are off-limits —
you write ``zero_grad`` yourself (exercise 1) and may call your own version anywhere below.
Every hook you register must be removable through a handle you keep or return.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def zero_grad(params: Iterable[torch.Tensor], set_to_none: bool = True) -> None:
    """Reset the gradients of ``params`` the way ``Optimizer.zero_grad`` does.

    - ``set_to_none=True``: every ``p.grad`` becomes None (the memory can be freed).
    - ``set_to_none=False``: every existing ``p.grad`` is zeroed IN PLACE — the same tensor
      object afterwards — and detached from any graph (a gradient made with
      ``backward(create_graph=True)`` has a grad_fn). A None gradient stays None.

    Example:
        >>> w = torch.ones(2, requires_grad=True); (w * 3).sum().backward()
        >>> g = w.grad; zero_grad([w], set_to_none=False)
        >>> w.grad is g, w.grad
        (True, tensor([0., 0.]))
        >>> zero_grad([w]); w.grad is None
        True
    """
    raise NotImplementedError("zero_grad: see `kata lesson`, or `kata hint` for a nudge")


def clip_and_record(t: torch.Tensor, max_abs: float, log: list) -> RemovableHandle:
    """Register ONE hook on ``t`` that records and clips the gradient flowing into ``t``.

    Each time the hook runs it appends a copy of the incoming gradient (before clipping) to
    ``log``, and replaces the gradient by its values clamped to [-max_abs, max_abs]. Whatever
    flows on (into ``t.grad`` for a leaf, into the ops that made ``t`` otherwise) is clipped.
    Return the handle, so that ``handle.remove()`` undoes everything.

    Example:
        >>> x = torch.tensor([1.0, -2.0], requires_grad=True); log = []
        >>> h = clip_and_record(x, 0.5, log); (x * torch.tensor([3.0, -4.0])).sum().backward()
        >>> x.grad, log
        (tensor([ 0.5000, -0.5000]), [tensor([ 3., -4.])])
    """
    raise NotImplementedError("clip_and_record: see `kata lesson`, or `kata hint` for a nudge")


def capture(
    model: nn.Module, x: torch.Tensor, upstream: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Record every leaf module's output and the gradient with respect to it.

    For each module of ``model.named_modules()`` that has no children, register a forward
    hook and a full backward hook; run the model on x and backpropagate ``upstream`` from its
    output; remove every hook
    before returning (none may be left on any module). Return two dicts keyed by the
    module's qualified name (e.g. ``"body.0"``):

    - ``activations[name]``: the module's output, detached (no graph kept alive);
    - ``gradients[name]``: d(loss)/d(output) of that module, where loss = (model(x) * upstream).sum().

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
        >>> acts, grads = capture(model, torch.randn(2, 3), torch.randn(2, 4))
        >>> sorted(acts), acts["1"].shape, grads["0"].shape
        (['0', '1'], torch.Size([2, 4]), torch.Size([2, 4]))
    """
    raise NotImplementedError("capture: see `kata lesson`, or `kata hint` for a nudge")


def accumulate_microbatches(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    micro_batch_size: int,
) -> float:
    """Gradient accumulation: the full-batch gradient, computed micro-batch by micro-batch.

    ``loss_fn`` averages over its batch (reduction="mean"). Clear the model's gradients
    first (they may hold stale values), then feed ``x``/``y`` through the model in order, in
    slices of ``micro_batch_size`` rows (the last slice may be shorter), calling backward on
    each. Afterwards every ``p.grad`` must equal the gradient of ``loss_fn(model(x), y)``.
    Return that full-batch loss as a Python float. Never run the whole batch at once.

    Example (10 samples, micro_batch_size=4):
        model is called on 4, 4 and 2 rows; the result equals loss_fn(model(x), y).item().
    """
    raise NotImplementedError("accumulate_microbatches: see `kata lesson`, or `kata hint` for a nudge")


def optimizer_in_backward(
    params: Iterable[torch.Tensor],
    make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
) -> list[RemovableHandle]:
    """Step the optimiser inside backward, one parameter at a time, and free each gradient.

    Every parameter ``p`` gets its own optimiser, ``make_optimizer([p])``, and is stepped by
    it during backward, as soon as its gradient is complete; afterwards its ``.grad`` is
    None. A training loop then only calls ``loss.backward()`` — no step, no
    zero_grad — and must move the parameters exactly as the ordinary loop
    ``zero_grad(); loss.backward(); opt.step()`` with ``make_optimizer(all params)`` does.
    Return the handles, one per parameter.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> before = model.weight.detach().clone()
        >>> handles = optimizer_in_backward(model.parameters(), lambda ps: torch.optim.SGD(ps, lr=0.1))
        >>> model(torch.ones(4, 3)).sum().backward()   # no step, no zero_grad
        >>> torch.allclose(model.weight, before - 0.1 * 4), model.weight.grad is None
        (True, True)
        >>> for h in handles: h.remove()
    """
    raise NotImplementedError("optimizer_in_backward: see `kata lesson`, or `kata hint` for a nudge")
