"""The runner: suite validation, stable job ids, records, resume, failures, cancellation, CLI."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from workbench.cli import app
from workbench.experiment import Runner, expand_jobs
from workbench.media import Audio, Clip
from workbench.store import RunStore
from workbench.suite import SuiteError, load_suite

from conftest import CountingGenerator


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    y, x = np.mgrid[0:40, 0:40]
    Image.fromarray(np.stack([x * 6, y * 6, 0 * x + 90], -1).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.stack([y * 6, x * 6, 0 * x + 30], -1).astype(np.uint8)).save(tmp_path / "b.png")
    t = np.arange(8000) / 16000
    Audio((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000).save_wav(tmp_path / "tone.wav")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    return tmp_path


def write_suite(folder: Path, **overrides) -> Path:
    spec = {
        "name": "t",
        "output": "run",
        "cases": [{"id": "a", "image": "a.png"}, {"id": "b", "image": "b.png", "audio": "tone.wav"}],
        "models": ["test-drift"],
        "seeds": [0, 1],
        "metrics": ["temporal_flicker"],
    }
    spec.update(overrides)
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x.strip()]


# --- suite validation ----------------------------------------------------------------------------------
def test_typo_key_is_named(workdir):
    p = write_suite(workdir, seeeds=[1])
    with pytest.raises(SuiteError, match=r"suite.yaml: unknown key 'seeeds'"):
        load_suite(p)


def test_typo_in_nested_key_is_named(workdir):
    p = write_suite(workdir, cases=[{"id": "a", "imag": "a.png"}])
    with pytest.raises(SuiteError, match=r"unknown key 'cases.0.imag'"):
        load_suite(p)


def test_bad_yaml_names_line(workdir):
    p = workdir / "bad.yaml"
    p.write_text("name: x\ncases: [\n  - id: a\n")
    with pytest.raises(SuiteError, match=r"bad.yaml: not valid YAML at line"):
        load_suite(p)


def test_missing_suite_file(workdir):
    with pytest.raises(SuiteError, match="nothere.yaml: suite file not found"):
        load_suite(workdir / "nothere.yaml")


def test_duplicate_model_needs_label(workdir):
    p = write_suite(workdir, models=["test-drift", "test-drift"])
    with pytest.raises(SuiteError, match="label"):
        load_suite(p)


# --- jobs ----------------------------------------------------------------------------------------------
def test_job_ids_are_stable_and_sensitive(workdir):
    suite = load_suite(write_suite(workdir))
    ids = [j.id for j in expand_jobs(suite)]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert ids == [j.id for j in expand_jobs(load_suite(write_suite(workdir)))]  # stable
    other = load_suite(write_suite(workdir, models=[{"name": "test-drift", "params": {"num_frames": 7}}]))
    assert not set(ids) & {j.id for j in expand_jobs(other)}  # params change the id
    # the image's content, not its name, counts
    Image.new("RGB", (40, 40), (1, 2, 3)).save(workdir / "a.png")
    changed = [j.id for j in expand_jobs(load_suite(write_suite(workdir)))]
    assert changed[0] != ids[0] and changed[2:] == ids[2:]


def test_explicit_defaults_give_the_same_id(workdir):
    a = expand_jobs(load_suite(write_suite(workdir)))
    b = expand_jobs(load_suite(write_suite(workdir, models=[{"name": "test-drift", "params": {"num_frames": 6}}])))
    assert [j.id for j in a] == [j.id for j in b]


# --- running -------------------------------------------------------------------------------------------
def test_run_writes_one_record_per_job_and_resumes(workdir):
    suite = load_suite(write_suite(workdir))
    CountingGenerator.calls = 0
    records = Runner(suite).run_all()
    assert [r["status"] for r in records] == ["ok"] * 4
    run = workdir / "run"
    saved = lines(run)
    assert len(saved) == 4
    rec = saved[0]
    for key in ("job_id", "case", "model", "params", "seed", "inputs", "timings", "versions", "scores", "backends"):
        assert key in rec
    assert rec["params"] == {"num_frames": 6, "fps": 12, "interrupt_on_call": 0}
    assert len(rec["inputs"]["image"]["sha256"]) == 64
    assert rec["versions"]["numpy"] == np.__version__
    assert 0.0 <= rec["scores"]["temporal_flicker"] <= 1.0 and rec["backends"]["temporal_flicker"]
    assert (run / rec["video"]).exists() and Clip.open(run / rec["video"]).num_frames == 6
    b = [r for r in saved if r["case"] == "b"][0]
    assert Clip.open(run / b["video"]).audio is not None  # audio attached and muxed
    # second run: nothing to do, nothing regenerated
    calls = CountingGenerator.calls
    assert Runner(suite).run_all() == []
    assert CountingGenerator.calls == calls and len(lines(run)) == 4


def test_bad_inputs_fail_their_own_jobs_only(workdir):
    p = write_suite(workdir, seeds=[0], cases=[
        {"id": "good", "image": "a.png"},
        {"id": "missing", "image": "nope.png"},
        {"id": "corrupt", "image": "a.png", "audio": "corrupt.mp4"},
    ], models=["test-drift"])
    records = Runner(load_suite(p)).run_all()
    by = {r["case"]: r for r in records}
    assert len(records) == 3
    assert by["good"]["status"] == "ok"
    assert "nope.png: image not found" in by["missing"]["error"]
    assert "corrupt.mp4" in by["corrupt"]["error"]
    assert all("\n" not in r["error"] for r in records if r["error"])  # one line each


def test_unknown_model_is_a_load_error_listing_what_exists(workdir):
    with pytest.raises(SuiteError) as e:
        load_suite(write_suite(workdir, models=["test-drift", "no-such-model"]))
    assert "models.1.name: unknown model 'no-such-model'" in str(e.value) and "test-drift" in str(e.value)
    assert not (workdir / "run").exists()  # nothing ran


def test_cancel_from_another_thread_keeps_finished(workdir):
    suite = load_suite(write_suite(workdir))

    class CancelAfterFirst:
        def __init__(self):
            self.runner = None

        def on_job_end(self, job, record):
            t = threading.Thread(target=self.runner.cancel)
            t.start()
            t.join()

    cb = CancelAfterFirst()
    runner = Runner(suite, callbacks=[cb])
    cb.runner = runner
    assert len(runner.run_all()) == 1 and runner.cancelled
    assert len(lines(workdir / "run")) == 1
    rest = Runner(suite).run_all()  # resume finishes the other three, repeating nothing
    assert len(rest) == 3 and len({r["job_id"] for r in lines(workdir / "run")}) == 4


def test_ctrl_c_loses_only_the_job_in_flight(workdir):
    CountingGenerator.calls = 0
    p = write_suite(workdir, models=[{"name": "test-drift", "params": {"interrupt_on_call": 3}}])
    suite = load_suite(p)
    runner = Runner(suite)
    done = runner.run_all()
    assert len(done) == 2 and runner.cancelled
    assert not list((workdir / "run" / "clips").glob("*.part*"))
    assert len(Runner(suite).run_all()) == 2  # the third (interrupted) and the fourth


def test_progress_callbacks_and_streaming_records(workdir):
    events = []

    class Spy:
        def on_run_start(self, jobs, todo): events.append(("start", len(todo)))
        def on_job_start(self, job, i, n): events.append(("job", i, n))
        def on_step(self, job, stage, i, n): events.append((stage, i, n))
        def on_run_end(self, records, cancelled): events.append(("end", len(records), cancelled))

    runner = Runner(load_suite(write_suite(workdir, seeds=[0])), callbacks=[Spy()])
    it = runner.run()
    first = next(it)  # records arrive as they finish
    assert first["status"] == "ok" and len(lines(workdir / "run")) == 1
    list(it)
    assert events[0] == ("start", 2) and events[-1] == ("end", 2, False)
    assert ("generate", 6, 6) in events and any(e[0] == "evaluate" for e in events)


def test_shards_partition_jobs(workdir):
    suite = load_suite(write_suite(workdir))
    a, b = Runner(suite, shard=(0, 2)).jobs, Runner(suite, shard=(1, 2)).jobs
    assert {j.id for j in a} | {j.id for j in b} == {j.id for j in expand_jobs(suite)} and not {j.id for j in a} & {j.id for j in b}


def test_torn_last_line_is_skipped_and_repaired(workdir):
    store = RunStore(workdir / "s")
    store.append({"job_id": "a", "status": "ok"})
    with open(store.results, "a") as f:
        f.write('{"job_id": "b", "sta')  # a hard kill mid-write
    assert list(store.latest()) == ["a"]
    store.append({"job_id": "c", "status": "ok"})
    assert list(store.latest()) == ["a", "c"]


# --- CLI -----------------------------------------------------------------------------------------------
def test_cli_run_twice_then_report(workdir):
    cli = CliRunner()
    p = write_suite(workdir)
    r1 = cli.invoke(app, ["run", str(p)])
    assert r1.exit_code == 0, r1.output
    assert "4 jobs done, 0 failed" in r1.output and "report.html" in r1.output
    r2 = cli.invoke(app, ["run", str(p)])
    assert "4 of 4 jobs already finished" in r2.output and "0 jobs done" in r2.output
    html = (workdir / "run" / "report.html").read_text()
    clips = {r["video"] for r in lines(workdir / "run")}
    assert len(clips) == 4 and all(c in html for c in clips) and "temporal_flicker" in html  # (the page draws them)
    assert "Ranking needs two models" in html  # one model: nothing to pair
    r3 = cli.invoke(app, ["report", str(workdir / "run")])
    assert r3.exit_code == 0 and r3.output.strip().endswith("report.html")


def test_cli_bad_suite_is_one_line(workdir):
    r = CliRunner().invoke(app, ["run", str(write_suite(workdir, modles=["x"]))])
    assert r.exit_code == 2 and "unknown key 'modles'" in r.output


def test_cli_eval_json(workdir):
    clip = Clip.from_frames(np.zeros((5, 32, 32, 3), np.uint8) + 100, fps=10).save(workdir / "c.mp4")
    r = CliRunner().invoke(app, ["eval", str(clip), "--metrics", "temporal_flicker", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert {"video", "scores", "backends", "errors"} <= set(out) <= {"video", "scores", "backends", "errors", "worst_frame"}
    assert out["scores"]["temporal_flicker"] == pytest.approx(1.0)
    bad = CliRunner().invoke(app, ["eval", str(clip), "--metrics", "nonsense"])
    assert bad.exit_code == 2 and "unknown metric 'nonsense'" in bad.output


def test_cli_models_and_metrics_json():
    models = json.loads(CliRunner().invoke(app, ["models", "--json"]).output)
    names = {m["name"] for m in models}
    assert {"static", "kenburns", "puppet"} <= names
    assert all("weights_available" in m and "defaults" in m for m in models)
    metrics = json.loads(CliRunner().invoke(app, ["metrics", "--json"]).output)
    assert {"temporal_flicker", "identity_similarity", "sync_offset"} <= {m["name"] for m in metrics}
    assert all(m["direction"] in ("higher", "lower", "neither") for m in metrics)


def test_repository_suites_parse_and_name_known_models(repo_root):
    from workbench.metrics import resolve
    from workbench.models import registry

    suites = sorted((repo_root / "evals" / "suites").glob("*.yaml"))
    run_suites = [p for p in suites if "calibration" not in p.name]
    assert run_suites
    for path in run_suites:
        suite = load_suite(path)
        assert {m.name for m in suite.models} <= set(registry()) | {"auto"}, path.name  # auto: the router picks
        resolve(suite.metrics)  # every metric name is known
        for case in suite.cases:
            for p in (case.image, case.audio):
                if p and p.startswith("element:"):  # an Element of the suite's library
                    assert suite.element_library().exists(p.split(":", 1)[1]), f"{path.name}: {p}"
                else:
                    assert p is None or suite.resolve(p).exists(), f"{path.name}: {p}"


def test_report_pairs_models_and_flags_mixed_backends(workdir):
    from workbench.report import mixed_backends, write_report

    models = [{"name": "test-drift", "label": "slow"}, {"name": "test-drift", "label": "long", "params": {"num_frames": 9}}]
    suite = load_suite(write_suite(workdir, models=models))
    Runner(suite).run_all()
    html = write_report(workdir / "run").read_text()
    assert "Ranking and paired differences" in html and "wins" in html and "slow" in html
    recs = lines(workdir / "run")
    assert mixed_backends(recs) == {}
    recs[0]["backends"]["temporal_flicker"] = "other-backend"
    assert mixed_backends(recs) == {"temporal_flicker": ["other-backend", "pixel-mae"]}


# --- resume after a lost clip, suites sharing a folder, audio faults (issue 15) -----------------------
@pytest.mark.parametrize("damage", ["delete", "empty", "garbage"])
def test_a_lost_clip_is_made_again_on_resume(workdir, damage):
    """A finished job whose clip was deleted (or emptied, or overwritten) is run again, exactly that
    one, and the CLI says so instead of '4 of 4 already finished'."""
    p = write_suite(workdir)
    CountingGenerator.calls = 0
    first = Runner(load_suite(p)).run_all()
    assert CountingGenerator.calls == 4
    victim = first[2]
    clip = workdir / "run" / victim["video"]
    if damage == "delete":
        clip.unlink()
    elif damage == "empty":
        clip.write_bytes(b"")
    else:
        clip.write_bytes(b"<html>not a video</html>" * 10)
    runner = Runner(load_suite(p))
    assert [j.id for j, _ in runner.lost_clips()] == [victim["job_id"]]
    r = CliRunner().invoke(app, ["run", str(p), "--no-report", "--wandb", "disabled"])
    assert r.exit_code == 0, r.output
    why = {"delete": "is missing", "empty": "is empty", "garbage": "is not an mp4 file"}[damage]
    assert "3 of 4 jobs already finished" in r.output
    assert f"1 finished job lost its clip, making it again: {victim['case']} / test-drift / seed {victim['seed']} " \
           f"({clip.name} {why})" in r.output
    assert CountingGenerator.calls == 5 and "1 job done, 0 failed" in r.output
    again = lines(workdir / "run")[-1]
    assert again["job_id"] == victim["job_id"] and again["status"] == "ok" and not again["reused_clip"]
    assert again["regenerated"] == f"{clip.name} {why}: made again"
    assert Clip.open(clip).num_frames == 6
    assert Runner(load_suite(p)).pending() == []


def test_a_second_suite_into_the_same_folder_is_refused_unless_forced(workdir):
    a = write_suite(workdir)
    assert len(Runner(load_suite(a)).run_all()) == 4
    b = workdir / "other.yaml"
    b.write_text(a.read_text().replace("name: t", "name: other").replace("seeds:\n- 0\n- 1", "seeds:\n- 5"))
    r = CliRunner().invoke(app, ["run", str(b), "--no-report", "--wandb", "disabled"])
    assert r.exit_code == 2, r.output
    err = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "Traceback" not in r.output
    assert err[0] == (f"error: {workdir / 'run'}: holds another suite, 't' (4 records); running suite 'other' into it "
                      f"would pool both in one report; pass --out to another folder (or --force to mix them on purpose)")
    assert len(lines(workdir / "run")) == 4  # nothing ran
    from workbench.store import FolderHoldsOtherSuite

    with pytest.raises(FolderHoldsOtherSuite):  # the Python API refuses too
        Runner(load_suite(b)).run_all()
    r = CliRunner().invoke(app, ["run", str(b), "--no-report", "--wandb", "disabled", "--force"])
    assert r.exit_code == 0, r.output
    assert "warning: " in r.output and "also holds suite 't'; --force: the report pools them with 'other'" in r.output
    assert {x["suite"] for x in lines(workdir / "run")} == {"t", "other"}
    # the same suite, edited (a seed more), is the normal way to grow a run: no question asked
    grown = write_suite(workdir, seeds=[0, 1, 2])
    assert Runner(load_suite(grown), mix_suites=False).other_suites() == {"other": 2}
    assert len(Runner(load_suite(grown), mix_suites=True).run_all()) == 2
    fresh = workdir / "fresh"
    assert Runner(load_suite(b), fresh).other_suites() == {}


def test_silent_audio_is_a_warning_truncated_audio_an_error(workdir):
    import struct

    Audio(np.zeros(16000, np.float32), 16000).save_wav(workdir / "silence.wav")
    raw = (workdir / "tone.wav").read_bytes()
    (workdir / "cut.wav").write_bytes(raw[:44])  # header states 0.5 s, no data
    p = write_suite(workdir, seeds=[0], cases=[{"id": "quiet", "image": "a.png", "audio": "silence.wav"},
                                               {"id": "cut", "image": "a.png", "audio": "cut.wav"}])
    by = {r["case"]: r for r in Runner(load_suite(p)).run_all()}
    assert by["quiet"]["status"] == "ok"
    assert by["quiet"]["warnings"] == [f"{workdir / 'silence.wav'}: audio is silent (rms 0.0e+00 < 0.0001); the clip "
                                       f"was made with the mouth at rest and lip-sync is not scored; pass a speech "
                                       f"recording if silence was not meant"]
    assert by["cut"]["status"] == "error" and by["cut"]["error"] == (
        f"{workdir / 'cut.wav'}: audio is truncated: its header states 0.50 s but the file holds 0.00 s; "
        f"re-export or re-download it")
    assert struct.unpack("<I", raw[40:44])[0] == 16000  # the header really claims 0.5 s


def test_accelerate_cpu_launch_of_one_process_says_how_to_split(workdir):
    """`accelerate launch --cpu --num_processes 2` starts one process (CPU processes split only through
    MPI): the run says so in one line and how to split instead; a plain run says nothing."""
    import os
    import subprocess
    import sys

    from workbench.cli.run import single_cpu_launch_note

    suite = write_suite(workdir, models=["static"])
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "workbench", "run", str(suite), "--dry-run"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: accelerate launch --cpu started one process")]
    assert len(notes) == 1 and "--multi_gpu --num_processes N" in notes[0] and "--shard i/N" in notes[0]
    plain = {k: v for k, v in os.environ.items() if k not in ("ACCELERATE_USE_CPU", "MASTER_ADDR", "WORLD_SIZE")}
    r = subprocess.run([sys.executable, "-m", "workbench", "run", str(suite), "--dry-run"], capture_output=True,
                       text=True, timeout=120, cwd=workdir, env=plain)
    assert r.returncode == 0 and "note: accelerate" not in r.stderr
    assert single_cpu_launch_note() is None or os.environ.get("ACCELERATE_USE_CPU")


# --- scale: the Runner and the store do not grow per job with the folder -------------------------------
def _counting(monkeypatch, module, name: str) -> list:
    """Wrap `module.name` to count its calls (the list holds one entry per call)."""
    calls: list = []
    plain = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args[0] if args else None)
        return plain(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def _cases(n: int) -> list[dict]:
    return [{"id": f"c{i}", "image": "a.png" if i % 2 else "b.png", "prompt": f"take {i}"} for i in range(n)]


@pytest.mark.parametrize("new", [2, 6])
def test_a_run_reads_each_line_once_and_looks_up_jobs_without_copying(workdir, monkeypatch, new):
    """A run into a folder of finished jobs parses each line of results.jsonl once (preparing the folder
    fills the cache the per-job lookups read), never re-reads the file per job, and never copies the
    {job: record} map per job: what it costs per job does not depend on how many records the folder holds."""
    import workbench.experiment as experiment
    import workbench.store as store_mod

    run = workdir / "run"
    Runner(load_suite(write_suite(workdir, cases=_cases(4), seeds=[0, 1]))).run_all()
    held = len(lines(run))
    assert held == 8
    parses = _counting(monkeypatch, store_mod, "_parse")
    copies = _counting(monkeypatch, RunStore, "latest")
    looks = _counting(monkeypatch, experiment, "clip_problem")
    runner = Runner(load_suite(write_suite(workdir, cases=_cases(4 + new // 2), seeds=[0, 1])))
    records = runner.run_all()
    assert len(records) == new and len(lines(run)) == held + new
    assert held <= len(parses) <= held + new  # every line at most once: the old ones once, each new one once
    assert len(copies) == 1  # the folder check (suite names), once per run, not per job
    # each finished clip looked at once when the run starts (not once for lost clips and again for pending
    # work), then each new job's clip path once before it is made
    assert len(looks) == held + new
    assert runner.store.reads <= 1 + new  # the prepare pass, then at most one tail read per job


def test_preparing_again_reads_only_the_new_lines_and_still_quarantines_a_torn_one(tmp_path, monkeypatch):
    import workbench.store as store_mod

    store = RunStore(tmp_path / "s")
    for i in range(5):
        store.append({"job_id": f"j{i}", "status": "ok"})
    parses = _counting(monkeypatch, store_mod, "_parse")
    store.prepare()
    assert len(parses) == 5 and list(store.latest()) == [f"j{i}" for i in range(5)] and len(parses) == 5
    store.append({"job_id": "j5", "status": "ok"})
    store.prepare()  # the CLI prepares before it runs, and run() prepares again
    assert len(parses) == 6
    with open(store.results, "a") as f:
        f.write('{"job_id": "j6", "sta')  # a hard kill mid-write, after the part checked before
    store.prepare()
    assert store.quarantine.read_text() == '{"job_id": "j6", "sta\n'
    assert list(store.latest()) == [f"j{i}" for i in range(6)]
    assert store.results.read_text().count("\n") == 6 and store.results.read_text().endswith("}\n")
    other = RunStore(tmp_path / "s")  # a second process sees the same
    assert list(other.latest()) == [f"j{i}" for i in range(6)]


def test_resume_of_a_larger_folder_does_no_work_and_checks_each_clip_once(workdir, monkeypatch):
    import workbench.experiment as experiment

    suite = load_suite(write_suite(workdir, cases=_cases(6), seeds=[0, 1, 2]))
    CountingGenerator.calls = 0
    first = Runner(suite).run_all()
    assert len(first) == 18 and CountingGenerator.calls == 18
    looks = _counting(monkeypatch, experiment, "clip_problem")
    again = Runner(suite)
    assert again.run_all() == [] and CountingGenerator.calls == 18
    assert len(looks) == 18 and again.lost == {}
    (workdir / "run" / first[3]["video"]).unlink()  # a lost clip is still found, and made again
    third = Runner(suite)
    redone = third.run_all()
    assert [r["job_id"] for r in redone] == [first[3]["job_id"]] and CountingGenerator.calls == 19
    assert "made again" in redone[0]["regenerated"]
