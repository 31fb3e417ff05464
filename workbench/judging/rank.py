"""Ranking models from human votes: a Plackett-Luce (Bradley-Terry for pairs) fit with 95% intervals,
the win-rate matrix, and the checks an arena runs on its votes.

**The model.** Each model has a strength theta (log scale, mean 0); the chance that a judge picks model
i as best among the shown set S is exp(theta_i) / sum_{j in S} exp(theta_j) (Luce's choice axiom; for
two clips this is Bradley-Terry). Every vote is used fully, as Luce choices:

- ``best`` over K clips: the best one chosen from all K;
- ``rank``: the best chosen from all K, the second from the other K-1, and so on (Plackett-Luce);
- ``tie`` and ``all_bad``: every shown model chosen from the set with weight 1/K each (a tie of two is
  half a win each way, the usual arena rule; "all bad" says the models are equally unacceptable).

The fit is `choix.ilsr_top1` (iterative Luce spectral ranking, a maximum-likelihood estimate) with a
small regularisation so a model that never wins keeps a finite strength; fractional weights are given to
it as repeated choices. **Intervals** are analytic by default: the observed Fisher information of the
Luce likelihood at the fit, inverted under the mean-0 constraint (Wald 95%: theta +- 1.96 se);
``intervals="bootstrap"`` refits on votes resampled with replacement (percentile 95%) instead.
Ratings are shown on the arena scale: 1000 + 400 log10(e) theta (a 400-point gap is 10:1 odds).
Over simulated raters the analytic intervals cover the true strengths 94-96% of the time (K = 2..4,
benchmarks/bench_judging.py); judges who call ties whatever the strengths pull the fitted gaps toward 0
(10% such ties, 1,000 votes: 89% coverage), the price of the half-win rule.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from workbench.judging.store import CRITERION_LABELS, Vote, criterion_name

Z95 = 1.959963984540054
POINTS = 400.0 / math.log(10.0)  # rating points per unit of theta
BASE = 1000.0
ALPHA = 0.01  # choix regularisation per unit of vote weight: negligible beyond a few votes
MIN_PAIR_VOTES = 3  # a pair's direct votes below this say nothing about intransitivity

Event = tuple[str, tuple[str, ...], Fraction]  # (chosen model, the others of the set, weight)


def vote_events(vote: Mapping[str, Any]) -> list[Event]:
    """A vote as Luce choices over models (see the module doc); `vote["models"]` in shown order."""
    models = list(vote["models"])
    choice = vote["choice"]
    if choice in ("tie", "all_bad"):
        w = Fraction(1, len(models))
        return [(m, tuple(x for x in models if x != m), w) for m in models]
    order = [models[p] for p in vote["positions"]]
    if choice == "best":
        return [(order[0], tuple(x for x in models if x != order[0]), Fraction(1))]
    return [(order[i], tuple(order[i + 1:]), Fraction(1)) for i in range(len(order) - 1)]


def pair_outcomes(vote: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """A vote broken into pairs of models: (a, b, a's share) with 1 = a preferred, 0.5 = tie. `best`
    gives winner-vs-each-other; `rank` every ordered pair; a tie every pair at 0.5."""
    models = list(vote["models"])
    if vote["choice"] in ("tie", "all_bad"):
        return [(a, b, 0.5) for a, b in itertools.combinations(models, 2)]
    order = [models[p] for p in vote["positions"]]
    if vote["choice"] == "best":
        return [(order[0], m, 1.0) for m in models if m != order[0]]
    return [(order[i], order[j], 1.0) for i in range(len(order)) for j in range(i + 1, len(order))]


@dataclass
class Ranking:
    """A preference ranking of models for one criterion (see the module doc for the model).

    `models` best first; `theta` strengths (mean 0); `lo`/`hi` their 95% interval (None when the votes
    do not connect the model to the others); `wins[a][b]` how often a was preferred to b (ties 0.5),
    `pairs[a][b]` how many pairwise outcomes a and b share (symmetric)."""

    criterion: str
    models: list[str]
    theta: dict[str, float]
    lo: dict[str, float | None]
    hi: dict[str, float | None]
    n_votes: int
    n_ties: int
    wins: dict[str, dict[str, float]]
    pairs: dict[str, dict[str, int]]
    method: str = "analytic"
    cov: np.ndarray | None = None
    index: dict[str, int] = field(default_factory=dict)

    def rating(self, model: str) -> float:
        return BASE + POINTS * self.theta[model]

    def rating_interval(self, model: str) -> tuple[float, float] | None:
        lo, hi = self.lo.get(model), self.hi.get(model)
        return None if lo is None or hi is None else (BASE + POINTS * lo, BASE + POINTS * hi)

    def win_rate(self, a: str, b: str) -> float | None:
        """Share of a-vs-b outcomes a won (ties half); None when they never met."""
        n = self.pairs.get(a, {}).get(b, 0)
        return self.wins[a][b] / n if n else None

    def p_beats(self, a: str, b: str) -> float:
        """The fitted chance that a is preferred to b shown as a pair."""
        return 1.0 / (1.0 + math.exp(self.theta[b] - self.theta[a]))

    def diff_se(self, a: str, b: str) -> float | None:
        """Standard error of theta_a - theta_b (analytic covariance; None when not available)."""
        if self.cov is None:
            lo_a, hi_a, lo_b, hi_b = self.lo.get(a), self.hi.get(a), self.lo.get(b), self.hi.get(b)
            if None in (lo_a, hi_a, lo_b, hi_b):
                return None
            return math.hypot((hi_a - lo_a) / (2 * Z95), (hi_b - lo_b) / (2 * Z95))  # type: ignore[operator]
        i, j = self.index[a], self.index[b]
        var = self.cov[i, i] + self.cov[j, j] - 2 * self.cov[i, j]
        return math.sqrt(var) if var > 0 and math.isfinite(var) else None

    def separated(self, a: str, b: str) -> bool:
        """Whether the votes order a and b at 95% (|theta_a - theta_b| > 1.96 se of the difference)."""
        se = self.diff_se(a, b)
        return se is not None and abs(self.theta[a] - self.theta[b]) > Z95 * se

    def half_width(self) -> float | None:
        """The widest 95% half-width of a model's rating, in rating points (None without intervals)."""
        widths = [(h - l) / 2 * POINTS for m in self.models
                  if (l := self.lo.get(m)) is not None and (h := self.hi.get(m)) is not None]
        return max(widths) if widths and len(widths) == len(self.models) else None

    def separated_pairs(self) -> tuple[int, int]:
        pairs = list(itertools.combinations(self.models, 2))
        return sum(self.separated(a, b) for a, b in pairs), len(pairs)

    def progress(self) -> str:
        """One line: "38 judgments; ratings stable to within ±45 points (95%); 4 of 6 pairs separated"."""
        n = f"{self.n_votes} judgment{'s' if self.n_votes != 1 else ''}"
        hw = self.half_width()
        if len(self.models) < 2:
            return f"{n}; too few models judged to rank"
        s, p = self.separated_pairs()
        within = f"ratings stable to within ±{hw:.0f} points (95%)" if hw is not None else "intervals need more votes"
        return f"{n}; {within}; {s} of {p} pairs separated"

    def rows(self) -> list[dict[str, Any]]:
        """The ranking as table rows (model, rating, interval, votes), best first."""
        out = []
        for i, m in enumerate(self.models, 1):
            iv = self.rating_interval(m)
            n = sum(self.pairs.get(m, {}).values())
            out.append({"rank": i, "model": m, "rating": round(self.rating(m), 1),
                        "lo": None if iv is None else round(iv[0], 1), "hi": None if iv is None else round(iv[1], 1),
                        "theta": self.theta[m], "outcomes": n})
        return out

    @property
    def label(self) -> str:
        return CRITERION_LABELS.get(self.criterion, self.criterion)


def _fit_theta(models: Sequence[str], events: Sequence[Event]) -> np.ndarray:
    """Maximum-likelihood Luce strengths (mean 0) by choix's ILSR; fractional weights as repeats."""
    import choix

    idx = {m: i for i, m in enumerate(models)}
    scale = 1
    for _, _, w in events:
        scale = scale * w.denominator // math.gcd(scale, w.denominator)
    data = []
    for m, others, w in events:
        if not others:
            continue
        item = (idx[m], [idx[o] for o in others])
        data.extend([item] * int(w * scale))
    if not data:
        return np.zeros(len(models))
    theta = np.asarray(choix.ilsr_top1(len(models), data, alpha=ALPHA * scale, max_iter=1000, tol=1e-10))
    return theta - theta.mean()


def _fisher(models: Sequence[str], events: Sequence[Event], theta: np.ndarray) -> np.ndarray:
    """Observed information of the Luce likelihood at theta: sum over choice sets S of the set's weight
    times (diag(p_S) - p_S p_S^T), p_S the softmax of theta over S (it does not depend on who won)."""
    idx = {m: i for i, m in enumerate(models)}
    sets: dict[tuple[int, ...], float] = {}
    for m, others, w in events:
        if others:
            key = tuple(sorted([idx[m], *(idx[o] for o in others)]))
            sets[key] = sets.get(key, 0.0) + float(w)
    info = np.zeros((len(models), len(models)))
    for s, w in sets.items():
        ix = np.array(s)
        e = np.exp(theta[ix] - theta[ix].max())
        p = e / e.sum()
        info[np.ix_(ix, ix)] += w * (np.diag(p) - np.outer(p, p))
    return info


def _tables(models: Sequence[str], votes: Iterable[Vote]) -> tuple[dict, dict]:
    wins = {a: {b: 0.0 for b in models} for a in models}
    pairs = {a: {b: 0 for b in models} for a in models}
    for v in votes:
        for a, b, share in pair_outcomes(v):
            wins[a][b] += share
            wins[b][a] += 1.0 - share
            pairs[a][b] += 1
            pairs[b][a] += 1
    return wins, pairs


def fit(votes: Sequence[Vote], criterion: str = "overall", intervals: str = "analytic", boot: int = 200,
        seed: int = 0) -> Ranking:
    """The ranking of the models these votes compare, for `criterion` (votes of other criteria are
    ignored). `intervals`: "analytic" (Fisher information) or "bootstrap" (`boot` resamples of the
    votes, seeded). Votes must carry `models` (see judging.store.split_votes)."""
    criterion = criterion_name(criterion)
    if intervals not in ("analytic", "bootstrap"):
        raise ValueError(f"intervals {intervals!r} must be analytic or bootstrap")
    votes = [v for v in votes if v["criterion"] == criterion]
    models = sorted({m for v in votes for m in v["models"]})
    per_vote = [vote_events(v) for v in votes]
    events = [e for ev in per_vote for e in ev]
    theta = _fit_theta(models, events)
    n = len(models)
    lo: dict[str, float | None] = dict.fromkeys(models)
    hi: dict[str, float | None] = dict.fromkeys(models)
    cov = None
    if n >= 2 and intervals == "analytic":
        info = _fisher(models, events, theta)
        if np.linalg.matrix_rank(info, tol=1e-9 * max(1.0, float(np.abs(info).max()))) == n - 1:
            cov = np.linalg.pinv(info)  # the minimum-norm inverse: the covariance under sum(theta) = 0
            se = np.sqrt(np.clip(np.diag(cov), 0, None))
            for i, m in enumerate(models):
                lo[m], hi[m] = float(theta[i] - Z95 * se[i]), float(theta[i] + Z95 * se[i])
    elif n >= 2:
        rng = np.random.default_rng(seed)
        draws = np.empty((boot, n))
        for b in range(boot):
            pick = rng.integers(0, len(per_vote), len(per_vote))
            draws[b] = _fit_theta(models, [e for i in pick for e in per_vote[i]])
        q = np.percentile(draws, [2.5, 97.5], axis=0)
        for i, m in enumerate(models):
            lo[m], hi[m] = float(q[0, i]), float(q[1, i])
    wins, pairs = _tables(models, votes)
    th = {m: float(theta[i]) for i, m in enumerate(models)}
    order = sorted(models, key=lambda m: (-th[m], m))
    return Ranking(criterion, order, th, lo, hi, len(votes), sum(v["choice"] in ("tie", "all_bad") for v in votes),
                   wins, pairs, intervals, cov, {m: i for i, m in enumerate(models)})


def fit_all(votes: Sequence[Vote], **kw: Any) -> dict[str, Ranking]:
    """One ranking per criterion that has votes, in the canonical criterion order."""
    from workbench.judging.store import CRITERIA

    have = {v["criterion"] for v in votes}
    return {c: fit(votes, c, **kw) for c in CRITERIA if c in have}


# --------------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PositionBias:
    """Does the leftmost clip win more often than chance? Over decisive votes (best / rank), the share
    whose best clip was shown leftmost, against 1/K expected (positions are shuffled); `p` two-sided
    (exact binomial when every vote showed the same K, else the normal approximation)."""

    n: int
    left_wins: int
    expected: float
    p: float | None
    by_position: dict[int, dict[int, int]]  # K -> {position: wins}

    @property
    def share(self) -> float | None:
        return self.left_wins / self.n if self.n else None

    @property
    def biased(self) -> bool:
        return self.p is not None and self.p < 0.05

    def text(self) -> str:
        if not self.n:
            return "position bias: no decisive votes yet"
        verdict = "the left clip is favoured" if self.biased and self.left_wins > self.expected else (
            "the left clip is disfavoured" if self.biased else "no evidence of a position bias")
        return (f"left clip best in {self.left_wins} of {self.n} decisive votes ({self.share:.0%}; "
                f"{self.expected / self.n:.0%} expected), p = {self.p:.3g}: {verdict}")


def position_bias(votes: Iterable[Vote]) -> PositionBias:
    """The position-bias check over decisive votes (see PositionBias)."""
    from scipy import stats

    ks, lefts = [], []
    by: dict[int, dict[int, int]] = {}
    for v in votes:
        if v["choice"] not in ("best", "rank"):
            continue
        k, top = len(v["clips"]), v["positions"][0]
        ks.append(k)
        lefts.append(top == 0)
        by.setdefault(k, dict.fromkeys(range(k), 0))[top] += 1
    n, x = len(ks), int(sum(lefts))
    expected = float(sum(1.0 / k for k in ks))
    if not n:
        return PositionBias(0, 0, 0.0, None, by)
    if len(set(ks)) == 1:
        p = float(stats.binomtest(x, n, 1.0 / ks[0]).pvalue)
    else:
        var = sum((1.0 / k) * (1 - 1.0 / k) for k in ks)
        p = float(2 * stats.norm.sf(abs(x - expected) / math.sqrt(var)))
    return PositionBias(n, x, expected, p, by)


def intransitive_triples(r: Ranking, min_votes: int = MIN_PAIR_VOTES) -> list[tuple[str, str, str]]:
    """Cycles a > b > c > a in the direct win rates (each pair with >= `min_votes` outcomes and a rate
    other than 50%): the votes then disagree with any single order, and the fit averages them."""
    beats = {}
    for a, b in itertools.permutations(r.models, 2):
        n = r.pairs.get(a, {}).get(b, 0)
        if n >= min_votes and r.wins[a][b] / n > 0.5:
            beats[(a, b)] = True
    out = []
    for a, b, c in itertools.combinations(r.models, 3):
        if beats.get((a, b)) and beats.get((b, c)) and beats.get((c, a)):
            out.append((a, b, c))
        elif beats.get((a, c)) and beats.get((c, b)) and beats.get((b, a)):
            out.append((a, c, b))
    return out


def votes_needed(p: float) -> int | None:
    """Pairwise votes needed for a 95% two-sided test to tell a win rate `p` from a coin flip
    (n >= 1.96^2 p (1 - p) / (p - 0.5)^2); None when p is 0.5 (no number of votes does)."""
    if abs(p - 0.5) < 1e-9:
        return None
    return max(1, math.ceil(Z95 ** 2 * p * (1 - p) / (p - 0.5) ** 2))


def too_few_votes(r: Ranking) -> list[str]:
    """For each pair of neighbours in the ranking that the votes do not separate, one line: how many
    votes they have and how many a pair with their fitted win rate needs."""
    out = []
    for a, b in zip(r.models, r.models[1:]):
        if r.separated(a, b):
            continue
        n = r.pairs.get(a, {}).get(b, 0)
        p = r.p_beats(a, b)
        need = votes_needed(p)
        if need is None:
            out.append(f"{a} vs {b}: {n} votes, judged even so far; no number of votes separates an even pair")
        else:
            more = f"needs >= {need:,} votes per pair to separate these two" if need > n else \
                "enough votes on the pair, but the other votes pull them together"
            out.append(f"{a} vs {b}: {n} votes, {a} preferred {p:.0%} of the time: {more}")
    return out


@dataclass
class Checks:
    """Everything an arena checks on one criterion's votes."""

    position: PositionBias
    intransitive: list[tuple[str, str, str]]
    too_few: list[str]


def checks(votes: Sequence[Vote], r: Ranking) -> Checks:
    votes = [v for v in votes if v["criterion"] == r.criterion]
    return Checks(position_bias(votes), intransitive_triples(r), too_few_votes(r))
