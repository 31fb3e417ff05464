"""Which comparison a judge sees next: the one the votes so far say the least about.

The rule (one criterion at a time, every vote so far counted):

1. **Candidates** are the (case, seed, output) rows with finished clips from at least two models, and
   in each row every set of K of its models (K = 2..4, fewer when the row has fewer).
2. Each model set scores ``uncertainty + balance + fresh``:
   - *uncertainty*: the mean over its pairs of the chance the pair's order is still a coin flip, the
     two-sided p-value 2 Phi(-|theta_a - theta_b| / se) of the current fit (1 for a pair no vote has
     connected yet): pairs the ranking cannot yet separate come first;
   - *balance*: 0.5 x (1 - how much more its models have been shown than the least-shown model,
     scaled to 0..1): every model is seen about equally;
   - *fresh*: 1 / (1 + votes the row already has), so cases not yet judged come before cases judged
     again, and 1 / (1 + votes on these exact clips) breaks what remains.
   A set of clips this rater already judged is taken only when every candidate has been.
3. The highest score wins (ties broken at random); its clips are shown in the order, among all K!
   orders, that puts each model where it has been shown least (ties at random): positions stay
   balanced, so a position bias cannot favour a model.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from workbench.judging.rank import Ranking, fit
from workbench.judging.store import Vote, criterion_name

Row = tuple[str, int, int]


@dataclass(frozen=True)
class Comparison:
    """One comparison to judge: a row and its clips in the order shown (left to right); `models` is
    for the record and the reveal, never shown before the vote."""

    case: str
    seed: int
    output: int
    clips: tuple[str, ...]
    models: tuple[str, ...]
    criterion: str = "overall"


def rows_of(records: Iterable[Mapping[str, Any]]) -> dict[Row, dict[str, str]]:
    """{(case, seed, output): {model: job id}} over finished clips (rows with 2+ models only)."""
    rows: dict[Row, dict[str, str]] = {}
    for r in records:
        if r.get("status") != "ok" or not r.get("job_id") or not (r.get("video") or r.get("image_out")):
            continue
        seed, out = r.get("seed"), r.get("output")
        key = (str(r.get("case")), seed if isinstance(seed, int) else 0, out if isinstance(out, int) else 0)
        rows.setdefault(key, {})[str(r.get("model"))] = str(r["job_id"])
    return {k: v for k, v in rows.items() if len(v) >= 2}


@dataclass
class Scheduler:
    """Picks the next comparison by the module's rule. `records`: the comparison's current records;
    `votes`: its current votes (any criteria; only `criterion`'s count); `k`: clips shown at once."""

    records: Sequence[Mapping[str, Any]]
    votes: list[Vote] = field(default_factory=list)
    k: int = 2
    criterion: str = "overall"
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.k <= 4:
            raise ValueError(f"k = {self.k}: show 2 to 4 clips at once")
        self.criterion = criterion_name(self.criterion)
        self.rows = rows_of(self.records)
        self.rng = random.Random(self.seed)
        self._ranking: Ranking | None = None

    @property
    def judged(self) -> list[Vote]:
        return [v for v in self.votes if v["criterion"] == self.criterion]

    def add(self, vote: Vote) -> None:
        """Count a new vote (the ranking is refitted on the next call)."""
        self.votes.append(vote)
        self._ranking = None

    def ranking(self) -> Ranking | None:
        if self._ranking is None and self.judged:
            self._ranking = fit(self.judged, self.criterion)
        return self._ranking

    def progress(self) -> str:
        r = self.ranking()
        if r is None:
            return f"0 judgments ({self.criterion.replace('_', '-')}); {len(self.rows)} rows to judge"
        return r.progress()

    def _uncertainty(self, r: Ranking | None, a: str, b: str) -> float:
        if r is None or a not in r.theta or b not in r.theta:
            return 1.0
        se = r.diff_se(a, b)
        if se is None or se <= 0:
            return 1.0
        return math.erfc(abs(r.theta[a] - r.theta[b]) / se / math.sqrt(2))

    def next(self, rater: str = "") -> Comparison | None:
        """The next comparison for `rater` (None when no row has two models)."""
        if not self.rows:
            return None
        r = self.ranking()
        judged = self.judged
        row_votes: dict[Row, int] = {}
        clip_votes: dict[frozenset, int] = {}
        mine: set[frozenset] = set()
        shown: dict[str, int] = {}
        place: dict[str, dict[int, int]] = {}
        for v in judged:
            key = (v["case"], v["seed"], v.get("output", 0))
            row_votes[key] = row_votes.get(key, 0) + 1
            s = frozenset(v["clips"])
            clip_votes[s] = clip_votes.get(s, 0) + 1
            if v["rater"] == rater:
                mine.add(s)
            for i, m in enumerate(v["models"]):
                shown[m] = shown.get(m, 0) + 1
                place.setdefault(m, {})
                place[m][i] = place[m].get(i, 0) + 1
        models = sorted({m for row in self.rows.values() for m in row})
        lo = min((shown.get(m, 0) for m in models), default=0)
        hi = max((shown.get(m, 0) for m in models), default=0)
        set_score: dict[tuple[str, ...], float] = {}

        def model_part(ms: tuple[str, ...]) -> float:
            if ms not in set_score:
                pairs = list(itertools.combinations(ms, 2))
                unc = sum(self._uncertainty(r, a, b) for a, b in pairs) / len(pairs)
                over = (sum(shown.get(m, 0) for m in ms) / len(ms) - lo) / (hi - lo + 1)
                set_score[ms] = unc + 0.5 * (1.0 - over)
            return set_score[ms]

        best: tuple[float, float] | None = None
        pick: tuple[Row, tuple[str, ...]] | None = None
        for fresh_only in (True, False):
            for key, row in self.rows.items():
                k = min(self.k, len(row))
                fresh_row = 1.0 / (1 + row_votes.get(key, 0))
                for ms in itertools.combinations(sorted(row), k):
                    clips = frozenset(row[m] for m in ms)
                    if fresh_only and clips in mine:
                        continue
                    score = model_part(ms) + fresh_row + 0.1 / (1 + clip_votes.get(clips, 0))
                    cand = (score, self.rng.random())
                    if best is None or cand > best:
                        best, pick = cand, (key, ms)
            if pick is not None:
                break
        if pick is None:
            return None
        key, ms = pick
        order = self._placement(ms, place)
        row = self.rows[key]
        return Comparison(key[0], key[1], key[2], tuple(row[m] for m in order), tuple(order), self.criterion)

    def _placement(self, ms: tuple[str, ...], place: dict[str, dict[int, int]]) -> list[str]:
        """The order of `ms` that puts each model where it has been shown least (random among equals)."""
        perms = list(itertools.permutations(ms))
        self.rng.shuffle(perms)
        return list(min(perms, key=lambda p: sum(place.get(m, {}).get(i, 0) for i, m in enumerate(p))))
