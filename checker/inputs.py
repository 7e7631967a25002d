"""Inputs that expose mistakes: an edge-case corpus that runs every time, then random draws.

A verdict must not depend on the seed, so every input family here is a fixed corpus of the
cases that decide correctness followed by random draws. How a check uses each tool:

* **Shapes** — ``for label, shape in shape_cases(rng, ndim):`` gives size 0, size 1, all
  ones and repeated sizes (always, in that order) and then distinct random sizes (which expose
  transposes). ``random_shape`` (checker.helpers) stays the distinct-sizes draw.
* **Layouts** — ``for label, x in layouts(t):`` (checker.helpers) gives ``t``'s values as
  contiguous, transposed, permuted-dense, gapped rows, every-other-column, offset in a larger
  storage, and with zero strides on its size-1 dims; a 0-d ``t`` comes contiguous and at an
  offset. ``expanded(shape, dim)`` is a broadcast input (stride 0 on a dim of size > 1):
  a function that writes to its input must refuse it, one that reads it must cope.
* **Hyper-parameters** — ``for lr in boundary_draws(rng, 1e-4, 1e-1, at=(0.0,), log=True):``
  runs each value in ``at`` (every boundary where behaviour changes: 0 weight decay, beta2
  close to 1, ``steps=0``, ``keepdim`` both ways) and then ``draws`` random values.

Label every case in the failure message (``f"{label} shape {shape}"``) so that the learner
sees which input decided.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from checker.helpers import random_shape


def edge_shapes(ndim: int, *, big: int = 3) -> list[tuple[str, tuple[int, ...]]]:
    """The fixed corpus of ``ndim``-d shapes: a size-0 dim, a size-1 dim, all ones, repeats."""
    if ndim == 0:
        return [("0-d", ())]
    sizes = [big + 1 + i for i in range(ndim)]
    cases = [
        ("a size-0 dim", tuple(0 if i == ndim // 2 else s for i, s in enumerate(sizes))),
        ("a size-1 dim", tuple(1 if i == (ndim - 1) // 2 else s for i, s in enumerate(sizes))),
        ("all sizes 1", (1,) * ndim),
    ]
    if ndim >= 2:
        cases.append(("repeated sizes", (big,) * ndim))
    return cases


def shape_cases(rng: np.random.Generator, ndim: int, *, low: int = 2, high: int = 7,
                draws: int = 2) -> list[tuple[str, tuple[int, ...]]]:
    """:func:`edge_shapes`, then ``draws`` random shapes of distinct sizes in [low, high]."""
    cases = edge_shapes(ndim)
    cases += [(f"random shape {i + 1}", random_shape(rng, ndim, low, high)) for i in range(draws)]
    return cases


def expanded(shape: Sequence[int], dim: int = 0, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Random values of ``shape`` broadcast along ``dim`` (stride 0 there, one storage row)."""
    small = list(shape)
    small[dim] = 1
    return torch.randn(*small, dtype=dtype).expand(*shape)


def boundary_draws(rng: np.random.Generator, low: float, high: float, *,
                   at: Sequence[float] = (), draws: int = 2, log: bool = False,
                   integer: bool = False) -> list[float]:
    """Each boundary value in ``at`` first, then ``draws`` random values in [low, high]
    (log-uniform if ``log``; integers if ``integer``)."""
    if integer:
        randoms = [int(v) for v in rng.integers(int(low), int(high) + 1, size=draws)]
    elif log:
        randoms = [float(v) for v in np.exp(rng.uniform(np.log(low), np.log(high), size=draws))]
    else:
        randoms = [float(v) for v in rng.uniform(low, high, size=draws)]
    return [*at, *randoms]
