"""A fake fal queue (what fal-client talks to): submit, status, result, with the shapes fal documents.

- `server.hold` set: requests stay IN_PROGRESS until `server.release()`;
- a prompt containing "REFUSE": the result is a 422 with a `content_policy_violation` detail;
- the clip handed back: `out_seconds` at `out_fps`, `out_size`;
- text-to-image (a request with no `image_url`): `{"images": [...], "seed", "has_nsfw_concepts"}`, a PNG of
  `image_size`; `image_urls` (an edit) must be data URIs; a prompt containing "NSFW" is flagged (blank image).
"""
from __future__ import annotations

import base64
import itertools
from typing import Any

from .server import FakeServer, Request, Response, tiny_mp4, tiny_png


class FakeFal(FakeServer):
    def __init__(self, out_seconds: float = 1.0, out_fps: float = 8.0, out_size: tuple[int, int] = (64, 48)) -> None:
        super().__init__()
        self.out_seconds, self.out_fps, self.out_size = out_seconds, out_fps, out_size
        self.requests_by_id: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.route("POST", r"/(?P<app>[\w.\-]+/[\w.\-]+(?:/[\w.\-]+)*)")(self._submit)
        self.route("GET", r"/(?P<owner>[\w.\-]+)/(?P<alias>[\w.\-]+)/requests/(?P<id>[\w\-]+)/status")(self._status)
        self.route("GET", r"/(?P<owner>[\w.\-]+)/(?P<alias>[\w.\-]+)/requests/(?P<id>[\w\-]+)")(self._result)
        self.route("GET", r"/files/(?P<id>[\w\-]+)\.mp4")(self._file)
        self.route("GET", r"/files/(?P<id>[\w\-]+)\.png")(self._png)

    @property
    def submissions(self) -> int:
        return len(self.requests_by_id)

    def _auth(self, req: Request) -> Response | None:
        if not req.headers.get("authorization", "").startswith("Key "):
            return Response(401, {"detail": "No credentials"})
        return None

    def _submit(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        args = req.json()
        images = [str(u) for u in args.get("image_urls") or []] if "image_url" not in args else [str(args["image_url"])]
        if ("image_url" in args or "image_urls" in args or not _still(args)) and (not images or not all(
                u.startswith("data:image/") and base64.b64decode(u.split(",", 1)[1]) for u in images)):
            return Response(422, {"detail": [{"loc": ["body", "image_url"], "msg": "image_url must be a URL or data URI",
                                              "type": "value_error"}]})
        rid = f"{next(self._ids):08d}-fake-req"
        owner, alias = req.params["app"].split("/")[:2]
        self.requests_by_id[rid] = {"app": req.params["app"], "args": args, "polls": 0}
        base = f"{self.url}/{owner}/{alias}/requests/{rid}"
        return Response(200, {"request_id": rid, "response_url": base, "status_url": base + "/status",
                               "cancel_url": base + "/cancel", "queue_position": 0},
                        headers={"x-fal-request-id": rid})

    def _done(self, r: dict[str, Any]) -> bool:
        return not self.hold.is_set() and r["polls"] >= 1

    def _status(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        r = self.requests_by_id.get(req.params["id"])
        if r is None:
            return Response(404, {"detail": "Request not found"})
        r["polls"] += 1
        if not self._done(r):
            return Response(202, {"status": "IN_PROGRESS", "logs": None, "request_id": req.params["id"]})
        return Response(200, {"status": "COMPLETED", "logs": None, "metrics": {"inference_time": 1.0},
                              "request_id": req.params["id"]})

    def _result(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        r = self.requests_by_id.get(req.params["id"])
        if r is None:
            return Response(404, {"detail": "Request not found"})
        if not self._done(r):
            return Response(400, {"detail": "Request is still in progress"})
        if "REFUSE" in str(r["args"].get("prompt", "")):
            return Response(422, {"detail": [{"loc": ["body", "prompt"], "type": "content_policy_violation",
                                              "msg": "The content could not be processed because it contained material "
                                                     "flagged by a content checker."}]},
                            headers={"x-fal-request-id": req.params["id"]})
        if _still(r["args"]):
            size = r["args"].get("image_size") or {"width": 64, "height": 48}
            return Response(200, {"images": [{"url": f"{self.url}/files/{req.params['id']}.png", "width": size["width"],
                                              "height": size["height"], "content_type": "image/png"}],
                                  "seed": r["args"].get("seed", 0),
                                  "has_nsfw_concepts": ["NSFW" in str(r["args"].get("prompt", ""))]})
        return Response(200, {"video": {"url": f"{self.url}/files/{req.params['id']}.mp4", "content_type": "video/mp4",
                                        "file_name": "output.mp4", "file_size": 1000}})

    def _file(self, req: Request) -> Response:
        return Response(200, body=tiny_mp4(self.out_seconds, self.out_fps, self.out_size), content_type="video/mp4")

    def _png(self, req: Request) -> Response:
        r = self.requests_by_id.get(req.params["id"], {})
        size = (r.get("args") or {}).get("image_size") or {"width": 64, "height": 48}
        return Response(200, body=tiny_png((min(size["width"], 96), min(size["height"], 96)), (30, 160, 220)),
                        content_type="image/png")


def _still(args: dict[str, Any]) -> bool:
    """A text-to-image request (no `image_url`: it makes a picture, not a clip)."""
    return "image_url" not in args and "image_size" in args
