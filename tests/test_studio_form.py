"""The Studio's Generate form as one form, and case ids that line up across runs (no browser)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workbench.names import check_name
from workbench.store import load_records

REPO = Path(__file__).resolve().parents[1]
PORTRAIT = REPO / "data/images/portrait.png"


def _gen(tmp_path, run: str | None = None):
    from workbench.ui import Studio

    return Studio(runs=tmp_path / "runs", run=run).generate


def _case(gen) -> dict:
    return gen.suite_dict()["cases"][0]


# -- case ids ----------------------------------------------------------------------------------------
def test_the_same_inputs_are_one_case_across_models_runs_and_studios(tmp_path):
    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    gen.model.value = "kenburns"
    gen.image.select_sample("portrait.png")
    gen.audio.set_path(None)  # the image alone (the first screen also picks a sample speech)
    gen.prompt.value = "a slow push-in"
    a = _case(gen)["id"]
    assert re.fullmatch(r"portrait-[0-9a-f]{6}", a) and check_name(a, "case id") == a
    gen.model.value = "static"  # another model, other parameters: the same case
    gen.form.set_value("width", 96)
    assert _case(gen)["id"] == a
    other = _gen(tmp_path / "another-day", run="runs/elsewhere")  # another Studio, another run folder
    other.task.value = "image-to-video"
    other.model.value = "kenburns"
    other.image.path_box.value = str(PORTRAIT)  # typed as a path, not picked as the sample
    other.audio.set_path(None)
    other.prompt.value = "  a slow push-in "  # surrounding blanks are not part of the prompt
    assert _case(other)["id"] == a
    # another prompt, another negative prompt or another image: another case
    gen.prompt.value = "a fast pan"
    assert _case(gen)["id"] != a
    gen.prompt.value = "a slow push-in"
    assert _case(gen)["id"] == a
    gen.image.select_sample("landscape.png")
    assert _case(gen)["id"].startswith("landscape-") and _case(gen)["id"][-6:] != a[-6:]


def test_an_upload_of_the_same_file_is_the_same_case(tmp_path):
    import datetime as dt

    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    gen.model.value = "kenburns"
    gen.image.select_sample("portrait.png")
    sample_id = _case(gen)["id"]
    png = PORTRAIT.read_bytes()
    gen.image.upload.value = ({"name": "portrait.png", "type": "image/png", "size": len(png), "content": memoryview(png),
                               "last_modified": dt.datetime(2026, 1, 1)},)
    assert gen.image.choice.value == "upload: portrait.png" and _case(gen)["id"] == sample_id
    # the same bytes under another name: the id already used for that content is kept (found in the runs)
    gen.metrics.value = ["temporal_flicker"]
    gen.form.set_value("seconds", 0.3)
    gen.form.set_value("width", 48)
    gen.form.set_value("height", 48)
    assert gen.run() and gen.wait(60)
    gen.image.upload.value = ({"name": "me (1).png", "type": "image/png", "size": len(png), "content": memoryview(png),
                               "last_modified": dt.datetime(2026, 1, 1)},)
    assert gen.image.choice.value == "upload: me (1).png" and _case(gen)["id"] == sample_id


def test_spoken_words_are_the_case_not_the_wav_and_history_restores_them(tmp_path):
    gen = _gen(tmp_path)
    gen.task.value = "audio-to-video"
    gen.model.value = "puppet"
    gen.image.select_sample("portrait.png")
    gen.audio.choice.value = gen.audio.SPEAK
    gen.audio.words.value = "Hello there."
    gen.audio.voice.value = "en-us"
    case = _case(gen)
    assert re.fullmatch(r"portrait-speech-[0-9a-f]{6}", case["id"]) and case["text"] == "Hello there."
    assert case["voice"] == "espeak-ng:en-us"  # as the speech module names it: one job for both spellings
    gen.audio.words.value = "Goodbye."
    assert _case(gen)["id"] != case["id"]
    # a record of that job (what the runner writes: the cached wav as the audio input, the words in workflow)
    record = {"job_id": "j1", "case": case["id"], "model": "puppet", "model_name": "puppet", "seed": 4,
              "params": {}, "prompt": "", "status": "ok",
              "inputs": {"image": {"path": str(PORTRAIT)}, "audio": {"path": "/cache/speech/ab12.wav"}},
              "workflow": {"speech": {"text": "Hello there.", "voice": "espeak-ng:en-us", "key": "ab12"}}}
    gen.audio.choice.value = gen.audio.NONE
    gen.load_settings(record)
    assert gen.audio.speaking and gen.audio.words.value == "Hello there." and gen.audio.path is None
    assert gen.audio.voice.value == "espeak-ng:en-us" and gen.seeds.value == "4"
    assert _case(gen) == case


def test_models_of_different_tasks_on_the_same_inputs_are_one_case_and_one_row(tmp_path):
    """Kenburns (image-to-video, ignores the speech) and puppet (audio-driven) on one portrait and one
    sentence: one case id, one row in Generate, lip-sync shown on both cards by one rule."""
    gen = _gen(tmp_path)
    gen.image.select_sample("portrait.png")
    gen.audio.select_sample("hello.wav")
    gen.metrics.value = ["temporal_flicker", "lse_d"]
    gen.task.value = "image-to-video"
    gen.model.value = "kenburns"
    assert gen.audio.layout.display is None and "kenburns is not driven by the audio" in gen.audio.unused.value
    assert gen.image.unused.value == ""
    for k, v in {"width": 48, "height": 48}.items():
        gen.form.set_value(k, v)
    kb_case = _case(gen)
    assert kb_case["audio"].endswith("hello.wav") and re.fullmatch(r"portrait-hello-[0-9a-f]{6}", kb_case["id"])
    assert gen.run() and gen.wait(120)
    gen.task.value = "audio-to-video"
    gen.model.value = "puppet"
    assert gen.audio.unused.value == ""
    gen.form.set_value("size", 160)
    assert _case(gen) == kb_case
    assert gen.run() and gen.wait(120)
    recs = load_records(tmp_path / "runs" / "studio")
    assert len(recs) == 2 and {r["model_name"] for r in recs} == {"kenburns", "puppet"}
    assert {r["case"] for r in recs} == {kb_case["id"]} and all(r["status"] == "ok" for r in recs)
    (row,) = gen.results.rows  # one row: the case, both models
    assert len(row["clips"]) == 2 and kb_case["id"] in row["label"] and "kenburns" in row["label"]
    for clip in row["clips"]:  # the lip-sync score asked for: n/a with its reason on both cards, never left out
        assert "lse_d" in clip["caption"], clip["title"]
    from workbench.ui.compare import CompareTab

    tab = CompareTab(tmp_path / "runs")  # Compare: one row (case x seed), one column per model
    tab.picker.set(tmp_path / "runs" / "studio")
    assert len(tab.grid.rows) == 1 and len(tab.grid.rows[0]["clips"]) == 2
    # a model that takes no prompt still keeps the prompt typed: it is part of the case
    gen.prompt.value = "she smiles"
    gen.task.value = "image-to-video"
    gen.model.value = "kenburns"
    assert not gen.prompt.disabled and _case(gen)["prompt"] == "she smiles"


def test_default_metrics_are_what_can_run_here_and_missing_weights_name_the_fetch_command(tmp_path, monkeypatch):
    from workbench.metrics import resolve

    monkeypatch.delenv("WORKBENCH_SYNCNET_WEIGHTS", raising=False)
    gen = _gen(tmp_path)
    _, wanted = resolve(list(gen.metrics.value))
    assert "lse_d" not in wanted and "lse_c" not in wanted and "sync_offset" in wanted and "warp_error" in wanted
    assert gen.metrics_note.value == ""  # nothing chosen that cannot run
    gen.metrics.value = [*gen.metrics.value, "lipsync"]
    assert "workbench weights fetch syncnet" in gen.metrics_note.value and "lse_d" in gen.metrics_note.value
    weights = tmp_path / "syncnet_v2.model"
    weights.write_bytes(b"x")
    monkeypatch.setenv("WORKBENCH_SYNCNET_WEIGHTS", str(weights))
    assert "lipsync" in _gen(tmp_path / "with").metrics.value


def test_a_card_says_what_its_times_are_and_a_new_model_clears_the_last_runs_outcome(tmp_path):
    from workbench.ui.generate import job_times_html

    line = job_times_html({"clip": {"seconds": 2.84}, "timings": {"total": 19.12, "generate": 0.5, "evaluate": 18.3}})
    assert "clip 2.8 s" in line and "job took 19.1 s" in line and "evaluate 18.3 s" in line
    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    gen.model.value = "kenburns"
    gen.audio.set_path(None)
    for k, v in {"seconds": 0.3, "width": 48, "height": 48}.items():
        gen.form.set_value(k, v)
    gen.metrics.value = ["temporal_flicker"]
    assert gen.run() and gen.wait(60)
    assert "clip(s) done" in gen.message.text and "workbench run" in gen.cli_hint.value
    (card,) = gen.results.rows[0]["clips"]
    assert "job took" in card["caption"] and "clip 0.3 s" in card["caption"]
    gen.model.value = "static"
    assert gen.message.text == "" and gen.cli_hint.value == ""


def test_warm_up_loads_what_the_metrics_need_and_the_clip_shows_before_its_scores(tmp_path):
    from workbench.experiment import hardware

    gen = _gen(tmp_path)
    assert gen.warmup.state == "idle"  # not in a notebook kernel: nothing loads behind a test's back
    gen.task.value = "image-to-video"
    gen.model.value = "kenburns"
    gen.audio.set_path(None)
    for k, v in {"seconds": 0.3, "width": 48, "height": 48}.items():
        gen.form.set_value(k, v)
    gen.metrics.value = ["temporal_flicker", "identity"]
    assert gen.warm_up()
    assert "loading" in gen.warm_note.value or gen.warmup.state == "ready"
    assert gen.warmup.wait(120) and gen.warmup.state == "ready" and not gen.warmup.errors
    assert "loaded" in gen.warm_note.value and hardware.cache_info().currsize == 1
    assert {"record", "faces"} <= gen.warmup._done  # torch for the record, dlib's face models for identity
    from workbench.ui.warmup import WarmUp

    w = WarmUp()
    w.start(["temporal_flicker"])
    w.start(["lipsync"])  # chosen while the first warm-up runs: warmed after it
    assert w.wait(120) and w.state == "ready" and any(k.startswith("metrics:") and "lipsync" in k for k in w._done)
    seen = []
    render = gen._render

    def spy():
        render()
        seen.append([dict(c) for row in gen.results.rows for c in row["clips"]])
    gen._render = spy
    assert gen.run() and gen.wait(60)
    first = next(cards for cards in seen if cards)
    assert "scoring" in first[0]["caption"] and (first[0]["data"] or first[0]["src"])  # the clip, then its scores
    assert "temporal_flicker" in seen[-1][0]["caption"] and "scoring" not in seen[-1][0]["caption"]


# -- one form: every bad value refused beside its field, all of them at Run ---------------------------
def test_every_bad_value_is_refused_in_place_and_all_are_listed_at_run(tmp_path):
    gen = _gen(tmp_path)
    gen.task.value = "audio-to-video"
    gen.model.value = "puppet"
    assert not gen.run_btn.disabled and gen.run_note.value == ""
    form = gen.form
    form.fields["size"].widget.value = "abc"  # text in a number field: an error, never a silent reset
    assert form.fields["size"].widget.value == "abc" and "&#x27;abc&#x27; is not a number" in form.fields["size"].note.value
    form.fields["max_open"].widget.value = "1e9"
    assert form.errors["max_open"].startswith("must be <= 1")
    form.fields["fps"].widget.value = "12.5"
    assert form.errors["fps"] == "must be a whole number, got 12.5"
    gen.seeds.value = "-1, abc, 3-1"
    gen.outputs.value = "0"
    assert "negative" in gen.seeds_note.value and "not a seed" in gen.seeds_note.value
    assert "backwards" in gen.seeds_note.value and "outputs: must be 1 to 64" in gen.seeds_note.value
    # every problem at once at the Run button, which is disabled
    note = gen.run_note.value
    for bit in ("parameter size", "parameter max_open", "parameter fps", "-1 is negative", "&#x27;abc&#x27; is not a seed",
                "runs backwards", "outputs: must be 1 to 64"):
        assert bit in note, bit
    assert "Run waits for 7 fixes" in note and gen.run_btn.disabled
    assert not gen.run()
    assert gen.message.text.startswith("error: ") and ".yaml" not in gen.message.text
    assert not list((tmp_path / "runs").rglob("*.yaml"))
    # fixed one by one: each note goes with its cause, the list shrinks, Run comes back at the end
    form.fields["size"].widget.value = "128"
    assert form.fields["size"].note.value == "" and "parameter size" not in gen.run_note.value
    form.fields["max_open"].widget.value = "0.5"
    form.fields["fps"].widget.value = "12"
    gen.seeds.value = "0, 1"
    assert gen.run_btn.disabled and "outputs" in gen.run_note.value
    gen.outputs.value = "1"
    assert gen.run_note.value == "" and gen.seeds_note.value == "" and not gen.run_btn.disabled
    assert gen.message.text == ""  # the old refusal went with its causes
    assert gen.suite_dict()["models"][0]["params"] == {"size": 128, "max_open": 0.5, "fps": 12}
    assert gen.suite_dict()["seeds"] == [0, 1]


def test_the_models_own_rule_stands_beside_its_field_while_another_field_is_bad(tmp_path):
    pytest.importorskip("diffusers")
    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    gen.model.value = "wan2.1-i2v-480p"
    form = gen.form
    form.set_value("num_frames", 10)  # Wan makes 4k+1 frames
    note = form.fields["num_frames"].note.value
    assert "must be 4k+1" in note and form.whole_note.value == ""  # beside the field, not under the block
    assert "#b00020" in form.fields["num_frames"].label.value  # the field itself is marked
    form.fields["num_inference_steps"].widget.value = "abc"  # another field goes bad: the rule stays listed
    assert "must be 4k+1" in form.fields["num_frames"].note.value
    assert "must be 4k+1" in gen.run_note.value and "parameter num_inference_steps" in gen.run_note.value
    form.set_value("num_frames", 9)
    assert form.fields["num_frames"].note.value == "" and "4k+1" not in gen.run_note.value
    assert "#b00020" not in form.fields["num_frames"].label.value


def test_number_bounds_come_from_the_spec_and_the_defaults(tmp_path):
    from workbench.ui.forms import parse_number, range_problem

    assert parse_number("1e3", integer=True) == (1000, None)
    assert parse_number("nan", integer=False)[1] == "must be a finite number"
    assert parse_number("", integer=False)[1].startswith("empty")
    assert range_problem("fps", 0) == "must be > 0" and range_problem("fps", 30) is None
    assert range_problem("num_inference_steps", 10**9).startswith("must be <= 1000")
    assert range_problem("strength", 1e9, default=0.8) == "must be <= 1000 (got 1000000000)"  # unknown: 1000 x
    assert range_problem("strength", -0.5, default=0.8) is None  # unknown names may be negative
    assert range_problem("width", 0, default=0) is None  # a model's own default always stands
    assert range_problem("x", 7, spec={"min": 0, "max": 5}) == "must be <= 5 (got 7)"


# -- model_id: project root, local checkpoints, kept across a switch -----------------------------------
def _fake_pipeline(folder: Path, cls: str = "WanImageToVideoPipeline") -> Path:
    """A folder laid out like a saved diffusers pipeline (weights are empty files: never loaded here)."""
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": cls, "vae": ["diffusers", "AutoencoderKLWan"],
                                                         "scheduler": ["diffusers", "UniPCMultistepScheduler"]}))
    (folder / "vae").mkdir()
    (folder / "vae" / "config.json").write_text("{}")
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text("{}")
    return folder


def test_local_checkpoints_are_offered_and_relative_model_ids_start_at_the_project_root(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    ck = _fake_pipeline(tmp_path / "runs" / "tiny" / "wan-i2v")
    monkeypatch.chdir(tmp_path / "runs")  # the kernel does not run in the project root (notebooks/)
    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    key = "wan2.1-i2v-480p@runs/tiny/wan-i2v"
    labels = dict((v, k) for k, v in gen.model.options)
    assert key in labels and "local checkpoint" in labels[key] and "missing" not in labels[key]
    gen.model.value = key
    assert gen.form.fields["model_id"].widget.value == "runs/tiny/wan-i2v" and "model_id" not in gen.form.errors
    assert "run as <b>wan2.1-i2v-480p</b>" in gen.model_info.value
    model = gen.suite_dict()["models"][0]
    assert model["name"] == "wan2.1-i2v-480p" and model["params"]["model_id"] == str(ck.resolve())
    assert not any("weights" in p for p in gen.problems())
    # typed by hand for the plain family: resolved against the project root too, and kept across a switch
    gen.model.value = "wan2.1-i2v-720p"
    assert gen.form.fields["model_id"].widget.value != "runs/tiny/wan-i2v"  # the entry's folder was not typed
    gen.form.set_value("model_id", "runs/tiny/wan-i2v")
    assert "model_id" not in gen.form.errors
    assert gen.suite_dict()["models"][0]["params"]["model_id"] == str(ck.resolve())
    gen.model.value = "wan2.1-i2v-480p"
    assert gen.form.fields["model_id"].widget.value == "runs/tiny/wan-i2v"
    # a folder that does not load as this family, or is not there: refused beside the field
    gen.model.value = "svd"
    assert gen.form.fields["model_id"].widget.value == "runs/tiny/wan-i2v"
    assert "holds a WanImageToVideoPipeline; svd loads StableVideoDiffusionPipeline (pick wan2.1-i2v-480p)" \
        in gen.form.errors["model_id"]
    gen.form.set_value("model_id", "runs/tiny/gone")
    assert "no such folder" in gen.form.errors["model_id"] and gen.run_btn.disabled


def test_a_folder_of_pickled_weights_is_refused_as_the_run_refuses_it_unless_allow_pickle(tmp_path):
    pytest.importorskip("diffusers")
    ck = _fake_pipeline(tmp_path / "runs" / "mine" / "wan-bin")
    (ck / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    (ck / "vae" / "diffusion_pytorch_model.bin").write_bytes(b"")  # pickled weights only
    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    gen.model.value = "wan2.1-i2v-480p"
    gen.form.set_value("model_id", str(ck))
    assert "allow_pickle" in gen.form.errors.get("model_id", "") and gen.run_btn.disabled
    assert "allow_pickle" in gen.form.fields["model_id"].note.value
    gen.options.value = '{"allow_pickle": true}'  # what the run needs to load it: then the form takes it too
    assert "model_id" not in gen.form.errors
    assert gen.suite_dict()["models"][0]["options"] == {"allow_pickle": True}
    gen.options.value = ""
    assert "allow_pickle" in gen.form.errors.get("model_id", "")


def test_a_tiny_local_checkpoint_starts_from_the_smallest_request_a_full_one_from_its_family(tmp_path):
    pytest.importorskip("diffusers")
    from workbench.models import get_generator
    from workbench.models.diffusers_pipeline import TINY_BYTES, local_defaults

    spec = get_generator("wan2.1-i2v-480p").spec
    tiny = _fake_pipeline(tmp_path / "runs" / "tiny" / "wan-i2v")
    (tiny / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 300_000)  # random weights, KBs
    assert local_defaults(spec, tiny) == {"num_inference_steps": 2, "num_frames": 5, "width": 64, "height": 64}
    full = _fake_pipeline(tmp_path / "elsewhere" / "wan-full")
    with open(full / "vae" / "diffusion_pytorch_model.safetensors", "wb") as f:
        f.truncate(TINY_BYTES + 1)  # as large as real weights (sparse: no disk used)
    assert local_defaults(spec, full) == {}
    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    gen.model.value = "wan2.1-i2v-480p@runs/tiny/wan-i2v"
    params = gen.suite_dict()["models"][0]["params"]
    assert {k: params[k] for k in ("num_inference_steps", "num_frames", "width", "height")} == \
        {"num_inference_steps": 2, "num_frames": 5, "width": 64, "height": 64}
    assert not gen.form.errors and not any("parameter" in p for p in gen.problems())
    gen.model.value = "wan2.1-i2v-720p"  # the plain family: its own defaults again
    assert "num_inference_steps" not in gen.form.overrides()


def test_the_model_free_image_baselines_default_to_one_clip_length_so_a_row_plays_in_step(tmp_path):
    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    shown = {}
    for model in ("static", "kenburns"):
        gen.model.value = model
        shown[model] = {k: gen.form.fields[k].default for k in ("fps", "seconds", "num_frames", "width", "height")}
    assert shown["static"] == shown["kenburns"]


def test_a_model_without_its_weights_is_refused_before_run(tmp_path):
    pytest.importorskip("diffusers")
    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    missing = [k for k, d in gen.catalogue.items() if d["task"] == "image-to-video" and d.get("weights")
               and not d.get("weights_available") and not d.get("checkpoint") and "model_id" in d.get("defaults", {})]
    if not missing:
        pytest.skip("every image-to-video model has its weights here")
    gen.model.value = missing[0]
    assert gen.run_btn.disabled and "are not on this machine" in gen.run_note.value


# -- Evaluate: a typed path is another clip ------------------------------------------------------------
def test_evaluate_or_a_path_drops_the_run_clips_references(tmp_path):
    gen = _gen(tmp_path)
    gen.task.value = "image-to-video"
    gen.model.value = "kenburns"
    for k, v in {"seconds": 0.3, "width": 48, "height": 48}.items():
        gen.form.set_value(k, v)
    gen.metrics.value = ["temporal_flicker"]
    assert gen.run() and gen.wait(60)
    from workbench.ui.evaluate import EvaluateTab

    ev = EvaluateTab(tmp_path / "runs")
    ev.picker.set(tmp_path / "runs" / "studio")
    assert ev.image.value == str(PORTRAIT.resolve()) or Path(ev.image.value).resolve() == PORTRAIT.resolve()
    ev.audio.value = ""
    ev.path.value = str(tmp_path / "other.mp4")
    assert ev.image.value == "" and ev.player.rows == [] and ev.table.value == ""
    ev.image.value = "/typed/by/me.png"  # what the user types for the path's clip stays
    ev.path.value = str(tmp_path / "another.mp4")
    assert ev.image.value == "/typed/by/me.png"
    ev.path.value = ""  # back to the run's clip: its references return
    assert Path(ev.image.value).resolve() == PORTRAIT.resolve() and ev.table.value


def test_evaluate_curves_are_in_the_tables_unit_and_only_scores_with_a_direction_get_a_worst_frame():
    from workbench.ui.evaluate import curve_panels, curves_png
    from workbench.ui.widgets import fmt_score, score_infos

    series = {"warp_error": [5e-5, 2e-5, 3e-5], "flow_magnitude": [1.0, 4.0, 2.0]}
    worst = {"warp_error": 0, "flow_magnitude": 1}
    recs = [{"status": "ok", "scores": {"warp_error": 3e-5, "flow_magnitude": 2.0}}]
    infos = score_infos(recs)
    panels = {p["name"]: p for p in curve_panels(series, worst, infos)}
    warp = panels["warp_error"]
    assert warp["unit"] == infos["warp_error"].unit_label and warp["unit"]  # e.g. x10^-3, as in the table
    assert fmt_score("warp_error", 3e-5, infos) == infos["warp_error"].fmt(3e-5)
    assert abs(warp["values"][2] - 3e-5 * infos["warp_error"].scale) < 1e-12 and warp["values"][2] > 1e-3
    assert warp["worst"] == 0  # lower is better: frame 0 is the worst
    assert panels["flow_magnitude"]["worst"] is None  # no better direction: no worst frame
    assert curves_png(series, worst, infos)[:4] == b"\x89PNG"


# -- units, n/a, one star ------------------------------------------------------------------------------
def _rec(job: str, **scores) -> dict:
    return {"job_id": job, "status": "ok", "scores": scores, "score_errors": {"identity_similarity": "no face found"}}


def test_scores_use_the_reports_units_and_na_with_its_reason_inline():
    from workbench.report import metric_infos
    from workbench.ui.widgets import directions, score_infos, scores_caption

    recs = [_rec("a", warp_error=5.36e-5, temporal_flicker=0.99, identity_similarity=None),
            _rec("b", warp_error=4.9e-5, temporal_flicker=0.98, identity_similarity=None)]
    infos = score_infos(recs)
    ref = metric_infos(recs, ["warp_error", "temporal_flicker", "identity_similarity"])
    cap = scores_caption(recs[0], directions(), None, infos)
    assert ref["warp_error"].fmt(5.36e-5) in cap and ref["warp_error"].unit_label in cap
    assert ref["warp_error"].unit_label  # a small score gets a scale, shown beside its name
    assert '<td class="v na">n/a</td>' in cap and '<td colspan="2">no face found</td>' in cap  # not only on hover
    assert "null" not in cap and "None" not in cap


def test_a_score_asked_for_and_not_applicable_shows_na_with_its_reason_on_every_card():
    """One rule for every card: lip-sync asked for on a case without audio is n/a with the report's reason,
    as a lip-sync score without weights is n/a with its own."""
    from workbench.report import null_reason
    from workbench.ui.widgets import directions, scores_caption

    asked = ["temporal_flicker", "lse_d"]
    silent = {"job_id": "k", "status": "ok", "scores": {"temporal_flicker": 0.99}, "metrics_requested": asked,
              "inputs": {"image": {"path": "p.png"}}}
    cap = scores_caption(silent, directions())
    assert "lse_d" in cap and '<td class="v na">n/a</td>' in cap
    assert html_unescape(null_reason(silent, "lse_d")) in html_unescape(cap) and "has no audio" in cap
    heard = {"job_id": "p", "status": "ok", "scores": {"temporal_flicker": 0.98, "lse_d": None},
             "score_errors": {"lse_d": "needs SyncNet weights"}, "metrics_requested": asked}
    assert "needs SyncNet weights" in scores_caption(heard, directions())


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_one_star_means_best_in_row_with_ties():
    from workbench.ui.widgets import best_in_row, directions, score_infos, scores_caption

    dirs = directions()
    recs = [_rec("a", temporal_flicker=0.99, warp_error=1e-3), _rec("b", temporal_flicker=0.99, warp_error=2e-3),
            _rec("c", temporal_flicker=0.95, warp_error=3e-3)]
    infos = score_infos(recs)
    best = best_in_row(recs, dirs, infos)
    assert best["temporal_flicker"] == {"a", "b"}  # a tie: both best
    assert best["warp_error"] == {"a"}  # lower is better
    same = [_rec("a", temporal_flicker=0.9), _rec("b", temporal_flicker=0.9)]
    assert "temporal_flicker" not in best_in_row(same, dirs, score_infos(same))  # all equal: none
    assert scores_caption(recs[2], dirs, best, infos).count("\u2605") == 0
    assert scores_caption(recs[0], dirs, best, infos).count("\u2605") == 2
    assert "<span class=\"num\">" in scores_caption(recs[0], dirs, best, infos)  # value and star never split


# -- Compare: several run folders joined on case and seed ---------------------------------------------
def test_compare_joins_two_studio_runs_of_two_models_into_one_row(tmp_path):
    from workbench.ui.compare import CompareTab

    small = {"seconds": 0.3, "width": 48, "height": 48}
    for model, run in (("static", "runs/monday"), ("kenburns", "runs/tuesday")):
        gen = _gen(tmp_path, run=run)
        gen.task.value = "image-to-video"
        gen.model.value = model
        for k, v in small.items():
            gen.form.set_value(k, v)
        gen.prompt.value = "a slow push-in"
        gen.metrics.value = ["temporal_flicker"]
        assert gen.run() and gen.wait(60)
    monday, tuesday = load_records(tmp_path / "runs/monday"), load_records(tmp_path / "runs/tuesday")
    assert monday[0]["case"] == tuesday[0]["case"]
    tab = CompareTab(tmp_path / "runs")
    tab.picker.set(tmp_path / "runs" / "monday")
    assert len(tab.grid.rows) == 1 and len(tab.grid.rows[0]["clips"]) == 1
    assert [label for label, _ in tab.join.options] == ["runs/tuesday"]
    tab.join.value = (tab.join.options[0][1],)
    (row,) = tab.grid.rows
    assert len(row["clips"]) == 2 and "2 models" in row["label"]
    assert all(c["data"] or c["src"] for c in row["clips"])
    assert "joined on case and seed" in tab.message.text and "kenburns" in tab.summary.value
    # a favourite is kept in the run folder its clip came from
    key = next(c["key"] for c in row["clips"] if c["title"].startswith("kenburns"))
    tab.grid.favourites = [key]
    assert json.loads((tmp_path / "runs/tuesday/favourites.json").read_text()) == [key]
    assert json.loads((tmp_path / "runs/monday/favourites.json").read_text()) == []
    folder = tab.selection_folder(tab.selected())
    sel = load_records(folder)
    assert len(sel) == 2 and all((folder / r["video"]).resolve().is_file() for r in sel)
