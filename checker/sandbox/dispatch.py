"""A kata's rules at PyTorch's dispatcher: forbidden operators, "no torch", "no autograd engine".

While learner code runs (its import and every call; see ``checker.sandbox.window.rules_window``), two
modes sit on the dispatcher's mode stacks:

- a ``TorchFunctionMode`` sees every call into torch's Python API by name, before composite
  operators decompose: ``torch.X``, ``Tensor.X``, ``torch.ops.aten.X``,
  ``torch._C._VariableFunctions.X``, ``torch._C.TensorBase.X`` all arrive as one call;
- a ``TorchDispatchMode`` sees every operator that actually executes, however it was reached:
  fused kernels, operators called inside other operators, out= and in-place overloads, and the
  backward formulas the autograd engine runs.

A kata declares (``[kata.rules]`` in the catalog) the aten operators that implement what it
forbids (``ops``); an operator is refused under every overload and in its in-place and
``_copy`` variants, and so is every Python implementation torch ships for it (its
decompositions, ``torch._refs`` reference and meta function) and, in such a kata, every
``prims`` operator (only ``torch._refs``/``torch._prims`` reach those). ``forbid_imports =
["torch"]`` refuses every torch operator, however torch was reached. ``autograd = false``
refuses the autograd engine structurally: an operator that executes inside a graph task
(``torch._C._current_graph_task_id() != -1``) is refused, whatever started the engine.

The checks' own code is unaffected: the modes are off outside learner calls, and a check that
hands the learner an object which must do what the learner may not (the vjp kata's
``backward(v)``, which runs the engine) runs it under :func:`judge_code`, and the learner's
callbacks inside it under :func:`learner_code`.

Printing a tensor works as everywhere: torch's formatter takes the modes off to format, so it
runs with the rules off (a plain tensor's printing runs none of the learner's code).
Switching the modes off from learner code is refused too: popping them, ``_DisableTorchDispatch``
and the dispatch-key guards raise while a window is open, an operator that executes with
``__torch_function__`` switched off is refused, and the stacks are checked when the window closes
(the stand-ins are in checker.sandbox.switches).

Not covered: native code calling kernels directly; Python that computes an answer with no
torch operator at all (only the helpers a kata lists in ``forbid`` are refused); calling a
graph node yourself (``y.grad_fn(v)``), which is not the engine; and a hook the learner puts
on a graph that the checks' own code then runs backward through, under :func:`judge_code`.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

from checker.catalog import Rules
from checker.sandbox.errors import ForbiddenAPI
from checker.sandbox.forbid import _raiser_code, _swappable, forbidden_message
from checker.sandbox.switches import switched, switches

_DUNDERS = {"__matmul__": "matmul", "__rmatmul__": "matmul", "__imatmul__": "matmul"}
# Where torch keeps Python implementations of its operators, by the operator's name.
_PY_IMPL_MODULES = ("torch._refs", "torch._refs.nn.functional", "torch._refs.linalg",
                    "torch._refs.special", "torch._decomp.decompositions")


def canonical(name: str) -> str:
    """'aten::unsqueeze_.default' -> 'unsqueeze': one name for an operator's overloads and its
    in-place, out= and ``_copy`` variants."""
    name = name.split("::")[-1].split(".")[0]
    name = _DUNDERS.get(name, name)
    if not name.startswith("__"):
        name = name.removesuffix("_") if not name.endswith("__") else name
        name = name.removesuffix("_copy")
    return name


def _label(func: Any) -> str:
    """How the learner reached ``func``: torch.ops.aten.mm.default, Tensor.unfold, torch.mm."""
    import torch

    if isinstance(func, torch._ops.OpOverload):
        return f"torch.ops.{func.namespace}.{func.__name__}"
    if isinstance(func, torch._ops.OpOverloadPacket):
        return f"torch.ops.{func._qualified_op_name.replace('::', '.')}"
    name = getattr(func, "__name__", repr(func))
    if getattr(func, "__objclass__", None) is not None or getattr(func, "__self__", None) is not None:
        return f"Tensor.{name}"
    module = getattr(func, "__module__", None) or "torch"
    return f"{module.replace('torch._C._VariableFunctions', 'torch')}.{name}"


def _op_name(func: Any) -> str:
    import torch

    if isinstance(func, torch._ops.OpOverload | torch._ops.OpOverloadPacket):
        return canonical(func._qualified_op_name if hasattr(func, "_qualified_op_name")
                         else func.name())
    return canonical(getattr(func, "__name__", ""))


class Policy:
    """What one kata refuses at the dispatcher, and whether a window of it is on right now.

    Both modes ask it about every call and operator, so what depends only on the callable is
    worked out once per callable (``_verdicts``); what depends on the moment (inside a backward
    pass? the function mode still in place?) is two or three C calls."""

    def __init__(self, rules: Rules):
        import torch

        self.rules = rules
        self.ops = frozenset(canonical(op) for op in rules.ops)
        self.no_torch = "torch" in rules.forbid_imports
        self.no_autograd = not rules.autograd
        self.on = False
        self.in_function_mode = 0  # > 0 while the function mode handles a call
        self.function_mode_live: Callable[[], bool] = lambda: True
        self._verdicts: dict[Any, str] = {}  # callable -> refusal message, "" when allowed
        self._graph_task = torch._C._current_graph_task_id

    @property
    def active(self) -> bool:
        return bool(self.ops) or self.no_torch or self.no_autograd

    def _why(self) -> str:
        return f": {self.rules.explain}" if self.rules.explain else ""

    def check_call(self, func: Any) -> None:
        """A call into torch's API by name (from the function mode)."""
        try:
            message = self._verdicts.get(func)
        except TypeError:  # an unhashable callable: judged every time
            message = self._verdict(func, _op_name(func))
        if message is None:
            message = self._verdicts[func] = self._verdict(func, _op_name(func))
        if message:
            raise ForbiddenAPI(message)
        if self.no_autograd and self._graph_task() != -1:
            raise ForbiddenAPI(self._engine_message(func))

    def check_op(self, func: Any) -> None:
        """An operator about to execute (from the dispatch mode)."""
        try:
            message = self._verdicts.get(func)
        except TypeError:  # an unhashable callable: judged every time
            message = self._verdict(func, canonical(func.__name__))
        if message is None:
            message = self._verdicts[func] = self._verdict(func, canonical(func.__name__))
        if message:
            raise ForbiddenAPI(message)
        if self.no_autograd and self._graph_task() != -1:
            raise ForbiddenAPI(self._engine_message(func))
        if self.ops and not self.in_function_mode and not self.function_mode_live():
            raise ForbiddenAPI(
                f"`{_label(func)}` ran with the kata's __torch_function__ mode switched off "
                f"(popped, or torch._C.DisableTorchFunction): switching off the kata's rules is "
                f"off-limits{self._why()}")

    def _verdict(self, func: Any, name: str) -> str:
        """Why ``func`` is refused whenever it runs, or "" when it is allowed."""
        import torch

        label = _label(func)
        if self.no_torch:
            return (f"`{label}` is torch, and torch is off-limits in this kata however it is "
                    f"reached (imported, found in sys.modules or handed in){self._why()}")
        if self.ops and isinstance(func, torch._ops.OpOverload) and func.namespace == "prims":
            return (f"`{label}` is off-limits in this kata: torch's Python reference "
                    f"implementations (torch._refs, torch._prims) stand in for the operators{self._why()}")
        if name in self.ops:
            route = "" if label.endswith(f".{name}") else f" (the operator aten::{name})"
            return forbidden_message(label, self.rules).replace(
                " is off-limits", f"{route} is off-limits", 1)
        return ""

    def _engine_message(self, func: Any) -> str:
        return (f"the autograd engine is off-limits in this kata: `{_label(func)}` ran inside a "
                f"backward pass, however it was started (backward, autograd.grad, torch.func, the "
                f"engine object){self._why()}")


def _modes(policy: Policy) -> tuple[Any, Any]:
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    class RulesFunctionMode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if policy.on and _open:  # (a mode outliving its window judges nothing)
                policy.check_call(func)
            policy.in_function_mode += 1
            try:
                return func(*args, **(kwargs or {}))
            finally:
                policy.in_function_mode -= 1

    class RulesDispatchMode(TorchDispatchMode):
        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False  # no torch.compile here: keep __torch_dispatch__ unwrapped (no lazy
            # import of torch._dynamo, seconds long, on the first operator)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if policy.on and _open:
                policy.check_op(func)
            return func(*args, **(kwargs or {}))

    return RulesFunctionMode(), RulesDispatchMode()


def _python_impls(ops: frozenset[str]) -> list[tuple[types.FunctionType, str]]:
    """(function, operator) for the Python functions torch ships that implement one of ``ops``."""
    from torch._decomp import global_decomposition_table

    found: dict[int, tuple[types.FunctionType, str]] = {}

    def add(obj: Any, op: str) -> None:
        inner = _swappable(obj)
        if inner is not None:
            found[id(inner)] = inner, op

    for table in global_decomposition_table.values():
        for op, fn in table.items():
            if canonical(op.name()) in ops:
                add(fn, canonical(op.name()))
    for modname in _PY_IMPL_MODULES:
        module = sys.modules.get(modname)
        for name in ops:
            for attr in (name, f"{name}_", f"{name}_copy"):
                if module is not None and attr in vars(module):
                    add(vars(module)[attr], name)
    return list(found.values())


class _Plan:
    """Everything a window of one policy changes, worked out once per process."""

    def __init__(self, rules: Rules):
        self.policy = Policy(rules)
        self.function_mode, self.dispatch_mode = _modes(self.policy)
        self.py_impls = [
            (fn, _raiser_code(forbidden_message(
                f"{fn.__module__}.{fn.__qualname__}", rules).replace(
                " is off-limits", f" (torch's Python implementation of aten::{op}) is off-limits", 1)))
            for fn, op in _python_impls(self.policy.ops)]
        self.switches = switches(self.policy, self.function_mode, self.dispatch_mode)


_MISSING = object()
_PLANS: dict[Rules, _Plan | None] = {}
_open: list[_Plan] = []  # the plan of the window that is open, if any


def _plan(rules: Rules) -> _Plan | None:
    if rules not in _PLANS:
        _PLANS[rules] = _Plan(rules) if Policy(rules).active else None
    return _PLANS[rules]


def prepare(rules: Rules) -> None:
    """Work out a kata's window ahead of its first call, and open one (an armed process does it
    before it forks a run, so a run starts with the modes' code paths warm)."""
    if _plan(rules) is not None and not _open:
        import torch

        with dispatcher_rules(rules), judge_code():
            torch.ones(2).add(1).sum()


@contextlib.contextmanager
def dispatcher_rules(rules: Rules) -> Iterator[None]:
    """The kata's rules at the dispatcher, on until the block ends (nested windows share them)."""
    plan = _plan(rules)
    if plan is None:
        yield
        return
    if _open:  # a window inside a window (or inside judge_code): the same modes, switched on
        with switched(_open[-1].policy, True):
            yield
        return
    import torch

    base = torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()
    function_state = torch._C._get_torch_function_state()
    plan.policy.function_mode_live = lambda: (
        torch._C._is_torch_function_enabled()
        and torch._C._len_torch_function_stack() > base[0]
        and torch._C._get_function_stack_at(base[0]) is plan.function_mode)
    plan.function_mode.__enter__()
    plan.dispatch_mode.__enter__()
    saved = []
    for fn, raiser in plan.py_impls:
        saved.append((fn, "__code__", fn.__code__))
        fn.__code__ = raiser
    for owner, attr, stand_in in plan.switches:
        saved.append((owner, attr, vars(owner).get(attr, _MISSING)))
        setattr(owner, attr, stand_in)
    _open.append(plan)
    plan.policy.on = True
    try:
        yield
    finally:
        plan.policy.on = False
        _open.pop()
        for owner, attr, value in reversed(saved):
            if value is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, value)
        _close(plan, base, function_state)


def _close(plan: _Plan, base: tuple[int, int], function_state: Any) -> None:
    """Pop the two modes, and whatever learner code left above them; complain if they moved
    or if __torch_function__ was left switched off."""
    import torch

    left_off = torch._C._get_torch_function_state() != function_state
    if left_off:
        torch._C._set_torch_function_state(function_state)
    stacks = ((torch._C._len_torch_function_stack, torch._C._get_function_stack_at,
               torch._C._pop_torch_function_stack, plan.function_mode, base[0]),
              (torch._C._len_torch_dispatch_stack, torch._C._get_dispatch_stack_at,
               lambda: torch._C._pop_torch_dispatch_stack(None), plan.dispatch_mode, base[1]))
    moved = False
    for length, at, pop, mode, depth in stacks:
        moved |= length() <= depth or at(depth) is not mode
        while length() > depth + 1 or (length() == depth + 1 and at(depth) is not mode):
            pop()  # what learner code left above the mode (or in its place)
        if length() == depth + 1:
            mode.__exit__(None, None, None)
    if left_off:
        raise ForbiddenAPI(
            "your code switched off __torch_function__ (torch._C.DisableTorchFunction) and left "
            "it off, which is off-limits: it would switch off the kata's rules")
    if moved:
        raise ForbiddenAPI(
            "your code took the kata's rules off the dispatcher (a mode of the checks was popped "
            "or moved), which is off-limits; leave torch's mode stacks as you found them")


def judge_code() -> contextlib.AbstractContextManager[None]:
    """Run the checks' own code (an object handed to the learner) with the rules off."""
    return switched(_open[-1].policy, False) if _open else contextlib.nullcontext()


def learner_code() -> contextlib.AbstractContextManager[None]:
    """Run a learner callback, called from inside :func:`judge_code`, with the rules back on."""
    return switched(_open[-1].policy, True) if _open else contextlib.nullcontext()
