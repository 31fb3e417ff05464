"""Evaluate tab: score one clip (from a run or a path) with chosen metrics, in the background.

Shows the score table (value in the report's unit, direction, backend, and the reason for every n/a score) and the
per-frame curves the metrics report (`EvalResult.series`), the worst frame of each marked.
The references (image, audio) are filled from the record when the clip comes from a run.
"""
from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

import ipywidgets as W

from workbench.ui.jobs import Throttle, Worker
from workbench.ui.widgets import (NA, ClipGrid, Message, RunPicker, arrow, clip_item, directions, fmt_score, html_table,
                                  score_infos, score_order, unit_html)

DEFAULT_METRICS = ["temporal_flicker", "warp_error", "motion_smoothness", "dynamic_degree", "identity", "lipsync"]


def default_metrics() -> list[str]:
    """What can run here (the Generate tab's rule): lse_d / lse_c only with SyncNet's weights."""
    from workbench.ui.generate import OFFLINE_LIPSYNC, syncnet_here

    return list(DEFAULT_METRICS) if syncnet_here() else [m for m in DEFAULT_METRICS if m != "lipsync"] + OFFLINE_LIPSYNC


def curve_panels(series: dict[str, list], worst: dict[str, int], infos: dict[str, Any] | None = None,
                 dirs: dict[str, bool | None] | None = None) -> list[dict[str, Any]]:
    """What each curve panel shows: values in the table's unit (the score's scale, e.g. warp_error in
    \u00d710\u207b\u00b3, named in the title), and the worst frame marked only for a score with a better
    direction (flow_magnitude has none: no frame of it is worse)."""
    infos = infos if infos is not None else score_infos([{"status": "ok", "scores": {k: 0.0 for k in series}}])
    dirs = dirs if dirs is not None else directions()
    panels = []
    for name, values in series.items():
        if not values or all(x is None for x in values):
            continue
        info = infos.get(name)
        scale = float(getattr(info, "scale", 1.0) or 1.0)
        unit = getattr(info, "unit_label", "") if info is not None else ""
        w = worst.get(name) if dirs.get(name) is not None else None
        if w is not None and not (0 <= w < len(values) and values[w] is not None):
            w = None
        panels.append({"name": name, "unit": unit, "worst": w,
                       "values": [None if v is None else float(v) * scale for v in values]})
    return panels


def curves_png(series: dict[str, list], worst: dict[str, int], infos: dict[str, Any] | None = None,
               dirs: dict[str, bool | None] | None = None) -> bytes | None:
    """One small panel per per-frame series (matplotlib, Agg, thread-safe: no pyplot state), each in the
    score table's unit (`curve_panels`)."""
    panels = curve_panels(series, worst, infos, dirs)
    if not panels:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from workbench.figures import plain_axis

    n = len(panels)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.6 * cols, 2.2 * rows), dpi=90)
    FigureCanvasAgg(fig)
    for i, panel in enumerate(panels):
        values = panel["values"]
        ax = fig.add_subplot(rows, cols, i + 1)
        xs = [j for j, v in enumerate(values) if v is not None]
        ys = [values[j] for j in xs]
        ax.plot(xs, ys, lw=1.2, color="#1f6fb2")
        title = panel["name"] + (f" ({panel['unit']})" if panel["unit"] else "")
        if panel["worst"] is not None:
            w = panel["worst"]
            ax.plot([w], [values[w]], "o", color="#b00020", ms=5)
            title += f"   (worst: frame {w})"
        lo, hi = min(ys), max(ys)
        if hi - lo < 1e-3 * max(1e-9, abs(hi)):  # a flat curve: show it flat, not as noise around an offset
            pad = max(1e-3 * abs(hi), 1e-6)
            ax.set_ylim(lo - pad, hi + pad)
        plain_axis(ax)  # as in the report: no offset, no 1e-5 at the axis corner
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("frame", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def score_table_html(result: Any, dirs: dict[str, bool | None], infos: dict[str, Any] | None = None) -> str:
    """Score, direction, value in the report's unit (`infos`, from the run's records when the clip is
    from a run), backend, and for a score without a value `n/a` with the reason written out."""
    if infos is None:
        infos = score_infos([{"status": "ok", "scores": dict(result.scores), "backends": dict(result.backends)}])
    rows = []
    for name in score_order(result.scores):
        v = result.scores[name]
        backend = f"<span style='white-space:nowrap'>{html.escape(str(result.backends.get(name, '')))}</span>"
        why = html.escape(result.errors.get(name, "not computed")) if v is None else ""
        val = (f"<span style='color:#999'>{NA}</span>" if v is None
               else f"<b style='white-space:nowrap'>{fmt_score(name, v, infos)}</b>")
        rows.append([f"<code>{html.escape(name)}</code>", f"{arrow(dirs.get(name))}", val,
                     unit_html(name, infos).strip(), backend, f"<span style='color:#b00020'>{why}</span>"])
    for name, why in result.errors.items():  # errors for scores that never got a value slot
        if name not in result.scores:
            rows.append([f"<code>{html.escape(name)}</code>", "", f"<span style='color:#999'>{NA}</span>", "", "",
                         f"<span style='color:#b00020'>{html.escape(why)}</span>"])
    return html_table(["score", "better", "value", "unit", "backend", f"why {NA}"], rows)


class EvaluateTab(W.VBox):
    def __init__(self, runs_root: Path) -> None:
        self.runs_root = Path(runs_root)
        lab = {"description_width": "80px"}
        wide = W.Layout(width="560px")
        self.picker = RunPicker(self.runs_root, on_change=lambda p: self._load_run(p))
        self.clip = W.Dropdown(description="clip", options=[], layout=wide, style=lab)
        self.path = W.Text(description="or a path", placeholder="any .mp4 on this machine", layout=wide, style=lab)
        self.image = W.Text(description="ref. image", placeholder="image the clip should keep (identity, i2v)",
                            layout=wide, style=lab)
        self.audio = W.Text(description="audio", placeholder="speech the lips should follow (default: the clip's own)",
                            layout=wide, style=lab)
        self.reference = W.Text(description="ref. video", placeholder="ground truth for psnr / ssim / lpips / fvd",
                                layout=wide, style=lab)
        from workbench.ui.generate import metric_names

        self.metrics = W.TagsInput(value=default_metrics(), allowed_tags=metric_names(), layout=W.Layout(width="480px"))
        self.run_btn = W.Button(description="Evaluate", button_style="primary", icon="bar-chart")
        self.bar = W.FloatProgress(value=0, min=0, max=1, description="frames", layout=W.Layout(width="300px"),
                                   style={"description_width": "50px"})
        self.message = Message()
        self.player = ClipGrid(width=300, empty="")
        self.table = W.HTML(layout=W.Layout(flex="1 1 560px", max_width="100%"))  # wraps under the player when narrow
        self.curves = W.Image(format="png", layout=W.Layout(display="none", max_width="100%"))
        self.result = None
        self.worker: Worker | None = None
        self._records: dict[str, dict[str, Any]] = {}
        self._run_dir: Path | None = None
        self._throttle = Throttle(0.15)
        self._filled: dict[str, str] = {}  # what picking a run's clip put into the reference boxes
        self.clip.observe(lambda _: self._clip_picked(), names="value")
        self.path.observe(lambda _: self._path_changed(), names="value")
        self.run_btn.on_click(lambda _: self.run())
        metrics_row = W.HBox([W.HTML("<div style='width:84px;text-align:right;padding-right:4px'>metrics</div>"),
                              self.metrics])
        super().__init__([self.picker, self.clip, self.path, self.image, self.audio, self.reference, metrics_row,
                          W.HBox([self.run_btn, self.bar]), self.message,
                          W.HBox([self.player, self.table], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
                          self.curves])
        self.add_class("wb-evaluate")

    def _load_run(self, run_dir: Path | None) -> None:
        from workbench.store import load_records

        self._run_dir = run_dir
        self._records = {}
        if run_dir is None or not (run_dir / "results.jsonl").is_file():
            self.clip.options = []
            return
        for r in load_records(run_dir):
            if r.get("status") == "ok" and r.get("video"):
                self._records[f"{r.get('case')} / {r.get('model')} / seed {r.get('seed')}"] = r
        self.clip.options = list(self._records)
        if self._records:
            self.clip.value = next(iter(self._records))

    def _clip_picked(self) -> None:
        r = self._records.get(self.clip.value)
        if r is None:
            return
        self._picking = True
        try:
            self.path.value = ""
        finally:
            self._picking = False
        inputs = r.get("inputs") or {}
        for key, box in self._ref_boxes():
            box.value = (inputs.get(key) or {}).get("path", "") or ""
        self._filled = {key: box.value for key, box in self._ref_boxes()}
        self.show_record(r)

    def _ref_boxes(self) -> list[tuple[str, W.Text]]:
        return [("image", self.image), ("audio", self.audio), ("reference", self.reference)]

    def _path_changed(self) -> None:
        """A typed clip is another clip: the references the run's clip brought go (what the user typed
        into them stays), and so do its stored scores; clearing the path brings the run's clip back."""
        if getattr(self, "_picking", False):
            return
        if self.path.value.strip():
            for key, box in self._ref_boxes():
                if box.value and box.value == self._filled.get(key):
                    box.value = ""
            self._filled = {}
            self.player.rows = []
            self.table.value = ""
            self.curves.layout.display = "none"
            self.message.info("a clip from a path: add its references (image, audio) if the metrics need them")
        elif self._records.get(self.clip.value) is not None:
            self._clip_picked()

    def show_record(self, r: dict[str, Any]) -> None:
        """The scores a run stored for this clip (and its per-frame series), before any re-scoring."""
        from types import SimpleNamespace

        video = (self._run_dir / r["video"]).resolve() if self._run_dir else None
        if video is not None:
            self.player.rows = [{"label": "", "clips": [clip_item(video, video.name)]}]
        stored = SimpleNamespace(scores=r.get("scores") or {}, backends=r.get("backends") or {},
                                 errors=r.get("score_errors") or {})
        self.table.value = score_table_html(stored, directions(), self._run_infos())
        series: dict[str, list] = {}
        if r.get("series") and self._run_dir is not None:
            try:
                series = json.loads((self._run_dir / r["series"]).read_text())
            except (OSError, ValueError):
                series = {}
        png = curves_png(series, r.get("worst_frame") or {}, self._run_infos() or self._infos_of(r)) if series else None
        self.curves.layout.display = None if png else "none"
        if png:
            self.curves.value = png
        self.message.info("scores stored with this job; Evaluate scores it again with the metrics above")

    @staticmethod
    def _infos_of(r: dict[str, Any]) -> dict[str, Any]:
        return score_infos([{"status": "ok", "scores": dict(r.get("scores") or {})}])

    def _run_infos(self) -> dict[str, Any] | None:
        """Score formatting over the run's records (the unit its report uses); None without a run."""
        if not self._records:
            return None
        try:
            return score_infos(list(self._records.values()))
        except Exception:
            return None

    @property
    def video_path(self) -> Path | None:
        if self.path.value.strip():
            return Path(self.path.value.strip()).expanduser().resolve()
        r = self._records.get(self.clip.value)
        return (self._run_dir / r["video"]).resolve() if r else None

    def run(self) -> bool:
        if self.worker is not None and self.worker.running:
            self.message.error("an evaluation is already running")
            return False
        video = self.video_path
        if video is None:
            self.message.error("pick a clip from a run or type a path")
            return False
        if not video.is_file():
            self.message.error(f"{video}: clip not found; check the path")
            return False
        refs: dict[str, Any] = {}
        for key, box in (("image", self.image), ("audio", self.audio), ("reference", self.reference)):
            v = box.value.strip()
            if v:
                p = Path(v).expanduser()
                if not p.is_file():
                    self.message.error(f"{key} {p}: file not found; check the path or clear the box")
                    return False
                refs[key] = p
        metrics = list(self.metrics.value) or None
        self.run_btn.disabled = True
        self.table.value = ""
        self.curves.layout.display = "none"
        self.player.rows = [{"label": "", "clips": [clip_item(video, video.name)]}]
        self.message.info(f"scoring {video.name}...")

        def progress(i: int, n: int) -> None:
            if self._throttle.ready(force=(i == n)):
                self.bar.max = max(1, n)
                self.bar.value = min(i, n)

        def work() -> None:
            from workbench.metrics import evaluate

            res = evaluate(video, metrics=metrics, progress=progress, skip_inapplicable=metrics is None, **refs)
            self.result = res
            dirs = directions()
            infos = self._run_infos() if not self.path.value.strip() else None
            self.table.value = score_table_html(res, dirs, infos)
            shown = infos or score_infos([{"status": "ok", "scores": dict(res.scores), "backends": dict(res.backends)}])
            png = curves_png(getattr(res, "series", {}) or {}, getattr(res, "worst_frame", {}) or {}, shown, dirs)
            if png:
                self.curves.value = png
                self.curves.layout.display = None
            nulls = sum(v is None for v in res.scores.values())
            self.message.ok(f"{len(res.scores)} scores over {res.frames} frames"
                            + (f"; {nulls} {NA} (reasons in the table)" if nulls else ""))

        def done() -> None:
            self.run_btn.disabled = False

        self.worker = Worker(work, on_error=self.message.error, on_done=done).start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        return self.worker.join(timeout) if self.worker is not None else True
