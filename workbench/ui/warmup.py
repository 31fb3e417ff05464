"""Warm-up of the Studio: load what the first job would load while the user fills the form.

The first model-free job of a session used to take tens of seconds, nearly all of it one-off loading:
torch (imported for the record's hardware line), the face models of identity and lip-sync (dlib), the
metric modules and their first frame. `WarmUp.start(metrics)` does that in a background thread, one
named step at a time, so a kenburns or puppet clip appears within seconds of Run; `text` says what is
loading now (the Generate tab shows it beside Run). The steps fill the same process-wide caches the
Runner reads (`experiment.hardware`, `faces._dlib_models`), so a Run started mid-way simply finds
some of them warm. Nothing here downloads: a metric whose weights are absent is skipped as in a run.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

FACE_GROUPS = {"identity", "lipsync", "faceswap"}  # metric groups that track faces (dlib's models)


def _record_step() -> None:
    """What every record needs: package versions and the hardware line (which imports torch)."""
    from workbench.experiment import hardware, package_versions

    package_versions()
    hardware()


def _faces_step() -> None:
    from workbench.faces import _dlib_models, dlib_available

    if dlib_available():
        _dlib_models()


def _metrics_step(metrics: list[str]) -> None:
    """The chosen metrics once over a tiny synthetic clip (imports, flow, first-frame set-up)."""
    import numpy as np

    from workbench.media import Clip
    from workbench.metrics import evaluate

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    frames = [np.roll(base, i, axis=1) for i in range(6)]
    clip = Clip.from_frames(frames, 25)
    evaluate(clip, image=base, metrics=metrics, skip_inapplicable=True, parallel=False)


def plan(metrics: list[str]) -> list[tuple[str, str, Callable[[], None]]]:
    """The steps that warm these metrics (and every run's record): (key, what it loads, how)."""
    steps: list[tuple[str, str, Callable[[], None]]] = [("record", "torch (each record's hardware line)", _record_step)]
    groups: set[str] = set()
    try:
        from workbench.metrics import resolve

        classes, _ = resolve(list(metrics) or None)
        groups = {c.name for c in classes}
    except Exception:  # an unknown name: the form refuses it; warm what the rest needs
        pass
    faces = sorted(groups & FACE_GROUPS)
    if faces:
        steps.append(("faces", f"face models for {', '.join(faces)}", _faces_step))
    if groups:
        steps.append((f"metrics:{','.join(sorted(groups))}", "the metrics' set-up on a first clip",
                      lambda: _metrics_step(list(metrics))))
    return steps


class WarmUp:
    """Runs `plan(metrics)` in a daemon thread; `text` and `on_change` report the step under way."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.on_change = on_change
        self.state = "idle"  # idle | loading | ready
        self.step = ""
        self.seconds = 0.0
        self.errors: list[str] = []
        self._done: set[str] = set()  # steps finished (by name) in this process
        self._thread: threading.Thread | None = None
        self._pending: list[str] | None = None  # metrics chosen while a warm-up ran
        self._lock = threading.Lock()

    @property
    def text(self) -> str:
        if self.state == "loading":
            return f"loading {self.step} in the background: the first clip follows within seconds once it is done"
        if self.state == "ready":
            return f"models for these metrics loaded ({self.seconds:.1f} s)"
        return ""

    def start(self, metrics: list[str]) -> bool:
        """Warm what these metrics need (steps already done are skipped); False while a warm-up runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._pending = list(metrics)  # warmed when the running warm-up ends
                return False
            self._pending = None
            todo = [step for step in plan(metrics) if step[0] not in self._done]
            if not todo:
                return True
            self._thread = threading.Thread(target=self._run, args=(todo,), name="studio-warmup", daemon=True)
            self.state = "loading"
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the warm-up (and any it queued) ends; True when it ended."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()

    def _run(self, todo: list[tuple[str, str, Any]]) -> None:
        t0 = time.perf_counter()
        for key, name, fn in todo:
            self.step = name
            self._notify()
            try:
                fn()
            except Exception as e:  # a warm-up never fails anything: the run says what is wrong
                self.errors.append(f"{name}: {type(e).__name__}: {e}")
            self._done.add(key)
        self.seconds += time.perf_counter() - t0
        self.step = ""
        pending = self._pending
        if pending is not None and any(step[0] not in self._done for step in plan(pending)):
            self._pending = None
            self._run([step for step in plan(pending) if step[0] not in self._done])  # the metrics chosen since
            return
        self.state = "ready"
        self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                pass
