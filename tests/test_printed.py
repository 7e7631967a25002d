"""What learner code printed during a failing check is shown under that failure: bounded,
as plain text, on the cold and the warm path, in every output format."""

from __future__ import annotations

import json
import sys

from rich.console import Console

from checker import render
from checker.app import CheckOutcome
from checker.outcome import CheckResult, ExerciseResult, from_report
from checker.printed import LINES, WIDTH, Lines, Tee, lines_of, recording
from checker.verdicts import junit_xml, verdict_dict
from checker.watch import WatchSession

# alpha: add passes (after printing), mul prints a flood, a very long line, markup, then fails;
# at import, the file points sys.stdout and sys.stderr at a stream of its own.
PRINTS_THEN_FAILS = """
import sys

class Swallow:
    def write(self, text):
        return len(text)

    def flush(self):
        pass

sys.stdout = sys.stderr = Swallow()  # the judge puts its own streams back after the import

def add(a, b):
    print("add is fine", a, b)
    return a + b

def mul(a, b):
    for i in range(5000):
        print("noise", i)
    print("y" * 100000)
    sys.stderr.write("[red]mul[/red] is\\x1b[2J about to fail\\n")
    return a + b
"""


def test_the_last_lines_are_kept_and_bounded():
    held = Lines()
    held.add("abc")
    held.add("def\n" + "z" * 10**6 + "\n" + "line\n" * 10**5 + "unfinished")
    kept, total = lines_of(held)
    assert total == 10**5 + 3 and len(kept) == LINES
    assert kept[-1] == "unfinished" and kept[-2] == "line"
    small = Lines()
    small.add("abc")
    small.add("def\n" + "z" * 10**6 + "\nend\n")
    kept, total = lines_of(small)
    assert kept == ["abcdef", "z" * (WIDTH - 1) + "…", "end"] and total == 3


def test_what_is_held_is_read_as_data_only():
    """Code that reaches sys.stdout can change what it holds, but not run code in the judge
    through it, nor grow it past its bounds."""
    class Loud(str):
        def __str__(self):
            raise AssertionError("the judge called learner code")

    with recording() as held:
        print("\x1b[31mred\rcarriage", file=sys.stdout)
        sys.stdout.lines.done.append(Loud("forged"))
        sys.stdout.lines.count = Loud("many")
    kept, total = lines_of(held)
    assert kept == ["carriage"] and total == 1  # what a terminal would leave, as data
    held.done = [Loud("x")] * 10**6
    held.partial = object()
    assert lines_of(held) == ([], 0)
    assert not isinstance(sys.stdout, Tee) and not isinstance(sys.stderr, Tee)  # put back


def test_a_failing_checks_prints_are_kept_cold_and_warm(judge_file):
    result = judge_file("alpha", PRINTS_THEN_FAILS)
    add, mul = result.exercises
    assert add.ok and add.output == () and add.output_lines == 0  # a pass shows no prints
    assert not mul.ok and mul.output_lines == 5002
    assert len(mul.output) == LINES and all(len(line) <= WIDTH for line in mul.output)
    assert mul.output[-1] == "[red]mul[/red] is\\x1b[2J about to fail"
    assert mul.output[-2] == "y" * (WIDTH - 1) + "…" and mul.output[-3] == "noise 4999"
    assert "about to fail" in result.output_tail  # written to the judge's stream, not the file's


def outcome(kata, printed: tuple[str, ...], total: int,
            message: str = "mul(2, 3): expected 6, got 5", file=None) -> CheckOutcome:
    result = CheckResult(kata="alpha", seed=3, status="failed", exercises=(
        ExerciseResult("add", "passed"),
        ExerciseResult("mul", "failed", message, output=printed, output_lines=total)))
    return CheckOutcome(kata=kata, file=file or kata.stub_path, result=result, recorded=file is None)


def test_check_shows_them_under_the_failure_as_plain_text(tiny_catalog):
    out = Console(record=True, width=80)
    alpha = tiny_catalog.get("alpha")
    render.show_check_outcome(out, outcome(alpha, ("[red]mul[/red] 2 3", "[bold]done"), 7))
    text = out.export_text()
    failure = text.index("expected 6, got 5\n")
    shown = text.index("Printed during this check (the last 2 of 7 lines):")
    assert failure < shown < text.index("│ [red]mul[/red] 2 3") < text.index("│ [bold]done")
    assert shown < text.index("1/2 exercises pass")


def test_json_and_junit_carry_them(tiny_catalog):
    result = outcome(tiny_catalog.get("alpha"), ("hello <&>",), 1).result
    data = verdict_dict(result)
    rows = {r["name"]: r for r in data["exercises"]}
    assert rows["mul"]["output"] == ["hello <&>"] and rows["mul"]["output_lines"] == 1
    assert rows["add"]["output"] == []
    json.dumps(data)
    xml = junit_xml([("alpha", data)])
    assert "<system-out>Printed during this check (1 line):\n  | hello &lt;&amp;&gt;</system-out>" in xml
    from junitparser import JUnitXml

    add, mul = (case for suite in JUnitXml.fromstring(xml) for case in suite)
    assert add.system_out is None and mul.system_out.endswith("  | hello <&>")


def test_a_report_is_bounded_again_when_read(tiny_catalog):
    kata = tiny_catalog.get("alpha")
    report = {"seed": 1, "impl": "x.py", "load_error": None, "exercises": {
        "add": {"status": "passed", "message": "", "output": ["hidden"], "output_lines": 1},
        "mul": {"status": "failed", "message": "no", "output": ["\x1b[2J" + "x" * 999] * 50 + [3],
                "output_lines": "lots"}}}
    add, mul = from_report(kata, report, 0.1).exercises
    assert add.output == () and len(mul.output) == LINES - 1  # the last LINES entries, strings
    assert all(len(line) <= WIDTH and "\x1b" not in line for line in mul.output)
    assert mul.output_lines == LINES - 1


def test_watch_trims_the_printed_lines_first_to_fit(workspace):
    # the tests' own catalog lengthens the replay line (--catalog PATH) by two rows
    message = "\n".join(f"detail {i}" for i in range(6))
    out = Console(record=True, width=80, height=24, force_terminal=True)
    s = WatchSession(workspace, workspace.catalog.get("alpha"), out, render)
    s.last = outcome(s.kata, tuple(f"printed {i}" for i in range(LINES)), 40, message, s.file)
    s.redraw()
    fitted = out.export_text()
    assert len(fitted.rstrip("\n").split("\n")) <= 24
    assert "detail 5" in fitted and "press v" not in fitted  # the failure whole,
    assert "printed 9" in fitted and "printed 0" not in fitted  # the printed lines cut
    assert "(the last " in fitted
    s.on_key("v")
    assert "printed 0" in out.export_text()


def test_pytest_in_a_workspace_shows_them_in_the_failure(workspace, pytester, monkeypatch):
    from checker import runner

    def judged(kata, path, **kwargs):
        return outcome(kata, ("[red]debug 2 3",), 4).result

    monkeypatch.setattr(runner, "run_checks", judged)
    result = pytester.runpytest_inprocess("--rootdir", str(workspace.root), str(workspace.root))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*expected 6, got 5",
                                 "Printed during this check (the last 1 of 4 lines):",
                                 "  | [[]red]debug 2 3"])
