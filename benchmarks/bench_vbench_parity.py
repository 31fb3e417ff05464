"""VBench parity: VBench's own code vs the workbench, per clip, on the real clips in ../shared/media.

    .venv/bin/python benchmarks/bench_vbench_parity.py                 # every dimension that can run here
    .venv/bin/python benchmarks/bench_vbench_parity.py --dims temporal_flickering --clips scenes
    .venv/bin/python benchmarks/bench_vbench_parity.py --json parity.json

VBench pins old numpy and transformers, so its code runs in a virtual environment of its own that this
script makes (benchmarks/.vbench-venv, git-ignored): `vbench==0.1.5` from PyPI without its
dependencies, plus only what the dimensions need (numpy<2, OpenCV headless: the same decoder as
VBench's opencv-python, decord, tqdm; and for the learned ones omegaconf, easydict, scipy, openai-clip).
torch and torchvision are the workbench's own, reached through a .pth file (the venv's numpy 1.x comes
first on the path). Each dimension runs in that venv as `python THIS_FILE --worker DIM CLIP...` and
prints one JSON line per clip; the workbench side runs here through `workbench.metrics.evaluate`.

Dimensions and what they need (VBench's cache: $VBENCH_CACHE_DIR, default ~/.cache/vbench):
  temporal_flickering     nothing: runs everywhere
  motion_smoothness       AMT-S        amt_model/amt-s.pth
  dynamic_degree          RAFT         raft_model/models/raft-things.pth
  subject_consistency     DINO ViT-B/16 dino_model/facebookresearch_dino_main/ + dino_model/dino_vitbase16_pretrain.pth
  background_consistency  CLIP ViT-B/32 clip_model/ViT-B-32.pt
  i2v_subject (VBench++)  DINO, as above; the clip's first frame is the input image
A dimension whose weights are absent is listed as skipped with the path it looked for: copy VBench's
weights there on a GPU box (nothing here downloads) and the same command compares it. The workbench's
learned metrics need their own weights too (WORKBENCH_DINO, WORKBENCH_CLIP, or the HF cache).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
VENV = Path(__file__).resolve().parent / ".vbench-venv"
VBENCH = "vbench==0.1.5"
BASE_REQS = ["numpy<2", "opencv-python-headless", "decord", "tqdm", "pillow", "pyyaml"]
LEARNED_REQS = ["omegaconf", "easydict", "scipy", "ftfy", "regex"]  # + openai-clip without deps
# VBench dimension -> the workbench score that follows it
WORKBENCH_SCORE = {
    "temporal_flickering": "temporal_flicker",
    "motion_smoothness": "motion_smoothness",
    "dynamic_degree": "dynamic_degree",
    "subject_consistency": "subject_consistency",
    "background_consistency": "background_consistency",
    "i2v_subject": "i2v_subject",
}


def vbench_cache() -> Path:
    return Path(os.environ.get("VBENCH_CACHE_DIR") or Path.home() / ".cache" / "vbench")


def weights_needed(dim: str) -> list[Path]:
    """VBench's weight files for `dim` (empty: weight-free)."""
    c = vbench_cache()
    return {
        "temporal_flickering": [],
        "motion_smoothness": [c / "amt_model" / "amt-s.pth"],
        "dynamic_degree": [c / "raft_model" / "models" / "raft-things.pth"],
        "subject_consistency": [c / "dino_model" / "facebookresearch_dino_main" / "hubconf.py",
                                c / "dino_model" / "dino_vitbase16_pretrain.pth"],
        "background_consistency": [c / "clip_model" / "ViT-B-32.pt"],
        "i2v_subject": [c / "dino_model" / "facebookresearch_dino_main" / "hubconf.py",
                        c / "dino_model" / "dino_vitbase16_pretrain.pth"],
    }[dim]


# --------------------------------------------------------------------------------------------------
# the worker: runs inside the VBench venv, imports VBench's own code, no workbench import
# --------------------------------------------------------------------------------------------------
def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _first_frame_png(video: str, out_dir: Path) -> str:
    import cv2

    cap = cv2.VideoCapture(video)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"{video}: no frame to use as the i2v input image")
    path = out_dir / (Path(video).stem + "_frame0.png")
    cv2.imwrite(str(path), frame)
    return str(path)


def worker(dim: str, videos: list[str]) -> None:
    """Score each video with VBench's own function for `dim`; one JSON line per video."""
    import torch

    dev, cache = _device(), vbench_cache()
    if dim == "temporal_flickering":
        from vbench.temporal_flickering import cal_score

        score = cal_score
    elif dim == "motion_smoothness":
        import vbench
        from vbench.motion_smoothness import MotionSmoothness

        cfg = Path(vbench.__file__).parent / "third_party" / "amt" / "cfgs" / "AMT-S.yaml"
        model = MotionSmoothness(str(cfg), str(cache / "amt_model" / "amt-s.pth"), dev)
        score = model.motion_score
    elif dim == "dynamic_degree":
        from easydict import EasyDict
        from vbench.dynamic_degree import DynamicDegree

        args = EasyDict({"model": str(cache / "raft_model" / "models" / "raft-things.pth"), "small": False,
                         "mixed_precision": False, "alternate_corr": False})
        model = DynamicDegree(args, dev)
        score = lambda v: float(model.infer(v))  # noqa: E731
    elif dim in ("subject_consistency", "i2v_subject"):
        dino = torch.hub.load(str(cache / "dino_model" / "facebookresearch_dino_main"), "dino_vitb16",
                              source="local", pretrained=False)
        dino.load_state_dict(torch.load(cache / "dino_model" / "dino_vitbase16_pretrain.pth", map_location="cpu"))
        dino = dino.to(dev).eval()
        if dim == "subject_consistency":
            from vbench.subject_consistency import subject_consistency

            score = lambda v: subject_consistency(dino, [v], dev, False)[1][0]["video_results"]  # noqa: E731
        else:
            import tempfile

            from vbench2_beta_i2v.i2v_subject import i2v_subject

            tmp = Path(tempfile.mkdtemp(prefix="vbench-i2v-"))
            score = lambda v: i2v_subject(dino, [(_first_frame_png(v, tmp), v)], dev)[1][0]["video_results"]  # noqa: E731
    elif dim == "background_consistency":
        import clip
        from vbench.background_consistency import background_consistency

        model, preprocess = clip.load(str(cache / "clip_model" / "ViT-B-32.pt"), device=dev)
        score = lambda v: background_consistency(model, preprocess, [v], dev, False)[1][0]["video_results"]  # noqa: E731
    else:
        raise SystemExit(f"unknown VBench dimension {dim!r}; one of {', '.join(WORKBENCH_SCORE)}")
    for v in videos:
        t0 = time.perf_counter()
        with torch.no_grad():
            value = float(score(v))
        print(json.dumps({"video": v, "value": value, "seconds": time.perf_counter() - t0}), flush=True)


# --------------------------------------------------------------------------------------------------
# the driver: makes the venv, runs VBench there and the workbench here, prints the table
# --------------------------------------------------------------------------------------------------
def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"error: pip install {' '.join(args)} failed in {venv}: {' / '.join(tail)}")


def ensure_venv(venv: Path, learned: bool) -> Path:
    """Create (once) the VBench venv; add the learned dimensions' packages when `learned`."""
    import sysconfig

    stamp = venv / ".workbench-ready"
    want = {"base": [VBENCH, *BASE_REQS], "learned": LEARNED_REQS + ["openai-clip"] if learned else []}
    have = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if have.get("base") != want["base"]:
        print(f"making {venv} ({VBENCH} without its dependencies + {', '.join(BASE_REQS)}) ...", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
        _pip(venv, "--no-deps", VBENCH)
        _pip(venv, *BASE_REQS)
        site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        # torch / torchvision: the workbench's own, after the venv's packages (its numpy 1.x wins)
        Path(site, "zz_workbench_torch.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        have = {"base": want["base"]}
    if learned and have.get("learned") != want["learned"]:
        _pip(venv, *LEARNED_REQS)
        _pip(venv, "--no-deps", "openai-clip")
        have["learned"] = want["learned"]
    stamp.write_text(json.dumps(have))
    return venv / "bin" / "python"


def run_vbench(python: Path, dim: str, clips: list[Path]) -> dict[str, float | str]:
    """VBench's value (or its error line) per clip path."""
    r = subprocess.run([str(python), __file__, "--worker", dim, *map(str, clips)], capture_output=True, text=True)
    out: dict[str, float | str] = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            out[rec["video"]] = rec["value"]
    if r.returncode:
        why = (r.stderr.strip().splitlines() or ["no output"])[-1][:200]
        for c in clips:
            out.setdefault(str(c), f"VBench failed: {why}")
    return out


def run_workbench(dim: str, clip: Path) -> float | str:
    from workbench.media import Clip
    from workbench.metrics import evaluate

    score = WORKBENCH_SCORE[dim]
    image = Clip.open(clip).first_frame() if dim == "i2v_subject" else None
    r = evaluate(clip, image=image, metrics=[score])
    v = r.scores.get(score)
    return v if v is not None else f"workbench: {r.errors.get(score, 'no value')}"


def find_clips(groups: list[str]) -> list[Path]:
    if not (MEDIA / "MANIFEST.md").is_file():
        raise SystemExit(f"error: real media not found at {MEDIA}; this benchmark needs ../shared/media")
    out = []
    for g in groups:
        p = MEDIA / g
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(p.glob("*.mp4")))
        else:
            raise SystemExit(f"error: {p} is neither a clip nor a folder of ../shared/media")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default=",".join(WORKBENCH_SCORE), help="VBench dimensions, comma-separated")
    ap.add_argument("--clips", default="scenes,talking,talking_wild",
                    help="folders or files under ../shared/media, comma-separated")
    ap.add_argument("--venv", type=Path, default=VENV, help="where VBench's environment lives")
    ap.add_argument("--json", type=Path, help="write every row here too")
    ap.add_argument("--worker", nargs="+", metavar=("DIM", "VIDEO"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1:])
        return 0
    dims = [d.strip() for d in args.dims.split(",") if d.strip()]
    unknown = [d for d in dims if d not in WORKBENCH_SCORE]
    if unknown:
        ap.error(f"unknown dimension(s) {', '.join(unknown)}; known: {', '.join(WORKBENCH_SCORE)}")
    clips = find_clips([c.strip() for c in args.clips.split(",") if c.strip()])
    runnable, skipped = [], {}
    for d in dims:
        missing = [str(p) for p in weights_needed(d) if not p.exists()]
        (skipped.__setitem__(d, missing) if missing else runnable.append(d))
    python = ensure_venv(args.venv, learned=any(weights_needed(d) for d in runnable)) if runnable else None
    rows = []
    for d in runnable:
        print(f"\n{d} (VBench {VBENCH}) vs {WORKBENCH_SCORE[d]} (workbench), {len(clips)} clips")
        print(f"{'clip':44s} {'VBench':>10s} {'workbench':>10s} {'difference':>11s}")
        vb = run_vbench(python, d, clips)
        for c in clips:
            v, w = vb.get(str(c), "VBench: no value"), run_workbench(d, c)
            diff = w - v if isinstance(v, float) and isinstance(w, float) else None
            rows.append({"dimension": d, "clip": f"{c.parent.name}/{c.name}", "vbench": v, "workbench": w,
                         "difference": diff})
            fmt = lambda x: f"{x:10.6f}" if isinstance(x, float) else f"{'n/a':>10s}"  # noqa: E731
            print(f"{c.parent.name + '/' + c.name:44s} {fmt(v)} {fmt(w)} "
                  f"{(f'{diff:+11.2e}' if diff is not None else 'n/a'):>11s}")
            for x in (v, w):
                if isinstance(x, str):
                    print(f"    {x}")
        diffs = [abs(r["difference"]) for r in rows if r["dimension"] == d and r["difference"] is not None]
        if diffs:
            print(f"max |difference| {max(diffs):.2e} over {len(diffs)} clips")
    for d, missing in skipped.items():
        print(f"\n{d}: skipped, VBench's weights are not here ({', '.join(missing)}); put them there (GPU box) "
              "and run again")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
