"""The warm worker gives the same verdicts as the cold path, and survives what children do."""

from __future__ import annotations

import os
import time

import pytest

from checker import worker
from checker.runner import run_checks
from tests.conftest import TINY


@pytest.fixture
def alpha(tiny_catalog):
    return tiny_catalog.get("alpha")


def test_warm_and_cold_verdicts_agree(alpha, tiny_worker):
    for path in (alpha.stub_path, alpha.solution_path, TINY / "impls" / "alpha_syntax.py"):
        warm = tiny_worker(alpha, path, seed=4)
        cold = run_checks(alpha, path, seed=4)
        assert (warm.status, [e.status for e in warm.exercises]) == (
            cold.status, [e.status for e in cold.exercises])
        assert [e.message for e in warm.exercises] == [e.message for e in cold.exercises]


def test_same_second_same_size_edit_is_seen(alpha, tiny_worker, tmp_path):
    path = tmp_path / "alpha.py"
    path.write_text("def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n")
    assert tiny_worker(alpha, path, seed=1).passed
    stat = path.stat()
    path.write_text("def add(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    assert not tiny_worker(alpha, path, seed=1).passed


@pytest.mark.parametrize("impl,status", [("alpha_segfault.py", "crashed"),
                                         ("alpha_kill.py", "crashed")])
def test_worker_survives_dying_children(alpha, tiny_worker, impl, status):
    assert tiny_worker(alpha, TINY / "impls" / impl, seed=1).status == status
    assert tiny_worker(alpha, alpha.solution_path, seed=1).passed


def test_worker_ends_a_hanging_child(alpha, tiny_worker):
    start = time.perf_counter()
    result = tiny_worker(alpha, TINY / "impls" / "alpha_import_hang.py", seed=1)
    assert result.status == "load_error" and "did not finish within" in result.message
    assert time.perf_counter() - start < 15
    assert tiny_worker(alpha, alpha.solution_path, seed=1).passed


def test_children_are_reseeded(alpha, tiny_worker, tmp_path):
    path = tmp_path / "alpha.py"
    path.write_text("import random\nSEEN = random.random()\n\ndef add(a, b):\n"
                    "    raise ValueError(SEEN)\n\ndef mul(a, b):\n    return a * b\n")
    first = tiny_worker(alpha, path, seed=1).exercises[0].message
    second = tiny_worker(alpha, path, seed=2).exercises[0].message
    assert first != second


def test_worker_retires_when_a_checker_file_changes(alpha, tiny_env, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    proc = worker.start(state, wait=120)
    try:
        assert worker.is_running(state)
        from checker import helpers

        st = os.stat(helpers.__file__)
        os.utime(helpers.__file__, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        try:
            # The stale worker refuses and exits; the runner falls back to the cold path.
            result = run_checks(alpha, alpha.solution_path, seed=1, use_worker=state)
            assert result.passed
            proc.wait(timeout=10)
            assert not worker.is_running(state)
        finally:  # other tests' workers (the session's) must not retire as well
            os.utime(helpers.__file__, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        worker.stop(state)
        if proc is not None and proc.poll() is None:
            proc.kill()


def test_no_worker_means_cold_path(alpha, tmp_path):
    assert worker.try_run(tmp_path, alpha, alpha.solution_path, seed=1, diagnose=False,
                          diagnose_budget=0.2, memory_mb=1024, wall=30) is None


def test_worker_picks_the_seed_it_prepared_unless_one_is_given(alpha, tiny_worker):
    prepared = tiny_worker(alpha, alpha.solution_path, seed=None)
    assert prepared.passed and prepared.seed >= 1
    assert tiny_worker(alpha, alpha.solution_path, seed=77).seed == 77


def test_a_run_naming_no_seed_never_reuses_the_seed_before(alpha, tiny_worker):
    """After a run with --seed N the next set is armed for N (a proof's next run asks for it
    too), but a run that names no seed still gets a fresh one."""
    assert tiny_worker(alpha, alpha.solution_path, seed=77).seed == 77
    assert tiny_worker(alpha, alpha.solution_path, seed=77).seed == 77
    seeds = {tiny_worker(alpha, alpha.solution_path, seed=None).seed for _ in range(2)}
    assert 77 not in seeds and len(seeds) == 2


def test_runs_alternating_between_katas_keep_their_verdicts(tiny_catalog, tiny_worker):
    alpha, beta = tiny_catalog.get("alpha"), tiny_catalog.get("beta")
    for _ in range(2):
        assert tiny_worker(alpha, alpha.solution_path, seed=3).passed
        assert not tiny_worker(beta, beta.stub_path, seed=3).passed
        assert tiny_worker(beta, beta.solution_path, seed=3).passed


def test_an_edited_check_file_is_used_by_the_next_run(tiny_env, tiny_worker, tmp_path):
    """The armed processes collected the checks before the run; an edit must not be missed."""
    import shutil

    from checker.catalog import load_catalog

    copy = tmp_path / "tiny"
    shutil.copytree(TINY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    kata = load_catalog(copy / "katas" / "catalog.toml").get("alpha")
    assert tiny_worker(kata, kata.solution_path, seed=1).passed
    time.sleep(1.5)  # the next run's processes have collected the checks by now
    checks = kata.checks_path
    checks.write_text(checks.read_text() + '\n\n@pytest.mark.exercise("mul")\n'
                      'def test_mul_is_edited(impl):\n    assert False, "the edited check ran"\n')
    result = tiny_worker(kata, kata.solution_path, seed=1)
    assert not result.passed
    assert "the edited check ran" in result.exercises[1].message


def test_a_run_says_how_long_it_waited_for_its_processes(tiny_catalog, tiny_worker):
    alpha, beta = tiny_catalog.get("alpha"), tiny_catalog.get("beta")
    assert tiny_worker(alpha, alpha.solution_path, seed=1).passed  # then alpha's set is armed
    time.sleep(1.5)
    ready = tiny_worker(alpha, alpha.solution_path, seed=1)
    assert ready.passed and ready.extra["armed"]["wait"] == 0.0
    switched = tiny_worker(beta, beta.solution_path, seed=1)  # beta's set is armed on request
    assert switched.passed and switched.extra["armed"]["wait"] > 0.0


def test_share_splits_every_check_once_longest_first():
    from checker.armed import share

    class Item:
        def __init__(self, name):
            self.nodeid = f"test_x.py::{name}"

    items = [Item(n) for n in ("a", "b", "c", "d", "e")]
    durations = {"a": 0.5, "b": 0.1, "c": 0.3, "d": 0.2, "e": 0.2}
    costs = {name: (run, 0.0) for name, run in durations.items()}
    shares = [share(items, i, 2, costs) for i in range(2)]
    names = [[it.nodeid.split("::")[1] for it in s] for s in shares]
    assert sorted(names[0] + names[1]) == ["a", "b", "c", "d", "e"]
    loads = [sum(durations[n] for n in s) for s in names]
    assert max(loads) < 0.7 + 1e-9  # a alone is 0.5; the best split is 0.7 / 0.6
    assert [it.nodeid for it in share(items, 0, 1, costs)] == [it.nodeid for it in items]
    # unknown durations: an even split by count
    assert sorted(len(share(items, i, 2, {})) for i in range(2)) == [2, 3]


def test_share_spreads_prepare_work_then_balances_the_runs():
    """Three checks whose reference values are prepared before the save (long prepare,
    short run) and three that only run: neither the arming nor the run piles up on one side."""
    from checker.armed import share

    class Item:
        def __init__(self, name):
            self.nodeid = f"test_x.py::{name}"

    costs = {"p1": (0.001, 0.13), "p2": (0.001, 0.12), "p3": (0.001, 0.12),
             "r1": (0.07, 0.0), "r2": (0.05, 0.0), "r3": (0.05, 0.0)}
    items = [Item(n) for n in costs]
    names = [[it.nodeid.split("::")[1] for it in share(items, i, 2, costs)] for i in range(2)]
    assert sorted(names[0] + names[1]) == sorted(costs)
    arming = [sum(costs[n][1] for n in s) for s in names]
    runs = [sum(costs[n][0] for n in s) for s in names]
    assert max(arming) <= 0.25 + 1e-9  # not all three prepares (0.37 s) in one process
    assert max(runs) <= 0.105  # 0.07 against 0.05 + 0.05 (plus the prepared checks' runs)


def test_the_worker_learns_each_checks_run_and_prepare_time(tmp_path):
    """The split balances what a process does before the save (prepare hooks) and after."""
    import json
    import socket
    from types import SimpleNamespace

    from checker.report import REPORT_VERSION
    from checker.server import Server
    from checker.tail import OutputTail

    def part(results, prepared):
        return {"format_version": REPORT_VERSION, "kata": "k", "impl": "x.py", "seed": 1,
                "load_error": None, "exercises": {"e": {}}, "results": results,
                "unassigned": [], "duration": 0.3, "armed": {"wait": 0.0, "prepared": prepared},
                "collected": {"e": [entry["id"] for entry in results["e"]]}}

    parts = [(str(tmp_path / f"r.{i}"), str(tmp_path / f"o.{i}")) for i in range(2)]
    reports = [part({"e": [{"id": "test_a", "duration": 0.01, "outcome": "passed"}]}, {"test_a": 0.2}),
               part({"e": [{"id": "test_b", "duration": 0.1, "outcome": "passed"}]}, {})]
    for (report, output), data in zip(parts, reports, strict=True):
        (tmp_path / report).write_text(json.dumps(data))
        (tmp_path / output).write_text("")
    with socket.socket(socket.AF_UNIX) as listener:
        server = Server(listener)
        armed = SimpleNamespace(logs=["", ""], pids=[1, 2])
        req = {"output": str(tmp_path / "out.txt"), "report": str(tmp_path / "report.json")}
        tails = []
        for _ in parts:  # the processes' output pipes, already closed by their writers
            read, write = os.pipe()
            os.close(write)
            tails.append(OutputTail(read))
        reply = server._merge(req, armed, parts, {1: 0, 2: 0}, ("k", None), tails)
    assert reply["ok"]
    learned = server.costs[("k", None)]
    assert learned["test_a"] == pytest.approx((0.01, 0.2)) and learned["test_b"] == pytest.approx((0.1, 0.0))


ARMED_IMPORTS = r'''
import json, os, sys
from pathlib import Path
os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
from checker.preload import preimport_checks, preload_modules
preload_modules()
import torch
torch.set_num_threads(1)
preimport_checks({"kata": "strides"})
import pytest
from checker.armed import ArmedRun
from checker.catalog import load_catalog
from checker.launch import pytest_args
kata = load_catalog().get("strides")
before = set(sys.modules)
read, write = os.pipe()
if os.fork() == 0:
    class Probe(ArmedRun):
        def _wait(self):
            os.write(write, json.dumps(sorted(set(sys.modules) - before)).encode())
            os._exit(0)
    pytest.main(pytest_args(kata, kata.stub_path, 1, Path(os.devnull), diagnose=False),
                plugins=[Probe(-1, 0, 1, {}, None)])
    os._exit(1)
os.close(write)
os.wait()
print(os.read(read, 1 << 20).decode())
'''


def test_an_armed_process_imports_nothing_to_configure_pytest():
    """The worker imports what configuring and collecting a kata's checks needs (pytest's
    own plugins and what they import), so that no armed process imports it again: that was
    a third of arming one (checker.preload.preload_modules)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", ARMED_IMPORTS], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
