"""A learner's workspace: a folder holding ``.kata/`` plus their copies of stubs and lessons.

Commands find the workspace by walking up from the current directory, as git finds ``.git``.
Writes never leave the workspace and never follow a symlink out of it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from checker.catalog import Catalog, Kata, load_catalog
from checker.leftovers import sweep_temp_files
from checker.progress import ProgressStore, atomic_write

STATE_DIR = ".kata"
META = "workspace.json"
NOT_A_WORKSPACE = (
    "Not inside a kata workspace (no .kata/ folder here or above {cwd}).\n"
    "Create one with `kata init DIR` (e.g. `kata init ~/katas`), then `cd` into it."
)


PYTEST_INI = """\
# Written by `kata init`: `python -m pytest` here runs the current kata's checks, one test per
# exercise (what the test explorers of VS Code and PyCharm run). `pytest --kata NAME` runs
# another kata, `--kata-seed N` replays a seed.
[pytest]
addopts = -p torch_katas -p no:cacheprovider
testpaths = katas
"""


class WorkspaceError(Exception):
    """A workspace problem the learner can fix; the message says how."""


# The catalog every workspace of this process is read with; None: the shipped one. Only code in
# the CLI's own process can set it (the project's tests point it at their tiny catalog): learner
# code runs in a check child, which is told its catalog on its command line. A user judges
# against another catalog only through the `--catalog` option of `kata check` and `kata dev`
# (checker.cli), which warns on every run; no environment variable or workspace setting does.
CATALOG_IN_PROCESS: Path | None = None

IGNORED_CATALOG = (
    "This workspace's settings ({meta}) name the catalog {path}; a workspace cannot choose its "
    "catalog, so the one shipped with torch-katas is used. To judge a file against {path}, "
    "say so on each run: `kata check NAME --catalog {path}` (remove the \"catalog\" entry to "
    "silence this).")


def catalog_for(state_dir: Path | None = None) -> Catalog:
    """The catalog workspaces use (see CATALOG_IN_PROCESS); with a workspace's ``state_dir``,
    parsed once per change of the file."""
    parsed = state_dir / "catalog.json" if state_dir is not None and state_dir.is_dir() else None
    return load_catalog(CATALOG_IN_PROCESS, parsed)


@dataclass
class Workspace:
    root: Path
    catalog: Catalog
    settings: dict = field(default_factory=dict)  # .kata/workspace.json

    @property
    def notices(self) -> list[str]:
        """What the learner should know about this workspace's settings (never acted on)."""
        path = self.settings.get("catalog")
        if path is None:
            return []
        return [IGNORED_CATALOG.format(meta=self.state_dir / META, path=path)]

    @property
    def warm_worker(self) -> bool:
        """Whether `kata check` may start a warm worker here (`kata stop --off` says no)."""
        return self.settings.get("worker", True) is not False

    def set_setting(self, key: str, value) -> None:
        path = self.state_dir / META
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        data = data if isinstance(data, dict) else {}
        data[key] = value
        atomic_write(path, json.dumps(data, indent=2))
        self.settings = data

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def progress(self) -> ProgressStore:
        return ProgressStore(self.state_dir)

    @property
    def backups_dir(self) -> Path:
        return self.state_dir / "backups"

    # -- finding and creating -------------------------------------------------------------

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace:
        start = (start or Path.cwd()).resolve()
        for folder in (start, *start.parents):
            meta = folder / STATE_DIR / META
            if meta.is_file():
                try:
                    data = json.loads(meta.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = {}
                sweep_temp_files(folder / STATE_DIR)  # what a killed command left mid-write
                return cls(folder, catalog_for(folder / STATE_DIR),
                           data if isinstance(data, dict) else {})
        message = NOT_A_WORKSPACE.format(cwd=start)
        usual = Path.home() / "katas"
        if (usual / STATE_DIR / META).is_file():
            message = (f"Not inside a kata workspace (no .kata/ folder here or above {start}).\n"
                       f"Your workspace is {usual}: `cd {usual}` and run the command there.")
        raise WorkspaceError(message)

    @classmethod
    def create(cls, root: Path, *, exist_ok: bool = False) -> tuple[Workspace, bool]:
        """Make a workspace in ``root``; returns (workspace, created)."""
        root = root.expanduser().absolute()
        if (root / STATE_DIR).exists():
            if exist_ok:
                ws = cls.find(root)
                ws.install_pytest_config()
                return ws, False
            raise WorkspaceError(
                f"{root} is already a kata workspace; nothing was changed. `cd {root}` and run "
                "`kata next`, or pick another folder."
            )
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root} exists and is not a folder.")
        enclosing = next((p for p in root.resolve().parents if (p / STATE_DIR / META).is_file()),
                         None)
        if enclosing is not None:
            raise WorkspaceError(
                f"{root} is inside the kata workspace {enclosing}; a workspace inside another "
                f"would hide its progress. Use {enclosing} (`cd {enclosing}`), or pick a folder "
                "outside it.")
        catalog = catalog_for()
        try:
            (root / STATE_DIR).mkdir(parents=True)
            ws = cls(root, catalog)
            for kata in catalog.katas:
                ws.install_kata_files(kata)
            ws.install_pytest_config()
            meta = {"format_version": 1, "created": dt.datetime.now().isoformat(timespec="seconds")}
            atomic_write(root / STATE_DIR / META, json.dumps(meta, indent=2))
        except PermissionError as exc:
            raise WorkspaceError(f"Cannot create a workspace in {root}: {exc.strerror}.") from None
        return ws, True

    # -- paths ----------------------------------------------------------------------------

    def kata_file(self, kata: Kata) -> Path:
        """The learner's file of ``kata``. A workspace made by another release may hold it
        under another number (``katas/03_views`` where this catalog says ``04_views``): it is
        found by the kata's name and used where it is, never moved."""
        path = self.root / kata.rel_stub
        if path.exists() or path.is_symlink():
            return path
        elsewhere = sorted((self.root / "katas").glob(f"[0-9]*_{kata.name}/{kata.name}.py"))
        return elsewhere[0] if elsewhere else path

    def lesson_file(self, kata: Kata) -> Path | None:
        """The lesson beside the learner's file, else the shipped one; None if neither is."""
        for path in (self.kata_file(kata).parent / "lesson.md", kata.lesson_path):
            if path.is_file():
                return path
        return None

    def lesson_text(self, kata: Kata) -> str | None:
        path = self.lesson_file(kata)
        try:
            return path.read_text(encoding="utf-8") if path else None
        except (OSError, UnicodeDecodeError):
            return None

    def _inside(self, path: Path) -> Path:
        """``path`` if writing there stays inside the workspace (no symlinked folder out)."""
        parent = path.parent.resolve()
        if parent != self.root.resolve() and self.root.resolve() not in parent.parents:
            raise WorkspaceError(
                f"Refusing to write {path}: it leads outside the workspace {self.root} "
                "(a symlinked folder?). Replace the link with a real folder."
            )
        return path

    def reconcile(self) -> list[Kata]:
        """Install the files of katas this release added since the workspace was made (no
        folder of theirs yet: a file the learner deleted is theirs to restore), in their place
        in the order; returns them. A read-only workspace goes without."""
        added = []
        for kata in self.catalog.katas:
            if not self.kata_file(kata).parent.exists() and kata.stub_path.is_file():
                with contextlib.suppress(OSError, WorkspaceError):
                    self.install_kata_files(kata)
                    added.append(kata)
        return added

    def install_kata_files(self, kata: Kata) -> None:
        """Copy the pristine stub and lesson of ``kata`` if the workspace lacks them."""
        folder = self.kata_file(kata).parent
        folder.mkdir(parents=True, exist_ok=True)
        for src, dst in ((kata.stub_path, self.kata_file(kata)), (kata.lesson_path, folder / "lesson.md")):
            if not dst.exists() and not dst.is_symlink() and src.is_file():
                self._inside(dst).write_bytes(src.read_bytes())

    def install_pytest_config(self) -> None:
        """``pytest.ini`` for ``python -m pytest`` here (IDE test explorers), if absent."""
        path = self.root / "pytest.ini"
        if not path.exists() and not path.is_symlink():
            self._inside(path).write_text(PYTEST_INI, encoding="utf-8")

    # -- reset ----------------------------------------------------------------------------

    def reset(self, kata: Kata) -> Path | None:
        """Put the pristine stub back; the learner's file is first kept as a backup.

        Returns the backup's path (None if there was nothing to keep).
        """
        if not kata.stub_path.is_file():
            raise WorkspaceError(
                f"This release of torch-katas ships no stub for {kata.name!r} "
                f"({kata.stub_path} is missing); your file was left as it is. Reinstall "
                "torch-katas to get it back.")
        target = self._inside(self.kata_file(kata))
        backup = None
        pristine = kata.stub_path.read_bytes()
        if target.is_file() and not target.is_symlink() and _same_bytes(target, pristine):
            return None  # already the pristine stub: nothing to keep
        if target.is_symlink() or target.exists():
            self.backups_dir.mkdir(parents=True, exist_ok=True)
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            backup = self.backups_dir / f"{kata.name}-{stamp}.py"
            if target.is_dir() and not target.is_symlink():
                import shutil

                backup = backup.with_suffix("")
                shutil.move(str(target), str(backup))
            else:
                try:
                    data = target.read_bytes()
                except OSError:
                    data = None
                if data is not None:
                    backup.write_bytes(data)
                else:
                    backup = None
                target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(kata.stub_path.read_bytes())
        return backup


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False
