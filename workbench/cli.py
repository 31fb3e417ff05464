"""`workbench` command: a thin shell over the Python API (run, eval, models, metrics, report, calibrate)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run, score and compare image-to-video models.")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class _ProgressBar:
    """tqdm bars: one over jobs, one over the current job's steps."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.jobs = None
        self.steps = None
        self._stage = None

    def on_run_start(self, jobs, todo) -> None:
        skipped = len(jobs) - len(todo)
        if skipped:
            typer.echo(f"{skipped} of {len(jobs)} jobs already finished: skipping them")
        self.jobs = self._tqdm(total=len(todo), desc="jobs", unit="job", position=0, dynamic_ncols=True)

    def on_job_start(self, job, index, total) -> None:
        self.jobs.set_postfix_str(job.name)

    def on_step(self, job, stage, i, n) -> None:
        if self.steps is None or stage != self._stage:
            if self.steps is not None:
                self.steps.close()
            self.steps = self._tqdm(total=n or None, desc=stage, unit="frame", position=1, leave=False,
                                    dynamic_ncols=True)
            self._stage = stage
        self.steps.update(i - self.steps.n)  # respects tqdm's mininterval: no flood in logs

    def on_job_end(self, job, record) -> None:
        if self.steps is not None:
            self.steps.close()
            self.steps, self._stage = None, None
        if record["status"] != "ok":
            self.jobs.write(f"  failed: {job.name}: {record['error']}")
        self.jobs.update(1)

    def on_run_end(self, records, cancelled) -> None:
        for bar in (self.steps, self.jobs):
            if bar is not None:
                bar.close()


@app.command()
def run(
    suite: Path = typer.Argument(..., help="suite YAML"),
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default: the suite's `output`)"),
    shard: str = typer.Option("0/1", help="run shard i of n (i/n), for several GPUs or machines"),
    report: bool = typer.Option(True, help="write report.html at the end"),
    no_retry_failed: bool = typer.Option(False, "--no-retry-failed", help="keep failed jobs as they are"),
) -> None:
    """Run every (case x model x seed) job of a suite; finished jobs are skipped."""
    from workbench.experiment import Runner
    from workbench.suite import SuiteError, load_suite

    try:
        spec = load_suite(suite)
        i, n = (int(x) for x in shard.split("/"))
        if not 0 <= i < n:
            raise ValueError
    except SuiteError as e:
        _fail(str(e))
    except ValueError:
        _fail(f"--shard {shard!r} must be i/n with 0 <= i < n, e.g. 0/4")
    runner = Runner(spec, out, [_ProgressBar()], shard=(i, n), retry_failed=not no_retry_failed)
    tracker = None
    if spec.tracking.wandb and spec.tracking.mode != "disabled":
        from workbench.tracking import WandbTracker

        tracker = WandbTracker(spec, run_dir=runner.store.root)  # the wandb run lives in the run folder
        runner.callbacks.append(tracker)
    for why in runner.skipped:
        typer.echo(f"not applicable, skipped: {why}")
    records = []
    try:
        for rec in runner.run():
            records.append(rec)
    except KeyboardInterrupt:
        runner.cancel()
    ok = sum(r["status"] == "ok" for r in records)
    failed = len(records) - ok
    if runner.cancelled:
        typer.echo(f"interrupted: {len(records)} finished jobs are saved; run the same command to resume")
    typer.echo(f"{ok} jobs done, {failed} failed, results in {runner.store.results}")
    if report and spec.tracking.html_report and runner.store.results.exists():
        from workbench.report import write_report

        path = write_report(runner.store.root)
        typer.echo(f"report: {path}")
    if tracker is not None and tracker.run_dir:
        typer.echo(f"wandb ({spec.tracking.mode}): {tracker.run_dir}")


@app.command("eval")
def eval_(
    video: Path = typer.Argument(..., help="video to score"),
    image: Optional[Path] = typer.Option(None, "--image", help="reference image (identity, i2v metrics)"),
    audio: Optional[Path] = typer.Option(None, "--audio", help="driving audio (default: the clip's own track)"),
    reference: Optional[Path] = typer.Option(None, "--reference", help="ground-truth video (psnr, ssim, lpips, fvd)"),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="comma-separated score or group names"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Score one clip; prints every applicable score with its backend."""
    from workbench.media import MediaError
    from workbench.metrics import UnknownMetric, evaluate

    names = [m for m in metrics.split(",") if m.strip()] if metrics else None
    try:
        result = evaluate(video, image=image, audio=audio, reference=reference, metrics=names)
    except (MediaError, UnknownMetric) as e:
        _fail(str(e))
    payload = result.to_json(str(video))
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    for name, value in result.scores.items():
        shown = "-" if value is None else f"{value:.4f}"
        extra = f"  ({result.errors[name]})" if name in result.errors else ""
        typer.echo(f"{name:24s} {shown:>10s}  {result.backends.get(name, '')}{extra}")


@app.command()
def models(as_json: bool = typer.Option(False, "--json")) -> None:
    """List registered models with task, defaults and whether their weights are here."""
    from workbench.models import registry

    rows = [cls.describe() for cls in registry().values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        weights = "model-free" if r["weights"] is None else (
            f"{r['weights']} ({'available' if r['weights_available'] else 'not downloaded'})")
        typer.echo(f"{r['name']:12s} {r['task']:16s} {weights}\n    {r['description']}")


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
                         "description": s.description, "source": s.source})
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


@app.command()
def report(run_dir: Path = typer.Argument(..., help="run folder holding results.jsonl")) -> None:
    """Write RUN_DIR/report.html (+ figures) from results.jsonl alone."""
    from workbench.report import ReportError, write_report

    try:
        typer.echo(str(write_report(run_dir)))
    except ReportError as e:
        _fail(str(e))


@app.command()
def calibrate(
    suite: Path = typer.Argument(Path("evals/suites/metric-calibration.yaml"), help="calibration suite YAML"),
    out: Path = typer.Option(Path("runs/calibration"), "--out", help="folder for calibration.json/.md"),
) -> None:
    """Perturb real clips and check that every metric moves the expected way (exit 1 if any check fails)."""
    from workbench.calibrate import run_calibration

    try:
        result = run_calibration(suite, out, progress=lambda msg: typer.echo(msg, err=True))
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    for err in result.errors:
        typer.echo(f"note: {err}")
    typer.echo(f"{result.passed} passed, {result.failed} failed, {result.unscored} not scorable; "
               f"table: {out / 'calibration.md'}")
    if result.failed:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
