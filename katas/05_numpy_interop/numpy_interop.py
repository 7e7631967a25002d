"""Kata 05 — NumPy and PyTorch side by side: shared memory, defaults, APIs that bite, seeds.

NumPy and PyTorch can hand each other the same bytes without copying, and they look alike
enough that code moves between them by search and replace. It mostly works, and where it
does not it fails silently: a copy where you expected a view, a write into memory NumPy
promised nobody would change, float32 where NumPy gave float64, a ``std`` off by a factor,
a global seed that reseeds everyone. `kata lesson` explains each.

Rules: ``Tensor.T`` is off-limits (on anything but a matrix it is deprecated: it warns
once and will become an error; say what you mean with ``permute``, ``mT`` or
``transpose``). Every function must leave the global random generators of torch, NumPy
and ``random`` exactly as it found them.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """A tensor with ``a``'s values, shape and dtype, sharing ``a``'s memory whenever it may.

    Share (no copy: a write through either one shows in the other) when torch can view the
    array's memory as it is. Copy instead — a fresh tensor, with no link to ``a`` — when
    the array's layout or flags do not allow a safe view: strides torch cannot express,
    a byte order that is not the machine's, or memory NumPy marked read-only (a tensor is
    always writable, so a view would let torch write where NumPy promised no one would).
    An empty array has no memory to share: either is fine.
    The dtype is the torch dtype of the same name (``>f8`` is float64 too). A dtype torch has
    no counterpart for (strings, objects, dates, ``longdouble``, records) raises TypeError.
    Leave ``a`` as it was (values and flags).

    Example:
        >>> a = np.arange(6.0).reshape(2, 3)
        >>> t = to_tensor(a); t[0, 0] = 7.0; a[0, 0]
        np.float64(7.0)
        >>> to_tensor(a[:, ::-1])
        tensor([[2., 1., 7.],
                [5., 4., 3.]], dtype=torch.float64)
    """
    raise NotImplementedError("to_tensor: see `kata lesson`, or `kata hint` for a nudge")


def to_array(t: torch.Tensor) -> np.ndarray:
    """An ndarray with ``t``'s values and shape, sharing ``t``'s memory whenever it may.

    ``t`` is a CPU tensor of any dtype, any layout of strides (transposed, sliced, expanded),
    possibly requiring grad, possibly a lazily conjugated or negated view (``t.conj()`` of a
    complex tensor, ``t._neg_view()``), possibly an inference tensor.
    Share (a write into the array shows in ``t``) whenever the array can view ``t``'s
    memory as it is, element for element; copy only where NumPy could not read that memory
    as the values: a conjugate or negative bit (the memory holds the unconjugated, unnegated
    values), or a dtype NumPy lacks — bfloat16 becomes a float32 copy. Every other dtype
    keeps its name (``uint16`` stays ``uint16``). Leave ``t`` as it
    was (values, ``requires_grad``).

    Example:
        >>> w = torch.ones(2, 3, requires_grad=True)
        >>> a = to_array(w); a[0, 0] = 5.0; w[0, 0].item()
        5.0
        >>> to_array(torch.tensor([1.5, -2.0], dtype=torch.bfloat16)).dtype
        dtype('float32')
    """
    raise NotImplementedError("to_array: see `kata lesson`, or `kata hint` for a nudge")


def port_standardize(x: torch.Tensor, axis: int) -> torch.Tensor:
    """This NumPy function, ported to PyTorch: same values, same dtype, same shape::

        def standardize(a, axis):
            peak = a.max(axis=axis, keepdims=True)
            spread = a.std(axis=axis, keepdims=True)
            return ((a - peak) / (spread + 1)).T

    ``x`` has 1 to 4 dims and is float32, float64 or a signed integer dtype (its values are
    small: no integer arithmetic overflows); ``axis`` is any valid axis, negative included,
    and ``x.shape[axis] >= 1``. The answer is what ``standardize(x.numpy(), axis)`` returns,
    as a tensor: its dtype is NumPy's (an integer input gives float64), within float
    rounding. A float ``x`` may require grad: then the result must carry autograd's graph, so
    that ``backward`` reaches ``x`` with the right gradient. Do not modify ``x``.

    Example:
        >>> port_standardize(torch.tensor([[1, 2, 4], [3, 3, 3]]), axis=1)
        tensor([[-1.3350,  0.0000],
                [-0.8900,  0.0000],
                [ 0.0000,  0.0000]], dtype=torch.float64)
    """
    raise NotImplementedError("port_standardize: see `kata lesson`, or `kata hint` for a nudge")


def paired_noise(shape: tuple[int, ...], seed: int,
                 dtype: str = "float64") -> tuple[torch.Tensor, np.ndarray]:
    """Standard normal noise of ``shape`` from each library, reproducible from ``seed``.

    Returns ``(t, a)``: ``t`` a tensor of torch ``dtype`` ("float32" or "float64"), the
    normal draws of a torch generator seeded with ``seed``; ``a`` an ndarray of NumPy
    ``dtype``, the standard normal draws of NumPy's recommended generator (``default_rng``)
    seeded with ``seed``. Each is what its library draws directly in that dtype — not a draw
    in another dtype cast afterwards. The same arguments always give the same arrays,
    whatever ran before; and the global generators (torch's, NumPy's, ``random``'s) are
    neither drawn from nor reseeded. ``seed`` is an int in [0, 2**31).

    Example:
        >>> t, a = paired_noise((2, 3), seed=0)
        >>> t.dtype, a.dtype, t.shape, a.shape
        (torch.float64, dtype('float64'), torch.Size([2, 3]), (2, 3))
        >>> bool(torch.equal(t, paired_noise((2, 3), seed=0)[0]))
        True
    """
    raise NotImplementedError("paired_noise: see `kata lesson`, or `kata hint` for a nudge")
