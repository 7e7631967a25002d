"""The rough edges a new learner met, each one gone: nested workspaces, reset without a
terminal, kata numbers, --file without NAME, the replay line, outside a workspace, a failing
editor."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from checker.cli import main
from tests.conftest import solve


def invoke(*args: str, input: str | None = None, env: dict | None = None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, input=input, env=env)


def test_init_inside_a_workspace_is_refused_naming_it(workspace):
    inner = workspace.root / "katas" / "nested"
    result = invoke("init", str(inner))
    assert result.exit_code == 1
    assert str(workspace.root) in result.output and "inside the kata workspace" in result.output
    assert not (inner / ".kata").exists()


def test_reset_without_a_terminal_needs_yes(workspace):
    kata = workspace.catalog.katas[0]
    mine = workspace.kata_file(kata)
    mine.write_text("# my work\n")
    refused = invoke("reset", kata.name, input="n\n")  # CliRunner's stdin is not a terminal
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert mine.read_text() == "# my work\n"
    done = invoke("reset", kata.name, "--yes")
    assert done.exit_code == 0 and "kept at" in done.output
    backups = list(workspace.backups_dir.iterdir())
    assert len(backups) == 1 and backups[0].read_text() == "# my work\n"


def test_reset_of_a_pristine_file_keeps_no_backup(workspace):
    kata = workspace.catalog.katas[0]
    done = invoke("reset", kata.name, "--yes")
    assert done.exit_code == 0 and "kept at" not in done.output
    assert not workspace.backups_dir.exists() or not any(workspace.backups_dir.iterdir())


def test_katas_by_number_and_folder_name(workspace):
    first, second = workspace.catalog.katas[:2]
    for ref in ("1", "01", first.dirname):
        assert invoke("hint", ref).exit_code == 0, ref
    locked = invoke("check", "2")
    assert locked.exit_code == 1 and second.name in locked.output and "locked" in locked.output
    assert invoke("check", "99").exit_code == 2


def test_file_without_name_is_inferred_from_its_file_name(workspace, tmp_path):
    kata = workspace.catalog.katas[0]
    path = tmp_path / f"{kata.name}.py"
    path.write_text(kata.solution_path.read_text())
    result = invoke("check", "--file", str(path), "--seed", "7")
    assert result.exit_code == 0, result.output
    other = tmp_path / "whatever.py"
    other.write_text("")
    unknown = invoke("check", "--file", str(other))
    assert unknown.exit_code == 2 and "kata check NAME --file" in unknown.output


def test_replay_line_keeps_the_file(workspace, tmp_path):
    kata = workspace.catalog.katas[0]
    path = tmp_path / "attempt.py"
    path.write_text(kata.stub_path.read_text())
    result = invoke("check", kata.name, "--file", str(path), "--seed", "11")
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    replay = flat[flat.index(f"kata check {kata.name} --file"):]
    assert "attempt.py" in replay.split(";")[0] and "--seed 11" in replay.split(";")[0]


def test_outside_a_workspace_is_a_usage_error_naming_the_usual_one(tiny_env, tmp_path,
                                                                    monkeypatch):
    home = tmp_path / "home"
    assert invoke("init", str(home / "katas")).exit_code == 0
    monkeypatch.setenv("HOME", str(home))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = invoke("next")
    assert result.exit_code == 2
    assert str(home / "katas") in result.output


def test_a_failing_editor_is_reported(workspace, monkeypatch):
    monkeypatch.setenv("EDITOR", "false")
    monkeypatch.delenv("VISUAL", raising=False)
    result = invoke("open")
    assert result.exit_code == 1 and "failed" in result.output and "Opened" not in result.output


def test_solved_kata_by_number(workspace):
    kata = workspace.catalog.katas[0]
    solve(workspace, kata.name)
    assert invoke("check", "1", "--seed", "3").exit_code == 0


def test_a_check_leaves_a_warm_worker_for_the_next(workspace, monkeypatch):
    import time

    from checker import worker

    monkeypatch.delenv("KATA_NO_WORKER")
    kata = workspace.catalog.katas[0]
    solve(workspace, kata.name)
    try:
        first = invoke("check", "--seed", "5")
        assert first.exit_code == 0
        deadline = time.monotonic() + 120
        while not worker.is_running(workspace.state_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.is_running(workspace.state_dir)
        second = worker.spawn(workspace.state_dir)  # a second one finds the lock and leaves
        assert second.wait(timeout=60) == 0
        assert worker.is_running(workspace.state_dir)
        stopped = invoke("stop", "--off")
        assert stopped.exit_code == 0 and "Stopped" in stopped.output
        assert not worker.is_running(workspace.state_dir)
        invoke("check", "--seed", "5")  # off in this workspace: nothing started
        time.sleep(1)
        assert not worker.is_running(workspace.state_dir)
    finally:
        worker.stop(workspace.state_dir)


def test_only_changed_code_counts_as_an_attempt(workspace):
    import json

    kata = workspace.catalog.katas[0]
    path = workspace.kata_file(kata)
    attempts = lambda: json.loads((workspace.state_dir / "progress.json").read_text())[  # noqa: E731
        "katas"][kata.name]["attempts"]
    invoke("check", "--seed", "1")
    assert attempts() == 1
    path.write_text(path.read_text() + "\n# a comment only\n\n")
    invoke("check", "--seed", "2")
    assert attempts() == 1  # comments and layout are not code
    solve(workspace, kata.name)
    invoke("check", "--seed", "3")
    assert attempts() == 2


def test_progress_shows_time_attempts_hints_and_streak(workspace):
    import datetime as dt

    from checker.app import streak

    kata = workspace.catalog.katas[0]
    invoke("hint")
    invoke("check", "--seed", "1")
    solve(workspace, kata.name)
    invoke("check", "--seed", "1")
    shown = invoke("progress").output
    line = next(ln for ln in shown.splitlines() if ln.strip().startswith(kata.name))
    assert line.split()[-3:-1] == ["2", "1"]  # attempts, hints
    assert dt.date.today().isoformat() in line
    assert "Streak: 1 day" in shown and "total" in shown
    today = dt.date(2026, 3, 10)
    days = ["2026-03-07", "2026-03-08", "2026-03-09"]
    assert streak(days, today) == 3 and streak(days + ["2026-03-10"], today) == 4
    assert streak(["2026-03-01"], today) == 0


@pytest.mark.parametrize("version", [1, 2])
def test_older_progress_is_migrated_without_loss(workspace, version):
    import json

    path = workspace.state_dir / "progress.json"
    path.write_text(json.dumps({"format_version": version, "katas": {"alpha": {
        "status": "passed", "attempts": 4, "hints_shown": 1, "passed_at": "2026-01-02T00:00:00",
        "exercises_passed": 2, "exercises_total": 2}}}))
    shown = invoke("list").output
    assert "done" in shown
    invoke("hint", "beta")
    data = json.loads(path.read_text())
    alpha, beta = data["katas"]["alpha"], data["katas"]["beta"]
    assert data["format_version"] == 3 and alpha["attempts"] == 4
    assert alpha["hints_shown"] == 1 and alpha["hint_tiers"] == {}  # the old count stays
    assert beta["hints_shown"] == 1 and beta["hint_tiers"] == {"neg": 1}


def test_solution_is_a_diff_per_function_within_80_columns(workspace):
    kata = workspace.catalog.get("alpha")
    workspace.kata_file(kata).write_text(
        "def add(a, b):\n    total = a\n    total = total + b\n    return total\n\n\n"
        "def mul(a, b):\n    return a * b\n")
    solved = workspace.kata_file(kata).read_text()
    assert solved
    shown = invoke("solution", "alpha", "--force")
    assert shown.exit_code == 0
    assert "-    total = a" in shown.output and "+    return a + b" in shown.output
    assert "yours is the reference" in shown.output  # mul: identical
    assert max(len(line) for line in shown.output.splitlines()) <= 80
    one = invoke("solution", "alpha", "add", "--force")
    assert "mul" not in one.output.replace("spoils", "")
