"""The local report: numbers for reading, nulls with reasons, the not-computed banner, ranking with Holm,
figures, a cases x models grid of relative video links; built from a real run of the runner."""
from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from workbench.cli import app
from workbench.experiment import Runner
from workbench.media import Audio
from workbench.ranking import MIN_CASES, holm, sign_flip_p
from workbench.report import ReportError, build_context, fetch_command, fmt_number, write_report
from workbench.store import load_records
from workbench.suite import load_suite

METRICS = ["temporal_flicker", "warp_error", "motion_smoothness", "flow_magnitude", "identity_similarity", "lse_d"]


class Page(HTMLParser):
    """Elements of interest from the report: every tag with its attributes, text outside script/style."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._skip = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)

    def find(self, tag: str, cls: str | None = None) -> list[dict]:
        return [a for t, a in self.tags if t == tag and (cls is None or cls in (a.get("class") or "").split())]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real run: two drifting generators, three cases (one broken), two seeds, metrics that give tiny
    numbers (warp_error), nulls with reasons (identity: no face) and a score no job can compute (lse_d
    needs SyncNet weights)."""
    d = tmp_path_factory.mktemp("report")
    y, x = np.mgrid[0:40, 0:40]
    Image.fromarray(np.stack([x * 6, y * 6, 0 * x + 90], -1).astype(np.uint8)).save(d / "a.png")
    Image.fromarray(np.stack([y * 6, x * 6, (x * y) % 255], -1).astype(np.uint8)).save(d / "b.png")
    (d / "broken.png").write_bytes(b"not a png")
    t = np.arange(16000) / 16000
    Audio((0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32),
          16000).save_wav(d / "speech.wav")
    spec = {"name": "report-test", "output": "run",
            "cases": [{"id": "a", "image": "a.png", "prompt": "a drifting gradient"},
                      {"id": "b", "image": "b.png", "audio": "speech.wav"},
                      {"id": "bad", "image": "broken.png"}],
            "models": [{"name": "test-drift", "label": "drift"},
                       {"name": "test-drift", "label": "drift-long", "params": {"num_frames": 10}}],
            "seeds": [0, 1], "metrics": METRICS}
    (d / "suite.yaml").write_text(yaml.safe_dump(spec))
    runner = Runner(load_suite(d / "suite.yaml"))
    runner.run_all()
    write_report(runner.store.root)
    return runner.store.root


def table_data(text: str) -> dict:
    """The clip table's compact data in a report page (<script id="clip-data">)."""
    m = re.search(r'<script type="application/json" id="clip-data">(.*?)</script>', text, re.S)
    assert m, "the page holds no clip table data"
    return json.loads(m.group(1))


def test_numbers_read_plainly():
    assert fmt_number(2.46e-05) == "0.0000246" and "e" not in fmt_number(1.234e-07)
    assert fmt_number(2.46e-05, scale=1e6) == "24.6"
    assert fmt_number(0.123456) == "0.123" and fmt_number(12.3456) == "12.3" and fmt_number(123456.7) == "123,457"
    assert fmt_number(-3.0, integer=True) == "-3" and fmt_number(0.5, signed=True) == "+0.500"
    assert fmt_number(0.0) == "0" and fmt_number(1e-12) == "0" and fmt_number(float("inf")) == "\u221e"


def test_holm_adjustment_and_sign_flip_p():
    # Holm (1979): sort, multiply the k-th smallest by (m - k + 1), keep the running maximum, cap at 1
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.01]) == pytest.approx([0.5, None, 0.02])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8 capped at 1; monotone
    # exact sign-flip test by hand: all n differences positive -> only the all-+ and all-- patterns are as
    # extreme, p = 2/2^n; so with 5 cases p = 0.0625 (never significant), with 6 p = 0.03125
    assert sign_flip_p([1.0, 2.0, 1.5, 0.5, 1.0]) == pytest.approx(2 / 32)
    assert sign_flip_p([1.0] * MIN_CASES) == pytest.approx(2 / 2 ** MIN_CASES) and 2 / 2 ** MIN_CASES < 0.05
    # [1, -1, 3]: mean 1; the 8 sign patterns give sums 3, -3, 5, -1, 1, -5, 3, -3: six have |sum| >= 3
    assert sign_flip_p([1.0, -1.0, 3.0]) == pytest.approx(6 / 8)
    assert sign_flip_p([]) is None and sign_flip_p([0.0, 0.0]) == 1.0
    rng = np.random.default_rng(1)
    noise = list(rng.normal(0, 1, 30))  # Monte Carlo path (> 16 units): pure noise is not significant
    assert sign_flip_p(noise) > 0.05 and sign_flip_p([x + 2 for x in noise]) < 0.001


def test_fetch_command_is_quoted_from_the_reason():
    assert fetch_command(["lipsync: needs SyncNet weights; run `workbench weights fetch syncnet_v2`"]) == \
        "workbench weights fetch syncnet_v2"
    assert fetch_command(["syncnet_v2 only: set WORKBENCH_SYNCNET_WEIGHTS"]) == "workbench weights check"
    assert fetch_command(["identity: no face found in the reference image"]) is None


def test_report_content_from_a_real_run(run_dir):
    records = load_records(run_dir)
    ok = [r for r in records if r["status"] == "ok"]
    assert len(records) == 12 and len(ok) == 8
    html = (run_dir / "report.html").read_text()
    page = Page(html)
    text = " ".join(page.text)

    # numbers: fixed notation everywhere; warp_error always in units of 10^-3 (its spec's display unit: the same
    # unit in every run, the Studio and the report), whatever this run's values
    assert not re.search(r"\d(\.\d+)?e[-+]?\d", text), re.search(r".{40}\d(\.\d+)?e[-+]?\d.{20}", text)
    warp = max(r["scores"]["warp_error"] for r in ok)
    assert 0 < warp < 0.01
    assert re.search(r"warp_error \u2193\s*\u00d710\u207b\u00b3", text)
    info = build_context(records, run_dir)["metrics"]
    assert next(i for i in info if i.name == "warp_error").fmt(warp) == fmt_number(warp * 1000)

    # every n/a carries its reason; the identity reason (no face) is shown inline as well
    nulls = page.find("span", "null")
    assert nulls and all(a.get("title") for a in nulls)
    ident_why = next(r["score_errors"]["identity_similarity"] for r in ok if r["scores"].get("identity_similarity") is None)
    assert ident_why in {a["title"] for a in nulls}

    # lse_d was asked for and no job has it: the banner names it with the reason
    ctx = build_context(records, run_dir)
    missing = {n: m for m in ctx["missing"] for n in m["names"]}
    assert "lse_d" in missing and "identity_similarity" in missing
    assert all(r["scores"].get("lse_d") is None for r in ok)
    banner = html[html.index('id="not-computed"'):html.index("</div>", html.index('id="not-computed"'))]
    assert "lse_d" in banner and any(w[:30] in banner for w in missing["lse_d"]["reasons"])

    # the best model per score in the summary is the one with the best mean as shown, computed here independently
    tf = next(i for i in ctx["metrics"] if i.name == "temporal_flicker")
    means = {m: np.mean([r["scores"]["temporal_flicker"] for r in ok if r["model"] == m]) for m in ctx["models"]}
    top = tf.fmt(max(means.values()))
    for row in ctx["summary_rows"]:
        cell = row["cells"][ctx["metrics"].index(tf)]
        winners = {m for m, v in means.items() if tf.fmt(v) == top}
        assert cell["best"] == (row["model"] in winners and len(winners) < len(means))
    # no headline mean rank across scores with different meanings
    assert "mean rank" not in text.lower() and "mean_rank" not in ctx

    # the ranking compares every model with the top one over matched pairs; 2 cases with pairs are too few for a
    # test (a sign-flip test over 2 cases cannot go below p = 0.5), so nothing is called significant
    rows = [row for block in ctx["ranking"] for row in block["rows"] if not row["top"]]
    assert rows and all(row["pairs"] == 4 and row["cases"] == 2 for row in rows)
    assert all(row["p"] is None and "too few cases: 2" in row["why_untested"] for row in rows)
    assert "significant" not in [s for s in re.findall(r"\b(?:not )?significant\b", text) if s == "significant"][1:]
    assert "p (Holm)" in text and f"at least {MIN_CASES} cases" in text

    # figures: the CI panels and the radar as SVG images; per-frame curves as compact data the page draws per row
    svgs = [a["src"] for a in page.find("img") if a.get("src", "").startswith("data:image/svg+xml;base64,")]
    assert len(svgs) >= 2
    data = table_data(html)
    assert data["models"] == ["drift", "drift-long"] and data["series"]
    by_job = {r["job_id"]: r for r in records}
    for row in data["rows"]:
        for cell in row["x"]:
            if isinstance(cell, dict) and "c" in cell:  # a clip with per-frame curves: their frame counts and ranges
                series = json.loads((run_dir / by_job[cell["j"]]["series"]).read_text())
                for k, (lo, hi, frames, curve) in data["series"][cell["c"]].items():
                    vals = [v for v in series[data["scores"][int(k)]["name"]] if v is not None]
                    assert frames == len(series[data["scores"][int(k)]["name"]]) and len(curve) == min(frames, 64)
                    assert lo == pytest.approx(min(vals), rel=1e-5) and hi == pytest.approx(max(vals), rel=1e-5)
    assert any(isinstance(c, dict) and "c" in c for row in data["rows"] for c in row["x"])

    # the table: one row per (case, seed) in case order, one column per model; the first page is HTML too
    keys = [(data["strings"][row["c"]], row["seed"]) for row in data["rows"]]
    assert keys == [(c, s) for c in ("a", "b", "bad") for s in ("0", "1")]
    assert [a["id"] for a in page.find("tr", "caserow")] == [f"row-{c}__seed{s}" for c, s in keys]
    assert [a for a in page.find("th", "model")].__len__() == 2
    assert data["counts"]["failed"] == len([r for r in records if r["status"] != "ok"]) == 4
    failed_error = next(r["error"] for r in records if r["status"] != "ok")
    assert failed_error in text

    # videos: muted, looped; small clips embedded (they play in JupyterLab's sandboxed viewer and from a lone
    # extracted report.html); with --clips link, linked relative to the report and present in the run folder
    videos = page.find("video")
    assert len(videos) == len(ok)
    assert all(v["src"].startswith("data:video/mp4;base64,") for v in videos)
    for v in videos:
        assert "muted" in v and "loop" in v and "playsinline" in v
    linked = Page(write_report(run_dir, clips="link").read_text()).find("video")
    assert len(linked) == len(ok)
    for v in linked:
        assert not Path(v["src"]).is_absolute() and (run_dir / v["src"]).is_file()
    write_report(run_dir)


def test_report_folder_can_be_zipped_and_moved(run_dir, tmp_path):
    write_report(run_dir, clips="link")
    moved = tmp_path / "shared-copy"
    shutil.copytree(run_dir, moved)
    write_report(run_dir)
    page = Page((moved / "report.html").read_text())
    srcs = [a["src"] for a in page.find("video")]
    assert srcs and all((moved / s).is_file() for s in srcs)


def test_cli_report_and_its_error(run_dir, tmp_path):
    r = CliRunner().invoke(app, ["report", str(run_dir)])
    assert r.exit_code == 0 and r.output.strip().endswith("report.html")
    r = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert r.exit_code != 0
    line = r.output.strip().splitlines()[-1]
    assert "results.jsonl" in line and "workbench run" in line


def test_a_column_shows_one_precision():
    """The Motion table printed 0.011, 0.33, 0.2, 2.74 (significant digits per cell): a column now gets one
    number of decimal places, enough for two significant digits of its smallest value."""
    from workbench.report import column_places

    assert column_places([0.011, 0.33, 0.2, 2.74]) == 3
    assert [f"{v:.3f}" for v in (0.011, 0.2)] == ["0.011", "0.200"]
    assert column_places([2.74, 13.2]) == 2  # never fewer than two places
    assert column_places([0.0, float("nan")]) == 2  # nothing to size by
    assert column_places([1e-7]) == 4  # capped


def test_the_summary_figures_are_svg_drawn_from_the_numbers():
    """The CI panels and the radar are SVG written from the summary (milliseconds, no matplotlib): each
    model's dot sits at its mean on the panel's axis, the whisker spans its CI, best models are outlined,
    still ones hollow; n/a where a model has no value; the radar needs 3 directed scores and 2 models."""
    import base64

    from workbench.figures_svg import nice_ticks, radar, score_panels, tick_text

    def svg(uri: str) -> str:
        assert uri.startswith("data:image/svg+xml;base64,")
        return base64.b64decode(uri.split(",", 1)[1]).decode()

    colors = {"a": "#111111", "b": "#222222", "s": "#333333"}
    metrics = [{"name": "f", "label": "f", "scale": 1.0, "higher": True, "best": ["a"], "still": ["s"],
                "stats": {"a": {"mean": 0.996, "lo": 0.995, "hi": 0.997}, "b": {"mean": 0.994, "lo": 0.993, "hi": 0.995},
                          "s": {"mean": 1.0, "lo": 1.0, "hi": 1.0}}},
               {"name": "g", "label": "g (\u00d710\u207b\u00b3)", "scale": 1e3, "higher": False, "best": [], "still": [],
                "stats": {"a": {"mean": 0.002, "lo": None, "hi": None}, "b": None, "s": None}}]
    text = svg(score_panels(["a", "b", "s"], metrics, colors))
    assert text.count("<circle") == 4 and "n/a" in text  # b and s have no g
    assert 'stroke="#000"' in text and 'fill="#fff" stroke="#333333"' in text  # a outlined (best), s hollow (still)
    assert "a: mean 0.996" in text and "b: 95% CI 0.993 \u2013 0.995" in text and "a: mean 2" in text  # g in x10^-3
    # 0.994 and 0.996 land apart: the axis spans the values, not 0..1
    xs = {m: float(re.search(rf'<circle cx="([\d.]+)"[^>]*><title>{m}: mean 0.99', text).group(1)) for m in ("a", "b")}
    assert xs["a"] - xs["b"] > 20
    assert score_panels(["a"], [dict(metrics[1], stats={"a": None})], colors) is None
    assert nice_ticks(0.9, 1.0) == [0.9, 0.925, 0.95, 0.975, 1.0] and tick_text(0.925, 0.025) == "0.925"
    assert nice_ticks(-0.5, 13) == [0.0, 5.0, 10.0] and tick_text(10.0, 5.0) == "10"
    three = [dict(metrics[0], name=n) for n in ("x", "y", "z")]
    spider = svg(radar(["a", "b"], three, colors))
    assert spider.count("<polygon") == 2 + 2 and all(n in spider for n in ("x", "y", "z"))  # two rings, two models
    assert radar(["a", "b"], three[:2], colors) is None and radar(["a"], three, colors) is None
