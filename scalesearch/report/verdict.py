"""The verdict's words: one renderer of :func:`scalesearch.decide.verdict.verdict`'s facts for best.json
(``verdict``, ``headline``), summary.md and the console.

* :func:`verdict_words` — the headline (the pick; decided or not, with the regret bound), the paragraph in full (the
  recommendation, the confidence set, the race's story, the regret bound, the runner-up and the paper's point with
  their Bonferroni bounds, the proxy's fidelity, what to run next) and, apart, each of its methods once.
* :func:`more_seeds` — the first rule of what to run next, shared with summary.md's "Next:" line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..decide.ranks import NO_RANK_INTERVAL
from ..decide.results import fmt_mean_ci
from ..decide.stats import ADVICE_POWER, MIN_SEEDS
from ..decide.verdict import ADVICE_CHECKED, Verdict

__all__ = ["VerdictWords", "Extension", "verdict_words", "coeff_str", "paper_label", "more_seeds"]

MAX_LISTED = 6  # confidence-set members named in the text


@dataclass(frozen=True)
class VerdictWords:
    """The verdict in words: ``headline`` (summary.md's top, before the rankings), ``text`` (the paragraph in full,
    ending with the command that extends an undecided run) and ``methods`` (how each number of it was computed, one
    line each, stated once: summary.md's and report.md's "How this was computed")."""
    text: str
    headline: list[str]
    methods: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Extension:
    """What an undecided run can run next from here (report.artifacts.extend_advice): ``next_command`` (the command
    that extends it in place), ``within_command`` (a race: decide within δ from the trainings already made),
    ``out_of_reach`` (the seeds the plan asks for, when more than MAX_EXTEND× the run's: no command), and ``text``, the
    sentences the verdict's paragraph ends with."""
    next_command: str | None = None
    within_command: str | None = None
    out_of_reach: dict | None = None
    text: str = ""


def coeff_str(c: dict) -> str:
    return f"α={c['alpha']:g}, β={c['beta']:g}, γ={c['gamma']:g}"


def paper_label(constraint: str) -> str:
    return ("the paper's α=1.2, β=1.1 (at equal measured cost: γ solved)" if constraint == "measured"
            else "the paper's point (1.2, 1.1, 1.15)")


def more_seeds(n: int) -> str | None:
    """The first rule of what to run next: fewer than MIN_SEEDS shared seeds decide nothing."""
    if n >= MIN_SEEDS:
        return None
    return (f"**Next:** run at least {MIN_SEEDS} seeds (search.n_seeds={MIN_SEEDS}): decisions need ≥ {MIN_SEEDS} "
            "shared seeds.")


def verdict_words(v: Verdict, ranked: list[dict], extension: str = "") -> VerdictWords:
    """The words of the verdict ``v`` (decide.verdict's facts) over the deciding stage's ``ranked`` candidates; the
    paragraph ends with ``extension`` (report.artifacts.Extension's sentences: the command that extends the run)."""
    best, by_id = ranked[0], {c["candidate"]: c for c in ranked}
    parts = [_head(best, v), _set_text(v, by_id)]
    parts += [v.race["text"]] if v.race else []
    parts += _regret_text(v)
    parts += _runner_up(v, by_id)
    parts += _paper(v, best, by_id)
    parts += _fidelity_text(v.fidelity, best)
    parts += _advice(v)
    if best["accuracy_mean"] is not None and best["accuracy_mean"] < v.chance + 0.05:
        parts.append(f"Warning: the best accuracy {best['accuracy_mean']:.3f} is barely above chance "
                     f"({v.chance:.3f}): this ranking is noise; raise proxy.epochs or the data.")
    if v.half_width is not None and v.half_width > 0.05:
        parts.append(f"Each accuracy is measured on {v.val_n} validation images: ±{v.half_width:.3f} (95 %) at "
                     "best.")
    return VerdictWords(text=" ".join(p for p in [*parts, extension] if p), headline=_headline(best, v),
                        methods=_methods(v, len(ranked), best))


def _methods(v: Verdict, k: int, best: dict) -> list[str]:
    """How the verdict's numbers were computed, each method once."""
    level = f"{100 * v.level:g} %"
    out = ["**Accuracies:** top-1 validation accuracy (a fraction) of short proxy trainings — compare them with each "
           "other, not with full-training numbers —, the mean over seeds with a 95 % Student-t interval, each "
           "candidate as if chosen in advance"
           + (f"; the pick's is the largest of {k} means, so its interval is optimistic (not shrunk)"
              if k > 1 and best.get("accuracy_low") is not None else "") + "."]
    if v.k < 2:
        return out
    n_val = v.val_n
    over = "α/(k−1)" if v.looks == 1 else f"α/({v.looks}·(k−1)) over the race's {v.looks} looks"
    sd = ", with the seed noise pooled over the candidates (two-way residual sd)" if v.pooled else ""
    floor = f"sd floored at 1/n_val = 1/{n_val}" if n_val else "no sd floor (n_val unknown)"
    out.append(f"**Confidence set of the best ({level} family-wise):** two-sided paired t-tests over the shared "
               f"seeds{sd}, Bonferroni {over} = {v.alpha_each:.4f} per candidate (Holm's first step), {floor}; a "
               "candidate outside it failed one such test, which is not a family-wise claim that it is worse.")
    at = "α/(k−1)" if v.looks == 1 else f"α/({v.looks}·(k−1))"
    pooled = "; sd: the pooled seed noise" if v.pooled else ""
    out.append(f"**Differences** (best − another): paired over the shared seeds, with t intervals at the set's "
               f"per-test level 1 − {at} (k = {v.k}){pooled}; sd ≥ 1/n_val.")
    if v.regret_bound is not None:
        out.append(f"**Bound on the best's lead:** {v.regret_bound_method}.")
    if v.advice == "equivalent":
        out.append(f"**Probably equal:** two one-sided tests (TOST) of the top two at margin {v.margin:g}, {level}.")
    if v.advice == "seeds":
        out.append(f"**Seeds that would decide:** {v.seeds_method}; {ADVICE_CHECKED}.")
    if (v.fidelity or {}).get("kendall_tau") is not None:
        out.append(f"**Proxy fidelity:** Kendall τ-b with scipy's p-value for τ = 0; {NO_RANK_INTERVAL}.")
    return out


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _cost(c: dict) -> str:
    """"cost 2.00× baseline (macs)", from the entry's measured ``cost_ratio`` and ``cost`` kind."""
    if c.get("cost_ratio") is None:
        return "cost not measured"
    return f"cost {c['cost_ratio']:.2f}× baseline" + (f" ({c['cost']})" if c.get("cost") else "")


def _bounds_text(d: dict, v: Verdict) -> str:
    """best − other with its Bonferroni-adjusted paired t bounds (their method: ``_methods``)."""
    if d["n"] == 0:
        return "no seed in common"
    if d["low"] is None:
        return f"{d['mean']:+.3f} over 1 seed (no spread: no interval)"
    return f"{d['mean']:+.3f} [{max(-1.0, d['low']):+.3f}, {min(1.0, d['high']):+.3f}] over {d['n']} paired seeds"


_DECIDED_BY = {"validation": "the validation stage", "race": "the race's last look", "search": "the proxy search"}


def _decided_by(stage: str) -> str:
    return _DECIDED_BY.get(stage, f"the {stage} stage")


def _headline(best: dict, v: Verdict) -> list[str]:
    """The verdict at a glance (summary.md's top, before the rankings): the pick, its accuracy and cost, and whether
    anything is decided — the methods, bounds and comparisons are in the full text."""
    pick = (f"**Recommended: {coeff_str(best)}** — accuracy {fmt_mean_ci(best)}, {_cost(best)}, decided by "
            f"{_decided_by(v.decided_by)}.")
    bound = v.regret_bound
    lead = f"; the best of them is at most {bound:.3f} better than this pick" if bound is not None else ""
    if v.k < 2:
        state = "Only one candidate finished: there is nothing to compare it with."
    elif v.decided:
        state = f"**Decided at {100 * v.level:g} % family-wise:** the confidence set of the best holds only it."
    elif v.decided_within is not None:
        state = f"**Decided within δ = {v.decided_within:g}** (search.delta){lead}."
    else:
        state = (f"**Not distinguishable at this budget:** {len(v.confidence_set)} of {v.k} candidates are in "
                 f"the {100 * v.level:g} % confidence set of the best{lead}.")
    return [pick, state]


def _head(best: dict, v: Verdict) -> str:
    """The recommendation, its accuracy, its cost, the stage, the meaning of γ."""
    stage = v.decided_by
    why = {"validation": f" (the proxy ran {v.proxy_budget})",
           "race": " (its rungs replace the validation stage)", "search": " (no validation stage)"}.get(stage, "")
    text = (f"**Recommended: {coeff_str(best)}** — accuracy {fmt_mean_ci(best)}, {_cost(best)}, at {v.budget}, "
            f"decided by {_decided_by(stage)}{why}.")
    if v.base_resolution:
        text += (f" Its γ = {best['gamma']:g} is the effective resolution multiplier (resolution/base per unit φ): "
                 f"specific to this base resolution of {v.base_resolution} px.")
    return text


def _member(c: dict) -> str:
    return f"{coeff_str(c)} ({c['accuracy_mean']:.3f}, {_cost(c)})"


def _set_text(v: Verdict, by_id: dict) -> str:
    """The primary statement: the confidence set of the best, decided or not (its method: ``_methods``)."""
    if v.k < 2:
        return "Only one candidate finished: there is nothing to compare it with."
    if v.decided:
        return f"**Decided at {100 * v.level:g} % family-wise**: the confidence set of the best holds only it."
    paused_ids = v.paused or []
    tested = [c for c in v.confidence_set if c not in paused_ids]
    names = [_member(by_id[c]) for c in tested[:MAX_LISTED]]
    more = len(tested) - len(names)
    n = len(paused_ids)
    paused = (f" It also holds the {n} candidate{'s' if n != 1 else ''} the race paused before its last look "
              "(search.eta: a budget choice, not a test — untested there, so not excluded): nothing is decided "
              f"while {'it is' if n == 1 else 'they are'} paused." if paused_ids else "")
    of = f"of the {v.k} candidates of the last look" if paused_ids else f"of {v.k} candidates"
    return (f"**Not distinguishable at this budget**: the {100 * v.level:g} % family-wise confidence set of the "
            f"best holds {len(tested)} {of} — " + "; ".join(names)
            + (f"; and {more} more" if more else "") + "." + paused
            + (f" {_cap(v.set_note)}." if v.set_note else ""))


def _n(n: int, what: str) -> str:
    return f"{n} {what}" + (" is" if n == 1 else "s are")


def _regret_text(v: Verdict) -> list[str]:
    """The regret bound (how much better than the recommendation the best can be), a race's "decided within δ"."""
    if v.regret_bound is None:
        return []
    race = v.race or {}
    within = v.decided_within is not None
    head = f"**Decided within δ = {v.decided_within:g}** (search.delta): " if within else ""
    n_all = race.get("candidates") or v.k
    which = f"the {v.k}" if n_all == v.k else \
        f"the {n_all} (the {n_all - v.k} not in the last look were dropped at the family-wise level)"
    paused = f" The {_n(len(v.paused), 'paused candidate')} not covered by this bound." if v.paused else ""
    return [f"{head}{'t' if within else 'T'}he best of {which} is at most {v.regret_bound:.3f} better than the "
            f"recommendation.{paused}"]


def _runner_up(v: Verdict, by_id: dict) -> list[str]:
    d = v.vs_runner_up
    if d is None:
        return []
    ru = by_id[d["runner_up"]]
    where = ("outside the 95 % confidence set of the best" if not d["in_set"] else
             "inside the confidence set: not distinguishable")
    return [f"The runner-up ({coeff_str(ru)}, {_cost(ru)}): best − it = {_bounds_text(d, v)} — {where}."]


def _paper(v: Verdict, best: dict, by_id: dict) -> list[str]:
    """The paper's point inside the frame of the set, or why it is not in this stage."""
    label = paper_label(v.constraint)
    paper, searched = v.paper, v.paper_searched
    if paper is None:
        if searched is not None and v.decided_by == "validation":
            return [f"{_cap(label)} was searched (proxy accuracy {fmt_mean_ci(searched)}, "
                    f"{_cost(searched)}) but not validated: no comparison at this budget."]
        return [f"{_cap(label)} was not evaluated (infeasible at this base resolution, or not in the grid)."]
    if paper == best["candidate"]:
        return [f"It is {label}."]
    pc, d = by_id[paper], v.vs_paper
    if d["in_set"]:
        word = "not distinguishable from it (inside the confidence set)"
    elif d["excluded_by"] == best["candidate"]:
        word = "the paper's point is outside the 95 % confidence set of the best (excluded by the recommendation)"
    else:
        word = (f"the paper's point is outside the 95 % confidence set of the best (excluded by "
                f"{coeff_str(by_id[d['excluded_by']])})")
    return [f"Against {label} ({coeff_str(pc)}, {_cost(pc)}): best − it = {_bounds_text(d, v)} — {word}."]


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
    p = f" (p = {fid['tau_p']:.2g} for τ = 0)" if fid.get("tau_p") is not None else ""
    across = (f" across rungs ({fid['rungs'][0]:g}× against {fid['rungs'][1]:g}× proxy.epochs)" if fid.get("rungs")
              else "")
    return parts + [f"Proxy fidelity{across} over {fid['n_candidates']} candidates: "
                    f"Kendall τ = {fid['kendall_tau']:+.2f}{p}."]


def _advice(v: Verdict) -> list[str]:
    """What to run next when undecided (the facts' ``advice``): ≥ 3 seeds; "probably equal" (TOST); or the seeds per
    candidate that would decide, planned with an upper bound of the seed noise."""
    longer = "proxy.epochs, search.rungs" if v.race else "proxy.epochs, validate.epochs_mult"
    if v.advice == "more_seeds":
        return [more_seeds(v.vs_runner_up["n"])]
    if v.advice == "equivalent":
        return [f"**Next:** the top two are probably equal at this budget, within {v.margin:g} (p = {v.tost_p:.2g}); "
                f"more seeds will not separate them — a longer budget ({longer}) might."]
    if v.advice == "seeds":
        return [f"**Next:** about {v.seeds_needed} seeds per candidate would decide (with {100 * ADVICE_POWER:g} % "
                f"power) if the best led every other candidate by {v.margin:g}. Or a longer budget ({longer})."]
    return []
