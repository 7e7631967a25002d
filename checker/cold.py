"""The cold path: one fresh ``python -c CHILD_MAIN`` child per run, judged from its report.

The child runs in its own session with resource limits and a wall-clock limit; whatever it
does (hang, exit, crash, flood its output) the caller gets an outcome, never an exception.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checker.catalog import Kata
from checker.launch import CHILD_MAIN, child_env, pytest_args
from checker.limits import kill_group, limit_child
from checker.outcome import CheckResult, interrupted, outcome_from_files, timed_out


def run_cold(kata: Kata, impl: Path, *, seed: int, diagnose: bool, diagnose_budget: float,
             memory_mb: int, wall: float) -> CheckResult:
    """Run ``kata``'s checks against ``impl`` in a new child process."""
    with tempfile.TemporaryDirectory(prefix="kata-run-") as tmp:
        report = Path(tmp) / "report.json"
        output = Path(tmp) / "output.txt"
        cmd = [sys.executable, "-c", CHILD_MAIN,
               *pytest_args(kata, impl, seed, report, diagnose=diagnose,
                           diagnose_budget=diagnose_budget)]
        start = time.perf_counter()
        with open(output, "wb") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=child_env(), cwd=tmp, preexec_fn=lambda: limit_child(memory_mb),
            )
            try:
                proc.wait(timeout=wall)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                return timed_out(kata, seed, impl, wall, output, time.perf_counter() - start)
            except KeyboardInterrupt:
                kill_group(proc)
                return interrupted(kata, seed, impl, time.perf_counter() - start)
            kill_group(proc)  # stray grandchildren (a fork bomb's survivors) go too
        return outcome_from_files(kata, seed, impl, report, output, proc.returncode,
                                  time.perf_counter() - start)
