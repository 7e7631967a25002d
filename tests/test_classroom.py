"""Editors and classrooms: pytest in a workspace, JSON/JUnit verdicts, kata grade, autograders.

Everything runs the real thing on the shipped strides kata: the CLI in a subprocess, pytest in
a real workspace, the generated Gradescope bundle and GitHub workflow run locally.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from checker.catalog import load_catalog

KATA = str(Path(sys.executable).with_name("kata"))
CATALOG = load_catalog()
STRIDES = CATALOG.get("strides")
SEED = "4242"


def kata(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([KATA, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=300)


def make_workspace(root: Path, code: str | None = None) -> Path:
    """A real workspace of the shipped catalog; ``code`` replaces strides' stub."""
    done = kata("init", str(root))
    assert done.returncode == 0, done.stderr
    if code is not None:
        (root / STRIDES.rel_stub).write_text(code, encoding="utf-8")
    return root


SOLUTION = STRIDES.solution_path.read_text(encoding="utf-8")


def wrong_answer() -> str:
    """The solution with column-major strides: one exercise wrong, the others right."""
    return SOLUTION + (
        "\n\ndef contiguous_strides(shape):  # noqa: F811\n"
        "    strides, running = [], 1\n"
        "    for size in shape:\n"
        "        strides.append(running)\n"
        "        running *= max(size, 1)\n"
        "    return tuple(strides)\n")


@pytest.fixture(scope="module")
def four(tmp_path_factory) -> dict[str, Path]:
    """A solution, a stub, a wrong answer, and a stub whose progress claims every kata."""
    base = tmp_path_factory.mktemp("subs")
    subs = {
        "solution": make_workspace(base / "solution", SOLUTION),
        "stub": make_workspace(base / "stub"),
        "wrong": make_workspace(base / "wrong", wrong_answer()),
        "forged": make_workspace(base / "forged"),
    }
    claim = {"format_version": 1, "katas": {
        k.name: {"status": "passed", "attempts": 1, "exercises_passed": len(k.exercises),
                 "exercises_total": len(k.exercises), "passed_at": "2026-01-01T00:00:00"}
        for k in CATALOG.katas}}
    (subs["forged"] / ".kata" / "progress.json").write_text(json.dumps(claim))
    # A workspace setting pointing elsewhere is never read either.
    meta = subs["forged"] / ".kata" / "workspace.json"
    meta.write_text(json.dumps({"format_version": 1, "catalog": "/nonexistent/catalog.toml"}))
    return subs


def test_check_format_json_has_the_documented_fields(four):
    done = kata("check", "strides", "--file", str(four["wrong"] / STRIDES.rel_stub),
                "--seed", SEED, "--format", "json")
    assert done.returncode == 1, done.stderr
    verdict = json.loads(done.stdout)
    assert {"kata", "seed", "passed", "exercises", "diagnosis", "duration"} <= set(verdict)
    assert verdict["kata"] == "strides" and verdict["seed"] == int(SEED)
    assert verdict["passed"] is False
    assert [e["name"] for e in verdict["exercises"]] == list(STRIDES.exercises)
    failing = [e for e in verdict["exercises"] if not e["passed"]]
    assert failing and all(e["message"] for e in failing)
    assert all(set(e) >= {"name", "passed", "message"} for e in verdict["exercises"])


def test_check_format_junit_is_valid_junit(four, tmp_path):
    from junitparser import Failure, JUnitXml

    done = kata("check", "strides", "--file", str(four["stub"] / STRIDES.rel_stub),
                "--seed", SEED, "--format", "junit")
    assert done.returncode == 1
    path = tmp_path / "junit.xml"
    path.write_text(done.stdout)
    xml = JUnitXml.fromfile(str(path))
    cases = [case for suite in xml for case in suite]
    assert [c.name for c in cases] == list(STRIDES.exercises)
    assert all(isinstance(c.result[0], Failure) and c.result[0].text for c in cases)

    passed = kata("check", "strides", "--file", str(four["solution"] / STRIDES.rel_stub),
                  "--seed", SEED, "--format", "junit")
    assert passed.returncode == 0
    path.write_text(passed.stdout)
    assert all(c.is_passed for suite in JUnitXml.fromfile(str(path)) for c in suite)


def test_grade_trusts_only_code(four, tmp_path):
    out = tmp_path / "grades.json"
    done = kata("grade", *(str(four[k]) for k in ("solution", "stub", "wrong", "forged")),
                "--kata", "strides", "--seed", SEED, "--output", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["seed"] == int(SEED)
    rows = {Path(r["submission"]).name: r for r in data["results"]}
    assert rows["solution"]["passed"] and rows["solution"]["score"] == len(STRIDES.exercises)
    for name in ("stub", "wrong", "forged"):
        assert not rows[name]["passed"], name
        assert rows[name]["score"] < rows[name]["max_score"] == len(STRIDES.exercises)
    assert rows["stub"]["score"] == 0 and rows["forged"]["score"] == 0
    for row in data["results"]:
        assert set(row) >= {"submission", "kata", "passed", "score", "max_score", "exercises"}


def test_grade_csv_and_missing_or_symlinked_files(four, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "strides.py").write_text(SOLUTION)
    linked = tmp_path / "linked" / "katas" / STRIDES.dirname
    linked.mkdir(parents=True)
    (linked / "strides.py").symlink_to(STRIDES.solution_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    crash = tmp_path / "crash"
    crash.mkdir()
    (crash / "strides.py").write_text("import os\nos.abort()\n")
    done = kata("grade", str(crash), str(flat), str(tmp_path / "linked"), str(empty),
                "--kata", "strides", "--format", "csv", "--jobs", "2", "--no-worker")
    assert done.returncode == 0, done.stderr
    import csv

    rows = {Path(r["submission"]).name: r for r in csv.DictReader(done.stdout.splitlines())}
    assert rows["flat"]["status"] == "passed" and rows["flat"]["score"] == "5"
    assert rows["linked"]["status"] == "missing" and rows["linked"]["score"] == "0"
    assert rows["empty"]["status"] == "missing"
    assert rows["crash"]["status"] in ("crashed", "load_error") and rows["crash"]["score"] == "0"


def test_gradescope_bundle_runs_locally(four, tmp_path):
    bundle = tmp_path / "bundle"
    done = kata("autograder", "gradescope", "--kata", "strides", "--output", str(bundle))
    assert done.returncode == 0, done.stderr
    for name in ("setup.sh", "run_autograder"):
        assert os.access(bundle / name, os.X_OK)
    assert (bundle / "torch-katas" / "checker" / "_data" / "katas" / "catalog.toml").is_file()
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "strides.py").write_text(wrong_answer())
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "KATA": KATA}
    subprocess.run([str(bundle / "run_autograder")], env=env, check=True, timeout=300)
    results = json.loads((root / "results" / "results.json").read_text())
    tests = results["tests"]
    assert len(tests) == len(STRIDES.exercises)
    assert {"name", "score", "max_score", "output", "status"} <= set(tests[0])
    assert 0 < results["score"] < len(tests)
    assert all(t["output"] for t in tests if t["status"] == "failed")


def test_gradescope_zip_has_scripts_at_its_root(tmp_path):
    import zipfile

    out = tmp_path / "autograder.zip"
    assert kata("autograder", "gradescope", "--kata", "strides", "--output", str(out)).returncode == 0
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert "setup.sh" in names and "run_autograder" in names
        mode = zf.getinfo("run_autograder").external_attr >> 16
        assert mode & 0o100


def test_github_workflow_parses_and_its_commands_grade(four, tmp_path):
    import yaml

    repo = tmp_path / "template"
    done = kata("autograder", "github", "--kata", "strides", "--output", str(repo))
    assert done.returncode == 0, done.stderr
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "classroom.yml").read_text())
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    graders = [s for s in steps if s.get("uses", "").startswith(
        "classroom-resources/autograding-command-grader")]
    assert [g["with"]["test-name"] for g in graders] == ["strides"]
    assert graders[0]["with"]["max-score"] == len(STRIDES.exercises)
    reporter = steps[-1]
    assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter")
    assert reporter["with"]["runners"] == graders[0]["id"]
    assert f"{graders[0]['id'].upper()}_RESULTS" in reporter["env"]
    command = shlex.split(graders[0]["with"]["command"])
    assert command[0] == "kata"
    for sub, code in (("solution", 0), ("wrong", 1)):
        ran = kata(*command[1:], "--seed", SEED, cwd=four[sub])
        assert ran.returncode == code, (sub, ran.stdout[-2000:])


def pytest_in(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=300)


def test_pytest_in_a_workspace_runs_the_current_kata(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    assert (ws / "pytest.ini").is_file()
    collected = pytest_in(ws, "--collect-only", "-q")
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    assert ids == [f"{STRIDES.rel_stub.as_posix()}::{e}" for e in STRIDES.exercises]

    stub = pytest_in(ws, "-q", "--kata-seed", SEED)
    assert stub.returncode == 1
    assert f"{len(STRIDES.exercises)} failed" in stub.stdout
    assert "not implemented yet" in stub.stdout  # the teaching message is the failure text

    (ws / STRIDES.rel_stub).write_text(SOLUTION)
    solved = pytest_in(ws, "-q")
    assert solved.returncode == 0, solved.stdout[-3000:]
    assert f"{len(STRIDES.exercises)} passed" in solved.stdout
    progress = json.loads((ws / ".kata" / "progress.json").read_text())
    assert progress["katas"]["strides"]["status"] == "passed"  # recorded by the runner side

    views = CATALOG.katas[1]
    other = pytest_in(ws, "-q", "--kata", views.name)
    assert other.returncode == 1 and f"{len(views.exercises)} failed" in other.stdout

    locked = pytest_in(ws, "-q", "--kata", CATALOG.katas[2].name)
    assert locked.returncode == 1 and "locked" in locked.stdout
