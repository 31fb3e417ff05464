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
    suite2 = load_suite(suite_file(workdir, metrics=["temporal_flicker", "warp_error"]))
    runner = Runner(suite2)
    assert len(runner.pending()) == 1
    (rec,) = runner.run_all()
    assert CountingGenerator.calls == 1  # no regeneration
    assert rec["rescored"] == ["warp_error"]
    # (a consistency score brings the motion context along: dynamic_degree, flow_magnitude)
    assert {"temporal_flicker", "warp_error"} <= set(rec["scores"]) <= {"temporal_flicker", "warp_error",
                                                                       "dynamic_degree", "flow_magnitude"}
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
    assert "image is a folder, not a file" in by["d"]["error"]


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


# --- bad input, as a user brings it (issue 15): one line naming the file and the fix -------------------
UNI = "ünï cødé dir"  # unicode and spaces in paths


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """A folder of broken, odd and awkward inputs (each a few KB: the decompression bomb is 48 KB)."""
    import struct

    from workbench.media import Audio

    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 64, 64, 3), dtype=np.uint8)
    Clip.from_frames(frames, 10).save(d / "v.mp4")
    raw = (d / "v.mp4").read_bytes()
    (d / "zero.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(rng.integers(0, 255, 3000, dtype=np.uint8)))
    (d / "half.mp4").write_bytes(raw[: len(raw) // 3])
    (d / "text.mp4").write_text("hello")
    Clip.from_frames(frames[:4], 0.5).save(d / "fps05.mp4")
    (d / UNI).mkdir()
    Clip.from_frames(frames, 10).save(d / UNI / "my clip é.mp4")
    Image.new("RGB", (64, 64), (9, 9, 9)).save(d / UNI / "pørträit 1.png")
    Image.new("RGBA", (64, 64), (255, 0, 0, 128)).save(d / "rgba.png")
    Image.fromarray(np.full((64, 64), 30000, np.uint16)).save(d / "g16.png")
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(d / "cmyk.jpg")
    Image.new("1", (20000, 20000)).save(d / "bomb.png")
    (d / "zero.png").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    Image.new("RGB", (64, 64)).save(d / "full.png")
    (d / "cut.png").write_bytes((d / "full.png").read_bytes()[:60])
    gif = [Image.new("RGB", (64, 64), (i * 40, 0, 0)) for i in range(3)]
    gif[0].save(d / "anim.gif", save_all=True, append_images=gif[1:])
    (d / "adir.png").mkdir()
    Audio((0.3 * np.sin(np.arange(32000) / 5)).astype(np.float32), 16000).save_wav(d / "ok.wav")
    wav = (d / "ok.wav").read_bytes()
    (d / "trunc.wav").write_bytes(wav[:44])  # the header states 2 s, no data follows
    (d / "zero.wav").write_bytes(b"")
    ch0 = bytearray(wav)
    ch0[22:24] = struct.pack("<H", 0)
    (d / "ch0.wav").write_bytes(bytes(ch0))
    Audio((0.3 * np.sin(np.arange(16000) / 2)).astype(np.float32), 8000).save_wav(d / "k8.wav")
    Audio(np.zeros(32000, np.float32), 16000).save_wav(d / "silent.wav")
    _write_mp3(d / "speech.mp3")
    for name in ("fifo.png", "fifo.mp4", "fifo.wav"):
        os.mkfifo(d / name)
    return d


def _write_mp3(path: Path) -> None:
    import av

    x = (0.3 * np.sin(np.arange(44100) / 5)).astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mp3", rate=22050)
        s.layout = "mono"
        rs = av.AudioResampler(format=s.codec_context.format.name, layout="mono", rate=22050)
        for start in range(0, len(x), 1152):
            f = av.AudioFrame.from_ndarray(x[None, start:start + 1152], format="fltp", layout="mono")
            f.sample_rate = 22050
            for rf in rs.resample(f):
                for p in s.encode(rf):
                    c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def _one_error_line(output: str, code: int, exit_code: int) -> str:
    assert exit_code == code, output
    assert "Traceback" not in output, output
    err = [x for x in output.splitlines() if x.startswith("error:")]
    assert len(err) == 1, output
    return err[0]


V = "v.mp4"
EVAL_REFUSED = [  # (arguments, the line the user sees, after "error: <folder>/")
    ([("nope.mp4")], "nope.mp4: video not found; check the path"),
    (["zero.mp4"], "zero.mp4: video is empty (0 bytes); re-export or replace it"),
    (["garbage.mp4"], "garbage.mp4: cannot be decoded (Invalid data found when processing input: cut short, or not a "
                      "media file); re-encode it as H.264 mp4"),
    (["half.mp4"], "half.mp4: cannot be decoded ("),
    (["text.mp4"], "text.mp4: cannot be decoded ("),
    (["full.png"], "full.png: not a video file; pass one of .avi, .gif, .m4v, .mkv, .mov, .mp4, .webm"),
    (["ok.wav"], "ok.wav: not a video file; pass one of"),
    ([V, "--image", "bomb.png"], "bomb.png: image is 400 megapixels, above the limit of 100 megapixels (a decompression "
                                 "bomb or a huge scan); resize it first (e.g. `convert 'bomb.png' -resize 10000x10000"),
    ([V, "--image", "zero.png"], "zero.png: image is empty (0 bytes); re-export or replace it"),
    ([V, "--image", "text.png"], "text.png: not a readable image; save it as PNG or JPEG"),
    ([V, "--image", "cut.png"], "cut.png: image is corrupt or truncated (OSError: image file is truncated); re-export it"),
    ([V, "--image", "adir.png"], "adir.png: image is a folder, not a file; pass a media file inside it"),
    ([V, "--image", "ok.wav"], "ok.wav: not an image file; pass one of"),
    ([V, "--image", "nope.png"], "nope.png: image not found; check the path"),
    ([V, "--audio", "trunc.wav"], "trunc.wav: audio is truncated: its header states 2.00 s but the file holds 0.00 s; "
                                  "re-export or re-download it"),
    ([V, "--audio", "zero.wav"], "zero.wav: audio is empty (0 bytes); re-export or replace it"),
    ([V, "--audio", "ch0.wav"], "ch0.wav: the wav header is broken (bad # of channels); re-export the audio as wav"),
    ([V, "--audio", V], "v.mp4: has no audio track; pass a file with speech audio (wav/mp3/m4a/mp4)"),
    ([V, "--audio", "full.png"], "full.png: not an audio file; pass one of"),
    ([V, "--reference", "garbage.mp4"], "garbage.mp4: cannot be decoded ("),
    ([V, "--reference", "adir.png"], "adir.png: reference is a folder, not a file"),
]


@pytest.mark.parametrize("args,line", EVAL_REFUSED, ids=[" ".join(a) for a, _ in EVAL_REFUSED])
def test_eval_refuses_bad_inputs_in_one_line(bad, args, line):
    r = CliRunner().invoke(app, ["eval", *[str(bad / a) if not a.startswith("-") else a for a in args],
                                 "--metrics", "temporal_flicker"])
    err = _one_error_line(r.output, 2, r.exit_code)
    assert err.startswith(f"error: {bad}/{line}"), err


@pytest.mark.parametrize("value", [",", " ", ", ,", "nope", "temporal_flicker,nope"])
def test_eval_metrics_that_name_nothing_valid_are_a_usage_error(bad, value):
    r = CliRunner().invoke(app, ["eval", str(bad / V), "--metrics", value, "--json"])
    err = _one_error_line(r.output, 2, r.exit_code)
    assert err.startswith(f"error: --metrics {value!r}: ")
    assert ("names no metric; name one or more of: " in err) != ("unknown metric 'nope'; known: " in err)
    assert "temporal_flicker" in err and "warp_error" in err  # the valid names are listed
    assert not r.output.lstrip().startswith("{")  # no empty score table


EVAL_SCORED = [  # (arguments, score that must be a number, text that must appear in the output)
    ([V, "--image", "rgba.png"], "temporal_flicker", "rgba.png"),
    ([V, "--image", "g16.png"], "temporal_flicker", "g16.png"),
    ([V, "--image", "cmyk.jpg"], "temporal_flicker", "cmyk.jpg"),
    ([V, "--image", "anim.gif"], "temporal_flicker", "anim.gif"),
    ([f"{UNI}/my clip é.mp4", "--image", f"{UNI}/pørträit 1.png"], "temporal_flicker", "pørträit 1.png"),
    ([V, "--audio", "k8.wav"], "temporal_flicker", "show a face with landmarks"),  # the audio loaded
    ([V, "--audio", "speech.mp3"], "temporal_flicker", "show a face with landmarks"),
    ([V, "--audio", "silent.wav"], "temporal_flicker", "audio is silent"),
    ([V, "--reference", "fps05.mp4"], "psnr", "warning: fps05.mp4: the reference runs at 0.5 fps, the clip at 10 fps; "
                                              "frames are paired by index"),
    ([V, "--metrics", "temporal_flicker,"], "temporal_flicker", "temporal_flicker"),
]


@pytest.mark.parametrize("args,score,text", EVAL_SCORED, ids=[" ".join(a) for a, _, _ in EVAL_SCORED])
def test_eval_scores_awkward_but_valid_inputs(bad, args, score, text):
    """Odd images (RGBA, 16-bit, CMYK, animated GIF), unicode paths with spaces, 8 kHz wav, mp3,
    silence, a reference at another fps: scored, with a reason or warning where something is off."""
    metrics = [] if "--metrics" in args else ["--metrics", {"psnr": "psnr"}.get(score, "temporal_flicker") +
                                              (",identity" if "--image" in args else "") +
                                              (",lipsync" if "--audio" in args else "")]
    r = CliRunner().invoke(app, ["eval", *[str(bad / a) if not a.startswith("-") and "," not in a else a for a in args],
                                 *metrics, "--json"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    payload = json.loads(r.stdout[r.stdout.index("{"):])
    assert isinstance(payload["scores"][score], float)
    assert text in r.output or text in json.dumps(payload, ensure_ascii=False)  # JSON escapes non-ASCII


@pytest.mark.parametrize("args", [[V, "--image", "fifo.png"], ["fifo.mp4"], [V, "--audio", "fifo.wav"],
                                  [V, "--reference", "fifo.mp4"]], ids=["image", "video", "audio", "reference"])
def test_eval_never_blocks_on_a_named_pipe(bad, args):
    r = subprocess.run([PY, "-m", "workbench", "eval", *[str(bad / a) if not a.startswith("-") else a for a in args]],
                       capture_output=True, text=True, timeout=60)
    err = _one_error_line(r.stdout + r.stderr, 2, r.returncode)
    assert "is not a regular file (a pipe, socket or device); pass a media file" in err and "fifo." in err


def _suite(folder: Path, tag: str, cases=None, models=None, raw: str | None = None, **spec) -> Path:
    path = folder / "suites" / f"{tag}.yaml"
    path.parent.mkdir(exist_ok=True)
    if raw is not None:
        path.write_text(raw)
        return path
    base = {"name": "probe", "output": str(folder / "runs" / tag), "seeds": [0], "metrics": ["temporal_flicker"],
            "cases": cases or [{"id": "a", "image": str(folder / "full.png")}],
            "models": models or [{"name": "static", "params": {"width": 32, "height": 32, "seconds": 0.4, "fps": 10}}]}
    base.update(spec)
    path.write_text(yaml.safe_dump(base, allow_unicode=True))
    return path


PORTRAIT = Path(__file__).resolve().parents[1] / "data" / "images" / "portrait.png"
PUPPET = [{"name": "puppet", "params": {"size": 128}}]
RUN_REFUSED = [  # (tag, suite, the line after "error: ") -- exit 2, nothing run
    ("unknown-model", dict(models=["nosuch"]), "models.0.name: unknown model 'nosuch'; registered: "),
    ("bad-yaml", dict(raw="name: x\ncases: [\n"), "not valid YAML at line 3, column 1"),
    ("tab-yaml", dict(raw="name: x\n\tcases: []\n"), "not valid YAML at line 2, column 1"),
    ("empty-yaml", dict(raw=""), "a suite file must be a YAML mapping with name, cases, models (got NoneType)"),
    ("list-yaml", dict(raw="- a\n"), "a suite file must be a YAML mapping with name, cases, models (got list)"),
    ("binary-yaml", dict(raw=None), "is not UTF-8 text"),
    ("fps-zero", dict(models=[{"name": "static", "params": {"fps": 0}}]), "models.0.params.fps: 0 is outside [0.1, 240]"),
    ("fps-text", dict(models=[{"name": "static", "params": {"fps": "abc"}}]), "parameter fps must be a number, got 'abc'"),
    ("fps-nan", dict(models=[{"name": "static", "params": {"fps": float("nan")}}]),
     "models.0.params.fps: nan is not a number; use a value in [0.1, 240]"),
    ("fps-inf", dict(models=[{"name": "puppet", "params": {"fps": float("inf")}}]), "models.0.params.fps: inf is not a number"),
    ("metrics-empty", dict(metrics=[]), "metrics: the selection [] names no metric; name one or more of: "),
    ("metrics-blank", dict(metrics=[" "]), "metrics: the selection [' '] names no metric"),
    ("seeds-empty", dict(seeds=[]), "a suite needs at least one case, one model and one seed"),
    ("seeds-text", dict(seeds=["abc"]), "'seeds.0': Input should be a valid integer"),
    ("case-id-space", dict(cases=[{"id": "a b", "image": "full.png"}]), "case id 'a b' must be letters, digits"),
]


@pytest.mark.parametrize("tag,spec,line", RUN_REFUSED, ids=[t for t, _, _ in RUN_REFUSED])
def test_run_refuses_bad_suites_in_one_line(bad, tag, spec, line):
    path = _suite(bad, tag, **spec)
    if tag == "binary-yaml":
        path.write_bytes(b"\xff\xfe\x00name")
    r = CliRunner().invoke(app, ["run", str(path), "--no-report", "--wandb", "disabled"])
    err = _one_error_line(r.output, 2, r.exit_code)
    assert err.startswith(f"error: {path}: ") and line in err and "Value error" not in err, err
    assert not (bad / "runs" / tag).exists()


@pytest.mark.parametrize("what", ["folder", "pipe", "missing"])
def test_run_refuses_a_suite_path_that_is_no_file(bad, what):
    path = {"folder": bad / "adir.png", "pipe": bad / "fifo.png", "missing": bad / "nope.yaml"}[what]
    r = CliRunner().invoke(app, ["run", str(path)])
    err = _one_error_line(r.output, 2, r.exit_code)
    assert err.startswith(f"error: {path}: ") and {"folder": "is a folder, not a suite file",
                                                   "pipe": "is not a regular file", "missing": "suite file not found"}[what] in err


RUN_JOBS = [  # (tag, cases, models, exit code, text in the job's error or warning; "" when it must be clean)
    ("dir-image", [{"id": "a", "image": "adir.png"}], None, 1, "adir.png: image is a folder, not a file"),
    ("fifo-image", [{"id": "a", "image": "fifo.png"}], None, 1, "fifo.png: image is not a regular file"),
    ("bomb-image", [{"id": "a", "image": "bomb.png"}], None, 1, "bomb.png: image is 400 megapixels, above the limit"),
    ("truncated-wav", [{"id": "a", "image": str(PORTRAIT), "audio": "trunc.wav"}], PUPPET, 1,
     "trunc.wav: audio is truncated: its header states 2.00 s but the file holds 0.00 s"),
    ("zero-wav", [{"id": "a", "image": str(PORTRAIT), "audio": "zero.wav"}], PUPPET, 1, "zero.wav: audio is empty (0 bytes)"),
    ("image-as-audio", [{"id": "a", "image": str(PORTRAIT), "audio": "full.png"}], PUPPET, 1, "full.png: not an audio file"),
    ("puppet-size", [{"id": "a", "image": str(PORTRAIT), "audio": "ok.wav"}],
     [{"name": "puppet", "params": {"size": 100000}}], 1, "puppet: size must be in [64, 4096] px, got 100000"),
    ("corrupt-reference", [{"id": "a", "image": "full.png", "reference": "garbage.mp4"}], None, 1, "garbage.mp4: cannot be decoded"),
    ("odd-images", [{"id": "a", "image": "rgba.png"}, {"id": "b", "image": "cmyk.jpg"}, {"id": "c", "image": "g16.png"},
                    {"id": "d", "image": f"{UNI}/pørträit 1.png"}], None, 0, ""),
    ("silent-wav", [{"id": "a", "image": str(PORTRAIT), "audio": "silent.wav"}], PUPPET, 0,
     "silent.wav: audio is silent (rms 0.0e+00 < 0.0001); the clip was made with the mouth at rest"),
    ("mp3-8khz", [{"id": "a", "image": str(PORTRAIT), "audio": "speech.mp3"},
                  {"id": "b", "image": str(PORTRAIT), "audio": "k8.wav"}], PUPPET, 0, ""),
    ("reference-fps", [{"id": "a", "image": "full.png", "reference": "fps05.mp4"}], None, 0,
     "fps05.mp4: the reference runs at 0.5 fps, the clip at 10 fps"),
]


@pytest.mark.parametrize("tag,cases,models,code,text", RUN_JOBS, ids=[t for t, *_ in RUN_JOBS])
def test_run_fails_only_the_job_with_a_bad_input(bad, tag, cases, models, code, text):
    cases = [{k: (v if k == "id" or v.startswith("/") else str(bad / v)) for k, v in c.items()} for c in cases]
    metrics = ["psnr"] if any("reference" in c for c in cases) else ["temporal_flicker"]
    path = _suite(bad, tag, cases=cases, models=models, metrics=metrics)
    r = CliRunner().invoke(app, ["run", str(path), "--no-report", "--wandb", "disabled"])
    assert r.exit_code == code and "Traceback" not in r.output, r.output
    recs = lines(bad / "runs" / tag)
    assert len(recs) == len(cases)
    if code:
        (rec,) = [x for x in recs if x["status"] == "error"]
        assert text in rec["error"] and "\n" not in rec["error"] and "traceback" not in rec
        assert f"failed: a / {rec['model']} / seed 0: " in r.output and "1 of 1 jobs failed" in r.output
    else:
        assert all(x["status"] == "ok" for x in recs)
        notes = [w for x in recs for w in x["warnings"]]
        assert (text in " ".join(notes)) if text else notes == [], notes


# --- issue 22 probes: one-line commands ---------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[1]
PRODUCT = REPO_ROOT / "data" / "images" / "product.png"


def _one_error(r, code: int) -> str:
    assert r.exit_code == code and "Traceback" not in r.output, r.output
    err = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert len(err) == 1, r.output
    return err[0]


@pytest.mark.parametrize("fault", ["corrupt_image", "out_is_a_file", "out_under_a_file", "read_only", "pipe_image"])
def test_generate_input_and_folder_faults_are_one_line(tmp_path, fault, monkeypatch):
    """`generate` handles what `run` handles: a corrupt image (exit 2), an --out that is a file, lies under
    a file or in a read-only folder (exit 1, as `run`), a named pipe as --image (not "no such file")."""
    image, out = PRODUCT, tmp_path / "gen"
    if fault == "corrupt_image":
        image = tmp_path / "corrupt.png"
        image.write_bytes(os.urandom(300))
    elif fault == "pipe_image":
        image = tmp_path / "pipe.png"
        os.mkfifo(image)
    elif fault == "out_is_a_file":
        out.write_text("x")
    elif fault == "out_under_a_file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "gen"
    else:  # root ignores permission bits: the check is made to see a read-only parent
        ro = tmp_path / "ro"
        ro.mkdir()
        out = ro / "gen"
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro and mode & os.W_OK else real(p, mode))
    r = CliRunner().invoke(app, ["generate", "kenburns", "--image", str(image), "--out", str(out), "--wandb", "disabled"])
    code = 2 if fault in ("corrupt_image", "pipe_image") else 1
    err = _one_error(r, code)
    says = {"corrupt_image": "not a readable image", "pipe_image": "not a regular file", "out_is_a_file": "is a file",
            "out_under_a_file": "is a file", "read_only": "not writable"}[fault]
    assert says in err and "no such file" not in err
    if fault != "out_is_a_file":
        assert not out.exists()


def test_speak_speed_voice_and_out_faults(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("WORKBENCH_SPEECH_CACHE", str(tmp_path / "cache"))
    for speed in ("nan", "inf", "0", "-1"):  # nan/inf were a ValueError traceback; 0 ran at normal speed
        err = _one_error(CliRunner().invoke(app, ["speak", "hello", "--speed", speed]), 2)
        assert "speed" in err and "positive" in err
    pipe = tmp_path / "p.wav"
    os.mkfifo(pipe)
    err = _one_error(CliRunner().invoke(app, ["speak", "hello", "--out", str(pipe)]), 2)
    assert "not a regular file" in err and "no such file" not in err.lower()
    (tmp_path / "afile").write_text("x")
    err = _one_error(CliRunner().invoke(app, ["speak", "hello", "--out", str(tmp_path / "afile" / "x.wav")]), 2)
    assert "is a file, not a folder" in err and "File exists" not in err
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (`make system-deps`)")
    for voice in ("fr", "en"):  # espeak-ng takes them (file names, other languages): so does the workbench
        r = CliRunner().invoke(app, ["speak", "hello", "--voice", voice])
        assert r.exit_code == 0 and f"espeak-ng:{voice}" in r.output, r.output
    err = _one_error(CliRunner().invoke(app, ["speak", "hello", "--voice", "en-xx"]), 2)
    assert "en-us" in err  # the suggestions no longer leave it out


def test_espeak_voice_table_names_what_dash_v_accepts():
    from workbench.speech import close_voices, parse_espeak_voices

    table = ("Pty Language       Age/Gender VoiceName          File                 Other Languages\n"
             " 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)\n"
             " 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)\n"
             " 5  fr-fr           --/M      French_(France)    roa/fr               (fr 5)\n")
    names = parse_espeak_voices(table)
    assert {"en", "fr", "en-us", "en-gb", "fr-fr"} <= names
    voices = ["en", "en-029", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us"]
    assert "en-us" in close_voices("en-uss", voices)


def test_generate_dry_run_for_a_hosted_model_without_its_key(tmp_path, monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    out = tmp_path / "veo"
    base = ["generate", "veo-3-i2v", "--image", str(PRODUCT), "--out", str(out)]
    err = _one_error(CliRunner().invoke(app, base), 2)
    assert "GOOGLE_API_KEY" in err and "--dry-run" in err and "DIR" not in err
    r = CliRunner().invoke(app, [*base, "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "1 of 1 jobs to run" in r.output and "USD" in r.output and "missing key" in r.output
    assert "GOOGLE_API_KEY" in r.output and not out.exists()


@pytest.mark.parametrize("why", ["missing_key", "over_budget"])
def test_run_refused_before_any_job_leaves_no_folder(workdir, why, monkeypatch):
    if why == "missing_key":
        monkeypatch.delenv("FAL_KEY", raising=False)
        path = suite_file(workdir, models=["fal-kling-2.1-standard-i2v"], cases=[{"id": "a", "image": "a.png", "prompt": "p"}])
    else:
        monkeypatch.setenv("FAL_KEY", "falid-0000:falsecret-0000")
        path = suite_file(workdir, models=["fal-kling-2.1-standard-i2v"], budget=0.01,
                          cases=[{"id": "a", "image": "a.png", "prompt": "p"}])
    err = _one_error(CliRunner().invoke(app, ["run", str(path), "--wandb", "disabled"]), 2)
    assert "nothing was run" in err and not (workdir / "run").exists()
    (workdir / "run").mkdir()
    (workdir / "run" / "notes.txt").write_text("mine")  # a folder that was there before is left alone
    _one_error(CliRunner().invoke(app, ["run", str(path), "--wandb", "disabled"]), 2)
    assert (workdir / "run" / "notes.txt").read_text() == "mine"


def test_dry_run_says_what_a_recipe_model_lacks(workdir, monkeypatch):
    monkeypatch.delenv("SADTALKER_DIR", raising=False)
    (workdir / "a.wav").write_bytes((REPO_ROOT / "data" / "audio" / "hello.wav").read_bytes())
    path = suite_file(workdir, cases=[{"id": "a", "image": "a.png", "audio": "a.wav"}], models=["sadtalker", "puppet"])
    r = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert r.exit_code == 0, r.output
    missing = [x for x in r.output.splitlines() if x.startswith("missing:")]
    assert len(missing) == 1 and "sadtalker" in missing[0] and "SADTALKER_DIR" in missing[0], r.output
    monkeypatch.setenv("SADTALKER_DIR", str(workdir))
    r = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert "missing:" not in r.output, r.output


def test_a_warning_during_a_run_is_one_line_not_glued_to_the_bar(workdir, monkeypatch):
    """W&B's 'logging stopped' warning (any library warning) prints as one `warning:` line, without the
    `file.py:123: UserWarning:` prefix that glued itself onto the progress bar."""
    import warnings

    import workbench.tracking as tracking

    class Warns:
        def on_job_end(self, job, record):
            warnings.warn("W&B logging stopped at job 1 (boom); the run goes on", UserWarning)

    def attach(runner, mode=None):
        runner.callbacks.append(Warns())
        return None

    monkeypatch.setattr(tracking, "attach", attach)
    r = CliRunner().invoke(app, ["run", str(suite_file(workdir)), "--no-report"])
    assert r.exit_code == 0, r.output
    hits = [x for x in r.output.splitlines() if "W&B logging stopped" in x]
    assert hits and all(x.startswith("warning: W&B logging stopped") for x in hits), r.output
    assert "UserWarning" not in r.output and ".py:" not in r.output


def test_progress_bar_counts_steps_while_generating_and_frames_while_scoring():
    from workbench.cli.run import _ProgressBar

    bar = _ProgressBar()
    bar.on_run_start([], [])
    bar.on_step(None, "generate", 1, 30)
    assert bar.steps.unit == "step"  # denoising steps, not "frame/s"
    bar.on_step(None, "evaluate", 1, 9)
    assert bar.steps.unit == "frame"
    bar.on_run_end([], False)


def test_a_picture_lists_only_the_scores_that_apply_to_a_picture():
    """A text-to-image cell listed ~25 video, face and audio scores as n/a: none of them exists for a
    still; `applicable_scores` is the rule the report and the Studio list a cell's scores by."""
    from workbench.metrics.registry import applicable_scores, score_specs

    every = list(score_specs())
    assert len(every) > 20
    picture = {"task": "text-to-image", "image_out": "clips/x.png", "metrics_requested": every}
    assert applicable_scores(picture, every) == []
    assert applicable_scores({"image_out": "clips/x.png"}, every) == []  # an older record without `task`
    assert applicable_scores({"task": "image-to-video", "video": "clips/x.mp4"}, every) == every
    assert applicable_scores("text-to-image", ["temporal_flicker", "identity_similarity"]) == []


def test_models_listing_says_the_face_swap_blend_it_uses():
    from workbench.models import get_generator

    cls = get_generator("faceswap-landmarks")
    r = CliRunner().invoke(app, ["models", "--json"])
    row = next(m for m in json.loads(r.stdout) if m["name"] == "faceswap-landmarks")
    assert cls.defaults["blend"] == "feather" and "feathered blend" in row["description"]
    assert "seamless blend;" not in row["description"]
