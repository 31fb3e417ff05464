"""Content-keyed memos: a result is reused only while the exact inputs that produced it are unchanged.

The report of a 10,000-clip run recomputes little when one record is added: every bootstrap CI,
permutation test and figure is keyed by the content of what it computes from (the numbers, the
options, the code's version), never by a file time or a record count. A changed record, a new metric
version or a joined run therefore changes the key of exactly what it touches, and nothing stale can
be served: a key that matches is, by construction, the same computation.

`ContentMemo` is a plain mapping persisted as one JSON file; `active()` is the memo that low-level
code (`workbench.metrics.stats`, `workbench.ranking`) consults, set for the duration of a report with
`using(memo)`. Without an active memo every call computes (the library's default behaviour).
No workbench imports: any layer may use it.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

_ACTIVE: contextvars.ContextVar["ContentMemo | None"] = contextvars.ContextVar("workbench_memo", default=None)


def content_key(*parts: Any) -> str:
    """A sha256 over the parts, serialised canonically (JSON with sorted keys; numpy arrays by bytes,
    dtype and shape; anything else by repr)."""
    h = hashlib.sha256()

    def default(o: Any) -> Any:
        tobytes = getattr(o, "tobytes", None)
        if callable(tobytes):  # numpy arrays and scalars: exact bytes, not a rounded text form
            h.update(str(getattr(o, "dtype", "")).encode() + str(getattr(o, "shape", "")).encode())
            h.update(tobytes())
            return f"<array {getattr(o, 'shape', '')}>"
        if isinstance(o, (set, frozenset)):
            return sorted(map(repr, o))
        return repr(o)

    h.update(json.dumps(parts, sort_keys=True, default=default, allow_nan=True).encode())
    return h.hexdigest()


class ContentMemo:
    """Results by content key, optionally loaded from and saved to one JSON file.

    Values must be JSON-serialisable (numbers, strings, lists, dicts, None). `save()` keeps only the
    entries used since loading, so the file holds what the last computation needed and never grows
    with history."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._data: dict[str, Any] = {}
        self._used: set[str] = set()
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        if self.path is not None:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self._data = loaded
            except (OSError, ValueError):
                self._data = {}  # absent or torn: start empty (a cache is never a source of truth)

    def get(self, kind: str, parts: tuple, compute: Callable[[], Any]) -> Any:
        """The memoised value of `compute()` for these parts; computed and stored when absent."""
        key = f"{kind}:{content_key(kind, *parts)}"
        with self._lock:
            if key in self._data:
                self.hits += 1
                self._used.add(key)
                return self._data[key]
        value = compute()
        with self._lock:
            self.misses += 1
            self._data[key] = value
            self._used.add(key)
        return value

    def save(self) -> None:
        """Write the entries used since loading (atomically); a failure to write is not an error."""
        if self.path is None:
            return
        keep = {k: self._data[k] for k in self._used if k in self._data}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(keep, separators=(",", ":"), allow_nan=True), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


def active() -> ContentMemo | None:
    """The memo set by `using`, or None (compute everything)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def using(memo: ContentMemo | None) -> Iterator[ContentMemo | None]:
    """Make `memo` the active one inside the block."""
    token = _ACTIVE.set(memo)
    try:
        yield memo
    finally:
        _ACTIVE.reset(token)


def memoised(kind: str, parts: tuple, compute: Callable[[], Any]) -> Any:
    """`compute()` through the active memo when there is one, else directly."""
    memo = _ACTIVE.get()
    return compute() if memo is None else memo.get(kind, parts, compute)
