"""A helper process that computes dlib face descriptors, so the evaluating process keeps its GIL.

dlib's 128-d descriptor takes ~0.1 s per face and holds the GIL all that time, which stalls the
threads computing optical flow next to it. The helper is a plain child Python process (no
multiprocessing: nothing re-imports the user's script) fed aligned 150x150 face chips over a pipe;
results come back in order. One helper per process, started on first use; if it cannot start or
dies, the caller computes the same descriptor inline.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

import numpy as np

CHIP_SHAPE = (150, 150, 3)
CHIP_BYTES = int(np.prod(CHIP_SHAPE))
DESCRIPTOR_BYTES = 128 * 4  # float32
# the child's program: faces' descriptor served over the pipe (faces imports this module, never the reverse)
CHILD = "from workbench.faces import chip_descriptor; from workbench.face_helper import serve; serve(chip_descriptor)"


class DescriptorHelper:
    """The parent's end: `submit(chip, jitter)` returns a Future of the raw float32 descriptor."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[1])  # the same workbench code in the child
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self._proc = subprocess.Popen([sys.executable, "-c", CHILD],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)
        self._waiting: queue.SimpleQueue = queue.SimpleQueue()  # futures in submission order
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.broken = False
        threading.Thread(target=self._write, name="face-helper-write", daemon=True).start()
        threading.Thread(target=self._read, name="face-helper-read", daemon=True).start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def submit(self, chip: np.ndarray, jitter: int = 0) -> Future:
        fut: Future = Future()
        if chip.shape != CHIP_SHAPE:
            fut.set_exception(ValueError(f"face chip must be {CHIP_SHAPE}, got {chip.shape}"))
            return fut
        with self._lock:  # the order of `_waiting` is the order of the bytes on the pipe
            if self.broken:
                fut.set_exception(RuntimeError("face helper process is not running"))
                return fut
            self._waiting.put(fut)
            self._outbox.put(int(jitter).to_bytes(4, "little") + np.ascontiguousarray(chip, dtype=np.uint8).tobytes())
        return fut

    def _write(self) -> None:
        try:
            while True:
                self._proc.stdin.write(self._outbox.get())
        except (OSError, ValueError):
            self._fail()

    def _read(self) -> None:
        out = self._proc.stdout
        while True:
            data = _read_exactly(out, DESCRIPTOR_BYTES)
            if data is None:
                self._fail()
                return
            self._waiting.get().set_result(np.frombuffer(data, dtype=np.float32).copy())

    def _fail(self) -> None:
        with self._lock:
            self.broken = True
            self._proc.poll()  # reap it if it has exited
            while not self._waiting.empty():
                fut = self._waiting.get()
                if not fut.done():
                    fut.set_exception(RuntimeError("face helper process ended"))


def _read_exactly(stream, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        part = stream.read(n - len(buf))
        if not part:
            return None
        buf += part
    return buf


_helper: DescriptorHelper | None = None
_helper_lock = threading.Lock()


def running() -> DescriptorHelper | None:
    """The helper if one has been started in this process (starts none)."""
    return _helper


def helper() -> DescriptorHelper | None:
    """This process's helper, started on first use; None where a process cannot be started or the
    helper has died (not restarted: callers compute inline from then on)."""
    global _helper
    with _helper_lock:
        if _helper is None:
            try:
                _helper = DescriptorHelper()
            except OSError:
                return None
        return None if _helper.broken else _helper


def serve(chip_descriptor: Callable[[np.ndarray, int], np.ndarray]) -> None:
    """The child's loop: read (jitter, chip) records from stdin, write `chip_descriptor(chip, jitter)` to
    stdout, until EOF (the child runs `CHILD`, which passes `workbench.faces.chip_descriptor`)."""
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")  # the protocol's own copy of stdout; a stray print goes to stderr
    os.dup2(2, 1)
    while True:
        head = _read_exactly(inp, 4)
        body = _read_exactly(inp, CHIP_BYTES) if head else None
        if body is None:
            return
        chip = np.frombuffer(body, dtype=np.uint8).reshape(CHIP_SHAPE)
        out.write(chip_descriptor(chip, int.from_bytes(head, "little")).astype(np.float32).tobytes())
        out.flush()
