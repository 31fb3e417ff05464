"""Speech: espeak-ng in several languages, the (text, voice, engine) cache, the engine registry, a
neural engine (MMS-TTS/VITS) on a tiny random-weight local checkpoint, and the errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from workbench import speech
from workbench.speech import SpeechError, Voice, parse_voice, synthesize


def ensure_espeak() -> None:
    """Install espeak-ng when missing (as `make system-deps` does); skip with the reason when impossible."""
    if shutil.which("espeak-ng"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "espeak-ng"]):
        if shutil.which(cmd[0]) is None or subprocess.run(sudo + cmd, env=env, capture_output=True).returncode:
            pytest.skip("espeak-ng is not installed and could not be installed; run `make system-deps`")
    speech._espeak_languages.cache_clear()


@pytest.fixture(scope="module")
def espeak():
    ensure_espeak()


def test_espeak_speaks_several_languages(espeak, tmp_path):
    text = "one two three"
    out = {}
    for voice in ("en-us", "espeak-ng:de", "fr-fr"):
        s = synthesize(text, voice, cache_dir=tmp_path)
        a = s.load()
        assert not a.is_silent and 0.5 < a.duration < 5.0
        out[voice] = a
        assert not s.cached and s.path.parent == tmp_path and s.path.suffix == ".wav"
    # the same words in another language are different speech
    en, de = out["en-us"].samples, out["espeak-ng:de"].samples
    n = min(len(en), len(de))
    assert np.abs(en[:n] - de[:n]).mean() > 0.01
    meta = json.loads((tmp_path / f"{synthesize(text, 'de', cache_dir=tmp_path).key}.json").read_text())
    assert meta["voice"] == "espeak-ng:de" and meta["text"] == text


def test_cache_by_text_voice_engine(espeak, tmp_path, monkeypatch):
    calls = []
    real = speech.EspeakNG.synthesize

    def counting(self, text, voice, speed=None):
        calls.append((text, voice))
        return real(self, text, voice, speed)

    monkeypatch.setattr(speech.EspeakNG, "synthesize", counting)
    first = synthesize("Hello there.", "en-us", cache_dir=tmp_path)
    again = synthesize("Hello there.", "espeak-ng:en-us", cache_dir=tmp_path)
    assert again.cached and again.path == first.path and len(calls) == 1
    other_voice = synthesize("Hello there.", "en-gb", cache_dir=tmp_path)
    other_text = synthesize("Hello here.", "en-us", cache_dir=tmp_path)
    slower = synthesize("Hello there.", "en-us", speed=0.7, cache_dir=tmp_path)
    assert len({first.key, other_voice.key, other_text.key, slower.key}) == 4 and len(calls) == 4
    assert slower.load().duration > first.load().duration * 1.2
    # deterministic: a fresh cache gives the same bytes
    fresh = synthesize("Hello there.", "en-us", cache_dir=tmp_path / "fresh")
    assert fresh.path.read_bytes() == first.path.read_bytes()
    # the environment variable moves the default cache
    monkeypatch.setenv(speech.CACHE_ENV, str(tmp_path / "env"))
    assert synthesize("Hello there.", "en-us").path.parent == tmp_path / "env"
    assert not list(tmp_path.glob(".*.wav"))  # no temporary files left behind


def test_voice_parsing_and_errors(espeak, tmp_path):
    assert parse_voice(None) == Voice("espeak-ng", "en-us")
    assert parse_voice("de") == Voice("espeak-ng", "de")
    assert parse_voice({"engine": "mms-tts", "voice": "deu"}) == Voice("mms-tts", "deu")
    assert str(parse_voice("mms-tts:")) == "mms-tts:eng"
    with pytest.raises(SpeechError, match="unknown speech engine 'nope'.*espeak-ng"):
        parse_voice("nope:en")
    for bad in ("../x", "en us", "-x", ".hidden", "a\x00b"):
        with pytest.raises(SpeechError, match="not allowed"):
            parse_voice(bad)
    with pytest.raises(SpeechError, match="espeak-ng has no voice 'xx-yy'"):
        synthesize("hi", "xx-yy", cache_dir=tmp_path)
    with pytest.raises(SpeechError, match="empty"):
        synthesize("   ", "en-us", cache_dir=tmp_path)
    with pytest.raises(SpeechError, match="NUL"):
        synthesize("a\x00b", "en-us", cache_dir=tmp_path)
    with pytest.raises(SpeechError, match="out of range"):
        synthesize("hi", "en-us", speed=10, cache_dir=tmp_path)


def test_missing_espeak_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(speech, "_espeak_binary", lambda: None)
    with pytest.raises(SpeechError, match="espeak-ng is not installed; run `make system-deps`"):
        synthesize("hi", "en-us", cache_dir=tmp_path)
    row = {r["name"]: r for r in speech.describe_engines()}["espeak-ng"]
    assert row["available"] is False and "make system-deps" in row["unavailable_reason"]


def test_neural_engine_without_weights_says_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.setenv(speech.MMS_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SpeechError, match=r"mms-tts weights for 'deu' are not on this machine.*WORKBENCH_MMS_TTS"):
        synthesize("hallo", "mms-tts:deu", cache_dir=tmp_path)


def tiny_vits(folder, sampling_rate=16000):
    """A random-weight MMS-TTS (VITS) checkpoint with a character tokenizer: the loader's test double."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(" abcdefghijklmnopqrstuvwxyzäöüß,.'-")
    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    VitsTokenizer(str(folder / "vocab.json"), language="deu", add_blank=True, normalize=True,
                  phonemize=False).save_pretrained(folder)
    cfg = VitsConfig(vocab_size=len(chars), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
                     flow_size=16, spectrogram_bins=33, upsample_initial_channel=32, upsample_rates=[8, 8],
                     upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
                     prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1,
                     posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1,
                     duration_predictor_filter_channels=16, depth_separable_num_layers=1, sampling_rate=sampling_rate)
    torch.manual_seed(0)
    VitsModel(cfg).save_pretrained(folder)
    return folder


def test_neural_engine_runs_from_a_local_checkpoint(monkeypatch, tmp_path):
    root = tmp_path / "mms"
    tiny_vits(root / "deu")
    monkeypatch.setenv(speech.MMS_ENV, str(root))
    assert "deu" in speech.get_engine("mms-tts").voices()
    s = synthesize("hallo welt", "mms-tts:deu", cache_dir=tmp_path / "c1")
    a = s.load()
    assert a.sample_rate == 16000 and a.duration > 0.05 and not a.is_silent
    again = synthesize("hallo welt", "mms-tts:deu", cache_dir=tmp_path / "c2")
    assert again.path.read_bytes() == s.path.read_bytes()  # seeded: deterministic
    assert "mms-tts" in s.engine_version and s.key == again.key
    # other weights under the same voice name are another cache entry
    tiny_vits(root / "deu", sampling_rate=22050)
    other = synthesize("hallo welt", "mms-tts:deu", cache_dir=tmp_path / "c1")
    assert not other.cached and other.key != s.key and other.load().sample_rate == 22050


# --------------------------------------------------------------------------------------------------
# ElevenLabs voices: the official client against a local fake (tests/fakes/elevenlabs.py)
# --------------------------------------------------------------------------------------------------
XI_KEY = "xi-FAKE-elevenlabs-key-0123456789"


@pytest.fixture
def eleven(monkeypatch):
    from tests.fakes.elevenlabs import FakeElevenLabs
    from workbench.models.hosted.base import RetryPolicy

    monkeypatch.setattr(speech.ElevenLabsTTS, "retry", property(lambda self: RetryPolicy(3, 0.01, 0.05)))
    with FakeElevenLabs() as server:
        monkeypatch.setenv("ELEVENLABS_API_KEY", XI_KEY)
        monkeypatch.setenv("WORKBENCH_ELEVENLABS_BASE_URL", server.url)
        yield server


def test_elevenlabs_voice_is_cached_and_costed(eleven, tmp_path, monkeypatch):
    text = "Hello from a hosted voice."
    s = synthesize(text, "elevenlabs:JBFqnCBsd6RMkjVDRZzb", cache_dir=tmp_path)
    a = s.load()
    assert not s.cached and a.sample_rate == 24000 and not a.is_silent and a.duration > 1.0
    assert s.voice == Voice("elevenlabs", "JBFqnCBsd6RMkjVDRZzb") and "eleven_multilingual_v2" in s.engine_version
    body = eleven.bodies[0]
    assert body["text"] == text and body["model_id"] == "eleven_multilingual_v2"
    assert eleven.requests[0].query["output_format"] == ["pcm_24000"] and XI_KEY in eleven.keys_seen
    # cost: the characters the API billed x the price rule (per 1000 characters)
    assert s.cost["source"] == "api" and s.cost["characters"] == len(text)
    assert s.cost["usd"] == pytest.approx(len(text) / 1000 * 0.10) and "1000 characters" in s.cost["rule"]
    meta = json.loads((tmp_path / f"{s.key}.json").read_text())
    assert meta["cost"]["usd"] == s.cost["usd"] and meta["voice"] == "elevenlabs:JBFqnCBsd6RMkjVDRZzb"
    # the same words again: from the cache, not paid again, and no key needed
    monkeypatch.delenv("ELEVENLABS_API_KEY")
    again = synthesize(text, "elevenlabs:JBFqnCBsd6RMkjVDRZzb", cache_dir=tmp_path)
    assert again.cached and again.path == s.path and eleven.syntheses == 1
    assert again.cost["charged"] == 0 and again.cost["source"] == "cached" and again.cost["estimated"] > 0
    # another voice or model is another utterance (and needs the key)
    with pytest.raises(SpeechError, match="ELEVENLABS_API_KEY"):
        synthesize(text, "elevenlabs:21m00Tcm4TlvDq8ikWAM", cache_dir=tmp_path)
    monkeypatch.setenv("ELEVENLABS_API_KEY", XI_KEY)
    flash = synthesize(text, "elevenlabs:JBFqnCBsd6RMkjVDRZzb+eleven_flash_v2_5", cache_dir=tmp_path)
    assert flash.key != s.key and eleven.bodies[-1]["model_id"] == "eleven_flash_v2_5"
    assert flash.cost["usd"] == pytest.approx(len(text) / 1000 * 0.05)
    slow = synthesize(text, "elevenlabs:JBFqnCBsd6RMkjVDRZzb", speed=0.8, cache_dir=tmp_path)
    assert eleven.bodies[-1]["voice_settings"]["speed"] == 0.8 and slow.load().duration > a.duration
    for f in tmp_path.iterdir():  # the key is in no file the cache holds
        assert XI_KEY.encode() not in f.read_bytes()


@pytest.mark.parametrize("status", [429, 500])
def test_elevenlabs_retries_transient_faults(eleven, tmp_path, status):
    eleven.inject("POST", r"/v1/text-to-speech/.*", status, status)
    s = synthesize("Retry me.", "elevenlabs:JBFqnCBsd6RMkjVDRZzb", cache_dir=tmp_path)
    assert s.load().duration > 0 and eleven.count("POST", r"/v1/text-to-speech/.*") == 3 and eleven.syntheses == 1


def test_elevenlabs_errors(eleven, tmp_path, monkeypatch):
    eleven.inject("POST", r"/v1/text-to-speech/.*", 503, 503, 503, 503)
    with pytest.raises(SpeechError, match="ElevenLabs text-to-speech failed after 4 tries: HTTP 503"):
        synthesize("Never.", "elevenlabs:JBFqnCBsd6RMkjVDRZzb", cache_dir=tmp_path)
    n = eleven.count("POST", r"/v1/text-to-speech/.*")
    with pytest.raises(SpeechError, match="refused by ElevenLabs: content_against_policy"):
        synthesize("REFUSE this", "elevenlabs:JBFqnCBsd6RMkjVDRZzb", cache_dir=tmp_path)
    assert eleven.count("POST", r"/v1/text-to-speech/.*") == n + 1  # a refusal is not retried
    with pytest.raises(SpeechError, match="elevenlabs has no voice 'NoSuchVoice123'"):
        synthesize("Hi.", "elevenlabs:NoSuchVoice123", cache_dir=tmp_path)
    with pytest.raises(SpeechError, match="out of range for elevenlabs"):
        synthesize("Hi.", "elevenlabs:JBFqnCBsd6RMkjVDRZzb", speed=2.0, cache_dir=tmp_path)
    assert speech.get_engine("elevenlabs").voices() == sorted(["JBFqnCBsd6RMkjVDRZzb", "21m00Tcm4TlvDq8ikWAM"])
    monkeypatch.setenv("ELEVENLABS_API_KEY", "")
    row = {r["name"]: r for r in speech.describe_engines()}["elevenlabs"]
    assert row["available"] is False and "ELEVENLABS_API_KEY" in row["unavailable_reason"]
    assert not list(tmp_path.glob("*.wav"))  # nothing half-made was cached


def test_elevenlabs_speech_cost_lands_in_the_record(eleven, tmp_path, monkeypatch):
    """A suite case with `text:` + `voice: elevenlabs:...`: the record's workflow.speech holds the cost."""
    from workbench.experiment import Runner
    from workbench.suite import load_suite

    monkeypatch.setenv(speech.CACHE_ENV, str(tmp_path / "cache"))
    image = os.path.join(os.path.dirname(__file__), "..", "data", "images", "portrait.png")
    (tmp_path / "s.yaml").write_text(
        "name: xi\ncases:\n"
        f"  - {{id: p, image: {os.path.abspath(image)}, text: \"Hello there.\", voice: \"elevenlabs:JBFqnCBsd6RMkjVDRZzb\"}}\n"
        "models: [static]\nseeds: [0]\nmetrics: [temporal_flicker]\ntracking: {wandb: false, html_report: false}\n")
    (rec,) = list(Runner(load_suite(tmp_path / "s.yaml"), tmp_path / "run").run())
    cost = rec["workflow"]["speech"]["cost"]
    assert rec["status"] == "ok" and cost["source"] == "api" and cost["characters"] == 12 and cost["usd"] > 0
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file():
            assert XI_KEY.encode() not in f.read_bytes()


def test_a_dry_run_never_pays_for_speech(eleven, tmp_path, monkeypatch):
    """`workbench run --dry-run` on a suite whose case speaks with a paid voice: no call to ElevenLabs, the plan
    uses an offline stand-in of the same words and shows the voice's estimated cost; the real run then pays once."""
    import yaml
    from typer.testing import CliRunner

    from workbench.cli import app

    monkeypatch.setenv("WORKBENCH_SPEECH_CACHE", str(tmp_path / "cache"))
    portrait = Path(__file__).resolve().parents[1] / "data" / "images" / "portrait.png"
    spec = {"name": "voiced", "output": str(tmp_path / "run"), "seeds": [0], "metrics": ["temporal_flicker"],
            "cases": [{"id": "talk", "image": str(portrait), "text": "Hello there, this costs money.",
                       "voice": "elevenlabs:JBFqnCBsd6RMkjVDRZzb"}],
            "models": [{"name": "puppet", "params": {"size": 96}}], "tracking": {"wandb": False}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    r = CliRunner().invoke(app, ["run", str(tmp_path / "suite.yaml"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert eleven.syntheses == 0 and not (tmp_path / "run" / "results.jsonl").exists()
    r = CliRunner().invoke(app, ["run", str(tmp_path / "suite.yaml"), "--wandb", "disabled"])
    assert r.exit_code == 0, r.output
    assert eleven.syntheses == 1
    rec = json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[-1])
    assert rec["workflow"]["speech"]["cost"]["source"] == "api"
