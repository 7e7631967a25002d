"""Known mistakes for the kata numpy_backprop.

Each mistake is self-contained NumPy (the helpers below are correct pieces it builds on), except
the two that reach for torch: one calls autograd, one imports torch lazily from inside a
function of the file under test.
"""

from __future__ import annotations

import numpy as np

from checker.mistakes import mistake


def _linear_backward(x, W, g):
    return g @ W, g.T @ x, g.sum(axis=0)


def _act(kind, z):
    return np.maximum(z, 0.0) if kind == "relu" else np.tanh(z)


def _act_backward(kind, z, g):
    return g * (z > 0) if kind == "relu" else g * (1.0 - np.tanh(z) ** 2)


def _ce(logits, targets):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    grad = np.exp(log_probs)
    grad[rows, targets] -= 1.0
    return float(-log_probs[rows, targets].mean()), grad / n


def _mlp(params, x, targets, activation, weight_decay, *, ce=_ce, decay_overwrites=False):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    z1 = x @ W1.T + b1
    h1 = _act(activation, z1)
    z2 = h1 @ W2.T + b2
    data_loss, g_z2 = ce(z2, targets)
    loss = data_loss + 0.5 * weight_decay * (np.sum(W1 * W1) + np.sum(W2 * W2))
    g_h1, g_W2, g_b2 = _linear_backward(h1, W2, g_z2)
    g_z1 = _act_backward(activation, z1, g_h1)
    _, g_W1, g_b1 = _linear_backward(x, W1, g_z1)
    if decay_overwrites:
        if weight_decay:
            g_W1, g_W2 = weight_decay * W1, weight_decay * W2
    else:
        g_W1 = g_W1 + weight_decay * W1
        g_W2 = g_W2 + weight_decay * W2
    return float(loss), {"z2": g_z2, "h1": g_h1, "z1": g_z1, "W2": g_W2, "b2": g_b2,
                         "W1": g_W1, "b1": g_b1}


# ----------------------------------------------------------------------------- linear_backward


@mistake("linear_backward", "grad_W computed as x.T @ grad_out: that is the (in, out) transpose; with W stored as (out, in) it is grad_out.T @ x.")
def weight_grad_transposed(x, W, grad_out):
    return grad_out @ W, x.T @ grad_out, grad_out.sum(axis=0)


@mistake("linear_backward", "The bias gradient was averaged over the batch: b is added to every row, so its gradient is the SUM of the rows' gradients.")
def bias_grad_averaged(x, W, grad_out):
    return grad_out @ W, grad_out.T @ x, grad_out.mean(axis=0)


# ----------------------------------------------------------------------------- activations


@mistake("activation_backward", "ReLU gradient taken at the wrong side of 0: x >= 0 lets the gradient through at x == 0, where torch gives 0.")
def relu_mask_includes_zero(kind, x, grad_out):
    if kind == "relu":
        return grad_out * (x >= 0)
    if kind == "tanh":
        return grad_out * (1.0 - np.tanh(x) ** 2)
    raise ValueError(kind)


@mistake("activation_backward", "tanh's derivative written as 1 - x**2 from the INPUT: 1 - y**2 holds for the output y = tanh(x).")
def tanh_derivative_from_input(kind, x, grad_out):
    if kind == "relu":
        return grad_out * (x > 0)
    if kind == "tanh":
        return grad_out * (1.0 - x ** 2)
    raise ValueError(kind)


@mistake("activation_backward", "An unknown activation fell through silently (treated as the identity) instead of raising ValueError.")
def unknown_kind_is_identity(kind, x, grad_out):
    if kind == "relu":
        return grad_out * (x > 0)
    if kind == "tanh":
        return grad_out * (1.0 - np.tanh(x) ** 2)
    return grad_out


@mistake("activation_backward", "The ReLU mask was applied to grad_out in place (grad_out *= mask): the caller's gradient, which other nodes may still read, is changed.")
def relu_mask_in_place(kind, x, grad_out):
    if kind == "relu":
        grad_out *= x > 0
        return grad_out
    return _act_backward("tanh", x, grad_out)


# ----------------------------------------------------------------------------- cross-entropy


@mistake("softmax_cross_entropy", "Missing 1/N: the loss is the batch MEAN, so the gradient of every row is divided by N.")
def missing_batch_mean(logits, targets):
    loss, grad = _ce(logits, targets)
    return loss, grad * logits.shape[0]


@mistake("softmax_cross_entropy", "Softmax without subtracting the row max: exp of large logits overflows to inf and the result turns into NaN.")
def unstable_softmax(logits, targets):
    n = logits.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(logits)
        probs = e / e.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(-np.log(probs[rows, targets]).mean())
    grad = probs.copy()
    grad[rows, targets] -= 1.0
    return loss, grad / n


@mistake("softmax_cross_entropy", "The row max was subtracted, then the loss taken as log(softmax): a probability that underflows to 0 gives log(0) = -inf instead of a large finite loss.")
def log_of_softmax(logits, targets):
    n = logits.shape[0]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    with np.errstate(divide="ignore"):
        loss = float(-np.log(probs[rows, targets]).mean())
    grad = probs.copy()
    grad[rows, targets] -= 1.0
    return loss, grad / n


# ----------------------------------------------------------------------------- MLP


@mistake("mlp_gradients", "`=` instead of `+=` for a tensor used twice: the weight-decay gradient replaced the layer's gradient of W instead of adding to it.")
def weight_decay_overwrites(params, x, targets, activation="relu", weight_decay=0.0):
    return _mlp(params, x, targets, activation, weight_decay, decay_overwrites=True)


@mistake("mlp_gradients", "The activation's backward was evaluated at h1 (its output) instead of z1 (its input).")
def activation_backward_at_output(params, x, targets, activation="relu", weight_decay=0.0):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    z1 = x @ W1.T + b1
    h1 = _act(activation, z1)
    z2 = h1 @ W2.T + b2
    data_loss, g_z2 = _ce(z2, targets)
    loss = data_loss + 0.5 * weight_decay * (np.sum(W1 * W1) + np.sum(W2 * W2))
    g_h1, g_W2, g_b2 = _linear_backward(h1, W2, g_z2)
    g_z1 = _act_backward(activation, h1, g_h1)
    _, g_W1, g_b1 = _linear_backward(x, W1, g_z1)
    return float(loss), {"z2": g_z2, "h1": g_h1, "z1": g_z1, "W2": g_W2 + weight_decay * W2,
                         "b2": g_b2, "W1": g_W1 + weight_decay * W1, "b1": g_b1}


@mistake("mlp_gradients", "torch imported inside the function to let autograd find the gradients: this kata is backprop by hand; torch is refused at run time too, not only at the top of the file, and so are the autograd entry points.")
def uses_torch_autograd(params, x, targets, activation="relu", weight_decay=0.0):
    import torch

    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    z1 = torch.nn.functional.linear(torch.tensor(x), p["W1"], p["b1"])
    z1.retain_grad()
    h1 = torch.relu(z1) if activation == "relu" else torch.tanh(z1)
    h1.retain_grad()
    z2 = torch.nn.functional.linear(h1, p["W2"], p["b2"])
    z2.retain_grad()
    loss = torch.nn.functional.cross_entropy(z2, torch.tensor(targets))
    loss = loss + 0.5 * weight_decay * (p["W1"].square().sum() + p["W2"].square().sum())
    loss.backward()
    grads = {"z1": z1.grad, "h1": h1.grad, "z2": z2.grad, **{k: v.grad for k, v in p.items()}}
    return float(loss), {k: v.numpy() for k, v in grads.items()}


# ----------------------------------------------------------------------------- training


@mistake("train_sgd", "Gradient ascent: p += lr * grad climbs the loss instead of descending it.")
def gradient_ascent(params, x, targets, activation, weight_decay, lr, steps):
    params = {k: v.copy() for k, v in params.items()}
    losses = []
    for _ in range(steps):
        loss, grads = _mlp(params, x, targets, activation, weight_decay)
        losses.append(loss)
        for k in params:
            params[k] += lr * grads[k]
    return losses, params


@mistake("train_sgd", "dict(params) copies the dict, not the arrays: the in-place updates changed the caller's parameters.")
def shallow_copy_mutates_caller(params, x, targets, activation, weight_decay, lr, steps):
    params = dict(params)
    losses = []
    for _ in range(steps):
        loss, grads = _mlp(params, x, targets, activation, weight_decay)
        losses.append(loss)
        for k in params:
            params[k] -= lr * grads[k]
    return losses, params


@mistake("train_sgd", "The loss was recorded after the update: losses[i] must be the loss at step i, before its update.")
def loss_recorded_after_update(params, x, targets, activation, weight_decay, lr, steps):
    params = {k: v.copy() for k, v in params.items()}
    losses = []
    for _ in range(steps):
        _, grads = _mlp(params, x, targets, activation, weight_decay)
        for k in params:
            params[k] = params[k] - lr * grads[k]
        losses.append(_mlp(params, x, targets, activation, weight_decay)[0])
    return losses, params
