"""An alternative correct answer to kata 03 (broadcasting): sets, None-indexing, reversed walks."""

from __future__ import annotations


def broadcast_shapes(*shapes):
    n = max((len(s) for s in shapes), default=0)
    out = []
    for d in range(n, 0, -1):
        sizes = {s[-d] for s in shapes if len(s) >= d}
        big = sizes - {1}
        if len(big) > 1:
            a, b = sorted(big)[:2]
            raise ValueError(f"sizes {a} and {b} cannot broadcast at dim -{d}")
        out.append(big.pop() if big else 1)
    return tuple(out)


def broadcast_tensors(*tensors):
    shape = broadcast_shapes(*[tuple(t.shape) for t in tensors])
    result = []
    for t in tensors:
        strides = []
        for d in range(1, len(shape) + 1):
            if d > t.dim() or (t.shape[-d] == 1 and shape[-d] != 1):
                strides.append(0)
            else:
                strides.append(t.stride(-d))
        result.append(t.as_strided(shape, tuple(reversed(strides)), t.storage_offset()))
    return tuple(result)


def sum_to_shape(grad, shape):
    shape = tuple(shape)
    if grad.dim() < len(shape):
        raise ValueError("too many dims")
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    for d, size in enumerate(shape):
        if size == 1 and grad.shape[d] != 1:
            grad = grad.sum(d, keepdim=True)
    if tuple(grad.shape) != shape:
        raise ValueError(f"{tuple(grad.shape)} does not reduce to {shape}")
    return grad


def batched_matmul(a, b):
    return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)
