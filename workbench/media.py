"""Media I/O: `Clip` (video + optional `Audio`), `Audio`, and image loading.

Everything decodes and encodes through PyAV. A `Clip` opened from a file is lazy: `iter_frames()`
decodes one frame at a time, so memory does not grow with clip length. A `Clip` built from an
array holds its frames. Errors are `MediaError` with one line naming the file and the fix.
"""
from __future__ import annotations

import math
import os
import stat
import threading
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

DEFAULT_MAX_IMAGE_SIDE = 1024
# larger images are refused before decoding (a 20000x20000 1-bit PNG is 48 KB on disk and 1.2 GB as RGB);
# generation and scoring downscale to DEFAULT_MAX_IMAGE_SIDE anyway
MAX_IMAGE_PIXELS = 100_000_000
SILENT_RMS = 1e-4  # below this RMS (full scale 1.0) a track holds no speech: generators and lip-sync refuse it


class MediaError(ValueError):
    """A media file is missing, unreadable or unsuitable; the message names the file and the fix."""


# what a file given as an input may be; anything else is refused before it is read or hashed
MEDIA_SUFFIXES: dict[str, set[str]] = {
    "image": {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"},
    "audio": {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".mp4", ".mov", ".mkv", ".webm"},
    "reference": {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"},
    "video": {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"},
}


def file_problem(path: Path, what: str = "file") -> str | None:
    """Why `path` cannot be read as a media file (missing, not a regular file, unreadable, empty), one
    line with the fix; None when it can. Checked without opening it, so a named pipe or a device never
    blocks a read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path}: {what} not found; check the path"
    except OSError as e:
        return f"{path}: {what} cannot be read ({e.strerror or e}); check the path and permissions"
    if stat.S_ISDIR(st.st_mode):
        return f"{path}: {what} is a folder, not a file; pass a media file inside it"
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: {what} is not a regular file (a pipe, socket or device); pass a media file"
    if not os.access(path, os.R_OK):
        return f"{path}: {what} is not readable; fix its permissions"
    if st.st_size == 0:
        return f"{path}: {what} is empty (0 bytes); re-export or replace it"
    return None


def input_problem(kind: str, path: str | Path) -> str | None:
    """Why `path` cannot be a `kind` input ("image", "audio", "reference", "video"): one line with
    the fix, checked without reading it (the suffix too, so a stray secret is never read or hashed).
    `workbench run` (per job) and `workbench eval` (per option) both use it."""
    path = Path(path)
    why = file_problem(path, kind)
    if why:
        return why
    allowed = MEDIA_SUFFIXES[kind]
    if path.suffix.lower() not in allowed:
        return f"{path}: not a{'n' if kind[0] in 'aei' else ''} {kind} file; pass one of {', '.join(sorted(allowed))}"
    return None


def check_input(kind: str, path: str | Path) -> Path:
    """`path` as a Path when it can be a `kind` input, else MediaError with `input_problem`'s line."""
    why = input_problem(kind, path)
    if why:
        raise MediaError(why)
    return Path(path)


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


def silent_audio_note(audio: Audio, name: str | Path) -> str:
    """The warning a job records when its audio is silent: the clip is still made (a talking head should
    rest on silence), lip-sync scores are null."""
    return (f"{name}: audio is silent (rms {audio.rms:.1e} < {SILENT_RMS:g}); the clip was made with the mouth "
            f"at rest and lip-sync is not scored; pass a speech recording if silence was not meant")


def _open_container(path: Path, kind: str = "video"):
    """The PyAV container of `path`; MediaError (one line: the file, why, the fix) when it cannot be."""
    import av

    why = file_problem(path, "audio" if kind == "audio" else "file")
    if why:
        raise MediaError(why)
    try:
        return av.open(str(path))
    except Exception as e:  # av.error.InvalidDataError and friends
        fix = "re-encode it as wav (or mp3/m4a)" if kind == "audio" else "re-encode it as H.264 mp4"
        raise MediaError(f"{path}: cannot be decoded ({_av_reason(e)}: cut short, or not a media file); {fix}") from None


def _av_reason(e: BaseException) -> str:
    """FFmpeg's reason without its errno and file name ("Invalid data found when processing input")."""
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return str(reason).splitlines()[0].rstrip(".")


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
    container = _open_container(path, "audio")
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
                elif arr.dtype.kind == "u":  # unsigned 8-bit PCM: silence is 128
                    arr = (arr.astype(np.float32) - 128.0) / 128.0
                arr = arr.astype(np.float32)
                if frame.format.is_planar:
                    arr = arr.mean(axis=0)
                else:  # packed: (1, n*channels)
                    ch = len(frame.layout.channels)
                    arr = arr.reshape(-1, ch).mean(axis=1)
                chunks.append(arr)
        except Exception as e:
            if not chunks:
                raise MediaError(f"{path}: audio cannot be decoded ({_av_reason(e)}); re-encode it as wav") from None
    finally:
        container.close()
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise MediaError(f"{path}: audio track is empty; pass a file with speech audio")
    if not rate or int(rate) <= 0:
        raise MediaError(f"{path}: audio track states no sample rate; re-encode it as wav")
    audio = Audio(samples, int(rate))
    return audio.resample(sample_rate) if sample_rate else audio


TRUNCATION_TOLERANCE_S = 0.05  # a wav may hold this much less audio than its header states


def _load_wav(path: Path, sample_rate: int | None) -> Audio:
    """PCM wav through the stdlib. A file that holds clearly less audio than its header states (a cut
    download, a recorder that crashed) is refused, naming both lengths; anything the stdlib cannot
    read (float or ADPCM wav, a size placeholder left by a streaming writer) raises a non-MediaError
    so that `load_audio` falls back to PyAV."""
    import wave

    why = file_problem(path, "audio")
    if why:
        raise MediaError(why)
    try:
        w = wave.open(str(path), "rb")
    except wave.Error as e:
        if "channels" in str(e) or "sampwidth" in str(e) or "frame rate" in str(e):  # a header no player can use
            raise MediaError(f"{path}: the wav header is broken ({e}); re-export the audio as wav") from None
        raise  # e.g. float or ADPCM wav: PyAV reads those
    with w:
        n, ch, width, rate = w.getnframes(), w.getnchannels(), w.getsampwidth(), w.getframerate()
        claimed = n * ch * width
        if claimed == 0 or claimed > 0xFFFFFFFF - 2 * ch * width:  # a placeholder, rounded down to whole frames
            raise ValueError("data size placeholder")  # PyAV reads to the end of the file
        raw = w.readframes(n)
    if width not in (1, 2, 4):
        raise ValueError("unsupported width")
    got = len(raw) // (ch * width)
    if rate > 0 and (n - got) / rate > TRUNCATION_TOLERANCE_S:
        raise MediaError(f"{path}: audio is truncated: its header states {n / rate:.2f} s but the file holds "
                         f"{got / rate:.2f} s; re-export or re-download it")
    raw = raw[: got * ch * width]
    if width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    else:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    x = x.reshape(-1, ch).mean(axis=1)
    if x.size == 0:
        raise MediaError(f"{path}: audio is empty (0 samples); pass a file with speech audio")
    audio = Audio(x, rate)
    return audio.resample(sample_rate) if sample_rate else audio


# --------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------
def load_image(path: str | Path, max_side: int | None = DEFAULT_MAX_IMAGE_SIDE) -> np.ndarray:
    """Load an image as uint8 RGB (H, W, 3): the one place every image input is read (run, eval, the
    Studio, the Python API).

    Refuses, with one line naming the file and the fix, a path that is not a readable regular file, an
    image above `MAX_IMAGE_PIXELS` (checked from the header, before decoding: a decompression bomb never
    allocates), and anything PIL cannot decode. Applies EXIF orientation, flattens alpha onto white,
    converts palette/greyscale/CMYK/16-bit to RGB and downscales (Lanczos) so the longer side is at most
    `max_side` (None keeps full size).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    why = file_problem(path, "image")
    if why:
        raise MediaError(why)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides, below
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise MediaError(_too_many_pixels(path, w * h, f"{w}x{h}"))
                if w <= 0 or h <= 0:
                    raise MediaError(f"{path}: image has no pixels ({w}x{h}); re-export it as PNG or JPEG")
                im.load()
                im = ImageOps.exif_transpose(im)
                return image_to_rgb(im, max_side)
    except MediaError:
        raise
    except Image.DecompressionBombError as e:  # PIL's own guard (2x its limit) fires inside Image.open
        import re

        m = re.search(r"\((\d+) pixels\)", str(e))
        raise MediaError(_too_many_pixels(path, int(m.group(1)) if m else None)) from None
    except UnidentifiedImageError:
        raise MediaError(f"{path}: not a readable image; save it as PNG or JPEG") from None
    except MemoryError:
        raise MediaError(f"{path}: not enough memory to decode this image; resize it (e.g. to 2048 px on the "
                         f"longer side)") from None
    except Exception as e:  # OSError (truncated data), SyntaxError/ValueError (corrupt headers or EXIF)
        raise MediaError(f"{path}: image is corrupt or truncated ({type(e).__name__}: {e}); re-export it as "
                         f"PNG or JPEG") from None


def _too_many_pixels(path: Path, pixels: int | None, size: str | None = None) -> str:
    """The one line for an image above MAX_IMAGE_PIXELS: its size, the limit and how to shrink it."""
    side = int(math.sqrt(MAX_IMAGE_PIXELS))
    what = f"{size} ({pixels / 1e6:.0f} megapixels)" if size and pixels else \
        f"{pixels / 1e6:.0f} megapixels" if pixels else "too large"
    return (f"{path}: image is {what}, above the limit of {MAX_IMAGE_PIXELS / 1e6:g} megapixels (a decompression "
            f"bomb or a huge scan); resize it first (e.g. `convert '{path.name}' -resize {side}x{side} smaller.png`, "
            f"or PIL's Image.thumbnail): the workbench works at {DEFAULT_MAX_IMAGE_SIDE} px anyway")


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
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        # keep the brightness the file states (no per-image contrast stretch): 16-bit -> 8-bit by /257,
        # float in [0, 1] -> x255; 32-bit ints within 0..255 stay as they are
        a = np.asarray(im, dtype=np.float64)
        finite = a[np.isfinite(a)]
        top = float(finite.max()) if finite.size else 0.0
        if im.mode == "F" and top <= 1.0:
            a = a * 255.0
        elif im.mode != "F" and (im.mode.startswith("I;16") or top > 255.0):
            a = a / 257.0
        im = Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8))
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


def data_uri(data: bytes, mime: str) -> str:
    """Bytes as a base64 `data:` URI (a report's embedded clip, a small input sent to a hosted model)."""
    import base64

    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


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
                # mbtree off: libx264's macroblock-tree rate control makes the first encode of a process differ
                # from later encodes of the same frames (measured; an uninitialised read); without it every
                # encode of the same frames is the same file (files 0.9-1.4x the size, PSNR within 0.7 dB)
                vstream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
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



# --------------------------------------------------------------------------------------------------
# Timestamps: variable frame rate and streams that start at different times
# --------------------------------------------------------------------------------------------------
def stream_start_times(path: str | Path) -> tuple[float, float | None]:
    """(video start, audio start) in seconds on the container's clock, from the header alone (a stream
    without a stated start counts from 0; audio is None when the file has no audio stream). A video
    that starts after its audio (start_time 0.08 s against 0) shows its first frame 0.08 s into the
    soundtrack that `load_audio` returns from its first sample."""
    container = _open_container(Path(path))
    try:
        def start(s) -> float:
            return float(s.start_time * s.time_base) if s.start_time is not None and s.time_base else 0.0

        v = start(container.streams.video[0]) if container.streams.video else 0.0
        a = start(container.streams.audio[0]) if container.streams.audio else None
    finally:
        container.close()
    return v, a


def frame_times(path: str | Path) -> np.ndarray:
    """Presentation time (seconds, container clock) of every video frame in display order, read from the
    packet timestamps without decoding. A variable-frame-rate file (gaps of 33 and 67 ms) gives its real
    times where `index / fps` would drift; a packet without a timestamp is placed one median gap after
    the frame before it."""
    container = _open_container(Path(path))
    try:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream; pass a video file (mp4/mov/mkv)")
        vs = container.streams.video[0]
        tb = float(vs.time_base) if vs.time_base else 0.0
        pts = []
        for packet in container.demux(vs):
            if packet.size == 0:  # the flush packet
                continue
            pts.append(math.nan if packet.pts is None or not tb else packet.pts * tb)
    finally:
        container.close()
    t = np.asarray(pts, dtype=np.float64)
    known = np.sort(t[np.isfinite(t)])
    if known.size == len(t):
        return known
    gap = float(np.median(np.diff(known))) if known.size > 1 else 1.0 / 25.0
    out = np.sort(t)  # NaNs last
    for i in range(len(out)):
        if not np.isfinite(out[i]):
            out[i] = (out[i - 1] + gap) if i else 0.0
    return out


def clip_frame_times(clip: "Clip", against_audio: bool = True) -> np.ndarray:
    """Time of each frame of `clip` in seconds from its soundtrack's first sample: a file's packet
    timestamps minus its audio stream's start (`against_audio`; else minus the first frame's time),
    `index / fps` for an in-memory clip. For a file the length is the number of packets (the decoder
    may yield a frame or two fewer on a truncated file)."""
    if clip.path is None or clip.frames is not None:
        return np.arange(clip.num_frames, dtype=np.float64) / float(clip.fps)
    t = frame_times(clip.path)
    if t.size == 0:
        return t
    if against_audio:
        _, a = stream_start_times(clip.path)
        return t - (a if a is not None else t[0])
    return t - t[0]
