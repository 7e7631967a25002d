"""The catalog: one ordered TOML file that drives every kata, loaded into frozen dataclasses.

Every path is derived from a kata's name and its position: kata ``strides`` at position 1
lives in ``katas/01_strides/strides.py`` (stub), ``katas/01_strides/lesson.md`` (lesson),
``solutions/01_strides/strides.py`` (reference), ``checker/checks/test_strides.py`` (hidden
checks) and ``checker/mistakes/strides.py`` (known-wrong implementations).
"""

from __future__ import annotations

import contextlib
import json
import sys
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

FORMAT_VERSION = 2  # 2: hints are per-exercise tables of tiers; a kata names its challenge
PACKAGE_DIR = Path(__file__).resolve().parent


def data_root() -> Path:
    """Folder holding ``katas/`` and ``solutions/``: inside the wheel, or the checkout."""
    packaged = PACKAGE_DIR / "_data"
    if (packaged / "katas" / "catalog.toml").is_file():
        return packaged
    return PACKAGE_DIR.parent


class CatalogError(Exception):
    """The catalog file is malformed (an author's error, not a learner's)."""


class UnknownKata(LookupError):
    """A kata name that the catalog does not hold."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"No kata named {name!r}.{hint} `kata list` shows them all.")


@dataclass(frozen=True)
class Rules:
    """What the learner's code may not use while it runs (enforced by the checks' plugin)."""

    forbid: tuple[str, ...] = ()  # dotted callables, e.g. "torch.Tensor.unfold"; "name?" = if present
    forbid_imports: tuple[str, ...] = ()  # top-level modules the learner's file may not import
    explain: str = ""  # one sentence: why these are off-limits
    allow_processes: bool = False  # may the learner's code start processes (DataLoader workers)?
    ops: tuple[str, ...] = ()  # aten operators refused at the dispatcher, e.g. "aten::unfold"
    autograd: bool = True  # False: the autograd engine is refused, whatever starts it


@dataclass(frozen=True)
class Kata:
    name: str
    number: int
    title: str
    track: str
    exercises: tuple[str, ...]
    hints: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (exercise, tiers), catalog order
    challenge: str = ""  # the exercise that needs the lesson, marked by `kata next`
    under_the_hood: str = ""
    rules: Rules = field(default_factory=Rules)
    timeout: float = 10.0  # seconds per check
    root: Path = field(default_factory=data_root)  # holds katas/ and solutions/
    checks_dir: Path = PACKAGE_DIR / "checks"
    mistakes_package: str = "checker.mistakes"
    catalog_file: Path | None = None  # None: the shipped catalog

    def tiers(self, exercise: str) -> tuple[str, ...]:
        """The hint tiers of one exercise, vaguest first (none if it has no hints)."""
        return dict(self.hints).get(exercise, ())

    @property
    def dirname(self) -> str:
        return f"{self.number:02d}_{self.name}"

    @property
    def rel_stub(self) -> Path:
        """Path of the learner's file, relative to a workspace root."""
        return Path("katas") / self.dirname / f"{self.name}.py"

    @property
    def rel_lesson(self) -> Path:
        return Path("katas") / self.dirname / "lesson.md"

    @property
    def stub_path(self) -> Path:
        return self.root / self.rel_stub

    @property
    def lesson_path(self) -> Path:
        return self.root / self.rel_lesson

    @property
    def solution_path(self) -> Path:
        return self.root / "solutions" / self.dirname / f"{self.name}.py"

    @property
    def checks_path(self) -> Path:
        return self.checks_dir / f"test_{self.name}.py"

    @property
    def mistakes_module(self) -> str:
        return f"{self.mistakes_package}.{self.name}"


@dataclass(frozen=True)
class Catalog:
    katas: tuple[Kata, ...]
    tracks: tuple[str, ...]

    def names(self) -> list[str]:
        return [k.name for k in self.katas]

    def get(self, name: str) -> Kata:
        """A kata by name, by its number as `kata list` shows it (3, 03), or its folder
        (03_broadcasting)."""
        for kata in self.katas:
            if name in (kata.name, kata.dirname):
                return kata
        if name.isdigit() and 1 <= int(name) <= len(self.katas):
            return self.katas[int(name) - 1]
        import difflib

        raise UnknownKata(name, difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5))

    def index(self, name: str) -> int:
        return self.names().index(name)

    def previous(self, kata: Kata) -> Kata | None:
        i = self.index(kata.name)
        return self.katas[i - 1] if i > 0 else None

    def following(self, kata: Kata) -> Kata | None:
        i = self.index(kata.name)
        return self.katas[i + 1] if i + 1 < len(self.katas) else None


def _tomllib():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib


def read_toml(text: str, source: str) -> dict:
    tomllib = _tomllib()  # imported here: with a parsed copy cached, commands never need it
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from exc


def parse_catalog(
    text: str, source: str = "catalog.toml", root: Path | None = None,
    catalog_file: Path | None = None,
) -> Catalog:
    """Parse catalog text. ``root`` holds katas/ and solutions/ (default: the shipped data).

    A catalog may name ``checks_dir`` (relative to ``root``) and ``mistakes_package``; the
    shipped one uses the package's own ``checker/checks`` and ``checker.mistakes``.
    """
    return catalog_from(read_toml(text, source), source, root, catalog_file)


def catalog_from(raw: dict, source: str = "catalog.toml", root: Path | None = None,
                 catalog_file: Path | None = None) -> Catalog:
    """A Catalog from the catalog file's data (see parse_catalog)."""
    root = root or data_root()
    if raw.get("format_version") != FORMAT_VERSION:
        raise CatalogError(
            f"{source}: format_version {raw.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    tracks = tuple(raw.get("tracks", ()))
    checks_dir = root / raw["checks_dir"] if "checks_dir" in raw else PACKAGE_DIR / "checks"
    mistakes_package = raw.get("mistakes_package", "checker.mistakes")
    katas: list[Kata] = []
    seen: set[str] = set()
    for number, entry in enumerate(raw.get("kata", ()), start=1):
        try:
            name = entry["name"]
            rules = Rules(
                forbid=tuple(entry.get("rules", {}).get("forbid", ())),
                forbid_imports=tuple(entry.get("rules", {}).get("forbid_imports", ())),
                explain=entry.get("rules", {}).get("explain", ""),
                allow_processes=bool(entry.get("rules", {}).get("allow_processes", False)),
                ops=tuple(entry.get("rules", {}).get("ops", ())),
                autograd=bool(entry.get("rules", {}).get("autograd", True)),
            )
            kata = Kata(
                name=name,
                number=number,
                title=entry["title"],
                track=entry["track"],
                exercises=tuple(entry["exercises"]),
                hints=_hints(entry.get("hints", {}), source, name),
                challenge=entry.get("challenge", ""),
                under_the_hood=entry.get("under_the_hood", "").strip(),
                rules=rules,
                timeout=float(entry.get("timeout", 10.0)),
                root=root,
                checks_dir=checks_dir,
                mistakes_package=mistakes_package,
                catalog_file=catalog_file,
            )
        except KeyError as exc:
            raise CatalogError(f"{source}: kata #{number} lacks the key {exc}") from exc
        if not name.isidentifier():
            raise CatalogError(f"{source}: kata name {name!r} is not a Python identifier")
        if name in seen:
            raise CatalogError(f"{source}: kata name {name!r} appears twice")
        if tracks and kata.track not in tracks:
            raise CatalogError(f"{source}: kata {name!r} has unknown track {kata.track!r}")
        if not kata.exercises:
            raise CatalogError(f"{source}: kata {name!r} lists no exercises")
        strays = [ex for ex, _ in kata.hints if ex not in kata.exercises]
        if kata.challenge and kata.challenge not in kata.exercises:
            strays.append(kata.challenge)
        if strays:
            raise CatalogError(f"{source}: kata {name!r} names unknown exercises {strays}")
        seen.add(name)
        katas.append(kata)
    if not katas:
        raise CatalogError(f"{source}: no katas")
    return Catalog(katas=tuple(katas), tracks=tracks or tuple(dict.fromkeys(k.track for k in katas)))


def _hints(raw: object, source: str, name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``[kata.hints]``: exercise = ["nudge", "the idea applied", "near-code"]."""
    ok = isinstance(raw, dict) and all(
        isinstance(tiers, list) and all(isinstance(t, str) for t in tiers) for tiers in raw.values())
    if not ok:
        raise CatalogError(f"{source}: kata {name!r}: hints must be a table of exercise = [tiers]")
    return tuple((ex, tuple(t.strip() for t in tiers)) for ex, tiers in raw.items())


def load_catalog(path: Path | None = None, parsed: Path | None = None) -> Catalog:
    """Load a catalog file (default: the shipped one); its data root is the folder above it.

    ``parsed`` names a JSON file that keeps the parsed catalog for the next command, keyed by
    the file's contents: importing tomllib and parsing cost about 20 ms of a command that
    should answer in a blink.
    """
    return _load_catalog(path, parsed)  # one cache entry however it is called


@cache
def _load_catalog(path: Path | None, parsed: Path | None) -> Catalog:
    shipped = (data_root() / "katas" / "catalog.toml").resolve()
    path = (path or shipped).resolve()
    data = path.read_bytes()
    key = [str(path), len(data), zlib.crc32(data), FORMAT_VERSION]
    raw = None
    if parsed is not None:
        try:
            saved = json.loads(parsed.read_bytes())
            if saved["key"] == key:
                raw = saved["data"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if raw is None:
        raw = read_toml(data.decode("utf-8"), str(path))
        if parsed is not None:
            from checker.progress import atomic_write

            # only a speed-up: a read-only workspace (or data JSON cannot hold) goes without
            with contextlib.suppress(OSError, TypeError, ValueError):
                atomic_write(parsed, json.dumps({"key": key, "data": raw}))
    return catalog_from(raw, str(path), root=path.parent.parent,
                        catalog_file=None if path == shipped else path)


load_catalog.cache_clear = _load_catalog.cache_clear  # type: ignore[attr-defined]
