"""`RUN/judgments.jsonl`: one line per human vote, written the way results.jsonl is.

A vote names the clips it showed by their **job ids** (the clip's stable identity: a re-generated clip
gets a new job id, so it never inherits the votes of the clip it replaced), in the order they were
shown left to right, the model of each (never shown to the judge; the run's records stay the truth),
the choice and the criterion asked:

    {"vote_id": "9f2c...", "rater": "ana", "time": "2026-12-03T10:21:07Z", "run": "smoke",
     "case": "portrait-1a2b3c", "seed": 0, "output": 0, "clips": ["<job>", "<job>", "<job>"],
     "models": ["kenburns", "puppet", "static"], "choice": "best", "positions": [1],
     "criterion": "overall", "note": "", "source": "studio"}

- ``choice``: ``best`` (``positions`` = [the shown position of the best clip]), ``rank`` (``positions``
  = every shown position, best first), ``tie`` (no clip is better) or ``all_bad`` (none is acceptable;
  counted as a tie when ranking). Positions are 0-based from the left.
- ``criterion``: ``overall``, ``lip_sync``, ``identity`` or ``motion`` (``lip-sync`` is read as
  ``lip_sync``).

Writing follows `workbench.store`: each vote is one whole line appended under an exclusive lock
(`judgments.lock`), fsynced before the call returns, so any number of raters (kernels, terminals, an
import) may write at once and a kill loses at most the vote being written. A torn line (a hard kill
mid-write) is skipped when reading and never glued to the next vote. `vote_id` makes an import
idempotent: a vote already in the file is not added again.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from workbench.store import RESULTS, RunStore, file_lock

JUDGMENTS = "judgments.jsonl"
LOCK = "judgments.lock"
CRITERIA: tuple[str, ...] = ("overall", "lip_sync", "identity", "motion")
CRITERION_LABELS = {"overall": "overall", "lip_sync": "lip-sync", "identity": "identity", "motion": "motion"}
CHOICES: tuple[str, ...] = ("best", "rank", "tie", "all_bad")
MIN_K, MAX_K = 2, 4
Vote = dict[str, Any]


class JudgmentError(ValueError):
    """A vote or a judgments file that cannot be used: one line naming it and the fix."""


def now_iso() -> str:
    """The current UTC time as `2026-12-03T10:21:07Z` (what a vote's `time` holds)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def criterion_name(value: Any) -> str:
    """The canonical criterion name (`lip-sync` -> `lip_sync`); JudgmentError when it is not one."""
    name = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    if name not in CRITERIA:
        raise JudgmentError(f"criterion {value!r} is not one of {', '.join(CRITERIA)}")
    return name


def check_vote(obj: Any) -> Vote:
    """The vote `obj` normalised (criterion canonical, defaults filled); JudgmentError (one line, no
    location: the caller adds the file and line) when it is not a vote."""
    if not isinstance(obj, Mapping):
        raise JudgmentError("not a JSON object")
    v = dict(obj)
    vid = v.get("vote_id")
    if not isinstance(vid, str) or not vid.strip() or len(vid) > 100:
        raise JudgmentError("no vote_id (a text id unique to the vote)")
    clips = v.get("clips")
    if (not isinstance(clips, list) or not MIN_K <= len(clips) <= MAX_K
            or not all(isinstance(c, str) and c for c in clips)):
        raise JudgmentError(f"'clips' must list {MIN_K} to {MAX_K} job ids in the order shown")
    if len(set(clips)) != len(clips):
        raise JudgmentError("'clips' names one clip twice")
    models = v.get("models")
    if models is not None and (not isinstance(models, list) or len(models) != len(clips)):
        raise JudgmentError("'models' must give one model per clip, in the order shown")
    choice = v.get("choice")
    if choice not in CHOICES:
        raise JudgmentError(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
    pos = v.get("positions")
    pos = [] if pos is None else pos
    if not isinstance(pos, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in pos):
        raise JudgmentError("'positions' must be a list of shown positions (0 = leftmost)")
    k = len(clips)
    if any(not 0 <= p < k for p in pos) or len(set(pos)) != len(pos):
        raise JudgmentError(f"'positions' {pos} do not fit {k} shown clips (0 to {k - 1}, each once)")
    need = {"best": 1, "rank": k, "tie": 0, "all_bad": 0}[choice]
    if len(pos) != need:
        raise JudgmentError(f"a '{choice}' vote over {k} clips needs {need} position{'s' if need != 1 else ''}, "
                            f"got {len(pos)}")
    v["positions"] = pos
    v["criterion"] = criterion_name(v.get("criterion", "overall"))
    if not isinstance(v.get("case"), str):
        raise JudgmentError("'case' must be the case id (text)")
    for key in ("seed", "output"):
        x = v.get(key, 0)
        if isinstance(x, bool) or not isinstance(x, int):
            raise JudgmentError(f"'{key}' must be a whole number")
        v[key] = x
    if not isinstance(v.get("rater", ""), str) or not str(v.get("rater", "")).strip():
        raise JudgmentError("'rater' must name who judged (text)")
    v["rater"] = v["rater"].strip()
    if not isinstance(v.get("time", ""), str):
        raise JudgmentError("'time' must be an ISO time (text)")
    v.setdefault("time", "")
    if not isinstance(v.get("note", ""), str):
        raise JudgmentError("'note' must be text")
    v.setdefault("note", "")
    return v


def make_vote(*, rater: str, case: str, seed: int, clips: list[str], choice: str, positions: list[int] | None = None,
              criterion: str = "overall", models: list[str] | None = None, output: int = 0, note: str = "",
              run: str = "", source: str = "api") -> Vote:
    """A new checked vote with a fresh vote_id and the current time (see the module doc for the fields)."""
    return check_vote({"vote_id": uuid.uuid4().hex, "rater": rater, "time": now_iso(), "run": run, "case": case,
                       "seed": seed, "output": output, "clips": list(clips), "models": models,
                       "choice": choice, "positions": list(positions or []), "criterion": criterion,
                       "note": note, "source": source})


def ranked_clips(vote: Mapping[str, Any]) -> list[str]:
    """The clips a vote ranks, best first: one for `best`, all for `rank`, none for a tie."""
    return [vote["clips"][p] for p in vote.get("positions") or []]


# --------------------------------------------------------------------------------------------------
# the file
# --------------------------------------------------------------------------------------------------
def judgments_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / JUDGMENTS


def append_votes(run_dir: str | Path, votes: Iterable[Mapping[str, Any]]) -> int:
    """Append checked votes to RUN/judgments.jsonl as whole lines under the folder's judgments lock
    (any number of writers), skipping vote_ids the file already holds; returns how many were added.
    All or nothing: a write that fails (disk full) cuts the file back and raises JudgmentError."""
    run_dir = Path(run_dir)
    checked = [check_vote(v) for v in votes]
    if not checked:
        return 0
    path = judgments_path(run_dir)
    if not run_dir.is_dir():
        raise JudgmentError(f"{run_dir}: not a run folder; pass the folder that holds results.jsonl")
    with file_lock(run_dir / LOCK):
        have = {v["vote_id"] for v in read_votes(run_dir)}
        fresh, seen = [], set(have)
        for v in checked:
            if v["vote_id"] not in seen:
                seen.add(v["vote_id"])
                fresh.append(v)
        if not fresh:
            return 0
        data = "".join(json.dumps(v, ensure_ascii=False, sort_keys=False) + "\n" for v in fresh).encode()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as e:
            raise JudgmentError(f"{path}: cannot be written ({e.strerror or e}); fix the folder's permissions") from None
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a torn tail from a killed writer: our votes start on a line of their own
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    if n <= 0:
                        raise OSError(28, "No space left on device")
                    view = view[n:]
                os.fsync(fd)
            except OSError as e:
                os.ftruncate(fd, size)
                raise JudgmentError(f"{path}: vote not written ({e.strerror or e}); free space and vote again") from None
        finally:
            os.close(fd)
    return len(fresh)


def append_vote(run_dir: str | Path, vote: Mapping[str, Any]) -> bool:
    """Append one vote (see `append_votes`); False when its vote_id was already there."""
    return append_votes(run_dir, [vote]) == 1


def read_votes(run_dir: str | Path) -> list[Vote]:
    """Every whole, well-formed vote of RUN/judgments.jsonl in file order, the first of each vote_id
    (a torn or hand-broken line is skipped: `read_file_strict` names it)."""
    path = judgments_path(run_dir)
    out: list[Vote] = []
    seen: set[str] = set()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return out
    except OSError as e:
        raise JudgmentError(f"{path}: cannot be read ({e.strerror or e}); fix its permissions") from None
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            v = check_vote(json.loads(line))
        except (ValueError, JudgmentError):
            continue
        if v["vote_id"] not in seen:
            seen.add(v["vote_id"])
            out.append(v)
    return out


def read_file_strict(path: str | Path) -> list[Vote]:
    """The votes of a downloaded or exported judgments file, every line checked: the first bad line is
    one JudgmentError naming the file, the line and the fix (nothing is taken from a bad file)."""
    path = Path(path)
    fix = "download the votes again from the report, or delete that line"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise JudgmentError(f"{path}: not found; pass the votes file the report downloaded") from None
    except IsADirectoryError:
        raise JudgmentError(f"{path}: is a folder; pass the votes file (.jsonl) the report downloaded") from None
    except OSError as e:
        raise JudgmentError(f"{path}: cannot be read ({e.strerror or e})") from None
    text = raw.decode("utf-8", errors="replace")
    stripped = text.strip()
    if stripped.startswith("["):  # a JSON array of votes is accepted too
        try:
            items = json.loads(stripped)
        except ValueError:
            raise JudgmentError(f"{path}: not whole JSON (truncated?); {fix}") from None
        lines = [(i + 1, item) for i, item in enumerate(items)] if isinstance(items, list) else []
    else:
        lines = []
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                lines.append((n, json.loads(line)))
            except ValueError:
                raise JudgmentError(f"{path} line {n}: not a whole JSON object (truncated?); {fix}") from None
    votes = []
    for n, obj in lines:
        try:
            votes.append(check_vote(obj))
        except JudgmentError as e:
            raise JudgmentError(f"{path} line {n}: {e}; {fix}") from None
    if not votes:
        raise JudgmentError(f"{path}: holds no votes; judge some clips in the report first, then download them")
    return votes


# --------------------------------------------------------------------------------------------------
# which votes count
# --------------------------------------------------------------------------------------------------
@dataclass
class VoteSet:
    """The votes of a comparison, split by whether they still apply.

    `current`: every clip it names is a current clip of the comparison (`clip_models` has it);
    `stale`: it names a clip that was re-generated or left the comparison (kept in the file, not counted)."""

    current: list[Vote]
    stale: list[Vote] = field(default_factory=list)
    clip_models: dict[str, str] = field(default_factory=dict)

    def criterion(self, name: str) -> list[Vote]:
        name = criterion_name(name)
        return [v for v in self.current if v["criterion"] == name]

    def criteria(self) -> list[str]:
        """The criteria with current votes, in CRITERIA order."""
        have = {v["criterion"] for v in self.current}
        return [c for c in CRITERIA if c in have]


def clip_models(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{job id: model} of the finished clips among these records (what a vote may name)."""
    return {str(r["job_id"]): str(r.get("model")) for r in records
            if r.get("status") == "ok" and r.get("job_id") and (r.get("video") or r.get("image_out"))}


def split_votes(votes: Iterable[Vote], records: Iterable[Mapping[str, Any]]) -> VoteSet:
    """Split votes into current and stale against the comparison's current records (see VoteSet); a
    current vote's `models` are set from the records (the records are the truth)."""
    models = clip_models(records)
    cur, stale = [], []
    for v in votes:
        if all(c in models for c in v["clips"]):
            cur.append({**v, "models": [models[c] for c in v["clips"]]})
        else:
            stale.append(v)
    return VoteSet(cur, stale, models)


def run_votes(run_dirs: str | Path | Iterable[str | Path], records: Iterable[Mapping[str, Any]]) -> VoteSet:
    """The votes of one run folder, or of joined folders (each folder's judgments.jsonl; a vote_id in
    two of them counts once), split against `records` (the comparison's current records)."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    seen: set[str] = set()
    votes: list[Vote] = []
    for d in dirs:
        for v in read_votes(d):
            if v["vote_id"] not in seen:
                seen.add(v["vote_id"])
                votes.append(v)
    return split_votes(votes, records)


# --------------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------------
@dataclass
class ImportResult:
    """What `import_votes` did: votes added, already there, left out (naming clips the run never made),
    and how many of the added ones name clips that were since re-generated (kept, not counted)."""

    path: Path
    run: Path
    added: int = 0
    duplicates: int = 0
    foreign: int = 0
    stale: int = 0

    def lines(self) -> list[str]:
        out = [f"{self.path}: {self.added} vote{'s' if self.added != 1 else ''} added to {self.run / JUDGMENTS}"
               + (f", {self.duplicates} already there" if self.duplicates else "")]
        if self.foreign:
            out.append(f"warning: {self.foreign} vote{'s name' if self.foreign != 1 else ' names'} clips "
                       f"{self.run} never made (another run's); left out")
        if self.stale:
            out.append(f"warning: {self.stale} added vote{'s name' if self.stale != 1 else ' names'} clips since "
                       f"re-generated; kept in the file, not counted in the ranking")
        return out


def import_votes(path: str | Path, run_dir: str | Path) -> ImportResult:
    """Merge a votes file (downloaded from a report, or another folder's judgments.jsonl) into RUN.

    Every line is checked first (a bad line refuses the whole file); votes already in RUN (same
    vote_id) are skipped; a file none of whose votes names a clip of RUN is refused as another run's.
    Votes naming clips RUN never made are left out (counted); the rest are appended under the lock."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    if not run_dir.is_dir() or not store.results.is_file():
        raise JudgmentError(f"{run_dir}: not a run folder (no {RESULTS}); pass --run the folder the report was "
                            f"written from")
    votes = read_file_strict(path)
    made = {str(r.get("job_id")): r for r in store.records() if r.get("job_id")}
    from workbench.runset import current_records

    current = clip_models(current_records(run_dir).records)
    ours = [v for v in votes if all(c in made for c in v["clips"])]
    result = ImportResult(Path(path), run_dir, foreign=len(votes) - len(ours))
    if not ours:
        runs = sorted({str(v.get("run")) for v in votes if v.get("run")})
        named = f" (it was made for run {', '.join(runs)})" if runs and runs != [run_dir.name] else ""
        raise JudgmentError(f"{path}: none of its {len(votes)} votes names a clip of {run_dir}{named}; import it "
                            f"with --run the folder its report was written from")
    have = {v["vote_id"] for v in read_votes(run_dir)}
    fresh = [v for v in ours if v["vote_id"] not in have]
    result.duplicates = len(ours) - len(fresh)
    result.added = append_votes(run_dir, fresh)
    result.duplicates += len(fresh) - result.added  # written by someone else meanwhile
    result.stale = sum(1 for v in fresh if not all(c in current for c in v["clips"]))
    return result


def finite_or_none(x: Any) -> float | None:
    """x as a finite float, else None (JSON has no NaN)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
