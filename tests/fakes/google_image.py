"""A fake of Google's image models on Vertex AI (what google-genai 3.x speaks in express mode): Imagen's
`:predict` and Gemini's `:generateContent` with an image in the answer. Both answer at once (no
operation): the picture comes back inline, base64.

- Imagen: a prompt containing "REFUSE" comes back with the image filtered (`raiFilteredReason`), "EMPTY"
  with no predictions at all (what Vertex answers when every image was filtered and no reason asked);
- Gemini: "REFUSE" is blocked at the prompt (`promptFeedback.blockReason`), "IMGSAFETY" ends with
  `finishReason: IMAGE_SAFETY` and no image, "TEXTONLY" answers with text and no image;
- `out_size`, `color`: the picture handed back (one flat colour, so a test can find it in a clip);
  `images` counts the pictures handed out (what was paid for).
"""
from __future__ import annotations

import base64
import itertools
import threading
from typing import Any

from .server import FakeServer, Request, Response, tiny_png

MODEL = r"/v1beta1/(?:projects/[\w\-]+/locations/[\w\-]+/)?publishers/google/models/(?P<model>[\w.\-]+)"
PREDICT = MODEL + r":predict"
GENERATE = MODEL + r":generateContent"
RAI = ("Your current safety filter threshold filtered out the generated image. Try rephrasing the prompt. "
       "Support codes: 58061214")


class FakeGoogleImage(FakeServer):
    def __init__(self, out_size: tuple[int, int] = (96, 64), color: tuple[int, int, int] = (200, 30, 90)) -> None:
        super().__init__()
        self.out_size, self.color = out_size, color
        self.keys_seen: set[str] = set()
        self.bodies: list[dict[str, Any]] = []  # every accepted request body, in order
        self.images = 0
        self._ids = itertools.count(1)
        self._ilock = threading.Lock()
        self.route("POST", PREDICT)(self._predict)
        self.route("POST", GENERATE)(self._generate)

    @property
    def submissions(self) -> int:
        return len(self.bodies)

    def _auth(self, req: Request) -> Response | None:
        key = req.headers.get("x-goog-api-key", "")
        if len(key) < 8:
            return Response(401, {"error": {"code": 401, "message": "API keys are not supported by this API.",
                                            "status": "UNAUTHENTICATED"}})
        self.keys_seen.add(key)
        return None

    def _png(self) -> str:
        with self._ilock:
            self.images += 1
        return base64.b64encode(tiny_png(self.out_size, self.color)).decode()

    def _predict(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        body = req.json() or {}
        inst = (body.get("instances") or [{}])[0]
        params = body.get("parameters") or {}
        if not inst.get("prompt"):
            return Response(400, {"error": {"code": 400, "message": "prompt is required", "status": "INVALID_ARGUMENT"}})
        if "seed" in params and params.get("addWatermark", True):
            return Response(400, {"error": {"code": 400, "message": "Seed is not supported when watermark is enabled.",
                                            "status": "INVALID_ARGUMENT"}})
        self.bodies.append(body)
        prompt = str(inst["prompt"])
        if "EMPTY" in prompt:
            return Response(200, {})
        if "REFUSE" in prompt:
            return Response(200, {"predictions": [{"raiFilteredReason": RAI}]})
        return Response(200, {"predictions": [{"bytesBase64Encoded": self._png(), "mimeType": "image/png"}]})

    def _generate(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        body = req.json() or {}
        parts = [p for c in body.get("contents") or [] for p in c.get("parts") or []]
        prompt = " ".join(str(p.get("text", "")) for p in parts)
        for p in parts:
            # proto JSON bytes: standard or URL-safe base64 (google-genai sends the URL-safe alphabet)
            if "inlineData" in p and not base64.urlsafe_b64decode(str(p["inlineData"].get("data") or "").replace("+", "-")
                                                                  .replace("/", "_")):
                return Response(400, {"error": {"code": 400, "message": "inline data is empty",
                                                "status": "INVALID_ARGUMENT"}})
        self.bodies.append(body)
        rid = f"resp-{next(self._ids):04d}"
        usage = {"promptTokenCount": 12, "candidatesTokenCount": 1290, "totalTokenCount": 1302}
        if "REFUSE" in prompt:
            return Response(200, {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": usage,
                                  "responseId": rid})
        if "IMGSAFETY" in prompt:
            return Response(200, {"candidates": [{"content": {"role": "model", "parts": []},
                                                  "finishReason": "IMAGE_SAFETY"}], "responseId": rid})
        out: list[dict[str, Any]] = [{"text": "Here is the picture."}]
        if "TEXTONLY" not in prompt:
            out.append({"inlineData": {"mimeType": "image/png", "data": self._png()}})
        return Response(200, {"candidates": [{"content": {"role": "model", "parts": out}, "finishReason": "STOP"}],
                              "usageMetadata": usage, "modelVersion": req.params["model"], "responseId": rid})
