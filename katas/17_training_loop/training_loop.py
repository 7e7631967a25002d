"""Kata 17 — training_loop: the loop every PyTorch program is built around, done right.

Four functions and one class, each a classic place for a silent bug: a loop that
trains but on the wrong gradients, an evaluation that quietly updates batch-norm
statistics, an accumulation that is off by a factor, an early stop that restores the wrong
weights, a "seeded" run that is not reproducible.

The checks watch your code as it runs: hooks on the model, the loss and the optimizer
record the order of every call. They also compare your parameters, step by step, with a
reference loop. Any torch API is allowed here.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import math  # noqa: F401
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset  # noqa: F401

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
) -> list[float]:
    """One pass over ``loader``: one optimizer step per batch. Return each batch's loss.

    Each ``(inputs, targets)`` batch gets one forward pass of the model in training mode (it
    may arrive in eval mode), one ``loss_fn(outputs, targets)``, one backward and one
    ``optimizer.step()``, in that order, and the step uses exactly that batch's gradient
    (the model may arrive holding stale ``.grad`` from earlier code). Return the losses as
    Python floats, not as tensors that keep their graphs alive.

    Example:
        >>> model = nn.Linear(3, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> loader = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(5)]
        >>> losses = train_epoch(model, loader, nn.MSELoss(), optimizer)
        >>> len(losses) == len(loader), type(losses[0])
        (True, <class 'float'>)
    """
    raise NotImplementedError("train_epoch: see `kata lesson`, or `kata hint` for a nudge")


def evaluate(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], loss_fn: LossFn
) -> float:
    """The mean loss over every SAMPLE in ``loader``, in eval mode, without autograd.

    Dropout is off and batch norm uses (never updates) its running statistics; no graph is
    recorded. ``loss_fn`` returns a batch's MEAN loss, and batches may differ in size (see
    the example). Afterwards every submodule is in the mode it had before (some may be in
    eval mode on purpose, e.g. a frozen batch norm inside a model that is training), and
    grad mode is as before, even when ``loss_fn`` raises (the exception reaches the caller).
    Return a Python float.

    Example:
        >>> model = nn.Linear(1, 1)                       # predicts 0 everywhere:
        >>> _ = nn.init.zeros_(model.weight), nn.init.zeros_(model.bias)
        >>> val_loader = [(torch.zeros(3, 1), torch.ones(3, 1)),       # 3 losses of 1
        ...               (torch.zeros(1, 1), torch.full((1, 1), 3.))] # 1 loss of 9
        >>> evaluate(model, val_loader, nn.MSELoss()), model.training  # (3*1 + 9) / 4
        (3.0, True)
    """
    raise NotImplementedError("evaluate: see `kata lesson`, or `kata hint` for a nudge")


def train_epoch_accumulated(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    accum_steps: int,
) -> list[float]:
    """Gradient accumulation: one optimizer step per ``accum_steps`` micro-batches.

    Consecutive micro-batches form groups of ``accum_steps`` (the last group may be
    shorter; ``len(loader)`` works). Each group ends in one optimizer step, and that step
    uses the gradient of the MEAN of its group's micro-batch losses: the step one big batch
    would take when the micro-batches are the same size. Stale ``.grad`` the model arrives
    with must not leak into the first step. Return every micro-batch's loss, as
    ``loss_fn`` gave it, as a float.

    Example:
        >>> # 7 micro-batches, accum_steps=3: steps after micro-batches 2, 5 and 6
        >>> model = nn.Linear(3, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> steps = []
        >>> _ = optimizer.register_step_post_hook(lambda opt, args, kwargs: steps.append(1))
        >>> loader7 = [(torch.randn(2, 3), torch.randn(2, 1)) for _ in range(7)]
        >>> len(train_epoch_accumulated(model, loader7, nn.MSELoss(), optimizer, 3)), len(steps)
        (7, 3)
    """
    raise NotImplementedError("train_epoch_accumulated: see `kata lesson`, or `kata hint` for a nudge")


class EarlyStopping:
    """Stop when the validation loss stops improving, and remember the best weights.

    * A call is an improvement when ``val_loss < best - min_delta``: ties, and gains of
      ``min_delta`` or less, do not count.
    * ``best`` (``math.inf`` at first), ``best_epoch`` (0-based index of the call that set
      ``best``; -1 at first) and ``bad_epochs`` (calls since the last improvement) are public
      attributes.
    * ``step(val_loss, model)`` returns True once ``bad_epochs`` reaches ``patience``.
    * ``restore(model)`` puts back the weights the model had at the best call, parameters
      and buffers alike, however much it trained since; the model keeps its own tensor
      objects (an optimizer holding them still works).

    Example:
        >>> model = nn.Linear(2, 1)
        >>> stopper = EarlyStopping(patience=2)
        >>> [stopper.step(v, model) for v in (1.0, 0.8, 0.8, 0.9)]
        [False, False, False, True]
        >>> stopper.best, stopper.best_epoch
        (0.8, 1)
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        raise NotImplementedError("EarlyStopping.__init__: see `kata lesson`, or `kata hint` for a nudge")

    def step(self, val_loss: float, model: nn.Module) -> bool:
        raise NotImplementedError("EarlyStopping.step: see `kata lesson`, or `kata hint` for a nudge")

    def restore(self, model: nn.Module) -> None:
        raise NotImplementedError("EarlyStopping.restore: see `kata lesson`, or `kata hint` for a nudge")


def reproducible_run(
    seed: int,
    make_model: Callable[[], nn.Module],
    dataset: Dataset,
    loss_fn: LossFn,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
) -> tuple[list[float], dict[str, torch.Tensor]]:
    """A training run that is a pure function of ``seed``.

    Build the model with ``make_model()``, shuffle ``dataset`` into batches of
    ``batch_size`` with a DataLoader, train with ``torch.optim.SGD(lr=lr)`` for ``epochs``
    epochs (your ``train_epoch``), and return every batch's loss and the final
    ``state_dict()``, as tensors that later training of anything cannot change.

    Requirements: the same seed gives bit-identical results whatever the caller did to the
    global generator before; another seed gives another initialisation AND another batch
    order; each epoch is shuffled anew.

    Example:
        >>> def make_model():
        ...     return nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))
        >>> data = torch.utils.data.TensorDataset(torch.randn(20, 3), torch.randn(20, 1))
        >>> a = reproducible_run(0, make_model, data, nn.MSELoss(), epochs=2, batch_size=8, lr=0.1)
        >>> _ = torch.rand(3)                              # the caller uses the RNG...
        >>> b = reproducible_run(0, make_model, data, nn.MSELoss(), epochs=2, batch_size=8, lr=0.1)
        >>> a[0] == b[0]                                   # ...and nothing changes
        True
    """
    raise NotImplementedError("reproducible_run: see `kata lesson`, or `kata hint` for a nudge")
