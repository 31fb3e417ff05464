"""Hosted models against local fakes that speak each provider's protocol, through the real clients
(hedra-sdk, fal-client, replicate): submit, poll, download, 429/5xx retried, refusals recorded, timeouts
resumed, a kill -9 while polling resumed without a second submission, keys never written anywhere."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fakes.fal import FakeFal
from fakes.hedra import SUBMIT, FakeHedra
from fakes.replicate import FakeReplicate
from workbench.experiment import NotReady, Runner
from workbench.suite import load_suite

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
HEDRA_KEY = "hedra-KEY-7f3a9c1e5b2d4680"
FAL_KEY = "falid-4c2e8a:falsecret-9d1b7f3e6a"
REP_KEY = "r8_REPKEY-1a2b3c4d5e6f7081"
FAST = {"poll_s": 0.02, "backoff_s": 0.01, "backoff_cap_s": 0.05, "timeout_s": 20}


@pytest.fixture
def hedra():
    with FakeHedra() as f:
        yield f


@pytest.fixture
def env(monkeypatch, hedra):
    """Keys and base URLs for all three providers (fal and replicate fakes started here too)."""
    with FakeFal() as fal, FakeReplicate() as rep:
        for k, v in {"HEDRA_API_KEY": HEDRA_KEY, "FAL_KEY": FAL_KEY, "REPLICATE_API_TOKEN": REP_KEY,
                     "WORKBENCH_HEDRA_BASE_URL": hedra.url + "/v3", "WORKBENCH_FAL_BASE_URL": fal.url,
                     "WORKBENCH_REPLICATE_BASE_URL": rep.url}.items():
            monkeypatch.setenv(k, v)
        yield {"hedra": hedra, "fal": fal, "replicate": rep}


def make_suite(folder: Path, models: list, cases: list | None = None, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "images" / "portrait.png", folder / "p.png")
    shutil.copy(DATA / "audio" / "hello.wav", folder / "a.wav")
    cases = cases or [{"id": "talk", "image": "p.png", "audio": "a.wav", "prompt": "a woman says hello"}]
    spec = {"name": "hosted", "cases": cases, "models": models, "metrics": ["temporal_flicker"],
            "tracking": {"html_report": False}, **extra}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def m(name: str, **options) -> dict:
    return {"name": name, "options": {**FAST, **options}}


def run(path: Path, out: Path) -> list[dict]:
    return list(Runner(load_suite(path), out).run())


def by_model(records: list[dict]) -> dict[str, dict]:
    return {r["model"]: r for r in records}


# --------------------------------------------------------------------------------------------------
def test_hedra_character3_end_to_end_cost_remote_and_resume(tmp_path, env):
    hedra = env["hedra"]
    path = make_suite(tmp_path / "s", [m("hedra-character-3"), m("hedra-kling-2.1-master")])
    recs = by_model(run(path, tmp_path / "run"))
    rec = recs["hedra-character-3"]
    assert rec["status"] == "ok", rec["error"]
    assert rec["remote"]["provider"] == "hedra" and rec["remote"]["job_id"].startswith("job_")
    assert rec["remote"]["resumed"] is False
    # charged from the API (the fake's result says 0.11 USD); the estimate from prices.yaml (0.05 USD/s x audio)
    assert rec["cost"]["charged"] == 0.11 and rec["cost"]["source"] == "api" and rec["cost"]["currency"] == "USD"
    assert rec["cost"]["usd"] == 0.11 and 0.1 < rec["cost"]["estimated"] < 0.2
    assert rec["clip"]["width"] == 64 and rec["clip"]["seconds"] == 1.0  # the actual values
    assert any("returned another clip than asked" in w for w in rec["warnings"])
    assert (tmp_path / "run" / rec["video"]).is_file()
    # the submit carried the idempotency key derived from the clip id; the inputs were uploaded first
    job = hedra.jobs[rec["remote"]["job_id"]]
    assert job["key"] == f"workbench-{rec['clip_id']}-1"
    assert job["input"]["start_image"]["url"].startswith(hedra.url) and job["input"]["duration_ms"] > 2000
    assert hedra.jobs[recs["hedra-kling-2.1-master"]["remote"]["job_id"]]["model"] == "kling-21-master"
    assert hedra.auth_seen == {HEDRA_KEY}
    state = json.loads((tmp_path / "run" / "claims" / f"{rec['clip_id']}.remote.json").read_text())
    assert state["status"] == "completed" and state["handle"]["id"] == rec["remote"]["job_id"]
    # a re-run of the finished suite submits nothing
    before = hedra.submissions
    assert run(path, tmp_path / "run") == []
    assert hedra.submissions == before == 2


def test_429_and_500_are_retried_then_succeed(tmp_path, env):
    hedra, rep = env["hedra"], env["replicate"]
    hedra.inject("POST", SUBMIT, 429, 503, headers={"Retry-After": "0"})
    hedra.inject("GET", r"/v3/jobs/[\w\-]+/status", 500)
    rep.inject("POST", r"/v1/models/.*", 429)
    rep.inject("GET", r"/v1/predictions/\w+", 500)
    path = make_suite(tmp_path / "s", [m("hedra-character-3"), m("replicate-wan-2.2-i2v-fast")])
    recs = by_model(run(path, tmp_path / "run"))
    assert all(r["status"] == "ok" for r in recs.values()), [r["error"] for r in recs.values()]
    assert hedra.submissions == 1 and hedra.count("POST", SUBMIT) == 3
    assert recs["hedra-character-3"]["remote"]["retries"] == 3
    assert rep.submissions == 1 and recs["replicate-wan-2.2-i2v-fast"]["remote"]["retries"] >= 1


def test_retries_are_capped_and_then_fail_with_one_line(tmp_path, env):
    hedra = env["hedra"]
    hedra.inject("POST", SUBMIT, *([500] * 10))
    path = make_suite(tmp_path / "s", [m("hedra-character-3", retries=2)])
    t0 = time.monotonic()
    rec = run(path, tmp_path / "run")[0]
    assert time.monotonic() - t0 < 15
    assert rec["status"] == "error" and rec["error"].startswith("Hedra submit failed after 3 tries: HTTP 500")
    assert hedra.count("POST", SUBMIT) == 3 and "traceback" not in rec


def test_refusals_are_recorded_not_retried(tmp_path, env):
    cases = [{"id": "bad", "image": "p.png", "audio": "a.wav", "prompt": "REFUSE this"}]
    path = make_suite(tmp_path / "s", [m("hedra-character-3"), m("fal-kling-2.1-standard-i2v"),
                                       m("replicate-wan-2.2-i2v-fast")], cases=cases)
    recs = by_model(run(path, tmp_path / "run"))
    for name, title in (("hedra-character-3", "Hedra"), ("fal-kling-2.1-standard-i2v", "fal"),
                        ("replicate-wan-2.2-i2v-fast", "Replicate")):
        rec = recs[name]
        assert rec["status"] == "error" and rec["error_type"] == "refused", rec
        assert rec["error"].startswith(f"refused by {title}: ") and "traceback" not in rec
        assert rec["remote"]["status"] == "refused" and rec["remote"]["job_id"]
    assert env["hedra"].submissions == env["fal"].submissions == env["replicate"].submissions == 1
    assert "moderation" in recs["hedra-character-3"]["error"]


def test_timeout_keeps_the_remote_job_and_the_next_run_polls_it(tmp_path, env):
    hedra = env["hedra"]
    hedra.hold.set()
    path = make_suite(tmp_path / "s", [m("hedra-character-3", timeout_s=0.3)])
    rec = run(path, tmp_path / "run")[0]
    assert rec["status"] == "error" and rec["error_type"] == "timeout"
    assert "run again to resume polling it" in rec["error"] and rec["remote"]["job_id"] in rec["error"]
    hedra.release()
    again = run(path, tmp_path / "run")[0]
    assert again["status"] == "ok" and again["remote"]["resumed"] is True
    assert again["remote"]["job_id"] == rec["remote"]["job_id"] and hedra.submissions == 1


def test_downloads_are_verified(tmp_path, env):
    hedra = env["hedra"]
    hedra.out_seconds = 1.0
    original = hedra._result

    def claims_longer(req):  # the result says 3 s, the file holds 1 s: a truncated download
        resp = original(req)
        for o in resp.json.get("outputs") or []:
            o["duration_ms"] = 3000
        return resp
    hedra.routes = [(mth, rx, claims_longer if fn == original else fn) for mth, rx, fn in hedra.routes]
    path = make_suite(tmp_path / "s", [m("hedra-character-3")])
    rec = run(path, tmp_path / "run")[0]
    assert rec["status"] == "error" and "decodes to 1.00 s but Hedra reports 3.00 s" in rec["error"]

    fal = env["fal"]
    fal.routes = [(mth, rx, (lambda req: __import__("fakes.server", fromlist=["Response"]).Response(
        200, body=b"\x00\x00\x00\x18ftypmp42 not really a video", content_type="video/mp4"))
                   if "files" in rx.pattern else fn) for mth, rx, fn in fal.routes]
    path = make_suite(tmp_path / "s2", [m("fal-kling-2.1-standard-i2v")])
    rec = run(path, tmp_path / "run2")[0]
    assert rec["status"] == "error" and "the clip fal returned cannot be decoded" in rec["error"]


def test_missing_key_refuses_before_anything_runs(tmp_path, env, monkeypatch):
    monkeypatch.delenv("FAL_KEY")
    path = make_suite(tmp_path / "s", [m("static"), m("fal-kling-2.1-standard-i2v")][1:])
    runner = Runner(load_suite(path), tmp_path / "run")
    with pytest.raises(NotReady, match="set FAL_KEY in the environment"):
        list(runner.run())
    assert env["fal"].submissions == 0 and not (tmp_path / "run" / "results.jsonl").exists()
    from typer.testing import CliRunner

    from workbench.cli import app

    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "FAL_KEY" in res.output and len(res.output.strip().splitlines()) == 1


def test_dry_run_prints_costs_and_budget_refuses(tmp_path, env):
    from typer.testing import CliRunner

    from workbench.cli import app

    models = [{"name": "static"}, m("hedra-character-3"), m("fal-kling-2.1-standard-i2v"), m("replicate-wan-2.2-i2v-fast")]
    path = make_suite(tmp_path / "s", models, budget=0.3)
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--dry-run"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "4 of 4 jobs to run" in out and "talk / hedra-character-3 / seed 0" in out
    assert "fal-kling-2.1-standard-i2v" in out and "0.25 USD" in out and "local" in out
    assert "total" in out and "0.44 USD" in out and "OVER" in out and "nothing was run" in out
    assert env["hedra"].submissions == 0 and not (tmp_path / "run" / "results.jsonl").exists()
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "exceeds the suite's budget 0.30 USD" in res.output
    assert len(res.output.strip().splitlines()) == 1 and env["hedra"].submissions == 0


def test_keys_never_reach_any_file_or_output(tmp_path, env):
    """A distinctive key per provider; a run with W&B (offline) and the report; one provider error that
    echoes the key back: no file under the run folder, and nothing printed, holds any key."""
    hedra = env["hedra"]
    hedra.inject("POST", SUBMIT, 400, body={"error": {"code": "INVALID_ARGUMENT",
                                                      "message": f"bad request (authorization: Bearer {HEDRA_KEY})"}})
    cases = [{"id": "talk", "image": "p.png", "audio": "a.wav", "prompt": "hello"},
             {"id": "talk2", "image": "p.png", "audio": "a.wav", "prompt": "hello again"}]
    models = [m("hedra-character-3"), m("fal-kling-2.1-standard-i2v"), m("replicate-wan-2.2-i2v-fast")]
    path = make_suite(tmp_path / "s", models, cases=cases, tracking={"wandb": True, "mode": "offline", "html_report": True})
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "workbench", "run", str(path),
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "WORKBENCH_DEBUG": "1"}, timeout=240)
    text = proc.stdout + proc.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and sum(r["status"] == "ok" for r in recs) == 5, text[-2000:]
    failed = [r for r in recs if r["status"] != "ok"][0]
    assert "Bearer ***" in failed["error"]
    secrets = [HEDRA_KEY, FAL_KEY, REP_KEY, *FAL_KEY.split(":")]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "suite.json" for p in files) and any("wandb" in str(p) for p in files)
    for p in files:
        data = p.read_bytes()
        for s in secrets:
            assert s.encode() not in data, f"{s[:6]}... found in {p}"
    for s in secrets:
        assert s not in text


def test_kill_9_while_polling_then_rerun_submits_once(tmp_path, env):
    """`workbench run` in a subprocess, killed -9 while every provider holds its job 'processing';
    the re-run resumes each job by polling: exactly one submission per job."""
    for f in env.values():
        f.hold.set()
    cases = [{"id": "talk", "image": "p.png", "audio": "a.wav", "prompt": "hello"}]
    models = [m("hedra-character-3"), m("fal-kling-2.1-standard-i2v"), m("replicate-wan-2.2-i2v-fast"),
              {"name": "static"}]
    path = make_suite(tmp_path / "s", models, cases=cases)
    out = tmp_path / "run"
    # one process per provider job: run each model's job in its own subprocess so all three are polling
    procs = []
    for i in range(3):
        procs.append(subprocess.Popen([sys.executable, "-m", "workbench", "run", str(path), "--out", str(out),
                                       "--shard", "0/1"], cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 90
        while sum(f.submissions for f in env.values()) < i + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sum(f.submissions for f in env.values()) == i + 1, "the run did not submit"
        time.sleep(0.3)  # now polling
    for p in procs:
        assert p.poll() is None
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert len(list((out / "claims").glob("*.remote.json"))) == 3
    for f in env.values():
        f.release()
    recs = by_model(run(path, out))
    assert all(r["status"] == "ok" for r in recs.values()), {k: r["error"] for k, r in recs.items()}
    assert [f.submissions for f in env.values()] == [1, 1, 1]
    assert all(recs[k]["remote"]["resumed"] for k in recs if k != "static")


def test_providers_check_and_models_json(env, monkeypatch):
    from typer.testing import CliRunner

    from workbench.cli import app

    monkeypatch.delenv("REPLICATE_API_TOKEN")
    res = CliRunner().invoke(app, ["providers", "check", "--json"])
    assert res.exit_code == 0
    rows = {r["provider"]: r for r in json.loads(res.stdout)}
    assert {"hedra", "fal", "replicate"} <= set(rows)
    assert rows["hedra"]["key_present"] and rows["hedra"]["key_env"] == "HEDRA_API_KEY"
    assert not rows["replicate"]["key_present"] and rows["replicate"]["key_env"] == "REPLICATE_API_TOKEN"
    assert rows["fal"]["base_url"] == env["fal"].url and "fal-kling-2.1-standard-i2v" in rows["fal"]["models"]
    assert HEDRA_KEY not in res.stdout and FAL_KEY not in res.stdout
    res = CliRunner().invoke(app, ["models", "--json"])
    hosted = {r["name"]: r for r in json.loads(res.stdout) if r.get("hosted")}
    assert hosted["hedra-character-3"]["task"] == "audio-to-video" and hosted["hedra-character-3"]["key_present"]
    assert hosted["replicate-wan-2.2-i2v-fast"]["weights_available"] is False
    assert hosted["fal-kling-2.1-standard-i2v"]["price"]["unit"] == "second"
    assert hosted["fal-kling-2.1-standard-i2v"]["estimate_default"] == 0.25


def test_run_options_do_not_change_the_clip_id(tmp_path, env):
    a = make_suite(tmp_path / "a", [m("hedra-character-3", timeout_s=5)])
    b = make_suite(tmp_path / "b", [m("hedra-character-3", timeout_s=500, poll_s=3)])
    ja, jb = Runner(load_suite(a), tmp_path / "ra").jobs[0], Runner(load_suite(b), tmp_path / "rb").jobs[0]
    assert ja.clip_id == jb.clip_id and ja.options != jb.options


def test_studio_marks_hosted_models_and_shows_the_cost_before_run(tmp_path, monkeypatch):
    from workbench.ui import Studio

    monkeypatch.delenv("FAL_KEY", raising=False)
    monkeypatch.setenv("HEDRA_API_KEY", HEDRA_KEY)
    gen = Studio(runs=tmp_path / "runs").generate
    gen.task.value = "image-to-video"
    labels = dict((v, k) for k, v in gen.model.options)
    assert labels["fal-kling-2.1-standard-i2v"].endswith("fal (hosted), \u2717 key missing")
    assert labels["hedra-kling-2.1-master"].endswith("Hedra (hosted), \u2713 key set")
    gen.model.value = "fal-kling-2.1-standard-i2v"
    assert "FAL_KEY" in gen.model_info.value and "missing" in gen.model_info.value
    assert any("set FAL_KEY" in p for p in gen.problems()) and gen.run_btn.disabled
    gen.seeds.value = "0, 1"
    gen.form.set_value("duration", 10.0)
    est = gen.cost_estimate()
    assert est == {"per_clip": 0.5, "clips": 2, "total": 1.0, "currency": "USD", "rule": est["rule"]}
    assert "estimated cost: <b>1.00 USD</b>" in gen.run_note.value
    assert HEDRA_KEY not in gen.model_info.value + gen.run_note.value


def test_hosted_i2v_on_audio_cases_says_lipsync_does_not_apply_and_can_be_left_out(tmp_path, env):
    """Kling on fal never hears a case's speech: the dry run says so (billed, audio unused), the record
    says lip-sync does not apply, and `unheard_audio: skip` leaves those jobs out (the talking head stays)."""
    from typer.testing import CliRunner

    from workbench.cli import app

    models = [m("fal-kling-2.1-standard-i2v"), m("hedra-character-3")]
    path = make_suite(tmp_path / "s", models)
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--dry-run"])
    assert res.exit_code == 0, res.output
    notes = [x for x in res.output.splitlines() if x.startswith("lip-sync not applicable")]
    assert len(notes) == 1 and "fal-kling-2.1-standard-i2v" in notes[0] and "billed" in notes[0], res.output
    recs = by_model(run(path, tmp_path / "run"))
    assert any("lip-sync not applicable" in w for w in recs["fal-kling-2.1-standard-i2v"]["warnings"])
    assert not any("lip-sync not applicable" in w for w in recs["hedra-character-3"]["warnings"])
    skip = make_suite(tmp_path / "s2", models, unheard_audio="skip")
    runner = Runner(load_suite(skip), tmp_path / "run2")
    assert [j.model.name for j in runner.jobs] == ["hedra-character-3"]
    assert any("fal-kling-2.1-standard-i2v takes no driving audio" in w for w in runner.skipped)
    res = CliRunner().invoke(app, ["run", str(skip), "--out", str(tmp_path / "run2"), "--dry-run"])
    assert not any(x.startswith("lip-sync not applicable") for x in res.output.splitlines())
    assert "skipped: fal-kling-2.1-standard-i2v takes no driving audio" in res.output
