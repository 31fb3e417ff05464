"""The judging section of the HTML report and the data of its blind judging page.

The report shows, per criterion, the ranking from the votes, the arena checks and "which metric agrees
with your eyes"; with scripts on, its judging panel shows the clips of one case and seed from K models
(no names, shuffled, balanced positions), keeps each vote in the browser (localStorage, so a reload
keeps them) and downloads them as a .jsonl file that `workbench judgments import FILE --run RUN`
merges. The panel's rule: the row with the fewest votes so far (the run's and this browser's) first,
K of its models at random, each model placed where it was shown least.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from workbench.judging.schedule import rows_of
from workbench.judging.store import CRITERIA, CRITERION_LABELS, JudgmentError, run_votes


def comparison_records(run_dirs: Sequence[str | Path]) -> tuple[list[dict[str, Any]], list[Path]]:
    """(current records, run folders) of one run folder or several joined on case and seed (record paths
    relative to the first); a folder that holds no run is one JudgmentError."""
    from workbench.runset import RunSetError, current_records, load_runs

    dirs = [Path(p) for p in run_dirs]
    if not dirs:
        raise JudgmentError("no run folder given; pass the run folder that holds results.jsonl")
    for d in dirs:
        if not (d / "results.jsonl").is_file():
            raise JudgmentError(f"{d}: not a run folder (no results.jsonl); pass a folder written by `workbench run`")
    if len(dirs) == 1:
        return current_records(dirs[0]).records, dirs
    try:
        rs = load_runs(dirs, dirs[0])
    except RunSetError as e:
        raise JudgmentError(str(e)) from None
    return rs.records, [Path(p) for p in rs.runs]


def suite_objective(run_dir: Path) -> Any:
    """The suite's `objective:` (workflow.bestofn.Objective) from RUN/suite.json, or None."""
    from workbench.suite import SuiteError, load_snapshot
    from workbench.workflow.bestofn import Objective, ObjectiveError

    if not (Path(run_dir) / "suite.json").is_file():
        return None
    try:
        spec = load_snapshot(Path(run_dir)).effective_objective()
        return Objective.parse(spec) if spec else None
    except (SuiteError, ObjectiveError):
        return None


def _run_dirs(records: Iterable[Mapping[str, Any]], run_dir: Path) -> list[Path]:
    """The run folders a report's records come from (joined records carry `run`, relative to run_dir)."""
    dirs = {run_dir.resolve(): run_dir}
    for r in records:
        rel = r.get("run")
        if isinstance(rel, str) and rel:
            p = (run_dir / rel).resolve()
            dirs.setdefault(p, p)
    return [d for d in dirs.values() if (d / "results.jsonl").is_file()] or [run_dir]


def report_context(records: Sequence[Mapping[str, Any]], run_dir: str | Path, objective: Any = None) -> dict[str, Any]:
    """The report's `judging` context: the summary per criterion (empty without votes) and the JSON of the
    blind judging panel (rows of clips by job id and path, the run's vote counts per row)."""
    from workbench.judging.summary import summarize
    from workbench.report_table import table_json

    run_dir = Path(run_dir)
    dirs = _run_dirs(records, run_dir)
    try:
        votes = run_votes(dirs, records)
    except JudgmentError as e:
        return {"error": str(e), "summary": None, "panel": "{}", "rows": 0}
    summary = summarize(votes, records, objective) if votes.current else None
    counts: dict[tuple, int] = {}
    for v in votes.current:
        key = (v["case"], v["seed"], v.get("output", 0))
        counts[key] = counts.get(key, 0) + 1
    rows = []
    by_id = {str(r.get("job_id")): r for r in records}
    for (case, seed, output), clips in rows_of(records).items():
        rows.append({"c": case, "s": seed, "o": output, "n": counts.get((case, seed, output), 0),
                     "x": [[job, by_id[job].get("video") or by_id[job].get("image_out"), model]
                           for model, job in clips.items()]})
    panel = {"run": run_dir.name, "rows": rows, "criteria": [[c, CRITERION_LABELS[c]] for c in CRITERIA]}
    return {"error": None, "summary": summary.as_dict() if summary else None, "panel": table_json(panel),
            "rows": len(rows)}
