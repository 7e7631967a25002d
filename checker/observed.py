"""The recording layer under the guards: every guarded call into learner code passes through
:func:`observe`, which counts it while a check counts (checker.plugin) and records its inputs
and outcome while the diagnosis replays a check (checker.diagnosis). It sits below both the
guards (checker.contracts) and the diagnosis, and imports neither.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Open recordings and counts, innermost last. Stacks mutated in place, never rebound: the
# module is part of the judge the integrity snapshot compares after every learner call.
_TRACES: list[list[Call]] = []
_COUNTS: list[dict[str, int]] = []


@contextlib.contextmanager
def unobserved() -> Iterator[None]:
    """The guards' own torch work: the judge's, so the kata's dispatcher rules are off for it
    (a check may hold a rules window open around the call), and hidden from a check's
    TorchFunctionMode (an op counter must count the learner's calls only)."""
    from checker.sandbox.dispatch import judge_code

    with judge_code(), torch._C.DisableTorchFunction():
        yield


def _snapshot(value: Any, depth: int = 0) -> Any:
    """What must not change about ``value``: a copy of its contents and layout."""
    if depth > 4:
        return None
    if isinstance(value, torch.Tensor):
        with torch.no_grad():
            data = value.detach().clone() if value.layout == torch.strided and not value.is_meta else None
        return ("tensor", tuple(value.shape), value.stride() if value.layout == torch.strided
                else None, value.storage_offset() if value.layout == torch.strided else None,
                value.dtype, value.requires_grad, data)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape, value.strides, value.dtype, value.copy())
    if isinstance(value, list | tuple):
        return (type(value).__name__, len(value), [_snapshot(v, depth + 1) for v in value])
    if isinstance(value, dict):
        return ("dict", list(value.keys()), [_snapshot(v, depth + 1) for v in value.values()])
    if isinstance(value, set):
        return ("set", copy.copy(value))
    if value is None or isinstance(value, int | float | complex | str | bytes | torch.dtype):
        return value  # immutable: kept so that outcomes compare (see checker.diagnosis)
    return None


@dataclass
class Call:
    name: str
    inputs: tuple | None  # a deep copy of (args, kwargs) before the call, and its context
    outcome: Any


@contextlib.contextmanager
def recording() -> Iterator[list[Call]]:
    """Record every guarded call into learner code made inside the block."""
    _TRACES.append([])
    try:
        yield _TRACES[-1]
    finally:
        _TRACES.pop()


@contextlib.contextmanager
def counting() -> Iterator[dict[str, int]]:
    """Count the guarded calls into learner code made inside the block, per function name."""
    _COUNTS.append({})
    try:
        yield _COUNTS[-1]
    finally:
        _COUNTS.pop()


def observe(name: str, args: tuple, kwargs: dict, invoke: Callable[[], Any]) -> Any:
    """``invoke()``, counted while counting, recorded (inputs copied) while recording."""
    if _COUNTS:
        _COUNTS[-1][name] = _COUNTS[-1].get(name, 0) + 1
    trace = _TRACES[-1] if _TRACES else None
    if trace is None:
        return invoke()
    with unobserved():
        try:
            inputs = (*fresh((args, kwargs)), _context())
        except Exception:
            inputs = None
    try:
        result = invoke()
    except Exception as exc:
        trace.append(Call(name, inputs, ("raised", type(exc).__name__)))
        raise
    with unobserved():
        try:
            done = outcome(result, args, kwargs)
        except Exception as exc:
            done = ("unreadable result", type(exc).__name__)
        trace.append(Call(name, inputs, done))
    return result


def outcome(result: Any, args: tuple, kwargs: dict) -> Any:
    """What a call did: its result (with which argument it aliases) and its arguments after."""
    storages = [_ptr(a) for a in (*args, *kwargs.values())]
    aliases = _ptr(result)
    return (_snapshot(result), storages.index(aliases) if aliases in storages and aliases else -1,
            _snapshot((args, kwargs)))


def _ptr(value: Any) -> int | None:
    import torch

    if isinstance(value, torch.Tensor) and value.layout == torch.strided:
        return value.untyped_storage().data_ptr()
    return None


def fresh(value: Any) -> Any:
    """A deep copy of a call's inputs that keeps what ``copy.deepcopy`` drops and a contract
    may hinge on: a NumPy array's strides (negative ones too), byte order and read-only flag,
    and a tensor's conjugate and negative bits. Aliases stay aliases."""
    return _fresh(value, {})


def _fresh(value: Any, memo: dict) -> Any:
    import numpy as np
    import torch

    if id(value) in memo:
        return memo[id(value)]
    if type(value) is tuple:
        out = tuple(_fresh(v, memo) for v in value)
    elif type(value) is list:
        out = [_fresh(v, memo) for v in value]
    elif type(value) is dict:
        out = {k: _fresh(v, memo) for k, v in value.items()}
    elif type(value) is np.ndarray and value.size and value.dtype.kind != "O":
        out = _array_copy(value)
    elif type(value) is torch.Tensor and (value.is_conj() or value.is_neg()):
        with torch.no_grad():
            plain = value.detach().resolve_conj() if value.is_neg() else value.detach()
            if value.is_neg():  # the stored values: negate the resolved ones back
                out = torch._neg_view(copy.deepcopy(torch._neg_view(plain)))
            else:
                out = copy.deepcopy(plain.conj()).conj()
        out.requires_grad_(value.requires_grad)
    else:
        return copy.deepcopy(value, memo)
    memo[id(value)] = out
    return out


def _array_copy(a: Any) -> Any:
    """A copy of ``a`` laid out as ``a`` is: same dtype (byte order), strides and flags."""
    import numpy as np

    low = sum((n - 1) * s for n, s in zip(a.shape, a.strides, strict=True) if s < 0)
    high = sum((n - 1) * s for n, s in zip(a.shape, a.strides, strict=True) if s > 0)
    buffer = np.empty(high - low + a.itemsize, dtype=np.uint8)
    out = np.ndarray(a.shape, dtype=a.dtype, buffer=buffer, offset=-low, strides=a.strides)
    out[...] = a
    out.flags.writeable = a.flags.writeable
    return out


def _context() -> tuple:
    """The global settings a call ran under (a check may set them around it)."""
    import torch

    return (torch.get_default_dtype(), torch.is_grad_enabled())
