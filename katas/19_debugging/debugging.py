"""Kata — debugging: find the bug in a model that runs without an error.

The worst bugs in training code raise nothing: a NaN appears somewhere in backward, one
layer's activations blow up, a hand-written backward is slightly wrong, half a layer's ReLUs
never fire, or a loss broadcasts an (N,) tensor against an (N, 1) one and averages N * N
pairs. Each function below is a small diagnostic tool: it takes a model (or a function) that
may hold a planted bug, and reports what it finds — or that it finds nothing, which is the
right answer for a healthy model.

Rules: a diagnostic leaves everything as it found it. Every hook you register is removed
before you return (even when the model raises), anomaly mode and grad mode are as they were,
and the caller's tensors are unchanged. The checks run hidden models, some with a bug and
some without, and compare your diagnosis with the bug they planted.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def nan_source(model: nn.Module, x: torch.Tensor) -> str | None:
    """Name the backward node that first produces NaN when ``model(x).sum()`` is differentiated.

    The forward pass of ``model`` is finite; its backward pass (from ``model(x).sum()`` to
    the model's parameters) may produce NaN in one node. Return that node's class name as
    autograd names it — the ``type(t.grad_fn).__name__`` of the forward result it belongs to,
    e.g. ``"SqrtBackward0"`` — or None when the backward pass produces no NaN at all.

    A diagnostic does not train: the parameters' ``.grad`` must be as they were (None), and
    anomaly mode must be as it was when you return.

    Example:
        >>> class Model(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = nn.Parameter(torch.tensor([1.0, -1.0]))
        ...     def forward(self, x):
        ...         u = torch.relu(self.w * x)       # exact zeros where w * x <= 0
        ...         return torch.where(u > 0, u.sqrt(), 0.0)
        >>> nan_source(Model(), torch.tensor([2.0, 3.0]))
        'SqrtBackward0'
    """
    raise NotImplementedError("nan_source: see `kata lesson`, or `kata hint` for a nudge")


def dead_units(model: nn.Module, x: torch.Tensor) -> dict[str, list[int]]:
    """Find the dead units of every ``nn.ReLU`` module of ``model`` on the batch ``x``.

    A unit is one feature of the ReLU's output, an index into its LAST dim. It is dead on
    ``x`` when its output is exactly zero at every other index (every sample, every time
    step). Return a dict with one entry per ``nn.ReLU`` module in ``model.named_modules()``,
    keyed by its qualified name (e.g. ``"body.1"``): the sorted list of its dead units as
    Python ints, ``[]`` when it has none. Each ReLU module is called once per forward.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        >>> model[0].bias = nn.Parameter(torch.tensor([1.0, -100.0, 1.0]))
        >>> dead_units(model, torch.randn(5, 2) * 0.1)
        {'1': [1]}
    """
    raise NotImplementedError("dead_units: see `kata lesson`, or `kata hint` for a nudge")


def numerical_jacobian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       eps: float) -> torch.Tensor:
    """The Jacobian of ``f`` at ``x`` by central differences with step ``eps``.

    ``x`` is a float64 tensor of any shape (0-d and size 0 included) and any layout; ``f``
    maps a tensor of x's shape to a float64 tensor of any shape. Return a new float64
    tensor of shape ``(f(x).numel(), x.numel())`` — row-major order on both sides — whose
    column j is ``(f(x + eps * e_j) - f(x - eps * e_j)) / (2 * eps)``, e_j being the j-th
    element of x in row-major order. ``x`` may require grad; the result carries no autograd
    history (it does not require grad). Leave ``x`` unchanged (values and layout).
    torch's own numerical Jacobians (in ``torch.autograd.gradcheck``) are off-limits here.

    Example:
        >>> numerical_jacobian(lambda t: t ** 2, torch.tensor([1.0, 3.0], dtype=torch.float64), 0.5)
        tensor([[2., 0.],
                [0., 6.]], dtype=torch.float64)
    """
    raise NotImplementedError("numerical_jacobian: see `kata lesson`, or `kata hint` for a nudge")


def first_explosion(model: nn.Module, x: torch.Tensor, upstream: torch.Tensor,
                    threshold: float) -> tuple[str, str] | None:
    """Find the first module whose activations or gradients explode.

    Consider the modules of ``model.named_modules()`` that have no children. A value
    *explodes* when it is not finite or its absolute value is greater than ``threshold``.
    Run ``model(x)``; if some module's output has an exploding element, return
    ``("forward", name)`` for the first such module in the order they RUN. Otherwise
    backpropagate ``upstream`` from the output (x requires grad); if some module's gradient
    with respect to its input (what it sends back towards x) explodes, return
    ``("backward", name)`` for the first such module in the order backward REACHES them.
    Otherwise return None. Remove every hook before returning.

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
        >>> model[2].bias = nn.Parameter(torch.full((2,), 1e6))
        >>> first_explosion(model, torch.randn(4, 3, requires_grad=True), torch.randn(4, 2), 1e3)
        ('forward', '2')
    """
    raise NotImplementedError("first_explosion: see `kata lesson`, or `kata hint` for a nudge")


def wrong_gradients(fn: type[torch.autograd.Function],
                    inputs: tuple[torch.Tensor, ...]) -> list[int]:
    """Which inputs does the hand-written backward of ``fn`` get wrong?

    ``fn`` is a ``torch.autograd.Function`` with a correct forward, called as
    ``fn.apply(*inputs)``; it returns one float64 tensor. ``inputs`` are float64 tensors. For
    every input that requires grad, compare the gradient fn's backward gives it with the one
    the forward implies (finite differences); return the sorted indices of the inputs whose
    gradient is wrong (wrong values, wrong shape, or missing), ``[]`` when all are right.
    Inputs that do not require grad are never reported. Leave the inputs unchanged.

    Example (a backward that forgets the 2 of d(a^2)/da, b's gradient right):
        wrong_gradients(SquareTimes, (a, b)) == [0]
    """
    raise NotImplementedError("wrong_gradients: see `kata lesson`, or `kata hint` for a nudge")


def mixes_samples(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  pred: torch.Tensor, target: torch.Tensor) -> bool:
    """Does ``loss_fn`` silently mix the samples of the batch?

    ``loss_fn(pred, target)`` returns a 0-d tensor, meant to be the mean over the batch of a
    per-sample loss: sample i's loss depends on ``pred[i]`` and ``target[i]`` only. ``pred`` and
    ``target`` hold N >= 1 samples along dim 0 (their shapes may differ, e.g. (N,) and
    (N, 1): a right loss_fn copes). Return True when loss_fn's value on the batch is not that
    mean — the mark of an operand broadcast against the other (N,) against (N, 1) gives an
    (N, N) table of every prediction against every target) — and False when it is. With a
    single sample nothing can mix: False. Leave pred and target unchanged.

    Example:
        >>> def mse(p, t): return ((p - t) ** 2).mean()             # no reshape: the bug
        >>> pred, target = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([[1.0], [2.0], [3.0]])
        >>> mixes_samples(mse, pred, target), mixes_samples(mse, pred.unsqueeze(1), target)
        (True, False)
    """
    raise NotImplementedError("mixes_samples: see `kata lesson`, or `kata hint` for a nudge")
