"""Experiments: expand a suite into jobs and run them, resumably.

jobs = cases x models x seeds. Each job has a stable id hashed from everything that determines its
clip (model, resolved parameters, seed, prompt, input file contents). Running a job generates the
clip, saves the mp4, scores the saved file and appends one record to results.jsonl at once. A re-run
skips finished jobs; a failing job records its error and the run continues; Ctrl-C or `cancel()` loses
at most the job in flight. `Runner.run()` yields records as they finish and reports progress through
callbacks, so the CLI progress bar, the notebook UI and wandb logging all sit on the same loop.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import threading
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Protocol

from workbench.media import Clip, MediaError, load_audio, load_image
from workbench.models.base import GenerationError, GenerationRequest, UnknownModel, get_generator
from workbench.store import RunStore
from workbench.suite import CaseSpec, ModelSpec, Suite

RECORD_VERSION = 1


@lru_cache(maxsize=256)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hash(path: Path | None) -> str | None:
    """sha256 of a file's bytes (cached by path+mtime+size); None when there is no such file."""
    if path is None or not path.is_file():
        return None
    st = path.stat()
    return _file_sha256(str(path), st.st_mtime_ns, st.st_size)


@dataclass
class Job:
    """One (case, model, seed) of a suite."""

    case: CaseSpec
    model: ModelSpec
    seed: int
    image: Path | None
    audio: Path | None
    reference: Path | None
    id: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # resolved (defaults + overrides) when known
    setup_error: str | None = None  # known before running (unknown model, bad parameter)

    @property
    def name(self) -> str:
        return f"{self.case.id} / {self.model.display} / seed {self.seed}"

    @property
    def clip_name(self) -> str:
        return f"{self.case.id}__{self.model.display}__s{self.seed}__{self.id[:10]}.mp4"


def inapplicable(case: CaseSpec, model: ModelSpec) -> str | None:
    """Why a registered model cannot take this case at all (it needs an input the case lacks)."""
    try:
        cls = get_generator(model.name)
    except UnknownModel:
        return None  # reported as the job's error, not skipped
    missing = [k for k in sorted(cls.requires) if not getattr(case, k)]
    return f"{model.display} needs {', '.join(missing)}; case {case.id} has none" if missing else None


def expand_jobs(suite: Suite, skipped: list[str] | None = None) -> list[Job]:
    """All jobs of a suite in a stable order (case-major), each with its id.

    (case, model) pairs where the case lacks an input the model requires (a talking-head model on a
    case without audio) are left out and described in `skipped`.
    """
    jobs = []
    for case in suite.cases:
        for model in suite.models:
            why = inapplicable(case, model)
            if why:
                if skipped is not None:
                    skipped.append(why)
                continue
            for seed in suite.seeds:
                job = Job(case, model, int(seed), suite.resolve(case.image), suite.resolve(case.audio),
                          suite.resolve(case.reference))
                try:
                    cls = get_generator(model.name)
                    job.params = cls.resolve_params(model.params)
                except (UnknownModel, GenerationError) as e:
                    job.params = dict(model.params)
                    job.setup_error = str(e)
                job.id = job_id(job, suite.max_image_side)
                jobs.append(job)
    return jobs


def job_id(job: Job, max_image_side: int) -> str:
    """Stable hash of what determines the clip. Input files count by content (path when missing)."""
    def ident(p: Path | None) -> str | None:
        return None if p is None else (file_hash(p) or f"missing:{p}")

    key = {
        "v": RECORD_VERSION,
        "model": job.model.name,
        "params": job.params,
        "seed": job.seed,
        "prompt": job.case.prompt,
        "image": ident(job.image),
        "audio": ident(job.audio),
        "max_image_side": max_image_side,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a clip or a score."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("workbench", "numpy", "torch", "av", "opencv-python-headless", "dlib-bin", "diffusers",
                "transformers", "accelerate", "lpips", "scipy", "pillow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


@lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine()}
    try:
        import os

        info["cpus"] = os.cpu_count()
        import torch

        if torch.cuda.is_available():
            info["cuda"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return info


class RunCallbacks(Protocol):
    """Progress hooks. Every method is optional: implement the ones you need."""

    def on_run_start(self, jobs: list[Job], todo: list[Job]) -> None: ...
    def on_job_start(self, job: Job, index: int, total: int) -> None: ...
    def on_step(self, job: Job, stage: str, i: int, n: int) -> None: ...
    def on_job_end(self, job: Job, record: dict[str, Any]) -> None: ...
    def on_run_end(self, records: list[dict[str, Any]], cancelled: bool) -> None: ...


class Cancelled(Exception):
    """Raised inside a job when `Runner.cancel()` was called."""


class Runner:
    """Runs a suite's jobs into a run folder. Python API first: the CLI and the UI are shells over it.

    >>> runner = Runner(load_suite("evals/suites/smoke.yaml"))
    >>> for record in runner.run():
    ...     print(record["case"], record["model"], record["scores"])
    """

    def __init__(self, suite: Suite, out_dir: str | Path | None = None, callbacks: list[Any] | None = None,
                 shard: tuple[int, int] = (0, 1), retry_failed: bool = True):
        self.suite = suite
        self.store = RunStore(suite.output_dir(out_dir))
        self.callbacks = list(callbacks or [])
        self.shard = shard
        self.retry_failed = retry_failed
        self._cancel = threading.Event()
        self.skipped: list[str] = []  # (case, model) pairs that do not fit, with the reason
        self.jobs = [j for i, j in enumerate(expand_jobs(suite, self.skipped)) if i % shard[1] == shard[0]]

    # control -------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop after the current step; safe to call from another thread. Finished records stay."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def pending(self) -> list[Job]:
        latest = self.store.latest()
        todo = []
        for job in self.jobs:
            rec = latest.get(job.id)
            if rec is None:
                todo.append(job)
            elif rec.get("status") != "ok" and self.retry_failed:
                todo.append(job)
        return todo

    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(*args)

    # running -------------------------------------------------------------------------------------------
    def run(self) -> Iterator[dict[str, Any]]:
        """Run every pending job, yielding each record the moment it is stored."""
        self.store.prepare()
        todo = self.pending()
        self._emit("on_run_start", self.jobs, todo)
        done: list[dict[str, Any]] = []
        try:
            for index, job in enumerate(todo):
                if self._cancel.is_set():
                    break
                self._emit("on_job_start", job, index, len(todo))
                try:
                    record = self.run_job(job)
                except Cancelled:
                    break
                self.store.append(record)
                done.append(record)
                self._emit("on_job_end", job, record)
                yield record
        finally:
            self._emit("on_run_end", done, self._cancel.is_set())

    def run_all(self) -> list[dict[str, Any]]:
        return list(self.run())

    def _step(self, job: Job, stage: str):
        def progress(i: int, n: int) -> None:
            if self._cancel.is_set():
                raise Cancelled()
            self._emit("on_step", job, stage, i, n)
        return progress

    def run_job(self, job: Job) -> dict[str, Any]:
        """Generate, save and score one job; never raises for a bad input (the record holds the error)."""
        record = self._base_record(job)
        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        try:
            if job.setup_error:
                raise GenerationError(job.setup_error)
            t0 = time.perf_counter()
            request = self._request(job)
            timings["load_inputs"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            generator = get_generator(job.model.name)(**job.model.params)
            clip = generator.generate(request, progress=self._step(job, "generate"))
            timings["generate"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            path = clip.save(self.store.clips / job.clip_name)
            timings["save"] = time.perf_counter() - t0
            record["video"] = str(path.relative_to(self.store.root))
            record["clip"] = {"frames": clip.num_frames, "fps": clip.fps, "width": clip.size[0],
                              "height": clip.size[1], "seconds": round(clip.duration, 3),
                              "audio": clip.audio is not None}

            t0 = time.perf_counter()
            from workbench.metrics import evaluate

            result = evaluate(Clip.open(path, load_audio_track=False), image=request.image, audio=request.audio,
                              reference=Clip.open(job.reference) if job.reference else None,
                              metrics=self.suite.metrics, skip_inapplicable=True,
                              progress=self._step(job, "evaluate"))
            timings["evaluate"] = time.perf_counter() - t0
            record.update(scores=result.scores, backends=result.backends, score_errors=result.errors,
                          metric_seconds={k: round(v, 4) for k, v in result.seconds.items()})
            record["status"] = "ok"
        except Cancelled:
            raise
        except KeyboardInterrupt:
            self._cancel.set()
            raise Cancelled() from None
        except (MediaError, GenerationError, UnknownModel) as e:
            record.update(status="error", error=str(e), error_type=type(e).__name__)
        except Exception as e:  # an unexpected failure: keep the run going, keep the trace
            record.update(status="error", error=f"{type(e).__name__}: {e}", error_type=type(e).__name__,
                          traceback=traceback.format_exc(limit=8))
        timings["total"] = time.perf_counter() - t_start
        record["timings"] = {k: round(v, 4) for k, v in timings.items()}
        record["finished_at"] = _now()
        return record

    def _request(self, job: Job) -> GenerationRequest:
        image = load_image(job.image, max_side=self.suite.max_image_side) if job.image else None
        audio = load_audio(job.audio) if job.audio else None
        if audio is not None and audio.is_silent:
            raise MediaError(f"{job.audio}: audio is silent; pass a recording with speech")
        return GenerationRequest(image=image, audio=audio, prompt=job.case.prompt, seed=job.seed,
                                 params=dict(job.params), image_path=str(job.image) if job.image else None,
                                 audio_path=str(job.audio) if job.audio else None)

    def _base_record(self, job: Job) -> dict[str, Any]:
        return {
            "job_id": job.id,
            "record_version": RECORD_VERSION,
            "suite": self.suite.name,
            "case": job.case.id,
            "model": job.model.display,
            "model_name": job.model.name,
            "params": job.params,
            "seed": job.seed,
            "prompt": job.case.prompt,
            "inputs": {
                kind: {"path": str(p), "sha256": file_hash(p)}
                for kind, p in (("image", job.image), ("audio", job.audio), ("reference", job.reference)) if p
            },
            "status": "running",
            "error": None,
            "video": None,
            "scores": {},
            "backends": {},
            "versions": package_versions(),
            "hardware": hardware(),
            "started_at": _now(),
        }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

