"""Text-to-speech behind one interface, with a cache.

An engine turns (text, voice) into `Audio`. Engines live in a registry:

- `espeak-ng` (default): formant synthesis, fully offline, ~130 languages and accents (`en-us`, `de`,
  `fr-fr`, `es`, `ja`, ... ; a variant after '+', e.g. `en-us+f3`). Installed by `make system-deps`
  (`apt-get install espeak-ng`). Deterministic: the same version gives byte-identical audio.
- `mms-tts`: Meta's MMS-TTS (VITS) through transformers, one checkpoint per language, voices are
  ISO 639-3 codes (`eng`, `deu`, `fra`). Neural, so it needs weights: a local folder
  (`$WORKBENCH_MMS_TTS/<code>/` or `.../mms-tts-<code>/`) or the hub cache (`facebook/mms-tts-<code>`).
  Without them it raises `SpeechError` saying where to put them; nothing downloads.
- `elevenlabs`: ElevenLabs' hosted voices through the official client (`pip install elevenlabs`),
  `elevenlabs:<voice id>` or `elevenlabs:<voice id>+<model id>` (default model
  `eleven_multilingual_v2`). Needs `ELEVENLABS_API_KEY`; billed per character: the cost (characters
  the API billed x the price rule in workbench/models/hosted/prices.yaml) is kept with the cached wav
  and handed to the record. A cached utterance is never paid again and needs no key.

A new engine is a `TTSEngine` subclass decorated with `@register_engine`.

A voice is written `ENGINE:VOICE` (`espeak-ng:de`, `mms-tts:deu`) or just `VOICE` for espeak-ng.
`synthesize(text, voice)` returns a wav path from the cache, keyed by (text, voice, engine, engine
version, speed): the same request never synthesises twice, and the wav's bytes (hashed into a job's id
by the runner) change only when one of those does.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from workbench.media import Audio, load_audio
from workbench.retry import RetryPolicy
from workbench.store import write_json_atomic

DEFAULT_ENGINE = "espeak-ng"
DEFAULT_VOICE = "en-us"
CACHE_ENV = "WORKBENCH_SPEECH_CACHE"
MAX_TEXT = 5000
_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.-]{0,63}")


class SpeechError(ValueError):
    """Speech cannot be made as asked; one line naming the engine or voice and the fix."""


@dataclass(frozen=True)
class Voice:
    engine: str
    voice: str

    def __str__(self) -> str:
        return f"{self.engine}:{self.voice}"


# --------------------------------------------------------------------------------------------------
# engines
# --------------------------------------------------------------------------------------------------
class TTSEngine(ABC):
    """One text-to-speech engine. `synthesize` must be deterministic for a given (text, voice, speed)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    default_voice: ClassVar[str] = ""
    needs_weights: ClassVar[bool] = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the engine can run here, else one line saying what is missing and how to get it."""
        return None

    @classmethod
    def available(cls) -> bool:
        return cls.unavailable_reason() is None

    def check(self) -> None:
        why = self.unavailable_reason()
        if why:
            raise SpeechError(why)

    @abstractmethod
    def version(self) -> str:
        """Identifies the engine build (and model) in the cache key."""

    def voice_version(self, voice: str) -> str:
        """What identifies the audio of `voice` in the cache key: `version()` unless an engine's voices
        differ by more than their name (MMS-TTS: each voice is its own checkpoint)."""
        return self.version()

    @abstractmethod
    def voices(self) -> list[str]:
        """The voice names this engine accepts here."""

    @abstractmethod
    def synthesize(self, text: str, voice: str, speed: float | None = None) -> Audio:
        """Speak `text` with `voice`; `speed` is a rate multiplier (1.0 = the engine's normal pace)."""

    def synthesize_billed(self, text: str, voice: str, speed: float | None = None) -> tuple[Audio, dict[str, Any] | None]:
        """`synthesize` plus what it cost (None for engines that run here for free)."""
        return self.synthesize(text, voice, speed), None


_ENGINES: dict[str, type[TTSEngine]] = {}


def register_engine(cls: type[TTSEngine]) -> type[TTSEngine]:
    """Class decorator: make an engine available by its `name`."""
    _ENGINES[cls.name] = cls
    return cls


def get_engine(name: str) -> TTSEngine:
    if name not in _ENGINES:
        raise SpeechError(f"unknown speech engine '{name}'; registered: {', '.join(sorted(_ENGINES))}")
    return _cached_engine(name)


@lru_cache(maxsize=None)
def _cached_engine(name: str) -> TTSEngine:
    return _ENGINES[name]()


def parse_voice(spec: str | dict | Voice | None) -> Voice:
    """`de`, `espeak-ng:de`, `{"engine": "mms-tts", "voice": "deu"}` or a `Voice` -> `Voice`."""
    if spec is None or spec == "":
        return Voice(DEFAULT_ENGINE, DEFAULT_VOICE)
    if isinstance(spec, Voice):
        engine, voice = spec.engine, spec.voice
    elif isinstance(spec, dict):
        engine, voice = str(spec.get("engine") or DEFAULT_ENGINE), str(spec.get("voice") or "")
    elif isinstance(spec, str):
        engine, _, voice = spec.rpartition(":")
        engine = engine or DEFAULT_ENGINE
    else:
        raise SpeechError(f"voice {spec!r} must be a string like espeak-ng:en-us")
    if engine not in _ENGINES:
        raise SpeechError(f"unknown speech engine '{engine}' in voice {spec!r}; registered: {', '.join(sorted(_ENGINES))}")
    voice = voice or _ENGINES[engine].default_voice
    if not _VOICE.fullmatch(voice):
        raise SpeechError(f"voice name {voice!r} is not allowed; use letters, digits and '-', '_', '+', '.' "
                          "(e.g. en-us, de, en-us+f3)")
    return Voice(engine, voice)


def _espeak_binary() -> str | None:
    return shutil.which("espeak-ng")


@register_engine
class EspeakNG(TTSEngine):
    """eSpeak NG through its command line: offline, many languages, deterministic."""

    name = "espeak-ng"
    description = "eSpeak NG formant synthesis: offline, ~130 languages (en-us, de, fr-fr, es, ...)"
    default_voice = DEFAULT_VOICE
    words_per_minute = 160

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if _espeak_binary() is None:
            return ("espeak-ng is not installed; run `make system-deps` (or `apt-get install espeak-ng`, "
                    "`brew install espeak-ng`)")
        return None

    def version(self) -> str:
        self.check()
        return _espeak_version(_espeak_binary())

    def voices(self) -> list[str]:
        return sorted(_espeak_languages())

    def synthesize(self, text: str, voice: str, speed: float | None = None) -> Audio:
        self.check()
        language = voice.split("+", 1)[0]
        if language not in _espeak_languages():
            hint = f" (close: {', '.join(close_voices(language, self.voices()))})" if self.voices() else ""
            raise SpeechError(f"espeak-ng has no voice '{language}'{hint}; list them with `espeak-ng --voices`")
        wpm = int(round(self.words_per_minute * (1.0 if speed is None else speed)))
        if not 80 <= wpm <= 450:
            raise SpeechError(f"speech speed {speed} is out of range; use 0.5 to 2.8")
        with tempfile.TemporaryDirectory(prefix="wb-espeak-") as tmp:
            wav = Path(tmp) / "out.wav"
            r = subprocess.run([_espeak_binary(), "-v", voice, "-s", str(wpm), "--stdin", "-w", str(wav)],
                               input=text, capture_output=True, text=True, timeout=300)
            if r.returncode != 0 or not wav.is_file():
                why = (r.stderr or r.stdout).strip().splitlines()
                raise SpeechError(f"espeak-ng failed for voice '{voice}' ({why[0] if why else f'exit {r.returncode}'}); "
                                  "check the voice with `espeak-ng --voices`")
            return load_audio(wav)


@lru_cache(maxsize=None)
def _espeak_version(binary: str) -> str:
    """`espeak-ng X.Y.Z` of the binary at `binary` (asked once per path: it is a subprocess)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", out)
    return f"espeak-ng {m.group(1) if m else out.strip()[:40]}"


@lru_cache(maxsize=1)
def _espeak_languages() -> frozenset[str]:
    """Voice names espeak-ng accepts with `-v`: the `--voices` table's Language column (en-us, fr-fr),
    its Other Languages (`(en 3)`: en) and the voice files' names (roa/fr: fr)."""
    binary = _espeak_binary()
    if binary is None:
        return frozenset()
    out = subprocess.run([binary, "--voices"], capture_output=True, text=True, timeout=30).stdout
    return parse_espeak_voices(out)


def parse_espeak_voices(table: str) -> frozenset[str]:
    """The names `espeak-ng --voices` output says `-v` accepts (see `_espeak_languages`)."""
    langs = set()
    for line in table.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 2:
            langs.add(cols[1])
        if len(cols) >= 5 and "/" in cols[4]:
            langs.add(cols[4].rsplit("/", 1)[1].lower())
        langs.update(re.findall(r"\(([A-Za-z][\w-]*) \d+\)", line))
    return frozenset(langs)


def close_voices(name: str, voices: list[str], n: int = 6) -> list[str]:
    """Voices near a mistyped one, nearest first: the same language's voices by spelling, then others."""
    import difflib

    base = name.split("-")[0].lower()
    same = [v for v in voices if v.split("-")[0] == base]
    ranked = difflib.get_close_matches(name.lower(), same, n=len(same), cutoff=0) if same else []
    ranked += [v for v in difflib.get_close_matches(name.lower(), voices, n=n, cutoff=0.6) if v not in ranked]
    return ranked[:n]


MMS_ENV = "WORKBENCH_MMS_TTS"


@register_engine
class MMSTTS(TTSEngine):
    """Meta MMS-TTS (VITS, one model per language) through transformers; needs local weights."""

    name = "mms-tts"
    description = "MMS-TTS neural voices (VITS via transformers), ISO 639-3 codes (eng, deu, fra); needs weights"
    default_voice = "eng"
    needs_weights = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import transformers  # noqa: F401
            import torch  # noqa: F401
        except ImportError:
            return "mms-tts needs torch and transformers; `pip install torch transformers`"
        return None

    @staticmethod
    def model_dir(voice: str) -> Path | None:
        """Where the weights for `voice` are on this machine (local folder or hub cache), else None."""
        root = os.environ.get(MMS_ENV)
        if root:
            for cand in (Path(root) / voice, Path(root) / f"mms-tts-{voice}"):
                if (cand / "config.json").is_file() and (any(cand.glob("*.safetensors")) or any(cand.glob("*.bin"))):
                    return cand
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(f"facebook/mms-tts-{voice}", local_files_only=True))
            return path if (path / "config.json").is_file() else None
        except Exception:
            return None

    def _folder(self, voice: str) -> Path:
        self.check()
        folder = self.model_dir(voice)
        if folder is None:
            raise SpeechError(
                f"mms-tts weights for '{voice}' are not on this machine; download facebook/mms-tts-{voice} "
                f"(`huggingface-cli download facebook/mms-tts-{voice}`) or put the folder at ${MMS_ENV}/{voice}")
        return folder

    def version(self) -> str:
        import transformers

        return f"mms-tts transformers {transformers.__version__}"

    def voice_version(self, voice: str) -> str:
        return self._stamp(self._folder(voice))

    def _stamp(self, folder: Path) -> str:
        """`version()` plus a hash of the checkpoint in `folder` (config bytes, weight names and sizes)."""
        cfg = folder / "config.json"
        weights = sorted(cfg.parent.glob("*.safetensors")) or sorted(cfg.parent.glob("*.bin"))
        h = hashlib.sha256(cfg.read_bytes())
        for w in weights:
            st = w.stat()
            h.update(f"{w.name}:{st.st_size}".encode())
        return f"{self.version()} {h.hexdigest()[:12]}"

    def voices(self) -> list[str]:
        found = set()
        root = os.environ.get(MMS_ENV)
        if root and Path(root).is_dir():
            for p in Path(root).iterdir():
                if (p / "config.json").is_file():
                    found.add(p.name.removeprefix("mms-tts-"))
        try:
            from huggingface_hub import scan_cache_dir

            for repo in scan_cache_dir().repos:
                if repo.repo_id.startswith("facebook/mms-tts-"):
                    found.add(repo.repo_id.removeprefix("facebook/mms-tts-"))
        except Exception:
            pass
        return sorted(found)

    def synthesize(self, text: str, voice: str, speed: float | None = None) -> Audio:
        folder = self._folder(voice)
        model, tokenizer = _load_vits(str(folder), self._stamp(folder))  # reloads when the files change
        import torch

        inputs = tokenizer(text, return_tensors="pt")
        if inputs["input_ids"].shape[-1] == 0:
            raise SpeechError(f"mms-tts '{voice}': no speakable characters in {text[:40]!r} for this language")
        model.speaking_rate = float(speed or 1.0)
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(0)  # VITS samples noise: a fixed seed gives the same audio every time
            wave = model(**inputs).waveform[0].float().cpu().numpy()
        return Audio(np.clip(wave, -1, 1), int(model.config.sampling_rate))


@lru_cache(maxsize=2)
def _load_vits(folder: str, stamp: str):
    from transformers import AutoTokenizer, VitsModel

    try:
        model = VitsModel.from_pretrained(folder, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as e:
        raise SpeechError(f"{folder}: cannot load the mms-tts model ({type(e).__name__}); re-download it") from None
    return model, tokenizer


ELEVENLABS_SPEED = (0.7, 1.2)  # the range ElevenLabs' voice_settings.speed takes


def _elevenlabs():
    """The ElevenLabs provider (key, base URL) and its constants; registered with the hosted providers."""
    from workbench.models.hosted import elevenlabs  # local (start-up): hosted providers load for hosted voices only

    return elevenlabs


@register_engine
class ElevenLabsTTS(TTSEngine):
    """ElevenLabs' hosted voices through the official client: `elevenlabs:<voice id>[+<model id>]`.

    One request per utterance (no remote job to resume): 429 and 5xx are retried with backoff
    (`retry`), any other error is a one-line `SpeechError` (a refusal says so), keys are scrubbed from
    every message. The audio comes back as 24 kHz PCM; what it cost is what `synthesize_billed` returns."""

    name = "elevenlabs"
    description = ("ElevenLabs hosted voices: elevenlabs:<voice id>[+<model id>]; needs ELEVENLABS_API_KEY; "
                   "billed per character")
    default_voice = "JBFqnCBsd6RMkjVDRZzb"  # "George", a premade voice every account has
    hosted = True

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(retries=4, base_s=1.0, cap_s=30.0)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import elevenlabs  # noqa: F401
        except ImportError:
            return "elevenlabs voices need the official client: `pip install elevenlabs`"
        prov = _elevenlabs().PROVIDER
        if not prov.key_present():
            return f"elevenlabs voices need an API key: set {prov.key_env} in the environment"
        return None

    @staticmethod
    def split(voice: str) -> tuple[str, str]:
        """`<voice id>[+<model id>]` -> (voice id, model id)."""
        vid, _, model = voice.partition("+")
        return vid, model or _elevenlabs().DEFAULT_MODEL

    def version(self) -> str:
        return "elevenlabs"

    def voice_version(self, voice: str) -> str:
        return f"elevenlabs {self.split(voice)[1]} {_elevenlabs().OUTPUT_FORMAT}"  # no call: cache hits need no key

    def _client(self):
        from elevenlabs.client import ElevenLabs

        prov = _elevenlabs().PROVIDER
        return ElevenLabs(api_key=prov.key(), base_url=prov.base_url(), timeout=120)

    def _call(self, fn, what: str, voice: str = ""):
        """One API call with bounded retries on 429/5xx and connection faults; else a SpeechError."""
        import time

        import httpx
        from elevenlabs.core.api_error import ApiError

        from workbench.models.hosted.keys import scrub  # local (start-up), as `_elevenlabs`

        policy = self.retry
        for attempt in range(policy.retries + 1):
            try:
                return fn()
            except ApiError as e:
                code = int(e.status_code or 0)
                detail = e.body.get("detail", e.body) if isinstance(e.body, dict) else e.body
                if isinstance(detail, dict):
                    status, message = str(detail.get("status") or ""), str(detail.get("message") or detail)
                else:
                    status, message = "", str(detail or "")
                transient = code in (408, 429) or code >= 500
                if transient and attempt < policy.retries:
                    try:
                        after = float((e.headers or {}).get("retry-after"))
                    except (TypeError, ValueError):
                        after = None
                    time.sleep(policy.delay(attempt, after))
                    continue
                line = scrub(f"{status}: {message}" if status else message)
                if code == 404 or status == "voice_not_found":
                    raise SpeechError(f"elevenlabs has no voice '{voice}' ({line}); list yours with "
                                      "`workbench.speech.get_engine('elevenlabs').voices()`") from None
                if any(w in f"{status} {message}".lower() for w in ("policy", "moderation", "safety", "terms")):
                    raise SpeechError(f"refused by ElevenLabs: {line}") from None
                tries = f" after {attempt + 1} tries" if attempt else ""
                raise SpeechError(f"ElevenLabs {what} failed{tries}: HTTP {code} {line}") from None
            except (httpx.TransportError, httpx.TimeoutException) as e:
                if attempt < policy.retries:
                    time.sleep(policy.delay(attempt))
                    continue
                raise SpeechError(f"ElevenLabs {what} failed after {attempt + 1} tries: {type(e).__name__}") from None
        raise AssertionError("unreachable")

    def voices(self) -> list[str]:
        """The voice ids of this account (an API call; [] without a key)."""
        if self.unavailable_reason():
            return []
        res = self._call(lambda: self._client().voices.search(page_size=100), "voices list")
        return sorted(v.voice_id for v in res.voices)

    def synthesize(self, text: str, voice: str, speed: float | None = None) -> Audio:
        return self.synthesize_billed(text, voice, speed)[0]

    billed = True  # a call costs money: a dry run plans with a stand-in instead (see `planning`)

    def estimate_cost(self, text: str, voice: str) -> dict[str, Any]:
        """What speaking `text` would cost, from the character count and the price rule (no call)."""
        from workbench.models.hosted.pricing import cost_record, price_rule  # local (start-up), as `_elevenlabs`

        _, model = self.split(voice)
        rule = price_rule(f"elevenlabs:{model}")
        return cost_record(rule, rule.estimate(characters=len(text)) if rule else None) | {"characters": len(text)}

    def synthesize_billed(self, text: str, voice: str, speed: float | None = None) -> tuple[Audio, dict[str, Any]]:
        from elevenlabs.types import VoiceSettings

        from workbench.models.hosted.pricing import cost_record, price_rule  # local (start-up), as `_elevenlabs`

        self.check()
        el = _elevenlabs()
        vid, model = self.split(voice)
        if speed not in (None, 1.0) and not ELEVENLABS_SPEED[0] <= float(speed) <= ELEVENLABS_SPEED[1]:
            raise SpeechError(f"speech speed {speed} is out of range for elevenlabs; use "
                              f"{ELEVENLABS_SPEED[0]} to {ELEVENLABS_SPEED[1]}")
        kwargs: dict[str, Any] = {"text": text, "model_id": model, "output_format": el.OUTPUT_FORMAT, "seed": 0,
                                  "request_options": {"max_retries": 0}}  # ours are bounded, with backoff
        if speed not in (None, 1.0):
            kwargs["voice_settings"] = VoiceSettings(speed=float(speed))

        def call() -> tuple[bytes, dict[str, str]]:
            with self._client().text_to_speech.with_raw_response.convert(vid, **kwargs) as resp:
                return b"".join(resp.data), {k.lower(): v for k, v in dict(resp.headers).items()}

        pcm, headers = self._call(call, "text-to-speech", vid)
        if len(pcm) < 2:
            raise SpeechError(f"elevenlabs:{voice} returned no audio for {text[:40]!r}")
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        rule = price_rule(f"elevenlabs:{model}")
        try:
            billed = int(headers["x-character-count"])
        except (KeyError, ValueError):
            billed = None
        estimate = rule.estimate(characters=len(text)) if rule else None
        charged = rule.estimate(characters=billed) if rule and billed is not None else None
        cost = cost_record(rule, estimate, charged, "USD") | {
            "characters": billed if billed is not None else len(text),
            "source": "api" if charged is not None else "estimate", "request_id": headers.get("request-id")}
        return Audio(samples, el.SAMPLE_RATE), cost


# --------------------------------------------------------------------------------------------------
# the cache
# --------------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "workbench" / "speech"


@dataclass
class Speech:
    """A synthesised utterance in the cache."""

    path: Path
    voice: Voice
    text: str
    key: str
    cached: bool  # True when it was already there
    engine_version: str
    # hosted engines: {"estimated", "charged", "currency", "usd", "source", "rule", "characters"};
    # a cached utterance shows what it cost once with charged 0 (source "cached")
    cost: dict[str, Any] | None = None

    def load(self) -> Audio:
        return load_audio(self.path)


def check_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise SpeechError("speech text is empty; give the words to speak")
    if "\x00" in text:
        raise SpeechError("speech text contains a NUL character; remove it")
    if len(text) > MAX_TEXT:
        raise SpeechError(f"speech text is {len(text)} characters; split it into pieces of at most {MAX_TEXT}")
    return text


def speech_key(text: str, voice: Voice, engine_version: str, speed: float | None = None) -> str:
    """The cache key: a hash of everything that determines the audio."""
    payload = {"text": text, "engine": voice.engine, "voice": voice.voice, "engine_version": engine_version,
               "speed": None if speed in (None, 1.0) else float(speed)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


_PLANNING: contextvars.ContextVar[bool] = contextvars.ContextVar("workbench_speech_planning", default=False)


@contextlib.contextmanager
def planning() -> Iterator[None]:
    """Within it (`workbench run --dry-run`), a paid voice that is not cached is not called: a free offline
    stand-in (espeak-ng, same text) gives the length the plan needs, and the cost is the estimate from the
    character count. A dry run never pays for speech."""
    token = _PLANNING.set(True)
    try:
        yield
    finally:
        _PLANNING.reset(token)


def _stand_in(text: str, v: Voice, key: str, version: str, engine: TTSEngine, cache_dir: str | Path | None) -> Speech:
    """The plan's stand-in for a paid utterance: the text in the default offline voice, the paid voice's
    estimated cost (source "estimate (dry run)")."""
    free = synthesize(text, None, cache_dir=cache_dir)
    cost = None
    estimate = getattr(engine, "estimate_cost", None)
    if estimate is not None:
        cost = {**estimate(text, v.voice), "charged": 0.0, "source": "estimate (dry run: not synthesized)"}
    return Speech(free.path, v, text, key, False, version, cost)


def check_speed(speed: float | None) -> float | None:
    """A speaking rate as a float (None: the engine's normal pace); SpeechError for nan, inf, zero or a
    negative rate (each engine then checks its own range)."""
    if speed is None:
        return None
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise SpeechError(f"speech speed {speed!r} must be a number (1 = the engine's normal pace)") from None
    if not math.isfinite(value) or value <= 0:
        raise SpeechError(f"speech speed {speed} must be a positive number (1 = the engine's normal pace, "
                          f"0.5 half as fast, 2 twice as fast)")
    return value


def synthesize(text: str, voice: str | dict | Voice | None = None, *, speed: float | None = None,
               cache_dir: str | Path | None = None) -> Speech:
    """Speak `text` with `voice` into the cache (or find it there) and return the wav's place.
    A cached utterance needs nothing of its engine but its version (a hosted voice: no key, no call)."""
    text = check_text(text)
    speed = check_speed(speed)
    v = parse_voice(voice)
    engine = get_engine(v.engine)
    version = engine.voice_version(v.voice)
    key = speech_key(text, v, version, speed)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = root / f"{key}.wav"
    if path.is_file() and path.stat().st_size > 44:
        return Speech(path, v, text, key, True, version, _cached_cost(root / f"{key}.json"))
    if _PLANNING.get() and getattr(engine, "billed", False):
        return _stand_in(text, v, key, version, engine, cache_dir)
    engine.check()
    audio, cost = engine.synthesize_billed(text, v.voice, speed)
    if audio.is_silent:
        raise SpeechError(f"{v}: produced silence for {text[:40]!r}; check that the voice speaks this language")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{key}.{uuid.uuid4().hex[:8]}.wav"
    try:
        audio.save_wav(tmp)
        os.replace(tmp, path)  # atomic: a reader sees no wav or the whole wav
    finally:
        tmp.unlink(missing_ok=True)
    meta = {"text": text, "voice": str(v), "engine_version": version, "speed": speed,
            "seconds": round(audio.duration, 3), "sample_rate": audio.sample_rate}
    if cost is not None:
        meta["cost"] = cost
    write_json_atomic(root / f"{key}.json", meta, ensure_ascii=False, indent=1)
    return Speech(path, v, text, key, False, version, cost)


def _cached_cost(meta: Path) -> dict[str, Any] | None:
    """What a cached hosted utterance cost when it was made, now charged 0 (it is not paid again)."""
    try:
        cost = json.loads(meta.read_text()).get("cost")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(cost, dict):
        return None
    return {**cost, "charged": 0.0, "usd": 0.0, "source": "cached"}


def describe_engines() -> list[dict[str, Any]]:
    """Every registered engine: name, description, whether it runs here (and why not)."""
    return [{"name": cls.name, "description": cls.description, "default_voice": cls.default_voice,
             "needs_weights": cls.needs_weights, "available": cls.available(),
             "unavailable_reason": cls.unavailable_reason()} for cls in _ENGINES.values()]
