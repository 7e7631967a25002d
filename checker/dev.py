"""The checks are tested too: for a kata, prove stub fails, solution passes, mistakes fail.

Used by ``kata dev check`` (a table for kata authors) and by the project's own test suite.
A proof runs on every seed of a list (a verdict that depends on the seed is a defect); the
diagnosis is proven on the first: each mistake must be named as itself and as no mistake
whose code differs from its own (checker.diagnosis).
"""

from __future__ import annotations

import contextlib
import functools
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
    ``mistake_seeds`` of ``seeds`` (all of them by default), the solution at every one.

    The runs are independent: a :class:`RunPool` judges as many at once as it has workers."""
    later = [other for other in seeds if other != seed]
    mistake_at = [seed, *later[:len(later) if mistake_seeds is None else mistake_seeds]]
    known = load_mistakes(kata.mistakes_module)
    source = kata.solution_path.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="kata-mistakes-") as tmp:
        paths = {}
        for m in known:
            paths[m.id] = Path(tmp) / f"{m.id}.py"
            paths[m.id].write_text(materialize(source, m), encoding="utf-8")
        jobs: list[tuple[str, int, Mistake | None, dict]] = [
            ("stub", seed, None, {"diagnose": False})]
        jobs += [("solution", s, None, {"diagnose": False}) for s in (seed, *later)]
        # No real budget: the proof asks whether a mistake CAN be named, on any machine and
        # load. A mistake is proven by its own exercise's checks: only those run.
        jobs += [("mistake", s, m, {"diagnose": diagnose and s == seed, "only": m.exercise,
                                    "diagnose_budget": 600.0})
                 for s in mistake_at for m in known]

        def judge(job: tuple[str, int, Mistake | None, dict]) -> CheckResult:
            what, at, m, options = job
            impl = paths[m.id] if m else kata.stub_path if what == "stub" else kata.solution_path
            return run(kata, impl, seed=at, **options)

        results = judge_all(run, judge, jobs)
    proofs = []
    for (what, at, m, options), result in zip(jobs, results, strict=True):
        if what == "stub":
            still_passing = [e.name for e in result.exercises if e.ok]
            proof = Proof(kata.name, "stub",
                          result.status in ("failed", "load_error") and not still_passing,
                          f"passes {', '.join(still_passing)}" if still_passing else _summary(result))
        elif what == "solution":
            proof = Proof(kata.name, "solution", result.passed, _summary(result))
        else:
            proof = _mistake_proof(kata, m, result, options["diagnose"], known)
        if at != seed:
            proof = Proof(proof.kata, f"{proof.subject}@{at}", proof.ok, proof.detail)
        proofs.append(proof)
    return proofs


class RunPool:
    """Runners that judge at the same time, each through a warm worker of its own: a call
    takes a free one (waiting for one if all are busy). ``width`` is how many."""

    def __init__(self, runs: list[RunFn]):
        import queue

        self.width = len(runs)
        self._free: queue.Queue[RunFn] = queue.Queue()
        for one in runs:
            self._free.put(one)

    def __call__(self, *args, **kwargs) -> CheckResult:
        one = self._free.get()
        try:
            return one(*args, **kwargs)
        finally:
            self._free.put(one)


def judge_all(run: RunFn, judge: Callable, jobs: list) -> list[CheckResult]:
    """``judge`` of each job, in order; as many at once as ``run`` can take (its width)."""
    width = getattr(run, "width", 1)
    if width <= 1:
        return [judge(job) for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="kata-proof") as pool:
        return list(pool.map(judge, jobs))


def _code(m: Mistake) -> str:
    """A mistake's code without its name and decorator: two mistakes alike here are one."""
    return _func_code(m.func)


@functools.cache
def _func_code(func) -> str:
    """Parsed once per function: a proof compares every named mistake with every other
    (reading the source again each time cost a quarter of a proof's time)."""
    import ast
    import inspect

    node = ast.parse(inspect.getsource(func).lstrip()).body[0]
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
    if diagnose and ok and m.named:  # one never named is proven by its failure alone
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
def warm_runner(*, warm: bool = True, streams: int = 1) -> Iterator[RunFn]:
    """``run_checks`` through warm workers of its own (torch imported once, a fork per run),
    stopped on exit; the cold ``run_checks`` when ``warm`` is False or no worker starts.

    With ``streams`` above 1 it is a :class:`RunPool` of that many workers, the cores shared
    between them (a proof's many small runs go faster side by side than split in two)."""
    import os
    from functools import partial

    from checker import worker

    if not warm:
        yield run_checks
        return
    processes = max(1, (os.cpu_count() or 1) // streams) if streams > 1 else None
    with contextlib.ExitStack() as stack:
        runs = []
        for _ in range(max(1, streams)):
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kata-dev-")))
            proc = worker.start(state, wait=120, processes=processes)
            if proc is None:
                continue
            stack.callback(_stop_worker, state, proc)
            runs.append(partial(run_checks, use_worker=state))
        if not runs:
            yield run_checks
        else:
            yield runs[0] if len(runs) == 1 else RunPool(runs)


def _stop_worker(state: Path, proc) -> None:
    from checker import worker

    worker.stop(state)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def mistake_counts(kata: Kata) -> dict[str, int]:
    counts = {name: 0 for name in kata.exercises}
    for m in load_mistakes(kata.mistakes_module):
        counts[m.exercise] = counts.get(m.exercise, 0) + 1
    return counts
