"""Local diffusers checkpoints in the Studio: found under the runs folder, offered as models, checked in place.

A folder holding `model_index.json` (what `workbench models build-tiny` writes into runs/tiny, or any
pipeline saved with `save_pretrained`) is a model the Studio can run: its pipeline class names the
family that loads it (`families.py`), the folder becomes that family's `model_id`. A relative model_id
means what it means to the CLI run from the project root (the kernel of a notebook runs in notebooks/),
so the Studio resolves it there before it writes the suite.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_DEPTH = 3  # runs/<a>/<b>/<c>/model_index.json at most


@dataclass(frozen=True)
class LocalCheckpoint:
    """A pipeline folder and the families that load it (the preferred one first)."""

    path: Path
    pipeline: str
    families: tuple[str, ...]

    @property
    def family(self) -> str:
        return self.families[0]


def pipeline_class(folder: Path) -> str | None:
    """The `_class_name` of a folder's model_index.json (None: not a readable pipeline folder)."""
    try:
        data = json.loads((Path(folder) / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    name = data.get("_class_name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def families_for(folder: Path, pipeline: str) -> tuple[str, ...]:
    """Registered families whose pipeline class is `pipeline`: the one whose tiny checkpoint has the
    folder's name first (runs/tiny/wan-i2v -> the Wan 2.1 I2V family), then the table's order."""
    try:
        from workbench.models.families import FAMILIES
    except Exception:  # diffusers adapters unavailable: no family loads it
        return ()
    fits = [s for s in FAMILIES if s.pipeline == pipeline]
    fits.sort(key=lambda s: 0 if getattr(s, "tiny", None) == Path(folder).name else 1)
    return tuple(s.name for s in fits)


def find_checkpoints(root: Path, max_depth: int = MAX_DEPTH) -> list[LocalCheckpoint]:
    """Pipeline folders under `root` (a runs folder) that a registered family loads, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        return []
    found: list[LocalCheckpoint] = []
    for depth in range(1, max_depth + 1):
        for index in sorted(root.glob("/".join(["*"] * depth) + "/model_index.json")):
            folder = index.parent
            if any(part.startswith(".") for part in folder.relative_to(root).parts):
                continue
            pipe = pipeline_class(folder)
            fams = families_for(folder, pipe) if pipe else ()
            if fams:
                found.append(LocalCheckpoint(folder.resolve(), pipe, fams))
    return sorted(found, key=lambda c: str(c.path))


def resolve_model_id(value: str, project_root: Path) -> str:
    """A model_id as the CLI run from the project root reads it: a relative path that exists there (or
    looks like a path: ./x, ../x) becomes absolute; hub ids and absolute paths stay as they are."""
    from workbench.models.diffusers_pipeline import is_local_ref

    text = str(value).strip()
    p = Path(text).expanduser()
    if p.is_absolute():
        return str(p)
    there = Path(project_root) / p
    if there.exists() or is_local_ref(text):
        return str(there.resolve())
    return text


def model_id_problem(cls: type, value: Any, project_root: Path, options: dict[str, Any] | None = None) -> str | None:
    """Why `value` cannot be this diffusers family's model_id here (None: it loads, or it is the default,
    whose absence the model line already names): a folder that is missing, incomplete, or holds another
    family's pipeline; a hub id that is not in the local hub cache. The run's own rule: pickled (.bin)
    weights count only with the run options' `allow_pickle: true` (`options`, what the model entry gets)."""
    spec = getattr(cls, "spec", None)
    if spec is None or not isinstance(value, str):
        return None
    from workbench.models.diffusers_pipeline import cached_snapshot, folder_problem, is_local_ref

    text = value.strip()
    allow_pickle = bool((options or {}).get("allow_pickle"))
    if not text:
        return "empty: a hub id (owner/name) or a folder with model_index.json"
    if text == cls.defaults.get("model_id"):
        return None
    resolved = resolve_model_id(text, project_root)
    if is_local_ref(resolved):
        folder = Path(resolved)
        if not folder.exists():
            return f"{text}: no such folder (relative paths start at {project_root})"
        if not folder.is_dir():
            return f"{text}: not a folder; point at a pipeline folder with model_index.json"
        why = folder_problem(folder, allow_pickle=allow_pickle)
        if why:
            return f"{text}: {why}" + ("" if "allow_pickle" in why else "; not a complete diffusers pipeline folder")
        pipe = pipeline_class(folder)
        if pipe and pipe != spec.pipeline:
            fams = families_for(folder, pipe)
            fix = f"pick {fams[0]}" if fams else "no registered family loads it"
            return f"{text} holds a {pipe}; {cls.name} loads {spec.pipeline} ({fix})"
        return None
    snap = cached_snapshot(text)
    if snap is None:
        return (f"{text} is not in the local hub cache; fetch it on a machine with network "
                f"(huggingface-cli download {text}) or point model_id at a local folder")
    why = folder_problem(snap, allow_pickle=allow_pickle)
    return f"{text} (hub cache): {why}" if why else None
