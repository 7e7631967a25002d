"""The warm worker's client: find this workspace's worker, ask it for a run, start or stop it.

A cold ``python -m pytest`` pays for importing torch (and torch._dynamo) on every save; a
worker (checker.server) pays once and keeps the next run armed. ``try_run`` returns None
whenever the worker is absent, stale or dies, and the facade (checker.runner) falls back to
the cold path.

Protocol: one JSON request line, one JSON reply line per connection; while a run is served
the worker sends ``{"alive": true}`` lines every HEARTBEAT_S before its reply. A worker
silent for LIVENESS_S (stopped, say, with SIGSTOP) is given up: killed, its socket removed,
and the run goes cold; `kata watch` starts a fresh worker for the next save.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checker.catalog import Kata
from checker.launch import run_files
from checker.outcome import CheckResult, interrupted, outcome_from_files, timed_out

PROTOCOL = 3
HEARTBEAT_S = 0.5
LIVENESS_S = 2.0


def socket_path(state_dir: Path) -> Path:
    """Where the worker of ``state_dir`` listens (short enough for AF_UNIX in any workspace)."""
    digest = hashlib.sha1(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"kata-worker-{os.getuid()}-{digest}.sock"


def _request(sock_path: Path, payload: dict, timeout: float,
             silence: float | None = None) -> dict | None:
    """Send ``payload``, return the reply (heartbeat lines skipped). None when there is no
    reply within ``timeout`` or, with ``silence``, no line at all for that long."""
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(min(timeout, silence or timeout))
            s.connect(str(sock_path))
            s.sendall((json.dumps(payload) + "\n").encode())
            data = b""
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                *lines, data = data.split(b"\n")
                for line in lines:
                    reply = json.loads(line)
                    if "alive" not in reply:
                        return reply
    except (OSError, TimeoutError, ValueError):
        return None
    return None


def give_up(state_dir: Path) -> int | None:
    """End the worker listening for ``state_dir`` that does not answer (stopped, hung) and
    remove its socket; returns its pid. Its armed processes die with it (checker.reaper)."""
    import signal
    import struct

    sock = socket_path(state_dir)
    pid = None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(LIVENESS_S)
            s.connect(str(sock))
            creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _ = struct.unpack("3i", creds)
    except (OSError, AttributeError):
        pass
    if pid and uid == os.getuid() and pid != os.getpid():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        sock.unlink()
    return pid


def serving_pid(state_dir: Path) -> int | None:
    """The pid of the worker answering for ``state_dir`` (below its keeper, checker.keeper)."""
    reply = _request(socket_path(state_dir), {"op": "ping"}, timeout=LIVENESS_S)
    return reply.get("pid") if reply and reply.get("ok") else None


def is_running(state_dir: Path) -> bool:
    return serving_pid(state_dir) is not None


def try_run(state_dir: Path, kata: Kata, impl: Path, *, seed: int | None, diagnose: bool,
            diagnose_budget: float, memory_mb: int, wall: float,
            only: str | None = None) -> CheckResult | None:
    """Run through this workspace's warm worker; None when none is usable (use the cold path)."""
    sock = socket_path(state_dir)
    if not sock.exists():
        return None
    from checker.launch import progress_tty
    from checker.leftovers import make_run_dir, sweep_run_dirs

    sweep_run_dirs()
    with _removed(make_run_dir()) as tmp:
        report, output, scratch = run_files(tmp)
        payload = {
            "op": "run", "protocol": PROTOCOL, "kata": kata.name,
            "catalog": str(kata.catalog_file) if kata.catalog_file else None,
            "impl": str(impl), "seed": seed, "diagnose": diagnose,
            "diagnose_budget": diagnose_budget, "memory_mb": memory_mb,
            "wall": wall, "report": str(report), "output": str(output), "cwd": str(scratch), "only": only,
            "tty": progress_tty(),
        }
        start = time.perf_counter()
        try:
            reply = _request(sock, payload, timeout=wall + 15, silence=LIVENESS_S)
        except KeyboardInterrupt:  # closing the socket makes the worker end the run
            return interrupted(kata, seed or 0, impl)
        if reply is None:  # no word from the worker: end it and judge cold
            give_up(state_dir)
            return None
        if not reply.get("ok"):
            return None
        duration = time.perf_counter() - start
        seed = int(reply.get("seed", seed or 0))
        if reply.get("timed_out"):
            result = timed_out(kata, seed, impl, wall, output, duration,
                               unresponsive=bool(reply.get("unresponsive")))
        else:
            result = outcome_from_files(kata, seed, impl, report, output,
                                        reply.get("returncode"), duration)
        result.extra["worker"] = True  # judged by a worker that answered: it is running
        return result


@contextlib.contextmanager
def _removed(folder: str):
    """``folder``, removed with all it holds when the block ends."""
    import shutil

    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def spawn(state_dir: Path, *, processes: int | None = None) -> subprocess.Popen:
    """Start a worker for ``state_dir`` in the background and return at once (it answers
    pings once torch is imported; a second one started meanwhile finds the first's lock and
    leaves). One that listens but does not answer is ended first. ``processes``: how many
    processes share each run (checker.armed_set.BINS; default one per core, at most two)."""
    if socket_path(state_dir).exists() and not is_running(state_dir):
        give_up(state_dir)
    from checker.launch import child_env

    env = child_env()
    env.pop("OMP_NUM_THREADS", None)
    if processes is not None:
        env["KATA_WORKER_PROCESSES"] = str(max(1, int(processes)))
    with open(Path(tempfile.gettempdir()) / f"kata-worker-{os.getuid()}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "checker.server", str(Path(state_dir).resolve())],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )


def start(state_dir: Path, *, wait: float = 30.0,
          processes: int | None = None) -> subprocess.Popen | None:
    """Start a worker for ``state_dir`` in the background; returns once it answers pings."""
    if is_running(state_dir):
        return None
    proc = spawn(state_dir, processes=processes)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        if is_running(state_dir):
            return proc
        time.sleep(0.05)
    return proc


def stop(state_dir: Path) -> None:
    _request(socket_path(state_dir), {"op": "stop"}, timeout=2.0)
