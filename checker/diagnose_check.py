"""The diagnosis of a failing check, inside the check process: the reference and the known
mistakes of the exercise replayed on the check's own inputs (checker.diagnosis decides which
mistake the learner's code behaves like), or, where a check drives learner classes, compared
by the check's outcome on further seeds. Called by checker.plugin as a check fails.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from checker.run_state import ALL, COUNTS, check_seed, exercise_of

_EXTRA_SEEDS = 8  # further draws of the exercise's checks, while candidates stay unseparated


def diagnose(item: pytest.Item, exercise: str, target: str, state: dict) -> list[dict]:
    """The diagnosis is the judge's own work (the rules stay off for it), and a bonus: if it
    cannot finish, the failure stands without a name."""
    from checker.sandbox.dispatch import judge_code

    try:
        with judge_code():
            return _diagnose_by_behaviour(item, exercise, target, state)
    except (Exception, pytest.fail.Exception):  # out of time, or failed: names nothing
        return []


def _diagnose_by_behaviour(item: pytest.Item, exercise: str, target: str,
                           state: dict) -> list[dict]:
    """Name the known mistakes of ``exercise`` that the learner's code behaves like (see
    checker.diagnosis), the most specific first; none when none is proven to match."""
    from checker import diagnosis
    from checker.learner import Impl, load_module
    from checker.mistakes import _solution_of, load_mistakes

    kata = state["kata"]
    deadline = time.perf_counter() + state["diagnose_budget"]
    funcargs = getattr(item, "funcargs", None)
    if funcargs is None or "impl" not in funcargs:
        return []
    import signal

    left = signal.getitimer(signal.ITIMER_REAL)[0]  # pytest-timeout's timer for this check
    # the diagnosis gets its own budget on top (the learner's replays stay bounded)
    if left or signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
        signal.setitimer(signal.ITIMER_REAL, left + min(state["diagnose_budget"], 600.0))
    from checker.stuck import backstop

    backstop(2 * kata.timeout + min(state["diagnose_budget"], 600.0))
    learner = funcargs["impl"]
    seed = check_seed(item.config, item.nodeid)

    def variant(func=None, label="the known mistake"):
        module = load_module(kata.solution_path, kata.rules)
        if func is not None:
            setattr(module, exercise, func)
        return Impl(module, kata.rules, label=label)

    mistakes = [m for m in load_mistakes(kata.mistakes_module) if m.exercise == exercise and m.named]
    with contextlib.suppress(Exception):  # loaded as the judge: the mistakes that wrap it
        _solution_of(kata.name)  # cannot read the solution's file inside the rules window
    reference = variant(label="the reference")
    trace, _ = diagnosis.run_check(item, reference, seed)
    failing = diagnosis.failing_input(trace, exercise, item.stash.get(COUNTS, {}).get(exercise, 0))
    if failing is not None:
        found, unseen = diagnosis.by_behaviour(
            getattr(learner, exercise), getattr(reference.module, exercise),
            [diagnosis.Candidate(m.id, m.misconception, m.func) for m in mistakes],
            failing, _pools(item, exercise, reference, trace, deadline), exercise,
            reference.rules, lambda: time.perf_counter() < deadline)
        if found:
            return [{"id": c.id, "misconception": c.misconception} for c in found]
        mistakes = [m for m in mistakes if m.id in {c.id for c in unseen}]
    # No output to compare (checks that drive learner classes, slips that show only later):
    # the same failure on this seed and on two more where the mistake fails.
    found = []
    for m in mistakes:
        impl, alike, tried = variant(m.func), 0, 0
        if diagnosis.run_check(item, impl, seed)[1] != target:
            continue
        while alike < 2 and tried < 4 and time.perf_counter() < deadline:
            tried += 1
            theirs = diagnosis.run_check(item, impl, seed + tried)[1]
            if theirs is not None:
                if diagnosis.run_check(item, learner, seed + tried)[1] != theirs:
                    break
                alike += 1
        if alike >= 2:
            found.append((m, impl))
    return [{"id": m.id, "misconception": m.misconception}
            for m, _ in _separate(found, item, exercise, learner, deadline)]


def _separate(found: list[tuple], item: pytest.Item, exercise: str, learner: object,
              deadline: float) -> list[tuple]:
    """Of mistakes that fail the failing check as the learner's code does, those that fail
    as it does, too, on each further check run (:func:`_probes`) where they fail unalike;
    several only when no check run tells them apart."""
    from checker import diagnosis

    for other, seed in _probes(item, exercise):
        if len(found) < 2 or time.perf_counter() > deadline:
            break
        texts = [diagnosis.run_check(other, impl, seed)[1] for _, impl in found]
        if diagnosis.NOT_RUN not in texts and len(set(texts)) > 1:
            mine = diagnosis.run_check(other, learner, seed)[1]
            found = [f for f, text in zip(found, texts, strict=True) if text == mine]
    return found


def _probes(item: pytest.Item, exercise: str) -> Iterator[tuple[pytest.Item, int]]:
    """The further runs of the checks of ``exercise`` that may tell candidates apart, as
    (check, seed): every other check at its seed, then the checks that draw inputs at their
    seed plus one, two, ... (the same draws on every run)."""
    for extra in range(_EXTRA_SEEDS + 1):
        for other in item.config.stash.get(ALL, item.session.items):
            drawn = {"rng", "seed"} & set(other.fixturenames)  # else no other inputs to draw
            if (other is not item if not extra else drawn) and exercise_of(other) == exercise:
                yield other, check_seed(item.config, other.nodeid) + extra


def _pools(item: pytest.Item, exercise: str, reference: object, trace: list,
           deadline: float) -> Iterator[list]:
    """Batches of the reference's calls in the checks of ``exercise``, each run only when
    the diagnosis asks for more: ``trace`` (the failing check's), then each of
    :func:`_probes`."""
    from checker import diagnosis

    yield trace
    for other, seed in _probes(item, exercise):
        if time.perf_counter() > deadline:
            return
        yield diagnosis.run_check(other, reference, seed)[0]
