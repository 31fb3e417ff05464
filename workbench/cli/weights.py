"""`workbench weights fetch NAME...` / `workbench weights check [NAME...]`: the only commands that download."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail

weights_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Download and verify model and metric weights (nothing else downloads).")
app.add_typer(weights_app, name="weights")


@weights_app.command("fetch")
def fetch(names: list[str] = typer.Argument(..., help="model names (workbench models) or metric backends"),
          dest: Optional[Path] = typer.Option(None, "--dir", help="download into DIR/NAME instead of the caches"),
          allow_pickle: bool = typer.Option(False, "--allow-pickle", help="also download pickled .bin/.pt files")) -> None:
    """Download what each NAME needs into the hub cache (or --dir)."""
    from workbench.weights import WeightsError, catalogue, fetch as fetch_one

    cat = catalogue()
    for name in names:
        try:
            path = fetch_one(name, dest, allow_pickle=allow_pickle)
        except WeightsError as e:
            fail(str(e), 1)
        w = cat[name]
        typer.echo(f"{name}: {path}")
        if dest is not None and w.kind == "hub" and w.env is None:
            typer.echo(f"    use it with params: {{model_id: {path}}}")
        elif w.env and (dest is not None or w.kind == "url" and not w.torch_cache):
            typer.echo(f"    export {w.env}={path}")


@weights_app.command("check")
def check(names: Optional[list[str]] = typer.Argument(None, help="names to check (default: all)"),
          as_json: bool = typer.Option(False, "--json"),
          missing_only: bool = typer.Option(False, "--missing", help="list only what is missing")) -> None:
    """Say which weights are on this machine (caches and env vars only; never the network).
    Exits 1 when anything checked is missing."""
    from workbench.weights import WeightsError, status

    try:
        rows = status(list(names) if names else None)
    except WeightsError as e:
        fail(str(e))
    shown = [r for r in rows if not (missing_only and r["present"])]
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
    else:
        for r in shown:
            mark = "ok     " if r["present"] else "missing"
            where = r["path"] or (f"set {r['env']}" if r["kind"] == "repo" else f"workbench weights fetch {r['name']}")
            typer.echo(f"{mark} {r['name']:20s} {r['source']}  -> {where}")
    missing = sum(not r["present"] for r in rows)
    if missing:
        if not as_json:
            typer.echo(f"{missing} of {len(rows)} missing", err=True)
        raise typer.Exit(1)
