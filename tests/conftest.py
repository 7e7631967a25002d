"""Shared fixtures: a tiny catalog of the tests' own, and workspaces made from it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# `kata check` starts a warm worker after its verdict; the tests' many throwaway workspaces
# must not each leave one running (tests of that behaviour clear this themselves).
os.environ["KATA_NO_WORKER"] = "1"

TINY = Path(__file__).parent / "tiny"
TINY_CATALOG = TINY / "katas" / "catalog.toml"
# `kata` as a process of its own, on the tiny catalog (see tests/tiny_kata.py)
TINY_KATA = [sys.executable, str(Path(__file__).parent / "tiny_kata.py")]


@pytest.fixture
def tiny_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this process's workspaces and CLI at the tiny catalog (the in-process route no
    user has: checker.workspace), and let check children import its mistakes package."""
    from checker import workspace

    monkeypatch.setattr(workspace, "CATALOG_IN_PROCESS", TINY_CATALOG)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TINY), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(TINY))
    return TINY_CATALOG


@pytest.fixture(scope="session")
def tiny_worker(tmp_path_factory):
    """A warm check worker that can see the tiny catalog; returns a run_checks through it."""
    import functools

    from checker import worker
    from checker.runner import run_checks

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TINY), old]))
    try:
        state_dir = tmp_path_factory.mktemp("tiny-worker")
        proc = worker.start(state_dir, wait=120)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    assert worker.is_running(state_dir)
    yield functools.partial(run_checks, use_worker=state_dir)
    worker.stop(state_dir)
    if proc is not None:
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def warm(tmp_path_factory):
    """A warm check worker on the shipped catalog; returns a run_checks through it."""
    import functools

    from checker import worker
    from checker.runner import run_checks

    state_dir = tmp_path_factory.mktemp("worker-state")
    proc = worker.start(state_dir, wait=120)
    assert worker.is_running(state_dir), "the check worker did not start"
    yield functools.partial(run_checks, use_worker=state_dir)
    worker.stop(state_dir)
    if proc is not None:
        proc.wait(timeout=10)


# The catalog's proofs (tests/test_katas.py) are thousands of small runs, made in a process of
# their own (tests/background_proofs.py) that writes each result as it is known; the tests that
# assert on them run last. The tests that time things (a verdict within so many seconds, a
# terminal's session) run first, alone: the proofs start as the first of the other tests does,
# and run beside them (about 280 s less in all, on two cores).
PROOF_TESTS = ("tests/test_katas.py::test_kata_is_proven[",
               "tests/test_katas.py::test_alternative_correct_answers_pass[")
TIMED_TESTS = tuple(f"tests/{name}.py::" for name in (
    "test_hostile", "test_watch_terminal", "test_friction", "test_keeper", "test_worker",
    "test_runner", "test_progress"))
_BACKGROUND: list = []
_JOBS: list = []  # the katas and the alternatives whose proofs this session asserts on
_PROOFS_START_AS: list = []  # the test as which the proofs start


class BackgroundProofs:
    """The background proofs' process and the folder it writes each result to."""

    def __init__(self, katas: list[str], alternatives: list[str]):
        import subprocess
        import tempfile

        self.out = Path(tempfile.mkdtemp(prefix="kata-proofs-"))
        subprocess.run([sys.executable, str(Path(__file__).parent / "background_proofs.py"),
                        str(self.out), str(os.getpid()), "--katas", *katas,
                        "--alternatives", *alternatives], check=True, timeout=60)

    def result(self, key: str, timeout: float = 3600.0):
        """The result named ``key`` (waiting for it); fails if the process ended without it."""
        import json
        import time

        path, deadline = self.out / f"{key}.json", time.monotonic() + timeout
        while not path.exists():
            if (self.out / "done").exists() and not path.exists() or time.monotonic() > deadline:
                log = (self.out / "log.txt").read_text() if (self.out / "log.txt").exists() else ""
                pytest.fail(f"the background proofs gave no result for {key}:\n{log[-4000:]}")
            time.sleep(0.2)
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "error" in data:
            pytest.fail(f"{key}: the proof raised\n{data['error']}")
        return data

    def stop(self) -> None:
        import signal

        try:
            pid = int((self.out / "pid").read_text())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    proofs = [item for item in items if item.nodeid.startswith(PROOF_TESTS)]
    if not proofs or config.option.collectonly:
        return
    timed = [item for item in items if item.nodeid.startswith(TIMED_TESTS)]
    rest = [item for item in items if not item.nodeid.startswith((*PROOF_TESTS, *TIMED_TESTS))]
    items[:] = timed + rest + proofs
    _PROOFS_START_AS[:] = [(rest or proofs)[0].nodeid]
    _JOBS[:] = [[i.callspec.params["name"] for i in proofs if i.nodeid.startswith(PROOF_TESTS[0])],
                [str(i.callspec.params["path"]) for i in proofs
                 if i.nodeid.startswith(PROOF_TESTS[1])]]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _PROOFS_START_AS and item.nodeid == _PROOFS_START_AS[0] and not _BACKGROUND:
        _BACKGROUND.append(BackgroundProofs(*_JOBS))


def pytest_sessionfinish(session: pytest.Session) -> None:
    for background in _BACKGROUND:
        background.stop()


@pytest.fixture(scope="session")
def background_proofs() -> BackgroundProofs:
    """The proofs of every kata and alternative this session runs (started as the first test
    that times nothing starts, or on first use)."""
    if not _BACKGROUND:
        assert _JOBS, "no proof tests were collected"
        _BACKGROUND.append(BackgroundProofs(*_JOBS))
    return _BACKGROUND[0]


@pytest.fixture
def tiny_catalog(tiny_env):
    from checker.catalog import load_catalog

    return load_catalog(tiny_env)


@pytest.fixture(params=["cold", "warm"])
def judge_file(request, tiny_catalog, tmp_path):
    """Judge a learner file's source against a tiny kata, on the cold path and on the warm one."""
    from checker.runner import run_checks

    run = run_checks if request.param == "cold" else request.getfixturevalue("tiny_worker")

    def judge(name: str, source: str, seed: int = 11):
        path = tmp_path / "cheat.py"
        path.write_text(source)
        return run(tiny_catalog.get(name), path, seed=seed, diagnose=False)

    return judge


@pytest.fixture
def workspace(tiny_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh workspace on the tiny catalog; the current directory is inside it."""
    from checker.workspace import Workspace

    ws, _ = Workspace.create(tmp_path / "ws")
    monkeypatch.chdir(ws.root)
    return ws


def alive(pid: int) -> bool:
    """Is ``pid`` a process that runs (not gone, not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def solve(ws, name: str) -> Path:
    """Copy the tiny kata's solution over the learner's file."""
    kata = ws.catalog.get(name)
    target = ws.kata_file(kata)
    target.write_text(kata.solution_path.read_text())
    return target


_TIMES: dict[str, float] = {}
_START: list[float] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    import time

    _START.append(time.perf_counter())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    part = "catalog integrity (tests/test_katas.py)" if report.nodeid.startswith(
        "tests/test_katas.py") else "framework"
    _TIMES[part] = _TIMES.get(part, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The suite's duration, split: the catalog-integrity proofs grow with the catalog."""
    import time

    total = time.perf_counter() - _START[0] if _START else sum(_TIMES.values())
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in sorted(_TIMES.items()))
    terminalreporter.write_line(f"suite duration: {total:.0f} s ({parts})")
