"""The warm worker's armed sets: forked processes that configured pytest and collected a
kata's checks before the learner saved, each holding a share of them (see checker.armed),
blocked until the worker says which file to judge.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from checker.leftovers import make_run_dir

BINS = max(1, int(os.environ.get("KATA_WORKER_PROCESSES", min(2, os.cpu_count() or 1))))


def _armed_child(catalog_file: str | None, name: str, seed: int, index: int, bins: int,
                 costs: dict[str, tuple[float, float]], pipe: int, done: int, log: str,
                 worker: int, only: str | None = None) -> None:
    """In a forked process: configure and collect, then wait in ArmedRun; never returns.

    Once its report is written it says so on ``done`` (its exit status, one line): the
    worker need not wait for the process to be torn down (about 10 ms for a torch process)."""
    code = 70
    try:
        from checker.catalog import load_catalog
        from checker.launch import pytest_args
        from checker.limits import output_to
        from checker.reaper import die_with_parent, start_watchdog

        os.setsid()  # kill(0) and killpg(0) reach this process's group only
        die_with_parent(worker)
        start_watchdog(worker)
        output_to(log)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        import pytest
        import torch

        torch.set_num_threads(1)
        kata = load_catalog(Path(catalog_file) if catalog_file else None).get(name)
        from checker.sandbox.window import prepare_rules

        prepare_rules(kata.rules)
        args = pytest_args(kata, kata.stub_path, seed, Path(os.devnull), diagnose=False)
        from checker.armed import ArmedRun

        code = int(pytest.main(args, plugins=[ArmedRun(pipe, index, bins, costs, only)]))
        sys.stdout.flush()
        sys.stderr.flush()
        with contextlib.suppress(OSError):
            os.write(done, f"{code}\n".encode())
    except BaseException:  # the child must never fall back into the server loop
        import traceback

        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        os._exit(code)


def kill_process(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group, or the process before its setsid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class Armed:
    """One armed set: a process per share of one kata's checks, waiting for a run."""

    def __init__(self, key: tuple, costs: dict[str, tuple[float, float]], close_in_child: list[int],
                 expect: dict | None = None):
        """``expect``: what the next run will likely ask, from the one before (``seed``, set
        when that one named its seed, and ``only``): the checks' prepare hooks work for it. A
        guess only: a run that asks otherwise is judged the same, its checks computing their
        own references."""
        from checker.outcome import random_seed

        self.key, self.fingerprint = key, fingerprint(key)  # before the processes collect
        expect = expect or {}
        self.guessed = expect.get("seed") is not None  # else: a fresh seed, for a run naming none
        self.seed = int(expect["seed"]) if self.guessed else random_seed()
        only = expect.get("only")
        self.tmp = make_run_dir("kata-armed-")  # swept if the worker is killed (checker.leftovers)
        self.logs = [os.path.join(self.tmp, f"arm-{i}.txt") for i in range(BINS)]
        self.pids: list[int] = []
        self.pipes: list[int] = []  # the worker writes "go" on these
        self.done: list[int] = []  # and reads "done" on these
        for i in range(BINS):
            r, w = os.pipe()
            done_r, done_w = os.pipe()
            worker = os.getpid()
            pid = os.fork()
            if pid == 0:
                os.close(w)
                os.close(done_r)
                for fd in close_in_child + self.pipes + self.done:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                _armed_child(key[1], key[0], self.seed, i, BINS, costs, r, done_w,
                             self.logs[i], worker, only)
            os.close(r)
            os.close(done_w)
            self.pids.append(pid)
            self.pipes.append(w)
            self.done.append(done_r)

    def alive(self) -> bool:
        for pid in self.pids:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return False
            if done:
                return False
        return True

    def discard(self) -> None:
        for fd in self.pipes + self.done:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pipes, self.done = [], []
        for pid in self.pids:
            kill_process(pid)
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


def fingerprint(key: tuple) -> tuple:
    """What an armed set for ``key`` (kata, catalog) is built from: the check file and the
    catalog, by mtime; () when the kata cannot be found (the run reports that itself)."""
    from checker.catalog import load_catalog

    name, catalog = key
    try:
        kata = load_catalog(Path(catalog) if catalog else None).get(name)
    except Exception:
        return ()
    stamps = []
    for f in (kata.checks_path, kata.catalog_file or kata.root / "katas" / "catalog.toml"):
        try:
            stamps.append(os.stat(f).st_mtime_ns)
        except OSError:
            stamps.append(None)
    return tuple(stamps)
