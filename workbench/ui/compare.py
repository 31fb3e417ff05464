"""Compare tab: a run folder's clips side by side, playing in step, with scores and CIs, at any scale.

Rows are (case, seed), columns are models; each row has one play/pause. Several run folders can be
joined ("join with": `workbench.runset.load_runs`, on case and seed), so model A run today and model B
run tomorrow on the same inputs share a row. The rows come from one query over the records,
`workbench.cliptable` (the report's clip table answers the same query): built once per load, then
filtered (case text, models, seeds, status ok / still / failed, prompt text, favourites), sorted (any
score in its better direction, one model's value, or the paired difference B - A of two models) and
paged ("rows 11-20 of 3,400"). Only the page on screen becomes clip widgets, so a folder of 10,000
records opens and pages as fast as one of ten.

Under each clip its scores in the report's units, the best of the row per score starred (by the
score's direction; ties all starred, none when all equal); `kept` marks best-of-N's kept takes and
`still` a clip below the motion floor. Above the grid, the model summary: mean and bootstrap 95% CI per
score over the filtered jobs (`workbench.metrics.stats.model_summaries`), computed once per filter (in
the background for a large selection), never per page. Hearts mark favourites (kept in each
RUN/favourites.json). "Write report" writes the report of the current filter (every filtered row, not
only the page): the whole run's `report.html`, or, for a subset, `RUN/selections/<name>/report.html`
over a results.jsonl holding just those records (clip paths point back into the run's clips/).
"""
from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import os
import threading
from pathlib import Path
from typing import Any

import ipywidgets as W

from workbench.cliptable import FAILED, STATUSES, STILL, ClipTable, Page, Query, Selection, Shown
from workbench.names import slug
from workbench.ui.jobs import Worker
from workbench.ui.media import jupyter_server, served_url
from workbench.ui.widgets import (NA, ClipGrid, Message, RunPicker, arrow, best_in_row, clip_item, directions,
                                  fmt_score, html_table, score_infos, score_order, scores_caption, unit_html)

PAGE_SIZE = 10  # rows of clips on one page (each row is a clip per model)
PAGE_SIZES = (5, 10, 20, 50)
SYNC_SUMMARY_MAX = 500  # up to this many filtered jobs the summary is computed at once (~0.1 s), beyond in the background
PAIRED = "\u0394"  # the "sort of" choice for the paired difference B - A


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
    """One run folder's clips side by side (or several run folders joined on case and seed), a page at a time."""

    def __init__(self, runs_root: Path) -> None:
        self.runs_root = Path(runs_root)
        self.picker = RunPicker(self.runs_root, on_change=lambda p: self.load(p))
        self.join = W.SelectMultiple(description="join with", rows=3, layout=W.Layout(width="440px"),
                                     style={"description_width": "80px"},
                                     tooltip="other run folders to join on case and seed (ctrl/shift-click)")
        self.join.observe(lambda _: self._joined_changed(), names="value")
        text = dict(continuous_update=False, layout=W.Layout(width="220px"))
        self.case_text = W.Text(description="case", placeholder="text in the case id", **text,
                                style={"description_width": "54px"})
        self.prompt_text = W.Text(description="prompt", placeholder="text in the prompt", **text,
                                  style={"description_width": "54px"})
        self.models = W.SelectMultiple(description="models", style={"description_width": "48px"},
                                       layout=W.Layout(width="220px", height="90px"))
        self.seeds = W.SelectMultiple(description="seeds", style={"description_width": "40px"},
                                      layout=W.Layout(width="140px", height="90px"))
        self.status = W.ToggleButtons(options=[("all", "")] + [(s, s) for s in STATUSES], value="",
                                      tooltips=["every row", "rows with a clip that finished and moves",
                                                "rows with a clip below the motion floor (still)",
                                                "rows with a job that failed"],
                                      style={"button_width": "64px"})
        self.only_favs = W.Checkbox(value=False, description="favourites only", indent=False)
        # sort: a score, whose value (the row's best, one model's, or the paired difference B - A), which end first
        self.sort_score = W.Dropdown(options=[("table order", "")], value="", description="sort by",
                                     layout=W.Layout(width="260px"), style={"description_width": "62px"})
        self.sort_of = W.Dropdown(options=[("best in row", "")], value="", description="of",
                                  layout=W.Layout(width="200px"), style={"description_width": "24px"})
        self.pair_a = W.Dropdown(description="A", layout=W.Layout(width="160px"), style={"description_width": "18px"})
        self.pair_b = W.Dropdown(description="B", layout=W.Layout(width="160px"), style={"description_width": "18px"})
        self.sort_dir = W.ToggleButtons(options=[("best first", False), ("worst first", True)], value=False,
                                        style={"button_width": "96px"})
        self.pair_box = W.HBox([self.pair_a, self.pair_b], layout=W.Layout(display="none"))
        self.prev_btn = W.Button(description="prev", icon="chevron-left", layout=W.Layout(width="80px"), disabled=True)
        self.next_btn = W.Button(description="next", icon="chevron-right", layout=W.Layout(width="80px"), disabled=True)
        self.page_label = W.HTML(layout=W.Layout(min_width="180px"))
        self.page_size = W.Dropdown(options=list(PAGE_SIZES), value=PAGE_SIZE, description="rows/page",
                                    layout=W.Layout(width="160px"), style={"description_width": "76px"})
        self.size = W.IntSlider(value=240, min=128, max=512, step=16, description="clip px", continuous_update=False,
                                layout=W.Layout(width="220px"), style={"description_width": "50px"})
        self.report_btn = W.Button(description="Write report", icon="file-text-o",
                                   tooltip="report of the current filter (every filtered row, not only this page)")
        self.message = Message()
        self.summary = W.HTML(layout=W.Layout(max_width="100%", overflow="hidden"))
        self.grid = ClipGrid(width=240, stars=True, empty="pick a run folder")
        self.records: list[dict[str, Any]] = []
        self.table: ClipTable | None = None
        self.selection: Selection | None = None
        self.page: Page | None = None
        self.page_index = 0
        self.run_dir: Path | None = None  # the run picked first (selections of the comparison go under it)
        self.runs: list[Path] = []  # every run folder shown
        self.base: Path | None = None  # record paths (video, series, run) are relative to this folder
        self.left_out: list[str] = []
        self._infos: dict[str, Any] = {}
        self._dirs: dict[str, bool | None] = {}
        self._kept: set[str] = set()
        self._counts: dict[str, int] = {}
        self._loading = False
        self._report_worker: Worker | None = None
        self._summary_worker: Worker | None = None
        self._generation = 0  # one more per load
        self._summary_cache: dict[tuple[int, Query], str] = {}
        self._summary_for: tuple[int, Query] | None = None
        self._summary_todo: tuple[tuple[int, Query], list[dict[str, Any]]] | None = None
        self._summary_busy = False
        self._summary_running: tuple[int, Query] | None = None  # the summary the worker computes now
        self._lock = threading.Lock()
        for w in (self.case_text, self.prompt_text, self.models, self.seeds, self.status, self.only_favs,
                  self.sort_score, self.sort_of, self.pair_a, self.pair_b, self.sort_dir):
            w.observe(lambda _: self.show(), names="value")
        self.page_size.observe(lambda _: self.go(self.page.start // self.page_size.value if self.page else 0),
                               names="value")
        self.prev_btn.on_click(lambda _: self.go(self.page_index - 1))
        self.next_btn.on_click(lambda _: self.go(self.page_index + 1))
        self.size.observe(lambda ch: setattr(self.grid, "width", ch["new"]), names="value")
        self.grid.observe(self._favs_changed, names="favourites")
        self.report_btn.on_click(lambda _: self.write_report())
        wrap = W.Layout(justify_content="flex-start", flex_flow="row wrap", align_items="center")
        filters = W.HBox([W.VBox([self.case_text, self.prompt_text]), self.models, self.seeds,
                          W.VBox([self.status, W.HBox([self.only_favs, self.report_btn])])], layout=wrap)
        sorting = W.HBox([self.sort_score, self.sort_of, self.pair_box, self.sort_dir], layout=wrap)
        pager = W.HBox([self.prev_btn, self.next_btn, self.page_label, self.page_size, self.size], layout=wrap)
        super().__init__([self.picker, self.join, filters, sorting, self.message, self.summary, pager, self.grid])
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
        on case and seed (`workbench.runset.load_runs`); what was left out is said in the message. The
        clip table and the score units are built here, once per load."""
        from workbench.runset import load_runs

        self.run_dir = run_dir
        self.records, self.table, self.selection, self.page = [], None, None, None
        self._generation += 1
        self._summary_cache = {}
        if run_dir is None:
            return
        if not (run_dir / "results.jsonl").is_file():
            self.message.error(f"{run_dir}: no results.jsonl here; pick a folder written by a run")
            self.grid.rows = []
            self.summary.value = ""
            self._pager()
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
        self._dirs = directions()
        self.table = ClipTable(self.records, self._dirs)
        self._kept = self._kept_takes()
        self._loading = True
        try:
            self.models.options = list(self.table.models)
            self.seeds.options = list(self.table.seeds)
            self.models.value = tuple(self.models.options)
            self.seeds.value = tuple(self.seeds.options)
            sort = self.sort_score.value
            names = score_order(self.table.scores)
            self.sort_score.options = [("table order", "")] + [
                (f"{n} {arrow(self._dirs.get(n))}".strip(), n) for n in names]
            self.sort_score.value = sort if sort in names else ""
            self._fill_sort_models()
            favs: list[str] = []
            for run in self.runs:
                favs += load_favourites(run)
            self.grid.favourites = list(dict.fromkeys(favs))
        finally:
            self._loading = False
        self.show()

    def _fill_sort_models(self) -> None:
        models = list(self.table.models) if self.table is not None else []
        of = self.sort_of.value
        self.sort_of.options = [("best in row", "")] + [(f"model {m}", m) for m in models] + (
            [("B \u2212 A (paired)", PAIRED)] if len(models) > 1 else [])
        self.sort_of.value = of if of in models or (of == PAIRED and len(models) > 1) else ""
        a, b = self.pair_a.value, self.pair_b.value
        self.pair_a.options = models
        self.pair_b.options = models
        if models:
            self.pair_a.value = a if a in models else models[0]
            self.pair_b.value = b if b in models and b != self.pair_a.value else (models[1] if len(models) > 1 else models[0])

    def _kept_takes(self) -> set[str]:
        """Job ids best-of-N kept (each run folder's bestofn.json)."""
        from workbench.ui.creative import rank_marks

        kept: set[str] = set()
        for run in self.runs:
            try:
                kept |= {j for j, m in rank_marks(run).items() if m.kept}
            except Exception:  # a hand-edited bestofn.json must not stop the comparison
                pass
        return kept

    def _run_of(self, r: dict[str, Any]) -> Path:
        """The run folder a record came from."""
        assert self.base is not None
        return (self.base / r["run"]).resolve() if r.get("run") else self.base

    # -- the query -----------------------------------------------------------------------------------------
    def query(self) -> Query:
        """The filter and sort the controls say (every control left open filters nothing)."""
        t = self.table
        models = tuple(self.models.value)
        seeds = tuple(self.seeds.value)
        score = self.sort_score.value or None
        of = self.sort_of.value
        pair = (self.pair_a.value, self.pair_b.value) if score and of == PAIRED and self.pair_a.value \
            and self.pair_b.value else None
        return Query(case=self.case_text.value, prompt=self.prompt_text.value,
                     models=None if t is not None and len(models) == len(t.models) else models,
                     seeds=None if t is not None and len(seeds) == len(t.seeds) else seeds,
                     statuses=(self.status.value,) if self.status.value else None,
                     job_ids=frozenset(self.grid.favourites) if self.only_favs.value else None,
                     sort=score, sort_model=of if score and of and of != PAIRED else None, pair=pair,
                     worst_first=bool(self.sort_dir.value) and bool(score))

    def selected(self) -> list[dict[str, Any]]:
        """The records of the current filter: every clip of every filtered row (not only this page)."""
        if self.table is None:
            return []
        sel = self.selection if self.selection is not None else self.table.select(self.query())
        return sel.records()

    def show(self) -> None:
        """Apply the filter and sort, then show the first page (and the summary of the filtered jobs)."""
        if self._loading or self.run_dir is None or self.base is None or self.table is None:
            return
        self.pair_box.layout.display = None if self.sort_of.value == PAIRED else "none"
        self.selection = self.table.select(self.query())
        self._counts = self.selection.status_counts()  # once per filter, not per page
        self._summarize(self.selection)
        self.go(0)

    def go(self, index: int) -> None:
        """Show page `index` (clamped) of the current selection: only its rows become clip widgets."""
        if self.selection is None:
            return
        self.page = self.selection.page(index, self.page_size.value)
        self.page_index = self.page.index
        self.grid.rows = [self._row(s) for s in self.page.rows]
        self.grid.empty = "nothing matches the filter" if self.records else "this run has no jobs yet"
        self._pager()
        self._say()

    def _pager(self) -> None:
        p = self.page
        self.prev_btn.disabled = p is None or not p.has_prev
        self.next_btn.disabled = p is None or not p.has_next
        self.page_label.value = "" if p is None else (
            f"<b>{html.escape(p.label)}</b>" + (f" <span style='color:#777'>(page {p.index + 1:,} of {p.pages:,})</span>"
                                               if p.pages > 1 else ""))

    def _say(self) -> None:
        sel, t = self.selection, self.table
        if sel is None or t is None:
            return
        counts = self._counts
        n = sum(counts.values())
        bits = [f"{counts[k]:,} {k}" for k in (STILL, FAILED) if counts[k]]
        joined = f" from {len(self.runs)} run folders joined on case and seed" if len(self.runs) > 1 else ""
        notes = ("; left out: " + "; ".join(self.left_out)) if self.left_out else ""
        self.message.info(f"{len(sel):,} row{'' if len(sel) == 1 else 's'}, {n:,} of {len(self.records):,} jobs selected"
                          + (f" ({', '.join(bits)})" if bits else "") + f"{joined}{notes}")

    def _row(self, shown: Shown) -> dict[str, Any]:
        """One grid row: its clips (loaded now, for the rows on screen only) with scores and marks."""
        assert self.base is not None
        several = len(self.runs) > 1
        recs = shown.records
        best = best_in_row(recs, self._dirs, self._infos) if len(recs) > 1 else {}
        server = jupyter_server()
        clips = []
        for c in shown.cells:
            r = c.record
            title = c.model + (f" \u00b7 {self._run_of(r).name}" if several else "")
            key = str(r.get("job_id", ""))
            if c.status == FAILED or not r.get("video"):
                clips.append(clip_item(None, title, error=str(r.get("error") or "failed"), status="error", key=key))
                continue
            badge = " \u00b7 ".join(b for b in ("kept" if key in self._kept else "",
                                                   "still" if c.status == STILL else "") if b)
            clips.append(clip_item(self.base / r["video"], title, key=key, badge=badge, server=server,
                                   caption=scores_caption(r, self._dirs, best, self._infos)))
        row = shown.row
        models_here = len(shown.cells)
        label = (f"{row.case} \u00b7 seed {row.seed}" + (f" \u00b7 output {row.output}" if row.output else "")
                 + (f" \u00b7 {models_here} models" if models_here > 1 else ""))
        q = self.selection.query if self.selection is not None else None
        if q is not None and q.sort:
            info = self._infos.get(q.sort)
            if shown.value is None:
                val = NA
            elif info is not None:
                val = info.fmt(shown.value, signed=q.pair is not None)
            else:
                val = fmt_score(q.sort, shown.value, self._infos)
            what = (f"{q.pair[1]} \u2212 {q.pair[0]}" if q.pair else (q.sort_model or "best"))
            label += f" \u00b7 {q.sort} ({what}) {val}"
        return {"label": label, "clips": clips}

    # -- the summary: once per filter, never per page ----------------------------------------------------------
    def _summarize(self, sel: Selection) -> None:
        # the summary does not depend on the order; a new load never reuses an older load's summaries
        key = (self._generation, dataclasses.replace(sel.query, sort=None, sort_model=None, pair=None,
                                                     worst_first=False))
        self._summary_for = key
        cached = self._summary_cache.get(key)
        if cached is not None:
            self.summary.value = cached
            return
        recs = sel.records()
        if len(recs) <= SYNC_SUMMARY_MAX:
            self.summary.value = self._summary_cache[key] = summary_html(recs, self._dirs, self._infos)
            return
        self.summary.value = (f"<i style='color:#777'>computing the model summary over {len(recs):,} jobs "
                              "(bootstrap CIs)...</i>")
        with self._lock:  # one worker at a time; it takes the latest request when it is done with the last
            self._summary_todo = (key, recs) if key != self._summary_running else None
            if self._summary_busy:
                return
            self._summary_busy = True
        self._summary_worker = Worker(self._summary_loop, on_error=self.message.error, on_done=lambda: None,
                                      name="workbench-summary").start()

    def _summary_loop(self) -> None:
        dirs, infos = self._dirs, self._infos
        try:
            while True:
                with self._lock:
                    todo, self._summary_todo = self._summary_todo, None
                    if todo is None:
                        self._summary_busy = False
                        return
                    key, recs = todo
                    if key != self._summary_for or key in self._summary_cache:
                        continue  # the filter moved on before this one started, or it is done already
                    self._summary_running = key
                text = summary_html(recs, dirs, infos)
                with self._lock:
                    self._summary_running = None
                    self._summary_cache[key] = text
                    if self._summary_for == key:  # the filter has not moved on meanwhile
                        self.summary.value = text
        except BaseException:
            with self._lock:
                self._summary_busy, self._summary_running = False, None
            raise

    def wait_summary(self, timeout: float | None = None) -> bool:
        """Wait for the summaries computed in the background (True when none is running any more)."""
        w = self._summary_worker
        return w is None or w.join(timeout)

    def _favs_changed(self, change: dict) -> None:
        if self._loading or self.run_dir is None or self.base is None:
            return
        keys = set(change["new"])
        try:
            run_of: dict[Any, Path] = {}  # one resolve per run folder, not per record
            own: dict[Path, set[str]] = {}
            for r in self.records:
                rel = r.get("run")
                if rel not in run_of:
                    run_of[rel] = self._run_of(r)
                own.setdefault(run_of[rel], set()).add(str(r.get("job_id")))
            for run in self.runs:  # each run folder keeps the favourites among its own jobs
                mine = own.get(run.resolve(), set())
                kept = [k for k in load_favourites(run) if k not in mine]  # jobs not shown here stay
                save_favourites(run, kept + sorted(keys & mine))
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
        models = sorted(dict.fromkeys(str(r.get("model")) for r in recs))
        name = "-".join(models)[:40] + f"-{len(recs)}jobs-{digest}"  # one folder per selection
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
        """Write the report of the current filter (every filtered row) in the background."""
        if self.run_dir is None:
            self.message.error("pick a run folder first")
            return
        recs = self.selected()
        if not recs:
            self.message.error("nothing matches the filter: widen it (models, seeds, status, text)")
            return
        if self._report_worker is not None and self._report_worker.running:
            return
        self.report_btn.disabled = True
        self.message.info(f"writing the report of {len(recs):,} jobs (the current filter)...")

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
