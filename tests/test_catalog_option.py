"""Another catalog is judged against only when a run says so (`--catalog`), with a warning on
every run: no environment variable and no workspace setting points the checks elsewhere."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from checker.cli import main
from tests.conftest import TINY


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_environment_names_no_catalog(tmp_path, monkeypatch):
    from checker.launch import child_env
    from checker.workspace import Workspace

    tiny = str(TINY / "katas" / "catalog.toml")
    monkeypatch.setenv("KATA_CATALOG", tiny)
    monkeypatch.setenv("PYTEST_ADDOPTS", f"--kata-catalog={tiny}")
    monkeypatch.setenv("PYTEST_PLUGINS", "tiny_mistakes")
    ws, _ = Workspace.create(tmp_path / "ws")
    assert "strides" in ws.catalog.names() and "alpha" not in ws.catalog.names()
    assert "catalog" not in json.loads((ws.state_dir / "workspace.json").read_text())
    monkeypatch.chdir(tmp_path)
    solution = TINY / "solutions" / "01_alpha" / "alpha.py"
    result = invoke("check", "alpha", "--file", str(solution))
    assert result.exit_code == 2 and "No kata named 'alpha'" in result.output
    env = child_env()  # what the check child and the warm worker start with
    assert "PYTEST_ADDOPTS" not in env and "PYTEST_PLUGINS" not in env


def other_catalog(tmp_path):
    """A copy of the tiny catalog whose first kata's title says where it comes from."""
    copy = tmp_path / "other"
    shutil.copytree(TINY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    catalog = copy / "katas" / "catalog.toml"
    catalog.write_text(catalog.read_text().replace("Alpha: add and multiply", "Alpha, elsewhere"))
    return catalog


def test_a_workspace_setting_names_no_catalog(workspace, tmp_path):
    catalog = other_catalog(tmp_path)
    meta = workspace.state_dir / "workspace.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "catalog": str(catalog)}))
    for command in ("list", "next"):
        result = invoke(command)
        assert result.exit_code == 0, result.output
        assert "Alpha, elsewhere" not in result.stdout
        assert f"name the catalog {catalog}" in result.stderr
        assert f"--catalog {catalog}" in result.stderr


def test_the_catalog_option_judges_warns_every_run_and_records_nothing(
        workspace, tmp_path, tiny_worker, monkeypatch):
    from checker import cli

    # Through the warm worker, which is told the catalog with each request (never by a setting).
    monkeypatch.setattr(cli, "_worker_dir", lambda ws: tiny_worker.keywords["use_worker"])
    catalog = other_catalog(tmp_path)
    warning = f"Warning: these checks come from {catalog}"
    solution = TINY / "solutions" / "01_alpha" / "alpha.py"
    passed = invoke("check", "alpha", "--file", str(solution), "--catalog", str(catalog))
    assert passed.exit_code == 0, passed.output
    assert warning in passed.stderr and "Alpha, elsewhere" not in passed.stderr
    # In the workspace, without --file: its file for the kata, judged and not recorded.
    failed = invoke("check", "alpha", "--catalog", str(catalog))
    assert failed.exit_code == 1, failed.output
    assert warning in failed.stderr
    assert f"--catalog{catalog}--seed" in "".join(failed.stdout.split())  # so does the replay
    assert not (workspace.state_dir / "progress.json").exists()
    missing = invoke("check", "alpha", "--catalog", str(tmp_path / "nowhere.toml"))
    assert missing.exit_code == 2 and "nowhere.toml" in missing.output
