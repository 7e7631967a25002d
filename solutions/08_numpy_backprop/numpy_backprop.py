"""Reference solution for kata 08 — numpy_backprop."""

from __future__ import annotations

import numpy as np


def linear_backward(
    x: np.ndarray, W: np.ndarray, grad_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return grad_out @ W, grad_out.T @ x, grad_out.sum(axis=0)


def activation_backward(kind: str, x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    if kind == "relu":
        return grad_out * (x > 0)
    if kind == "tanh":
        return grad_out * (1.0 - np.tanh(x) ** 2)
    raise ValueError(f"unknown activation {kind!r}")


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -log_probs[rows, targets].mean()
    grad = np.exp(log_probs)
    grad[rows, targets] -= 1.0
    return float(loss), grad / n


def _act(kind: str, z: np.ndarray) -> np.ndarray:
    if kind == "relu":
        return np.maximum(z, 0.0)
    if kind == "tanh":
        return np.tanh(z)
    raise ValueError(f"unknown activation {kind!r}")


def mlp_gradients(
    params: dict[str, np.ndarray],
    x: np.ndarray,
    targets: np.ndarray,
    activation: str = "relu",
    weight_decay: float = 0.0,
) -> tuple[float, dict[str, np.ndarray]]:
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    z1 = x @ W1.T + b1
    h1 = _act(activation, z1)
    z2 = h1 @ W2.T + b2
    data_loss, g_z2 = softmax_cross_entropy(z2, targets)
    loss = data_loss + 0.5 * weight_decay * (np.sum(W1 * W1) + np.sum(W2 * W2))
    g_h1, g_W2, g_b2 = linear_backward(h1, W2, g_z2)
    g_z1 = activation_backward(activation, z1, g_h1)
    _, g_W1, g_b1 = linear_backward(x, W1, g_z1)
    # W1 and W2 are used twice: in their layer and in the weight-decay term.
    g_W1 += weight_decay * W1
    g_W2 += weight_decay * W2
    grads = {"z2": g_z2, "h1": g_h1, "z1": g_z1, "W2": g_W2, "b2": g_b2, "W1": g_W1, "b1": g_b1}
    return float(loss), grads


def train_sgd(
    params: dict[str, np.ndarray],
    x: np.ndarray,
    targets: np.ndarray,
    activation: str,
    weight_decay: float,
    lr: float,
    steps: int,
) -> tuple[list[float], dict[str, np.ndarray]]:
    params = {name: value.copy() for name, value in params.items()}
    losses = []
    for _ in range(steps):
        loss, grads = mlp_gradients(params, x, targets, activation, weight_decay)
        losses.append(loss)
        for name in params:
            params[name] -= lr * grads[name]
    return losses, params
