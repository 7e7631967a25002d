"""Run one kata's teaching examples as doctests in this process (the child side of lint-lessons).

Run as ``python -m checker.lesson_examples NAME``, one fresh process per kata, so that no
example sees another kata's state (torch.compile caches, modes, seeds). Three sources:

- ``lesson.md``: every fenced block whose info string is ``pycon`` is a doctest; the blocks
  run in order in one namespace, like one interpreter session;
- the catalog's ``under_the_hood`` note: its ``>>>`` lines, in a namespace of their own;
- the stub's docstrings: each docstring's examples run with a fresh copy of the reference
  solution's globals, so an example must include its own setup.

Expected output is compared with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``: write ``...``
for the part of a long message that does not matter. The last line of stdout is a JSON list
of failures, each ``{"where": ..., "example": ..., "expected": ..., "got": ...}``.
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import json
import re
import sys
import traceback
from pathlib import Path

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
FENCE = re.compile(r"^```pycon[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


class _Collector(doctest.DocTestRunner):
    """A doctest runner that keeps failures as data instead of printing them."""

    def __init__(self) -> None:
        super().__init__(optionflags=FLAGS)
        self.found: list[dict[str, str]] = []

    def _keep(self, test: doctest.DocTest, example: doctest.Example, got: str) -> None:
        line = (test.lineno or 0) + example.lineno + 1
        self.found.append({"where": f"{test.filename}:{line} ({test.name})",
                              "example": example.source.rstrip(),
                              "expected": example.want.rstrip(), "got": got.rstrip()})

    def report_failure(self, out, test, example, got):  # noqa: ANN001 (doctest's signature)
        self._keep(test, example, got)

    def report_unexpected_exception(self, out, test, example, exc_info):  # noqa: ANN001
        self._keep(test, example, "".join(traceback.format_exception_only(*exc_info[:2])))


def lesson_tests(text: str, filename: str) -> list[doctest.DocTest]:
    """The lesson's ``pycon`` blocks as doctests sharing one namespace."""
    parser, globs = doctest.DocTestParser(), {"__name__": "__lesson__"}
    tests = [parser.get_doctest(m.group(1), globs, f"block {i}", filename,
                                text.count("\n", 0, m.start(1)))
             for i, m in enumerate(FENCE.finditer(text), 1)]
    for test in tests:
        test.globs = globs  # get_doctest copies; a lesson is one session
    return tests


def docstring_tests(stub: Path, label: str, globs: dict) -> list[doctest.DocTest]:
    """Every docstring with examples in ``stub``, each with a fresh copy of ``globs``."""
    parser, tests = doctest.DocTestParser(), []
    for node in ast.walk(ast.parse(stub.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef):
            continue
        doc = ast.get_docstring(node, clean=False)
        if doc and ">>>" in doc:
            lineno = node.body[0].lineno - 1 if node.body else 0
            tests.append(parser.get_doctest(doc, dict(globs), getattr(node, "name", "module"),
                                            label, lineno))
    return tests


def _module_globals(path: Path) -> dict:
    spec = importlib.util.spec_from_file_location(f"_reference_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return vars(module)


def run_kata(name: str) -> list[dict[str, str]]:
    from checker.catalog import load_catalog

    kata = load_catalog().get(name)
    text = kata.lesson_path.read_text(encoding="utf-8")
    tests = lesson_tests(text, str(kata.rel_lesson))
    if ">>>" in kata.under_the_hood:
        tests.append(doctest.DocTestParser().get_doctest(
            kata.under_the_hood, {"__name__": "__note__"}, "under_the_hood", "katas/catalog.toml", 0))
    tests += docstring_tests(kata.stub_path, str(kata.rel_stub), _module_globals(kata.solution_path))
    runner = _Collector()
    for test in tests:
        runner.run(test, clear_globs=False)
    return runner.found


def main(argv: list[str]) -> int:
    failures = run_kata(argv[0])
    sys.stdout.write("\n" + json.dumps(failures) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
