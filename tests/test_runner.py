"""Whatever the learner's file does, the runner returns an outcome and progress stays intact."""

from __future__ import annotations

import pytest

from checker.runner import run_checks
from tests.conftest import TINY

IMPLS = TINY / "impls"


@pytest.fixture
def alpha(tiny_catalog):
    return tiny_catalog.get("alpha")


def run(kata, name: str, **kw):
    return run_checks(kata, IMPLS / name, seed=7, **kw)


def test_solution_passes_and_stub_fails(alpha):
    assert run_checks(alpha, alpha.solution_path, seed=1).passed
    stub = run_checks(alpha, alpha.stub_path, seed=1)
    assert stub.status == "failed" and stub.exercises_passed == 0


def test_infinite_loop_in_a_function_times_out_per_check(alpha):
    result = run(alpha, "alpha_hang.py")
    assert result.status == "failed"
    add = next(e for e in result.exercises if e.name == "add")
    assert not add.ok and "Timeout" in add.message
    # said as a time limit, where the time went, never as a pytest.fail of the learner's
    assert "`add` did not return" in add.message and "alpha_hang.py:2" in add.message
    assert "pytest.fail" not in add.message
    assert next(e for e in result.exercises if e.name == "mul").ok


def test_infinite_loop_at_import_has_the_per_check_limit(alpha):
    result = run(alpha, "alpha_import_hang.py")
    assert result.status == "load_error"
    assert "did not finish within 2 s" in result.message and "infinite loop" in result.message


def test_the_wall_clock_still_ends_what_outlives_it(alpha):
    result = run(alpha, "alpha_hang.py", wall=1)
    assert result.status == "timeout" and "did not finish within 1 s" in result.message


def test_segfault_is_reported(alpha):
    result = run(alpha, "alpha_segfault.py")
    assert result.status == "crashed"
    assert "segmentation fault" in result.message


def test_sigkill_is_reported(alpha):
    result = run(alpha, "alpha_kill.py")
    assert result.status == "crashed" and "killed" in result.message


def test_os_exit_becomes_a_failure(alpha):
    result = run(alpha, "alpha_os_exit.py")
    add = next(e for e in result.exercises if e.name == "add")
    assert result.status == "failed" and "SystemExit" in add.message


@pytest.mark.parametrize("impl,exc", [("alpha_sysexit.py", "SystemExit"),
                                      ("alpha_keyboard.py", "KeyboardInterrupt")])
def test_exit_and_interrupt_from_learner_code_fail_that_exercise(alpha, impl, exc):
    result = run(alpha, impl)
    add = next(e for e in result.exercises if e.name == "add")
    assert result.status == "failed" and exc in add.message
    assert next(e for e in result.exercises if e.name == "mul").ok


def test_syntax_error_names_file_and_line(alpha):
    result = run(alpha, "alpha_syntax.py")
    assert result.status == "load_error"
    assert "alpha_syntax.py:2" in result.message and "syntax error" in result.message


def test_flood_of_output_is_truncated(alpha):
    result = run(alpha, "alpha_flood.py")
    assert result.status == "passed"
    assert len(result.output_tail) <= 5000


@pytest.mark.parametrize("content,needle", [
    (None, "does not exist"),
    (b"\xff\xfe def add(a, b): pass", "not valid UTF-8"),
])
def test_missing_or_undecodable_file(alpha, tmp_path, content, needle):
    path = tmp_path / "alpha.py"
    if content is not None:
        path.write_bytes(content)
    result = run_checks(alpha, path, seed=1)
    assert result.status == "load_error" and needle in result.message


def test_directory_instead_of_file(alpha, tmp_path):
    (tmp_path / "alpha.py").mkdir()
    result = run_checks(alpha, tmp_path / "alpha.py", seed=1)
    assert result.status == "load_error" and "directory" in result.message


def test_forbidden_api_fails_with_message(tiny_catalog, tmp_path):
    beta = tiny_catalog.get("beta")
    path = tmp_path / "beta.py"
    path.write_text("from operator import neg as n\n\ndef neg(x):\n    import operator\n    return operator.neg(x)\n")
    result = run_checks(beta, path, seed=1)
    assert result.status == "failed"
    assert "`operator.neg` is off-limits in this kata" in result.exercises[0].message


def test_same_seed_same_inputs(alpha, tmp_path):
    path = tmp_path / "alpha.py"
    path.write_text("def add(a, b):\n    return a + b + 1\n\ndef mul(a, b):\n    return a * b\n")
    first = run_checks(alpha, path, seed=99)
    second = run_checks(alpha, path, seed=99)
    other = run_checks(alpha, path, seed=100)
    assert first.exercises[0].message == second.exercises[0].message
    assert first.exercises[0].message != other.exercises[0].message


def test_diagnosis_names_the_misconception(alpha, tmp_path):
    path = tmp_path / "alpha.py"
    path.write_text("def add(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n")
    result = run_checks(alpha, path, seed=3)
    add = result.exercises[0]
    assert [d[0] for d in add.diagnosis] == ["add_subtracts"]
    other = tmp_path / "other.py"
    other.write_text("def add(a, b):\n    return a * 2 + b\n\ndef mul(a, b):\n    return a * b\n")
    assert run_checks(alpha, other, seed=3).exercises[0].diagnosis == ()


def test_infinite_loop_in_del_is_contained(alpha):
    """A __del__ that loops: broken by the per-check alarm (again and again), and the check
    fails; one that would loop at interpreter exit never runs (the child leaves with
    os._exit). tests/test_hostile.py times it on both paths."""
    result = run(alpha, "alpha_del_loop.py")
    assert result.status == "failed" and "__del__" in result.exercises[0].message


@pytest.mark.parametrize("path", ["cold", "warm"])
def test_a_run_of_one_exercise_runs_its_checks_only_and_never_passes(alpha, path, request):
    """The proofs judge a mistake by its own exercise's checks (``only``): those run and give
    their verdict; the other exercises fail as unchecked, so such a run can never pass."""
    run = run_checks if path == "cold" else request.getfixturevalue("tiny_worker")
    result = run(alpha, alpha.solution_path, seed=3, diagnose=False, only="mul")
    by_name = {e.name: e for e in result.exercises}
    assert by_name["mul"].ok and by_name["mul"].checks >= 1
    assert not by_name["add"].ok and by_name["add"].checks == 0
    assert "no check of this exercise ran" in by_name["add"].message
    assert not result.passed
    wrong = run(alpha, IMPLS / "alpha_hang.py", seed=3, diagnose=False, only="mul")
    assert {e.name: e.ok for e in wrong.exercises} == {"add": False, "mul": True}
