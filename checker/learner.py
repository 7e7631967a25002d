"""Load the code under test from its source and hand it to the checks, each call sandboxed.

The hidden checks never import the learner's file themselves: the ``impl`` fixture hands them
an :class:`Impl`, whose functions run inside the rules window (checker.sandbox.window).
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import itertools
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from checker.catalog import Rules
from checker.contracts import call_guarded
from checker.sandbox.errors import EscapeAttempt, ForbiddenAPI, is_escape
from checker.sandbox.window import rules_window
from checker.stuck import Stuck, from_timeout, import_limit, trim

NO_RULES = Rules()


class LearnerFileError(Exception):
    """The learner's file cannot be loaded at all (missing, unreadable, syntax error, ...)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


# ----------------------------------------------------------------------------- loading


def read_source(path: Path) -> str:
    """The file's text, or a LearnerFileError that says what is wrong and how to get back."""
    try:
        if path.is_dir():
            raise LearnerFileError(
                f"{path} is a directory, not a Python file. `kata reset NAME` restores the stub."
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise LearnerFileError(
            f"{path} does not exist. `kata reset NAME` restores the pristine stub."
        ) from None
    except PermissionError:
        raise LearnerFileError(
            f"{path} cannot be read (permission denied). Fix its permissions, e.g. `chmod u+rw {path}`."
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LearnerFileError(
            f"{path}:{line}: the file is not valid UTF-8 (byte {exc.start}). Save it as UTF-8.",
            line,
        ) from None


def static_import_violations(tree: ast.AST, forbidden: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, what) for every import of a forbidden top-level module that the source spells out."""
    found: list[tuple[int, str]] = []

    def top(name: str) -> str:
        return name.split(".")[0]

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if top(alias.name) in forbidden:
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if top(node.module) in forbidden:
                found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if (
                fname in {"__import__", "import_module"}
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and top(arg.value) in forbidden
            ):
                found.append((node.lineno, f"{fname}({arg.value!r})"))
        elif isinstance(node, ast.Subscript):
            target = node.value
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "modules"
                and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)
                and top(node.slice.value) in forbidden
            ):
                found.append((node.lineno, f"sys.modules[{node.slice.value!r}]"))
    return found


_COMPILED: dict[tuple, types.CodeType] = {}


def compile_source(path: Path, rules: Rules = NO_RULES) -> types.CodeType:
    """The file's code, compiled from its current source (a run loads it once per check:
    the same text compiles once per process)."""
    source = read_source(path)
    key = (str(path), source, rules.forbid_imports)
    if key not in _COMPILED:
        _COMPILED[key] = _compile_checked(path, source, rules)
    return _COMPILED[key]


def _compile_checked(path: Path, source: str, rules: Rules) -> types.CodeType:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno}" if exc.lineno else str(path)
        text = (exc.text or "").rstrip()
        caret = f"\n    {text}" if text else ""
        raise LearnerFileError(f"{where}: syntax error: {exc.msg}{caret}", exc.lineno) from None
    if rules.forbid_imports:
        bad = static_import_violations(tree, rules.forbid_imports)
        if bad:
            line, what = bad[0]
            names = ", ".join(rules.forbid_imports)
            raise LearnerFileError(
                f"{path}:{line}: `{what}` — this kata forbids importing {names}. {rules.explain}".rstrip(),
                line,
            )
    return compile(tree, str(path), "exec", dont_inherit=True)


_loaded = itertools.count(1)  # never rebound: the integrity snapshot holds the module still


def load_module(path: Path, rules: Rules = NO_RULES, *,
                time_limit: float | None = None) -> types.ModuleType:
    """Execute ``path`` from source (never a cached .pyc) as a fresh module, under ``rules``;
    with ``time_limit`` (outside a check: it takes the SIGALRM timer), in that many seconds."""
    path = Path(path).resolve()
    code = compile_source(path, rules)
    module = types.ModuleType(f"kata_impl_{next(_loaded)}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and pickling look modules up here
    with rules_window(rules, str(path)):
        try:
            with import_limit(time_limit, str(path)) if time_limit else contextlib.nullcontext():
                exec(code, module.__dict__)
        except ForbiddenAPI:
            raise
        except BaseException as exc:
            if is_escape(exc):
                message = str(EscapeAttempt.from_exc(exc, "importing your file"))
                raise LearnerFileError(message) from None
            line = _learner_line(exc, str(path))
            if isinstance(exc, Stuck):  # it says where itself (checker.stuck.import_limit)
                raise LearnerFileError(str(exc), line) from None
            trim(exc)  # unbounded recursion leaves a traceback millions of entries deep
            where = f"{path}:{line}" if line else str(path)
            raise LearnerFileError(
                f"{where}: importing your file raised {type(exc).__name__}: {exc}", line
            ) from exc
    return module


def _learner_line(exc: BaseException, filename: str) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# ----------------------------------------------------------------------------- the proxy


class Impl:
    """The implementation under test, as the checks see it.

    ``impl.some_function(...)`` calls the learner's function inside the kata's rules window;
    ``impl.SomeClass`` is returned as is (wrap its use in ``with impl.rules():``).
    """

    def __init__(self, module: types.ModuleType, rules: Rules, label: str = "your file"):
        self._module = module
        self._rules = rules
        self._label = label

    @property
    def module(self) -> types.ModuleType:
        return self._module

    def rules(self) -> contextlib.AbstractContextManager[None]:
        """The rules window, for checks that drive learner classes themselves."""
        return rules_window(self._rules, self._module.__file__ or "")

    def __getattr__(self, name: str) -> Any:
        try:
            value = getattr(self._module, name)
        except AttributeError:
            raise AssertionError(
                f"{self._label} has no `{name}`. Keep the stub's function names as they are "
                f"(`kata reset` restores the stub; your current file is kept as a backup)."
            ) from None
        if inspect.isclass(value) or not callable(value):
            return value
        return _Wrapped(self, name, value)


class _Wrapped:
    def __init__(self, impl: Impl, name: str, func: Callable[..., Any]):
        self._impl = impl
        self.__name__ = name
        self._func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # inputs unchanged, global state restored (imported before any learner window opens)

        return call_guarded(self.__name__, self._func, args, kwargs,
                            lambda: self._invoke(*args, **kwargs))

    def _invoke(self, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._impl.rules():
                return self._func(*args, **kwargs)
        except BaseException as exc:
            stuck = from_timeout(exc, self.__name__, self._impl.module.__file__ or "")
            if stuck is not None:
                raise stuck from None
            if is_escape(exc):
                raise EscapeAttempt.from_exc(exc, f"`{self.__name__}`") from None
            raise

    def __repr__(self) -> str:
        return f"<learner function {self.__name__}>"
