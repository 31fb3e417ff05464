"""A fake ElevenLabs API (what the `elevenlabs` client speaks): text-to-speech as raw PCM with the
billed character count in a header, and the voices list.

- voices: `VOICES` (ids); another voice id is a 404 `voice_not_found`;
- text containing "REFUSE" is a 400 whose detail names the terms of service (a refusal);
- the audio is a tone whose pitch follows the voice and length follows the text (deterministic).
"""
from __future__ import annotations

import zlib

import numpy as np

from .server import FakeServer, Request, Response

VOICES = {"JBFqnCBsd6RMkjVDRZzb": "George", "21m00Tcm4TlvDq8ikWAM": "Rachel"}


class FakeElevenLabs(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.keys_seen: set[str] = set()
        self.bodies: list[dict] = []
        self.route("POST", r"/v1/text-to-speech/(?P<voice>[\w\-]+)")(self._tts)
        self.route("GET", r"/v2/voices")(self._voices)

    @property
    def syntheses(self) -> int:
        return len(self.bodies)

    def _auth(self, req: Request) -> Response | None:
        key = req.headers.get("xi-api-key", "")
        if len(key) < 8:
            return Response(401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})
        self.keys_seen.add(key)
        return None

    def _tts(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        voice = req.params["voice"]
        if voice not in VOICES:
            return Response(404, {"detail": {"status": "voice_not_found",
                                             "message": f"A voice with the voice_id {voice} was not found."}})
        body = req.json()
        fmt = req.query.get("output_format", ["mp3_44100_128"])[0]
        if not fmt.startswith("pcm_"):
            return Response(400, {"detail": {"status": "invalid_output_format", "message": "the fake speaks pcm only"}})
        text = body.get("text", "")
        if "REFUSE" in text:
            return Response(400, {"detail": {"status": "content_against_policy",
                                             "message": "This request violates our Terms of Service."}})
        self.bodies.append(body)
        rate = int(fmt.split("_")[1])
        speed = float((body.get("voice_settings") or {}).get("speed") or 1.0)
        seconds = max(0.3, 0.06 * len(text) / speed)
        t = np.arange(int(rate * seconds)) / rate
        pitch = 110 + zlib.crc32(voice.encode()) % 120
        wave = 0.4 * np.sin(2 * np.pi * pitch * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        pcm = (wave * 32767).astype("<i2").tobytes()
        return Response(200, body=pcm, content_type="audio/pcm",
                        headers={"x-character-count": str(len(text)), "request-id": f"req{len(self.bodies)}"})

    def _voices(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        voices = [{"voice_id": vid, "name": name, "category": "premade"} for vid, name in VOICES.items()]
        return Response(200, {"voices": voices, "has_more": False, "total_count": len(voices), "next_page_token": None})
