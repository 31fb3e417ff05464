"""`workbench compose`, `workbench elements ...`, `workbench plan`: the creative workflow commands, thin
shells over `workbench.workflow`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from workbench.cli.app import app, fail as _fail


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
    from workbench.workflow.compose import ComposeError, TitleCard, compose as run_compose, parse_segment, parse_size

    try:
        result = run_compose(
            [parse_segment(c) for c in clips], out, fps=fps, size=parse_size(size) if size else None,
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
