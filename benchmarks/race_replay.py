"""Replay search strategies on a recorded table of trainings, with no training (issue 22, item 5).

The table: every candidate × every rung × every seed (columns candidate, rung, seed, accuracy, status — a
results.csv of a race recorded with nothing dropped, or any table in that shape). Truth = each candidate's mean
over all seeds at the top rung. Each replicate shuffles the order of the seeds (the strategies see the seeds in
that order), then every strategy runs on the same order:

* ``uniform-N``: every candidate with N seeds at the top rung; pick = the best mean; decided = the 95 % confidence
  set (scalesearch.decide.stats.confidence_set) holds one candidate.
* ``race``: scalesearch.plan.race.race with the given rule (continued rungs: cost (1 − c)·ΔE + c·E, c = cooldown).
* ``race-δD``: the same race with ``search.delta=D`` (``--deltas``): it also stops at a top-rung look where the
  leader is within D of the best at 95 % family-wise; "within δ" counts how often it stopped so, "δ held" how often
  the table's truth agrees (the truth of the best − the truth of its pick ≤ D).
* ``race-ηE``: the same race with ``search.eta=E`` (``--etas``): after each look but the last only the best ⌈n/E⌉
  contenders go on, the others pause; its set = the last look's set ∪ the paused (untested, not excluded).
* ``sh``: successive halving on single trials (Ray ASHA's rule, synchronous): one seed per candidate, the top
  1/η move up each rung; pick = the best at the top rung.
* ``wilcoxon``: Optuna's WilcoxonPruner rule: candidates in turn, seeds one at a time at the top rung; after 2
  seeds a candidate is pruned when a one-sided Wilcoxon signed-rank test against the best finished candidate over
  the shared seeds gives p < 0.1; pick = the best finished mean.

Per strategy: epochs spent, P(pick = true best), expected regret (truth of the best − truth of the pick), coverage
of its set (the true best inside it, where the strategy has a set), P(decided), and for a δ-race P(within δ) and
P(δ held | within δ).

    python benchmarks/race_replay.py RUN/results.csv [--reps 500] [--deltas 0.02 0.03] [--etas 2 3] [--out OUT.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats as st

from scalesearch.plan.race import RaceRule, race
from scalesearch.decide.stats import confidence_set


def load(path, only_rungs=None) -> tuple[list[str], list[float], np.ndarray]:
    """(candidates, rungs, acc[candidate, rung, seed]) of a complete table (a missing or failed cell: refused);
    ``only_rungs``: keep these rungs only (a table recorded in part, replayed over the rungs it completed)."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "ok"
                and (only_rungs is None or float(r["rung"]) in only_rungs)]
    cands = sorted({r["candidate"] for r in rows})
    rungs = sorted({float(r["rung"]) for r in rows})
    seeds = sorted({int(r["seed"]) for r in rows})
    acc = np.full((len(cands), len(rungs), len(seeds)), np.nan)
    for r in rows:
        c, k = cands.index(r["candidate"]), rungs.index(float(r["rung"]))
        acc[c, k, seeds.index(int(r["seed"]))] = float(r["accuracy"])
    if np.isnan(acc).any():
        raise ValueError(f"{path}: {int(np.isnan(acc).sum())} (candidate, rung, seed) cells have no ok training; "
                         "allowed: a complete table")
    return cands, rungs, acc


def _outcome(pick: int, truth: np.ndarray, spent: float, members=None, decided=None, delta=None,
             within=None) -> dict:
    best = int(np.argmax(truth))
    regret = float(truth[best] - truth[pick])
    return {"epochs": spent, "correct": pick == best, "regret": regret,
            "covered": None if members is None else best in members, "decided": decided, "within": within,
            "held": None if not within else regret <= delta + 1e-12}


def uniform(acc: np.ndarray, n: int, lengths: list[float], truth, n_val) -> dict:
    top = acc[:, -1, :n]
    seeds = {i: dict(enumerate(top[i])) for i in range(len(top))}
    cs = confidence_set(seeds, n_val)
    return _outcome(int(np.argmax(top.mean(1))), truth, len(top) * n * lengths[-1], set(cs["members"]), cs["decided"])


def raced(acc: np.ndarray, rule: RaceRule, lengths: list[float], cooldown: float, truth, n_val) -> dict:
    names = list(range(acc.shape[0]))

    def cost(r, continued):
        if not continued or r == 0 or not cooldown:
            return lengths[r]
        return (1 - cooldown) * (lengths[r] - lengths[r - 1]) + cooldown * lengths[r]

    results = {}
    while (state := race(names, results, rule, cost, n_val)).todo:
        results.update({(c, r, k): float(acc[c, r, k]) for c, r, k in state.todo})
    last = state.looks[-1]
    means = {c: acc[c, last["rung"], :last["seeds"]].mean() for c in state.alive}
    return _outcome(max(means, key=means.get), truth, state.spent, set(state.alive) | set(state.paused),
                    state.stop == "decided",
                    rule.delta, None if rule.delta is None else state.stop == "within_delta")


def halving(acc: np.ndarray, seed: int, eta: int, lengths: list[float], cooldown: float, truth) -> dict:
    alive, spent, prev = list(range(acc.shape[0])), 0.0, 0.0
    for r, length in enumerate(lengths):
        spent += len(alive) * ((1 - cooldown) * (length - prev) + cooldown * length if r and cooldown else length)
        prev = length
        if r < len(lengths) - 1:
            keep = max(1, math.ceil(len(alive) / eta))
            alive = sorted(alive, key=lambda c: -acc[c, r, seed])[:keep]
    return _outcome(max(alive, key=lambda c: acc[c, -1, seed]), truth, spent)


def wilcoxon(acc: np.ndarray, n: int, lengths: list[float], truth, p_threshold: float = 0.1) -> dict:
    top, done, spent = acc[:, -1, :n], [], 0.0
    for c in range(len(top)):
        best = max(done, key=lambda d: top[d].mean()) if done else None
        pruned = False
        for k in range(n):
            spent += lengths[-1]
            if best is not None and k + 1 >= 2:
                diff = top[c, : k + 1] - top[best, : k + 1]
                if np.any(diff != 0) and st.wilcoxon(diff, alternative="less", zero_method="zsplit").pvalue < p_threshold:
                    pruned = True
                    break
        if not pruned:
            done.append(c)
    return _outcome(max(done, key=lambda d: top[d].mean()), truth, spent)


def replay(acc: np.ndarray, rungs: list[float], epochs: float, rule: RaceRule, reps: int, seed: int = 0,
           cooldown: float = 0.2, n_val: int | None = None, eta: int = 2, deltas=(), etas=()) -> dict:
    """Every strategy over ``reps`` shuffles of the seed order: {strategy: summary}."""
    lengths = [epochs * m for m in rungs]
    truth = acc[:, -1, :].mean(axis=1)
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict]] = {}
    n_seeds = acc.shape[2]
    for _ in range(reps):
        a = acc[:, :, rng.permutation(n_seeds)]
        for n in sorted({2, 3, n_seeds}):
            out.setdefault(f"uniform-{n}", []).append(uniform(a, n, lengths, truth, n_val))
        out.setdefault("race", []).append(raced(a, rule, lengths, cooldown, truth, n_val))
        for d in deltas:
            out.setdefault(f"race-δ{d:g}", []).append(raced(a, replace(rule, delta=d), lengths, cooldown, truth,
                                                             n_val))
        for e in etas:
            out.setdefault(f"race-η{e:g}", []).append(raced(a, replace(rule, eta=e), lengths, cooldown, truth, n_val))
        out.setdefault("sh", []).append(halving(a, 0, eta, lengths, cooldown, truth))
        out.setdefault("wilcoxon", []).append(wilcoxon(a, n_seeds, lengths, truth))
    return {k: summary(v) for k, v in out.items()}


def summary(outcomes: list[dict]) -> dict:
    def mean(key):
        vals = [o[key] for o in outcomes if o[key] is not None]
        return round(float(np.mean(vals)), 4) if vals else None

    return {"epochs": mean("epochs"), "p_correct": mean("correct"), "regret": mean("regret"),
            "coverage": mean("covered"), "p_decided": mean("decided"), "p_within": mean("within"),
            "p_held": mean("held"), "replicates": len(outcomes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table")
    ap.add_argument("--epochs", type=float, default=1.0, help="proxy.epochs of the recording (rung 1x)")
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--n-val", type=int, default=None)
    ap.add_argument("--cooldown", type=float, default=0.4, help="search.cooldown of the recording")
    ap.add_argument("--rungs", type=float, nargs="+", default=None, help="replay these rungs only")
    ap.add_argument("--deltas", type=float, nargs="*", default=[0.02, 0.03, 0.04],
                    help="also replay the race with these search.delta")
    ap.add_argument("--etas", type=float, nargs="*", default=[2, 2.5, 3],
                    help="also replay the race with these search.eta (successive halving of the contenders)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cands, rungs, acc = load(a.table, a.rungs)
    rule = RaceRule(rungs=tuple(rungs), n_seeds=3, max_seeds=acc.shape[2], seed_step=2)
    res = {"table": a.table, "candidates": len(cands), "rungs": rungs, "seeds": acc.shape[2],
           "cooldown": a.cooldown,
           "strategies": replay(acc, rungs, a.epochs, rule, a.reps, cooldown=a.cooldown, n_val=a.n_val,
                                deltas=a.deltas, etas=a.etas)}
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
