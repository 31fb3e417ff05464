"""Experiments: expand a suite into jobs and run them, resumably, from any number of processes.

jobs = cases x models x seeds x outputs. Two identities keep work from being merged or repeated:

- `clip_id` hashes everything that determines the *video*: model, resolved parameters and options,
  generation seed, prompts, input file contents (or the upstream text-to-image job for `image_from`).
  Clips are stored by it, so two cases that would generate the same video share one generation.
- `job_id` hashes the clip id with the *case* (its id and reference video): everything that
  determines the record, apart from the scoring. The scoring (which metrics, at which version) is
  stored in the record; a re-run that asks for new metrics, or finds a metric whose version changed,
  scores the existing clip for exactly those, without regenerating.

Running a job claims it in the run folder (so N processes do each job once), generates the clip,
saves the mp4, scores the saved file, and appends one record. A failing job records its error and the
run goes on; Ctrl-C, SIGTERM or `cancel()` loses at most the job in flight. `Runner.run()` yields
records as they finish and reports progress through callbacks: the CLI progress bar, the notebook
studio and W&B logging all sit on the same loop.

The Runner knows the creative workflow only through the hooks of `workbench.hooks` (before the jobs:
`resolve_case`, `resolve_model`, `for_model`; per record: `objective`, `face_reference`; after the run:
`after_run`), which `workflow/steps.py` registers (Elements, speech, the prompt enhancer, `auto`
routing, best-of-N, the Composer). This module imports nothing from `workbench.workflow`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Protocol

from workbench import hooks
from workbench.hashing import file_hash
from workbench.media import (MEDIA_SUFFIXES, Clip, MediaError, input_problem, load_audio, load_image,  # noqa: F401
                             silent_audio_note)
from workbench.models.base import GenerationError, GenerationRequest, UnknownModel, get_generator
from workbench.store import FolderHoldsOtherSuite, RunStore, StoreError, json_default
from workbench.suite import CaseSpec, ModelSpec, Suite, save_snapshot

RECORD_VERSION = 2

def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def derive_seed(seed: int, output: int) -> int:
    """The generation seed of output `output` of a request with `seed` (output 0 keeps the seed)."""
    if output == 0:
        return seed
    return int(hashlib.sha256(f"{seed}:{output}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


@dataclass
class Job:
    """One (case, model, seed, output) of a suite."""

    case: CaseSpec
    model: ModelSpec
    seed: int
    image: Path | None
    audio: Path | None
    reference: Path | None
    output: int = 0
    id: str = ""
    clip_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # resolved (defaults + overrides)
    options: dict[str, Any] = field(default_factory=dict)  # resolved run options
    task: str = ""
    upstream: "Job | None" = None  # the text-to-image job whose image this job animates (image_from)
    setup_error: str | None = None  # known before running (a bad input file)
    workflow: dict[str, Any] = field(default_factory=dict)  # resolved Element, speech, auto route
    video: Path | None = None  # source footage (face swap)

    @property
    def gen_seed(self) -> int:
        return derive_seed(self.seed, self.output)

    @property
    def name(self) -> str:
        out = f" / output {self.output}" if self.output else ""
        return f"{self.case.id} / {self.model.display} / seed {self.seed}{out}"

    @property
    def clip_stem(self) -> str:
        """File stem of the clip: readable, and unique by the clip id (names are validated safe)."""
        out = f"-o{self.output}" if self.output else ""
        return f"{self.model.display}__s{self.seed}{out}__{self.clip_id[:12]}"

    @property
    def clip_name(self) -> str:
        return self.clip_stem + (".png" if self.task == "text-to-image" else ".mp4")


def inapplicable(case: CaseSpec, model: ModelSpec) -> str | None:
    """Why a registered model cannot take this case at all (it needs an input the case lacks)."""
    cls = get_generator(model.name)
    have = {"image": bool(case.image) or model.image_from is not None, "audio": bool(case.audio),
            "prompt": bool(case.prompt), "video": bool(case.video)}
    missing = [k for k in sorted(cls.requires) if not have.get(k, False)]
    return f"{model.display} needs {', '.join(missing)}; case {case.id} has none" if missing else None


def hears_audio(model_name: str) -> bool:
    """Whether a registered model is driven by the case's audio (talking heads); image-to-video models,
    most hosted ones and LTX-2 (which makes its own soundtrack) are not."""
    cls = get_generator(model_name)
    takes = getattr(cls, "accepts", None)
    return (takes is None or "audio" in takes) and not getattr(getattr(cls, "spec", None), "audio_out", False)


def unheard_audio(suite: Suite, case: CaseSpec, model: ModelSpec) -> str | None:
    """Why a (case, model) job is left out under `unheard_audio: skip`: the case has driving audio and
    the model never hears it. None when it runs."""
    if getattr(suite, "unheard_audio", "run") != "skip" or not (case.audio or case.text is not None):
        return None
    if hears_audio(model.name) or get_generator(model.name).task == "text-to-image":  # a picture has no lips
        return None
    return (f"{model.display} takes no driving audio; case {case.id} has audio (lip-sync not applicable; "
            f"`unheard_audio: skip`)")


def expand_jobs(suite: Suite, skipped: list[str] | None = None) -> list[Job]:
    """All jobs of a suite in a stable order (case, seed, output, then model), each with its ids.

    (case, model) pairs where the case lacks an input the model requires (a talking-head model on a
    case without audio) are left out and described in `skipped`. The suite must be valid
    (`load_suite` checks it): unknown models and parameters are errors there, not here.
    """
    resolve_case, for_model = hooks.first("resolve_case"), hooks.first("for_model")  # workflow.steps
    resolve_model = hooks.providers("resolve_model")
    jobs = []
    for case in suite.cases:
        extra: dict[str, Any] = {}
        case_error = None
        if resolve_case is not None and (case.text is not None or (case.image or "").startswith("element:")
                                         or case.enhance):
            case, extra, case_error = resolve_case(suite, case, enhance=False)  # Element image, speech from text
        fitting = []
        for model in suite.models:
            routed = auto_error = None
            for step in resolve_model:
                model, routed, auto_error = step(case, model, suite)  # `auto` -> the router's pick
                if routed or auto_error:
                    break
            if auto_error:
                if skipped is not None:
                    skipped.append(auto_error)
                continue
            why = inapplicable(case, model) or unheard_audio(suite, case, model)  # `unheard_audio: skip`
            if why:
                if skipped is not None:
                    skipped.append(why)
            else:  # `enhance:` on: the prompt written for this model's own family
                fitting.append((model, routed, *(for_model(suite, case, model, extra, case_error) if for_model
                                                 else (case, extra, case_error))))
        for seed in suite.seeds:
            outputs = max(f[0].num_outputs for f in fitting) if fitting else 0
            for output in range(outputs):
                by_label: dict[str, Job] = {}
                for model, routed, model_case, model_extra, model_error in fitting:
                    if output >= model.num_outputs:
                        continue
                    job = _make_job(suite, model_case, model, int(seed), output, by_label)
                    job.workflow = {**model_extra, **({"route": routed} if routed else {})}
                    if model_error:
                        job.setup_error = model_error
                    by_label[model.display] = job
                    jobs.append(job)
    return jobs


def _make_job(suite: Suite, case: CaseSpec, model: ModelSpec, seed: int, output: int,
              earlier: dict[str, Job]) -> Job:
    cls = get_generator(model.name)
    job = Job(case, model, seed, suite.resolve(case.image), suite.resolve(case.audio), suite.resolve(case.reference),
              output=output, params=cls.resolve_params(model.params), options=cls.resolve_options(model.options),
              task=cls.task, video=suite.resolve(case.video))
    if model.image_from is not None:
        job.upstream = earlier.get(model.image_from)
        job.image = None
        if job.upstream is None:
            job.setup_error = (f"image_from '{model.image_from}' has no job for case {case.id} (it does not fit "
                               f"this case); give the case an image or drop image_from")
    inputs: dict[str, str | None] = {}
    for kind in ("image", "audio", "reference", "video"):
        p = getattr(job, kind)
        if p is None:
            inputs[kind] = None
            continue
        why = input_problem(kind, p)
        if why and not job.setup_error:
            job.setup_error = why
        inputs[kind] = f"invalid:{p}" if why else file_hash(p)
    if job.upstream is not None:
        inputs["image"] = f"clip:{job.upstream.clip_id}"
    volatile = getattr(cls, "volatile_options", frozenset())  # hosted: how to wait, not what to make
    job.clip_id = _digest({
        "v": RECORD_VERSION, "model": model.name, "params": job.params,
        "options": {k: v for k, v in job.options.items() if k not in volatile},
        "seed": job.gen_seed, "prompt": case.prompt, "negative_prompt": case.negative_prompt,
        "image": inputs["image"], "audio": inputs["audio"], "max_image_side": suite.max_image_side,
        **({"video": inputs["video"]} if inputs["video"] else {}),  # face swap's source (absent: ids unchanged)
    })
    job.id = _digest({"v": RECORD_VERSION, "clip": job.clip_id, "case": case.id, "reference": inputs["reference"]})
    return job


# --------------------------------------------------------------------------------------------------
# scoring identity
# --------------------------------------------------------------------------------------------------
def scoring_plan(metrics: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """(score names asked for, {score name: "group@version"}) for a suite's metric selection."""
    from workbench.metrics import resolve  # local (start-up): the metric modules load when a Runner is made

    classes, wanted = resolve(metrics, motion_context=True)  # consistency is ranked beside motion
    version = {s: f"{cls.name}@{getattr(cls, 'version', '1')}" for cls in classes for s in cls.score_names()}
    return wanted, {s: version[s] for s in wanted}


def missing_scores(record: dict[str, Any], wanted: list[str], versions: dict[str, str]) -> list[str]:
    """Scores asked for that an ok record does not hold at the current metric version. A name the
    record was asked for and left out (not applicable to its inputs) counts as done."""
    asked = set(record.get("metrics_requested") or record.get("scores", {}))
    have = record.get("metric_versions") or {}
    return [s for s in wanted if s not in asked or have.get(s) != versions[s]]


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
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import torch

        if torch.cuda.is_available():
            info["cuda"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return info


def distributed_shard() -> tuple[int, int] | None:
    """(process index, process count) under `accelerate launch` (or torchrun); None for one process."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU ranks (tests, CPU boxes) use gloo
    return state.process_index, state.num_processes


class RunCallbacks(Protocol):
    """Progress hooks. Every method is optional: implement the ones you need."""

    def on_run_start(self, jobs: list[Job], todo: list[Job]) -> None: ...
    def on_job_start(self, job: Job, index: int, total: int) -> None: ...
    def on_step(self, job: Job, stage: str, i: int, n: int) -> None: ...
    def on_job_end(self, job: Job, record: dict[str, Any]) -> None: ...
    def on_run_end(self, records: list[dict[str, Any]], cancelled: bool) -> None: ...


class Cancelled(Exception):
    """Raised inside a job when `Runner.cancel()` was called."""


class NotReady(RuntimeError):
    """The run cannot start: a hosted model's key is missing, or the estimate exceeds the budget.
    One line naming the variable or the figures, and the fix; nothing was run."""


@lru_cache(maxsize=256)
def _audio_seconds(path: str) -> float | None:
    try:
        return load_audio(path).duration
    except (MediaError, OSError):
        return None


class Runner:
    """Runs a suite's jobs into a run folder. Python API first: the CLI and the UI are shells over it.

    >>> runner = Runner(load_suite("evals/suites/smoke.yaml"))
    >>> for record in runner.run():
    ...     print(record["case"], record["model"], record["scores"])
    """

    def __init__(self, suite: Suite, out_dir: str | Path | None = None, callbacks: list[Any] | None = None,
                 shard: tuple[int, int] = (0, 1), retry_failed: bool = True, wait_seconds: float = 0.5,
                 mix_suites: bool = False):
        """`mix_suites`: run even when the folder holds records of a differently named suite (they are
        pooled in one report); by default `run()` refuses with `FolderHoldsOtherSuite`."""
        self.suite = suite
        self.mix_suites = mix_suites
        self.store = RunStore(suite.output_dir(out_dir))
        self.callbacks = list(callbacks or [])
        self.shard = shard
        self.retry_failed = retry_failed
        self.wait_seconds = wait_seconds  # poll interval while another process holds an upstream job
        self._cancel = threading.Event()
        self.lost: dict[str, str] = {}  # job id -> why its finished clip is made again (set by run())
        self.skipped: list[str] = []  # (case, model) pairs that do not fit, with the reason
        self.wanted, self.versions = scoring_plan(suite.metrics)
        all_jobs = expand_jobs(suite, self.skipped)
        # shard by (case, seed, output) group, so an image_from chain stays in one process
        groups: dict[tuple, int] = {}
        for j in all_jobs:
            groups.setdefault((j.case.id, j.seed, j.output), len(groups))
        self.jobs = [j for j in all_jobs if groups[(j.case.id, j.seed, j.output)] % shard[1] == shard[0]]
        self.outputs: dict[str, Path] = {}  # files written after the jobs (bestofn.json, composed mp4)
        self._faces: dict[str, Any] = {}  # Element name -> its stored face embedding (FaceReference or None)
        objective = suite.effective_objective()
        parse = hooks.first("objective")  # best-of-N (workflow.bestofn): a record's objective value
        self.objective = parse(objective) if objective is not None and parse is not None else None

    # control -------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop after the current step; safe to call from another thread. Finished records stay."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _todo(self, job: Job, rec: dict[str, Any] | None, lost: str | None | bool = False) -> tuple[bool, list[str] | None]:
        """(needs work, scores to add to an existing clip or None for a full run). A finished job
        whose clip (or image) is gone or broken is run again in full. `lost`: why its output is gone
        (None: it is there), when the caller already looked; False: look here."""
        if rec is None:
            return True, None
        if rec.get("status") != "ok":
            return self.retry_failed, None
        if (self._lost_output(rec) if lost is False else lost) is not None:
            return True, None  # the clip is gone: make it again
        if job.task == "text-to-image":
            return False, None
        missing = missing_scores(rec, self.wanted, self.versions)
        if not missing:
            return False, None
        return True, missing

    def _lost_output(self, rec: dict[str, Any]) -> str | None:
        """Why an ok record's output file cannot be used any more (None when it can): missing, empty,
        or not an mp4/png by its first bytes (a cheap check: no decoding)."""
        rel = rec.get("image_out") if rec.get("task") == "text-to-image" else rec.get("video")
        if not rel:
            return "its record names no clip"
        return clip_problem(self.store.root / rel)

    def lost_clips(self) -> list[tuple[Job, str]]:
        """(job, why) for finished jobs of this runner whose clip is gone or broken: `run()` makes them
        again. For the message shown before a run ("2 finished clips are missing: making them again")."""
        latest = self.store.latest()
        out = []
        for j in self.jobs:
            rec = latest.get(j.id)
            if rec is not None and rec.get("status") == "ok":
                why = self._lost_output(rec)
                if why:
                    out.append((j, why))
        return out

    def other_suites(self) -> dict[str, int]:
        """{suite name: records} of differently named suites already in the run folder."""
        return {k: v for k, v in self.store.suite_names().items() if k != self.suite.name}

    def check_folder(self) -> None:
        """Refuse (FolderHoldsOtherSuite, one line with the fix) a run folder that holds another
        suite's records, unless `mix_suites`: two experiments in one folder are pooled as one report."""
        others = self.other_suites()
        if not others or self.mix_suites:
            return
        held = ", ".join(f"'{k}' ({v} record{'s' if v != 1 else ''})" if v else f"'{k}' (its suite.json)"
                         for k, v in sorted(others.items()))
        raise FolderHoldsOtherSuite(
            f"{self.store.root}: holds another suite, {held}; running suite '{self.suite.name}' into it would pool "
            f"both in one report; pass --out to another folder (or --force to mix them on purpose)")

    def _work(self) -> list[tuple[Job, list[str] | None]]:
        """(job, scores to add or None for a full run) for every job that still needs work."""
        return self._plan()[0]

    def _plan(self) -> tuple[list[tuple[Job, list[str] | None]], dict[str, str]]:
        """(`_work()`, {job id: why its finished clip is gone}) in one pass over the jobs: each finished
        record's clip is looked at once (a run of 10,000 finished jobs starts without re-checking them)."""
        work: list[tuple[Job, list[str] | None]] = []
        lost: dict[str, str] = {}
        for j in self.jobs:
            rec = self.store.get(j.id)
            why = self._lost_output(rec) if rec is not None and rec.get("status") == "ok" else None
            if why is not None:
                lost[j.id] = why
            need, only = self._todo(j, rec, lost=why)
            if need:
                work.append((j, only))
        return work, lost

    def pending(self) -> list[Job]:
        """Jobs that still need work: never run, failed (when retrying), or missing scores."""
        return [j for j, _ in self._work()]

    def rescoring_only(self) -> bool:
        """True when there is work and all of it is scoring existing clips (W&B job_type "eval")."""
        work = self._work()
        return bool(work) and all(only is not None for _, only in work)

    def status(self) -> dict[str, int]:
        """Counts over this runner's jobs from the store: ok, failed, missing (not yet recorded)."""
        latest = self.store.latest()
        out = {"total": len(self.jobs), "ok": 0, "failed": 0, "missing": 0}
        for j in self.jobs:
            rec = latest.get(j.id)
            out["missing" if rec is None else "ok" if rec.get("status") == "ok" else "failed"] += 1
        return out

    # hosted models: keys, cost, budget ----------------------------------------------------------------
    def missing_keys(self, jobs: list[Job] | None = None) -> list[str]:
        """One line per provider whose key is absent, over the (pending) jobs of hosted models."""
        out: dict[str, str] = {}
        for j in (self.pending() if jobs is None else jobs):
            cls = get_generator(j.model.name)
            if getattr(cls, "provider", None):
                prov = cls.provider_info()
                if not prov.key_present() and prov.name not in out:
                    out[prov.name] = prov.missing_key_message(j.model.display)
        return list(out.values())

    def estimate(self, jobs: list[Job] | None = None) -> dict[str, Any]:
        """Estimated cost of the jobs still to run (default: pending), per model label and in total (USD).

        {"models": {label: {"model", "provider", "jobs", "submitted", "estimate", "currency", "usd",
        "unknown", "rule"}}, "total_usd", "unknown", "jobs"}. A job whose remote job is already stored
        (submitted, not failed) is resumed, not paid again: it is counted under "submitted" at 0.
        Local models cost nothing here and are listed with usd 0."""
        jobs = self.pending() if jobs is None else jobs
        models: dict[str, dict[str, Any]] = {}
        for j in jobs:
            cls = get_generator(j.model.name)
            row = models.setdefault(j.model.display, {
                "model": j.model.name, "provider": getattr(cls, "provider", None), "jobs": 0, "submitted": 0,
                "estimate": 0.0, "currency": "USD", "usd": 0.0, "unknown": 0, "rule": None})
            row["jobs"] += 1
            if not getattr(cls, "provider", None):
                continue
            state = self.store.remote_state(j.clip_id) if self.store.claims.is_dir() else None
            if state and state.get("handle") and state.get("status") not in ("failed", "refused"):
                row["submitted"] += 1
                continue
            audio_s = _audio_seconds(str(j.audio)) if j.audio else None
            amount, rule = cls.estimate_cost(j.params, audio_seconds=audio_s)
            if rule is not None:
                row["rule"], row["currency"] = rule.describe(), rule.currency
            usd = rule.to_usd(amount) if rule is not None else None
            if amount is None or usd is None:
                row["unknown"] += 1
                continue
            row["estimate"] = round(row["estimate"] + amount, 6)
            row["usd"] = round(row["usd"] + usd, 6)
        return {"models": models, "total_usd": round(sum(r["usd"] for r in models.values()), 6),
                "unknown": sum(r["unknown"] for r in models.values()), "jobs": len(jobs)}

    def check_ready(self) -> dict[str, Any]:
        """Refuse (NotReady, one line) a run whose hosted models lack their keys, or whose estimate of
        the not-yet-finished jobs exceeds the suite's `budget:`. Returns the estimate. Prepares the run
        folder first, so a folder fault is named as `run()` names it (StoreError)."""
        self.store.prepare()
        return self._check_ready(self.pending())

    def _check_ready(self, todo: list[Job]) -> dict[str, Any]:
        """`check_ready` over jobs `todo` of a prepared folder."""
        missing = self.missing_keys(todo)
        if missing:
            more = f" (and {len(missing) - 1} more provider{'s' if len(missing) > 2 else ''})" if len(missing) > 1 else ""
            raise NotReady(f"{missing[0]}{more}; nothing was run")
        est = self.estimate(todo)
        budget = getattr(self.suite, "budget", None)
        if budget is not None and est["total_usd"] > budget:
            raise NotReady(f"estimated cost {est['total_usd']:.2f} USD of {est['jobs']} unfinished jobs exceeds the "
                           f"suite's budget {budget:.2f} USD; raise `budget:`, drop cases or models, or see "
                           f"`workbench run --dry-run`; nothing was run")
        return est

    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(*args)

    # running -------------------------------------------------------------------------------------------
    def run(self) -> Iterator[dict[str, Any]]:
        """Run every pending job, yielding each record the moment it is stored.

        Jobs held by another live process (a second `workbench run`, another accelerate rank) are left
        to it; a job whose upstream text-to-image job another process holds waits for it.
        """
        self.check_folder()
        self.store.prepare()
        work, self.lost = self._plan()  # finished but the clip is gone (self.lost): made again
        todo = [j for j, _ in work]
        self._check_ready(todo)  # hosted models: keys present, estimate within the budget
        save_snapshot(self.suite, self.store.root)  # RUN_DIR/suite.json: what this folder was run with
        self._emit("on_run_start", self.jobs, todo)
        done: list[dict[str, Any]] = []
        queue = deque(todo)
        index = 0
        try:
            while queue and not self._cancel.is_set():
                job = queue.popleft()
                if job.upstream is not None and self._upstream_busy(job.upstream):
                    queue.append(job)
                    if all(j.upstream is not None and self._upstream_busy(j.upstream) for j in queue):
                        time.sleep(self.wait_seconds)
                    continue
                if not self.store.claim(job.id):
                    continue  # another process is on it
                try:
                    rec = self.store.get(job.id)  # reads only what was appended since the last look
                    needs, rescore = self._todo(job, rec)
                    if not needs:
                        continue  # finished by another process meanwhile
                    self._emit("on_job_start", job, index, len(todo))
                    index += 1
                    prev = rec if rescore else None
                    try:
                        record = self.run_job(job, prev=prev, only=rescore)
                    except Cancelled:
                        break
                    if job.id in self.lost:
                        record["regenerated"] = f"{self.lost[job.id]}: made again"
                    self.store.append(record)
                finally:
                    self.store.release(job.id)
                done.append(record)
                self._emit("on_job_end", job, record)
                yield record
            if not self._cancel.is_set():
                outputs: dict[str, Path] = {}
                for after_run in hooks.providers("after_run"):  # best-of-N rankings, the composed mp4
                    outputs.update(after_run(self) or {})
                self.outputs = outputs
        finally:
            self._emit("on_run_end", done, self._cancel.is_set())

    def run_all(self) -> list[dict[str, Any]]:
        return list(self.run())

    def _upstream_busy(self, up: Job) -> bool:
        """The upstream job has no record yet and a live process holds it (so: wait for it)."""
        if self.store.get(up.id) is not None:
            return False
        if self.store.claim(up.id):
            self.store.release(up.id)
            return False
        return True

    def _step(self, job: Job, stage: str):
        def progress(i: int, n: int) -> None:
            if self._cancel.is_set():
                raise Cancelled()
            self.store.heartbeat(job.id)
            self._emit("on_step", job, stage, i, n)
        return progress

    def run_job(self, job: Job, prev: dict[str, Any] | None = None, only: list[str] | None = None) -> dict[str, Any]:
        """Generate (or reuse), save and score one job; never raises for a bad input (the record
        holds the error). With `prev` and `only`, the clip of `prev` is kept and only the scores
        named in `only` are computed and merged into it."""
        record = self._base_record(job)
        timings: dict[str, float] = {}
        warnings: list[str] = []
        request: GenerationRequest | None = None
        t_start = time.perf_counter()
        try:
            if job.setup_error:
                raise GenerationError(job.setup_error)
            t0 = time.perf_counter()
            request = self._request(job)
            timings["load_inputs"] = time.perf_counter() - t0
            if request.audio is not None and request.audio.is_silent:
                warnings.append(silent_audio_note(request.audio, job.audio or "audio"))
            path = self.store.clips / job.clip_name
            if not path.resolve().is_relative_to(self.store.clips.resolve()):  # names are validated; belt and braces
                raise GenerationError(f"{job.clip_name}: clip name leaves the run folder; rename the case or label")
            reused = prev is not None or clip_problem(path) is None  # a broken leftover is made again
            if not reused:
                t0 = time.perf_counter()
                cls = get_generator(job.model.name)
                if getattr(cls, "provider", None):  # hosted: the remote job persists beside the claims
                    request.remote = self.store.remote(job.clip_id)
                generator = cls(options=job.options, **job.params)
                clip = generator.generate(request, progress=self._step(job, "generate"))
                warnings.extend(getattr(generator, "warnings", None) or [])  # e.g. face swap: frames without a face
                timings["generate"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                if job.task == "text-to-image":
                    _save_png(clip.first_frame(), path)
                else:
                    clip.save(path)
                if request.remote is not None:
                    request.remote.cleanup()  # the provider's download, now saved as the clip
                timings["save"] = time.perf_counter() - t0
            record["reused_clip"] = reused
            if job.task == "text-to-image":
                record["image_out"] = str(path.relative_to(self.store.root))
                record.update(metrics_requested=self.wanted, metric_versions={}, status="ok")
            else:
                record["video"] = str(path.relative_to(self.store.root))
                self._score(job, request, path, record, prev, only, timings, warnings)
                record["status"] = "ok"
                if self.objective is not None:
                    record["objective"] = self.objective(record)
        except Cancelled:
            raise
        except KeyboardInterrupt:
            self._cancel.set()
            raise Cancelled() from None
        except (MediaError, GenerationError, UnknownModel, StoreError) as e:
            record.update(status="error", error=str(e), error_type=getattr(e, "error_type", type(e).__name__))
        except Exception as e:  # an unexpected failure: keep the run going, keep the trace
            record.update(status="error", error=f"{type(e).__name__}: {e}".splitlines()[0],
                          error_type=type(e).__name__, traceback=traceback.format_exc(limit=8))
        finally:
            self._remote_fields(job, record, request, prev, warnings)
        timings["total"] = time.perf_counter() - t_start
        record["warnings"] = warnings
        record["timings"] = {k: round(v, 4) for k, v in timings.items()}
        record["finished_at"] = _now()
        return record

    def _remote_fields(self, job: Job, record: dict[str, Any], request: GenerationRequest | None,
                       prev: dict[str, Any] | None, warnings: list[str]) -> None:
        """Hosted models: the record's `remote` (provider, remote job id, status, resumed, retries) and
        `cost` (estimated, charged, currency, usd, source, rule) blocks, and the generator's warnings.
        A clip reused from an earlier record keeps that record's blocks; one shared with another case
        is charged there (source "reused")."""
        remote = getattr(request, "remote", None)
        if remote is not None and remote.info:
            info = remote.info
            record["remote"] = dict(info.get("remote") or {})
            if info.get("cost") is not None:
                record["cost"] = dict(info["cost"])
            warnings.extend(w for w in info.get("warnings") or [] if w not in warnings)
            return
        if not getattr(get_generator(job.model.name), "provider", None) or not record.get("reused_clip"):
            return
        if prev is not None and prev.get("cost") is not None:
            record["remote"], record["cost"] = prev.get("remote"), prev["cost"]
            return
        state = self.store.remote_state(job.clip_id) or {}
        handle = state.get("handle") or {}
        record["remote"] = {"provider": state.get("provider"), "model": state.get("remote_model"),
                            "job_id": handle.get("id"), "status": state.get("status"), "resumed": False}
        record["cost"] = {"estimated": state.get("estimate"), "charged": 0.0, "currency": state.get("currency") or "USD",
                          "usd": 0.0, "source": "reused", "rule": None}

    def _element_face(self, job: Job):
        """The stored face embedding of the job's Element (a character), for identity; else None.
        Loaded once per Element per run."""
        element = (job.workflow or {}).get("element") or {}
        if not element.get("embedding_backend"):
            return None
        name = element["name"]
        if name not in self._faces:
            load = hooks.first("face_reference")  # workflow.steps: the Element library's stored embedding
            self._faces[name] = load(self.suite, name) if load is not None else None
        return self._faces[name]

    def _score(self, job: Job, request: GenerationRequest, path: Path, record: dict[str, Any],
               prev: dict[str, Any] | None, only: list[str] | None, timings: dict[str, float],
               warnings: list[str]) -> None:
        """Score the saved clip (only the missing scores when rescoring) and fill the record."""
        from workbench.metrics import evaluate  # local (start-up), as in scoring_plan

        # lip-sync follows the audio the model heard: a model that takes no driving audio (an image-to-video
        # family) is scored against its own soundtrack, if it made one, never against the case's speech
        takes = getattr(get_generator(job.model.name), "accepts", None)
        heard = request.audio if takes is None or "audio" in takes else None
        if request.audio is not None and heard is None:
            warnings.append(f"lip-sync not applicable: {job.model.name} takes no driving audio, so the case's audio "
                            f"is not used (lip-sync scores the clip's own soundtrack, if any; `unheard_audio: skip` "
                            f"in the suite leaves such jobs out)")
        saved = Clip.open(path, load_audio_track=heard is None)  # a generated soundtrack is scored too
        w, h = saved.size
        record["clip"] = {"frames": saved.num_frames, "fps": saved.fps, "width": w, "height": h,
                          "seconds": round(saved.duration, 3), "audio": saved._info.has_audio if saved._info else False}
        names = only if only is not None else self.wanted
        reference = Clip.open(job.reference) if job.reference else None
        source = Clip.open(job.video, load_audio_track=False) if job.video else None  # face swap's footage
        t0 = time.perf_counter()
        face_reference = self._element_face(job)
        result = evaluate(saved, image=request.image, audio=heard, reference=reference, metrics=names,
                          skip_inapplicable=True, progress=self._step(job, "evaluate"), face_reference=face_reference,
                          source=source)
        if face_reference is not None and "identity_similarity" in result.scores:
            used = result.backends.get("identity_similarity") == face_reference.backend
            flow = record.get("workflow") or {}
            record["workflow"] = {**flow, "element": {**(flow.get("element") or {}), "identity_reference": (
                f"stored embedding ({face_reference.backend})" if used else
                f"reference image (the stored embedding is {face_reference.backend}, identity ran "
                f"{result.backends.get('identity_similarity')})")}}
        timings["evaluate"] = time.perf_counter() - t0
        warnings.extend(result.warnings)  # e.g. the saved clip decodes short of what its container states
        why = reference.truncation_warning() if reference is not None else None
        if why:
            warnings.append(why)
        base = prev or {}
        keep = [s for s in base.get("scores", {}) if s not in names]
        record["scores"] = {**{s: base["scores"][s] for s in keep}, **result.scores}
        record["backends"] = {**{s: v for s, v in base.get("backends", {}).items() if s in keep}, **result.backends}
        record["score_errors"] = {**{s: v for s, v in (base.get("score_errors") or {}).items() if s in keep},
                                  **result.errors}
        record["metrics_requested"] = self.wanted + [s for s in base.get("metrics_requested") or [] if s not in self.wanted]
        record["metric_versions"] = {**{s: v for s, v in (base.get("metric_versions") or {}).items() if s in keep},
                                     **{s: self.versions[s] for s in names if s in self.versions}}
        record["metric_seconds"] = {**(base.get("metric_seconds") or {}),
                                    **{k: round(v, 4) for k, v in result.seconds.items()}}
        if prev is not None:
            record["rescored"] = sorted(names)
        series = {**_load_series(self.store.root, base), **(getattr(result, "series", None) or {})}
        worst = {**(base.get("worst_frame") or {}), **(getattr(result, "worst_frame", None) or {})}
        if series:
            record["series"] = self._save_series(job, series)
        if worst:
            record["worst_frame"] = worst

    def _save_series(self, job: Job, series: dict[str, list]) -> str:
        """Per-frame score series as JSON beside the clips (one file per job: references differ)."""
        folder = self.store.root / "series"
        folder.mkdir(exist_ok=True)
        path = folder / f"{job.id}.json"
        tmp = folder / f".{job.id}.json.part-{os.getpid()}"
        tmp.write_text(json.dumps(series, default=json_default))
        tmp.replace(path)
        return str(path.relative_to(self.store.root))

    def _request(self, job: Job) -> GenerationRequest:
        image_path = job.image
        if job.upstream is not None:
            image_path = self.store.clips / job.upstream.clip_name
            if not image_path.is_file():
                rec = self.store.get(job.upstream.id) or {}
                why = f": {rec['error']}" if rec.get("error") else " (it has not run)"
                raise GenerationError(f"image_from '{job.model.image_from}' made no image for {job.case.id} seed "
                                      f"{job.seed}{why}; fix that job and re-run")
        image = load_image(image_path, max_side=self.suite.max_image_side) if image_path else None
        audio = load_audio(job.audio) if job.audio else None
        video = Clip.open(job.video) if job.video else None  # lazy: frames stream, the soundtrack is loaded
        return GenerationRequest(image=image, audio=audio, video=video, video_path=str(job.video) if job.video else None,
                                 prompt=job.case.prompt,
                                 negative_prompt=job.case.negative_prompt, seed=job.gen_seed,
                                 params=dict(job.params), image_path=str(image_path) if image_path else None,
                                 audio_path=str(job.audio) if job.audio else None)

    def _base_record(self, job: Job) -> dict[str, Any]:
        return {
            "job_id": job.id,
            "clip_id": job.clip_id,
            "record_version": RECORD_VERSION,
            "suite": self.suite.name,
            "case": job.case.id,
            "model": job.model.display,
            "model_name": job.model.name,
            "task": job.task,
            "params": job.params,
            "options": job.options,
            "seed": job.seed,
            "output": job.output,
            "gen_seed": job.gen_seed,
            "prompt": job.case.prompt,
            "negative_prompt": job.case.negative_prompt,
            "image_from": job.model.image_from,
            "inputs": {
                kind: {"path": str(p), "sha256": None if input_problem(kind, p) else file_hash(p)}
                for kind, p in (("image", job.image), ("audio", job.audio), ("reference", job.reference),
                                ("video", job.video)) if p
            },
            **({"workflow": job.workflow} if job.workflow else {}),
            **({k: job.workflow["enhance"][k] for k in ("prompt_original", "prompt_source")}
               if "enhance" in (job.workflow or {}) else {}),
            "status": "running",
            "error": None,
            "video": None,
            "scores": {},
            "backends": {},
            "score_errors": {},
            "versions": package_versions(),
            "hardware": hardware(),
            "pid": os.getpid(),
            "started_at": _now(),
        }


MAGIC = {".mp4": (4, (b"ftyp",)), ".png": (0, (b"\x89PNG",))}  # where a file's signature sits, and what it is


def clip_problem(path: Path) -> str | None:
    """Why a stored clip (mp4) or image (png) cannot be reused, without decoding it: missing, empty,
    or not the format its name says. None when it looks whole."""
    try:
        size = path.stat().st_size
    except OSError:
        return f"{path.name} is missing"
    if size == 0:
        return f"{path.name} is empty"
    at, signatures = MAGIC.get(path.suffix.lower(), (0, ()))
    if signatures:
        try:
            with open(path, "rb") as f:
                f.seek(at)
                head = f.read(4)
        except OSError:
            return f"{path.name} cannot be read"
        if head not in signatures:
            return f"{path.name} is not a{'n' if path.suffix.lower() == '.mp4' else ''} {path.suffix[1:]} file"
    return None


def _save_png(frame, path: Path) -> None:
    from PIL import Image

    tmp = path.with_name(f"{path.stem}.part-{os.getpid()}.png")
    try:
        Image.fromarray(frame).save(tmp)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"{path}: cannot write ({e.strerror or e}); check the folder's space and permissions") from None
    tmp.replace(path)


def _load_series(root: Path, record: dict[str, Any]) -> dict[str, list]:
    rel = record.get("series")
    if not rel:
        return {}
    try:
        return json.loads((root / rel).read_text())
    except (OSError, ValueError):
        return {}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
