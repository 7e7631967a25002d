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
``@pytest.mark.needs_device("cuda")`` marks a check that can only run where that device is:
elsewhere it is decided at collection, before learner code loads, to be *not applicable
here*. It then neither runs nor counts: its exercise is judged by its other checks (none
left: the exercise fails, as one that nothing checked), and the report names it with why.
Fixtures: ``impl`` (the code under test, see checker.learner.Impl), ``seed`` (this check's
seed), ``rng`` (a numpy Generator seeded with it). torch, numpy and random are seeded with
the check's seed before it runs.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import pytest

from checker.printed import lines_of, recording
from checker.report import check_id, run_report, write_json
from checker.run_state import ALL, COUNTS, STATE, check_seed, exercise_of, not_applicable, state_of
from checker.sandbox.errors import TamperError
from checker.sandbox.session import seal, tampered
from checker.seeding import seed_everything
from checker.verdict import phase_problem, signature

_INDEX = pytest.StashKey[int]()  # a check's position in the whole collected session
_ENTRY = pytest.StashKey[dict]()  # a check's entry in the report, once it has one
_PRINTED = pytest.StashKey[tuple]()  # the last lines the check's call printed (checker.printed)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torch-katas", "hidden kata checks")
    group.addoption("--kata", default=None, help="name of the kata whose checks run")
    group.addoption("--kata-catalog", default=None, help="catalog file (default: shipped)")
    group.addoption("--kata-impl", default=None, help="file under test")
    group.addoption("--kata-seed", type=int, default=None, help="seed for random inputs")
    group.addoption("--kata-report", default=None, help="write the JSON report here")
    group.addoption("--kata-only", default=None,
                    help="run this exercise's checks only (the run then cannot pass)")
    group.addoption("--kata-diagnose", action="store_true", default=False,
                    help="name the known mistake that a failure matches")
    group.addoption("--kata-diagnose-budget", type=float, default=0.2,
                    help="seconds the diagnosis may add to one failing check")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exercise(name): the kata exercise this check judges")
    config.addinivalue_line("markers", "kata(name): the kata a check module belongs to")
    config.addinivalue_line("markers", "needs_device(kind): a check that runs only where a "
                            "torch device of that kind (cuda, ...) is available")
    if config.getoption("--kata-impl") is None and config.getoption("--kata-report") is None:
        # Not a check child: maybe an IDE's (or a learner's) pytest inside a workspace.
        from checker import pytest_workspace

        pytest_workspace.configure(config)
        return
    from checker.catalog import load_catalog

    catalog_path = config.getoption("--kata-catalog")
    catalog = load_catalog(Path(catalog_path) if catalog_path else None)
    kata = catalog.get(config.getoption("--kata"))
    config.stash[STATE] = {"kata": kata}
    begin_run(config, impl=config.getoption("--kata-impl") or str(kata.stub_path),
              seed=config.getoption("--kata-seed"), report=config.getoption("--kata-report"),
              diagnose=config.getoption("--kata-diagnose"),
              diagnose_budget=config.getoption("--kata-diagnose-budget"),
              only=config.getoption("--kata-only"))


def begin_run(config: pytest.Config, *, impl: str | Path, seed: int | None, report: str | None,
              diagnose: bool, diagnose_budget: float, armed: dict | None = None,
              only: str | None = None) -> None:
    """Set what this run judges. pytest_configure calls it from the options; a warm worker's
    armed session (configured and collected before the learner saved) calls it again when
    the run is requested, before any check runs, with what arming took (``armed``: ``wait``,
    how long the request waited for the process; ``prepared``, seconds of each check's
    prepare hook), which the report passes on."""
    if seed is None:
        from checker.outcome import random_seed

        seed = random_seed()
    config.option.kata_report = report
    config.option.kata_diagnose = diagnose
    state_of(config).update({
        "seed": int(seed),
        "impl_path": Path(impl).resolve(),
        "results": {},
        "load_error": None,
        "started": time.perf_counter(),
        "diagnose_budget": diagnose_budget,
        "armed": armed or {"wait": 0.0, "prepared": {}},
        "only": only,
        "streams": (sys.stdout, sys.stderr),  # the judge's, before learner code loads
    })
    seal(kata=state_of(config)["kata"], impl=state_of(config)["impl_path"], report=report)
    from checker.stuck import tell_runner

    tell_runner(report)


def protect(session: pytest.Session) -> None:
    """Take the integrity snapshot of the judge (once per process) before learner code loads."""
    from checker.sandbox import audit

    audit.protect(tuple({item.module.__name__ for item in session.items
                         if getattr(item, "module", None) is not None}))


def pytest_report_header(config: pytest.Config) -> str | None:
    state = state_of(config)
    if state is None:
        return None
    return f"torch-katas: kata={state['kata'].name} seed={state['seed']} impl={state['impl_path']}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    not_applicable(config, items)
    for index, item in enumerate(items):  # before a warm worker splits them between processes
        item.stash[_INDEX] = index
    config.stash[ALL] = list(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    state = state_of(session.config)
    if state is None:
        return
    # Load the file once up front: a file that cannot load fails every exercise the same way.
    # Its import has the per-check time limit (checker.stuck).
    from checker.learner import LearnerFileError, load_module
    from checker.stuck import cap_recursion, watch_swallowed

    if state.get("only"):  # the other exercises' checks neither run nor count as collected
        session.items[:] = [i for i in session.items if exercise_of(i) == state["only"]]
        state["collected"] = {state["only"]: state.get("collected", {}).get(state["only"], [])}
    watch_swallowed(state)
    cap_recursion()
    protect(session)
    try:
        load_module(state["impl_path"], state["kata"].rules, time_limit=state["kata"].timeout)
    except LearnerFileError as exc:
        state["load_error"] = {"message": str(exc), "line": exc.line}
    except Exception as exc:  # a forbidden API at import time, and the like
        state["load_error"] = {"message": f"{type(exc).__name__}: {exc}", "line": None}
    sys.stdout, sys.stderr = state["streams"]  # what the judge writes never reaches learner code


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    return check_seed(request.config, request.node.nodeid)


@pytest.fixture
def rng(seed: int):
    import numpy as np

    return np.random.default_rng(seed)


@pytest.fixture(autouse=True)
def _kata_seeded(request: pytest.FixtureRequest) -> None:
    if state_of(request.config) is not None:
        seed_everything(check_seed(request.config, request.node.nodeid))


@pytest.fixture
def impl(request: pytest.FixtureRequest):
    state = state_of(request.config)
    if state is None:
        pytest.skip("no --kata given: these checks run through `kata check`")
    if state["load_error"]:
        pytest.fail(state["load_error"]["message"], pytrace=False)
    from checker.learner import Impl, load_module

    module = load_module(state["impl_path"], state["kata"].rules)
    return Impl(module, state["kata"].rules)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Record each check once: passed only when its setup, call and teardown all were clean
    (see checker.verdict); anything else becomes a failure, for pytest's own count too."""
    outcome = yield
    state = state_of(item.config)
    if state is None:
        return
    report = outcome.get_result()
    # the whole judge is compared once per check, as it ends (after every call into learner
    # code, the rules window compares the checker's own modules and the comparison functions)
    tamper = tampered() if report.when == "teardown" else None
    problem = tamper or phase_problem(report, call, state["impl_path"])
    if problem is None and report.when != "call":
        return  # a clean setup or teardown: the call decides
    exercise = exercise_of(item)
    entry = item.stash.get(_ENTRY, None)
    if entry is None:
        entry = {"id": check_id(item.nodeid), "index": item.stash.get(_INDEX, 0),
                 "outcome": "passed", "duration": 0.0, "message": "", "diagnosis": []}
        item.stash[_ENTRY] = entry
        state["results"].setdefault(exercise or "?", []).append(entry)
    if report.when == "call":
        entry["duration"] = round(report.duration, 4)
        from checker.stuck import overran  # a timeout that learner code swallowed

        late = overran(state, entry["id"], report.duration if problem is None else 0.0,
                       state["kata"].timeout)
        problem = late or problem
    if problem is None or (entry["outcome"] == "failed" and not tamper):
        return  # the first problem is the one to read, unless the judge itself was changed
    output, total = item.stash.get(_PRINTED, ([], 0))
    entry.update(outcome="failed", message=problem, output=output, output_lines=total)
    # only the exercise's first failing check shows a diagnosis: one failed before it here
    # (checks run in collection order) leaves nothing to diagnose
    earlier = any(t is not entry and t["outcome"] != "passed"
                  for t in state["results"].get(exercise, []))
    if (report.failed and report.when == "call" and exercise and not _timed_out(call)
            and not earlier and item.config.getoption("--kata-diagnose")):
        from checker.diagnose_check import diagnose

        entry["diagnosis"] = diagnose(item, exercise, signature(call.excinfo.value), state)
    if not report.failed:
        report.outcome, report.longrepr = "failed", problem
    if hasattr(report, "wasxfail"):
        del report.wasxfail


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """The checks this process will run, by exercise: a check missing from the results at the
    end did not run to completion, and fails its exercise."""
    state = state_of(session.config)
    if state is not None:
        collected: dict[str, list[str]] = {}
        for item in session.items:
            collected.setdefault(exercise_of(item) or "?", []).append(check_id(item.nodeid))
        state["collected"] = collected


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """The backstop of checker.stuck, armed for this check and then for the gap after it."""
    state = state_of(item.config)
    if state is None:
        return (yield)
    from checker.stuck import backstop, reset_excused

    state["running"] = check_id(item.nodeid)
    reset_excused()
    backstop(2 * state["kata"].timeout)
    try:
        return (yield)
    finally:
        backstop(state["kata"].timeout)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """A deep traceback (unbounded recursion) is cut before pytest and the report read it;
    what the call prints is kept (its last lines, for a failure); with diagnosis on, the calls
    into learner code are counted per function."""

    state = state_of(item.config)
    counted = state is not None and item.config.getoption("--kata-diagnose")
    if counted:
        from checker.diagnosis import counting

        counter = counting()
    else:
        counter = contextlib.nullcontext({})
    printing = recording(*state["streams"]) if state is not None else contextlib.nullcontext()
    with counter as counts, printing as held:
        try:
            return (yield)
        except BaseException as exc:
            from checker.stuck import trim

            trim(exc)
            raise
        finally:
            if counted:
                item.stash[COUNTS] = dict(counts)
            if held is not None:
                item.stash[_PRINTED] = lines_of(held)


def _timed_out(call: pytest.CallInfo) -> bool:
    """Whether the check ran out of time: replaying learner code that hangs names nothing."""
    from checker.stuck import is_timeout

    return is_timeout(call.excinfo.value if call.excinfo else None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = state_of(session.config)
    if state is None:
        return
    changed = tampered()
    if changed and not state["load_error"]:
        state["load_error"] = {"message": changed, "line": None}
    path = session.config.getoption("--kata-report")
    report = run_report(state, duration=time.perf_counter() - state["started"])
    if path:
        try:
            write_json(path, report)
        except TamperError as exc:  # seen by the audit hook as the report is written (and put
            report["load_error"] = {"message": str(exc), "line": None}  # back): the run fails
            write_json(path, report)
