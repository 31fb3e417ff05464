"""The Studio driven like a user would, without a browser: set widget values, click, wait, look."""
from __future__ import annotations

import datetime as dt
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.media import Clip
from workbench.models.base import GenerationRequest, Generator, register
from workbench.store import load_records

REPO = Path(__file__).resolve().parents[1]


@register
class SlowGenerator(Generator):
    """A generator that takes its time (for Cancel): `steps` steps of `step_s` seconds each."""

    name = "test-slow"
    task = "image-to-video"
    description = "slow test generator"
    defaults = {"steps": 30, "step_s": 0.04, "fps": 10}

    def generate(self, request: GenerationRequest, progress=None) -> Clip:
        n = self.params["steps"]
        for i in range(n):
            time.sleep(self.params["step_s"])
            if progress:
                progress(i + 1, n)
        img = request.image[:32, :32]
        frames = np.stack([np.roll(img, i + request.seed, axis=0) for i in range(6)])
        return Clip.from_frames(frames, fps=self.params["fps"])


def _studio(tmp_path):
    from workbench.ui import Studio

    return Studio(runs=tmp_path / "runs")


def _pick(gen, model: str, task: str = "image-to-video", **params):
    gen.task.value = task
    gen.model.value = model
    for k, v in params.items():
        gen.form.set_value(k, v)


def _wait_until(cond, timeout=60.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_generate_runs_in_background_and_shows_clips_with_scores(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "kenburns", seconds=0.6, width=64, height=64)
    gen.seeds.value = "0, 1"
    gen.metrics.value = ["temporal_flicker", "identity"]
    gen.run_btn.click()
    # Run returns while the jobs still run (the kernel is free): Cancel is live, Run waits
    assert gen.run_btn.disabled and not gen.cancel_btn.disabled
    assert gen.wait(120)
    recs = load_records(tmp_path / "runs" / "studio")
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    assert {r["seed"] for r in recs} == {0, 1}
    clips = gen.results.rows[0]["clips"]
    assert len(clips) == 2
    for c in clips:
        assert c["data"] or c["src"], "each clip can be played (served or embedded)"
        assert c["data"][:12].find(b"ftyp") >= 0 or c["src"]
        assert "temporal_flicker" in c["caption"] and "identity_similarity" in c["caption"]
    assert "2 clip(s) done" in gen.message.text
    assert not gen.run_btn.disabled and gen.cancel_btn.disabled
    assert gen.jobs_bar.value == 2
    # the run is the same one the CLI would run: the suite file it wrote loads and lists the same jobs
    from workbench.experiment import Runner
    from workbench.suite import load_suite

    suite_file = next((tmp_path / "runs" / "studio" / "suites").glob("suite-*.yaml"))
    assert {j.id for j in Runner(load_suite(suite_file)).jobs} == {r["job_id"] for r in recs}
    # Compare and History follow the finished run
    assert studio.compare.run_dir == (tmp_path / "runs" / "studio").resolve()
    assert len(studio.compare.grid.rows) == 2  # one row per (case, seed)
    assert len(studio.history.records) == 2
    # Run again: nothing new to do, the clips are shown from the store
    gen.run_btn.click()
    assert gen.wait(60)
    assert len(load_records(tmp_path / "runs" / "studio")) == 2
    assert len(gen.results.rows[0]["clips"]) == 2


def test_outputs_give_several_clips_per_seed(tmp_path):
    from workbench.ui.generate import parse_seeds

    assert parse_seeds("0-2, 5") == [0, 1, 2, 5] and parse_seeds(" 3 ") == [3]
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "kenburns", seconds=0.3, width=48, height=48)
    gen.metrics.value = ["temporal_flicker"]
    gen.outputs.value = "2"
    gen.run_btn.click()
    assert gen.wait(60)
    recs = load_records(tmp_path / "runs" / "studio")
    assert len(recs) == 2 and {r["seed"] for r in recs} == {0}
    assert len({r["video"] for r in recs}) == 2  # two different clips
    titles = [c["title"] for c in gen.results.rows[0]["clips"]]
    assert len(titles) == 2 and len(set(titles)) == 2
    assert len(studio.compare.grid.rows) == 2  # one row per (case, seed, output)


def test_cancel_stops_with_at_most_the_job_in_flight_lost(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "test-slow", steps=25, step_s=0.04)
    gen.outputs.value = "6"
    gen.metrics.value = ["temporal_flicker"]
    gen.run_btn.click()
    run_dir = tmp_path / "runs" / "studio"
    _wait_until(lambda: len(load_records(run_dir)) >= 1)
    _wait_until(lambda: gen.step_bar.value > 0)  # the next job is in flight
    done_before = len(load_records(run_dir))
    gen.cancel_btn.click()
    assert gen.wait(30)
    recs = load_records(run_dir)
    assert done_before <= len(recs) <= done_before + 1 < 6
    assert all(r["status"] == "ok" for r in recs)
    assert gen.message.text.startswith("cancelled")
    assert not gen.run_btn.disabled
    assert len(gen.results.rows[0]["clips"]) == len(recs)
    # Run again resumes: only the missing jobs run
    gen.run_btn.click()
    assert gen.wait(60)
    assert len(load_records(run_dir)) == 6


def test_bad_inputs_show_one_line_errors_in_the_widget(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    run_dir = tmp_path / "runs" / "studio"
    _pick(gen, "kenburns", seconds=0.4, width=48, height=48)
    # a path that does not exist: refused in place, and Run says why in one line
    gen.image.path_box.value = str(tmp_path / "nope.png")
    assert "image not found; check the path" in gen.image.note.value
    gen.run_btn.click()
    assert gen.message.text.startswith("error: ") and "nope.png: image not found" in gen.message.text
    assert "\n" not in gen.message.text and not run_dir.joinpath("results.jsonl").exists()
    # a file that is not an image
    (tmp_path / "notes.png").write_text("hello")
    gen.image.path_box.value = str(tmp_path / "notes.png")
    assert "cannot be read" in gen.image.note.value
    gen.image.path_box.value = ""
    # a bad parameter: refused beside the field; Run is disabled and says which parameter
    gen.form.set_value("fps", -5)
    assert gen.form.errors["fps"] == "must be > 0" and "must be &gt; 0" in gen.form.fields["fps"].note.value
    assert gen.run_btn.disabled and "parameter fps: must be &gt; 0" in gen.run_note.value
    gen.run()
    assert "parameter fps" in gen.message.text
    gen.form.set_value("fps", 25)
    assert not gen.run_btn.disabled and gen.run_note.value == "" and gen.message.text == ""
    gen.form.set_value("zoom", 9.0)  # outside kenburns' range: refused beside the field before Run
    assert gen.form.errors["zoom"] == "must be <= 4 (got 9)" and gen.run_btn.disabled
    gen.form.set_value("zoom", 1.15)
    # a string parameter the model refuses at run time: the job fails with its one-line error
    gen.form.set_value("direction", "sideways")
    gen.run_btn.click()
    assert gen.wait(60)
    (rec,) = load_records(run_dir)
    assert rec["status"] == "error" and "direction" in rec["error"]
    card = gen.results.rows[0]["clips"][0]
    assert card["status"] == "error" and "direction" in card["error"]
    assert gen.message.text.startswith("error: 0 clip(s) done, 1 failed")
    # a model that needs audio, without audio
    _pick(gen, "puppet", task="audio-to-video")
    gen.audio.choice.value = gen.audio.NONE
    gen.run_btn.click()
    assert "puppet needs audio" in gen.message.text


def test_history_load_settings_refills_generate(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "kenburns", seconds=0.4, width=48, height=64, zoom=1.3)
    gen.seeds.value = "7"
    gen.prompt.value = "a slow push"
    gen.metrics.value = ["temporal_flicker"]
    gen.run_btn.click()
    assert gen.wait(60)
    # scramble the form, then load the settings back from History
    _pick(gen, "static", width=80)
    gen.seeds.value = "0"
    gen.prompt.value = ""
    hist = studio.history
    assert len(hist.records) == 1 and "kenburns" in hist.jobs.options[0][0]
    assert "zoom" in hist.details.value and "a slow push" in hist.details.value
    studio.tabs.selected_index = 3
    hist.load_btn.click()
    assert studio.tabs.selected_index == 0
    assert gen.model.value == "kenburns" and gen.seeds.value == "7" and gen.prompt.value == "a slow push"
    assert gen.form.values()["zoom"] == pytest.approx(1.3)
    assert gen.form.values()["height"] == 64
    assert gen.image.path == (REPO / "data/images/portrait.png").resolve()
    # the same settings give the same job: nothing new runs
    gen.run_btn.click()
    assert gen.wait(60)
    assert len(load_records(tmp_path / "runs" / "studio")) == 1


def test_compare_grid_summary_favourites_and_selection_report(tmp_path):
    from workbench.experiment import Runner
    from workbench.suite import Suite
    from workbench.ui.compare import CompareTab

    small = {"seconds": 0.4, "width": 48, "height": 48}
    suite = Suite(name="cmp", cases=[{"id": "p", "image": str(REPO / "data/images/portrait.png")},
                                     {"id": "l", "image": str(REPO / "data/images/landscape.png")}],
                  models=[{"name": "static", "params": small}, {"name": "kenburns", "params": small}],
                  seeds=[0, 1], metrics=["temporal_flicker", "warp_error"], output=str(tmp_path / "runs" / "cmp"))
    Runner(suite).run_all()
    tab = CompareTab(tmp_path / "runs")
    assert "runs/cmp" in tab.picker.combo.options
    tab.picker.combo.value = "runs/cmp"
    assert len(tab.records) == 8
    assert len(tab.grid.rows) == 4 and all(len(r["clips"]) == 2 for r in tab.grid.rows)
    # best per score marked, the report's rule: static never moves, so its perfect flicker is trivial and
    # earns no star; the moving clip is the row's only candidate, so nobody is starred on these scores
    for row in tab.grid.rows:
        static = next(c for c in row["clips"] if c["title"] == "static")
        assert "\u2605" not in static["caption"], static["caption"]
    assert "bootstrap 95% CI" in tab.summary.value and "kenburns" in tab.summary.value
    # narrow the selection
    tab.models.value = ("kenburns",)
    assert all(len(r["clips"]) == 1 for r in tab.grid.rows)
    # favourites persist in the run folder and can filter the grid
    key = tab.grid.rows[0]["clips"][0]["key"]
    tab.grid.favourites = [key]
    assert (tmp_path / "runs" / "cmp" / "favourites.json").read_text().count(key) == 1
    tab.only_favs.value = True
    assert [c["key"] for r in tab.grid.rows for c in r["clips"]] == [key]
    # report of the selection: its own folder, clips pointing back into the run
    folder = tab.selection_folder(tab.selected())
    sel = load_records(folder)
    assert len(sel) == 1 and (folder / sel[0]["video"]).resolve().is_file()
    tab.report_btn.click()
    tab._report_worker.join(120)
    assert "report written" in tab.message.value, tab.message.value
    assert tab.report_path.is_file()


def test_evaluate_tab_scores_in_background_with_reasons_for_nulls(tmp_path):
    from workbench.models import get_generator
    from workbench.media import load_image
    from workbench.ui.evaluate import EvaluateTab

    img = load_image(REPO / "data/images/landscape.png", max_side=96)
    clip = get_generator("kenburns")(seconds=0.6, width=64, height=64).generate(GenerationRequest(image=img, seed=0))
    path = clip.save(tmp_path / "scene.mp4")
    tab = EvaluateTab(tmp_path / "runs")
    tab.path.value = str(path)
    tab.image.value = str(REPO / "data/images/landscape.png")
    tab.metrics.value = ["temporal_flicker", "warp_error", "identity"]
    assert tab.run()
    assert tab.wait(120)
    res = tab.result
    assert res.scores["temporal_flicker"] is not None
    assert res.scores["identity_similarity"] is None  # a landscape has no face
    assert "why n/a" in tab.table.value and "identity" in tab.table.value and "null" not in tab.table.value
    assert res.errors["identity_similarity"].split(": ", 1)[-1] in tab.table.value.replace("&#x27;", "'")
    assert "n/a (reasons in the table)" in tab.message.text
    if getattr(res, "series", None):
        assert tab.curves.value[:4] == b"\x89PNG" and tab.curves.layout.display is None
    # a clip that is not there: one-line error
    tab.path.value = str(tmp_path / "gone.mp4")
    assert not tab.run()
    assert tab.message.text.startswith("error:") and "not found" in tab.message.text


def test_video_source_serves_under_the_server_root_and_embeds_elsewhere(tmp_path):
    from workbench.ui.media import ServerInfo, video_source

    root = tmp_path / "root"
    (root / "runs" / "a b").mkdir(parents=True)
    inside = root / "runs" / "a b" / "clip.mp4"
    inside.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"0" * 100)
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(inside.read_bytes())
    (root / ".hidden").mkdir()
    hidden = root / ".hidden" / "c.mp4"
    hidden.write_bytes(inside.read_bytes())
    server = ServerInfo(root.resolve(), "/user/x/")
    src = video_source(inside, server=server)
    assert src.mode == "url" and src.url.startswith("/user/x/files/runs/a%20b/clip.mp4?v=")
    assert video_source(outside, server=server).mode == "embed"
    assert video_source(outside, server=server).data == outside.read_bytes()
    assert video_source(hidden, server=server).mode == "embed"  # Jupyter does not serve hidden folders
    big = video_source(outside, server=None, embed_max_mb=0.00001)
    assert big.mode == "error" and "too large to embed" in big.error
    assert video_source(tmp_path / "missing.mp4", server=server).mode == "error"
    # stills from text-to-image models are shown as images, not players
    from workbench.ui import clip_item

    still = root / "runs" / "still.png"
    still.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 50)
    item = clip_item(still, "sdxl", server=server)
    assert item["mime"] == "image/png" and item["src"].startswith("/user/x/files/runs/still.png")


def test_param_form_widgets_follow_default_types():
    import ipywidgets as W

    from workbench.models import get_generator
    from workbench.ui.forms import ParamForm

    form = ParamForm()
    form.set_model(get_generator("kenburns"))
    # numbers are typed as text and read here: a browser number box silently drops text it cannot read
    assert form.fields["fps"].kind == "int" and isinstance(form.fields["fps"].widget, W.Text)
    assert form.fields["zoom"].kind == "float" and form.fields["zoom"].widget.value == "1.15"
    assert form.fields["direction"].kind == "str"
    assert "default 1.15" in form.fields["zoom"].hint.value
    assert form.overrides() == {} and form.valid
    form.set_value("width", 0)
    assert not form.valid and "must be > 0" in form.errors["width"]
    form.set_value("width", 100)
    assert form.valid and form.overrides() == {"width": 100}
    assert isinstance(form.values()["zoom"], float) and isinstance(form.values()["fps"], int)


def test_widget_updates_from_a_worker_thread_reach_the_model():
    """Progress is set from the runner's thread: the trait values must land (no exception, last wins)."""
    import ipywidgets as W

    bar = W.IntProgress(min=0, max=1000)
    errors = []

    def work():
        try:
            for i in range(1001):
                bar.value = i
        except Exception as e:  # pragma: no cover - the failure we test for
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and bar.value == 1000


def test_uploads_become_inputs_with_preview_and_player(tmp_path):
    import io

    from PIL import Image

    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "puppet", task="audio-to-video", size=96)
    buf = io.BytesIO()
    Image.open(REPO / "data/images/portrait.png").save(buf, format="PNG")
    png = buf.getvalue()
    gen.image.upload.value = ({"name": "me.png", "type": "image/png", "size": len(png), "content": memoryview(png),
                               "last_modified": dt.datetime(2026, 1, 1)},)
    assert gen.image.choice.value == "upload: me.png"
    assert gen.image.path.parent == (tmp_path / "runs" / "uploads") and gen.image.path.read_bytes() == png
    assert gen.image.preview.value[:4] == b"\x89PNG" and gen.image.preview.layout.display is None
    wav = (REPO / "data/audio/hello.wav").read_bytes()
    gen.audio.upload.value = ({"name": "hi.wav", "type": "audio/wav", "size": len(wav), "content": memoryview(wav),
                               "last_modified": dt.datetime(2026, 1, 1)},)
    assert gen.audio.choice.value == "upload: hi.wav" and gen.audio.preview.value == wav
    assert "2.8 s" in gen.audio.note.value
    gen.metrics.value = ["lipsync"]
    gen.run_btn.click()
    assert gen.wait(120)
    (rec,) = load_records(tmp_path / "runs" / "studio")
    assert rec["status"] == "ok", rec.get("error")
    assert re.fullmatch(r"me-hi-[0-9a-f]{6}", rec["case"]) and rec["inputs"]["audio"]["path"].endswith("-hi.wav")
    assert rec["scores"]["sync_confidence"] is not None
    # a video-to-video model takes a source clip in place of the image: no preview, its length shown
    clip = tmp_path / "runs" / "studio" / rec["video"]
    gen.image.path_box.value = str(clip)
    assert gen.image.error is None and "frames" in gen.image.note.value


def test_evaluate_tab_shows_a_run_clips_stored_scores_and_curves(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "kenburns", seconds=0.6, width=64, height=64)
    gen.metrics.value = ["temporal_flicker", "warp_error"]
    gen.run_btn.click()
    assert gen.wait(60)
    ev = studio.evaluate
    (rec,) = load_records(tmp_path / "runs" / "studio")
    assert ev.clip.value and ev._records[ev.clip.value]["job_id"] == rec["job_id"]
    assert "temporal_flicker" in ev.table.value and "pixel-mae" in ev.table.value
    if rec.get("series"):
        assert ev.curves.value[:4] == b"\x89PNG" and ev.curves.layout.display is None
    assert ev.player.rows[0]["clips"][0]["data"] or ev.player.rows[0]["clips"][0]["src"]


def test_wandb_checkbox_mirrors_the_run_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "static", seconds=0.3, width=48, height=48)
    gen.metrics.value = ["temporal_flicker"]
    gen.wandb.value = True
    gen.run_btn.click()
    assert gen.wait(120)
    run = tmp_path / "runs" / "studio"
    assert [r["status"] for r in load_records(run)] == ["ok"]
    assert list(run.glob("wandb/offline-run-*")), "an offline W&B run was written in the run folder"


def test_a_suite_the_runner_refuses_shows_its_one_line_reason(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "static", seconds=0.3, width=48, height=48)
    gen.seeds.value = "1, x"
    # refused before Run, beside the field and at the button
    assert "&#x27;x&#x27; is not a seed" in gen.seeds_note.value and gen.run_btn.disabled
    assert "not a seed" in gen.run_note.value
    gen.run()
    assert gen.message.text == "error: seeds: 'x' is not a seed; write 0, or 0, 1, 2, or 0-3"
    gen.seeds.value = "-3"
    assert "negative" in gen.seeds_note.value and gen.run_btn.disabled
    gen.run()
    assert gen.message.text.startswith("error: seeds: -3 is negative"), gen.message.text
    assert "\n" not in gen.message.text and ".yaml" not in gen.message.text
    assert not (tmp_path / "runs" / "studio" / "results.jsonl").exists()
    assert not list((tmp_path / "runs").rglob("suite-*.yaml")), "nothing is written before the form is valid"
    gen.seeds.value = "3"
    assert gen.seeds_note.value == "" and not gen.run_btn.disabled and gen.message.text == ""


def test_speak_a_text_drives_the_talking_head(tmp_path):
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make system-deps installs it)")
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "puppet", task="audio-to-video", size=96)
    gen.audio.choice.value = gen.audio.SPEAK
    assert gen.audio.words.layout.display is None and gen.audio.voice.layout.display is None
    gen.run_btn.click()
    assert "words to speak" in gen.message.text  # nothing typed yet
    # long enough (> 2.7 s spoken) for sync_confidence: its null shifts the audio 1.1 s beyond the search
    gen.audio.words.value = "Hello there, I am a talking head. I read these words aloud, one after another."
    gen.audio.listen.click()
    assert gen.audio.preview.value[:4] == b"RIFF" and gen.audio.preview.layout.display is None
    gen.metrics.value = ["lipsync"]
    gen.run_btn.click()
    assert gen.wait(120)
    (rec,) = load_records(tmp_path / "runs" / "studio")
    assert rec["status"] == "ok", rec.get("error")
    assert rec["inputs"]["audio"]["path"].endswith(".wav")
    assert rec["scores"].get("sync_confidence") is not None, rec.get("score_errors")


def test_run_options_are_refused_in_place_and_reach_the_suite(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "kenburns")
    assert gen.options_box.layout.display == "none"  # model-free: no run options
    opts = [n for n, d in gen.catalogue.items() if d.get("options") and d["task"] == "image-to-video"]
    if not opts:
        pytest.skip("no registered model takes run options")
    _pick(gen, opts[0])
    assert gen.options_box.layout.display is None
    gen.options.value = '{"dtype": '
    assert "not valid JSON" in gen.options_note.value and gen.run_btn.disabled
    gen.options.value = '{"warp_speed": 9}'
    assert "warp_speed" in gen.options_note.value and gen.run_btn.disabled
    gen.run()
    assert "warp_speed" in gen.message.text
    gen.options.value = '{"dtype": "fp32", "vae_tiling": true}'
    assert gen.options_note.value == "" and "warp_speed" not in gen.run_note.value
    assert gen.suite_dict()["models"][0]["options"] == {"dtype": "fp32", "vae_tiling": True}


# -- the creative workflow in the Generate tab: Elements, auto, best-of-N -------------------------------
def test_an_element_as_the_image_runs_with_its_portrait_and_prompt(tmp_path, monkeypatch):
    import shutil

    user = tmp_path / "my-elements"
    shutil.copytree(REPO / "data/elements/eileen", user / "ada")  # a user Element: no `elements:` needed
    (user / "ada" / "element.json").write_text((user / "ada" / "element.json").read_text().replace('"eileen"', '"ada"'))
    (user / "broken").mkdir()
    (user / "broken" / "element.json").write_text("{ nope")
    monkeypatch.setenv("WORKBENCH_ELEMENTS", str(user))
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "kenburns", seconds=0.3, width=48, height=48)
    assert {"element: eileen", "element: ada", "element: broken (broken)"} <= set(gen.image.choice.options)
    gen.image.choice.value = "element: broken (broken)"
    assert "corrupt" in gen.image.error and gen.image.preview.layout.display == "none"
    gen.image.choice.value = "element: eileen"
    portrait = (REPO / "data/elements/eileen/ref-00.png").resolve()
    assert gen.image.error is None and gen.image.path == portrait
    assert gen.image.preview.value[:4] == b"\x89PNG" and gen.image.preview.layout.display is None
    assert "an astronaut" in gen.image.note.value  # its prompt snippet, appended by the suite step
    suite = gen.suite_dict()
    assert suite["cases"][0]["image"] == "element:eileen" and suite["elements"] == str((REPO / "data/elements").resolve())
    gen.prompt.value = "smiles"
    gen.metrics.value = ["temporal_flicker"]
    gen.run_btn.click()
    assert gen.wait(60)
    (rec,) = load_records(tmp_path / "runs" / "studio")
    assert rec["status"] == "ok", rec.get("error")
    assert rec["workflow"]["element"]["name"] == "eileen"
    assert Path(rec["inputs"]["image"]["path"]).resolve() == portrait
    assert rec["prompt"] == "smiles, an astronaut in a white suit"
    # History -> Generate brings the Element back, without the snippet in the typed prompt
    gen.image.choice.value = gen.image.NONE
    gen.load_settings(rec)
    assert gen.image.element.name == "eileen" and gen.prompt.value == "smiles"
    # the user's own library: `element:ada` needs no `elements:` folder
    gen.image.choice.value = "element: ada"
    assert "elements" not in gen.suite_dict() and gen.suite_dict()["cases"][0]["image"] == "element:ada"


def test_auto_shows_the_routers_proposals_and_runs_the_pick(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    gen.task.value = "audio-to-video"
    assert gen.model.value != "auto", "auto is offered, not chosen for the user"
    _pick(gen, "auto", task="audio-to-video", size=96)  # the form holds the pick's parameters
    gen.image.select_sample("portrait.png")
    gen.audio.select_sample("hello.wav")
    panel = gen.route_panel.value
    assert gen.route_panel.layout.display is None and "router" in panel
    assert "1. <b>puppet</b>" in panel and "speech and a face" in panel and "needs a GPU" in panel
    assert gen.routes()[0].model == "puppet" and gen.form.model.name == "puppet"
    assert gen.suite_dict()["models"][0]["name"] == "auto"
    gen.metrics.value = ["temporal_flicker"]
    gen.run_btn.click()
    assert gen.wait(60)
    (rec,) = load_records(tmp_path / "runs" / "studio")
    assert rec["status"] == "ok", rec.get("error")
    assert rec["model_name"] == "puppet" and rec["workflow"]["route"]["model"] == "puppet"
    assert rec["params"]["size"] == 96
    assert "\u2192 puppet" in gen.results.rows[0]["clips"][0]["title"]
    # a landscape (no face) with speech: the router moves off the talking head, and says why
    gen.image.select_sample("landscape.png")
    puppet = next(r for r in gen.routes() if r.model == "puppet")
    assert gen.routes()[0].model != "puppet" and not puppet.usable and "no face" in puppet.reasons[0]
    assert gen.form.model.name == gen.routes()[0].model  # the form follows the pick
    # nothing to go on: Run says why in one line and runs nothing more
    gen.image.choice.value = gen.image.NONE
    gen.audio.choice.value = gen.audio.NONE
    gen.run_btn.click()
    assert gen.message.text.startswith("error: auto: no model here fits") and "\n" not in gen.message.text
    assert len(load_records(tmp_path / "runs" / "studio")) == 1


def test_best_of_n_ranks_the_outputs_and_marks_the_kept_takes(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "puppet", task="audio-to-video", size=96, fps=12)
    assert gen.best_of.layout.display == "none"  # one output: nothing to rank
    gen.metrics.value = ["temporal_flicker"]
    gen.outputs.value = "3"
    assert gen.best_of.layout.display is None
    gen.best_of.objective.value = "temporal_flicker: 1"
    gen.best_of.keep.value = "9"
    assert gen.best_of.error == "keep: must be 1 to 3 (the outputs per seed), got 9" and gen.run_btn.disabled
    gen.best_of.keep.value = "2"
    assert gen.best_of.error is None and "keeps the best 2" in gen.best_of.note.value
    suite = gen.suite_dict()
    assert suite["objective"] == {"temporal_flicker": 1} and suite["best_of"] == {"n": 3, "keep": 2}
    gen.run_btn.click()
    assert gen.wait(60)
    run = tmp_path / "runs" / "studio"
    assert len(load_records(run)) == 3 and (run / "bestofn.json").is_file()
    clips = gen.results.rows[0]["clips"]
    assert len(clips) == 3 and sorted(c["rank"] for c in clips) == [1, 2, 3]
    kept = [c for c in clips if c["kept"]]
    # a kept take has its own badge; the star means "best in row" only
    assert len(kept) == 2 and all(c["badge"] == "kept" and "\u2605" not in c["title"] for c in kept)
    assert all("kept</span>" in c["caption"] for c in kept) and all("objective" in c["caption"] for c in clips)
    assert not any(c["badge"] for c in clips if not c["kept"])
    assert {c["rank"] for c in kept} == {1, 2}
    assert "2 kept" in gen.message.text
    # Compare follows the run and marks the same kept takes
    shown = [c for r in studio.compare.grid.rows for c in r["clips"]]
    assert sorted(c["key"] for c in shown if "kept" in c["badge"]) == sorted(c["key"] for c in kept)


def test_a_bad_objective_is_refused_in_place_and_runs_nothing(tmp_path):
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "static", seconds=0.3, width=48, height=48)
    gen.metrics.value = ["temporal_flicker"]
    gen.outputs.value = "2"
    gen.best_of.objective.value = "temporal_flicker: 1, sharpness_of_wit: 2"
    assert "unknown score 'sharpness_of_wit'" in gen.best_of.error and "\u2716" in gen.best_of.note.value
    assert gen.run_btn.disabled
    gen.best_of.objective.value = "temporal_flicker: -1"  # a direction is not a negative weight
    assert "positive" in gen.best_of.error
    gen.best_of.objective.value = "identity_similarity: 1"  # a score the chosen metrics do not compute
    assert "add identity to metrics" in gen.best_of.error
    gen.run()
    assert gen.message.text.startswith("error: objective") and "\n" not in gen.message.text
    assert not (tmp_path / "runs" / "studio" / "results.jsonl").exists()
    gen.outputs.value = "1"  # one output: the objective is not used, nothing blocks Run
    assert gen.best_of.error is None and not gen.run_btn.disabled


def test_a_long_image_name_with_a_prompt_still_makes_a_valid_case_id(tmp_path):
    from PIL import Image

    from workbench.names import MAX_NAME, check_name, slug
    from workbench.suite import load_suite

    assert slug("__hidden name__") == "hidden-name" and slug("___") == "x" and slug("abcdef", max_len=3) == "abc"
    studio = _studio(tmp_path)
    gen = studio.generate
    _pick(gen, "kenburns", seconds=0.3, width=48, height=48)
    image = tmp_path / ("_" + "a" * 70 + ".png")  # a stem longer than a case id may be, with a leading '_'
    Image.new("RGB", (48, 48), (120, 60, 30)).save(image)
    gen.image.path_box.value = str(image)
    gen.prompt.value = "a slow zoom"
    assert gen.image.error is None
    case_id = gen.suite_dict()["cases"][0]["id"]
    assert len(case_id) <= MAX_NAME and check_name(case_id, "case id") == case_id
    assert case_id.startswith("aaaa") and re.fullmatch(r"a{40}-[0-9a-f]{6}", case_id)  # stem shortened, digest kept
    assert load_suite(gen.write_suite()).cases[0].id == case_id
    gen.prompt.value = "a fast pan"  # another prompt: another case
    assert gen.suite_dict()["cases"][0]["id"] != case_id


def test_image_picker_refuses_a_pipe_and_a_bomb_without_reading(tmp_path):
    """The picker uses the run's own checks: a named pipe is refused before any read (no hang), a huge image
    from its header (no decode)."""
    import os

    gen = _studio(tmp_path).generate
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    gen.image.path_box.value = str(fifo)
    assert "not a regular file" in gen.image.note.value
    from PIL import Image

    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")
    gen.image.path_box.value = str(tmp_path / "bomb.png")
    assert "megapixels" in gen.image.note.value
