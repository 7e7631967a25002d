"""A warm check worker: import torch and pytest once, fork a child per check run.

A cold ``python -m pytest`` pays for importing torch (and torch._dynamo, which any
``torch.optim`` optimizer pulls in) on every save. The worker pays once: it imports what
checks need, runs no torch computation itself (a forked child would hang in OpenMP
otherwise), freezes its heap (``gc.freeze``, so children do not copy it) and then serves
requests on a Unix socket, forking one child per request. The child limits its resources,
reseeds, sets one intra-op thread and runs ``pytest.main`` in-process against the kata's
checks; the learner's file is compiled from source by the plugin, never from a stale .pyc.

The worker exits when a file it imported from the checker package (plugin, helpers, ...)
changes, so a new worker picks up the change; check modules themselves are imported fresh
in every child anyway. The client (``try_run``) falls back to the cold path whenever the
worker is absent, stale or dies.

Protocol: one JSON request line, one JSON reply line per connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checker.catalog import Kata

PROTOCOL = 1
PRELOAD = (
    "numpy", "torch", "torch._dynamo", "torch.optim", "torch.func", "torch.utils.data",
    "torch.testing", "torch.utils.flop_counter", "torch.utils.checkpoint", "torch.library",
    "torch.utils._python_dispatch", "torch._dynamo.testing",
    "pytest", "_pytest.config", "_pytest.main", "_pytest.python", "_pytest.runner",
    "_pytest.fixtures", "_pytest.assertion.rewrite", "_pytest.terminal", "pytest_timeout",
    "checker.plugin", "checker.helpers", "checker.learner", "checker.mistakes", "checker.runner",
)


def socket_path(state_dir: Path) -> Path:
    """Where the worker of ``state_dir`` listens (short enough for AF_UNIX in any workspace)."""
    digest = hashlib.sha1(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"kata-worker-{os.getuid()}-{digest}.sock"


# ----------------------------------------------------------------------------- client


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


def try_run(state_dir: Path, kata: Kata, impl: Path, *, seed: int, diagnose: bool,
            diagnose_budget: float, memory_mb: int, wall: float):
    """Run through this workspace's warm worker; None when none is usable (use the cold path)."""
    from checker.runner import interrupted, outcome_from_files, timed_out

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
        except KeyboardInterrupt:  # closing the socket makes the worker end the child
            return interrupted(kata, seed, impl)
        if not reply or not reply.get("ok"):
            return None
        duration = time.perf_counter() - start
        if reply.get("timed_out"):
            return timed_out(kata, seed, impl, wall, output, duration)
        return outcome_from_files(kata, seed, impl, report, output, reply.get("returncode"),
                                  duration)


def start(state_dir: Path, *, wait: float = 30.0) -> subprocess.Popen | None:
    """Start a worker for ``state_dir`` in the background; returns once it answers pings."""
    if is_running(state_dir):
        return None
    from checker.runner import child_env

    env = child_env()
    env.pop("OMP_NUM_THREADS", None)
    log = open(Path(tempfile.gettempdir()) / f"kata-worker-{os.getuid()}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "checker.worker", str(Path(state_dir).resolve())],
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


# ----------------------------------------------------------------------------- server


def _watched_files() -> dict[str, float]:
    """The checker package's own modules this process imported, with their mtimes."""
    here = Path(__file__).resolve().parent
    out = {}
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if f and Path(f).resolve().is_relative_to(here):
            with contextlib.suppress(OSError):
                out[f] = os.stat(f).st_mtime_ns
    return out


def _stale(watched: dict[str, float]) -> bool:
    for f, mtime in watched.items():
        try:
            if os.stat(f).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def _child(req: dict) -> None:
    """In the forked child: become an isolated check run, run pytest, never return."""
    code = 70
    try:
        from checker.catalog import load_catalog
        from checker.runner import limit_child, pytest_args

        limit_child(int(req["memory_mb"]))
        out = os.open(req["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.chdir(req["cwd"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        import random

        import torch

        torch.set_num_threads(1)
        random.seed()
        catalog = load_catalog(Path(req["catalog"]) if req["catalog"] else None)
        kata = catalog.get(req["kata"])
        import pytest

        args = pytest_args(kata, Path(req["impl"]), int(req["seed"]), Path(req["report"]),
                           diagnose=bool(req["diagnose"]),
                           diagnose_budget=float(req.get("diagnose_budget", 0.2)))
        code = int(pytest.main(args))
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # the child must never fall back into the server loop
        import traceback

        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        os._exit(code)


def _preimport_checks(req: dict) -> bool:
    """Import a shipped kata's check module here, once, so children inherit it ready.

    Check modules warm torch up at import (a first backward, torch.func, a dynamo compile:
    1-4 s that would otherwise be paid by every child). The worker runs with one intra-op
    thread, so this computation starts no OpenMP pool that a forked child could hang on.
    pytest in the child finds the module in sys.modules under the same name and reuses it
    (its asserts are not rewritten; checks state their failures in their own messages).
    Returns True when a module was imported.
    """
    import gc
    import importlib

    if req.get("catalog"):
        return False  # only the shipped catalog's checks live in checker.checks
    name = f"checker.checks.test_{req['kata']}"
    if name in sys.modules:
        return False
    try:
        importlib.import_module(name)
    except Exception:
        sys.modules.pop(name, None)  # the child will import it itself and report the error
        return False
    gc.collect()
    gc.freeze()
    return True


def _serve_one(conn: socket.socket, req: dict) -> dict:
    wall = float(req["wall"])
    pid = os.fork()
    if pid == 0:
        conn.close()
        _child(req)
    deadline = time.monotonic() + wall
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # stray grandchildren
            return {"ok": True, "returncode": code}
        readable, _, _ = select.select([conn], [], [], 0.01)
        client_gone = bool(readable) and not conn.recv(1, socket.MSG_PEEK)
        if client_gone or time.monotonic() > deadline:
            for kill in (os.killpg, os.kill):  # the group, or the child before its setsid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            return {"ok": True, "timed_out": not client_gone, "returncode": -9}


def serve(state_dir: Path, idle_timeout: float = 3600.0) -> None:
    import gc
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    import torch

    torch.set_num_threads(1)  # any warm-up computation here stays single-threaded
    watched = _watched_files()
    gc.collect()
    gc.freeze()
    sock_path = socket_path(state_dir)
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    os.chmod(sock_path, 0o600)
    server.listen(8)
    server.settimeout(idle_timeout)
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                return  # idle for long: go away
            with conn:
                conn.settimeout(None)
                try:
                    line = conn.makefile("rb").readline()
                    req = json.loads(line)
                except (OSError, ValueError):
                    continue
                if req.get("op") == "ping":
                    reply = {"ok": True, "pid": os.getpid()}
                elif req.get("op") == "stop":
                    conn.sendall(b'{"ok": true}\n')
                    return
                elif _stale(watched) or req.get("protocol") != PROTOCOL:
                    conn.sendall(b'{"ok": false, "stale": true}\n')
                    return  # the client falls back; the next `kata watch` starts a fresh worker
                else:
                    if _preimport_checks(req):
                        watched = _watched_files()
                    reply = _serve_one(conn, req)
                with contextlib.suppress(OSError):
                    conn.sendall((json.dumps(reply) + "\n").encode())
    finally:
        with contextlib.suppress(OSError):
            if sock_path.exists():
                sock_path.unlink()
        server.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
