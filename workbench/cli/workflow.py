"""`workbench compose`, `workbench elements ...`, `workbench plan`: the creative workflow commands, thin
shells over `workbench.workflow`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from workbench.cli.app import app, fail as _fail, wandb_mode


@app.command()
def compose(
    clips: List[str] = typer.Argument(..., help="clips in order; CLIP@START-END trims (seconds)"),
    out: Path = typer.Option(..., "--out", help="output .mp4"),
    crossfade: float = typer.Option(0.0, "--crossfade", help="dissolve length in seconds at every junction (0: cuts)"),
    audio: Optional[Path] = typer.Option(None, "--audio", help="one audio track over the whole result (replaces the clips' sound)"),
    fps: Optional[float] = typer.Option(None, "--fps", help="output frame rate (default: the first clip's)"),
    size: Optional[str] = typer.Option(None, "--size", help="output WIDTHxHEIGHT, even (default: the first clip's)"),
    fit: str = typer.Option("pad", "--fit", help="pad (letterbox), crop or stretch clips to the size"),
    title: Optional[str] = typer.Option(None, "--title", help="title card text shown first"),
    title_seconds: float = typer.Option(2.0, "--title-seconds"),
    caption: Optional[str] = typer.Option(None, "--caption", help="text drawn over every clip"),
    no_audio: bool = typer.Option(False, "--no-audio", help="drop the clips' own sound"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as one JSON object"),
) -> None:
    """Join clips into one mp4: trims, cuts or crossfades, one fps and size, audio kept in step."""
    from workbench.media import MediaError
    from workbench.workflow.compose import ComposeError, TitleCard, compose as run_compose, parse_size

    try:
        result = run_compose(
            clips, out, fps=fps, size=parse_size(size) if size else None,
            crossfade=crossfade, audio=audio, keep_audio=not no_audio, fit=fit, caption=caption,
            title=TitleCard(title, title_seconds) if title else None)
    except (ComposeError, MediaError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        w, h = result.size
        typer.echo(f"{result.path}: {result.num_frames} frames, {result.duration:.2f} s, {w}x{h} @ {result.fps:g} fps"
                   f"{'' if result.sample_rate else ', no audio'}")


elements_app = typer.Typer(no_args_is_help=True, help="The Elements library: characters, products, styles.")
app.add_typer(elements_app, name="elements")
_LIBRARY = typer.Option(None, "--library", help="library folder (default: $WORKBENCH_ELEMENTS or ~/.workbench/elements)")


def _library(library: Optional[Path]):
    from workbench.workflow.elements import ElementLibrary

    return ElementLibrary(library)


@elements_app.command("add")
def elements_add(
    name: str = typer.Argument(..., help="letters, digits, '_' or '-'"),
    kind: str = typer.Option("character", "--kind", help="character, product or style"),
    image: List[Path] = typer.Option([], "--image", help="reference image (repeat for several)"),
    voice: Optional[str] = typer.Option(None, "--voice", help="default voice, e.g. espeak-ng:en-us or mms-tts:deu"),
    prompt: str = typer.Option("", "--prompt", help="prompt snippet added to a case's prompt"),
    negative_prompt: str = typer.Option("", "--negative-prompt"),
    notes: str = typer.Option("", "--notes"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an Element of that name"),
    library: Optional[Path] = _LIBRARY,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Save a named Element (a character's face embedding is computed from its images)."""
    from workbench.speech import SpeechError
    from workbench.workflow.elements import ElementError

    try:
        el = _library(library).add(name, kind, image, voice=voice, prompt=prompt, negative_prompt=negative_prompt,
                                   notes=notes, overwrite=overwrite)
    except (ElementError, SpeechError) as e:
        _fail(str(e))
    typer.echo(json.dumps(el.to_dict(), indent=2) if as_json else f"saved {el.kind} '{el.name}' in {el.path}")


@elements_app.command("list")
def elements_list(library: Optional[Path] = _LIBRARY, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the Elements; a broken one is listed with its error (the others stay usable)."""
    entries = _library(library).entries()
    if as_json:
        typer.echo(json.dumps([e.element.to_dict() if e.element else {"name": e.name, "error": e.error}
                               for e in entries], indent=2))
        return
    if not entries:
        typer.echo(f"no elements in {_library(library).root}; add one with `workbench elements add NAME --image IMG`")
    for e in entries:
        if e.element is None:
            typer.echo(f"{e.name:20s} BROKEN    {e.error}")
        else:
            el = e.element
            voice = f"{el.voice['engine']}:{el.voice['voice']}" if el.voice else "-"
            typer.echo(f"{el.name:20s} {el.kind:9s} {len(el.images)} image(s)  voice {voice}  {el.prompt[:40]}")


@elements_app.command("show")
def elements_show(name: str, library: Optional[Path] = _LIBRARY) -> None:
    """Print one Element as JSON."""
    from workbench.workflow.elements import ElementError

    try:
        typer.echo(json.dumps(_library(library).load(name).to_dict(), indent=2))
    except ElementError as e:
        _fail(str(e))


@elements_app.command("rm")
def elements_rm(name: str, library: Optional[Path] = _LIBRARY) -> None:
    """Delete an Element (works on a broken one too)."""
    from workbench.workflow.elements import ElementError

    try:
        _library(library).delete(name)
    except ElementError as e:
        _fail(str(e))
    typer.echo(f"removed '{name}'")


@elements_app.command("rename")
def elements_rename(old: str, new: str, library: Optional[Path] = _LIBRARY) -> None:
    """Rename an Element."""
    from workbench.workflow.elements import ElementError

    try:
        el = _library(library).rename(old, new)
    except ElementError as e:
        _fail(str(e))
    typer.echo(f"renamed '{old}' to '{el.name}'")


@app.command()
def plan(
    brief: str = typer.Argument(..., help='what you want, in plain words: "a product shot of this bottle, slow turn, 4 seconds"'),
    image: Optional[Path] = typer.Option(None, "--image", help="the image to animate"),
    audio: Optional[Path] = typer.Option(None, "--audio", help="speech to drive a talking head"),
    lm: Optional[Path] = typer.Option(None, "--lm", help="local language model folder to refine the plan (default: rules only)"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as one JSON object"),
    run_it: bool = typer.Option(False, "--run", help="carry the plan out (as `workbench run OUT/suite.yaml`) after showing it"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for suite.yaml and the run (default runs/plan/<brief>)"),
    seeds: str = typer.Option("0", "--seeds", help="seeds: 0, or 0,1,2, or 0-3"),
    no_enhance: bool = typer.Option(False, "--no-enhance", help="keep the brief's words as the prompt"),
    wandb: Optional[str] = typer.Option(None, "--wandb", callback=wandb_mode, help="online | offline | disabled (with --run)"),
) -> None:
    """Turn a brief into a plan (task, model, prompt, parameters) by offline rules and save it as an
    editable suite (OUT/suite.yaml); --run runs that suite and writes the report."""
    from workbench.cli.generate import run_suite_file
    from workbench.media import MediaError
    from workbench.names import parse_seeds
    from workbench.workflow.agent import PlanError, TransformersPlannerLM, plan_brief, save_suite

    try:
        seed_list = parse_seeds(seeds)
    except ValueError as e:
        _fail(f"--seeds {seeds!r}: {str(e).removeprefix('seeds: ')}")
    for option, value in (("--image", image), ("--audio", audio)):
        if value is not None and not value.expanduser().is_file():
            _fail(f"{option} {value}: no such file")
    try:
        planner = TransformersPlannerLM(lm) if lm else None
        p = plan_brief(brief, image=image, audio=audio, lm=planner, enhance=not no_enhance)
        folder = (out or Path("runs") / "plan" / p.name.removeprefix("plan-")).resolve()
        path = save_suite(p.to_suite(seeds=seed_list), folder, header=f"planned from: {brief}")
    except (PlanError, MediaError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps({**p.to_dict(), "suite": str(path)}, indent=2))
    else:
        typer.echo(f"task:   {p.task}\nmodel:  {p.model}\nprompt: {p.prompt}")
        if p.negative_prompt:
            typer.echo(f"negative prompt: {p.negative_prompt}")
        typer.echo(f"params: {json.dumps(p.params)}")
        if p.speech:
            typer.echo(f"speech: {p.speech['text']!r} ({p.speech['voice']})")
        for why in p.reasons:
            typer.echo(f"  - {why}")
        typer.echo(f"suite:  {path}" + ("" if run_it else f" (run it: workbench run {path})"))
    if run_it:
        run_suite_file(path, wandb)
