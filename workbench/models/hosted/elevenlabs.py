"""ElevenLabs (official client `elevenlabs`): hosted voices for speech. The engine itself lives in
`workbench/speech.py` (`voice: elevenlabs:<voice id>[+<model id>]`); this file registers the provider
so its key is checked (`workbench providers check`) and scrubbed like every other provider's.

Protocol (what elevenlabs speaks, and tests/fakes/elevenlabs.py answers): `xi-api-key: <key>`;
`POST {base}/v1/text-to-speech/<voice id>?output_format=pcm_24000` with `{text, model_id, seed,
voice_settings}` -> raw 16-bit little-endian mono PCM at 24 kHz, with `x-character-count` (the
characters billed) and `request-id` headers; `GET /v2/voices` -> `{voices: [{voice_id, name, ...}]}`.
Errors are `{"detail": {"status", "message"}}` with 4xx/5xx; 429 and 5xx are retried.

Key: ELEVENLABS_API_KEY. Base URL: WORKBENCH_ELEVENLABS_BASE_URL (default https://api.elevenlabs.io).
Price: per 1000 characters, one prices.yaml row per model id (`elevenlabs:<model id>`).
"""
from __future__ import annotations

from workbench.models.hosted.keys import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="elevenlabs", title="ElevenLabs", key_env="ELEVENLABS_API_KEY",
    base_url_env="WORKBENCH_ELEVENLABS_BASE_URL", default_base_url="https://api.elevenlabs.io",
    client_package="elevenlabs", docs="https://elevenlabs.io/docs/api-reference/text-to-speech/convert",
    notes="speech engine `elevenlabs` (workbench.speech): voice elevenlabs:<voice id>[+<model id>]"))

DEFAULT_MODEL = "eleven_multilingual_v2"
SAMPLE_RATE = 24000
OUTPUT_FORMAT = f"pcm_{SAMPLE_RATE}"
