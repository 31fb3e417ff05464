"""Tiny, random-weight, local checkpoints of every diffusers family the workbench drives.

They have the real pipeline classes, component classes and folder layout (model_index.json + one folder per
component), so the loading code that a GPU box runs on hub weights runs unchanged on them, in seconds on a
CPU, with no download: text encoders are built from configs with tiny sizes and tokenizers from a small
vocabulary written here (no hub). Their output is noise-like video: they test plumbing, never quality.

    >>> from workbench.models.tiny import build_tiny
    >>> path = build_tiny("wan-t2v", "/tmp/tiny-wan")      # then params: {model_id: /tmp/tiny-wan}

`BUILDERS` maps a tiny checkpoint name (a family spec's `tiny` field in `families.py`) to its builder;
`build_all(DIR)` writes one folder per diffusers family (`workbench models build-tiny DIR`).
Command line: `python -m workbench.models.tiny NAME OUT_DIR`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

SEED = 0
VOCAB = 256  # text-encoder vocabulary (the local tokenizers below use fewer ids than this)

# The Euler scheduler settings SVD ships with (v-prediction, Karras sigmas from 0.002 to 700).
SVD_SCHEDULER = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction", "interpolation_type": "linear", "use_karras_sigmas": True,
    "sigma_min": 0.002, "sigma_max": 700.0, "timestep_spacing": "leading", "timestep_type": "continuous",
    "steps_offset": 1,
}

_CHARS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("0"), ord("9") + 1)] + list(
    ".,!?'-")


# --------------------------------------------------------------------------------------------------
# shared tiny parts
# --------------------------------------------------------------------------------------------------
def _seed(offset: int) -> None:
    import torch

    torch.manual_seed(SEED + offset)


def t5_tokenizer() -> Any:
    """A sentencepiece-style (unigram) T5 tokenizer over lowercase letters, digits and punctuation."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + c, -2.5) for c in _CHARS] + [(c, -3.0) for c in _CHARS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255 (GPT-2's table)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = {b: b for b in keep}, 0
    for b in range(256):
        if b not in out:
            out[b] = 256 + extra
            extra += 1
    return [chr(out[b]) for b in range(256)]


def clip_tokenizer() -> Any:
    """A byte-level CLIP tokenizer with no merges (one token per byte; 514 ids)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in _byte_chars():
            vocab[ch + suffix] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _bpe_vocab(specials: list[str]) -> dict[str, int]:
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in _byte_chars():
        vocab.setdefault(ch, len(vocab))
    return vocab


def _metaspace_vocab(specials: list[str]) -> dict[str, int]:
    """`specials` first, then the metaspace, letters / digits / punctuation bare and after a metaspace, and the
    256 byte-fallback tokens (a metaspace BPE vocabulary with no merges)."""
    letters = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + _CHARS + [":", "\n"]
    vocab = {t: i for i, t in enumerate(specials)}
    for tok in ["\u2581"] + letters + ["\u2581" + c for c in letters] + [f"<0x{b:02X}>" for b in range(256)]:
        vocab.setdefault(tok, len(vocab))
    return vocab


def t5_encoder(d_model: int = 32, umt5: bool = False) -> Any:
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    cfg = dict(vocab_size=VOCAB, d_model=d_model, d_kv=8, d_ff=37, num_layers=1, num_heads=2,
               relative_attention_num_buckets=8, decoder_start_token_id=0)
    return UMT5EncoderModel(UMT5Config(**cfg)) if umt5 else T5EncoderModel(T5Config(**cfg))


def clip_text(hidden: int = 32, projection: bool = False, projection_dim: int = 32) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=1000, hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, projection_dim=projection_dim,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_act="gelu")
    return CLIPTextModelWithProjection(cfg) if projection else CLIPTextModel(cfg)


def clip_vision(hidden: int = 8, projection: bool = False, image_size: int = 32) -> Any:
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(hidden_size=hidden, intermediate_size=16, projection_dim=hidden, num_hidden_layers=2,
                           num_attention_heads=2, image_size=image_size, patch_size=8, num_channels=3)
    return CLIPVisionModelWithProjection(cfg) if projection else CLIPVisionModel(cfg)


def clip_image_processor(size: int = 32) -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def _save(pipe: Any, path: str | Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(path)
    return path


# --------------------------------------------------------------------------------------------------
# Stable Video Diffusion
# --------------------------------------------------------------------------------------------------
def build_tiny_svd(path: str | Path) -> Path:
    """Tiny StableVideoDiffusionPipeline: 4-level VAE (latents 1/8 of the side like the real model), a
    two-level 32/64-channel UNet, a two-layer CLIP image encoder. 4 frames at 64x64, 2 steps: ~1 s on a CPU."""
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    embed_dim, time_dim = 32, 8  # CLIP projection = UNet cross-attention width; 3 added-time ids x 8
    _seed(0)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64), layers_per_block=1, num_attention_heads=(2, 4),
        cross_attention_dim=embed_dim, addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=3 * time_dim, transformer_layers_per_block=1, num_frames=4)
    _seed(1)
    vae = AutoencoderKLTemporalDecoder(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32, 32, 32, 32), sample_size=64)
    _seed(2)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, projection_dim=embed_dim, num_hidden_layers=2,
        num_attention_heads=4, image_size=224, patch_size=32, num_channels=3))
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet,
                                        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
                                        feature_extractor=clip_image_processor(224))
    return _save(pipe, path)


# --------------------------------------------------------------------------------------------------
# Wan 2.1 / 2.2 and SkyReels-V2 (Wan architecture)
# --------------------------------------------------------------------------------------------------
def _wan_vae(wan22: bool = False) -> Any:
    from diffusers import AutoencoderKLWan

    _seed(1)
    if wan22:  # the Wan 2.2 VAE: 48 latent channels, 2x2 patchify, 16x spatial compression
        return AutoencoderKLWan(base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True,
                                patch_size=2, latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1],
                                num_res_blocks=1, scale_factor_spatial=16, scale_factor_temporal=4,
                                temperal_downsample=[False, True, True])
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def _wan_transformer(in_channels: int = 16, out_channels: int = 16, image_dim: int | None = None,
                     offset: int = 0, cls_name: str = "WanTransformer3DModel", **extra: Any) -> Any:
    import diffusers

    _seed(10 + offset)
    return getattr(diffusers, cls_name)(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
        out_channels=out_channels, text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=image_dim,
        added_kv_proj_dim=24 if image_dim else None, **extra)


def _wan_text() -> dict[str, Any]:
    _seed(2)
    return {"tokenizer": t5_tokenizer(), "text_encoder": t5_encoder(32, umt5=True)}


def build_tiny_wan_t2v(path: str | Path) -> Path:
    """Tiny WanPipeline (Wan 2.1 T2V): 2-layer transformer of width 24, Wan VAE at base width 3."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    pipe = WanPipeline(transformer=_wan_transformer(), vae=_wan_vae(), scheduler=FlowMatchEulerDiscreteScheduler(
        shift=3.0), **_wan_text())
    return _save(pipe, path)


def build_tiny_wan_i2v(path: str | Path) -> Path:
    """Tiny WanImageToVideoPipeline as Wan 2.1 I2V: a CLIP image encoder feeds the transformer's image
    tokens; 36 input channels (noise 16 + mask 4 + encoded first frame 16)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline

    _seed(3)
    image_encoder = clip_vision(hidden=8)
    pipe = WanImageToVideoPipeline(transformer=_wan_transformer(36, 16, image_dim=8), vae=_wan_vae(),
                                   scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), image_encoder=image_encoder,
                                   image_processor=clip_image_processor(32), **_wan_text())
    return _save(pipe, path)


def build_tiny_wan22_i2v(path: str | Path) -> Path:
    """Tiny Wan 2.2 I2V-A14B: two experts (high-noise `transformer`, low-noise `transformer_2`) split at
    boundary_ratio 0.9, no image encoder."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline

    pipe = WanImageToVideoPipeline(transformer=_wan_transformer(36, 16), transformer_2=_wan_transformer(36, 16, offset=1),
                                   vae=_wan_vae(), scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
                                   boundary_ratio=0.9, **_wan_text())
    return _save(pipe, path)


def build_tiny_wan22_ti2v(path: str | Path) -> Path:
    """Tiny Wan 2.2 TI2V-5B: the 48-channel Wan 2.2 VAE and per-token timesteps (expand_timesteps), the
    first frame's latents kept clean; the same folder also runs as text-to-video through WanPipeline."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline

    pipe = WanImageToVideoPipeline(transformer=_wan_transformer(48, 48), vae=_wan_vae(wan22=True),
                                   scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0), expand_timesteps=True,
                                   **_wan_text())
    return _save(pipe, path)


def build_tiny_skyreels_v2_i2v(path: str | Path) -> Path:
    """Tiny SkyReelsV2ImageToVideoPipeline (Wan architecture, CLIP image tokens, UniPC scheduler)."""
    from diffusers import SkyReelsV2ImageToVideoPipeline, UniPCMultistepScheduler
    from transformers import CLIPProcessor

    _seed(3)
    image_encoder = clip_vision(hidden=8, projection=True)
    processor = CLIPProcessor(image_processor=clip_image_processor(32), tokenizer=clip_tokenizer())
    pipe = SkyReelsV2ImageToVideoPipeline(
        transformer=_wan_transformer(36, 16, image_dim=8, cls_name="SkyReelsV2Transformer3DModel"), vae=_wan_vae(),
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0),
        image_encoder=image_encoder, image_processor=processor, **_wan_text())
    return _save(pipe, path)


# --------------------------------------------------------------------------------------------------
# HunyuanVideo-I2V (LLaVA text encoder sees the image; CLIP text encoder for the pooled embedding)
# --------------------------------------------------------------------------------------------------
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
IMAGE_TOKEN = 4  # id of <image> in llama_tokenizer()


def llama_tokenizer() -> Any:
    """A Llama-3-style tokenizer (metaspace BPE, no merges, byte fallback) with LLaVA's <image> token."""
    from transformers import LlamaTokenizer

    vocab = _metaspace_vocab(LLAMA_SPECIALS)
    return LlamaTokenizer(vocab=vocab, merges=[], additional_special_tokens=LLAMA_SPECIALS[4:], model_max_length=4096,
                          pad_token="<pad>")


def build_tiny_hunyuanvideo_i2v(path: str | Path) -> Path:
    """Tiny HunyuanVideoImageToVideoPipeline: a 2-layer LLaVA (Llama text + CLIP vision) encoder, a CLIP text
    encoder, one double and one single stream block, a 4-level 8-channel 3D VAE. Its vision tower gives 49 image
    tokens (the released one 576): the adapter fits the prompt template to it, so it runs with the defaults."""
    from diffusers import (AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoImageToVideoPipeline,
                           HunyuanVideoTransformer3DModel)
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    _seed(0)
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=2 * 4 + 1, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, patch_size=1, patch_size_t=1, guidance_embeds=False,
        text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4), image_condition_type="latent_concat")
    _seed(1)
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=4, down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
        norm_num_groups=4, spatial_compression_ratio=8, temporal_compression_ratio=4)
    _seed(2)
    text = LlamaConfig(vocab_size=512, hidden_size=16, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                       bos_token_id=1, eos_token_id=2, pad_token_id=3, hidden_act="gelu")
    vision = CLIPVisionConfig(hidden_size=8, intermediate_size=37, projection_dim=32, num_attention_heads=4,
                              num_hidden_layers=2, image_size=224, patch_size=32)
    text_encoder = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, pad_token_id=3,
                                                             image_token_index=IMAGE_TOKEN))
    _seed(3)
    pipe = HunyuanVideoImageToVideoPipeline(
        text_encoder=text_encoder, tokenizer=llama_tokenizer(), transformer=transformer, vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), text_encoder_2=clip_text(8),
        tokenizer_2=clip_tokenizer(), image_processor=clip_image_processor(224))
    return _save(pipe, path)


# --------------------------------------------------------------------------------------------------
# HunyuanVideo 1.5 (Qwen2.5-VL text model + ByT5 glyph encoder; SigLIP image encoder for I2V)
# --------------------------------------------------------------------------------------------------
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def qwen_tokenizer() -> Any:
    """A byte-level Qwen2 tokenizer (no merges) with a ChatML chat template."""
    from transformers import Qwen2Tokenizer

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Qwen2Tokenizer(vocab=_bpe_vocab(specials), merges=[], model_max_length=4096,
                         additional_special_tokens=specials[1:])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _hunyuan15(path: str | Path, i2v: bool) -> Path:
    import diffusers
    from diffusers import AutoencoderKLHunyuanVideo15, FlowMatchEulerDiscreteScheduler, HunyuanVideo15Transformer3DModel
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import ByT5Tokenizer, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

    _seed(0)
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=9, out_channels=4, num_attention_heads=2, attention_head_dim=8, num_layers=1, num_refiner_layers=1,
        mlp_ratio=2.0, patch_size=1, patch_size_t=1, text_embed_dim=16, text_embed_2_dim=32, image_embed_dim=12,
        rope_axes_dim=(2, 2, 4), target_size=32, task_type="i2v" if i2v else "t2v")
    _seed(1)
    vae = AutoencoderKLHunyuanVideo15(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16),
                                      layers_per_block=1, spatial_compression_ratio=4, temporal_compression_ratio=2,
                                      downsample_match_channel=False, upsample_match_channel=False)
    _seed(2)
    text_encoder = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
        vocab_size=VOCAB + 8, hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, bos_token_id=0, eos_token_id=2, pad_token_id=0,
        rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        rope_theta=1000000.0))
    text_encoder_2 = t5_encoder(32)
    parts: dict[str, Any] = dict(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), text_encoder=text_encoder,
        tokenizer=qwen_tokenizer(), text_encoder_2=text_encoder_2, tokenizer_2=ByT5Tokenizer(),
        guider=ClassifierFreeGuidance(guidance_scale=6.0))
    if i2v:
        from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

        _seed(3)
        parts["image_encoder"] = SiglipVisionModel(SiglipVisionConfig(
            hidden_size=12, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=32,
            patch_size=8))
        parts["feature_extractor"] = SiglipImageProcessor(size={"height": 32, "width": 32})
        pipe = diffusers.HunyuanVideo15ImageToVideoPipeline(**parts)
    else:
        pipe = diffusers.HunyuanVideo15Pipeline(**parts)
    return _save(pipe, path)


def build_tiny_hunyuanvideo15_t2v(path: str | Path) -> Path:
    """Tiny HunyuanVideo15Pipeline: a 2-layer Qwen2.5-VL text model, a 1-layer ByT5-sized T5, one DiT block."""
    return _hunyuan15(path, i2v=False)


def build_tiny_hunyuanvideo15_i2v(path: str | Path) -> Path:
    """Tiny HunyuanVideo15ImageToVideoPipeline: as the T2V one plus a 1-layer SigLIP image encoder."""
    return _hunyuan15(path, i2v=True)


# --------------------------------------------------------------------------------------------------
# CogVideoX
# --------------------------------------------------------------------------------------------------
def _cogvideox(path: str | Path, i2v: bool) -> Path:
    import diffusers
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

    _seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=8 if i2v else 4, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=8, sample_height=8, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=16, use_rotary_positional_embeddings=i2v,
        use_learned_positional_embeddings=i2v)
    _seed(1)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    _seed(2)
    cls = diffusers.CogVideoXImageToVideoPipeline if i2v else diffusers.CogVideoXPipeline
    pipe = cls(tokenizer=t5_tokenizer(), text_encoder=t5_encoder(32), vae=vae, transformer=transformer,
               scheduler=CogVideoXDDIMScheduler(timestep_spacing="trailing"))
    return _save(pipe, path)


def build_tiny_cogvideox(path: str | Path) -> Path:
    """Tiny CogVideoXPipeline (text-to-video): one transformer layer, 4-level 8-channel 3D VAE."""
    return _cogvideox(path, i2v=False)


def build_tiny_cogvideox_i2v(path: str | Path) -> Path:
    """Tiny CogVideoXImageToVideoPipeline: image latents concatenated (8 input channels), rotary and learned
    positional embeddings like CogVideoX-5B-I2V."""
    return _cogvideox(path, i2v=True)


# --------------------------------------------------------------------------------------------------
# LTX-Video
# --------------------------------------------------------------------------------------------------
def build_tiny_ltx(path: str | Path) -> Path:
    """Tiny LTX-Video checkpoint (saved as LTXPipeline; LTXImageToVideoPipeline and LTXConditionPipeline load
    the same folder): one transformer layer, an 8-channel causal video VAE."""
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel

    _seed(0)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    _seed(1)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=1,
        patch_size_t=1, encoder_causal=True, decoder_causal=False)
    _seed(2)
    pipe = LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=t5_encoder(32),
                       tokenizer=t5_tokenizer(), transformer=transformer)
    return _save(pipe, path)


# --------------------------------------------------------------------------------------------------
# LTX-2 (video + soundtrack; Gemma 3 text encoder)
# --------------------------------------------------------------------------------------------------
GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_image>", "<end_of_image>",
                  "<image_soft_token>"]


def gemma_tokenizer() -> Any:
    """A Gemma-style tokenizer (metaspace BPE, no merges, byte fallback) with Gemma 3's image tokens."""
    from transformers import GemmaTokenizer

    vocab = _metaspace_vocab(GEMMA_SPECIALS)
    return GemmaTokenizer(vocab=vocab, merges=[], additional_special_tokens=GEMMA_SPECIALS[5:], model_max_length=4096)


def build_tiny_ltx2(path: str | Path) -> Path:
    """Tiny LTX2ImageToVideoPipeline: a 2-layer Gemma 3 (with a 1-layer SigLIP tower), text connectors, a
    2-layer audio-video transformer, the LTX-2 video VAE, audio VAE and vocoder at 16 kHz."""
    from diffusers import (AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler,
                           LTX2ImageToVideoPipeline, LTX2VideoTransformer3DModel)
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    hidden, layers = 32, 2  # the text connectors run at 4 heads x 8 = 32 wide, the Gemma hidden size
    _seed(2)
    text_encoder = Gemma3ForConditionalGeneration(Gemma3Config(
        text_config=Gemma3TextConfig(vocab_size=512, hidden_size=hidden, intermediate_size=32,
                                     num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                                     head_dim=8, sliding_window=64, pad_token_id=0, eos_token_id=1, bos_token_id=2),
        vision_config=SiglipVisionConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=32, patch_size=8),
        mm_tokens_per_image=4, boi_token_index=5, eoi_token_index=6, image_token_index=7))
    _seed(0)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=4, out_channels=4, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
        cross_attention_dim=16, audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=2,
        audio_attention_head_dim=4, audio_cross_attention_dim=8, num_layers=2, qk_norm="rms_norm_across_heads",
        caption_channels=hidden, rope_double_precision=False, rope_type="split")
    _seed(1)
    connectors = LTX2TextConnectors(
        caption_channels=hidden, text_proj_in_factor=layers + 1, video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8, video_connector_num_layers=1,
        video_connector_num_learnable_registers=None, audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None, connector_rope_base_seq_len=32, rope_theta=10000.0,
        rope_double_precision=False, causal_temporal_positioning=False, rope_type="split")
    _seed(3)
    vae = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,), decoder_block_out_channels=(8,),
        layers_per_block=(1,), decoder_layers_per_block=(1, 1), spatio_temporal_scaling=(True,),
        decoder_spatio_temporal_scaling=(True,), decoder_inject_noise=(False, False), downsample_type=("spatial",),
        upsample_residual=(False,), upsample_factor=(1,), timestep_conditioning=False, patch_size=1, patch_size_t=1,
        encoder_causal=True, decoder_causal=False)
    _seed(4)
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4, output_channels=2, ch_mult=(1,), num_res_blocks=1, attn_resolutions=None, in_channels=2,
        resolution=32, latent_channels=2, norm_type="pixel", causality_axis="height", dropout=0.0,
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=8)
    _seed(5)
    vocoder = LTX2Vocoder(in_channels=2 * 8, hidden_channels=32, out_channels=2, upsample_kernel_sizes=[4, 4],
                          upsample_factors=[2, 2], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
                          leaky_relu_negative_slope=0.1, output_sampling_rate=16000)
    pipe = LTX2ImageToVideoPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, audio_vae=audio_vae,
                                    text_encoder=text_encoder, tokenizer=gemma_tokenizer(), connectors=connectors,
                                    transformer=transformer, vocoder=vocoder)
    return _save(pipe, path)


# --------------------------------------------------------------------------------------------------
# Sana-Video (linear-attention DiT, Gemma 2 text encoder, Wan VAE)
# --------------------------------------------------------------------------------------------------
def build_tiny_sana_video(path: str | Path) -> Path:
    """Tiny Sana-Video checkpoint (saved as SanaImageToVideoPipeline): a 1-layer Gemma 2, a 2-layer
    SanaVideoTransformer3DModel, the Wan VAE at base width 3. Its transformer has no size bins (sample_size 8),
    so the adapter's default (use_resolution_binning: auto) runs it unbinned; the released 480p one is binned."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SanaImageToVideoPipeline, SanaVideoTransformer3DModel
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = gemma_tokenizer()
    _seed(2)
    text_encoder = Gemma2Model(Gemma2Config(
        vocab_size=len(tokenizer) + 8, head_dim=16, hidden_size=8, intermediate_size=32, num_attention_heads=2,
        num_hidden_layers=1, num_key_value_heads=2, max_position_embeddings=8192, pad_token_id=0, eos_token_id=1,
        bos_token_id=2, attn_implementation="eager"))
    _seed(0)
    transformer = SanaVideoTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=12, num_layers=2,
        num_cross_attention_heads=2, cross_attention_head_dim=12, cross_attention_dim=24, caption_channels=8,
        mlp_ratio=2.5, dropout=0.0, attention_bias=False, sample_size=8, patch_size=(1, 2, 2),
        norm_elementwise_affine=False, norm_eps=1e-6, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    pipe = SanaImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=_wan_vae(),
                                    transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler())
    return _save(pipe, path)


# --------------------------------------------------------------------------------------------------
# text-to-image: SDXL, FLUX.1, SD3.5
# --------------------------------------------------------------------------------------------------
def build_tiny_sdxl(path: str | Path) -> Path:
    """Tiny StableDiffusionXLPipeline: two CLIP text encoders (32 + 32 = 64-wide context), a two-level UNet."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    _seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=8)
    _seed(1)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4, norm_num_groups=8, sample_size=64)
    _seed(2)
    te, te2 = clip_text(32), clip_text(32, projection=True)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te2, tokenizer=clip_tokenizer(),
                                     tokenizer_2=clip_tokenizer(), unet=unet, scheduler=scheduler)
    return _save(pipe, path)


def _flat_vae(latent_channels: int) -> Any:
    from diffusers import AutoencoderKL

    _seed(1)
    return AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 8), layers_per_block=1,
                         down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                         latent_channels=latent_channels, norm_num_groups=4, use_quant_conv=False,
                         use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)


def build_tiny_flux(path: str | Path) -> Path:
    """Tiny FluxPipeline (CLIP + T5 text, one double and one single stream block, guidance embedding on, so
    one folder stands in for both FLUX.1 dev and schnell)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    _seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 4, 8))
    _seed(2)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flat_vae(4), text_encoder=clip_text(32),
                        tokenizer=clip_tokenizer(), text_encoder_2=t5_encoder(32), tokenizer_2=t5_tokenizer(),
                        transformer=transformer)
    return _save(pipe, path)


def build_tiny_sd3(path: str | Path) -> Path:
    """Tiny StableDiffusion3Pipeline (SD3.5 layout: two CLIP-with-projection encoders + T5, MMDiT)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    _seed(0)
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=32, pooled_projection_dim=64, out_channels=4,
                                        qk_norm="rms_norm")
    _seed(2)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_flat_vae(4),
        text_encoder=clip_text(32, projection=True), tokenizer=clip_tokenizer(),
        text_encoder_2=clip_text(32, projection=True), tokenizer_2=clip_tokenizer(),
        text_encoder_3=t5_encoder(32), tokenizer_3=t5_tokenizer())
    return _save(pipe, path)


# --------------------------------------------------------------------------------------------------
# a tiny LoRA (peft) for a tiny checkpoint
# --------------------------------------------------------------------------------------------------
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # attention projections in diffusers' transformers and UNets


def build_tiny_lora(checkpoint: str | Path, path: str | Path, rank: int = 4, seed: int = 0) -> Path:
    """A random LoRA for the tiny checkpoint folder `checkpoint`, written into `path` as
    pytorch_lora_weights.safetensors by the pipeline's own save_lora_weights (what `options.lora` loads).

    peft's LoraConfig targets the denoiser's (transformer's or UNet's) attention projections; both LoRA
    matrices are random (peft's default zero-initialises B, which would make a LoRA that changes nothing)."""
    import diffusers
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = diffusers.DiffusionPipeline.from_pretrained(checkpoint)
    name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
    denoiser = getattr(pipe, name)
    torch.manual_seed(SEED + seed)
    denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(LORA_TARGETS),
                                    init_lora_weights=False))
    layers = get_peft_model_state_dict(denoiser)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    type(pipe).save_lora_weights(path, **{f"{name}_lora_layers": layers})
    return path


# --------------------------------------------------------------------------------------------------
# metric backbones (not diffusers)
# --------------------------------------------------------------------------------------------------
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


# the diffusers families: one folder each from `build_all`
DIFFUSERS_BUILDERS: dict[str, Callable[[str | Path], Path]] = {
    "svd": build_tiny_svd,
    "wan-t2v": build_tiny_wan_t2v,
    "wan-i2v": build_tiny_wan_i2v,
    "wan22-i2v": build_tiny_wan22_i2v,
    "wan22-ti2v": build_tiny_wan22_ti2v,
    "skyreels-v2-i2v": build_tiny_skyreels_v2_i2v,
    "hunyuanvideo-i2v": build_tiny_hunyuanvideo_i2v,
    "hunyuanvideo15-t2v": build_tiny_hunyuanvideo15_t2v,
    "hunyuanvideo15-i2v": build_tiny_hunyuanvideo15_i2v,
    "cogvideox": build_tiny_cogvideox,
    "cogvideox-i2v": build_tiny_cogvideox_i2v,
    "ltx": build_tiny_ltx,
    "ltx2": build_tiny_ltx2,
    "sana-video": build_tiny_sana_video,
    "sdxl": build_tiny_sdxl,
    "flux": build_tiny_flux,
    "sd3": build_tiny_sd3,
}

BUILDERS: dict[str, Callable[[str | Path], Path]] = {
    **DIFFUSERS_BUILDERS,
    "alexnet": lambda path: build_random_torchvision("alexnet", path),
    "raft_small": lambda path: build_random_torchvision("raft_small", path),
}


def build_tiny(family: str, path: str | Path) -> Path:
    """Build the tiny checkpoint `family` (a key of `BUILDERS`) into `path`."""
    if family not in BUILDERS:
        raise KeyError(f"no tiny builder for '{family}'; known: {', '.join(sorted(BUILDERS))}")
    return BUILDERS[family](path)


def build_all(root: str | Path, names: list[str] | None = None, skip_existing: bool = True) -> dict[str, Path]:
    """Write one tiny checkpoint folder per diffusers family under `root` (`root/NAME`); folders that already
    hold a model_index.json are kept when `skip_existing`."""
    root = Path(root)
    names = list(DIFFUSERS_BUILDERS) if not names else names
    unknown = [n for n in names if n not in DIFFUSERS_BUILDERS]
    if unknown:
        raise KeyError(f"no tiny builder for {', '.join(unknown)}; known: {', '.join(DIFFUSERS_BUILDERS)}")
    out = {}
    for name in names:
        folder = root / name
        if not (skip_existing and (folder / "model_index.json").is_file()):
            DIFFUSERS_BUILDERS[name](folder)
        out[name] = folder
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(f"usage: python -m workbench.models.tiny NAME OUT_DIR  (NAME: {', '.join(sorted(BUILDERS))})",
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
