"""The child's report: per-check entries become per-exercise verdicts, written whole.

The plugin (checker.plugin) fills the entries; a warm worker merges the reports of the
processes that split one session's checks (checker.server).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REPORT_VERSION = 1


def check_id(nodeid: str) -> str:
    """A check's name in reports: its node id without the file ('test_x[True]')."""
    return nodeid.split("::")[-1]


def summarize(exercise_names, results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per-exercise verdicts from the per-check entries (in collection order)."""
    exercises = {}
    for name in exercise_names:
        tests = sorted(results.get(name, []), key=lambda t: t.get("index", 0))
        failed = [t for t in tests if t["outcome"] == "failed"]
        if not tests:
            status = "missing"
        elif failed:
            status = "failed"
        elif all(t["outcome"] == "skipped" for t in tests):
            status = "skipped"
        else:
            status = "passed"
        first = failed[0] if failed else None
        exercises[name] = {
            "status": status,
            "message": first["message"] if first else (
                tests[0]["message"] if status == "skipped" else ""),
            "diagnosis": first["diagnosis"] if first else [],
            "duration": round(sum(t["duration"] for t in tests), 4),
            "checks": len(tests),
            "failed_checks": len(failed),
        }
    return exercises


def merge_reports(parts: list[dict]) -> dict:
    """One report from the reports of runs that split a session's checks between them."""
    results: dict[str, list[dict]] = {}
    for part in parts:
        for name, entries in part["results"].items():
            results.setdefault(name, []).extend(entries)
    first = parts[0]
    return {
        **first,
        "load_error": next((p["load_error"] for p in parts if p["load_error"]), None),
        "exercises": summarize(first["exercises"], results),
        "results": results,
        "unassigned": sorted({s for p in parts for s in p["unassigned"]}),
        "duration": max(p["duration"] for p in parts),
        "armed": {"wait": max(p["armed"]["wait"] for p in parts),
                  "prepared": {k: v for p in parts for k, v in p["armed"]["prepared"].items()}},
    }


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` to ``path`` whole or not at all (a reader never sees half a report)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
