"""The keeper (checker.keeper): whatever the work starts, however it detaches (a double fork
with a session of its own), dies when the work ends, when the work is killed, and when the
runner that owns the keeper is killed with SIGKILL; the keeper exits as its work did.

The mechanism on its own, without the sandbox (which refuses the fork first): fast, no torch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import alive as _alive

ROOT = Path(__file__).resolve().parent.parent

# argv: owner pid or "-", what the work does after the escape, the file for the pids, and
# "no-cgroup" to run as where no cgroup can be made (without root, say)
WORK = """
import os, signal, subprocess, sys, time
import checker.cgroup
from checker.keeper import keep
if sys.argv[4:] == ["no-cgroup"]:
    checker.cgroup.make = lambda: None
keeper = keep(None if sys.argv[1] == "-" else int(sys.argv[1]))
pids = sys.argv[3]
subprocess.run(["sh", "-c", f"setsid sleep 60 & echo $! > {pids}.escaped"])
with open(pids, "w") as fh:
    fh.write(f"{keeper} {os.getpid()} {os.getsid(0)}")
if sys.argv[2] == "exit":
    os._exit(3)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(60)
"""


def _pids(path: Path) -> tuple[int, int, int, int]:
    deadline = time.monotonic() + 30
    while not (path.exists() and path.read_text() and Path(f"{path}.escaped").exists()
               and Path(f"{path}.escaped").read_text().strip()):
        assert time.monotonic() < deadline, "the work never started"
        time.sleep(0.02)
    keeper, work, session = map(int, path.read_text().split())
    return keeper, work, session, int(Path(f"{path}.escaped").read_text())


def _gone(*pids: int, within: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in left:  # the test's own cleanup
        os.kill(pid, signal.SIGKILL)
    return left


def _keeper(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WORK, *argv], env=env, cwd=ROOT,
                            start_new_session=True)


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's prctl")


CGROUP = pytest.mark.parametrize("cgroup", ["cgroup", "no-cgroup"])


@CGROUP
@pytest.mark.parametrize("how,status", [("exit", 3), ("kill", -signal.SIGKILL)])
def test_the_keeper_ends_what_escaped_and_exits_as_its_work(tmp_path, how, status, cgroup):
    proc = _keeper("-", how, str(tmp_path / "pids"), cgroup)
    keeper, work, session, escaped = _pids(tmp_path / "pids")
    assert keeper == proc.pid and work != keeper
    assert session == work  # the work has a session of its own: killpg(0) misses the keeper
    assert proc.wait(timeout=10) == status
    assert not _gone(escaped, work)


@CGROUP
def test_a_killed_keeper_owner_takes_everything_with_it(tmp_path, cgroup):
    """The runner (here a stand-in for `kata check`) is SIGKILLed mid-run."""
    pids = tmp_path / "pids"
    owner = subprocess.Popen(
        [sys.executable, "-c", "import os, subprocess, sys; subprocess.run([sys.executable, "
         f"'-c', {WORK!r}, str(os.getpid()), 'wait', {str(pids)!r}, {cgroup!r}])"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    keeper, work, _, escaped = _pids(pids)
    assert _alive(escaped)
    owner.kill()
    owner.wait()
    assert not _gone(keeper, work, escaped)


def test_a_keeper_told_to_stop_sigterm_ends_its_work(tmp_path):
    proc = _keeper("-", "wait", str(tmp_path / "pids"), "cgroup")
    keeper, work, _, escaped = _pids(tmp_path / "pids")
    proc.terminate()
    proc.wait(timeout=10)
    assert not _gone(work, escaped)



def _probe_group() -> Path | None:
    from checker import cgroup

    group = cgroup.make()
    if group is not None:
        group.rmdir()
    return group


@pytest.mark.skipif(_probe_group() is None, reason="no writable cgroup v2 here (no root, say)")
def test_what_escaped_is_in_the_keepers_cgroup_and_the_group_goes_with_the_work(tmp_path):
    proc = _keeper("-", "wait", str(tmp_path / "pids"), "cgroup")
    keeper, _, _, escaped = _pids(tmp_path / "pids")
    with open(f"/proc/{escaped}/cgroup") as fh:
        group = fh.read().split("0::", 1)[1].split()[0]
    assert Path(group).name.startswith(f"kata-run-{keeper}-")
    proc.terminate()
    proc.wait(timeout=10)
    assert not _gone(escaped)
    from checker.cgroup import own_dir

    assert not (own_dir() / Path(group).name).exists()


@pytest.mark.skipif(_probe_group() is None, reason="no writable cgroup v2 here (no root, say)")
def test_a_group_whose_keeper_was_killed_is_ended_by_the_next_keeper():
    from checker import cgroup

    dead = subprocess.Popen(["true"])
    dead.wait()
    group = cgroup.own_dir() / f"{cgroup.PREFIX}{dead.pid}-abc123"
    group.mkdir()
    stray = subprocess.Popen(["sleep", "60"], preexec_fn=lambda: cgroup.join(group))
    assert group in cgroup.sweep()
    assert not _gone(stray.pid) and not group.exists()
    stray.wait(timeout=5)
