"""An alternative correct answer to the numpy_interop kata: the other routes (as_tensor with a
try/except, np.asarray, fork_rng) and integers cast to float64 before anything else."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(a):
    if a.dtype.kind not in "biufc" or (a.dtype.kind in "fc" and a.dtype.itemsize > 16) or (
            a.dtype.kind == "f" and a.dtype.itemsize > 8):
        raise TypeError(str(a.dtype))
    if not a.flags.writeable:
        return torch.as_tensor(np.array(a, dtype=a.dtype.newbyteorder("="), copy=True))
    try:
        return torch.as_tensor(a)
    except ValueError:  # negative strides, partial-item strides, foreign byte order
        return torch.as_tensor(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")))


def to_array(t):
    t = t.detach()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    if t.dtype == torch.bfloat16:
        t = t.to(torch.float32)
    return np.asarray(t)


def port_standardize(x, axis):
    if not x.is_floating_point():
        x = x.to(torch.float64)
    peak = torch.max(x, dim=axis, keepdim=True).values
    mean = x.mean(dim=axis, keepdim=True)
    spread = ((x - mean) ** 2).mean(dim=axis, keepdim=True).sqrt()
    out = (x - peak) / (spread + 1)
    return out.permute(list(range(out.ndim))[::-1])


def paired_noise(shape, seed, dtype="float64"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t = torch.randn(tuple(shape), dtype={"float32": torch.float32, "float64": torch.float64}[dtype])
    a = np.random.Generator(np.random.PCG64(seed)).standard_normal(size=shape, dtype=dtype)
    return t, a
