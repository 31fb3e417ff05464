"""The notebooks are entry points: each one is executed top to bottom on the CPU defaults.

Runs go to a temporary runs folder (WORKBENCH_RUNS); the calibration notebook gets a tiny calibration
suite over a clip made here, so it runs whether or not ../shared/media is present.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
EXPECTED = ["01_quickstart", "02_compare_models", "03_talking_avatar", "04_metric_calibration", "05_gpu_benchmark"]


def test_every_notebook_is_here_and_committed_without_outputs():
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert set(EXPECTED) <= set(names), sorted(set(EXPECTED) - set(names))
    for name in names:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code), name
        assert nb.cells[0].cell_type == "markdown", f"{name} starts by saying what it does"


def _execute(name: str, env: dict[str, str], tmp_path: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment
    try:
        NotebookClient(nb, timeout=240, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue")
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") if o.get("output_type") == "stream" else
                       str((o.get("data") or {}).get("text/plain", "")))
    return "\n".join(out)


def _ok_records(run: Path) -> list[dict]:
    from workbench.store import load_records

    return [r for r in load_records(run) if r["status"] == "ok"]


@pytest.fixture()
def env(tmp_path):
    return {"WORKBENCH_RUNS": str(tmp_path / "runs"), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
            "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}


def test_01_quickstart(env, tmp_path):
    nb = _execute("01_quickstart", env, tmp_path)
    run = tmp_path / "runs" / "quickstart"
    recs = _ok_records(run)
    assert {(r["case"], r["model"]) for r in recs} == {(c, m) for c in ("portrait", "landscape") for m in ("static", "kenburns")}, _text(nb)
    assert (run / "report.html").is_file()
    widgets = [o for c in nb.cells for o in c.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 2, "the Studio and the Compare tab are displayed as widgets"


def test_02_compare_models(env, tmp_path):
    nb = _execute("02_compare_models", env, tmp_path)
    run = tmp_path / "runs" / "compare-models"
    recs = _ok_records(run)
    assert {r["model"] for r in recs} == {"static", "kenburns", "puppet"}
    assert len(recs) == 2 * 2 * 2 + 2  # two cases x two seeds for the image models, puppet on the speech case only
    text = _text(nb)
    assert "temporal_flicker" in text and "[" in text  # the CI column
    assert "(motion-gated)" in text and "static" in text and "not ranked: all" in text  # the still baseline never wins
    assert list(run.glob("wandb/offline-run-*")), "an offline W&B run was written"


def test_03_talking_avatar(env, tmp_path):
    nb = _execute("03_talking_avatar", env, tmp_path)
    recs = {r["model"]: r for r in _ok_records(tmp_path / "runs" / "talking-avatar")}
    assert set(recs) == {"puppet", "static"}
    assert recs["puppet"]["scores"]["identity_similarity"] > 0.5
    text = _text(nb)
    assert "audio 0.4 s late" in text


def test_04_metric_calibration(env, tmp_path):
    from workbench.models import get_generator
    from workbench.models.base import GenerationRequest
    from workbench.media import load_image

    img = load_image(REPO / "data/images/landscape.png", max_side=160)
    clip = get_generator("kenburns")(seconds=1.2, width=128, height=128).generate(GenerationRequest(image=img, seed=1))
    clip.save(tmp_path / "move.mp4")
    suite = {"name": "tiny-calibration", "max_seconds": 2, "seed": 0, "clips": [{"path": "move.mp4"}],
             "metrics": ["temporal_flicker", "warp_error"],
             "perturbations": [{"name": "shuffled", "kind": "shuffle_frames",
                                "expect": {"temporal_flicker": "down", "warp_error": "up"}}]}
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump(suite))
    nb = _execute("04_metric_calibration", {**env, "WORKBENCH_CALIBRATION_SUITE": str(tmp_path / "cal.yaml")}, tmp_path)
    result = json.loads((tmp_path / "runs" / "calibration" / "calibration.json").read_text())
    assert result["passed"] == 2 and result["failed"] == 0, result
    assert "2 passed, 0 failed" in _text(nb)


def test_05_gpu_benchmark_documents_itself_and_skips_on_cpu(env, tmp_path):
    import torch

    nb = _execute("05_gpu_benchmark", env, tmp_path)
    text = _text(nb)
    if not torch.cuda.is_available():
        assert "skipping the benchmark: no CUDA device" in text
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("results.jsonl"))
