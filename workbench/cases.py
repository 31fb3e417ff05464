"""What a case is: its inputs, so the same inputs get the same id in every run (the Studio's Generate
tab and `workbench generate` both name their cases here).

A case id is `<readable stem>-<6 hex>`: the stem says what it is (the image's file name, the
audio's or `speech`, else the first words of the prompt); the hex is a digest of the case's content:
the sha256 of the image and audio files' bytes (`workbench.hashing`), the spoken text and voice, the
prompt and the negative prompt. Two models run on the same portrait and speech on different days give
one case id, so Compare and the report put them in one row; another prompt is another case.

The stem comes from a file name, which the content digest does not cover: the same bytes uploaded as
`me.png` and `me (1).png` would differ only in their stems. `KnownCases` finds the ids already used
under the runs folder, and a digest seen there keeps the id it was first given.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Iterable

from workbench.hashing import file_hash
from workbench.names import slug
from workbench.speech import parse_voice

DIGEST_LEN = 6
STEM_MAX = 40  # the readable part; with "-" and the digest an id stays far below names.MAX_NAME
_UPLOAD = re.compile(r"^[0-9a-f]{8}-(.+)$")  # uploads are stored as <8 hex of their bytes>-<name>


def readable_stem(path: Path) -> str:
    """A file's stem as a person named it: an upload loses the content prefix the Studio gave it."""
    stem = path.stem
    m = _UPLOAD.match(stem) if path.parent.name == "uploads" else None
    return m.group(1) if m else stem


def canonical_voice(voice: str) -> str:
    """A voice as the speech module resolves it (`en-us` and `espeak-ng:en-us` are one voice)."""
    try:
        return str(parse_voice(voice or None))
    except Exception:  # an unknown engine: the text as typed (the run refuses it with its own reason)
        return (voice or "").strip()


def case_digest(image: Path | None = None, audio: Path | None = None, speech: tuple[str, str] | None = None,
                prompt: str = "", negative_prompt: str = "", element: str | None = None) -> str:
    """DIGEST_LEN hex of a sha256 over the case's content (file bytes, spoken words and voice, prompts)."""
    def content(p: Path | None) -> str | None:
        if p is None:
            return None
        return file_hash(Path(p)) or f"missing:{Path(p).resolve()}"  # a missing file: its path (refused anyway)

    parts = {"image": content(image), "element": element, "audio": content(audio),
             "speech": [speech[0].strip(), canonical_voice(speech[1])] if speech else None,
             "prompt": prompt.strip(), "negative_prompt": negative_prompt.strip()}
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:DIGEST_LEN]


def case_stem(image: Path | None = None, audio: Path | None = None, speech: tuple[str, str] | None = None,
              prompt: str = "", element: str | None = None) -> str:
    """The readable part of a case id: image name (or Element), then audio name or `speech`; the first
    words of the prompt when there is no file at all."""
    bits = []
    if element:
        bits.append(element)
    elif image is not None:
        bits.append(readable_stem(Path(image)))
    if audio is not None:
        bits.append(readable_stem(Path(audio)))
    elif speech:
        bits.append("speech")
    if not bits:
        words = " ".join(prompt.split()[:5])
        bits.append(words[:STEM_MAX] if words else "case")
    return slug("-".join(bits), "case", STEM_MAX).rstrip("-._") or "case"


def case_id(image: Path | None = None, audio: Path | None = None, speech: tuple[str, str] | None = None,
            prompt: str = "", negative_prompt: str = "", element: str | None = None,
            known: Iterable[str] = ()) -> str:
    """`<stem>-<digest>` (see the module doc); an id in `known` with this digest is reused as it is."""
    digest = case_digest(image, audio, speech, prompt, negative_prompt, element)
    for k in known:
        if k.endswith("-" + digest):
            return k
    return f"{case_stem(image, audio, speech, prompt, element)}-{digest}"


class KnownCases:
    """Case ids of the run folders under a runs root (read from their results.jsonl, cached per file)."""

    def __init__(self, runs_root: Path) -> None:
        self.runs_root = Path(runs_root)
        self._cache: dict[Path, tuple[tuple[int, int], set[str]]] = {}

    def ids(self) -> set[str]:
        """Every case id used under the runs root (two levels deep, as the run pickers look)."""
        out: set[str] = set()
        if not self.runs_root.is_dir():
            return out
        for results in [*self.runs_root.glob("*/results.jsonl"), *self.runs_root.glob("*/*/results.jsonl")]:
            try:
                st = results.stat()
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            hit = self._cache.get(results)
            if hit is None or hit[0] != stamp:
                hit = (stamp, _case_ids(results))
                self._cache[results] = hit
            out |= hit[1]
        return out


def _case_ids(results: Path) -> set[str]:
    ids: set[str] = set()
    try:
        with open(results, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    case = json.loads(line).get("case")
                except (ValueError, AttributeError):
                    continue
                if isinstance(case, str) and re.search(rf"-[0-9a-f]{{{DIGEST_LEN}}}$", case):
                    ids.add(case)
    except OSError:
        pass
    return ids
