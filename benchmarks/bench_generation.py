"""Generation overhead: `workbench` generate vs the same diffusers pipeline called directly, side by side.

For each family, a tiny random-weight checkpoint (workbench.models.tiny) is loaded twice: once through the
workbench adapter (its cached pipeline) and once with plain `diffusers.DiffusionPipeline.from_pretrained`.
Both make the same clip from the same seed; the direct call gets exactly the keyword arguments the adapter
would pass (the progress callback left out), so the difference is the workbench's own work: request checks,
image fitting, the step callback, uint8 conversion and the Clip. Runs alternate (workbench, direct, ...)
after one warm-up each; each side's fastest and median run are compared (the fastest is the figure: the
CPU is shared, and a busy neighbour only ever adds time): target ratio <= 1.05.

    .venv/bin/python benchmarks/bench_generation.py            # 4 families, 7 runs each (~1-2 min on 2 cores)
    .venv/bin/python benchmarks/bench_generation.py --quick    # 2 families, 3 runs
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

FAMILIES = {  # registry name -> (params on top of the tiny checkpoint, needs an image)
    "wan2.1-t2v-1.3b": {"num_frames": 9, "width": 64, "height": 64, "num_inference_steps": 4},
    "ltx-video-i2v": {"num_frames": 17, "width": 64, "height": 64, "num_inference_steps": 4},
    "svd": {"num_frames": 8, "width": 64, "height": 64, "num_inference_steps": 4},
    "flux-schnell": {"width": 128, "height": 128, "num_inference_steps": 4},
}


def bench_family(name: str, params: dict, root: Path, runs: int) -> dict:
    import diffusers
    import torch

    from workbench.models import GenerationRequest, get_generator
    from workbench.models.tiny import build_tiny

    cls = get_generator(name)
    folder = root / cls.spec.tiny
    if not (folder / "model_index.json").is_file():
        build_tiny(cls.spec.tiny, folder)
    y, x = np.mgrid[0:96, 0:128]
    image = np.stack([x * 2, y * 2, (x + y) % 256], -1).astype(np.uint8)
    request = GenerationRequest(image=image if "image" in cls.accepts else None,
                                prompt="a red fox runs through snow" if "prompt" in cls.accepts else "", seed=3)
    gen = cls(options={"device": "cpu", "dtype": "fp32"}, model_id=str(folder), **params)
    wb_pipe = gen.pipeline()
    direct = getattr(diffusers, cls.spec.pipeline).from_pretrained(folder, dtype=torch.float32).to("cpu")
    direct.set_progress_bar_config(disable=True)
    kwargs = gen.call_kwargs(wb_pipe, request, None)
    kwargs.pop("callback_on_step_end", None)

    def run_direct() -> np.ndarray:
        kw = dict(kwargs, generator=torch.Generator("cpu").manual_seed(request.seed))
        out = direct(**kw)
        return np.asarray(out.images[:1] if cls.task == "text-to-image" else out.frames[0])

    def run_workbench() -> np.ndarray:
        return gen.generate(request, progress=lambda i, n: None).frames

    a, b = run_workbench(), run_direct()  # warm-up (and the same clip from both)
    same = bool(np.array_equal(a, np.round(np.clip(b[: len(a)], 0, 1) * 255).astype(np.uint8)))
    t_wb, t_direct = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        run_workbench()
        t_wb.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_direct()
        t_direct.append(time.perf_counter() - t0)
    wb, dr = min(t_wb), min(t_direct)
    return {"family": name, "pipeline": cls.spec.pipeline, "workbench_s": wb, "direct_s": dr, "ratio": wb / dr,
            "median_ratio": statistics.median(t_wb) / statistics.median(t_direct), "same_frames": same, "runs": runs,
            "params": params}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 families, 3 runs each")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--dir", type=Path, default=None, help="tiny checkpoints folder (built when missing)")
    ap.add_argument("--json", action="store_true", help="print one JSON list")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import diffusers.utils.logging as dlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    names = list(FAMILIES)[:2] if args.quick else list(FAMILIES)
    runs = args.runs or (3 if args.quick else 7)
    root = args.dir or Path(tempfile.mkdtemp(prefix="wb-bench-gen-"))
    rows = [bench_family(n, FAMILIES[n], root, runs) for n in names]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'family':18s} {'pipeline':30s} {'workbench s':>12s} {'direct s':>10s} {'ratio':>7s} "
          f"{'median ratio':>13s}  same clip")
    for r in rows:
        print(f"{r['family']:18s} {r['pipeline']:30s} {r['workbench_s']:12.4f} {r['direct_s']:10.4f} "
              f"{r['ratio']:7.3f} {r['median_ratio']:13.3f}  {r['same_frames']}")
    total = sum(r["workbench_s"] for r in rows) / sum(r["direct_s"] for r in rows)
    print(f"overall ratio (sum of fastest runs): {total:.3f}  target <= 1.05  ({runs} runs each, alternating)")
    sys.exit(0)


if __name__ == "__main__":
    main()
