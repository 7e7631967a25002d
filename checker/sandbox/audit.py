"""The audit hook (PEP 578): what learner code may not do, whatever route it takes in Python.

``install`` adds one hook to the interpreter before any learner code loads; an audit hook
cannot be removed. The hook refuses an event, by raising :class:`Refused` in the code that
caused it, when learner code is running: while a rules window is open (its import and every
call; every thread counts, since a thread the learner started runs learner code), or when
the code that caused the event is the learner's own (a ``__del__`` or ``__eq__`` the judge
calls outside a window). Outside that, the judge, torch, numpy and pytest are untouched.

Events refused (as CPython 3.10-3.13 raise them; see the README's table):

- processes: ``os.system``, ``os.exec``, ``os.posix_spawn``, ``os.spawn``, ``os.fork``,
  ``os.forkpty``, ``subprocess.Popen`` (unless the kata allows processes); ``os.kill``,
  ``os.killpg``, ``signal.pthread_kill``; ``resource.setrlimit``, ``resource.prlimit``
- the interpreter: ``sys.settrace``, ``sys.setprofile``, ``sys._settraceallthreads``,
  ``sys._setprofileallthreads``, ``sys.monitoring.register_callback``, ``sys.addaudithook``
  (always), ``gc.get_objects``, ``gc.get_referrers``,
  ``gc.get_referents``, every ``ctypes.*`` event, ``code.__new__`` from learner code
- frames: ``sys._getframe``, ``sys._getframemodulename``, ``sys._current_frames`` and ``object.__getattr__`` (frame
  attributes of tracebacks, generators, coroutines, frames) when learner code asks, directly
  or through ``inspect``/``traceback``; ``object.__setattr__`` (``__code__``, ``__defaults__``)
  of a function the integrity snapshot holds
- files: ``open`` for writing, ``os.remove``, ``os.rename``, ``os.replace``, ``os.rmdir``,
  ``os.mkdir``, ``os.chmod``, ``os.chown``, ``os.link``, ``os.symlink``, ``os.truncate``,
  ``os.utime``, ``shutil.rmtree`` anywhere but the run's scratch folder; ``os.chdir``;
  ``mmap.__new__`` of anonymous memory (shared: ``RLIMIT_DATA`` would not count it);
  ``open`` for reading of the checker's checks, mistakes and the reference solutions
- imports: ``import`` of the checker, pytest, _pytest and pluggy packages (an import of a
  module already loaded raises no event: checker.sandbox.forbid refuses those by name)
"""

from __future__ import annotations

import _thread
import os
import sys
import types
from collections.abc import Callable

from checker.sandbox.forbid import JUDGE_PACKAGES
from checker.sandbox.integrity import Snapshot, tamper_error


class Refused(PermissionError):
    """An operation that learner code may not perform (refused by the audit hook)."""


_PROCESSES = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
              "subprocess.Popen", "os.startfile")
_ALWAYS = {
    **dict.fromkeys(("os.kill", "os.killpg", "signal.pthread_kill"), "sending signals"),
    **dict.fromkeys(("resource.setrlimit", "resource.prlimit"), "changing resource limits"),
    **dict.fromkeys(("sys.settrace", "sys.setprofile", "sys._settraceallthreads",
                     "sys._setprofileallthreads", "sys.monitoring.register_callback"),
                    "tracing or profiling the interpreter"),
    **dict.fromkeys(("gc.get_objects", "gc.get_referrers", "gc.get_referents"),
                    "walking the garbage collector's objects"),
    "os.chdir": "changing the working directory",
}
_FRAMES = {"sys._getframe": "frame introspection", "sys._getframemodulename": "frame introspection",
           "sys._current_frames": "reading the threads' frames",
           "object.__getattr__": "reading frame and code internals",
           "object.__setattr__": "replacing the code of a function the judge relies on",
           "code.__new__": "making code objects"}
_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_globals",
                          "f_locals", "f_builtins", "f_code", "gi_code", "cr_code", "ag_code"})
_PATHS = ("os.remove", "os.rename", "os.replace", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
          "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.rmtree")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CONTROL = "checker.sandbox.control"


def _make_hook(controls: frozenset) -> Callable[[str, tuple], None]:
    """The hook, holding its state in its closure (nothing here stores a way to reach it).

    Everything it calls is bound here, before learner code loads: the builtins, the os
    functions, copies of this module's tables, the snapshot's own ``changes``. Learner code
    that rebinds any of them later (``builtins.getattr``, a name of this module reached
    through ``sys.modules``) does not change what the hook does; the integrity snapshot then
    names the change.

    It runs for every audited event of the process, so the frequent ones that are never
    refused return first, before anything else is looked at: reads of a function's
    ``__code__`` and other non-frame attributes, ``id()``, and code swaps of functions that
    are not the judge's (the rules swap torch's). A control event (a rules window opening or
    closing) then costs the caller check and a few assignments."""
    import inspect
    import traceback

    helpers = frozenset({inspect.__file__, traceback.__file__})
    state: dict = {"scratch": "", "learner": frozenset(), "sealed": (), "run": None}
    depth = 0  # open rules windows
    processes = False  # whether the innermost window allows starting processes
    changes: Callable[[bool], list[str]] | None = None  # the snapshot's comparison
    functions: frozenset = frozenset()  # the judge's functions, whose code may not be swapped
    busy: set = set()  # the threads running the hook now (its own events are not judged)
    get_ident, getframe = _thread.get_ident, sys._getframe
    isinstance_, str_, len_, any_, all_, bool_, max_, int_ = (
        isinstance, str, len, any, all, bool, max, int)
    tuple_, frozenset_, bytes_, type_ = tuple, frozenset, bytes, type
    function_type = types.FunctionType
    abspath, fsdecode, fspath_type, sep = os.path.abspath, os.fsdecode, os.PathLike, os.sep
    always, frames, frame_attrs = dict(_ALWAYS), dict(_FRAMES), frozenset(_FRAME_ATTRS)
    processes_events, paths, write_flags, control_event = _PROCESSES, _PATHS, _WRITE_FLAGS, _CONTROL
    judge_packages, refused, snapshot_of, error_of = (
        frozenset(JUDGE_PACKAGES), Refused, Snapshot, tamper_error)

    def path_of(arg: object) -> str | None:
        if isinstance_(arg, int_):
            return None  # a file descriptor: it was opened (and judged) before
        try:
            return abspath(fsdecode(arg))
        except TypeError:
            return None

    def learner_caller() -> bool:
        frame = getframe(3)  # the hook, the check below, then the code that caused the event
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename not in helpers:
                return filename in state["learner"]
            frame = frame.f_back
        return False

    def inside(path: str | None, roots) -> bool:
        return path is not None and any_(path == r or path.startswith(r + sep) for r in roots)

    def verify(near_only: bool = False) -> None:
        if changes is not None:
            changed = changes(near_only)
            if changed:
                raise error_of(changed)

    def judge(event: str, args: tuple) -> str | None:
        """Why ``event`` is refused now, or None."""
        if event in frames:  # (the hook lets through only frame reads and the judge's functions)
            return frames[event] if learner_caller() else None
        active = depth > 0
        if event == "open":
            path = path_of(args[0])
            flags = args[2] if len_(args) > 2 and isinstance_(args[2], int_) else 0
            if flags & write_flags:
                if inside(path, (state["scratch"],)):
                    return None
                if not (active or learner_caller()):
                    if inside(path, (state["run"],)):
                        verify()  # the report is written only by an untouched judge
                    return None
                return f"writing {path} (only the scratch folder {state['scratch']} is writable)"
            if inside(path, state["sealed"]) and (active or learner_caller()):
                return f"reading the checker's own files ({path})"
            return None
        if event in paths:
            named = [path_of(a) for a in args[:2] if isinstance_(a, str_ | bytes_ | fspath_type)]
            if all_(inside(p, (state["scratch"],)) for p in named) or not (active or learner_caller()):
                return None
            return f"{event} on {named[0]} (only the scratch folder is writable)"
        if event == "import":
            top = str_(args[0]).partition(".")[0]
            if top in judge_packages and (active or learner_caller()):
                return f"importing {args[0]} (the judge's own packages)"
            return None
        if event == "compile":
            if (active or learner_caller()) and len_(args) > 1 and learner_caller():
                state["learner"] = state["learner"] | {fsdecode(args[1])}
            return None
        if event == "mmap.__new__":  # (fileno, length, access, offset); -1: anonymous
            if args[0] == -1 and (active or learner_caller()):
                return "mapping anonymous shared memory (outside the memory cap)"
            return None
        why = always.get(event)
        if why is None and event.startswith(processes_events) and not processes:
            why = "starting processes"
        if why is None and event.startswith("ctypes."):
            why = "calling native code through ctypes"
        if why is not None and (active or learner_caller()):
            return why
        return None

    def control(args: tuple) -> None:
        nonlocal depth, processes, changes, functions
        if getframe(2).f_code not in controls:
            raise refused("only the judge opens and closes the sandbox")
        op = args[0]
        if op == "enter":
            depth += 1
            processes = bool_(args[1])
        elif op == "leave":  # as the outermost window closes, the near comparison
            depth = max_(0, depth - 1)
            if not depth:
                verify(near_only=True)
        elif op == "verify":
            verify()
        elif op == "configure":
            learner, scratch, run, sealed = args[1:]
            state.update(learner=frozenset_({learner}), scratch=scratch, run=run,
                         sealed=tuple_(sealed))
        elif op == "snapshot" and changes is None:
            snapshot = snapshot_of(*args[1:])
            changes, functions = snapshot.changes, snapshot.functions

    def hook(event: str, args: tuple) -> None:
        if event == "object.__getattr__":
            if args[1] not in frame_attrs:
                return  # by far the most frequent event (every read of a function's __code__)
        elif event == "builtins.id":
            return  # frequent, and never refused
        elif event == "object.__setattr__":
            # a function's code or defaults swapped (the rules swap torch's): refused only for
            # the judge's own functions. A plain function is hashed by identity, never by a
            # metaclass's __hash__; anything else (a class) is not judged here.
            if type_(args[0]) is not function_type or args[0] not in functions:
                return
        elif event == "sys.addaudithook":
            raise refused("adding an audit hook is off-limits in kata code")
        me = get_ident()
        if me in busy:
            return  # an event of the hook's own (its frame reads)
        busy.add(me)
        try:
            if event == control_event:
                control(args)
                return
            why = judge(event, args)
        finally:
            busy.discard(me)
        if why is not None:
            raise refused(f"{why} is off-limits in kata code (the sandbox refused `{event}`)")

    return hook


_installed: list[bool] = []


def install() -> None:
    """Add the hook to this interpreter, once (it stays for the life of the process)."""
    if not _installed:
        sys.addaudithook(_make_hook(frozenset(f.__code__ for f in (
            configure, protect, enter, leave, verify))))
        _installed.append(True)


def configure(learner: str, scratch: str, run: str, sealed: tuple[str, ...]) -> None:
    """Name the learner's file, the run's scratch folder (the only place learner code may
    write), the run's folder (where the report goes: written only by an untouched judge),
    and the folders learner code may not read."""
    _audit(_CONTROL, "configure", os.path.abspath(learner), os.path.abspath(scratch),
           os.path.abspath(run), tuple(os.path.abspath(s) for s in sealed))


def protect(check_modules: tuple[str, ...]) -> None:
    """Take the integrity snapshot (once per process), before learner code first loads."""
    from checker.sandbox.integrity import judge_owners

    if not _installed or len(_installed) > 1:
        return  # no hook to hold it, or it holds one already (a warm process took it early)
    _audit(_CONTROL, "snapshot", *judge_owners(check_modules))
    _installed.append(True)


def enter(allow_processes: bool) -> None:
    """Learner code is about to run (a rules window opens)."""
    _audit(_CONTROL, "enter", allow_processes)


def leave() -> None:
    """Learner code has returned, or raised (the rules window closes). As the outermost
    window closes, the checker's own modules, the builtins and the guarded comparison
    functions must be as they were (TamperError): one control event does both."""
    _audit(_CONTROL, "leave")


def verify() -> None:
    """Everything the judge relies on must be as it was (TamperError)."""
    _audit(_CONTROL, "verify")


_audit = sys.audit
