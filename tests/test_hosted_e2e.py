"""Issue 16's end-to-end suite: Hedra Character-3, Veo image-to-video and Kling on fal beside a tiny
wan2.1-i2v and the puppet, each hosted model through its real client against a local fake: one report
and one W&B table with costs; a kill -9 while waiting, then a re-run, gives exactly one submission per
job; no key in any file the runs wrote."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from fakes.fal import FakeFal
from fakes.hedra import FakeHedra
from fakes.veo import FakeVeo
from workbench.tracking import read_offline_run

REPO = Path(__file__).resolve().parents[1]
KEYS = {"HEDRA_API_KEY": "hedra-E2E-KEY-51c0ffee", "GOOGLE_API_KEY": "AIzaE2E-veo-KEY-51c0ffee",
        "FAL_KEY": "falE2E-id:falE2E-secret-51c0ffee"}
FAST = {"poll_s": 0.05, "backoff_s": 0.01, "backoff_cap_s": 0.05, "timeout_s": 60}


def _suite(folder: Path, wan: Path) -> Path:
    data = REPO / "data"
    spec = {
        "name": "hosted-beside-open", "seeds": [0], "metrics": ["temporal_flicker", "identity", "lipsync"],
        "cases": [{"id": "talk", "image": str(data / "images" / "portrait.png"),
                   "audio": str(data / "audio" / "hello.wav"), "prompt": "she says hello"},
                  {"id": "scene", "image": str(data / "images" / "landscape.png"), "prompt": "a slow pan"}],
        "models": [{"name": "hedra-character-3", "options": FAST},
                   {"name": "veo-3-i2v", "params": {"duration": 4}, "options": FAST},
                   {"name": "fal-kling-2.1-standard-i2v", "options": FAST},
                   {"name": "wan2.1-i2v-480p", "params": {"model_id": str(wan), "num_frames": 5, "width": 32,
                                                          "height": 32, "num_inference_steps": 1}},
                   {"name": "puppet", "params": {"size": 96}}],
        "tracking": {"wandb": True, "mode": "offline", "project": "e2e"}}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _run(suite: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workbench", "run", str(suite), "--out", str(out)], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_hosted_beside_open_models_one_report_one_table_one_submission_each(tiny_models, tmp_path):
    with FakeHedra() as hedra, FakeVeo() as veo, FakeFal() as fal:
        fakes = {"hedra": hedra, "veo": veo, "fal": fal}
        # a W&B service started by an earlier test in this process must not serve the runs (it writes their logs
        # after they exit): each `workbench run` starts its own, as from a shell
        env = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, **KEYS, "WORKBENCH_HEDRA_BASE_URL": hedra.url + "/v3",
               "WORKBENCH_VEO_BASE_URL": veo.url, "WORKBENCH_FAL_BASE_URL": fal.url,
               "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
        suite, out = _suite(tmp_path, tiny_models["wan-i2v"]), tmp_path / "run"
        # the first run: every provider keeps its job processing; kill -9 once the first job is being polled
        for f in fakes.values():
            f.hold.set()
        proc = _run(suite, out, env)
        deadline = time.monotonic() + 120
        while sum(f.submissions for f in fakes.values()) < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)  # polling now
        assert proc.poll() is None, proc.stdout.read()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert sum(f.submissions for f in fakes.values()) == 1
        assert len(list((out / "claims").glob("*.remote.json"))) == 1
        # the re-run: resumes the stored job, submits each other job once; then a third run submits nothing
        for f in fakes.values():
            f.release()
        proc = _run(suite, out, env)
        log = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, log[-3000:]
        # talk: hedra, veo, fal; scene: veo, fal (hedra-character-3 needs audio, the scene has none)
        assert {k: f.submissions for k, f in fakes.items()} == {"hedra": 1, "veo": 2, "fal": 2}
        proc = _run(suite, out, env)
        assert proc.communicate(timeout=300)[0] and proc.returncode == 0
        assert {k: f.submissions for k, f in fakes.items()} == {"hedra": 1, "veo": 2, "fal": 2}

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    latest = {r["job_id"]: r for r in records}.values()
    assert {r["model"] for r in latest} == {"hedra-character-3", "veo-3-i2v", "fal-kling-2.1-standard-i2v",
                                            "wan2.1-i2v-480p", "puppet"}
    assert all(r["status"] == "ok" for r in latest), [(r["model"], r["error"]) for r in latest if r["status"] != "ok"]
    hosted = [r for r in latest if r["model"] in ("hedra-character-3", "veo-3-i2v", "fal-kling-2.1-standard-i2v")]
    assert all(r["cost"]["usd"] is not None and r["cost"]["usd"] > 0 for r in hosted)
    assert sum(r["remote"]["resumed"] for r in hosted) == 1
    assert all("cost" not in r for r in latest if r["model"] in ("wan2.1-i2v-480p", "puppet"))

    # one report: every model, a cost table, local models at $0
    html = (out / "report.html").read_text()
    assert 'id="cost"' in html and "local" in html and "quality against cost per clip" in html
    for model in ("hedra-character-3", "veo-3-i2v", "fal-kling-2.1-standard-i2v", "wan2.1-i2v-480p", "puppet"):
        assert f">{model}<" in html or f"{model}</" in html
    # one W&B run (the killed session left none of its own tables), its comparison table holding every job with its cost
    runs = [r for r in sorted((out / "wandb").glob("offline-run-*")) if list(r.glob("run-*.wandb"))]  # the killed
    tables = [read_offline_run(r)["tables"] for r in runs]  # session may have left a folder without a log
    comp = [t["comparison"] for t in tables if "comparison" in t][-1]
    rows = [dict(zip(comp["columns"], row)) for row in comp["data"]]
    assert len(rows) == len(list(latest)) and all(
        (row["cost_usd"] or 0) > 0 for row in rows if row["model"] in ("hedra-character-3", "veo-3-i2v"))

    # no key in any file the runs wrote, nor in the log
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for key in KEYS.values():
                assert key.encode() not in data, f"{key[:8]}... leaked into {f.relative_to(out)}"
    assert not any(key in log for key in KEYS.values())
