"""Reference solution for kata 17 — training_loop."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
) -> list[float]:
    model.train()
    losses = []
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def evaluate(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], loss_fn: LossFn
) -> float:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for inputs, targets in loader:
                n = len(targets)
                total += loss_fn(model(inputs), targets).item() * n
                count += n
    finally:
        for module, training in modes:
            module.training = training
    return total / count


def train_epoch_accumulated(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    accum_steps: int,
) -> list[float]:
    model.train()
    n_batches = len(loader)
    losses = []
    optimizer.zero_grad()
    for i, (inputs, targets) in enumerate(loader):
        start = i - i % accum_steps
        group = min(accum_steps, n_batches - start)
        loss = loss_fn(model(inputs), targets)
        (loss / group).backward()
        losses.append(loss.item())
        if i + 1 == start + group:
            optimizer.step()
            optimizer.zero_grad()
    return losses


class EarlyStopping:
    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0
        self._calls = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def step(self, val_loss: float, model: nn.Module) -> bool:
        epoch = self._calls
        self._calls += 1
        if val_loss < self.best - self.min_delta:
            self.best = val_loss
            self.best_epoch = epoch
            self.bad_epochs = 0
            self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self._best_state is not None:
            model.load_state_dict(self._best_state)


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
    torch.manual_seed(seed)  # before the model: its init and its dropout draw from here
    model = make_model()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        losses += train_epoch(model, loader, loss_fn, optimizer)
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}
