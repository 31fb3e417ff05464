"""Judging: simulated raters with a known order, intervals that cover, planted position bias, hand-computed
agreement, and the votes file under bad input and concurrent writers."""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from workbench.judging import store as js
from workbench.judging.agreement import clip_pairs, kendall_tau, rater_agreement, score_agreement, wilson
from workbench.judging.rank import fit, intransitive_triples, position_bias, too_few_votes, votes_needed
from workbench.judging.schedule import Scheduler
from workbench.judging.summary import summarize

MODELS = ["m0", "m1", "m2", "m3", "m4"]
TRUTH = np.array([0.8, 0.4, 0.0, -0.4, -0.8])  # m0 best


def simulate(rng, n, k=2, theta=TRUTH, tie=0.0, left_boost=0.0, rater="sim", criterion="overall"):
    """Votes of raters whose choices follow Luce's rule over `theta` (a tie with chance `tie`); the clip
    shown leftmost gets `left_boost` added to its strength (a planted position bias)."""
    votes = []
    for i in range(n):
        shown = rng.choice(len(theta), k, replace=False)
        clips = [f"job-{MODELS[s]}" for s in shown]
        base = dict(vote_id=uuid.uuid4().hex, rater=rater, time="", case=f"c{i % 7}", seed=0, output=0,
                    clips=clips, models=[MODELS[s] for s in shown], criterion=criterion, note="")
        if rng.random() < tie:
            votes.append({**base, "choice": "tie", "positions": []})
            continue
        s = theta[shown] + np.r_[left_boost, np.zeros(k - 1)]
        p = np.exp(s - s.max())
        p /= p.sum()
        votes.append({**base, "choice": "best", "positions": [int(rng.choice(k, p=p))]})
    return votes


def test_ranking_recovers_the_order():
    rng = np.random.default_rng(0)
    recovered = 0
    for _ in range(20):
        r = fit(simulate(rng, 600, k=2, tie=0.1))
        recovered += r.models == MODELS
    assert recovered >= 17  # 0.4 apart, 600 votes (10% ties): the exact order nearly always
    r = fit(simulate(rng, 400, k=3))
    assert kendall_tau({m: -i for i, m in enumerate(MODELS)}, r.theta) >= 0.8
    ranked = fit([dict(v, choice="rank", positions=[0, 1, 2]) for v in simulate(rng, 1, k=3)])  # rank votes fit
    assert len(ranked.models) == 3


@pytest.mark.parametrize("k", [2, 4])
def test_intervals_cover_the_truth_at_about_95_percent(k):
    rng = np.random.default_rng(k)
    hits = total = 0
    centred = TRUTH - TRUTH.mean()
    for _ in range(100):
        r = fit(simulate(rng, 120, k=k))
        for i, m in enumerate(MODELS):
            total += 1
            hits += r.lo[m] <= centred[i] <= r.hi[m]
    assert 0.91 <= hits / total <= 0.99, hits / total


def test_bootstrap_intervals_are_close_to_analytic():
    rng = np.random.default_rng(3)
    votes = simulate(rng, 300)
    a, b = fit(votes), fit(votes, intervals="bootstrap", boot=100)
    for m in MODELS:
        wa, wb = a.hi[m] - a.lo[m], b.hi[m] - b.lo[m]
        assert 0.6 < wb / wa < 1.5


def test_planted_position_bias_is_detected_and_none_is_not_invented():
    rng = np.random.default_rng(5)
    biased = position_bias(simulate(rng, 400, left_boost=0.8))
    assert biased.biased and biased.share > 0.6 and biased.p < 1e-4
    assert "favoured" in biased.text()
    fair = position_bias(simulate(rng, 400))
    assert not fair.biased
    three = position_bias(simulate(rng, 300, k=3, left_boost=1.0) + simulate(rng, 300, k=2, left_boost=1.0))
    assert three.biased  # mixed K: the normal approximation against 1/K


def test_hand_computed_pairwise_agreement_and_tau():
    recs = [{"job_id": j, "status": "ok", "model": m, "video": f"clips/{j}.mp4", "scores": {"s": s}}
            for j, m, s in [("a", "A", 0.9), ("b", "B", 0.5), ("c", "C", 0.5), ("d", "A", 0.1), ("e", "B", None)]]
    v = lambda clips, choice, pos: dict(vote_id=uuid.uuid4().hex, rater="r", case="x", seed=0, output=0, clips=clips,
                                         models=None, choice=choice, positions=pos, criterion="overall")
    votes = [v(["a", "b"], "best", [0]),        # a > b: 0.9 > 0.5 agrees
             v(["b", "c"], "best", [1]),        # c > b: 0.5 = 0.5 tie, excluded
             v(["d", "b", "c"], "best", [0]),   # d > b, d > c: 0.1 < 0.5 twice: disagree
             v(["a", "e"], "best", [1]),        # e has no value: missing
             v(["a", "b"], "tie", []),          # no pair
             v(["d", "a", "b"], "rank", [1, 2, 0])]  # a > b (agree), a > d (agree), b > d (agree)
    assert len(clip_pairs(votes)) == 1 + 1 + 2 + 1 + 3
    ag = score_agreement(votes, recs, "s", higher=True)
    assert (ag.agree, ag.disagree, ag.ties, ag.missing) == (4, 2, 1, 1)
    assert ag.rate == pytest.approx(4 / 6)
    lo, hi = wilson(4, 6)
    assert (lo, hi) == pytest.approx((0.3000, 0.9032), abs=1e-3)
    low = score_agreement(votes, recs, "s", higher=False)
    assert (low.agree, low.disagree) == (2, 4)
    # tau: judges A > B > C, score means A 0.5, B 0.5, C 0.5 -> all tied: undefined; a clear case:
    assert kendall_tau({"A": 3, "B": 2, "C": 1}, {"A": 1.0, "B": 0.0, "C": -1.0}) == pytest.approx(1.0)
    assert kendall_tau({"A": 3, "B": 1, "C": 2}, {"A": 1.0, "B": 0.0, "C": -1.0}) == pytest.approx(1 / 3)


def test_krippendorff_alpha_equals_the_hand_value():
    # two raters, four comparisons: answers x y x y and x y y y -> alpha = 1 - (2/8) / (30/56) = 8/15
    def v(rater, unit, pick):
        clips = [f"u{unit}x", f"u{unit}y"]
        return dict(vote_id=uuid.uuid4().hex, rater=rater, case=f"c{unit}", seed=0, output=0, clips=clips,
                    models=["X", "Y"], choice="best", positions=[0 if pick == "x" else 1], criterion="overall")
    votes = [v("a", i, p) for i, p in enumerate("xyxy")] + [v("b", i, p) for i, p in enumerate("xyyy")]
    ra = rater_agreement(votes)
    assert ra.units == 4 and ra.raters == 2
    assert ra.alpha == pytest.approx(8 / 15, abs=1e-9)
    assert rater_agreement([votes[0]]).alpha is None


def test_intransitive_triple_and_votes_needed():
    def pair(a, b, n):
        return [dict(vote_id=uuid.uuid4().hex, rater="r", case="c", seed=0, output=0, clips=[a, b], models=[a, b],
                     choice="best", positions=[0], criterion="overall") for _ in range(n)]
    votes = pair("A", "B", 4) + pair("B", "C", 4) + pair("C", "A", 4)
    r = fit(votes)
    assert len(intransitive_triples(r)) == 1
    assert votes_needed(0.6) == math.ceil(1.959963984540054 ** 2 * 0.24 / 0.01)  # 93
    assert votes_needed(0.5) is None
    close = fit(pair("A", "B", 3) + [dict(v, positions=[1]) for v in pair("A", "B", 2)])
    lines = too_few_votes(close)
    assert lines and "needs >= " in lines[0] and "votes per pair to separate these two" in lines[0]


# --------------------------------------------------------------------------------------------------
# the votes file
# --------------------------------------------------------------------------------------------------
def _run(tmp_path: Path, name="run", jobs=("ja", "jb", "jc"), models=("A", "B", "C")) -> Path:
    run = tmp_path / name
    (run / "clips").mkdir(parents=True)
    with open(run / "results.jsonl", "w") as f:
        for j, m in zip(jobs, models):
            f.write(json.dumps({"job_id": j, "status": "ok", "model": m, "case": "c", "seed": 0,
                                "video": f"clips/{j}.mp4", "scores": {}}) + "\n")
    return run


def _vote(clips=("ja", "jb"), **kw):
    return js.make_vote(rater=kw.pop("rater", "ana"), case="c", seed=0, clips=list(clips),
                        choice=kw.pop("choice", "best"), positions=kw.pop("positions", [0]), **kw)


def test_append_read_and_torn_lines(tmp_path):
    run = _run(tmp_path)
    v = _vote()
    assert js.append_vote(run, v) is True
    assert js.append_vote(run, v) is False  # the same vote_id once
    with open(run / js.JUDGMENTS, "ab") as f:
        f.write(b'{"vote_id": "torn", "clips": ["ja"')  # a writer killed mid-line
    js.append_vote(run, _vote(("jb", "jc"), choice="tie", positions=[]))
    votes = js.read_votes(run)
    assert [x["choice"] for x in votes] == ["best", "tie"]
    lines = (run / js.JUDGMENTS).read_bytes().split(b"\n")
    assert lines[1].startswith(b'{"vote_id": "torn"') and lines[2].startswith(b'{"vote_id"')  # not glued


def _writer(run: str, rater: str, n: int) -> None:
    for i in range(n):
        js.append_vote(run, _vote(rater=rater, note=f"{rater} {i}"))


def test_two_raters_writing_at_once_lose_nothing(tmp_path):
    run = _run(tmp_path)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(run), r, 60)) for r in ("ana", "ben")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    votes = js.read_votes(run)
    assert len(votes) == 120
    assert sum(1 for line in (run / js.JUDGMENTS).read_text().splitlines() if line.strip()) == 120


def test_a_changed_clip_does_not_inherit_old_votes(tmp_path):
    run = _run(tmp_path)
    js.append_vote(run, _vote(("ja", "jb")))
    js.append_vote(run, _vote(("jb", "jc")))
    with open(run / "results.jsonl", "a") as f:  # model A's clip re-generated: a new job id in the same slot
        f.write(json.dumps({"job_id": "ja2", "status": "ok", "model": "A", "case": "c", "seed": 0,
                            "video": "clips/ja2.mp4", "scores": {}}) + "\n")
    from workbench.runset import current_records

    recs = current_records(run).records
    vs = js.run_votes(run, recs)
    assert len(vs.current) == 1 and len(vs.stale) == 1 and vs.current[0]["clips"] == ["jb", "jc"]
    assert summarize(vs, recs).stale == 1


def test_import_merges_refuses_bad_files_with_one_line(tmp_path):
    run, other = _run(tmp_path), _run(tmp_path, "other", jobs=("xa", "xb", "xc"))
    mine = [_vote(run="run"), _vote(("jb", "jc"), choice="rank", positions=[1, 0], run="run")]
    f = tmp_path / "votes.jsonl"
    f.write_text("".join(json.dumps(v) + "\n" for v in mine))
    res = js.import_votes(f, run)
    assert (res.added, res.duplicates) == (2, 0)
    res = js.import_votes(f, run)  # again: duplicates ignored
    assert (res.added, res.duplicates) == (0, 2)
    assert len(js.read_votes(run)) == 2
    with pytest.raises(js.JudgmentError) as e:  # another run's file
        js.import_votes(f, other)
    assert "none of its 2 votes names a clip of" in str(e.value) and "\n" not in str(e.value)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(mine[0]) + "\n" + json.dumps(mine[1])[:40] + "\n")  # a truncated line
    with pytest.raises(js.JudgmentError, match=r"bad.jsonl line 2: not a whole JSON object \(truncated\?\); "
                                                 r"download the votes again"):
        js.import_votes(bad, run)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({**mine[0], "positions": [5]}) + "\n")
    with pytest.raises(js.JudgmentError, match="line 1: 'positions' \\[5\\] do not fit 2 shown clips"):
        js.import_votes(wrong, run)
    gone = tmp_path / "gone.jsonl"  # one vote names a clip the run never made: left out, counted
    gone.write_text(json.dumps(_vote(("ja", "zz"))) + "\n" + json.dumps(_vote(("ja", "jc"))) + "\n")
    res = js.import_votes(gone, run)
    assert (res.added, res.foreign) == (1, 1) and "never made" in res.lines()[1]


def test_scheduler_balances_models_positions_and_prefers_uncertain_pairs():
    recs = [{"job_id": f"{m}-{c}", "status": "ok", "model": m, "case": f"c{c}", "seed": 0,
             "video": f"clips/{m}-{c}.mp4"} for m in ("A", "B", "C", "D") for c in range(6)]
    s = Scheduler(recs, k=2, seed=1)
    rows, shown, left = set(), {m: 0 for m in "ABCD"}, {m: 0 for m in "ABCD"}
    rng = np.random.default_rng(0)
    theta = {"A": 1.5, "B": 0.5, "C": 0.0, "D": -1.5}
    for i in range(48):
        c = s.next("ana")
        rows.add(c.case)
        for j, m in enumerate(c.models):
            shown[m] += 1
            left[m] += j == 0
        p = 1 / (1 + math.exp(theta[c.models[1]] - theta[c.models[0]]))
        s.add(js.check_vote(dict(vote_id=str(i), rater="ana", case=c.case, seed=c.seed, output=c.output,
                                 clips=list(c.clips), models=list(c.models), choice="best",
                                 positions=[0 if rng.random() < p else 1], criterion="overall")))
        if i == 5:
            assert len(rows) == 6  # every case once before any twice
    assert max(shown.values()) - min(shown.values()) <= 8
    assert all(abs(left[m] - shown[m] / 2) <= 2 for m in "ABCD")  # positions balanced per model
    # the close pair B-C gets more votes than the settled pair A-D
    r = s.ranking()
    assert r.pairs["B"]["C"] > r.pairs["A"]["D"]
    assert "48 judgments" in s.progress()


def test_a_suite_objective_is_checked_against_the_judges_like_a_score():
    from workbench.judging.agreement import metric_agreement
    from workbench.workflow.bestofn import Objective

    recs = [{"job_id": j, "status": "ok", "model": m, "video": f"clips/{j}.mp4",
             "scores": {"identity_similarity": idn, "warp_error": warp}}
            for j, m, idn, warp in [("a", "A", 0.9, 0.5), ("b", "B", 0.5, 0.1), ("c", "C", 0.2, 0.9)]]
    votes = [dict(vote_id=str(i), rater="r", case="x", seed=0, output=0, clips=list(c), models=None, choice="best",
                  positions=[0], criterion="overall") for i, c in enumerate([("a", "b"), ("b", "c"), ("a", "c")])]
    obj = Objective.parse({"identity_similarity": 1.0, "warp_error": 1.0})  # a: 0.4, b: 0.4, c: -0.7
    rows = {a.score: a for a in metric_agreement(votes, recs, objective=obj,
                                                 directions={"identity_similarity": True, "warp_error": False})}
    assert (rows["objective"].agree, rows["objective"].ties) == (2, 1)  # a = b on the objective: a tie
    assert (rows["identity_similarity"].agree, rows["warp_error"].agree) == (3, 2)  # warp: a>b disagrees
