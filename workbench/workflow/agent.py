"""The agent: route a request to models, turn a brief into a plan, and refine by search.

- `route(inputs)`: from what the researcher brings (an image with or without a face, audio or not, a
  prompt, a target length) and what this machine has (each model's weights, a GPU or not), every
  registered video model, ranked, each with the reasons for its place. Explainable rules, no learning.
- `plan_brief("a product shot of this bottle, slow turn, 4 seconds", image=...)`: a `Plan` (task,
  model, prompt, parameters, speech) made by offline rules; a language model can refine it behind
  the `PlannerLM` interface (`TransformersPlannerLM` when local weights are present). The plan is data:
  shown first (`workbench plan ... --json`), run on request (`--run`) as a one-case suite.
- `refine(...)`: successive halving over a parameter grid and seeds within a budget of generations.
  Every generation is an ordinary job of the Runner (a record in the run folder's results.jsonl); the
  search's own log (rounds, arms, means, what was kept and why it stopped) goes to refine.json.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from workbench.experiment import Runner
from workbench.faces import detect_faces, dlib_available
from workbench.media import load_image
from workbench.models import get_generator, registry
from workbench.models.base import GenerationError
from workbench.names import slug
from workbench.speech import SpeechError, parse_voice
from workbench.store import write_json_atomic
from workbench.suite import Suite, SuiteError, _first_error, check_suite, load_suite
from workbench.workflow.bestofn import Objective
from workbench.workflow.enhance import enhance_prompt

VIDEO_TASKS = ("audio-to-video", "image-to-video", "text-to-video")
PLANNER_ENV = "WORKBENCH_PLANNER_LM"


class PlanError(ValueError):
    """A brief cannot be planned or a plan cannot run; one line saying why and the fix."""


# --------------------------------------------------------------------------------------------------
# inputs and what this machine has
# --------------------------------------------------------------------------------------------------
@dataclass
class Inputs:
    """What a request brings. `has_face` is found with dlib when an image is given."""

    image: str | None = None
    audio: str | None = None
    prompt: str = ""
    seconds: float | None = None
    speech: bool = False  # speech will be synthesised from text (counts as audio)
    has_face: bool | None = None

    @classmethod
    def from_paths(cls, image: str | Path | None = None, audio: str | Path | None = None, prompt: str = "",
                   seconds: float | None = None, speech: bool = False) -> "Inputs":
        has_face = None
        if image is not None:
            arr = load_image(image, max_side=512)
            has_face = bool(detect_faces(arr)) if dlib_available() else None
        return cls(str(image) if image else None, str(audio) if audio else None, prompt or "", seconds, speech,
                   has_face)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio) or self.speech


def gpu_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


@dataclass
class Route:
    model: str
    task: str
    score: float
    fits: bool  # the inputs suit it
    available: bool  # it can run here (weights present, GPU when it needs one)
    reasons: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.fits and self.available

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "usable": self.usable}


# small priors for the model-free baselines, stated where they apply
BASELINE_NOTES = {
    "static": (-1.0, "holds the image still: a reference point, not a result"),
    "kenburns": (0.0, "model-free camera move over the still"),
    "puppet": (0.0, "model-free talking head (jaw follows the speech envelope)"),
}


def route(inputs: Inputs, gpu: bool | None = None, models: Mapping[str, Any] | None = None) -> list[Route]:
    """Every video model ranked for these inputs on this machine: usable ones first, best first."""
    gpu = gpu_available() if gpu is None else gpu
    models = registry() if models is None else models
    out = []
    for name, cls in models.items():
        task = getattr(cls, "task", "")
        if task not in VIDEO_TASKS:
            continue
        reasons: list[str] = []
        score, fits, available = 0.0, True, True
        have = {"image": bool(inputs.image), "audio": inputs.has_audio, "prompt": bool(inputs.prompt)}
        missing = [k for k in sorted(cls.requires) if not have.get(k, False)]
        if missing:
            fits = False
            reasons.append(f"needs {', '.join(missing)}; none given")
        if cls.needs_params:
            fits = False
            reasons.append(f"needs params.{', params.'.join(cls.needs_params)} set in a suite; not routed")
        accepts = cls.accepts if cls.accepts is not None else frozenset(cls.requires) | {"audio"}
        if task == "audio-to-video":
            if inputs.has_audio and inputs.image:
                if inputs.has_face is False:
                    fits = False
                    reasons.append("no face in the image: a talking-head model has nothing to animate")
                else:
                    score += 3
                    reasons.append("speech and a face: a talking-head model makes the lips follow the audio")
        elif task == "image-to-video":
            if inputs.image:
                score += 2
                reasons.append("animates the given image")
                if inputs.has_audio and inputs.has_face:
                    score -= 1
                    reasons.append("ignores the speech for the lips (a talking-head model fits better)")
        elif task == "text-to-video":
            if inputs.image:
                score -= 1
                reasons.append("does not take the image (text only)")
            elif inputs.prompt:
                score += 2
                reasons.append("makes a video from the prompt alone")
        if inputs.prompt and "prompt" in accepts:
            score += 0.5
            reasons.append("follows the prompt")
        elif inputs.prompt:
            reasons.append("does not read the prompt")
        if callable(getattr(cls, "provider_info", None)):  # hosted: runs where its provider's key is set
            provider = cls.provider_info()
            if not cls.weights_available():
                available = False
                reasons.append(f"hosted by {provider.title}: needs {provider.key_env} (not set)")
            else:
                score += 1.0
                reasons.append(f"hosted by {provider.title} ({provider.key_env} set): billed per clip "
                               "(`workbench run SUITE --dry-run` estimates it)")
        elif cls.weights is None:
            prior, note = BASELINE_NOTES.get(name, (0.0, "model-free"))
            score += prior
            reasons.append(f"runs anywhere, no weights ({note})")
        else:
            if not cls.weights_available():
                available = False
                reasons.append(f"weights {cls.weights} not on this machine (`workbench weights fetch {name}`)")
            if not gpu:
                available = False
                reasons.append("needs a GPU (none here): a diffusion model takes hours per clip on CPU")
            if available:
                score += 1.5
                reasons.append("learned model with weights and a GPU here: expected to beat the baselines")
        if inputs.seconds and "seconds" not in cls.defaults and "num_frames" not in cls.defaults:
            reasons.append("its length is fixed by the audio or the model")
        out.append(Route(name, task, round(score, 3), fits, available, reasons))
    out.sort(key=lambda r: (not r.usable, not r.fits, -r.score, r.model))
    return out


# --------------------------------------------------------------------------------------------------
# briefs -> plans
# --------------------------------------------------------------------------------------------------
LANGUAGES = {  # language named in a brief -> espeak-ng voice
    "english": "en-us", "british": "en-gb", "german": "de", "french": "fr-fr", "spanish": "es",
    "italian": "it", "portuguese": "pt", "dutch": "nl", "polish": "pl", "russian": "ru", "japanese": "ja",
    "chinese": "cmn", "mandarin": "cmn", "hindi": "hi", "arabic": "ar", "turkish": "tr", "swedish": "sv",
    "korean": "ko", "greek": "el", "czech": "cs", "finnish": "fi", "danish": "da", "norwegian": "nb",
}


@dataclass
class Plan:
    brief: str
    task: str
    model: str
    prompt: str
    params: dict[str, Any]
    image: str | None = None
    audio: str | None = None
    seconds: float | None = None
    speech: dict[str, str] | None = None  # {"text": ..., "voice": ...} when speech is synthesised
    routes: list[dict[str, Any]] = field(default_factory=list)  # the top alternatives with reasons
    reasons: list[str] = field(default_factory=list)  # why each choice was made
    planner: str = "rules"
    negative_prompt: str = ""
    prompt_original: str | None = None  # the brief's words before the enhancer (None: not enhanced)
    prompt_source: str = "brief"  # "brief", "template:<family>", "lm:<id>", "planner:<lm>"
    has_face: bool | None = None  # the image shows a face (None: not known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def name(self) -> str:
        """A suite name for this plan: the brief's first words and a digest of the brief and inputs."""
        blob = json.dumps([self.brief, self.image, self.audio], ensure_ascii=False).encode()
        words = slug(" ".join(self.brief.split()[:5]).lower(), "brief", 40).rstrip("-._") or "brief"
        return f"plan-{words}-{hashlib.sha256(blob).hexdigest()[:6]}"

    def to_suite(self, name: str | None = None, seeds: Sequence[int] = (0,), output: str | Path | None = None,
                 metrics: list[str] | None = None) -> dict[str, Any]:
        """A one-case suite (a dict for `Suite.model_validate` or a YAML file) that carries the plan out:
        name, cases, models, seeds and metrics all written out, so the file can be edited and re-run.
        Speech from the brief is a `text:` + `voice:` case (synthesised and cached by the run)."""
        case: dict[str, Any] = {"id": "brief", "prompt": self.prompt}
        if self.negative_prompt:
            case["negative_prompt"] = self.negative_prompt
        if self.image:
            case["image"] = str(Path(self.image).expanduser().resolve())
        if self.audio:
            case["audio"] = str(Path(self.audio).expanduser().resolve())
        elif self.speech:
            case.update(text=self.speech["text"], voice=self.speech["voice"])
        model: dict[str, Any] = {"name": self.model}
        if self.params:
            model["params"] = dict(self.params)
        suite: dict[str, Any] = {
            "name": name or self.name, "description": f"planned from the brief: {self.brief}",
            "cases": [case], "models": [model], "seeds": [int(x) for x in seeds],
            "metrics": list(metrics) if metrics is not None else default_metrics(
                image=bool(self.image) and self.has_face is not False, audio=bool(self.audio or self.speech),
                task=self.task)}
        if output is not None:
            suite["output"] = str(output)
        return suite


OFFLINE_METRICS = ["temporal_flicker", "warp_error", "motion_smoothness", "dynamic_degree"]


def default_metrics(image: bool, audio: bool, task: str = "image-to-video") -> list[str]:
    """The metric groups a one-case suite scores by default: what runs offline and fits its inputs
    (temporal and motion always; identity with an image of a face; lip-sync with speech)."""
    if task == "text-to-image":
        return ["identity"] if image else ["temporal_flicker"]
    out = list(OFFLINE_METRICS)
    if image:
        out.append("identity")
    if audio:
        out.append("lipsync")
    return out


SUITE_FILE = "suite.yaml"


def suite_yaml(data: Mapping[str, Any]) -> str:
    """A suite as YAML the way suites are written by hand: block mappings, scalar lists on one line."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _list(dumper: yaml.SafeDumper, value: list) -> Any:
        flow = all(not isinstance(v, (dict, list)) for v in value)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)

    _Dumper.add_representer(list, _list)
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100,
                     default_flow_style=False)


def save_suite(data: Mapping[str, Any], folder: str | Path, header: str = "") -> Path:
    """Check a suite (schema and `check_suite`, as `workbench run` does) and only then write it to
    FOLDER/suite.yaml, atomically, with `output: .` so that `workbench run FOLDER/suite.yaml` runs into
    FOLDER. Raises PlanError (one line, nothing written) for a suite that would be refused."""
    import yaml
    from pydantic import ValidationError

    folder = Path(folder).resolve()
    data = {**dict(data), "output": "."}
    try:
        suite = Suite.model_validate(data)
    except ValidationError as e:
        raise PlanError(_first_error(e)) from None
    suite.base_dir = folder
    problems = check_suite(suite)
    if problems:
        raise PlanError("; ".join(problems))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SUITE_FILE
    tmp = folder / f".{SUITE_FILE}.{os.getpid()}"
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines.append(f"# edit and run again with: workbench run {path}")
    tmp.write_text("\n".join(lines) + "\n" + suite_yaml(data), encoding="utf-8")
    tmp.replace(path)
    try:
        load_suite(path)
    except SuiteError as e:  # pragma: no cover - the checks above are the ones load_suite makes
        raise PlanError(str(e)) from None
    return path


class PlannerLM(Protocol):
    """A language model that proposes plan fields for a brief. `propose` returns any of: task, model,
    prompt, params (dict), seconds, speech ({text, voice}); the rules check each field before use."""

    name: str

    def propose(self, brief: str, context: dict[str, Any]) -> dict[str, Any]: ...


_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*-?\s*(seconds?|secs?|s|minutes?|mins?)\b", re.I)
_QUOTE = re.compile(r"[\"“”'‘’](.+?)[\"“”'‘’](?=\W|$)")


def _rules(brief: str) -> dict[str, Any]:
    """What the words of a brief say: length, speech, language, motion, subject."""
    text = brief.strip()
    low = text.lower()
    found: dict[str, Any] = {"reasons": []}
    m = _SECONDS.search(text)
    if m:
        value = float(m.group(1)) * (60 if m.group(2).lower().startswith("min") else 1)
        found["seconds"] = value
        found["reasons"].append(f"length {value:g} s from '{m.group(0)}'")
    q = _QUOTE.search(text)
    if q and re.search(r"\b(say|says|saying|said|speak|speaks|speaking|read|reads|tell|tells)\b", low):
        found["speech_text"] = q.group(1).strip()
        found["reasons"].append(f"speech from the quoted words: {q.group(1)!r}")
    for lang, voice in LANGUAGES.items():
        if re.search(rf"\b(in|into)\s+{lang}\b", low):
            found["voice"] = voice
            found["reasons"].append(f"language {lang} -> voice espeak-ng:{voice}")
            break
    motion: dict[str, Any] = {}
    if re.search(r"\b(still|static|no motion|frozen|locked[- ]off)\b", low):
        motion["still"] = True
    if re.search(r"\b(slow|slowly|gentle|gently|subtle|calm)\b", low):
        motion["pace"] = "slow"
    elif re.search(r"\b(fast|quick|quickly|dynamic|energetic|dramatic)\b", low):
        motion["pace"] = "fast"
    if re.search(r"\b(zoom(s|ing)? in|push(es|ing)? in|dolly in|close[- ]?up)\b", low):
        motion["direction"] = "in"
    elif re.search(r"\b(zoom(s|ing)? out|pull(s|ing)? back|dolly out|reveal)\b", low):
        motion["direction"] = "out"
    if re.search(r"\b(turn|turns|turning|rotate|rotates|rotating|orbit|orbits|turntable|spin|spins)\b", low):
        motion["orbit"] = True
    found["motion"] = motion
    if re.search(r"\b(product|bottle|packshot|pack shot|shoe|watch|perfume|cup|mug|can|box|phone)\b", low):
        found["subject"] = "product"
    elif re.search(r"\b(portrait|face|talking|presenter|speaker|person|man|woman|astronaut|character)\b", low):
        found["subject"] = "person"
    # the prompt: the brief without the length and the quoted speech
    prompt = _SECONDS.sub("", text)
    if q and "speech_text" in found:
        prompt = prompt.replace(q.group(0), "")
    prompt = re.sub(r"\b(in|into)\s+(" + "|".join(LANGUAGES) + r")\b", "", prompt, flags=re.I)
    prompt = re.sub(r"\s*,\s*(,\s*)+", ", ", re.sub(r"\s{2,}", " ", prompt)).strip(" ,.;")
    found["prompt"] = prompt
    return found


def _params_for(model_cls: Any, seconds: float | None, motion: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    """The parameters a brief implies that this model takes (nothing it does not know)."""
    d = model_cls.defaults
    params: dict[str, Any] = {}
    if seconds is not None:
        if "seconds" in d:
            params["seconds"] = float(seconds)
        elif "num_frames" in d and "fps" in d:
            params["num_frames"] = max(1, int(round(seconds * float(d["fps"]))))
            reasons.append(f"{seconds:g} s at {d['fps']} fps -> num_frames {params['num_frames']}")
    if "zoom" in d:
        zoom = float(d["zoom"])
        if motion.get("pace") == "slow":
            zoom = 1.0 + (zoom - 1.0) * 0.5
        elif motion.get("pace") == "fast":
            zoom = 1.0 + (zoom - 1.0) * 2.0
        if motion.get("orbit"):
            zoom = max(zoom, 1.0 + (float(d["zoom"]) - 1.0) * 0.5)
            reasons.append("a turn is approximated by a camera move over the still (kenburns cannot rotate the object)")
        if zoom != d["zoom"]:
            params["zoom"] = round(zoom, 3)
            reasons.append(f"{motion.get('pace', 'orbit')} motion -> zoom {params['zoom']}")
    if "direction" in d and motion.get("direction"):
        params["direction"] = motion["direction"]
        reasons.append(f"zoom {motion['direction']} as asked")
    if "pan" in d and motion.get("pace") == "slow":
        params["pan"] = round(float(d["pan"]) * 0.5, 3)
    return params


def plan_brief(brief: str, image: str | Path | None = None, audio: str | Path | None = None,
               lm: PlannerLM | None = None, gpu: bool | None = None, models: Mapping[str, Any] | None = None,
               enhance: bool = True) -> Plan:
    """Turn a plain-words brief (+ optional image and audio) into a `Plan` by offline rules, then let
    `lm` (if given) propose changes; every change is checked and the ones that do not fit are noted.
    `enhance`: the prompt enhancer (`workflow.enhance`) writes the chosen model's prompt and negative
    prompt from the brief's words (`prompt_original`, `prompt_source` say so)."""
    if not isinstance(brief, str) or not brief.strip():
        raise PlanError("the brief is empty; describe the video in a sentence, e.g. \"a slow zoom on this "
                        "portrait, 3 seconds\"")
    models = registry() if models is None else models
    found = _rules(brief)
    reasons = list(found["reasons"])
    speech = None
    if found.get("speech_text") and not audio:
        speech = {"text": found["speech_text"], "voice": found.get("voice", "en-us")}
    inputs = Inputs.from_paths(image, audio, found["prompt"], found.get("seconds"), speech=speech is not None)
    if inputs.image is not None:
        reasons.append(f"the image {'shows a face' if inputs.has_face else 'shows no face'}")
    routes = route(inputs, gpu=gpu, models=models)
    usable = [r for r in routes if r.usable]
    if found["motion"].get("still"):
        still = [r for r in usable if r.model == "static"]
        if still:
            usable = still + [r for r in usable if r.model != "static"]
            reasons.append("the brief asks for no motion -> static")
    if not usable:
        raise PlanError(nothing_fits(inputs, routes, models))
    chosen = usable[0]
    reasons.append(f"model {chosen.model}: {'; '.join(chosen.reasons)}")
    cls = models[chosen.model]
    params = _params_for(cls, found.get("seconds"), found["motion"], reasons)
    plan = Plan(brief=brief, task=chosen.task, model=chosen.model, prompt=found["prompt"], params=params,
                image=inputs.image, audio=inputs.audio, seconds=found.get("seconds"), speech=speech,
                has_face=inputs.has_face,
                routes=[r.to_dict() for r in routes[:5]], reasons=reasons)
    if lm is not None:
        _apply_lm(plan, lm, routes, models)
    if enhance and plan.prompt:
        result = enhance_prompt(plan.prompt, plan.model, plan.negative_prompt)
        if result.source.startswith("unchanged:"):
            plan.reasons.append(f"prompt kept as written: {plan.model} does not read it")
        else:
            plan.prompt_original, plan.prompt_source = plan.prompt, result.source
            plan.prompt, plan.negative_prompt = result.prompt, result.negative_prompt
            plan.reasons.append(f"prompt enhanced ({result.source}): {'; '.join(result.notes)}")
    return plan


def nothing_fits(inputs: Inputs, routes: list[Route], models: Mapping[str, Any] | None = None) -> str:
    """Why no model can carry out a request here, in one line that names the real cause and the fix.
    A brief with no image needs text-to-video: the usual cause is that no such weights are here."""
    models = registry() if models is None else models
    if not inputs.image:
        t2v = [r for r in routes if r.task == "text-to-video" and r.fits]
        hosted = [r for r in t2v if callable(getattr(models[r.model], "provider_info", None))]
        local = [r for r in t2v if r not in hosted]
        parts = []
        if local:
            absent = [r.model for r in local if not models[r.model].weights_available()]
            names = ", ".join(r.model for r in local)
            if absent:
                parts.append(f"a brief without an image needs a text-to-video model ({names}) and their weights are "
                             f"not on this machine (`workbench weights fetch {absent[0]}`, then run it on a GPU)")
            else:
                parts.append(f"a brief without an image needs a text-to-video model ({names}); their weights are "
                             "here but there is no GPU to run them")
        if hosted:
            keys = sorted({models[r.model].provider_info().key_env for r in hosted})
            parts.append(f"or a hosted one ({', '.join(r.model for r in hosted)}) with its key set ({', '.join(keys)})")
        parts.append("or give --image to animate a still")
        return "; ".join(parts)
    why = "; ".join(f"{r.model}: {r.reasons[0]}" for r in routes[:3] if r.reasons)
    return f"no model here fits this brief ({why}); give an image (and audio for a talking head)"


def _apply_lm(plan: Plan, lm: PlannerLM, routes: list[Route], models: Mapping[str, Any]) -> None:
    """Merge a language model's proposal into the rules' plan, field by field, after checking it."""
    context = {"rules_plan": plan.to_dict(), "usable_models": [r.model for r in routes if r.usable],
               "model_params": {r.model: dict(models[r.model].defaults) for r in routes if r.usable}}
    try:
        proposal = lm.propose(plan.brief, context)
    except Exception as e:  # a planner failure must not lose the rules' plan
        plan.reasons.append(f"planner {lm.name} failed ({type(e).__name__}: {e}); kept the rules' plan")
        return
    if not isinstance(proposal, Mapping):
        plan.reasons.append(f"planner {lm.name} gave no usable proposal; kept the rules' plan")
        return
    plan.planner = f"rules+{lm.name}"
    usable = {r.model: r for r in routes if r.usable}
    model = proposal.get("model")
    if model is not None:
        if model in usable:
            if model != plan.model:
                plan.model, plan.task = model, usable[model].task
                plan.params = {k: v for k, v in plan.params.items() if k in models[model].defaults}
                plan.reasons.append(f"planner {lm.name} chose model {model}")
        else:
            plan.reasons.append(f"planner {lm.name} proposed model {model!r}, which cannot run here; kept {plan.model}")
    prompt = proposal.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        plan.prompt = prompt.strip()
        plan.prompt_source = f"planner:{lm.name}"
        plan.reasons.append(f"planner {lm.name} rewrote the prompt")
    params = proposal.get("params")
    if isinstance(params, Mapping):
        merged = {**plan.params, **params}
        try:
            models[plan.model].resolve_params(merged)
            plan.params = merged
            plan.reasons.append(f"planner {lm.name} set {', '.join(sorted(params))}")
        except GenerationError as e:
            plan.reasons.append(f"planner {lm.name} proposed bad parameters ({e}); kept the rules' ones")
    speech = proposal.get("speech")
    if isinstance(speech, Mapping) and isinstance(speech.get("text"), str) and speech["text"].strip() and not plan.audio:
        try:
            voice = str(parse_voice(speech.get("voice") or (plan.speech or {}).get("voice")))
            plan.speech = {"text": speech["text"].strip(), "voice": voice.split(":", 1)[1] if voice.startswith("espeak-ng:") else voice}
            plan.reasons.append(f"planner {lm.name} set the speech")
        except SpeechError as e:
            plan.reasons.append(f"planner {lm.name} proposed a bad voice ({e}); kept the rules' speech")


class TransformersPlannerLM:
    """A local causal language model (transformers) as the planner: asked for one JSON object.

    Weights come from a local folder (`path` or $WORKBENCH_PLANNER_LM); nothing downloads."""

    def __init__(self, path: str | Path | None = None, max_new_tokens: int = 200):
        path = path or os.environ.get(PLANNER_ENV)
        if not path:
            raise PlanError(f"no planner language model: pass --lm DIR or set {PLANNER_ENV} to a local "
                            "transformers model folder (e.g. a small instruct model); the rules plan without one")
        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file():
            raise PlanError(f"{self.path}: no transformers model here (config.json missing); download one there "
                            f"or point {PLANNER_ENV} at its folder")
        self.name = f"lm:{self.path.name}"
        self.max_new_tokens = max_new_tokens
        self._model = None
        self._tokenizer = None

    def _load(self):
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                self._model = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True).eval()
            except Exception as e:
                raise PlanError(f"{self.path}: cannot load the planner model ({type(e).__name__}); check the folder") from None
        return self._model, self._tokenizer

    def propose(self, brief: str, context: dict[str, Any]) -> dict[str, Any]:
        import torch

        model, tok = self._load()
        instruction = (
            "You plan short AI video generations. Answer with one JSON object with keys model, prompt, params, "
            f"speech. Usable models and their parameters: {json.dumps(context['model_params'])}. "
            f"Brief: {brief}\nJSON:")
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                           add_generation_prompt=True)
        else:
            text = instruction
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False)
        answer = tok.decode(out[0][ids["input_ids"].shape[-1]:], skip_special_tokens=True)
        return parse_json_object(answer)


def parse_json_object(text: str) -> dict[str, Any]:
    """The first balanced {...} in `text` parsed as JSON; ValueError when there is none."""
    start = text.find("{")
    while start != -1:
        depth = 0
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(text[start:i + 1])
                    except json.JSONDecodeError:
                        break
                    if isinstance(value, dict):
                        return value
                    break
        start = text.find("{", start + 1)
    raise ValueError("no JSON object in the language model's answer")


def run_plan(plan: Plan, out_dir: str | Path, seeds: Sequence[int] = (0,), metrics: list[str] | None = None,
             callbacks: list[Any] | None = None, report: bool = True) -> list[dict[str, Any]]:
    """Carry a plan out as `workbench run` would: save it as OUT/suite.yaml (editable, re-runnable),
    run that file into OUT and write OUT/report.html. Returns the records."""
    path = save_suite(plan.to_suite(seeds=seeds, metrics=metrics), out_dir, header=f"planned from: {plan.brief}")
    records = Runner(load_suite(path), callbacks=callbacks).run_all()
    if report and records:
        from workbench.report import write_report  # local: Jinja2 and matplotlib load only when a plan runs

        write_report(path.parent)
    return records


# --------------------------------------------------------------------------------------------------
# refine: successive halving over a grid and seeds
# --------------------------------------------------------------------------------------------------
@dataclass
class Arm:
    label: str
    params: dict[str, Any]
    seeds: list[int] = field(default_factory=list)
    values: dict[int, float | None] = field(default_factory=dict)  # seed -> objective

    @property
    def mean(self) -> float | None:
        vals = [v for v in self.values.values() if v is not None]
        return sum(vals) / len(vals) if vals else None


@dataclass
class RefineResult:
    best: dict[str, Any] | None  # the best record found
    best_objective: float | None
    spent: int  # generations run (new jobs)
    budget: int
    stopped: str  # why the search ended
    rounds: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("records")
        d["best"] = None if self.best is None else {k: self.best.get(k) for k in
                                                    ("job_id", "model", "params", "seed", "video", "scores")}
        return d


def refine(case: Mapping[str, Any], model: str, objective: Objective | Mapping[str, Any], budget: int,
           out_dir: str | Path, grid: Mapping[str, Sequence[Any]] | None = None,
           base_params: Mapping[str, Any] | None = None, seeds_per_round: int = 1, eta: int = 2,
           patience: int = 2, min_improvement: float = 0.0, metrics: list[str] | None = None,
           name: str = "refine", first_seed: int = 0, callbacks: list[Any] | None = None) -> RefineResult:
    """Search seeds x parameter grid for the best objective within `budget` generations.

    Successive halving: every grid point (arm) gets `seeds_per_round` seeds; the best 1/`eta` of the arms
    (by mean objective over their seeds) survive and each gets `eta` times as many new seeds; and so on.
    Once one arm is left, its budget goes to new seeds (best-of-N). The search stops when the budget is
    spent or the best objective has not improved by more than `min_improvement` for `patience` rounds.
    Every generation is a Runner job in `out_dir` (results.jsonl); the search log is `out_dir/refine.json`.
    """
    objective = Objective.parse(objective)
    cls = get_generator(model)
    base = dict(base_params or {})
    grid = {k: list(v) for k, v in (grid or {}).items()}
    for k, values in grid.items():
        if not values:
            raise PlanError(f"refine grid '{k}' has no values; list at least one")
    combos = [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())] if grid else [{}]
    arms = []
    for i, combo in enumerate(combos):
        params = {**base, **combo}
        try:
            cls.resolve_params(params)
        except GenerationError as e:
            raise PlanError(f"refine grid point {combo}: {e}") from None
        arms.append(Arm(f"{re.sub(r'[^A-Za-z0-9_.-]', '-', model)}-a{i}", params))
    if budget < len(arms) * seeds_per_round:
        raise PlanError(f"budget {budget} is below one round ({len(arms)} grid points x {seeds_per_round} seed(s)); "
                        "raise the budget or shrink the grid")
    if eta < 2:
        raise PlanError(f"eta must be at least 2 (the share of arms kept each round is 1/eta), got {eta}")
    out_dir = Path(out_dir).resolve()
    next_seed = first_seed
    spent = 0
    rounds: list[dict[str, Any]] = []
    all_records: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    best_value: float | None = None
    stale = 0
    alive = list(arms)
    per_arm = seeds_per_round
    stopped = "budget spent"
    r = 0
    while True:
        left = budget - spent
        if left <= 0:
            break
        # this round: `per_arm` new seeds for each live arm, as far as the budget goes
        n_new = min(per_arm, max(1, left // len(alive)))
        order = sorted(alive, key=lambda a: -(a.mean if a.mean is not None else -math.inf))
        if n_new * len(alive) > left:
            order = order[:max(1, left // n_new)]
        seeds = list(range(next_seed, next_seed + n_new))
        next_seed += n_new
        suite = Suite.model_validate({
            "name": name, "cases": [dict(case)], "seeds": seeds, "metrics": metrics or objective.metrics,
            "models": [{"name": model, "label": a.label, "params": a.params} for a in order]})
        runner = Runner(suite, out_dir, callbacks=callbacks)
        latest = runner.store.latest()
        new_jobs = sum(1 for j in runner.jobs if latest.get(j.id, {}).get("status") != "ok")
        runner.run_all()
        latest = runner.store.latest()
        spent += len(runner.jobs)  # a resumed job still counts: the budget is of generations asked for
        by_label = {a.label: a for a in order}
        round_best = None
        for job in runner.jobs:
            rec = latest.get(job.id)
            if rec is None:
                continue
            all_records.append(rec)
            value = objective(rec)
            arm = by_label[job.model.display]
            arm.seeds.append(job.seed)
            arm.values[job.seed] = value
            if value is not None and (round_best is None or value > round_best[0]):
                round_best = (value, rec)
        improved = False
        if round_best is not None and (best_value is None or round_best[0] > best_value + min_improvement):
            best_value, best = round_best
            improved = True
        stale = 0 if improved else stale + 1
        ranked = sorted(alive, key=lambda a: -(a.mean if a.mean is not None else -math.inf))
        keep_n = max(1, math.ceil(len(ranked) / eta))
        rounds.append({
            "round": r, "seeds": seeds, "new_generations": new_jobs,
            "arms": [{"label": a.label, "params": a.params, "seeds": list(a.seeds), "mean": a.mean,
                      "values": {str(s): v for s, v in a.values.items()}} for a in ranked],
            "kept": [a.label for a in ranked[:keep_n]], "best_objective": best_value, "improved": improved,
        })
        alive = ranked[:keep_n]
        per_arm *= eta
        r += 1
        if spent >= budget:
            break
        if stale >= patience and len(alive) == 1:
            stopped = f"no improvement for {patience} round(s)"
            break
    result = RefineResult(best, best_value, spent, budget, stopped, rounds, all_records)
    payload = {**result.to_dict(), "objective": objective.to_dict(), "formula": objective.describe(),
               "model": model, "grid": grid, "eta": eta, "seeds_per_round": seeds_per_round}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "refine.json", payload, indent=1, default=str)
    return result
