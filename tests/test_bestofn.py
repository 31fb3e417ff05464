"""Best-of-N: objectives with directions, ranking per request, exact expected best-of-N, the gain
curve with bootstrap CIs, the run folder's bestofn.json, and a real run of a baseline over seeds."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from workbench.workflow.bestofn import (Objective, ObjectiveError, best_records, expected_best_of, gain_curve,
                                        load_rankings, rank, write_rankings)


def rec(case, model, seed, scores, params=None, status="ok"):
    return {"job_id": f"{case}-{model}-{seed}-{json.dumps(params, sort_keys=True)}", "case": case, "model": model,
            "seed": seed, "params": params or {}, "scores": scores, "status": status,
            "error": None if status == "ok" else "boom"}


def test_objective_directions_from_the_registry_and_explicit():
    obj = Objective.parse({"identity_similarity": 1.0, "warp_error": 2.0,
                           "sync_offset": {"weight": 0.5, "direction": "zero"}})
    assert [t.direction for t in obj.terms] == ["higher", "lower", "zero"]
    r = rec("a", "m", 0, {"identity_similarity": 0.9, "warp_error": 0.01, "sync_offset": -2})
    assert obj(r) == pytest.approx(0.9 - 2 * 0.01 - 0.5 * 2)
    assert obj.describe() == "1*identity_similarity - 2*warp_error - 0.5*|sync_offset|"
    assert obj(rec("a", "m", 0, {"identity_similarity": 0.9, "warp_error": None, "sync_offset": 0})) is None
    assert obj(rec("a", "m", 0, {"identity_similarity": 0.9}, status="error")) is None
    assert Objective.parse(obj.to_dict()) == obj


@pytest.mark.parametrize("spec, message", [
    ({"sync_offset": 1}, "no better direction.*direction: zero"),
    ({"made_up": 1}, "unknown score 'made_up'"),
    ({"warp_error": -1}, "positive number"),
    ({"warp_error": {"weight": 1, "direction": "down"}}, "direction must be one of"),
    ({"warp_error": {"wieght": 1}}, "unknown key"),
    ({}, "mapping of score names"),
])
def test_bad_objectives(spec, message):
    with pytest.raises(ObjectiveError, match=message):
        Objective.parse(spec)


def test_rank_groups_by_request_and_keeps_top_k():
    obj = {"temporal_flicker": 1.0}
    records = [rec("c1", "m", s, {"temporal_flicker": v}) for s, v in enumerate([0.5, 0.9, 0.7, 0.9])]
    records += [rec("c1", "m", s, {"temporal_flicker": v}, params={"zoom": 1.3}) for s, v in enumerate([0.2, 0.1])]
    records += [rec("c1", "m", 9, {"temporal_flicker": None}), rec("c1", "m", 8, {}, status="error")]
    rankings = rank(records, obj, keep=2)
    assert len(rankings) == 2
    first, second = rankings
    assert [row["seed"] for row in first.ranked] == [1, 3, 2, 0]  # ties broken by seed
    assert [row["rank"] for row in first.ranked] == [1, 2, 3, 4]
    assert first.kept == [records[1]["job_id"], records[3]["job_id"]]
    assert {row["seed"] for row in first.unscored} == {8, 9}
    assert "boom" in [u["why"] for u in first.unscored if u["seed"] == 8][0]
    assert second.params == {"zoom": 1.3} and second.best["seed"] == 0
    assert [r["seed"] for r in best_records(records, obj, keep=1)] == [1, 0]


def test_expected_best_of_matches_enumeration():
    rng = np.random.default_rng(3)
    values = rng.normal(size=7)
    for n in range(1, 8):
        brute = np.mean([max(c) for c in itertools.combinations(values, n)])
        assert expected_best_of(values, n) == pytest.approx(brute)
    assert expected_best_of(values, 1) == pytest.approx(values.mean())
    assert expected_best_of(values, 7) == pytest.approx(values.max())
    with pytest.raises(ValueError):
        expected_best_of(values, 8)


def test_gain_curve_grows_with_n_and_carries_a_ci():
    rng = np.random.default_rng(0)
    records = []
    for case in ("a", "b", "c", "d"):
        for model in ("m1", "m2"):
            for seed in range(6):
                records.append(rec(case, model, seed, {"temporal_flicker": float(rng.normal(0.5, 0.1))}))
    curve = gain_curve(records, {"temporal_flicker": 1.0})
    assert [p.n for p in curve] == [1, 2, 3, 4, 5, 6]
    assert curve[0].mean_gain == pytest.approx(0.0)
    gains = [p.mean_gain for p in curve]
    assert all(b > a for a, b in zip(gains, gains[1:]))
    for p in curve[1:]:
        assert p.lo < p.mean_gain < p.hi and p.requests == 8 and p.cases == 4
    # the gain is the exact expectation: check one request by hand
    vals = [r["scores"]["temporal_flicker"] for r in records if r["case"] == "a" and r["model"] == "m1"]
    one = gain_curve([r for r in records if r["case"] == "a" and r["model"] == "m1"], {"temporal_flicker": 1}, ns=[3])
    assert one[0].mean_gain == pytest.approx(expected_best_of(vals, 3) - np.mean(vals))
    # samples that never differ: more samples buy nothing
    flat = [rec("a", "m", s, {"temporal_flicker": 0.5}) for s in range(4)]
    assert all(p.mean_gain == 0 for p in gain_curve(flat, {"temporal_flicker": 1}))
    # a request with 3 samples sits out N = 4
    short = records + [rec("e", "m1", s, {"temporal_flicker": 0.4 + s / 10}) for s in range(3)]
    by_n = {p.n: p for p in gain_curve(short, {"temporal_flicker": 1})}
    assert by_n[3].requests == 9 and by_n[4].requests == 8


def test_rankings_file(tmp_path):
    records = [rec("a", "m", s, {"temporal_flicker": v}) for s, v in enumerate([0.3, 0.8, 0.5])]
    path = write_rankings(tmp_path, records, {"temporal_flicker": 1}, keep=2, n=3)
    data = load_rankings(tmp_path)
    assert path.name == "bestofn.json" and data["keep"] == 2 and data["formula"] == "1*temporal_flicker"
    assert data["rankings"][0]["kept"] == [records[1]["job_id"], records[2]["job_id"]]
    assert [p["n"] for p in data["gain_curve"]] == [1, 2, 3]
    assert load_rankings(tmp_path / "none") is None


def test_best_of_n_over_a_real_baseline_run(tmp_path, repo_root):
    """kenburns on the portrait, 5 seeds (the seed picks the camera move): rank by an objective of
    real scores; the best seed's measured scores give the best objective, and best-of-N pays."""
    from workbench.experiment import Runner
    from workbench.suite import Suite

    suite = Suite.model_validate({
        "name": "bon", "cases": [{"id": "portrait", "image": str(repo_root / "data/images/portrait.png")}],
        "models": [{"name": "kenburns", "params": {"width": 96, "height": 96, "seconds": 0.6, "fps": 10}}],
        "seeds": [0, 1, 2, 3, 4], "metrics": ["temporal_flicker", "flow_magnitude"]})
    records = Runner(suite, tmp_path / "run").run_all()
    assert all(r["status"] == "ok" for r in records)
    obj = Objective.parse({"temporal_flicker": 1.0, "flow_magnitude": {"weight": 0.01, "direction": "lower"}})
    [ranking] = rank(records, obj, keep=2)
    values = {r["job_id"]: r["scores"]["temporal_flicker"] - 0.01 * r["scores"]["flow_magnitude"] for r in records}
    assert ranking.best["job_id"] == max(values, key=values.get)
    assert [row["objective"] for row in ranking.ranked] == pytest.approx(sorted(values.values(), reverse=True))
    curve = gain_curve(records, obj)
    assert curve[-1].mean_gain == pytest.approx(max(values.values()) - np.mean(list(values.values())))
    assert curve[-1].mean_gain > 0


# --------------------------------------------------------------------------------------------------
# the creative suite end to end: Element + speech in two languages + auto + best-of-N + composed reel
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def creative_env(tmp_path, monkeypatch, repo_root):
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (speech from text); run `make system-deps`")
    monkeypatch.setenv("WORKBENCH_ELEMENTS", str(tmp_path / "elements"))
    monkeypatch.setenv("WORKBENCH_SPEECH_CACHE", str(tmp_path / "speech"))
    from workbench.workflow.elements import ElementLibrary

    ElementLibrary().add("eileen", "character", [repo_root / "data/images/portrait.png"], voice="en-us",
                         prompt="an astronaut")
    return tmp_path


def test_creative_suite_end_to_end(creative_env, repo_root):
    from workbench.experiment import Runner
    from workbench.media import Clip
    from workbench.suite import load_suite

    suite = load_suite(repo_root / "evals/suites/creative.yaml")
    runner = Runner(suite, creative_env / "run")
    records = runner.run_all()
    assert len(records) == 6 and all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    assert {r["model"] for r in records} == {"auto"} and {r["model_name"] for r in records} == {"puppet"}
    assert "talking-head" in " ".join(records[0]["workflow"]["route"]["reasons"])
    # the Element: its portrait is the image (and the identity reference), its prompt joins the case's
    element_dir = repo_root / "data/elements/eileen"  # the suite's own `elements:` library
    assert all(r["inputs"]["image"]["path"].startswith(str(element_dir)) for r in records)
    assert all(r["workflow"]["element"]["name"] == "eileen" for r in records)
    # identity compares every frame with the Element's stored embedding, and the record says so
    assert {r["workflow"]["element"]["identity_reference"] for r in records} == {"stored embedding (dlib-resnet128)"}
    assert records[0]["prompt"] == "an astronaut in a white suit" and records[0]["scores"]["identity_similarity"] > 0.9
    # speech from text in two languages: different audio, each hashed into the job identity
    voices = {r["case"]: r["workflow"]["speech"]["voice"] for r in records}
    assert voices == {"eileen-en": "espeak-ng:en-us", "eileen-de": "espeak-ng:de"}
    audio_hash = {r["case"]: r["inputs"]["audio"]["sha256"] for r in records}
    assert audio_hash["eileen-en"] != audio_hash["eileen-de"]
    # best-of-3 per request, ranked by the objective stored in each record
    data = load_rankings(runner.store.root)
    assert len(data["rankings"]) == 2 and data["keep"] == 1 and data["n"] == 3
    for rk in data["rankings"]:
        mine = [r for r in records if r["case"] == rk["case"]]
        assert len(rk["ranked"]) == 3 and rk["kept"] == [max(mine, key=lambda r: r["objective"])["job_id"]]
    assert [p["n"] for p in data["gain_curve"]] == [1, 2, 3] and data["gain_curve"][2]["mean_gain"] >= 0
    # the composed reel: title + the best take of each language, crossfaded, sound in step
    log = json.loads((runner.store.root / "compose.json").read_text())
    assert log["error"] is None and log["jobs"] == [rk["kept"][0] for rk in data["rankings"]]
    reel = Clip.open(runner.store.root / "reel.mp4")
    takes = [Clip.open(runner.store.root / [r for r in records if r["job_id"] == j][0]["video"]) for j in log["jobs"]]
    expected = 25 + sum(t.num_frames for t in takes) - 2 * 5
    assert reel.num_frames == expected and reel.size == (160, 160) and reel.audio is not None
    # a second run does no new jobs (the speech comes from the cache, ids are stable)
    again = Runner(load_suite(repo_root / "evals/suites/creative.yaml"), creative_env / "run")
    assert again.pending() == [] and [j.id for j in again.jobs] == [j.id for j in runner.jobs]
    # the report shows what best-of-N bought: the gain per N with its CI, the curve, each request's keep
    import re

    from workbench.report import write_report

    page = write_report(runner.store.root).read_text()
    section = page[page.index('id="bestofn"'):page.index('id="clips"')]
    assert data["formula"] in section and 'alt="best-of-N gain over one sample' in section
    rows = re.findall(r"<tr><td>(\d)</td><td>([^<]*)</td>", section)
    assert [n for n, _ in rows] == ["1", "2", "3"] and rows[0][1] in ("0", "+0", "0.000")
    for rk in data["rankings"]:
        assert rk["kept"][0] in section


def test_creative_suite_validation(creative_env, tmp_path, repo_root):
    import yaml

    from workbench.experiment import expand_jobs
    from workbench.suite import SuiteError, load_suite

    base = yaml.safe_load((repo_root / "evals/suites/creative.yaml").read_text())
    base.pop("output")

    def load(**changes):
        data = {**base, "elements": str(repo_root / "data/elements"), **changes}
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_suite(path)

    with pytest.raises(SuiteError, match=r"cases.0.image: element 'nobody' not found"):
        load(cases=[{"id": "a", "image": "element:nobody", "text": "hi"}])
    with pytest.raises(SuiteError, match="either `audio:` or `text:`"):
        load(cases=[{"id": "a", "image": "element:eileen", "text": "hi", "audio": "x.wav"}])
    with pytest.raises(SuiteError, match="`voice:` needs `text:`"):
        load(cases=[{"id": "a", "image": "element:eileen", "voice": "de"}])
    with pytest.raises(SuiteError, match="cases.0.voice: unknown speech engine"):
        load(cases=[{"id": "a", "image": "element:eileen", "text": "hi", "voice": "nope:de"}])
    with pytest.raises(SuiteError, match="objective: uses lse_c, which `metrics:` does not compute"):
        load(objective={"lse_c": 1})
    with pytest.raises(SuiteError, match="rank by an objective"):
        load(objective=None)
    with pytest.raises(SuiteError, match="num_outputs 2 disagrees with best_of.n 3"):
        load(models=[{"name": "puppet", "num_outputs": 2}])
    with pytest.raises(SuiteError, match="compose.out"):
        load(compose={"out": "../reel.mp4"})
    # the spoken text is part of the job identity (through the wav's bytes); the same text is not
    one = [j.id for j in expand_jobs(load())]
    same = [j.id for j in expand_jobs(load())]
    changed = [j.id for j in expand_jobs(load(cases=[{**base["cases"][0], "text": "Goodbye!"}, base["cases"][1]]))]
    assert one == same and changed[:3] != one[:3] and changed[3:] == one[3:]
