"""`workbench report`: the HTML report of a run folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail as _fail

@app.command()
def report(run_dir: Path = typer.Argument(..., help="run folder holding results.jsonl")) -> None:
    """Write RUN_DIR/report.html (+ figures) from results.jsonl alone."""
    from workbench.report import ReportError, write_report

    try:
        typer.echo(str(write_report(run_dir)))
    except ReportError as e:
        _fail(str(e))
