"""Stubs state the contract, not the algorithm; hints come in tiers, per exercise.

For every shipped kata: each exercise has at least three hint tiers (a nudge, the idea
applied, near-code) and one exercise is the challenge; no line of a reference solution's
function bodies (whitespace normalised, 20 characters or more) appears in the stub (its
docstrings and NotImplementedError texts included; code the stub ships working, such as
wiring, is not a leak) or in a hint tier below the last; and
every NotImplementedError text names its exercise and points to `kata lesson` and
`kata hint`, nothing more.
"""

from __future__ import annotations

import ast
import re

import pytest

from checker.catalog import load_catalog

CATALOG = load_catalog()
NAMES = CATALOG.names()
MIN_LINE = 20
NOT_YET = re.compile(r"(\w+)(?:\.\w+)?: see `kata lesson`, or `kata hint` for a nudge")


def normalised(text: str) -> str:
    return " ".join(text.split())


def raises_not_implemented(node: ast.AST) -> bool:
    return any(isinstance(sub, ast.Raise) and sub.exc is not None
               and "NotImplementedError" in ast.unparse(sub.exc) for sub in ast.walk(node))


def body_lines(source: str, *, working_only: bool = False) -> set[str]:
    """Every line (normalised, >= MIN_LINE characters) of every function body in ``source``,
    docstrings left out; with ``working_only``, only of the functions that raise no
    NotImplementedError (the code a stub ships working)."""
    lines = source.splitlines()
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if working_only and raises_not_implemented(node):
            continue
        body = node.body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        for stmt in body:
            for line in lines[stmt.lineno - 1:stmt.end_lineno]:
                text = normalised(line)
                if len(text) >= MIN_LINE:
                    found.add(text)
    return found


def leaks(solution: str, text: str, given: str = "") -> list[str]:
    """The solution's body lines that ``text`` contains, but for code ``given`` working (the
    scaffolding a stub ships: wiring, an ``__init__``; not lines written into a function that
    still raises NotImplementedError, which would hand the learner part of an exercise)."""
    haystack = normalised(text)
    shipped = body_lines(given, working_only=True) if given else set()
    return sorted(line for line in body_lines(solution) - shipped if line in haystack)


@pytest.mark.parametrize("name", NAMES)
def test_every_exercise_has_tiered_hints_and_the_kata_a_challenge(name):
    kata = CATALOG.get(name)
    for exercise in kata.exercises:
        tiers = kata.tiers(exercise)
        assert len(tiers) >= 3, f"{name}.{exercise}: {len(tiers)} hint tiers, want >= 3"
        assert len(set(tiers)) == len(tiers), f"{name}.{exercise}: two tiers say the same"
    assert kata.challenge in kata.exercises, f"{name}: no challenge exercise"


@pytest.mark.parametrize("name", NAMES)
def test_the_stub_does_not_give_the_solution_away(name):
    kata = CATALOG.get(name)
    solution = kata.solution_path.read_text(encoding="utf-8")
    stub = kata.stub_path.read_text(encoding="utf-8")
    found = leaks(solution, stub, given=stub)
    assert not found, f"{name}: the stub holds lines of the reference: {found}"


@pytest.mark.parametrize("name", NAMES)
def test_hints_below_the_last_tier_do_not_give_the_solution_away(name):
    kata = CATALOG.get(name)
    solution = kata.solution_path.read_text(encoding="utf-8")
    for exercise, tiers in kata.hints:
        for i, tier in enumerate(tiers[:-1], 1):
            found = leaks(solution, tier)
            assert not found, f"{name}.{exercise} hint {i} holds lines of the reference: {found}"


@pytest.mark.parametrize("name", NAMES)
def test_not_implemented_texts_name_the_exercise_and_point_to_lesson_and_hint(name):
    kata = CATALOG.get(name)
    tree = ast.parse(kata.stub_path.read_text(encoding="utf-8"))
    raised = [node.exc for node in ast.walk(tree) if isinstance(node, ast.Raise)
              and node.exc is not None and "NotImplementedError" in ast.unparse(node.exc)]
    assert raised, f"{name}: the stub raises no NotImplementedError"
    for exc in raised:
        # One constant text, nothing computed or appended: a bare raise, an f-string or a
        # second argument would say more (or less) than the exercise and the two commands.
        text = (exc.args[0].value if isinstance(exc, ast.Call) and len(exc.args) == 1
                and not exc.keywords and isinstance(exc.args[0], ast.Constant) else None)
        match = NOT_YET.fullmatch(text) if isinstance(text, str) else None
        assert match and match.group(1) in kata.exercises, f"{name}: {ast.unparse(exc)}"


def test_the_guard_sees_a_leak():
    solution = "def f(shape):\n    running = 1\n    for size in reversed(shape):\n        pass\n"
    assert leaks(solution, "Hint: for size   in reversed(shape): ...") == [
        "for size in reversed(shape):"]
    assert leaks(solution, "walk the dims from the right") == []
    working = "def f(shape):\n    running = 1\n    for size in reversed(shape):\n        pass\n"
    leaked = "def f(shape):\n    for size in reversed(shape):\n        raise NotImplementedError\n"
    assert leaks(solution, working, given=working) == []
    assert leaks(solution, leaked, given=leaked) == ["for size in reversed(shape):"]


def test_hint_follows_the_exercise_the_last_check_failed(tmp_path, monkeypatch):
    """A fresh workspace where exercise 4 of strides is the only failing one: `kata hint`
    gives tier 1 for is_contiguous, the next call tier 2, a different text."""
    from click.testing import CliRunner

    from checker.cli import main
    from checker.workspace import Workspace

    ws, _ = Workspace.create(tmp_path / "ws")
    monkeypatch.chdir(ws.root)
    kata = ws.catalog.get("strides")
    assert kata.exercises[3] == "is_contiguous"
    head, rest = kata.solution_path.read_text().split("def is_contiguous(")
    tail = rest[rest.index("\ndef view_params("):]
    ws.kata_file(kata).write_text(
        head + "def is_contiguous(shape, strides):\n    return False\n\n" + tail)

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    checked = invoke("check", "strides", "--seed", "1")
    assert "4/5 exercises pass" in checked.output, checked.output
    tiers = kata.tiers("is_contiguous")
    first, second = invoke("hint").output, invoke("hint").output
    assert "Hint 1/3 for is_contiguous" in first and tiers[0] in " ".join(first.split())
    assert "Hint 2/3 for is_contiguous" in second and tiers[1] in " ".join(second.split())
    assert tiers[0] != tiers[1]
