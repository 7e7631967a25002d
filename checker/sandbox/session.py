"""The sandbox around one check run: sealed before learner code loads, verified before the
report is written (the plugin, checker.plugin, calls these)."""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from pathlib import Path

from checker.catalog import PACKAGE_DIR, Kata, data_root
from checker.sandbox import audit
from checker.sandbox.errors import TamperError


def seal(*, kata: Kata, impl: Path, report: str | None) -> None:
    """Install the audit hook (once) and tell it this run's learner file, scratch folder (the
    working directory: the runners make it a folder of its own) and what learner code may not
    read: the checks, the known mistakes and the reference solutions."""
    scratch = os.getcwd()
    shipped = (PACKAGE_DIR / "checks", PACKAGE_DIR / "mistakes", data_root() / "solutions")
    sealed = [kata.checks_dir, kata.solution_path.parent.parent, *shipped]
    with contextlib.suppress(Exception):  # a kata without known mistakes has nothing to seal
        sealed.append(Path(importlib.import_module(kata.mistakes_package).__file__).parent)
    audit.install()
    audit.configure(str(impl), scratch,
                    os.path.dirname(os.path.abspath(report)) if report else scratch,
                    tuple(map(str, sealed)))
    tempfile.tempdir = scratch  # torch's and numpy's temporary files go there too


def tampered() -> str | None:
    """Why the judge cannot be trusted any more (something it relies on was changed; it is put
    back), or None."""
    try:
        audit.verify()
    except TamperError as exc:
        return str(exc)
    return None
