"""How long the cpp_extension kata's builds take: the first build, a rebuild after an edit,
and a plain ``load_inline`` of the same source with ``torch/extension.h`` (its default).

    .venv/bin/python benchmarks/cpp_build.py

Each figure is wall time, measured in this one run on this machine (a fresh, empty cache):
  first build   the precompiled header (once per torch version) + the first compile and link
  rebuild       the same source after an edit (a changed constant): one compile and link
  cached        the same source again, in this process's next build call (a cache hit)
  plain         load_inline(name, [source]) as its documentation shows it: torch/extension.h
                included, no precompiled header, its own build folder
The target: a rebuild within 15 s on a 2-core machine.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checker.cppbuild import Chunk, build  # noqa: E402


def _reference():
    path = ROOT / "solutions" / "25_cpp_extension" / "cpp_extension.py"
    if not path.is_file():  # the kata's number follows its place in the catalog
        path = next((ROOT / "solutions").glob("*_cpp_extension/cpp_extension.py"))
    spec = importlib.util.spec_from_file_location("cpp_extension_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def main() -> None:
    from torch.utils.cpp_extension import load_inline

    reference, path = _reference()
    source = reference.cpu_operator() + reference.meta_kernel()
    edited = source.replace("d * d", "d * d * 1")
    with tempfile.TemporaryDirectory(prefix="kata-cpp-bench-") as tmp:
        root = Path(tmp) / "cache"
        start = time.perf_counter()
        build([Chunk(source, str(path))], root=root)
        first = time.perf_counter() - start
        start = time.perf_counter()
        build([Chunk(edited, str(path))], root=root)
        rebuild = time.perf_counter() - start
        start = time.perf_counter()
        build([Chunk(edited, str(path))], root=root)
        cached = time.perf_counter() - start
        plain_dir = Path(tmp) / "plain"
        plain_dir.mkdir()
        plain_source = source.replace("KATA_NS_STR", '"kata_bench_plain"').replace(
            "KATA_NS", "kata_bench_plain")
        start = time.perf_counter()
        load_inline("kata_bench_plain", [plain_source], is_python_module=False,
                    build_directory=str(plain_dir))
        plain = time.perf_counter() - start
    cpus = os.cpu_count()
    print(f"machine: {cpus} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"first build (header + compile): {first:6.1f} s")
    print(f"rebuild after an edit:          {rebuild:6.1f} s   (target 15 s)")
    print(f"cached (same source again):     {cached:6.3f} s")
    print(f"plain load_inline, extension.h: {plain:6.1f} s")
    print(f"rebuild / plain: {rebuild / plain:.2f}   first build / plain: {first / plain:.2f}")


if __name__ == "__main__":
    main()
