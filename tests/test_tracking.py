"""wandb logging: an offline run holds every clip, a comparison table with the scores, per job."""
from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from workbench.cli import app
from test_experiment import workdir  # noqa: F401  (fixture)


def test_offline_wandb_run_holds_clips_and_table(workdir, monkeypatch):  # noqa: F811
    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = {"name": "tracked", "output": "run", "cases": [{"id": "a", "image": "a.png"}, {"id": "b", "image": "b.png"}],
            "models": ["test-drift"], "seeds": [0], "metrics": ["temporal_flicker"],
            "tracking": {"wandb": True, "mode": "offline", "project": "wb-test"}}
    (workdir / "s.yaml").write_text(yaml.safe_dump(spec))
    r = CliRunner().invoke(app, ["run", str(workdir / "s.yaml"), "--out", str(workdir / "elsewhere")])
    assert r.exit_code == 0, r.output
    assert not (workdir / "run").exists()  # --out wins for clips, records and the wandb run alike
    runs = list((workdir / "elsewhere" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = runs[0] / "files"
    videos = list((files / "media" / "videos").rglob("*.mp4"))
    assert len(videos) == 2
    tables = list((files / "media" / "table").glob("comparison*.table.json"))
    table = json.loads(tables[0].read_text())
    assert table["columns"][:4] == ["case", "model", "seed", "status"] and "temporal_flicker" in table["columns"]
    col = table["columns"].index("temporal_flicker")
    assert len(table["data"]) == 2 and all(0 <= row[col] <= 1 for row in table["data"])
    paths = [row[table["columns"].index("video_path")] for row in table["data"]]
    assert all((workdir / "elsewhere" / p).exists() for p in paths)
    assert list(runs[0].glob("run-*.wandb"))  # the history stream, for `wandb sync`
