"""The model over shares (issue 36): realized shares as built, the fit, what it refuses to say, and its claims
against known truths (benchmarks/shares_sim.py, fewer replicates) and on the committed CIFAR-10 recording."""

import json

import numpy as np
import pytest

from helpers import load_benchmark
from scalesearch.scaling.scaler import Scaler
from scalesearch.decide.shares import DIMENSIONS, SharePoint, ShareModel, Shares, fit_share_model, realized_shares, run_share_model

SCALER = Scaler(base_resolution=40, num_classes=10)
sim = load_benchmark("shares_sim")


def test_the_baseline_has_no_shares_and_each_dimension_alone_buys_only_its_own():
    assert realized_shares(SCALER, 1.0, 1.0, 40) == Shares(0.0, 0.0, 0.0)
    deep = realized_shares(SCALER, 2.0, 1.0, 40)
    assert deep.depth > 0.9 and deep.width == 0 and deep.resolution == 0
    wide_hi = realized_shares(SCALER, 1.0, 1.2, 56)
    assert wide_hi.depth == 0 and wide_hi.width > 0 and wide_hi.resolution > 0
    assert sum(wide_hi.proportions) == pytest.approx(1.0)


def _points(effect_r: float, noise: float, seeds: int = 3, budgets=("search",), rng=None, shift=0.0):
    """The recording's 20 candidates (their realized proportions d, w, r) with the truth 0.6 + effect_r·r, each
    budget after the first 0.05 higher (and ``shift``·r steeper); the same seed noise at every budget."""
    rng = rng or np.random.default_rng(0)
    out = []
    for c in sim.candidates():
        d, w, r = c["p"]
        mu = 0.6 + effect_r * r
        e = rng.normal(0, noise, seeds)
        for k, b in enumerate(budgets):
            slope = shift * r * k
            out += [SharePoint(c["candidate"], c["p"], s, b, mu + slope + 0.05 * k + e[s]) for s in range(seeds)]
    return out


def test_a_line_in_the_resolution_share_is_recovered_with_its_interval():
    m = fit_share_model(_points(0.06, 0.01))
    by = {e.dimension: e for e in m.effects}
    assert m.status == "fitted" and m.matters and "resolution" in m.matters
    assert by["resolution"].low <= 0.06 <= by["resolution"].high  # effect_r = c_r when c_w = 0
    assert sum(e.estimate for e in m.effects) == pytest.approx(0, abs=1e-5)
    assert m.sentence.startswith("Compute pays most in resolution")
    assert m.df == 20 - 3 and m.n_candidates == 20


def test_a_flat_truth_says_it_does_not_know_in_one_sentence():
    m = fit_share_model(_points(0.0, 0.02, rng=np.random.default_rng(0)))  # (1 draw in 20 rejects: seed 3 does)
    assert m.status == "fitted" and not m.matters
    assert m.sentence.startswith("The accuracy does not depend on the shares at this budget"), m.sentence
    assert m.sentence.count(".") <= 3 and m.shares_p >= 0.04 and m.surface_p >= 0.01


def test_too_few_candidates_or_a_line_of_shares_fit_nothing():
    pts = [p for p in _points(0.06, 0.01) if p.candidate in {"a2-b1-g1", "a1.2-b1.1-g1.45"}]
    m = fit_share_model(pts)
    assert m.status == "not_estimable" and "needs 7 candidates and has 2" in m.sentence and not m.effects
    line = [p for p in _points(0.06, 0.01) if p.proportions[1] == 0.0]  # width share 0: depth ↔ resolution only
    assert fit_share_model(line).status == "not_estimable"
    with pytest.raises(ValueError, match="predicts nothing"):
        m.predict((0.3, 0.3, 0.4))


def test_a_races_rungs_are_one_candidate_each_not_two_points():
    """Rung 2 continues rung 1's training: the budgets are averaged per (candidate, seed), so the model has 20
    candidate means and 17 df — not 40 points (which would narrow the intervals with correlated copies)."""
    one = fit_share_model(_points(0.06, 0.01))
    two = fit_share_model(_points(0.06, 0.01, budgets=("rung 1", "rung 2")))
    assert two.df == one.df == 17 and two.n_trainings == 2 * one.n_trainings
    assert two.budget_shift_p is not None and two.budget_shift_p > 0.05
    widths = [e.high - e.low for e in two.effects], [e.high - e.low for e in one.effects]
    assert widths[0] == pytest.approx(widths[1], rel=1e-6)  # identical noise at both rungs: the same information


def test_slopes_that_shift_between_budgets_report_the_last_budgets_alone():
    m = fit_share_model(_points(0.0, 0.005, budgets=("rung 1", "rung 2"), shift=0.2))
    assert m.budget_shift_p < 0.05 and "last budget's (rung 2)" in m.sentence
    assert "resolution" in m.matters


def test_the_model_round_trips_through_best_json_and_predicts():
    m = fit_share_model(_points(0.06, 0.01))
    back = ShareModel.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m
    est, low, high = back.predict(sim.candidates()[0]["p"])
    assert low < est < high and abs(est - (0.6 + 0.06 * sim.candidates()[0]["p"][2])) < 0.02


def test_run_rows_feed_the_model_with_rungs_as_budgets_and_validation_last():
    rows = [{"candidate": c["candidate"], "alpha": c["alpha"], "beta": c["beta"], "resolution": c["resolution"],
             "seed": s, "rung": rung, "status": "ok", "accuracy": 0.5 + 0.06 * c["p"][2] + 0.01 * s + 0.1 * rung}
            for c in sim.candidates() for s in range(3) for rung in (2.0, 1.0)]
    val = [{**r, "rung": None, "accuracy": r["accuracy"] + 0.2} for r in rows[:6] if r["rung"] == 2.0]
    rows.append({**rows[0], "status": "error", "accuracy": None})
    m = run_share_model(rows, val, SCALER)
    assert m.budgets == ("rung 1", "rung 2", "validation") and m.n_trainings == 120 + len(val)


@pytest.mark.parametrize("truth", ["flat", "linear", "ridge"])
def test_simulated_intervals_hold_their_level_and_flat_truths_claim_nothing(truth):
    """300 replicates each (benchmarks/results/shares_sim.json has 1,000): every effect's 95 % interval covers
    its target in ≥ 91 % (95 % less 3 binomial sd), "some dimension matters" on the flat truth ≤ 8 % (5 % + 2.4
    sd), a "matters" with the wrong sign in ≤ 1.5 %."""
    for kind in ("normal", "t3"):
        s = sim.simulate(truth, kind, "race20x3", 300, seed=1)
        assert s["fitted"] == 300
        assert all(s["coverage"][d] >= 0.91 for d in DIMENSIONS), s
        assert s["wrong_sign_claims"] <= 0.015, s
        if truth == "flat":
            assert s["some_dimension_matters"] <= 0.08, s
        if truth == "linear":
            assert s["some_dimension_matters"] >= 0.8, s


def test_on_the_cifar_recording_resolution_matters_with_the_right_sign():
    """20 candidates × 3 seeds of the committed recording, both rungs: resolution matters, positive, in ≥ 80 % of
    seed subsets and negative in none."""
    r = sim.cifar_subsets(("1.0", "2.0"), 100)
    assert r["resolution_matters_positive"] >= 0.8 and r["resolution_matters_negative"] == 0, r


def test_a_run_with_enough_candidates_fits_the_model_and_carries_it_everywhere(tmp_path):
    """The product path: a grid run of 8 candidates × 2 seeds (tiny data) fits the model; best.json holds it,
    summary.md leads with its sentence and shows the effects, report.md has the section and the triangle."""
    from helpers import TINY, run_cli

    run = tmp_path / "run"
    args = [a for a in TINY if not a.startswith("report.enabled")]
    rc, out, err = run_cli("search_main", *args, "search.max_points=8", "report.enabled=true", f"hydra.run.dir={run}")
    assert rc == 0, err[-3000:]
    best = json.loads((run / "best.json").read_text())
    m = ShareModel.from_dict(best["shares"])
    assert m.status == "fitted" and m.n_candidates == 8 and m.df == 5 and len(m.points) == 8, m
    assert [e.dimension for e in m.effects] == list(DIMENSIONS) and all(e.low <= e.estimate <= e.high
                                                                         for e in m.effects)
    summary = (run / "summary.md").read_text()
    assert summary.splitlines()[2] == f"**How the compute splits:** {m.sentence}"
    assert "| resolution" in summary and summary.count(m.sentence) == 1  # the sentence once, then the table
    report = (run / "report.md").read_text()
    assert "## How the compute splits (model over shares)" in report and "plots/shares_triangle.png" in report
    assert (run / "plots" / "shares_triangle.png").read_bytes()[:4] == b"\x89PNG"
