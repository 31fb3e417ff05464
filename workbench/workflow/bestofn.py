"""Best-of-N: rank the samples of one request by an objective, keep the top k, and measure what
more samples buy.

An *objective* is a weighted sum of scores, each with a direction:

    objective = sum_i  w_i * d_i(score_i),   d = +x (higher is better), -x (lower), -|x| (closer to zero)

Directions come from the metric registry (`identity_similarity` higher, `warp_error` lower); a score
without one (`sync_offset`) needs `direction: zero|higher|lower`. In a suite:

    objective: {identity_similarity: 1.0, sync_confidence: 0.5, warp_error: 2.0}
    objective: {sync_offset: {weight: 0.1, direction: zero}, identity_similarity: 1}

Scores live on different scales, so the weights carry the units: the objective is a plain weighted
sum (no hidden normalisation), which keeps it the same number in every run.

A *request* is everything but the seed: the same case, model (label) and parameters. `rank()` orders
the samples of each request; `gain_curve()` gives, for N = 1, 2, ..., the expected objective of the
best of N samples minus that of a single sample, averaged over requests, with a two-level bootstrap
CI (cases, then requests within a case: `workbench.metrics.stats.cluster_bootstrap_means`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from workbench.metrics.stats import CI_LEVEL, N_BOOT, cluster_bootstrap_means, group_by_case, percentile_interval
from workbench.store import write_json_atomic

DIRECTIONS = ("higher", "lower", "zero")
RANKINGS_FILE = "bestofn.json"


class ObjectiveError(ValueError):
    """The objective is not well defined; one line naming the score and the fix."""


@dataclass(frozen=True)
class Term:
    metric: str
    weight: float
    direction: str  # higher | lower | zero

    def value(self, x: float) -> float:
        if self.direction == "higher":
            return self.weight * x
        if self.direction == "lower":
            return -self.weight * x
        return -self.weight * abs(x)


@dataclass(frozen=True)
class Objective:
    terms: tuple[Term, ...]

    @classmethod
    def parse(cls, spec: "Objective | Mapping[str, Any]") -> "Objective":
        """`{metric: weight}` or `{metric: {weight: w, direction: d}}` -> Objective."""
        if isinstance(spec, Objective):
            return spec
        if not isinstance(spec, Mapping) or not spec:
            raise ObjectiveError("an objective is a mapping of score names to weights, e.g. "
                                 "{identity_similarity: 1.0, warp_error: 2.0}")
        from workbench.metrics.registry import score_specs

        specs = score_specs()
        terms = []
        for metric, value in spec.items():
            direction = None
            if isinstance(value, Mapping):
                unknown = set(value) - {"weight", "direction"}
                if unknown:
                    raise ObjectiveError(f"objective '{metric}': unknown key(s) {', '.join(sorted(unknown))}; "
                                         "use weight and direction")
                weight, direction = value.get("weight", 1.0), value.get("direction")
            else:
                weight = value
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
                raise ObjectiveError(f"objective '{metric}': weight must be a positive number, got {weight!r} "
                                     "(say which way is better with direction: lower, not a negative weight)")
            if direction is None:
                if metric not in specs:
                    raise ObjectiveError(f"objective: unknown score '{metric}'; give its direction "
                                         "({weight: 1, direction: higher}) or use a score from `workbench metrics`")
                hib = specs[metric].higher_is_better
                if hib is None:
                    raise ObjectiveError(f"objective '{metric}' has no better direction; write "
                                         f"{metric}: {{weight: {weight}, direction: zero}} (or higher / lower)")
                direction = "higher" if hib else "lower"
            if direction not in DIRECTIONS:
                raise ObjectiveError(f"objective '{metric}': direction must be one of {', '.join(DIRECTIONS)}, "
                                     f"got {direction!r}")
            terms.append(Term(str(metric), float(weight), direction))
        return cls(tuple(terms))

    @property
    def metrics(self) -> list[str]:
        return [t.metric for t in self.terms]

    def __call__(self, record: Mapping[str, Any]) -> float | None:
        """The objective of one record; None when it failed or lacks one of the scores."""
        if record.get("status", "ok") != "ok":
            return None
        scores = record.get("scores") or {}
        total = 0.0
        for t in self.terms:
            v = scores.get(t.metric)
            if v is None or not math.isfinite(float(v)):
                return None
            total += t.value(float(v))
        return total

    def describe(self) -> str:
        parts = []
        for t in self.terms:
            sign = "-" if t.direction != "higher" else "+"
            x = f"|{t.metric}|" if t.direction == "zero" else t.metric
            parts.append(f"{sign} {t.weight:g}*{x}")
        text = " ".join(parts)
        return text[2:] if text.startswith("+ ") else text

    def to_dict(self) -> dict[str, Any]:
        return {t.metric: {"weight": t.weight, "direction": t.direction} for t in self.terms}


# --------------------------------------------------------------------------------------------------
# ranking
# --------------------------------------------------------------------------------------------------
def request_key(record: Mapping[str, Any], by_seed: bool = False) -> str:
    """What names a request: case, model (label) and parameters, plus the seed when the samples are
    the outputs of one seed (`by_seed`)."""
    key = {"case": record.get("case"), "model": record.get("model"), "params": record.get("params") or {}}
    if by_seed:
        key["seed"] = record.get("seed")
    return json.dumps(key, sort_keys=True, default=str)


def samples_are_outputs(records: Iterable[Mapping[str, Any]]) -> bool:
    """True when the records hold several outputs per seed (a suite's `best_of` / `num_outputs`): then
    the outputs of one (case, model, seed) are the samples; otherwise the seeds are."""
    return any(int(r.get("output") or 0) > 0 for r in records)


@dataclass
class Ranking:
    """The samples of one request, best first."""

    case: str
    model: str
    params: dict[str, Any]
    seed: int | None = None  # set when the samples are the outputs of one seed
    ranked: list[dict[str, Any]] = field(default_factory=list)  # {job_id, seed, output, objective, rank, video}
    kept: list[str] = field(default_factory=list)  # job ids of the top k
    unscored: list[dict[str, Any]] = field(default_factory=list)  # failed or missing a score

    @property
    def best(self) -> dict[str, Any] | None:
        return self.ranked[0] if self.ranked else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank(records: Iterable[Mapping[str, Any]], objective: Objective | Mapping[str, Any],
         keep: int = 1, by_seed: bool | None = None) -> list[Ranking]:
    """Group records by request, order each group by the objective (best first, ties by seed and
    output), keep the top `keep`. Requests keep first-seen order. `by_seed` None: decided by
    `samples_are_outputs`."""
    objective = Objective.parse(objective)
    if keep < 1:
        raise ObjectiveError(f"keep must be at least 1, got {keep}")
    records = list(records)
    if by_seed is None:
        by_seed = samples_are_outputs(records)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault(request_key(r, by_seed), []).append(r)
    out = []
    for members in groups.values():
        head = members[0]
        rk = Ranking(str(head.get("case")), str(head.get("model")), dict(head.get("params") or {}),
                     head.get("seed") if by_seed else None)
        scored = []
        for r in members:
            value = objective(r)
            row = {"job_id": r.get("job_id"), "seed": r.get("seed"), "output": int(r.get("output") or 0),
                   "objective": value, "video": r.get("video")}
            if value is None:
                why = r.get("error") or "missing score(s): " + ", ".join(
                    m for m in objective.metrics if (r.get("scores") or {}).get(m) is None)
                rk.unscored.append({**row, "why": why})
            else:
                scored.append(row)
        scored.sort(key=lambda row: (-row["objective"], row["seed"] if row["seed"] is not None else 0, row["output"]))
        for i, row in enumerate(scored):
            row["rank"] = i + 1
        rk.ranked = scored
        rk.kept = [row["job_id"] for row in scored[:keep]]
        out.append(rk)
    return out


def best_records(records: Iterable[Mapping[str, Any]], objective: Objective | Mapping[str, Any],
                 keep: int = 1) -> list[Mapping[str, Any]]:
    """The kept records themselves (top `keep` of every request), in ranking order."""
    records = list(records)
    by_id = {r.get("job_id"): r for r in records}
    return [by_id[j] for rk in rank(records, objective, keep) for j in rk.kept]


# --------------------------------------------------------------------------------------------------
# what more samples buy
# --------------------------------------------------------------------------------------------------
def expected_best_of(values: Iterable[float], n: int) -> float:
    """Exact expectation of the maximum of `n` samples drawn without replacement from `values`.

    With the m values sorted ascending, v_(i) is the maximum of a random n-subset with probability
    C(i-1, n-1) / C(m, n). n = 1 gives the mean; n = m the maximum.
    """
    v = np.sort(np.asarray(list(values), dtype=np.float64))
    m = len(v)
    if not 1 <= n <= m:
        raise ValueError(f"n must be in [1, {m}], got {n}")
    total = math.comb(m, n)
    weights = np.array([math.comb(i, n - 1) for i in range(m)], dtype=np.float64) / total
    return float(np.dot(weights, v))


@dataclass
class GainPoint:
    """Best-of-N minus a single sample, averaged over requests that have at least N samples."""

    n: int
    mean_gain: float | None
    lo: float | None
    hi: float | None
    mean_best: float | None  # E[objective of the best of N]
    mean_single: float | None  # E[objective of one sample]
    requests: int  # requests with >= N scored samples
    cases: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gain_curve(records: Iterable[Mapping[str, Any]], objective: Objective | Mapping[str, Any],
               ns: Iterable[int] | None = None, n_boot: int = N_BOOT, level: float = CI_LEVEL,
               seed: int = 0) -> list[GainPoint]:
    """For each N (default 1 .. the most samples any request has): the mean over requests of
    E[best of N] - E[one sample], with a percentile bootstrap CI that resamples cases, then requests
    within a case. N = 1 is 0 by definition. Requests with fewer than N scored samples sit out that N."""
    return _gain_curve_from(rank(records, objective, keep=1), ns, n_boot, level, seed)


def _gain_curve_from(rankings: Iterable[Ranking], ns: Iterable[int] | None = None, n_boot: int = N_BOOT,
                     level: float = CI_LEVEL, seed: int = 0) -> list[GainPoint]:
    """`gain_curve` of requests already ranked (only each ranking's scored samples count, not `keep`)."""
    per_request: list[tuple[str, np.ndarray]] = []
    for rk in rankings:
        vals = np.array([row["objective"] for row in rk.ranked], dtype=np.float64)
        if len(vals):
            per_request.append((rk.case, vals))
    if not per_request:
        return []
    largest = max(len(v) for _, v in per_request)
    ns = sorted(set(int(n) for n in ns)) if ns is not None else list(range(1, largest + 1))
    out = []
    for n in ns:
        if n < 1:
            raise ValueError(f"N must be >= 1, got {n}")
        rows = [(case, expected_best_of(v, n), float(v.mean())) for case, v in per_request if len(v) >= n]
        if not rows:
            out.append(GainPoint(n, None, None, None, None, None, 0, 0))
            continue
        groups = group_by_case((case, best - single) for case, best, single in rows)
        flat = np.concatenate(groups)
        lo = hi = None
        if len(flat) >= 2 and np.ptp(flat) > 0:
            lo, hi = percentile_interval(cluster_bootstrap_means(groups, n_boot, seed), level)
        elif len(flat) >= 2:  # every request gains exactly the same: no uncertainty to show
            lo = hi = float(flat[0])
        out.append(GainPoint(n, float(np.mean(flat)), lo, hi, float(np.mean([b for _, b, _ in rows])),
                             float(np.mean([s for _, _, s in rows])), len(rows), len(groups)))
    return out


# --------------------------------------------------------------------------------------------------
# the run folder's record of the ranking
# --------------------------------------------------------------------------------------------------
def write_rankings(run_dir: str | Path, records: Iterable[Mapping[str, Any]],
                   objective: Objective | Mapping[str, Any], keep: int = 1, n: int | None = None) -> Path:
    """Rank the run's records and write `RUN_DIR/bestofn.json` atomically: the objective, every
    request's ranking and kept job ids, and the gain curve. Returns the file."""
    objective = Objective.parse(objective)
    records = [r for r in records]
    rankings = rank(records, objective, keep)
    payload = {
        "objective": objective.to_dict(), "formula": objective.describe(), "keep": keep, "n": n,
        "rankings": [r.to_dict() for r in rankings],
        "gain_curve": [p.to_dict() for p in _gain_curve_from(rankings)],
    }
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(run_dir / RANKINGS_FILE, payload, indent=1, default=str)


def load_rankings(run_dir: str | Path) -> dict[str, Any] | None:
    """`RUN_DIR/bestofn.json` as written by `write_rankings`, or None when the run has none."""
    path = Path(run_dir) / RANKINGS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ObjectiveError(f"{path}: corrupt ({e.msg}); re-run the suite to rewrite it") from None
