"""Keys never leave the environment (issue 22, section 2): a suite that holds a key set in the environment
is refused naming the field; nothing the workbench writes (snapshot, record, W&B config) holds a key; a
validation error never echoes a value that looks like a key. One masking function serves everywhere."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from workbench.cli import app
from workbench.suite import Suite, SuiteError, load_suite, save_snapshot

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-proj-4fA9kQ2mX7pL0zR8vT3wY6"


def suite_file(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "data" / "images" / "product.png", folder / "p.png")
    spec = {"name": "keys", "cases": [{"id": "a", "image": "p.png"}], "models": ["static"],
            "metrics": ["temporal_flicker"], "tracking": {"html_report": False}, **fields}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("where", ["description", "prompt", "options"])
def test_a_suite_holding_a_key_is_refused_naming_the_field(tmp_path, monkeypatch, where):
    monkeypatch.setenv("FAL_KEY", KEY)
    if where == "description":
        path = suite_file(tmp_path / "s", description=f"my fal key is {KEY}")
        field = "description"
    elif where == "prompt":
        path = suite_file(tmp_path / "s", cases=[{"id": "a", "image": "p.png", "prompt": f"x {KEY}"}])
        field = "cases.0.prompt"
    else:
        path = suite_file(tmp_path / "s", models=[{"name": "static", "options": {"token": KEY}}])
        field = "models.0.options.token"
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    msg = str(e.value)
    assert field in msg and "$FAL_KEY" in msg and KEY not in msg and "***" not in msg
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and field in res.output and KEY not in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="holds an API key"):  # the Studio and generate build suites in Python
        Suite.model_validate(yaml.safe_load(path.read_text()))


def test_a_key_shaped_value_is_never_echoed_in_a_validation_error(tmp_path, monkeypatch):
    for env in ("FAL_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(env, raising=False)
    path = suite_file(tmp_path / "s", models=[{"name": "fal-kling-2.1-standard-i2v", "options": {"timeout_s": KEY}}])
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    assert "timeout_s" in str(e.value) and KEY not in str(e.value)
    res = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert res.exit_code == 2 and "timeout_s" in res.output and KEY not in res.output


def test_snapshot_record_and_wandb_config_mask_keys(tmp_path, monkeypatch):
    """A key that reaches a suite object or a record another way (set after the suite was loaded, an
    Element's prompt snippet): the snapshot, results.jsonl and the W&B config hold *** instead."""
    from workbench.store import RunStore
    from workbench.tracking import _masked

    suite = load_suite(suite_file(tmp_path / "s", description=f"note {KEY}"))  # no key in the env yet: loads
    monkeypatch.setenv("REPLICATE_API_TOKEN", KEY)
    run = tmp_path / "run"
    run.mkdir()
    snap = save_snapshot(suite, run).read_text()
    assert KEY not in snap and "note ***" in snap
    store = RunStore(run)
    store.append({"job_id": "j", "case": "a", "model": "static", "prompt": f"say {KEY}", "status": "ok"})
    text = store.results.read_text()
    assert KEY not in text and json.loads(text)["prompt"] == "say ***"
    config = _masked({"suite": suite.model_dump(mode="json"), "nested": [{"k": KEY}]})
    assert KEY not in json.dumps(config) and config["nested"][0]["k"] == "***"


def test_one_masking_function_serves_providers_and_the_workbench(monkeypatch):
    from workbench import redact
    from workbench.models.hosted import keys

    assert keys.scrub is redact.scrub and keys.secret_values is redact.secret_values
    monkeypatch.setenv("HF_TOKEN", "hf_4fA9kQ2mX7pL0zR8vT3wY6")  # any key variable, not only providers'
    assert redact.scrub("token hf_4fA9kQ2mX7pL0zR8vT3wY6 here") == "token *** here"
    monkeypatch.setenv("WORKBENCH_DEBUG", "1")  # not a key variable: never masked
    assert redact.scrub("debug 1") == "debug 1"
    assert redact.looks_secret(KEY) and not redact.looks_secret("hunyuanvideo-i2v-720p-2025")
    assert not redact.looks_secret("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers")


def test_the_report_never_shows_a_key_written_before_it_was_set(tmp_path, monkeypatch):
    """results.jsonl written while the key was not yet known (or by another tool) holds it in a prompt and
    an error: the report, written once the key is set, shows *** in its place."""
    from workbench.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    rec = {"job_id": "j1", "case": "a", "model": "static", "seed": 0, "prompt": f"say {KEY}", "status": "failed",
           "error": f"HTTP 401 for token {KEY}", "scores": {}}
    (run / "results.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "job_id": "j2", "model": "b"}) + "\n")
    monkeypatch.setenv("REPLICATE_API_TOKEN", KEY)
    page = write_report(run).read_text()
    assert KEY not in page and "say ***" in page
