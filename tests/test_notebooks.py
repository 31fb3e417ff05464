"""Notebooks are entry points: each one is executed end to end on a small suite."""
from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from nbclient import NotebookClient
from PIL import Image

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    y, x = np.mgrid[0:48, 0:48]
    Image.fromarray(np.stack([x * 5, y * 5, 0 * x + 60], -1).astype(np.uint8)).save(tmp_path / "img.png")
    suite = {"name": "nb", "cases": [{"id": "c", "image": "img.png"}],
             "models": [{"name": "static", "params": {"seconds": 0.4}}, {"name": "kenburns", "params": {"seconds": 0.4}}],
             "seeds": [0], "metrics": ["temporal_flicker"], "output": "run"}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(suite))
    monkeypatch.setenv("WORKBENCH_SUITE", str(tmp_path / "s.yaml"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    assert (tmp_path / "run" / "report.html").exists()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
