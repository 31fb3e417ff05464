"""How a clip on disk reaches the browser, in JupyterLab, in a plain Jupyter server and without one.

The kernel runs on the machine that holds the files, the browser may not. A `<video src="/abs/path">`
is answered with 404 by every Jupyter server, and a path relative to the notebook is resolved only
inside JupyterLab's own output renderer (not inside widgets). So the Studio decides per clip:

1. **Served** (`/files/...`): when the kernel was started by a Jupyter server (JupyterLab, Notebook 7,
   nbclassic) and the clip lies under that server's root folder, the clip is served by the server's
   own `/files/` route: `<base_url>files/<path relative to the server root>`. Nothing is copied, any
   size plays and seeks, and it works for run folders outside the notebook's folder as long as they
   are under the root (`make lab` uses the repository root, so `runs/` is always reachable).
   The server is found from the kernel's parent process (the server that spawned it); failing that,
   from the running server whose root holds the kernel's working folder.
2. **Embedded** (bytes sent through the widget, played from a blob: URL): when there is no server
   (nbclient, VS Code, a server whose root does not hold the clip) or the path holds a hidden folder
   (Jupyter refuses to serve those). Clips up to `WORKBENCH_EMBED_MAX_MB` (default 40 MB) are
   embedded; a larger one shows a one-line message naming the file instead of a player.

`WORKBENCH_SERVER_ROOT` (and optionally `WORKBENCH_BASE_URL`, default "/") forces mode 1 for a server
the kernel cannot discover (for example a kernel started by a remote gateway).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

EMBED_MAX_MB = float(os.environ.get("WORKBENCH_EMBED_MAX_MB", "40"))


@dataclass(frozen=True)
class ServerInfo:
    root: Path
    base_url: str  # always ends with "/"


@dataclass(frozen=True)
class VideoSource:
    """What the browser gets for one clip: a URL, or the bytes to embed, or a reason it gets neither."""

    url: str | None = None
    data: bytes | None = None
    error: str | None = None
    mode: str = "url"  # "url" | "embed" | "error"

    def as_item(self) -> dict:
        """The widget-state fields of this source (`src`, `data`, `error`)."""
        return {"src": self.url or "", "data": self.data or b"", "error": self.error or ""}


def _norm_base(base: str | None) -> str:
    base = base or "/"
    if not base.startswith("/"):
        base = "/" + base
    return base if base.endswith("/") else base + "/"


@lru_cache(maxsize=1)
def jupyter_server() -> ServerInfo | None:
    """The Jupyter server this kernel belongs to (root folder and base URL), or None when there is none."""
    forced = os.environ.get("WORKBENCH_SERVER_ROOT")
    if forced:
        return ServerInfo(Path(forced).expanduser().resolve(), _norm_base(os.environ.get("WORKBENCH_BASE_URL")))
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    try:
        servers = list(list_running_servers())
    except Exception:
        return None
    ppid = os.getppid()
    for s in servers:
        if s.get("pid") == ppid and s.get("root_dir"):
            return ServerInfo(Path(s["root_dir"]).resolve(), _norm_base(s.get("base_url")))
    # a kernel started through a wrapper: the server whose root holds our working folder (deepest wins)
    cwd = Path.cwd().resolve()
    best = None
    for s in servers:
        root = s.get("root_dir")
        if not root:
            continue
        root = Path(root).resolve()
        if cwd == root or root in cwd.parents:
            if best is None or len(root.parts) > len(best.root.parts):
                best = ServerInfo(root, _norm_base(s.get("base_url")))
    return best


def served_url(path: str | Path, server: ServerInfo | None) -> str | None:
    """The `/files/` URL of a file under the server root, or None (not under it, or in a hidden folder)."""
    if server is None:
        return None
    p = Path(path).resolve()
    try:
        rel = p.relative_to(server.root)
    except ValueError:
        return None
    if any(part.startswith(".") for part in rel.parts):
        return None  # Jupyter's contents manager refuses hidden files by default
    try:
        version = p.stat().st_mtime_ns
    except OSError:
        version = 0
    return f"{server.base_url}files/{quote(rel.as_posix())}?v={version}"


def video_source(path: str | Path, server: ServerInfo | None | bool = True,
                 embed_max_mb: float | None = None) -> VideoSource:
    """How the browser should load the clip at `path` (see the module docstring).

    `server=True` discovers the kernel's server; pass None to force embedding, or a ServerInfo."""
    p = Path(path)
    if not p.is_file():
        return VideoSource(error=f"{p}: clip not found", mode="error")
    info = jupyter_server() if server is True else (server or None)
    url = served_url(p, info)
    if url:
        return VideoSource(url=url, mode="url")
    limit = EMBED_MAX_MB if embed_max_mb is None else embed_max_mb
    size_mb = p.stat().st_size / 1e6
    if size_mb > limit:
        return VideoSource(error=f"{p.name}: {size_mb:.0f} MB is too large to embed (limit {limit:g} MB, "
                                 "WORKBENCH_EMBED_MAX_MB); open it from a server whose root holds it", mode="error")
    return VideoSource(data=p.read_bytes(), mode="embed")


def mime_type(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    return {".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
            ".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".flac": "audio/flac",
            ".ogg": "audio/ogg", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".webp": "image/webp"}.get(suffix, "application/octet-stream")
