"""A realistic run folder of any size, written without running generation: the benchmark-scale fixture.

`build_run(folder, n_records)` writes what `workbench run` leaves behind for a suite of many cases x
several models x two seeds:

- `suite.json`: the suite snapshot (`workbench.suite.save_snapshot`), so `runset.current_records` keeps
  every record, and a `workbench run` over the same suite finds the jobs done;
- `results.jsonl`: one record per job, built by the Runner's own `_base_record` (job and clip ids, inputs
  with their hashes, versions, hardware) and completed as `Runner.run_job` completes it (clip block,
  scores, backends, score errors, metric versions, timings, series, worst frames, warnings);
- `clips/`: a handful of small real mp4s (made once per machine by the model-free baselines, then
  hard-linked into each folder), which all records point at: a still, a moving and a talking clip;
- `series/<job id>.json`: the per-frame curves of each scored job.

The mix: about 4% failed jobs (with the error text the Runner records), still clips (the `static`
models: no motion, dynamic_degree 0), faces only on the portrait cases (identity scores elsewhere are
null with the metric's reason), a spread of scores with real model differences, prompts on every case.
10,000 records build in a few seconds.

Tests import it from this folder::

    sys.path.insert(0, str(REPO / "benchmarks"))
    from scale_fixture import build_run
"""
from __future__ import annotations

import random
import json
import math
import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
CLIP_CACHE_VERSION = "1"

# (label, registered model, params, character): character sets the model's scores (see _scores)
MODELS: list[tuple[str, str, dict[str, Any], dict[str, float]]] = [
    ("static", "static", {"num_frames": 16, "width": 64, "height": 64},
     {"still": 1, "quality": 0.0, "fail": 0.01}),
    ("kenburns", "kenburns", {"num_frames": 16, "width": 64, "height": 64},
     {"still": 0, "quality": 0.0, "motion": 0.5, "fail": 0.02}),
    ("kenburns-zoom", "kenburns", {"num_frames": 16, "width": 64, "height": 64, "zoom": 1.3},
     {"still": 0, "quality": -0.02, "motion": 0.9, "fail": 0.04}),
    ("kenburns-gentle", "kenburns", {"num_frames": 16, "width": 64, "height": 64, "zoom": 1.05, "pan": 0.3},
     {"still": 0, "quality": 0.01, "motion": 0.2, "fail": 0.03}),
    ("kenburns-pan", "kenburns", {"num_frames": 16, "width": 64, "height": 64, "pan": 1.0},
     {"still": 0, "quality": -0.01, "motion": 0.7, "fail": 0.06}),
    ("static-12fps", "static", {"num_frames": 16, "width": 64, "height": 64, "fps": 12},
     {"still": 1, "quality": -0.005, "fail": 0.02}),
    ("kenburns-fast", "kenburns", {"num_frames": 16, "width": 64, "height": 64, "zoom": 1.5, "pan": 1.0},
     {"still": 0, "quality": -0.05, "motion": 1.2, "fail": 0.08}),
    ("kenburns-wide", "kenburns", {"num_frames": 16, "width": 96, "height": 64},
     {"still": 0, "quality": 0.005, "motion": 0.4, "fail": 0.03}),
]
METRICS = ["temporal_flicker", "motion_smoothness", "dynamic_degree", "identity"]
PROMPTS = ["an astronaut says hello to the camera", "an astronaut counts to four", "a slow turntable shot of a cup of coffee",
           "a calm landscape, gentle camera drift", "the camera pushes in slowly", "wind moves through the scene",
           "a portrait, subtle breathing and blinking", "a product shot with soft studio light"]
# the sample inputs: (image, audio or None, whether the image shows a face)
INPUTS = [("images/portrait.png", "audio/hello.wav", True), ("images/product.png", None, False),
          ("images/landscape.png", None, False), ("images/portrait.png", "audio/counting.wav", True),
          ("images/portrait.png", None, True)]
BACKENDS = {"temporal_flicker": "pixel-mae", "motion_smoothness": "opencv-dis-interp", "dynamic_degree": "opencv-dis",
            "flow_magnitude": "opencv-dis"}
ERRORS = [("GenerationError", "{image}: no face found; pass a frontal portrait"),
          ("MediaError", "{image}: cannot decode the image (truncated file?); pass a PNG or JPEG"),
          ("RuntimeError", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")]


def _clip_sources() -> dict[str, Path]:
    """The handful of real clips every fixture folder links to, made once per machine (cached in the temp
    folder): {"still-<image>", "moving-<image>", "talking"}: small H.264 mp4s from the baselines."""
    cache = Path(tempfile.gettempdir()) / f"workbench-scale-clips-{CLIP_CACHE_VERSION}"
    names = {f"{kind}-{Path(img).stem}": (kind, img) for kind in ("still", "moving")
             for img in sorted({i for i, _, _ in INPUTS})}
    names["talking"] = ("talking", "images/portrait.png")
    out = {name: cache / f"{name}.mp4" for name in names}
    if all(p.is_file() and p.stat().st_size > 0 for p in out.values()):
        return out
    from workbench.media import load_audio, load_image
    from workbench.models.base import GenerationRequest, get_generator

    cache.mkdir(parents=True, exist_ok=True)
    for name, (kind, img) in names.items():
        if out[name].is_file():
            continue
        audio = load_audio(DATA / "audio/hello.wav") if kind == "talking" else None
        model = "static" if kind == "still" else "kenburns"
        gen = get_generator(model)(num_frames=16, width=64, height=64)
        clip = gen.generate(GenerationRequest(image=load_image(DATA / img), audio=audio, seed=1))
        tmp = cache / f".{name}.{os.getpid()}.mp4"
        clip.save(tmp)
        os.replace(tmp, out[name])
    return out


def _clip_info(path: Path) -> dict[str, Any]:
    from workbench.media import Clip

    c = Clip.open(path, load_audio_track=False)
    w, h = c.size
    return {"frames": c.num_frames, "fps": c.fps, "width": w, "height": h, "seconds": round(c.duration, 3),
            "audio": bool(c._info.has_audio) if c._info else False}


def _link(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def suite_spec(n_cases: int, models: int, seeds: int) -> dict[str, Any]:
    """The suite (as a mapping) of a fixture folder: `n_cases` cases over the sample inputs, each with a
    prompt; the first `models` entries of MODELS; seeds 0..seeds-1."""
    if not 1 <= models <= len(MODELS):
        raise ValueError(f"models must be 1..{len(MODELS)}, got {models}")
    cases = []
    for i in range(n_cases):
        image, audio, _ = INPUTS[i % len(INPUTS)]
        case = {"id": f"case-{i:05d}", "image": str(DATA / image), "prompt": f"{PROMPTS[i % len(PROMPTS)]} (take {i})"}
        if audio:
            case["audio"] = str(DATA / audio)
        cases.append(case)
    return {"name": "scale", "description": "benchmark-scale fixture (benchmarks/scale_fixture.py)", "cases": cases,
            "models": [{"name": name, "label": label, "params": params} for label, name, params, _ in MODELS[:models]],
            "seeds": list(range(seeds)), "metrics": list(METRICS), "tracking": {"wandb": False}}


def build_run(folder: str | Path, n_records: int, *, models: int = 4, seeds: int = 2, seed: int = 0) -> Path:
    """Write a run folder of `n_records` records (see the module doc) into `folder` (created; an existing
    results.jsonl there is replaced). Returns the folder. Same arguments, same records (ids, scores)."""
    from workbench.experiment import Runner
    from workbench.suite import Suite, save_snapshot

    folder = Path(folder).resolve()
    per_case = models * seeds
    spec = suite_spec(max(1, math.ceil(n_records / per_case)), models, seeds)
    suite = Suite.model_validate(spec)
    suite.base_dir = REPO
    runner = Runner(suite, out_dir=folder)
    jobs = runner.jobs[:n_records]
    for sub in ("clips", "claims", "series"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    save_snapshot(suite, folder)

    sources = _clip_sources()
    clips: dict[str, str] = {}
    info: dict[str, dict[str, Any]] = {}
    for name, src in sources.items():
        dst = folder / "clips" / src.name
        _link(src, dst)
        clips[name] = f"clips/{src.name}"
        info[name] = _clip_info(dst)

    character = {label: c for label, _, _, c in MODELS}
    face = {str(DATA / img): has_face for img, _, has_face in INPUTS}
    t0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    lines = []
    for i, job in enumerate(jobs):
        rec = runner._base_record(job)
        ch = character[job.model.display]
        rng = random.Random(f"{seed}/{job.id}")  # same arguments, same folder
        image = str(job.image)
        started = t0 + timedelta(seconds=3 * i)
        rec["pid"] = 4242
        rec["started_at"] = started.isoformat(timespec="seconds")
        warnings: list[str] = []
        if rng.random() < ch["fail"]:
            etype, msg = ERRORS[int(rng.random() * len(ERRORS))]
            rec.update(status="error", error=msg.format(image=image), error_type=etype)
            timings = {"load_inputs": round(0.004 + 0.01 * rng.random(), 4)}
            timings["total"] = round(timings["load_inputs"] + 0.002, 4)
        else:
            kind = "still" if ch["still"] else "moving"
            source = "talking" if job.audio is not None and not ch["still"] else f"{kind}-{Path(image).stem}"
            rec["reused_clip"] = False
            rec["video"] = clips[source]
            rec["clip"] = dict(info[source])
            scores, errors, series, worst = _scores(rng, ch, face[image], rec["clip"]["frames"])
            names = [s for s in runner.wanted]
            rec["scores"] = {s: scores.get(s) for s in names}
            rec["backends"] = {s: BACKENDS.get(s, "dlib-resnet128") for s in names}
            rec["score_errors"] = errors
            rec["metrics_requested"] = list(runner.wanted)
            rec["metric_versions"] = {s: runner.versions[s] for s in names}
            rec["metric_seconds"] = {"temporal_flicker": round(0.02 + 0.01 * rng.random(), 4),
                                     "motion_smoothness": round(0.04 + 0.02 * rng.random(), 4),
                                     "dynamic_degree": round(0.04 + 0.02 * rng.random(), 4),
                                     "identity": round(0.3 + 0.8 * rng.random(), 4)}
            (folder / "series" / f"{job.id}.json").write_text(json.dumps(series))
            rec["series"] = f"series/{job.id}.json"
            rec["worst_frame"] = worst
            rec["status"] = "ok"
            gen = round(20 + 60 * rng.random() + 30 * ch.get("motion", 0), 4)
            timings = {"load_inputs": round(0.004 + 0.03 * rng.random(), 4), "generate": gen,
                       "save": round(0.05 + 0.05 * rng.random(), 4),
                       "evaluate": round(sum(rec["metric_seconds"].values()) + 0.01, 4)}
            timings["total"] = round(sum(timings.values()), 4)
            if job.audio is not None and ch["still"]:
                warnings.append("static: the clip is as long as its audio; the still image does not move with it")
        rec["warnings"] = warnings
        rec["timings"] = timings
        rec["finished_at"] = (started + timedelta(seconds=timings["total"])).isoformat(timespec="seconds")
        lines.append(json.dumps(rec))
    tmp = folder / ".results.jsonl.fixture"
    tmp.write_text("\n".join(lines) + ("\n" if lines else ""))
    os.replace(tmp, folder / "results.jsonl")
    return folder


def _scores(rng: random.Random, ch: dict[str, float], has_face: bool, frames: int):
    """(scores, score errors, per-frame series, worst frames) of one ok job with character `ch`."""
    still = bool(ch["still"])
    q = ch.get("quality", 0.0)
    motion = ch.get("motion", 0.0)
    if still:
        flicker = 1.0 - abs(0.0004 * rng.gauss(0, 1))
        smooth = 1.0 - abs(0.0004 * rng.gauss(0, 1))
        flow = abs(0.002 * rng.gauss(0, 1))
        dynamic = 0.0
    else:
        flicker = min(1.0, max(0.0, 0.975 + q - 0.01 * motion + 0.012 * rng.gauss(0, 1)))
        smooth = min(1.0, max(0.0, 0.985 + q - 0.006 * motion + 0.008 * rng.gauss(0, 1)))
        flow = max(0.0, 0.15 + 0.5 * motion + 0.12 * rng.gauss(0, 1))
        dynamic = 1.0 if rng.random() < min(0.95, 0.2 + 0.6 * motion) else 0.0
    scores: dict[str, float | None] = {"temporal_flicker": flicker, "motion_smoothness": smooth,
                                       "dynamic_degree": dynamic, "flow_magnitude": flow}
    errors: dict[str, str] = {}
    if has_face:
        sim = min(1.0, max(-1.0, 0.82 + 3 * q - (0.0 if still else 0.05 * motion) + 0.06 * rng.gauss(0, 1)))
        scores.update(identity_similarity=sim, identity_min=max(-1.0, sim - abs(0.08 * rng.gauss(0, 1))),
                      identity_pass_rate=1.0 if sim > 0.7 else round(rng.random(), 2), face_detect_rate=1.0)
    else:
        why = "identity: no face found in the reference image (480x320); pass a portrait with a clearly visible, " \
              "roughly frontal face"
        scores.update(identity_similarity=None, identity_min=None, identity_pass_rate=None, face_detect_rate=None)
        errors = {"identity_similarity": why, "identity_min": why}
    n = max(2, frames) - 1  # one value per frame pair
    noise = np.random.default_rng(rng.getrandbits(64)).standard_normal((3, n))
    curves = {"temporal_flicker": np.minimum(1.0, flicker + 0.004 * noise[0]),
              "motion_smoothness": np.minimum(1.0, smooth + 0.003 * noise[1]),
              "flow_magnitude": np.maximum(0.0, flow + 0.05 * noise[2])}
    series = {k: v.round(5).tolist() for k, v in curves.items()}
    worst = {"temporal_flicker": int(curves["temporal_flicker"].argmin()) + 1,
             "motion_smoothness": int(curves["motion_smoothness"].argmin()) + 1,
             "flow_magnitude": int(curves["flow_magnitude"].argmax()) + 1}
    return scores, errors, series, worst


if __name__ == "__main__":
    import argparse
    import time

    ap = argparse.ArgumentParser(description="write a benchmark-scale run folder (no generation)")
    ap.add_argument("folder")
    ap.add_argument("n", type=int)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=2)
    a = ap.parse_args()
    t = time.perf_counter()
    build_run(a.folder, a.n, models=a.models, seeds=a.seeds)
    print(f"{a.n} records in {a.folder} ({time.perf_counter() - t:.1f} s)")
