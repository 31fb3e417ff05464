"""The metric contract.

A `Metric` is one evaluation dimension (VBench style: one concern, one file). It produces one or more
named scores (`ScoreSpec`), declares which inputs it needs, names the backend it will use, and is
fed the video as a stream: `start(inputs)`, then `update(step)` once per frame, then `finish()`.
The evaluator decodes the video once and feeds every metric, so memory does not grow with length,
and expensive per-pair work (optical flow) is computed once and shared through `FrameStep`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workbench.media import Audio, Clip

ANALYSIS_MAX_SIDE = 512  # frames larger than this are downscaled before flow-based analysis


class MetricUnavailable(RuntimeError):
    """The metric cannot be computed for these inputs (no face, no audio, too few frames...).
    The message is one line that says why and what to do; the score becomes null."""


@dataclass(frozen=True)
class ScoreSpec:
    """One named number a metric reports."""

    name: str
    higher_is_better: bool | None  # None: neither (e.g. an offset or a plain measurement)
    range: str  # e.g. "[0, 1]"
    description: str
    source: str  # paper / benchmark it follows
    # trivially perfect on a clip that does not move (consistency, identity to the input image): rankings
    # judge it only on clips above the motion floor (workbench.ranking)
    rewards_stillness: bool = False
    # shown in units of 10^display_exp everywhere (report, Studio, W&B tables stay raw): one unit per score,
    # whatever the values of one run happen to be
    display_exp: int = 0


@dataclass(frozen=True)
class FaceReference:
    """A stored face embedding to compare against instead of re-detecting the reference image's face
    (an Element's: the mean over its portraits). Used only by the backend that made it."""

    embedding: np.ndarray  # L2-normalised
    backend: str  # e.g. "dlib-resnet128"


@dataclass
class EvalInputs:
    """What a clip is scored against. `audio` defaults to the clip's own track."""

    video: Clip
    image: np.ndarray | None = None
    audio: Audio | None = None
    reference: Clip | None = None
    face_reference: FaceReference | None = None
    image_path: str | None = None  # where `image` was read from, for messages (None: given as an array)
    source: Clip | None = None  # the footage a face swap started from (the case's `video:`)

    def __post_init__(self) -> None:
        if self.audio is None and self.video.audio is not None:
            self.audio = self.video.audio


# A shared optical flow of a frame step: ("from", k) is frame i-k -> frame i, ("to", k) is frame i -> i-k.
FlowKey = tuple[str, int]
FLOW_FW: FlowKey = ("from", 1)
FLOW_BW: FlowKey = ("to", 1)
FLOW_SKIP: FlowKey = ("from", 2)


class FrameStep:
    """One decoded frame plus lazily computed, shared per-pair data (greyscale, optical flow).

    `frame` is the analysis-size frame (<= ANALYSIS_MAX_SIDE, what flow and faces use); `full` is the
    frame as decoded, for metrics that must see every pixel to match their benchmark (VBench's
    temporal_flickering, the DINO/CLIP consistency transforms)."""

    def __init__(self, index: int, frame: np.ndarray, prev: "FrameStep | None", fps: float,
                 tracker: Any = None, scale: float = 1.0, full: np.ndarray | None = None,
                 history: tuple[np.ndarray, ...] | None = None):
        self.index = index
        self.frame = frame
        self.full = frame if full is None else full
        self.fps = fps
        self.scale = scale  # analysis frame size / original frame size (frames above ANALYSIS_MAX_SIDE shrink)
        self._prev = prev
        self._history = history  # grey analysis frames before this one, oldest first (None: walk `prev`)
        self._tracker = tracker
        self._cache: dict[Any, Any] = {}

    @property
    def face(self):
        """The main face in this frame (`workbench.faces.Face`) or None; tracked across frames and
        shared by every metric that asks (identity, lip-sync)."""
        if "face" not in self._cache:
            if self._tracker is None:
                from workbench.faces import FaceTracker

                self._tracker = FaceTracker()
            self._cache["face"] = self._tracker.track(self.frame, self.index)
        return self._cache["face"]

    @property
    def prev_frame(self) -> np.ndarray | None:
        return None if self._prev is None else self._prev.frame

    @property
    def prev_full(self) -> np.ndarray | None:
        """The previous frame at full resolution."""
        return None if self._prev is None else self._prev.full

    @property
    def gray(self) -> np.ndarray:
        if "gray" not in self._cache:
            import cv2

            self._cache["gray"] = cv2.cvtColor(self.frame, cv2.COLOR_RGB2GRAY)
        return self._cache["gray"]

    @property
    def prev_gray(self) -> np.ndarray | None:
        return None if self._prev is None else self._prev.gray

    def earlier_gray(self, back: int) -> np.ndarray | None:
        """The grey analysis frame `back` frames before this one (None before the clip's start)."""
        if self._history is not None:
            return self._history[-back] if back <= len(self._history) else None
        step: FrameStep | None = self
        for _ in range(back):
            step = None if step is None else step._prev
        return None if step is None else step.gray

    def _pair(self, key: FlowKey) -> tuple[np.ndarray, np.ndarray] | None:
        """The (from, to) grey frames of a flow key, or None when the earlier frame does not exist."""
        kind, back = key
        earlier = self.earlier_gray(back)
        if earlier is None:
            return None
        return (earlier, self.gray) if kind == "from" else (self.gray, earlier)

    def prefetch(self, key: FlowKey, pool: Any) -> None:
        """Start computing a flow on `pool` (a concurrent.futures executor); readers wait for it."""
        if key not in self._cache:
            pair = self._pair(key)
            if pair is not None:
                from workbench.metrics.flow import dis_flow

                self._cache[key] = pool.submit(dis_flow, *pair)

    def flow(self, key: FlowKey) -> np.ndarray | None:
        """A shared DIS flow (see `FlowKey`), computed once: here on first use, or ahead on the
        evaluator's flow pool."""
        got = self._cache.get(key)
        if got is None:
            pair = self._pair(key)
            if pair is None:
                return None
            from workbench.metrics.flow import dis_flow

            got = self._cache[key] = dis_flow(*pair)
        elif isinstance(got, Future):
            got = self._cache[key] = got.result()
        return got

    def flow_from(self, back: int) -> np.ndarray | None:
        """Flow from the frame `back` frames before this one to this one (prev(x) -> cur(x + f))."""
        return self.flow(("from", back))

    @property
    def flow_skip(self) -> np.ndarray | None:
        """Flow from the frame two back to this one (motion_smoothness interpolates the frame between)."""
        return self.flow(FLOW_SKIP)

    @property
    def flow_fw(self) -> np.ndarray | None:
        """Flow from the previous frame to this one, (H, W, 2) float32 in pixels: prev(x) -> cur(x + f)."""
        return self.flow(FLOW_FW)

    @property
    def flow_bw(self) -> np.ndarray | None:
        """Flow from this frame back to the previous one."""
        return self.flow(FLOW_BW)

    def release_prev(self) -> None:
        self._prev = None


class Metric(ABC):
    """Base class of every evaluation dimension."""

    name: ClassVar[str]  # group name, e.g. "lipsync"
    version: ClassVar[str] = "1"  # bump when the algorithm changes: stored scores are then recomputed
    scores: ClassVar[tuple[ScoreSpec, ...]]
    requires: ClassVar[frozenset[str]] = frozenset()  # subset of {"image", "audio", "reference", "source"}
    # A metric that reads the shared flows (`flow_reach() > 0`) is fed on a second thread while the
    # main thread feeds the others (face tracking, embeddings; dlib holds the GIL, OpenCV releases it),
    # and the flows it will read are computed ahead on a small pool; it must only read the step's
    # frames and flows.
    reasons: dict[str, str]  # why a score came out None (set in finish), optional
    series: dict[str, list[float | None]]  # per-frame values of a score (set in finish), optional

    @abstractmethod
    def backend(self) -> str:
        """Name of the backend the next evaluation will use (e.g. "dlib-resnet128", "syncnet_v2")."""

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        """Every backend this metric knows and whether its weights/deps are present here."""
        return {}

    def start(self, inputs: EvalInputs) -> None:
        """Reset state for a new clip; raise MetricUnavailable if the inputs cannot be scored."""
        self.inputs = inputs

    def flow_keys(self, index: int) -> tuple[FlowKey, ...]:
        """The shared flows (`FrameStep.flow`) that `update` will read at frame `index`, known after
        `start`, so the evaluator can compute them ahead; () for a metric that reads none."""
        return ()

    def flow_reach(self) -> int:
        """How many frames back the shared flows of `flow_keys` reach (0: it reads none)."""
        return 0

    def update(self, step: FrameStep) -> None:  # noqa: B027 - optional hook
        """Consume one frame (called in order for every frame)."""

    @abstractmethod
    def finish(self) -> dict[str, float | None]:
        """Return {score name: value} for every name in `scores`. A None value may be explained in
        `self.reasons[name]` (one line), which the evaluator records as that score's error."""

    @classmethod
    def score_names(cls) -> list[str]:
        return [s.name for s in cls.scores]
