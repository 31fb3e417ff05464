"""Learned feature-similarity consistency metrics: DINO subject consistency, CLIP background
consistency, VBench++ i2v subject fidelity, and LPIPS between consecutive frames.

The weights are the user's: DINO and CLIP load from the Hugging Face hub (or a local folder given as
option `model_path` / env var), LPIPS's AlexNet/VGG backbone from the torch hub cache (or a path).
When they are not on this machine the metric raises MetricUnavailable with a one-line fix, never a
silent substitute. Frames are sampled evenly (at most `max_frames`) and embedded in batches.
Loaded models are cached per process, so scoring many clips loads each model once.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from workbench.metrics.base import EvalInputs, FrameStep, Metric, MetricUnavailable, ScoreSpec

DINO_HUB_ID = "facebook/dino-vitb16"
CLIP_HUB_ID = "openai/clip-vit-base-patch32"
DINO_ENV, CLIP_ENV, LPIPS_ENV = "WORKBENCH_DINO", "WORKBENCH_CLIP", "WORKBENCH_LPIPS_BACKBONE"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}

_MODELS: dict[tuple, Any] = {}  # (kind, source, device) -> loaded model


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def hf_source(hub_id: str, env: str, model_path: str | Path | None) -> tuple[str, bool]:
    """Where to load a transformers model from: (path or hub id, is_local_folder)."""
    for cand in (model_path, os.environ.get(env)):
        if cand:
            p = Path(cand).expanduser()
            if not (p / "config.json").is_file():
                raise MetricUnavailable(f"{p}: not a transformers model folder (no config.json); pass a folder "
                                        f"saved with save_pretrained (option model_path or ${env})")
            return str(p), True
    return hub_id, False


def hub_cached(hub_id: str) -> bool:
    """Whether `hub_id`'s config is in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:
        return False


def load_hf_vision(kind: str, hub_id: str, env: str, model_path: str | Path | None = None) -> tuple[Any, str]:
    """Load a DINO (`kind="dino"`, AutoModel) or CLIP (`kind="clip"`, CLIPVisionModelWithProjection)
    image encoder; returns (model in eval mode on the best device, source). Cached per process."""
    source, local = hf_source(hub_id, env, model_path)
    dev = _device()
    key = (kind, source, dev)
    if key in _MODELS:
        return _MODELS[key], source
    label = {"dino": "DINO", "clip": "CLIP"}[kind]
    # metrics never download on their own (a hub that cannot be reached would stall every clip):
    # `workbench weights fetch` is the one step that downloads
    if not local and not hub_cached(hub_id):
        raise MetricUnavailable(f"{label} weights {hub_id} not in the local HF cache; run `workbench weights fetch "
                                f"{kind}` where the hub is reachable, or set {env}=path")
    from transformers import AutoModel, CLIPVisionModelWithProjection

    cls = AutoModel if kind == "dino" else CLIPVisionModelWithProjection
    try:
        model = cls.from_pretrained(source, local_files_only=True)
    except Exception as e:
        raise MetricUnavailable(f"{label} weights {source} could not be loaded ({type(e).__name__}); run on a GPU "
                                f"box with hub access or set {env}=path") from None
    model = model.eval().to(dev)
    _MODELS[key] = model
    return model, source


# --------------------------------------------------------------------------------------------------
# preprocessing: VBench's torchvision transforms, on full-resolution frames
# --------------------------------------------------------------------------------------------------
# VBench reads every frame at its stored size (decord; the same pixels as PyAV's rgb24 on the shared
# clips) as a float tensor in [0, 255], resizes it with torchvision, then divides by 255 and normalises:
#   dino      subject_consistency:  Resize(224, bilinear, antialias=False), no crop          (VBench)
#   clip      background_consistency: Resize(224, bicubic, antialias=False) + CenterCrop(224) (VBench)
#   dino-i2v  i2v_subject frames:   Resize(256, bicubic) + CenterCrop(224), torchvision's
#             default antialias (on since torchvision 0.17)                                   (VBench++)
# Torchvision's own resize is used so the output size (int(224 * long / short), truncated) and the
# crop offset (rounded) are VBench's exactly.
TRANSFORMS: dict[str, tuple[int, str, bool | None, int | None, tuple, tuple]] = {
    # kind: (shorter side, interpolation, antialias (None: torchvision default), centre crop, mean, std)
    "dino": (224, "bilinear", False, None, IMAGENET_MEAN, IMAGENET_STD),
    "clip": (224, "bicubic", False, 224, CLIP_MEAN, CLIP_STD),
    "dino-i2v": (256, "bicubic", None, 224, IMAGENET_MEAN, IMAGENET_STD),
}


def _to_tensor(frames: list[np.ndarray]):
    """uint8 RGB frames -> float tensor (T, 3, H, W) in [0, 1] (LPIPS input)."""
    import torch

    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255.0)


def _sizes(kind: str, n_px: int) -> tuple[int, int | None]:
    """(shorter side, crop) of `kind` for a model of input size n_px (VBench's numbers at 224; a
    smaller test model gets them scaled)."""
    side, _, _, crop, _, _ = TRANSFORMS[kind]
    if n_px == 224:
        return side, crop
    return round(side * n_px / 224), (n_px if crop else None)


def vbench_preprocess(frame: np.ndarray, kind: str, n_px: int = 224):
    """One full-resolution uint8 RGB frame -> the (1, 3, h, w) tensor VBench feeds `kind`'s model
    (`n_px`: the model's input size, 224 for the real DINO and CLIP)."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    if kind not in TRANSFORMS:
        raise ValueError(f"unknown preprocessing {kind!r}; one of {sorted(TRANSFORMS)}")
    _, interp, antialias, _, mean, std = TRANSFORMS[kind]
    side, crop = _sizes(kind, n_px)
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()  # [0, 255], as VBench
    mode = InterpolationMode.BILINEAR if interp == "bilinear" else InterpolationMode.BICUBIC
    x = TF.resize(x, side, interpolation=mode, antialias=True if antialias is None else antialias)
    if crop:
        x = TF.center_crop(x, crop)
    return TF.normalize(x.div(255.0), mean, std)


def vbench_preprocess_image(image: np.ndarray, kind: str = "dino-i2v", n_px: int = 224):
    """The i2v input image as VBench++ prepares it: a PIL image, Resize(256, bicubic), CenterCrop(224),
    ToTensor, ImageNet normalisation; (1, 3, 224, 224)."""
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    _, _, _, _, mean, std = TRANSFORMS[kind]
    side, crop = _sizes(kind, n_px)
    im = TF.resize(Image.fromarray(np.ascontiguousarray(image[..., :3])), side, interpolation=InterpolationMode.BICUBIC)
    return TF.normalize(TF.to_tensor(TF.center_crop(im, crop)), mean, std)[None]


def dino_pos_encoding(embeddings_module, embeddings, height: int, width: int):
    """Position embeddings for a (height, width) input, interpolated the way the DINO hub model does
    (bicubic with scale factor (n + 0.1) / sqrt(N) per side), which VBench's DINO uses on non-square
    frames; transformers' ViT interpolates to an exact size instead, a slightly different resampling."""
    import math

    import torch
    import torch.nn.functional as F

    pos = embeddings_module.position_embeddings
    n_pos = pos.shape[1] - 1
    patch = embeddings_module.patch_size
    if embeddings.shape[1] - 1 == n_pos and height == width:
        return pos
    grid, dim = int(math.sqrt(n_pos)), pos.shape[-1]
    h0, w0 = height // patch + 0.1, width // patch + 0.1
    table = pos[:, 1:].reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    table = F.interpolate(table, scale_factor=(h0 / math.sqrt(n_pos), w0 / math.sqrt(n_pos)), mode="bicubic")
    table = table.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat((pos[:, :1], table), dim=1)


def use_dino_pos_encoding(model: Any) -> None:
    """Make a transformers ViT interpolate its position embeddings as the DINO hub model does."""
    import types

    emb = getattr(model, "embeddings", None)
    if emb is None or getattr(emb, "_dino_pos", False):
        return
    if not hasattr(emb, "patch_size"):
        emb.patch_size = model.config.patch_size
    emb.interpolate_pos_encoding = types.MethodType(dino_pos_encoding, emb)
    emb._dino_pos = True


class Encoder:
    """Frames preprocessed as VBench does (`vbench_preprocess`) -> L2-normalised embeddings, DINO or CLIP.

    `kind` is a key of TRANSFORMS; DINO kinds use the final-norm CLS token (as the DINO hub model's
    forward returns), CLIP the projected image embedding (openai CLIP's encode_image)."""

    def __init__(self, kind: str, model: Any):
        if kind not in TRANSFORMS:
            raise ValueError(f"unknown encoder kind {kind!r}; one of {sorted(TRANSFORMS)}")
        self.kind, self.model = kind, model
        self.n_px = int(getattr(model.config, "image_size", 224))  # 224 for the real DINO and CLIP
        if kind.startswith("dino"):
            use_dino_pos_encoding(model)

    def embed(self, x):
        """Preprocessed (N, 3, h, w) tensor -> L2-normalised features (N, D) on the CPU."""
        import torch
        import torch.nn.functional as F

        dev = next(self.model.parameters()).device
        with torch.inference_mode():
            x = x.to(dev)
            if self.kind.startswith("dino"):
                feat = self.model(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state[:, 0]
            else:
                feat = self.model(pixel_values=x).image_embeds
            return F.normalize(feat.float(), dim=-1).cpu()


def sample_indices(n_frames: int, max_frames: int | None) -> set[int] | None:
    """Evenly spaced frame indices (None: every frame)."""
    if not max_frames or n_frames <= 0 or n_frames <= max_frames:
        return None
    return {int(round(v)) for v in np.linspace(0, n_frames - 1, max_frames)}


def vbench_consistency(feats) -> float:
    """VBench subject/background consistency: mean over i >= 1 of
    (max(0, cos(f_i, f_{i-1})) + max(0, cos(f_i, f_0))) / 2, features already L2-normalised."""
    prev = (feats[1:] * feats[:-1]).sum(-1).clamp(min=0)
    first = (feats[1:] * feats[:1]).sum(-1).clamp(min=0)
    return float(((prev + first) / 2).mean())


I2V_WEIGHTS = (0.4, 0.3, 0.3)  # VBench++ i2v_subject: max to input, mean and min of consecutive similarity


def vbench_i2v_subject(image_feat, feats) -> float:
    """VBench++ i2v_subject: 0.4 * max_i max(0, cos(image, f_i)) + 0.3 * mean_i max(0, cos(f_{i-1}, f_i))
    + 0.3 * min_i max(0, cos(f_{i-1}, f_i))."""
    to_input = (feats * image_feat.view(1, -1)).sum(-1).clamp(min=0)
    consec = (feats[1:] * feats[:-1]).sum(-1).clamp(min=0)
    w_max, w_mean, w_min = I2V_WEIGHTS
    return float(w_max * to_input.max() + w_mean * consec.mean() + w_min * consec.min())


class _FeatureConsistency(Metric):
    """Embed frames while streaming, in batches, keeping only the features (memory stays flat).

    Every frame is used by default, as VBench does; `max_frames` samples that many evenly instead
    (faster, no longer VBench's number)."""

    kind = "dino"  # model to load ("dino" | "clip")
    transform = "dino"  # key of TRANSFORMS
    version = "2"  # 2: every frame at full resolution through VBench's exact transforms (1: <= 32 frames, pre-shrunk)
    hub_id, env = DINO_HUB_ID, DINO_ENV

    def __init__(self, model_path: str | Path | None = None, max_frames: int | None = None, batch: int = 16):
        if max_frames is not None and int(max_frames) < 2:
            raise ValueError(f"{self.name}: max_frames must be at least 2 (or None for every frame), got {max_frames}")
        self.model_path = model_path
        self.max_frames = max_frames
        self.batch = max(1, int(batch))
        self._source: str | None = None

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        env = os.environ.get(cls.env)
        return {cls.hub_id: bool(env and (Path(env) / "config.json").is_file()) or hub_cached(cls.hub_id)}

    def backend(self) -> str:
        return self._source or self.hub_id

    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        model, self._source = load_hf_vision(self.kind, self.hub_id, self.env, self.model_path)
        self._encoder = Encoder(self.transform, model)
        self._keep = sample_indices(inputs.video.num_frames, self.max_frames)
        self._pending: list = []  # preprocessed frames waiting for a batch
        self._feats: list = []  # (n, D) feature blocks
        self._size: tuple[int, int] | None = None  # (width, height) of the first frame

    def update(self, step: FrameStep) -> None:
        if self._size is None:
            self._size = (step.full.shape[1], step.full.shape[0])
        if self._keep is None or step.index in self._keep:
            self._pending.append(vbench_preprocess(step.full, self.transform, self._encoder.n_px))
            if len(self._pending) >= self.batch:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            import torch

            self._feats.append(self._encoder.embed(torch.cat(self._pending)))
            self._pending = []

    def _features(self):
        import torch

        self._flush()
        feats = torch.cat(self._feats) if self._feats else None
        n = 0 if feats is None else len(feats)
        if self.max_frames and n > self.max_frames:  # the header under-counted the frames
            feats = feats[np.linspace(0, n - 1, self.max_frames).round().astype(int)]
        if n < 2:
            raise MetricUnavailable(f"{self.name} needs at least 2 frames, the clip has {n}")
        return feats


class SubjectConsistency(_FeatureConsistency):
    """VBench subject consistency with DINO ViT-B/16 features (hub id facebook/dino-vitb16)."""

    name = "subject_consistency"
    scores = (ScoreSpec("subject_consistency", True, "[0, 1]",
                        "mean over frames of (cos(f_i, f_0) + cos(f_i, f_{i-1})) / 2, DINO ViT-B/16 CLS features, "
                        "clamped at 0; every frame, VBench's resize",
                        "VBench subject_consistency (Huang et al. 2024)", rewards_stillness=True),)

    def finish(self) -> dict[str, float | None]:
        return {"subject_consistency": vbench_consistency(self._features())}


class BackgroundConsistency(_FeatureConsistency):
    """VBench background consistency with CLIP ViT-B/32 image embeddings."""

    name = "background_consistency"
    kind = transform = "clip"
    hub_id, env = CLIP_HUB_ID, CLIP_ENV
    scores = (ScoreSpec("background_consistency", True, "[0, 1]",
                        "mean over frames of (cos(f_i, f_0) + cos(f_i, f_{i-1})) / 2, CLIP ViT-B/32 image "
                        "embeddings, clamped at 0; every frame, VBench's resize and crop",
                        "VBench background_consistency (Huang et al. 2024)", rewards_stillness=True),)

    def finish(self) -> dict[str, float | None]:
        return {"background_consistency": vbench_consistency(self._features())}


class I2VSubject(_FeatureConsistency):
    """VBench++ i2v subject: does the video keep the subject of the input image (DINO features)?
    VBench++ feeds images pre-cropped to the video's aspect ratio; any image is centre-cropped to it
    here first (no resampling), then prepared as VBench++ prepares its images."""

    name = "i2v_subject"
    transform = "dino-i2v"
    version = "2"  # 2: VBench++'s weights (0.4 max, 0.3 mean, 0.3 min) and transforms, every frame
    requires = frozenset({"image"})
    scores = (ScoreSpec("i2v_subject", True, "[0, 1]",
                        "0.4 * max_i cos(image, f_i) + 0.3 * mean_i cos(f_{i-1}, f_i) + 0.3 * min_i cos(f_{i-1}, f_i), "
                        "DINO ViT-B/16, clamped at 0",
                        "VBench++ i2v_subject (Huang et al. 2024)", rewards_stillness=True),)

    def finish(self) -> dict[str, float | None]:
        feats = self._features()
        image = self.inputs.image
        if image is None or image.ndim != 3:
            raise MetricUnavailable("i2v_subject needs an RGB input image (--image)")
        assert self._size is not None
        img = crop_to_aspect(image[..., :3], *self._size)
        return {"i2v_subject": vbench_i2v_subject(self._encoder.embed(vbench_preprocess_image(img, n_px=self._encoder.n_px))[0], feats)}


def crop_to_aspect(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The largest centred crop of `image` with the aspect ratio width:height (no resampling)."""
    h, w = image.shape[:2]
    if w * height > h * width:  # too wide
        cw = max(1, round(h * width / height))
        left = (w - cw) // 2
        return image[:, left:left + cw]
    ch = max(1, round(w * height / width))
    top = (h - ch) // 2
    return image[top:top + ch]


# --------------------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------------------
def find_lpips_backbone(net: str = "alex", path: str | Path | None = None) -> Path | None:
    """Backbone weights for LPIPS: explicit path, $WORKBENCH_LPIPS_BACKBONE, then the torch hub cache."""
    for cand in (path, os.environ.get(LPIPS_ENV)):
        if cand:
            p = Path(cand).expanduser()
            if not p.is_file():
                raise MetricUnavailable(f"LPIPS backbone weights {p} not found; pass an existing torchvision "
                                        f"{net} state dict (option backbone or ${LPIPS_ENV})")
            return p
    import torch

    p = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES.get(net, "")
    return p if p.is_file() else None


def load_lpips(net: str = "alex", backbone: str | Path | None = None) -> tuple[Any, str]:
    """LPIPS v0.1 (Zhang et al. 2018): the lpips package's linear layers + a torchvision AlexNet/VGG
    backbone loaded from a local file (torchvision would download it, which we never do)."""
    if net not in LPIPS_BACKBONE_FILES:
        raise ValueError(f"lpips net must be one of {sorted(LPIPS_BACKBONE_FILES)}, got {net!r}")
    path = find_lpips_backbone(net, backbone)
    if path is None:
        raise MetricUnavailable(f"LPIPS backbone {LPIPS_BACKBONE_FILES[net]} not in the torch hub cache; run on a box "
                                f"with it in ~/.cache/torch/hub/checkpoints or set {LPIPS_ENV}=path")
    dev = _device()
    key = ("lpips", net, str(path.resolve()), dev)
    if key in _MODELS:
        return _MODELS[key], f"lpips-{net}"
    import torch

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise MetricUnavailable(f"LPIPS backbone {path} cannot be read ({type(e).__name__}); pass a torchvision "
                                f"{net} state dict") from None
    # lpips keeps torchvision's layer indices: net.sliceK.<i>.weight <- features.<i>.weight
    mapped = {}
    for k in model.net.state_dict():
        src = "features." + k.split(".", 1)[1]
        if src not in state:
            raise MetricUnavailable(f"LPIPS backbone {path} lacks {src}; pass a torchvision {net} state dict")
        mapped[k] = state[src]
    model.net.load_state_dict(mapped)
    model = model.eval().to(dev)
    _MODELS[key] = model
    return model, f"lpips-{net}"


def lpips_distance(model: Any, a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """LPIPS distance of each pair (a[i], b[i]) of uint8 RGB frames of one size; shape (N,)."""
    import torch

    dev = next(model.parameters()).device
    with torch.inference_mode():
        x = _to_tensor(a).mul(2).sub(1).to(dev)
        y = _to_tensor(b).mul(2).sub(1).to(dev)
        return model(x, y).reshape(-1).float().cpu().numpy()


class LpipsBackend:
    """Options, backend name and availability shared by the LPIPS metrics (temporal and vs reference)."""

    def __init__(self, net: str = "alex", backbone: str | Path | None = None, batch: int = 8):
        self.net, self.backbone_path, self.batch = net, backbone, batch

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        try:
            return {"lpips-alex": find_lpips_backbone("alex") is not None}
        except MetricUnavailable:
            return {"lpips-alex": False}

    def backend(self) -> str:
        return f"lpips-{self.net}"

    def _open_lpips(self) -> None:
        """Load the model (cached per process) and reset the batched pair accumulator."""
        self._model, _ = load_lpips(self.net, self.backbone_path)
        self._a: list[np.ndarray] = []
        self._b: list[np.ndarray] = []
        self._sum, self._n = 0.0, 0

    def _add_pair(self, a: np.ndarray, b: np.ndarray) -> None:
        self._a.append(a)
        self._b.append(b)
        if len(self._a) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        if self._a:
            d = lpips_distance(self._model, self._a, self._b)
            self._sum += float(d.sum())
            self._n += len(d)
            self._a, self._b = [], []

    def _mean_distance(self) -> float | None:
        """Mean LPIPS over every pair added (None when there was none)."""
        self._flush()
        return self._sum / self._n if self._n else None


class LpipsTemporal(LpipsBackend, Metric):
    """LPIPS between consecutive frames: perceptual frame-to-frame change (lower = steadier)."""

    name = "lpips_temporal"
    scores = (ScoreSpec("lpips_temporal", False, "[0, 1+, rewards_stillness=True)",
                        "mean LPIPS (AlexNet, v0.1) between consecutive frames at analysis size",
                        "Zhang et al. 2018 LPIPS; temporal use as in Lai et al. 2018"),)

    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        self._open_lpips()

    def update(self, step: FrameStep) -> None:
        if step.prev_frame is not None:
            self._add_pair(step.prev_frame, step.frame)

    def finish(self) -> dict[str, float | None]:
        mean = self._mean_distance()
        if mean is None:
            raise MetricUnavailable("lpips_temporal needs at least 2 frames; pass a longer clip")
        return {"lpips_temporal": mean}


CONSISTENCY_METRICS: list[type[Metric]] = [SubjectConsistency, BackgroundConsistency, I2VSubject, LpipsTemporal]
