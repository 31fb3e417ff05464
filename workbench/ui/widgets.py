"""Shared Studio widgets: the clip grid that plays in step, error lines, score tables, run-folder picker.

`ClipGrid` is an anywidget: its JavaScript runs inside the widget manager, so it works in JupyterLab
(which strips <script> from HTML outputs), Notebook 7, nbclassic and VS Code alike. Each row of clips
has one play/pause that starts every clip of the row from the same time and keeps them in step (drift
above 0.12 s is corrected while they play); the first clip of a row keeps its sound, the others start
muted so one soundtrack is heard. A heart on each clip marks it as a favourite (synced back to Python);
the star is kept for one meaning, the best value of a score in its row.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Callable, Iterable

import anywidget
import ipywidgets as W
import traitlets

from workbench.formatting import fmt_number
from workbench.ui.media import mime_type, video_source

_ESM = r"""
function blobUrl(clip, urls) {
  const d = clip.data;
  if (!d || !d.byteLength) return "";
  const u = URL.createObjectURL(new Blob([d], { type: clip.mime || "video/mp4" }));
  urls.push(u);
  return u;
}

function render({ model, el }) {
  const urls = [];
  el.classList.add("wb-grid");

  function favSet() { return new Set(model.get("favourites") || []); }

  function toggleFav(key, star) {
    const favs = favSet();
    if (favs.has(key)) favs.delete(key); else favs.add(key);
    model.set("favourites", Array.from(favs));
    model.save_changes();
    star.classList.toggle("on", favs.has(key));
    star.textContent = favs.has(key) ? "\u2665" : "\u2661";
  }

  function rowControls(vids, head) {
    const btn = document.createElement("button");
    btn.className = "wb-play";
    btn.textContent = "\u25B6 play row";
    btn.title = "play / pause every clip of this row together";
    const back = document.createElement("button");
    back.className = "wb-restart";
    back.textContent = "\u21BA start";
    back.title = "back to the first frame";
    const playing = () => vids.some(v => !v.paused);
    const label = () => { btn.textContent = playing() ? "pause row" : "\u25B6 play row"; };
    btn.onclick = () => {
      if (!vids.length) return;
      if (playing()) { vids.forEach(v => v.pause()); }
      else {
        const t = vids[0].ended ? 0 : vids[0].currentTime;
        vids.forEach(v => { try { v.currentTime = Math.min(t, (v.duration || t)); } catch (e) {} });
        vids.forEach(v => { const p = v.play(); if (p && p.catch) p.catch(() => {}); });
      }
      setTimeout(label, 50);
    };
    back.onclick = () => { vids.forEach(v => { v.pause(); v.currentTime = 0; }); label(); };
    vids.forEach(v => { v.addEventListener("play", label); v.addEventListener("pause", label); });
    if (vids.length > 1) {
      const lead = vids[0];
      lead.addEventListener("timeupdate", () => {
        if (lead.paused) return;
        for (const v of vids.slice(1)) {
          if (!v.paused && v.duration && Math.abs(v.currentTime - lead.currentTime) > 0.12
              && lead.currentTime < v.duration) v.currentTime = lead.currentTime;
        }
      });
      lead.addEventListener("seeked", () => {
        if (!lead.paused) return;
        vids.slice(1).forEach(v => { if (v.duration) v.currentTime = Math.min(lead.currentTime, v.duration); });
      });
    }
    head.prepend(back);
    head.prepend(btn);
  }

  function draw() {
    urls.forEach(u => URL.revokeObjectURL(u));
    urls.length = 0;
    el.innerHTML = "";
    const rows = model.get("rows") || [];
    const width = model.get("width") || 256;
    const favs = favSet();
    if (!rows.length) {
      const e = document.createElement("div");
      e.className = "wb-empty";
      e.textContent = model.get("empty") || "";
      el.appendChild(e);
      return;
    }
    for (const row of rows) {
      const rowEl = document.createElement("div");
      rowEl.className = "wb-row";
      const head = document.createElement("div");
      head.className = "wb-row-head";
      const title = document.createElement("span");
      title.className = "wb-row-title";
      title.textContent = row.label || "";
      head.appendChild(title);
      rowEl.appendChild(head);
      const cells = document.createElement("div");
      cells.className = "wb-cells";
      const vids = [];
      for (const clip of row.clips || []) {
        const cell = document.createElement("div");
        cell.className = "wb-cell" + (clip.status === "error" ? " wb-failed" : "");
        cell.style.width = width + "px";
        const t = document.createElement("div");
        t.className = "wb-title";
        t.textContent = clip.title || "";
        t.title = clip.title || "";
        if (clip.badge) {
          const b = document.createElement("span");
          b.className = "wb-badge";
          b.textContent = clip.badge;
          t.prepend(b);
        }
        if (model.get("stars") && clip.key) {
          const star = document.createElement("span");  // a heart: favourites are not "best" (the star)
          star.className = "wb-star" + (favs.has(clip.key) ? " on" : "");
          star.textContent = favs.has(clip.key) ? "\u2665" : "\u2661";
          star.title = "favourite (kept in the run folder)";
          star.onclick = () => toggleFav(clip.key, star);
          t.prepend(star);
        }
        cell.appendChild(t);
        const src = clip.src || blobUrl(clip, urls);
        if (clip.error) {
          const err = document.createElement("div");
          err.className = "wb-error";
          err.textContent = clip.error;
          cell.appendChild(err);
        } else if (src && (clip.mime || "").startsWith("image/")) {
          const img = document.createElement("img");  // text-to-image models make stills
          img.src = src;
          img.width = width;
          img.className = "wb-video";
          cell.appendChild(img);
        } else if (src) {
          const v = document.createElement("video");
          v.src = src;
          v.controls = true; v.loop = true; v.preload = "auto";
          v.playsInline = true; v.muted = vids.length > 0;
          v.width = width;
          v.className = "wb-video";
          v.dataset.key = clip.key || "";
          vids.push(v);
          cell.appendChild(v);
        }
        if (clip.caption) {
          const c = document.createElement("div");
          c.className = "wb-caption";
          c.innerHTML = clip.caption;  // built and escaped by the Python side
          cell.appendChild(c);
        }
        cells.appendChild(cell);
      }
      if (vids.length) rowControls(vids, head);
      rowEl.appendChild(cells);
      el.appendChild(rowEl);
    }
  }
  model.on("change:rows", draw);
  model.on("change:width", draw);
  model.on("change:stars", draw);
  draw();
  return () => urls.forEach(u => URL.revokeObjectURL(u));
}
export default { render };
"""

_CSS = """
.wb-grid { font-family: var(--jp-ui-font-family, sans-serif); font-size: 12px; }
.wb-row { margin: 4px 0 10px 0; border-top: 1px solid var(--jp-border-color2, #ddd); padding-top: 4px; }
.wb-row-head { display: flex; gap: 6px; align-items: center; margin-bottom: 4px; }
.wb-row-title { font-weight: 600; margin-left: 4px; }
.wb-row-head button { white-space: nowrap; font-size: 12px; padding: 1px 8px; cursor: pointer; border-radius: 3px;
  border: 1px solid var(--jp-border-color1, #bbb); background: var(--jp-layout-color2, #f3f3f3);
  color: var(--jp-ui-font-color1, #222); }
.wb-cells { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.wb-cell { display: flex; flex-direction: column; gap: 2px; }
.wb-title { font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.wb-star { cursor: pointer; color: #999; margin-right: 4px; font-size: 14px; }
.wb-star.on { color: #d12a5c; }
.wb-badge { background: #0a7d32; color: #fff; border-radius: 8px; padding: 0 6px; font-size: 10px; font-weight: 600;
  margin-right: 4px; vertical-align: 1px; }
.wb-video { background: #000; border-radius: 3px; display: block; }
.wb-error { color: #b00020; background: #fdecee; padding: 4px 6px; border-radius: 3px; white-space: normal; }
.wb-failed .wb-title { color: #b00020; }
.wb-empty { color: var(--jp-ui-font-color2, #777); font-style: italic; padding: 6px 0; }
.wb-caption table { border-collapse: collapse; width: 100%; table-layout: auto; }
.wb-caption td { padding: 0 4px; border-bottom: 1px solid var(--jp-border-color3, #eee); vertical-align: top; }
.wb-caption td.n { overflow-wrap: anywhere; }
.wb-caption td.v { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.wb-caption .num { white-space: nowrap; }
.wb-caption .mark { margin-left: 2px; }
.wb-caption .best { color: #0a7d32; font-weight: 700; }
.wb-caption .na { color: #999; }
.wb-caption tr.why td { color: #888; font-size: 11px; white-space: normal; padding-left: 10px; border-bottom: 1px solid var(--jp-border-color3, #eee); }
.wb-caption tr:has(+ tr.why) td { border-bottom: none; }
.wb-unit { color: #888; font-size: 10px; font-weight: 400; white-space: nowrap; }
"""


class ClipGrid(anywidget.AnyWidget):
    """Rows of clips; each row plays in step under one play/pause.

    `rows` is a list of {"label": str, "clips": [item, ...]}; build items with `clip_item`.
    """

    _esm = _ESM
    _css = _CSS
    rows = traitlets.List([]).tag(sync=True)
    width = traitlets.Int(240).tag(sync=True)
    stars = traitlets.Bool(False).tag(sync=True)
    favourites = traitlets.List(traitlets.Unicode(), []).tag(sync=True)
    empty = traitlets.Unicode("no clips yet").tag(sync=True)


def clip_item(path: str | Path | None, title: str, caption: str = "", key: str = "", error: str = "",
              status: str = "ok", server: Any = True, badge: str = "") -> dict[str, Any]:
    """One clip of a ClipGrid row: where the browser loads it from (served or embedded), its title (with
    an optional badge before it, e.g. "kept"), caption HTML (scores) and, for a failed job, its one-line
    error instead of a player."""
    item: dict[str, Any] = {"title": title, "caption": caption, "key": key, "status": status, "badge": badge,
                            "src": "", "data": b"", "error": error, "mime": "video/mp4"}
    if path and not error:
        src = video_source(path, server=server)
        item.update(src.as_item())
        item["mime"] = mime_type(path)
    return item


# --- small helpers --------------------------------------------------------------------------------
def one_line(e: BaseException | str) -> str:
    """An exception as one readable line (type name only when the message is empty)."""
    if isinstance(e, BaseException):
        text = str(e).strip() or type(e).__name__
        if isinstance(e, (KeyError,)) and text.startswith("'") and text.endswith("'"):
            text = text[1:-1]
    else:
        text = str(e)
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


class Message(W.HTML):
    """A one-line status area: info, ok or error (red), never a traceback."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.layout.min_height = "22px"
        self.add_class("wb-message")

    def _set(self, text: str, color: str, bg: str) -> None:
        if not text:
            self.value = ""
            return
        style = f"color:{color};" + (f"background:{bg};padding:2px 6px;border-radius:3px;" if bg else "")
        self.value = f'<span style="{style}">{html.escape(text)}</span>'

    def info(self, text: str) -> None:
        self._set(text, "#444", "")

    def ok(self, text: str) -> None:
        self._set(text, "#0a7d32", "")

    def error(self, e: BaseException | str) -> None:
        self._set("error: " + one_line(e), "#b00020", "#fdecee")

    @property
    def text(self) -> str:
        """The message as plain text (for tests and logs)."""
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.value))


NA = "n/a"  # the one word for a score without a value, here and in the report


def fmt(v: Any) -> str:
    """A value without a metric's unit (parameters, timings): as the report prints numbers; n/a for none."""
    if v is None:
        return NA
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return NA
        if isinstance(v, int):
            return str(v)
        return fmt_number(v)  # as the report prints it: 3 significant digits, never e-notation
    return str(v)


def score_infos(records: Iterable[dict[str, Any]], names: Iterable[str] | None = None) -> dict[str, Any]:
    """The report's formatting of each score (`workbench.report.metric_infos`: unit, scale such as
    \u00d710\u207b\u2076, direction) over these records, so the Studio shows a score in the unit the run's
    report uses. Pass the whole run's records, not one row, for the same unit everywhere."""
    from workbench.report import metric_infos

    ok = [r for r in records if r.get("status") == "ok"]
    if names is None:
        names = dict.fromkeys(k for r in ok for k in (r.get("scores") or {}))
    return metric_infos(ok, list(names))


def fmt_score(name: str, v: Any, infos: dict[str, Any] | None) -> str:
    """A score's value in its unit (the MetricInfo's scale); n/a when there is none."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return NA
    info = (infos or {}).get(name)
    return info.fmt(v) if info is not None else fmt(v)


def unit_html(name: str, infos: dict[str, Any] | None) -> str:
    """The unit label of a score (e.g. \u00d710\u207b\u2076), small and grey; empty when it has none."""
    info = (infos or {}).get(name)
    label = getattr(info, "unit_label", "") if info is not None else ""
    return f" <span class='wb-unit'>{html.escape(label)}</span>" if label else ""


def directions() -> dict[str, bool | None]:
    """Score name -> True (higher is better), False (lower), None (neither)."""
    try:
        from workbench.metrics import score_specs

        return {n: s.higher_is_better for n, s in score_specs().items()}
    except Exception:
        return {}


def arrow(direction: bool | None) -> str:
    return {True: "\u2191", False: "\u2193"}.get(direction, "")


BEST_MARK = "\u2605"  # the one star: best in its row, nothing else (favourites are hearts, kept takes a badge)
FAV_MARK, FAV_OFF = "\u2665", "\u2661"


def best_in_row(records: Iterable[dict[str, Any]], dirs: dict[str, bool | None],
                infos: dict[str, Any] | None = None) -> dict[str, set[str]]:
    """Per score with a direction, the job ids of the row's best value. Ties are all best (values that
    read the same as the best, in the score's unit); when every value reads the same, none is. The
    report's rule: a still clip (below the motion floor) is trivially consistent, so it competes for no
    ★ on a score that rewards stillness (`ScoreSpec.rewards_stillness`)."""
    from workbench.metrics import score_specs  # local: the widgets module loads without metrics
    from workbench.ranking import is_still

    specs = score_specs()
    shown: dict[str, list[tuple[str, float, str]]] = {}
    for r in records:
        if r.get("status", "ok") != "ok":
            continue
        still = bool(is_still(r))
        for k, v in (r.get("scores") or {}).items():
            if dirs.get(k) is None or v is None or isinstance(v, bool) or not isinstance(v, (int, float)) \
                    or not math.isfinite(v):
                continue
            if still and getattr(specs.get(k), "rewards_stillness", False):
                continue
            shown.setdefault(k, []).append((str(r.get("job_id", id(r))), float(v), fmt_score(k, v, infos)))
    best: dict[str, set[str]] = {}
    for k, vals in shown.items():
        if len(vals) < 2 or len({t for _, _, t in vals}) == 1:
            continue  # nothing to beat, or all equal: no best
        top = (max if dirs[k] else min)(vals, key=lambda x: x[1])
        best[k] = {j for j, _, t in vals if t == top[2]}
    return best


def best_values(records: Iterable[dict[str, Any]], dirs: dict[str, bool | None]) -> dict[str, float]:
    """Per score, the best value among these records (scores with a direction only)."""
    best: dict[str, float] = {}
    for r in records:
        for k, v in (r.get("scores") or {}).items():
            d = dirs.get(k)
            if d is None or v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            if k not in best or (v > best[k] if d else v < best[k]):
                best[k] = v
    return best


def score_order(names: Iterable[str]) -> list[str]:
    """Score names in the metric registry's order (unknown names last, as given)."""
    try:
        from workbench.metrics import score_specs

        known = {n: i for i, n in enumerate(score_specs())}
    except Exception:
        known = {}
    names = list(names)
    return sorted(names, key=lambda n: (known.get(n, len(known)), names.index(n)))


def scores_caption(record: dict[str, Any], dirs: dict[str, bool | None], best: dict[str, set[str]] | None = None,
                   infos: dict[str, Any] | None = None) -> str:
    """A small HTML table of a record's scores in their units (`infos`), the row's best marked with the
    one star, a score without a value as n/a with its reason written out (not only on hover). One rule for
    every card: a score the job asked for (`metrics_requested`) that the record does not hold (the metric
    did not apply: lip-sync on a case without audio) shows as n/a with the report's reason too, never
    silently left out."""
    held = record.get("scores") or {}
    asked = [k for k in record.get("metrics_requested") or [] if isinstance(k, str) and k not in held]
    from workbench.metrics.registry import applicable_scores  # local: the widgets module loads without metrics

    names = applicable_scores(record, score_order([*held, *asked]))
    scores = {k: held.get(k) for k in names}
    if not scores:
        return ""
    if infos is None:
        try:
            infos = score_infos([record])
        except Exception:
            infos = {}
    errors = record.get("score_errors") or {}
    backends = record.get("backends") or {}
    job = str(record.get("job_id", id(record)))
    rows = []
    for k, v in scores.items():
        name = f"{html.escape(k)} {arrow(dirs.get(k))}{unit_html(k, infos)}"
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            why = html.escape(errors.get(k) or _null_reason(record, k))
            rows.append(f'<tr><td class="n">{name}</td><td class="v na">{NA}</td></tr>'
                        f'<tr class="why"><td colspan="2">{why}</td></tr>')
            continue
        is_best = best is not None and job in best.get(k, ())
        cls = "v best" if is_best else "v"
        mark = f'<span class="mark">{BEST_MARK}</span>' if is_best else ""
        be = f' title="{html.escape(backends[k])}"' if backends.get(k) else ""
        rows.append(f'<tr><td class="n">{name}</td><td class="{cls}"{be}>'
                    f'<span class="num">{fmt_score(k, v, infos)}{mark}</span></td></tr>')
    return '<table class="wb-scores">' + "".join(rows) + "</table>"


def _null_reason(record: dict[str, Any], name: str) -> str:
    """Why a record holds no value for a score, in the report's words (`workbench.report.null_reason`)."""
    try:
        from workbench.report import null_reason

        return null_reason({"status": "ok", **record}, name)
    except Exception:
        return "not computed"


def html_table(header: list[str], rows: list[list[str]], title: str = "", nowrap: bool = False) -> str:
    """A plain HTML table (cells are already-escaped HTML) in a box that scrolls sideways when wide;
    `nowrap` keeps every cell on one line."""
    style = ("border-collapse:collapse;font-size:12px;margin:4px 0;line-height:1.4;",
             "padding:3px 8px;border-bottom:1px solid #ddd;vertical-align:top;")
    th = "".join(f'<th style="{style[1]}text-align:left;white-space:nowrap">{h}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{style[1]}{"white-space:nowrap;" if i == 0 else ""}">{c}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    if nowrap:
        body = body.replace('vertical-align:top;"', 'vertical-align:top;white-space:nowrap;"')
    cap = f"<div style='font-weight:600;margin-top:6px'>{html.escape(title)}</div>" if title else ""
    return (f'{cap}<div style="overflow-x:auto;max-width:100%"><table style="{style[0]}"><thead><tr>{th}</tr>'
            f'</thead><tbody>{body}</tbody></table></div>')


def run_folders(runs_root: Path) -> list[Path]:
    """Run folders (holding results.jsonl) under `runs_root`, newest first, up to two levels deep."""
    if not runs_root.is_dir():
        return []
    found = {p.parent for p in runs_root.glob("*/results.jsonl")} | {p.parent for p in runs_root.glob("*/*/results.jsonl")}
    return sorted(found, key=lambda p: (p / "results.jsonl").stat().st_mtime, reverse=True)


class RunPicker(W.HBox):
    """Pick a run folder: the ones under the runs root, or any path typed in. `on_change(path)` fires."""

    def __init__(self, runs_root: Path, on_change: Callable[[Path | None], None] | None = None,
                 description: str = "run folder") -> None:
        self.runs_root = Path(runs_root)
        self.combo = W.Combobox(placeholder="runs/<name> or a path", ensure_option=False,
                                description=description, layout=W.Layout(width="440px"),
                                style={"description_width": "80px"})
        self.refresh_btn = W.Button(icon="refresh", tooltip="look for run folders again", layout=W.Layout(width="36px"))
        self.refresh_btn.on_click(lambda _: self.refresh())
        self._on_change = on_change
        super().__init__([self.combo, self.refresh_btn])
        self.combo.observe(self._changed, names="value")
        self.refresh()

    def _label(self, p: Path) -> str:
        try:
            return str(p.relative_to(self.runs_root.parent))
        except ValueError:
            return str(p)

    def refresh(self) -> None:
        self.combo.options = [self._label(p) for p in run_folders(self.runs_root)]

    @property
    def path(self) -> Path | None:
        v = self.combo.value.strip()
        if not v:
            return None
        p = Path(v).expanduser()
        if not p.is_absolute():
            p = self.runs_root.parent / p
        return p.resolve()

    def set(self, path: Path, reload: bool = False) -> None:
        """Show `path`; `on_change` fires when that changes the folder and, with `reload`, also when it
        is the folder already shown (the same folder with new records)."""
        self.refresh()
        label = self._label(Path(path).resolve())
        if reload and self.combo.value == label:
            self._changed({"new": label})
        else:
            self.combo.value = label

    def _changed(self, change: dict) -> None:
        if self._on_change is not None:
            self._on_change(self.path)
