"""Known mistakes for the kata training_loop."""

from __future__ import annotations

import contextlib
import math

import torch
from torch.utils.data import DataLoader

from checker.mistakes import _solution_of, mistake

_sol = _solution_of("training_loop")


# ----------------------------------------------------------------------------- train_epoch


@mistake("train_epoch", "zero_grad was never called: .grad accumulates over batches (and stale gradients from before leak in).")
def no_zero_grad(model, loader, loss_fn, optimizer):
    model.train()
    losses = []
    for x, y in loader:
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@mistake("train_epoch", "zero_grad at the end of each iteration: the first step uses whatever stale gradients the model arrived with.")
def zero_grad_at_end(model, loader, loss_fn, optimizer):
    model.train()
    losses = []
    for x, y in loader:
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


@mistake("train_epoch", "optimizer.step() before loss.backward(): every step uses the previous batch's gradients.")
def step_before_backward(model, loader, loss_fn, optimizer):
    model.train()
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        optimizer.step()
        loss.backward()
        losses.append(loss.item())
    return losses


@mistake("train_epoch", "model.train() was not called: a model left in eval mode trains without dropout / with frozen batch-norm statistics.")
def no_train_mode(model, loader, loss_fn, optimizer):
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@mistake("train_epoch", "The loss tensors were kept (losses.append(loss)) instead of loss.item(): each one holds its whole graph alive.")
def keeps_loss_tensors(model, loader, loss_fn, optimizer):
    model.train()
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss)
    return losses


# ----------------------------------------------------------------------------- evaluate


@mistake("evaluate", "model.eval() was not called: dropout stayed on and batch norm updated its running statistics.")
def no_eval_mode(model, loader, loss_fn):
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            total += loss_fn(model(x), y).item() * len(y)
            count += len(y)
    return total / count


@mistake("evaluate", "No torch.no_grad(): evaluation recorded an autograd graph it never uses.")
def no_no_grad(model, loader, loss_fn):
    return _evaluate_restoring(model, loader, loss_fn, no_grad=False)


@mistake("evaluate", "The batch means were averaged as equals: a short last batch counts as much as a full one.")
def mean_of_batch_means(model, loader, loss_fn):
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        means = [loss_fn(model(x), y).item() for x, y in loader]
    for m, training in modes:
        m.training = training
    return sum(means) / len(means)


@mistake("evaluate", "The model was left in eval mode afterwards: training continues without dropout.")
def never_restores(model, loader, loss_fn):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            total += loss_fn(model(x), y).item() * len(y)
            count += len(y)
    return total / count


@mistake("evaluate", "model.train() at the end: it also switches modules that were in eval mode on purpose (a frozen batch norm).")
def train_at_end(model, loader, loss_fn):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            total += loss_fn(model(x), y).item() * len(y)
            count += len(y)
    model.train()
    return total / count


def _evaluate_restoring(model, loader, loss_fn, *, no_grad=True, grad_off_for_good=False):
    """evaluate with the modes put back after the loop, outside any finally block."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    if grad_off_for_good:
        torch.set_grad_enabled(False)
    total, count = 0.0, 0
    with torch.no_grad() if no_grad else contextlib.nullcontext():
        for x, y in loader:
            total += loss_fn(model(x), y).item() * len(y)
            count += len(y)
    for m, training in modes:
        m.training = training
    return total / count


@mistake("evaluate", "torch.set_grad_enabled(False) and never back on: the caller's next training step records no graph.")
def grad_mode_left_off(model, loader, loss_fn):
    return _evaluate_restoring(model, loader, loss_fn, grad_off_for_good=True)


@mistake("evaluate", "The modes restored after the loop but not in a finally block: when the loss raises, the model stays in eval mode.")
def restores_only_on_success(model, loader, loss_fn):
    return _evaluate_restoring(model, loader, loss_fn)


# ----------------------------------------------------------------------------- accumulation


@mistake("train_epoch_accumulated", "model.train() was not called: a model that arrives in eval mode accumulates gradients without dropout / with frozen batch-norm statistics.")
def accumulates_in_eval_mode(model, loader, loss_fn, optimizer, accum_steps):
    model.train = lambda mode=True: model  # the reference's model.train() then does nothing
    try:
        return _sol.train_epoch_accumulated(model, loader, loss_fn, optimizer, accum_steps)
    finally:
        del model.train


@mistake("train_epoch_accumulated", "The micro-batch losses were not divided: each step used the SUM of the group's gradients, accum_steps times too large.")
def loss_not_scaled(model, loader, loss_fn, optimizer, accum_steps):
    model.train()
    n = len(loader)
    losses = []
    optimizer.zero_grad()
    for i, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        loss.backward()
        losses.append(loss.item())
        if (i + 1) % accum_steps == 0 or i + 1 == n:
            optimizer.step()
            optimizer.zero_grad()
    return losses


@mistake("train_epoch_accumulated", "zero_grad on every micro-batch: only the last micro-batch of each group reached the step.")
def zero_grad_every_micro_batch(model, loader, loss_fn, optimizer, accum_steps):
    model.train()
    n = len(loader)
    losses = []
    for i, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        start = i - i % accum_steps
        loss = loss_fn(model(x), y)
        (loss / min(accum_steps, n - start)).backward()
        losses.append(loss.item())
        if (i + 1) % accum_steps == 0 or i + 1 == n:
            optimizer.step()
    return losses


@mistake("train_epoch_accumulated", "No step after the short last group: its gradients were computed and thrown away.")
def tail_dropped(model, loader, loss_fn, optimizer, accum_steps):
    model.train()
    losses = []
    optimizer.zero_grad()
    for i, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        (loss / accum_steps).backward()
        losses.append(loss.item())
        if (i + 1) % accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad()
    return losses


@mistake("train_epoch_accumulated", "The short last group was divided by accum_steps instead of its own size, so its step was too small.")
def tail_divided_by_accum_steps(model, loader, loss_fn, optimizer, accum_steps):
    model.train()
    n = len(loader)
    losses = []
    optimizer.zero_grad()
    for i, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        (loss / accum_steps).backward()
        losses.append(loss.item())
        if (i + 1) % accum_steps == 0 or i + 1 == n:
            optimizer.step()
            optimizer.zero_grad()
    return losses


# ----------------------------------------------------------------------------- EarlyStopping


@mistake("EarlyStopping", "Each loss was compared with the previous one instead of with the best so far.")
class compares_with_last(_sol.EarlyStopping):
    def step(self, val_loss, model):
        last = getattr(self, "_last", math.inf)
        self._last = val_loss
        epoch = self._calls
        self._calls += 1
        if val_loss < last - self.min_delta:
            if val_loss < self.best:
                self.best, self.best_epoch = val_loss, epoch
                self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


@mistake("EarlyStopping", "A tie with the best (<= instead of <) counted as an improvement and reset the patience.")
class ties_improve(_sol.EarlyStopping):
    def step(self, val_loss, model):
        epoch = self._calls
        self._calls += 1
        if val_loss <= self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


@mistake("EarlyStopping", "Off by one: stopped only when bad_epochs > patience, one epoch too late.")
class patience_off_by_one(_sol.EarlyStopping):
    def step(self, val_loss, model):
        super().step(val_loss, model)
        return self.bad_epochs > self.patience


@mistake("EarlyStopping", "min_delta was ignored: any decrease, however tiny, counted as an improvement.")
class min_delta_ignored(_sol.EarlyStopping):
    def __init__(self, patience, min_delta=0.0):
        super().__init__(patience, 0.0)


@mistake("EarlyStopping", "The snapshot was model.state_dict() itself: its tensors are the live parameters, so 'best' kept training.")
class state_not_copied(_sol.EarlyStopping):
    def step(self, val_loss, model):
        improved = val_loss < self.best - self.min_delta
        stop = super().step(val_loss, model)
        if improved:
            self._best_state = model.state_dict()
        return stop


@mistake("EarlyStopping", "Once stopped, step() returned True for good and stopped counting: a later call that improves is ignored.")
class stop_latches(_sol.EarlyStopping):
    def step(self, val_loss, model):
        if getattr(self, "_stopped", False):
            return True
        self._stopped = super().step(val_loss, model)
        return self._stopped


# ----------------------------------------------------------------------------- reproducibility


def _train(model, dataset, loss_fn, loader_for_epoch, epochs, lr):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for epoch in range(epochs):
        losses += _sol.train_epoch(model, loader_for_epoch(epoch), loss_fn, optimizer)
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


@mistake("reproducible_run", "Nothing was seeded: the initial weights, the dropout masks and the batch order all depend on the caller's RNG state.")
def nothing_seeded(seed, make_model, dataset, loss_fn, *, epochs, batch_size, lr):
    model = make_model()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    return _train(model, dataset, loss_fn, lambda e: loader, epochs, lr)


@mistake("reproducible_run", "torch.manual_seed(seed) came AFTER make_model(): the initial weights were drawn from an unseeded generator.")
def seeded_after_model(seed, make_model, dataset, loss_fn, *, epochs, batch_size, lr):
    model = make_model()
    torch.manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    return _train(model, dataset, loss_fn, lambda e: loader, epochs, lr)


@mistake("reproducible_run", "The shuffling generator was seeded with a constant: every seed sees the same batch order.")
def shuffle_ignores_seed(seed, make_model, dataset, loss_fn, *, epochs, batch_size, lr):
    torch.manual_seed(seed)
    model = make_model()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    return _train(model, dataset, loss_fn, lambda e: loader, epochs, lr)


@mistake("reproducible_run", "A freshly seeded generator every epoch: each epoch repeats the first epoch's order.")
def same_order_every_epoch(seed, make_model, dataset, loss_fn, *, epochs, batch_size, lr):
    torch.manual_seed(seed)
    model = make_model()

    def loader_for_epoch(epoch):
        return DataLoader(dataset, batch_size=batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))

    return _train(model, dataset, loss_fn, loader_for_epoch, epochs, lr)


@mistake("reproducible_run", "Seeded only `if seed:`: seed 0 is falsy, so the run with seed 0 is not seeded at all.")
def seed_zero_unseeded(seed, make_model, dataset, loss_fn, *, epochs, batch_size, lr):
    if seed:
        torch.manual_seed(seed)
    model = make_model()
    generator = torch.Generator()
    if seed:
        generator.manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
    return _train(model, dataset, loss_fn, lambda e: loader, epochs, lr)
