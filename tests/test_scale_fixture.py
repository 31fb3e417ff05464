"""The benchmark-scale fixture (benchmarks/scale_fixture.py) writes a run folder that the workbench reads as
its own: every record current, clips and series on disk, a mix of ok / failed / still clips over several
models and two seeds, and a Runner over the same suite finds nothing left to do."""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from scale_fixture import build_run  # noqa: E402

from workbench.experiment import Runner  # noqa: E402
from workbench.runset import load_runs, media_of  # noqa: E402
from workbench.store import load_records  # noqa: E402
from workbench.suite import load_snapshot  # noqa: E402


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("scale") / "run", 120, models=5, seeds=2)


def test_a_built_folder_loads_with_every_record_current(small_run):
    held = load_records(small_run)
    assert len(held) == 120 and len({r["job_id"] for r in held}) == 120
    rs = load_runs([small_run])
    assert len(rs.records) == 120 and rs.left_out == []
    assert len({r["model"] for r in rs.records}) == 5 and {r["seed"] for r in rs.records} == {0, 1}
    status = Counter(r["status"] for r in rs.records)
    assert status["ok"] > 100 and status["error"] >= 1
    for r in rs.records:
        if r["status"] != "ok":
            assert r["error"] and r["error_type"] and r["video"] is None and r["scores"] == {}
            continue
        assert (small_run / media_of(r)).stat().st_size > 1000  # a real mp4, shared by many records
        series = json.loads((small_run / r["series"]).read_text())
        assert len(series["temporal_flicker"]) == r["clip"]["frames"] - 1
        assert set(r["scores"]) == set(r["metrics_requested"]) == set(r["metric_versions"])
        assert r["prompt"] and r["inputs"]["image"]["sha256"]
    still = [r for r in rs.records if r["status"] == "ok" and r["model"] == "static"]
    assert still and all(r["scores"]["dynamic_degree"] == 0.0 for r in still)
    moving = [r["scores"]["flow_magnitude"] for r in rs.records if r["status"] == "ok" and r["model"] != "static"]
    assert min(moving) < max(moving) and sum(moving) / len(moving) > 0.1  # a spread, and motion where it moves
    assert len({r["video"] for r in rs.records if r["video"]}) <= 7


def test_a_runner_over_the_folder_finds_the_jobs_done(small_run):
    runner = Runner(load_snapshot(small_run), out_dir=small_run, retry_failed=False)
    assert len(runner.jobs) == 120 and runner.pending() == [] and runner.lost_clips() == []


def test_same_arguments_same_folder(tmp_path):
    a = (build_run(tmp_path / "a", 30) / "results.jsonl").read_text()
    b = (build_run(tmp_path / "b", 30) / "results.jsonl").read_text()
    assert a == b
