"""The Studio at benchmark scale: Compare and History over a run folder of 10,000 records open and page
building the widgets of one page only (counted here, not timed: the timings are in the README)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from workbench.cliptable import FAILED, STILL
from workbench.store import load_records

REPO = Path(__file__).resolve().parents[1]
N = 10_000


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from scale_fixture import build_run
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    root = tmp_path_factory.mktemp("scale")
    run = build_run(root / "runs" / "big", N)
    return root / "runs", run


@pytest.fixture
def counted(monkeypatch):
    """How many clip items (each one a player loading its clip) the Compare tab builds."""
    import workbench.ui.compare as compare

    calls: list[str] = []
    real = compare.clip_item

    def clip_item(path, title, **kw):
        calls.append(title)
        return real(path, title, **kw)

    monkeypatch.setattr(compare, "clip_item", clip_item)
    return calls


def _clips(tab) -> int:
    return sum(len(r["clips"]) for r in tab.grid.rows)


def test_compare_opens_10000_records_one_page_of_clips_at_a_time(big, counted):
    from workbench.ui.compare import PAGE_SIZE, CompareTab

    runs, run = big
    tab = CompareTab(runs)
    tab.load(run)
    models = len(tab.table.models)
    assert len(tab.records) == N and len(tab.selection) == N // models
    # one page of rows became clips, nothing more
    assert len(tab.grid.rows) == PAGE_SIZE and len(counted) == _clips(tab) <= PAGE_SIZE * models
    assert tab.page.label == f"rows 1-{PAGE_SIZE} of {N // models:,}" and tab.prev_btn.disabled
    first = [r["label"] for r in tab.grid.rows]
    before = len(counted)
    tab.next_btn.click()
    assert tab.page.label == f"rows {PAGE_SIZE + 1}-{2 * PAGE_SIZE} of {N // models:,}"
    assert [r["label"] for r in tab.grid.rows] != first and len(counted) - before == _clips(tab)
    tab.go(10**6)  # past the end: the last page
    assert tab.next_btn.disabled and tab.page.stop == len(tab.selection)
    tab.prev_btn.click()
    assert not tab.next_btn.disabled
    # the summary covers every filtered job (computed once, in the background at this size), not the page
    assert tab.wait_summary(300)
    assert "bootstrap 95% CI" in tab.summary.value and f"n={N // models // 2}" not in tab.summary.value
    assert all(m in tab.summary.value for m in tab.table.models)
    # paging again reuses it: no new summary work
    worker = tab._summary_worker
    tab.next_btn.click()
    assert tab._summary_worker is worker


def test_compare_filters_and_sorts_at_scale_and_reports_the_filter(big, counted):
    from workbench.ui.compare import PAIRED, CompareTab

    runs, run = big
    tab = CompareTab(runs)
    tab.load(run)
    # failed clips in one click: every clip shown is a failed job's error, on every page
    tab.status.value = FAILED
    n_failed = tab.table.counts[FAILED]
    assert n_failed and tab.selection.status_counts()[FAILED] == n_failed
    assert all(any(c["status"] == "error" and c["error"] for c in r["clips"]) for r in tab.grid.rows)
    assert f"{n_failed:,} failed" in tab.message.text
    tab.status.value = STILL
    assert tab.grid.rows and all(any("still" in c["badge"] for c in r["clips"]) for r in tab.grid.rows)
    tab.status.value = ""
    # the 10 worst clips of one model on a score with a direction
    model = tab.table.models[1]
    tab.sort_score.value = "temporal_flicker"
    tab.sort_of.value = model
    tab.sort_dir.value = True
    vals = [s.value for s in tab.page.rows]
    assert vals == sorted(vals) and all(f"({model})" in r["label"] for r in tab.grid.rows)
    # where B beats A most: the paired difference, largest first for a higher-is-better score
    tab.sort_of.value = PAIRED
    tab.pair_a.value, tab.pair_b.value = tab.table.models[1], tab.table.models[2]
    tab.sort_dir.value = False
    diffs = [s.value for s in tab.selection.rows if s.value is not None]
    assert diffs == sorted(diffs, reverse=True) and len(diffs) > 100
    assert "\u2212" in tab.grid.rows[0]["label"] and tab.grid.rows[0]["label"].split()[-1].startswith("+")
    # text filters; Write report covers every filtered row, not the page on screen
    tab.sort_score.value = ""
    tab.page_size.value = 5
    before = len(counted)
    tab.case_text.value = tab.table.rows[0].case[:-1]  # case-0000: ten cases, two seeds each
    assert len(counted) - before == _clips(tab) <= 5 * len(tab.table.models)  # a filter builds one page
    rows = len(tab.selection)
    assert rows > 5 and len(tab.grid.rows) == 5 and tab.page.label == f"rows 1-5 of {rows}"
    want = {c.record["job_id"] for s in tab.selection.rows for c in s.cells}
    tab.report_btn.click()
    assert tab._report_worker.join(300)
    assert "report written" in tab.message.value, tab.message.value
    assert {r["job_id"] for r in load_records(tab.report_path.parent)} == want
    assert tab.wait_summary(300)


def test_history_lists_10000_jobs_a_page_at_a_time(big):
    from workbench.ui.history import PAGE_SIZE, HistoryTab

    runs, run = big
    loaded: list = []
    hist = HistoryTab(runs, on_load=lambda r, d: loaded.append(r))
    hist.load(run)
    assert len(hist.records) == N and len(hist.jobs.options) == PAGE_SIZE
    assert hist.page_label.value == f"jobs 1-{PAGE_SIZE} of {N:,}" and hist.prev_btn.disabled
    times = [str(hist.records[i].get("finished_at")) for _, i in hist.jobs.options]
    assert times == sorted(times, reverse=True)  # newest first
    hist.next_btn.click()
    assert hist.page_label.value == f"jobs {PAGE_SIZE + 1}-{2 * PAGE_SIZE} of {N:,}"
    assert hist.record is hist.records[hist.jobs.options[0][1]] and "job" in hist.details.value
    hist.filter.value = "\u2717"  # the failed jobs
    failed = sum(r.get("status") != "ok" for r in hist.records)
    assert f"of {failed:,} (filtered from {N:,})" in hist.page_label.value
    assert all(hist.records[i]["status"] != "ok" for _, i in hist.jobs.options)
    hist.filter.value = "no such job anywhere"
    assert hist.jobs.options == () and hist.page_label.value == "no job matches the filter" and hist.load_btn.disabled
    hist.filter.value = ""
    hist.go(3)
    hist.load_settings()
    assert loaded and loaded[0] is hist.records[3 * PAGE_SIZE]


def test_compare_pages_two_joined_folders(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from scale_fixture import build_run
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from workbench.ui.compare import CompareTab

    a = build_run(tmp_path / "runs" / "a", 800, models=2)
    b = build_run(tmp_path / "runs" / "b", 1600, models=4, seed=1)
    tab = CompareTab(tmp_path / "runs")
    tab.load(a)
    tab.join.value = (str(b.resolve()),)
    assert "from 2 run folders joined on case and seed" in tab.message.text
    assert len(tab.records) == 1600 and len(tab.grid.rows) == 10 and tab.page.label.endswith(f"of {len(tab.selection)}")
    tab.next_btn.click()
    assert tab.page.label.startswith("rows 11-20")
    favs = {c["key"] for c in tab.grid.rows[0]["clips"]}
    tab.grid.favourites = sorted(favs)
    saved = json.loads((b / "favourites.json").read_text())
    assert set(saved) == favs  # the later folder's records stand: favourites go to their own folder
