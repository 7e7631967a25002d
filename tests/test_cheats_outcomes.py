"""Reports fail closed: only a check that ran to completion and passed counts (cold and warm)."""

from __future__ import annotations

import pytest
from test_cheats import SOLUTION_REST

REACH_PYTEST = "import sys\npytest = sys.modules['pytest']  # `import pytest` itself is refused\n"


def double_does(body: str, head: str = REACH_PYTEST) -> str:
    """A gamma file whose `double` is wrong and tries ``body``; the other exercises solved."""
    return f"{head}import torch\n\ndef double(x):\n    {body}\n    return x + 1\n" + SOLUTION_REST


def message_of(result, name: str = "double") -> str:
    assert not result.passed, result
    if result.status in ("load_error", "crashed"):
        return result.message
    return next(e for e in result.exercises if e.name == name).message


@pytest.mark.parametrize(("body", "named"), [
    ("pytest.skip('later')", "pytest.skip"),
    ("pytest.xfail('known bug')", "pytest.xfail"),
    ("pytest.exit('bye', returncode=0)", "pytest.exit"),
    ("raise __import__('unittest').SkipTest('not today')", "unittest.SkipTest"),
])
def test_an_outcome_raised_by_learner_code_fails_and_is_named(judge_file, body, named):
    message = message_of(judge_file("gamma", double_does(body)))
    assert named in message and "cannot" in message, message


def test_a_skip_at_import_fails_the_file(judge_file):
    source = REACH_PYTEST + "pytest.skip('whole file', allow_module_level=True)\n" + double_does("pass")
    result = judge_file("gamma", source)
    assert result.status == "load_error" and "pytest.skip" in result.message, result.message


def test_skipping_stand_ins_from_a_module_getattr_fail_every_exercise(judge_file):
    source = REACH_PYTEST + "def __getattr__(name):\n    return lambda *a, **k: pytest.skip('x')\n"
    result = judge_file("gamma", source)
    assert not result.passed and result.exercises
    for exercise in result.exercises:
        assert exercise.status == "failed" and "pytest.skip" in exercise.message, exercise


def test_importing_pytest_is_refused(judge_file):
    result = judge_file("gamma", double_does("pass", head="import pytest\n"))
    assert result.status == "load_error" and "judge's own packages" in result.message


def test_a_forged_report_then_sigkill_is_a_crash(judge_file):
    body = ("import json, signal\n    "
            "forged = {'format_version': 1, 'kata': 'gamma', 'load_error': None, 'exercises': {}}\n    "
            "try:\n        path = sys.argv[sys.argv.index('--kata-report') + 1]\n"
            "        open(path, 'w').write(json.dumps(forged))\n"
            "    except Exception:\n        pass\n"
            "    signal.raise_signal(signal.SIGKILL)")
    result = judge_file("gamma", double_does(body))
    assert result.status == "crashed" and not result.passed, result
    assert "SIGKILL" in result.message or "killed" in result.message, result.message


def test_leaving_through_posix_exit_is_a_crash(judge_file):
    result = judge_file("gamma", double_does("__import__('posix')._exit(0)"))
    assert result.status == "crashed" and not result.passed and result.message
