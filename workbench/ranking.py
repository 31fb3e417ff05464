"""Rankings that mean something: per score, motion-aware, paired, with tests that can be significant.

Three rules a serious video benchmark follows (VBench reports dynamic degree beside its consistency
dimensions for the first one):

1. **Motion-aware.** Consistency scores (flicker, warp error, smoothness, subject/background
   consistency, identity to the input image) are trivially perfect on a clip that does not move. For
   those scores (`ScoreSpec.rewards_stillness`), clips whose mean optical flow (`flow_magnitude`) is
   below a motion floor are left out of the ranking, and a model whose clips are all still is listed
   as "not ranked: still" with its flow, never as the winner.
2. **One score at a time.** No headline mean rank across scores with different meanings; a single
   ranking across scores needs an objective the user defines (the suite's `objective:`).
3. **Tests with enough units.** The paired test is a sign-flip permutation test over *cases* (the
   mean difference per case, seeds averaged within it: cases are the independent units, seeds of one
   case are not). With n cases the smallest two-sided p a sign-flip test can give is 2/2^n, so below
   `MIN_CASES` (6: 2/64 = 0.031 < 0.05) no difference can be significant and none is called so.
   p-values are Holm-adjusted over every comparison in the table.

Ties are decided on the numbers as shown (3 significant digits): equal shown values share a rank, are
all best, and when every model ties nobody is best.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from workbench.memo import memoised
from workbench.metrics.base import ANALYSIS_MAX_SIDE
from workbench.metrics.stats import compare, model_summaries, score_value

MOTION_SCORE = "flow_magnitude"
MOTION_FLOOR = 0.1  # px per frame at a 256 px short side (analysis size, scaled with it): below it a clip is "still"
MIN_CASES = 6  # smallest number of cases for which a sign-flip test can reach p < 0.05 (2/2^6 = 0.031)
ALPHA = 0.05
EXACT_MAX = 16  # up to 2^16 sign patterns enumerated exactly; Monte Carlo beyond
N_FLIPS = 20000
FLIP_BLOCK = 2000  # sign patterns per block of the Monte Carlo test


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None; the family is the non-None values).
    Reject at level a where the adjusted p < a: controls the family-wise error rate at a."""
    idx = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def sign_flip_p(unit_diffs: list[float], seed: int = 0) -> float | None:
    """Two-sided sign-flip permutation p-value that the mean of `unit_diffs` is 0 (one difference per
    independent unit). Exact up to EXACT_MAX units, Monte Carlo beyond. None without units."""
    d = np.asarray([x for x in unit_diffs if x is not None], dtype=float)
    n = len(d)
    if n == 0:
        return None
    return memoised("sign_flip_p", (d, seed, N_FLIPS, EXACT_MAX, "bits"), lambda: _sign_flip_p(d, seed))


def _sign_flip_p(d: np.ndarray, seed: int) -> float:
    n = len(d)
    obs = abs(d.mean())
    if obs == 0:
        return 1.0
    if n <= EXACT_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        means = np.abs(signs @ d) / n
        return float(np.mean(means >= obs * (1 - 1e-12)))
    # Monte Carlo: N_FLIPS random sign patterns, drawn as bits in blocks (a 20,000 x 1,250 float matrix at
    # once is 200 MB and ~10x slower); sum(s * d) = 2 * sum over the + signs - sum(d)
    rng, total, hits = np.random.default_rng(seed), float(d.sum()), 0
    for start in range(0, N_FLIPS, FLIP_BLOCK):
        plus = rng.integers(0, 2, size=(min(FLIP_BLOCK, N_FLIPS - start), n), dtype=np.int8)
        means = np.abs(2.0 * (plus.astype(np.float64) @ d) - total) / n
        hits += int(np.count_nonzero(means >= obs * (1 - 1e-12)))
    return hits / N_FLIPS


def paired_units(records: list[dict[str, Any]], a: str, b: str, metric: str) -> dict[Any, float]:
    """Per case: mean over its seeds of (a - b) on matched (case, seed) jobs."""
    va: dict[tuple, float] = {}
    vb: dict[tuple, float] = {}
    for r in records:
        v = score_value(r, metric)
        if v is None or r.get("status") != "ok" or str(r.get("model")) not in (a, b):
            continue
        (va if str(r.get("model")) == a else vb)[(str(r.get("case")), r.get("seed"), r.get("output") or 0)] = v
    per_case: dict[Any, list[float]] = {}
    for k in va.keys() & vb.keys():
        per_case.setdefault(k[0], []).append(va[k] - vb[k])
    return {c: float(np.mean(v)) for c, v in sorted(per_case.items())}


def floor_for(record: dict[str, Any], floor: float = MOTION_FLOOR) -> float:
    """The motion floor in px/frame for this clip's size: `floor` is for a 256 px short side at analysis
    size (frames shrunk to <= ANALYSIS_MAX_SIDE), scaled with the side as VBench scales its dynamic
    threshold, so a 96 px clip and a 720p clip panning the same share of the frame are judged alike."""
    clip = record.get("clip") or {}
    w, h = clip.get("width"), clip.get("height")
    if not (isinstance(w, (int, float)) and isinstance(h, (int, float))) or w <= 0 or h <= 0:
        return floor
    shrink = min(1.0, ANALYSIS_MAX_SIDE / max(w, h))
    return floor * min(w, h) * shrink / 256.0


def is_still(record: dict[str, Any], floor: float = MOTION_FLOOR) -> bool | None:
    """Whether a clip's mean flow is below the motion floor for its size; None without a flow measure."""
    flow = score_value(record, MOTION_SCORE)
    return None if flow is None else flow < floor_for(record, floor)


@dataclass
class RankRow:
    model: str
    rank: str  # "1", "2=" (ties share a rank)
    mean: float
    lo: float | None
    hi: float | None
    is_best: bool
    n: int = 0
    diff: float | None = None
    diff_lo: float | None = None
    diff_hi: float | None = None
    pairs: int = 0
    cases: int = 0
    wins: float | None = None
    p: float | None = None
    p_holm: float | None = None
    significant: bool = False
    why_untested: str = ""  # why there is no p-value (too few cases, no pairs)
    still: int = 0  # clips of this model left out as still


@dataclass
class RankBlock:
    score: str
    higher: bool
    rows: list[RankRow]
    gated: bool  # consistency score judged only on clips that move
    excluded: dict[str, str] = field(default_factory=dict)  # model -> why it is not ranked
    all_tied: bool = False


def rank_score(records: list[dict[str, Any]], name: str, higher: bool, shown: Callable[[float], str],
               gated: bool, floor: float = MOTION_FLOOR, still: dict[int, bool | None] | None = None) -> RankBlock | None:
    """The ranking of every model on one score; None when fewer than 2 models have a value.
    `still`: is_still of each record by id(), when the caller has it (rank_all computes it once)."""
    if still is None:
        still = {id(r): is_still(r, floor) for r in records} if gated else {}
    ok = [r for r in records if r.get("status") == "ok" and score_value(r, name) is not None]
    excluded: dict[str, str] = {}
    still_count: dict[str, int] = {}
    if gated:
        moving = []
        flows: dict[str, list[float]] = {}
        for r in ok:
            m = str(r.get("model"))
            flows.setdefault(m, []).append(score_value(r, MOTION_SCORE) or 0.0)
            if still[id(r)]:
                still_count[m] = still_count.get(m, 0) + 1
            else:
                moving.append(r)
        for m, fl in flows.items():
            if still_count.get(m, 0) == len(fl):
                excluded[m] = (f"not ranked: all {len(fl)} clips are still (mean flow {shown_flow(float(np.mean(fl)))} "
                               f"px/frame, below the motion floor), and a still clip is trivially consistent")
        ok = moving
    stats = model_summaries(ok, [name])
    have = [(s[name]["mean"], m) for m, s in stats.items() if s.get(name, {}).get("mean") is not None]
    if len(have) < 2:
        if not excluded:
            return None
        return RankBlock(name, higher, [], gated, excluded)
    have.sort(key=lambda t: -t[0] if higher else t[0])
    texts = {m: shown(v) for v, m in have}
    top = texts[have[0][1]]
    all_tied = all(texts[m] == top for _, m in have)
    best = have[0][1]
    rows = []
    for v, m in have:
        # rank by the shown value: models that look equal are equal
        better = sum(1 for w, o in have if texts[o] != texts[m] and (w > v if higher else w < v))
        tied = sum(texts[o] == texts[m] for _, o in have) > 1
        s = stats[m][name]
        row = RankRow(m, f"{1 + better}{'=' if tied else ''}", v, s.get("lo"), s.get("hi"),
                      is_best=not all_tied and texts[m] == top, n=s.get("n") or 0, still=still_count.get(m, 0))
        if m != best:
            c = compare(ok, m, best, name, higher_is_better=higher)
            row.diff, row.diff_lo, row.diff_hi, row.pairs, row.wins = c.mean_diff, c.lo, c.hi, c.n_pairs, c.a_wins
            units = paired_units(ok, m, best, name)
            row.cases = len(units)
            if not c.n_pairs:
                row.why_untested = "no matched (case, seed) jobs with both values"
            elif len(units) < MIN_CASES:
                row.why_untested = f"too few cases: {len(units)} (a test needs \u2265{MIN_CASES})"
            else:
                row.p = sign_flip_p(list(units.values()))
        rows.append(row)
    return RankBlock(name, higher, rows, gated, excluded, all_tied)


def shown_flow(v: float) -> str:
    return f"{v:.2g}" if v < 1 else f"{v:.3g}"


def rank_all(records: list[dict[str, Any]], specs: dict[str, tuple[bool, bool, Callable[[float], str]]],
             floor: float = MOTION_FLOOR) -> list[RankBlock]:
    """Blocks for every score in `specs` ({name: (higher_is_better, rewards_stillness, shown)}), with
    Holm-adjusted p-values over all comparisons in the table. Gating applies only when the records
    carry the motion measure."""
    has_motion = any(score_value(r, MOTION_SCORE) is not None for r in records)
    still = {id(r): is_still(r, floor) for r in records} if has_motion else {}
    blocks = []
    for name, (higher, stillness, shown) in specs.items():
        b = rank_score(records, name, higher, shown, gated=stillness and has_motion, floor=floor, still=still)
        if b is not None:
            blocks.append(b)
    flat = [row for b in blocks for row in b.rows if row.p is not None]
    for row, adj in zip(flat, holm([row.p for row in flat])):
        row.p_holm = adj
        row.significant = adj is not None and adj < ALPHA
    return blocks
