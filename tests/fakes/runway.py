"""A fake Runway API (what runwayml speaks): image_to_video tasks, task status with cost in
credits, presigned output downloads.

- `server.hold` set: tasks stay RUNNING until `server.release()`;
- a promptText containing "REFUSE" fails the task with failureCode `SAFETY.INPUT.TEXT`;
- a promptImage that is not a data URI or https URL is a 400;
- `credits_per_second`: what a finished task says it cost.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any

from .server import FakeServer, Request, Response, tiny_mp4


class FakeRunway(FakeServer):
    def __init__(self, out_seconds: float | None = 1.0, out_fps: float = 8.0, out_size: tuple[int, int] = (64, 36),
                 polls_to_finish: int = 1, credits_per_second: int = 5) -> None:
        super().__init__()
        self.out_seconds, self.out_fps, self.out_size = out_seconds, out_fps, out_size
        self.polls_to_finish, self.credits_per_second = polls_to_finish, credits_per_second
        self.tasks: dict[str, dict[str, Any]] = {}
        self.keys_seen: set[str] = set()
        self._ids = itertools.count(1)
        self._tlock = threading.Lock()
        self.route("POST", r"/v1/image_to_video")(self._create)
        self.route("GET", r"/v1/tasks/(?P<id>[\w\-]+)")(self._task)
        self.route("GET", r"/out/(?P<id>[\w\-]+)\.mp4")(self._download)

    @property
    def submissions(self) -> int:
        return len(self.tasks)

    def _auth(self, req: Request) -> Response | None:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or len(auth) < 15:
            return Response(401, {"error": "Invalid API key"})
        if req.headers.get("x-runway-version") != "2024-11-06":
            return Response(400, {"error": "X-Runway-Version header is missing or unsupported"})
        self.keys_seen.add(auth[7:])
        return None

    def _create(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        body = req.json()
        image = str(body.get("promptImage", ""))
        if not (image.startswith("data:image/") or image.startswith("https://")):
            return Response(400, {"error": "promptImage must be an HTTPS URL or a data URI"})
        if body.get("duration") not in (5, 10):
            return Response(400, {"error": "duration must be 5 or 10"})
        with self._tlock:
            tid = f"task-{next(self._ids):04d}"
            self.tasks[tid] = {"body": body, "polls": 0}
        return Response(200, {"id": tid})

    def _task(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        tid = req.params["id"]
        t = self.tasks.get(tid)
        if t is None:
            return Response(404, {"error": "Task not found"})
        t["polls"] += 1
        base = {"id": tid, "createdAt": "2026-01-01T00:00:00.000Z"}
        credits = self.credits_per_second * int(t["body"]["duration"])
        if "REFUSE" in str(t["body"].get("promptText", "")):
            return Response(200, base | {"status": "FAILED", "failure": "The prompt did not pass content moderation.",
                                         "failureCode": "SAFETY.INPUT.TEXT", "cost": {"credits": 0}})
        if self.hold.is_set() or t["polls"] < self.polls_to_finish:
            return Response(200, base | {"status": "RUNNING", "progress": 0.5, "estimatedCost": {"credits": credits}})
        return Response(200, base | {"status": "SUCCEEDED", "output": [f"{self.url}/out/{tid}.mp4?_jwt=presigned"],
                                     "cost": {"credits": credits}})

    def _download(self, req: Request) -> Response:
        if "authorization" in req.headers:
            return Response(400, {"error": "presigned URLs take no Authorization header"})
        t = self.tasks[req.params["id"]]
        seconds = self.out_seconds if self.out_seconds is not None else float(t["body"]["duration"])
        return Response(200, body=tiny_mp4(seconds, self.out_fps, self.out_size), content_type="video/mp4")
