"""Kata 03 — broadcasting: the rules, and what they mean for gradients.

Broadcasting lets one op combine tensors of different shapes, and it never copies. What
the rule is, how a view repeats data, and what it means for gradients: `kata lesson`.

Rules: the library's own broadcasting helpers and matrix products are off-limits while your
functions run (``torch.broadcast_shapes``/``broadcast_tensors``/``broadcast_to``,
``Tensor.expand``/``expand_as``, ``Tensor.sum_to_size``, ``matmul``/``@``/``bmm``/``mm``/
``einsum``/``tensordot``, and autograd's ``backward``/``grad``). Indexing with ``None``,
``unsqueeze``, ``as_strided``, elementwise arithmetic and ``sum`` are yours to use.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import torch


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape that ``shapes`` broadcast to, like ``torch.broadcast_shapes``.

    Any number of shapes (zero shapes give ``()``); sizes may be 0 (0 and 1 broadcast to 0).
    Plain Python: return a tuple of ints. For incompatible shapes raise ValueError with a
    message that names the two sizes that clash.

    Example:
        >>> broadcast_shapes((2, 1, 3), (4, 1), ())
        (2, 4, 3)
        >>> broadcast_shapes((2, 3), (4, 3))
        Traceback (most recent call last):
        ValueError: dim -2: sizes 2 and 4 cannot broadcast (they differ and neither is 1) in shapes ((2, 3), (4, 3))
    """
    raise NotImplementedError("broadcast_shapes: see `kata lesson`, or `kata hint` for a nudge")


def broadcast_tensors(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every tensor as a VIEW of the common broadcast shape, like ``torch.broadcast_tensors``.

    No copies: each result shares its input's storage, with the shape, strides and offset
    torch gives it. Inputs may be non-contiguous or offset into a larger storage.
    Incompatible shapes raise ValueError.

    Example:
        >>> a, b = broadcast_tensors(torch.ones(3, 1), torch.zeros(4))
        >>> a.shape, a.stride(), b.shape, b.stride()
        (torch.Size([3, 4]), (1, 0), torch.Size([3, 4]), (0, 1))
    """
    raise NotImplementedError("broadcast_tensors: see `kata lesson`, or `kata hint` for a nudge")


def sum_to_shape(grad: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Un-broadcast a gradient: sum ``grad`` down to ``shape``, like ``grad.sum_to_size(shape)``.

    ``grad`` has the broadcast shape of an op whose input had ``shape`` (so ``shape``
    broadcasts to ``grad.shape``). The result has exactly ``shape``; it is the gradient
    autograd gives that input. A ``shape`` that does not broadcast to ``grad.shape`` (more
    dims, or a size that is neither grad's nor 1) raises ValueError.

    Example:
        >>> g = torch.ones(2, 3, 4)
        >>> sum_to_shape(g, (3, 1))
        tensor([[8.],
                [8.],
                [8.]])
    """
    raise NotImplementedError("sum_to_shape: see `kata lesson`, or `kata hint` for a nudge")


def batched_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for stacks of matrices, written with broadcasting only: no loops, no matmul.

    Shapes: ``a`` is (*batch_a, n, k), ``b`` is (*batch_b, k, m); the batch dims broadcast
    against each other (like ``torch.matmul``); the result is (*batch, n, m) with
    ``result[..., i, j] = sum_p a[..., i, p] * b[..., p, j]``. No Python loops: the number
    of torch calls you make must not grow with any size.

    Example:
        >>> a = torch.arange(6.).reshape(2, 3)          # (n, k) = (2, 3), no batch
        >>> b = torch.ones(4, 3, 1)                      # batch (4,), (k, m) = (3, 1)
        >>> batched_matmul(a, b).shape
        torch.Size([4, 2, 1])
        >>> batched_matmul(a, b)[0].flatten().tolist()
        [3.0, 12.0]
    """
    raise NotImplementedError("batched_matmul: see `kata lesson`, or `kata hint` for a nudge")
