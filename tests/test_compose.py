"""Composer: frame counts, fps and size, A/V alignment at every cut (flash + click probes), crossfades,
overlay audio, title card and caption, trims, errors, the CLI, and real talking clips."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.media import Audio, Clip, load_audio
from workbench.workflow.compose import (ComposeError, Segment, TitleCard, compose, parse_segment,
                                        parse_size)

SR = 16000
CLICK = 0.9


def probe_clip(path, fps, n, size, flashes=(0,), color=(40, 40, 40), sr=SR, click_scale=1.0):
    """A clip whose frames flash white at `flashes` and whose audio clicks at the same instants."""
    w, h = size
    frames = np.empty((n, h, w, 3), np.uint8)
    frames[:] = color
    samples = np.zeros(int(round(n / fps * sr)), np.float32)
    for f in flashes:
        frames[f] = 255
        s = int(round(f / fps * sr))
        samples[s:s + 80] = CLICK * click_scale
    Clip.from_frames(frames, fps, Audio(samples, sr)).save(path)
    return path


def flash_frames(clip: Clip) -> list[int]:
    """First frame of each run of white frames (a frame-rate change may repeat a flash), centre patch."""
    lit = [f[f.shape[0] // 2 - 8:f.shape[0] // 2 + 8, f.shape[1] // 2 - 8:f.shape[1] // 2 + 8].mean() > 200
           for f in clip.iter_frames()]
    return [i for i, on in enumerate(lit) if on and (i == 0 or not lit[i - 1])]


def click_times(audio: Audio, threshold: float = 0.6) -> list[float]:
    """Onset time of each click (first loud sample after >= 20 ms of quiet)."""
    loud = np.flatnonzero(np.abs(audio.samples) > threshold)
    if not len(loud):
        return []
    gap = int(0.02 * audio.sample_rate)
    onsets = [loud[0]] + [b for a, b in zip(loud[:-1], loud[1:]) if b - a > gap]
    return [o / audio.sample_rate for o in onsets]


def assert_in_sync(path, fps, expected_flashes):
    clip = Clip.open(path)
    flashes = flash_frames(clip)
    assert flashes == expected_flashes
    clicks = click_times(load_audio(path))
    assert len(clicks) == len(flashes)
    offsets = [c - f / fps for c, f in zip(clicks, flashes)]
    assert max(abs(o) for o in offsets) < 0.002, offsets  # zero offset, to AAC's precision (<< 1 frame)
    return clip


def test_cuts_mixed_fps_and_sizes_keep_every_cut_in_sync(tmp_path):
    # three clips at 25, 30 and 24 fps, three sizes; a flash + click on each first frame (the cut) and at 1.0 s
    a = probe_clip(tmp_path / "a.mp4", 25, 30, (96, 64), flashes=(0, 25))
    b = probe_clip(tmp_path / "b.mp4", 30, 36, (128, 96), flashes=(0, 30))
    c = probe_clip(tmp_path / "c.mp4", 24, 30, (64, 64), flashes=(0, 24))
    res = compose([a, b, c], tmp_path / "out.mp4", fps=25, size=(160, 120))
    durations = 30 / 25 + 36 / 30 + 30 / 24
    assert abs(res.duration - durations) <= 1 / 25
    assert res.num_frames == 30 + 30 + 31  # round(1.25 * 25) = 31
    assert res.starts == pytest.approx([0.0, 1.2, 2.4])
    out = assert_in_sync(res.path, 25, [0, 25, 30, 55, 60, 85])
    assert out.fps == pytest.approx(25)
    assert out.size == (160, 120)
    assert out.num_frames == res.num_frames
    assert abs(out.num_frames / out.fps - durations) <= 1 / 25
    # letterboxed: the 64x64 clip sits in the middle of 160x120 with black bars at the sides
    last = out.to_array()[-1]
    assert last[:, :10].max() < 20 and last[60, 80].mean() > 30


def test_crossfade_blends_pictures_and_sound_and_keeps_sync(tmp_path):
    red = probe_clip(tmp_path / "red.mp4", 25, 25, (64, 64), flashes=(12,), color=(200, 0, 0))
    blue = probe_clip(tmp_path / "blue.mp4", 25, 25, (64, 64), flashes=(12,), color=(0, 0, 200))
    green = probe_clip(tmp_path / "green.mp4", 25, 25, (64, 64), flashes=(12,), color=(0, 200, 0))
    res = compose([red, blue, green], tmp_path / "x.mp4", crossfade=0.2)  # 5 frames per junction
    assert res.num_frames == 75 - 2 * 5
    assert abs(res.duration - (3.0 - 2 * 0.2)) <= 1 / 25
    assert res.starts == pytest.approx([0.0, 0.8, 1.6])
    out = assert_in_sync(res.path, 25, [12, 20 + 12, 40 + 12])
    frames = out.to_array()
    mid = frames[20 + 2].reshape(-1, 3).mean(axis=0)  # third frame of the red->blue dissolve
    assert mid[0] > 40 and mid[2] > 40
    assert frames[10].reshape(-1, 3).mean(axis=0)[2] < 20  # before the dissolve: red only


def test_overlay_audio_replaces_clip_sound_and_is_cut_to_the_video(tmp_path):
    a = probe_clip(tmp_path / "a.mp4", 25, 25, (64, 64), flashes=(5,))
    b = probe_clip(tmp_path / "b.mp4", 25, 25, (64, 64), flashes=(5,))
    track = np.zeros(SR * 5, np.float32)  # 5 s track: clicks at 0.5 s, 1.5 s and 3.0 s (past the video)
    for t in (0.5, 1.5, 3.0):
        track[int(t * SR):int(t * SR) + 80] = CLICK
    Audio(track, SR).save_wav(tmp_path / "track.wav")
    res = compose([a, b], tmp_path / "o.mp4", audio=tmp_path / "track.wav")
    audio = load_audio(res.path)
    clicks = click_times(audio)
    assert clicks == pytest.approx([0.5, 1.5], abs=0.002)  # the track's, not the clips' (0.2 s, 1.2 s)
    assert audio.duration == pytest.approx(2.0, abs=0.07)  # cut to the video (AAC pads < 1 frame of 1024)


def test_title_card_and_caption(tmp_path):
    a = probe_clip(tmp_path / "a.mp4", 25, 25, (160, 120), flashes=(10,), color=(90, 90, 90))
    plain = compose([a], tmp_path / "plain.mp4")
    res = compose([a], tmp_path / "t.mp4", title=TitleCard("Take one", seconds=1.0), caption="hello there")
    assert res.num_frames == 50
    out = assert_in_sync(res.path, 25, [25 + 10])  # the card shifts the clip and its sound together
    frames = out.to_array()
    card = frames[0].astype(int)
    assert card[:20].max() < 30  # black background...
    assert (card > 200).sum() > 50  # ...with white text
    assert np.abs(frames[:25].astype(int) - frames[0].astype(int)).max() < 12  # a still card
    ref = Clip.open(plain.path).to_array()[3].astype(int)
    diff = np.abs(frames[25 + 3].astype(int) - ref).mean(axis=2)
    assert diff[:60].max() < 12  # the caption leaves the top half alone
    assert diff[90:].mean() > 10  # and draws on the bottom band


def test_trim_and_segment_syntax(tmp_path):
    src = tmp_path / "count.mp4"
    frames = np.zeros((50, 32, 32, 3), np.uint8)
    frames[..., 0] = (np.arange(50) * 5)[:, None, None]  # frame index encoded in red
    Clip.from_frames(frames, 25).save(src)
    seg = parse_segment(f"{src}@0.4-1.0")
    assert (seg.start, seg.end) == (0.4, 1.0)
    assert parse_segment(f"{src}@1-").end is None and parse_segment(f"{src}@-1.5").start == 0.0
    assert parse_size("512x288") == (512, 288)
    res = compose([seg, Segment(src, 1.6)], tmp_path / "trim.mp4")
    assert res.num_frames == 15 + 10
    red = Clip.open(res.path).to_array()[..., 0].reshape(25, -1).mean(axis=1)
    assert red[0] == pytest.approx(50, abs=3) and red[14] == pytest.approx(120, abs=3)
    assert red[15] == pytest.approx(200, abs=3)


@pytest.mark.parametrize("kwargs, message", [
    ({"size": (161, 120)}, "even"),
    ({"crossfade": 1.0}, "shortest segment"),
    ({"crossfade": -1}, ">= 0"),
    ({"fps": 0}, "fps must be"),
    ({"fit": "zoom"}, "fit must be"),
])
def test_bad_settings_are_one_line_errors(tmp_path, kwargs, message):
    a = probe_clip(tmp_path / "a.mp4", 25, 20, (64, 64))
    with pytest.raises(ComposeError, match=message) as e:
        compose([a, a], tmp_path / "o.mp4", **kwargs)
    assert "\n" not in str(e.value)


def test_bad_inputs_name_the_file(tmp_path):
    a = probe_clip(tmp_path / "a.mp4", 25, 20, (64, 64))
    with pytest.raises(ComposeError, match="missing.mp4: clip not found"):
        compose([tmp_path / "missing.mp4"], tmp_path / "o.mp4")
    with pytest.raises(ComposeError, match=r"a.mp4: trim end 5.000 s is past"):
        compose([Segment(a, 0, 5.0)], tmp_path / "o.mp4")
    with pytest.raises(ComposeError, match="is empty"):
        compose([Segment(a, 0.5, 0.5)], tmp_path / "o.mp4")
    with pytest.raises(ComposeError, match="must be an .mp4"):
        compose([a], tmp_path / "o.avi")
    assert not (tmp_path / "o.mp4").exists()


def test_cli_compose(tmp_path):
    from typer.testing import CliRunner

    from workbench.cli import app

    a = probe_clip(tmp_path / "a.mp4", 25, 25, (64, 64), flashes=(0,))
    b = probe_clip(tmp_path / "b.mp4", 30, 30, (96, 64), flashes=(0,))
    out = tmp_path / "cli.mp4"
    r = CliRunner().invoke(app, ["compose", str(a), f"{b}@0-0.6", "--out", str(out), "--fps", "25",
                                 "--size", "128x96", "--crossfade", "0.2", "--title", "Hi", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["frames"] == 50 + 25 + 15 - 2 * 5 and (info["width"], info["height"]) == (128, 96)
    clip = Clip.open(out)
    assert clip.num_frames == info["frames"] and clip.size == (128, 96)
    r = CliRunner().invoke(app, ["compose", str(a), "--out", str(tmp_path / "x.mp4"), "--size", "big"])
    assert r.exit_code == 2 and "WIDTHxHEIGHT" in r.output


def test_real_talking_clips_keep_their_own_sound_at_each_cut(media_dir, tmp_path):
    """Two real recordings, trimmed and joined: each segment's sound in the output is the source's own
    sound at lag 0 (cross-correlation), and its pictures are the source's frames."""
    names = ["00086.mp4", "00373.mp4"]
    segs = [Segment(media_dir / "talking" / n, 1.0, 2.2) for n in names]
    res = compose(segs, tmp_path / "real.mp4", size=(224, 224))
    assert res.num_frames == 60
    out_audio = load_audio(res.path)
    out_frames = Clip.open(res.path).to_array()
    rate = out_audio.sample_rate
    for seg, start in zip(segs, res.starts):
        src = Clip.open(seg.source)
        src_audio = src.audio.resample(rate) if src.audio.sample_rate != rate else src.audio
        ref = src_audio.samples[int(seg.start * rate):int(seg.end * rate)]
        got = out_audio.samples[int(start * rate):int(start * rate) + len(ref)]
        lags = range(-400, 401, 4)  # +-25 ms
        corr = [float(np.dot(ref[400:-400], got[400 + lag:len(got) - 400 + lag])) for lag in lags]
        assert list(lags)[int(np.argmax(corr))] == 0
        src_frame = src.to_array(max_frames=int(seg.start * 25) + 6)[int(seg.start * 25) + 5].astype(float)
        out_frame = out_frames[int(round(start * 25)) + 5].astype(float)
        assert np.abs(src_frame - out_frame).mean() < 6
