"""A fake Luma Dream Machine API (what lumaai speaks): video generations, their state, public
video URLs.

- `server.hold` set: generations stay `dreaming` until `server.release()`;
- a prompt containing "REFUSE" fails the generation with a moderation reason;
- a frame0 URL that is not https is a 400 (Luma fetches the image itself).
"""
from __future__ import annotations

import itertools
import threading
import uuid
from typing import Any

from .server import FakeServer, Request, Response, tiny_mp4


class FakeLuma(FakeServer):
    def __init__(self, out_seconds: float | None = 1.0, out_fps: float = 8.0, out_size: tuple[int, int] = (64, 36),
                 polls_to_finish: int = 1) -> None:
        super().__init__()
        self.out_seconds, self.out_fps, self.out_size = out_seconds, out_fps, out_size
        self.polls_to_finish = polls_to_finish
        self.gens: dict[str, dict[str, Any]] = {}
        self.keys_seen: set[str] = set()
        self._ids = itertools.count(1)
        self._glock = threading.Lock()
        self.route("POST", r"/generations/video")(self._create)
        self.route("GET", r"/generations/(?P<id>[\w\-]+)")(self._get)
        self.route("GET", r"/cdn/(?P<id>[\w\-]+)\.mp4")(self._download)

    @property
    def submissions(self) -> int:
        return len(self.gens)

    def _auth(self, req: Request) -> Response | None:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or len(auth) < 15:
            return Response(401, {"detail": "Invalid API key"})
        self.keys_seen.add(auth[7:])
        return None

    def _gen(self, gid: str, g: dict[str, Any], state: str, **extra: Any) -> dict[str, Any]:
        return {"id": gid, "generation_type": "video", "state": state, "failure_reason": None,
                "created_at": "2026-01-01T00:00:00Z", "model": g["body"].get("model"),
                "assets": None, "request": g["body"], **extra}

    def _create(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        body = req.json()
        frame0 = ((body.get("keyframes") or {}).get("frame0") or {})
        if frame0 and not str(frame0.get("url", "")).startswith("https://"):
            return Response(400, {"detail": "keyframes.frame0.url must be a public https URL"})
        if body.get("duration") not in ("5s", "9s"):
            return Response(400, {"detail": "duration must be 5s or 9s"})
        with self._glock:
            gid = str(uuid.UUID(int=next(self._ids)))
            self.gens[gid] = {"body": body, "polls": 0}
        return Response(201, self._gen(gid, self.gens[gid], "queued"))

    def _get(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        gid = req.params["id"]
        g = self.gens.get(gid)
        if g is None:
            return Response(404, {"detail": "Generation not found"})
        g["polls"] += 1
        if "REFUSE" in str(g["body"].get("prompt", "")):
            return Response(200, self._gen(gid, g, "failed",
                                           failure_reason="400: prompt not allowed because advanced moderation failed"))
        if self.hold.is_set() or g["polls"] < self.polls_to_finish:
            return Response(200, self._gen(gid, g, "dreaming"))
        return Response(200, self._gen(gid, g, "completed", assets={"video": f"{self.url}/cdn/{gid}.mp4"}))

    def _download(self, req: Request) -> Response:
        g = self.gens[req.params["id"]]
        seconds = self.out_seconds if self.out_seconds is not None else float(g["body"]["duration"].rstrip("s"))
        return Response(200, body=tiny_mp4(seconds, self.out_fps, self.out_size), content_type="video/mp4")
