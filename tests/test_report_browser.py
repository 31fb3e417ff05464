"""report.html in headless Chromium: no console errors, every video loads, the page fits a laptop screen
(tables scroll inside their boxes, the case column stays put), the row controls work; a screenshot is
kept as a test artifact (runs/artifacts/report.png)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from workbench.experiment import Runner
from workbench.media import Audio
from workbench.report import write_report
from workbench.suite import load_suite

ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A real run with enough models and scores to overflow a laptop screen sideways."""
    d = tmp_path_factory.mktemp("browser")
    y, x = np.mgrid[0:48, 0:48]
    Image.fromarray(np.stack([x * 5, y * 5, 0 * x + 90], -1).astype(np.uint8)).save(d / "a.png")
    Image.fromarray(np.stack([y * 5, x * 5, (x * y) % 255], -1).astype(np.uint8)).save(d / "b.png")
    t = np.arange(16000) / 16000
    Audio((0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000).save_wav(d / "tone.wav")
    models = [{"name": "test-drift", "label": f"drift-{n}", "params": {"num_frames": n}} for n in (6, 8, 10, 12, 14, 16)]
    spec = {"name": "browser-test", "output": "run",
            "cases": [{"id": "a", "image": "a.png", "prompt": "a drifting gradient"},
                      {"id": "b", "image": "b.png", "audio": "tone.wav"}],
            "models": models, "seeds": [0, 1],
            "metrics": ["temporal_flicker", "warp_error", "motion_smoothness", "flow_magnitude", "dynamic_degree",
                        "identity_similarity"]}
    (d / "suite.yaml").write_text(yaml.safe_dump(spec))
    runner = Runner(load_suite(d / "suite.yaml"))
    runner.run_all()
    return write_report(runner.store.root)


def test_report_in_headless_chromium(browser, report, tmp_path):
    page = browser.new_page(viewport={"width": 1366, "height": 768})  # a common laptop screen
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(report.as_uri())
    page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => v.readyState > 0 || v.error)",
                           timeout=20000)
    states = page.eval_on_selector_all("video", "vs => vs.map(v => [v.getAttribute('src'), v.readyState, "
                                                "v.error ? v.error.code : null, v.muted, v.loop, v.duration])")
    assert len(states) == 24
    for src, ready, error, muted, loop, duration in states:
        assert error is None and ready > 0 and duration > 0, (src, ready, error)
        assert muted and loop

    # fits the screen: the page itself does not scroll sideways; the wide tables scroll in their boxes
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    box = page.locator("#clip-grid").locator("xpath=..")
    assert box.evaluate("b => b.scrollWidth <= b.clientWidth")  # six models fit 1366 px (columns shrink to 170 px)
    size = page.viewport_size
    page.set_viewport_size({"width": 900, "height": size["height"]})  # a narrow window (Lab with its sidebar open)
    page.wait_for_timeout(100)
    assert page.evaluate("document.documentElement.scrollWidth") <= 900
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")  # six models are wider than 900 px: the box scrolls
    assert box.evaluate("b => b.scrollHeight <= b.clientHeight + 1")  # no inner vertical scroll: the page scrolls
    sticky_before = page.locator("tr.caserow td.case").first.bounding_box()["x"]
    box.evaluate("b => { b.scrollLeft = b.scrollWidth; }")
    page.wait_for_timeout(100)
    assert page.locator("tr.caserow td.case").first.bounding_box()["x"] == pytest.approx(sticky_before, abs=1)
    box.evaluate("b => { b.scrollLeft = 0; }")
    page.set_viewport_size(size)

    # rows are (case, seed): the seed filter leaves seed 1; the unmute button unmutes one clip only
    assert page.locator("#row-a__seed0 button.sound").count() == 0  # silent clips offer no unmute
    page.select_option("#table-bar select[data-f='seed']", "1")
    assert page.locator("#clip-rows tr.caserow").count() == 2
    row = page.locator("#row-b__seed1")  # the case with speech
    row.scroll_into_view_if_needed()
    active = row.locator(".panel.active")
    assert active.count() == 6 and all(t.startswith("seed 1") for t in active.all_inner_texts())
    page.wait_for_function("Array.from(document.querySelectorAll('#row-b__seed1 video')).every(v => v.readyState > 0)")
    active.first.locator("button.sound").click()
    muted = page.eval_on_selector_all("video", "vs => vs.filter(v => !v.muted).length")
    assert muted == 1 and not active.first.locator("video").evaluate("v => v.muted")
    # playback in step across the row: after a restart the row's clips play within a frame or two of each other
    # (sampled before the shortest clip loops: clips of other lengths then show other moments by design)
    row.locator("button.restart").click()
    page.wait_for_timeout(400)
    times = active.locator("video").evaluate_all("vs => vs.map(v => v.currentTime)")
    assert max(times) > 0 and max(times) - min(times) < 0.25, times
    # a row's per-frame curves, drawn in the page: one SVG per score with a series, a line per model
    row.locator("button.curves").click()
    curves = page.locator("tr.curverow svg.curve")
    assert curves.count() >= 3 and curves.first.locator("path").count() == 6
    page.select_option("#table-bar select[data-f='seed']", "")

    page.locator("tr.caserow").first.scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")
    page.locator("#clips").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "report-clips.png"))
    assert shot.stat().st_size > 20000
    page.close()
    assert not problems, problems
