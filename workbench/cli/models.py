"""`workbench models`: the model registry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail as _fail

@app.command()
def models(as_json: bool = typer.Option(False, "--json")) -> None:
    """List registered models with task, defaults and whether their weights are here."""
    from workbench.models import registry

    rows = [cls.describe() for cls in registry().values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        weights = "model-free" if r["weights"] is None else (
            f"{r['weights']} ({'available' if r['weights_available'] else 'not downloaded'})")
        typer.echo(f"{r['name']:12s} {r['task']:16s} {weights}\n    {r['description']}")
