"""Known mistakes for the numpy_interop kata."""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake


def _ref():
    return _solution_of("numpy_interop")


# ----------------------------------------------------------------------------- to_tensor


@mistake("to_tensor", "torch.tensor(a) always copies: the tensor never shares the array's memory (and it refuses negative strides).")
def always_torch_tensor(a):
    import torch

    return torch.tensor(a)


@mistake("to_tensor", "torch.from_numpy(a) as it is: it refuses negative strides, foreign byte order and partial strides, and shares read-only memory.")
def plain_from_numpy(a):
    import torch

    return torch.from_numpy(a)


@mistake("to_tensor", "Copied only when torch refused: read-only memory was shared, so torch may write where NumPy promised no one would.")
def copy_only_when_refused(a):
    import torch

    try:
        return torch.from_numpy(a)
    except ValueError:
        return torch.from_numpy(a.astype(a.dtype.newbyteorder("="), order="C"))


@mistake("to_tensor", "Made every array contiguous first: a transposed or sliced array was copied though torch views any non-negative strides.")
def contiguous_first(a):
    import numpy as np

    return _ref().to_tensor(a if a.flags.c_contiguous else np.ascontiguousarray(a))


@mistake("to_tensor", "Lifted the read-only flag (a.flags.writeable = True) to share: the array's promise is broken, not kept.")
def lift_read_only_flag(a):
    import torch

    if not a.flags.writeable:
        try:
            a.flags.writeable = True
        except ValueError:
            pass
    if a.flags.writeable and a.dtype.isnative and all(
            s >= 0 and s % a.itemsize == 0 for s in a.strides):
        return torch.from_numpy(a)
    return _ref().to_tensor(a)


@mistake("to_tensor", "A dtype torch lacks (longdouble, dates, objects) was converted to float64 instead of refused.")
def unsupported_to_float64(a):
    import numpy as np

    try:
        return _ref().to_tensor(a)
    except TypeError:
        return _ref().to_tensor(np.asarray(a, dtype=np.float64))


# ----------------------------------------------------------------------------- to_array


@mistake("to_array", "t.numpy() as it is: it refuses tensors that require grad, conj and neg views, and dtypes NumPy lacks.")
def plain_numpy(t):
    return t.numpy()


@mistake("to_array", "detach().numpy(): right for requires_grad, but a lazy conj or neg bit and bfloat16 were left unhandled.")
def detach_numpy(t):
    return t.detach().numpy()


@mistake("to_array", "t.numpy(force=True) alone: NumPy has no bfloat16, so it must be converted first.", named=False)
def force_numpy(t):
    return t.numpy(force=True)


@mistake("to_array", "Went through DLPack after resolving the conj bit only: DLPack exports a neg view's raw memory, so the values come back with the wrong sign.", named=False)
def dlpack_drops_neg(t):
    import numpy as np
    import torch

    t = t.detach().resolve_conj()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return np.from_dlpack(t)


@mistake("to_array", "Made the tensor contiguous first: a transposed, sliced or expanded tensor was copied though NumPy views any strides.")
def contiguous_first_array(t):
    return _ref().to_array(t.contiguous())


@mistake("to_array", "np.array(t) copies: the array never shares the tensor's memory.")
def np_array_copy(t):
    import numpy as np

    return np.array(_ref().to_array(t))


@mistake("to_array", "bfloat16 was widened to float64, not float32 (the narrowest NumPy float that holds every bfloat16 exactly).", named=False)
def bfloat16_to_float64(t):
    import torch

    if t.dtype == torch.bfloat16:
        return t.detach().resolve_neg().double().numpy()
    return _ref().to_array(t)


# ----------------------------------------------------------------------------- port_standardize


@mistake("port_standardize", "torch's std divides by N - 1 (Bessel's correction); NumPy's std divides by N.")
def unbiased_std(x, axis):
    src = x if x.is_floating_point() else x.double()
    spread = src.std(dim=axis, keepdim=True)
    peak = x.amax(dim=axis, keepdim=True)
    return ((x - peak) / (spread + 1)).permute(*range(x.dim() - 1, -1, -1))


@mistake("port_standardize", "mT swaps the last two dims only; NumPy's .T reverses every axis (and a 1-d tensor has no mT).")
def m_transpose(x, axis):
    src = x if x.is_floating_point() else x.double()
    spread = src.std(dim=axis, keepdim=True, correction=0)
    return ((x - x.amax(dim=axis, keepdim=True)) / (spread + 1)).mT


@mistake("port_standardize", "transpose(0, -1) swaps the outermost dims only: right up to 3 dims, wrong for 4 (NumPy's .T reverses them all).")
def swap_outer_dims(x, axis):
    src = x if x.is_floating_point() else x.double()
    spread = src.std(dim=axis, keepdim=True, correction=0)
    out = (x - x.amax(dim=axis, keepdim=True)) / (spread + 1)
    return out.transpose(0, -1) if x.dim() > 1 else out


@mistake("port_standardize", "Used Tensor.T as in NumPy: deprecated beyond 2 dims (it warns once and will raise), and refused here.")
def numpy_style_T(x, axis):
    src = x if x.is_floating_point() else x.double()
    spread = src.std(dim=axis, keepdim=True, correction=0)
    return ((x - x.amax(dim=axis, keepdim=True)) / (spread + 1)).T


@mistake("port_standardize", "Integers were cast to float32, torch's default; NumPy's std of integers is float64.")
def ints_to_float32(x, axis):
    src = x if x.is_floating_point() else x.float()
    spread = src.std(dim=axis, keepdim=True, correction=0)
    return ((src - src.amax(dim=axis, keepdim=True)) / (spread + 1)).permute(*range(x.dim() - 1, -1, -1))


@mistake("port_standardize", "x.max(dim=...) returns (values, indices) in torch, not the values alone.")
def max_returns_pair(x, axis):
    src = x if x.is_floating_point() else x.double()
    spread = src.std(dim=axis, keepdim=True, correction=0)
    peak = x.max(dim=axis, keepdim=True)
    return ((x - peak[1]) / (spread + 1)).permute(*range(x.dim() - 1, -1, -1))


@mistake("port_standardize", "Ran the NumPy code on x.detach().numpy(): right values, but the result has no autograd graph.")
def through_numpy(x, axis):
    import torch

    a = x.detach().numpy()
    peak = a.max(axis=axis, keepdims=True)
    spread = a.std(axis=axis, keepdims=True)
    out = (a - peak) / (spread + 1)
    return torch.from_numpy(out.transpose(*range(out.ndim - 1, -1, -1)).copy())


# ----------------------------------------------------------------------------- paired_noise


@mistake("paired_noise", "Seeded the global generators (torch.manual_seed, np.random.seed): every other caller's random stream was reset.")
def global_seeds(shape, seed, dtype="float64"):
    import numpy as np
    import torch

    torch.manual_seed(seed)
    t = torch.randn(shape, dtype=getattr(torch, dtype))
    np.random.seed(seed)
    return t, np.random.default_rng(seed).standard_normal(shape, dtype=np.dtype(dtype))


@mistake("paired_noise", "The legacy NumPy stream (RandomState / np.random.seed, MT19937) instead of default_rng's PCG64: other numbers for the same seed.")
def legacy_random_state(shape, seed, dtype="float64"):
    import numpy as np

    t, _ = _ref().paired_noise(shape, seed, dtype)
    return t, np.random.RandomState(seed).standard_normal(shape).astype(dtype)


@mistake("paired_noise", "Drew float64 and cast to float32: a float32 draw is its own stream, not a float64 draw rounded.")
def draw_float64_then_cast(shape, seed, dtype="float64"):
    import numpy as np

    t, a = _ref().paired_noise(shape, seed, "float64")
    return t.to(getattr(__import__("torch"), dtype)), a.astype(np.dtype(dtype))


@mistake("paired_noise", "One generator made once and kept: its stream moves on with every call, so the same seed stops giving the same numbers.", named=False)
def shared_generator(shape, seed, dtype="float64", _kept={}):  # noqa: B006 - the mistake itself
    import numpy as np
    import torch

    if seed not in _kept:
        _kept[seed] = (torch.Generator().manual_seed(seed), np.random.default_rng(seed))
    g, r = _kept[seed]
    return (torch.randn(shape, generator=g, dtype=getattr(torch, dtype)),
            r.standard_normal(shape, dtype=np.dtype(dtype)))


@mistake("paired_noise", "Gave NumPy the torch draws (t.numpy()): one seed does not make both libraries draw the same numbers.")
def numpy_from_torch(shape, seed, dtype="float64"):
    t, _ = _ref().paired_noise(shape, seed, dtype)
    return t, t.numpy().copy()
