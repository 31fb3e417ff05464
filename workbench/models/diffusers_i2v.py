"""Image-to-video adapters over diffusers pipelines.

- `svd`: Stable Video Diffusion (StableVideoDiffusionPipeline; default weights
  stabilityai/stable-video-diffusion-img2vid-xt, a gated hub repo: accept its licence on the hub first).

The helpers below (device/dtype resolution, an in-process pipeline cache, offline-aware loading with a
one-line error, a cache-only weights check, a step callback that reports progress) are family-agnostic,
so the next diffusers family is one small Generator class.

diffusers and torch are imported inside functions: importing this module (which the registry does to
list models) stays cheap.
"""
from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from workbench.media import Clip, fit_image
from workbench.models.base import GenerationError, GenerationRequest, Generator, ProgressFn, register

TINY_HINT = "workbench.models.tiny builds a tiny one for tests"
PIPELINE_CACHE_SIZE = 2  # loaded pipelines kept in-process (LRU); a suite comparing two checkpoints loads each once

_DTYPES = {"float16": "float16", "fp16": "float16", "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float32": "float32", "fp32": "float32", "float": "float32"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_UNET_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                 "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin",
                 "diffusion_pytorch_model.safetensors.index.json")

_cache: OrderedDict[tuple, Any] = OrderedDict()
_cache_lock = threading.Lock()


# --------------------------------------------------------------------------------------------------
# family-agnostic helpers
# --------------------------------------------------------------------------------------------------
def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no network (then loading uses the local cache only)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def is_local_ref(model_id: str) -> bool:
    """A folder path rather than a hub id ("owner/name"): it exists, or it cannot be a hub id."""
    p = Path(model_id).expanduser()
    return p.exists() or not _HUB_ID.match(model_id) or model_id.startswith((".", "~"))


def weights_present(model_id: str) -> bool:
    """Whether a diffusers pipeline `model_id` can be loaded without a download.

    A local folder needs model_index.json; a hub id needs model_index.json and a UNet weight file in the
    local hub cache (huggingface_hub.try_to_load_from_cache: reads the cache only, never the network).
    """
    if is_local_ref(model_id):
        return (Path(model_id).expanduser() / "model_index.json").is_file()
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False

    def cached(filename: str) -> bool:
        try:
            return isinstance(try_to_load_from_cache(model_id, filename), str)
        except Exception:  # an invalid repo id or an unreadable cache: not available
            return False

    return cached("model_index.json") and any(cached(f"unet/{name}") for name in _UNET_WEIGHTS)


def resolve_device(device: str) -> str:
    """"auto" -> cuda when a GPU is visible, else mps, else cpu; anything else is checked and returned."""
    import torch

    device = str(device).strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GenerationError(f"device {device!r} asked for but no CUDA GPU is visible; set device: auto or cpu")
    try:
        torch.device(device)
    except RuntimeError:
        raise GenerationError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """"auto" -> float16 on a GPU, float32 on the CPU (half precision on a CPU is slow and lossy)."""
    key = str(dtype).strip().lower()
    if key == "auto":
        return "float32" if device == "cpu" else "float16"
    if key not in _DTYPES:
        raise GenerationError(f"unknown dtype {dtype!r}; use auto, float16, bfloat16 or float32")
    return _DTYPES[key]


def missing_weights_error(family: str, model_id: str) -> GenerationError:
    return GenerationError(f"{family}: weights {model_id} not found locally; run on a box with hub access "
                           f"or set model_id to a local folder ({TINY_HINT})")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0].rstrip(" .") if text else type(e).__name__


def load_pipeline(family: str, pipeline_class: str, model_id: str, dtype: str, device: str,
                  variant: str = "") -> Any:
    """Load (or reuse) a diffusers pipeline on `device` in `dtype` (names as from resolve_*).

    Cached in-process per (class, model id, dtype, device, variant) so a suite with many jobs loads once;
    a local folder's key includes its model_index.json mtime, so re-saving a checkpoint reloads it.
    With HF_HUB_OFFLINE set, or for a local folder, nothing is downloaded.
    """
    local = is_local_ref(model_id)
    if local:
        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            raise missing_weights_error(family, model_id)
        if not (folder / "model_index.json").is_file():
            raise GenerationError(f"{family}: {model_id} is not a diffusers pipeline folder (no model_index.json); "
                                  f"point model_id at a folder saved with save_pretrained ({TINY_HINT})")
        source = str(folder.resolve())
        stamp = (folder / "model_index.json").stat().st_mtime_ns
    else:
        source, stamp = model_id, 0
        if hub_offline() and not weights_present(model_id):
            raise missing_weights_error(family, model_id)
    key = (pipeline_class, source, stamp, dtype, device, variant)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        import diffusers
        import torch

        cls = getattr(diffusers, pipeline_class)
        kwargs: dict[str, Any] = {"local_files_only": local or hub_offline()}
        # diffusers >= 0.36 renamed torch_dtype to dtype (the old name warns)
        dtype_kw = "dtype" if hasattr(diffusers.utils.deprecation_utils, "_resolve_dtype") else "torch_dtype"
        kwargs[dtype_kw] = getattr(torch, dtype)
        if variant:
            kwargs["variant"] = variant
        try:
            pipe = cls.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as e:
            if kwargs["local_files_only"] and not local:
                raise missing_weights_error(family, model_id) from None
            raise GenerationError(f"{family}: could not load {model_id}: {_first_line(e)}; "
                                  f"check model_id / variant, or the hub login for gated repos") from None
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        while len(_cache) >= PIPELINE_CACHE_SIZE:
            _cache.popitem(last=False)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        _cache[key] = pipe
        return pipe


def clear_pipeline_cache() -> None:
    """Drop every cached pipeline (frees GPU memory between experiments in a notebook)."""
    with _cache_lock:
        _cache.clear()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def step_callback(progress: ProgressFn | None, total: int):
    """A `callback_on_step_end` that reports (step + 1, total) and leaves the latents alone."""
    def callback(pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        if progress is not None:
            progress(step + 1, int(getattr(pipe, "_num_timesteps", None) or total))
        return {}
    return callback


def frames_to_uint8(frames: Any, family: str, dtype: str) -> np.ndarray:
    """(T, H, W, 3) float frames in [0, 1] -> uint8; NaNs (fp16 overflow) are an error, not black video."""
    arr = np.asarray(frames, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise GenerationError(f"{family}: the pipeline produced NaN/inf frames in {dtype}; "
                              f"set dtype: float32 (or bfloat16)")
    return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def _positive_int(family: str, params: dict[str, Any], key: str, minimum: int = 1) -> int:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise GenerationError(f"{family}: {key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _size(family: str, params: dict[str, Any], multiple: int = 8) -> tuple[int, int]:
    w, h = _positive_int(family, params, "width", multiple), _positive_int(family, params, "height", multiple)
    if w % multiple or h % multiple:
        raise GenerationError(f"{family}: width and height must be multiples of {multiple}, got {w}x{h}; "
                              f"e.g. 1024x576")
    return w, h


# --------------------------------------------------------------------------------------------------
# svd
# --------------------------------------------------------------------------------------------------
@register
class StableVideoDiffusion(Generator):
    """Stable Video Diffusion: animates one still; motion is set by motion_bucket_id and noise_aug_strength.

    The image is cover-fitted (resize + centre crop) to width x height. `fps` is both the SVD
    micro-conditioning and the output clip's frame rate. Guidance ramps linearly from min_guidance_scale
    (first frame) to max_guidance_scale (last frame). Noise comes from a CPU torch.Generator seeded with
    the request seed, so a seed gives the same starting noise on every device.
    """

    name = "svd"
    task = "image-to-video"
    description = "Stable Video Diffusion (diffusers StableVideoDiffusionPipeline), image -> short clip"
    requires = frozenset({"image"})
    weights = "stabilityai/stable-video-diffusion-img2vid-xt"
    defaults = {
        "model_id": "stabilityai/stable-video-diffusion-img2vid-xt",
        "num_frames": 14,
        "fps": 7,
        "num_inference_steps": 25,
        "min_guidance_scale": 1.0,
        "max_guidance_scale": 3.0,
        "motion_bucket_id": 127,
        "noise_aug_strength": 0.02,
        "decode_chunk_size": 8,
        "width": 1024,
        "height": 576,
        "dtype": "auto",
        "device": "auto",
        "variant": "",  # "fp16" loads the hub's half-size fp16 weight files
    }

    @classmethod
    def weights_available(cls) -> bool:
        return weights_present(cls.defaults["model_id"])

    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> Clip:
        self.check_inputs(request)
        p = self.params
        family = self.name
        width, height = _size(family, p)
        num_frames = _positive_int(family, p, "num_frames")
        steps = _positive_int(family, p, "num_inference_steps")
        fps = _positive_int(family, p, "fps")  # also the micro-conditioning (SVD sees fps - 1)
        chunk = _positive_int(family, p, "decode_chunk_size")
        motion = _positive_int(family, p, "motion_bucket_id", 0)
        if p["min_guidance_scale"] > p["max_guidance_scale"]:
            raise GenerationError(f"{family}: min_guidance_scale {p['min_guidance_scale']} exceeds "
                                  f"max_guidance_scale {p['max_guidance_scale']}; swap them")
        if not 0.0 <= p["noise_aug_strength"] <= 10.0:
            raise GenerationError(f"{family}: noise_aug_strength must be in [0, 10], got {p['noise_aug_strength']}")
        model_id = str(p["model_id"])
        device = resolve_device(p["device"])
        dtype = resolve_dtype(p["dtype"], device)
        pipe = load_pipeline(family, "StableVideoDiffusionPipeline", model_id, dtype, device, str(p["variant"]))

        import torch
        from PIL import Image

        image = Image.fromarray(fit_image(request.image, width, height))
        generator = torch.Generator("cpu").manual_seed(int(request.seed))
        out = pipe(image, height=height, width=width, num_frames=num_frames, num_inference_steps=steps,
                   min_guidance_scale=float(p["min_guidance_scale"]), max_guidance_scale=float(p["max_guidance_scale"]),
                   fps=fps, motion_bucket_id=motion, noise_aug_strength=float(p["noise_aug_strength"]),
                   decode_chunk_size=chunk, generator=generator, output_type="np",
                   callback_on_step_end=step_callback(progress, steps))
        frames = frames_to_uint8(out.frames[0], family, dtype)
        return Clip.from_frames(frames, fps)
