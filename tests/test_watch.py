"""`kata watch` as a session over events: no terminal needed."""

from __future__ import annotations

from rich.console import Console

from checker import render
from checker.watch import WatchSession
from tests.conftest import solve


def session(ws, name="alpha"):
    out = Console(record=True, width=120)
    return WatchSession(ws, ws.catalog.get(name), out, render), out


def test_deleted_file_is_reported_and_watch_goes_on(workspace):
    s, out = session(workspace)
    s.file.unlink()
    s.check()
    text = out.export_text()
    assert "is gone" in text and "kata reset alpha" in text


def test_half_written_file_is_a_load_error_not_a_crash(workspace):
    s, out = session(workspace)
    s.file.write_text("def add(a, b):\n    return (a +\n")
    s.check()
    assert "could not be loaded" in out.export_text()


def test_next_is_offered_only_after_a_pass(workspace):
    s, out = session(workspace)
    assert s.on_key("n") and s.kata.name == "alpha"  # not passed: n does nothing
    solve(workspace, "alpha")
    s.check()
    text = out.export_text()
    assert "n next kata" in text and s.passed
    assert s.on_key("n") and s.kata.name == "beta"


def test_keys(workspace):
    s, out = session(workspace)
    assert s.on_key("h") and "Hint 1/3 for add" in out.export_text()  # export_text() clears the record
    assert s.on_key("l") and "current" in out.export_text()
    assert s.on_key("q") is False


def test_a_long_failure_is_trimmed_to_the_terminal_and_v_shows_it_whole(workspace):
    out = Console(record=True, width=80, height=12, force_terminal=True)
    s = WatchSession(workspace, workspace.catalog.get("alpha"), out, render)
    s.check()
    trimmed = out.export_text()
    assert "press v" in trimmed and len(trimmed.rstrip("\n").split("\n")) <= 12
    assert s.on_key("v")
    whole = out.export_text()
    assert "press v" not in whole and "exercises pass" in whole


def test_a_verdict_for_code_that_changed_meanwhile_is_dropped(workspace, monkeypatch):
    from checker import watch

    s, out = session(workspace)
    real = watch.run_checks

    def run_then_save(*args, **kwargs):
        result = real(*args, **kwargs)
        s.file.write_text(s.file.read_text() + "\n# saved again\n")
        return result

    monkeypatch.setattr(watch, "run_checks", run_then_save)
    assert s.check() is False  # dropped: the caller judges the newer save
    assert "exercises pass" not in out.export_text()
    assert not (workspace.state_dir / "progress.json").exists() or "alpha" not in (
        workspace.state_dir / "progress.json").read_text()
