"""The cold path: one fresh ``python -c CHILD_MAIN`` child per run, judged from its report.

The child runs in its own session with hard resource limits, dies with the runner
(checker.reaper), writes its output into a pipe the runner keeps a tail of (checker.tail),
and has a wall-clock limit; the runner is a child subreaper and kills whatever the child
left behind. Whatever the child does (hang, exit, crash, flood its output, fork and escape)
the caller gets an outcome, never an exception, and no process outlives the run.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from checker.catalog import Kata
from checker.launch import CHILD_MAIN, child_env, pytest_args, run_files
from checker.leftovers import make_run_dir, sweep_run_dirs
from checker.limits import kill_group, limit_child
from checker.outcome import CheckResult, interrupted, outcome_from_files, timed_out
from checker.reaper import become_subreaper, descendants, kill_descendants
from checker.stuck import OVERDUE_POLL_S, overdue
from checker.tail import OutputTail


def run_cold(kata: Kata, impl: Path, *, seed: int, diagnose: bool, diagnose_budget: float,
             memory_mb: int, wall: float, only: str | None = None) -> CheckResult:
    """Run ``kata``'s checks against ``impl`` in a new child process."""
    sweep_run_dirs()  # what runs killed mid-way left
    become_subreaper()
    before = frozenset(descendants())  # a warm worker this process started is not the run's
    tmp = make_run_dir()
    try:
        report, output, scratch = run_files(tmp)
        cmd = [sys.executable, "-c", CHILD_MAIN,
               *pytest_args(kata, impl, seed, report, diagnose=diagnose,
                           diagnose_budget=diagnose_budget, only=only)]
        parent = os.getpid()
        env = {**child_env(), "KATA_PARENT_PID": str(parent)}
        start = time.perf_counter()
        read, write = os.pipe()
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=write, stderr=write, env=env, cwd=scratch,
                preexec_fn=lambda: limit_child(memory_mb, parent))
        finally:
            os.close(write)
        tail = OutputTail(read)
        try:
            stopped = wait_reading(proc.pid, proc.poll, tail, wall, report)
        except KeyboardInterrupt:
            return interrupted(kata, seed, impl, time.perf_counter() - start)
        finally:
            kill_group(proc)
            kill_descendants(keep=before)  # escaped grandchildren (fork + setsid) go too
            tail.save(output)
        if stopped:
            return timed_out(kata, seed, impl, wall, output, time.perf_counter() - start,
                             unresponsive=stopped == "overdue")
        return outcome_from_files(kata, seed, impl, report, output, proc.returncode,
                                  time.perf_counter() - start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def wait_reading(pid: int, exited, tail: OutputTail, wall: float, report: Path) -> str:
    """Read the child's output until it exits (""), ``wall`` seconds pass ("wall"), or it
    outlives its own time limits, as it tells them next to ``report`` ("overdue")."""
    deadline = time.monotonic() + wall
    pidfd = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(pid)
    look = time.monotonic() + OVERDUE_POLL_S
    try:
        while exited() is None:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return "wall"
            if now > look:
                if overdue(report):
                    return "overdue"
                look = now + OVERDUE_POLL_S
            fds = [fd for fd in (pidfd, None if tail.closed else tail.fd) if fd is not None]
            step = min(left, OVERDUE_POLL_S) if pidfd is not None else min(left, 0.02)
            select.select(fds, [], [], step) if fds else time.sleep(step)
            tail.feed()
        return ""
    finally:
        if pidfd is not None:
            os.close(pidfd)
