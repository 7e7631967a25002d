"""Mutation testing of a kata's checks: every mutant of the reference must fail them.

``kata dev mutants NAME`` makes the mutants of ``solutions/NN_NAME/NAME.py`` (see
checker.mutate), judges each as a file through the warm worker, exactly as
``kata check NAME --file MUTANT`` would, and scores the checks:

    score = killed / (mutants - listed equivalents)

A mutant is *killed* when any check fails on it (or it times out, or crashes the run); it
*survives* when every check passes. A mutant whose file cannot even load is left out.

Equivalent mutants (those no correct check can tell from the reference) are listed, each
with a one-line reason, in ``checker/equivalents/NAME.toml``::

    [[equivalent]]
    function = "is_contiguous"          # the top-level function holding the change
    before = "if size == 1:"            # the original line(s), whitespace-normalised
    after = "if size <= 1:"             # the mutated line(s), as the report prints them
    occurrence = 2                      # optional: the 2nd line of the function reading so
    reason = "size 0 returned earlier, so size <= 1 and size == 1 agree here"

Keys are text, not line numbers, so a listing survives unrelated edits; a listing that no
mutant matches any more is reported as stale, and a listed mutant that the checks kill is
reported too (the listing was wrong or is no longer needed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from checker.catalog import Kata, read_toml
from checker.cppbuild import NOT_BUILT
from checker.mutate import Mutant, mutants
from checker.runner import CheckResult

EQUIVALENTS_DIR = Path(__file__).parent / "equivalents"
Key = tuple[str, str, str, int]


@dataclass(frozen=True)
class Judged:
    mutant: Mutant
    verdict: str  # "killed", "survived", "equivalent" (survived and listed), "invalid"
    detail: str  # the first exercise that failed, or why the mutant is out
    reason: str = ""  # for listed equivalents


@dataclass
class ExerciseScore:
    name: str
    judged: list[Judged] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(j.verdict == verdict for j in self.judged)

    @property
    def total(self) -> int:
        return len(self.judged) - self.count("invalid")


@dataclass
class MutationReport:
    kata: str
    seed: int
    exercises: list[ExerciseScore]
    stale: list[Key]  # listed equivalents that no mutant matches
    killed_but_listed: list[Judged]

    def count(self, verdict: str) -> int:
        return sum(e.count(verdict) for e in self.exercises)

    @property
    def score(self) -> float:
        counted = sum(e.total for e in self.exercises) - self.count("equivalent")
        return self.count("killed") / counted if counted else 1.0


def equivalents_path(kata: Kata) -> Path:
    return EQUIVALENTS_DIR / f"{kata.name}.toml"


def load_equivalents(kata: Kata) -> dict[Key, str]:
    """The listed equivalent mutants of ``kata``: key -> reason."""
    path = equivalents_path(kata)
    if not path.is_file():
        return {}
    data = read_toml(path.read_text(encoding="utf-8"), str(path))
    out = {}
    for entry in data.get("equivalent", []):
        key = (entry["function"], " ".join(entry["before"].split()),
               " ".join(entry["after"].split()), int(entry.get("occurrence", 1)))
        if not entry.get("reason", "").strip():
            raise ValueError(f"{path}: {key} lists no reason")
        out[key] = entry["reason"]
    return out


def _verdict(result: CheckResult) -> tuple[str, str]:
    if result.status == "load_error":
        return "invalid", result.message.splitlines()[0][:120] if result.message else "load error"
    if result.passed:
        return "survived", ""
    first = result.first_failure()
    if first is not None and first.message.startswith(NOT_BUILT):
        return "invalid", "the mutated C++ does not compile"  # as a Python mutant that cannot load
    return "killed", first.name if first else result.status


def judge(kata: Kata, run: Callable[..., CheckResult], *, seed: int,
          exercise: str | None = None) -> Iterator[Judged]:
    """Each mutant of ``kata``'s reference, judged by its checks (``run`` as run_checks)."""
    listed = load_equivalents(kata)
    reference = run(kata, kata.solution_path, seed=seed, diagnose=False)
    if not reference.passed:  # then every mutant would count as killed
        first = reference.first_failure()
        raise ValueError(f"{kata.name}: the reference solution itself fails the checks at seed "
                         f"{seed} ({first.name if first else reference.status}): fix that first.")
    source = kata.solution_path.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="kata-mutants-") as tmp:
        path = Path(tmp) / kata.solution_path.name
        for m in mutants(source, kata.solution_path.name):
            if exercise and m.function != exercise:
                continue
            path.write_text(m.source, encoding="utf-8")
            verdict, detail = _verdict(run(kata, path, seed=seed, diagnose=False))
            if verdict == "survived" and m.key in listed:
                verdict = "equivalent"
            yield Judged(m, verdict, detail, listed.get(m.key, ""))


def score_kata(kata: Kata, run: Callable[..., CheckResult], *, seed: int = 12345,
               exercise: str | None = None) -> MutationReport:
    by_name: dict[str, ExerciseScore] = {}
    judged = list(judge(kata, run, seed=seed, exercise=exercise))
    for j in judged:
        by_name.setdefault(j.mutant.function, ExerciseScore(j.mutant.function)).judged.append(j)
    order = {name: i for i, name in enumerate(kata.exercises)}
    exercises = sorted(by_name.values(), key=lambda e: (order.get(e.name, len(order)), e.name))
    listed = load_equivalents(kata)
    seen = {j.mutant.key for j in judged}
    stale = [] if exercise else [k for k in listed if k not in seen]
    wrong = [j for j in judged if j.verdict == "killed" and j.mutant.key in listed]
    return MutationReport(kata.name, seed, exercises, stale, wrong)


def toml_entry(m: Mutant, reason: str = "TODO: why no check can tell this from the reference") -> str:
    """The listing of ``m`` as an equivalent, ready to paste into the kata's TOML file."""
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    nth = f"occurrence = {m.occurrence}\n" if m.occurrence > 1 else ""
    return (f"[[equivalent]]\nfunction = {q(m.function)}\nbefore = {q(m.before)}\n"
            f"after = {q(m.after)}\n{nth}reason = {q(reason)}\n")
