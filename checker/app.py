"""What the commands do, as functions returning outcomes; ``cli.py`` and ``render.py`` print.

Nothing here imports torch or pytest: only checking a file does, in a child process.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from checker.catalog import Kata
from checker.progress import KataProgress, Progress
from checker.workspace import Workspace

if TYPE_CHECKING:
    from collections.abc import Callable

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
    """Every kata of the installed catalog, in its order. A kata is current when it is the
    first one not done, or when it was reached before (a kata a newer release inserted ahead
    of it never locks work already begun)."""
    out, current_seen = [], False
    for kata in ws.catalog.katas:
        entry = progress.katas.get(kata.name, KataProgress())
        if entry.passed:
            state = "done"
        elif not current_seen or entry.status == "attempted":
            state, current_seen = "current", True
        else:
            state = "locked"
        out.append(KataRow(kata, state, entry))
    return out


def not_shipped(ws: Workspace, progress: Progress) -> dict[str, KataProgress]:
    """Progress of katas the installed catalog does not hold (a workspace of another
    release): kept in the file as it is, and reported."""
    known = set(ws.catalog.names())
    return {name: entry for name, entry in sorted(progress.katas.items()) if name not in known}


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
    recorded: bool = True  # False for --file runs and runs that are not the learner's doing
    write_error: str = ""  # the verdict stands, but progress could not be written


# Outcomes that say nothing about the learner's code: no attempt is counted.
NOT_AN_ATTEMPT = ("interrupted", "error")


def record(ws: Workspace, kata: Kata, result: CheckResult) -> CheckOutcome:
    """Store a workspace check's result; passing the current kata unlocks the next. A
    progress file that cannot be written leaves the verdict standing, with the reason."""
    from checker.progress import ProgressError

    if result.status in NOT_AN_ATTEMPT:
        return CheckOutcome(kata, ws.kata_file(kata), result, recorded=False)
    try:
        newly, nxt = _record(ws, kata, result)
    except ProgressError as exc:
        return CheckOutcome(kata, ws.kata_file(kata), result, recorded=False, write_error=str(exc))
    return CheckOutcome(kata, ws.kata_file(kata), result, newly, nxt)


def code_digest(path: Path) -> str | None:
    """A digest of the code, blind to comments and layout (its AST); None if unreadable."""
    import ast
    import hashlib

    try:
        source = path.read_bytes()
    except OSError:
        return None
    try:
        text = ast.dump(ast.parse(source))
    except (SyntaxError, ValueError):
        text = " ".join(source.decode("utf-8", "replace").split())
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _spend_time(progress, entry) -> None:
    """Count the time since the previous check as spent on this kata, unless it passed before
    or the pause was long; note today for the streak."""
    import datetime as dt

    from checker.progress import ACTIVE_GAP, now

    stamp = now()
    if entry.first_checked_at is None:
        entry.first_checked_at = stamp
    if entry.last_checked_at and not entry.passed:
        with contextlib.suppress(ValueError):
            gap = (dt.datetime.fromisoformat(stamp)
                   - dt.datetime.fromisoformat(entry.last_checked_at)).total_seconds()
            if 0 <= gap <= ACTIVE_GAP:
                entry.active_seconds = round(entry.active_seconds + gap, 1)
    today = dt.date.today().isoformat()
    if today not in progress.days:
        progress.days.append(today)


def streak(days: list[str], today=None) -> int:
    """Consecutive days with a check, ending today (or yesterday, if none yet today)."""
    import datetime as dt

    have = set(days)
    day = today or dt.date.today()
    if day.isoformat() not in have:
        day -= dt.timedelta(days=1)
    count = 0
    while day.isoformat() in have:
        count += 1
        day -= dt.timedelta(days=1)
    return count


def _record(ws: Workspace, kata: Kata, result: CheckResult) -> tuple[bool, Kata | None]:
    from checker.progress import now

    newly = False
    digest = code_digest(ws.kata_file(kata))
    with ws.progress.update() as progress:
        entry = progress.of(kata.name)
        if digest is None or digest != entry.code_digest:
            entry.attempts += 1  # the code changed: re-running the same code is no attempt
        entry.code_digest = digest
        _spend_time(progress, entry)
        entry.exercises_total = len(kata.exercises)
        entry.exercises_passed = max(
            result.exercises_passed, entry.exercises_passed if entry.passed else 0)
        entry.last_seed = result.seed
        if result.status in ("passed", "failed"):  # a crash says nothing about which one
            first = result.first_failure()
            entry.first_failing = first.name if first else None
        entry.last_checked_at = now()
        if result.passed and not entry.passed:
            entry.status, entry.passed_at, newly = "passed", now(), True
        elif not entry.passed:
            entry.status = "attempted"
        nxt = current_kata(ws, progress) if newly else None
    return newly, nxt


def check_and_record(ws: Workspace, kata: Kata, run: Callable[[], CheckResult]) -> CheckOutcome:
    """Run a workspace check (``run``) and record its verdict: the record is the CLI's. The
    workspace's state folder is read before and after the run; if it changed meanwhile (learner
    code writing progress.json, say), the change is undone, the run fails and nothing is
    recorded."""
    from checker.outcome import CheckResult

    before = _state_files(ws.state_dir)
    result = run()
    changed = _put_back(ws.state_dir, before)
    if changed:
        result = CheckResult(
            kata=kata.name, seed=result.seed, status="tampered", impl=result.impl,
            message=f"{ws.state_dir.name}/{changed[0]} changed while the checks ran: the workspace's "
            "record is written only by `kata` itself. The change was undone, this run fails "
            "and nothing was recorded.")
    if changed or result.status == "interrupted":
        return CheckOutcome(kata, ws.kata_file(kata), result, recorded=False)
    return record(ws, kata, result)


def _state_files(state_dir: Path) -> dict[str, bytes]:
    """The workspace's record (everything in its state folder but the file backups)."""
    files = {}
    for path in sorted(state_dir.rglob("*")):
        rel = path.relative_to(state_dir).as_posix()
        if path.is_file() and not rel.startswith("backups/"):
            files[rel] = path.read_bytes()
    return files


def _put_back(state_dir: Path, before: dict[str, bytes]) -> list[str]:
    """Undo any change to the state folder since ``before``; returns what had changed."""
    now = _state_files(state_dir)
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    for rel in changed:
        if rel in before:
            (state_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (state_dir / rel).write_bytes(before[rel])
        else:
            (state_dir / rel).unlink(missing_ok=True)
    return changed


@dataclass(frozen=True)
class HintOutcome:
    kata: Kata
    exercise: str  # the exercise these tiers are about
    shown: tuple[str, ...]  # every tier of it revealed so far, vaguest first
    new: bool  # a new tier was revealed by this call
    total: int  # tiers this exercise has
    why: str  # named | failing (the last check's first failure) | unsolved


def hint_target(kata: Kata, entry: KataProgress) -> tuple[str, str]:
    """(exercise, why): the first failing exercise of the last check; before any check (or
    after a pass) the first exercise, the first one unsolved."""
    if entry.first_failing in kata.exercises:
        return entry.first_failing, "failing"
    return kata.exercises[0], "unsolved"


def next_hint(ws: Workspace, kata: Kata, exercise: str | None = None) -> HintOutcome:
    """Reveal the next tier of ``exercise`` (default: see hint_target) and record it."""
    with ws.progress.update() as progress:
        entry = progress.of(kata.name)
        why = "named"
        if exercise is None:
            exercise, why = hint_target(kata, entry)
        tiers = kata.tiers(exercise)
        level = entry.hint_tiers.get(exercise, 0)
        new = level < len(tiers)
        if new:
            level += 1
            entry.hint_tiers[exercise] = level
            entry.hints_shown += 1
    return HintOutcome(kata, exercise, tiers[:level], new, len(tiers), why)
