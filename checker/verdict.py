"""What a check's outcome comes to: only a check that ran to completion and passed counts.

Every phase of a check (setup, call, teardown) is judged here. A skip, an xfail, an xpass,
an error in setup or teardown: each is a failure, with a message naming it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]+")


def failure_message(call: pytest.CallInfo, impl_path: Path) -> str:
    """What the learner reads for a failed check."""
    excinfo = call.excinfo
    if excinfo is None:
        return ""
    exc = excinfo.value
    if isinstance(exc, pytest.fail.Exception | pytest.skip.Exception):
        text = str(exc.msg if hasattr(exc, "msg") else exc)
        if text.startswith("Timeout"):  # pytest-timeout ended a check that ran too long
            from checker.stuck import where_tb

            where = where_tb(exc.__traceback__, str(impl_path))
            return (f"{text.split(' from ')[0]}: this check ran past its time limit and was "
                    "stopped: " + (where.describe() if where else "look for an infinite loop "
                                   "or a loop over far too many elements in your code."))
        return text
    if isinstance(exc, AssertionError):
        text = str(exc)
        # A check's own message comes first; pytest's rewritten "assert ..." explanation
        # after it only repeats internals (object reprs), so it is dropped.
        head, sep, _ = text.partition("\nassert ")
        return _ADDRESS_RE.sub("0x?", head if sep and head.strip() else text) or "assertion failed"
    frames = [
        e for e in excinfo.traceback if Path(str(e.path)).resolve() == impl_path
    ]
    if isinstance(exc, NotImplementedError) and frames:
        return (
            f"not implemented yet: {exc or 'the stub still raises NotImplementedError'}. "
            "Replace the `raise NotImplementedError(...)` with your implementation."
        )
    where = ""
    if frames:
        last = frames[-1]
        source = str(last.statement).strip() if last.statement else ""
        where = f"\n  at {impl_path.name}:{last.lineno + 1}: {source}"
    return f"your code raised {type(exc).__name__}: {exc}{where}"


def signature(exc: BaseException) -> str:
    """What two failures must share to be "the same mistake": the exception type and text
    (addresses masked). The learner's file name and line are deliberately not part of it."""
    text = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
    return _ADDRESS_RE.sub("0x?", text)


def phase_problem(report: pytest.TestReport, call: pytest.CallInfo, impl_path: Path) -> str | None:
    """Why this phase of a check does not count as passed; None when it does."""
    xfail = hasattr(report, "wasxfail")
    if report.passed and not xfail:
        return None
    where = {"setup": "setting the check up", "teardown": "cleaning up after the check"}
    prefix = f"{where[report.when]}: " if report.when in where else ""
    if report.passed:  # xfail marked, yet passed
        return f"{prefix}the check passed while marked as expected to fail (xpass); a kata passes only on checks that run plainly"
    if report.failed:
        return prefix + (failure_message(call, impl_path) or f"the check failed ({report.when})")
    exc = call.excinfo.value if call.excinfo is not None else None
    reason = str(getattr(exc, "msg", None) or exc or "no reason given")
    learner = call.excinfo is not None and any(
        Path(str(e.path)).resolve() == impl_path for e in call.excinfo.traceback)
    kind = "pytest.xfail" if xfail else "pytest.skip"
    if learner:
        return f"{prefix}your code raised {kind} ({reason}); a kata cannot be skipped or expected to fail"
    return (f"{prefix}the check ended in {kind} ({reason}): a kata passes only when its checks "
            "run to completion")
