"""How sure the answer is: proxy fidelity, which stage decides, and a verdict a person can act on.

* :func:`fidelity` — the proxy's agreement with the longer validation training over the validated candidates:
  Kendall τ-b and Spearman ρ of the means (only over ≥ 5 candidates) with scipy's p-values and 95 % percentile
  bootstrap intervals that resample the seeds within each candidate in both stages; top-1 regret and top-k overlap.
* :func:`decide` — the validated ranking decides when the validation stage ran; else the search's.
* :func:`verdict` — built around the 95 % family-wise confidence set of the best
  (:func:`scalesearch.decide.stats.confidence_set`): "decided" only when it holds one candidate; the runner-up and the
  paper's point are compared inside that frame (Bonferroni-adjusted paired t bounds); costs beside every
  comparison; when undecided, either "probably equal" (TOST) or how many seeds would decide, planned for the
  least favourable lead of the margin with a heavy-tail-proof upper bound of the noise (``ADVICE_CHECKED``).

Pure functions of the tables' rows (no Ray, no torch). ``summary.md`` around the verdict is
:mod:`scalesearch.report.summary`.
"""

from __future__ import annotations

import math

from .ranks import NO_RANK_INTERVAL, rank_agreement
from .results import aggregate, fmt_mean_ci, per_seed
from .stats import (ADVICE_POWER, MIN_SEEDS, confidence_set, noise_sd_bound, paired_difference, regret_bound,
                    seeds_to_decide, tost)

__all__ = ["fidelity", "decide", "verdict", "pooled_sd", "coeff_str", "paper_label", "more_seeds", "MIN_FIDELITY"]

MIN_FIDELITY = 5  # candidates a rank correlation needs to be printed at all
MAX_LISTED = 6  # confidence-set members named in the text


def coeff_str(c: dict) -> str:
    return f"α={c['alpha']:g}, β={c['beta']:g}, γ={c['gamma']:g}"


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


def paper_label(constraint: str) -> str:
    return ("the paper's α=1.2, β=1.1 (at equal measured cost: γ solved)" if constraint == "measured"
            else "the paper's point (1.2, 1.1, 1.15)")


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _cost(c: dict) -> str:
    """"cost 2.00× baseline (macs)", from the entry's measured ``cost_ratio`` and ``cost`` kind."""
    if c.get("cost_ratio") is None:
        return "cost not measured"
    return f"cost {c['cost_ratio']:.2f}× baseline" + (f" ({c['cost']})" if c.get("cost") else "")


def _bounds_text(d: dict, cs: dict) -> str:
    """best − other with its Bonferroni-adjusted paired t bounds, and how it was computed."""
    if d["n"] == 0:
        return "no seed in common"
    if d["low"] is None:
        return f"{d['mean']:+.3f} over 1 seed (no spread: no interval)"
    looks = cs.get("looks", 1)
    at = "α/(k−1)" if looks == 1 else f"α/({looks}·(k−1))"
    sd = "; sd: the pooled seed noise" if cs.get("pooled") else ""
    return (f"{d['mean']:+.3f} [{max(-1.0, d['low']):+.3f}, {min(1.0, d['high']):+.3f}] over {d['n']} paired seeds "
            f"(paired t interval at 1 − {at}, k = {cs['k']}: the set's per-test level{sd}; sd ≥ 1/n_val)")


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
            race: dict | None = None) -> dict:
    """The verdict over the deciding stage's ``ranked`` candidates and ``rows``, around the ``level``
    family-wise confidence set of the best. ``paper``: the paper's candidate id in this stage (None: not in
    it); ``paper_searched``: the paper's entry in the search ranking (None: infeasible or not in the grid);
    ``val_n``: validation images (accuracy resolution 1/val_n); ``margin``: the TOST equivalence margin.
    ``race``: the race's last look ({"looks": L, "pooled": bool, "text": its story, "stop", "delta"}) — the set
    is that look's (Bonferroni over the race's L looks, pooled noise), and the story follows the recommendation;
    stopped within δ (search.delta), the verdict says "decided within δ" and advises nothing more; ``paused``
    (search.eta): candidates no test excluded but the race stopped training — they stay in the set, so nothing is
    decided while any is paused.
    Returns the facts (best.json keys) and ``text``, one paragraph."""
    best, seeds = ranked[0], per_seed(rows)
    by_id = {c["candidate"]: c for c in ranked}
    looks, pooled = (race["looks"], race["pooled"]) if race else (1, False)
    cs = confidence_set({c["candidate"]: seeds[c["candidate"]] for c in ranked}, val_n, level, looks=looks,
                        pooled=pooled)
    cs = _with_paused(cs, list((race or {}).get("paused") or []))
    out = {"best": best["candidate"], "decided_by": stage, "budget": budget, "chance": chance,
           "confidence_set": cs["members"], "decided": cs["decided"], "method": cs["method"],
           "level": level, "excluded": cs["excluded"], "seeds_needed": None,
           "equivalent": None, "regret_bound": None, "decided_within": None}
    parts = [_head(best, len(ranked), stage, budget, proxy_budget, base_resolution), _set_text(cs, by_id, val_n)]
    parts += [race["text"]] if race else []
    parts += _regret_text(out, ranked, seeds, cs, val_n, race)
    parts += _runner_up(out, ranked, seeds, cs, val_n)
    parts += _paper(out, best, by_id, seeds, cs, val_n, paper, paper_searched, constraint, stage)
    parts += _fidelity_text(fid, best)
    if not (cs["decided"] or out.get("decided_within")):
        parts += _advice(out, ranked, seeds, cs, val_n, margin, level, longer="proxy.epochs, search.rungs" if race
                         else "proxy.epochs, validate.epochs_mult")
    if best["accuracy_mean"] is not None and best["accuracy_mean"] < chance + 0.05:
        parts.append(f"Warning: the best accuracy {best['accuracy_mean']:.3f} is barely above chance ({chance:.3f}): "
                     "this ranking is noise; raise proxy.epochs or the data.")
    if half_width is not None and half_width > 0.05:
        parts.append(f"Each accuracy is measured on {val_n} validation images: ±{half_width:.3f} (95 %) at best.")
    out["text"] = " ".join(p for p in parts if p)
    out["k"], out["headline"] = cs["k"], _headline(best, stage, out, cs)
    return out


_DECIDED_BY = {"validation": "the validation stage", "race": "the race's last look", "search": "the proxy search"}


def _decided_by(stage: str) -> str:
    return _DECIDED_BY.get(stage, f"the {stage} stage")


def more_seeds(n: int) -> str | None:
    """The first rule of what to run next: fewer than MIN_SEEDS shared seeds decide nothing."""
    if n >= MIN_SEEDS:
        return None
    return (f"**Next:** run at least {MIN_SEEDS} seeds (search.n_seeds={MIN_SEEDS}): decisions need ≥ {MIN_SEEDS} "
            "shared seeds.")


def _headline(best: dict, stage: str, out: dict, cs: dict) -> list[str]:
    """The verdict at a glance (summary.md's top, before the rankings): the pick, its accuracy and cost, and whether
    anything is decided — the methods, bounds and comparisons are in the full text (``out["text"]``)."""
    pick = (f"**Recommended: {coeff_str(best)}** — accuracy {fmt_mean_ci(best)}, {_cost(best)}, decided by "
            f"{_decided_by(stage)}.")
    bound = out.get("regret_bound")
    lead = f"; the best of them is at most {bound:.3f} better than this pick" if bound is not None else ""
    if cs["k"] < 2:
        state = "Only one candidate finished: there is nothing to compare it with."
    elif cs["decided"]:
        state = f"**Decided at {100 * cs['level']:g} % family-wise:** the confidence set of the best holds only it."
    elif out.get("decided_within") is not None:
        state = f"**Decided within δ = {out['decided_within']:g}** (search.delta){lead}."
    else:
        state = (f"**Not distinguishable at this budget:** {len(cs['members'])} of {cs['k']} candidates are in the "
                 f"{100 * cs['level']:g} % confidence set of the best{lead}.")
    return [pick, state]


def _with_paused(cs: dict, paused: list[str]) -> dict:
    """The set with the race's paused candidates in it (untested at the last look, so not excluded): not decided."""
    if not paused:
        return {**cs, "paused": []}
    return {**cs, "paused": paused, "members": cs["members"] + paused, "decided": False}


def _head(best: dict, k: int, stage: str, budget: str, proxy_budget: str | None, base: int | None) -> str:
    """The recommendation, its accuracy with the selection caveat, its cost, the stage, the meaning of γ."""
    caveat = (f" Its interval is a 95 % t interval as if it had been chosen in advance: it is the largest of {k} "
              "means, so it is optimistic (not shrunk).") if k > 1 and best.get("accuracy_low") is not None else ""
    why = {"validation": f" (the proxy ran {proxy_budget})", "race": " (its rungs replace the validation stage)",
           "search": " (no validation stage)"}.get(stage, "")
    text = (f"**Recommended: {coeff_str(best)}** — accuracy {fmt_mean_ci(best)}, {_cost(best)}, at {budget}, "
            f"decided by {_decided_by(stage)}{why}.{caveat}")
    if base:
        text += (f" Its γ = {best['gamma']:g} is the effective resolution multiplier (resolution/base per unit φ): "
                 f"specific to this base resolution of {base} px.")
    return text


def _member(c: dict) -> str:
    return f"{coeff_str(c)} ({c['accuracy_mean']:.3f}, {_cost(c)})"


def _set_text(cs: dict, by_id: dict, n_val: int | None) -> str:
    """The primary statement: the confidence set of the best, decided or not, with its method."""
    over = ("α/(k−1)" if cs.get("looks", 1) == 1
            else f"α/({cs['looks']}·(k−1)) over the race's {cs['looks']} looks")
    sd = ", with the seed noise pooled over the candidates (two-way residual sd)" if cs.get("pooled") else ""
    how = (f"two-sided paired t-tests over the shared seeds{sd}, Bonferroni {over} = {cs['alpha_each']:.4f} per "
           f"candidate (Holm's first step), sd floored at 1/n_val" + (f" = 1/{n_val}" if n_val else " (n_val unknown: "
           "no floor)") + "; the set holds the best with 95 % confidence, each exclusion is one such test")
    if cs["k"] < 2:
        return "Only one candidate finished: there is nothing to compare it with."
    if cs["decided"]:
        return (f"**Decided at {100 * cs['level']:g} % family-wise**: the confidence set of the best holds only it "
                f"({how}).")
    tested = [c for c in cs["members"] if c not in cs["paused"]]
    names = [_member(by_id[c]) for c in tested[:MAX_LISTED]]
    more = len(tested) - len(names)
    n = len(cs["paused"])
    paused = (f" It also holds the {n} candidate{'s' if n != 1 else ''} the race paused before its last look "
              "(search.eta: a budget choice, not a test — untested there, so not excluded): nothing is decided "
              f"while {'it is' if n == 1 else 'they are'} paused." if cs["paused"] else "")
    of = f"of the {cs['k']} candidates of the last look" if cs["paused"] else f"of {cs['k']} candidates"
    return (f"**Not distinguishable at this budget**: the {100 * cs['level']:g} % family-wise confidence set of the "
            f"best holds {len(tested)} {of} — " + "; ".join(names)
            + (f"; and {more} more" if more else "") + f" ({how})." + paused
            + (f" {_cap(cs['note'])}." if cs["note"] else ""))


def _regret_text(out: dict, ranked: list[dict], seeds: dict, cs: dict, n_val: int | None, race: dict | None) -> list:
    """How much better than the recommendation the best of the candidates can be (stats.regret_bound, over the set's
    tests and level), and a race's "decided within δ" (search.delta) when that stopped it."""
    if cs["k"] < 2 or cs["decided"]:
        return []
    looks, pooled = (race["looks"], race["pooled"]) if race else (1, False)
    b = regret_bound({c["candidate"]: seeds[c["candidate"]] for c in ranked}, ranked[0]["candidate"], n_val,
                     cs["level"], looks, pooled)
    if b["bound"] is None:
        return []
    within = bool(race) and race.get("stop") == "within_delta"
    out.update(regret_bound=round(b["bound"], 6), regret_bound_method=b["method"],
               decided_within=race["delta"] if within else None)
    head = f"**Decided within δ = {race['delta']:g}** (search.delta): " if within else ""
    n_all = (race or {}).get("candidates") or cs["k"]
    which = f"the {cs['k']}" if n_all == cs["k"] else \
        f"the {n_all} (the {n_all - cs['k']} not in the last look were dropped at the family-wise level)"
    paused = f" The {_n(len(cs['paused']), 'paused candidate')} not covered by this bound." if cs["paused"] else ""
    return [f"{head}{'t' if within else 'T'}he best of {which} is at most {b['bound']:.3f} better than the "
            f"recommendation ({b['method']}).{paused}"]


def _n(n: int, what: str) -> str:
    return f"{n} {what}" + (" is" if n == 1 else "s are")


def _runner_up(out: dict, ranked: list[dict], seeds: dict, cs: dict, n_val: int | None) -> list[str]:
    if len(ranked) < 2:
        out["vs_runner_up"] = None
        return []
    ru = ranked[1]
    d = _compare(seeds, ranked[0]["candidate"], ru["candidate"], cs, n_val)
    out["vs_runner_up"] = {**d, "runner_up": ru["candidate"], "cost_ratio": ru.get("cost_ratio")}
    where = ("outside the 95 % confidence set of the best" if not d["in_set"] else
             "inside the confidence set: not distinguishable")
    return [f"The runner-up ({coeff_str(ru)}, {_cost(ru)}): best − it = {_bounds_text(d, cs)} — {where}."]


def _paper(out, best, by_id, seeds, cs, n_val, paper, paper_searched, constraint, stage) -> list[str]:
    """The paper's point inside the frame of the set, or why it is not in this stage."""
    label = paper_label(constraint)
    if paper is None:
        out["vs_paper"] = None
        if paper_searched is not None and stage == "validation":
            return [f"{_cap(label)} was searched (proxy accuracy {fmt_mean_ci(paper_searched)}, "
                    f"{_cost(paper_searched)}) but not validated: no comparison at this budget."]
        return [f"{_cap(label)} was not evaluated (infeasible at this base resolution, or not in the grid)."]
    if paper == best["candidate"]:
        out["vs_paper"] = {"n": 0, "mean": 0.0, "same": True, "in_set": True}
        return [f"It is {label}."]
    pc = by_id[paper]
    d = _compare(seeds, best["candidate"], paper, cs, n_val)
    out["vs_paper"] = {**d, "same": False, "cost_ratio": pc.get("cost_ratio")}
    if d["in_set"]:
        word = "not distinguishable from it (inside the confidence set)"
    elif d["excluded_by"] == best["candidate"]:
        word = "the paper's point is outside the 95 % confidence set of the best (excluded by the recommendation)"
    else:
        word = (f"the paper's point is outside the 95 % confidence set of the best (excluded by "
                f"{coeff_str(by_id[d['excluded_by']])})")
    return [f"Against {label} ({coeff_str(pc)}, {_cost(pc)}): best − it = {_bounds_text(d, cs)} — {word}."]


def _fidelity_text(fid: dict | None, best: dict) -> list[str]:
    if fid is None:
        return ["Proxy fidelity was not measured (validate.enabled=false): a short proxy's ranking may not hold at "
                "longer training (Bello et al. 2021)."]
    parts = []
    if fid.get("proxy_pick"):
        regret = fid.get("top1_regret")
        parts.append("The proxy's own pick agrees." if fid["proxy_pick"] == best["candidate"] else
                     f"The proxy's own pick ({fid['proxy_pick']}) differs"
                     + (f": trusting it would lose {regret:.3f} accuracy at the longer budget (point estimate)"
                        if regret is not None else "") + ".")
    if fid.get("kendall_tau") is None:
        return parts + [_cap(fid.get("note") or "proxy fidelity not measurable") + "."]
    p = f"p = {fid['tau_p']:.2g} for τ = 0 (scipy kendalltau); " if fid.get("tau_p") is not None else ""
    across = (f" across rungs ({fid['rungs'][0]:g}× against {fid['rungs'][1]:g}× proxy.epochs)" if fid.get("rungs")
              else "")
    return parts + [f"Proxy fidelity{across} over {fid['n_candidates']} candidates: "
                    f"Kendall τ = {fid['kendall_tau']:+.2f} ({p}{NO_RANK_INTERVAL})."]


# What the seeds advice was measured to do (benchmarks/claims_sim.py, 2,000 runs per setting; tests/test_claims_sim.py
# keeps it ≤ 20 %): printed with it.
ADVICE_CHECKED = ("in simulation (k = 2, 5, 20 candidates; 3 and 8 seeds; normal, t(3) and shared-seed noise) it was "
                  "below the seeds actually needed in at most 12 % of runs")


def _advice(out, ranked, seeds, cs, n_val, margin, level, longer="proxy.epochs, validate.epochs_mult") -> list[str]:
    """What to run next when undecided: ≥ 3 seeds; or "probably equal" (TOST); or the seeds per candidate that
    decide with 80 % power if the best led every rival by ``margin`` (stats.seeds_to_decide: the selected
    runner-up, the set's own α per test), planned with a heavy-tail-proof upper bound of the seed noise
    (stats.noise_sd_bound)."""
    d = out.get("vs_runner_up")
    if d is None:
        return []
    if more := more_seeds(d["n"]):
        return [more]
    eq = tost(seeds[ranked[0]["candidate"]], seeds[ranked[1]["candidate"]], margin, level, n_val)
    out["equivalent"] = eq["equivalent"]
    if eq["equivalent"]:
        return [f"**Next:** the top two are probably equal at this budget (TOST, margin {margin:g}, {100 * level:g} %: "
                f"p = {eq['p_value']:.2g}); more seeds will not separate them — a longer budget ({longer}) "
                "might."]
    noise = noise_sd_bound({c["candidate"]: seeds[c["candidate"]] for c in ranked})
    if noise["bound"] is None:
        return []
    sd_diff = max(math.sqrt(2.0) * noise["bound"], 1.0 / n_val if n_val else 0.0)
    n = seeds_to_decide(cs["k"], margin, sd_diff, cs["alpha_each"])
    out.update(seeds_needed=n, noise_sd_upper=round(noise["bound"], 6),
               seeds_method=(f"{100 * ADVICE_POWER:g} % power for the confidence set to hold only the best when it "
                             f"leads all {cs['k'] - 1} rivals by {margin:g} at once; per-seed noise: {noise['method']}"
                             f" ({noise['bound']:.4f}, from {noise['sd']:.4f} over {noise['df']} df)"))
    if n is None:
        return []
    return [f"**Next:** about {n} seeds per candidate would decide (with {100 * ADVICE_POWER:g} % power) if the best "
            f"led every other candidate by {margin:g}; planned with a {100 * noise['level']:g} % upper bound of the "
            f"seed noise ({noise['bound']:.3f}) that allows for heavy tails — {ADVICE_CHECKED}. Or a longer budget "
            f"({longer})."]
