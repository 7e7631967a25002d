"""Builds the C++ a kata's learner writes (torch.utils.cpp_extension.load_inline), fast.

A learner's edit must come back within seconds, not the minute a plain ``load_inline`` of
``torch/extension.h`` takes on a small machine. Four things make it so:

- **a precompiled header** (GCC's ``.gch``) of the headers the katas use (``torch/library.h``,
  ATen's Tensor, autograd's ``Function``, pybind11), built once per torch version and
  compiler flags and force-included (``-include``) into every build: a translation unit
  then parses only its own lines;
- **no implicit ``torch/extension.h``** (``no_implicit_headers=True``): sources name the
  headers they need;
- **a cache keyed by the hash of everything the build reads** (the sources, the flags, the
  torch version, the compiler): the same source is never compiled twice, in any process. The
  cache lives in ``$KATA_CPP_CACHE``, else ``$XDG_CACHE_HOME/torch-katas/cpp/`` (by default
  ``~/.cache/torch-katas/cpp/``), shared by every workspace: the header is built once;
- **one translation unit per check's build**: the learner's source of one exercise plus
  whatever the check supplies itself, so an edit rebuilds only that exercise.

The operator namespace comes from that hash too (``kata_<16 hex>``, the macro ``KATA_NS``
and the string ``KATA_NS_STR``): a new source gets a new namespace, so one process can load
any number of versions, and the same source is simply the library already loaded.

While the compiler runs, a live line ("compiling your extension… 12 s") goes to the
terminal the run was started from (``$KATA_PROGRESS_TTY``, set by the runner when its stderr
is one), else to stderr. A compile error reports the compiler's FIRST error, in the learner's
own ``.py`` file and line (the sources carry ``#line`` directives), with the line and caret the
compiler printed.

Builds run compilers and ninja: they are the judge's code, never run inside a rules window
(learner Python still cannot start a process). Learner C++, once loaded, is native code that
the audit hook cannot see into; ``screen`` refuses, before anything is compiled, the source
constructs that would reach past the kata (processes, files, threads, dynamic loading,
inline assembly, the Python C API, macros of one's own, registrations outside ``KATA_NS``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "KATA_CPP_CACHE"
TTY_ENV = "KATA_PROGRESS_TTY"  # checker.launch.PROGRESS_TTY (set by the runner)
NOT_BUILT = "your C++ did not build"  # how a check's message about a failed build begins
BUILD_LIMIT_S = 600.0  # a compile that takes longer is stopped
_FORMAT = 1  # bump when what a cache entry holds changes

_OPS = ("torch/library.h", "ATen/core/Tensor.h", "ATen/Dispatch.h", "ATen/ExpandUtils.h",
        "ATen/TensorOperators.h", "ATen/ops/empty.h")
# One header per kind of build: a smaller header loads faster, and a build pays only for
# what its kind includes (autograd's Function alone doubles the header).
PCH_KINDS = {
    "ops": _OPS,
    "autograd": (*_OPS, "torch/csrc/autograd/custom_function.h"),
    "pybind11": ("pybind11/pybind11.h", "pybind11/stl.h"),
}


def pch_kind(texts: list[str]) -> str:
    """Which precompiled header suits sources that include what ``texts`` include."""
    included = " ".join(re.findall(r"#\s*include\s*[<\"]([^>\"]+)", "\n".join(texts)))
    if "pybind11/" in included and "torch/" not in included.replace("torch/library.h", ""):
        return "pybind11"
    if re.search(r"torch/(csrc/autograd|extension\.h|torch\.h|all\.h)", included):
        return "autograd"
    return "ops"


class BuildError(Exception):
    """The sources did not compile (or were refused): the message names the first error."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Chunk:
    """Source text for one translation unit: ``file``/``line`` say where its first line is
    (a ``#line`` directive maps the compiler's messages there); None for generated text."""

    text: str
    file: str | None = None
    line: int = 1


@dataclass(frozen=True)
class Built:
    """A loaded build: its operator namespace, the Python module (pybind11 builds), the
    shared library, and whether it came from the cache."""

    namespace: str
    module: object | None
    library: Path
    seconds: float
    cached: bool


# ----------------------------------------------------------------------------- where


def cache_root() -> Path:
    """``$KATA_CPP_CACHE``, else the user's cache folder: one precompiled header and one
    cache for every workspace (and every test run) of this user."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "torch-katas" / "cpp"


def _compiler() -> str:
    from torch.utils.cpp_extension import get_cxx_compiler

    return get_cxx_compiler()


def _includes() -> list[str]:
    from torch.utils.cpp_extension import include_paths

    paths = include_paths("cpu")
    python = sysconfig.get_path("include", scheme="posix_prefix")
    return [*paths, python] if python else paths


def _base_flags() -> list[str]:
    """The flags load_inline gives every compile (torch.utils.cpp_extension
    ``_write_ninja_file_to_build_library``), less the extension's name."""
    flags = ["-DTORCH_API_INCLUDE_EXTENSION_H"]
    for inc in _includes():
        flags += ["-isystem", inc]
    return [*flags, "-fPIC", "-std=c++20"]


def _identity() -> str:
    import torch

    return f"{_FORMAT}|{torch.__version__}|{torch.__file__}|{_compiler()}|{sys.version}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- live line


class _Progress:
    """'compiling your extension… 12 s', redrawn each second on a terminal: the one named by
    ``$KATA_PROGRESS_TTY`` (a check run's own output goes to a file), else stderr if it is
    one. Nothing is written anywhere else: a check's output is the learner's to read."""

    def __init__(self, what: str):
        self.what = what
        self.start = time.monotonic()
        self.out = None
        tty = os.environ.get(TTY_ENV)
        if tty:
            with contextlib.suppress(OSError):
                self.out = open(tty, "w")  # noqa: SIM115 — closed in done()
        elif sys.__stderr__ is not None and sys.__stderr__.isatty():
            self.out = sys.__stderr__

    def tick(self) -> None:
        if self.out is not None:
            with contextlib.suppress(Exception):
                self.out.write(f"\r\x1b[2K{self.what}… {time.monotonic() - self.start:.0f} s")
                self.out.flush()

    def done(self) -> None:
        if self.out is not None:
            with contextlib.suppress(Exception):
                self.out.write("\r\x1b[2K")
                self.out.flush()
                if self.out is not sys.__stderr__:
                    self.out.close()


@contextlib.contextmanager
def _clock_paused() -> Iterator[None]:
    """A build is the judge's work: the check's own time limit (pytest-timeout's timer and
    the backstop of checker.stuck) stops while it runs, and resumes with what was left."""
    left, interval = signal.getitimer(signal.ITIMER_REAL)
    if left:
        signal.setitimer(signal.ITIMER_REAL, 0)
    stuck = sys.modules.get("checker.stuck")
    if stuck is not None:
        stuck.backstop(BUILD_LIMIT_S + 60)
    start = time.monotonic()
    try:
        yield
    finally:
        if stuck is not None:
            stuck.excuse(time.monotonic() - start)  # the check's duration does not count it
            stuck.backstop(2 * max(left, 1.0) + 5)
        if left:
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def _run_with_progress(what: str, work) -> object:
    """Run ``work()`` in a thread while the live line counts the seconds."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    progress = _Progress(what)
    thread = threading.Thread(target=target, name="kata-cpp-build", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            progress.tick()
            thread.join(1.0)
    finally:
        progress.done()
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ----------------------------------------------------------------------------- the header


def precompiled_header(root: Path, kind: str = "ops") -> Path:
    """The force-included header of ``kind`` (see PCH_KINDS), its ``.gch`` built first if this
    torch has none yet."""
    flags = _base_flags()
    text = "".join(f"#include <{h}>\n" for h in PCH_KINDS[kind])
    key = hashlib.sha256(f"{_identity()}|{flags}|{text}".encode()).hexdigest()[:16]
    folder = root / "pch" / f"{kind}-{key}"
    header, gch = folder / "kata_pch.h", folder / "kata_pch.h.gch"
    if gch.is_file():
        return header
    with _locked(folder / "lock"):
        if gch.is_file():
            return header
        header.write_text(text, encoding="utf-8")
        partial = folder / "kata_pch.h.gch.partial"
        command = [_compiler(), *flags, "-x", "c++-header", str(header), "-o", str(partial)]

        def work() -> subprocess.CompletedProcess:
            return subprocess.run(command, capture_output=True, text=True,
                                  timeout=BUILD_LIMIT_S, check=False)

        with _clock_paused():
            done = _run_with_progress(
                f"preparing the precompiled header for {kind} builds (once per torch "
                "version)", work)
        if done.returncode != 0:
            raise BuildError(f"the precompiled header did not build:\n{done.stderr[-2000:]}",
                             done.stderr)
        os.replace(partial, gch)
    return header


# ----------------------------------------------------------------------------- screening

_ALLOWED_INCLUDE = re.compile(r"(torch|ATen|c10|pybind11)/[\w/.]+\.h|[a-z_]+")
_FORBIDDEN_HEADERS = {"fstream", "filesystem", "thread", "future", "csignal", "signal",
                      "cstdio", "stdio", "unistd", "dlfcn", "spawn", "sys", "mutex"}
_FORBIDDEN_WORDS = {
    **dict.fromkeys(("system", "popen", "fork", "vfork", "execl", "execlp", "execle", "execv",
                     "execvp", "execvpe", "posix_spawn", "posix_spawnp", "clone", "syscall",
                     "kill", "raise", "signal", "sigaction", "setrlimit", "ptrace", "exit",
                     "_exit", "abort", "quick_exit", "atexit"), "processes and signals"),
    **dict.fromkeys(("fopen", "freopen", "open", "openat", "creat", "ifstream", "ofstream",
                     "fstream", "filebuf", "remove", "rename", "unlink", "mmap", "mprotect",
                     "getenv", "setenv", "putenv", "filesystem", "chdir"), "files and the environment"),
    **dict.fromkeys(("thread", "jthread", "async", "pthread_create", "detach"), "threads"),
    **dict.fromkeys(("dlopen", "dlsym", "dlmopen", "asm", "__asm", "__asm__", "extern",
                     "Library", "fallback", "registerDef", "registerImpl", "registerFallback",
                     "setGlobalContext", "globalContext"), "native and dispatcher internals"),
    **dict.fromkeys(("exec", "eval", "eval_file", "import", "globals", "builtins",
                     "module_", "reinterpret_borrow", "reinterpret_steal"),
                    "the Python interpreter"),
}
_STRINGS = re.compile(r'R"(?P<d>[^(\s]*)\((?:.|\n)*?\)(?P=d)"|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'')
_COMMENTS = re.compile(r"//[^\n]*|/\*(?:.|\n)*?\*/")
_LIBRARY_MACRO = re.compile(r"\bTORCH_LIBRARY(?:_IMPL|_FRAGMENT)?\s*\(\s*(\w+)")


def _blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def screen(text: str) -> tuple[int, str] | None:
    """(line, why) for the first construct a kata's C++ may not use, or None."""
    code = _COMMENTS.sub(_blank, text)
    code = _STRINGS.sub(lambda m: '"' + _blank(m)[1:-1] + '"', code)

    def line_of(pos: int) -> int:
        return code.count("\n", 0, pos) + 1

    for m in re.finditer(r"^[ \t]*#[ \t]*(\w+)(.*)$", code, re.M):
        directive, rest = m.group(1), m.group(2).strip()
        if directive == "include":
            name = text[m.start(2):m.end(2)].strip()
            inner = name[1:-1] if len(name) > 2 and name[0] in "<\"" else ""
            stem = inner.split("/")[0].split(".")[0]
            if not _ALLOWED_INCLUDE.fullmatch(inner) or stem in _FORBIDDEN_HEADERS:
                return line_of(m.start()), (f"#include {name}: only torch, ATen, c10 and pybind11 "
                                            "headers and the standard library's (no files, "
                                            "threads or processes) are allowed")
        elif directive in ("define", "undef", "line", "pragma") or "##" in rest:
            return line_of(m.start()), (f"#{directive}: no preprocessor directives but #include "
                                        "(KATA_NS and KATA_NS_STR are defined for you)")
        elif directive not in ("if", "ifdef", "ifndef", "else", "elif", "endif"):
            return line_of(m.start()), f"#{directive} is not allowed here"
    for m in _LIBRARY_MACRO.finditer(code):
        if m.group(1) != "KATA_NS":
            return line_of(m.start()), (f"{m.group(0)}: register in your namespace only — the "
                                        "first argument is KATA_NS")
    for m in re.finditer(r"[A-Za-z_]\w*", code):
        word = m.group(0)
        why = _FORBIDDEN_WORDS.get(word)
        if why is None and (word.startswith(("Py", "_Py")) or word.startswith("PYBIND11_")
                            and word != "PYBIND11_MODULE"):
            why = "the Python C API (pybind11's py:: API is the way in)"
        if why is not None:
            return line_of(m.start()), f"`{word}` ({why}) is off-limits in kata C++"
    return None


# ----------------------------------------------------------------------------- errors


def first_error(log: str, files: dict[str, str]) -> str:
    """The compiler's first error, the source line and caret it printed, and — when it lies
    in a header — the learner's line that led there; ``files`` maps the #line names to the
    paths the learner knows."""
    lines = log.splitlines()
    index = next((i for i, ln in enumerate(lines) if re.search(r"\b(fatal )?error\b:", ln)), None)
    if index is None:
        tail = "\n".join(lines[-15:])
        return f"the build failed without a compiler error:\n{tail}"

    def mapped(text: str) -> str:
        for short, full in files.items():
            text = re.sub(rf"(?<![\w/.-]){re.escape(short)}:", f"{full}:".replace("\\", "\\\\"),
                          text)
        return text

    shown = [mapped(lines[index].strip())]
    for follow in lines[index + 1:index + 3]:
        if re.match(r"^\s*\d*\s*\|", follow):
            shown.append(follow.rstrip())
    own = [ln for ln in lines[:index + 40] if any(f"{short}:" in ln for short in files)]
    if own and not any(f"{short}:" in lines[index] for short in files):
        shown.append("  from your code: " + mapped(own[0].strip()))
    return "\n".join(shown)


# ----------------------------------------------------------------------------- the build


def chunk_in(text: str, path: str | os.PathLike) -> Chunk:
    """``text`` as a chunk of the file ``path``: where the file holds it verbatim (a raw
    string literal), the compiler's messages point at the file's own lines."""
    try:
        whole = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        whole = ""
    at = whole.find(text) if text else -1
    if at < 0:
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
        found = whole.find(first) if first else -1
        if found < 0:
            return Chunk(text, str(path), 1)
        before = text[:text.find(first)].count("\n")
        return Chunk(text, str(path), max(1, whole.count("\n", 0, found) + 1 - before))
    return Chunk(text, str(path), whole.count("\n", 0, at) + 1)



def _source(chunks: list[Chunk], namespace: str) -> tuple[str, dict[str, str]]:
    parts = [f"#define KATA_NS {namespace}", f'#define KATA_NS_STR "{namespace}"']
    files: dict[str, str] = {}
    for chunk in chunks:
        if chunk.file:
            short = Path(chunk.file).name
            files[short] = chunk.file
            parts.append(f'#line {chunk.line} "{short}"')
        else:
            parts.append('#line 1 "the check\'s own code"')
        parts.append(chunk.text)
    return "\n".join(parts) + "\n", files


_LOADED: dict[str, Built] = {}


def _diagnosing() -> bool:
    """Whether a diagnosis is replaying a check (checker.diagnosis.run_check): it may try
    every known mistake, and compiling each would cost minutes, so it uses only cached
    builds (those of the learner's own source, the reference's once built, and the mistakes'
    that a `kata dev check` built)."""
    diagnosis = sys.modules.get("checker.diagnosis")
    return bool(diagnosis is not None and getattr(diagnosis, "_TRACES", None))


def build(chunks: list[Chunk], *, python_module: bool = False,
          root: Path | None = None, what: str = "compiling your extension") -> Built:
    """Compile ``chunks`` as one translation unit and load it (from the cache if it is there).
    Raises :class:`BuildError` with the first compiler error, mapped to the learner's file."""
    for chunk in chunks:
        if chunk.file is not None:
            refused = screen(chunk.text)
            if refused:
                line, why = refused
                raise BuildError(f"{chunk.file}:{chunk.line + line - 1}: {why}.")
    root = Path(root) if root is not None else cache_root()
    flags = _base_flags()
    # keyed by the text alone (not where it sits: #line only changes error messages, and
    # failed builds are not kept), so the same source is one build in any file
    key = hashlib.sha256(
        f"{_identity()}|{flags}|{PCH_KINDS}|{python_module}|".encode()
        + b"\0".join(c.text.encode() for c in chunks)).hexdigest()
    namespace = f"kata_{key[:16]}"
    if namespace in _LOADED:
        return _LOADED[namespace]
    folder = root / "builds" / key[:2] / key[2:20]
    library = folder / f"{namespace}.so"
    start = time.perf_counter()
    cached = library.is_file()
    module = None
    if not cached and _diagnosing():
        raise BuildError("not compiled during a diagnosis (it replays only what was built)")
    if not cached:
        header = precompiled_header(root, pch_kind([c.text for c in chunks]))
        with _locked(folder.parent / f"{key[2:20]}.lock"):
            if library.is_file():
                cached = True
            else:
                module = _compile(chunks, namespace, folder, header, python_module, what)
    if cached:
        module = _load(library, namespace, python_module)
    built = Built(namespace, module, library, time.perf_counter() - start, cached)
    _LOADED[namespace] = built
    return built


def _compile(chunks: list[Chunk], namespace: str, folder: Path, header: Path,
             python_module: bool, what: str) -> object | None:
    """load_inline: write the source, run ninja (compile, link), load the result."""
    from torch.utils.cpp_extension import load_inline

    text, files = _source(chunks, namespace)
    folder.mkdir(parents=True, exist_ok=True)
    # load_inline's own lock file (torch's FileBaton): this build holds the cache's lock, so
    # one that is there was left by a build that was killed, and would be waited on forever
    (folder / "lock").unlink(missing_ok=True)
    _ninja_on_path()
    cflags = ["-include", str(header), "-Winvalid-pch"]

    def work() -> object | None:
        return load_inline(namespace, [text], no_implicit_headers=True,
                           is_python_module=python_module, build_directory=str(folder),
                           extra_cflags=cflags, verbose=False)

    try:
        with _clock_paused():
            return _run_with_progress(what, work)
    except RuntimeError as exc:
        log = str(exc)
        raise BuildError(first_error(log, files), log) from None


def _ninja_on_path() -> None:
    """load_inline runs ``ninja`` from PATH; the ninja package (a dependency) may have put
    it beside this interpreter rather than on the PATH the run inherited."""
    import shutil

    if shutil.which("ninja"):
        return
    with contextlib.suppress(ImportError, AttributeError):
        import ninja

        os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, os.environ.get("PATH", "")])


def _load(library: Path, namespace: str, python_module: bool) -> object | None:
    if python_module:
        import importlib.util

        spec = importlib.util.spec_from_file_location(namespace, library)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    import torch

    torch.ops.load_library(str(library))
    return None
