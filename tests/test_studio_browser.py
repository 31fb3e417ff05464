"""The Studio in a real browser: JupyterLab + headless Chromium (Playwright), as a researcher uses it.

Starts JupyterLab on a free localhost port with a token (as root with --allow-root) over a temporary
server root holding the quickstart notebook and a runs/ folder, opens the notebook, runs every cell,
clicks Run in the Studio, and checks that the new clip appears and that its <video> really loads
(readyState > 0, served through Jupyter's /files/ route) with no 404 in the server log. The screenshot
is saved as a test artifact (WORKBENCH_ARTIFACTS, default runs/test-artifacts/studio_browser.png).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("WORKBENCH_ARTIFACTS", REPO / "runs" / "test-artifacts"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def lab(tmp_path):
    """A JupyterLab server over a temporary root; yields (url, root, log path)."""
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "01_quickstart.ipynb", root / "notebooks")
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "server.log"
    # a fresh user: start the notebook's kernel without asking, no news prompt
    settings = tmp_path / "settings" / "@jupyterlab"
    for ext, name, value in (("notebook-extension", "tracker", {"autoStartDefaultKernel": True}),
                             ("apputils-extension", "notification", {"fetchNews": "false"})):
        (settings / ext).mkdir(parents=True, exist_ok=True)
        (settings / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    env = {**os.environ, "WORKBENCH_RUNS": str(root / "runs"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    # as `make lab` starts it: the tracked notebook is saved without outputs (workbench.ui.nbstrip)
    cmd.append("--ContentsManager.pre_save_hook=workbench.ui.nbstrip.strip_outputs_hook")
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() - t0 > 90:
                    pytest.fail(f"JupyterLab did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"{base}/lab/tree/notebooks/01_quickstart.ipynb?token={token}", root, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _no_sideways_scroll(root_el, tab: str) -> None:
    """The Studio fits its output area: nothing in it scrolls sideways or is cut off on the right."""
    width = root_el.evaluate("e => ({scroll: e.scrollWidth, client: e.clientWidth})")
    assert width["scroll"] <= width["client"] + 1, f"{tab}: the Studio scrolls sideways ({width})"
    wide = root_el.evaluate(
        """e => { const r = e.getBoundingClientRect();
                  return [...e.querySelectorAll('*')].filter(x => x.offsetParent && x.scrollWidth > x.clientWidth + 1
                      && getComputedStyle(x).overflowX !== 'visible' && x.clientWidth > 0
                      && !x.closest('.lm-mod-hidden'))
                    .map(x => (x.className || x.tagName) + ' ' + x.scrollWidth + '>' + x.clientWidth).slice(0, 5); }""")
    assert not wide, f"{tab}: parts that scroll sideways or clip: {wide}"


def test_studio_runs_and_plays_in_jupyterlab(browser, lab):
    url, root, log = lab
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})  # a laptop screen
    page = ctx.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    shot = ARTIFACTS / "studio_browser.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        page.wait_for_function("() => document.querySelector('.jp-Dialog') || "
                               "[...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /Idle/.test(e.textContent))",
                               timeout=90_000)
        dialog = page.locator(".jp-Dialog button", has_text="Select")
        if dialog.count():  # older JupyterLab asks for the kernel once
            dialog.first.click()
        # Run > Run All Cells, as a user would
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        # the Studio renders, with its Run button
        run_btn = page.locator(".jp-OutputArea button.jupyter-button", has_text=re.compile(r"^\s*Run\s*$")).first
        run_btn.wait_for(timeout=120_000)
        # wait for the notebook's own run to end (its last cell prints the report path)
        page.locator(".jp-OutputArea-output", has_text="report:").wait_for(timeout=240_000)
        run_btn.scroll_into_view_if_needed()
        run_btn.click()
        # the Generate tab's row of this case (one row per case: models of any task on the same inputs meet there)
        row = page.locator(".wb-generate .wb-row", has=page.locator(".wb-row-title", has_text=re.compile(r"^case "))).first
        row.locator("video").first.wait_for(timeout=240_000)  # the clip shows as soon as it is made
        row.locator(".wb-caption", has_text="temporal_flicker").first.wait_for(timeout=240_000)  # then its scores
        video = row.locator("video").first
        page.wait_for_function("v => v.readyState > 0 && v.duration > 0", arg=video.element_handle(), timeout=60_000)
        src = video.get_attribute("src")
        assert src.startswith("/files/runs/studio/clips/") and src.endswith(tuple("0123456789")), src
        assert "job took" in row.inner_text()  # a job's time is labelled, never a bare "19.1 s"
        # every other clip on the page (the quickstart's Compare grid) loads too
        page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea video')]"
                               ".filter(v => v.offsetParent).every(v => v.readyState > 0)", timeout=60_000)
        # one play/pause per row: every clip of the row plays, then pauses
        grid_row = page.locator(".jp-OutputArea .wb-row", has_text="seed 0").filter(
            has=page.locator("video:nth-of-type(1)")).last
        vids = grid_row.locator("video")
        if vids.count() >= 2:
            grid_row.locator("button.wb-play").click()
            page.wait_for_function("r => [...r.querySelectorAll('video')].every(v => !v.paused && v.currentTime > 0)",
                                   arg=grid_row.element_handle(), timeout=30_000)
            grid_row.locator("button.wb-play").click()
            page.wait_for_function("r => [...r.querySelectorAll('video')].every(v => v.paused)",
                                   arg=grid_row.element_handle(), timeout=10_000)
        # a star marks a favourite: the browser's click reaches Python, which keeps it in the run folder
        grid_row.locator(".wb-star").first.click()
        favs = root / "runs" / "quickstart" / "favourites.json"
        t0 = time.monotonic()
        while not (favs.is_file() and len(json.loads(favs.read_text())) == 1):
            assert time.monotonic() - t0 < 30, "favourite not saved"
            time.sleep(0.2)
        # the Studio from its header down: the form, the progress and the new clip
        studio = page.locator(".jp-OutputArea-output", has_text="workbench studio").first
        root_el = studio.locator(".wb-studio").first
        studio.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "studio_generate.png"))
        _no_sideways_scroll(root_el, "Generate")
        row.evaluate("e => e.scrollIntoView({block: 'start'})")  # the clip cards with their scores
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "studio_generate_clips.png"))
        # the other tabs follow the finished run
        for tab, expect in (("Compare", ".wb-row video"), ("Evaluate", "select"), ("History", "select option"),
                             ("Judge", ".wb-judge")):
            studio.locator(".lm-TabBar-tab", has_text=tab).first.click()
            studio.locator(f".widget-tab-contents > :not(.lm-mod-hidden) {expect}").first.wait_for(
                state="attached", timeout=30_000)
            page.wait_for_timeout(700)
            studio.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(200)
            page.screenshot(path=str(ARTIFACTS / f"studio_{tab.lower()}.png"))
            _no_sideways_scroll(root_el, tab)
            if tab == "Compare":  # the clip grid under the model summary
                studio.locator(".widget-tab-contents > :not(.lm-mod-hidden) .wb-row").first.evaluate(
                    "e => e.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(300)
                page.screenshot(path=str(ARTIFACTS / "studio_compare_grid.png"))
        studio.locator(".lm-TabBar-tab", has_text="Generate").first.click()
        row.evaluate("e => e.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(300)
        # autosave / Ctrl+S keeps the tracked notebook free of outputs (the server's pre-save hook)
        page.keyboard.press("Control+s")
        nb_file = root / "notebooks" / "01_quickstart.ipynb"
        t0 = time.monotonic()
        saved = nb_file.stat().st_mtime
        while nb_file.stat().st_mtime == saved and time.monotonic() - t0 < 20:
            page.wait_for_timeout(250)
        nb = json.loads(nb_file.read_text())
        assert nb_file.stat().st_mtime != saved, "the notebook was not saved"
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb["cells"] if c["cell_type"] == "code"), "outputs were written into the tracked notebook"
        assert "widgets" not in nb["metadata"]
        # byte for byte as committed: the kernel's language_info (added on connecting) is not written either
        assert nb_file.read_text() == (REPO / "notebooks" / "01_quickstart.ipynb").read_text()
    finally:
        page.screenshot(path=str(shot))
        ctx.close()
    server_log = log.read_text(errors="replace")
    not_found = [line for line in server_log.splitlines() if re.search(r"\b404 (GET|HEAD)\b", line)]
    assert not not_found, not_found[:5]
    assert not [e for e in console_errors if "wb-" in e or "anywidget" in e.lower()], console_errors
    assert shot.is_file() and shot.stat().st_size > 10_000
