"""An alternative correct answer to kata 01 (strides): functional style, other algorithms."""

from __future__ import annotations

from functools import reduce
from itertools import accumulate


def contiguous_strides(shape):
    suffix = list(accumulate(reversed([max(s, 1) for s in shape[1:]]), lambda a, b: a * b))
    return tuple(reversed([1, *suffix])) if shape else ()


def storage_index(index, shape, strides, offset):
    if len(index) != len(shape):
        raise IndexError("rank mismatch")
    pos = offset
    for i, size, stride in zip(index, shape, strides, strict=True):
        j = i + size if i < 0 else i
        if j < 0 or j >= size:
            raise IndexError(f"{i} out of range")
        pos += j * stride
    return pos


def permute_meta(shape, strides, dims):
    n = len(shape)
    order = [d + n if d < 0 else d for d in dims]
    if len(order) != n or set(order) != set(range(n)):
        raise ValueError(f"{dims} is not a permutation")
    return tuple(shape[d] for d in order), tuple(strides[d] for d in order)


def is_contiguous(shape, strides):
    if 0 in shape:
        return True
    pairs = [(s, st) for s, st in zip(shape, strides, strict=True) if s != 1]
    expected = reduce(lambda acc, p: acc * p[0], pairs, 1)
    for size, stride in pairs:
        expected //= size
        if stride != expected:
            return False
    return True


def view_params(target):
    size, level = [], target
    while isinstance(level, list):
        size.append(len(level))
        level = level[-1] if level else None

    def at(idx):
        v = target
        for i in idx:
            v = v[i]
        return v

    zero = [0] * len(size)
    offset = at(zero)
    stride = []
    for d, n in enumerate(size):
        if n == 1:
            stride.append(1)
        else:
            idx = list(zero)
            idx[d] = n - 1
            stride.append((at(idx) - offset) // (n - 1))
    return tuple(size), tuple(stride), offset
