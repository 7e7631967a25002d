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


def limit_child(memory_mb: int, parent: int) -> None:
    """In the child, before exec: its own session (so ``kill(0)`` and ``killpg(0)`` reach
    only it), death with ``parent``, and hard resource limits."""
    from checker.reaper import die_with_parent

    os.setsid()
    die_with_parent(parent)
    limit_resources(memory_mb)


CUDA_CONTROL_DEVICE = "/dev/nvidiactl"  # NVIDIA's driver makes it; nothing else does


def memory_limit() -> int:
    """Which resource caps a check process's memory.

    ``RLIMIT_AS`` (every mapping) where no CUDA device is. Where one is, CUDA reserves
    address space far beyond any such cap as it starts (unified addressing: about the host's
    and the devices' memory together), so a check that replays on the GPU could not even
    create a tensor there; the cap is then ``RLIMIT_DATA`` (Linux >= 4.7: private writable
    memory, which is what malloc, tensors and arrays take; the audit hook refuses learner code
    the shared anonymous mappings it does not count). ``KATA_MEMORY_CAP`` = ``as`` or
    ``data`` chooses."""
    import resource

    chosen = os.environ.get("KATA_MEMORY_CAP", "").strip().lower()
    if chosen in ("as", "data"):
        return resource.RLIMIT_AS if chosen == "as" else resource.RLIMIT_DATA
    return resource.RLIMIT_DATA if os.path.exists(CUDA_CONTROL_DEVICE) else resource.RLIMIT_AS


def limit_resources(memory_mb: int) -> None:
    """Cap this process's memory, file size, process count and core dumps. Hard limits
    equal the soft ones: no code run afterwards can raise them again."""
    import resource

    limits = [
        (memory_limit(), memory_mb * 1024 * 1024),
        (resource.RLIMIT_FSIZE, MAX_OUTPUT_BYTES),
        (resource.RLIMIT_NPROC, MAX_PROCESSES),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in limits:
        try:
            soft, hard = resource.getrlimit(which)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (cap, cap))
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
