"""The CLI end to end through CliRunner, on the tiny catalog."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from checker.cli import main
from tests.conftest import solve


@pytest.fixture
def run(workspace):
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(main, list(args), catch_exceptions=False, input=input)

    return invoke


def progress_of(ws) -> dict:
    return json.loads((ws.state_dir / "progress.json").read_text())["katas"]


def test_version():
    result = CliRunner().invoke(main, ["--version"], catch_exceptions=False)
    assert result.exit_code == 0 and "0.1.0" in result.output


def test_init_refuses_existing_workspace(tiny_env, tmp_path):
    runner = CliRunner()
    first = runner.invoke(main, ["init", str(tmp_path / "w")], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "w" / "katas" / "01_alpha" / "alpha.py").is_file()
    marker = tmp_path / "w" / "katas" / "01_alpha" / "alpha.py"
    marker.write_text("# my work\n")
    again = runner.invoke(main, ["init", str(tmp_path / "w")], catch_exceptions=False)
    assert again.exit_code == 1 and "already a kata workspace" in again.output
    assert marker.read_text() == "# my work\n"
    ok = runner.invoke(main, ["init", "--exist-ok", str(tmp_path / "w")], catch_exceptions=False)
    assert ok.exit_code == 0 and marker.read_text() == "# my work\n"


def test_outside_workspace_says_how_to_make_one(tiny_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["next"], catch_exceptions=False)
    assert result.exit_code == 2  # a usage error
    assert "kata init" in result.output


def test_commands_find_workspace_from_subfolder(run, workspace, monkeypatch):
    monkeypatch.chdir(workspace.root / "katas" / "01_alpha")
    result = run("next")
    assert result.exit_code == 0 and "Alpha: add and multiply" in result.output
    assert "alpha.py" in result.output


def test_next_names_file_summary_and_exercises(run):
    result = run("next")
    assert result.exit_code == 0
    out = result.output
    assert "Alpha: add and multiply" in out
    assert "katas/01_alpha/alpha.py" in out
    assert "smallest kata there is" in out  # the lesson's summary
    assert "add" in out and "mul" in out and "kata check" in out


def test_check_fails_on_stub_with_per_exercise_lines(run, workspace):
    result = run("check")
    assert result.exit_code == 1
    assert "✗ add" in result.output and "✗ mul" in result.output
    assert "not implemented yet" in result.output
    entry = progress_of(workspace)["alpha"]
    assert entry["status"] == "attempted" and entry["attempts"] == 1


def test_check_pass_records_and_unlocks(run, workspace):
    solve(workspace, "alpha")
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "passed" in result.output and "Unlocked" in result.output
    assert "Under the hood" in result.output
    entry = progress_of(workspace)["alpha"]
    assert entry["status"] == "passed" and entry["passed_at"] and entry["exercises_passed"] == 2
    nxt = run("next")
    assert "katas/02_beta/beta.py" in nxt.output


def test_locked_kata_is_refused_naming_the_first(run, workspace):
    result = run("check", "beta")
    assert result.exit_code == 1
    assert "locked" in result.output and "'alpha'" in result.output
    assert "beta" not in progress_of_or_empty(workspace)


def progress_of_or_empty(ws) -> dict:
    path = ws.state_dir / "progress.json"
    return json.loads(path.read_text())["katas"] if path.exists() else {}


def test_unknown_kata_lists_close_matches(run):
    result = run("check", "alpah")
    assert result.exit_code == 2
    assert "alpha" in result.output


def test_check_file_judges_any_file_without_progress(run, workspace, tmp_path):
    good = tmp_path / "good.py"
    good.write_text(workspace.catalog.get("beta").solution_path.read_text())
    result = run("check", "beta", "--file", str(good))
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.py"
    bad.write_text("def neg(x):\n    return x\n")
    result = run("check", "beta", "--file", str(bad))
    assert result.exit_code == 1 and "neg(" in result.output
    assert progress_of_or_empty(workspace) == {}


def test_check_file_needs_a_name(run, tmp_path):
    f = tmp_path / "x.py"
    f.write_text("")
    assert run("check", "--file", str(f)).exit_code == 2


def test_seed_replays_a_run(run):
    a = run("check", "--seed", "42").output
    b = run("check", "--seed", "42").output
    assert "seed 42" in a and "seed 42" in b


def test_hints_are_tiered_per_exercise_and_recorded(run, workspace):
    first = run("hint")  # no check yet: the first unsolved exercise
    assert "Hint 1/3 for add" in first.output and "Hint 2/3" not in first.output
    second = run("hint")
    assert "Hint 2/3 for add" in second.output
    tier1, tier2 = (workspace.catalog.get("alpha").tiers("add")[i] for i in (0, 1))
    assert tier1 != tier2 and tier2 in second.output
    run("hint")
    fourth = run("hint")
    assert "last hint for add" in fourth.output
    entry = progress_of(workspace)["alpha"]
    assert entry["hints_shown"] == 3 and entry["hint_tiers"] == {"add": 3}
    listed = run("list").output
    assert next(ln for ln in listed.splitlines() if "alpha" in ln).split()[-1] == "3"


def test_hint_follows_the_first_failing_exercise_of_the_last_check(run, workspace):
    kata = workspace.catalog.get("alpha")
    workspace.kata_file(kata).write_text(
        "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a + b\n")
    run("check", "--seed", "1")
    assert progress_of(workspace)["alpha"]["first_failing"] == "mul"
    assert "Hint 1/3 for mul" in run("hint").output
    named = run("hint", "alpha", "add")  # EXERCISE picks one directly
    assert "Hint 1/3 for add" in named.output
    assert progress_of(workspace)["alpha"]["hint_tiers"] == {"mul": 1, "add": 1}
    bad = run("hint", "alpha", "nope")
    assert bad.exit_code == 2 and "add, mul" in bad.output


def test_next_marks_the_challenge(run):
    line = next(ln for ln in run("next").output.splitlines() if "2. mul" in ln)
    assert "challenge" in line


def test_lesson_renders(run):
    result = run("lesson")
    assert result.exit_code == 0 and "Arithmetic" in result.output


def test_list_and_progress(run, workspace):
    solve(workspace, "alpha")
    run("check")
    listing = run("list").output
    assert "done" in listing and "current" in listing
    assert "2/2" in listing
    prog = run("progress").output
    assert "1/3 katas" in prog and "Basics" in prog and "More" in prog


def test_list_shows_locked(run):
    listing = run("list").output
    assert "current" in listing and "locked" in listing


def test_list_columns_line_up(run, workspace):
    solve(workspace, "alpha")
    run("check")
    lines = [ln for ln in run("list").output.splitlines() if ln.strip()]
    header, rows = lines[0], lines[2:]
    assert len(rows) == len(workspace.catalog.katas)
    for name in ("kata", "track", "state"):  # left-aligned columns start under their heading
        col = header.index(name)
        assert all(row[col - 1] == " " and row[col] != " " for row in rows), (name, lines)
    done_row = next(row for row in rows if " alpha " in row)
    assert done_row.split()[3] == "done" and done_row.split()[4] == "2/2"


def test_reset_keeps_a_backup(run, workspace):
    kata = workspace.catalog.get("alpha")
    path = workspace.kata_file(kata)
    path.write_text("# my attempt\n")
    result = run("reset", "alpha", "--yes")
    assert result.exit_code == 0
    assert path.read_text() == kata.stub_path.read_text()
    backups = list(workspace.backups_dir.glob("alpha-*.py"))
    assert len(backups) == 1 and backups[0].read_text() == "# my attempt\n"


def test_solution_hidden_until_passed(run, workspace):
    hidden = run("solution", "alpha")
    assert hidden.exit_code == 1 and "--force" in hidden.output
    forced = run("solution", "alpha", "--force")
    assert forced.exit_code == 0 and "return a + b" in forced.output and "spoils" in forced.output
    solve(workspace, "alpha")
    run("check")
    shown = run("solution", "alpha")
    assert shown.exit_code == 0 and "reference" in shown.output and "yours" in shown.output


def test_commands_without_checks_do_not_import_torch_or_pytest(workspace):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from checker.cli import main\n"
        "for args in (['next'], ['list'], ['hint'], ['progress'], ['lesson'], ['--version']):\n"
        "    r = CliRunner().invoke(main, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "bad = [m for m in ('torch', 'pytest', 'numpy') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout}"
