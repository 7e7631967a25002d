"""Alternative correct answers for numpy_backprop: the reference, with the functions below in
place of its own (test material: each must pass `kata check numpy_backprop --file` on every seed)."""

from __future__ import annotations

import numpy as np

from checker.mistakes import _solution_of

_reference = _solution_of('numpy_backprop')
linear_backward = _reference.linear_backward
mlp_gradients = _reference.mlp_gradients


def activation_backward(kind: str, x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    derivative = {"relu": lambda: np.where(x > 0, 1.0, 0.0),
                  "tanh": lambda: 1.0 / np.cosh(x) ** 2}
    if kind not in derivative:
        raise ValueError(kind)
    return grad_out * derivative[kind]()


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    n, c = logits.shape
    lse = np.logaddexp.reduce(logits, axis=1)
    loss = np.mean(lse - logits[np.arange(n), targets])
    onehot = np.eye(c)[targets]
    return float(loss), (np.exp(logits - lse[:, None]) - onehot) / n


def train_sgd(
    params: dict[str, np.ndarray],
    x: np.ndarray,
    targets: np.ndarray,
    activation: str,
    weight_decay: float,
    lr: float,
    steps: int,
) -> tuple[list[float], dict[str, np.ndarray]]:
    losses = []
    for _ in range(steps):
        loss, grads = mlp_gradients(params, x, targets, activation, weight_decay)
        losses.append(loss)
        params = {name: value - lr * grads[name] for name, value in params.items()}
    return losses, params
