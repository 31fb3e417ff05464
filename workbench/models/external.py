"""Talking-head (and dubbing) models that live in their own repositories, run as subprocesses from recipes.

diffusers ships no speech-to-video pipeline, so models such as InfiniteTalk, OmniAvatar or SadTalker run
from their own checkouts. A recipe (YAML, `recipes/NAME.yaml`) says how: the repo (and how to install it
and its weights), the python executable, a command template, how inputs are handed over (arguments, an
input JSON / YAML file, or a list file of `prompt@@image@@audio` lines), where the output lands, and a
timeout. The generator writes the inputs into a fresh work folder, runs the command in the repo folder,
turns a non-zero exit into a one-line error carrying stderr's tail, and normalises the output clip
(frame rate, size, the driving audio muxed in) so every model's clip is scored the same way.

Recipes are found by name: the shipped ones here, then every folder in WORKBENCH_RECIPES (os.pathsep
separated; a user recipe with a shipped name replaces it). A suite can also point one model at a recipe
file: `{name: external, params: {recipe: path/to/my.yaml}}`.

Placeholders in `command`, `inputs_file.content` and `output`: {python} {repo} {work} {image} {audio}
{video} {prompt} {negative_prompt} {seed} {inputs_file} {out} {recipes} (the recipe file's folder, for a
helper script shipped beside it) plus every parameter (e.g. {fps}).

Face swap (`task: face-swap`, e.g. FaceFusion, InsightFace's inswapper): `{video}` is the case's source
footage and `{image}` the target face; the output clip gets the source's soundtrack.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workbench.media import Audio, Clip, MediaError, fit_image, write_video
from workbench.models.base import GenerationError, GenerationRequest, Generator, ProgressFn, register
from workbench.yamlfile import read_yaml_mapping

RECIPES_DIR = Path(__file__).with_name("recipes")
RECIPES_ENV = "WORKBENCH_RECIPES"
STDERR_TAIL = 400  # characters of stderr kept in the error
INSTALL_HINT = 200  # characters of an install note or command quoted in an error (cut at a word boundary)


class InputsFile(BaseModel):
    """A file the command reads its inputs from (`{inputs_file}` in the command)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="file name inside the work folder, e.g. input.json")
    format: Literal["json", "yaml", "lines"]
    content: Any = Field(description="JSON/YAML structure, or for `lines` a list of line templates")


class Recipe(BaseModel):
    """How to run one external model (a YAML file in recipes/ or a WORKBENCH_RECIPES folder)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    task: Literal["audio-to-video", "video-to-video", "image-to-video", "face-swap"] = "audio-to-video"
    description: str
    repo: str = Field(description="where the code lives (git URL)")
    licence: str
    install: str = Field(description="how to install the repo and its weights")
    requires: list[Literal["image", "audio", "prompt", "video"]] = ["image", "audio"]
    accepts: list[Literal["image", "audio", "prompt", "negative_prompt", "video"]] = ["image", "audio", "prompt"]
    video_from_image: bool = Field(False, description="the command takes a video: made from the case image "
                                                      "(a still clip as long as the audio)")
    repo_env: str | None = Field(None, description="environment variable holding the repo folder (default NAME_DIR)")
    python: str = "python"
    command: list[str]
    inputs_file: InputsFile | None = None
    output: str = Field(description="glob of the clip the command writes, e.g. {work}/out/*.mp4")
    fps: float = Field(25, gt=0, description="the model's native output frame rate")
    timeout: float = Field(3600, gt=0, description="seconds before the run is stopped")
    defaults: dict[str, Any] = Field(default_factory=dict, description="extra parameters for the templates")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")

    @property
    def env_var(self) -> str:
        return self.repo_env or (self.name.upper().replace("-", "_").replace(".", "_") + "_DIR")


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate one recipe file; errors name the file and the key."""
    path = Path(path)
    data = read_yaml_mapping(path, "recipe", "name, command, output, ...", GenerationError,
                             "workbench/models/recipes/ or `workbench models`")
    try:
        return Recipe(**data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "recipe"
        raise GenerationError(f"recipe {path}: {where}: {err['msg']}; see workbench/models/recipes/*.yaml") from None


def recipe_dirs() -> list[Path]:
    """The shipped recipes folder, then each folder in WORKBENCH_RECIPES (later ones win)."""
    extra = [Path(p).expanduser() for p in os.environ.get(RECIPES_ENV, "").split(os.pathsep) if p.strip()]
    return [RECIPES_DIR] + extra


def find_recipe(name_or_path: str, folder: str | Path | None = None) -> Path:
    """A recipe file by path, or by name in `folder`, WORKBENCH_RECIPES folders and the shipped recipes."""
    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return p
    dirs = ([Path(folder).expanduser()] if folder else []) + list(reversed(recipe_dirs()))
    for d in dirs:
        for ext in (".yaml", ".yml"):
            if (d / f"{name_or_path}{ext}").is_file():
                return d / f"{name_or_path}{ext}"
    raise GenerationError(f"no recipe named '{name_or_path}' in {', '.join(str(d) for d in dirs)}; "
                          f"write one (see workbench/models/recipes/) or set {RECIPES_ENV}")


# --------------------------------------------------------------------------------------------------
# templates
# --------------------------------------------------------------------------------------------------
class _Values(dict):
    def __missing__(self, key: str) -> str:
        raise GenerationError(f"recipe placeholder {{{key}}} is unknown; use one of {', '.join(sorted(self))}")


def fill(template: Any, values: dict[str, Any]) -> Any:
    """Fill `{name}` placeholders in a string, or in every string of a list / dict structure."""
    if isinstance(template, str):
        return template.format_map(_Values({k: "" if v is None else v for k, v in values.items()}))
    if isinstance(template, list):
        return [fill(t, values) for t in template]
    if isinstance(template, dict):
        return {fill(k, values): fill(v, values) for k, v in template.items()}
    return template


def shorten(text: str, limit: int) -> str:
    """`text` on one line (whitespace runs joined), cut at the last word boundary within `limit` characters
    with an ellipsis: a hint is never cut mid-word. Text within the limit is kept whole."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = text[:limit + 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else text.split(" ", 1)[0]  # one long word: kept whole
    return cut.rstrip(" ,;:&|") + " ..." if len(cut) < len(text) else text


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    tail = " | ".join(lines[-4:])
    return tail[-STDERR_TAIL:] if tail else "no output on stderr"


# --------------------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------------------
class ExternalGenerator(Generator):
    """A model run from its own repository as a subprocess, as its recipe says."""

    recipe: ClassVar[Recipe | None] = None
    recipe_path: ClassVar[Path | None] = None
    accepts: ClassVar[frozenset[str] | None] = frozenset({"image", "audio", "prompt"})
    # None / "" / 0: the recipe's own value (fps, timeout, python) or the model's own output size (width, height)
    COMMON: ClassVar[dict[str, Any]] = {"repo_dir": "", "python": "", "timeout": 0.0, "fps": None, "width": None,
                                        "height": None, "recipe": "", "recipe_dir": ""}

    # recipe ---------------------------------------------------------------------------------------
    def active_recipe(self) -> tuple[Recipe, Path]:
        """This generator's recipe, or the one `params.recipe` / `params.recipe_dir` points at."""
        p = self.params
        if p["recipe"] or p["recipe_dir"]:
            path = find_recipe(p["recipe"] or self.name, p["recipe_dir"] or None)
            return load_recipe(path), path
        if self.recipe is None:
            raise GenerationError(f"model '{self.name}' needs params.recipe (a recipe file or name)")
        return self.recipe, self.recipe_path

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        """Required inputs present, output size and frame rate sane; with `strict`, no prompt / audio the model
        does not take."""
        super().check_request(request, params)
        cls.resolve_params(getattr(request, "params", None) if params is None else params)  # output size, fps
        accepts = cls.accepts or frozenset()
        if not strict:
            return
        if getattr(request, "prompt", "") and "prompt" not in accepts:
            raise GenerationError(f"model '{cls.name}' takes no prompt; remove `prompt:` from the case")
        audio = getattr(request, "audio", None)
        if audio is not None and "audio" not in accepts:
            raise GenerationError(f"model '{cls.name}' takes no audio input; remove `audio:` from the case")

    @classmethod
    def resolve_params(cls, overrides: dict[str, Any] | None) -> dict[str, Any]:
        """The base resolution, then the output size and frame rate checked (so a suite is refused at load)."""
        params = super().resolve_params(overrides)
        cls.check_output_params(params)
        return params

    @classmethod
    def check_output_params(cls, p: dict[str, Any]) -> None:
        """width / height both set (integers in [8, 8192]) or both left out (the model's own size); fps left
        out (the recipe's) or a number in (0, 240]."""
        w, h = p.get("width"), p.get("height")
        for key, v in (("width", w), ("height", h)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 8 <= v <= 8192):
                raise GenerationError(f"model '{cls.name}': {key} must be an integer in [8, 8192] or left out (the "
                                      f"model's own size), got {v!r}")
        if (w is None) != (h is None):
            raise GenerationError(f"model '{cls.name}': set both width and height (the clip is fitted to them) or "
                                  f"neither (the model's own size)")
        fps = p.get("fps")
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 240):
            raise GenerationError(f"model '{cls.name}': fps must be a number in (0, 240] or left out (the recipe's "
                                  f"{cls.recipe.fps if cls.recipe else 'native'} fps), got {fps!r}")

    @classmethod
    def weights_available(cls) -> bool:
        if cls.recipe is None:
            return False
        return Path(os.environ.get(cls.recipe.env_var, "")).is_dir() if os.environ.get(cls.recipe.env_var) else False

    @classmethod
    def missing_requirement(cls, params: dict[str, Any] | None = None) -> str | None:
        """What a run with these (resolved) params would lack here, in one line (the repo folder not
        set or not found), checked without running anything; None when the repo folder is there. A dry
        run prints it, so a recipe model never looks ready when every job of it would fail."""
        recipe = cls.recipe
        if recipe is None:  # `external`: the recipe named in params.recipe
            name = (params or {}).get("recipe")
            if not name:
                return f"{cls.name}: no recipe; set params.recipe to a recipe file"
            try:
                recipe = load_recipe(find_recipe(str(name)))
            except Exception as e:  # a bad recipe: its own one line (the real run says the same)
                return f"{cls.name}: recipe {name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        given = str((params or {}).get("repo_dir") or os.environ.get(recipe.env_var, "") or "")
        if not given:
            return (f"{cls.name}: repo folder not set; clone {recipe.repo} and set params.repo_dir or "
                    f"{recipe.env_var} (install: `workbench models --json`)")
        if not Path(given).expanduser().is_dir():
            return f"{cls.name}: repo folder {given} not found; set params.repo_dir or {recipe.env_var} to the cloned {recipe.repo}"
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        info = super().describe()
        if cls.recipe is not None:
            r = cls.recipe
            info.update(licence=r.licence, repo=r.repo, install=r.install.strip(), repo_env=r.env_var,
                        recipe=str(cls.recipe_path))
        return info

    def repo_folder(self, recipe: Recipe) -> Path:
        given = self.params["repo_dir"] or os.environ.get(recipe.env_var, "")
        if not given:
            raise GenerationError(f"{self.name}: repo folder not set; clone {recipe.repo} and set params.repo_dir or "
                                  f"{recipe.env_var} (install: {shorten(recipe.install, INSTALL_HINT)}; the whole note: "
                                  f"`workbench models --json`)")
        folder = Path(given).expanduser()
        if not folder.is_dir():
            raise GenerationError(f"{self.name}: repo folder {folder} not found; set params.repo_dir or "
                                  f"{recipe.env_var} to the cloned {recipe.repo}")
        return folder

    # inputs ---------------------------------------------------------------------------------------
    def _write_inputs(self, recipe: Recipe, request: GenerationRequest, work: Path) -> dict[str, Any]:
        from PIL import Image

        values: dict[str, Any] = {"image": "", "audio": "", "video": "", "prompt": request.prompt,
                                  "negative_prompt": request.negative_prompt, "seed": int(request.seed)}
        if request.image is not None:
            image = request.image
            if self.params["width"] and self.params["height"]:
                image = fit_image(image, int(self.params["width"]), int(self.params["height"]))
            values["image"] = str(work / "image.png")
            still = Image.fromarray(image)
            still.save(values["image"])
        if request.audio is not None:
            values["audio"] = str(request.audio.save_wav(work / "audio.wav"))
        if getattr(request, "video", None) is not None:  # face swap: the source footage as it is
            if request.video_path:
                values["video"] = str(Path(request.video_path).resolve())
            else:
                values["video"] = str(write_video(work / "video.mp4", request.video.iter_frames(), request.video.fps,
                                                  request.video.audio))
        elif recipe.video_from_image and request.image is not None:
            seconds = request.audio.duration if request.audio is not None else 2.0
            n = max(1, int(round(seconds * recipe.fps)))
            frame = np.asarray(still.convert("RGB"), dtype=np.uint8)  # the saved image (PNG is lossless)
            values["video"] = str(write_video(work / "video.mp4", (frame for _ in range(n)), recipe.fps,
                                              request.audio))
        return values

    # run ------------------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> Clip:
        self.check_inputs(request)
        recipe, recipe_file = self.active_recipe()
        repo = self.repo_folder(recipe)
        p = self.params
        work = Path(tempfile.mkdtemp(prefix=f"wb-{self.name}-"))
        (work / "out").mkdir()
        values = {**recipe.defaults, **{k: v for k, v in p.items() if k not in ("python", "repo_dir")}}
        values["fps"] = p["fps"] or recipe.fps
        values.update(self._write_inputs(recipe, request, work))
        values.update(python=p["python"] or recipe.python, repo=str(repo), work=str(work), out=str(work / "out"),
                      recipes=str(Path(recipe_file).resolve().parent) if recipe_file else "")
        if recipe.inputs_file is not None:
            values["inputs_file"] = str(self._write_inputs_file(recipe, values, work))
        argv = [str(a) for a in fill(recipe.command, values)]
        timeout = float(p["timeout"] or recipe.timeout)
        env = {**os.environ, **fill(recipe.env, values)}
        started = time.time()
        if progress:
            progress(0, 1)
        with open(work / "stdout.log", "wb") as out, open(work / "stderr.log", "wb") as err:
            try:
                proc = subprocess.run(argv, cwd=repo, stdout=out, stderr=err, env=env, timeout=timeout)
            except FileNotFoundError:
                raise GenerationError(f"{self.name}: cannot run {argv[0]!r}; set params.python to the repo's "
                                      f"environment python") from None
            except subprocess.TimeoutExpired:
                raise GenerationError(f"{self.name}: stopped after the {timeout:g} s timeout; raise params.timeout "
                                      f"(work folder {work})") from None
        if proc.returncode != 0:
            tail = _tail((work / "stderr.log").read_text(errors="replace"))
            raise GenerationError(f"{self.name}: exited with {proc.returncode}: {tail} (command: "
                                  f"{shorten(shlex.join(argv), INSTALL_HINT)})")
        if progress:
            progress(1, 1)
        found = self._find_output(recipe, values, started)
        clip = self.normalise(Clip.open(found, load_audio_track=False), request)  # frames now in memory
        shutil.rmtree(work, ignore_errors=True)  # a failed run keeps its work folder (inputs, logs) to look at
        return clip

    def _write_inputs_file(self, recipe: Recipe, values: dict[str, Any], work: Path) -> Path:
        spec = recipe.inputs_file
        path = work / spec.name
        path.parent.mkdir(parents=True, exist_ok=True)
        content = fill(spec.content, values)
        if spec.format == "json":
            path.write_text(json.dumps(content, indent=2))
        elif spec.format == "yaml":
            import yaml

            path.write_text(yaml.safe_dump(content, sort_keys=False))
        else:
            lines = content if isinstance(content, list) else [content]
            path.write_text("\n".join(str(x) for x in lines) + "\n")
        return path

    def _find_output(self, recipe: Recipe, values: dict[str, Any], started: float) -> Path:
        import glob

        pattern = fill(recipe.output, values)
        hits = [Path(h) for h in glob.glob(pattern, recursive=True)]
        hits = [h for h in hits if h.is_file() and h.stat().st_mtime >= started - 1]
        if not hits:
            raise GenerationError(f"{self.name}: the command succeeded but wrote no clip matching {pattern}; "
                                  f"check the recipe's output")
        return max(hits, key=lambda h: h.stat().st_mtime)

    def normalise(self, clip: Clip, request: GenerationRequest) -> Clip:
        """Resample to params.fps (nearest frame), fit to width x height, mux the driving audio (a face swap:
        the source video's soundtrack), trimmed or padded with silence to the clip's length."""
        p = self.params
        try:
            frames = clip.to_array()
        except MediaError as e:
            raise GenerationError(f"{self.name}: output clip unreadable: {e}") from None
        src_fps = clip.fps
        fps = float(p["fps"] or src_fps)
        if abs(fps - src_fps) > 1e-3:
            n = max(1, int(round(len(frames) * fps / src_fps)))
            idx = np.minimum((np.arange(n) * src_fps / fps).round().astype(int), len(frames) - 1)
            frames = frames[idx]
        width, height = int(p["width"] or 0), int(p["height"] or 0)
        if width and height and (frames.shape[2], frames.shape[1]) != (width, height):
            frames = np.stack([fit_image(f, width, height) for f in frames])
        audio = None
        sound = request.audio if request.audio is not None else getattr(getattr(request, "video", None), "audio", None)
        if sound is not None:
            need = int(round(len(frames) / fps * sound.sample_rate))
            s = sound.samples[:need]
            audio = Audio(np.pad(s, (0, need - len(s))), sound.sample_rate)
        return Clip.from_frames(frames, fps, audio=audio)


def _make(recipe: Recipe, path: Path) -> type[ExternalGenerator]:
    # a number: checked as one; a face swap keeps its source's rate unless fps is set
    defaults = {**ExternalGenerator.COMMON, "fps": None if recipe.task == "face-swap" else float(recipe.fps),
                **recipe.defaults}
    attrs = {"name": recipe.name, "task": recipe.task, "description": recipe.description,
             "requires": frozenset(recipe.requires), "accepts": frozenset(recipe.accepts), "defaults": defaults,
             "weights": recipe.repo, "recipe": recipe, "recipe_path": path}
    cls_name = "".join(x.capitalize() for x in recipe.name.replace(".", "-").split("-")) + "External"
    return type(cls_name, (ExternalGenerator,), attrs)


@register
class External(ExternalGenerator):
    """Any recipe file: `{name: external, params: {recipe: my.yaml}}`."""

    name = "external"
    task = "audio-to-video"
    description = "a model from its own repo, run from the recipe file in params.recipe"
    requires = frozenset({"image"})
    accepts = frozenset({"image", "audio", "prompt", "negative_prompt"})
    defaults = dict(ExternalGenerator.COMMON)
    weights = None
    needs_params = ("recipe",)


def register_recipes() -> dict[str, type[ExternalGenerator]]:
    """Register a generator for every recipe found (shipped, then WORKBENCH_RECIPES folders)."""
    found: dict[str, type[ExternalGenerator]] = {}
    for folder in recipe_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.y*ml")):
            recipe = load_recipe(path)
            found[recipe.name] = register(_make(recipe, path))
    return found


RECIPE_GENERATORS = register_recipes()
