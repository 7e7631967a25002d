"""What runs killed mid-way leave behind, found and removed by the next command.

A ``kill -9`` of ``kata check`` (or of the worker) skips every ``finally``: the temporary
file of an atomic write (``.kata/.progress.json.<pid>.tmp``) and the run's temporary folder
(``<tmp>/kata-run-<pid>-*``) stay. Both carry the pid of the process that made them, so the
next command removes exactly those whose maker is gone, and never a live run's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

RUN_PREFIXES = ("kata-run-", "kata-armed-", "kata-dev-")
_TEMP_FILE = re.compile(r"^\..+\.(\d+)\.tmp$")  # checker.progress.atomic_write's name
_RUN_DIR = re.compile(r"^kata-(?:run|armed|dev)-(\d+)-")
UNNAMED_AGE_S = 3600.0  # a folder of an older release (no pid in its name): stale after this


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def make_run_dir(prefix: str = "kata-run-") -> str:
    """A private temporary folder named after this process (see the module's docstring)."""
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def sweep_temp_files(folder: Path) -> list[Path]:
    """Remove the atomic writes' temporary files in ``folder`` whose writer is gone."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMP_FILE.match(entry.name)
            if match and not pid_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def sweep_run_dirs(root: str | None = None) -> list[Path]:
    """Remove this user's run folders under the temporary folder whose maker is gone."""
    removed = []
    uid = os.getuid()
    with contextlib.suppress(OSError):
        for entry in os.scandir(root or tempfile.gettempdir()):
            if not entry.name.startswith(RUN_PREFIXES):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_uid != uid or not entry.is_dir(follow_symlinks=False):
                continue
            match = _RUN_DIR.match(entry.name)
            stale = (not pid_alive(int(match.group(1))) if match
                     else time.time() - st.st_mtime > UNNAMED_AGE_S)
            if stale:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
    return removed
