"""`workbench generate` and `workbench speak` as a user types them: a run folder with N records, a
report and an editable suite.yaml that `workbench run` accepts; every bad input one line, exit 2,
nothing written."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.store import RunStore
from workbench.suite import load_suite


@pytest.fixture(scope="module")
def images(repo_root):
    return repo_root / "data" / "images"


SMALL = ["--param", "width=64", "--param", "height=64", "--param", "seconds=0.4", "--param", "fps=10"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_generate_makes_a_run_folder_with_records_report_and_suite(images, tmp_path):
    out = tmp_path / "gen"
    r = invoke("generate", "kenburns", "--image", str(images / "product.png"), "--prompt", "a cup on a table",
               "--seeds", "0-2", *SMALL, "--metrics", "temporal_flicker", "--out", str(out))
    assert r.exit_code == 0, r.output
    records = RunStore(out).latest()
    assert len(records) == 3 and all(rec["status"] == "ok" and rec["model"] == "kenburns" for rec in records.values())
    assert sorted(rec["seed"] for rec in records.values()) == [0, 1, 2]
    assert all((out / rec["video"]).is_file() and "temporal_flicker" in rec["scores"] for rec in records.values())
    assert (out / "report.html").is_file() and f"run folder: {out}" in r.stdout and "report: " in r.stdout
    suite = load_suite(out / "suite.yaml")  # the saved suite is a normal, editable suite
    assert suite.models[0].params["width"] == 64 and suite.seeds == [0, 1, 2] and suite.output_dir() == out
    case = suite.cases[0]
    assert case.prompt == "a cup on a table" and case.id.startswith("product-")  # the Studio's content-named id
    r = invoke("run", str(out / "suite.yaml"))
    assert r.exit_code == 0 and "0 jobs done" in r.stdout, r.output  # re-running it does nothing new


def test_generate_talking_head_from_text(images, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SPEECH_CACHE", str(tmp_path / "speech"))
    out = tmp_path / "talk"
    r = invoke("generate", "puppet", "--image", str(images / "portrait.png"), "--text", "Hello there",
               "--voice", "en-us", "--param", "size=96", "--param", "fps=10", "--metrics", "lipsync",
               "--out", str(out))
    assert r.exit_code == 0, r.output
    (rec,) = RunStore(out).latest().values()
    assert rec["status"] == "ok" and rec["workflow"]["speech"]["text"] == "Hello there"
    assert "sync_confidence" in rec["scores"]
    assert load_suite(out / "suite.yaml").cases[0].text == "Hello there"


@pytest.mark.parametrize("args, says", [
    (["wan"], "did you mean"),
    (["kenburns", "--image", "missing.png"], "not found"),
    (["kenburns"], "give --image"),
    (["puppet", "--image", "{img}"], "needs speech"),
    (["kenburns", "--image", "{img}", "--seeds", "3-1"], "runs backwards"),
    (["kenburns", "--image", "{img}", "--seeds", "-1"], "negative"),
    (["kenburns", "--image", "{img}", "--param", "zom=1.1"], "unknown parameter"),
    (["kenburns", "--image", "{img}", "--param", "width"], "KEY=VALUE"),
    (["kenburns", "--image", "{img}", "--param", "width=0"], "outside"),
    (["kenburns", "--image", "{img}", "--metrics", "nope"], "unknown metric"),
    (["puppet", "--image", "{img}", "--text", "hi", "--voice", "xx-nope"], "no voice"),
    (["puppet", "--image", "{img}", "--text", "hi", "--audio", "{img}"], "not both"),
    (["wan2.1-t2v-1.3b", "--image", "{img}"], "takes no image"),
    (["wan2.1-i2v-480p", "--image", "{img}"], "workbench weights fetch wan2.1-i2v-480p"),
])
def test_generate_bad_input_is_one_line_exit_2_nothing_written(images, tmp_path, args, says):
    out = tmp_path / "never"
    args = [a.replace("{img}", str(images / "portrait.png")) for a in args]
    r = invoke("generate", *args, "--out", str(out))
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.output
    assert not out.exists()


def test_generate_unknown_model_lists_close_names(images):
    r = invoke("generate", "kenbrns", "--image", str(images / "product.png"))
    assert r.exit_code == 2 and "kenburns" in r.output and "unknown model 'kenbrns'" in r.output


def test_speak(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SPEECH_CACHE", str(tmp_path / "cache"))
    r = invoke("speak", "Hello from the workbench", "--voice", "en-us")
    assert r.exit_code == 0, r.output
    path, rest = r.stdout.strip().split(": ", 1)
    assert path.endswith(".wav") and str(tmp_path / "cache") in path and "espeak-ng:en-us" in rest
    seconds = float(rest.split(" s,")[0])
    assert 0.5 < seconds < 5
    r2 = invoke("speak", "Hello from the workbench", "--voice", "en-us", "--out", str(tmp_path / "out" / "hi.wav"))
    assert r2.exit_code == 0 and "cached" in r2.stdout and (tmp_path / "out" / "hi.wav").is_file()
    from workbench.media import load_audio

    assert abs(load_audio(tmp_path / "out" / "hi.wav").duration - seconds) < 0.01
    for args, says in ((["  "], "empty"), (["hi", "--voice", "zz-nope"], "no voice"),
                       (["hi", "--voice", "nope:x"], "unknown speech engine")):
        r = invoke("speak", *args)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and says in r.output, r.output
