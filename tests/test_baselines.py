"""Model-free generators: static, kenburns, puppet (audio-driven mouth), and the sample inputs they use."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from workbench.faces import FaceTracker, largest_face
from workbench.media import Audio, Clip, fit_image, load_audio, load_image
from workbench.models.base import GenerationError, GenerationRequest, get_generator
from workbench.models.baselines import speech_envelope

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


@pytest.fixture(scope="session")
def samples() -> Path:
    """data/ with its sample files, built by data/make_samples.py when missing."""
    needed = [DATA / "images" / n for n in ("portrait.png", "product.png", "landscape.png")] + \
             [DATA / "audio" / n for n in ("hello.wav", "counting.wav")]
    if not all(p.exists() for p in needed):
        spec = importlib.util.spec_from_file_location("make_samples", DATA / "make_samples.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.build()
    return DATA


@pytest.fixture(scope="session")
def portrait(samples: Path) -> np.ndarray:
    return load_image(samples / "images" / "portrait.png")


@pytest.fixture(scope="session")
def counting(samples: Path) -> Audio:
    return load_audio(samples / "audio" / "counting.wav")


def _run(name: str, seed: int = 0, calls: list | None = None, **kw):
    params = {k: v for k, v in kw.items() if k not in ("image", "audio", "image_path", "audio_path")}
    request = GenerationRequest(image=kw.get("image"), audio=kw.get("audio"), seed=seed,
                                image_path=kw.get("image_path"), audio_path=kw.get("audio_path"))
    gen = get_generator(name)(**params)
    return gen.generate(request, (lambda i, n: calls.append((i, n))) if calls is not None else None)


def _mouth_track(clip: Clip) -> np.ndarray:
    tracker = FaceTracker(redetect_every=5)
    out = []
    for i, frame in enumerate(clip.iter_frames()):
        face = tracker.track(frame, i)
        out.append(face.mouth_opening() if face is not None else np.nan)
    return np.array(out)


def _corr_at_lag(x: np.ndarray, y: np.ndarray, lag: int) -> float:
    a = x[max(0, lag):len(x) + min(0, lag)]
    b = y[max(0, -lag):len(y) + min(0, -lag)]
    ok = ~np.isnan(a) & ~np.isnan(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


# --------------------------------------------------------------------------------------------------
# samples
# --------------------------------------------------------------------------------------------------
def test_samples_are_small_and_well_formed(samples: Path, portrait: np.ndarray) -> None:
    total = sum(p.stat().st_size for p in samples.rglob("*") if p.is_file())
    assert total < 1.5 * 1024 * 1024, f"data/ is {total / 1e6:.2f} MB; keep it commit-sized"
    assert portrait.shape == (512, 512, 3)
    face = largest_face(portrait)
    assert face is not None and 0.2 < face.width / 512 < 0.5  # head-and-shoulders framing
    assert largest_face(load_image(samples / "images" / "landscape.png")) is None
    for name in ("hello.wav", "counting.wav"):
        audio = load_audio(samples / "audio" / name)
        assert audio.sample_rate == 16_000 and 2.0 <= audio.duration <= 4.0 and audio.rms > 0.01


# --------------------------------------------------------------------------------------------------
# registry and static
# --------------------------------------------------------------------------------------------------
def test_registered_with_explicit_defaults() -> None:
    for name, task in [("static", "image-to-video"), ("kenburns", "image-to-video"), ("puppet", "audio-to-video")]:
        cls = get_generator(name)
        info = cls.describe()
        assert info["task"] == task and info["weights"] is None and info["defaults"]["fps"] == 25
    assert get_generator("puppet").requires == frozenset({"image", "audio"})
    with pytest.raises(GenerationError, match="unknown parameter.*zoomm"):
        get_generator("kenburns")(zoomm=2.0)


def test_static_holds_the_image(portrait: np.ndarray, counting: Audio) -> None:
    calls: list = []
    clip = _run("static", image=portrait, calls=calls)
    assert clip.frames.shape == (75, 256, 256, 3) and clip.fps == 25 and clip.audio is None  # kenburns' 3 s
    assert calls[-1] == (75, 75) and len(calls) == 75
    assert np.array_equal(clip.frames[0], fit_image(portrait, 256, 256))
    assert all(np.array_equal(f, clip.frames[0]) for f in clip.frames)
    timed = _run("static", image=portrait, audio=counting, width=128, height=96, fps=10)
    assert timed.frames.shape[1:3] == (96, 128)
    assert abs(timed.duration - counting.duration) <= 0.5 / 10 and timed.audio is counting
    assert _run("static", image=portrait, num_frames=7).num_frames == 7
    with pytest.raises(GenerationError, match="needs an image"):
        _run("static")


# --------------------------------------------------------------------------------------------------
# kenburns
# --------------------------------------------------------------------------------------------------
def test_kenburns_moves_smoothly_and_deterministically(samples: Path) -> None:
    image = load_image(samples / "images" / "landscape.png")
    calls: list = []
    clip = _run("kenburns", image=image, seed=3, calls=calls)
    assert clip.frames.shape == (75, 256, 256, 3) and clip.fps == 25 and len(calls) == 75
    f = clip.frames.astype(np.float32)
    steps = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))
    overall = float(np.abs(f[-1] - f[0]).mean())
    assert overall > 8.0, "first and last frames should differ clearly"
    assert steps.max() < 0.15 * overall, "consecutive frames should differ only a little"
    # ease-in-out: it starts and ends slowly and moves fastest in the middle, with no jitter spikes
    assert steps[0] < 0.5 * steps[len(steps) // 2] and steps[-1] < 0.5 * steps[len(steps) // 2]
    mid = steps[5:-5]
    assert np.abs(np.diff(mid)).max() < 0.25 * mid.max()
    again = _run("kenburns", image=image, seed=3)
    assert np.array_equal(again.frames, clip.frames)
    others = [_run("kenburns", image=image, seed=s, num_frames=5).frames[-1] for s in range(4)]
    assert any(not np.array_equal(others[0], o) for o in others[1:]), "the seed should pick the direction"


def test_kenburns_without_zoom_is_the_still(portrait: np.ndarray) -> None:
    clip = _run("kenburns", image=portrait, zoom=1.0, num_frames=4, width=200, height=120)
    target = fit_image(portrait, 200, 120).astype(int)
    assert all(np.abs(f.astype(int) - target).max() <= 1 for f in clip.frames)
    with pytest.raises(GenerationError, match="zoom"):
        _run("kenburns", image=portrait, zoom=0.5)


# --------------------------------------------------------------------------------------------------
# puppet
# --------------------------------------------------------------------------------------------------
def test_speech_envelope_is_centred_on_the_sound() -> None:
    sr, fps = 16_000, 25
    t = np.arange(int(3.0 * sr)) / sr
    x = np.where((t >= 1.0) & (t < 1.4), 0.5 * np.sin(2 * np.pi * 220 * t), 0.0) + 1e-4 * np.sin(2 * np.pi * 50 * t)
    env = speech_envelope(Audio(x, sr), fps, 75)
    centre = (np.arange(75) + 0.5) / fps
    assert env.min() >= 0 and env.max() <= 1
    assert np.all(env[(centre > 1.1) & (centre < 1.3)] > 0.8)
    assert np.all(env[(centre < 0.85) | (centre > 1.55)] == 0.0)
    weights = env / env.sum()
    assert abs(float((weights * centre).sum()) - 1.2) < 0.5 / fps, "the envelope must not lag the audio"
    hi_rate = Audio(x, sr).resample(44_100)  # any input rate: analysed at 16 kHz
    assert np.abs(speech_envelope(hi_rate, fps, 75) - env).max() < 0.05


def test_puppet_mouth_follows_the_speech(portrait: np.ndarray, counting: Audio) -> None:
    calls: list = []
    clip = _run("puppet", image=portrait, audio=counting, size=256, seed=1, calls=calls)
    assert clip.fps == 25 and clip.frames.shape[1:] == (256, 256, 3)
    assert abs(clip.duration - counting.duration) <= 0.5 / 25 and clip.audio is counting
    assert len(calls) == clip.num_frames
    env = speech_envelope(counting, clip.fps, clip.num_frames)
    mouth = _mouth_track(clip)
    assert np.isnan(mouth).mean() < 0.05
    r0 = _corr_at_lag(mouth, env, 0)
    assert r0 > 0.8, f"dlib mouth opening vs speech envelope: Pearson {r0:.2f}"
    assert r0 > max(_corr_at_lag(mouth, env, k) for k in (-3, -2, 2, 3)) + 0.05, "mouth must move in step"
    silent = env == 0
    assert np.nanmean(mouth[~silent]) > np.nanmean(mouth[silent]) + 0.08  # opens when speaking, rests in pauses
    again = _run("puppet", image=portrait, audio=counting, size=256, seed=1)
    assert np.array_equal(again.frames, clip.frames)
    other = _run("puppet", image=portrait, audio=counting, size=256, seed=2)
    assert not np.array_equal(other.frames, clip.frames)


def test_puppet_on_real_portraits(media_dir: Path, samples: Path) -> None:
    audio = load_audio(samples / "audio" / "hello.wav")
    for name in ("sadtalker_happy.png", "hallo_6.jpg"):
        clip = _run("puppet", image=load_image(media_dir / "faces" / name), audio=audio, size=320)
        env = speech_envelope(audio, clip.fps, clip.num_frames)
        r = _corr_at_lag(_mouth_track(clip), env, 0)
        assert r > 0.8, f"{name}: mouth vs envelope Pearson {r:.2f}"


def test_puppet_blinks_close_the_eyes(portrait: np.ndarray, counting: Audio) -> None:
    clip = _run("puppet", image=portrait, audio=counting, size=384, max_open=0.0, sway=0.0, blink_every=1.0)
    rest = clip.frames[0].astype(np.int16)
    face = largest_face(clip.frames[0])
    changed = np.array([np.abs(f.astype(np.int16) - rest).max(axis=2) > 12 for f in clip.frames])
    per_frame = changed.sum(axis=(1, 2))
    blinking = np.flatnonzero(per_frame > 20)
    assert 2 <= len(np.flatnonzero(np.diff(blinking) > 1)) + 1 <= 5, "about one blink a second"
    ys, xs = np.nonzero(changed.any(axis=0))
    eyes = face.landmarks[36:48]
    assert ys.min() >= eyes[:, 1].min() - 0.6 * face.width and ys.max() <= eyes[:, 1].max() + 0.1 * face.width
    assert xs.min() >= eyes[:, 0].min() - 10 and xs.max() <= eyes[:, 0].max() + 10
    shut = clip.frames[int(np.argmax(per_frame))]
    assert largest_face(shut).eye_aspect_ratio() < 0.6 * face.eye_aspect_ratio()
    assert len(_run("puppet", image=portrait, audio=counting, size=256, max_open=0.0, sway=0.0, blink_every=0.0)
               .frames) == clip.num_frames


def test_puppet_refuses_bad_inputs(samples: Path, portrait: np.ndarray, counting: Audio) -> None:
    landscape = samples / "images" / "landscape.png"
    with pytest.raises(GenerationError, match=r"landscape\.png: no face found; pass a frontal portrait"):
        _run("puppet", image=load_image(landscape), audio=counting, image_path=str(landscape))
    with pytest.raises(GenerationError, match=r"^image: no face found"):
        _run("puppet", image=load_image(landscape), audio=counting)
    with pytest.raises(GenerationError, match=r"audio: audio is empty"):
        _run("puppet", image=portrait, audio=Audio(np.zeros(0, np.float32), 16_000))
    with pytest.raises(GenerationError, match="needs audio"):
        _run("puppet", image=portrait)


def test_puppet_clip_saves_and_reopens_with_audio(tmp_path: Path, portrait: np.ndarray, samples: Path) -> None:
    audio = load_audio(samples / "audio" / "hello.wav")
    clip = _run("puppet", image=portrait, audio=audio, size=256)
    path = clip.save(tmp_path / "puppet.mp4")
    back = Clip.open(path)
    assert back.size == (256, 256) and back.fps == 25
    assert abs(back.num_frames - clip.num_frames) <= 1
    assert back.audio is not None and abs(back.audio.duration - audio.duration) < 0.1
    first = back.first_frame().astype(np.float32)
    assert np.abs(first - clip.frames[0]).mean() < 4.0


def test_puppet_rests_its_mouth_on_silence(portrait: np.ndarray) -> None:
    """Silent audio (a deliberate 'does it keep still?' case, or a mistake the Runner records as a
    warning) makes a clip of the audio's length whose mouth stays shut: the noise floor never opens it."""
    hiss = Audio((1e-5 * np.random.default_rng(0).normal(size=32_000)).astype(np.float32), 16_000)
    assert hiss.is_silent
    clip = _run("puppet", image=portrait, audio=hiss, audio_path="quiet.wav", size=256, sway=0.0, blink_every=0.0)
    assert clip.num_frames == 50
    assert np.abs(clip.frames.astype(np.int16) - clip.frames[:1]).max() <= 1  # nothing moves


@pytest.mark.parametrize("model", ["puppet", "static", "kenburns"])
def test_audio_too_short_for_a_clip_is_refused(portrait: np.ndarray, model: str) -> None:
    """A few milliseconds of audio (what a cut file holds) would make a 1-frame 'ok' clip."""
    blip = Audio((0.3 * np.sin(np.arange(100) / 3)).astype(np.float32), 16_000)
    with pytest.raises(GenerationError, match=r"^cut\.wav: audio is only 0\.006 s long, too short for a clip "
                                              r"\(at least 0\.2 s\)"):
        _run(model, image=portrait, audio=blip, audio_path="cut.wav")
