"""`workbench judgments import FILE --run RUN` / `workbench judgments show RUN...`: human votes on clips."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail, wandb_mode

judgments_app = typer.Typer(add_completion=False, no_args_is_help=True,
                            help="Blind human votes on clips (RUN/judgments.jsonl): import them, rank models by them.")
app.add_typer(judgments_app, name="judgments")


@judgments_app.command("import")
def import_(file: Path = typer.Argument(..., help="votes downloaded from a report's judging page (.jsonl)"),
            run: Path = typer.Option(..., "--run", help="the run folder the report was written from")) -> None:
    """Merge a votes file into RUN/judgments.jsonl: every line checked, duplicates ignored."""
    from workbench.judging.store import JudgmentError, import_votes

    try:
        result = import_votes(file, run)
    except JudgmentError as e:
        fail(str(e))
    lines = result.lines()
    typer.echo(lines[0])
    for line in lines[1:]:
        typer.echo(line, err=True)


@judgments_app.command("show")
def show(run_dirs: list[Path] = typer.Argument(..., help="run folder(s): several are joined on case and seed"),
         as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object"),
         wandb: Optional[str] = typer.Option(None, "--wandb", callback=wandb_mode,
                                             help="online | offline: also log the summary to W&B")) -> None:
    """The ranking from the votes per criterion, the arena checks, and which metric agrees with the judges."""
    from workbench.judging.page import comparison_records, suite_objective
    from workbench.judging.store import JudgmentError
    from workbench.judging.summary import summarize_runs

    try:
        records, dirs = comparison_records(run_dirs)
        summary = summarize_runs(dirs, records, suite_objective(dirs[0]))
    except JudgmentError as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), default=float))
    else:
        for line in summary.lines():
            typer.echo(line)
    if wandb is not None:
        from workbench.judging.track import log_judging

        files = log_judging(summary, dirs[0], wandb)
        if files:
            typer.echo(f"wandb ({wandb}): {files}", err=as_json)
