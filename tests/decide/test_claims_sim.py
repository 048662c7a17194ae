"""The verdict's printed claims hold at their level beyond normal noise (issue 35), by simulation against a known
truth under three noise models — normal, Student t(3) (heavy tails) and normal plus a seed effect shared by every
candidate — through the real ``verdict`` and ``confidence_set`` (the harness is benchmarks/claims_sim.py; its full
run, with more replicates, gives the figures in benchmarks/README.md).

* The seeds advice ("about N seeds per candidate would decide if the best led every other by 0.01") is too low —
  below the n at which the real confidence set holds only the best in 80 % of runs — in at most 20 % of runs, for
  k = 2, 5, 20 candidates and 3 or 8 seeds. Checked as: q = the largest value with at most 20 % of the advice
  below it; the real procedure's power at q seeds is ≥ 80 % (less a Monte-Carlo allowance of two standard
  errors), so N_true ≤ q. The former advice (one pre-chosen pair, the 80 % χ² bound) fails this under t(3) noise.
* No "worse" and no "P(best)" is printed when every candidate is equal (the old "worse at 95 % family-wise" was
  printed for some candidate in a third of the runs with k = 20); "decided" stays ≤ 5 % and the set still covers
  a better candidate in ≥ 95 % under the heavy-tailed and shared-seed noise.
Deterministic: numpy Generators with fixed seeds.
"""

import numpy as np
import pytest
from helpers import load_benchmark

sim = load_benchmark("claims_sim")
ADVICE_REPS, POWER_REPS = 150, 300


@pytest.mark.parametrize("kind", sim.NOISES)
@pytest.mark.parametrize("k", [2, 5, 20])
def test_the_seeds_advice_is_too_low_in_at_most_20_percent_of_runs(k, kind):
    for n in (3, 8):
        advice = sim.advised(k, n, kind, ADVICE_REPS, seed=1)
        assert len(advice) >= 0.8 * ADVICE_REPS, len(advice)  # it is printed (not decided, not "equal")
        q = sim.lowest_safe(advice)
        p = sim.power(k, q, kind, POWER_REPS, seed=2)
        assert p >= sim.POWER - 2 * np.sqrt(0.16 / POWER_REPS), (k, n, kind, q, p, np.median(advice))


@pytest.mark.parametrize("kind", sim.NOISES)
def test_equal_candidates_get_no_worse_no_p_best_and_no_decision(kind):
    for k, reps in ((2, 300), (5, 200), (20, 100)):
        r = sim.equal_claims(k, 3, kind, reps, seed=3)
        assert r["worse_printed"] == 0 and r["p_best_printed"] == 0, r
        assert r["decided"] <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / reps), r


@pytest.mark.parametrize("kind", ["t3", "shared"])
def test_the_set_covers_a_better_candidate_beyond_normal_noise(kind):
    for k, n in ((5, 3), (20, 3), (5, 8)):
        assert sim.coverage(k, n, kind, 300, seed=4) >= 0.95
