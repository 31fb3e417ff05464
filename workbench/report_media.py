"""Where the report's clips come from: embedded in report.html as data: URIs, or linked beside it.

Why embed. A clip linked relative to report.html (`clips/x.mp4`) plays only when the page is opened
from disk (file://) next to its clips/ folder. Inside Jupyter it stays black:

- JupyterLab's and Notebook 7's HTML viewer (double-click report.html) renders the page in a sandboxed
  iframe from a blob: URL with `<base href=/files/RUN/report.html?_xsrf=...>`. Relative clip URLs lose
  that `_xsrf` query and a blob: document sends no Referer, so jupyter_server refuses them
  ("Blocking request with no referer" -> 403 "Blocking request from unknown origin"). Untrusted, the
  iframe runs no scripts at all; trusted, a script could put the `_xsrf` back (report.js does, for
  linked clips).
- A browser tab on `/files/RUN/report.html` (the Studio's "report written" link, Lab's "Open in New
  Browser Tab") is served with `Content-Security-Policy: sandbox allow-scripts`: an opaque origin, so
  the clip requests carry no login cookie and are redirected to /login.
- A zipped run folder opened from disk may have only report.html extracted.

A data: URI needs no request, no origin and no script: it plays in all of these and in VS Code's
notebook. It costs page size (4/3 of the clip bytes), so `auto` embeds clips up to a budget
(WORKBENCH_REPORT_EMBED_MB, default DEFAULT_EMBED_MB, of embedded media in the page) and links the rest
with a banner saying where linked clips play; `embed` embeds every clip, `link` none.
"""
from __future__ import annotations

import math
import mimetypes
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from workbench.media import data_uri

ENV_BUDGET = "WORKBENCH_REPORT_EMBED_MB"
DEFAULT_EMBED_MB = 64.0
MODES = ("auto", "embed", "link")
MB = 1024 * 1024

_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/mp4", ".webm": "video/webm", ".mkv": "video/webm",
         ".ogv": "video/ogg", ".gif": "image/gif", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".webp": "image/webp"}


class ReportError(ValueError):
    """A report that cannot be written (one line naming the file or option and the fix)."""


def _error(message: str) -> Exception:
    return ReportError(message)


def mime_type(path: str | Path) -> str:
    """The MIME type a browser needs in a data: URI for this clip or still."""
    suffix = Path(path).suffix.lower()
    return _MIME.get(suffix) or mimetypes.guess_type(str(path))[0] or "application/octet-stream"


def file_uri(path: str | Path) -> str:
    """The file as a base64 data: URI."""
    return data_uri(Path(path).read_bytes(), mime_type(path))


def encoded_size(n_bytes: int, path: str | Path | None = None) -> int:
    """Characters a base64 data: URI of n_bytes takes (with its header when the file's path is given)."""
    header = len(f"data:{mime_type(path)};base64,") if path is not None else 0
    return header + 4 * math.ceil(n_bytes / 3)


def embed_budget_mb(value: float | str | None = None, env: Mapping[str, str] | None = None) -> float:
    """The embed budget in MB: `value` when given, else $WORKBENCH_REPORT_EMBED_MB, else DEFAULT_EMBED_MB.
    A value that is not a number >= 0 is a ReportError naming where it came from."""
    source = "the embed budget"
    if value is None:
        raw = (os.environ if env is None else env).get(ENV_BUDGET)
        if raw is None or not str(raw).strip():
            return DEFAULT_EMBED_MB
        value, source = raw, ENV_BUDGET
    try:
        mb = float(value)
    except (TypeError, ValueError):
        raise _error(f"{source} must be a number of MB >= 0, got {value!r}; e.g. {ENV_BUDGET}=200") from None
    if not math.isfinite(mb) or mb < 0:
        raise _error(f"{source} must be a number of MB >= 0, got {value!r}; e.g. {ENV_BUDGET}=200")
    return mb


def check_mode(mode: str) -> str:
    """`mode` when it is one of MODES, else a ReportError naming them."""
    if mode not in MODES:
        raise _error(f"clips must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


@dataclass
class MediaPlan:
    """What the report did with its clips: how many embedded or linked, their sizes, and why."""

    mode: str
    budget_mb: float
    run_dir: str = "RUN"  # as the banner's commands name it
    embedded: int = 0
    linked: int = 0
    embedded_bytes: int = 0  # characters of the data: URIs in the page
    linked_bytes: int = 0  # file bytes of the linked clips
    needed_bytes: int = 0  # characters every clip would take embedded
    linked_paths: list[str] = field(default_factory=list)
    uris: dict[str, str] = field(default_factory=dict)  # clips of rows not rendered as HTML, embedded

    @property
    def total(self) -> int:
        return self.embedded + self.linked

    @property
    def embedded_mb(self) -> float:
        return self.embedded_bytes / MB

    @property
    def needed_mb(self) -> float:
        return self.needed_bytes / MB

    @property
    def suggested_mb(self) -> int:
        """A budget that would embed every clip (next multiple of 16 MB above the need)."""
        return int(16 * math.ceil((self.needed_mb + 1) / 16))

    @property
    def banner(self) -> str:
        """One paragraph for the page when clips are linked (empty when every clip is embedded)."""
        if not self.linked:
            return ""
        if self.mode == "link":
            why = "clips are linked (--clips link), not embedded in this page"
        else:
            why = (f"{self.linked} of {self.total} clips are linked, not embedded: embedding every clip would add "
                   f"{self.needed_mb:.1f} MB to this page, over the {self.budget_mb:g} MB budget")
        return (f"{why}. Linked clips play when report.html is opened from disk beside its clips/ folder, or in "
                f"JupyterLab's or Notebook's HTML viewer after \u201cTrust HTML\u201d; they stay black in the untrusted "
                f"viewer, in a /files/ browser tab (Jupyter serves that page sandboxed, so clip requests are not "
                f"logged in) and in a copy of report.html without clips/. To embed every clip: "
                f"workbench report {self.run_dir} --clips embed, or raise the budget: {ENV_BUDGET}={self.suggested_mb} "
                f"workbench report {self.run_dir}.")

    def as_dict(self) -> dict[str, Any]:
        """The plan as plain values (for logs and tests)."""
        return {"mode": self.mode, "budget_mb": self.budget_mb, "embedded": self.embedded, "linked": self.linked,
                "embedded_mb": round(self.embedded_mb, 3), "needed_mb": round(self.needed_mb, 3),
                "linked_paths": list(self.linked_paths)}


def _media_panels(grid: Iterable[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(variant index, panel) for every panel that shows a clip or still, in page order."""
    out = []
    for row in grid:
        for cell in row.get("cells") or []:
            for i, p in enumerate(cell.get("panels") or []):
                if p.get("video") and p.get("exists") and p.get("ok", True) and not p.get("absent"):
                    out.append((i, p))
    return out


def assign_sources(grid: Iterable[dict[str, Any]], base_dir: str | Path, mode: str = "auto",
                   budget_mb: float | str | None = None, more: Iterable[str] = ()) -> MediaPlan:
    """Give every media panel of the page's HTML rows (`grid`: the first page of the clip table and the
    personas) its `src` (a data: URI or the relative path it had) and `embedded` flag, and embed the
    clips of the other rows (`more`: their relative paths, in table order) into `plan.uris` for the
    page's script; return the plan. `auto` embeds within the budget, HTML rows first, then the other
    rows in order; whatever does not fit is linked. Each file is read once however often it is shown."""
    mode = check_mode(mode)
    budget = embed_budget_mb(budget_mb)
    base = Path(base_dir)
    panels = [p for _, p in _media_panels(grid)]
    on_page = {str(p["video"]) for p in panels}
    rest = [rel for rel in dict.fromkeys(str(m) for m in more) if rel not in on_page]
    sizes: dict[str, int] = {}
    for rel in [*(str(p["video"]) for p in panels), *rest]:
        if rel not in sizes:
            try:
                sizes[rel] = (base / rel).stat().st_size
            except OSError:
                sizes[rel] = -1
    plan = MediaPlan(mode=mode, budget_mb=budget, run_dir=shlex.quote(str(base)))
    cost = {rel: encoded_size(n, rel) for rel, n in sizes.items() if n >= 0}  # characters in the page
    plan.needed_bytes = sum(cost[str(p["video"])] for p in panels if str(p["video"]) in cost) + \
        sum(cost[rel] for rel in rest if rel in cost)
    limit = budget * MB
    uris: dict[str, str] = {}

    def embed(rel: str) -> bool:
        size = sizes[rel]
        if size < 0 or mode == "link" or (mode == "auto" and rel not in uris
                                          and plan.embedded_bytes + cost[rel] > limit):
            return False
        try:
            uris.setdefault(rel, file_uri(base / rel))
        except OSError:
            return False
        return True

    for p in panels:
        rel = str(p["video"])
        p["embedded"] = embed(rel)
        if p["embedded"]:
            p["src"] = uris[rel]
            plan.embedded += 1
            plan.embedded_bytes += len(p["src"])
        else:
            p["src"] = rel
            plan.linked += 1
            plan.linked_bytes += max(sizes[rel], 0)
            plan.linked_paths.append(rel)
    for rel in rest:
        if embed(rel):
            plan.uris[rel] = uris[rel]
            plan.embedded += 1
            plan.embedded_bytes += len(uris[rel])
        else:
            plan.linked += 1
            plan.linked_bytes += max(sizes[rel], 0)
            plan.linked_paths.append(rel)
    return plan
