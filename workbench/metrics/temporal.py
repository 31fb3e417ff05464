"""Temporal consistency and motion metrics (VBench dimensions + flow warping error).

Every metric here is streamed: `update()` sees one frame at a time and keeps only what it needs
(the previous frame or two). Optical flow is the shared DIS flow of `FrameStep` (computed once per
consecutive pair at analysis size, <= ANALYSIS_MAX_SIDE), so running all of them adds little on top
of the flow itself. `motion_smoothness` needs one extra flow (frame i-1 -> i+1) for odd i only.

Learned feature-similarity metrics (DINO / CLIP / LPIPS) live in `consistency.py` and are listed
in this module's METRICS too, so the registry picks them up with the temporal group.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from workbench.metrics.base import FLOW_BW, FLOW_FW, FLOW_SKIP, EvalInputs, FlowKey, FrameStep, Metric, MetricUnavailable, ScoreSpec

FLOW_BACKEND = "opencv-dis"  # classical flow of FrameStep.flow_fw / flow_bw
RAFT_ENV = "WORKBENCH_RAFT_WEIGHTS"
RAFT_FILES = {  # torchvision's published checkpoints, as they land in the torch hub cache
    "raft_large": "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
    "raft_small": "raft_small_C_T_V2-01064c6d.pth",
}


def _need_pairs(name: str, n_pairs: int, minimum: int = 1) -> None:
    if n_pairs < minimum:
        raise MetricUnavailable(f"{name} needs at least {minimum + 1} frames, the clip has {n_pairs + 1}; "
                                "pass a longer clip")


# --------------------------------------------------------------------------------------------------
# temporal_flicker
# --------------------------------------------------------------------------------------------------
class TemporalFlicker(Metric):
    """VBench temporal flickering: (255 - mean |frame_t - frame_{t-1}|) / 255 on full-resolution frames.

    VBench reads every frame with OpenCV at its stored size and averages the per-pair mean absolute
    difference; this does the same on the evaluator's full-size frames (the same pixels: PyAV's rgb24
    and OpenCV's decode agree bit for bit on the shared clips), streaming, one previous frame held.
    Shrinking first (as the flow metrics do) smooths noise away and reads too high (+0.0116 on an
    854x480 scene). VBench scores static-camera videos only; here every consecutive pair of any clip
    counts, so camera or subject motion also lowers it (read it next to `flow_magnitude`)."""

    name = "temporal_flicker"
    version = "2"  # 2: full-resolution frames, as VBench (1 scored frames shrunk to <= 512 px)
    scores = (ScoreSpec("temporal_flicker", True, "[0, 1]",
                        "1 - mean absolute RGB difference of consecutive full-resolution frames / 255 "
                        "(every pair, any camera)",
                        "VBench temporal_flickering (Huang et al. 2024)", rewards_stillness=True),)

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        return {"pixel-mae": True}

    def backend(self) -> str:
        return "pixel-mae"

    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        self._pairs: list[float] = []  # mean abs difference of each consecutive pair (one float per frame)

    def update(self, step: FrameStep) -> None:
        prev = step.prev_full
        if prev is None:
            return
        self._pairs.append(mean_abs_diff(prev, step.full))

    def finish(self) -> dict[str, float | None]:
        _need_pairs(self.name, len(self._pairs))
        self.series = {"temporal_flicker": [1.0 - v / 255.0 for v in frame_series(self._pairs)]}
        return {"temporal_flicker": (255.0 - float(np.mean(self._pairs))) / 255.0}


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames over every pixel and channel (exact: OpenCV sums
    each channel in double precision)."""
    if a.shape != b.shape:
        raise MetricUnavailable(f"temporal_flicker: frame size changes mid-clip ({a.shape[1]}x{a.shape[0]} -> "
                                f"{b.shape[1]}x{b.shape[0]}); re-encode the clip at one size")
    import cv2

    d = cv2.absdiff(a, b)
    channels = d.shape[2] if d.ndim == 3 else 1
    return float(sum(cv2.sumElems(d)[:channels]) / d.size)


def frame_series(pairs: list[float]) -> list[float]:
    """Per-frame values from per-pair values (pair i joins frames i and i+1): each frame gets the mean
    of the pairs it belongs to, so a one-frame glitch at frame k peaks at k itself (both of its pairs
    are bad) rather than at a neighbour."""
    p = np.asarray(pairs, dtype=np.float64)
    if p.size == 0:
        return []
    left = np.concatenate([[np.nan], p])  # pair ending at frame i
    right = np.concatenate([p, [np.nan]])  # pair starting at frame i
    return [float(v) for v in np.nanmean(np.stack([left, right]), axis=0)]


# --------------------------------------------------------------------------------------------------
# optical flow backends: shared DIS, or RAFT when its weights are on this machine
# --------------------------------------------------------------------------------------------------
def find_raft_weights(path: str | Path | None = None, search_cache: bool = True) -> Path | None:
    """Locate RAFT weights: explicit path, then $WORKBENCH_RAFT_WEIGHTS, then the torch hub cache."""
    for cand in (path, os.environ.get(RAFT_ENV)):
        if cand:
            p = Path(cand).expanduser()
            if not p.is_file():
                raise MetricUnavailable(f"RAFT weights {p} not found; pass an existing .pth path "
                                        f"(option raft_weights or ${RAFT_ENV}) or use flow='dis'")
            return p
    if search_cache:
        import torch

        ckpt_dir = Path(torch.hub.get_dir()) / "checkpoints"
        for fname in RAFT_FILES.values():
            if (ckpt_dir / fname).is_file():
                return ckpt_dir / fname
    return None


def load_raft(path: str | Path, device: str = "cpu") -> tuple[Any, str]:
    """Build a torchvision RAFT (large or small, inferred from the state dict) and load `path`.

    Returns (model in eval mode, "raft_large" | "raft_small")."""
    import torch
    from torchvision.models.optical_flow import raft_large, raft_small

    path = Path(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise MetricUnavailable(f"RAFT weights {path} cannot be read ({type(e).__name__}); "
                                "pass a torchvision raft_small/raft_large state dict") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    order = ("raft_small", "raft_large") if "small" in path.name else ("raft_large", "raft_small")
    builders = {"raft_large": raft_large, "raft_small": raft_small}
    for kind in order:
        model = builders[kind](weights=None, progress=False)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError:
            continue
        return model.eval().to(device), kind
    raise MetricUnavailable(f"RAFT weights {path} match neither torchvision raft_large nor raft_small; "
                            "pass a torchvision RAFT checkpoint")


_RAFT_CACHE: dict[tuple[str, str], tuple[Any, str]] = {}  # (path, device) -> loaded model: load once per process


class RaftFlow:
    """Dense flow with a torchvision RAFT model; same convention as `dis_flow` (a(x) ~ b(x + f))."""

    def __init__(self, path: str | Path, iters: int = 12, device: str | None = None):
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        key = (str(Path(path).resolve()), self.device)
        if key not in _RAFT_CACHE:
            _RAFT_CACHE[key] = load_raft(path, self.device)
        self.model, self.kind = _RAFT_CACHE[key]
        self.iters = int(iters)

    def pair(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward (a->b) and backward (b->a) flow of two uint8 RGB frames, one batched call."""
        import torch
        import torch.nn.functional as F

        h, w = a.shape[:2]
        x = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = x.to(self.device)
        with torch.inference_mode():
            flows = self.model(x[[0, 1]], x[[1, 0]], num_flow_updates=self.iters)[-1]
        out = flows[:, :, :h, :w].permute(0, 2, 3, 1).float().cpu().numpy()
        return np.ascontiguousarray(out[0]), np.ascontiguousarray(out[1])


# --------------------------------------------------------------------------------------------------
# warp_error
# --------------------------------------------------------------------------------------------------
def _remap(image: np.ndarray, mapx: np.ndarray, mapy: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.remap(image, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@lru_cache(maxsize=8)
def lattice(h: int, w: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution pixel coordinates (x, y) of every `stride`-th pixel, float32 grids.
    Cached per size: every frame of a clip reuses the same (read-only) grids."""
    return np.meshgrid(np.arange(0, w, stride, dtype=np.float32), np.arange(0, h, stride, dtype=np.float32))


def warp_error_pair(prev: np.ndarray, cur: np.ndarray, flow_fw: np.ndarray, flow_bw: np.ndarray,
                    stride: int = 1) -> float:
    """Lai et al. 2018 warping error of one pair: mean squared RGB error (values in [0, 1]) between
    `prev` and `cur` warped back by the forward flow, over pixels that pass the forward/backward
    consistency check |F_fw + F_bw(x + F_fw)|^2 < 0.01 (|F_fw|^2 + |F_bw(x + F_fw)|^2) + 0.5.

    `stride` > 1 evaluates the mean on a regular lattice of every stride-th pixel (warping still
    samples the full-resolution frame): the same expectation at 1/stride^2 of the cost."""
    import cv2

    grid = lattice(*flow_fw.shape[:2], stride)
    if stride > 1:
        flow_fw, prev = flow_fw[::stride, ::stride], prev[::stride, ::stride]
    fx, fy = cv2.extractChannel(flow_fw, 0), cv2.extractChannel(flow_fw, 1)
    mapx, mapy = cv2.add(grid[0], fx), cv2.add(grid[1], fy)
    warped = _remap(cur, mapx, mapy)  # uint8 bilinear: rounding adds < 4e-6 to the error
    bw_at = _remap(flow_bw, mapx, mapy)
    bx, by = cv2.extractChannel(bw_at, 0), cv2.extractChannel(bw_at, 1)
    sx, sy = cv2.add(fx, bx), cv2.add(fy, by)
    fb = cv2.add(cv2.multiply(sx, sx), cv2.multiply(sy, sy))
    mags = cv2.add(cv2.add(cv2.multiply(fx, fx), cv2.multiply(fy, fy)),
                   cv2.add(cv2.multiply(bx, bx), cv2.multiply(by, by)))
    valid = (fb < 0.01 * mags + 0.5).view(np.uint8)
    diff = cv2.absdiff(warped, np.ascontiguousarray(prev)).astype(np.float32)
    sq = cv2.multiply(diff, diff)
    channels = sq.shape[2] if sq.ndim == 3 else 1
    mask = valid if cv2.countNonZero(valid) else None  # everything occluded: plain mean
    return float(sum(cv2.mean(sq, mask=mask)[:channels]) / channels / 255.0 ** 2)


class WarpError(Metric):
    """Flow-warping error between consecutive frames with an occlusion mask (Lai et al. 2018).

    Options: flow = "auto" (RAFT when weights are found, else DIS) | "dis" | "raft";
    raft_weights = path to a torchvision RAFT state dict (or $WORKBENCH_RAFT_WEIGHTS); raft_iters;
    pixel_stride = 2: the per-pair mean is taken on every 2nd pixel in x and y (4x cheaper, same
    expectation; 1 = every pixel).
    In "auto" the torch hub cache is searched only when CUDA is present (RAFT on CPU is slow)."""

    name = "warp_error"
    scores = (ScoreSpec("warp_error", False, "[0, 1]",
                        "mean squared RGB error ([0,1] scale) between each frame and the next one warped back "
                        "by optical flow, over non-occluded pixels (forward/backward check)",
                        "Lai et al. 2018, Learning Blind Video Temporal Consistency", rewards_stillness=True, display_exp=-3),)

    def __init__(self, flow: str = "auto", raft_weights: str | Path | None = None, raft_iters: int = 12,
                 pixel_stride: int = 2):
        if flow not in ("auto", "dis", "raft"):
            raise ValueError(f"warp_error: flow must be 'auto', 'dis' or 'raft', got {flow!r}")
        self.flow = flow
        self.raft_weights = raft_weights
        self.raft_iters = raft_iters
        self.pixel_stride = max(1, int(pixel_stride))
        self._raft: RaftFlow | None = None
        self._weights: Path | None = None

    def _resolve(self) -> Path | None:
        if self.flow == "dis":
            return None
        import torch

        return find_raft_weights(self.raft_weights, search_cache=torch.cuda.is_available() or self.flow == "raft")

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        try:
            raft = find_raft_weights() is not None
        except MetricUnavailable:
            raft = False
        return {FLOW_BACKEND: True, "raft": raft}

    def backend(self) -> str:
        if self._raft is not None:
            return self._raft.kind
        return "raft" if (self.flow == "raft" or self._weights is not None) else FLOW_BACKEND

    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        self._weights = self._resolve()
        if self.flow == "raft" and self._weights is None:
            raise MetricUnavailable(f"warp_error: RAFT weights not found; set ${RAFT_ENV} to a torchvision "
                                    "raft_small/raft_large .pth, or use flow='dis'")
        if self._weights is not None and self._raft is None:
            self._raft = RaftFlow(self._weights, self.raft_iters)
        self._pairs: list[float] = []

    def flow_keys(self, index: int) -> tuple[FlowKey, ...]:
        return (FLOW_FW, FLOW_BW) if self._raft is None and index >= 1 else ()

    def flow_reach(self) -> int:
        return 0 if self._raft is not None else 1

    def update(self, step: FrameStep) -> None:
        prev = step.prev_frame
        if prev is None:
            return
        if self._raft is not None:
            fw, bw = self._raft.pair(prev, step.frame)
        else:
            fw, bw = step.flow_fw, step.flow_bw
        self._pairs.append(warp_error_pair(prev, step.frame, fw, bw, self.pixel_stride))

    def finish(self) -> dict[str, float | None]:
        _need_pairs(self.name, len(self._pairs))
        self.series = {"warp_error": frame_series(self._pairs)}
        return {"warp_error": float(np.mean(self._pairs))}


# --------------------------------------------------------------------------------------------------
# motion_smoothness
# --------------------------------------------------------------------------------------------------
def interpolate_midframe(a: np.ndarray, b: np.ndarray, flow_ab: np.ndarray, stride: int = 1) -> np.ndarray:
    """Classical frame interpolation at t = 1/2: sample `a` half a flow back and `b` half a flow
    forward (linear motion, flow taken at the target pixel) and average; float32 RGB.
    With `stride` > 1 only every stride-th pixel (x and y) of the middle frame is produced."""
    import cv2

    grid = lattice(*flow_ab.shape[:2], stride)
    if stride > 1:
        flow_ab = flow_ab[::stride, ::stride]
    hx = cv2.extractChannel(flow_ab, 0) * np.float32(0.5)
    hy = cv2.extractChannel(flow_ab, 1) * np.float32(0.5)
    wa = _remap(a, cv2.subtract(grid[0], hx), cv2.subtract(grid[1], hy))
    wb = _remap(b, cv2.add(grid[0], hx), cv2.add(grid[1], hy))
    return cv2.addWeighted(wa, 0.5, wb, 0.5, 0.0, dtype=cv2.CV_32F)


class MotionSmoothness(Metric):
    """VBench motion smoothness with a classical interpolator: every odd frame i is rebuilt from
    frames i-1 and i+1 (DIS flow i-1 -> i+1, both warped halfway, blended) and compared with the
    real one; score = 1 - mean |interpolated - real| / 255. VBench uses the learned AMT-S
    interpolator instead, so absolute values differ from VBench's; rankings are what to compare."""

    name = "motion_smoothness"
    scores = (ScoreSpec("motion_smoothness", True, "[0, 1]",
                        "1 - mean abs error / 255 of odd frames re-created by flow interpolation of their "
                        "even neighbours (classical DIS interpolator)",
                        "VBench motion_smoothness (Huang et al. 2024), AMT replaced by DIS flow", rewards_stillness=True),)

    def __init__(self, pixel_stride: int = 2):
        self.pixel_stride = max(1, int(pixel_stride))  # error measured on every 2nd pixel (x, y): 4x cheaper

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        return {f"{FLOW_BACKEND}-interp": True}

    def backend(self) -> str:
        return f"{FLOW_BACKEND}-interp"

    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        self._buf: list[np.ndarray] = []  # the last two frames
        self._sum, self._n = 0.0, 0
        self._per_frame: dict[int, float] = {}  # odd frame index -> its smoothness

    def flow_keys(self, index: int) -> tuple[FlowKey, ...]:
        return (FLOW_SKIP,) if index >= 2 and index % 2 == 0 else ()

    def flow_reach(self) -> int:
        return 2

    def update(self, step: FrameStep) -> None:
        import cv2

        if step.index % 2 == 0 and len(self._buf) == 2:
            a, mid = self._buf
            flow = step.flow_skip  # frame i-2 -> i, shared and computed ahead
            est = interpolate_midframe(a, step.frame, flow, self.pixel_stride)
            s = self.pixel_stride
            real = np.ascontiguousarray(mid[::s, ::s]) if s > 1 else mid
            err = float(np.mean(cv2.mean(cv2.absdiff(np.rint(est).astype(np.uint8), real))[:3]))
            self._sum += err
            self._n += 1
            self._per_frame[step.index - 1] = 1.0 - err / 255.0
        self._buf.append(step.frame)
        if len(self._buf) > 2:
            self._buf.pop(0)

    def finish(self) -> dict[str, float | None]:
        if self._n < 1:
            raise MetricUnavailable("motion_smoothness needs at least 3 frames (one odd frame between two even "
                                    "ones); pass a longer clip")
        n = max(self._per_frame) + 2
        self.series = {"motion_smoothness": [self._per_frame.get(i) for i in range(n)]}
        return {"motion_smoothness": (255.0 - self._sum / self._n) / 255.0}


# --------------------------------------------------------------------------------------------------
# dynamic_degree + flow_magnitude
# --------------------------------------------------------------------------------------------------
def motion_anomaly(means: list[float], half: int = 3, floor: float = 0.05) -> int:
    """Index of the frame pair whose motion departs most from its neighbours': the largest
    |log((m_i + floor) / (median of m over +-half pairs + floor))|. A duplicated frame (no motion
    between two moving ones) or a jump (dropped frames) stands out; smooth speed changes do not."""
    m = np.asarray(means, dtype=np.float64)
    if m.size == 0:
        return 0
    pad = np.pad(m, half, mode="edge")
    local = np.median(np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1), axis=1)
    return int(np.argmax(np.abs(np.log((m + floor) / (local + floor)))))


def top_mean(mag: np.ndarray, frac: float = 0.05) -> float:
    """Mean of the largest `frac` share of values (VBench: top 5% of flow magnitudes)."""
    flat = mag.reshape(-1)
    k = max(1, int(flat.size * frac))
    return float(np.partition(flat, flat.size - k)[flat.size - k:].mean())


def sample_interval(fps: float) -> int:
    """VBench dynamic_degree's frame step: every round(fps / 8)-th frame (about 8 frames a second)."""
    return max(1, round(fps / 8.0))


def vbench_dynamic(sampled_scores: list[float], fps: float, min_side: int) -> tuple[bool, float, int, int]:
    """VBench's dynamic_degree rule on the top-5% flow magnitudes between consecutive *sampled* frames.

    n_sampled = len(sampled_scores) + 1 frames; the video moves when at least round(4 * n_sampled / 16)
    scores exceed thres = max(1, 8 / fps) * 6 * min(h, w) / 256 (h, w: the size the flow was taken at).
    As in VBench, a count_num of 0 (two sampled frames or fewer) means any one pair is enough.
    Returns (moves, thres, count_num, pairs_above)."""
    n_sampled = len(sampled_scores) + 1
    thres = max(1.0, 8.0 / fps) * 6.0 * (min_side / 256.0)
    count_num = round(4 * (n_sampled / 16.0))
    above = sum(1 for g in sampled_scores if g > thres)
    return bool(sampled_scores) and above >= count_num, thres, count_num, above


class DynamicDegree(Metric):
    """VBench dynamic degree (does the clip move?) plus the plain mean flow magnitude, so a static
    clip cannot win on consistency metrics unnoticed.

    As VBench: frames sampled every round(fps / 8), flow between consecutive sampled frames, the mean
    of the top 5% of its magnitudes over every pixel, VBench's threshold and count. Unlike VBench:
    DIS flow at analysis size (<= 512 px) instead of RAFT at full size; the threshold scales with the
    side the flow was taken at, so the rule is the same in pixels per image height."""

    name = "dynamic_degree"
    version = "2"  # 2: flow between VBench's sampled frames, top 5% of every pixel (1: summed consecutive flows)
    scores = (
        ScoreSpec("dynamic_degree", True, "{0, 1}",
                  "1 when enough sampled frame pairs have large motion (VBench rule: frames every round(fps/8), "
                  "top-5% flow magnitude above 6*min(h,w)/256 px), else 0",
                  "VBench dynamic_degree (Huang et al. 2024), RAFT replaced by DIS flow"),
        ScoreSpec("flow_magnitude", None, "[0, inf)",
                  "mean optical-flow magnitude, pixels per frame at analysis size (<= 512 px side)",
                  "plain measurement (DIS optical flow)"),
    )

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        return {FLOW_BACKEND: True}

    def backend(self) -> str:
        return FLOW_BACKEND

    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        self._top: list[float] = []  # top-5% flow magnitude between consecutive sampled frames
        self._means: list[float] = []
        self._min_side = 0
        self._fps = inputs.video.fps
        self._interval = sample_interval(self._fps)

    def flow_keys(self, index: int) -> tuple[FlowKey, ...]:
        keys: tuple[FlowKey, ...] = (FLOW_FW,) if index >= 1 else ()
        if self._interval > 1 and index >= self._interval and index % self._interval == 0:
            keys += (("from", self._interval),)  # between this sampled frame and the one before
        return keys

    def flow_reach(self) -> int:
        return self._interval

    def update(self, step: FrameStep) -> None:
        import cv2

        flow = step.flow_fw
        if flow is not None:
            mag = cv2.magnitude(flow[..., 0], flow[..., 1])
            self._means.append(float(mag.mean()))
        if step.index % self._interval:
            return
        if step.index >= self._interval:  # the previous sampled frame exists: flow between the two
            if self._interval > 1:
                flow = step.flow_from(self._interval)
                mag = cv2.magnitude(flow[..., 0], flow[..., 1])
            self._top.append(top_mean(mag))
        self._min_side = min(step.gray.shape[:2])

    def finish(self) -> dict[str, float | None]:
        if not self._means:  # each score names itself: a one-frame clip has no frame pair for either
            self.reasons = {s: f"{s} needs at least 2 frames (one frame pair for optical flow), the clip has 1; "
                               "pass a longer clip" for s in ("dynamic_degree", "flow_magnitude")}
            return {"dynamic_degree": None, "flow_magnitude": None}
        self.series = {"flow_magnitude": [None, *self._means]}  # flow into frame i from frame i-1
        self.worst = {"flow_magnitude": 1 + motion_anomaly(self._means)}
        # fewer than 2 sampled frames (a clip shorter than one sampling step): no pair, static, as in VBench
        moves, *_ = vbench_dynamic(self._top, self._fps, self._min_side)
        return {"dynamic_degree": 1.0 if moves else 0.0, "flow_magnitude": float(np.mean(self._means))}


from workbench.metrics.consistency import CONSISTENCY_METRICS  # noqa: E402  (learned, DINO/CLIP/LPIPS)

METRICS: list[type[Metric]] = [TemporalFlicker, WarpError, MotionSmoothness, DynamicDegree, *CONSISTENCY_METRICS]
