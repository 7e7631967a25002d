"""The warm worker's client: find this workspace's worker, ask it for a run, start or stop it.

A cold ``python -m pytest`` pays for importing torch (and torch._dynamo) on every save; a
worker (checker.server) pays once and keeps the next run armed. ``try_run`` returns None
whenever the worker is absent, stale or dies, and the facade (checker.runner) falls back to
the cold path.

Protocol: one JSON request line, one JSON reply line per connection.
"""

from __future__ import annotations

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
from checker.outcome import CheckResult, interrupted, outcome_from_files, timed_out

PROTOCOL = 2


def socket_path(state_dir: Path) -> Path:
    """Where the worker of ``state_dir`` listens (short enough for AF_UNIX in any workspace)."""
    digest = hashlib.sha1(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"kata-worker-{os.getuid()}-{digest}.sock"


def _request(sock_path: Path, payload: dict, timeout: float) -> dict | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock_path))
            s.sendall((json.dumps(payload) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (OSError, TimeoutError):
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def is_running(state_dir: Path) -> bool:
    reply = _request(socket_path(state_dir), {"op": "ping"}, timeout=1.0)
    return bool(reply and reply.get("ok"))


def try_run(state_dir: Path, kata: Kata, impl: Path, *, seed: int | None, diagnose: bool,
            diagnose_budget: float, memory_mb: int, wall: float) -> CheckResult | None:
    """Run through this workspace's warm worker; None when none is usable (use the cold path)."""
    sock = socket_path(state_dir)
    if not sock.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="kata-run-") as tmp:
        report, output = Path(tmp) / "report.json", Path(tmp) / "output.txt"
        payload = {
            "op": "run", "protocol": PROTOCOL, "kata": kata.name,
            "catalog": str(kata.catalog_file) if kata.catalog_file else None,
            "impl": str(impl), "seed": seed, "diagnose": diagnose,
            "diagnose_budget": diagnose_budget, "memory_mb": memory_mb,
            "wall": wall, "report": str(report), "output": str(output), "cwd": tmp,
        }
        start = time.perf_counter()
        try:
            reply = _request(sock, payload, timeout=wall + 15)
        except KeyboardInterrupt:  # closing the socket makes the worker end the run
            return interrupted(kata, seed or 0, impl)
        if not reply or not reply.get("ok"):
            return None
        duration = time.perf_counter() - start
        seed = int(reply.get("seed", seed or 0))
        if reply.get("timed_out"):
            return timed_out(kata, seed, impl, wall, output, duration)
        return outcome_from_files(kata, seed, impl, report, output, reply.get("returncode"),
                                  duration)


def start(state_dir: Path, *, wait: float = 30.0) -> subprocess.Popen | None:
    """Start a worker for ``state_dir`` in the background; returns once it answers pings."""
    if is_running(state_dir):
        return None
    from checker.launch import child_env

    env = child_env()
    env.pop("OMP_NUM_THREADS", None)
    log = open(Path(tempfile.gettempdir()) / f"kata-worker-{os.getuid()}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "checker.server", str(Path(state_dir).resolve())],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
    )
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
