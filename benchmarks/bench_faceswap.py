"""Calibration of the face-swap verdict ("swap took") on real faces, and what the model-free floor's swaps read.

    .venv/bin/python benchmarks/bench_faceswap.py [--json OUT.json] [--frames 24] [--no-floor]

1. Faces: 24 frames sampled evenly through each single-face real clip of ../shared/media (talking/,
   talking_wild/ and the single-face talking_hard/ clips; analysis size, the largest face) and the face of
   each portrait in faces/, embedded with dlib-resnet128 (the offline identity backend).
2. Scenarios (`workbench.metrics.faceswap.swap_scenarios`): a source clip (person A), a target image
   (person B: a portrait or one frame of a clip) and a "swapped" clip that really shows someone: B from
   another recording (the swap took), A itself (no swap), A from another recording, or a third person.
   Same person across files: RDJ, LILY (two recordings each), STW1, STW2 (two portraits each); every
   other file is a person of its own (MANIFEST.md).
3. The rule's target line is fitted at a false-accept rate; leave-one-identity-out gives the held-out
   FAR and FRR (the line fitted without one person, judged on the scenarios with them), at several rates.
4. The floor (`faceswap-landmarks`, first 2 s at 256 px) swaps sources x personas; each swap is scored by
   the metric against its own persona and against another one, and its verdict printed.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.faces import DlibEmbedder, detect_faces, detect_faces_fast  # noqa: E402
from workbench.media import Clip, cap_side, load_image  # noqa: E402
from workbench.metrics.base import ANALYSIS_MAX_SIDE  # noqa: E402
from workbench.metrics.faceswap import (DLIB_TOOK_TARGET, MIN_GAIN, SWAP_FAR, fit_target_line,  # noqa: E402
                                        held_out_rates, swap_scenarios, swap_verdict)
from workbench.metrics.identity import DLIB_SAME_PERSON_COSINE, REFERENCE_MAX_SIDE, roc_auc  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
PERSON = {"talking/00002.mp4": "LILY", "talking/517600055.mp4": "LILY",
          "talking/741400104.mp4": "RDJ", "talking/741400163.mp4": "RDJ",
          "faces/sadtalker_happy.png": "STW1", "faces/sadtalker_sad.png": "STW1",
          "faces/sadtalker_happy1.png": "STW2", "faces/sadtalker_sad1.png": "STW2"}
# talking_hard clips with one face (the split screen and the two comedians show two people)
HARD_SINGLE = ("sadtalkervls_job_interview_vfr.mp4", "openvna_webcam_hands_occlusion.mp4",
               "openvna_desk_wide_small_face.mp4")
FLOOR_SOURCES = ("talking/00086.mp4", "talking/00373.mp4", "talking_wild/tpsmm_driving.mp4",
                 "talking_wild/real3dportrait_May_5s.mp4")
FLOOR_PERSONAS = ("faces/sadtalker_people_0.png", "faces/hallo_6.jpg", "faces/sadtalker_happy.png",
                  "faces/hallo_3.jpg")


def calibration_files(media: Path = MEDIA) -> list[Path]:
    return (sorted((media / "talking").glob("*.mp4")) + sorted((media / "talking_wild").glob("*.mp4"))
            + [media / "talking_hard" / n for n in HARD_SINGLE] + sorted((media / "faces").iterdir()))


def file_faces(path: Path, frames: int, embedder: DlibEmbedder) -> np.ndarray:
    """Unit dlib embeddings of the largest face in `frames` frames sampled evenly through a clip (at
    analysis size, streamed), or of a portrait's face (at the reference size): (n, 128)."""
    if path.suffix.lower() != ".mp4":
        img = cap_side(np.asarray(load_image(path))[..., :3].astype(np.uint8), REFERENCE_MAX_SIDE)
        faces = detect_faces(img)
        return np.asarray([embedder.embed(img, faces[0])] if faces else np.zeros((0, 128)))
    clip = Clip.open(path)
    want = set(np.linspace(0, max(clip.num_frames - 1, 0), frames).round().astype(int).tolist())
    out = []
    for i, frame in enumerate(clip.iter_frames(max_side=ANALYSIS_MAX_SIDE)):
        if i in want:
            frame = np.ascontiguousarray(frame[..., :3])
            found = detect_faces_fast(frame)
            if found:
                out.append(embedder.embed(frame, max(found, key=lambda f: f.width)))
        if i >= max(want):
            break
    return np.asarray(out).reshape(-1, 128)


def calibrate(frames: int) -> dict:
    embedder = DlibEmbedder()
    t0 = time.perf_counter()
    faces = {}
    for path in calibration_files():
        faces[str(path.relative_to(MEDIA))] = file_faces(path, frames, embedder)
    print(f"faces: {sum(len(v) for v in faces.values())} from {len(faces)} files "
          f"({time.perf_counter() - t0:.0f} s)")
    scenarios = swap_scenarios(faces, PERSON)
    kinds = collections.Counter(x.kind for x in scenarios)
    print("scenarios: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    pos = [x.to_target for x in scenarios if x.took]
    neg = [x.to_target for x in scenarios if not x.took]
    auc = roc_auc(pos, neg)
    print(f"identity_to_target, took vs not: ROC AUC {auc:.5f}; took mean {np.mean(pos):.3f} "
          f"(min {min(pos):.3f}), not took max {max(neg):.3f}")
    rows = []
    print(f"\n{'fitted at FAR':>13} | {'line (all)':>10} | {'held-out FAR':>12} | {'held-out FRR':>12} | fold lines")
    for far in (0.01, SWAP_FAR, 0.002, 0.001):
        line = fit_target_line(scenarios, far, DLIB_SAME_PERSON_COSINE, MIN_GAIN)
        h = held_out_rates(scenarios, far, DLIB_SAME_PERSON_COSINE, MIN_GAIN)
        lo, med, hi = h["lines"]
        print(f"{far:>13.3%} | {line:>10.4f} | {h['far']:>12.4%} | {h['frr']:>12.2%} | "
              f"{lo:.4f}-{hi:.4f} (median {med:.4f}); {h['false_accepts']}/{h['n_negative']} negatives, "
              f"{h['false_rejects']}/{h['n_positive']} positives")
        rows.append({"fitted_far": far, "line": line, **h})
    # the shipped line, judged on every scenario, per kind
    from workbench.metrics.faceswap import SwapRule

    rule = SwapRule(DLIB_TOOK_TARGET, DLIB_SAME_PERSON_COSINE, MIN_GAIN)
    per_kind = {}
    for kind in sorted(kinds):
        xs = [x for x in scenarios if x.kind == kind]
        per_kind[kind] = float(np.mean([rule.took(x.to_target, x.to_source, x.gain) for x in xs]))
    print(f"\nshipped rule (target >= {DLIB_TOOK_TARGET}, source < {DLIB_SAME_PERSON_COSINE}, gain >= {MIN_GAIN}), "
          "share read 'took': " + ", ".join(f"{k} {v:.2%}" for k, v in per_kind.items()))
    return {"faces": {k: len(v) for k, v in faces.items()}, "scenarios": dict(kinds), "auc": auc,
            "rates": rows, "shipped": {"line": DLIB_TOOK_TARGET, "took_share_by_kind": per_kind}}


def floor_swaps() -> list[dict]:
    """The floor on FLOOR_SOURCES x FLOOR_PERSONAS (first 2 s, 256 px), scored against its own persona and
    the next one in the list."""
    from workbench.metrics import evaluate
    from workbench.models import GenerationRequest, get_generator

    out = []
    print(f"\n{'source':<26} {'persona':<24} {'scored against':<24} {'to_target':>9} {'to_source':>9} "
          f"{'gain':>7}  verdict")
    for src_name in FLOOR_SOURCES:
        clip = Clip.open(MEDIA / src_name)
        source = Clip.from_frames(clip.to_array(max_frames=int(round(2 * clip.fps)), max_side=256), clip.fps)
        for k, persona in enumerate(FLOOR_PERSONAS):
            swapped = get_generator("faceswap-landmarks")().generate(
                GenerationRequest(image=load_image(MEDIA / persona), video=source))
            for against in (persona, FLOOR_PERSONAS[(k + 1) % len(FLOOR_PERSONAS)]):
                r = evaluate(swapped, image=MEDIA / against, source=source, metrics=["faceswap"])
                verdict, why = swap_verdict(r.scores, r.backends.get("swap_took"))
                s = r.scores
                print(f"{src_name.split('/')[-1][:26]:<26} {persona.split('/')[-1]:<24} "
                      f"{('(own) ' if against == persona else '') + against.split('/')[-1]:<24} "
                      f"{s['identity_to_target']:>9.3f} {s['identity_to_source']:>9.3f} {s['identity_gain']:>+7.3f}  "
                      f"{verdict}")
                out.append({"source": src_name, "persona": persona, "against": against, "scores": s,
                            "verdict": verdict, "why": why})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--frames", type=int, default=24, help="frames sampled per clip")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor's swaps")
    args = ap.parse_args()
    if not (MEDIA / "MANIFEST.md").exists():
        sys.exit(f"real media not found at {MEDIA}: this benchmark needs ../shared/media")
    result = {"calibration": calibrate(args.frames)}
    if not args.no_floor:
        result["floor"] = floor_swaps()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
