"""Suite spec: what to run, read from YAML and validated with pydantic.

A suite lists cases (image / audio / prompt / reference), models (registry names + parameter
overrides), seeds, metrics, where to write, and tracking settings. Unknown keys are errors that name
the key, so a typo never silently changes an experiment. Relative paths resolve from the suite file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench import hooks, yamlfile
from workbench.names import check_name
from workbench.redact import mask, redact, secret_fields


class SuiteError(ValueError):
    """The suite file is missing or invalid; one line naming the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseSpec(_Strict):
    id: str = Field(description="unique, short, file-name safe")
    image: str | None = None
    audio: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    reference: str | None = Field(None, description="ground-truth video for reference metrics (psnr, ssim, lpips)")
    video: str | None = Field(None, description="source footage for face swap (its soundtrack is kept)")
    text: str | None = Field(None, description="words to speak instead of an audio file (synthesised, cached)")
    voice: str | None = Field(None, description="voice for `text`: ENGINE:VOICE or an espeak-ng voice (en-us, de)")
    enhance: bool | str = Field(False, description="run the prompt the model family reads best (workflow.enhance): "
                                                   "true, or the model whose family to write for")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        return check_name(v, "case id")

    @model_validator(mode="after")
    def _speech(self) -> "CaseSpec":
        if self.text is not None and self.audio is not None:
            raise ValueError(f"case {self.id}: give either `audio:` or `text:` (speech made from it), not both")
        if self.text is not None and not self.text.strip():
            raise ValueError(f"case {self.id}: `text:` is empty; give the words to speak")
        if self.voice is not None and self.text is None:
            raise ValueError(f"case {self.id}: `voice:` needs `text:` to speak")
        return self


class ModelSpec(_Strict):
    name: str
    label: str | None = Field(None, description="distinct name when one model appears with several settings")
    params: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict, description="how to run it: dtype, device, offload...")
    num_outputs: int = Field(1, ge=1, le=64, description="clips per request, seeds derived from the job's seed")
    image_from: str | None = Field(None, description="label of an earlier text-to-image model whose image this model animates")

    @field_validator("label")
    @classmethod
    def _safe_label(cls, v: str | None) -> str | None:
        return None if v is None else check_name(v, "model label")

    @field_validator("name")
    @classmethod
    def _safe_model_name(cls, v: str) -> str:
        return check_name(v, "model name")

    @property
    def display(self) -> str:
        return self.label or self.name


class TrackingSpec(_Strict):
    wandb: bool = False
    project: str = "workbench"
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    html_report: bool = True


class BestOfSpec(_Strict):
    n: int = Field(ge=2, le=64, description="samples per request (outputs per case x model x seed)")
    keep: int = Field(1, ge=1, description="how many of the best to keep in the ranking")
    objective: dict[str, Any] | None = Field(None, description="overrides the suite's `objective:`")


class ComposeSpec(_Strict):
    out: str = Field("composed.mp4", description="file name of the composed mp4 in the run folder")
    clips: Literal["best", "all"] = Field("best", description="best: the top clip of each request by the objective")
    crossfade: float = Field(0.0, ge=0)
    title: str | None = None
    title_seconds: float = Field(2.0, gt=0)
    captions: bool = Field(False, description="caption each clip with its case id")
    fps: float | None = Field(None, gt=0, le=240)
    size: tuple[int, int] | None = None

    @field_validator("out")
    @classmethod
    def _safe_out(cls, v: str) -> str:
        check_name(v, "compose.out")
        if not v.endswith(".mp4"):
            raise ValueError(f"compose.out {v!r} must end in .mp4")
        return v


class Suite(_Strict):
    name: str
    description: str = ""
    cases: list[CaseSpec]
    models: list[ModelSpec]
    seeds: list[Annotated[int, Field(ge=0, lt=2**32)]] = Field(default_factory=lambda: [0])
    metrics: list[str] | None = Field(None, description="score or metric-group names; omit for every applicable one")
    output: str | None = Field(None, description="run folder; default runs/<name> next to the current directory")
    elements: str | None = Field(None, description="an Element library folder searched for `element:NAME` "
                                                   "before the user's own (suite-relative)")
    max_image_side: int = 1024
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    objective: dict[str, Any] | None = Field(None, description="weighted scores with directions (workflow.bestofn)")
    best_of: BestOfSpec | None = None
    compose: ComposeSpec | None = None
    budget: float | None = Field(None, gt=0, allow_inf_nan=False,
                                 description="USD: refuse to start when the estimated cost of the unfinished "
                                             "jobs of hosted models exceeds it (see `workbench run --dry-run`)")
    unheard_audio: Literal["run", "skip"] = Field(
        "run", description="jobs of a case with driving audio on a model that takes none (image-to-video, most "
                           "hosted models, LTX-2): run them (the audio unused, lip-sync not applicable; hosted: "
                           "billed) or skip them")
    base_dir: Path = Field(default=Path("."), exclude=True, description="set by load_suite: the suite file's folder")

    @model_validator(mode="before")
    @classmethod
    def _no_keys(cls, data: Any) -> Any:
        """A suite never holds an API key: a field whose value is a key set in the environment is refused,
        naming the field and the variable (never the value)."""
        found = secret_fields(data) if isinstance(data, dict) else []
        if found:
            where = ", ".join(f"{path} (the value of ${env})" for path, env in found[:3])
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            raise ValueError(f"{where}{more} hold{'s' if len(found) == 1 else ''} an API key; keys come from the environment only and never "
                             f"belong in a suite (it is copied into the run folder, its records and W&B): remove it")
        return data

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v, "suite name")

    @field_validator("models", mode="before")
    @classmethod
    def _bare_names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": m} if isinstance(m, str) else m for m in v]
        return v

    @model_validator(mode="after")
    def _unique(self) -> "Suite":
        ids = [c.id for c in self.cases]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"case ids must be unique; repeated: {', '.join(sorted(dup))}")
        labels = [m.display for m in self.models]
        dup = {m for m in labels if labels.count(m) > 1}
        if dup:
            raise ValueError(f"model {', '.join(sorted(dup))} appears twice; give each a distinct `label:`")
        if not self.cases or not self.models or not self.seeds:
            raise ValueError("a suite needs at least one case, one model and one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}; list each seed once")
        earlier: set[str] = set()
        for m in self.models:
            if m.image_from is not None and m.image_from not in earlier:
                raise ValueError(f"model {m.display}: image_from '{m.image_from}' must name a model listed before it")
            earlier.add(m.display)
        if self.best_of is not None:
            for m in self.models:
                if m.num_outputs == 1:
                    m.num_outputs = self.best_of.n
                elif m.num_outputs != self.best_of.n:
                    raise ValueError(f"model {m.display}: num_outputs {m.num_outputs} disagrees with best_of.n "
                                     f"{self.best_of.n}; drop one of them")
            if self.best_of.keep > self.best_of.n:
                raise ValueError(f"best_of.keep {self.best_of.keep} is more than best_of.n {self.best_of.n}")
        if (self.best_of is not None or (self.compose is not None and self.compose.clips == "best")) \
                and self.effective_objective() is None:
            raise ValueError("best_of and compose (clips: best) rank by an objective; add `objective:` "
                             "(e.g. {identity_similarity: 1, warp_error: 2})")
        return self

    def effective_objective(self) -> dict[str, Any] | None:
        """The objective that ranks samples: best_of's own, else the suite's."""
        return (self.best_of.objective if self.best_of is not None and self.best_of.objective else None) or self.objective

    def resolve(self, path: str | None) -> Path | None:
        """A suite-relative path as an absolute one (None stays None)."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    def element_library(self):
        """The suite's own Element library (its `elements:` folder), else None (the user's default); made
        by the `element_library` hook (workflow.elements.ElementLibrary)."""
        if self.elements is None:
            return None
        return hooks.first("element_library")(self.resolve(self.elements))

    def output_dir(self, override: str | Path | None = None) -> Path:
        if override is not None:
            return Path(override).resolve()
        if self.output:
            return self.resolve(self.output)
        return (Path.cwd() / "runs" / self.name).resolve()


def read_yaml_mapping(path: str | Path, what: str, keys: str, error: type[Exception] = SuiteError,
                      where_to_look: str = "evals/suites/") -> dict:
    """`workbench.yamlfile.read_yaml_mapping`, failing with a SuiteError unless told otherwise."""
    return yamlfile.read_yaml_mapping(path, what, keys, error, where_to_look)


SNAPSHOT = "suite.json"  # the resolved suite a run folder was last run with (written by the Runner)


def save_snapshot(suite: Suite, run_dir: str | Path) -> Path:
    """Write RUN_DIR/suite.json (the suite as run, with the folder its relative paths resolve
    against) atomically, so tools that start from a run folder (`workbench report --wandb`) know it."""
    import json
    import os

    run_dir = Path(run_dir)
    path = run_dir / SNAPSHOT
    text = json.dumps(mask({"base_dir": str(suite.base_dir), "suite": suite.model_dump(mode="json")}), indent=1)
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    tmp = run_dir / f".{SNAPSHOT}.{os.getpid()}"
    tmp.write_text(text)
    tmp.replace(path)
    return path


def load_snapshot(run_dir: str | Path) -> Suite:
    """The suite a run folder was run with (RUN_DIR/suite.json), validated as a suite file is."""
    import json

    path = Path(run_dir) / SNAPSHOT
    if not path.is_file():
        raise SuiteError(f"{path}: not found; run the suite into this folder once (`workbench run SUITE.yaml "
                         f"--out {run_dir}`: finished jobs are not redone) to record it")
    try:
        data = json.loads(path.read_text())
        suite = Suite.model_validate(data["suite"])
    except (ValueError, KeyError, TypeError) as e:
        raise SuiteError(f"{path}: unreadable ({type(e).__name__}); run the suite into this folder again to "
                         f"rewrite it") from None
    suite.base_dir = Path(data.get("base_dir") or ".")
    return suite


def load_suite(path: str | Path, check: bool = True) -> Suite:
    """Read and validate a suite YAML, whole, before anything runs: the schema (unknown keys, bad
    names, negative seeds), then `check_suite` (models, parameters, options, metrics, sizes). All
    problems are reported together in one line naming the file and each key path."""
    path = Path(path)
    data = read_yaml_mapping(path, "suite file", "name, cases, models")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as e:  # redact: a message never echoes a value that looks like a key
        raise SuiteError(redact(f"{path}: {_first_error(e)}")) from None
    suite.base_dir = path.resolve().parent
    if check:
        problems = check_suite(suite)
        if problems:
            n = f"{len(problems)} problems: " if len(problems) > 1 else ""
            raise SuiteError(redact(f"{path}: {n}{'; '.join(problems)}; nothing was run"))
    return suite


# generic bounds on the parameters every video model shares: a typo such as `num_frames: 1e9` is caught
# at load time instead of as a 4 PiB allocation in the middle of a run
PARAM_LIMITS: dict[str, tuple[float, float]] = {
    "num_frames": (0, 10_000), "width": (8, 8192), "height": (8, 8192), "fps": (0.1, 240),
    "seconds": (0, 600), "steps": (1, 1000), "num_inference_steps": (1, 1000),
}
MAX_FRAME_BYTES = 32 * 2**30  # width x height x 3 x frames of one clip


def check_suite(suite: Suite) -> list[str]:
    """Every semantic problem of a suite (unknown model, parameter, option or metric; impossible sizes;
    Elements, voices and objectives), each as 'key.path: what is wrong; the fix'. Empty when the suite
    can run. The checks live with what they check (`workflow.steps`, `models.checks`, `metrics.checks`)
    and register as the `suite_check` hook (workbench.hooks): the suite knows no model or metric."""
    problems: list[str] = []
    for check in hooks.providers("suite_check"):
        problems += check(suite)
    return problems


def _first_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-"))
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}' (typo?); remove or rename it")
        elif err["type"] == "missing":
            parts.append(f"missing required key '{loc}'")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")  # pydantic's prefix for our own checks
            parts.append(f"'{loc}': {msg}" if loc else msg)
    more = f" (+{len(e.errors()) - 3} more)" if len(e.errors()) > 3 else ""
    return "; ".join(parts) + more
