"""Reference solution for kata 04 — dtypes and in-place ops."""

from __future__ import annotations

import torch

OPS = {
    "exp": lambda a: a.exp(),
    "sin": lambda a: a.sin(),
    "cos": lambda a: a.cos(),
    "log": lambda a: a.log(),
    "sqrt": lambda a: a.sqrt(),
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
    "relu": lambda a: a.relu(),
    "square": lambda a: a.square(),
    "abs": lambda a: a.abs(),
    "reciprocal": lambda a: a.reciprocal(),
    "softmax": lambda a: a.softmax(dim=-1),
    "neg": lambda a: -a,
    "sum": lambda a: a.sum(),
    "mean": lambda a: a.mean(),
    "clone": lambda a: a.clone(),
    "scale": lambda a: a * 3.0,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "matmul": lambda a, b: a @ b.T,
    "maximum": lambda a, b: torch.maximum(a, b),
    "pow": lambda a, b: a**b,
    "where": lambda a, b: torch.where(a > b, a, b),
}

_COMPLEX_OF = {
    torch.float16: torch.complex32,
    torch.bfloat16: torch.complex64,
    torch.float32: torch.complex64,
    torch.float64: torch.complex128,
}


def _category(dtype: torch.dtype) -> int:
    if dtype == torch.bool:
        return 0
    if dtype.is_complex:
        return 3
    if dtype.is_floating_point:
        return 2
    return 1


def _combine(higher: torch.dtype | None, lower: torch.dtype | None) -> torch.dtype | None:
    """A higher-priority result meets a lower-priority one: only a higher category wins."""
    if higher is None:
        return lower
    if lower is None or _category(lower) <= _category(higher):
        return higher
    if _category(higher) == 2:  # float meets complex: keep the float's precision
        return _COMPLEX_OF[higher]
    return lower


def result_dtype(a, b) -> torch.dtype:
    kinds: dict[str, torch.dtype | None] = {"dim": None, "zero": None, "scalar": None}
    for x in (a, b):
        if isinstance(x, torch.Tensor):
            kind, dtype = ("zero" if x.dim() == 0 else "dim"), x.dtype
        elif isinstance(x, bool):
            kind, dtype = "scalar", torch.bool
        elif isinstance(x, int):
            kind, dtype = "scalar", torch.int64
        elif isinstance(x, float):
            kind, dtype = "scalar", torch.get_default_dtype()
        elif isinstance(x, complex):
            kind, dtype = "scalar", _COMPLEX_OF[torch.get_default_dtype()]
        else:
            raise TypeError(f"not a tensor or a Python number: {x!r}")
        have = kinds[kind]
        kinds[kind] = dtype if have is None else torch.promote_types(have, dtype)
    return _combine(kinds["dim"], _combine(kinds["zero"], kinds["scalar"]))


def joined_shape(op: str, shapes: list[tuple[int, ...]], dim: int) -> tuple[int, ...]:
    if not shapes:
        raise ValueError(f"{op} needs at least one tensor")
    first = tuple(shapes[0])
    n = len(first)
    if op == "unsqueeze":
        if len(shapes) != 1:
            raise ValueError("unsqueeze takes exactly one shape")
        shapes = [first]
    if op in ("stack", "unsqueeze"):
        if not -(n + 1) <= dim <= n:
            raise IndexError(f"dim {dim} is out of range [{-(n + 1)}, {n}]")
        d = dim % (n + 1)
        if any(tuple(s) != first for s in shapes):
            raise ValueError(f"{op} needs equal shapes, got {shapes}")
        count = 1 if op == "unsqueeze" else len(shapes)
        return first[:d] + (count,) + first[d:]
    if op != "cat":
        raise ValueError(f"unknown op {op!r}")
    if n == 0:
        raise ValueError("0-dim tensors cannot be concatenated")
    if not -n <= dim < n:
        raise IndexError(f"dim {dim} is out of range [{-n}, {n - 1}]")
    d = dim % n
    for s in shapes:
        if len(s) != n:
            raise ValueError(f"cat needs the same number of dims, got {first} and {tuple(s)}")
        if any(s[k] != first[k] for k in range(n) if k != d):
            raise ValueError(f"sizes must match except in dim {d}: {first} and {tuple(s)}")
    return first[:d] + (sum(s[d] for s in shapes),) + first[d + 1:]


# What each op's backward saves: "input"/"other" (its inputs) and/or "output" (its result).
_SAVED = {
    "exp": {"output"}, "sin": {"input"}, "cos": {"input"}, "log": {"input"},
    "sqrt": {"output"}, "tanh": {"output"}, "sigmoid": {"output"}, "relu": {"output"},
    "square": {"input"}, "abs": {"input"}, "reciprocal": {"output"}, "softmax": {"output"},
    "neg": set(), "sum": set(), "mean": set(), "clone": set(), "scale": set(),
    "add": set(), "sub": set(), "mul": {"input", "other"}, "div": {"input", "other"},
    "matmul": {"input", "other"}, "maximum": {"input", "other"},
    "pow": {"input", "other", "output"}, "where": set(),
}


def breaks_backward(op: str, victim: str) -> bool:
    return victim in _SAVED[op]


def sigmoid_layer(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    h = x @ w
    h.add_(b)  # mm saved x and w, not h; add saves nothing
    h.sigmoid_()  # saves its own output (h at its new version)
    h = h * 2  # out of place: mul_ would change what sigmoid saved
    h.sub_(1)  # the scalar mul saved nothing, so this is safe
    return h


def sgd_update_(params: list[torch.Tensor], lr: float, weight_decay: float = 0.0) -> None:
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            step = p.grad if weight_decay == 0 else p.grad + weight_decay * p
            p.sub_(step, alpha=lr)
