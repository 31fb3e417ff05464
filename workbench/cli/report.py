"""`workbench report`: the HTML report of a run folder."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail as _fail, wandb_mode
from workbench.ranking import MOTION_FLOOR

@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(..., help="run folder(s) holding results.jsonl, or a folder of runs (runs/): "
                                                    "several are joined on case and seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for report.html (default: the run folder; "
                                                           "required when several are joined)"),
    motion_floor: float = typer.Option(MOTION_FLOOR, "--motion-floor", min=0.0,
                                       help="mean optical flow (px/frame at a 256 px short side, scaled with the clip's "
                                            "size) below which a clip counts as still: its consistency scores are "
                                            "left out of the ranking"),
    clips: str = typer.Option("auto", "--clips", metavar="auto|embed|link",
                              help="auto: embed clips in report.html (plays anywhere: JupyterLab, Notebook, VS Code, "
                                   "a lone copy of the file) up to $WORKBENCH_REPORT_EMBED_MB (default 64) and link the "
                                   "rest; embed: every clip; link: none (clips/ must stay beside report.html)"),
    wandb: Optional[str] = typer.Option(None, "--wandb", callback=wandb_mode, help="online | offline: also bring the folder's W&B run "
                                                              "up to date with every record (e.g. after shards)"),
) -> None:
    """Write report.html (+ figures) from results.jsonl alone: one run, or several joined on case and seed."""
    from workbench.report import ReportError, write_report

    if wandb is not None and len(run_dirs) > 1:  # decided before anything is written
        _fail("--wandb brings one run folder's W&B run up to date; pass one folder with --wandb")
    try:
        path = write_report(run_dirs if len(run_dirs) > 1 else run_dirs[0], out, motion_floor=motion_floor,
                            clips=clips.strip().lower())
    except ReportError as e:
        _fail(str(e))
    if len(run_dirs) > 1:  # said once the report stands (a refused command stays one error line)
        for line in empty_runs(run_dirs):
            typer.echo(f"warning: {line}", err=True)
    typer.echo(str(path))
    run_dir = run_dirs[0]
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


def empty_runs(paths: list[Path]) -> list[str]:
    """One line per run folder among `paths` (or below them) whose results.jsonl holds no record: joined
    with others it adds nothing, and says so (alone it is an error)."""
    from workbench.runset import RunSetError, find_runs
    from workbench.store import RunStore

    out = []
    for p in paths:
        try:
            runs = find_runs(p)
        except RunSetError:
            continue  # the report names it
        for run in runs:
            try:
                empty = not RunStore(run).latest()
            except OSError:
                continue
            if empty:
                out.append(f"{run}: holds no records (its results.jsonl is empty); it adds nothing to the report")
    return out
