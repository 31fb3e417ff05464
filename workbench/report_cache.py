"""What lets `workbench report` skip work: a page key over everything the page is drawn from, and the
memo of CIs, tests and figures it keeps between calls (both under OUT/.report-cache/).

The page key hashes the bytes of each run folder's results.jsonl and of the small files the page
reads (suite.json, favourites.json, bestofn.json, judgments.jsonl), the names, sizes and times of the files under
clips/ and series/ (a clip that appears, disappears or is rewritten changes the page), the options,
and the source of the workbench package (a new metric version, template or drawing changes it). When
the key and report.html are what the last call left, nothing is read or drawn.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.memo import ContentMemo

CACHE_DIR = ".report-cache"
SMALL_FILES = ("results.jsonl", "suite.json", "favourites.json", "bestofn.json", "judgments.jsonl")
LISTED_DIRS = ("clips", "series")


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 over the workbench package's sources and templates (once per process)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".j2", ".js", ".css") and "__pycache__" not in p.parts and p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=None)
def source_digest(module: str) -> str:
    """sha256 of one module's source file: a memoised figure's key holds the digest of the code that drew
    it, so an edited drawing function never serves a figure drawn by its older self."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    origin = getattr(spec, "origin", None) if spec else None
    try:
        return hashlib.sha256(Path(origin).read_bytes()).hexdigest() if origin else ""
    except OSError:
        return ""


def _listing(h: "hashlib._Hash", folder: Path) -> None:
    """Names, sizes and modification times of the files below `folder` (not their bytes)."""
    stack = [folder]
    entries = []
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        else:
                            st = e.stat()
                            entries.append(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}")
                    except OSError:
                        entries.append(f"{e.path}\0?")
        except OSError:
            continue
    for line in sorted(entries):
        h.update(line.encode("utf-8", "surrogateescape"))
        h.update(b"\n")


def page_key(run_dirs: list[Path], out_dir: Path, options: dict[str, Any]) -> str:
    """The key of the page these folders and options give (see the module docstring)."""
    h = hashlib.sha256()
    h.update(code_digest().encode())
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    for d in [*run_dirs, out_dir]:
        h.update(str(d.resolve()).encode("utf-8", "surrogateescape") + b"\0")
        for name in SMALL_FILES:
            try:
                with open(d / name, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                h.update(b"\0")
            except OSError:
                h.update(b"<absent>\0")
        for name in LISTED_DIRS:
            _listing(h, d / name)
    return h.hexdigest()


def _stamp(path: Path) -> str | None:
    try:
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return None


def page_is_current(out_dir: Path, key: str) -> bool:
    """Whether OUT/report.html is the page this key gave last time (and nobody has touched it since)."""
    try:
        saved = json.loads((out_dir / CACHE_DIR / "page.json").read_text())
    except (OSError, ValueError):
        return False
    stamp = _stamp(out_dir / "report.html")
    return isinstance(saved, dict) and saved.get("key") == key and stamp is not None and saved.get("page") == stamp


def remember_page(out_dir: Path, key: str) -> None:
    """Record that OUT/report.html is the page of this key (best effort: a cache never fails a report)."""
    folder = out_dir / CACHE_DIR
    tmp = folder / f".page.json.{os.getpid()}.part"
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"key": key, "page": _stamp(out_dir / "report.html")}))
        tmp.replace(folder / "page.json")


def memo_for(out_dir: Path) -> ContentMemo:
    """The memo of CIs, tests and figures kept beside this report."""
    return ContentMemo(out_dir / CACHE_DIR / "memo.json")
