"""Prompt enhancer: a plain prompt -> the prompt a model family was trained to read, and its negative.

Two paths, one result (`Enhanced`: the prompt, the negative prompt, the original, and its source):

- templates (`source: "template:<family>"`, always available, deterministic): the plain prompt is kept
  word for word and completed with what it does not say yet, from camera / motion / lighting
  vocabulary chosen by the task (an image-to-video prompt describes motion and camera, not the still
  it starts from; text-to-video also sets the shot; a talking head asks for speech-led motion; a
  still image gets no motion words) and by what the words are about (a person, a product, a scene),
  written in the family's style (Wan, HunyuanVideo, SkyReels and CogVideoX read long descriptive
  sentences; LTX-Video reads one chronological paragraph; SDXL reads comma-separated tags). The
  negative prompt is the family's recommended one, read from the family table
  (`workbench.models.families`), never a copy of it.
- a local language model (`source: "lm:<folder>"`) when `$WORKBENCH_PROMPT_LM` (or `lm=`) names a local
  transformers folder with a small instruct model: asked to rewrite the prompt with the same
  vocabulary as guidance. Nothing downloads. Without that folder the template path runs and the
  result's `notes` say why; an answer that is empty or far too long falls back to the template.

`enhance_prompt("a cup on a table, slow turn", "wan2.1-i2v-480p")` is the whole API; the suite step
(`workflow.steps.resolve_case`) records `prompt_original` and `prompt_source` next to the prompt run.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

LM_ENV = "WORKBENCH_PROMPT_LM"
MAX_WORDS = 160  # a longer language-model answer is not a prompt (the template is used instead)

# pipeline class prefix -> family key (the order matters: LTX2 before LTX, Wan before the rest)
_PIPELINE_FAMILY = (("Wan", "wan"), ("SkyReelsV2", "skyreels"), ("CogVideoX", "cogvideox"), ("LTX", "ltx"),
                    ("HunyuanVideo", "hunyuan"), ("Sana", "sana"), ("StableVideoDiffusion", "svd"),
                    ("StableDiffusionXL", "sdxl"), ("StableDiffusion3", "sd3"), ("Flux", "flux"))
# how each family reads a prompt: "sentences" (long description), "chronological" (one paragraph that
# starts with the action, LTX's prompt guide), "tags" (comma-separated, SDXL)
_STYLE = {"ltx": "chronological", "sdxl": "tags"}
_TAIL = {  # the closing quality sentence in the family's idiom
    "wan": "Cinematic, highly detailed, smooth natural motion, consistent from frame to frame.",
    "skyreels": "Cinematic film look, highly detailed, smooth natural motion, consistent from frame to frame.",
    "hunyuan": "Realistic, high-definition, cinematic quality with smooth, natural motion.",
    "cogvideox": "The video is rendered in high definition with realistic detail and fluid, coherent motion.",
    "ltx": "The scene is captured in high detail with realistic, fluid motion.",
    "sana": "High quality, detailed, smooth motion.",
    "sd3": "High quality, sharp focus, fine detail.",
    "flux": "Photographic, sharp focus, fine detail.",
    "sdxl": "masterpiece, high detail, sharp focus, 8k",
}
_GENERIC_TAIL = "High quality, detailed, smooth and natural motion."


@dataclass
class Family:
    """What the enhancer needs to know about a model: its family key, task and whether it reads prompts."""

    key: str  # "wan", "ltx", ... ; "baseline", "talking-head", "hosted", "generic" for the rest
    model: str
    task: str
    reads_prompt: bool
    negative_prompt: str = ""  # the family's recommended negative ("" when the table has none)
    takes_negative: bool = True


@dataclass
class Enhanced:
    prompt: str
    negative_prompt: str
    original: str
    negative_original: str
    source: str  # "template:<family>" | "lm:<id>" | "unchanged:<family>"
    family: str
    model: str
    notes: list[str] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        """What a run record keeps: the original prompt and where the run's prompt came from."""
        return {"prompt_original": self.original, "prompt_source": self.source, "family": self.family,
                "negative_prompt_original": self.negative_original, "notes": list(self.notes)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EnhanceError(ValueError):
    """The prompt cannot be enhanced for this model; one line saying why."""


def family_negative(spec: Any) -> str:
    """The family's recommended negative prompt from the family table (`FamilySpec.negative_prompt`)."""
    own = getattr(spec, "negative_prompt", "")
    return own if isinstance(own, str) else ""


def family_key(spec: Any) -> str | None:
    """The family key of a diffusers family spec (from its pipeline class), None when unknown."""
    pipeline = getattr(spec, "pipeline", "") or ""
    for prefix, key in _PIPELINE_FAMILY:
        if pipeline.startswith(prefix):
            return key
    return None


def family_of(model: str) -> Family:
    """The enhancer's view of a registered model (UnknownModel for a name that is not registered)."""
    from workbench.models import get_generator

    cls = get_generator(model)
    accepts = cls.accepts if cls.accepts is not None else frozenset(cls.requires)
    reads = "prompt" in accepts
    from workbench.models.families import FamilySpec

    spec = getattr(cls, "spec", None)
    if isinstance(spec, FamilySpec):  # a diffusers family (hosted rows have a `spec` of their own)
        key = family_key(spec) or "generic"
        return Family(key, model, cls.task, reads, family_negative(spec), "negative_prompt" in accepts)
    if callable(getattr(cls, "provider_info", None)):
        key = "hosted"
    elif cls.__module__.endswith(".baselines"):
        key = "baseline"
    elif cls.task in ("audio-to-video", "video-to-video"):
        key = "talking-head"
    else:
        key = "generic"
    return Family(key, model, cls.task, reads, "", "negative_prompt" in accepts)


# --------------------------------------------------------------------------------------------------
# the template path
# --------------------------------------------------------------------------------------------------
_HAS_CAMERA = re.compile(r"\b(camera|zoom\w*|pan(s|ning)?|dolly|tracking|orbit\w*|push(es|ing)? in|pull(s|ing)? "
                         r"(back|out)|tilt\w*|crane|handheld|locked[- ]off|static shot|close[- ]?up|wide shot|"
                         r"aerial|drone)\b", re.I)
_HAS_LIGHT = re.compile(r"\b(light\w*|lit|sun\w*|golden hour|dusk|dawn|night|neon|shadow\w*|backlit|glow\w*|"
                        r"moonlight|candle\w*|studio)\b", re.I)
_HAS_SHOT = re.compile(r"\b(shot|close[- ]?up|wide|medium|portrait|aerial|overhead|framing)\b", re.I)
_PERSON = re.compile(r"\b(person|man|woman|boy|girl|child|people|face|portrait|presenter|speaker|astronaut|"
                     r"character|she|he|they|actor|actress|singer|host)\b", re.I)
_PRODUCT = re.compile(r"\b(product|bottle|packshot|pack shot|shoe|sneaker|watch|perfume|cup|mug|can|box|phone|"
                      r"jar|bag|chair|lamp|car|headphones?)\b", re.I)


def _subject(text: str) -> str:
    if _PERSON.search(text):
        return "person"
    if _PRODUCT.search(text):
        return "product"
    return "scene"


def _pace(text: str) -> str:
    low = text.lower()
    if re.search(r"\b(slow|slowly|gentle|gently|subtle|calm|soft)\b", low):
        return "slow"
    if re.search(r"\b(fast|quick|quickly|dynamic|energetic|dramatic|rapid)\b", low):
        return "fast"
    return "gentle"


_CAMERA = {  # subject -> (i2v / t2v camera sentence by pace)
    "person": {"slow": "The camera slowly pushes in towards the face.",
               "gentle": "The camera holds a steady medium close-up with a slight, smooth push-in.",
               "fast": "The camera moves in quickly with a smooth dolly."},
    "product": {"slow": "The camera slowly orbits around the product.",
                "gentle": "The camera glides in a smooth, steady arc around the product.",
                "fast": "The camera sweeps quickly around the product in one smooth move."},
    "scene": {"slow": "The camera slowly pans across the scene.",
              "gentle": "The camera drifts forward in a smooth, steady dolly.",
              "fast": "The camera tracks quickly through the scene in one smooth move."},
}
_MOTION = {
    "person": "Natural, subtle movement: soft blinking, slight head turns and breathing, expressive face.",
    "product": "The product stays sharp and centred while light glides across its surfaces.",
    "scene": "Gentle natural motion fills the scene: foliage sways, water ripples and clouds drift.",
}
_LIGHT = {
    "person": "Soft, even key light with a gentle rim light, natural skin tones.",
    "product": "Clean studio lighting with soft reflections on a seamless background.",
    "scene": "Natural light with cinematic colour grading and soft shadows.",
}
_SHOT = {"person": "A medium close-up shot.", "product": "A centred product shot.", "scene": "A wide establishing shot."}
_TALKING = ("The person speaks to the camera, lips moving in sync with the speech, natural facial expressions, "
            "occasional blinks and small head movements; the head pose stays steady.")


def _sentence(text: str) -> str:
    text = text.strip().rstrip(",;")
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def template_prompt(prompt: str, fam: Family) -> tuple[str, list[str]]:
    """The plain prompt completed with the parts it lacks, in the family's style; (prompt, what was added)."""
    plain = " ".join(prompt.split())
    subject = _subject(plain)
    pace = _pace(plain)
    part: dict[str, str] = {}
    if fam.task == "text-to-image":
        if not _HAS_SHOT.search(plain):
            part["shot"] = _SHOT[subject]
    elif fam.task in ("audio-to-video", "video-to-video") or fam.key == "talking-head":
        part["speech-led motion"] = _TALKING
    else:
        if fam.task == "text-to-video" and not _HAS_SHOT.search(plain):
            part["shot"] = _SHOT[subject]
        part["motion"] = _MOTION[subject]
        if not _HAS_CAMERA.search(plain):
            part[f"camera ({pace})"] = _CAMERA[subject][pace]
    if not _HAS_LIGHT.search(plain):
        part["lighting"] = _LIGHT[subject]
    tail = _TAIL.get(fam.key, _GENERIC_TAIL)
    style = _STYLE.get(fam.key, "sentences")
    shot = part.get("shot", "")
    rest = [v for k, v in part.items() if k != "shot"]
    if style == "tags":  # SDXL: comma-separated tags
        tags = [plain.strip(" .,"), shot.strip(" .").lower(), *(r.strip(" .").lower() for r in rest), tail]
        text = ", ".join(t for t in tags if t)
    elif style == "chronological":  # LTX: the action first, then movement, framing, camera and light
        text = " ".join(s for s in [_sentence(plain), rest[0] if rest else "", shot, *rest[1:], tail] if s)
    else:  # long description: framing, subject and action, motion, camera, light, quality
        text = " ".join(s for s in [shot, _sentence(plain), *rest, tail] if s)
    return text, list(part)


# --------------------------------------------------------------------------------------------------
# the language-model path
# --------------------------------------------------------------------------------------------------
def lm_folder(lm: str | Path | None = None) -> tuple[Path | None, str | None]:
    """(the local language-model folder to use, None) or (None, why the template path runs instead)."""
    value = lm if lm is not None else os.environ.get(LM_ENV)
    if not value:
        return None, f"no prompt language model (set {LM_ENV} to a local transformers folder); used the template"
    path = Path(value).expanduser()
    if not (path / "config.json").is_file():
        return None, f"{LM_ENV}={path}: no transformers model there (config.json missing); used the template"
    return path, None


@lru_cache(maxsize=2)
def _pipeline(path: str) -> Any:
    from transformers import pipeline

    return pipeline("text-generation", model=path, tokenizer=path, device="cpu")  # a local folder: nothing downloads


def _lm_instruction(prompt: str, fam: Family, hint: str) -> str:
    return (f"Rewrite this prompt for the {fam.key} {fam.task} video model. Keep what it says, add camera motion, "
            f"subject motion and lighting, in one paragraph of at most 80 words. Answer with the prompt only.\n"
            f"Example of the vocabulary: {hint}\nPrompt: {prompt}\nRewritten prompt:")


def clean_lm_answer(text: str) -> str:
    """The first paragraph of a language model's answer, without labels or quotes ('' when nothing usable)."""
    text = re.sub(r"<\|[^|>]*\|>|</?s>", " ", text or "").strip()
    para = next((p for p in re.split(r"\n\s*\n", text) if p.strip()), "")
    para = re.sub(r"^\s*(rewritten prompt|prompt|answer)\s*:\s*", "", para.strip(), flags=re.I)
    para = "".join(ch for ch in para if ch.isprintable() and ch != "\ufffd")
    para = " ".join(para.split()).strip("\"'“”‘’ ")
    return para


def lm_prompt(prompt: str, fam: Family, path: Path, max_new_tokens: int = 120) -> str:
    """Ask the local model at `path` to rewrite `prompt`; '' when its answer is not a usable prompt."""
    pipe = _pipeline(str(path))
    hint, _ = template_prompt(prompt, fam)
    instruction = _lm_instruction(prompt, fam, hint)
    tok = pipe.tokenizer
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                       add_generation_prompt=True)
    else:
        text = instruction
    out = pipe(text, max_new_tokens=max_new_tokens, do_sample=False, return_full_text=False)
    answer = clean_lm_answer(out[0]["generated_text"] if out else "")
    return answer if 0 < len(answer.split()) <= MAX_WORDS else ""


# --------------------------------------------------------------------------------------------------
# the API
# --------------------------------------------------------------------------------------------------
def enhance_prompt(prompt: str, model: str | Family, negative_prompt: str = "", lm: str | Path | None = None,
                   use_lm: bool = True) -> Enhanced:
    """`prompt` made into what `model`'s family reads best, with the family's negative prompt.

    `lm`: a local language-model folder (default $WORKBENCH_PROMPT_LM); absent, the template is used and
    `notes` say so. A negative prompt the user gave is kept and the family's one is appended."""
    fam = model if isinstance(model, Family) else family_of(model)
    plain = " ".join((prompt or "").split())
    notes: list[str] = []
    negative = (negative_prompt or "").strip()
    if fam.negative_prompt and fam.takes_negative:
        if not negative:
            negative = fam.negative_prompt
            notes.append(f"negative prompt: the {fam.key} family's recommended one")
        elif fam.negative_prompt not in negative:
            negative = f"{negative}, {fam.negative_prompt}"
            notes.append(f"negative prompt: yours plus the {fam.key} family's recommended one")
    if not fam.reads_prompt:
        notes.append(f"{fam.model} does not read the prompt; left as it is")
        return Enhanced(prompt, negative_prompt, prompt, negative_prompt, f"unchanged:{fam.key}", fam.key, fam.model,
                        notes)
    if not plain:
        raise EnhanceError("the prompt is empty; write what should happen (e.g. \"she smiles and looks up\") "
                           "and the enhancer adds camera, motion and lighting")
    if use_lm:
        path, why = lm_folder(lm)
        if path is not None:
            try:
                text = lm_prompt(plain, fam, path)
            except Exception as e:  # a model that fails to load or run: the template still gives a prompt
                text = ""
                notes.append(f"prompt language model {path.name} failed ({type(e).__name__}); used the template")
            if text:
                notes.append(f"prompt rewritten by the local language model {path.name}")
                return Enhanced(text, negative, prompt, negative_prompt, f"lm:{path.name}", fam.key, fam.model, notes)
            if not any("failed" in n for n in notes):
                notes.append(f"prompt language model {path.name} gave no usable prompt; used the template")
        else:
            notes.append(why)
    text, added = template_prompt(plain, fam)
    if added:
        notes.append(f"template added: {', '.join(added)}")
    return Enhanced(text, negative, prompt, negative_prompt, f"template:{fam.key}", fam.key, fam.model, notes)


# --------------------------------------------------------------------------------------------------
# plain vs enhanced, side by side in one suite (best-of-N compares them)
# --------------------------------------------------------------------------------------------------
PLAIN, ENHANCED = "plain", "enhanced"


def prompt_variants(case: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """A suite case as two cases, `<id>-plain` and `<id>-enhanced`, for one suite to compare them.

    The enhanced one carries `enhance: true` where the suite schema has that field (the run then
    records `prompt_original` / `prompt_source`), else the enhanced prompt and negative written in."""
    from workbench.suite import CaseSpec

    plain = {**case, "id": f"{case['id']}-{PLAIN}"}
    enhanced = {**case, "id": f"{case['id']}-{ENHANCED}"}
    if "enhance" in CaseSpec.model_fields:
        enhanced["enhance"] = model
    else:
        result = enhance_prompt(case.get("prompt", ""), model, case.get("negative_prompt", ""))
        enhanced.update(prompt=result.prompt, negative_prompt=result.negative_prompt)
    return [plain, enhanced]


def compare_prompt_variants(records: list[dict[str, Any]], objective: Any) -> dict[str, Any]:
    """Best-of-N over plain vs enhanced prompts: for each request (case base, model, seed) the best
    sample's objective under each variant, and the mean difference enhanced - plain over the pairs."""
    from workbench.workflow.bestofn import rank

    best: dict[tuple[str, str, Any], dict[str, float]] = {}
    for rk in rank(records, objective):
        base, _, variant = rk.case.rpartition("-")
        if variant not in (PLAIN, ENHANCED) or rk.best is None:
            continue
        best.setdefault((base, rk.model, rk.seed), {})[variant] = rk.best["objective"]
    pairs = [{"case": k[0], "model": k[1], "seed": k[2], **v} for k, v in best.items() if len(v) == 2]
    diffs = [p[ENHANCED] - p[PLAIN] for p in pairs]
    return {"pairs": pairs, "mean_gain": sum(diffs) / len(diffs) if diffs else None,
            "enhanced_better": sum(d > 0 for d in diffs), "n": len(diffs)}
