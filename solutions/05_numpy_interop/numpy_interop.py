"""Reference solution for kata 05 — NumPy and PyTorch side by side."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(a: np.ndarray) -> torch.Tensor:
    # A dtype torch lacks (strings, objects, dates, longdouble): from_numpy raises TypeError.
    shareable = (
        a.flags.writeable
        and a.dtype.isnative
        and all(s >= 0 and s % a.itemsize == 0 for s in a.strides)
    )
    if not shareable:
        a = a.astype(a.dtype.newbyteorder("="), order="C")  # a fresh, writable, native copy
    return torch.from_numpy(a)


def to_array(t: torch.Tensor) -> np.ndarray:
    t = t.detach().resolve_conj().resolve_neg()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16; float32 holds each one exactly
        t = t.float()
    return t.numpy()


def port_standardize(x: torch.Tensor, axis: int) -> torch.Tensor:
    real = x if x.is_floating_point() else x.double()  # NumPy's std of integers is float64
    spread = real.std(dim=axis, keepdim=True, correction=0)
    peak = x.amax(dim=axis, keepdim=True)
    z = (x - peak) / (spread + 1)
    return z.permute(*range(x.dim() - 1, -1, -1))


def paired_noise(shape: tuple[int, ...], seed: int, dtype: str = "float64") -> tuple[torch.Tensor, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g, dtype=getattr(torch, dtype))
    a = np.random.default_rng(seed).standard_normal(shape, dtype=np.dtype(dtype))
    return t, a
