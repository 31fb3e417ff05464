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

The identity backend is the identity metric's (dlib-resnet128 offline, ArcFace ONNX when given).
"""
from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any, Iterator

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


class FaceSwapScores(Metric):
    """Identity to the target and to the source, mouth motion kept, flicker at the face boundary."""

    name = "faceswap"
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
        self.reasons = {}
        n = len(self._mouth)
        out = {i: np.asarray(f.result(), np.float64) for i, f in sorted(self._out_emb.items())}
        src = [np.asarray(f.result(), np.float64) for _, f in sorted(self._src_emb.items())]
        to_target = {i: float(np.dot(self.target, v)) for i, v in out.items()}
        values: dict[str, float | None] = {"identity_to_target": None, "identity_to_source": None,
                                           "mouth_motion_kept": None, "boundary_flicker": None}
        if out:
            values["identity_to_target"] = float(np.mean(list(to_target.values())))
        else:
            why = f"no face found in any of the {self._sampled} sampled frames of the clip"
            self.reasons["identity_to_target"] = self.reasons["identity_to_source"] = why
        if out and src:
            mean = np.mean(src, axis=0)
            mean /= max(float(np.linalg.norm(mean)), 1e-12)
            values["identity_to_source"] = float(np.mean([np.dot(mean, v) for v in out.values()]))
        elif out:
            self.reasons["identity_to_source"] = "no face found in the source video's sampled frames"
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


METRICS = [FaceSwapScores]
