"""Compare tab: a run folder's clips side by side, playing in step, with scores and CIs.

Rows are (case, seed), columns are models; each row has one play/pause. Several run folders can be
joined ("join with": `workbench.runset.load_runs`, on case and seed), so model A run today and model B
run tomorrow on the same inputs share a row. Under each clip its scores in the report's units, the
best of the row per score starred (by the score's direction; ties all starred, none when all equal). Above the grid, the model summary:
mean and bootstrap 95% CI per score over the selected jobs (`workbench.metrics.stats.model_summaries`).
Hearts mark favourites (kept in each RUN/favourites.json). "Write report" writes the report of the selection:
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
from workbench.ui.widgets import (NA, ClipGrid, Message, RunPicker, arrow, best_in_row, clip_item, directions,
                                  fmt_score, html_table, score_infos, score_order, scores_caption, unit_html)

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


def summary_html(records: list[dict[str, Any]], dirs: dict[str, bool | None], infos: dict[str, Any] | None = None) -> str:
    """Score x model table: mean [95% CI] (n) in each score's unit, the best mean per score in bold
    (ties: every mean that reads the same as the best; none when all read the same)."""
    from workbench.metrics.stats import model_summaries

    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        return "<i>no finished jobs selected</i>"
    names = score_order(dict.fromkeys(k for r in ok for k, v in (r.get("scores") or {}).items() if v is not None))
    infos = infos if infos is not None else score_infos(ok, names)
    stats = model_summaries(ok, names)
    models = list(stats)
    best: dict[str, str] = {}
    for n in names:
        d = dirs.get(n)
        means = [stats[m][n]["mean"] for m in models if stats[m].get(n) and stats[m][n]["mean"] is not None]
        shown = {fmt_score(n, x, infos) for x in means}
        if d is not None and len(means) > 1 and len(shown) > 1:
            best[n] = fmt_score(n, max(means) if d else min(means), infos)
    # scores down, models across: a run compares a few models on many scores, so this stays narrow
    body = []
    for n in names:
        cells = [f"<code>{html.escape(n)}</code> {arrow(dirs.get(n))}{unit_html(n, infos)}"]
        for m in models:
            s = stats[m].get(n)
            if s is None or s["mean"] is None:
                cells.append(f"<span style='color:#999'>{NA}</span> <span style='color:#999;font-size:11px'>"
                             "(no value in the selection)</span>")
                continue
            ci = f"[{fmt_score(n, s['lo'], infos)}, {fmt_score(n, s['hi'], infos)}] " if s["lo"] is not None else ""
            text = fmt_score(n, s["mean"], infos)
            val = f"<b style='color:#0a7d32'>{text}</b>" if best.get(n) == text else text
            cells.append(f"<span style='white-space:nowrap'>{val}</span> <span style='color:#777;font-size:11px;"
                         f"white-space:nowrap'>{ci}n={s['n']}</span>")
        body.append(cells)
    head = ["score"] + [f"<b>{html.escape(m)}</b>" for m in models]
    return html_table(head, body, "model summary: mean [bootstrap 95% CI] over the selected cases and seeds"
                      " (best mean in bold)")


def _run_label(p: Path, root: Path) -> str:
    try:
        return str(p.resolve().relative_to(root.parent.resolve()))
    except ValueError:
        return str(p)


class CompareTab(W.VBox):
    """One run folder's clips side by side (or several run folders joined on case and seed)."""

    def __init__(self, runs_root: Path) -> None:
        self.runs_root = Path(runs_root)
        self.picker = RunPicker(self.runs_root, on_change=lambda p: self.load(p))
        self.join = W.SelectMultiple(description="join with", rows=3, layout=W.Layout(width="440px"),
                                     style={"description_width": "80px"},
                                     tooltip="other run folders to join on case and seed (ctrl/shift-click)")
        self.join.observe(lambda _: self._joined_changed(), names="value")
        sel = dict(layout=W.Layout(width="200px", height="90px"))
        self.cases = W.SelectMultiple(description="cases", style={"description_width": "44px"}, **sel)
        self.models = W.SelectMultiple(description="models", style={"description_width": "48px"}, **sel)
        self.seeds = W.SelectMultiple(description="seeds", style={"description_width": "40px"},
                                      layout=W.Layout(width="140px", height="90px"))
        self.only_favs = W.Checkbox(value=False, description="favourites only", indent=False)
        self.size = W.IntSlider(value=240, min=128, max=512, step=16, description="clip px", continuous_update=False,
                                layout=W.Layout(width="220px"), style={"description_width": "50px"})
        self.report_btn = W.Button(description="Write report", icon="file-text-o", tooltip="report of the selection")
        self.message = Message()
        self.summary = W.HTML(layout=W.Layout(max_width="100%", overflow="hidden"))
        self.grid = ClipGrid(width=240, stars=True, empty="pick a run folder")
        self.records: list[dict[str, Any]] = []
        self.run_dir: Path | None = None  # the run picked first (selections of the comparison go under it)
        self.runs: list[Path] = []  # every run folder shown
        self.base: Path | None = None  # record paths (video, series, run) are relative to this folder
        self.left_out: list[str] = []
        self._infos: dict[str, Any] = {}
        self._loading = False
        self._report_worker: Worker | None = None
        for w in (self.cases, self.models, self.seeds, self.only_favs):
            w.observe(lambda _: self.show(), names="value")
        self.size.observe(lambda ch: setattr(self.grid, "width", ch["new"]), names="value")
        self.grid.observe(self._favs_changed, names="favourites")
        self.report_btn.on_click(lambda _: self.write_report())
        filters = W.HBox([self.cases, self.models, self.seeds,
                          W.VBox([self.only_favs, self.size, self.report_btn])],
                         layout=W.Layout(justify_content="flex-start", flex_flow="row wrap"))
        super().__init__([self.picker, self.join, filters, self.message, self.summary, self.grid])
        self.add_class("wb-compare")
        self._fill_join()

    # -- loading -----------------------------------------------------------------------------------------
    def _fill_join(self) -> None:
        """Offer every run folder under the runs root (but the one picked) to join."""
        from workbench.runset import RunSetError, find_runs

        try:
            found = find_runs(self.runs_root) if self.runs_root.is_dir() else []
        except RunSetError:
            found = []
        primary = self.run_dir.resolve() if self.run_dir is not None else None
        chosen = set(self.join.value)
        opts = [(_run_label(p, self.runs_root), str(p.resolve())) for p in found if p.resolve() != primary]
        self._loading = True
        try:
            self.join.options = opts
            self.join.value = tuple(v for _, v in opts if v in chosen)
        finally:
            self._loading = False

    def _joined_changed(self) -> None:
        if not self._loading:
            self.load(self.run_dir)

    def load(self, run_dir: Path | None) -> None:
        """Show a run folder (with the folders chosen under "join with"): its current records, joined
        on case and seed (`workbench.runset.load_runs`); what was left out is said in the message."""
        from workbench.runset import load_runs

        self.run_dir = run_dir
        self.records = []
        if run_dir is None:
            return
        if not (run_dir / "results.jsonl").is_file():
            self.message.error(f"{run_dir}: no results.jsonl here; pick a folder written by a run")
            self.grid.rows = []
            self.summary.value = ""
            return
        self._fill_join()
        runs = [run_dir] + [Path(v) for v in self.join.value if Path(v).resolve() != run_dir.resolve()]
        base = run_dir if len(runs) == 1 else Path(os.path.commonpath([str(p.resolve()) for p in runs]))
        try:
            rs = load_runs(runs, out_dir=base)
        except Exception as e:
            self.message.error(e)
            return
        self.records, self.runs, self.base, self.left_out = rs.records, [Path(p) for p in rs.runs], base, rs.left_out
        self._infos = score_infos(self.records)
        self._loading = True
        try:
            self.cases.options = list(dict.fromkeys(str(r.get("case")) for r in self.records))
            self.models.options = list(dict.fromkeys(str(r.get("model")) for r in self.records))
            self.seeds.options = sorted({int(r.get("seed", 0)) for r in self.records})
            self.cases.value = tuple(self.cases.options)
            self.models.value = tuple(self.models.options)
            self.seeds.value = tuple(self.seeds.options)
            favs: list[str] = []
            for run in self.runs:
                favs += load_favourites(run)
            self.grid.favourites = list(dict.fromkeys(favs))
        finally:
            self._loading = False
        self.show()

    def _run_of(self, r: dict[str, Any]) -> Path:
        """The run folder a record came from."""
        assert self.base is not None
        return (self.base / r["run"]).resolve() if r.get("run") else self.base

    def selected(self) -> list[dict[str, Any]]:
        cases, models, seeds = set(self.cases.value), set(self.models.value), set(self.seeds.value)
        favs = set(self.grid.favourites)
        return [r for r in self.records if str(r.get("case")) in cases and str(r.get("model")) in models
                and int(r.get("seed", 0)) in seeds and (not self.only_favs.value or r.get("job_id") in favs)]

    def show(self) -> None:
        if self._loading or self.run_dir is None or self.base is None:
            return
        recs = self.selected()
        dirs = directions()
        order = list(self.models.options)
        several = len(self.runs) > 1
        groups: dict[tuple, list[dict]] = {}
        for r in recs:
            groups.setdefault((str(r.get("case")), int(r.get("seed", 0)), int(r.get("output") or 0)), []).append(r)
        rows = []
        for (case, seed, output), rs in list(groups.items())[:MAX_ROWS]:
            rs.sort(key=lambda r: order.index(str(r.get("model"))) if str(r.get("model")) in order else 0)
            best = best_in_row(rs, dirs, self._infos) if len(rs) > 1 else {}
            clips = []
            for r in rs:
                title = str(r.get("model")) + (f" \u00b7 {self._run_of(r).name}" if several else "")
                if r.get("status") != "ok" or not r.get("video"):
                    clips.append(clip_item(None, title, error=str(r.get("error") or "failed"), status="error",
                                           key=r.get("job_id", "")))
                else:
                    clips.append(clip_item(self.base / r["video"], title,
                                           caption=scores_caption(r, dirs, best, self._infos),
                                           key=r.get("job_id", "")))
            models_here = len({str(r.get("model")) for r in rs})
            rows.append({"label": f"{case} \u00b7 seed {seed}" + (f" \u00b7 output {output}" if output else "")
                         + (f" \u00b7 {models_here} models" if models_here > 1 else ""), "clips": clips})
        self.grid.rows = rows
        self.grid.empty = "nothing selected" if self.records else "this run has no jobs yet"
        self.summary.value = summary_html(recs, dirs, self._infos)
        more = f"; showing the first {MAX_ROWS} of {len(groups)} rows (narrow the selection)" if len(groups) > MAX_ROWS else ""
        joined = f" from {len(self.runs)} run folders joined on case and seed" if several else ""
        notes = ("; left out: " + "; ".join(self.left_out)) if self.left_out else ""
        self.message.info(f"{len(recs)} of {len(self.records)} jobs selected{joined}{more}{notes}")

    def _favs_changed(self, change: dict) -> None:
        if self._loading or self.run_dir is None or self.base is None:
            return
        keys = set(change["new"])
        try:
            for run in self.runs:  # each run folder keeps the favourites among its own jobs
                own = {str(r.get("job_id")) for r in self.records if self._run_of(r) == run.resolve()}
                kept = [k for k in load_favourites(run) if k not in own]  # jobs not shown here stay
                save_favourites(run, kept + sorted(keys & own))
        except OSError as e:
            self.message.error(f"favourites not saved: {e}")
        if self.only_favs.value:
            self.show()

    # -- report ------------------------------------------------------------------------------------------
    def selection_folder(self, recs: list[dict[str, Any]]) -> Path:
        """The folder whose report covers `recs`: the run itself when one whole run is selected, else a
        selection folder under the first run holding just those records (clip paths rewritten to point
        into their runs)."""
        assert self.run_dir is not None and self.base is not None
        if len(recs) == len(self.records) and len(self.runs) == 1:
            return self.run_dir
        digest = hashlib.sha256("\n".join(sorted(str(r.get("job_id")) for r in recs)).encode()).hexdigest()[:8]
        name = "-".join(sorted(self.models.value))[:40] + f"-{len(recs)}jobs-{digest}"  # one folder per selection
        folder = self.run_dir / "selections" / slug(name)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for r in recs:
            r = dict(r)
            for key in ("video", "series"):
                if r.get(key):
                    r[key] = os.path.relpath(self.base / r[key], folder)
            if r.get("run"):
                r["run"] = os.path.relpath(self.base / r["run"], folder)
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
