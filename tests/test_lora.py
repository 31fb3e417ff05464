"""`options.lora: [{path, scale}]` on diffusers families, on a tiny LoRA built here with peft (random A and B
on the tiny denoiser's attention projections, saved by the pipeline's own save_lora_weights) and loaded by
diffusers' load_lora_weights / set_adapters on the real pipeline."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from workbench.experiment import Runner, expand_jobs
from workbench.models import GenerationError, GenerationRequest, get_generator
from workbench.models.tiny import build_tiny_lora
from workbench.suite import SuiteError, load_suite
from conftest import FAIL_FAST_S

pytest.importorskip("peft")

SMALL = {"num_frames": 5, "width": 32, "height": 32, "num_inference_steps": 1}


@pytest.fixture(scope="module")
def loras(tiny_models, tmp_path_factory) -> dict[str, Path]:
    """Two different tiny LoRAs for the Wan 2.1 I2V checkpoint (folders) and one for SDXL's UNet."""
    root = tmp_path_factory.mktemp("loras")
    return {"wan": build_tiny_lora(tiny_models["wan-i2v"], root / "wan"),
            "wan-other": build_tiny_lora(tiny_models["wan-i2v"], root / "wan-other", seed=1),
            "sdxl": build_tiny_lora(tiny_models["sdxl"], root / "sdxl")}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    y, x = np.mgrid[0:48, 0:64]
    return np.stack([x * 3, y * 4, (x + y) % 256], -1).astype(np.uint8)


def test_the_tiny_lora_is_what_save_lora_weights_writes(loras):
    from safetensors.torch import load_file

    weights = loras["wan"] / "pytorch_lora_weights.safetensors"
    keys = list(load_file(weights))
    assert keys and all(k.startswith("transformer.") and ".lora_" in k for k in keys)
    assert any(".to_q.lora_A." in k for k in keys) and any(".to_out.0.lora_B." in k for k in keys)


def test_scale_changes_the_output_and_zero_is_the_base_model(tiny_models, loras, image):
    name, folder = "wan2.1-i2v-480p", str(tiny_models["wan-i2v"])
    cls = get_generator(name)
    req = GenerationRequest(image=image, prompt="a fox", seed=3)
    base = cls(model_id=folder, **SMALL).generate(req).frames
    off = cls(options={"lora": [{"path": str(loras["wan"]), "scale": 0.0}]}, model_id=folder, **SMALL).generate(req)
    full = cls(options={"lora": [{"path": str(loras["wan"]), "scale": 1.0}]}, model_id=folder, **SMALL).generate(req)
    assert np.array_equal(off.frames, base)  # scale 0: the adapter is there and does nothing
    assert np.abs(full.frames.astype(int) - base).mean() > 0.5  # scale 1: a different clip
    again = cls(options={"lora": [{"path": str(loras["wan"]), "scale": 0.0}]}, model_id=folder, **SMALL)
    assert np.array_equal(again.generate(req).frames, base)  # the cached pipeline is set back to this job's scale


def test_a_unet_family_takes_a_lora_too(tiny_models, loras):
    cls = get_generator("sdxl")
    params = {"model_id": str(tiny_models["sdxl"]), "width": 32, "height": 32, "num_inference_steps": 2}
    req = GenerationRequest(prompt="a red fox", seed=1)
    base = cls(**params).generate(req).frames
    styled = cls(options={"lora": [{"path": str(loras["sdxl"] / "pytorch_lora_weights.safetensors"), "scale": 1.0}]},
                 **params).generate(req).frames
    assert base.shape == styled.shape == (1, 32, 32, 3) and not np.array_equal(base, styled)


def test_lora_is_resolved_with_its_digest_and_changes_the_clip_id(tiny_models, loras, tmp_path):
    """The clip id covers the LoRA's bytes and scale: another scale or another file never reuses a clip."""
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "still.png")
    base = {"model_id": str(tiny_models["wan-i2v"]), **SMALL}

    def model(label: str, lora: list | None) -> dict:
        return {"name": "wan2.1-i2v-480p", "label": label, "params": base, **({"options": {"lora": lora}} if lora else {})}

    spec = {"name": "lora", "cases": [{"id": "still", "image": "still.png"}], "seeds": [0], "models": [
        model("plain", None), model("half", [{"path": str(loras["wan"]), "scale": 0.5}]),
        model("full", [{"path": str(loras["wan"])}]),
        model("other", [{"path": str(loras["wan-other"]), "scale": 1.0}])]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    jobs = {j.model.display: j for j in expand_jobs(load_suite(tmp_path / "suite.yaml"))}
    assert len({j.clip_id for j in jobs.values()}) == 4
    assert "lora" not in jobs["plain"].options  # no LoRA: the options (and clip ids) are what they were before
    (entry,) = jobs["full"].options["lora"]
    assert entry["path"].endswith("pytorch_lora_weights.safetensors") and entry["scale"] == 1.0
    assert len(entry["sha256"]) == 64 and entry["sha256"] != jobs["other"].options["lora"][0]["sha256"]


def test_a_lora_run_records_it(tiny_models, loras, tmp_path):
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(tmp_path / "still.png")
    spec = {"name": "lora-run", "output": "run", "cases": [{"id": "still", "image": "still.png"}], "seeds": [0],
            "metrics": ["temporal_flicker"],
            "models": [{"name": "wan2.1-i2v-480p", "params": {"model_id": str(tiny_models["wan-i2v"]), **SMALL},
                        "options": {"lora": [{"path": str(loras["wan"]), "scale": 0.8}]}}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    (rec,) = Runner(load_suite(tmp_path / "suite.yaml")).run_all()
    assert rec["status"] == "ok", rec["error"]
    assert rec["options"]["lora"][0]["scale"] == 0.8 and len(rec["options"]["lora"][0]["sha256"]) == 64


@pytest.mark.parametrize("lora, message", [
    ([{"path": "/no/such/lora.safetensors"}], r"options.lora\[0\].path /no/such/lora.safetensors not found; point it "
                                              r"at a local LoRA .safetensors file \(or a folder holding one\)"),
    ([{"path": "LORA", "scale": "strong"}], r"options.lora\[0\].scale must be a number \(1.0 = full strength\), got 'strong'"),
    ([{"path": "LORA", "weight": 1}], r"options.lora\[0\]: unknown key\(s\) weight; known: path, scale"),
    ("LORA", r"options.lora must be a list of \{path, scale\}"),
    ([{"scale": 1.0}], r"options.lora\[0\] needs path"),
])
def test_bad_lora_options_are_one_line_at_validation(lora, message, loras, tmp_path):
    fix = lambda v: str(loras["wan"]) if v == "LORA" else v  # noqa: E731
    lora = fix(lora) if isinstance(lora, str) else [{k: fix(v) for k, v in e.items()} for e in lora]
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "still.png")
    spec = {"name": "bad", "cases": [{"id": "still", "image": "still.png"}],
            "models": [{"name": "wan2.1-i2v-480p", "options": {"lora": lora}}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    t0 = time.perf_counter()
    with pytest.raises(SuiteError, match=message) as e:
        load_suite(tmp_path / "suite.yaml")
    assert time.perf_counter() - t0 < FAIL_FAST_S and "\n" not in str(e.value)


def test_families_without_a_lora_loader_and_loras_for_another_model(tiny_models, loras, tmp_path, image):
    with pytest.raises(GenerationError, match=r"^model 'svd': options.lora does not apply \(StableVideoDiffusionPipeline "
                                              r"has no LoRA loader in diffusers\); remove it$"):
        get_generator("svd").resolve_options({"lora": [{"path": str(loras["wan"])}]})
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_lora_weights.bin").write_bytes(b"not loaded")
    with pytest.raises(GenerationError, match=r"holds no single LoRA .safetensors file \(pickled LoRAs are not loaded\)"):
        get_generator("flux-dev").resolve_options({"lora": [{"path": str(pickled)}]})
    wrong = get_generator("wan2.1-t2v-1.3b")(options={"lora": [{"path": str(loras["sdxl"])}]},
                                             model_id=str(tiny_models["wan-t2v"]), **SMALL)
    with pytest.raises(GenerationError, match=r"^wan2.1-t2v-1.3b: LoRA .*sdxl/pytorch_lora_weights.safetensors has no "
                                              r"weights for any part of WanPipeline \(made for another model\?\)") as e:
        wrong.generate(GenerationRequest(prompt="a fox"))
    assert "\n" not in str(e.value)
    clash = get_generator("flux-schnell")(options={"lora": [{"path": str(loras["wan"])}]},
                                          model_id=str(tiny_models["flux"]), width=32, height=32, num_inference_steps=1)
    with pytest.raises(GenerationError, match=r"^flux-schnell: LoRA .* does not load into FluxPipeline: .* \.\.\.; use "
                                              r"a LoRA trained for this model$") as e:
        clash.generate(GenerationRequest(prompt="a fox"))
    assert "\n" not in str(e.value) and len(str(e.value)) < 500
    moved = tmp_path / "moved.safetensors"  # a file path works as well as its folder
    shutil.copy(loras["wan"] / "pytorch_lora_weights.safetensors", moved)
    opts = get_generator("wan2.1-i2v-480p").resolve_options({"lora": [{"path": str(moved), "scale": 1}]})
    assert opts["lora"][0]["path"] == str(moved.resolve()) and opts["lora"][0]["scale"] == 1.0
    resolved = opts["lora"]
    assert get_generator("wan2.1-i2v-480p").resolve_options({"lora": resolved})["lora"] == resolved  # idempotent
    moved.write_bytes(moved.read_bytes() + b" ")  # retrained in place after the suite was planned
    with pytest.raises(GenerationError, match=r"options.lora\[0\].path .*moved.safetensors changed since the job was "
                                              r"planned"):
        get_generator("wan2.1-i2v-480p").resolve_options({"lora": resolved})
