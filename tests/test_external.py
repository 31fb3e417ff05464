"""External talking-head models run from recipes, against stand-in scripts that mimic each repo's convention
(arguments, an input JSON / YAML, a `prompt@@image@@audio` list file) and where it writes its clip."""
from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from workbench.media import Audio
from workbench.models import GenerationError, GenerationRequest, get_generator, registry
from workbench.models import external

# the talking-head recipes (the face-swap ones take a source video: tests/test_faceswap.py)
SHIPPED = sorted(p.stem for p in external.RECIPES_DIR.glob("*.yaml") if external.load_recipe(p).task != "face-swap")

# where each stand-in writes its clip, as the real repo does: (how, flag or position)
OUTPUT_CONVENTION = {
    "infinitetalk": ("stem", "--save_file"),       # --save_file STEM -> STEM.mp4
    "sadtalker": ("dir", "--result_dir"),           # a timestamped file in the folder
    "sonic": ("position", 2),                       # demo.py IMAGE AUDIO OUTPUT
    "omniavatar": ("hp", "--hp"),                   # --hp seed=..,output_dir=DIR
    "hallo3": ("dir", "--output-dir"),
    "fantasytalking": ("dir", "--output_dir"),
    "echomimicv3": ("dir", "--save_path"),
    "wan2.2-s2v": ("file", "--save_file"),
    "latentsync": ("file", "--video_out_path"),
    "musetalk": ("dir", "--result_dir"),
}

STANDIN = '''
import glob, json, os, sys
from pathlib import Path
import numpy as np
import yaml
from workbench.media import write_video

HOW, WHERE = {how!r}, {where!r}
argv = sys.argv[1:]
if os.environ.get("STANDIN_FAIL"):
    print("loading weights...", file=sys.stderr)
    print("RuntimeError: CUDA out of memory (stand-in)", file=sys.stderr)
    sys.exit(3)
if os.environ.get("STANDIN_SLEEP"):
    import time; time.sleep(float(os.environ["STANDIN_SLEEP"]))
seen = []
def walk(x):
    if isinstance(x, dict):
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
    elif isinstance(x, str):
        seen.extend(x.split("@@"))
for a in argv:
    seen.append(a)
    p = Path(a)
    if p.is_file() and p.suffix in (".json", ".yaml", ".txt"):
        text = p.read_text()
        walk(json.loads(text) if p.suffix == ".json" else yaml.safe_load(text) if p.suffix == ".yaml"
             else text.splitlines())
for d in glob.glob(os.path.join(os.path.dirname(argv[argv.index("--test_data_path") + 1]), "data", "*.json")) \\
        if "--test_data_path" in argv else []:
    walk(json.loads(Path(d).read_text()))
files = [s for s in seen if os.path.isfile(s)]
kinds = sorted({{Path(f).suffix for f in files}})
if HOW == "stem":
    out = argv[argv.index(WHERE) + 1] + ".mp4"
elif HOW == "file":
    out = argv[argv.index(WHERE) + 1]
elif HOW == "position":
    out = [a for a in argv if not a.startswith("-")][WHERE]
elif HOW == "hp":
    hp = dict(kv.split("=", 1) for kv in argv[argv.index(WHERE) + 1].split(","))
    out = os.path.join(hp["output_dir"], "sample_0", "result.mp4")
else:
    out = os.path.join(argv[argv.index(WHERE) + 1], "2026_01_01", "result.mp4")
frames = np.random.RandomState(0).randint(0, 255, (12, 30, 40, 3)).astype(np.uint8)
write_video(out, frames, 12.5)
Path("seen.json").write_text(json.dumps({{"files": files, "kinds": kinds, "text": seen, "cwd": os.getcwd()}}))
'''


def script_path(recipe: external.Recipe) -> tuple[str, bool]:
    """The script a recipe runs (relative to the repo) and whether it is a module (-m)."""
    cmd = recipe.command
    if "-m" in cmd:
        return cmd[cmd.index("-m") + 1].replace(".", "/") + ".py", True
    return next(c for c in cmd if c.endswith(".py")), False


def standin_repo(root: Path, name: str) -> Path:
    recipe = external.load_recipe(external.find_recipe(name))
    rel, module = script_path(recipe)
    repo = root / name
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    how, where = OUTPUT_CONVENTION[name]
    (repo / rel).write_text(STANDIN.format(how=how, where=where))
    if module:
        (repo / Path(rel).parent / "__init__.py").write_text("")
    return repo


@pytest.fixture(autouse=True)
def work_in_tmp(tmp_path, monkeypatch) -> None:
    """Work folders (kept after a failed run) go under the test's tmp folder, not /tmp."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture()
def torchrun(tmp_path, monkeypatch) -> None:
    """OmniAvatar runs under torchrun: a shim that drops its launcher flags and runs the script."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "torchrun"
    shim.write_text(f"#!/bin/sh\nwhile [ \"${{1#--}}\" != \"$1\" ]; do shift; done\nexec {sys.executable} \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(scope="module")
def inputs() -> dict:
    y, x = np.mgrid[0:48, 0:48]
    image = np.stack([x * 5, y * 5, (x + y) * 2], -1).astype(np.uint8)
    t = np.arange(16000) / 16000.0
    return {"image": image, "audio": Audio((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)}


def test_every_recipe_is_registered_with_install_notes():
    assert set(SHIPPED) == set(OUTPUT_CONVENTION) and len(SHIPPED) == 10
    reg = registry()
    for name in SHIPPED:
        info = reg[name].describe()
        assert info["task"] in ("audio-to-video", "video-to-video")
        assert info["install"] and info["licence"] and info["repo"].startswith("https://github.com/")
        assert set(info["requires"]) == {"image", "audio"} and info["weights_available"] is False
    assert "puppet" in reg  # the floor stays registered beside them


@pytest.mark.parametrize("name", SHIPPED)
def test_recipe_runs_and_output_is_normalised(name, tmp_path, inputs, torchrun):
    repo = standin_repo(tmp_path, name)
    cls = get_generator(name)
    gen = cls(repo_dir=str(repo), python=sys.executable, fps=25, width=64, height=64, timeout=120)
    prompt = "a woman speaks calmly" if "prompt" in cls.accepts else ""
    calls = []
    clip = gen.generate(GenerationRequest(image=inputs["image"], audio=inputs["audio"], prompt=prompt, seed=7),
                        progress=lambda i, n: calls.append((i, n)))
    assert clip.fps == 25 and clip.size == (64, 64) and clip.num_frames == 24  # 12 frames at 12.5 fps -> 25 fps
    assert clip.audio is not None and clip.audio.sample_rate == 16000
    assert abs(clip.audio.duration - clip.duration) < 1e-3  # the driving audio, cut to the clip
    assert np.allclose(clip.audio.samples[:1000], inputs["audio"].samples[:1000])
    assert calls == [(0, 1), (1, 1)]
    seen = json.loads((repo / "seen.json").read_text())
    assert Path(seen["cwd"]) == repo  # runs inside the repo folder
    expected = {".mp4", ".wav"} if cls.recipe.video_from_image else {".png", ".wav"}
    assert expected <= set(seen["kinds"]), seen
    if prompt:
        assert prompt in seen["text"]


def test_failure_carries_the_stderr_tail(tmp_path, inputs, monkeypatch):
    repo = standin_repo(tmp_path, "sadtalker")
    monkeypatch.setenv("STANDIN_FAIL", "1")
    gen = get_generator("sadtalker")(repo_dir=str(repo), python=sys.executable)
    with pytest.raises(GenerationError) as e:
        gen.generate(GenerationRequest(image=inputs["image"], audio=inputs["audio"]))
    msg = str(e.value)
    assert msg.startswith("sadtalker: exited with 3: loading weights... | RuntimeError: CUDA out of memory (stand-in)")
    assert "\n" not in msg and "inference.py" in msg


def test_timeout_stops_the_run(tmp_path, inputs, monkeypatch):
    repo = standin_repo(tmp_path, "sonic")
    monkeypatch.setenv("STANDIN_SLEEP", "30")
    gen = get_generator("sonic")(repo_dir=str(repo), python=sys.executable, timeout=1.5)
    with pytest.raises(GenerationError, match=r"^sonic: stopped after the 1.5 s timeout; raise params.timeout"):
        gen.generate(GenerationRequest(image=inputs["image"], audio=inputs["audio"]))


def test_missing_repo_names_the_env_var_and_install(inputs, tmp_path, monkeypatch):
    monkeypatch.delenv("INFINITETALK_DIR", raising=False)
    with pytest.raises(GenerationError, match=r"^infinitetalk: repo folder not set; clone https://github.com/MeiGen-AI/"
                                              r"InfiniteTalk and set params.repo_dir or INFINITETALK_DIR \(install: git"):
        get_generator("infinitetalk")().generate(GenerationRequest(image=inputs["image"], audio=inputs["audio"]))
    monkeypatch.setenv("INFINITETALK_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(GenerationError, match=r"repo folder .*nowhere not found; set params.repo_dir or INFINITETALK_DIR"):
        get_generator("infinitetalk")().generate(GenerationRequest(image=inputs["image"], audio=inputs["audio"]))


def test_no_output_and_bad_python_are_one_line(tmp_path, inputs):
    repo = tmp_path / "empty"
    (repo).mkdir()
    (repo / "demo.py").write_text("print('done')\n")
    with pytest.raises(GenerationError, match=r"^sonic: the command succeeded but wrote no clip matching .*sonic.mp4"):
        get_generator("sonic")(repo_dir=str(repo), python=sys.executable).generate(
            GenerationRequest(image=inputs["image"], audio=inputs["audio"]))
    with pytest.raises(GenerationError, match=r"cannot run '/no/such/python'; set params.python"):
        get_generator("sonic")(repo_dir=str(repo), python="/no/such/python").generate(
            GenerationRequest(image=inputs["image"], audio=inputs["audio"]))


def test_requests_it_cannot_honour(inputs):
    with pytest.raises(GenerationError, match=r"^model 'sadtalker' takes no prompt; remove `prompt:`"):
        get_generator("sadtalker").check_request(GenerationRequest(image=inputs["image"], audio=inputs["audio"],
                                                                   prompt="smile"))
    with pytest.raises(GenerationError, match=r"^model 'infinitetalk' needs audio; add `audio:` to the case"):
        get_generator("infinitetalk").check_request(GenerationRequest(image=inputs["image"]))


USER_RECIPE = textwrap.dedent("""\
    name: my-talker
    description: a user's own model
    repo: https://github.com/example/my-talker
    licence: MIT
    install: git clone it
    command: ["{python}", run.py, --face, "{image}", --speech, "{audio}", --out, "{out}/clip.mp4", --fps, "{fps}"]
    output: "{out}/clip.mp4"
    fps: 10
    timeout: 60
""")


def test_user_recipes_by_folder_and_by_file(tmp_path, inputs, monkeypatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "my-talker.yaml").write_text(USER_RECIPE)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "run.py").write_text(
        "import sys, numpy as np\nfrom workbench.media import write_video\na = sys.argv\n"
        "write_video(a[a.index('--out') + 1], np.full((5, 32, 32, 3), 99, np.uint8), float(a[a.index('--fps') + 1]))\n")
    monkeypatch.setenv("WORKBENCH_RECIPES", str(folder))
    found = external.register_recipes()
    assert "my-talker" in found and "my-talker" in registry()
    clip = get_generator("my-talker")(repo_dir=str(repo), python=sys.executable).generate(
        GenerationRequest(image=inputs["image"], audio=inputs["audio"]))
    assert clip.num_frames == 5 and clip.fps == 10 and clip.audio is not None
    by_file = get_generator("external")(recipe=str(folder / "my-talker.yaml"), repo_dir=str(repo),
                                         python=sys.executable, fps=20)
    clip = by_file.generate(GenerationRequest(image=inputs["image"], audio=inputs["audio"]))
    assert clip.fps == 20 and clip.num_frames == 5  # the command got {fps}=20: nothing to resample


def test_bad_recipe_names_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(USER_RECIPE.replace("timeout: 60", "timeout: 60\nretries: 3"))
    with pytest.raises(GenerationError, match=r"recipe .*bad.yaml: retries: Extra inputs are not permitted"):
        external.load_recipe(bad)
    with pytest.raises(GenerationError, match=r"no recipe named 'nope'"):
        external.find_recipe("nope")


def test_suite_mixing_baselines_diffusers_t2i_chain_and_external(tiny_models, tmp_path, repo_root):
    """The issue's end-to-end suite: baselines, two tiny diffusers families, text-to-image -> image-to-video,
    and a stand-in talking-head model, through the real runner."""
    import yaml
    from PIL import Image

    from workbench.experiment import Runner
    from workbench.suite import load_suite

    face = Image.open(repo_root / "data" / "images" / "portrait.png").convert("RGB")
    face.resize((128, 128)).save(tmp_path / "face.png")
    Audio.load(repo_root / "data" / "audio" / "hello.wav").trim(1.0).save_wav(tmp_path / "speech.wav")
    repo = standin_repo(tmp_path / "repos", "sadtalker")
    small = {"num_frames": 5, "width": 32, "height": 32, "num_inference_steps": 1}
    spec = {
        "name": "mixed", "output": "run", "seeds": [0], "metrics": ["temporal_flicker"],
        "cases": [{"id": "face", "image": "face.png", "audio": "speech.wav", "prompt": "a person talks"}],
        "models": [
            "static", "puppet",
            {"name": "sdxl", "label": "still", "params": {"model_id": str(tiny_models["sdxl"]), "width": 32,
                                                          "height": 32, "num_inference_steps": 1}},
            {"name": "wan2.1-i2v-480p", "label": "wan-from-still", "image_from": "still",
             "params": {"model_id": str(tiny_models["wan-i2v"]), **small}},
            {"name": "ltx-video-i2v", "label": "ltx",
             "params": {"model_id": str(tiny_models["ltx"]), **small, "num_frames": 9}},
            {"name": "sadtalker", "params": {"repo_dir": str(repo), "python": sys.executable, "fps": 25,
                                             "width": 32, "height": 32}},
        ]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    records = Runner(load_suite(tmp_path / "suite.yaml")).run_all()
    assert len(records) == 6, [r.get("error") for r in records]
    for rec in records:
        assert rec["status"] == "ok", (rec["model"], rec.get("error"))
    by_model = {r["model_name"]: r for r in records}  # "model" is the label
    assert by_model["sdxl"]["image_out"].endswith(".png")  # the still the chained I2V model animates
    assert by_model["sadtalker"]["clip"]["fps"] == 25 and by_model["sadtalker"]["clip"]["audio"] is True
    assert by_model["wan2.1-i2v-480p"]["clip"]["frames"] == 5 and by_model["ltx-video-i2v"]["clip"]["frames"] == 9


# ------------------------------------------------------------------ recipes from `- name` and their repo folder
def _suite(tmp_path: Path, models: list, repo_root: Path) -> Path:
    import yaml
    from PIL import Image

    Image.open(repo_root / "data" / "images" / "portrait.png").convert("RGB").resize((96, 96)).save(tmp_path / "face.png")
    Audio.load(repo_root / "data" / "audio" / "hello.wav").trim(0.6).save_wav(tmp_path / "speech.wav")
    spec = {"name": "talkers", "output": "run", "seeds": [0], "metrics": ["temporal_flicker"],
            "cases": [{"id": "face", "image": "face.png", "audio": "speech.wav"}], "models": models}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp_path / "suite.yaml"


def test_every_recipe_validates_from_its_name(tmp_path, repo_root):
    """`- NAME`, the README's `params: {repo_dir, python}` and `{name: external, params: {recipe: NAME}}` all
    validate with the recipe's own defaults (no width 0 / fps 0 refusals)."""
    from workbench.suite import load_suite

    models = [*SHIPPED, *({"name": n, "label": f"{n}-dir", "params": {"repo_dir": str(tmp_path), "python": sys.executable}}
                          for n in SHIPPED), {"name": "external", "params": {"recipe": "infinitetalk"}}]
    suite = load_suite(_suite(tmp_path, models, repo_root))
    assert len(suite.models) == 2 * len(SHIPPED) + 1
    for name in SHIPPED:
        params = get_generator(name).resolve_params({})
        assert (params["width"], params["height"]) == (None, None) and params["fps"] == get_generator(name).recipe.fps


def test_every_recipe_runs_from_its_repo_folder(tmp_path, repo_root, torchrun):
    """The README's form, nothing else set: the clip keeps the model's own size, at the recipe's frame rate,
    with the driving audio."""
    from workbench.experiment import Runner
    from workbench.suite import load_suite

    models = [{"name": n, "params": {"repo_dir": str(standin_repo(tmp_path / "repos", n)), "python": sys.executable}}
              for n in SHIPPED]
    records = Runner(load_suite(_suite(tmp_path, models, repo_root))).run_all()
    assert {r["model_name"]: r["error"] for r in records if r["status"] != "ok"} == {}
    for rec in records:
        fps = get_generator(rec["model_name"]).recipe.fps
        assert (rec["clip"]["width"], rec["clip"]["height"]) == (40, 30) and rec["clip"]["fps"] == fps
        assert rec["clip"]["audio"] is True


def test_a_bare_name_runs_with_the_env_var(tmp_path, repo_root, monkeypatch):
    from workbench.experiment import Runner
    from workbench.suite import load_suite

    monkeypatch.setenv("SADTALKER_DIR", str(standin_repo(tmp_path / "repos", "sadtalker")))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # `python`
    (rec,) = Runner(load_suite(_suite(tmp_path, ["sadtalker"], repo_root))).run_all()
    assert rec["status"] == "ok", rec["error"]


@pytest.mark.parametrize("params, message", [
    ({"width": 64}, r"model 'sadtalker': set both width and height \(the clip is fitted to them\) or neither"),
    ({"width": 0, "height": 64}, r"model 'sadtalker': width must be an integer in \[8, 8192\] or left out"),
    ({"fps": 0}, r"model 'sadtalker': fps must be a number in \(0, 240\] or left out"),
])
def test_output_size_and_rate_are_checked_at_load(params, message, tmp_path, repo_root):
    from workbench.suite import SuiteError, load_suite

    with pytest.raises(SuiteError, match=message):
        load_suite(_suite(tmp_path, [{"name": "sadtalker", "params": params}], repo_root))
    with pytest.raises(SuiteError, match=r"model 'external': fps must be a number"):
        load_suite(_suite(tmp_path, [{"name": "external", "params": {"recipe": "sonic", "fps": -1.0}}], repo_root))


def test_install_hint_is_never_cut_mid_word(inputs, monkeypatch):
    monkeypatch.delenv("INFINITETALK_DIR", raising=False)
    with pytest.raises(GenerationError) as e:
        get_generator("infinitetalk")().generate(GenerationRequest(image=inputs["image"], audio=inputs["audio"]))
    msg = str(e.value)
    whole = " ".join(get_generator("infinitetalk").recipe.install.split())
    quoted = msg.split("(install: ", 1)[1].split(" ...; the whole note: `workbench models --json`)")[0]
    rest = whole[len(quoted):]
    assert whole.startswith(quoted) and len(quoted) <= external.INSTALL_HINT
    assert rest.lstrip(" ,;:&|")[:1] and rest[:1] in " ,;:&|"  # the cut falls between words
    assert msg.endswith("; the whole note: `workbench models --json`)") and "\n" not in msg


def test_shorten_cuts_at_word_boundaries():
    assert external.shorten("pip  install\n  torch", 40) == "pip install torch"  # within the limit: whole
    assert external.shorten("git clone https://example.com/repo && cd repo", 30) == "git clone ..."
    assert external.shorten("conda create -n x; pip install -r requirements.txt", 20) == "conda create -n x ..."
    assert external.shorten("a " + "x" * 50, 10) == "a ..."
    assert external.shorten("y" * 50 + " tail", 10) == "y" * 50 + " ..."  # one long word: kept whole
