"""Elements: named, reusable inputs kept in a local library folder.

An Element is a character (reference portraits, their face embedding, a default voice, prompt
snippets), a product (reference photos, prompt snippets) or a style (prompt snippets, optional
example images). A suite case uses one as `image: element:anna`; identity metrics then compare
against the Element's reference portrait.

Layout: `<library>/<name>/element.json` plus `ref-00.png`, `ref-01.png`, ... The library is
`$WORKBENCH_ELEMENTS`, else `~/.workbench/elements`. Every write builds the whole Element in a hidden
temporary folder and renames it into place, so a crash never leaves half an Element; a corrupt Element
raises `ElementError` naming its file and the fix, and the others stay usable.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from workbench.names import MAX_NAME, _SAFE as _NAME  # the one name rule: what names() lists

ENV = "WORKBENCH_ELEMENTS"
KINDS = ("character", "product", "style")
FORMAT_VERSION = 1
MAX_IMAGES = 16
REFERENCE_SIDE = 1024  # reference images are stored as PNG with the longer side at most this
EMBEDDING_BACKEND = "dlib-resnet128"
PREFIX = "element:"  # how a suite refers to one: `image: element:anna`


class ElementError(ValueError):
    """An Element is missing, invalid or corrupt; one line naming it and the fix."""


def validate_name(name: str) -> str:
    """A safe Element name (`workbench.names.check_name`, the rule for every name that becomes a path):
    1 to 64 letters, digits, '_', '-', '.', starting with a letter or digit; no '/', '..', hidden names
    or NUL."""
    from workbench.names import check_name

    try:
        return check_name(name, "element name")
    except ValueError as e:
        raise ElementError(str(e)) from None


def default_root() -> Path:
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else Path.home() / ".workbench" / "elements"


@dataclass
class Element:
    """One loaded Element. `images` are absolute paths inside the Element's folder."""

    name: str
    kind: str
    path: Path
    images: list[Path] = field(default_factory=list)
    image_sha256: list[str] = field(default_factory=list)
    embedding: np.ndarray | None = None  # L2-normalised face embedding (characters)
    embedding_backend: str | None = None
    voice: dict[str, str] | None = None  # {"engine": ..., "voice": ...}
    prompt: str = ""
    negative_prompt: str = ""
    notes: str = ""
    created_at: str = ""

    @property
    def reference_image(self) -> Path:
        """The first reference image (for a character: the one whose face is the identity reference)."""
        if not self.images:
            raise ElementError(f"element '{self.name}' ({self.kind}) has no reference image; "
                               f"add one with `workbench elements add {self.name} --image IMG --overwrite`")
        return self.images[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "path": str(self.path),
            "images": [str(p) for p in self.images], "image_sha256": list(self.image_sha256),
            "embedding_backend": self.embedding_backend,
            "embedding_dim": None if self.embedding is None else int(self.embedding.shape[0]),
            "voice": self.voice, "prompt": self.prompt, "negative_prompt": self.negative_prompt,
            "notes": self.notes, "created_at": self.created_at,
        }


@dataclass
class Entry:
    """A library listing row: the Element, or the error that keeps it from loading."""

    name: str
    element: Element | None
    error: str | None = None


def face_embedding(images: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Mean dlib face embedding over the images that show a face (largest face each), L2-normalised."""
    from workbench.faces import DlibEmbedder, FaceModelsMissing, detect_faces
    from workbench.media import cap_side

    try:
        embedder = DlibEmbedder()
        vectors = []
        for img, label in zip(images, names):
            small = cap_side(img, REFERENCE_SIDE)
            faces = detect_faces(small)
            if faces:
                vectors.append(embedder.embed(small, faces[0]))
    except (FaceModelsMissing, ImportError) as e:
        raise ElementError(f"cannot embed the face: {e}") from None
    if not vectors:
        raise ElementError(f"no face found in {', '.join(names)}; a character needs a portrait with a clearly "
                           "visible face (or use --kind product / style)")
    v = np.mean(vectors, axis=0)
    return (v / (np.linalg.norm(v) + 1e-9)).astype(np.float32)


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class ElementLibrary:
    """The Elements in one folder: add, load, list, rename, delete."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()

    def folder(self, name: str) -> Path:
        return self.root / validate_name(name)

    def exists(self, name: str) -> bool:
        return (self.folder(name) / "element.json").is_file()

    # writing ---------------------------------------------------------------------------------------
    def add(self, name: str, kind: str, images: Sequence[str | Path] = (), *, voice: str | dict | None = None,
            prompt: str = "", negative_prompt: str = "", notes: str = "", overwrite: bool = False) -> Element:
        """Save an Element (atomically: all or nothing). Characters need a face in a reference image."""
        from workbench.media import MediaError, load_image

        folder = self.folder(name)
        if kind not in KINDS:
            raise ElementError(f"element kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
        images = [Path(p) for p in images]
        if len(images) > MAX_IMAGES:
            raise ElementError(f"element '{name}': {len(images)} images; keep at most {MAX_IMAGES}")
        if kind in ("character", "product") and not images:
            raise ElementError(f"a {kind} needs at least one reference image; pass --image IMG")
        if folder.exists() and not overwrite:
            raise ElementError(f"element '{name}' already exists in {self.root}; pass --overwrite to replace it "
                               "or choose another name")
        voice_spec = None
        if voice:
            from workbench.speech import parse_voice

            v = parse_voice(voice)
            voice_spec = {"engine": v.engine, "voice": v.voice}
        try:
            arrays = [load_image(p, max_side=REFERENCE_SIDE) for p in images]
        except MediaError as e:
            raise ElementError(str(e)) from None
        embedding = face_embedding(arrays, [str(p) for p in images]) if kind == "character" else None

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            from PIL import Image

            files, hashes = [], []
            for i, arr in enumerate(arrays):
                fname = f"ref-{i:02d}.png"
                Image.fromarray(arr).save(tmp / fname, format="PNG")
                hashes.append(hashlib.sha256((tmp / fname).read_bytes()).hexdigest())
                files.append(fname)
            meta = {
                "format": FORMAT_VERSION, "name": name, "kind": kind, "images": files, "image_sha256": hashes,
                "sources": [str(p) for p in images],
                "embedding": None if embedding is None else [round(float(x), 7) for x in embedding],
                "embedding_backend": EMBEDDING_BACKEND if embedding is not None else None,
                "voice": voice_spec, "prompt": prompt, "negative_prompt": negative_prompt, "notes": notes,
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            _fsync_write(tmp / "element.json", (json.dumps(meta, indent=2) + "\n").encode())
            self._install(tmp, folder, overwrite)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.load(name)

    def _install(self, tmp: Path, folder: Path, overwrite: bool) -> None:
        """Rename the finished temporary folder into place; an old one is moved aside first."""
        trash = None
        if folder.exists():
            if not overwrite:
                raise ElementError(f"element '{folder.name}' already exists in {self.root}; pass --overwrite")
            trash = self.root / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"
            os.rename(folder, trash)
        try:
            os.rename(tmp, folder)
        except OSError as e:
            if trash is not None:
                os.rename(trash, folder)  # put the old one back
            raise ElementError(f"{folder}: cannot save the element ({e.strerror}); another process may be "
                               "writing it: try again") from None
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def rename(self, old: str, new: str) -> Element:
        src, dst = self.folder(old), self.folder(new)
        if not src.is_dir():
            raise ElementError(f"element '{old}' not found in {self.root}; see `workbench elements list`")
        if dst.exists():
            raise ElementError(f"element '{new}' already exists in {self.root}; remove it or pick another name")
        meta_path = src / "element.json"
        meta = self._read_meta(old, meta_path)
        meta["name"] = new
        tmp_json = src / f".element-{uuid.uuid4().hex[:8]}.json"
        _fsync_write(tmp_json, (json.dumps(meta, indent=2) + "\n").encode())
        os.replace(tmp_json, meta_path)  # the name inside first, then the folder: both atomic
        try:
            os.rename(src, dst)
        except OSError as e:
            meta["name"] = old
            _fsync_write(tmp_json, (json.dumps(meta, indent=2) + "\n").encode())
            os.replace(tmp_json, meta_path)
            raise ElementError(f"cannot rename '{old}' to '{new}' ({e.strerror}); try again") from None
        return self.load(new)

    def delete(self, name: str) -> None:
        folder = self.folder(name)
        if not folder.is_dir():
            raise ElementError(f"element '{name}' not found in {self.root}; see `workbench elements list`")
        trash = self.root / f".trash-{name}-{uuid.uuid4().hex[:8]}"
        os.rename(folder, trash)  # gone from the library at once, even if the removal below is slow
        shutil.rmtree(trash, ignore_errors=True)

    # reading ---------------------------------------------------------------------------------------
    def _read_meta(self, name: str, meta_path: Path) -> dict[str, Any]:
        if not meta_path.is_file():
            raise ElementError(f"element '{name}' not found in {self.root}; see `workbench elements list` "
                               f"or add it with `workbench elements add {name} ...`")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ElementError(f"{meta_path}: corrupt element file ({type(e).__name__}); re-add it with "
                               f"`workbench elements add {name} ... --overwrite` or remove it with "
                               f"`workbench elements rm {name}`") from None
        if not isinstance(meta, dict):
            raise ElementError(f"{meta_path}: corrupt element file (not a JSON object); re-add or remove "
                               f"`{name}`")
        return meta

    def load(self, name: str) -> Element:
        """Load and check one Element; anything wrong is one `ElementError` line naming the file."""
        folder = self.folder(name)
        meta_path = folder / "element.json"
        meta = self._read_meta(name, meta_path)

        def bad(why: str) -> ElementError:
            return ElementError(f"{meta_path}: {why}; re-add it with `workbench elements add {name} ... "
                                f"--overwrite` or remove it with `workbench elements rm {name}`")

        if meta.get("format") != FORMAT_VERSION:
            raise bad(f"unsupported element format {meta.get('format')!r} (this workbench reads {FORMAT_VERSION})")
        kind = meta.get("kind")
        if kind not in KINDS:
            raise bad(f"unknown kind {kind!r}")
        files = meta.get("images")
        hashes = meta.get("image_sha256") or []
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files) or len(hashes) != len(files):
            raise bad("'images' must be a list of file names with one sha256 each")
        images = []
        for fname in files:
            p = folder / fname
            if Path(fname).name != fname or fname.startswith(".") or not p.is_file():
                raise bad(f"reference image {fname!r} is missing or not inside the element's folder")
            images.append(p)
        emb = meta.get("embedding")
        embedding = None
        if emb is not None:
            try:
                embedding = np.asarray(emb, dtype=np.float32)
            except (TypeError, ValueError):
                raise bad("'embedding' is not a list of numbers") from None
            if embedding.ndim != 1 or embedding.size < 8 or not np.all(np.isfinite(embedding)):
                raise bad("'embedding' is not a finite vector")
        if kind == "character" and embedding is None:
            raise bad("a character has no face embedding")
        voice = meta.get("voice")
        if voice is not None and not (isinstance(voice, dict) and isinstance(voice.get("engine"), str)
                                      and isinstance(voice.get("voice"), str)):
            raise bad("'voice' must be {engine, voice}")
        return Element(name=name, kind=kind, path=folder, images=images, image_sha256=list(hashes),
                       embedding=embedding, embedding_backend=meta.get("embedding_backend"), voice=voice,
                       prompt=str(meta.get("prompt") or ""), negative_prompt=str(meta.get("negative_prompt") or ""),
                       notes=str(meta.get("notes") or ""), created_at=str(meta.get("created_at") or ""))

    def names(self) -> list[str]:
        """Names of the Element folders (valid names only; temporary and hidden folders are skipped)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name)
                      and len(p.name) <= MAX_NAME)

    def entries(self) -> list[Entry]:
        """Every Element, each loaded or with the error that stops it; one bad Element spoils no other."""
        out = []
        for name in self.names():
            try:
                out.append(Entry(name, self.load(name)))
            except ElementError as e:
                out.append(Entry(name, None, str(e)))
        return out


def is_reference(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def resolve_reference(value: str, library: ElementLibrary | None = None) -> Element:
    """`element:anna` -> the loaded Element `anna`."""
    if not is_reference(value):
        raise ElementError(f"{value!r} is not an element reference; write element:NAME")
    return (library or ElementLibrary()).load(value[len(PREFIX):])
