"""Hidden checks for the kata compile_guards. Dynamo itself is the oracle.

Every compile goes to a counting backend (``CompileCounter``) or ``explain``; nothing reaches
inductor, so no C++ compiler is needed and each check stays well under a second on a CPU.
Every check resets dynamo (caches, counters, stance) before and after itself, inside its own
body: the diagnosis re-runs a check's body without its fixtures, so fixtures cannot do it.
Dynamo's ground truth for ``predict_compiles`` is cached per case, so a diagnosis re-run is
free; it is computed with zero-filled inputs so the cache never shifts torch's RNG stream.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

import pytest
import torch

from checker.contracts import guarded
from checker.helpers import (
    assert_close,
    describe,
    fail,
    random_shape,
    require_torch,
    skip_guard_latency_profile,
)

pytestmark = pytest.mark.kata("compile_guards")

try:
    import torch._dynamo
    from torch._dynamo.testing import CompileCounter
    from torch._dynamo.utils import counters, guard_failures
except ImportError:  # a torch without dynamo: every check skips (see _require_dynamo)
    CompileCounter = counters = guard_failures = None

if hasattr(torch, "_logging"):
    torch._logging.set_logs(dynamo=logging.ERROR)  # graph-break and recompile-limit warnings


if CompileCounter is not None:
    skip_guard_latency_profile()


def _require_dynamo() -> None:
    require_torch("2.6", "torch.compiler.reset", "torch.compiler.set_stance", "torch._dynamo.mark_dynamic",
             "torch._dynamo.explain")
    if CompileCounter is None or not hasattr(torch._dynamo.config, "recompile_limit"):
        pytest.skip("needs torch >= 2.6: torch._dynamo.config.recompile_limit is missing")


def _reset() -> None:
    torch.compiler.set_stance("default")  # a leaked stance must not reach the next check
    torch.compiler.reset()
    counters.clear()


@contextlib.contextmanager
def fresh_dynamo() -> Iterator[None]:
    """Dynamo as in a new process: no cached graphs, no counters, default stance — and again after."""
    _reset()
    try:
        yield
    finally:
        _reset()


# ----------------------------------------------------------------------------- what dynamo says


def _clean_reason(reason: str) -> str:
    """'0/1: lr == 0.1   #  # file.py:4 in f\\nUser stack...' -> 'lr == 0.1' (no ids, no paths)."""
    first = reason.strip().splitlines()[0] if reason.strip() else ""
    first = re.sub(r"^\d+/\d+: ", "", first)
    return first.split("  #")[0].split(" # ")[0].strip()


def guard_reasons() -> list[str]:
    """Every guard failure dynamo recorded since the last reset, cleaned, in order."""
    return [_clean_reason(r) for reasons in guard_failures.values() for r in reasons]


def _new_reasons(before: int) -> list[str]:
    seen: list[str] = []
    for r in guard_reasons()[before:]:
        if r and r not in seen:
            seen.append(r)
    return seen


def recompile_error_text(exc: BaseException) -> str:
    """A fail_on_recompile RuntimeError, without file names, line numbers or frame ids."""
    text = str(exc)
    if "fail_on_recompile" not in text:
        return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    reasons = [_clean_reason(line.strip()[2:]) for line in text.splitlines()
               if re.match(r"- \d+/\d+: ", line.strip())]  # not the "- User stack trace" lines
    reasons = list(dict.fromkeys(r for r in reasons if r))
    if not reasons:
        return ("dynamo was asked to compile under the 'fail_on_recompile' stance, and that "
                "stance forbids every compile — even the first one")
    return ("dynamo needed to recompile under the 'fail_on_recompile' stance, because a guard "
            "failed: " + "; ".join(reasons))


def _break_reasons(explained) -> list[str]:
    out = []
    for br in explained.break_reasons:
        lines = [ln.strip() for ln in str(getattr(br, "reason", br)).splitlines() if ln.strip()]
        text = lines[0] if lines else "?"
        explanation = next((ln for ln in lines[1:] if ln.startswith("Explanation:")), "")
        out.append(text + (f" ({explanation})" if explanation else ""))
    return out


def _call(what: str, fn, *args):
    """Run the learner's function; any exception becomes a failure that names it."""
    try:
        return fn(*args)
    except (NotImplementedError, AssertionError):  # the stub, or a guard's own failure
        raise
    except Exception as exc:
        fail(f"{what} raised {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")


# ----------------------------------------------------------------------------- predict_compiles


def _sin_plus_sum(x):
    return x.sin() + x.sum()


_TRUTH: dict[tuple, tuple[int, list[str]]] = {}


class _RecordingBackend:
    """A counting backend whose graphs say when they run: a call that compiled nothing and
    ran no graph ran eagerly (the recompile limit), whatever the guard log says."""

    def __init__(self) -> None:
        self.frame_count = 0
        self.ran: list[int] = []

    def __call__(self, gm, example_inputs):
        self.frame_count += 1
        number = self.frame_count

        def run(*args):
            self.ran.append(number)
            return gm.forward(*args)

        return run


def dynamo_timeline(shapes: list[tuple[int, ...]], dynamic: bool | None, limit: int) -> tuple[int, list[str]]:
    """(number of compiles, one line per call saying what dynamo did) — from dynamo itself."""
    key = (tuple(shapes), dynamic, limit)
    if key not in _TRUTH:
        lines = []
        with fresh_dynamo(), torch._dynamo.config.patch(recompile_limit=limit):
            backend = _RecordingBackend()
            compiled = torch.compile(_sin_plus_sum, backend=backend, dynamic=dynamic)
            for shape in shapes:
                before, n_reasons, n_ran = backend.frame_count, len(guard_reasons()), len(backend.ran)
                compiled(torch.zeros(shape))
                reasons = _new_reasons(n_reasons)
                ran = backend.ran[n_ran:]
                if backend.frame_count > before and not reasons:
                    lines.append(f"{shape}: compile #{backend.frame_count} (the first call)")
                elif backend.frame_count > before:
                    lines.append(f"{shape}: compile #{backend.frame_count}, because " + "; ".join(reasons))
                elif ran:
                    lines.append(f"{shape}: reused graph #{ran[0]} (its guards passed)")
                else:
                    lines.append(f"{shape}: no compile — the recompile limit ({limit}) was reached "
                                 "and no cached graph fits, so dynamo ran it eagerly")
            _TRUTH[key] = (backend.frame_count, lines)
    return _TRUTH[key]


def _check_predictions(impl, cases: list[tuple[list[tuple[int, ...]], bool | None, int | None]], hint: str) -> None:
    """A case whose limit is None calls predict_compiles without one: dynamo's default limit."""
    truths = [dynamo_timeline(shapes, dynamic, _DEFAULT_LIMIT if limit is None else limit)
              for shapes, dynamic, limit in cases]  # reference first
    with fresh_dynamo():  # the learner's prediction must not find a warm cache either
        _compare_predictions(impl, cases, truths, hint)


# Sequences that tell dynamo's rules apart from near misses, run on every seed before the
# random draws (the limit with a repeat after it; sizes 0 and 1 under dynamic=True; under the
# default, a dim whose first change is to size 1, a dynamic dim staying dynamic while another
# changes, an old specialised graph still in the cache, the limit with size-1 calls).
_DEFAULT_LIMIT = 8  # torch._dynamo.config.recompile_limit's default, as the stub's signature says
CORPUS: dict[str, list[tuple[list[tuple[int, ...]], bool | None, int | None]]] = {
    "test_predict_static": [
        ([(2, 3), (4, 5), (2, 3)], False, 1),
        ([(2, 3), (4, 5), (6, 7), (3, 2), (2, 3)], False, 2),
        ([(n,) for n in range(2, 12)], False, None),  # limit left out: dynamo's default
    ],
    "test_predict_dynamic_true": [
        ([(3,), (0,), (1,), (1,), (4,), (0,)], True, 8),
        ([(4, 3), (4, 1), (4, 0), (4, 5)], True, 2),
    ],
    "test_predict_automatic_dynamic": [
        ([(3, 4), (1, 4), (5, 4)], None, 8),
        ([(3, 4), (2, 4), (5, 4)], None, 8),
        ([(3, 4), (1, 4), (3, 6), (5, 7)], None, 8),
        ([(3, 4), (5, 4), (5, 6), (7, 8)], None, 8),
        ([(3, 4), (5, 4), (6, 7)], None, 8),
        ([(4, 2), (4, 3), (5, 3)], None, 8),
        ([(3, 4), (5, 4), (1, 4), (6, 4)], None, 8),
        ([(3, 4), (5, 4), (1, 4), (6, 7), (1, 5)], None, 2),
    ],
}


def _compare_predictions(impl, cases, truths, hint: str) -> None:
    for (shapes, dynamic, limit), (expected, timeline) in zip(cases, truths, strict=False):
        if limit is None:
            what = f"predict_compiles({shapes}, dynamic={dynamic}) (limit left out)"
            got = _call(what, impl.predict_compiles, list(shapes), dynamic)
        else:
            what = f"predict_compiles({shapes}, dynamic={dynamic}, limit={limit})"
            got = _call(what, impl.predict_compiles, list(shapes), dynamic, limit)
        if type(got) is not int:
            fail(f"{what}: expected an int, got {describe(got)}.")
        if got != expected:
            fail(
                f"{what}:\n  expected {expected} compiles\n  got      {got}\n"
                "  What dynamo did, call by call:\n    " + "\n    ".join(timeline)
                + f"\n  Try: {hint}"
            )


def _shape(rng, ndim: int, low: int = 2, high: int = 7) -> tuple[int, ...]:
    return random_shape(rng, ndim, low, high)


def _with(shape: tuple[int, ...], dim: int, size: int) -> tuple[int, ...]:
    out = list(shape)
    out[dim] = size
    return tuple(out)


def _other_size(rng, shape: tuple[int, ...], dim: int, low: int = 2, high: int = 9) -> int:
    """A new size for ``dim``: different from the old one and from the other dims' sizes."""
    choices = [s for s in range(low, high + 1) if s not in shape]
    return int(rng.choice(choices))


def _static_cases(rng) -> list:
    ndim = int(rng.integers(1, 3))
    pool = [_shape(rng, ndim) for _ in range(3)]
    repeats = [pool[0], pool[1], pool[0], pool[2], pool[1]]
    limit = int(rng.integers(2, 4))
    many = []
    while len(many) < limit + 2:
        s = _shape(rng, 2, 2, 8)
        if s not in many:
            many.append(s)
    many.append(many[0])
    return [(repeats, False, 8), (many, False, limit)]


def _dynamic_true_cases(rng) -> list:
    base = _shape(rng, 2, 2, 7)
    dim = int(rng.integers(0, 2))
    ones = [_with(base, dim, 1), base, _with(_shape(rng, 2, 2, 7), dim, 1), _shape(rng, 2, 2, 7)]
    plain = [_shape(rng, 3, 2, 8) for _ in range(3)]
    return [(ones, True, 8), (plain, True, 8)]


def _automatic_dynamic_cases(rng) -> list:
    a = _shape(rng, 2, 2, 7)
    b = _with(a, 0, _other_size(rng, a, 0))
    c = _with(b, 0, _other_size(rng, b, 0))
    d = _with(c, 1, _other_size(rng, c, 1))
    stepwise = [a, b, c, d, a]
    x = _shape(rng, 1, 2, 8)
    one_d = [x, (x[0] + 1,), (1,), (x[0] + 2,)]
    return [(stepwise, None, 8), (one_d, None, 8)]


def _prepared_from(make_cases):
    """Let a warm worker ask dynamo for a check's ground truth before the learner saves: the
    cases depend only on the check's rng, so the armed process computes them ahead (the
    cache is keyed by the cases themselves; a different seed simply misses it)."""
    def prepare(rng) -> None:
        if CompileCounter is not None and hasattr(torch._dynamo.config, "recompile_limit"):
            for shapes, dynamic, limit in make_cases(rng):
                dynamo_timeline(shapes, dynamic, limit)

    def mark(check):
        check.kata_prepare = prepare
        return check

    return mark


@pytest.mark.exercise("predict_compiles")
@_prepared_from(_static_cases)
def test_predict_static(impl, rng):
    """dynamic=False: one graph per distinct shape, a repeat is free, and the limit caps it."""
    _require_dynamo()
    _check_predictions(impl, CORPUS["test_predict_static"] + _static_cases(rng), "with dynamic=False every new shape is a new "
                       "graph, a shape seen before reuses its graph, and after `limit` graphs "
                       "dynamo stops compiling.")


@pytest.mark.exercise("predict_compiles")
@_prepared_from(_dynamic_true_cases)
def test_predict_dynamic_true(impl, rng):
    """dynamic=True: one graph for all sizes >= 2, but sizes 0 and 1 are specialised."""
    _require_dynamo()
    _check_predictions(impl, CORPUS["test_predict_dynamic_true"] + _dynamic_true_cases(rng), "dynamic=True makes every size symbolic "
                       "— except sizes 0 and 1, which are always specialised (a size-1 dim gets "
                       "its own graph).")


@pytest.mark.exercise("predict_compiles")
@_prepared_from(_automatic_dynamic_cases)
def test_predict_automatic_dynamic(impl, rng):
    """dynamic=None (the default): static first, then only the dims that changed go dynamic."""
    _require_dynamo()
    _check_predictions(impl, CORPUS["test_predict_automatic_dynamic"] + _automatic_dynamic_cases(rng), "the default compiles static first; "
                       "on a size change it recompiles with ONLY the dims that changed marked "
                       "dynamic (sizes 0/1 still specialise), and a dim that changes later costs "
                       "one more recompile.")


# ----------------------------------------------------------------------------- mark_batch_dynamic


def _marked_dims(t: torch.Tensor) -> set[int]:
    """The dims dynamo will treat as dynamic because of a mark on this tensor (any kind)."""
    dims: set[int] = set()
    for attr in ("_dynamo_dynamic_indices", "_dynamo_weak_dynamic_indices",
                 "_dynamo_unbacked_indices", "_dynamo_strict_unbacked_indices"):
        dims |= set(getattr(t, attr, None) or ())
    return dims


def _double_rowsum(x):
    return (x * 2).sum(-1)


def _why_recompiled() -> str:
    reasons = _new_reasons(0)
    return "; ".join(reasons) if reasons else "(no guard failure recorded)"


@pytest.mark.exercise("mark_batch_dynamic")
def test_mark_batch_dynamic_compiles_once(impl, rng):
    _require_dynamo()
    features = int(rng.integers(9, 12))
    batches = [2] + [int(b) for b in rng.choice(range(3, 9), size=3, replace=False)]  # 2: the smallest
    with fresh_dynamo():
        cnt = CompileCounter()
        compiled = torch.compile(_double_rowsum, backend=cnt)
        for b in batches:
            x = torch.randn(b, features, dtype=torch.float64)
            expected = _double_rowsum(x.clone())
            marked = _call(f"mark_batch_dynamic(x of shape {(b, features)})", impl.mark_batch_dynamic, x)
            what = f"mark_batch_dynamic(x of shape {(b, features)})"
            if marked is not x:
                fail(f"{what} returned {describe(marked)}, not x itself.\n  Try: marking is metadata "
                     "recorded on the tensor you were given: mark x and return x (a copy would not "
                     "carry the mark, and the caller's x would stay unmarked).")
            if _marked_dims(marked) != {0}:
                fail(
                    f"{what}: the returned tensor has dims {sorted(_marked_dims(marked))} marked "
                    "dynamic, expected exactly [0].\n"
                    "  Try: torch._dynamo.mark_dynamic(x, 0) records dim 0 on the tensor itself "
                    "(x._dynamo_dynamic_indices), and dynamo reads it when it first traces x. "
                    "Mark the batch only: every other dim should stay static, so the compiler "
                    "may specialise on it."
                )
            assert_close(compiled(marked), expected, f"the compiled function on {what}")
        if cnt.frame_count != 1:
            fail(
                f"batch sizes {batches} with {features} features, each passed through "
                f"mark_batch_dynamic: compiled {cnt.frame_count} times, expected once.\n"
                f"  Dynamo recompiled because: {_why_recompiled()}\n"
                "  Try: torch._dynamo.mark_dynamic(x, 0) before the first call makes the first graph "
                "symbolic in the batch dimension."
            )
        x = torch.randn(batches[0], features + 1, dtype=torch.float64)
        compiled(_call("mark_batch_dynamic", impl.mark_batch_dynamic, x))
        if cnt.frame_count != 2:
            fail(
                f"after those batches, an input of shape {(batches[0], features + 1)} (a new feature "
                f"size) did not recompile: {cnt.frame_count} compile(s) in all, expected 2. The feature "
                "dimension was dynamic too.\n"
                "  Try: mark only dim 0; every other dim should stay static, so the compiler may "
                "specialise on it (and a change there is a real recompile)."
            )


# ----------------------------------------------------------------------------- hparams_as_tensors


def _grouped_step(p, g, hp):
    d = g + hp["weight_decay"] * p
    if hp["nesterov"]:
        d = d + hp["momentum"] * g
    d = d.reshape(hp["groups"], -1)
    d = d - d.mean(dim=1, keepdim=True)
    return p - hp["lr"] * d.reshape(p.shape)


def _hparam_sets(rng, count: int = 4) -> list[dict]:
    groups = int(rng.integers(2, 5))
    nesterov = bool(rng.integers(0, 2))
    return [
        {"lr": float(round(rng.uniform(0.01, 0.5), 4)), "momentum": float(round(rng.uniform(0.5, 0.99), 3)),
         "weight_decay": float(round(rng.uniform(0.0, 0.1), 4)), "groups": groups, "nesterov": nesterov}
        for _ in range(count)
    ]


def _check_hparams_structure(got, hp: dict, like: torch.Tensor) -> None:
    what = f"hparams_as_tensors({hp}, like={describe(like)})"
    if type(got) is not dict or set(got) != set(hp):
        fail(f"{what}: expected a dict with the keys {sorted(hp)}, got {describe(got)}.")
    for name, value in hp.items():
        new = got[name]
        if type(value) in (int, bool):
            if type(new) is not type(value) or new != value:
                fail(
                    f"{what}: {name!r} is a Python {type(value).__name__} ({value!r}) and must stay "
                    f"one, got {describe(new)}.\n  Try: only floats become tensors. An int here is a "
                    "size (reshape needs a Python int) and a bool steers an `if`: a tensor in either "
                    "place is a graph break or an error, and a guard on them is exactly right."
                )
        elif isinstance(new, torch.Tensor):
            if type(new) is not torch.Tensor or new.shape != () or new.dtype != like.dtype or new.device != like.device:
                fail(
                    f"{what}: {name!r} became {describe(new)}; expected a 0-dim tensor with like's "
                    f"dtype ({str(like.dtype).replace('torch.', '')}) and device ({like.device}).\n"
                    "  Try: torch.tensor(value, dtype=like.dtype, device=like.device) — a 0-dim "
                    "tensor broadcasts like the scalar it replaces, and the same dtype keeps the "
                    "arithmetic (and the results) identical."
                )
            if new.device.type != "meta" and not torch.equal(new, torch.tensor(value, dtype=like.dtype)):
                fail(f"{what}: {name!r} became a tensor holding {new.item()!r}, expected {value!r}.")
        else:
            fail(f"{what}: {name!r} is a Python float ({value!r}) and must become a 0-dim tensor, "
                 f"got {describe(new)}.\n  Try: a float passed to a compiled function is guarded "
                 "on its value; a 0-dim tensor is a graph input.")


# Hyper-parameters whose values must survive exactly, whatever like is: floats that look like
# ints (0.0, 1.0) and a negative one are still floats, ints and bools of every kind stay.
_EDGE_HPARAMS = {"lr": 1.0, "weight_decay": 0.0, "shift": -0.25, "groups": 1, "steps": 0,
                 "nesterov": False, "amsgrad": True}


def _likes(rng) -> list[torch.Tensor]:
    n = int(rng.integers(2, 5))
    return [torch.zeros(n, dtype=torch.float64), torch.zeros(n, 2, dtype=torch.float32).t(),
            torch.empty(n, dtype=torch.float16, device="meta"), torch.zeros((), dtype=torch.bfloat16)]


def _convert(impl, hp: dict, like: torch.Tensor):
    """hparams_as_tensors on the caller's own dict (the input guard sees that it stays as it was)."""
    what = f"hparams_as_tensors({hp}, like={describe(like)})"
    got = _call(what, impl.hparams_as_tensors, hp, like)
    if got is hp:
        fail(f"{what}: returned the caller's dict itself; return a new dict (the caller may reuse "
             "its hyper-parameters, say for the next step or a log).")
    return got


@pytest.mark.exercise("hparams_as_tensors")
def test_hparams_as_tensors_structure(impl, rng):
    """Every kind of value, every kind of like (float32, a meta tensor, a 0-dim bfloat16)."""
    for like in _likes(rng):
        for hp in (dict(_EDGE_HPARAMS), _hparam_sets(rng, 1)[0]):
            _check_hparams_structure(_convert(impl, hp, like), hp, like)


@pytest.mark.exercise("hparams_as_tensors")
def test_hparams_as_tensors_compiles_once(impl, rng):
    _require_dynamo()
    sets = _hparam_sets(rng)
    n = sets[0]["groups"] * int(rng.integers(3, 6))
    p = torch.randn(n, dtype=torch.float64)
    g = torch.randn(n, dtype=torch.float64)
    expected = [_grouped_step(p.clone(), g.clone(), hp) for hp in sets]
    converted = []
    for hp in sets:
        got = _convert(impl, hp, p)
        _check_hparams_structure(got, hp, p)
        converted.append(got)
    with fresh_dynamo():
        cnt = CompileCounter()
        compiled = torch.compile(_grouped_step, backend=cnt)
        for hp, new, exp in zip(sets, converted, expected, strict=False):
            assert_close(compiled(p, g, new), exp, f"the compiled step with hyper-parameters {hp}")
        if cnt.frame_count != 1:
            fail(
                f"a compiled optimiser step called with {len(sets)} hyper-parameter sets (only the "
                f"floats change: lr, momentum, weight_decay) compiled {cnt.frame_count} times, "
                f"expected once.\n  Dynamo recompiled because: {_why_recompiled()}\n"
                "  Try: a Python float is a constant baked into the graph and guarded on; a 0-dim "
                "tensor is a graph input, so a new value needs no new graph."
            )


# ----------------------------------------------------------------------------- clip_rows


def _clip_reference(x: torch.Tensor, max_norm: float) -> torch.Tensor:
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return torch.where(norms > max_norm, x * (max_norm / norms), x)


def _clip_input(rng) -> tuple[torch.Tensor, float]:
    rows, cols = random_shape(rng, 2, 4, 8)
    x = torch.randn(rows, cols, dtype=torch.float64) * torch.rand(rows, 1, dtype=torch.float64).mul(3)
    x[int(rng.integers(0, rows))] = 0.0  # a zero row: its norm is 0
    max_norm = float(round(rng.uniform(0.8, 2.0), 3))
    return x, max_norm


def _check_clip_values(impl, x: torch.Tensor, max_norm: float, label: str = "") -> None:
    expected = _clip_reference(x.clone(), max_norm)
    what = f"clip_rows(x of shape {tuple(x.shape)}{label}, max_norm={max_norm})"
    got = _call(what, impl.clip_rows, x, max_norm)  # the input guard: x must not change
    assert_close(got, expected, what, hint="rows with norm <= max_norm stay as they are (a zero row "
                 "included: no 0/0); longer rows are scaled to norm max_norm.")


def _rows_with_norms(norms: list[float], cols: int, dtype=torch.float64) -> torch.Tensor:
    """One row per norm, each a random direction scaled to exactly that norm (up to rounding)."""
    x = torch.randn(len(norms), cols, dtype=torch.float64)
    x = x / torch.linalg.vector_norm(x, dim=1, keepdim=True) * torch.tensor(norms, dtype=torch.float64)[:, None]
    return x.to(dtype)


def _clip_corpus(max_norm: float) -> list[tuple[str, torch.Tensor]]:
    """Rows on every side of max_norm (zero, far below, just below, just above, far above), a
    single row, a single column, and float32."""
    around = [0.0, 0.3 * max_norm, 0.6 * max_norm, 0.99 * max_norm, 1.01 * max_norm, 1.7 * max_norm, 5 * max_norm]
    return [
        ("rows of norm 0 to 5 x max_norm", _rows_with_norms(around, 5)),
        ("one long row", _rows_with_norms([3 * max_norm], 4)),
        ("one column", _rows_with_norms([0.5 * max_norm, 2 * max_norm, 0.0], 1)),
        ("float32", _rows_with_norms(around[::-1], 3, torch.float32)),
    ]


@pytest.mark.exercise("clip_rows")
def test_clip_rows_values(impl, rng):
    from checker.helpers import layouts

    x, max_norm = _clip_input(rng)
    with fresh_dynamo():
        for label, edge in _clip_corpus(max_norm):
            _check_clip_values(impl, edge, max_norm, f", {label}")
        for label, variant in layouts(x):
            _check_clip_values(impl, variant, max_norm, f", {label}")


@pytest.mark.exercise("clip_rows")
def test_clip_rows_is_one_graph(impl, rng):
    _require_dynamo()
    x, max_norm = _clip_input(rng)
    _check_clip_values(impl, x, max_norm)
    fn = impl.module.clip_rows  # explain() compiles it; the rules window would forbid that
    with fresh_dynamo():
        try:
            explained = torch._dynamo.explain(fn)(x.clone(), max_norm)
        except Exception as exc:
            fail(f"torch._dynamo.explain(clip_rows) raised {type(exc).__name__}: "
                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    if explained.graph_break_count != 0 or explained.graph_count != 1:
        reasons = _break_reasons(explained)
        fail(
            f"torch._dynamo.explain(clip_rows)(x, {max_norm}): {explained.graph_count} graph(s) "
            f"and {explained.graph_break_count} graph break(s); expected 1 graph, 0 breaks.\n"
            + "".join(f"  break: {r}\n" for r in reasons)
            + "  Try: keep the data in tensors. `.item()`, `.tolist()`, print, or an `if` on a "
            "tensor's value make dynamo stop the graph; torch.where / clamp decide per element "
            "inside it."
        )


# ----------------------------------------------------------------------------- run_locked


def _scaled_tanh_step(x, lr):
    return torch.tanh(x - lr * x.mean(dim=0))


class _Watched:
    """The compiled step, as the learner sees it: records the compiler's stance at each call."""

    def __init__(self, compiled):
        self._compiled = compiled
        self.stances: list[str] = []

    def __call__(self, x, lr):
        self.stances.append(torch._dynamo.eval_frame._stance.stance)
        if not isinstance(lr, torch.Tensor):
            raise _BadCall(
                f"call {len(self.stances)} passed lr as {describe(lr)}. A Python float is a "
                f"constant of the graph, guarded on its value (`lr == {lr!r}`): the next lr would "
                "need a recompile, which the locked stance turns into an error.\n"
                "  Try: pass lr as a 0-dim tensor of x's dtype; then it is a graph input."
            )
        return self._compiled(x, lr)


class _BadCall(AssertionError):
    """Raised by the watched step when it is called in a way that must recompile."""


@pytest.mark.exercise("run_locked")
def test_run_locked(impl, rng):
    _require_dynamo()
    features = int(rng.integers(9, 12))
    sizes = [int(b) for b in rng.choice(range(2, 9), size=5, replace=False)]
    batches = [torch.randn(b, features, dtype=torch.float64) for b in sizes]
    lrs = [float(round(rng.uniform(0.01, 1.0), 4)) for _ in sizes]
    expected = [_scaled_tanh_step(b.clone(), lr) for b, lr in zip(batches, lrs, strict=False)]
    what = f"run_locked(step, batches of shapes {[(b, features) for b in sizes]}, lrs={lrs})"
    with fresh_dynamo():
        cnt = CompileCounter()
        compiled = torch.compile(_scaled_tanh_step, backend=cnt)
        step = _Watched(compiled)
        run_locked = impl.module.run_locked
        args = (step, [b.clone() for b in batches], list(lrs))
        try:
            # Driven like a class: a replay on copies of these inputs would meet dynamo's caches
            # in another state, so a failure is diagnosed by the check's outcome.
            with impl.rules(), guarded("run_locked", run_locked, args):
                outputs = run_locked(*args)
        except NotImplementedError:
            raise
        except _BadCall as exc:
            fail(f"{what}: {exc}")
        except AssertionError:  # a guard's own failure (inputs or global state)
            raise
        except Exception as exc:
            fail(f"{what}: call {len(step.stances)} raised — {recompile_error_text(exc)}.\n"
                 "  Try: warm up with one call under the default stance (that call compiles a "
                 "graph that must fit every later batch and lr), then lock with "
                 "`with torch.compiler.set_stance('fail_on_recompile'):` for the rest.")
        leaked = torch._dynamo.eval_frame._stance.stance
        if leaked != "default":
            fail(f"{what}: after it returned, the compiler's stance was still {leaked!r}.\n"
                 "  Try: use set_stance as a context manager (`with ...:`) so it is undone on the "
                 "way out; a plain call changes the stance for the whole process.")
        compiles = cnt.frame_count
        if compiles == 1:  # the warm-up graph must be dynamic in the batch dim only
            compiled(torch.randn(sizes[0], features + 1, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
            if cnt.frame_count == compiles:
                fail(f"{what}: after it returned, a batch with {features + 1} features (one more) ran "
                     "without a recompile: the warm-up graph was dynamic in the feature dim too.\n"
                     "  Try: mark only dim 0 (the batch) of the warm-up batch dynamic; the feature "
                     "size is fixed by the model, and the compiler may specialise on it.")
    if type(outputs) is not list or len(outputs) != len(batches):
        fail(f"{what}: expected a list of {len(batches)} outputs, got {describe(outputs)}.")
    if len(step.stances) != len(batches):
        fail(f"{what}: step was called {len(step.stances)} times, expected once per batch "
             f"({len(batches)}).")
    wanted = ["default"] + ["fail_on_recompile"] * (len(batches) - 1)
    if step.stances != wanted:
        fail(f"{what}: the stance at each call was {step.stances},\n  expected {wanted}.\n"
             "  Try: the first call compiles (under 'default'); every later call runs under "
             "'fail_on_recompile', so a recompile would be an error instead of a silent slowdown.")
    for i, (got, exp) in enumerate(zip(outputs, expected, strict=False)):
        assert_close(got, exp, f"{what}: output {i}", hint="pass lr as a tensor of x's dtype: the "
                     "values must equal step(x, lr) with the float.")
    if compiles != 1:
        fail(f"{what}: compiled {compiles} times, expected once.")
def _warm(checks: set[str] | None = None) -> None:
    """Pay dynamo's lazy set-up once, at collection, so each check's time is its own; an
    armed process (``kata_warm``) warms only what its own ``checks`` compile. A check's
    first trace with symbolic sizes is much slower than the next (symbolic shapes cache the
    expressions they meet), so each is warmed with the check's own function and marks."""
    if CompileCounter is None or not hasattr(torch.compiler, "set_stance"):
        return

    def wanted(name: str) -> bool:
        return checks is None or name in checks

    f64 = torch.float64
    with fresh_dynamo():
        torch.compile(lambda x: x + 1, backend=CompileCounter())(torch.zeros(2))
        torch._dynamo.explain(lambda x: x * 2)(torch.zeros(2))
        for name, cases in CORPUS.items():  # the same on every seed: ask dynamo once per process
            if wanted(name):
                for shapes, dynamic, limit in cases:
                    dynamo_timeline(shapes, dynamic, _DEFAULT_LIMIT if limit is None else limit)
        if wanted("test_mark_batch_dynamic_compiles_once"):
            compiled = torch.compile(_double_rowsum, backend=CompileCounter())
            for features in (9, 10):  # a new feature size recompiles, as in the check
                x = torch.zeros(3, features, dtype=f64)
                torch._dynamo.mark_dynamic(x, 0)
                compiled(x)
        if wanted("test_hparams_as_tensors_compiles_once"):
            hp = {"lr": torch.tensor(0.1, dtype=f64), "momentum": torch.tensor(0.9, dtype=f64),
                  "weight_decay": torch.tensor(0.01, dtype=f64), "groups": 2, "nesterov": True}
            torch.compile(_grouped_step, backend=CompileCounter())(
                torch.zeros(6, dtype=f64), torch.zeros(6, dtype=f64), hp)
        if wanted("test_clip_rows_is_one_graph"):
            torch._dynamo.explain(_clip_reference)(torch.zeros(3, 4, dtype=f64), 1.0)
        if wanted("test_run_locked"):
            x = torch.zeros(3, 9, dtype=f64)
            torch._dynamo.mark_dynamic(x, 0)
            torch.compile(_scaled_tanh_step, backend=CompileCounter())(x, torch.tensor(0.5, dtype=f64))


_warm()
kata_warm = _warm
