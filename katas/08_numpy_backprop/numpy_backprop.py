"""Kata 08 — numpy_backprop: manual backprop in NumPy, no torch at all.

Autograd is bookkeeping you can do by hand; here you do it, in NumPy, for a small network
(`kata lesson` shows the bookkeeping).

The network used throughout, for a batch x of shape (N, D) and integer class targets (N,):

    z1 = x @ W1.T + b1          W1 (H, D), b1 (H,)       -> z1 (N, H)
    h1 = act(z1)                act is "relu" or "tanh"  -> h1 (N, H)
    z2 = h1 @ W2.T + b2         W2 (C, H), b2 (C,)       -> z2 (N, C), the logits
    loss = mean over the batch of cross_entropy(z2, targets)
           + 0.5 * weight_decay * (sum(W1 ** 2) + sum(W2 ** 2))

Layers follow torch.nn.Linear's convention: a weight is (out_features, in_features).
Everything is float64; return plain numpy.ndarray results (and Python floats for losses),
new arrays every time: no function modifies its arguments.

Rules: this file may not import torch, anywhere, even inside a function — the checks compare
your gradients with torch's autograd (retain_grad on every intermediate), to a relative error
below 1e-7. Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import numpy as np


def linear_backward(
    x: np.ndarray, W: np.ndarray, grad_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of ``out = x @ W.T + b``: return ``(grad_x, grad_W, grad_b)``.

    Shapes: x (N, in), W (out, in), grad_out (N, out); the gradients have the shapes of
    x, W and b (out,). b itself is not needed.

    Example:
        >>> x = np.array([[1.0, 2.0]]); W = np.array([[3.0, 4.0]])
        >>> linear_backward(x, W, np.array([[10.0]]))
        (array([[30., 40.]]), array([[10., 20.]]), array([10.]))
    """
    raise NotImplementedError("linear_backward: see `kata lesson`, or `kata hint` for a nudge")


def activation_backward(kind: str, x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """Backward of ``act(x)`` for ``kind`` "relu" or "tanh", given the INPUT x.

    Match torch exactly, including ReLU at x == 0 (torch's ReLU has gradient 0 there).
    Any other kind raises ValueError.

    Example:
        >>> activation_backward("relu", np.array([-1.0, 0.0, 2.0]), np.array([5.0, 5.0, 5.0]))
        array([0., 0., 5.])
        >>> activation_backward("tanh", np.array([0.0]), np.array([3.0]))
        array([3.])
    """
    raise NotImplementedError("activation_backward: see `kata lesson`, or `kata hint` for a nudge")


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``logits`` (N, C) against integer ``targets`` (N,), and its gradient.

    Return ``(loss, grad_logits)``: loss as a Python float, equal to
    ``torch.nn.functional.cross_entropy(logits, targets)``; grad_logits (N, C). Logits can be
    large (hundreds): compute without overflow.

    Example:
        >>> loss, grad = softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))
        >>> round(loss, 4), grad
        (0.6931, array([[ 0.5, -0.5]]))
    """
    raise NotImplementedError("softmax_cross_entropy: see `kata lesson`, or `kata hint` for a nudge")


def mlp_gradients(
    params: dict[str, np.ndarray],
    x: np.ndarray,
    targets: np.ndarray,
    activation: str = "relu",
    weight_decay: float = 0.0,
) -> tuple[float, dict[str, np.ndarray]]:
    """Loss and every named gradient of the 2-layer MLP described in the module docstring.

    ``params`` holds "W1", "b1", "W2", "b2". Return ``(loss, grads)`` where ``grads`` has
    exactly the keys "z2", "h1", "z1", "W2", "b2", "W1", "b1": d loss / d that tensor, each
    shaped like it. Do not modify ``params``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> params = {"W1": rng.normal(size=(5, 3)), "b1": np.zeros(5),
        ...           "W2": rng.normal(size=(2, 5)), "b2": np.zeros(2)}
        >>> x, targets = rng.normal(size=(4, 3)), np.array([0, 1, 1, 0])
        >>> loss, grads = mlp_gradients(params, x, targets, "tanh", weight_decay=1e-2)
        >>> sorted(grads)
        ['W1', 'W2', 'b1', 'b2', 'h1', 'z1', 'z2']
        >>> grads["W1"].shape, grads["z2"].shape
        ((5, 3), (4, 2))
    """
    raise NotImplementedError("mlp_gradients: see `kata lesson`, or `kata hint` for a nudge")


def train_sgd(
    params: dict[str, np.ndarray],
    x: np.ndarray,
    targets: np.ndarray,
    activation: str,
    weight_decay: float,
    lr: float,
    steps: int,
) -> tuple[list[float], dict[str, np.ndarray]]:
    """Train the MLP with plain SGD on your own gradients: ``p = p - lr * grad`` per step.

    Return ``(losses, final_params)``: ``losses[i]`` is the loss computed at step i, before
    that step's update (``steps`` floats); ``final_params`` has the same keys as ``params``.
    The caller's ``params`` and its arrays must be left untouched.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> params = {"W1": rng.normal(size=(5, 3)), "b1": np.zeros(5),
        ...           "W2": rng.normal(size=(2, 5)), "b2": np.zeros(2)}
        >>> x, targets = rng.normal(size=(4, 3)), np.array([0, 1, 1, 0])
        >>> losses, trained = train_sgd(params, x, targets, "relu", 0.0, lr=0.5, steps=3)
        >>> len(losses), losses[-1] < losses[0]
        (3, True)
    """
    raise NotImplementedError("train_sgd: see `kata lesson`, or `kata hint` for a nudge")
