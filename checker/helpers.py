"""Helpers for check authors: comparisons that teach, structural assertions, random inputs.

Every assertion raises :class:`CheckFailure` (an ``AssertionError``) whose message is what the
learner reads: what was expected, what came back, where they differ, and what to try.
Results from the learner are normalised first: a tensor must be a plain ``torch.Tensor``
(not a subclass that could fake comparisons), an array a plain ``numpy.ndarray``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

# Bound at import, before any learner code runs: later patches of torch do not reach these.
_Tensor = torch.Tensor
_ndarray = np.ndarray


class CheckFailure(AssertionError):
    """A check's verdict, worded for the learner."""


def fail(message: str) -> None:
    raise CheckFailure(message)


def _try(hint: str) -> str:
    """The "what to try" line that ends a failure message (nothing without a hint)."""
    return f"\n  Try: {hint}" if hint else ""


# ----------------------------------------------------------------------------- describing


def describe(t: Any) -> str:
    """One line: type, shape, strides, offset, dtype, device (or the value for non-tensors)."""
    if type(t) is _Tensor:
        return (
            f"tensor shape={tuple(t.shape)} stride={tuple(t.stride())} offset={t.storage_offset()} "
            f"dtype={str(t.dtype).replace('torch.', '')} device={t.device}"
        )
    if type(t) is _ndarray:
        return f"ndarray shape={t.shape} dtype={t.dtype}"
    text = repr(t)
    return f"{type(t).__name__} {text[:200]}"


def _fmt_index(idx: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _excerpt(t: Any, limit: int = 6) -> str:
    flat = np.asarray(t).reshape(-1)
    body = ", ".join(f"{v:.6g}" if isinstance(v, float | np.floating) else str(v) for v in flat[:limit])
    return f"[{body}{', ...' if flat.size > limit else ''}]"


# ----------------------------------------------------------------------------- normalising


def as_tensor_result(got: Any, what: str) -> torch.Tensor:
    """The learner's result as a plain tensor, or a failure saying what came back instead."""
    if type(got) is _Tensor:
        return got
    if isinstance(got, _Tensor):
        fail(
            f"{what}: returned a {type(got).__qualname__}, a subclass of torch.Tensor. "
            "Return a plain torch.Tensor."
        )
    fail(f"{what}: expected a torch.Tensor, got {describe(got)}.")
    raise AssertionError  # unreachable


def as_array_result(got: Any, what: str) -> np.ndarray:
    if type(got) is _ndarray:
        return got
    if isinstance(got, _ndarray):
        fail(f"{what}: returned a {type(got).__qualname__} (an ndarray subclass). Return a plain numpy.ndarray.")
    fail(f"{what}: expected a numpy.ndarray, got {describe(got)}.")
    raise AssertionError  # unreachable


def _plain(value: Any, what: str) -> Any:
    """Plain Python data (ints, floats, bools, str, None, tuples/lists of them), strictly typed."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (tuple, list):
        return type(value)(_plain(v, what) for v in value)
    if type(value) is torch.Size:
        return tuple(int(v) for v in value)
    fail(f"{what}: expected plain Python values, got {describe(value)}.")


# ----------------------------------------------------------------------------- comparing


def assert_equal(got: Any, expected: Any, what: str, *, hint: str = "") -> None:
    """Exact equality of plain Python data; tuples and lists are both accepted for sequences."""
    got_p = _plain(got, what)
    exp_p = _plain(expected, what)

    def norm(v: Any) -> Any:
        if type(v) in (tuple, list):
            return tuple(norm(x) for x in v)
        if type(v) is bool:
            return ("bool", v)
        return v

    if type(exp_p) is int and type(got_p) is bool or type(exp_p) is bool and type(got_p) is not bool:
        fail(f"{what}: expected {expected!r} ({type(expected).__name__}), got {got!r} ({type(got).__name__}).")
    if norm(got_p) != norm(exp_p):
        fail(f"{what}:\n  expected {exp_p!r}\n  got      {got_p!r}" + _try(hint))


def assert_close(
    got: Any,
    expected: torch.Tensor | np.ndarray,
    what: str,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = True,
    check_stride: bool = False,
    hint: str = "",
) -> None:
    """Compare a learner's tensor (or ndarray) with the reference, with a teaching message.

    Shape, dtype and device are checked first and shown side by side; then values, reporting
    the largest absolute and relative error and the index where it occurs.
    """
    if type(expected) is _ndarray:
        got_a = as_array_result(got, what)
        exp_a = expected
        got_desc, exp_desc = describe(got_a), describe(exp_a)
        header = f"{what}:\n  expected {exp_desc}\n  got      {got_desc}"
        if got_a.shape != exp_a.shape:
            fail(f"{header}\n  The shapes differ." + _try(hint))
        if check_dtype and got_a.dtype != exp_a.dtype:
            fail(f"{header}\n  The dtypes differ.")
        g = got_a.astype(np.float64) if got_a.dtype.kind in "fiub" else got_a
        e = exp_a.astype(np.float64) if exp_a.dtype.kind in "fiub" else exp_a
        dtype = None
    else:
        got_t = as_tensor_result(got, what)
        exp_t = expected
        header = f"{what}:\n  expected {describe(exp_t)}\n  got      {describe(got_t)}"
        if tuple(got_t.shape) != tuple(exp_t.shape):
            fail(f"{header}\n  The shapes differ." + _try(hint))
        if check_dtype and got_t.dtype != exp_t.dtype:
            fail(f"{header}\n  The dtypes differ." + _try(hint))
        if got_t.device != exp_t.device:
            fail(f"{header}\n  The devices differ.")
        if check_stride and got_t.stride() != exp_t.stride():
            fail(f"{header}\n  The strides differ." + _try(hint))
        if got_t.is_complex() or exp_t.is_complex():
            g = got_t.detach().cpu().resolve_conj().numpy()
            e = exp_t.detach().cpu().resolve_conj().numpy()
        else:  # bools and ints compare exactly as float64 (default tolerances are 0 for them)
            g = got_t.detach().cpu().to(torch.float64).numpy()
            e = exp_t.detach().cpu().to(torch.float64).numpy()
        dtype = exp_t.dtype
    if rtol is None or atol is None:
        if type(expected) is _ndarray:
            dt = expected.dtype
            default = (1e-7, 1e-10) if dt == np.float64 else (1.3e-6, 1e-5) if dt.kind == "f" else (0.0, 0.0)
        else:
            default = {
                torch.float64: (1e-7, 1e-10),
                torch.float32: (1.3e-6, 1e-5),
                torch.float16: (1e-3, 1e-5),
                torch.bfloat16: (1.6e-2, 1e-5),
            }.get(dtype, (0.0, 0.0))
        rtol = default[0] if rtol is None else rtol
        atol = default[1] if atol is None else atol
    if g.size == 0:
        return
    g_nan, e_nan = np.isnan(g), np.isnan(e)
    if np.any(g_nan != e_nan):
        idx = np.unravel_index(int(np.argmax(g_nan != e_nan)), g.shape)
        fail(
            f"{header}\n  NaN where the reference has {e[idx]!r} at index {_fmt_index(idx)} "
            f"(or the reverse). Look for 0/0, log of a negative, or inf - inf."
            + _try(hint)
        )
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(g_nan, 0.0, np.abs(g - e))
        same_inf = np.isinf(e) & (g == e)
        diff = np.where(same_inf, 0.0, diff)
        bad = diff > atol + rtol * np.abs(np.where(same_inf, 0, e))
    if not np.any(bad):
        return
    idx = np.unravel_index(int(np.argmax(np.where(bad, diff, -1))), g.shape)
    denom = np.abs(e[idx])
    rel = diff[idx] / denom if denom > 0 else math.inf
    n_bad = int(np.sum(bad))
    msg = (
        f"{header}\n  {n_bad} of {g.size} values differ (rtol={rtol:g}, atol={atol:g}). "
        f"Largest error at index {_fmt_index(idx)}: expected {e[idx]:.10g}, got {g[idx]:.10g} "
        f"(abs err {diff[idx]:.3g}, rel err {rel:.3g}).\n"
        f"  expected {_excerpt(e)}\n  got      {_excerpt(g)}"
    )
    fail(msg + _try(hint))


def assert_shares_storage(view: Any, base: torch.Tensor, what: str, *, hint: str = "") -> None:
    """The result must be a view into ``base``'s memory, not a copy."""
    view = as_tensor_result(view, what)
    if view.untyped_storage().data_ptr() != base.untyped_storage().data_ptr():
        fail(
            f"{what}: the result has its own memory; a view into the input was asked for.\n"
            f"  input  {describe(base)}\n  result {describe(view)}\n"
            "  Something made a copy (.clone(), .contiguous(), .reshape() of a non-viewable "
            "layout, torch.tensor(...), indexing with a list)."
            + _try(hint)
        )


def assert_not_shares_storage(result: Any, base: torch.Tensor, what: str, *, hint: str = "") -> None:
    result = as_tensor_result(result, what)
    if result.untyped_storage().data_ptr() == base.untyped_storage().data_ptr():
        fail(
            f"{what}: the result shares memory with the input; a copy was required here, "
            "otherwise writes to one change the other." + _try(hint)
        )


def expect_raises(
    exc_types: type[BaseException] | tuple[type[BaseException], ...],
    fn: Callable[[], Any],
    what: str,
    *,
    hint: str = "",
) -> BaseException:
    """``fn()`` must raise one of ``exc_types``; returns the exception."""
    try:
        result = fn()
    except exc_types as exc:
        return exc
    names = " or ".join(
        t.__name__ for t in (exc_types if isinstance(exc_types, tuple) else (exc_types,))
    )
    fail(f"{what}: expected {names} to be raised, but it returned {describe(result)}."
         + _try(hint))
    raise AssertionError  # unreachable


# ----------------------------------------------------------------------------- random inputs


def random_shape(rng: np.random.Generator, ndim: int, low: int = 2, high: int = 7) -> tuple[int, ...]:
    """A shape of ``ndim`` distinct sizes in [low, high] (distinct sizes expose transposes)."""
    if high - low + 1 < ndim:
        high = low + ndim - 1
    return tuple(int(v) for v in rng.choice(np.arange(low, high + 1), size=ndim, replace=False))


def randn(*shape: int, dtype: torch.dtype = torch.float64, requires_grad: bool = False) -> torch.Tensor:
    """Standard normal values from torch's global generator (seeded per check)."""
    return torch.randn(*shape, dtype=dtype).requires_grad_(requires_grad)


def layouts(t: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
    """The same values in several memory layouts: contiguous, transposed, permuted-dense,
    gapped rows, strided slice, offset, zero strides on size-1 dims (0-d: contiguous, offset).

    Each yielded tensor equals ``t`` elementwise; only its (storage, offset, strides) differ.
    Tensors of the same ``dim()`` get the same list of layouts (zip them freely).
    """
    yield "contiguous", t.clone()
    if t.dim() >= 2:
        yield "transposed storage", t.transpose(0, -1).contiguous().transpose(0, -1)
    if t.dim() >= 3:  # dense, but not in row-major order
        order = [*range(1, t.dim()), 0]
        back = sorted(range(t.dim()), key=order.__getitem__)
        yield "permuted dense", t.permute(order).contiguous().permute(back)
    if t.dim() >= 2:  # rows with a gap after each
        gapped = torch.zeros((*t.shape[:-1], t.shape[-1] + 3), dtype=t.dtype)
        gapped[..., : t.shape[-1]] = t
        yield "rows with a gap", gapped[..., : t.shape[-1]]
    wide = torch.zeros((*t.shape[:-1], t.shape[-1] * 2 + 1), dtype=t.dtype) if t.dim() else None
    if wide is not None:
        wide[..., 1::2] = t
        yield "every other column (offset 1, step 2)", wide[..., 1::2]
    big = torch.zeros(t.numel() + 5, dtype=t.dtype)
    big[5:] = t.reshape(-1)
    yield "offset 5 in a larger storage", big[5:].view(t.shape)
    if t.dim() >= 1:  # a size-1 dim's stride is free: 0 here, as expand leaves it
        base = t.contiguous().clone()
        strides = [0 if size == 1 else st for size, st in zip(t.shape, base.stride(), strict=True)]
        yield "zero strides on size-1 dims", base.as_strided(t.shape, strides)


# ----------------------------------------------------------------------------- pictures


def storage_strip(
    numel: int,
    expected: tuple[tuple[int, ...], tuple[int, ...], int] | None,
    got: tuple[tuple[int, ...], tuple[int, ...], int] | None,
    *,
    limit: int = 48,
) -> str:
    """Draw a storage as a strip of cells and mark which cells each view covers.

    ``expected`` and ``got`` are (shape, stride, offset). Cells: ``#`` covered by both,
    ``E`` only by the expected view, ``G`` only by yours, ``.`` by neither.
    """

    def cells(spec: tuple[tuple[int, ...], tuple[int, ...], int] | None) -> set[int]:
        if spec is None:
            return set()
        shape, stride, offset = spec
        out = {offset}
        for size, st in zip(shape, stride, strict=False):
            if size == 0:
                return set()
            out = {base + i * st for base in out for i in range(size)}
        return out

    e, g = cells(expected), cells(got)
    width = min(max([numel, *(c + 1 for c in e | g)] or [1]), limit)
    row = "".join(
        "#" if i in e and i in g else "E" if i in e else "G" if i in g else "." for i in range(width)
    )
    more = " ..." if max([numel, *(c + 1 for c in e | g)] or [0]) > limit else ""
    idx = "".join(str(i % 10) for i in range(width))
    lines = ["  storage  " + idx + more, "  cells    " + row + more]
    if expected:
        lines.append(f"  E expected: shape={expected[0]} stride={expected[1]} offset={expected[2]}")
    if got:
        lines.append(f"  G yours:    shape={got[0]} stride={got[1]} offset={got[2]}")
    lines.append("  (# both, E expected only, G yours only, . neither)")
    return "\n".join(lines)


def graph_lines(root: Any, limit: int = 30) -> list[str]:
    """A grad_fn graph as indented lines, depth first (each node printed once)."""
    lines: list[str] = []
    seen: set[int] = set()

    def walk(node: Any, depth: int) -> None:
        if node is None or len(lines) >= limit:
            return
        name = type(node).__name__
        if name == "AccumulateGrad":
            var = node.variable
            name = f"AccumulateGrad(leaf {tuple(var.shape)})"
        if id(node) in seen:
            lines.append("  " * depth + name + " (again)")
            return
        seen.add(id(node))
        lines.append("  " * depth + name)
        for child, _ in getattr(node, "next_functions", ()):
            walk(child, depth + 1)

    walk(root, 0)
    return lines


def graph_picture(expected_root: Any, got_root: Any) -> str:
    """The expected and the learner's grad_fn graphs side by side, first difference marked."""
    e, g = graph_lines(expected_root), graph_lines(got_root)
    width = max([len(x) for x in e] + [len("expected")]) + 2
    out = [f"  {'expected'.ljust(width)}yours"]
    marked = False
    for i in range(max(len(e), len(g))):
        left = e[i] if i < len(e) else ""
        right = g[i] if i < len(g) else ""
        mark = "  "
        if not marked and left != right:
            mark, marked = "> ", True
        out.append(f"{mark}{left.ljust(width)}{right}")
    return "\n".join(out)


def trajectory_picture(expected: Sequence[float], got: Sequence[float], height: int = 8) -> str:
    """A small text plot of two loss curves (``e`` reference, ``g`` yours, ``*`` both)."""
    n = max(len(expected), len(got))
    if n == 0:
        return ""
    values = [v for v in list(expected) + list(got) if math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    span = hi - lo or 1.0
    cols = min(n, 60)
    grid = [[" "] * cols for _ in range(height)]

    def put(series: Sequence[float], ch: str) -> None:
        for c in range(cols):
            i = int(c * (len(series) - 1) / max(cols - 1, 1)) if len(series) > 1 else 0
            if i >= len(series) or not math.isfinite(series[i]):
                continue
            r = height - 1 - int((series[i] - lo) / span * (height - 1))
            grid[r][c] = "*" if grid[r][c] not in (" ", ch) else ch

    put(expected, "e")
    put(got, "g")
    rows = [f"  {hi:10.4g} |" + "".join(grid[0])]
    rows += ["             |" + "".join(r) for r in grid[1:-1]]
    rows.append(f"  {lo:10.4g} |" + "".join(grid[-1]))
    rows.append("             +" + "-" * cols + f"  steps 0..{n - 1}   (e reference, g yours, * both)")
    return "\n".join(rows)


def opcheck_failures(op: Any, args: tuple, utils: tuple[str, ...]) -> dict[str, Any]:
    """``torch.library.opcheck(op, args)`` over the tests ``utils``: those that did not
    succeed, by name (opcheck's warnings silenced). What opcheck itself raises propagates."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = torch.library.opcheck(op, args, test_utils=utils, raise_exception=False)
    return {name: r for name, r in results.items() if r != "SUCCESS"}


def opcheck_message(failed: dict[str, Any], what: str, clean: Callable[[str], str],
                    hints: dict[str, str] | None = None) -> str:
    """What :func:`opcheck_failures` found, as a failure: each failed test's first line
    (through ``clean``, which hides generated names), then the hint of each that has one."""
    def first(result: Any) -> str:
        text = str(result).strip()
        return text.splitlines()[0] if text else ""

    lines = "\n".join(f"    {name}: {type(r).__name__}: {clean(first(r))}"
                      for name, r in failed.items())
    specific = "".join(f"  Try: {(hints or {})[n]}\n" for n in failed if n in (hints or {}))
    return f"torch.library.opcheck({what}) failed:\n{lines}\n{specific}".rstrip()


def skip_guard_latency_profile() -> None:
    """Dynamo times every new set of guards after flushing the CPU caches, only to log it
    (about 0.1 s of a small compile on a small machine). Checks count compiles and never
    read that figure, so the measurement is replaced by a zero."""
    try:
        import torch._dynamo.guards as guards
    except ImportError:  # a torch without dynamo: nothing to skip
        return
    if hasattr(guards, "profile_guard_manager"):
        guards.profile_guard_manager = lambda *args, **kwargs: 0.0


def require_torch(version: str, *paths: str) -> None:
    """Skip the check when this torch lacks an API it needs (``paths`` like
    "torch.compiler.reset"), saying which torch brought it."""
    import pytest

    for path in paths:
        obj = torch
        for part in path.split(".")[1:]:
            obj = getattr(obj, part, None)
            if obj is None:
                pytest.skip(f"needs torch >= {version}: this torch ({torch.__version__}) has no {path}")


def learner_caller(try_instead: str) -> Callable[..., Any]:
    """A kata's ``call(what, fn, *args, **kwargs)``: it runs the learner's code (``fn`` taken
    from ``impl``, so under the kata's rules) and turns a forbidden API into a failure ending
    in "Try: ``try_instead``". A stub's NotImplementedError passes through."""
    from checker.sandbox.errors import ForbiddenAPI

    def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except ForbiddenAPI as exc:
            fail(f"{what}: {exc}.\n  Try: {try_instead}")

    return call
