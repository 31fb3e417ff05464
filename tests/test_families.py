"""The family table against the installed diffusers: classes exist, argument maps match __call__, native
defaults obey each family's own rules, and every family the issue names is there with a tiny builder."""
from __future__ import annotations

import inspect

import diffusers
import pytest

from workbench.models.diffusers_pipeline import GENERATORS, OPTION_DEFAULTS
from workbench.models.families import DEFAULT_ARGS, FAMILIES, I2V, SPECS, T2I, T2V
from workbench.models.tiny import DIFFUSERS_BUILDERS

# families whose tiny checkpoint is not built (named so the report and this test agree); empty = all built
NO_TINY: set[str] = set()

EXPECTED = {
    I2V: {"svd", "svd-img2vid", "cogvideox-5b-i2v", "ltx-video-i2v", "ltx-video-condition", "ltx2-i2v", "wan2.1-i2v-480p",
          "wan2.1-i2v-720p", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b", "hunyuanvideo-i2v", "hunyuanvideo1.5-i2v",
          "skyreels-v2-i2v", "sana-video-2b-i2v"},
    T2V: {"wan2.1-t2v-1.3b", "cogvideox-5b", "ltx-video", "hunyuanvideo1.5-t2v"},
    T2I: {"sdxl", "flux-schnell", "flux-dev", "sd3.5-medium", "sd3.5-large"},
}


def test_every_family_the_issue_names_is_in_the_table():
    for task, names in EXPECTED.items():
        assert names <= {s.name for s in FAMILIES if s.task == task}, task
    assert len(SPECS) == len(FAMILIES)  # names are unique
    assert set(GENERATORS) == set(SPECS)


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.name)
def test_spec_matches_the_installed_pipeline(spec):
    cls = getattr(diffusers, spec.pipeline)
    params = inspect.signature(cls.__call__).parameters
    gen = GENERATORS[spec.name]
    used = [k for k in DEFAULT_ARGS if k in gen.defaults or k in gen.accepts or k == "num_inference_steps"]
    for key in used:
        name = spec.arg(key)
        if name is not None:
            assert name in params, f"{spec.name}: {spec.pipeline}.__call__ has no {name}"
    for extra in spec.extras:  # (a None default means the pipeline's own default, still its argument)
        assert extra in params, f"{spec.name}: extra {extra} is not a {spec.pipeline} argument"
    if spec.task == I2V:
        assert "image" in params and "image" in spec.requires
    else:
        assert "image" not in spec.inputs and "prompt" in spec.requires
    if spec.decode_chunk_size:
        assert "decode_chunk_size" in params


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.name)
def test_native_defaults_obey_the_family_rules(spec):
    gen = GENERATORS[spec.name]
    if spec.task != T2I:
        assert spec.frames_ok(spec.num_frames) and spec.num_frames <= spec.max_frames and spec.fps > 0
    assert spec.width % spec.size_multiple == 0 and spec.height % spec.size_multiple == 0
    gen.check_request(type("R", (), {"image": object() if spec.task == I2V else None, "prompt": "a" if
                                     "prompt" in spec.requires else "", "audio": None, "negative_prompt": "",
                                     "params": {}})())
    unset = {k: v for k, v in OPTION_DEFAULTS.items() if k != "lora"}  # no LoRA: left out (clip ids unchanged)
    assert gen.resolve_options(None) == {**unset, "dtype": "auto"}
    assert spec.hub_ids and all("/" in h for h in spec.hub_ids)


def test_denoiser_capabilities_match_diffusers():
    """cache / compile flags in the table agree with the denoiser classes diffusers ships."""
    from diffusers.models.cache_utils import CacheMixin

    for spec in FAMILIES:
        cls = getattr(diffusers, spec.pipeline)
        hint = inspect.signature(cls.__init__).parameters[spec.denoiser].annotation
        text = str(hint)
        denoiser = next(getattr(diffusers, n) for n in dir(diffusers)
                        if n.endswith(("Model", "Model3D")) and n in text and isinstance(getattr(diffusers, n), type))
        if spec.cache:
            assert issubclass(denoiser, CacheMixin), spec.name
        if spec.repeated_blocks:
            assert getattr(denoiser, "_repeated_blocks", None), spec.name


def test_every_family_has_a_tiny_builder():
    missing = {s.name for s in FAMILIES if s.tiny not in DIFFUSERS_BUILDERS}
    assert missing == NO_TINY


def test_lora_flag_matches_diffusers_and_audio_out_takes_no_audio():
    """`lora` is true exactly where the pipeline has diffusers' LoRA loader; a family that makes its own
    soundtrack never lists audio among its inputs."""
    for spec in FAMILIES:
        assert spec.lora == hasattr(getattr(diffusers, spec.pipeline), "load_lora_weights"), spec.name
        if spec.audio_out:
            assert "audio" not in spec.inputs, spec.name
