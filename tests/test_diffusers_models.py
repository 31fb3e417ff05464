"""The generic diffusers adapter, run for real on tiny random-weight checkpoints built once per session
(no download, no mocks): every family in the table loads through the real loader and generates."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from workbench.experiment import Runner
from workbench.media import Audio
from workbench.models import GenerationError, GenerationRequest, get_generator, registry
from workbench.models import diffusers_pipeline as dp
from workbench.models.families import FAMILIES, I2V, T2I
from workbench.models.tiny import DIFFUSERS_BUILDERS
from workbench.suite import load_suite
from conftest import FAIL_FAST_S

BUILT = [s for s in FAMILIES if s.tiny in DIFFUSERS_BUILDERS]  # test_families names the families without one


def tiny_params(name: str, folder: Path, **extra) -> dict:
    """The smallest request a family's real rules allow: 1 step, 5 (or 9) frames, 32 px (64 for SVD's UNet)."""
    cls = get_generator(name)
    p = {"model_id": str(folder), "num_inference_steps": 1}
    if "num_frames" in cls.defaults:
        p["num_frames"] = cls.spec.frame_rule + 1 if cls.spec.frame_rule > 1 else 3
    if "width" in cls.defaults:
        side = 64 if name.startswith(("svd", "cogvideox-5b-i2v")) else 32
        p.update(width=side, height=side)
    return {**p, **extra}


def request_for(name: str, image: np.ndarray, seed: int = 0) -> GenerationRequest:
    cls = get_generator(name)
    return GenerationRequest(image=image if "image" in cls.accepts else None,
                             prompt="a red fox runs" if "prompt" in cls.accepts else "", seed=seed)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    y, x = np.mgrid[0:80, 0:120]
    return np.stack([x * 2, y * 3, (x + y) % 256], -1).astype(np.uint8)


def make(name: str, tiny_models: dict[str, Path], options: dict | None = None, **params):
    cls = get_generator(name)
    return cls(options=options, **tiny_params(name, tiny_models[cls.spec.tiny], **params))


# ------------------------------------------------------------------------------------------ every family
@pytest.mark.parametrize("name", [s.name for s in BUILT])
def test_family_generates_deterministically(name, tiny_models, image):
    gen = make(name, tiny_models)
    cls = type(gen)
    a = gen.generate(request_for(name, image, seed=0))
    if cls.task == T2I:
        assert a.num_frames == 1 and a.size == (32, 32)
    else:
        assert a.num_frames == gen.params["num_frames"] and a.fps == gen.params["fps"]
        if "width" in gen.params:
            assert a.size == (gen.params["width"], gen.params["height"])
    assert a.frames.dtype == np.uint8 and a.frames.std() > 1.0  # real pipeline output, not a constant
    if cls.spec.audio_out:  # LTX-2 makes a soundtrack: the clip keeps it
        assert a.audio is not None and a.audio.sample_rate == 16000 and len(a.audio.samples) > 0
        assert np.abs(a.audio.samples).max() > 0
    else:
        assert a.audio is None
    shared = [s.name for s in BUILT if s.tiny == cls.spec.tiny]
    if name != shared[0]:
        return  # seeds are checked once per tiny checkpoint (the same pipeline call)
    assert np.array_equal(gen.generate(request_for(name, image, seed=0)).frames, a.frames)
    b = gen.generate(request_for(name, image, seed=1)).frames
    assert np.abs(a.frames.astype(int) - b.astype(int)).mean() > 0.5


def test_plain_diffusers_loads_every_tiny_folder(tiny_models):
    import diffusers

    for name, folder in tiny_models.items():
        pipe = diffusers.DiffusionPipeline.from_pretrained(folder)
        index = json.loads((folder / "model_index.json").read_text())
        assert type(pipe).__name__ == index["_class_name"], name


def test_progress_counts_steps_and_can_stop(tiny_models, image):
    calls = []
    gen = make("svd", tiny_models, num_inference_steps=2)
    gen.generate(request_for("svd", image), progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 2), (2, 2)]
    stops = []

    def stop(i: int, n: int) -> None:  # the runner cancels by raising from the progress callback
        stops.append(i)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make("wan2.1-t2v-1.3b", tiny_models, num_inference_steps=3).generate(
            request_for("wan2.1-t2v-1.3b", image), progress=stop)
    assert stops == [1]


def test_pipeline_loads_once_per_checkpoint_and_options(tiny_models, image):
    folder = str(tiny_models["wan-t2v"].resolve())

    def cached() -> list:
        return [pipe for key, pipe in dp._cache.items() if key[1] == folder]

    make("wan2.1-t2v-1.3b", tiny_models).generate(request_for("wan2.1-t2v-1.3b", image))
    first = cached()
    make("wan2.1-t2v-1.3b", tiny_models, num_frames=9).generate(request_for("wan2.1-t2v-1.3b", image, 4))
    assert len(first) == 1 and cached()[0] is first[0]
    make("wan2.1-t2v-1.3b", tiny_models, {"attention_backend": "native"}).generate(request_for("wan2.1-t2v-1.3b", image))
    assert len(cached()) == 2  # other load options: another pipeline


# ---------------------------------------------------------------------------------------------- options
def test_options_resolve_with_defaults_and_are_described():
    cls = get_generator("wan2.1-t2v-1.3b")
    opts = cls.resolve_options({"dtype": "bf16", "cache": "first_block"})
    assert opts["dtype"] == "bfloat16" and opts["cache"] == {"kind": "first_block"}
    assert set(opts) == set(dp.OPTION_DEFAULTS) - {"lora"} and opts["offload"] == "none"  # unset lora: left out
    assert cls.describe()["options"] == dp.OPTION_DEFAULTS


@pytest.mark.parametrize("name, options, message", [
    ("wan2.1-t2v-1.3b", {"dtpye": "bf16"}, r"unknown option\(s\) dtpye; known: dtype, device"),
    ("wan2.1-t2v-1.3b", {"dtype": "fp8"}, r"options.dtype 'fp8' unknown; use auto, bf16, fp16 or fp32"),
    ("wan2.1-t2v-1.3b", {"device": "gpu"}, r"options.device 'gpu' unknown"),
    ("wan2.1-t2v-1.3b", {"decode_chunk_size": 4}, r"options.decode_chunk_size does not apply .*remove it"),
    ("svd", {"decode_chunk_size": 0}, r"decode_chunk_size must be an integer >= 1"),
    ("svd", {"cache": {"kind": "first_block"}}, r"options.cache does not apply \(the unet .* supports no diffusers"),
    ("svd", {"vae_tiling": True}, r"options.vae_tiling does not apply"),
    ("svd", {"compile_repeated_blocks": True}, r"'svd': options.compile_repeated_blocks does not apply"),
    ("cogvideox-5b", {"compile_repeated_blocks": True}, r"options.compile_repeated_blocks does not apply"),
    ("flux-dev", {"cache": {"kind": "magic"}}, r"options.cache needs kind: one of first_block, faster, pab"),
    ("flux-dev", {"cache": {"kind": "magcache"}}, r"magcache needs mag_ratios"),
    ("ltx-video", {"attention_backend": "flash9"}, r"options.attention_backend 'flash9' unknown"),
    ("ltx-video", {"offload": "model", "device": "cpu"}, r"options.offload model .* needs a GPU"),
    ("ltx-video", {"offload": "disk"}, r"options.offload 'disk' unknown"),
    ("ltx-video", {"vae_slicing": "yes"}, r"options.vae_slicing must be true or false"),
])
def test_bad_options_are_one_line_errors(name, options, message):
    with pytest.raises(GenerationError, match=message) as e:
        get_generator(name).resolve_options(options)
    assert "\n" not in str(e.value)


def test_attention_backends_match_diffusers():
    from diffusers.models.attention_dispatch import AttentionBackendName

    assert set(dp.ATTENTION_BACKENDS) <= {b.value for b in AttentionBackendName}


def test_run_options_apply_for_real(tiny_models, image):
    """A diffusers cache, fp8 weight storage and an attention backend run through the real hooks."""
    name = "wan2.1-t2v-1.3b"
    req = request_for(name, image)
    plain = make(name, tiny_models, num_inference_steps=2).generate(req).frames
    cached = make(name, tiny_models, {"cache": {"kind": "first_block", "threshold": 0.2}}, num_inference_steps=2)
    assert cached.generate(req).frames.shape == plain.shape
    pipe = cached.pipeline()
    assert pipe.transformer.is_cache_enabled
    fp8 = make(name, tiny_models, {"layerwise_fp8": True}, num_inference_steps=2)
    frames = fp8.generate(req).frames
    assert frames.shape == plain.shape and not np.array_equal(frames, plain)  # fp8 storage rounds the weights
    with pytest.raises(GenerationError, match=r"options.cache first_block has no field\(s\) treshold; known: threshold"):
        make(name, tiny_models, {"cache": {"kind": "first_block", "treshold": 0.1}}).generate(req)


# ---------------------------------------------------------------------------------------- check_request
@pytest.mark.parametrize("name, request_fields, params, message", [
    ("svd", {"prompt": "a cat"}, {}, r"^model 'svd' takes no prompt; remove `prompt:` from the case"),
    ("wan2.1-i2v-480p", {"audio": True}, {}, r"^model 'wan2.1-i2v-480p' takes no audio input; .*talking-head model"),
    ("wan2.1-t2v-1.3b", {"image": True}, {}, r"takes no image; remove `image:` .*text-to-video"),
    ("flux-schnell", {"negative_prompt": "blur"}, {}, r"takes no negative prompt"),
    ("wan2.1-i2v-480p", {"image": None}, {}, r"^model 'wan2.1-i2v-480p' needs an image; add `image:` to the case"),
    ("sdxl", {"prompt": ""}, {}, r"needs a prompt; add `prompt:`"),
    ("wan2.1-i2v-480p", {}, {"num_frames": 80}, r"num_frames must be 4k\+1, got 80; use 77 or 81"),
    ("ltx-video-i2v", {}, {"num_frames": 20}, r"num_frames must be 8k\+1, got 20; use 17 or 25"),
    ("cogvideox-5b-i2v", {}, {"num_frames": 57}, r"num_frames 57 is above the family's limit 49; lower num_frames"),
    ("wan2.1-t2v-1.3b", {}, {"num_frames": 100}, r"num_frames must be 4k\+1, got 100; use 81$"),
    ("ltx-video-i2v", {}, {"width": 700}, r"width and height must be multiples of 32, got 700x480; e.g. 704x480"),
    ("svd", {}, {"min_guidance_scale": 4.0}, r"min_guidance_scale 4.0 exceeds max_guidance_scale 3.0; swap them"),
    ("svd", {}, {"num_framez": 4}, r"unknown parameter\(s\) num_framez; known: .*num_frames"),
    ("svd", {}, {"num_frames": 0}, r"num_frames must be an integer >= 1, got 0"),
])
def test_check_request_refuses_before_loading(name, request_fields, params, message, image):
    cls = get_generator(name)
    fields = {"image": image if "image" in cls.requires else None,
              "prompt": "a cat" if "prompt" in cls.requires else ""}
    fields.update(request_fields)
    if fields.get("image") is True:
        fields["image"] = image
    if fields.pop("audio", None):
        fields["audio"] = Audio(np.ones(1600, np.float32) * 0.1, 16000)
    t0 = time.perf_counter()
    with pytest.raises(GenerationError, match=message) as e:
        cls.check_request(GenerationRequest(params=params, **fields))
    assert time.perf_counter() - t0 < FAIL_FAST_S and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------- weights
def test_uncached_hub_id_fails_fast_with_the_fetch_command(image, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    gen = get_generator("wan2.1-i2v-480p")(num_frames=5, width=32, height=32, num_inference_steps=1)
    t0 = time.perf_counter()
    with pytest.raises(GenerationError) as e:
        gen.generate(request_for("wan2.1-i2v-480p", image))
    assert time.perf_counter() - t0 < FAIL_FAST_S
    assert str(e.value) == ("wan2.1-i2v-480p: weights Wan-AI/Wan2.1-I2V-14B-480P-Diffusers not found locally; run "
                            "`workbench weights fetch wan2.1-i2v-480p` on a machine with network (or set model_id "
                            "to a local folder)")


def test_missing_or_incomplete_folders_are_one_line(tmp_path, image, tiny_models):
    with pytest.raises(GenerationError, match=r"^svd: weights .*no-such-model not found locally; point model_id"):
        make("svd", {"svd": tmp_path / "no-such-model"}).generate(request_for("svd", image))
    with pytest.raises(GenerationError, match=r"is not a diffusers pipeline folder \(no model_index.json\)"):
        make("svd", {"svd": tmp_path}).generate(request_for("svd", image))
    with pytest.raises(GenerationError, match=r"svd: could not load .*variant=fp16.*; check model_id / variant"):
        make("svd", tiny_models, variant="fp16").generate(request_for("svd", image))
    assert dp.weights_present(str(tiny_models["svd"])) and not dp.weights_present(str(tmp_path))


def test_pickled_weights_need_allow_pickle(tiny_models, tmp_path, image):
    import diffusers

    pickled = tmp_path / "pickled-flux"
    diffusers.DiffusionPipeline.from_pretrained(tiny_models["flux"]).save_pretrained(pickled, safe_serialization=False)
    # diffusers components (transformer, vae) are pickled now; transformers always writes safetensors
    assert not list((pickled / "transformer").glob("*.safetensors")) and list((pickled / "transformer").glob("*.bin"))
    assert not dp.weights_present(str(pickled)) and dp.weights_present(str(pickled), allow_pickle=True)
    with pytest.raises(GenerationError, match=r"flux-schnell: could not load .*allow_pickle: true"):
        make("flux-schnell", {"flux": pickled}).generate(request_for("flux-schnell", image))
    clip = make("flux-schnell", {"flux": pickled}, {"allow_pickle": True}).generate(request_for("flux-schnell", image))
    assert clip.num_frames == 1


def fake_hub_cache(root: Path, repo: str, checkpoint: Path, drop: str = "") -> Path:
    """A hub cache laid out as huggingface_hub writes it (refs/main -> snapshots/<commit>/...)."""
    commit = "0" * 40
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(checkpoint, repo_dir / "snapshots" / commit)
    if drop:
        for f in (repo_dir / "snapshots" / commit / drop).glob("*.safetensors"):
            f.unlink()
    return root


def test_hub_id_loads_from_the_local_hub_cache_offline(tiny_models, tmp_path):
    """The GPU-box path: the default hub id, found in the HF cache, loaded with no network."""
    repo = get_generator("wan2.1-t2v-1.3b").defaults["model_id"]
    cache = fake_hub_cache(tmp_path / "hub", repo, tiny_models["wan-t2v"])
    partial = fake_hub_cache(tmp_path / "partial", repo, tiny_models["wan-t2v"], drop="transformer")
    script = (
        "from workbench.models import get_generator, GenerationRequest\n"
        "g = get_generator('wan2.1-t2v-1.3b')\n"
        "print('available', g.weights_available())\n"
        "if g.weights_available():\n"
        "    c = g(num_frames=5, width=32, height=32, num_inference_steps=1).generate(GenerationRequest(prompt='a'))\n"
        "    print('frames', c.num_frames, c.size)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "available True" in out.stdout and "frames 5 (32, 32)" in out.stdout
    env["HF_HUB_CACHE"] = str(partial)  # model_index.json cached but no transformer weights: not available
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "available False" in out.stdout, out.stderr[-2000:]


# ------------------------------------------------------------------------------------------------ runner
def test_runner_end_to_end(tiny_models, image, tmp_path):
    Image.fromarray(image).save(tmp_path / "still.png")
    spec = {"name": "tiny-diffusers", "output": "run", "cases": [{"id": "still", "image": "still.png"}],
            "models": [{"name": "svd", "params": tiny_params("svd", tiny_models["svd"]),
                        "options": {"dtype": "fp32", "device": "cpu"}}],
            "seeds": [0], "metrics": ["temporal_flicker"]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    records = Runner(load_suite(tmp_path / "suite.yaml")).run_all()
    assert len(records) == 1
    rec = records[0]
    assert rec["status"] == "ok", rec.get("error")
    assert rec["clip"]["frames"] == 3 and (rec["clip"]["width"], rec["clip"]["height"]) == (64, 64)
    assert rec["options"]["dtype"] == "float32" and rec["options"]["device"] == "cpu"
    assert isinstance(rec["scores"].get("temporal_flicker"), float)
    stored = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines() if x.strip()]
    assert stored[-1]["job_id"] == rec["job_id"] and (tmp_path / "run" / rec["video"]).is_file()


def test_registry_lists_every_family_with_defaults():
    reg = registry()
    for spec in FAMILIES:
        info = reg[spec.name].describe()
        assert info["task"] == spec.task and info["hub_ids"][0] == spec.model_id == info["defaults"]["model_id"]
        assert info["weights_available"] is False  # no hub cache on this box, and the check never downloads
        if spec.task == I2V:
            assert "image" in info["requires"]
    svd = reg["svd"].defaults
    assert (svd["num_frames"], svd["fps"], svd["num_inference_steps"], svd["width"], svd["height"]) == (25, 7, 25, 1024, 576)
    assert (svd["min_guidance_scale"], svd["max_guidance_scale"], svd["motion_bucket_id"]) == (1.0, 3.0, 127)


def test_generate_leaves_inputs_it_does_not_take_unused(tiny_models, image):
    """A suite's case serves many models: check_request (strict) refuses the extra inputs up front, while
    generate itself leaves them unused, so the same clip comes out."""
    audio = Audio(np.ones(1600, np.float32) * 0.1, 16000)
    full = GenerationRequest(image=image, audio=audio, prompt="a cat", negative_prompt="blur", seed=2)
    gen = make("svd", tiny_models)
    with pytest.raises(GenerationError, match="takes no audio input"):
        type(gen).check_request(full)
    type(gen).check_request(full, strict=False)
    assert np.array_equal(gen.generate(full).frames, gen.generate(GenerationRequest(image=image, seed=2)).frames)


def test_text_to_image_record_points_at_its_png(tiny_models, tmp_path):
    """A text-to-image job's output is a PNG in the run folder, named by the record (the report shows it)."""
    spec = {"name": "t2i", "output": "run", "cases": [{"id": "fox", "prompt": "a red fox"}], "seeds": [0],
            "models": [{"name": "sdxl", "params": {"model_id": str(tiny_models["sdxl"]), "width": 32, "height": 32,
                                                   "num_inference_steps": 1}}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    (rec,) = Runner(load_suite(tmp_path / "suite.yaml")).run_all()
    assert rec["status"] == "ok", rec["error"]
    png = tmp_path / "run" / rec["image_out"]
    assert png.suffix == ".png" and png.read_bytes()[:4] == b"\x89PNG"
    assert Image.open(png).size == (32, 32)
    # the report shows the picture (runset.media_of reads image_out), never "clip file missing"
    from workbench.report import write_report

    html = write_report(tmp_path / "run", clips="link").read_text()
    page = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)  # the page as drawn, not the scripts
    assert f'<img src="{rec["image_out"]}"' in page and "clip file missing" not in page
