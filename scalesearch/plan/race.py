"""The race: spend the trainings where the decision is made (``search.strategy=race``).

Every candidate starts with ``n_seeds`` seeds at the first rung (``rungs``: multiples of the proxy's epochs).
After each *look* the candidates outside the family-wise confidence set of the best
(:func:`scalesearch.decide.stats.confidence_set`) are dropped. Below the top rung each rung is looked at once and its
survivors move up (their trainings continue from the rung below: :func:`scalesearch.train.proxy.train_proxy`); at the
top rung the survivors get ``seed_step`` more seeds per look up to ``max_seeds``. It stops when one candidate is
left (``decided``); at a top-rung look where the leader is within ``delta`` of the best at the family-wise level
(:func:`scalesearch.decide.stats.regret_bound`: the indifference zone, ``within_delta``); after the last look
(``top_rung``); or when the next look would exceed ``budget`` epochs of training (``budget``).

``eta`` (successive halving of the contenders, a budget choice): after each look but the last, only the best
⌈n/η⌉ contenders by mean (at least 2) go on; the others are *paused* — not dropped: no test excluded them, so they
stay in the confidence set, the race cannot end "decided" (nor within δ) while any is paused, and a resume with
``eta`` null trains them on from where they stopped. The replay benchmark measures what it costs in regret.

Multiplicity: the looks are fixed in advance (:meth:`RaceRule.looks`), and every test of every look runs at
α/(L·(k − 1)) (Bonferroni over the L looks and the k − 1 comparisons of a candidate), so that "the best was never
dropped" and the final set hold together at ``level`` for the accuracy at the rung each test was made —
whatever the dependence between looks. A drop below the top rung trusts that ranking to hold at the top rung (the
fidelity across rungs is measured and printed beside the verdict; the replay benchmark measures both against a
known truth).

:func:`race` is a pure function of the trainings recorded so far: the live run calls it, trains what it asks for
and calls it again; a resumed or extended run replays the same decisions from its table and trains only what is
missing; the benchmark replays it on a recorded table. No Ray, no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

from ..decide.stats import MIN_SEEDS, confidence_set, regret_bound

__all__ = ["RaceRule", "RaceState", "race", "rung_epochs", "STOPS"]

STOPS = {"decided": "one candidate left: decided",
         "within_delta": "the leader is within search.delta of the best at the family-wise level: decided within δ",
         "top_rung": "the last look (the top rung at search.max_seeds) is done",
         "budget": "the next look would exceed search.budget",
         "none_ok": "no candidate has a training that finished ok",
         "one_left": "one contender left, the others dropped or paused (search.eta): not decided while candidates are "
                     "paused"}


@dataclasses.dataclass(frozen=True)
class RaceRule:
    """How a race looks: rung multipliers (ascending), first and most seeds, seeds added per look at the top rung,
    a budget in epochs of training (None: none), the family-wise level."""

    rungs: tuple[float, ...] = (1.0,)
    n_seeds: int = 3
    max_seeds: int = 8
    seed_step: int = 2
    budget: float | None = None
    level: float = 0.95
    pooled: bool = True  # the tests' sd: the seed noise pooled over the candidates (stats.confidence_set)
    drop: bool = True  # False: nothing is dropped (every candidate at every rung and seed: a replay table)
    delta: float | None = None  # the indifference zone: stop when the leader is within it of the best (None: off)
    eta: float | None = None  # successive halving of the contenders: the best ceil(n/eta) go on, the rest pause

    def __post_init__(self):
        r = tuple(float(x) for x in self.rungs)
        bad = [(f"search.rungs={list(self.rungs)}", bool(r) and all(x > 0 for x in r) and list(r) == sorted(set(r)),
                "a non-empty ascending list of positive multiples of proxy.epochs, e.g. [1, 2, 4]"),
               (f"search.n_seeds={self.n_seeds}", self.n_seeds >= MIN_SEEDS, f">= {MIN_SEEDS} for a race (a drop needs "
                f"{MIN_SEEDS} shared seeds)"),
               (f"search.max_seeds={self.max_seeds}", self.max_seeds >= self.n_seeds, ">= search.n_seeds"),
               (f"search.seed_step={self.seed_step}", self.seed_step >= 1, ">= 1"),
               (f"search.budget={self.budget}", self.budget is None or (self.budget > 0 and math.isfinite(self.budget)),
                "> 0 epochs of training, or null"),
               (f"search.delta={self.delta}", self.delta is None or (0 <= self.delta < 1),
                "an accuracy difference in [0, 1) not worth telling apart, e.g. 0.01, or null (off)"),
               (f"search.eta={self.eta}", self.eta is None or (self.eta > 1 and math.isfinite(self.eta)),
                "a reduction factor > 1 (2: the best half of the contenders go on after each look), or null (off)")]
        for what, ok, allowed in bad:
            if not ok:
                raise ValueError(f"{what}; allowed: {allowed}")
        object.__setattr__(self, "rungs", r)

    def looks(self) -> list[tuple[int, int]]:
        """(rung index, seeds) of every look, in order."""
        top, n = len(self.rungs) - 1, self.n_seeds
        out = [(r, n) for r in range(top)] + [(top, n)]
        while n < self.max_seeds:
            n = min(self.max_seeds, n + self.seed_step)
            out.append((top, n))
        return out


def rung_epochs(epochs: int, multiplier: float) -> int:
    """The training length of a rung: ceil(proxy.epochs × multiplier), at least 1."""
    return max(1, math.ceil(epochs * multiplier - 1e-9))


@dataclasses.dataclass
class RaceState:
    """Where a race stands: ``todo`` — the trainings (candidate, rung index, seed index) to run next (empty when it
    stopped); ``alive`` — the contenders; ``dropped`` — {candidate: how}; ``looks`` — what each look decided."""

    todo: list[tuple[str, int, int]]
    alive: list[str]
    dropped: dict
    looks: list[dict]
    spent: float
    stop: str | None = None
    next_cost: float | None = None  # what the look not taken would have cost (stop = budget)
    n_looks: int = 1
    paused: dict = dataclasses.field(default_factory=dict)  # {candidate: look, rung, seeds, mean} (search.eta)

    @property
    def rung(self) -> int:
        return self.looks[-1]["rung"] if self.looks else 0


Results = Mapping[tuple[str, int, int], float | None]  # (candidate, rung, seed index) -> accuracy; None: failed


def race(candidates: list[str], results: Results, rule: RaceRule, cost: Callable[[int, bool], float],
         n_val: int | None = None) -> RaceState:
    """Replay the race over ``results`` (the trainings recorded so far) and say what to train next.

    ``cost(rung, continued)``: epochs of training a job at ``rung`` takes (``continued``: from its own training at
    the rung below)."""
    plan = rule.looks()
    alive, dropped, looks, spent, paused = list(candidates), {}, [], 0.0, {}

    def state(todo, stop, next_cost=None):
        return RaceState(todo, alive, dropped, looks, spent if stop or not todo else spent + next_cost, stop,
                         next_cost if stop else None, len(plan), paused)

    for i, (r, n) in enumerate(plan):
        jobs = [(c, r, k) for c in alive for k in range(n)]
        todo = [j for j in jobs if j not in results]
        new_cost = sum(cost(r, (c, r - 1, k) in results) for c, r, k in todo)
        if todo and rule.budget is not None and spent + new_cost > rule.budget + 1e-9:
            return state([], "budget", new_cost)
        if todo:
            return state(todo, None, new_cost)
        spent += sum(cost(r, (c, r - 1, k) in results) for c, r, k in jobs if _first_use(c, r, k, looks))
        seeds = {c: {k: results[(c, r, k)] for k in range(n) if results[(c, r, k)] is not None} for c in alive}
        cs = confidence_set({c: v for c, v in seeds.items() if v}, n_val, rule.level, looks=len(plan),
                            pooled=rule.pooled)
        gone = [c for c in alive if (rule.drop and c in cs["excluded"]) or not seeds[c]]
        for c in gone:
            how = cs["excluded"].get(c) or {"by": None, "p": None}
            dropped[c] = {"look": i, "rung": r, "seeds": n, "by": how["by"], "p": how["p"],
                          "why": "outside the confidence set" if how["by"] else "no training finished ok"}
        alive[:] = [c for c in alive if c not in gone]
        bound = _leader_bound(seeds, alive, n_val, rule, len(plan)) if alive else None
        halt = _halve(seeds, alive, rule) if i < len(plan) - 1 else []
        paused.update({c: {"look": i, "rung": r, "seeds": n, "mean": _mean(seeds[c])} for c in halt})
        alive[:] = [c for c in alive if c not in halt]
        looks.append({"look": i, "rung": r, "seeds": n, "candidates": len(seeds), "dropped": gone,
                      "alive": list(alive), "paused": halt, "alpha_each": cs["alpha_each"], **(bound or {})})
        if not alive:
            return state([], "none_ok")
        if len(alive) == 1 and rule.drop:
            return state([], "one_left" if paused else "decided")
        if rule.delta is not None and r == len(rule.rungs) - 1 and bound and bound["bound"] is not None \
                and bound["bound"] <= rule.delta and not paused:
            return state([], "within_delta")
    return state([], "top_rung")


def _mean(v: dict) -> float:
    return sum(v.values()) / len(v)


def _halve(seeds: dict, alive: list[str], rule: RaceRule) -> list[str]:
    """The contenders ``rule.eta`` pauses after a look: all but the best ⌈n/η⌉ by mean (at least 2; ties: the
    candidates' order)."""
    if rule.eta is None or not rule.drop:
        return []
    keep = max(2, math.ceil(len(alive) / rule.eta - 1e-9))
    return sorted(alive, key=lambda c: -_mean(seeds[c]))[keep:]


def _leader_bound(seeds: dict, alive: list[str], n_val: int | None, rule: RaceRule, n_looks: int) -> dict:
    """The leader among ``alive`` (best mean) and how much better than it the best of this look's candidates can
    be (:func:`scalesearch.decide.stats.regret_bound` over the same candidates, tests and level as the look's set)."""
    have = {c: v for c, v in seeds.items() if v}
    leader = max(alive, key=lambda c: _mean(have[c]))
    b = regret_bound(have, leader, n_val, rule.level, n_looks, rule.pooled)
    return {"leader": leader, "bound": b["bound"], "bound_vs": b["vs"]}


def _first_use(c: str, r: int, k: int, looks: list[dict]) -> bool:
    """Whether the training (c, r, k) is counted for the first time at this look (an earlier look at the same rung
    used the seeds below its count)."""
    return not any(lk["rung"] == r and k < lk["seeds"] and c in lk["alive"] + lk["dropped"] + lk.get("paused", [])
                   for lk in looks)


def story(state: RaceState, rule: RaceRule, lengths: list[int], unit: str, n_candidates: int) -> str:
    """The race in one paragraph: the looks, the drops, why it stopped, what it spent against a uniform grid at the
    top rung with max_seeds seeds, and what the rest of the budget would buy."""
    looks = "; ".join(f"look {lk['look'] + 1} at {lengths[lk['rung']]} {unit} × {lk['seeds']} seeds: "
                      f"{lk['candidates']} in, {len(lk['dropped'])} dropped"
                      + (f", {len(lk['paused'])} paused" if lk.get("paused") else "")
                      for lk in state.looks) or "no look finished"
    uniform = n_candidates * rule.max_seeds * lengths[-1]
    spent = (f"It spent {state.spent:g} {unit} of training, {100 * state.spent / uniform:.0f} % of a uniform grid's "
             f"{uniform:g} ({n_candidates} candidates × {rule.max_seeds} seeds × {lengths[-1]} {unit})")
    if rule.budget is not None:
        left = rule.budget - state.spent
        spent += f"; search.budget={rule.budget:g} {unit}, {left:g} left"
        if state.stop == "budget":
            spent += (f": the next look ({len(state.alive)} contenders) would cost {state.next_cost:g} {unit} — "
                      f"search.budget={state.spent + state.next_cost:g} buys it")
    halving = (f"; search.eta={rule.eta:g}: after each look but the last only the best 1/{rule.eta:g} of the "
               "contenders (at least 2) go on, the others pause — a budget choice: untested, not excluded"
               if rule.eta is not None else "")
    return (f"The race over {n_candidates} candidates (rungs {', '.join(f'{x:g}' for x in lengths)} {unit}, "
            f"{rule.n_seeds} → {rule.max_seeds} seeds; every drop at its look's family-wise level{halving}): {looks}. "
            f"Stopped: {STOPS[state.stop]}, {len(state.alive)} left. {spent}. A drop below the top rung trusts the "
            "shorter training's ranking (the fidelity across rungs below says how far).")
