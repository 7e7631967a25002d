"""Hidden checks for the kata training_loop.

The learner's loops are watched while they run: a forward pre-hook on the model (its mode,
whether autograd is on), a loss function that hooks its own output (so the moment backward
reaches the loss is seen, with the state of every .grad at that moment), the optimizer's
step pre/post hooks (order, and a snapshot of the parameters after every step). The same
data then go through a reference loop written here, and the two parameter trajectories are
compared step by step.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from checker.contracts import uses_global_rng
from checker.helpers import assert_close, fail, trajectory_picture

pytestmark = pytest.mark.kata("training_loop")

# Iterating a DataLoader without a generator draws its base seed from torch's global RNG, and
# dropout draws its masks there: by contract these loops use it (reproducible_run reseeds it).
for _name in ("train_epoch", "evaluate", "train_epoch_accumulated", "reproducible_run"):
    uses_global_rng(_name)

ORDER = "zero_grad, forward, loss, backward, step"


# ----------------------------------------------------------------------------- fixtures


def make_mlp(dropout=True, sizes=(5, 8, 3)):
    layers = [nn.Linear(sizes[0], sizes[1]), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(0.25))
    layers.append(nn.Linear(sizes[1], sizes[2]))
    return nn.Sequential(*layers).double()


def shifted_mse(outputs, targets):
    """An MSE against half the targets: unlike MSELoss it changes when its two arguments are
    swapped, so a call loss_fn(targets, outputs) shows."""
    return ((outputs - 0.5 * targets) ** 2).mean()


def put_stale_grads(model):
    """As if earlier code had run a backward and left its gradients behind."""
    for p in model.parameters():
        p.grad = torch.randn_like(p)


def regression_loader(rng, n_batches, batch_size, last=None, dims=(5, 3)):
    n = n_batches * batch_size if last is None else (n_batches - 1) * batch_size + last
    x = torch.randn(n, dims[0], dtype=torch.float64)
    y = torch.randn(n, dims[1], dtype=torch.float64)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False,
                      generator=torch.Generator().manual_seed(int(rng.integers(1 << 30))))


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


class Recorder:
    """Spies on one call of the learner's loop; ``events`` is what happened, in order."""

    def __init__(self, model, optimizer):
        self.events: list[str] = []
        self.params = list(model.parameters())
        self.trajectory: list[torch.Tensor] = []
        model.register_forward_pre_hook(self._forward)
        optimizer.register_step_pre_hook(lambda *_: self.events.append("step"))
        optimizer.register_step_post_hook(lambda *_: self.trajectory.append(flat(model)))
        for owner in (model, optimizer):
            original = owner.zero_grad

            def zero_grad(*args, _original=original, **kwargs):
                self.events.append("zero_grad")
                return _original(*args, **kwargs)

            owner.zero_grad = zero_grad

    def _forward(self, module, inputs):
        if module.training and torch.is_grad_enabled():
            self.events.append("forward")
        else:
            self.events.append("forward(eval mode)" if not module.training else "forward(no grad)")

    def _backward(self, grad):
        clean = all(p.grad is None or not bool(p.grad.any()) for p in self.params)
        self.events.append("backward" if clean else "backward(stale grads)")

    def loss(self, base):
        def loss_fn(outputs, targets):
            self.events.append("loss")
            value = base(outputs, targets)
            if isinstance(value, torch.Tensor) and value.requires_grad:
                value.register_hook(self._backward)
            return value

        return loss_fn


def batches_of(events):
    """Split the event log after every optimizer step: one chunk per batch."""
    chunks, current = [], []
    for e in events:
        current.append(e)
        if e == "step":
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


def check_order(events, n_batches, what):
    chunks = batches_of(events)
    for b, chunk in enumerate(chunks):
        ran = ", ".join(chunk)
        if "forward(eval mode)" in chunk:
            fail(f"{what}: batch {b} ran its forward pass in eval mode ({ran}). Call "
                 "model.train() first: the model may arrive in eval mode (e.g. after an "
                 "evaluation), and dropout / batch norm behave differently while training.")
        if "backward(stale grads)" in chunk:
            fail(f"{what}: in batch {b} ({ran}) backward ran while the parameters still held "
                 "gradients (the previous batch's, or stale ones the model arrived with). "
                 "backward ADDS into .grad, so clear it (optimizer.zero_grad()) before each "
                 "backward.")
        core = [e for e in chunk if e != "zero_grad"]
        if core != ["forward", "loss", "backward", "step"]:
            fail(f"{what}: batch {b} ran {ran or 'nothing'}; every batch must run {ORDER} "
                 "(one of each, in this order).")
    if len(chunks) != n_batches:
        fail(f"{what}: {len(chunks)} batches were processed, the loader has {n_batches}.")


def float_list(got, n, what):
    if not isinstance(got, list) or len(got) != n:
        fail(f"{what}: expected a list of {n} floats (one loss per batch), got "
             f"{type(got).__name__}" + (f" of length {len(got)}" if hasattr(got, "__len__") else "")
             + ".")
    for i, v in enumerate(got):
        if isinstance(v, bool) or not isinstance(v, int | float):
            fail(f"{what}: element {i} is a {type(v).__name__}, not a float. Append loss.item(): "
                 "a loss tensor keeps its whole autograd graph (and the batch) alive.")
    return [float(v) for v in got]


def losses_for_picture(got):
    try:
        return [float(v) for v in got]
    except (TypeError, ValueError):
        return []


def compare_trajectories(ref_traj, got_traj, ref_losses, got_losses, what, hint,
                         per="batch"):
    picture = trajectory_picture(ref_losses, losses_for_picture(got_losses))
    for i, (r, g) in enumerate(zip(ref_traj, got_traj, strict=False)):
        if not torch.allclose(g, r, rtol=1e-9, atol=1e-12):
            err = float((g - r).abs().max())
            fail(f"{what}: your parameters leave the reference loop's at optimizer step {i} "
                 f"(largest difference {err:.3g}).\n  loss per {per}:\n{picture}\n  Try: {hint}")
    if len(got_traj) != len(ref_traj):
        fail(f"{what}: {len(got_traj)} optimizer steps were taken; the reference loop took "
             f"{len(ref_traj)}.\n  loss per {per}:\n{picture}\n  Try: {hint}")


def reference_epoch(model, loader, loss_fn, optimizer):
    model.train()
    losses, trajectory = [], []
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        trajectory.append(flat(model))
    return losses, trajectory


# ----------------------------------------------------------------------------- train_epoch


@pytest.mark.exercise("train_epoch")
def test_train_epoch_call_order(impl, rng):
    model = make_mlp().eval()  # arrives in eval mode, as right after an evaluation
    put_stale_grads(model)
    loader = regression_loader(rng, int(rng.integers(3, 6)), 4, last=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rec = Recorder(model, optimizer)
    got = impl.train_epoch(model, loader, rec.loss(nn.MSELoss()), optimizer)
    what = "train_epoch(model, loader, loss_fn, optimizer)"
    check_order(rec.events, len(loader), what)
    float_list(got, len(loader), f"{what} returned")


@pytest.mark.exercise("train_epoch")
def test_train_epoch_matches_reference_loop(impl, rng):
    model = make_mlp()
    put_stale_grads(model)
    ref_model = copy.deepcopy(model)
    hyper = {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}
    optimizer = torch.optim.SGD(model.parameters(), **hyper)
    ref_optimizer = torch.optim.SGD(ref_model.parameters(), **hyper)
    loader = regression_loader(rng, int(rng.integers(4, 7)), 5, last=2)
    rng_state = torch.get_rng_state()  # both loops must draw the same dropout masks
    ref_losses, ref_traj = reference_epoch(ref_model, loader, nn.MSELoss(), ref_optimizer)
    torch.set_rng_state(rng_state)
    rec = Recorder(model, optimizer)
    got = impl.train_epoch(model, loader, nn.MSELoss(), optimizer)
    what = f"train_epoch over {len(loader)} batches (SGD with momentum, dropout in the model)"
    compare_trajectories(ref_traj, rec.trajectory, ref_losses, got, what,
                         f"per batch: {ORDER}; nothing else touches the parameters.")
    got = float_list(got, len(loader), f"{what} returned")
    assert_close(torch.tensor(got), torch.tensor(ref_losses), f"{what}: the returned losses",
                 hint="return loss.item() of every batch, in order.")


@pytest.mark.exercise("train_epoch")
def test_train_epoch_drives_the_loss_down(impl, rng):
    centers = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]], dtype=torch.float64)
    labels = torch.arange(3).repeat_interleave(32)
    x = centers[labels] + 0.35 * torch.randn(96, 2, dtype=torch.float64)
    model = make_mlp(dropout=False, sizes=(2, 16, 3))
    ref_model = copy.deepcopy(model)
    shuffle_seed = int(rng.integers(1 << 30))
    loader = DataLoader(TensorDataset(x, labels), batch_size=16, shuffle=True,
                        generator=torch.Generator())
    threshold, max_epochs = 0.1, 25

    def history_of(net, one_epoch):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        history = []
        for _ in range(max_epochs):
            one_epoch(net, loader, nn.CrossEntropyLoss(), optimizer)
            with torch.no_grad():
                history.append(nn.functional.cross_entropy(net(x), labels).item())
            if history[-1] < threshold:
                break
        return history

    loader.generator.manual_seed(shuffle_seed)
    reference = history_of(ref_model, reference_epoch)
    loader.generator.manual_seed(shuffle_seed)
    got = history_of(model, impl.train_epoch)
    if got[-1] >= threshold:
        fail(f"train_epoch on 3 well-separated Gaussian blobs (96 points, batches of 16, SGD "
             f"lr=0.1 momentum=0.9): after {len(got)} epochs the loss is still {got[-1]:.4g}; a "
             f"correct loop gets below {threshold} in {len(reference)} epochs.\n"
             f"  full-data loss after each epoch:\n{trajectory_picture(reference, got)}\n"
             f"  Try: per batch {ORDER}.")


# ----------------------------------------------------------------------------- evaluate


def make_eval_net():
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5),
                        nn.Linear(6, 2)).double()
    net.train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial running statistics
            net(torch.randn(8, 4, dtype=torch.float64) * 2 + 1)
    return net


def module_name(name):
    return f"model.{name}" if name else "model"


def eval_loader(rng, n=50, batch_size=16):
    x = torch.randn(n, 4, dtype=torch.float64)
    y = torch.randn(n, 2, dtype=torch.float64)
    return x, y, DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


@pytest.mark.exercise("evaluate")
def test_evaluate_runs_in_eval_mode_without_autograd(impl, rng):
    model = make_eval_net()
    _, _, loader = eval_loader(rng)
    seen = []
    handles = [
        m.register_forward_pre_hook(
            lambda mod, inp, name=name: seen.append((module_name(name), mod.training,
                                                     torch.is_grad_enabled())))
        for name, m in model.named_modules()
    ]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    impl.evaluate(model, loader, nn.MSELoss())
    for h in handles:
        h.remove()
    what = "evaluate(model, loader, loss_fn) on Linear-BatchNorm-ReLU-Dropout-Linear"
    check_grad_mode_restored(what)
    if not seen:
        fail(f"{what}: the model was never called.")
    for name, training, grad_enabled in seen:
        if training:
            fail(f"{what}: `{name}` ran its forward in training mode. Call model.eval() "
                 "first: it switches every submodule (dropout off, batch norm on its running "
                 "statistics).")
        if grad_enabled:
            fail(f"{what}: `{name}` ran its forward with autograd on. Wrap the loop in "
                 "torch.no_grad() (or torch.inference_mode()): evaluation needs no graph, and "
                 "recording one costs memory for every activation.")
    for key, before in state.items():
        if not torch.equal(model.state_dict()[key], before):
            fail(f"{what}: the model's `{key}` changed during evaluation; evaluating must not "
                 "change the model (batch norm in training mode updates its running stats).")
    if any(p.grad is not None for p in model.parameters()):
        fail(f"{what}: parameters have a .grad afterwards; evaluation must not backpropagate.")


def check_grad_mode_restored(what):
    if not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
        on = "inference mode on" if torch.is_inference_mode_enabled() else "grad mode off"
        torch.set_grad_enabled(True)
        fail(f"{what}: afterwards autograd is still disabled ({on}) for the caller, so the "
             "next training step would record no graph.\n  Try: `with torch.no_grad():` "
             "around the loop (it restores the mode on the way out) instead of "
             "torch.set_grad_enabled(False).")


class Interrupted(Exception):
    """Raised by the check's own loss function in the middle of an evaluation."""


@pytest.mark.exercise("evaluate")
def test_evaluate_cleans_up_when_the_loss_raises(impl, rng):
    model = make_eval_net()
    model[3].eval()  # one module in eval mode on purpose
    _, _, loader = eval_loader(rng)
    before = {module_name(name): m.training for name, m in model.named_modules()}
    calls = []

    def failing_loss(outputs, targets):
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted("the loss failed on batch 1")
        return nn.functional.mse_loss(outputs, targets)

    what = "evaluate(model, loader, loss_fn) where loss_fn raises on the second batch"
    try:
        impl.evaluate(model, loader, failing_loss)
    except Interrupted:
        pass
    else:
        fail(f"{what}: returned normally; the loss function's exception must reach the caller.")
    check_grad_mode_restored(what)
    for name, m in model.named_modules():
        name = module_name(name)
        if m.training != before[name]:
            fail(f"{what}: afterwards {name}.training is {m.training}, but it was "
                 f"{before[name]} before the call.\n  Try: restore the modes in a `finally:` "
                 "block, so that they come back even when the loop raises.")


@pytest.mark.exercise("evaluate")
def test_evaluate_weights_batches_by_size(impl, rng):
    model = make_eval_net()
    x, y, loader = eval_loader(rng, n=50, batch_size=16)
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        expected = shifted_mse(reference(x), y).item()
        means = [shifted_mse(reference(xb), yb).item() for xb, yb in loader]
    got = impl.evaluate(model, loader, shifted_mse)
    what = ("evaluate(model, loader, loss_fn) over 50 samples in batches of 16, 16, 16, 2, "
            "loss_fn(outputs, targets) = mean((outputs - targets / 2) ** 2)")
    if isinstance(got, bool) or not isinstance(got, int | float):
        fail(f"{what}: expected a Python float, got {type(got).__name__}. Use loss.item().")
    if not math.isclose(got, expected, rel_tol=1e-9):
        fail(f"{what}: returned {got:.10g}; the mean loss over all 50 samples is {expected:.10g} "
             f"(the plain mean of the 4 batch means would be {sum(means) / len(means):.10g}).\n"
             "  Try: loss_fn gives each batch's MEAN; add loss.item() * batch_size and divide "
             "by the number of samples.")


@pytest.mark.exercise("evaluate")
def test_evaluate_restores_every_modules_mode(impl, rng):
    _, _, loader = eval_loader(rng)
    frozen = make_eval_net()
    frozen[1].eval()  # a frozen batch norm inside a model that is training
    for label, model in (("a training model with a frozen BatchNorm1d", frozen),
                         ("a model in eval mode", make_eval_net().eval())):
        before = {module_name(name): m.training for name, m in model.named_modules()}
        impl.evaluate(model, loader, nn.MSELoss())
        for name, m in model.named_modules():
            name = module_name(name)
            if m.training != before[name]:
                fail(f"evaluate on {label}: afterwards {name}.training is {m.training}, but it "
                     f"was {before[name]} before the call.\n  Try: remember every module's "
                     "`training` flag before model.eval() and put each back afterwards; "
                     "model.train() would also switch modules that were meant to stay in eval.")


# ----------------------------------------------------------------------------- accumulation


@pytest.mark.exercise("train_epoch_accumulated")
def test_accumulation_equals_big_batch_steps(impl, rng):
    k = int(rng.integers(2, 4))
    n_micro = k * 2 + int(rng.integers(1, k))  # the last group is shorter
    loader = regression_loader(rng, n_micro, int(rng.integers(3, 6)))
    model = make_mlp(dropout=False).eval()  # arrives in eval mode, as after an evaluation
    put_stale_grads(model)
    ref_model = copy.deepcopy(model)
    hyper = {"lr": 0.1, "momentum": 0.9}
    optimizer = torch.optim.SGD(model.parameters(), **hyper)
    ref_optimizer = torch.optim.SGD(ref_model.parameters(), **hyper)
    loss_fn = shifted_mse  # loss_fn(outputs, targets): the order of its arguments matters
    micro = list(loader)
    ref_losses, ref_traj = [], []
    for start in range(0, n_micro, k):
        group = micro[start:start + k]
        with torch.no_grad():
            ref_losses += [loss_fn(ref_model(x), y).item() for x, y in group]
        ref_optimizer.zero_grad()
        big_x = torch.cat([x for x, _ in group])
        big_y = torch.cat([y for _, y in group])
        loss_fn(ref_model(big_x), big_y).backward()  # one step on the whole group at once
        ref_optimizer.step()
        ref_traj.append(flat(ref_model))
    rec = Recorder(model, optimizer)
    got = impl.train_epoch_accumulated(model, loader, loss_fn, optimizer, k)
    what = (f"train_epoch_accumulated over {n_micro} micro-batches with accum_steps={k} "
            f"(groups of {', '.join(str(len(micro[s:s + k])) for s in range(0, n_micro, k))})")
    if "forward(eval mode)" in rec.events:
        fail(f"{what}: the model arrived in eval mode and ran its forward passes in eval mode. "
             "Call model.train() first: dropout and batch norm behave differently while "
             "training.")
    compare_trajectories(
        ref_traj, rec.trajectory, ref_losses, got, what,
        "each step must equal one step on the group's micro-batches concatenated: divide each "
        "micro-batch loss by the size of ITS group, step and zero_grad after the group's last "
        "micro-batch, the short last group included.", per="micro-batch",
    )
    got = float_list(got, n_micro, f"{what} returned")
    assert_close(torch.tensor(got), torch.tensor(ref_losses), f"{what}: the returned losses",
                 hint="return every micro-batch's loss.item(), before any scaling.")


# ----------------------------------------------------------------------------- EarlyStopping


class ReferenceStopper:
    def __init__(self, patience, min_delta):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.bad_epochs, self.calls = math.inf, -1, 0, 0

    def step(self, value):
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, self.calls, 0
        else:
            self.bad_epochs += 1
        self.calls += 1
        return self.bad_epochs >= self.patience

    def state(self):
        return self.best, self.best_epoch, self.bad_epochs


def scripted_runs(rng):
    runs = [
        (2, 0.0, [1.0, 0.8, 0.8, 0.79, 0.9, 0.95, 1.0]),  # a tie is no improvement
        (3, 0.0, [1.0, 0.7, 0.9, 0.8, 0.75, 0.72, 0.74]),  # better than last, not than best
        (2, 0.05, [1.0, 0.97, 0.9, 0.88, 0.86, 0.83, 0.84]),  # gains below min_delta
        (2, 0.25, [1.0, 0.75, 0.5, 0.25, 0.125, 0.5]),  # gains of exactly min_delta (exact floats)
        (1, 0.0, [1.0, 1.5, 0.5, 0.75, 0.25, 0.25, 2.0]),  # steps after a stop: it goes on
    ]
    for _ in range(3):
        steps = rng.normal(-0.02, 0.06, size=14)
        values = [round(float(v), 2) for v in 1.0 + steps.cumsum()]
        # min_delta 0.025 is never within float rounding of a gap between 2-decimal values,
        # so `best - val > min_delta` and `val < best - min_delta` agree on every draw
        runs.append((int(rng.integers(1, 5)), float(rng.choice([0.0, 0.025])), values))
    return runs


@pytest.mark.exercise("EarlyStopping")
def test_early_stopping_decisions(impl, rng):
    model = nn.Linear(2, 1)
    for patience, min_delta, values in scripted_runs(rng):
        ref = ReferenceStopper(patience, min_delta)
        with impl.rules():
            stopper = impl.EarlyStopping(patience, min_delta)
            state = (stopper.best, stopper.best_epoch, stopper.bad_epochs)
        what = f"EarlyStopping(patience={patience}, min_delta={min_delta})"
        if state != ref.state() or type(state[1]) is not int or type(state[2]) is not int:
            fail(f"{what}: right after construction best, best_epoch, bad_epochs are "
                 f"{state!r}; expected (inf, -1, 0): no call has set a best yet.")
        for i, value in enumerate(values):
            expected = ref.step(value)
            with impl.rules():
                got = stopper.step(value, model)
                state = (stopper.best, stopper.best_epoch, stopper.bad_epochs)
            fed = ", ".join(f"{v:g}" for v in values[: i + 1])
            if type(got) is not bool or got != expected or state != ref.state():
                fail(f"{what} fed val losses [{fed}]:\n"
                     f"  expected step() -> {expected}, best={ref.best:g}, "
                     f"best_epoch={ref.best_epoch}, bad_epochs={ref.bad_epochs}\n"
                     f"  got      step() -> {got!r}, best={state[0]!r}, best_epoch={state[1]!r}, "
                     f"bad_epochs={state[2]!r}\n"
                     "  Try: improvement means val_loss < best - min_delta (a tie is not one); "
                     "anything else adds 1 to bad_epochs; stop once bad_epochs >= patience "
                     "(and keep counting if step() is called again after a stop).")


@pytest.mark.exercise("EarlyStopping")
def test_early_stopping_restores_the_best_weights(impl, rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    params = list(model.parameters())
    ptrs = [p.data_ptr() for p in params]
    best_at = int(rng.integers(1, 4))
    values = [1.0 - 0.1 * i for i in range(best_at + 1)] + [0.95, 0.97, 0.99]
    with impl.rules():
        stopper = impl.EarlyStopping(patience=3)
    snapshot = None
    for epoch, value in enumerate(values):
        with torch.no_grad():  # "training": the parameters and running stats move
            for p in params:
                p.add_(torch.randn_like(p))
        model(torch.randn(6, 3, dtype=torch.float64))
        if epoch == best_at:
            snapshot = {k: v.clone() for k, v in model.state_dict().items()}
        with impl.rules():
            stop = stopper.step(value, model)
        if stop:
            break
    with impl.rules():
        stopper.restore(model)
    what = (f"EarlyStopping(patience=3) fed {values}, the best at epoch {best_at}, then "
            "restore(model)")
    for i, p in enumerate(model.parameters()):
        if p is not params[i] or p.data_ptr() != ptrs[i]:
            fail(f"{what}: parameter {i} was replaced by a new tensor; load the values into the "
                 "existing parameters (model.load_state_dict), which an optimizer still holds.")
    for key, value in model.state_dict().items():
        assert_close(value, snapshot[key], f"{what}: `{key}` after restore",
                     hint="snapshot a COPY ({k: v.detach().clone() ...}): model.state_dict() "
                     "holds the live tensors, which kept training after the best epoch.")


# ----------------------------------------------------------------------------- reproducibility


class LoggedDataset(Dataset):
    """A map-style dataset that writes down every index it is asked for."""

    def __init__(self, x, y):
        self.x, self.y, self.log = x, y, []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.log.append(int(i))
        return self.x[i], self.y[i]


class Experiment:
    N, BATCH, EPOCHS = 40, 8, 2

    def __init__(self, rng):
        g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
        self.x = torch.randn(self.N, 4, dtype=torch.float64, generator=g)
        w = torch.randn(4, 1, dtype=torch.float64, generator=g)
        self.y = self.x @ w + 0.1 * torch.randn(self.N, 1, dtype=torch.float64, generator=g)
        self.initial_states = []
        self.models = []

    def make_model(self):
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 1))
        model = model.double()
        self.initial_states.append({k: v.clone() for k, v in model.state_dict().items()})
        self.models.append(model)
        return model

    def run(self, impl, seed, disturb):
        torch.manual_seed(disturb)  # whatever the caller did to the global generator before
        torch.rand(disturb % 7 + 1)
        data = LoggedDataset(self.x, self.y)
        got = impl.reproducible_run(seed=seed, make_model=self.make_model, dataset=data,
                                    loss_fn=nn.MSELoss(), epochs=self.EPOCHS,
                                    batch_size=self.BATCH, lr=0.05)
        call = (f"reproducible_run(seed={seed}, make_model, dataset of {self.N}, MSELoss(), "
                f"epochs={self.EPOCHS}, batch_size={self.BATCH}, lr=0.05)")
        n_steps = self.EPOCHS * math.ceil(self.N / self.BATCH)
        if not (isinstance(got, tuple | list) and len(got) == 2 and isinstance(got[1], dict)):
            fail(f"{call}: expected (losses, state_dict), got {type(got).__name__}.")
        returned = {k: v.clone() for k, v in got[1].items() if isinstance(v, torch.Tensor)}
        with torch.no_grad():  # the caller goes on using the model it made
            for p in self.models[-1].parameters():
                p.add_(1.0)
        for key, value in returned.items():
            if not torch.equal(got[1][key], value):
                fail(f"{call}: the returned state_dict's `{key}` changed when the model was "
                     "trained further: it is the live parameter, not a copy.\n  Try: "
                     "{k: v.detach().clone() for k, v in model.state_dict().items()}.")
        losses = float_list(got[0], n_steps, f"{call}: the losses")
        orders = [data.log[e * self.N:(e + 1) * self.N] for e in range(self.EPOCHS)]
        return call, losses, got[1], orders


def first_batch(order):
    return order[: Experiment.BATCH]


@pytest.mark.exercise("reproducible_run")
@pytest.mark.parametrize("seed_kind", ["zero", "random"])
def test_same_seed_same_run(impl, rng, seed_kind):
    exp = Experiment(rng)
    seed = 0 if seed_kind == "zero" else int(rng.integers(1, 10_000))
    call, losses_a, state_a, orders_a = exp.run(impl, seed, disturb=11)
    _, losses_b, state_b, orders_b = exp.run(impl, seed, disturb=4242)
    if orders_a != orders_b:
        fail(f"{call} twice (the caller used torch's global generator in between): the batch "
             f"order differs, first batches {first_batch(orders_a[0])} vs "
             f"{first_batch(orders_b[0])}.\n  Try: shuffle with a generator of your own, "
             "DataLoader(..., shuffle=True, generator=torch.Generator().manual_seed(seed)).")
    if not torch.equal(exp.initial_states[0]["0.weight"], exp.initial_states[1]["0.weight"]):
        fail(f"{call} twice: make_model() built different initial weights each time.\n  Try: "
             "torch.manual_seed(seed) BEFORE make_model(): the initialisation draws from the "
             "global generator at construction time.")
    if losses_a != losses_b:
        step = next(i for i, (a, b) in enumerate(zip(losses_a, losses_b, strict=False)) if a != b)
        fail(f"{call} twice: same data order and initial weights, yet the losses differ from "
             f"step {step} on.\n{trajectory_picture(losses_a, losses_b)}\n  Try: dropout draws "
             "from the global generator too; seed it once at the start and draw nothing else.")
    for key in state_a:
        if key not in state_b or not torch.equal(state_a[key], state_b[key]):
            fail(f"{call} twice: the final state_dict differs at `{key}`.")
    if sum(losses_a[-5:]) >= sum(losses_a[:5]):
        fail(f"{call}: the loss did not go down: {losses_a}. Train with train_epoch and SGD(lr).")


@pytest.mark.exercise("reproducible_run")
def test_other_seed_other_run(impl, rng):
    exp = Experiment(rng)
    seed = int(rng.integers(0, 10_000))
    call, _, _, orders_a = exp.run(impl, seed, disturb=5)
    _, _, _, orders_b = exp.run(impl, seed + 1, disturb=5)
    if orders_a[0] == orders_b[0]:
        fail(f"{call} and the same with seed={seed + 1}: both shuffle the data identically "
             f"(first batch {first_batch(orders_a[0])}).\n  Try: seed the shuffling generator "
             "with `seed` itself, not with a constant.")
    if torch.equal(exp.initial_states[0]["0.weight"], exp.initial_states[1]["0.weight"]):
        fail(f"{call} and the same with seed={seed + 1}: identical initial weights.\n  Try: "
             "torch.manual_seed(seed) before make_model().")


@pytest.mark.exercise("reproducible_run")
def test_each_epoch_is_reshuffled(impl, rng):
    exp = Experiment(rng)
    call, _, _, orders = exp.run(impl, int(rng.integers(0, 10_000)), disturb=3)
    if orders[0] == orders[1]:
        fail(f"{call}: epoch 1 visits the samples in exactly the order of epoch 0 "
             f"(first batch {first_batch(orders[0])}).\n  Try: build the DataLoader and its "
             "generator ONCE; each new iteration of it draws a fresh permutation from the "
             "generator. Re-seeding every epoch repeats the first shuffle.")
