"""W&B tracking: an offline run read back through wandb's own record format holds one comparison row per
job (video, input image, driving audio, scores, error text), per-model summaries with CIs, bar charts;
a re-run adds nothing; a resumed run logs only new jobs; W&B failing never loses a result."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from workbench.experiment import Runner
from workbench.media import Audio
from workbench.metrics.stats import summarize
from workbench.store import load_records
from workbench.suite import load_suite
from workbench.tracking import TrackingWarning, read_offline_run, resolve_mode, tracker_for


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    y, x = np.mgrid[0:40, 0:40]
    Image.fromarray(np.stack([x * 6, y * 6, 0 * x + 90], -1).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.stack([y * 6, x * 6, 0 * x + 30], -1).astype(np.uint8)).save(tmp_path / "b.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    t = np.arange(8000) / 16000
    Audio((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000).save_wav(tmp_path / "tone.wav")
    return tmp_path


def suite_file(folder: Path, seeds=(0, 1), **tracking) -> Path:
    spec = {"name": "tracked", "output": "run",
            "cases": [{"id": "a", "image": "a.png"}, {"id": "b", "image": "b.png", "audio": "tone.wav"},
                      {"id": "bad", "image": "broken.png"}],
            "models": [{"name": "test-drift", "label": "drift"},
                       {"name": "test-drift", "label": "drift-long", "params": {"num_frames": 9}}],
            "seeds": list(seeds), "metrics": ["temporal_flicker", "flow_magnitude"],
            "tracking": {"wandb": True, "project": "wb-test", **tracking}}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_suite(path: Path, mode: str | None = "offline"):
    suite = load_suite(path)
    runner = Runner(suite)
    tracker = tracker_for(suite, runner.store.root, mode=mode)
    if tracker is not None:
        runner.callbacks.append(tracker)
    return runner, tracker, runner.run_all()


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_offline_run_holds_comparison_table_media_and_model_summary(inputs):
    runner, tracker, new = run_suite(suite_file(inputs))
    assert tracker is not None and tracker.failed is None
    records = load_records(runner.store.root)
    assert len(records) == 12 and sum(r["status"] != "ok" for r in records) == 4  # 'bad' fails, run goes on
    runs = offline_runs(runner.store.root)
    assert len(runs) == 1
    held = read_offline_run(runs[0])
    assert held["project"] == "wb-test" and held["config"]["suite"]["name"] == "tracked"

    table = held["tables"]["comparison"]
    cols = table["columns"]
    assert cols[:5] == ["case", "model", "seed", "status", "params"]
    assert {"video", "image", "audio", "temporal_flicker", "flow_magnitude", "error"} <= set(cols)
    rows = [dict(zip(cols, row)) for row in table["data"]]
    assert sorted((r["case"], r["model"], r["seed"]) for r in rows) == sorted(
        (r["case"], r["model"], r["seed"]) for r in records)
    staged = table["files"]  # path inside the table artifact -> the staged file `wandb sync` uploads
    assert all(Path(p).is_relative_to(runner.store.root / "wandb") for p in staged.values())
    for row in rows:
        if row["case"] == "bad":
            assert row["status"] == "error" and "broken.png" in row["error"] and row["video"] is None
            continue
        assert row["error"] is None and 0 <= row["temporal_flicker"] <= 1
        assert row["video"]["_type"] == "video-file" and Path(staged[row["video"]["path"]]).stat().st_size > 1000
        assert row["image"]["_type"] == "image-file" and Path(staged[row["image"]["path"]]).is_file()
        assert (row["audio"] is not None) == (row["case"] == "b")
        if row["audio"]:
            assert row["audio"]["_type"] == "audio-file" and Path(staged[row["audio"]["path"]]).is_file()
    assert len({row["video"]["path"] for row in rows if row["video"]}) == 8
    files = runs[0] / "files"
    assert len(list((files / "media" / "videos").rglob("*.mp4"))) == 8  # history: each clip copied once

    # per-model summary: means over that model's jobs (never one job's values), CIs from the bootstrap
    summary = held["summary"]
    expected = {(s.model, s.metric): s for s in summarize([r for r in records if r["status"] == "ok"])}
    for model in ("drift", "drift-long"):
        s = expected[(model, "temporal_flicker")]
        assert summary[f"{model}/temporal_flicker"] == pytest.approx(s.mean)
        assert summary[f"{model}/temporal_flicker_ci95"] == pytest.approx([s.lo, s.hi])
        assert summary[f"{model}/jobs_ok"] == 4 and summary[f"{model}/jobs_failed"] == 2
    assert not [k for k in summary if k.startswith(("job/", "clips/"))]
    assert summary["jobs/total"] == 12 and summary["jobs/failed"] == 4
    means = held["tables"]["model_summary"]
    assert [row[0] for row in means["data"]] == ["drift", "drift-long"]
    bars = held["config"]["_wandb"]["visualize"]  # wandb.plot.bar: a Vega panel over a logged table
    assert sorted(bars) == ["charts/flow_magnitude", "charts/temporal_flicker"]
    for name, chart in bars.items():
        assert chart["panel_config"]["panelDefId"] == "wandb/bar/v0"
        assert chart["panel_config"]["fieldSettings"] == {"label": "model", "value": name.split("/")[1]}
        assert held["history"][-1][f"{name}_table"]["nrows"] == 2  # one bar per model
    # one history row per job as it ended, clip attached
    job_rows = [h for h in held["history"] if "job/index" in h]
    assert [h["job/index"] for h in job_rows] == list(range(1, 13))
    assert sum(any(k.startswith("clips/") for k in h) for h in job_rows) == 8


def test_rerun_adds_nothing_and_a_resume_logs_only_new_jobs(inputs):
    path = suite_file(inputs)
    runner, _, _ = run_suite(path)
    root = runner.store.root
    first = offline_runs(root)
    state = (root / "wandb" / "workbench-runs.json").read_text()

    # same suite again, failed jobs not retried: nothing to do, no W&B run opened, nothing written
    suite = load_suite(path)
    again = Runner(suite, retry_failed=False)
    tracker = tracker_for(suite, again.store.root, mode="offline")
    again.callbacks.append(tracker)
    assert again.run_all() == []
    assert offline_runs(root) == first and tracker.run_dir is None
    assert (root / "wandb" / "workbench-runs.json").read_text() == state

    # a third seed: the same W&B run id resumes; only the new jobs log history rows, the table holds all
    path = suite_file(inputs, seeds=(0, 1, 2))
    suite = load_suite(path)
    more = Runner(suite, retry_failed=False)
    tracker = tracker_for(suite, more.store.root, mode="offline")
    more.callbacks.append(tracker)
    new = more.run_all()
    assert len(new) == 6
    runs = offline_runs(root)
    assert len(runs) == 2
    first_held, second = read_offline_run(runs[0]), read_offline_run(runs[1])
    assert second["id"] == first_held["id"]
    job_rows = [h for h in second["history"] if "job/index" in h]
    assert [h["job/index"] for h in job_rows] == list(range(13, 19))
    table = second["tables"]["comparison"]
    assert len(table["data"]) == 18
    assert second["summary"]["jobs/total"] == 18 and second["summary"]["jobs/new_this_session"] == 6


def test_wandb_failing_never_loses_a_result(inputs, monkeypatch):
    import wandb

    def no_network(*a, **k):
        raise wandb.errors.CommError("could not reach api.wandb.ai")

    monkeypatch.setattr(wandb, "init", no_network)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner, tracker, new = run_suite(suite_file(inputs), mode="online")
    ours = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(ours) == 1 and "api.wandb.ai" in str(ours[0].message) and "results.jsonl" in str(ours[0].message)
    assert len(new) == 12 and len(load_records(runner.store.root)) == 12
    assert "CommError" in tracker.failed


def test_disk_full_mid_run_gives_one_warning_and_the_run_goes_on(inputs, monkeypatch):
    from wandb.sdk.wandb_run import Run

    calls = {"n": 0}
    real_log = Run.log

    def log(self, data, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_log(self, data, *a, **k)

    monkeypatch.setattr(Run, "log", log)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner, tracker, new = run_suite(suite_file(inputs))
    assert len([w for w in caught if issubclass(w.category, TrackingWarning)]) == 1
    assert "No space left" in tracker.failed
    assert len(new) == 12 and len(load_records(runner.store.root)) == 12
    assert calls["n"] == 3  # nothing more was sent to W&B after the failure


def test_mode_resolution(inputs, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    off = load_suite(suite_file(inputs))  # wandb: true, no mode: depends on login
    assert resolve_mode(off) == "offline"
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    assert resolve_mode(off) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode(off) == "offline"
    assert resolve_mode(load_suite(suite_file(inputs, mode="online"))) == "online"  # suite beats env
    assert resolve_mode(off, "disabled") == "disabled" and tracker_for(off, tmp_path, "disabled") is None
    spec = yaml.safe_load((inputs / "suite.yaml").read_text())
    spec["tracking"] = {"wandb": False}
    (inputs / "suite.yaml").write_text(yaml.safe_dump(spec))
    assert tracker_for(load_suite(inputs / "suite.yaml"), tmp_path) is None
    assert resolve_mode(load_suite(inputs / "suite.yaml"), "offline") == "offline"  # the switch wins
    with pytest.raises(ValueError, match="--wandb online"):
        resolve_mode(off, "sometimes")


def test_cli_switch_puts_the_run_in_the_out_folder_or_turns_it_off(inputs):
    from typer.testing import CliRunner

    from workbench.cli import app

    path = suite_file(inputs, seeds=(0,))  # the suite has no mode: the switch decides
    r = CliRunner().invoke(app, ["run", str(path), "--out", str(inputs / "elsewhere"), "--wandb", "offline",
                                 "--no-report"])
    assert r.exit_code == 1, r.output  # the broken case fails its jobs (exit 1), the run goes on
    assert not (inputs / "run").exists()  # --out wins for clips, records and the W&B run alike
    runs = offline_runs(inputs / "elsewhere")
    assert len(runs) == 1 and len(read_offline_run(runs[0])["tables"]["comparison"]["data"]) == 6
    r = CliRunner().invoke(app, ["run", str(path), "--out", str(inputs / "quiet"), "--wandb", "disabled",
                                 "--no-report"])
    assert (inputs / "quiet" / "results.jsonl").exists() and not (inputs / "quiet" / "wandb").exists()


def test_adding_metrics_logs_an_eval_run_beside_the_generate_run(inputs):
    """A re-run that only scores existing clips (new metrics) is a W&B run of job_type eval."""
    from typer.testing import CliRunner

    from workbench.cli import app

    path = suite_file(inputs, seeds=(0,))
    args = ["run", str(path), "--wandb", "offline", "--no-report", "--no-retry-failed"]
    assert CliRunner().invoke(app, args).exit_code == 1  # the broken case fails
    spec = yaml.safe_load(path.read_text())
    spec["metrics"].append("warp_error")
    path.write_text(yaml.safe_dump(spec))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "4 jobs done" in again.output  # the 4 clips scored; the failed ones stay
    state = json.loads((inputs / "run" / "wandb" / "workbench-runs.json").read_text())
    assert set(state) == {"generate", "eval"} and state["generate"]["id"] != state["eval"]["id"]
    held = {read_offline_run(r)["id"]: read_offline_run(r) for r in offline_runs(inputs / "run")}
    rows = held[state["eval"]["id"]]["tables"]["comparison"]
    assert "warp_error" in rows["columns"]
    records = load_records(inputs / "run")
    assert all("warp_error" in r["scores"] for r in records if r["status"] == "ok")


def test_report_brings_wandb_up_to_date_after_shards(inputs):
    """Shards run without W&B; `workbench report RUN --wandb offline` logs one comparison of every
    record (from RUN_DIR/suite.json), and a second call adds nothing."""
    from typer.testing import CliRunner

    from workbench.cli import app

    path = suite_file(inputs, seeds=(0,))
    for k in (0, 1):
        r = CliRunner().invoke(app, ["run", str(path), "--shard", f"{k}/2", "--wandb", "disabled", "--no-report"])
        assert r.exit_code in (0, 1), r.output
    run = inputs / "run"
    assert (run / "suite.json").is_file() and not (run / "wandb").exists()
    r = CliRunner().invoke(app, ["report", str(run), "--wandb", "offline"])
    assert r.exit_code == 0 and "wandb (offline): " in r.output, r.output
    (held,) = [read_offline_run(p) for p in offline_runs(run)]
    rows = held["tables"]["comparison"]["data"]
    assert len(rows) == len(load_records(run)) == 6 and held["config"]["suite"]["name"] == "tracked"
    again = CliRunner().invoke(app, ["report", str(run), "--wandb", "offline"])
    assert again.exit_code == 0 and "already holds every record" in again.output
    assert len(offline_runs(run)) == 1
    (run / "suite.json").unlink()
    missing = CliRunner().invoke(app, ["report", str(run), "--wandb", "offline"])
    assert missing.exit_code == 2 and "suite.json: not found" in missing.output


def test_reader_waits_for_a_log_still_being_written(tmp_path):
    """Just after `run.finish()` W&B's service may still be writing the log: the reader waits for the
    closing `exit` record instead of returning a run without its records; a log that never gets one
    (a crashed run) is read as it is once the wait is over."""
    import shutil
    import threading
    import time

    from workbench.tracking import _init_run, iter_wandb_records

    run = _init_run("offline", tmp_path / "src", project="wb-wait")
    run.summary["x"] = 1.0
    run.finish()
    (done,) = (tmp_path / "src" / "wandb").glob("offline-run-*")
    # the service may still be writing this very log (a loaded machine): wait for it the way the reader does
    assert read_offline_run(done, wait_s=120)["summary"]["x"] == 1.0
    log = next(done.glob("run-*.wandb"))
    assert [r.WhichOneof("record_type") for r in iter_wandb_records(log)][-1] == "exit"
    whole = log.read_bytes()

    slow = tmp_path / "slow" / done.name
    shutil.copytree(done, slow)
    (slow / log.name).write_bytes(whole[:7])  # the header only, as a log is at the start
    def write_the_rest(path):  # as the service does: the log grows by appends
        with open(path, "ab") as f:
            f.write(whole[7:])

    threading.Timer(0.5, write_the_rest, [slow / log.name]).start()
    held = read_offline_run(slow, wait_s=120)  # returns once the exit record is there, not after the wait
    assert held["project"] == "wb-wait" and held["summary"]["x"] == 1.0

    crashed = tmp_path / "crashed" / done.name
    shutil.copytree(done, crashed)
    (crashed / log.name).write_bytes(whole[:7])
    t0 = time.monotonic()
    held = read_offline_run(crashed, wait_s=0.3)
    assert held["project"] is None and time.monotonic() - t0 >= 0.3  # waited, then read what is there

    late = tmp_path / "late" / done.name  # the log file itself not there yet: the reader waits for it too
    shutil.copytree(done, late)
    (late / log.name).unlink()
    threading.Timer(0.5, lambda: (late / log.name).write_bytes(whole)).start()
    assert read_offline_run(late, wait_s=120)["summary"]["x"] == 1.0
    with pytest.raises(FileNotFoundError, match="no run-"):
        read_offline_run(tmp_path / "crashed", wait_s=0.2)  # not a run folder: one line, after the wait


def test_costs_reach_the_wandb_tables_and_summary(inputs):
    """Records with a cost block (hosted models) put cost_usd in the comparison table and cost per model in
    model_summary and the run summary; local models read 0."""
    from typer.testing import CliRunner

    from workbench.cli import app

    path = suite_file(inputs, seeds=(0,))
    r = CliRunner().invoke(app, ["run", str(path), "--wandb", "disabled", "--no-report"])
    assert r.exit_code in (0, 1), r.output
    run = inputs / "run"
    lines = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    for rec in lines:  # price the 'drift' model as a hosted one would: $0.25 a clip, charged by the API
        if rec["model"] == "drift" and rec["status"] == "ok":
            rec["cost"] = {"estimated": 0.25, "charged": 0.25, "currency": "USD", "usd": 0.25, "source": "api"}
    (run / "results.jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    r = CliRunner().invoke(app, ["report", str(run), "--wandb", "offline"])
    assert r.exit_code == 0, r.output
    (held,) = [read_offline_run(p) for p in offline_runs(run)]
    comp = held["tables"]["comparison"]
    rows = [dict(zip(comp["columns"], row)) for row in comp["data"]]
    assert {row["cost_usd"] for row in rows if row["model"] == "drift" and row["status"] == "ok"} == {0.25}
    assert {row["cost_usd"] for row in rows if row["model"] == "drift-long"} == {0.0}
    summary = held["tables"]["model_summary"]
    by_model = {row[0]: dict(zip(summary["columns"], row)) for row in summary["data"]}
    assert by_model["drift"]["cost_usd"] == pytest.approx(0.5) and by_model["drift"]["cost_usd_per_clip"] == pytest.approx(0.25)
    assert held["summary"]["drift/cost_usd"] == pytest.approx(0.5) and "drift-long/cost_usd" not in held["summary"]


def test_the_comparison_table_keeps_every_row_past_wandbs_row_limits(inputs, monkeypatch):
    """wandb.Table cuts a logged table to MAX_ROWS rows in the run's files (10,000, silently) and to
    MAX_ARTIFACT_ROWS in its artifact (200,000): with both limits below the job count, the offline run
    still holds one comparison row per job, in the artifact and in the run's file, and the limits are
    put back after."""
    import wandb

    monkeypatch.setattr(wandb.Table, "MAX_ROWS", 5)
    monkeypatch.setattr(wandb.Table, "MAX_ARTIFACT_ROWS", 7)
    runner, tracker, _ = run_suite(suite_file(inputs))
    assert tracker.failed is None
    (run,) = offline_runs(runner.store.root)
    held = read_offline_run(run, wait_s=120)
    records = load_records(runner.store.root)
    assert len(records) == 12
    table = held["tables"]["comparison"]
    assert len(table["data"]) == 12 and table["nrows"] == 12
    assert sorted(row[table["columns"].index("job_id")] for row in table["data"]) == sorted(r["job_id"] for r in records)
    logged = next(h["comparison"] for h in held["history"] if "comparison" in h)
    assert logged["nrows"] == 12
    in_files = json.loads((run / "files" / logged["path"]).read_text())
    assert len(in_files["data"]) == 12
    assert (wandb.Table.MAX_ROWS, wandb.Table.MAX_ARTIFACT_ROWS) == (5, 7)
