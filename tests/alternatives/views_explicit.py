"""An alternative correct answer to kata 02 (views): other arithmetic, a copy via empty + copy_."""

from __future__ import annotations

import torch


def sliding_windows(x, size, step):
    *lead, n = x.shape
    count = 1 + (n - size) // step
    st = list(x.stride())
    return x.as_strided([*lead, count, size], [*st[:-1], st[-1] * step, st[-1]], x.storage_offset())


def expand(x, shape):
    shape = list(shape)
    if len(shape) < x.dim():
        raise ValueError("fewer dims than x")
    pad = len(shape) - x.dim()
    sizes = [1] * pad + list(x.shape)
    strides = [0] * pad + list(x.stride())
    out_sizes, out_strides = [], []
    for d, (want, have, stride) in enumerate(zip(shape, sizes, strides, strict=True)):
        if want == -1:
            if d < pad:
                raise ValueError("-1 for a new dim")
            want = have
        if want != have and have != 1:
            raise ValueError(f"dim {d}: {have} -> {want}")
        out_sizes.append(want)
        out_strides.append(stride if want == have and d >= pad else 0)
    return x.as_strided(out_sizes, out_strides, x.storage_offset())


def diagonal(x, offset=0):
    rows, cols = x.shape[-2:]
    r0, c0 = (0, offset) if offset >= 0 else (-offset, 0)
    length = min(rows - r0, cols - c0)
    if length <= 0:
        return x.as_strided((*x.shape[:-2], 0), (*x.stride()[:-2], x.stride(-2) + x.stride(-1)), 0)
    start = x.storage_offset() + r0 * x.stride(-2) + c0 * x.stride(-1)
    return x.as_strided((*x.shape[:-2], length), (*x.stride()[:-2], x.stride(-2) + x.stride(-1)), start)


def view_strides(shape, strides, new_shape):
    dims = [(s, st) for s, st in zip(shape, strides, strict=True) if s != 1]
    out = [None] * len(new_shape)
    j = len(new_shape) - 1
    i = len(dims) - 1
    while i >= 0:
        # one chunk: dims i0..i contiguous among themselves
        i0, numel = i, dims[i][0]
        while i0 > 0 and dims[i0 - 1][1] == dims[i0][1] * dims[i0][0]:
            i0 -= 1
            numel *= dims[i0][0]
        stride, got = dims[i][1], 1
        while j >= 0 and (got < numel or new_shape[j] == 1):
            if got == numel and new_shape[j] == 1:
                out[j] = stride * got
                j -= 1
                continue
            out[j] = stride * got
            got *= new_shape[j]
            j -= 1
        if got != numel:
            return None
        i = i0 - 1
    while j >= 0:
        if new_shape[j] != 1:
            return None
        out[j] = 1
        j -= 1
    return tuple(out)


def flatten(x, start_dim=0, end_dim=-1):
    if x.dim() == 0:
        return x.as_strided([1], [1], x.storage_offset())
    n = x.dim()
    start, end = (start_dim + n) % n, (end_dim + n) % n
    if end < start:
        raise ValueError("start_dim after end_dim")
    if start == end:
        return x
    merged = 1
    for s in x.shape[start:end + 1]:
        merged *= s
    new_shape = (*x.shape[:start], merged, *x.shape[end + 1:])
    st = view_strides(tuple(x.shape), tuple(x.stride()), new_shape)
    if st is not None:
        return x.as_strided(new_shape, st, x.storage_offset())
    out = torch.empty(new_shape, dtype=x.dtype)
    out.copy_(x.contiguous().as_strided(new_shape, out.stride()))
    return out
