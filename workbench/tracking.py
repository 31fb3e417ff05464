"""Weights & Biases logging as a runner callback.

One wandb run per suite run. Each finished job logs its scores (keyed `scores/<name>`) and its mp4
(`wandb.Video` from the saved file path, so no moviepy is needed); the end of the run logs a
side-by-side `comparison` table (case, model, seed, video, every score) and per-model means to the
summary. Offline mode (the default) writes everything under RUN_DIR/wandb for `wandb sync` later.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workbench.suite import Suite


class WandbTracker:
    """Runner callback that mirrors records into a wandb run."""

    def __init__(self, suite: Suite, run_dir: str | Path | None = None, config: dict[str, Any] | None = None):
        self.suite = suite
        self.run_dir_override = Path(run_dir) if run_dir else None
        self.config = config or {}
        self.run = None
        self.run_dir: str | None = None
        self._rows: list[dict[str, Any]] = []
        self._videos: dict[str, Any] = {}  # clip path -> its wandb.Video: each mp4 is copied into the run once
        self._root: Path | None = None

    def on_run_start(self, jobs, todo) -> None:
        import wandb

        t = self.suite.tracking
        root = self.run_dir_override or self.suite.output_dir()
        root.mkdir(parents=True, exist_ok=True)
        self._root = root
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(project=t.project, entity=t.entity, mode=t.mode, dir=str(root),
                              name=self.suite.name, job_type="suite",
                              config={"suite": self.suite.model_dump(mode="json"), **self.config},
                              reinit="finish_previous")
        self.run_dir = self.run.dir if self.run is not None else None

    def on_job_end(self, job, record: dict[str, Any]) -> None:

        if self.run is None:
            return
        data: dict[str, Any] = {f"scores/{k}": v for k, v in record.get("scores", {}).items() if v is not None}
        data["job/status_ok"] = int(record.get("status") == "ok")
        data["job/seconds"] = record.get("timings", {}).get("total")
        video = self._video(record)
        if video is not None:
            data[f"clips/{record['case']}/{record['model']}"] = video
        self.run.log(data)
        self._rows.append(record)

    def _video(self, record: dict[str, Any]):
        import wandb

        if not record.get("video") or self._root is None:
            return None
        if record["video"] not in self._videos:
            path = self._root / record["video"]
            if not path.exists():
                return None
            self._videos[record["video"]] = wandb.Video(
                str(path), caption=f"{record['case']} | {record['model']} | seed {record['seed']}", format="mp4")
        return self._videos[record["video"]]

    def on_run_end(self, records, cancelled: bool) -> None:
        import wandb

        if self.run is None:
            return
        names = list(dict.fromkeys(k for r in self._rows for k in r.get("scores", {})))
        table = wandb.Table(columns=["case", "model", "seed", "status", "video", "video_path", *names])
        for r in self._rows:
            table.add_data(r["case"], r["model"], r["seed"], r["status"], self._video(r), r.get("video"),
                           *[r.get("scores", {}).get(n) for n in names])
        self.run.log({"comparison": table})
        ok = [r for r in self._rows if r.get("status") == "ok"]
        for model in dict.fromkeys(r["model"] for r in ok):
            for n in names:
                vals = [r["scores"].get(n) for r in ok if r["model"] == model and r["scores"].get(n) is not None]
                if vals:
                    self.run.summary[f"{model}/{n}"] = sum(vals) / len(vals)
        self.run.summary["jobs_failed"] = sum(r.get("status") != "ok" for r in self._rows)
        self.run.summary["cancelled"] = cancelled
        self.run.finish()
        self.run = None
