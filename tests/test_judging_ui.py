"""The Judge tab in-process (votes land in judgments.jsonl, a reopened tab keeps them, names only after
the vote when asked), `workbench judgments show|import` and the report's judging section."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.judging_fixture import QUALITY, judging_run
from workbench.cli import app
from workbench.judging import read_votes


def test_judge_tab_votes_are_written_and_kept(tmp_path):
    from workbench.ui.judge import JudgeTab

    run = judging_run(tmp_path)
    tab = JudgeTab(tmp_path, run=run, rater="ana")
    first = tab.board.comparison
    assert len(first["clips"]) == 2 and all(c["data"] or c["src"] for c in first["clips"])
    assert "alpha" not in json.dumps({k: v for k, v in first.items() if k != "clips"})  # blind
    seen = []
    for i in range(6):
        c = tab.current
        best = min(range(2), key=lambda p: -QUALITY[c.models[p]])  # the judge prefers the truly better clip
        seen.append(c.case)
        tab._on_msg(tab.board, {"kind": "vote", "token": tab.board.comparison["token"], "choice": "best",
                                "positions": [best]}, None)
    assert len(set(seen[:4])) == 4  # every case before any again
    votes = read_votes(run)
    assert len(votes) == 6 and {v["source"] for v in votes} == {"studio"}
    assert "6 judgments" in tab.board.progress
    tab.reveal.value = True
    tab._on_msg(tab.board, {"kind": "vote", "token": tab.board.comparison["token"], "choice": "tie"}, None)
    assert sorted(tab.board.revealed) == sorted(tab.current.models)  # names after the vote
    token = tab.board.comparison["token"]
    tab._on_msg(tab.board, {"kind": "vote", "token": token, "choice": "tie"}, None)  # no second vote before next
    assert len(read_votes(run)) == 7
    tab._on_msg(tab.board, {"kind": "next"}, None)
    assert tab.board.revealed == [] and tab.board.comparison["token"] != token
    again = JudgeTab(tmp_path, run=run, rater="ana")  # a reopened tab (kernel restart) counts them all
    assert "7 judgments" in again.board.progress
    again.k.value = 3
    assert len(again.board.comparison["clips"]) == 3


def test_cli_show_and_import(tmp_path):
    run = judging_run(tmp_path)
    from workbench.judging import make_vote

    votes = []
    for c in range(4):
        for a, b in (("alpha", "beta"), ("beta", "gamma"), ("alpha", "gamma")):
            votes.append(make_vote(rater="ben", case=f"case{c}", seed=0, clips=[f"{b[:2]}{c:02d}{'0' * 10}",
                                                                               f"{a[:2]}{c:02d}{'0' * 10}"],
                                   choice="best", positions=[1], run="judged", source="report"))
    f = tmp_path / "votes.jsonl"
    f.write_text("".join(json.dumps(v) + "\n" for v in votes))
    cli = CliRunner()
    res = cli.invoke(app, ["judgments", "import", str(f), "--run", str(run)])
    assert res.exit_code == 0, res.output
    assert "12 votes added" in res.output
    res = cli.invoke(app, ["judgments", "import", str(f), "--run", str(run)])
    assert "0 votes added" in res.output and "12 already there" in res.output
    f.write_text(f.read_text()[:-30])  # truncated by a broken download
    res = cli.invoke(app, ["judgments", "import", str(f), "--run", str(run)])
    assert res.exit_code == 2
    err = res.output.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "line 12" in err[0] and "download the votes again" in err[0]
    res = cli.invoke(app, ["judgments", "show", str(run), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    overall = data["criteria"][0]
    assert [r["model"] for r in overall["ranking"]] == ["alpha", "beta", "gamma"]
    scores = {a["score"]: a for a in overall["scores"]}
    assert scores["identity_similarity"]["rate"] == 1.0 and scores["identity_similarity"]["tau"] == 1.0
    assert scores["warp_error"]["rate"] == 0.0 and scores["warp_error"]["tau"] == -1.0
    assert "flow_magnitude" not in scores  # no better direction: not tested
    res = cli.invoke(app, ["judgments", "show", str(run)])
    assert "which metric agrees with your eyes" in res.output and "1. alpha" in res.output
    res = cli.invoke(app, ["judgments", "show", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a run folder" in res.output


def test_judging_summary_logged_to_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = judging_run(tmp_path)
    from workbench.judging import make_vote, append_votes
    from workbench.judging.page import comparison_records
    from workbench.judging.summary import summarize_runs
    from workbench.judging.track import log_judging

    append_votes(run, [make_vote(rater="ana", case="case0", seed=0, clips=["al00" + "0" * 10, "be00" + "0" * 10],
                                 choice="best", positions=[0])])
    records, dirs = comparison_records([run])
    files = log_judging(summarize_runs(dirs, records), run, "offline")
    assert files and (run / "wandb").is_dir()
