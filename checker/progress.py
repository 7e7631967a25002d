"""The learner's progress: versioned JSON under .kata/, written atomically, with a backup.

Kata names are stored, never positions. Writes go to a temp file that is fsynced and renamed
over the old one; the previous good state is kept as ``progress.json.bak``. A damaged file is
reported and recovered from the backup (the damaged copy is kept aside), never silently reset.
Every read-modify-write happens under an exclusive lock, so two checks at once lose nothing.

A file written by a newer torch-katas (a higher ``format_version``) is neither damaged nor
ours to rewrite: it is read as far as this version understands it (unknown keys are ignored,
entries it cannot read are skipped), and every write refuses with a message naming the
upgrade, so a newer release's record is never rolled back or overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

# 2: time spent, code digests, active days; 3: hint tiers per exercise, the last check's first
# failing exercise. Files of formats 1 and 2 are read as they are: every new field has a default,
# and ``hints_shown`` keeps counting every hint revealed.
FORMAT_VERSION = 3
MIGRATES_FROM = (1, 2)
UPGRADE = "`pip install --upgrade torch-katas` (or `git pull && pip install .` in your checkout)"


class ProgressError(Exception):
    """Progress cannot be read or written; the message says what to do."""


class NewerFormat(ProgressError):
    """The progress file was written by a newer torch-katas; this one may read, never write."""

    def __init__(self, path: Path, version: int):
        self.version = version
        super().__init__(
            f"This workspace was written by a newer torch-katas (format {version}); upgrade "
            f"with {UPGRADE}. Nothing was changed: {path} is kept as it is, and commands that "
            "only read it (list, progress, next, lesson) still work."
        )


def newer_format(data: object, current: int) -> int | None:
    """The ``format_version`` of ``data`` when it is an int above ``current``, else None."""
    version = data.get("format_version") if isinstance(data, dict) else None
    return version if type(version) is int and version > current else None


@dataclass
class KataProgress:
    status: str = "new"  # new | attempted | passed
    attempts: int = 0
    hints_shown: int = 0  # every hint revealed, all exercises together
    hint_tiers: dict[str, int] = field(default_factory=dict)  # exercise -> tiers revealed
    first_failing: str | None = None  # the first failing exercise of the last check
    passed_at: str | None = None
    exercises_passed: int = 0
    exercises_total: int = 0
    last_seed: int | None = None
    last_checked_at: str | None = None
    first_checked_at: str | None = None
    active_seconds: float = 0.0  # first check to pass, gaps over ACTIVE_GAP left out
    code_digest: str | None = None  # of the code last judged: a re-run of it is no attempt

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class Progress:
    katas: dict[str, KataProgress] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)  # local dates with a check, for the streak
    newer: int | None = None  # read from a newer format: shown, never written

    def of(self, name: str) -> KataProgress:
        return self.katas.setdefault(name, KataProgress())

    def passed(self, name: str) -> bool:
        entry = self.katas.get(name)
        return bool(entry and entry.passed)

    def to_json(self) -> dict:
        return {"format_version": FORMAT_VERSION, "days": self.days[-MAX_DAYS:],
                "katas": {name: asdict(p) for name, p in sorted(self.katas.items())}}

    @classmethod
    def from_json(cls, data: object) -> Progress:
        """Validate strictly; a ValueError names what is wrong. A newer format is read
        leniently (see the module's docstring) and marked ``newer``."""
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        newer = newer_format(data, FORMAT_VERSION)
        if newer is not None:
            return cls._from_newer(data, newer)
        version = data.get("format_version")
        if version != FORMAT_VERSION and version not in MIGRATES_FROM:
            raise ValueError(f"format_version is {version!r}, not {FORMAT_VERSION}")
        katas = data.get("katas")
        if not isinstance(katas, dict):
            raise ValueError("'katas' is not an object")
        days = data.get("days", [])
        if not isinstance(days, list) or not all(isinstance(d, str) for d in days):
            raise ValueError("'days' is not a list of dates")
        out = cls(days=list(days))
        fields = KataProgress.__dataclass_fields__
        for name, raw in katas.items():
            if not isinstance(raw, dict):
                raise ValueError(f"entry for {name!r} is not an object")
            unknown = set(raw) - set(fields)
            if unknown:
                raise ValueError(f"entry for {name!r} has unknown keys {sorted(unknown)}")
            entry = KataProgress(**raw)
            if entry.status not in ("new", "attempted", "passed"):
                raise ValueError(f"entry for {name!r} has status {entry.status!r}")
            for key in ("attempts", "hints_shown", "exercises_passed", "exercises_total"):
                value = getattr(entry, key)
                if type(value) is not int or value < 0:
                    raise ValueError(f"entry for {name!r}: {key} is {value!r}")
            tiers = entry.hint_tiers
            if not isinstance(tiers, dict) or not all(
                    isinstance(k, str) and type(v) is int and v > 0 for k, v in tiers.items()):
                raise ValueError(f"entry for {name!r}: hint_tiers is {tiers!r}")
            if entry.first_failing is not None and not isinstance(entry.first_failing, str):
                raise ValueError(f"entry for {name!r}: first_failing is {entry.first_failing!r}")
            out.katas[name] = entry
        return out

    @classmethod
    def _from_newer(cls, data: dict, version: int) -> Progress:
        out = cls(newer=version)
        katas = data.get("katas")
        fields = KataProgress.__dataclass_fields__
        for name, raw in (katas.items() if isinstance(katas, dict) else ()):
            if isinstance(raw, dict):
                with contextlib.suppress(TypeError):
                    out.katas[name] = KataProgress(**{k: v for k, v in raw.items() if k in fields})
        return out


MAX_DAYS = 400
ACTIVE_GAP = 30 * 60  # seconds: a longer pause between two checks is not time spent


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


class ProgressStore:
    """Progress of one workspace: ``<root>/.kata/progress.json`` (+ ``.bak``, ``lock``)."""

    def __init__(self, state_dir: Path):
        self.dir = state_dir
        self.path = state_dir / "progress.json"
        self.backup = state_dir / "progress.json.bak"
        self.lock_path = state_dir / "lock"
        self.notices: list[str] = []  # recoveries to tell the learner about

    # -- reading ---------------------------------------------------------------------------

    def _parse(self, path: Path) -> Progress:
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return Progress.from_json(data)

    def load(self) -> Progress:
        """Read progress, recovering from the backup if the main file is damaged or missing."""
        main_error = None
        try:
            return self._parse(self.path)
        except FileNotFoundError:
            if not self.backup.exists():
                return Progress()  # a new workspace
            main_error = "it is missing"
        except (ValueError, UnicodeDecodeError, TypeError) as exc:
            main_error = str(exc) if not isinstance(exc, UnicodeDecodeError) else "not UTF-8 text"
        except PermissionError:
            raise ProgressError(f"{self.path} cannot be read (permission denied).") from None
        except IsADirectoryError:
            main_error = "it is a directory"
        kept = self._set_aside(self.path)
        try:
            progress = self._parse(self.backup)
        except (OSError, ValueError, UnicodeDecodeError, TypeError) as exc:
            self.notices.append(
                f"Progress file {self.path} was damaged ({main_error}) and its backup is unusable "
                f"({exc}). Starting from empty progress; the damaged file is kept as {kept}."
            )
            return Progress()
        self.notices.append(
            f"Progress file {self.path} was damaged ({main_error}); recovered from the backup "
            f"{self.backup.name}" + (f". The damaged file is kept as {kept.name}." if kept else ".")
        )
        if progress.newer is None:  # a newer release's backup is never rewritten in our format
            with contextlib.suppress(OSError):
                atomic_write(self.path, json.dumps(progress.to_json(), indent=2))
        return progress

    def _set_aside(self, path: Path) -> Path | None:
        if not path.exists():
            return None
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        target = path.with_name(f"{path.name}.damaged-{stamp}")
        try:
            os.replace(path, target)
        except OSError:
            return None
        return target

    # -- writing ---------------------------------------------------------------------------

    def save(self, progress: Progress) -> None:
        if progress.newer is not None:
            raise NewerFormat(self.path, progress.newer)
        text = json.dumps(progress.to_json(), indent=2)
        try:
            if self.path.is_file():
                try:
                    on_disk = self._parse(self.path)
                    if on_disk.newer is not None:  # written meanwhile by a newer release
                        raise NewerFormat(self.path, on_disk.newer)
                    atomic_write(self.backup, self.path.read_text(encoding="utf-8"))
                except (ValueError, UnicodeDecodeError, TypeError):
                    pass  # never overwrite a good backup with a damaged file
            atomic_write(self.path, text)
        except PermissionError as exc:
            raise ProgressError(
                f"Cannot write progress to {self.dir} ({exc.strerror}). Is the workspace "
                "read-only? Make it writable (e.g. `chmod -R u+w .kata`) and run the command again."
            ) from None
        except OSError as exc:
            raise ProgressError(f"Cannot write progress to {self.dir}: {exc.strerror or exc}.") from None

    @contextlib.contextmanager
    def update(self) -> Iterator[Progress]:
        """Read-modify-write under an exclusive lock: ``with store.update() as p: ...``."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError as exc:
            raise ProgressError(
                f"Cannot lock {self.lock_path} ({exc.strerror}). Is the workspace read-only? "
                "Make it writable and run the command again."
            ) from None
        except OSError as exc:
            raise ProgressError(f"Cannot lock {self.lock_path}: {exc.strerror or exc}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            progress = self.load()
            if progress.newer is not None:
                raise NewerFormat(self.path, progress.newer)
            yield progress
            self.save(progress)
        finally:
            os.close(fd)
