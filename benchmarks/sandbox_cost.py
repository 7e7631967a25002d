"""What the sandbox (audit hook and integrity snapshot, checker.sandbox) costs a warm verdict.

    .venv/bin/python benchmarks/sandbox_cost.py [--runs N] [--pause S] [KATA ...]
    .venv/bin/python benchmarks/sandbox_cost.py --per-call [--calls N]

Two warm check workers run side by side, as `kata check` and `kata watch` use them: one as
shipped, and one whose process had the sandbox switched off before it armed anything (its
``checker.sandbox.audit.install`` replaced by a no-op in that process only, so no audit hook
is installed and no integrity snapshot is taken; the rules at the dispatcher stay on, see
benchmarks/rules_cost.py). That switch exists only in this script, in a worker it starts
itself: nothing a learner's file, a workspace or the environment can reach turns it off.

Each kata's solution is judged through both, alternately, N times after one warm-up run each,
S seconds apart (a learner reads the verdict before saving again; the worker arms the next
run meanwhile). Printed per kata: the median save-to-verdict time with the sandbox off and
on, and their ratio; then the median of the ratios. On a loaded machine every figure swings:
read the medians and the ratio, which are measured in the same minutes.

``--cpu``: steadier on a loaded machine. In one process that has imported what a worker
imports (and the kata's check module), each run is a forked process, as an armed one is,
judging the solution with the sandbox on or off; the figure is that process's CPU time from
the integrity snapshot (taken, as in an armed process, before the learner's file loads) to
the report. ``--profile`` prints cProfile's view of one such run with the sandbox on (the
audit hook's own time shows as ``sys.audit``).

``--per-call``: the cost of one rules window around a trivial learner function, in one
process, before and after the audit hook and the snapshot are in place.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# A worker whose process never installs the audit hook (so takes no snapshot either).
SANDBOX_OFF = ("import sys; from pathlib import Path; from checker.sandbox import audit; "
               "audit.install = lambda: None; from checker.server import serve; "
               "serve(Path(sys.argv[1]))")
KATAS = ("strides", "views", "vjp", "modules", "adam", "compile_guards", "custom_ops")


def start_worker(state: Path, sandbox: bool) -> subprocess.Popen:
    from checker import worker
    from checker.launch import child_env

    env = child_env()
    env.pop("OMP_NUM_THREADS", None)
    code = ["-m", "checker.server"] if sandbox else ["-c", SANDBOX_OFF]
    proc = subprocess.Popen([sys.executable, *code, str(state)], env=env, cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while not worker.is_running(state):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker (sandbox {'on' if sandbox else 'off'}) did not start")
        time.sleep(0.1)
    return proc


def verdicts(names: list[str], runs: int, pause: float) -> None:
    from checker import worker
    from checker.catalog import load_catalog
    from checker.runner import run_checks

    catalog = load_catalog()
    with tempfile.TemporaryDirectory(prefix="kata-sandbox-cost-") as tmp:
        states = {"off": Path(tmp) / "off", "on": Path(tmp) / "on"}
        procs = []
        try:
            for mode, state in states.items():
                state.mkdir()
                procs.append(start_worker(state, sandbox=mode == "on"))
            print(f"warm verdicts of the solutions, medians of {runs} runs per mode, "
                  f"{pause:g} s apart, {os.cpu_count()} cores, load average "
                  f"{os.getloadavg()[0]:.1f} at the start\n")
            print(f"  {'kata':22s} {'sandbox off':>12s} {'sandbox on':>12s} {'ratio':>7s}   "
                  "(of which waiting for the armed processes: off / on)")
            ratios = []
            for name in names:
                kata = catalog.get(name)
                times: dict[str, list[float]] = {"off": [], "on": []}
                waits: dict[str, list[float]] = {"off": [], "on": []}
                for i in range(runs + 1):
                    for mode in (("off", "on") if i % 2 else ("on", "off")):
                        time.sleep(pause)
                        start = time.perf_counter()
                        result = run_checks(kata, kata.solution_path, seed=None, diagnose=True,
                                            use_worker=states[mode])
                        took = time.perf_counter() - start
                        if not result.passed:
                            print(f"  ! {name} (sandbox {mode}): {result.status} {result.message[:200]}")
                        elif i:  # the first run of each imports the checks and warms the caches
                            times[mode].append(took)
                            waits[mode].append((result.extra.get("armed") or {}).get("wait", 0.0))
                if not (times["off"] and times["on"]):
                    continue
                off, on = (statistics.median(times[m]) for m in ("off", "on"))
                ratios.append(on / off)
                waited = " / ".join(f"{statistics.median(waits[m]) * 1000:.0f}" for m in ("off", "on"))
                print(f"  {name:22s} {off * 1000:9.0f} ms {on * 1000:9.0f} ms {on / off:7.2f}   "
                      f"({waited} ms)", flush=True)
            if ratios:
                print(f"\n  median ratio over {len(ratios)} katas: {statistics.median(ratios):.3f} "
                      f"(load average {os.getloadavg()[0]:.1f} at the end)")
        finally:
            for state in states.values():
                worker.stop(state)
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)


def cpu_times(names: list[str], runs: int, profile: bool) -> None:
    import gc
    import importlib
    import json

    import pytest
    import torch
    import torch._dynamo  # noqa: F401  (as a worker imports it)

    import checker.plugin as plugin
    from checker.catalog import load_catalog
    from checker.launch import pytest_args
    from checker.sandbox import audit
    from checker.sandbox.window import prepare_rules

    torch.set_num_threads(1)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    install, protect = audit.install, plugin.protect

    def one(kata, sandbox: bool) -> float:
        """CPU seconds of one forked run, from the snapshot to the report."""
        read, write = os.pipe()
        pid = os.fork()
        if pid:
            os.close(write)
            with os.fdopen(read, "rb") as pipe:
                seconds, code = json.loads(pipe.read() or b"[0, -1]")
            os.waitpid(pid, 0)
            if code != 0:
                print(f"  ! {kata.name} (sandbox {'on' if sandbox else 'off'}): exit status {code}")
            return seconds
        audit.install = install if sandbox else (lambda: None)
        import cProfile

        profiler, start = cProfile.Profile() if profile else None, []

        def snapshot_then_time(session) -> None:
            protect(session)
            start.append(time.process_time())
            if profiler:
                profiler.enable()

        plugin.protect = snapshot_then_time
        tmp = tempfile.mkdtemp(prefix="kata-cpu-")
        os.mkdir(os.path.join(tmp, "scratch"))
        os.chdir(os.path.join(tmp, "scratch"))
        out = os.dup(1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        code = pytest.main(pytest_args(kata, kata.solution_path, 7, Path(tmp) / "report.json",
                                       diagnose=False))
        seconds = time.process_time() - start[0] if start else 0.0
        if profiler:
            import pstats

            profiler.disable()
            os.dup2(out, 1)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        os.write(write, json.dumps([seconds, int(code)]).encode())
        os._exit(0)

    print(f"CPU time of forked warm runs of the solutions, medians of {runs} per mode, load "
          f"average {os.getloadavg()[0]:.1f}\n")
    ratios = []
    for name in names:
        kata = load_catalog().get(name)
        prepare_rules(kata.rules)
        importlib.import_module(f"checker.checks.test_{name}")  # as the worker pre-imports it
        gc.collect()
        gc.freeze()
        if profile:
            one(kata, True)
            continue
        times: dict[bool, list[float]] = {False: [], True: []}
        for i in range(runs):
            for sandbox in ((True, False) if i % 2 else (False, True)):
                times[sandbox].append(one(kata, sandbox))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        ratios.append(on / off)
        print(f"  {name:22s} off {off * 1000:7.0f} ms   on {on * 1000:7.0f} ms   {on / off:5.2f}",
              flush=True)
    if ratios:
        print(f"\n  median ratio over {len(ratios)} katas: {statistics.median(ratios):.3f}")


def per_call(calls: int) -> None:
    import _pytest.python  # noqa: F401  (what a check process has loaded)
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401

    import checker.helpers  # noqa: F401
    import checker.plugin  # noqa: F401
    from checker.catalog import load_catalog
    from checker.sandbox import audit
    from checker.sandbox.window import rules_window

    def one_call(rules) -> float:
        def learner(x):
            return x + 1

        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for i in range(calls):
                with rules_window(rules, __file__):
                    learner(i)
            samples.append((time.perf_counter() - start) / calls * 1e6)
        return statistics.median(samples)

    rules = load_catalog(None).get("adam").rules  # a kata with forbidden callables
    before = one_call(rules)
    scratch = tempfile.mkdtemp(prefix="kata-bench-")
    audit.install()
    audit.configure(__file__, scratch, scratch, ())
    audit.protect(())
    after = one_call(rules)
    print(f"rules window per call, no sandbox      {before:8.1f} us")
    print(f"rules window per call, with the sandbox {after:8.1f} us  (+{after - before:.1f} us)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("katas", nargs="*", help=f"default: {' '.join(KATAS)}")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between two saves")
    ap.add_argument("--cpu", action="store_true", help="CPU time of forked runs instead")
    ap.add_argument("--profile", action="store_true", help="with --cpu: cProfile one run")
    ap.add_argument("--per-call", action="store_true")
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    if args.per_call:
        per_call(args.calls)
    elif args.cpu or args.profile:
        cpu_times(args.katas or list(KATAS), args.runs, args.profile)
    else:
        verdicts(args.katas or list(KATAS), args.runs, args.pause)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
