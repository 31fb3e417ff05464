"""The local comparison report: RUN_DIR/report.html from results.jsonl alone, rendered with Jinja2.

What the page holds (templates in workbench/templates/, figures in workbench/figures.py):

- banners: scores the suite asked for that were not computed (reason and the command that gets the
  weights), scores computed for some jobs only, scores that mix backends, record warnings;
- the model summary: mean and 95% bootstrap CI per score (two-level: cases, then seeds), best marked;
- a ranking per score with a direction: each model against the best one, paired over matched
  (case, seed) jobs: mean difference with its bootstrap CI, a bootstrap p-value and that p-value after
  Holm's correction over every comparison in the table;
- figures: per-metric bars with CIs, a radar of models over metrics, per-frame curves of every clip
  (from the series files the runner writes beside the clips), the worst frame marked;
- the grid: cases as rows, models as columns, each cell a muted looping video (unmute control, seeds
  switchable, playback kept in step across the row) with its scores, the best per score in the row
  marked; failed jobs show their error in place and again in a table at the end.

Numbers use 3 significant digits in fixed notation; a score whose values are all below 0.01 is shown in
units of 10^-3k (stated in its header). Every null shows its reason on hover and in the cell's title.
Videos are linked relative to report.html, so the run folder can be zipped and shared.
"""
from __future__ import annotations

import html
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.metrics.stats import finite as _finite, model_summaries, score_names
from workbench.store import RunStore

SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")
ALPHA = 0.05
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class ReportError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------------
# numbers

def fmt_number(v: Any, scale: float = 1.0, integer: bool = False, sig: int = 3, signed: bool = False) -> str:
    """A number for reading: `sig` significant digits in fixed notation, never e-notation; thousands
    grouped; values that round to zero at 8 decimals print as 0."""
    if v is None or isinstance(v, bool):
        return "" if v is None else str(v)
    try:
        x = float(v) * scale
    except (TypeError, ValueError):
        return html.escape(str(v))
    if not math.isfinite(x):
        return "\u221e" if x > 0 else ("-\u221e" if x < 0 else "NaN")
    sign = "+" if signed and x > 0 else ""
    if integer and float(x).is_integer():
        return f"{sign}{int(x):,}"
    if x == 0 or abs(x) < 5e-9:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= sig - 1:
        return f"{sign}{round(x):,}"
    decimals = min(8, sig - 1 - mag)
    return f"{sign}{x:,.{decimals}f}"


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None; the family is the non-None values).
    Reject at level a where the adjusted p < a: controls the family-wise error rate at a."""
    idx = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def paired_bootstrap_p(records: list[dict[str, Any]], model_a: str, model_b: str, metric: str,
                       n_boot: int | None = None, seed: int = 0) -> float | None:
    """Two-sided bootstrap p-value that the mean paired difference (a - b) over matched (case, seed)
    jobs is 0, from the same two-level cluster bootstrap as the CIs (cases, then pairs within a case):
    p = 2 * min(P(boot <= 0), P(boot >= 0)), at least 1/n_boot. None with fewer than 2 pairs."""
    import numpy as np

    from workbench.metrics.stats import N_BOOT, cluster_bootstrap_means

    n_boot = n_boot or N_BOOT
    a_vals: dict[tuple, float] = {}
    b_vals: dict[tuple, float] = {}
    for r in records:
        v = _finite((r.get("scores") or {}).get(metric))
        if v is None or r.get("model") not in (model_a, model_b):
            continue
        (a_vals if r.get("model") == model_a else b_vals)[(r.get("case"), r.get("seed"))] = v
    keys = [k for k in a_vals if k in b_vals]
    if len(keys) < 2:
        return None
    groups: dict[Any, list[float]] = {}
    for k in keys:
        groups.setdefault(k[0], []).append(a_vals[k] - b_vals[k])
    boot = cluster_bootstrap_means([np.array(g) for g in groups.values()], n_boot, seed)
    if np.all(boot == 0):
        return 1.0
    p = 2.0 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0)))
    return min(1.0, max(p, 1.0 / n_boot))


def fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


# ---------------------------------------------------------------------------------------------------------
# metric information

@dataclass
class MetricInfo:
    name: str
    higher: bool | None = None
    range: str = ""
    description: str = ""
    source: str = ""
    unit: str = ""  # from the range, e.g. "frames", "dB"
    scale: float = 1.0  # displayed value = value * scale
    scale_note: str = ""  # e.g. "10⁻⁶": numbers are in units of 10⁻⁶
    integer: bool = False
    backends: list[str] = field(default_factory=list)

    @property
    def arrow(self) -> str:
        return {True: "\u2191", False: "\u2193"}.get(self.higher, "")

    @property
    def unit_label(self) -> str:
        parts = [p for p in (f"\u00d7{self.scale_note}" if self.scale_note else "", self.unit) if p]
        return " ".join(parts)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit_label})" if self.unit_label else self.name

    @property
    def direction_text(self) -> str:
        return {True: "higher is better", False: "lower is better"}.get(self.higher, "no better direction")

    @property
    def title(self) -> str:
        bits = [f"{self.name}: {self.description}" if self.description else self.name, self.direction_text]
        if self.range:
            bits.append(f"range {self.range}")
        if self.scale_note:
            bits.append(f"shown in units of {self.scale_note}: 2.5 means 2.5\u00d7{self.scale_note}")
        if self.backends:
            bits.append("backend " + ", ".join(self.backends))
        if self.source:
            bits.append(f"follows {self.source}")
        return "; ".join(bits)

    def fmt(self, v: Any, signed: bool = False) -> str:
        return fmt_number(v, self.scale, self.integer, signed=signed)

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher else a < b


def _specs() -> dict[str, Any]:
    try:
        from workbench.metrics import score_specs

        return score_specs()
    except Exception:  # a metric module failing to import must not stop the report
        return {}


def metric_infos(records: list[dict[str, Any]], names: list[str]) -> dict[str, MetricInfo]:
    specs = _specs()
    out = {}
    for n in names:
        spec = specs.get(n)
        info = MetricInfo(n)
        if spec is not None:
            info.higher, info.range = spec.higher_is_better, spec.range
            info.description, info.source = spec.description, spec.source
            unit = re.search(r"[\]\)]\s*([A-Za-z][\w/ ]*)$", spec.range or "")
            if unit and ":" not in spec.range:
                info.unit = unit.group(1).strip()
        values = [v for r in records if (v := _finite((r.get("scores") or {}).get(n))) is not None]
        info.integer = bool(values) and all(float(v).is_integer() for v in values)
        big = max((abs(v) for v in values), default=0.0)
        if 0 < big < 0.01 and not info.integer:
            exp = 3 * math.floor(math.log10(big) / 3)
            info.scale = 10.0 ** (-exp)
            info.scale_note = "10" + str(exp).translate(SUPERSCRIPT)
        info.backends = sorted({str((r.get("backends") or {}).get(n)) for r in records
                                if (r.get("backends") or {}).get(n) and _finite((r.get("scores") or {}).get(n)) is not None})
        out[n] = info
    return out


def mixed_backends(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Scores computed with more than one backend in this run (comparisons across them are unfair)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.get("status") != "ok":
            continue
        for name, backend in (r.get("backends") or {}).items():
            if (r.get("scores") or {}).get(name) is not None:
                seen[name].add(backend)
    return {k: sorted(v) for k, v in seen.items() if len(v) > 1}


def _requires(name: str) -> list[str]:
    """The inputs (image, audio, reference) the metric behind a score needs."""
    try:
        from workbench.metrics.registry import score_owner

        cls = score_owner().get(name)
        return sorted(cls.requires) if cls is not None else []
    except Exception:
        return []


def null_reason(record: dict[str, Any], name: str) -> str:
    """Why this record has no value for a score (one line)."""
    if record.get("status") != "ok":
        return f"the job failed: {record.get('error') or 'no error text'}"
    why = (record.get("score_errors") or {}).get(name)
    if why:
        return str(why)
    if name not in (record.get("scores") or {}):
        asked = record.get("metrics_requested")
        if asked is not None and name not in asked:
            return "not requested for this job"
        lacks = [k for k in _requires(name) if not (record.get("inputs") or {}).get(k)]
        if lacks:
            return f"not applicable: the case has no {' and no '.join(lacks)}"
        return "not scored for this job (the metric does not apply to its inputs)"
    return "no value recorded and no reason given"


def _distinct_reasons(reasons) -> list[str]:
    """Reasons without repeats, treating texts that differ only in their numbers (image sizes, counts)
    as one."""
    seen: dict[str, str] = {}
    for why in reasons:
        seen.setdefault(re.sub(r"\d+", "#", why), why)
    return list(seen.values())


_FETCH = re.compile(r"workbench weights fetch [\w./:@+-]+(?: [\w./:@+-]+)*")


def fetch_command(reasons: list[str]) -> str | None:
    """The command that gets missing weights: quoted from a reason when it names one, else the check
    command when the reason is about weights; None when weights are not the problem."""
    for why in reasons:
        m = _FETCH.search(why)
        if m:
            return m.group(0).rstrip(".;,")
    if any(re.search(r"weights|checkpoint|WORKBENCH_[A-Z_]+", why) for why in reasons):
        return "workbench weights check"
    return None


# ---------------------------------------------------------------------------------------------------------
# the page model

def _media_kind(path: str | None) -> str:
    if not path:
        return ""
    return "image" if path.lower().endswith(IMAGE_SUFFIXES) else "video"


def _variant(r: dict[str, Any]) -> tuple:
    return (r.get("seed"), r.get("output") or 0)


def _variant_label(v: tuple) -> str:
    seed, out = v
    return f"seed {seed}" + (f" \u00b7 output {out}" if out else "")


def _not_run(records: list[dict[str, Any]], case: str, model: str) -> str:
    """Why a model has no job on a case: the inputs its generator needs that the case lacks."""
    generic = f"the suite ran no job of {model} on {case}"
    name = next((r.get("model_name") for r in records if str(r.get("model")) == model), None)
    inputs = next((r.get("inputs") or {} for r in records if str(r.get("case")) == case), None)
    try:
        from workbench.models.base import get_generator

        needs = sorted(get_generator(name).requires) if name else []
    except Exception:
        return generic
    lacks = [k for k in needs if inputs is not None and not inputs.get(k)]
    return f"{model} needs {' and '.join(lacks)}; case {case} has none" if lacks else generic


def build_context(records: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """Everything the template shows, computed from the records (and the series files they name)."""
    from workbench import figures
    from workbench.metrics.stats import compare

    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    names = score_names(records)
    infos = metric_infos(ok, names)
    models = list(dict.fromkeys(str(r.get("model")) for r in records))
    cases = list(dict.fromkeys(str(r.get("case")) for r in records))
    colors = figures.model_colors(models)
    stats = model_summaries(records, names)

    # banners -----------------------------------------------------------------------------------------
    missing, partial = [], []
    for n in names:
        nulls = [r for r in ok if _finite((r.get("scores") or {}).get(n)) is None]
        if not ok or not nulls:
            continue
        reasons = _distinct_reasons(null_reason(r, n) for r in nulls)
        where = list(dict.fromkeys(str(r.get("case")) for r in nulls))
        item = {"names": [n], "count": len(nulls), "of": len(ok), "reasons": reasons[:4],
                "more": max(0, len(reasons) - 4), "command": fetch_command(reasons),
                "cases": where if len(nulls) < len(ok) else []}
        group = missing if len(nulls) == len(ok) else partial
        same = next((g for g in group if (g["count"], g["reasons"], g["cases"]) == (item["count"], item["reasons"],
                                                                                     item["cases"])), None)
        if same is not None:  # scores of one metric group fail together: one line for all of them
            same["names"].append(n)
        else:
            group.append(item)
    warn_counts: dict[str, int] = defaultdict(int)
    for r in records:
        for w in r.get("warnings") or []:
            warn_counts[str(w)] += 1

    # model summary ---------------------------------------------------------------------------------------
    best_model: dict[str, str | None] = {}
    for n, info in infos.items():
        vals = [(stats.get(m, {}).get(n) or {}).get("mean") for m in models]
        cands = [(v, m) for v, m in zip(vals, models) if v is not None]
        best_model[n] = None
        if info.higher is not None and len(cands) >= 2:
            top = (max if info.higher else min)(cands)[0]
            winners = [m for v, m in cands if v == top]
            best_model[n] = winners[0] if len(winners) == 1 else None  # a tie marks no one
    summary_rows = []
    for m in models:
        mine = [r for r in records if str(r.get("model")) == m]
        mine_ok = [r for r in mine if r.get("status") == "ok"]
        cells = []
        for n, info in infos.items():
            s = stats.get(m, {}).get(n) or {}
            if s.get("mean") is None:
                reasons = list(dict.fromkeys(null_reason(r, n) for r in mine)) or ["no finished job"]
                cells.append({"null": True, "why": "; ".join(reasons[:3])})
                continue
            cell = {"null": False, "mean": info.fmt(s["mean"]), "best": best_model[n] == m,
                    "ci": f"{info.fmt(s['lo'])} \u2013 {info.fmt(s['hi'])}" if s.get("lo") is not None else "",
                    "n": s.get("n"), "missing": s.get("n_missing") or 0}
            if cell["missing"]:
                reasons = list(dict.fromkeys(null_reason(r, n) for r in mine_ok
                                             if _finite((r.get("scores") or {}).get(n)) is None))
                cell["why"] = f"{cell['missing']} of {len(mine_ok)} jobs have no value: " + "; ".join(reasons[:3])
            cells.append(cell)
        summary_rows.append({"model": m, "color": colors[m], "ok": len(mine_ok), "failed": len(mine) - len(mine_ok),
                             "cells": cells})

    # ranking with paired differences and Holm --------------------------------------------------------
    ranking, flat = [], []
    for n, info in infos.items():
        if info.higher is None:
            continue
        have = [(s["mean"], m) for m in models if (s := stats.get(m, {}).get(n) or {}).get("mean") is not None]
        if len(have) < 2:
            continue
        have.sort(key=lambda t: -t[0] if info.higher else t[0])
        best = have[0][1]
        tied_best = sum(mean == have[0][0] for mean, _ in have) > 1
        rows = []
        for i, (mean, m) in enumerate(have):
            s = stats[m][n]
            rank = 1 + sum(info.better(other, mean) for other, _ in have)  # ties share a rank
            row = {"rank": f"{rank}=" if sum(x == mean for x, _ in have) > 1 else str(rank), "unique_best": not tied_best, "model": m, "color": colors[m], "mean": info.fmt(mean),
                   "ci": f"{info.fmt(s['lo'])} \u2013 {info.fmt(s['hi'])}" if s.get("lo") is not None else "",
                   "is_best": m == best, "diff": "", "diff_ci": "", "pairs": 0, "wins": "", "p": None,
                   "no_pairs": "", "significant": False, "p_text": "", "p_holm_text": ""}
            if m != best:
                c = compare(ok, m, best, n, higher_is_better=info.higher)
                if c.mean_diff is not None:
                    row.update(diff=info.fmt(c.mean_diff, signed=True), pairs=c.n_pairs,
                               diff_ci=f"{info.fmt(c.lo, signed=True)} \u2013 {info.fmt(c.hi, signed=True)}"
                               if c.lo is not None else "",
                               wins="" if c.a_wins is None else f"{round(100 * c.a_wins)}%",
                               p=paired_bootstrap_p(ok, m, best, n))
                if c.n_pairs == 0:
                    row["no_pairs"] = "no matched (case, seed) jobs with both values"
                flat.append(row)
            rows.append(row)
        ranking.append({"info": info, "rows": rows, "best": best})
    adjusted = holm([r["p"] for r in flat])
    for row, p_adj in zip(flat, adjusted):
        row["p_text"] = fmt_p(row["p"])
        row["p_holm"] = p_adj
        row["p_holm_text"] = fmt_p(p_adj)
        row["significant"] = p_adj is not None and p_adj < ALPHA
    n_tests = sum(r["p"] is not None for r in flat)
    mean_rank = {}
    for m in models:
        ranks = [int(row["rank"].rstrip("=")) for block in ranking for row in block["rows"] if row["model"] == m]
        if ranks:
            mean_rank[m] = sum(ranks) / len(ranks)

    # figures -----------------------------------------------------------------------------------------
    fig_metrics = [{"name": n, "label": i.label, "scale": i.scale, "higher": i.higher, "best": best_model[n],
                    "stats": {m: stats.get(m, {}).get(n) for m in models}} for n, i in infos.items()]
    bars = figures.metric_bars(models, fig_metrics, colors)
    spider = figures.radar(models, fig_metrics, colors)

    # the grid: cases x models, one panel per seed ---------------------------------------------------
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_cell[(str(r.get("case")), str(r.get("model")))].append(r)
    series_cache: dict[str, dict] = {}

    def series_of(r: dict[str, Any]) -> tuple[dict, str | None]:
        rel = r.get("series")
        if not rel:
            return {}, None
        if rel not in series_cache:
            try:
                data = json.loads((run_dir / rel).read_text())
                series_cache[rel] = data if isinstance(data, dict) else {}
            except (OSError, ValueError) as e:
                series_cache[rel] = {"__error__": f"{rel}: {e}"}
        data = series_cache[rel]
        return ({}, data["__error__"]) if "__error__" in data else (data, None)

    grid = []
    for case in cases:
        recs = [r for m in models for r in by_cell.get((case, m), [])]
        variants = sorted({_variant(r) for r in recs}, key=lambda v: (str(v[0]), v[1]))
        # best per score within this case, per seed (the panels that sit side by side)
        best_in_row: dict[tuple, dict[str, set[str]]] = {}
        for v in variants:
            best_in_row[v] = {}
            for n, info in infos.items():
                if info.higher is None:
                    continue
                cands = [(x, str(r.get("model"))) for r in recs if _variant(r) == v and r.get("status") == "ok"
                         and (x := _finite((r.get("scores") or {}).get(n))) is not None]
                if len(cands) >= 2:
                    top = (max if info.higher else min)(c[0] for c in cands)
                    winners = {m for x, m in cands if x == top}
                    if len(winners) < len(cands):
                        best_in_row[v][n] = winners
        cells = []
        curves_in, series_errors = [], []
        for m in models:
            panels = []
            for v in variants:
                r = next((r for r in by_cell.get((case, m), []) if _variant(r) == v), None)
                if r is None:
                    panels.append({"variant": _variant_label(v), "absent": True})
                    continue
                scores = []
                for n, info in infos.items():
                    val = _finite((r.get("scores") or {}).get(n))
                    if val is None and r.get("status") != "ok":
                        continue
                    if val is None and n not in (r.get("scores") or {}) and n not in (r.get("metrics_requested") or []):
                        continue  # neither asked for nor scored on this job
                    entry = {"name": n, "info": info, "null": val is None,
                             "text": info.fmt(val) if val is not None else "n/a",
                             "best": m in best_in_row[v].get(n, ()),
                             "why": null_reason(r, n) if val is None else "",
                             "backend": (r.get("backends") or {}).get(n, ""), "worst": "", "note": 0}
                    worst = (r.get("worst_frame") or {}).get(n)
                    fps = (r.get("clip") or {}).get("fps")
                    if isinstance(worst, int):
                        entry["worst"] = f"worst frame {worst}" + (f" ({worst / fps:.2f} s)" if fps else "")
                    scores.append(entry)
                notes: list[str] = []  # each distinct null reason once per panel, as a numbered note
                for entry in scores:
                    if entry["null"]:
                        if entry["why"] not in notes:
                            notes.append(entry["why"])
                        entry["note"] = notes.index(entry["why"]) + 1
                series, err = series_of(r)
                if err:
                    series_errors.append(err)
                if series:
                    curves_in.append({"model": m, "seed": v[0] if not v[1] else f"{v[0]}/{v[1]}", "series": series,
                                      "worst": r.get("worst_frame") or {}, "fps": (r.get("clip") or {}).get("fps")})
                clip = r.get("clip") or {}
                panels.append({
                    "variant": _variant_label(v), "absent": False, "ok": r.get("status") == "ok",
                    "error": r.get("error") or "", "video": r.get("video"), "kind": _media_kind(r.get("video")),
                    "exists": bool(r.get("video")) and (run_dir / r["video"]).is_file(),
                    "clip": (f"{clip.get('width')}\u00d7{clip.get('height')}, {clip.get('frames')} frames, "
                             f"{fmt_number(clip.get('fps'))} fps" + (", audio" if clip.get("audio") else "")
                             if clip else ""),
                    "scores": scores, "notes": notes, "warnings": r.get("warnings") or [],
                    "audio": bool(clip.get("audio")),
                    "timing": fmt_number((r.get("timings") or {}).get("total")),
                    "params": json.dumps(r.get("params") or {}, sort_keys=True, default=str),
                    "job_id": r.get("job_id"),
                })
            cells.append({"model": m, "color": colors[m], "panels": panels,
                          "empty": not by_cell.get((case, m)), "why_empty": _not_run(records, case, m)})
        first = recs[0] if recs else {}
        labels = {n: i.label for n, i in infos.items()}
        grid.append({
            "case": case, "prompt": first.get("prompt") or "", "cells": cells,
            "inputs": ", ".join(f"{k}: {Path(v.get('path', '')).name}" for k, v in (first.get("inputs") or {}).items()),
            "curves": figures.frame_curves(case, curves_in, colors, labels, {n: i.scale for n, i in infos.items()},
                                           order=names),
            "series_errors": list(dict.fromkeys(series_errors)),
        })

    first = records[0] if records else {}
    return {
        "bestofn": best_of_n_context(run_dir),
        "title": str(first.get("suite") or run_dir.name), "run_dir": str(run_dir), "n_jobs": len(records),
        "n_ok": len(ok), "n_failed": len(failed), "models": models, "colors": colors, "cases": cases,
        "metrics": list(infos.values()), "missing": missing, "partial": partial,
        "mixed": mixed_backends(records), "warnings": sorted(warn_counts.items(), key=lambda kv: -kv[1]),
        "summary_rows": summary_rows, "ranking": ranking, "n_tests": n_tests, "alpha": ALPHA,
        "mean_rank": sorted(mean_rank.items(), key=lambda kv: kv[1]),
        "bars": bars, "radar": spider, "grid": grid,
        "failed": [{"case": r.get("case"), "model": r.get("model"), "seed": r.get("seed"),
                    "error": r.get("error") or "no error text", "type": r.get("error_type") or "",
                    "traceback": r.get("traceback") or ""} for r in failed],
        "versions": first.get("versions") or {}, "hardware": first.get("hardware") or {},
        "nondirectional": [i.name for i in infos.values() if i.higher is None],
    }


def best_of_n_context(run_dir: Path) -> dict[str, Any] | None:
    """The run's best-of-N ranking (RUN_DIR/bestofn.json) for the report: the objective, how much
    keeping the best of N beats one sample (mean gain, 95% CI, per N, plus the curve), and each
    request's kept take. None when the run ranked nothing."""
    from workbench import figures
    from workbench.workflow.bestofn import ObjectiveError, load_rankings

    try:
        data = load_rankings(run_dir)
    except ObjectiveError as e:
        return {"error": str(e)}
    if not data:
        return None
    gains = []
    for p in data.get("gain_curve") or []:
        gains.append({"n": p.get("n"), "gain": fmt_number(p.get("mean_gain"), signed=True),
                      "ci": (f"{fmt_number(p['lo'], signed=True)} \u2013 {fmt_number(p['hi'], signed=True)}"
                             if p.get("lo") is not None and p.get("hi") is not None else ""),
                      "best": fmt_number(p.get("mean_best"), sig=4), "single": fmt_number(p.get("mean_single"), sig=4),
                      "requests": p.get("requests"), "cases": p.get("cases")})
    requests = []
    for rk in data.get("rankings") or []:
        ranked = rk.get("ranked") or []
        requests.append({"case": rk.get("case"), "model": rk.get("model"), "kept": rk.get("kept") or [],
                         "takes": ", ".join(f"#{row.get('rank')} seed {row.get('seed')}"
                                            + (f"/{row.get('output')}" if row.get("output") else "")
                                            + f": {fmt_number(row.get('objective'))}" for row in ranked),
                         "unscored": len(rk.get("unscored") or [])})
    return {"error": None, "formula": data.get("formula") or "", "keep": data.get("keep"), "n": data.get("n"),
            "gains": gains, "requests": requests,
            "figure": figures.gain_curve(data.get("gain_curve") or [], data.get("formula") or "objective")}


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("workbench", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env


def render(records: list[dict[str, Any]], run_dir: str | Path) -> str:
    """The report page for these records (videos linked relative to run_dir)."""
    return _environment().get_template("report.html.j2").render(**build_context(records, Path(run_dir)))


def write_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.html from run_dir/results.jsonl and return its path."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    if not store.results.exists():
        raise ReportError(f"{store.results}: not found; pass a run folder written by `workbench run`")
    records = list(store.latest().values())
    if not records:
        raise ReportError(f"{store.results}: holds no records; run the suite first (`workbench run SUITE.yaml`)")
    out = run_dir / "report.html"
    page = render(records, run_dir)
    try:
        if out.read_text(encoding="utf-8") == page:
            return out  # same records, same page (figures and CIs are deterministic): nothing to write
    except OSError:
        pass
    tmp = out.with_suffix(".html.part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
