"""Reference solution for kata 01 — strides."""

from __future__ import annotations


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    running = 1
    for size in reversed(shape):
        strides.append(running)
        running *= max(size, 1)
    return tuple(reversed(strides))


def storage_index(
    index: tuple[int, ...], shape: tuple[int, ...], strides: tuple[int, ...], offset: int
) -> int:
    if not len(index) == len(shape) == len(strides):
        raise IndexError(f"index {index} does not match a {len(shape)}-d tensor")
    position = offset
    for i, size, stride in zip(index, shape, strides, strict=False):
        if not -size <= i < size:
            raise IndexError(f"index {i} is out of range for a dimension of size {size}")
        position += (i % size) * stride
    return position


def permute_meta(
    shape: tuple[int, ...], strides: tuple[int, ...], dims: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = len(shape)
    if any(not -n <= d < n for d in dims):
        raise ValueError(f"dims {dims}: a dim out of range for {n} dimensions")
    dims = tuple(d % n for d in dims)
    if sorted(dims) != list(range(n)):
        raise ValueError(f"dims {dims} is not a permutation of {n} dimensions")
    return tuple(shape[d] for d in dims), tuple(strides[d] for d in dims)


def is_contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    if any(size == 0 for size in shape):
        return True
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides), strict=False):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def view_params(target: list) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    size = []
    level = target
    while isinstance(level, list):
        size.append(len(level))
        level = level[0] if level else None
    first = target
    for _ in size:
        first = first[0]
    offset = first
    stride = []
    for d in range(len(size)):
        if size[d] < 2:
            stride.append(0)
            continue
        probe = target
        for k in range(len(size)):
            probe = probe[1 if k == d else 0]
        stride.append(probe - offset)
    return tuple(size), tuple(stride), offset
