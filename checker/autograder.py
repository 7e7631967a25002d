"""Autograders for the engines classrooms already use: Gradescope and GitHub Classroom.

``gradescope_bundle`` writes the bundle Gradescope runs: ``setup.sh`` (installs Python, the
CPU build of torch and this torch-katas, which the bundle carries), and ``run_autograder``,
which grades ``/autograder/submission`` with ``kata grade --format gradescope`` into
``/autograder/results/results.json`` (one test per exercise). ``AUTOGRADER_ROOT`` and
``KATA`` override ``/autograder`` and the ``kata`` command, so the bundle can be run locally.

``github_workflow`` writes ``.github/workflows/classroom.yml`` with GitHub Classroom's
standard steps: one ``autograding-command-grader`` step per kata (its points: the kata's
exercises, all or nothing, as that grader scores) and the ``autograding-grading-reporter``.
"""

from __future__ import annotations

import importlib.metadata
import shlex
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from checker.catalog import PACKAGE_DIR, Kata, data_root

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when the autograder image is built.
set -euo pipefail
cd /autograder/source
if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
  apt-get update && apt-get install -y python3 python3-venv python3-pip
fi
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q torch=={torch} --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install -q ./torch-katas
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission; it always leaves a results.json behind.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
KATA="${{KATA:-/autograder/venv/bin/kata}}"
mkdir -p "$ROOT/results"
RESULTS="$ROOT/results/results.json"
if ! "$KATA" grade "$ROOT/submission" {katas} --format gradescope --output "$RESULTS" \\
     --jobs 2 2> "$ROOT/results/grade.log"; then
  if [ ! -s "$RESULTS" ]; then
    printf '{{"score": 0, "output": "The autograder could not grade this submission: %s"}}\\n' \\
      "$(tail -c 300 "$ROOT/results/grade.log" | tr -d '"\\\\' | tr '\\n' ' ')" > "$RESULTS"
  fi
fi
exit 0
"""

BUNDLE_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "torch-katas"
version = "{version}"
requires-python = ">=3.10"
dependencies = {dependencies}

[project.scripts]
kata = "checker.cli:main"

[project.entry-points.pytest11]
torch_katas = "checker.plugin"

[tool.hatch.build.targets.wheel]
packages = ["checker"]
"""


def _torch_version() -> str:
    return importlib.metadata.version("torch").split("+")[0]


def _dependencies() -> list[str]:
    try:
        requires = importlib.metadata.requires("torch-katas") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    return [r for r in requires if "extra ==" not in r]


def _copy_package(dest: Path) -> None:
    """This torch-katas as an installable source tree: the package with its data inside."""
    from checker import __version__

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_data")
    shutil.copytree(PACKAGE_DIR, dest / "checker", ignore=ignore)
    for part in ("katas", "solutions"):
        shutil.copytree(data_root() / part, dest / "checker" / "_data" / part,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    deps = "[" + ", ".join(f'"{d}"' for d in _dependencies()) + "]"
    (dest / "pyproject.toml").write_text(
        BUNDLE_PYPROJECT.format(version=__version__, dependencies=deps), encoding="utf-8")


def _write_exec(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def gradescope_bundle(katas: Sequence[Kata], output: Path) -> Path:
    """Write the bundle to ``output``: a .zip (what Gradescope takes) or a folder."""
    kata_args = " ".join(f"--kata {shlex.quote(k.name)}" for k in katas)
    with tempfile.TemporaryDirectory(prefix="kata-bundle-") as tmp:
        root = Path(tmp) / "bundle"
        root.mkdir()
        _write_exec(root / "setup.sh", SETUP_SH.format(torch=_torch_version()))
        _write_exec(root / "run_autograder", RUN_AUTOGRADER.format(katas=kata_args))
        _copy_package(root / "torch-katas")
        if output.suffix == ".zip":
            output.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(root.rglob("*")):
                    info = zipfile.ZipInfo.from_file(path, path.relative_to(root).as_posix())
                    if path.is_file():
                        zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
        else:
            if output.exists():
                shutil.rmtree(output)
            shutil.copytree(root, output)
    return output


def _step_id(kata: Kata) -> str:
    return kata.name.replace("_", "-")


def github_workflow(katas: Sequence[Kata], repo_root: Path, *, source: str) -> Path:
    """Write ``.github/workflows/classroom.yml`` under ``repo_root``; returns its path."""
    torch = _torch_version()
    lines = [
        "# Written by `kata autograder github`: GitHub Classroom's autograding, one step per kata.",
        "name: Autograding Tests",
        "'on':",
        "- push",
        "- repository_dispatch",
        "permissions:",
        "  checks: write",
        "  actions: read",
        "  contents: read",
        "jobs:",
        "  run-autograding-tests:",
        "    runs-on: ubuntu-latest",
        "    if: github.actor != 'github-classroom[bot]'",
        "    steps:",
        "    - name: Checkout code",
        "      uses: actions/checkout@v4",
        "    - name: Set up Python",
        "      uses: actions/setup-python@v5",
        "      with:",
        "        python-version: '3.11'",
        "    - name: Install torch-katas",
        "      run: >-",
        f"        pip install -q torch=={torch} --index-url https://download.pytorch.org/whl/cpu",
        f"        && pip install -q {shlex.quote(source)}",
    ]
    for kata in katas:
        sid = _step_id(kata)
        command = f"kata check {kata.name} --file {kata.rel_stub.as_posix()}"
        lines += [
            f"    - name: {kata.name}",
            f"      id: {sid}",
            "      uses: classroom-resources/autograding-command-grader@v1",
            "      with:",
            f"        test-name: {kata.name}",
            "        setup-command: ''",
            f"        command: {command}",
            f"        timeout: {max(1, int(kata.timeout * len(kata.exercises) * 3 // 60) + 1)}",
            f"        max-score: {len(kata.exercises)}",
        ]
    lines += [
        "    - name: Autograding Reporter",
        "      uses: classroom-resources/autograding-grading-reporter@v1",
        "      env:",
        *[f"        {_step_id(k).upper()}_RESULTS: \"${{{{steps.{_step_id(k)}.outputs.result}}}}\""
          for k in katas],
        "      with:",
        f"        runners: {','.join(_step_id(k) for k in katas)}",
    ]
    path = repo_root / ".github" / "workflows" / "classroom.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
