"""The creative workflow in the Generate tab: Element choices, the router's proposals, best-of-N.

Thin widgets over `workbench.workflow`; none holds logic of its own:
- Elements: `ElementLibrary` lists the user's library and the project's samples (data/elements); the
  case's image becomes `element:NAME` and the suite step (`workflow.steps.resolve_case`) does the rest.
- auto: `agent.route` ranks the video models for the current inputs (shown with reasons before Run);
  the suite's model is `auto` and `workflow.steps.resolve_auto` runs the first usable one.
- best-of-N: `bestofn.Objective` checks the objective in place; the Runner writes `bestofn.json`, read
  back with `load_rankings` to mark each clip's objective, rank and the kept take(s).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W
import yaml

from workbench.formatting import fmt_number
from workbench.ui.forms import parse_number
from workbench.ui.paths import samples_dir
from workbench.ui.widgets import one_line
from workbench.workflow.steps import AUTO  # the suite's name for "the router picks"

AUTO_LABEL = "auto (router picks)"
RED = "#b00020"


# -- Elements -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ElementChoice:
    """One Element offered as an image: its library folder, and the loaded Element or why it won't load."""

    name: str
    root: Path
    element: Any = None  # workflow.elements.Element
    error: str | None = None

    @property
    def reference(self) -> str:
        """How a suite case names it (`element:NAME`)."""
        from workbench.workflow.elements import PREFIX

        return PREFIX + self.name

    @property
    def portrait(self) -> Path | None:
        """The reference image (None when the Element does not load or has none)."""
        try:
            return self.element.reference_image if self.element is not None else None
        except Exception:
            return None

    @property
    def in_default_library(self) -> bool:
        """True when `element:NAME` finds it without a suite `elements:` folder."""
        from workbench.workflow.elements import default_root

        return self.root.resolve() == default_root().resolve()

    def note(self) -> str:
        """`element_note` of this choice (what the image input shows under an Element)."""
        return element_note(self)


def sample_elements_dir() -> Path:
    """The project's sample Element library (data/elements)."""
    return samples_dir() / "elements"


def element_choices(user_root: str | Path | None = None, sample_root: str | Path | None = None) -> dict[str, ElementChoice]:
    """`{"element: NAME": ElementChoice}` for the user's library ($WORKBENCH_ELEMENTS or ~/.workbench/elements)
    then the project's samples; a sample whose name the user's library already has is labelled `(samples)`,
    a broken Element `(broken)` (choosing it shows why)."""
    from workbench.workflow.elements import ElementLibrary

    libraries = [ElementLibrary(user_root), ElementLibrary(sample_root or sample_elements_dir())]
    out: dict[str, ElementChoice] = {}
    seen: set[Path] = set()
    for i, lib in enumerate(libraries):
        root = lib.root.resolve()
        if root in seen:
            continue
        seen.add(root)
        try:
            entries = lib.entries()
        except OSError:
            continue
        for e in entries:
            label = f"element: {e.name}"
            if label in out or f"{label} (broken)" in out:
                label += " (samples)" if i else f" ({root.name})"
            if e.element is None:
                label += " (broken)"
            out[label] = ElementChoice(e.name, root, e.element, e.error)
    return out


def element_note(choice: ElementChoice) -> str:
    """One line of HTML about a chosen Element: kind, voice, the prompt snippet the suite appends."""
    el = choice.element
    if el is None:
        return ""
    bits = [f"element <b>{html.escape(el.name)}</b> ({html.escape(el.kind)})"]
    if el.voice:
        bits.append(f"voice {html.escape(el.voice.get('voice', ''))}")
    if el.prompt:
        bits.append(f"adds to the prompt: <i>{html.escape(el.prompt)}</i>")
    if not choice.in_default_library:
        bits.append(f"library <code>{html.escape(str(choice.root))}</code>")
    return f"<span style='color:#555'>{' &middot; '.join(bits)}</span>"


# -- auto: the router's proposals ---------------------------------------------------------------------
def auto_descriptor(task: str) -> dict[str, Any]:
    """A catalogue-like entry for the `auto` model: takes every input, the router picks the model."""
    return {"name": AUTO, "task": task, "requires": [], "accepts": ["image", "audio", "prompt", "negative_prompt"],
            "defaults": {}, "weights": None, "options": None, "cls": None,
            "description": "the router ranks every video model for these inputs and this machine; "
                           "Run uses the first usable one (the record says which and why)"}


class Router:
    """`agent.route` for the current inputs, cached by what routing looks at (face detection is not free)."""

    def __init__(self) -> None:
        self._cache: dict[tuple, list] = {}

    def routes(self, image: Path | None, audio: Path | None, prompt: str, speech: bool) -> list:
        """Ranked `Route`s (test models left out, as the suite step does)."""
        key = (str(image) if image else None, str(audio) if audio else None, bool(prompt), speech)
        if key not in self._cache:
            from workbench.workflow.agent import Inputs, route

            try:
                inputs = Inputs.from_paths(image, audio, prompt, speech=speech)
            except Exception:  # an unreadable image: route on what is known (the image's own note says why)
                inputs = Inputs(str(image) if image else None, str(audio) if audio else None, prompt, speech=speech)
            self._cache[key] = [r for r in route(inputs) if not r.model.startswith("test-")]
        return self._cache[key]


def routes_html(routes: list, limit: int = 5) -> str:
    """The router's ranked proposals, the one Run will use marked: each model on its own line with its
    reasons wrapped beneath (all of them for usable models, why not for the others)."""
    if not routes:
        return f"<span style='color:{RED}'>auto: no video model is registered</span>"
    usable = [r for r in routes if r.usable]
    items = []
    for i, r in enumerate(routes[:limit]):
        mark = "\u25b6 runs" if usable and r is usable[0] else ("usable" if r.usable else "not here")
        color = "#0a6" if r.usable else "#999"
        why_not = [x for x in r.reasons if any(k in x for k in ("not on this machine", "needs", "no face"))]
        shown = r.reasons if r.usable else why_not or r.reasons[:1]
        reasons = "; ".join(html.escape(x) for x in shown)
        items.append(f"<div style='margin:3px 0'><span style='color:{color}'>{i + 1}. <b>{html.escape(r.model)}</b>"
                     f" <span style='font-size:11px'>{mark}</span></span>"
                     f"<div style='color:#666;font-size:11px;line-height:1.3;margin-left:14px'>{reasons}</div></div>")
    head = ("<b>router's proposals</b> <span style='color:#777'>(for these inputs on this machine)</span>"
            if usable else f"<b style='color:{RED}'>auto: no model here fits these inputs</b>")
    more = f"<div style='color:#999'>+{len(routes) - limit} more</div>" if len(routes) > limit else ""
    return (f"<div style='font-size:12px;white-space:normal;line-height:1.35'>{head}{''.join(items)}{more}</div>")


def no_route_problem(routes: list) -> str | None:
    """Why `auto` cannot run these inputs (None: it can), in the suite step's words."""
    if any(r.usable for r in routes):
        return None
    why = "; ".join(f"{r.model}: {r.reasons[0]}" for r in routes[:3] if r.reasons)
    return f"auto: no model here fits these inputs ({why})" if why else "auto: no video model is registered"


# -- best-of-N ----------------------------------------------------------------------------------------
def parse_objective(text: str) -> dict[str, Any]:
    """`identity_similarity: 1, warp_error: 10` (or a YAML / JSON mapping) -> the suite's `objective:`,
    checked by `bestofn.Objective.parse`. ValueError with one line when it is not well defined."""
    from workbench.workflow.bestofn import Objective

    text = text.strip()
    if not text:
        raise ValueError("objective: give weights per score, e.g. identity_similarity: 1, warp_error: 10")
    try:
        value = yaml.safe_load(text if text.startswith("{") else "{" + text + "}")
    except yaml.YAMLError:
        raise ValueError("objective: write score: weight pairs, e.g. identity_similarity: 1, warp_error: 10") from None
    Objective.parse(value)  # ObjectiveError (a ValueError) with the library's own one line
    return value


def uncomputed_scores(objective: dict[str, Any], metrics: list[str]) -> list[str]:
    """Scores of the objective that the chosen metrics do not compute (none when every metric runs)."""
    if not metrics:
        return []
    from workbench.metrics import metric_classes

    chosen = set(metrics)
    covered = set(chosen)
    for c in metric_classes():
        if c.name in chosen:
            covered.update(c.score_names())
    return [m for m in objective if m not in covered]


def _group_of(score: str) -> str:
    from workbench.metrics import metric_classes

    return next((c.name for c in metric_classes() if score in c.score_names()), score)


class BestOfBox(W.VBox):
    """Objective and keep k, shown when outputs > 1; a bad objective is refused in place."""

    PLACEHOLDER = "identity_similarity: 1, sync_confidence: 0.5, warp_error: 10"

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.objective = W.Text(value="", description="objective", placeholder=self.PLACEHOLDER,
                                layout=W.Layout(width="404px"), style={"description_width": "80px"},
                                tooltip="weights per score (directions from the metric registry); empty: no ranking")
        self.keep = W.Text(value="1", description="keep", layout=W.Layout(width="100px"),
                           style={"description_width": "40px"}, tooltip="how many of the best to keep (1 to outputs)")
        self.note = W.HTML(layout=W.Layout(margin="0 0 0 84px"))
        super().__init__([W.HBox([self.objective, self.keep]), self.note], layout=W.Layout(display="none"))
        self._on_change = on_change
        self._outputs = 1
        self._metrics: list[str] = []
        self.error: str | None = None
        for w in (self.objective, self.keep):
            w.observe(lambda _: self.check(), names="value")

    @property
    def n(self) -> int:
        """Outputs per seed (the N of best-of-N)."""
        return self._outputs

    @property
    def active(self) -> bool:
        """Shown (outputs > 1) with an objective typed in."""
        return self._outputs > 1 and bool(self.objective.value.strip())

    def update(self, outputs: int, metrics: list[str]) -> None:
        """Follow the outputs and metrics fields of the tab."""
        self._outputs, self._metrics = int(outputs), list(metrics)
        self.layout.display = None if self._outputs > 1 else "none"
        self.check()

    def check(self) -> None:
        """Parse the objective; its one-line error (or what it ranks) shows beside the field."""
        self.error = None
        text = ""
        if self.active:
            try:
                keep = self.keep_value()
                spec = parse_objective(self.objective.value)
                missing = uncomputed_scores(spec, self._metrics)
                if missing:
                    groups = ", ".join(dict.fromkeys(_group_of(m) for m in missing))
                    raise ValueError(f"objective: {', '.join(missing)} is not computed by the chosen metrics; "
                                     f"add {groups} to metrics")
                from workbench.workflow.bestofn import Objective

                text = (f"<span style='color:#555'>ranks the {self._outputs} outputs of each seed by "
                        f"<code>{html.escape(Objective.parse(spec).describe())}</code>, keeps the best "
                        f"{keep}</span>")
            except ValueError as e:
                self.error = one_line(e)
                text = f"<span style='color:{RED}'>\u2716 {html.escape(self.error)}</span>"
        elif self._outputs > 1:
            text = "<span style='color:#777'>type an objective to rank the outputs and keep the best</span>"
        self.note.value = text
        if self._on_change:
            self._on_change()

    def keep_value(self) -> int:
        """How many takes to keep, typed as text; ValueError with one line when not 1 to outputs."""
        v, err = parse_number(str(self.keep.value), integer=True)
        if err:
            raise ValueError(f"keep: {err}")
        if not 1 <= v <= self._outputs:
            raise ValueError(f"keep: must be 1 to {self._outputs} (the outputs per seed), got {v}")
        return v

    def suite_entries(self) -> dict[str, Any]:
        """`objective:` and `best_of:` for the suite (empty when not ranking)."""
        if not self.active or self.error:
            return {}
        keep = min(self.keep_value(), self._outputs)
        return {"objective": parse_objective(self.objective.value), "best_of": {"n": self._outputs, "keep": keep}}


@dataclass(frozen=True)
class Mark:
    """A clip's place in its best-of-N ranking."""

    objective: float | None
    rank: int | None
    of: int
    kept: bool
    why: str = ""


def rank_marks(run_dir: str | Path) -> dict[str, Mark]:
    """job id -> Mark, from the run folder's bestofn.json (`load_rankings`); empty when there is none."""
    from workbench.workflow.bestofn import load_rankings

    data = load_rankings(run_dir) or {}
    out: dict[str, Mark] = {}
    for rk in data.get("rankings") or []:
        kept = set(rk.get("kept") or [])
        n = len(rk.get("ranked") or []) + len(rk.get("unscored") or [])
        for row in rk.get("ranked") or []:
            out[row["job_id"]] = Mark(row.get("objective"), row.get("rank"), n, row["job_id"] in kept)
        for row in rk.get("unscored") or []:
            out[row["job_id"]] = Mark(None, None, n, False, str(row.get("why") or ""))
    return out


def mark_caption(mark: Mark) -> str:
    """HTML above a clip's scores: its objective value and rank, and whether it is kept."""
    if mark.rank is None:
        return f"<div style='color:#999'>not ranked: {html.escape(mark.why)}</div>"
    kept = " &middot; <span class='wb-badge'>kept</span>" if mark.kept else ""  # the star means best in row
    return f"<div>objective <b>{fmt_number(mark.objective, sig=4)}</b> &middot; rank {mark.rank}/{mark.of}{kept}</div>"
