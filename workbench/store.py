"""The run store: `results.jsonl`, one JSON record per finished job, appended atomically.

Each record is written with a single `write` on a file opened with O_APPEND and then fsync'ed, so a
crash or Ctrl-C can never leave half a line behind a finished job. Readers take the latest record of
each job id, skip a torn last line, and never need anything but this file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

RESULTS = "results.jsonl"


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class RunStore:
    """A run folder: results.jsonl + clips/."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.results = self.root / RESULTS
        self.clips = self.root / "clips"

    def prepare(self) -> None:
        self.clips.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, default=_default, sort_keys=False) + "\n").encode()
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.results, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            # repair a torn tail left by a hard kill so the new record starts on its own line
            size = os.fstat(fd).st_size
            if size:
                with open(self.results, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record in file order (torn or corrupt lines are skipped)."""
        if not self.results.exists():
            return
        with open(self.results, "rb") as f:
            for raw in f:
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    rec = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and "job_id" in rec:
                    yield rec

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last record of each job id."""
        out: dict[str, dict[str, Any]] = {}
        for rec in self.records():
            out[rec["job_id"]] = rec
        return out

    def finished_ids(self) -> set[str]:
        return {jid for jid, rec in self.latest().items() if rec.get("status") == "ok"}


def load_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Latest record per job from a run folder's results.jsonl, in first-seen order."""
    return list(RunStore(run_dir).latest().values())
