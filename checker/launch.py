"""How a check child is launched: its pytest command line, its environment, its wall limit.

Shared by the cold runner (one ``python -c CHILD_MAIN`` per run) and the warm worker
(whose armed processes call ``pytest.main`` with the same arguments).
"""

from __future__ import annotations

import os
from pathlib import Path

from checker.catalog import Kata

DEFAULT_MEMORY_MB = int(os.environ.get("KATA_MEMORY_MB", "4096"))


# The child runs pytest and leaves with os._exit: interpreter shutdown (where a learner's
# __del__ or atexit handler could loop forever) never runs once the report is written.
# Its first act is to fork a keeper (checker.keeper) that ends whatever the run leaves, even
# once the runner is killed, and to watch it (checker.reaper): it never outlives the runner.
CHILD_MAIN = (
    "import os, sys; from checker.keeper import keep; from checker.reaper import start_watchdog; "
    "start_watchdog(keep(int(os.environ.pop('KATA_PARENT_PID', os.getppid())))); "
    "import pytest; code = pytest.main(sys.argv[1:]); "
    "sys.stdout.flush(); sys.stderr.flush(); os._exit(int(code))"
)

_NO_PLUGINS = [arg for name in ("unraisableexception", "threadexception", "logging", "doctest",
                                "junitxml", "pastebin", "legacypath", "warnings")
               for arg in ("-p", f"no:{name}")]


def pytest_args(kata: Kata, impl: Path, seed: int, report: Path, *, diagnose: bool,
                diagnose_budget: float = 0.2, only: str | None = None) -> list[str]:
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
    if only:
        args += ["--kata-only", only]
    if diagnose:
        args += ["--kata-diagnose", f"--kata-diagnose-budget={diagnose_budget:g}"]
    args.append(str(kata.checks_path))
    return args


PROGRESS_TTY = "KATA_PROGRESS_TTY"


def progress_tty() -> str | None:
    """The terminal this command writes to, if any: a check that takes long (a C++ build,
    checker.cppbuild) shows a live line there, although its own output goes to a file."""
    try:
        return os.ttyname(2) if os.isatty(2) else None
    except OSError:
        return None


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop(PROGRESS_TTY, None)
    tty = progress_tty()
    if tty:
        env[PROGRESS_TTY] = tty
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS"):  # its options and plugins are the runner's
        env.pop(name, None)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    # Make sure the child imports this very checker package (and a test catalog's mistakes).
    roots = [str(Path(__file__).resolve().parent.parent)]
    if env.get("PYTHONPATH"):
        roots.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(roots)
    return env


def wall_limit(kata: Kata) -> float:
    return max(60.0, kata.timeout * 3 * len(kata.exercises))


def run_files(tmp: str) -> tuple[Path, Path, Path]:
    """A run's report, output, and scratch folder in ``tmp``: the child's working directory and
    the only place where learner code may write (the report is next to it, out of reach)."""
    scratch = Path(tmp) / "scratch"
    scratch.mkdir()
    return Path(tmp) / "report.json", Path(tmp) / "output.txt", scratch
