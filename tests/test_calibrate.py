"""Calibration harness: perturbations, expectations, the report files, and errors that do not stop a run.

The synthetic suite uses two toy metrics registered just for the test, so it checks the harness itself
(through the real `evaluate`) independently of which metric modules exist."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from workbench.calibrate import CalibrationSuiteError, Expectation, Perturbation, load_suite, perturb, run_calibration
from workbench.media import Audio, Clip, write_video
from workbench.metrics.base import Metric, ScoreSpec

FPS = 25
SR = 16000


class ToyChange(Metric):
    """Mean absolute difference of consecutive frames (higher = more change)."""

    name = "toy_change"
    scores = (ScoreSpec("toy_change", False, "[0, 255]", "mean abs frame difference", "test"),)

    def backend(self) -> str:
        return "numpy"

    def start(self, inputs):
        super().start(inputs)
        self.diffs = []

    def update(self, step):
        if step.prev_frame is not None:
            self.diffs.append(float(np.abs(step.frame.astype(float) - step.prev_frame).mean()))

    def finish(self):
        return {"toy_change": float(np.mean(self.diffs)) if self.diffs else None}


class ToyAvLag(Metric):
    """Lag (frames) maximising the correlation of frame brightness with the audio envelope;
    positive when the audio comes late (then the offset is reported negated, SyncNet style)."""

    name = "toy_av"
    requires = frozenset({"audio"})
    scores = (ScoreSpec("toy_av_offset", None, "frames", "audio-visual lag", "test"),)

    def backend(self) -> str:
        return "numpy"

    def start(self, inputs):
        super().start(inputs)
        self.light = []

    def update(self, step):
        self.light.append(float(step.frame.mean()))

    def finish(self):
        a = self.inputs.audio
        hop = a.sample_rate / self.inputs.video.fps
        env = np.array([np.abs(a.samples[int(i * hop):int((i + 1) * hop)]).mean() for i in range(len(self.light))])
        x, y = np.array(self.light) - np.mean(self.light), env - env.mean()
        lags = range(-10, 11)
        corr = [np.dot(x[max(0, -k):len(x) - max(0, k)], y[max(0, k):len(y) - max(0, -k)]) for k in lags]
        return {"toy_av_offset": -float(list(lags)[int(np.argmax(corr))])}


@pytest.fixture
def toy_registry(monkeypatch):
    mod = types.ModuleType("toy_calibration_metrics")
    mod.METRICS = [ToyChange, ToyAvLag]
    monkeypatch.setitem(sys.modules, "toy_calibration_metrics", mod)
    monkeypatch.setattr("workbench.metrics.registry.METRIC_MODULES", ("toy_calibration_metrics",))


def _synthetic_clip(path: Path, seconds: float = 2.0, seed: int = 0) -> Path:
    """A drifting gradient whose brightness pulses with a random envelope, and audio with the same envelope."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    env = np.clip(np.convolve(rng.random(n), np.ones(3) / 3, mode="same"), 0, 1)
    yy, xx = np.mgrid[0:64, 0:64]
    frames = [np.stack([(xx * 2 + 3 * i) % 256, (yy * 2) % 256, np.full_like(xx, 40 + 150 * env[i])], -1).astype(np.uint8)
              for i in range(n)]
    t = np.arange(int(seconds * SR)) / SR
    audio = Audio((0.8 * np.repeat(env, SR // FPS) * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    return write_video(path, frames, FPS, audio)


def _suite(tmp_path: Path, clips: list[str], extra: str = "") -> Path:
    text = f"""
name: toy
max_seconds: 2
clips:
{chr(10).join(f'  - path: {c}' for c in clips)}
metrics: [toy_change, toy_av_offset]
perturbations:
  - name: shuffled
    kind: shuffle_frames
    expect: {{toy_change: up, toy_av_offset: {{delta: 0, tol: 30}}}}
  - name: frozen
    kind: freeze
    start: 0.2
    seconds: 1.0
    expect: {{toy_change: down}}
  - name: delay3
    kind: audio_delay
    frames: 3
    expect: {{toy_av_offset: {{delta: -3, tol: 1}}, toy_change: same}}
  - name: noise
    kind: noise
    sigma: 20
    expect: {{toy_change: up}}
  - name: dropped
    kind: drop_frames
    every: 2
    expect: {{toy_change: up}}
  - name: wrong_on_purpose
    kind: noise
    sigma: 20
    expect: {{toy_change: down}}
{extra}"""
    p = tmp_path / "suite" / "calib.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_perturbations_do_what_they_say():
    frames = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    audio = Audio(np.linspace(-1, 1, 4000, dtype=np.float32), 10 * 400)
    clip = Clip.from_frames(frames, 10, audio)
    sh = perturb(clip, Perturbation("s", "shuffle_frames", {}, {}))
    assert sorted(sh.frames[:, 0, 0, 0]) == list(range(10)) and list(sh.frames[:, 0, 0, 0]) != list(range(10))
    dr = perturb(clip, Perturbation("d", "drop_frames", {"every": 2}, {}))
    assert list(dr.frames[:, 0, 0, 0]) == [0, 2, 4, 6, 8] and dr.audio.duration == pytest.approx(0.5)
    fr = perturb(clip, Perturbation("f", "freeze", {"start": 0.2, "seconds": 0.3}, {}))
    assert list(fr.frames[:, 0, 0, 0]) == [0, 1, 2, 2, 2, 5, 6, 7, 8, 9]
    no = perturb(clip, Perturbation("n", "noise", {"sigma": 5}, {}))
    assert 2 < np.abs(no.frames.astype(float) - frames).mean() < 6
    de = perturb(clip, Perturbation("a", "audio_delay", {"frames": 2}, {}))
    np.testing.assert_allclose(de.audio.samples[800:], audio.samples[:-800])
    assert np.all(de.audio.samples[:800] == 0)
    with pytest.raises(Exception, match="no audio"):
        perturb(Clip.from_frames(frames, 10), Perturbation("a", "audio_delay", {"frames": 2}, {}))


def test_expectations():
    assert Expectation("up").check(0.1) and not Expectation("up").check(0.0)
    assert Expectation("down").check(-0.1) and not Expectation("down", min_change=0.5).check(-0.1)
    assert Expectation("same", tol=0.02).check(-0.01) and not Expectation("same", tol=0.02).check(0.03)
    assert Expectation("delta", delta=-5, tol=1.5).check(-4) and not Expectation("delta", delta=-5, tol=1.5).check(-2)


def test_bad_suites_fail_with_one_line(tmp_path):
    with pytest.raises(CalibrationSuiteError, match="not found"):
        load_suite(tmp_path / "nope.yaml")
    p = tmp_path / "s.yaml"
    p.write_text("clips: [a.mp4]\nmetrics: [x]\nperturbations: [{kind: explode}]\n")
    with pytest.raises(CalibrationSuiteError, match=r"perturbations\[0\] needs kind in shuffle_frames"):
        load_suite(p)
    p.write_text("clips: [a.mp4]\nmetrics: [x]\nperturbations: [{kind: noise, expect: {x: sideways}}]\n")
    with pytest.raises(CalibrationSuiteError, match="metric 'x': expect 'sideways'"):
        load_suite(p)
    p.write_text("clips: [a.mp4]\nmetrics: []\nperturbations: [{kind: noise}]\n")
    with pytest.raises(CalibrationSuiteError, match="'metrics' must be a non-empty list"):
        load_suite(p)


def test_synthetic_suite_end_to_end(tmp_path, toy_registry):
    _synthetic_clip(tmp_path / "suite" / "clips" / "toy.mp4")
    suite = _suite(tmp_path, ["clips/toy.mp4", "clips/missing.mp4"],
                   extra="  - name: unknown_metric_only\n    kind: noise\n    expect: {no_such_metric: up}\n")
    text = suite.read_text().replace("metrics: [toy_change, toy_av_offset]", "metrics: [toy_change, toy_av_offset, no_such_metric]")
    suite.write_text(text)
    out = tmp_path / "out"
    res = run_calibration(suite, out)

    by = {(r.perturbation, r.metric): r for r in res.rows}
    assert by["delay3", "toy_av_offset"].original == 0.0
    assert by["delay3", "toy_av_offset"].delta == pytest.approx(-3, abs=1) and by["delay3", "toy_av_offset"].passed
    for key in [("shuffled", "toy_change"), ("frozen", "toy_change"), ("noise", "toy_change"),
                ("dropped", "toy_change"), ("delay3", "toy_change")]:
        assert by[key].passed is True, by[key]
    assert by["wrong_on_purpose", "toy_change"].passed is False  # the harness can fail
    assert by["unknown_metric_only", "no_such_metric"].passed is None
    assert res.failed == 1 and res.passed == 7 and res.unscored == 1
    # the missing clip is one line naming the file; the other clip still ran
    missing = [e for e in res.errors if "missing.mp4" in e]
    assert len(missing) == 1 and "clip not found" in missing[0] and "\n" not in missing[0]
    assert any("no_such_metric" in e for e in res.errors)
    assert {r.clip for r in res.rows} == {"toy.mp4"}

    data = json.loads((out / "calibration.json").read_text())
    assert data["passed"] == 7 and data["failed"] == 1 and len(data["rows"]) == len(res.rows)
    md = (out / "calibration.md").read_text()
    assert "| toy_change | wrong_on_purpose |" in md and "**FAIL**" in md and "missing.mp4" in md


def test_clip_without_audio_skips_audio_perturbation(tmp_path, toy_registry):
    frames = np.random.default_rng(0).integers(0, 255, size=(20, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "suite" / "silent.mp4", frames, FPS)
    res = run_calibration(_suite(tmp_path, ["silent.mp4"]), tmp_path / "o")
    assert any("delay3" in e and "no audio" in e for e in res.errors)
    assert res.rows and all(r.perturbation != "delay3" or r.passed is None for r in res.rows)
    off = [r for r in res.rows if r.metric == "toy_av_offset" and r.perturbation == "shuffled"]
    assert off[0].passed is None and "needs audio" in off[0].note


def test_repository_suite_parses(repo_root):
    from workbench.calibrate import PERTURBATIONS, WORST

    s = load_suite(repo_root / "evals" / "suites" / "metric-calibration.yaml")
    assert {p.kind for p in s.perturbations} == set(PERTURBATIONS)  # every fault kind is exercised
    assert s.clips[0].path.name == "00086.mp4" and s.clips[0].image == "first_frame"
    assert s.perturbations[4].expect["sync_offset"].delta == -5
    by = {p.name: p for p in s.perturbations}
    assert by["one_frame_flash"].expect["temporal_flicker" + WORST].tol == 0
    assert by["face_morphs_into_another_person"].expect["identity_min"].bound == 0.92
    assert by["mouth_frozen_audio_goes_on"].expect["sync_confidence"].null_ok


def test_new_faults_do_what_they_say():
    frames = (np.arange(20, dtype=np.uint8)[:, None, None, None] * 10 + 20) * np.ones((1, 4, 4, 3), np.uint8)
    audio = Audio(np.linspace(-1, 1, 8000, dtype=np.float32), 4000)  # 2 s at 10 fps
    clip = Clip.from_frames(frames, 10, audio)
    first = lambda c: list(c.frames[:, 0, 0, 0].astype(int))  # noqa: E731
    dup = perturb(clip, Perturbation("d", "duplicate_frame", {"at": 0.5}, {}))
    assert first(dup)[4:7] == [60, 60, 80]
    fl = perturb(clip, Perturbation("f", "flash", {"at": 0.5, "gain": 1.5}, {}))
    assert first(fl)[5] == 125 and first(fl)[4] == 60 and first(fl)[6] == 80
    sw = perturb(clip, Perturbation("s", "swap_frames", {"at": 0.5}, {}))
    assert first(sw)[4:8] == [60, 80, 70, 90]
    dr = perturb(clip, Perturbation("r", "drop_stretch", {"at": 0.5, "seconds": 0.3}, {}))
    assert first(dr)[4:6] == [60, 100] and len(dr.frames) == 17 and dr.audio.duration == pytest.approx(1.7)
    fk = perturb(clip, Perturbation("k", "brightness_flicker", {"amplitude": 0.02, "period_frames": 4}, {}))
    ratio = fk.frames[:, 0, 0, 0] / frames[:, 0, 0, 0].astype(float)
    assert 0.97 < ratio.min() < 0.995 and 1.005 < ratio.max() < 1.03
    with pytest.raises(Exception, match="outside the clip"):
        perturb(clip, Perturbation("f", "flash", {"at": 5.0}, {}))


def test_new_expectation_rules(tmp_path):
    assert Expectation("below", bound=0.92).check_value(0.95, 0.8) is True
    assert Expectation("below", bound=0.92).check_value(0.95, 0.93) is False
    assert Expectation("down", null_ok=True).check_value(0.6, None) is True
    assert Expectation("down").check_value(0.6, None) is None
    p = tmp_path / "s.yaml"
    p.write_text("clips: [a.mp4]\nmetrics: [x]\nperturbations: [{kind: noise, locate: {x: 1}}]\n")
    with pytest.raises(CalibrationSuiteError, match="'locate' needs a fault at one frame"):
        load_suite(p)
    p.write_text("clips: [a.mp4]\nmetrics: [x]\nperturbations: [{kind: flash}]\n")
    with pytest.raises(CalibrationSuiteError, match="needs 'at'"):
        load_suite(p)
    p.write_text("clips: [a.mp4]\nmetrics: [x]\nperturbations: [{kind: morph_face}]\n")
    with pytest.raises(CalibrationSuiteError, match="needs 'source'"):
        load_suite(p)


def test_every_subtle_fault_is_caught_on_a_real_clip(tmp_path, media_dir):
    """The generated-video faults of the repository suite, on 3 s of a real talking clip: each caught by
    the metric named for it (value moved the right way, or the worst frame found at the fault)."""
    from workbench.calibrate import WORST

    clip = media_dir / "talking" / "00086.mp4"
    faces = media_dir / "faces"
    suite = tmp_path / "faults.yaml"
    suite.write_text(f"""
max_seconds: 3
clips: [{{path: {clip}, image: first_frame}}]
metrics: [temporal_flicker]
perturbations:
  - {{name: dup, kind: duplicate_frame, at: 1.6, locate: {{flow_magnitude: 1}}}}
  - {{name: drop, kind: drop_stretch, at: 1.6, seconds: 0.4, locate: {{flow_magnitude: 1}}, expect: {{warp_error: up}}}}
  - {{name: flash, kind: flash, at: 1.2, locate: {{temporal_flicker: 0, warp_error: 0}}, expect: {{temporal_flicker: down}}}}
  - {{name: swap, kind: swap_frames, at: 1.6, expect: {{motion_smoothness: down}}}}
  - {{name: flicker, kind: brightness_flicker, amplitude: 0.02, expect: {{temporal_flicker: down}}}}
  - {{name: morph, kind: morph_face, source: {faces / "sadtalker_people_0.png"}, expect: {{identity_min: {{below: 0.92}}}}}}
  - {{name: mouth, kind: freeze_mouth, start: 0, expect: {{sync_confidence: {{direction: down, null_ok: true}}}}}}
""")
    res = run_calibration(suite, tmp_path / "out")
    checked = [r for r in res.rows if r.expected]
    print("\n".join(f"{r.perturbation:6s} {r.metric:30s} {r.original} -> {r.perturbed} {r.passed} {r.note}" for r in checked))
    assert not res.errors, res.errors
    assert len(checked) == 10 and all(r.passed for r in checked), [r for r in checked if not r.passed]
    assert {r.metric for r in checked if r.metric.endswith(WORST)} == {
        "flow_magnitude" + WORST, "warp_error" + WORST, "temporal_flicker" + WORST}


def test_real_clip_through_real_metrics(tmp_path, media_dir):
    """One real talking clip, 2 s, with the registered temporal + identity metrics."""
    from workbench.metrics.registry import resolve

    try:
        resolve(["temporal_flicker", "identity_similarity"])
    except Exception as e:
        pytest.skip(f"temporal/identity metrics not importable in this tree: {e}")
    clip = media_dir / "talking" / "00086.mp4"
    suite = tmp_path / "real.yaml"
    suite.write_text(f"""
max_seconds: 2
clips: [{{path: {clip}, image: first_frame}}]
metrics: [temporal_flicker, identity_similarity]
perturbations:
  - {{name: shuffled, kind: shuffle_frames, expect: {{temporal_flicker: down, identity_similarity: {{direction: same, tol: 0.03}}}}}}
  - {{name: frozen, kind: freeze, start: 0.5, seconds: 1.0, expect: {{temporal_flicker: up}}}}
""")
    res = run_calibration(suite, tmp_path / "out")
    assert not res.errors, res.errors
    assert res.failed == 0 and res.passed == 3, [r for r in res.rows]


def test_cli_calibrate_reports_and_fails_on_a_failed_check(tmp_path, toy_registry):
    from typer.testing import CliRunner

    from workbench.cli import app

    _synthetic_clip(tmp_path / "suite" / "clips" / "toy.mp4")
    suite = _suite(tmp_path, ["clips/toy.mp4"])
    r = CliRunner().invoke(app, ["calibrate", str(suite), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1  # the suite holds one expectation that is wrong on purpose
    assert "7 passed, 1 failed" in r.output and (tmp_path / "o" / "calibration.md").exists()
    bad = CliRunner().invoke(app, ["calibrate", str(tmp_path / "nope.yaml")])
    assert bad.exit_code == 2 and "nope.yaml" in bad.output


def test_cli_calibrate_logs_a_wandb_run(tmp_path, toy_registry, monkeypatch):
    """`--wandb offline`: one run, job_type calibrate, a table row per check, counts in the summary."""
    from typer.testing import CliRunner

    from workbench.cli import app
    from workbench.tracking import read_offline_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    _synthetic_clip(tmp_path / "suite" / "clips" / "toy.mp4")
    suite = _suite(tmp_path, ["clips/toy.mp4"])
    out = tmp_path / "o"
    r = CliRunner().invoke(app, ["calibrate", str(suite), "--out", str(out), "--wandb", "offline",
                                 "--project", "wb-cal"])
    assert r.exit_code == 1 and "wandb (offline): " in r.output  # the failed check still fails the command
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    held = read_offline_run(runs[0])
    data = json.loads((out / "calibration.json").read_text())
    assert held["project"] == "wb-cal"
    assert held["summary"]["checks/passed"] == 7 and held["summary"]["checks/failed"] == 1
    table = held["tables"]["calibration"]
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert len(rows) == len(data["rows"])
    assert [r["passed"] for r in rows if r["perturbation"] == "wrong_on_purpose" and r["expected"]] == ["FAIL"]
    bad = CliRunner().invoke(app, ["calibrate", str(suite), "--wandb", "maybe"])
    assert bad.exit_code == 2 and "--wandb 'maybe'" in bad.output
