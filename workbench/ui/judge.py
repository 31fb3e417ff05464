"""The Studio's Judge tab: blind side-by-side judging of a run folder's clips, votes kept in RUN/judgments.jsonl.

A thin shell over `workbench.judging`: the `Scheduler` picks the next comparison (one case and seed, K
models, positions balanced; its rule is in `workbench.judging.schedule`), the `JudgeBoard` shows the
clips as 1..K without model names, playing in step (muted at first, as browsers require; play
unmutes the first clip's sound), and every vote is appended to the run folder at once
(`judging.store.append_vote`), so a closed notebook, a kernel restart or a second rater in another
kernel loses nothing. Keys (with the board focused): 1-4 best clip,
t tie, x all bad, r then the clips best-first for a full ranking, space play/pause, n the note box,
Enter next (after a reveal). Names are shown after a vote only when "reveal after vote" is ticked.
"""
from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as W
import traitlets

from workbench.ui.widgets import Message, RunPicker, clip_item, html_table, one_line

_ESM = r"""
function render({ model, el }) {
  el.classList.add("wb-judge");
  el.tabIndex = 0;
  el.dataset.lmSuppressShortcuts = "true";  // JupyterLab: keys typed here are ours, not notebook commands
  let ranking = null;  // positions typed after "r", best first
  let urls = [];

  function vids() { return Array.from(el.querySelectorAll("video")); }
  function playPause() {
    const vs = vids();
    if (!vs.length) return;
    if (vs.some(v => !v.paused)) { vs.forEach(v => v.pause()); return; }
    const t = vs[0].ended ? 0 : vs[0].currentTime;
    vs[0].muted = false;  // the case's sound, from the first clip
    vs.forEach(v => { try { v.currentTime = Math.min(t, v.duration || t); } catch (e) {} const p = v.play(); if (p && p.catch) p.catch(() => {}); });
  }
  function vote(choice, positions) {
    const c = model.get("comparison") || {};
    if (!c.token || model.get("revealed").length) return;
    const note = el.querySelector(".wb-judge-note");
    model.send({ kind: "vote", token: c.token, choice: choice, positions: positions || [], note: note ? note.value : "" });
    ranking = null;
  }
  function draw() {
    urls.forEach(u => URL.revokeObjectURL(u)); urls = [];
    const c = model.get("comparison") || {};
    const revealed = model.get("revealed") || [];
    el.innerHTML = "";
    const head = document.createElement("div");
    head.className = "wb-judge-head";
    head.textContent = model.get("progress") || "";
    el.appendChild(head);
    if (!c.token) {
      const e = document.createElement("div"); e.className = "wb-judge-empty";
      e.textContent = model.get("empty") || "nothing to judge"; el.appendChild(e); return;
    }
    const q = document.createElement("div"); q.className = "wb-judge-q";
    q.textContent = "Which is best for " + (c.criterion || "overall") + "?  keys: 1-" + c.clips.length +
      " best · t tie · x all bad · r rank · space play · n note" + (revealed.length ? " · Enter next" : "");
    el.appendChild(q);
    const row = document.createElement("div"); row.className = "wb-judge-row";
    const width = model.get("width") || 240;
    c.clips.forEach((clip, i) => {
      const cell = document.createElement("div"); cell.className = "wb-judge-cell";
      const lab = document.createElement("button"); lab.className = "wb-judge-pick"; lab.type = "button";
      lab.textContent = (i + 1) + (revealed.length ? "  " + revealed[i] : "");
      lab.title = "this clip is best (key " + (i + 1) + ")";
      lab.onclick = () => vote("best", [i]);
      cell.appendChild(lab);
      let src = clip.src;
      if (!src && clip.data && clip.data.byteLength) { src = URL.createObjectURL(new Blob([clip.data], { type: clip.mime || "video/mp4" })); urls.push(src); }
      if (clip.error) { const e = document.createElement("div"); e.className = "wb-error"; e.textContent = clip.error; cell.appendChild(e); }
      else {
        const v = document.createElement("video");
        v.src = src; v.loop = true; v.muted = true; v.playsInline = true; v.preload = "auto"; v.width = width;
        v.autoplay = true; v.className = "wb-video";
        cell.appendChild(v);
      }
      row.appendChild(cell);
    });
    el.appendChild(row);
    const vs = vids();
    if (vs.length > 1) vs[0].addEventListener("timeupdate", () => {
      vs.slice(1).forEach(v => { if (!v.paused && v.duration && Math.abs(v.currentTime - vs[0].currentTime) > 0.12 && vs[0].currentTime < v.duration) v.currentTime = vs[0].currentTime; });
    });
    const bar = document.createElement("div"); bar.className = "wb-judge-bar";
    for (const [label, key, fn] of [["tie (t)", "t", () => vote("tie")], ["all bad (x)", "x", () => vote("all_bad")],
                                    ["rank (r)", "r", () => startRank()], ["play (space)", " ", playPause]]) {
      const b = document.createElement("button"); b.type = "button"; b.textContent = label; b.onclick = fn; bar.appendChild(b);
    }
    const note = document.createElement("input"); note.className = "wb-judge-note"; note.placeholder = "note (optional, n)";
    bar.appendChild(note);
    el.appendChild(bar);
    const msg = document.createElement("div"); msg.className = "wb-judge-msg"; msg.textContent = model.get("message") || "";
    el.appendChild(msg);
  }
  function startRank() {
    ranking = [];
    const m = el.querySelector(".wb-judge-msg"); if (m) m.textContent = "rank: type the clips best first";
  }
  el.addEventListener("keydown", (e) => {
    if (e.target && e.target.classList && e.target.classList.contains("wb-judge-note")) {
      if (e.key === "Escape") { el.focus(); }
      e.stopPropagation(); return;
    }
    const c = model.get("comparison") || {};
    const k = (c.clips || []).length;
    let used = true;
    if (model.get("revealed").length && (e.key === "Enter" || e.key === "ArrowRight")) model.send({ kind: "next" });
    else if (/^[1-4]$/.test(e.key) && +e.key <= k) {
      const p = +e.key - 1;
      if (ranking !== null) {
        if (!ranking.includes(p)) ranking.push(p);
        if (ranking.length === k - 1) { for (let i = 0; i < k; i++) if (!ranking.includes(i)) ranking.push(i); }
        const m = el.querySelector(".wb-judge-msg"); if (m) m.textContent = "rank: " + ranking.map(x => x + 1).join(" > ");
        if (ranking.length === k) vote("rank", ranking.slice());
      } else vote("best", [p]);
    }
    else if (e.key === "t") vote("tie");
    else if (e.key === "x") vote("all_bad");
    else if (e.key === "r") startRank();
    else if (e.key === " ") playPause();
    else if (e.key === "n") { const n = el.querySelector(".wb-judge-note"); if (n) n.focus(); }
    else used = false;
    if (used) { e.preventDefault(); e.stopPropagation(); }
  });
  for (const name of ["comparison", "revealed", "progress", "message", "empty", "width"]) model.on("change:" + name, draw);
  draw();
  return () => urls.forEach(u => URL.revokeObjectURL(u));
}
export default { render };
"""

_CSS = """
.wb-judge { font-family: var(--jp-ui-font-family, sans-serif); font-size: 12px; outline: none; padding: 4px;
  border: 1px solid transparent; border-radius: 4px; }
.wb-judge:focus { border-color: var(--jp-brand-color1, #1976d2); }
.wb-judge-head { font-weight: 600; margin-bottom: 4px; }
.wb-judge-q { color: var(--jp-ui-font-color2, #555); margin-bottom: 6px; }
.wb-judge-row { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.wb-judge-cell { display: flex; flex-direction: column; gap: 3px; }
.wb-judge-pick { font-weight: 700; font-size: 13px; cursor: pointer; border-radius: 3px; padding: 2px 8px;
  border: 1px solid var(--jp-border-color1, #bbb); background: var(--jp-layout-color2, #f3f3f3); color: var(--jp-ui-font-color1, #222); }
.wb-judge-bar { display: flex; gap: 6px; align-items: center; margin-top: 6px; flex-wrap: wrap; }
.wb-judge-bar button { font-size: 12px; padding: 1px 8px; cursor: pointer; }
.wb-judge-note { width: 260px; font-size: 12px; }
.wb-judge-msg { color: #0a7d32; margin-top: 4px; min-height: 14px; }
.wb-judge-empty { color: var(--jp-ui-font-color2, #777); font-style: italic; }
.wb-video { background: #000; border-radius: 3px; display: block; }
.wb-error { color: #b00020; background: #fdecee; padding: 4px 6px; border-radius: 3px; }
"""


class JudgeBoard(anywidget.AnyWidget):
    """The blind board: `comparison` = {token, criterion, clips: [clip items, no names]}; `revealed` the
    model names after a vote (when asked); votes come back as custom messages {kind: "vote", ...}."""

    _esm = _ESM
    _css = _CSS
    comparison = traitlets.Dict({}).tag(sync=True)
    revealed = traitlets.List([]).tag(sync=True)
    progress = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    empty = traitlets.Unicode("pick a run folder").tag(sync=True)
    width = traitlets.Int(240).tag(sync=True)


RULE = ("next comparison: pairs whose order is still uncertain first, cases not yet judged first, every model "
        "shown about equally, each model's positions balanced")


class JudgeTab(W.VBox):
    """Blind judging of one run folder (or joined folders: `join`) in the Studio (see the module doc)."""

    def __init__(self, runs_root: Path, run: str | Path | None = None, join: list[str | Path] | None = None,
                 rater: str | None = None) -> None:
        self.runs_root = Path(runs_root).expanduser().resolve()
        self.picker = RunPicker(self.runs_root, on_change=lambda p: self.load(p))
        self.rater = W.Text(value=rater or _user(), description="rater", layout=W.Layout(width="220px"),
                            style={"description_width": "44px"})
        self.criterion = W.Dropdown(options=[("overall", "overall"), ("lip-sync", "lip_sync"),
                                             ("identity", "identity"), ("motion", "motion")],
                                    value="overall", description="criterion", layout=W.Layout(width="200px"),
                                    style={"description_width": "60px"})
        self.k = W.Dropdown(options=[2, 3, 4], value=2, description="clips", layout=W.Layout(width="120px"),
                            style={"description_width": "36px"})
        self.reveal = W.Checkbox(value=False, description="reveal models after each vote", indent=False)
        self.message = Message()
        self.board = JudgeBoard()
        self.rule = W.HTML(f"<span style='color:#777;font-size:11px'>{RULE}</span>")
        self.ranking = W.HTML(layout=W.Layout(max_width="100%", overflow="hidden"))
        self.runs: list[Path] = []
        self.records: list[dict[str, Any]] = []
        self.base: Path | None = None
        self.scheduler = None
        self.current = None
        self._join = [Path(p) for p in join or []]
        self._token = 0
        self.board.on_msg(self._on_msg)
        for w in (self.criterion, self.k):
            w.observe(lambda _: self._reschedule(), names="value")
        controls = W.HBox([self.rater, self.criterion, self.k, self.reveal],
                          layout=W.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__([self.picker, controls, self.rule, self.message, self.board, self.ranking])
        self.add_class("wb-judge-tab")
        if run is not None:
            self.picker.set(Path(run).expanduser().resolve(), reload=True)

    # -- loading -------------------------------------------------------------------------------------
    def load(self, run_dir: Path | None) -> None:
        """Judge a run folder (joined with the tab's `join` folders): its current records and votes."""
        from workbench.judging.page import comparison_records
        from workbench.judging.store import JudgmentError

        self.scheduler, self.current = None, None
        if run_dir is None:
            return
        try:
            self.records, self.runs = comparison_records([run_dir, *self._join])
        except JudgmentError as e:
            self.message.error(e)
            self.board.comparison = {}
            return
        self.base = self.runs[0] if len(self.runs) == 1 else None
        n = len(self.records)
        self.message.info(f"{n} clip{'s' if n != 1 else ''} in {', '.join(p.name for p in self.runs)}; votes go to "
                          f"{self.runs[0] / 'judgments.jsonl'}")
        self._reschedule()

    def _reschedule(self) -> None:
        from workbench.judging.schedule import Scheduler
        from workbench.judging.store import run_votes

        if not self.runs:
            return
        votes = run_votes(self.runs, self.records)
        self.scheduler = Scheduler(self.records, list(votes.current), k=self.k.value, criterion=self.criterion.value)
        self._next()

    def _clip_path(self, job_id: str) -> Path | None:
        for r in self.records:
            if str(r.get("job_id")) == job_id:
                video = r.get("video") or r.get("image_out")
                return (self.runs[0] / video).resolve() if video else None  # joined: relative to the first
        return None

    def _next(self) -> None:
        self.board.revealed = []
        s = self.scheduler
        if s is None:
            return
        self.current = s.next(self.rater.value.strip())
        self._token += 1
        if self.current is None:
            self.board.empty = "no case and seed has finished clips from two models yet: nothing to compare"
            self.board.comparison = {}
            self.board.progress = s.progress()
        else:
            self.board.progress = s.progress()
            clips = []
            for job in self.current.clips:
                item = clip_item(self._clip_path(job), title="")
                clips.append({k: item[k] for k in ("src", "data", "mime", "error")})
            self.board.comparison = {"token": self._token, "criterion": self.criterion.label, "clips": clips}
        self._show_ranking()

    # -- voting --------------------------------------------------------------------------------------
    def _on_msg(self, _widget: Any, content: dict, _buffers: Any) -> None:
        try:
            if content.get("kind") == "next":
                self._next()
            elif content.get("kind") == "vote" and content.get("token") == self._token and not self.board.revealed:
                self.vote(str(content.get("choice")), list(content.get("positions") or []), str(content.get("note") or ""))
        except Exception as e:  # a bad vote is one line on the board, never a traceback
            self.board.message = one_line(e)

    def vote(self, choice: str, positions: list[int] | None = None, note: str = "") -> dict[str, Any]:
        """Record a vote on the comparison shown (positions 0-based from the left) and show the next one
        (or the model names first, when "reveal" is ticked). Returns the vote as written."""
        from workbench.judging.store import append_vote, make_vote

        c = self.current
        if c is None or self.scheduler is None:
            raise ValueError("no comparison shown; pick a run folder first")
        if self.board.revealed:
            raise ValueError("this comparison is judged; press Enter (or next) for the next one")
        rater = self.rater.value.strip()
        if not rater:
            raise ValueError("type your name in 'rater' first (votes say who judged)")
        vote = make_vote(rater=rater, case=c.case, seed=c.seed, output=c.output, clips=list(c.clips),
                         models=list(c.models), choice=choice, positions=positions, criterion=c.criterion,
                         note=note, run=self.runs[0].name, source="studio")
        append_vote(self.runs[0], vote)
        self.scheduler.add(vote)
        self.board.message = f"saved: {choice.replace('_', ' ')}" + (f" ({note})" if note else "")
        if self.reveal.value:
            self.board.progress = self.scheduler.progress()
            self.board.revealed = list(c.models)
            self._show_ranking()
        else:
            self._next()
        return vote

    def _show_ranking(self) -> None:
        s = self.scheduler
        r = s.ranking() if s is not None else None
        if r is None:
            self.ranking.value = ""
            return
        rows = [[str(x["rank"]), x["model"], f"{x['rating']:.0f}",
                 "" if x["lo"] is None else f"{x['lo']:.0f} – {x['hi']:.0f}", str(x["outcomes"])] for x in r.rows()]
        self.ranking.value = html_table(["#", "model", "rating", "95% interval", "pairwise"], rows,
                                        title=f"ranking by the votes ({r.label})")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""
