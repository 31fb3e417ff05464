"""Identity preservation: alignment maths, sampling, AUC, the ArcFace ONNX path (tiny random model)
and proof on real faces (../shared/media) that same-person pairs outscore different-person ones."""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest

from workbench.faces import Face, detect_faces
from workbench.media import Clip, load_image
from workbench.metrics.base import EvalInputs, MetricUnavailable
from workbench.metrics.identity import (
    ARCFACE_SAME_PERSON_COSINE,
    ARCFACE_TEMPLATE,
    DLIB_SAME_PERSON_COSINE,
    ArcFaceEmbedder,
    IdentityPreservation,
    align_arcface,
    roc_auc,
    sample_indices,
    similarity_transform,
)

# ../shared/media identity groups (MANIFEST.md); every other file is its own identity
GROUPS = {
    "talking/741400104.mp4": "RDJ", "talking/741400163.mp4": "RDJ",
    "talking/00002.mp4": "LILY", "talking/517600055.mp4": "LILY",
    "faces/sadtalker_happy.png": "STW1", "faces/sadtalker_sad.png": "STW1",
    "faces/sadtalker_happy1.png": "STW2", "faces/sadtalker_sad1.png": "STW2",
}


# ------------------------------------------------------------------------------------------------
# pure maths
# ------------------------------------------------------------------------------------------------
def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, size=(5, 2))
    a, s, t = 0.3, 1.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = src @ (s * rot).T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], s * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def test_align_arcface_puts_keypoints_on_template():
    # a bright dot at each keypoint of a face twice the template size must land on the template
    pts = ARCFACE_TEMPLATE * 2.0 + 30.0
    img = np.zeros((300, 300, 3), np.uint8)
    crop = align_arcface(img, pts)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    for p, q in zip(pts, ARCFACE_TEMPLATE):
        one = np.zeros((300, 300, 3), np.uint8)
        one[int(round(p[1])) - 2:int(round(p[1])) + 3, int(round(p[0])) - 2:int(round(p[0])) + 3] = 255
        out = align_arcface(one, pts)[..., 0].astype(float)
        ys, xs = np.nonzero(out > 0)
        cy, cx = np.average(ys, weights=out[ys, xs]), np.average(xs, weights=out[ys, xs])
        assert abs(cx - q[0]) < 1.0 and abs(cy - q[1]) < 1.0


def test_sample_indices():
    idx = sample_indices(100, 25.0, sample_fps=4.0)  # stride round(25 / 4) = 6
    assert sorted(idx) == list(range(0, 100, 6))
    assert sorted(sample_indices(100, 25.0, sample_fps=2.0)) == list(range(0, 100, 12))  # round(12.5) = 12
    long = sample_indices(25 * 60, 25.0, sample_fps=4.0)  # 60 s: 250 candidates thinned to 48, evenly
    assert len(long) == 48 and min(long) == 0 and max(long) >= 25 * 60 - 7
    gaps = np.diff(sorted(long))
    assert gaps.max() - gaps.min() <= 6
    assert sample_indices(0, 25.0) == set()
    assert sample_indices(3, 2.0) == {0, 1, 2}


def test_roc_auc_hand_computed():
    assert roc_auc([0.9, 0.8], [0.1, 0.85]) == pytest.approx(3 / 4)
    assert roc_auc([0.5], [0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 2, 3], [0]) == 1.0 and roc_auc([0], [1, 2]) == 0.0
    with pytest.raises(ValueError):
        roc_auc([], [1.0])


def test_thresholds_are_per_backend():
    m = IdentityPreservation(backend="dlib")
    assert m.backend() == "dlib-resnet128"
    assert m.threshold == DLIB_SAME_PERSON_COSINE == pytest.approx(0.92)
    assert ArcFaceEmbedder.same_person_cosine == ARCFACE_SAME_PERSON_COSINE


def test_reference_without_face_is_unavailable():
    clip = Clip.from_frames(np.zeros((4, 64, 64, 3), np.uint8), fps=25)
    m = IdentityPreservation(backend="dlib")
    with pytest.raises(MetricUnavailable, match="no face found in the reference image.*portrait"):
        m.start(EvalInputs(video=clip, image=np.full((120, 120, 3), 128, np.uint8)))


def test_faceless_reference_file_is_named_in_the_reason(tmp_path):
    from PIL import Image

    from workbench.metrics import evaluate

    path = tmp_path / "grey.png"
    Image.fromarray(np.full((120, 120, 3), 128, np.uint8)).save(path)
    r = evaluate(Clip.from_frames(np.zeros((4, 64, 64, 3), np.uint8), fps=25), image=path, metrics=["identity"])
    assert r.scores["identity_similarity"] is None
    assert f"no face found in the reference image {path} (120x120)" in r.errors["identity_similarity"]


# ------------------------------------------------------------------------------------------------
# ArcFace via onnxruntime, on a tiny random-weight model exported here
# ------------------------------------------------------------------------------------------------
def _export(path: Path, size: int = 112) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 512)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, size, size),), str(path), dynamo=False, input_names=["data"],
                          output_names=["fc1"], dynamic_axes={"data": {0: "n"}, "fc1": {0: "n"}})
    return path


@pytest.fixture(scope="module")
def tiny_arcface(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    return _export(tmp_path_factory.mktemp("arcface") / "w600k_tiny.onnx")


def _fake_face() -> tuple[np.ndarray, Face]:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, size=(200, 200, 3), dtype=np.uint8)
    lm = np.zeros((68, 2), np.float32)
    lm[36:42], lm[42:48], lm[30], lm[48], lm[54] = (70, 80), (130, 80), (100, 110), (75, 140), (125, 140)
    return img, Face((50, 50, 150, 170), 1.0, lm)


def test_arcface_onnx_loads_and_embeds(tiny_arcface):
    emb = ArcFaceEmbedder(tiny_arcface)
    assert emb.name == "arcface-onnx:w600k_tiny"
    crops = np.random.default_rng(0).integers(0, 255, size=(3, 112, 112, 3), dtype=np.uint8)
    v = emb.embed_aligned(crops)
    assert v.shape == (3, 512) and np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    img, face = _fake_face()
    e = emb.embed(img, face)
    assert e.shape == (512,) and np.isfinite(e).all()
    np.testing.assert_allclose(e, emb.embed(img, face))  # deterministic


def test_arcface_selection_and_fallback(tiny_arcface, tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_ARCFACE", raising=False)
    assert IdentityPreservation(arcface_model=tiny_arcface).backend() == "arcface-onnx:w600k_tiny"
    assert IdentityPreservation(arcface_model=tiny_arcface).threshold == ARCFACE_SAME_PERSON_COSINE
    monkeypatch.setenv("WORKBENCH_ARCFACE", str(tiny_arcface))
    assert IdentityPreservation().backend().startswith("arcface-onnx")
    assert IdentityPreservation.backends_available()["arcface-onnx"] is True
    assert IdentityPreservation(backend="dlib").backend() == "dlib-resnet128"
    # env pointing at a missing file: falls back to dlib, loudly
    monkeypatch.setenv("WORKBENCH_ARCFACE", str(tmp_path / "absent.onnx"))
    with pytest.warns(UserWarning, match="falls back to dlib"):
        assert IdentityPreservation().backend() == "dlib-resnet128"
    assert IdentityPreservation.backends_available()["arcface-onnx"] is False
    # an explicit request that cannot be met is an error, not a silent fallback
    with pytest.raises(MetricUnavailable, match="absent.onnx: ArcFace model not found"):
        IdentityPreservation(arcface_model=tmp_path / "absent.onnx").backend()
    monkeypatch.delenv("WORKBENCH_ARCFACE")
    with pytest.raises(MetricUnavailable, match="needs a model"):
        IdentityPreservation(backend="arcface").backend()


def test_arcface_rejects_wrong_input_size(tmp_path):
    pytest.importorskip("onnxruntime")
    bad = _export(tmp_path / "small.onnx", size=64)
    with pytest.raises(MetricUnavailable, match="not \\(N, 3, 112, 112\\)"):
        ArcFaceEmbedder(bad)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(MetricUnavailable, match="junk.onnx: cannot be loaded"):
        ArcFaceEmbedder(junk)


# ------------------------------------------------------------------------------------------------
# real faces
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_embeddings(media_dir) -> list[tuple[str, str, np.ndarray]]:
    """(file, identity, unit dlib embedding) for every portrait and 5 frames of every talking clip."""
    emb = IdentityPreservation(backend="dlib")
    emb.backend()
    out = []
    files = sorted((media_dir / "faces").iterdir()) + sorted((media_dir / "talking").glob("*.mp4"))
    for p in files:
        rel = f"{p.parent.name}/{p.name}"
        if p.suffix == ".mp4":
            clip = Clip.open(p, load_audio_track=False)
            keep = set(np.linspace(0, clip.num_frames - 1, 5).round().astype(int))
            images = [f for i, f in enumerate(clip.iter_frames()) if i in keep]
        elif p.suffix in (".png", ".jpg"):
            images = [load_image(p)]
        else:
            continue
        for im in images:
            faces = detect_faces(im)
            if faces:
                out.append((rel, GROUPS.get(rel, rel), emb.embedder.embed(im, faces[0])))
    return out


def test_dlib_roc_on_real_faces(real_embeddings):
    pos, neg = [], []
    for (fa, ia, va), (fb, ib, vb) in itertools.combinations(real_embeddings, 2):
        if fa != fb:  # across files only: within one clip is too easy
            (pos if ia == ib else neg).append(float(va @ vb))
    pos, neg = np.array(pos), np.array(neg)
    auc = roc_auc(pos, neg)
    tpr, fpr = (pos > DLIB_SAME_PERSON_COSINE).mean(), (neg > DLIB_SAME_PERSON_COSINE).mean()
    print(f"\ndlib identity ROC over {len(real_embeddings)} faces: {len(pos)} same / {len(neg)} different-person "
          f"pairs, AUC {auc:.5f}; at cosine {DLIB_SAME_PERSON_COSINE}: TPR {tpr:.3f} FPR {fpr:.4f}; "
          f"at the naive 0.82: FPR {(neg > 0.82).mean():.3f}")
    assert len(pos) >= 40 and len(neg) >= 500
    assert auc >= 0.99
    assert pos.mean() > np.quantile(neg, 0.99)
    assert tpr >= 0.95 and fpr <= 0.01
    assert (neg > 0.82).mean() > 0.3  # why the threshold is not 1 - 0.6**2/2: raw dlib vectors are not unit-norm


def test_same_person_groups_beat_their_hardest_negatives(real_embeddings):
    by_file: dict[str, list[np.ndarray]] = {}
    ident = {}
    for f, i, v in real_embeddings:
        by_file.setdefault(f, []).append(v)
        ident[f] = i
    for a, b in [("talking/741400104.mp4", "talking/741400163.mp4"), ("talking/00002.mp4", "talking/517600055.mp4"),
                 ("faces/sadtalker_happy.png", "faces/sadtalker_sad.png"),
                 ("faces/sadtalker_happy1.png", "faces/sadtalker_sad1.png")]:
        same = np.mean([x @ y for x in by_file[a] for y in by_file[b]])
        others = [np.mean([x @ y for x in by_file[a] for y in by_file[f]]) for f in by_file if ident[f] != ident[a]]
        assert same > max(others), (a, b, same, max(others))


def test_clip_against_its_own_first_frame(media_dir):
    from workbench.metrics import evaluate

    clip = Clip.open(media_dir / "talking" / "00086.mp4")
    r = evaluate(clip, image=clip.first_frame(), metrics=["identity"], metric_options={"identity": {"max_samples": 12}})
    assert r.backends["identity_similarity"] == "dlib-resnet128"
    assert r.scores["identity_similarity"] > DLIB_SAME_PERSON_COSINE
    assert r.scores["identity_pass_rate"] >= 0.9 and r.scores["face_detect_rate"] == 1.0
    assert r.scores["identity_min"] <= r.scores["identity_similarity"]


def test_cross_recording_and_impostor(media_dir):
    from workbench.metrics import evaluate

    clip = Clip.open(media_dir / "talking" / "741400104.mp4", load_audio_track=False)
    opts = {"identity": {"max_samples": 8}}
    other = Clip.open(media_dir / "talking" / "741400163.mp4", load_audio_track=False).first_frame()
    same = evaluate(clip, image=other, metrics=["identity"], metric_options=opts).scores
    diff = evaluate(clip, image=media_dir / "faces" / "hallo_6.jpg", metrics=["identity"], metric_options=opts).scores
    assert same["identity_similarity"] > DLIB_SAME_PERSON_COSINE > diff["identity_similarity"]
    assert same["identity_pass_rate"] >= 0.75 and diff["identity_pass_rate"] == 0.0


def test_no_face_in_video_counts_as_fail(media_dir):
    from workbench.metrics import evaluate

    r = evaluate(media_dir / "scenes" / "bear.mp4", image=media_dir / "faces" / "hallo_6.jpg", metrics=["identity"],
                 metric_options={"identity": {"max_samples": 6}})
    assert r.scores["face_detect_rate"] == 0.0 and r.scores["identity_pass_rate"] == 0.0
    assert r.scores["identity_similarity"] is None and "identity" in r.errors["identity_similarity"]


def test_arcface_backend_end_to_end(media_dir, tiny_arcface):
    """The learned path runs through evaluate() and names its backend (random weights: values only finite)."""
    from workbench.metrics import evaluate

    clip = Clip.open(media_dir / "talking" / "00086.mp4", load_audio_track=False)
    r = evaluate(clip, image=clip.first_frame(), metrics=["identity"],
                 metric_options={"identity": {"arcface_model": str(tiny_arcface), "max_samples": 4}})
    assert r.backends["identity_similarity"] == "arcface-onnx:w600k_tiny"
    assert np.isfinite(r.scores["identity_similarity"]) and -1.0 <= r.scores["identity_similarity"] <= 1.0
    assert r.scores["face_detect_rate"] == 1.0


def test_face_morph_drifts_below_threshold_at_the_end(media_dir):
    """A face that turns into another person (calibration's morph_face): identity_min falls below the
    same-person threshold, and the per-frame series points at the end of the clip, not its start."""
    from workbench.calibrate import morph_towards
    from workbench.media import load_image
    from workbench.metrics import evaluate

    clip = Clip.open(media_dir / "talking" / "00086.mp4", load_audio_track=False)
    frames = clip.to_array(max_frames=50)
    morphed = Clip.from_frames(morph_towards(frames, load_image(media_dir / "faces" / "sadtalker_people_0.png")), clip.fps)
    r = evaluate(morphed, image=frames[0], metrics=["identity"], metric_options={"identity": {"sample_fps": 5}})
    series = r.series["identity_similarity"]
    assert len(series) == 50 and series[0] is not None and series[1] is None  # sampled frames only
    sampled = [v for v in series if v is not None]
    assert sampled[0] > DLIB_SAME_PERSON_COSINE > r.scores["identity_min"]
    assert r.worst_frame["identity_min"] >= 40 and series[r.worst_frame["identity_min"]] == r.scores["identity_min"]


def test_stored_embedding_is_the_reference_when_its_backend_runs(media_dir):
    """An Element's stored embedding replaces the image's face: a stranger's embedding beside the
    person's own image scores as a stranger; an embedding from another backend is not used."""
    from workbench.metrics import evaluate
    from workbench.metrics.base import FaceReference
    from workbench.workflow.elements import face_embedding
    from workbench.media import load_image

    clip = Clip.open(media_dir / "talking" / "00086.mp4", load_audio_track=False)
    opts = {"identity": {"max_samples": 8}}
    own = clip.first_frame()
    stranger = face_embedding([load_image(media_dir / "faces" / "hallo_6.jpg")], ["hallo_6.jpg"])
    plain = evaluate(clip, image=own, metrics=["identity"], metric_options=opts).scores
    stored = evaluate(clip, image=own, metrics=["identity"], metric_options=opts,
                      face_reference=FaceReference(stranger, "dlib-resnet128")).scores
    other = evaluate(clip, image=own, metrics=["identity"], metric_options=opts,
                     face_reference=FaceReference(stranger, "arcface-onnx")).scores
    assert plain["identity_similarity"] > DLIB_SAME_PERSON_COSINE > stored["identity_similarity"]
    assert stored["identity_pass_rate"] == 0.0 and other == plain
    # the person's own stored embedding (mean over two of their frames) passes like the image does
    mine = face_embedding(list(clip.to_array(max_frames=21)[[0, 20]]), ["f0", "f20"])
    again = evaluate(clip, image=media_dir / "faces" / "hallo_6.jpg", metrics=["identity"], metric_options=opts,
                     face_reference=FaceReference(mine, "dlib-resnet128")).scores
    assert again["identity_similarity"] > DLIB_SAME_PERSON_COSINE


# ------------------------------------------------------------------------------------------------
# the face-descriptor helper process
# ------------------------------------------------------------------------------------------------
def _chips(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(n)]


def test_helper_process_gives_the_inline_descriptors_in_order():
    """dlib's descriptor computed in the helper process is bit-identical to the inline one, and
    results come back to the request that asked, in order."""
    from workbench.face_helper import helper
    from workbench.faces import chip_descriptor

    h = helper()
    assert h is not None
    chips = _chips()
    futures = [h.submit(c) for c in chips]
    for c, f in zip(chips, futures):
        assert np.array_equal(f.result(timeout=60), chip_descriptor(c))


def test_dead_helper_falls_back_to_inline(media_dir, monkeypatch):
    """If the helper process dies, pending and later embeddings are computed inline: same vectors."""
    from workbench import face_helper
    from workbench.faces import DlibEmbedder

    img = load_image(media_dir / "faces" / "sadtalker_happy.png")
    face = detect_faces(img)[0]
    emb = DlibEmbedder()
    dead = face_helper.DescriptorHelper()
    dead._proc.kill()
    dead._proc.wait()
    monkeypatch.setattr(face_helper, "_helper", dead)
    later = emb.embed_later(img, face)
    assert np.array_equal(later.result(timeout=60), emb.embed(img, face))
    assert face_helper.helper() is None  # not restarted: inline from then on
    assert np.array_equal(emb.embed_later(img, face).result(timeout=60), emb.embed(img, face))


def test_helper_starts_from_a_script_without_a_main_guard(tmp_path):
    """The helper is a plain child process: a user's top-level script is never re-imported (as
    multiprocessing's spawn would), so it runs once and gets its descriptor."""
    import subprocess
    import sys

    script = tmp_path / "top_level.py"
    script.write_text("import numpy as np\n"
                      "from workbench.face_helper import helper\n"
                      "print('ran')\n"
                      "v = helper().submit(np.zeros((150, 150, 3), np.uint8)).result(timeout=60)\n"
                      "print(v.shape, v.dtype)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["ran", "(128,) float32"]
