"""Run one kata's teaching examples as doctests in this process (the child side of lint-lessons).

Run as ``python -m checker.lesson_examples NAME`` (in this process) or ``python -m
checker.lesson_examples --each NAME [NAME ...]``: each kata then runs in a process of its own,
forked from this one once it imported torch (a few at a time), so that no example sees
another kata's state (torch.compile caches, modes, seeds). Three sources:

- ``lesson.md``: every fenced block whose info string is ``pycon`` is a doctest; the blocks
  run in order in one namespace, like one interpreter session;
- the catalog's ``under_the_hood`` note: its ``>>>`` lines, in a namespace of their own;
- the stub's docstrings: each docstring's examples run with a fresh copy of the reference
  solution's globals, so an example must include its own setup.

Expected output is compared with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``: write ``...``
for the part of a long message that does not matter. The last line of stdout is a JSON list
of failures, each ``{"where": ..., "example": ..., "expected": ..., "got": ...}`` (with
``--each``: an object of such lists by kata name, and for a kata whose process crashed,
``{"crashed": "its last output"}`` instead of a list).
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


def _forked(name: str, folder: str) -> tuple[int, str]:
    """Start ``name``'s examples in a forked child whose output and result go to files in
    ``folder``; returns (pid, the result file)."""
    import os

    result = os.path.join(folder, f"{name}.json")
    output = os.path.join(folder, f"{name}.txt")
    pid = os.fork()
    if pid:
        return pid, result
    code = 1
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        found = run_kata(name)
        with open(result, "w", encoding="utf-8") as fh:
            json.dump(found, fh)
        code = 0
    except BaseException:  # noqa: BLE001 (the child must never return into the loop)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_katas(names: list[str], width: int) -> dict[str, object]:
    """Each kata's failures, every kata in a child forked from this process, ``width`` at a
    time; a child that ends without a result gives ``{"crashed": its output's tail}``."""
    import os
    import tempfile

    import torch  # once, here: every child inherits it

    torch.set_num_threads(1)  # no thread pool started before the forks (OpenMP in a child)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="kata-examples-") as folder:
        waiting, running = list(names), {}
        while waiting or running:
            while waiting and len(running) < width:
                name = waiting.pop(0)
                running[_forked(name, folder)[0]] = name
            pid, _ = os.wait()
            name = running.pop(pid, None)
            if name is None:
                continue
            try:
                with open(os.path.join(folder, f"{name}.json"), encoding="utf-8") as fh:
                    results[name] = json.load(fh)
            except (OSError, ValueError):
                with open(os.path.join(folder, f"{name}.txt"), encoding="utf-8",
                          errors="replace") as fh:
                    results[name] = {"crashed": fh.read()[-2000:]}
    return results


def main(argv: list[str]) -> int:
    if argv[:1] == ["--each"]:
        import os

        failures: object = run_katas(argv[1:], max(1, min(4, os.cpu_count() or 1)))
    else:
        failures = run_kata(argv[0])
    sys.stdout.write("\n" + json.dumps(failures) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
