"""`workbench` command: a thin shell over the Python API. One module per area registers its commands
on the shared typer `app` (run, evaluate, models, report, ...)."""
from __future__ import annotations

import importlib

from workbench.cli.app import app, fail

COMMAND_MODULES = ("run", "evaluate", "models", "report", "workflow", "weights", "providers", "generate", "judgments")

for _mod in COMMAND_MODULES:
    importlib.import_module(f"workbench.cli.{_mod}")


def main() -> None:  # pragma: no cover
    app()


__all__ = ["app", "fail", "main"]
