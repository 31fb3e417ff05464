"""Lip-sync validity on the whole dev set, measured the way a held-out set would be.

    .venv/bin/python benchmarks/bench_lipsync.py [--json OUT.json] [--clips N] [--refresh]

The dev set: every clip of ../shared/media/talking, talking_wild and talking_hard (crops, wild footage,
variable frame rate, two speakers, crosstalk, hands before the mouth, small faces). Each clip is
streamed once (every face tracked, mouth signals, frame timestamps; cached under
runs/lipsync_cache/, keyed by the tracker's version) and then scored offline with
`workbench.metrics.lipsync.analyse_sync` for
- its own audio (offset, interval, agreement, confidence),
- its audio delayed by -8, -5, -3, +3, +5, +8 frames (the offset must move by -k +-1 frame),
- every other clip's audio, looped to its length (foreign: no offset should be given, and the own
  audio's confidence should beat it).

Held-out figures: the two fitted numbers of the backend (`MIN_NULL_Z`, the abstain rule, and
`SYNC_THRESHOLD`, own vs foreign) are fitted on the other clips and applied to the held-out clip
(leave-one-clip-out); the in-sample figures (fitted on all clips) are printed beside them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.media import Clip, clip_frame_times  # noqa: E402
from workbench.metrics import lipsync as L  # noqa: E402
from workbench.metrics.identity import roc_auc  # noqa: E402
from workbench.metrics.lipsync_speakers import FaceTracks  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CACHE = ROOT / "runs" / "lipsync_cache"
DELAYS = (-8, -5, -3, 3, 5, 8)
FRONTAL = ("00086", "00373", "681100216", "741400104", "741400163")  # in-sync crops: |offset| <= 2 belongs here
SINGLE_FRONTAL = FRONTAL + ("real3dportrait_May_5s", "mimictalk_German_20s", "dfrf_french_first20s",
                            "dfrf_cnn2_25fps_first20s", "tpsmm_driving", "eamm_M030_sad_3_001",
                            "cliptranslator_betterhelpgirl-english", "sadtalkervls_job_interview_vfr")
TWO_SPEAKERS = ("vovit_interview_splitscreen", "vovit_comedy_two_mics")
CROPS = ("00002", "00086", "00373", "517600055", "681100216", "741400104", "741400163")  # talking/: in sync
CONTEXT = 2  # audio frames either side of the lag fed to the map
FALSE_OFFSET_TARGET = 0.05  # the abstain rule is fitted to give an offset to at most this share of foreign pairs


def dev_clips() -> list[Path]:
    return [p for d in ("talking", "talking_wild", "talking_hard") for p in sorted((MEDIA / d).glob("*.mp4"))]


def _tracker_key() -> str:
    import inspect

    from workbench.metrics import lipsync_speakers

    return hashlib.sha256(inspect.getsource(lipsync_speakers).encode()).hexdigest()[:10]


def mouth_signals(path: Path) -> dict:
    """Every face's mouth signals (K, T, 2), frame times (s from the audio's start), 16 kHz audio and
    fps of one clip, streamed at full resolution through `FaceTracks` (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"{path.stem}-{_tracker_key()}.npz"
    if cached.exists():
        d = np.load(cached)
        return {"mouth": d["mouth"], "times": d["times"], "audio": d["audio"], "fps": float(d["fps"])}
    clip = Clip.open(path)
    tracks = FaceTracks(clip.fps)
    n = 0
    for i, frame in enumerate(clip.iter_frames()):
        tracks.update(frame, i)
        n += 1
    mouth, _ = tracks.signals()
    times = clip_frame_times(clip)[:n]
    if len(times) < n:
        times = np.concatenate([times, times[-1] + np.arange(1, n - len(times) + 1) / clip.fps])
    audio = clip.audio.resample(L.SAMPLE_RATE).samples
    np.savez_compressed(cached, mouth=mouth, times=times, audio=audio, fps=clip.fps)
    return {"mouth": mouth, "times": times, "audio": audio, "fps": clip.fps}


def delayed(samples: np.ndarray, seconds: float) -> np.ndarray:
    """The audio `seconds` later (negative: earlier), same length, zero padded."""
    k = int(round(seconds * L.SAMPLE_RATE))
    out = np.zeros_like(samples)
    if k >= 0:
        out[k:] = samples[: len(samples) - k]
    else:
        out[: len(samples) + k] = samples[-k:]
    return out


def raw(r: dict) -> dict:
    """What the LOO step needs of one analysis (the offset before the abstain rule)."""
    cand = None
    if r["curve"] is not None:
        j = int(np.argmax(r["curve"]))
        edge = j in (0, len(r["curve"]) - 1)
        cand = None if edge else -float(r["lags"][j])
    return {"cand": cand, "z": r["null_z"], "conf": r["confidence"], "agreement": r["agreement"],
            "interval": r["interval"], "period": r["period"], "turns": r["turns"], "faces": r["faces"],
            "why": r["reasons"].get("sync_confidence")}


def fit_model(data: dict[str, dict], clips: list[str]) -> dict:
    """The audio->mouth map fitted on `clips` only, in two passes: first on the talking/ crops (in sync
    by provenance) at lag 0; then on every single-face clip at its own best lag under the first map
    (the wild and hard clips' true offsets are unknown: each is aligned by its own audio, never to 0)."""
    def rows_at(n: str, lag: int):
        d = data[n]
        return L.training_rows(d["mouth"][0], d["audio"], d["fps"], d["times"], lag=lag, context=CONTEXT)

    single = [n for n in clips if len(data[n]["mouth"]) == 1]
    first = [r for r in (rows_at(n, 0) for n in single if n in CROPS) if r is not None]
    m1 = L.fit_audio_model(first, CONTEXT) if first else None
    rows = []
    for n in single:
        d = data[n]
        r = L.analyse_sync(d["mouth"], d["audio"], d["fps"], d["times"], null_shifts=0, model=m1, min_agreement=0)
        if r["curve"] is None:
            continue
        j = int(np.argmax(r["curve"]))
        if j in (0, len(r["curve"]) - 1):
            continue
        got = rows_at(n, int(r["lags"][j]))
        if got is not None:
            rows.append(got)
    return L.fit_audio_model(rows, CONTEXT)


def score_clip(data: dict[str, dict], n: str, model: dict | None) -> dict:
    d = data[n]
    args = dict(fps=d["fps"], times=d["times"], min_agreement=0.0, min_null_z=-np.inf, model=model)
    r0 = L.analyse_sync(d["mouth"], d["audio"], **args)
    period = r0["period"]
    rd = {k: raw(L.analyse_sync(d["mouth"], delayed(d["audio"], k * period), **args)) for k in DELAYS}
    rf = {o: raw(L.analyse_sync(d["mouth"], np.resize(data[o]["audio"], len(d["audio"])), **args))
          for o in data if o != n}
    return {"own": raw(r0), "delays": rd, "foreign": rf}


_DATA: dict[str, dict] = {}  # the clips' signals, shared with the worker processes (fork)
_EVERYONE: dict = {}  # the map fitted on every clip (in-sample jobs)


def _score_one(job: tuple[str, bool]) -> tuple[str, dict]:
    n, held_out = job
    model = fit_model(_DATA, [m for m in _DATA if m != n]) if held_out else _EVERYONE
    out = score_clip(_DATA, n, model)
    print(f"  scored {n} ({'held out' if held_out else 'in-sample'})", file=sys.stderr)
    return n, out


def score_all(data: dict[str, dict], held_out: bool, workers: int = 0) -> tuple[dict[str, dict], dict]:
    """Every clip scored with the map fitted on the other clips (held_out) or on all of them, on
    `workers` processes (default: every core)."""
    import multiprocessing as mp
    import os

    _DATA.clear()
    _DATA.update(data)
    _EVERYONE.clear()
    _EVERYONE.update(fit_model(data, list(data)))
    jobs = [(n, held_out) for n in data]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and "fork" in mp.get_all_start_methods():
        with mp.get_context("fork").Pool(workers) as pool:
            out = dict(pool.map(_score_one, jobs, chunksize=1))  # in the order of the jobs
    else:
        out = dict(map(_score_one, jobs))
    return out, dict(_EVERYONE)


def given(r: dict, z_min: float) -> float | None:
    """The offset after the abstain rule."""
    return r["cand"] if r["cand"] is not None and r["z"] is not None and r["z"] >= z_min else None


def fit_z(clips: list[str], S: dict) -> float:
    """The smallest null-z level at which at most FALSE_OFFSET_TARGET of the foreign pairs of `clips` get an offset."""
    zs = np.array([r["z"] if r["z"] is not None and r["cand"] is not None else -np.inf
                   for n in clips for r in S[n]["foreign"].values()])
    zs = np.sort(zs[np.isfinite(zs)])[::-1]
    allowed = int(np.floor(FALSE_OFFSET_TARGET * sum(len(S[n]["foreign"]) for n in clips)))
    return float(zs[allowed] + 1e-6) if allowed < len(zs) else float(-np.inf)


def best_threshold(own: np.ndarray, foreign: np.ndarray) -> float:
    cands = np.unique(np.concatenate([own, foreign]))
    acc = [((own >= t).mean() + (foreign < t).mean()) / 2 for t in cands]
    i = int(np.argmax(acc))
    lower = cands[i - 1] if i > 0 else cands[i] - 1e-3
    return float((cands[i] + lower) / 2)


def conf_of(r: dict) -> float:
    return r["z"] if r["z"] is not None else -np.inf


def clip_figures(n: str, S: dict, z_min: float, thr: float) -> dict:
    s = S[n]
    off0 = given(s["own"], z_min)
    rec = {}
    for k, r in s["delays"].items():
        ok = given(r, z_min)
        rec[k] = off0 is not None and ok is not None and abs((ok - off0) + k) <= 1
    fz = [conf_of(r) for r in s["foreign"].values()]
    own = conf_of(s["own"])
    return {"clip": n, "offset": off0, "offset_ms": None if off0 is None else round(off0 * s["own"]["period"] * 1000),
            "interval": s["own"]["interval"], "z": s["own"]["z"], "agreement": s["own"]["agreement"],
            "delays": rec, "recovered": sum(rec.values()), "own_beats_all": bool(own > max(fz)),
            "own_beats_share": float(np.mean([own > f for f in fz])), "abstain": off0 is None,
            "false_offsets": sum(given(r, z_min) is not None for r in s["foreign"].values()),
            "foreign": len(fz), "own_pass": own >= thr, "foreign_reject": float(np.mean([f < thr for f in fz])),
            "z_min": z_min, "threshold": thr, "turns": s["own"]["turns"]}


def totals(rows: list[dict]) -> dict:
    def share(sel, key):
        sel = [r for r in rows if sel(r)]
        return f"{sum(r[key] for r in sel)}/{len(sel)}" if sel else "-"

    rec = sum(r["recovered"] for r in rows)
    two = [r for r in rows if r["clip"] in TWO_SPEAKERS]
    single = [r for r in rows if r["clip"] in SINGLE_FRONTAL]
    fo = sum(r["false_offsets"] for r in rows)
    nf = sum(r["foreign"] for r in rows)
    return {
        "delay_recovered": f"{rec}/{len(DELAYS) * len(rows)} ({rec / max(1, len(DELAYS) * len(rows)):.0%})",
        "own_beats_every_foreign": share(lambda r: True, "own_beats_all"),
        "own_beats_foreign_pairs": f"{np.mean([r['own_beats_share'] for r in rows]):.1%}",
        "abstain_own_all": share(lambda r: True, "abstain"),
        "abstain_own_single_frontal": f"{sum(r['abstain'] for r in single)}/{len(single)}",
        "delay_recovered_two_speakers": f"{sum(r['recovered'] for r in two)}/{len(DELAYS) * len(two)}",
        "false_offset_rate_foreign": f"{fo}/{nf} ({fo / max(1, nf):.1%})",
        "frontal_in_sync": f"{sum(1 for r in rows if r['clip'] in FRONTAL and r['offset'] is not None and abs(r['offset']) <= 2)}"
                           f"/{sum(1 for r in rows if r['clip'] in FRONTAL)}",
        "threshold_accuracy": f"{np.mean([(r['own_pass'] + r['foreign_reject'] * r['foreign']) / (1 + r['foreign']) for r in rows]):.1%}",
    }


def write_model(model: dict) -> None:
    path = ROOT / "workbench" / "metrics" / "lipsync_model.py"
    W = np.round(np.asarray(model["W"]), 5).tolist()
    path.write_text(
        '"""The offline lip-sync backend\'s audio->mouth map: a ridge regression from the speech-band log energies\n'
        f'of {2 * model["context"] + 1} audio frames around each lag to the two mouth signals (smooth, then whitened over\n'
        f'{model["whiten_seconds"]:g} s: four columns), fitted on {model["clips"]} clips of the\n'
        'dev set by `benchmarks/bench_lipsync.py --fit` (whose held-out figures refit it without the clip they judge).\n'
        'Generated: edit the benchmark, not this file."""\n\n'
        f'MODEL = {{"context": {model["context"]}, "bands": {list(model["bands"])}, "alpha": {model["alpha"]},\n'
        f'         "whiten_seconds": {model["whiten_seconds"]!r},\n'
        f'         "clips": {model["clips"]},\n         "W": {W!r}}}\n')
    print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--clips", type=int, default=0, help="only the first N clips (quick look)")
    ap.add_argument("--refresh", action="store_true", help="rescore (the mouth signals stay cached)")
    ap.add_argument("--fit", action="store_true", help="write the map fitted on every clip to "
                    "workbench/metrics/lipsync_model.py (the metric's default)")
    args = ap.parse_args()
    paths = dev_clips()[: args.clips or None]
    if not paths:
        sys.exit(f"error: no clips under {MEDIA}/talking, talking_wild or talking_hard; the benchmark needs ../shared/media")
    t0 = time.perf_counter()
    data = {p.stem: mouth_signals(p) for p in paths}
    t_stream = time.perf_counter() - t0
    import inspect

    key = hashlib.sha256((inspect.getsource(L) + _tracker_key() + ",".join(data)).encode()).hexdigest()[:10]
    scored = CACHE / f"scores-{key}.pkl"
    t0 = time.perf_counter()
    if scored.exists() and not args.refresh:
        S_held, S_in, model = pickle.loads(scored.read_bytes())
    else:
        S_held, _ = score_all(data, held_out=True)
        S_in, model = score_all(data, held_out=False)
        scored.write_bytes(pickle.dumps((S_held, S_in, model)))
    if args.fit:
        write_model(model)
    t_score = time.perf_counter() - t0
    names = list(S_held)
    # in-sample: the map and both fitted numbers from every clip
    z_all = fit_z(names, S_in)
    own_all = np.array([conf_of(S_in[n]["own"]) for n in names])
    for_all = np.array([conf_of(r) for n in names for r in S_in[n]["foreign"].values()])
    thr_all = best_threshold(own_all, for_all)
    insample = [clip_figures(n, S_in, z_all, thr_all) for n in names]
    # held out: the map and both numbers fitted on the other clips
    held = []
    S = S_held
    for n in names:
        rest = [m for m in names if m != n]
        o = np.array([conf_of(S[m]["own"]) for m in rest])
        f = np.array([conf_of(r) for m in rest for r in S[m]["foreign"].values()])
        held.append(clip_figures(n, S, fit_z(rest, S), best_threshold(o, f)))
    own_held = np.array([conf_of(S[n]["own"]) for n in names])
    for_held = np.array([conf_of(r) for n in names for r in S[n]["foreign"].values()])
    print("| clip | fps | faces | offset (frames / ms) | interval | null z | delays -8 -5 -3 +3 +5 +8 | own > every foreign | false offsets | speaking face per turn |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in held:
        d = data[r["clip"]]
        marks = " ".join("y" if r["delays"][k] else "n" for k in DELAYS)
        off = "abstain" if r["offset"] is None else f"{r['offset']:+.0f} / {r['offset_ms']:+d} ms"
        iv = "-" if r["interval"] is None else f"[{r['interval'][0]:+.0f}, {r['interval'][1]:+.0f}]"
        z = "-" if r["z"] is None else f"{r['z']:.1f}"
        turns = "; ".join(f"{t['face']}@{t['start']:.0f}-{t['end']:.0f}s" for t in r["turns"]) if len(
            {t["face"] for t in r["turns"]}) > 1 else "-"
        print(f"| {r['clip']} | {1 / S[r['clip']]['own']['period']:.3g} | {len(d['mouth'])} | {off} | {iv} | {z} | {marks} | "
              f"{'yes' if r['own_beats_all'] else 'no'} | {r['false_offsets']}/{r['foreign']} | {turns} |")
    t_held, t_in = totals(held), totals(insample)
    print(f"\n| figure (dev set, {len(names)} clips) | held out (leave-one-clip-out) | in-sample |")
    print("|---|---|---|")
    for k in t_held:
        print(f"| {k} | {t_held[k]} | {t_in[k]} |")
    print(f"\nabstain rule: offset given when the null z >= {z_all:.2f} (in-sample; held-out levels "
          f"{min(r['z_min'] for r in held):.2f}..{max(r['z_min'] for r in held):.2f}), fitted to give an offset to at most "
          f"{FALSE_OFFSET_TARGET:.0%} of foreign pairs; own-vs-foreign threshold {thr_all:.2f} "
          f"(held-out {min(r['threshold'] for r in held):.2f}..{max(r['threshold'] for r in held):.2f}); "
          f"own-vs-foreign ROC AUC {roc_auc(own_held, for_held):.3f} held out, {roc_auc(own_all, for_all):.3f} in-sample")
    shipped = L.SYNC_THRESHOLD  # the threshold the metric states (the low end of the flat accuracy range)
    print(f"shipped threshold {shipped:g} (held out): own audio above it on {int((own_held >= shipped).sum())}/"
          f"{len(own_held)} clips, foreign audio below it on {np.mean(for_held < shipped):.1%} of pairs")
    print(f"seconds: stream {t_stream:.0f}, score {t_score:.0f}")
    if args.json:
        args.json.write_text(json.dumps({"held_out": t_held, "in_sample": t_in, "rows": held,
                                         "z_min": z_all, "threshold": thr_all}, indent=2, default=str))


if __name__ == "__main__":
    main()
