"""A fake Veo on Vertex AI (what google-genai 3.x speaks in express mode): predictLongRunning returns
an operation name, fetchPredictOperation reports it, the finished operation holds the video inline.

- `server.hold` set: operations stay not done until `server.release()`;
- a prompt containing "REFUSE" finishes with the videos filtered (raiMediaFilteredCount 1);
- `out_seconds` / `out_fps` / `out_size`: the clip handed back (None seconds: the asked duration).
"""
from __future__ import annotations

import base64
import itertools
import threading
from typing import Any

from .server import FakeServer, Request, Response, tiny_mp4

# express mode has no project in the path; an operation name may carry one (fetched under it)
MODEL = r"/v1beta1/(?:projects/[\w\-]+/locations/[\w\-]+/)?publishers/google/models/(?P<model>[\w.\-]+)"
SUBMIT = MODEL + r":predictLongRunning"
FETCH = MODEL + r":fetchPredictOperation"
FILTERED = ("Veo could not generate videos because the input image violates Vertex AI's usage guidelines. "
            "Support codes: 17301594")


class FakeVeo(FakeServer):
    def __init__(self, out_seconds: float | None = 1.0, out_fps: float = 8.0, out_size: tuple[int, int] = (64, 36),
                 polls_to_finish: int = 1) -> None:
        super().__init__()
        self.out_seconds, self.out_fps, self.out_size = out_seconds, out_fps, out_size
        self.polls_to_finish = polls_to_finish
        self.ops: dict[str, dict[str, Any]] = {}
        self.keys_seen: set[str] = set()
        self._ids = itertools.count(1)
        self._olock = threading.Lock()
        self.route("POST", SUBMIT)(self._submit)
        self.route("POST", FETCH)(self._fetch)

    @property
    def submissions(self) -> int:
        return len(self.ops)

    def _auth(self, req: Request) -> Response | None:
        key = req.headers.get("x-goog-api-key", "")
        if len(key) < 8:
            return Response(401, {"error": {"code": 401, "message": "API keys are not supported by this API.",
                                            "status": "UNAUTHENTICATED"}})
        self.keys_seen.add(key)
        return None

    def _submit(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        body = req.json()
        inst = (body.get("instances") or [{}])[0]
        params = body.get("parameters") or {}
        if "image" in inst and not inst["image"].get("bytesBase64Encoded"):
            return Response(400, {"error": {"code": 400, "message": "image is empty", "status": "INVALID_ARGUMENT"}})
        if params.get("durationSeconds") not in (4, 5, 6, 7, 8):
            return Response(400, {"error": {"code": 400, "message": "durationSeconds out of range",
                                            "status": "INVALID_ARGUMENT"}})
        with self._olock:
            name = f"projects/p/locations/us-central1/publishers/google/models/{req.params['model']}/operations/op{next(self._ids):04d}"
            self.ops[name] = {"instance": inst, "parameters": params, "polls": 0}
        return Response(200, {"name": name})

    def _fetch(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        name = (req.json() or {}).get("operationName", "")
        op = self.ops.get(name)
        if op is None:
            return Response(404, {"error": {"code": 404, "message": f"operation {name} not found", "status": "NOT_FOUND"}})
        op["polls"] += 1
        if self.hold.is_set() or op["polls"] < self.polls_to_finish:
            return Response(200, {"name": name, "done": False,
                                  "metadata": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.GenericOperationMetadata"}})
        resp: dict[str, Any] = {"@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"}
        if "REFUSE" in str(op["instance"].get("prompt", "")):
            resp.update(raiMediaFilteredCount=1, raiMediaFilteredReasons=[FILTERED])
        else:
            seconds = self.out_seconds if self.out_seconds is not None else float(op["parameters"]["durationSeconds"])
            data = tiny_mp4(seconds, self.out_fps, self.out_size)
            resp["videos"] = [{"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": "video/mp4"}]
        return Response(200, {"name": name, "done": True, "response": resp})
