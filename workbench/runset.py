"""The records a comparison shows: one run folder's current jobs, or several run folders joined.

A run folder's results.jsonl keeps every record it ever got: jobs of an earlier version of the suite
(a case renamed, a case's image changed, a model dropped) stay in it. A comparison shows the *current*
jobs only and says what it left out:

- with the folder's suite snapshot (suite.json, the suite it was last run with), records whose case,
  model or seed is not in that suite are left out (not in a Studio folder, which gathers one small
  suite per Run: there every job is current);
- of several records for one slot (case, model, seed, output), the latest stands: the others were
  superseded (the case's inputs changed, or the same slot was run in two folders).

Several run folders (or a folder holding run folders, like runs/) are joined on case and seed: model A
run today and model B run tomorrow on the same inputs give one comparison row. A case id that names
different inputs in two folders is not merged: the later folder's case gets the folder name appended
(made unique: `a@p2-run` when several folders are called `run`). A folder with no records is named in
the notes.
Video and series paths are rewritten relative to the folder the report is written into.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from workbench.store import RESULTS, RunStore


STUDIO_SUITES = "suites"  # where the Studio writes the small suite of each Run inside its run folder


class RunSetError(ValueError):
    """A folder that holds no run (one line naming it and the fix)."""


@dataclass
class RunSet:
    """Records ready to compare, with the notes on what was left out and why."""

    records: list[dict[str, Any]]
    runs: list[Path]
    left_out: list[str] = field(default_factory=list)


def media_of(r: dict[str, Any]) -> str | None:
    """The record's output file, relative to its run folder: the clip, or a text-to-image job's picture."""
    out = r.get("video") or r.get("image_out")
    return out if isinstance(out, str) and out else None


def slot(r: dict[str, Any]) -> tuple:
    """What one clip stands for in a comparison: (case, model, seed, output)."""
    return (str(r.get("case")), str(r.get("model")), r.get("seed"), r.get("output") or 0)


def input_signature(r: dict[str, Any]) -> tuple:
    """The content of a record's inputs (hashes) and prompts: equal signatures are the same case."""
    ins = r.get("inputs") or {}
    return (tuple(sorted((k, (v or {}).get("sha256") or (v or {}).get("path") or "") for k, v in ins.items())),
            r.get("prompt") or "", r.get("negative_prompt") or "")


_SHAPE: dict[str, tuple[type, ...]] = {  # what each field of a record must be (None allowed for all but case/model)
    "scores": (dict,), "backends": (dict,), "score_errors": (dict,), "inputs": (dict,), "clip": (dict,),
    "timings": (dict,), "worst_frame": (dict,), "params": (dict,), "warnings": (list,), "video": (str,),
    "series": (str,), "image_out": (str,), "prompt": (str,), "error": (str,), "status": (str,), "job_id": (str,),
}


def malformed(r: Any) -> str | None:
    """Why a record cannot be shown (a hand-edited or foreign line in results.jsonl); None when it can."""
    if not isinstance(r, dict):
        return "not a JSON object"
    for key in ("case", "model"):
        if not isinstance(r.get(key), (str, int)) or isinstance(r.get(key), bool):
            return f"{key} is {type(r.get(key)).__name__}, not a name"
    if r.get("seed") is not None and (not isinstance(r["seed"], int) or isinstance(r["seed"], bool)):
        return f"seed is {r['seed']!r}, not an integer"
    if r.get("output") is not None and (not isinstance(r["output"], int) or isinstance(r["output"], bool)):
        return f"output is {r['output']!r}, not an integer"
    for key, types in _SHAPE.items():
        if r.get(key) is not None and not isinstance(r[key], types):
            return f"{key} is {type(r[key]).__name__}, not {types[0].__name__}"
    for name, v in (r.get("scores") or {}).items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"score {name} is {v!r}, not a number"
    for key, v in (r.get("inputs") or {}).items():
        if v is not None and not isinstance(v, dict):
            return f"input {key} is {type(v).__name__}, not a mapping"
    return None


def well_formed(records: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records that can be shown, and one note for those that cannot."""
    keep, bad = [], []
    for r in records:
        why = malformed(r)
        if why is None:
            keep.append(r)
        else:
            bad.append(f"{r.get('job_id') if isinstance(r, dict) else '?'} ({why})")
    notes = [f"{_plural(len(bad), 'malformed record')} in results.jsonl: " + "; ".join(bad[:3])
             + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else "")] if bad else []
    return keep, notes


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def find_runs(path: str | Path) -> list[Path]:
    """`path` itself when it holds results.jsonl, else every run folder below it (a runs/ folder):
    folders holding results.jsonl, not descending into a run (its selections/ are subsets of it)."""
    path = Path(path)
    if not path.exists():
        raise RunSetError(f"{path}: not found; pass a run folder written by `workbench run` (or a folder of them)")
    if not path.is_dir():
        raise RunSetError(f"{path}: not a folder; pass a run folder written by `workbench run` (or a folder of them)")
    if (path / RESULTS).exists():
        return [path]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("clips", "series", "wandb"))
        if RESULTS in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []  # a run's own subfolders (selections/) are not further runs
    if not found:
        raise RunSetError(f"{path}: holds no run folder (no results.jsonl in it or below it); run a suite first "
                          f"(`workbench run SUITE.yaml --out {path}`)")
    return found


def _suite_slots(run_dir: Path) -> tuple[set[str], set[str], set[int]] | None:
    """(case ids, model labels, seeds) of the suite the folder was last run with; None without one."""
    from workbench.suite import SuiteError, load_snapshot

    if not (run_dir / "suite.json").is_file():
        return None
    try:
        suite = load_snapshot(run_dir)
    except SuiteError:
        return None
    return ({c.id for c in suite.cases}, {m.display for m in suite.models}, set(suite.seeds))


def current_records(run_dir: str | Path, records: list[dict[str, Any]] | None = None) -> RunSet:
    """One run folder's records that belong to its current suite, latest per slot (see module doc)."""
    run_dir = Path(run_dir)
    if records is None:
        records = list(RunStore(run_dir).latest().values())
    records, left_out = well_formed(records)
    # a Studio folder (RUN/suites/suite-*.yaml, one small suite per Run; RUN/studio/ before) accumulates its
    # suites: every job of it is current, only superseded slots go
    studio = any((run_dir / name).is_dir() for name in (STUDIO_SUITES, "studio"))
    wanted = None if studio else _suite_slots(run_dir)
    if wanted is not None:
        cases, models, seeds = wanted
        keep, gone_cases, gone_models, gone_seeds = [], Counter(), Counter(), Counter()
        for r in records:
            if str(r.get("case")) not in cases:
                gone_cases[str(r.get("case"))] += 1
            elif str(r.get("model")) not in models:
                gone_models[str(r.get("model"))] += 1
            elif r.get("seed") not in seeds:
                gone_seeds[str(r.get("seed"))] += 1
            else:
                keep.append(r)
        for counter, what in ((gone_cases, "case"), (gone_models, "model"), (gone_seeds, "seed")):
            if counter:
                names = ", ".join(sorted(counter))
                left_out.append(f"{_plural(sum(counter.values()), 'record')} of {what}{'' if len(counter) == 1 else 's'} "
                                f"{names}: not in the suite this folder was last run with (suite.json)")
        records = keep
    records, superseded = _latest_per_slot(records)
    if superseded:
        left_out.append(f"{_plural(superseded, 'older record')} superseded by a later job of the same case, model "
                        f"and seed (the case's inputs or prompt changed)")
    return RunSet(records, [run_dir], left_out)


def _latest_per_slot(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The last record (file order, then finished_at) of each slot; and how many were dropped."""
    last: dict[tuple, int] = {}
    for i, r in enumerate(records):
        k = slot(r)
        j = last.get(k)
        if j is None or str(r.get("finished_at") or "") >= str(records[j].get("finished_at") or ""):
            last[k] = i
    chosen = sorted(last.values())
    return [records[i] for i in chosen], len(records) - len(chosen)


def _rebase(r: dict[str, Any], run_dir: str, out_dir: str) -> dict[str, Any]:
    """A copy of `r` whose clip and series paths are relative to `out_dir` (they were relative to run_dir).

    Both folders come resolved once per run (a 10,000-record join would otherwise resolve 20,000 paths)."""
    r = dict(r)
    for key in ("video", "image_out", "series"):
        if r.get(key):
            r[key] = os.path.relpath(os.path.normpath(os.path.join(run_dir, r[key])), out_dir)
    return r


def load_runs(paths: Iterable[str | Path], out_dir: str | Path | None = None) -> RunSet:
    """Records of several run folders (or folders of runs), joined on case and seed.

    Each folder contributes its current records (`current_records`); a slot run in several folders
    keeps its latest record; a case id naming different inputs in two folders becomes two cases
    (`case@folder`, unique however the folders are named). Paths in the records are made relative to `out_dir` (default: the first run), and
    each record gets `run` (the folder it came from)."""
    runs: list[Path] = []
    for p in paths:
        for r in find_runs(p):
            if r.resolve() not in {x.resolve() for x in runs}:
                runs.append(r)
    if not runs:
        raise RunSetError("no run folder given; pass one or more run folders (or a runs/ folder)")
    out = Path(out_dir) if out_dir is not None else runs[0]
    merged: list[dict[str, Any]] = []
    notes: list[str] = []
    currents = [(run, current_records(run)) for run in runs]
    labels = run_labels(runs)
    used = {str(r.get("case")) for _, cur in currents for r in cur.records}  # a new name never takes an existing one
    signature_of: dict[str, tuple] = {}
    renamed: dict[tuple, str] = {}  # (case, input signature) -> its unique name in the join
    out_res = out.resolve()
    for run, cur in currents:
        run_res = run.resolve()
        same, run_rel = run_res == out_res, os.path.relpath(run_res, out_res)
        notes += [f"{run.name}: {n}" for n in cur.left_out] if len(runs) > 1 else cur.left_out
        if len(runs) > 1 and not cur.records and not cur.left_out:
            notes.append(f"{labels[run]}: holds no records (its results.jsonl is empty); nothing of it is shown")
        for r in cur.records:
            r = dict(r) if same else _rebase(r, str(run_res), str(out_res))
            r["run"] = run_rel
            case, sig = str(r.get("case")), input_signature(r)
            if signature_of.setdefault(case, sig) != sig and r.get("status") == "ok":
                name = renamed.get((case, sig))
                if name is None:  # same id, other inputs: never one row, and never a name another row has
                    name, n = f"{case}@{labels[run]}", 2
                    while name in used:
                        name, n = f"{case}@{labels[run]}~{n}", n + 1
                    used.add(name)
                    renamed[(case, sig)] = name
                    notes.append(f"case {case} names other inputs in {labels[run]} than in an earlier folder: shown "
                                 f"as {name}, not joined")
                r["case"] = name
            merged.append(r)
    records, dup = _latest_per_slot(merged)
    if dup:
        notes.append(f"{_plural(dup, 'record')} of a case, model and seed run in several folders: the latest is shown")
    return RunSet(records, runs, notes)


def run_labels(runs: list[Path]) -> dict[Path, str]:
    """A short name per run folder, unique among `runs`: its folder name, with its parents' names when
    several share it (p1/run, p2/run: p1-run, p2-run), else numbered."""
    labels: dict[Path, str] = {}
    for depth in range(1, 4):
        labels = {r: "-".join(r.resolve().parts[-depth:]) for r in runs}
        if len(set(labels.values())) == len(runs):
            return labels
    seen: Counter = Counter()
    for r in runs:
        seen[labels[r]] += 1
        if seen[labels[r]] > 1:
            labels[r] = f"{labels[r]}-{seen[labels[r]]}"
    return labels
