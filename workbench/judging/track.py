"""The judging summary in Weights & Biases: one run (job_type "judging") per call, with the ranking, the
win-rate matrix and the score agreement as tables and the headline figures in the summary. Like every
workbench W&B call, a failure is one warning: the votes are already in judgments.jsonl."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from workbench.judging.summary import JudgingSummary


def log_judging(summary: JudgingSummary, run_dir: str | Path, mode: str, project: str = "workbench",
                group: str | None = None) -> str | None:
    """Log `summary` as one W&B run under RUN/wandb; returns its files folder (None when disabled or failed)."""
    from workbench.tracking import TrackingWarning, _checked, _init_run, _one_line

    if _checked(mode) == "disabled":
        return None
    run_dir = Path(run_dir)
    try:
        import wandb

        run = _init_run(mode, run_dir, project=project, group=group or f"judging:{run_dir.name}",
                        job_type="judging", name=f"judging {run_dir.name}",
                        config={"run_dir": str(run_dir), "votes": summary.n_votes, "raters": summary.raters})
        logged: dict[str, Any] = {}
        head: dict[str, Any] = {"judging/votes": summary.n_votes, "judging/stale": summary.stale}
        for c in summary.criteria:
            d = c.as_dict()
            rank = wandb.Table(columns=["rank", "model", "rating", "lo", "hi", "pairwise outcomes"])
            for row in d["ranking"]:
                rank.add_data(row["rank"], row["model"], row["rating"], row["lo"], row["hi"], row["outcomes"])
            wins = wandb.Table(columns=["model", *d["models"]])
            for m, rates in zip(d["models"], d["win_rate"]):
                wins.add_data(m, *rates)
            agree = wandb.Table(columns=["score", "better", "agreement", "lo", "hi", "pairs", "kendall_tau", "models"])
            for a in d["scores"]:
                agree.add_data(a["score"], a["better"], a["rate"], a["lo"], a["hi"], a["pairs"], a["tau"], a["models"])
                if a["rate"] is not None:
                    head[f"judging/{c.criterion}/agreement/{a['score']}"] = a["rate"]
            logged.update({f"judging/{c.criterion}/ranking": rank, f"judging/{c.criterion}/win_rate": wins,
                           f"judging/{c.criterion}/metric_agreement": agree})
            head[f"judging/{c.criterion}/votes"] = d["votes"]
            head[f"judging/{c.criterion}/position_bias_p"] = d["position_bias"]["p"]
            if d["raters"]["alpha"] is not None:
                head[f"judging/{c.criterion}/krippendorff_alpha"] = d["raters"]["alpha"]
            if d["ranking"]:
                head[f"judging/{c.criterion}/top"] = d["ranking"][0]["model"]
        run.log(logged)
        run.summary.update(head)
        files = run.dir
        run.finish()
        return files
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # W&B never loses a vote: they are in judgments.jsonl already
        warnings.warn(f"W&B logging of the judgments failed ({_one_line(e)}); the votes are in "
                      f"{run_dir / 'judgments.jsonl'}", TrackingWarning, stacklevel=2)
        return None
