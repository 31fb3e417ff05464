"""A fake OpenAI Videos API (what openai's `client.videos` speaks): create (multipart), retrieve,
download the content.

- `server.hold` set: videos stay in_progress until `server.release()`;
- a prompt containing "REFUSE" fails the video with error code `moderation_blocked`; one containing
  "BLOCK" is refused at submit (a 400 with that code);
- an input_reference whose size differs from `size` is a 400 (as Sora does);
- a repeated Idempotency-Key answers the first video and is not counted;
- `out_seconds` / `out_fps` / `out_size`: the clip handed back (None seconds: the asked duration).
"""
from __future__ import annotations

import io
import itertools
import threading
import time
from typing import Any

from .server import FakeServer, Request, Response, tiny_mp4


class FakeSora(FakeServer):
    def __init__(self, out_seconds: float | None = 1.0, out_fps: float = 8.0, out_size: tuple[int, int] = (64, 36),
                 polls_to_finish: int = 1) -> None:
        super().__init__()
        self.out_seconds, self.out_fps, self.out_size = out_seconds, out_fps, out_size
        self.polls_to_finish = polls_to_finish
        self.videos: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.keys_seen: set[str] = set()
        self._ids = itertools.count(1)
        self._vlock = threading.Lock()
        self.route("POST", r"/v1/videos")(self._create)
        self.route("GET", r"/v1/videos/(?P<id>[\w\-]+)")(self._retrieve)
        self.route("GET", r"/v1/videos/(?P<id>[\w\-]+)/content")(self._content)

    @property
    def submissions(self) -> int:
        return len(self.videos)

    def _auth(self, req: Request) -> Response | None:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or len(auth) < 15:
            return Response(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                            "param": None, "code": "invalid_api_key"}})
        self.keys_seen.add(auth[7:])
        return None

    def _error(self, status: int, code: str, message: str, param: str | None = None) -> Response:
        return Response(status, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                           "code": code}})

    def _video(self, v: dict[str, Any]) -> dict[str, Any]:
        # `seconds`: what the clip handed back lasts (the asked value unless out_seconds says otherwise)
        seconds = v["seconds"] if self.out_seconds is None else f"{self.out_seconds:g}"
        out = {"id": v["id"], "object": "video", "created_at": v["created_at"], "model": v["model"],
               "progress": v["progress"], "seconds": seconds, "size": v["size"], "status": v["status"],
               "prompt": v["prompt"], "completed_at": None, "expires_at": None, "error": v.get("error"),
               "remixed_from_video_id": None}
        return out

    def _create(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        files = req.files()
        form = {k: v[2].decode() for k, v in files.items() if k != "input_reference"}
        size = form.get("size", "720x1280")
        if form.get("seconds", "4") not in ("4", "8", "12"):
            return self._error(400, "invalid_value", "seconds must be one of 4, 8, 12", "seconds")
        if "BLOCK" in form.get("prompt", ""):
            return self._error(400, "moderation_blocked", "Your request was blocked by our moderation system.")
        if "input_reference" in files:
            from PIL import Image

            w, h = Image.open(io.BytesIO(files["input_reference"][2])).size
            if f"{w}x{h}" != size:
                return self._error(400, "invalid_value", f"Inpaint image must match the requested width and height "
                                   f"({w}x{h} given, {size} requested)", "input_reference")
        key = req.headers.get("idempotency-key")
        with self._vlock:
            if key and key in self.by_key:
                return Response(200, self._video(self.videos[self.by_key[key]]))
            vid = f"video_{next(self._ids):04d}"
            v = {"id": vid, "created_at": int(time.time()), "model": form.get("model", "sora-2"), "progress": 0,
                 "seconds": form.get("seconds", "4"), "size": size, "status": "queued", "prompt": form.get("prompt"),
                 "polls": 0}
            self.videos[vid] = v
            if key:
                self.by_key[key] = vid
        return Response(200, self._video(v))

    def _retrieve(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        v = self.videos.get(req.params["id"])
        if v is None:
            return self._error(404, "not_found", f"Video {req.params['id']} not found")
        v["polls"] += 1
        if "REFUSE" in (v["prompt"] or ""):
            v.update(status="failed", error={"code": "moderation_blocked",
                                             "message": "The generated video was flagged by our moderation system."})
        elif self.hold.is_set() or v["polls"] < self.polls_to_finish:
            v.update(status="in_progress", progress=50)
        else:
            v.update(status="completed", progress=100)
        return Response(200, self._video(v))

    def _content(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        v = self.videos.get(req.params["id"])
        if v is None or v["status"] != "completed":
            return self._error(404, "not_found", "Video content is not available")
        seconds = self.out_seconds if self.out_seconds is not None else float(v["seconds"])
        return Response(200, body=tiny_mp4(seconds, self.out_fps, self.out_size), content_type="video/mp4")
