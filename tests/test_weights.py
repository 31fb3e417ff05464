"""Weights: `workbench models --json` (fast, no torch), `workbench weights check / fetch`, `models build-tiny`.
Nothing here touches the network: caches are laid out by the tests."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from workbench.cli import app
from workbench.models.families import FAMILIES
from workbench import weights
from conftest import FAIL_FAST_S

runner = CliRunner()


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def fake_hub_cache(root: Path, repo: str, checkpoint: Path) -> Path:
    commit = "1" * 40
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(checkpoint, repo_dir / "snapshots" / commit)
    return root


def test_models_json_lists_everything_fast_without_torch():
    script = ("import sys, time, json, io, contextlib\n"
              "t = time.perf_counter()\n"
              "from typer.testing import CliRunner\n"
              "from workbench.cli import app\n"
              "out = CliRunner().invoke(app, ['models', '--json'])\n"
              "rows = json.loads(out.output)\n"
              "print(json.dumps({'n': len(rows), 'torch': 'torch' in sys.modules, 'diffusers': 'diffusers' in sys.modules,"
              " 's': time.perf_counter() - t, 'rows': rows}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert not res["torch"] and not res["diffusers"]
    assert res["s"] < 10.0  # imports only (typically ~1 s); the check never loads a model
    rows = {r["name"]: r for r in res["rows"]}
    for spec in FAMILIES:
        r = rows[spec.name]
        assert r["hub_ids"][0] == spec.model_id and r["licence"] and r["weights_available"] is False
        assert r["task"] == spec.task and r["defaults"]["model_id"] == spec.model_id
    assert rows["infinitetalk"]["install"].startswith("git clone") and rows["static"]["weights"] is None


def test_check_reads_the_hub_cache(tiny_models, tmp_path):
    cache = fake_hub_cache(tmp_path / "hub", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", tiny_models["wan-t2v"])
    env = {"HF_HUB_CACHE": str(cache), "TORCH_HOME": str(tmp_path / "torch")}
    out = run_cli("weights", "check", "wan2.1-t2v-1.3b", "sdxl", "--json", env=env)
    assert out.returncode == 1  # sdxl is missing
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["wan2.1-t2v-1.3b"]["present"] and rows["wan2.1-t2v-1.3b"]["path"].startswith(str(cache))
    assert not rows["sdxl"]["present"]
    ok = run_cli("weights", "check", "wan2.1-t2v-1.3b", env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("ok ")
    text = run_cli("weights", "check", "sdxl", env=env)
    assert "workbench weights fetch sdxl" in text.stdout and "1 of 1 missing" in text.stderr


def test_check_finds_url_weights_in_the_torch_cache_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("WORKBENCH_LPIPS_BACKBONE", raising=False)
    assert not weights.status(["lpips-alex"])[0]["present"]
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"0")
    assert weights.status(["lpips-alex"])[0]["path"] == str(ckpt)
    monkeypatch.setenv("WORKBENCH_SYNCNET_WEIGHTS", str(ckpt))
    assert weights.status(["syncnet"])[0]["present"]


def test_require_names_the_fetch_command_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("WORKBENCH_DINO", raising=False)
    t0 = time.perf_counter()
    try:
        weights.require("dino")
    except weights.WeightsError as e:
        msg = str(e)
    assert time.perf_counter() - t0 < FAIL_FAST_S
    assert msg == ("dino weights (facebook/dino-vitb16) are not on this machine; run `workbench weights fetch dino` "
                   "(or set WORKBENCH_DINO to a local copy)")
    monkeypatch.setenv("WORKBENCH_DINO", str(tmp_path))
    assert weights.require("dino") == tmp_path


def test_fetch_never_waits_offline_and_names_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    res = runner.invoke(app, ["weights", "fetch", "wan2.1-t2v-1.3b"])
    assert time.perf_counter() - t0 < FAIL_FAST_S and res.exit_code == 1
    assert "HF_HUB_OFFLINE=1 forbids downloads; run `HF_HUB_OFFLINE=0 workbench weights fetch wan2.1-t2v-1.3b`" in res.output
    res = runner.invoke(app, ["weights", "fetch", "sadtalker"])
    assert res.exit_code == 1 and "runs from its own repository: git clone https://github.com/OpenTalker/SadTalker" in res.output
    res = runner.invoke(app, ["weights", "fetch", "nope"])
    assert res.exit_code == 1 and "no weights named 'nope'; known: svd," in res.output
    res = runner.invoke(app, ["weights", "check", "nope"])
    assert res.exit_code == 2


def test_build_tiny_cli_writes_loadable_folders_once(tmp_path):
    res = runner.invoke(app, ["models", "build-tiny", str(tmp_path), "--only", "wan-t2v"])
    assert res.exit_code == 0, res.output
    assert "wan2.1-t2v-1.3b" in res.output
    index = tmp_path / "wan-t2v" / "model_index.json"
    assert json.loads(index.read_text())["_class_name"] == "WanPipeline"
    stamp = index.stat().st_mtime_ns
    assert runner.invoke(app, ["models", "build-tiny", str(tmp_path), "--only", "wan-t2v"]).exit_code == 0
    assert index.stat().st_mtime_ns == stamp  # existing folders are kept
    bad = runner.invoke(app, ["models", "build-tiny", str(tmp_path), "--only", "nope"])
    assert bad.exit_code == 2 and "no tiny builder for nope" in bad.output


# ------------------------------------------------------------------------ what a failed fetch says (no network)
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: refused at once, nothing leaves the machine


def test_fetch_offline_says_offline_not_gated():
    for name in ("wan2.1-t2v-1.3b", "flux-dev"):  # not gated, gated
        t0 = time.perf_counter()
        out = run_cli("weights", "fetch", name, env={"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": UNREACHABLE})
        assert out.returncode == 1 and time.perf_counter() - t0 < 30
        assert f"error: {name}: HF_HUB_OFFLINE=1 forbids downloads; run `HF_HUB_OFFLINE=0 workbench weights fetch " \
               f"{name}` on a machine with network" in out.stderr
        assert "gated" not in out.stderr and "licence" not in out.stderr


def test_fetch_with_the_network_down_says_so(tmp_path):
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": UNREACHABLE, "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    for name, repo in (("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"),
                       ("flux-dev", "black-forest-labs/FLUX.1-dev")):
        out = run_cli("weights", "fetch", name, env=env)
        assert out.returncode == 1, out.stdout
        assert f"error: {name}: network unreachable: could not reach {UNREACHABLE} to download {repo} (" in out.stderr
        assert "check the connection or proxy (HF_ENDPOINT, HTTPS_PROXY) and retry" in out.stderr
        assert "gated" not in out.stderr and "licence" not in out.stderr


def _hub_refusing(code: str):
    """A local stand-in for the hub that answers every request 401 with the hub's X-Error-Code header."""
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b'{"error": "Access restricted"}'
            self.send_response(401)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", "Access to this repo is restricted" if code == "GatedRepo"
                             else "Repository not found")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = _answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_fetch_refused_401_names_the_licence_only_for_gated_repos(tmp_path):
    for code, name, expect in (
            ("GatedRepo", "flux-dev", "error: flux-dev: black-forest-labs/FLUX.1-dev is gated (HTTP 401): accept its "
                                      "licence at http://127.0.0.1:{port}/black-forest-labs/FLUX.1-dev and log in "
                                      "(`hf auth login` or HF_TOKEN), then retry"),
            ("RepoNotFound", "wan2.1-t2v-1.3b", "error: wan2.1-t2v-1.3b: the hub refused Wan-AI/Wan2.1-T2V-1.3B-Diffusers "
                                               "(HTTP 401: not found, or private and you are not logged in)")):
        server = _hub_refusing(code)
        try:
            port = server.server_address[1]
            out = run_cli("weights", "fetch", name, env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}",
                                                         "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_TOKEN": ""})
        finally:
            server.shutdown()
        assert out.returncode == 1 and expect.format(port=port) in out.stderr, out.stderr[-1500:]
        if code != "GatedRepo":
            assert "gated" not in out.stderr and "licence" not in out.stderr


def test_download_failure_reads_url_errors_too():
    import urllib.error

    w = weights.catalogue()["raft"]
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    assert weights.download_failure(w, refused).startswith(f"raft: network unreachable: could not reach {w.source}")
    missing = urllib.error.HTTPError(w.source, 404, "Not Found", {}, None)
    assert weights.download_failure(w, missing) == f"raft: {w.source} not found (HTTP 404); check the source or " \
                                                   f"update the workbench"
