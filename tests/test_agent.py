"""The agent: routing with reasons, briefs -> plans by rules (+ a pluggable planner LM), running a
plan, and the successive-halving refine loop over real baseline runs."""
from __future__ import annotations

import json

import pytest

from workbench.store import RunStore
from workbench.workflow.agent import (Inputs, PlanError, TransformersPlannerLM, parse_json_object, plan_brief,
                                      refine, route, run_plan)
from workbench.workflow.bestofn import Objective


@pytest.fixture(scope="module")
def data(repo_root):
    return repo_root / "data"


def names(routes, usable=True):
    """Usable models in rank order (without the test generators conftest registers)."""
    return [r.model for r in routes if r.usable == usable and not r.model.startswith("test-")]


def test_route_talking_head_for_a_face_with_speech(data):
    inputs = Inputs.from_paths(data / "images/portrait.png", data / "audio/hello.wav", "she says hello")
    assert inputs.has_face is True
    routes = route(inputs, gpu=False)
    assert names(routes)[:3] == ["puppet", "kenburns", "static"]
    assert any("talking-head" in why for why in routes[0].reasons)
    learned = [r for r in routes if r.model == "svd"][0]
    assert not learned.available and any("not on this machine" in w for w in learned.reasons)
    assert any("needs a GPU" in w for w in learned.reasons)


def test_route_without_audio_or_face(data):
    routes = route(Inputs.from_paths(data / "images/product.png", prompt="a cup of coffee"), gpu=False)
    assert names(routes)[:2] == ["kenburns", "static"]
    puppet = [r for r in routes if r.model == "puppet"][0]
    assert not puppet.fits and "needs audio" in puppet.reasons[0]
    # audio but no face: the talking head does not fit
    routes = route(Inputs.from_paths(data / "images/landscape.png", data / "audio/hello.wav"), gpu=False)
    puppet = [r for r in routes if r.model == "puppet"][0]
    assert not puppet.fits and any("no face" in w for w in puppet.reasons)
    # a prompt alone: only text-to-video models fit (none usable here), image models do not
    routes = route(Inputs(prompt="a red fox in snow"), gpu=False)
    assert not names(routes) and all(r.task == "text-to-video" for r in routes if r.fits)


def test_route_prefers_a_learned_model_with_weights_and_gpu(data, monkeypatch):
    from workbench.models import get_generator

    svd = get_generator("svd")
    monkeypatch.setattr(svd, "weights_available", classmethod(lambda cls: True))
    inputs = Inputs.from_paths(data / "images/product.png")
    assert names(route(inputs, gpu=True))[0] == "svd"
    assert "svd" not in names(route(inputs, gpu=False))  # same weights, no GPU: not usable


def test_plan_product_brief(data):
    p = plan_brief("a product shot of this bottle, slow turn, 4 seconds", image=data / "images/product.png", gpu=False)
    assert (p.task, p.model) == ("image-to-video", "kenburns")
    assert p.params["seconds"] == 4.0 and p.params["zoom"] < 1.15  # slow: a smaller move than the default
    assert "4 seconds" not in p.prompt and "bottle" in p.prompt
    assert p.speech is None and p.planner == "rules"
    assert any("4 s" in r for r in p.reasons) and p.routes[0]["model"] == "kenburns"
    still = plan_brief("a still shot of the cup, 2 s", image=data / "images/product.png", gpu=False)
    assert still.model == "static" and still.params == {"seconds": 2.0}


def test_plan_talking_brief_with_speech_in_german(data):
    p = plan_brief('the astronaut says "Hallo aus dem All" in German', image=data / "images/portrait.png", gpu=False)
    assert (p.task, p.model) == ("audio-to-video", "puppet")
    assert p.speech == {"text": "Hallo aus dem All", "voice": "de"}
    assert "Hallo" not in p.prompt and "German" not in p.prompt
    with_audio = plan_brief("she talks", image=data / "images/portrait.png", audio=data / "audio/hello.wav", gpu=False)
    assert with_audio.model == "puppet" and with_audio.audio.endswith("hello.wav") and with_audio.speech is None


def test_plan_errors(data):
    with pytest.raises(PlanError, match="brief is empty"):
        plan_brief("  ")
    with pytest.raises(PlanError, match="needs a text-to-video model") as e:
        plan_brief("a fox running in the snow", gpu=False)
    msg = str(e.value)  # the real cause: no text-to-video weights here (not "give an image")
    assert "wan2.1-t2v-1.3b" in msg and "weights are not on this machine" in msg and "workbench weights fetch" in msg
    assert "\n" not in msg


def test_route_hosted_models_need_their_key(data, monkeypatch):
    from workbench.models import get_generator

    inputs = Inputs.from_paths(data / "images/portrait.png", data / "audio/hello.wav", "she says hello")
    hedra = get_generator("hedra-character-3")
    key = hedra.provider_info().key_env
    monkeypatch.delenv(key, raising=False)
    r = [x for x in route(inputs, gpu=False) if x.model == "hedra-character-3"][0]
    assert not r.usable and any(key in w and "not set" in w for w in r.reasons)
    monkeypatch.setenv(key, "test-key")
    r = [x for x in route(inputs, gpu=False) if x.model == "hedra-character-3"][0]
    assert r.usable and any("billed" in w for w in r.reasons)


class ScriptedLM:
    """A planner LM test double: returns a fixed proposal (the interface, not a model)."""

    def __init__(self, proposal, name="scripted"):
        self.proposal, self.name, self.seen = proposal, name, None

    def propose(self, brief, context):
        self.seen = context
        if isinstance(self.proposal, Exception):
            raise self.proposal
        return self.proposal


def test_planner_lm_proposals_are_checked(data):
    img = data / "images/product.png"
    lm = ScriptedLM({"model": "static", "prompt": "a cup, studio light", "params": {"seconds": 1.5},
                     "speech": {"text": "Fresh coffee", "voice": "fr-fr"}})
    p = plan_brief("a cup of coffee", image=img, lm=lm, gpu=False)
    assert p.model == "static" and p.prompt == "a cup, studio light" and p.params["seconds"] == 1.5
    assert p.planner == "rules+scripted" and "kenburns" in lm.seen["usable_models"]
    assert p.speech == {"text": "Fresh coffee", "voice": "fr-fr"}
    bad = plan_brief("a cup of coffee", image=img, gpu=False,
                     lm=ScriptedLM({"model": "svd", "params": {"warp": 9}}))
    assert bad.model == "kenburns" and "seconds" not in bad.params
    assert any("cannot run here" in r for r in bad.reasons) and any("bad parameters" in r for r in bad.reasons)
    broken = plan_brief("a cup of coffee", image=img, gpu=False, lm=ScriptedLM(RuntimeError("oom")))
    assert broken.model == "kenburns" and any("failed (RuntimeError: oom)" in r for r in broken.reasons)


def test_transformers_planner_needs_local_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_PLANNER_LM", raising=False)
    with pytest.raises(PlanError, match="no planner language model"):
        TransformersPlannerLM()
    with pytest.raises(PlanError, match="config.json missing"):
        TransformersPlannerLM(tmp_path)
    assert parse_json_object('Sure! {"model": "kenburns", "params": {"zoom": 1.1}} done') == {
        "model": "kenburns", "params": {"zoom": 1.1}}
    with pytest.raises(ValueError):
        parse_json_object("no json {here")


def test_run_plan_makes_records(data, tmp_path):
    p = plan_brief("a slow zoom in on the cup, 0.4 seconds", image=data / "images/product.png", gpu=False)
    p.params.update(width=64, height=64, fps=10)
    records = run_plan(p, tmp_path / "run", metrics=["temporal_flicker"])
    assert len(records) == 1 and records[0]["status"] == "ok" and records[0]["model"] == "kenburns"
    assert records[0]["params"]["direction"] == "in" and records[0]["clip"]["frames"] == 4
    assert (tmp_path / "run" / "report.html").is_file()  # --run writes the report, as `workbench run` does


def test_plan_is_saved_as_a_suite_that_loads_and_runs(data, tmp_path):
    """A plan's suite.yaml has name, cases, models, seeds and metrics; load_suite accepts it (from any
    working folder: the inputs are absolute) and a Runner runs it into its own folder."""
    import os

    import yaml

    from workbench.experiment import Runner
    from workbench.suite import load_suite
    from workbench.workflow.agent import save_suite

    p = plan_brief('the astronaut says "Hallo aus dem All" in German', image=data / "images/portrait.png", gpu=False)
    p.params.update(size=96, fps=10)
    path = save_suite(p.to_suite(seeds=[0, 1]), tmp_path / "plan")
    data_ = yaml.safe_load(path.read_text())
    assert {"name", "cases", "models", "seeds", "metrics"} <= set(data_)
    assert data_["cases"][0]["text"] == "Hallo aus dem All" and data_["cases"][0]["voice"] == "de"
    assert "lipsync" in data_["metrics"] and "identity" in data_["metrics"] and data_["seeds"] == [0, 1]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        suite = load_suite(path)
    finally:
        os.chdir(cwd)
    assert suite.output_dir() == path.parent.resolve()
    suite.metrics = ["temporal_flicker"]
    records = Runner(suite).run_all()
    assert [r["status"] for r in records] == ["ok", "ok"] and records[0]["workflow"]["speech"]["voice"] == "espeak-ng:de"
    with pytest.raises(PlanError, match="unknown parameter"):  # a suite that would be refused is not written
        bad = p.to_suite()
        bad["models"][0]["params"]["zom"] = 1
        save_suite(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_plan_prompt_is_enhanced_for_a_prompt_reading_model(data, monkeypatch):
    """With a learned model chosen, the plan's prompt is written for its family (Wan: its negative)."""
    from workbench.models import get_generator
    from workbench.models.families import _WAN_NEG

    wan = get_generator("wan2.1-i2v-480p")
    monkeypatch.setattr(wan, "weights_available", classmethod(lambda cls: True))
    monkeypatch.delenv("WORKBENCH_PROMPT_LM", raising=False)
    p = plan_brief("a cup of coffee, slow turn", image=data / "images/product.png", gpu=True)
    assert p.model == "wan2.1-i2v-480p" and p.prompt_source == "template:wan"
    assert p.prompt_original == "a cup of coffee, slow turn" and p.prompt.startswith("A cup of coffee, slow turn.")
    assert p.negative_prompt == _WAN_NEG and p.to_suite()["cases"][0]["negative_prompt"] == _WAN_NEG
    plain = plan_brief("a cup of coffee, slow turn", image=data / "images/product.png", gpu=True, enhance=False)
    assert plain.prompt == "a cup of coffee, slow turn" and plain.prompt_source == "brief"


def test_refine_successive_halving_within_budget(data, tmp_path):
    case = {"id": "cup", "image": str(data / "images/product.png")}
    base = {"width": 48, "height": 48, "fps": 10, "seconds": 0.4}
    obj = Objective.parse({"temporal_flicker": 1.0})
    res = refine(case, "kenburns", obj, budget=6, out_dir=tmp_path / "r", grid={"zoom": [1.05, 1.6]},
                 base_params=base, metrics=["temporal_flicker"])
    assert res.spent == 6 and res.stopped == "budget spent"
    stored = RunStore(tmp_path / "r").latest()
    assert len(stored) == 6 and all(r["status"] == "ok" for r in stored.values())  # every step a record
    values = {jid: obj(r) for jid, r in stored.items()}
    assert res.best["job_id"] == max(values, key=values.get) and res.best_objective == max(values.values())
    first = res.rounds[0]
    assert len(first["arms"]) == 2 and len(first["kept"]) == 1
    small_zoom = [a for a in first["arms"] if a["params"]["zoom"] == 1.05][0]
    assert first["kept"] == [small_zoom["label"]]  # the gentler move flickers less
    assert [len(r["arms"]) for r in res.rounds] == [2, 1, 1]
    assert [len(r["seeds"]) for r in res.rounds] == [1, 2, 2]
    log = json.loads((tmp_path / "r" / "refine.json").read_text())
    assert log["spent"] == 6 and log["formula"] == "1*temporal_flicker" and len(log["rounds"]) == 3


def test_refine_stops_when_the_objective_stops_improving(data, tmp_path):
    case = {"id": "cup", "image": str(data / "images/product.png")}
    base = {"width": 48, "height": 48, "fps": 10, "seconds": 0.4, "direction": "in", "pan": 0.0}  # seed-independent
    res = refine(case, "kenburns", {"temporal_flicker": 1.0}, budget=20, out_dir=tmp_path / "r", base_params=base,
                 metrics=["temporal_flicker"], patience=2)
    assert res.stopped == "no improvement for 2 round(s)" and res.spent == 1 + 2 + 4 < 20
    with pytest.raises(PlanError, match="below one round"):
        refine(case, "kenburns", {"temporal_flicker": 1.0}, budget=1, out_dir=tmp_path / "x",
               grid={"zoom": [1.1, 1.2]}, base_params=base)
    with pytest.raises(PlanError, match="unknown parameter"):
        refine(case, "kenburns", {"temporal_flicker": 1.0}, budget=4, out_dir=tmp_path / "x", grid={"zooom": [1.1]})


def test_cli_plan(data, tmp_path):
    from typer.testing import CliRunner

    from workbench.cli import app

    r = CliRunner().invoke(app, ["plan", "a product shot of this cup, slow turn, 4 seconds", "--image",
                                 str(data / "images/product.png"), "--json"])
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)
    assert p["model"] == "kenburns" and p["params"]["seconds"] == 4.0 and p["task"] == "image-to-video"
    r = CliRunner().invoke(app, ["plan", "a still shot, 0.2 s", "--image", str(data / "images/product.png"),
                                 "--run", "--out", str(tmp_path / "run"), "--seeds", "0-1"])
    assert r.exit_code == 0, r.output
    assert "model:  static" in r.stdout and "2 jobs done, 0 failed" in r.stdout
    assert (tmp_path / "run" / "report.html").is_file() and "report: " in r.stdout
    assert len(RunStore(tmp_path / "run").latest()) == 2
    # the saved suite is what `workbench run` accepts: running it again does nothing new
    r = CliRunner().invoke(app, ["run", str(tmp_path / "run" / "suite.yaml")])
    assert r.exit_code == 0 and "0 jobs done" in r.stdout, r.output
    r = CliRunner().invoke(app, ["plan", "a fox in the snow", "--out", str(tmp_path / "fox")])
    assert r.exit_code == 2 and "text-to-video" in r.output and "weights" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "fox").exists()
    r = CliRunner().invoke(app, ["plan", "a cup", "--image", str(data / "images/product.png"), "--seeds", "2-1"])
    assert r.exit_code == 2 and "runs backwards" in r.output
