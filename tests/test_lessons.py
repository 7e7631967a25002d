"""The teaching texts stay true: every example runs, every pointer into PyTorch's source holds.

One child process per kata runs its lesson, under-the-hood and docstring examples.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from checker import lessonlint, render
from checker.catalog import load_catalog
from checker.lesson_examples import _Collector, lesson_tests

KATAS = list(load_catalog().katas)


@pytest.fixture(scope="module")
def linted() -> dict:
    """Every kata's findings: its examples run in child processes, a few at a time."""
    return lessonlint.lint(KATAS)


@pytest.mark.parametrize("kata", KATAS, ids=[k.name for k in KATAS])
def test_examples_run_as_shown_and_pointers_hold(kata, linted):
    findings = linted[kata.name]
    assert not findings, "\n\n".join(f"{f.where}\n{f.message}" for f in findings)


def test_every_kata_shows_examples_and_cites_source():
    for kata in KATAS:
        text = kata.lesson_path.read_text(encoding="utf-8")
        assert "```pycon" in text, f"{kata.name}: no runnable example in the lesson"
        assert lessonlint.kata_pointers(kata), f"{kata.name}: no pointer into PyTorch's source"


def test_manifest_names_its_tag():
    data = lessonlint.manifest()
    assert data["tag"].startswith("v2.") and data["files"]


def test_a_pointer_names_the_symbols_after_it():
    text = ("- `torch/nn/modules/module.py` — `Module.__setattr__` and `_apply`.\n"
            "- `c10/core/TensorImpl.h`: `version_counter_`, not `view(-1, 4)`.\n\n"
            "`before` is no symbol of torch/_tensor.py `register_hook`.")
    got = [(p.path, p.symbols) for p in lessonlint.pointers(text, "t")]
    assert got == [("torch/nn/modules/module.py", ("Module.__setattr__", "_apply")),
                   ("c10/core/TensorImpl.h", ("version_counter_",)),
                   ("torch/_tensor.py", ("register_hook",))]


@pytest.mark.parametrize(("path", "symbols", "wrong"), [
    ("torch/nn/modules/module.py", ("_apply",), False),
    ("torch/nn/modules/module.py", ("no_such_symbol_here",), True),
    ("torch/nn/modules/no_such_file.py", (), True),
    ("c10/core/TensorImpl.h", ("version_counter_",), False),
    ("tools/autograd/derivatives.yaml", ("tanh_backward",), False),
    ("torch/library.h", ("TORCH_LIBRARY_IMPL",), False),  # a C++ API header: torch/include
    ("torch/library.h", ("no_such_macro_here",), True),
    ("torch/csrc/autograd/no_such_file.cpp", (), True),
])
def test_a_wrong_pointer_is_reported(path, symbols, wrong):
    problem = lessonlint.check_pointer(lessonlint.Pointer(path, symbols, "t"))
    assert (problem is not None) == wrong, problem


def test_a_wrong_example_output_is_reported():
    text = "x\n```pycon\n>>> n = 2\n```\nthen\n```pycon\n>>> n + 1\n4\n>>> 1 / 0\n3\n```\n"
    runner = _Collector()
    for test in lesson_tests(text, "lesson.md"):
        runner.run(test, clear_globs=False)
    assert [(f["expected"], f["got"].splitlines()[-1]) for f in runner.found] == [
        ("4", "3"), ("3", "ZeroDivisionError: division by zero")]
    assert runner.found[0]["where"].startswith("lesson.md:7")


@pytest.fixture
def paged(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("rich.pager.SystemPager._pager", lambda self, text: shown.append(text))
    return shown


def _lesson(console: Console, lines: int) -> str:
    render.show_lesson(console, KATAS[0], "\n\n".join(f"para {i}" for i in range(lines)))
    return console.file.getvalue()


def test_a_long_lesson_opens_in_a_pager_on_a_terminal(paged):
    printed = _lesson(Console(file=io.StringIO(), force_terminal=True, height=20, width=60), 40)
    assert len(paged) == 1 and "para 39" in paged[0] and "para 39" not in printed


@pytest.mark.parametrize(("terminal", "lines"), [(True, 3), (False, 40)])
def test_no_pager_for_a_short_lesson_or_a_pipe(paged, terminal, lines):
    printed = _lesson(Console(file=io.StringIO(), force_terminal=terminal, height=20, width=60), lines)
    assert not paged and f"para {lines - 1}" in printed


def test_lint_lessons_command_fails_on_a_finding(monkeypatch):
    from click.testing import CliRunner

    from checker.cli import main

    monkeypatch.setattr(lessonlint, "lint", lambda katas, examples: {
        "strides": [lessonlint.Finding("strides", "lesson.md", "a wrong example")]})
    result = CliRunner().invoke(main, ["dev", "lint-lessons", "strides", "--no-examples"])
    assert result.exit_code == 1 and "a wrong example" in result.output


def test_a_kata_whose_example_process_crashes_is_reported_and_the_others_still_run():
    """The examples run in one process per kata, forked from one that imported torch: a
    child that ends without a result is a finding of its own kata only."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "checker.lesson_examples", "--each",
                           "numpy_backprop", "no_such_kata"], capture_output=True, text=True,
                          timeout=120, cwd=lessonlint.PACKAGE_DIR.parent)
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["numpy_backprop"] == []
    assert "no_such_kata" in found["no_such_kata"]["crashed"]
