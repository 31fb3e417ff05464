"""Generate tab: inputs + model + parameters -> a suite -> the Runner, in a worker thread.

The form becomes a suite YAML written into the run folder (`suites/suite-<time>.yaml`, inputs as
absolute paths) and read back with `load_suite`, so the Studio runs exactly what
`workbench run <that file>` runs: same validation, same job ids, same records. Finished clips appear
as they finish, each with its scores; Cancel stops after the current step (finished jobs stay).
The creative workflow rides on the same suite (`workbench.ui.creative`): an Element as the image
(`image: element:NAME`), the `auto` model (the router's proposals shown before Run) and best-of-N
(`objective:` + `best_of:`; each clip's rank from bestofn.json after the run).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W
import yaml

from workbench.names import MAX_NAME, SEED_MAX, SEED_RANGE_MAX, parse_seeds, seed_problems, slug  # noqa: F401
from workbench.runset import STUDIO_SUITES
from workbench.cases import KnownCases, canonical_voice, case_id as make_case_id
from workbench.ui.creative import (AUTO, AUTO_LABEL, BestOfBox, Router, auto_descriptor, element_choices,
                                   mark_caption, no_route_problem, rank_marks, routes_html)
from workbench.ui.forms import MediaInput, ParamForm
from workbench.ui.jobs import Throttle, Worker
from workbench.ui.widgets import (ClipGrid, Message, best_in_row, clip_item, directions, one_line, score_infos,
                                  scores_caption)

TASK_LABELS = {
    "image-to-video": "image \u2192 video",
    "text-to-video": "text \u2192 video",
    "audio-to-video": "audio-driven (image + speech \u2192 video)",
    "text-to-image": "text \u2192 image",
    "video-to-video": "video \u2192 video",
}
DEFAULT_METRICS = ["temporal_flicker", "warp_error", "motion_smoothness", "identity", "lipsync"]  # with SyncNet here
OFFLINE_LIPSYNC = ["sync_offset", "sync_confidence"]  # the lip-sync scores that run without SyncNet's weights
LEARNED_ONLY = {"lse_d": "syncnet", "lse_c": "syncnet"}  # scores with no offline backend -> the weights they need


def syncnet_here() -> bool:
    """Whether the lip-sync metric finds SyncNet's weights (what lse_d and lse_c need) on this machine."""
    try:
        from workbench.metrics.syncnet import available_weights

        return available_weights() is not None
    except Exception:
        return False


def default_metrics() -> list[str]:
    """The Studio's default metrics: what can run here. lse_d / lse_c come only with SyncNet's weights (else
    the offline lip-sync scores), so a first report never opens on scores that were asked for and cannot be."""
    if syncnet_here():
        return list(DEFAULT_METRICS)
    return [m for m in DEFAULT_METRICS if m != "lipsync"] + OFFLINE_LIPSYNC


def weights_note(selection: list[str]) -> str:
    """One line under the metrics when a chosen score needs weights absent here: which, and the command that
    gets them (empty when every chosen score can run)."""
    if not selection:
        return ""
    try:
        from workbench.metrics import resolve

        _, wanted = resolve(list(selection))
    except Exception:
        return ""
    lacking = [s for s in wanted if LEARNED_ONLY.get(s) == "syncnet"] if not syncnet_here() else []
    if not lacking:
        return ""
    return (f"{', '.join(lacking)} need{'s' if len(lacking) == 1 else ''} SyncNet weights, not on this machine: "
            f"{'it reads' if len(lacking) == 1 else 'they read'} n/a. Get them with "
            f"<code>workbench weights fetch syncnet</code>, then set <code>WORKBENCH_SYNCNET_WEIGHTS</code> to the "
            f"path it prints (the offline sync_offset and sync_confidence run without them)")
ROWS_KEPT = 5  # result rows (cases) the Generate tab keeps on screen
ID_MAX = 60  # the Studio's case ids and suite names (before a prompt hash): the ids its run folders already hold


def model_catalogue() -> dict[str, dict[str, Any]]:
    """Every registered model's description (task, needs, defaults, weights available here?)."""
    from workbench.models import registry

    out = {}
    for name, cls in sorted(registry().items()):
        try:
            d = dict(cls.describe())
        except Exception as e:  # a broken adapter must not take the Studio down
            d = {"name": name, "task": getattr(cls, "task", "?"), "requires": [], "defaults": {},
                 "weights_available": False, "description": f"describe() failed: {e}"}
        d["cls"] = cls
        out[name] = d
    return out


def hosted_mark(d: dict[str, Any]) -> str:
    """The model menu's mark of a hosted model: its provider and whether its key is set."""
    key = "\u2713 key set" if d.get("key_present") else "\u2717 key missing"
    return f"{d.get('provider_title', d.get('provider'))} (hosted), {key}"


def hosted_info_html(d: dict[str, Any]) -> str:
    """The info line of a hosted model: provider, remote id, key variable (never its value), price rule."""
    key = ("present" if d.get("key_present") else
           f"<b style='color:#b00020'>missing</b>: set <code>{html.escape(str(d.get('key_env')))}</code>")
    price = d.get("price") or {}
    rule = html.escape(price.get("rule") or "no price rule")
    return (f"hosted on <b>{html.escape(str(d.get('provider_title')))}</b> as <code>{html.escape(str(d.get('remote_model')))}"
            f"</code> &middot; key <code>{html.escape(str(d.get('key_env')))}</code> {key} &middot; price {rule}")


def _in_kernel() -> bool:
    """Whether this runs in a notebook kernel (a person at a form), not a script or a test."""
    try:
        from IPython import get_ipython

        return getattr(get_ipython(), "kernel", None) is not None
    except Exception:
        return False


def job_times_html(r: dict[str, Any]) -> str:
    """A card's last line: the clip's own length, then how long the job took (labelled: a bare "19.1 s" under
    a clip reads as its length)."""
    clip = r.get("clip") or {}
    timings = r.get("timings") or {}
    bits = []
    if isinstance(clip.get("seconds"), (int, float)):
        bits.append(f"clip {clip['seconds']:.1f} s")
    if isinstance(timings.get("total"), (int, float)):
        parts = [f"{k} {timings[k]:.1f} s" for k in ("generate", "evaluate") if isinstance(timings.get(k), (int, float))]
        bits.append(f"job took {timings['total']:.1f} s" + (f" ({', '.join(parts)})" if parts else ""))
    if not bits:
        return ""
    text = html.escape(" \u00b7 ".join(bits))
    return f"<div class='wb-times' style='color:#888;font-size:11px'>{text}</div>"


def _elements() -> dict[str, Any]:
    """The Elements offered as images (a broken library must not take the Studio down)."""
    try:
        return element_choices()
    except Exception:
        return {}


def metric_names() -> list[str]:
    """Metric group names and score names the suite accepts, groups first."""
    from workbench.metrics import metric_classes

    groups = [c.name for c in metric_classes()]
    scores = [s for c in metric_classes() for s in c.score_names() if s not in groups]
    return groups + scores


def _takes(d: dict[str, Any], kind: str) -> bool:
    """Whether a model uses an input kind (image, audio, prompt, negative_prompt): it needs it, or lists it
    in `accepts`. Models without an `accepts` list (the baselines) take a prompt (ignored, recorded) and
    audio when they are audio-driven."""
    if kind in (d.get("requires") or []):
        return True
    accepts = d.get("accepts")
    if accepts is not None:
        return kind in accepts
    return kind == "prompt" or (kind == "audio" and d.get("task") == "audio-to-video")


OUTPUTS_MAX = 64  # the suite's num_outputs limit


def parse_outputs(text: str) -> tuple[int | None, str | None]:
    """Clips per seed typed as text -> (n, None) or (None, why not)."""
    from workbench.ui.forms import parse_number

    v, err = parse_number(str(text), integer=True)
    if err:
        return None, f"outputs: {err}"
    if not 1 <= v <= OUTPUTS_MAX:
        return None, f"outputs: must be 1 to {OUTPUTS_MAX}, got {v}"
    return v, None


def _labelled(text: str, widget: W.Widget) -> W.HBox:
    """A widget with a label in the same column as the `description`s of its neighbours."""
    label = W.HTML(f"<div style='text-align:right;padding-right:8px;line-height:28px'>{html.escape(text)}</div>",
                   layout=W.Layout(width="84px", min_width="84px"))
    return W.HBox([label, widget])


class GenerateTab(W.VBox):
    """Pick a task, a model, inputs and parameters; Run streams clips with their scores."""

    def __init__(self, runs_root: Path, run_dir: Path, on_finished: Callable[[Path], None] | None = None,
                 warm: bool | None = None) -> None:
        """`warm`: load what the chosen metrics need in the background while the form is filled (default: in
        a notebook kernel, where a person is filling it; tests call `warm_up()` themselves)."""
        self.runs_root = Path(runs_root)
        self.on_finished = on_finished
        self.known_cases = KnownCases(self.runs_root)  # ids already used: a digest seen keeps its id
        self.catalogue = model_catalogue()
        tasks = list(dict.fromkeys([t for t in TASK_LABELS if any(d["task"] == t for d in self.catalogue.values())]
                                   + [d["task"] for d in self.catalogue.values()]))
        lab = {"description_width": "80px"}
        self.task = W.Dropdown(options=[(self._task_label(t), t) for t in tasks], description="task",
                               layout=W.Layout(width="490px"), style=lab)
        self.model = W.Dropdown(description="model", layout=W.Layout(width="490px"), style=lab)
        self.model_info = W.HTML(layout=W.Layout(margin="0 0 0 84px"))
        self.route_panel = W.HTML(layout=W.Layout(margin="0 0 0 84px", display="none", width="330px"))
        self.router = Router()
        self._routing = False
        self._marks: dict[str, Any] = {}  # job id -> creative.Mark (best-of-N rank of the clips on screen)
        self.best_of = BestOfBox(on_change=self._update_state)
        uploads = self.runs_root / "uploads"
        self.image = MediaInput("image", uploads, on_change=self._image_changed, elements=_elements())
        self.audio = MediaInput("audio", uploads, on_change=self._update_state)
        self.prompt = W.Textarea(placeholder="what should happen in the clip", layout=W.Layout(width="404px", height="52px"))
        self.negative = W.Textarea(placeholder="what to avoid", layout=W.Layout(width="404px", height="40px"))
        self.seeds = W.Text(value="0", description="seeds", placeholder="0  or  0, 1, 2  or  0-3",
                            layout=W.Layout(width="200px"), style=lab)
        # typed as text and checked here: a browser number box would silently drop what it cannot read
        self.outputs = W.Text(value="1", description="outputs", layout=W.Layout(width="110px"),
                              style={"description_width": "56px"},
                              tooltip=f"clips per seed, 1 to {OUTPUTS_MAX} (each with a seed derived from it)")
        self.seeds_note = W.HTML(layout=W.Layout(margin="0 0 0 84px"))
        self.wandb = W.Checkbox(value=False, description="log to W&B", indent=False, layout=W.Layout(width="130px"),
                                tooltip="mirror the run to Weights & Biases (online when logged in, else offline in RUN/wandb)")
        self.metrics = W.TagsInput(value=default_metrics(), allowed_tags=metric_names(), allow_duplicates=False,
                                   layout=W.Layout(width="408px"))
        self.metrics_note = W.HTML(layout=W.Layout(margin="0 0 0 84px", width="404px"))
        self.run_dir_box = W.Text(value=self._label(run_dir), description="run into",
                                  layout=W.Layout(width="490px"), style=lab)
        self.form = ParamForm(on_change=self._update_state, project_root=self.runs_root.parent)
        self.options = W.Text(value="", description="options", layout=W.Layout(width="95%", max_width="440px"),
                              style={"description_width": "60px"},
                              placeholder='JSON, e.g. {"dtype": "bf16", "offload": "model", "vae_tiling": true}')
        self.options_note = W.HTML()
        self.options_box = W.VBox([W.HTML("<b>run options</b> <span style='color:#777'>(how to run it: dtype, "
                                          "device, offload, caches; part of the job id)</span>"),
                                   self.options, self.options_note], layout=W.Layout(margin="10px 0 0 0"))
        self.options.observe(lambda _: self._check_options(), names="value")
        self.run_btn = W.Button(description="Run", button_style="primary", icon="play", layout=W.Layout(width="110px"))
        self.cancel_btn = W.Button(description="Cancel", icon="stop", disabled=True, layout=W.Layout(width="110px"))
        self.jobs_bar = W.IntProgress(value=0, min=0, max=1, description="jobs", layout=W.Layout(width="320px"),
                                      style={"description_width": "64px"})
        self.step_bar = W.FloatProgress(value=0, min=0, max=1, description="step", layout=W.Layout(width="320px"),
                                        style={"description_width": "64px"})
        self.progress = W.HTML()
        self.run_note = W.HTML(layout=W.Layout(margin="2px 0 0 0"))  # every reason Run waits, beside Run
        self.warm_note = W.HTML()  # what the warm-up is loading (WarmUp.text)
        self.warm_note.add_class("wb-warm")
        from workbench.ui.warmup import WarmUp

        self.warmup = WarmUp(on_change=self._warm_changed)
        self.run_note.add_class("wb-run-note")
        self.message = Message()
        self.results = ClipGrid(width=256, empty="finished clips appear here, each with its scores")
        self.cli_hint = W.HTML()

        self.run_btn.on_click(lambda _: self.run())
        self.cancel_btn.on_click(lambda _: self.cancel())
        self.task.observe(lambda _: self._fill_models(), names="value")
        self.model.observe(lambda _: self._model_changed(), names="value")
        self.prompt.observe(lambda _: self._update_state(), names="value")  # auto routes on the prompt too
        for w in (self.outputs, self.metrics):
            w.observe(lambda _: self._outputs_changed(), names="value")
        self.seeds.observe(lambda _: self._update_state(), names="value")
        self.negative.observe(lambda _: self._update_state(), names="value")

        inputs = W.VBox([self.task, self.model, self.model_info, self.route_panel, self.image, self.audio,
                         _labelled("prompt", self.prompt), _labelled("negative", self.negative),
                         W.HBox([self.seeds, self.outputs, self.wandb]), self.seeds_note, self.best_of,
                         _labelled("metrics", self.metrics), self.metrics_note, self.run_dir_box],
                        layout=W.Layout(width="510px", min_width="510px"))
        form_box = W.VBox([self.form, self.options_box],
                          layout=W.Layout(margin="0 0 0 16px", flex="1 1 420px", min_width="0"))
        controls = W.HBox([self.run_btn, self.cancel_btn, W.VBox([self.jobs_bar, self.step_bar]), self.progress,
                           self.warm_note],
                          layout=W.Layout(align_items="center", margin="8px 0 0 0", flex_flow="row wrap"))
        top = W.HBox([inputs, form_box], layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))
        super().__init__([top, controls, self.run_note, self.message, self.cli_hint, self.results])
        self.add_class("wb-generate")

        self.runner = None
        self.worker: Worker | None = None
        self._busy = False
        self._throttle = Throttle(0.15)
        # result rows, newest first, one per case (and run folder): {"case", "root", "records", "started"}. A run
        # on the inputs of an earlier row joins that row, so several models (of any task) on the same inputs
        # sit side by side; rows[0] is the one being run into
        self._rows: list[dict[str, Any]] = []
        self._older_rows: list[dict[str, Any]] | None = None  # the grid rows of rows[1:], rendered once (_render)
        self._run_ids: set[str] = set()  # job ids of the run going now (or last)
        self._previewed: set[str] = set()  # jobs whose clip is on screen before its scores
        self._fill_models()
        # sensible first screen: a sample portrait (and speech) when the project's samples are here
        if any(k.endswith("portrait.png") for k in self.image.choice.options):
            self.image.select_sample("portrait.png")
        if any(k.endswith("hello.wav") for k in self.audio.choice.options):
            self.audio.select_sample("hello.wav")
        self._outputs_changed()  # the metrics' note (weights a chosen score lacks here)
        self._warm = _in_kernel() if warm is None else bool(warm)
        if self._warm:
            self.warm_up()

    # -- helpers ----------------------------------------------------------------------------------------
    def _desc(self) -> dict[str, Any] | None:
        """The chosen model's catalogue entry (a stand-in for `auto`); None when no model is chosen."""
        if self.model.value == AUTO:
            return auto_descriptor(self.task.value)
        return self.catalogue.get(self.model.value)

    def _task_label(self, task: str) -> str:
        n = sum(d["task"] == task for d in self.catalogue.values())
        return f"{TASK_LABELS.get(task, task)}  ({n} model{'s' if n != 1 else ''})"

    def _label(self, p: Path) -> str:
        try:
            return str(Path(p).resolve().relative_to(self.runs_root.parent))
        except ValueError:
            return str(p)

    @property
    def run_dir(self) -> Path:
        p = Path(self.run_dir_box.value.strip() or "runs/studio").expanduser()
        return (p if p.is_absolute() else self.runs_root.parent / p).resolve()

    def _add_checkpoints(self) -> None:
        """Local pipeline folders under the runs folder (runs/tiny/*, anything saved with save_pretrained),
        each offered as `FAMILY@FOLDER`: that family with model_id = the folder."""
        from workbench.ui.checkpoints import find_checkpoints

        for key in [k for k, d in self.catalogue.items() if d.get("checkpoint")]:
            del self.catalogue[key]
        for ck in find_checkpoints(self.runs_root):
            base = self.catalogue.get(ck.family)
            if base is None:
                continue
            label = self._label(ck.path)
            also = [f for f in ck.families[1:] if f in self.catalogue]
            self.catalogue[f"{ck.family}@{label}"] = {
                **base, "checkpoint": ck.path, "checkpoint_label": label, "weights": label,
                "weights_available": True, "also_loads": also,
                "description": f"local {ck.pipeline} checkpoint {label}, run as {ck.family}"}

    def _fill_models(self) -> None:
        task = self.task.value
        self._add_checkpoints()
        opts = []
        for name, d in self.catalogue.items():
            if d["task"] != task:
                continue
            if d.get("checkpoint"):
                mark = "\u2713 local checkpoint"
            elif d.get("hosted"):
                mark = hosted_mark(d)
            else:
                mark = "model-free" if not d.get("weights") else ("\u2713 weights here" if d.get("weights_available")
                                                                  else "\u2717 weights missing")
            opts.append((f"{name}  \u2014 {mark}", name))
        # model-free models, local checkpoints and models with weights here first
        opts.sort(key=lambda o: (not self.catalogue[o[1]].get("weights_available", True),
                                 bool(self.catalogue[o[1]].get("checkpoint")), o[1]))
        first = opts[0][1] if opts else None
        from workbench.workflow.agent import VIDEO_TASKS

        if task in VIDEO_TASKS:  # the router ranks every video model (workflow.agent.route)
            opts.insert(0, (AUTO_LABEL, AUTO))
        current = self.model.value
        self.model.options = opts
        values = [v for _, v in opts]
        if values:
            self.model.value = current if current in values else (first or values[0])
        self._model_changed()

    def _model_changed(self) -> None:
        d = self._desc()
        self.route_panel.layout.display = "none"
        if getattr(self, "_busy", True) is False:  # the last run's outcome and shell hint were about another model
            self.message.value = ""
            self.cli_hint.value = ""
            self._refused = False
        if d is None:
            self.form.set_model(None)
            self.model_info.value = ""
            self._update_state()
            return
        if d["name"] == AUTO:
            self._auto_chosen(d)
            return
        needs = ", ".join(d.get("requires") or []) or "nothing"
        w = d.get("weights")
        if d.get("checkpoint"):
            also = d.get("also_loads") or []
            wtxt = (f"local checkpoint <code>{html.escape(d['checkpoint_label'])}</code> (model_id), run as "
                    f"<b>{html.escape(d['name'])}</b>" + (f"; also loads as {html.escape(', '.join(also))}" if also else ""))
        elif d.get("hosted"):
            wtxt = hosted_info_html(d)
        elif not w:
            wtxt = "model-free (runs anywhere)"
        else:
            wtxt = f"weights <code>{html.escape(str(w))}</code> " + (
                "present" if d.get("weights_available") else
                "<b style='color:#b00020'>missing</b>: <code>workbench weights fetch "
                f"{html.escape(d['name'])}</code> on a machine with network")
        self.model_info.value = (f"<div style='color:#444;font-size:12px;line-height:1.4;margin:2px 0 4px 0'>{html.escape(d.get('description', ''))}<br>"
                                 f"needs: <b>{html.escape(needs)}</b> &middot; {wtxt}</div>")
        self.form.set_model(d["cls"], self._carried_params(d))
        self._entry = self.model.value
        self.options_box.layout.display = None if d.get("options") else "none"
        self._check_options()
        self._mark_unused(d)
        self.image.choice.description = "video" if d["task"] == "video-to-video" else "image"
        self._update_state()

    def _mark_unused(self, d: dict[str, Any] | None) -> None:
        """Every input stays on screen and in the case (a case is what the user gave, whichever model runs
        on it); one the chosen model does not take is marked so, beside it."""
        name = str((d or {}).get("name", ""))
        for inp in (self.image, self.audio):
            inp.layout.display = None
            unused = d is not None and d.get("name") != AUTO and not _takes(d, inp.kind)
            what = "an image" if inp.kind == "image" else "audio"
            how = (f"{name} is not driven by the audio (it sets only the clip's length and soundtrack)"
                   if inp.kind == "audio" and d is not None and d.get("accepts") is None else f"{name} does not take {what}")
            inp.mark_unused(f"{how}: it stays part of the case, so this model's clips share a row with the models "
                            f"that take it" if unused else "")
        for box, kind, hint in ((self.prompt, "prompt", "what should happen in the clip"),
                                (self.negative, "negative_prompt", "what to avoid")):
            box.disabled = False
            unused = d is not None and d.get("name") != AUTO and not _takes(d, kind)
            box.placeholder = f"{hint} ({name} takes no {kind.replace('_', ' ')}; kept in the case)" if unused else hint

    def _carried_params(self, d: dict[str, Any]) -> dict[str, Any]:
        """The values the new model's form starts from: a local checkpoint's folder as model_id; a model_id
        the user typed for the model before (kept across a switch of model)."""
        if d.get("checkpoint"):  # and what the checkpoint suggests (a tiny one: the smallest request)
            return {**self._checkpoint_defaults(d), "model_id": d["checkpoint_label"]}
        f = self.form.fields.get("model_id")
        before = self.catalogue.get(getattr(self, "_entry", None) or "")
        if f is None or "model_id" not in (d.get("defaults") or {}) or before is None:
            return {}
        typed = str(f.widget.value).strip()
        set_by_entry = before.get("checkpoint_label")  # not typed: it came with the checkpoint entry
        if typed and typed != f.default and typed != set_by_entry:
            return {"model_id": typed}
        return {}

    @staticmethod
    def _checkpoint_defaults(d: dict[str, Any]) -> dict[str, Any]:
        """A local checkpoint's own defaults over its family's (`diffusers_pipeline.local_defaults`)."""
        spec = getattr(d["cls"], "spec", None)
        if spec is None:
            return {}
        try:
            from workbench.models.diffusers_pipeline import local_defaults

            return {k: v for k, v in local_defaults(spec, d["checkpoint"]).items() if k in (d.get("defaults") or {})}
        except Exception:
            return {}

    def _auto_chosen(self, d: dict[str, Any]) -> None:
        """`auto`: every input shown, the router's proposals above them, the pick's parameters in the form."""
        self.model_info.value = f"<div style='color:#444;font-size:12px'>{html.escape(d['description'])}</div>"
        self.form.set_model(None)
        self.options_box.layout.display = "none"
        self._check_options()
        self._mark_unused(None)
        self.image.choice.description = "image"
        self.route_panel.layout.display = None
        self._update_state()

    def routes(self) -> list:
        """The router's ranked proposals for the current inputs (what `auto` will run: the first usable)."""
        audio = self.audio.path
        speech = self.audio.speech is not None and audio is None
        element = self.image.element
        snippet = element.element.prompt if element is not None and element.element is not None else ""
        prompt = ", ".join(p for p in (self.prompt.value.strip(), snippet) if p)
        return self.router.routes(self.image.path if not self.image.error else None, audio, prompt, speech)

    def _refresh_route(self) -> None:
        """Show the proposals for the inputs now; the form follows the model Run would use."""
        if self.model.value != AUTO or self._routing:
            return
        self._routing = True
        try:
            routes = self.routes()
            self.route_panel.value = routes_html(routes)
            usable = [r for r in routes if r.usable]
            cls = self.catalogue[usable[0].model]["cls"] if usable and usable[0].model in self.catalogue else None
            if self.form.model is not cls:
                self.form.set_model(cls)
        except Exception as e:  # routing must not take the tab down: say why in place
            self.route_panel.value = f"<span style='color:#b00020'>auto: {html.escape(one_line(e))}</span>"
        finally:
            self._routing = False

    def _image_changed(self) -> None:
        """An Element with a voice of its own speaks with it (the voice box follows, still editable)."""
        element = self.image.element
        voice = element.element.voice if element is not None and element.element is not None else None
        if voice:
            self.audio.voice.value = f"{voice['engine']}:{voice['voice']}"
        self._update_state()

    def options_value(self) -> dict[str, Any]:
        """The run options typed in (a JSON object; empty: none). ValueError with one line when invalid."""
        text = self.options.value.strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"options: not valid JSON ({e.msg}); write e.g. {{\"dtype\": \"bf16\"}}") from None
        if not isinstance(value, dict):
            raise ValueError("options: write a JSON object, e.g. {\"dtype\": \"bf16\"}")
        return value

    def _check_options(self) -> None:
        """Refuse bad run options in place, with the model's own check (`resolve_options`)."""
        self.options_error = None
        d = self.catalogue.get(self.model.value)
        options: dict[str, Any] = {}
        if d is not None and d.get("options") and self.options.value.strip():
            try:
                d["cls"].resolve_options(self.options_value())
                options = self.options_value()
            except Exception as e:
                self.options_error = one_line(e)
        self.form.set_run_options(options)  # the model_id check applies the run's allow_pickle rule
        self.options_note.value = ("" if not self.options_error else
                                   f"<span style='color:#b00020'>\u2716 {html.escape(self.options_error)}</span>")
        self._update_state()

    def warm_up(self) -> bool:
        """Load, in the background, what the chosen metrics need (torch, face models, first frames)."""
        return self.warmup.start(list(self.metrics.value))

    def _warm_changed(self) -> None:
        text = self.warmup.text
        self.warm_note.value = (f"<span style='color:#777;font-size:11px'>{html.escape(text)}</span>" if text else "")

    def _outputs_changed(self) -> None:
        if getattr(self, "_warm", False):
            self.warm_up()  # new metrics may need more (face models)
        note = weights_note(list(self.metrics.value))
        self.metrics_note.value = f"<div style='color:#8a6d00;font-size:11px;line-height:1.3'>{note}</div>" if note else ""
        n, _ = parse_outputs(self.outputs.value)
        self.best_of.update(n or 1, list(self.metrics.value))  # calls _update_state

    def _update_state(self) -> None:
        """Check the whole form now: each bad value's reason beside its field (the parameter form and
        the inputs do their own), all of them at the Run button, which stays disabled while any stands."""
        if getattr(self, "_busy", None) is None:  # still building
            return
        self._refresh_route()
        seed_errs = seed_problems(self.seeds.value)
        _, out_err = parse_outputs(self.outputs.value)
        field_errs = seed_errs + ([out_err] if out_err else [])
        self.seeds_note.value = "".join(f"<div style='color:#b00020'>\u2716 {html.escape(e)}</div>" for e in field_errs)
        problems = self.problems()
        self.run_note.value = self.cost_note() + ("" if not problems else (
            "<div style='color:#b00020;font-size:12px;line-height:1.4'><b>Run waits for "
            f"{len(problems)} fix{'es' if len(problems) > 1 else ''}:</b>"
            + "".join(f"<div>\u2716 {html.escape(p)}</div>" for p in problems) + "</div>"))
        self.run_btn.disabled = self._busy or bool(problems)
        self.run_btn.tooltip = "; ".join(problems) if problems else "run the jobs"
        if not problems and getattr(self, "_refused", False):
            self.message.value = ""  # an old refusal goes once its causes are fixed
            self._refused = False

    # -- the suite ---------------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Why the form cannot run now (empty list: it can)."""
        out = []
        d = self._desc()
        if d is None:
            return ["pick a model"]
        for inp in (self.image, self.audio):
            if inp.error:
                out.append(inp.error)
        needs = set(d.get("requires") or [])
        if d.get("hosted") and not d.get("key_present") and not d["cls"].weights_available():
            out.append(f"{d['name']} runs on {d.get('provider_title')} and needs an API key: set {d.get('key_env')} "
                       f"in the environment of this kernel (see `workbench providers check`)")
        if d.get("weights") and not d.get("weights_available") and "model_id" not in self.form.overrides() \
                and "model_id" not in self.form.errors:
            out.append(f"{d['name']}: weights {d['weights']} are not on this machine; run `workbench weights fetch "
                       f"{d['name']}` on a machine with network, set model_id to a local folder, or pick a local checkpoint")
        if "image" in needs and self.image.path is None:
            out.append(f"{d['name']} needs an image: pick a sample, upload one or type a path")
        if "audio" in needs and self.audio.path is None and self.audio.speech is None:
            out.append(f"{d['name']} needs audio: pick a sample, upload one, type a path or words to speak")
        if "prompt" in needs and not self.prompt.value.strip():
            out.append(f"{d['name']} needs a prompt")
        for name, err in self.form.errors.items():
            out.append(f"parameter {name}: {err}" if name != ParamForm.WHOLE else err)
        out.extend(seed_problems(self.seeds.value))
        _, out_err = parse_outputs(self.outputs.value)
        if out_err:
            out.append(out_err)
        if getattr(self, "options_error", None):
            out.append(self.options_error)
        if self.best_of.error:
            out.append(self.best_of.error)
        if d["name"] == AUTO:
            why = no_route_problem(self.routes())
            if why:
                out.append(why)
            d = self.catalogue.get(self.form.model.name) if self.form.model is not None else None
        if not out and d is not None:  # the model's own check of this request, before anything loads
            from types import SimpleNamespace

            case = self.suite_dict()["cases"][0]
            req = SimpleNamespace(image=case.get("image"), audio=case.get("audio") or case.get("text"),
                                  prompt=case.get("prompt", ""),
                                  negative_prompt=case.get("negative_prompt", ""), params=self.form.overrides())
            try:
                d["cls"].check_request(req, strict=False)  # as the run: inputs the model does not take go unused
            except Exception as e:
                out.append(one_line(e))
        return out

    def cost_estimate(self) -> dict[str, Any] | None:
        """For a hosted model: {"per_clip", "clips", "total", "currency", "rule"} of what Run would cost
        (the price rule, the form's parameters, the audio's length); None for local models."""
        d = self._desc()
        if d is None or not d.get("hosted"):
            return None
        cls = d["cls"]
        try:
            params = cls.resolve_params(self.form.overrides())
        except Exception:
            params = dict(cls.defaults)
        audio_s = None
        if _takes(d, "audio") and self.audio.path is not None:
            from workbench.experiment import _audio_seconds

            audio_s = _audio_seconds(str(self.audio.path))
        per_clip, rule = cls.estimate_cost(params, audio_seconds=audio_s)
        seeds = len(parse_seeds(self.seeds.value) or [0]) if not seed_problems(self.seeds.value) else 1
        outputs = (parse_outputs(self.outputs.value)[0] or 1)
        clips = seeds * outputs
        return {"per_clip": per_clip, "clips": clips, "total": None if per_clip is None else round(per_clip * clips, 4),
                "currency": rule.currency if rule else "USD", "rule": rule.describe() if rule else None}

    def cost_note(self) -> str:
        """One line above Run: the estimated cost of a hosted model's clips (empty for local models)."""
        try:
            est = self.cost_estimate()
        except Exception:  # an estimate must never break the form
            return ""
        if est is None:
            return ""
        if est["per_clip"] is None:
            what = "no price rule" if est["rule"] is None else "the length is not known yet"
            return f"<div style='color:#444;font-size:12px'>estimated cost: unknown ({html.escape(what)})</div>"
        n = est["clips"]
        return (f"<div class='wb-cost' style='color:#444;font-size:12px'>estimated cost: <b>{est['total']:.2f} "
                f"{html.escape(est['currency'])}</b> ({n} clip{'s' if n != 1 else ''} \u00d7 {est['per_clip']:.2f}; "
                f"{html.escape(est['rule'] or '')})</div>")

    def suite_dict(self) -> dict[str, Any]:
        """The form as a suite mapping (the YAML a `workbench run` would take)."""
        d = self._desc()
        # a case is what the user gave (image, speech or audio, prompts), whichever model runs on it: a model
        # that ignores part of it still belongs to it (its record says what it heard), so kenburns and puppet
        # on one portrait and one sentence are one case, one row. The same content is the same id in every run.
        image = self.image.path
        element = self.image.element if image else None
        audio = self.audio.path
        params = self.form.overrides()
        speech = self.audio.speech if audio is None else None
        prompt = self.prompt.value.strip()
        negative = self.negative.value.strip()
        case_id = make_case_id(image=image, audio=audio, speech=speech,
                               prompt=prompt, negative_prompt=negative,
                               element=None if element is None else element.name,
                               known=self.known_cases.ids())
        case: dict[str, Any] = {"id": case_id}
        if element is not None:
            case["image"] = element.reference  # the suite step uses its portrait and appends its prompt
        elif image:
            case["image"] = str(image)
        if audio:
            case["audio"] = str(audio)
        elif speech:
            # the runner synthesises it (cached), as for a suite; the voice as the speech module names it, so
            # `en-us` typed today and `espeak-ng:en-us` loaded from History tomorrow are one job
            case["text"], case["voice"] = speech[0], canonical_voice(speech[1])
        if prompt:
            case["prompt"] = prompt
        if negative:
            case["negative_prompt"] = negative
        model: dict[str, Any] = {"name": d["name"]}
        options = self.options_value() if d.get("options") else {}
        if options:
            model["options"] = options
        if isinstance(params.get("model_id"), str):  # a relative folder starts at the project root, as for the CLI
            from workbench.ui.checkpoints import resolve_model_id

            params["model_id"] = resolve_model_id(params["model_id"], self.runs_root.parent)
        if params:
            model["params"] = params
            digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:6]
            local = Path(params["model_id"]).name if str(params.get("model_id", "")).startswith("/") else ""
            stem = slug(f"{d['name']}-{local}" if local else d["name"], d["name"], MAX_NAME - 7)
            model["label"] = f"{stem}-{digest}"  # one label per setting: comparisons never merge them
        seeds = parse_seeds(self.seeds.value)
        outputs, _ = parse_outputs(self.outputs.value)
        outputs = outputs or 1
        if outputs > 1:
            model["num_outputs"] = outputs  # N clips per seed, seeds derived from the job's (the CLI's meaning)
        suite = {"name": slug(self.run_dir.name, "studio", ID_MAX), "description": "made in the Studio",
                 "cases": [case], "models": [model], "seeds": seeds,
                 "metrics": list(self.metrics.value) or None, "output": str(self.run_dir),
                 "tracking": {"wandb": bool(self.wandb.value), "html_report": False}}
        if element is not None and not element.in_default_library:
            suite["elements"] = str(element.root)  # `element:NAME` is looked up there
        suite.update(self.best_of.suite_entries() if outputs > 1 else {})
        return suite

    def write_suite(self) -> Path:
        run_dir = self.run_dir
        folder = run_dir / STUDIO_SUITES
        folder.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = folder / f"suite-{stamp}.yaml"
        data = self.suite_dict()
        path.write_text("# written by the Studio's Generate tab; run it again with: workbench run THIS_FILE\n"
                        + yaml.safe_dump(data, sort_keys=False))
        return path

    # -- running -----------------------------------------------------------------------------------------
    def run(self) -> bool:
        """Start the run in a worker thread; False (and the reason in the message line) when it cannot."""
        if self._busy:
            self.message.error("a run is already going; cancel it first")
            return False
        problems = self.problems()
        if problems:
            self._update_state()  # every reason beside its field and at the button
            self._refused = True
            self.message.error("; ".join(problems) if len(problems) < 4 else
                               "; ".join(problems[:3]) + f" (+{len(problems) - 3} more, listed above)")
            return False
        from workbench.experiment import Runner
        from workbench.suite import load_suite

        try:
            path = self.write_suite()
            suite = load_suite(path)
            self.runner = Runner(suite, callbacks=[self])
            if suite.tracking.wandb:
                from workbench.tracking import attach

                attach(self.runner)  # the CLI's W&B path
        except Exception as e:
            self.message.error(e)
            return False
        self.cli_hint.value = (f"<span style='color:#777;font-size:11px'>same run from a shell: "
                               f"<code>workbench run {html.escape(self._label(path))}</code></span>")
        case, root = suite.cases[0].id, self.runner.store.root
        row = next((r for r in self._rows if r["case"] == case and r["root"] == root), None)
        if row is not None:
            self._rows.remove(row)
        row = row or {"case": case, "root": root, "records": []}
        row["started"] = _dt.datetime.now()
        self._rows.insert(0, row)
        del self._rows[ROWS_KEPT:]
        self._older_rows = None
        self._run_ids = {j.id for j in self.runner.jobs}
        self._previewed: set[str] = set()
        self.message.info(f"starting {len(self.runner.jobs)} job(s) into {self._label(self.runner.store.root)}")
        self._busy = True
        self.run_btn.disabled = True
        self.cancel_btn.disabled = False
        runner = self.runner
        self.worker = Worker(lambda: runner.run_all(), on_error=self.message.error, on_done=self._done)
        self.worker.start()
        return True

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
            self.message.info("cancelling: the job in flight stops at its next step; finished clips stay")
            self.cancel_btn.disabled = True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run ends (for scripts and tests); True when it ended."""
        return self.worker.join(timeout) if self.worker is not None else True

    def _done(self) -> None:
        self._busy = False
        self.cancel_btn.disabled = True
        if any(r.get("status") == "scoring" for r in self._row):  # cancelled while scored: no record came
            self._rows[0]["records"] = [r for r in self._row if r.get("status") != "scoring"]
            self._render()
        self.step_bar.value = 0
        self.step_bar.description = "step"
        self._update_state()
        if self.on_finished is not None and self.runner is not None:
            try:
                self.on_finished(self.runner.store.root)
            except Exception:
                pass

    # -- Runner callbacks (worker thread) ---------------------------------------------------------------
    def on_run_start(self, jobs, todo) -> None:
        self.jobs_bar.max = max(1, len(todo))
        self.jobs_bar.value = 0
        done_ids = {j.id for j in jobs} - {j.id for j in todo}
        if done_ids:
            latest = self.runner.store.latest()
            for i in (j.id for j in jobs):
                if i in done_ids and i in latest:
                    self._put(latest[i])
            self._render()
        self.progress.value = (f"{len(todo)} to run" + (f", {len(jobs) - len(todo)} already in the store"
                                                        if len(jobs) != len(todo) else ""))

    def on_job_start(self, job, index, total) -> None:
        self.progress.value = f"job {index + 1}/{total}: {html.escape(job.name)}"
        self.step_bar.value = 0

    def on_step(self, job, stage, i, n) -> None:
        if stage == "evaluate" and job.id not in self._previewed:  # the clip is saved: show it while it is scored
            self._previewed.add(job.id)
            self._put({"job_id": job.id, "status": "scoring", "model": job.model.display, "model_name": job.model.name,
                       "seed": job.seed, "output": job.output,
                       "video": str((self.runner.store.clips / job.clip_name).relative_to(self.runner.store.root))})
            self._render()
        if not self._throttle.ready(force=(i == n)):
            return
        self.step_bar.max = max(1, n)
        self.step_bar.value = min(i, n)
        self.step_bar.description = stage[:8]

    def on_job_end(self, job, record) -> None:
        self.jobs_bar.value = self.jobs_bar.value + 1
        self._put(record)
        self._render()

    def on_run_end(self, records, cancelled) -> None:
        ok = sum(r.get("status") == "ok" for r in records)
        failed = len(records) - ok
        text = f"{ok} clip(s) done" + (f", {failed} failed (see the red cards)" if failed else "") + self._ranked()
        if cancelled:
            self.message.info(f"cancelled: {text}; the job in flight was dropped")
        elif failed:
            self.message.error(f"{text}")
        else:
            self.message.ok(f"{text} in {self._label(self.runner.store.root)}")
        self.progress.value = ""

    def _ranked(self) -> str:
        """After a best-of-N run: mark each clip's objective, rank and the kept take(s) (bestofn.json)."""
        runner = self.runner
        if runner is None or not (getattr(runner, "outputs", None) or {}).get("bestofn"):
            return ""
        try:
            marks = rank_marks(runner.store.root)
        except Exception as e:  # a corrupt file: say so, the clips stay
            return f"; ranking not shown ({one_line(e)})"
        self._marks.update(marks)
        self._older_rows = None  # marks of earlier rows' clips may change too
        self._render()
        kept = sum(1 for r in self._row if r.get("job_id") in self._run_ids
                   and (m := marks.get(r.get("job_id"))) is not None and m.kept)
        return f"; best of {self.best_of.n}: {kept} kept (marked kept)"

    # -- results -----------------------------------------------------------------------------------------
    @property
    def _row(self) -> list[dict[str, Any]]:
        """The records of the row being run into (the newest)."""
        return self._rows[0]["records"] if self._rows else []

    def _put(self, record: dict[str, Any]) -> None:
        """A finished job into the newest row (a job run again replaces its earlier card)."""
        row = self._row
        for i, r in enumerate(row):
            if r.get("job_id") == record.get("job_id"):
                row[i] = record
                return
        row.append(record)

    @staticmethod
    def _row_label(row: dict[str, Any]) -> str:
        """A row's case, its models and how many clips it holds."""
        records = row["records"]
        models = list(dict.fromkeys(str(r.get("model")) for r in records))
        n = len(records)
        return " \u00b7 ".join([f"case {row['case']}", *([", ".join(models)] if models else []),
                                 f"{n} clip{'s' if n != 1 else ''}"])

    def _render(self) -> None:
        dirs = directions()
        # one unit per score: the report's formatting over the run folder's records (what its report shows)
        shown = [r for row in self._rows for r in row["records"]]
        try:
            stored = list(self.runner.store.latest().values()) if self.runner is not None else []
        except Exception:
            stored = []
        infos = score_infos(stored + shown)
        units = tuple(sorted((k, i.unit_label) for k, i in infos.items()))
        rows = [{"label": self._row_label(row), "clips": self._items(row["records"], row["root"], dirs, infos)}
                for row in self._rows[:1]]
        # the rows of earlier runs do not change while this one runs: rendered (clips read) once, again only
        # when they change (a new run), a score's unit or the best-of-N marks change
        if self._older_rows is None or getattr(self, "_older_units", None) != units:
            self._older_rows = [{"label": self._row_label(row), "clips": self._items(row["records"], row["root"], dirs,
                                                                                     infos)}
                                for row in self._rows[1:]]
            self._older_units = units
        self.results.rows = rows + self._older_rows

    def _items(self, row: list[dict[str, Any]], root: Path, dirs: dict,
               infos: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The grid items of one row of records, the best value per score (over its finished jobs) starred."""
        best = best_in_row(row, dirs, infos) if len(row) > 1 else None
        return [self._item(r, root, dirs, best, self._marks, infos) for r in row]

    @staticmethod
    def _item(r: dict[str, Any], root: Path, dirs: dict, best: dict[str, set[str]] | None,
              marks: dict | None = None, infos: dict[str, Any] | None = None) -> dict[str, Any]:
        model = str(r.get("model"))
        if r.get("model_name") and not model.startswith(str(r["model_name"])):  # auto: say what it ran
            model += f" \u2192 {r['model_name']}"
        title = f"{model} \u00b7 seed {r.get('seed')}" + (f" \u00b7 #{r['output']}" if r.get("output") else "")
        mark = (marks or {}).get(r.get("job_id", ""))
        badge = "kept" if mark is not None and mark.kept else ""  # a kept take has its badge, not the star
        if r.get("status") == "scoring":  # made, not yet scored: the clip now, its scores when they come
            return clip_item(root / r["video"], title, caption="<div class='wb-scoring' style='color:#777'>"
                             "<i>scoring\u2026</i></div>", key=r.get("job_id", ""), badge=badge)
        if r.get("status") != "ok":
            return clip_item(None, title, error=str(r.get("error") or "failed"), status="error",
                             key=r.get("job_id", ""), badge=badge)
        cap = scores_caption(r, dirs, best, infos if infos is not None else score_infos([r]))
        cap += job_times_html(r)
        item = clip_item(root / r["video"], title, caption=(mark_caption(mark) if mark else "") + cap,
                         key=r.get("job_id", ""), badge=badge)
        if mark is not None:
            item.update(rank=mark.rank, objective=mark.objective, kept=mark.kept)
        return item

    # -- History -> Generate ----------------------------------------------------------------------------
    def load_settings(self, record: dict[str, Any], run_dir: Path | None = None) -> None:
        """Fill the form from a past record (model, parameters, inputs, prompt, seed, run folder)."""
        name = record.get("model_name") or record.get("model")
        d = self.catalogue.get(name)
        if d is None:
            self.message.error(f"model '{name}' of that record is not registered here")
            return
        self.task.value = d["task"]
        workflow = record.get("workflow") or {}
        routed = bool(workflow.get("route"))
        params = {k: v for k, v in (record.get("params") or {}).items() if k in d.get("defaults", {})}
        entry = name
        if not routed and isinstance(params.get("model_id"), str):  # a local checkpoint: its own entry
            for key, c in self.catalogue.items():
                if c.get("checkpoint") and c["name"] == name and str(c["checkpoint"]) == params["model_id"]:
                    entry = key
                    params["model_id"] = c["checkpoint_label"]
        self.model.value = AUTO if routed and AUTO in (v for _, v in self.model.options) else entry
        self.form.set_model(d["cls"], params)
        inputs = record.get("inputs") or {}
        element = (workflow.get("element") or {}).get("name")
        if not (element and self.image.select_element(element)):
            self.image.set_path((inputs.get("image") or {}).get("path"))
        speech = workflow.get("speech") or {}
        if speech.get("text"):  # spoken words: the words and voice typed, not the cached wav
            self.audio.path_box.value = ""
            self.audio.choice.value = self.audio.SPEAK
            self.audio.words.value = str(speech["text"])
            self.audio.voice.value = str(speech.get("voice") or "en-us")
        else:
            self.audio.set_path((inputs.get("audio") or {}).get("path"))
        self.prompt.value = self._typed_prompt(record.get("prompt") or "")
        self.negative.value = record.get("negative_prompt") or ""
        self.seeds.value = str(int(record.get("seed") or 0))
        defaults = d.get("options") or {}
        chosen = {k: v for k, v in (record.get("options") or {}).items() if defaults.get(k, object()) != v}
        self.options.value = json.dumps(chosen) if chosen else ""
        self.outputs.value = "1"
        if run_dir is not None:
            self.run_dir_box.value = self._label(run_dir)
        self._update_state()
        self.message.info(f"settings of {record.get('case')} / {record.get('model')} / seed {record.get('seed')} loaded")

    def _typed_prompt(self, prompt: str) -> str:
        """A record's prompt without the chosen Element's snippet (the suite step appends it again)."""
        element = self.image.element
        snippet = element.element.prompt if element is not None and element.element is not None else ""
        if snippet and prompt == snippet:
            return ""
        return prompt[: -len(snippet) - 2] if snippet and prompt.endswith(", " + snippet) else prompt
