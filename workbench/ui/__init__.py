"""The notebook Studio (ipywidgets): `from workbench.ui import Studio; Studio()`.

One module per tab (generate, compare, evaluate, history), shared widgets in widgets.py (the clip
grid that plays in step), form pieces in forms.py, the worker thread in jobs.py and the rule for how
a clip reaches the browser (served by Jupyter's /files/ route or embedded) in media.py, what a case is in
cases.py, local checkpoints in checkpoints.py, the background loading of what the chosen metrics need in
warmup.py, and the pre-save hook that keeps the tracked notebooks clean in nbstrip.py.
"""
from workbench.ui.media import video_source
from workbench.ui.paths import default_runs_root, samples_dir
from workbench.ui.studio import Studio
from workbench.ui.widgets import ClipGrid, clip_item


def show_clips(paths, titles=None, width: int = 320, label: str = ""):
    """A ClipGrid of clips on disk, one row playing in step: plays in JupyterLab, Notebook and VS Code."""
    paths = list(paths)
    titles = list(titles) if titles is not None else [str(getattr(p, "name", p)) for p in paths]
    return ClipGrid(rows=[{"label": label, "clips": [clip_item(p, t) for p, t in zip(paths, titles)]}], width=width)


__all__ = ["ClipGrid", "Studio", "clip_item", "default_runs_root", "samples_dir", "show_clips", "video_source"]
