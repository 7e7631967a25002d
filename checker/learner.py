"""Load the code under test from its source and run it under a kata's rules.

The hidden checks never import the learner's file themselves: the ``impl`` fixture hands them
an :class:`Impl`, whose functions run inside the rules window (forbidden APIs raise,
forbidden imports are refused) and are followed by a tamper check (the learner's code must
not replace the functions that the checks compare with).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import inspect
import os
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from checker.catalog import Rules

NO_RULES = Rules()


class LearnerFileError(Exception):
    """The learner's file cannot be loaded at all (missing, unreadable, syntax error, ...)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class ForbiddenAPI(RuntimeError):
    """Raised when the learner's code calls an API that the kata puts off-limits."""


class TamperError(AssertionError):
    """The learner's code replaced a function that the checks rely on."""


class EscapeAttempt(AssertionError):
    """The learner's code tried to leave the process (exit, KeyboardInterrupt) mid-check."""

    @classmethod
    def from_exc(cls, exc: BaseException, where: str) -> EscapeAttempt:
        return cls(
            f"{where} raised {type(exc).__name__}{_args(exc)}. A check cannot go on after an "
            "exit or an interrupt: return a value instead of exiting."
        )


def _args(exc: BaseException) -> str:
    return f"({', '.join(map(repr, exc.args))})" if exc.args else ""




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


_counter = 0


def load_module(path: Path, rules: Rules = NO_RULES) -> types.ModuleType:
    """Execute ``path`` from source (never a cached .pyc) as a fresh module, under ``rules``."""
    global _counter
    path = Path(path).resolve()
    code = compile_source(path, rules)
    _counter += 1
    module = types.ModuleType(f"kata_impl_{_counter}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and pickling look modules up here
    with rules_window(rules, str(path)):
        try:
            exec(code, module.__dict__)
        except (KeyboardInterrupt, SystemExit) as exc:
            raise LearnerFileError(str(EscapeAttempt.from_exc(exc, "importing your file"))) from None
        except ForbiddenAPI:
            raise
        except BaseException as exc:
            line = _learner_line(exc, str(path))
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


# ----------------------------------------------------------------------------- rules


def resolve(dotted: str) -> tuple[Any, str, Any]:
    """'torch.Tensor.unfold' -> (torch.Tensor, 'unfold', <the attribute>)."""
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:-1]:
            obj = getattr(obj, name)
        return obj, parts[-1], getattr(obj, parts[-1])
    raise ValueError(f"cannot resolve {dotted!r}")


def _raiser_code(message: str) -> types.CodeType:
    """Code for ``def f(*args, **kwargs): raise ForbiddenAPI(message)`` that needs no globals."""
    src = (
        "def _forbidden(*args, **kwargs):\n"
        f"    raise __import__('checker.learner', fromlist=['_']).ForbiddenAPI({message!r})\n"
    )
    namespace: dict[str, Any] = {}
    exec(src, namespace)
    return namespace["_forbidden"].__code__


def forbidden_message(dotted: str, rules: Rules) -> str:
    why = f": {rules.explain}" if rules.explain else ""
    return f"`{dotted}` is off-limits in this kata{why}"


def _swappable(func: Any) -> types.FunctionType | None:
    """The function whose code to swap: ``func`` itself, or for a decorator's wrapper (which
    has a closure) the innermost ``__wrapped__`` function, which every route ends up calling."""
    while isinstance(func, types.FunctionType):
        if not func.__code__.co_freevars:
            return func
        func = getattr(func, "__wrapped__", None)
    return None


def _blocker(message: str) -> Callable[..., None]:
    def blocked(*args: Any, **kwargs: Any) -> None:
        raise ForbiddenAPI(message)

    return blocked


_FORBID_PLANS: dict[tuple, list[tuple]] = {}


def _forbid_plan(rules: Rules) -> list[tuple]:
    """What forbid_callables changes, worked out once per process (a window opens around
    every call into the learner's code): for each forbidden callable, its owner, attribute,
    the object itself, the function whose code to swap (or None) and the code to swap in,
    and a stand-in raising ForbiddenAPI with its message."""
    key = (rules.forbid, rules.explain)
    if key not in _FORBID_PLANS:
        plan = []
        for entry in rules.forbid:
            dotted = entry.rstrip("?")
            try:
                owner, attr, target = resolve(dotted)
            except (AttributeError, ValueError):
                if entry.endswith("?"):
                    continue  # "name?": forbid it where this torch has it
                raise
            message = forbidden_message(dotted, rules)
            inner = _swappable(target)
            plan.append((owner, attr, target, inner,
                         _raiser_code(message) if inner is not None else None, _blocker(message)))
        _FORBID_PLANS[key] = plan
    return _FORBID_PLANS[key]


def prepare_rules(rules: Rules) -> None:
    """Work out what the rules windows of ``rules`` change ahead of the first call (a warm
    worker's armed process does it before the learner saves)."""
    with contextlib.suppress(Exception):  # a bad entry is reported by the window itself
        _forbid_plan(rules)
    _guarded_owner_attrs()


@contextlib.contextmanager
def forbid_callables(rules: Rules) -> Iterator[None]:
    """Make every callable in ``rules.forbid`` raise ForbiddenAPI until the block ends.

    Enforcement is on the underlying object, so aliases (``from torch.optim import Adam``,
    ``getattr``, submodule paths) are caught as well: a Python function gets its code swapped
    (a decorated one: the function it wraps), a class its ``__init__``; anything else
    (builtins, C methods) is replaced where it is found.
    """
    undo: list[Callable[[], None]] = []
    try:
        for owner, attr, target, inner, raiser, blocked in _forbid_plan(rules):
            if inner is not None:
                old_code = inner.__code__
                inner.__code__ = raiser
                undo.append(lambda t=inner, c=old_code: setattr(t, "__code__", c))
                if inner is target:
                    continue
                # A decorator's wrapper may fail before reaching the wrapped function (e.g.
                # Optimizer.step reads self.defaults): block the wrapper by name as well.
            if isinstance(target, type):
                had = "__init__" in target.__dict__
                old_init = target.__dict__.get("__init__")
                target.__init__ = blocked  # type: ignore[misc]
                undo.append(
                    lambda t=target, o=old_init, h=had: setattr(t, "__init__", o)
                    if h
                    else delattr(t, "__init__")
                )
            else:
                original = owner.__dict__.get(attr, target) if isinstance(owner, type) else target
                setattr(owner, attr, blocked)
                undo.append(lambda o=owner, a=attr, v=original: setattr(o, a, v))
        yield
    finally:
        for step in reversed(undo):
            step()


@contextlib.contextmanager
def forbid_imports(rules: Rules, filename: str) -> Iterator[None]:
    """Refuse imports of ``rules.forbid_imports`` issued from the learner's own file."""
    if not rules.forbid_imports:
        yield
        return
    real_import = builtins.__import__
    real_import_module = importlib.import_module

    def refuse(name: str) -> None:
        names = ", ".join(rules.forbid_imports)
        raise ForbiddenAPI(
            f"`import {name}` — this kata forbids importing {names} in your file. {rules.explain}".rstrip()
        )

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level == 0 and name.split(".")[0] in rules.forbid_imports:
            # A direct __import__("torch") passes no globals: judge by the calling frame.
            importer = globals if globals is not None else sys._getframe(1).f_globals
            if importer.get("__file__") == filename:
                refuse(name)
        return real_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name: str, package: str | None = None):
        caller = sys._getframe(1).f_globals
        if name.split(".")[0] in rules.forbid_imports and caller.get("__file__") == filename:
            refuse(name)
        return real_import_module(name, package)

    builtins.__import__ = guarded_import
    importlib.import_module = guarded_import_module
    try:
        yield
    finally:
        builtins.__import__ = real_import
        importlib.import_module = real_import_module


def _no_processes(*args: Any, **kwargs: Any) -> None:
    raise ForbiddenAPI(
        "starting processes is off-limits in kata code (os.fork, subprocess, multiprocessing): "
        "solve the exercise in this process"
    )


PROCESS_STARTERS = (("os", "fork"), ("os", "forkpty"), ("os", "posix_spawn"),
                    ("os", "posix_spawnp"), ("os", "system"), ("os", "popen"),
                    ("subprocess", "Popen"), ("pty", "fork"))


@contextlib.contextmanager
def no_escape(allow_processes: bool = False) -> Iterator[None]:
    """In the learner's code ``os._exit`` becomes a catchable SystemExit and starting
    processes raises (a fork bomb stops at its first fork, even where RLIMIT_NPROC does not
    apply, as for root)."""
    real_exit, owner = os._exit, os.getpid()

    def blocked_os_exit(status: int = 0) -> None:
        if os.getpid() != owner:  # a process forked inside the window (a DataLoader worker)
            real_exit(status)
        raise SystemExit(status)

    saved = [(os, "_exit", real_exit)]
    os._exit = blocked_os_exit
    for modname, attr in () if allow_processes else PROCESS_STARTERS:
        module = sys.modules.get(modname) or importlib.import_module(modname)
        if hasattr(module, attr):
            saved.append((module, attr, getattr(module, attr)))
            setattr(module, attr, _no_processes)
    try:
        yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)


@contextlib.contextmanager
def rules_window(rules: Rules, filename: str) -> Iterator[None]:
    with (
        forbid_callables(rules),
        forbid_imports(rules, filename),
        no_escape(rules.allow_processes),
        TamperGuard(),
    ):
        yield


# ----------------------------------------------------------------------------- tampering

# Attributes that checks rely on to compare results. Learner code that replaces any of them
# (at import time or during a call) is stopped: the originals are restored and the check fails.
GUARDED = {
    "builtins": ["isinstance", "type", "abs", "max", "min", "all", "any", "len", "float", "int",
                 "round", "repr", "str", "tuple", "list", "sorted", "zip", "range", "bool"],
    "torch": ["allclose", "isclose", "equal", "eq", "abs", "max", "all", "any", "isfinite",
              "is_tensor", "as_tensor", "tensor", "sub", "ne"],
    "torch.Tensor": ["__eq__", "__ne__", "__sub__", "__abs__", "__bool__", "abs", "max", "item",
                     "tolist", "stride", "size", "storage_offset", "untyped_storage", "clone",
                     "detach", "to", "double", "__class__", "__torch_function__"],
    "torch.testing": ["assert_close"],
    "numpy": ["allclose", "isclose", "array_equal", "asarray", "abs", "max", "all"],
    "numpy.testing": ["assert_allclose", "assert_array_equal", "assert_equal"],
    "checker.helpers": None,  # every public function of the module
}


_guarded_attrs: list[tuple[Any, str, Any]] | None = None
_MISSING = object()


def _guarded_owner_attrs() -> list[tuple[Any, str, Any]]:
    """The (owner, attribute, namespace) triples to guard, resolved once per process.

    ``namespace`` is the class's own ``__dict__`` for an attribute a class defines itself
    (read there, a classmethod is the same object each time), else None (read with getattr).
    """
    global _guarded_attrs
    if _guarded_attrs is None:
        triples = []
        for modname, attrs in GUARDED.items():
            try:
                owner = sys.modules.get(modname) or (
                    resolve(modname)[2] if "." in modname else importlib.import_module(modname)
                )
            except Exception:  # module not importable here: nothing to guard
                continue
            names = attrs if attrs is not None else [a for a in vars(owner) if not a.startswith("_")]
            own = owner.__dict__ if isinstance(owner, type) else None
            triples.extend((owner, attr, own if own is not None and attr in own else None)
                           for attr in names)
        _guarded_attrs = triples
    return _guarded_attrs


class TamperGuard:
    """Snapshot the comparison machinery; on exit, restore anything replaced and fail loudly.

    Entered around every call into the learner's code, so both halves are single passes."""

    def __enter__(self) -> TamperGuard:
        self.items = [
            (owner, attr, ns, value, getattr(value, "__code__", None))
            for owner, attr, ns in _guarded_owner_attrs()
            if (value := ns.get(attr, _MISSING) if ns is not None
                else getattr(owner, attr, _MISSING)) is not _MISSING
        ]
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        changed = []
        for owner, attr, ns, value, code in [
            item for item in self.items
            if (item[2].get(item[1]) if item[2] is not None else getattr(item[0], item[1], None))
            is not item[3] or (item[4] is not None and item[3].__code__ is not item[4])
        ]:
            now = ns.get(attr) if ns is not None else getattr(owner, attr, None)
            if now is not value:
                if ns is None and isinstance(owner, type) and attr in owner.__dict__:
                    delattr(owner, attr)  # it was inherited: unshadow it
                if getattr(owner, attr, None) is not value:
                    setattr(owner, attr, value)
                changed.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            else:
                value.__code__ = code
                changed.append(f"{getattr(owner, '__name__', owner)}.{attr}.__code__")
        if changed:
            raise TamperError(
                "Your code replaced " + ", ".join(changed) + ", which the checks use to judge "
                "results. The originals are back; remove the patching and solve the exercise."
            )
        return False


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
        from checker.contracts import call_guarded  # inputs unchanged, global state restored

        return call_guarded(self.__name__, self._func, args, kwargs,
                            lambda: self._invoke(*args, **kwargs))

    def _invoke(self, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._impl.rules():
                return self._func(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit) as exc:
            raise EscapeAttempt.from_exc(exc, f"`{self.__name__}`") from None

    def __repr__(self) -> str:
        return f"<learner function {self.__name__}>"
