"""Speed figures for the learner's loop, each printed with its baseline and ratio.

Run from a checkout, with the Python of an environment where the project is installed the
way the README's Quick start installs it (a copy, bytecode compiled):
    .venv/bin/python benchmarks/bench.py [--runs N] [--suite] [--watch-katas NAME,...]

Figures (medians over N runs, all measured in this one run, on this machine):
  baseline         python -c "import torch"
  kata next/list/hint/progress   wall time of the installed `kata` command (no torch import)
  kata check cold  `kata check strides` of a solved strides, no worker running
  kata check warm  a later `kata check strides`, with the worker the first check left running,
                   READING seconds after the previous one (and back to back)
  fresh pytest     `python -m pytest` on a check file, the way a plain runner would do it
  watch verdict    save the file -> verdict, through the file watcher and the warm worker,
                   for every kata (the heaviest one is reported against the fresh pytest);
                   saves are READING seconds apart, as a learner's are
  diagnosis        extra time a failing run spends naming the misconception
  suite            (--suite) the README's test command, once
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checker.catalog import load_catalog  # noqa: E402

# Seconds between a verdict and the next save: a learner reads the verdict and edits before
# saving again, and the worker arms the next run meanwhile.
READING = 0.5


def kata_cmd() -> list[str]:
    script = Path(sys.executable).parent / "kata"
    return [str(script)] if script.exists() else [sys.executable, "-m", "checker.cli"]


def installed_cli() -> Path:
    """The checker/cli.py that this environment's `kata` command runs."""
    from importlib import metadata

    try:
        files = metadata.distribution("torch-katas").files or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.as_posix() == "checker/cli.py":
            return Path(f.locate())
    return ROOT / "checker" / "cli.py"  # an editable install runs the checkout's


def timed(cmd: list[str], cwd: Path, runs: int, env: dict | None = None,
          pause: float = 0.0) -> float:
    """The median wall time of ``runs`` runs of ``cmd``, each after ``pause`` seconds."""
    times = []
    for _ in range(runs):
        time.sleep(pause)
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def line(label: str, value: float, base: float | None = None, base_label: str = "", target: str = "") -> None:
    ratio = f"  = {value / base:5.2f}x {base_label}" if base else ""
    print(f"  {label:44s} {value * 1000:8.0f} ms{ratio}{'   target ' + target if target else ''}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--suite", action="store_true", help="also time the README's test command")
    ap.add_argument("--watch-katas", default="", metavar="NAME,...",
                    help="time save -> verdict for these katas only (default: every kata)")
    args = ap.parse_args()
    runs = args.runs
    catalog = load_catalog()
    tmp = Path(tempfile.mkdtemp(prefix="kata-bench-"))
    ws = tmp / "ws"
    subprocess.run([*kata_cmd(), "init", str(ws)], check=True, stdout=subprocess.DEVNULL)
    strides = catalog.get("strides")
    shutil.copyfile(strides.solution_path, ws / strides.rel_stub)

    print(f"torch-katas benchmark — medians of {runs} runs, {os.cpu_count()} cores, "
          f"{len(catalog.katas)} katas\n")
    if not Path(importlib.util.cache_from_source(str(installed_cli()))).exists():
        print("  note: the installed checker package has no bytecode cache (an editable install "
              "with\n  PYTHONDONTWRITEBYTECODE?): every kata command below compiles it first.\n")
    base = timed([sys.executable, "-c", "import torch"], ws, runs)
    line('baseline: python -c "import torch"', base)
    print()
    for cmd in ("next", "list", "hint", "progress"):
        line(f"kata {cmd}", timed([*kata_cmd(), cmd], ws, runs), base, "import torch", "<= 150 ms")
    print()
    no_worker = {**os.environ, "KATA_NO_WORKER": "1"}
    # strides by name: once it passes, a bare `kata check` would judge the next kata's stub
    check = [*kata_cmd(), "check", "strides"]
    cold = timed(check, ws, runs, env=no_worker)
    line("kata check, cold (strides solved)", cold, base, "import torch", "<= 1.6x")

    # Warm: a worker for this workspace, and the file watcher, as `kata watch` runs them.
    from checker import worker
    from checker.runner import run_checks
    from checker.watch import file_events

    state = ws / ".kata"
    worker.start(state, wait=120)
    # A later `kata check`: the first check of a workspace leaves a worker behind (started
    # here directly, so its start is not what is timed).
    # A learner edits between two checks (READING seconds here, as for the watch figures),
    # while the worker arms the next run; back to back, a check also waits for that arming.
    timed(check, ws, 1)
    warm = timed(check, ws, 5, pause=READING)
    line("kata check, later (warm worker; median of 5)", warm, base, "import torch", "<= 0.25x")
    line("  the same, back to back (waits for arming)", timed(check, ws, 5), base, "import torch")
    verdicts: dict[str, float] = {}
    waits: dict[str, float] = {}
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    current = {"path": ws / strides.rel_stub}
    watcher = threading.Thread(target=file_events, daemon=True, args=(
        lambda: current["path"].parent, lambda: current["path"].name, events, stop, False))
    watcher.start()
    time.sleep(0.5)
    chosen = set(filter(None, args.watch_katas.split(",")))
    for kata in (k for k in catalog.katas if not chosen or k.name in chosen):
        path = ws / kata.rel_stub
        path.parent.mkdir(parents=True, exist_ok=True)
        current["path"] = path
        source = kata.solution_path.read_text()
        time.sleep(0.6)  # let the watcher move to this folder
        times, waited = [], []
        for i in range(runs + 1):
            time.sleep(READING)
            while not events.empty():
                events.get_nowait()
            t = time.perf_counter()
            path.write_text(source + f"\n# save {i}\n")
            events.get(timeout=10)
            result = run_checks(kata, path, seed=None, use_worker=state)  # as `kata watch` does
            if i:  # the first run warms the check module's page cache
                times.append(time.perf_counter() - t)
                waited.append((result.extra.get("armed") or {}).get("wait", 0.0))
            if not result.passed:
                print(f"  ! {kata.name}: the solution did not pass ({result.status})")
        verdicts[kata.name] = statistics.median(times)
        waits[kata.name] = statistics.median(waited)
    stop.set()
    heaviest = max(verdicts, key=verdicts.get)
    hk = catalog.get(heaviest)
    env = dict(os.environ)
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    report = tmp / "r.json"
    # Plugin autoload on, as a plain runner would: the installed entry point loads the plugin.
    fresh = timed([sys.executable, "-m", "pytest", "-q", str(hk.checks_path),
                   "--kata", hk.name, "--kata-impl", str(hk.solution_path),
                   "--kata-report", str(report)], tmp, max(3, runs // 3), env=env)
    if not report.exists():
        print("  ! the fresh pytest run wrote no report: its figure is not a real baseline")
    print()
    line(f"fresh python -m pytest ({heaviest})", fresh)
    line(f"watch: save -> verdict, heaviest ({heaviest})", verdicts[heaviest], fresh,
         "fresh pytest", "<= 250 ms and <= 0.1x")
    print("\n  watch: save -> verdict, every kata (of which: waiting for the armed processes)")
    for name, value in verdicts.items():
        print(f"    {name:30s} {value * 1000:7.0f} ms   ({waits[name] * 1000:4.0f} ms)")

    # Diagnosis cost on a failing run (strides with a known mistake).
    from checker.mistakes import load_mistakes, materialize

    m = next(m for m in load_mistakes(strides.mistakes_module) if m.exercise == "permute_meta")
    bad = tmp / "bad.py"
    bad.write_text(materialize(strides.solution_path.read_text(), m))
    with_d, without_d = [], []
    for i in range(runs):
        for diag, bucket in ((True, with_d), (False, without_d)):
            t = time.perf_counter()
            run_checks(strides, bad, seed=i, diagnose=diag, use_worker=state)
            bucket.append(time.perf_counter() - t)
    worker.stop(state)
    print()
    extra = statistics.median(with_d) - statistics.median(without_d)
    line("failing run, no diagnosis (warm)", statistics.median(without_d))
    line("diagnosis adds", max(extra, 0.0), statistics.median(without_d), "the run", "<= 200 ms")

    if args.suite:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=ROOT, stdout=subprocess.DEVNULL)
        print()
        line("README test command (python -m pytest -q)", time.perf_counter() - t, None, "", "< 10 min")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
