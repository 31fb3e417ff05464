"""Blind judging in a real browser: ten votes with the keyboard in the Studio's Judge tab in JupyterLab
(kept after a reload), and three in a report's judging panel, downloaded and imported with the CLI."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judging_fixture import judging_run  # noqa: E402
from lab_server import running_lab  # noqa: E402

from workbench.cli import app  # noqa: E402
from workbench.judging import read_votes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("WORKBENCH_ARTIFACTS", REPO / "runs" / "test-artifacts"))


def test_report_judging_panel_votes_download_and_import(browser, tmp_path):
    from workbench.report import write_report

    run = judging_run(tmp_path)
    report = write_report(run)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    try:
        page.goto(report.as_uri())
        panel = page.locator("#judge-panel")
        panel.wait_for()
        page.fill("#judge-rater", "carla")
        page.click("#judge-start")
        for i in range(3):
            page.locator("#judge-board video").first.wait_for()
            panel.focus()
            page.keyboard.press("2" if i == 1 else "1")
            page.wait_for_function(f"() => /{i + 1} votes? kept/.test(document.getElementById('judge-status').textContent)")
        page.reload()
        page.wait_for_function("() => /3 votes kept/.test(document.getElementById('judge-status').textContent)")
        with page.expect_download() as dl:
            page.click("#judge-download")
        path = tmp_path / "votes.jsonl"
        dl.value.save_as(path)
    finally:
        ctx.close()
    res = CliRunner().invoke(app, ["judgments", "import", str(path), "--run", str(run)])
    assert res.exit_code == 0 and "3 votes added" in res.output, res.output
    votes = read_votes(run)
    assert len(votes) == 3 and {v["rater"] for v in votes} == {"carla"} and {v["source"] for v in votes} == {"report"}
    html = write_report(run).read_text()
    assert "Which metric agrees with your eyes" in html and "3 current votes" in html


NOTEBOOK = {"cells": [{"cell_type": "code", "execution_count": None, "id": "judge", "metadata": {}, "outputs": [],
                       "source": ["from workbench.ui.judge import JudgeTab\n",
                                  "JudgeTab('.', run='judged', rater='dana')"]}],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}


def _run_all(page) -> None:
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function("() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /Idle/.test(e.textContent))",
                           timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()


def test_judge_tab_ten_votes_by_keyboard_survive_a_reload(browser, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    run = judging_run(root)
    (root / "judge.ipynb").write_text(json.dumps(NOTEBOOK))
    settings = {("notebook-extension", "tracker"): {"autoStartDefaultKernel": True}}
    with running_lab(root, tmp_path / "lab", settings=settings, env={"PYTHONPATH": str(REPO)}) as lab:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        try:
            page.goto(lab.url("/lab/tree/judge.ipynb"), wait_until="domcontentloaded")
            _run_all(page)
            board = page.locator(".wb-judge").first
            board.locator("video").first.wait_for(timeout=120_000)
            head = board.locator(".wb-judge-head")
            for i in range(10):
                board.locator(".wb-judge-q").click()  # focus the board, not a notebook cell
                page.keyboard.press("t" if i == 4 else ("2" if i % 3 else "1"))
                head.filter(has_text=re.compile(rf"^{i + 1} judgments?")).wait_for(timeout=30_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            board.screenshot(path=str(ARTIFACTS / "judge_tab.png"))
            assert len(read_votes(run)) == 10
            cell_type = page.evaluate("() => document.querySelector('.jp-Cell').classList.contains('jp-CodeCell')")
            assert cell_type  # the digits judged: none reached the notebook (no cell became a heading)
            page.reload(wait_until="domcontentloaded")
            _run_all(page)
            page.locator(".wb-judge .wb-judge-head").filter(has_text=re.compile(r"^10 judgments")).wait_for(timeout=120_000)
        finally:
            ctx.close()
    votes = read_votes(run)
    assert len(votes) == 10 and sum(v["choice"] == "tie" for v in votes) == 1
    assert {v["rater"] for v in votes} == {"dana"}
