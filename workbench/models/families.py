"""The table of diffusers families: one `FamilySpec` per registered model.

A spec says which diffusers pipeline class runs the family, its hub ids (the first is the default
`model_id`), its task, its native defaults (frames, fps, size, steps, guidance), the rules a request
must follow (frame count k*n+1, size multiple, most frames), which request fields it takes, how the
common request maps onto the pipeline's own argument names, family extras passed through as they are
(None: the pipeline's default, or a value the adapter fits to the loaded checkpoint), and which tiny
checkpoint (`tiny.py`) stands in for it in tests. Adding a family is one entry here plus one tiny builder;
`diffusers_pipeline.py` turns every entry into a registered `Generator`.

Pure data: importing this module imports neither torch nor diffusers (`workbench models --json` is fast).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

I2V, T2V, T2I = "image-to-video", "text-to-video", "text-to-image"

# how the common request names map onto a pipeline's __call__ arguments (None: not passed)
DEFAULT_ARGS: dict[str, str | None] = {
    "image": "image", "prompt": "prompt", "negative_prompt": "negative_prompt", "num_frames": "num_frames",
    "height": "height", "width": "width", "num_inference_steps": "num_inference_steps",
    "guidance_scale": "guidance_scale", "fps": None,
}


@dataclass(frozen=True)
class FamilySpec:
    """One diffusers family as the workbench runs it."""

    name: str  # registry name
    pipeline: str  # diffusers pipeline class name
    task: str  # image-to-video | text-to-video | text-to-image
    hub_ids: tuple[str, ...]  # first = default model_id; the rest are known alternatives (same layout)
    description: str
    licence: str  # licence and gating note shown by `workbench models`
    tiny: str  # key of workbench.models.tiny.DIFFUSERS_BUILDERS
    num_frames: int = 1
    fps: int = 0  # output frame rate (0 for images)
    width: int = 1024
    height: int = 1024
    steps: int = 50
    guidance: float | None = 5.0  # None: the family has no guidance_scale argument
    frame_rule: int = 1  # num_frames must be frame_rule * k + 1 (1: any count)
    max_frames: int = 1
    size_multiple: int = 16
    inputs: frozenset[str] = frozenset({"prompt", "negative_prompt"})  # request fields it takes
    requires: frozenset[str] = frozenset({"prompt"})
    args: dict[str, str | None] = field(default_factory=dict)  # overrides of DEFAULT_ARGS
    extras: dict[str, Any] = field(default_factory=dict)  # family parameters passed through as they are
    denoiser: str = "transformer"  # the component options like caching / fp8 / compile apply to
    cache: bool = True  # the denoiser supports diffusers caches (CacheMixin)
    repeated_blocks: bool = True  # the denoiser supports compile_repeated_blocks
    decode_chunk_size: bool = False  # __call__ takes decode_chunk_size (SVD)
    vae_tiling: bool = True  # the VAE supports enable_tiling / enable_slicing
    audio_out: bool = False  # the pipeline returns a soundtrack with the video (LTX-2); it takes no driving audio
    lora: bool = True  # the pipeline has diffusers' LoRA loader (load_lora_weights / set_adapters)
    gated: bool = False
    # the family's recommended negative prompt (its authors' default): the prompt enhancer adds it
    # (workflow/enhance.py); a request's own negative prompt is never replaced
    negative_prompt: str = ""

    @property
    def model_id(self) -> str:
        return self.hub_ids[0]

    def arg(self, key: str) -> str | None:
        """The pipeline's own name for a common request field (None: the pipeline does not take it)."""
        return self.args.get(key, DEFAULT_ARGS.get(key))

    def frames_ok(self, n: int) -> bool:
        return self.frame_rule <= 1 or (n - 1) % self.frame_rule == 0

    def frame_hint(self, n: int) -> str:
        """The nearest allowed frame counts to `n` (never above max_frames), for messages."""
        top = (self.max_frames - 1) // self.frame_rule * self.frame_rule + 1
        k = max(0, (n - 1) // self.frame_rule)
        near = [c for c in (self.frame_rule * k + 1, self.frame_rule * (k + 1) + 1) if c <= self.max_frames]
        return " or ".join(str(c) for c in near) if near else str(top)


_VIDEO_IN = frozenset({"image", "prompt", "negative_prompt"})
_WAN_NEG = "static, blurred details, worst quality, low quality, JPEG artifacts, deformed"

# families with variants: the variants below are `replace(base, ...)` of these
_SVD_XT = FamilySpec(
    "svd", "StableVideoDiffusionPipeline", I2V, ("stabilityai/stable-video-diffusion-img2vid-xt",),
    "Stable Video Diffusion XT: animates one still (no prompt); motion set by motion_bucket_id",
    "Stability AI Community licence; gated: accept it on the hub and `huggingface-cli login`", "svd",
    num_frames=25, fps=7, width=1024, height=576, steps=25, guidance=None, max_frames=25, size_multiple=8,
    inputs=frozenset({"image"}), requires=frozenset({"image"}), args={"fps": "fps", "prompt": None,
                                                                      "negative_prompt": None},
    extras={"min_guidance_scale": 1.0, "max_guidance_scale": 3.0, "motion_bucket_id": 127,
            "noise_aug_strength": 0.02},
    denoiser="unet", cache=False, repeated_blocks=False, decode_chunk_size=True, vae_tiling=False, lora=False,
    gated=True)

_WAN21_I2V_480P = FamilySpec(
    "wan2.1-i2v-480p", "WanImageToVideoPipeline", I2V, ("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",),
    "Wan 2.1 I2V 14B at 480P: CLIP image tokens + first-frame latents, 16 fps, frames 4k+1",
    "Apache-2.0; not gated", "wan-i2v",
    num_frames=81, fps=16, width=832, height=480, steps=50, guidance=5.0, frame_rule=4, max_frames=81,
    inputs=_VIDEO_IN, requires=frozenset({"image"}), extras={"max_sequence_length": 512}, negative_prompt=_WAN_NEG)


FAMILIES: tuple[FamilySpec, ...] = (
    # ---------------------------------------------------------------------------------------- image-to-video
    _SVD_XT,
    replace(_SVD_XT, name="svd-img2vid", hub_ids=("stabilityai/stable-video-diffusion-img2vid",),
            description="Stable Video Diffusion (14-frame model): animates one still (no prompt)",
            num_frames=14, max_frames=14),
    FamilySpec(
        "cogvideox-5b-i2v", "CogVideoXImageToVideoPipeline", I2V, ("THUDM/CogVideoX-5b-I2V", "zai-org/CogVideoX-5b-I2V"),
        "CogVideoX-5B image-to-video: 6 s at 8 fps, 720x480 (learned position embeddings: keep the native size)",
        "CogVideoX licence (commercial use under its terms: see the model card); not gated", "cogvideox-i2v",
        num_frames=49, fps=8, width=720, height=480, steps=50, guidance=6.0, frame_rule=8, max_frames=49,
        inputs=_VIDEO_IN, requires=frozenset({"image"}), extras={"use_dynamic_cfg": True},
        repeated_blocks=False),
    FamilySpec(
        "ltx-video-i2v", "LTXImageToVideoPipeline", I2V, ("Lightricks/LTX-Video",),
        "LTX-Video image-to-video (0.9.x): fast DiT, 25 fps, frames 8k+1, sizes multiple of 32",
        "LTX-Video open weights licence (terms per version: see the model card); not gated", "ltx",
        num_frames=161, fps=25, width=704, height=480, steps=50, guidance=3.0, frame_rule=8, max_frames=257,
        size_multiple=32, inputs=_VIDEO_IN, requires=frozenset({"image"}), args={"fps": "frame_rate"},
        extras={"decode_timestep": 0.03, "decode_noise_scale": 0.025, "guidance_rescale": 0.0}),
    FamilySpec(
        "ltx-video-condition", "LTXConditionPipeline", I2V, ("Lightricks/LTX-Video-0.9.5",),
        "LTX-Video 0.9.5+ through LTXConditionPipeline: the image as a frame-0 condition",
        "LTX-Video open weights licence; not gated", "ltx",
        num_frames=161, fps=25, width=768, height=512, steps=40, guidance=3.0, frame_rule=8, max_frames=257,
        size_multiple=32, inputs=_VIDEO_IN, requires=frozenset({"image"}), args={"fps": "frame_rate"},
        extras={"decode_timestep": 0.05, "decode_noise_scale": 0.025, "guidance_rescale": 0.0,
                "image_cond_noise_scale": 0.15}),
    FamilySpec(
        "ltx2-i2v", "LTX2ImageToVideoPipeline", I2V, ("Lightricks/LTX-2",),
        "LTX-2 image-to-video: video and a synchronised soundtrack from one model (the clip keeps its audio)",
        "LTX-2 open weights licence (see the model card for commercial terms); not gated", "ltx2",
        num_frames=121, fps=24, width=768, height=512, steps=40, guidance=4.0, frame_rule=8, max_frames=257,
        size_multiple=32, inputs=_VIDEO_IN, requires=frozenset({"image"}), args={"fps": "frame_rate"},
        audio_out=True),
    _WAN21_I2V_480P,
    replace(_WAN21_I2V_480P, name="wan2.1-i2v-720p", hub_ids=("Wan-AI/Wan2.1-I2V-14B-720P-Diffusers",),
            description="Wan 2.1 I2V 14B at 720P", width=1280, height=720),
    FamilySpec(
        "wan2.2-i2v-a14b", "WanImageToVideoPipeline", I2V, ("Wan-AI/Wan2.2-I2V-A14B-Diffusers",),
        "Wan 2.2 I2V A14B: two experts (high / low noise) switched at a boundary timestep",
        "Apache-2.0; not gated", "wan22-i2v",
        num_frames=81, fps=16, width=1280, height=720, steps=40, guidance=3.5, frame_rule=4, max_frames=81,
        inputs=_VIDEO_IN, requires=frozenset({"image"}),
        extras={"guidance_scale_2": 3.5, "max_sequence_length": 512}, negative_prompt=_WAN_NEG),
    FamilySpec(
        "wan2.2-ti2v-5b", "WanImageToVideoPipeline", I2V, ("Wan-AI/Wan2.2-TI2V-5B-Diffusers",),
        "Wan 2.2 TI2V 5B: 720P at 24 fps on one consumer GPU (high-compression VAE), image-to-video",
        "Apache-2.0; not gated", "wan22-ti2v",
        num_frames=121, fps=24, width=1280, height=704, steps=50, guidance=5.0, frame_rule=4, max_frames=121,
        size_multiple=32, inputs=_VIDEO_IN, requires=frozenset({"image"}), extras={"max_sequence_length": 512}, negative_prompt=_WAN_NEG),
    FamilySpec(
        "hunyuanvideo-i2v", "HunyuanVideoImageToVideoPipeline", I2V, ("hunyuanvideo-community/HunyuanVideo-I2V",),
        "HunyuanVideo-I2V: image tokens through a LLaVA text encoder, 720P, 24 fps (129 frames made, the 4 of the "
        "image latent dropped)",
        "Tencent Hunyuan Community licence (excludes the EU, UK, South Korea); not gated", "hunyuanvideo-i2v",
        num_frames=125, fps=24, width=1280, height=720, steps=50, guidance=1.0, frame_rule=4, max_frames=125,
        inputs=_VIDEO_IN, requires=frozenset({"image"}), extras={"true_cfg_scale": 1.0, "image_embed_interleave": 4, "prompt_template": None},
        repeated_blocks=True),
    FamilySpec(
        "hunyuanvideo1.5-i2v", "HunyuanVideo15ImageToVideoPipeline", I2V,
        ("hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v",),
        "HunyuanVideo 1.5 I2V (8.3B) at 480p: the output size follows the image's aspect; guidance by its guider",
        "Tencent Hunyuan Community licence (excludes the EU, UK, South Korea); not gated", "hunyuanvideo15-i2v",
        num_frames=121, fps=24, width=848, height=480, steps=50, guidance=None, frame_rule=4, max_frames=121,
        inputs=_VIDEO_IN, requires=frozenset({"image"}), args={"height": None, "width": None}, lora=False),
    FamilySpec(
        "skyreels-v2-i2v", "SkyReelsV2ImageToVideoPipeline", I2V, ("Skywork/SkyReels-V2-I2V-14B-540P-Diffusers",),
        "SkyReels-V2 I2V 14B at 540P (Wan architecture, film-tuned), 24 fps",
        "Skywork community licence (see the model card); not gated", "skyreels-v2-i2v",
        num_frames=97, fps=24, width=960, height=544, steps=50, guidance=5.0, frame_rule=4, max_frames=97,
        inputs=_VIDEO_IN, requires=frozenset({"image"}), extras={"max_sequence_length": 512}, negative_prompt=_WAN_NEG),
    FamilySpec(
        "sana-video-2b-i2v", "SanaImageToVideoPipeline", I2V, ("Efficient-Large-Model/SANA-Video_2B_480p_diffusers",),
        "Sana-Video 2B image-to-video: linear-attention DiT, 480p at 16 fps (sizes binned to its aspect buckets)",
        "NVIDIA Sana licence (see the model card); not gated", "sana-video",
        num_frames=81, fps=16, width=832, height=480, steps=50, guidance=6.0, frame_rule=4, max_frames=81,
        inputs=_VIDEO_IN, requires=frozenset({"image"}), args={"num_frames": "frames"},
        extras={"use_resolution_binning": None}, cache=False, repeated_blocks=False),
    # ----------------------------------------------------------------------------------------- text-to-video
    FamilySpec(
        "wan2.1-t2v-1.3b", "WanPipeline", T2V, ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers",),
        "Wan 2.1 T2V 1.3B: 480P text-to-video in ~8 GB", "Apache-2.0; not gated", "wan-t2v",
        num_frames=81, fps=16, width=832, height=480, steps=50, guidance=5.0, frame_rule=4, max_frames=81,
        extras={"max_sequence_length": 512}, negative_prompt=_WAN_NEG),
    FamilySpec(
        "wan2.2-ti2v-5b-t2v", "WanPipeline", T2V, ("Wan-AI/Wan2.2-TI2V-5B-Diffusers",),
        "Wan 2.2 TI2V 5B as text-to-video: 720P at 24 fps on one consumer GPU", "Apache-2.0; not gated",
        "wan22-ti2v", num_frames=121, fps=24, width=1280, height=704, steps=50, guidance=5.0, frame_rule=4,
        max_frames=121, size_multiple=32, extras={"max_sequence_length": 512}, negative_prompt=_WAN_NEG),
    FamilySpec(
        "cogvideox-5b", "CogVideoXPipeline", T2V, ("THUDM/CogVideoX-5b", "zai-org/CogVideoX-5b"),
        "CogVideoX-5B text-to-video: 6 s at 8 fps, 720x480", "CogVideoX licence; not gated", "cogvideox",
        num_frames=49, fps=8, width=720, height=480, steps=50, guidance=6.0, frame_rule=8, max_frames=49,
        extras={"use_dynamic_cfg": True}, repeated_blocks=False),
    FamilySpec(
        "ltx-video", "LTXPipeline", T2V, ("Lightricks/LTX-Video",),
        "LTX-Video text-to-video (0.9.x), 25 fps", "LTX-Video open weights licence; not gated", "ltx",
        num_frames=161, fps=25, width=704, height=480, steps=50, guidance=3.0, frame_rule=8, max_frames=257,
        size_multiple=32, args={"fps": "frame_rate"},
        extras={"decode_timestep": 0.03, "decode_noise_scale": 0.025, "guidance_rescale": 0.0}),
    FamilySpec(
        "hunyuanvideo1.5-t2v", "HunyuanVideo15Pipeline", T2V,
        ("hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v",),
        "HunyuanVideo 1.5 T2V (8.3B) at 480p; guidance by its guider",
        "Tencent Hunyuan Community licence (excludes the EU, UK, South Korea); not gated", "hunyuanvideo15-t2v",
        num_frames=121, fps=24, width=848, height=480, steps=50, guidance=None, frame_rule=4, max_frames=121,
        lora=False),
    # ----------------------------------------------------------------------------------------- text-to-image
    FamilySpec(
        "sdxl", "StableDiffusionXLPipeline", T2I, ("stabilityai/stable-diffusion-xl-base-1.0",),
        "Stable Diffusion XL base 1.0: 1024 px stills (source images for image-to-video)",
        "CreativeML OpenRAIL++-M; not gated", "sdxl",
        width=1024, height=1024, steps=30, guidance=5.0, size_multiple=8, denoiser="unet", cache=False),
    FamilySpec(
        "flux-schnell", "FluxPipeline", T2I, ("black-forest-labs/FLUX.1-schnell",),
        "FLUX.1 schnell: 4-step distilled 12B text-to-image", "Apache-2.0; not gated", "flux",
        width=1024, height=1024, steps=4, guidance=0.0, inputs=frozenset({"prompt"}),
        args={"negative_prompt": None}, extras={"max_sequence_length": 256}),
    FamilySpec(
        "flux-dev", "FluxPipeline", T2I, ("black-forest-labs/FLUX.1-dev",),
        "FLUX.1 dev: guidance-distilled 12B text-to-image",
        "FLUX.1 [dev] non-commercial licence; gated: accept it on the hub and log in", "flux",
        width=1024, height=1024, steps=28, guidance=3.5, inputs=frozenset({"prompt"}), args={"negative_prompt": None},
        extras={"max_sequence_length": 512}, gated=True),
    FamilySpec(
        "sd3.5-medium", "StableDiffusion3Pipeline", T2I, ("stabilityai/stable-diffusion-3.5-medium",),
        "Stable Diffusion 3.5 Medium (MMDiT-X, 2.5B)",
        "Stability AI Community licence; gated: accept it on the hub and log in", "sd3",
        width=1024, height=1024, steps=40, guidance=4.5, repeated_blocks=False, cache=False, gated=True,
        extras={"max_sequence_length": 256}),
    FamilySpec(
        "sd3.5-large", "StableDiffusion3Pipeline", T2I, ("stabilityai/stable-diffusion-3.5-large",),
        "Stable Diffusion 3.5 Large (8B)",
        "Stability AI Community licence; gated: accept it on the hub and log in", "sd3",
        width=1024, height=1024, steps=28, guidance=3.5, repeated_blocks=False, cache=False, gated=True,
        extras={"max_sequence_length": 256}),
)

SPECS: dict[str, FamilySpec] = {spec.name: spec for spec in FAMILIES}
