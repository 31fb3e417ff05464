"""Did the swap take? identity_gain (against the unswapped source as the baseline), swap_took (calibrated on
real same/different-person faces), the verdict's wording, and one rule for a source of another length."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.media import Clip, load_image, write_video
from workbench.metrics.faceswap import (DLIB_TOOK_TARGET, MIN_GAIN, SWAP_FAR, SwapRule, fit_target_line,
                                        held_out_rates, swap_rule, swap_scenarios, swap_verdict)

SOURCE = "talking/00086.mp4"  # man, frontal
PERSONA = "faces/sadtalker_people_0.png"  # AH: a woman, long dark hair
OTHER = "faces/hallo_6.jpg"  # EO: another woman, long brown hair (MANIFEST: a hard negative for AH)
FACESWAP = ("identity_to_target", "identity_to_source", "mouth_motion_kept", "boundary_flicker", "identity_gain",
            "swap_took")


@pytest.fixture(scope="module")
def source_2s(media_dir, tmp_path_factory) -> Path:
    """The first 2 s of the source at 224 px, as a file with its soundtrack (what a user passes)."""
    clip = Clip.open(media_dir / SOURCE)
    path = tmp_path_factory.mktemp("swap") / "source.mp4"
    return write_video(path, clip.to_array(max_frames=50, max_side=224), clip.fps, clip.audio)


@pytest.fixture(scope="module")
def floor_swap(media_dir, source_2s) -> Path:
    """The model-free floor's swap of PERSONA onto the 2 s source, saved as the Runner saves clips."""
    from workbench.models import GenerationRequest, get_generator

    source = Clip.open(source_2s)
    clip = get_generator("faceswap-landmarks")().generate(
        GenerationRequest(image=load_image(media_dir / PERSONA), video=source, video_path=str(source_2s)))
    return write_video(source_2s.parent / "swapped.mp4", clip.to_array(), clip.fps, clip.audio)


def _eval_cli(*args: str) -> dict:
    from typer.testing import CliRunner

    from workbench.cli import app

    r = CliRunner().invoke(app, ["eval", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output[r.output.index("{"):])


# ------------------------------------------------------------------------------------------- real footage
def test_unswapped_clip_reads_no_swap(media_dir, source_2s):
    """`workbench eval VIDEO --source VIDEO --image TARGET --json` as a user types it (every applicable
    score): the clip is its own source, so nothing moved: identity_gain 0, swap_took 0, verdict "no swap",
    although identity_to_target alone (0.83 here, 0.8975 in the issue) looks like a near miss."""
    out = _eval_cli(str(source_2s), "--source", str(source_2s), "--image", str(media_dir / OTHER))
    s = out["scores"]
    assert s["identity_gain"] == 0.0 and s["swap_took"] == 0.0, s
    assert s["identity_to_source"] > 0.97 and s["identity_to_target"] < DLIB_TOOK_TARGET, s
    assert out["backends"]["swap_took"] == out["backends"]["identity_gain"] == "dlib-resnet128"
    verdict, why = swap_verdict(s, out["backends"]["swap_took"])
    assert verdict == "no swap", why
    assert why.startswith("the face is still the source person's (identity_to_source 0.9")
    assert out["swap"] == {"verdict": "no swap", "why": why}  # the JSON says it in words too


def test_floor_swap_took_for_its_persona_and_not_for_another(media_dir, source_2s, floor_swap):
    """The floor pastes the persona's eyes, brows, nose and lips over the source's face (the source's hair,
    ears and jaw stay): the frames show the persona's face, and dlib verifies it as the persona (0.948, in
    the range of real recordings of the same person: 0.935-0.97) and no longer as the source (0.875).
    Scored against another woman, the same frames do not show her: the swap did not take for her, though
    the face did move towards her (a man's face became a woman's: identity_gain > 0), which is why the
    gain alone is not the verdict."""
    from workbench.metrics import evaluate

    own = evaluate(floor_swap, image=media_dir / PERSONA, source=source_2s, metrics=["faceswap"])
    s = own.scores
    print("own persona", {k: round(v, 4) for k, v in s.items() if v is not None})
    assert s["swap_took"] == 1.0 and s["identity_gain"] > 0.08, s
    assert swap_verdict(s)[0] == "took"

    other = evaluate(floor_swap, image=media_dir / OTHER, source=source_2s, metrics=["faceswap"])
    o = other.scores
    print("another persona", {k: round(v, 4) for k, v in o.items() if v is not None})
    assert o["swap_took"] == 0.0 and o["identity_gain"] > MIN_GAIN, o
    assert o["identity_to_source"] == pytest.approx(s["identity_to_source"])  # the same frames, the same source
    verdict, why = swap_verdict(o)
    assert verdict == "did not take" and why.startswith("not verified as the target (identity_to_target 0.8"), why


def test_calibration_on_real_faces_holds_out(media_dir):
    """The talking/ crops (RDJ and LILY two recordings each) and the portraits (STW1, STW2 two each), 8
    frames a clip: the rule fitted leave-one-identity-out at 0.5% accepts about 1% of the held-out people's
    negatives on this small subset (0.52% on the benchmark's 26 files) and rejects none of their real
    same-person clips; the shipped line lies among the folds' lines."""
    from workbench.faces import DlibEmbedder

    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_faceswap", Path(__file__).parents[1] / "benchmarks" /
                                                  "bench_faceswap.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    embedder = DlibEmbedder()
    files = sorted((media_dir / "talking").glob("*.mp4")) + sorted((media_dir / "faces").iterdir())
    faces = {str(p.relative_to(media_dir)): bench.file_faces(p, 8, embedder) for p in files}
    scenarios = swap_scenarios(faces, bench.PERSON)
    kinds = {x.kind for x in scenarios}
    assert kinds == {"took", "no swap", "source again", "other person"}
    h = held_out_rates(scenarios, SWAP_FAR)
    print(h)
    assert h["folds"] == 11 and h["n_positive"] > 50
    assert h["far"] < 0.015 and h["frr"] < 0.05, h
    lo, _, hi = h["lines"]
    assert lo - 0.01 < DLIB_TOOK_TARGET < hi + 0.01, h["lines"]


# ------------------------------------------------------------------------------------------- length rule
def test_one_rule_for_a_source_of_another_length(repo_root):
    """A one-frame source for a 70-frame clip: every face-swap score is null with the same one reason (before,
    identity_to_source came from that one frame, silently); a source one frame short is tolerated, and a
    longer one is paired over the clip's frames (the floor's `seconds` cuts the swap short of its source)."""
    from workbench.metrics import evaluate

    portrait = load_image(repo_root / "data" / "images" / "portrait.png")
    frames = np.repeat(np.asarray(portrait)[None, ..., :3], 70, axis=0)
    clip = Clip.from_frames(frames, 25)
    res = evaluate(clip, image=portrait, source=Clip.from_frames(frames[:1], 25), metrics=["faceswap"])
    assert set(res.scores) == set(FACESWAP) and all(v is None for v in res.scores.values()), res.scores
    reasons = set(res.errors.values())
    assert reasons == {"faceswap: the source has 1 frame and the clip 70: face-swap scores pair clip frame i with "
                       "source frame i, and a swap keeps every frame of its source, so this is not the footage "
                       "the clip was swapped from; pass that video as the source"}, reasons
    for n_source in (69, 120):
        res = evaluate(clip, image=portrait, source=Clip.from_frames(np.concatenate([frames] * 2)[:n_source], 25),
                       metrics=["identity_to_source", "identity_gain", "swap_took"])
        assert all(v is not None for v in res.scores.values()), (n_source, res.errors)
        assert res.scores["identity_gain"] == 0.0 and res.scores["swap_took"] == 0.0  # the source, unchanged


# ------------------------------------------------------------------------------------------- the rule
def test_verdict_wording():
    took = {"identity_to_target": 0.95, "identity_to_source": 0.87, "identity_gain": 0.11}
    assert swap_verdict(took) == ("took", "verified as the target (identity_to_target 0.950 >= 0.927), not as the "
                                          "source (0.870 < 0.92); identity_gain +0.110")
    both = {"identity_to_target": 0.94, "identity_to_source": 0.93, "identity_gain": 0.04}
    assert swap_verdict(both) == ("did not take", "still verified as the source (identity_to_source 0.930 >= 0.92)")
    still = {"identity_to_target": 0.83, "identity_to_source": 0.99, "identity_gain": 0.001}
    assert swap_verdict(still)[0] == "no swap"
    assert swap_verdict({"identity_to_target": None, "identity_gain": 0.1})[0] == "not scored"
    # a lookalike source that already passes the target line, unchanged: not a swap that took
    lookalike = {"identity_to_target": 0.93, "identity_to_source": 0.91, "identity_gain": 0.005}
    assert swap_verdict(lookalike) == ("did not take", "the face barely moved (identity_gain +0.005 < 0.02)")
    # ArcFace: its published same-person threshold on both sides, said to be uncalibrated here
    rule = swap_rule("arcface-onnx:w600k_r50")
    assert rule.target == rule.source == 0.28 and not rule.calibrated and swap_rule("dlib-resnet128").calibrated
    assert swap_verdict({"identity_to_target": 0.5, "identity_to_source": 0.1, "identity_gain": 0.3},
                        "arcface-onnx:w600k_r50")[0] == "took"


def test_fit_and_held_out_rates_on_known_clusters():
    """Synthetic people (tight clusters on a sphere): the fitted line lets through at most the asked share
    of negatives, and held-out rates are counted per person left out."""
    rng = np.random.default_rng(0)
    centres = {p: rng.normal(size=16) for p in "ABCDEFG"}

    def faces_of(p: str, n: int) -> np.ndarray:
        v = centres[p] + 0.35 * rng.normal(size=(n, 16))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    faces = {f"{p}{k}.mp4": faces_of(p, 6) for p in "ABCD" for k in (1, 2)}
    faces.update({f"{p}.png": faces_of(p, 1) for p in "EFG"})
    person = {f: f[0] for f in faces}
    sc = swap_scenarios(faces, person)
    pos = [x for x in sc if x.took]
    neg = [x for x in sc if not x.took]
    assert pos and all(x.people[1] == x.people[2] for x in pos)
    assert all(x.gain == 0.0 for x in sc if x.kind == "no swap")
    for far in (0.0, 0.05):
        line = fit_target_line(sc, far, source_line=0.9)
        rule = SwapRule(line, 0.9)
        accepted = sum(rule.took(x.to_target, x.to_source, x.gain) for x in neg)
        assert accepted <= far * len(neg)
    h = held_out_rates(sc, 0.05, source_line=0.9)
    assert h["folds"] == 7 and h["n_positive"] == 2 * len(pos)  # every took scenario involves two people
    assert 0 <= h["far"] <= 1 and 0 <= h["frr"] <= 1


def test_scores_are_registered_with_direction_range_and_backend():
    from typer.testing import CliRunner

    from workbench.cli import app

    r = CliRunner().invoke(app, ["metrics", "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.output[r.output.index("["):] if r.output.lstrip().startswith("[") else r.output)
    text = json.dumps(listed)
    for name in ("identity_gain", "swap_took", "identity_to_target", "identity_to_source"):
        assert f'"{name}"' in text, name
    from workbench.metrics.faceswap import FaceSwapScores

    specs = {s.name: s for s in FaceSwapScores.scores}
    assert specs["identity_gain"].higher_is_better is True and specs["identity_gain"].range == "[-2, 2]"
    assert specs["swap_took"].higher_is_better is True and specs["swap_took"].range == "{0, 1}"
    assert "dlib-resnet128" in FaceSwapScores.backends_available()
