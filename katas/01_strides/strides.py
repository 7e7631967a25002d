"""Kata 01 — strides: a tensor is (storage, offset, shape, strides).

A tensor does not own a grid of numbers: it is (storage, offset, shape, strides), a view
onto a flat 1-D storage. `kata lesson` explains how those four find an element.

Write each function below with plain Python arithmetic on tuples of ints.
Rules: no torch in these functions — the checks compare your answers with torch's own.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Strides of a freshly allocated (row-major, C-order) tensor of ``shape``: what
    ``torch.empty(shape).stride()`` gives, for every shape (sizes 0 and 1 included).

    Example:
        >>> contiguous_strides((2, 3, 4))
        (12, 4, 1)
        >>> contiguous_strides(())
        ()
    """
    raise NotImplementedError("contiguous_strides: see `kata lesson`, or `kata hint` for a nudge")


def storage_index(
    index: tuple[int, ...], shape: tuple[int, ...], strides: tuple[int, ...], offset: int
) -> int:
    """Position in the storage of the element at ``index`` of a tensor with this shape,
    strides and storage offset (what ``t[index]`` reads).

    Negative indices count from the end, like Python's. Raises IndexError for an index
    outside [-size, size) or an index whose length is not the tensor's number of dims.

    Example:
        >>> storage_index((1, 2), shape=(2, 3), strides=(3, 1), offset=4)
        9
        >>> storage_index((-1, 0), shape=(2, 3), strides=(1, 2), offset=0)
        1
    """
    raise NotImplementedError("storage_index: see `kata lesson`, or `kata hint` for a nudge")


def permute_meta(
    shape: tuple[int, ...], strides: tuple[int, ...], dims: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (shape, strides) of ``t.permute(dims)`` for a tensor with this shape and strides.

    ``dims`` may contain negative dims; dims that are not a permutation of the tensor's dims
    raise ValueError.

    Example:
        >>> permute_meta((2, 3, 4), (12, 4, 1), (2, 0, 1))
        ((4, 2, 3), (1, 12, 4))
    """
    raise NotImplementedError("permute_meta: see `kata lesson`, or `kata hint` for a nudge")


def is_contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """Whether a tensor with this shape and strides is contiguous in torch's sense: the
    answer ``t.is_contiguous()`` gives, for every shape and strides (sizes 0 and 1 included).

    Example:
        >>> is_contiguous((2, 3), (3, 1))
        True
        >>> is_contiguous((2, 1, 3), (3, 99, 1))
        True
        >>> is_contiguous((2, 3), (1, 2))
        False
    """
    raise NotImplementedError("is_contiguous: see `kata lesson`, or `kata hint` for a nudge")


def view_params(target: list) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Answer as data: the (size, stride, offset) that makes ``target`` out of arange storage.

    ``target`` is a nested list of ints (every row the same length) that was produced by
    ``torch.arange(n).as_strided(size, stride, offset).tolist()`` for some unknown
    size/stride/offset with non-negative strides. Return parameters that reproduce it:
    ``torch.arange(n).as_strided(size, stride, offset).tolist() == target``.

    Example:
        >>> view_params([[1, 3, 5], [2, 4, 6]])
        ((2, 3), (1, 2), 1)
    """
    raise NotImplementedError("view_params: see `kata lesson`, or `kata hint` for a nudge")
