"""Registry of metrics and the one-pass evaluator.

`evaluate(video, image=..., audio=..., reference=..., metrics=[...])` decodes the clip once, feeds every
selected metric frame by frame, and returns an `EvalResult` holding scores, the backend of each score
and a one-line error for each score that could not be computed.
"""
from __future__ import annotations

import importlib
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from workbench.media import Audio, Clip, MediaError, cap_side, load_audio, load_image
from workbench.metrics.base import (ANALYSIS_MAX_SIDE, EvalInputs, FaceReference, FrameStep, Metric, MetricUnavailable,
                                   ScoreSpec)

# one module per concern; each defines Metric subclasses and lists them in METRICS
METRIC_MODULES = (
    "workbench.metrics.temporal",
    "workbench.metrics.identity",
    "workbench.metrics.lipsync",
    "workbench.metrics.quality",
    "workbench.metrics.faceswap",
)


AHEAD = 1  # frames the main thread may run ahead of the flow-metrics worker
FLOW_THREADS = 2  # threads computing the shared flows ahead (each OpenCV call on one core)


class UnknownMetric(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


def metric_classes() -> list[type[Metric]]:
    """Every registered Metric class, in module order."""
    out: list[type[Metric]] = []
    for mod in METRIC_MODULES:
        out.extend(importlib.import_module(mod).METRICS)
    return out


def score_specs() -> dict[str, ScoreSpec]:
    return {s.name: s for cls in metric_classes() for s in cls.scores}


def score_owner() -> dict[str, type[Metric]]:
    return {s.name: cls for cls in metric_classes() for s in cls.scores}


# scores that mean something for a still picture (a text-to-image record): every registered score reads
# motion, frames over time, a face over time or sound, so none does; a metric that scores one image
# (an aesthetic or prompt-alignment score) lists its names here
IMAGE_SCORES: frozenset[str] = frozenset()
STILL_TASKS = frozenset({"text-to-image"})


def applicable_scores(record: dict | str | None, names: Iterable[str]) -> list[str]:
    """The score names among `names` (in their order) that apply to a record's task: all of them for a
    clip, only `IMAGE_SCORES` for a picture (a text-to-image record: no motion, no second frame, no
    sound, so the ~25 video, face and audio scores are not "n/a", they do not exist for it). `record` is
    a record (its `task`, else `image_out` without `video` means a picture) or a task name. The report
    and the Studio list a cell's scores through this."""
    if isinstance(record, dict):
        task = record.get("task") or ("text-to-image" if record.get("image_out") and not record.get("video") else None)
    else:
        task = record
    names = list(names)
    if task in STILL_TASKS:
        return [n for n in names if n in IMAGE_SCORES]
    return names


MOTION_CONTEXT = "dynamic_degree"  # the group whose scores (dynamic_degree, flow_magnitude) tell still clips apart


def resolve(names: Iterable[str] | None, motion_context: bool = False) -> tuple[list[type[Metric]], list[str]]:
    """Map score or metric-group names to (metric classes to run, score names to report).

    None selects every metric. Unknown names raise UnknownMetric listing the known ones; so does a
    selection that names nothing (`[]`, `[""]`, `--metrics ,`): an empty score table is never what
    was meant. `motion_context` (runs, whose rankings compare models): a selection holding a score that
    is trivially perfect on a still clip (`ScoreSpec.rewards_stillness`) also gets dynamic_degree and
    flow_magnitude, which the ranking needs to judge those scores on moving clips only.
    """
    picked, wanted = _resolve(names)
    if motion_context:
        specs = score_specs()
        if any(specs[s].rewards_stillness for s in wanted if s in specs) and "flow_magnitude" not in wanted:
            cls = next(c for c in metric_classes() if c.name == MOTION_CONTEXT)
            if cls not in picked:
                picked.append(cls)
            wanted.extend(s for s in cls.score_names() if s not in wanted)
    return picked, wanted


def _resolve(names: Iterable[str] | None) -> tuple[list[type[Metric]], list[str]]:
    classes = metric_classes()
    if names is None:
        return classes, [s.name for c in classes for s in c.scores]
    if isinstance(names, str):
        names = names.split(",")
    by_group = {c.name: c for c in classes}
    owner = score_owner()
    known = ", ".join(sorted(set(by_group) | set(owner)))
    picked: list[type[Metric]] = []
    wanted: list[str] = []
    given = [str(n).strip() for n in names]
    if not any(given):
        raise UnknownMetric(f"the selection {list(names)!r} names no metric; name one or more of: {known} "
                            f"(or leave the selection out for every applicable score)")
    for n in given:
        if not n:
            continue
        if n in by_group:
            cls, scores = by_group[n], by_group[n].score_names()
        elif n in owner:
            cls, scores = owner[n], [n]
        else:
            raise UnknownMetric(f"unknown metric '{n}'; known: {known} (see `workbench metrics`)")
        if cls not in picked:
            picked.append(cls)
        wanted.extend(s for s in scores if s not in wanted)
    return picked, wanted


@dataclass
class EvalResult:
    scores: dict[str, float | None] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # time spent per metric group
    frames: int = 0
    # per-frame values of a score, indexed by video frame (None where not sampled): JSON-ready lists
    series: dict[str, list[float | None]] = field(default_factory=dict)
    # index of the worst frame of each score that has a series (by the score's direction)
    worst_frame: dict[str, int] = field(default_factory=dict)
    # CPU seconds while streaming: "main" thread, "flow" (the flow metrics' worker), "process" (all threads)
    cpu: dict[str, float] = field(default_factory=dict)
    # one-line notes about the input that every score shares (e.g. a truncated file scored on what decoded)
    warnings: list[str] = field(default_factory=list)

    def to_json(self, video: str | None = None) -> dict:
        out = {"scores": self.scores, "backends": self.backends, "errors": self.errors,
               "worst_frame": self.worst_frame}
        return {"video": video, **out} if video is not None else out


def _applies(cls: type[Metric], inputs: EvalInputs) -> str | None:
    """Why a metric cannot run on these inputs (None when it can)."""
    missing = []
    if "image" in cls.requires and inputs.image is None:
        missing.append("a reference image (--image)")
    if "audio" in cls.requires and inputs.audio is None:
        missing.append("audio (--audio, or a clip with a soundtrack)")
    if "reference" in cls.requires and inputs.reference is None:
        missing.append("a reference video (--reference)")
    if "source" in cls.requires and inputs.source is None:
        missing.append("the source video a face swap started from (a case's `video:`)")
    return f"needs {' and '.join(missing)}" if missing else None


def evaluate(
    video: Clip | str | Path,
    image: np.ndarray | str | Path | None = None,
    audio: Audio | str | Path | None = None,
    reference: Clip | str | Path | None = None,
    metrics: Iterable[str] | None = None,
    skip_inapplicable: bool | None = None,
    metric_options: dict[str, dict] | None = None,
    progress: Callable[[int, int], None] | None = None,
    parallel: bool = True,
    face_reference: FaceReference | None = None,
    source: Clip | str | Path | None = None,
) -> EvalResult:
    """Score one clip with the selected metrics in a single streaming pass.

    Metrics whose inputs are absent are left out when `metrics` is None (every *applicable* score),
    and reported as errors when asked for by name. `face_reference` (a stored embedding, e.g. an
    Element's) is what identity compares against when its backend made it; else the image's face.
    `source` is the footage a face swap started from (the face-swap scores compare with it).
    """
    if not isinstance(video, Clip):
        video = Clip.open(video)
    image_path = None
    if image is not None and not isinstance(image, np.ndarray):
        image_path = str(image)
        image = load_image(image)
    if audio is not None and not isinstance(audio, Audio):
        audio = load_audio(audio)
    if reference is not None and not isinstance(reference, Clip):
        reference = Clip.open(reference)
    if source is not None and not isinstance(source, Clip):
        source = Clip.open(source, load_audio_track=False)
    inputs = EvalInputs(video=video, image=image, audio=audio, reference=reference, face_reference=face_reference,
                        image_path=image_path, source=source)
    if skip_inapplicable is None:
        skip_inapplicable = metrics is None
    classes, wanted = resolve(metrics)
    result = EvalResult()
    if reference is not None and any(c.requires & {"reference"} for c in classes):
        result.warnings.extend(reference_mismatch(video, reference))
    live: list[Metric] = []
    options = metric_options or {}
    for cls in classes:
        names = [s for s in cls.score_names() if s in wanted]
        why = _applies(cls, inputs)
        if why:
            if not skip_inapplicable:
                for s in names:
                    result.scores[s] = None
                    result.errors[s] = f"{cls.name}: {why}"
            continue
        m = cls(**options.get(cls.name, {}))
        t0 = time.perf_counter()
        try:
            m.start(inputs)
        except (MetricUnavailable, MediaError) as e:
            _fail(result, names, cls.name, m, str(e))
            continue
        result.seconds[cls.name] = time.perf_counter() - t0
        live.append(m)

    total = video.num_frames
    from workbench.faces import FaceTracker

    tracker = FaceTracker()
    width = video.size[0]
    # metrics that read the shared optical flow are fed on a worker thread, and the flows they will
    # read are computed ahead on a pool, so flow overlaps the face tracking and embedding of the others
    side = [m for m in live if m.flow_reach() > 0] if parallel else []
    with ExitStack() as stack:
        worker = pool = None
        if side:
            worker = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="flow-metrics"))
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=FLOW_THREADS, thread_name_prefix="flow"))
            stack.enter_context(opencv_threads(1))  # the pool is the parallelism: OpenCV's own adds overhead
        n = _stream(video, live, side, result, wanted, tracker, width, worker, pool, progress, total)
    result.frames = n
    why = video.truncation_warning()  # the clip's own check: one wording wherever it is shown
    if why:
        result.warnings.append(why)

    for m in live:
        names = [s for s in m.score_names() if s in wanted]
        t0 = time.perf_counter()
        try:
            values = m.finish()
        except (MetricUnavailable, MediaError) as e:
            _fail(result, names, m.name, m, str(e))
            continue
        result.seconds[m.name] = result.seconds.get(m.name, 0.0) + time.perf_counter() - t0
        backend = m.backend()
        own = getattr(m, "score_backends", None) or {}  # a score served by another backend (or none)
        for s in names:
            v = values.get(s)
            result.scores[s] = None if v is None or not np.isfinite(v) else float(v)
            result.backends[s] = own.get(s, backend)
            if result.scores[s] is None:
                why = getattr(m, "reasons", {}).get(s, "not computable for this clip")
                result.errors.setdefault(s, f"{s}: {why}")
        _collect_series(result, m, names, n)
    return result


def reference_mismatch(video: Clip, reference: Clip) -> list[str]:
    """One-line warnings when a reference video does not line up with the clip: reference metrics pair
    frames by index, so another frame rate compares different instants and another length scores only
    the common prefix (known from the headers; nothing is decoded)."""
    name = reference.path.name if reference.path is not None else "the reference"
    out = []
    if abs(reference.fps - video.fps) > 0.01 * max(video.fps, 1e-9):
        out.append(f"{name}: the reference runs at {reference.fps:g} fps, the clip at {video.fps:g} fps; frames are "
                   f"paired by index, so reference scores compare different instants; resample the reference to "
                   f"{video.fps:g} fps")
    n_ref, n = reference.num_frames, video.num_frames
    if n_ref and n and abs(n_ref - n) > 1:
        out.append(f"{name}: the reference has {n_ref} frames, the clip {n}; reference scores cover the first "
                   f"{min(n_ref, n)} frames only")
    return out


def clean_series(values: Iterable, n_frames: int) -> list[float | None]:
    """A per-frame series as a JSON-ready list of exactly `n_frames` floats or None (non-finite -> None)."""
    out: list[float | None] = []
    for v in list(values)[:n_frames]:
        out.append(None if v is None or not np.isfinite(v) else float(v))
    return out + [None] * (n_frames - len(out))


def worst_index(values: list[float | None], higher_is_better: bool | None) -> int | None:
    """Index of the worst value (lowest when higher is better, highest when lower is better, farthest
    from the median when neither); None when the series holds no value."""
    idx = [i for i, v in enumerate(values) if v is not None]
    if not idx:
        return None
    vals = np.asarray([values[i] for i in idx], dtype=np.float64)
    if higher_is_better is True:
        k = int(np.argmin(vals))
    elif higher_is_better is False:
        k = int(np.argmax(vals))
    else:
        k = int(np.argmax(np.abs(vals - np.median(vals))))
    return idx[k]


def _collect_series(result: EvalResult, metric: Metric, names: list[str], n_frames: int) -> None:
    specs = {s.name: s for s in metric.scores}
    for name, values in (getattr(metric, "series", None) or {}).items():
        if name not in names or name not in specs:
            continue
        series = clean_series(values, n_frames)
        result.series[name] = series
        worst = (getattr(metric, "worst", None) or {}).get(name)  # a metric's own rule, e.g. motion anomalies
        if worst is None or not 0 <= worst < n_frames or series[worst] is None:
            worst = worst_index(series, specs[name].higher_is_better)
        if worst is not None:
            result.worst_frame[name] = worst


_cv_lock = threading.Lock()
_cv_users = 0
_cv_before = 0


@contextmanager
def opencv_threads(n: int) -> Iterator[None]:
    """OpenCV's (process-wide) thread count set to `n` inside the block and restored when the last
    overlapping block ends, so evaluations running at once (Studio tabs) leave it as they found it."""
    import cv2

    global _cv_users, _cv_before
    with _cv_lock:
        if _cv_users == 0:
            _cv_before = cv2.getNumThreads()
            cv2.setNumThreads(n)
        _cv_users += 1
    try:
        yield
    finally:
        with _cv_lock:
            _cv_users -= 1
            if _cv_users == 0:
                cv2.setNumThreads(_cv_before)


def _stream(video: Clip, live: list[Metric], side: list[Metric], result: EvalResult, wanted: list[str], tracker,
            width: int, worker: ThreadPoolExecutor | None, pool: ThreadPoolExecutor | None,
            progress: Callable[[int, int], None] | None, total: int) -> int:
    """Decode the clip once and feed every live metric frame by frame; returns the frame count.

    The metrics in `side` (those reading the shared optical flow) are fed on `worker`, one job per
    frame in order, while this thread feeds the rest, and the flows they will read at a frame
    (`Metric.flow_keys`) are started on `pool` as soon as it is decoded: OpenCV's flow and remapping
    release the GIL, dlib's face work does not, so they overlap. At most `AHEAD` frames wait for the
    worker (memory stays flat); frame links are released by the worker once a frame is done.
    Values are the same as fed in one thread (`evaluate(..., parallel=False)`)."""
    side_now = list(side)  # mutated by the worker only
    main = [m for m in live if m not in side]
    pending: deque = deque()
    # grey frames the flows reach back to (a metric's flow from k frames back needs the k-th)
    grays: deque = deque(maxlen=max((m.flow_reach() for m in live), default=0))

    def feed(metrics: list[Metric], step: FrameStep) -> list[tuple[Metric, Exception | None, float]]:
        out = []
        for m in list(metrics):
            t0 = time.perf_counter()
            err: Exception | None = None
            try:
                m.update(step)
            except (MetricUnavailable, MediaError) as e:
                err = e
                metrics.remove(m)
            out.append((m, err, time.perf_counter() - t0))
        return out

    def side_job(step: FrameStep, prev: FrameStep | None):
        c0 = time.thread_time()
        out = feed(side_now, step)
        if prev is not None:
            prev.release_prev()
        return out, time.thread_time() - c0

    def account(done: list[tuple[Metric, Exception | None, float]]) -> None:
        for m, err, dt in done:
            result.seconds[m.name] = result.seconds.get(m.name, 0.0) + dt
            if err is not None:
                _fail(result, [s for s in m.score_names() if s in wanted], m.name, m, str(err))
                if m in live:
                    live.remove(m)

    def drain(keep: int) -> None:
        while len(pending) > keep:
            done, cpu = pending.popleft().result()
            result.cpu["flow"] = result.cpu.get("flow", 0.0) + cpu
            account(done)

    main_cpu, all_cpu = time.thread_time(), time.process_time()

    prev: FrameStep | None = None
    n = 0
    for i, full in enumerate(video.iter_frames()):  # decoded once at full size; analysis size derived here
        frame = cap_side(full, ANALYSIS_MAX_SIDE)
        step = FrameStep(i, frame, prev, video.fps, tracker=tracker, scale=frame.shape[1] / float(width or frame.shape[1]),
                         full=full, history=tuple(grays))
        if grays.maxlen:
            grays.append(step.gray)
        if worker is not None:
            for key in {k for m in list(side_now) for k in m.flow_keys(i)}:
                step.prefetch(key, pool)
            pending.append(worker.submit(side_job, step, prev))
        account(feed(main, step))
        if worker is None:
            if prev is not None:
                prev.release_prev()
        else:
            drain(AHEAD)
        prev = step
        n += 1
        if progress:
            progress(n, total)
    drain(0)
    result.cpu["main"] = time.thread_time() - main_cpu
    result.cpu["process"] = time.process_time() - all_cpu  # every thread, OpenCV's own pool included
    return n


def _fail(result: EvalResult, names: list[str], group: str, metric: Metric, message: str) -> None:
    try:
        backend = metric.backend()
    except Exception:
        backend = "unavailable"
    own = getattr(metric, "score_backends", None) or {}
    for s in names:
        result.scores[s] = None
        result.backends[s] = own.get(s, backend)
        result.errors[s] = f"{group}: {message}"
