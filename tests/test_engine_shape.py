"""The engine's shape: a one-way flow of imports (no module of the checker package reaches
itself again through others, lazy imports inside functions included), and modules small
enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import checker

PACKAGE = Path(checker.__file__).parent
# The checks, the mistakes and the equivalents are data the engine loads, not the engine.
DATA = ("checks", "mistakes", "equivalents")
ENGINE = ("runner", "cold", "launch", "worker", "server", "preload", "armed", "armed_set",
          "plugin", "run_state", "diagnose_check", "learner", "stuck", "report", "outcome",
          "verdict", "observed", "seeding", "sandbox.audit", "sandbox.dispatch",
          "sandbox.forbid", "sandbox.integrity", "sandbox.session", "sandbox.switches",
          "sandbox.window", "sandbox.errors")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent)
        if any(part in DATA for part in rel.parts):
            continue
        name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of the package's modules, wherever in the module they are."""
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges[name].update(t for t in targets if t in known and t != name)
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for other in sorted(edges[name]):
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state and (found := visit(other)):
                return found
        state[name] = 2
        path.pop()
        return None

    for name in sorted(edges):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_no_module_of_the_checker_imports_itself_through_others():
    found = cycle(imports(modules()))
    assert found is None, "an import cycle: " + " -> ".join(found)


def test_the_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_engine_modules_stay_short():
    known = modules()
    long = {name: n for name in ENGINE
            if (n := len(known[f"checker.{name}"].read_text(encoding="utf-8").splitlines())) > 350}
    assert not long, f"engine modules over 350 lines (keep them about 300): {long}"
