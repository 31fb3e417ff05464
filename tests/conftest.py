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
