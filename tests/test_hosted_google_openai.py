"""Hosted Veo (google-genai), Sora (openai), Runway (runwayml) and Luma (lumaai): each official client
against a local fake of its provider's protocol (tests/fakes/): submit -> poll -> download, 429 and
500 retried, a content-policy refusal recorded (not retried), a kill -9 while polling then a re-run
submits exactly once, and the key appears in no file the run writes. Nothing reaches the network."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from tests.fakes.luma import FakeLuma
from tests.fakes.runway import FakeRunway
from tests.fakes.server import FakeServer
from tests.fakes.sora import FakeSora
from tests.fakes.veo import FakeVeo
from workbench.models.base import GenerationRequest, get_generator
from workbench.models.hosted.base import ProviderError, Refused
from workbench.store import RemoteJob

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "data" / "images" / "landscape.png"
FAST = {"poll_s": 0.02, "backoff_s": 0.01, "backoff_cap_s": 0.05}


@dataclass
class Case:
    """One provider under test: its fake, the env that points the client at it, a model, the routes."""

    model: str
    fake: Callable[..., FakeServer]
    key_env: str
    url_env: str
    url_suffix: str
    submit: tuple[str, str]  # (method, path pattern) of a submission
    status: tuple[str, str]  # of a status call
    key: str
    params: dict[str, Any]


CASES = {
    "veo": Case("veo-3-i2v", FakeVeo, "GOOGLE_API_KEY", "WORKBENCH_VEO_BASE_URL", "",
                ("POST", r".*:predictLongRunning"), ("POST", r".*:fetchPredictOperation"),
                "AIzaFAKE-veo-key-0123456789", {"duration": 4}),
    "sora": Case("sora-2-i2v", FakeSora, "OPENAI_API_KEY", "WORKBENCH_OPENAI_BASE_URL", "/v1",
                 ("POST", r"/v1/videos"), ("GET", r"/v1/videos/[\w\-]+"), "sk-FAKE-sora-key-0123456789", {}),
    "runway": Case("runway-gen4-turbo-i2v", FakeRunway, "RUNWAYML_API_SECRET", "WORKBENCH_RUNWAY_BASE_URL", "",
                   ("POST", r"/v1/image_to_video"), ("GET", r"/v1/tasks/[\w\-]+"), "key_FAKE-runway-0123456789", {}),
    "luma": Case("luma-ray-2-i2v", FakeLuma, "LUMAAI_API_KEY", "WORKBENCH_LUMA_BASE_URL", "",
                 ("POST", r"/generations/video"), ("GET", r"/generations/[\w\-]+"), "luma-FAKE-key-0123456789",
                 {"image_url": "https://example.com/landscape.png"}),
}


@pytest.fixture(params=sorted(CASES))
def provider(request, monkeypatch):
    """(case, started fake) with the key and base URL in the environment."""
    case = CASES[request.param]
    server = case.fake().start()
    monkeypatch.setenv(case.key_env, case.key)
    monkeypatch.setenv(case.url_env, server.url + case.url_suffix)
    yield case, server
    server.release()
    server.stop()


def _request(folder: Path, clip_id: str, prompt: str = "a slow pan across the hills") -> GenerationRequest:
    img = np.zeros((90, 160, 3), np.uint8)
    img[:, :, 1] = np.linspace(0, 255, 160, dtype=np.uint8)[None, :]
    return GenerationRequest(image=img, prompt=prompt, seed=3, remote=RemoteJob(folder / "claims", clip_id))


def _gen(case: Case, **options: float):
    return get_generator(case.model)(options={**FAST, **options}, **case.params)


def test_submit_poll_download(provider, tmp_path):
    case, server = provider
    server.polls_to_finish = 2
    req = _request(tmp_path, "c1")
    clip = _gen(case).generate(req)
    assert clip.size == (64, 36) and clip.fps == pytest.approx(8.0)
    info = req.remote.info
    assert info["remote"]["status"] == "completed" and info["remote"]["job_id"]
    assert info["remote"]["provider"] == get_generator(case.model).provider
    assert server.submissions == 1 and server.count(*case.status) >= 2
    assert info["cost"]["usd"] is not None and info["cost"]["usd"] > 0  # estimate or charged, in USD
    # the provider handed back another clip than asked: kept, with a warning naming the actual values
    assert any("returned another clip than asked" in w for w in info["warnings"])
    state = json.loads((tmp_path / "claims" / "c1.remote.json").read_text())
    assert state["handle"]["id"] == info["remote"]["job_id"] and state["verified"]
    assert case.key in server.keys_seen
    # a second call for the same clip polls the stored job again: still one submission
    again = _request(tmp_path, "c1")
    _gen(case).generate(again)
    assert server.submissions == 1 and again.remote.info["remote"]["resumed"]


@pytest.mark.parametrize("status", [429, 500])
def test_transient_faults_are_retried(provider, tmp_path, status):
    case, server = provider
    server.inject(*case.submit, status)
    server.inject(*case.status, status, headers={"Retry-After": "0"})
    req = _request(tmp_path, f"t{status}")
    _gen(case).generate(req)
    assert server.submissions == 1 and server.count(*case.submit) == 2
    assert req.remote.info["remote"]["retries"] == 2


def test_retries_are_bounded(provider, tmp_path):
    case, server = provider
    server.inject(*case.submit, 503, 503, 503)
    with pytest.raises(ProviderError, match="after 3 tries"):
        _gen(case, retries=2).generate(_request(tmp_path, "bounded"))
    assert server.submissions == 0 and server.count(*case.submit) == 3


def test_refusal_is_recorded_not_retried(provider, tmp_path):
    case, server = provider
    req = _request(tmp_path, "r1", prompt="REFUSE this")
    with pytest.raises(Refused) as err:
        _gen(case).generate(req)
    assert err.value.error_type == "refused" and "refused by" in str(err.value)
    assert server.submissions == 1 and server.count(*case.submit) == 1
    state = json.loads((tmp_path / "claims" / "r1.remote.json").read_text())
    assert state["status"] == "refused" and state["error"]


def test_refusal_at_submit(monkeypatch, tmp_path):
    """Sora refuses some prompts at submit (a 400 naming moderation): recorded as a refusal, not retried."""
    with FakeSora() as server:
        monkeypatch.setenv("OPENAI_API_KEY", CASES["sora"].key)
        monkeypatch.setenv("WORKBENCH_OPENAI_BASE_URL", server.url + "/v1")
        with pytest.raises(Refused, match="moderation_blocked"):
            _gen(CASES["sora"]).generate(_request(tmp_path, "b1", prompt="BLOCK this"))
        assert server.count("POST", r"/v1/videos") == 1


def test_veo_request_shape_and_costs(monkeypatch, tmp_path):
    """What Veo is sent (inline image, parameters) and the audio price rule."""
    with FakeVeo() as server:
        monkeypatch.setenv("GOOGLE_API_KEY", CASES["veo"].key)
        monkeypatch.setenv("WORKBENCH_VEO_BASE_URL", server.url)
        cls = get_generator("veo-3-i2v")
        req = _request(tmp_path, "v1")
        req.negative_prompt = "blur"
        cls(options=FAST, duration=5, generate_audio=True).generate(req)
        (op,) = server.ops.values()
        assert op["instance"]["image"]["mimeType"] == "image/png" and op["instance"]["prompt"]
        p = op["parameters"]
        assert p["durationSeconds"] in (4, 6) and p["aspectRatio"] == "16:9" and p["generateAudio"] is True
        assert p["negativePrompt"] == "blur" and p["sampleCount"] == 1 and p["resolution"] == "720p"
        assert req.remote.info["cost"]["rule"].startswith("0.4 USD/second")
    assert cls.estimate_cost({**cls.defaults, "duration": 8})[0] == pytest.approx(1.6)
    assert cls.estimate_cost({**cls.defaults, "duration": 8, "generate_audio": True})[0] == pytest.approx(3.2)


def test_runway_charge_from_the_task(monkeypatch, tmp_path):
    """Runway's finished task says what it cost in credits: the record's charge, in USD at 0.01 a credit."""
    case = CASES["runway"]
    with FakeRunway() as server:
        monkeypatch.setenv(case.key_env, case.key)
        monkeypatch.setenv(case.url_env, server.url)
        req = _request(tmp_path, "rc")
        _gen(case).generate(req)
    cost = req.remote.info["cost"]
    assert cost["source"] == "api" and cost["currency"] == "credits" and cost["charged"] == 25
    assert cost["usd"] == pytest.approx(0.25)


def test_key_missing_and_luma_needs_an_image_url(monkeypatch, tmp_path):
    from workbench.models.hosted.base import KeyMissing
    from workbench.models.base import GenerationError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(KeyMissing, match="OPENAI_API_KEY"):
        get_generator("sora-2-i2v")(options=FAST).generate(_request(tmp_path, "k"))
    luma = get_generator("luma-ray-2-i2v")
    assert luma.needs_params == ("image_url",)
    with pytest.raises(GenerationError, match="image_url"):
        luma.check_request(_request(tmp_path, "l"), dict(luma.defaults))
    with pytest.raises(GenerationError, match="size"):
        get_generator("sora-2-i2v").check_request(_request(tmp_path, "s"), {"size": "640x480"})


# --------------------------------------------------------------------------------------------------
# kill -9 while polling, then a re-run: one submission per job, and no key in any file the run wrote
# --------------------------------------------------------------------------------------------------
def _suite(tmp_path: Path, case: Case) -> Path:
    params = json.dumps(case.params)
    options = json.dumps({**FAST, "poll_s": 0.05})
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"name: hosted-{case.model}\n"
        f"cases:\n  - {{id: land, image: {IMAGE}, prompt: \"a slow pan\"}}\n"
        f"models:\n  - {{name: {case.model}, params: {params}, options: {options}}}\n"
        "seeds: [0]\nmetrics: [temporal_flicker]\ntracking: {wandb: false, html_report: true}\n")
    return suite


def _run(suite: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workbench", "run", str(suite), "--out", str(out)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_kill_while_polling_then_rerun_submits_once(provider, tmp_path):
    case, server = provider
    env = {**os.environ, case.key_env: case.key, case.url_env: server.url + case.url_suffix,
           "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    suite, out = _suite(tmp_path, case), tmp_path / "run"
    server.hold.set()  # the job stays in progress
    proc = _run(suite, out, env)
    deadline = time.monotonic() + 60
    while server.count(*case.status) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read()
    assert server.submissions == 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    claims = list((out / "claims").glob("*.remote.json"))
    assert len(claims) == 1 and json.loads(claims[0].read_text())["handle"]["id"]

    server.release()
    proc = _run(suite, out, env)
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, log
    assert server.submissions == 1  # the re-run polled the stored job, it did not submit again
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert records[-1]["status"] == "ok" and records[-1]["remote"]["resumed"] is True
    assert records[-1]["cost"]["usd"] > 0

    if case.model == "veo-3-i2v":  # (one provider is enough) a finished suite: nothing submitted or polled
        polls = server.count(*case.status)
        proc = _run(suite, out, env)
        proc.communicate(timeout=120)
        assert proc.returncode == 0 and server.submissions == 1 and server.count(*case.status) == polls

    assert case.key in server.keys_seen
    for f in out.rglob("*"):
        if f.is_file():
            assert case.key.encode() not in f.read_bytes(), f"the key leaked into {f.relative_to(out)}"
    assert case.key not in log


def test_veo_gemini_backend_on_a_vertex_only_client(monkeypatch, tmp_path):
    """google-genai 3.x runs Veo on Vertex AI only: asking for the Gemini API says so in one line."""
    import google.genai

    if int(google.genai.__version__.split(".")[0]) < 3:
        pytest.skip("this google-genai still has the Gemini API path")
    with FakeVeo() as server:
        monkeypatch.setenv("GOOGLE_API_KEY", CASES["veo"].key)
        monkeypatch.setenv("WORKBENCH_VEO_BASE_URL", server.url)
        monkeypatch.setenv("WORKBENCH_VEO_BACKEND", "gemini")
        with pytest.raises(ProviderError, match="Vertex AI only"):
            _gen(CASES["veo"]).generate(_request(tmp_path, "g"))
        assert server.submissions == 0


def test_veo_retries_a_refused_connection(monkeypatch, tmp_path):
    """google-genai raises its vendored httpx's ConnectError (`httpx2`), which was read as fatal: Veo never
    retried a connection error. A connection that never opened sent nothing: retried, bounded."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("GOOGLE_API_KEY", CASES["veo"].key)
    monkeypatch.setenv("WORKBENCH_VEO_BASE_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(ProviderError, match=r"submit failed after 3 tries: ConnectError"):
        _gen(CASES["veo"], retries=2).generate(_request(tmp_path, "conn"))


@pytest.mark.parametrize("model, retried", [("veo-3-i2v", False), ("fal-kling-2.1-standard-i2v", False),
                                            ("hedra-kling-2.1-master", True), ("sora-2-i2v", True)])
def test_a_submit_that_may_have_reached_the_provider_is_retried_only_when_idempotent(model, retried):
    """A read timeout after the request left may have started a job: a provider without an idempotency
    key is not sent it again (it would bill twice), and the error says why; status calls always retry."""
    import httpx

    from workbench.models.hosted.base import RetryPolicy, transport_fault

    assert transport_fault(httpx.ConnectError("refused")).sent is False
    assert transport_fault(httpx.ReadTimeout("slow")).sent is True
    gen = get_generator(model)()
    gen._policy = RetryPolicy(retries=2, base_s=0.0, cap_s=0.0)
    calls = []

    def boom():
        calls.append(1)
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(ProviderError) as err:
        gen._call(boom, "submit")
    assert len(calls) == (3 if retried else 1)
    assert ("not retried" in str(err.value)) != retried and ("idempotency key" in str(err.value)) != retried
    calls.clear()
    with pytest.raises(ProviderError, match="after 3 tries"):
        gen._call(boom, "status")  # polling starts nothing: always retried
    assert len(calls) == 3
