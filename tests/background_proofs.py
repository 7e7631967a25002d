"""The catalog's proofs, in a process of their own, for the suite's proof tests.

    python tests/background_proofs.py OUT_DIR SUITE_PID --katas NAME... --alternatives PATH...

Started by tests/conftest.py as the first test that times nothing starts (beside the other
tests; those that assert on the proofs run last): it detaches (a
process of its own, below no test, so no test that ends or counts its own descendants ever
meets it, and no test's patching reaches it), proves each kata, then judges each alternative
correct answer on every seed, through two warm workers. Each result is written to
OUT_DIR/<key>.json as it is known, and each proof test waits for its own. It ends when it is
done, when told to (SIGTERM), or when the suite's process is gone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def write(out: Path, key: str, data: object) -> None:
    tmp = out / f".{key}.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, out / f"{key}.json")


def alternative_file(kata, path: Path, folder: Path) -> Path:
    """An alternative that takes the exercises it does not vary from the reference
    (``_solution_of``) is judged as one self-contained file, as a learner's is."""
    from checker.mistakes import embed

    source = path.read_text()
    if "_solution_of" not in source:
        return path
    whole = folder / path.name
    whole.write_text(embed(kata.solution_path.read_text(), source,
                           {ex: ex for ex in kata.exercises},
                           label=f"alternative {path.stem}", namespace_name="_alternative"))
    return whole


def prove(out: Path, katas: list[str], alternatives: list[str]) -> None:
    from checker.catalog import load_catalog
    from checker.dev import SEEDS, judge_all, prove_kata, warm_runner

    catalog = load_catalog()
    with warm_runner(streams=2) as run, tempfile.TemporaryDirectory(prefix="kata-alt-") as tmp:
        if getattr(run, "width", 1) != 2:
            raise RuntimeError("the proof workers did not start")
        for name in katas:
            try:
                proofs = prove_kata(catalog.get(name), seed=SEEDS[0], run=run, seeds=SEEDS[1:],
                                    diagnose=True)
                write(out, f"kata-{name}", [dataclasses.asdict(p) for p in proofs])
            except Exception:
                write(out, f"kata-{name}", {"error": traceback.format_exc()})
        for alt in map(Path, alternatives):
            try:
                kata = catalog.get(next(n for n in catalog.names() if alt.stem.startswith(f"{n}_")))
                path = alternative_file(kata, alt, Path(tmp))
                results = judge_all(run, lambda seed, kata=kata, path=path: run(
                    kata, path, seed=seed, diagnose=False), list(SEEDS))
                write(out, f"alt-{alt.stem}", [
                    [seed, r.passed, "" if r.passed else str(r.first_failure() or r.message)]
                    for seed, r in zip(SEEDS, results, strict=True)])
            except Exception:
                write(out, f"alt-{alt.stem}", {"error": traceback.format_exc()})


def watch_suite(pid: int) -> None:
    """End this process (cleanly: its workers stop) once the suite's process is gone."""
    def poll() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=poll, daemon=True).start()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("suite_pid", type=int)
    ap.add_argument("--katas", nargs="*", default=[])
    ap.add_argument("--alternatives", nargs="*", default=[])
    args = ap.parse_args()
    if os.fork():  # detach: the suite waits for this first process only
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the workers stop on the way out
    (args.out / "pid").write_text(str(os.getpid()))
    watch_suite(args.suite_pid)
    log = os.open(args.out / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    try:
        prove(args.out, args.katas, args.alternatives)
    except BaseException:
        traceback.print_exc()
        raise
    finally:
        (args.out / "done").write_text("")


if __name__ == "__main__":
    main()
