"""The comparison a researcher trusts: current records only, runs joined on case and seed, motion-aware
rankings (a still clip never wins on consistency), ties, and every report fault one line (no traceback)."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from workbench.cli import app
from workbench.experiment import Runner
from workbench.ranking import MOTION_FLOOR, rank_all
from workbench.report import ReportError, build_context, write_report
from workbench.runset import current_records, load_runs
from workbench.suite import load_suite


def _record(case, model, seed, scores, suite="s", **extra):
    r = {"job_id": f"{suite}-{case}-{model}-{seed}", "suite": suite, "case": case, "model": model, "model_name": model,
         "seed": seed, "output": 0, "status": "ok", "scores": dict(scores), "backends": {k: "b" for k in scores},
         "inputs": {"image": {"path": f"/x/{case}.png", "sha256": f"sha-{case}"}}, "prompt": "",
         "video": None, "clip": {"fps": 10.0, "frames": 10, "width": 32, "height": 32}}
    r.update(extra)
    return r


def _write(run_dir: Path, records: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


def test_a_still_clip_never_wins_on_consistency():
    """static (flow ~0) is perfectly consistent; it is listed as still, not ranked, and the moving models are."""
    recs = []
    for case in range(3):
        for seed in range(2):
            recs.append(_record(f"c{case}", "static", seed, {"temporal_flicker": 1.0, "flow_magnitude": 0.003,
                                                              "dynamic_degree": 0.0}))
            recs.append(_record(f"c{case}", "mover", seed, {"temporal_flicker": 0.99, "flow_magnitude": 0.8,
                                                             "dynamic_degree": 1.0}))
            recs.append(_record(f"c{case}", "jitter", seed, {"temporal_flicker": 0.95, "flow_magnitude": 2.0,
                                                              "dynamic_degree": 1.0}))
    ctx = build_context(recs, Path("."))
    block = next(b for b in ctx["ranking"] if b["info"].name == "temporal_flicker")
    assert block["gated"] and [r["model"] for r in block["rows"]] == ["mover", "jitter"]
    assert block["excluded"][0]["model"] == "static" and "still" in block["excluded"][0]["why"]
    assert ctx["still_models"] == ["static"]
    summary = {row["model"]: row for row in ctx["summary_rows"]}
    tf = [i.name for i in ctx["metrics"]].index("temporal_flicker")
    assert not summary["static"]["cells"][tf]["best"] and summary["mover"]["cells"][tf]["best"]
    # dynamic_degree has no stillness reward: static is ranked there (last)
    dyn = next(b for b in ctx["ranking"] if b["info"].name == "dynamic_degree")
    assert not dyn["gated"] and dyn["rows"][-1]["model"] == "static"
    # in the grid, the still clip earns no star on flicker though its value is the highest
    panel = {c["model"]: c["panels"][0] for c in ctx["grid"][0]["cells"]}
    flick = {m: next(s for s in p["scores"] if s["name"] == "temporal_flicker") for m, p in panel.items()}
    assert not flick["static"]["best"] and flick["static"]["trivial"] and flick["mover"]["best"]
    assert ("still" in [m[0] for m in panel["static"]["marks"]])
    # the floor is the user's: with floor 0 nothing is still and static wins flicker, as the raw numbers say
    ctx0 = build_context(recs, Path("."), motion_floor=0.0)
    assert next(b for b in ctx0["ranking"] if b["info"].name == "temporal_flicker")["rows"][0]["model"] == "static"


def test_ties_as_shown_are_all_best_or_none():
    recs = [_record("a", m, 0, {"motion_smoothness": v, "flow_magnitude": 1.0})
            for m, v in (("x", 0.99712), ("y", 0.99704), ("z", 0.95))]
    ctx = build_context(recs, Path("."))
    rows = ctx["ranking"][0]["rows"]
    assert [(r["model"], r["rank"], r["is_best"]) for r in rows] == [("x", "1=", True), ("y", "1=", True), ("z", "3", False)]
    cells = {c["model"]: next(s for s in c["panels"][0]["scores"] if s["name"] == "motion_smoothness")["best"]
             for c in ctx["grid"][0]["cells"]}
    assert cells == {"x": True, "y": True, "z": False}
    all_equal = [_record("a", m, 0, {"motion_smoothness": 0.997, "flow_magnitude": 1.0}) for m in ("x", "y")]
    ctx = build_context(all_equal, Path("."))
    assert ctx["ranking"][0]["all_tied"] and not any(r["is_best"] for r in ctx["ranking"][0]["rows"])
    assert not any(s["best"] for c in ctx["grid"][0]["cells"] for s in c["panels"][0]["scores"])


def test_significance_needs_enough_cases():
    """8 pairs from 4 cases: a shift is visible but untestable; 8 cases: significant."""
    def recs(n_cases):
        out = []
        for c in range(n_cases):
            for s in range(2):
                out.append(_record(f"c{c}", "a", s, {"temporal_flicker": 0.99, "flow_magnitude": 1}))
                out.append(_record(f"c{c}", "b", s, {"temporal_flicker": 0.95 + 0.001 * c, "flow_magnitude": 1}))
        return out
    spec = {"temporal_flicker": (True, True, lambda v: f"{v:.3g}")}
    few = rank_all(recs(4), spec)[0].rows[1]
    assert few.pairs == 8 and few.cases == 4 and few.p is None and not few.significant
    many = rank_all(recs(8), spec)[0].rows[1]
    assert many.p == pytest.approx(2 / 2 ** 8) and many.significant


def test_no_worst_frame_for_a_score_without_direction():
    r = _record("a", "m", 0, {"flow_magnitude": 0.5, "temporal_flicker": 0.9},
                worst_frame={"flow_magnitude": 3, "temporal_flicker": 2})
    ctx = build_context([r, _record("a", "n", 0, {"flow_magnitude": 0.6, "temporal_flicker": 0.8})], Path("."))
    scores = {s["name"]: s for s in ctx["grid"][0]["cells"][0]["panels"][0]["scores"]}
    assert scores["flow_magnitude"]["worst"] == "" and scores["temporal_flicker"]["worst"].startswith("worst frame 2")


def test_partial_run_reports_without_a_traceback(tmp_path):
    """What kill -9 after 7 of 12 jobs leaves: some (case, model, seed) slots have no record."""
    recs = [_record(c, m, s, {"temporal_flicker": 0.9 + 0.01 * s, "flow_magnitude": 1.0})
            for c in ("a", "b") for m in ("x", "y", "z") for s in (0, 1)][:7]
    run = _write(tmp_path / "run", recs)
    out = write_report(run)
    page = re.sub(r"<script\b.*?</script>", "", out.read_text(), flags=re.S)  # the page as drawn, not the scripts
    # one row per (case, seed): a seed 0 and 1, b seed 0; b's models y and z have no job
    assert "no job" in page and page.count('class="caserow"') == 3
    r = CliRunner().invoke(app, ["report", str(run)])
    assert r.exit_code == 0, r.output


def test_report_faults_are_one_line(tmp_path):
    run = _write(tmp_path / "run", [_record("a", "x", 0, {"temporal_flicker": 0.9})])
    # results.jsonl is a directory
    odd = tmp_path / "odd"
    (odd / "results.jsonl").mkdir(parents=True)
    with pytest.raises(ReportError, match="not a regular file"):
        write_report(odd)
    # empty results
    empty = _write(tmp_path / "empty", [])
    with pytest.raises(ReportError, match="holds no records"):
        write_report(empty)
    # a read-only folder (root ignores permissions: simulate the OS error the way the kernel reports it)
    if os.geteuid() != 0:
        os.chmod(run, 0o555)
        try:
            with pytest.raises(ReportError, match="permission denied"):
                write_report(run)
        finally:
            os.chmod(run, 0o755)
    # a file where a run folder should be; a results file of garbage
    with pytest.raises(ReportError, match="is a file, not a run folder"):
        write_report(tmp_path / "file") if (tmp_path / "file").write_text("x") else None
    (odd / "results.jsonl").rmdir()
    (odd / "results.jsonl").write_text("garbage\n{not json\n")
    with pytest.raises(ReportError, match=r"holds no records \(2 lines are not a record\)"):
        write_report(odd)
    # --out is a file
    (tmp_path / "file").write_text("x")
    with pytest.raises(ReportError, match="is a file"):
        write_report(run, tmp_path / "file")
    for args in (["report", str(odd)], ["report", str(empty)], ["report", str(run), str(empty)],
                 ["report", str(tmp_path / "file")], ["report", str(tmp_path / "nowhere")]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output


def test_full_disk_leaves_no_part_file(tmp_path, monkeypatch):
    """ENOSPC while writing: one line, results untouched, no report.html.part left behind."""
    import errno
    import pathlib

    run = _write(tmp_path / "run", [_record("a", "x", 0, {"temporal_flicker": 0.9})])
    real = pathlib.Path.write_text

    def full(self, data, *a, **k):
        if self.name.endswith(".part"):
            real(self, data[:10], *a, **k)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data, *a, **k)

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    with pytest.raises(ReportError, match="disk is full"):
        write_report(run)
    assert sorted(p.name for p in run.iterdir()) == ["results.jsonl"]


def test_current_suite_only_and_what_was_left_out(tmp_path):
    """A real run; then a case is renamed and another case's image changes: the report shows the 12 jobs of
    the current suite (not 16) and says what it left out."""
    d = tmp_path
    y, x = np.mgrid[0:32, 0:32]
    for name, arr in (("a.png", x * 7), ("b.png", y * 7), ("b2.png", (x + y) * 4)):
        Image.fromarray(np.stack([arr, arr, 0 * x + 60], -1).astype(np.uint8)).save(d / name)
    spec = {"name": "cur", "output": "run", "metrics": ["temporal_flicker", "dynamic_degree"], "seeds": [0, 1],
            "cases": [{"id": "a", "image": "a.png"}, {"id": "b", "image": "b.png"}, {"id": "c", "image": "a.png",
                                                                                     "prompt": "other"}],
            "models": [{"name": "test-drift", "label": "d1"}, {"name": "test-drift", "label": "d2",
                                                               "params": {"num_frames": 8}}]}
    (d / "suite.yaml").write_text(yaml.safe_dump(spec))
    Runner(load_suite(d / "suite.yaml")).run_all()
    spec["cases"][0]["id"] = "a-renamed"
    spec["cases"][1]["image"] = "b2.png"
    (d / "suite.yaml").write_text(yaml.safe_dump(spec))
    runner = Runner(load_suite(d / "suite.yaml"))
    runner.run_all()
    run = runner.store.root
    lines = (run / "results.jsonl").read_text().splitlines()
    assert len(lines) == 12 + 8  # 12 jobs, then 4 renamed + 4 with the new image
    cur = current_records(run)
    assert len(cur.records) == 12 and {r["case"] for r in cur.records} == {"a-renamed", "b", "c"}
    assert any("case a:" in n or "case a " in n for n in cur.left_out), cur.left_out
    assert any("superseded" in n and n.startswith("4 ") for n in cur.left_out), cur.left_out
    html = write_report(run).read_text()
    assert "12 jobs" in html and 'id="left-out"' in html and "superseded" in html
    # a Studio folder gathers one small suite per Run: the jobs of earlier Runs stay (only superseded slots go)
    (run / "studio").mkdir()
    studio = current_records(run)
    assert len(studio.records) == 16 and {r["case"] for r in studio.records} == {"a", "a-renamed", "b", "c"}


def test_runs_join_on_case_and_seed(tmp_path):
    """Model A today and model B tomorrow on the same inputs: one row, a paired difference; a case id that
    names other inputs elsewhere is not merged."""
    mk = lambda m, v, case="p", sha=None: [_record(case, m, s, {"temporal_flicker": v + 0.001 * s, "flow_magnitude": 1},
                                                   suite=m, inputs={"image": {"path": "x", "sha256": sha or "same"}})
                                           for s in (0, 1)]
    day1 = _write(tmp_path / "runs" / "day1", mk("A", 0.95))
    day2 = _write(tmp_path / "runs" / "day2", mk("B", 0.90) + mk("B", 0.5, case="q", sha="other-q"))
    _write(tmp_path / "runs" / "day3", mk("C", 0.8, case="p", sha="different-image"))
    (day1 / "selections" / "sub").mkdir(parents=True)
    _write(day1 / "selections" / "sub", mk("A", 0.1))  # a selection inside a run is not another run
    assert write_report(tmp_path / "runs") == tmp_path / "runs" / "report.html"  # a folder of runs: joined into it
    joined = load_runs([tmp_path / "runs"], tmp_path / "cmp")
    assert [r.name for r in joined.runs] == ["day1", "day2", "day3"]
    cases = {(r["case"], r["model"]) for r in joined.records}
    assert ("p", "A") in cases and ("p", "B") in cases and ("p@day3", "C") in cases
    assert any("p@day3" in n for n in joined.left_out)
    out = write_report([tmp_path / "runs"], tmp_path / "cmp")
    ctx = build_context(joined.records, tmp_path / "cmp")
    row = next(b for b in ctx["ranking"] if b["info"].name == "temporal_flicker")["rows"]
    b_row = next(r for r in row if r["model"] == "B")
    assert b_row["pairs"] == 2 and b_row["diff"] == ctx["metrics"][0].fmt(-0.05, signed=True)
    assert out.is_file() and "p@day3" in out.read_text()
    r = CliRunner().invoke(app, ["report", str(day1), str(day2), "--out", str(tmp_path / "cmp2")])
    assert r.exit_code == 0 and (tmp_path / "cmp2" / "report.html").is_file()
    r = CliRunner().invoke(app, ["report", str(day1), str(day2)])
    assert r.exit_code != 0 and "--out" in r.output


def test_joined_clip_paths_point_into_each_run(tmp_path):
    a = tmp_path / "runs" / "a"
    (a / "clips").mkdir(parents=True)
    (a / "clips" / "x.mp4").write_bytes(b"\0" * 10)
    _write(a, [_record("p", "A", 0, {"temporal_flicker": 0.9}, video="clips/x.mp4")])
    joined = load_runs([a], tmp_path / "out")
    assert joined.records[0]["video"] == os.path.join("..", "runs", "a", "clips", "x.mp4")
    assert (tmp_path / "out" / joined.records[0]["video"]).resolve() == (a / "clips" / "x.mp4").resolve()


def test_the_suites_objective_is_ranked_as_one_score(tmp_path):
    """With `objective:` in the suite the user has defined how scores combine: it is ranked like a score."""
    y, x = np.mgrid[0:32, 0:32]
    Image.fromarray(np.stack([x * 7, y * 7, 0 * x + 60], -1).astype(np.uint8)).save(tmp_path / "a.png")
    spec = {"name": "obj", "output": "run", "metrics": ["temporal_flicker", "dynamic_degree"], "seeds": [0, 1],
            "objective": {"temporal_flicker": 2.0},
            "cases": [{"id": "a", "image": "a.png"}],
            "models": [{"name": "test-drift", "label": "d1"}, {"name": "test-drift", "label": "d2",
                                                               "params": {"num_frames": 8}}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    runner = Runner(load_suite(tmp_path / "suite.yaml"))
    runner.run_all()
    records = current_records(runner.store.root).records
    ctx = build_context(records, runner.store.root)
    block = next(b for b in ctx["ranking"] if b["info"].name == "objective")
    assert block["info"].higher and "2*temporal_flicker" in ctx["objective"]
    by_model = {row["model"]: row for row in block["rows"]}
    for m in ("d1", "d2"):
        want = np.mean([2 * r["scores"]["temporal_flicker"] for r in records if r["model"] == m])
        assert by_model[m]["mean"] == block["info"].fmt(want)


def test_malformed_records_are_left_out_with_a_note(tmp_path):
    """Hand-edited or foreign lines (wrong types, inf, paths outside the run) never break the page or pull a
    file that is not a clip into it."""
    (tmp_path / "secret.txt").write_text("do-not-embed")
    good = [_record("a", "m", 0, {"temporal_flicker": 0.9, "flow_magnitude": 1.0}),
            _record("a", "n", 0, {"temporal_flicker": 1e308, "flow_magnitude": 1.0}, video=str(tmp_path / "secret.txt")),
            _record("b", "n", 0, {"temporal_flicker": float("inf")}, video="../secret.txt", worst_frame={"x": 10 ** 30})]
    bad = [dict(_record("a", "m", 1, {"temporal_flicker": "0.9"}), job_id="bad-score"),
           dict(_record("a", "m", 2, {}), seed="zero", job_id="bad-seed"),
           dict(_record("a", "m", 3, {}), scores=[1, 2], job_id="bad-scores"),
           dict(_record("a", "m", 4, {}), case=None, job_id="bad-case")]
    run = _write(tmp_path / "run", good + bad)
    html = write_report(run).read_text()
    assert "4 malformed records" in html and "bad-score" in html
    assert "do-not-embed" not in html and "ZG8tbm90LWVtYmVk" not in html  # nor its base64


def test_a_run_asking_for_consistency_also_measures_motion(tmp_path):
    """The ranking judges consistency on moving clips, so a run that asks for temporal_flicker alone records
    flow_magnitude and dynamic_degree beside it; a run asking only for lip-sync does not pay for flow."""
    y, x = np.mgrid[0:32, 0:32]
    Image.fromarray(np.stack([x * 7, y * 7, 0 * x + 60], -1).astype(np.uint8)).save(tmp_path / "a.png")
    spec = {"name": "mc", "output": "run", "metrics": ["temporal_flicker"], "seeds": [0],
            "cases": [{"id": "a", "image": "a.png"}], "models": [{"name": "test-drift"}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    runner = Runner(load_suite(tmp_path / "suite.yaml"))
    (rec,) = runner.run_all()
    assert {"temporal_flicker", "flow_magnitude", "dynamic_degree"} <= set(rec["scores"])
    assert rec["scores"]["flow_magnitude"] > MOTION_FLOOR  # the drifting gradient moves 1 px per frame
    again = Runner(load_suite(tmp_path / "suite.yaml"))
    assert again.run_all() == []  # resumed: nothing to do, nothing rescored


def test_text_to_image_results_show_as_pictures(tmp_path):
    """A text-to-image job's record names its PNG in image_out (video is None): the report shows the picture."""
    run = tmp_path / "run"
    (run / "clips").mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(run / "clips" / "sdxl__s0.png")
    t2i = _record("p", "sdxl", 0, {}, task="text-to-image", video=None, image_out="clips/sdxl__s0.png")
    _write(run, [t2i, _record("p", "other", 0, {})])
    html = write_report(run).read_text()
    assert "clip file missing" not in re.sub(r"<script\b.*?</script>", "", html, flags=re.S)
    assert '<img src="data:image/png;base64,' in html or '<img src="clips/sdxl__s0.png"' in html
    linked = write_report(run, clips="link").read_text()
    assert 'src="clips/sdxl__s0.png"' in linked


def test_the_motion_floor_scales_with_the_clip_size():
    """0.1 px/frame at a 256 px short side; flow is measured on frames shrunk to <= 512 px, so a 720p clip's
    floor is 0.1 * 720 * (512/1280) / 256 and a 96 px clip's 0.1 * 96 / 256."""
    from workbench.ranking import floor_for

    assert floor_for({"clip": {"width": 256, "height": 256}}) == pytest.approx(0.1)
    assert floor_for({"clip": {"width": 96, "height": 96}}) == pytest.approx(0.0375)
    assert floor_for({"clip": {"width": 1280, "height": 720}}) == pytest.approx(0.1 * 720 * 0.4 / 256)
    assert floor_for({"clip": None}) == pytest.approx(0.1)
    small_pan = _record("a", "k", 0, {"flow_magnitude": 0.05}, clip={"width": 96, "height": 96})
    assert build_context([small_pan, _record("a", "s", 0, {"flow_magnitude": 0.0})], Path("."))["still_models"] == ["s"]


def test_cost_per_model_and_quality_per_cost(tmp_path):
    """Hosted records carry a cost block; the report totals it per model (local models at $0), per clip and per
    second, and marks the models no other model beats on both cost and quality."""
    from workbench.costs import cost_summary, pareto_front

    def hosted(case, model, seed, q, usd, source="api"):
        return _record(case, model, seed, {"temporal_flicker": q, "flow_magnitude": 1.0},
                       clip={"fps": 24.0, "frames": 120, "width": 256, "height": 256, "seconds": 5.0},
                       cost={"estimated": usd, "charged": usd, "currency": "USD", "usd": usd, "source": source})
    recs = [hosted("a", "veo", s, 0.99, 2.0) for s in (0, 1)] + [hosted("a", "kling", s, 0.95, 0.5, "estimate")
                                                                 for s in (0, 1)]
    recs += [_record("a", "wan", s, {"temporal_flicker": 0.96, "flow_magnitude": 1.0}) for s in (0, 1)]
    recs.append(dict(hosted("a", "veo", 2, 0.9, 2.0), status="failed", error="boom"))  # charged, failed
    costs = cost_summary(recs)
    assert costs["veo"]["usd"] == pytest.approx(6.0) and costs["veo"]["clips"] == 2
    assert costs["veo"]["usd_per_clip"] == pytest.approx(3.0) and costs["veo"]["charged_failed"] == 1
    assert costs["veo"]["usd_per_second"] == pytest.approx(0.6) and costs["kling"]["sources"] == ["estimate"]
    assert costs["wan"]["local"] and costs["wan"]["usd"] == 0
    # wan (0 USD, 0.96) beats kling (0.5 USD, 0.95) on both: kling is off the front; veo is best, so on it
    assert pareto_front({"veo": (3.0, 0.99), "kling": (0.5, 0.95), "wan": (0.0, 0.96)}, True) == {"veo", "wan"}
    run = _write(tmp_path / "run", recs)
    html = write_report(run).read_text()
    assert 'id="cost"' in html and "$6.00" in html and "$3.00" in html and "local" in html
    assert "quality against cost per clip" in html
    # a run of open models only has no cost section
    plain = _write(tmp_path / "plain", [_record("a", "wan", 0, {"temporal_flicker": 0.9})])
    assert 'id="cost"' not in write_report(plain).read_text()


def test_three_folders_of_one_name_join_without_losing_a_case(tmp_path):
    """p1/run, p2/run, p3/run: case `a` with three different images gives three rows, never two (the
    renamed cases were both `a@run`), each name unique and said in the notes."""
    runs = []
    for k in (1, 2, 3):
        recs = [_record("a", "kenburns", 0, {"temporal_flicker": 0.9}, suite="s",
                        inputs={"image": {"path": "x", "sha256": f"image-{k}"}})]
        runs.append(_write(tmp_path / f"p{k}" / "run", recs))
    joined = load_runs(runs, tmp_path / "cmp")
    assert len(joined.records) == 3
    names = sorted(r["case"] for r in joined.records)
    assert len(set(names)) == 3 and names[0] == "a" and all(n.startswith("a@") for n in names[1:]), names
    assert sum("not joined" in n for n in joined.left_out) == 2
    r = CliRunner().invoke(app, ["report", *map(str, runs), "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "cmp" / "report.html").read_text()
    assert all(n in html for n in names)


def test_an_empty_run_joined_with_another_is_named(tmp_path):
    a = _write(tmp_path / "A", [_record("p", "kenburns", 0, {"temporal_flicker": 0.9})])
    empty = _write(tmp_path / "EMPTY", [])
    joined = load_runs([a, empty], tmp_path / "J")
    assert any("EMPTY" in n and "holds no records" in n for n in joined.left_out), joined.left_out
    r = CliRunner().invoke(app, ["report", str(a), str(empty), "--out", str(tmp_path / "J")])
    assert r.exit_code == 0 and "EMPTY" in r.output and "holds no records" in r.output, r.output
    r = CliRunner().invoke(app, ["report", str(empty)])  # alone it is an error
    assert r.exit_code == 2 and "holds no records" in r.output


def test_report_refuses_wandb_for_a_join_before_writing(tmp_path):
    a = _write(tmp_path / "A", [_record("p", "kenburns", 0, {"temporal_flicker": 0.9})])
    b = _write(tmp_path / "B", [_record("p", "static", 0, {"temporal_flicker": 0.8})])
    r = CliRunner().invoke(app, ["report", str(a), str(b), "--out", str(tmp_path / "J"), "--wandb", "offline"])
    assert r.exit_code == 2 and "--wandb" in r.output
    assert not (tmp_path / "J" / "report.html").exists() and not (tmp_path / "J").exists()
