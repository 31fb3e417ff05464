"""Elements library: characters with face embeddings, products, styles; name safety, atomic writes,
corrupt Elements that spoil no other, rename/delete, the CLI, and real portraits."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.media import load_image
from workbench.workflow import elements as elements_mod
from workbench.workflow.elements import (Element, ElementError, ElementLibrary, face_embedding,
                                         resolve_reference, validate_name)


@pytest.fixture
def lib(tmp_path):
    return ElementLibrary(tmp_path / "lib")


@pytest.fixture(scope="module")
def portrait(repo_root):
    return repo_root / "data" / "images" / "portrait.png"


@pytest.fixture(scope="module")
def product(repo_root):
    return repo_root / "data" / "images" / "product.png"


def test_character_stores_images_embedding_voice_and_prompt(lib, portrait):
    el = lib.add("eileen", "character", [portrait], voice="espeak-ng:en-us", prompt="an astronaut in a white suit")
    assert isinstance(el, Element) and el.kind == "character"
    assert el.reference_image.is_file() and el.reference_image.parent == lib.root / "eileen"
    assert el.embedding.shape == (128,) and abs(float(np.linalg.norm(el.embedding)) - 1) < 1e-4
    assert el.embedding_backend == "dlib-resnet128"
    assert el.voice == {"engine": "espeak-ng", "voice": "en-us"} and el.prompt.startswith("an astronaut")
    # the stored embedding is the portrait's face
    again = face_embedding([load_image(portrait)], ["portrait"])
    assert float(np.dot(again, el.embedding)) > 0.99
    # and the stored image is the same picture
    assert np.abs(load_image(el.reference_image).astype(int) - load_image(portrait).astype(int)).mean() < 1
    loaded = ElementLibrary(lib.root).load("eileen")
    assert np.allclose(loaded.embedding, el.embedding, atol=1e-6)
    assert resolve_reference("element:eileen", lib).name == "eileen"


def test_product_and_style_need_no_face(lib, product):
    p = lib.add("cup", "product", [product], prompt="a cup of coffee on a wooden table")
    assert p.embedding is None and len(p.images) == 1
    s = lib.add("noir", "style", prompt="black and white, high contrast, film grain")
    assert s.images == [] and s.kind == "style"
    with pytest.raises(ElementError, match="has no reference image"):
        s.reference_image
    assert [e.name for e in lib.entries()] == ["cup", "noir"]


def test_character_without_a_face_is_refused(lib, repo_root):
    with pytest.raises(ElementError, match="no face found in .*landscape.png.*--kind product"):
        lib.add("hills", "character", [repo_root / "data/images/landscape.png"])
    assert lib.names() == [] and not lib.root.exists()  # checked before anything is written


@pytest.mark.parametrize("name", ["", "../evil", "..", "a/b", ".hidden", "a b", "x\x00y", "x" * 65, "-dash", "é"])
def test_unsafe_names_are_refused(lib, name, product):
    with pytest.raises(ElementError, match="element name"):
        validate_name(name)
    with pytest.raises(ElementError, match="element name"):
        lib.add(name, "product", [product])
    assert not (lib.root.parent / "evil").exists()


def test_other_bad_inputs(lib, product, tmp_path):
    with pytest.raises(ElementError, match="kind 'person' is unknown"):
        lib.add("a", "person", [product])
    with pytest.raises(ElementError, match="needs at least one reference image"):
        lib.add("a", "product", [])
    with pytest.raises(ElementError, match="nope.png: image not found"):
        lib.add("a", "product", [tmp_path / "nope.png"])
    lib.add("a", "product", [product])
    with pytest.raises(ElementError, match="already exists.*--overwrite"):
        lib.add("a", "product", [product])
    with pytest.raises(ElementError, match="not found"):
        lib.load("b")
    from workbench.speech import SpeechError

    with pytest.raises(SpeechError, match="unknown speech engine"):
        lib.add("c", "product", [product], voice="nope:x")


def test_writes_are_atomic(lib, product, portrait, monkeypatch):
    lib.add("cup", "product", [product], prompt="first")
    boom = RuntimeError("disk full")

    def failing(*a, **k):
        raise boom

    monkeypatch.setattr(elements_mod, "_fsync_write", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        lib.add("cup", "product", [product, portrait], prompt="second", overwrite=True)
    with pytest.raises(RuntimeError):
        lib.add("mug", "product", [product])
    monkeypatch.undo()
    # the old Element is intact, the new one never appeared, no temporary folders remain
    assert lib.load("cup").prompt == "first" and len(lib.load("cup").images) == 1
    assert lib.names() == ["cup"]
    assert sorted(p.name for p in lib.root.iterdir()) == ["cup"]
    lib.add("cup", "product", [product, portrait], prompt="second", overwrite=True)
    assert lib.load("cup").prompt == "second" and len(lib.load("cup").images) == 2
    assert sorted(p.name for p in lib.root.iterdir()) == ["cup"]


def test_corrupt_element_is_a_clear_error_and_spoils_no_other(lib, product):
    lib.add("good", "product", [product])
    lib.add("bad", "product", [product])
    lib.add("gone", "product", [product])
    (lib.root / "bad" / "element.json").write_text('{"format": 1, "kind": "prod')  # torn write
    (lib.root / "gone" / "ref-00.png").unlink()
    with pytest.raises(ElementError, match=r"bad/element.json: corrupt element file.*elements rm bad") as e:
        lib.load("bad")
    assert "\n" not in str(e.value)
    with pytest.raises(ElementError, match=r"gone/element.json: reference image 'ref-00.png' is missing"):
        lib.load("gone")
    entries = {e.name: e for e in lib.entries()}
    assert entries["good"].element is not None and entries["bad"].element is None
    assert "corrupt" in entries["bad"].error and "missing" in entries["gone"].error
    meta = json.loads((lib.root / "good" / "element.json").read_text())
    meta["images"] = ["../../etc/passwd"]
    meta["image_sha256"] = ["x"]
    (lib.root / "good" / "element.json").write_text(json.dumps(meta))
    with pytest.raises(ElementError, match="not inside the element's folder"):
        lib.load("good")
    lib.delete("bad")  # a broken Element can still be removed
    assert "bad" not in lib.names()


def test_rename_and_delete(lib, product):
    lib.add("cup", "product", [product])
    lib.add("mug", "product", [product])
    with pytest.raises(ElementError, match="'mug' already exists"):
        lib.rename("cup", "mug")
    el = lib.rename("cup", "espresso")
    assert el.name == "espresso" and lib.names() == ["espresso", "mug"]
    assert json.loads((lib.root / "espresso" / "element.json").read_text())["name"] == "espresso"
    with pytest.raises(ElementError, match="element name"):
        lib.rename("espresso", "../x")
    lib.delete("mug")
    assert lib.names() == ["espresso"]
    with pytest.raises(ElementError, match="'mug' not found"):
        lib.delete("mug")


def test_library_folder_from_environment(monkeypatch, tmp_path, product):
    monkeypatch.setenv("WORKBENCH_ELEMENTS", str(tmp_path / "envlib"))
    ElementLibrary().add("cup", "product", [product])
    assert (tmp_path / "envlib" / "cup" / "element.json").is_file()


def test_cli_elements(tmp_path, portrait, product):
    from typer.testing import CliRunner

    from workbench.cli import app

    run = CliRunner().invoke
    libarg = ["--library", str(tmp_path / "lib")]
    r = run(app, ["elements", "add", "eileen", "--image", str(portrait), "--voice", "de", "--prompt", "astronaut", *libarg])
    assert r.exit_code == 0, r.output
    r = run(app, ["elements", "add", "cup", "--kind", "product", "--image", str(product), *libarg])
    assert r.exit_code == 0, r.output
    r = run(app, ["elements", "list", "--json", *libarg])
    rows = json.loads(r.stdout)
    assert [x["name"] for x in rows] == ["cup", "eileen"] and rows[1]["embedding_dim"] == 128
    (tmp_path / "lib" / "cup" / "element.json").write_text("{")
    r = run(app, ["elements", "list", *libarg])
    assert r.exit_code == 0 and "BROKEN" in r.stdout and "eileen" in r.stdout
    r = run(app, ["elements", "show", "eileen", *libarg])
    assert json.loads(r.stdout)["voice"] == {"engine": "espeak-ng", "voice": "de"}
    r = run(app, ["elements", "show", "cup", *libarg])
    assert r.exit_code == 2 and "corrupt element file" in r.output
    r = run(app, ["elements", "add", "../x", "--image", str(portrait), *libarg])
    assert r.exit_code == 2 and "element name" in r.output
    assert run(app, ["elements", "rm", "cup", *libarg]).exit_code == 0
    assert run(app, ["elements", "rename", "eileen", "collins", *libarg]).exit_code == 0
    assert json.loads(run(app, ["elements", "list", "--json", *libarg]).stdout)[0]["name"] == "collins"


def test_real_portraits_same_person_close_other_person_far(media_dir, lib):
    faces = media_dir / "faces"
    el = lib.add("stw1", "character", [faces / "sadtalker_happy.png", faces / "sadtalker_sad.png"])
    assert len(el.images) == 2
    threshold = 0.92  # dlib same-person cosine (see workbench.faces.DlibEmbedder)
    for name in ("sadtalker_happy.png", "sadtalker_sad.png"):
        assert float(np.dot(face_embedding([load_image(faces / name)], [name]), el.embedding)) > threshold
    other = face_embedding([load_image(faces / "sadtalker_happy1.png")], ["other"])
    assert float(np.dot(other, el.embedding)) < threshold
