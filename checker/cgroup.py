"""A cgroup (v2) per keeper, where this user may make one: the kernel's own list of every
process below the keeper, however it detached, killed as one when the work ends.

The keeper (checker.keeper) makes ``kata-run-<keeper pid>-<random>`` inside its own cgroup
and puts its work there; every process the work starts is born inside. When the work ends
the keeper writes ``cgroup.kill`` (Linux >= 5.14; elsewhere it kills what ``cgroup.procs``
lists until it is empty) and removes the group. A group whose keeper is gone (the keeper
itself was killed) is swept the same way by the next keeper that starts (a cold check, or a
warm worker starting).

Without a writable cgroup v2 (no cgroup2 mount, a read-only one, or a user who may not write
to their own cgroup: the common case without root, outside a delegated systemd user slice)
``make`` returns None and nothing else changes: the keeper's subreaper still ends what
escapes while it lives.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

PREFIX = "kata-run-"
_GROUP = re.compile(rf"^{PREFIX}(\d+)-[0-9a-f]+$")


def own_dir() -> Path | None:
    """This process's cgroup v2 folder, or None when there is none to be found."""
    mount = None
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields, _, fs = line.partition(" - ")
                if fs.split()[:1] == ["cgroup2"]:
                    mount = fields.split()[4]
                    break
        with open("/proc/self/cgroup") as fh:
            rel = next((line[3:].strip() for line in fh if line.startswith("0::")), None)
    except OSError:
        return None
    if mount is None or rel is None:
        return None
    path = Path(mount) / rel.lstrip("/")
    return path if path.is_dir() else None


def make() -> Path | None:
    """A new, empty group for this process's work; None where none can be made."""
    base = own_dir()
    if base is None:
        return None
    path = base / f"{PREFIX}{os.getpid()}-{os.urandom(3).hex()}"
    try:
        path.mkdir()
    except OSError:
        return None
    return path


def join(group: Path) -> bool:
    """Move this process into ``group`` (its children are born there)."""
    try:
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        return False
    return True


def end(group: Path, wait: float = 2.0) -> None:
    """Kill every process in ``group`` and remove it (whatever can be: a group that still
    holds a process after ``wait`` seconds is left for the next sweep)."""
    with contextlib.suppress(OSError):
        (group / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + wait
    while True:
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return  # gone already
        for pid in pids:  # without cgroup.kill; or born during the kill
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:  # a child of ours: collect it, or it stays a zombie
            with contextlib.suppress(OSError):
                os.waitpid(pid, os.WNOHANG)
        try:
            group.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def sweep(base: Path | None = None) -> list[Path]:
    """End the groups next to this process's whose keeper is gone."""
    base = base or own_dir()
    ended = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(base) if base else ():
            match = _GROUP.match(entry.name)
            if match and not _alive(int(match.group(1))):
                end(Path(entry.path), wait=0.5)
                ended.append(Path(entry.path))
    return ended


def _alive(pid: int) -> bool:
    from checker.leftovers import pid_alive  # imported only when a group is found

    return pid_alive(pid)
