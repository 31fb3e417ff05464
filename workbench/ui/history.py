"""History tab: every job of a run with its settings; "load settings" refills the Generate tab."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W

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


class HistoryTab(W.VBox):
    def __init__(self, runs_root: Path, on_load: Callable[[dict[str, Any], Path], None] | None = None) -> None:
        self.runs_root = Path(runs_root)
        self.on_load = on_load
        self.picker = RunPicker(self.runs_root, on_change=lambda p: self.load(p))
        self.jobs = W.Select(options=[], rows=10, layout=W.Layout(width="520px", max_width="100%"))
        self.load_btn = W.Button(description="load settings", icon="upload", disabled=True,
                                 tooltip="fill the Generate tab with this job's settings")
        self.details = W.HTML(layout=W.Layout(width="auto", max_width="100%"))
        self.message = Message()
        self.records: list[dict[str, Any]] = []
        self._infos: dict[str, Any] | None = None
        self.run_dir: Path | None = None
        self.jobs.observe(lambda _: self._picked(), names="value")
        self.load_btn.on_click(lambda _: self.load_settings())
        super().__init__([self.picker, W.HBox([self.jobs, W.VBox([self.load_btn, self.message])]), self.details])

    def load(self, run_dir: Path | None) -> None:
        from workbench.store import load_records

        self.run_dir = run_dir
        self.records = []
        if run_dir is not None and (run_dir / "results.jsonl").is_file():
            self.records = sorted(load_records(run_dir), key=lambda r: str(r.get("finished_at") or ""), reverse=True)
        elif run_dir is not None:
            self.message.error(f"{run_dir}: no results.jsonl here")
        try:
            self._infos = score_infos(self.records)  # the run's units, as its report shows them
        except Exception:
            self._infos = None
        self.jobs.options = [(job_label(r), i) for i, r in enumerate(self.records)]
        self.jobs.value = 0 if self.records else None
        self._picked()

    @property
    def record(self) -> dict[str, Any] | None:
        i = self.jobs.value
        return self.records[i] if i is not None and 0 <= i < len(self.records) else None

    def _picked(self) -> None:
        r = self.record
        self.load_btn.disabled = r is None
        self.details.value = settings_html(r, self._infos) if r else ""

    def load_settings(self) -> None:
        r = self.record
        if r is None or self.on_load is None or self.run_dir is None:
            return
        self.on_load(r, self.run_dir)
        self.message.ok("loaded into the Generate tab")
