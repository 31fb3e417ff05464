"""Everything the votes of a comparison say, per criterion: the ranking, the arena checks, the scores'
agreement with the judges and the raters' with each other. One object for the report, `workbench
judgments show` and W&B, so all three say the same."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from workbench.judging.agreement import RaterAgreement, ScoreAgreement, metric_agreement, rater_agreement
from workbench.judging.rank import Checks, Ranking, checks, fit
from workbench.judging.store import CRITERION_LABELS, VoteSet, run_votes


@dataclass
class CriterionSummary:
    criterion: str
    ranking: Ranking
    checks: Checks
    raters: RaterAgreement
    scores: list[ScoreAgreement]

    @property
    def label(self) -> str:
        return CRITERION_LABELS.get(self.criterion, self.criterion)

    def as_dict(self) -> dict[str, Any]:
        r, c = self.ranking, self.checks
        models = r.models
        return {
            "criterion": self.criterion, "label": self.label, "progress": r.progress(), "votes": r.n_votes,
            "ties": r.n_ties, "ranking": r.rows(), "models": models,
            "win_rate": [[None if a == b else r.win_rate(a, b) for b in models] for a in models],
            "pair_votes": [[0 if a == b else r.pairs[a][b] for b in models] for a in models],
            "position_bias": {"n": c.position.n, "left_wins": c.position.left_wins, "share": c.position.share,
                              "expected": (c.position.expected / c.position.n) if c.position.n else None,
                              "p": c.position.p, "biased": c.position.biased, "text": c.position.text()},
            "intransitive": [list(t) for t in c.intransitive], "too_few": c.too_few,
            "raters": {"alpha": self.raters.alpha, "units": self.raters.units, "raters": self.raters.raters,
                       "text": self.raters.text()},
            "scores": [a.row() for a in self.scores],
        }


@dataclass
class JudgingSummary:
    """The votes of a comparison: `criteria` (one summary per criterion with votes), and the votes
    left out because they name clips since re-generated or gone (`stale`)."""

    criteria: list[CriterionSummary]
    n_votes: int
    stale: int
    raters: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"votes": self.n_votes, "stale": self.stale, "raters": self.raters,
                "criteria": [c.as_dict() for c in self.criteria]}

    def lines(self) -> list[str]:
        """A plain-text account (what `workbench judgments show` prints)."""
        out = [f"{self.n_votes} current vote{'s' if self.n_votes != 1 else ''} by {len(self.raters)} "
               f"rater{'s' if len(self.raters) != 1 else ''}"
               + (f"; {self.stale} left out (they name clips since re-generated or removed)" if self.stale else "")]
        for c in self.criteria:
            r = c.ranking
            out += ["", f"[{c.label}] {r.progress()}"]
            for row in r.rows():
                iv = "" if row["lo"] is None else f"  [{row['lo']:.0f}, {row['hi']:.0f}]"
                out.append(f"  {row['rank']}. {row['model']:<24} {row['rating']:7.0f}{iv}  ({row['outcomes']} pairwise)")
            out.append("  " + c.checks.position.text())
            out.append("  " + c.raters.text())
            for t in c.checks.intransitive:
                out.append(f"  intransitive: {t[0]} > {t[1]} > {t[2]} > {t[0]}")
            out += ["  " + line for line in c.checks.too_few]
            tested = [a for a in c.scores if a.n]
            if tested:
                out.append("  which metric agrees with your eyes (pairwise agreement, 95% CI; Kendall tau of model order):")
                for a in tested:
                    lo, hi = a.interval or (0.0, 0.0)
                    tau = "" if a.tau is None else f"  tau {a.tau:+.2f} over {a.n_models} models"
                    out.append(f"    {a.score:<28} {a.rate:5.0%} [{lo:.0%}, {hi:.0%}] of {a.n} pairs{tau}")
        return out


def summarize(votes: VoteSet, records: Sequence[Mapping[str, Any]], objective: Any = None,
              directions: Mapping[str, bool | None] | None = None, intervals: str = "analytic") -> JudgingSummary:
    """The summary of a comparison's votes against its current `records` (see the module doc)."""
    out = []
    for crit in votes.criteria():
        vs = votes.criterion(crit)
        r = fit(vs, crit, intervals=intervals)
        out.append(CriterionSummary(crit, r, checks(vs, r), rater_agreement(vs),
                                    metric_agreement(vs, records, r, directions, objective)))
    raters = sorted({v["rater"] for v in votes.current})
    return JudgingSummary(out, len(votes.current), len(votes.stale), raters)


def summarize_runs(run_dirs: Path | Iterable[Path], records: Sequence[Mapping[str, Any]], objective: Any = None,
                   directions: Mapping[str, bool | None] | None = None) -> JudgingSummary:
    """`summarize` over the votes of one run folder or joined folders."""
    return summarize(run_votes(run_dirs, records), records, objective, directions)
