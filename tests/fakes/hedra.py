"""A fake Hedra API v3 (what hedra-sdk talks to): files, model submits with idempotency keys, job
status and results, downloads. Behaviour is set per test through attributes:

- `server.hold` set: jobs stay IN_PROGRESS until `server.release()`;
- a prompt containing "REFUSE" fails the job with MODERATION_FAILED (a refusal);
- `out_seconds` / `out_fps` / `out_size`: the clip handed back (None seconds: the asked duration);
- `cost`: what the result says was charged (USD).
"""
from __future__ import annotations

import itertools
import threading
from typing import Any

from .server import FakeServer, Request, Response, tiny_mp4

SUBMIT = r"/v3/models/(?P<model>[\w.\-]+)"


class FakeHedra(FakeServer):
    def __init__(self, out_seconds: float | None = 1.0, out_fps: float = 8.0, out_size: tuple[int, int] = (64, 48),
                 cost: float | None = 0.11, polls_to_finish: int = 1) -> None:
        super().__init__()
        self.out_seconds, self.out_fps, self.out_size, self.cost = out_seconds, out_fps, out_size, cost
        self.polls_to_finish = polls_to_finish
        self.jobs: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.files: dict[str, bytes] = {}
        self.auth_seen: set[str] = set()
        self._ids = itertools.count(1)
        self._jlock = threading.Lock()
        self.route("POST", r"/v3/files")(self._upload)
        self.route("POST", SUBMIT)(self._submit)
        self.route("GET", r"/v3/jobs/(?P<id>[\w\-]+)/status")(self._status)
        self.route("GET", r"/v3/jobs/(?P<id>[\w\-]+)")(self._result)
        self.route("GET", r"/cdn/(?P<name>[\w.\-]+)")(self._download)

    def inject(self, method: str, pattern: str, *statuses: int, body: Any = None,
               headers: dict[str, str] | None = None) -> None:
        """As FakeServer.inject, with Hedra's error body ({"error": {"code", "message"}}) by default."""
        codes = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
        for s in statuses:
            super().inject(method, pattern, s, headers=headers, body=body if body is not None else {
                "error": {"code": codes.get(s, "UNKNOWN"), "message": f"injected {s}", "retryable": s >= 429}})

    @property
    def submissions(self) -> int:
        """Jobs created (a repeated Idempotency-Key answers the first job and is not counted)."""
        return len(self.jobs)

    def _auth(self, req: Request) -> Response | None:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or len(auth) < 12:
            return Response(401, {"error": {"code": "UNAUTHORIZED", "message": "missing or bad API key",
                                            "type": "authentication_error"}})
        self.auth_seen.add(auth[7:])
        return None

    def _upload(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        name, ctype, data = req.files()["file"]
        fid = f"f{next(self._ids)}"
        self.files[fid] = data
        return Response(200, {"url": f"{self.url}/cdn/{fid}?sig=abc", "content_type": ctype,
                              "expires_at": "2099-01-01T00:00:00Z"})

    def _submit(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        body = req.json()
        inp = body["input"]
        for k in ("start_image", "audio"):
            if k in inp and not str(inp[k].get("url", "")).startswith(self.url + "/cdn/"):
                return Response(400, {"error": {"code": "INVALID_ARGUMENT", "message": f"{k} is not an uploaded file",
                                                "param": k}})
        key = req.headers.get("idempotency-key")
        with self._jlock:
            if key and key in self.by_key:
                job = self.jobs[self.by_key[key]]
            else:
                jid = f"job_{next(self._ids):04d}"
                job = {"id": jid, "model": req.params["model"], "input": inp, "polls": 0, "key": key}
                self.jobs[jid] = job
                if key:
                    self.by_key[key] = jid
        return Response(202, {"job_id": job["id"], "model": job["model"], "status": "IN_QUEUE",
                              "status_url": f"/v3/jobs/{job['id']}/status", "result_url": f"/v3/jobs/{job['id']}",
                              "estimated_completion_at": None}, headers={"Location": f"/v3/jobs/{job['id']}"})

    def _state(self, job: dict[str, Any]) -> str:
        if "REFUSE" in str(job["input"].get("prompt", "")):
            return "FAILED"
        if self.hold.is_set() or job["polls"] < self.polls_to_finish:
            return "IN_PROGRESS"
        return "COMPLETED"

    def _status(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        job = self.jobs.get(req.params["id"])
        if job is None:
            return Response(404, {"error": {"code": "NOT_FOUND", "message": "no such job"}})
        job["polls"] += 1
        state = self._state(job)
        return Response(200, {"job_id": job["id"], "status": state,
                              "progress": 1.0 if state == "COMPLETED" else 0.5})

    def _result(self, req: Request) -> Response:
        if (bad := self._auth(req)) is not None:
            return bad
        job = self.jobs.get(req.params["id"])
        if job is None:
            return Response(404, {"error": {"code": "NOT_FOUND", "message": "no such job"}})
        state = self._state(job)
        out: dict[str, Any] = {"job_id": job["id"], "model": job["model"], "status": state, "outputs": []}
        if state == "FAILED":
            out.update(error={"code": "MODERATION_FAILED", "message": "the input image was flagged by moderation"},
                       cost=0.0, currency="USD")
        elif state == "COMPLETED":
            seconds = self.out_seconds if self.out_seconds is not None else job["input"].get("duration_ms", 1000) / 1000
            out["outputs"] = [{"status": "COMPLETED", "asset_id": f"asset_{job['id']}",
                               "url": f"{self.url}/cdn/{job['id']}.mp4?sig=xyz", "content_type": "video/mp4",
                               "width": self.out_size[0], "height": self.out_size[1],
                               "duration_ms": int(seconds * 1000), "fps": int(self.out_fps), "voice_id": None,
                               "error": None}]
            if self.cost is not None:
                out.update(cost=self.cost, currency="USD")
        return Response(200, out)

    def _download(self, req: Request) -> Response:
        name = req.params["name"]
        if name.endswith(".mp4"):
            job = self.jobs[name[:-4]]
            seconds = self.out_seconds if self.out_seconds is not None else job["input"].get("duration_ms", 1000) / 1000
            return Response(200, body=tiny_mp4(seconds, self.out_fps, self.out_size), content_type="video/mp4")
        return Response(200, body=self.files[name])
