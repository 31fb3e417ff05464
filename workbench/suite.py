"""Suite spec: what to run, read from YAML and validated with pydantic.

A suite lists cases (image / audio / prompt / reference), models (registry names + parameter
overrides), seeds, metrics, where to write, and tracking settings. Unknown keys are errors that name
the key, so a typo never silently changes an experiment. Relative paths resolve from the suite file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class SuiteError(ValueError):
    """The suite file is missing or invalid; one line naming the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseSpec(_Strict):
    id: str = Field(description="unique, short, file-name safe")
    image: str | None = None
    audio: str | None = None
    prompt: str = ""
    reference: str | None = Field(None, description="ground-truth video for reference metrics (psnr, ssim, lpips)")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError(f"case id {v!r} must be letters, digits, '_', '-', '.'")
        return v


class ModelSpec(_Strict):
    name: str
    label: str | None = Field(None, description="distinct name when one model appears with several settings")
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.label or self.name


class TrackingSpec(_Strict):
    wandb: bool = False
    project: str = "workbench"
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    html_report: bool = True


class Suite(_Strict):
    name: str
    description: str = ""
    cases: list[CaseSpec]
    models: list[ModelSpec]
    seeds: list[int] = Field(default_factory=lambda: [0])
    metrics: list[str] | None = Field(None, description="score or metric-group names; omit for every applicable one")
    output: str | None = Field(None, description="run folder; default runs/<name> next to the current directory")
    max_image_side: int = 1024
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    base_dir: Path = Field(default=Path("."), exclude=True, description="set by load_suite: the suite file's folder")

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
        return self

    def resolve(self, path: str | None) -> Path | None:
        """A suite-relative path as an absolute one (None stays None)."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    def output_dir(self, override: str | Path | None = None) -> Path:
        if override is not None:
            return Path(override).resolve()
        if self.output:
            return self.resolve(self.output)
        return (Path.cwd() / "runs" / self.name).resolve()


def read_yaml_mapping(path: str | Path, what: str, keys: str, error: type[ValueError] = SuiteError) -> dict:
    """Read a YAML file that must hold a mapping; every failure is one `error` line naming the file,
    the line and column of a syntax error, and the fix. `what` names the file kind, `keys` its keys."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found; pass a YAML file (see evals/suites/)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{path}: not valid YAML{where} ({getattr(e, 'problem', e)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} must be a YAML mapping with {keys} (got {type(data).__name__})")
    return data


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML; errors are one line naming the file and the offending key."""
    path = Path(path)
    data = read_yaml_mapping(path, "suite file", "name, cases, models")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as e:
        raise SuiteError(f"{path}: {_first_error(e)}") from None
    suite.base_dir = path.resolve().parent
    return suite


def _first_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}' (typo?); remove or rename it")
        elif err["type"] == "missing":
            parts.append(f"missing required key '{loc}'")
        else:
            parts.append(f"'{loc}': {err['msg']}" if loc else err["msg"])
    more = f" (+{len(e.errors()) - 3} more)" if len(e.errors()) > 3 else ""
    return "; ".join(parts) + more
