"""The run report: which member of the scaled family to deploy, and how sure we are.

``write_report(run_dir, report_cfg, settings)`` reads a search run directory (``results.csv``,
``best.json``, ``family.json``) and writes ``report.md`` and ``plots/*.png`` into it:

* the **family table** (the paper's Table 2 analogue), with the proxy accuracy of each member up to
  ``report.max_phi`` when ``report.train_family=true`` (trained with the search's proxy budget on the
  search's data; the numbers are kept in ``family_trained.json`` so a re-render never retrains);
* **diminishing returns**: accuracy gained per doubling of MACs between neighbouring members, and the
  **cost-effective pick** by ``report.pick_rule`` (:func:`pick_cost_effective`);
* the **search landscape** (every candidate on the constraint surface), the Optuna history, the
  **seed spread** of the top candidates and whether the top-3 ranking is stable across seeds;
* the paper's (1.2, 1.1, 1.15) family beside the searched one (``report.compare_paper``) and the
  Fig. 8 ablation (:mod:`scalesearch.ablation`) when ``ablation.json`` is in the run directory.

The analysis functions are pure (lists of dicts in, dicts out) so the notebook
``notebooks/analyze_search.ipynb`` and the tests use them directly.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from .ablation import ablation_markdown, compound_coefficients, log_x_axis, macs_unit, plot_ablation, run_ablation, train_over_seeds
from .config import ReportAppConfig, ReportConfig, SearchAppConfig
from .io import atomic_write_json, atomic_write_text, read_json, save_png
from .results import aggregate, read_results
from .scaling import PAPER, Coefficients, family, round_resolution

log = logging.getLogger("scalesearch")

__all__ = [
    "Run", "load_run", "load_settings", "family_table", "family_curve", "diminishing_returns", "pick_cost_effective",
    "seed_stability", "top_candidates", "train_families", "family_tables", "cost_effective_pick", "rule_statement",
    "validate_report_config", "plot_landscape", "plot_family", "plot_optuna_history",
    "report_markdown", "write_report", "run_report_app", "ReportAppConfig", "PICK_RULES",
]

PICK_RULES = ("marginal", "knee")
PAPER_LABEL = "paper (1.2, 1.1, 1.15)"
IDENTITY = ("name", "phi", "depth_mult", "width_mult", "resolution")  # of a family member, beside its metrics
STATUS_MARKERS = {"ok": "o", "stopped": "v", "diverged": "X", "filtered": "s", "error": "P"}
PLOTS = {
    "landscape": "plots/landscape.png",
    "family": "plots/family_accuracy_vs_macs.png",
    "optuna": "plots/optuna_history.png",
    "ablation": "plots/ablation.png",
}


# ---------------------------------------------------------------- loading a run
@dataclass
class Run:
    """A search run directory, loaded: the trials, the best coefficients, the emitted family, and
    (when present) the trained family (``family_trained.json``) and the ablation (``ablation.json``)."""

    path: Path
    rows: list[dict]
    best: dict
    family: list[dict]
    trained: dict | None = None
    ablation: dict | None = None
    _paper: dict = dataclasses.field(default_factory=dict, repr=False)  # paper_family() by max_phi

    @property
    def coefficients(self) -> Coefficients:
        return Coefficients(self.best["alpha"], self.best["beta"], self.best["gamma"])


def load_run(run_dir: str | Path) -> Run:
    """Load a search run directory; a one-line ``ValueError`` when it is not one."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"run_dir={run_dir} is not a directory; allowed: a search run directory "
                         "(results.csv, best.json, family.json)")
    for name in ("results.csv", "best.json", "family.json"):
        if not (path / name).is_file():
            raise ValueError(f"run_dir={run_dir} has no {name}; allowed: a finished search run directory "
                             "(results.csv, best.json, family.json)")

    def optional(name):
        return read_json(path / name) if (path / name).is_file() else None

    return Run(path=path, rows=read_results(path / "results.csv"), best=read_json(path / "best.json"),
               family=read_json(path / "family.json"), trained=optional("family_trained.json"),
               ablation=optional("ablation.json"))


def load_settings(run_dir: str | Path) -> SearchAppConfig | None:
    """The search's settings: the Hydra record ``run_dir/.hydra/config.yaml``, else the ``config``
    that ``run_search`` keeps in ``run_dir/search.json`` (in-process runs); None when neither exists."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(run_dir) / ".hydra" / "config.yaml"
    state = Path(run_dir) / "search.json"
    if path.is_file():
        raw = OmegaConf.load(path)
    elif state.is_file() and isinstance(cfg := read_json(state).get("config"), dict):
        path, raw = state, OmegaConf.create(cfg)
    else:
        return None
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SearchAppConfig), raw))
    except OmegaConfBaseException as e:
        raise ValueError(f"{path} is not a search configuration ({str(e).splitlines()[0]})") from None


# ---------------------------------------------------------------- analysis (pure)
def family_table(members: list[dict], trained: list[dict] | None = None) -> list[dict]:
    """family.json entries with the trained proxy metrics (``accuracy`` etc.; None where not trained),
    matched on (depth, width, resolution)."""
    by_key = {_member_key(t): t for t in trained or []}
    out = []
    for m in members:
        t = by_key.get(_member_key(m), {})
        out.append({**m, "accuracy": t.get("accuracy"), "accuracy_std": t.get("accuracy_std"),
                    "trained_macs": t.get("macs"), "status": t.get("status"), "seeds": t.get("seeds")})
    return out


def _member_key(m: dict) -> tuple:
    return round(m["depth_mult"], 4), round(m["width_mult"], 4), int(m["resolution"])


def family_curve(entries: list[dict]) -> list[dict]:
    """The accuracy-vs-MACs curve of a trained family: ``ok`` members sorted by MACs, as
    ``{name, macs, accuracy}`` (MACs measured on the trained proxy model when known)."""
    pts = [{"name": e["name"], "macs": e.get("trained_macs") or e["macs"], "accuracy": e["accuracy"]}
           for e in entries if e.get("accuracy") is not None and e.get("status", "ok") == "ok"]
    return sorted(pts, key=lambda p: p["macs"])


def diminishing_returns(points: list[dict]) -> list[dict]:
    """Between neighbouring members (sorted by MACs): the MACs ratio, the number of doublings
    log2(MACs ratio), the accuracy gain, and the gain per doubling of MACs."""
    out = []
    for a, b in zip(points, points[1:]):
        if not b["macs"] > a["macs"] > 0:
            raise ValueError(f"MACs must increase strictly between neighbours; got {a['name']}: {a['macs']}, "
                             f"{b['name']}: {b['macs']}")
        doublings = math.log2(b["macs"] / a["macs"])
        gain = b["accuracy"] - a["accuracy"]
        out.append({"from": a["name"], "to": b["name"], "macs_ratio": b["macs"] / a["macs"], "doublings": doublings,
                    "gain": gain, "gain_per_doubling": gain / doublings})
    return out


def pick_cost_effective(points: list[dict], rule: str = "marginal", threshold: float = 0.01) -> dict:
    """The cost-effective member of an accuracy-vs-MACs curve (``points``: ``{name, macs, accuracy}``).

    * ``marginal``: walk up the family; keep going while the gain per doubling of MACs to the next
      member is ≥ ``threshold``; the pick is the last member reached (B0 when the first step is
      already below it).
    * ``knee``: on the members that beat every cheaper member (the others are never cost-effective),
      the one farthest above the straight line (chord) from the cheapest to the most accurate one on
      accuracy vs log2(MACs). No member above the chord (returns do not diminish: straight or
      accelerating) picks the most accurate; a flat or falling curve picks the cheapest.

    Returns ``{index, name, rule, threshold, reason}`` (``index`` into ``points``).
    """
    if rule not in PICK_RULES:
        raise ValueError(f"report.pick_rule={rule!r} is unknown; allowed: {', '.join(PICK_RULES)}")
    if not points:
        raise ValueError("no trained family member to pick from; allowed: at least one member with an accuracy")
    pts = sorted(points, key=lambda p: p["macs"])
    steps = diminishing_returns(pts)
    if rule == "marginal":
        index = 0
        for i, s in enumerate(steps):
            if s["gain_per_doubling"] < threshold:
                break
            index = i + 1
        reason = (f"every step up to it gains ≥ {threshold:.4f} accuracy per doubling of MACs"
                  + (f"; the next ({steps[index]['from']} → {steps[index]['to']}) gains "
                     f"{steps[index]['gain_per_doubling']:+.4f}" if index < len(steps) else "; it is the largest trained"))
        if not steps:
            reason = "the only trained member"
        elif index == 0:
            reason = (f"already the first step ({steps[0]['from']} → {steps[0]['to']}) gains only "
                      f"{steps[0]['gain_per_doubling']:+.4f} < {threshold:.4f} per doubling")
    else:
        front = [0]
        for i in range(1, len(pts)):
            if pts[i]["accuracy"] > pts[front[-1]]["accuracy"]:
                front.append(i)
        if len(front) == 1:
            index, reason = 0, "no larger member is more accurate (flat or falling curve)"
        else:
            x = [math.log2(pts[i]["macs"]) for i in front]
            y = [pts[i]["accuracy"] for i in front]
            span = y[-1] - y[0]
            above = [(y[k] - (y[0] + span * (x[k] - x[0]) / (x[-1] - x[0]))) / span for k in range(len(front))]
            k = max(range(len(front)), key=lambda k: above[k])
            if above[k] <= 1e-9:
                index = front[-1]
                reason = (f"no member lies above the chord from {pts[front[0]]['name']} to {pts[index]['name']}: "
                          "returns do not diminish up to it"
                          + ("; no larger member is more accurate" if index < len(pts) - 1 else ""))
            else:
                index = front[k]
                reason = (f"farthest above the chord from {pts[front[0]]['name']} to {pts[front[-1]]['name']} "
                          f"({above[k]:.2f} of the accuracy range)")
    return {"index": index, "name": pts[index]["name"], "rule": rule, "threshold": threshold if rule == "marginal" else None,
            "reason": reason}


def rule_statement(rule: str, threshold: float) -> str:
    """The pick rule in one sentence, for the report."""
    if rule == "marginal":
        return (f"`marginal`: the last member reached while every step up the family gains at least "
                f"{threshold:.4f} accuracy ({100 * threshold:.2f} percentage points) per doubling of MACs "
                "(report.min_gain_per_doubling); the walk stops at the first step below it.")
    return ("`knee`: among members more accurate than every cheaper one, the one farthest above the chord from "
            "the cheapest to the most accurate member on accuracy vs log2(MACs); with no member above the chord "
            "(no diminishing returns) the most accurate, with a flat or falling curve the cheapest.")


def top_candidates(rows: list[dict], k: int = 5) -> list[dict]:
    """The ``k`` best candidates by mean accuracy over their ``ok`` seeds (with std and per-seed values)."""
    return aggregate(rows)[:k]


def seed_stability(rows: list[dict], k: int = 3) -> dict:
    """Is the top-``k`` ranking the same under every seed?

    Only candidates with an ``ok`` trial under every seed are compared; under each seed they are
    ranked by that seed's accuracy. ``same_order``: the per-seed top-k lists are identical;
    ``same_set``: they hold the same candidates; ``stable`` is ``same_order`` (None with one seed)."""
    ok = [r for r in rows if r["status"] == "ok" and r["accuracy"] is not None]
    seeds = sorted({r["seed"] for r in ok})
    acc = {}
    for r in ok:
        acc.setdefault((r["alpha"], r["beta"], r["gamma"]), {})[r["seed"]] = r["accuracy"]
    common = sorted(c for c, s in acc.items() if len(s) == len(seeds))
    k = min(k, len(common))
    per_seed = {s: sorted(common, key=lambda c: -acc[c][s])[:k] for s in seeds}
    out = {"seeds": seeds, "k": k, "n_candidates": len(common), "per_seed_top": per_seed}
    if len(seeds) < 2 or k == 0:
        return {**out, "same_set": None, "same_order": None, "stable": None,
                "note": "one seed only (set search.n_seeds > 1)"
                if len(seeds) < 2 else "no candidate finished ok under every seed"}
    tops = list(per_seed.values())
    same_order = all(t == tops[0] for t in tops)
    same_set = all(set(t) == set(tops[0]) for t in tops)
    note = ("the top-{k} order is the same under every seed" if same_order else
            "the same top-{k} candidates under every seed, in a different order" if same_set else
            "the top-{k} candidates change with the seed: the ranking is within proxy noise")
    return {**out, "same_set": same_set, "same_order": same_order, "stable": same_order, "note": note.format(k=k)}


# ---------------------------------------------------------------- training the families
def _resolution_multiple(members: list[dict], coeffs: Coefficients, base: int) -> int:
    """The resolution rounding family.json was emitted with (so the paper's family gets the same); when
    several fit (γ = 1), the first of 8 (scaling.family's default, which search.py emits with), 1, 2, ..."""
    for m in (8, 1, 2, 4, 16, 32):
        if all(round_resolution(base * coeffs.gamma ** e["phi"], m) == e["resolution"] for e in members):
            return m
    return 8


def train_families(run: Run, report_cfg: ReportConfig, settings: SearchAppConfig | None) -> dict | None:
    """Proxy-train the searched family (``train_family``) and the paper's (``compare_paper``) up to
    ``max_phi`` with the search's budget on the search's data, reusing ``family_trained.json`` where it
    holds a member already (members trained before and not asked for now are kept). Returns its content."""
    from .generate import load_baseline

    wanted = {}
    if report_cfg.train_family:
        wanted["searched"] = (run.coefficients, [m for m in run.family if m["phi"] <= report_cfg.max_phi])
    if report_cfg.compare_paper and run.coefficients != PAPER:
        wanted["paper"] = (PAPER, paper_family(run, report_cfg.max_phi))
    if not wanted:
        return run.trained
    cached = run.trained or {}
    if settings is not None:
        seeds = [settings.seed + k for k in range(report_cfg.family_seeds)]
        meta = {"dataset": run.best.get("dataset"), "dataset_fingerprint": run.best.get("dataset_fingerprint"),
                "budget": dataclasses.asdict(settings.proxy), "seeds": seeds, "baseline": settings.model.baseline}
        if cached and any(cached.get(k) != v for k, v in meta.items()):
            log.info("family_trained.json was trained with other settings: training the families again")
            cached = {}
    else:
        meta = {k: cached.get(k) for k in ("dataset", "dataset_fingerprint", "budget", "seeds", "baseline")}
    done = {_member_key(t): t for fam in (cached.get("families") or {}).values() for t in fam["members"]}
    todo = [m for _, members in wanted.values() for m in members if _member_key(m) not in done]
    data = None
    if todo:
        if settings is None:
            raise ValueError(f"training the family needs the search's settings, but {run.path / '.hydra/config.yaml'} "
                             "is missing; allowed: a run made by the scalesearch CLI, or report.train_family=false "
                             "and report.compare_paper=false")
        from .data import load_data

        data = load_data(settings.dataset)
        if data.fingerprint != run.best.get("dataset_fingerprint"):
            raise ValueError(f"the data loaded from the search's settings (fingerprint {data.fingerprint}) differ from "
                             f"the search's ({run.best.get('dataset_fingerprint')}); allowed: the same dataset")
    baseline = load_baseline(meta["baseline"])
    out = {**meta, "families": dict(cached.get("families") or {})}
    n_todo, n_done = len({_member_key(m) for m in todo}), 0
    for label, (coeffs, members) in wanted.items():
        coefficients = [coeffs.alpha, coeffs.beta, coeffs.gamma]
        old = out["families"].get(label) or {}
        kept = {_member_key(t): t for t in old.get("members", [])} if old.get("coefficients") == coefficients else {}
        for m in members:
            key = _member_key(m)
            if key not in done:
                n_done += 1
                log.info("report: training %s family member %s (%d/%d: depth %.3f, width %.3f, %d px)", label,
                         m["name"], n_done, n_todo, m["depth_mult"], m["width_mult"], m["resolution"])
                done[key] = train_over_seeds(m["depth_mult"], m["width_mult"], m["resolution"], data,
                                             trial_budget(settings), seeds=meta["seeds"], baseline=baseline)
                log.info("report: %s %s accuracy %s", label, m["name"], done[key]["accuracy"])
            kept[key] = {**{k: m[k] for k in IDENTITY}, **{k: v for k, v in done[key].items() if k not in IDENTITY}}
            out["families"][label] = {"coefficients": coefficients,
                                      "members": sorted(kept.values(), key=lambda t: t["phi"])}
            if out != run.trained:  # after every new member: an interrupted report keeps what it trained
                atomic_write_json(run.path / "family_trained.json", out)
                run.trained = copy.deepcopy(out)
    run.trained = out
    return out


def trial_budget(settings: SearchAppConfig):
    """The search's proxy budget as its trials ran it: torch CPU threads = proxy.threads, else
    search.cpus_per_trial (as in search.proxy_trial; also keeps in-process training from oversubscribing)."""
    p = settings.proxy
    return p if p.threads is not None else dataclasses.replace(p, threads=max(1, int(settings.search.cpus_per_trial)))


def paper_family(run: Run, max_phi: int):
    """The paper's (1.2, 1.1, 1.15) family on this run's data size, emitted like the searched one
    (family.json entries, φ ≤ ``max_phi``)."""
    from .generate import load_baseline

    if max_phi not in run._paper:
        base = run.best["base_resolution"]
        phis = [int(m["phi"]) if float(m["phi"]).is_integer() else m["phi"] for m in run.family if m["phi"] <= max_phi]
        members = family(PAPER, base_resolution=base, phis=phis, num_classes=run.best["num_classes"],
                         baseline=load_baseline(run.best.get("baseline")),
                         resolution_multiple=_resolution_multiple(run.family, run.coefficients, base))
        run._paper[max_phi] = [m.to_dict() for m in members]
    return run._paper[max_phi]


def trained_members(run: Run, label: str) -> list[dict] | None:
    fam = ((run.trained or {}).get("families") or {}).get(label)
    return fam["members"] if fam else None


# ---------------------------------------------------------------- plots
def _figure(size=(7, 4.5)):
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _finish(fig, path):
    if path is not None:
        save_png(fig, Path(path))
    return fig


def plot_landscape(rows: list[dict], best: dict | None = None, path=None, target: float | None = None):
    """Every evaluated candidate in the (α, β) plane (γ follows from the constraint and is printed
    beside each point), coloured by mean accuracy, marker by status; best and the paper's point marked."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig = _figure((7.5, 5.2))
    ax = fig.add_subplot()
    accs = [100 * r["accuracy"] for r in rows if r["accuracy"] is not None]
    norm = Normalize(min(accs, default=0), max(accs, default=100))
    cmap = colormaps["viridis"]
    groups = {}
    for r in rows:
        groups.setdefault(r["status"], {}).setdefault((r["alpha"], r["beta"], r["gamma"]), []).append(r["accuracy"])
    for status, cands in groups.items():
        pts = [(a, b, [v for v in vs if v is not None]) for (a, b, _), vs in cands.items()]
        colors = [cmap(norm(100 * sum(v) / len(v))) if v else (0.75, 0.75, 0.75, 1) for _, _, v in pts]
        marker = STATUS_MARKERS.get(status, "D")
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=colors, marker=marker, s=70, edgecolors="k", linewidths=0.6)
        ax.plot([], [], marker=marker, ls="", mfc="0.85", mec="k", ms=8,
                label=f"{status} ({sum(len(v) for v in cands.values())} trials)")
    for a, b, g in {(r["alpha"], r["beta"], r["gamma"]) for r in rows}:
        ax.annotate(f"γ={g:g}", (a, b), textcoords="offset points", xytext=(5, 5), fontsize=7, color="0.3")
    if any((r["alpha"], r["beta"], r["gamma"]) == (PAPER.alpha, PAPER.beta, PAPER.gamma) for r in rows):
        ax.scatter([PAPER.alpha], [PAPER.beta], marker="D", s=160, facecolors="none", edgecolors="tab:blue",
                   linewidths=1.5, label="paper (1.2, 1.1, 1.15)")
    if best is not None:
        ax.scatter([best["alpha"]], [best["beta"]], marker="*", s=420, facecolors="none", edgecolors="red",
                   linewidths=1.6, label=f"best (α={best['alpha']:g}, β={best['beta']:g}, γ={best['gamma']:g})")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="validation accuracy (%, mean over ok seeds)")
    ax.set_xlabel("α: depth multiplier per unit of φ (×)")
    ax.set_ylabel("β: width multiplier per unit of φ (×)")
    ax.set_title("Search landscape" + (f" on α·β²·γ² ≈ {target:g}" if target else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _finish(fig, path)


def plot_family(curves: dict[str, list[dict]], pick: dict | None = None, path=None):
    """Accuracy vs MACs (log x) of trained families: ``curves`` maps a label to family-table entries
    (``name, macs`` or ``trained_macs, accuracy, accuracy_std``); ``pick`` (``{name, label, rule}``) is starred."""
    fig = _figure()
    ax = fig.add_subplot()
    curves = {label: [{**e, "macs": e.get("trained_macs") or e["macs"]} for e in entries if e.get("accuracy") is not None]
              for label, entries in curves.items()}
    div, unit = macs_unit([e["macs"] for es in curves.values() for e in es])
    for (label, entries), style in zip(curves.items(), ("-", "--", ":")):
        pts = sorted(entries, key=lambda e: e["macs"])
        line = ax.errorbar([e["macs"] / div for e in pts], [100 * e["accuracy"] for e in pts],
                           yerr=[100 * (e.get("accuracy_std") or 0) for e in pts], marker="o", ls=style, capsize=3,
                           label=label)
        for e in pts:
            ax.annotate(e["name"], (e["macs"] / div, 100 * e["accuracy"]), textcoords="offset points", xytext=(4, -10),
                        fontsize=8, color=line[0].get_color())
        if pick and pick.get("label") == label:
            e = next(e for e in pts if e["name"] == pick["name"])
            ax.scatter([e["macs"] / div], [100 * e["accuracy"]], marker="*", s=380, facecolors="none",
                       edgecolors="red", linewidths=1.6, zorder=3, label=f"cost-effective pick: {e['name']} ({pick['rule']})")
    log_x_axis(ax)
    ax.set_xlabel(f"MACs per image ({unit}, log scale)")
    ax.set_ylabel("proxy validation accuracy (%)")
    ax.set_title("Scaled family: accuracy vs cost")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_optuna_history(rows: list[dict], path=None):
    """Optuna optimisation history: each trial's accuracy and the best so far, in creation order."""
    fig = _figure()
    ax = fig.add_subplot()
    x = list(range(1, len(rows) + 1))
    ok = [(i, 100 * r["accuracy"]) for i, r in zip(x, rows) if r["status"] == "ok" and r["accuracy"] is not None]
    best, running = [], -math.inf
    for i, r in zip(x, rows):
        if r["status"] == "ok" and r["accuracy"] is not None:
            running = max(running, 100 * r["accuracy"])
        best.append(running if running > -math.inf else float("nan"))
    ax.scatter([i for i, _ in ok], [a for _, a in ok], s=25, c="0.5", label="trial (status ok)")
    ax.step(x, best, where="post", c="tab:red", label="best so far")
    ax.set_xlabel("trial number (in creation order)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Optuna optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def family_tables(run: Run, report_cfg: ReportConfig) -> dict[str, list[dict]]:
    """The report's family tables by plot label: the searched family (first), and the paper's when it was
    trained for comparison (``compare_paper``, unless the search found the paper's coefficients)."""
    b = run.best
    out = {f"searched (α={b['alpha']:g}, β={b['beta']:g}, γ={b['gamma']:g})":
           family_table(run.family, trained_members(run, "searched"))}
    paper = trained_members(run, "paper")
    if report_cfg.compare_paper and run.coefficients != PAPER and paper:
        out[PAPER_LABEL] = family_table(paper_family(run, report_cfg.max_phi), paper)
    return out


def cost_effective_pick(table: list[dict], report_cfg: ReportConfig) -> dict | None:
    """:func:`pick_cost_effective` on a trained family table by the report's rule (None: nothing trained)."""
    curve = family_curve(table)
    return pick_cost_effective(curve, report_cfg.pick_rule, report_cfg.min_gain_per_doubling) if curve else None


# ---------------------------------------------------------------- markdown
def md_table(headers: list[str], rows: list[list]) -> str:
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _acc(v, std=None, n=1) -> str:
    if v is None:
        return "—"
    return f"{v:.4f}" + (f" ± {std:.4f}" if n and n > 1 and std is not None else "")


def _family_section(title: str, entries: list[dict]) -> str:
    div, unit = macs_unit([e["macs"] for e in entries])
    rows = [[e["name"], f"{e['phi']:g}", f"{e['depth_mult']:.3f}", f"{e['width_mult']:.3f}", e["resolution"],
             f"{e['params'] / 1e6:.3f}", f"{e['macs'] / div:.3f}", f"{e['macs_ratio']:.2f}",
             _acc(e.get("accuracy"), e.get("accuracy_std"), len(e.get("seeds") or []))
             + ("" if e.get("status") in (None, "ok") else f" ({e['status']})")] for e in entries]
    head = ["name", "φ", "depth ×", "width ×", "resolution (px)", "params (M)", f"MACs ({unit})", "MACs / B0",
            "proxy accuracy"]
    return f"## {title}\n\n" + md_table(head, rows)


def _returns_section(points: list[dict], threshold: float) -> str:
    steps = diminishing_returns(points)
    rows = [[f"{s['from']} → {s['to']}", f"{s['macs_ratio']:.2f}", f"{s['doublings']:.3f}", f"{s['gain']:+.4f}",
             f"{s['gain_per_doubling']:+.4f}", "yes" if s["gain_per_doubling"] >= threshold else "no"] for s in steps]
    head = ["step", "MACs ratio", "doublings", "accuracy gain", "gain per doubling", f"≥ {threshold:.4f}"]
    return md_table(head, rows) if rows else "(only one trained member: no step to measure)"


def report_markdown(run: Run, report_cfg: ReportConfig, plots: dict[str, str]) -> str:
    """The whole report.md for a loaded run (``plots``: which PNGs were written, by key)."""
    b, rows = run.best, run.rows
    statuses = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    L = [
        "# scalesearch report", "",
        f"- run: `{run.path}`",
        f"- dataset: {b.get('dataset')} ({b.get('num_classes')} classes, base resolution {b.get('base_resolution')} px), "
        f"strategy: {b.get('strategy')}, trials: {len(rows)} ({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})",
        f"- best coefficients: **α={b['alpha']}, β={b['beta']}, γ={b['gamma']}** (α·β²·γ² = {b['product']:.3f}, "
        f"measured cost ratio {b['cost_ratio']:.2f}), accuracy {_acc(b['accuracy_mean'], b['accuracy_std'], b['n_seeds'])} "
        f"over {b['n_seeds']} seed(s)",
        "- accuracies are top-1 validation accuracy of short proxy trainings (a fraction); compare them with each other, "
        "not with full-training numbers", "",
    ]
    # the family and its returns
    tables = family_tables(run, report_cfg)
    searched = next(iter(tables.values()))
    L += [_family_section(f"Family (α={b['alpha']}, β={b['beta']}, γ={b['gamma']}): the Table 2 analogue", searched), ""]
    trained = run.trained or {}
    if trained_members(run, "searched"):
        budget = trained.get("budget") or {}
        L += [f"Members up to φ = {max(e['phi'] for e in trained_members(run, 'searched')):g} were proxy-trained with the "
              f"search's budget ({budget.get('epochs')} epochs, batch {budget.get('batch_size')}, {budget.get('optimizer')} "
              f"lr {budget.get('lr')}) on the same data, seed(s) {trained.get('seeds')}; numbers in `family_trained.json`.", ""]
    else:
        L += ["No member was trained (report.train_family=false): no accuracy column, no pick.", ""]
    L += ["## Diminishing returns and the cost-effective pick", "",
          f"Rule (report.pick_rule={report_cfg.pick_rule}): {rule_statement(report_cfg.pick_rule, report_cfg.min_gain_per_doubling)}", ""]
    pick = cost_effective_pick(searched, report_cfg)
    if pick:
        L += [_returns_section(family_curve(searched), report_cfg.min_gain_per_doubling), "",
              f"**Cost-effective pick: {pick['name']}** ({pick['reason']}).", ""]
    else:
        L += ["Not available: train the family (report.train_family=true) to measure returns.", ""]
    if "family" in plots:
        L += [f"![accuracy vs MACs of the family]({plots['family']})", ""]
    if report_cfg.compare_paper and run.coefficients == PAPER:
        L += ["## Paper family (1.2, 1.1, 1.15)", "", "The searched coefficients are the paper's: the family above is "
              "the paper's family.", ""]
    elif PAPER_LABEL in tables:
        paper = tables[PAPER_LABEL]
        L += [_family_section("Paper family (1.2, 1.1, 1.15), same budget and data", paper), ""]
        paper_pick = cost_effective_pick(paper, report_cfg)
        if paper_pick:
            L += [_returns_section(family_curve(paper), report_cfg.min_gain_per_doubling), "",
                  f"Paper family's pick by the same rule: {paper_pick['name']} ({paper_pick['reason']}).", ""]
    # the search itself
    L += ["## Search landscape", "",
          "Every evaluated candidate in the (α, β) plane; γ follows from the constraint and is printed beside each "
          "point. Colour: mean accuracy over ok seeds; marker: trial status; red star: best.", "",
          f"![search landscape]({plots['landscape']})", ""]
    if "optuna" in plots:
        L += ["## Optuna history", "", f"![optimisation history]({plots['optuna']})", ""]
    top = top_candidates(rows, report_cfg.top_k)
    stab = seed_stability(rows)
    L += [f"## Seed spread of the top {len(top)} candidates", "",
          md_table(["rank", "α", "β", "γ", "accuracy (mean ± std)", "seeds", "per-seed accuracy"],
                   [[i, c["alpha"], c["beta"], c["gamma"], f"{c['accuracy_mean']:.4f} ± {c['accuracy_std']:.4f}",
                     c["n_seeds"], ", ".join(f"{a:.4f}" for a in c["accuracies"])] for i, c in enumerate(top, 1)]), ""]
    if stab["stable"] is None:
        L += [f"Top-3 stability across seeds: not measurable — {stab['note']}.", ""]
    else:
        L += [f"Top-{stab['k']} ranking stable across seeds {stab['seeds']}: **{'yes' if stab['stable'] else 'no'}** — "
              f"{stab['note']}.", "",
              md_table(["seed"] + [f"#{i}" for i in range(1, stab["k"] + 1)],
                       [[s] + [f"({a:g}, {b_:g}, {g:g})" for a, b_, g in top3] for s, top3 in stab["per_seed_top"].items()]),
              ""]
    if run.ablation:
        L += [ablation_markdown(run.ablation)]
        if "ablation" in plots:
            L += [f"![ablation: accuracy vs MACs per scaling method]({plots['ablation']})", ""]
    return "\n".join(L).rstrip() + "\n"


def validate_report_config(report_cfg: ReportConfig) -> None:
    """One-line ValueErrors for bad report settings (a search can call this before it starts)."""
    if report_cfg.pick_rule not in PICK_RULES:
        raise ValueError(f"report.pick_rule={report_cfg.pick_rule!r} is unknown; allowed: {', '.join(PICK_RULES)}")
    for name, value, low in (("max_phi", report_cfg.max_phi, 0), ("family_seeds", report_cfg.family_seeds, 1),
                             ("top_k", report_cfg.top_k, 1)):
        if value < low:
            raise ValueError(f"report.{name}={value}; allowed: >= {low}")


def write_report(run_dir: Path, report_cfg: ReportConfig, settings: SearchAppConfig | None = None) -> Path:
    """Train what ``report_cfg`` asks for (once), draw the plots, write ``report.md``; returns its path."""
    validate_report_config(report_cfg)
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    settings = settings if settings is not None else load_settings(run_dir)
    train_families(run, report_cfg, settings)
    if report_cfg.ablation and run.ablation is None:
        run.ablation = _ablate(run, settings)

    plots = {"landscape": PLOTS["landscape"]}
    plot_landscape(run.rows, run.best, run_dir / PLOTS["landscape"], target=run.best.get("target"))
    if run.best.get("strategy") == "optuna":
        plot_optuna_history(run.rows, run_dir / PLOTS["optuna"])
        plots["optuna"] = PLOTS["optuna"]
    tables = family_tables(run, report_cfg)
    if any(family_curve(t) for t in tables.values()):
        label, searched = next(iter(tables.items()))
        pick = cost_effective_pick(searched, report_cfg)
        plot_family(tables, pick and {**pick, "label": label}, run_dir / PLOTS["family"])
        plots["family"] = PLOTS["family"]
    if run.ablation:
        plot_ablation(run.ablation, run_dir / PLOTS["ablation"])
        plots["ablation"] = PLOTS["ablation"]
    path = atomic_write_text(run_dir / "report.md", report_markdown(run, report_cfg, plots))
    log.info("wrote %s (%s)", path, ", ".join(plots.values()))
    return path


def _ablate(run: Run, settings: SearchAppConfig | None) -> dict:
    """report.ablation=true: the Fig. 8 ablation with the search's data and budget, into the run dir."""
    from .ablation import write_ablation
    from .data import load_data
    from .generate import load_baseline

    if settings is None:
        raise ValueError(f"report.ablation=true needs the search's settings, but {run.path / '.hydra/config.yaml'} is "
                         "missing; allowed: scalesearch-ablate run_dir=... with the search's dataset/proxy overrides")
    data = load_data(settings.dataset)
    result = run_ablation(data, trial_budget(settings), compound=compound_coefficients(run.coefficients), seeds=[settings.seed],
                          baseline=load_baseline(settings.model.baseline))
    result["same_data_as_search"] = data.fingerprint == run.best.get("dataset_fingerprint")
    write_ablation(result, run.path)
    return result


def run_report_app(cfg: ReportAppConfig, out_dir: Path) -> Path:
    """The ``scalesearch-report`` job: (re-)render the report of ``cfg.run_dir``."""
    if not cfg.run_dir:
        raise ValueError("run_dir is not set; allowed: scalesearch-report run_dir=<a search run directory>")
    return write_report(Path(cfg.run_dir), cfg.report)
