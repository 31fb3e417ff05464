"""Runs that never lose, merge or misplace work (issue 6): identity, rescoring, concurrent writers,
whole-line writes, path safety, early validation, exit codes, and kill -9 fault injection."""
from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from workbench.cli import app
from workbench.experiment import Runner, expand_jobs
from workbench.media import Clip
from workbench.store import RunStore, StoreError
from workbench.suite import SuiteError, load_suite

from conftest import CountingGenerator

PY = sys.executable


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    y, x = np.mgrid[0:40, 0:40]
    Image.fromarray(np.stack([x * 6, y * 6, 0 * x + 90], -1).astype(np.uint8)).save(tmp_path / "a.png")
    for k in range(3):  # three different reference videos
        Clip.from_frames(np.full((6, 32, 32, 3), 40 * k + 20, np.uint8), fps=12).save(tmp_path / f"ref{k}.mp4")
    return tmp_path


def suite_file(folder: Path, filename: str = "suite.yaml", **spec) -> Path:
    base = {"name": "t", "output": "run", "cases": [{"id": "a", "image": "a.png"}], "models": ["test-drift"],
            "seeds": [0], "metrics": ["temporal_flicker"]}
    base.update(spec)
    path = folder / filename
    path.write_text(yaml.safe_dump(base))
    return path


def lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x.strip()]


# --- identity -----------------------------------------------------------------------------------------
def test_cases_sharing_an_image_with_different_references_are_separate_jobs_one_generation(workdir):
    cases = [{"id": f"c{k}", "image": "a.png", "reference": f"ref{k}.mp4"} for k in range(3)]
    suite = load_suite(suite_file(workdir, cases=cases, metrics=["temporal_flicker", "psnr"]))
    jobs = expand_jobs(suite)
    assert len({j.id for j in jobs}) == 3 and len({j.clip_id for j in jobs}) == 1
    CountingGenerator.calls = 0
    recs = Runner(suite).run_all()
    assert [r["status"] for r in recs] == ["ok"] * 3
    assert CountingGenerator.calls == 1  # the video is the same: generated once, scored three times
    assert len({r["psnr"] if False else r["scores"]["psnr"] for r in recs}) == 3  # each against its own reference
    assert Runner(suite).run_all() == []  # "3 of 3 finished" really means all three


def test_identical_cases_with_different_ids_are_two_records(workdir):
    suite = load_suite(suite_file(workdir, cases=[{"id": "x", "image": "a.png"}, {"id": "y", "image": "a.png"}]))
    recs = Runner(suite).run_all()
    assert sorted(r["case"] for r in recs) == ["x", "y"] and len({r["job_id"] for r in recs}) == 2


def test_new_metrics_score_existing_clips_without_regenerating(workdir):
    CountingGenerator.calls = 0
    Runner(load_suite(suite_file(workdir))).run_all()
    assert CountingGenerator.calls == 1
    suite2 = load_suite(suite_file(workdir, metrics=["temporal_flicker", "flow_magnitude"]))
    runner = Runner(suite2)
    assert len(runner.pending()) == 1
    (rec,) = runner.run_all()
    assert CountingGenerator.calls == 1  # no regeneration
    assert rec["rescored"] == ["flow_magnitude"] and set(rec["scores"]) == {"temporal_flicker", "flow_magnitude"}
    assert Runner(suite2).run_all() == []


def test_changed_metric_version_rescores_that_metric_only(workdir, monkeypatch):
    from workbench.metrics.temporal import METRICS

    suite = load_suite(suite_file(workdir, metrics=["temporal_flicker", "flow_magnitude"]))
    Runner(suite).run_all()
    owner = next(c for c in METRICS if "temporal_flicker" in c.score_names())
    monkeypatch.setattr(owner, "version", str(getattr(owner, "version", "1")) + "-next")
    CountingGenerator.calls = 0
    (rec,) = Runner(suite).run_all()
    assert CountingGenerator.calls == 0 and rec["rescored"] == ["temporal_flicker"]
    assert rec["metric_versions"]["temporal_flicker"].endswith("-next") and "flow_magnitude" in rec["scores"]


def test_num_outputs_make_distinct_seeded_jobs(workdir):
    suite = load_suite(suite_file(workdir, models=[{"name": "test-drift", "num_outputs": 3}]))
    jobs = expand_jobs(suite)
    assert [j.output for j in jobs] == [0, 1, 2] and len({j.gen_seed for j in jobs}) == 3
    assert [j.gen_seed for j in jobs] == [j.gen_seed for j in expand_jobs(suite)]  # derived, stable


# --- store --------------------------------------------------------------------------------------------
def test_short_write_on_full_disk_leaves_no_partial_line(workdir, monkeypatch):
    store = RunStore(workdir / "s")
    store.prepare()
    store.append({"job_id": "a", "status": "ok"})
    before = store.results.read_bytes()
    real_write = os.write
    calls = {"n": 0}

    def half_then_full(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))  # a short write...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(StoreError, match=r"results.jsonl: disk full; free space"):
        store.append({"job_id": "b", "status": "ok", "pad": "x" * 500})
    monkeypatch.undo()
    assert store.results.read_bytes() == before  # all or nothing
    store.append({"job_id": "c", "status": "ok"})
    assert list(store.latest()) == ["a", "c"]


def test_torn_line_is_quarantined_and_part_files_cleaned(workdir):
    store = RunStore(workdir / "s")
    store.prepare()
    store.append({"job_id": "a", "status": "ok"})
    with open(store.results, "a") as f:
        f.write('{"job_id": "b", "sta')  # a hard kill mid-write
    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stray = store.clips / f"x__s0__abc.part-{dead.stdout.strip()}.mp4"
    stray.write_bytes(b"half a video")
    RunStore(workdir / "s").prepare()  # the next run
    assert store.results.read_text().count("\n") == 1 and list(store.latest()) == ["a"]
    assert '"job_id": "b", "sta' in store.quarantine.read_text()
    assert not stray.exists()


def test_claims_give_each_job_to_one_process_and_recover_after_a_crash(workdir):
    a, b = RunStore(workdir / "s"), RunStore(workdir / "s")
    a.prepare()
    assert a.claim("j1") and not b.claim("j1")
    a.release("j1")
    assert b.claim("j1")
    # a claim left by a process that died is taken over
    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (a.claims / "j2").write_text(json.dumps({"pid": int(dead.stdout), "host": a._host, "at": 0}))
    assert b.claim("j2")


def test_two_cli_processes_on_one_folder_do_each_job_once(workdir):
    cases = [{"id": f"c{k}", "image": "a.png"} for k in range(4)]
    p = suite_file(workdir, cases=cases, seeds=[0, 1, 2],
                   models=[{"name": "static", "params": {"width": 32, "height": 32, "seconds": 0.3, "fps": 10}}])
    env = {**os.environ, "WANDB_MODE": "disabled"}
    procs = [subprocess.Popen([PY, "-m", "workbench", "run", str(p), "--no-report", "--wandb", "disabled"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [pr.communicate(timeout=240) for pr in procs]
    assert [pr.returncode for pr in procs] == [0, 0], outs
    counts = Counter(r["job_id"] for r in lines(workdir / "run"))
    assert len(counts) == 12 and set(counts.values()) == {1}
    assert all(r["status"] == "ok" for r in lines(workdir / "run"))
    assert not list((workdir / "run" / "claims").iterdir())


def test_kill_9_at_random_points_loses_nothing_and_repeats_nothing(workdir):
    """20 runs of the CLI killed with SIGKILL at random moments, then one to finish: every job is
    recorded exactly once, no torn line survives, no temp file is left."""
    cases = [{"id": f"c{k}", "image": "a.png"} for k in range(6)]
    p = suite_file(workdir, cases=cases, seeds=[0, 1],
                   models=[{"name": "static", "params": {"width": 48, "height": 48, "seconds": 0.4, "fps": 10}}])
    cmd = [PY, "-m", "workbench", "run", str(p), "--no-report", "--wandb", "disabled"]
    rng = random.Random(7)
    for _ in range(20):
        pr = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.5))
        pr.send_signal(signal.SIGKILL)
        pr.wait()
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert final.returncode == 0, final.stderr[-2000:]
    run = workdir / "run"
    raw = (run / "results.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in raw]  # every line parses: nothing torn survives
    ok = Counter(r["job_id"] for r in recs if r["status"] == "ok")
    assert len(ok) == 12 and set(ok.values()) == {1}
    assert not list((run / "clips").glob("*.part*"))


# --- paths --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key,value", [
    ("label", "/../../../X"), ("label", "../escape"), ("label", ".hidden"), ("label", "a/b"),
    ("label", "nul\x00byte"), ("label", "x" * 300), ("name", "../../X"), ("name", "/abs"), ("case", "../up"),
    ("case", ".env"),
])
def test_names_that_become_paths_are_refused(workdir, key, value):
    spec = {}
    if key == "label":
        spec["models"] = [{"name": "test-drift", "label": value}]
    elif key == "name":
        spec["name"] = value
    else:
        spec["cases"] = [{"id": value, "image": "a.png"}]
    with pytest.raises(SuiteError) as e:
        load_suite(suite_file(workdir, **spec))
    assert "\n" not in str(e.value) and ("must be letters" in str(e.value) or "at most 64" in str(e.value))
    assert not (workdir / "run").exists() and not (workdir.parent / "X").exists()


def test_non_media_inputs_are_refused_before_reading(workdir, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret")
    suite = load_suite(suite_file(workdir, cases=[{"id": "s", "image": str(secret)},
                                                  {"id": "d", "image": str(tmp_path)}]))
    recs = Runner(suite).run_all()
    by = {r["case"]: r for r in recs}
    assert "shadow: not an image file" in by["s"]["error"] and by["s"]["inputs"]["image"]["sha256"] is None
    assert "is not a regular file" in by["d"]["error"]


# --- early errors and exit codes ----------------------------------------------------------------------
def test_whole_suite_is_validated_before_anything_runs(workdir):
    p = suite_file(workdir, seeds=[-1], metrics=["temporal_flicker", "nonsense"],
                   models=[{"name": "test-drift", "params": {"num_frames": 10**9, "colour": 1}},
                           {"name": "static", "label": "huge", "params": {"width": 100000, "height": 8000}},
                           {"name": "static", "label": "opt", "options": {"dtype": "bf16"}}])
    with pytest.raises(SuiteError) as e:
        load_suite(p)
    assert "seeds.0" in str(e.value)  # the schema problem
    p = suite_file(workdir, metrics=["temporal_flicker", "nonsense"],
                   models=[{"name": "test-drift", "params": {"num_frames": 10**9}},
                           {"name": "static", "label": "big", "params": {"width": 8000, "height": 8000, "seconds": 600}},
                           {"name": "static", "label": "opt", "options": {"dtype": "bf16"}},
                           {"name": "static", "label": "typo", "params": {"colour": 1}}])
    with pytest.raises(SuiteError) as e:
        load_suite(p)
    msg = str(e.value)
    for part in ("5 problems", "models.0.params.num_frames", "models.1.params", "GiB of frames",
                 "models.2.options", "models.3.params", "unknown parameter(s) colour", "metrics: unknown metric 'nonsense'",
                 "nothing was run"):
        assert part in msg, part
    r = CliRunner().invoke(app, ["run", str(p)])
    assert r.exit_code == 2 and not (workdir / "run").exists()


def test_exit_code_one_names_the_failed_count(workdir):
    p = suite_file(workdir, cases=[{"id": "ok", "image": "a.png"}, {"id": "bad", "image": "nope.png"}])
    r = CliRunner().invoke(app, ["run", str(p), "--no-report", "--wandb", "disabled"])
    assert r.exit_code == 1 and "1 of 2 jobs failed" in r.output


def test_sigterm_drops_only_the_job_in_flight_and_exits_130(workdir):
    cases = [{"id": f"c{k}", "image": "a.png"} for k in range(20)]
    p = suite_file(workdir, cases=cases,
                   models=[{"name": "static", "params": {"width": 64, "height": 64, "seconds": 1.0, "fps": 10}}])
    pr = subprocess.Popen([PY, "-m", "workbench", "run", str(p), "--no-report", "--wandb", "disabled"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = workdir / "run" / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not run.exists() or run.read_text().count("\n") < 2):
        time.sleep(0.1)
    pr.send_signal(signal.SIGTERM)
    out, err = pr.communicate(timeout=60)
    assert pr.returncode == 130 and "interrupted" in err
    done = lines(workdir / "run")
    assert 2 <= len(done) < 20 and all(r["status"] == "ok" for r in done)


@pytest.mark.parametrize("fault", ["out_under_a_file", "results_is_a_folder", "read_only"])
def test_folder_faults_are_one_error_line(workdir, fault, monkeypatch):
    p = suite_file(workdir)
    out = workdir / "run"
    if fault == "out_under_a_file":
        (workdir / "afile").write_text("x")
        out = workdir / "afile" / "run"
    elif fault == "results_is_a_folder":
        (out / "results.jsonl").mkdir(parents=True)
    else:  # root ignores permission bits, so the check itself is made to see a read-only folder
        out.mkdir()
        real = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == out and mode & os.W_OK else real(path, mode))
    r = CliRunner().invoke(app, ["run", str(p), "--out", str(out), "--no-report", "--wandb", "disabled"])
    assert r.exit_code == 1, r.output
    err = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "Traceback" not in r.output and ("--out" in err[0] or "permissions" in err[0])


def test_recorded_size_is_the_written_size(workdir):
    p = suite_file(workdir, models=[{"name": "static", "params": {"width": 333, "height": 247, "seconds": 0.3}}])
    (rec,) = Runner(load_suite(p)).run_all()
    w, h = Clip.open(workdir / "run" / rec["video"]).size
    assert (rec["clip"]["width"], rec["clip"]["height"]) == (w, h)


def test_truncated_clip_is_scored_with_a_warning(tmp_path):
    import av

    full = tmp_path / "full.mp4"
    with av.open(str(full), "w", options={"movflags": "faststart"}) as c:  # index first, like camera files
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(60):
            for pkt in s.encode(av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.5)])  # a download cut in half
    clip = Clip.open(cut)
    assert clip.num_frames == 60  # what the container states
    n = sum(1 for _ in clip.iter_frames())
    assert 0 < n < 50
    assert f"decoded {n} of 60 frames" in clip.truncation_warning()
    from workbench.metrics import evaluate

    result = evaluate(cut, metrics=["temporal_flicker"])  # scored on what decodes
    assert result.scores["temporal_flicker"] is not None


# --- accelerate ---------------------------------------------------------------------------------------
def test_accelerate_launch_two_cpu_processes_do_each_job_once(workdir):
    pytest.importorskip("accelerate")
    cases = [{"id": f"c{k}", "image": "a.png"} for k in range(3)]
    p = suite_file(workdir, cases=cases, seeds=[0, 1],
                   models=[{"name": "static", "params": {"width": 32, "height": 32, "seconds": 0.3, "fps": 10}}])
    env = {**os.environ, "WANDB_MODE": "disabled"}
    # --multi_gpu picks accelerate's torchrun launcher; with no GPU the ranks talk over gloo on the CPU
    # (accelerate's --cpu launcher runs one process unless MPI is installed)
    r = subprocess.run([PY, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "workbench", "run", str(p),
                        "--wandb", "disabled"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = lines(workdir / "run")
    assert Counter(x["job_id"] for x in recs) == Counter({j.id: 1 for j in expand_jobs(load_suite(p))})
    assert len({x["pid"] for x in recs}) == 2  # both ranks worked
    assert r.stdout.count("report: ") == 1  # written once, by the main process
    assert (workdir / "run" / "report.html").exists()  # written once, by the main process
