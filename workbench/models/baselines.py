"""Model-free generators that run anywhere (CPU, no weights): reference points for every comparison.

- `static`:   the image held still. The floor for motion metrics and the ceiling for identity/consistency.
- `kenburns`: a smooth camera zoom/pan over the still (ease-in-out, sub-pixel, no jitter).
- `puppet`:   an audio-driven talking-head baseline: the portrait's jaw and lower lip are warped open
              in proportion to the speech envelope, with seeded blinks and a gentle head sway. Its mouth
              follows the audio frame by frame (no lag), so a lip-sync metric must rank it in sync and
              must rank it out of sync when its audio is shifted.

Each is deterministic for a given request (numpy `Generator(seed)`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.media import SILENT_RMS, Audio, Clip, fit_image
from workbench.models.base import GenerationError, GenerationRequest, Generator, ProgressFn, register

ENVELOPE_RATE = 16_000


def _ease(t: np.ndarray | float) -> np.ndarray | float:
    """Cosine ease-in-out on [0, 1]: zero velocity at both ends."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0.0, 1.0))


def _report(progress: ProgressFn | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


# the model-free image baselines share one clip length, rate and size, so their clips play in step in one row
CLIP_DEFAULTS = {"fps": 25, "seconds": 3.0, "num_frames": 0, "width": 256, "height": 256}
MIN_AUDIO_SECONDS = 0.2  # shorter audio makes a clip of a few frames: a cut or broken file, not speech


def _check_audio(request: GenerationRequest) -> Audio:
    """The request's audio, refusing a missing, empty or too short track with a message naming the
    file. Silent audio is allowed: a talking head should rest on silence (the Runner records a warning,
    `workbench.media.silent_audio_note`)."""
    audio = request.audio
    name = request.audio_path or "audio"
    if audio is None:
        raise GenerationError(f"{name}: no audio given; pass a speech recording (wav/mp3/m4a)")
    if len(audio.samples) == 0 or audio.duration <= 0:
        raise GenerationError(f"{name}: audio is empty (0 samples); pass a speech recording (wav/mp3/m4a)")
    _check_length(audio, name)
    return audio


def _check_length(audio: Audio, name: str) -> None:
    if audio.duration < MIN_AUDIO_SECONDS:
        raise GenerationError(f"{name}: audio is only {audio.duration:.3f} s long, too short for a clip (at least "
                              f"{MIN_AUDIO_SECONDS:g} s); pass the whole recording (a cut or broken file?)")


def _num_frames(params: dict[str, Any], audio: Audio | None) -> int:
    """Clip length: the audio's duration when there is audio, else num_frames (if > 0) or seconds * fps."""
    fps = float(params["fps"])
    if fps <= 0:
        raise GenerationError(f"fps must be positive, got {fps}; set params.fps (e.g. 25)")
    if audio is not None and len(audio.samples):
        return max(1, int(round(audio.duration * fps)))
    if int(params.get("num_frames", 0)) > 0:
        return int(params["num_frames"])
    n = int(round(float(params["seconds"]) * fps))
    if n < 1:
        raise GenerationError(f"clip would have no frames (seconds={params['seconds']}); set params.seconds > 0")
    return n


def _size(params: dict[str, Any]) -> tuple[int, int]:
    w, h = int(params["width"]), int(params["height"])
    if w < 16 or h < 16:
        raise GenerationError(f"width/height must be at least 16 px, got {w}x{h}; set params.width/height")
    return w, h


# --------------------------------------------------------------------------------------------------
# static
# --------------------------------------------------------------------------------------------------
@register
class StaticGenerator(Generator):
    """The input image repeated: zero motion, perfect identity. With audio, lasts as long as the audio."""

    name = "static"
    task = "image-to-video"
    description = "the image held still (motion floor, identity ceiling); follows the audio's length if given"
    requires = frozenset({"image"})
    defaults = dict(CLIP_DEFAULTS)

    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> Clip:
        self.check_inputs(request)
        p = self.params
        audio = request.audio if request.audio is not None and len(request.audio.samples) else None
        if audio is not None:
            _check_length(audio, request.audio_path or "audio")
        n = _num_frames(p, audio)
        frame = fit_image(request.image, *_size(p))
        frames = np.empty((n,) + frame.shape, np.uint8)
        for i in range(n):
            frames[i] = frame
            _report(progress, i + 1, n)
        return Clip.from_frames(frames, p["fps"], audio)


# --------------------------------------------------------------------------------------------------
# kenburns
# --------------------------------------------------------------------------------------------------
@register
class KenBurnsGenerator(Generator):
    """A slow zoom toward (or away from) a seeded point of the image, eased in and out.

    The crop window is a float affine map (cv2.warpAffine, bilinear), so motion is sub-pixel smooth.
    The pan is scaled by the room the zoom leaves, so the window never leaves the image.
    """

    name = "kenburns"
    task = "image-to-video"
    description = "Ken Burns camera move: eased zoom + pan over the still, direction picked by the seed"
    requires = frozenset({"image"})
    defaults = {**CLIP_DEFAULTS, "zoom": 1.15, "pan": 0.8, "direction": "random"}

    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> Clip:
        import cv2

        self.check_inputs(request)
        p = self.params
        width, height = _size(p)
        zoom = float(p["zoom"])
        if not 1.0 <= zoom <= 4.0:
            raise GenerationError(f"kenburns: zoom must be in [1, 4], got {zoom}; e.g. zoom: 1.15")
        pan = float(np.clip(p["pan"], 0.0, 1.0))
        direction = str(p["direction"])
        if direction not in ("random", "in", "out"):
            raise GenerationError(f"kenburns: direction must be random, in or out, got {direction!r}")
        audio = request.audio if request.audio is not None and len(request.audio.samples) else None
        if audio is not None:
            _check_length(audio, request.audio_path or "audio")
        n = _num_frames(p, audio)
        rng = np.random.default_rng(request.seed)
        zoom_in = rng.random() < 0.5 if direction == "random" else direction == "in"
        angle = rng.uniform(0, 2 * np.pi)
        target = pan * np.array([np.cos(angle), np.sin(angle)])  # in units of the room left by the zoom

        # the source, cover-fitted to the output aspect at the resolution the deepest zoom needs
        sw, sh = int(np.ceil(width * zoom)), int(np.ceil(height * zoom))
        src = fit_image(request.image, sw, sh)
        half_src = np.array([sw, sh], np.float64) / 2.0
        half_out = np.array([width, height], np.float64) / 2.0
        frames = np.empty((n, height, width, 3), np.uint8)
        for i in range(n):
            t = i / (n - 1) if n > 1 else 0.0
            e = float(_ease(t if zoom_in else 1.0 - t))
            s = 1.0 + (zoom - 1.0) * e  # magnification relative to the full (cover-fitted) view
            room = half_src * (1.0 - 1.0 / s)  # how far the window centre may move from the middle
            centre = half_src + room * target
            k = (sw / width) / s  # source pixels per output pixel
            # output pixel q -> source pixel centre + (q - half_out) * k  (pixel-centre convention)
            m = np.array([[k, 0.0, centre[0] - 0.5 - (half_out[0] - 0.5) * k],
                          [0.0, k, centre[1] - 0.5 - (half_out[1] - 0.5) * k]])
            frames[i] = cv2.warpAffine(src, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                       borderMode=cv2.BORDER_REFLECT101)
            _report(progress, i + 1, n)
        return Clip.from_frames(frames, p["fps"], audio)


# --------------------------------------------------------------------------------------------------
# puppet: speech envelope
# --------------------------------------------------------------------------------------------------
def speech_envelope(audio: Audio, fps: float, num_frames: int, window: float = 0.08, smooth: float = 0.8,
                    percentile: float = 95.0, noise_floor: float = 0.1, gamma: float = 0.7) -> np.ndarray:
    """Per-video-frame speech loudness in [0, 1]: 0 = silence (mouth closed), 1 = loud speech.

    Frame i shows the instant (i + 0.5) / fps, so its RMS window (Hann, `window` seconds) is centred
    there. The RMS track is smoothed with a zero-phase Gaussian (`smooth` frames: no lag), then mapped
    linearly from a noise floor (`noise_floor` x the reference level, or the quiet-frame level if higher)
    up to the reference level (the `percentile`-th percentile), and shaped by `gamma` (< 1 opens the
    mouth more for moderate speech).
    """
    x = audio.resample(ENVELOPE_RATE).samples.astype(np.float64)
    from scipy.signal import fftconvolve

    half = max(1, int(round(window * ENVELOPE_RATE / 2)))
    taper = np.hanning(2 * half + 1)
    power = fftconvolve(x * x, taper / taper.sum(), mode="same")  # local mean power, centred
    centres = np.round((np.arange(num_frames) + 0.5) / fps * ENVELOPE_RATE).astype(int)
    rms = np.sqrt(np.maximum(power[np.clip(centres, 0, len(x) - 1)], 0.0))
    if smooth > 0 and num_frames > 1:
        from scipy.ndimage import gaussian_filter1d

        rms = gaussian_filter1d(rms, smooth, mode="nearest")
    ref = float(np.percentile(rms, percentile)) if num_frames else 0.0
    if ref <= 0:
        return np.zeros(num_frames)
    floor = max(noise_floor * ref, 1.5 * float(np.percentile(rms, 5)))
    floor = min(floor, 0.5 * ref)
    env = np.clip((rms - floor) / (ref - floor), 0.0, 1.0)
    return env ** gamma


# --------------------------------------------------------------------------------------------------
# puppet: face rig (precomputed warp fields, scaled per frame)
# --------------------------------------------------------------------------------------------------
@dataclass
class _Region:
    """A rectangle of the image with per-pixel face-aligned coordinates, ready for cv2.remap."""

    x0: int
    y0: int
    x1: int
    y1: int
    gx: np.ndarray  # absolute pixel x of every ROI pixel (float32)
    gy: np.ndarray
    u: np.ndarray  # face-aligned coordinates relative to the region's anchor (pixels)
    v: np.ndarray


def _region(image_shape: tuple[int, ...], anchor: np.ndarray, ex: np.ndarray, ey: np.ndarray,
            u_range: tuple[float, float], v_range: tuple[float, float]) -> _Region | None:
    """The axis-aligned box covering a face-aligned rectangle around `anchor`, with (u, v) per pixel."""
    h, w = image_shape[:2]
    corners = np.array([anchor + a * ex + b * ey for a in u_range for b in v_range])
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = gx - anchor[0], gy - anchor[1]
    u = (dx * ex[0] + dy * ex[1]).astype(np.float32)
    v = (dx * ey[0] + dy * ey[1]).astype(np.float32)
    return _Region(x0, y0, x1, y1, gx, gy, u, v)


def _bump(x: np.ndarray) -> np.ndarray:
    """Smooth 1 -> 0 on |x| in [0, 1] (cos^2), 0 beyond."""
    return np.cos(0.5 * np.pi * np.clip(np.abs(x), 0.0, 1.0)) ** 2


class _FaceRig:
    """Warps for one portrait: jaw/lower-lip opening and eyelid closing, as displacement fields along
    the face's downward axis. Everything that depends only on the face is computed once here; a frame
    only scales the fields (mouth opening in pixels, eyelid closure in [0, 1]) and remaps small regions.
    """

    def __init__(self, image: np.ndarray, landmarks: np.ndarray, chin_drop: float = 1.0):
        self.image = image
        lm = landmarks.astype(np.float64)
        left_eye, right_eye = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
        ex = right_eye - left_eye
        ex /= np.linalg.norm(ex) + 1e-9
        ey = np.array([-ex[1], ex[0]])  # image y points down, so this is "down the face"
        self.ex, self.ey = ex, ey
        self.mouth_width = float(np.linalg.norm(lm[54] - lm[48]))
        mw = self.mouth_width

        # lip seam: the midline between the inner lips, corner to corner, in face coordinates
        seam_pts = np.array([lm[48], lm[60], (lm[61] + lm[67]) / 2, (lm[62] + lm[66]) / 2,
                             (lm[63] + lm[65]) / 2, lm[64], lm[54]])
        anchor = seam_pts[3]
        su = (seam_pts - anchor) @ ex
        sv = (seam_pts - anchor) @ ey
        order = np.argsort(su)
        chin_v = float((lm[8] - anchor) @ ey)
        chin_v = max(chin_v, 0.6 * mw)
        fall = 0.9 * mw  # the neck below the chin stretches over this distance
        self.max_open = 0.6 * mw
        region = _region(image.shape, anchor, ex, ey, (-1.2 * mw, 1.2 * mw),
                         (-0.35 * mw, chin_v + fall + self.max_open))
        if region is None:
            raise GenerationError("puppet: the mouth lies outside the image; pass a portrait with the whole face visible")
        self.mouth = region
        seam = np.interp(region.u, su[order], sv[order]).astype(np.float32)
        self.mouth_vv = region.v - seam  # distance below the lip seam
        # lateral falloff: lens-shaped at the lips (corners stay put), widening to the jaw at the chin
        depth = np.clip(self.mouth_vv / chin_v, 0.0, 1.0)
        half_width = (0.55 + 0.35 * depth) * mw
        self.mouth_gain = _bump(region.u / half_width).astype(np.float32)
        below = np.clip((self.mouth_vv - chin_v) / fall, 0.0, 1.0)
        self.mouth_decay = (chin_drop * (1.0 - _ease(below))).astype(np.float32)  # 1 down to the chin, then to 0

        self.eyes = []
        for idx in (slice(36, 42), slice(42, 48)):
            e = lm[idx]  # corner, upper, upper, corner, lower, lower
            centre = e.mean(axis=0)
            ew = float(np.linalg.norm(e[3] - e[0]))
            eu, ev = (e - centre) @ ex, (e - centre) @ ey
            lid = 0.4 * ew  # the upper lid, from its crease down to the lash line
            lash = 0.15 * ew  # lashes (and mascara) above the lash line: moved as a block, never stretched
            r = _region(image.shape, centre, ex, ey, (-0.7 * ew, 0.7 * ew),
                        (float(ev.min()) - lid - 2, float(ev.max()) + 3))
            if r is None:
                continue
            upper = np.interp(r.u, eu[[0, 1, 2, 3]], ev[[0, 1, 2, 3]]).astype(np.float32)
            lower = np.interp(r.u, eu[[0, 5, 4, 3]], ev[[0, 5, 4, 3]]).astype(np.float32)
            opening = np.maximum(lower - upper, 0.0) * (np.abs(r.u) < 0.5 * ew + 1)
            self.eyes.append((r, r.v - (upper - lid), opening.astype(np.float32), np.float32(lid), np.float32(lash)))

    def _remap(self, r: _Region, d: np.ndarray) -> np.ndarray:
        import cv2

        mx = r.gx - d * np.float32(self.ey[0])
        my = r.gy - d * np.float32(self.ey[1])
        return cv2.remap(self.image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)

    def render(self, opening: float, closure: float, darkness: float = 0.8) -> np.ndarray:
        """The portrait with the mouth opened by `opening` pixels (at the centre) and eyelids closed by
        `closure` (0 open .. 1 shut)."""
        out = self.image.copy()
        if opening > 0.05:
            r = self.mouth
            a = np.float32(min(opening, self.max_open)) * self.mouth_gain  # local opening (pixels)
            vv = self.mouth_vv
            # above the seam: still; in the gap: sample the seam (stretched lip contact); below: shifted by a
            d = np.where(vv <= 0, 0.0, np.where(vv < a, vv, a * self.mouth_decay)).astype(np.float32)
            roi = self._remap(r, d).astype(np.float32)
            # darken the gap: the mouth interior, with a one-pixel feather at the lips
            inside = np.clip(np.minimum(vv, a - vv), 0.0, 1.0) * darkness
            interior = np.array([45, 18, 20], np.float32)
            roi += inside[..., None] * (interior - roi)
            out[r.y0:r.y1, r.x0:r.x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
        if closure > 0.01:
            for r, below_crease, opening, lid, lash in self.eyes:
                # the upper lid slides down over the eye by closure x opening: its lash band moves as a
                # block, the skin between crease and lashes stretches; brows and the eye below stay put
                drop = np.float32(min(closure, 1.0) * 1.05) * opening
                skin = lid - lash
                d = np.where((below_crease > 0) & (below_crease < lid + drop),
                             np.minimum(below_crease * drop / (skin + drop), drop), 0.0)
                out[r.y0:r.y1, r.x0:r.x1] = self._remap(r, d.astype(np.float32))
        return out


def _blink_track(n: int, fps: float, every: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure per frame: a ~4-frame blink at seeded intervals of every*(0.75..1.25) seconds."""
    closure = np.zeros(n)
    if every <= 0:
        return closure
    shape = np.array([0.45, 0.9, 1.0, 0.7, 0.3])  # fast close, slower open
    t = rng.uniform(0.3, 1.0) * every
    while True:
        start = int(round(t * fps))
        if start >= n:
            break
        stop = min(n, start + len(shape))
        closure[start:stop] = np.maximum(closure[start:stop], shape[: stop - start])
        t += every * rng.uniform(0.75, 1.25)
    return closure


def _sway_track(n: int, fps: float, amount: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 3): rotation (degrees), dx, dy (fractions of the face width), each a sum of slow sinusoids."""
    t = np.arange(n) / fps
    out = np.zeros((n, 3))
    if amount <= 0:
        return out
    scale = np.array([1.2, 0.025, 0.015]) * amount
    for j in range(3):
        freqs = rng.uniform(0.12, 0.45, size=3)
        phases = rng.uniform(0, 2 * np.pi, size=3)
        weights = rng.uniform(0.5, 1.0, size=3)
        wave = (weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None])).sum(axis=0)
        out[:, j] = scale[j] * wave / weights.sum()
    return out


@register
class PuppetGenerator(Generator):
    """Audio-driven talking-head baseline: warps the portrait's jaw open with the speech envelope.

    dlib's 68 landmarks locate the lips, chin and eyes once; per frame the jaw and lower lip move down
    by envelope x max_open x mouth width (a smooth displacement field, cv2.remap), the gap is shaded
    dark as a mouth interior, eyelids close in seeded blinks and the head sways slightly. No learned
    weights: it is the reference a real talking-head model must beat on realism while matching on sync.
    """

    name = "puppet"
    task = "audio-to-video"
    description = "model-free talking head: jaw warped open by the speech envelope, blinks, head sway"
    requires = frozenset({"image", "audio"})
    defaults = {"fps": 25, "size": 384, "max_open": 0.35, "gamma": 0.7, "noise_floor": 0.1,
                "smooth_frames": 0.8, "blink_every": 4.0, "sway": 1.0, "darkness": 0.8}

    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> Clip:
        import cv2

        from workbench.faces import largest_face

        self.check_inputs(request)
        p = self.params
        if not 0.0 <= float(p["max_open"]) <= 1.0:
            raise GenerationError(f"puppet: max_open must be in [0, 1] (of the mouth width), got {p['max_open']}; "
                                  f"e.g. max_open: 0.35")
        audio = _check_audio(request)
        fps = float(p["fps"])
        n = _num_frames(p, audio)
        image = self._fit(request.image, int(p["size"]))
        face = largest_face(image)
        if face is None:
            raise GenerationError(f"{request.image_path or 'image'}: no face found; pass a frontal portrait")
        rig = _FaceRig(image, face.landmarks)
        if audio.is_silent:  # no speech: the mouth rests (the envelope would open it on the noise floor)
            env = np.zeros(n)
        else:
            env = speech_envelope(audio, fps, n, smooth=float(p["smooth_frames"]),
                                  noise_floor=float(p["noise_floor"]), gamma=float(p["gamma"]))
        rng = np.random.default_rng(request.seed)
        blinks = _blink_track(n, fps, float(p["blink_every"]), rng)
        sway = _sway_track(n, fps, float(p["sway"]), rng)
        pivot = face.landmarks[8].astype(np.float64) + 0.25 * face.width * rig.ey  # the neck
        h, w = image.shape[:2]
        max_px = float(p["max_open"]) * rig.mouth_width
        darkness = float(np.clip(p["darkness"], 0.0, 1.0))
        frames = np.empty((n, h, w, 3), np.uint8)
        for i in range(n):
            frame = rig.render(env[i] * max_px, blinks[i], darkness)
            angle, dx, dy = sway[i]
            if angle or dx or dy:
                m = cv2.getRotationMatrix2D((float(pivot[0]), float(pivot[1])), float(angle), 1.0)
                m[:, 2] += (dx * face.width, dy * face.width)
                frame = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
            frames[i] = frame
            _report(progress, i + 1, n)
        return Clip.from_frames(frames, fps, audio)

    @staticmethod
    def _fit(image: np.ndarray, size: int) -> np.ndarray:
        """Scale so the longer side is `size` (aspect kept, even sides): never crops the face away."""
        import cv2

        if not 64 <= size <= 4096:
            raise GenerationError(f"puppet: size must be in [64, 4096] px, got {size}; e.g. size: 384")
        h, w = image.shape[:2]
        s = size / float(max(h, w))
        nw, nh = max(2, int(round(w * s / 2)) * 2), max(2, int(round(h * s / 2)) * 2)
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
        return cv2.resize(np.ascontiguousarray(image[..., :3]), (nw, nh), interpolation=interp)
