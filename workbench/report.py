"""The local comparison report: RUN_DIR/report.html from results.jsonl alone, rendered with Jinja2.

What the page holds (templates in workbench/templates/, figures in workbench/figures_svg.py and figures.py):

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

import errno
import json
import math
import os
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from workbench.costs import any_cost, cost_summary, pareto_front
from workbench.formatting import fmt_number  # noqa: F401 (re-exported: the Studio formats with it)
from workbench.metrics.stats import model_summaries, score_names, score_value
from workbench.ranking import (ALPHA, MIN_CASES, MOTION_FLOOR, MOTION_SCORE, floor_for, is_still, rank_all,
                              shown_flow)
from workbench.runset import RunSet, RunSetError, current_records, load_runs, media_of, well_formed
from workbench.memo import memoised, using
from workbench.report_cache import memo_for, page_is_current, page_key, remember_page, source_digest
from workbench.report_media import ReportError, check_mode, embed_budget_mb  # noqa: F401 (ReportError: re-exported)
from workbench.redact import scrub
from workbench.report_table import PAGE_ROWS, ClipTable, table_json
from workbench.store import RunStore

SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


# ---------------------------------------------------------------------------------------------------------
# numbers

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
    rewards_stillness: bool = False  # trivially perfect on a still clip: ranked above the motion floor only

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
        values, backends = [], set()
        for r in records:  # one pass: the values (integer? unit?) and the backends that gave them
            v = score_value(r, n)
            if v is not None:
                values.append(v)
                b = (r.get("backends") or {}).get(n)
                if b:
                    backends.add(str(b))
        info.integer = bool(values) and all(float(v).is_integer() for v in values)
        exp = 0
        if spec is not None:  # one unit per score, whatever this run's values: the spec says which
            exp = spec.display_exp
            info.rewards_stillness = spec.rewards_stillness
        else:  # a score the registry does not know (an older record): from the values
            big = max((abs(v) for v in values), default=0.0)
            if 0 < big < 0.01 and not info.integer:
                exp = 3 * math.floor(math.log10(big) / 3)
        if exp:
            info.scale = 10.0 ** (-exp)
            info.scale_note = "10" + str(exp).translate(SUPERSCRIPT)
        info.backends = sorted(backends)
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


def column_places(values: Iterable[float], digits: int = 2, least: int = 2, most: int = 4) -> int:
    """Decimal places that show every value of a table column with at least `digits` significant digits
    (`least` to `most` places): one precision down a column, so 0.011 and 2.74 read 0.011 and 2.740."""
    small = [abs(v) for v in values if v and math.isfinite(v)]
    if not small:
        return least
    return max(least, min(most, digits - 1 - math.floor(math.log10(min(small)))))


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

def _not_run(model_name: Any, inputs: dict[str, Any] | None, case: str, model: str) -> str:
    """Why a model has no job on a case: the inputs its generator needs that the case lacks."""
    generic = f"the suite ran no job of {model} on {case}"
    try:
        from workbench.models.base import get_generator

        needs = sorted(get_generator(model_name).requires) if model_name else []
    except Exception:
        return generic
    lacks = [k for k in needs if inputs is not None and not inputs.get(k)]
    return f"{model} needs {' and '.join(lacks)}; case {case} has none" if lacks else generic


def _usd(v: float | None) -> str:
    """A dollar amount for reading: cents below 100 USD, no cents above; "" for None."""
    if v is None:
        return ""
    return f"${v:,.0f}" if v >= 100 else (f"${v:,.2f}" if v >= 0.1 or v == 0 else f"${v:,.4f}")


def _marks(run_dir: Path) -> tuple[set[str], set[str]]:
    """Job ids kept by best-of-N (bestofn.json) and marked favourite in the Studio (favourites.json)."""
    kept: set[str] = set()
    favs: set[str] = set()
    try:
        data = json.loads((run_dir / "bestofn.json").read_text())
        kept = {str(j) for rk in data.get("rankings") or [] for j in rk.get("kept") or []}
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    try:
        data = json.loads((run_dir / "favourites.json").read_text())
        favs = {str(j) for j in data} if isinstance(data, list) else set()
    except (OSError, ValueError):
        pass
    return kept, favs


def _objective(run_dir: Path) -> Any:
    """The objective the suite defines (suite.json), which may rank models across scores; None without."""
    from workbench.suite import SuiteError, load_snapshot
    from workbench.workflow.bestofn import Objective, ObjectiveError

    if not (run_dir / "suite.json").is_file():
        return None
    try:
        spec = load_snapshot(run_dir).effective_objective()
        return Objective.parse(spec) if spec else None
    except (SuiteError, ObjectiveError):
        return None


def build_context(records: list[dict[str, Any]], run_dir: Path, left_out: list[str] | None = None,
                  motion_floor: float = MOTION_FLOOR) -> dict[str, Any]:
    """Everything the template shows, computed from the records (and the series files they name).
    `left_out`: notes on records not shown (superseded, not in the current suite)."""
    from workbench import figures, figures_svg

    records, bad = well_formed(records)  # a foreign or hand-edited line never breaks the page
    left_out = list(left_out or []) + bad
    objective = _objective(run_dir)
    if objective is not None:  # the user's own ranking across scores: one more score per record
        records = [dict(r, scores={**(r.get("scores") or {}), "objective": objective(r)}) if r.get("status") == "ok"
                   else r for r in records]
    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    names = score_names(records)
    infos = metric_infos(ok, names)
    if objective is not None and "objective" in infos:
        specs = _specs()
        obj = infos["objective"]
        obj.higher, obj.description = True, f"your objective: {objective.describe()}"
        obj.source = "the suite's objective: (workflow.bestofn)"
        obj.rewards_stillness = any(getattr(specs.get(m), "rewards_stillness", False) for m in objective.metrics)
    models = list(dict.fromkeys(str(r.get("model")) for r in records))
    cases = list(dict.fromkeys(str(r.get("case")) for r in records))
    colors = figures.model_colors(models)
    stats = model_summaries(records, names)
    kept, favourites = _marks(run_dir)
    has_motion = any(score_value(r, MOTION_SCORE) is not None for r in ok)
    gated_names = [n for n, i in infos.items() if i.rewards_stillness and i.higher is not None]

    # banners -----------------------------------------------------------------------------------------
    missing, partial = [], []
    for n in names:
        nulls = [r for r in ok if score_value(r, n) is None]
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

    # motion: which clips are still (consistency is trivially perfect on them) ------------------------
    motion_rows = []
    flow_means: dict[str, float] = {}
    for m in models:
        flows = [f for r in ok if str(r.get("model")) == m
                 and (f := score_value(r, MOTION_SCORE)) is not None]
        dyn = [d for r in ok if str(r.get("model")) == m
               and (d := score_value(r, "dynamic_degree")) is not None]
        if flows:
            still = sum(bool(is_still(r, motion_floor)) for r in ok if str(r.get("model")) == m)
            flow_means[m] = sum(flows) / len(flows)
            motion_rows.append({"model": m, "color": colors[m], "flow": "",
                                "still": still, "of": len(flows),
                                "dynamic": f"{round(100 * sum(dyn) / len(dyn))}%" if dyn else "n/a",
                                "all_still": still == len(flows)})
    places = column_places(flow_means.values())  # one precision down the column: 0.011, 0.330, 2.740
    for row in motion_rows:
        row["flow"] = f"{flow_means[row['model']]:.{places}f}"
    all_still_models = {row["model"] for row in motion_rows if row["all_still"]}

    # model summary: best = the top value as shown (ties are all best; all equal = nobody) -------------
    best_models: dict[str, set[str]] = {}
    for n, info in infos.items():
        cands = {m: info.fmt(s["mean"]) for m in models
                 if (s := stats.get(m, {}).get(n) or {}).get("mean") is not None
                 and not (info.rewards_stillness and m in all_still_models)}
        best_models[n] = set()
        if info.higher is not None and len(cands) >= 2:
            raw = {m: stats[m][n]["mean"] for m in cands}
            top = cands[(max if info.higher else min)(raw, key=raw.get)]
            winners = {m for m, text in cands.items() if text == top}
            best_models[n] = winners if len(winners) < len(cands) else set()
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
            cell = {"null": False, "mean": info.fmt(s["mean"]), "best": m in best_models[n],
                    "still": info.rewards_stillness and m in all_still_models,
                    "ci": f"{info.fmt(s['lo'])} \u2013 {info.fmt(s['hi'])}" if s.get("lo") is not None else "",
                    "n": s.get("n"), "missing": s.get("n_missing") or 0}
            if cell["missing"]:
                reasons = list(dict.fromkeys(null_reason(r, n) for r in mine_ok
                                             if score_value(r, n) is None))
                cell["why"] = f"{cell['missing']} of {len(mine_ok)} jobs have no value: " + "; ".join(reasons[:3])
            cells.append(cell)
        summary_rows.append({"model": m, "color": colors[m], "ok": len(mine_ok), "failed": len(mine) - len(mine_ok),
                             "cells": cells, "still": m in all_still_models})

    # ranking: per score, motion-aware, case-level tests, Holm over the table -------------------------
    specs = {n: (bool(i.higher), i.rewards_stillness, i.fmt) for n, i in infos.items() if i.higher is not None}
    ranking = []
    for block in rank_all(ok, specs, floor=motion_floor):
        info = infos[block.score]
        rows = []
        for row in block.rows:
            rows.append({
                "rank": row.rank, "model": row.model, "color": colors[row.model], "mean": info.fmt(row.mean),
                "ci": f"{info.fmt(row.lo)} \u2013 {info.fmt(row.hi)}" if row.lo is not None else "",
                "is_best": row.is_best, "top": row is block.rows[0], "n": row.n, "still": row.still,
                "diff": info.fmt(row.diff, signed=True) if row.diff is not None else "",
                "diff_ci": (f"{info.fmt(row.diff_lo, signed=True)} \u2013 {info.fmt(row.diff_hi, signed=True)}"
                            if row.diff_lo is not None else ""),
                "pairs": row.pairs, "cases": row.cases,
                "wins": "" if row.wins is None else f"{round(100 * row.wins)}%",
                "p": row.p, "p_text": fmt_p(row.p), "p_holm": row.p_holm, "p_holm_text": fmt_p(row.p_holm),
                "significant": row.significant, "why_untested": row.why_untested})
        ranking.append({"info": info, "rows": rows, "gated": block.gated, "all_tied": block.all_tied,
                        "excluded": [{"model": m, "color": colors[m], "why": why} for m, why in block.excluded.items()],
                        "reference": block.rows[0].model if block.rows else ""})
    n_tests = sum(row["p"] is not None for b in ranking for row in b["rows"])

    # figures -----------------------------------------------------------------------------------------
    fig_metrics = [{"name": n, "label": i.label, "scale": i.scale, "higher": i.higher, "best": sorted(best_models[n]),
                    "still": sorted(all_still_models) if i.rewards_stillness else [],
                    "stats": {m: stats.get(m, {}).get(n) for m in models}} for n, i in infos.items()]
    figure_errors: list[str] = []

    def drawn(what: str, make, *args, **kw) -> str | None:
        """A figure, or None and the reason noted: a figure that cannot be drawn never stops the report."""
        try:
            module = getattr(make, "__module__", "") or ""
            name = f"{module}.{getattr(make, '__name__', what)}"
            return memoised(f"figure:{name}", (figures.FIGURES_VERSION, source_digest(module), args, kw),
                            lambda: make(*args, **kw))
        except Exception as e:  # matplotlib on odd values (inf, huge): say so, keep the page
            figure_errors.append(f"{what}: not drawn ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            return None

    bars = drawn("score figure", figures_svg.score_panels, models, fig_metrics, colors)
    # on the radar a still model has no point on the axes it would top trivially
    spider = drawn("radar", figures_svg.radar, models, [dict(f, stats={m: (None if m in f["still"] else s)
                                                                   for m, s in f["stats"].items()})
                                                    for f in fig_metrics], colors)

    # cost: per model, and quality against cost per clip (hosted models; local ones at 0 USD) -----------
    cost_rows, cost_figure = [], None
    if any_cost(records):
        costs = cost_summary(records)
        for m in models:
            c = costs.get(m) or {}
            cost_rows.append({"model": m, "color": colors[m], "local": c.get("local", True), "clips": c.get("clips", 0),
                              "usd": _usd(c.get("usd")), "per_clip": _usd(c.get("usd_per_clip")),
                              "per_second": _usd(c.get("usd_per_second")), "sources": ", ".join(c.get("sources") or []),
                              "unpriced": c.get("unpriced", 0), "charged_failed": c.get("charged_failed", 0)})
        chosen = (["objective"] if "objective" in infos else []) + [n for n, i in infos.items()
                                                                    if i.higher is not None and n != "objective"]
        panels = []
        for n in chosen[:6]:
            info = infos[n]
            pts: dict[str, tuple[float, float]] = {}
            for m in models:
                mean = (stats.get(m, {}).get(n) or {}).get("mean")
                c = costs.get(m) or {}
                usd = 0.0 if c.get("local", True) else c.get("usd_per_clip")
                if mean is None or usd is None or (info.rewards_stillness and m in all_still_models):
                    continue
                pts[m] = (usd, mean * info.scale)
            panels.append({"label": info.label, "higher": info.higher, "points": pts,
                           "front": pareto_front(pts, bool(info.higher))})
        cost_figure = drawn("cost figure", figures.cost_quality, panels, colors)

    # the clip table: one row per (case, seed), paged in the browser from compact data -------------------
    not_run_cache: dict[tuple[str, str], str] = {}

    def not_run(case: str, model: str) -> str:
        if (case, model) not in not_run_cache:
            not_run_cache[(case, model)] = _not_run(model_names.get(model), case_inputs.get(case), case, model)
        return not_run_cache[(case, model)]

    model_names = {}
    case_inputs = {}
    for r in records:
        model_names.setdefault(str(r.get("model")), r.get("model_name"))
        case_inputs.setdefault(str(r.get("case")), r.get("inputs") or {})
    table = ClipTable(records, run_dir, models, colors, infos, null_reason, not_run, kept, favourites, motion_floor)
    grid = table.first_page()
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_cell[(str(r.get("case")), str(r.get("model")))].append(r)

    # personas: face swap of one source clip, every persona (case) side by side, per model -----------------
    def cell_of(case: str, m: str) -> dict[str, Any]:
        """Every seed of a model on a persona case, one panel each (the persona row switches seeds)."""
        recs = sorted(by_cell.get((case, m), []), key=lambda r: (str(r.get("seed")), r.get("output") or 0))
        if not recs:
            return {"model": m, "color": colors[m], "panels": [], "empty": True, "why_empty": not_run(case, m)}
        return {"model": m, "color": colors[m], "panels": [table.panel(r) for r in recs], "empty": False,
                "why_empty": ""}

    from workbench import personas as persona_data  # the source cell, the swap verdicts

    personas = []
    swaps: dict[tuple[str, str], list[str]] = {}
    source_name: dict[str, str] = {}
    for r in records:
        src = (r.get("inputs") or {}).get("video") or {}
        if r.get("task") != "face-swap" or not src:
            continue
        key = str(src.get("sha256") or src.get("path"))
        source_name[key] = Path(str(src.get("path") or key)).name
        cases_of = swaps.setdefault((key, str(r.get("model"))), [])
        if str(r.get("case")) not in cases_of:
            cases_of.append(str(r.get("case")))
    for (key, m), persona_cases in swaps.items():
        gaps = []
        for case in persona_cases:
            recs_pc = [r for r in by_cell.get((case, m), []) if r.get("status") == "ok"]
            t_ = [v for r in recs_pc if (v := score_value(r, "identity_to_target")) is not None]
            s_ = [v for r in recs_pc if (v := score_value(r, "identity_to_source")) is not None]
            if t_ and s_:
                gaps.append(sum(t_) / len(t_) - sum(s_) / len(s_))
        cells = []
        for case in persona_cases:
            first_rec = next(iter(by_cell.get((case, m), [])), {})
            img = ((first_rec.get("inputs") or {}).get("image") or {}).get("path")
            element = ((first_rec.get("workflow") or {}).get("element") or {}).get("name")
            label = case + (f" (element {element})" if element else (f" ({Path(str(img)).name})" if img else ""))
            cells.append(persona_data.flag_cell({**cell_of(case, m), "persona": label}, by_cell.get((case, m), [])))
        source = persona_data.source_cell(r for case in persona_cases for r in by_cell.get((case, m), []))
        personas.append({"source": source_name[key], "model": m, "color": colors[m],
                         "cells": [source, *cells] if source else cells,
                         "verdicts": persona_data.row_summary(persona_cases, {c: by_cell.get((c, m), [])
                                                                              for c in persona_cases}),
                         "gap": (f"identity to target minus to source: {', '.join(fmt_number(g, signed=True) for g in gaps)}"
                                 if gaps else "")})

    first = records[0] if records else {}
    suites = list(dict.fromkeys(str(r.get("suite")) for r in records if r.get("suite")))
    return {
        "bestofn": best_of_n_context(run_dir),
        "judging": judging_context(records, run_dir, objective),
        "title": " + ".join(suites[:3]) + (f" + {len(suites) - 3} more" if len(suites) > 3 else "") if suites
        else run_dir.name,
        "run_dir": str(run_dir), "n_jobs": len(records),
        "n_ok": len(ok), "n_failed": len(failed), "models": models, "colors": colors, "cases": cases,
        "metrics": list(infos.values()), "missing": missing, "partial": partial,
        "mixed": mixed_backends(records), "warnings": sorted(warn_counts.items(), key=lambda kv: -kv[1]),
        "left_out": list(left_out or []),
        "motion": motion_rows, "motion_floor": shown_flow(motion_floor), "has_motion": has_motion,
        "gated_names": gated_names, "still_models": sorted(all_still_models),
        "objective": objective.describe() if objective is not None else "",
        "summary_rows": summary_rows, "ranking": ranking, "n_tests": n_tests, "alpha": ALPHA, "min_cases": MIN_CASES,
        "bars": bars, "radar": spider, "grid": grid, "figure_errors": figure_errors, "personas": personas,
        "table": table_json(table.table_data()), "n_rows": len(table.keys), "page_rows": PAGE_ROWS,
        "clip_paths": table.clip_paths(),
        "cost_rows": cost_rows, "cost_figure": cost_figure,
        "failed": [{"case": r.get("case"), "model": r.get("model"), "seed": r.get("seed"),
                    "error": r.get("error") or "no error text", "type": r.get("error_type") or "",
                    "traceback": r.get("traceback") or ""} for r in failed],
        "versions": first.get("versions") or {}, "hardware": first.get("hardware") or {},
        "nondirectional": [i.name for i in infos.values() if i.higher is None],
    }


def judging_context(records: list[dict[str, Any]], run_dir: Path, objective: Any) -> dict[str, Any]:
    """The human judgments section and its blind judging panel (workbench.judging.page)."""
    from workbench.judging.page import report_context

    return report_context(records, run_dir, objective)


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


def render(records: list[dict[str, Any]], run_dir: str | Path, left_out: list[str] | None = None,
           motion_floor: float = MOTION_FLOOR, clips: str = "auto", embed_mb: float | None = None) -> str:
    """The report page for these records. `clips`: auto (embed clips as data: URIs up to `embed_mb`,
    default $WORKBENCH_REPORT_EMBED_MB or 64, link the rest relative to run_dir), embed, or link
    (see workbench.report_media)."""
    from workbench.report_media import assign_sources

    context = build_context(records, Path(run_dir), left_out, motion_floor)
    shown = [*context["grid"], *({"cells": row["cells"]} for row in context["personas"])]
    context["media"] = assign_sources(shown, run_dir, clips, embed_mb, more=context.pop("clip_paths"))
    context["media_json"] = table_json(context["media"].uris)
    return _environment().get_template("report.html.j2").render(**context)


def _gather(run_dirs: list[Path], out_dir: Path) -> RunSet:
    """The records to show: the run folder's current ones, or several folders joined (see runset)."""
    if len(run_dirs) == 1 and run_dirs[0].resolve() == out_dir.resolve() and (
            (run_dirs[0] / "results.jsonl").exists() or not run_dirs[0].is_dir()):
        run_dir = run_dirs[0]
        store = RunStore(run_dir)
        if not run_dir.exists():
            raise ReportError(f"{run_dir}: not found; pass a run folder written by `workbench run` (it holds "
                              f"results.jsonl)")
        if not run_dir.is_dir():
            raise ReportError(f"{run_dir}: not a folder; pass a run folder written by `workbench run` (it holds "
                              f"results.jsonl)")
        if not store.results.exists():
            raise ReportError(f"{store.results}: not found; pass a run folder written by `workbench run` "
                              f"(or a folder of run folders with --out)")
        if not store.results.is_file():
            raise ReportError(f"{store.results}: is not a regular file; move it away (a run folder's results.jsonl "
                              f"is the file `workbench run` writes)")
        try:
            records = list(store.latest().values())
        except OSError as e:
            raise ReportError(f"{store.results}: cannot be read ({e.strerror or e}); fix its permissions") from None
        if not records:
            try:
                lines = sum(1 for line in store.results.open("rb") if line.strip())
            except OSError:
                lines = 0
            raise ReportError(f"{store.results}: holds no records"
                              + (f" ({lines} line{' is' if lines == 1 else 's are'} not a record)" if lines else "")
                              + "; run the suite first (`workbench run SUITE.yaml`)")
        return current_records(run_dir, records)
    try:
        runset = load_runs(run_dirs, out_dir)
    except RunSetError as e:
        raise ReportError(str(e)) from None
    except OSError as e:
        raise ReportError(f"{getattr(e, 'filename', None) or run_dirs[0]}: cannot be read ({e.strerror or e})") from None
    if not runset.records:
        raise ReportError(f"{', '.join(map(str, run_dirs))}: no records to compare; run a suite first")
    return runset


def write_report(run_dir: str | Path | list[str | Path], out_dir: str | Path | None = None,
                 motion_floor: float = MOTION_FLOOR, clips: str = "auto", embed_mb: float | None = None) -> Path:
    """Write OUT/report.html and return its path. `run_dir`: one run folder (OUT defaults to it), or
    several run folders / a folder of runs joined on case and seed (OUT defaults to the only folder
    given, else is required). Every fault is one ReportError line naming the path and the fix."""
    dirs = list({Path(p).resolve(): Path(p) for p in (run_dir if isinstance(run_dir, (list, tuple))
                                                    else [run_dir])}.values())  # a folder named twice is one
    if not dirs:
        raise ReportError("no run folder given; pass a run folder written by `workbench run`")
    for d in dirs:
        if d.exists() and not d.is_dir():
            raise ReportError(f"{d}: is a file, not a run folder; pass a run folder written by `workbench run` "
                              f"(it holds results.jsonl)")
    if out_dir is None:
        if len(dirs) > 1:
            raise ReportError("several run folders: say where the joined report goes with --out DIR")
        out_dir = dirs[0]  # a run folder, or a folder of runs (runs/): the joined report goes into it
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"{out_dir}: is a file, not a folder; pass --out a folder")
    out = out_dir / "report.html"
    mode = check_mode(clips)  # options are checked (and named) before anything is read
    budget = embed_budget_mb(embed_mb)
    key = page_key(dirs, out_dir, {"motion_floor": motion_floor, "clips": mode, "embed_mb": budget})
    if page_is_current(out_dir, key):
        return out  # the same inputs gave this page last time: nothing to read, draw or write
    runset = _gather(dirs, out_dir)
    memo = memo_for(out_dir)
    with using(memo):  # CIs, tests and figures whose inputs did not change come from the last call
        page = render(runset.records, out_dir, runset.left_out, motion_floor, clips, budget)
    page = scrub(page)  # a key set in this environment never reaches the page (pasted into a prompt, an error)
    try:
        if out.read_text(encoding="utf-8") == page:
            memo.save()
            remember_page(out_dir, key)
            return out  # same records, same page (figures and CIs are deterministic): nothing to write
    except (OSError, UnicodeDecodeError):
        pass
    tmp = out_dir / f".report.html.{os.getpid()}.{threading.get_ident()}.part"  # one per writer (shards end together)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        why = {errno.ENOSPC: "the disk is full; free space", errno.EDQUOT: "the disk quota is exceeded; free space",
               errno.EACCES: "permission denied; fix the folder's permissions",
               errno.EPERM: "permission denied; fix the folder's permissions",
               errno.EROFS: "the file system is read-only"}.get(e.errno, e.strerror or str(e))
        raise ReportError(f"{out}: not written ({why}, or write the report elsewhere with --out DIR); "
                          f"results.jsonl is unchanged") from None
    memo.save()
    remember_page(out_dir, key)
    return out
