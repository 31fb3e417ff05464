"""Face swap: did the persona arrive, did the source person leave, and did the performance stay?

A face-swapped clip is scored against the target face (the case's `image:`, or an Element's stored
embedding) and against the footage it started from (the case's `video:`, `EvalInputs.source`). The
source is decoded alongside the clip, frame i against frame i (both at analysis size; a source of
another size is resized to the clip's).

- `identity_to_target`: mean cosine similarity of the clip's faces (sampled frames, as `identity`
  samples) to the target face. High is good.
- `identity_to_source`: mean cosine similarity of the same faces to the source person (the mean
  embedding of the source's faces at the same frames). Low is good: a swap that leaves the source's
  identity in place has not swapped.
- `mouth_motion_kept`: Pearson correlation of the lip-opening series (`workbench.faces.mouth_opening`,
  every frame) of the clip and of the source. High is good: the persona says what the source said.
- `boundary_flicker`: how much the swap's change to the picture (clip minus source) flickers from one
  frame to the next inside a band around the face boundary (the hull of the 68 landmarks and the
  forehead), mean absolute RGB change / 255. Lower is better; a swap that sits still on a still head
  scores 0, a seam that shimmers does not. Head motion moves the band too, so compare models on the
  same source clip.

- `identity_gain`: how far the swap moved the face, against the unswapped source as the baseline: the
  smaller of the gain towards the target (identity_to_target minus the same similarity of the source's
  own faces, at the same frames) and the drop away from the source (the source's faces' similarity to
  their own mean minus identity_to_source). 0 for a clip that is its source (no swap), about 0.12 on
  dlib for a clip that really shows another person; a swap that only blurs the source away, or brings
  in a third face, gains on one side only and scores near 0.
- `swap_took`: 1 when the swap took, else 0. It took when the clip's face is verified as the target
  (identity_to_target at or above the backend's calibrated line, `SwapRule.target`), is no longer verified
  as the source (identity_to_source below the same-person line) and moved (identity_gain at least
  `MIN_GAIN`, above what re-encoding alone does). `swap_verdict` words it: "took", "did not take" with
  why, or "no swap" (the clip is still the source: identity_gain under `MIN_GAIN` and the source's face
  still verified).

Calibration (dlib-resnet128; `benchmarks/bench_faceswap.py` recomputes every figure): real faces of
../shared/media (18 talking clips, 24 sampled frames each, and the 8 portraits) make swap scenarios: a
source clip (person A), a target image (person B: a portrait or one frame of a clip) and a "swapped" clip
that is really someone: B from another recording (the swap took: 264 scenarios from the RDJ, LILY,
STW1 and STW2 groups), A itself (no swap, 1050), A from another recording (224) or a third person
(24712). The whole rule (target line, source line 0.92, `MIN_GAIN`) is fitted at a false-accept rate
of 0.5%: leave-one-identity-out (22 folds: the line fitted on the scenarios without one person, judged
on those with them) it accepts 0.52% of the held-out negatives (402 of 76684, pooled over folds) and
rejects none of the 528 held-out positives (fold lines 0.920-0.934, median 0.931); fitted on every
scenario the line is 0.9265, shipped as 0.927. A stricter 0.1% fit (line 0.943) gives a held-out FAR of
0.27% but rejects 17% of real same-person clips: these 128-d embeddings do not separate people better.
The "no swap" and "source again" negatives are all rejected by the source line. For ArcFace the lines
are its published same-person threshold (uncalibrated here: no weights in the tests).

What it reads (the benchmark, 4 real sources x 4 portraits, 2 s at 256 px): the unswapped source "no swap"
(identity_gain exactly 0); the model-free floor's swaps "took" for their own persona in 15 of 16 (its
pasted eyes, brows, nose and lips are the persona's own pixels: dlib reads 0.93-0.97 to her, the range of
real recordings of one person; the 16th, a black-and-white portrait on real3dportrait_May, 0.916) and "did
not take" against another persona in 16 of 16, although identity_gain towards that other woman is
positive in 13 (a man's face that became a woman's moved towards every woman): the gain alone is not
the verdict. The 128-d dlib embedding sees the inner face, not the hair or head shape a swap keeps.

Length rule: frames are paired by index (clip frame i with source frame i). A swap keeps every frame of
its source, so a source shorter than the clip (by more than one frame) is not what the clip was swapped
from: every face-swap score is then null with that one reason. A longer source is fine (a swap of the
first seconds, the floor's `seconds`): the scores cover the clip's frames.

The identity backend is the identity metric's (dlib-resnet128 offline, ArcFace ONNX when given).
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from workbench.faces import FaceTracker, mouth_opening, with_forehead
from workbench.media import cap_side
from workbench.metrics.base import ANALYSIS_MAX_SIDE, EvalInputs, FrameStep, Metric, MetricUnavailable, ScoreSpec
from workbench.metrics.identity import (MAX_SAMPLES, SAMPLE_FPS, IdentityPreservation, reference_embedding,
                                        sample_indices)

BAND = 0.12  # half-width of the boundary band, as a share of the face width
FOREHEAD = 0.2  # the face region reaches this share of the chin-to-bridge distance above the brows
MIN_MOUTH_FRAMES = 10  # frames with a face in both clips needed for a correlation
MIN_MOUTH_SPREAD = 1e-3  # lip-opening standard deviation below which a mouth is called still
MIN_GAIN = 0.02  # identity_gain below this is no change: re-encoding a clip moves it by < 0.005 (dlib)
SWAP_FAR = 0.005  # the false-accept rate the dlib target line is fitted at (module docstring)
DLIB_TOOK_TARGET = 0.927  # dlib identity_to_target line of "swap took", fitted at SWAP_FAR (module docstring)


@dataclass(frozen=True)
class SwapRule:
    """The lines of "swap took" for one identity backend: verified as the target (`target`), no longer
    verified as the source (`source`, the same-person line) and moved (`min_gain`)."""

    target: float
    source: float
    min_gain: float = MIN_GAIN
    calibrated: bool = True

    def took(self, to_target: float, to_source: float, gain: float) -> bool:
        return to_target >= self.target and to_source < self.source and gain >= self.min_gain


def swap_rule(backend: str | None) -> SwapRule:
    """The "swap took" lines of an identity backend ("dlib-resnet128", "arcface-onnx:NAME"): dlib's fitted
    on real faces (module docstring); ArcFace's are its published same-person threshold (uncalibrated here)."""
    from workbench.metrics.identity import ARCFACE_SAME_PERSON_COSINE, DLIB_SAME_PERSON_COSINE

    if str(backend or "").startswith("arcface"):
        return SwapRule(ARCFACE_SAME_PERSON_COSINE, ARCFACE_SAME_PERSON_COSINE, calibrated=False)
    return SwapRule(DLIB_TOOK_TARGET, DLIB_SAME_PERSON_COSINE)


def swap_verdict(scores: Mapping[str, Any], backend: str | None = None) -> tuple[str, str]:
    """("took" | "did not take" | "no swap" | "not scored", why) for one clip's face-swap scores (a record's
    `scores`, an EvalResult's); `backend` is the identity backend that made them (dlib when None)."""
    t, s, gain = (scores.get(k) for k in ("identity_to_target", "identity_to_source", "identity_gain"))
    if t is None or s is None or gain is None:
        return "not scored", "the face-swap identity scores are missing (see the record's score errors)"
    rule = swap_rule(backend)
    if gain < rule.min_gain and s >= rule.source:
        return "no swap", (f"the face is still the source person's (identity_to_source {s:.3f} >= {rule.source:g}) and "
                           f"did not move (identity_gain {gain:+.3f} < {rule.min_gain:g})")
    if rule.took(t, s, gain):
        return "took", (f"verified as the target (identity_to_target {t:.3f} >= {rule.target:g}), not as the source "
                        f"({s:.3f} < {rule.source:g}); identity_gain {gain:+.3f}")
    why = []
    if t < rule.target:
        why.append(f"not verified as the target (identity_to_target {t:.3f} < {rule.target:g})")
    if s >= rule.source:
        why.append(f"still verified as the source (identity_to_source {s:.3f} >= {rule.source:g})")
    if gain < rule.min_gain:
        why.append(f"the face barely moved (identity_gain {gain:+.3f} < {rule.min_gain:g})")
    return "did not take", "; ".join(why)


def length_mismatch(source_frames: int, clip_frames: int) -> str | None:
    """Why a source cannot be the footage a clip was swapped from, by length (None when it can): a swap keeps
    every frame of its source, so a source shorter than the clip by more than one frame is another video."""
    if source_frames and clip_frames and source_frames < clip_frames - 1:
        return (f"the source has {source_frames} frame{'s' if source_frames != 1 else ''} and the clip {clip_frames}: "
                "face-swap scores pair clip frame i with source frame i, and a swap keeps every frame of its "
                "source, so this is not the footage the clip was swapped from; pass that video as the source")
    return None


class FaceSwapScores(Metric):
    """Identity to the target and to the source, mouth motion kept, flicker at the face boundary."""

    name = "faceswap"
    version = "2"  # identity_gain, swap_took; the length rule
    requires = frozenset({"image", "source"})
    scores = (
        ScoreSpec("identity_to_target", True, "[-1, 1]",
                  "mean cosine similarity of the swapped clip's faces (sampled frames) to the target face",
                  "face-swap identity retrieval / ID similarity as in FaceShifter (Li et al. 2020) and SimSwap "
                  "(Chen et al. 2020), with the identity metric's embedding"),
        ScoreSpec("identity_to_source", False, "[-1, 1]",
                  "mean cosine similarity of the swapped clip's faces to the source person (mean embedding of "
                  "the source's faces at the same frames)",
                  "source-identity leakage, the counterpart of ID retrieval (FaceShifter, SimSwap evaluations)"),
        ScoreSpec("mouth_motion_kept", True, "[-1, 1]",
                  "Pearson correlation of the lip-opening series (inner-lip gap / eye distance, every frame) of "
                  "the swapped clip and the source",
                  "expression/pose preservation of face-swap evaluations (FaceShifter, SimSwap), on the mouth"),
        ScoreSpec("boundary_flicker", False, "[0, 1]",
                  "mean absolute frame-to-frame change of (clip - source) / 255 in a band around the face "
                  "boundary (landmark hull + forehead, +-12% of the face width)",
                  "temporal flicker (VBench temporal_flickering, Huang et al. 2024) restricted to the swap's seam"),
        ScoreSpec("identity_gain", True, "[-2, 2]",
                  "how far the swap moved the face from the unswapped source: the smaller of the gain towards the "
                  "target (identity_to_target minus the source's own) and the drop from the source (the source's "
                  "self-similarity minus identity_to_source); 0 = no swap",
                  "ID retrieval of face-swap evaluations (FaceShifter, SimSwap) measured against the unswapped "
                  "source as the baseline"),
        ScoreSpec("swap_took", True, "{0, 1}",
                  "1 when the clip's face is verified as the target (dlib line 0.927: held-out FAR 0.5% on real "
                  "faces), no longer as the source (0.92) and identity_gain >= 0.02; else 0",
                  "face verification at a stated false-accept rate (calibrated leave-one-identity-out on "
                  "../shared/media; benchmarks/bench_faceswap.py)"),
    )

    def __init__(self, backend: str = "auto", arcface_model: str | Path | None = None,
                 sample_fps: float = SAMPLE_FPS, max_samples: int = MAX_SAMPLES):
        self._identity = IdentityPreservation(backend, arcface_model, sample_fps, max_samples)
        self.sample_fps = float(sample_fps)
        self.max_samples = int(max_samples)
        self.embedder: Any = None
        self.score_backends: dict[str, str] = {"mouth_motion_kept": "dlib-landmarks",
                                               "boundary_flicker": "pixel-residual"}

    def backend(self) -> str:
        if self.embedder is None:
            self.embedder = self._identity._make_embedder()
        return self.embedder.name

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        return IdentityPreservation.backends_available()

    # streaming -----------------------------------------------------------------------------------------
    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        if inputs.source is None:
            raise MetricUnavailable("needs the source video the swap started from (a case's `video:`)")
        if self.embedder is None:
            self.embedder = self._identity._make_embedder()
        self.target = reference_embedding(self.embedder, inputs, "target")  # the persona (image or Element)
        self.samples = sample_indices(inputs.video.num_frames, inputs.video.fps, self.sample_fps, self.max_samples)
        self.stride = max(1, int(round(inputs.video.fps / self.sample_fps)))
        self._source: Iterator[np.ndarray] | None = iter(inputs.source.iter_frames())
        self._tracker = FaceTracker()
        self._out_emb: dict[int, Future] = {}
        self.baseline: dict[str, float] = {}  # the unswapped source's own identity scores
        why = length_mismatch(inputs.source.num_frames, inputs.video.num_frames)  # the headers' frame counts
        if why:
            raise MetricUnavailable(why)
        self._src_emb: dict[int, Future] = {}
        self._mouth: list[tuple[float | None, float | None]] = []
        self._flicker: list[float | None] = []
        self._prev_residual: np.ndarray | None = None
        self._sampled = 0
        self._source_frames = 0

    def _next_source(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """The source frame paired with the clip's next frame, at the clip's analysis size (None past its end)."""
        if self._source is None:
            return None
        full = next(self._source, None)
        if full is None:
            self._source = None
            return None
        self._source_frames += 1
        frame = cap_side(full, ANALYSIS_MAX_SIDE)
        if frame.shape[:2] != shape[:2]:
            import cv2

            frame = cv2.resize(frame, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(frame[..., :3])

    def _wanted(self, index: int) -> bool:
        if self.samples:
            return index in self.samples
        return index % self.stride == 0 and self._sampled < self.max_samples

    def update(self, step: FrameStep) -> None:
        src = self._next_source(step.frame.shape)
        out_face = step.face
        src_face = self._tracker.track(src, step.index) if src is not None else None
        self._mouth.append((mouth_opening(out_face.landmarks) if out_face is not None else None,
                            mouth_opening(src_face.landmarks) if src_face is not None else None))
        if self._wanted(step.index):
            self._sampled += 1
            if out_face is not None:
                self._out_emb[step.index] = self.embedder.embed_later(step.frame, out_face)
            if src_face is not None:
                self._src_emb[step.index] = self.embedder.embed_later(src, src_face)
        self._flicker.append(self._boundary_change(step.frame, src, out_face or src_face))

    def _boundary_change(self, frame: np.ndarray, src: np.ndarray | None, face: Any) -> float | None:
        """Mean |residual_t - residual_{t-1}| / 255 in the band around the face boundary (None without a
        source frame, a face or a previous residual)."""
        if src is None:
            self._prev_residual = None
            return None
        residual = frame.astype(np.int16) - src.astype(np.int16)
        prev, self._prev_residual = self._prev_residual, residual
        if face is None or prev is None:
            return None
        band = boundary_band(face.landmarks, frame.shape[:2])
        if not band.any():
            return None
        return float(np.abs(residual[band] - prev[band]).mean() / 255.0)

    def finish(self) -> dict[str, float | None]:
        if self._sampled == 0:
            raise MetricUnavailable("the video has no frames to score")
        n = len(self._mouth)
        why = length_mismatch(self._source_frames, n)  # what decoded (headers can be missing or wrong)
        if why:
            raise MetricUnavailable(why)
        self.reasons = {}
        out = {i: np.asarray(f.result(), np.float64) for i, f in sorted(self._out_emb.items())}
        src = [np.asarray(f.result(), np.float64) for _, f in sorted(self._src_emb.items())]
        to_target = {i: float(np.dot(self.target, v)) for i, v in out.items()}
        values: dict[str, float | None] = {"identity_to_target": None, "identity_to_source": None,
                                           "mouth_motion_kept": None, "boundary_flicker": None,
                                           "identity_gain": None, "swap_took": None}
        if out:
            values["identity_to_target"] = float(np.mean(list(to_target.values())))
        else:
            why = f"no face found in any of the {self._sampled} sampled frames of the clip"
            for k in ("identity_to_target", "identity_to_source", "identity_gain", "swap_took"):
                self.reasons[k] = why
        if out and src:
            mean = np.mean(src, axis=0)
            mean /= max(float(np.linalg.norm(mean)), 1e-12)
            t, s = values["identity_to_target"], float(np.mean([np.dot(mean, v) for v in out.values()]))
            values["identity_to_source"] = s
            # the baseline: the unswapped source's own faces, at the same sampled frames
            t0 = float(np.mean([np.dot(self.target, v) for v in src]))
            s0 = float(np.mean([np.dot(mean, v) for v in src]))
            gain = min(t - t0, s0 - s)
            values["identity_gain"] = gain
            values["swap_took"] = float(swap_rule(self.embedder.name).took(t, s, gain))
            self.baseline = {"identity_to_target": t0, "identity_to_source": s0}
        elif out:
            why = "no face found in the source video's sampled frames"
            for k in ("identity_to_source", "identity_gain", "swap_took"):
                self.reasons[k] = why
        values["mouth_motion_kept"] = self._mouth_correlation()
        flicker = [v for v in self._flicker if v is not None]
        if flicker:
            values["boundary_flicker"] = float(np.mean(flicker))
        else:
            self.reasons["boundary_flicker"] = "no pair of consecutive frames with a face and a source frame"
        self.series = {"identity_to_target": [to_target.get(i) for i in range(n)],
                       "boundary_flicker": list(self._flicker)}
        return values

    def _mouth_correlation(self) -> float | None:
        both = [(a, b) for a, b in self._mouth if a is not None and b is not None]
        if len(both) < MIN_MOUTH_FRAMES:
            self.reasons["mouth_motion_kept"] = (f"only {len(both)} frames show a face in both the clip and the source "
                                                 f"(at least {MIN_MOUTH_FRAMES} needed)")
            return None
        a, b = np.asarray(both, np.float64).T
        if a.std() < MIN_MOUTH_SPREAD or b.std() < MIN_MOUTH_SPREAD:
            which = "source's" if b.std() < MIN_MOUTH_SPREAD else "clip's"
            self.reasons["mouth_motion_kept"] = f"the {which} mouth does not move; there is no motion to keep"
            return None
        return float(np.corrcoef(a, b)[0, 1])


def boundary_band(landmarks: np.ndarray, shape: tuple[int, int], band: float = BAND,
                  forehead: float = FOREHEAD) -> np.ndarray:
    """Boolean mask of the pixels within `band` x the face width of the face region's boundary (the convex
    hull of the 68 landmarks extended up the forehead)."""
    import cv2

    h, w = shape
    points = with_forehead(landmarks, forehead)
    region = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(region, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    r = max(1, int(round(band * float(np.ptp(np.asarray(landmarks)[:17, 0])))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return (cv2.dilate(region, kernel) > 0) & ~(cv2.erode(region, kernel) > 0)


# --------------------------------------------------------------------------------------------------
# Calibration of "swap took" on real same/different-person faces (benchmarks/bench_faceswap.py)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SwapScenario:
    """A stand-in swap made of real faces: a source clip (person A), a target image (person B) and a
    "swapped" clip that really shows someone; `took` when that someone is B. Holds the clip's scores."""

    took: bool
    people: tuple[str, str, str]  # the source's, the target's and the clip's person
    kind: str  # "took", "no swap", "source again" (A, another recording), "other person"
    to_target: float  # identity_to_target
    to_source: float  # identity_to_source
    gain: float  # identity_gain


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def swap_scenarios(faces: Mapping[str, np.ndarray], person: Mapping[str, str],
                   target_frames: int = 3) -> list[SwapScenario]:
    """Every (source clip, target image, clip) scenario of these faces: `faces` maps a file to its faces'
    unit embeddings ((n, D): a clip's sampled frames, or one portrait's face), `person` a file to its
    identity (a file not named is a person of its own). Sources are the files with more than one face;
    targets are the portraits and `target_frames` frames of each clip (first, middle, last); the
    "swapped" clip is every other file, scored exactly as the metric scores (means over its faces)."""
    who = {f: person.get(f, f) for f in faces if len(faces[f])}
    targets: list[tuple[str, np.ndarray]] = []
    for f in who:
        e = np.asarray(faces[f], np.float64)
        picks = sorted({0, len(e) // 2, len(e) - 1})[:target_frames] if len(e) > 1 else [0]
        targets.extend((f, e[j]) for j in picks)
    out: list[SwapScenario] = []
    for a in (f for f in who if len(faces[f]) > 1):
        src = np.asarray(faces[a], np.float64)
        mean = _unit(src.mean(axis=0))
        s0 = float((src @ mean).mean())
        for tf, target in targets:
            if who[tf] == who[a]:
                continue  # a swap onto the same person is not a swap
            t0 = float((src @ target).mean())
            out.append(SwapScenario(False, (who[a], who[tf], who[a]), "no swap", t0, s0, 0.0))
            for o in who:
                if o in (a, tf):
                    continue
                clip = np.asarray(faces[o], np.float64)
                t, s = float((clip @ target).mean()), float((clip @ mean).mean())
                kind = ("took" if who[o] == who[tf] else "source again" if who[o] == who[a] else "other person")
                out.append(SwapScenario(kind == "took", (who[a], who[tf], who[o]), kind, t, s, min(t - t0, s0 - s)))
    return out


def fit_target_line(scenarios: list[SwapScenario], far: float = SWAP_FAR, source_line: float = 0.92,
                    min_gain: float = MIN_GAIN) -> float:
    """The lowest identity_to_target line at which the whole rule (with `source_line` and `min_gain`)
    accepts at most `far` of these scenarios' negatives (those where the swap did not take)."""
    neg = [x for x in scenarios if not x.took]
    if not neg:
        raise ValueError("fit_target_line needs scenarios where the swap did not take")
    passing = np.sort([x.to_target for x in neg if x.to_source < source_line and x.gain >= min_gain])[::-1]
    k = int(np.floor(far * len(neg)))  # negatives the line may let through
    return float(np.nextafter(passing[k], np.inf)) if k < len(passing) else -1.0


def held_out_rates(scenarios: list[SwapScenario], far: float = SWAP_FAR, source_line: float = 0.92,
                   min_gain: float = MIN_GAIN) -> dict[str, Any]:
    """Leave-one-identity-out: for each person, the target line is fitted on the scenarios without them
    and judged on the scenarios with them (as source, target or clip); false accepts and rejects pooled
    over the folds. Returns far, frr, the folds' lines (min, median, max), n_negative, n_positive."""
    people = sorted({p for x in scenarios for p in x.people})
    fa = fr = n_neg = n_pos = 0
    lines = []
    for held in people:
        train = [x for x in scenarios if held not in x.people]
        test = [x for x in scenarios if held in x.people]
        if not test or not any(not x.took for x in train):
            continue
        line = fit_target_line(train, far, source_line, min_gain)
        lines.append(line)
        rule = SwapRule(line, source_line, min_gain)
        for x in test:
            accepted = rule.took(x.to_target, x.to_source, x.gain)
            if x.took:
                n_pos += 1
                fr += not accepted
            else:
                n_neg += 1
                fa += accepted
    return {"far": fa / max(n_neg, 1), "frr": fr / max(n_pos, 1), "false_accepts": fa, "false_rejects": fr,
            "n_negative": n_neg, "n_positive": n_pos, "folds": len(lines),
            "lines": (float(min(lines)), float(np.median(lines)), float(max(lines))) if lines else None}


METRICS = [FaceSwapScores]
