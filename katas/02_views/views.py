"""Kata 02 — views: views share storage; copies don't.

A view is a new (shape, strides, offset) over the SAME storage as its source: no data is
copied, a write through the view shows in the source, and both share one version counter
(``_version``). ``t._base`` names the tensor that owns the storage.

The inputs may be sliced, transposed or start at an offset into a larger storage; every
view below must read the same cells as torch's own.

Rules: the library's ready-made views are off-limits while your functions run
(``Tensor.unfold``, ``Tensor.expand``/``expand_as``, ``torch.broadcast_to``,
``torch.broadcast_tensors``, ``diagonal``/``diag``/``torch.linalg.diagonal``,
``view``/``view_as``, ``reshape``/``reshape_as``, ``flatten``/``ravel``).
``as_strided``, ``contiguous`` and plain indexing are yours to use.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import torch


def sliding_windows(x: torch.Tensor, size: int, step: int) -> torch.Tensor:
    """Every window of ``size`` consecutive elements along the LAST dim, ``step`` apart, as a view.

    Shapes: ``x`` is (..., n) with 1 <= size <= n and step >= 1; the result is
    (..., count, size), count being how many starts 0, step, 2 * step, ... leave room for a whole window, and
    ``result[..., w, j] == x[..., w * step + j]``. Zero copies: the result shares ``x``'s
    storage (this is what ``x.unfold(-1, size, step)`` returns).

    Example:
        >>> x = torch.arange(7.)
        >>> sliding_windows(x, size=3, step=2)
        tensor([[0., 1., 2.],
                [2., 3., 4.],
                [4., 5., 6.]])
        >>> sliding_windows(x, 3, 2).stride()
        (2, 1)
    """
    raise NotImplementedError("sliding_windows: see `kata lesson`, or `kata hint` for a nudge")


def expand(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``x`` broadcast to ``shape`` as a view, like ``x.expand(shape)``: no copy.

    ``shape`` may have more dims than ``x``; the new dims are added on the LEFT. A dim of
    size 1 may grow to any size; any other dim must keep its size (or be given as -1,
    meaning "keep"). The strides are those ``x.expand(shape)`` has. Raise ValueError when a
    dim of size other than 1 is asked to change size (grow or shrink), when ``shape`` has
    fewer dims than ``x``, or when a new leading dim is given as -1.

    Example:
        >>> x = torch.tensor([[1.], [2.]])          # shape (2, 1), stride (1, 1)
        >>> e = expand(x, (3, 2, 4))
        >>> e.shape, e.stride()
        (torch.Size([3, 2, 4]), (0, 1, 0))
        >>> e[2, 1].tolist()
        [2.0, 2.0, 2.0, 2.0]
    """
    raise NotImplementedError("expand: see `kata lesson`, or `kata hint` for a nudge")


def diagonal(x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """The diagonal of the last two dims as a view, like ``torch.diagonal(x, offset, -2, -1)``.

    Shapes: ``x`` is (..., rows, cols); the result is (..., length) with
    ``result[..., i] == x[..., i, i + offset]`` for offset >= 0 and
    ``x[..., i - offset, i]`` for offset < 0. ``length`` is how many such pairs fit
    (0 if none). Batch dims keep their strides.

    Example:
        >>> x = torch.arange(12.).reshape(3, 4)
        >>> diagonal(x, 1)
        tensor([ 1.,  6., 11.])
        >>> diagonal(x, 1).stride(), diagonal(x, 1).storage_offset()
        ((5,), 1)
    """
    raise NotImplementedError("diagonal: see `kata lesson`, or `kata hint` for a nudge")


def view_strides(
    shape: tuple[int, ...], strides: tuple[int, ...], new_shape: tuple[int, ...]
) -> tuple[int, ...] | None:
    """Can a tensor with this (shape, strides) be viewed as ``new_shape``? Its strides, or None.

    This is the rule behind ``Tensor.view`` (and behind ``reshape``'s choice between a view
    and a copy): return the strides that ``t.view(new_shape)`` would have, or None when
    no view is possible. ``new_shape`` has the same number of elements; no size is 0 and
    no -1 appears. The stride of a size-1 dim of the result is not checked.
    Plain arithmetic on tuples: no tensors needed.

    Example:
        >>> view_strides((4, 6), (6, 1), (2, 2, 3, 2))   # contiguous: always a view
        (12, 6, 2, 1)
        >>> view_strides((6, 4), (1, 6), (3, 2, 4))      # a transposed (4, 6): split dim 0
        (2, 1, 6)
        >>> view_strides((6, 4), (1, 6), (24,)) is None  # merging across the transpose
        True
    """
    raise NotImplementedError("view_strides: see `kata lesson`, or `kata hint` for a nudge")


def flatten(x: torch.Tensor, start_dim: int = 0, end_dim: int = -1) -> torch.Tensor:
    """Merge dims ``start_dim..end_dim`` (inclusive, negative dims allowed) into one.

    Like ``torch.flatten``: a VIEW of ``x`` whenever the merge can be a view (see
    ``view_strides``), otherwise a contiguous COPY — never a copy when a view is possible,
    never a view that reads the wrong cells. A 0-d ``x`` becomes shape (1,). When
    ``start_dim`` and ``end_dim`` name the same dim there is nothing to merge: return ``x``
    itself (as torch.flatten does) or a view of it. Raise ValueError when ``start_dim``
    comes after ``end_dim`` (negative dims wrapped first), as torch.flatten refuses it too.

    Example:
        >>> x = torch.arange(24.).reshape(2, 3, 4)
        >>> flatten(x, 1).shape, flatten(x, 1).stride()    # a view
        (torch.Size([2, 12]), (12, 1))
        >>> t = x.transpose(0, 2)                           # (4, 3, 2), strides (1, 4, 12)
        >>> flatten(t).is_contiguous()                      # a copy: no view can do it
        True
    """
    raise NotImplementedError("flatten: see `kata lesson`, or `kata hint` for a nudge")
