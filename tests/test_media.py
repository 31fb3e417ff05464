"""Media I/O: round trips, real clips, image normalisation and clear errors on bad files."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from workbench.media import Audio, Clip, MediaError, fit_image, load_audio, load_image, write_video


def _frames(t=20, h=48, w=64):
    """A smooth colour gradient panning sideways (survives 4:2:0 chroma subsampling)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = [np.stack([(x + 2 * i) * 255 / (w + 2 * t), y * 255 / h, 128 + 0 * x], -1) for i in range(t)]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def _tone(seconds=1.0, sr=16000, f=220.0):
    t = np.arange(int(seconds * sr)) / sr
    return Audio((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr)


def test_roundtrip_with_audio(tmp_path):
    clip = Clip.from_frames(_frames(25), fps=25, audio=_tone(1.0))
    path = clip.save(tmp_path / "a.mp4")
    back = Clip.open(path)
    assert back.num_frames == 25
    assert back.fps == pytest.approx(25.0)
    assert back.size == (64, 48)
    assert back.audio is not None
    assert abs(back.audio.duration - 1.0) <= 1 / 25  # within one frame
    frames = back.to_array()
    assert frames.shape == (25, 48, 64, 3) and frames.dtype == np.uint8
    # H.264 at crf 18 keeps the picture close to the source
    assert np.abs(frames.astype(int) - clip.frames.astype(int)).mean() < 3


def test_saved_stream_is_h264_yuv420p_aac(tmp_path):
    import av

    path = Clip.from_frames(_frames(10), fps=12, audio=_tone(10 / 12)).save(tmp_path / "b.mp4")
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264"
        assert v.codec_context.pix_fmt == "yuv420p"
        assert a.codec_context.name == "aac"


def test_odd_dimensions_are_padded_even(tmp_path):
    clip = Clip.from_frames(_frames(5, h=33, w=51), fps=10)
    back = Clip.open(clip.save(tmp_path / "odd.mp4"))
    assert back.size == (52, 34)


def test_open_is_lazy_and_streams(tmp_path):
    path = write_video(tmp_path / "s.mp4", (f for f in _frames(30)), fps=30)
    clip = Clip.open(path)
    assert clip.frames is None  # nothing decoded yet
    it = clip.iter_frames()
    first = next(it)
    assert first.shape == (48, 64, 3)
    assert sum(1 for _ in it) == 29


def test_iter_frames_caps_size(tmp_path):
    clip = Clip.from_frames(_frames(3, h=100, w=200), fps=10)
    f = next(clip.iter_frames(max_side=50))
    assert max(f.shape[:2]) == 50


def test_audio_resample_and_shift():
    a = _tone(2.0, sr=44100)
    b = a.resample(16000)
    assert b.sample_rate == 16000 and len(b.samples) == 32000
    # the tone's frequency survives resampling: peak of the spectrum at 220 Hz
    spec = np.abs(np.fft.rfft(b.samples))
    assert np.argmax(spec) * 16000 / len(b.samples) == pytest.approx(220, abs=1)
    s = Audio(np.arange(10, dtype=np.float32), 10).shift(0.3)
    assert s.samples.tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]


def test_wav_roundtrip(tmp_path):
    a = _tone(0.5)
    back = load_audio(a.save_wav(tmp_path / "t.wav"))
    assert back.sample_rate == 16000 and np.abs(back.samples - a.samples).max() < 1e-3


def test_image_modes_become_rgb(tmp_path):
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent red -> white background
    rgba.save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.shape == (30, 40, 3) and (img == 255).all()
    Image.new("L", (20, 10), 77).save(tmp_path / "g.png")
    assert (load_image(tmp_path / "g.png") == 77).all()
    Image.new("P", (20, 10), 3).save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (10, 20, 3)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (60, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (60, 20, 3)


def test_huge_image_is_downscaled(tmp_path):
    Image.new("RGB", (5000, 2500), (10, 20, 30)).save(tmp_path / "big.png")
    assert load_image(tmp_path / "big.png", max_side=1024).shape == (512, 1024, 3)
    assert load_image(tmp_path / "big.png", max_side=None).shape == (2500, 5000, 3)


def test_fit_image_exact_size():
    assert fit_image(np.zeros((300, 200, 3), np.uint8), 128, 96).shape == (96, 128, 3)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_bad_video_files_raise_clear_errors(tmp_path, content):
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    with pytest.raises(MediaError, match="bad.mp4"):
        Clip.open(p).first_frame()


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(MediaError, match="nope.mp4: file not found"):
        Clip.open(tmp_path / "nope.mp4")
    with pytest.raises(MediaError, match="nope.png: image not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(MediaError, match="x.png: not a readable image"):
        load_image(tmp_path / "x.png")


def test_video_without_audio_track_errors_for_audio(tmp_path):
    p = Clip.from_frames(_frames(4), fps=10).save(tmp_path / "silent.mp4")
    with pytest.raises(MediaError, match="no audio track"):
        load_audio(p)


@pytest.mark.media
def test_real_talking_clips_decode_with_audio(media_dir):
    for path in sorted((media_dir / "talking").glob("*.mp4")):
        clip = Clip.open(path)
        assert clip.size == (224, 224) and clip.fps == pytest.approx(25)
        assert clip.audio is not None and clip.audio.sample_rate == 16000
        n = sum(1 for _ in clip.iter_frames())
        assert abs(n - clip.num_frames) <= 1
        assert abs(clip.audio.duration - n / clip.fps) < 0.2, path.name


@pytest.mark.media
def test_real_rgba_and_huge_portraits(media_dir):
    assert load_image(media_dir / "faces" / "sadtalker_happy1.png").shape[2] == 3
    big = load_image(media_dir / "faces" / "hallo_7.jpg", max_side=1024)
    assert big.shape == (1024, 1024, 3)


@pytest.mark.parametrize("ext,codec", [(".m4a", "aac"), (".mp3", "mp3")])
def test_compressed_audio_files_decode(tmp_path, ext, codec):
    """m4a (AAC) and mp3 speech files load as mono float32 at their own rate, same duration."""
    import av

    a = _tone(1.0, sr=16000 if codec == "aac" else 22050, f=300.0)
    path = tmp_path / f"speech{ext}"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=a.sample_rate)
        s.layout = "mono"
        fmt = s.codec_context.format.name
        rs = av.AudioResampler(format=fmt, layout="mono", rate=a.sample_rate)
        for start in range(0, len(a.samples), 1152):
            f = av.AudioFrame.from_ndarray(a.samples[None, start:start + 1152], format="fltp", layout="mono")
            f.sample_rate = a.sample_rate
            for rf in rs.resample(f):
                for p in s.encode(rf):
                    c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    back = load_audio(path)
    assert back.sample_rate == a.sample_rate and back.samples.dtype == np.float32
    assert abs(back.duration - 1.0) < 0.1  # encoder priming/padding is a few ms
    spec = np.abs(np.fft.rfft(back.samples))
    assert np.argmax(spec) * back.sample_rate / len(back.samples) == pytest.approx(300, abs=3)
    assert load_audio(path, sample_rate=16000).sample_rate == 16000


# --- bad inputs: one line naming the file and the fix (issue 15) ---------------------------------------
def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    """A 20000x20000 1-bit PNG is ~50 KB on disk and 1.2 GB as RGB: refused before decoding, both when
    PIL's own guard fires inside Image.open (400 MP) and when our lower limit does (120 MP)."""
    import time

    from workbench.media import MAX_IMAGE_PIXELS

    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")
    Image.new("1", (12000, 10000)).save(tmp_path / "scan.png")
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    t0 = time.perf_counter()
    with pytest.raises(MediaError) as e:
        load_image(tmp_path / "bomb.png")
    assert time.perf_counter() - t0 < 2.0  # nothing was decoded
    msg = str(e.value)
    assert "bomb.png: image is 400 megapixels, above the limit of 100 megapixels" in msg and "resize" in msg
    with pytest.raises(MediaError, match=r"scan\.png: image is 12000x10000 \(120 megapixels\), above the limit"):
        load_image(tmp_path / "scan.png")
    assert MAX_IMAGE_PIXELS == 100_000_000


def test_non_regular_files_are_refused_without_reading(tmp_path):
    import os

    from workbench.media import input_problem

    os.mkfifo(tmp_path / "pipe.png")  # reading it would block forever
    with pytest.raises(MediaError, match=r"pipe\.png: image is not a regular file \(a pipe"):
        load_image(tmp_path / "pipe.png")
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(MediaError, match=r"pipe\.wav: audio is not a regular file"):
        load_audio(tmp_path / "pipe.wav")
    os.mkfifo(tmp_path / "pipe.mp4")
    with pytest.raises(MediaError, match=r"pipe\.mp4: file is not a regular file"):
        Clip.open(tmp_path / "pipe.mp4")
    with pytest.raises(MediaError, match="image is a folder, not a file"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.png: image is empty \(0 bytes\)"):
        load_image(tmp_path / "empty.png")
    assert input_problem("video", tmp_path / "pipe.mp4").endswith("is not a regular file (a pipe, socket or device); pass a media file")
    Image.new("RGB", (4, 4)).save(tmp_path / "still.png")
    assert "still.png: not a video file; pass one of .avi, .gif, .m4v" in input_problem("video", tmp_path / "still.png")


def test_sixteen_bit_and_cmyk_images_keep_their_colours(tmp_path):
    grey16 = (np.full((10, 20), 32768, np.uint16))  # mid grey in 16 bits
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert np.abs(load_image(tmp_path / "g16.png").astype(int) - 128).max() <= 1  # no contrast stretch
    dark = np.full((10, 20), 2000, np.uint16)
    dark[0, 0] = 4000  # a dark 16-bit image stays dark (stretching would make it span 0..255)
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert load_image(tmp_path / "dark16.png").max() <= 16
    Image.new("CMYK", (20, 10), (0, 255, 255, 0)).save(tmp_path / "red.jpg")  # red in CMYK
    rgb = load_image(tmp_path / "red.jpg")
    assert rgb.shape == (10, 20, 3) and rgb[..., 0].mean() > 200 and rgb[..., 1:].mean() < 60
    Image.new("LA", (20, 10), (0, 0)).save(tmp_path / "la.png")  # transparent -> white
    assert (load_image(tmp_path / "la.png") == 255).all()


def test_corrupt_image_is_one_line(tmp_path):
    Image.new("RGB", (64, 64), (200, 10, 10)).save(tmp_path / "full.png")
    raw = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MediaError) as e:
        load_image(tmp_path / "cut.png")
    assert str(e.value).startswith(str(tmp_path / "cut.png")) and "re-export it" in str(e.value)
    assert "\n" not in str(e.value)


def _wav_bytes(seconds: float = 1.0, sr: int = 16000) -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((0.3 * 32767 * np.sin(np.arange(int(seconds * sr)) / 5)).astype("<i2").tobytes())
    return buf.getvalue()


def test_truncated_wav_is_refused_naming_both_lengths(tmp_path):
    raw = _wav_bytes(2.8)
    (tmp_path / "header_only.wav").write_bytes(raw[:44])  # header claims 2.8 s, no data
    with pytest.raises(MediaError, match=r"header_only\.wav: audio is truncated: its header states 2\.80 s but "
                                         r"the file holds 0\.00 s; re-export or re-download it"):
        load_audio(tmp_path / "header_only.wav")
    (tmp_path / "half.wav").write_bytes(raw[: 44 + (len(raw) - 44) // 2])
    with pytest.raises(MediaError, match=r"states 2\.80 s but the file holds 1\.40 s"):
        load_audio(tmp_path / "half.wav")
    (tmp_path / "whole.wav").write_bytes(raw)
    assert load_audio(tmp_path / "whole.wav").duration == pytest.approx(2.8)


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_streamed_wav_with_a_size_placeholder_reads_to_the_end(tmp_path, size):
    import struct

    raw = bytearray(_wav_bytes(1.0))
    raw[4:8] = raw[40:44] = struct.pack("<I", size)  # what a writer to a pipe leaves in the header
    (tmp_path / "streamed.wav").write_bytes(bytes(raw))
    assert load_audio(tmp_path / "streamed.wav").duration == pytest.approx(1.0, abs=0.01)


def test_eight_bit_and_8khz_wavs_load_centred(tmp_path):
    import wave

    with wave.open(str(tmp_path / "u8.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(1)
        w.setframerate(8000)
        tone = (128 + 100 * np.sin(np.arange(8000) / 3)).astype(np.uint8)
        w.writeframes(np.repeat(tone, 2).tobytes())
    a = load_audio(tmp_path / "u8.wav")
    assert a.sample_rate == 8000 and a.duration == pytest.approx(1.0)
    assert abs(float(a.samples.mean())) < 0.02 and 0.7 < float(a.samples.max()) <= 1.0
    assert load_audio(tmp_path / "u8.wav", sample_rate=16000).sample_rate == 16000


def test_the_same_frames_always_encode_to_the_same_file(media_dir, tmp_path):
    """A clip made again is the same file: with libx264's macroblock-tree rate control on, encodes of these
    frames (real footage with a slight flicker) differed from one encode to the next in one process; off, every
    encode, in this process or a fresh one, is the same file."""
    import hashlib
    import subprocess
    import sys

    script = (
        "import hashlib, sys, numpy as np\n"
        "from workbench.media import Clip, write_video\n"
        "frames = []\n"
        "for i, f in enumerate(Clip.open(sys.argv[2]).iter_frames()):\n"
        "    if i >= 50:\n"
        "        break\n"
        "    frames.append(np.clip(f.astype(int) + i % 7, 0, 255).astype(np.uint8))\n"
        "for k in range(4):\n"
        "    p = write_video(f'{sys.argv[1]}/{k}.mp4', iter(frames), 25)\n"
        "    print(hashlib.sha256(p.read_bytes()).hexdigest())\n")
    source = str(media_dir / "talking" / "00086.mp4")
    runs = [subprocess.run([sys.executable, "-c", script, str(tmp_path), source], capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    hashes = runs[0] + runs[1]
    assert len(hashes) == 8 and len(set(hashes)) == 1, hashes
