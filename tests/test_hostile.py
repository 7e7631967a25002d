"""Learner code cannot hurt the tool: a verdict within seconds, on the cold and the warm path,
and no process left behind, whatever the file does.

Each case prints its time to verdict (``pytest -s`` shows them); the bounds asserted here are
loose (the machine is shared), far below the run's wall-clock limit (60 s for the tiny kata)
that these cases used to run into.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from checker import stuck
from checker.reaper import descendants
from checker.runner import run_checks
from tests.conftest import TINY, TINY_CATALOG
from tests.conftest import alive as _alive

IMPLS = TINY / "impls"
VERDICT_S = 30  # loose: well under the 60 s wall; measured figures are in the README


@pytest.fixture
def alpha(tiny_catalog):
    return tiny_catalog.get("alpha")


@pytest.fixture(params=["cold", "warm"])
def path_(request, tiny_catalog):
    """run_checks on the cold path, or through the shared warm worker."""
    if request.param == "cold":
        return run_checks
    return request.getfixturevalue("tiny_worker")


def timed(run, kata, impl: str, **kw):
    start = time.perf_counter()
    result = run(kata, IMPLS / impl, seed=5, **kw)
    took = time.perf_counter() - start
    print(f"\n{impl}: {result.status} in {took:.1f} s")
    assert took < VERDICT_S, (took, result.message)
    return result


def no_strays(before: set[int]) -> None:
    deadline = time.monotonic() + 5
    while (left := set(descendants(keep=frozenset(before)))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes left behind: {left}"


@pytest.mark.parametrize("impl,says", [
    ("alpha_import_hang.py", "the top level of your file, at alpha_import_hang.py:1"),
    ("alpha_import_recursion.py", "RecursionError"),
])
def test_stuck_at_import_names_the_line(alpha, path_, impl, says):
    result = timed(path_, alpha, impl)
    assert result.status in ("load_error", "timeout"), result.message
    assert says in " ".join(result.message.split())


def test_unbounded_recursion_is_called_recursion(alpha, path_):
    result = timed(path_, alpha, "alpha_recursion.py")
    add = result.exercises[0]
    assert not add.ok and "recursion" in add.message.lower(), add.message
    assert "infinite loop" not in add.message
    assert result.exercises[1].ok  # mul still gets its verdict


def test_a_loop_in_del_fails_that_exercise_only(alpha, path_):
    result = timed(path_, alpha, "alpha_del_loop.py")
    add, mul = result.exercises
    assert not add.ok and "__del__" in add.message and "alpha_del_loop.py:" in add.message
    assert mul.ok


def test_a_process_that_stops_itself_is_ended_by_the_runner(alpha, tiny_worker):
    """SIGSTOP (or timers switched off) stops every limit inside the process: the runner
    ends it once the deadline the process last told it has passed (checker.stuck.overdue)."""
    result = timed(tiny_worker, alpha, "alpha_stop_self.py")
    assert result.status == "timeout" and "stopped responding" in result.message
    assert result.duration < alpha.timeout + stuck.GRACE_S + stuck.RUNNER_MARGIN_S + 5


def test_the_cold_runner_ends_a_child_past_its_deadline(tmp_path):
    from checker.cold import wait_reading
    from checker.tail import OutputTail

    report = tmp_path / "report.json"
    stuck.tell_runner(str(report))
    try:
        stuck.backstop(-stuck.GRACE_S - stuck.RUNNER_MARGIN_S - 1)  # a deadline long past
    finally:
        stuck.tell_runner(None)
    read, write = os.pipe()
    child = subprocess.Popen(["sleep", "30"], stdout=write)
    os.close(write)
    try:
        start = time.monotonic()
        assert wait_reading(child.pid, child.poll, OutputTail(read), 30, report) == "overdue"
        assert time.monotonic() - start < 2
        os.unlink(stuck.deadline_path(report))  # none told: only the wall limit holds
        assert wait_reading(child.pid, child.poll, OutputTail(read), 0.2, report) == "wall"
    finally:
        child.kill()
        child.wait()


def test_kill_zero_and_killpg_zero_reach_only_the_check(alpha, path_):
    result = timed(path_, alpha, "alpha_killpg.py")
    assert result.status in ("crashed", "failed")  # the child, or a refusal: never the runner
    assert path_(alpha, alpha.solution_path, seed=1).passed


def test_hard_limits_cannot_be_raised(alpha, path_):
    result = timed(path_, alpha, "alpha_raise_limits.py")
    assert result.exercises[0].ok, result.exercises[0].message


def test_huge_output_costs_no_other_verdict(alpha, path_):
    result = timed(path_, alpha, "alpha_flood_huge.py")
    add, mul = result.exercises
    assert add.ok or "Timeout" in add.message, add.message  # printing 600 MB takes time
    assert mul.ok, mul.message
    assert "after the flood" in result.output_tail and len(result.output_tail) < 5000


def test_escaped_processes_are_killed_when_the_run_ends(alpha, path_, tmp_path, monkeypatch):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("KATA_TEST_PIDFILE", str(pidfile))
    timed(path_, alpha, "alpha_escape.py")
    for pid in map(int, pidfile.read_text().split() if pidfile.exists() else ()):
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), f"escaped process {pid} outlived the run"


def test_cold_run_leaves_no_process(alpha):
    before = set(descendants())
    run_checks(alpha, IMPLS / "alpha_import_hang.py", seed=1)
    no_strays(before)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGHUP])
def test_a_killed_kata_check_leaves_nothing_spinning(tiny_env, how):
    """`kata check` killed (or its terminal closed) while the file loops at import."""
    cli = subprocess.Popen(
        [sys.executable, "-m", "checker.cli", "check", "alpha", "--catalog", str(tiny_env),
         "--file", str(IMPLS / "alpha_import_hang.py")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while len(child := descendants(cli.pid)) < 2 and time.monotonic() < deadline:  # keeper, child
        time.sleep(0.05)
    assert len(child) >= 2, "the check child never started"
    time.sleep(0.5)  # into the loop
    cli.send_signal(how)
    cli.wait(timeout=10)
    deadline = time.monotonic() + 5
    while any(map(_alive, child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, child)), f"{child} outlived `kata check`"


@pytest.fixture
def processes_allowed(tiny_env, tmp_path, monkeypatch):
    """The tiny catalog, with alpha's code allowed to start processes (as a DataLoader
    kata's is): what escapes then is the keeper's to kill, not the sandbox's to refuse."""
    text = TINY_CATALOG.read_text().replace('checks_dir = "checks"',
                                            f'checks_dir = "{TINY / "checks"}"')
    allowed = text.replace("timeout = 2\n", "timeout = 2\n\n[kata.rules]\nallow_processes = true\n", 1)
    assert allowed != text
    catalog = tmp_path / "katas" / "catalog.toml"
    catalog.parent.mkdir()
    catalog.write_text(allowed)
    monkeypatch.setenv("KATA_CATALOG", str(catalog))
    from checker.catalog import load_catalog

    return load_catalog(catalog).get("alpha")


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _kill_mid_escape(runner: subprocess.Popen, below: int) -> list[int]:
    """SIGKILL ``runner`` once the file's escaped process runs below ``below`` (the one in a
    session it does not lead: forked after the setsid); returns what was below it then."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = descendants(below)  # (a process just forked, before its setsid, is in below's)
        if any(_sid(pid) not in (pid, None, _sid(below)) for pid in found):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the file never forked")
    runner.kill()
    runner.wait(timeout=10)
    return found


def _none_alive(pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in pids if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{left} outlived the killed runner"


def test_a_killed_kata_check_takes_escaped_processes_with_it(processes_allowed):
    """`kata check` SIGKILLed while a process its file forked (double fork, own session) runs:
    the keeper between the CLI and the check child ends it (checker.keeper)."""
    cli = subprocess.Popen(
        [sys.executable, "-m", "checker.cli", "check", "alpha", "--catalog",
         str(processes_allowed.catalog_file), "--file", str(IMPLS / "alpha_fork_escape.py")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _none_alive(_kill_mid_escape(cli, cli.pid))


def test_a_client_killed_mid_run_leaves_no_escaped_process_of_the_worker(processes_allowed,
                                                                         tiny_worker):
    """On the warm path: the client goes mid-run; the worker ends the run and all below it."""
    from checker import worker

    state = tiny_worker.keywords["use_worker"]
    pid = worker.serving_pid(state)
    client = subprocess.Popen(
        [sys.executable, "-c", "import os; from pathlib import Path; "
         "from checker.catalog import load_catalog; from checker.runner import run_checks; "
         "alpha = load_catalog(Path(os.environ['KATA_CATALOG'])).get('alpha'); "
         f"run_checks(alpha, Path({str(IMPLS / 'alpha_fork_escape.py')!r}), "
         f"use_worker=Path({str(state)!r}))"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    found = _kill_mid_escape(client, pid)
    _none_alive(found)  # the run's processes (a new armed set has new ones)


def test_a_stopped_worker_is_given_up_within_two_seconds(alpha, tmp_path):
    """SIGSTOP the worker: the next check runs cold at once, and the stopped worker is gone."""
    from checker import worker

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TINY), os.environ.get("PYTHONPATH")]))
    proc = worker.start(tmp_path, wait=120)
    assert proc is not None and worker.is_running(tmp_path)
    try:
        pid = worker.serving_pid(tmp_path)  # the worker, below its keeper (proc)
        armed = descendants(pid)
        os.kill(pid, signal.SIGSTOP)
        start = time.perf_counter()
        result = run_checks(alpha, alpha.solution_path, seed=1, use_worker=tmp_path)
        cold = run_checks(alpha, alpha.solution_path, seed=1)
        took = time.perf_counter() - start - cold.duration
        print(f"\nstopped worker: verdict after {result.duration:.1f} s (cold alone {cold.duration:.1f} s)")
        assert result.passed
        assert result.duration - cold.duration < 2.0 + 3.0  # given up after 2 s; cold jitter
        assert proc.wait(timeout=5) == -signal.SIGKILL and took < VERDICT_S  # as its worker
        assert not worker.socket_path(tmp_path).exists()
        deadline = time.monotonic() + 5
        while any(map(_alive, armed)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, armed)), "armed processes outlived their worker"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_subreaper_finds_and_kills_what_escaped(tmp_path):
    """The mechanism on its own (whether or not a sandbox refuses the fork first): a process
    that left its parent and its session is re-parented to the runner and killed."""
    pidfile = tmp_path / "pid"
    script = (
        "import os, subprocess, sys, time\n"
        "from checker.reaper import become_subreaper, descendants, kill_descendants\n"
        "assert become_subreaper()\n"
        f"subprocess.run(['sh', '-c', 'setsid sleep 60 & echo $! > {pidfile}'])\n"
        "time.sleep(0.3)\n"
        f"pid = int(open('{pidfile}').read())\n"
        "assert pid in descendants(), (pid, descendants())\n"
        "assert pid in kill_descendants()\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
    assert not _alive(int(pidfile.read_text()))
