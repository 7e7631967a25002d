"""Where learner code got stuck: time limits inside the check child, and the words for them.

Three layers, each naming the learner's line where the time went:

1. Importing the learner's file runs under the per-check time limit (``import_limit``): an
   interval timer raises :class:`Stuck` in the stuck frame, which the loader reports.
2. Each check runs under pytest-timeout; a timeout that learner code swallowed (a loop in
   ``__del__``, whose exceptions Python only prints) is still seen (``swallowed_timeouts``)
   and a check that overran fails (``overran``).
3. A backstop for what no Python exception can stop (a C call that never checks signals,
   code that catches every exception): ``faulthandler`` dumps every thread's stack and ends
   the process when a phase (the import, one check, the gap between checks) outlives its
   limit; the runner finds the dump in the output (``from_dump``).
4. The runner's own: each deadline the backstop sets is also written next to the run's
   report (``tell_runner``), out of learner code's reach; a runner that sees one pass by
   RUNNER_MARGIN_S (``overdue``) ends the process itself. This holds for what stops the
   whole process, or the backstop with it: SIGSTOP, ``faulthandler.cancel_dump_traceback_later``.

Deep recursion (after ``sys.setrecursionlimit(10**7)``) is told apart from a loop by the
stack: the same learner function, again and again.
"""

from __future__ import annotations

import contextlib
import faulthandler
import linecache
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

GRACE_S = 3.0  # the backstop fires this long after a phase's own limit
RUNNER_MARGIN_S = 2.0  # the runner ends the process this long after the backstop's deadline
OVERDUE_POLL_S = 0.5  # how often the runner looks at that deadline
REFIRE_S = 0.005  # after a swallowed timeout, the next one comes this soon
RECURSION_CAP = 10_000  # sys.setrecursionlimit(10**7) gets this (see cap_recursion)
RECURSION_FRAMES = 50  # this many calls of one function in a row: recursion, not a loop
_DUMP_FRAME = re.compile(r'^\s+File "(?P<path>.+)", line (?P<line>\d+) in (?P<func>.+)$')


class Stuck(BaseException):
    """Raised in learner code that outlived its time limit (a BaseException: a learner's
    ``except Exception`` does not swallow it)."""


@dataclass(frozen=True)
class Where:
    """The innermost learner frame of a stuck stack."""

    path: str
    line: int
    func: str
    repeats: int  # how many times that function is on the stack in a row

    @property
    def recursion(self) -> bool:
        return self.repeats >= RECURSION_FRAMES

    def describe(self) -> str:
        source = linecache.getline(self.path, self.line).strip()
        name = self.path.rsplit("/", 1)[-1]
        at = f"{name}:{self.line}" + (f": {source}" if source else "")
        if self.recursion:
            return (f"unbounded recursion: `{self.func}` calls itself again and again "
                    f"(at least {self.repeats} calls deep), at {at}. Give the recursion a base "
                    "case, or use a loop.")
        place = "a `__del__` method" if self.func == "__del__" else (
            "the top level of your file" if self.func == "<module>" else f"`{self.func}`")
        return (f"stuck in {place}, at {at}. Look for an infinite loop, or a loop over far "
                "too many elements.")


def _where(frames: Iterator[tuple[str, int, str]], impl: str) -> Where | None:
    """From (path, line, func) innermost first: the innermost learner frame and how many
    times its function repeats right above it."""
    found, repeats = None, 0
    for path, line, func in frames:
        if found is None:
            if path == impl:
                found, repeats = (path, line, func), 1
        elif (path, func) == (found[0], found[2]):
            repeats += 1
        else:
            break
    return Where(found[0], found[1], found[2], repeats) if found else None


def _frames_of(frame, limit: int = 100_000) -> Iterator[tuple[str, int, str]]:
    while frame is not None and limit > 0:
        yield frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name
        frame, limit = frame.f_back, limit - 1


def where_tb(tb, impl: str) -> Where | None:
    """The innermost learner frame of a traceback (outermost first, as tracebacks are)."""
    entries = []
    while tb is not None:
        entries.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno, tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    return _where(reversed(entries), impl)


def is_timeout(exc: BaseException | None) -> bool:
    """Whether ``exc`` ended a check for its time: pytest-timeout's failure, or :class:`Stuck`."""
    return isinstance(exc, Stuck) or (type(exc).__name__ == "Failed"
                                      and str(exc).startswith("Timeout"))


def from_timeout(exc: BaseException, func: str, impl: str) -> Stuck | None:
    """pytest-timeout's failure, raised inside a call of learner ``func``, as a :class:`Stuck`
    that says where the time went; None for any other exception."""
    timeout = sys.modules.get("pytest_timeout")
    tb = exc.__traceback__
    if timeout is None or tb is None or not str(exc).startswith("Timeout"):
        return None
    while tb is not None and tb.tb_frame.f_code.co_filename != timeout.__file__:
        tb = tb.tb_next
    if tb is None:
        return None  # raised by code that only says "Timeout"
    limit = re.match(r"Timeout \(>([0-9.]+)s\)", str(exc))
    where = where_tb(exc.__traceback__, impl)
    return Stuck(f"Timeout (>{limit.group(1) if limit else '?'}s): `{func}` did not return "
                 "within the per-check time limit and was stopped: "
                 + (where.describe() if where else "the time went outside your file."))


def trim(exc: BaseException, keep: int = 60) -> BaseException:
    """Cut a very deep traceback (unbounded recursion) to its first ``keep`` entries, so that
    reporting it costs nothing; returns ``exc``."""
    tb = exc.__traceback__
    for _ in range(keep):
        if tb is None:
            return exc
        tb = tb.tb_next
    if tb is not None:
        with contextlib.suppress(AttributeError, TypeError):
            tb.tb_next = None
    return exc


# ----------------------------------------------------------------------------- in the child


def cap_recursion() -> None:
    """Cap what ``sys.setrecursionlimit`` accepts. Unbounded recursion under a limit of
    10**7 grows a stack of millions of frames in seconds, and unwinding it takes tens of
    seconds more (or, through C calls, overflows the C stack: a segmentation fault); under
    the cap it ends in a RecursionError at once."""
    real = sys.setrecursionlimit

    def setrecursionlimit(limit: int) -> None:
        real(min(int(limit), RECURSION_CAP))

    setrecursionlimit.__doc__ = real.__doc__
    sys.setrecursionlimit = setrecursionlimit


_told: list[int] = []  # the file descriptor of the deadline file (see tell_runner)


def deadline_path(report: str | os.PathLike) -> str:
    """Where the backstop's deadline for the run reporting to ``report`` is written."""
    return f"{os.fspath(report)}.deadline"


def tell_runner(report: str | None) -> None:
    """From now on, write each deadline the backstop sets next to ``report`` (layer 4)."""
    while _told:
        with contextlib.suppress(OSError):
            os.close(_told.pop())
    if report and report != os.devnull:  # an armed process has no run (nor runner) yet
        with contextlib.suppress(OSError):
            _told.append(os.open(deadline_path(report), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                 0o600))


def backstop(seconds: float) -> None:
    """(Re-)arm the last resort: dump every stack and end the process after ``seconds``."""
    with contextlib.suppress(Exception):
        faulthandler.dump_traceback_later(seconds + GRACE_S, exit=True, file=sys.__stderr__)
    for fd in _told:  # a write in place (never audited): no open while learner code runs
        with contextlib.suppress(OSError):
            os.pwrite(fd, f"{time.time() + seconds + GRACE_S:20.3f}".encode(), 0)


def overdue(report: str | os.PathLike) -> bool:
    """In the runner: has the process reporting to ``report`` outlived its backstop?"""
    try:
        with open(deadline_path(report), "rb") as fh:
            deadline = float(fh.read(20))
    except (OSError, ValueError):
        return False  # none set yet (the process is starting), or being written
    return time.time() > deadline + RUNNER_MARGIN_S


@contextlib.contextmanager
def import_limit(seconds: float, impl: str) -> Iterator[None]:
    """Raise :class:`Stuck` in the learner's frame if the block outlives ``seconds``."""

    def expire(signum, frame):
        where = _where(_frames_of(frame), impl)
        what = where.describe() if where else "stuck outside your file."
        raise Stuck(f"importing your file did not finish within {seconds:g} s (the per-check "
                    f"time limit) and was stopped: {what}")

    backstop(seconds)
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def watch_swallowed(state: dict) -> None:
    """Record timeouts raised where Python only prints them (``__del__``, weakref callbacks):
    ``state['swallowed']`` maps the running check's id to where its time went."""
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        exc = unraisable.exc_value
        if not isinstance(exc, Stuck) and is_timeout(exc):
            where = where_tb(unraisable.exc_traceback, str(state.get("impl_path", "")))
            state.setdefault("swallowed", {}).setdefault(state.get("running"), where)
            _abort_soon(str(state.get("impl_path", "")))
        previous(unraisable)

    sys.unraisablehook = hook


def _abort_soon(impl: str) -> None:
    """After a swallowed timeout the check goes on (and may loop in the next ``__del__``):
    fire again soon, in learner code only, breaking such loops, until the check itself is
    stopped. pytest-timeout puts its own handler back when the check ends."""

    def fire(signum, frame):
        signal.setitimer(signal.ITIMER_REAL, REFIRE_S)
        if any(path == impl for path, _, _ in _frames_of(frame, limit=500)):
            raise Stuck("Timeout: the check was stopped after its time limit")

    signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, REFIRE_S)


# Seconds of the running check spent in the judge's own work with the check's clock stopped
# (a C++ build, checker.cppbuild): not the learner's time. Mutated in place, never rebound.
_EXCUSED = [0.0]


def excuse(seconds: float) -> None:
    """Don't count ``seconds`` of the running check against its time limit."""
    _EXCUSED[0] += max(0.0, seconds)


def reset_excused() -> None:
    _EXCUSED[0] = 0.0


def overran(state: dict, check: str, duration: float, limit: float) -> str | None:
    """The message for a check that went past its time limit although it returned (less the
    seconds excused for the judge's own work)."""
    where = state.get("swallowed", {}).pop(check, None)
    if where is None and duration - _EXCUSED[0] <= limit:
        return None
    place = where.describe() if where else "the time went in code whose errors were swallowed."
    return (f"Timeout (>{limit:g}s): this check ran past its time limit although your code "
            f"returned: {place}")


# ----------------------------------------------------------------------------- in the runner


def from_dump(output: str, impl: str) -> str | None:
    """What a faulthandler backstop dump in the child's ``output`` says, or None."""
    at = output.rfind("Timeout (")
    if at < 0:
        return None
    frames = [(m["path"], int(m["line"]), m["func"].strip())
              for m in map(_DUMP_FRAME.match, output[at:].splitlines()) if m]
    in_import = any(func == "load_module" for _, _, func in frames)
    where = _where(iter(frames), impl)
    what = where.describe() if where else "stuck outside your file (in the checks' own code)."
    phase = "while your file was being imported" if in_import else "during the checks"
    return (f"Your code was stopped {phase} after it outlived the time limit and did not "
            f"respond to it: {what}")
