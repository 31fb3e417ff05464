"""`workbench eval`, `metrics`, `calibrate`: scoring commands over `workbench.metrics`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail as _fail, unexpected, wandb_mode

@app.command("eval")
def eval_(
    video: Path = typer.Argument(..., help="video to score"),
    image: Optional[Path] = typer.Option(None, "--image", help="reference image (identity, i2v metrics)"),
    audio: Optional[Path] = typer.Option(None, "--audio", help="driving audio (default: the clip's own track)"),
    reference: Optional[Path] = typer.Option(None, "--reference", help="ground-truth video (psnr, ssim, lpips, fvd)"),
    source: Optional[Path] = typer.Option(None, "--source", help="the footage a face swap started from (with --image "
                                                                 "as the target face: the face-swap scores)"),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="comma-separated score or group names"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Score one clip; prints every applicable score with its backend.

    Exit status: 0 when the clip was scored (a score that cannot be computed is null with its reason),
    2 for a bad option or an input file that cannot be used (one `error:` line naming it and the fix).
    """
    from workbench.media import Clip, MediaError, check_input
    from workbench.metrics import UnknownMetric, evaluate, resolve

    names = None
    if metrics is not None:
        names = [m.strip() for m in metrics.split(",")]
        try:
            resolve(names)
        except UnknownMetric as e:
            _fail(f"--metrics {metrics!r}: {e}")
        names = [m for m in names if m]
    try:
        for kind, path in (("video", video), ("image", image), ("audio", audio), ("reference", reference),
                           ("video", source)):
            if path is not None:
                check_input(kind, path)  # the checks `workbench run` makes per job: no read blocks or hangs
        clip = Clip.open(video)
        result = evaluate(clip, image=image, audio=audio, reference=reference, metrics=names, source=source)
    except (MediaError, UnknownMetric) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        typer.echo("interrupted: nothing was scored", err=True)
        raise typer.Exit(130)
    except Exception as e:  # a bug, not a bad input: one line, the trace on request
        unexpected(e, f"{video}: scoring failed")
    payload = result.to_json(str(video))
    if "identity_gain" in result.scores:  # a face-swap evaluation: the verdict in words, beside the numbers
        from workbench.metrics.faceswap import swap_verdict

        verdict, why = swap_verdict(result.scores, result.backends.get("identity_gain"))
        payload["swap"] = {"verdict": verdict, "why": why}
    for note in getattr(result, "warnings", []):
        typer.echo(f"warning: {note}", err=True)
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    for name, value in result.scores.items():
        shown = "-" if value is None else f"{value:.4f}"
        extra = f"  ({result.errors[name]})" if name in result.errors else ""
        typer.echo(f"{name:24s} {shown:>10s}  {result.backends.get(name, '')}{extra}")
    if "swap" in payload:
        typer.echo(f"swap: {payload['swap']['verdict']} ({payload['swap']['why']})")


@app.command("metrics")
def metrics_(as_json: bool = typer.Option(False, "--json"),
             markdown: bool = typer.Option(False, "--markdown", help="print the README's metric table")) -> None:
    """List metrics: score names, direction, range, inputs, backends and their availability."""
    from workbench.metrics import metric_classes

    rows = []
    for cls in metric_classes():
        backends = cls.backends_available()
        for s in cls.scores:
            rows.append({"name": s.name, "group": cls.name,
                         "direction": {True: "higher", False: "lower", None: "neither"}[s.higher_is_better],
                         "range": s.range, "requires": sorted(cls.requires), "backends": backends,
                         "description": s.description, "source": s.source, "version": cls.version,
                         "calibration": _calibration(cls, s.name)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if markdown:
        typer.echo("| metric | better | range | needs | backends (offline first) | what it measures | follows |")
        typer.echo("|---|---|---|---|---|---|---|")
        for r in rows:
            typer.echo(f"| `{r['name']}` | {r['direction']} | {r['range']} | {', '.join(r['requires']) or 'video'} | "
                       f"{', '.join(r['backends'])} | {r['description']} | {r['source']} |")
        return
    for r in rows:
        avail = ", ".join(f"{k}{'' if v else ' (missing)'}" for k, v in r["backends"].items())
        typer.echo(f"{r['name']:24s} {r['direction']:8s} {r['range']:12s} {avail}")
        if r["calibration"]:
            c = r["calibration"]
            typer.echo(f"{'':24s} {c['backend']}: threshold {c['threshold']:g}, own-vs-foreign ROC AUC "
                       f"{c['auc_own_vs_foreign']:g} ({c['dev_set']})")


def _calibration(cls, score: str) -> dict | None:
    """A metric's measured threshold for this score (e.g. lip-sync own vs foreign audio), if it has one."""
    c = getattr(cls, "calibration", None)
    return dict(c) if c and c.get("score") == score else None


@app.command()
def calibrate(
    suite: Path = typer.Argument(Path("evals/suites/metric-calibration.yaml"), help="calibration suite YAML"),
    out: Path = typer.Option(Path("runs/calibration"), "--out", help="folder for calibration.json/.md"),
    wandb: str = typer.Option("disabled", "--wandb", callback=wandb_mode, help="online | offline | disabled: also log the checks as a "
                                                          "W&B run (job_type calibrate)"),
    project: str = typer.Option("workbench", "--project", help="W&B project for --wandb"),
) -> None:
    """Perturb real clips and check that every metric moves the expected way (exit 1 if any check fails)."""
    from workbench.calibrate import run_calibration
    from workbench.tracking import log_calibration

    try:
        result = run_calibration(suite, out, progress=lambda msg: typer.echo(msg, err=True))
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    for err in result.errors:
        typer.echo(f"note: {err}")
    typer.echo(f"{result.passed} passed, {result.failed} failed, {result.unscored} not scorable; "
               f"table: {out / 'calibration.md'}")
    files = log_calibration(result, out, wandb, project)
    if files:
        typer.echo(f"wandb ({wandb}): {files}")
    if result.failed:
        raise typer.Exit(1)
