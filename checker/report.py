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


def summarize(exercise_names, results: dict[str, list[dict]],
              collected: dict[str, list[str]],
              not_applicable: dict[str, list[dict]] | None = None) -> dict[str, dict]:
    """Per-exercise verdicts from the per-check entries (in collection order). An exercise
    passes only when every check collected for it reported, and every one passed. Checks
    that were not applicable on this machine (checker.plugin, ``needs_device``) were never
    collected: they pass nothing, and are listed with why under ``not_applicable``."""
    exercises = {}
    for name in exercise_names:
        tests = sorted(results.get(name, []), key=lambda t: t.get("index", 0))
        reported = {t["id"] for t in tests}
        unfinished = [i for i in collected.get(name, []) if i not in reported]
        failed = [t for t in tests if t["outcome"] != "passed"]
        if failed:
            first = failed[0]
            message = first["message"] or f"the check `{first['id']}` ended as {first['outcome']!r}"
        elif unfinished:
            message = (f"the check `{unfinished[0]}` did not run to completion (the run stopped "
                       "before it ended): a kata passes only when all its checks pass")
        elif not tests:
            message = "no check of this exercise ran: it cannot pass unchecked"
        else:
            message = ""
        exercises[name] = {
            "status": "failed" if message else "passed",
            "message": message,
            "diagnosis": failed[0]["diagnosis"] if failed else [],
            # what the failing check printed (checker.printed): the first failure's, as its message
            "output": failed[0].get("output", []) if failed else [],
            "output_lines": failed[0].get("output_lines", 0) if failed else 0,
            "duration": round(sum(t["duration"] for t in tests), 4),
            "checks": len(tests),
            "failed_checks": len(failed) + len(unfinished),
            "not_applicable": [f"{t['id']}: {t['reason']}"
                               for t in (not_applicable or {}).get(name, [])],
        }
    return exercises


def merge_reports(parts: list[dict]) -> dict:
    """One report from the reports of runs that split a session's checks between them."""
    results: dict[str, list[dict]] = {}
    collected: dict[str, list[str]] = {}
    absent: dict[str, list[dict]] = {}  # every part decided the same, before its share
    for part in parts:
        for name, entries in part["results"].items():
            results.setdefault(name, []).extend(entries)
        for name, ids in part["collected"].items():
            collected.setdefault(name, []).extend(ids)
        for name, entries in part.get("not_applicable", {}).items():
            absent.setdefault(name, []).extend(e for e in entries if e not in absent[name])
    first = parts[0]
    return {
        **first,
        "load_error": next((p["load_error"] for p in parts if p["load_error"]), None),
        "exercises": summarize(first["exercises"], results, collected, absent),
        "results": results,
        "collected": collected,
        "not_applicable": absent,
        "unassigned": sorted({s for p in parts for s in p["unassigned"]}),
        "duration": max(p["duration"] for p in parts),
        "armed": {"wait": max(p["armed"]["wait"] for p in parts),
                  "prepared": {k: v for p in parts for k, v in p["armed"]["prepared"].items()}},
    }


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` to ``path`` whole or not at all (a reader never sees half a report).

    A path that is not a regular file (``os.devnull``, where an armed check process that was
    never told to run reports; a pipe) is written in place, never replaced: run as root, a
    rename onto ``/dev/null`` would turn it into a plain file for every process."""
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def run_report(state: dict, *, duration: float) -> dict:
    """The report of a check run, from the plugin's state as the session ends."""
    kata = state["kata"]
    return {
        "format_version": REPORT_VERSION,
        "kata": kata.name,
        "impl": str(state["impl_path"]),
        "seed": state["seed"],
        "load_error": state["load_error"],
        "exercises": summarize(kata.exercises, state["results"], state.get("collected", {}),
                               state.get("not_applicable", {})),
        "results": state["results"],
        "collected": state.get("collected", {}),
        "not_applicable": state.get("not_applicable", {}),
        "unassigned": sorted(set(state["results"]) - set(kata.exercises)),
        "duration": round(duration, 4),
        "armed": state["armed"],  # see checker.armed
    }
