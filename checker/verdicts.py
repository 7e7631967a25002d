"""Verdicts as data for machines: JSON, JUnit XML, CSV and Gradescope's results.json.

``kata check --format json|junit`` prints one run's verdict; ``kata grade`` writes many. The
JSON shape of one verdict (``verdict_dict``) is documented in the README ("Machine-readable
verdicts"); a grading row adds ``submission``, ``score`` and ``max_score``.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from checker.printed import as_text

if TYPE_CHECKING:
    from checker.outcome import CheckResult

VERDICT_SCHEMA = 1


def exercise_message(result: CheckResult, exercise) -> str:
    """What a failing exercise says; a run that stopped early says why for every exercise."""
    if exercise.message:
        return exercise.message
    if not exercise.ok:
        return result.message or f"{exercise.name} did not pass ({exercise.status})."
    return ""


def exercise_rows(result: CheckResult) -> list[dict]:
    rows = [{"name": e.name, "passed": e.ok, "status": e.status,
             "message": exercise_message(result, e), "output": list(e.output),
             "output_lines": e.output_lines} for e in result.exercises]
    if not rows and not result.passed:  # a crash or timeout before any exercise reported
        rows = [{"name": "(run)", "passed": False, "status": result.status,
                 "message": result.message, "output": [], "output_lines": 0}]
    return rows


def diagnosis_of(result: CheckResult) -> list[dict]:
    first = result.first_failure()
    if first is None:
        return []
    return [{"mistake": mid, "misconception": text} for mid, text in first.diagnosis]


def verdict_dict(result: CheckResult, *, exercises: Iterable[str] = ()) -> dict:
    """One run's verdict: the ``kata check --format json`` object.

    ``exercises`` (the kata's exercise names, in order) fills in exercises a crashed run
    never reached, so every exercise has a row.
    """
    rows = exercise_rows(result)
    seen = {r["name"] for r in rows}
    for name in exercises:
        if name not in seen:
            rows.append({"name": name, "passed": False, "status": result.status,
                         "message": result.message or "not judged", "output": [],
                         "output_lines": 0})
    rows = [r for r in rows if r["name"] != "(run)"] or rows
    return {
        "schema": VERDICT_SCHEMA,
        "kata": result.kata,
        "seed": result.seed,
        "passed": result.passed,
        "status": result.status,
        "exercises": rows,
        "diagnosis": diagnosis_of(result),
        "message": result.message,
        "duration": round(result.duration, 3),
    }


@dataclass(frozen=True)
class GradeRow:
    """One (submission, kata) of a grading batch."""

    submission: str
    verdict: dict  # verdict_dict(...), or a stand-in when the kata's file is missing

    @property
    def score(self) -> int:
        return sum(1 for e in self.verdict["exercises"] if e["passed"])

    @property
    def max_score(self) -> int:
        return len(self.verdict["exercises"])

    def as_dict(self) -> dict:
        v = self.verdict
        return {"submission": self.submission, "kata": v["kata"], "passed": v["passed"],
                "status": v["status"], "score": self.score, "max_score": self.max_score,
                "seed": v["seed"], "duration": v["duration"],
                "exercises": [{"name": e["name"], "passed": e["passed"], "message": e["message"]}
                              for e in v["exercises"]]}


def grade_json(rows: list[GradeRow], seed: int) -> str:
    return json.dumps({"schema": VERDICT_SCHEMA, "seed": seed,
                       "results": [r.as_dict() for r in rows]}, indent=2)


def grade_csv(rows: list[GradeRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["submission", "kata", "status", "score", "max_score", "seed",
                     "failed_exercises"])
    for r in rows:
        v = r.verdict
        failed = ";".join(e["name"] for e in v["exercises"] if not e["passed"])
        writer.writerow([r.submission, v["kata"], v["status"], r.score, r.max_score, v["seed"],
                         failed])
    return buf.getvalue()


def junit_xml(suites: list[tuple[str, dict]]) -> str:
    """JUnit XML: a ``testsuite`` per (name, verdict), a ``testcase`` per exercise."""
    root = ET.Element("testsuites")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for name, v in suites:
        errored = v["status"] in ("crashed", "timeout", "load_error")
        failures = sum(1 for e in v["exercises"] if not e["passed"])
        suite = ET.SubElement(root, "testsuite", {
            "name": name, "tests": str(len(v["exercises"])),
            "failures": "0" if errored else str(failures),
            "errors": str(failures) if errored else "0", "skipped": "0",
            "time": f"{v['duration']:.3f}"})
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", {"name": "seed", "value": str(v["seed"])})
        for e in v["exercises"]:
            case = ET.SubElement(suite, "testcase", {
                "classname": f"{name}", "name": e["name"], "time": "0"})
            if not e["passed"]:
                tag = "error" if errored else "failure"
                first_line = (e["message"] or "").strip().splitlines()[:1]
                node = ET.SubElement(case, tag, {"message": first_line[0] if first_line else tag,
                                                 "type": v["status"]})
                node.text = e["message"]
                if e.get("output"):
                    ET.SubElement(case, "system-out").text = as_text(e["output"],
                                                                     e.get("output_lines", 0))
        totals["tests"] += len(v["exercises"])
        totals["failures"] += 0 if errored else failures
        totals["errors"] += failures if errored else 0
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def gradescope_results(rows: list[GradeRow], seed: int) -> dict:
    """Gradescope's results.json: one test per exercise, scored 1 when it passes."""
    tests = []
    for r in rows:
        for e in r.verdict["exercises"]:
            tests.append({
                "name": f"{r.verdict['kata']}: {e['name']}",
                "score": 1.0 if e["passed"] else 0.0,
                "max_score": 1.0,
                "status": "passed" if e["passed"] else "failed",
                "output": e["message"] or "passed",
            })
    return {
        "score": float(sum(t["score"] for t in tests)),
        "output": f"torch-katas checks, seed {seed} (replay a kata with "
                  f"`kata check NAME --seed {seed}`).",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
