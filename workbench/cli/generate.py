"""`workbench generate` and `workbench speak`: one-line commands for the common cases.

`generate` only builds a one-case suite from its options, saves it as DIR/suite.yaml (editable; `workbench
run DIR/suite.yaml` runs it again) and runs that file exactly as `workbench run` does (same Runner,
records, report, W&B). Every input is checked before anything is written: a bad one is one `error:`
line and exit 2. `speak` is `workbench.speech.synthesize` (the engine interface and cache a suite's
`text:` case uses) with the wav copied where asked.
"""
from __future__ import annotations

import inspect
import shlex
import shutil
import sys
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from workbench.cli.app import app, fail as _fail, wandb_mode


def close_models(name: str, known: list[str], n: int = 5) -> list[str]:
    """Registered names close to a mistyped one: spelling neighbours first, then names containing it."""
    low = name.lower()
    close = get_close_matches(low, known, n=n, cutoff=0.5)
    close += [k for k in known if low and (low in k or k in low) and k not in close]
    return close[:n]


def parse_param(text: str) -> tuple[str, Any]:
    """`k=v` -> (k, v) with v read as YAML (numbers, true/false, lists); ValueError saying the form."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not key.replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"--param {text!r} must be KEY=VALUE, e.g. --param num_frames=33")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def call_command(fn: Callable[..., Any], **given: Any) -> Any:
    """Call a typer command function from Python: the given arguments, every other at its default."""
    kwargs = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in given:
            kwargs[name] = given[name]
        else:
            default = p.default
            kwargs[name] = getattr(default, "default", default)
    return fn(**kwargs)


def run_suite_file(path: Path, wandb: str | None = None) -> None:
    """`workbench run PATH`: the same command, progress, records, report and exit status."""
    from workbench.cli.run import run

    call_command(run, suite=path, wandb=wandb)


def _file(option: str, value: Optional[Path], what: str) -> Optional[Path]:
    """The path of an input option when it names a readable media file of its kind (a pipe, a folder or
    a corrupt image is refused with one line, exit 2, before anything is written); None when not given."""
    if value is None:
        return None
    from workbench.media import MediaError, input_problem, load_audio, load_image

    kind = "image" if option == "--image" else "audio"
    path = value.expanduser()
    why = input_problem(kind, path)
    if why:
        _fail(f"{option} {why}")
    try:  # decoded once here: a corrupt file is one line now, not a traceback or a failed job later
        load_image(path) if kind == "image" else load_audio(path)
    except (MediaError, OSError) as e:
        _fail(f"{option} {e}")
    return path.resolve()


def check_out_folder(folder: Path, option: str = "--out") -> None:
    """Refuse (one `error:` line, exit 1 as `workbench run` does) a run folder that cannot be written:
    a file in its place or above it, or a read-only parent. Nothing is created."""
    import os

    if folder.exists() and not folder.is_dir():
        _fail(f"{option} {folder}: is a file, not a folder; pass --out to a folder path", code=1)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        _fail(f"{option} {folder}: {probe} is a file, not a folder; pass --out to a folder path", code=1)
    if not os.access(probe, os.W_OK | os.X_OK):
        _fail(f"{option} {folder}: {probe} is not writable; fix the permissions or pass another --out", code=1)


def build_generate_suite(model: str, image: Path | None, audio: Path | None, text: str | None, voice: str | None,
                         prompt: str, negative_prompt: str, seeds: list[int], params: dict[str, Any],
                         metrics: list[str] | None, enhance: bool = False) -> dict[str, Any]:
    """The one-case suite `workbench generate` runs (a dict for `Suite.model_validate`)."""
    from workbench.cases import case_id
    from workbench.workflow.agent import default_metrics

    speech = (text, voice or "en-us") if text is not None else None
    cid = case_id(image, audio, speech, prompt, negative_prompt)
    case: dict[str, Any] = {"id": cid}
    if image is not None:
        case["image"] = str(image)
    if audio is not None:
        case["audio"] = str(audio)
    if text is not None:
        case["text"] = text
        case["voice"] = voice or "en-us"
    if prompt:
        case["prompt"] = prompt
    if negative_prompt:
        case["negative_prompt"] = negative_prompt
    if enhance:
        case["enhance"] = True
    entry: dict[str, Any] = {"name": model}
    if params:
        entry["params"] = params
    if metrics is None:
        face = None
        if image is not None:
            from workbench.workflow.agent import Inputs

            face = Inputs.from_paths(image).has_face
        metrics = default_metrics(image=image is not None and face is not False,
                                  audio=audio is not None or text is not None)
    return {"name": f"generate-{cid}"[:64].rstrip("-._"), "description": f"workbench generate {model}",
            "cases": [case], "models": [entry], "seeds": seeds, "metrics": metrics}


@app.command()
def generate(
    model: str = typer.Argument(..., help="a registered model (`workbench models`), e.g. kenburns, wan2.1-i2v-480p"),
    image: Optional[Path] = typer.Option(None, "--image", help="the image to animate"),
    audio: Optional[Path] = typer.Option(None, "--audio", help="speech (wav) for a talking-head model"),
    text: Optional[str] = typer.Option(None, "--text", help="words to speak instead of --audio (synthesised, cached)"),
    voice: Optional[str] = typer.Option(None, "--voice", help="voice for --text: en-us, de, mms-tts:deu, elevenlabs:ID"),
    prompt: str = typer.Option("", "--prompt", help="what should happen"),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="what to avoid"),
    seeds: str = typer.Option("0", "--seeds", help="seeds: 0, or 0,1,2, or 0-3"),
    param: List[str] = typer.Option([], "--param", help="model parameter KEY=VALUE (repeat), e.g. num_frames=33"),
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default runs/generate/<case>-<model>)"),
    metrics: List[str] = typer.Option([], "--metrics", help="metric or group names, comma-separated or repeated "
                                                            "(default: temporal, motion, identity, lip-sync as fit)"),
    enhance: bool = typer.Option(False, "--enhance", help="write the prompt the model's family reads best "
                                                          "(workbench.workflow.enhance), keeping yours in the record"),
    wandb: Optional[str] = typer.Option(None, "--wandb", callback=wandb_mode, help="online | offline | disabled"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the jobs, the estimated cost (hosted models) and what "
                                                          "is missing (key, weights); write and run nothing"),
) -> None:
    """Generate clips from one image (and speech) with one model: a run folder with the clips, their
    scores, report.html and suite.yaml (run it again or edit it: `workbench run DIR/suite.yaml`)."""
    from workbench.models import registry
    from workbench.names import parse_seeds, slug
    from workbench.workflow.agent import PlanError, save_suite

    models = registry()
    if model not in models:
        close = close_models(model, sorted(models))
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        _fail(f"unknown model '{model}'{hint} (`workbench models` lists them all)")
    cls = models[model]
    accepts = cls.accepts if cls.accepts is not None else frozenset(cls.requires) | {"audio"}
    if audio is not None and text is not None:
        _fail("give --audio or --text (speech made from the words), not both")
    image_path = _file("--image", image, "an image (png, jpg)")
    audio_path = _file("--audio", audio, "a wav file of speech")
    if voice is not None and text is None:
        _fail("--voice needs --text (the words to speak)")
    if "image" in cls.requires and image_path is None:
        _fail(f"{model} animates an image: give --image IMG")
    if image_path is not None and "image" not in accepts:
        _fail(f"{model} is {cls.task}: it takes no image; drop --image")
    has_speech = audio_path is not None or text is not None
    if "audio" in cls.requires and not has_speech:
        _fail(f"{model} is a talking-head model and needs speech: give --audio WAV or --text \"words\" [--voice en-us]")
    if has_speech and "audio" not in accepts:
        _fail(f"{model} takes no driving audio; drop --audio/--text or pick a talking-head model (`workbench models`)")
    if "prompt" in cls.requires and not prompt.strip():
        _fail(f"{model} needs a prompt: give --prompt \"what should happen\"")
    provider = getattr(cls, "provider_info", None)
    if callable(provider) and not cls.weights_available() and not dry_run:
        _fail(f"{model} runs on {provider().title}'s servers and needs {provider().key_env} set (billed per clip; "
              f"the same command with --dry-run estimates it)")
    if cls.weights is not None and not cls.weights_available() and not callable(provider) and not dry_run:
        if "model_id" not in {item.partition("=")[0].strip() for item in param}:
            _fail(f"{model}: weights {cls.weights} are not on this machine; `workbench weights fetch {model}` "
                  f"(or --param model_id=LOCAL_FOLDER)")
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as e:
        _fail(f"--seeds {seeds!r}: {str(e).removeprefix('seeds: ')}")
    params: dict[str, Any] = {}
    for item in param:
        try:
            k, v = parse_param(item)
        except ValueError as e:
            _fail(str(e))
        params[k] = v
    metric_list = [m.strip() for item in metrics for m in item.split(",") if m.strip()] or None
    if text is not None:  # a bad voice or empty text is refused now, and the run then finds the wav cached
        import contextlib

        from workbench.speech import SpeechError, planning, synthesize

        try:
            with planning() if dry_run else contextlib.nullcontext():  # a dry run never pays for speech
                synthesize(text, voice)
        except SpeechError as e:
            _fail(f"--text/--voice: {e}")
    header = ""
    case_enhance = False
    if enhance:
        from workbench.suite import CaseSpec
        from workbench.workflow.enhance import EnhanceError, enhance_prompt

        try:
            result = enhance_prompt(prompt, model, negative_prompt)
        except EnhanceError as e:
            _fail(f"--enhance: {e}")
        typer.echo(f"prompt ({result.source}): {result.prompt}")
        if result.negative_prompt:
            typer.echo(f"negative prompt: {result.negative_prompt}")
        if "enhance" in CaseSpec.model_fields:  # the run enhances and records prompt_original / prompt_source
            case_enhance = True
        else:  # this suite schema has no `enhance:`: the enhanced prompt is written into the case
            prompt, negative_prompt = result.prompt, result.negative_prompt
            header = f"\nprompt enhanced ({result.source}) from: {result.original}"
    data = build_generate_suite(model, image_path, audio_path, text, voice, prompt, negative_prompt, seed_list,
                                params, metric_list, case_enhance)
    folder = (out or Path("runs") / "generate" / slug(f"{data['cases'][0]['id']}-{model}")).resolve()
    if dry_run:
        dry_run_generate(data, folder)
        return
    command = "workbench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "workbench generate"
    check_out_folder(folder)
    try:
        path = save_suite(data, folder, header=f"made by: {command}{header}")
    except PlanError as e:
        _fail(_cli_terms(str(e)))
    except OSError as e:
        _fail(f"--out {folder}: cannot be written ({e.strerror or e}); fix the permissions or pass another --out", code=1)
    typer.echo(f"suite: {path}")
    run_suite_file(path, wandb)
    typer.echo(f"run folder: {folder}")


def dry_run_generate(data: dict[str, Any], folder: Path) -> None:
    """`generate --dry-run`: the suite checked as `save_suite` checks it, then `workbench run --dry-run`'s
    listing (jobs, estimated cost, missing keys and weights) for FOLDER; nothing is written."""
    from pydantic import ValidationError

    from workbench.cli.run import print_dry_run
    from workbench.experiment import Runner
    from workbench.speech import planning
    from workbench.suite import Suite, _first_error, check_suite

    try:
        spec = Suite.model_validate({**data, "output": str(folder)})
    except ValidationError as e:
        _fail(_cli_terms(_first_error(e)))
    spec.base_dir = folder
    problems = check_suite(spec)
    if problems:
        _fail(_cli_terms("; ".join(problems)))
    with planning():
        runner = Runner(spec, folder)
    try:
        print_dry_run(runner)
    except OSError as e:
        _fail(f"{folder}: cannot be read ({e.strerror or e}); pass --out to a folder path", code=1)
    typer.echo(f"without --dry-run: the suite is written to {folder / 'suite.yaml'} and run")


def _cli_terms(message: str) -> str:
    """A suite problem in the words of generate's options (models.0.params -> --param)."""
    from workbench.redact import redact

    message = redact(message)
    return (message.replace("models.0.params.", "--param ").replace("models.0.params", "--param")
            .replace("models.0.name", "model").replace("metrics:", "--metrics:").replace("cases.0.", "--"))


@app.command()
def speak(
    text: str = typer.Argument(..., help="the words to speak"),
    voice: Optional[str] = typer.Option(None, "--voice", help="en-us (espeak-ng), de, mms-tts:deu, elevenlabs:ID ..."),
    out: Optional[Path] = typer.Option(None, "--out", help="copy the wav here (default: print the cached wav's path)"),
    speed: Optional[float] = typer.Option(None, "--speed", help="speaking rate, 1 = the engine's normal"),
) -> None:
    """Speak text into a wav with the speech engines suites use (cached): prints the path, length, engine."""
    from workbench.media import MediaError
    from workbench.speech import SpeechError, synthesize

    if out is not None:  # checked before speaking: a bad --out costs nothing (a hosted voice is billed)
        out = out.expanduser()
        if out.suffix.lower() != ".wav":
            _fail(f"--out {out}: the file is a wav; name it *.wav")
        if out.exists() and not out.is_file():
            kind = "a folder" if out.is_dir() else "not a regular file (a pipe, socket or device)"
            _fail(f"--out {out}: is {kind}; name a wav file to write")
        above = next((p for p in out.parents if p.exists()), None)
        if above is not None and not above.is_dir():
            _fail(f"--out {out}: {above} is a file, not a folder; name a wav file in a folder")
    try:
        speech = synthesize(text, voice, speed=speed)
        seconds = speech.load().duration
    except (SpeechError, MediaError) as e:
        _fail(str(e))
    path = speech.path
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(speech.path, out)
        except OSError as e:
            _fail(f"--out {out}: cannot write ({e.strerror or e}); check the folder's permissions", code=1)
        path = out.resolve()
    cached = ", cached" if speech.cached else ""
    typer.echo(f"{path}: {seconds:.2f} s, voice {speech.voice}, engine {speech.engine_version}{cached}")
