"""Hosted generators: models that run on a provider's servers (Hedra, fal, Replicate, Veo, Sora, ...),
registered beside the open ones. One file per provider; price rules in prices.yaml; the contract a
provider file implements is in `base.py`.

Importing this package registers every provider whose module is listed in `PROVIDER_MODULES` (the
official clients are imported lazily, only when a job runs, so the registry works without them).
"""
from __future__ import annotations

import importlib

from workbench.models.hosted.base import (Fault, HostedGenerator, KeyMissing, Poll, ProviderError,  # noqa: F401
                                          Refused, RemoteTimeout, RetryPolicy)
from workbench.models.hosted.keys import PROVIDERS, Provider, get_provider, providers, register_provider, scrub  # noqa: F401

# provider modules, imported for their registrations (another provider: add its module here)
PROVIDER_MODULES: tuple[str, ...] = ("hedra", "fal", "replicate", "veo", "google_image", "sora", "runway", "luma",
                                     "elevenlabs")

_loaded = False


def load_providers() -> None:
    """Import every provider module once (each registers its Provider and its models)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in PROVIDER_MODULES:
        importlib.import_module(f"workbench.models.hosted.{mod}")


load_providers()
