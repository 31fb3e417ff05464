"""Shared fixtures: real media from ../shared/media (skipped when absent), offline hub settings."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from workbench.media import Clip
from workbench.models.base import GenerationRequest, Generator, register

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"
# "fails fast": far below a network timeout (huggingface_hub waits 10 s per try), far above what the
# check itself needs on a loaded 2-core CI machine
FAIL_FAST_S = 5.0


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """../shared/media (real third-party clips and portraits); skips the test when absent."""
    if not (SHARED_MEDIA / "MANIFEST.md").exists():
        pytest.skip(f"real media not found at {SHARED_MEDIA} (a fresh clone has no ../shared); tests that need it skip")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def alexnet_path(tmp_path_factory) -> Path:
    """Random-weight AlexNet state dict: the LPIPS backbone stand-in (real one needs a download)."""
    from workbench.models.tiny import build_tiny

    return build_tiny("alexnet", tmp_path_factory.mktemp("alex") / "alexnet_random.pth")


@pytest.fixture(scope="session")
def raft_small_path(tmp_path_factory) -> Path:
    """Random-weight torchvision RAFT-small state dict."""
    from workbench.models.tiny import build_tiny

    return build_tiny("raft_small", tmp_path_factory.mktemp("raft") / "raft_small_random.pth")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """One tiny random-weight checkpoint folder per diffusers family (workbench.models.tiny), built once."""
    from workbench.models.tiny import build_all

    return build_all(tmp_path_factory.mktemp("tiny-models"))


@register
class CountingGenerator(Generator):
    """A real (tiny) generator for runner tests: a gradient that drifts with the seed; counts its calls."""

    name = "test-drift"
    task = "image-to-video"
    description = "test generator"
    defaults = {"num_frames": 6, "fps": 12, "interrupt_on_call": 0}
    calls = 0

    def generate(self, request: GenerationRequest, progress=None) -> Clip:
        type(self).calls += 1
        if self.params["interrupt_on_call"] and type(self).calls == self.params["interrupt_on_call"]:
            raise KeyboardInterrupt
        img = request.image[:32, :32].astype(np.float32)
        frames = []
        n = self.params["num_frames"]
        for i in range(n):
            frames.append(np.roll(img, i + request.seed, axis=1))
            if progress:
                progress(i + 1, n)
        return Clip.from_frames(np.stack(frames).astype(np.uint8), fps=self.params["fps"], audio=request.audio)


# --- one headless Chromium for every browser test ---------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _ensure_chromium() -> str | None:
    """Install Debian's chromium and Playwright for Python when absent; the reason when that fails."""
    import shutil
    import subprocess
    import sys

    if not Path(CHROMIUM).exists():
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            if shutil.which(cmd[0]) is None or subprocess.run(sudo + cmd, env=env, capture_output=True).returncode:
                return f"could not install chromium ({' '.join(cmd)} failed); install it: apt-get install chromium"
    try:
        import playwright  # noqa: F401
    except ImportError:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "playwright"], capture_output=True)
        if r.returncode:
            return "could not pip install playwright; install it: pip install playwright"
    return None


@pytest.fixture(scope="session")
def browser():
    """A Playwright Browser over Debian's headless Chromium, shared by all browser tests (session).
    Installs chromium / playwright when absent; skips with the reason when that is impossible."""
    why = _ensure_chromium()
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Playwright gives every launch a fresh, empty profile of its own
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
