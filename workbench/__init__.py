"""The workbench: generate image-to-video clips across models, score them, compare them."""
from __future__ import annotations

__version__ = "0.1.0"
