"""``python -m pytest`` inside a workspace: the current kata's exercises as test items.

This is what the test explorers of VS Code and PyCharm run. ``kata init`` writes the
workspace's ``pytest.ini`` (``-p torch_katas``), so checker.plugin loads and, finding no
``--kata-impl`` (a check child always has one), hands the session to :class:`WorkspaceSession`.

Collection reads the catalog and the kata file's source, never torch: one item per exercise,
``katas/NN_name/name.py::exercise``, pointing at the learner's function. Running any item
judges the whole kata once, exactly as ``kata check`` does (a sandboxed child, the warm worker
when one runs, the same limits and rules); each item then passes or fails with its exercise's
teaching message. The verdict is recorded by this process (the runner's side), never by the
learner's code, following ``kata check``'s rules. ``pytest --kata NAME`` picks another kata
(``--kata-seed N`` replays a seed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from checker.workspace import Workspace, WorkspaceError


class ExerciseFailed(Exception):
    """An exercise's verdict; its text is the teaching message."""


def configure(config: pytest.Config) -> None:
    """Take over the session if pytest runs inside a workspace."""
    try:
        ws = Workspace.find(Path(config.rootpath))
    except WorkspaceError:
        return
    config.pluginmanager.register(WorkspaceSession(ws, config), "torch-katas-workspace")


class WorkspaceSession:
    def __init__(self, ws: Workspace, config: pytest.Config):
        from checker import app as domain
        from checker.catalog import UnknownKata

        self.ws, self.config = ws, config
        progress = ws.progress.load()
        name = config.getoption("--kata")
        try:
            self.kata = domain.resolve_kata(ws, progress, name)
        except UnknownKata as exc:
            raise pytest.UsageError(str(exc)) from None
        self.locked: str | None = None
        try:
            domain.require_unlocked(ws, progress, self.kata)
        except domain.KataLocked as exc:
            self.locked = str(exc)
        self.result = None
        self.outcome = None

    def pytest_report_header(self, config: pytest.Config) -> str:
        return (f"torch-katas workspace {self.ws.root}: kata {self.kata.name} "
                f"({self.ws.kata_file(self.kata).relative_to(self.ws.root)})")

    def pytest_collect_file(self, file_path: Path, parent):
        if Path(file_path).resolve() == self.ws.kata_file(self.kata).resolve():
            return KataFile.from_parent(parent, path=Path(file_path), session_plugin=self)
        return None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        target = self.ws.kata_file(self.kata)
        if not any(isinstance(i, ExerciseItem) for i in session.items) and not target.exists():
            raise pytest.UsageError(f"{target} does not exist; `kata reset {self.kata.name}` "
                                    "puts the stub back.")

    def verdict(self):
        """Judge the kata once per session (the first item to run pays) and record it."""
        if self.result is None:
            from checker import app as domain
            from checker.runner import run_checks

            path = self.ws.kata_file(self.kata)
            seed = self.config.getoption("--kata-seed")
            self.result = run_checks(self.kata, path, seed=seed, use_worker=self.ws.state_dir)
            if self.result.status != "interrupted":
                self.outcome = domain.record(self.ws, self.kata, self.result)
        return self.result

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.result is None:
            return
        r = self.result
        line = (f"torch-katas: {self.kata.name} {r.exercises_passed}/{len(r.exercises)} "
                f"exercises pass, seed {r.seed} (replay: kata check {self.kata.name} "
                f"--seed {r.seed}).")
        if self.outcome is not None and self.outcome.newly_passed:
            line += " Kata passed: progress saved; `kata next` shows the next one."
        terminalreporter.write_line(line)


class KataFile(pytest.File):
    def __init__(self, *, session_plugin: WorkspaceSession, **kwargs):
        super().__init__(**kwargs)
        self.session_plugin = session_plugin

    def collect(self):
        lines = _definition_lines(self.path)
        for exercise in self.session_plugin.kata.exercises:
            yield ExerciseItem.from_parent(self, name=exercise, line=lines.get(exercise, 0))


def _definition_lines(path: Path) -> dict[str, int]:
    """0-based line of each top-level function, read from source (never imported here)."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return {}
    return {n.name: n.lineno - 1 for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


class ExerciseItem(pytest.Item):
    def __init__(self, *, line: int, **kwargs):
        super().__init__(**kwargs)
        self.line = line

    @property
    def plugin(self) -> WorkspaceSession:
        return self.parent.session_plugin

    def runtest(self) -> None:
        if self.plugin.locked:
            raise ExerciseFailed(self.plugin.locked)
        result = self.plugin.verdict()
        exercise = next((e for e in result.exercises if e.name == self.name), None)
        if exercise is not None and exercise.ok:
            return
        from checker.printed import as_text
        from checker.verdicts import exercise_message

        if exercise is None:
            raise ExerciseFailed(result.message or f"{self.name} was not judged ({result.status}).")
        message = exercise_message(result, exercise)
        if exercise.diagnosis:
            mid, text = exercise.diagnosis[0]
            message += f"\nThis looks like a known misconception ({mid}): {text}"
        if exercise.output:
            message += "\n" + as_text(exercise.output, exercise.output_lines)
        raise ExerciseFailed(message)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ExerciseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, self.line, f"{self.plugin.kata.name}: {self.name}"
