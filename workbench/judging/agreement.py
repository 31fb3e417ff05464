"""Agreement: of automatic scores with the judges, and of the judges with each other.

**A score against the judges** (VBench's "agreement with human preference", per score):

- *pairwise agreement*: every decisive preference of a judge between two clips (from a ``best`` vote:
  the best clip over each other shown clip; from a ``rank`` vote: every ordered pair; ties and "all
  bad" give none) is checked against the score: it agrees when the preferred clip has the better value
  by the score's direction. Pairs where the score ties, or either clip has no value, are left out. The
  rate comes with a Wilson 95% interval over those pairs (pairs from one K-way vote share the vote,
  so the interval is a little narrow for K > 2).
- *Kendall's tau* between two model orders: by the score (each model's mean over its current finished
  clips, turned so that higher is better) and by the judges' ratings (`judging.rank`). With few models
  tau moves in big steps (3 models: -1, -1/3, 1/3, 1): read it beside the number of models.

A suite's `objective:` (workflow.bestofn.Objective) is checked the same way as a higher-is-better score.

**Judges against each other**: Krippendorff's alpha (nominal; the `krippendorff` package) over the
comparisons two or more raters judged (same clips, same criterion); each rater's answer is the clip they
put first (coded by its place among the comparison's clips sorted by job id, so the categories mean the
same in every comparison), or "tie". A rater who judged a comparison twice counts with their latest vote. alpha is 1 for
perfect agreement, 0 for agreement at chance level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from workbench.judging.rank import Ranking, Z95
from workbench.judging.store import Vote, ranked_clips

Scorer = Callable[[Mapping[str, Any]], "float | None"]


def clip_pairs(votes: Iterable[Vote]) -> list[tuple[str, str]]:
    """Every decisive (preferred clip, other clip) pair of these votes, by job id."""
    out = []
    for v in votes:
        order = ranked_clips(v)
        if v["choice"] == "best":
            out += [(order[0], c) for c in v["clips"] if c != order[0]]
        elif v["choice"] == "rank":
            out += [(order[i], order[j]) for i in range(len(order)) for j in range(i + 1, len(order))]
    return out


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of k successes in n (None when n is 0)."""
    if n <= 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


@dataclass(frozen=True)
class ScoreAgreement:
    """How one score agrees with the judges on one criterion (see the module doc)."""

    score: str
    higher: bool
    agree: int
    disagree: int
    ties: int  # pairs where the score's values are equal
    missing: int  # pairs where a clip has no value
    tau: float | None
    n_models: int

    @property
    def n(self) -> int:
        return self.agree + self.disagree

    @property
    def rate(self) -> float | None:
        return self.agree / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.agree, self.n)

    def row(self) -> dict[str, Any]:
        iv = self.interval
        return {"score": self.score, "better": "higher" if self.higher else "lower", "agree": self.agree,
                "pairs": self.n, "rate": self.rate, "lo": iv[0] if iv else None, "hi": iv[1] if iv else None,
                "ties": self.ties, "missing": self.missing, "tau": self.tau, "models": self.n_models}


def kendall_tau(a: Mapping[str, float], b: Mapping[str, float]) -> float | None:
    """Kendall's tau-b between two {model: value} orders over the models both have (None below 2 models
    or when either order is all ties)."""
    from scipy.stats import kendalltau

    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    t = kendalltau([a[m] for m in common], [b[m] for m in common]).statistic
    return None if t is None or not math.isfinite(t) else float(t)


def score_agreement(votes: Sequence[Vote], records: Iterable[Mapping[str, Any]], score: str, higher: bool,
                    ranking: Ranking | None = None, value: Scorer | None = None) -> ScoreAgreement:
    """Agreement of one score (or any `value(record)` with a direction, e.g. an objective) with these
    votes; `records` are the comparison's current records; `ranking` gives Kendall's tau."""
    from workbench.metrics.stats import score_value

    get = value or (lambda r: score_value(r, score))
    recs = [r for r in records if r.get("status") == "ok" and r.get("job_id")]
    by_id = {str(r["job_id"]): r for r in recs}
    vals: dict[str, float | None] = {}

    def val(job: str) -> float | None:
        if job not in vals:
            r = by_id.get(job)
            vals[job] = None if r is None else get(r)
        return vals[job]

    agree = disagree = ties = missing = 0
    for win, lose in clip_pairs(votes):
        a, b = val(win), val(lose)
        if a is None or b is None:
            missing += 1
        elif a == b:
            ties += 1
        elif (a > b) == higher:
            agree += 1
        else:
            disagree += 1
    tau, n_models = None, 0
    if ranking is not None:
        sums: dict[str, list[float]] = {}
        for r in recs:
            v = get(r)
            if v is not None:
                sums.setdefault(str(r.get("model")), []).append(v)
        means = {m: (sum(x) / len(x)) * (1 if higher else -1) for m, x in sums.items() if m in ranking.theta}
        n_models = len(means)
        tau = kendall_tau(means, ranking.theta)
    return ScoreAgreement(score, higher, agree, disagree, ties, missing, tau, n_models)


def metric_agreement(votes: Sequence[Vote], records: Sequence[Mapping[str, Any]], ranking: Ranking | None = None,
                     directions: Mapping[str, bool | None] | None = None,
                     objective: Any = None) -> list[ScoreAgreement]:
    """`score_agreement` for every score with a better direction that the records hold (and the suite's
    objective when given), most agreeing first (scores no judged pair could test go last)."""
    if directions is None:
        from workbench.metrics import score_specs

        directions = {n: s.higher_is_better for n, s in score_specs().items()}
    names: dict[str, None] = {}
    for r in records:
        for n in r.get("scores") or {}:
            names.setdefault(n, None)
    out = [score_agreement(votes, records, n, bool(directions[n]), ranking)
           for n in names if directions.get(n) is not None]
    if objective is not None:
        out.append(score_agreement(votes, records, "objective", True, ranking, value=objective))
    out.sort(key=lambda a: (a.rate is None, -(a.rate or 0.0), -a.n))
    return out


@dataclass(frozen=True)
class RaterAgreement:
    """Krippendorff's alpha (nominal) over comparisons judged by 2+ raters."""

    alpha: float | None
    units: int  # comparisons with 2+ raters
    raters: int

    def text(self) -> str:
        if self.alpha is None:
            return (f"agreement between raters: needs comparisons judged by two or more raters "
                    f"({self.raters} rater{'s' if self.raters != 1 else ''} so far)")
        return (f"agreement between raters: Krippendorff's alpha = {self.alpha:.2f} over {self.units} comparisons "
                f"judged by 2+ of {self.raters} raters")


def rater_agreement(votes: Iterable[Vote]) -> RaterAgreement:
    """Krippendorff's alpha between raters (see the module doc)."""
    import numpy as np

    answers: dict[tuple, dict[str, str]] = {}
    raters: dict[str, None] = {}
    for v in votes:
        unit = (v["criterion"], v["case"], v["seed"], v.get("output", 0), tuple(sorted(v["clips"])))
        first = ranked_clips(v)
        answers.setdefault(unit, {})[v["rater"]] = str(unit[-1].index(first[0])) if first else "tie"
        raters.setdefault(v["rater"], None)
    shared = {u: a for u, a in answers.items() if len(a) >= 2}
    if not shared or len(raters) < 2:
        return RaterAgreement(None, len(shared), len(raters))
    names = list(raters)
    codes: dict[str, int] = {}
    data = np.full((len(names), len(shared)), np.nan)
    for j, a in enumerate(shared.values()):
        for rater, ans in a.items():
            data[names.index(rater), j] = codes.setdefault(ans, len(codes))
    if len(codes) < 2:  # every answer the same: perfect agreement (alpha is undefined without variation)
        return RaterAgreement(1.0, len(shared), len(raters))
    import krippendorff

    alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    return RaterAgreement(alpha if math.isfinite(alpha) else None, len(shared), len(raters))
