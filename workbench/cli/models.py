"""`workbench models`: the model registry (`--json`), and `build-tiny DIR` (tiny local checkpoints)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail

models_app = typer.Typer(add_completion=False, help="Registered models; build tiny local checkpoints.")
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="one JSON list")) -> None:
    """List registered models with task, defaults, hub ids, licence and whether their weights are here."""
    if ctx.invoked_subcommand is not None:
        return
    from workbench.models import registry

    rows = [cls.describe() for cls in registry().values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        if r.get("hosted"):
            key = "key set" if r.get("key_present") else "key missing"
            weights = f"hosted: {r.get('provider_title') or r.get('provider')} {r.get('remote_model')} ({r.get('key_env')} {key})"
            if (r.get("price") or {}).get("rule"):
                weights += f"; {r['price']['rule']}"
        elif r["weights"] is None:
            weights = "model-free"
        else:
            weights = f"{r['weights']} ({'here' if r['weights_available'] else 'not here'})"
        typer.echo(f"{r['name']:20s} {r['task']:15s} {weights}")
        note = f"  [{r['licence']}]" if r.get("licence") else ""
        typer.echo(f"    {r['description']}{note}")
        typer.echo(f"    {inputs_line(r)}")


def inputs_line(row: dict) -> str:
    """`needs image; optional: prompt (empty when absent), ...; refuses audio (...)` from a describe() row:
    what a case must have, what else the model uses (and what runs without it), what it refuses."""
    needs = ", ".join(row.get("requires") or []) or "nothing"
    accepts, notes = row.get("accepts"), row.get("inputs") or {}
    if accepts is None:
        return f"needs {needs}; uses whatever else the case has"
    optional = []
    for field in sorted(set(accepts) - set(row.get("requires") or [])):
        why = notes.get(field, "optional").partition(": ")[2]
        optional.append(f"{field} ({why})" if why else field)
    line = f"needs {needs}" + (f"; optional: {', '.join(optional)}" if optional else "")
    refused = [f"{f} ({n.partition(': ')[2]})" for f, n in notes.items() if n.startswith("refused: ")]
    return line + (f"; refuses {', '.join(refused)}" if refused else "")


@models_app.command("build-tiny")
def build_tiny(out: Path = typer.Argument(..., help="folder to write one checkpoint folder per family into"),
               only: Optional[list[str]] = typer.Option(None, "--only", help="just these tiny names (repeatable)"),
               force: bool = typer.Option(False, "--force", help="rebuild folders that already exist")) -> None:
    """Write tiny random-weight checkpoints of every diffusers family (OUT/NAME, loadable by
    diffusers.DiffusionPipeline.from_pretrained); point a suite's `params: {model_id: OUT/NAME}` at one."""
    from workbench.models.families import FAMILIES
    from workbench.models.tiny import build_all

    try:
        built = build_all(out, list(only) if only else None, skip_existing=not force)
    except KeyError as e:
        fail(str(e.args[0]))
    for name, folder in built.items():
        users = ", ".join(s.name for s in FAMILIES if s.tiny == name)
        typer.echo(f"{folder}  ({users})")
