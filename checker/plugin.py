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
import random
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from checker.printed import lines_of, recording
from checker.report import REPORT_VERSION, check_id, summarize, write_json
from checker.sandbox.errors import TamperError
from checker.sandbox.session import seal, tampered
from checker.verdict import phase_problem, signature

_STATE = pytest.StashKey[dict]()
_INDEX = pytest.StashKey[int]()  # a check's position in the whole collected session
_ENTRY = pytest.StashKey[dict]()  # a check's entry in the report, once it has one
_COUNTS = pytest.StashKey[dict]()  # calls into learner code per function, for the diagnosis
_PRINTED = pytest.StashKey[tuple]()  # the last lines the check's call printed (checker.printed)
_ALL = pytest.StashKey[list]()  # every collected check, before a warm worker's split: their inputs


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
    config.stash[_STATE] = {"kata": kata}
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
    _state(config).update({
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
    seal(kata=_state(config)["kata"], impl=_state(config)["impl_path"], report=report)
    from checker.stuck import tell_runner

    tell_runner(report)


def protect(session: pytest.Session) -> None:
    """Take the integrity snapshot of the judge (once per process) before learner code loads."""
    from checker.sandbox import audit

    audit.protect(tuple({item.module.__name__ for item in session.items
                         if getattr(item, "module", None) is not None}))


def _state(config: pytest.Config) -> dict | None:
    return config.stash.get(_STATE, None)


def pytest_report_header(config: pytest.Config) -> str | None:
    state = _state(config)
    if state is None:
        return None
    return f"torch-katas: kata={state['kata'].name} seed={state['seed']} impl={state['impl_path']}"


def _device_available(kind: str) -> bool:
    """Whether this machine has a torch device of ``kind`` ("cpu", "cuda", "xpu", ...)."""
    if kind == "cpu":
        return True
    import torch

    module = getattr(torch, kind, None)
    try:
        return bool(module is not None and module.is_available())
    except Exception:  # a backend that cannot even tell: none here
        return False


def not_applicable(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Take the checks this machine cannot run (``needs_device``) out of ``items`` and note
    them, with why, for the report. Decided at collection: no learner code has run yet."""
    state = _state(config)
    if state is None:
        return
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("needs_device")
        kind = str(marker.args[0]) if marker and marker.args else None
        if kind is None or _device_available(kind):
            kept.append(item)
            continue
        dropped.append(item)
        state.setdefault("not_applicable", {}).setdefault(_exercise_of(item) or "?", []).append(
            {"id": check_id(item.nodeid),
             "reason": f"needs a {kind} device, and this machine has none"})
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    not_applicable(config, items)
    for index, item in enumerate(items):  # before a warm worker splits them between processes
        item.stash[_INDEX] = index
    config.stash[_ALL] = list(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None:
        return
    # Load the file once up front: a file that cannot load fails every exercise the same way.
    # Its import has the per-check time limit (checker.stuck).
    from checker.learner import LearnerFileError, load_module
    from checker.stuck import cap_recursion, watch_swallowed

    if state.get("only"):  # the other exercises' checks neither run nor count as collected
        session.items[:] = [i for i in session.items if _exercise_of(i) == state["only"]]
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Record each check once: passed only when its setup, call and teardown all were clean
    (see checker.verdict); anything else becomes a failure, for pytest's own count too."""
    outcome = yield
    state = _state(item.config)
    if state is None:
        return
    report = outcome.get_result()
    # the whole judge is compared once per check, as it ends (after every call into learner
    # code, the rules window compares the checker's own modules and the comparison functions)
    tamper = tampered() if report.when == "teardown" else None
    problem = tamper or phase_problem(report, call, state["impl_path"])
    if problem is None and report.when != "call":
        return  # a clean setup or teardown: the call decides
    exercise = _exercise_of(item)
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
        entry["diagnosis"] = _diagnose(item, exercise, signature(call.excinfo.value), state)
    if not report.failed:
        report.outcome, report.longrepr = "failed", problem
    if hasattr(report, "wasxfail"):
        del report.wasxfail


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """The checks this process will run, by exercise: a check missing from the results at the
    end did not run to completion, and fails its exercise."""
    state = _state(session.config)
    if state is not None:
        collected: dict[str, list[str]] = {}
        for item in session.items:
            collected.setdefault(_exercise_of(item) or "?", []).append(check_id(item.nodeid))
        state["collected"] = collected


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """The backstop of checker.stuck, armed for this check and then for the gap after it."""
    state = _state(item.config)
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
    import contextlib

    state = _state(item.config)
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
                item.stash[_COUNTS] = dict(counts)
            if held is not None:
                item.stash[_PRINTED] = lines_of(held)


def _timed_out(call: pytest.CallInfo) -> bool:
    """Whether the check ran out of time: replaying learner code that hangs names nothing."""
    from checker.stuck import is_timeout

    return is_timeout(call.excinfo.value if call.excinfo else None)


def _diagnose(item: pytest.Item, exercise: str, target: str, state: dict) -> list[dict]:
    """The diagnosis is the judge's own work (the rules stay off for it), and a bonus: if it
    cannot finish, the failure stands without a name."""
    from checker.sandbox.dispatch import judge_code

    try:
        with judge_code():
            return _diagnose_by_behaviour(item, exercise, target, state)
    except (Exception, pytest.fail.Exception):  # out of time, or failed: names nothing
        return []


def _diagnose_by_behaviour(item: pytest.Item, exercise: str, target: str,
                           state: dict) -> list[dict]:
    """Name the known mistakes of ``exercise`` that the learner's code behaves like (see
    checker.diagnosis), the most specific first; none when none is proven to match."""
    from checker import diagnosis
    from checker.learner import Impl, load_module
    from checker.mistakes import _solution_of, load_mistakes

    kata = state["kata"]
    deadline = time.perf_counter() + state["diagnose_budget"]
    funcargs = getattr(item, "funcargs", None)
    if funcargs is None or "impl" not in funcargs:
        return []
    import signal

    left = signal.getitimer(signal.ITIMER_REAL)[0]  # pytest-timeout's timer for this check
    # the diagnosis gets its own budget on top (the learner's replays stay bounded)
    if left or signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
        signal.setitimer(signal.ITIMER_REAL, left + min(state["diagnose_budget"], 600.0))
    from checker.stuck import backstop

    backstop(2 * kata.timeout + min(state["diagnose_budget"], 600.0))
    learner = funcargs["impl"]
    seed = check_seed(item.config, item.nodeid)

    def variant(func=None, label="the known mistake"):
        module = load_module(kata.solution_path, kata.rules)
        if func is not None:
            setattr(module, exercise, func)
        return Impl(module, kata.rules, label=label)

    mistakes = [m for m in load_mistakes(kata.mistakes_module) if m.exercise == exercise and m.named]
    with contextlib.suppress(Exception):  # loaded as the judge: the mistakes that wrap it
        _solution_of(kata.name)  # cannot read the solution's file inside the rules window
    reference = variant(label="the reference")
    trace, _ = diagnosis.run_check(item, reference, seed)
    failing = diagnosis.failing_input(trace, exercise, item.stash.get(_COUNTS, {}).get(exercise, 0))
    if failing is not None:
        found, unseen = diagnosis.by_behaviour(
            getattr(learner, exercise), getattr(reference.module, exercise),
            [diagnosis.Candidate(m.id, m.misconception, m.func) for m in mistakes],
            failing, _pools(item, exercise, reference, trace, deadline), exercise,
            reference.rules, lambda: time.perf_counter() < deadline)
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
            found.append((m, impl))
    return [{"id": m.id, "misconception": m.misconception}
            for m, _ in _separate(found, item, exercise, learner, deadline)]


def _separate(found: list[tuple], item: pytest.Item, exercise: str, learner: object,
              deadline: float) -> list[tuple]:
    """Of mistakes that fail the failing check as the learner's code does, those that fail
    as it does, too, on each further check run (:func:`_probes`) where they fail unalike;
    several only when no check run tells them apart."""
    from checker import diagnosis

    for other, seed in _probes(item, exercise):
        if len(found) < 2 or time.perf_counter() > deadline:
            break
        texts = [diagnosis.run_check(other, impl, seed)[1] for _, impl in found]
        if diagnosis.NOT_RUN not in texts and len(set(texts)) > 1:
            mine = diagnosis.run_check(other, learner, seed)[1]
            found = [f for f, text in zip(found, texts, strict=True) if text == mine]
    return found


_EXTRA_SEEDS = 8  # further draws of the exercise's checks, while candidates stay unseparated


def _probes(item: pytest.Item, exercise: str) -> Iterator[tuple[pytest.Item, int]]:
    """The further runs of the checks of ``exercise`` that may tell candidates apart, as
    (check, seed): every other check at its seed, then the checks that draw inputs at their
    seed plus one, two, ... (the same draws on every run)."""
    for extra in range(_EXTRA_SEEDS + 1):
        for other in item.config.stash.get(_ALL, item.session.items):
            drawn = {"rng", "seed"} & set(other.fixturenames)  # else no other inputs to draw
            if (other is not item if not extra else drawn) and _exercise_of(other) == exercise:
                yield other, check_seed(item.config, other.nodeid) + extra


def _pools(item: pytest.Item, exercise: str, reference: object, trace: list,
           deadline: float) -> Iterator[list]:
    """Batches of the reference's calls in the checks of ``exercise``, each run only when
    the diagnosis asks for more: ``trace`` (the failing check's), then each of
    :func:`_probes`."""
    from checker import diagnosis

    yield trace
    for other, seed in _probes(item, exercise):
        if time.perf_counter() > deadline:
            return
        yield diagnosis.run_check(other, reference, seed)[0]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None:
        return
    changed = tampered()
    if changed and not state["load_error"]:
        state["load_error"] = {"message": changed, "line": None}
    path = session.config.getoption("--kata-report")
    kata = state["kata"]
    strays = sorted(set(state["results"]) - set(kata.exercises))
    report = {
        "format_version": REPORT_VERSION,
        "kata": kata.name,
        "impl": str(state["impl_path"]),
        "seed": state["seed"],
        "load_error": state["load_error"],
        "exercises": summarize(kata.exercises, state["results"], state.get("collected", {}),
                               state.get("not_applicable", {})),
        "results": state["results"],
        "collected": state.get("collected", {}),
        "not_applicable": state.get("not_applicable", {}),
        "unassigned": strays,
        "duration": round(time.perf_counter() - state["started"], 4),
        "armed": state["armed"],  # see checker.armed
    }
    if path:
        try:
            write_json(path, report)
        except TamperError as exc:  # seen by the audit hook as the report is written (and put
            report["load_error"] = {"message": str(exc), "line": None}  # back): the run fails
            write_json(path, report)
