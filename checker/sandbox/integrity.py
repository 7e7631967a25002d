"""Integrity of the judge: what no audit event sees (``sys.modules`` is a plain dict).

Before learner code first loads, a :class:`Snapshot` records, by identity, every attribute of
the modules and classes the judge relies on: pytest, _pytest, pluggy, pytest_timeout, the
checker (its check modules too), builtins, and the comparison functions and tensor methods
of numpy and torch. The judge binds what it uses at import time, so any difference later is
learner code's doing: it is put back, and the run fails with "your code changed X". The
snapshot lives inside the audit hook (checker.sandbox.audit), out of learner code's reach.
"""

from __future__ import annotations

import itertools
import operator
import sys
import types
from collections.abc import Callable
from typing import Any

from checker.sandbox.errors import TamperError
from checker.sandbox.forbid import JUDGE_PACKAGES

# Namespaces of the libraries the checks compare with, guarded by name. ``None``: all of it.
GUARDED = {
    "builtins": ["isinstance", "type", "abs", "max", "min", "all", "any", "len", "float", "int",
                 "round", "repr", "str", "tuple", "list", "sorted", "zip", "range", "bool", "id",
                 "getattr", "hasattr", "iter", "next", "sum", "map", "enumerate", "issubclass"],
    "torch": ["allclose", "isclose", "equal", "eq", "abs", "max", "all", "any", "isfinite",
              "is_tensor", "as_tensor", "tensor", "sub", "ne", "isnan", "isinf", "where",
              "testing", "Tensor", "float64", "result_type", "promote_types", "is_floating_point",
              "is_complex", "zeros_like", "ones_like", "broadcast_tensors", "stack", "cat"],
    "torch.Tensor": None,  # (torch._C.TensorBase and numpy.ndarray are immutable types)
    "torch.testing": ["assert_close"],
    "numpy": ["allclose", "isclose", "array_equal", "asarray", "array", "abs", "max", "min", "all",
              "any", "isnan", "isinf", "isfinite", "where", "argmax", "unravel_index", "ndarray",
              "testing", "float64", "issubdtype", "result_type", "errstate", "subtract", "equal"],
    "numpy.testing": ["assert_allclose", "assert_array_equal", "assert_equal"],
}
WHOLE = ("builtins", "torch.testing", "numpy.testing")
_IMMUTABLE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: no Python code can change such a class


# Module globals that pytest itself rebinds around every check (and that decide no verdict).
REBOUND = {"_pytest.assertion.util": ("_reprcompare", "_assertion_pass", "_config")}


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:i]))
        if module is not None:
            obj = module
            for name in parts[i:]:
                obj = getattr(obj, name)
            return obj
    return None


def judge_owners(check_modules: tuple[str, ...] = ()) -> list[tuple[str, Any, tuple | None]]:
    """(label, owner, names or None for all) of everything the judge relies on, resolved now:
    first the checker's own modules and classes (compared after every call into learner
    code), then the rest (compared after every check and before the report is written)."""
    near, far = [], []
    for name, module in list(sys.modules.items()):
        if module is None or not (name.split(".")[0] in JUDGE_PACKAGES or name in check_modules):
            continue
        bucket = near if name.startswith("checker") or name in check_modules else far
        bucket.append((name, module, None))
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == name and not (
                    value.__flags__ & _IMMUTABLE):
                bucket.append((f"{name}.{value.__qualname__}", value, None))
    for dotted, names in GUARDED.items():
        owner = _resolve(dotted)
        if owner is not None:
            near.append((dotted, owner, tuple(names) if names is not None else None))
    for dotted in WHOLE:  # all of these, once per check
        owner = _resolve(dotted)
        if owner is not None:
            far.append((dotted, owner, None))
    return near + far, len(near)


class Snapshot:
    """Every attribute of some namespaces, by identity; ``changes`` finds and undoes edits.

    ``changes`` is a closure made here, before learner code loads, over everything it calls
    (builtins, ``operator.is_``, itertools): learner code that later rebinds a builtin, a name
    of this module or this class does not change how it looks. Whoever holds the snapshot
    (the audit hook) keeps ``changes`` itself, never looking it up again."""

    def __init__(self, owners: list[tuple[str, Any, tuple | None]], near: int):
        entries = []
        for label, owner, names in owners:
            ns = vars(owner)
            skip = REBOUND.get(label, ())
            keys = tuple(k for k in (ns if names is None else names) if k in ns and k not in skip)
            entries.append([label, owner, ns, keys, tuple(map(ns.get, keys)),
                            isinstance(owner, type) and names is None,
                            tuple(ns.values()) if names is None else None, skip])
        self.functions = frozenset(  # whose code may not be swapped (checker.sandbox.audit)
            f for entry in entries for v in entry[4]
            if isinstance(f := getattr(v, "__func__", v), types.FunctionType))
        self.changes = _verifier(entries, near)


def _verifier(entries: list[list], near: int) -> Callable[[bool], list[str]]:
    """``changes(near_only=False)``: what was changed since the snapshot, each put back as it
    was. A module may gain attributes (a submodule imported later), and a class one that no
    base defines (``__slotnames__``, cached by pickling): those are taken in; a class
    attribute that shadows an inherited one is a change. First one pass in C over every
    value (the usual answer: nothing changed), then, only if that differs, entry by entry."""
    is_, all_, any_, map_, len_, list_, tuple_, zip_, range_, vars_ = (
        operator.is_, all, any, map, len, list, tuple, zip, range, vars)
    isinstance_, setattr_, delattr_, type_ = isinstance, setattr, delattr, type
    chain, flatten = itertools.chain, itertools.chain.from_iterable
    values_of = operator.methodcaller("values")
    missing = object()
    fast: dict[int, tuple] = {}

    def prepared(count: int) -> tuple:
        """For the first ``count`` entries, built once (until something changed): the live
        value views of the whole namespaces and their lengths, the getters and keys of the
        named ones, and every value they held, in the order compared."""
        views, lengths, getters, keys, values, named = [], [], [], [], [], []
        for _, _, ns, entry_keys, entry_values, _, quick, _ in entries[:count]:
            if quick is not None:  # a whole namespace: all its values, in order
                views.append(values_of(ns))
                lengths.append(len_(quick))
                values.extend(quick)
            else:
                getters.append(ns.get)
                keys.append(entry_keys)
                named.extend(entry_values)
        return tuple_(views), lengths, tuple_(getters), tuple_(keys), tuple_(values + named)

    def same(i: int) -> bool:
        """Entry ``i`` holds what the snapshot recorded (a whole namespace may have grown)."""
        _, _, ns, keys, values, _, quick, _ = entries[i]
        if quick is None:
            return all_(map_(is_, map_(ns.get, keys), values))
        return len_(ns) == len_(quick) and all_(map_(is_, values_of(ns), quick))

    def unchanged(count: int) -> bool:
        if cells is not None:  # the namespaces' version tags: only a namespace that changed
            now = list_(map_(tag_of, cells[:count]))  # (or was watched) is compared
            if now == tags[:count]:
                return True
            for i in range_(count):
                if now[i] != tags[i]:
                    if not same(i):
                        return False
                    tags[i] = now[i]
            return True
        ready = fast.get(count)
        if ready is None:
            ready = fast[count] = prepared(count)
        views, lengths, getters, keys, values = ready
        if list_(map_(len_, views)) != lengths:
            return False
        return all_(map_(is_, chain(flatten(views), flatten(map_(map_, getters, keys))), values))

    def put(owner: Any, key: str, value: Any) -> None:
        if isinstance_(owner, type_):
            setattr_(owner, key, value)
        else:
            vars_(owner)[key] = value

    def changes(near_only: bool = False) -> list[str]:
        count = near if near_only else len_(entries)
        if unchanged(count):
            return []
        changed = []
        for i in range_(count):
            if same(i):
                continue
            label, owner, ns, keys, values, whole_class, quick, skip = entries[i]
            for key, value in zip_(keys, values):
                if ns.get(key, missing) is not value:
                    changed.append(f"{label}.{key}")
                    put(owner, key, value)
            if whole_class:
                for key in [k for k in ns if k not in keys]:
                    if any_(key in vars_(base) for base in owner.__mro__[1:]):
                        changed.append(f"{label}.{key}")
                        delattr_(owner, key)
            if quick is not None:  # what it gained (and kept) is taken in, in its order
                if whole_class:
                    keys = tuple_(k for k in ns if k not in skip)
                entries[i] = [label, owner, ns, keys, tuple_(map_(ns.get, keys)), whole_class,
                              tuple_(values_of(ns)), skip]
        fast.clear()
        if cells is not None:
            tags[:] = map_(tag_of, cells)
        return changed

    cells = _tag_cells([entry[2] for entry in entries])
    tag_of = operator.attrgetter("value")
    tags = list_(map_(tag_of, cells)) if cells is not None else []
    return changes


def _tag_cells(namespaces: list) -> list | None:
    """A live view of each namespace's dict version tag (PEP 509: CPython 3.10-3.13 give a
    dict a new tag on every change; a watcher may also set low bits), read without a call
    into the dict, or None where this interpreter does not behave so (then every value is
    compared). A tag that moved only sends its namespace to the comparison by identity."""
    if sys.implementation.name != "cpython" or not (3, 10) <= sys.version_info[:2] <= (3, 13):
        return None
    import ctypes
    import gc

    offset = 2 * ctypes.sizeof(ctypes.c_void_p) + ctypes.sizeof(ctypes.c_ssize_t)

    def dict_of(ns: Any) -> dict:
        return ns if type(ns) is dict else gc.get_referents(ns)[0]  # a class's mappingproxy

    def cell(d: dict) -> Any:
        return ctypes.c_uint64.from_address(id(d) + offset)

    class Probe:
        pass

    probe = {"a": 1}
    of_probe, of_class = cell(probe), cell(dict_of(vars(Probe)))
    seen = [of_probe.value, of_probe.value]
    for change in (lambda: probe.__setitem__("a", 2), lambda: probe.update(b=3),
                   lambda: probe.pop("b")):
        change()
        seen.append(of_probe.value)
    before = of_class.value
    Probe.x = 1
    if seen[0] != seen[1] or len(set(seen[1:])) != 4 or of_class.value == before:
        return None
    return [cell(dict_of(ns)) for ns in namespaces]


def tamper_error(changed: list[str]) -> TamperError:
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return TamperError(
        f"Your code changed {shown}, which the judge relies on (your code replaced what the "
        "checks use to judge results). The originals are back; the run fails. Remove the "
        "patching and solve the exercise.")
