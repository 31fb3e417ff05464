"""Full-reference quality metrics: PSNR/SSIM against hand values and scikit-image, LPIPS and FVD
loaders on tiny random-weight models, Fréchet distance against hand-computed cases, and the
lockstep reference stream (resize, length mismatch, missing inputs)."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.media import Clip
from workbench.metrics import evaluate
from workbench.metrics import quality as Q


def texture(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)


def clip(frames, fps: float = 25.0) -> Clip:
    return Clip.from_frames(np.asarray(frames), fps)


# --------------------------------------------------------------------------------------------------
# PSNR / SSIM
# --------------------------------------------------------------------------------------------------
def test_psnr_hand_values():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 10, np.uint8)  # MSE = 100
    assert Q.psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / 100))
    assert Q.psnr(a, a) == Q.PSNR_CAP


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_scikit_image(seed):
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(seed)
    a = texture(70, 90, seed)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    c = rng.integers(0, 256, a.shape, dtype=np.uint8)
    for x, y in ((a, b), (a, c), (b, c)):
        ref = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255, channel_axis=-1)
        assert Q.ssim(x, y) == pytest.approx(ref, abs=1e-6)
    assert Q.ssim(a, a) == pytest.approx(1.0)


def test_fidelity_through_evaluate_with_resized_and_shorter_reference():
    import cv2

    rng = np.random.default_rng(0)
    frames = np.stack([texture(64, 80, s) for s in range(6)])
    same = evaluate(clip(frames), reference=clip(frames), metrics=["psnr", "ssim"])
    assert same.errors == {} and same.scores["psnr"] == Q.PSNR_CAP and same.scores["ssim"] == pytest.approx(1.0)
    noisy = np.clip(frames + rng.normal(0, 10, frames.shape), 0, 255).astype(np.uint8)
    r = evaluate(clip(noisy), reference=clip(frames), metrics=["psnr", "ssim"])
    expected = np.mean([Q.psnr(n, f) for n, f in zip(noisy, frames)])
    assert r.scores["psnr"] == pytest.approx(expected) and 25 < r.scores["psnr"] < 35
    assert r.scores["ssim"] < 0.99 and r.backends["psnr"] == "numpy-opencv"
    # a 2x larger reference is resized to the video's size; a shorter one scores the common prefix
    big = np.stack([cv2.resize(f, (160, 128), interpolation=cv2.INTER_CUBIC) for f in frames])
    rb = evaluate(clip(frames), reference=clip(big), metrics=["psnr"])
    assert rb.errors == {} and rb.scores["psnr"] > 30
    short = evaluate(clip(noisy), reference=clip(frames[:3]), metrics=["psnr"])
    assert short.scores["psnr"] == pytest.approx(np.mean([Q.psnr(n, f) for n, f in zip(noisy[:3], frames[:3])]))


def test_reference_metrics_need_a_reference():
    r = evaluate(clip([texture()] * 3), metrics=["psnr", "fvd"])
    assert r.scores["psnr"] is None and "reference" in r.errors["psnr"]
    assert "reference" in r.errors["fvd"]


def test_reference_streams_lockstep_from_file(tmp_path, media_dir):
    """A file-backed reference is decoded in lockstep with the video stream."""
    path = media_dir / "talking" / "00086.mp4"
    ref = Clip.open(path, load_audio_track=False)
    frames = ref.to_array(max_frames=10)
    r = evaluate(clip(frames), reference=ref, metrics=["psnr", "ssim"])
    assert r.scores["psnr"] == Q.PSNR_CAP and r.scores["ssim"] == pytest.approx(1.0)
    shifted = evaluate(clip(frames[1:]), reference=ref, metrics=["psnr"])  # off by one frame
    assert shifted.scores["psnr"] < 40


# --------------------------------------------------------------------------------------------------
# LPIPS vs reference
# --------------------------------------------------------------------------------------------------


def test_lpips_vs_reference(alexnet_path):
    frames = np.stack([texture(64, 64, s) for s in range(4)])
    other = np.stack([texture(64, 64, s + 10) for s in range(4)])
    opts = {"lpips": {"backbone": str(alexnet_path)}}
    same = evaluate(clip(frames), reference=clip(frames), metrics=["lpips"], metric_options=opts)
    diff = evaluate(clip(other), reference=clip(frames), metrics=["lpips"], metric_options=opts)
    assert same.scores["lpips"] == pytest.approx(0.0, abs=1e-7)
    assert np.isfinite(diff.scores["lpips"]) and diff.scores["lpips"] > 0
    assert diff.backends["lpips"] == "lpips-alex"


# --------------------------------------------------------------------------------------------------
# FVD
# --------------------------------------------------------------------------------------------------
def test_frechet_distance_hand_cases():
    # 1-D: (0 - 2)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 5
    assert Q.frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([2.0]), np.array([[4.0]])) == \
        pytest.approx(5.0)
    # diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expect = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0
    assert Q.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expect)
    # identical distributions, singular covariance (fewer samples than dimensions) -> ~0
    feats = np.random.default_rng(0).normal(size=(5, 12))
    assert Q.frechet_distance(*Q.feature_stats(feats), *Q.feature_stats(feats)) == pytest.approx(0.0, abs=1e-5)


class _TinyI3D:
    """Builds a scripted stand-in with the StyleGAN-V I3D call signature: (N,3,T,H,W) -> (N,D)."""

    @staticmethod
    def save(path):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv3d(3, 6, kernel_size=(3, 8, 8), stride=(2, 8, 8))

            def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                        return_features: bool = True) -> torch.Tensor:
                assert x.shape[2] == 16 and x.shape[3] == 224 and x.shape[4] == 224
                return torch.tanh(self.conv(x)).mean(dim=(3, 4)).flatten(1)

        import warnings

        torch.manual_seed(0)
        with warnings.catch_warnings():  # the real I3D ships as TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.script(Net()).save(str(path))
        return path


@pytest.fixture(scope="module")
def i3d_path(tmp_path_factory):
    return _TinyI3D.save(tmp_path_factory.mktemp("i3d") / "tiny_i3d.pt")


def test_i3d_loads_only_when_known_pinned_or_trusted(i3d_path, monkeypatch):
    monkeypatch.delenv(Q.I3D_TRUST_ENV, raising=False)
    monkeypatch.delenv(Q.I3D_SHA256_ENV, raising=False)
    sha = Q.file_sha256(i3d_path)
    with pytest.raises(Q.MetricUnavailable, match=f"{Q.I3D_SHA256_ENV}={sha}"):
        Q.i3d_trust(i3d_path)
    frames = np.stack([texture(96, 96, 0)] * 30)
    r = evaluate(clip(frames), reference=clip(frames), metrics=["fvd"], metric_options={"fvd": {"i3d": str(i3d_path)}})
    assert r.scores["fvd"] is None and "runs code from the file" in r.errors["fvd"] and "\n" not in r.errors["fvd"]
    assert Q.i3d_trust(i3d_path, trust=True) == f"opt-in {sha[:12]}"
    monkeypatch.setenv(Q.I3D_SHA256_ENV, sha.upper())
    assert Q.i3d_trust(i3d_path) == f"sha256 pinned {sha[:12]}"
    monkeypatch.setattr(Q, "KNOWN_I3D_SHA256", {sha: "test"})
    assert Q.i3d_trust(i3d_path).startswith("sha256 known")


def test_i3d_loader_and_features(i3d_path):
    model = Q.load_i3d(i3d_path, trust=True)
    win = [np.zeros((16, 224, 224, 3), np.uint8), np.full((16, 224, 224, 3), 200, np.uint8)]
    f = Q.i3d_features(model, win)
    assert f.shape == (2, 6 * 7) and np.isfinite(f).all() and not np.allclose(f[0], f[1])


def test_fvd_through_evaluate(i3d_path, tmp_path):
    rng = np.random.default_rng(0)
    base = texture(96, 96, 0).astype(np.float32)
    frames = np.stack([np.clip(base + 3 * t, 0, 255) for t in range(40)]).astype(np.uint8)
    opts = {"fvd": {"i3d": str(i3d_path), "stride": 8, "trust_i3d": True}}
    same = evaluate(clip(frames), reference=clip(frames), metrics=["fvd"], metric_options=opts)
    assert same.errors == {} and same.scores["fvd"] == pytest.approx(0.0, abs=1e-4)
    noisy = np.clip(frames + rng.normal(0, 40, frames.shape), 0, 255).astype(np.uint8)
    worse = evaluate(clip(noisy), reference=clip(frames), metrics=["fvd"], metric_options=opts)
    assert worse.scores["fvd"] > 1e-3 and worse.backends["fvd"].startswith("i3d-torchscript (opt-in ")
    short = evaluate(clip(frames[:20]), reference=clip(frames), metrics=["fvd"], metric_options=opts)
    assert short.scores["fvd"] is None and "at least 24" in short.errors["fvd"]
    missing = evaluate(clip(frames), reference=clip(frames), metrics=["fvd"],
                       metric_options={"fvd": {"i3d": str(tmp_path / "none.pt")}})
    assert "none.pt" in missing.errors["fvd"]


def test_fvd_without_i3d_says_how_to_fix(monkeypatch):
    monkeypatch.delenv(Q.I3D_ENV, raising=False)
    frames = np.stack([texture()] * 3)
    r = evaluate(clip(frames), reference=clip(frames), metrics=["fvd"])
    assert r.scores["fvd"] is None and Q.I3D_ENV in r.errors["fvd"]


def test_quality_scores_are_documented():
    for cls in Q.METRICS:
        assert "reference" in cls.requires
        for s in cls.scores:
            assert s.description and s.source and s.range
    assert {s.name for c in Q.METRICS for s in c.scores} == {"psnr", "ssim", "lpips", "fvd"}
