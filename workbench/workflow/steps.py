"""The creative workflow inside a suite: the steps the Runner calls before and after its jobs.

Before (while expanding jobs):
- `resolve_case`: a case's `image: element:NAME` becomes the Element's reference portrait (the
  generator's input; identity then compares every frame with the Element's stored face embedding,
  which the Runner passes as `face_reference`), its prompt snippet is appended to
  the case prompt, and `text:` + `voice:` become a cached speech wav (voice: the case's, else the
  Element's default voice, else en-us). The wav's bytes enter the job id like any audio file.
- the prompt enhancer (`workflow.enhance`): a case with `enhance: true` (or `enhance: MODEL`) runs the
  prompt its model family reads best (template, or the local language model in $WORKBENCH_PROMPT_LM)
  with the family's recommended negative prompt; the record keeps `prompt_original` and
  `prompt_source` ("template:wan", "lm:<folder>") under `workflow.enhance`. `true` writes for each
  job's own model family (`for_model`: a Wan prompt for Wan, an LTX one for LTX, recorded per job);
  `enhance: MODEL` writes every job's prompt for MODEL's family.
- `resolve_auto`: a model entry named `auto` becomes the router's first usable model for the case,
  with the reasons kept for the record.

After (when every job has run): `after_run` ranks best-of-N samples by the suite's objective into
`bestofn.json` and, with a `compose:` block, joins the chosen clips into one mp4 in the run folder
(`compose.json` says what went in, or why it failed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench import hooks
from workbench.experiment import Runner, hears_audio, unheard_audio  # noqa: F401  (re-exported: the Runner's own rule)
from workbench.metrics.base import FaceReference
from workbench.metrics.registry import UnknownMetric, resolve
from workbench.models.base import UnknownModel, get_generator, registry
from workbench.speech import SpeechError, parse_voice, synthesize
from workbench.store import write_json_atomic
from workbench.suite import CaseSpec, ModelSpec, Suite
from workbench.workflow.agent import Inputs, route
from workbench.workflow.bestofn import Objective, ObjectiveError, best_records, write_rankings
from workbench.workflow.compose import Segment, TitleCard, compose
from workbench.workflow.elements import ElementError, ElementLibrary, is_reference, resolve_reference
from workbench.workflow.enhance import EnhanceError, enhance_prompt

AUTO = "auto"


@hooks.register("resolve_case")
def resolve_case(suite: Suite, case: CaseSpec, enhance: bool = True) -> tuple[CaseSpec, dict[str, Any], str | None]:
    """(the case with concrete inputs, what was resolved for the record, an error or None).

    On an error the returned case still says which inputs it will have (so model fit is judged the
    same way) and the error becomes the jobs' setup error: one bad Element fails its own jobs only.
    `enhance=False` leaves the prompt as written: the Runner enhances it per model (`for_model`)."""
    update: dict[str, Any] = {}
    info: dict[str, Any] = {}
    error = None
    element = None
    if is_reference(case.image):
        try:
            element = resolve_reference(case.image, suite.element_library())
            update["image"] = str(element.reference_image.resolve())
            info["element"] = {"name": element.name, "kind": element.kind, "image_sha256": element.image_sha256[0],
                               "embedding_backend": element.embedding_backend}
            if element.prompt:
                update["prompt"] = f"{case.prompt}, {element.prompt}" if case.prompt else element.prompt
            if element.negative_prompt and not case.negative_prompt:
                update["negative_prompt"] = element.negative_prompt
        except ElementError as e:
            error = f"case {case.id}: {e}"
            update["image"] = f"{case.image}.png"  # a placeholder: the job fails with `error`
    wanted = getattr(case, "enhance", None)  # the case field (suite.CaseSpec); absent on older suites
    if wanted and enhance:
        problem = _enhance(suite, case, wanted, update, info)
        error = error or problem
    if case.text is not None:
        voice = case.voice or (element.voice if element is not None and element.voice else None)
        try:
            speech = synthesize(case.text, voice)
            update["audio"] = str(speech.path.resolve())
            info["speech"] = {"text": case.text, "voice": str(speech.voice), "key": speech.key,
                              "engine_version": speech.engine_version}
            if speech.cost is not None:  # a hosted voice (ElevenLabs): what it cost, 0 charged when cached
                info["speech"]["cost"] = speech.cost
        except SpeechError as e:
            error = error or f"case {case.id}: {e}"
            update["audio"] = f"speech-{case.id}.wav"  # a placeholder: the job fails with `error`
    return (case.model_copy(update=update) if update else case), info, error


@hooks.register("for_model")
def for_model(suite: Suite, case: CaseSpec, model: ModelSpec, extra: dict[str, Any],
              error: str | None) -> tuple[CaseSpec, dict[str, Any], str | None]:
    """The case as `model` runs it: with `enhance:` on, the prompt (and negative prompt) written for this
    model's own family (`enhance: MODEL`: for MODEL's family), recorded per job under
    `workflow.enhance`; otherwise the case unchanged. `extra` and `error` come from `resolve_case`."""
    wanted = getattr(case, "enhance", None)
    if not wanted or error:
        return case, extra, error
    update: dict[str, Any] = {}
    info = dict(extra)
    problem = _enhance(suite, case, wanted, update, info, model=model.name)
    return (case.model_copy(update=update) if update else case), info, problem


def enhance_model(suite: Suite, enhance: bool | str, model: str | None = None) -> str:
    """The model whose family an `enhance:` value means: a named model; else `model` (the job's own,
    so each model of a suite gets its own family's prompt); else the suite's first model that reads
    prompts (the first model when none does)."""
    if isinstance(enhance, str) and enhance not in ("true", "auto"):
        return enhance
    if model is not None:
        return model
    models = registry()
    names = [m.name for m in suite.models if m.name in models]
    for name in names:
        cls = models[name]
        if "prompt" in (cls.accepts if cls.accepts is not None else cls.requires):
            return name
    return names[0] if names else "kenburns"


def _enhance(suite: Suite, case: CaseSpec, enhance: bool | str, update: dict[str, Any],
             info: dict[str, Any], model: str | None = None) -> str | None:
    """Enhance the case's prompt (after an Element's snippet) into `update`, its provenance into `info`
    (for `model`'s family when given, see `enhance_model`)."""
    prompt = update.get("prompt", case.prompt)
    negative = update.get("negative_prompt", case.negative_prompt)
    try:
        result = enhance_prompt(prompt, enhance_model(suite, enhance, model), negative)
    except (EnhanceError, UnknownModel) as e:
        return f"case {case.id}: enhance: {e}"
    update["prompt"], update["negative_prompt"] = result.prompt, result.negative_prompt
    info["enhance"] = result.to_record()
    return None


@hooks.register("resolve_model")
def resolve_auto(case: CaseSpec, model: ModelSpec, suite: Suite) -> tuple[ModelSpec, dict[str, Any] | None, str | None]:
    """An `auto` entry -> (the routed ModelSpec labelled `auto` or its label, the route, error)."""
    if model.name != AUTO:
        return model, None, None
    image = suite.resolve(case.image)
    audio = suite.resolve(case.audio)
    try:
        inputs = Inputs.from_paths(image if image and image.is_file() else None,
                                   audio if audio and audio.is_file() else None, case.prompt)
    except Exception:  # an unreadable image: route on what is known; the job reports the file
        inputs = Inputs(str(image) if image else None, str(audio) if audio else None, case.prompt)
    routes = [r for r in route(inputs) if not r.model.startswith("test-")]
    usable = [r for r in routes if r.usable]
    if not usable:
        why = "; ".join(f"{r.model}: {r.reasons[0]}" for r in routes[:3] if r.reasons)
        return model, None, f"auto: no model here fits case {case.id} ({why})"
    chosen = usable[0]
    known = get_generator(chosen.model).defaults
    params = {k: v for k, v in model.params.items() if k in known}
    spec = model.model_copy(update={"name": chosen.model, "label": model.label or AUTO, "params": params})
    dropped = sorted(set(model.params) - set(params))
    note = {"model": chosen.model, "reasons": chosen.reasons, "alternatives": [r.model for r in usable[1:4]],
            "dropped_params": dropped}
    return spec, note, None


@hooks.register("after_run")
def after_run(runner: Runner) -> dict[str, Path]:
    """Best-of-N rankings and the composed output of a finished suite run. Returns the files written."""
    suite = runner.suite
    objective = suite.effective_objective()
    if objective is None and suite.compose is None:
        return {}
    latest = runner.store.latest()
    records = [latest[j.id] for j in runner.jobs if j.id in latest]
    out: dict[str, Path] = {}
    if objective is not None and records:
        keep = suite.best_of.keep if suite.best_of else 1
        n = suite.best_of.n if suite.best_of else None
        out["bestofn"] = write_rankings(runner.store.root, records, objective, keep=keep, n=n)
    if suite.compose is not None:
        spec = suite.compose
        path = runner.store.root / spec.out
        info: dict[str, Any] = {"out": spec.out, "clips": spec.clips}
        try:
            if spec.clips == "best":
                chosen = best_records(records, objective)
            else:
                chosen = [r for r in records if r.get("status") == "ok" and r.get("video")]
            if not chosen:
                raise ValueError("no finished clip to compose")
            segments = [Segment(runner.store.root / r["video"],
                                caption=r["case"] if spec.captions else None) for r in chosen]
            result = compose(segments, path, fps=spec.fps, size=tuple(spec.size) if spec.size else None,
                             crossfade=spec.crossfade, title=TitleCard(spec.title, spec.title_seconds) if spec.title else None)
            info.update(result.to_dict(), jobs=[r["job_id"] for r in chosen], error=None)
            out["compose"] = path
        except Exception as e:  # the jobs are done and saved; a failed composition is reported, not raised
            info.update(error=f"{type(e).__name__}: {e}".splitlines()[0])
        out["compose_log"] = write_json_atomic(runner.store.root / "compose.json", info, indent=1, default=str)
    return out


@hooks.register("suite_check", order=10)
def workflow_problems(suite: Suite) -> list[str]:
    """Elements that do not load, voices that do not parse, an objective that is not well defined or
    asks for scores the suite does not compute (workbench.workflow)."""
    problems: list[str] = []
    for i, case in enumerate(suite.cases):
        if case.image and case.image.startswith("element:"):
            try:
                resolve_reference(case.image, suite.element_library())
            except ElementError as e:
                problems.append(f"cases.{i}.image: {e}")
        if isinstance(case.enhance, str) and case.enhance not in ("true", "auto"):
            known = sorted(registry())
            if case.enhance not in known:
                from difflib import get_close_matches

                close = get_close_matches(case.enhance, known, n=3, cutoff=0.5)
                close += [k for k in known if case.enhance.lower() in k and k not in close][:3 - len(close)]
                hint = f"did you mean {', '.join(close)}? " if close else ""
                problems.append(f"cases.{i}.enhance: unknown model '{case.enhance}' (the family to write the prompt "
                                f"for); {hint}use true (each model's own family) or a name from `workbench models`")
        if case.voice is not None:
            try:
                parse_voice(case.voice)
            except SpeechError as e:
                problems.append(f"cases.{i}.voice: {e}")
    for key, spec in (("objective", suite.objective),
                      ("best_of.objective", suite.best_of.objective if suite.best_of else None)):
        if spec is None:
            continue
        try:
            obj = Objective.parse(spec)
        except ObjectiveError as e:
            problems.append(f"{key}: {e}")
            continue
        if suite.metrics is not None:
            try:
                _, wanted = resolve(suite.metrics)
            except UnknownMetric:
                continue  # reported under metrics
            absent = [m for m in obj.metrics if m not in wanted]
            if absent:
                problems.append(f"{key}: uses {', '.join(absent)}, which `metrics:` does not compute; add it there")
    return problems


@hooks.register("objective")
def objective(spec: Any) -> Objective:
    """The suite's best-of-N objective, parsed (each finished record gets its value)."""
    return Objective.parse(spec)


hooks.register("element_library")(ElementLibrary)


@hooks.register("face_reference")
def element_face(suite: Suite, name: str) -> FaceReference | None:
    """The stored face embedding of Element `name` (a character), for identity; None when it has none."""
    library = suite.element_library() or ElementLibrary()
    try:
        loaded = library.load(name)
    except ElementError:
        return None  # scored against the reference image, as without an Element
    if loaded.embedding is None:
        return None
    return FaceReference(loaded.embedding, str(loaded.embedding_backend))
