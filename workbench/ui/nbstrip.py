"""Keep the project's tracked notebooks free of outputs when JupyterLab saves them.

The notebooks under notebooks/ are committed without outputs. Running one in Lab with autosave on would
write the clips, widget state and timings into the tracked file. `strip_outputs_hook` is a Jupyter
contents pre-save hook: for a notebook saved where it is tracked (the project's notebooks/ folder, or the
path its metadata names: `{"workbench": {"tracked_as": "notebooks/01_quickstart.ipynb"}}`, which also holds
in a copy of the project), the saved file gets no outputs, execution counts or widget state, and the
`language_info` the kernel reports on connecting (its Python version, lexer, mimetype) goes back to the
tracked `{"name": "python"}`: merely opening the notebook makes Lab autosave it, and the file must come out
byte for byte as committed. What the browser shows is untouched. `make lab` starts JupyterLab with it:

    jupyter lab --ContentsManager.pre_save_hook=workbench.ui.nbstrip.strip_outputs_hook

A notebook saved elsewhere (File > Save Notebook As... into runs/) keeps its outputs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.ui.paths import REPO

FLAG = "tracked_as"


def wants_stripping(nb: dict[str, Any], os_path: Path | None) -> bool:
    """True when the notebook is being saved where it is tracked: the project's notebooks/ folder, or
    the path (relative to a project root) its metadata names."""
    if os_path is None:
        return False
    meta = (nb.get("metadata") or {}).get("workbench") or {}
    tracked = meta.get(FLAG) if isinstance(meta, dict) else None
    if isinstance(tracked, str) and tracked and os_path.as_posix().endswith("/" + tracked.strip("/")):
        return True
    try:
        return os_path.resolve().parent == (REPO / "notebooks").resolve()
    except OSError:
        return False


def strip_notebook(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook (a JSON dict, changed in place) without outputs, execution counts or widget state."""
    for cell in nb.get("cells") or []:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        meta = cell.get("metadata")
        if isinstance(meta, dict):
            meta.pop("execution", None)  # Lab's recorded timings
    meta = nb.get("metadata")
    if isinstance(meta, dict):
        meta.pop("widgets", None)
        info = meta.get("language_info")
        if isinstance(info, dict) and info.get("name"):  # the kernel's details (version etc.) vary per machine
            meta["language_info"] = {"name": info["name"]}
    return nb


def strip_outputs_hook(model: dict[str, Any], path: str, contents_manager: Any = None, **_: Any) -> None:
    """Jupyter contents pre-save hook (called with model, path, contents_manager as keywords)."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    os_path = None
    root = getattr(contents_manager, "root_dir", None)
    if root:
        os_path = Path(root) / path.lstrip("/")
    if wants_stripping(model["content"], os_path):
        strip_notebook(model["content"])
