"""Media I/O: `Clip` (video + optional `Audio`), `Audio`, and image loading.

Everything decodes and encodes through PyAV. A `Clip` opened from a file is lazy: `iter_frames()`
decodes one frame at a time, so memory does not grow with clip length. A `Clip` built from an
array holds its frames. Errors are `MediaError` with one line naming the file and the fix.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

DEFAULT_MAX_IMAGE_SIDE = 1024
SILENT_RMS = 1e-4  # below this RMS (full scale 1.0) a track holds no speech: generators and lip-sync refuse it


class MediaError(ValueError):
    """A media file is missing, unreadable or unsuitable; the message names the file and the fix."""


# --------------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------------
@dataclass
class Audio:
    """Mono float32 samples in [-1, 1] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        s = np.asarray(self.samples, dtype=np.float32)
        if s.ndim == 2:  # (channels, n) or (n, channels): mix down
            s = s.mean(axis=0 if s.shape[0] <= 8 else 1)
        self.samples = np.ascontiguousarray(s.reshape(-1))
        self.sample_rate = int(self.sample_rate)
        if self.sample_rate <= 0:
            raise MediaError(f"audio sample rate must be positive, got {self.sample_rate}")

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(self.samples.astype(np.float64) ** 2))) if len(self.samples) else 0.0

    @property
    def is_silent(self) -> bool:
        """Empty, or quieter than SILENT_RMS: nothing to drive or score lip motion with."""
        return self.rms < SILENT_RMS

    def resample(self, sample_rate: int) -> "Audio":
        """Band-limited polyphase resampling (scipy) to `sample_rate`."""
        sample_rate = int(sample_rate)
        if sample_rate == self.sample_rate:
            return Audio(self.samples.copy(), sample_rate)
        from scipy.signal import resample_poly

        g = math.gcd(sample_rate, self.sample_rate)
        out = resample_poly(self.samples, sample_rate // g, self.sample_rate // g).astype(np.float32)
        return Audio(out, sample_rate)

    def shift(self, seconds: float) -> "Audio":
        """Delay (positive) or advance (negative) the audio, keeping its length (zero padded)."""
        n = int(round(seconds * self.sample_rate))
        out = np.zeros_like(self.samples)
        if n >= 0:
            out[n:] = self.samples[: len(self.samples) - n] if n < len(self.samples) else []
        else:
            out[: len(out) + n] = self.samples[-n:]
        return Audio(out, self.sample_rate)

    def trim(self, seconds: float) -> "Audio":
        return Audio(self.samples[: int(round(seconds * self.sample_rate))].copy(), self.sample_rate)

    @classmethod
    def load(cls, path: str | Path, sample_rate: int | None = None) -> "Audio":
        """Read the first audio stream of a wav/mp3/m4a/flac/mp4 file as mono float32."""
        return load_audio(path, sample_rate)

    def save_wav(self, path: str | Path) -> Path:
        """Write 16-bit PCM wav (stdlib `wave`)."""
        import wave

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pcm = (np.clip(self.samples, -1, 1) * 32767).astype("<i2")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(pcm.tobytes())
        return path


def _open_container(path: Path):
    import av

    if not path.exists():
        raise MediaError(f"{path}: file not found; check the path")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty; re-export or replace it")
    try:
        return av.open(str(path))
    except Exception as e:  # av.error.InvalidDataError and friends
        raise MediaError(f"{path}: cannot be decoded ({type(e).__name__}: {e}); re-encode it as H.264 mp4 / wav") from None


def load_audio(path: str | Path, sample_rate: int | None = None) -> Audio:
    """Decode the first audio stream of `path` to mono float32, optionally resampled."""
    path = Path(path)
    if path.suffix.lower() == ".wav":
        try:
            return _load_wav(path, sample_rate)
        except MediaError:
            raise
        except Exception:
            pass  # not PCM wav (e.g. float or adpcm): fall back to PyAV
    container = _open_container(path)
    try:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio track; pass a file with speech audio (wav/mp3/m4a/mp4)")
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        rate = stream.codec_context.sample_rate or stream.rate
        try:
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if arr.dtype.kind == "i":
                    arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
                arr = arr.astype(np.float32)
                if frame.format.is_planar:
                    arr = arr.mean(axis=0)
                else:  # packed: (1, n*channels)
                    ch = len(frame.layout.channels)
                    arr = arr.reshape(-1, ch).mean(axis=1)
                chunks.append(arr)
        except Exception as e:
            if not chunks:
                raise MediaError(f"{path}: audio cannot be decoded ({e}); re-encode it as wav") from None
    finally:
        container.close()
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise MediaError(f"{path}: audio track is empty; pass a file with speech audio")
    audio = Audio(samples, int(rate))
    return audio.resample(sample_rate) if sample_rate else audio


def _load_wav(path: Path, sample_rate: int | None) -> Audio:
    import wave

    if not path.exists():
        raise MediaError(f"{path}: file not found; check the path")
    with wave.open(str(path), "rb") as w:
        n, ch, width, rate = w.getnframes(), w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(n)
    if width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    elif width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        raise ValueError("unsupported width")
    x = x.reshape(-1, ch).mean(axis=1)
    if x.size == 0:
        raise MediaError(f"{path}: audio is empty (0 samples); pass a file with speech audio")
    audio = Audio(x, rate)
    return audio.resample(sample_rate) if sample_rate else audio


# --------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------
def load_image(path: str | Path, max_side: int | None = DEFAULT_MAX_IMAGE_SIDE) -> np.ndarray:
    """Load an image as uint8 RGB (H, W, 3).

    Applies EXIF orientation, flattens alpha onto white, converts palette/greyscale/CMYK/16-bit to
    RGB and downscales (Lanczos) so the longer side is at most `max_side` (None keeps full size).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: image not found; check the path")
    try:
        Image.MAX_IMAGE_PIXELS = 40000 * 40000
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return image_to_rgb(im, max_side)
    except UnidentifiedImageError:
        raise MediaError(f"{path}: not a readable image; save it as PNG or JPEG") from None
    except OSError as e:
        raise MediaError(f"{path}: image is corrupt or truncated ({e}); re-export it as PNG or JPEG") from None


def image_to_rgb(im, max_side: int | None = DEFAULT_MAX_IMAGE_SIDE) -> np.ndarray:
    """Convert a PIL image or array (any mode, RGBA included) to uint8 RGB, capped at `max_side`."""
    from PIL import Image

    if isinstance(im, np.ndarray):
        arr = im
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        im = Image.fromarray(arr)
    if im.mode in ("I;16", "I;16B", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        a = (a - a.min()) / max(a.max() - a.min(), 1e-9) * 255.0
        im = Image.fromarray(a.astype(np.uint8))
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im.convert("RGBA"))
    im = im.convert("RGB")
    if max_side and max(im.size) > max_side:
        scale = max_side / float(max(im.size))
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
    return np.asarray(im, dtype=np.uint8).copy()


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize-and-centre-crop an RGB image to exactly (height, width)."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    im = Image.fromarray(image).resize((nw, nh), Image.LANCZOS)
    left, top = (nw - width) // 2, (nh - height) // 2
    return np.asarray(im.crop((left, top, left + width, top + height)), dtype=np.uint8).copy()


# --------------------------------------------------------------------------------------------------
# Clip
# --------------------------------------------------------------------------------------------------
@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    has_audio: bool


@dataclass
class Clip:
    """Video frames (uint8 RGB) at `fps`, with optional `Audio`.

    Build one with `Clip.from_frames(...)` (in memory) or `Clip.open(path)` (lazy, streamed).
    `iter_frames()` yields (H, W, 3) uint8 arrays one at a time in both cases.
    """

    fps: float
    audio: Audio | None = None
    frames: np.ndarray | None = None  # (T, H, W, 3) uint8 when in memory
    path: Path | None = None
    _info: VideoInfo | None = field(default=None, repr=False)
    decoded_frames: int | None = field(default=None, repr=False)  # set after a full pass over a file

    def truncation_warning(self) -> str | None:
        """One line when the last full decode yielded clearly fewer frames than the container states
        (a truncated file that still decodes: it was scored on what decodes)."""
        if self.path is None or self.decoded_frames is None or self._info is None:
            return None
        stated = self._info.num_frames
        if stated and self.decoded_frames < stated - max(2, round(0.02 * stated)):
            return (f"{self.path.name}: decoded {self.decoded_frames} of {stated} frames the container states "
                    f"({self.decoded_frames / self.fps:.2f} s of {self._info.duration:.2f} s); the file looks "
                    f"truncated, scores cover the decodable part only")
        return None

    # construction --------------------------------------------------------------------------------
    @classmethod
    def from_frames(cls, frames: np.ndarray | Sequence[np.ndarray], fps: float, audio: Audio | None = None) -> "Clip":
        arr = np.asarray(frames)
        if arr.ndim != 4 or arr.shape[-1] not in (3, 4):
            raise MediaError(f"frames must be (T, H, W, 3), got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise MediaError("a clip needs at least one frame")
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if float(arr.max()) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        arr = np.ascontiguousarray(arr[..., :3])
        if not (fps and fps > 0):
            raise MediaError(f"fps must be positive, got {fps}")
        return cls(fps=float(fps), audio=audio, frames=arr)

    @classmethod
    def open(cls, path: str | Path, load_audio_track: bool = True) -> "Clip":
        """Open a video lazily: reads the header (and audio track) now, decodes frames on iteration."""
        path = Path(path)
        container = _open_container(path)
        try:
            if not container.streams.video:
                raise MediaError(f"{path}: has no video stream; pass a video file (mp4/mov/mkv)")
            vs = container.streams.video[0]
            fps = float(vs.average_rate or vs.guessed_rate or 0) or 25.0
            n = int(vs.frames or 0)
            dur = float(vs.duration * vs.time_base) if vs.duration else (
                float(container.duration) / 1e6 if container.duration else 0.0)
            if n <= 0:
                n = int(round(dur * fps)) if dur else 0
            info = VideoInfo(vs.codec_context.width, vs.codec_context.height, fps, n, dur or n / fps,
                             bool(container.streams.audio))
        finally:
            container.close()
        audio = None
        if load_audio_track and info.has_audio:
            try:
                audio = load_audio(path)
            except MediaError:
                audio = None
        clip = cls(fps=fps, audio=audio, path=path, _info=info)
        return clip

    # properties ------------------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        if self.frames is not None:
            return int(self.frames.shape[2]), int(self.frames.shape[1])
        assert self._info is not None
        return self._info.width, self._info.height

    @property
    def num_frames(self) -> int:
        if self.frames is not None:
            return int(self.frames.shape[0])
        assert self._info is not None
        return self._info.num_frames

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def __len__(self) -> int:
        return self.num_frames

    # access ----------------------------------------------------------------------------------------
    def iter_frames(self, max_side: int | None = None) -> Iterator[np.ndarray]:
        """Yield uint8 RGB frames one at a time (decoded lazily for file-backed clips)."""
        if self.frames is not None:
            for f in self.frames:
                yield cap_side(f, max_side)
            return
        assert self.path is not None
        container = _open_container(self.path)
        count = 0
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                count += 1
                yield cap_side(frame.to_ndarray(format="rgb24"), max_side)
        except MediaError:
            raise
        except Exception as e:
            if count == 0:
                raise MediaError(f"{self.path}: video cannot be decoded ({type(e).__name__}); re-encode it as H.264 mp4") from None
            # a truncated tail: keep what decoded, like ffmpeg does
        finally:
            container.close()
        if count == 0:
            raise MediaError(f"{self.path}: video has no decodable frames; re-encode it as H.264 mp4")
        self.decoded_frames = count

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_frames()

    def to_array(self, max_frames: int | None = None, max_side: int | None = None) -> np.ndarray:
        """The first `max_frames` frames (all when None) as one (T, H, W, 3) array, each capped at
        `max_side` (loads them all: use for short clips only)."""
        if self.frames is not None and not max_side:
            return self.frames[:max_frames] if max_frames else self.frames
        out = []
        for i, f in enumerate(self.iter_frames(max_side=max_side)):
            if max_frames and i >= max_frames:
                break
            out.append(f)
        return np.stack(out)

    def load(self) -> "Clip":
        """An in-memory copy of this clip."""
        return Clip.from_frames(self.to_array(), self.fps, self.audio)

    def first_frame(self) -> np.ndarray:
        return next(iter(self.iter_frames()))

    def with_audio(self, audio: Audio | None) -> "Clip":
        return Clip(fps=self.fps, audio=audio, frames=self.frames, path=self.path, _info=self._info,
                    decoded_frames=self.decoded_frames)

    # output ----------------------------------------------------------------------------------------
    def save(self, path: str | Path, crf: int = 18, audio_bitrate: int = 128_000) -> Path:
        """Write H.264/yuv420p mp4 (even dimensions; odd ones are padded by one pixel) + AAC audio."""
        return write_video(path, self.iter_frames(), self.fps, self.audio, crf=crf, audio_bitrate=audio_bitrate)


def cap_side(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (area) so the longer side is at most `max_side`; unchanged when already small."""
    if not max_side or max(frame.shape[:2]) <= max_side:
        return frame
    import cv2

    h, w = frame.shape[:2]
    s = max_side / float(max(h, w))
    return cv2.resize(frame, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, audio: Audio | None = None,
                crf: int = 18, audio_bitrate: int = 128_000) -> Path:
    """Stream frames into an H.264 (yuv420p) mp4 with optional AAC audio; writes via a temp file."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.part-{os.getpid()}-{threading.get_ident() % 10**6}{path.suffix}")
    rate = Fraction(fps).limit_denominator(1001)
    try:
        container = av.open(str(tmp), mode="w")
    except OSError as e:
        raise MediaError(f"{path}: cannot write ({e.strerror or e}); check the folder's space and permissions") from None
    ok = False
    try:
        vstream = None
        astream = None
        if audio is not None and len(audio.samples):
            astream = container.add_stream("aac", rate=audio.sample_rate)
            astream.bit_rate = audio_bitrate
            try:
                astream.layout = "mono"
            except Exception:
                pass
        for frame in frames:
            frame = _even(np.ascontiguousarray(frame[..., :3], dtype=np.uint8))
            if vstream is None:
                vstream = container.add_stream("libx264", rate=rate)
                vstream.width, vstream.height = frame.shape[1], frame.shape[0]
                vstream.pix_fmt = "yuv420p"
                vstream.options = {"crf": str(crf), "preset": "veryfast"}
            for packet in vstream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        if vstream is None:
            raise MediaError(f"{path}: no frames to write")
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            _encode_audio(container, astream, audio)
        ok = True
    except OSError as e:  # disk full, permissions: one line, no temp file left behind
        raise MediaError(f"{path}: cannot write ({e.strerror or e}); check the folder's space and permissions") from None
    finally:
        try:
            container.close()
        except OSError as e:
            if ok:
                tmp.unlink(missing_ok=True)
                raise MediaError(f"{path}: cannot write ({e.strerror or e}); check the folder's space and permissions") from None
        if not ok:
            tmp.unlink(missing_ok=True)
    tmp.replace(path)
    return path


def _encode_audio(container, astream, audio: Audio) -> None:
    import av

    samples = np.clip(audio.samples, -1, 1).astype(np.float32)
    fmt = astream.codec_context.format.name if astream.codec_context.format else "fltp"
    chunk = 1024
    pts = 0
    for start in range(0, len(samples), chunk):
        block = samples[start:start + chunk][None, :]
        af = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
        af.sample_rate = audio.sample_rate
        af.pts = pts
        pts += block.shape[1]
        if fmt != "fltp":
            af = av.AudioResampler(format=fmt, layout="mono", rate=audio.sample_rate).resample(af)[0]
        for packet in astream.encode(af):
            container.mux(packet)
    for packet in astream.encode(None):
        container.mux(packet)

