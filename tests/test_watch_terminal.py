"""`kata watch` in a real terminal (tmux, 80x24), as a learner sees it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checker.catalog import load_catalog

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

KATA = str(Path(sys.executable).with_name("kata"))


def screen(name: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True,
                          text=True).stdout


def wait_for(name: str, needle: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(name)
        if needle in text and "re-checking" not in text:  # a verdict, not a redraw under way
            return text
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} never showed; the screen:\n{text}")


def test_watch_fits_80x24_and_speaks_in_keys(tmp_path):
    # A terminal driven by keystrokes on a loaded machine can miss a key's timing (and a tmux
    # server that is still exiting can refuse a new session): one retry, in a fresh workspace,
    # before the screen is called wrong.
    try:
        _watch_session(tmp_path / "first")
    except (AssertionError, subprocess.CalledProcessError):
        _watch_session(tmp_path / "second")


def _watch_session(tmp_path):
    strides = load_catalog().get("strides")
    ws = tmp_path / "ws"
    env = dict(os.environ)
    subprocess.run([KATA, "init", str(ws)], check=True, env=env, capture_output=True)
    file = ws / strides.rel_stub
    # Right but for one exercise, so the first failure is long and must be trimmed.
    file.write_text(strides.solution_path.read_text() + (
        "\n\ndef storage_index(index, shape, strides, offset):  # noqa: F811\n"
        "    return offset + sum(i * s for i, s in zip(index, strides)) + 1\n"))
    name = f"kata-watch-{os.getpid()}"
    command = " ".join([f"{k}={v!r}" for k, v in (("PATH", env["PATH"]), ("HOME", env.get("HOME", "")))]
                       + [KATA, "watch", "--seed", "7"])
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-c", str(ws),
                    f"env -u LINES -u COLUMNS {command}; sleep 60"], check=True)
    try:
        text = wait_for(name, "Watching")
        lines = text.rstrip("\n").split("\n")
        assert len(lines) <= 24
        assert lines[0].startswith("strides")  # nothing scrolled off the top
        for exercise in strides.exercises:  # every exercise line is on screen
            assert exercise in text
        assert "4/5 exercises pass" in text and "expected" in text
        subprocess.run(["tmux", "send-keys", "-t", name, "n"], check=True)
        assert "passes" in wait_for(name, "moves on once")
        file.write_text(strides.solution_path.read_text())
        text = wait_for(name, "next kata")
        assert "passed" in text
        subprocess.run(["tmux", "send-keys", "-t", name, "n"], check=True)
        text = wait_for(name, "Press h for a hint", timeout=60)  # the next kata, in keys
        assert "run kata check" not in " ".join(text.split())  # keys, not commands, in watch
        subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=True)
        wait_for(name, "Stopped watching", timeout=30)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
