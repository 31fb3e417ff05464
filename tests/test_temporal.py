"""Temporal consistency / motion metrics: hand-computed cases, VBench rules, loaders of the learned
backends on tiny random-weight checkpoints, and proofs on real clips that each perturbation
(shuffle, dropped frames, frozen stretch, noise) moves the metrics the expected way."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.media import Clip
from workbench.metrics import evaluate
from workbench.metrics import consistency as C
from workbench.metrics import temporal as T

FLOW_METRICS = ["temporal_flicker", "warp_error", "motion_smoothness", "dynamic_degree"]


def texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (good for optical flow)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)


def scores(frames, names, fps: float = 25.0, **kw):
    r = evaluate(Clip.from_frames(np.asarray(frames), fps), metrics=names, **kw)
    return r


# --------------------------------------------------------------------------------------------------
# hand-computed cases
# --------------------------------------------------------------------------------------------------
def test_constant_clip_is_perfectly_consistent():
    frames = np.stack([texture()] * 9)
    r = scores(frames, FLOW_METRICS)
    assert r.errors == {}
    assert r.scores["temporal_flicker"] == 1.0
    assert r.scores["warp_error"] == pytest.approx(0.0, abs=1e-9)
    assert r.scores["motion_smoothness"] == pytest.approx(1.0, abs=1e-6)
    assert r.scores["flow_magnitude"] == pytest.approx(0.0, abs=1e-3)
    assert r.scores["dynamic_degree"] == 0.0
    assert r.backends["warp_error"] == "opencv-dis"


def test_alternating_gray_levels_give_exact_flicker():
    a = np.full((32, 48, 3), 100, np.uint8)
    b = np.full((32, 48, 3), 150, np.uint8)
    frames = np.stack([a, b] * 5)
    r = scores(frames, ["temporal_flicker"])
    assert r.scores["temporal_flicker"] == pytest.approx((255 - 50) / 255, abs=1e-12)


def test_warp_error_pair_hand_cases():
    img = (texture() // 2 + 20).astype(np.uint8)  # values in [20, 147]: +51 never clips
    zero = np.zeros(img.shape[:2] + (2,), np.float32)
    assert T.warp_error_pair(img, img, zero, zero) == 0.0
    # a uniform brightness step of 51 gray levels = 0.2 on the [0,1] scale -> squared error 0.04
    brighter = np.clip(img.astype(int) + 51, 0, 255).astype(np.uint8)
    assert np.all(img <= 204)
    assert T.warp_error_pair(img, brighter, zero, zero) == pytest.approx(0.04, rel=1e-6)
    # content moving 3 px left: the true flow warps back exactly except the 3 border columns
    prev, cur = img[:, 3:103], img[:, 0:100]
    fw = np.zeros(prev.shape[:2] + (2,), np.float32); fw[..., 0] = 3
    bw = -fw
    err_true = T.warp_error_pair(prev, cur, fw, bw)
    err_zero = T.warp_error_pair(prev, cur, 0 * fw, 0 * fw)
    assert err_zero > 1e-3 and err_true < 0.1 * err_zero
    assert T.warp_error_pair(prev[:, :-3], cur, fw[:, :-3], bw[:, :-3]) == pytest.approx(0.0, abs=1e-12)
    zero = np.zeros(img.shape[:2] + (2,), np.float32)
    fw = zero.copy(); fw[..., 0] = 3
    # inconsistent forward/backward flows mark every pixel occluded -> plain mean is used
    flat, flat2 = np.full_like(img, 100), np.full_like(img, 151)
    assert T.warp_error_pair(flat, flat2, fw * 10, fw * 10) == pytest.approx(0.04, rel=1e-6)


def test_interpolate_midframe_recovers_linear_motion():
    img = texture(seed=3)
    a, mid, b = img[:, 0:100], img[:, 2:102], img[:, 4:104]  # content moves 2 px left per frame
    flow = np.zeros(a.shape[:2] + (2,), np.float32)
    flow[..., 0] = -4
    est = T.interpolate_midframe(a, b, flow)
    inner = (slice(None), slice(8, -8))
    assert np.abs(est[inner] - mid[inner]).mean() < 0.6


def test_top_mean_and_vbench_dynamic_rule():
    mag = np.arange(100, dtype=np.float32)  # top 5% = 95..99
    assert T.top_mean(mag) == pytest.approx(97.0)
    # 8 fps: one frame per sample, thres = 6 * 256/256 = 6, count_num = round(4 * 16/16) = 4
    moves, thres, count_num, above = T.vbench_dynamic([7.0] * 4 + [1.0] * 11, fps=8, min_side=256)
    assert (moves, thres, count_num, above) == (True, 6.0, 4, 4)
    assert T.vbench_dynamic([7.0] * 3 + [1.0] * 12, fps=8, min_side=256)[0] is False
    # scores are between sampled frames (every round(fps/8)); 24 fps: factor 1, thres = 6 * 512/256 = 12
    moves, thres, count_num, above = T.vbench_dynamic([11.0] * 15, fps=24, min_side=512)
    assert thres == 12.0 and above == 0 and not moves
    assert T.vbench_dynamic([13.0] * 15, fps=24, min_side=512)[0]
    assert T.sample_interval(24) == 3 and T.sample_interval(29.97) == 4 and T.sample_interval(5) == 1
    # VBench: count_num = round(4 * 2/16) = 0 for two sampled frames, so any pair moves; no pair never does
    assert T.vbench_dynamic([1.0], fps=8, min_side=256) == (True, 6.0, 0, 0)
    assert T.vbench_dynamic([], fps=8, min_side=256)[0] is False
    # 4 fps: factor 8/4 = 2
    assert T.vbench_dynamic([1.0] * 10, fps=4, min_side=256)[1] == 12.0


def test_too_short_clip_is_reported_not_crashed():
    r = scores(np.stack([texture()]), FLOW_METRICS)
    for name in ("temporal_flicker", "warp_error", "motion_smoothness", "dynamic_degree"):
        assert r.scores[name] is None and "frames" in r.errors[name]


# --------------------------------------------------------------------------------------------------
# real clips: perturbations move the metrics the expected way
# --------------------------------------------------------------------------------------------------
def _load(path, n: int) -> np.ndarray:
    out = []
    for i, f in enumerate(Clip.open(path, load_audio_track=False).iter_frames(max_side=320)):
        if i >= n:
            break
        out.append(f)
    return np.stack(out)


@pytest.fixture(scope="module", params=["scenes/bear.mp4", "talking/00086.mp4"])
def real(request, media_dir):
    frames = _load(media_dir / request.param, 48)
    base = scores(frames, FLOW_METRICS, fps=25).scores
    return request.param, frames, base


def test_shuffled_frames_are_less_consistent(real):
    name, frames, base = real
    perm = np.random.default_rng(0).permutation(len(frames))
    s = scores(frames[perm], FLOW_METRICS).scores
    assert s["temporal_flicker"] < base["temporal_flicker"], name
    assert s["warp_error"] > base["warp_error"], name
    assert s["motion_smoothness"] < base["motion_smoothness"], name


def test_per_frame_noise_flickers(real):
    name, frames, base = real
    rng = np.random.default_rng(1)
    noisy = np.clip(frames + rng.normal(0, 8, frames.shape), 0, 255).astype(np.uint8)
    s = scores(noisy, FLOW_METRICS).scores
    assert s["temporal_flicker"] < base["temporal_flicker"] - 0.01, name
    assert s["warp_error"] > base["warp_error"], name


def test_frozen_stretch_reads_as_less_motion(real):
    name, frames, base = real
    frozen = np.concatenate([frames[:9], np.repeat(frames[8:9], 30, axis=0), frames[9:]])[:len(frames)]
    s = scores(frozen, FLOW_METRICS).scores
    assert s["flow_magnitude"] < 0.5 * base["flow_magnitude"], name
    assert s["temporal_flicker"] > base["temporal_flicker"], name
    assert s["dynamic_degree"] <= base["dynamic_degree"], name


def test_dropped_frames_are_less_smooth(real):
    name, frames, base = real
    s = scores(frames[::3], FLOW_METRICS).scores
    assert s["motion_smoothness"] < base["motion_smoothness"], name
    assert s["flow_magnitude"] > base["flow_magnitude"], name


def test_fully_frozen_clip_is_static_but_moving_bear_is_dynamic(media_dir):
    frames = _load(media_dir / "scenes/bear.mp4", 40)
    assert scores(frames, ["dynamic_degree"], fps=30).scores["dynamic_degree"] == 1.0
    static = scores(np.stack([frames[0]] * 40), ["dynamic_degree"], fps=30).scores
    assert static["dynamic_degree"] == 0.0 and static["flow_magnitude"] < 0.05


# --------------------------------------------------------------------------------------------------
# RAFT backend (torchvision) on random weights
# --------------------------------------------------------------------------------------------------


def test_raft_loader_and_flow_shapes(raft_small_path):
    flow = T.RaftFlow(raft_small_path, iters=2, device="cpu")
    assert flow.kind == "raft_small"
    a, b = texture(130, 134), texture(130, 134, seed=1)  # not multiples of 8: padded and cropped back
    fw, bw = flow.pair(a, b)
    assert fw.shape == bw.shape == (130, 134, 2) and fw.dtype == np.float32
    assert np.isfinite(fw).all() and np.isfinite(bw).all()


def test_warp_error_uses_raft_when_weights_given(raft_small_path, tmp_path):
    frames = np.stack([texture(128, 128, seed=s % 2) for s in range(3)])
    r = scores(frames, ["warp_error"], metric_options={"warp_error": {"raft_weights": str(raft_small_path),
                                                                       "raft_iters": 2}})
    assert r.errors == {} and r.backends["warp_error"] == "raft_small"
    assert np.isfinite(r.scores["warp_error"]) and r.scores["warp_error"] > 0
    bad = scores(frames, ["warp_error"], metric_options={"warp_error": {"raft_weights": str(tmp_path / "nope.pth")}})
    assert bad.scores["warp_error"] is None and "nope.pth" in bad.errors["warp_error"]


def test_forced_raft_without_weights_fails_clearly(monkeypatch, tmp_path):
    import torch

    monkeypatch.delenv(T.RAFT_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    r = scores(np.stack([texture()] * 3), ["warp_error"], metric_options={"warp_error": {"flow": "raft"}})
    assert r.scores["warp_error"] is None and T.RAFT_ENV in r.errors["warp_error"]
    auto = scores(np.stack([texture()] * 3), ["warp_error"])  # auto falls back to DIS, and says so
    assert auto.backends["warp_error"] == "opencv-dis"


# --------------------------------------------------------------------------------------------------
# DINO / CLIP consistency on tiny random-weight checkpoints
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory):
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    image_size=64, patch_size=16)
    path = tmp_path_factory.mktemp("dino")
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           image_size=64, patch_size=16, projection_dim=16)
    path = tmp_path_factory.mktemp("clip")
    CLIPVisionModelWithProjection(cfg).save_pretrained(path)
    return path


def test_vbench_formulas_on_hand_made_features():
    import torch

    f = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    # pairs: i=1: (0.6 + 0.6)/2; i=2: (0.8 + 0)/2; i=3: (max(0,0) + max(0,-1))/2 = 0
    assert C.vbench_consistency(f) == pytest.approx((0.6 + 0.4 + 0.0) / 3)
    img = torch.tensor([0.0, 1.0])
    # max to input = 1.0 (frame 2); consecutive = 0.6, 0.8, 0 -> mean 1.4/3, min 0 (VBench++: 0.4, 0.3, 0.3)
    assert C.vbench_i2v_subject(img, f) == pytest.approx(0.4 * 1.0 + 0.3 * 1.4 / 3 + 0.3 * 0.0)


def test_feature_consistency_with_tiny_models(tiny_dino, tiny_clip):
    still = np.stack([texture(72, 128)] * 6)  # 16:9-ish frames: DINO interpolates position embeddings
    moving = np.stack([texture(72, 128, seed=s) for s in range(6)])
    opts = {"subject_consistency": {"model_path": str(tiny_dino)},
            "background_consistency": {"model_path": str(tiny_clip)},
            "i2v_subject": {"model_path": str(tiny_dino)}}
    names = ["subject_consistency", "background_consistency", "i2v_subject"]
    r_still = evaluate(Clip.from_frames(still, 25), image=still[0], metrics=names, metric_options=opts)
    r_move = evaluate(Clip.from_frames(moving, 25), image=moving[0], metrics=names, metric_options=opts)
    assert r_still.errors == {} and r_move.errors == {}
    for n in names:
        assert r_still.scores[n] == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= r_move.scores[n] < r_still.scores[n]
    assert r_still.backends["subject_consistency"] == str(tiny_dino)


def test_frame_sampling_caps_the_batch(tiny_dino, monkeypatch):
    assert C.sample_indices(10, 32) is None
    idx = C.sample_indices(100, 16)
    assert len(idx) == 16 and min(idx) == 0 and max(idx) == 99
    seen: list[int] = []
    real_embed = C.Encoder.embed
    monkeypatch.setattr(C.Encoder, "embed", lambda self, x: (seen.append(len(x)), real_embed(self, x))[1])
    frames = np.stack([texture(48, 48, seed=s) for s in range(40)])
    r = evaluate(Clip.from_frames(frames, 25), metrics=["subject_consistency"],
                 metric_options={"subject_consistency": {"model_path": str(tiny_dino), "max_frames": 8}})
    assert r.errors == {} and 0 <= r.scores["subject_consistency"] <= 1
    assert seen == [8]
    seen.clear()  # default: every frame, as VBench, embedded in batches while streaming
    r = evaluate(Clip.from_frames(frames, 25), metrics=["subject_consistency"],
                 metric_options={"subject_consistency": {"model_path": str(tiny_dino), "batch": 16}})
    assert r.errors == {} and seen == [16, 16, 8]


def test_missing_dino_weights_say_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.delenv(C.DINO_ENV, raising=False)
    monkeypatch.setattr(C, "hub_cached", lambda hub_id: False)
    r = scores(np.stack([texture()] * 3), ["subject_consistency"])
    msg = r.errors["subject_consistency"]
    assert r.scores["subject_consistency"] is None
    assert "facebook/dino-vitb16 not in the local HF cache" in msg and "WORKBENCH_DINO" in msg
    bad = scores(np.stack([texture()] * 3), ["background_consistency"],
                 metric_options={"background_consistency": {"model_path": str(tmp_path)}})
    assert "config.json" in bad.errors["background_consistency"]


def test_i2v_subject_needs_an_image(tiny_dino):
    r = scores(np.stack([texture()] * 3), ["i2v_subject"])
    assert r.scores["i2v_subject"] is None and "image" in r.errors["i2v_subject"]


# --------------------------------------------------------------------------------------------------
# LPIPS between consecutive frames, random AlexNet backbone from a file
# --------------------------------------------------------------------------------------------------


def test_lpips_loader_maps_torchvision_backbone(alexnet_path):
    import torch

    model, backend = C.load_lpips("alex", alexnet_path)
    assert backend == "lpips-alex"
    sd = torch.load(alexnet_path, weights_only=True)
    assert torch.equal(model.net.slice1[0].weight.cpu(), sd["features.0.weight"])
    assert torch.equal(getattr(model.net.slice5, "10").weight.cpu(), sd["features.10.weight"])
    a, b = texture(64, 64), texture(64, 64, seed=5)
    d = C.lpips_distance(model, [a, a], [a, b])
    assert d.shape == (2,) and np.isfinite(d).all() and d[0] == pytest.approx(0.0, abs=1e-7) and d[1] > 0


def test_lpips_temporal_through_evaluate(alexnet_path, monkeypatch, tmp_path):
    opts = {"lpips_temporal": {"backbone": str(alexnet_path)}}
    still = scores(np.stack([texture(64, 80)] * 5), ["lpips_temporal"], metric_options=opts)
    moving = scores(np.stack([texture(64, 80, seed=s) for s in range(5)]), ["lpips_temporal"], metric_options=opts)
    assert still.scores["lpips_temporal"] == pytest.approx(0.0, abs=1e-7)
    assert moving.scores["lpips_temporal"] > 0 and moving.backends["lpips_temporal"] == "lpips-alex"
    import torch

    monkeypatch.delenv(C.LPIPS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    missing = scores(np.stack([texture()] * 3), ["lpips_temporal"])
    assert missing.scores["lpips_temporal"] is None and C.LPIPS_ENV in missing.errors["lpips_temporal"]


def test_registry_lists_every_temporal_score():
    from workbench.metrics.temporal import METRICS

    names = {s.name for cls in METRICS for s in cls.scores}
    assert {"temporal_flicker", "warp_error", "motion_smoothness", "dynamic_degree", "flow_magnitude",
            "subject_consistency", "background_consistency", "i2v_subject", "lpips_temporal"} <= names
    for cls in METRICS:
        for s in cls.scores:
            assert s.description and s.source and s.range


# --------------------------------------------------------------------------------------------------
# per-frame series and the worst frame
# --------------------------------------------------------------------------------------------------
def _panning(n: int = 16) -> np.ndarray:
    """A texture panning 1 px per frame: smooth motion, flow-friendly."""
    big = texture(96, 160, seed=3)
    return np.stack([big[:, i:i + 128] for i in range(n)])


def test_series_point_at_a_one_frame_flash():
    import json

    frames = _panning(16)
    flash = 7
    frames[flash] = np.clip(frames[flash].astype(int) * 3 // 2 + 30, 0, 255).astype(np.uint8)
    r = scores(frames, FLOW_METRICS)
    for name in ("temporal_flicker", "warp_error", "flow_magnitude", "motion_smoothness"):
        assert len(r.series[name]) == r.frames == 16, name
    assert r.worst_frame["temporal_flicker"] == flash
    assert r.worst_frame["warp_error"] == flash
    assert r.series["flow_magnitude"][0] is None  # no flow into the first frame
    smooth = r.series["motion_smoothness"]
    assert all(v is None for v in smooth[0::2]) and smooth[1] is not None  # odd frames only
    assert r.worst_frame["motion_smoothness"] in (flash - 1, flash, flash + 1)
    json.dumps({"series": r.series, **r.to_json("clip.mp4")})  # JSON-ready as the runner stores it
    assert set(r.to_json("clip.mp4")) == {"video", "scores", "backends", "errors", "worst_frame"}
    # the per-frame flicker series averages the two pairs each frame belongs to: its mean tracks the score
    assert np.mean(r.series["temporal_flicker"]) == pytest.approx(r.scores["temporal_flicker"], abs=0.01)


def test_duplicated_frame_is_a_motion_anomaly():
    frames = _panning(16)
    frames[9] = frames[8]
    r = scores(frames, ["flow_magnitude"])
    assert r.worst_frame["flow_magnitude"] in (9, 10)
    assert r.series["flow_magnitude"][9] == pytest.approx(0.0, abs=0.05)


def test_one_frame_clip_names_each_score():
    r = scores(np.stack([texture()]), ["dynamic_degree", "flow_magnitude"])
    assert r.errors["flow_magnitude"].startswith("flow_magnitude") and "dynamic_degree" not in r.errors["flow_magnitude"]
    assert r.errors["dynamic_degree"].startswith("dynamic_degree")


def test_flow_metrics_on_a_second_thread_give_the_same_values(monkeypatch):
    """evaluate() feeds the flow metrics on a worker thread and computes the flows they will read
    ahead on a pool; values, series and worst frames are those of the one-thread path, and a
    worker-side failure is recorded like any other."""
    import cv2

    from workbench.metrics.base import FrameStep

    asked: list[tuple[int, tuple[str, int]]] = []
    prefetch = FrameStep.prefetch

    def spy(self, key, pool):
        asked.append((self.index, key))
        prefetch(self, key, pool)

    monkeypatch.setattr(FrameStep, "prefetch", spy)
    frames = _panning(12)
    frames[5] = frames[4]
    names = [*FLOW_METRICS, "temporal_flicker"]
    threads = cv2.getNumThreads()
    par = scores(frames, names)
    assert cv2.getNumThreads() == threads  # one OpenCV thread inside the pool, restored after
    # every flow asked ahead: the pair at every frame, the skip flow at even frames, the flow between
    # dynamic_degree's sampled frames (every round(25 / 8) = 3rd)
    assert sorted(k for i, k in asked if i == 6) == [("from", 1), ("from", 2), ("from", 3), ("to", 1)]
    assert sorted(k for i, k in asked if i == 7) == [("from", 1), ("to", 1)]
    assert not [k for i, k in asked if i == 0]
    n_asked = len(asked)
    one = scores(frames, names, parallel=False)
    assert len(asked) == n_asked  # the one-thread path computes each flow where it is read
    assert par.scores == one.scores and par.series == one.series and par.worst_frame == one.worst_frame
    assert set(par.cpu) == {"main", "flow", "process"} and set(one.cpu) == {"main", "process"}
    short = scores(frames[:1], names)  # nothing to compare: every flow metric says why
    assert all(short.scores[n] is None and "frames" in short.errors[n] for n in FLOW_METRICS)


def test_overlapping_evaluations_restore_opencv_threads():
    """OpenCV's thread count is process-wide: two evaluations that overlap (Studio tabs) must leave it
    as it was, whichever ends first."""
    import cv2

    from workbench.metrics.registry import opencv_threads

    original = cv2.getNumThreads()
    cv2.setNumThreads(3)
    before = cv2.getNumThreads()
    assert before != 1
    a, b = opencv_threads(1), opencv_threads(1)
    a.__enter__()
    b.__enter__()
    assert cv2.getNumThreads() == 1
    a.__exit__(None, None, None)  # the first one ends while the second still runs
    assert cv2.getNumThreads() == 1
    b.__exit__(None, None, None)
    assert cv2.getNumThreads() == before
    cv2.setNumThreads(original)


def test_truncated_file_is_scored_on_what_decodes_with_a_warning(tmp_path):
    import av

    frames = _panning(30)
    path = tmp_path / "clip.mp4"
    out = av.open(str(path), "w", options={"movflags": "faststart"})  # index first: a cut file still opens
    stream = out.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    for f in frames:
        for pkt in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            out.mux(pkt)
    for pkt in stream.encode():
        out.mux(pkt)
    out.close()
    full = evaluate(path, metrics=["temporal_flicker"])
    assert full.frames == 30 and full.warnings == []
    cut = tmp_path / "cut.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.8)])
    r = evaluate(cut, metrics=["temporal_flicker"])
    assert 2 <= r.frames < 30 and r.scores["temporal_flicker"] is not None
    assert len(r.warnings) == 1 and f"decoded {r.frames} of 30 frames" in r.warnings[0]
