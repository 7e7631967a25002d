"""What the warm worker (checker.server) loads once, and what retires it: the modules every
check needs, imported before the first request; each shipped kata's check module and its rules
windows' plans, on its first request, so that every forked check process inherits them ready;
and the checker's files, whose change makes the worker exit for a fresh one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

PRELOAD = (
    "numpy", "torch", "torch._dynamo", "torch.optim", "torch.func", "torch.utils.data",
    "torch.testing", "torch.utils.flop_counter", "torch.utils.checkpoint", "torch.library",
    "torch.utils._python_dispatch", "torch._dynamo.testing",
    "pytest", "_pytest.config", "_pytest.main", "_pytest.python", "_pytest.runner",
    "_pytest.fixtures", "_pytest.assertion.rewrite", "_pytest.terminal", "pytest_timeout",
    "checker.plugin", "checker.helpers", "checker.learner", "checker.mistakes", "checker.armed",
    # what configuring pytest imports (beside its own plugins, see preload_modules), so that
    # no armed process imports anything to arm (few were left to import in a worker that had
    # already judged a run: arming stays about 60 ms of CPU, most of it pytest's own set-up)
    "checker.stuck", "_pytest._argcomplete", "faulthandler", "pdb", "readline", "numpy.testing",
    "sysconfig",
)


def preload_modules() -> None:
    """Import :data:`PRELOAD` and every plugin module pytest registers by default, so that
    an armed process (forked from the worker) imports nothing to configure pytest."""
    import importlib

    names = list(PRELOAD)
    with contextlib.suppress(Exception):
        from _pytest.config import default_plugins

        names += [f"_pytest.{plugin}" for plugin in default_plugins]
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def watched_files() -> dict[str, float]:
    """The checker package's own modules this process imported, with their mtimes."""
    here = Path(__file__).resolve().parent
    out = {}
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if f and Path(f).resolve().is_relative_to(here):
            with contextlib.suppress(OSError):
                out[f] = os.stat(f).st_mtime_ns
    return out


def stale(watched: dict[str, float]) -> bool:
    for f, mtime in watched.items():
        try:
            if os.stat(f).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def preimport_checks(req: dict) -> bool:
    """Import a shipped kata's check module here, once, so children inherit it ready.

    Check modules warm torch up at import (a first backward, torch.func, a dynamo compile:
    1-4 s that would otherwise be paid by every child). The worker runs with one intra-op
    thread, so this computation starts no OpenMP pool that a forked child could hang on.
    pytest in the child finds the module in sys.modules under the same name and reuses it
    (its asserts are not rewritten; checks state their failures in their own messages).
    The kata's rules windows are worked out here too, once (checker.sandbox.window), rather
    than by every armed process. Returns True when a module was imported.
    """
    import gc
    import importlib

    if req.get("catalog"):
        return False  # only the shipped catalog's checks live in checker.checks
    name = f"checker.checks.test_{req['kata']}"
    if name in sys.modules:
        return False
    try:
        importlib.import_module(name)
    except Exception:
        sys.modules.pop(name, None)  # the child will import it itself and report the error
        return False
    with contextlib.suppress(Exception):  # the child works it out itself, and reports a bad rule
        from checker.catalog import load_catalog
        from checker.sandbox.window import prepare_rules

        prepare_rules(load_catalog().get(req["kata"]).rules)  # the windows' plans (50-70 ms)
    gc.collect()
    gc.freeze()
    return True
