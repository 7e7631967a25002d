"""The checks' pytest plugin: loads the code under test, seeds every check, writes the report.

Run as ``python -m pytest -p checker.plugin --kata NAME --kata-impl PATH --kata-report OUT``
with plugin autoload disabled (the runner does this). Without ``--kata`` the plugin is inert.

Options (group "torch-katas"):
  --kata NAME          the kata whose checks run (its rules come from the catalog)
  --kata-catalog PATH  a catalog other than the shipped one
  --kata-impl PATH     the file under test (a learner's file, a stub, a solution, a mistake)
  --kata-seed N        the run's seed (random if absent); every check derives its own from it
  --kata-report PATH   where to write the JSON report
  --kata-diagnose      on failure, look for a known mistake that fails the same way

Markers: ``@pytest.mark.exercise("name")`` ties a check to one exercise of the kata.
Fixtures: ``impl`` (the code under test, see checker.learner.Impl), ``seed`` (this check's
seed), ``rng`` (a numpy Generator seeded with it). torch, numpy and random are seeded with
the check's seed before it runs.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
import zlib
from pathlib import Path

import pytest

REPORT_VERSION = 1
_STATE = pytest.StashKey[dict]()
_INDEX = pytest.StashKey[int]()  # a check's position in the whole collected session
_COUNTS = pytest.StashKey[dict]()  # calls into learner code per function, for the diagnosis
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]+")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torch-katas", "hidden kata checks")
    group.addoption("--kata", default=None, help="name of the kata whose checks run")
    group.addoption("--kata-catalog", default=None, help="catalog file (default: shipped)")
    group.addoption("--kata-impl", default=None, help="file under test")
    group.addoption("--kata-seed", type=int, default=None, help="seed for random inputs")
    group.addoption("--kata-report", default=None, help="write the JSON report here")
    group.addoption("--kata-diagnose", action="store_true", default=False,
                    help="name the known mistake that a failure matches")
    group.addoption("--kata-diagnose-budget", type=float, default=0.2,
                    help="seconds the diagnosis may add to one failing check")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exercise(name): the kata exercise this check judges")
    config.addinivalue_line("markers", "kata(name): the kata a check module belongs to")
    if not config.getoption("--kata", default=None):
        return
    from checker.catalog import load_catalog

    catalog_path = config.getoption("--kata-catalog")
    catalog = load_catalog(Path(catalog_path) if catalog_path else None)
    kata = catalog.get(config.getoption("--kata"))
    config.stash[_STATE] = {"kata": kata}
    begin_run(config, impl=config.getoption("--kata-impl") or str(kata.stub_path),
              seed=config.getoption("--kata-seed"), report=config.getoption("--kata-report"),
              diagnose=config.getoption("--kata-diagnose"),
              diagnose_budget=config.getoption("--kata-diagnose-budget"))


def begin_run(config: pytest.Config, *, impl: str | Path, seed: int | None, report: str | None,
              diagnose: bool, diagnose_budget: float, armed: dict | None = None) -> None:
    """Set what this run judges. pytest_configure calls it from the options; a warm worker's
    armed session (configured and collected before the learner saved) calls it again when
    the run is requested, before any check runs, with what arming took (``armed``: ``wait``,
    how long the request waited for the process; ``prepared``, seconds of each check's
    prepare hook), which the report passes on."""
    if seed is None:
        from checker.runner import random_seed

        seed = random_seed()
    config.option.kata_report = report
    config.option.kata_diagnose = diagnose
    _state(config).update({
        "seed": int(seed),
        "impl_path": Path(impl).resolve(),
        "results": {},
        "load_error": None,
        "started": time.perf_counter(),
        "diagnose_budget": diagnose_budget,
        "armed": armed or {"wait": 0.0, "prepared": {}},
    })


def _state(config: pytest.Config) -> dict | None:
    return config.stash.get(_STATE, None)


def pytest_report_header(config: pytest.Config) -> str | None:
    state = _state(config)
    if state is None:
        return None
    return f"torch-katas: kata={state['kata'].name} seed={state['seed']} impl={state['impl_path']}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for index, item in enumerate(items):  # before a warm worker splits them between processes
        item.stash[_INDEX] = index


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None:
        return
    # Load the file once up front: a file that cannot load fails every exercise the same way.
    from checker.learner import LearnerFileError, load_module

    try:
        load_module(state["impl_path"], state["kata"].rules)
    except LearnerFileError as exc:
        state["load_error"] = {"message": str(exc), "line": exc.line}
    except Exception as exc:  # a forbidden API at import time, and the like
        state["load_error"] = {"message": f"{type(exc).__name__}: {exc}", "line": None}


def check_id(nodeid: str) -> str:
    """A check's name in reports: its node id without the file ('test_x[True]')."""
    return nodeid.split("::")[-1]


def check_seed(config: pytest.Config, nodeid: str) -> int:
    """The seed of one check: the run's seed and the check's id, hashed."""
    state = _state(config)
    base = state["seed"] if state else 0
    return zlib.crc32(f"{base}:{nodeid}".encode()) & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators, as every check starts."""
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        if torch.cuda.is_available():
            torch.manual_seed(seed)
        else:  # the CPU generator is all there is: skip manual_seed's lazy per-device queueing
            torch.default_generator.manual_seed(seed)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    return check_seed(request.config, request.node.nodeid)


@pytest.fixture
def rng(seed: int):
    import numpy as np

    return np.random.default_rng(seed)


@pytest.fixture(autouse=True)
def _kata_seeded(request: pytest.FixtureRequest) -> None:
    if _state(request.config) is not None:
        seed_everything(check_seed(request.config, request.node.nodeid))


@pytest.fixture
def impl(request: pytest.FixtureRequest):
    state = _state(request.config)
    if state is None:
        pytest.skip("no --kata given: these checks run through `kata check`")
    if state["load_error"]:
        pytest.fail(state["load_error"]["message"], pytrace=False)
    from checker.learner import Impl, load_module

    module = load_module(state["impl_path"], state["kata"].rules)
    return Impl(module, state["kata"].rules)


def _exercise_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("exercise")
    return marker.args[0] if marker and marker.args else None


def _message(call: pytest.CallInfo, impl_path: Path) -> str:
    """What the learner reads for a failed check."""
    excinfo = call.excinfo
    if excinfo is None:
        return ""
    exc = excinfo.value
    if isinstance(exc, pytest.fail.Exception | pytest.skip.Exception):
        text = str(exc.msg if hasattr(exc, "msg") else exc)
        if text.startswith("Timeout"):  # pytest-timeout ended a check that ran too long
            return (f"{text.split(' from ')[0]}: this check ran past its time limit and was "
                    "stopped. Look for an infinite loop or a loop over far too many elements "
                    "in your code.")
        return text
    if isinstance(exc, AssertionError):
        text = str(exc)
        # A check's own message comes first; pytest's rewritten "assert ..." explanation
        # after it only repeats internals (object reprs), so it is dropped.
        head, sep, _ = text.partition("\nassert ")
        return _ADDRESS_RE.sub("0x?", head if sep and head.strip() else text) or "assertion failed"
    frames = [
        e for e in excinfo.traceback if Path(str(e.path)).resolve() == impl_path
    ]
    if isinstance(exc, NotImplementedError) and frames:
        return (
            f"not implemented yet: {exc or 'the stub still raises NotImplementedError'}. "
            "Replace the `raise NotImplementedError(...)` with your implementation."
        )
    where = ""
    if frames:
        last = frames[-1]
        source = str(last.statement).strip() if last.statement else ""
        where = f"\n  at {impl_path.name}:{last.lineno + 1}: {source}"
    return f"your code raised {type(exc).__name__}: {exc}{where}"


def _signature(exc: BaseException) -> str:
    """What two failures must share to be "the same mistake": the exception type and text
    (addresses masked). The learner's file name and line are deliberately not part of it."""
    text = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
    return _ADDRESS_RE.sub("0x?", text)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    state = _state(item.config)
    if state is None:
        return
    report = outcome.get_result()
    exercise = _exercise_of(item)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        entry = {
            "id": check_id(item.nodeid),
            "index": item.stash.get(_INDEX, 0),
            "outcome": report.outcome,
            "duration": round(report.duration, 4),
            "message": "" if report.passed else _message(call, state["impl_path"]),
            "diagnosis": [],
        }
        if report.skipped and call.excinfo is not None:
            entry["message"] = str(call.excinfo.value.msg if hasattr(call.excinfo.value, "msg") else call.excinfo.value)
        if (
            report.failed
            and report.when == "call"
            and exercise
            and item.config.getoption("--kata-diagnose")
        ):
            entry["diagnosis"] = _diagnose(item, exercise, _signature(call.excinfo.value), state)
        state["results"].setdefault(exercise or "?", []).append(entry)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if _state(item.config) is None or not item.config.getoption("--kata-diagnose"):
        yield
        return
    from checker.diagnosis import counting

    with counting() as counts:
        yield
    item.stash[_COUNTS] = dict(counts)


def _diagnose(item: pytest.Item, exercise: str, target: str, state: dict) -> list[dict]:
    """Name the known mistakes of ``exercise`` that the learner's code behaves like (see
    checker.diagnosis), the most specific first; none when none is proven to match."""
    from checker import diagnosis
    from checker.learner import Impl, load_module
    from checker.mistakes import load_mistakes

    kata = state["kata"]
    deadline = time.perf_counter() + state["diagnose_budget"]
    funcargs = getattr(item, "funcargs", None)
    if funcargs is None or "impl" not in funcargs:
        return []
    learner = funcargs["impl"]
    seed = check_seed(item.config, item.nodeid)

    def variant(func=None, label="the known mistake"):
        module = load_module(kata.solution_path, kata.rules)
        if func is not None:
            setattr(module, exercise, func)
        return Impl(module, kata.rules, label=label)

    mistakes = [m for m in load_mistakes(kata.mistakes_module) if m.exercise == exercise]
    reference = variant(label="the reference")
    trace, _ = diagnosis.run_check(item, reference, seed)
    failing = diagnosis.failing_input(trace, exercise, item.stash.get(_COUNTS, {}).get(exercise, 0))
    if failing is not None:  # the pool: the inputs of every check of this exercise
        pool = list(trace)
        for other in item.session.items:
            if other is not item and _exercise_of(other) == exercise:
                pool += diagnosis.run_check(other, reference, check_seed(item.config, other.nodeid))[0]
        found, unseen = diagnosis.by_behaviour(
            getattr(learner, exercise), getattr(reference.module, exercise),
            [diagnosis.Candidate(m.id, m.misconception, m.func) for m in mistakes],
            failing, pool, exercise, reference.rules, lambda: time.perf_counter() < deadline)
        if found:
            return [{"id": c.id, "misconception": c.misconception} for c in found]
        mistakes = [m for m in mistakes if m.id in {c.id for c in unseen}]
    # No output to compare (checks that drive learner classes, slips that show only later):
    # the same failure on this seed and on two more where the mistake fails.
    found = []
    for m in mistakes:
        impl, alike, tried = variant(m.func), 0, 0
        if diagnosis.run_check(item, impl, seed)[1] != target:
            continue
        while alike < 2 and tried < 4 and time.perf_counter() < deadline:
            tried += 1
            theirs = diagnosis.run_check(item, impl, seed + tried)[1]
            if theirs is not None:
                if diagnosis.run_check(item, learner, seed + tried)[1] != theirs:
                    break
                alike += 1
        if alike >= 2:
            found.append({"id": m.id, "misconception": m.misconception})
    return found


def summarize(exercise_names, results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per-exercise verdicts from the per-check entries (in collection order)."""
    exercises = {}
    for name in exercise_names:
        tests = sorted(results.get(name, []), key=lambda t: t.get("index", 0))
        failed = [t for t in tests if t["outcome"] == "failed"]
        if not tests:
            status = "missing"
        elif failed:
            status = "failed"
        elif all(t["outcome"] == "skipped" for t in tests):
            status = "skipped"
        else:
            status = "passed"
        first = failed[0] if failed else None
        exercises[name] = {
            "status": status,
            "message": first["message"] if first else (
                tests[0]["message"] if status == "skipped" else ""),
            "diagnosis": first["diagnosis"] if first else [],
            "duration": round(sum(t["duration"] for t in tests), 4),
            "checks": len(tests),
            "failed_checks": len(failed),
        }
    return exercises


def merge_reports(parts: list[dict]) -> dict:
    """One report from the reports of runs that split a session's checks between them."""
    results: dict[str, list[dict]] = {}
    for part in parts:
        for name, entries in part["results"].items():
            results.setdefault(name, []).extend(entries)
    first = parts[0]
    return {
        **first,
        "load_error": next((p["load_error"] for p in parts if p["load_error"]), None),
        "exercises": summarize(first["exercises"], results),
        "results": results,
        "unassigned": sorted({s for p in parts for s in p["unassigned"]}),
        "duration": max(p["duration"] for p in parts),
        "armed": {"wait": max(p["armed"]["wait"] for p in parts),
                  "prepared": {k: v for p in parts for k, v in p["armed"]["prepared"].items()}},
    }


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` to ``path`` whole or not at all (a reader never sees half a report)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None:
        return
    path = session.config.getoption("--kata-report")
    kata = state["kata"]
    strays = sorted(set(state["results"]) - set(kata.exercises))
    report = {
        "format_version": REPORT_VERSION,
        "kata": kata.name,
        "impl": str(state["impl_path"]),
        "seed": state["seed"],
        "load_error": state["load_error"],
        "exercises": summarize(kata.exercises, state["results"]),
        "results": state["results"],
        "unassigned": strays,
        "duration": round(time.perf_counter() - state["started"], 4),
        "armed": state["armed"],  # see checker.armed
    }
    if path:
        write_json(path, report)
