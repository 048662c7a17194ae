"""Simulation harness for the family pick and the held-out check (deterministic numpy rng, ~40 s on one core).

Members b0..b3 at MACs doubling each step, with known true gains per doubling against the threshold 0.01:
(+0.03, +0.02, +0.015) → the right pick is b3, (+0.03, +0.002, +0.001) → b1, all flat → b0. Per-seed accuracies
are the truth plus Gaussian noise, quantised to 1/400 (a 400-image validation set). The caller's ``noise_sd`` is
the search's pooled seed sd, simulated as an estimate with NOISE_DF degrees of freedom (σ·√(χ²/df)).

Asserted: a wrong *confident* pick (decided and not the right one) ≤ 5 % in every setting (Bonferroni over the
steps makes it ≤ 5 % by construction — the test can fail if the intervals are too narrow); with little noise
(sd 0.002, 3 seeds) the right pick is decided ≥ 80 % (fails if the intervals are too wide); the held-out check
gives no interval below 5 members and, with 5, one from a fit with ≥ 1 residual df.

Issue 35 (is a *decided* pick the right member?): four curve shapes acc = 0.80 − B·(2^i)^(−p) on b0..b4 (SHAPES,
right member b0, b2, b3, b3 on a steeper curve), normal / t(3) / shared-seed noise, 1, 3, 10 seeds, noise sd given
or not: P(right | decided) ≥ 95 % per shape × noise (with a binomial allowance), P(decided and wrong) ≤ 5 %, and
the old rule (no precision gate) fails the same check. ``benchmarks/family_pick_sim.py`` runs this harness at
2000 replicates per setting and writes benchmarks/results/family_pick_sim.json.
Run ``python tests/decide/test_family_sim.py`` to print the figures (old rule's pick distribution vs the new one's).
"""

import numpy as np
import pytest
import scipy.stats as st

from scalesearch.decide.curves import holdout
from scalesearch.report.family import curve_analysis, family_table, pick_cost_effective
from scalesearch.config import ReportConfig

THRESHOLD = 0.01
NOISE_DF = 20
QUANTUM = 1 / 400
SCENARIOS = {"b3": (0.03, 0.02, 0.015), "b1": (0.03, 0.002, 0.001), "b0": (0.0, 0.0, 0.0)}
REPS = 400


def family(gains, sd, n_seeds, rng, base=0.5):
    """Table entries (name, macs, accuracy, accuracies, status) of b0..bK with the given true gains per doubling."""
    truth = base + np.concatenate([[0.0], np.cumsum(gains)])
    out = []
    for i, t in enumerate(truth):
        accs = np.clip(np.round((t + rng.normal(0.0, sd, n_seeds)) / QUANTUM) * QUANTUM, 0.0, 1.0)
        out.append({"name": f"b{i}", "macs": 1e7 * 2**i, "accuracy": float(accs.mean()),
                    "accuracies": accs.tolist(), "status": "ok"})
    return out


def simulate(right, sd, n_seeds, reps=REPS, given_noise=True, seed=0):
    """Rates over ``reps`` families: old rule's pick distribution (the walk on the means), P(decided),
    P(decided and right), P(decided and wrong)."""
    rng = np.random.default_rng([seed, int(1e4 * sd), n_seeds, int(right[1:])])
    old, decided, right_conf, wrong_conf = {}, 0, 0, 0
    for _ in range(reps):
        pts = family(SCENARIOS[right], sd, n_seeds, rng)
        est = sd * np.sqrt(rng.chisquare(NOISE_DF) / NOISE_DF) if given_noise else None
        p = pick_cost_effective(pts, "marginal", THRESHOLD, est, NOISE_DF if given_noise else None)
        old[p["name"]] = old.get(p["name"], 0) + 1  # index/name: the old walk on the means
        assert p["range"][0] <= p["name"] <= p["range"][1], "the means' pick lies in the consistent range"
        decided += p["decided"]
        right_conf += p["decided"] and p["name"] == right
        wrong_conf += p["decided"] and p["name"] != right
    return {"old": {k: v / reps for k, v in sorted(old.items())}, "decided": decided / reps,
            "right_confident": right_conf / reps, "wrong_confident": wrong_conf / reps}


@pytest.mark.parametrize("right", sorted(SCENARIOS))
@pytest.mark.parametrize("n_seeds", [2, 3, 5])
@pytest.mark.parametrize("given_noise", [True, False])
def test_wrong_confident_pick_is_rare(right, n_seeds, given_noise):
    r = simulate(right, 0.02, n_seeds, given_noise=given_noise)
    assert r["wrong_confident"] <= 0.05, r


@pytest.mark.parametrize("right, n_seeds, at_least", [("b1", 3, 0.80), ("b0", 3, 0.80), ("b3", 5, 0.80),
                                                       ("b3", 3, 0.60)])
def test_little_noise_decides_the_right_pick(right, n_seeds, at_least):
    """sd 0.002: b1 and b0 are decided ≥ 80 % with 3 seeds. b3's last step (+0.015 vs 0.01) is only 2.9 standard
    errors above the threshold with 3 seeds (sd ≈ 0.0021 with quantisation): its one-sided 98.3 % bound clears the
    threshold ~74 % of the time (normal approximation), 5 seeds ~96 %."""
    r = simulate(right, 0.002, n_seeds)
    assert r["right_confident"] >= at_least, r
    assert r["wrong_confident"] <= 0.05, r


def test_old_rule_was_a_coin_toss_at_real_noise():
    """The motivating figure: at sd 0.02 with 2 seeds the walk on the means finds b3 less than half the time."""
    r = simulate("b3", 0.02, 2, given_noise=True)
    assert r["old"].get("b3", 0.0) < 0.5 and r["decided"] < 0.5, r


def test_open_pick_names_the_range_and_the_seeds_that_would_decide():
    rng = np.random.default_rng(3)
    p = pick_cost_effective(family(SCENARIOS["b3"], 0.02, 2, rng), "marginal", THRESHOLD, 0.02, NOISE_DF)
    assert not p["decided"] and p["range"][0] < p["range"][1]
    assert f"members {p['range'][0]}–{p['range'][1]} are consistent with the data" in p["reason"]
    assert isinstance(p["seeds_needed"], int) and p["seeds_needed"] > 2
    assert f"family.seeds={p['seeds_needed']}" in p["reason"], p["reason"]
    assert "Bonferroni over 3 step(s)" in p["method"] and "98.33 %" in p["method"]
    # more seeds, as planned, decide far more often than the 2 seeds did
    many = simulate("b3", 0.02, max(p["seeds_needed"], 20), reps=100)
    assert many["right_confident"] > simulate("b3", 0.02, 2, reps=100)["right_confident"] + 0.3, many


def members(n):
    return [{"name": f"b{i}", "phi": float(i), "depth_mult": 1.0, "width_mult": 1.0, "resolution": 32, "params": 1,
             "macs": 1e7 * 2**i, "activations": 1, "macs_ratio": 2.0**i, "ideal_ratio": 2.0**i} for i in range(n)]


@pytest.mark.parametrize("n_trained", [2, 3, 4, 5])
def test_holdout_never_gives_an_interval_from_a_zero_df_fit(n_trained):
    rng = np.random.default_rng(n_trained)
    truth = [0.9 - 0.5 * 2.0 ** (-0.5 * i) for i in range(n_trained)]
    pts = [{"name": f"b{i}", "cost": 1e7 * 2**i, "accuracies": (t + rng.normal(0, 0.01, 3)).tolist()}
           for i, t in enumerate(truth)]
    h = holdout(pts, n_boot=100)
    if n_trained < 5:
        assert h["held_out"] is None and "needs >= 5 trained members" in h["note"] and "low" not in h
    else:
        assert h["held_out"] == "b4" and h["residual_df"] == 1 and h["low"] < h["high"]
    rows = [{"family": "searched", "name": p["name"], "seed": s, "accuracy": a, "status": "ok"}
            for p in pts for s, a in enumerate(p["accuracies"])]
    a = curve_analysis(family_table(members(n_trained + 1), rows), 0.01, ReportConfig())
    assert (a["holdout"]["held_out"] is None) == (n_trained < 5)
    assert (a["fit"]["rmse"] is None) == (n_trained <= 3) and a["fit"]["residual_df"] == max(n_trained - 3, 0)


def holdout_rates(drop, reps=20, seed=0):
    """Fraction of 5-member families (3 seeds, sd 0.01) whose measured b4 lies inside the held-out interval
    when b4 falls ``drop`` below the curve (0: the form is right)."""
    rng = np.random.default_rng([seed, int(1000 * drop)])
    inside = 0
    for _ in range(reps):
        truth = [0.9 - 0.5 * 2.0 ** (-0.5 * i) - (drop if i == 4 else 0.0) for i in range(5)]
        pts = [{"name": f"b{i}", "cost": 2.0**i, "accuracies": np.clip(t + rng.normal(0, 0.01, 3), 0, 1).tolist()}
               for i, t in enumerate(truth)]
        inside += holdout(pts, noise_sd=0.01, n_boot=200)["inside"]
    return inside / reps


def test_holdout_flags_a_drop():
    assert holdout_rates(0.06) < holdout_rates(0.0)


# ---------------------------------------------------------------- issue 35: is a decided pick the right one?
# acc = CEILING − B·(2^i)^(−p) for members b0..b4 (MACs doubling): gain per doubling B·(1 − 2^−p)·2^(−p·i).
SHAPES = {"b0": (0.025, 0.5),         # gains .0073 .0052 .0037 .0026: right b0
          "b2": (0.06, 0.5),          # gains .0176 .0124 .0088 .0062: right b2
          "b3": (0.08, 0.5),          # gains .0234 .0166 .0117 .0083: right b3
          "b3-steep": (0.12, 1.0)}    # gains .0600 .0300 .0150 .0075: right b3
NOISES = ("normal", "t3", "shared")
CEILING, N_MEMBERS, SHARED_SD = 0.80, 5, 0.01
COND_REPS = 300


def shape_truth(shape):
    B, p = SHAPES[shape]
    return CEILING - B * (2.0 ** np.arange(N_MEMBERS)) ** (-p)


def right_member(shape):
    """The walk on the true gains: the first member whose next step gains < THRESHOLD per doubling, else the last."""
    gains = np.diff(shape_truth(shape))
    return next((i for i, g in enumerate(gains) if g < THRESHOLD), N_MEMBERS - 1)


def seed_noise(kind, sd, shape, rng):
    """Per-seed noise of sd ``sd``: normal; Student t(3) scaled to sd; or normal plus a seed effect (sd SHARED_SD)
    that every member trained with that seed shares (members share seeds, so step differences cancel it)."""
    if kind == "normal":
        return rng.normal(0.0, sd, shape)
    if kind == "t3":
        return rng.standard_t(3, shape) * sd / np.sqrt(3.0)
    return rng.normal(0.0, sd, shape) + rng.normal(0.0, SHARED_SD, (shape[0], 1, shape[2]))


def old_decision(steps):
    """The rule before issue 35 on the same bounds: "does not pay" = upper bound below the threshold, no
    precision gate; returns the decided member's index or None."""
    if not steps or steps[0]["low"] is None:
        return None
    lo = next((i for i, s in enumerate(steps) if s["low"] < THRESHOLD), len(steps))
    hi = next((i for i, s in enumerate(steps) if s["high"] < THRESHOLD), len(steps))
    return lo if lo == hi else None


def simulate_shape(shape, kind, sd, n_seeds, given_noise, reps=COND_REPS, seed=0):
    """Counts over ``reps`` families of the shape: decided / right / wrong for the rule and for the old rule. The
    search's noise sd, when given, is the seed sd it would pool (the shared seed effect and the quantisation
    included) as an estimate with NOISE_DF df; without it the members' own spread (none with one seed: never
    decided)."""
    rng = np.random.default_rng([seed, list(SHAPES).index(shape), NOISES.index(kind), int(1e4 * sd), n_seeds,
                                 int(given_noise)])
    acc = shape_truth(shape)[None, :, None] + seed_noise(kind, sd, (reps, N_MEMBERS, n_seeds), rng)
    acc = np.clip(np.round(acc / QUANTUM) * QUANTUM, 0.0, 1.0)
    pooled = np.sqrt(sd**2 + (SHARED_SD**2 if kind == "shared" else 0.0) + QUANTUM**2 / 12)  # as the search pools it
    est = pooled * np.sqrt(rng.chisquare(NOISE_DF, reps) / NOISE_DF)
    right, c = right_member(shape), dict.fromkeys(("decided", "right", "old_decided", "old_right"), 0)
    for r in range(reps):
        pts = [{"name": f"b{i}", "macs": 1e7 * 2**i, "accuracy": float(a.mean()), "accuracies": a.tolist()}
               for i, a in enumerate(acc[r])]
        p = pick_cost_effective(pts, "marginal", THRESHOLD, est[r] if given_noise else None,
                                NOISE_DF if given_noise else None)
        old = old_decision(p["steps"])
        c["decided"] += p["decided"]
        c["right"] += p["decided"] and p["index"] == right
        c["old_decided"] += old is not None
        c["old_right"] += old == right
    return {"reps": reps, **c, "wrong": c["decided"] - c["right"], "old_wrong": c["old_decided"] - c["old_right"]}


def settings(sd):
    """(n_seeds, given_noise) of a shape × noise cell: 1, 3, 10 seeds, noise sd given or the members' own."""
    return [(n, g) for n in ((1, 3, 10) if sd == 0.02 else (3, 10)) for g in (True, False)]


def too_many_wrong(wrong, decided, rate=0.95):
    """Whether ``wrong`` of ``decided`` is implausible if P(right | decided) were ``rate``: above the 99th
    percentile of Binomial(decided, 1 − rate) (0 decided: never)."""
    return decided > 0 and wrong > st.binom.ppf(0.99, decided, 1.0 - rate)


@pytest.mark.parametrize("sd", [0.02, 0.002])
@pytest.mark.parametrize("kind", NOISES)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_decided_pick_is_the_right_member(shape, kind, sd):
    """P(right | decided) ≥ 0.95 per shape × noise, pooled over the settings (seed sd 0.02: 1, 3, 10 seeds; 0.002:
    3, 10 seeds; noise sd given with 20 df or the members' own), COND_REPS replicates each. Monte-Carlo allowance:
    it fails when the wrong decided picks exceed the 99th percentile of Binomial(decided, 0.05), i.e. when a true
    rate of 95 % would give so many wrong ones less than 1 % of the time (a setting that decides nothing passes).
    And in every setting P(decided and wrong) ≤ 5 %. At seed sd 0.02 the rule decides nothing here (the steps are
    measured to ±0.02–0.09, wider than the threshold); the old rule fails this check there for the shapes whose
    right member is above b0 (test_the_old_rule_fails_the_check). Not asserted: seed sd 0.005–0.01, or 0.002 with
    one seed, where single settings got decided picks right in as few as 8 of 16 at 2000 replicates, though they
    decided in ≤ 3.4 % of their runs (benchmarks/README.md, "Family pick")."""
    runs = [simulate_shape(shape, kind, sd, n, g) for n, g in settings(sd)]
    decided, wrong = sum(r["decided"] for r in runs), sum(r["wrong"] for r in runs)
    assert not too_many_wrong(wrong, decided), (wrong, decided, runs)
    assert all(r["wrong"] <= 0.05 * r["reps"] for r in runs), runs
    if sd == 0.02:
        assert decided == 0, runs


@pytest.mark.parametrize("shape", ["b2", "b3", "b3-steep"])
def test_the_old_rule_fails_the_check(shape):
    """The conditional check has teeth: at seed sd 0.02 (normal noise, pooled over the same settings) the old rule
    (no precision gate) decides picks that are mostly wrong, and the check rejects it."""
    runs = [simulate_shape(shape, "normal", 0.02, n, g) for n, g in settings(0.02)]
    decided, wrong = sum(r["old_decided"] for r in runs), sum(r["old_wrong"] for r in runs)
    assert too_many_wrong(wrong, decided), (wrong, decided)


def test_the_reason_says_the_steps_are_too_coarse():
    """The issue's failure, on one family: b0 → b1 measured as a loss of 0.06 at seed sd 0.02 (1 seed): the old rule
    said "already b0, the first step clearly does not pay"; now it stays open and says why and how many seeds."""
    pts = curve_points([0.70, 0.64, 0.70, 0.72, 0.73])
    p = pick_cost_effective(pts, "marginal", THRESHOLD, 0.02, NOISE_DF)
    assert old_decision(p["steps"]) == 0 and not p["decided"] and p["range"] == ["b0", "b4"]
    assert "the steps are measured to ±0.0" in p["reason"] and "wider than the threshold 0.0100" in p["reason"]
    assert 30 <= p["seeds_needed"] <= 80 and f"family.seeds={p['seeds_needed']}" in p["reason"], p["reason"]
    assert "upper bound" in p["method"] and "not the chance that a decided pick is right" in p["method"]


def curve_points(accs):
    return [{"name": f"b{i}", "macs": 1e7 * 2**i, "accuracy": a, "accuracies": [a]} for i, a in enumerate(accs)]


if __name__ == "__main__":
    for sd, seeds in [(0.02, 1), (0.02, 2), (0.02, 3), (0.02, 5), (0.02, 10), (0.002, 3)]:
        for right in ("b3", "b1", "b0"):
            for given in (True, False):
                if seeds == 1 and not given:
                    continue
                r = simulate(right, sd, seeds, reps=2000, given_noise=given)
                print(f"sd {sd} seeds {seeds:2d} right {right} noise {'given' if given else 'own  '}: old rule "
                      f"{r['old']}; P(decided) {r['decided']:.3f}, right&decided {r['right_confident']:.3f}, "
                      f"wrong&decided {r['wrong_confident']:.3f}")
    print("holdout inside rate, drop 0:", holdout_rates(0.0, 100), "drop 0.06:", holdout_rates(0.06, 100))
