"""The record stays true whatever the workspace went through: a newer release's progress, a
catalog that changed under it, a terminal without UTF-8, a full disk, runs killed mid-way."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from checker.cli import main
from checker.progress import FORMAT_VERSION
from tests.conftest import TINY, TINY_KATA, solve

NEWER = FORMAT_VERSION + 1


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def kata_cli(ws, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*TINY_KATA, *args], cwd=ws.root, text=True,
                          capture_output=True, timeout=60, env={**os.environ, **(env or {})})


# ----------------------------------------------------------------------------- newer format


@pytest.fixture
def newer_progress(workspace):
    """A progress file written by a release one format ahead, with keys this one lacks."""
    data = {"format_version": NEWER, "katas": {
        "alpha": {"status": "passed", "attempts": 2, "hints_by_exercise": {"add": 1}},
        "beta": {"status": "attempted", "attempts": 5, "exercises_passed": 0},
        "future_kata": "a shape this release cannot read",
    }}
    path = workspace.state_dir / "progress.json"
    path.write_text(json.dumps(data))
    return path


def test_read_only_commands_show_a_newer_format_and_leave_it_alone(workspace, newer_progress):
    before = newer_progress.read_bytes()
    for command in ("list", "progress", "next"):
        result = invoke(command)
        assert result.exit_code == 0, result.output
        assert f"newer torch-katas (format {NEWER})" in result.output
    listed = invoke("list").output
    assert "alpha" in listed and "done" in listed  # what this release can read is shown
    assert newer_progress.read_bytes() == before
    assert not list(workspace.state_dir.glob("progress.json.*"))  # not "damaged", no backup


@pytest.mark.parametrize("command", [("check",), ("hint",), ("watch",)])
def test_writing_commands_refuse_a_newer_format(workspace, newer_progress, command):
    before = newer_progress.read_bytes()
    result = invoke(*command)
    assert result.exit_code == 1
    assert f"this workspace was written by a newer torch-katas (format {NEWER}); upgrade with" \
        in result.output.lower()
    assert newer_progress.read_bytes() == before


def test_a_newer_backup_is_never_rolled_into_the_main_file(workspace, newer_progress):
    from checker.progress import ProgressStore

    store = ProgressStore(workspace.state_dir)
    shutil.copy(newer_progress, store.backup)
    newer_progress.write_text("garbage")
    progress = store.load()
    assert progress.newer == NEWER and progress.passed("alpha")
    assert json.loads(store.backup.read_text())["format_version"] == NEWER
    assert not store.path.exists() or store.path.read_text() != json.dumps(progress.to_json())


# ----------------------------------------------------------------------------- catalog drift


@pytest.fixture
def drifted(workspace, tmp_path, monkeypatch):
    """The workspace, then a release whose catalog inserts `early` (no lesson, no checks)
    before beta and no longer ships gamma. Progress: alpha passed, beta begun, gamma passed."""
    from checker import workspace as workspaces

    release = tmp_path / "release"
    shutil.copytree(TINY, release, ignore=shutil.ignore_patterns("__pycache__"))
    catalog = release / "katas" / "catalog.toml"
    text = catalog.read_text()
    head, _, rest = text.partition('[[kata]]\nname = "beta"')
    text = head + ('[[kata]]\nname = "early"\ntitle = "Early: new here"\ntrack = "Basics"\n'
                   'exercises = ["e"]\n\n[[kata]]\nname = "beta"') + rest
    catalog.write_text(text.split('[[kata]]\nname = "gamma"')[0])
    for old in ("03_gamma", "02_beta"):
        shutil.rmtree(release / "katas" / old)
    shutil.copytree(TINY / "katas" / "02_beta", release / "katas" / "03_beta")
    (release / "katas" / "02_early").mkdir()
    (release / "katas" / "02_early" / "early.py").write_text("def e():\n    raise NotImplementedError\n")
    monkeypatch.setattr(workspaces, "CATALOG_IN_PROCESS", catalog)  # the new release's
    (workspace.state_dir / "progress.json").write_text(json.dumps({"format_version": 1, "katas": {
        "alpha": {"status": "passed", "attempts": 1},
        "beta": {"status": "attempted", "attempts": 3},
        "gamma": {"status": "passed", "attempts": 4}}}))
    workspace.kata_file(workspace.catalog.get("beta")).write_text("# my beta work\n")
    return workspace


def test_new_katas_appear_in_place_and_gone_ones_are_kept_and_reported(drifted):
    result = invoke("list")
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines() if line[:2].isdigit()]
    assert [(cells[1], cells[3]) for cells in lines] == [
        ("alpha", "done"), ("early", "current"), ("beta", "current")]  # beta was begun: open
    assert "does not ship: gamma (passed)" in result.output
    root = drifted.root
    assert (root / "katas" / "02_early" / "early.py").is_file()  # the new kata, installed
    assert (root / "katas" / "02_beta" / "beta.py").read_text() == "# my beta work\n"
    assert not (root / "katas" / "03_beta").exists()  # found by name, never copied over
    assert "does not ship: gamma" in invoke("progress").output
    assert json.loads((drifted.state_dir / "progress.json").read_text())["katas"]["gamma"][
        "status"] == "passed"


def test_next_and_lesson_without_a_shipped_lesson(drifted):
    for command in ("next", "lesson"):
        result = invoke(command)
        assert result.exit_code == 0, result.output
        assert "ships no lesson" in result.output
    assert "katas/02_early/early.py" in invoke("next").output


def test_a_kata_found_under_its_old_number_is_judged_and_recorded(drifted):
    result = invoke("check", "beta")
    assert result.exit_code == 1 and "02_beta/beta.py" in result.output
    progress = json.loads((drifted.state_dir / "progress.json").read_text())["katas"]
    assert progress["beta"]["attempts"] == 4 and progress["gamma"]["status"] == "passed"


def test_a_kata_without_checks_is_not_blamed_on_the_learner(drifted):
    before = (drifted.state_dir / "progress.json").read_text()
    result = invoke("check", "early")
    assert result.exit_code == 1
    assert "not a problem with your code" in result.output
    assert "os._exit" not in result.output and "INTERNALERROR" not in result.output
    assert json.loads((drifted.state_dir / "progress.json").read_text()) == json.loads(before)


# ----------------------------------------------------------------------------- terminals


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"}, {"LANG": "C", "LC_ALL": "C"}])
def test_a_terminal_without_utf8_gets_ascii(workspace, env):
    for args in (("list",), ("progress",), ("check",), ("lesson",)):
        done = kata_cli(workspace, *args, env=env)
        assert "Traceback" not in done.stderr, done.stderr
        done.stdout.encode("ascii")  # nothing a plain terminal cannot show
        assert done.returncode in (0, 1), done.stderr
    check = kata_cli(workspace, "check", env=env).stdout
    assert "x add" in check and "0/2 exercises pass" in check


# ----------------------------------------------------------------------------- the record


def test_a_full_disk_shows_the_verdict_first_then_the_write_error(workspace, monkeypatch):
    solve(workspace, "alpha")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("checker.progress.os.fsync", no_space)
    result = invoke("check")
    out = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "✓ add" in out and "No space left on device" in out
    assert out.index("✓ add") < out.index("No space left on device")
    assert "not recorded" in out
    assert not list(workspace.state_dir.glob(".*.tmp"))


def test_a_crash_says_what_was_recorded(workspace):
    kata = workspace.catalog.get("alpha")
    workspace.kata_file(kata).write_text((TINY / "impls" / "alpha_kill.py").read_text())
    result = invoke("check")
    assert result.exit_code == 1 and "killed" in result.output
    assert "unchanged" not in result.output and "counts as an attempt" in result.output
    entry = json.loads((workspace.state_dir / "progress.json").read_text())["katas"]["alpha"]
    assert entry["attempts"] == 1


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_runs_are_removed_by_the_next_command(workspace, tmp_path):
    import tempfile

    dead = _dead_pid()
    stale = workspace.state_dir / f".progress.json.{dead}.tmp"
    live = workspace.state_dir / f".progress.json.{os.getpid()}.tmp"
    stale.write_text("{")
    live.write_text("{")
    run_dir = Path(tempfile.mkdtemp(prefix=f"kata-run-{dead}-"))
    (run_dir / "output.txt").write_text("x")
    assert invoke("list").exit_code == 0
    assert not stale.exists() and live.exists()
    live.unlink()
    invoke("check")
    assert not run_dir.exists()


def test_a_report_to_a_device_or_a_pipe_is_written_in_place_never_renamed_over(tmp_path):
    """An armed check process reports to os.devnull until it is told where; run as root, a
    rename onto /dev/null would have made it a plain file for every process."""
    import stat
    import threading

    from checker.report import write_json

    fifo, got = tmp_path / "report", []
    os.mkfifo(fifo)
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    write_json(fifo, {"x": 2})
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and json.loads(got[0]) == {"x": 2}
    # (only once the pipe proved it: were it renamed over, so would /dev/null be, for good)
    write_json(os.devnull, {"x": 1})
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode) and not Path(f"{os.devnull}.tmp").exists()
    write_json(tmp_path / "plain.json", {"x": 3})  # a plain path: whole or not at all, as before
    assert json.loads((tmp_path / "plain.json").read_text()) == {"x": 3}
    assert not (tmp_path / "plain.json.tmp").exists()
