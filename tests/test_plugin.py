"""The checks' pytest plugin, driven through pytester on a catalog made in the test."""

from __future__ import annotations

import json

import pytest

CATALOG = """
format_version = 2
checks_dir = "checks"
mistakes_package = "plugmistakes"

[[kata]]
name = "sq"
title = "Square"
track = "T"
exercises = ["square", "cube"]

[kata.hints]
square = ["x * x"]
cube = ["x * x * x"]
"""

CHECKS = """
import pytest


@pytest.mark.exercise("square")
def test_square(impl, rng, seed):
    x = int(rng.integers(2, 1000))
    assert impl.square(x) == x * x, f"square({x}) should be {x * x}, got {impl.square(x)}"


@pytest.mark.exercise("cube")
def test_cube(impl):
    assert impl.cube(3) == 27, f"cube(3) should be 27, got {impl.cube(3)}"
"""

MISTAKES = """
from checker.mistakes import mistake


@mistake("square", "Doubling instead of squaring.")
def doubles(x):
    return 2 * x
"""


@pytest.fixture
def kata_dir(pytester: pytest.Pytester, monkeypatch):
    import os

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(pytester.path), os.environ.get("PYTHONPATH")])))
    pytester.mkdir("katas")
    (pytester.path / "katas" / "catalog.toml").write_text(CATALOG)
    pytester.mkdir("checks")
    (pytester.path / "checks" / "test_sq.py").write_text(CHECKS)
    pytester.mkdir("plugmistakes")
    (pytester.path / "plugmistakes" / "__init__.py").write_text("")
    (pytester.path / "plugmistakes" / "sq.py").write_text(MISTAKES)
    pytester.mkdir("solutions")
    pytester.mkdir("solutions/01_sq")
    (pytester.path / "solutions" / "01_sq" / "sq.py").write_text(
        "def square(x):\n    return x * x\n\ndef cube(x):\n    return x ** 3\n")
    return pytester.path


@pytest.fixture(autouse=True)
def child_env(monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def run(pytester, kata_dir, impl_source: str, *extra: str):
    impl = kata_dir / "impl.py"
    impl.write_text(impl_source)
    report = kata_dir / "report.json"
    result = pytester.runpytest_subprocess(
        "-p", "checker.plugin", "checks/test_sq.py", "--kata", "sq",
        "--kata-catalog", str(kata_dir / "katas" / "catalog.toml"),
        "--kata-impl", str(impl), "--kata-report", str(report), *extra)
    return result, json.loads(report.read_text())


def test_report_per_exercise_with_seed_in_header(pytester, kata_dir):
    result, report = run(pytester, kata_dir,
                         "def square(x):\n    return x * x\n\ndef cube(x):\n    return 0\n",
                         "--kata-seed", "77")
    result.stdout.fnmatch_lines(["*torch-katas: kata=sq seed=77*"])
    assert report["seed"] == 77 and report["load_error"] is None
    assert report["exercises"]["square"]["status"] == "passed"
    cube = report["exercises"]["cube"]
    assert cube["status"] == "failed" and "cube(3) should be 27, got 0" in cube["message"]


def test_not_implemented_is_named(pytester, kata_dir):
    _, report = run(pytester, kata_dir,
                    "def square(x):\n    raise NotImplementedError('square')\n\n"
                    "def cube(x):\n    return x ** 3\n")
    assert report["exercises"]["square"]["message"].startswith("not implemented yet")


def test_learner_exception_points_at_their_line(pytester, kata_dir):
    _, report = run(pytester, kata_dir,
                    "def square(x):\n    return x * x\n\ndef cube(x):\n    return [][1]\n")
    msg = report["exercises"]["cube"]["message"]
    assert "IndexError" in msg and "impl.py:5" in msg


def test_syntax_error_is_a_load_error_with_line(pytester, kata_dir):
    _, report = run(pytester, kata_dir, "def square(x):\n    return x *\n")
    assert "impl.py:2" in report["load_error"]["message"]
    assert report["load_error"]["line"] == 2


def test_missing_function_says_keep_the_names(pytester, kata_dir):
    _, report = run(pytester, kata_dir, "def square(x):\n    return x * x\n")
    assert "has no `cube`" in report["exercises"]["cube"]["message"]


def test_diagnosis_names_matching_mistake(pytester, kata_dir):
    _, report = run(pytester, kata_dir,
                    "def square(x):\n    return x + x\n\ndef cube(x):\n    return x ** 3\n",
                    "--kata-diagnose", "--kata-seed", "5")
    assert report["exercises"]["square"]["diagnosis"] == [
        {"id": "doubles", "misconception": "Doubling instead of squaring."}]


def test_seed_makes_inputs_reproducible(pytester, kata_dir):
    wrong = "def square(x):\n    return x * x + 1\n\ndef cube(x):\n    return x ** 3\n"
    _, a = run(pytester, kata_dir, wrong, "--kata-seed", "3")
    _, b = run(pytester, kata_dir, wrong, "--kata-seed", "3")
    _, c = run(pytester, kata_dir, wrong, "--kata-seed", "4")
    msg = [r["exercises"]["square"]["message"] for r in (a, b, c)]
    assert msg[0] == msg[1] != msg[2]


def test_plugin_is_inert_without_kata(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "checker.plugin")
    result.assert_outcomes(passed=1)


def _fixture(when: str) -> str:
    return (f"@pytest.fixture\ndef broken():\n    {'raise RuntimeError(' + repr(when) + ')' if when == 'setup' else ''}\n"
            f"    yield\n    {'raise RuntimeError(' + repr(when) + ')' if when == 'teardown' else ''}\n\n")


@pytest.mark.parametrize(("check", "words"), [
    ("def test_square(impl):\n    pytest.skip('no GPU here')", "pytest.skip (no GPU here)"),
    ("def test_square(impl):\n    pytest.xfail('known')", "pytest.xfail (known)"),
    ("@pytest.mark.xfail(reason='flaky')\ndef test_square(impl):\n    pass", "xpass"),
    ("@pytest.mark.xfail(reason='flaky')\ndef test_square(impl):\n    assert False", "xfail"),
    ("@pytest.mark.skip(reason='later')\ndef test_square(impl):\n    pass", "pytest.skip (later)"),
    (_fixture("setup") + "def test_square(impl, broken):\n    pass", "setting the check up"),
    (_fixture("teardown") + "def test_square(impl, broken):\n    pass", "cleaning up after"),
])
def test_a_check_counts_only_when_it_ran_to_completion_and_passed(pytester, kata_dir, check, words):
    """Whatever ends a check as other than passed fails its exercise, with a message naming it."""
    (kata_dir / "checks" / "test_sq.py").write_text(
        "import pytest\n\n" + check.replace("def test_square", '@pytest.mark.exercise("square")\n'
                                            "def test_square", 1)
        + '\n\n\n@pytest.mark.exercise("cube")\ndef test_cube(impl):\n    assert impl.cube(3) == 27\n')
    result, report = run(pytester, kata_dir, "def square(x):\n    return x * x\n\n"
                                             "def cube(x):\n    return x ** 3\n")
    square = report["exercises"]["square"]
    assert square["status"] == "failed" and words in square["message"], square
    assert report["exercises"]["cube"]["status"] == "passed"
    assert result.ret == 1  # pytest counts it as failed too: the exit status fits the report


def test_an_exercise_whose_check_never_reported_fails(pytester, kata_dir):
    (kata_dir / "checks" / "test_sq.py").write_text(
        "import pytest\n\n@pytest.mark.exercise('square')\ndef test_square(impl):\n"
        "    pytest.exit('stopping early', returncode=0)\n\n"
        "@pytest.mark.exercise('cube')\ndef test_cube(impl):\n    assert impl.cube(3) == 27\n")
    _, report = run(pytester, kata_dir, "def square(x):\n    return x * x\n\n"
                                        "def cube(x):\n    return x ** 3\n")
    for name in ("square", "cube"):
        entry = report["exercises"][name]
        assert entry["status"] == "failed" and "did not run to completion" in entry["message"]


def test_a_report_is_trusted_only_from_a_process_that_ended_as_it_says(tmp_path):
    from checker.catalog import Kata, Rules
    from checker.outcome import outcome_from_files

    kata = Kata("k", 1, "K", "T", ("e",), (), rules=Rules())
    report, output = tmp_path / "report.json", tmp_path / "output.txt"
    output.write_text("")
    passed = {"format_version": 1, "kata": "k", "impl": "x.py", "seed": 1, "load_error": None,
              "exercises": {"e": {"status": "passed", "message": ""}},
              "results": {"e": [{"id": "test_e", "outcome": "passed"}]},
              "collected": {"e": ["test_e"]}}
    report.write_text(json.dumps(passed))
    assert outcome_from_files(kata, 1, tmp_path, report, output, 0, 0.1).passed
    for code in (-9, 1, 2, 3, None):  # killed after writing it, or an exit that belies it
        result = outcome_from_files(kata, 1, tmp_path, report, output, code, 0.1)
        assert result.status == "crashed" and "not trusted" in result.message, code
    fewer = dict(passed, collected={"e": ["test_e", "test_f"]})  # a collected check never reported
    report.write_text(json.dumps(fewer))
    assert not outcome_from_files(kata, 1, tmp_path, report, output, 0, 0.1).passed
    odd = dict(passed, exercises={"e": {"status": "skipped", "message": ""}})
    report.write_text(json.dumps(odd))
    result = outcome_from_files(kata, 1, tmp_path, report, output, 0, 0.1)
    assert result.exercises[0].status == "failed" and "unknown status" in result.exercises[0].message
    nothing = dict(passed, exercises={})
    report.write_text(json.dumps(nothing))
    result = outcome_from_files(kata, 1, tmp_path, report, output, 0, 0.1)
    assert result.exercises[0].status == "failed" and result.exercises[0].message


def test_a_check_for_a_device_this_machine_lacks_is_not_applicable_and_passes_nothing(
        pytester, kata_dir):
    """needs_device: decided at collection, reported with why, never counted as a pass; the
    exercise is judged by its other checks, and fails when it has none."""
    (kata_dir / "checks" / "test_sq.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.exercise('square')\ndef test_square(impl):\n    assert impl.square(3) == 9\n\n"
        "@pytest.mark.exercise('square')\n@pytest.mark.needs_device('nodevice')\n"
        "def test_square_on_device(impl):\n    assert False, 'ran where it cannot'\n\n"
        "@pytest.mark.exercise('cube')\n@pytest.mark.needs_device('nodevice')\n"
        "def test_cube_on_device(impl):\n    assert impl.cube(3) == 27\n\n"
        "@pytest.mark.exercise('cube')\n@pytest.mark.needs_device('cpu')\n"
        "def test_cube_on_cpu(impl):\n    assert impl.cube(2) == 8\n")
    good = "def square(x):\n    return x * x\n\ndef cube(x):\n    return x ** 3\n"
    result, report = run(pytester, kata_dir, good)
    square, cube = report["exercises"]["square"], report["exercises"]["cube"]
    assert square["status"] == "passed" and square["checks"] == 1
    assert square["not_applicable"] == [
        "test_square_on_device: needs a nodevice device, and this machine has none"]
    assert cube["status"] == "passed" and cube["checks"] == 1  # the cpu check ran
    assert result.ret == 0
    _, report = run(pytester, kata_dir, "def square(x):\n    return x * x\n\n"
                                        "def cube(x):\n    return 0\n")
    assert report["exercises"]["cube"]["status"] == "failed"  # not rescued by the absent one
    (kata_dir / "checks" / "test_sq.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.exercise('square')\n@pytest.mark.needs_device('nodevice')\n"
        "def test_square_on_device(impl):\n    assert impl.square(3) == 9\n\n"
        "@pytest.mark.exercise('cube')\ndef test_cube(impl):\n    assert impl.cube(3) == 27\n")
    _, report = run(pytester, kata_dir, good)
    square = report["exercises"]["square"]
    assert square["status"] == "failed" and "no check of this exercise ran" in square["message"]


def test_the_verdict_names_a_check_that_was_not_applicable():
    from rich.console import Console

    from checker import render
    from checker.outcome import CheckResult, ExerciseResult

    why = "test_on_gpu: needs a cuda device, and this machine has none"
    result = CheckResult("sq", 1, "passed", (ExerciseResult("square", "passed", checks=1,
                                                            not_applicable=(why,)),))
    out = Console(record=True, width=200)
    render.show_result(out, result)
    text = out.export_text()
    assert "✓ square" in text and f"not applicable here, not counted: {why}" in text


def test_a_gpu_check_dropped_on_a_machine_with_a_driver_says_why(monkeypatch):
    """A machine with NVIDIA's driver where CUDA did not start in the check process (under
    KATA_MEMORY_CAP=as it cannot) is not told it has no GPU."""
    from checker import limits, run_state

    monkeypatch.setattr(limits, "CUDA_CONTROL_DEVICE", "/nonexistent/nvidiactl")
    assert run_state._why_not("cuda") == "needs a cuda device, and this machine has none"
    monkeypatch.setattr(limits, "CUDA_CONTROL_DEVICE", "/dev/null")  # a node that exists
    assert "has an NVIDIA driver, but CUDA did not start" in run_state._why_not("cuda")
    assert run_state._why_not("xpu") == "needs a xpu device, and this machine has none"
