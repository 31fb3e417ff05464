"""The clip table: one query over records, shared by the Studio's Compare tab and the report's clip table.

A comparison's records become **rows**, one per (case, seed, output), with **one cell per model** (the
clip that model made for that case and seed). The table is built once per loaded record set, in one
pass over the records (O(N)); a **query** then filters, sorts and pages it without touching the
records again, so a page change costs only the rows on that page.

Each cell has a **status**:

- ``failed``: the job did not finish (its record's status is not ``ok``);
- ``still``: it finished, but its clip's mean optical flow is below the motion floor for its size
  (`workbench.ranking.is_still`, the rule the ranking uses to leave still clips out of consistency
  scores); a clip without a flow measure is never still;
- ``ok``: it finished and moves (or was not measured for motion).

What a `Query` means (the report's page applies the same rules to the same data):

- **Columns** (which clips of a row are shown): ``models`` (these models only) and ``job_ids`` (these
  jobs only, e.g. the favourites).
- **Row filters**: ``case`` (text in the case id), ``prompt`` (text in the prompt of any of the row's
  clips), both case-insensitive; ``seeds`` (these seeds only); ``statuses``: at least one shown clip of
  the row has one of these statuses (``("failed",)`` finds every failed clip, ``("still",)`` every
  still one, each beside the other models' clips of its row).
- A row is kept when it passes the row filters and has at least one shown clip.
- **Sort** (``sort`` names a score; None keeps the table's order: first seen in the records):
  the value of one model in each row (``sort_model``; "the 20 worst clips of model X"), or the best
  value among the row's shown clips (``sort_model`` None; best by the score's direction), or the
  **paired difference** ``B - A`` of two models in each row (``pair=(A, B)``; both need a value).
  Rows are ordered by that value in the score's better direction: best first, or worst first with
  ``worst_first``; for a paired difference "best first" puts the rows where B beats A most first
  (largest B - A for a higher-is-better score, smallest for a lower-is-better one). A score without a
  better direction sorts largest first. Rows without a value go last either way; ties keep the
  table's order. A failed clip has no value; a still clip keeps its values. One model's value and the
  paired difference read the row's clips whether or not their model is shown (as the report's page
  does).

A `Selection` (the query's rows) is paged with `Selection.page` (bounds are clamped; `Page.label` reads
"rows 11-20 of 3,400"), and `Selection.records()` gives every shown clip's record (the report of the
current filter is written from them, not from one page).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from workbench.metrics.stats import score_value
from workbench.ranking import MOTION_FLOOR, is_still

Record = dict[str, Any]

OK, STILL, FAILED = "ok", "still", "failed"
STATUSES: tuple[str, ...] = (OK, STILL, FAILED)


def clip_status(record: Mapping[str, Any], floor: float = MOTION_FLOOR) -> str:
    """``failed`` (the job did not finish), ``still`` (below the motion floor for its size) or ``ok``."""
    if record.get("status") != "ok":
        return FAILED
    return STILL if is_still(record, floor) else OK  # type: ignore[arg-type]


def row_key(record: Mapping[str, Any]) -> tuple[str, int, int]:
    """The row a record belongs to: (case, seed, output); a missing seed or output counts as 0."""
    seed, output = record.get("seed"), record.get("output")
    return (str(record.get("case")), seed if isinstance(seed, int) else 0, output if isinstance(output, int) else 0)


@dataclass(frozen=True)
class Cell:
    """One clip of a row: the model that made it, its record and its status."""

    model: str
    record: Record
    status: str

    def value(self, score: str) -> float | None:
        """The clip's value of `score`; None when it failed or has no finite value."""
        return None if self.status == FAILED else score_value(self.record, score)


@dataclass
class Row:
    """A (case, seed, output) with its clips, one per model, in the table's model order."""

    case: str
    seed: int
    output: int
    cells: dict[str, Cell]
    prompt: str = ""  # the first non-empty prompt among its clips
    order: int = 0  # place in the table (first seen in the records)
    _text: str = ""  # every distinct prompt of the row, lower-cased (the prompt filter searches it)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.case, self.seed, self.output)


@dataclass(frozen=True)
class Query:
    """Filter and sort of a clip table (see the module doc for the exact rules)."""

    case: str = ""
    prompt: str = ""
    models: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    statuses: tuple[str, ...] | None = None
    job_ids: frozenset[str] | None = None
    sort: str | None = None
    sort_model: str | None = None
    pair: tuple[str, str] | None = None
    worst_first: bool = False

    def __post_init__(self) -> None:
        bad = [s for s in self.statuses or () if s not in STATUSES]
        if bad:
            raise ValueError(f"status {bad[0]!r}: must be one of {', '.join(STATUSES)}")
        if self.pair is not None and self.sort is None:
            raise ValueError("a paired difference needs a score to sort by (sort=...)")


@dataclass(frozen=True)
class Shown:
    """A row as a query shows it: the cells that pass the cell filters, and the row's sort value."""

    row: Row
    cells: tuple[Cell, ...]
    value: float | None = None

    @property
    def records(self) -> list[Record]:
        return [c.record for c in self.cells]

    def cell(self, model: str) -> Cell | None:
        return next((c for c in self.cells if c.model == model), None)


@dataclass(frozen=True)
class Page:
    """One page of a selection: its rows and where it lies (0-based `index`, `start` <= i < `stop`)."""

    rows: list[Shown]
    index: int
    size: int
    start: int
    stop: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def has_prev(self) -> bool:
        return self.index > 0

    @property
    def has_next(self) -> bool:
        return self.stop < self.total

    @property
    def label(self) -> str:
        """"rows 11-20 of 3,400" (1-based, inclusive); "no rows" when there are none."""
        if not self.total:
            return "no rows"
        return f"rows {self.start + 1:,}-{self.stop:,} of {self.total:,}"


@dataclass
class Selection:
    """The rows of a query, filtered and sorted, ready to page."""

    rows: list[Shown]
    query: Query

    def __len__(self) -> int:
        return len(self.rows)

    def page(self, index: int, size: int = 10) -> Page:
        """Page `index` (0-based) of `size` rows; an index past either end gives the first or last page."""
        index, start, stop = page_bounds(len(self.rows), index, size)
        return Page(self.rows[start:stop], index, max(1, int(size)), start, stop, len(self.rows))

    def records(self) -> list[Record]:
        """Every shown clip's record, row by row (what the report of the current filter covers)."""
        return [c.record for s in self.rows for c in s.cells]

    def status_counts(self) -> dict[str, int]:
        """How many shown clips are ok, still and failed."""
        out = dict.fromkeys(STATUSES, 0)
        for s in self.rows:
            for c in s.cells:
                out[c.status] += 1
        return out


def page_bounds(total: int, index: int, size: int) -> tuple[int, int, int]:
    """(index, start, stop) of page `index` of `size` items out of `total`, the index clamped to the
    pages there are (page 0 when there are none): items start <= i < stop."""
    size = max(1, int(size))
    pages = max(1, math.ceil(total / size))
    index = min(max(0, int(index)), pages - 1)
    start = index * size
    return index, start, min(total, start + size)


def default_directions() -> dict[str, bool | None]:
    """Score name -> True (higher is better), False (lower is better), None (neither): the registry's."""
    try:
        from workbench.metrics import score_specs

        return {n: s.higher_is_better for n, s in score_specs().items()}
    except Exception:  # a metric module failing to import must not break the table
        return {}


def paired_difference(cells: Iterable[Cell], a: str, b: str, score: str) -> float | None:
    """`B - A` on `score` among these cells (a row's): None unless both models have a value."""
    va = vb = None
    for c in cells:
        if c.model == a:
            va = c.value(score)
        elif c.model == b:
            vb = c.value(score)
    return None if va is None or vb is None else vb - va


def best_value(cells: Iterable[Cell], score: str, higher: bool | None) -> float | None:
    """The best value of `score` among these cells by its direction (largest when it has none)."""
    vals = [v for c in cells if (v := c.value(score)) is not None]
    if not vals:
        return None
    return min(vals) if higher is False else max(vals)


class ClipTable:
    """Records as rows of (case, seed, output) with one cell per model, built once in O(N).

    `directions`: score -> higher is better (True/False/None); the metric registry's by default.
    `floor`: the motion floor (`workbench.ranking.MOTION_FLOOR`, px/frame at a 256 px short side).
    Of two records for one (case, model, seed, output) the later stands (`workbench.runset` already
    keeps one per slot)."""

    def __init__(self, records: Iterable[Mapping[str, Any]], directions: Mapping[str, bool | None] | None = None,
                 floor: float = MOTION_FLOOR) -> None:
        self.directions: dict[str, bool | None] = dict(default_directions() if directions is None else directions)
        self.floor = floor
        rows: dict[tuple[str, int, int], Row] = {}
        models: dict[str, None] = {}
        seeds: set[int] = set()
        scores: dict[str, None] = {}
        self.counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        n = 0
        for r in records:
            rec = r if isinstance(r, dict) else dict(r)
            key = row_key(rec)
            row = rows.get(key)
            if row is None:
                row = rows[key] = Row(key[0], key[1], key[2], {}, order=len(rows))
            model = str(rec.get("model"))
            models.setdefault(model, None)
            seeds.add(key[1])
            status = clip_status(rec, floor)
            old = row.cells.get(model)
            if old is not None:
                self.counts[old.status] -= 1
            else:
                n += 1
            row.cells[model] = Cell(model, rec, status)
            self.counts[status] += 1
            prompt = rec.get("prompt")
            if isinstance(prompt, str) and prompt:
                if not row.prompt:
                    row.prompt = prompt
                low = prompt.lower()
                if low not in row._text:
                    row._text = f"{row._text}\n{low}" if row._text else low
            for k, v in (rec.get("scores") or {}).items():
                if v is not None:
                    scores.setdefault(k, None)
        self.models: list[str] = list(models)
        order = {m: i for i, m in enumerate(self.models)}
        for row in rows.values():  # cells in the table's model order, once
            if len(row.cells) > 1:
                row.cells = dict(sorted(row.cells.items(), key=lambda kv: order[kv[0]]))
        self.rows: list[Row] = list(rows.values())
        self.seeds: list[int] = sorted(seeds)
        self.scores: list[str] = list(scores)
        self.n_clips = n

    def __len__(self) -> int:
        return len(self.rows)

    def direction(self, score: str) -> bool | None:
        return self.directions.get(score)

    def select(self, query: Query | None = None) -> Selection:
        """The rows `query` keeps, with their shown cells, in its order (see the module doc)."""
        q = query or Query()
        models = set(q.models) if q.models is not None else None
        statuses = set(q.statuses) if q.statuses is not None else None
        seeds = set(q.seeds) if q.seeds is not None else None
        case_text, prompt_text = q.case.strip().lower(), q.prompt.strip().lower()
        jobs = q.job_ids
        cell_filter = models is not None or jobs is not None
        higher = self.direction(q.sort) if q.sort else None
        out: list[Shown] = []
        for row in self.rows:
            if seeds is not None and row.seed not in seeds:
                continue
            if case_text and case_text not in row.case.lower():
                continue
            if prompt_text and prompt_text not in row._text:
                continue
            if cell_filter:
                cells = tuple(c for c in row.cells.values()
                              if (models is None or c.model in models)
                              and (jobs is None or str(c.record.get("job_id")) in jobs))
                if not cells:
                    continue
            else:
                cells = tuple(row.cells.values())
            if statuses is not None and not any(c.status in statuses for c in cells):
                continue
            value = None
            if q.sort:
                if q.pair is not None:
                    value = paired_difference(row.cells.values(), q.pair[0], q.pair[1], q.sort)
                elif q.sort_model is not None:
                    cell = row.cells.get(q.sort_model)
                    value = cell.value(q.sort) if cell is not None else None
                else:
                    value = best_value(cells, q.sort, higher)
            out.append(Shown(row, cells, value))
        if q.sort:
            # the score's better direction first (largest first when it has none); worst_first flips it
            descending = (higher is not False) != q.worst_first
            have = [s for s in out if s.value is not None]
            have.sort(key=lambda s: s.value, reverse=descending)  # stable either way: ties keep the table's order
            out = have + [s for s in out if s.value is None]
        return Selection(out, q)

    def where(self, **kw: Any) -> Selection:
        """`select(Query(**kw))`: e.g. ``table.where(statuses=("failed",))`` lists every failed clip."""
        return self.select(Query(**kw))


def rows_of(records: Sequence[Mapping[str, Any]], **query: Any) -> Selection:
    """One call for a one-off question: the table of `records`, selected by `Query(**query)`."""
    return ClipTable(records).select(Query(**query))


__all__ = ["OK", "STILL", "FAILED", "STATUSES", "Cell", "Row", "Query", "Shown", "Page", "Selection", "ClipTable",
           "clip_status", "row_key", "page_bounds", "paired_difference", "best_value", "default_directions", "rows_of"]
