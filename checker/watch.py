"""``kata watch``: re-check the current kata on every save and redraw the verdict in place.

Events come from two threads into one queue: file changes (watchfiles, on the kata's folder so
an editor's atomic save-by-rename is seen) and single keys (the terminal in cbreak mode).
The session itself (:class:`WatchSession`) is plain logic over those events, so it is tested
without a terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from checker import app as domain
from checker.catalog import Kata
from checker.runner import run_checks
from checker.workspace import Workspace

KEYS = "[bold]h[/] hint · [bold]l[/] list · [bold]r[/] re-run · [bold]v[/] all · [bold]q[/] quit"
NO_EVENTS_TIP = "Saves not noticed (network drive, WSL)? Press r, or use `kata watch --poll`."


@dataclass
class WatchSession:
    ws: Workspace
    kata: Kata
    out: object  # a rich Console
    render: object  # the checker.render module
    seed: int | None = None
    passed: bool = False
    runs: int = field(default=0)
    worker: WarmWorker | None = None
    last: object = None  # the outcome on screen
    full: bool = False  # v: the whole failure, not trimmed to the terminal

    @property
    def file(self) -> Path:
        return self.ws.kata_file(self.kata)

    def footer(self) -> None:
        keys = KEYS + (" · [bold green]n[/] next kata" if self.passed else "")
        self.out.print(f"\n[dim]Watching {self.render.escape(self.render.rel(self.file))}[/]")
        self.out.print(f"[dim]{keys}[/]")
        if self.runs == 1:
            self.out.print(f"[dim]{NO_EVENTS_TIP}[/]")

    def check(self) -> bool:
        """Run the checks and redraw once the verdict is in. The last verdict stays on screen
        meanwhile, under a "re-checking" line. A verdict for a file that changed while it ran
        is dropped (neither shown nor recorded): returns False, and the caller runs again."""
        if not self.file.exists():
            self.out.clear()
            self.out.print(f"[bold yellow]{self.render.escape(str(self.file))} is gone.[/] "
                           f"Waiting for it to come back — or restore the stub with "
                           f"`kata reset {self.kata.name}`.")
            self.footer()
            return True
        if self.last is not None:
            self.out.print("[dim]re-checking…[/]")
        if self.worker is not None:
            self.worker.ensure()
        before = _contents(self.file)
        stale = []

        def run():
            result = run_checks(self.kata, self.file, seed=self.seed, use_worker=self.ws.state_dir)
            if _contents(self.file) != before:  # saved again meanwhile: about code that is gone
                stale.append(result)
                return dataclasses.replace(result, status="interrupted")  # never recorded
            return result

        outcome = domain.check_and_record(self.ws, self.kata, run)
        self.runs += 1
        if stale:
            return False
        if outcome.result.status == "interrupted":
            return True
        self.last = outcome
        self.passed = self.passed or outcome.result.passed
        self.full = False
        self.redraw()
        return True

    def redraw(self) -> None:
        """The last verdict, fitted to the terminal (exercise lines first, then as much of
        the first failure as fits, what its check printed going first; v shows it whole)."""
        self.out.clear()
        if self.last is None:
            return
        height = getattr(getattr(self.out, "size", None), "height", 0) or 0
        if self.full or not self.out.is_terminal or height < 10:
            self.render.show_check_outcome(self.out, self.last)
        else:
            from rich.text import Text

            room = height - 6  # the footer's lines
            lines = self._rendered(printed=0)
            first = self.last.result.first_failure()
            spare = room - len(lines) - 1  # the printed lines' heading
            if first is not None and first.output and spare > 0:
                lines = self._rendered(printed=min(spare, len(first.output)))
            if len(lines) > room:
                lines = [*lines[:room - 1], "… press v to see the whole failure"]
            self.out.print(Text.from_ansi("\n".join(lines)))
        self.footer()

    def _rendered(self, printed: int) -> list[str]:
        """The verdict's terminal lines, with at most ``printed`` lines of printed output."""
        with self.out.capture() as captured:
            self.render.show_check_outcome(self.out, self.last, printed=printed)
        return captured.get().rstrip("\n").split("\n")

    def on_key(self, key: str) -> bool:
        """Handle one key; False means quit."""
        key = key.lower()
        if key == "q":
            return False
        if key == "r":
            while not self.check():
                pass
        elif key == "v" and self.last is not None:
            self.full = not self.full
            self.redraw()
        elif key == "h":
            self.out.print()
            self.render.show_hint(self.out, domain.next_hint(self.ws, self.kata))
            self.footer()
        elif key == "l":
            self.out.print()
            self.render.show_list(self.out, domain.rows(self.ws, self.ws.progress.load()))
            self.footer()
        elif key == "n" and not self.passed:
            self.out.print(f"\n[yellow]n moves on once {self.render.escape(self.kata.name)} "
                           "passes: every exercise must be green first.[/] Press h for a hint.")
        elif key == "n" and self.passed:
            nxt = domain.current_kata(self.ws, self.ws.progress.load())
            if nxt is None or nxt.name == self.kata.name:
                self.out.print("\n[bold green]No further kata: everything is done.[/]")
                return True
            self.kata, self.passed = nxt, False
            self.ws.install_kata_files(nxt)
            self.out.clear()
            lesson = self.ws.lesson_text(nxt)
            self.render.show_next(self.out, nxt, self.file, lesson, None,
                                  len(self.ws.catalog.katas), in_watch=True)
            self.last = None
            self.footer()
        return True


def _contents(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def key_events(events: queue.Queue, stop: threading.Event) -> None:
    """Feed single key presses into ``events`` (nothing when stdin is not a terminal)."""
    if not sys.stdin.isatty():
        return
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        while not stop.is_set():
            readable, _, _ = select.select([fd], [], [], 0.1)
            if readable:
                ch = sys.stdin.read(1)
                if ch:
                    events.put(("key", ch))
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def file_events(folder_of: Callable[[], Path], name_of: Callable[[], str], events: queue.Queue,
                stop: threading.Event, poll: bool) -> None:
    """Feed saves of the watched file into ``events`` (the folder is watched, for renames)."""
    import watchfiles

    while not stop.is_set():
        folder, name = folder_of(), name_of()
        folder.mkdir(parents=True, exist_ok=True)
        for changes in watchfiles.watch(folder, stop_event=stop, debounce=30, step=10,
                                        force_polling=poll, yield_on_timeout=True,
                                        rust_timeout=500, raise_interrupt=False):
            if any(Path(p).name == name for _, p in changes):
                events.put(("change", None))
            if folder_of() != folder:
                break  # moved on to another kata: watch its folder


class WarmWorker:
    """The workspace's check worker for a watch session: started if absent, restarted when it
    retired itself (a checker file changed), stopped at the end if this session started it."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.procs: list = []
        self.ensured = False

    def ensure(self) -> None:
        """Start the worker if it is not answering. A replacement (the first one died or
        stopped answering) is not waited for: until it answers, checks run cold."""
        from checker import worker

        if not worker.is_running(self.state_dir):
            proc = worker.start(self.state_dir, wait=0 if self.ensured else 30)
            if proc is not None:
                self.procs.append(proc)
        self.ensured = True

    def close(self) -> None:
        from checker import worker

        if self.procs:
            worker.stop(self.state_dir)
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.wait(timeout=3)


def run(session: WatchSession, *, poll: bool = False) -> None:
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    threads = [
        threading.Thread(target=file_events, daemon=True,
                         args=(lambda: session.file.parent, lambda: session.file.name, events,
                               stop, poll)),
        threading.Thread(target=key_events, args=(events, stop), daemon=True),
    ]
    session.out.print("[dim]Starting the check worker (imports torch once)…[/]")
    session.worker = WarmWorker(session.ws.state_dir)
    session.worker.ensure()
    try:
        for t in threads:
            t.start()
        while not session.check():
            pass
        while True:
            kind, value = events.get()
            if kind == "change":
                while not events.empty():  # collapse a burst of saves into one run
                    nxt = events.get_nowait()
                    if nxt[0] == "key":
                        events.put(nxt)
                        break
                while not session.check():  # superseded by a newer save: judge that one
                    pass
            elif not session.on_key(value):
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=1)
        session.worker.close()
    session.out.print("\nStopped watching. Your progress is saved.")
