"""History tab: every job of a run with its settings; "load settings" refills the Generate tab.

The jobs are listed newest first, a page at a time (`PAGE_SIZE`, 50), with a filter (text in the job's
line: status, time, case, model, seed; or in its job id or prompt), so a run of 10,000 jobs lists as
fast as one of ten: the labels are built once per load, and only one page of them reaches the browser.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W

from workbench.cliptable import page_bounds
from workbench.ui.widgets import Message, RunPicker, fmt_score, html_table, score_infos, unit_html


def job_label(r: dict[str, Any]) -> str:
    status = "\u2713" if r.get("status") == "ok" else "\u2717"
    when = str(r.get("finished_at") or r.get("started_at") or "")[:19].replace("T", " ")
    return f"{status} {when}  {r.get('case')} / {r.get('model')} / seed {r.get('seed')}"


def settings_html(r: dict[str, Any], infos: dict[str, Any] | None = None) -> str:
    """A record's settings (model, parameters, inputs, prompt, timings, versions) and outcome."""
    rows = [["job", f"<code>{html.escape(str(r.get('job_id')))}</code>"],
            ["model", html.escape(f"{r.get('model')} ({r.get('model_name') or r.get('model')})")],
            ["case", html.escape(str(r.get("case")))], ["seed", html.escape(str(r.get("seed")))],
            ["prompt", html.escape(str(r.get("prompt") or ""))]]
    speech = (r.get("workflow") or {}).get("speech") or {}
    if speech.get("text"):  # the words typed (the audio input below is their cached wav)
        rows.append(["spoken words", f"{html.escape(str(speech['text']))} <span style='color:#777'>(voice "
                     f"{html.escape(str(speech.get('voice') or ''))})</span>"])
    for k, v in (r.get("params") or {}).items():
        rows.append([f"param <code>{html.escape(k)}</code>", html.escape(json.dumps(v, default=str))])
    for k, v in (r.get("inputs") or {}).items():
        rows.append([f"input {html.escape(k)}", f"<code>{html.escape(str(v.get('path')))}</code> "
                     f"<span style='color:#999'>sha256 {html.escape(str(v.get('sha256') or '')[:12])}</span>"])
    t = r.get("timings") or {}
    if t:
        rows.append(["timings", html.escape(", ".join(f"{k} {v:.2f}s" for k, v in t.items()))])
    if r.get("status") != "ok":
        rows.append(["error", f"<span style='color:#b00020'>{html.escape(str(r.get('error')))}</span>"])
    else:
        infos = score_infos([r]) if infos is None else infos
        errors = r.get("score_errors") or {}
        scores = ", ".join(f"{html.escape(k)}={fmt_score(k, v, infos)}{unit_html(k, infos)}"
                           + (f" <span style='color:#999'>({html.escape(errors.get(k, 'not computed'))})</span>"
                              if v is None else "") for k, v in (r.get("scores") or {}).items())
        rows.append(["scores", scores])
    v = r.get("versions") or {}
    if v:
        rows.append(["versions", "<span style='color:#777'>" + html.escape(", ".join(f"{k} {x}" for k, x in v.items())) + "</span>"])
    return html_table(["setting", "value"], rows)


PAGE_SIZE = 50  # jobs listed on one page


class HistoryTab(W.VBox):
    """A run's jobs, newest first, a page at a time; the picked job's settings, "load settings"."""

    def __init__(self, runs_root: Path, on_load: Callable[[dict[str, Any], Path], None] | None = None) -> None:
        self.runs_root = Path(runs_root)
        self.on_load = on_load
        self.picker = RunPicker(self.runs_root, on_change=lambda p: self.load(p))
        self.filter = W.Text(placeholder="filter: case, model, seed, status (\u2713/\u2717), job id, prompt",
                             continuous_update=False, layout=W.Layout(width="520px", max_width="100%"))
        self.jobs = W.Select(options=[], rows=10, layout=W.Layout(width="520px", max_width="100%"))
        self.prev_btn = W.Button(description="newer", icon="chevron-left", layout=W.Layout(width="90px"), disabled=True)
        self.next_btn = W.Button(description="older", icon="chevron-right", layout=W.Layout(width="90px"), disabled=True)
        self.page_label = W.HTML()
        self.load_btn = W.Button(description="load settings", icon="upload", disabled=True,
                                 tooltip="fill the Generate tab with this job's settings")
        self.details = W.HTML(layout=W.Layout(width="auto", max_width="100%"))
        self.message = Message()
        self.records: list[dict[str, Any]] = []  # every job, newest first
        self.matching: list[int] = []  # indices into records that pass the filter
        self.page_index = 0
        self._labels: list[str] = []
        self._search: list[str] = []
        self._infos: dict[str, Any] | None = None
        self.run_dir: Path | None = None
        self.jobs.observe(lambda _: self._picked(), names="value")
        self.filter.observe(lambda _: self._filter(), names="value")
        self.prev_btn.on_click(lambda _: self.go(self.page_index - 1))
        self.next_btn.on_click(lambda _: self.go(self.page_index + 1))
        self.load_btn.on_click(lambda _: self.load_settings())
        pager = W.HBox([self.prev_btn, self.next_btn, self.page_label], layout=W.Layout(align_items="center"))
        super().__init__([self.picker, W.HBox([W.VBox([self.filter, self.jobs, pager]),
                                               W.VBox([self.load_btn, self.message])]), self.details])

    def load(self, run_dir: Path | None) -> None:
        from workbench.store import load_records

        self.run_dir = run_dir
        self.records = []
        if run_dir is not None and (run_dir / "results.jsonl").is_file():
            self.records = sorted(load_records(run_dir), key=lambda r: str(r.get("finished_at") or ""), reverse=True)
        elif run_dir is not None:
            self.message.error(f"{run_dir}: no results.jsonl here")
        self._infos = None  # the run's units, worked out when a job's details are first shown
        self._labels = [job_label(r) for r in self.records]
        self._search = [f"{label} {r.get('job_id')} {r.get('prompt') or ''}".lower()
                        for label, r in zip(self._labels, self.records)]
        self._filter()

    def _filter(self) -> None:
        """Keep the jobs whose line, job id or prompt holds the filter text; show the first page."""
        text = self.filter.value.strip().lower()
        self.matching = [i for i, s in enumerate(self._search) if text in s] if text else list(range(len(self.records)))
        self.go(0)

    def go(self, index: int) -> None:
        """Show page `index` (clamped) of the matching jobs and pick its first job."""
        index, start, stop = page_bounds(len(self.matching), index, PAGE_SIZE)
        self.page_index = index
        page = self.matching[start:stop]
        self.jobs.options = [(self._labels[i], i) for i in page]
        self.jobs.value = page[0] if page else None
        total = len(self.matching)
        of_all = f" (filtered from {len(self.records):,})" if total != len(self.records) else ""
        self.page_label.value = (f"jobs {start + 1:,}-{stop:,} of {total:,}{of_all}" if total
                                 else ("no job matches the filter" if self.records else ""))
        self.prev_btn.disabled = index == 0
        self.next_btn.disabled = stop >= total
        self._picked()

    @property
    def record(self) -> dict[str, Any] | None:
        i = self.jobs.value
        return self.records[i] if i is not None and 0 <= i < len(self.records) else None

    def _picked(self) -> None:
        r = self.record
        self.load_btn.disabled = r is None
        if r is not None and self._infos is None:
            try:
                self._infos = score_infos(self.records)  # the run's units, as its report shows them
            except Exception:
                self._infos = {}
        self.details.value = settings_html(r, self._infos) if r else ""

    def load_settings(self) -> None:
        r = self.record
        if r is None or self.on_load is None or self.run_dir is None:
            return
        self.on_load(r, self.run_dir)
        self.message.ok("loaded into the Generate tab")
