"""The limits a check process runs under: its own session, resource caps, its output
redirected to a file, and the kill of its whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

MAX_OUTPUT_BYTES = 512 * 1024 * 1024
MAX_PROCESSES = 256


def output_to(path: str | Path) -> None:
    """Send this process's stdout and stderr (the file descriptors) to ``path``."""
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)


def limit_child(memory_mb: int) -> None:
    """In the child, before exec: its own session and hard resource limits."""
    os.setsid()
    limit_resources(memory_mb)


def limit_resources(memory_mb: int) -> None:
    """Cap this process's memory, file size, process count and core dumps."""
    import resource

    limits = [
        (resource.RLIMIT_AS, memory_mb * 1024 * 1024),
        (resource.RLIMIT_FSIZE, MAX_OUTPUT_BYTES),
        (resource.RLIMIT_NPROC, MAX_PROCESSES),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in limits:
        try:
            soft, hard = resource.getrlimit(which)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (cap, hard))
        except (ValueError, OSError):
            pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a flood of output fails writes, not the run


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
