"""The run store: `results.jsonl` (one JSON record per finished job), `clips/`, and job claims.

A run folder is safe for any number of writer processes (shards, accelerate ranks, two terminals):

- **Whole lines or nothing.** A record is appended under an exclusive lock on `results.lock`, with a
  loop over short writes; if the disk fills mid-line the file is cut back to its previous length and
  `StoreError` says so. The record then stays unwritten, never half-written.
- **Torn lines are quarantined.** A line left torn by a hard kill is moved to `results.quarantine.jsonl`
  the next time the folder is prepared, so it is kept for inspection but never read as a record.
- **Each job once.** Before running a job a process creates `claims/<job id>` exclusively; others skip
  it. A claim whose process died (same host, pid gone) or whose heartbeat is older than
  `STALE_CLAIM_SECONDS` is taken over, so a crash never blocks a job forever.
- **No stray temp files.** `.part` files left by a crashed writer are removed when the folder is prepared.
- **Never pay twice.** A hosted generation's remote job (its id and what is needed to poll and download
  it) is written to `claims/<clip id>.remote.json` (atomically, fsynced) *before* the process waits on
  it. The file outlives the claim: a run killed while waiting, or one that timed out, resumes by polling
  that job; only a remote job that ended in failure is submitted again (with a new idempotency key).

Readers take the latest record of each job id and need nothing but results.jsonl.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ContextManager, Iterator

from workbench.redact import mask

RESULTS = "results.jsonl"
QUARANTINE = "results.quarantine.jsonl"
LOCK = "results.lock"
STALE_CLAIM_SECONDS = 15 * 60  # a claim not refreshed for this long is presumed dead (other hosts)
HEARTBEAT_SECONDS = 30


class StoreError(RuntimeError):
    """The run folder cannot be used or written; one line naming the path and the fix."""


class FolderHoldsOtherSuite(StoreError):
    """The run folder already holds records of a differently named suite; running into it would pool
    two experiments in one report. The message names both and the fix (another --out, or --force)."""


def json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json_atomic(path: str | Path, payload: Any, **dumps_kw: Any) -> Path:
    """Write `payload` as JSON (`json.dumps(payload, **dumps_kw)`) to `path` atomically: a hidden temp
    file beside it, then `os.replace`, so a reader sees the old file or the whole new one. Returns `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(payload, **dumps_kw))
    os.replace(tmp, path)
    return path


def _os_fault(path: Path, e: OSError) -> StoreError:
    """A one-line StoreError for an OS fault on `path`, with the fix."""
    if e.errno == errno.ENOSPC:
        return StoreError(f"{path}: disk full; free space and run the same command again (finished records are kept)")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(f"{path}: not writable ({os.strerror(e.errno)}); fix the permissions or pass another --out")
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return StoreError(f"{path}: a parent of the run folder is a file; pass --out to a folder path")
    if e.errno == errno.EISDIR:
        return StoreError(f"{path}: is a folder, not a file; move it away or pass another --out")
    return StoreError(f"{path}: {os.strerror(e.errno) if e.errno else e}; check the run folder")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """A run folder: results.jsonl + clips/ + claims/."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.results = self.root / RESULTS
        self.quarantine = self.root / QUARANTINE
        self.clips = self.root / "clips"
        self.claims = self.root / "claims"
        self._lock_path = self.root / LOCK
        self._host = socket.gethostname()
        self._seen: tuple[int, int, dict[str, dict[str, Any]]] | None = None  # (inode, offset, latest)
        self._clean: tuple[int, int] | None = None  # (inode, offset): whole good lines up to offset
        self.reads = 0  # reads of results.jsonl (whole or tail) that found new bytes: tests count them

    # folder ----------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folder, check that it is usable, quarantine torn lines, remove stale temp files.
        Every fault is one `StoreError` line naming the path and the fix."""
        for p in (self.root, self.clips, self.claims):
            if p.exists() and not p.is_dir():
                raise StoreError(f"{p}: is a file, not a folder; pass --out to a folder path")
            try:
                p.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise _os_fault(p, e) from None
        if self.results.exists() and not self.results.is_file():
            raise StoreError(f"{self.results}: is not a regular file; move it away or pass another --out")
        for p in (self.root, self.clips, self.claims):
            if not os.access(p, os.W_OK | os.X_OK):
                raise StoreError(f"{p}: not writable; fix the permissions or pass another --out")
        with self._locked():
            self._quarantine_torn_lines()
        self._clean_temp_files()

    def _locked(self) -> ContextManager[None]:
        """Exclusive lock over the results file, across processes (flock on results.lock)."""
        return file_lock(self._lock_path)

    def _quarantine_torn_lines(self) -> None:
        """Move torn or corrupt lines to the quarantine file. The lines read here (under the lock, so no
        writer is mid-line) also fill the `latest` cache: preparing a long folder parses it once, and
        preparing it again (the CLI checks before it runs) reads only the lines appended since."""
        if not self.results.is_file():
            return
        start = 0
        if self._clean is not None:
            st = self.results.stat()
            if st.st_ino == self._clean[0] and st.st_size >= self._clean[1]:
                start = self._clean[1]  # whole good lines up to here, and lines are never changed in place
        good, bad = [], []
        latest: dict[str, dict[str, Any]] = {}
        with open(self.results, "rb") as f:
            ino = os.fstat(f.fileno()).st_ino
            f.seek(start)
            for raw in f:
                if not raw.strip():
                    continue
                rec = _parse(raw)
                if rec is not None and raw.endswith(b"\n"):
                    good.append(raw)
                    latest[rec["job_id"]] = rec
                else:
                    bad.append(raw)
            end = f.tell()
        self.reads += 1
        if not bad:
            self._clean = (ino, end)
            if start == 0:
                self._seen = (ino, end, latest)
            return
        if start:  # a torn line after the part checked before: rewrite the whole file
            self._clean = None
            return self._quarantine_torn_lines()
        self._clean = None
        self._seen = None  # the file is rewritten below (a new inode): read again when asked
        with open(self.quarantine, "ab") as q:
            for raw in bad:
                q.write(raw.rstrip(b"\n") + b"\n")
            q.flush()
            os.fsync(q.fileno())
        tmp = self.results.with_name(f".{RESULTS}.{os.getpid()}.rewrite")
        with open(tmp, "wb") as out:
            out.writelines(good)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.results)

    def _clean_temp_files(self) -> None:
        """Remove `.part` files whose writer is gone (pid in the name, see media.write_video)."""
        for p in list(self.clips.glob("*.part*")) + list(self.root.glob(".*.rewrite")):
            owner = _pid_in_name(p.name)
            if owner is None or (owner != os.getpid() and not pid_alive(owner)):
                p.unlink(missing_ok=True)

    # records ---------------------------------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one whole line (or nothing: see the module docstring). Key values are
        masked (workbench.redact): a record never holds an API key."""
        line = (json.dumps(mask(record), default=json_default, sort_keys=False) + "\n").encode()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _os_fault(self.root, e) from None
        with self._locked():
            try:
                fd = os.open(self.results, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as e:
                raise _os_fault(self.results, e) from None
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a torn tail (hard kill): start on a line of our own
                try:
                    _write_all(fd, line)
                    os.fsync(fd)
                except OSError as e:
                    os.ftruncate(fd, size)  # all or nothing
                    raise _os_fault(self.results, e) from None
            finally:
                os.close(fd)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record in file order (torn or corrupt lines are skipped)."""
        if not self.results.is_file():
            return
        with open(self.results, "rb") as f:
            for raw in f:
                rec = _parse(raw)
                if rec is not None:
                    yield rec

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last record of each job id (a copy of the dict; the records themselves are shared, treat
        them as read-only). Reads only what was appended since the last call, so polling it stays cheap
        on a long results file; per job, `get` looks one up without copying the dict."""
        return dict(self._refresh())

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The last record of job `job_id` (None when it has none), reading only the lines appended since
        the last look: the Runner's per-job check, whose cost does not grow with the folder."""
        return self._refresh().get(job_id)

    def _refresh(self) -> dict[str, dict[str, Any]]:
        """The cached {job id: last record}, brought up to date with the file's new complete lines (the
        whole file again only when it was replaced, e.g. by the quarantine, or cut short)."""
        try:
            st = self.results.stat()
        except FileNotFoundError:
            self._seen = None
            return {}
        if self._seen and self._seen[0] == st.st_ino and st.st_size >= self._seen[1]:
            ino, offset, out = self._seen
            if st.st_size == offset:
                return out  # nothing appended: no read at all
        else:
            ino, offset, out = st.st_ino, 0, {}
        with open(self.results, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        self.reads += 1
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
        whole = True
        for raw in chunk[:end].splitlines():
            rec = _parse(raw)
            if rec is not None:
                out[rec["job_id"]] = rec
            elif raw.strip():
                whole = False  # skipped here; prepare() quarantines it
        if whole and (offset == 0 or self._clean == (ino, offset)):
            self._clean = (ino, offset + end)  # whole good lines so far: prepare() need not read them again
        self._seen = (ino, offset + end, out)
        return out

    def suite_names(self) -> dict[str, int]:
        """{suite name: records} over the folder's latest records: which experiments the folder holds.
        A folder without records answers with the name in its suite.json snapshot (0 records)."""
        out: dict[str, int] = {}
        try:
            latest = self.latest()
        except OSError:  # not a usable folder: prepare() names the fault
            return {}
        for rec in latest.values():
            name = rec.get("suite")
            if isinstance(name, str):
                out[name] = out.get(name, 0) + 1
        try:
            snap = json.loads((self.root / "suite.json").read_text())["suite"]["name"]
        except (OSError, ValueError, KeyError, TypeError):
            snap = None
        if isinstance(snap, str) and not out:
            out[snap] = 0
        return out

    def finished_ids(self) -> set[str]:
        return {jid for jid, rec in self.latest().items() if rec.get("status") == "ok"}

    # claims ----------------------------------------------------------------------------------------
    def claim(self, job_id: str) -> bool:
        """Take job `job_id` for this process; False when a live process holds it."""
        path = self.claims / job_id
        body = json.dumps({"pid": os.getpid(), "host": self._host, "at": time.time()}).encode()
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if not self._stale(path):
                    return False
                path.unlink(missing_ok=True)  # the holder died: take the job over
                continue
            except OSError as e:
                raise _os_fault(path, e) from None
            try:
                _write_all(fd, body)
            finally:
                os.close(fd)
            return True
        return False

    def heartbeat(self, job_id: str) -> None:
        """Refresh a held claim (cheap: at most one touch per HEARTBEAT_SECONDS)."""
        path = self.claims / job_id
        try:
            if time.time() - path.stat().st_mtime > HEARTBEAT_SECONDS:
                os.utime(path)
        except OSError:
            pass

    def release(self, job_id: str) -> None:
        (self.claims / job_id).unlink(missing_ok=True)

    # remote jobs (hosted generators) -----------------------------------------------------------------
    def remote(self, clip_id: str) -> "RemoteJob":
        """The persisted remote side of generation `clip_id` (see `RemoteJob`)."""
        return RemoteJob(self.claims, clip_id)

    def remote_state(self, clip_id: str) -> dict[str, Any] | None:
        """The stored remote job of `clip_id` (None when none was submitted)."""
        return self.remote(clip_id).load()

    def save_remote(self, clip_id: str, data: dict[str, Any]) -> None:
        self.remote(clip_id).save(data)

    def _stale(self, path: Path) -> bool:
        try:
            info = json.loads(path.read_bytes() or b"{}")
            age = time.time() - path.stat().st_mtime
        except (OSError, ValueError):
            return True  # unreadable or vanished: a torn claim from a crash
        if info.get("host") == self._host and isinstance(info.get("pid"), int):
            return not pid_alive(info["pid"])
        return age > STALE_CLAIM_SECONDS


class RemoteJob:
    """The remote side of one hosted generation, kept in `<folder>/<clip id>.remote.json`.

    A hosted generator calls `save()` with the provider's job id (and whatever it needs to poll and
    download) right after submitting and before waiting, and `load()` first thing: a stored job that
    has not failed is polled, never submitted again. `submitting()` holds an exclusive lock across
    load-then-submit, so two processes that share a clip submit it once. `idempotency_key()` is stable
    per (clip, attempt): a retried submit of the same attempt is the same request to the provider.
    `info` collects what the record shows (provider, remote id, cost, warnings); it is never persisted
    here and holds no key.
    """

    def __init__(self, folder: str | Path | None, clip_id: str):
        self.folder = Path(folder) if folder is not None else None
        self.clip_id = clip_id
        self.info: dict[str, Any] = {}
        self._memory: dict[str, Any] | None = None  # no folder (a notebook call): state lives here

    @property
    def path(self) -> Path | None:
        return None if self.folder is None else self.folder / f"{self.clip_id}.remote.json"

    def download_path(self, suffix: str = ".mp4") -> Path | None:
        """Where the provider's output is downloaded to before it is verified (kept for a resume)."""
        return None if self.folder is None else self.folder / f"{self.clip_id}.download{suffix}"

    def load(self) -> dict[str, Any] | None:
        if self.path is None:
            return None if self._memory is None else dict(self._memory)
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # torn by a crash before the rename cannot happen (atomic); unreadable: start over
        return data if isinstance(data, dict) else None

    def save(self, data: dict[str, Any]) -> None:
        """Write the state atomically and durably (fsync of the file, then the rename)."""
        if self.path is None:
            self._memory = dict(data)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps(data, default=json_default, indent=1))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dfd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _os_fault(self.path, e) from None

    def update(self, **changes: Any) -> dict[str, Any]:
        data = {**(self.load() or {}), **changes}
        self.save(data)
        return data

    def cleanup(self) -> None:
        """Drop the downloaded output once the clip is saved in clips/ (the state file stays: it is
        the record of what was submitted and paid)."""
        for suffix in (".mp4", ".png", ".webm", ".mov"):
            p = self.download_path(suffix)
            if p is not None:
                p.unlink(missing_ok=True)

    def idempotency_key(self, attempt: int | None = None) -> str:
        if attempt is None:
            attempt = int((self.load() or {}).get("attempt", 1))
        return f"workbench-{self.clip_id}-{attempt}"

    @contextmanager
    def submitting(self) -> Iterator[None]:
        """Exclusive across processes (flock on `<clip id>.remote.lock`): load, and submit only when
        nothing is stored, inside it."""
        if self.folder is None:
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.folder / f"{self.clip_id}.remote.lock"):
            yield


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created when absent), across processes; a folder that cannot hold the
    lock file is one StoreError line."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise _os_fault(path, e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def _parse(raw: bytes) -> dict[str, Any] | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        rec = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) and "job_id" in rec else None


def _pid_in_name(name: str) -> int | None:
    """The writer pid in a temp name like `x.part-1234.mp4` (None when absent)."""
    import re

    m = re.search(r"\.part-(\d+)", name) or re.search(r"\.(\d+)\.rewrite$", name)
    return int(m.group(1)) if m else None


def load_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Latest record per job from a run folder's results.jsonl, in first-seen order."""
    return list(RunStore(run_dir).latest().values())
