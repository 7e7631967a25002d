"""What the commands do, as functions returning outcomes; ``cli.py`` and ``render.py`` print.

Nothing here imports torch or pytest: only checking a file does, in a child process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from checker.catalog import Kata
from checker.progress import KataProgress, Progress
from checker.workspace import Workspace

if TYPE_CHECKING:
    from checker.outcome import CheckResult


class KataLocked(Exception):
    def __init__(self, kata: Kata, first: Kata):
        self.kata, self.first = kata, first
        super().__init__(
            f"Kata {kata.name!r} is locked. Finish {first.name!r} first "
            f"(`kata check {first.name}`), or judge any file without progress with "
            f"`kata check {kata.name} --file PATH`."
        )


@dataclass(frozen=True)
class KataRow:
    kata: Kata
    state: str  # done | current | locked
    progress: KataProgress


def rows(ws: Workspace, progress: Progress) -> list[KataRow]:
    out, current_seen = [], False
    for kata in ws.catalog.katas:
        entry = progress.katas.get(kata.name, KataProgress())
        if entry.passed:
            state = "done"
        elif not current_seen:
            state, current_seen = "current", True
        else:
            state = "locked"
        out.append(KataRow(kata, state, entry))
    return out


def current_kata(ws: Workspace, progress: Progress) -> Kata | None:
    return next((r.kata for r in rows(ws, progress) if r.state == "current"), None)


def resolve_kata(ws: Workspace, progress: Progress, name: str | None) -> Kata:
    """The named kata, or the current one (the last one when all are done)."""
    if name:
        return ws.catalog.get(name)
    return current_kata(ws, progress) or ws.catalog.katas[-1]


def require_unlocked(ws: Workspace, progress: Progress, kata: Kata) -> None:
    for row in rows(ws, progress):
        if row.kata.name == kata.name:
            if row.state == "locked":
                first = current_kata(ws, progress)
                raise KataLocked(kata, first or kata)
            return


def lesson_summary(text: str, limit: int = 600) -> str:
    """The lesson's first paragraph after its title, as plain text."""
    body = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    paragraphs = [p for p in body if not p.startswith("#")]
    summary = " ".join(paragraphs[0].split()) if paragraphs else ""
    return summary if len(summary) <= limit else summary[: limit - 1].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True)
class CheckOutcome:
    kata: Kata
    file: Path
    result: CheckResult
    newly_passed: bool = False
    next_kata: Kata | None = None
    recorded: bool = True  # False for --file runs


def record(ws: Workspace, kata: Kata, result: CheckResult) -> CheckOutcome:
    """Store a workspace check's result; passing the current kata unlocks the next."""
    from checker.progress import now

    newly = False
    with ws.progress.update() as progress:
        entry = progress.of(kata.name)
        if result.status not in ("interrupted",):
            entry.attempts += 1
        entry.exercises_total = len(kata.exercises)
        entry.exercises_passed = max(
            result.exercises_passed, entry.exercises_passed if entry.passed else 0)
        entry.last_seed = result.seed
        entry.last_checked_at = now()
        if result.passed and not entry.passed:
            entry.status, entry.passed_at, newly = "passed", now(), True
        elif not entry.passed and result.status != "interrupted":
            entry.status = "attempted"
        nxt = current_kata(ws, progress) if newly else None
    return CheckOutcome(kata, ws.kata_file(kata), result, newly, nxt)


@dataclass(frozen=True)
class HintOutcome:
    kata: Kata
    shown: tuple[str, ...]  # every hint revealed so far, in order
    new: bool  # a new level was revealed by this call
    total: int


def next_hint(ws: Workspace, kata: Kata) -> HintOutcome:
    with ws.progress.update() as progress:
        entry = progress.of(kata.name)
        new = entry.hints_shown < len(kata.hints)
        if new:
            entry.hints_shown += 1
        level = entry.hints_shown
    return HintOutcome(kata, kata.hints[:level], new, len(kata.hints))
