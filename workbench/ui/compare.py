"""Compare tab: a run folder's clips side by side, playing in step, with scores and CIs.

Rows are (case, seed), columns are models; each row has one play/pause. Under each clip its scores,
the best of the row per score starred (by the score's direction). Above the grid, the model summary:
mean and bootstrap 95% CI per score over the selected jobs (`workbench.metrics.stats.model_summaries`).
Stars mark favourites (kept in RUN/favourites.json). "Write report" writes the report of the selection:
the whole run's `report.html`, or, for a subset, `RUN/selections/<name>/report.html` over a
results.jsonl holding just those records (clip paths point back into the run's clips/).
"""
from __future__ import annotations

import hashlib
import html
import json
import os
from pathlib import Path
from typing import Any

import ipywidgets as W

from workbench.names import slug
from workbench.ui.jobs import Worker
from workbench.ui.media import jupyter_server, served_url
from workbench.ui.widgets import (ClipGrid, Message, RunPicker, arrow, best_values, clip_item, directions, fmt,
                                  html_table, score_order, scores_caption)

MAX_ROWS = 12


def load_favourites(run_dir: Path) -> list[str]:
    p = run_dir / "favourites.json"
    try:
        data = json.loads(p.read_text())
        return [str(x) for x in data] if isinstance(data, list) else []
    except (OSError, ValueError):
        return []


def save_favourites(run_dir: Path, keys: list[str]) -> None:
    p = run_dir / "favourites.json"
    tmp = p.with_suffix(".json.part")
    tmp.write_text(json.dumps(sorted(set(keys)), indent=1))
    tmp.replace(p)


def summary_html(records: list[dict[str, Any]], dirs: dict[str, bool | None]) -> str:
    """Model x score table: mean [95% CI] (n), the best mean per score in bold."""
    from workbench.metrics.stats import model_summaries

    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        return "<i>no finished jobs selected</i>"
    names = score_order(dict.fromkeys(k for r in ok for k, v in (r.get("scores") or {}).items() if v is not None))
    stats = model_summaries(ok, names)
    models = list(stats)
    best: dict[str, float] = {}
    for n in names:
        d = dirs.get(n)
        means = [stats[m][n]["mean"] for m in models if stats[m].get(n) and stats[m][n]["mean"] is not None]
        if d is not None and len(means) > 1:
            best[n] = max(means) if d else min(means)
    body = []
    for m in models:
        cells = [f"<b>{html.escape(m)}</b>"]
        for n in names:
            s = stats[m].get(n)
            if s is None or s["mean"] is None:
                cells.append("<span style='color:#999'>&ndash;</span>")
                continue
            ci = f" <span style='color:#777'>[{fmt(s['lo'])}, {fmt(s['hi'])}]</span>" if s["lo"] is not None else ""
            val = f"<b style='color:#0a7d32'>{fmt(s['mean'])}</b>" if best.get(n) == s["mean"] else fmt(s["mean"])
            cells.append(f"{val}{ci} <span style='color:#999'>n={s['n']}</span>")
        body.append(cells)
    head = ["model"] + [f"{html.escape(n)} {arrow(dirs.get(n))}" for n in names]
    return html_table(head, body, "model summary: mean [bootstrap 95% CI] over the selected cases and seeds", nowrap=True)


class CompareTab(W.VBox):
    def __init__(self, runs_root: Path) -> None:
        self.runs_root = Path(runs_root)
        self.picker = RunPicker(self.runs_root, on_change=lambda p: self.load(p))
        sel = dict(layout=W.Layout(width="220px", height="90px"))
        self.cases = W.SelectMultiple(description="cases", style={"description_width": "44px"}, **sel)
        self.models = W.SelectMultiple(description="models", style={"description_width": "48px"}, **sel)
        self.seeds = W.SelectMultiple(description="seeds", style={"description_width": "40px"},
                                      layout=W.Layout(width="140px", height="90px"))
        self.only_favs = W.Checkbox(value=False, description="favourites only", indent=False)
        self.size = W.IntSlider(value=240, min=128, max=512, step=16, description="clip px", continuous_update=False,
                                layout=W.Layout(width="260px"), style={"description_width": "50px"})
        self.report_btn = W.Button(description="Write report", icon="file-text-o", tooltip="report of the selection")
        self.message = Message()
        self.summary = W.HTML()
        self.grid = ClipGrid(width=240, stars=True, empty="pick a run folder")
        self.records: list[dict[str, Any]] = []
        self.run_dir: Path | None = None
        self._loading = False
        self._report_worker: Worker | None = None
        for w in (self.cases, self.models, self.seeds, self.only_favs):
            w.observe(lambda _: self.show(), names="value")
        self.size.observe(lambda ch: setattr(self.grid, "width", ch["new"]), names="value")
        self.grid.observe(self._favs_changed, names="favourites")
        self.report_btn.on_click(lambda _: self.write_report())
        filters = W.HBox([self.cases, self.models, self.seeds,
                          W.VBox([self.only_favs, self.size, self.report_btn])], layout=W.Layout(justify_content="flex-start"))
        super().__init__([self.picker, filters, self.message, self.summary, self.grid])

    # -- loading -----------------------------------------------------------------------------------------
    def load(self, run_dir: Path | None) -> None:
        from workbench.store import load_records

        self.run_dir = run_dir
        self.records = []
        if run_dir is None:
            return
        if not (run_dir / "results.jsonl").is_file():
            self.message.error(f"{run_dir}: no results.jsonl here; pick a folder written by a run")
            self.grid.rows = []
            self.summary.value = ""
            return
        try:
            self.records = load_records(run_dir)
        except Exception as e:
            self.message.error(e)
            return
        self._loading = True
        try:
            self.cases.options = list(dict.fromkeys(str(r.get("case")) for r in self.records))
            self.models.options = list(dict.fromkeys(str(r.get("model")) for r in self.records))
            self.seeds.options = sorted({int(r.get("seed", 0)) for r in self.records})
            self.cases.value = tuple(self.cases.options)
            self.models.value = tuple(self.models.options)
            self.seeds.value = tuple(self.seeds.options)
            self.grid.favourites = load_favourites(run_dir)
        finally:
            self._loading = False
        self.show()

    def selected(self) -> list[dict[str, Any]]:
        cases, models, seeds = set(self.cases.value), set(self.models.value), set(self.seeds.value)
        favs = set(self.grid.favourites)
        return [r for r in self.records if str(r.get("case")) in cases and str(r.get("model")) in models
                and int(r.get("seed", 0)) in seeds and (not self.only_favs.value or r.get("job_id") in favs)]

    def show(self) -> None:
        if self._loading or self.run_dir is None:
            return
        recs = self.selected()
        dirs = directions()
        order = list(self.models.options)
        groups: dict[tuple, list[dict]] = {}
        for r in recs:
            groups.setdefault((str(r.get("case")), int(r.get("seed", 0)), int(r.get("output") or 0)), []).append(r)
        rows = []
        for (case, seed, output), rs in list(groups.items())[:MAX_ROWS]:
            rs.sort(key=lambda r: order.index(str(r.get("model"))) if str(r.get("model")) in order else 0)
            best = best_values([r for r in rs if r.get("status") == "ok"], dirs) if len(rs) > 1 else {}
            clips = []
            for r in rs:
                title = str(r.get("model"))
                if r.get("status") != "ok" or not r.get("video"):
                    clips.append(clip_item(None, title, error=str(r.get("error") or "failed"), status="error",
                                           key=r.get("job_id", "")))
                else:
                    clips.append(clip_item(self.run_dir / r["video"], title, caption=scores_caption(r, dirs, best),
                                           key=r.get("job_id", "")))
            rows.append({"label": f"{case} \u00b7 seed {seed}" + (f" \u00b7 output {output}" if output else ""),
                         "clips": clips})
        self.grid.rows = rows
        self.grid.empty = "nothing selected" if self.records else "this run has no jobs yet"
        self.summary.value = summary_html(recs, dirs)
        more = f"; showing the first {MAX_ROWS} of {len(groups)} rows (narrow the selection)" if len(groups) > MAX_ROWS else ""
        self.message.info(f"{len(recs)} of {len(self.records)} jobs selected{more}")

    def _favs_changed(self, change: dict) -> None:
        if self._loading or self.run_dir is None:
            return
        try:
            save_favourites(self.run_dir, list(change["new"]))
        except OSError as e:
            self.message.error(f"favourites not saved: {e}")
        if self.only_favs.value:
            self.show()

    # -- report ------------------------------------------------------------------------------------------
    def selection_folder(self, recs: list[dict[str, Any]]) -> Path:
        """The folder whose report covers `recs`: the run itself when everything is selected, else a
        selection folder holding just those records (clip paths rewritten to point into the run)."""
        assert self.run_dir is not None
        if len(recs) == len(self.records):
            return self.run_dir
        digest = hashlib.sha256("\n".join(sorted(str(r.get("job_id")) for r in recs)).encode()).hexdigest()[:8]
        name = "-".join(sorted(self.models.value))[:40] + f"-{len(recs)}jobs-{digest}"  # one folder per selection
        folder = self.run_dir / "selections" / slug(name)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for r in recs:
            r = dict(r)
            if r.get("video"):
                r["video"] = os.path.relpath(self.run_dir / r["video"], folder)
            for key in ("series",):
                if r.get(key):
                    r[key] = os.path.relpath(self.run_dir / r[key], folder)
            lines.append(json.dumps(r, default=str))
        tmp = folder / "results.jsonl.part"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(folder / "results.jsonl")
        return folder

    def write_report(self) -> None:
        if self.run_dir is None:
            self.message.error("pick a run folder first")
            return
        recs = self.selected()
        if not recs:
            self.message.error("nothing selected: pick at least one case, model and seed")
            return
        if self._report_worker is not None and self._report_worker.running:
            return
        self.report_btn.disabled = True
        self.message.info(f"writing the report of {len(recs)} jobs...")

        def work() -> None:
            from workbench.report import write_report

            out = write_report(self.selection_folder(recs))
            url = served_url(out, jupyter_server())
            link = (f"<a href='{html.escape(url)}' target='_blank'>{html.escape(out.name)}</a>" if url
                    else f"<code>{html.escape(str(out))}</code>")
            self.message.value = f"<span style='color:#0a7d32'>report written: {link}</span>"
            self.report_path = out

        def done() -> None:
            self.report_btn.disabled = False

        self._report_worker = Worker(work, on_error=self.message.error, on_done=done).start()
