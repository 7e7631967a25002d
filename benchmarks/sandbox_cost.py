"""What the sandbox costs one call into learner code, printed as microseconds per call.

    .venv/bin/python benchmarks/sandbox_cost.py [--calls N]

In one process that has imported what a check process imports (torch, numpy, pytest, the
checker), time a rules window around a trivial learner function: first as the window was
before the sandbox (no audit hook, no snapshot), then with the audit hook installed and the
integrity snapshot taken, as in a check process. A warm verdict makes a few hundred such
calls at most; the whole-verdict effect is measured by timing warm runs (see the README).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def per_call(window, rules, filename: str, calls: int) -> float:
    def learner(x):
        return x + 1

    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(calls):
            with window(rules, filename):
                learner(i)
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    import _pytest.python  # noqa: F401  (what a check process has loaded)
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401

    import checker.helpers  # noqa: F401
    import checker.plugin  # noqa: F401
    from checker.catalog import load_catalog
    from checker.sandbox import audit
    from checker.sandbox.window import rules_window

    rules = load_catalog(None).get("adam").rules  # a kata with forbidden callables
    before = per_call(rules_window, rules, __file__, args.calls)
    scratch = tempfile.mkdtemp(prefix="kata-bench-")
    audit.install()
    audit.configure(__file__, scratch, scratch, ())
    audit.protect(())
    after = per_call(rules_window, rules, __file__, args.calls)
    print(f"rules window per call, no sandbox      {before:8.1f} us")
    print(f"rules window per call, with the sandbox {after:8.1f} us  (+{after - before:.1f} us)")


if __name__ == "__main__":
    main()
