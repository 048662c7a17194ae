"""How sure the answer is: proxy fidelity, which stage decides, and a verdict a person can act on.

* :func:`fidelity` — the proxy's agreement with the longer validation training over the validated
  candidates: Kendall τ and Spearman ρ of the means with percentile-bootstrap 95 % intervals
  (resampling candidates), top-1 regret (validation accuracy lost by trusting the proxy's pick) and
  top-k overlap.
* :func:`decide` — the validated ranking decides when the validation stage ran; else the search's.
* :func:`verdict` — the recommendation, its paired difference to the runner-up and to the paper's point
  with t intervals over the shared seeds, whether they are distinguishable at this budget, the
  fidelity, and — when it cannot tell — how many seeds would separate the top two at the measured
  noise (:func:`scalesearch.stats.seeds_to_separate`).
* :func:`summary_markdown` — ``summary.md``: the verdict first, then the ranking.

Pure functions of the tables' rows (no Ray, no torch).
"""

from __future__ import annotations

import math

from .results import aggregate, fmt_mean_ci, per_seed
from .stats import bootstrap_ci, kendall_tau, paired_difference, seeds_to_separate, spearman_rho

__all__ = ["fidelity", "decide", "verdict", "summary_markdown", "pooled_sd", "coeff_str"]


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


def fidelity(proxy_ranked: list[dict], validation_rows: list[dict], top_k: int = 1, n_boot: int = 2000,
             seed: int = 0) -> dict:
    """Agreement of the proxy ranking with the validation ranking over the validated candidates."""
    val = {c["candidate"]: c for c in aggregate(validation_rows)}
    proxy = {c["candidate"]: c for c in proxy_ranked}
    common = [k for k in proxy if k in val]
    x = [proxy[k]["accuracy_mean"] for k in common]
    y = [val[k]["accuracy_mean"] for k in common]
    out = {"n_candidates": len(common), "candidates": common, "proxy_means": [_num(v) for v in x],
           "validation_means": [_num(v) for v in y]}
    if len(common) < 2:
        return {**out, "kendall_tau": None, "spearman_rho": None, "tau_ci": [None, None], "rho_ci": [None, None],
                "top1_regret": None, "topk_overlap": None,
                "note": "fewer than 2 candidates finished the validation: no rank agreement to measure"}
    tau, rho = kendall_tau(x, y), spearman_rho(x, y)
    tau_ci = bootstrap_ci(kendall_tau, x, y, n_boot, seed=seed) if len(common) >= 4 else (None, None)
    rho_ci = bootstrap_ci(spearman_rho, x, y, n_boot, seed=seed) if len(common) >= 4 else (None, None)
    proxy_pick = max(common, key=lambda k: proxy[k]["accuracy_mean"])
    val_pick = max(common, key=lambda k: val[k]["accuracy_mean"])
    k = min(top_k, len(common))
    top_p = set(sorted(common, key=lambda c: -proxy[c]["accuracy_mean"])[:k])
    top_v = set(sorted(common, key=lambda c: -val[c]["accuracy_mean"])[:k])
    note = "" if len(common) >= 4 else (f"{len(common)} validated candidates: too few for a bootstrap interval of τ "
                                        "(validate.top_k + validate.random_k >= 4 gives one)")
    return {**out, "kendall_tau": _num(tau), "spearman_rho": _num(rho), "tau_ci": [_num(v) for v in tau_ci],
            "rho_ci": [_num(v) for v in rho_ci], "proxy_pick": proxy_pick, "validation_pick": val_pick,
            "top1_regret": _num(val[val_pick]["accuracy_mean"] - val[proxy_pick]["accuracy_mean"]),
            "topk_overlap": _num(len(top_p & top_v) / k), "k": k, "note": note}


def decide(search_ranked: list[dict], validation_ranked: list[dict] | None) -> tuple[dict, str]:
    """(the recommended candidate, the stage that decided): the validation's best when it ran."""
    if validation_ranked:
        return validation_ranked[0], "validation"
    return search_ranked[0], "search"


def _diff_text(d: dict) -> str:
    if d["n"] == 0:
        return "no seed in common"
    if d["low"] is None:
        return f"{d['mean']:+.3f} over 1 seed (no spread: no interval)"
    return f"{d['mean']:+.3f} [{max(-1.0, d['low']):+.3f}, {min(1.0, d['high']):+.3f}] over {d['n']} paired seeds"


def paper_label(constraint: str) -> str:
    return ("the paper's α=1.2, β=1.1 (at equal measured cost: γ solved)" if constraint == "measured"
            else "the paper's point (1.2, 1.1, 1.15)")


def verdict(ranked: list[dict], rows: list[dict], stage: str, *, paper: str | None, fid: dict | None,
            chance: float, budget: str, val_n: int | None = None, half_width: float | None = None,
            proxy_budget: str | None = None, constraint: str = "nominal") -> dict:
    """The verdict over the deciding stage's ``ranked`` candidates and ``rows``. ``paper``: the paper's
    candidate id among them (None: not evaluated). Returns the facts and ``text``, one paragraph."""
    best = ranked[0]
    seeds = per_seed(rows)
    out = {"best": best["candidate"], "decided_by": stage, "budget": budget, "chance": chance}
    parts = [f"**Recommended: {coeff_str(best)}** — accuracy {fmt_mean_ci(best)} at {budget}"
             + (f", decided by the validation stage (the proxy ran {proxy_budget})" if stage == "validation" else
                ", decided by the proxy search (no validation stage)") + "."]
    if fid and fid.get("proxy_pick"):
        agree = fid["proxy_pick"] == best["candidate"]
        regret = fid.get("top1_regret")
        parts.append("The proxy's own pick agrees." if agree else
                     f"The proxy's own pick ({fid['proxy_pick']}) differs"
                     + (f": trusting it would lose {regret:.3f} accuracy at the longer budget" if regret is not None
                        else "") + ".")
    if len(ranked) > 1:
        d = paired_difference(seeds[best["candidate"]], seeds[ranked[1]["candidate"]])
        out["vs_runner_up"] = {**d, "runner_up": ranked[1]["candidate"]}
        if d["distinguishable"]:
            parts.append(f"It is distinguishable from the runner-up ({coeff_str(ranked[1])}): {_diff_text(d)}.")
        else:
            parts.append(f"**Not distinguishable at this budget** from the runner-up ({coeff_str(ranked[1])}): "
                         f"{_diff_text(d)}.")
    else:
        out["vs_runner_up"] = None
        parts.append("Only one candidate finished: there is no runner-up to compare with.")
    if paper is None:
        out["vs_paper"] = None
        parts.append(f"{paper_label(constraint)[0].upper()}{paper_label(constraint)[1:]} was not evaluated in this stage "
                     "(infeasible at this base resolution, or not in the grid).")
    elif paper == best["candidate"]:
        out["vs_paper"] = {"n": 0, "mean": 0.0, "same": True}
        parts.append(f"It is {paper_label(constraint)}.")
    else:
        pc = next(c for c in ranked if c["candidate"] == paper)
        d = paired_difference(seeds[best["candidate"]], seeds[paper])
        out["vs_paper"] = d
        word = "better than" if d["distinguishable"] else "not distinguishable from"
        where = f" ({coeff_str(pc)})" if constraint == "measured" else ""  # measured: its solved γ
        parts.append(f"Against {paper_label(constraint)}{where}: {_diff_text(d)} — {word} it at this budget.")
    if fid and fid.get("kendall_tau") is not None:
        ci = fid["tau_ci"]
        ci_text = f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci[0] is not None else " (too few candidates for an interval)"
        parts.append(f"Proxy fidelity: Kendall τ = {fid['kendall_tau']:+.2f}{ci_text} between the proxy and the "
                     f"validation means over {fid['n_candidates']} candidates, top-1 regret {fid['top1_regret']:.3f}.")
    elif fid is None:
        parts.append("Proxy fidelity was not measured (validate.enabled=false): a short proxy's ranking may not hold at "
                     "longer training (Bello et al. 2021).")
    # what to run next
    d = out.get("vs_runner_up")
    if d and not d.get("distinguishable"):
        if d["n"] < 2 or d.get("std") is None:
            parts.append("**Next:** run at least 2 seeds (search.n_seeds) so that the noise can be measured.")
        else:
            n = seeds_to_separate(d["mean"], d["std"])
            out["seeds_needed"] = n
            if n is None:
                parts.append("**Next:** the top two are equal at this budget; no number of seeds separates them — "
                             "a longer budget (proxy.epochs, validate.epochs_mult) might.")
            else:
                parts.append(f"**Next:** at the measured noise (sd of the paired differences {d['std']:.3f}) a difference "
                             f"of {abs(d['mean']):.3f} needs about {n} seeds to separate the top two (paired t-test, "
                             f"95 %, power 80 %: n = ((t₀.₉₇₅ + t₀.₈)·sd/diff)²); or a longer budget (proxy.epochs, "
                             "validate.epochs_mult) to make the differences larger than the noise.")
    if best["accuracy_mean"] is not None and best["accuracy_mean"] < chance + 0.05:
        parts.append(f"Warning: the best accuracy {best['accuracy_mean']:.3f} is barely above chance ({chance:.3f}): "
                     "this ranking is noise; raise proxy.epochs or the data.")
    if half_width is not None and half_width > 0.05:
        parts.append(f"Each accuracy is measured on {val_n} validation images: ±{half_width:.3f} (95 %) at best.")
    out["text"] = " ".join(parts)
    return out


def _table(headers, rows) -> str:
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def ranking_table(ranked: list[dict], paper: str | None, limit: int = 10) -> str:
    """The candidates best first with every cost beside the accuracy: the measured cost ratio (of the constraint's
    kind), MACs, activations, and the latency and training step measured on the trials' device."""
    def num(v, scale=1.0, nd=2):
        return "—" if v is None else f"{v / scale:.{nd}f}"

    rows = []
    for i, c in enumerate(ranked[:limit], 1):
        mark = " (paper)" if c["candidate"] == paper else ""
        rows.append([i, f"{c['alpha']:g}{mark}", f"{c['beta']:g}", f"{c['gamma']:g}", c.get("resolution") or "—",
                     num(c.get("cost_ratio")), num(c.get("macs"), 1e6), num(c.get("activations"), 1e6, 3),
                     num(c.get("latency_ms")), num(c.get("train_step_ms"), 1, 1), fmt_mean_ci(c, 4),
                     ", ".join(f"{a:.3f}" for a in c["accuracies"])])
    return _table(["rank", "α", "β", "γ", "resolution (px)", "measured cost / baseline", "MACs (M)", "activations (M)",
                   "latency (ms)", "train step (ms)", "accuracy, 95 % CI", "per seed"], rows)


def summary_markdown(context: dict, v: dict | None, ranked: list[dict], rows: list[dict], infeasible: list[dict],
                     paper: str | None, fid: dict | None, validation_ranked: list[dict] | None) -> str:
    """summary.md: the verdict, then the rankings, then what was not ranked and why."""
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    L = ["# scalesearch summary", ""]
    L += [v["text"] if v else "**No candidate finished ok: there is no answer.** See the table below.", ""]
    L += [f"- dataset: {context['dataset']} ({context['num_classes']} classes, chance {context['chance']:.3f}), "
          f"base resolution {context['base_resolution']} px, strategy: {context['strategy']}",
          f"- constraint: {context['constraint']} — {context['constraint_text']}",
          f"- proxy budget: {context['budget']}; seeds {context['seeds']}",
          f"- trials: {len(rows)} ({', '.join(f'{k}: {n}' for k, n in sorted(statuses.items()))})",
          "- intervals are 95 % Student-t intervals over seeds; differences are paired over the shared seeds", ""]
    if validation_ranked:
        L += ["## Validation ranking (decides)", "", ranking_table(validation_ranked, paper), ""]
        if fid:
            L += [f"Fidelity: τ = {fid['kendall_tau']}, ρ = {fid['spearman_rho']}, top-1 regret {fid['top1_regret']}, "
                  f"top-{fid.get('k')} overlap {fid['topk_overlap']} over {fid['n_candidates']} candidates "
                  "(fidelity.json). " + (fid.get("note") or ""), ""]
    L += ["## Proxy ranking (the search)", "", ranking_table(ranked, paper), ""]
    if infeasible:
        L += ["## Infeasible candidates (not trained)", "",
              _table(["α", "β", "why"], [[c["alpha"], c["beta"], c["reason"]] for c in infeasible]), ""]
    bad = [r for r in rows if r["status"] not in ("ok",)]
    if bad:
        L += ["## Trials not ranked", "", _table(["trial", "candidate", "seed", "status", "detail"],
                                                  [[r.get("key"), r.get("candidate"), r.get("seed"), r["status"],
                                                    (r.get("error") or "").replace("|", "/")] for r in bad]), ""]
    return "\n".join(L).rstrip() + "\n"
