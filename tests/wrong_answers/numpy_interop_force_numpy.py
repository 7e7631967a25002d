# A wrong answer to numpy_interop.to_array: t.numpy(force=True) alone: NumPy has no bfloat16, so it must be converted first.
# exercise: to_array
# It fails on every seed (tests/test_katas.py), but its failure cannot be told from
# another known mistake's by behaviour, so it is not shipped for the diagnosis.
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


# Known mistake force_numpy: t.numpy(force=True) alone: NumPy has no bfloat16, so it must be converted first.
import types as _kata_types  # noqa: E402

_kata_reference = _kata_types.SimpleNamespace(**dict(globals()))
_kata_namespace = {
    '__name__': '_known_numpy_interop',
    'mistake': lambda exercise, misconception: (lambda func: func),
    '_solution_of': lambda name: _kata_reference,
}
exec(compile('"""Known mistakes for the numpy_interop kata."""\n\nfrom __future__ import annotations\n\n\n\n\ndef _ref():\n    return _solution_of("numpy_interop")\n\n\n# ----------------------------------------------------------------------------- to_tensor\n\n\n@mistake("to_tensor", "torch.tensor(a) always copies: the tensor never shares the array\'s memory (and it refuses negative strides).")\ndef always_torch_tensor(a):\n    import torch\n\n    return torch.tensor(a)\n\n\n@mistake("to_tensor", "torch.from_numpy(a) as it is: it refuses negative strides, foreign byte order and partial strides, and shares read-only memory.")\ndef plain_from_numpy(a):\n    import torch\n\n    return torch.from_numpy(a)\n\n\n@mistake("to_tensor", "Copied only when torch refused: read-only memory was shared, so torch may write where NumPy promised no one would.")\ndef copy_only_when_refused(a):\n    import torch\n\n    try:\n        return torch.from_numpy(a)\n    except ValueError:\n        return torch.from_numpy(a.astype(a.dtype.newbyteorder("="), order="C"))\n\n\n@mistake("to_tensor", "Made every array contiguous first: a transposed or sliced array was copied though torch views any non-negative strides.")\ndef contiguous_first(a):\n    import numpy as np\n\n    return _ref().to_tensor(a if a.flags.c_contiguous else np.ascontiguousarray(a))\n\n\n@mistake("to_tensor", "Lifted the read-only flag (a.flags.writeable = True) to share: the array\'s promise is broken, not kept.")\ndef lift_read_only_flag(a):\n    import torch\n\n    if not a.flags.writeable:\n        try:\n            a.flags.writeable = True\n        except ValueError:\n            pass\n    if a.flags.writeable and a.dtype.isnative and all(\n            s >= 0 and s % a.itemsize == 0 for s in a.strides):\n        return torch.from_numpy(a)\n    return _ref().to_tensor(a)\n\n\n@mistake("to_tensor", "A dtype torch lacks (longdouble, dates, objects) was converted to float64 instead of refused.")\ndef unsupported_to_float64(a):\n    import numpy as np\n\n    try:\n        return _ref().to_tensor(a)\n    except TypeError:\n        return _ref().to_tensor(np.asarray(a, dtype=np.float64))\n\n\n# ----------------------------------------------------------------------------- to_array\n\n\n@mistake("to_array", "t.numpy() as it is: it refuses tensors that require grad, conj and neg views, and dtypes NumPy lacks.")\ndef plain_numpy(t):\n    return t.numpy()\n\n\n@mistake("to_array", "detach().numpy(): right for requires_grad, but a lazy conj or neg bit and bfloat16 were left unhandled.")\ndef detach_numpy(t):\n    return t.detach().numpy()\n\n\n@mistake("to_array", "t.numpy(force=True) alone: NumPy has no bfloat16, so it must be converted first.")\ndef force_numpy(t):\n    return t.numpy(force=True)\n\n\n@mistake("to_array", "Went through DLPack after resolving the conj bit only: DLPack exports a neg view\'s raw memory, so the values come back with the wrong sign.")\ndef dlpack_drops_neg(t):\n    import numpy as np\n    import torch\n\n    t = t.detach().resolve_conj()\n    if t.dtype == torch.bfloat16:\n        t = t.float()\n    return np.from_dlpack(t)\n\n\n@mistake("to_array", "Made the tensor contiguous first: a transposed, sliced or expanded tensor was copied though NumPy views any strides.")\ndef contiguous_first_array(t):\n    return _ref().to_array(t.contiguous())\n\n\n@mistake("to_array", "np.array(t) copies: the array never shares the tensor\'s memory.")\ndef np_array_copy(t):\n    import numpy as np\n\n    return np.array(_ref().to_array(t))\n\n\n@mistake("to_array", "bfloat16 was widened to float64, not float32 (the narrowest NumPy float that holds every bfloat16 exactly).")\ndef bfloat16_to_float64(t):\n    import torch\n\n    if t.dtype == torch.bfloat16:\n        return t.detach().resolve_neg().double().numpy()\n    return _ref().to_array(t)\n\n\n# ----------------------------------------------------------------------------- port_standardize\n\n\n@mistake("port_standardize", "torch\'s std divides by N - 1 (Bessel\'s correction); NumPy\'s std divides by N.")\ndef unbiased_std(x, axis):\n    src = x if x.is_floating_point() else x.double()\n    spread = src.std(dim=axis, keepdim=True)\n    peak = x.amax(dim=axis, keepdim=True)\n    return ((x - peak) / (spread + 1)).permute(*range(x.dim() - 1, -1, -1))\n\n\n@mistake("port_standardize", "mT swaps the last two dims only; NumPy\'s .T reverses every axis (and a 1-d tensor has no mT).")\ndef m_transpose(x, axis):\n    src = x if x.is_floating_point() else x.double()\n    spread = src.std(dim=axis, keepdim=True, correction=0)\n    return ((x - x.amax(dim=axis, keepdim=True)) / (spread + 1)).mT\n\n\n@mistake("port_standardize", "transpose(0, -1) swaps the outermost dims only: right up to 3 dims, wrong for 4 (NumPy\'s .T reverses them all).")\ndef swap_outer_dims(x, axis):\n    src = x if x.is_floating_point() else x.double()\n    spread = src.std(dim=axis, keepdim=True, correction=0)\n    out = (x - x.amax(dim=axis, keepdim=True)) / (spread + 1)\n    return out.transpose(0, -1) if x.dim() > 1 else out\n\n\n@mistake("port_standardize", "Used Tensor.T as in NumPy: deprecated beyond 2 dims (it warns once and will raise), and refused here.")\ndef numpy_style_T(x, axis):\n    src = x if x.is_floating_point() else x.double()\n    spread = src.std(dim=axis, keepdim=True, correction=0)\n    return ((x - x.amax(dim=axis, keepdim=True)) / (spread + 1)).T\n\n\n@mistake("port_standardize", "Integers were cast to float32, torch\'s default; NumPy\'s std of integers is float64.")\ndef ints_to_float32(x, axis):\n    src = x if x.is_floating_point() else x.float()\n    spread = src.std(dim=axis, keepdim=True, correction=0)\n    return ((src - src.amax(dim=axis, keepdim=True)) / (spread + 1)).permute(*range(x.dim() - 1, -1, -1))\n\n\n@mistake("port_standardize", "x.max(dim=...) returns (values, indices) in torch, not the values alone.")\ndef max_returns_pair(x, axis):\n    src = x if x.is_floating_point() else x.double()\n    spread = src.std(dim=axis, keepdim=True, correction=0)\n    peak = x.max(dim=axis, keepdim=True)\n    return ((x - peak[1]) / (spread + 1)).permute(*range(x.dim() - 1, -1, -1))\n\n\n@mistake("port_standardize", "Ran the NumPy code on x.detach().numpy(): right values, but the result has no autograd graph.")\ndef through_numpy(x, axis):\n    import torch\n\n    a = x.detach().numpy()\n    peak = a.max(axis=axis, keepdims=True)\n    spread = a.std(axis=axis, keepdims=True)\n    out = (a - peak) / (spread + 1)\n    return torch.from_numpy(out.transpose(*range(out.ndim - 1, -1, -1)).copy())\n\n\n# ----------------------------------------------------------------------------- paired_noise\n\n\n@mistake("paired_noise", "Seeded the global generators (torch.manual_seed, np.random.seed): every other caller\'s random stream was reset.")\ndef global_seeds(shape, seed, dtype="float64"):\n    import numpy as np\n    import torch\n\n    torch.manual_seed(seed)\n    t = torch.randn(shape, dtype=getattr(torch, dtype))\n    np.random.seed(seed)\n    return t, np.random.default_rng(seed).standard_normal(shape, dtype=np.dtype(dtype))\n\n\n@mistake("paired_noise", "The legacy NumPy stream (RandomState / np.random.seed, MT19937) instead of default_rng\'s PCG64: other numbers for the same seed.")\ndef legacy_random_state(shape, seed, dtype="float64"):\n    import numpy as np\n\n    t, _ = _ref().paired_noise(shape, seed, dtype)\n    return t, np.random.RandomState(seed).standard_normal(shape).astype(dtype)\n\n\n@mistake("paired_noise", "Drew float64 and cast to float32: a float32 draw is its own stream, not a float64 draw rounded.")\ndef draw_float64_then_cast(shape, seed, dtype="float64"):\n    import numpy as np\n\n    t, a = _ref().paired_noise(shape, seed, "float64")\n    return t.to(getattr(__import__("torch"), dtype)), a.astype(np.dtype(dtype))\n\n\n@mistake("paired_noise", "One generator made once and kept: its stream moves on with every call, so the same seed stops giving the same numbers.")\ndef shared_generator(shape, seed, dtype="float64", _kept={}):  # noqa: B006 - the mistake itself\n    import numpy as np\n    import torch\n\n    if seed not in _kept:\n        _kept[seed] = (torch.Generator().manual_seed(seed), np.random.default_rng(seed))\n    g, r = _kept[seed]\n    return (torch.randn(shape, generator=g, dtype=getattr(torch, dtype)),\n            r.standard_normal(shape, dtype=np.dtype(dtype)))\n\n\n@mistake("paired_noise", "Gave NumPy the torch draws (t.numpy()): one seed does not make both libraries draw the same numbers.")\ndef numpy_from_torch(shape, seed, dtype="float64"):\n    t, _ = _ref().paired_noise(shape, seed, dtype)\n    return t, t.numpy().copy()\n', '<embedded>', 'exec'), _kata_namespace)
to_array = _kata_namespace['force_numpy']
