"""Workspace files: broken kata files get clear messages; writes never leave the workspace."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from checker.cli import main
from checker.workspace import Workspace, WorkspaceError


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("breakage,needle", [
    ("delete", "does not exist"),
    ("directory", "is a directory"),
    ("latin1", "not valid UTF-8"),
])
def test_broken_kata_file_gets_message_and_reset_is_the_way_back(workspace, breakage, needle):
    kata = workspace.catalog.get("alpha")
    path = workspace.kata_file(kata)
    if breakage == "delete":
        path.unlink()
    elif breakage == "directory":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes("# caf\xe9\n".encode("latin-1"))
    result = invoke("check")
    assert result.exit_code == 1 and needle in result.output
    assert "kata reset alpha" in result.output
    assert invoke("reset", "alpha", "--yes").exit_code == 0
    assert path.is_file() and path.read_text() == kata.stub_path.read_text()


def test_reset_refuses_a_symlinked_folder_out_of_the_workspace(workspace, tmp_path):
    kata = workspace.catalog.get("alpha")
    folder = workspace.kata_file(kata).parent
    outside = tmp_path / "outside"
    outside.mkdir()
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    folder.symlink_to(outside, target_is_directory=True)
    result = invoke("reset", "alpha", "--yes")
    assert result.exit_code == 1 and "outside the workspace" in result.output
    assert list(outside.iterdir()) == []


def test_reset_replaces_a_symlinked_file_without_writing_through_it(workspace, tmp_path):
    kata = workspace.catalog.get("alpha")
    path = workspace.kata_file(kata)
    target = tmp_path / "elsewhere.py"
    target.write_text("# not to be touched\n")
    path.unlink()
    path.symlink_to(target)
    assert invoke("reset", "alpha", "--yes").exit_code == 0
    assert target.read_text() == "# not to be touched\n"
    assert not path.is_symlink() and path.read_text() == kata.stub_path.read_text()


def test_init_over_a_file_is_refused(tiny_env, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(WorkspaceError, match="not a folder"):
        Workspace.create(f)


NAMES = st.one_of(st.sampled_from(["alpha", "beta", "gamma", "../x", "", "-", "--file", "a" * 300,
                                   "/etc/passwd", "strides", "ALPHA", "al pha"]),
                  st.text(max_size=12))
COMMANDS = ["next", "check", "list", "hint", "lesson", "reset", "solution", "progress", "open",
            "init", "dev"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS), args=st.lists(NAMES, max_size=3),
       flag=st.sampled_from([[], ["--seed", "x"], ["--seed", "-1"], ["--force"], ["--yes"],
                             ["--file", "/nonexistent"], ["--bogus"]]))
@example(command="reset", args=[""], flag=[])  # an empty NAME once read as "no name"
def test_random_arguments_give_clear_errors_never_tracebacks(workspace, monkeypatch, command, args, flag):
    monkeypatch.setenv("EDITOR", "true")
    if command == "check" and not flag[:1] == ["--file"] and not any(a.startswith("-") for a in args):
        flag = ["--file", "/nonexistent"]  # keep the fuzzing fast: no real check runs
    if command == "init":  # init writes where it is told: keep that inside the sandbox
        args = [str(workspace.root / "sub" / "deeper")]
    result = CliRunner().invoke(main, [command, *args, *flag])
    assert result.exit_code in (0, 1, 2), result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    # nothing is ever written outside the workspace
    assert not (workspace.root.parent / "x").exists()
    assert os.path.isdir(workspace.state_dir)


def test_the_parsed_catalog_is_kept_and_follows_every_edit(tmp_path, monkeypatch):
    import shutil

    from checker import workspace as workspaces
    from checker.catalog import load_catalog
    from tests.conftest import TINY

    copy = tmp_path / "tiny"
    shutil.copytree(TINY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    catalog = copy / "katas" / "catalog.toml"
    monkeypatch.setattr(workspaces, "CATALOG_IN_PROCESS", catalog)
    ws, _ = Workspace.create(tmp_path / "ws")
    load_catalog.cache_clear()
    title = Workspace.find(ws.root).catalog.katas[0].title
    kept = ws.state_dir / "catalog.json"
    assert kept.is_file()
    text = catalog.read_text()
    assert title in text
    catalog.write_text(text.replace(title, title[::-1]))  # edited: the kept copy is stale
    load_catalog.cache_clear()
    assert Workspace.find(ws.root).catalog.katas[0].title == title[::-1]
    kept.write_text("{not json")  # damaged: parsed again
    load_catalog.cache_clear()
    assert Workspace.find(ws.root).catalog.katas[0].title == title[::-1]
    load_catalog.cache_clear()


def test_commands_after_the_first_do_not_parse_toml(tmp_path):
    """`kata list` and friends answer in a blink: the parsed catalog is read back as JSON."""
    import subprocess
    import sys

    env = dict(os.environ)
    cmd = [sys.executable, "-X", "importtime", "-m", "checker.cli"]
    subprocess.run([*cmd, "init", str(tmp_path / "ws")], env=env, check=True, capture_output=True)
    runs = [subprocess.run([*cmd, "list"], cwd=tmp_path / "ws", env=env, check=True,
                           capture_output=True, text=True) for _ in range(2)]
    assert "tomllib" not in runs[1].stderr
    assert runs[0].stdout == runs[1].stdout and "strides" in runs[1].stdout
