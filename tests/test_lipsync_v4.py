"""Lip-sync v4 (mouth-ridge): frame timestamps (variable frame rate, a video that starts after its
audio), several faces (the speaking face named per turn), offsets in milliseconds with an interval.
Real clips from ../shared/media (skipped with the reason when absent); short windows keep them fast.
Whole-dev-set held-out figures: benchmarks/bench_lipsync.py."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.media import Audio, Clip, clip_frame_times, frame_times, stream_start_times
from workbench.metrics import evaluate
from workbench.metrics.base import EvalInputs, FrameStep
from workbench.metrics.lipsync import LipSync, uniform_grid


def _run(clip: Clip, audio: Audio | None = None) -> tuple[dict, LipSync]:
    """The lipsync metric fed by hand (its `speakers` details are kept on the instance)."""
    m = LipSync(backend="landmarks")
    m.start(EvalInputs(video=clip, audio=audio))
    prev = None
    for i, frame in enumerate(clip.iter_frames()):
        step = FrameStep(i, frame, prev, clip.fps, full=frame)
        m.update(step)
        prev = step
    return m.finish(), m


def test_frame_times_of_a_variable_frame_rate_file(media_dir):
    path = media_dir / "talking_hard" / "sadtalkervls_job_interview_vfr.mp4"
    t = frame_times(path)
    gaps = np.round(np.diff(t) * 1000)
    assert len(t) == 135 and set(np.unique(gaps)) == {33.0, 67.0}  # 30 fps with dropped frames
    assert stream_start_times(path) == pytest.approx((0.033, 0.0), abs=1e-3)
    rel = clip_frame_times(Clip.open(path))
    assert rel[0] == pytest.approx(0.033, abs=1e-3) and rel[-1] == pytest.approx(6.1, abs=0.01)
    french = media_dir / "talking_wild" / "dfrf_french_first20s.mp4"  # video starts 0.08 s into the audio
    assert clip_frame_times(Clip.open(french))[0] == pytest.approx(0.08, abs=1e-3)
    inmem = Clip.from_frames(np.zeros((5, 8, 8, 3), np.uint8), 25)
    assert np.allclose(clip_frame_times(inmem), np.arange(5) / 25)


def test_uniform_grid_interpolates_variable_gaps():
    t = np.array([0.0, 1 / 30, 3 / 30, 4 / 30, 6 / 30])
    M = np.arange(5, dtype=float)[None, :, None] * np.ones((1, 1, 2))
    g, tg, grid_of = uniform_grid(M, t, 1 / 30)
    assert len(tg) == 7 and list(grid_of) == [0, 1, 3, 4, 6]
    assert g[0, 2, 0] == pytest.approx(1.5)  # halfway between the frames at 1/30 and 3/30


def test_vfr_clip_scores_and_a_delay_moves_its_offset(media_dir):
    clip = Clip.open(media_dir / "talking_hard" / "sadtalkervls_job_interview_vfr.mp4")
    own, m = _run(clip)
    print("\nvfr own:", own, m.speakers)
    assert m.speakers["period_ms"] == pytest.approx(33.3, abs=0.2)  # frames of the clip: its median gap
    assert own["sync_confidence"] is not None
    # the clip's own best lag (+3 frames at version 6): the curve's peak, given or abstained (6 s of VFR
    # stands ~2 null deviations out, near the 2.5 abstain level; the README lists it among the misses)
    best = -(int(np.argmax(m.curve)) - (len(m.curve) - 1) // 2)
    if own["sync_offset"] is None:
        assert "null deviations" in m.reasons["sync_offset"]
    else:
        assert own["sync_offset"] == best
        assert own["sync_offset_ms"] == pytest.approx(own["sync_offset"] * m.speakers["period_ms"])
    late, m_late = _run(clip, clip.audio.shift(5 * 0.0333))
    print("vfr +5 frames:", late)
    assert late["sync_offset"] is not None, m_late.reasons  # delayed 5 frames: a clear peak (~7 null deviations)
    assert abs((late["sync_offset"] - best) + 5) <= 1
    assert late["sync_offset_ms"] == pytest.approx(late["sync_offset"] * m_late.speakers["period_ms"])


def test_split_screen_names_the_speaker_of_each_turn(media_dir):
    """Two real talking crops side by side (both mouths move all the time); the soundtrack is the left
    one's own audio for the first 2.5 s and the right one's for the next 2.5 s: the speaking face of
    each turn must be the one whose own speech plays."""
    left, right = (Clip.open(media_dir / "talking" / f"{n}.mp4").load() for n in ("00086", "741400163"))
    n = 125
    frames = np.concatenate([left.frames[:n], right.frames[:n]], axis=2)  # 224 x 448
    sr = left.audio.sample_rate
    half = int(2.5 * sr)
    audio = np.concatenate([left.audio.samples[:half], right.audio.samples[half:2 * half]])
    clip = Clip.from_frames(frames, 25.0, Audio(audio, sr))
    scores, m = _run(clip)
    where = {f["face"]: f["where"] for f in m.speakers["faces"]}
    turns = [(where[t["face"]], round(t["start"], 1), round(t["end"], 1)) for t in m.speakers["turns"]]
    print("\nsplit screen:", scores, turns)
    assert sorted(where.values()) == ["left", "right"]
    assert [w for w, _, _ in turns] == ["left", "right"], turns
    assert turns[0][2] == pytest.approx(2.5, abs=0.1)


def test_offset_has_milliseconds_and_an_interval(media_dir):
    clip = Clip.open(media_dir / "talking" / "741400163.mp4")
    r = evaluate(clip, metrics=["lipsync"])
    off, ms = r.scores["sync_offset"], r.scores["sync_offset_ms"]
    assert off is not None and abs(off) <= 2 and ms == pytest.approx(off * 40.0)
    assert r.scores["sync_offset_low"] <= off <= r.scores["sync_offset_high"]
    assert r.scores["sync_speaker"] == 0 and r.backends["sync_offset_ms"] == "mouth-ridge"
    assert len(r.series["sync_speaker"]) == clip.num_frames


def _beat(n: int, rms: float) -> np.ndarray:
    """A 120 bpm kick (55 Hz) and hi-hat (noise bursts), scaled to `rms`, 16 kHz."""
    t = np.arange(n) / 16000
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-(t % 0.5) / 0.08)
    hat = 0.3 * np.random.default_rng(0).normal(size=n) * np.exp(-((t + 0.25) % 0.5) / 0.02)
    b = kick + hat
    return (b * rms / np.sqrt(np.mean(b ** 2))).astype(np.float32)


def test_music_under_the_voice_keeps_the_offset_and_a_beat_alone_gives_none(media_dir):
    clip = Clip.open(media_dir / "talking" / "741400163.mp4").load()
    speech = clip.audio.resample(16000).samples
    beat = _beat(len(speech), float(np.sqrt(np.mean(speech ** 2))))  # as loud as the voice
    clean = evaluate(clip, metrics=["lipsync"]).scores
    mixed = evaluate(clip, audio=Audio(speech + beat, 16000), metrics=["lipsync"]).scores
    alone = evaluate(clip, audio=Audio(beat, 16000), metrics=["lipsync"])
    print("\nclean", clean["sync_offset"], "with a beat", mixed["sync_offset"], mixed["sync_confidence"],
          "beat alone", alone.scores["sync_confidence"])
    assert mixed["sync_offset"] is not None and abs(mixed["sync_offset"] - clean["sync_offset"]) <= 1
    assert alone.scores["sync_offset"] is None and "no clear audio-visual sync peak" in alone.errors["sync_offset"]


def test_a_face_that_leaves_the_frame_is_not_a_sync_error(media_dir):
    clip = Clip.open(media_dir / "talking" / "741400163.mp4").load()
    frames = clip.frames.copy()
    frames[100:160] = 0  # 2.4 s without the face
    r = evaluate(Clip.from_frames(frames, clip.fps, clip.audio), metrics=["lipsync"])
    whole = evaluate(clip, metrics=["lipsync"])
    assert r.scores["sync_offset"] is not None and abs(r.scores["sync_offset"] - whole.scores["sync_offset"]) <= 1
    assert all(v is None for v in r.series["sync_speaker"][105:155])  # nobody speaks on screen there


@pytest.fixture(scope="module")
def eight_seconds(media_dir):
    """The first 8 s of a 25 fps crop, its audio, and its offset in ms at its own rate."""
    src = Clip.open(media_dir / "talking" / "741400163.mp4").load()
    frames, audio = src.frames[: int(8 * src.fps)], src.audio.trim(8.0)
    ref = evaluate(Clip.from_frames(frames, src.fps, audio), metrics=["lipsync"]).scores
    assert ref["sync_offset"] is not None
    return frames, src.fps, audio, ref["sync_offset_ms"]


@pytest.mark.parametrize("rate", [24.0, 29.97, 30.0, 50.0, 60.0])
def test_any_frame_rate_gives_the_same_offset_in_ms_and_counts_delays_in_its_own_frames(eight_seconds, rate):
    """The same footage shown at another rate (each output frame the source frame on screen at its time):
    the offset in ms stays within a frame and a half of the source's, and audio delayed by 5 frames of
    *that* rate moves the offset by -5 of its frames."""
    frames, fps, audio, ref_ms = eight_seconds
    n = int(8.0 * rate)
    idx = np.minimum((np.arange(n) / rate * fps).astype(int), len(frames) - 1)
    clip = Clip.from_frames(frames[idx], rate, audio)
    own = evaluate(clip, metrics=["lipsync"]).scores
    late = evaluate(clip, audio=audio.shift(5 / rate), metrics=["lipsync"]).scores
    print(f"\n{rate} fps: {own['sync_offset']} frames / {own['sync_offset_ms']:.0f} ms (25 fps: {ref_ms:.0f} ms); "
          f"+5 frames: {late['sync_offset']}")
    assert own["sync_offset"] is not None and late["sync_offset"] is not None
    assert own["sync_offset_ms"] == pytest.approx(own["sync_offset"] * 1000.0 / rate)
    assert abs(own["sync_offset_ms"] - ref_ms) <= 1.5 * 1000.0 / fps
    assert abs((late["sync_offset"] - own["sync_offset"]) + 5) <= 1
