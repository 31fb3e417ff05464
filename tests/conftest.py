"""Shared fixtures: real media from ../shared/media (skipped when absent), offline hub settings."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
