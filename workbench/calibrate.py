"""Metric calibration: the harness measures its own validity.

A calibration suite (YAML) lists real clips, perturbations with a known effect (shuffled frames,
dropped frames, a frozen stretch, per-frame noise, delayed or swapped audio, and subtle faults of
generated video: a duplicated frame, a dropped stretch, a one-frame flash, swapped frames, periodic
brightness flicker, a face morphing into another person, a frozen mouth) and, per perturbation,
the direction each metric must move. `run_calibration` scores every clip as is and under every
perturbation with `workbench.metrics.evaluate` (the same code path as any evaluation), compares, and
writes `calibration.json` and `calibration.md` (metric x perturbation: original, perturbed, delta,
expected, pass/fail). A missing clip is a one-line error and the other clips go on.

Suite format::

    name: metric-calibration
    max_seconds: 4            # optional: trim every clip (speed)
    max_side: 512             # optional: downscale frames on load
    clips:
      - path: ../media/talk.mp4        # relative to the suite file
        image: first_frame             # optional identity reference: first_frame or an image path
      - path: scenes/bear.mp4
    metrics: [temporal_flicker, warp_error, identity_similarity, sync_offset]
    perturbations:
      - name: shuffled
        kind: shuffle_frames           # shuffle_frames | drop_frames | freeze | noise | audio_delay | swap_audio
        expect: {temporal_flicker: down, warp_error: up, identity_similarity: same}
      - {name: delay5, kind: audio_delay, frames: 5, expect: {sync_offset: {delta: -5, tol: 2}}}
      - {name: flash, kind: flash, at: 1.5, locate: {temporal_flicker: 0}, expect: {temporal_flicker: down}}
      - {name: morph, kind: morph_face, source: faces/other.png, clips: [talk.mp4],
         expect: {identity_min: {below: 0.92}}}

Faults that generated video shows: ``duplicate_frame``, ``drop_stretch`` (``seconds``), ``flash``
(``gain``), ``swap_frames`` (each at ``at`` seconds), ``brightness_flicker`` (``amplitude``,
``period_frames``), ``morph_face`` (the face turns into the ``source`` portrait), ``freeze_mouth``
(the mouth stops from ``start`` while the audio goes on). ``clips`` limits a perturbation to some clips.

Expectations: ``up`` / ``down`` (perturbed minus original beyond ``min_change``, default 0; with
``null_ok: true`` a score that becomes null with its reason also passes), ``same`` (|delta| <= ``tol``,
default 0.02), ``{delta: D, tol: T}`` (|delta - D| <= T), ``{below: x}`` / ``{above: x}`` (the perturbed
value itself). ``locate: {metric: k}`` (faults at one frame) passes when the metric's per-frame series
puts its worst frame within k frames of the fault. A metric with an expectation is always scored.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from workbench.media import Audio, Clip, MediaError, load_audio, load_image

PERTURBATIONS = ("shuffle_frames", "drop_frames", "freeze", "noise", "audio_delay", "swap_audio",
                 "duplicate_frame", "drop_stretch", "flash", "swap_frames", "brightness_flicker", "morph_face",
                 "freeze_mouth")
# perturbations that put a fault at one known frame (`at`, seconds): the suite's `locate: {metric: tol}`
# checks that the metric's per-frame series has its worst frame there
LOCALISED = ("duplicate_frame", "drop_stretch", "flash", "swap_frames")
WORST = " (worst frame)"  # suffix of a metric name in a row that checks where the worst frame is
DEFAULT_SAME_TOL = 0.02


class CalibrationSuiteError(ValueError):
    """The calibration YAML is malformed; the message names the file, the entry and the fix."""


# --------------------------------------------------------------------------------------------------
# suite
# --------------------------------------------------------------------------------------------------
@dataclass
class Expectation:
    direction: str  # up | down | same | delta | below | above | worst_frame
    delta: float | None = None
    tol: float | None = None
    min_change: float = 0.0
    null_ok: bool = False  # up/down: a perturbed score that becomes null (with its reason) also passes
    bound: float | None = None  # below / above: the perturbed value itself must cross this bound

    def describe(self) -> str:
        if self.direction == "worst_frame":
            return f"worst frame at the fault (±{self.tol:g})"
        if self.direction in ("below", "above"):
            return f"perturbed {self.direction} {self.bound:g}"
        if self.null_ok:
            return self.direction + (f" (>{self.min_change:g})" if self.min_change else "") + " or null"
        if self.direction == "delta":
            return f"delta {self.delta:+g} ± {self.tol:g}"
        if self.direction == "same":
            return f"same (±{self.tol:g})"
        return self.direction + (f" (>{self.min_change:g})" if self.min_change else "")

    def check_value(self, original: float | None, perturbed: float | None) -> bool | None:
        """Pass/fail on the two values (None: not checkable), for every direction but worst_frame."""
        if self.direction == "below":
            return None if perturbed is None else perturbed < float(self.bound)
        if self.direction == "above":
            return None if perturbed is None else perturbed > float(self.bound)
        if self.null_ok and original is not None and perturbed is None:
            return True
        if original is None or perturbed is None:
            return None
        return bool(self.check(perturbed - original))

    def check(self, delta: float) -> bool:
        if self.direction == "up":
            return delta > self.min_change
        if self.direction == "down":
            return delta < -self.min_change
        if self.direction == "same":
            return abs(delta) <= (self.tol if self.tol is not None else DEFAULT_SAME_TOL)
        return abs(delta - float(self.delta)) <= float(self.tol)


@dataclass
class Perturbation:
    name: str
    kind: str
    params: dict[str, Any]
    expect: dict[str, Expectation]


@dataclass
class ClipSpec:
    path: Path
    image: str | None  # "first_frame", an image path, or None


@dataclass
class CalibrationSuite:
    path: Path
    name: str
    clips: list[ClipSpec]
    metrics: list[str]
    perturbations: list[Perturbation]
    max_seconds: float | None = None
    max_side: int | None = 512
    seed: int = 0


def _parse_expect(src: Path, pert: str, metric: str, raw: Any) -> Expectation:
    where = f"{src}: perturbation '{pert}', metric '{metric}'"
    if isinstance(raw, str):
        if raw not in ("up", "down", "same"):
            raise CalibrationSuiteError(f"{where}: expect '{raw}' is not up, down, same or {{delta: D, tol: T}}")
        return Expectation(raw, tol=DEFAULT_SAME_TOL if raw == "same" else None)
    if isinstance(raw, dict):
        d = raw.get("direction")
        if d in ("up", "down", "same"):
            return Expectation(d, tol=float(raw.get("tol", DEFAULT_SAME_TOL)), min_change=float(raw.get("min_change", 0.0)),
                               null_ok=bool(raw.get("null_ok", False)))
        for bound in ("below", "above"):
            if bound in raw:
                return Expectation(bound, bound=float(raw[bound]))
        if "delta" in raw:
            return Expectation("delta", delta=float(raw["delta"]), tol=float(raw.get("tol", 1.0)))
    raise CalibrationSuiteError(f"{where}: expect {raw!r} is not up, down, same, {{direction: up, min_change: x, "
                                "null_ok: true}, {delta: D, tol: T}, {below: x} or {above: x}")


def load_suite(path: str | Path) -> CalibrationSuite:
    """Read and validate a calibration YAML; clip paths resolve relative to the file."""
    from workbench.yamlfile import read_yaml_mapping

    path = Path(path)
    data = read_yaml_mapping(path, "calibration suite", "clips, metrics, perturbations", CalibrationSuiteError)
    for key in ("clips", "metrics", "perturbations"):
        if not data.get(key) or not isinstance(data[key], list):
            raise CalibrationSuiteError(f"{path}: '{key}' must be a non-empty list")
    clips = []
    for i, c in enumerate(data["clips"]):
        c = {"path": c} if isinstance(c, str) else c
        if not isinstance(c, dict) or not c.get("path"):
            raise CalibrationSuiteError(f"{path}: clips[{i}] needs a 'path'")
        clips.append(ClipSpec((path.parent / str(c["path"])).resolve(), c.get("image")))
    perts = []
    for i, p in enumerate(data["perturbations"]):
        if not isinstance(p, dict) or p.get("kind") not in PERTURBATIONS:
            raise CalibrationSuiteError(f"{path}: perturbations[{i}] needs kind in {', '.join(PERTURBATIONS)}, "
                                        f"got {p.get('kind') if isinstance(p, dict) else p!r}")
        name = str(p.get("name") or p["kind"])
        params = {k: v for k, v in p.items() if k not in ("name", "kind", "expect")}
        if "clips" in params and not (isinstance(params["clips"], list) and all(isinstance(c, str) for c in params["clips"])):
            raise CalibrationSuiteError(f"{path}: perturbation '{name}': 'clips' must be a list of clip file names")
        if p["kind"] in ("swap_audio", "morph_face"):
            if not params.get("source"):
                what = "an audio/video file" if p["kind"] == "swap_audio" else "a portrait of another person"
                raise CalibrationSuiteError(f"{path}: perturbation '{name}' ({p['kind']}) needs 'source': {what}")
            params["source"] = (path.parent / str(params["source"])).resolve()
        if p["kind"] in LOCALISED and "at" not in p:
            raise CalibrationSuiteError(f"{path}: perturbation '{name}' ({p['kind']}) needs 'at': the fault's time in seconds")
        expect = {str(m): _parse_expect(path, name, str(m), e) for m, e in (p.get("expect") or {}).items()}
        locate = p.get("locate") or {}
        if not isinstance(locate, dict) or not all(isinstance(v, (int, float)) for v in locate.values()):
            raise CalibrationSuiteError(f"{path}: perturbation '{name}': 'locate' must map metric names to a frame "
                                        "tolerance, e.g. {temporal_flicker: 0}")
        if locate and p["kind"] not in LOCALISED:
            raise CalibrationSuiteError(f"{path}: perturbation '{name}': 'locate' needs a fault at one frame "
                                        f"({', '.join(LOCALISED)})")
        params.pop("locate", None)
        for m, tol in locate.items():
            expect[f"{m}{WORST}"] = Expectation("worst_frame", tol=float(tol))
        perts.append(Perturbation(name, p["kind"], params, expect))
    metrics = [str(m) for m in data["metrics"]]
    for p in perts:  # a metric with an expectation is scored even when the suite's list forgets it
        for m in p.expect:
            if m.removesuffix(WORST) not in metrics:
                metrics.append(m.removesuffix(WORST))
    return CalibrationSuite(path, str(data.get("name") or path.stem), clips, metrics, perts,
                            data.get("max_seconds"), data.get("max_side", 512), int(data.get("seed", 0)))


# --------------------------------------------------------------------------------------------------
# perturbations
# --------------------------------------------------------------------------------------------------
def _fit_audio(audio: Audio | None, seconds: float) -> Audio | None:
    if audio is None:
        return None
    n = int(round(seconds * audio.sample_rate))
    s = audio.samples[:n]
    if len(s) < n:
        s = np.concatenate([s, np.zeros(n - len(s), np.float32)])
    return Audio(s, audio.sample_rate)


def perturb(clip: Clip, p: Perturbation, seed: int = 0) -> Clip:
    """Apply one perturbation to an in-memory clip (frames and/or audio); returns a new clip."""
    frames, fps, audio = clip.frames, clip.fps, clip.audio
    assert frames is not None, "perturb needs an in-memory clip (Clip.load())"
    rng = np.random.default_rng(seed)
    k = p.kind
    if k == "shuffle_frames":
        return Clip.from_frames(frames[rng.permutation(len(frames))], fps, audio)
    if k == "drop_frames":  # keep 1 of every `every` frames at the same fps: motion jumps, the clip shortens
        every = int(p.params.get("every", 2))
        kept = frames[::every]
        return Clip.from_frames(kept, fps, _fit_audio(audio, len(kept) / fps))
    if k == "freeze":  # hold one frame for a stretch
        start = int(round(float(p.params.get("start", 0.25)) * fps))
        n = max(2, int(round(float(p.params.get("seconds", 1.0)) * fps)))
        out = frames.copy()
        start = min(start, len(out) - 1)
        out[start:start + n] = out[start]
        return Clip.from_frames(out, fps, audio)
    if k == "noise":  # independent Gaussian noise per frame (sigma in 0-255 units)
        sigma = float(p.params.get("sigma", 8.0))
        out = np.empty_like(frames)
        for i, f in enumerate(frames):
            out[i] = np.clip(f.astype(np.float32) + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8)
        return Clip.from_frames(out, fps, audio)
    if k == "audio_delay":
        if audio is None:
            raise MediaError("clip has no audio track; audio_delay needs a clip with sound")
        return Clip.from_frames(frames, fps, audio.shift(float(p.params.get("frames", 5)) / fps))
    if k == "swap_audio":
        src = Path(p.params["source"])
        other = load_audio(src, sample_rate=audio.sample_rate if audio is not None else None)
        return Clip.from_frames(frames, fps, _fit_audio(other, len(frames) / fps))
    if k in LOCALISED:
        at = fault_frame(p, fps)
        if not 1 <= at < len(frames) - 2:
            raise MediaError(f"{p.kind} at {p.params['at']} s (frame {at}) is outside the clip's {len(frames)} frames; "
                             "pick a time inside it")
        out = frames.copy()
        if k == "duplicate_frame":  # frame `at` repeats the previous one (a stutter), length kept
            out[at] = out[at - 1]
            return Clip.from_frames(out, fps, audio)
        if k == "flash":  # one frame much brighter (a generation glitch)
            gain = float(p.params.get("gain", 1.6))
            out[at] = np.clip(out[at].astype(np.float32) * gain + 20, 0, 255).astype(np.uint8)
            return Clip.from_frames(out, fps, audio)
        if k == "swap_frames":  # frames `at` and `at + 1` in the wrong order
            out[[at, at + 1]] = out[[at + 1, at]]
            return Clip.from_frames(out, fps, audio)
        n = max(1, int(round(float(p.params.get("seconds", 0.4)) * fps)))  # drop_stretch: frames at..at+n-1 vanish
        kept = np.concatenate([frames[:at], frames[at + n:]])
        if audio is not None:  # the sound of the lost frames goes too: the rest stays in sync
            a, b = int(round(at / fps * audio.sample_rate)), int(round((at + n) / fps * audio.sample_rate))
            audio = Audio(np.concatenate([audio.samples[:a], audio.samples[b:]]), audio.sample_rate)
        return Clip.from_frames(kept, fps, audio)
    if k == "brightness_flicker":  # every frame's brightness swings +-amplitude (2%) with a short period
        amp, period = float(p.params.get("amplitude", 0.02)), float(p.params.get("period_frames", 4))
        gains = 1.0 + amp * np.sin(2 * np.pi * np.arange(len(frames)) / period + np.pi / 4)
        out = np.clip(frames.astype(np.float32) * gains[:, None, None, None], 0, 255).round().astype(np.uint8)
        return Clip.from_frames(out, fps, audio)
    if k == "morph_face":
        return Clip.from_frames(morph_towards(frames, load_image(Path(p.params["source"]))), fps, audio)
    if k == "freeze_mouth":
        return Clip.from_frames(freeze_mouth(frames, float(p.params.get("start", 0.0)), fps), fps, audio)
    raise ValueError(f"unknown perturbation kind {k!r}; known: {', '.join(PERTURBATIONS)}")


def fault_frame(p: Perturbation, fps: float) -> int:
    """The frame where a localised fault sits (`at` seconds)."""
    return int(round(float(p.params["at"]) * fps))


def _face_points(image: np.ndarray) -> np.ndarray:
    from workbench.faces import largest_face
    from workbench.metrics.identity import five_points

    face = largest_face(image)
    if face is None:
        raise MediaError(f"no face found in a {image.shape[1]}x{image.shape[0]} image; morph_face and freeze_mouth "
                         "need a visible, roughly frontal face")
    return five_points(face)


def morph_towards(frames: np.ndarray, portrait: np.ndarray) -> np.ndarray:
    """The clip's face turns into the portrait's person: the portrait is aligned onto the first frame's
    face (5-point similarity: eyes, nose, mouth corners) and cross-dissolved in, 0% at the first frame
    to 100% at the last; the background outside the face stays the clip's (feathered face mask)."""
    import cv2

    from workbench.faces import similarity_transform

    h, w = frames.shape[1:3]
    src = np.ascontiguousarray(portrait[..., :3].astype(np.uint8))
    dst_pts = _face_points(frames[0])
    m = similarity_transform(_face_points(src), dst_pts)
    warped = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    eye_dist = float(np.linalg.norm(dst_pts[0] - dst_pts[1]))
    centre = dst_pts.mean(axis=0)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (int(centre[0]), int(centre[1] - 0.2 * eye_dist)), (int(1.5 * eye_dist), int(2.1 * eye_dist)),
                0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.25 * eye_dist))[..., None]
    out = np.empty_like(frames)
    n = len(frames)
    for i, f in enumerate(frames):
        a = mask * (i / max(1, n - 1))
        out[i] = np.clip(f.astype(np.float32) * (1 - a) + warped * a, 0, 255).astype(np.uint8)
    return out


def freeze_mouth(frames: np.ndarray, start_seconds: float, fps: float) -> np.ndarray:
    """From `start_seconds` on, every frame shows the mouth of the frame at that time (pasted at the
    frame's own mouth position with a feathered mask) while the audio goes on: a mouth that stops."""
    import cv2

    from workbench.faces import LEFT_EYE, RIGHT_EYE, FaceTracker

    start = min(len(frames) - 1, max(0, int(round(start_seconds * fps))))
    tracker = FaceTracker()
    faces = [tracker.track(f, i) for i, f in enumerate(frames)]
    ref_face = faces[start]
    if ref_face is None:
        raise MediaError(f"no face at {start_seconds:g} s to take the mouth from; freeze_mouth needs a visible face")
    ref = frames[start].astype(np.float32)
    lm = ref_face.landmarks.astype(np.float64)
    eye = float(np.linalg.norm(lm[LEFT_EYE].mean(0) - lm[RIGHT_EYE].mean(0)))
    c0 = lm[48:68].mean(axis=0)
    hw, hh = int(0.85 * eye), int(0.7 * eye)  # half width / height of the pasted region around the mouth
    patch_mask = np.zeros((2 * hh, 2 * hw), np.float32)
    cv2.ellipse(patch_mask, (hw, hh), (int(hw * 0.85), int(hh * 0.8)), 0, 0, 360, 1.0, -1)
    patch_mask = cv2.GaussianBlur(patch_mask, (0, 0), max(1.0, 0.12 * eye))[..., None]
    x0, y0 = int(round(c0[0])) - hw, int(round(c0[1])) - hh
    h, w = frames.shape[1:3]
    if x0 < 0 or y0 < 0 or x0 + 2 * hw > w or y0 + 2 * hh > h:
        raise MediaError("the mouth region touches the frame edge; freeze_mouth needs the whole mouth in view")
    patch = ref[y0:y0 + 2 * hh, x0:x0 + 2 * hw]
    out = frames.copy()
    for i in range(start, len(frames)):
        face = faces[i]
        c = c0 if face is None else face.landmarks[48:68].astype(np.float64).mean(axis=0)
        x, y = int(round(c[0])) - hw, int(round(c[1])) - hh
        if x < 0 or y < 0 or x + 2 * hw > w or y + 2 * hh > h:
            continue
        region = out[i, y:y + 2 * hh, x:x + 2 * hw].astype(np.float32)
        out[i, y:y + 2 * hh, x:x + 2 * hw] = np.clip(region * (1 - patch_mask) + patch * patch_mask, 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------------
@dataclass
class CalibrationRow:
    clip: str
    perturbation: str
    metric: str
    original: float | None
    perturbed: float | None
    delta: float | None
    expected: str  # "" when the suite declares no expectation for this pair
    passed: bool | None  # None: no expectation, or a value could not be computed
    note: str = ""


@dataclass
class CalibrationResult:
    suite: str
    rows: list[CalibrationRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    @property
    def checked(self) -> list[CalibrationRow]:
        return [r for r in self.rows if r.expected]

    @property
    def passed(self) -> int:
        return sum(r.passed is True for r in self.rows)

    @property
    def failed(self) -> int:
        return sum(r.passed is False for r in self.rows)

    @property
    def unscored(self) -> int:
        """Expectations that could not be checked (a value was null)."""
        return sum(bool(r.expected) and r.passed is None for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "passed": self.passed, "failed": self.failed, "unscored": self.unscored,
                "errors": self.errors, "rows": [asdict(r) for r in self.rows]}


def _load_clip(spec: ClipSpec, suite: CalibrationSuite) -> tuple[Clip, np.ndarray | None]:
    if not spec.path.is_file():
        raise MediaError(f"{spec.path}: clip not found (listed in {suite.path}); fix its path, relative to the suite file")
    clip = Clip.open(spec.path)
    limit = int(math.ceil(suite.max_seconds * clip.fps)) if suite.max_seconds else None
    frames = clip.to_array(max_frames=limit, max_side=suite.max_side)
    n = len(frames)
    audio = _fit_audio(clip.audio, n / clip.fps) if clip.audio is not None else None
    mem = Clip.from_frames(frames, clip.fps, audio)
    image = None
    if spec.image == "first_frame":
        image = frames[0]
    elif spec.image:
        image = load_image((suite.path.parent / spec.image).resolve())
    return mem, image


def _resolvable(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """Split metric names into known ones and {unknown: error} (other metric modules may be absent)."""
    from workbench.metrics.registry import resolve

    ok, bad = [], {}
    for n in names:
        try:
            resolve([n])
            ok.append(n)
        except Exception as e:  # UnknownMetric, or a metric module that fails to import
            bad[n] = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ok, bad


def run_calibration(suite_path: Path, out_dir: Path | None = None,
                    progress: Callable[[str], None] | None = None) -> CalibrationResult:
    """Score every clip of the suite as is and under each perturbation; write calibration.json/.md.

    `out_dir` defaults to `<suite folder>/<suite stem>-calibration`. Returns the rows and pass counts.
    """
    from workbench.metrics.registry import evaluate

    suite = load_suite(suite_path)
    out_dir = Path(out_dir) if out_dir is not None else suite.path.parent / f"{suite.path.stem}-calibration"
    result = CalibrationResult(suite=suite.name, out_dir=out_dir)
    say = progress or (lambda _m: None)
    metrics, unknown = _resolvable(suite.metrics)
    for name, why in unknown.items():
        result.errors.append(f"metric '{name}': {why}")
    for spec in suite.clips:
        label = spec.path.name
        try:
            clip, image = _load_clip(spec, suite)
        except MediaError as e:
            result.errors.append(str(e))
            say(f"error: {e}")
            continue
        say(f"{label}: original")
        base = evaluate(clip, image=image, metrics=metrics, skip_inapplicable=False) if metrics else None
        for p in suite.perturbations:
            only = p.params.get("clips")
            if only and label not in only and spec.path.stem not in only:
                continue  # this fault needs what the clip lacks (a face, a soundtrack)
            say(f"{label}: {p.name}")
            try:
                pert = perturb(clip, p, suite.seed)
            except (MediaError, ValueError) as e:
                msg = f"{label}: perturbation '{p.name}' skipped: {e}"
                result.errors.append(msg)
                for m in [*suite.metrics, *(m for m in p.expect if m.endswith(WORST))]:
                    if m in p.expect:
                        result.rows.append(CalibrationRow(label, p.name, m, None, None, None,
                                                          p.expect[m].describe(), None, str(e)))
                continue
            after = evaluate(pert, image=image, metrics=metrics, skip_inapplicable=False) if metrics else None
            located = [m for m in p.expect if m.endswith(WORST)]
            for m in [*suite.metrics, *located]:
                exp = p.expect.get(m)
                if m.endswith(WORST):
                    base_m = m.removesuffix(WORST)
                    if base_m in unknown:
                        result.rows.append(CalibrationRow(label, p.name, m, None, None, None, exp.describe(), None,
                                                          unknown[base_m]))
                        continue
                    worst = after.worst_frame.get(base_m)
                    at = fault_frame(p, clip.fps)
                    passed = None if worst is None else abs(worst - at) <= float(exp.tol)
                    note = (f"worst frame {worst}, fault at frame {at}" if worst is not None
                            else after.errors.get(base_m, "no per-frame series"))
                    result.rows.append(CalibrationRow(label, p.name, m, None if worst is None else float(worst),
                                                      float(at), None, exp.describe(), passed, note))
                    continue
                if m in unknown:
                    if exp:
                        result.rows.append(CalibrationRow(label, p.name, m, None, None, None, exp.describe(),
                                                          None, unknown[m]))
                    continue
                o, a = base.scores.get(m), after.scores.get(m)
                delta = None if o is None or a is None else a - o
                note = base.errors.get(m) or after.errors.get(m) or ""
                if exp is None:
                    passed = None
                else:
                    passed = exp.check_value(o, a)
                    if passed and a is None:
                        note = after.errors.get(m, "")
                result.rows.append(CalibrationRow(label, p.name, m, o, a, delta, exp.describe() if exp else "",
                                                  passed, note))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "calibration.json").write_text(json.dumps(result.to_json(), indent=2))
    (out_dir / "calibration.md").write_text(render_markdown(result))
    return result


def _fmt(v: float | None) -> str:
    return "null" if v is None else f"{v:.4g}"


def render_markdown(result: CalibrationResult) -> str:
    """Markdown report: one table per clip, metric x perturbation."""
    lines = [f"# Metric calibration: {result.suite}", "",
             f"**{result.passed} passed, {result.failed} failed, {result.unscored} not scorable** "
             f"(of {len(result.checked)} declared expectations).", ""]
    if result.errors:
        lines += ["## Errors", ""] + [f"- {e}" for e in result.errors] + [""]
    for clip in dict.fromkeys(r.clip for r in result.rows):
        lines += [f"## {clip}", "", "| metric | perturbation | original | perturbed | delta | expected | result |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted((r for r in result.rows if r.clip == clip), key=lambda r: r.metric):
            status = {True: "pass", False: "**FAIL**", None: "n/a" if r.expected else ""}[r.passed]
            if r.note and r.passed is None and r.expected:
                status += f" ({r.note.replace('|', '/')})"
            lines.append(f"| {r.metric} | {r.perturbation} | {_fmt(r.original)} | {_fmt(r.perturbed)} | "
                         f"{'null' if r.delta is None else f'{r.delta:+.4g}'} | {r.expected or '-'} | {status} |")
        lines.append("")
    return "\n".join(lines)
