"""scalesearch.decide.curves: the saturating accuracy-vs-cost fit recovers a known curve, extrapolates with an
interval that covers the truth and widens with distance, holds out the largest member, stays flat on
flat data and monotone always, and rejects bad input in one line."""

import json

import numpy as np
import pytest

from scalesearch.decide.curves import FORM, fit_curve, holdout, predict

A, B, P = 0.9, 0.5, 0.5


def truth(c: float) -> float:
    return A - B * c ** -P


def clean(costs=(1, 2, 4, 8, 16, 32)):
    return [{"name": f"B{i}", "cost": float(c), "accuracies": [truth(c)]} for i, c in enumerate(costs)]


# per-seed noise (sd 0.01, drawn once and written down so the test does not depend on a RNG stream)
NOISE = [[0.0035, 0.0082, 0.0033, -0.0130, 0.0091],
         [0.0045, -0.0054, 0.0058, 0.0036, 0.0029],
         [0.0003, 0.0055, -0.0074, -0.0016, -0.0048],
         [0.0060, 0.0004, -0.0029, -0.0078, -0.0026],
         [-0.0041, 0.0067, 0.0012, -0.0088, 0.0050]]


def noisy(n=4):
    """B0..B(n-1) (cost doubling per φ), 5 seeds each."""
    return [{"name": f"B{i}", "cost": 2.0 ** i, "accuracies": [truth(2.0 ** i) + e for e in NOISE[i]]}
            for i in range(n)]


def test_recovers_a_known_curve_and_extrapolates():
    fit = fit_curve(clean(), n_boot=50)
    assert fit["form"] == FORM
    assert fit["n_points"] == 6 and fit["params"]["C0"] == 1.0
    assert fit["params"]["A"] == pytest.approx(A, abs=1e-6)
    assert fit["params"]["B"] == pytest.approx(B, abs=1e-6)
    assert fit["params"]["p"] == pytest.approx(P, abs=1e-6)
    assert fit["rmse"] < 1e-8
    for r in predict(fit, [64, 128]):
        assert r["accuracy"] == pytest.approx(truth(r["cost"]), abs=1e-6)
    # costs in other units (C0 = smallest trained cost): same curve
    scaled = [{**p, "cost": p["cost"] * 3.9e8} for p in clean()]
    fit2 = fit_curve(scaled, n_boot=0)
    assert fit2["params"]["p"] == pytest.approx(P, abs=1e-6)
    assert predict(fit2, [64 * 3.9e8])[0]["accuracy"] == pytest.approx(truth(64), abs=1e-6)


def test_result_is_json_and_plain_python():
    fit = fit_curve(noisy(), n_boot=20)
    back = json.loads(json.dumps(fit))
    assert back["params"] == fit["params"]
    assert all(type(v) is float for v in fit["params"].values())
    assert type(fit["rmse"]) is float and type(fit["boot"]) is int and fit["boot"] == 20 and fit["residual_df"] == 1
    preds = predict(fit, [16, 32])
    json.dumps(preds)
    assert all(type(r[k]) is float for r in preds for k in ("cost", "accuracy", "low", "high"))


def test_interval_covers_the_truth_and_widens_farther_out():
    fit = fit_curve(noisy(), n_boot=200, seed=0)
    assert fit["noise_source"] == "pooled seed sd"
    assert fit["noise_sd"] == pytest.approx(0.0061, abs=5e-4)  # the pooled sd of NOISE
    assert fit["boot"] == 200
    preds = predict(fit, [16, 32, 64, 128])  # B4..B7
    widths = []
    for r in preds:
        assert r["low"] <= truth(r["cost"]) <= r["high"], r
        assert r["low"] <= r["accuracy"] <= r["high"]
        widths.append(r["high"] - r["low"])
    assert widths == sorted(widths) and widths[-1] > 1.5 * widths[0]
    # a lower level gives a narrower interval; the same seed the same interval
    narrow = predict(fit, [64], level=0.5)[0]
    assert narrow["high"] - narrow["low"] < widths[2]
    assert fit_curve(noisy(), n_boot=200, seed=0)["_boot_params"] == fit["_boot_params"]


def test_single_seed_members_use_noise_sd_or_residuals():
    pts = [{**p, "accuracies": p["accuracies"][:1]} for p in noisy()]
    given = fit_curve(pts, noise_sd=0.01, n_boot=100)
    assert given["noise_sd"] == 0.01 and given["noise_source"] == "given" and given["boot"] == 100
    # 4 single-seed members, no noise_sd: one residual degree of freedom → residual sd
    resid = fit_curve(pts, n_boot=50)
    assert resid["noise_source"] == "residual sd of the fit" and resid["boot"] == 50
    # 3 single-seed members: no residual degree of freedom, no noise estimate → no interval, said in note
    none = fit_curve(pts[:3], n_boot=50)
    assert none["noise_sd"] is None and none["boot"] == 0 and "no interval" in none["note"]
    assert "model-form" in none["note"]
    assert all(r["low"] is None and r["high"] is None for r in predict(none, [16, 32]))


def test_two_members_fit_with_documented_exponent():
    pts = [{"name": "B0", "cost": 1.0, "accuracies": [0.5, 0.52]}, {"name": "B1", "cost": 2.0, "accuracies": [0.6, 0.61]}]
    fit = fit_curve(pts, n_boot=50)
    assert fit["params"]["p"] == 0.5 and "not determined" in fit["note"]
    r = predict(fit, [1.0, 2.0, 4.0])
    assert r[0]["accuracy"] == pytest.approx(0.51) and r[1]["accuracy"] == pytest.approx(0.605)
    assert r[2]["accuracy"] > 0.605 and r[2]["low"] is not None


def test_holdout_on_clean_and_noisy_data():
    h = holdout(clean(), n_boot=50)
    assert h["held_out"] == "B5" and h["n_fit"] == 5 and h["residual_df"] == 2
    assert h["measured"] == pytest.approx(truth(32))
    assert abs(h["error"]) < 1e-6 and h["error"] == pytest.approx(h["predicted"] - h["measured"])
    hn = holdout(noisy(5), n_boot=200)
    assert hn["held_out"] == "B4" and hn["residual_df"] == 1 and isinstance(hn["inside"], bool)
    assert hn["low"] <= hn["predicted"] <= hn["high"]
    assert abs(hn["error"]) < 0.02
    json.dumps(hn)
    # holdout order does not depend on the order of the points
    assert holdout(list(reversed(clean())), n_boot=10)["held_out"] == "B5"


@pytest.mark.parametrize("n", [2, 3, 4])
def test_holdout_needs_a_residual_degree_of_freedom_in_its_fit(n):
    """Fitting 3 parameters to n - 1 <= 3 points matches them by construction: nothing to check, no interval."""
    h = holdout(noisy(n), n_boot=50)
    assert h["held_out"] is None and h["n_members"] == n
    assert "needs >= 5 trained members" in h["note"] and not {"low", "high", "inside"} & set(h)
    json.dumps(h)


def test_no_fit_quality_without_residual_df():
    for n, df in [(3, 0), (4, 1), (5, 2)]:
        fit = fit_curve(noisy(n), n_boot=0)
        assert fit["residual_df"] == df
        assert (fit["rmse"] is None) == (df == 0)
    assert "no residual degree of freedom" in fit_curve(noisy(3), n_boot=0)["note"]


def test_holdout_sees_a_drop_that_a_zero_df_fit_could_not():
    """B4 measured 0.06 below the curve of B0..B3: outside the held-out interval (seed sd 0.006)."""
    pts = noisy(5)
    pts[4] = {**pts[4], "accuracies": [a - 0.06 for a in pts[4]["accuracies"]]}
    h = holdout(pts, n_boot=300)
    assert h["inside"] is False and h["error"] == pytest.approx(0.06, abs=0.02)
    assert holdout(noisy(5), n_boot=300)["inside"] is True


def test_flat_curve_predicts_flat():
    flat = [{"name": f"B{i}", "cost": 2.0 ** i, "accuracies": [0.7]} for i in range(4)]
    fit = fit_curve(flat, noise_sd=0.01, n_boot=50)
    assert fit["params"]["B"] == pytest.approx(0.0, abs=1e-12)
    for r in predict(fit, [16, 128, 1e4]):
        assert r["accuracy"] == pytest.approx(0.7)
    noisy_flat = [{"name": f"B{i}", "cost": 2.0 ** i, "accuracies": [0.7 + e for e in NOISE[i]]} for i in range(4)]
    for r in predict(fit_curve(noisy_flat, n_boot=50), [16, 128]):
        assert r["accuracy"] == pytest.approx(0.7, abs=0.01)


def test_predictions_never_decrease_with_cost():
    rng = np.random.default_rng(7)
    costs = np.geomspace(1, 1e4, 40).tolist()
    for _ in range(25):  # random shapes, including falling ones
        pts = [{"name": f"B{i}", "cost": 2.0 ** i, "accuracies": rng.uniform(0.3, 0.95, size=2).tolist()}
               for i in range(4)]
        fit = fit_curve(pts, n_boot=20)
        assert fit["params"]["B"] >= 0 and fit["params"]["A"] <= 1 and fit["params"]["p"] > 0
        acc = [r["accuracy"] for r in predict(fit, costs)]
        assert all(b >= a - 1e-12 for a, b in zip(acc, acc[1:]))
        assert max(acc) <= 1.0


def test_ceiling_holds_for_steep_gains():
    # linear in log cost: an unconstrained fit would want a ceiling above 1
    pts = [{"name": f"B{i}", "cost": 2.0 ** i, "accuracies": [0.6 + 0.1 * i]} for i in range(4)]
    fit = fit_curve(pts, n_boot=0)
    assert fit["params"]["A"] <= 1.0
    assert all(r["accuracy"] <= 1.0 for r in predict(fit, [16, 1e6]))


@pytest.mark.parametrize("points,match", [
    ([], "at least 2 points"),
    ([{"name": "B0", "cost": 1.0, "accuracies": [0.5]}], "at least 2 points"),
    ([{"name": "B0", "cost": 0.0, "accuracies": [0.5]}, {"name": "B1", "cost": 2.0, "accuracies": [0.6]}], "cost of 'B0'"),
    ([{"name": "B0", "cost": -1, "accuracies": [0.5]}, {"name": "B1", "cost": 2.0, "accuracies": [0.6]}], "cost of 'B0'"),
    ([{"name": "B0", "cost": 1.0, "accuracies": []}, {"name": "B1", "cost": 2.0, "accuracies": [0.6]}], "accuracies of 'B0'"),
    ([{"name": "B0", "cost": 1.0, "accuracies": [77.1]}, {"name": "B1", "cost": 2.0, "accuracies": [0.6]}], r"\[0, 1\]"),
    ([{"name": "B0", "cost": 1.0, "accuracies": [0.5]}, {"name": "B1", "cost": 1.0, "accuracies": [0.6]}], "distinct costs"),
])
def test_bad_input(points, match):
    with pytest.raises(ValueError, match=match):
        fit_curve(points)
    if len(points) >= 3:
        with pytest.raises(ValueError, match=match):
            holdout(points)


def test_bad_arguments():
    fit = fit_curve(clean(), n_boot=0)
    with pytest.raises(ValueError, match="costs"):
        predict(fit, [0.0])
    with pytest.raises(ValueError, match="level"):
        predict(fit, [64], level=1.5)
    with pytest.raises(ValueError, match="noise_sd"):
        fit_curve(clean(), noise_sd=-0.1)
    with pytest.raises(ValueError, match="n_boot"):
        fit_curve(clean(), n_boot=-1)
    assert all(r["low"] is None for r in predict(fit, [64]))  # n_boot=0: no interval
