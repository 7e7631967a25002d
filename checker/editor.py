"""Open a file in the learner's editor: $VISUAL, then $EDITOR, then the platform's opener."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# shlex, shutil and subprocess are imported where used: every command imports EditorError.


class EditorError(Exception):
    pass


def editor_command(path: Path, env: dict[str, str] | None = None) -> list[str]:
    import shlex
    import shutil

    env = os.environ if env is None else env
    for var in ("VISUAL", "EDITOR"):
        if env.get(var, "").strip():
            return [*shlex.split(env[var]), str(path)]
    if sys.platform == "darwin":
        return ["open", str(path)]
    if sys.platform.startswith("win"):
        return ["cmd", "/c", "start", "", str(path)]
    if shutil.which("xdg-open"):
        return ["xdg-open", str(path)]
    raise EditorError(
        f"No editor found: set $VISUAL or $EDITOR (e.g. `export EDITOR=nano`) or open {path} yourself."
    )


def open_in_editor(path: Path) -> str:
    """Run the editor (waiting for terminal editors); returns the program's name."""
    import subprocess

    cmd = editor_command(path)
    try:
        done = subprocess.run(cmd, check=False)
    except FileNotFoundError:
        raise EditorError(f"The editor {cmd[0]!r} was not found; check $VISUAL / $EDITOR.") from None
    if done.returncode != 0:
        raise EditorError(
            f"The editor {cmd[0]!r} failed (exit status {done.returncode}) opening {path}; "
            "check $VISUAL / $EDITOR, or open the file yourself.")
    return cmd[0]
