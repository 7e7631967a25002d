"""Grade many submissions: each (submission, kata) judged in a fresh sandboxed child.

A submission is a workspace, or any folder with the workspace's ``katas/NN_name/name.py``
layout (a flat ``name.py`` at its top is accepted too). Nothing of a submission is trusted but
its code: progress files and workspace settings are never read, the shipped catalog decides
which checks run, a file reached through a symlink is refused, and the code is copied into a
private folder before it is judged (so it cannot change while it runs). Judging goes through
one warm worker for the whole batch (one fork per submission); ``jobs`` requests are in
flight at once.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from checker.catalog import Kata
from checker.verdicts import GradeRow, verdict_dict

Judge = Callable[[Kata, Path, int], "object"]  # (kata, file, seed) -> CheckResult


def kata_file_in(submission: Path, kata: Kata) -> Path | None:
    """The submission's file for ``kata``, or None (absent, or reached through a symlink)."""
    base = submission.resolve()
    candidates = [submission / kata.rel_stub,
                  *sorted(submission.glob(f"katas/[0-9]*_{kata.name}/{kata.name}.py")),
                  submission / f"{kata.name}.py"]
    for path in candidates:
        if path.is_symlink() or not path.is_file():
            continue
        real = path.resolve()
        if base in real.parents:  # no folder of the path leads out of the submission
            return path
    return None


def missing_verdict(kata: Kata, seed: int, submission: Path) -> dict:
    message = (f"No file for {kata.name} in this submission (expected {kata.rel_stub}, "
               f"or {kata.name}.py at its top; symlinks are not followed).")
    return {"schema": 1, "kata": kata.name, "seed": seed, "passed": False, "status": "missing",
            "exercises": [{"name": e, "passed": False, "status": "missing", "message": message}
                          for e in kata.exercises],
            "diagnosis": [], "message": message, "duration": 0.0}


def grade(pairs: Sequence[tuple[Path, Kata]], *, seed: int, judge: Judge, jobs: int = 2,
          on_done: Callable[[GradeRow], None] | None = None) -> list[GradeRow]:
    """Judge every pair with ``judge``; rows come back in the order of ``pairs``."""
    with tempfile.TemporaryDirectory(prefix="kata-grade-") as tmp:
        def one(index: int, sub: Path, kata: Kata) -> GradeRow:
            found = kata_file_in(sub, kata)
            if found is None:
                row = GradeRow(str(sub), missing_verdict(kata, seed, sub))
            else:
                private = Path(tmp) / str(index) / f"{kata.name}.py"
                private.parent.mkdir()
                shutil.copyfile(found, private, follow_symlinks=False)
                result = judge(kata, private, seed)
                row = GradeRow(str(sub), verdict_dict(result, exercises=kata.exercises))
            if on_done is not None:
                on_done(row)
            return row

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(one, i, sub, kata) for i, (sub, kata) in enumerate(pairs)]
            return [f.result() for f in futures]


def default_katas(submissions: Sequence[Path], catalog) -> list[Kata]:
    """Without ``--kata``: every kata that at least one submission has a file for."""
    return [k for k in catalog.katas if any(kata_file_in(s, k) for s in submissions)]
