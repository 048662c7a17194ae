"""summary.md's words around the decision's facts: the verdict at a glance, its next step, the rankings and the
model over shares as markdown.

* :func:`summary_markdown` — ``summary.md``: the verdict at a glance first, then the rankings, then the verdict in
  full, and last how it was computed.
* :func:`next_step` — the verdict's next step in one line; :func:`ranking_table` — the candidates with every cost;
  :func:`shares_markdown` — the section on the model over shares, :func:`how_computed` — the methods, each once
  (summary.md and report.md).

The verdict's facts are :mod:`scalesearch.decide.verdict`'s, its words :mod:`scalesearch.report.verdict`'s; this
module only lays them out.
"""

from __future__ import annotations

from ..decide.results import fmt_mean_ci, md_table
from ..decide.shares import ShareModel
from ..decide.stats import MIN_SEEDS
from ..decide.verdict import Verdict
from .verdict import Extension, VerdictWords, more_seeds

__all__ = ["summary_markdown", "next_step", "ranking_table", "shares_markdown", "how_computed"]


def how_computed(methods: list[str]) -> list[str]:
    """The last section of summary.md and report.md: how the verdict's numbers were computed, each method once
    (report.verdict.VerdictWords.methods, stored in best.json's ``methods``)."""
    return ["## How this was computed", "", *(f"- {m}" for m in methods), ""] if methods else []


def next_step(v: Verdict, ext: Extension | None = None) -> str | None:
    """The verdict's next step in one line (None when decided): the exact command when one is printed (``ext``:
    report.artifacts.Extension), else what would decide — the full text has the reasons."""
    ext = ext or Extension()
    if v.decided or v.decided_within is not None or v.k < 2:
        return None
    if ext.next_command:
        return f"**Next:** `{ext.next_command}`"
    if more := more_seeds((v.vs_runner_up or {}).get("n", MIN_SEEDS)):
        return more
    if v.equivalent:
        return "**Next:** the top two are probably equal at this budget: a longer budget might separate them."
    if far := ext.out_of_reach:  # not a seed count nobody would train: what to do with what the run shows
        return (f"**Next:** more seeds would not decide at this budget (over {far['times']}× this run's): take the "
                "pick, or lengthen proxy.epochs.")
    if v.seeds_needed:
        return (f"**Next:** a longer budget — at this one about {v.seeds_needed} seeds per candidate would be "
                "needed to decide.")
    return None
    if v.get("next_command"):
        return f"**Next:** `{v['next_command']}`"
    if more := more_seeds((v.get("vs_runner_up") or {}).get("n", MIN_SEEDS)):
        return more
    if v.get("equivalent"):
        return "**Next:** the top two are probably equal at this budget: a longer budget might separate them."
    if far := v.get("out_of_reach"):  # not a seed count nobody would train: what to do with what the run shows
        return (f"**Next:** more seeds would not decide at this budget (over {far['times']}× this run's): take the "
                "pick, or lengthen proxy.epochs.")
    if v.get("seeds_needed"):
        return (f"**Next:** a longer budget — at this one about {v['seeds_needed']} seeds per candidate would be "
                "needed to decide.")
    return None


def shares_markdown(model: ShareModel, sentence: bool = True) -> list[str]:
    """The summary's and report's section on the model: its sentence (unless the page leads with it), effects,
    checks and method."""
    L = ["## How the compute splits (model over shares)", ""] + ([model.sentence, ""] if sentence else [])
    if model.status == "fitted":
        L += ["| dimension | effect per unit share | 95 % interval | p |", "|---|---|---|---|"]
        L += [f"| {e.dimension}{' (matters)' if e.dimension in model.matters else ''} | {e.estimate:+.4f} | "
              f"[{e.low:+.4f}, {e.high:+.4f}] | {e.p_value:.2g} |" for e in model.effects]
        checks = [f"{model.n_candidates} candidates, {model.n_trainings} trainings, {model.df} residual df, "
                  f"residual sd of the means {model.residual_sd:.4f}"]
        if model.surface_p is not None:
            checks.append(f"every shape term, quadratic included, p = {model.surface_p:.2g}")
        if model.lack_of_fit_p is not None:
            checks.append(f"lack of fit against the seeds' own scatter p = {model.lack_of_fit_p:.2g}")
        checks.append("curvature not identified by this design" if model.curvature_p is None else
                      f"curvature (quadratic terms) p = {model.curvature_p:.2g}"
                      + (": the effects are averages over the candidates' triangle" if model.curvature_p <
                         1 - model.level else ""))
        if model.budget_shift_p is not None:
            checks.append(f"slopes shift between budgets ({model.budgets[0]} → {model.budgets[-1]}) p = "
                          f"{model.budget_shift_p:.2g}")
        L += ["", "Checks: " + "; ".join(checks) + ".", ""]
    o = model.optimum
    if o is not None and o.status in ("located", "outside", "no_maximum"):
        L += [f"**Where the compute peaks:** {o.sentence}", ""]
    L += [f"Method: {model.method}" + (f"; {o.method}" if o is not None and o.status == "located" else "") + ".", ""]
    return L


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
    return md_table(["rank", "α", "β", "γ", "resolution (px)", "measured cost / baseline", "MACs (M)",
                   "activations (M)", "latency (ms)", "train step (ms)", "accuracy, 95 % CI", "per seed"], rows)


def summary_markdown(context: dict, v: Verdict | None, ext: Extension | None, words: VerdictWords | None,
                     ranked: list[dict], rows: list[dict], infeasible: list[dict], paper: str | None,
                     fid: dict | None, validation_ranked: list[dict] | None,
                     shares: ShareModel | None = None, confirmation: str | None = None) -> str:
    """summary.md: how the compute splits (one sentence), where it peaks and the confirmation run's outcome (when
    there are), the verdict at a glance and its next step, the rankings, then the verdict in full, the run's
    settings, the model over shares, what was not ranked and why, and how the verdict was computed. ``v``: the
    verdict's facts, ``ext`` what to run next (report.verdict.Extension), ``words`` its words
    (report.verdict.verdict_words)."""
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    L = ["# scalesearch summary", ""]
    if shares is not None:
        L += [f"**How the compute splits:** {shares.sentence}", ""]
        if shares.optimum is not None and shares.optimum.status == "located":
            L += [f"**Where it peaks:** {shares.optimum.brief}", ""]
    if confirmation:
        L += [f"**Confirmation:** {confirmation}", ""]
    if v:
        L += [line for h in [*words.headline, next_step(v, ext)] if h for line in (h, "")]
        L += ["The verdict in full, then its methods, follow the rankings.", ""]
    else:
        L += ["**No candidate finished ok: there is no answer.** See the table below.", ""]
    run = [f"- dataset: {context['dataset']} ({context['num_classes']} classes, chance {context['chance']:.3f}), "
           f"base resolution {context['base_resolution']} px, strategy: {context['strategy']}",
           f"- constraint: {context['constraint']} — {context['constraint_text']}",
           f"- proxy budget: {context['budget']}; seeds {context['seeds']}",
           f"- trials: {len(rows)} ({', '.join(f'{k}: {n}' for k, n in sorted(statuses.items()))})", ""]
    if validation_ranked:
        L += ["## Validation ranking (decides)", "", ranking_table(validation_ranked, paper), ""]
        if fid:
            L += [(f"Fidelity: τ = {fid['kendall_tau']}, ρ = {fid['spearman_rho']} "
                   f"({fid.get('method')}), " if fid.get("kendall_tau") is not None else
                   f"Fidelity: {fid.get('note')}; ")
                  + f"top-1 regret {fid['top1_regret']}, top-{fid.get('k')} overlap {fid['topk_overlap']} over "
                  f"{fid['n_candidates']} candidates (fidelity.json).", ""]
    L += ["## Proxy ranking (the search)", "", ranking_table(ranked, paper), ""]
    L += (["## The verdict in full", "", words.text, ""] if v else []) + ["## The run", "", *run]
    if shares is not None:
        L += shares_markdown(shares, sentence=False)
    if infeasible:
        L += ["## Infeasible candidates (not trained)", "",
              md_table(["α", "β", "why"], [[c["alpha"], c["beta"], c["reason"]] for c in infeasible]), ""]
    bad = [r for r in rows if r["status"] not in ("ok",)]
    if bad:
        L += ["## Trials not ranked", "", md_table(["trial", "candidate", "seed", "status", "detail"],
                                                  [[r.get("key"), r.get("candidate"), r.get("seed"), r["status"],
                                                    (r.get("error") or "").replace("|", "/")] for r in bad]), ""]
    L += how_computed(words.methods if words else [])
    return "\n".join(L).rstrip() + "\n"
