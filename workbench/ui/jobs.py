"""Work off the kernel's main thread: a suite run or an evaluation in a worker thread.

The kernel stays free (other cells run, widgets respond) while jobs run. Progress reaches the widgets
through the Runner's callbacks, called on the worker thread; ipywidgets value assignments from a
thread are sent to the front end by the kernel's IOPub thread, which is safe for plain trait sets.
Step updates are throttled so a per-frame callback cannot flood the browser.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from workbench.ui.widgets import one_line


class Worker:
    """Run `fn()` in a daemon thread; `on_error(line)` gets any exception as one line; `on_done()` last."""

    def __init__(self, fn: Callable[[], Any], on_error: Callable[[str], None], on_done: Callable[[], None],
                 name: str = "workbench-ui") -> None:
        self._fn = fn
        self._on_error = on_error
        self._on_done = on_done
        self.error: str | None = None
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> "Worker":
        self.thread.start()
        return self

    def _main(self) -> None:
        try:
            self._fn()
        except BaseException as e:  # noqa: BLE001  (shown in the widget, never raised into the kernel)
            self.error = one_line(e)
            try:
                self._on_error(self.error)
            except Exception:
                pass
        finally:
            try:
                self._on_done()
            except Exception:
                pass

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


class Throttle:
    """Call-rate limiter: `ready()` is True at most every `interval` seconds (and always when forced)."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._last = 0.0

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            return True
        return False
