"""Where the Studio and the notebooks look for samples and put runs."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def samples_dir() -> Path:
    """The project's own sample inputs (data/images, data/audio): WORKBENCH_DATA, else the repo's data/."""
    env = os.environ.get("WORKBENCH_DATA")
    return Path(env).expanduser().resolve() if env else REPO / "data"


def default_runs_root() -> Path:
    """Folder that holds run folders: WORKBENCH_RUNS, else the repository's runs/ (editable install), else ./runs."""
    env = os.environ.get("WORKBENCH_RUNS")
    if env:
        return Path(env).expanduser().resolve()
    if (REPO / "pyproject.toml").is_file() and (REPO / "workbench").is_dir():
        return REPO / "runs"
    return Path.cwd().resolve() / "runs"
