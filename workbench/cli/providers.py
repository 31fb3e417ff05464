"""`workbench providers check [--json]`: each hosted provider, its key variable (present or missing,
never the value), its base URL and whether its official client is installed."""
from __future__ import annotations

import json

import typer

from workbench.cli.app import app

providers_app = typer.Typer(add_completion=False, no_args_is_help=True,
                            help="Hosted model providers (Hedra, fal, Replicate, ...): keys and endpoints.")
app.add_typer(providers_app, name="providers")


@providers_app.command("check")
def check(as_json: bool = typer.Option(False, "--json", help="one JSON list")) -> None:
    """Say which providers have their key in the environment (the value is never shown), where each
    client points, and which hosted models each serves. Reads the environment only; no network."""
    from workbench.models import registry
    from workbench.models.hosted.keys import providers

    models: dict[str, list[str]] = {}
    for name, cls in registry().items():
        if getattr(cls, "provider", None):
            models.setdefault(cls.provider, []).append(name)
    rows = [{**p.check(), "models": sorted(models.get(p.name, []))} for p in providers().values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        mark = "ok     " if r["key_present"] else "missing"
        client = "" if r["client_installed"] else f"  (client not installed: pip install {r['client']})"
        typer.echo(f"{mark} {r['provider']:10s} {r['key_env']:22s} {r['base_url']}{client}")
        typer.echo(f"        models: {', '.join(r['models']) or '-'}")
    missing = [r["key_env"] for r in rows if not r["key_present"]]
    if missing:
        typer.echo(f"{len(missing)} of {len(rows)} keys missing: set {', '.join(missing)} to use those providers",
                   err=True)
