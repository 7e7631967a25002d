"""Keep the teaching texts true: run their examples and verify their pointers into PyTorch.

``kata dev lint-lessons`` and ``tests/test_lessons.py`` both call :func:`lint_kata`.

Source pointers. A path into PyTorch's source tree (``aten/``, ``c10/``, ``torch/``,
``tools/``) ending in ``.py``, ``.h``, ``.yaml``, ``.cpp`` or ``.cu`` is a pointer wherever it
appears: in a lesson, a hint, an ``under_the_hood`` note or a stub. The symbols it names are
the backticked identifiers that follow it in the same block (a bullet item, a paragraph, a
hint), up to the next path; a symbol is checked by its last component (``Engine::execute``
by ``execute``). Write the path first, then what it holds.

- ``.py``, ``.h`` and ``.yaml`` are checked against the installed wheel, which ships them
  (headers under ``torch/include``, the two codegen yaml files under ``torchgen/packaged``).
- ``.cpp`` and ``.cu`` are not shipped: they are checked against ``source_manifest.json``,
  recorded from a checkout of PyTorch at a release tag with
  ``python -m checker.lessonlint record PYTORCH_GIT_DIR [--tag v2.13.0]``.

Examples are run by :mod:`checker.lesson_examples`: one child process that forks one per kata.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from checker.catalog import PACKAGE_DIR, Kata

MANIFEST = PACKAGE_DIR / "source_manifest.json"
PATH = re.compile(r"(?<![\w/.])((?:aten|c10|torch|tools)/[\w/.-]*?\w\.(?:py|h|yaml|cpp|cu))\b")
TICKED = re.compile(r"`([^`\n]+)`")
IDENT = re.compile(r"[A-Za-z_~][\w]*(?:(?:::|\.)[A-Za-z_~]\w*)*(?:\(\))?")
SHIPPED = (".py", ".h", ".yaml")
# Source-tree prefix -> where the wheel keeps that file, relative to site-packages.
WHEEL_HOMES = (("torch/csrc/", "torch/include/torch/csrc/"), ("c10/", "torch/include/c10/"),
               ("aten/src/ATen/native/native_functions.yaml",
                "torchgen/packaged/ATen/native/native_functions.yaml"),
               ("aten/src/ATen/", "torch/include/ATen/"),
               ("tools/autograd/", "torchgen/packaged/autograd/"), ("torch/", "torch/"),
               ("torch/", "torch/include/torch/"))  # the C++ API's headers: torch/library.h


@dataclass(frozen=True)
class Finding:
    """One thing in a kata's texts that is not true of the installed torch."""

    kata: str
    where: str
    message: str


@dataclass(frozen=True)
class Pointer:
    path: str
    symbols: tuple[str, ...]
    where: str


def blocks(text: str) -> Iterator[str]:
    """Paragraphs and bullet items: the unit inside which a path's symbols are named."""
    for para in re.split(r"\n\s*\n", text):
        yield from re.split(r"\n(?=\s*[-*] )", para)


def pointers(text: str, where: str) -> list[Pointer]:
    found = []
    for block in blocks(text):
        hits = list(PATH.finditer(block))
        for hit, nxt in zip(hits, [*hits[1:], None], strict=False):
            tail = block[hit.end():nxt.start() if nxt else len(block)].removeprefix("`")
            names = [m.group(1) for m in TICKED.finditer(tail) if IDENT.fullmatch(m.group(1))]
            found.append(Pointer(hit.group(1), tuple(dict.fromkeys(names)), where))
    return found


def kata_pointers(kata: Kata) -> list[Pointer]:
    texts = [(kata.lesson_path.read_text(encoding="utf-8"), str(kata.rel_lesson)),
             (kata.under_the_hood, "catalog: under_the_hood"),
             (kata.stub_path.read_text(encoding="utf-8"), str(kata.rel_stub))]
    texts += [(tier, f"catalog: hint {i} for {exercise}")
              for exercise, tiers in kata.hints for i, tier in enumerate(tiers, 1)]
    return [p for text, where in texts for p in pointers(text, where)]


def bare(symbol: str) -> str:
    return re.split(r"::|\.", symbol.removesuffix("()"))[-1]


@cache
def site_packages() -> Path:
    spec = importlib.util.find_spec("torch")  # finds torch without importing it
    return Path(next(iter(spec.submodule_search_locations))).parent


def wheel_file(path: str) -> Path | None:
    """Where the wheel keeps ``path``: the first home that holds it (else the first home)."""
    homes = [site_packages() / (home + path[len(prefix):])
             for prefix, home in WHEEL_HOMES if path.startswith(prefix)]
    return next((f for f in homes if f.is_file()), homes[0] if homes else None)


@cache
def manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def check_pointer(p: Pointer) -> str | None:
    """What is wrong with one pointer, or None."""
    if p.path.endswith(SHIPPED):
        file = wheel_file(p.path)
        if file is None or not file.is_file():
            return f"{p.path}: not in the installed wheel ({file})"
        text = file.read_text(encoding="utf-8", errors="replace")
        missing = [s for s in p.symbols if not re.search(rf"(?<!\w){re.escape(bare(s))}(?!\w)", text)]
        where = f"the installed wheel's {p.path}"
    else:
        recorded = manifest()["files"].get(p.path)
        if recorded is None:
            return (f"{p.path}: not in source_manifest.json (re-record it: "
                    "python -m checker.lessonlint record PYTORCH_GIT_DIR)")
        missing = [s for s in p.symbols if bare(s) not in recorded]
        where = f"{p.path} at {manifest()['tag']} (source_manifest.json)"
    return f"{', '.join(missing)} not found in {where}" if missing else None


def pointer_findings(kata: Kata) -> list[Finding]:
    return [Finding(kata.name, p.where, msg) for p in kata_pointers(kata)
            if (msg := check_pointer(p))]


def examples_of(katas: list[Kata], timeout: float = 300.0) -> dict[str, list[Finding]]:
    """Every kata's example findings, from one child process that imports torch once and
    forks a process per kata (checker.lesson_examples): ``timeout`` is per kata."""
    names = [k.name for k in katas]
    proc = subprocess.run([sys.executable, "-m", "checker.lesson_examples", "--each", *names],
                          capture_output=True, text=True, timeout=timeout * len(katas),
                          cwd=PACKAGE_DIR.parent)
    lines = proc.stdout.strip().splitlines()
    try:
        found = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        found = {}
    out: dict[str, list[Finding]] = {}
    for name in names:
        failures = found.get(name) if isinstance(found, dict) else None
        if not isinstance(failures, list):
            why = (failures or {}).get("crashed") if isinstance(failures, dict) else None
            out[name] = [Finding(name, "examples", "the example run crashed:\n"
                                 + (why or proc.stderr[-2000:]))]
            continue
        out[name] = [Finding(name, f["where"],
                             f"{f['example']}\nexpected:\n{f['expected']}\ngot:\n{f['got']}")
                     for f in failures]
    return out


def lint(katas: list[Kata], *, examples: bool = True) -> dict[str, list[Finding]]:
    """Findings per kata; the example runs go through one child process (a fork per kata)."""
    found = {kata.name: pointer_findings(kata) for kata in katas}
    if examples and katas:
        for name, extra in examples_of(katas).items():
            found[name] += extra
    return found


def record(git_dir: Path, tag: str, katas: list[Kata]) -> dict:
    """The manifest for every .cpp/.cu pointer of ``katas``, read from ``git_dir`` at ``tag``."""
    files: dict[str, list[str]] = {}
    for p in (p for k in katas for p in kata_pointers(k) if not p.path.endswith(SHIPPED)):
        shown = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{tag}:{p.path}"],
                               capture_output=True, text=True)
        if shown.returncode != 0:
            continue
        present = files.setdefault(p.path, [])
        present += [bare(s) for s in p.symbols if bare(s) not in present
                    and re.search(rf"(?<!\w){re.escape(bare(s))}(?!\w)", shown.stdout)]
    return {"tag": tag, "source": f"git show {tag}:PATH in a clone of github.com/pytorch/pytorch",
            "files": {k: sorted(v) for k, v in sorted(files.items())}}


def main(argv: list[str]) -> int:
    import argparse

    from checker.catalog import load_catalog

    parser = argparse.ArgumentParser(prog="python -m checker.lessonlint")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="write source_manifest.json from a PyTorch git dir")
    rec.add_argument("git_dir", type=Path)
    rec.add_argument("--tag", default="v2.13.0")
    args = parser.parse_args(argv)
    data = record(args.git_dir, args.tag, list(load_catalog().katas))
    MANIFEST.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"{MANIFEST}: {len(data['files'])} files at {args.tag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
