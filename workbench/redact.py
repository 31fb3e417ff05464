"""Keys never leave the environment: one place that finds and masks them in what the workbench writes.

A *key variable* is an environment variable that holds a credential: every hosted provider's
(`HEDRA_API_KEY`, `FAL_KEY`, ... registered by `models/hosted/keys.py`) and any variable named like
one (`*_API_KEY`, `*_KEY`, `*_TOKEN`, `*_SECRET`, such as `WANDB_API_KEY` or `HF_TOKEN`). Its value,
when set, is a *secret*. This module is a foundation (it imports nothing of the workbench), so the
suite loader, the store, the snapshot, W&B logging, the report and the provider clients all use the
same functions:

- `scrub(text)`: the text with every secret (and anything shaped like `Authorization: Bearer ...`)
  replaced by `***`;
- `mask(obj)`: a copy of a JSON-like value (dicts, lists, strings) with `scrub` applied to every
  string, keys included: what a snapshot, a record, a W&B config or a report may hold;
- `secret_fields(obj)`: the key paths (`cases.0.description`) of a suite mapping whose values hold a
  secret, with the variable each one holds: a suite that holds a key is refused, naming the field;
- `redact(text)`: `scrub`, and any quoted value that *looks* like a credential (a long unbroken run of
  letters and digits) masked too: for messages that echo what a user typed (validation errors).
"""
from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"

_KEY_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|KEY_ID|KEY_SECRET|TOKEN|API_TOKEN|SECRET|API_SECRET|ACCESS_KEY|"
                       r"SECRET_ACCESS_KEY|PASSWORD)$")
_registered: set[str] = set()  # provider key variables (register_key_env), whatever their names look like

_SECRETISH = re.compile(r"(?i)(\b(?:authorization|x-api-key|api-key)['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|token|key)\s+)?"
                        r"|\bbearer\s+)([A-Za-z0-9_\-.:/+=]{8,})")
# a credential-shaped value: 20+ characters of letters, digits and _-:+= (no spaces, dots or slashes) with an
# unbroken run of 16+ letters and digits, 3+ of them digits (an API key, a token); names and paths have neither
_TOKEN = re.compile(r"(?<![A-Za-z0-9_\-:+=])([A-Za-z0-9_\-:+=]{20,})(?![A-Za-z0-9_\-:+=])")


def register_key_env(*names: str) -> None:
    """Make variables known as key variables (provider modules call this through `register_provider`)."""
    _registered.update(n for n in names if n)


def is_key_env(name: str) -> bool:
    """True for a provider's key variable or a variable named like a credential."""
    return name in _registered or bool(_KEY_NAME.search(name.upper()))


def key_envs() -> dict[str, str]:
    """{variable: value} for every key variable set now (blank values left out)."""
    out = {}
    for name, value in os.environ.items():
        if is_key_env(name):
            value = value.strip()
            # a provider's variable counts from 4 characters; a look-alike name only with a credential-length value
            if len(value) >= (4 if name in _registered else 8):
                out[name] = value
    return out


def secret_values() -> list[str]:
    """Every secret set now, longest first (fal's `id:secret` form: each half is a secret too)."""
    vals: set[str] = set()
    for v in key_envs().values():
        vals.add(v)
        if ":" in v:
            vals.update(x for x in v.split(":") if len(x) >= 4)
    return sorted(vals, key=len, reverse=True)


def scrub(text: Any) -> str:
    """`text` as a string with every secret (and anything shaped like `Authorization: ...`) masked."""
    out = str(text)
    for v in secret_values():
        out = out.replace(v, MASK)
    return _SECRETISH.sub(lambda m: f"{m.group(1)}{MASK}", out)


def looks_secret(value: str) -> bool:
    """A value shaped like a credential: 20+ characters of letters, digits and `_-:+=` holding an unbroken
    run of 16+ letters and digits, 3+ of them digits (`sk-proj-4f...`, `AIzaSy...`, `r8_...`); model
    names (`hunyuanvideo-i2v-720p`), words and paths are not."""
    m = _TOKEN.fullmatch(value.strip())
    if not m:
        return False
    longest = max(re.split(r"[-_:+=]", m.group(1)), key=len)
    return len(longest) >= 16 and any(c.isalpha() for c in longest) and sum(c.isdigit() for c in longest) >= 3


def redact(text: Any) -> str:
    """`scrub`, plus every credential-shaped token masked: for messages that echo a user's value."""
    out = scrub(text)
    return _TOKEN.sub(lambda m: MASK if looks_secret(m.group(1)) else m.group(1), out)


def mask(obj: Any) -> Any:
    """A copy of a JSON-like value with every secret in its strings (and mapping keys) masked. Values
    without a secret come back equal (the same objects for non-strings)."""
    secrets = secret_values()
    if not secrets:
        return obj

    def text(s: str) -> str:
        for v in secrets:
            if v in s:
                s = s.replace(v, MASK)
        return s

    def walk(x: Any) -> Any:
        if isinstance(x, str):
            return text(x)
        if isinstance(x, dict):
            return {(text(k) if isinstance(k, str) else k): walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(walk(v) for v in x) if isinstance(x, list) else tuple(walk(v) for v in x)
        return x

    return walk(obj)


def secret_fields(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(key path, variable) for every string in a mapping or list that holds a secret set now, e.g.
    [("cases.0.description", "FAL_KEY")]. Only variable names are returned, never a value."""
    envs = key_envs()
    if not envs:
        return []
    found: list[tuple[str, str]] = []

    def holds(s: str) -> str | None:
        for name, v in sorted(envs.items(), key=lambda kv: -len(kv[1])):
            parts = [v] + ([x for x in v.split(":") if len(x) >= 8] if ":" in v else [])
            if any(p in s for p in parts):
                return name
        return None

    def walk(x: Any, path: str) -> None:
        if isinstance(x, str):
            name = holds(x)
            if name:
                found.append((path or "(top)", name))
        elif isinstance(x, dict):
            for k, v in x.items():
                name = holds(k) if isinstance(k, str) else None
                shown = MASK if name else str(k)  # a path never echoes a key pasted as a mapping key
                sub = f"{path}.{shown}" if path else shown
                if name:
                    found.append((sub, name))
                walk(v, sub)
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{path}.{i}" if path else str(i))

    walk(obj, prefix)
    return found
