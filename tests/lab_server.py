"""A JupyterLab (or Notebook 7) server for real-browser tests, reusable by any test module.

`start_lab(root, state_dir)` starts `python -m jupyterlab` on a free localhost port with a token over
`root` (as root with --allow-root), with fresh config/settings/runtime folders under `state_dir` so the
user's own Jupyter settings never leak in; it waits for /api/status and returns a `LabServer` (base URL,
token, log path, process). `LabServer.stop()` ends it. The same server also answers Notebook 7's
/tree and /notebooks routes when the `notebook` package is installed (both are jupyter_server apps).

Usage from a test module::

    @pytest.fixture(scope="session")
    def lab_server(tmp_path_factory):
        root = tmp_path_factory.mktemp("labroot")
        with running_lab(root, tmp_path_factory.mktemp("labstate")) as server:
            yield server
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

START_TIMEOUT_S = 90.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """A running Jupyter server: where it listens, its token, its log and its process."""

    base: str
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen

    def url(self, path: str) -> str:
        """base + path with the token as a query parameter (path starts with '/')."""
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"

    def log_text(self) -> str:
        """The server's log so far (stdout and stderr together)."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate the server (kill after 20 s)."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def has_notebook7() -> bool:
    """Whether Notebook 7 (the `notebook` package, version 7 or later) is installed."""
    try:
        from importlib.metadata import version

        return int(version("notebook").split(".")[0]) >= 7
    except Exception:
        return False


def start_lab(root: Path, state_dir: Path, env: dict[str, str] | None = None,
              settings: dict[tuple[str, str], dict] | None = None) -> LabServer:
    """Start JupyterLab over `root`; Jupyter's own state (config, runtime, workspaces, settings) lives
    in `state_dir`. `settings` maps (extension, plugin) to user settings, e.g.
    {("notebook-extension", "tracker"): {"autoStartDefaultKernel": True}}. Raises RuntimeError with the
    log's tail when the server does not answer within START_TIMEOUT_S."""
    root, state_dir = Path(root), Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    log = state_dir / "server.log"
    defaults = {("apputils-extension", "notification"): {"fetchNews": "false"}}
    for (ext, name), value in {**defaults, **(settings or {})}.items():
        folder = state_dir / "settings" / "@jupyterlab" / ext
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    full_env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(state_dir / "rt"), "JUPYTER_CONFIG_DIR": str(state_dir / "cfg"),
                "JUPYTERLAB_WORKSPACES_DIR": str(state_dir / "ws"), "JUPYTERLAB_SETTINGS_DIR": str(state_dir / "settings"),
                "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", **(env or {})}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=root)
    server = LabServer(f"http://127.0.0.1:{port}", token, root, log, proc)
    t0 = time.monotonic()
    while True:
        try:
            urllib.request.urlopen(server.url("/api/status"), timeout=2)
            return server
        except Exception:
            if proc.poll() is not None or time.monotonic() - t0 > START_TIMEOUT_S:
                server.stop()
                raise RuntimeError(f"JupyterLab did not start: {server.log_text()[-2000:]}")
            time.sleep(0.5)


@contextlib.contextmanager
def running_lab(root: Path, state_dir: Path, **kwargs) -> Iterator[LabServer]:
    """start_lab as a context manager: the server stops when the block ends."""
    server = start_lab(root, state_dir, **kwargs)
    try:
        yield server
    finally:
        server.stop()
