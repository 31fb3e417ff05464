"""Form pieces of the Generate tab: media inputs (samples, upload, path) and a model's parameter form.

`ParamForm` builds one field per entry of a model's defaults (`Generator.describe()["defaults"]`):
a checkbox for booleans, integer / float boxes for numbers, a dropdown when the model lists choices,
text for strings, JSON text for lists, dicts and None. The default is shown beside each field; a bad
value is refused in place (red note beside the field, Run refuses while any note stands) by the same
check the runner applies (`Generator.resolve_params`) plus the range rules below.
"""
from __future__ import annotations

import hashlib
import html
import io
import json
import math
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W

from workbench.ui.paths import samples_dir
from workbench.ui.widgets import one_line

# parameters that are sizes, rates, durations or step counts: a value <= 0 (or < 0) cannot work
POSITIVE = {"fps", "seconds", "width", "height", "size", "num_inference_steps", "steps", "decode_chunk_size",
            "num_outputs"}
NON_NEGATIVE = {"num_frames", "guidance_scale", "min_guidance_scale", "max_guidance_scale", "motion_bucket_id",
                "noise_aug_strength", "blink_every", "max_open", "darkness", "noise_floor", "smooth_frames"}

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
AUDIO_EXT = {".wav", ".mp3", ".m4a", ".flac", ".ogg"}
VIDEO_EXT = {".mp4", ".mov", ".mkv", ".webm", ".avi"}  # the source clip of video-to-video models (dubbing)


def sample_files(kind: str, data_dir: Path | None = None) -> list[Path]:
    """The project's own sample images or audio (data/images, data/audio), when present."""
    data_dir = data_dir or samples_dir()
    folder = data_dir / ("images" if kind == "image" else "audio")
    ext = IMAGE_EXT if kind == "image" else AUDIO_EXT
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in ext) if folder.is_dir() else []


class _NoPreview(Exception):
    """The file is fine but has no preview (a video given as the source of a video-to-video model)."""


class MediaInput(W.VBox):
    """An image or audio input: a sample, an Element (images) or an uploaded file from the dropdown, or a
    typed path (a path wins when filled in). Images get a preview, audio a player."""

    NONE = "(none)"
    SPEAK = "(speak a text)"  # audio only: the case's `text:` (workbench.speech), synthesised by the runner

    def __init__(self, kind: str, uploads_dir: Path, on_change: Callable[[], None] | None = None,
                 elements: "dict[str, Any] | None" = None) -> None:
        assert kind in ("image", "audio")
        self.kind = kind
        self.uploads_dir = Path(uploads_dir)
        self._on_change = on_change
        self._choices: dict[str, Path | None] = {self.NONE: None}
        for p in sample_files(kind):
            self._choices[f"sample: {p.name}"] = p
        if kind == "audio":
            self._choices[self.SPEAK] = None
        self._elements: dict[str, Any] = dict(elements or {}) if kind == "image" else {}
        self.choice = W.Dropdown(options=self._options(), description=kind,
                                 layout=W.Layout(width="300px"), style={"description_width": "80px"})
        accept = "image/*,video/*" if kind == "image" else "audio/*,.wav,.mp3,.m4a,.flac,.ogg"
        self.upload = W.FileUpload(accept=accept, multiple=False, description="upload",
                                   layout=W.Layout(width="auto", min_width="100px"))
        self.path_box = W.Text(placeholder=f"or a path to an {kind} file" if kind == "image" else "or a path to an audio file",
                               layout=W.Layout(width="404px", margin="0 0 0 84px"))
        self.note = W.HTML(layout=W.Layout(margin="0 0 0 84px"))
        self.unused = W.HTML(layout=W.Layout(margin="0 0 0 84px", width="404px"))  # the model does not take it
        self.unused.add_class("wb-unused")
        if kind == "image":
            self.preview: W.Widget = W.Image(format="png", layout=W.Layout(max_width="160px", max_height="160px",
                                                                       margin="0 0 0 84px", display="none"))
        else:
            self.preview = W.Audio(format="wav", autoplay=False, loop=False, controls=True,
                                   layout=W.Layout(width="300px", margin="0 0 0 84px", display="none"))
        self.words = W.Textarea(placeholder="words to speak (espeak-ng offline; neural voices pluggable)",
                                layout=W.Layout(width="404px", height="44px", margin="0 0 0 84px", display="none"))
        self.voice = W.Text(value="en-us", description="voice", placeholder="en-us, de, espeak-ng:fr-fr, mms-tts:eng",
                            layout=W.Layout(width="300px", display="none"), style={"description_width": "80px"})
        self.listen = W.Button(description="listen", icon="volume-up", layout=W.Layout(width="90px", display="none"),
                               tooltip="synthesise the words now and play them")
        self.listen.on_click(lambda _: self._speak())
        speak = [self.words, W.HBox([self.voice, self.listen])] if kind == "audio" else []
        super().__init__([W.HBox([self.choice, self.upload]), self.unused, self.path_box, *speak, self.note,
                          self.preview])
        self.choice.observe(lambda _: self._refresh(), names="value")
        self.words.observe(lambda _: self._on_change and self._on_change(), names="value")
        self.path_box.observe(lambda _: self._refresh(), names="value")
        self.upload.observe(self._uploaded, names="value")
        self.error: str | None = None

    # -- value ------------------------------------------------------------------------------------------
    def _options(self) -> list[str]:
        """Dropdown labels: none, samples, Elements, then uploads (and "speak a text" for audio)."""
        fixed = [k for k in self._choices if not k.startswith("upload: ")]
        return fixed + list(self._elements) + [k for k in self._choices if k.startswith("upload: ")]

    @property
    def path(self) -> Path | None:
        typed = self.path_box.value.strip()
        if typed:
            return Path(typed).expanduser().resolve()
        element = self.element
        if element is not None:
            return element.portrait
        return self._choices.get(self.choice.value)

    @property
    def element(self) -> "Any | None":
        """The chosen Element (None when a file is chosen or a path typed)."""
        if self.path_box.value.strip():
            return None
        return self._elements.get(self.choice.value)

    def select_element(self, name: str) -> bool:
        """Choose the Element `name` (the user's library first); False when none is listed."""
        for label, ch in self._elements.items():
            if ch.name == name and ch.element is not None:
                self.path_box.value = ""
                self.choice.value = label
                return True
        return False

    @property
    def speech(self) -> tuple[str, str] | None:
        """(words, voice) when the input is "speak a text" with words typed in, else None."""
        if not self.speaking:
            return None
        words = self.words.value.strip()
        return (words, self.voice.value.strip() or "en-us") if words else None

    @property
    def speaking(self) -> bool:
        return self.kind == "audio" and self.choice.value == self.SPEAK and not self.path_box.value.strip()

    def _speak(self) -> None:
        """Synthesise the words (cached by the speech module) and load them into the player."""
        sp = self.speech
        self.note.value = ""
        if sp is None:
            self.note.value = "<span style='color:#b00020'>type the words to speak first</span>"
            return
        try:
            from workbench.speech import synthesize

            wav = synthesize(sp[0], sp[1]).path
            self.preview.format = "wav"
            self.preview.value = Path(wav).read_bytes()
            self.preview.layout.display = None
        except Exception as e:
            self.note.value = "<span style='color:#b00020'>" + html.escape(one_line(e)) + "</span>"

    def set_path(self, path: str | Path | None) -> None:
        """Select a file (a known sample or upload by path, else typed into the path box)."""
        if path is None:
            self.path_box.value = ""
            self.choice.value = self.NONE
            return
        p = Path(path).expanduser().resolve()
        for label, q in self._choices.items():
            if q is not None and q.resolve() == p:
                self.path_box.value = ""
                self.choice.value = label
                return
        self.path_box.value = str(p)

    def mark_unused(self, why: str) -> None:
        """Say beside the input that the chosen model does not take it (empty: it does)."""
        self.unused.value = (f"<div style='color:#8a6d00;font-size:11px;line-height:1.3'>{html.escape(why)}</div>"
                             if why else "")

    def select_sample(self, name: str) -> None:
        self.choice.value = f"sample: {name}"

    # -- events -----------------------------------------------------------------------------------------
    def _uploaded(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        f = files[0]
        data = bytes(f["content"])
        name = Path(f["name"]).name or f"upload.{self.kind}"
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        dest = self.uploads_dir / f"{hashlib.sha256(data).hexdigest()[:8]}-{name}"
        dest.write_bytes(data)
        label = f"upload: {name}"
        self._choices[label] = dest
        self.choice.options = self._options()
        self.path_box.value = ""
        self.choice.value = label
        self.upload.value = ()

    def _refresh(self) -> None:
        self.error = None
        p = self.path
        self.note.value = ""
        self.preview.layout.display = "none"
        if self.kind == "audio":
            for w in (self.words, self.voice, self.listen):
                w.layout.display = None if self.speaking else "none"
        element = self.element
        if element is not None and element.portrait is None:
            self.error = one_line(element.error or f"element {element.name} has no reference image")
        elif p is not None:
            from workbench.media import file_problem

            why = file_problem(p, self.kind)  # missing, a folder, a pipe, unreadable: the run's own words
            if why:
                self.error = why
            else:
                try:
                    self._show(p)
                    self.preview.layout.display = None
                except _NoPreview:
                    pass
                except Exception as e:
                    self.error = f"{self.kind} {p.name}: cannot be read ({one_line(e)})"
            if element is not None and not self.error:
                self.note.value = element.note()  # a ui.creative.ElementChoice (creative builds on these forms)
        if self.error:
            self.note.value = f'<span style="color:#b00020">{html.escape(self.error)}</span>'
        if self._on_change:
            self._on_change()

    def _show(self, p: Path) -> None:
        if self.kind == "image" and p.suffix.lower() in VIDEO_EXT:  # a source clip (video-to-video models)
            from workbench.media import Clip

            clip = Clip.open(p, load_audio_track=False)  # the note needs the header only
            self.note.value = (f'<span style="color:#555">video: {clip.num_frames} frames, {clip.size[0]}x{clip.size[1]}, '
                               f'{clip.duration:.1f} s</span>')
            raise _NoPreview()
        if self.kind == "image":
            from PIL import Image

            from workbench.media import load_image

            # the one image loader: a pipe, a folder or a decompression bomb is refused with its reason, as in a run
            buf = io.BytesIO()
            Image.fromarray(load_image(p, max_side=160)).save(buf, format="PNG")
            self.preview.value = buf.getvalue()
        else:
            from workbench.media import load_audio

            audio = load_audio(p)  # decodes any format we accept; refuses unreadable files
            self.preview.format = p.suffix.lstrip(".").lower() or "wav"
            self.preview.value = p.read_bytes()
            self.note.value = f'<span style="color:#555">{audio.duration:.1f} s</span>'


# Sane ranges per parameter name: (low, high, low excluded). A value outside is refused beside its field
# before Run (a typo like 1e9 never reaches a model). The model's own default is always accepted.
RANGES: dict[str, tuple[float, float, bool]] = {
    "fps": (0, 240, True), "seconds": (0, 600, True), "num_frames": (0, 10_000, False),
    "width": (0, 8192, True), "height": (0, 8192, True), "size": (0, 8192, True),
    "num_inference_steps": (1, 1000, False), "steps": (1, 10_000, False), "decode_chunk_size": (1, 1024, False),
    "num_outputs": (1, 64, False), "guidance_scale": (0, 50, False), "min_guidance_scale": (0, 50, False),
    "max_guidance_scale": (0, 50, False), "motion_bucket_id": (0, 1023, False), "noise_aug_strength": (0, 10, False),
    "zoom": (1, 4, False), "pan": (0, 1, False), "max_open": (0, 1, False), "noise_floor": (0, 1, False),
    "darkness": (0, 1, False), "gamma": (0, 10, True), "smooth_frames": (0, 100, False),
    "blink_every": (0, 600, False), "sway": (0, 10, False), "timeout": (0, 7 * 24 * 3600, False),
    "step_s": (0, 60, False),
}
GENERIC_SPAN = 1000  # other numbers: within 1000 x the default's size (at least +-1000)


def parse_number(text: str, integer: bool) -> tuple[int | float | None, str | None]:
    """A number typed as text -> (value, None), or (None, why not). Whole numbers refuse fractions;
    `1e3` and `1_000` read as numbers, `nan` and `inf` do not."""
    t = str(text).strip().replace("_", "")
    if not t:
        return None, "empty: type a number"
    try:
        x = float(t)
    except ValueError:
        return None, f"{text.strip()!r} is not a number"
    if not math.isfinite(x):
        return None, "must be a finite number"
    if integer:
        if not x.is_integer():
            return None, f"must be a whole number, got {text.strip()}"
        return int(x), None
    return x, None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def range_problem(name: str, value: float, default: Any = None, spec: dict[str, Any] | None = None) -> str | None:
    """Why `value` is out of the sane range of parameter `name` (None: within it). The spec's own
    min / max come first, then `RANGES`, then +-GENERIC_SPAN x the default for unknown names."""
    spec = spec or {}
    if default is not None and value == default:
        return None
    lo, hi, open_lo = RANGES.get(name, (None, None, False))
    if spec.get("min") is not None:
        lo, open_lo = spec["min"], False
    if spec.get("max") is not None:
        hi = spec["max"]
    if lo is None and hi is None:
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            span = GENERIC_SPAN * max(1.0, abs(float(default)))
            lo, hi = (0 if default >= 0 and name in NON_NEGATIVE | POSITIVE else -span), span
        else:
            return None
    if lo is not None and (value <= lo if open_lo else value < lo):
        return f"must be > {_num(lo)}" if open_lo else f"must be >= {_num(lo)}"
    if hi is not None and value > hi:
        return f"must be <= {_num(hi)}" + (f" (got {_num(value)})" if abs(value) < 1e15 else "")
    return None


class _Field:
    """One parameter: its widget (numbers are typed as text and checked here: a browser number box
    silently drops text), the default beside it and a note for why a value is refused."""

    def __init__(self, name: str, default: Any, spec: dict[str, Any] | None) -> None:
        self.name = name
        self.default = default
        self.spec = spec or {}
        choices = self.spec.get("choices")
        lw = W.Layout(width="120px")
        if choices:
            self.kind = "choice"
            self.widget: W.ValueWidget = W.Dropdown(options=list(choices), value=default if default in choices else choices[0], layout=lw)
        elif isinstance(default, bool):
            self.kind = "bool"
            self.widget = W.Checkbox(value=default, indent=False, layout=W.Layout(width="120px"))
        elif isinstance(default, (int, float)):
            self.kind = "int" if isinstance(default, int) else "float"
            self.widget = W.Text(value=self.show(default), layout=lw, continuous_update=True)
        elif isinstance(default, str):
            self.kind = "str"
            self.widget = W.Text(value=default, layout=lw)
        else:
            self.kind = "json"
            self.widget = W.Text(value=json.dumps(default), layout=lw)
        self.widget.add_class("wb-param")
        shown = json.dumps(default) if self.kind == "json" else repr(default) if isinstance(default, str) else str(default)
        short = shown if len(shown) <= 12 else shown[:10] + "\u2026"
        self.hint = W.HTML(f'<span style="color:#777;white-space:nowrap" title="{html.escape(shown)}">'
                           f'default {html.escape(short)}</span>', layout=W.Layout(width="96px", min_width="96px"))
        self.note = W.HTML(layout=W.Layout(flex="1 1 auto", min_width="0"))
        self.label = W.HTML(f'<code style="white-space:nowrap" title="{html.escape(name)}">{html.escape(name)}</code>',
                            layout=W.Layout(width="150px", min_width="150px", overflow="hidden"))
        self.box = W.HBox([self.label, self.widget, self.hint, self.note], layout=W.Layout(align_items="center"))

    @property
    def json(self) -> bool:
        return self.kind == "json"

    def show(self, v: Any) -> str:
        """A value as its widget holds it (numbers and JSON as text)."""
        if self.kind == "json":
            return json.dumps(v)
        if self.kind in ("int", "float"):
            if isinstance(v, str):
                return v
            if self.kind == "float" and isinstance(v, (int, float)) and float(v).is_integer() and abs(v) < 1e15:
                return f"{float(v):.1f}"
            return str(v)
        return v

    def set(self, v: Any) -> None:
        """Put a value in the widget (a number for number fields, any JSON value for JSON fields)."""
        self.widget.value = self.show(v)

    def parse(self) -> tuple[Any, str | None]:
        """(value, None), or (None, why the text in the widget is not a value of this field)."""
        v = self.widget.value
        if self.kind in ("int", "float"):
            return parse_number(v, self.kind == "int")
        if self.kind == "json":
            try:
                return (json.loads(v) if v.strip() else None), None
            except json.JSONDecodeError as e:
                return None, f"not valid JSON ({e.msg})"
        return v, None

    def value(self) -> Any:
        """The field's value; ValueError with the reason when the widget holds no valid one."""
        v, err = self.parse()
        if err:
            raise ValueError(f"{self.name}: {err}")
        return v


class ParamForm(W.VBox):
    """The parameter form of one model; `overrides()` gives the values that differ from the defaults.

    Each field is checked on its own (type, sane range, the model's own type check; a diffusers
    model_id must load here), then the whole set by the model's `check_request` (frame rules, size
    multiples, limits), whose one-line message shows under the form. `project_root` is where a relative
    model_id starts (the CLI's working folder)."""

    WHOLE = "(form)"

    def __init__(self, on_change: Callable[[], None] | None = None, project_root: Path | None = None) -> None:
        super().__init__([])
        self.model: type | None = None
        self.fields: dict[str, _Field] = {}
        self.errors: dict[str, str] = {}
        self.project_root = Path(project_root) if project_root is not None else Path.cwd()
        self._on_change = on_change
        self.whole_note = W.HTML()
        self.rule_fields: list[str] = []  # the fields the model's own rule error names (marked beside them)
        self.run_options: dict[str, Any] = {}  # the run options typed beside the form (allow_pickle counts)
        self._rules: dict[str, Any] = {}

    def set_model(self, cls: type | None, values: dict[str, Any] | None = None) -> None:
        """Rebuild the form for a Generator class, optionally filled with saved values."""
        self.model = cls
        self.fields = {}
        self.errors = {}
        if cls is None:
            self.children = []
            return
        desc = cls.describe()
        self._rules = desc.get("rules") or {}
        specs = desc.get("fields") or desc.get("param_specs") or {}
        for name, default in desc.get("defaults", {}).items():
            f = _Field(name, default, specs.get(name) if isinstance(specs, dict) else None)
            self.fields[name] = f
            f.widget.observe(lambda _, n=name: self._check(n), names="value")
        head = W.HTML(f"<b>parameters of {html.escape(desc['name'])}</b>"
                      + ("" if self.fields else " <i>(none)</i>"))
        self.children = [head, *(f.box for f in self.fields.values()), self.whole_note]
        for name, v in (values or {}).items():
            if name in self.fields:
                self.fields[name].set(v)
        for name in self.fields:
            self._check(name, notify=False)
        self._check_whole()  # paints every field

    def set_run_options(self, options: dict[str, Any]) -> None:
        """The run options the model entry will carry: fields whose check reads them (model_id and
        allow_pickle) are checked again."""
        if options == self.run_options:
            return
        self.run_options = dict(options)
        if "model_id" in self.fields:
            self._check("model_id")

    def set_value(self, name: str, value: Any) -> None:
        """Fill one field (checked as if typed)."""
        self.fields[name].set(value)

    def _check(self, name: str, notify: bool = True) -> None:
        f = self.fields[name]
        v, err = f.parse()
        if err is None:
            err = self._problem(name, v)
        if err:
            self.errors[name] = err
        else:
            self.errors.pop(name, None)
        if notify:
            self._check_whole()
        else:
            self._paint(name)
        if notify and self._on_change:
            self._on_change()

    def _paint(self, name: str) -> None:
        """A field's note and mark: its own error, else the model's rule it breaks (e.g. num_frames 4k+1)."""
        f = self.fields[name]
        err = self.errors.get(name) or (self.errors.get(self.WHOLE) if name in self.rule_fields else None)
        f.note.value = (f'<span style="color:#b00020;white-space:normal">\u2716 {html.escape(err)}</span>'
                        if err else "")
        color = "#b00020;font-weight:700" if err else "inherit"
        f.label.value = (f'<code style="white-space:nowrap;color:{color}" title="{html.escape(name)}">'
                         f'{html.escape(name)}</code>')
        (f.widget.add_class if err else f.widget.remove_class)("wb-bad")
        f.widget.layout.border = "1px solid #b00020" if err else None

    def _check_whole(self) -> None:
        """The model's own check of the parameter set (inputs assumed present), over every field whose value
        is valid (a field with its own error counts as its default), so the model's rules (frame counts, size
        multiples) stand beside the field they name even while another field is bad."""
        self.errors.pop(self.WHOLE, None)
        self.rule_fields = []
        self.whole_note.value = ""
        check = getattr(self.model, "check_request", None)
        if check is not None:
            from types import SimpleNamespace

            have = set(getattr(self.model, "requires", ()) or ())
            params = {k: v for k, v in self.overrides().items() if k not in self.errors}
            req = SimpleNamespace(image=object() if "image" in have else None,
                                  audio=object() if "audio" in have else None,
                                  prompt="p" if "prompt" in have else "", negative_prompt="", params=params)
            try:
                check(req)
            except Exception as e:
                self._rule_broken(one_line(e))
        for name in self.fields:
            self._paint(name)

    def _rule_broken(self, msg: str) -> None:
        """The model's check refused the set: beside the field(s) it names (marked), else under the form."""
        import re

        self.errors[self.WHOLE] = msg
        self.rule_fields = [n for n in self.fields if n not in self.errors
                            and re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", msg)]
        if not self.rule_fields:
            self.whole_note.value = f'<span style="color:#b00020">\u2716 {html.escape(msg)}</span>'

    def _problem(self, name: str, v: Any) -> str | None:
        f = self.fields[name]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if f.kind in ("int", "float") or isinstance(f.default, (int, float)):
                spec = dict(f.spec)
                if name == "num_frames" and self._rules.get("max_frames") and spec.get("max") is None:
                    spec["max"] = self._rules["max_frames"]
                if v != f.default:
                    if name in POSITIVE and v <= 0:
                        return "must be > 0"
                    if name in NON_NEGATIVE and v < 0:
                        return "must be >= 0"
                why = range_problem(name, v, f.default, spec)
                if why:
                    return why
        if name == "model_id":
            from workbench.ui.checkpoints import model_id_problem

            why = model_id_problem(self.model, v, self.project_root, self.run_options)
            if why:
                return why
        try:
            self.model.resolve_params({name: v})  # the runner's own type check
        except Exception as e:
            msg = one_line(e)
            return msg.split(": ", 1)[-1] if msg.startswith("model '") else msg
        return None

    @property
    def valid(self) -> bool:
        return not self.errors

    def values(self) -> dict[str, Any]:
        """Every field's value (fields whose text is not a value are left out: they carry an error)."""
        out = {}
        for name, f in self.fields.items():
            v, err = f.parse()
            if err is None:
                out[name] = v
        return out

    def overrides(self) -> dict[str, Any]:
        """The values that differ from the model's defaults (what the suite's `params:` holds)."""
        return {k: v for k, v in self.values().items() if v != self.fields[k].default}
