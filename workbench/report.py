"""Static HTML comparison report (and matplotlib figures) built from results.jsonl alone.

One page per run folder: a model summary (mean and bootstrap 95% CI per score, best in bold), one
bar figure per score, then every case as a side-by-side grid of clips with their scores, then the
failed jobs with their errors. Videos are linked relatively, so the folder can be zipped and shared.
"""
from __future__ import annotations

import html
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from workbench.store import RunStore


class ReportError(ValueError):
    pass


def _directions() -> dict[str, bool | None]:
    try:
        from workbench.metrics import score_specs

        return {n: s.higher_is_better for n, s in score_specs().items()}
    except Exception:
        return {}


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    return html.escape(str(v))


def summarize(records: list[dict[str, Any]]) -> tuple[list[str], list[str], dict[str, dict[str, dict]]]:
    """(models, score names, {model: {score: {"mean","lo","hi","n"}}}) over the run's ok records."""
    from workbench.metrics.stats import summarize as bootstrap_summaries

    ok = [r for r in records if r.get("status") == "ok"]
    models = list(dict.fromkeys(r["model"] for r in ok))
    names = list(dict.fromkeys(k for r in ok for k, v in r.get("scores", {}).items() if v is not None))
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for s in bootstrap_summaries(ok, names):
        table[s.model][s.metric] = s.to_dict()
    return models, names, dict(table)


def mixed_backends(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Scores computed with more than one backend in this run (comparisons across them are unfair)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.get("status") != "ok":
            continue
        for name, backend in r.get("backends", {}).items():
            if r.get("scores", {}).get(name) is not None:
                seen[name].add(backend)
    return {k: sorted(v) for k, v in seen.items() if len(v) > 1}


def _figure(run_dir: Path, models: list[str], names: list[str], table: dict, directions: dict) -> str | None:
    if not models or not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        means, errs = [], [[], []]
        for m in models:
            s = table.get(m, {}).get(name)
            mean = s["mean"] if s and s["mean"] is not None else float("nan")
            means.append(mean)
            errs[0].append(max(0.0, mean - s["lo"]) if s and s.get("lo") is not None else 0.0)
            errs[1].append(max(0.0, s["hi"] - mean) if s and s.get("hi") is not None else 0.0)
        ax.bar(range(len(models)), means, yerr=errs, capsize=3, color="#4C72B0")
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=8)
        arrow = {True: " (higher better)", False: " (lower better)"}.get(directions.get(name), "")
        ax.set_title(name + arrow, fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    out = run_dir / "figures" / "scores.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return str(out.relative_to(run_dir))


def _best(models: list[str], name: str, table: dict, higher: bool | None) -> str | None:
    if higher is None:
        return None
    vals = [(table[m][name]["mean"], m) for m in models if table.get(m, {}).get(name, {}).get("mean") is not None]
    if len(vals) < 2:
        return None
    return (max if higher else min)(vals)[1]


def _paired_section(ok: list[dict[str, Any]], models: list[str], names: list[str],
                    directions: dict[str, bool | None]) -> list[str]:
    """Each model against the run's first model over matched (case, seed) jobs: mean difference with a
    bootstrap 95% CI (significant when it excludes 0) and the share of pairs it wins."""
    from workbench.metrics.stats import compare

    if len(models) < 2:
        return []
    base = models[0]
    out = [f"<h2>Paired comparison against {html.escape(base)}</h2><p><small>mean of (model &minus; "
           f"{html.escape(base)}) over matched case/seed pairs [bootstrap 95% CI]; <b>bold</b>: the CI excludes 0; "
           "wins: share of pairs where the model is better</small></p><div style='overflow-x:auto'><table>"
           "<tr><th class=l>model</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"]
    for m in models[1:]:
        out.append(f"<tr><td class=l>{html.escape(m)}</td>")
        for n in names:
            c = compare(ok, m, base, n, higher_is_better=directions.get(n))
            if c.mean_diff is None:
                out.append("<td>&ndash;</td>")
                continue
            text = f"{c.mean_diff:+.3g} <small>[{_fmt(c.lo)}, {_fmt(c.hi)}]</small>"
            if c.significant:
                text = f"<b>{text}</b>"
            if c.a_wins is not None and directions.get(n) is not None:
                text += f"<br><small>wins {c.a_wins:.0%} of {c.n_pairs}</small>"
            out.append(f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</table></div>")
    return out


def render(records: list[dict[str, Any]], run_dir: Path) -> str:
    directions = _directions()
    models, names, table = summarize(records)
    figure = _figure(run_dir, models, names, table, directions)
    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    suite = records[0].get("suite", run_dir.name) if records else run_dir.name
    parts = [f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(suite)} - workbench report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin:8px 0 20px}}
td,th{{border:1px solid #ddd;padding:4px 8px;font-size:13px;text-align:right}} th{{background:#f4f4f4}}
td.l,th.l{{text-align:left}} .grid{{display:flex;flex-wrap:wrap;gap:14px}} .cell{{border:1px solid #ddd;padding:8px;width:300px}}
.cell video{{width:100%}} .warn{{background:#fff3cd;padding:8px;border:1px solid #e0c36c}} .err{{color:#a00}}
small{{color:#666}}
</style></head><body>
<h1>{html.escape(suite)}</h1>
<p>{len(records)} jobs: {len(ok)} finished, {len(failed)} failed. Built from <code>results.jsonl</code>.</p>"""]
    mixed = mixed_backends(records)
    if mixed:
        items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(', '.join(v))}</li>" for k, v in mixed.items())
        parts.append(f'<div class="warn">These scores mix backends across jobs; do not compare them across '
                     f'backends:<ul>{items}</ul></div>')
    if models:
        parts.append("<h2>Models</h2><p><small>mean [bootstrap 95% CI] over cases and seeds; best in bold; "
                     "&uarr; higher is better, &darr; lower is better</small></p><div style='overflow-x:auto'>"
                     "<table><tr><th class=l>model</th><th>n</th>")
        for n in names:
            arrow = {True: " &uarr;", False: " &darr;"}.get(directions.get(n), "")
            parts.append(f"<th>{html.escape(n)}{arrow}</th>")
        parts.append("</tr>")
        for m in models:
            count = sum(r["model"] == m for r in ok)
            parts.append(f"<tr><td class=l>{html.escape(m)}</td><td>{count}</td>")
            for n in names:
                s = table.get(m, {}).get(n)
                if not s or s["mean"] is None:
                    parts.append("<td>&ndash;</td>")
                    continue
                text = f"{_fmt(s['mean'])} <small>[{_fmt(s['lo'])}, {_fmt(s['hi'])}]</small>"
                if _best(models, n, table, directions.get(n)) == m:
                    text = f"<b>{text}</b>"
                parts.append(f"<td>{text}</td>")
            parts.append("</tr>")
        parts.append("</table></div>")
    if figure:
        parts.append(f'<img src="{html.escape(figure)}" alt="scores per model" style="max-width:100%">')
    parts.extend(_paired_section(ok, models, names, directions))
    by_case: dict[str, list[dict]] = defaultdict(list)
    for r in ok:
        by_case[r["case"]].append(r)
    for case, recs in by_case.items():
        prompt = recs[0].get("prompt") or ""
        parts.append(f"<h2>Case {html.escape(case)}</h2>")
        if prompt:
            parts.append(f"<p><i>{html.escape(prompt)}</i></p>")
        parts.append('<div class="grid">')
        for r in sorted(recs, key=lambda r: (r["model"], r["seed"])):
            rows = "".join(
                f"<tr><td class=l>{html.escape(k)}</td><td>{_fmt(v)}</td><td class=l><small>"
                f"{html.escape(r.get('backends', {}).get(k, ''))}</small></td></tr>"
                for k, v in r.get("scores", {}).items())
            video = html.escape(r.get("video") or "")
            parts.append(f'<div class="cell"><b>{html.escape(r["model"])}</b> <small>seed {r["seed"]}</small>'
                         f'<video src="{video}#t=0.1" controls loop preload="metadata"></video>'
                         f'<table style="width:100%">{rows}</table>'
                         f'<small>generate {_fmt(r.get("timings", {}).get("generate"))} s, '
                         f'evaluate {_fmt(r.get("timings", {}).get("evaluate"))} s</small></div>')
        parts.append("</div>")
    if failed:
        parts.append("<h2>Failed jobs</h2><table><tr><th class=l>case</th><th class=l>model</th><th>seed</th>"
                     "<th class=l>error</th></tr>")
        for r in failed:
            parts.append(f"<tr><td class=l>{html.escape(r['case'])}</td><td class=l>{html.escape(r['model'])}</td>"
                         f"<td>{r['seed']}</td><td class='l err'>{html.escape(str(r.get('error')))}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.html from run_dir/results.jsonl and return its path."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    if not store.results.exists():
        raise ReportError(f"{store.results}: not found; pass a run folder written by `workbench run`")
    records = list(store.latest().values())
    out = run_dir / "report.html"
    tmp = out.with_suffix(".html.part")
    tmp.write_text(render(records, run_dir))
    tmp.replace(out)
    return out
