"""Providers, their keys and base URLs, and scrubbing keys out of text.

A provider is one hosted service (Hedra, fal, Replicate, ...). Its API key comes from the environment
(the variable its official client reads) and never from a suite; its base URL can be pointed elsewhere
(a local fake server in the tests, a proxy) with `WORKBENCH_<PROVIDER>_BASE_URL`. Keys never enter a
record, a snapshot, a log or a report: every message that leaves a provider call goes through `scrub`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

# scrubbing: one implementation for the whole workbench (workbench.redact); provider key variables are
# registered there by `register_provider` (MASK, scrub, secret_values re-exported: hosted code imports them here)
from workbench.redact import MASK, register_key_env, scrub, secret_values  # noqa: F401


@dataclass(frozen=True)
class Provider:
    """One hosted service. `key_env` is the variable the official client reads (alternatives in
    `alt_key_envs`); `base_url_env` redirects the client (tests, proxies)."""

    name: str  # short id: "hedra", "fal", "replicate"
    title: str  # shown to people: "Hedra"
    key_env: str  # HEDRA_API_KEY
    base_url_env: str  # WORKBENCH_HEDRA_BASE_URL
    default_base_url: str
    client_package: str  # the PyPI package of the official client
    docs: str = ""
    alt_key_envs: tuple[str, ...] = ()  # also accepted (e.g. FAL_KEY_ID + FAL_KEY_SECRET as one pair)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str | None:
        """The key from the environment (None when absent or blank). Never log or store it."""
        for env in (self.key_env, *self.alt_key_envs):
            value = os.environ.get(env, "").strip()
            if value:
                return value
        return None

    def key_present(self) -> bool:
        return self.key() is not None

    def base_url(self) -> str:
        return (os.environ.get(self.base_url_env, "").strip() or self.default_base_url).rstrip("/")

    def base_url_overridden(self) -> bool:
        return bool(os.environ.get(self.base_url_env, "").strip())

    def missing_key_message(self, model: str | None = None) -> str:
        who = f"model '{model}' runs on {self.title}" if model else self.title
        return (f"{who} and needs an API key: set {self.key_env} in the environment "
                f"(see `workbench providers check`)")

    def check(self) -> dict[str, Any]:
        """One row of `workbench providers check`: no key value, only whether it is there."""
        return {"provider": self.name, "title": self.title, "key_env": self.key_env,
                "key_present": self.key_present(), "base_url": self.base_url(),
                "base_url_env": self.base_url_env, "base_url_overridden": self.base_url_overridden(),
                "client": self.client_package, "client_installed": _installed(self.client_package),
                "docs": self.docs}


PROVIDERS: dict[str, Provider] = {}


def register_provider(provider: Provider) -> Provider:
    """Make a provider known (by its `name`); provider modules call this on import."""
    PROVIDERS[provider.name] = provider
    register_key_env(provider.key_env, *provider.alt_key_envs)
    return provider


def get_provider(name: str) -> Provider:
    # the providers registered when this package loaded (`workbench.models.hosted.load_providers`)
    if name not in PROVIDERS:
        raise KeyError(f"unknown provider '{name}'; known: {', '.join(sorted(PROVIDERS))}")
    return PROVIDERS[name]


def providers() -> dict[str, Provider]:
    return dict(PROVIDERS)


def _installed(package: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(package)
        return True
    except metadata.PackageNotFoundError:
        return False
