"""One generic adapter over diffusers pipelines, driven by the family table in `families.py`.

Every `FamilySpec` becomes a registered `Generator` subclass (`svd`, `wan2.1-i2v-480p`, `flux-schnell`, ...).
The common request (image, prompt, negative prompt, seed, num_frames, height, width, steps, guidance, fps)
maps onto each pipeline's own argument names; family extras pass through. A family that takes a prompt runs
with an empty one when the case has none (image-only cases). Extras left at None are the pipeline's default,
or fitted to the loaded checkpoint where the default only fits the released weights (HunyuanVideo-I2V's
prompt_template, Sana-Video's use_resolution_binning): tiny and released checkpoints both run with the
defaults. A request the family cannot honour is refused by `check_request` before anything loads,
including driving audio to LTX-2 (it makes its own soundtrack).

Every family shares one `options:` block (how to run, not what to make): dtype, device, offload
(model / sequential / group), VAE tiling and slicing, decode_chunk_size, layerwise fp8 storage,
compile_repeated_blocks, an attention backend, a diffusers cache (FirstBlockCache, FasterCache,
PyramidAttentionBroadcast, TaylorSeer, MagCache), allow_pickle and LoRA adapters (`lora: [{path, scale}]`,
loaded with diffusers' load_lora_weights / set_adapters; each file's sha256 is part of the resolved options,
so of the clip id). An option a family cannot use is an error, never silently ignored.

Weights never download here: a hub id must already be in the local hub cache (`workbench weights fetch
NAME` puts it there), else the job fails at once with that command in the message. Every load asks for
safetensors; pickled (.bin) weights load only with `options: {allow_pickle: true}`.

diffusers and torch are imported inside functions: importing this module (which the registry does to
list models) stays cheap.
"""
from __future__ import annotations

import inspect
import json
import math
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workbench.hashing import file_hash
from workbench.media import Audio, Clip, fit_image
from workbench.models.base import GenerationError, GenerationRequest, Generator, ProgressFn, register
from workbench.models.families import FAMILIES, T2I, FamilySpec

TINY_HINT = "`workbench models build-tiny DIR` writes tiny local ones for tests"
PIPELINE_CACHE_SIZE = 2  # loaded pipelines kept in-process (LRU); a suite comparing two checkpoints loads each once

_DTYPES = {"float16": "float16", "fp16": "float16", "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float32": "float32", "fp32": "float32", "float": "float32", "auto": "auto"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_SAFE_WEIGHTS = (".safetensors", ".safetensors.index.json")
_PICKLE_WEIGHTS = (".bin", ".bin.index.json", ".pt", ".pth", ".ckpt")

# the options block, shared by every diffusers family (defaults are what runs when a key is left out)
OPTION_DEFAULTS: dict[str, Any] = {
    "dtype": "auto",  # auto (fp16 on a GPU, fp32 on the CPU) | bf16 | fp16 | fp32
    "device": "auto",  # auto | cpu | cuda | cuda:N | mps
    "offload": "none",  # none | model | sequential | group (CPU offload of weights between uses; needs a GPU)
    "vae_tiling": False,
    "vae_slicing": False,
    "decode_chunk_size": None,  # frames decoded at once (SVD)
    "layerwise_fp8": False,  # store denoiser weights in float8_e4m3fn, compute in dtype
    "compile_repeated_blocks": False,  # torch.compile each repeated transformer block (regional compile)
    "attention_backend": None,  # e.g. native, flash, sage, _native_cudnn, flex, xformers
    "cache": None,  # {kind: first_block | faster | pab | taylorseer | magcache, ...that config's fields}
    "allow_pickle": False,  # also accept pickled .bin weights (unsafe with untrusted repos)
    "lora": None,  # [{path: file.safetensors or a folder holding one, scale: 1.0}, ...] (left out when unset)
}
OFFLOAD_MODES = ("none", "model", "sequential", "group")
# diffusers.models.attention_dispatch.AttentionBackendName values in diffusers 0.42 (checked by a test)
ATTENTION_BACKENDS = (
    "flash", "flash_hub", "flash_varlen", "flash_varlen_hub", "flash_4_hub", "_flash_3", "_flash_varlen_3",
    "_flash_3_hub", "_flash_3_varlen_hub", "aiter_fa2_hub", "flex", "native", "_native_cudnn", "_native_efficient",
    "_native_flash", "_native_math", "_native_npu", "_native_xla", "sage", "sage_hub", "sage_blackwell_hub",
    "sage_varlen", "_sage_qk_int8_pv_fp8_cuda", "_sage_qk_int8_pv_fp8_cuda_sm90", "_sage_qk_int8_pv_fp16_cuda",
    "_sage_qk_int8_pv_fp16_triton", "xformers")
# cache kind -> diffusers.hooks config class
CACHE_KINDS = {"first_block": "FirstBlockCacheConfig", "faster": "FasterCacheConfig",
               "pab": "PyramidAttentionBroadcastConfig", "taylorseer": "TaylorSeerCacheConfig",
               "magcache": "MagCacheConfig"}

_cache: OrderedDict[tuple, Any] = OrderedDict()
_cache_lock = threading.Lock()


# --------------------------------------------------------------------------------------------------
# weights: local only
# --------------------------------------------------------------------------------------------------
def is_local_ref(model_id: str) -> bool:
    """A folder path rather than a hub id ("owner/name"): it exists, or it cannot be a hub id."""
    p = Path(model_id).expanduser()
    return p.exists() or not _HUB_ID.match(model_id) or model_id.startswith((".", "~", "/"))


def folder_problem(folder: Path, allow_pickle: bool = False) -> str | None:
    """Why a diffusers pipeline folder cannot load offline (None when complete): every component named in
    model_index.json needs its folder, and model components a weight file (safetensors unless
    allow_pickle)."""
    index = folder / "model_index.json"
    if not index.is_file():
        return "no model_index.json"
    try:
        components = json.loads(index.read_text())
    except ValueError:
        return "model_index.json is not valid JSON"
    suffixes = _SAFE_WEIGHTS + (_PICKLE_WEIGHTS if allow_pickle else ())
    for name, value in components.items():
        if name.startswith("_") or not (isinstance(value, list) and len(value) == 2 and value[0] and value[1]):
            continue
        sub = folder / name
        if not sub.is_dir() or not any(sub.iterdir()):
            return f"component folder {name}/ is missing"
        if (sub / "config.json").is_file() and not any(
                f.name.endswith(suffixes) for f in sub.iterdir()):
            if any(f.name.endswith(_PICKLE_WEIGHTS) for f in sub.iterdir()):
                return f"{name}/ has only pickled weights; set options: {{allow_pickle: true}} if you trust the repo"
            return f"{name}/ has no weight file"
    return None


TINY_BYTES = 64 * 2**20  # a pipeline folder whose weights weigh less in all is a random-weight test checkpoint
TINY_SIDE = 64  # its frame side: a multiple of every family's size_multiple
TINY_STEPS = 2


def local_defaults(spec: Any, folder: str | Path) -> dict[str, Any]:
    """The parameters a local checkpoint folder suggests instead of its family's hub defaults (the Studio
    fills its form with them). A tiny checkpoint (all weights under TINY_BYTES: what `workbench models
    build-tiny` writes) makes noise for plumbing, so it gets the smallest request the family's rules allow:
    TINY_STEPS steps, frame_rule + 1 frames, TINY_SIDE px; seconds on a CPU, where the hub defaults (832x480,
    81 frames, 50 steps) take minutes. A full-size checkpoint keeps the family's defaults. Empty when the
    folder cannot be read."""
    try:
        weights = [f for f in Path(folder).rglob("*") if f.is_file() and f.name.endswith(_SAFE_WEIGHTS + _PICKLE_WEIGHTS)]
        total = sum(f.stat().st_size for f in weights)
    except OSError:
        return {}
    if not weights or total >= TINY_BYTES:
        return {}
    out: dict[str, Any] = {"num_inference_steps": TINY_STEPS}
    if spec.num_frames > 1:
        out["num_frames"] = spec.frame_rule + 1 if spec.frame_rule > 1 else min(spec.num_frames, 4)
    if spec.width:
        out["width"] = out["height"] = TINY_SIDE
    return out


def cached_snapshot(repo_id: str, filename: str = "model_index.json") -> Path | None:
    """The local hub-cache snapshot folder of `repo_id` that holds `filename` (reads the cache only, never the
    network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with diffusers
        return None
    try:
        hit = try_to_load_from_cache(repo_id, filename)
    except Exception:  # an invalid repo id or an unreadable cache: not available
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def weights_present(model_id: str, allow_pickle: bool = False) -> bool:
    """Whether the diffusers pipeline `model_id` (hub id or folder) loads here without a download."""
    if is_local_ref(model_id):
        return folder_problem(Path(model_id).expanduser(), allow_pickle) is None
    snap = cached_snapshot(model_id)
    return snap is not None and folder_problem(snap, allow_pickle) is None


def missing_weights_error(family: str, model_id: str) -> GenerationError:
    if is_local_ref(model_id):
        return GenerationError(f"{family}: weights {model_id} not found locally; point model_id at a diffusers "
                               f"pipeline folder ({TINY_HINT})")
    return GenerationError(f"{family}: weights {model_id} not found locally; run `workbench weights fetch {family}` "
                           f"on a machine with network (or set model_id to a local folder)")


# --------------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------------
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
        raise GenerationError(f"options.device {device!r} asked for but no CUDA GPU is visible; set device: auto or cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """"auto" -> float16 on a GPU, float32 on the CPU (half precision on a CPU is slow and lossy)."""
    key = _DTYPES[str(dtype).strip().lower()]
    if key == "auto":
        return "float32" if device == "cpu" else "float16"
    return key


def check_options(spec: FamilySpec, options: dict[str, Any] | None) -> dict[str, Any]:
    """Validate an `options:` block for `spec` (no torch import) and return it with every default filled."""
    given = dict(options or {})
    where = f"model '{spec.name}'"
    unknown = sorted(set(given) - set(OPTION_DEFAULTS))
    if unknown:
        raise GenerationError(f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTION_DEFAULTS)}")
    out = {**OPTION_DEFAULTS, **given}
    if not isinstance(out["dtype"], str) or out["dtype"].strip().lower() not in _DTYPES:
        raise GenerationError(f"{where}: options.dtype {out['dtype']!r} unknown; use auto, bf16, fp16 or fp32")
    out["dtype"] = _DTYPES[out["dtype"].strip().lower()]
    if not isinstance(out["device"], str) or not _DEVICE.match(out["device"].strip().lower()):
        raise GenerationError(f"{where}: options.device {out['device']!r} unknown; use auto, cpu, cuda, cuda:N or mps")
    out["device"] = out["device"].strip().lower()
    if out["offload"] not in OFFLOAD_MODES:
        raise GenerationError(f"{where}: options.offload {out['offload']!r} unknown; use one of {', '.join(OFFLOAD_MODES)}")
    for key in ("vae_tiling", "vae_slicing", "layerwise_fp8", "compile_repeated_blocks", "allow_pickle"):
        if not isinstance(out[key], bool):
            raise GenerationError(f"{where}: options.{key} must be true or false, got {out[key]!r}")

    def refuse(key: str, why: str) -> None:
        raise GenerationError(f"{where}: options.{key} does not apply ({why}); remove it")

    if (out["vae_tiling"] or out["vae_slicing"]) and not spec.vae_tiling:
        refuse("vae_tiling" if out["vae_tiling"] else "vae_slicing", f"{spec.pipeline}'s VAE has no tiling/slicing")
    chunk = out["decode_chunk_size"]
    if chunk is not None:
        if not spec.decode_chunk_size:
            refuse("decode_chunk_size", f"{spec.pipeline} decodes all frames at once; use vae_slicing / vae_tiling")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise GenerationError(f"{where}: options.decode_chunk_size must be an integer >= 1, got {chunk!r}")
    if out["compile_repeated_blocks"] and not spec.repeated_blocks:
        refuse("compile_repeated_blocks", f"the {spec.denoiser} declares no repeated blocks")
    backend = out["attention_backend"]
    if backend is not None and backend not in ATTENTION_BACKENDS:
        raise GenerationError(f"{where}: options.attention_backend {backend!r} unknown; use one of "
                              f"native, flash, sage, flex, xformers, _native_cudnn (diffusers attention_dispatch)")
    cache = out["cache"]
    if cache is not None:
        if not spec.cache:
            refuse("cache", f"the {spec.denoiser} of {spec.pipeline} supports no diffusers cache")
        if isinstance(cache, str):
            cache = {"kind": cache}
        if not isinstance(cache, dict) or cache.get("kind") not in CACHE_KINDS:
            raise GenerationError(f"{where}: options.cache needs kind: one of {', '.join(CACHE_KINDS)} "
                                  f"(e.g. cache: {{kind: first_block, threshold: 0.05}})")
        if cache["kind"] == "magcache" and not (cache.get("mag_ratios") or cache.get("calibrate")):
            raise GenerationError(f"{where}: options.cache kind magcache needs mag_ratios (or calibrate: true for a "
                                  f"calibration run)")
        out["cache"] = dict(cache)
    if out["offload"] != "none" and out["device"] in ("cpu", "mps"):
        raise GenerationError(f"{where}: options.offload {out['offload']} moves weights to the CPU between uses and "
                              f"needs a GPU; set device: cuda (or offload: none)")
    lora = check_lora(spec, out.pop("lora"))
    if lora:  # unset lora is left out, so clip ids made before LoRA support stay the same
        out["lora"] = lora
    return out


def lora_file(path: Path) -> Path | None:
    """The LoRA weight file of `path`: the file itself (.safetensors), or in a folder
    pytorch_lora_weights.safetensors (what save_lora_weights writes), else its only .safetensors file."""
    if path.is_file():
        return path if path.suffix == ".safetensors" else None
    if not path.is_dir():
        return None
    if (path / "pytorch_lora_weights.safetensors").is_file():
        return path / "pytorch_lora_weights.safetensors"
    found = sorted(path.glob("*.safetensors"))
    return found[0] if len(found) == 1 else None


def check_lora(spec: FamilySpec, value: Any) -> list[dict[str, Any]]:
    """Validate `options.lora` ([{path, scale}], a single mapping also accepted) and resolve each entry to
    {path (the weight file, absolute), scale (float), sha256 (of the file's bytes)}: the digest puts the
    LoRA's contents in the clip id, so a retrained file at the same path never reuses a clip."""
    where = f"model '{spec.name}': options.lora"
    if value is None or value == []:
        return []
    if not spec.lora:
        raise GenerationError(f"{where} does not apply ({spec.pipeline} has no LoRA loader in diffusers); remove it")
    entries = [value] if isinstance(value, dict) else value
    if not isinstance(entries, list):
        raise GenerationError(f"{where} must be a list of {{path, scale}}, e.g. lora: [{{path: my_lora.safetensors, "
                              f"scale: 0.8}}]")
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or not entry.get("path"):
            raise GenerationError(f"{where}[{i}] needs path: a .safetensors file or a folder holding one")
        unknown = sorted(set(entry) - {"path", "scale", "sha256"})  # sha256: an already-resolved entry
        if unknown:
            raise GenerationError(f"{where}[{i}]: unknown key(s) {', '.join(unknown)}; known: path, scale")
        scale = entry.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise GenerationError(f"{where}[{i}].scale must be a number (1.0 = full strength), got {scale!r}")
        given = Path(str(entry["path"])).expanduser()
        if not given.exists():
            raise GenerationError(f"{where}[{i}].path {given} not found; point it at a local LoRA .safetensors file "
                                  f"(or a folder holding one)")
        weights = lora_file(given)
        if weights is None:
            raise GenerationError(f"{where}[{i}].path {given} holds no single LoRA .safetensors file (pickled LoRAs are "
                                  f"not loaded); point it at the .safetensors file")
        digest = file_hash(weights.resolve())
        if entry.get("sha256") and entry["sha256"] != digest:
            raise GenerationError(f"{where}[{i}].path {weights} changed since the job was planned (its bytes differ); "
                                  f"run the suite again to plan it with this file")
        out.append({"path": str(weights.resolve()), "scale": float(scale), "sha256": digest})
    return out


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0].rstrip(" .") if text else type(e).__name__


def _cache_config(pipe: Any, spec: FamilySpec, cache: dict[str, Any]) -> Any:
    import dataclasses

    import diffusers.hooks as hooks

    cls = getattr(hooks, CACHE_KINDS[cache["kind"]])
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) and k.endswith("_range") else v)
              for k, v in cache.items() if k != "kind"}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise GenerationError(f"{spec.name}: options.cache {cache['kind']} has no field(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(f for f in fields if not f.startswith('_')))}")
    if "current_timestep_callback" in fields:
        kwargs["current_timestep_callback"] = lambda: pipe.current_timestep
    if cache["kind"] == "pab":
        kwargs.setdefault("spatial_attention_block_skip_range", 2)
    return cls(**kwargs)


def _apply_options(pipe: Any, spec: FamilySpec, opts: dict[str, Any], device: str, dtype: str) -> Any:
    import torch

    denoisers = [getattr(pipe, n, None) for n in (spec.denoiser, spec.denoiser + "_2")]
    denoisers = [d for d in denoisers if d is not None]
    if opts["attention_backend"]:
        for d in denoisers:
            d.set_attention_backend(opts["attention_backend"])
    if opts["layerwise_fp8"]:
        for d in denoisers:
            d.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=getattr(torch, dtype))
    if opts["cache"]:
        for d in denoisers:
            d.enable_cache(_cache_config(pipe, spec, opts["cache"]))
    vae = getattr(pipe, "vae", None)
    if opts["vae_tiling"]:
        vae.enable_tiling()
    if opts["vae_slicing"]:
        vae.enable_slicing()
    if opts["offload"] == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif opts["offload"] == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif opts["offload"] == "group":
        pipe.enable_group_offload(onload_device=torch.device(device), offload_type="leaf_level")
    else:
        pipe.to(device)
    if opts["compile_repeated_blocks"]:
        for d in denoisers:
            d.compile_repeated_blocks(fullgraph=True)
    return pipe


_LOAD_OPTIONS = ("offload", "vae_tiling", "vae_slicing", "layerwise_fp8", "compile_repeated_blocks",
                 "attention_backend", "cache", "allow_pickle")


def _lora_key(options: dict[str, Any]) -> tuple[str, ...]:
    """The LoRA files a pipeline carries (their digests): scales are set per call, not per load."""
    return tuple(entry["sha256"] for entry in options.get("lora") or ())


def _load_loras(pipe: Any, spec: FamilySpec, loras: list[dict[str, Any]]) -> None:
    """Load each LoRA file as its own adapter (`lora0`, `lora1`, ...) with diffusers' load_lora_weights."""
    try:
        import peft  # noqa: F401  (diffusers' LoRA loading runs on peft)
    except ImportError:
        raise GenerationError(f"{spec.name}: options.lora needs peft; pip install peft") from None
    import diffusers.utils.logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity_error()  # "no LoRA keys for text_encoder" notes for every component a LoRA leaves alone
    try:
        for i, entry in enumerate(loras):
            path = Path(entry["path"])
            try:
                with _quiet_loading():
                    pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=f"lora{i}")
            except Exception as e:  # a LoRA made for another model: shape mismatches, unknown formats
                # local, not for a cycle: importing external registers the recipe models, and the registry
                # lists the diffusers families first (package order: baselines, diffusers, external)
                from workbench.models.external import shorten

                raise GenerationError(f"{spec.name}: LoRA {path} does not load into {spec.pipeline}: "
                                      f"{shorten(_first_line(e), 200)}; use a LoRA trained for this model") from None
            loaded = {a for names in pipe.get_list_adapters().values() for a in names}
            if f"lora{i}" not in loaded:
                raise GenerationError(f"{spec.name}: LoRA {path} has no weights for any part of {spec.pipeline} (made "
                                      f"for another model?); use a LoRA trained for this model")
    finally:
        dlog.set_verbosity(level)


def set_lora_scales(pipe: Any, loras: list[dict[str, Any]]) -> None:
    """Activate the pipeline's LoRA adapters at this job's scales (a cached pipeline serves several scales)."""
    if loras:
        pipe.set_adapters([f"lora{i}" for i in range(len(loras))], adapter_weights=[e["scale"] for e in loras])


class _quiet_loading:
    """No diffusers / transformers loading progress bars (they fill logs and notebooks with noise)."""

    def __enter__(self) -> None:
        import diffusers.utils.logging as dlog
        import transformers.utils.logging as tlog

        self._was = (dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled())
        dlog.disable_progress_bar()
        tlog.disable_progress_bar()

    def __exit__(self, *exc: Any) -> None:
        import diffusers.utils.logging as dlog
        import transformers.utils.logging as tlog

        if self._was[0]:
            dlog.enable_progress_bar()
        if self._was[1]:
            tlog.enable_progress_bar()


def load_pipeline(spec: FamilySpec, model_id: str, options: dict[str, Any], variant: str = "") -> Any:
    """Load (or reuse) the pipeline of `spec` from `model_id` with the resolved `options`; never downloads.

    Cached in-process per (class, source, variant, options) so a suite with many jobs loads once; a local
    folder's key includes its model_index.json mtime, so re-saving a checkpoint reloads it.
    """
    family = spec.name
    allow_pickle = bool(options.get("allow_pickle"))
    if is_local_ref(model_id):
        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            raise missing_weights_error(family, model_id)
        if not (folder / "model_index.json").is_file():
            raise GenerationError(f"{family}: {model_id} is not a diffusers pipeline folder (no model_index.json); "
                                  f"point model_id at a folder saved with save_pretrained ({TINY_HINT})")
        source, stamp = str(folder.resolve()), (folder / "model_index.json").stat().st_mtime_ns
    else:
        snap = cached_snapshot(model_id)
        if snap is None or folder_problem(snap, allow_pickle) is not None:
            raise missing_weights_error(family, model_id)
        source, stamp = str(snap), 0
    device = resolve_device(options["device"])
    dtype = resolve_dtype(options["dtype"], device)
    key = (spec.pipeline, source, stamp, variant, dtype, device,
           json.dumps({k: options.get(k) for k in _LOAD_OPTIONS}, sort_keys=True, default=str), _lora_key(options))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        import diffusers
        import torch

        cls = getattr(diffusers, spec.pipeline, None)
        if cls is None:
            raise GenerationError(f"{family}: diffusers {diffusers.__version__} has no {spec.pipeline}; "
                                  f"upgrade it (pip install -U diffusers)")
        kwargs: dict[str, Any] = {"local_files_only": True, "use_safetensors": None if allow_pickle else True}
        # diffusers >= 0.36 renamed torch_dtype to dtype (the old name warns)
        dtype_kw = "dtype" if hasattr(diffusers.utils.deprecation_utils, "_resolve_dtype") else "torch_dtype"
        kwargs[dtype_kw] = getattr(torch, dtype)
        if variant:
            kwargs["variant"] = variant
        try:
            with _quiet_loading():
                pipe = cls.from_pretrained(source, **kwargs)
        except (OSError, ValueError, EnvironmentError) as e:
            why = _first_line(e)
            hint = ("the folder has pickled weights only: set options: {allow_pickle: true} if you trust it"
                    if "safetensors" in why.lower() and not allow_pickle else
                    "check model_id / variant, or the hub login for gated repos")
            raise GenerationError(f"{family}: could not load {model_id}: {why}; {hint}") from None
        pipe.set_progress_bar_config(disable=True)
        if options.get("lora"):
            _load_loras(pipe, spec, options["lora"])
        pipe = _apply_options(pipe, spec, options, device, dtype)
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
    except ImportError:  # pragma: no cover
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
                              f"set options.dtype: fp32 (or bf16)")
    return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------------------
def _int_param(family: str, params: dict[str, Any], key: str, minimum: int = 1) -> int:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise GenerationError(f"{family}: {key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class DiffusersGenerator(Generator):
    """A diffusers family from the table (`spec`). Subclasses are made by `_make_generator`, one per spec.

    I2V images are cover-fitted (resize + centre crop) to width x height. Noise comes from a CPU
    torch.Generator seeded with the request seed: the same request gives the same frames on the same
    hardware, and a seed gives the same starting noise on every device.
    """

    spec: ClassVar[FamilySpec]
    accepts: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def resolve_options(cls, options: dict[str, Any] | None) -> dict[str, Any]:
        return check_options(cls.spec, options)

    @classmethod
    def weights_available(cls) -> bool:
        return weights_present(cls.defaults["model_id"])

    @classmethod
    def describe(cls) -> dict[str, Any]:
        s = cls.spec
        return {**super().describe(), "hub_ids": list(s.hub_ids), "inputs": cls.input_notes(),
                "pipeline": s.pipeline, "licence": s.licence, "gated": s.gated, "tiny": s.tiny,
                "options": dict(OPTION_DEFAULTS), "lora": s.lora,
                "rules": {"frame_rule": s.frame_rule, "max_frames": s.max_frames, "size_multiple": s.size_multiple}}

    @classmethod
    def input_notes(cls) -> dict[str, str]:
        """What the family does with each request field (shown by `workbench models`): required, optional
        (and what runs when it is absent), or refused."""
        s = cls.spec
        notes: dict[str, str] = {}
        for field_name in ("image", "prompt", "negative_prompt", "audio"):
            if field_name in cls.requires:
                notes[field_name] = "required"
            elif field_name in cls.accepts:
                notes[field_name] = {"prompt": "optional: an empty prompt when the case has none",
                                     "negative_prompt": "optional: the pipeline's default when absent"
                                     }.get(field_name, "optional")
            elif field_name == "audio" and s.audio_out:
                notes[field_name] = "refused: the model makes its own soundtrack"
            else:
                notes[field_name] = "refused"
        return notes

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        """Refuse, before anything loads, a request this family cannot honour: an input it does not take
        (unless `strict` is False: then such inputs are left unused), a missing required input, a frame
        count off its k*n+1 rule or above its limit, an unsupported size. Driving audio to a family that
        makes its own soundtrack (LTX-2) is refused even when not strict: its clip would carry a soundtrack
        the case's audio never drove, and lip-sync would be scored against audio the model never heard."""
        s, name = cls.spec, cls.name
        p = cls.resolve_params(getattr(request, "params", None) if params is None else params)
        have = {"image": getattr(request, "image", None) is not None, "audio": getattr(request, "audio", None) is not None,
                "prompt": bool(getattr(request, "prompt", "")),
                "negative_prompt": bool(getattr(request, "negative_prompt", ""))}
        if s.audio_out and have["audio"]:
            raise GenerationError(f"model '{name}' makes its own soundtrack and cannot follow driving audio (lip-sync "
                                  f"would be scored against audio it never heard); remove `audio:` from the case or "
                                  f"pick a talking-head model (puppet, infinitetalk, ...)")
        fixes = {"image": f"remove `image:` from the case or pick an image-to-video model ({name} is {s.task})",
                 "prompt": f"remove `prompt:` from the case ({name} is not text-conditioned)",
                 "negative_prompt": "remove `negative_prompt:` from the case",
                 "audio": "remove `audio:` from the case or pick a talking-head model (puppet, infinitetalk, ...)"}
        for field_name in ("image", "audio", "prompt", "negative_prompt"):
            if strict and have[field_name] and field_name not in cls.accepts:
                label = "audio input" if field_name == "audio" else field_name.replace("_", " ")
                raise GenerationError(f"model '{name}' takes no {label}; {fixes[field_name]}")
        for field_name in sorted(cls.requires):
            if not have[field_name]:
                raise GenerationError(f"model '{name}' needs {'an' if field_name == 'image' else 'a'} "
                                      f"{field_name}; add `{field_name}:` to the case")
        if "num_frames" in p:
            n = _int_param(name, p, "num_frames")
            if not s.frames_ok(n):
                raise GenerationError(f"{name}: num_frames must be {s.frame_rule}k+1, got {n}; use {s.frame_hint(n)}")
            if n > s.max_frames:
                raise GenerationError(f"{name}: num_frames {n} is above the family's limit {s.max_frames}; "
                                      f"lower num_frames")
            _int_param(name, p, "fps")
        if "width" in p:
            w, h = _int_param(name, p, "width", s.size_multiple), _int_param(name, p, "height", s.size_multiple)
            if w % s.size_multiple or h % s.size_multiple:
                raise GenerationError(f"{name}: width and height must be multiples of {s.size_multiple}, got {w}x{h}; "
                                      f"e.g. {s.width}x{s.height}")
        _int_param(name, p, "num_inference_steps")
        if "guidance_scale" in p and p["guidance_scale"] < 0:
            raise GenerationError(f"{name}: guidance_scale must be >= 0, got {p['guidance_scale']}")
        if "min_guidance_scale" in p:
            if p["min_guidance_scale"] > p["max_guidance_scale"]:
                raise GenerationError(f"{name}: min_guidance_scale {p['min_guidance_scale']} exceeds "
                                      f"max_guidance_scale {p['max_guidance_scale']}; swap them")
            _int_param(name, p, "motion_bucket_id", 0)
            if not 0.0 <= p["noise_aug_strength"] <= 10.0:
                raise GenerationError(f"{name}: noise_aug_strength must be in [0, 10], got {p['noise_aug_strength']}")
        if p.get("use_resolution_binning") not in (None, True, False):
            raise GenerationError(f"{name}: use_resolution_binning must be true, false or left out (auto: on where "
                                  f"the checkpoint has size bins), got {p['use_resolution_binning']!r}")
        if p.get("prompt_template") is not None and not isinstance(p["prompt_template"], dict):
            raise GenerationError(f"{name}: prompt_template must be a mapping (template, crop_start, image_emb_len, "
                                  f"...) or left out (fitted to the checkpoint), got {p['prompt_template']!r}")

    def pipeline(self) -> Any:
        """The loaded (cached) diffusers pipeline for these params and options."""
        return load_pipeline(self.spec, str(self.params["model_id"]), self.options, str(self.params["variant"]))

    def call_kwargs(self, pipe: Any, request: GenerationRequest, progress: ProgressFn | None) -> dict[str, Any]:
        """The pipeline's own keyword arguments for this request (also used by the overhead benchmark)."""
        import torch
        from PIL import Image

        s, p = self.spec, self.params
        # a family that takes a prompt runs with an empty one when the case has none (every image-to-video
        # pipeline accepts ""; None makes diffusers refuse after loading)
        common: dict[str, Any] = {"prompt": (request.prompt or "") if "prompt" in self.accepts else None,
                                  "negative_prompt": request.negative_prompt or None,
                                  "num_inference_steps": int(p["num_inference_steps"])}
        for key in ("num_frames", "width", "height", "guidance_scale", "fps"):
            if key in p:
                common[key] = p[key]
        if "image" in self.accepts and request.image is not None:
            img = request.image if "width" not in p else fit_image(request.image, int(p["width"]), int(p["height"]))
            common["image"] = Image.fromarray(img)
        kwargs = {s.arg(k): v for k, v in common.items() if s.arg(k) and v is not None}
        kwargs.update({k: p[k] for k in s.extras if p[k] is not None})  # None: the pipeline's own default
        kwargs.update(checkpoint_extras(s, pipe, p))  # ... or, for some extras, one fitted to the checkpoint
        params = inspect.signature(type(pipe).__call__).parameters
        denoiser = getattr(pipe, s.denoiser, None)
        text_len = getattr(getattr(denoiser, "config", None), "max_text_seq_length", None)
        if text_len and "max_sequence_length" in params:  # CogVideoX: text length is fixed by the transformer
            kwargs["max_sequence_length"] = int(text_len)
        if getattr(getattr(denoiser, "config", None), "image_condition_type", None) == "latent_concat" and \
                s.arg("num_frames") in kwargs:  # HunyuanVideo-I2V drops the 4 frames of the image latent
            kwargs[s.arg("num_frames")] += 4
        if self.options.get("decode_chunk_size"):
            kwargs["decode_chunk_size"] = int(self.options["decode_chunk_size"])
        if "callback_on_step_end" in params:
            kwargs["callback_on_step_end"] = step_callback(progress, int(p["num_inference_steps"]))
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            import diffusers

            raise GenerationError(f"{s.name}: diffusers {diffusers.__version__} {s.pipeline} takes no "
                                  f"{', '.join(unknown)}; upgrade diffusers or drop those parameters")
        kwargs["generator"] = torch.Generator("cpu").manual_seed(int(request.seed))
        kwargs["output_type"] = "np"
        return kwargs

    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> Clip:
        self.check_inputs(request)
        pipe = self.pipeline()
        set_lora_scales(pipe, self.options.get("lora") or [])
        kwargs = self.call_kwargs(pipe, request, progress)
        out = pipe(**kwargs)
        vocoder = getattr(getattr(pipe, "vocoder", None), "config", None)
        return self.to_clip(out, audio_rate=getattr(vocoder, "output_sampling_rate", None))

    def to_clip(self, out: Any, audio_rate: int | None = None) -> Clip:
        """The pipeline output as a Clip: frames in [0, 1] -> uint8; a still is a 1-frame clip; a family that
        makes a soundtrack (LTX-2) keeps it (`audio_rate` Hz)."""
        dtype = resolve_dtype(self.options["dtype"], resolve_device(self.options["device"]))  # "auto" named as run
        if self.task == T2I:
            frames = frames_to_uint8(np.asarray(out.images)[:1], self.name, dtype)
            return Clip.from_frames(frames, 1.0)
        video = out.frames[0]
        frames = frames_to_uint8(video, self.name, dtype)
        audio = None
        if self.spec.audio_out and getattr(out, "audio", None) is not None:
            audio = _audio_from(out.audio, int(audio_rate or 24000))
        return Clip.from_frames(frames, float(self.params["fps"]), audio=audio)


# Sana-Video's size bins exist for these transformer sample sizes (480p, 720p: diffusers' SanaImageToVideoPipeline)
SANA_BIN_SAMPLE_SIZES = (30, 22)


def hunyuan_i2v_template(pipe: Any) -> dict[str, Any] | None:
    """A HunyuanVideo-I2V prompt template fitted to this checkpoint, or None where the pipeline's default fits.

    The default template's numbers (576 image tokens, the system prompt's token count) hold for the released
    LLaVA encoder only. A checkpoint whose vision tower gives another number of image tokens (the tiny test
    one, a re-trained encoder) gets the same template text with the numbers counted from its own tokenizer
    and vision config: where the prompt starts (crop_start), where <image> sits and how many tokens it is."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE

    config = getattr(getattr(pipe, "text_encoder", None), "config", None)
    vision = getattr(config, "vision_config", None)
    if vision is None:
        return None
    n = (int(vision.image_size) // int(vision.patch_size)) ** 2
    if getattr(config, "vision_feature_select_strategy", "default") == "full":
        n += 1  # the CLS token is kept
    if n == DEFAULT_PROMPT_TEMPLATE["image_emb_len"]:
        return None
    prefix = DEFAULT_PROMPT_TEMPLATE["template"].split("{}")[0]
    ids = list(pipe.tokenizer(prefix).input_ids)
    image_token = int(config.image_token_index)
    if image_token not in ids:
        return None  # not a LLaVA-style tokenizer: leave the pipeline's default (its own error names the problem)
    start = ids.index(image_token)
    return {"template": DEFAULT_PROMPT_TEMPLATE["template"], "crop_start": len(ids), "image_emb_start": start,
            "image_emb_end": start + n, "image_emb_len": n}


def checkpoint_extras(spec: FamilySpec, pipe: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Values for the family extras left at None ("auto") that depend on the loaded checkpoint: a real
    checkpoint runs with the pipeline's defaults, a tiny or re-trained one with values fitted to it."""
    out: dict[str, Any] = {}
    if "prompt_template" in spec.extras and params.get("prompt_template") is None:
        template = hunyuan_i2v_template(pipe)
        if template is not None:
            out["prompt_template"] = template
    if "use_resolution_binning" in spec.extras:
        size = getattr(getattr(getattr(pipe, spec.denoiser, None), "config", None), "sample_size", None)
        has_bins = size in SANA_BIN_SAMPLE_SIZES
        wanted = params.get("use_resolution_binning")
        if wanted and not has_bins:
            raise GenerationError(f"{spec.name}: use_resolution_binning needs a checkpoint with 480p/720p size bins "
                                  f"(transformer sample_size 30 or 22; this one has {size}); leave it out or set false")
        out["use_resolution_binning"] = has_bins if wanted is None else bool(wanted)
    return out


def _audio_from(audio: Any, rate: int) -> Any:
    arr = audio[0] if isinstance(audio, (list, tuple)) else audio
    arr = np.asarray(arr.float().cpu() if hasattr(arr, "float") else arr, dtype=np.float32)
    while arr.ndim > 2:
        arr = arr[0]
    return Audio(arr, rate)


def _make_generator(spec: FamilySpec) -> type[DiffusersGenerator]:
    defaults: dict[str, Any] = {"model_id": spec.model_id, "variant": ""}
    if spec.task != T2I:
        defaults.update(num_frames=spec.num_frames, fps=spec.fps)
    if spec.arg("width") or spec.arg("height"):
        defaults.update(width=spec.width, height=spec.height)
    defaults["num_inference_steps"] = spec.steps
    if spec.guidance is not None:
        defaults["guidance_scale"] = float(spec.guidance)
    defaults.update(spec.extras)
    accepts = frozenset(f for f in spec.inputs if f == "audio" or spec.arg(f))
    attrs = {"name": spec.name, "task": spec.task, "description": spec.description, "requires": spec.requires,
             "accepts": accepts, "defaults": defaults, "weights": spec.model_id, "spec": spec,
             "__doc__": f"{spec.description} (diffusers {spec.pipeline}; default weights {spec.model_id})."}
    cls_name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]", spec.name)) + "Generator"
    return register(type(cls_name, (DiffusersGenerator,), attrs))


GENERATORS: dict[str, type[DiffusersGenerator]] = {spec.name: _make_generator(spec) for spec in FAMILIES}
