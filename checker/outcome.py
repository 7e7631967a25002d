"""What a check run comes to: the outcome types, and how a report file becomes one.

The bottom of the engine: the cold runner and the warm worker's client build a
:class:`CheckResult` from the files their child left; the CLI only reads it.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from checker.catalog import Kata

OUTPUT_TAIL_BYTES = 4000


@dataclass(frozen=True)
class ExerciseResult:
    name: str
    status: str  # passed | failed | skipped | missing
    message: str = ""
    diagnosis: tuple[tuple[str, str], ...] = ()  # (mistake id, misconception)
    duration: float = 0.0
    checks: int = 0
    failed_checks: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")


@dataclass(frozen=True)
class CheckResult:
    kata: str
    seed: int
    status: str  # passed | failed | load_error | crashed | timeout | interrupted
    exercises: tuple[ExerciseResult, ...] = ()
    message: str = ""  # for load_error / crashed / timeout: what happened
    output_tail: str = ""
    duration: float = 0.0
    impl: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def exercises_passed(self) -> int:
        return sum(1 for e in self.exercises if e.ok)

    def first_failure(self) -> ExerciseResult | None:
        return next((e for e in self.exercises if not e.ok), None)


def from_report(report: dict, duration: float, output_tail: str = "") -> CheckResult:
    exercises = tuple(
        ExerciseResult(
            name=name,
            status=e["status"],
            message=e["message"],
            diagnosis=tuple((d["id"], d["misconception"]) for d in e.get("diagnosis", ())),
            duration=e["duration"],
            checks=e["checks"],
            failed_checks=e["failed_checks"],
        )
        for name, e in report["exercises"].items()
    )
    if report.get("load_error"):
        return CheckResult(
            kata=report["kata"], seed=report["seed"], status="load_error",
            exercises=tuple(
                ExerciseResult(e.name, "failed", report["load_error"]["message"]) for e in exercises
            ),
            message=report["load_error"]["message"], output_tail=output_tail,
            duration=duration, impl=report["impl"],
        )
    status = "passed" if all(e.ok for e in exercises) else "failed"
    return CheckResult(kata=report["kata"], seed=report["seed"], status=status,
                       exercises=exercises, output_tail=output_tail, duration=duration,
                       impl=report["impl"], extra={"armed": report.get("armed")})


def random_seed() -> int:
    """A fresh seed for a run that was given none."""
    import random

    return random.SystemRandom().randrange(1, 10**6)



def read_tail(path: Path, limit: int = OUTPUT_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return ("... (output truncated)\n" if size > limit else "") + text


def timed_out(kata: Kata, seed: int, impl: Path, wall: float, output: Path,
              duration: float) -> CheckResult:
    """The outcome of a run stopped by the wall-clock limit (cold or warm)."""
    return CheckResult(
        kata=kata.name, seed=seed, status="timeout",
        message=f"The checks did not finish within {wall:g} s and were stopped. "
        "Look for an infinite loop (in a function, at import time, or in __del__).",
        output_tail=read_tail(output), duration=duration, impl=str(impl))


def interrupted(kata: Kata, seed: int, impl: Path, duration: float = 0.0) -> CheckResult:
    """The outcome of a run the learner stopped with Ctrl-C: nothing is to be recorded."""
    return CheckResult(kata=kata.name, seed=seed, status="interrupted",
                       message="Interrupted: the checks were stopped; nothing was recorded.",
                       duration=duration, impl=str(impl))


def outcome_from_files(kata: Kata, seed: int, impl: Path, report: Path, output: Path,
                       returncode: int | None, duration: float) -> CheckResult:
    tail = read_tail(output)
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return CheckResult(kata=kata.name, seed=seed, status="crashed",
                           message=crash_message(returncode), output_tail=tail,
                           duration=duration, impl=str(impl))
    return from_report(data, duration, tail)


def crash_message(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        cause = {
            "SIGSEGV": "a segmentation fault (e.g. through ctypes or a bad as_strided into "
                       "memory outside the storage)",
            "SIGKILL": "being killed (often the memory limit)",
            "SIGABRT": "an abort inside native code",
        }.get(name, name)
        return f"The check process died from {cause} before it could report."
    return (f"The check process ended (exit status {returncode}) before it could report. "
            "Does your code call os._exit, kill its own process, or exhaust memory?")
