"""Run a kata's hidden checks against a file and return the outcome: the engine's facade.

It chooses the path: the workspace's warm worker when one answers (checker.worker), else a
cold child (checker.cold). Both run ``pytest`` with the project's plugin (checker.plugin) in
another process, whose learner code runs in the sandbox (checker.sandbox), and both come
back as a :class:`checker.outcome.CheckResult`. The flow is one way: facade -> cold runner /
warm worker -> child side (plugin, armed, report) -> sandbox -> outcome types.
"""

from __future__ import annotations

from pathlib import Path

from checker.catalog import Kata
from checker.launch import DEFAULT_MEMORY_MB, wall_limit
from checker.outcome import CheckResult, random_seed


def run_checks(
    kata: Kata,
    impl: Path,
    *,
    seed: int | None = None,
    diagnose: bool = True,
    diagnose_budget: float = 0.2,
    memory_mb: int = DEFAULT_MEMORY_MB,
    wall: float | None = None,
    use_worker: Path | None = None,
    only: str | None = None,
) -> CheckResult:
    """Run ``kata``'s checks against ``impl`` and return what happened. With ``only`` (an
    exercise; for the project's own proofs, never a learner's run) just that exercise's checks
    run, and the run cannot pass: the other exercises fail as unchecked."""
    impl = Path(impl).absolute()
    wall = wall or wall_limit(kata)
    if not kata.checks_path.is_file():  # a catalog of another release: not the learner's doing
        from checker.outcome import internal_error

        return internal_error(kata, seed or 0, impl, f"this installation of torch-katas has no "
                              f"checks for {kata.name!r} ({kata.checks_path} is missing).")
    if use_worker is not None:  # with no seed given, the worker picks the one it prepared for
        from checker import worker

        result = worker.try_run(use_worker, kata, impl, seed=seed, diagnose=diagnose,
                                diagnose_budget=diagnose_budget, memory_mb=memory_mb, wall=wall,
                                only=only)
        if result is not None:
            return result
    from checker.cold import run_cold

    return run_cold(kata, impl, seed=random_seed() if seed is None else seed,
                    diagnose=diagnose, diagnose_budget=diagnose_budget, memory_mb=memory_mb,
                    wall=wall, only=only)
