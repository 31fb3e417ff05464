"""The Composer: assemble clips into one mp4.

Trim each clip, bring every clip to one frame rate and size, join them with hard cuts or crossfades,
keep each clip's own audio in step with its pictures (or lay one audio track over the whole result),
and add a title card or a text caption. Video frames stream through (one source frame in memory at a
time, plus the crossfade overlap); audio is assembled in memory, which is small.

Timing rules, so that sound and picture never drift:
- the output has a whole number of frames; segment i starts at output frame F_i and lasts n_i frames,
  n_i = round(trimmed seconds x fps); with a crossfade of k frames, F_{i+1} = F_i + n_i - k, so the
  total is sum(n_i) - (segments - 1) x k frames;
- a segment's audio is placed at sample round(F_i / fps x rate) and cut or padded to exactly its
  n_i frames of time, so every cut sits at the same instant in sound and picture;
- a new frame rate is reached by nearest-earlier-frame resampling (frames are repeated or dropped by
  their timestamps; no motion interpolation).

`compose([...], "out.mp4", crossfade=0.5, fps=25, size=(512, 512), title="Take 1")` from Python;
`workbench compose a.mp4 b.mp4@1-3 --out out.mp4 --crossfade 0.5` from the shell.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from workbench.media import Audio, Clip, MediaError, fit_image, load_audio, write_video

MAX_FPS = 240.0
MIN_SIDE = 16
DEFAULT_TITLE_SECONDS = 2.0
FIT_MODES = ("pad", "crop", "stretch")


class ComposeError(ValueError):
    """The composition cannot be made as asked; one line naming the input and the fix."""


@dataclass
class Segment:
    """One clip of a composition: a source (path or `Clip`), an optional trim and caption."""

    source: str | Path | Clip
    start: float = 0.0  # seconds into the source
    end: float | None = None  # seconds into the source; None = its end
    caption: str | None = None  # text drawn over this segment only

    @property
    def label(self) -> str:
        if isinstance(self.source, Clip):
            return str(self.source.path) if self.source.path else "clip"
        return str(self.source)


@dataclass
class TitleCard:
    """A still card with centred text (and silence), shown for `seconds`."""

    text: str
    seconds: float = DEFAULT_TITLE_SECONDS
    background: tuple[int, int, int] = (0, 0, 0)
    color: tuple[int, int, int] = (255, 255, 255)


@dataclass
class ComposeResult:
    path: Path
    fps: float
    size: tuple[int, int]  # (width, height)
    num_frames: int
    sample_rate: int | None  # None: the output has no audio
    starts: list[float] = field(default_factory=list)  # output time (s) where each segment starts
    segments: list[dict] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def to_dict(self) -> dict:
        return {"path": str(self.path), "fps": self.fps, "width": self.size[0], "height": self.size[1],
                "frames": self.num_frames, "seconds": round(self.duration, 4), "sample_rate": self.sample_rate,
                "starts": [round(s, 4) for s in self.starts], "segments": self.segments}


# --------------------------------------------------------------------------------------------------
# parsing helpers (CLI and suites)
# --------------------------------------------------------------------------------------------------
_TRIM = re.compile(r"^(?P<path>.+)@(?P<start>\d+(?:\.\d+)?)?-(?P<end>\d+(?:\.\d+)?)?$")


def parse_segment(text: str) -> Segment:
    """`clip.mp4` or `clip.mp4@START-END` (seconds; either side may be left out: `@2-`, `@-3.5`).

    A file whose real name contains '@' is taken as it is when it exists."""
    if Path(text).exists():
        return Segment(text)
    m = _TRIM.match(text)
    if not m:
        return Segment(text)
    start = float(m.group("start")) if m.group("start") else 0.0
    end = float(m.group("end")) if m.group("end") else None
    return Segment(m.group("path"), start, end)


def parse_size(text: str) -> tuple[int, int]:
    """'512x288' -> (512, 288)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m:
        raise ComposeError(f"size {text!r} must be WIDTHxHEIGHT, e.g. 512x288")
    return int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------------
def fit_frame(frame: np.ndarray, width: int, height: int, mode: str = "pad") -> np.ndarray:
    """Bring one RGB frame to exactly (height, width): `pad` letterboxes (black bars, nothing cut),
    `crop` fills and centre-crops, `stretch` ignores the aspect ratio."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    if mode == "crop":
        return fit_image(frame, width, height)
    import cv2

    if mode == "stretch":
        interp = cv2.INTER_AREA if w * h > width * height else cv2.INTER_LINEAR
        return cv2.resize(frame, (width, height), interpolation=interp)
    scale = min(width / w, height / h)
    nw, nh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(frame, (nw, nh), interpolation=interp)
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[top:top + nh, left:left + nw] = small
    return out


def _font(size: int):
    from PIL import ImageFont

    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                 "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def _wrap(draw, text: str, font, max_width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        words, line = paragraph.split(), ""
        for word in words:
            trial = f"{line} {word}".strip()
            if line and draw.textlength(trial, font=font) > max_width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def render_title(card: TitleCard, width: int, height: int) -> np.ndarray:
    """The title card as one RGB frame: wrapped text centred on the background colour."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (width, height), tuple(card.background))
    draw = ImageDraw.Draw(im)
    font = _font(max(10, height // 10))
    lines = _wrap(draw, card.text, font, int(width * 0.9))
    line_h = int(font.size * 1.25)
    y = (height - line_h * len(lines)) // 2
    for line in lines:
        tw = draw.textlength(line, font=font)
        draw.text(((width - tw) / 2, y), line, font=font, fill=tuple(card.color))
        y += line_h
    return np.asarray(im, np.uint8).copy()


def render_caption(text: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A caption layer (RGB, alpha in [0, 1]) for the bottom of a (height, width) frame: white text on
    a translucent dark band."""
    from PIL import Image, ImageDraw

    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = _font(max(9, height // 16))
    lines = _wrap(draw, text, font, int(width * 0.92))
    line_h = int(font.size * 1.3)
    band = line_h * len(lines) + line_h // 2
    top = height - band - max(2, height // 40)
    draw.rectangle((0, top, width, top + band), fill=(0, 0, 0, 140))
    y = top + line_h // 4
    for line in lines:
        tw = draw.textlength(line, font=font)
        draw.text(((width - tw) / 2, y), line, font=font, fill=(255, 255, 255, 255))
        y += line_h
    arr = np.asarray(layer, np.float32)
    return arr[..., :3], arr[..., 3:] / 255.0


def _overlay(frame: np.ndarray, layer: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    if layer is None:
        return frame
    rgb, alpha = layer
    return (frame.astype(np.float32) * (1 - alpha) + rgb * alpha + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# the plan of a composition (frame counts, trims) -- made before anything is encoded
# --------------------------------------------------------------------------------------------------
@dataclass
class _Part:
    label: str
    n: int  # output frames
    clip: Clip | None = None  # None for a title card
    start: float = 0.0
    card: TitleCard | None = None
    caption: str | None = None
    first: int = 0  # output frame where it starts

    def frames(self, fps: float, width: int, height: int, fit: str) -> Iterator[np.ndarray]:
        """Exactly `n` frames at the output rate and size."""
        if self.card is not None:
            still = render_title(self.card, width, height)
            for _ in range(self.n):
                yield still
            return
        assert self.clip is not None
        src_fps = self.clip.fps
        # output frame j shows the source frame on screen at time start + j / fps
        wanted = [int(math.floor((self.start + j / fps) * src_fps + 1e-6)) for j in range(self.n)]
        j = 0
        last = None
        for index, frame in enumerate(self.clip.iter_frames()):
            if j >= self.n:
                break
            if index < wanted[j]:
                continue
            last = fit_frame(np.ascontiguousarray(frame[..., :3]), width, height, fit)
            while j < self.n and wanted[j] <= index:
                yield last
                j += 1
        if last is None:
            raise ComposeError(f"{self.label}: no frames decoded at {self.start:.3f} s; check the trim and the file")
        while j < self.n:  # the header promised more frames than decoded: hold the last one
            yield last
            j += 1


def _open(seg: Segment, load_audio_track: bool = True) -> Clip:
    """The segment's clip; its audio track is decoded only when `load_audio_track` (it will be heard)."""
    if isinstance(seg.source, Clip):
        return seg.source
    path = Path(seg.source)
    if not path.is_file():
        raise ComposeError(f"{path}: clip not found; check the path")
    try:
        return Clip.open(path, load_audio_track=load_audio_track)
    except MediaError as e:
        raise ComposeError(str(e)) from None


def _plan(items: Sequence[tuple[Segment | TitleCard, Clip | None]], fps: float) -> list[_Part]:
    parts = []
    for item, clip in items:
        if isinstance(item, TitleCard):
            if not (item.seconds > 0):
                raise ComposeError(f"title card {item.text!r}: seconds must be > 0, got {item.seconds}")
            parts.append(_Part(f"title {item.text!r}", max(1, round(item.seconds * fps)), card=item))
            continue
        assert clip is not None
        label = item.label
        length = clip.duration
        start = float(item.start or 0.0)
        end = length if item.end is None else float(item.end)
        if start < 0:
            raise ComposeError(f"{label}: trim start {start} s is negative; use a start >= 0")
        tolerance = 1.0 / clip.fps
        if end > length + tolerance:
            raise ComposeError(f"{label}: trim end {end:.3f} s is past the clip's end ({length:.3f} s); "
                               "shorten the trim")
        end = min(end, length)
        if end <= start:
            raise ComposeError(f"{label}: trim {start:.3f}-{end:.3f} s is empty; the end must come after the start")
        n = round((end - start) * fps)
        if n < 1:
            raise ComposeError(f"{label}: trim {start:.3f}-{end:.3f} s is shorter than one frame at {fps:g} fps")
        parts.append(_Part(label, n, clip=clip, start=start, caption=item.caption))
    return parts


# --------------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------------
def _fade(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n + 2, dtype=np.float32)[1:-1] if n > 0 else np.zeros(0, np.float32)


def _mix_audio(parts: list[_Part], fps: float, total: int, xfade: int, rate: int) -> Audio:
    """Each part's own audio placed at its first frame, cut/padded to its frames, crossfaded like the
    pictures; silence for parts without audio."""
    out = np.zeros(int(round(total / fps * rate)), np.float32)
    for i, part in enumerate(parts):
        a0 = int(round(part.first / fps * rate))
        a1 = min(len(out), int(round((part.first + part.n) / fps * rate)))
        if part.clip is None or part.clip.audio is None or a1 <= a0:
            continue
        src = part.clip.audio
        if src.sample_rate != rate:
            src = src.resample(rate)
        s0 = int(round(part.start * rate))
        chunk = np.zeros(a1 - a0, np.float32)
        piece = src.samples[s0:s0 + len(chunk)]
        chunk[:len(piece)] = piece
        k = int(round(xfade / fps * rate))
        if k and i > 0:
            chunk[:k] *= _fade(k)[: len(chunk[:k])]
        if k and i < len(parts) - 1:
            chunk[-k:] *= _fade(k)[::-1][-len(chunk[-k:]):]
        out[a0:a1] += chunk
    return Audio(np.clip(out, -1.0, 1.0), rate)


def _fit_track(audio: Audio, seconds: float, rate: int) -> Audio:
    """An overlay track cut or padded with silence to exactly `seconds`."""
    if audio.sample_rate != rate:
        audio = audio.resample(rate)
    n = int(round(seconds * rate))
    out = np.zeros(n, np.float32)
    piece = audio.samples[:n]
    out[:len(piece)] = piece
    return Audio(out, rate)


# --------------------------------------------------------------------------------------------------
# compose
# --------------------------------------------------------------------------------------------------
def compose(
    items: Sequence[Segment | TitleCard | str | Path | Clip],
    out: str | Path,
    *,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    crossfade: float = 0.0,
    audio: Audio | str | Path | None = None,
    keep_audio: bool = True,
    title: str | TitleCard | None = None,
    caption: str | None = None,
    fit: str = "pad",
) -> ComposeResult:
    """Join `items` (paths, `Clip`s, `Segment`s with trims, `TitleCard`s) into one H.264/AAC mp4.

    fps / size default to the first clip's; `crossfade` (seconds) blends every junction (0 = cuts);
    `audio` replaces the clips' own sound with one track cut or padded to the video's length, else
    each clip keeps its own audio in step (`keep_audio=False` drops it); `title` prepends a card;
    `caption` draws text over every clip (a Segment's own caption wins). Returns what was written.
    """
    items = [x if isinstance(x, (Segment, TitleCard)) else
             Segment(x) if isinstance(x, Clip) else parse_segment(str(x)) for x in items]
    if not items:
        raise ComposeError("nothing to compose; pass at least one clip")
    if fit not in FIT_MODES:
        raise ComposeError(f"fit must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ComposeError(f"{out}: output must be an .mp4 file; name it e.g. {out.with_suffix('.mp4').name}")
    if title is not None:
        items = [title if isinstance(title, TitleCard) else TitleCard(str(title))] + list(items)
    own_audio = keep_audio and audio is None  # the clips' own sound is used only then
    opened = [(item, None if isinstance(item, TitleCard) else _open(item, own_audio)) for item in items]
    first_clip = next((clip for _, clip in opened if clip is not None), None)  # sets fps and size unless given
    if fps is None:
        fps = first_clip.fps if first_clip is not None else 25.0
    fps = float(fps)
    if not (0 < fps <= MAX_FPS):
        raise ComposeError(f"fps must be in (0, {MAX_FPS:g}], got {fps:g}")
    if size is None:
        size = first_clip.size if first_clip is not None else (512, 288)
    width, height = int(size[0]), int(size[1])
    if width < MIN_SIDE or height < MIN_SIDE or width % 2 or height % 2:
        raise ComposeError(f"size {width}x{height}: both sides must be even and >= {MIN_SIDE} px "
                           "(H.264 yuv420p); e.g. 512x288")
    if crossfade < 0:
        raise ComposeError(f"crossfade must be >= 0 seconds, got {crossfade}")
    parts = _plan(opened, fps)
    k = int(round(float(crossfade) * fps))
    if k and len(parts) > 1:
        shortest = min(p.n for p in parts)
        if k >= shortest:
            raise ComposeError(f"crossfade {crossfade:g} s ({k} frames) is as long as the shortest segment "
                               f"({shortest} frames); use a crossfade under {shortest / fps:.2f} s")
    elif len(parts) == 1:
        k = 0
    pos = 0
    for i, part in enumerate(parts):
        part.first = pos
        pos += part.n - (k if i < len(parts) - 1 else 0)
    total = pos

    # audio: one overlay track, or the clips' own
    track: Audio | None = None
    if audio is not None:
        src = audio if isinstance(audio, Audio) else load_audio(audio)
        track = _fit_track(src, total / fps, int(src.sample_rate))
    elif keep_audio:
        rates = [p.clip.audio.sample_rate for p in parts if p.clip is not None and p.clip.audio is not None]
        if rates:
            track = _mix_audio(parts, fps, total, k, int(max(rates)))

    captions = {}
    for part in parts:
        text = part.caption if part.caption is not None else (caption if part.card is None else None)
        if text:
            captions[id(part)] = render_caption(text, width, height)

    def frames() -> Iterator[np.ndarray]:
        alphas = _fade(k)
        carry: list[np.ndarray] = []  # the previous part's last k frames, blended into this part's first k
        for i, part in enumerate(parts):
            layer = captions.get(id(part))
            held: list[np.ndarray] = []
            last = i == len(parts) - 1
            for j, frame in enumerate(part.frames(fps, width, height, fit)):
                frame = _overlay(frame, layer)
                if j < len(carry):
                    a = alphas[j]
                    frame = (carry[j].astype(np.float32) * (1 - a) + frame.astype(np.float32) * a + 0.5).astype(np.uint8)
                if k and not last and j >= part.n - k:
                    held.append(frame)
                    continue
                yield frame
            carry = held

    try:
        write_video(out, frames(), fps, track)
    except MediaError as e:
        raise ComposeError(str(e)) from None
    return ComposeResult(
        path=out, fps=fps, size=(width, height), num_frames=total,
        sample_rate=track.sample_rate if track is not None else None,
        starts=[p.first / fps for p in parts],
        segments=[{"source": p.label, "start": round(p.start, 4), "frames": p.n, "first_frame": p.first}
                  for p in parts],
    )
