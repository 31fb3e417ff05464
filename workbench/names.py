"""Names that become file or folder names (case ids, model labels, suite names, Element names).

One rule for all of them, so no name can climb out of its folder: 1 to 64 characters of letters,
digits, '_', '-', '.', starting with a letter or digit (no '/', no '..' prefix, no hidden names, no NUL).
"""
from __future__ import annotations

import re

MAX_NAME = 64
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def check_name(value: str, what: str) -> str:
    """`value` unchanged when it is a safe file-name component, else ValueError saying why and the fix."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty name")
    shown = value if len(value) <= 40 else value[:37] + "..."
    if len(value) > MAX_NAME:
        raise ValueError(f"{what} {shown!r} is {len(value)} characters; use at most {MAX_NAME}")
    if not _SAFE.fullmatch(value):
        raise ValueError(f"{what} {shown!r} must be letters, digits, '_', '-', '.' and start with a letter or "
                         f"digit (it becomes a file name); e.g. {slug(value)!r}")
    return value


def slug(value: str, fallback: str = "x", max_len: int = MAX_NAME) -> str:
    """A safe name made from any string (for suggestions and for display names turned into paths): runs of
    other characters become '-', leading and trailing '-', '.', '_' go, then at most `max_len` characters;
    `fallback` when nothing is left. Callers adding a suffix pass a smaller `max_len` to stay within MAX_NAME."""
    s = re.sub(r"[^A-Za-z0-9_.\-]+", "-", value).strip("-._")
    return (s or fallback)[:max_len]
