"""The warm check worker's server: import torch and pytest once, keep the next check run armed.

A cold ``python -m pytest`` pays for importing torch (and torch._dynamo, which any
``torch.optim`` optimizer pulls in) on every save. The worker pays once: it imports what
checks need, runs no multi-threaded torch computation itself (a forked child would hang in
OpenMP otherwise), freezes its heap (``gc.freeze``, so children do not copy it) and serves
requests on a Unix socket. Between requests it keeps an *armed* set of forked processes
(one per core) that have configured pytest and collected the kata's checks, each holding a
share of them (see checker.armed); a run request sends them the file to judge, and the
worker merges their reports. Every process limits its resources, reseeds and uses one
intra-op thread; the learner's file is compiled from source by the plugin, never from a
stale .pyc.

The worker exits when a file it imported from the checker package (plugin, helpers, ...)
changes, so a new worker picks up the change; an armed set whose check file or catalog
changed is re-armed before use. The client (checker.worker.try_run) falls back to the cold path
whenever the worker is absent, stale or dies.

Protocol: one JSON request line, one JSON reply line per connection (see checker.worker).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from checker.armed_set import BINS, Armed, fingerprint, kill_process
from checker.outcome import exit_fits
from checker.preload import preimport_checks, preload_modules, stale, watched_files
from checker.reaper import become_subreaper, kill_descendants
from checker.stuck import OVERDUE_POLL_S, overdue
from checker.tail import TAIL_BYTES as OUTPUT_LOG_BYTES
from checker.tail import OutputTail
from checker.worker import HEARTBEAT_S, PROTOCOL, socket_path


def _output_fifo(path: str) -> OutputTail:
    """A named pipe at ``path`` that an armed process opens as its output when told to go
    (checker.armed); opened here first, for reading, so that its open never blocks."""
    os.mkfifo(path, 0o600)
    read = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    return OutputTail(read, hold=os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@contextlib.contextmanager
def _heartbeat(conn: socket.socket, lock: threading.Lock):
    """While a run is served, tell the client every HEARTBEAT_S that this worker is alive
    (checker.worker gives up on a worker silent for longer than LIVENESS_S)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with lock, contextlib.suppress(OSError):
                conn.sendall(b'{"alive": true}\n')

    with lock, contextlib.suppress(OSError):
        conn.sendall(b'{"alive": true}\n')
    thread = threading.Thread(target=beat, name="kata-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Server:
    def __init__(self, listener: socket.socket):
        self.listener = listener
        self.armed: Armed | None = None
        self.spent: list[Armed] = []
        self.costs: dict[tuple, dict[str, tuple[float, float]]] = {}

    def arm(self, key: tuple, expect: dict | None = None) -> None:
        if self.armed is not None:
            self.armed.discard()
        self.armed = Armed(key, self.costs.get(key, {}), [self.listener.fileno()], expect)

    def reap(self) -> None:
        """Collect the processes of answered runs (killed, maybe still being torn down)."""
        for armed in self.spent:
            armed.discard()
        self.spent = []

    def close(self) -> None:
        self.reap()
        if self.armed is not None:
            self.armed.discard()
            self.armed = None

    def run(self, conn: socket.socket, req: dict) -> dict:
        key = (req["kata"], req["catalog"])
        armed = self.armed
        if (armed is None or armed.key != key or armed.fingerprint != fingerprint(key)
                or not armed.alive()):
            self.arm(key, {"seed": req.get("seed"), "only": req.get("only")})
            armed = self.armed
        self.armed = None  # this set is spent, whatever happens
        if req.get("seed") is not None:
            seed = int(req["seed"])
        else:  # a run that names no seed gets a fresh one, never the one before's
            from checker.outcome import random_seed

            seed = random_seed() if armed.guessed else armed.seed
        parts = [(f"{req['report']}.{i}", f"{req['output']}.{i}") for i in range(BINS)]
        tails = [_output_fifo(output) for _, output in parts]  # read as it comes (checker.tail)
        for (report, output), pipe in zip(parts, armed.pipes, strict=True):
            go = {"impl": req["impl"], "seed": seed, "diagnose": req["diagnose"],
                  "diagnose_budget": req.get("diagnose_budget", 0.2),
                  "memory_mb": req["memory_mb"], "report": report, "output": output,
                  "cwd": req["cwd"], "only": req.get("only"), "tty": req.get("tty"),
                  "sent": time.time()}
            with contextlib.suppress(OSError):  # a process that died early is seen below
                os.write(pipe, (json.dumps(go) + "\n").encode())
            with contextlib.suppress(OSError):
                os.close(pipe)
        armed.pipes = []
        codes, stopped = self._wait(conn, armed, float(req["wall"]), tails,
                                    [report for report, _ in parts])
        for pid in armed.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # stray grandchildren
        kill_descendants()  # and those that escaped the group (this worker is their subreaper)
        reply = self._merge(req, armed, parts, codes, key, tails)
        self.spent.append(armed)  # reaped once the reply is sent
        if stopped:
            reply.update(timed_out=stopped != "client", unresponsive=stopped == "overdue",
                         returncode=-9)
        reply["seed"] = seed
        return reply

    def _wait(self, conn: socket.socket, armed: Armed, wall: float,
              tails: list[OutputTail], reports: list[str]) -> tuple[dict, str]:
        """Wait until every process has said it is done, or died, reading their output;
        stop them all if the client goes, the wall limit passes, or one outlives its own
        time limits (checker.stuck.overdue). Returns their exit statuses and why they were
        stopped ("client", "wall", "overdue"; "" when they were not)."""
        deadline = time.monotonic() + wall
        look = time.monotonic() + OVERDUE_POLL_S
        pids = armed.pids
        codes: dict[int, int] = {}
        done = dict(zip(armed.done, pids, strict=True))
        pidfds = {}
        for pid in pids:
            with contextlib.suppress(OSError, AttributeError):
                pidfds[os.pidfd_open(pid)] = pid
        try:
            while len(codes) < len(pids):
                for pid in pids:  # where pidfds are missing, look for the dead by polling
                    if pid not in codes and pid not in pidfds.values():
                        reaped, status = os.waitpid(pid, os.WNOHANG)
                        if reaped:
                            codes[pid] = os.waitstatus_to_exitcode(status)
                if len(codes) == len(pids):
                    break
                fds = [fd for fd, pid in (*done.items(), *pidfds.items()) if pid not in codes]
                outs = [t.fd for t in tails if not t.closed]
                polling = len(pidfds) < len(pids)
                left = deadline - time.monotonic()
                readable, _, _ = select.select([conn, *fds, *outs], [], [],
                                               max(min(left, 0.01 if polling else 1.0), 0))
                for tail in tails:
                    tail.feed()
                for fd in readable:
                    if fd in outs:
                        continue
                    pid = done.get(fd) or pidfds.get(fd)
                    if pid is None or pid in codes:
                        continue
                    said = os.read(fd, 64).split() if fd in done else []
                    if said and said[0].lstrip(b"-").isdigit():
                        codes[pid] = int(said[0])  # its report is written; it is exiting
                    else:  # it died without a word (its pipe closed, or its pidfd fired)
                        _, status = os.waitpid(pid, 0)
                        codes[pid] = os.waitstatus_to_exitcode(status)
                client_gone = conn in readable and not conn.recv(1, socket.MSG_PEEK)
                now = time.monotonic()
                late = now > look and any(overdue(report) for pid, report
                                          in zip(pids, reports, strict=True) if pid not in codes)
                look = look if now <= look else now + OVERDUE_POLL_S
                if client_gone or late or now > deadline:
                    for pid in pids:
                        if pid not in codes:
                            kill_process(pid)
                            codes[pid] = -9
                    return codes, "client" if client_gone else "overdue" if late else "wall"
            return codes, ""
        finally:
            for fd in pidfds:
                os.close(fd)

    def _merge(self, req: dict, armed: Armed, parts: list, codes: dict, key: tuple,
               tails: list[OutputTail]) -> dict:
        from checker.report import merge_reports, write_json

        with open(req["output"], "wb") as out:
            for tail, log in zip(tails, armed.logs, strict=True):
                tail.feed()
                tail.close()
                text = tail.text()
                if not text:  # a process that died before the run began: its log says why
                    with contextlib.suppress(OSError), open(log, "rb") as fh:
                        text = fh.read()[-OUTPUT_LOG_BYTES:]
                out.write(text)
        reports = []
        for (report, _), pid in zip(parts, armed.pids, strict=True):
            code = codes.get(pid, 70)
            try:
                with open(report, encoding="utf-8") as fh:
                    reports.append(json.load(fh))
            except (OSError, ValueError):
                return {"ok": True, "returncode": code}  # the client reports a crash
            if not exit_fits(reports[-1], code):  # nor is a report its process belies trusted
                write_json(req["report"], reports[-1])
                return {"ok": True, "returncode": code}
        merged = merge_reports(reports)
        write_json(req["report"], merged)
        if not merged["load_error"]:
            # a check's costs to its process: its run (after the save) and its prepare hook
            # (before); the split balances both (see checker.armed.share)
            known = self.costs.setdefault(key, {})
            prepared = merged["armed"]["prepared"]
            for entries in merged["results"].values():
                for entry in entries:
                    cost = (entry["duration"], prepared.get(entry["id"], 0.0))
                    old = known.get(entry["id"])  # smoothed: one slow run must not reshuffle
                    known[entry["id"]] = cost if old is None else (
                        (old[0] + cost[0]) / 2, (old[1] + cost[1]) / 2)
        # every part ended as it reported: the whole ends as 1 if any check failed, else 0
        return {"ok": True, "returncode": int(any(code == 1 for code in codes.values()))}


IDLE_TIMEOUT = 30 * 60  # seconds without a request after which the worker exits


def serve(state_dir: Path, idle_timeout: float = IDLE_TIMEOUT) -> None:
    import fcntl
    import gc

    # One worker per workspace: a second one (two checks started it at once) leaves at once.
    lock = open(f"{socket_path(state_dir)}.lock", "a")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return

    preload_modules()
    import torch

    torch.set_num_threads(1)  # any warm-up computation here stays single-threaded
    become_subreaper()  # what escapes a check process comes back here to be killed
    watched = watched_files()
    gc.collect()
    gc.freeze()
    sock_path = socket_path(state_dir)
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    os.chmod(sock_path, 0o600)
    listener.listen(8)
    listener.settimeout(idle_timeout)
    server = Server(listener)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return  # idle for long: go away
            rearm = expect = None
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
                elif stale(watched) or req.get("protocol") != PROTOCOL:
                    conn.sendall(b'{"ok": false, "stale": true}\n')
                    return  # the client falls back; the next `kata watch` starts a fresh worker
                else:
                    with _heartbeat(conn, threading.Lock()):
                        if preimport_checks(req):
                            watched = watched_files()
                        reply = server.run(conn, req)
                    rearm = (req["kata"], req["catalog"])
                    expect = {"seed": req.get("seed"), "only": req.get("only")}
                with contextlib.suppress(OSError):
                    conn.sendall((json.dumps(reply) + "\n").encode())
            server.reap()
            if rearm is not None:  # the next run's processes get ready while the learner reads
                with contextlib.suppress(Exception):
                    server.arm(rearm, expect)
    finally:
        server.close()
        with contextlib.suppress(OSError):
            if sock_path.exists():
                sock_path.unlink()
        listener.close()


if __name__ == "__main__":
    from checker.keeper import keep

    keep()  # what escapes a check process dies when this worker ends, even by SIGKILL
    serve(Path(sys.argv[1]))
