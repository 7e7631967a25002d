"""No process outlives a check run: subreaper, parent-death signal, watchdog, descendant kill.

- The runner (the CLI on the cold path, the worker on the warm one) is a *child subreaper*
  (``PR_SET_CHILD_SUBREAPER``): a process that escapes its parent (``fork`` + ``setsid``
  through ctypes, say) is re-parented to the runner instead of init, so when a run ends
  ``kill_descendants`` finds it among the runner's descendants and kills it.
- A check child dies with its parent: ``PR_SET_PDEATHSIG`` (SIGKILL) where Linux offers it,
  and a watchdog thread in the child that ends its whole process group once its parent is
  gone, for the moment before the signal is set and for systems without it.

Linux's ``prctl`` is reached through ctypes; elsewhere these are no-ops but the watchdog.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
WATCHDOG_PERIOD_S = 0.25


def _prctl(option: int, arg: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Make this process adopt its descendants' orphans (see the module's docstring)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def on_parent_death(sig: int) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies."""
    return _prctl(PR_SET_PDEATHSIG, sig)


def die_with_parent(parent: int) -> None:
    """In a child (before exec, or just forked): SIGKILL when ``parent`` goes."""
    on_parent_death(signal.SIGKILL)
    if os.getppid() != parent:  # it went before the signal was set
        os._exit(70)


def start_watchdog(parent: int) -> threading.Thread:
    """In a child: a thread that ends this process group as soon as ``parent`` is gone."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                with contextlib.suppress(OSError):
                    os.killpg(0, signal.SIGKILL)
                os._exit(70)
            threading.Event().wait(WATCHDOG_PERIOD_S)

    thread = threading.Thread(target=watch, name="kata-parent-watchdog", daemon=True)
    thread.start()
    return thread


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    out = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) "
            with contextlib.suppress(IndexError, ValueError):
                out[int(entry.name)] = int(fields[1])
    return out


def descendants(root: int | None = None, keep: frozenset[int] = frozenset()) -> list[int]:
    """Every process below ``root`` (default: this one), nearest first, but those in
    ``keep`` and the processes below them."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    out, todo = [], [pid for pid in children.get(root, ()) if pid not in keep]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(child for child in children.get(pid, ()) if child not in keep)
    return out


def kill_descendants(keep: frozenset[int] = frozenset(), rounds: int = 5) -> list[int]:
    """SIGKILL every descendant of this process but ``keep`` (and theirs); reap those this
    process adopted. Repeated, for a process forking while it is being killed."""
    killed: list[int] = []
    for _ in range(rounds):
        found = descendants(keep=keep)
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed += found
        for pid in found:  # an adopted orphan is our child now: collect it
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)
    return killed
