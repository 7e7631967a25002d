"""The record is the CLI's: learner code cannot write the workspace's progress."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from checker.cli import main


@pytest.fixture
def run(workspace):
    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def progress(ws) -> dict:
    path = ws.state_dir / "progress.json"
    return json.loads(path.read_text())["katas"] if path.exists() else {}


FORGED = {"format_version": 1, "katas": {"alpha": {"status": "passed", "passed_at": "now"}}}


def test_learner_code_cannot_write_the_progress_file(run, workspace):
    target = workspace.state_dir / "progress.json"
    workspace.kata_file(workspace.catalog.get("alpha")).write_text(
        f"import json\n\ndef add(a, b):\n    open({str(target)!r}, 'w').write(json.dumps({FORGED!r}))\n"
        "    return a - b\n\ndef mul(a, b):\n    return a * b\n")
    result = run("check")
    assert result.exit_code == 1 and "off-limits" in result.output, result.output
    assert progress(workspace).get("alpha", {}).get("status") != "passed"


def test_a_run_during_which_the_record_changed_fails_and_records_nothing(run, workspace,
                                                                        monkeypatch):
    """Whatever route changed .kata/ meanwhile (native code, another process), the CLI sees it."""
    from checker import runner
    from checker.outcome import CheckResult, ExerciseResult

    target = workspace.state_dir / "progress.json"
    before = target.read_bytes() if target.exists() else None

    def forging_run(kata, path, **_):
        target.write_text(json.dumps(FORGED))
        return CheckResult(kata=kata.name, seed=1, status="passed",
                           exercises=tuple(ExerciseResult(e, "passed") for e in kata.exercises))

    monkeypatch.setattr(runner, "run_checks", forging_run)
    result = run("check")
    assert result.exit_code == 1 and "changed while the checks ran" in result.output, result.output
    assert (target.read_bytes() if target.exists() else None) == before


def test_a_catalog_other_than_the_shipped_one_is_named_on_every_run(run, workspace):
    """Only `--catalog` judges against another catalog (the workspace's own is the one this
    process was given: see tests/conftest.py), and every such run says so."""
    from tests.conftest import TINY_CATALOG

    for _ in range(2):
        result = run("check", "alpha", "--catalog", str(TINY_CATALOG))
        assert "not from the catalog shipped with torch-katas" in result.output, result.output
