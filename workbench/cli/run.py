"""`workbench run`: run a suite with progress bars; a thin shell over `Runner`."""
from __future__ import annotations

import contextlib
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from workbench.cli.app import app, fail as _fail, wandb_mode

STAGE_UNITS = {"evaluate": "frame", "generate": "step"}  # what a stage's progress counts


class _ProgressBar:
    """tqdm bars: one over jobs, one over the current job's steps."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.jobs = None
        self.steps = None
        self._stage = None

    runner = None  # set by `run`: its `lost` names finished jobs whose clip is gone (made again)

    def on_run_start(self, jobs, todo) -> None:
        skipped = len(jobs) - len(todo)
        if skipped:
            typer.echo(f"{skipped} of {len(jobs)} jobs already finished: skipping them")
        lost = getattr(self.runner, "lost", None) or {}
        if lost:
            names = {j.id: j.name for j in jobs}
            shown = "; ".join(f"{names.get(k, k)} ({why})" for k, why in list(lost.items())[:3])
            more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
            typer.echo(f"{len(lost)} finished job{'s' if len(lost) != 1 else ''} lost {'their clips' if len(lost) != 1 else 'its clip'}, "
                       f"making {'them' if len(lost) != 1 else 'it'} again: {shown}{more}")
        self.jobs = self._tqdm(total=len(todo), desc="jobs", unit="job", position=0, dynamic_ncols=True)

    def on_job_start(self, job, index, total) -> None:
        self.jobs.set_postfix_str(job.name)

    def on_step(self, job, stage, i, n) -> None:
        if self.steps is None or stage != self._stage:
            if self.steps is not None:
                self.steps.close()
            # scoring counts frames; generation counts the model's own steps (denoising steps of a diffusers
            # model, frames of a baseline, polls of a hosted job): "step" is true of all of them
            self.steps = self._tqdm(total=n or None, desc=stage, unit=STAGE_UNITS.get(stage, "step"), position=1,
                                    leave=False, dynamic_ncols=True)
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
    shard: Optional[str] = typer.Option(None, help="run shard i of n (i/n) by hand; under `accelerate launch` "
                                                   "the processes split the jobs by themselves"),
    report: bool = typer.Option(True, help="write report.html at the end"),
    no_retry_failed: bool = typer.Option(False, "--no-retry-failed", help="keep failed jobs as they are"),
    wandb: Optional[str] = typer.Option(None, "--wandb", callback=wandb_mode, help="online | offline | disabled (overrides the suite's "
                                                              "tracking block; default: online when logged in, else offline)"),
    force: bool = typer.Option(False, "--force", help="run into a folder that holds another suite's records "
                                                      "(both are pooled in one report)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the jobs still to run and the estimated cost of "
                                                          "hosted models per model and in total; run nothing"),
) -> None:
    """Run every (case x model x seed) job of a suite; finished jobs are skipped.

    Exit status: 0 when every job succeeded, 1 when any failed (or the run folder could not be
    written), 2 for a bad suite or option (or a folder holding another suite, without --force; a
    hosted model without its key; an estimate over the suite's `budget:`), 130 after Ctrl-C or
    SIGTERM. A finished job whose clip was deleted is run again. `--dry-run` exits 0 and runs nothing.
    """
    from workbench.experiment import NotReady, Runner, distributed_shard
    from workbench.store import FolderHoldsOtherSuite, StoreError
    from workbench.suite import SuiteError, load_suite

    try:
        spec = load_suite(suite)
    except SuiteError as e:
        _fail(str(e))
    note = single_cpu_launch_note()
    if note:
        typer.echo(note, err=True)
    dist = distributed_shard()
    if shard is not None:
        try:
            i, n = (int(x) for x in shard.split("/"))
            if not 0 <= i < n:
                raise ValueError
        except ValueError:
            _fail(f"--shard {shard!r} must be i/n with 0 <= i < n, e.g. 0/4")
        if dist is not None:
            _fail("--shard cannot be combined with accelerate launch (the processes already split the jobs)")
    else:
        i, n = dist or (0, 1)
    main_process = i == 0 or dist is None
    bar = _ProgressBar()
    from workbench.speech import planning

    with planning() if dry_run else contextlib.nullcontext():  # a dry run never pays for speech
        runner = Runner(spec, out, [bar], shard=(i, n), retry_failed=not no_retry_failed, mix_suites=force)
    try:
        runner.check_folder()
    except FolderHoldsOtherSuite as e:
        _fail(str(e))
    except StoreError as e:
        _fail(str(e), code=1)
    if dry_run:
        try:
            print_dry_run(runner)
        except OSError as e:
            _fail(f"{runner.store.root}: cannot be read ({e.strerror or e}); pass --out to a folder path", code=1)
        return
    fresh = not runner.store.root.exists()
    try:
        runner.check_ready()  # prepares the folder; hosted models: keys present, estimate within `budget:`
    except NotReady as e:
        if fresh:  # refused before any job: leave no empty run folder behind
            remove_fresh_folder(runner.store.root)
        _fail(str(e))
    except StoreError as e:
        _fail(str(e), code=1)
    others = runner.other_suites()
    if others and main_process:
        typer.echo(f"warning: {runner.store.root} also holds suite {', '.join(repr(k) for k in sorted(others))}; "
                   f"--force: the report pools them with '{spec.name}'", err=True)
    with _warnings_as_lines(bar):  # a library's warning (W&B's): one `warning:` line above the bars
        _run_jobs(runner, spec, bar, wandb, report, dist, main_process)


def _run_jobs(runner, spec, bar, wandb, report, dist, main_process) -> None:
    """The run itself, once the suite and the folder are checked: W&B, the jobs, the report, the exit."""
    from workbench.store import StoreError

    tracker = None
    if main_process:
        from workbench.tracking import attach

        tracker = attach(runner, mode=wandb)  # job_type "eval" for new metrics on existing clips; None when disabled
    for why in runner.skipped:
        typer.echo(f"not applicable, skipped: {why}")
    bar.runner = runner
    records = []
    interrupted = False
    with _sigterm_as_interrupt():
        try:
            for rec in runner.run():
                records.append(rec)
        except KeyboardInterrupt:
            interrupted = True
            runner.cancel()
        except StoreError as e:
            bar.on_run_end(records, True)
            _fail(f"{e}", code=1)
    if runner.cancelled or interrupted:
        typer.echo(f"interrupted: the job in flight was dropped; {len(records)} finished jobs this run are "
                   f"saved; run the same command to resume", err=True)
        raise typer.Exit(130)
    ok = sum(r["status"] == "ok" for r in records)
    typer.echo(f"{ok} job{'' if ok == 1 else 's'} done, {len(records) - ok} failed, results in {runner.store.results}")
    if dist is not None:
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # the main process reports once every rank is done
    if main_process and report and spec.tracking.html_report and runner.store.results.exists():
        from workbench.report import write_report

        path = write_report(runner.store.root)
        typer.echo(f"report: {path}")
    if tracker is not None and getattr(tracker, "run_dir", None):
        typer.echo(f"wandb ({getattr(tracker, 'mode', '')}): {tracker.run_dir}")
    status = runner.status()
    if status["failed"] and main_process:
        typer.echo(f"{status['failed']} of {status['total']} jobs failed; see the errors above or in "
                   f"{runner.store.results}", err=True)
    if status["failed"]:
        raise typer.Exit(1)


@contextmanager
def _warnings_as_lines(bar):
    """Print each Python warning raised meanwhile as one `warning: ...` line written above the progress
    bars (tqdm.write), not as `file:line: UserWarning: ...` glued onto a bar."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        jobs = getattr(bar, "jobs", None)
        if jobs is not None:
            jobs.write(f"warning: {text}", file=sys.stderr)
        else:
            typer.echo(f"warning: {text}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def remove_fresh_folder(root: Path) -> None:
    """Remove a run folder this command created when the run was refused before any job: only what
    preparing it made (empty folders, lock files); a folder holding anything else is left as it is."""
    import os
    import shutil

    if not root.is_dir():
        return
    for dirpath, _, files in os.walk(root):
        if any(not f.endswith(".lock") and (Path(dirpath) / f).stat().st_size for f in files):
            return
    shutil.rmtree(root, ignore_errors=True)


def missing_requirements(runner, jobs) -> list[str]:
    """One line per model of these jobs that cannot run here as set: a recipe model's repo folder, a
    diffusers model's weights (hosted keys are listed by `runner.missing_keys`)."""
    from workbench.models import get_generator

    out: dict[str, str] = {}
    for j in jobs:
        label = j.model.display
        if label in out:
            continue
        cls = get_generator(j.model.name)
        if getattr(cls, "provider", None):
            continue
        probe = getattr(cls, "missing_requirement", None)
        why = probe(j.params) if callable(probe) else None
        if why is None and not callable(probe) and cls.weights is not None and "model_id" in j.params:
            from workbench.models.diffusers_pipeline import weights_present

            model_id = str(j.params["model_id"])
            if not weights_present(model_id):
                why = (f"{label}: weights {model_id} are not on this machine; `workbench weights fetch {j.model.name}` "
                       f"(or params.model_id: a local folder)")
        elif why is None and not callable(probe) and cls.weights is not None and not cls.weights_available():
            why = f"{label}: weights {cls.weights} are not on this machine; `workbench weights fetch {j.model.name}`"
        if why:
            out[label] = why
    return list(out.values())


def unheard_audio_lines(jobs) -> list[str]:
    """One line per model that would run on cases with driving audio it never hears (image-to-video,
    most hosted models): their audio is unused and lip-sync does not apply (hosted: billed anyway)."""
    from workbench.models import get_generator
    from workbench.workflow.steps import hears_audio

    count: dict[str, int] = {}
    hosted: dict[str, bool] = {}
    for j in jobs:
        cls = get_generator(j.model.name)
        if j.audio is None or cls.task == "text-to-image" or hears_audio(j.model.name):
            continue
        count[j.model.display] = count.get(j.model.display, 0) + 1
        hosted[j.model.display] = bool(getattr(cls, "provider", None))
    return [f"lip-sync not applicable: {label} takes no driving audio; {n} job{'s' if n != 1 else ''} on cases with "
            f"audio would {'be billed and ' if hosted[label] else ''}run with the audio unused "
            f"(`unheard_audio: skip` in the suite leaves them out)" for label, n in count.items()]


def print_dry_run(runner) -> None:
    """The jobs still to run, one line each, then the estimated cost per model and in total (hosted
    models; local ones cost nothing here), the keys that are missing and the budget."""
    todo = runner.pending()
    done = len(runner.jobs) - len(todo)
    typer.echo(f"{len(todo)} of {len(runner.jobs)} jobs to run" + (f" ({done} already finished)" if done else "")
               + f" into {runner.store.root}")
    for j in todo:
        typer.echo(f"  {j.name}")
    for why in runner.skipped:
        typer.echo(f"  not applicable, skipped: {why}")
    est = runner.estimate(todo)
    typer.echo("estimated cost:")
    for label, row in est["models"].items():
        if not row["provider"]:
            typer.echo(f"  {label:28s} {row['jobs']:3d} job{'s' if row['jobs'] != 1 else ' '}  local")
            continue
        extra = []
        if row["submitted"]:
            extra.append(f"{row['submitted']} already submitted, resumed at no cost")
        if row["unknown"]:
            extra.append(f"{row['unknown']} not estimated")
        extra_s = f" ({'; '.join(extra)})" if extra else ""
        typer.echo(f"  {label:28s} {row['jobs']:3d} job{'s' if row['jobs'] != 1 else ' '}  {row['usd']:8.2f} USD"
                   f"  [{row['provider']}: {row['rule'] or 'no price rule'}]{extra_s}")
    budget = getattr(runner.suite, "budget", None)
    over = budget is not None and est["total_usd"] > budget
    typer.echo(f"  {'total':28s} {est['jobs']:3d} jobs  {est['total_usd']:8.2f} USD"
               + (f"  (budget {budget:.2f} USD{': OVER, the run would be refused' if over else ''})"
                  if budget is not None else ""))
    for line in runner.missing_keys(todo):
        typer.echo(f"missing key: {line}")
    for line in missing_requirements(runner, todo):
        typer.echo(f"missing: {line} (its jobs would fail)")
    for line in unheard_audio_lines(todo):
        typer.echo(line)
    typer.echo("dry run: nothing was run")


def single_cpu_launch_note() -> str | None:
    """One line when `accelerate launch --cpu --num_processes N` (N > 1) started this as its only
    process: accelerate runs CPU processes in parallel only through MPI, so without it every job runs
    here. Seen as ACCELERATE_USE_CPU=True with MASTER_ADDR set (what its simple launcher exports when
    more than one process was asked) and no WORLD_SIZE or MPI rank variables."""
    import os

    env = os.environ
    if env.get("ACCELERATE_USE_CPU", "").lower() not in ("true", "1", "yes"):
        return None
    if not env.get("MASTER_ADDR") or int(env.get("WORLD_SIZE", "0") or 0) > 1:
        return None
    if any(env.get(v) for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")):
        return None
    return ("note: accelerate launch --cpu started one process (it splits CPU processes only through MPI), so this "
            "process runs every job; to split on CPU use `accelerate launch --multi_gpu --num_processes N -m workbench "
            "run ...` (gloo ranks on the CPU) or `workbench run SUITE --shard i/N` in N terminals")


@contextmanager
def _sigterm_as_interrupt():
    """Handle SIGTERM like Ctrl-C (drop the job in flight, keep every finished record)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
