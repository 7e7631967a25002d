"""Kata 04 — dtypes and in-place ops: type promotion, the version counter, safe updates.

Three habits of PyTorch that surprise everyone once: the dtype an op returns, when an
in-place op breaks backward, and how to update a parameter in place. `kata lesson` explains
the rules behind each.

Rules: predict, don't ask. While your functions run, ``torch.result_type``, ``torch.cat``,
``torch.stack``, ``unsqueeze`` and backward (``.backward()``, ``torch.autograd.grad``) are
off-limits. ``torch.promote_types(d1, d2)`` and ``torch.get_default_dtype()`` are allowed.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import torch

# The ops that `breaks_backward` asks about. `a` is the input, `b` the other input.
OPS = {
    "exp": lambda a: a.exp(),
    "sin": lambda a: a.sin(),
    "cos": lambda a: a.cos(),
    "log": lambda a: a.log(),
    "sqrt": lambda a: a.sqrt(),
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
    "relu": lambda a: a.relu(),
    "square": lambda a: a.square(),
    "abs": lambda a: a.abs(),
    "reciprocal": lambda a: a.reciprocal(),
    "softmax": lambda a: a.softmax(dim=-1),
    "neg": lambda a: -a,
    "sum": lambda a: a.sum(),
    "mean": lambda a: a.mean(),
    "clone": lambda a: a.clone(),
    "scale": lambda a: a * 3.0,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "matmul": lambda a, b: a @ b.T,
    "maximum": lambda a, b: torch.maximum(a, b),
    "pow": lambda a, b: a**b,
    "where": lambda a, b: torch.where(a > b, a, b),
}


def result_dtype(a: torch.Tensor | bool | int | float | complex,
                 b: torch.Tensor | bool | int | float | complex) -> torch.dtype:
    """The dtype of ``a + b`` — what ``torch.result_type(a, b)`` returns — by the rules.

    Each operand is a tensor (any number of dims, 0 included, any dtype) or a Python number
    (bool, int, float, complex); anything else raises TypeError. The answer must follow
    ``torch.get_default_dtype()`` when it changes. Returns a ``torch.dtype``.

    Example:
        >>> result_dtype(torch.ones(3, dtype=torch.int32), 2.5)
        torch.float32
        >>> result_dtype(torch.ones(3, dtype=torch.float16), torch.tensor(1.0, dtype=torch.float64))
        torch.float16
    """
    raise NotImplementedError("result_dtype: see `kata lesson`, or `kata hint` for a nudge")


def joined_shape(op: str, shapes: list[tuple[int, ...]], dim: int) -> tuple[int, ...]:
    """The shape of joining tensors of ``shapes`` along ``dim``, with plain arithmetic.

    ``op`` is ``"cat"`` (``torch.cat(ts, dim)``: joins along an existing dim),
    ``"stack"`` (``torch.stack(ts, dim)``: adds a new dim of size len(ts)) or
    ``"unsqueeze"`` (``ts[0].unsqueeze(dim)``, ``shapes`` has exactly one shape).
    Negative ``dim`` counts from the end of the *result's* dims for stack/unsqueeze and of the
    inputs' dims for cat. Raise IndexError when ``dim`` is out of range and ValueError when
    the shapes cannot be joined (an empty list, sizes that differ where they must match,
    different numbers of dims, cat of 0-dim tensors). No shape is the legacy ``(0,)``.

    Example:
        >>> joined_shape("cat", [(2, 3), (2, 5)], 1)
        (2, 8)
        >>> joined_shape("stack", [(2, 3), (2, 3)], -1)
        (2, 3, 2)
        >>> joined_shape("unsqueeze", [(2, 3)], 0)
        (1, 2, 3)
    """
    raise NotImplementedError("joined_shape: see `kata lesson`, or `kata hint` for a nudge")


def breaks_backward(op: str, victim: str) -> bool:
    """Does an in-place change of ``victim`` make the backward of ``OPS[op]`` fail?

    The scene (``a`` and ``b`` are float64 non-leaf tensors that require grad)::

        y = OPS[op](a)        # or OPS[op](a, b) for the two-input ops
        victim.mul_(1.0)      # victim is a ("input"), b ("other") or y ("output")
        y.backward(g)         # does this raise "... modified by an inplace operation"?

    Answer for every op of ``OPS`` and every victim that op has ("other" only for the
    two-input ops), without running backward. Returns a bool.

    Example:
        >>> breaks_backward("exp", "output")
        True
    """
    raise NotImplementedError("breaks_backward: see `kata lesson`, or `kata hint` for a nudge")


def sigmoid_layer(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``2 * sigmoid(x @ w + b) - 1``, rewritten so that backward works.

    x: (n, k), w: (k, m), b: (m,); returns (n, m). This version saves memory with in-place
    ops, but ``out.backward(g)`` fails with "... modified by an inplace operation"::

        h = x @ w
        h.add_(b)
        h.sigmoid_()
        h.mul_(2)
        h.sub_(1)
        return h

    Find the in-place op that breaks backward and change only that one: the in-place ops
    that are safe must stay in place (the checks read the ``_version`` of the tensor that
    autograd saved and of the result). Do not modify x, w or b.

    Example:
        >>> x, w, b = torch.zeros(1, 2), torch.ones(2, 3), torch.zeros(3)
        >>> sigmoid_layer(x, w, b)
        tensor([[0., 0., 0.]])
    """
    raise NotImplementedError("sigmoid_layer: see `kata lesson`, or `kata hint` for a nudge")


def sgd_update_(params: list[torch.Tensor], lr: float, weight_decay: float = 0.0) -> None:
    """One SGD step, in place: ``p <- p - lr * (p.grad + weight_decay * p)`` for each param.

    Every ``p`` is a leaf tensor that requires grad. Skip those whose ``.grad`` is None.
    Afterwards each parameter must be the *same* tensor object, in the same memory (same
    storage, same strides), still a leaf that requires grad with no ``grad_fn``, and its
    ``_version`` must have moved (so autograd knows it changed). Leave ``p.grad`` as it was
    and leave grad mode as you found it. Returns None.

    Example:
        >>> p = torch.ones(2, requires_grad=True); p.grad = torch.full((2,), 0.5)
        >>> sgd_update_([p], lr=0.1); p
        tensor([0.9500, 0.9500], requires_grad=True)
    """
    raise NotImplementedError("sgd_update_: see `kata lesson`, or `kata hint` for a nudge")
