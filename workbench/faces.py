"""Faces: detection, 68-point landmarks and identity embeddings.

The offline backend is dlib (HOG detector, 68-point shape predictor, 128-d ResNet face embedding),
whose weights ship in the PyPI package `face-recognition-models`. A learned ArcFace backend lives in
`workbench.metrics.identity` and plugs in through `FaceEmbedder`.

Landmark indices follow the iBUG 68-point scheme: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
outer lips 48-59, inner lips 60-67.
"""
from __future__ import annotations

import importlib.util
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from workbench.face_helper import helper

# iBUG-68 index groups
JAW = slice(0, 17)
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
DLIB_SAME_PERSON_DISTANCE = 0.6  # dlib's documented euclidean threshold for 128-d embeddings
DETECT_SIDE = 256  # short side at which the tracker runs the HOG detector (faces >= ~80 px there)


class FaceModelsMissing(RuntimeError):
    """The dlib model files are not installed."""


@lru_cache(maxsize=1)
def dlib_model_dir() -> Path:
    """Folder holding dlib's .dat files from `face-recognition-models` (found without importing it,
    since its __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissing("dlib face models not installed; run `pip install face-recognition-models dlib-bin`")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (folder / "shape_predictor_68_face_landmarks.dat").exists():
        raise FaceModelsMissing(f"{folder}: dlib .dat files missing; reinstall face-recognition-models")
    return folder


def dlib_available() -> bool:
    try:
        import dlib  # noqa: F401

        dlib_model_dir()
        return True
    except Exception:
        return False


@lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    folder = dlib_model_dir()
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
    )


@dataclass
class Face:
    """One detected face: box (left, top, right, bottom) in pixels, detector score, 68 landmarks (x, y)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray  # (68, 2) float32

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0

    def mouth_opening(self) -> float:
        """See `mouth_opening`."""
        return mouth_opening(self.landmarks)

    def eye_aspect_ratio(self) -> float:
        """Mean eye aspect ratio (Soukupova & Cech 2016): small when the eyes are closed."""
        def ear(e: np.ndarray) -> float:
            return float((np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])) / (2 * np.linalg.norm(e[0] - e[3]) + 1e-6))
        return (ear(self.landmarks[LEFT_EYE]) + ear(self.landmarks[RIGHT_EYE])) / 2.0


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap (mean of the three vertical pairs 61-67, 62-66, 63-65) over the inter-ocular
    distance. Normalising by the eyes rather than the mouth width keeps lip rounding (which narrows
    the mouth) from inflating the opening."""
    lm = np.asarray(landmarks, dtype=np.float64)
    gap = np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    eyes = np.linalg.norm(lm[LEFT_EYE].mean(axis=0) - lm[RIGHT_EYE].mean(axis=0)) + 1e-6
    return float(gap / eyes)


def with_forehead(landmarks: np.ndarray, lift: float) -> np.ndarray:
    """68 landmarks plus 10 forehead points: the brows (17-26) moved up the face (along chin 8 -> nose
    bridge 27) by `lift` x that distance, so a face region can include the forehead. (78, 2) float32;
    the 68 alone when `lift` <= 0."""
    lm = np.asarray(landmarks, np.float64)
    if lift <= 0:
        return lm.astype(np.float32)
    return np.vstack([lm, lm[17:27] + lift * (lm[27] - lm[8])]).astype(np.float32)


def _to_rect(box):
    import dlib

    return dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))


def detect_faces(image: np.ndarray, upsample: int | None = None) -> list[Face]:
    """All faces in an RGB uint8 image, largest first, each with 68 landmarks.

    Small images (< 300 px short side) are upsampled once so that faces down to ~40 px are found.
    """
    detector, predictor, _ = _dlib_models()
    img = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    if upsample is None:
        upsample = 1 if min(img.shape[:2]) < 300 else 0
    rects, scores, _ = detector.run(img, upsample, 0.0)
    faces = []
    for r, s in zip(rects, scores):
        shape = predictor(img, r)
        lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        faces.append(Face((r.left(), r.top(), r.right(), r.bottom()), float(s), lm))
    faces.sort(key=lambda f: f.width, reverse=True)
    return faces


def detect_faces_fast(image: np.ndarray, detect_side: int = DETECT_SIDE) -> list[Face]:
    """`detect_faces` with the HOG detector run on a copy shrunk to `detect_side` px (short side).

    Detection cost grows with pixel count; talking-head faces are large, so finding the box at low
    resolution and placing the 68 landmarks at full resolution gives the same landmarks ~3x faster
    at 512 px. Falls back to full resolution when the small copy shows no face.
    """
    h, w = image.shape[:2]
    if min(h, w) <= detect_side:
        return detect_faces(image)
    import cv2

    s = detect_side / float(min(h, w))
    small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    found = detect_faces(small, upsample=0)
    if not found:
        return detect_faces(image)
    out = []
    for f in found:
        box = tuple(int(round(v / s)) for v in f.box)
        face = landmarks_in_box(image, box)
        out.append(Face(box, f.score, face.landmarks))
    return out


def largest_face(image: np.ndarray) -> Face | None:
    faces = detect_faces(image)
    return faces[0] if faces else None


def landmarks_in_box(image: np.ndarray, box: tuple[int, int, int, int]) -> Face:
    """Run the 68-point predictor in a known box (a tracked face), skipping detection."""
    _, predictor, _ = _dlib_models()
    img = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    shape = predictor(img, _to_rect(box))
    lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
    return Face(tuple(int(v) for v in box), 0.0, lm)


class FaceEmbedder(Protocol):
    """Turns a face in an image into an L2-normalised identity vector."""

    name: str
    same_person_cosine: float  # cosine similarity above which two faces are called the same person

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray: ...

    def embed_later(self, image: np.ndarray, face: Face) -> Future:
        """`embed` as a Future, for a backend that can compute it off the caller's thread (else done)."""
        ...


def finished(value: Any) -> Future:
    """A Future that already holds `value`."""
    out: Future = Future()
    out.set_result(value)
    return out


class DlibEmbedder:
    """dlib's 128-d ResNet face embedding (LFW 99.38%), L2-normalised.

    dlib's same-person rule is euclidean distance < 0.6 on its raw vectors, whose length is about 1.5
    (1.39-1.62 over 115 real faces), not 1: that is cosine > 1 - 0.36 / (2 * 1.5**2) = 0.92. On the
    real faces in ../shared/media this cut passes 99.5% of same-person and 0.02% of different-person pairs.
    """

    name = "dlib-resnet128"
    same_person_cosine = 0.92

    def __init__(self, jitter: int = 0):
        self.jitter = jitter

    def chip(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The aligned 150x150 face chip the descriptor network reads (dlib's own alignment)."""
        import dlib

        _, predictor, _ = _dlib_models()
        img = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        shape = predictor(img, _to_rect(face.box))
        return dlib.get_face_chip(img, shape, size=150, padding=0.25)

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return _normalised(chip_descriptor(self.chip(image, face), self.jitter))

    def embed_later(self, image: np.ndarray, face: Face) -> Future:
        """`embed`, with the descriptor (~0.1 s, holding the GIL) computed in a helper process
        (`workbench.face_helper`) so the caller's threads run on meanwhile; the same vector, computed
        inline where the helper cannot run."""
        chip = self.chip(image, face)
        h = helper()
        if h is None:
            return finished(_normalised(chip_descriptor(chip, self.jitter)))
        out: Future = Future()

        def done(f: Future) -> None:
            try:
                raw = f.result()
            except Exception:  # the helper died: compute it here, the result is the same
                raw = chip_descriptor(chip, self.jitter)
            out.set_result(_normalised(raw))

        h.submit(chip, self.jitter).add_done_callback(done)
        return out


def _normalised(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-9)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) mapping src -> dst,
    as a 2x3 matrix (Umeyama 1991, no reflection)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    var_s = (s ** 2).sum() / len(src)
    scale = float((sig * sign).sum() / var_s) if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def chip_descriptor(chip: np.ndarray, jitter: int = 0) -> np.ndarray:
    """dlib's raw 128-d descriptor of an aligned face chip (runs in the helper process too)."""
    _, _, encoder = _dlib_models()
    return np.asarray(encoder.compute_face_descriptor(chip, jitter), dtype=np.float32)


class FaceTracker:
    """Follows the main face through a frame stream cheaply.

    Runs the detector every `redetect_every` frames (or when the face is lost) and, in between, the
    68-point predictor inside the last box moved by the landmarks' own motion. Detection costs ~20x
    the landmark step, so this keeps per-frame landmarks affordable at video rate.
    """

    def __init__(self, redetect_every: int = 5):
        self.redetect_every = max(1, redetect_every)
        self._box: tuple[int, int, int, int] | None = None
        self._last_detect = -10**9
        self._last_center: np.ndarray | None = None

    def track(self, frame: np.ndarray, index: int) -> Face | None:
        if self._box is None or index - self._last_detect >= self.redetect_every:
            face = self._detect(frame, index)
            if face is not None or self._box is None:
                return face
        face = landmarks_in_box(frame, self._box)
        center = face.landmarks[JAW].mean(axis=0)
        if self._last_center is not None:
            dx, dy = center - self._last_center
            l, t, r, b = self._box
            self._box = (int(round(l + dx)), int(round(t + dy)), int(round(r + dx)), int(round(b + dy)))
        self._last_center = center
        return face

    def _detect(self, frame: np.ndarray, index: int) -> Face | None:
        faces = detect_faces_fast(frame)
        self._last_detect = index
        if not faces:
            self._box, self._last_center = None, None
            return None
        face = faces[0]
        if self._last_center is not None and len(faces) > 1:  # stay on the same person
            face = min(faces, key=lambda f: np.linalg.norm(f.landmarks[JAW].mean(axis=0) - self._last_center))
        self._box = face.box
        self._last_center = face.landmarks[JAW].mean(axis=0)
        return face
