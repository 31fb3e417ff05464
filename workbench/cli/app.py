"""The typer app every command module registers on, and the one-line error exit.

Command modules import the library inside their commands (local imports, for start-up time: `workbench
--help` and a mistyped option answer without loading torch, diffusers or the metrics)."""
from __future__ import annotations

from typing import NoReturn

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run, score and compare image-to-video models.")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one `error:` line and exit with `code` (2: bad usage or input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def wandb_mode(value: str | None) -> str | None:
    """typer callback for every `--wandb` option: one of the W&B modes, else one error line."""
    from workbench.tracking import MODES

    if value is not None and value not in MODES:
        fail(f"--wandb {value!r} must be online, offline or disabled")
    return value


def unexpected(error: BaseException, what: str) -> NoReturn:
    """An unforeseen failure (a bug, not a bad input) as one `error:` line and exit 1; the traceback
    is printed too when WORKBENCH_DEBUG=1 is set."""
    import os
    import traceback

    if os.environ.get("WORKBENCH_DEBUG"):
        traceback.print_exception(error)
    first = (str(error).strip().splitlines() or [""])[0]
    fail(f"{what} ({type(error).__name__}: {first}); please report it (WORKBENCH_DEBUG=1 shows the traceback)", 1)
