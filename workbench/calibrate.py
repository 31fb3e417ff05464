"""Metric calibration: the harness measures its own validity.

A calibration suite (YAML) lists real clips, perturbations with a known effect (shuffled frames,
dropped frames, a frozen stretch, per-frame noise, delayed or swapped audio) and, per perturbation,
the direction each metric must move. `run_calibration` scores every clip as is and under every
perturbation with `workbench.metrics.evaluate` (the same code path as any evaluation), compares, and
writes `calibration.json` and `calibration.md` (metric x perturbation: original, perturbed, delta,
expected, pass/fail). A missing clip is a one-line error and the other clips go on.

Suite format::

    name: metric-calibration
    max_seconds: 4            # optional: trim every clip (speed)
    max_side: 512             # optional: downscale frames on load
    clips:
      - path: ../media/talk.mp4        # relative to the suite file
        image: first_frame             # optional identity reference: first_frame or an image path
      - path: scenes/bear.mp4
    metrics: [temporal_flicker, warp_error, identity_similarity, sync_offset]
    perturbations:
      - name: shuffled
        kind: shuffle_frames           # shuffle_frames | drop_frames | freeze | noise | audio_delay | swap_audio
        expect: {temporal_flicker: down, warp_error: up, identity_similarity: same}
      - {name: delay5, kind: audio_delay, frames: 5, expect: {sync_offset: {delta: -5, tol: 2}}}

Expectations: ``up`` / ``down`` (perturbed minus original beyond ``min_change``, default 0),
``same`` (|delta| <= ``tol``, default 0.02) or ``{delta: D, tol: T}`` (|delta - D| <= T).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from workbench.media import Audio, Clip, MediaError, load_audio, load_image

PERTURBATIONS = ("shuffle_frames", "drop_frames", "freeze", "noise", "audio_delay", "swap_audio")
DEFAULT_SAME_TOL = 0.02


class CalibrationSuiteError(ValueError):
    """The calibration YAML is malformed; the message names the file, the entry and the fix."""


# --------------------------------------------------------------------------------------------------
# suite
# --------------------------------------------------------------------------------------------------
@dataclass
class Expectation:
    direction: str  # up | down | same | delta
    delta: float | None = None
    tol: float | None = None
    min_change: float = 0.0

    def describe(self) -> str:
        if self.direction == "delta":
            return f"delta {self.delta:+g} ± {self.tol:g}"
        if self.direction == "same":
            return f"same (±{self.tol:g})"
        return self.direction + (f" (>{self.min_change:g})" if self.min_change else "")

    def check(self, delta: float) -> bool:
        if self.direction == "up":
            return delta > self.min_change
        if self.direction == "down":
            return delta < -self.min_change
        if self.direction == "same":
            return abs(delta) <= (self.tol if self.tol is not None else DEFAULT_SAME_TOL)
        return abs(delta - float(self.delta)) <= float(self.tol)


@dataclass
class Perturbation:
    name: str
    kind: str
    params: dict[str, Any]
    expect: dict[str, Expectation]


@dataclass
class ClipSpec:
    path: Path
    image: str | None  # "first_frame", an image path, or None


@dataclass
class CalibrationSuite:
    path: Path
    name: str
    clips: list[ClipSpec]
    metrics: list[str]
    perturbations: list[Perturbation]
    max_seconds: float | None = None
    max_side: int | None = 512
    seed: int = 0


def _parse_expect(src: Path, pert: str, metric: str, raw: Any) -> Expectation:
    where = f"{src}: perturbation '{pert}', metric '{metric}'"
    if isinstance(raw, str):
        if raw not in ("up", "down", "same"):
            raise CalibrationSuiteError(f"{where}: expect '{raw}' is not up, down, same or {{delta: D, tol: T}}")
        return Expectation(raw, tol=DEFAULT_SAME_TOL if raw == "same" else None)
    if isinstance(raw, dict):
        d = raw.get("direction")
        if d in ("up", "down", "same"):
            return Expectation(d, tol=float(raw.get("tol", DEFAULT_SAME_TOL)), min_change=float(raw.get("min_change", 0.0)))
        if "delta" in raw:
            return Expectation("delta", delta=float(raw["delta"]), tol=float(raw.get("tol", 1.0)))
    raise CalibrationSuiteError(f"{where}: expect {raw!r} is not up, down, same, {{direction: up, min_change: x}} "
                                "or {delta: D, tol: T}")


def load_suite(path: str | Path) -> CalibrationSuite:
    """Read and validate a calibration YAML; clip paths resolve relative to the file."""
    from workbench.suite import read_yaml_mapping

    path = Path(path)
    data = read_yaml_mapping(path, "calibration suite", "clips, metrics, perturbations", CalibrationSuiteError)
    for key in ("clips", "metrics", "perturbations"):
        if not data.get(key) or not isinstance(data[key], list):
            raise CalibrationSuiteError(f"{path}: '{key}' must be a non-empty list")
    clips = []
    for i, c in enumerate(data["clips"]):
        c = {"path": c} if isinstance(c, str) else c
        if not isinstance(c, dict) or not c.get("path"):
            raise CalibrationSuiteError(f"{path}: clips[{i}] needs a 'path'")
        clips.append(ClipSpec((path.parent / str(c["path"])).resolve(), c.get("image")))
    perts = []
    for i, p in enumerate(data["perturbations"]):
        if not isinstance(p, dict) or p.get("kind") not in PERTURBATIONS:
            raise CalibrationSuiteError(f"{path}: perturbations[{i}] needs kind in {', '.join(PERTURBATIONS)}, "
                                        f"got {p.get('kind') if isinstance(p, dict) else p!r}")
        name = str(p.get("name") or p["kind"])
        params = {k: v for k, v in p.items() if k not in ("name", "kind", "expect")}
        if p["kind"] == "swap_audio":
            if not params.get("source"):
                raise CalibrationSuiteError(f"{path}: perturbation '{name}' (swap_audio) needs 'source': an audio/video file")
            params["source"] = (path.parent / str(params["source"])).resolve()
        expect = {str(m): _parse_expect(path, name, str(m), e) for m, e in (p.get("expect") or {}).items()}
        perts.append(Perturbation(name, p["kind"], params, expect))
    metrics = [str(m) for m in data["metrics"]]
    return CalibrationSuite(path, str(data.get("name") or path.stem), clips, metrics, perts,
                            data.get("max_seconds"), data.get("max_side", 512), int(data.get("seed", 0)))


# --------------------------------------------------------------------------------------------------
# perturbations
# --------------------------------------------------------------------------------------------------
def _fit_audio(audio: Audio | None, seconds: float) -> Audio | None:
    if audio is None:
        return None
    n = int(round(seconds * audio.sample_rate))
    s = audio.samples[:n]
    if len(s) < n:
        s = np.concatenate([s, np.zeros(n - len(s), np.float32)])
    return Audio(s, audio.sample_rate)


def perturb(clip: Clip, p: Perturbation, seed: int = 0) -> Clip:
    """Apply one perturbation to an in-memory clip (frames and/or audio); returns a new clip."""
    frames, fps, audio = clip.frames, clip.fps, clip.audio
    assert frames is not None, "perturb needs an in-memory clip (Clip.load())"
    rng = np.random.default_rng(seed)
    k = p.kind
    if k == "shuffle_frames":
        return Clip.from_frames(frames[rng.permutation(len(frames))], fps, audio)
    if k == "drop_frames":  # keep 1 of every `every` frames at the same fps: motion jumps, the clip shortens
        every = int(p.params.get("every", 2))
        kept = frames[::every]
        return Clip.from_frames(kept, fps, _fit_audio(audio, len(kept) / fps))
    if k == "freeze":  # hold one frame for a stretch
        start = int(round(float(p.params.get("start", 0.25)) * fps))
        n = max(2, int(round(float(p.params.get("seconds", 1.0)) * fps)))
        out = frames.copy()
        start = min(start, len(out) - 1)
        out[start:start + n] = out[start]
        return Clip.from_frames(out, fps, audio)
    if k == "noise":  # independent Gaussian noise per frame (sigma in 0-255 units)
        sigma = float(p.params.get("sigma", 8.0))
        out = np.empty_like(frames)
        for i, f in enumerate(frames):
            out[i] = np.clip(f.astype(np.float32) + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8)
        return Clip.from_frames(out, fps, audio)
    if k == "audio_delay":
        if audio is None:
            raise MediaError("clip has no audio track; audio_delay needs a clip with sound")
        return Clip.from_frames(frames, fps, audio.shift(float(p.params.get("frames", 5)) / fps))
    if k == "swap_audio":
        src = Path(p.params["source"])
        other = load_audio(src, sample_rate=audio.sample_rate if audio is not None else None)
        return Clip.from_frames(frames, fps, _fit_audio(other, len(frames) / fps))
    raise ValueError(f"unknown perturbation kind {k!r}; known: {', '.join(PERTURBATIONS)}")


# --------------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------------
@dataclass
class CalibrationRow:
    clip: str
    perturbation: str
    metric: str
    original: float | None
    perturbed: float | None
    delta: float | None
    expected: str  # "" when the suite declares no expectation for this pair
    passed: bool | None  # None: no expectation, or a value could not be computed
    note: str = ""


@dataclass
class CalibrationResult:
    suite: str
    rows: list[CalibrationRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    @property
    def checked(self) -> list[CalibrationRow]:
        return [r for r in self.rows if r.expected]

    @property
    def passed(self) -> int:
        return sum(r.passed is True for r in self.rows)

    @property
    def failed(self) -> int:
        return sum(r.passed is False for r in self.rows)

    @property
    def unscored(self) -> int:
        """Expectations that could not be checked (a value was null)."""
        return sum(bool(r.expected) and r.passed is None for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "passed": self.passed, "failed": self.failed, "unscored": self.unscored,
                "errors": self.errors, "rows": [asdict(r) for r in self.rows]}


def _load_clip(spec: ClipSpec, suite: CalibrationSuite) -> tuple[Clip, np.ndarray | None]:
    if not spec.path.is_file():
        raise MediaError(f"{spec.path}: clip not found (listed in {suite.path}); fix its path, relative to the suite file")
    clip = Clip.open(spec.path)
    limit = int(math.ceil(suite.max_seconds * clip.fps)) if suite.max_seconds else None
    frames = clip.to_array(max_frames=limit, max_side=suite.max_side)
    n = len(frames)
    audio = _fit_audio(clip.audio, n / clip.fps) if clip.audio is not None else None
    mem = Clip.from_frames(frames, clip.fps, audio)
    image = None
    if spec.image == "first_frame":
        image = frames[0]
    elif spec.image:
        image = load_image((suite.path.parent / spec.image).resolve())
    return mem, image


def _resolvable(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """Split metric names into known ones and {unknown: error} (other metric modules may be absent)."""
    from workbench.metrics.registry import resolve

    ok, bad = [], {}
    for n in names:
        try:
            resolve([n])
            ok.append(n)
        except Exception as e:  # UnknownMetric, or a metric module that fails to import
            bad[n] = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ok, bad


def run_calibration(suite_path: Path, out_dir: Path | None = None,
                    progress: Callable[[str], None] | None = None) -> CalibrationResult:
    """Score every clip of the suite as is and under each perturbation; write calibration.json/.md.

    `out_dir` defaults to `<suite folder>/<suite stem>-calibration`. Returns the rows and pass counts.
    """
    from workbench.metrics.registry import evaluate

    suite = load_suite(suite_path)
    out_dir = Path(out_dir) if out_dir is not None else suite.path.parent / f"{suite.path.stem}-calibration"
    result = CalibrationResult(suite=suite.name, out_dir=out_dir)
    say = progress or (lambda _m: None)
    metrics, unknown = _resolvable(suite.metrics)
    for name, why in unknown.items():
        result.errors.append(f"metric '{name}': {why}")
    for spec in suite.clips:
        label = spec.path.name
        try:
            clip, image = _load_clip(spec, suite)
        except MediaError as e:
            result.errors.append(str(e))
            say(f"error: {e}")
            continue
        say(f"{label}: original")
        base = evaluate(clip, image=image, metrics=metrics, skip_inapplicable=False) if metrics else None
        for p in suite.perturbations:
            say(f"{label}: {p.name}")
            try:
                pert = perturb(clip, p, suite.seed)
            except (MediaError, ValueError) as e:
                msg = f"{label}: perturbation '{p.name}' skipped: {e}"
                result.errors.append(msg)
                for m in suite.metrics:
                    if m in p.expect:
                        result.rows.append(CalibrationRow(label, p.name, m, None, None, None,
                                                          p.expect[m].describe(), None, str(e)))
                continue
            after = evaluate(pert, image=image, metrics=metrics, skip_inapplicable=False) if metrics else None
            for m in suite.metrics:
                exp = p.expect.get(m)
                if m in unknown:
                    if exp:
                        result.rows.append(CalibrationRow(label, p.name, m, None, None, None, exp.describe(),
                                                          None, unknown[m]))
                    continue
                o, a = base.scores.get(m), after.scores.get(m)
                delta = None if o is None or a is None else a - o
                note = base.errors.get(m) or after.errors.get(m) or ""
                passed = None if exp is None or delta is None else bool(exp.check(delta))
                result.rows.append(CalibrationRow(label, p.name, m, o, a, delta, exp.describe() if exp else "",
                                                  passed, note))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "calibration.json").write_text(json.dumps(result.to_json(), indent=2))
    (out_dir / "calibration.md").write_text(render_markdown(result))
    return result


def _fmt(v: float | None) -> str:
    return "null" if v is None else f"{v:.4g}"


def render_markdown(result: CalibrationResult) -> str:
    """Markdown report: one table per clip, metric x perturbation."""
    lines = [f"# Metric calibration: {result.suite}", "",
             f"**{result.passed} passed, {result.failed} failed, {result.unscored} not scorable** "
             f"(of {len(result.checked)} declared expectations).", ""]
    if result.errors:
        lines += ["## Errors", ""] + [f"- {e}" for e in result.errors] + [""]
    for clip in dict.fromkeys(r.clip for r in result.rows):
        lines += [f"## {clip}", "", "| metric | perturbation | original | perturbed | delta | expected | result |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted((r for r in result.rows if r.clip == clip), key=lambda r: r.metric):
            status = {True: "pass", False: "**FAIL**", None: "n/a" if r.expected else ""}[r.passed]
            if r.note and r.passed is None and r.expected:
                status += f" ({r.note.replace('|', '/')})"
            lines.append(f"| {r.metric} | {r.perturbation} | {_fmt(r.original)} | {_fmt(r.perturbed)} | "
                         f"{'null' if r.delta is None else f'{r.delta:+.4g}'} | {r.expected or '-'} | {status} |")
        lines.append("")
    return "\n".join(lines)
