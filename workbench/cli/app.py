"""The typer app every command module registers on, and the one-line error exit."""
from __future__ import annotations

from typing import NoReturn

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run, score and compare image-to-video models.")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one `error:` line and exit with `code` (2: bad usage or input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
