"""The report's clip table: one row per (case, seed), one column per model, for runs of any size.

A benchmark run holds thousands of clips, so the page does not lay them all out. The report writes
the table once as compact data (`table_data`: numbers, indexes into shared string tables, per-frame
curves quantised to one character per point) and `report.js` pages, filters and sorts it in the
browser, building clips and curves only for the rows on screen. The first page is also rendered as
HTML (`first_page`), so a viewer that runs no scripts (JupyterLab's untrusted HTML viewer) shows a
readable page with a note on how to see the rest.

Row semantics (the same query the Studio's Compare offers):
- a row is one case and one variant (seed, output); its cells are the models' clips of that pair;
- a cell's status is `ok`, `failed` or `still` (a finished clip below the motion floor for its size,
  `workbench.ranking.is_still`);
- ★ marks the best value of a score in the row (as shown; a still clip earns none on a score that
  rewards stillness; none when every value is equal), computed here once for both renderers.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from workbench.formatting import fmt_number
from workbench.memo import memoised
from workbench.metrics.registry import applicable_scores
from workbench.metrics.stats import score_value
from workbench.ranking import MOTION_FLOOR, MOTION_SCORE, floor_for, is_still, shown_flow
from workbench.runset import media_of

PAGE_ROWS = 10  # rows per page, first page included
SERIES_POINTS = 64  # a per-frame curve is shown with at most this many points (bin means beyond)
LEVELS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"  # one character per point
GAP = "~"  # a frame without a value
_LEVEL_CHARS = np.array(list(LEVELS))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MEDIA_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", *IMAGE_SUFFIXES)


def media_kind(path: str | None) -> str:
    if not path:
        return ""
    return "image" if path.lower().endswith(IMAGE_SUFFIXES) else "video"


def media_file(run_dir: Path, rel: Any) -> bool:
    """Whether a record's clip can be shown: a relative path (as the runner writes it) to a media file
    that exists. An absolute path or a non-media file named by a hand-edited record is never read."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or not rel.lower().endswith(MEDIA_SUFFIXES):
        return False
    return (run_dir / rel).is_file()


def variant(r: dict[str, Any]) -> tuple:
    return (r.get("seed"), r.get("output") or 0)


def variant_label(v: tuple) -> str:
    seed, out = v
    return f"seed {seed}" + (f" \u00b7 output {out}" if out else "")


def row_id(key: tuple) -> str:
    """The HTML id of a table row: `row-CASE__seedS` (and `_outO` for outputs past the first)."""
    case, (seed, out) = key
    return f"row-{case}__seed{seed}" + (f"_out{out}" if out else "")


def quantise(values: list[Any], points: int = SERIES_POINTS) -> list[Any] | None:
    """A per-frame series as [lo, hi, frames, text]: at most `points` bin means, each one character of
    LEVELS between lo and hi (1/63 of the range: a curve's shape, not its digits, which the cell
    shows), GAP where a bin has no value. None when no frame has a finite value."""
    try:
        vals = np.asarray(values if values is not None else [], dtype=np.float64).ravel()  # None -> nan
    except (TypeError, ValueError):  # a hand-edited series with text in it: keep the numbers
        vals = np.asarray([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
                           for v in values], dtype=np.float64)
    finite = np.isfinite(vals)
    if not finite.any():
        return None
    n = len(vals)
    lo, hi = float(vals[finite].min()), float(vals[finite].max())
    if n > points:
        edges = (np.arange(points + 1) * n) // points
        sums = np.add.reduceat(np.where(finite, vals, 0.0), edges[:-1])
        counts = np.add.reduceat(finite.astype(np.int64), edges[:-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        finite = counts > 0
    top = len(LEVELS) - 1
    span = hi - lo
    idx = np.zeros(len(vals), dtype=np.int64) if span <= 0 else \
        np.clip(np.rint((np.where(finite, vals, lo) - lo) / span * top), 0, top).astype(np.int64)
    chars = _LEVEL_CHARS[idx]
    chars[~finite] = GAP
    return [_short(lo), _short(hi), n, "".join(chars.tolist())]


def _short(v: float) -> float:
    """A number with 6 significant digits (the page shows 3; sorting and differences need a few more)."""
    return float(f"{v:.6g}")


class ClipTable:
    """The rows of the clip table and the data the page pages through.

    `infos`: {score: MetricInfo} in display order; `null_reason(record, score)`; `not_run(case, model)`
    says why a model has no job on a case. Everything is computed once, in O(records)."""

    def __init__(self, records: list[dict[str, Any]], run_dir: Path, models: list[str], colors: dict[str, str],
                 infos: dict[str, Any], null_reason: Callable[[dict, str], str], not_run: Callable[[str, str], str],
                 kept: set[str], favourites: set[str], motion_floor: float = MOTION_FLOOR) -> None:
        self.run_dir = run_dir
        self._root = Path(run_dir).resolve()  # once: series files are found (and memoised) under it
        self.models = models
        self.colors = colors
        self.infos = infos
        self.null_reason = null_reason
        self.not_run = not_run
        self.kept, self.favourites = kept, favourites
        self.floor = motion_floor
        self.names = list(infos)
        self._media_ok: dict[Any, bool] = {}
        self._still_of: dict[int, bool | None] = {}  # by id(record): the records outlive the table
        self.series_errors: dict[tuple, list[str]] = defaultdict(list)
        by_row: dict[tuple, dict[str, dict[str, Any]]] = {}
        cases: list[str] = []
        for r in records:
            case = str(r.get("case"))
            key = (case, variant(r))
            if key not in by_row:
                by_row[key] = {}
                cases.append(case)
            by_row[key].setdefault(str(r.get("model")), r)
        order = {c: i for i, c in enumerate(dict.fromkeys(cases))}
        self.keys = sorted(by_row, key=lambda k: (order[k[0]], str(k[1][0]), k[1][1]))
        self.cells = by_row
        self.cases = list(order)
        self.models_on_case: dict[str, set[str]] = defaultdict(set)
        for (case, _), cells in by_row.items():
            self.models_on_case[case].update(cells)
        self._best = {k: self._best_in_row(k) for k in self.keys}

    def has_media(self, rel: Any) -> bool:
        """media_file, asked once per path (clips are often shared between records)."""
        key = rel if isinstance(rel, str) else repr(rel)
        if key not in self._media_ok:
            self._media_ok[key] = media_file(self.run_dir, rel)
        return self._media_ok[key]

    # ---- per-row decisions shared by both renderers -------------------------------------------------
    def _still(self, r: dict[str, Any]) -> bool | None:
        key = id(r)
        if key not in self._still_of:
            self._still_of[key] = is_still(r, self.floor) if r.get("status") == "ok" else None
        return self._still_of[key]

    def _best_in_row(self, key: tuple) -> dict[str, set[str]]:
        """{score: models with the row's best value as shown} (only where someone is better)."""
        cells = self.cells[key]
        out: dict[str, set[str]] = {}
        for n, info in self.infos.items():
            if info.higher is None:
                continue
            cands = [(x, m) for m, r in cells.items() if r.get("status") == "ok"
                     and (x := score_value(r, n)) is not None
                     and not (info.rewards_stillness and self._still(r))]
            if len(cands) >= 2:
                top = info.fmt((max if info.higher else min)(c[0] for c in cands))
                winners = {m for x, m in cands if info.fmt(x) == top}
                if len(winners) < len(cands):
                    out[n] = winners
        return out

    def shown_scores(self, r: dict[str, Any]) -> list[str]:
        """The scores a cell lists: those it has or was asked for (n/a with a reason), none of a failed job."""
        if r.get("status") != "ok":
            return []
        scores = r.get("scores") or {}
        asked = r.get("metrics_requested") or []
        return applicable_scores(r, [n for n in self.names if score_value(r, n) is not None or n in scores or n in asked])

    def marks(self, r: dict[str, Any]) -> list[tuple[str, str]]:
        out = []
        if str(r.get("job_id")) in self.kept:
            out.append(("kept", "kept by best-of-N (the suite's objective)"))
        if str(r.get("job_id")) in self.favourites:
            out.append(("\u2665 favourite", "marked favourite in the Studio's Compare tab"))
        if self._still(r):
            flow = score_value(r, MOTION_SCORE) or 0.0
            out.append(("still", f"mean flow {shown_flow(flow)} px/frame is below the motion floor for its size "
                                 f"({shown_flow(floor_for(r, self.floor))}): its consistency scores are trivially "
                                 f"high and earn no \u2605"))
        return out

    @staticmethod
    def clip_text(r: dict[str, Any]) -> str:
        clip = r.get("clip") or {}
        if not clip:
            return ""
        return (f"{clip.get('width')}\u00d7{clip.get('height')}, {clip.get('frames')} frames, "
                f"{fmt_number(clip.get('fps'))} fps" + (", audio" if clip.get("audio") else ""))

    @staticmethod
    def job_time(r: dict[str, Any]) -> str:
        t = (r.get("timings") or {}).get("total")
        return f"job {fmt_number(t)} s" if isinstance(t, (int, float)) and not isinstance(t, bool) else ""

    # ---- HTML (the first page, personas) ------------------------------------------------------------
    def panel(self, r: dict[str, Any], key: tuple | None = None) -> dict[str, Any]:
        """A cell as the template's clip_cell macro shows it."""
        best = self._best.get(key, {}) if key is not None else {}
        m = str(r.get("model"))
        still = self._still(r)
        scores = []
        for n in self.shown_scores(r):
            info = self.infos[n]
            val = score_value(r, n)
            entry = {"name": n, "info": info, "null": val is None, "text": info.fmt(val) if val is not None else "n/a",
                     "best": m in best.get(n, ()), "trivial": bool(still and info.rewards_stillness and val is not None),
                     "why": self.null_reason(r, n) if val is None else "",
                     "backend": (r.get("backends") or {}).get(n, ""), "worst": "", "note": 0}
            worst = (r.get("worst_frame") or {}).get(n)
            fps = (r.get("clip") or {}).get("fps")
            if isinstance(worst, int) and info.higher is not None:  # "worst" needs a better direction
                entry["worst"] = f"worst frame {worst}" + (f" ({worst / fps:.2f} s)" if fps else "")
            scores.append(entry)
        notes: list[str] = []  # each distinct null reason once per panel, as a numbered note
        for entry in scores:
            if entry["null"]:
                if entry["why"] not in notes:
                    notes.append(entry["why"])
                entry["note"] = notes.index(entry["why"]) + 1
        clip = r.get("clip") or {}
        return {"variant": variant_label(variant(r)), "absent": False, "ok": r.get("status") == "ok",
                "error": r.get("error") or "", "video": media_of(r), "kind": media_kind(media_of(r)),
                "exists": self.has_media(media_of(r)), "clip": self.clip_text(r), "scores": scores,
                "notes": notes, "warnings": r.get("warnings") or [], "audio": bool(clip.get("audio")),
                "marks": self.marks(r), "timing": self.job_time(r),
                "params": json.dumps(r.get("params") or {}, sort_keys=True, default=str), "job_id": r.get("job_id")}

    def cell(self, key: tuple, model: str) -> dict[str, Any]:
        r = self.cells[key].get(model)
        if r is None:
            empty = model not in self.models_on_case[key[0]]
            why = self.not_run(key[0], model) if empty else f"no job of {model} for {variant_label(key[1])}"
            return {"model": model, "color": self.colors[model], "panels": [], "empty": True, "why_empty": why}
        return {"model": model, "color": self.colors[model], "panels": [self.panel(r, key)], "empty": False,
                "why_empty": ""}

    def row_head(self, key: tuple) -> dict[str, Any]:
        first = next(iter(self.cells[key].values()))
        inputs = ", ".join(f"{k}: {Path(str(v.get('path') or '')).name}" for k, v in (first.get("inputs") or {}).items()
                           if isinstance(v, dict) and v)
        return {"case": key[0], "variant": variant_label(key[1]), "prompt": first.get("prompt") or "",
                "inputs": inputs, "id": row_id(key)}

    def first_page(self, rows: int = PAGE_ROWS) -> list[dict[str, Any]]:
        """The first `rows` rows in table order, as HTML rows (shown whether or not scripts run)."""
        return [{**self.row_head(k), "cells": [self.cell(k, m) for m in self.models]} for k in self.keys[:rows]]

    def _read_series(self, rel: str) -> dict[str, Any]:
        """{score: quantised curve} of one series file, or {"__error__": why}; memoised by the file's
        path, size and time (workbench.memo), so an unchanged file is not parsed again."""
        path = self._root / rel
        try:
            st = path.stat()
        except OSError as e:
            return {"__error__": f"{rel}: {e.strerror or e}"}

        def read() -> dict[str, Any]:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                return {"__error__": f"{rel}: {e}"}
            if not isinstance(data, dict):
                return {}
            return {str(n): q for n, vals in data.items() if isinstance(vals, list) and (q := quantise(vals)) is not None}

        return memoised("series", (str(path), st.st_size, st.st_mtime_ns, SERIES_POINTS, LEVELS), read)

    def clip_paths(self) -> list[str]:
        """The relative paths of every showable clip, in table order (what the page may embed)."""
        out = []
        for key in self.keys:
            for m in self.models:
                r = self.cells[key].get(m)
                if r is not None and r.get("status") == "ok" and self.has_media(v := media_of(r)):
                    out.append(str(v))
        return list(dict.fromkeys(out))

    # ---- the compact data the page pages through ----------------------------------------------------
    def table_data(self) -> dict[str, Any]:
        """Everything report.js needs to page, filter, sort and draw the table (JSON-serialisable)."""
        strings: dict[str, int] = {}

        def sid(text: str) -> int:
            return strings.setdefault(str(text), len(strings))

        series: dict[str, int] = {}
        series_list: list[Any] = []
        index = {n: i for i, n in enumerate(self.names)}
        series_cache: dict[str, Any] = {}

        def series_of(r: dict[str, Any], key: tuple) -> int:
            rel = r.get("series")
            if not rel or not isinstance(rel, str):
                return -1
            if rel not in series:
                if rel not in series_cache:
                    series_cache[rel] = self._read_series(rel)
                data = series_cache[rel]
                if "__error__" in data:
                    self.series_errors[key].append(data["__error__"])
                    return -1
                curves = {str(index[n]): q for n, q in data.items() if n in index}
                if not curves:
                    return -1
                series[rel] = len(series_list)
                series_list.append(curves)
            return series[rel]

        rows = []
        counts = {"ok": 0, "failed": 0, "still": 0}
        for key in self.keys:
            head = self.row_head(key)
            best = self._best[key]
            cells: list[Any] = []
            for m in self.models:
                r = self.cells[key].get(m)
                if r is None:
                    empty = m not in self.models_on_case[key[0]]
                    cells.append(sid(self.not_run(key[0], m) if empty else f"no job of {m} for {head['variant']}"))
                    continue
                ok = r.get("status") == "ok"
                still = bool(self._still(r))
                status = "failed" if not ok else ("still" if still else "ok")
                counts[status] += 1
                cell: dict[str, Any] = {"j": str(r.get("job_id") or ""), "st": status}
                video = media_of(r)
                if video:
                    cell["v"] = video
                    if not self.has_media(video):
                        cell["x"] = 0  # named but not in the run folder
                if not ok:
                    cell["e"] = sid(r.get("error") or "no error text")
                else:
                    shown = self.shown_scores(r)
                    vals: list[Any] = [""] * len(self.names)
                    reasons = {}
                    for n in shown:
                        v = score_value(r, n)
                        if v is None:
                            vals[index[n]] = None
                            reasons[str(index[n])] = sid(self.null_reason(r, n))
                        else:
                            vals[index[n]] = _short(v) if math.isfinite(v) else str(v)
                    while vals and vals[-1] == "":
                        vals.pop()
                    cell["s"] = vals
                    if reasons:
                        cell["n"] = reasons
                    b = [index[n] for n, who in best.items() if m in who]
                    if b:
                        cell["b"] = b
                    worst = {str(index[n]): w for n, w in (r.get("worst_frame") or {}).items()
                             if n in index and isinstance(w, int) and self.infos[n].higher is not None}
                    if worst:
                        cell["w"] = worst
                    s = series_of(r, key)
                    if s >= 0:
                        cell["c"] = s
                    backends = r.get("backends") or {}
                    if backends:  # "score index=backend|...", one shared string for the run's usual set
                        cell["k"] = sid("|".join(f"{index[n]}={b}" for n, b in backends.items() if n in index))
                marks = [(label, why) for label, why in self.marks(r) if label != "still"]
                if marks:
                    cell["m"] = [[sid(label), sid(why)] for label, why in marks]
                if r.get("warnings"):
                    cell["wa"] = [sid(w) for w in r.get("warnings") or []]
                clip = r.get("clip") or {}
                if clip:
                    cell["i"] = sid(self.clip_text(r))
                    if clip.get("audio"):
                        cell["a"] = 1
                    if clip.get("fps"):
                        cell["f"] = clip.get("fps")
                t = self.job_time(r)
                if t:
                    cell["t"] = t
                cells.append(cell)
            row = {"c": sid(key[0]), "s": sid(head["variant"]), "seed": str(key[1][0]), "p": sid(head["prompt"]),
                   "id": sid(head["id"]),
                   "in": sid(head["inputs"]), "x": cells}
            if self.series_errors.get(key):
                row["se"] = [sid(e) for e in dict.fromkeys(self.series_errors[key])]
            rows.append(row)
        scores = [{"name": n, "label": i.label, "unit": i.unit_label, "higher": i.higher, "scale": i.scale,
                   "integer": i.integer, "stillness": i.rewards_stillness, "title": i.title} for n, i in self.infos.items()]
        seeds = sorted({str(k[1][0]) for k in self.keys}, key=lambda s: (len(s), s))
        return {"models": self.models, "colors": self.colors, "scores": scores, "rows": rows, "series": series_list,
                "strings": list(strings), "seeds": seeds, "counts": counts, "page_rows": PAGE_ROWS,
                "cases": len(self.cases), "levels": LEVELS, "gap": GAP}


def table_json(data: dict[str, Any]) -> str:
    """The data as JSON safe inside <script type="application/json"> (no `</` can close the element)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\u0021--")
