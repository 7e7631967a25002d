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
    result = tiny_worker(alpha, TINY / "impls" / "alpha_import_hang.py", seed=1, wall=3)
    assert result.status == "timeout" and time.perf_counter() - start < 15
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
        # The stale worker refuses and exits; the runner falls back to the cold path.
        result = run_checks(alpha, alpha.solution_path, seed=1, use_worker=state)
        assert result.passed
        proc.wait(timeout=10)
        assert not worker.is_running(state)
    finally:
        worker.stop(state)
        if proc is not None and proc.poll() is None:
            proc.kill()


def test_no_worker_means_cold_path(alpha, tmp_path):
    assert worker.try_run(tmp_path, alpha, alpha.solution_path, seed=1, diagnose=False,
                          diagnose_budget=0.2, memory_mb=1024, wall=30) is None
