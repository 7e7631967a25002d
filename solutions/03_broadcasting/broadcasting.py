"""Reference solution for kata 03 — broadcasting."""

from __future__ import annotations

import torch


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    ndim = max((len(s) for s in shapes), default=0)
    result = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape):
            d = ndim - len(shape) + i  # right-aligned
            if size == result[d] or size == 1:
                continue
            if result[d] == 1:
                result[d] = size
            else:
                raise ValueError(
                    f"dim {d - ndim}: sizes {result[d]} and {size} cannot broadcast "
                    f"(they differ and neither is 1) in shapes {shapes}"
                )
    return tuple(result)


def broadcast_tensors(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    shape = broadcast_shapes(*(tuple(t.shape) for t in tensors))
    out = []
    for t in tensors:
        new = len(shape) - t.dim()
        strides = [0] * new + [
            0 if size == 1 and target != 1 else stride
            for size, stride, target in zip(t.shape, t.stride(), shape[new:], strict=True)
        ]
        out.append(t.as_strided(shape, strides, t.storage_offset()))
    return tuple(out)


def sum_to_shape(grad: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    lead = grad.dim() - len(shape)
    if lead < 0:
        raise ValueError(f"cannot sum a {grad.dim()}-d gradient to {len(shape)} dims")
    if lead:
        grad = grad.sum(dim=tuple(range(lead)))
    dims = tuple(d for d, size in enumerate(shape) if size == 1 and grad.shape[d] != 1)
    if dims:
        grad = grad.sum(dim=dims, keepdim=True)
    if tuple(grad.shape) != tuple(shape):
        raise ValueError(f"a gradient of shape {tuple(grad.shape)} does not broadcast from {shape}")
    return grad


def batched_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(dim=-2)
