"""Tiny, random-weight, local checkpoints of the supported model families.

They have the real pipeline classes, component classes and folder layout (model_index.json + one folder per
component), so the loading code that a GPU box runs on hub weights runs unchanged on them, in seconds on a
CPU, with no download. Their output is noise-like video: they test plumbing, never quality.

    >>> from workbench.models.tiny import build_tiny
    >>> path = build_tiny("svd", "/tmp/tiny-svd")      # then params: {model_id: /tmp/tiny-svd}

`BUILDERS` maps a family name (the generator's registry name) to its builder; a new family adds one entry.
Command line: `python -m workbench.models.tiny svd OUT_DIR`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

SEED = 0

# The Euler scheduler settings SVD ships with (v-prediction, Karras sigmas from 0.002 to 700).
SVD_SCHEDULER = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction", "interpolation_type": "linear", "use_karras_sigmas": True,
    "sigma_min": 0.002, "sigma_max": 700.0, "timestep_spacing": "leading", "timestep_type": "continuous",
    "steps_offset": 1,
}


def build_tiny_svd(path: str | Path) -> Path:
    """Save a tiny random-weight StableVideoDiffusionPipeline to `path` and return the folder.

    Latents are 1/8 of the image side like the real model (4-level VAE), the UNet has two levels of
    32/64 channels, the CLIP image encoder two layers of width 32. Generating 4 frames at 64x64 with
    2 steps takes about a second on a CPU. Deterministic: the same weights every time (torch.manual_seed).
    """
    import torch
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    path = Path(path)
    embed_dim = 32  # CLIP projection = UNet cross-attention width
    time_dim = 8  # per added-time id (fps, motion bucket, noise aug): 3 x 8 = 24
    torch.manual_seed(SEED)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64), layers_per_block=1, num_attention_heads=(2, 4),
        cross_attention_dim=embed_dim, addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=3 * time_dim, transformer_layers_per_block=1, num_frames=4)
    torch.manual_seed(SEED + 1)
    vae = AutoencoderKLTemporalDecoder(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32, 32, 32, 32), sample_size=64)
    torch.manual_seed(SEED + 2)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, projection_dim=embed_dim, num_hidden_layers=2,
        num_attention_heads=4, image_size=224, patch_size=32, num_channels=3))
    feature_extractor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER)
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
                                        feature_extractor=feature_extractor)
    path.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(path)
    return path


def build_random_torchvision(arch: str, path: str | Path) -> Path:
    """Save a random-weight torchvision model's state dict (same keys and shapes as the released
    weights) to `path`: the stand-in for metric backbones (`alexnet` for LPIPS, `raft_small` for RAFT)."""
    import torch
    import torchvision.models as tvm
    from torchvision.models import optical_flow

    factory = getattr(tvm, arch, None) or getattr(optical_flow, arch)
    torch.manual_seed(SEED)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(factory(weights=None).state_dict(), path)
    return path


BUILDERS: dict[str, Callable[[str | Path], Path]] = {
    "svd": build_tiny_svd,
    "alexnet": lambda path: build_random_torchvision("alexnet", path),
    "raft_small": lambda path: build_random_torchvision("raft_small", path),
}


def build_tiny(family: str, path: str | Path) -> Path:
    """Build the tiny checkpoint of a registered family (a key of `BUILDERS`) into `path`."""
    if family not in BUILDERS:
        raise KeyError(f"no tiny builder for '{family}'; known: {', '.join(sorted(BUILDERS))}")
    return BUILDERS[family](path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(f"usage: python -m workbench.models.tiny FAMILY OUT_DIR  (FAMILY: {', '.join(sorted(BUILDERS))})",
              file=sys.stderr)
        return 2
    try:
        out = build_tiny(args[0], args[1])
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
