"""The ``kata`` command line: parse, call the domain (app/workspace/runner), render.

Commands that do not run checks never import torch or pytest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from checker import __version__


class NotInWorkspace(click.ClickException):
    """A command that needs a workspace, run outside one: a usage error (exit 2)."""

    exit_code = 2


class App:
    """Built once per invocation by the group callback, reached through ``ctx.obj``."""

    def __init__(self) -> None:
        from checker import render

        self.render = render
        render.tolerant_streams()
        self.out = render.console()
        self.err = render.console(stderr=True)
        self._ws = None

    @property
    def ws(self):
        if self._ws is None:
            from checker.workspace import WorkspaceError

            try:
                self._ws = self._find()
            except WorkspaceError as exc:
                raise NotInWorkspace(str(exc)) from None
        return self._ws

    def workspace_or_none(self):
        """The workspace here, or None (commands that also work outside one)."""
        from checker.workspace import WorkspaceError

        if self._ws is None:
            try:
                self._ws = self._find()
            except WorkspaceError:
                return None
        return self._ws

    def _find(self):
        from checker.workspace import Workspace

        ws = Workspace.find()
        for notice in ws.notices:  # unwrapped: the paths in it stay whole
            self.err.print(f"[bold yellow]{self.render.escape(notice)}[/]", soft_wrap=True)
        return ws

    def progress(self, *, write: bool = False):
        """The workspace's progress (its notices shown). ``write``: the command records
        progress, so a file of a newer format refuses it before anything runs."""
        from checker.progress import NewerFormat

        store = self.ws.progress
        progress = store.load()
        self.ws.reconcile()
        for notice in store.notices:
            self.err.print(f"[bold yellow]{self.render.escape(notice)}[/]")
        if progress.newer is not None:
            error = NewerFormat(store.path, progress.newer)
            if write:
                raise error
            self.err.print(f"[bold yellow]{self.render.escape(str(error))}[/]")
        return progress

    def kata(self, name: str | None):
        from checker.catalog import UnknownKata

        try:
            return None if name is None else self.ws.catalog.get(name)
        except UnknownKata as exc:
            raise click.BadParameter(str(exc), param_hint="NAME") from None


def domain_errors(func):
    """Turn the domain's expected errors into ClickException (exit 1) with their message."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from checker.app import KataLocked
        from checker.catalog import CatalogError
        from checker.editor import EditorError
        from checker.progress import ProgressError
        from checker.workspace import WorkspaceError

        try:
            return func(*args, **kwargs)
        except (KataLocked, ProgressError, WorkspaceError, CatalogError, EditorError) as exc:
            raise click.ClickException(str(exc)) from None
        except PermissionError as exc:
            raise click.ClickException(
                f"Permission denied: {exc.filename or exc}. Is the workspace read-only?") from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename or ''}".strip()) from None

    return wrapper


pass_app = click.make_pass_decorator(App)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="kata")
@click.pass_context
def main(ctx: click.Context) -> None:
    """torch-katas: learn PyTorch's internals by re-implementing them.

    \b
    Start:   kata init ~/katas && cd ~/katas && kata next
    Loop:    edit the file `kata next` names, then `kata check` (or `kata watch`)
    """
    ctx.obj = App()


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--exist-ok", is_flag=True, help="Succeed without changes if DIRECTORY already is one.")
@pass_app
@domain_errors
def init(app: App, directory: Path, exist_ok: bool) -> None:
    """Create a workspace in DIRECTORY (default: here) with every kata's stub and lesson."""
    from checker.workspace import Workspace

    ws, created = Workspace.create(directory, exist_ok=exist_ok)
    if created:
        app.out.print(f"Created a kata workspace in [bold]{ws.root}[/] "
                      f"with {len(ws.catalog.katas)} katas.")
    else:
        app.out.print(f"[dim]{ws.root} is already a kata workspace; nothing was changed.[/]")
    app.out.print(f"Next: [bold]cd {ws.root}[/] and run [bold]kata next[/].")


@main.command("next")
@pass_app
@domain_errors
def next_(app: App) -> None:
    """Show the current kata: the file to edit, what it teaches, what to run."""
    from checker.app import current_kata, rows

    progress = app.progress()
    kata = current_kata(app.ws, progress)
    row = next((r for r in rows(app.ws, progress) if kata and r.kata.name == kata.name), None)
    file = app.ws.kata_file(kata) if kata else None
    lesson = app.ws.lesson_text(kata) if kata else None
    app.render.show_next(app.out, kata, file, lesson, row, len(app.ws.catalog.katas))


def catalog_option(func):
    """``--catalog PATH``: the one way to judge against a catalog other than the shipped one."""
    return click.option(
        "--catalog", "catalog_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Judge against this catalog instead of the shipped one (for kata authors); "
        "every run warns, and records no progress.")(func)


@main.command()
@click.argument("name", required=False)
@click.option("--file", "file_", type=click.Path(path_type=Path),
              help="Judge this file against NAME's checks; records no progress.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), help="Replay a run with this seed.")
@click.option("-v", "--verbose", is_flag=True, help="Show every failing exercise and the output.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text",
              show_default=True, help="json or junit: the verdict as data on stdout.")
@catalog_option
@pass_app
@domain_errors
def check(app: App, name: str | None, file_: Path | None, seed: int | None, verbose: bool,
          fmt: str, catalog_file: Path | None) -> None:
    """Run the hidden checks of the current kata (or NAME). Exit 0 pass, 1 fail."""
    from checker import app as domain
    from checker.runner import run_checks

    def show(outcome) -> None:
        if fmt == "text":
            app.render.show_check_outcome(app.out, outcome, verbose=verbose)
        else:
            click.echo(_verdict_text(outcome, fmt), nl=False)

    if file_ is not None or catalog_file is not None:  # judged, never recorded
        ws = app.workspace_or_none()
        catalog = _judging_catalog(ws, catalog_file)
        if file_ is None:  # another catalog's checks on the workspace's file for NAME
            name = name or domain.resolve_kata(app.ws, app.progress(), None).name
            file_ = app.ws.kata_file(_kata_in(catalog, name))
        if not name:
            if file_.stem not in catalog.names():
                raise click.UsageError(
                    f"Which kata's checks should judge {file_}? Its name is no kata's file "
                    "name; say it: `kata check NAME --file PATH`.")
            name = file_.stem
        kata = _kata_in(catalog, name)
        if not file_.is_file():
            raise click.BadParameter(f"{file_} is not a file.", param_hint="--file")
        _warn_if_not_shipped(kata)
        result = run_checks(kata, file_.resolve(), seed=seed, use_worker=_worker_dir(ws))
        show(domain.CheckOutcome(kata, file_, result, recorded=False))
        _warm_next_time(ws, result)
        sys.exit(_exit_code(result))
    progress = app.progress(write=True)
    kata = app.kata(name) or domain.resolve_kata(app.ws, progress, None)
    domain.require_unlocked(app.ws, progress, kata)
    path = app.ws.kata_file(kata)
    outcome = domain.check_and_record(
        app.ws, kata, lambda: run_checks(kata, path, seed=seed, use_worker=_worker_dir(app.ws)))
    if outcome.result.status == "interrupted":
        app.render.show_result(app.out, outcome.result, file=path)
        sys.exit(130)
    show(outcome)
    _warm_next_time(app.ws, outcome.result)
    sys.exit(1 if outcome.write_error else _exit_code(outcome.result))


def _warm_next_time(ws, result) -> None:
    """After the verdict: start the workspace's check worker in the background if none runs,
    so the next `kata check` is warm. Off with KATA_NO_WORKER=1 or `kata stop --off`. A
    verdict the worker gave needs no ping (it would wait while the worker re-arms)."""
    import os

    from checker import worker

    if ws is None or os.environ.get("KATA_NO_WORKER") or not ws.warm_worker:
        return
    if result.extra.get("worker"):
        return
    if not worker.is_running(ws.state_dir):
        worker.spawn(ws.state_dir)


def _warn_if_not_shipped(kata) -> None:
    """Every run judged against a catalog other than the shipped one says so, visibly."""
    if kata.catalog_file is not None:
        click.secho(f"Warning: these checks come from {kata.catalog_file}, not from the catalog "
                    "shipped with torch-katas; nothing is recorded.", fg="yellow", err=True)


def _judging_catalog(ws, catalog_file: Path | None):
    """The catalog ``--catalog`` names, else the workspace's (outside one, the default)."""
    if catalog_file is not None:
        from checker.catalog import load_catalog

        return load_catalog(catalog_file)
    return ws.catalog if ws else _default_catalog()


def _exit_code(result) -> int:
    return 0 if result.passed else 1


def _verdict_text(outcome, fmt: str) -> str:
    import json

    from checker.verdicts import junit_xml, verdict_dict

    verdict = verdict_dict(outcome.result, exercises=outcome.kata.exercises)
    verdict["file"] = str(outcome.file)
    verdict["recorded"] = outcome.recorded
    if fmt == "json":
        return json.dumps(verdict, indent=2) + "\n"
    return junit_xml([(outcome.kata.name, verdict)])


def _default_catalog():
    """The shipped catalog (the tests' own, in their process: checker.workspace)."""
    from checker.workspace import catalog_for

    return catalog_for()


def _kata_in(catalog, name: str):
    from checker.catalog import UnknownKata

    try:
        return catalog.get(name)
    except UnknownKata as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None


def _worker_dir(ws) -> Path | None:
    return ws.state_dir if ws else None


@main.command()
@click.argument("name", required=False)
@click.argument("exercise", required=False)
@pass_app
@domain_errors
def hint(app: App, name: str | None, exercise: str | None) -> None:
    """Reveal the next hint tier (nudge, idea, near-code) for the first exercise your last check
    failed, in the current kata (or NAME); EXERCISE picks one."""
    from checker import app as domain

    kata = app.kata(name) or domain.resolve_kata(app.ws, app.progress(write=True), None)
    if exercise is not None and exercise not in kata.exercises:
        raise click.BadParameter(
            f"{kata.name} has no exercise {exercise!r}; it has: {', '.join(kata.exercises)}.",
            param_hint="EXERCISE")
    app.render.show_hint(app.out, domain.next_hint(app.ws, kata, exercise))


@main.command()
@click.argument("name", required=False)
@pass_app
@domain_errors
def lesson(app: App, name: str | None) -> None:
    """Read the lesson of the current kata (or NAME)."""
    from checker import app as domain

    kata = app.kata(name) or domain.resolve_kata(app.ws, app.progress(), None)
    app.render.show_lesson(app.out, kata, app.ws.lesson_text(kata))


@main.command("list")
@pass_app
@domain_errors
def list_(app: App) -> None:
    """Every kata with its state (done / current / locked) and exercises passed."""
    from checker.app import not_shipped, rows

    progress = app.progress()
    app.render.show_list(app.out, rows(app.ws, progress))
    app.render.show_not_shipped(app.out, not_shipped(app.ws, progress))


@main.command()
@pass_app
@domain_errors
def progress(app: App) -> None:
    """Overall and per-track bars; per kata the time spent, attempts, hints, date passed."""
    from checker.app import not_shipped, rows, streak

    progress = app.progress()
    app.render.show_progress(app.out, rows(app.ws, progress), app.ws.catalog.tracks,
                             streak(progress.days))
    app.render.show_not_shipped(app.out, not_shipped(app.ws, progress))


@main.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
@domain_errors
def reset(app: App, name: str, yes: bool) -> None:
    """Put NAME's pristine stub back; your version is kept as a timestamped backup."""
    kata = app.kata(name)
    path = app.ws.kata_file(kata)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "kata reset asks before replacing your file; without a terminal to ask on, "
                f"confirm with `kata reset {kata.name} --yes`.")
        click.confirm(f"Replace {path} with the pristine stub? (yours is kept as a backup)",
                      abort=True)
    backup = app.ws.reset(kata)
    app.out.print(f"Restored the stub of [bold]{kata.name}[/] at {app.render.path_link(path)}.")
    if backup:
        app.out.print(f"Your previous version is kept at {app.render.path_link(backup)}.")


@main.command()
@click.argument("name")
@click.argument("function", required=False)
@click.option("--force", is_flag=True, help="Show it even before NAME has passed (spoils it).")
@pass_app
@domain_errors
def solution(app: App, name: str, function: str | None, force: bool) -> None:
    """Compare your code with NAME's reference, function by function, once NAME has passed."""
    kata = app.kata(name)
    if not app.progress().passed(kata.name) and not force:
        raise click.ClickException(
            f"Kata {kata.name!r} has not passed yet, so its solution stays hidden. "
            f"`kata hint {kata.name}` helps; `kata solution {kata.name} --force` spoils it anyway.")
    reference = kata.solution_path.read_text(encoding="utf-8")
    try:
        mine = app.ws.kata_file(kata).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        mine = None
    app.render.show_solution(app.out, kata, reference, mine,
                             forced=force and not app.progress().passed(kata.name), only=function)


@main.command()
@click.argument("name", required=False)
@click.option("--poll", is_flag=True, help="Poll for changes (network drives, WSL mounts).")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), help="Use this seed for every run.")
@pass_app
@domain_errors
def watch(app: App, name: str | None, poll: bool, seed: int | None) -> None:
    """Re-check the current kata (or NAME) on every save. Keys: h hint, l list, r re-run, n next, q quit."""
    from checker import app as domain
    from checker import watch as watching

    progress = app.progress(write=True)
    kata = app.kata(name) or domain.resolve_kata(app.ws, progress, None)
    domain.require_unlocked(app.ws, progress, kata)
    session = watching.WatchSession(app.ws, kata, app.out, app.render, seed=seed,
                                    passed=progress.passed(kata.name))
    watching.run(session, poll=poll)


@main.command()
@click.option("--off", "off", flag_value="off", help="Also keep it off in this workspace.")
@click.option("--on", "off", flag_value="on", help="Let checks start it again (the default).")
@pass_app
@domain_errors
def stop(app: App, off: str | None) -> None:
    """Stop this workspace's warm check worker now (it also stops after 30 idle minutes)."""
    from checker import worker

    running = worker.is_running(app.ws.state_dir)
    if running:
        worker.stop(app.ws.state_dir)
    if off is not None:
        app.ws.set_setting("worker", off == "on")
    state = {None: "", "off": " Checks will not start it again here (`kata stop --on` undoes "
             "that).", "on": " The next `kata check` starts it again."}[off]
    app.out.print(("Stopped the check worker." if running else "No check worker was running.")
                  + state)


@main.command("open")
@click.argument("name", required=False)
@pass_app
@domain_errors
def open_(app: App, name: str | None) -> None:
    """Open the current kata's file (or NAME's) in $VISUAL / $EDITOR, else the default app."""
    from checker import app as domain
    from checker.editor import open_in_editor

    kata = app.kata(name) or domain.resolve_kata(app.ws, app.progress(), None)
    path = app.ws.kata_file(kata)
    app.ws.install_kata_files(kata)
    how = open_in_editor(path)
    app.out.print(f"Opened {app.render.path_link(path, app.render.rel(path))} with {how}.")


@main.group()
def dev() -> None:
    """Tools for kata authors."""


@dev.command("check")
@click.argument("names", nargs=-1)
@click.option("--seed", type=int, default=None,
              help="Prove at this one seed (default: the five seeds of checker.dev.SEEDS).")
@click.option("--markdown", is_flag=True, help="Print a per-kata summary table in Markdown.")
@catalog_option
@pass_app
@domain_errors
def dev_check(app: App, names: tuple[str, ...], seed: int | None, markdown: bool,
              catalog_file: Path | None) -> None:
    """Prove the checks: stub fails, solution passes, every mistake fails (and is named)."""
    from rich.table import Table

    from checker.dev import SEEDS, prove_kata, warm_runner

    catalog = _judging_catalog(app.workspace_or_none(), catalog_file)
    katas = [_kata_in(catalog, n) for n in names] or list(catalog.katas)
    if katas:
        _warn_if_not_shipped(katas[0])
    table = Table(show_edge=False, header_style="bold")
    for col in ("kata", "subject", "verdict", "diagnosed", "detail"):
        table.add_column(col)
    rows_md = ["| kata | exercises | stub fails | solution passes | mistakes shipped | mistakes diagnosed |",
               "|---|---|---|---|---|---|"]
    bad = 0
    # warm workers, two side by side: even one kata's proof is dozens of runs
    with warm_runner(streams=2) as run:
        for kata in katas:
            proofs = (prove_kata(kata, seed=SEEDS[0], seeds=SEEDS[1:], run=run) if seed is None
                      else prove_kata(kata, seed=seed, run=run))
            for p in proofs:
                good = p.ok and p.diagnosed is not False
                bad += not good
                table.add_row(kata.name, p.subject, "[green]ok[/]" if good else "[red]BAD[/]",
                              {None: "", True: "yes", False: "[red]no[/]"}[p.diagnosed],
                              app.render.escape(p.detail[:90]))
            mistakes = [p for p in proofs if p.subject.startswith("mistake:") and "@" not in p.subject]
            rows_md.append(
                f"| {kata.name} | {len(kata.exercises)} | {'yes' if proofs[0].ok else 'NO'} | "
                f"{'yes' if proofs[1].ok else 'NO'} | {len(mistakes)} | "
                f"{sum(bool(p.diagnosed) for p in mistakes)} |")
    if markdown:
        click.echo("\n".join(rows_md))
    else:
        app.out.print(table)
    if bad:
        raise click.ClickException(f"{bad} integrity problem(s).")
    if not markdown:
        app.out.print(f"[green]All {len(katas)} kata(s) proven.[/]")



@dev.command("lint-lessons")
@click.argument("names", nargs=-1)
@click.option("--no-examples", is_flag=True, help="Check the source pointers only (fast).")
@pass_app
@domain_errors
def dev_lint_lessons(app: App, names: tuple[str, ...], no_examples: bool) -> None:
    """Run every lesson, note and docstring example; verify every pointer into PyTorch's source."""
    from checker.lessonlint import lint

    catalog = _default_catalog()
    katas = [_kata_in(catalog, n) for n in names] or list(catalog.katas)
    findings = [f for found in lint(katas, examples=not no_examples).values() for f in found]
    app.render.show_findings(app.out, findings)
    if findings:
        raise click.ClickException(f"{len(findings)} untrue thing(s) in the teaching texts.")
    app.out.print(f"[green]{len(katas)} kata(s): every example and pointer holds.[/]")


@dev.command("mutants")
@click.argument("name")
@click.option("--seed", type=int, default=12345, show_default=True)
@click.option("--exercise", default=None, help="Only the mutants of this function.")
@click.option("--markdown", is_flag=True, help="Print one Markdown table row: the score.")
@catalog_option
@pass_app
@domain_errors
def dev_mutants(app: App, name: str, seed: int, exercise: str | None, markdown: bool,
                catalog_file: Path | None) -> None:
    """Mutation-test NAME's checks: each mutant of the reference solution must fail them.

    Prints per exercise the mutants, killed, survived and listed equivalents, the diff of
    each survivor (with the entry that would list it in checker/equivalents/NAME.toml), and
    the score killed / (mutants - equivalents). Exit status 1 below 95%.
    """
    from checker.dev import warm_runner

    try:
        from checker.mutants import score_kata, toml_entry
    except ModuleNotFoundError as exc:  # cosmic-ray comes with the dev extra
        raise click.ClickException(
            f"{exc.name} is missing: install the dev tools with pip install -e '.[dev]'.") from None

    kata = _kata_in(_judging_catalog(app.workspace_or_none(), catalog_file), name)
    _warn_if_not_shipped(kata)
    with warm_runner() as run:
        try:
            report = score_kata(kata, run, seed=seed, exercise=exercise)
        except ValueError as exc:  # the reference fails, or an equivalent lists no reason
            raise click.ClickException(str(exc)) from None
    counts = {v: report.count(v) for v in ("killed", "survived", "equivalent", "invalid")}
    if markdown:
        click.echo(f"| {kata.name} | {sum(e.total for e in report.exercises)} | "
                   f"{counts['killed']} | {counts['equivalent']} | {report.score:.1%} |")
    else:
        for ex in report.exercises:
            app.out.print(f"[bold]{ex.name}[/]: {ex.total} mutants, {ex.count('killed')} killed, "
                          f"{ex.count('survived')} survived, {ex.count('equivalent')} equivalent"
                          + (f" ({ex.count('invalid')} not loadable, left out)"
                             if ex.count("invalid") else ""))
            for j in ex.judged:
                if j.verdict == "survived":
                    app.out.print(f"  [red]survived[/] {j.mutant.operator}", highlight=False)
                    click.echo(j.mutant.diff + "\n" + toml_entry(j.mutant))
        for key in report.stale:
            app.out.print(f"[yellow]stale equivalent listing[/] {app.render.escape(str(key))}")
        for j in report.killed_but_listed:
            app.out.print(f"[yellow]listed as equivalent but killed by {j.detail}[/] "
                          f"{app.render.escape(str(j.mutant.key))}")
        app.out.print(f"{kata.name} (seed {seed}): {counts['killed']} killed, "
                      f"{counts['survived']} survived, {counts['equivalent']} equivalent; "
                      f"score {report.score:.1%}")
    if report.score < 0.95:
        raise click.ClickException(f"{kata.name}: mutation score {report.score:.1%} < 95%.")


def _register_classroom() -> None:
    from checker.cli_classroom import register

    register(main)


_register_classroom()
if __name__ == "__main__":
    main()
