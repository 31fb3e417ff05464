"""Image-only cases, as a user writes them: a 1-case suite with just an image, every registered
image-to-video diffusers family by name, its tiny checkpoint as `model_id` and nothing else a tiny
checkpoint used to need (no prompt_template, no use_resolution_binning). `workbench models` says the
prompt is optional, and that is what runs. Also: what the fitted extras do for a real checkpoint, and
LTX-2 refusing driving audio before it loads."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from workbench.cli import app
from workbench.experiment import Runner
from workbench.media import Audio
from workbench.models import GenerationError, GenerationRequest, get_generator, registry
from workbench.models import diffusers_pipeline as dp
from workbench.models.families import I2V, SPECS
from workbench.suite import load_suite

I2V_FAMILIES = sorted(name for name, cls in registry().items()
                      if isinstance(cls, type) and issubclass(cls, dp.DiffusersGenerator) and cls.task == I2V)


def small(name: str) -> dict:
    """The fewest frames, pixels and steps the family's own rules allow (sizes it can run on a CPU)."""
    spec = SPECS[name]
    p: dict = {"num_inference_steps": 1, "num_frames": spec.frame_rule + 1 if spec.frame_rule > 1 else 3}
    if "width" in get_generator(name).defaults:
        side = 64 if name.startswith(("svd", "cogvideox")) else 32
        p.update(width=side, height=side)
    return p


def test_every_image_to_video_family_is_listed_as_needing_only_an_image():
    assert len(I2V_FAMILIES) == 14
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(app, ["models", "--json"]).output)}
    text = CliRunner().invoke(app, ["models"]).output
    for name in I2V_FAMILIES:
        row = rows[name]
        assert row["requires"] == ["image"], name
        if "prompt" in row["accepts"]:
            assert row["inputs"]["prompt"] == "optional: an empty prompt when the case has none", name
        else:  # SVD: no text conditioning at all
            assert row["inputs"]["prompt"] == "refused", name
    assert ("needs image; optional: negative_prompt (the pipeline's default when absent), prompt (an empty prompt "
            "when the case has none); refuses audio (the model makes its own soundtrack)") in text  # LTX-2
    assert "\n    needs prompt; optional: negative_prompt" in text  # text-to-video and SDXL: the prompt is required


def test_an_image_only_suite_runs_every_image_to_video_family(tiny_models, tmp_path):
    """One case with only an image, each family by its bare name plus model_id and small sizes: every
    job generates (no "Provide either prompt or prompt_embeds" after loading)."""
    y, x = np.mgrid[0:80, 0:120]
    Image.fromarray(np.stack([x * 2, y * 3, (x + y) % 256], -1).astype(np.uint8)).save(tmp_path / "still.png")
    models = [{"name": n, "params": {"model_id": str(tiny_models[SPECS[n].tiny]), **small(n)}} for n in I2V_FAMILIES]
    spec = {"name": "image-only", "output": "run", "cases": [{"id": "still", "image": "still.png"}],
            "models": models, "seeds": [0], "metrics": ["temporal_flicker"]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    records = Runner(load_suite(tmp_path / "suite.yaml")).run_all()
    assert {r["model_name"] for r in records} == set(I2V_FAMILIES)
    failed = {r["model_name"]: r["error"] for r in records if r["status"] != "ok"}
    assert not failed
    for rec in records:
        assert rec["prompt"] in ("", None) and (tmp_path / "run" / rec["video"]).is_file()
        assert rec["clip"]["frames"] == rec["params"]["num_frames"], rec["model_name"]


def test_the_prompt_still_steers_when_given(tiny_models):
    """The empty prompt is a real input, not a dropped one: a prompt changes the clip."""
    image = np.full((48, 48, 3), 120, np.uint8)
    image[:, :24] = 30
    gen = get_generator("hunyuanvideo-i2v")(model_id=str(tiny_models["hunyuanvideo-i2v"]), **small("hunyuanvideo-i2v"))
    plain = gen.generate(GenerationRequest(image=image)).frames
    steered = gen.generate(GenerationRequest(image=image, prompt="a red fox runs")).frames
    assert plain.std() > 1.0 and np.abs(plain.astype(int) - steered).mean() > 0.5


# ------------------------------------------------------------------------- extras fitted to the checkpoint
def llava(image_size: int, patch_size: int) -> SimpleNamespace:
    vision = SimpleNamespace(image_size=image_size, patch_size=patch_size)
    return SimpleNamespace(config=SimpleNamespace(vision_config=vision, vision_feature_select_strategy="default",
                                                  image_token_index=4))


def test_hunyuan_template_is_the_pipelines_own_for_the_released_encoder(tiny_models):
    """The released LLaVA (336 px, 14 px patches: 576 image tokens) gets diffusers' default template
    (nothing passed); the tiny one (49 tokens) a template counted from its own tokenizer."""
    real = SimpleNamespace(text_encoder=llava(336, 14), tokenizer=None)
    assert dp.hunyuan_i2v_template(real) is None
    assert dp.checkpoint_extras(SPECS["hunyuanvideo-i2v"], real, {"prompt_template": None}) == {}
    pipe = get_generator("hunyuanvideo-i2v")(model_id=str(tiny_models["hunyuanvideo-i2v"])).pipeline()
    fitted = dp.hunyuan_i2v_template(pipe)
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE

    assert fitted["template"] == DEFAULT_PROMPT_TEMPLATE["template"] and fitted["image_emb_len"] == 49
    ids = pipe.tokenizer(DEFAULT_PROMPT_TEMPLATE["template"].split("{}")[0]).input_ids
    assert ids[fitted["image_emb_start"]] == pipe.text_encoder.config.image_token_index
    assert fitted["crop_start"] == len(ids) and fitted["image_emb_end"] == fitted["image_emb_start"] + 49
    given = {"template": "{}", "crop_start": 0}  # a user's own template is passed as it is
    assert dp.checkpoint_extras(SPECS["hunyuanvideo-i2v"], pipe, {"prompt_template": given}) == {}


def test_sana_binning_follows_the_checkpoint(tiny_models):
    spec = SPECS["sana-video-2b-i2v"]
    released = SimpleNamespace(transformer=SimpleNamespace(config=SimpleNamespace(sample_size=30)))
    assert dp.checkpoint_extras(spec, released, {"use_resolution_binning": None}) == {"use_resolution_binning": True}
    assert dp.checkpoint_extras(spec, released, {"use_resolution_binning": False}) == {"use_resolution_binning": False}
    params = {"model_id": str(tiny_models["sana-video"]), **small("sana-video-2b-i2v")}
    assert get_generator("sana-video-2b-i2v").defaults["use_resolution_binning"] is None  # auto
    with pytest.raises(GenerationError, match=r"^sana-video-2b-i2v: use_resolution_binning needs a checkpoint with "
                                              r"480p/720p size bins \(transformer sample_size 30 or 22; this one has 8\)"):
        get_generator("sana-video-2b-i2v")(use_resolution_binning=True, **params).generate(
            GenerationRequest(image=np.zeros((32, 32, 3), np.uint8)))
    with pytest.raises(GenerationError, match=r"use_resolution_binning must be true, false or left out"):
        get_generator("sana-video-2b-i2v").check_request(
            GenerationRequest(image=np.zeros((8, 8, 3), np.uint8), params={"use_resolution_binning": "yes"}))


# --------------------------------------------------------------------------------- LTX-2 and driving audio
def test_ltx2_refuses_driving_audio_before_loading(tmp_path):
    """LTX-2 makes its own soundtrack: a case's driving audio is refused in one line, before anything loads
    (the model_id here does not exist: the audio refusal comes first), even where a suite's case serves
    other models (not strict)."""
    cls = get_generator("ltx2-i2v")
    req = GenerationRequest(image=np.zeros((32, 32, 3), np.uint8), audio=Audio(np.zeros(1600, np.float32), 16000))
    message = (r"^model 'ltx2-i2v' makes its own soundtrack and cannot follow driving audio \(lip-sync would be "
               r"scored against audio it never heard\); remove `audio:` from the case or pick a talking-head model")
    for strict in (True, False):
        with pytest.raises(GenerationError, match=message):
            cls.check_request(req, strict=strict)
    with pytest.raises(GenerationError, match=message) as e:
        cls(model_id=str(tmp_path / "not-loaded")).generate(req)
    assert "\n" not in str(e.value)
