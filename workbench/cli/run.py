"""`workbench run`: run a suite with progress bars; a thin shell over `Runner`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail as _fail

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
