"""How sure the answer is: proxy fidelity, which stage decides, and the verdict's facts (no words).

* :func:`fidelity` — the proxy's agreement with the longer validation training over the validated candidates:
  Kendall τ-b and Spearman ρ of the means (only over ≥ 5 candidates) with scipy's p-values and 95 % percentile
  bootstrap intervals that resample the seeds within each candidate in both stages; top-1 regret and top-k overlap.
* :func:`decide` — the validated ranking decides when the validation stage ran; else the search's.
* :func:`verdict` — built around the 95 % family-wise confidence set of the best
  (:func:`scalesearch.decide.stats.confidence_set`): "decided" only when it holds one candidate; the runner-up and the
  paper's point are compared inside that frame (Bonferroni-adjusted paired t bounds); when undecided, how much better
  than the pick the best can be (the regret bound), and either "probably equal" (TOST) or how many seeds would
  decide, planned for the least favourable lead of the margin with a heavy-tail-proof upper bound of the noise.

Pure functions of the tables' rows (no Ray, no torch), returning facts only: the verdict's words (best.json's
``verdict`` and ``headline``, summary.md, the console) are :mod:`scalesearch.report.verdict`'s.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .ranks import rank_agreement
from .results import aggregate, per_seed
from .stats import (ADVICE_POWER, MIN_SEEDS, confidence_set, noise_sd_bound, paired_difference, regret_bound,
                    seeds_to_decide, tost)

__all__ = ["Verdict", "fidelity", "decide", "verdict", "pooled_sd", "MIN_FIDELITY", "ADVICE_CHECKED"]

MIN_FIDELITY = 5  # candidates a rank correlation needs to be printed at all


def pooled_sd(ranked: list[dict]) -> float | None:
    """The pooled seed standard deviation of the candidates with >= 2 seeds (the proxy's noise)."""
    ss, dof = 0.0, 0
    for c in ranked:
        a = c["accuracies"]
        if len(a) >= 2:
            m = sum(a) / len(a)
            ss += sum((x - m) ** 2 for x in a)
            dof += len(a) - 1
    return math.sqrt(ss / dof) if dof else None


def _num(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def fidelity(proxy_ranked: list[dict], validation_rows: list[dict], top_k: int = 1) -> dict:
    """Agreement of the proxy ranking with the validation ranking over the validated candidates.

    τ/ρ (:func:`scalesearch.decide.ranks.rank_agreement`) only over ≥ MIN_FIDELITY (5) candidates — below that they
    are None with a note; top-1 regret (validation accuracy lost by trusting the proxy's pick, a point
    estimate), top-k overlap and the picks over ≥ 2."""
    val = {c["candidate"]: c for c in aggregate(validation_rows)}
    proxy = {c["candidate"]: c for c in proxy_ranked}
    common = [k for k in proxy if k in val]
    out = {"n_candidates": len(common), "candidates": common,
           "proxy_means": [_num(proxy[k]["accuracy_mean"]) for k in common],
           "validation_means": [_num(val[k]["accuracy_mean"]) for k in common],
           "kendall_tau": None, "spearman_rho": None, "tau_p": None,
           "rho_p": None, "method": None, "top1_regret": None, "topk_overlap": None, "proxy_pick": None,
           "validation_pick": None, "k": None,
           "note": f"fidelity not measurable over {len(common)} candidates: needs ≥ {MIN_FIDELITY} "
                   "(validate.top_k + validate.random_k ≥ 5)"}
    if len(common) >= 2:
        out.update(_picks(proxy, val, common, top_k))
    if len(common) < MIN_FIDELITY:
        return out
    r = rank_agreement([proxy[k]["accuracies"] for k in common], [val[k]["accuracies"] for k in common])
    return {**out, "kendall_tau": _num(r["tau"]), "spearman_rho": _num(r["rho"]), "tau_p": _num(r["tau_p"]),
            "rho_p": _num(r["rho_p"]), "method": r["method"], "note": ""}


def _picks(proxy: dict, val: dict, common: list, top_k: int) -> dict:
    """The proxy's and the validation's pick, the top-1 regret and the top-k overlap."""
    proxy_pick = max(common, key=lambda k: proxy[k]["accuracy_mean"])
    val_pick = max(common, key=lambda k: val[k]["accuracy_mean"])
    k = min(top_k, len(common))
    top_p = set(sorted(common, key=lambda c: -proxy[c]["accuracy_mean"])[:k])
    top_v = set(sorted(common, key=lambda c: -val[c]["accuracy_mean"])[:k])
    return {"proxy_pick": proxy_pick, "validation_pick": val_pick, "k": k,
            "top1_regret": _num(val[val_pick]["accuracy_mean"] - val[proxy_pick]["accuracy_mean"]),
            "topk_overlap": _num(len(top_p & top_v) / k)}


def decide(search_ranked: list[dict], validation_ranked: list[dict] | None) -> tuple[dict, str]:
    """(the recommended candidate, the stage that decided): the validation's best when it ran."""
    if validation_ranked:
        return validation_ranked[0], "validation"
    return search_ranked[0], "search"


@dataclass(frozen=True)
class Verdict:
    """The verdict's facts (:func:`verdict`), no words: best.json's verdict keys and what report/verdict's words need.

    The set: ``confidence_set`` (its members, the paused ones included), ``decided`` (it holds only ``best``),
    ``excluded`` ({candidate: the test that excluded it}), ``method``, ``level``, ``k`` (candidates compared),
    ``alpha_each`` (each test's level), ``looks`` and ``pooled`` (a race's Bonferroni over looks, pooled noise),
    ``paused`` (a race's untested candidates), ``set_note``. The comparisons: ``vs_runner_up`` and ``vs_paper``
    (paired differences with their bounds at ``alpha_each``; None where there is none), ``regret_bound`` (how much
    better than ``best`` the best can be, at ``level``; None when decided) and ``decided_within`` (a race stopped within
    search.delta). What to run next, when undecided: ``advice`` ("more_seeds", "equivalent" with ``tost_p``, "seeds"
    with ``seeds_needed`` and the noise bound ``noise_sd_upper`` at ``noise_level``, or None). The inputs the words
    repeat: ``decided_by``, ``budget``, ``proxy_budget``, ``chance``, ``val_n``, ``half_width``, ``base_resolution``,
    ``constraint``, ``paper``, ``paper_searched``, ``fidelity``, ``race``, ``margin``."""
    best: str
    decided_by: str
    budget: str
    chance: float
    confidence_set: list
    decided: bool
    method: str
    level: float
    excluded: dict
    k: int
    alpha_each: float
    looks: int
    pooled: bool
    paused: list
    set_note: str
    vs_runner_up: dict | None
    vs_paper: dict | None
    regret_bound: float | None = None
    regret_bound_method: str | None = None
    decided_within: float | None = None
    advice: str | None = None
    equivalent: bool | None = None
    tost_p: float | None = None
    seeds_needed: int | None = None
    seeds_method: str | None = None
    noise_sd_upper: float | None = None
    noise_level: float | None = None
    race: dict | None = None
    fidelity: dict | None = None
    paper: str | None = None
    paper_searched: dict | None = None
    constraint: str = "nominal"
    proxy_budget: str | None = None
    base_resolution: int | None = None
    val_n: int | None = None
    half_width: float | None = None
    margin: float = 0.01

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _compare(seeds: dict, best: str, other: str, cs: dict, n_val: int | None) -> dict:
    """best − other, its interval at the set's per-comparison level, and whether ``other`` is outside the set."""
    d = paired_difference(seeds[best], seeds[other], level=1.0 - cs["alpha_each"], n_val=n_val,
                          pooled=cs.get("pooled_sd"))
    out = cs["excluded"].get(other)
    return {**d, "in_set": other not in cs["excluded"], "excluded_by": out["by"] if out else None,
            "distinguishable": None if d["n"] < MIN_SEEDS else other in cs["excluded"],
            "method": "Bonferroni paired t interval at 1 − α/(k−1); distinguishable = outside the confidence set"}


def verdict(ranked: list[dict], rows: list[dict], stage: str, *, paper: str | None, fid: dict | None,
            chance: float, budget: str, val_n: int | None = None, half_width: float | None = None,
            proxy_budget: str | None = None, constraint: str = "nominal", paper_searched: dict | None = None,
            base_resolution: int | None = None, level: float = 0.95, margin: float = 0.01,
            race: dict | None = None) -> Verdict:
    """The verdict's facts over the deciding stage's ``ranked`` candidates and ``rows``, around the ``level``
    family-wise confidence set of the best. ``paper``: the paper's candidate id in this stage (None: not in
    it); ``paper_searched``: the paper's entry in the search ranking (None: infeasible or not in the grid);
    ``val_n``: validation images (accuracy resolution 1/val_n); ``margin``: the TOST equivalence margin.
    ``race``: the race's last look ({"looks": L, "pooled": bool, "text": its story, "stop", "delta"}) — the set
    is that look's (Bonferroni over the race's L looks, pooled noise); stopped within δ (search.delta), it is
    "decided within δ" and advises nothing more; ``paused`` (search.eta): candidates no test excluded but the race
    stopped training — they stay in the set, so nothing is decided while any is paused.
    Returns the facts: :class:`Verdict`."""
    best, seeds = ranked[0], per_seed(rows)
    looks, pooled = (race["looks"], race["pooled"]) if race else (1, False)
    cs = confidence_set({c["candidate"]: seeds[c["candidate"]] for c in ranked}, val_n, level, looks=looks,
                        pooled=pooled)
    cs = _with_paused(cs, list((race or {}).get("paused") or []))
    facts = {"best": best["candidate"], "decided_by": stage, "budget": budget, "chance": chance,
             "confidence_set": cs["members"], "decided": cs["decided"], "method": cs["method"], "level": level,
             "excluded": cs["excluded"], "k": cs["k"], "alpha_each": cs["alpha_each"], "looks": cs.get("looks", 1),
             "pooled": bool(cs.get("pooled")), "paused": cs["paused"], "set_note": cs["note"], "race": race,
             "fidelity": fid, "paper": paper, "paper_searched": paper_searched, "constraint": constraint,
             "proxy_budget": proxy_budget, "base_resolution": base_resolution, "val_n": val_n, "half_width": half_width,
             "margin": margin}
    by_id = {c["candidate"]: c for c in ranked}
    facts["vs_runner_up"] = _runner_up(ranked, seeds, cs, val_n)
    facts["vs_paper"] = _paper(best["candidate"], by_id, seeds, cs, val_n, paper)
    facts.update(_regret(ranked, seeds, cs, val_n, race))
    if not (cs["decided"] or facts.get("decided_within")):
        facts.update(_advice(facts["vs_runner_up"], ranked, seeds, cs, val_n, margin, level))
    return Verdict(**facts)


def _with_paused(cs: dict, paused: list[str]) -> dict:
    """The set with the race's paused candidates in it (untested at the last look, so not excluded): not decided."""
    if not paused:
        return {**cs, "paused": []}
    return {**cs, "paused": paused, "members": cs["members"] + paused, "decided": False}


def _regret(ranked: list[dict], seeds: dict, cs: dict, n_val: int | None, race: dict | None) -> dict:
    """How much better than the recommendation the best of the candidates can be (stats.regret_bound, over the set's
    tests and level), and a race's "decided within δ" (search.delta) when that stopped it."""
    if cs["k"] < 2 or cs["decided"]:
        return {}
    looks, pooled = (race["looks"], race["pooled"]) if race else (1, False)
    b = regret_bound({c["candidate"]: seeds[c["candidate"]] for c in ranked}, ranked[0]["candidate"], n_val,
                     cs["level"], looks, pooled)
    if b["bound"] is None:
        return {}
    within = bool(race) and race.get("stop") == "within_delta"
    return {"regret_bound": round(b["bound"], 6), "regret_bound_method": b["method"],
            "decided_within": race["delta"] if within else None}


def _runner_up(ranked: list[dict], seeds: dict, cs: dict, n_val: int | None) -> dict | None:
    if len(ranked) < 2:
        return None
    ru = ranked[1]
    d = _compare(seeds, ranked[0]["candidate"], ru["candidate"], cs, n_val)
    return {**d, "runner_up": ru["candidate"], "cost_ratio": ru.get("cost_ratio")}


def _paper(best: str, by_id: dict, seeds: dict, cs: dict, n_val: int | None, paper: str | None) -> dict | None:
    """The paper's point inside the frame of the set (None: not in this stage)."""
    if paper is None:
        return None
    if paper == best:
        return {"n": 0, "mean": 0.0, "same": True, "in_set": True}
    d = _compare(seeds, best, paper, cs, n_val)
    return {**d, "same": False, "cost_ratio": by_id[paper].get("cost_ratio")}


# What the seeds advice was measured to do (benchmarks/claims_sim.py, 2,000 runs per setting;
# tests/decide/test_claims_sim.py keeps it ≤ 20 %): its words print it.
ADVICE_CHECKED = ("in simulation (k = 2, 5, 20 candidates; 3 and 8 seeds; normal, t(3) and shared-seed noise) it was "
                  "below the seeds actually needed in at most 12 % of runs")


def _advice(d: dict | None, ranked: list[dict], seeds: dict, cs: dict, n_val: int | None, margin: float,
            level: float) -> dict:
    """What to run next when undecided (``advice``): "more_seeds" (< MIN_SEEDS shared seeds with the runner-up ``d``);
    "equivalent" (TOST: the top two probably equal within ``margin``); or "seeds": the seeds per candidate that decide
    with 80 % power if the best led every rival by ``margin`` (stats.seeds_to_decide: the selected runner-up, the
    set's own α per test), planned with a heavy-tail-proof upper bound of the seed noise (stats.noise_sd_bound)."""
    if d is None:
        return {}
    if d["n"] < MIN_SEEDS:
        return {"advice": "more_seeds"}
    eq = tost(seeds[ranked[0]["candidate"]], seeds[ranked[1]["candidate"]], margin, level, n_val)
    out = {"equivalent": eq["equivalent"], "tost_p": eq["p_value"]}
    if eq["equivalent"]:
        return {**out, "advice": "equivalent"}
    noise = noise_sd_bound({c["candidate"]: seeds[c["candidate"]] for c in ranked})
    if noise["bound"] is None:
        return out
    sd_diff = max(math.sqrt(2.0) * noise["bound"], 1.0 / n_val if n_val else 0.0)
    n = seeds_to_decide(cs["k"], margin, sd_diff, cs["alpha_each"])
    return {**out, "seeds_needed": n, "noise_sd_upper": round(noise["bound"], 6), "noise_level": noise["level"],
            "advice": "seeds" if n is not None else None,
            "seeds_method": (f"{100 * ADVICE_POWER:g} % power for the confidence set to hold only the best when it "
                             f"leads all {cs['k'] - 1} rivals by {margin:g} at once; per-seed noise: {noise['method']}"
                             f" ({noise['bound']:.4f}, from {noise['sd']:.4f} over {noise['df']} df)")}
