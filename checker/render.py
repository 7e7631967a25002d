"""Turn outcomes into terminal output (rich). The only module that decides words and colours."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from checker.app import CheckOutcome, HintOutcome, KataRow, lesson_summary
from checker.catalog import Kata

if TYPE_CHECKING:
    from checker.runner import CheckResult

MARK = {"passed": "[green]✓[/]", "skipped": "[yellow]–[/]", "failed": "[red]✗[/]",
        "missing": "[red]?[/]"}
STATE_STYLE = {"done": "[green]done[/]", "current": "[bold cyan]current[/]", "locked": "[dim]locked[/]"}


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def path_link(path: Path, label: str | None = None) -> str:
    """A path as a terminal hyperlink (OSC 8) where the terminal supports it."""
    label = escape(label or str(path))
    return f"[link=file://{escape(str(path.resolve()))}]{label}[/link]"


def rel(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- next / lesson


def show_next(out: Console, kata: Kata | None, file: Path | None, lesson_text: str,
              row: KataRow | None, total: int) -> None:
    if kata is None:
        out.print("[bold green]Every kata is done.[/] `kata list` shows them all; "
                  "`kata solution NAME` compares your code with the reference.")
        return
    out.print(f"[bold]Kata {kata.number:02d}/{total}: {escape(kata.title)}[/]  "
              f"[dim]({escape(kata.track)})[/]")
    out.print(f"Edit      {path_link(file, rel(file))}")
    summary = lesson_summary(lesson_text)
    if summary:
        out.print()
        out.print(escape(summary))
    out.print()
    out.print("Exercises, easy to hard:")
    for i, name in enumerate(kata.exercises, 1):
        out.print(f"  {i}. {escape(name)}")
    out.print()
    attempts = row.progress.attempts if row else 0
    tried = f" (checked {attempts}× so far)" if attempts else ""
    out.print(f"Next: open the file, then run [bold]kata check[/]{tried} — or [bold]kata watch[/] "
              "to re-check on every save. [bold]kata lesson[/] reads the full lesson; "
              "[bold]kata hint[/] gives a hint.")


def show_lesson(out: Console, kata: Kata, text: str) -> None:
    from rich.markdown import Markdown

    out.print(Markdown(text))
    out.print(f"\n[dim]Exercises are in {escape(str(kata.rel_stub))}. `kata check` judges them.[/]")


# ----------------------------------------------------------------------------- check


def show_result(out: Console, result: CheckResult, *, file: Path | None = None,
                verbose: bool = False) -> None:
    header = f"[bold]{escape(result.kata)}[/]"
    if file is not None:
        header += f"  {path_link(file, rel(file))}"
    out.print(f"{header}  [dim]seed {result.seed} · {result.duration:.2f}s[/]")
    if result.status in ("crashed", "timeout", "interrupted"):
        out.print(f"[bold red]{escape(result.message)}[/]")
        if result.output_tail.strip():
            out.print("[dim]Last output of the check process:[/]")
            out.print(Text(result.output_tail.rstrip()[-2000:], style="dim"))
        out.print("Your progress is unchanged. Fix the file and run [bold]kata check[/] again.")
        return
    if result.status == "load_error":
        message = result.message.replace("kata reset NAME", f"kata reset {result.kata}")
        out.print(f"[bold red]Your file could not be loaded:[/]\n  {escape(message)}")
        out.print(f"Fix it and check again. `kata reset {escape(result.kata)}` restores the stub "
                  "(your file is kept as a backup).")
        return
    width = max((len(e.name) for e in result.exercises), default=10)
    for e in result.exercises:
        note = "" if e.status == "passed" else f"  [dim]{escape(_first_line(e.message))}[/]"
        if e.message.startswith("not implemented yet"):
            note = "  [dim]not implemented yet[/]"
        if e.status == "skipped":
            note = f"  [yellow]skipped: {escape(_first_line(e.message))}[/]"
        out.print(f"  {MARK.get(e.status, '?')} {escape(e.name.ljust(width))}{note}")
    first = result.first_failure()
    shown = [first] if first and not verbose else [e for e in result.exercises if not e.ok]
    for e in shown:
        if e is None:
            continue
        out.print()
        out.print(f"[bold red]✗ {escape(e.name)}[/]")
        out.print(Text(e.message.rstrip()))
        if e.diagnosis:  # the most specific match first (checker.diagnosis)
            mistake_id, misconception = e.diagnosis[0]
            several = (f" ({len(e.diagnosis)} known misconceptions behave like your code; "
                       "the most specific)") if len(e.diagnosis) > 1 else ""
            out.print(f"[bold yellow]This looks like a known misconception[/] "
                      f"[dim]({escape(mistake_id)})[/]{several}: {escape(misconception)}")
            out.print("[yellow]  Reconsider that idea before changing anything else.[/]")
    if result.output_tail.strip() and result.status == "failed" and verbose:
        out.print("[dim]Output:[/]")
        out.print(Text(result.output_tail.rstrip()[-2000:], style="dim"))


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= 72 else line[:71] + "…"


def show_check_outcome(out: Console, outcome: CheckOutcome, *, verbose: bool = False) -> None:
    show_result(out, outcome.result, file=outcome.file, verbose=verbose)
    r = outcome.result
    out.print()
    if r.passed:
        if outcome.newly_passed:
            out.print(f"[bold green]Kata {escape(r.kata)} passed![/] Progress saved.")
        else:
            out.print(f"[bold green]All {len(r.exercises)} exercises pass.[/]")
        if outcome.kata.under_the_hood:
            out.print("\n[bold]Under the hood[/]")
            out.print(escape(" ".join(outcome.kata.under_the_hood.split())))
        if outcome.newly_passed:
            if outcome.next_kata:
                out.print(f"\nUnlocked: [bold]{escape(outcome.next_kata.title)}[/]. "
                          "Run [bold]kata next[/] when you are ready. "
                          f"[dim]`kata solution {escape(r.kata)}` shows the reference beside yours.[/]")
            else:
                out.print("\n[bold green]That was the last kata.[/] `kata progress` shows the whole road.")
    elif r.status in ("failed", "load_error"):
        done = r.exercises_passed
        out.print(f"{done}/{len(r.exercises)} exercises pass. "
                  f"Replay this exact run with [bold]kata check {escape(r.kata)} --seed {r.seed}[/]; "
                  "stuck? [bold]kata hint[/].")


# ----------------------------------------------------------------------------- list / progress


def show_list(out: Console, rows: list[KataRow]) -> None:
    # Aligned lines in one print rather than a rich Table: measuring a table's cells costs
    # about 30 ms here, a fifth of the budget of a command that should answer in a blink.
    header = ("#", "kata", "track", "state", "exercises", "attempts")
    right = (True, False, False, False, True, True)
    cells = []
    for row in rows:
        p = row.progress
        total = len(row.kata.exercises)
        passed = total if p.passed else p.exercises_passed
        cells.append((f"{row.kata.number:02d}", row.kata.name, row.kata.track, row.state,
                      f"{passed}/{total}", str(p.attempts or "")))
    widths = [max(len(c[i]) for c in (header, *cells)) for i in range(len(header))]

    def line(values: tuple[str, ...], styled: bool) -> str:
        parts = []
        for i, value in enumerate(values):
            padded = escape(value.rjust(widths[i]) if right[i] else value.ljust(widths[i]))
            if styled and i == 3:
                padded = STATE_STYLE[value].replace(value, padded)
            parts.append(padded)
        return " ".join(parts).rstrip()

    lines = [f"[bold]{line(header, False)}[/]", f"[dim]{'─' * (sum(widths) + len(widths) - 1)}[/]"]
    lines += [line(c, True) for c in cells]
    out.print("\n".join(lines))


def bar(done: int, total: int, width: int = 24) -> str:
    filled = round(width * done / total) if total else 0
    return f"[green]{'█' * filled}[/][dim]{'░' * (width - filled)}[/]"


def show_progress(out: Console, rows: list[KataRow], tracks: tuple[str, ...]) -> None:
    total = len(rows)
    done = sum(r.state == "done" for r in rows)
    out.print(f"[bold]Overall[/]  {bar(done, total, 32)}  {done}/{total} katas")
    out.print()
    width = max((len(t) for t in tracks), default=8)
    for track in tracks:
        mine = [r for r in rows if r.kata.track == track]
        if not mine:
            continue
        d = sum(r.state == "done" for r in mine)
        out.print(f"  {escape(track.ljust(width))}  {bar(d, len(mine))}  {d}/{len(mine)}")
    current = next((r for r in rows if r.state == "current"), None)
    if current:
        out.print(f"\nCurrent: [bold]{escape(current.kata.name)}[/] — `kata next` says what to do.")


# ----------------------------------------------------------------------------- hint / solution


def show_hint(out: Console, hint: HintOutcome) -> None:
    if not hint.total:
        out.print(f"Kata {escape(hint.kata.name)} has no hints. `kata lesson` explains the idea.")
        return
    for i, text in enumerate(hint.shown, 1):
        style = "bold" if i == len(hint.shown) and hint.new else "dim"
        out.print(f"[{style}]Hint {i}/{hint.total}:[/] {escape(text)}")
    if not hint.new:
        out.print("[dim]That was the last hint. `kata lesson` has the full story.[/]")
    elif len(hint.shown) < hint.total:
        out.print("[dim]Run `kata hint` again for a more concrete one.[/]")


def show_solution(out: Console, kata: Kata, reference: str, mine: str | None, forced: bool) -> None:
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.syntax import Syntax

    if forced:
        out.print("[bold yellow]Showing the reference before you passed: this spoils the kata.[/]")
    ref_panel = Panel(Syntax(reference, "python", line_numbers=False), title="reference")
    if mine is None:
        out.print(ref_panel)
        return
    mine_panel = Panel(Syntax(mine, "python", line_numbers=False), title="yours")
    if out.width >= 160:
        out.print(Columns([mine_panel, ref_panel], equal=True, expand=True))
    else:
        out.print(mine_panel)
        out.print(ref_panel)
