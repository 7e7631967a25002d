"""The pytest plugin of an armed check process (see checker.worker).

An armed process has configured pytest and collected a kata's checks before the learner
saved; it keeps its share of the checks, runs their prepare hooks, and blocks until the
worker says which file to judge.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import pytest

from checker.plugin import protect
from checker.report import check_id
from checker.run_state import check_seed, exercise_of


def share(items: list, index: int, bins: int, costs: dict[str, tuple[float, float]]) -> list:
    """Process ``index``'s share of ``items`` when ``bins`` processes split them.

    ``costs`` maps a check's id to its (run, prepare) seconds in earlier runs. The checks
    with prepare work are dealt first, longest prepare first, each to the process with the
    least of it (so every process is armed about as soon); then the others, longest run
    first, each to the process with the least run time (so the verdict comes as soon).
    """
    if bins <= 1:
        return list(items)
    ids = [check_id(item.nodeid) for item in items]
    known = sorted(costs[i][0] for i in ids if i in costs)
    default = known[len(known) // 2] if known else 0.02
    run = [costs[i][0] if i in costs else default for i in ids]
    prep = [costs[i][1] if i in costs else 0.0 for i in ids]
    arming, loads = [0.0] * bins, [0.0] * bins
    owner: dict[int, int] = {}
    prepared = sorted((i for i in range(len(items)) if prep[i] > 0), key=lambda i: (-prep[i], i))
    for i in prepared:
        b = min(range(bins), key=lambda b: (arming[b], loads[b], b))
        owner[i] = b
        arming[b] += prep[i]
        loads[b] += run[i]
    for i in sorted((i for i in range(len(items)) if i not in owner), key=lambda i: (-run[i], i)):
        b = min(range(bins), key=lambda b: (loads[b], b))
        owner[i] = b
        loads[b] += run[i]
    return [item for i, item in enumerate(items) if owner[i] == index]


class ArmedRun:
    """pytest plugin of an armed process: keep a share of the checks, prepare, wait for go."""

    def __init__(self, pipe: int, index: int, bins: int, costs: dict[str, tuple[float, float]],
                 only: str | None = None):
        self.pipe, self.index, self.bins, self.costs = pipe, index, bins, costs
        self.only = only  # the exercise the next run will likely judge alone: prepare only its checks

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items: list) -> None:
        keep = share(items, self.index, self.bins, self.costs)
        if len(keep) != len(items):
            kept = set(map(id, keep))
            config.hook.pytest_deselected(items=[i for i in items if id(i) not in kept])
            items[:] = keep

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session):
        import gc

        prepared = self._prepare(session)
        protect(session)  # the integrity snapshot, before the save rather than after
        gc.collect()
        gc.freeze()  # what arming built stays out of the collector's way during the run
        ready = time.time()
        go = self._wait()
        # a request that came before this process was ready waited for it: say how long
        wait = max(0.0, ready - float(go.get("sent", ready)))
        self._go(session.config, go, {"wait": round(wait, 4), "prepared": prepared})
        yield

    def _prepare(self, session) -> dict[str, float]:
        """Run each check module's ``kata_warm`` (given the names of the checks this process
        runs) and the ``kata_prepare`` hooks of the kept checks as each check will start: with
        its rng, the global generators seeded alike, and its parameters. Returns the seconds
        each prepare hook took, by check id."""
        import numpy as np

        from checker.seeding import seed_everything

        kept: dict[str, set[str]] = {}  # the checks this process runs, by module
        for item in session.items:
            module = getattr(item, "module", None)
            if module is not None:
                kept.setdefault(module.__name__, set()).add(getattr(item, "originalname", item.name))
        warmed, took = set(), {}
        for item in session.items:
            module = getattr(item, "module", None)
            warm = getattr(module, "kata_warm", None)
            if warm is not None and module.__name__ not in warmed:
                warmed.add(module.__name__)
                with contextlib.suppress(Exception):
                    warm(kept[module.__name__])
            prepare = getattr(getattr(item, "function", None), "kata_prepare", None)
            if prepare is not None and self.only and exercise_of(item) != self.only:
                prepare = None  # a guess: were it wrong, the check computes its own reference
            if prepare is not None:
                seed = check_seed(session.config, item.nodeid)
                seed_everything(seed)
                params = getattr(getattr(item, "callspec", None), "params", {})
                start = time.perf_counter()
                with contextlib.suppress(Exception):  # the check itself will meet the problem
                    prepare(np.random.default_rng(seed), **params)
                took[check_id(item.nodeid)] = round(time.perf_counter() - start, 4)
        return took

    def _wait(self) -> dict:
        with os.fdopen(self.pipe, "rb") as pipe:
            line = pipe.readline()
        if not line:  # the set was discarded (or the worker is gone): leave quietly
            os._exit(0)
        return json.loads(line)

    def _go(self, config, go: dict, armed: dict) -> None:
        import random

        from checker.limits import limit_resources, output_to
        from checker.plugin import begin_run

        limit_resources(int(go["memory_mb"]))
        sys.stdout.flush()
        sys.stderr.flush()
        output_to(go["output"])
        os.chdir(go["cwd"])
        from checker.launch import PROGRESS_TTY

        os.environ.pop(PROGRESS_TTY, None)  # the requesting command's terminal, not the worker's
        if go.get("tty"):
            os.environ[PROGRESS_TTY] = go["tty"]
        random.seed()  # every check reseeds from its own seed; nothing inherits the worker's
        begin_run(config, impl=go["impl"], seed=int(go["seed"]), report=go["report"],
                  diagnose=bool(go["diagnose"]), diagnose_budget=float(go["diagnose_budget"]), only=go.get("only"),
                  armed=armed)
