"""Lip-sync validity on the whole dev set: the 15 real clips of ../shared/media (talking/ + talking_wild/).

    .venv/bin/python benchmarks/bench_lipsync.py [--json OUT.json] [--clips N]

Each clip is streamed once through the `lipsync` metric's own frame path (face tracking, mouth
signals at analysis size); the offline scores are then computed with `score_sync` for
- the clip's own audio (offset, confidence),
- its audio delayed by 5 frames (the offset must move by -5 +-1),
- every other clip's audio, looped to the clip's length (foreign: confidence must stay low).
Reported: a per-clip table, own-vs-foreign ROC AUC over all clip pairs, the threshold that best
separates them (balanced accuracy) and its leave-one-clip-out accuracy (the threshold picked on the
other 14 clips, judged on the held-out clip's own and foreign pairs), and edge-of-range offsets
(must be none: they are nulls with a reason).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.faces import FaceTracker  # noqa: E402
from workbench.media import Clip  # noqa: E402
from workbench.metrics.base import ANALYSIS_MAX_SIDE, EvalInputs, FrameStep  # noqa: E402
from workbench.metrics.identity import roc_auc  # noqa: E402
from workbench.metrics.lipsync import SAMPLE_RATE, SYNC_THRESHOLD, LipSync, score_sync  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
FRONTAL = ("00086", "00373", "681100216", "741400104", "741400163")  # the in-sync test belongs to these crops


def dev_clips() -> list[Path]:
    return sorted((MEDIA / "talking").glob("*.mp4")) + sorted((MEDIA / "talking_wild").glob("*.mp4"))


def mouth_signals(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(mouth signals (T, 2), 16 kHz audio, fps) through the metric's streaming path."""
    clip = Clip.open(path)
    m = LipSync(backend="landmarks")
    m.start(EvalInputs(video=clip))
    tracker, prev = FaceTracker(), None
    width = clip.size[0]
    for i, frame in enumerate(clip.iter_frames(max_side=ANALYSIS_MAX_SIDE)):
        step = FrameStep(i, frame, prev, clip.fps, tracker=tracker, scale=frame.shape[1] / float(width))
        m.update(step)
        if prev is not None:
            prev.release_prev()
        prev = step
    return np.asarray(m._mouth, np.float64), m._samples, clip.fps


def delayed(samples: np.ndarray, frames: int, fps: float) -> np.ndarray:
    k = int(round(frames / fps * SAMPLE_RATE))
    return np.concatenate([np.zeros(k, np.float32), samples[: len(samples) - k]])


def syncnet_side_by_side(paths: list[Path]) -> dict[str, str]:
    """{clip: "offset / LSE-C"} from the syncnet_v2 backend (25 fps clips), or {} without its weights."""
    from workbench.metrics import evaluate
    from workbench.metrics.syncnet import available_weights

    if available_weights() is None:
        return {}
    out = {}
    for p in paths:
        r = evaluate(p, metrics=["lipsync"], metric_options={"lipsync": {"backend": "syncnet"}})
        off, c = r.scores.get("sync_offset"), r.scores.get("lse_c")
        out[p.stem] = "null" if c is None else f"{off:+.0f} / {c:.2f}"
        print(f"  syncnet_v2 {p.stem}: {out[p.stem]} {r.errors.get('lse_c', '')}", file=sys.stderr)
    return out


def best_threshold(own: np.ndarray, foreign: np.ndarray) -> float:
    cands = np.unique(np.concatenate([own, foreign]))
    acc = [((own >= t).mean() + (foreign < t).mean()) / 2 for t in cands]
    i = int(np.argmax(acc))
    lower = cands[i - 1] if i > 0 else cands[i] - 1e-3
    return float((cands[i] + lower) / 2)  # midway to the next lower score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--clips", type=int, default=0, help="only the first N clips (quick look)")
    args = ap.parse_args()
    paths = dev_clips()[: args.clips or None]
    if not paths:
        sys.exit(f"error: no clips under {MEDIA}/talking or talking_wild; the benchmark needs ../shared/media")
    data = {}
    t0 = time.perf_counter()
    for p in paths:
        data[p.stem] = mouth_signals(p)
        print(f"  streamed {p.stem} ({len(data[p.stem][0])} frames)", file=sys.stderr)
    t_stream = time.perf_counter() - t0
    names = list(data)
    rows, own, foreign, by_clip = [], {}, {}, {}
    t0 = time.perf_counter()
    for n in names:
        mouth, audio, fps = data[n]
        r0 = score_sync(mouth, audio, fps)
        r5 = score_sync(mouth, delayed(audio, 5, fps), fps)
        own[n] = r0["confidence"]
        foreign[n] = []
        for o in names:
            if o != n:
                rf = score_sync(mouth, np.resize(data[o][1], len(audio)), fps)
                foreign[n].append(rf["confidence"] if rf["confidence"] is not None else 0.0)
                by_clip.setdefault(n, []).append(rf["offset"])
        moved = None if r0["offset"] is None or r5["offset"] is None else r5["offset"] - r0["offset"]
        rows.append({"clip": n, "fps": round(fps, 2), "frames": len(mouth), "offset": r0["offset"],
                     "confidence": r0["confidence"], "offset_delay5": r5["offset"], "confidence_delay5": r5["confidence"],
                     "moved": moved, "delay_ok": moved is not None and abs(moved + 5) <= 1,
                     "why_null": r0["reasons"].get("sync_offset") or r5["reasons"].get("sync_offset"),
                     "foreign_max": max(foreign[n], default=float("nan"))})
    t_score = time.perf_counter() - t0
    o = np.array([own[n] for n in names], float)
    f = np.concatenate([foreign[n] for n in names])
    auc = roc_auc(o, f)
    thr_all = best_threshold(o, f)
    loo_correct = loo_total = 0
    for n in names:  # threshold fitted without clip n, judged on clip n's own and foreign pairs
        oo = np.array([own[m] for m in names if m != n])
        ff = np.concatenate([foreign[m] for m in names if m != n])
        t = best_threshold(oo, ff)
        loo_correct += int(own[n] >= t) + int(np.sum(np.array(foreign[n]) < t))
        loo_total += 1 + len(foreign[n])
    fixed_own = float((o >= SYNC_THRESHOLD).mean())
    fixed_foreign = float((f < SYNC_THRESHOLD).mean())
    foreign_offsets = [x for n in names for x in by_clip.get(n, [])]
    summary = {
        "clips": len(names), "auc_own_vs_foreign": round(auc, 4), "pairs_foreign": int(f.size),
        "threshold_dev_best": round(thr_all, 3), "threshold_in_code": SYNC_THRESHOLD,
        "at_threshold_own_pass": round(fixed_own, 3), "at_threshold_foreign_reject": round(fixed_foreign, 3),
        "loo_threshold_accuracy": round(loo_correct / loo_total, 4),
        "frontal_in_sync": sum(1 for r in rows if r["clip"] in FRONTAL and r["offset"] is not None and abs(r["offset"]) <= 2),
        "frontal": sum(1 for r in rows if r["clip"] in FRONTAL),
        "delay5_recovered": sum(r["delay_ok"] for r in rows),
        "foreign_with_offset": sum(x is not None for x in foreign_offsets),
        "seconds_stream": round(t_stream, 1), "seconds_score": round(t_score, 1),
    }
    syncnet = syncnet_side_by_side(paths)  # the learned reference, when its weights are on this machine
    if syncnet:
        for r in rows:
            r["syncnet"] = syncnet.get(r["clip"])
    print("| clip | fps | frames | offset | confidence | offset, audio +5 frames | moved | foreign max conf |"
          + (" syncnet_v2 offset / LSE-C |" if syncnet else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if syncnet else ""))
    fmt = lambda v, d=0: "null" if v is None else (f"{v:+.0f}" if d == 0 else f"{v:.{d}f}")  # noqa: E731
    for r in rows:
        print(f"| {r['clip']} | {r['fps']:g} | {r['frames']} | {fmt(r['offset'])} | {fmt(r['confidence'], 3)} | "
              f"{fmt(r['offset_delay5'])} | {fmt(r['moved'])} | {r['foreign_max']:.3f} |"
              + (f" {r['syncnet']} |" if syncnet else ""))
    if not syncnet:
        print("\n(syncnet_v2 column left out: set WORKBENCH_SYNCNET_WEIGHTS to syncnet_v2.model to score both backends)")
    print()
    for k, v in summary.items():
        print(f"{k}: {v}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2, default=float))


if __name__ == "__main__":
    main()
