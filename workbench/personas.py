"""The report's Personas section, its data: the unswapped source clip beside the personas, and each swap's
verdict (`workbench.metrics.faceswap.swap_verdict`: "took", "did not take", "no swap").

The report builds the rows (one per source clip and model, a cell per persona); this module gives the
source's own cell (the footage every persona was swapped onto, shown first so the eye has the baseline),
flags each persona's clips with the verdict of its face-swap scores, and words the row's summary.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from workbench.metrics.faceswap import swap_verdict
from workbench.metrics.stats import score_value

MEDIA_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
TOOK, NOT_TAKEN, NO_SWAP = "took", "did not take", "no swap"
LABELS = {TOOK: "\u2713 swap took", NOT_TAKEN: "\u2717 swap did not take", NO_SWAP: "\u2717 no swap"}


def verdict_of(r: dict[str, Any]) -> tuple[str, str] | None:
    """(verdict, why) of one face-swap record's scores; None for a failed job or one without the
    face-swap identity scores (the metric was not asked for, or could not run: its reason is the score's)."""
    if r.get("status") != "ok":
        return None
    scores = {k: score_value(r, k) for k in ("identity_to_target", "identity_to_source", "identity_gain")}
    if scores["identity_gain"] is None:
        return None
    verdict, why = swap_verdict(scores, (r.get("backends") or {}).get("swap_took"))
    return None if verdict == "not scored" else (verdict, why)


def flag_cell(cell: dict[str, Any], records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Mark each panel of a persona cell with its record's verdict, and the cell with `flag` (the verdict
    when any of its clips did not take, else "") and `flag_why`. Returns the cell."""
    by_job = {str(r.get("job_id")): r for r in records}
    missed: list[str] = []
    for panel in cell.get("panels") or []:
        r = by_job.get(str(panel.get("job_id")))
        got = verdict_of(r) if r is not None else None
        if got is None:
            continue
        verdict, why = got
        panel["marks"] = [*(panel.get("marks") or []), (LABELS[verdict], why)]
        if verdict != TOOK:
            missed.append(f"{panel.get('variant')}: {verdict} ({why})")
            cell["flag"] = LABELS[NO_SWAP] if verdict == NO_SWAP and cell.get("flag") != LABELS[NOT_TAKEN] \
                else LABELS[NOT_TAKEN]
    cell.setdefault("flag", "")
    cell["flag_why"] = "; ".join(missed)
    return cell


def source_cell(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The cell of the footage these swaps started from (the records' `inputs.video`), shaped as the report's
    clip cells; None when the records name none. The file is shown only when it is a media file that
    exists and still hashes to what the records recorded (a record names it; nothing else is read)."""
    from workbench.hashing import file_hash

    first = next((r for r in records if ((r.get("inputs") or {}).get("video") or {}).get("path")), None)
    if first is None:
        return None
    src = first["inputs"]["video"]
    path = Path(str(src["path"]))
    name = path.name
    ok, why = False, ""
    if not path.suffix.lower() in MEDIA_SUFFIXES:
        why = f"{name} is not a video file"
    elif not path.is_file():
        why = f"{path} is not on this machine"
    elif src.get("sha256") and file_hash(path) != src["sha256"]:
        why = f"{path} changed since the run (its sha256 differs from the records')"
    else:
        ok = True
    panel = {"variant": "the unswapped source", "absent": False, "ok": True, "error": "",
             "video": str(path) if ok else None, "kind": "video", "exists": ok, "clip": _clip_text(path) if ok else "",
             "scores": [], "notes": [], "warnings": [], "audio": ok, "marks": [], "timing": "", "params": "{}",
             "job_id": None}
    if not ok:
        return {"model": "source", "color": "#888", "panels": [], "empty": True, "why_empty": why,
                "persona": f"source: {name}", "flag": "", "flag_why": "", "is_source": True}
    return {"model": "source", "color": "#888", "panels": [panel], "empty": False, "why_empty": "",
            "persona": f"source: {name}", "flag": "", "flag_why": "", "is_source": True}


def _clip_text(path: Path) -> str:
    try:
        from workbench.media import Clip

        clip = Clip.open(path, load_audio_track=False)
        w, h = clip.size
        return f"{w}\u00d7{h}, {clip.num_frames} frames, {clip.fps:g} fps"
    except Exception:  # the headers are a nicety: the clip itself still plays
        return ""


def row_summary(cases: list[str], records_of: dict[str, list[dict[str, Any]]]) -> str:
    """One line for a persona row: how many personas' swaps took, which did not (and why in brief), and
    their identity_gain; "" when no record has the face-swap scores."""
    took, missed, gains = [], [], []
    for case in cases:
        verdicts = [v for r in records_of.get(case, []) if (v := verdict_of(r)) is not None]
        gain = [g for r in records_of.get(case, []) if (g := score_value(r, "identity_gain")) is not None]
        if gain:
            gains.append(f"{case} {sum(gain) / len(gain):+.3f}")
        if not verdicts:
            continue
        bad = [v for v, _ in verdicts if v != TOOK]
        if bad:
            missed.append(f"{case} ({bad[0]}{'' if len(bad) == len(verdicts) else f' in {len(bad)} of {len(verdicts)} clips'})")
        else:
            took.append(case)
    judged = len(took) + len(missed)
    if not judged:
        return ""
    text = f"swap took for {len(took)} of {judged} persona{'s' if judged != 1 else ''}"
    if missed:
        text += "; not for " + ", ".join(missed)
    return text + (f" \u00b7 identity_gain {', '.join(gains)}" if gains else "")
