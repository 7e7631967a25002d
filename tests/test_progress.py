"""Progress survives damage, concurrency and read-only workspaces, and never resets silently."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from checker.progress import KataProgress, Progress, ProgressError, ProgressStore
from tests.conftest import TINY, TINY_KATA


@pytest.fixture
def store(tmp_path):
    return ProgressStore(tmp_path)


def saved_twice(store):
    p = Progress()
    p.of("strides").status = "passed"
    store.save(p)
    p.of("views").attempts = 3
    store.save(p)  # the first state is now the backup
    return p


def test_round_trip_by_names(store):
    p = saved_twice(store)
    again = store.load()
    assert again.to_json() == p.to_json()
    data = json.loads(store.path.read_text())
    assert data["format_version"] == 3 and set(data["katas"]) == {"strides", "views"}


@pytest.mark.parametrize("damage", [b"", b'{"format_version": 1, "kat', b"\x00\xff garbage",
                                    b'{"format_version": 0, "katas": {}}',
                                    b'{"format_version": 2, "katas": {"x": {"attempts": -1}}}',
                                    b'[1, 2, 3]'])
def test_damaged_file_is_recovered_from_backup_with_a_notice(store, damage):
    saved_twice(store)
    store.path.write_bytes(damage)
    recovered = store.load()
    assert recovered.passed("strides")  # the backup's state
    assert store.notices and "recovered from the backup" in store.notices[0]
    kept = list(store.dir.glob("progress.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damage
    assert ProgressStore(store.dir).load().passed("strides")  # main file rewritten


def test_missing_main_file_is_recovered(store):
    saved_twice(store)
    store.path.unlink()
    assert store.load().passed("strides") and store.notices


def test_both_damaged_is_reported_not_silent(store):
    saved_twice(store)
    store.path.write_text("garbage")
    store.backup.write_text("garbage too")
    p = store.load()
    assert p.katas == {}
    assert "backup is unusable" in store.notices[0]


def test_damaged_main_never_overwrites_a_good_backup(store):
    saved_twice(store)
    good_backup = store.backup.read_text()
    store.path.write_text("garbage")
    store.save(Progress({"a": KataProgress(status="passed")}))
    assert store.backup.read_text() == good_backup


def _bump(state_dir, n):
    s = ProgressStore(state_dir)
    for _ in range(n):
        with s.update() as p:
            p.of("strides").attempts += 1


def test_concurrent_updates_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_bump, args=(tmp_path, 25)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert ProgressStore(tmp_path).load().of("strides").attempts == 100


def test_read_only_workspace_is_a_clear_error(store, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("checker.progress.atomic_write", refuse)
    with pytest.raises(ProgressError, match="read-only"):
        store.save(Progress())


def test_atomic_write_leaves_old_or_new(tmp_path, monkeypatch):
    from checker import progress as mod

    target = tmp_path / "f.json"
    target.write_text("old")

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mod.os, "replace", crash)
    with pytest.raises(OSError):
        mod.atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_interrupted_check_records_nothing(workspace):
    """Ctrl-C during `kata check`: the child is ended, a clean message, progress untouched."""
    import signal
    import subprocess
    import time

    from checker.reaper import descendants

    kata = workspace.catalog.get("alpha")
    workspace.kata_file(kata).write_text((TINY / "impls" / "alpha_hang.py").read_text())
    proc = subprocess.Popen([*TINY_KATA, "check"], cwd=workspace.root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    # the keeper and the check process below it: the CLI is past starting its child and
    # waits for the verdict (on a loaded machine, starting can take longer than the check)
    while len(descendants(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the check child is running
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "Interrupted" in out and "Traceback" not in out
    assert not (workspace.state_dir / "progress.json").exists()
