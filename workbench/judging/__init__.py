"""Human judgment in the loop: blind votes on clips (RUN/judgments.jsonl), a preference ranking of models
with 95% intervals, the checks an arena runs, and how well each automatic score agrees with the judges.

One job per module: `store` (the votes file: append, read, import, which votes still count),
`schedule` (which comparison next), `rank` (Plackett-Luce / Bradley-Terry fit, intervals, win matrix,
position bias, intransitive triples, votes needed), `agreement` (scores vs judges, Kendall's tau,
Krippendorff's alpha between raters), `summary` (all of it for one comparison), `page` (the report's
section and its blind judging page), `track` (W&B). Metrics never import this package.
"""
from workbench.judging.store import (CHOICES, CRITERIA, JUDGMENTS, JudgmentError, VoteSet, append_vote, append_votes,
                                     check_vote, import_votes, make_vote, read_votes, run_votes, split_votes)
from workbench.judging.rank import Ranking, fit, fit_all, position_bias
from workbench.judging.schedule import Comparison, Scheduler
from workbench.judging.agreement import metric_agreement, rater_agreement, score_agreement
from workbench.judging.summary import JudgingSummary, summarize, summarize_runs

__all__ = ["CHOICES", "CRITERIA", "JUDGMENTS", "JudgmentError", "VoteSet", "append_vote", "append_votes", "check_vote",
           "import_votes", "make_vote", "read_votes", "run_votes", "split_votes", "Ranking", "fit", "fit_all",
           "position_bias", "Comparison", "Scheduler", "metric_agreement", "rater_agreement", "score_agreement",
           "JudgingSummary", "summarize", "summarize_runs"]
