"""An alternative correct answer to the numpy_interop kata: DLPack both ways, with the
checks DLPack itself does not make (read-only memory, the negative bit) made by hand."""

from __future__ import annotations

import numpy as np
import torch

_TORCH_HAS = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "complex64", "complex128"}


def to_tensor(a):
    native = a.dtype.newbyteorder("=")
    if native.name not in _TORCH_HAS or native.fields is not None:
        raise TypeError(f"no torch dtype for {a.dtype}")
    if (not a.flags.writeable or not a.dtype.isnative
            or any(s < 0 or s % a.itemsize for s in a.strides)):
        a = np.require(a.astype(native), requirements=["C", "W", "O"])
    return torch.from_dlpack(a)


def to_array(t):
    t = t.detach()
    if t.is_neg():  # DLPack would hand over the raw, un-negated memory
        t = t.resolve_neg()
    if t.is_conj():
        t = t.resolve_conj()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return np.from_dlpack(t)


def port_standardize(x, axis):
    work = x if x.dtype in (torch.float32, torch.float64) else x.double()
    spread = torch.var(work, dim=axis, keepdim=True, unbiased=False).sqrt()
    values, _ = work.max(axis, keepdim=True)
    dims = tuple(reversed(range(x.dim())))
    return ((work - values) / (1 + spread)).permute(dims)


def paired_noise(shape, seed, dtype="float64"):
    g = torch.Generator()
    g.manual_seed(seed)
    t = torch.empty(shape, dtype=getattr(torch, dtype)).normal_(generator=g)
    a = np.random.default_rng(np.random.SeedSequence(seed)).standard_normal(shape, dtype=np.dtype(dtype))
    return t, a
