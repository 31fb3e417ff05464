"""Every face in the shot, followed through a frame stream, with its mouth signals: the input of the
lip-sync speaker search (`workbench.metrics.lipsync`).

The shared `FaceTracker` follows one face (the largest); lip-sync must not assume that the largest face
is the one speaking (two anchors, a split-screen debate). `FaceTracks`:

- scans the whole frame for faces every `SCAN_SECONDS` (HOG on a copy whose short side is 360 px, one
  upsample: faces down to ~40 px of a 360 px frame; when that finds none, the frame up to 720 px), and
  starts a track for each face that no track covers;
- between scans follows every track by re-detecting inside a crop around its last box, scaled so that
  the face is ~110 px wide (cheap, and small faces get the detector's full resolution), then places the
  68 landmarks on the full-resolution frame;
- ends a track whose face is not found for `LOST_SECONDS` (a face that leaves the frame, turns to
  profile or hides behind a hand gives NaN, not a guess).

Per frame and track it records the two mouth signals of the offline backend (inner-lip opening over
the eye distance, brightness of the mouth's inside) and the face's centre and width relative to the
frame, so a result can say which face spoke ("left", "right") and when.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from workbench.faces import LEFT_EYE, RIGHT_EYE

SCAN_SECONDS = 1.0  # full-frame face scan period
LOST_SECONDS = 0.4  # a track not re-found for this long ends
SCAN_SIDE = 360  # short side of the full-frame scan (one upsample: faces >= ~40 px at this size)
SCAN_SIDE_MAX = 720  # second scan, when the first finds nothing
CROP_FACE_PX = 110  # a tracked face is re-detected in a crop scaled to this face width
MAX_TRACKS = 6
PATCH_W, PATCH_H = 48, 32  # mouth patch: 1.5 x 1.0 eye distances around the mouth centre


@dataclass
class Track:
    id: int
    box: tuple[float, float, float, float]  # full-frame pixels (l, t, r, b)
    last_seen: int
    rows: dict = field(default_factory=dict)  # frame index -> (opening, brightness, cx, cy, width)


def _iou(a, b) -> float:
    l, t = max(a[0], b[0]), max(a[1], b[1])
    r, bt = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, r - l) * max(0.0, bt - t)
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def _scan(frame: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Face boxes (full-frame pixels) of a whole-frame scan."""
    import cv2

    from workbench.faces import _dlib_models

    detector = _dlib_models()[0]
    h, w = frame.shape[:2]
    for side in (SCAN_SIDE, SCAN_SIDE_MAX):
        s = min(1.0, side / float(min(h, w)))
        img = frame if s >= 1.0 else cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        rects, _, _ = detector.run(np.ascontiguousarray(img[..., :3]), 1, 0.0)
        if len(rects) or s >= 1.0:
            return [(r.left() / s, r.top() / s, r.right() / s, r.bottom() / s) for r in rects]
    return []


def _redetect(frame: np.ndarray, box) -> tuple[float, float, float, float] | None:
    """The face near `box`, found in a crop around it scaled so the face is ~CROP_FACE_PX wide."""
    import cv2

    from workbench.faces import _dlib_models

    detector = _dlib_models()[0]
    h, w = frame.shape[:2]
    bw, bh = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = 0.9 * max(bw, bh) + 4
    l, t = int(max(0, cx - half)), int(max(0, cy - half))
    r, b = int(min(w, cx + half)), int(min(h, cy + half))
    if r - l < 16 or b - t < 16:
        return None
    s = CROP_FACE_PX / max(bw, 1.0)
    crop = frame[t:b, l:r]
    crop = cv2.resize(crop, (max(1, round((r - l) * s)), max(1, round((b - t) * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    rects, scores, _ = detector.run(np.ascontiguousarray(crop[..., :3]), 0, -0.2)
    if not len(rects):
        return None
    best = max(zip(rects, scores), key=lambda rs: rs[1] - 0.01 * math.hypot(
        (rs[0].left() + rs[0].right()) / 2 / s + l - cx, (rs[0].top() + rs[0].bottom()) / 2 / s + t - cy))[0]
    return (best.left() / s + l, best.top() / s + t, best.right() / s + l, best.bottom() / s + t)


def mouth_patch_brightness(gray: np.ndarray, landmarks: np.ndarray) -> float:
    """Mean grey level of the mouth's inside: the mouth region cut out level (by the eye line),
    scaled so the eye distance spans `PATCH_W` / 1.5 px, centre half of the patch. Dark when open."""
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)
    le, re = lm[LEFT_EYE].mean(axis=0), lm[RIGHT_EYE].mean(axis=0)
    d = float(np.linalg.norm(re - le)) + 1e-6
    angle = math.degrees(math.atan2(re[1] - le[1], re[0] - le[0]))
    c = lm[48:68].mean(axis=0)
    m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), angle, PATCH_W / (1.5 * d))
    m[0, 2] += PATCH_W / 2 - c[0]
    m[1, 2] += PATCH_H / 2 - c[1]
    patch = cv2.warpAffine(gray, m, (PATCH_W, PATCH_H), flags=cv2.INTER_AREA)
    return float(patch[PATCH_H // 4: 3 * PATCH_H // 4, PATCH_W // 4: 3 * PATCH_W // 4].mean())


def mouth_brightness_full(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """`mouth_patch_brightness` on an RGB frame, converting only the mouth's neighbourhood to grey."""
    import cv2

    lm = np.asarray(landmarks, np.float64)
    h, w = frame.shape[:2]
    eyes = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))) + 1.0
    c = lm[48:68].mean(0)
    pad = 1.2 * eyes + 2
    l, t = int(max(0, c[0] - pad)), int(max(0, c[1] - pad))
    r, b = int(min(w, c[0] + pad + 1)), int(min(h, c[1] + pad + 1))
    if r - l < 2 or b - t < 2:
        return math.nan
    gray = cv2.cvtColor(np.ascontiguousarray(frame[t:b, l:r, :3]), cv2.COLOR_RGB2GRAY)
    return mouth_patch_brightness(gray, lm - np.array([l, t], np.float64))


class FaceTracks:
    """Every face of a frame stream (see the module doc). Feed frames in order with `update`."""

    def __init__(self, fps: float):
        self.fps = float(fps)
        self.scan_every = max(1, int(round(SCAN_SECONDS * self.fps)))
        self.lost_after = max(2, int(round(LOST_SECONDS * self.fps)))
        self.tracks: list[Track] = []
        self.ended: list[Track] = []
        self._next = 0
        self.n_frames = 0
        self.size = (0, 0)

    def update(self, frame: np.ndarray, index: int) -> None:
        from workbench.faces import landmarks_in_box, mouth_opening

        h, w = frame.shape[:2]
        self.size = (w, h)
        self.n_frames = max(self.n_frames, index + 1)
        for tr in self.tracks:  # follow every live track
            box = _redetect(frame, tr.box)
            if box is not None:
                tr.box, tr.last_seen = box, index
        if index % self.scan_every == 0 or (not self.tracks and index % max(1, self.scan_every // 4) == 0):
            for box in _scan(frame):
                if all(_iou(box, tr.box) < 0.3 for tr in self.tracks) and len(self.tracks) < MAX_TRACKS:
                    self.tracks.append(Track(self._next, box, index))
                    self._next += 1
        keep = []
        for tr in self.tracks:
            if index - tr.last_seen >= self.lost_after:
                self.ended.append(tr)
                continue
            if tr.last_seen == index:
                face = landmarks_in_box(frame, tuple(int(round(v)) for v in tr.box))
                lm = face.landmarks
                cx, cy = (tr.box[0] + tr.box[2]) / 2 / w, (tr.box[1] + tr.box[3]) / 2 / h
                tr.rows[index] = (mouth_opening(lm), mouth_brightness_full(frame, lm), cx, cy, (tr.box[2] - tr.box[0]) / w)
            keep.append(tr)
        # two tracks on one face (a scan re-found a followed face): keep the older
        out: list[Track] = []
        for tr in keep:
            if any(_iou(tr.box, o.box) > 0.5 and o.last_seen == tr.last_seen for o in out):
                self.ended.append(tr)
                continue
            out.append(tr)
        self.tracks = out

    def signals(self, min_frames: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(mouth (K, T, 2), geometry (K, T, 3) = centre x, centre y, width relative to the frame), NaN
        where track k shows no face; tracks with fewer than `min_frames` frames are left out. Tracks of
        the same face that ended and restarted (it left and came back) are joined when they never
        overlap in time and sit within a face width of each other."""
        tracks = sorted([t for t in self.ended + self.tracks if t.rows], key=lambda t: min(t.rows))
        merged: list[dict] = []
        for tr in tracks:
            first = min(tr.rows)
            g0 = np.mean([v[2:5] for v in tr.rows.values()], axis=0)
            for m in merged:
                if max(m["rows"]) < first:
                    g1 = np.mean([v[2:5] for v in m["rows"].values()], axis=0)
                    if abs(g1[0] - g0[0]) < max(g0[2], g1[2]) and abs(g1[1] - g0[1]) < 2 * max(g0[2], g1[2]):
                        m["rows"].update(tr.rows)
                        break
            else:
                merged.append({"rows": dict(tr.rows)})
        T = self.n_frames
        mouth, geom = [], []
        for m in merged:
            if len(m["rows"]) < min_frames:
                continue
            a = np.full((T, 2), np.nan)
            g = np.full((T, 3), np.nan)
            for i, v in m["rows"].items():
                a[i] = v[:2]
                g[i] = v[2:5]
            mouth.append(a)
            geom.append(g)
        if not mouth:
            return np.full((0, T, 2), np.nan), np.full((0, T, 3), np.nan)
        order = np.argsort([-np.isfinite(a[:, 0]).sum() for a in mouth], kind="stable")
        return np.stack([mouth[i] for i in order]), np.stack([geom[i] for i in order])


def face_label(geom: np.ndarray) -> str:
    """Where a face sits in the frame, in words: "left", "centre", "right" (by its mean centre x)."""
    x = float(np.nanmean(geom[:, 0])) if np.isfinite(geom[:, 0]).any() else 0.5
    return "left" if x < 0.4 else "right" if x > 0.6 else "centre"
