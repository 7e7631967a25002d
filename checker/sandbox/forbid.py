"""Forbidden callables, forbidden imports and process escapes, refused while learner code runs.

Each is a context manager that checker.sandbox.window opens around every call into the
learner's code.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import os
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

from checker.catalog import Rules
from checker.sandbox.errors import ForbiddenAPI


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
        f"    raise __import__('checker.sandbox.errors', fromlist=['_']).ForbiddenAPI({message!r})\n"
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


def forbid_plan(rules: Rules) -> list[tuple]:
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


@contextlib.contextmanager
def forbid_callables(rules: Rules) -> Iterator[None]:
    """Make every callable in ``rules.forbid`` raise ForbiddenAPI until the block ends.

    Enforcement is on the underlying object, so aliases (``from torch.optim import Adam``,
    ``getattr``, submodule paths) are caught as well: a Python function gets its code swapped
    (a decorated one: the function it wraps), a class its ``__init__``; an attribute
    (``torch.Tensor.T``, a property or a C getset descriptor) is replaced by a property whose
    read raises; anything else (builtins, C methods) is replaced where it is found.
    """
    undo: list[Callable[[], None]] = []
    try:
        for owner, attr, target, inner, raiser, blocked in forbid_plan(rules):
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
                if isinstance(owner, type) and attr not in owner.__dict__:  # inherited: unshadow it
                    undo.append(lambda o=owner, a=attr: delattr(o, a))
                else:
                    original = owner.__dict__[attr] if isinstance(owner, type) else target
                    undo.append(lambda o=owner, a=attr, v=original: setattr(o, a, v))
                attribute = isinstance(target, property | types.GetSetDescriptorType)
                setattr(owner, attr, property(blocked) if attribute else blocked)
        yield
    finally:
        for step in reversed(undo):
            step()


# The judge's own packages: learner code may never import them (checker.sandbox.audit refuses
# a first import; an import of a module already loaded raises no audit event, so it is refused
# here, by name).
JUDGE_PACKAGES = ("checker", "pytest", "_pytest", "pluggy", "pytest_timeout")


@contextlib.contextmanager
def forbid_imports(rules: Rules, filename: str) -> Iterator[None]:
    """Refuse imports of ``rules.forbid_imports`` and of the judge's packages issued from the
    learner's own file."""
    forbidden = (*rules.forbid_imports, *JUDGE_PACKAGES)
    real_import = builtins.__import__
    real_import_module = importlib.import_module

    def refuse(name: str) -> None:
        if name.split(".")[0] in JUDGE_PACKAGES:
            raise ForbiddenAPI(f"`import {name}` — the judge's own packages (checker, pytest, "
                               "pluggy) are off-limits in kata code.")
        names = ", ".join(rules.forbid_imports)
        raise ForbiddenAPI(
            f"`import {name}` — this kata forbids importing {names} in your file. {rules.explain}".rstrip()
        )

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level == 0 and name.split(".")[0] in forbidden:
            # A direct __import__("torch") passes no globals: judge by the calling frame.
            importer = globals if globals is not None else sys._getframe(1).f_globals
            if importer.get("__file__") == filename:
                refuse(name)
        return real_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name: str, package: str | None = None):
        caller = sys._getframe(1).f_globals
        if name.split(".")[0] in forbidden and caller.get("__file__") == filename:
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
