"""File hashing shared by the experiment runner and the metrics (no workbench imports, so anything can use it)."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=256)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hash(path: Path | None) -> str | None:
    """sha256 of a file's bytes (cached by path+mtime+size); None when there is no such file."""
    if path is None or not path.is_file():
        return None
    st = path.stat()
    return _file_sha256(str(path), st.st_mtime_ns, st.st_size)
