"""Reference solution for kata 02 — views."""

from __future__ import annotations

import torch


def sliding_windows(x: torch.Tensor, size: int, step: int) -> torch.Tensor:
    n = x.shape[-1]
    count = (n - size) // step + 1
    stride = x.stride()
    return x.as_strided(
        (*x.shape[:-1], count, size),
        (*stride[:-1], step * stride[-1], stride[-1]),
        x.storage_offset(),
    )


def expand(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    new = len(shape) - x.dim()
    if new < 0:
        raise ValueError(f"cannot expand a {x.dim()}-d tensor to {len(shape)} dims")
    sizes, strides = [], []
    for d, target in enumerate(shape):
        if d < new:
            if target < 0:
                raise ValueError(f"-1 is not allowed for the new leading dim {d}")
            sizes.append(target)
            strides.append(0)
            continue
        size, stride = x.shape[d - new], x.stride(d - new)
        if target == -1 or target == size:
            sizes.append(size)
            strides.append(stride)
        elif size == 1:
            sizes.append(target)
            strides.append(0)
        else:
            raise ValueError(f"cannot expand dim {d} of size {size} to {target}")
    return x.as_strided(tuple(sizes), tuple(strides), x.storage_offset())


def diagonal(x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    rows, cols = x.shape[-2], x.shape[-1]
    s_row, s_col = x.stride(-2), x.stride(-1)
    if offset >= 0:
        length = max(0, min(rows, cols - offset))
        start = offset * s_col
    else:
        length = max(0, min(rows + offset, cols))
        start = -offset * s_row
    if length == 0:
        start = 0
    return x.as_strided(
        (*x.shape[:-2], length),
        (*x.stride()[:-2], s_row + s_col),
        x.storage_offset() + start,
    )


def view_strides(
    shape: tuple[int, ...], strides: tuple[int, ...], new_shape: tuple[int, ...]
) -> tuple[int, ...] | None:
    # Split the old dims into chunks that are contiguous among themselves (size-1 dims never
    # break a chunk); each new dim must fall inside one chunk.
    chunks = []  # (numel, stride of the chunk's last dim)
    numel, base = 1, None
    for size, stride in reversed(list(zip(shape, strides, strict=True))):
        if size == 1:
            continue
        if base is not None and stride != numel * base:
            chunks.append((numel, base))
            numel, base = 1, None
        if base is None:
            base = stride
        numel *= size
    if base is not None:
        chunks.append((numel, base))
    # Walk the new shape from the right, filling each chunk.
    result = [0] * len(new_shape)
    d = len(new_shape) - 1
    for numel, base in chunks:
        filled = 1
        while d >= 0 and filled < numel:
            result[d] = filled * base
            filled *= new_shape[d]
            d -= 1
        if filled != numel:
            return None
        while d >= 0 and new_shape[d] == 1:
            result[d] = filled * base
            d -= 1
    while d >= 0:
        if new_shape[d] != 1:
            return None
        result[d] = 1
        d -= 1
    return tuple(result)


def flatten(x: torch.Tensor, start_dim: int = 0, end_dim: int = -1) -> torch.Tensor:
    if x.dim() == 0:
        return x.as_strided((1,), (1,))
    start, end = start_dim % x.dim(), end_dim % x.dim()
    if start > end:
        raise ValueError(f"start_dim {start_dim} comes after end_dim {end_dim}")
    merged = 1
    for size in x.shape[start:end + 1]:
        merged *= size
    new_shape = (*x.shape[:start], merged, *x.shape[end + 1:])
    strides = view_strides(tuple(x.shape), x.stride(), new_shape)
    if strides is not None:
        return x.as_strided(new_shape, strides, x.storage_offset())
    copy = x.contiguous()
    contiguous, running = [], 1
    for size in reversed(new_shape):
        contiguous.append(running)
        running *= max(size, 1)
    return copy.as_strided(new_shape, tuple(reversed(contiguous)))
