"""The run report: which coefficients and which member to use, and how sure we are.

``write_report(run_dir, report_cfg)`` reads a run directory's tables (``results.csv``,
``validation.csv``, ``family_results.csv``, ``ablation.json``) and artifacts (``best.json``,
``family.json``, ``fidelity.json``) and writes ``report.md``, ``family_curve.json`` and
``plots/*.png``. It never trains (the stages of :func:`scalesearch.pipeline.run_search` do).

* the **verdict** first (``best.json``), then the **fidelity** of the proxy (proxy vs validation
  accuracy, with error bars), the **ranking** with 95 % intervals and the seed spread;
* the **family table** (the paper's Table 2 analogue) with every cost — params, MACs, activations,
  measured latency and training-step time where a member was trained — and its accuracy;
* **curves that extrapolate**: accuracy vs MACs fitted with a saturating power law
  (:mod:`scalesearch.decide.curves`), untrained members predicted with an interval, the fit scored by
  holding out the largest trained member (only with ≥ 5 trained: its fit needs a residual degree of freedom);
* **diminishing returns** and the **cost-effective pick**
  (:func:`scalesearch.report.family.pick_cost_effective`): each step tested
  against the threshold with its seed noise (one-sided Bonferroni bounds, 95 %), bold only when the data decide
  it, else the range of members consistent with the data and the seeds that would decide; saying whether it
  rests on measured or predicted points;
* the search landscape, the Optuna history, the paper's family and the Fig. 8 ablation when present.

Every accuracy plot shows its uncertainty over seeds and the dataset's chance level. This module loads the run
(:class:`RunTables`), writes the markdown and the files; the family's analysis is :mod:`scalesearch.report.family`,
the plots :mod:`scalesearch.report.plots`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..config import ReportConfig
from ..plan.preflight import check_report
from ..io import atomic_write_json, atomic_write_text, read_run_json
from ..decide.results import TABLES, aggregate, deciding_rows, fmt_mean_ci, md_table, read_table
from ..decide.shares import ShareModel
from ..decide.ranks import spearman_rho
from .summary import how_computed, ranking_table, shares_markdown
from .family import (curve_analysis, family_curve, family_table, fmt_bound, paper_table, pick_cost_effective,
                     pick_statement, pooled_df, rule_statement, step_evidence)
from .plots import plot_family, plot_fidelity, plot_landscape, plot_optuna_history, plot_seed_spread
from .render import ablation_markdown, macs_unit, plot_ablation, plot_shares

log = logging.getLogger("scalesearch")

__all__ = ["RunTables", "load_run", "report_markdown", "write_report", "PLOTS"]

PLOTS = {"landscape": "plots/landscape.png", "family": "plots/family_accuracy_vs_macs.png",
         "fidelity": "plots/fidelity.png", "seeds": "plots/seed_spread.png", "optuna": "plots/optuna_history.png",
         "ablation": "plots/ablation.png", "shares": "plots/shares_triangle.png"}


# ---------------------------------------------------------------- loading a run
@dataclass
class RunTables:
    """A run directory's tables and JSON, loaded (missing optional tables are empty lists / None): what the report
    renders and compare reads (the live state of a running search is pipeline.py's own)."""

    path: Path
    best: dict
    family: dict
    rows: list[dict]  # the search's deciding rows (a race: its highest rung)
    validation: list[dict]
    family_rows: list[dict]
    fidelity: dict | None = None
    ablation: dict | None = None
    candidates: dict | None = None
    trials: list[dict] | None = None  # every row of results.csv (a race: every rung)

    @property
    def chance(self) -> float:
        return 1.0 / self.best.get("num_classes", 10)

    @cached_property
    def shares(self) -> ShareModel | None:
        """best.json's model over shares, typed (None: a run from before it)."""
        return ShareModel.from_dict(self.best["shares"]) if self.best.get("shares") else None


def load_run(run_dir: str | Path) -> RunTables:
    """Load a finished run directory; a one-line ``ValueError`` naming the file when it is not one."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"run_dir={run_dir} is not a directory; allowed: a finished search run directory "
                         "(results.csv, best.json, family.json)")
    for name in ("results.csv", "best.json", "family.json"):
        if not (path / name).is_file():
            raise ValueError(f"run_dir={run_dir} has no {name}; allowed: a finished search run directory "
                             "(results.csv, best.json, family.json)")
    best, fam = read_run_json(path / "best.json"), read_run_json(path / "family.json")
    if not isinstance(best, dict) or "candidate" not in best:
        raise ValueError(f"{path / 'best.json'} is not a best.json of scalesearch >= 0.2 (no 'candidate'); allowed: a "
                         "run directory written by this version")
    if isinstance(fam, list):
        fam = {"members": fam}

    def optional(name):
        return read_run_json(path / name) if (path / name).is_file() else None

    table = read_table(path / TABLES["search"])
    return RunTables(path=path, best=best, family=fam, rows=deciding_rows(table), trials=table,
               validation=read_table(path / TABLES["validation"]), family_rows=read_table(path / TABLES["family"]),
               fidelity=optional("fidelity.json"), ablation=optional("ablation.json"),
               candidates=optional("candidates.json"))


# ---------------------------------------------------------------- markdown
def _ms(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def _family_section(title: str, entries: list[dict], predictions: list[dict] | None = None) -> str:
    div, unit = macs_unit([e["macs"] for e in entries])
    pred = {p["name"]: p for p in predictions or []}
    rows = []
    for e in entries:
        if e.get("accuracy") is not None:
            acc = fmt_mean_ci({"accuracy_mean": e["accuracy"], "accuracy_low": e.get("accuracy_low"),
                               "accuracy_high": e.get("accuracy_high"), "n_seeds": e.get("n_seeds")}, 4)
        elif e["name"] in pred and pred[e["name"]]["low"] is not None:
            p = pred[e["name"]]
            acc = f"predicted {p['accuracy']:.3f} [{p['low']:.3f}, {p['high']:.3f}]"
        elif e["name"] in pred:
            acc = f"predicted {pred[e['name']]['accuracy']:.3f}"
        else:
            acc = "—"
        if e.get("status") not in (None, "ok"):
            acc += f" ({e['status']})"
        rows.append([e["name"] + (" (below B0)" if e["phi"] < 0 else ""), f"{e['phi']:g}", f"{e['depth_mult']:.3f}",
                     f"{e['width_mult']:.3f}", e["resolution"], f"{e['params'] / 1e6:.3f}", f"{e['macs'] / div:.3f}",
                     f"{e['macs_ratio']:.2f}", "—" if e.get("ideal_ratio") is None else f"{e['ideal_ratio']:.2f}",
                     f"{(e.get('activations') or 0) / 1e6:.3f}", _ms(e.get("latency_ms")),
                     _ms(e.get("train_step_ms")), acc])
    head = ["name", "φ", "depth ×", "width ×", "resolution (px)", "params (M)", f"MACs ({unit})", "MACs / B0",
            "target / B0", "activations (M)", "latency (ms)", "train step (ms)", "proxy accuracy"]
    return f"## {title}\n\n" + md_table(head, rows)


def _returns_section(points: list[dict], threshold: float, noise_sd: float | None, noise_df: int | None) -> str:
    """The steps with their gain per doubling, its Bonferroni interval (:func:`step_evidence`) and verdict."""
    ev = step_evidence(points, threshold, noise_sd, noise_df)
    rows = [[f"{s['from']} → {s['to']}", f"{s['macs_ratio']:.2f}", f"{s['doublings']:.3f}", f"{s['gain']:+.4f}",
             f"{s['gain_per_doubling']:+.4f}", f"[{fmt_bound(s['low'])}, {fmt_bound(s['high'])}]", s["verdict"],
             "—" if s["seeds_needed"] is None else s["seeds_needed"]] for s in ev["steps"]]
    head = ["step", "MACs ratio", "doublings", "accuracy gain", "gain per doubling",
            "bounds (one-sided, Bonferroni)", f"vs {threshold:.4f}", "seeds to decide"]
    if not rows:
        return "(only one trained member: no step to measure)"
    return md_table(head, rows) + f"\n\nBounds: {ev['method']}."


def _curve_section(analysis: dict) -> list[str]:
    f, h = analysis["fit"], analysis["holdout"]
    p = f["params"]
    L = ["## Curve: how far the family keeps gaining", "",
         f"Fitted `{f['form']}` to the trained members' mean accuracy against MACs (A = {p['A']:.3f} is the "
         f"ceiling, p = {p['p']:.2f} the rate; a saturating power law of error in cost, as in scaling-law studies; "
         f"it never predicts a loss from scaling up). Intervals: parametric bootstrap of the seed noise "
         f"(sd {f['noise_sd'] if f['noise_sd'] is None else round(f['noise_sd'], 4)}); they do not include the "
         f"error of the form itself. {f.get('note') or ''}", ""]
    if h["held_out"] is None:
        return L + [f"Held-out check: {h['note']} (family.max_phi >= 4).", ""]
    inside = {True: "inside", False: "outside", None: "(no interval)"}[h["inside"]]
    return L + [f"Held-out check: fitted without {h['held_out']} ({h['n_fit']} members, {h['residual_df']} residual "
                f"df), the curve predicts {h['predicted']:.3f} "
                f"[{h['low'] if h['low'] is None else round(h['low'], 3)}, "
                f"{h['high'] if h['high'] is None else round(h['high'], 3)}] against the measured {h['measured']:.3f} "
                f"(error {h['error']:+.3f}, {inside} the 95 % interval, which carries seed noise only).", ""]


def _pick_section(run: RunTables, report_cfg: ReportConfig, analysis: dict | None, trained: list[dict]) -> list[str]:
    rule, thr = report_cfg.pick_rule, report_cfg.min_gain_per_doubling
    sd, df = run.best.get("noise_sd"), pooled_df(aggregate(run.rows))
    L = ["## Diminishing returns and the cost-effective pick", "",
         f"Rule (report.pick_rule={rule}): {rule_statement(rule, thr)}", ""]
    if analysis:
        L += [_returns_section(family_curve(trained), thr, sd, df), "", analysis["statement"], ""]
    elif len(trained) == 1:
        L += [f"**Cost-effective pick: {trained[0]['name']}** (the only trained member; rests on measured points).", ""]
    else:
        L += ["Not available: train the family (family.train=true) to measure returns.", ""]
    return L


def _paper_section(run: RunTables, report_cfg: ReportConfig) -> list[str]:
    paper_rows = paper_table(run.family_rows)
    if not paper_rows:
        return []
    L = [_family_section("Paper family (1.2, 1.1, 1.15), same budget and data", paper_rows), ""]
    pts = family_curve(paper_rows)
    if len(pts) >= 2:
        sd, df = run.best.get("noise_sd"), pooled_df(aggregate(run.rows))
        pp = pick_cost_effective(pts, report_cfg.pick_rule, report_cfg.min_gain_per_doubling, sd, df)
        L += [_returns_section(pts, report_cfg.min_gain_per_doubling, sd, df), "",
              "Paper family by the same rule: " + pick_statement(pp), ""]
    return L


def report_markdown(run: RunTables, report_cfg: ReportConfig, plots: dict[str, str], analysis: dict | None) -> str:
    """The whole report.md of a loaded run (``plots``: which PNGs were written, by key)."""
    b = run.best
    ranked = aggregate(run.rows)
    paper = b.get("paper_candidate")
    L = _header_part(run)
    if run.shares is not None:
        L += shares_markdown(run.shares)
        if "shares" in plots:
            L += [f"![the shares' triangle]({plots['shares']})", ""]
    if b.get("confirmation"):
        c = b["confirmation"]
        L += [f"**Confirmation run** (confirmation.csv): {c['sentence']} Method: {c['method']}.", ""]
    L += _fidelity_part(run, ranked, plots)
    L += _ranking_part(run, ranked, paper, report_cfg, plots)
    family_part, trained = _family_part(run, analysis)
    L += family_part
    if analysis:
        L += _curve_section(analysis)
    L += _pick_section(run, report_cfg, analysis, trained)
    if "family" in plots:
        L += [f"![accuracy vs MACs of the family]({plots['family']})", ""]
    paper_part = _paper_section(run, report_cfg)
    L += paper_part
    if not paper_part and paper and paper == b["candidate"]:
        L += ["The recommended coefficients are the paper's (α, β): the family above is the paper's family"
              + (" at equal measured cost." if b["constraint"] == "measured" else "."), ""]
    L += ["## Search landscape", "", f"![search landscape]({plots['landscape']})", ""]
    if "optuna" in plots:
        L += ["## Optuna history", "", f"![optimisation history]({plots['optuna']})", ""]
    if run.ablation:
        L += [ablation_markdown(run.ablation)]
        if "ablation" in plots:
            L += [f"![ablation: accuracy vs MACs per scaling method]({plots['ablation']})", ""]
    L += how_computed(b.get("methods") or [])
    return "\n".join(L).rstrip() + "\n"


def _header_part(run: RunTables) -> list[str]:
    """The report's title, verdict and what was run (data, search, trials by status)."""
    b = run.best
    statuses: dict[str, int] = {}
    for r in run.trials if run.trials is not None else run.rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return ["# scalesearch report", "", b["verdict"], "",
            f"- run: `{run.path}`",
            f"- dataset: {b['dataset']} ({b['num_classes']} classes, chance {run.chance:.3f}; {b['val_images']} "
            f"validation images: an accuracy is ±{b['val_half_width']:.3f} at 95 % at worst), base resolution "
            f"{b['base_resolution']} px",
            f"- search: {b['strategy']}, constraint {b['constraint']} on {b['cost']} (target {b['target']:g}^φ, φ = "
            f"{b['phi']:g}; depth rounding {b['depth_rounding']}), proxy budget {b['budget']}, seeds {b['seeds']}; "
            f"trials: {sum(statuses.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})",
            *([] if b.get("methods") else  # a run from before best.json's methods: the intervals said here
              ["- accuracies are top-1 validation accuracy (a fraction) of short proxy trainings, mean over seeds with "
               "a 95 % Student-t interval; compare them with each other, not with full-training numbers"]), ""]


def _fidelity_part(run: RunTables, ranked: list[dict], plots: dict[str, str]) -> list[str]:
    """The proxy's fidelity: across a race's rungs, or against the validation retrainings; none without it."""
    fid = run.fidelity
    if fid and fid.get("rungs"):
        return _race_fidelity_section(run, fid)
    if not fid:
        return []
    v_ranked = aggregate(run.validation)
    L = ["## Proxy fidelity: does the short ranking hold at a longer budget?", "",
         f"The proxy's top candidates (validate.top_k), any random others and the paper's point were retrained at "
         f"{fid.get('validation_budget')} (the proxy: {fid.get('proxy_budget')}) with the search's seeds "
         f"(validation.csv). Over {fid['n_candidates']} candidates: " + _fidelity_numbers(fid), "",
         md_table(["candidate", "proxy accuracy", "validation accuracy"],
                  [[c["candidate"], fmt_mean_ci(next(p for p in ranked if p["candidate"] == c["candidate"])),
                    fmt_mean_ci(c)] for c in v_ranked]), ""]
    if "fidelity" in plots:
        L += [f"![proxy vs validation accuracy]({plots['fidelity']})", ""]
    return L + [f"Decided by: **{run.best['decided_by']}** (best.json `decided_by`).", ""]


def _ranking_part(run: RunTables, ranked: list[dict], paper: str | None, report_cfg: ReportConfig,
                  plots: dict[str, str]) -> list[str]:
    """The search ranking, the seed-spread plot, the infeasible candidates and how MACs track latency."""
    L = ["## The search ranking", "", ranking_table(ranked, paper, report_cfg.top_k), ""]
    if "seeds" in plots:
        L += [f"![seed spread of the top candidates]({plots['seeds']})", ""]
    infeasible = (run.candidates or {}).get("infeasible") or []
    if infeasible:
        L += [f"{len(infeasible)} candidate(s) met by the grid could not be built at the target cost and were not "
              "trained: " + "; ".join(f"({c['alpha']:g}, {c['beta']:g}): {c['reason']}" for c in infeasible), ""]
    lat = [(c["macs"], c["latency_ms"]) for c in ranked if c.get("latency_ms") is not None and c.get("macs")]
    if len(lat) >= 3:
        rho = spearman_rho([m for m, _ in lat], [t for _, t in lat])
        L += [f"Cost models over the {len(lat)} candidates: Spearman ρ(MACs, measured latency) = {rho:.2f} — "
              "equal MACs are not equal time (search.cost=latency|train_step holds those equal instead).", ""]
    return L


def _family_part(run: RunTables, analysis: dict | None) -> tuple[list[str], list[dict]]:
    """The family table (the Table 2 analogue) and what was trained; (its lines, the trained members)."""
    b = run.best
    table = family_table(run.family.get("members", []), run.family_rows)
    L = [_family_section(f"Family (α={b['alpha']:g}, β={b['beta']:g}, γ={b['gamma']:g}): the Table 2 analogue",
                         table, analysis and analysis["predictions"]), ""]
    trained = [e for e in table if e.get("accuracy") is not None]
    if trained:
        L += [f"Members up to φ = {max(e['phi'] for e in trained):g} were proxy-trained with the search's budget on "
              "the same data (family_results.csv); latency and training-step time were measured on the trials' device. "
              "Untrained members show the fitted curve's prediction.", ""]
    else:
        L += ["No member was trained (family.train=false): no accuracy column, no pick.", ""]
    return L, trained


def _race_fidelity_section(run: RunTables, fid: dict) -> list[str]:
    """A race's fidelity: its first rung's ranking against a higher rung, over the candidates that ran both."""
    lo, hi = fid["rungs"]
    at = {m: {c["candidate"]: c for c in aggregate([r for r in run.trials or [] if r.get("rung") == m])}
          for m in (lo, hi)}
    common = [c for c in fid.get("candidates", []) if c in at[lo] and c in at[hi]]
    return ["## Proxy fidelity across the race's rungs", "",
            f"The candidates that reached rung {hi:g}× (proxy.epochs × {hi:g}) against their rung-{lo:g}× accuracy, "
            f"with the seeds each ran there (results.csv, column rung). Over {fid['n_candidates']} candidates: "
            + _fidelity_numbers(fid), "",
            md_table(["candidate", f"rung {lo:g}×", f"rung {hi:g}×"],
                     [[c, fmt_mean_ci(at[lo][c]), fmt_mean_ci(at[hi][c])] for c in common]), "",
            f"Decided by: **{run.best['decided_by']}** (best.json `decided_by`).", ""]


def _fidelity_numbers(fid: dict) -> str:
    """τ and ρ with their p-values and method (only over >= 5 candidates: else the note, in words), regret,
    overlap."""
    rank = (f"Kendall τ = {fid['kendall_tau']} (p = {fid.get('tau_p')} for τ = 0), Spearman "
            f"ρ = {fid['spearman_rho']} ({fid.get('method')}); " if fid.get("kendall_tau") is not None
            else f"{fid.get('note')}; ")
    return (rank + f"top-1 regret {fid['top1_regret']} (validation accuracy lost by trusting the proxy's pick, a point "
            f"estimate), top-{fid.get('k')} overlap {fid['topk_overlap']}.")


def write_report(run_dir: Path, report_cfg: ReportConfig) -> Path:
    """Render report.md, family_curve.json and plots/ from the run's tables; returns report.md's path."""
    check_report(report_cfg)
    run = load_run(run_dir)
    run_dir, b = Path(run_dir), run.best
    ranked = aggregate(run.rows)
    paper = b.get("paper_candidate")
    plots = {"landscape": PLOTS["landscape"]}
    plot_landscape(ranked, run.rows, b, run_dir / PLOTS["landscape"], paper)
    if ranked:
        plot_seed_spread(ranked, run.chance, run_dir / PLOTS["seeds"], report_cfg.top_k)
        plots["seeds"] = PLOTS["seeds"]
    if b.get("strategy") == "optuna":
        plot_optuna_history(run.rows, run_dir / PLOTS["optuna"], run.chance)
        plots["optuna"] = PLOTS["optuna"]
    if run.fidelity and run.validation:
        plot_fidelity(ranked, aggregate(run.validation), run.chance, b["candidate"], paper, run_dir / PLOTS["fidelity"])
        plots["fidelity"] = PLOTS["fidelity"]
    table = family_table(run.family.get("members", []), run.family_rows)
    analysis = curve_analysis(table, b.get("noise_sd"), report_cfg, seed=b.get("seed", 0), noise_df=pooled_df(ranked))
    if analysis:
        atomic_write_json(run_dir / "family_curve.json", {k: v for k, v in analysis.items() if not k.startswith("_")})
    curves = {f"searched (α={b['alpha']:g}, β={b['beta']:g}, γ={b['gamma']:g})": table}
    paper_rows = paper_table(run.family_rows)
    if paper_rows:
        curves["paper (1.2, 1.1, 1.15)"] = paper_rows
    if any(e.get("accuracy") is not None for es in curves.values() for e in es):
        pick = analysis and {**analysis["pick"], "basis": analysis["pick_basis"]}
        plot_family(curves, pick, run_dir / PLOTS["family"], run.chance, analysis)
        plots["family"] = PLOTS["family"]
    if run.ablation:
        plot_ablation(run.ablation, run_dir / PLOTS["ablation"])
        plots["ablation"] = PLOTS["ablation"]
    if run.shares is not None and run.shares.status == "fitted":  # nothing fitted: no empty triangle
        model = run.shares
        paper_pt = next((p[1:4] for p in model.points if p[0] == paper), None)
        plot_shares(model, run_dir / PLOTS["shares"], paper_pt)
        plots["shares"] = PLOTS["shares"]
    path = atomic_write_text(run_dir / "report.md", report_markdown(run, report_cfg, plots, analysis))
    log.info("report: %s (%s)", path, ", ".join(plots.values()))
    return path
