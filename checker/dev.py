"""The checks are tested too: for a kata, prove stub fails, solution passes, mistakes fail.

Used by ``kata dev check`` (a table for kata authors) and by the project's own test suite.
A proof runs on every seed of a list (a verdict that depends on the seed is a defect); the
diagnosis is proven on the first: each mistake must be named as itself and as no mistake
whose code differs from its own (checker.diagnosis).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from checker.catalog import Kata
from checker.mistakes import Mistake, load_mistakes, materialize
from checker.outcome import CheckResult
from checker.runner import run_checks


@dataclass(frozen=True)
class Proof:
    """One line of the integrity table: a subject run through the checks, and its verdict."""

    kata: str
    subject: str  # "stub", "solution" or "mistake:<id>"
    ok: bool
    detail: str
    diagnosed: bool | None = None  # for mistakes: named as its own misconception?


RunFn = Callable[..., CheckResult]


SEEDS = (20261122, 1, 7, 987654, 31337)  # the fixed list every proof runs on


def prove_kata(
    kata: Kata, *, seed: int = 12345, run: RunFn = run_checks,
    diagnose: bool = True, seeds: tuple[int, ...] = (), mistake_seeds: int | None = None,
) -> list[Proof]:
    """The proofs at ``seed`` (diagnosis included), then at each of ``seeds`` (without);
    subjects proven at a later seed read "solution@7", "mistake:x@7". The stub (whose failure
    does not depend on the seed) is proven at ``seed`` only; the mistakes at the first
    ``mistake_seeds`` of ``seeds`` (all of them by default), the solution at every one."""
    proofs = _prove_at(kata, seed, run, diagnose)
    later = [other for other in seeds if other != seed]
    for i, other in enumerate(later):
        with_mistakes = mistake_seeds is None or i < mistake_seeds
        proofs += [Proof(p.kata, f"{p.subject}@{other}", p.ok, p.detail)
                   for p in _prove_at(kata, other, run, False, stub=False,
                                      mistakes=with_mistakes)]
    return proofs


def _prove_at(kata: Kata, seed: int, run: RunFn, diagnose: bool, *, stub: bool = True,
              mistakes: bool = True) -> list[Proof]:
    proofs: list[Proof] = []
    if stub:
        result = run(kata, kata.stub_path, seed=seed, diagnose=False)
        still_passing = [e.name for e in result.exercises if e.ok]
        proofs.append(Proof(
            kata.name, "stub", result.status in ("failed", "load_error") and not still_passing,
            f"passes {', '.join(still_passing)}" if still_passing else _summary(result),
        ))
    solution = run(kata, kata.solution_path, seed=seed, diagnose=False)
    proofs.append(Proof(kata.name, "solution", solution.passed, _summary(solution)))
    if not mistakes:
        return proofs
    source = kata.solution_path.read_text(encoding="utf-8")
    known = load_mistakes(kata.mistakes_module)
    with tempfile.TemporaryDirectory(prefix="kata-mistakes-") as tmp:
        for m in known:
            path = Path(tmp) / f"{m.id}.py"
            path.write_text(materialize(source, m), encoding="utf-8")
            # No real budget: the proof asks whether a mistake CAN be named, on any machine and load.
            # A mistake is proven by its own exercise's checks: only those run.
            result = run(kata, path, seed=seed, diagnose=diagnose, diagnose_budget=600.0,
                         only=m.exercise)
            proofs.append(_mistake_proof(kata, m, result, diagnose, known))
    return proofs


def _code(m: Mistake) -> str:
    """A mistake's code without its name and decorator: two mistakes alike here are one."""
    import ast
    import inspect

    node = ast.parse(inspect.getsource(m.func).lstrip()).body[0]
    node.name, node.decorator_list = "_", []
    return ast.dump(node)


def _mistake_proof(kata: Kata, m: Mistake, result: CheckResult, diagnose: bool,
                   mistakes: list[Mistake] = ()) -> Proof:
    target = next((e for e in result.exercises if e.name == m.exercise), None)
    if target is None:
        return Proof(kata.name, f"mistake:{m.id}", False,
                     f"targets unknown exercise {m.exercise!r} ({result.status}: {result.message})")
    # a file that cannot even load proves nothing, nor an exercise none of whose checks ran
    ok = not target.ok and result.status == "failed" and target.checks > 0
    diagnosed = None
    others = []
    if diagnose and ok:
        named = {mid for mid, _ in target.diagnosis}
        twins = {o.id for o in mistakes if o.id != m.id and _code(o) == _code(m)}
        others = sorted(named - twins - {m.id})
        diagnosed = m.id in named and not others
    if ok:
        detail = f"{m.exercise} fails" + (f"; also named as {', '.join(others)}" if others else
                                          "; named as nothing" if diagnosed is False else "")
    elif target.ok:
        detail = f"{m.exercise} PASSES — the checks miss: {m.misconception}"
    else:
        detail = f"{result.status}: {result.message[:160]}"
    return Proof(kata.name, f"mistake:{m.id}", ok, detail, diagnosed)


def _summary(result: CheckResult) -> str:
    if result.status in ("load_error", "crashed", "timeout"):
        return f"{result.status}: {result.message[:200]}"
    bad = [f"{e.name}: {e.message.splitlines()[0][:160] if e.message else e.status}"
           for e in result.exercises if not e.ok]
    return (f"{result.exercises_passed}/{len(result.exercises)} exercises pass"
            + (f"; {bad[0]}" if bad else ""))


@contextlib.contextmanager
def warm_runner(*, warm: bool = True) -> Iterator[RunFn]:
    """``run_checks`` through a warm worker of its own (torch imported once, a fork per run),
    stopped on exit; the cold ``run_checks`` when ``warm`` is False or the worker won't start."""
    from functools import partial

    from checker import worker

    if not warm:
        yield run_checks
        return
    with tempfile.TemporaryDirectory(prefix="kata-dev-") as state:
        proc = worker.start(Path(state), wait=120)
        try:
            yield partial(run_checks, use_worker=Path(state)) if proc else run_checks
        finally:
            if proc is not None:
                worker.stop(Path(state))
                proc.wait(timeout=10)


def mistake_counts(kata: Kata) -> dict[str, int]:
    counts = {name: 0 for name in kata.exercises}
    for m in load_mistakes(kata.mistakes_module):
        counts[m.exercise] = counts.get(m.exercise, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    """``python -m checker.dev NAME ...``: the same proof as ``kata dev check NAME ...``."""
    import sys

    import click

    from checker.cli import main as cli

    try:
        cli(["dev", "check", *(argv if argv is not None else sys.argv[1:])], standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
