"""Diagnosis by behaviour: name a known mistake only when the learner's code acts like it.

Sharing a failure message is not enough (two different slips can trip the same assertion).
A mistake of the failing exercise is named only when its outputs equal the learner's

1. on the failing input (the last call of the exercise's function in the failing check),
2. on at least two further inputs where that mistake and the reference disagree,
3. and on every other input the check feeds the function (so a mistake is never named for
   code that behaves differently somewhere the check looks).

The inputs come from the check itself. While a check runs with diagnosis on, the calls into
learner code through ``impl`` are counted (checker.contracts.call_guarded calls
:func:`observe`; counting costs nothing noticeable). On a failure the reference runs the same
check under the same seed, recording each call's inputs: its n-th call of the exercise's
function, where n is the learner's count, is the failing input (the guards keep learner code
off the global RNG, so the check drew the same inputs for both). The pool of further inputs
comes in batches: that run and the runs of the exercise's other checks under their seeds;
then, only while a candidate lacks evidence or several candidates still match, the same
checks under a few further fixed seeds (a later input may tell two candidates apart). Each
candidate mistake and the learner's function are called on a copy of each input; outputs
are compared with their structure (type, shape, strides, offset, dtype, which argument a
result aliases, what the call did to its arguments) and values (floats to 1e-5 relative).

Several mistakes are returned only when no input seen tells them apart, the most specific
first (the one that disagrees with the reference on the most inputs: it explains the most
of what went wrong); two shipped mistakes that no input can tell apart are one mistake.
An exercise that checks drive through learner classes (no recorded calls) falls back to the
check's outcome: the same failure text on the failing seed and on two further seeds on which
the mistake fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from checker.observed import (  # noqa: F401  (the recording layer, below the guards)
    Call,
    _context,
    counting,
    fresh,
    observe,
    outcome,
    recording,
)
from checker.seeding import seed_everything

_MAX_POOL = 150


def _tolerance(dtype: Any) -> tuple[float, float]:
    """(rtol, atol) for telling two outcomes apart: far above the rounding of code that
    orders the same arithmetic differently, far below a slip's effect. float64 is held to
    1e-9: a slip that shows only in the sixth digit (a float32 bias correction in a float64
    step) still tells, where the checks' own tolerance catches it."""
    import numpy as np
    import torch

    wide = dtype in (torch.float64, torch.complex128) or (
        isinstance(dtype, np.dtype) and dtype.itemsize >= (16 if dtype.kind == "c" else 8))
    return (1e-9, 1e-12) if wide else (1e-5, 1e-8)


def alike(a: Any, b: Any) -> bool:
    """Equal outcomes: exact structure, floating values to a relative 1e-9 in double
    precision (Python floats included) and 1e-5 in single and half (see _tolerance)."""
    import numpy as np
    import torch

    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.is_floating_point() or a.is_complex():
            rtol, atol = _tolerance(a.dtype)
            return bool(torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
        return bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype.kind not in "fc":
            return bool(np.array_equal(a, b))
        rtol, atol = _tolerance(a.dtype)
        return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
    if isinstance(a, float):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(alike(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(alike(a[k], b[k]) for k in a)
    return a == b


def call_on(fn: Callable[..., Any], inputs: tuple, guard: str | None = None) -> Any:
    """The outcome of ``fn`` on a fresh copy of ``inputs``, under the call's recorded context;
    ``guard``: the name to run trusted code under the learner's guards with (the outcome is
    then "raised CheckFailure" where the guards would fail the learner)."""
    import torch

    from checker.contracts import call_guarded
    from checker.sandbox.dispatch import judge_code

    with judge_code():  # the diagnosis' own set-up is the judge's, not the learner's
        args, kwargs = fresh(inputs[:2])
        dtype, grad = inputs[2]
        saved = _context()
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        generators = _generators()
        seed_everything(0)  # the same draws for every function called (dropout, say)
    try:
        result = (call_guarded(guard, fn, args, kwargs, lambda: fn(*args, **kwargs)) if guard
                  else fn(*args, **kwargs))
    except Exception as exc:
        return ("raised", type(exc).__name__)
    finally:
        with judge_code():
            torch.set_default_dtype(saved[0])
            torch.set_grad_enabled(saved[1])
            _generators(generators)
    with judge_code():
        try:
            return outcome(result, args, kwargs)
        except Exception as exc:  # a result that cannot even be copied (a broken as_strided)
            return ("unreadable result", type(exc).__name__)


def _generators(states: tuple | None = None) -> tuple:
    """The global generators' states (Python's, NumPy's, torch's); with ``states``, restored."""
    import random

    import numpy as np
    import torch

    if states is not None:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


@dataclass(frozen=True)
class Candidate:
    id: str
    misconception: str
    fn: Callable[..., Any]  # the mistake's function (trusted code: called directly)


def failing_input(trace: list[Call], exercise: str, count: int) -> tuple | None:
    """The inputs of the ``count``-th call of ``exercise`` in ``trace`` (1-based)."""
    calls = [c for c in trace if c.name == exercise]
    return calls[count - 1].inputs if 0 < count <= len(calls) else None


NOT_RUN = "(the check cannot be run again here)"


def run_check(item: Any, impl: Any, seed: int) -> tuple[list[Call], str | None]:
    """The check function of ``item`` run with ``impl`` under ``seed``, its calls recorded:
    (calls, the failure's text or None). Arguments it takes besides ``impl``, ``rng``,
    ``seed`` and its parameters come from its own last run; without them: ([], NOT_RUN)."""
    import numpy as np

    from checker.verdict import signature

    params = getattr(getattr(item, "callspec", None), "params", {})
    known = {"impl": impl, "rng": np.random.default_rng(seed), "seed": seed, **params}
    saved = getattr(item, "funcargs", None) or {}
    names = [n for n in item.fixturenames if n in item._fixtureinfo.argnames]
    if any(n not in known and n not in saved for n in names):
        return [], NOT_RUN
    seed_everything(seed)
    with recording() as trace:
        try:
            item.obj(**{n: known[n] if n in known else saved[n] for n in names})
        except Exception as exc:
            return trace, signature(exc)
    return trace, None


def by_behaviour(learner: Callable[..., Any], reference: Callable[..., Any],
                 candidates: list[Candidate], failing: tuple, pools: Iterable[list[Call]],
                 exercise: str, window: Callable[[], Any],
                 in_time: Callable[[], bool]) -> tuple[list[Candidate], list[Candidate]]:
    """(matches, unseen). Matches: the candidates whose outputs equal the learner's on
    ``failing`` and on every input where any candidate or the reference tells them apart,
    and that disagree with the reference on the failing input and on at least two more (a
    function of no arguments has no more: its one outcome decides); the most specific
    first. ``pools``: batches of recorded calls, the inputs of the failing check's own run
    first; a further batch is drawn only while some candidate still lacks
    that evidence, or while several match (a further input may tell them apart). Several are
    returned only when no input seen separates them. Unseen: the candidates whose outputs
    never differ from the reference's on the first batch (their slip shows later, e.g. in a
    backward pass), to be judged by the check's outcome instead; all of them when the
    learner's output on the failing input is the reference's. ``window()``: the kata's rules
    window, inside which the trusted code runs (under the learner's guards, too)."""
    mine = call_on(learner, failing)
    with window():
        if alike(mine, expected := call_on(reference, failing, exercise)):
            return [], list(candidates)
        first = {c.id: call_on(c.fn, failing, exercise) for c in candidates}
    alive = {c.id: c for c in candidates if alike(first[c.id], mine)}
    evidence = {cid: 0 for cid in alive}  # inputs beyond the failing one where it differs
    ever = {c.id: not alike(first[c.id], expected) for c in candidates}
    seen = {_key(failing)}
    for number, inputs in enumerate(_chunks(pools, exercise, seen)):
        judged = candidates if number == 0 else list(alive.values())
        with window():
            wanted = [call_on(reference, i, exercise) for i in inputs if in_time()]
            theirs = {c.id: [call_on(c.fn, i, exercise) for i in inputs[:len(wanted)]]
                      for c in judged}
        for cid, outs in theirs.items():
            ever[cid] = ever[cid] or any(not alike(o, e) for o, e in zip(outs, wanted, strict=True))
        for k, want in enumerate(wanted):  # an input tells when some candidate is not the reference
            tells = [cid for cid in theirs if not alike(theirs[cid][k], want)]
            if not tells or not alive:
                continue
            if not in_time():
                return [], []
            got = call_on(learner, inputs[k])
            for cid in list(alive):
                if not alike(theirs[cid][k], got):
                    del alive[cid]
                elif cid in tells:
                    evidence[cid] += 1
        if not alive or not in_time() or (
                len(alive) == 1 and all(evidence[cid] >= 2 for cid in alive)):
            break
    unseen = [c for c in candidates if not ever[c.id]]
    needed = 0 if failing[:2] == ((), {}) and len(seen) == 1 else 2
    found = sorted((c for c in alive.values() if evidence[c.id] >= needed),
                   key=lambda c: -evidence[c.id])
    return found, unseen


def _chunks(pools: Iterable[list[Call]], exercise: str, seen: set) -> Iterator[list[tuple]]:
    """The inputs of ``exercise`` in ``pools`` not yet in ``seen`` (which gets them), in
    chunks of at most ``_MAX_POOL``: a batch is drawn only when the one before is used up."""
    inputs: list[tuple] = []
    for batch in pools:
        for call in batch:
            if call.name != exercise or call.inputs is None:
                continue
            key = _key(call.inputs)
            if key not in seen:
                seen.add(key)
                inputs.append(call.inputs)
            if len(inputs) == _MAX_POOL:
                yield inputs
                inputs = []
        if inputs:
            yield inputs
            inputs = []


def _key(value: Any, depth: int = 0) -> Any:
    """A hashable fingerprint of an input (layout and values included), to drop repeats."""
    import numpy as np
    import torch

    if depth > 4:
        return "..."
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.device.type != "cpu":
            return ("tensor", id(value))
        data = value.detach()
        return ("tensor", tuple(data.shape), data.stride(), data.storage_offset(), str(data.dtype),
                data.resolve_conj().resolve_neg().contiguous().numpy().tobytes()
                if data.dtype not in (torch.bfloat16,) else data.float().numpy().tobytes())
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape, value.strides, str(value.dtype), value.tobytes())
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_key(v, depth + 1) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((repr(k), _key(v, depth + 1)) for k, v in value.items()))
    if value is None or isinstance(value, int | float | complex | str | bytes | bool):
        return (type(value).__name__, value)
    return (type(value).__name__, id(value))
