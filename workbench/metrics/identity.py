"""Identity preservation: does the person in the video stay the person in the reference image?

The reference image's face is embedded once; frames sampled evenly through the clip (up to
`SAMPLE_FPS` per second, at most `MAX_SAMPLES`) are embedded from the tracked face every metric shares
(`FrameStep.face`), and compared by cosine similarity. Frames without a face count as failures of
identity (a clip whose face vanishes does not preserve it).

Backends (one per evaluation, named in the record; never mixed):

- ``dlib-resnet128`` (offline, default): dlib's 128-d face descriptor, L2-normalised here.
  Same-person threshold ``DLIB_SAME_PERSON_COSINE = 0.92``. dlib's documented rule is euclidean
  distance < 0.6 on its *raw* descriptors, whose norm is about 1.5 (measured 1.39-1.62 over 115 real
  faces), not 1: on unit vectors that rule is cosine > 1 - 0.6**2 / (2 * 1.5**2) = 0.92. Measured on
  ../shared/media (115 faces: 8 portraits + 16 frames of each talking clip; 434 cross-file same-person
  and 5346 different-person pairs): ROC AUC 0.99999, Youden-optimal cut 0.912, at 0.92 TPR 0.995 /
  FPR 0.0002. The naive 0.82 (treating the raw vectors as unit-norm) accepts 67% of different-person
  pairs (the hardest negative, hallo_6 vs sadtalker_happy, scores 0.924).
- ``arcface-onnx`` (learned): an insightface ArcFace recognition model (``w600k_r50.onnx`` from
  buffalo_l, ``glintr100.onnx`` from antelopev2) run with onnxruntime, used when its file is given
  (option ``arcface_model=PATH`` or env ``WORKBENCH_ARCFACE``). Faces are aligned to 112x112 with a
  5-point similarity transform onto the standard ArcFace template, scaled (x - 127.5) / 127.5, RGB,
  NCHW; the 512-d output is L2-normalised. Same-person threshold ``ARCFACE_SAME_PERSON_COSINE = 0.28``:
  the ArcFace cosine threshold at FAR = 0.1% on LFW reported by Deb et al., "AdvFaces" (IJCB 2020);
  validate it on your own footage with `roc_auc` / the identity tests before relying on pass rates.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from workbench.faces import (LEFT_EYE, RIGHT_EYE, DlibEmbedder, Face, FaceEmbedder, detect_faces, dlib_available, finished,
                             similarity_transform)
from workbench.media import cap_side
from workbench.metrics.base import EvalInputs, FrameStep, Metric, MetricUnavailable, ScoreSpec

SAMPLE_FPS = 2.0  # frames per second of video that are embedded (identity drifts slowly; each embedding ~70 ms)
MAX_SAMPLES = 48  # cap on embedded frames per clip (spread evenly when the clip is long)
DLIB_SAME_PERSON_COSINE = DlibEmbedder.same_person_cosine  # 0.92: see module docstring (ROC on real faces)
ARCFACE_SAME_PERSON_COSINE = 0.28  # ArcFace at FAR=0.1% on LFW (Deb et al., AdvFaces, IJCB 2020)
ARCFACE_ENV = "WORKBENCH_ARCFACE"
REFERENCE_MAX_SIDE = 1024

# insightface's ArcFace alignment template for a 112x112 crop: eye (image left), eye (image right),
# nose tip, mouth corner (image left), mouth corner (image right)
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ARCFACE_SIZE = 112


# --------------------------------------------------------------------------------------------------
# ArcFace (onnxruntime)
# --------------------------------------------------------------------------------------------------
def five_points(face: Face) -> np.ndarray:
    """The 5 ArcFace keypoints from iBUG-68 landmarks: eye centres, nose tip, mouth corners (5, 2)."""
    lm = face.landmarks.astype(np.float64)
    return np.stack([lm[LEFT_EYE].mean(axis=0), lm[RIGHT_EYE].mean(axis=0), lm[30], lm[48], lm[54]])


def align_arcface(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Warp the face with these 5 keypoints onto the 112x112 ArcFace template (uint8 RGB)."""
    import cv2

    m = similarity_transform(points, ARCFACE_TEMPLATE)
    img = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    return cv2.warpAffine(img, m, (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)


def arcface_model_path(explicit: str | Path | None = None) -> Path | None:
    """The ArcFace .onnx file to use: the option if given, else $WORKBENCH_ARCFACE, else None."""
    p = explicit or os.environ.get(ARCFACE_ENV)
    return Path(p).expanduser() if p else None


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401

        return True
    except Exception:
        return False



def reference_embedding(embedder: Any, inputs: EvalInputs, what: str = "reference") -> np.ndarray:
    """The identity a clip is compared with: an Element's stored embedding (the mean over its portraits)
    when it was made by this embedder, else the face of `inputs.image` (MetricUnavailable naming the
    file when it shows none). `what` names the image in that message ("reference", "target")."""
    stored = inputs.face_reference
    if stored is not None and stored.backend == embedder.name:
        vec = np.asarray(stored.embedding, dtype=np.float64).ravel()
        return vec / max(float(np.linalg.norm(vec)), 1e-12)
    ref = cap_side(np.asarray(inputs.image)[..., :3].astype(np.uint8), REFERENCE_MAX_SIDE)
    faces = detect_faces(ref)
    if not faces:
        where = f" {inputs.image_path}" if inputs.image_path else ""
        raise MetricUnavailable(f"no face found in the {what} image{where} ({ref.shape[1]}x{ref.shape[0]}); "
                                "pass a portrait with a clearly visible, roughly frontal face")
    return embedder.embed(ref, faces[0])

class ArcFaceEmbedder:
    """insightface ArcFace recognition model (ONNX) behind the `FaceEmbedder` protocol."""

    same_person_cosine = ARCFACE_SAME_PERSON_COSINE

    def __init__(self, model_path: str | Path, providers: list[str] | None = None):
        path = Path(model_path)
        if not path.is_file():
            raise MetricUnavailable(f"{path}: ArcFace model not found; pass arcface_model=PATH to an insightface "
                                    f"recognition .onnx (w600k_r50.onnx / glintr100.onnx) or unset {ARCFACE_ENV}")
        try:
            import onnxruntime as ort
        except ImportError:
            raise MetricUnavailable("onnxruntime is not installed; `pip install onnxruntime` (or onnxruntime-gpu) "
                                    "to use the ArcFace identity backend") from None
        if providers is None:
            avail = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as e:
            raise MetricUnavailable(f"{path}: cannot be loaded by onnxruntime ({type(e).__name__}); "
                                    "pass an insightface ArcFace .onnx") from None
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        fixed = [d for d in shape[2:] if isinstance(d, int)]
        if len(shape) != 4 or shape[1] != 3 or any(d != ARCFACE_SIZE for d in fixed):
            raise MetricUnavailable(f"{path}: input shape {shape} is not (N, 3, 112, 112); "
                                    "pass an insightface ArcFace recognition model")
        self.input_name = inp.name
        self.path = path
        self.name = f"arcface-onnx:{path.stem}"

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """Embed aligned (N, 112, 112, 3) uint8 RGB crops -> (N, D) L2-normalised float32."""
        x = (np.asarray(crops, np.float32) - 127.5) / 127.5
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out = np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32).reshape(len(x), -1)
        return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-9)

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_aligned(align_arcface(image, five_points(face))[None])[0]

    def embed_later(self, image: np.ndarray, face: Face) -> Future:
        return finished(self.embed(image, face))  # onnxruntime releases the GIL: no helper needed


_ARCFACE: dict[tuple[str, float], ArcFaceEmbedder] = {}


def cached_arcface(path: Path) -> ArcFaceEmbedder:
    """One onnxruntime session per model file (reloaded when the file changes), shared by every clip scored."""
    key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else 0.0)
    if key not in _ARCFACE:
        _ARCFACE[key] = ArcFaceEmbedder(path)
    return _ARCFACE[key]


# --------------------------------------------------------------------------------------------------
# The metric
# --------------------------------------------------------------------------------------------------
def sample_indices(num_frames: int, fps: float, sample_fps: float = SAMPLE_FPS, max_samples: int = MAX_SAMPLES) -> set[int]:
    """Frame indices to embed: every round(fps / sample_fps)-th frame, thinned evenly to `max_samples`."""
    if num_frames <= 0:
        return set()
    stride = max(1, int(round(fps / sample_fps))) if fps > 0 else 1
    idx = np.arange(0, num_frames, stride)
    if len(idx) > max_samples:
        idx = idx[np.linspace(0, len(idx) - 1, max_samples).round().astype(int)]
    return set(int(i) for i in idx)


class IdentityPreservation(Metric):
    """Cosine similarity of the video's face to the reference image's face, over sampled frames."""

    name = "identity"
    requires = frozenset({"image"})
    scores = (
        ScoreSpec("identity_similarity", True, "[-1, 1]",
                  "mean cosine similarity of face embeddings, reference image vs sampled frames with a face",
                  "ArcFace (Deng et al., CVPR 2019) face-ID similarity as in identity-preserving generation evals", rewards_stillness=True),
        ScoreSpec("identity_min", True, "[-1, 1]", "lowest per-frame cosine similarity (the worst identity drift)",
                  "ArcFace (Deng et al., CVPR 2019)", rewards_stillness=True),
        ScoreSpec("identity_pass_rate", True, "[0, 1]",
                  "share of sampled frames whose face passes the backend's same-person threshold (no face = fail)",
                  "face verification thresholds: dlib 0.6 L2 rule (calibrated), ArcFace FAR=0.1% (AdvFaces)", rewards_stillness=True),
        ScoreSpec("face_detect_rate", True, "[0, 1]", "share of sampled frames in which a face is found",
                  "dlib HOG face detector (Dalal & Triggs 2005)", rewards_stillness=True),
    )

    def __init__(self, backend: str = "auto", arcface_model: str | Path | None = None,
                 sample_fps: float = SAMPLE_FPS, max_samples: int = MAX_SAMPLES):
        if backend not in ("auto", "dlib", "arcface"):
            raise ValueError(f"identity backend must be auto, dlib or arcface, got {backend!r}")
        self.backend_choice = backend
        self.arcface_model = arcface_model
        self.sample_fps = float(sample_fps)
        self.max_samples = int(max_samples)
        self.embedder: Any = None

    # backend selection -------------------------------------------------------------------------------
    def _make_embedder(self) -> FaceEmbedder:
        path = arcface_model_path(self.arcface_model)
        if self.backend_choice == "arcface" or (self.backend_choice == "auto" and self.arcface_model):
            if path is None:
                raise MetricUnavailable(f"identity backend 'arcface' needs a model: pass arcface_model=PATH or set {ARCFACE_ENV}")
            return cached_arcface(path)
        if self.backend_choice == "auto" and path is not None:
            if path.is_file() and onnxruntime_available():
                return cached_arcface(path)
            warnings.warn(f"{ARCFACE_ENV}={path} is not usable (missing file or onnxruntime); "
                          "identity falls back to dlib-resnet128", stacklevel=2)
        if not dlib_available():
            raise MetricUnavailable("dlib face models not installed; `pip install dlib-bin face-recognition-models` "
                                    f"or give an ArcFace model ({ARCFACE_ENV})")
        return DlibEmbedder()

    def backend(self) -> str:
        if self.embedder is None:
            self.embedder = self._make_embedder()
        return self.embedder.name

    @property
    def threshold(self) -> float:
        if self.embedder is None:
            self.embedder = self._make_embedder()
        return float(self.embedder.same_person_cosine)

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        path = arcface_model_path()
        return {"dlib-resnet128": dlib_available(),
                "arcface-onnx": bool(path and path.is_file() and onnxruntime_available())}

    # streaming -----------------------------------------------------------------------------------------
    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        if self.embedder is None:
            self.embedder = self._make_embedder()
        self.ref = reference_embedding(self.embedder, inputs, "reference")
        self.targets = sample_indices(inputs.video.num_frames, inputs.video.fps, self.sample_fps, self.max_samples)
        self.stride = max(1, int(round(inputs.video.fps / self.sample_fps)))
        self.sampled = 0
        self._embeddings: dict[int, Future] = {}  # sampled frame index -> its embedding (faceless frames absent)
        self._last_index = -1

    def _wanted(self, index: int) -> bool:
        if self.targets:
            return index in self.targets
        return index % self.stride == 0 and self.sampled < self.max_samples  # frame count unknown

    def update(self, step: FrameStep) -> None:
        self._last_index = step.index
        if not self._wanted(step.index):
            return
        self.sampled += 1
        face = step.face  # in the (possibly downscaled) analysis frame, like step.frame
        if face is None:
            return
        self._embeddings[step.index] = self.embedder.embed_later(step.frame, face)  # dlib: off the GIL

    def finish(self) -> dict[str, float | None]:
        if self.sampled == 0:
            raise MetricUnavailable("the video has no frames to compare with the reference image")
        by_frame = {i: float(np.dot(self.ref, v.result())) for i, v in self._embeddings.items()}
        sims = np.asarray(list(by_frame.values()), dtype=np.float64)  # sampled frames with a face, in order
        per_frame = [by_frame.get(i) for i in range(self._last_index + 1)]
        self.series = {"identity_similarity": per_frame, "identity_min": list(per_frame)}
        if not sims.size:
            why = (f"no face found in any of the {self.sampled} sampled frames (face_detect_rate 0); the video "
                   "does not show the person")
            self.reasons = {"identity_similarity": why, "identity_min": why}
        return {
            "identity_similarity": float(sims.mean()) if sims.size else None,
            "identity_min": float(sims.min()) if sims.size else None,
            "identity_pass_rate": float((sims > self.threshold).sum() / self.sampled),
            "face_detect_rate": float(sims.size / self.sampled),
        }


def roc_auc(positive: np.ndarray | list[float], negative: np.ndarray | list[float]) -> float:
    """Area under the ROC curve: P(a positive scores above a negative), ties counting one half
    (the Mann-Whitney U statistic divided by n_pos * n_neg)."""
    p = np.sort(np.asarray(positive, dtype=np.float64))
    n = np.sort(np.asarray(negative, dtype=np.float64))
    if p.size == 0 or n.size == 0:
        raise ValueError("roc_auc needs at least one positive and one negative score")
    below = np.searchsorted(n, p, side="left")  # negatives strictly below each positive
    ties = np.searchsorted(n, p, side="right") - below
    return float((below + 0.5 * ties).sum() / (p.size * n.size))


METRICS = [IdentityPreservation]
