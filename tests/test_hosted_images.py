"""Hosted text-to-image models (Imagen 4 and Gemini 2.5 Flash Image through google-genai, Seedream 4 and
FLUX through fal-client), each official client against a local server that speaks its provider's
protocol (tests/fakes/): the picture chained by `image_from` into a model-free image-to-video model
(kenburns) runs end to end offline, with cost; a re-run or a run resumed after a crash sends no new paid
request; the dry run prices them; a missing key is one line; a bad answer is a one-line job error.
Nothing reaches the network, and no key reaches a file."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.fakes.fal import FakeFal
from tests.fakes.google_image import FakeGoogleImage
from tests.fakes.server import FakeServer
from workbench.experiment import Runner
from workbench.media import Clip
from workbench.suite import load_suite

FAST = {"poll_s": 0.02, "backoff_s": 0.01, "backoff_cap_s": 0.05, "timeout_s": 20}
GOOGLE_KEY = "AIzaFAKE-image-key-0123456789"
FAL_KEY = "falid-77aa:falsecret-image-5e4d3c"
CHAIN = {"name": "kenburns", "label": "animated", "params": {"seconds": 1.0, "fps": 8, "width": 64, "height": 64}}


@dataclass
class Case:
    model: str
    fake: Callable[..., FakeServer]
    key_env: str
    url_env: str
    key: str
    submit: tuple[str, str]  # (method, path pattern) of a paid request
    usd: float
    color: tuple[int, int, int]  # the fake's picture


CASES = {
    "imagen": Case("imagen-4", FakeGoogleImage, "GOOGLE_API_KEY", "WORKBENCH_GOOGLE_IMAGE_BASE_URL", GOOGLE_KEY,
                   ("POST", r".*:predict"), 0.04, (200, 30, 90)),
    "gemini": Case("gemini-2.5-flash-image", FakeGoogleImage, "GOOGLE_API_KEY", "WORKBENCH_GOOGLE_IMAGE_BASE_URL",
                   GOOGLE_KEY, ("POST", r".*:generateContent"), 0.039, (200, 30, 90)),
    "seedream": Case("fal-seedream-4", FakeFal, "FAL_KEY", "WORKBENCH_FAL_BASE_URL", FAL_KEY,
                     ("POST", r"/fal-ai/bytedance/seedream/.*"), 0.03, (30, 160, 220)),
    "flux": Case("fal-flux-dev", FakeFal, "FAL_KEY", "WORKBENCH_FAL_BASE_URL", FAL_KEY,
                 ("POST", r"/fal-ai/flux/dev"), 0.025, (30, 160, 220)),
}


@pytest.fixture(params=sorted(CASES))
def provider(request, monkeypatch):
    case = CASES[request.param]
    with case.fake() as server:
        monkeypatch.delenv("GEMINI_API_KEY", raising=False)
        monkeypatch.setenv(case.key_env, case.key)
        monkeypatch.setenv(case.url_env, server.url)
        yield case, server


@pytest.fixture
def both(monkeypatch):
    """Both providers' fakes, keys and base URLs."""
    with FakeGoogleImage() as google, FakeFal() as fal:
        monkeypatch.delenv("GEMINI_API_KEY", raising=False)
        for k, v in {"GOOGLE_API_KEY": GOOGLE_KEY, "WORKBENCH_GOOGLE_IMAGE_BASE_URL": google.url,
                     "FAL_KEY": FAL_KEY, "WORKBENCH_FAL_BASE_URL": fal.url}.items():
            monkeypatch.setenv(k, v)
        yield {"google": google, "fal": fal}


def make_suite(folder: Path, models: list, cases: list | None = None, **extra: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cases = cases or [{"id": "portrait", "prompt": "a portrait of a woman, studio light"}]
    spec = {"name": "images", "cases": cases, "models": models, "metrics": ["temporal_flicker"],
            "tracking": {"html_report": False}, **extra}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def chained(model: str, **params: Any) -> list[dict]:
    return [{"name": model, "options": dict(FAST), **({"params": params} if params else {})},
            {**CHAIN, "image_from": model}]


def run(path: Path, out: Path) -> list[dict]:
    return list(Runner(load_suite(path), out).run())


def by_model(records: list[dict]) -> dict[str, dict]:
    return {r["model"]: r for r in records}


def cli(*args: str):
    from workbench.cli import app

    return CliRunner().invoke(app, list(args))


# --------------------------------------------------------------------------------------------------
def test_chained_into_image_to_video_with_cost_and_no_second_payment(provider, tmp_path):
    case, server = provider
    path = make_suite(tmp_path / "s", chained(case.model))
    out = tmp_path / "run"
    recs = by_model(run(path, out))
    still, clip = recs[case.model], recs["animated"]
    assert still["status"] == "ok", still["error"]
    assert clip["status"] == "ok", clip["error"]
    # the picture: a text-to-image record with its image, its remote job and its cost
    assert still["task"] == "text-to-image" and (out / still["image_out"]).is_file() and not still["video"]
    assert still["remote"]["job_id"] and still["remote"]["status"] == "completed" and not still["remote"]["resumed"]
    assert still["cost"]["usd"] == pytest.approx(case.usd) and still["cost"]["source"] == "estimate"
    # the image-to-video job animated that picture (the fake's flat colour), not anything else
    assert clip["image_from"] == case.model and clip["clip"]["frames"] == 8
    first = next(Clip.open(out / clip["video"]).iter_frames()).reshape(-1, 3).mean(axis=0)
    assert np.abs(first - np.array(case.color)).max() < 12, first
    assert server.count(*case.submit) == 1
    # a re-run of the finished suite asks nothing
    assert run(path, out) == [] and server.count(*case.submit) == 1
    # paid, then killed before the records were written: the stored job is picked up, not paid again
    (out / "results.jsonl").unlink()
    for p in (out / "clips").iterdir():
        p.unlink()
    recs = by_model(run(path, out))
    assert recs[case.model]["status"] == "ok" and recs[case.model]["remote"]["resumed"] is True
    assert recs["animated"]["status"] == "ok"
    assert server.count(*case.submit) == 1
    if isinstance(server, FakeGoogleImage):  # a synchronous answer: killed after the picture, before its handle
        (out / "results.jsonl").unlink()
        for p in (out / "clips").glob("*"):
            p.unlink()
        (out / "claims" / f"{recs[case.model]['clip_id']}.remote.json").unlink()
        rec = by_model(run(path, out))[case.model]
        assert rec["status"] == "ok" and any("earlier paid answer" in w for w in rec["warnings"])
        assert server.count(*case.submit) == 1
    # no key in any file the run wrote
    for p in out.rglob("*"):
        if p.is_file():
            assert case.key.encode() not in p.read_bytes(), p
            for part in case.key.split(":"):
                assert part.encode() not in p.read_bytes(), p


def test_dry_run_plans_and_prices_hosted_images(both, tmp_path):
    models = [{"name": "imagen-4"}, {"name": "gemini-2.5-flash-image"}, {"name": "fal-seedream-4"},
              {"name": "fal-flux-dev", "params": {"width": 2048, "height": 2048}},
              {**CHAIN, "image_from": "fal-seedream-4"}]
    path = make_suite(tmp_path / "s", models, budget=1.0)
    res = cli("run", str(path), "--out", str(tmp_path / "run"), "--dry-run")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "5 of 5 jobs to run" in out and "portrait / imagen-4 / seed 0" in out
    assert "0.04 USD/image" in out and "0.039 USD/image" in out and "0.03 USD/image" in out
    assert "0.025 USD/megapixel" in out and "0.10 USD" in out  # 2048x2048 is 4 megapixels
    assert "0.21 USD" in out and "animated" in out and "local" in out  # 0.04 + 0.039 + 0.03 + 0.10
    assert both["google"].submissions == 0 and both["fal"].submissions == 0
    assert not (tmp_path / "run" / "results.jsonl").exists()
    # what `workbench models` and `providers check` say about them
    rows = {r["name"]: r for r in json.loads(cli("models", "--json").stdout)}
    for name in ("imagen-4", "imagen-4-fast", "imagen-4-ultra", "gemini-2.5-flash-image", "fal-seedream-4",
                 "fal-flux-dev", "fal-flux-pro-1.1"):
        assert rows[name]["task"] == "text-to-image" and rows[name]["hosted"] and rows[name]["key_present"]
        assert rows[name]["price"]["source"] and rows[name]["estimate_default"] > 0
    assert "image" in rows["gemini-2.5-flash-image"]["accepts"] and "image" in rows["fal-seedream-4"]["accepts"]
    assert "image" not in rows["imagen-4"]["accepts"]
    provs = {r["provider"]: r for r in json.loads(cli("providers", "check", "--json").stdout)}
    assert provs["google-image"]["key_env"] == "GOOGLE_API_KEY" and "imagen-4" in provs["google-image"]["models"]
    assert GOOGLE_KEY not in json.dumps(provs)


@pytest.mark.parametrize("model,env", [("imagen-4", "GOOGLE_API_KEY"), ("fal-flux-pro-1.1", "FAL_KEY")])
def test_missing_key_is_a_one_line_refusal(both, tmp_path, monkeypatch, model, env):
    monkeypatch.delenv(env)
    path = make_suite(tmp_path / "s", chained(model))
    res = cli("run", str(path), "--out", str(tmp_path / "run"))
    assert res.exit_code == 2 and env in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert both["google"].submissions == 0 and both["fal"].submissions == 0


BAD = [  # (provider case, prompt, injected status or None, error_type, words in the error)
    ("imagen", "REFUSE this", None, "refused", "safety filter"),
    ("imagen", "EMPTY", None, "provider", "no image"),
    ("gemini", "REFUSE this", None, "refused", "blocked (PROHIBITED_CONTENT)"),
    ("gemini", "IMGSAFETY", None, "refused", "IMAGE_SAFETY"),
    ("gemini", "TEXTONLY", None, "provider", "no image"),
    ("flux", "NSFW please", None, "refused", "safety checker"),
    ("seedream", "REFUSE this", None, "refused", "content checker"),
    ("imagen", "a portrait", 400, "provider", "HTTP 400"),
    ("gemini", "a portrait", 503, "provider", "after 2 tries"),
    ("flux", "a portrait", 422, "provider", "HTTP 422"),
    ("seedream", "a portrait", 500, "provider", "after 2 tries"),
]


@pytest.mark.parametrize("which,prompt,status,error_type,words", BAD,
                         ids=[f"{b[0]}-{b[2] or b[1].split()[0]}" for b in BAD])
def test_a_bad_answer_is_a_one_line_job_error(monkeypatch, tmp_path, which, prompt, status, error_type, words):
    case = CASES[which]
    with case.fake() as server:
        monkeypatch.setenv(case.key_env, case.key)
        monkeypatch.setenv(case.url_env, server.url)
        if status:
            server.inject(*case.submit, status, status, body={"error": {"code": status, "message": "bad request",
                                                                        "status": "INVALID_ARGUMENT"},
                                                              "detail": "bad request"})
        models = [{"name": case.model, "options": {**FAST, "retries": 1}}, {**CHAIN, "image_from": case.model}]
        path = make_suite(tmp_path / "s", models, cases=[{"id": "portrait", "prompt": prompt}])
        recs = by_model(run(path, tmp_path / "run"))
    still = recs[case.model]
    assert still["status"] == "error" and still["error_type"] == error_type, still["error"]
    assert words in still["error"] and "\n" not in still["error"] and "Traceback" not in still["error"]
    assert not still.get("traceback")
    assert case.key not in json.dumps(still)
    # the chained job says why it has no picture, in one line
    clip = recs["animated"]
    assert clip["status"] == "error" and "image_from" in clip["error"] and "made no image" in clip["error"]


def test_a_transient_fault_is_retried_then_the_picture_is_made(provider, tmp_path):
    case, server = provider
    server.inject(*case.submit, 503, headers={"Retry-After": "0"})
    recs = by_model(run(make_suite(tmp_path / "s", chained(case.model)), tmp_path / "run"))
    assert recs[case.model]["status"] == "ok" and recs[case.model]["remote"]["retries"] == 1
    assert server.count(*case.submit) == 2 and recs["animated"]["status"] == "ok"


def test_a_case_image_is_the_reference_of_the_models_that_take_one(both, tmp_path, repo_root):
    """Seedream goes to its edit endpoint with the image, Gemini gets it inline; Imagen and FLUX take none."""
    import shutil

    folder = tmp_path / "s"
    folder.mkdir()
    shutil.copy(repo_root / "data" / "images" / "portrait.png", folder / "p.png")
    models = [{"name": m, "options": dict(FAST)} for m in ("fal-seedream-4", "gemini-2.5-flash-image", "imagen-4",
                                                           "fal-flux-dev")]
    cases = [{"id": "edit", "image": "p.png", "prompt": "the same woman, smiling"}]
    recs = by_model(run(make_suite(folder, models, cases=cases), tmp_path / "run"))
    assert all(r["status"] == "ok" for r in recs.values()), {k: r["error"] for k, r in recs.items()}
    fal = {r["app"]: r["args"] for r in both["fal"].requests_by_id.values()}
    assert fal["fal-ai/bytedance/seedream/v4/edit"]["image_urls"][0].startswith("data:image/png;base64,")
    assert "image_urls" not in fal["fal-ai/flux/dev"] and "image_url" not in fal["fal-ai/flux/dev"]
    assert recs["fal-seedream-4"]["remote"]["model"] == "fal-ai/bytedance/seedream/v4/text-to-image"
    gemini = next(b for b in both["google"].bodies if "contents" in b)
    assert any("inlineData" in p for p in gemini["contents"][0]["parts"])
    imagen = next(b for b in both["google"].bodies if "instances" in b)
    assert set(imagen["instances"][0]) == {"prompt"}
    # the reference image is part of what the picture is: it is in the record's inputs
    assert recs["fal-seedream-4"]["inputs"]["image"]["sha256"]


def test_imagen_sends_a_seed_only_without_the_watermark(both, tmp_path):
    models = [{"name": "imagen-4", "options": dict(FAST), "params": {"add_watermark": False, "aspect_ratio": "9:16"}}]
    recs = run(make_suite(tmp_path / "s", models), tmp_path / "run")
    assert recs[0]["status"] == "ok", recs[0]["error"]
    params = both["google"].bodies[0]["parameters"]
    assert params["addWatermark"] is False and params["seed"] >= 1 and params["aspectRatio"] == "9:16"
    # a value Imagen cannot take fails its job in one line before anything is sent (nothing paid)
    bad = make_suite(tmp_path / "b", [{"name": "imagen-4", "options": dict(FAST), "params": {"aspect_ratio": "2:1"}}])
    rec = run(bad, tmp_path / "run2")[0]
    assert rec["status"] == "error" and "aspect_ratio '2:1'" in rec["error"] and "\n" not in rec["error"]
    assert both["google"].submissions == 1
