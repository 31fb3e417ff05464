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
