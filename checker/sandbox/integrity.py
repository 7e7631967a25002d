"""Integrity of the judge: what the checks compare with must be what they imported.

Learner code runs in the judge's interpreter; an attribute it replaces is seen here, put
back, and fails the check.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from checker.sandbox.errors import TamperError
from checker.sandbox.forbid import resolve

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


def guarded_owner_attrs() -> list[tuple[Any, str, Any]]:
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
            for owner, attr, ns in guarded_owner_attrs()
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
