"""A small run folder for judging tests: real tiny mp4 clips of `models` x `cases` (seed 0), records with
two directional scores (`identity_similarity` follows the models' true order, `warp_error` runs against
it) and a flow value, written the way `workbench run` writes them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MODELS = ("alpha", "beta", "gamma")
QUALITY = {"alpha": 0.9, "beta": 0.6, "gamma": 0.3}


def judging_run(root: Path, models=MODELS, cases: int = 4, name: str = "judged") -> Path:
    from workbench.media import write_video

    run = root / name
    (run / "clips").mkdir(parents=True, exist_ok=True)
    lines = []
    for c in range(cases):
        for i, m in enumerate(models):
            job = f"{m[:2]}{c:02d}{'0' * 10}"
            frames = [np.full((64, 64, 3), (40 * i + 8 * t) % 255, np.uint8) for t in range(6)]
            write_video(run / "clips" / f"{job}.mp4", frames, fps=8)
            q = QUALITY.get(m, 0.5)
            lines.append({"job_id": job, "status": "ok", "suite": "judging-test", "case": f"case{c}", "model": m,
                          "seed": 0, "output": 0, "video": f"clips/{job}.mp4", "prompt": "a face",
                          "scores": {"identity_similarity": q + 0.01 * c, "warp_error": q, "flow_magnitude": 2.0}})
    with open(run / "results.jsonl", "w") as f:
        for r in lines:
            f.write(json.dumps(r) + "\n")
    return run
