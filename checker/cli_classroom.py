"""The classroom commands: ``kata grade`` and ``kata autograder gradescope|github``.

Thin bodies over checker.grade, checker.verdicts and checker.autograder; registered on the
``kata`` group by checker.cli.
"""

from __future__ import annotations

from pathlib import Path

import click

WARM_FROM = 4  # pairs in a batch above which grading goes through a warm worker

@click.command()
@click.argument("submissions", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--kata", "names", multiple=True, help="A kata to grade (repeat); default: every "
              "kata any submission has a file for.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "junit", "gradescope"]),
              default="json", show_default=True)
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of stdout.")
@click.option("--jobs", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Judgements in flight at once.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1),
              help="The batch's seed (default: a fresh one, shown in the output).")
@click.option("--no-worker", is_flag=True, help="Judge every file cold (slower).")
def grade(submissions: tuple[Path, ...], names: tuple[str, ...], fmt: str, output: Path | None,
          jobs: int, seed: int | None, no_worker: bool) -> None:
    """Grade SUBMISSIONS (workspaces, or folders with katas/NN_name/name.py files).

    Each (submission, kata) is judged in a fresh sandboxed child; progress files and
    workspace settings of a submission are never read. Score = exercises passed.
    """
    import tempfile

    from checker import grade as grading
    from checker import verdicts, worker
    from checker.catalog import load_catalog
    from checker.outcome import random_seed
    from checker.runner import run_checks

    katas = _katas(names) or grading.default_katas(submissions, load_catalog())
    if not katas:
        raise click.UsageError("No kata file found in these submissions; name one with --kata.")
    seed = random_seed() if seed is None else seed
    pairs = [(sub, kata) for sub in submissions for kata in katas]
    err = click.get_text_stream("stderr")
    click.echo(f"Grading {len(submissions)} submission(s) x {len(katas)} kata(s), seed {seed}.",
               err=True)
    with tempfile.TemporaryDirectory(prefix="kata-grade-worker-") as state:
        # A worker pays for itself from a handful of runs on; a few run cold at once.
        warm = not no_worker and len(pairs) > WARM_FROM
        proc = worker.start(Path(state), wait=120) if warm else None
        use = Path(state) if proc is not None else None

        import threading

        cold_one_at_a_time = threading.Lock()

        def judge(kata, file, run_seed):
            if use is not None:
                return run_checks(kata, file, seed=run_seed, use_worker=use)
            # A cold run ends every process that appeared while it ran (the runner is a
            # child subreaper): two at once in one process would end each other's children.
            with cold_one_at_a_time:
                return run_checks(kata, file, seed=run_seed, use_worker=None)

        try:
            rows = _run_with_bar(grading, pairs, seed, judge, jobs, err.isatty())
        finally:
            if proc is not None:
                worker.stop(Path(state))
    if fmt == "json":
        text = verdicts.grade_json(rows, seed) + "\n"
    elif fmt == "csv":
        text = verdicts.grade_csv(rows)
    elif fmt == "junit":
        text = verdicts.junit_xml([(f"{r.submission}::{r.verdict['kata']}", r.verdict)
                                   for r in rows])
    else:
        import json

        text = json.dumps(verdicts.gradescope_results(rows, seed), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    passed = sum(r.verdict["passed"] for r in rows)
    click.echo(f"{passed}/{len(rows)} (submission, kata) pairs pass; seed {seed}.", err=True)


def _run_with_bar(grading, pairs, seed, judge, jobs, tty: bool):
    if not tty:
        return grading.grade(pairs, seed=seed, judge=judge, jobs=jobs)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("grading", total=len(pairs))
        return grading.grade(pairs, seed=seed, judge=judge, jobs=jobs,
                             on_done=lambda _row: bar.advance(task))


@click.group()
def autograder() -> None:
    """Write an autograder for a classroom engine (Gradescope, GitHub Classroom)."""


@autograder.command("gradescope")
@click.option("--kata", "names", multiple=True, required=True, help="A kata to grade (repeat).")
@click.option("--output", type=click.Path(path_type=Path), default=Path("autograder.zip"),
              show_default=True, help="The bundle: a .zip to upload, or a folder.")
def autograder_gradescope(names: tuple[str, ...], output: Path) -> None:
    """A Gradescope autograder bundle: setup.sh, run_autograder and this torch-katas."""
    from checker.autograder import gradescope_bundle

    katas = _katas(names)
    gradescope_bundle(katas, output)
    click.echo(f"Wrote {output}: upload it as the assignment's autograder "
               f"({', '.join(k.name for k in katas)}; one test per exercise).")


@autograder.command("github")
@click.option("--kata", "names", multiple=True, required=True, help="A kata to grade (repeat).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The template repository's root.")
@click.option("--source", default="torch-katas", show_default=True,
              help="What `pip install` gets torch-katas from (a git URL, a path, a wheel).")
def autograder_github(names: tuple[str, ...], output: Path, source: str) -> None:
    """A GitHub Classroom workflow: one autograding step per kata, its exercises as points."""
    from checker.autograder import github_workflow

    katas = _katas(names)
    path = github_workflow(katas, output, source=source)
    click.echo(f"Wrote {path}: commit it to the assignment's template repository.")


def _katas(names):
    from checker.catalog import UnknownKata, load_catalog

    catalog = load_catalog()  # the shipped one: a submission's settings are never read
    try:
        return [catalog.get(n) for n in names]
    except UnknownKata as exc:
        raise click.BadParameter(str(exc), param_hint="--kata") from None


def register(group: click.Group) -> None:
    group.add_command(grade)
    group.add_command(autograder)
