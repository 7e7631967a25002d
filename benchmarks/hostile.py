"""Time to verdict when learner code misbehaves, cold and warm, on a shipped kata (strides,
whose per-check time limit is the catalog's default, 10 s).

    .venv/bin/python benchmarks/hostile.py [--kata strides] [--cases NAME,...]

Each case is the reference solution with one hostile addition; the script prints, per case
and path, the seconds from the request to the verdict, the verdict's status and its first
words, and whether any process outlived the run. The figures feed the README's "When your
code misbehaves" table.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checker.catalog import load_catalog  # noqa: E402
from checker.reaper import descendants  # noqa: E402
from checker.runner import run_checks  # noqa: E402

FIRST = "contiguous_strides"
WRAP = f"_real = {FIRST}\n\ndef {FIRST}(*args, **kwargs):\n{{body}}\n    return _real(*args, **kwargs)\n"
CASES = {
    "loop at import": ("head", "while True:\n    pass\n"),
    "loop in __del__": ("wrap", "    class Stuck:\n        def __del__(self):\n"
                                "            while True:\n                pass\n    Stuck()"),
    "recursion at import": ("head", "import sys\nsys.setrecursionlimit(10**7)\n"
                                    "def down(n):\n    return down(n + 1)\ndown(0)\n"),
    "recursion in a function": ("wrap", "    import sys\n    sys.setrecursionlimit(10**7)\n"
                                        "    return contiguous_strides(*args, **kwargs)"),
    "killpg(0) from a function": ("wrap", "    import os, signal\n    os.killpg(0, signal.SIGKILL)"),
    "600 MB of output": ("wrap", "    import os\n    for _ in range(600):\n"
                                 "        os.write(1, b'y' * (1 << 20))"),
    "kills its parent": ("wrap", "    import os\n    os.kill(os.getppid(), 9)"),
    "raises its memory limit": ("wrap", "    import resource\n    inf = resource.RLIM_INFINITY\n"
                                        "    resource.setrlimit(resource.RLIMIT_AS, (inf, inf))"),
    "loop at exit (atexit)": ("head", "import atexit\n\ndef _spin():\n    while True:\n"
                                      "        pass\n\natexit.register(_spin)\n"),
    "timers off then a loop": ("wrap", "    import faulthandler, signal\n"
                                        "    faulthandler.cancel_dump_traceback_later()\n"
                                        "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                                        "    while True:\n        pass"),
    "SIGSTOP at import": ("head", "import signal\nsignal.raise_signal(signal.SIGSTOP)\n"),
    "ctypes fork + setsid": ("wrap", "    import ctypes, time\n    libc = ctypes.CDLL(None)\n"
                                     "    if libc.fork() == 0:\n        libc.setsid()\n"
                                     "        while True:\n            time.sleep(0.1)"),
}


def hostile_file(folder: Path, kata, case: str) -> Path:
    where, code = CASES[case]
    source = kata.solution_path.read_text()
    future, _, rest = source.partition("from __future__ import annotations\n")
    text = (future + "from __future__ import annotations\n" + code + rest if where == "head"
            else source + "\n\n" + WRAP.format(body=code))
    path = folder / f"{kata.name}.py"
    path.write_text(text)
    return path


def measure(kata, path: Path, state: Path | None) -> str:
    before = frozenset(descendants())
    start = time.perf_counter()
    result = run_checks(kata, path, seed=1, use_worker=state)
    took = time.perf_counter() - start
    time.sleep(0.2)
    left = descendants(keep=before)
    first = result.first_failure()
    words = result.message or (first.message if first else "all pass")
    return (f"{took:6.1f} s  {result.status:<10} left {len(left)}  "
            f"{' '.join(words.split())[:110]}")


def killed_cli(kata, path: Path, how: signal.Signals) -> str:
    cli = subprocess.Popen([sys.executable, "-m", "checker.cli", "check", kata.name, "--file",
                            str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    while not (child := descendants(cli.pid)):
        time.sleep(0.02)
    time.sleep(1.0)
    cli.send_signal(how)
    start = time.perf_counter()
    cli.wait()
    while any(os.path.exists(f"/proc/{pid}") and "Z" not in open(f"/proc/{pid}/stat").read().split(")")[-1][:3]
              for pid in child):
        time.sleep(0.02)
    return f"{time.perf_counter() - start:6.2f} s until the check child was gone"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kata", default="strides")
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    from checker import worker

    kata = load_catalog().get(args.kata)
    with tempfile.TemporaryDirectory() as tmp:
        folder, state = Path(tmp), Path(tmp) / "state"
        state.mkdir()
        proc = worker.start(state, wait=180)
        try:
            for case in filter(None, args.cases.split(",")):
                path = hostile_file(folder, kata, case)
                for label, use in (("cold", None), ("warm", state)):
                    if use is not None and not worker.is_running(state):
                        worker.start(state, wait=180)
                    print(f"{case:<26} {label}  {measure(kata, path, use)}", flush=True)
            path = hostile_file(folder, kata, "loop at import")
            for how in (signal.SIGKILL, signal.SIGHUP):
                print(f"kata check {how.name:<15} {killed_cli(kata, path, how)}", flush=True)
            proc = proc or worker.start(state, wait=180)
            os.kill(worker.serving_pid(state), signal.SIGSTOP)  # the worker, not its keeper
            print(f"{'stopped worker':<26} warm  {measure(kata, kata.solution_path, state)}")
        finally:
            worker.stop(state)
            if proc is not None and proc.poll() is None:
                proc.kill()


if __name__ == "__main__":
    main()
