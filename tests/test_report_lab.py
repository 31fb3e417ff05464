"""The report's clips play where researchers open report.html: JupyterLab's HTML viewer (untrusted, then
trusted), Notebook 7, a /files/ browser tab, file:// and a lone copy of report.html; in step within a frame.

A real run (model-free baselines, 20 fps, clips of 1 s and 2 s, two seeds) in a temporary Jupyter root;
JupyterLab from tests/lab_server.py; headless Chromium from conftest's `browser`. Every video must reach
readyState 4 and play (currentTime advances). In the trusted viewer the row's clips are sampled together
in one JS task every 25 ms over 3 s of playback: the largest drift from the row's lead must stay within
one frame. The report inside JupyterLab is kept as runs/test-artifacts/report_in_lab.png (1280x800).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lab_server import has_notebook7, running_lab
from workbench.experiment import Runner
from workbench.report import ReportError, write_report
from workbench.report_media import ENV_BUDGET, assign_sources, embed_budget_mb, encoded_size
from workbench.suite import load_suite

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("WORKBENCH_ARTIFACTS", REPO / "runs" / "test-artifacts"))
FPS = 20
FRAME_S = 1.0 / FPS

# every <video>: [clip, readyState, error code, paused, currentTime]
VIDEOS = ("() => [...document.querySelectorAll('video')].map(v => [v.dataset.clip, v.readyState, "
          "v.error ? v.error.code : null, v.paused, v.currentTime])")
ALL_READY = "() => [...document.querySelectorAll('video')].every(v => v.readyState === 4)"
# [clip, currentTime, paused] of the videos matching a selector (synchronous: an untrusted viewer frame
# runs no timers, so the waiting happens in Python)
TIMES = "(sel) => [...document.querySelectorAll(sel)].map(v => [v.dataset.clip, v.currentTime, v.paused])"
# the row's largest drift from its lead (longest clip), sampled in one task every 25 ms for `ms`
DRIFT = """async (ms) => {
  const row = document.querySelector('tr.caserow');
  const out = [];
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    await new Promise(r => setTimeout(r, 25));
    const vs = [...row.querySelectorAll('.panel.active video')];
    if (vs.some(v => v.seeking || v.paused || v.readyState < 3)) { out.push(null); continue; }
    const lead = vs.reduce((a, v) => (v.duration > a.duration + 1e-3 ? v : a), vs[0]);
    let worst = 0;
    for (const v of vs) {
      const d = v.duration, x = v.currentTime - (lead.currentTime % d);
      worst = Math.max(worst, Math.abs(((x + d / 2) % d + d) % d - d / 2));
    }
    out.push(worst);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory) -> Path:
    """A Jupyter root holding run/ (report.html with embedded clips) and run-linked/ (clips linked)."""
    root = tmp_path_factory.mktemp("labroot")
    src = tmp_path_factory.mktemp("inputs")
    y, x = np.mgrid[0:96, 0:96]
    Image.fromarray(np.stack([x * 2, y * 2, (x * y) % 255], -1).astype(np.uint8)).save(src / "a.png")
    size = {"fps": FPS, "width": 96, "height": 96}
    spec = {"name": "lab-report", "output": str(root / "run"),
            "cases": [{"id": "gradient", "image": "a.png", "prompt": "a gradient"}],
            "models": [{"name": "static", "params": {**size, "seconds": 1.0}},  # half the others: loops twice
                       {"name": "kenburns", "params": {**size, "seconds": 2.0, "direction": "in"}},
                       {"name": "kenburns", "label": "kenburns-out", "params": {**size, "seconds": 2.0, "direction": "out"}}],
            "seeds": [0, 1], "metrics": ["temporal_flicker"]}
    (src / "suite.yaml").write_text(yaml.safe_dump(spec))
    runner = Runner(load_suite(src / "suite.yaml"))
    runner.run_all()
    write_report(root / "run")
    shutil.copytree(root / "run", root / "run-linked")
    write_report(root / "run-linked", clips="link")
    return root


def test_embed_budget_and_modes(lab_root, monkeypatch):
    """auto embeds within the budget (the table's first rows first), embed all, link none; bad budgets are one line."""
    from workbench.report import build_context
    from workbench.store import RunStore

    run = lab_root / "run"
    page = (run / "report.html").read_text()
    assert page.count('data-embedded="1"') == 6 and 'src="clips/' not in page and 'id="linked-clips"' not in page
    linked = (lab_root / "run-linked" / "report.html").read_text()
    assert linked.count('data-embedded="0"') == 6 and 'id="linked-clips"' in linked and "--clips embed" in linked

    records = list(RunStore(run).latest().values())
    ctx = build_context(records, run)
    panels = [cell["panels"][0] for row in ctx["grid"] for cell in row["cells"]]
    assert len(panels) == 6
    firsts = panels[:3]  # the table's first rows
    budget = sum(encoded_size((run / p["video"]).stat().st_size, p["video"]) for p in firsts) / 2 ** 20
    plan = assign_sources(ctx["grid"], run, "auto", budget)
    assert plan.embedded == 3 and plan.linked == 3 and plan.embedded_mb <= budget
    assert all(p["embedded"] and p["src"].startswith("data:video/mp4;base64,") for p in firsts)
    assert "3 of 6 clips are linked" in plan.banner and f"{ENV_BUDGET}=" in plan.banner
    assert assign_sources(ctx["grid"], run, "embed", 0).embedded == 6
    assert assign_sources(ctx["grid"], run, "link").linked == 6

    monkeypatch.setenv(ENV_BUDGET, "0.5")
    assert embed_budget_mb() == 0.5
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv(ENV_BUDGET, bad)
        with pytest.raises(ReportError, match=ENV_BUDGET):
            embed_budget_mb()
    with pytest.raises(ReportError, match="auto, embed, link"):
        write_report(run, clips="inline")


def _item(page, name: str):
    """The file browser's entry named exactly `name`."""
    return page.locator(".jp-DirListing-item").filter(
        has=page.locator(".jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$"))).first


def _trust(page) -> None:
    """Click the shown HTML viewer's "Trust HTML" toolbar button."""
    page.locator(".jp-ToolbarButtonComponent-label:visible", has_text="Trust HTML").first.click()


def _viewer_frame(page, previous=None, must: str = "tr.caserow"):
    """The shown HTML viewer's iframe (a new one after Trust HTML), once its report (holding `must`) has loaded."""
    page.wait_for_function("a => { const p = a[0], f = [...document.querySelectorAll('.jp-HTMLViewer iframe')]"
                           ".filter(f => f.offsetParent).pop();"
                           " return f && f.src.startsWith('blob:') && f.src !== p && f.contentDocument"
                           " && f.contentDocument.querySelector(a[1]); }", arg=[previous, must], timeout=30_000)
    handle = page.locator(".jp-HTMLViewer iframe:visible").last.element_handle()
    return handle.content_frame(), handle.get_attribute("src")


def _plays_everywhere(frame, where: str, selector: str = "video", click: bool = False) -> None:
    """Every video has readyState 4 and every one matching `selector` plays once scrolled into view (and,
    with `click`, clicked: a sandbox without scripts allows no autoplay, the clip's own controls play it)."""
    frame.wait_for_function(ALL_READY, timeout=20_000)
    states = frame.evaluate(VIDEOS)
    assert states and all(s[1] == 4 and s[2] is None for s in states), (where, states)
    frame.evaluate("() => document.getElementById('clips').scrollIntoView()")
    for handle in frame.query_selector_all(selector):
        handle.scroll_into_view_if_needed()  # Chromium pauses muted autoplay video out of view
        if click:
            handle.click()
    frame.page.wait_for_timeout(300)
    before = frame.evaluate(TIMES, selector)
    frame.page.wait_for_timeout(600)  # plays: currentTime moves (a looping clip may wrap, so any change counts)
    after = frame.evaluate(TIMES, selector)
    moving = [(a[0], a[1] != b[1] and not a[2]) for a, b in zip(after, before)]
    assert moving and all(ok for _, ok in moving), (where, before, after)


@pytest.mark.timeout(240)
def test_report_clips_play_in_jupyter(browser, lab_root, tmp_path):
    with running_lab(lab_root, tmp_path / "lab") as lab:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        try:
            # JupyterLab: the file browser, double-click run/, then report.html: the untrusted viewer runs no script
            page.goto(lab.url("/lab"), wait_until="domcontentloaded")
            _item(page, "run").dblclick(timeout=60_000)
            _item(page, "report.html").dblclick()
            frame, blob = _viewer_frame(page)
            assert frame.locator("#noscript").is_visible()  # the note says why the row controls do nothing
            assert frame.evaluate("() => [...document.querySelectorAll('video')].every(v => v.controls)")
            _plays_everywhere(frame, "lab, untrusted", click=True)  # all seeds shown, each with its controls

            # trusted: scripts run, the row controls take over, clips play in step
            _trust(page)
            frame, blob = _viewer_frame(page, blob)
            assert not frame.locator("#noscript").is_visible()
            _plays_everywhere(frame, "lab, trusted", ".panel.active video")
            frame.wait_for_timeout(1000)  # the row settles
            drifts = frame.evaluate(DRIFT, 3000)
            measured = [d for d in drifts if d is not None]
            assert len(measured) > 0.8 * len(drifts), f"too many samples mid-seek: {drifts}"
            print(f"in-step drift over {len(measured)} samples: max {max(measured) * 1000:.1f} ms, "
                  f"mean {np.mean(measured) * 1000:.1f} ms, one frame {FRAME_S * 1000:.0f} ms")
            assert max(measured) <= FRAME_S, f"row drift {max(measured):.3f} s > one frame ({FRAME_S:.3f} s)"
            # the seed filter redraws the table with seed 1's rows, whose clips play in step
            frame.select_option("#table-bar select[data-f='seed']", "1")
            frame.wait_for_timeout(1200)
            drifts = [d for d in frame.evaluate(DRIFT, 1000) if d is not None]
            assert frame.evaluate("() => [...document.querySelectorAll('#clip-rows .panel.active video')]"
                                  ".every(v => v.closest('tr').id.endsWith('__seed1') && !v.paused)")
            assert drifts and max(drifts) <= FRAME_S, drifts
            frame.evaluate("() => { document.querySelectorAll('.box').forEach(b => { b.scrollLeft = 0; });"
                           " document.getElementById('clips').scrollIntoView(); }")
            frame.wait_for_timeout(400)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report_in_lab.png"))

            # linked clips (--clips link) play in the trusted viewer: report.js puts the viewer's _xsrf back
            page.goto(lab.url("/lab/tree/run-linked/report.html"), wait_until="domcontentloaded")
            frame, blob = _viewer_frame(page, must="#linked-clips")
            _trust(page)
            frame, blob = _viewer_frame(page, blob, must="#linked-clips")
            assert frame.locator("#linked-clips").is_visible()
            _plays_everywhere(frame, "lab, trusted, linked", ".panel.active video")

            # a browser tab on /files/ (Lab's "Open in New Browser Tab", like the Studio's report link)
            page.goto(lab.url("/lab/tree/run"), wait_until="domcontentloaded")
            _item(page, "report.html").click(button="right", timeout=60_000)
            with ctx.expect_page() as opened:
                page.get_by_text("Open in New Browser Tab").first.click()
            tab = opened.value
            tab.wait_for_url(re.compile(r"/files/run/report\.html"), timeout=20_000)  # Lab opens a blank tab, then goes
            _plays_everywhere(tab.main_frame, "/files/ tab", ".panel.active video")
            tab.close()

            # Notebook 7: /tree, click report.html: it opens in a new tab in the same HTML viewer
            if has_notebook7():
                page.goto(lab.url("/tree/run"), wait_until="domcontentloaded")
                with ctx.expect_page() as opened:
                    _item(page, "report.html").dblclick(timeout=60_000)
                nb = opened.value
                frame, _ = _viewer_frame(nb)
                _plays_everywhere(frame, "notebook 7, untrusted", click=True)
                nb.close()
        finally:
            ctx.close()
        log = lab.log_text()
    # the embedded report asks the server for no clip (run-linked's clips are refused until trusted, as expected)
    asked = [line for line in log.splitlines() if "/files/run/clips/" in line]
    assert not asked, asked[:5]
    if not has_notebook7():
        pytest.skip("Notebook 7 is not installed (pip install 'notebook>=7'): its check did not run")


def test_report_plays_from_disk_and_alone(browser, lab_root, tmp_path):
    """file:// beside clips/, and report.html copied alone (the zipped-then-extracted case)."""
    alone = tmp_path / "extracted" / "report.html"
    alone.parent.mkdir()
    shutil.copy(lab_root / "run" / "report.html", alone)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        for path in (lab_root / "run" / "report.html", alone):
            page.goto(path.as_uri())
            _plays_everywhere(page.main_frame, str(path), ".panel.active video")
    finally:
        page.close()
