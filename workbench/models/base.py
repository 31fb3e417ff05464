"""The generator contract and the model registry.

A `Generator` turns a `GenerationRequest` (image, audio, prompt, seed, parameters) into a `Clip`.
Every model family is one adapter class registered under a stable name; parameters have explicit
defaults, and an override with an unknown key is an error that lists the known ones.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from workbench.media import Audio, Clip

ProgressFn = Callable[[int, int], None]  # (step done, total steps)


class UnknownModel(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class GenerationError(RuntimeError):
    """A generator cannot run on these inputs; one line naming the input and the fix."""


@dataclass
class GenerationRequest:
    image: np.ndarray | None = None  # uint8 RGB
    audio: Audio | None = None
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # defaults merged with overrides
    image_path: str | None = None  # for messages
    audio_path: str | None = None
    # hosted generators: the persisted remote job of this clip (store.RemoteJob), set by the Runner;
    # None in a plain Python call (the state then lives in memory)
    remote: Any = None
    # source footage (face swap): a Clip (opened lazily from a file, with its soundtrack, or frames in memory)
    video: Clip | None = None
    video_path: str | None = None


class Generator(ABC):
    """One model. Subclasses set the class attributes and implement `generate`."""

    name: ClassVar[str]
    task: ClassVar[str]  # "image-to-video" | "audio-to-video" | "text-to-video" | "text-to-image" | "video-to-video"
    description: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset({"image"})  # of {"image", "audio", "prompt", "video"}
    # request fields the model uses; None = it takes whatever the case has (model-free baselines)
    accepts: ClassVar[frozenset[str] | None] = None
    defaults: ClassVar[dict[str, Any]] = {}
    weights: ClassVar[str | None] = None  # hub id / file the model needs; None = model-free
    # params a suite must set before the model can run (e.g. the generic external model's recipe)
    needs_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: dict[str, Any] | None = None, **params: Any):
        self.params = self.resolve_params(params)
        self.options = self.resolve_options(options)

    @classmethod
    def resolve_options(cls, options: dict[str, Any] | None) -> dict[str, Any]:
        """Validate the suite's `options:` block (how to run: dtype, device, offload...). Model-free
        generators take none; adapters that do override this. Unknown options are an error."""
        if options:
            raise GenerationError(
                f"model '{cls.name}' takes no options (got {', '.join(sorted(options))}); remove `options:`")
        return {}

    @classmethod
    def resolve_params(cls, overrides: dict[str, Any] | None) -> dict[str, Any]:
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(cls.defaults))
        if unknown:
            raise GenerationError(
                f"model '{cls.name}': unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(cls.defaults))}")
        out = dict(cls.defaults)
        for k, v in overrides.items():
            default = cls.defaults[k]
            if isinstance(default, bool) and not isinstance(v, bool):
                raise GenerationError(f"model '{cls.name}': parameter {k} must be true/false, got {v!r}")
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise GenerationError(f"model '{cls.name}': parameter {k} must be a number, got {v!r}")
                v = type(default)(v) if isinstance(default, float) else v
            out[k] = v
        return out

    @classmethod
    def weights_available(cls) -> bool:
        return True

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "task": cls.task, "description": cls.description,
                "requires": sorted(cls.requires), "accepts": None if cls.accepts is None else sorted(cls.accepts),
                "defaults": dict(cls.defaults),
                "weights": cls.weights, "weights_available": cls.weights_available()}

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        """Refuse, before anything loads, a request this model cannot honour (a missing required input; in
        adapters also inputs it does not take, frame counts and sizes it cannot make): raises GenerationError
        with one line naming the field and the fix. `request` is a GenerationRequest or anything with its
        attributes (image, audio, prompt, negative_prompt, params); `params` defaults to request.params.
        `strict=False` (what `generate` uses) lets inputs the model does not take pass unused."""
        if "image" in cls.requires and getattr(request, "image", None) is None:
            raise GenerationError(f"model '{cls.name}' needs an image; add `image:` to the case")
        if "audio" in cls.requires and getattr(request, "audio", None) is None:
            raise GenerationError(f"model '{cls.name}' needs audio; add `audio:` to the case")
        if "prompt" in cls.requires and not getattr(request, "prompt", ""):
            raise GenerationError(f"model '{cls.name}' needs a prompt; add `prompt:` to the case")
        if "video" in cls.requires and getattr(request, "video", None) is None:
            raise GenerationError(f"model '{cls.name}' needs a source video; add `video:` to the case")

    def check_inputs(self, request: GenerationRequest) -> None:
        """At generation time inputs the model does not take are left unused (a suite's case serves many
        models); `check_request` is the strict pre-flight that refuses them."""
        type(self).check_request(request, self.params, strict=False)

    @abstractmethod
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> Clip:
        """Make the clip. Deterministic for a given request on the same hardware."""


_REGISTRY: dict[str, type[Generator]] = {}


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make a generator available by its `name`."""
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Generator]]:
    """Every registered generator by name. The built-in adapters register when the package loads
    (`workbench/models/__init__.py` imports them; importing any `workbench.models.*` module runs it)."""
    return dict(_REGISTRY)


def get_generator(name: str) -> type[Generator]:
    reg = registry()
    if name not in reg:
        raise UnknownModel(f"unknown model '{name}'; registered: {', '.join(sorted(reg))} (see `workbench models`)")
    return reg[name]
