"""Full-reference quality: PSNR, SSIM, LPIPS and a per-clip FVD against a reference video.

Frames of the video and the reference are paired by index; the reference is decoded in lockstep
with the evaluator's stream (an iterator opened in `start()`, advanced in `update()`), so memory stays
flat. Both are compared at the analysis size of the video (frames above ANALYSIS_MAX_SIDE are
downscaled); a reference of another size is resized to the video frame's size. When the two differ
in length, the common prefix is scored.
"""
from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from workbench.hashing import _file_sha256
from workbench.metrics.base import ANALYSIS_MAX_SIDE, EvalInputs, FrameStep, Metric, MetricUnavailable, ScoreSpec
from workbench.metrics.consistency import LpipsBackend

PSNR_CAP = 100.0  # dB reported for identical frames (MSE = 0)
I3D_ENV = "WORKBENCH_I3D"
I3D_TRUST_ENV = "WORKBENCH_TRUST_I3D"  # "1": load any I3D TorchScript file (it runs code from the file)
I3D_SHA256_ENV = "WORKBENCH_I3D_SHA256"  # the checksum of the copy you checked: files matching it load
# sha256 of I3D TorchScript files whose published checksum the project has verified (-> description).
# Empty: StyleGAN-V's i3d_torchscript.pt is distributed without a published checksum, so a file loads
# only when the user pins its checksum ($WORKBENCH_I3D_SHA256) or opts in ($WORKBENCH_TRUST_I3D=1).
KNOWN_I3D_SHA256: dict[str, str] = {}
FVD_FRAMES, FVD_SIZE = 16, 224


# --------------------------------------------------------------------------------------------------
# pixel metrics
# --------------------------------------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; PSNR_CAP when identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * np.log10(data_range ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, sigma: float = 1.5) -> float:
    """SSIM (Wang et al. 2004): 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, population
    covariances, mean over the map without a 5-pixel border, averaged over channels. Matches
    skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255, channel_axis=-1)."""
    import cv2

    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {a.shape} vs {b.shape}")
    radius = int(3.5 * sigma + 0.5)
    k = 2 * radius + 1
    if min(a.shape[:2]) < k:
        raise MetricUnavailable(f"ssim needs frames of at least {k}x{k} pixels, got {a.shape[1]}x{a.shape[0]}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (k, k), sigma, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    smap = smap[radius:-radius, radius:-radius]
    return float(smap.mean())


class _ReferenceStream(Metric):
    """Base: pulls the reference frame that pairs with each video frame, resized to its size."""

    requires = frozenset({"reference"})

    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        if inputs.reference is None:
            raise MetricUnavailable(f"{self.name} needs a reference video (--reference)")
        self._ref: Iterator[np.ndarray] | None = iter(inputs.reference.iter_frames(max_side=ANALYSIS_MAX_SIDE))
        self._paired = 0

    def _ref_frame(self, step: FrameStep) -> np.ndarray | None:
        """The reference frame with the step's index at the step frame's size; None past its end."""
        if self._ref is None:
            return None
        ref = next(self._ref, None)
        if ref is None:
            self._ref = None
            return None
        h, w = step.frame.shape[:2]
        if ref.shape[:2] != (h, w):
            import cv2

            interp = cv2.INTER_AREA if ref.shape[0] > h else cv2.INTER_LINEAR
            ref = cv2.resize(ref, (w, h), interpolation=interp)
        self._paired += 1
        return ref

    def _need_paired(self) -> None:
        if self._paired == 0:
            raise MetricUnavailable(f"{self.name}: the reference video has no frames; pass a decodable --reference")


class Fidelity(_ReferenceStream):
    """PSNR and SSIM per frame against the reference, averaged over frames."""

    name = "fidelity"
    scores = (
        ScoreSpec("psnr", True, f"[0, {PSNR_CAP:g}] dB",
                  "mean per-frame PSNR vs the reference (RGB, analysis size; identical frames count as 100 dB)",
                  "standard full-reference metric"),
        ScoreSpec("ssim", True, "[-1, 1]",
                  "mean per-frame SSIM vs the reference (11x11 Gaussian window, sigma 1.5, RGB channel mean)",
                  "Wang et al. 2004, Image quality assessment: from error visibility to structural similarity"),
    )

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        return {"numpy-opencv": True}

    def backend(self) -> str:
        return "numpy-opencv"

    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        self._psnr, self._ssim = 0.0, 0.0

    def update(self, step: FrameStep) -> None:
        ref = self._ref_frame(step)
        if ref is None:
            return
        self._psnr += psnr(step.frame, ref)
        self._ssim += ssim(step.frame, ref)

    def finish(self) -> dict[str, float | None]:
        self._need_paired()
        return {"psnr": self._psnr / self._paired, "ssim": self._ssim / self._paired}


class LpipsReference(LpipsBackend, _ReferenceStream):
    """LPIPS per frame against the reference (AlexNet backbone from the local torch hub cache)."""

    name = "lpips"
    scores = (ScoreSpec("lpips", False, "[0, 1+)",
                        "mean per-frame LPIPS (AlexNet, v0.1) vs the reference at analysis size",
                        "Zhang et al. 2018, The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"),)

    def start(self, inputs: EvalInputs) -> None:
        self._open_lpips()  # before opening the reference: a missing backbone fails first
        super().start(inputs)

    def update(self, step: FrameStep) -> None:
        ref = self._ref_frame(step)
        if ref is not None:
            self._add_pair(step.frame, ref)

    def finish(self) -> dict[str, float | None]:
        mean = self._mean_distance()
        self._need_paired()
        return {"lpips": mean}


# --------------------------------------------------------------------------------------------------
# FVD
# --------------------------------------------------------------------------------------------------
def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance of two Gaussians: |mu1 - mu2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2))."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    covmean = np.asarray(linalg.sqrtm(cov1 @ cov2))
    if not np.isfinite(covmean).all():  # near-singular product: regularise (as in the FID reference code)
        eps = np.eye(cov1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(max(0.0, diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean)))


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features."""
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


_I3D: dict[tuple[str, str], Any] = {}


def find_i3d(path: str | Path | None = None) -> Path | None:
    for cand in (path, os.environ.get(I3D_ENV)):
        if cand:
            p = Path(cand).expanduser()
            if not p.is_file():
                raise MetricUnavailable(f"I3D model {p} not found; pass an existing TorchScript file "
                                        f"(option i3d or ${I3D_ENV})")
            return p
    return None


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed (cached per path, mtime and size)."""
    st = path.stat()
    return _file_sha256(str(path.resolve()), st.st_mtime_ns, st.st_size)


def i3d_trust(path: Path, trust: bool = False) -> str:
    """Why this TorchScript file may be loaded, for the record: "sha256 known|pinned|opt-in <first 12 hex>".

    `torch.jit.load` runs code from the file, so only a file whose checksum is known (KNOWN_I3D_SHA256),
    pinned by the user ($WORKBENCH_I3D_SHA256) or explicitly trusted (option trust_i3d, or
    $WORKBENCH_TRUST_I3D=1) is loaded; otherwise MetricUnavailable says how to allow it."""
    sha = file_sha256(path)
    pinned = {c.strip().lower() for c in os.environ.get(I3D_SHA256_ENV, "").split(",") if c.strip()}
    if sha in KNOWN_I3D_SHA256:
        return f"sha256 known {sha[:12]}"
    if sha in pinned:
        return f"sha256 pinned {sha[:12]}"
    if trust or os.environ.get(I3D_TRUST_ENV, "").strip().lower() in ("1", "true", "yes"):
        return f"opt-in {sha[:12]}"
    raise MetricUnavailable(f"I3D model {path} is TorchScript (loading runs code from the file) and its sha256 {sha} "
                            f"matches no known checksum; after checking the file set {I3D_SHA256_ENV}={sha} "
                            f"(or {I3D_TRUST_ENV}=1)")


def load_i3d(path: str | Path, trust: bool = False) -> Any:
    """Load the I3D feature extractor as TorchScript (e.g. StyleGAN-V's i3d_torchscript.pt), only when
    `i3d_trust` allows it (TorchScript runs code from the file)."""
    i3d_trust(Path(path), trust)
    return _load_i3d(path)


def _load_i3d(path: str | Path) -> Any:
    """load_i3d without the trust check, for a caller that has made it."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    key = (str(Path(path).resolve()), dev)
    if key not in _I3D:
        import warnings

        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format I3D ships in
                warnings.simplefilter("ignore", FutureWarning)
                _I3D[key] = torch.jit.load(str(path), map_location=dev).eval()
        except Exception as e:
            raise MetricUnavailable(f"I3D model {path} is not loadable TorchScript ({type(e).__name__}); pass the "
                                    "i3d_torchscript.pt used by StyleGAN-V / common FVD code") from None
    return _I3D[key]


def i3d_features(model: Any, windows: list[np.ndarray]) -> np.ndarray:
    """Features of 16-frame windows, each (T, 224, 224, 3) uint8 -> (N, D). Input to the model:
    (N, 3, T, 224, 224) in [-1, 1]; rescale/resize off, return_features on when the model takes them."""
    import torch

    dev = next(iter(model.parameters()), torch.empty(0)).device
    x = torch.from_numpy(np.stack(windows)).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0).to(dev)
    try:
        names = {a.name for a in model.forward.schema.arguments}
    except AttributeError:
        names = set()
    kwargs = {k: v for k, v in (("rescale", False), ("resize", False), ("return_features", True)) if k in names}
    with torch.inference_mode():
        out = model(x, **kwargs)
    return out.reshape(out.shape[0], -1).float().cpu().numpy()


class Fvd(_ReferenceStream):
    """Per-clip FVD: Fréchet distance between I3D features of the video's and the reference's
    16-frame windows (224x224, sliding with `stride`).

    FVD is a distribution distance: papers compute it over hundreds of clips, and one clip pair
    gives a single sample each, for which it is degenerate. Here each clip contributes its sliding
    16-frame windows as the sample set, so the number measures how far the clip's motion/appearance
    statistics drift from the reference's. It is NOT comparable to dataset-level FVD in papers.
    Needs at least 16 + stride frames (two windows) in both clips."""

    version = "2"  # 2: the I3D file loads only when its checksum is known/pinned or trusted (backend says which)
    name = "fvd"
    scores = (ScoreSpec("fvd", False, "[0, inf)",
                        "Fréchet distance of I3D features over sliding 16-frame 224x224 windows of the clip vs the "
                        "reference (per-clip window FVD, not comparable to dataset-level FVD)",
                        "Unterthiner et al. 2018 FVD; I3D TorchScript as in StyleGAN-V (Skorokhodov et al. 2022)"),)

    def __init__(self, i3d: str | Path | None = None, stride: int = 8, batch: int = 4, trust_i3d: bool = False):
        """trust_i3d: load an I3D file whose checksum is neither known nor pinned (it runs code from the file)."""
        if stride < 1:
            raise ValueError(f"fvd: stride must be >= 1, got {stride}")
        self.i3d_path, self.stride, self.batch = i3d, int(stride), int(batch)
        self.trust_i3d = bool(trust_i3d)
        self._trust = ""

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        try:
            return {"i3d-torchscript": find_i3d() is not None}
        except MetricUnavailable:
            return {"i3d-torchscript": False}

    def backend(self) -> str:
        return f"i3d-torchscript ({self._trust})" if self._trust else "i3d-torchscript"

    def start(self, inputs: EvalInputs) -> None:
        path = find_i3d(self.i3d_path)
        if path is None:
            raise MetricUnavailable(f"fvd needs an I3D TorchScript model; set {I3D_ENV}=path/to/i3d_torchscript.pt "
                                    "(StyleGAN-V's FVD detector) or pass option i3d")
        self._trust = i3d_trust(path, self.trust_i3d)
        self._model = _load_i3d(path)
        super().start(inputs)
        self._win_v: deque[np.ndarray] = deque(maxlen=FVD_FRAMES)
        self._win_r: deque[np.ndarray] = deque(maxlen=FVD_FRAMES)
        self._pending_v: list[np.ndarray] = []
        self._pending_r: list[np.ndarray] = []
        self._feats_v: list[np.ndarray] = []
        self._feats_r: list[np.ndarray] = []

    @staticmethod
    def _prep(frame: np.ndarray) -> np.ndarray:
        import cv2

        interp = cv2.INTER_AREA if frame.shape[0] > FVD_SIZE else cv2.INTER_LINEAR
        return cv2.resize(frame, (FVD_SIZE, FVD_SIZE), interpolation=interp)

    def _flush(self) -> None:
        if self._pending_v:
            self._feats_v.append(i3d_features(self._model, self._pending_v))
            self._feats_r.append(i3d_features(self._model, self._pending_r))
            self._pending_v, self._pending_r = [], []

    def update(self, step: FrameStep) -> None:
        ref = self._ref_frame(step)
        if ref is None:
            return
        self._win_v.append(self._prep(step.frame))
        self._win_r.append(self._prep(ref))
        n = self._paired
        if n >= FVD_FRAMES and (n - FVD_FRAMES) % self.stride == 0:
            self._pending_v.append(np.stack(self._win_v))
            self._pending_r.append(np.stack(self._win_r))
            if len(self._pending_v) >= self.batch:
                self._flush()

    def finish(self) -> dict[str, float | None]:
        self._flush()
        self._need_paired()
        n_win = sum(len(f) for f in self._feats_v)
        if n_win < 2:
            raise MetricUnavailable(f"fvd needs at least {FVD_FRAMES + self.stride} paired frames (two {FVD_FRAMES}-frame "
                                    f"windows at stride {self.stride}), got {self._paired}; pass longer clips or a "
                                    "smaller stride")
        fv, fr = np.concatenate(self._feats_v), np.concatenate(self._feats_r)
        return {"fvd": frechet_distance(*feature_stats(fv), *feature_stats(fr))}


METRICS: list[type[Metric]] = [Fidelity, LpipsReference, Fvd]
