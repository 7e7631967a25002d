"""Grading speed: `kata grade` on 100 submissions of one tensor kata, printed as a rate.

    .venv/bin/python benchmarks/grade.py [--submissions 100] [--jobs 2] [--kata strides]

The submissions are a mix of the reference solution, the pristine stub and every shipped
mistake of the kata (each in the workspace layout, katas/NN_name/name.py). The figure is the
wall time of the whole `kata grade` command (worker start included), as submissions per
minute, against the target of 60 per minute on the 2-core development machine; the line
also gives the time of one cold `kata check --file` measured in the same run, as a baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checker.catalog import load_catalog  # noqa: E402
from checker.mistakes import load_mistakes, materialize  # noqa: E402

TARGET_PER_MINUTE = 60


def make_submissions(base: Path, kata, count: int) -> dict[str, int]:
    """``count`` submissions cycling solution, stub, mistakes; returns how many of each."""
    solution = kata.solution_path.read_text(encoding="utf-8")
    sources = [("solution", solution), ("stub", kata.stub_path.read_text(encoding="utf-8"))]
    sources += [("mistake", materialize(solution, m)) for m in load_mistakes(kata.mistakes_module)]
    mix: dict[str, int] = {}
    for i in range(count):
        kind, text = sources[i % len(sources)]
        path = base / f"sub{i:03d}" / kata.rel_stub
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
        mix[kind] = mix.get(kind, 0) + 1
    return mix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--kata", default="strides")
    args = parser.parse_args()
    kata = load_catalog().get(args.kata)
    exe = str(Path(sys.executable).with_name("kata"))
    with tempfile.TemporaryDirectory(prefix="kata-grade-bench-") as tmp:
        base = Path(tmp)
        mix = make_submissions(base, kata, args.submissions)
        subs = sorted(str(p) for p in base.iterdir())
        start = time.perf_counter()
        subprocess.run([exe, "check", kata.name, "--file", str(Path(subs[0]) / kata.rel_stub)],
                       capture_output=True, check=False)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        done = subprocess.run([exe, "grade", *subs, "--kata", kata.name, "--jobs",
                               str(args.jobs), "--seed", "1234"], capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"kata grade failed:\n{done.stderr[-2000:]}")
    rows = json.loads(done.stdout)["results"]
    passed = sum(r["passed"] for r in rows)
    rate = len(rows) / wall * 60
    print(f"submissions: {len(rows)} of {kata.name} ({', '.join(f'{v} {k}' for k, v in mix.items())}); "
          f"{passed} pass")
    print(f"baseline: one cold `kata check --file`: {cold * 1000:.0f} ms")
    print(f"kata grade --jobs {args.jobs}: {wall:.1f} s = {rate:.0f} submissions/minute "
          f"({wall / len(rows) * 1000:.0f} ms each, {cold / (wall / len(rows)):.1f}x faster "
          f"than cold checks); target >= {TARGET_PER_MINUTE}/min "
          f"{'met' if rate >= TARGET_PER_MINUTE else 'NOT met'}")


if __name__ == "__main__":
    main()
