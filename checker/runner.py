"""Run a kata's hidden checks against a file, in a child process, and return the outcome.

The child is ``python -m pytest`` with the project's plugin and plugin autoload off; it writes
a JSON report that becomes a :class:`CheckResult`. The child runs in its own session with
resource limits (memory, file size, processes) and a wall-clock limit; whatever it does —
hang, exit, crash, flood its output — the caller gets an outcome, never an exception.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from checker.catalog import Kata

OUTPUT_TAIL_BYTES = 4000
DEFAULT_MEMORY_MB = int(os.environ.get("KATA_MEMORY_MB", "4096"))
MAX_OUTPUT_BYTES = 512 * 1024 * 1024
MAX_PROCESSES = 256


@dataclass(frozen=True)
class ExerciseResult:
    name: str
    status: str  # passed | failed | skipped | missing
    message: str = ""
    diagnosis: tuple[tuple[str, str], ...] = ()  # (mistake id, misconception)
    duration: float = 0.0
    checks: int = 0
    failed_checks: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")


@dataclass(frozen=True)
class CheckResult:
    kata: str
    seed: int
    status: str  # passed | failed | load_error | crashed | timeout | interrupted
    exercises: tuple[ExerciseResult, ...] = ()
    message: str = ""  # for load_error / crashed / timeout: what happened
    output_tail: str = ""
    duration: float = 0.0
    impl: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def exercises_passed(self) -> int:
        return sum(1 for e in self.exercises if e.ok)

    def first_failure(self) -> ExerciseResult | None:
        return next((e for e in self.exercises if not e.ok), None)


def from_report(report: dict, duration: float, output_tail: str = "") -> CheckResult:
    exercises = tuple(
        ExerciseResult(
            name=name,
            status=e["status"],
            message=e["message"],
            diagnosis=tuple((d["id"], d["misconception"]) for d in e.get("diagnosis", ())),
            duration=e["duration"],
            checks=e["checks"],
            failed_checks=e["failed_checks"],
        )
        for name, e in report["exercises"].items()
    )
    if report.get("load_error"):
        return CheckResult(
            kata=report["kata"], seed=report["seed"], status="load_error",
            exercises=tuple(
                ExerciseResult(e.name, "failed", report["load_error"]["message"]) for e in exercises
            ),
            message=report["load_error"]["message"], output_tail=output_tail,
            duration=duration, impl=report["impl"],
        )
    status = "passed" if all(e.ok for e in exercises) else "failed"
    return CheckResult(kata=report["kata"], seed=report["seed"], status=status,
                       exercises=exercises, output_tail=output_tail, duration=duration,
                       impl=report["impl"], extra={"armed": report.get("armed")})


# The child runs pytest and leaves with os._exit: interpreter shutdown (where a learner's
# __del__ or atexit handler could loop forever) never runs once the report is written.
CHILD_MAIN = (
    "import os, sys, pytest; code = pytest.main(sys.argv[1:]); "
    "sys.stdout.flush(); sys.stderr.flush(); os._exit(int(code))"
)

_NO_PLUGINS = [arg for name in ("unraisableexception", "threadexception", "logging", "doctest",
                                "junitxml", "pastebin", "legacypath", "warnings")
               for arg in ("-p", f"no:{name}")]


def pytest_args(kata: Kata, impl: Path, seed: int, report: Path, *, diagnose: bool,
                diagnose_budget: float = 0.2) -> list[str]:
    args = [
        "-p", "checker.plugin", "-p", "pytest_timeout", "-p", "no:cacheprovider",
        # Plugins a check run has no use for; the first two gc.collect() a torch-sized heap
        # several times at teardown (about 2 s on a cold run).
        *_NO_PLUGINS,
        "-c", str(Path(__file__).parent / "checks" / "pytest.ini"),
        "--rootdir", str(kata.checks_dir),
        "-q", "--no-header", "-rN", "--tb=no", "--color=no", "--capture=no",
        "--kata", kata.name, "--kata-impl", str(impl), "--kata-seed", str(seed),
        "--kata-report", str(report),
        f"--timeout={kata.timeout:g}", "--timeout-method=signal",
    ]
    if kata.catalog_file:
        args += ["--kata-catalog", str(kata.catalog_file)]
    if diagnose:
        args += ["--kata-diagnose", f"--kata-diagnose-budget={diagnose_budget:g}"]
    args.append(str(kata.checks_path))
    return args


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    # Make sure the child imports this very checker package (and a test catalog's mistakes).
    roots = [str(Path(__file__).resolve().parent.parent)]
    if env.get("PYTHONPATH"):
        roots.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(roots)
    return env


def random_seed() -> int:
    """A fresh seed for a run that was given none."""
    import random

    return random.SystemRandom().randrange(1, 10**6)


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


def read_tail(path: Path, limit: int = OUTPUT_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return ("... (output truncated)\n" if size > limit else "") + text


def wall_limit(kata: Kata) -> float:
    return max(60.0, kata.timeout * 3 * len(kata.exercises))


def run_checks(
    kata: Kata,
    impl: Path,
    *,
    seed: int | None = None,
    diagnose: bool = True,
    diagnose_budget: float = 0.2,
    memory_mb: int = DEFAULT_MEMORY_MB,
    wall: float | None = None,
    use_worker: Path | None = None,
) -> CheckResult:
    """Run ``kata``'s checks against ``impl`` and return what happened."""
    impl = Path(impl).absolute()
    wall = wall or wall_limit(kata)
    if use_worker is not None:  # with no seed given, the worker picks the one it prepared for
        from checker import worker

        result = worker.try_run(use_worker, kata, impl, seed=seed, diagnose=diagnose,
                                diagnose_budget=diagnose_budget, memory_mb=memory_mb, wall=wall)
        if result is not None:
            return result
    if seed is None:
        seed = random_seed()
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


def timed_out(kata: Kata, seed: int, impl: Path, wall: float, output: Path,
              duration: float) -> CheckResult:
    """The outcome of a run stopped by the wall-clock limit (cold or warm)."""
    return CheckResult(
        kata=kata.name, seed=seed, status="timeout",
        message=f"The checks did not finish within {wall:g} s and were stopped. "
        "Look for an infinite loop (in a function, at import time, or in __del__).",
        output_tail=read_tail(output), duration=duration, impl=str(impl))


def interrupted(kata: Kata, seed: int, impl: Path, duration: float = 0.0) -> CheckResult:
    """The outcome of a run the learner stopped with Ctrl-C: nothing is to be recorded."""
    return CheckResult(kata=kata.name, seed=seed, status="interrupted",
                       message="Interrupted: the checks were stopped; nothing was recorded.",
                       duration=duration, impl=str(impl))


def outcome_from_files(kata: Kata, seed: int, impl: Path, report: Path, output: Path,
                       returncode: int | None, duration: float) -> CheckResult:
    tail = read_tail(output)
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return CheckResult(kata=kata.name, seed=seed, status="crashed",
                           message=crash_message(returncode), output_tail=tail,
                           duration=duration, impl=str(impl))
    return from_report(data, duration, tail)


def crash_message(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        cause = {
            "SIGSEGV": "a segmentation fault (e.g. through ctypes or a bad as_strided into "
                       "memory outside the storage)",
            "SIGKILL": "being killed (often the memory limit)",
            "SIGABRT": "an abort inside native code",
        }.get(name, name)
        return f"The check process died from {cause} before it could report."
    return (f"The check process ended (exit status {returncode}) before it could report. "
            "Does your code call os._exit, kill its own process, or exhaust memory?")
