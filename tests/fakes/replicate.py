"""A fake Replicate HTTP API (what the `replicate` client talks to): model predictions and their status.

- `server.hold` set: predictions stay `processing` until `server.release()`;
- a prompt containing "REFUSE": the prediction fails with Replicate's E005 "flagged as sensitive";
- the clip handed back: `out_seconds` at `out_fps`, `out_size`.
"""
from __future__ import annotations

import itertools
from typing import Any

from .server import FakeServer, Request, Response, tiny_mp4


class FakeReplicate(FakeServer):
    def __init__(self, out_seconds: float = 1.0, out_fps: float = 16.0, out_size: tuple[int, int] = (64, 48)) -> None:
        super().__init__()
        self.out_seconds, self.out_fps, self.out_size = out_seconds, out_fps, out_size
        self.predictions: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.route("POST", r"/v1/models/(?P<owner>[\w.\-]+)/(?P<name>[\w.\-]+)/predictions")(self._create)
        self.route("GET", r"/v1/predictions/(?P<id>\w+)")(self._get)
        self.route("GET", r"/delivery/(?P<id>\w+)/output\.mp4")(self._file)

    @property
    def submissions(self) -> int:
        return len(self.predictions)

    def _auth(self, req: Request) -> Response | None:
        if not req.headers.get("authorization", "").startswith("Bearer "):
            return Response(401, {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token",
                                  "status": 401})
        return None

    def _json(self, p: dict[str, Any]) -> dict[str, Any]:
        done = not self.hold.is_set() and p["polls"] >= 1
        refused = "REFUSE" in str(p["input"].get("prompt", ""))
        status = "processing" if not done else ("failed" if refused else "succeeded")
        return {"id": p["id"], "model": p["model"], "version": "hidden", "input": p["input"],
                "status": status, "logs": "", "created_at": "2026-01-01T00:00:00Z",
                "output": f"{self.url}/delivery/{p['id']}/output.mp4" if status == "succeeded" else None,
                "error": ("The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
                          if status == "failed" else None),
                "metrics": {"predict_time": 2.5} if done else {},
                "urls": {"get": f"{self.url}/v1/predictions/{p['id']}", "cancel": f"{self.url}/v1/predictions/{p['id']}/cancel"}}

    def _create(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        body = req.json()
        if not str(body["input"].get("image", "")).startswith("data:image/"):
            return Response(422, {"title": "Input validation failed", "detail": "image: a file is required", "status": 422})
        pid = f"rp{next(self._ids):06d}"
        p = {"id": pid, "model": f"{req.params['owner']}/{req.params['name']}", "input": body["input"], "polls": 0}
        self.predictions[pid] = p
        out = self._json(p)
        out["status"] = "starting"
        return Response(201, out)

    def _get(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        p = self.predictions.get(req.params["id"])
        if p is None:
            return Response(404, {"title": "Not found", "detail": "Prediction not found", "status": 404})
        p["polls"] += 1
        return Response(200, self._json(p))

    def _file(self, req: Request) -> Response:
        return Response(200, body=tiny_mp4(self.out_seconds, self.out_fps, self.out_size), content_type="video/mp4")
