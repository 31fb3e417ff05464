"""A small threaded HTTP server for provider fakes: routes, injected faults, request counts.

A provider fake (tests/fakes/hedra.py, ...) is a `FakeServer` with routes that answer the way the
provider's API does (paths, status codes, JSON shapes), so the provider's *official client* can be
pointed at `server.url` and run unchanged::

    server = FakeServer()

    @server.route("POST", r"/v1/jobs")
    def submit(req):                      # req: Request (method, path, query, headers, body, json())
        return Response(202, {"id": "job_1"})

    server.inject("POST", r"/v1/jobs", 429, 500)   # the next two matching calls fail like this
    with server:                           # started on 127.0.0.1:<free port>, stopped on exit
        ... server.url ...
        assert server.count("POST", r"/v1/jobs") == 3

`server.hold` / `server.release()` is a gate a fake can consult to keep a job "processing" until the
test says so (the kill-during-polling tests). Fakes run in the test process; a `workbench run`
subprocess reaches them over loopback, so a kill -9 of the run leaves the fake's counts intact.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # the route pattern's named groups

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def files(self) -> dict[str, tuple[str | None, str, bytes]]:
        """multipart/form-data parts: {field: (filename, content type, bytes)}."""
        ctype = self.headers.get("content-type", "")
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + self.body)
        out = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            out[name] = (part.get_filename(), part.get_content_type(), part.get_payload(decode=True) or b"")
        return out


@dataclass
class Response:
    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


Handler = Callable[[Request], Response]


class FakeServer:
    """Routes (method + regex on the path) answered from handler functions, on a background thread."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern, Handler]] = []
        self.requests: list[Request] = []
        self._faults: list[tuple[str, re.Pattern, list[Response]]] = []
        self._lock = threading.Lock()
        self.hold = threading.Event()  # set: jobs stay "processing" (fakes consult it)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # routes and faults -------------------------------------------------------------------------------
    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.routes.append((method.upper(), re.compile(pattern + r"$"), fn))
            return fn
        return deco

    def inject(self, method: str, pattern: str, *statuses: int, body: Any = None,
               headers: dict[str, str] | None = None) -> None:
        """The next len(statuses) calls matching (method, pattern) get these statuses (with `body` as
        JSON) instead of the route's answer."""
        responses = [Response(s, body if body is not None else {"error": f"injected {s}"}, headers=dict(headers or {}))
                     for s in statuses]
        with self._lock:
            self._faults.append((method.upper(), re.compile(pattern + r"$"), responses))

    def count(self, method: str, pattern: str) -> int:
        rx = re.compile(pattern + r"$")
        with self._lock:
            return sum(r.method == method.upper() and bool(rx.match(r.path)) for r in self.requests)

    def release(self) -> None:
        self.hold.clear()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # serving -----------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        with self._lock:
            self.requests.append(req)
            for method, rx, queue in self._faults:
                if method == req.method and rx.match(req.path) and queue:
                    return queue.pop(0)
        for method, rx, fn in self.routes:
            m = rx.match(req.path)
            if method == req.method and m:
                req.params = m.groupdict()
                return fn(req)
        return Response(404, {"detail": f"no route for {req.method} {req.path}"})

    def start(self) -> "FakeServer":
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _do(self) -> None:
                parts = urlsplit(self.path)
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Request(self.command, parts.path, parse_qs(parts.query),
                              {k.lower(): v for k, v in self.headers.items()}, body)
                try:
                    resp = server.handle(req)
                except Exception as e:  # a bug in a fake: answer 599 so the test sees it
                    resp = Response(599, {"detail": f"fake failed: {type(e).__name__}: {e}"})
                payload = resp.body if resp.json is None else json.dumps(resp.json).encode()
                ctype = resp.content_type or ("application/json" if resp.json is not None else "application/octet-stream")
                self.send_response(resp.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _do

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def tiny_mp4(seconds: float = 1.0, fps: float = 8.0, size: tuple[int, int] = (64, 48), audio: bool = False) -> bytes:
    """Bytes of a small valid H.264 mp4 (moving gradient), the output fakes hand back."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from workbench.media import Audio, Clip

    w, h = size
    n = max(1, int(round(seconds * fps)))
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    frames = np.stack([np.broadcast_to(((x + 9 * i) % 256), (h, w, 3)).astype(np.uint8) for i in range(n)])
    track = Audio(np.zeros(int(16000 * n / fps), dtype=np.float32), 16000) if audio else None
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "out.mp4"
        Clip.from_frames(frames, fps, track).save(p)
        return p.read_bytes()


def tiny_png(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (128, 128, 128)) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), color, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
