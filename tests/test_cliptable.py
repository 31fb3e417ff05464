"""The clip table's query (workbench.cliptable) against hand-computed answers: rows, status, filters,
sorts in each score's better direction, the paired difference B - A, paging bounds."""
from __future__ import annotations

import pytest

from workbench.cliptable import (FAILED, OK, STILL, ClipTable, Query, clip_status, page_bounds, paired_difference,
                                 rows_of)

DIRS = {"temporal_flicker": True, "warp_error": False, "flow_magnitude": None}


def rec(case, model, seed=0, status="ok", prompt="", output=None, **scores):
    r = {"job_id": f"{case}-{model}-{seed}-{output or 0}", "case": case, "model": model, "seed": seed,
         "status": status, "prompt": prompt, "video": f"clips/{case}-{model}-{seed}.mp4"}
    if output is not None:
        r["output"] = output
    if status == "ok":
        r["scores"] = {"flow_magnitude": 1.0, **scores}
    else:
        r["error"] = "boom"
    return r


@pytest.fixture
def table():
    records = [
        #  case  model seed       flicker (higher better)  warp (lower better)
        rec("c1", "A", 0, prompt="a cat on a mat", temporal_flicker=0.90, warp_error=3.0),
        rec("c1", "B", 0, prompt="a cat on a mat", temporal_flicker=0.95, warp_error=1.0),
        rec("c2", "A", 0, prompt="a dog in the rain", temporal_flicker=0.80, warp_error=2.0),
        rec("c2", "B", 0, status="failed", prompt="a dog in the rain"),
        rec("c3", "A", 0, prompt="A Cat Asleep", temporal_flicker=0.99, warp_error=0.5, flow_magnitude=0.01),  # still
        rec("c3", "B", 0, prompt="A Cat Asleep", temporal_flicker=0.70, warp_error=5.0),
        rec("c1", "A", 1, prompt="a cat on a mat", temporal_flicker=0.60, warp_error=4.0),
        rec("c1", "B", 1, prompt="a cat on a mat", temporal_flicker=0.96, warp_error=4.5),
    ]
    return ClipTable(records, DIRS)


def keys(sel):
    return [s.row.key[:2] for s in sel.rows]


def test_rows_are_case_seed_with_one_cell_per_model(table):
    assert keys(table.select()) == [("c1", 0), ("c2", 0), ("c3", 0), ("c1", 1)]  # first seen order
    assert table.models == ["A", "B"] and table.seeds == [0, 1] and table.n_clips == 8
    assert table.counts == {OK: 6, STILL: 1, FAILED: 1}
    row = table.rows[0]
    assert list(row.cells) == ["A", "B"] and row.prompt == "a cat on a mat"
    # outputs of one seed are rows of their own; a record arriving later for a slot replaces it
    t = ClipTable([rec("c", "A", output=1, temporal_flicker=0.5), rec("c", "A", temporal_flicker=0.4),
                   rec("c", "B", temporal_flicker=0.1), rec("c", "B", temporal_flicker=0.2)], DIRS)
    assert [r.key for r in t.rows] == [("c", 0, 1), ("c", 0, 0)]
    assert t.rows[1].cells["B"].value("temporal_flicker") == 0.2 and t.n_clips == 3


def test_status_failed_still_ok_uses_the_motion_floor():
    assert clip_status(rec("c", "A", status="failed")) == FAILED
    assert clip_status(rec("c", "A", flow_magnitude=0.05)) == STILL  # below 0.1 px/frame
    assert clip_status(rec("c", "A", flow_magnitude=0.5)) == OK
    no_flow = rec("c", "A")
    del no_flow["scores"]["flow_magnitude"]
    assert clip_status(no_flow) == OK  # no motion measure: never still
    # the floor scales with the clip's size as the ranking's rule does: 0.05 px/frame is motion at 96 px
    small = {**rec("c", "A", flow_magnitude=0.05), "clip": {"width": 96, "height": 96}}
    assert clip_status(small) == OK


def test_failed_and_still_clips_in_one_filter(table):
    # a row with a failed (still) clip, shown beside the other models' clips of its row
    failed = table.where(statuses=(FAILED,))
    assert keys(failed) == [("c2", 0)] and [(c.model, c.status) for c in failed.rows[0].cells] == [("A", OK), ("B", FAILED)]
    assert failed.status_counts() == {OK: 1, STILL: 0, FAILED: 1}
    still = table.where(statuses=(STILL,))
    assert keys(still) == [("c3", 0)] and [c.status for c in still.rows[0].cells] == [STILL, OK]
    assert keys(table.where(statuses=(STILL, FAILED))) == [("c2", 0), ("c3", 0)]
    assert len(table.where(statuses=(OK,))) == 4  # every row has a clip that finished and moves
    # the status is read among the shown models' clips: A has no failed clip
    assert len(table.where(statuses=(FAILED,), models=("A",))) == 0
    with pytest.raises(ValueError, match="status 'broken'"):
        Query(statuses=("broken",))


def test_row_filters_case_prompt_seed_and_cell_filters_model_jobs(table):
    assert keys(table.where(case="C1")) == [("c1", 0), ("c1", 1)]  # text in the case id, any case
    assert keys(table.where(prompt="cat")) == [("c1", 0), ("c3", 0), ("c1", 1)]  # "A Cat Asleep" too
    assert keys(table.where(seeds=(1,))) == [("c1", 1)]
    only_a = table.where(models=("A",))
    assert all([c.model for c in s.cells] == ["A"] for s in only_a.rows) and len(only_a) == 4
    # a row with no cell left is dropped: B failed on c2, so "B, ok only" has no c2 row
    assert keys(table.where(models=("B",), statuses=(OK,))) == [("c1", 0), ("c3", 0), ("c1", 1)]
    favs = table.where(job_ids=frozenset({"c3-B-0-0"}))
    assert keys(favs) == [("c3", 0)] and favs.records()[0]["job_id"] == "c3-B-0-0"
    assert len(table.where(case="nope")) == 0 and table.where(case="nope").page(0).label == "no rows"


def test_sort_follows_each_scores_better_direction(table):
    # higher is better: best first is largest first; the row's value is its best cell
    sel = table.where(sort="temporal_flicker")
    assert [s.value for s in sel.rows] == [0.99, 0.96, 0.95, 0.80]
    assert keys(table.where(sort="temporal_flicker", worst_first=True)) == [("c2", 0), ("c1", 0), ("c1", 1), ("c3", 0)]
    # lower is better: best first is smallest first
    sel = table.where(sort="warp_error")
    assert [s.value for s in sel.rows] == [0.5, 1.0, 2.0, 4.0]
    # one model's value: "the worst clips of model B"; B failed on c2, so that row has no value and goes last
    sel = table.where(sort="warp_error", sort_model="B", worst_first=True)
    assert [s.value for s in sel.rows] == [5.0, 4.5, 1.0, None] and keys(sel)[-1] == ("c2", 0)
    sel = table.where(sort="warp_error", sort_model="B")
    assert [s.value for s in sel.rows] == [1.0, 4.5, 5.0, None]  # rows without a value last either way
    # a score without a better direction sorts largest first
    t = ClipTable([rec("x", "A", flow_magnitude=2.0), rec("y", "A", flow_magnitude=3.0)], DIRS)
    assert [s.row.case for s in t.where(sort="flow_magnitude").rows] == ["y", "x"]
    # ties keep the table's order, both ways
    t = ClipTable([rec(c, "A", temporal_flicker=0.5) for c in "pqr"], DIRS)
    assert [s.row.case for s in t.where(sort="temporal_flicker").rows] == ["p", "q", "r"]
    assert [s.row.case for s in t.where(sort="temporal_flicker", worst_first=True).rows] == ["p", "q", "r"]


def test_paired_difference_is_b_minus_a_and_best_first_is_where_b_beats_a_most(table):
    cells = table.rows[0].cells.values()
    assert paired_difference(cells, "A", "B", "temporal_flicker") == pytest.approx(0.05)  # 0.95 - 0.90
    assert paired_difference(cells, "B", "A", "temporal_flicker") == pytest.approx(-0.05)
    assert paired_difference(table.rows[1].cells.values(), "A", "B", "temporal_flicker") is None  # B failed
    # higher is better: B beats A most where B - A is largest
    sel = table.where(sort="temporal_flicker", pair=("A", "B"))
    assert keys(sel) == [("c1", 1), ("c1", 0), ("c3", 0), ("c2", 0)]
    assert [round(s.value, 2) if s.value is not None else None for s in sel.rows] == [0.36, 0.05, -0.29, None]
    # lower is better: B beats A most where B - A is most negative
    sel = table.where(sort="warp_error", pair=("A", "B"))
    assert [s.value for s in sel.rows] == [-2.0, 0.5, 4.5, None]
    assert [s.value for s in table.where(sort="warp_error", pair=("A", "B"), worst_first=True).rows] == [4.5, 0.5, -2.0, None]
    # the difference reads the row's clips whether or not their model is shown (as the report's page does)
    sel = table.where(sort="warp_error", pair=("A", "B"), models=("A",))
    assert [s.value for s in sel.rows] == [-2.0, 0.5, 4.5, None] and all(len(s.cells) == 1 for s in sel.rows)
    assert [s.value for s in table.where(sort="warp_error", sort_model="B", models=("A",)).rows] == [1.0, 4.5, 5.0, None]
    with pytest.raises(ValueError, match="needs a score"):
        Query(pair=("A", "B"))


def test_pages_are_clamped_and_labelled():
    t = ClipTable([rec(f"c{i:02d}", "A", temporal_flicker=i / 100) for i in range(25)], DIRS)
    sel = t.select()
    p = sel.page(1, 10)
    assert (p.start, p.stop, p.total, p.pages) == (10, 20, 25, 3) and p.label == "rows 11-20 of 25"
    assert [s.row.case for s in p.rows][0] == "c10" and p.has_prev and p.has_next
    last = sel.page(99, 10)
    assert (last.index, last.start, last.stop) == (2, 20, 25) and not last.has_next and last.label == "rows 21-25 of 25"
    first = sel.page(-3, 10)
    assert first.index == 0 and not first.has_prev
    assert page_bounds(0, 5, 10) == (0, 0, 0) and page_bounds(3400, 1, 10) == (1, 10, 20)
    big = ClipTable([rec(f"c{i}", "A") for i in range(3400)], DIRS).select().page(1, 10)
    assert big.label == "rows 11-20 of 3,400"
    # the records of the filter are every shown clip, not one page
    assert len(sel.records()) == 25


def test_rows_of_and_the_registry_directions():
    recs = [rec("c", "A", warp_error=2.0), rec("c", "B", warp_error=1.0), rec("d", "A", warp_error=0.5)]
    sel = rows_of(recs, sort="warp_error", sort_model="A")  # the registry says lower warp error is better
    assert [s.value for s in sel.rows] == [0.5, 2.0]
    assert sel.rows[0].cell("B") is None and sel.rows[1].cell("B").value("warp_error") == 1.0
