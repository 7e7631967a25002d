"""Guards around every call into learner code, and exact-type assertions for check authors.

Every function a check reaches through ``impl.NAME(...)`` runs inside :func:`guarded` (the
``Impl`` wrapper of checker.learner calls it), so no check has to remember to:

* **Input guard** — the caller's tensors, arrays, lists, dicts and sets passed in must come
  back unchanged (values, shape, strides, offset, dtype, ``requires_grad``), unless the
  contract says in place. A function named like PyTorch's in-place methods (``sgd_update_``)
  may change its first argument; anything else a contract changes is declared in the check
  module, at import::

      from checker.contracts import in_place
      in_place("step", "params", "state")     # step() updates these two arguments

* **State guard** — global state must be as it was: grad mode, inference mode, default
  dtype, anomaly mode (and its NaN check), intra-op thread count, deterministic algorithms,
  and the global RNGs of torch, NumPy and ``random``. A function whose contract draws random
  numbers from the global generators is declared with ``uses_global_rng("init_weights")``.
  A leak is undone at once (so a later exercise never pays for it) and fails the exercise
  whose call leaked, naming the call and what changed.

Both guards also run when the learner's function raises: a function that must raise has to
leave its inputs and the global state alone too. Checks that call learner *classes* (given
back as they are) can guard a block themselves: ``with guarded("Linear.forward", args):``.

:func:`assert_exact_type` is the third tool: ``assert_exact_type(got, expected, what)``
requires ``type(got) is type(expected)`` all the way down (a tuple is not a list, a bool not
an int, an int not a float, a ``torch.Size`` not a tuple).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from checker.helpers import describe, fail
from checker.observed import _snapshot, observe, unobserved  # noqa: F401  (bound with the judge)

_IN_PLACE: dict[str, set[str]] = {}
_USES_RNG: set[str] = set()


def in_place(function: str, *params: str) -> None:
    """Declare that ``function`` changes the named parameters of its caller in place."""
    _IN_PLACE.setdefault(function, set()).update(params)


def uses_global_rng(function: str) -> None:
    """Declare that ``function`` draws from the global random generators by contract."""
    _USES_RNG.add(function)


# ----------------------------------------------------------------------------- state


# Bound at import, before learner code runs: a later patch of torch does not fool the guard.
_STATE_READERS = {
    "grad mode (torch.is_grad_enabled())": torch.is_grad_enabled,
    "inference mode (torch.is_inference_mode_enabled())": torch.is_inference_mode_enabled,
    "default dtype (torch.get_default_dtype())": torch.get_default_dtype,
    "anomaly mode (torch.is_anomaly_enabled())": torch.is_anomaly_enabled,
    "anomaly NaN check (torch.is_anomaly_check_nan_enabled())": torch.is_anomaly_check_nan_enabled,
    "thread count (torch.get_num_threads())": torch.get_num_threads,
    "deterministic algorithms (torch.are_deterministic_algorithms_enabled())":
        torch.are_deterministic_algorithms_enabled,
}
_RNG = {"torch's global RNG": (torch.get_rng_state, torch.set_rng_state),
        "NumPy's global RNG": (np.random.get_state, np.random.set_state),
        "Python's random module": (random.getstate, random.setstate)}
_SETTERS = (torch.set_grad_enabled, None, torch.set_default_dtype, None, None,
            torch.set_num_threads, torch.use_deterministic_algorithms)
_set_anomaly = torch.set_anomaly_enabled


def _state() -> dict[str, Any]:
    return {k: read() for k, read in _STATE_READERS.items()}


def _rng_state() -> dict[str, Any]:
    return {k: get() for k, (get, _) in _RNG.items()}


def _same_rng(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, tuple) and a and a[0] == "MT19937":
        return all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
                   for x, y in zip(a, b, strict=True))
    return a == b


def _restore(before: dict[str, Any], rng: dict[str, Any] | None) -> None:
    """Put back what can be put back (an inference mode left entered cannot: it is reported)."""
    values = list(before.values())
    for setter, value in zip(_SETTERS, values, strict=True):
        if setter is not None:
            setter(value)
    _set_anomaly(values[3], values[4])
    for k, value in (rng or {}).items():
        _RNG[k][1](value)


# ----------------------------------------------------------------------------- inputs


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(
            torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                  and torch.equal(a.nan_to_num(), b.nan_to_num())))
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _changed(param: str, before: Any, after: Any) -> str | None:
    if _same(before, after):
        return None
    if before and before[0] == "tensor" and after and after[0] == "tensor":
        fields = ("shape", "strides", "storage offset", "dtype", "requires_grad", "values")
        what = [f for f, x, y in zip(fields, before[1:], after[1:], strict=True) if not _same(x, y)]
        return f"`{param}` (its {', '.join(what)})"
    return f"`{param}`"


_SIGNATURES: dict[Any, Any] = {}


def _params(func: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    import inspect

    try:
        if func not in _SIGNATURES:
            _SIGNATURES[func] = inspect.signature(func)
        return dict(_SIGNATURES[func].bind_partial(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        return {**{f"argument {i + 1}": a for i, a in enumerate(args)}, **kwargs}


@contextlib.contextmanager
def guarded(name: str, func: Any, args: tuple = (), kwargs: dict | None = None) -> Iterator[None]:
    """Run a call to learner code ``name`` (``func(*args, **kwargs)``) under both guards."""
    named = _params(func, args, kwargs or {})
    exempt = set(_IN_PLACE.get(name, ()))
    if name.endswith("_") and not name.startswith("_") and named:
        exempt.add(next(iter(named)))
    with unobserved():
        watched = {k: (v, _snapshot(v)) for k, v in named.items() if k not in exempt}
        state = _state()
        rng = None if name in _USES_RNG else _rng_state()
    failure = None
    try:
        yield
    finally:
        with unobserved():
            after = _state()
            leaks = [f"{k}: {state[k]!r} before the call, {after[k]!r} after" for k in state
                     if state[k] != after[k]]
            if rng is not None:
                now = _rng_state()
                leaks += [f"{k}: reseeded or drawn from" for k in rng if not _same_rng(rng[k], now[k])]
            if leaks:
                _restore(state, rng)
                failure = (f"`{name}` changed global state and did not put it back:\n  "
                           + "\n  ".join(leaks) + "\n  A function must leave global state as it "
                           "found it: use a context manager (with torch.no_grad(): ...) or a local "
                           "torch.Generator instead of global settings. The state was restored.")
            else:
                changed = [c for k, (v, snap) in watched.items() if (c := _changed(k, snap, _snapshot(v)))]
                if changed:
                    failure = (f"`{name}` changed its input {', '.join(changed)}. Its contract "
                               "returns a result and leaves the caller's objects alone: work on a "
                               "copy (x.clone(), list(x), dict(x)) or out of place (x + y, not x += y).")
        if failure:  # raised here, in place of whatever the call raised
            fail(failure)


def call_guarded(name: str, func: Any, args: tuple, kwargs: dict, invoke: Any) -> Any:
    """``invoke()`` (which calls ``func(*args, **kwargs)`` under the kata's rules) inside both
    guards, observed for diagnosis (checker.diagnosis). The Impl wrapper's one entry point."""
    with guarded(name, func, args, kwargs):
        return observe(name, args, kwargs, invoke)


# ----------------------------------------------------------------------------- types


def assert_exact_type(got: Any, expected: Any, what: str, *, hint: str = "") -> None:
    """``type(got) is type(expected)``, recursively through tuples, lists and dicts."""
    def walk(g: Any, e: Any, where: str) -> None:
        if type(g) is not type(e):
            fail(f"{what}: {where or 'the result'} is a {type(g).__name__} ({describe(g)}); "
                 f"the contract promises a {type(e).__name__}."
                 + (f"\n  Try: {hint}" if hint else ""))
        if type(e) in (tuple, list) and len(g) == len(e):
            for i, (x, y) in enumerate(zip(g, e, strict=True)):
                walk(x, y, f"{where}[{i}]")
        if type(e) is dict:
            for k in e:
                if k in g:
                    walk(g[k], e[k], f"{where}[{k!r}]")

    walk(got, expected, "")
