"""Weights & Biases logging as a Runner callback, and a reader for what an offline run holds.

One W&B run per suite run folder and job type (`generate`, `eval`, `calibrate`): project and entity
from the suite, group = the suite name, config = the resolved suite. Its id is kept in
`RUN_DIR/wandb/workbench-runs.json`, so re-running the suite resumes the same W&B run.

What is logged, and when (everything built from the records in `results.jsonl`):

- each *new* job, as it ends: a history row with `job/<score>` values, `job/ok`, `job/seconds` and the
  clip as `clips/<case>/<model>/seed<seed>` (a `wandb.Video` of the saved mp4 with its audio). These
  keys carry `summary="none"`, so the run summary never shows one job's values.
- at the end of the run, snapshots rebuilt from the whole `results.jsonl` (W&B tables are immutable,
  so after a resume the table must be logged again to hold every row):
  `comparison` (one row per job: case, model, seed, status, parameters, clip video, input image,
  driving audio, every score, the error text; every row at any size, past wandb.Table's own row limits,
  see `every_row`), `model_summary` (one row per model: n, failed, and per
  score the mean with its 95% bootstrap CI from `workbench.metrics.stats`), one bar chart per score
  `charts/<score>` drawn from `model_summary`, and the run summary: `<model>/<score>` means,
  `<model>/<score>_ci95` intervals and job counts. Media files are named by content in W&B, so a clip
  logged again in a later snapshot is the same file.
- a re-run with nothing new logs nothing (no W&B run is even opened) unless the last snapshot is
  older than `results.jsonl` (a crash before the end of the run): then only the snapshot is logged.

Offline runs live in `RUN_DIR/wandb/offline-run-*` (one folder per resumed session, same run id);
`wandb sync RUN_DIR/wandb/offline-run-*` uploads them in order. W&B failing (no network, bad key,
full disk) never loses a result: the Runner appends each record to results.jsonl before calling
`on_job_end`, and any W&B error turns this tracker off with one warning while the run goes on.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import netrc
import os
import secrets
import struct
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

from workbench.costs import cost_summary, usd_of
from workbench.metrics.stats import finite as _finite, model_summaries, score_names
from workbench.redact import mask
from workbench.runset import media_of
from workbench.store import load_records
from workbench.suite import Suite, load_snapshot

MODES = ("online", "offline", "disabled")
STATE_FILE = "workbench-runs.json"


class TrackingWarning(UserWarning):
    """W&B logging failed; the run went on and results.jsonl holds every result."""


def logged_in() -> bool:
    """Whether a W&B API key is present here (environment or netrc); never touches the network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(suite: Suite, mode: str | None = None) -> str:
    """The W&B mode for a suite run: `mode` (an explicit override, e.g. `--wandb`) first, then the
    suite's tracking block (`wandb: false` means disabled; its `mode` when set), then the WANDB_MODE
    environment variable, then online when logged in, else offline."""
    if mode is not None:
        return _checked(mode)
    t = suite.tracking
    if not t.wandb:
        return "disabled"
    if "mode" in t.model_fields_set:
        return t.mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if logged_in() else "offline"


def log_calibration(result: Any, out_dir: str | Path, mode: str, project: str = "workbench") -> str | None:
    """Log a `workbench calibrate` result as one W&B run (job_type "calibrate", group = the calibration
    suite's name): a table with one row per (clip, perturbation, score) check, and the pass / fail /
    unscored counts in the summary. Returns the run's files folder, or None when `mode` is disabled.
    Like the suite tracker, a W&B failure is one warning: calibration.json is already written."""
    if _checked(mode) == "disabled":
        return None
    try:
        import wandb

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        run = _init_run(mode, out, project=project, group=f"calibration:{result.suite}", job_type="calibrate",
                        name=f"calibrate {result.suite}", config={"suite": result.suite, "out_dir": str(out)})
        columns = ["clip", "perturbation", "score", "expected", "original", "perturbed", "delta", "passed", "note"]
        table = wandb.Table(columns=columns)
        for r in result.rows:
            table.add_data(r.clip, r.perturbation, r.metric, r.expected, _finite(r.original), _finite(r.perturbed),
                           _finite(r.delta), {True: "pass", False: "FAIL", None: ""}[r.passed], r.note)
        run.log({"calibration": table})
        run.summary.update({"checks/passed": result.passed, "checks/failed": result.failed,
                            "checks/unscored": result.unscored, "checks/errors": len(result.errors)})
        files = run.dir
        run.finish()
        return files
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # W&B must never lose the calibration: its files are written first
        warnings.warn(f"W&B logging of the calibration failed ({_one_line(e)}); the results are in "
                      f"{Path(out_dir)}", TrackingWarning, stacklevel=2)
        return None


def _checked(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"wandb mode {mode!r} is not one of {', '.join(MODES)}; pass --wandb online|offline|disabled")
    return mode


def _init_run(mode: str, folder: Path, **fields: Any):
    """`wandb.init` as every workbench run uses it: quiet, no console capture, files under `folder`."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(mode=mode, dir=str(folder), reinit="create_new",
                      settings=wandb.Settings(silent=True, init_timeout=60, console="off"), **fields)


def _masked(config: dict[str, Any]) -> dict[str, Any]:
    """The W&B config with every key value masked (workbench.redact): keys never reach W&B."""
    return mask(config)


def _one_line(e: BaseException) -> str:
    """`Type: first line of the message` (or just the type), for a warning."""
    msg = str(e).strip()
    return f"{type(e).__name__}: {msg.splitlines()[0]}" if msg else type(e).__name__


def tracker_for(suite: Suite, run_dir: str | Path, mode: str | None = None,
                job_type: str = "generate") -> "WandbTracker | None":
    """A Runner callback logging this suite run to W&B, or None when tracking is disabled.

    `mode` is an explicit override ("online" | "offline" | "disabled"); see `resolve_mode`.
    """
    resolved = resolve_mode(suite, mode)
    if resolved == "disabled":
        return None
    return WandbTracker(suite, run_dir, mode=resolved, job_type=job_type)


def attach(runner: Any, mode: str | None = None) -> "WandbTracker | None":
    """Mirror a Runner's suite run to W&B, as `workbench run` and the Studio do: a tracker appended to
    `runner.callbacks` and returned, or None (nothing attached) when tracking resolves to disabled.

    Its job_type is "eval" when all the work is scoring existing clips (new metrics), else "generate";
    an unusable run folder counts as "generate" (the run then reports the fault itself, in one line).
    `mode` is an explicit override, as for `tracker_for`.
    """
    if resolve_mode(runner.suite, mode) == "disabled":
        return None
    try:
        job_type = "eval" if runner.rescoring_only() else "generate"
    except OSError:
        job_type = "generate"
    tracker = tracker_for(runner.suite, runner.store.root, mode=mode, job_type=job_type)
    if tracker is not None:
        runner.callbacks.append(tracker)
    return tracker


def sync_run_folder(run_dir: str | Path, mode: str | None = None) -> "WandbTracker | None":
    """Bring the run folder's W&B run up to date with results.jsonl without running anything: the
    comparison table, model summary and charts rebuilt from every record (e.g. after shards that
    ran without W&B). Uses RUN_DIR/suite.json; None when tracking resolves to disabled."""
    suite = load_snapshot(run_dir)
    tracker = tracker_for(suite, run_dir, mode=mode)
    if tracker is None:
        return None
    tracker.on_run_start([], [])  # opens (resumes) the run only when the records changed since it last logged
    tracker.on_run_end([], False)
    return tracker


@contextlib.contextmanager
def every_row(n: int):
    """Log tables of `n` rows whole. A logged `wandb.Table` is written twice: into the run's files, cut to
    `wandb.Table.MAX_ROWS` (10,000) rows without a word, and into a `run_table` artifact, cut to
    `MAX_ARTIFACT_ROWS` (200,000, the documented limit). The comparison table holds one row per job, so
    both limits are raised to `n` while it is logged (and put back after): a run of 10,000 or 250,000
    jobs keeps every row (W&B notes that very large tables query more slowly in its UI)."""
    import wandb

    table = wandb.Table
    saved = table.MAX_ROWS, table.MAX_ARTIFACT_ROWS
    table.MAX_ROWS, table.MAX_ARTIFACT_ROWS = max(saved[0], n), max(saved[1], n)
    try:
        yield
    finally:
        table.MAX_ROWS, table.MAX_ARTIFACT_ROWS = saved


# --------------------------------------------------------------------------------------------------
class WandbTracker:
    """Runner callback that mirrors a suite run into one (resumable) W&B run. See the module doc."""

    def __init__(self, suite: Suite, run_dir: str | Path, mode: str = "offline", job_type: str = "generate"):
        self.suite = suite
        self.root = Path(run_dir)
        self.mode = mode
        self.job_type = job_type
        self.run = None
        self.run_dir: str | None = None  # the wandb run's files folder once started
        self.failed: str | None = None  # the one-line reason W&B logging stopped
        self.new_jobs = 0
        self._media: dict[tuple[str, str], Any] = {}  # (kind, path) -> wandb media, each file logged once
        self._job_index = 0

    # state kept in the run folder -------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / "wandb" / STATE_FILE

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _entry(self) -> dict[str, Any]:
        entry = self._state().get(self.job_type) or {}
        same = entry.get("project") == self.suite.tracking.project and entry.get("entity") == self.suite.tracking.entity
        return entry if same else {}

    def _save_entry(self, **fields: Any) -> None:
        state = self._state()
        entry = {**self._entry(), "project": self.suite.tracking.project, "entity": self.suite.tracking.entity,
                 "mode": self.mode, **fields}
        state[self.job_type] = entry
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".part")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.state_path)

    def _records(self) -> list[dict[str, Any]]:
        return load_records(self.root)

    @staticmethod
    def _digest(records: list[dict[str, Any]]) -> str:
        keys = sorted(f"{r.get('job_id')}|{r.get('status')}|{r.get('finished_at')}" for r in records)
        return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]

    # failure handling ----------------------------------------------------------------------------------
    def _disable(self, where: str, e: BaseException) -> None:
        self.failed = _one_line(e)
        warnings.warn(f"W&B logging stopped at {where} ({self.failed}); the run goes on and every result is in "
                      f"{self.root / 'results.jsonl'}; re-run the suite to log it to W&B", TrackingWarning,
                      stacklevel=3)
        run, self.run = self.run, None
        if run is not None:
            try:
                run.finish(exit_code=1)
            except Exception:
                pass

    def _guard(self, where: str, fn, *args: Any) -> None:
        if self.failed:
            return
        try:
            fn(*args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # W&B must never break the run
            self._disable(where, e)

    # Runner callbacks ------------------------------------------------------------------------------------
    def on_run_start(self, jobs, todo) -> None:
        self._guard("start", self._start, list(todo))

    def on_job_end(self, job, record: dict[str, Any]) -> None:
        if self.run is not None:
            self._guard(f"job {record.get('case')}/{record.get('model')}", self._log_job, record)

    def on_run_end(self, records, cancelled: bool) -> None:
        if self.failed:
            return
        self._guard("the end of the run", self._finish, bool(cancelled))

    # ---------------------------------------------------------------------------------------------------
    def _start(self, todo: list) -> None:
        entry = self._entry()
        if not todo and entry.get("table_digest") == self._digest(self._records()):
            return  # nothing new since the last snapshot: a re-run adds nothing
        self.root.mkdir(parents=True, exist_ok=True)
        run_id = entry.get("id") or secrets.token_hex(4)
        t = self.suite.tracking
        self._save_entry(id=run_id)  # before init: a crash mid-run still resumes the same run
        self.run = _init_run(self.mode, self.root, project=t.project, entity=t.entity, id=run_id, resume="allow",
                             name=self.suite.name, group=self.suite.name, job_type=self.job_type,
                             config=_masked({"suite": self.suite.model_dump(mode="json"), "run_dir": str(self.root)}))
        self.run_dir = self.run.dir
        self._job_index = int(entry.get("jobs_logged", 0))
        self.run.define_metric("job/index", hidden=True, summary="none")
        for pattern in ("job/*", "clips/*"):
            self.run.define_metric(pattern, step_metric="job/index", summary="none")

    def _log_job(self, record: dict[str, Any]) -> None:
        self._job_index += 1
        self.new_jobs += 1
        data: dict[str, Any] = {"job/index": self._job_index, "job/ok": int(record.get("status") == "ok"),
                                "job/seconds": (record.get("timings") or {}).get("total")}
        for name, v in (record.get("scores") or {}).items():
            if _finite(v) is not None:
                data[f"job/{name}"] = _finite(v)
        video = self._video(record)
        if video is not None:
            data[f"clips/{record.get('case')}/{record.get('model')}/seed{record.get('seed')}"] = video
        self.run.log(data)
        self._save_entry(jobs_logged=self._job_index)

    def _medium(self, kind: str, path: Path | None, caption: str):
        import wandb

        if path is None or not path.is_file():
            return None
        key = (kind, str(path.resolve()))
        if key not in self._media:
            try:
                if kind == "video":
                    self._media[key] = wandb.Video(str(path), caption=caption, format="mp4")
                elif kind == "image":
                    self._media[key] = wandb.Image(str(path), caption=caption)
                else:
                    self._media[key] = wandb.Audio(str(path), caption=caption)
            except (ValueError, TypeError, OSError) as e:  # an unreadable input: the row keeps its other cells
                print(f"wandb: {path}: not logged as {kind} ({e})", file=sys.stderr)
                self._media[key] = None
        return self._media[key]

    def _video(self, r: dict[str, Any]):
        """The job's output as a W&B medium: the clip, or a text-to-image job's picture."""
        out = media_of(r)
        if out is None:
            return None
        kind = "image" if out.lower().endswith((".png", ".jpg", ".jpeg", ".webp")) else "video"
        return self._medium(kind, self.root / out, f"{r.get('case')} | {r.get('model')} | seed {r.get('seed')}")

    def _input(self, r: dict[str, Any], kind: str):
        info = (r.get("inputs") or {}).get(kind) or {}
        path = Path(info["path"]) if info.get("path") else None
        return self._medium(kind, path, f"{r.get('case')} {kind}")

    def comparison_table(self, records: list[dict[str, Any]], names: list[str]):
        import wandb


        columns = ["case", "model", "seed", "status", "params", "video", "image", "audio", *names, "cost_usd", "error",
                   "video_path", "job_id"]
        table = wandb.Table(columns=columns, allow_mixed_types=True)
        for r in records:
            scores = r.get("scores") or {}
            table.add_data(str(r.get("case")), str(r.get("model")), r.get("seed"), r.get("status"),
                           json.dumps(r.get("params") or {}, sort_keys=True, default=str),
                           self._video(r), self._input(r, "image"), self._input(r, "audio"),
                           *[_finite(scores.get(n)) for n in names], usd_of(r),
                           r.get("error") or None, r.get("video") or r.get("image_out"), r.get("job_id"))
        return table

    @contextlib.contextmanager
    def _staged_in_run_folder(self):
        """Tables are logged as artifacts whose files wandb stages under WANDB_DATA_DIR until they are
        uploaded (`wandb sync` for offline runs). Unless the user chose that folder, stage them in
        RUN_DIR/wandb/data so the run folder holds everything its W&B run needs."""
        if os.environ.get("WANDB_DATA_DIR"):
            yield
            return
        os.environ["WANDB_DATA_DIR"] = str(self.root / "wandb" / "data")
        try:
            yield
        finally:
            os.environ.pop("WANDB_DATA_DIR", None)

    def _finish(self, cancelled: bool) -> None:
        records = self._records()
        digest = self._digest(records)
        if self.run is None:
            return
        import wandb

        names = score_names(records)
        with self._staged_in_run_folder(), every_row(len(records)):
            self.run.log({"comparison": self.comparison_table(records, names)})
        stats = model_summaries(records, names)
        models = list(dict.fromkeys(str(r.get("model")) for r in records))

        costs = cost_summary(records)
        cols = ["model", "n_ok", "n_failed", "cost_usd", "cost_usd_per_clip"]
        for n in names:
            cols += [n, f"{n}_ci_lo", f"{n}_ci_hi"]
        summary_table = wandb.Table(columns=cols, allow_mixed_types=True)
        for m in models:
            mine = [r for r in records if str(r.get("model")) == m]
            ok = sum(r.get("status") == "ok" for r in mine)
            c = costs.get(m) or {}
            row: list[Any] = [m, ok, len(mine) - ok, c.get("usd"), c.get("usd_per_clip")]
            if c and not c.get("local"):
                self.run.summary[f"{m}/cost_usd"] = c.get("usd")
                if c.get("usd_per_clip") is not None:
                    self.run.summary[f"{m}/cost_usd_per_clip"] = c["usd_per_clip"]
            for n in names:
                s = stats.get(m, {}).get(n) or {}
                row += [s.get("mean"), s.get("lo"), s.get("hi")]
                if s.get("mean") is not None:
                    self.run.summary[f"{m}/{n}"] = s["mean"]
                    if s.get("lo") is not None:
                        self.run.summary[f"{m}/{n}_ci95"] = [s["lo"], s["hi"]]
            self.run.summary[f"{m}/jobs_ok"] = ok
            self.run.summary[f"{m}/jobs_failed"] = len(mine) - ok
            summary_table.add_data(*row)
        charts: dict[str, Any] = {"model_summary": summary_table}
        for n in names:
            if any((stats.get(m, {}).get(n) or {}).get("mean") is not None for m in models):
                charts[f"charts/{n}"] = wandb.plot.bar(summary_table, "model", n, title=f"{n}: mean per model")
        with self._staged_in_run_folder():
            self.run.log(charts)
        self.run.summary["jobs/total"] = len(records)
        self.run.summary["jobs/failed"] = sum(r.get("status") != "ok" for r in records)
        self.run.summary["jobs/new_this_session"] = self.new_jobs
        self.run.summary["cancelled"] = cancelled
        run, self.run = self.run, None
        run.finish()
        self._save_entry(table_digest=digest, table_rows=len(records))


# --------------------------------------------------------------------------------------------------
# Reading an offline run back: the .wandb file is a LevelDB-style log of `wandb.proto` Record messages
# (7-byte file header ":W&B" + magic + version, then 32 KiB blocks of chunks with a 7-byte header:
# crc32c, length, type FULL/FIRST/MIDDLE/LAST). wandb 0.31 moved its own scanner into the Go core, so
# this reads the framing and decodes each record with wandb's protobuf classes.

_BLOCK = 32768
_HEADER = 7


def iter_wandb_records(path: str | Path):
    """Every `wandb_internal_pb2.Record` in a `run-*.wandb` file, in order (stops at a torn tail)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if len(data) < _HEADER and b":W&B".startswith(data[:4]):
        return  # the service has not written the header yet
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B transaction log (no :W&B header); pass RUN_DIR/wandb/offline-run-*/run-*.wandb")
    off, buf = _HEADER, b""
    while off + _HEADER <= len(data):
        left = _BLOCK - off % _BLOCK
        if left < _HEADER:
            off += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[off:off + _HEADER])
        off += _HEADER
        chunk = data[off:off + length]
        off += length
        if kind == 0 and length == 0:
            continue
        if len(chunk) < length:
            return
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            try:
                rec.ParseFromString(buf)
            except Exception:
                return
            yield rec
            buf = b""


def _set(d: dict, keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def read_offline_run(run_folder: str | Path, wait_s: float = 10.0) -> dict[str, Any]:
    """What an offline run folder (`.../wandb/offline-run-*`) holds: {"id", "project", "config",
    "summary", "history": [rows], "files": [paths], "artifacts": [{"name", "type", "files"}],
    "tables": {key: table json with "files": {path in the table: local file}}}.

    W&B's service may still be writing the log just after `run.finish()` returns: the reader waits up to
    `wait_s` for the log file and its closing `exit` record (a crashed run has none: what is there is
    returned)."""
    folder = Path(run_folder)
    deadline = time.monotonic() + wait_s
    while True:  # the log file itself may not be there yet just after `run.finish()` (a busy machine)
        logs = sorted(folder.glob("run-*.wandb"))
        if logs or time.monotonic() > deadline or not folder.is_dir():
            break
        time.sleep(0.1)
    if not logs:
        raise FileNotFoundError(f"{folder}: no run-*.wandb file; pass an offline-run-* folder under RUN_DIR/wandb")
    while True:
        records = list(iter_wandb_records(logs[0]))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out: dict[str, Any] = {"id": None, "project": None, "config": {}, "summary": {}, "history": [], "files": [],
                           "artifacts": [], "tables": {}}

    def items(updates) -> Iterable[tuple[list[str], Any]]:
        for u in updates:
            keys = list(u.nested_key) or [u.key]
            yield keys, json.loads(u.value_json)

    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["id"], out["project"] = rec.run.run_id, rec.run.project
            for keys, v in items(rec.run.config.update):
                _set(out["config"], keys, v)
        elif kind == "config":
            for keys, v in items(rec.config.update):
                _set(out["config"], keys, v)
        elif kind == "summary":
            for keys, v in items(rec.summary.update):
                _set(out["summary"], keys, v)
        elif kind == "history":
            row: dict[str, Any] = {}
            for keys, v in items(rec.history.item):
                _set(row, keys, v)
            out["history"].append(row)
        elif kind == "files":
            out["files"].extend(f.path for f in rec.files.files)
        elif kind == "artifact":
            a = rec.artifact
            out["artifacts"].append({"name": a.name, "type": a.type,
                                     "files": {c.path: c.local_path for c in a.manifest.contents}})
    # a logged wandb.Table lives in a `run_table` artifact: its JSON (media cells as {"_type", "path"}) and
    # the media files it names, staged at local paths until `wandb sync` uploads them
    for a in out["artifacts"]:
        if a["type"] != "run_table":
            continue
        for path, local in a["files"].items():
            if path.endswith(".table.json") and Path(local).is_file():
                table = json.loads(Path(local).read_text())
                table["files"] = a["files"]
                out["tables"][path[: -len(".table.json")]] = table
    return out
