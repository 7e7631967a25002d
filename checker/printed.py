"""What a check printed: the last lines of its output, kept to show under its failure.

The check child runs pytest with ``--capture=no``: all output goes to the runner's pipe
(checker.tail), one bounded tail for the whole process. During each check's call,
``sys.stdout`` and ``sys.stderr`` are also :class:`Tee` objects, which pass every write on and
keep the last ``LINES`` lines, each cut to ``WIDTH`` characters, whatever the amount printed.

Learner code can reach these objects (they are ``sys.stdout``), so what they hold is data, read
without running any of its code: through slot descriptors bound when this module loads (the
sandbox's integrity snapshot guards the classes; the bound descriptors do not depend on it),
type by type, cut to size again, with control characters written out as escapes (no terminal
codes, nothing a JUnit file cannot hold). The renderers show it as plain text, never markup.
Writes that bypass ``sys.stdout`` (``os.write(1, ...)``, native code) reach the pipe only.
"""

from __future__ import annotations

import contextlib
import sys
from collections import deque
from collections.abc import Iterator

LINES = 10
WIDTH = 160


class Lines:
    """The last ``LINES`` complete lines written, the line being written, and a line count."""

    __slots__ = ("done", "partial", "count")

    def __init__(self) -> None:
        self.done: deque[str] = deque(maxlen=LINES)
        self.partial = ""
        self.count = 0

    def add(self, text: str) -> None:
        last = text.rfind("\n")
        if last < 0:
            self.partial = (self.partial + text[:WIDTH + 1])[:WIDTH + 1]
            return
        self.count += text.count("\n")
        found, end = [], last  # the last LINES complete lines, found from the right
        while len(found) < LINES:
            start = text.rfind("\n", 0, end) + 1
            found.append(text[start:min(end, start + WIDTH + 1)])
            if start == 0:
                found[-1] = (self.partial + found[-1])[:WIDTH + 1]
                break
            end = start - 1
        self.done.extend(reversed(found))
        self.partial = text[last + 1:last + 2 + WIDTH]


class Tee:
    """A text stream that passes writes on to ``stream`` and keeps their lines in ``lines``."""

    __slots__ = ("stream", "lines")

    def __init__(self, stream, lines: Lines) -> None:
        self.stream, self.lines = stream, lines

    def write(self, text):
        written = self.stream.write(text)
        if isinstance(text, str):
            self.lines.add(str.__str__(text))  # a str subclass's own methods are not called
        return written

    def writelines(self, lines) -> None:
        for text in lines:
            self.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str):  # encoding, isatty, fileno, buffer, ...
        return getattr(self.stream, name)


_DONE, _PARTIAL, _COUNT = (Lines.__dict__[n] for n in ("done", "partial", "count"))
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(32), *range(127, 160)) if c != 9}


@contextlib.contextmanager
def recording(out=None, err=None) -> Iterator[Lines]:
    """For the block, ``sys.stdout`` and ``sys.stderr`` write to ``out`` and ``err`` (default:
    the streams in place) and into one :class:`Lines`; after it, ``sys.stdout`` and
    ``sys.stderr`` are ``out`` and ``err`` again, whatever the block did to them."""
    out, err = out or sys.stdout, err or sys.stderr
    lines = Lines()
    sys.stdout, sys.stderr = Tee(out, lines), Tee(err, lines)
    try:
        yield lines
    finally:
        sys.stdout, sys.stderr = out, err


def clean(line: str) -> str:
    """One line as data: what a terminal would leave of it after a carriage return, control
    characters and lone surrogates written out, at most ``WIDTH`` characters."""
    line = line.rstrip("\r").rsplit("\r", 1)[-1]
    line = line.encode("utf-8", "backslashreplace").decode("utf-8").translate(_ESCAPES)
    return line if len(line) <= WIDTH else line[:WIDTH - 1] + "…"


def lines_of(lines: Lines) -> tuple[list[str], int]:
    """The last lines held (the unfinished one too) and how many lines were printed, read
    without calling anything the learner's code could have swapped in."""
    done, partial, count = _DONE.__get__(lines), _PARTIAL.__get__(lines), _COUNT.__get__(lines)
    kept = [x for x in list(done)[-LINES:] if type(x) is str] if type(done) is deque else []
    if type(partial) is str and partial:
        kept = [*kept, partial][-LINES:]
        count = count + 1 if type(count) is int else 0
    total = count if type(count) is int and count >= len(kept) else len(kept)
    return [clean(x) for x in kept], total


def received(output, total) -> tuple[tuple[str, ...], int]:
    """A report's printed lines, as the runner takes them: bounded and clean again."""
    if not isinstance(output, list):
        return (), 0
    kept = tuple(clean(x) for x in output[-LINES:] if isinstance(x, str))
    return kept, total if isinstance(total, int) and total >= len(kept) else len(kept)


def heading(shown: int, total: int) -> str:
    """The line above the printed lines."""
    if shown >= total:
        what = "1 line" if total == 1 else f"{total} lines"
    else:
        what = f"the last {shown} of {total} lines"
    return f"Printed during this check ({what}):"


def as_text(output: tuple[str, ...] | list[str], total: int) -> str:
    """The printed lines under their heading, as plain text (pytest, JUnit)."""
    if not output:
        return ""
    return "\n".join([heading(len(output), total), *(f"  | {x}" for x in output)])
