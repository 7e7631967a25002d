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
from checker.printed import received

OUTPUT_TAIL_BYTES = 4000
DUMP_BYTES = 256 * 1024  # where a stack dump is looked for


@dataclass(frozen=True)
class ExerciseResult:
    name: str
    status: str  # passed | failed (see _exercise: nothing else reaches here)
    message: str = ""
    diagnosis: tuple[tuple[str, str], ...] = ()  # (mistake id, misconception)
    duration: float = 0.0
    checks: int = 0
    failed_checks: int = 0
    output: tuple[str, ...] = ()  # the last lines its failing check printed (checker.printed)
    output_lines: int = 0  # how many lines that check printed in all
    not_applicable: tuple[str, ...] = ()  # checks this machine could not run, each with why

    @property
    def ok(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class CheckResult:
    kata: str
    seed: int
    status: str  # passed | failed | load_error | crashed | timeout | interrupted | tampered | error
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


def _exercise(name: str, e: dict | None) -> ExerciseResult:
    """One exercise's verdict from its report entry, failing closed: an exercise the report
    lacks, an unknown status or a failure without a message never reads as passed or blank."""
    if e is None:
        return ExerciseResult(name, "failed", "the report has no verdict for this exercise")
    status, message = e.get("status"), str(e.get("message") or "")
    if status not in ("passed", "failed"):
        status, message = "failed", f"the report gave this exercise an unknown status ({status!r})"
    elif status == "failed" and not message:
        message = "a check of this exercise failed without saying why"
    printed = received(e.get("output"), e.get("output_lines")) if status == "failed" else ((), 0)
    return ExerciseResult(
        name=name, status=status, message=message,
        diagnosis=tuple((d["id"], d["misconception"]) for d in e.get("diagnosis", ())),
        duration=e.get("duration", 0.0), checks=e.get("checks", 0),
        failed_checks=e.get("failed_checks", 0), output=printed[0], output_lines=printed[1],
        not_applicable=tuple(str(n) for n in e.get("not_applicable", ())))


def from_report(kata: Kata, report: dict, duration: float, output_tail: str = "") -> CheckResult:
    exercises = tuple(_exercise(name, report["exercises"].get(name)) for name in kata.exercises)
    if report.get("load_error"):
        message = report["load_error"]["message"] or "your file could not be loaded"
        return CheckResult(
            kata=kata.name, seed=report["seed"], status="load_error",
            exercises=tuple(ExerciseResult(e.name, "failed", message) for e in exercises),
            message=message, output_tail=output_tail, duration=duration, impl=report["impl"],
        )
    status = "passed" if all(e.ok for e in exercises) else "failed"
    return CheckResult(kata=kata.name, seed=report["seed"], status=status,
                       exercises=exercises, output_tail=output_tail, duration=duration,
                       impl=report["impl"], extra={"armed": report.get("armed")})


def clean(report: dict) -> bool:
    """Whether every check that the report's process collected reported, and passed."""
    reported = {t["id"]: t["outcome"] for entries in report["results"].values() for t in entries}
    return not report["load_error"] and all(
        reported.get(i) == "passed" for ids in report["collected"].values() for i in ids)


def exit_fits(report: dict, code: int | None) -> bool:
    """Whether a process that wrote ``report`` ended as its report says: pytest's exit status
    0 when every check passed (5 when it had none to run: a warm worker's process whose share
    is empty), 1 when one did not. A report from a process that then died, was killed, or
    chose another status is not to be trusted."""
    try:
        if not clean(report):
            return code == 1
        return code == 0 or (code == 5 and not any(report["collected"].values()))
    except (KeyError, TypeError, AttributeError):
        return False


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
              duration: float, *, unresponsive: bool = False) -> CheckResult:
    """The outcome of a run stopped by the wall-clock limit (cold or warm), or, when
    ``unresponsive``, by the runner once the process outlived its own time limits
    (checker.stuck.overdue)."""
    message = (f"The checks did not finish within {wall:g} s and were stopped. "
               "Look for an infinite loop (in a function, at import time, or in __del__).")
    if unresponsive:
        message = (f"The check process stopped responding to its time limits ({kata.timeout:g} s "
                   f"per check) and was ended from outside after {duration:.0f} s: something "
                   "stopped the process (SIGSTOP) or switched its timers off (signal.signal, "
                   "signal.setitimer, faulthandler) while it was stuck. Look for that in your "
                   "file, and for an infinite loop.")
    return CheckResult(kata=kata.name, seed=seed, status="timeout", message=message,
                       output_tail=read_tail(output), duration=duration, impl=str(impl))


def interrupted(kata: Kata, seed: int, impl: Path, duration: float = 0.0) -> CheckResult:
    """The outcome of a run the learner stopped with Ctrl-C: nothing is to be recorded."""
    return CheckResult(kata=kata.name, seed=seed, status="interrupted",
                       message="Interrupted: the checks were stopped; nothing was recorded.",
                       duration=duration, impl=str(impl))


PYTEST_OWN_ERRORS = (3, 4)  # pytest's INTERNAL_ERROR and USAGE_ERROR exit statuses


def internal_error(kata: Kata, seed: int, impl: Path, what: str, tail: str = "") -> CheckResult:
    """A run that failed for the tool's own reasons: never the learner's fault, never recorded."""
    return CheckResult(
        kata=kata.name, seed=seed, status="error", output_tail=tail, impl=str(impl),
        message=f"The checks of {kata.name} could not run: {what} Reinstalling torch-katas "
        "(or the release the workspace was made with) should help; please report it if not.")


def outcome_from_files(kata: Kata, seed: int, impl: Path, report: Path, output: Path,
                       returncode: int | None, duration: float) -> CheckResult:
    tail = read_tail(output)
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        trusted = exit_fits(data, returncode)
    except (OSError, ValueError):
        data, trusted = None, False
    if data is None:
        from checker.stuck import from_dump

        stuck = from_dump(read_tail(output, DUMP_BYTES), str(impl))
        if stuck:  # the child's backstop ended it (checker.stuck)
            return CheckResult(kata=kata.name, seed=seed, status="timeout", message=stuck,
                               output_tail=tail, duration=duration, impl=str(impl))
        if returncode in PYTEST_OWN_ERRORS and str(impl) not in tail and "Timeout" not in tail:
            return internal_error(kata, seed, impl, f"pytest stopped with an internal error "
                                  f"(exit status {returncode}) before your code ran.", tail)
    if not trusted:
        return CheckResult(kata=kata.name, seed=seed, status="crashed",
                           message=crash_message(returncode, reported=data is not None),
                           output_tail=tail, duration=duration, impl=str(impl))
    return from_report(kata, data, duration, tail)


def crash_message(returncode: int | None, *, reported: bool = False) -> str:
    if reported:
        how = (f"died from {_signal_name(returncode)}" if returncode is not None and returncode < 0
               else f"ended with exit status {returncode}")
        return (f"The check process {how} after writing a report that says otherwise: a report "
                "from a check process that did not end as it reported is not trusted, and the "
                "run fails.")
    if returncode is not None and returncode < 0:
        name = _signal_name(returncode)
        cause = {
            "SIGSEGV": "a segmentation fault (e.g. through ctypes, a bad as_strided into "
                       "memory outside the storage, or unbounded recursion through C code)",
            "SIGKILL": "being killed (often the memory limit)",
            "SIGABRT": "an abort inside native code",
        }.get(name, name)
        return f"The check process died from {cause} before it could report."
    return (f"The check process ended (exit status {returncode}) before it could report. "
            "Does your code call os._exit, kill its own process, or exhaust memory?")


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
