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
from checker.progress import KataProgress

if TYPE_CHECKING:
    from checker.outcome import CheckResult

MARK = {"passed": "[green]✓[/]", "failed": "[red]✗[/]"}
STATE_STYLE = {"done": "[green]done[/]", "current": "[bold cyan]current[/]", "locked": "[dim]locked[/]"}


# What a terminal without UTF-8 shows instead (one character for one where columns line up);
# anything else it cannot encode becomes "?": never a UnicodeEncodeError.
ASCII = str.maketrans({"✓": "+", "✗": "x", "–": "-", "—": "-", "─": "-", "█": "#", "░": ".",
                       "·": "|", "×": "x", "•": "*", "→": "->", "≤": "<=", "≥": ">=",
                       "…": "...", "‘": "'", "’": "'", "“": '"', "”": '"', "│": "|"})


def utf8_terminal(stream) -> bool:
    """Whether ``stream`` takes UTF-8 and the locale says the terminal shows it.

    With ``LANG=C`` Python itself switches to UTF-8 (PEP 540), but the terminal behind such
    a locale usually does not: an explicitly set locale without UTF-8 means ASCII. An unset
    locale (a bare container) leaves the choice to the stream's encoding."""
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "")
    if not encoding.startswith("utf"):
        return False
    name = next((os.environ[k] for k in ("LC_ALL", "LC_CTYPE", "LANG") if os.environ.get(k)), "")
    return not name or "utf8" in name.lower().replace("-", "")


class AsciiStream:
    """A text stream for a terminal without UTF-8: glyphs become ASCII, the rest "?"."""

    encoding = "ascii"

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        data = text.translate(ASCII).encode("ascii", "replace").decode("ascii")
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def tolerant_streams() -> None:
    """Where stdout or stderr cannot take UTF-8, what they cannot encode becomes "?" (for
    Click's own output; rich goes through :class:`AsciiStream`)."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        if not utf8_terminal(stream) and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def console(stderr: bool = False) -> Console:
    import sys

    stream = sys.stderr if stderr else sys.stdout
    file = None if utf8_terminal(stream) else AsciiStream(stream)  # None: follow sys.stdout
    return Console(file=file, stderr=stderr, highlight=False, soft_wrap=False)


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


def show_next(out: Console, kata: Kata | None, file: Path | None, lesson_text: str | None,
              row: KataRow | None, total: int, *, in_watch: bool = False) -> None:
    if kata is None:
        out.print("[bold green]Every kata is done.[/] `kata list` shows them all; "
                  "`kata solution NAME` compares your code with the reference.")
        return
    out.print(f"[bold]Kata {kata.number:02d}/{total}: {escape(kata.title)}[/]  "
              f"[dim]({escape(kata.track)})[/]")
    out.print(f"Edit      {path_link(file, rel(file))}")
    summary = lesson_summary(lesson_text) if lesson_text is not None else NO_LESSON
    if summary:
        out.print()
        out.print(escape(summary))
    out.print()
    out.print("Exercises, easy to hard:")
    for i, name in enumerate(kata.exercises, 1):
        mark = ("  [bold magenta]★ the challenge: the lesson's idea, not everyday PyTorch[/]"
                if name == kata.challenge else "")
        out.print(f"  {i}. {escape(name)}{mark}")
    out.print()
    if in_watch:
        out.print("Next: open the file and save; it is checked on every save. Press [bold]h[/] "
                  "for a hint; `kata lesson` in another terminal reads the full lesson.")
        return
    attempts = row.progress.attempts if row else 0
    tried = f" (checked {attempts}× so far)" if attempts else ""
    out.print(f"Next: open the file, then run [bold]kata check[/]{tried} — or [bold]kata watch[/] "
              "to re-check on every save. [bold]kata lesson[/] reads the full lesson; "
              "[bold]kata hint[/] gives a hint.")


NO_LESSON = "(This release ships no lesson for this kata; its exercises are below.)"


def show_lesson(out: Console, kata: Kata, text: str | None) -> None:
    """The lesson; through a pager when it is taller than the terminal (never into a pipe)."""
    from contextlib import nullcontext

    from rich.markdown import Markdown

    if text is None:
        out.print(NO_LESSON)
        return
    body = Markdown(text)
    tall = out.is_terminal and len(out.render_lines(body, pad=False)) > out.height - 2
    # rich's system pager is pydoc's: $MANPAGER or $PAGER, else less/more. Colours only
    # where less is told to pass them (-R), or the reader would see escape codes.
    colour = "r" in os.environ.get("LESS", "").lower() or bool(os.environ.get("PAGER"))
    with out.pager(styles=colour) if tall else nullcontext():
        out.print(body)
        out.print(f"\n[dim]Exercises are in {escape(str(kata.rel_stub))}. `kata check` judges them.[/]")


def show_note(out: Console, note: str) -> None:
    """An under-the-hood note: prose paragraphs reflowed, its ``>>>`` example kept verbatim."""
    for para in note.split("\n\n"):
        if para.lstrip().startswith(">>>"):
            out.print(Text(para.strip("\n"), style="dim"))
        else:
            out.print(escape(" ".join(para.split())))


def show_findings(out: Console, findings: list) -> None:
    """``kata dev lint-lessons``: each untrue example or pointer, where it is and what is wrong."""
    for f in findings:
        out.print(f"[red]✗[/] [bold]{escape(f.kata)}[/] {escape(f.where)}")
        out.print(escape(f.message), highlight=False)


# ----------------------------------------------------------------------------- check


def show_result(out: Console, result: CheckResult, *, file: Path | None = None,
                verbose: bool = False, printed: int | None = None) -> None:
    """The verdict: a line per exercise, then the first failure (every failure with
    ``verbose``) with the last lines its check printed (at most ``printed`` of them)."""
    header = f"[bold]{escape(result.kata)}[/]"
    if file is not None:
        header += f"  {path_link(file, rel(file))}"
    out.print(f"{header}  [dim]seed {result.seed} · {result.duration:.2f}s[/]")
    if result.status in ("crashed", "timeout", "interrupted", "tampered", "error"):
        out.print(f"[bold red]{escape(result.message)}[/]")
        if result.output_tail.strip():
            out.print("[dim]Last output of the check process:[/]")
            out.print(Text(result.output_tail.rstrip()[-2000:], style="dim"))
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
        out.print(f"  {MARK['passed' if e.ok else 'failed']} {escape(e.name.ljust(width))}{note}")
        for why in e.not_applicable:  # judged by its other checks; this one passed nothing
            out.print(f"    [dim]not applicable here, not counted: {escape(why)}[/]")
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
        show_printed(out, e.output[max(0, len(e.output) - printed):] if printed is not None
                     else e.output, e.output_lines)
    if result.output_tail.strip() and result.status == "failed" and verbose:
        out.print("[dim]Output:[/]")
        out.print(Text(result.output_tail.rstrip()[-2000:], style="dim"))


def show_printed(out: Console, lines: tuple[str, ...], total: int) -> None:
    """What a failing check printed: plain text (never markup), one terminal line each."""
    from checker.printed import heading

    if not lines or not total:
        return
    out.print(f"[dim]{escape(heading(len(lines), total))}[/]")
    for line in lines:
        out.print(Text.assemble(("  │ ", "dim"), line), no_wrap=True, overflow="ellipsis")


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= 72 else line[:71] + "…"


def replay_command(outcome: CheckOutcome) -> str:
    """The command that judges the same file with the same seed."""
    import shlex

    r = outcome.result
    extra = "" if outcome.recorded else f" --file {shlex.quote(rel(Path(outcome.file)))}"
    if outcome.kata.catalog_file is not None and not outcome.recorded:
        extra += f" --catalog {shlex.quote(str(outcome.kata.catalog_file))}"
    return f"kata check {r.kata}{extra} --seed {r.seed}"


def show_check_outcome(out: Console, outcome: CheckOutcome, *, verbose: bool = False,
                       printed: int | None = None) -> None:
    show_result(out, outcome.result, file=outcome.file, verbose=verbose, printed=printed)
    r = outcome.result
    out.print()
    if r.passed:
        if outcome.newly_passed:
            out.print(f"[bold green]Kata {escape(r.kata)} passed![/] Progress saved.")
        else:
            out.print(f"[bold green]All {len(r.exercises)} exercises pass.[/]")
        if outcome.kata.under_the_hood:
            out.print("\n[bold]Under the hood[/]")
            show_note(out, outcome.kata.under_the_hood)
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
                  f"Replay this exact run with [bold]{escape(replay_command(outcome))}[/]; "
                  "stuck? [bold]kata hint[/].")
    elif r.status == "error":
        out.print("This is not a problem with your code, and nothing was recorded.")
    else:  # crashed, timeout
        recorded = " It counts as an attempt; nothing else changed." if outcome.recorded else ""
        out.print(f"Fix the file and run [bold]kata check[/] again.{recorded}")
    if outcome.write_error:
        out.print(f"[bold red]{escape(outcome.write_error)}[/]")
        out.print("[red]The verdict above stands, but it is not recorded.[/]")


# ----------------------------------------------------------------------------- list / progress


def show_list(out: Console, rows: list[KataRow]) -> None:
    # Aligned lines in one print rather than a rich Table: measuring a table's cells costs
    # about 30 ms here, a fifth of the budget of a command that should answer in a blink.
    header = ("#", "kata", "track", "state", "solved", "attempts", "hints")  # fits 80 columns
    right = (True, False, False, False, True, True, True)
    cells = []
    for row in rows:
        p = row.progress
        total = len(row.kata.exercises)
        passed = total if p.passed else p.exercises_passed
        cells.append((f"{row.kata.number:02d}", row.kata.name, row.kata.track, row.state,
                      f"{passed}/{total}", str(p.attempts or ""), str(p.hints_shown or "")))
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


def show_not_shipped(out: Console, gone: dict[str, KataProgress]) -> None:
    """Progress of katas that this release does not ship (a workspace of another release)."""
    if not gone:
        return
    names = ", ".join(f"{escape(name)} ({entry.status})" for name, entry in gone.items())
    out.print(f"\n[yellow]Your progress also holds katas this release does not ship: {names}.[/] "
              "[dim]They are kept in .kata/progress.json as they are.[/]")


def bar(done: int, total: int, width: int = 24) -> str:
    filled = round(width * done / total) if total else 0
    return f"[green]{'█' * filled}[/][dim]{'░' * (width - filled)}[/]"


def duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


def show_progress(out: Console, rows: list[KataRow], tracks: tuple[str, ...],
                  streak: int = 0) -> None:
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
    started = [r for r in rows if r.progress.attempts or r.progress.passed]
    if started:
        out.print()
        header = f"  {'kata':24s} {'time':>7s} {'attempts':>8s} {'hints':>5s}  passed"
        out.print(f"[bold]{escape(header)}[/]")
        for r in started:
            p = r.progress
            when = (p.passed_at or "")[:10] if p.passed else "-"
            out.print(escape(f"  {r.kata.name:24s} {duration(p.active_seconds):>7s} "
                             f"{p.attempts:8d} {p.hints_shown:5d}  {when}"))
        spent = sum(r.progress.active_seconds for r in started)
        attempts = sum(r.progress.attempts for r in started)
        hints = sum(r.progress.hints_shown for r in started)
        out.print(escape(f"  {'total':24s} {duration(spent):>7s} {attempts:8d} {hints:5d}  "
                         f"{done} passed"))
        out.print(f"\nStreak: [bold]{streak}[/] day{'s' if streak != 1 else ''} in a row. "
                  "[dim]Time counts from a kata's first check to its pass, without pauses "
                  "over 30 minutes.[/]")
    current = next((r for r in rows if r.state == "current"), None)
    if current:
        out.print(f"\nCurrent: [bold]{escape(current.kata.name)}[/] — `kata next` says what to do.")


# ----------------------------------------------------------------------------- hint / solution


def show_hint(out: Console, hint: HintOutcome) -> None:
    name, ex = escape(hint.kata.name), escape(hint.exercise)
    if not hint.total:
        out.print(f"Exercise {ex} of {name} has no hints. `kata lesson` explains the idea.")
        return
    if hint.why == "failing":
        out.print(f"[dim]{ex} is the first exercise your last check failed.[/]")
    for i, text in enumerate(hint.shown, 1):
        style = "bold" if i == len(hint.shown) and hint.new else "dim"
        out.print(f"[{style}]Hint {i}/{hint.total} for {ex}:[/] {escape(text)}")
    if not hint.new:
        out.print(f"[dim]That was the last hint for {ex}. `kata lesson` has the full story; "
                  f"`kata hint {name} EXERCISE` gives hints for another exercise.[/]")
    elif len(hint.shown) < hint.total:
        out.print("[dim]Run `kata hint` again for a more concrete one.[/]")


def functions_of(source: str) -> dict[str, str]:
    """Each top-level function's source, by name (empty if the source does not parse)."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    return {n.name: ast.get_source_segment(source, n) or "" for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def show_solution(out: Console, kata: Kata, reference: str, mine: str | None, forced: bool,
                  only: str | None = None) -> None:
    """The reference one function at a time, as a unified diff against yours (- yours,
    + reference): it fits 80 columns, and what you already share is plain context."""
    import difflib

    from rich.syntax import Syntax

    if forced:
        out.print("[bold yellow]Showing the reference before you passed: this spoils the kata.[/]")
    ref, yours = functions_of(reference), functions_of(mine or "")
    names = [n for n in ref if only in (None, n)]
    if only is not None and not names:
        out.print(f"The reference has no function {escape(only)!r}; it has: "
                  f"{escape(', '.join(ref))}.")
        return
    for name in names:
        out.print(f"\n[bold]{escape(name)}[/]")
        if name not in yours:
            out.print("[dim](not in your file) the reference:[/]")
            out.print(Syntax(ref[name], "python", word_wrap=True))
        elif yours[name] == ref[name]:
            out.print("[dim]yours is the reference, line for line.[/]")
        else:
            diff = difflib.unified_diff(yours[name].splitlines(), ref[name].splitlines(),
                                        "yours", "reference", lineterm="", n=2)
            out.print(Syntax("\n".join(diff), "diff", word_wrap=True))
    if len(names) > 1:
        out.print(f"\n[dim]One function: kata solution {escape(kata.name)} FUNCTION.[/]")
