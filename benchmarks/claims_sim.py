"""Every printed claim of the verdict and the race, simulated against a known truth under three noise models.

Each training's accuracy is truth + noise, quantised to 1/400 (a 400-image validation set):

* ``normal`` — each candidate's own N(0, 0.02) per seed;
* ``t3`` — Student t with 3 degrees of freedom scaled to sd 0.02 (heavy tails: rare seeds far off);
* ``shared`` — own N(0, 0.02) plus a seed effect N(0, 0.01) shared by every candidate (a seed's data order).

The decision functions are called as the product calls them: the grid verdict through
``verdict(aggregate(rows), rows, ...)``, the race through ``race.race`` (the rows it asks for, look by look).
Measured (``--reps`` replicates per setting):

* all candidates equal (k = 2, 5, 20; 3 and 8 seeds): false "decided", some candidate outside the set (what the
  old wording called "worse at 95 % family-wise"), the runner-up and the paper's point outside the set, and
  whether any "worse" or "P(best)" is printed at all;
* one candidate better by 0.02: the set covers it; two candidates 0.005 apart: the regret bound's misses; two
  candidates exactly the TOST margin (0.01) apart: "probably equal" (false here); one better by 0.05 among 5
  with 8 seeds: the power to decide;
* the seeds advice ("about N seeds per candidate would decide if the best led every other by 0.01"): the truth is
  that case (one candidate 0.01 ahead of k − 1 equal rivals); the seeds truly needed, N_true, is the smallest n at
  which the real ``confidence_set`` holds only the best in ≥ 80 % of simulated runs with the true noise
  (bisection); "too low" = the printed N < N_true;
* the race (20 candidates, rungs 1 and 2, 3 → 8 seeds): the true best dropped, a wrong "decided", with
  search.delta = 0.01 a false "decided within δ", and with search.eta = 2.5 the best neither a contender nor paused.

Run: ``python benchmarks/claims_sim.py --reps 2000 --out benchmarks/results/claims_sim.json`` (about 10 min on
one core; the regret bound gets 4 × reps: two close candidates are its worst case, where its miss rate is about
its level); tests/decide/test_claims_sim.py runs the same functions with fewer replicates.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from functools import lru_cache

import numpy as np

from scalesearch.plan.race import RaceRule, race
from scalesearch.decide.results import aggregate
from scalesearch.decide.stats import confidence_set, regret_bound
from scalesearch.decide.verdict import verdict
from scalesearch.report.verdict import verdict_words

N_VAL = 400
SD, SHARED_SD = 0.02, 0.01
MARGIN = 0.01  # the verdict's default TOST margin: the lead the seeds advice plans for
BASE = 0.45
NOISES = ("normal", "t3", "shared")
POWER = 0.8


def noise(rng: np.random.Generator, kind: str, k: int, n: int) -> np.ndarray:
    """k × n per-seed noise of one of NOISES (columns are seeds: the shared effect is one per column)."""
    if kind == "t3":
        return rng.standard_t(3, (k, n)) * SD / math.sqrt(3.0)
    e = rng.normal(0.0, SD, (k, n))
    return e + rng.normal(0.0, SHARED_SD, n)[None, :] if kind == "shared" else e


def draw(rng: np.random.Generator, means, n: int, kind: str) -> np.ndarray:
    means = np.asarray(means, float)
    return np.round(np.clip(means[:, None] + noise(rng, kind, means.size, n), 0, 1) * N_VAL) / N_VAL


def table(acc: np.ndarray) -> list[dict]:
    """Rows like results.csv; candidate c0 is the paper's point (1.2, 1.1, 1.15)."""
    rows = []
    for i, per_seed in enumerate(acc):
        a, b, g = (1.2, 1.1, 1.15) if i == 0 else (1.0 + 0.05 * i, 1.0 + 0.01 * i, 1.1)
        rows += [{"candidate": f"c{i}", "seed": s, "accuracy": float(x), "status": "ok", "alpha": a, "beta": b,
                  "gamma": g, "cost_ratio": 2.0 + 0.01 * i, "cost": "macs"} for s, x in enumerate(per_seed)]
    return rows


def run_verdict(acc: np.ndarray) -> dict:
    """The verdict's facts with its words as ``text`` (what best.json's ``verdict`` prints)."""
    rows = table(acc)
    ranked = aggregate(rows)
    v = verdict(ranked, rows, "search", paper="c0", fid=None, chance=0.1, budget="2 epochs", val_n=N_VAL,
                base_resolution=32, margin=MARGIN)
    return {**v.to_dict(), "text": verdict_words(v, ranked).text}


def seeds_of(acc: np.ndarray) -> dict:
    return {f"c{i}": dict(enumerate(a)) for i, a in enumerate(acc)}


# ---------------------------------------------------------------- the grid verdict
def equal_claims(k: int, n: int, kind: str, reps: int, seed: int = 0) -> dict:
    """All k candidates equal: how often each claim (every one of them false here) is printed."""
    rng = np.random.default_rng([seed, k, n, NOISES.index(kind)])
    c = {"decided": 0, "any_outside": 0, "runner_up_outside": 0, "paper_outside": 0, "worse_printed": 0,
         "p_best_printed": 0}
    for _ in range(reps):
        v = run_verdict(draw(rng, np.full(k, BASE), n, kind))
        c["decided"] += v["decided"]
        c["any_outside"] += bool(v["excluded"])
        c["runner_up_outside"] += (v["vs_runner_up"] or {}).get("in_set") is False
        c["paper_outside"] += (v["vs_paper"] or {}).get("in_set") is False
        c["worse_printed"] += "worse" in v["text"]
        c["p_best_printed"] += "P(best)" in v["text"]
    return {key: val / reps for key, val in c.items()}


def coverage(k: int, n: int, kind: str, reps: int, d: float = 0.02, seed: int = 0) -> float:
    """P(the confidence set holds the true best c1, better than the others by ``d``)."""
    rng = np.random.default_rng([seed, k, n, NOISES.index(kind), 1])
    means = np.full(k, BASE)
    means[1] += d
    return float(np.mean([("c1" in confidence_set(seeds_of(draw(rng, means, n, kind)), N_VAL)["members"])
                          for _ in range(reps)]))


def regret_miss(kind: str, reps: int, means=(0.505, 0.5), n: int = 3, seed: int = 0) -> float:
    """P(the best's true lead over the pick > the printed regret bound)."""
    rng, means = np.random.default_rng([seed, NOISES.index(kind), 2]), np.asarray(means, float)
    miss = 0
    for _ in range(reps):
        acc = draw(rng, means, n, kind)
        pick = int(np.argmax(acc.mean(1)))
        b = regret_bound(seeds_of(acc), f"c{pick}", N_VAL)["bound"]
        miss += means.max() - means[pick] > b + 1e-12
    return miss / reps


def rates(k: int, n: int, kind: str, reps: int, lead: float, seed: int = 0) -> dict:
    """c1 better than the others by ``lead``: P(decided), P("probably equal" printed), P(the paper's c0 outside)."""
    rng = np.random.default_rng([seed, k, n, NOISES.index(kind), 6, int(1000 * lead)])
    means = np.full(k, BASE)
    means[1] += lead
    vs = [run_verdict(draw(rng, means, n, kind)) for _ in range(reps)]
    return {"decided": float(np.mean([v["decided"] for v in vs])),
            "equal": float(np.mean([bool(v["equivalent"]) for v in vs])),
            "paper_outside": float(np.mean([(v["vs_paper"] or {}).get("in_set") is False for v in vs]))}


# ---------------------------------------------------------------- the seeds advice
def lead_means(k: int) -> np.ndarray:
    """The case the advice plans for: c1 ahead of k − 1 equal rivals by MARGIN."""
    means = np.full(k, BASE)
    means[1] += MARGIN
    return means


def power(k: int, n: int, kind: str, reps: int, seed: int = 0) -> float:
    """P(the real confidence set holds only the leader) with n seeds in the lead case."""
    rng = np.random.default_rng([seed, k, n, NOISES.index(kind), 3])
    return float(np.mean([confidence_set(seeds_of(draw(rng, lead_means(k), n, kind)), N_VAL)["members"] == ["c1"]
                          for _ in range(reps)]))


@lru_cache(maxsize=None)
def n_true(k: int, kind: str, reps: int) -> int:
    """The smallest n with power ≥ 80 % (bisection over n; Monte-Carlo power with ``reps`` replicates)."""
    lo, hi = 2, 16
    while power(k, hi, kind, reps) < POWER:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(k, mid, kind, reps) >= POWER else (mid, hi)
    return hi


def advised(k: int, n: int, kind: str, reps: int, seed: int = 0) -> list[int]:
    """The seeds the verdict advises, over the runs (of ``reps``) in the lead case where it advises a number."""
    rng = np.random.default_rng([seed, k, n, NOISES.index(kind), 4])
    out = []
    for _ in range(reps):
        v = run_verdict(draw(rng, lead_means(k), n, kind))
        if v.get("seeds_needed") is not None:
            out.append(int(v["seeds_needed"]))
    return out


def lowest_safe(advice: list[int], share: float = 0.2) -> int:
    """The largest value q with P(advice < q) ≤ ``share``: the advice is too low in ≤ share of runs iff N_true ≤ q."""
    a = np.sort(np.asarray(advice))
    return int(a[int(math.floor(share * a.size))])


# ---------------------------------------------------------------- the race
RULE = RaceRule(rungs=(1.0, 2.0), n_seeds=3, max_seeds=8, seed_step=2)
RACE_TRUTH = np.r_[0.60, 0.595, 0.59, 0.585, 0.58, np.linspace(0.56, 0.45, 15)]


def race_claims(kind: str, reps: int, truth=RACE_TRUTH, delta: float | None = None, eta: float | None = None,
                seed: int = 0) -> dict:
    """Races against ``truth`` (top rung; the first rung 0.05 lower): P(true best dropped — not among the
    contenders nor, with ``eta``, the paused), P(wrong "decided"), and with ``delta`` (search.delta) P(stopped
    "within δ" while the leader is more than δ below the best)."""
    rng, k = np.random.default_rng([seed, NOISES.index(kind), 5, int(1000 * (delta or 0)), int(10 * (eta or 0))]), \
        len(truth)
    names, best = [f"c{i}" for i in range(k)], f"c{int(np.argmax(truth))}"
    rule = dataclasses.replace(RULE, delta=delta, eta=eta)
    dropped = wrong = false_within = 0
    for _ in range(reps):
        acc = [draw(rng, np.asarray(truth) - 0.05 * (1 - r), rule.max_seeds, kind) for r in range(2)]
        results = {}
        while (state := race(names, results, rule, lambda r, cont: rule.rungs[r], N_VAL)).todo:
            results.update({(c, r, s): float(acc[r][int(c[1:]), s]) for c, r, s in state.todo})
        dropped += best not in state.alive and best not in state.paused
        wrong += state.stop == "decided" and state.alive != [best]
        leader = state.looks[-1]["leader"]
        false_within += state.stop == "within_delta" and float(truth.max() - truth[int(leader[1:])]) > delta
    return {"dropped_best": dropped / reps, "wrong_decided": wrong / reps,
            "false_within": false_within / reps if delta else None}


# ---------------------------------------------------------------- main
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--power-reps", type=int, default=1000, help="replicates per Monte-Carlo power (N_true)")
    ap.add_argument("--out", default="benchmarks/results/claims_sim.json")
    args = ap.parse_args(argv)
    t0, out = time.time(), {"reps": args.reps, "power_reps": args.power_reps, "noises": NOISES,
                            "equal": [], "coverage": [], "regret": [], "advice": [], "race": []}
    for kind in NOISES:
        for k in (2, 5, 20):
            for n in (3, 8):
                out["equal"].append({"noise": kind, "k": k, "seeds": n, **equal_claims(k, n, kind, args.reps)})
                out["coverage"].append({"noise": kind, "k": k, "seeds": n,
                                        "covered": coverage(k, n, kind, args.reps)})
                adv, need = advised(k, n, kind, args.reps), n_true(k, kind, args.power_reps)
                out["advice"].append({"noise": kind, "k": k, "seeds": n, "n_true": need, "printed": len(adv),
                                      "too_low": float(np.mean(np.asarray(adv) < need)) if adv else None,
                                      "median": float(np.median(adv)) if adv else None})
                print(json.dumps(out["advice"][-1]), flush=True)
        out["regret"].append({"noise": kind, "reps": 4 * args.reps, "miss": regret_miss(kind, 4 * args.reps)})
        out.setdefault("tost_at_margin", []).extend(
            {"noise": kind, "seeds": n, **rates(2, n, kind, args.reps, MARGIN)} for n in (3, 8))
        out.setdefault("power", []).append({"noise": kind, "k": 5, "seeds": 8, "lead": 0.05,
                                            **rates(5, 8, kind, max(args.reps // 5, 200), 0.05)})
        for delta, eta in ((None, None), (0.01, None), (None, 2.5)):
            out["race"].append({"noise": kind, "delta": delta, "eta": eta,
                                **race_claims(kind, max(args.reps // 5, 100), delta=delta, eta=eta)})
    out["seconds"] = round(time.time() - t0, 1)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
