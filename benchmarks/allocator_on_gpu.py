"""The caching_allocator kata's reference model against PyTorch's own CUDA caching allocator.

    python benchmarks/allocator_on_gpu.py [--traces 200] [--ops 60] [--seed 0] [--json FILE]

Needs a CUDA device (it says so and exits 2 without one). It replays the kata's fixed edge
traces and ``--traces`` random traces, half of them under a memory cap, with real uint8
tensors, exactly as the kata's GPU check does (``replay_on_device`` in
checker/checks/test_caching_allocator.py), and compares ``torch.cuda.memory_stats()`` with
the kata's reference model key by key. It prints how many traces agreed; any disagreement is
printed with its trace and makes the exit status 1.

Traces in which a malloc meets two equal best fits are counted apart: there the device picks
by the addresses cudaMalloc returned, which no simulator knows, so the kata's check leaves
them out. The script still replays them and reports how many happened to agree.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=200)
    parser.add_argument("--ops", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write every disagreement here")
    args = parser.parse_args()

    import numpy as np
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to compare with", file=sys.stderr)
        return 2
    for name in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"):
        if os.environ.get(name):
            print(f"{name} is set: the reference models the default policy only", file=sys.stderr)
            return 2
    from checker.checks import test_caching_allocator as kata

    total = torch.cuda.mem_get_info()[1]
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"{total / 2**30:.1f} GiB", flush=True)
    rng = np.random.default_rng(args.seed)
    cases = [(label, trace, capacity) for label, trace, capacity in kata.EDGE_TRACES]
    for i in range(args.traces):
        capacity = None
        if i % 2:
            capacity = int(rng.integers(40, 200)) * kata.MiB + int(rng.integers(0, 3)) * 512
        untied = i % 4 < 3  # a quarter keep their ties: counted apart
        cases.append((f"random {i}" + (" capped" if capacity else ""),
                      kata.random_trace(rng, args.ops, capacity, untied=untied), capacity))

    counts = {"agree": 0, "disagree": 0, "tied agree": 0, "tied disagree": 0}
    ops = {"malloc": 0, "free": 0, "empty_cache": 0, "retries": 0, "ooms": 0}
    wrong = []
    start = time.perf_counter()
    for label, trace, capacity in cases:
        steps, reference = kata.replay(trace, capacity)
        fraction = None if capacity is None else kata.fraction_for(capacity, total)
        device = kata.replay_on_device(trace, fraction)
        for op in trace:
            ops[op[0]] += 1
        ops["retries"] += reference["num_alloc_retries"]
        ops["ooms"] += reference["num_ooms"]
        tied = kata.tied(steps)
        same = device == reference
        counts[("tied " if tied else "") + ("agree" if same else "disagree")] += 1
        if not same and not tied:
            keys = {k: {"reference": reference[k], "device": device[k]}
                    for k in kata.STAT_KEYS if reference[k] != device[k]}
            wrong.append({"label": label, "capacity": capacity, "trace": trace, "keys": keys})
            print(f"DISAGREE {label}: {keys}\n  {kata.trace_text(trace, capacity)}", flush=True)
    took = time.perf_counter() - start
    print(f"{len(cases)} traces ({ops['malloc']} mallocs, {ops['free']} frees, "
          f"{ops['empty_cache']} empty_cache; the reference retried {ops['retries']} times and "
          f"ran out of memory {ops['ooms']} times) in {took:.1f} s")
    print(f"untied: {counts['agree']} agree, {counts['disagree']} disagree; "
          f"tied (left out by the kata): {counts['tied agree']} agree, "
          f"{counts['tied disagree']} disagree")
    if args.json is not None:
        args.json.write_text(json.dumps({"counts": counts, "ops": ops, "wrong": wrong}, indent=1))
    return 1 if counts["disagree"] else 0


if __name__ == "__main__":
    sys.exit(main())
