"""`workbench report`: the HTML report of a run folder."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail as _fail, wandb_mode

@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="run folder holding results.jsonl"),
    wandb: Optional[str] = typer.Option(None, "--wandb", callback=wandb_mode, help="online | offline: also bring the folder's W&B run "
                                                              "up to date with every record (e.g. after shards)"),
) -> None:
    """Write RUN_DIR/report.html (+ figures) from results.jsonl alone."""
    from workbench.report import ReportError, write_report

    try:
        typer.echo(str(write_report(run_dir)))
    except ReportError as e:
        _fail(str(e))
    if wandb is None:
        return
    from workbench.suite import SuiteError
    from workbench.tracking import sync_run_folder

    try:
        tracker = sync_run_folder(run_dir, wandb)
    except SuiteError as e:
        _fail(str(e))
    if tracker is None:
        return
    if tracker.failed:
        typer.echo(f"wandb: not updated ({tracker.failed}); every result is in {run_dir / 'results.jsonl'}", err=True)
    elif tracker.run_dir:
        typer.echo(f"wandb ({tracker.mode}): {tracker.run_dir}")
    else:
        typer.echo(f"wandb ({tracker.mode}): already holds every record")
