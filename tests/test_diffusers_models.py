"""Diffusers adapters, run for real on tiny random-weight checkpoints built once per session (no download)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from workbench.experiment import Runner
from workbench.models import GenerationError, GenerationRequest, get_generator, registry
from workbench.models import diffusers_i2v
from workbench.models.tiny import BUILDERS, build_tiny
from workbench.suite import load_suite

TINY = {"num_frames": 4, "width": 64, "height": 64, "num_inference_steps": 2}


@pytest.fixture(scope="session")
def tiny_svd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("svd", tmp_path_factory.mktemp("tiny") / "svd")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    y, x = np.mgrid[0:80, 0:120]
    return np.stack([x * 2, y * 3, (x + y) % 256], -1).astype(np.uint8)


def svd(model_id: Path | str, **params):
    return get_generator("svd")(model_id=str(model_id), **{**TINY, **params})


def test_registry_lists_svd_with_defaults():
    cls = registry()["svd"]
    info = cls.describe()
    assert info["task"] == "image-to-video" and info["requires"] == ["image"]
    d = info["defaults"]
    assert d["model_id"] == "stabilityai/stable-video-diffusion-img2vid-xt"
    assert (d["num_frames"], d["fps"], d["num_inference_steps"]) == (14, 7, 25)
    assert (d["min_guidance_scale"], d["max_guidance_scale"]) == (1.0, 3.0)
    assert (d["motion_bucket_id"], d["noise_aug_strength"], d["decode_chunk_size"]) == (127, 0.02, 8)
    assert (d["width"], d["height"], d["dtype"], d["device"]) == (1024, 576, "auto", "auto")
    assert info["weights_available"] is False  # no hub cache of SVD on this box, and the check never downloads


def test_weights_present_for_local_folders(tiny_svd, tmp_path):
    assert diffusers_i2v.weights_present(str(tiny_svd))
    assert not diffusers_i2v.weights_present(str(tmp_path))  # a folder without model_index.json
    assert not diffusers_i2v.weights_present(str(tmp_path / "nope"))
    assert "svd" in BUILDERS


def test_generates_frames_size_fps_and_progress(tiny_svd, image):
    calls = []
    clip = svd(tiny_svd, fps=9).generate(GenerationRequest(image=image, seed=3),
                                         progress=lambda i, n: calls.append((i, n)))
    assert clip.num_frames == 4 and clip.size == (64, 64) and clip.fps == 9
    assert clip.frames.dtype == np.uint8 and clip.frames.std() > 1.0  # real pipeline output, not a constant
    assert calls == [(1, 2), (2, 2)]


def test_deterministic_per_seed_and_differs_across_seeds(tiny_svd, image):
    gen = svd(tiny_svd)
    a = gen.generate(GenerationRequest(image=image, seed=0)).frames
    b = gen.generate(GenerationRequest(image=image, seed=0)).frames
    c = gen.generate(GenerationRequest(image=image, seed=1)).frames
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 0.5


def test_pipeline_loads_once_per_checkpoint(tiny_svd, image):
    def cached() -> list:
        return [pipe for key, pipe in diffusers_i2v._cache.items() if key[1] == str(tiny_svd.resolve())]

    svd(tiny_svd).generate(GenerationRequest(image=image, seed=0))
    first = cached()
    svd(tiny_svd, num_frames=3).generate(GenerationRequest(image=image, seed=5))  # a new job, same weights
    assert len(first) == 1 and cached() == first and cached()[0] is first[0]


def test_progress_can_stop_generation(tiny_svd, image):
    """The runner cancels by raising from the progress callback: the pipeline must stop there."""
    calls = []

    def stop(i: int, n: int) -> None:
        calls.append(i)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        svd(tiny_svd, num_inference_steps=3).generate(GenerationRequest(image=image), progress=stop)
    assert calls == [1]


def test_unknown_param_is_an_error():
    with pytest.raises(GenerationError, match=r"unknown parameter\(s\) num_framez; known: .*num_frames"):
        get_generator("svd")(num_framez=4)


@pytest.mark.parametrize("params, message", [
    ({"width": 60}, r"svd: width and height must be multiples of 8, got 60x64"),
    ({"num_frames": 0}, r"svd: num_frames must be an integer >= 1, got 0"),
    ({"dtype": "float8"}, r"unknown dtype 'float8'"),
    ({"min_guidance_scale": 4.0}, r"min_guidance_scale 4.0 exceeds max_guidance_scale 3.0"),
])
def test_bad_params_are_one_line_errors(tiny_svd, image, params, message):
    with pytest.raises(GenerationError, match=message) as e:
        svd(tiny_svd, **params).generate(GenerationRequest(image=image))
    assert "\n" not in str(e.value)


def test_missing_model_folder_is_one_line(tmp_path, image):
    missing = tmp_path / "no-such-model"
    with pytest.raises(GenerationError) as e:
        svd(missing).generate(GenerationRequest(image=image))
    assert str(e.value) == (f"svd: weights {missing} not found locally; run on a box with hub access or set "
                            "model_id to a local folder (workbench.models.tiny builds a tiny one for tests)")


def test_uncached_hub_id_offline_is_one_line(image, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GenerationError, match=r"^svd: weights stabilityai/stable-video-diffusion-img2vid-xt not "
                                              r"found locally; run on a box with hub access"):
        get_generator("svd")(**TINY).generate(GenerationRequest(image=image))


def test_missing_variant_names_the_fix(tiny_svd, image):
    with pytest.raises(GenerationError, match=r"svd: could not load .*variant=fp16.*; check model_id / variant"):
        svd(tiny_svd, variant="fp16").generate(GenerationRequest(image=image))


def fake_hub_cache(root: Path, repo: str, checkpoint: Path, with_unet: bool = True) -> Path:
    """A hub cache laid out as huggingface_hub writes it (refs/main -> snapshots/<commit>/...)."""
    commit = "0" * 40
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(checkpoint, repo_dir / "snapshots" / commit)
    if not with_unet:
        for f in (repo_dir / "snapshots" / commit / "unet").glob("diffusion_pytorch_model*"):
            f.unlink()
    return root


def test_hub_id_loads_from_the_local_hub_cache_offline(tiny_svd, tmp_path):
    """The GPU-box path: the default hub id, found in the HF cache, loaded with no network."""
    repo = get_generator("svd").defaults["model_id"]
    cache = fake_hub_cache(tmp_path / "hub", repo, tiny_svd)
    partial = fake_hub_cache(tmp_path / "partial", repo, tiny_svd, with_unet=False)
    script = (
        "import numpy as np, os\n"
        "from workbench.models import get_generator, GenerationRequest, GenerationError\n"
        "svd = get_generator('svd')\n"
        "print('available', svd.weights_available())\n"
        "if svd.weights_available():\n"
        "    c = svd(num_frames=3, width=64, height=64, num_inference_steps=1).generate(\n"
        "        GenerationRequest(image=np.full((40, 40, 3), 90, np.uint8), seed=1))\n"
        "    print('frames', c.num_frames, c.size)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "available True" in out.stdout and "frames 3 (64, 64)" in out.stdout
    env["HF_HUB_CACHE"] = str(partial)  # model_index.json cached but no UNet weights: not available
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "available False" in out.stdout, out.stderr[-2000:]


def test_folder_without_model_index(tmp_path, image):
    with pytest.raises(GenerationError, match=r"is not a diffusers pipeline folder \(no model_index.json\)"):
        svd(tmp_path).generate(GenerationRequest(image=image))


def test_needs_an_image(tiny_svd):
    with pytest.raises(GenerationError, match="needs an image"):
        svd(tiny_svd).generate(GenerationRequest(image=None))


def test_runner_end_to_end(tiny_svd, image, tmp_path):
    Image.fromarray(image).save(tmp_path / "still.png")
    spec = {"name": "tiny-svd", "output": "run", "cases": [{"id": "still", "image": "still.png"}],
            "models": [{"name": "svd", "params": {"model_id": str(tiny_svd), **TINY}}],
            "seeds": [0], "metrics": ["temporal_flicker"]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    records = Runner(load_suite(tmp_path / "suite.yaml")).run_all()
    assert len(records) == 1
    rec = records[0]
    assert rec["status"] == "ok", rec.get("error")
    assert rec["clip"]["frames"] == 4 and (rec["clip"]["width"], rec["clip"]["height"]) == (64, 64)
    assert rec["clip"]["fps"] == 7
    assert isinstance(rec["scores"].get("temporal_flicker"), float)
    stored = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines() if x.strip()]
    assert stored[-1]["job_id"] == rec["job_id"] and (tmp_path / "run" / rec["video"]).is_file()
