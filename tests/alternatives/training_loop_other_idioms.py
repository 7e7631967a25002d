"""A correct answer to kata 16 (training_loop) in other idioms than the reference: zero_grad on
the model with set_to_none, evaluation under inference_mode with a context manager that puts
the modes back, accumulation by counting down the batches left, early stopping that keeps a
deepcopy of the state, and a run seeded through a fork of the global RNG state."""

from __future__ import annotations

import contextlib
import copy
import math

import torch
from torch.utils.data import DataLoader


def train_epoch(model, loader, loss_fn, optimizer):
    model.train(True)
    out = []
    for x, y in loader:
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        out.append(float(loss.detach()))
    return out


@contextlib.contextmanager
def _modes_kept(model):
    saved = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for m, flag in saved.items():
            m.training = flag


def evaluate(model, loader, loss_fn):
    total = count = 0
    with _modes_kept(model), torch.inference_mode():
        model.eval()
        for x, y in loader:
            total += float(loss_fn(model(x), y)) * y.shape[0]
            count += y.shape[0]
    return total / count


def train_epoch_accumulated(model, loader, loss_fn, optimizer, accum_steps):
    model.train()
    for p in model.parameters():
        p.grad = None
    left = len(loader)
    group = min(accum_steps, left)
    done_in_group = 0
    out = []
    for x, y in loader:
        loss = loss_fn(model(x), y)
        (loss * (1.0 / group)).backward()
        out.append(loss.item())
        done_in_group += 1
        left -= 1
        if done_in_group == group:
            optimizer.step()
            optimizer.zero_grad()
            done_in_group, group = 0, min(accum_steps, left)
    return out


class EarlyStopping:
    def __init__(self, patience, min_delta=0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.bad_epochs = math.inf, -1, 0
        self.epoch = 0
        self.snapshot = None

    def step(self, val_loss, model):
        if self.best - val_loss > self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
            self.snapshot = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        self.epoch += 1
        return self.bad_epochs >= self.patience

    def restore(self, model):
        if self.snapshot is not None:
            model.load_state_dict(self.snapshot)


def reproducible_run(seed, make_model, dataset, loss_fn, *, epochs, batch_size, lr):
    torch.random.manual_seed(seed)
    model = make_model()
    order = torch.Generator()
    order.manual_seed(seed)
    loader = DataLoader(dataset, batch_size, shuffle=True, generator=order)
    optimizer = torch.optim.SGD(model.parameters(), lr)
    losses = []
    for _ in range(epochs):
        losses.extend(train_epoch(model, loader, loss_fn, optimizer))
    return losses, {k: v.clone() for k, v in model.state_dict().items()}
