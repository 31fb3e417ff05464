"""Face swap: put a target face (a persona) onto the person in a source video, keeping the source's
motion, mouth and soundtrack.

`faceswap-landmarks` is the model-free floor every learned swapper (FaceFusion, InsightFace's inswapper:
recipes in `recipes/`) must beat. It needs no weights beyond dlib's landmark model:

1. the target portrait's face gets its 68 landmarks once, and a Delaunay triangulation of them;
2. each source frame's face is tracked (`workbench.faces.FaceTracker`) and gets its 68 landmarks;
3. the target face is warped onto the source frame triangle by triangle (one affine map per triangle),
   with the *source frame's* landmarks as the geometry, so head pose, expression and mouth opening
   follow the source; the inner mouth (inside landmarks 60-67) stays the source's (teeth, tongue);
4. the warped face's colours are matched to the source skin (mean and spread per channel in CIE Lab,
   inside the face mask);
5. it is blended in with Poisson (seamless) cloning or a feathered mask.

Frames without a face pass through unchanged (counted in a warning); the source's soundtrack is kept.
Deterministic: the same inputs give the same frames.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from workbench.faces import similarity_transform, with_forehead
from workbench.media import Audio, Clip
from workbench.models.base import GenerationError, GenerationRequest, Generator, ProgressFn, register

INNER_MOUTH = slice(60, 68)
BLENDS = ("seamless", "feather")
COLOURS = ("lab", "none")


@dataclass
class TargetFace:
    """The persona: its image, 68 landmarks and the triangles (landmark index triples) of its face."""

    image: np.ndarray  # uint8 RGB
    landmarks: np.ndarray  # (68, 2) float32
    points: np.ndarray  # (68 or 78, 2) float32: the landmarks (+ forehead points, `with_forehead`)
    triangles: np.ndarray  # (K, 3) indices into `points`
    forehead: float = 0.0


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles of a point set as (K, 3) index triples, degenerate ones dropped."""
    from scipy.spatial import Delaunay

    tri = Delaunay(np.asarray(points, np.float64)).simplices.astype(np.int64)
    p = np.asarray(points, np.float64)[tri]
    area = np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                  - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))
    return tri[area > 1e-3]


def prepare_target(image: np.ndarray, name: str = "image", forehead: float = 0.0) -> TargetFace:
    """Find the largest face of the target portrait; GenerationError (one line) when there is none."""
    from workbench.faces import largest_face

    img = np.ascontiguousarray(np.asarray(image)[..., :3], dtype=np.uint8)
    face = largest_face(img)
    if face is None:
        raise GenerationError(f"{name}: no face found in the target image ({img.shape[1]}x{img.shape[0]}); pass a "
                              f"portrait with a clearly visible, roughly frontal face")
    points = with_forehead(face.landmarks, forehead)
    return TargetFace(img, face.landmarks.astype(np.float32), points, triangulate(points), forehead)


def warp_face(target: TargetFace, geometry: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The target face warped piecewise-affinely onto `geometry` (its 78 points in the frame): (warped
    float32 RGB of `shape` (h, w), coverage mask float32 in [0, 1])."""
    import cv2

    h, w = shape
    out = np.zeros((h, w, 3), np.float32)
    cover = np.zeros((h, w), np.float32)
    src_img = target.image.astype(np.float32)
    for tri in target.triangles:
        s = target.points[tri].astype(np.float32)
        d = geometry[tri].astype(np.float32)
        x0, y0 = np.floor(d.min(axis=0)).astype(int)
        x1, y1 = np.ceil(d.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        area = (d[1, 0] - d[0, 0]) * (d[2, 1] - d[0, 1]) - (d[2, 0] - d[0, 0]) * (d[1, 1] - d[0, 1])
        if x1 - x0 < 1 or y1 - y0 < 1 or abs(float(area)) < 0.5:
            continue  # outside the frame, or folded flat
        m = cv2.getAffineTransform(s, d - np.float32([x0, y0]))
        patch = cv2.warpAffine(src_img, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        tmask = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillConvexPoly(tmask, np.round((d - [x0, y0]) * 16).astype(np.int32), 1.0, cv2.LINE_AA, shift=4)
        free = tmask * (1.0 - cover[y0:y1, x0:x1])  # each pixel filled once (shared edges not doubled)
        out[y0:y1, x0:x1] += patch * free[..., None]
        cover[y0:y1, x0:x1] += free
    filled = cover > 1e-3
    out[filled] /= cover[filled][:, None]
    return out, np.clip(cover, 0.0, 1.0)


def persona_geometry(target: TargetFace, source: np.ndarray, weight: float) -> np.ndarray:
    """The 68 points the target face is warped onto in a source frame: the source's landmarks moved
    `weight` of the way towards the target's own face shape (the target's landmarks placed on the source
    face by a similarity fit of brows, eyes and nose). The mouth (48-67) keeps the source's shape, opening
    included, and only moves with the blended face; the jaw moves half as far (the chin follows the
    source's speech). weight 0: the source's geometry; 1: the target's proportions."""
    src = np.asarray(source, np.float64)
    if weight <= 0:
        return src.astype(np.float32)
    stable = np.r_[17:48]
    m = similarity_transform(target.landmarks[stable], src[stable])
    placed = np.asarray(target.landmarks, np.float64) @ m[:, :2].T + m[:, 2]
    out = src + weight * (placed - src)
    jaw = np.r_[0:17]
    out[jaw] = src[jaw] + 0.5 * weight * (placed[jaw] - src[jaw])
    mouth = np.r_[48:68]
    shift = weight * (placed[mouth].mean(axis=0) - src[mouth].mean(axis=0))
    out[mouth] = src[mouth] + shift
    return out.astype(np.float32)


def face_mask(geometry: np.ndarray, shape: tuple[int, int], keep_mouth: bool = True) -> np.ndarray:
    """uint8 {0, 255} mask of the hull of the face points (68 landmarks, + forehead), the inner mouth cut
    out when `keep_mouth`."""
    import cv2

    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.round(geometry).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    if keep_mouth:
        cv2.fillPoly(mask, [np.round(geometry[INNER_MOUTH]).astype(np.int32)], 0)
    return mask


def match_colour(warped: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift and scale the warped face's CIE Lab channels to the source frame's mean and spread inside
    `mask` (Reinhard et al. 2001 colour transfer, restricted to the face); float32 RGB out."""
    import cv2

    inside = mask > 0
    if inside.sum() < 16:
        return warped
    a = cv2.cvtColor(np.clip(warped, 0, 255).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    b = cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    pa, pb = a[inside], b[inside]
    mu_a, sd_a = pa.mean(axis=0), pa.std(axis=0) + 1e-6
    mu_b, sd_b = pb.mean(axis=0), pb.std(axis=0) + 1e-6
    ratio = np.clip(sd_b / sd_a, 0.5, 2.0)  # a flat or noisy face must not blow the contrast up
    out = (a - mu_a) * ratio + mu_b
    return np.clip(cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB) * 255.0, 0, 255)


def blend(warped: np.ndarray, frame: np.ndarray, mask: np.ndarray, how: str, face_width: float,
          feather: float = 0.08) -> np.ndarray:
    """Put the (colour-matched) warped face into the frame inside `mask`: Poisson cloning ("seamless",
    cv2.seamlessClone, Perez et al. 2003) or alpha blending through a feathered mask ("feather"). The
    mask is first shrunk by `feather` x the face width, which is also the width of the soft edge."""
    import cv2

    h, w = mask.shape
    k = max(3, int(round(face_width * feather)) | 1)  # odd kernel
    inner = cv2.erode(mask, np.ones((k, k), np.uint8))
    if inner.max() == 0:
        return frame
    src = np.clip(warped, 0, 255).astype(np.uint8)
    if how == "seamless":
        m = inner.copy()
        m[:2, :], m[-2:, :], m[:, :2], m[:, -2:] = 0, 0, 0, 0  # Poisson needs a border around the region
        ys, xs = np.nonzero(m)
        if len(xs):
            x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
            centre = (int((x0 + x1 + 1) // 2), int((y0 + y1 + 1) // 2))
            try:
                return cv2.seamlessClone(src, frame, m, centre, cv2.NORMAL_CLONE)
            except cv2.error:
                pass  # a region OpenCV cannot place: fall back to feathering
    alpha = cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (2 * k + 1, 2 * k + 1), 0)[..., None]
    return np.clip(frame.astype(np.float32) * (1 - alpha) + warped * alpha + 0.5, 0, 255).astype(np.uint8)


def swap_frame(target: TargetFace, frame: np.ndarray, landmarks: np.ndarray, blend_how: str = "seamless",
               colour: str = "lab", keep_mouth: bool = True, target_shape: float = 0.0,
               feather: float = 0.08) -> np.ndarray:
    """One frame with the target face put onto the source face whose 68 landmarks are `landmarks`."""
    h, w = frame.shape[:2]
    geometry = with_forehead(persona_geometry(target, landmarks, target_shape), target.forehead)
    warped, cover = warp_face(target, geometry, (h, w))
    mask = face_mask(geometry, (h, w), keep_mouth)
    mask[cover < 0.5] = 0
    if colour == "lab":
        warped = match_colour(warped, frame, mask)
    width = float(np.ptp(geometry[:, 0]))
    return blend(warped, frame, mask, blend_how, width, feather)


@register
class FaceSwapLandmarks(Generator):
    """Model-free face swap: the target face warped onto each source frame's landmarks and blended in."""

    name = "faceswap-landmarks"
    task = "face-swap"
    description = ("model-free face swap: dlib landmarks, per-triangle affine warp of the target face onto each "
                   "source frame, Lab colour match, feathered blend (params.blend: seamless for Poisson cloning); "
                   "the source's mouth, motion and audio kept")
    requires = frozenset({"video", "image"})
    accepts = frozenset({"video", "image"})
    defaults = {"blend": "feather", "colour": "lab", "keep_mouth": True, "max_side": 0, "seconds": 0.0,
                "redetect_every": 5, "target_shape": 0.5, "forehead": 0.2, "feather": 0.04}

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        """A source video and a target image present; blend, colour and sizes valid."""
        super().check_request(request, params, strict)
        p = cls.resolve_params(getattr(request, "params", None) if params is None else params)
        if p["blend"] not in BLENDS:
            raise GenerationError(f"model '{cls.name}': blend must be one of {', '.join(BLENDS)}, got {p['blend']!r}")
        if p["colour"] not in COLOURS:
            raise GenerationError(f"model '{cls.name}': colour must be one of {', '.join(COLOURS)}, got {p['colour']!r}")
        if p["max_side"] and not 32 <= int(p["max_side"]) <= 8192:
            raise GenerationError(f"model '{cls.name}': max_side must be 0 (the source's size) or in [32, 8192], "
                                  f"got {p['max_side']}")
        if p["seconds"] < 0 or p["redetect_every"] < 1:
            raise GenerationError(f"model '{cls.name}': seconds must be >= 0 (0: the whole video) and "
                                  f"redetect_every >= 1")

    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> Clip:
        from workbench.faces import FaceTracker

        type(self).check_request(request, self.params, strict=False)
        p = self.params
        source: Clip = request.video
        name = request.video_path or (str(source.path) if source.path is not None else "video")
        target = prepare_target(request.image, request.image_path or "image", float(p["forehead"]))
        fps = float(source.fps)
        limit = int(round(float(p["seconds"]) * fps)) if p["seconds"] else 0
        total = min(limit, source.num_frames) if limit and source.num_frames else (limit or source.num_frames)
        tracker = FaceTracker(redetect_every=int(p["redetect_every"]))
        stats = {"frames": 0, "no_face": 0}

        def frames() -> Iterator[np.ndarray]:
            for i, frame in enumerate(source.iter_frames(max_side=int(p["max_side"]) or None)):
                if limit and i >= limit:
                    break
                frame = np.ascontiguousarray(frame[..., :3])
                face = tracker.track(frame, i)
                stats["frames"] += 1
                if face is None:
                    stats["no_face"] += 1
                    yield frame
                else:
                    yield swap_frame(target, frame, face.landmarks, p["blend"], p["colour"], bool(p["keep_mouth"]),
                                     float(p["target_shape"]), float(p["feather"]))
                if progress is not None:
                    progress(i + 1, max(total, i + 1))

        folder = Path(tempfile.mkdtemp(prefix="wb-faceswap-"))
        try:
            staged, shape = _stage(frames(), folder / "frames.u8")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        n = stats["frames"]
        if n == 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise GenerationError(f"{name}: the source video has no frames; pass a video with a face in it")
        self.warnings = []
        if stats["no_face"]:
            self.warnings.append(f"{name}: no face found in {stats['no_face']} of {n} frames; those frames pass "
                                 f"through unchanged")
        # frames on disk, mapped (memory does not grow with the clip), exact (no lossy staging encode)
        clip = Clip.from_frames(np.memmap(staged, np.uint8, "c", shape=(n, *shape)), fps, _cut(source.audio, n / fps))
        weakref.finalize(clip, shutil.rmtree, str(folder), True)  # the staged frames go with the clip
        return clip


def _stage(frames: Iterator[np.ndarray], path: Path) -> tuple[Path, tuple[int, ...]]:
    """Write uint8 frames one after another into a raw file; (the file, one frame's shape)."""
    shape: tuple[int, ...] = (0, 0, 3)
    with open(path, "wb") as f:
        for frame in frames:
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            shape = frame.shape
            f.write(frame.tobytes())
    return path, shape


def _cut(audio: Audio | None, seconds: float) -> Audio | None:
    """The source soundtrack trimmed (or padded with silence) to the swapped clip's length."""
    if audio is None or not len(audio.samples):
        return None
    need = int(round(seconds * audio.sample_rate))
    s = audio.samples[:need]
    return Audio(np.pad(s, (0, need - len(s))), audio.sample_rate)
