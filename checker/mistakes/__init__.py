"""Known-wrong implementations: each a plausible learner mistake naming its misconception.

A kata's mistakes live in ``checker/mistakes/<kata>.py``::

    from checker.mistakes import mistake

    @mistake("contiguous_strides", "Column-major order: the first dimension got stride 1.")
    def fortran_strides(shape):
        ...

The project's tests run every kata's checks with each mistake substituted for its exercise
(the solution supplies every other function) and require the exercise to fail. When a
learner's exercise fails, the same substitution tells which misconception matches.
This module must stay light: it may be imported by learner-side files (no torch import here).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_ATTR = "__kata_mistake__"


@dataclass(frozen=True)
class Mistake:
    exercise: str
    id: str
    misconception: str
    func: Callable[..., Any]
    module: str
    named: bool = True  # False: no input of the checks tells it from another mistake by
    # behaviour, so the diagnosis never names it; it is proven to fail all the same


def mistake(exercise: str, misconception: str, *,
            named: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as a known-wrong implementation of ``exercise``; ``named=False`` for
    one whose failure no input of the checks tells from another mistake's (see Mistake)."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, _ATTR, (exercise, misconception, named))
        return func

    return mark


def load_mistakes(module_name: str) -> list[Mistake]:
    """Every mistake defined in ``module_name``, in source order (empty if the module is absent)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return []
        raise
    found = []
    for name, value in vars(module).items():
        tag = vars(value).get(_ATTR) if isinstance(value, type) else getattr(value, _ATTR, None)
        if tag and getattr(value, "__module__", None) == module_name:
            found.append(Mistake(exercise=tag[0], id=name, misconception=tag[1], func=value,
                                 module=module_name, named=tag[2] if len(tag) > 2 else True))
    return found


def materialize(solution_source: str, m: Mistake) -> str:
    """A complete, self-contained implementation file: the solution with ``m`` standing in
    for its exercise.

    Learner code may not import the judge's packages, and a mistake file is judged as learner
    code, so the mistake's module is carried inside the file (see :func:`embed`).
    """
    import importlib
    import inspect

    module_source = inspect.getsource(importlib.import_module(m.module))
    return embed(solution_source, module_source, {m.exercise: m.id},
                 label=f"Known mistake {m.id}: {m.misconception}",
                 namespace_name="_known_" + m.module.rsplit(".", 1)[-1])


def embed(solution_source: str, module_source: str, names: dict[str, str], *,
          label: str, namespace_name: str) -> str:
    """The solution followed by ``module_source`` run in a namespace of its own (its helpers
    never shadow the solution's), with ``mistake`` a no-op and ``_solution_of`` answering with
    the solution's functions as they were before any swap; then each ``names`` key (an
    exercise) is bound to the module's object of the value's name. A judged file may not
    import the judge's packages, so whatever the module took from them comes from this shim.
    """
    import re

    # the shipped helpers come from the shim below; keep line numbers for tracebacks
    module_source = re.sub(r"(?m)^from checker\.mistakes import [^\n]*$", "", module_source)
    bindings = "".join(f"{exercise} = _kata_namespace[{obj!r}]\n"
                       for exercise, obj in names.items())
    return (
        f"{solution_source.rstrip()}\n\n\n"
        f"# {label}\n"
        "import types as _kata_types  # noqa: E402\n\n"
        "_kata_reference = _kata_types.SimpleNamespace(**dict(globals()))\n"
        "_kata_namespace = {\n"
        f"    '__name__': {namespace_name!r},\n"
        "    'mistake': lambda exercise, misconception, named=True: (lambda func: func),\n"
        "    '_solution_of': lambda name: _kata_reference,\n"
        "}\n"
        f"exec(compile({module_source!r}, '<embedded>', 'exec'), _kata_namespace)\n"
        f"{bindings}"
    )


_solutions: dict[str, Any] = {}


def _solution_of(kata_name: str) -> Any:
    """The reference solution module of a shipped kata, for mistakes that wrap it."""
    if kata_name not in _solutions:
        import importlib.util

        from checker.catalog import load_catalog

        path = load_catalog().get(kata_name).solution_path
        spec = importlib.util.spec_from_file_location(f"_kata_solution_{kata_name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _solutions[kata_name] = module
    return _solutions[kata_name]
