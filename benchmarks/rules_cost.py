"""What the dispatcher rules (checker.sandbox.dispatch) cost a verdict, kata by kata.

Run from a checkout: .venv/bin/python benchmarks/rules_cost.py [--runs N] [KATA ...]

For each kata whose catalog entry puts rules at the dispatcher, its solution's checks run in one
process (torch, torch._dynamo and pytest imported first, as in a warm worker), alternately
with the rules' window as shipped and with it replaced by a no-op; the figure is the CPU time of
the run itself (pytest.main), median over N runs of each, and the ratio of the two.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import contextlib, json, os, sys, time
import pytest, torch, torch._dynamo  # as a warm worker imports them
torch.set_num_threads(1)
from checker.catalog import load_catalog
from checker.launch import pytest_args
from checker.sandbox import window
from checker.sandbox.window import prepare_rules
kata = load_catalog().get(sys.argv[1])
if sys.argv[2] == "off":
    window.dispatcher_rules = lambda rules: contextlib.nullcontext()
prepare_rules(kata.rules)
args = pytest_args(kata, kata.solution_path, 7, __import__("pathlib").Path(sys.argv[3]), diagnose=False)
os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
t0 = time.process_time()
code = pytest.main(args)
print(json.dumps({"cpu": time.process_time() - t0, "code": int(code)}))
"""


def one(kata: str, mode: str) -> float | None:
    """CPU seconds of one run of ``kata``'s solution, or None (and why, printed) if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", CHILD, kata, mode, str(Path(tmp) / "r.json")],
                             capture_output=True, text=True, cwd=ROOT,
                             env=dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    result = json.loads(line) if line.startswith("{") else None
    if result is None or result["code"] != 0:
        print(f"{kata} (rules {mode}): the solution did not pass this run\n{out.stdout[-1000:]}")
        return None
    return result["cpu"]


def main() -> None:
    from checker.catalog import load_catalog
    from checker.sandbox.dispatch import Policy

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("katas", nargs="*")
    opts = parser.parse_args()
    names = opts.katas or [k.name for k in load_catalog().katas if Policy(k.rules).active]
    print(f"{'kata':24s} {'rules off':>10s} {'rules on':>10s} {'ratio':>7s}   (CPU s, median of {opts.runs})")
    for name in names:
        times: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(opts.runs):
            for mode in ("off", "on"):
                cpu = one(name, mode)
                if cpu is not None:
                    times[mode].append(cpu)
        if not (times["off"] and times["on"]):
            continue
        off, on = (statistics.median(times[m]) for m in ("off", "on"))
        print(f"{name:24s} {off:10.2f} {on:10.2f} {on / off:7.2f}", flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
