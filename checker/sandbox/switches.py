"""What learner code could use to take the dispatcher rules away, and how a window guards it.

checker.sandbox.dispatch installs these stand-ins while a window is on: the dispatcher's own
off-switches (they stay usable by the checks and by torch itself; a call that would take the
kata's modes out of the way raises), torch's tensor printing (it takes the modes off to
format, so it runs with the rules off) and thread starts (mode stacks are per thread: a
thread started in the window gets the modes too).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from checker.sandbox.errors import ForbiddenAPI
from checker.sandbox.forbid import resolve

# The dispatcher's own off-switches. They stay usable by the checks and by torch itself; while a
# window is on, a call that would take the kata's modes out of the way raises instead.
# (dotted name, kind): "call" refuses every call, "keys" a call naming a Python dispatch key,
# "pop" a pop of the checks' own mode, "state" a state other than ENABLED, "keyset" a redispatch
# that leaves the Python key out.
_SWITCHES = (
    ("torch._C._pop_torch_dispatch_stack", "pop"),
    ("torch._C._dispatch_tls_set_dispatch_key_excluded", "keys"),
    ("torch._C._dispatch_tls_set_dispatch_key_included", "keys"),
    ("torch._C._ExcludeDispatchKeyGuard.__init__", "keys"),
    ("torch._C._ForceDispatchKeyGuard.__init__", "call"),
    ("torch._C._DisableTorchDispatch.__init__", "call"),
    ("torch._C._RestorePythonTLSSnapshot.__init__", "call"),
    ("torch._C._set_torch_function_state", "state"),
    ("torch._C._set_skip_next_torch_function", "call"),
    ("torch._C._skip_one_hop_torch_function", "call"),
    ("torch._C._DispatchOperatorHandle.redispatch_boxed", "keyset"),
)

@contextlib.contextmanager
def switched(policy: Any, on: bool) -> Iterator[None]:
    was, policy.on = policy.on, on
    try:
        yield
    finally:
        policy.on = was



def _holders(objs: list[Any], where: tuple[str, ...] = ("torch",)) -> dict[int, list[tuple[Any, str]]]:
    """By ``id`` of each of ``objs``: every (module, attribute) of a loaded module named
    ``where``* that holds it. One pass over the modules for all of them (a pass over torch's
    thousand modules costs about 10 ms, and each run's first window pays it)."""
    wanted = {id(obj) for obj in objs}
    found: dict[int, list[tuple[Any, str]]] = {key: [] for key in wanted}
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(where):
            continue
        for attr, value in list(vars(module).items()):
            if id(value) in wanted:
                found[id(value)].append((module, attr))
    return found


def switches(policy: Any, function_mode: Any, dispatch_mode: Any) -> list[tuple[Any, str, Any]]:
    """(owner, attribute, stand-in) for ``policy`` (a checker.sandbox.dispatch.Policy, which
    imports this module) and the dispatcher's off-switches (see _SWITCHES), torch's
    printing (run with the rules off) and thread starts (the new thread gets the modes too:
    mode stacks are per thread)."""
    import _thread

    import torch

    python_keys = (torch._C.DispatchKey.Python, torch._C.DispatchKey.PythonTLSSnapshot)

    def names_python(args: tuple) -> bool:
        for arg in args:
            if isinstance(arg, torch._C.DispatchKey) and arg in python_keys:
                return True
            if isinstance(arg, torch._C.DispatchKeySet) and any(arg.has(k) for k in python_keys):
                return True
        return False

    tests: dict[str, Callable[[tuple], bool]] = {
        "call": lambda args: True,
        "keys": names_python,
        "pop": lambda args: (torch._C._len_torch_dispatch_stack() > 0 and torch._C._get_dispatch_stack_at(
            torch._C._len_torch_dispatch_stack() - 1) is dispatch_mode),
        "state": lambda args: bool(args) and args[-1] != torch._C._TorchFunctionState.ENABLED,
        "keyset": lambda args: not any(isinstance(a, torch._C.DispatchKeySet) and a.has(
            torch._C.DispatchKey.Python) for a in args),
    }

    def stand_in(dotted: str, real: Callable[..., Any], test: Callable[[tuple], bool]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if policy.on and test(args):
                raise ForbiddenAPI(
                    f"`{dotted.removesuffix('.__init__')}` would switch off the kata's rules at the "
                    f"dispatcher, which is off-limits while your code runs{policy._why()}")
            return real(*args, **kwargs)

        return guarded

    def printing(real: Callable[..., Any]) -> Callable[..., Any]:
        def formatted(self: Any, *args: Any, **kwargs: Any) -> Any:
            if type(self) not in (torch.Tensor, torch.nn.Parameter):  # a subclass runs its code
                return real(self, *args, **kwargs)
            with switched(policy, False):  # torch's printing takes the modes off to format
                return real(self, *args, **kwargs)

        return formatted

    def threaded(real: Callable[..., Any]) -> Callable[..., Any]:
        push_f, push_d = torch._C._push_on_torch_function_stack, torch._C._push_on_torch_dispatch_stack
        pop_f, pop_d = torch._C._pop_torch_function_stack, torch._C._pop_torch_dispatch_stack

        def start_new_thread(function: Callable[..., Any], args: tuple, kwargs: dict | None = None) -> Any:
            if not policy.on:
                return real(function, args, kwargs or {})

            def under_the_rules(*a: Any, **k: Any) -> Any:
                push_f(function_mode)
                push_d(dispatch_mode)
                try:
                    return function(*a, **k)
                finally:
                    pop_d(None)  # None: a user mode (not one of torch's infra modes)
                    pop_f()

            return real(under_the_rules, args, kwargs or {})

        return start_new_thread

    new_thread = threaded(_thread.start_new_thread)
    out = [(torch._tensor_str, "_str", printing(torch._tensor_str._str))]
    real_start = _thread.start_new_thread
    out += [(module, name, new_thread)
            for module, name in _holders([real_start], ("_thread", "threading"))[id(real_start)]]
    functions = []
    for dotted, kind in _SWITCHES:
        with contextlib.suppress(AttributeError, ValueError):
            owner, attr, real = resolve(dotted)
            guarded = stand_in(dotted, real, tests[kind])
            if isinstance(owner, type):
                out.append((owner, attr, guarded))
            else:
                functions.append((real, guarded))
    holders = _holders([real for real, _ in functions])
    for real, guarded in functions:
        out.extend((module, name, guarded) for module, name in holders[id(real)])
    return out
