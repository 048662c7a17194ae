"""``scalesearch-compare``: the coefficients found on several datasets, side by side.

Give it a Hydra multirun directory (``scalesearch -m dataset=...``) and/or run directories. Runs are
comparable when everything that defines a search's answer is the same — the proxy budget, the search
(space, strategy, constraint, cost, φ, seeds, grid), the model and the validation stage; the dataset and
the seed may differ. Otherwise it refuses and names the setting that differs.

Writes ``compare.md`` (one table: the recommended coefficients per dataset, their accuracy with its 95 %
interval, the difference to the paper's point, whether the winner is decided, the proxy fidelity, and the
*confidence set* — the 95 % family-wise confidence set of the best, :func:`scalesearch.decide.stats.confidence_set`),
``compare.json``,
``plots/compare_coefficients.png`` (α, β, γ per dataset with the range of the confidence set, the paper's
values as lines) and ``plots/compare_families.png`` (the trained families' accuracy vs MACs relative to
B0, overlaid, with intervals and each dataset's chance level).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import CompareAppConfig, flatten
from ..plan.preflight import migrate_settings
from ..io import atomic_write_json, atomic_write_text, read_run_json, save_png
from ..report.render import error_bars, log_x_axis
from ..decide.results import TABLES, aggregate, deciding_rows, fmt_mean_ci, per_seed, read_table
from ..run.rundir import COMPARE, claim
from ..scaling.coefficients import PAPER
from ..decide.shares import SHARE_METHOD, ShareModel
from ..decide import stats

log = logging.getLogger("scalesearch")

__all__ = ["find_runs", "load_runs", "check_comparable", "confidence_set", "compare_markdown", "run_compare_app"]

# settings that may differ between compared runs; everything else must be equal
MAY_DIFFER = ("dataset", "seed", "cluster", "trials", "verbose", "resume", "family", "report")


def find_runs(paths: list[str]) -> list[Path]:
    """Finished run directories (with best.json) in ``paths``: each a run or a multirun directory."""
    if not paths:
        raise ValueError("runs=[] is empty; allowed: runs=[<a multirun directory>] or runs=[<run dir>,<run dir>,...]")
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise ValueError(f"runs contains {p}, which is not a directory; allowed: run or multirun directories")
        found = [p] if (p / "best.json").is_file() else sorted(d for d in p.iterdir() if (d / "best.json").is_file())
        if not found:
            raise ValueError(f"runs contains {p}, which holds no finished run (no best.json in it or its "
                             "sub-directories); "
                             "allowed: a multirun directory with finished jobs, or finished run directories")
        out += found
    return list(dict.fromkeys(out))


def _defining(config: dict) -> dict:
    """The settings that must be equal between compared runs (an older run's moved keys in their new place)."""
    flat = flatten({k: v for k, v in migrate_settings(config).items() if k not in MAY_DIFFER})
    return {k: v for k, v in flat.items() if k != "proxy.threads"}


def load_runs(paths: list[Path]) -> list[dict]:
    from ..report.family import family_table
    from ..run.resume import read_state

    runs = []
    for p in paths:
        state = read_state(p)
        if state is None:
            raise ValueError(f"{p} has best.json but no search.json; allowed: run directories written by scalesearch")
        best = read_run_json(p / "best.json")
        fam = read_run_json(p / "family.json")
        stage_table = TABLES["validation"] if best.get("decided_by") == "validation" else TABLES["search"]
        runs.append({"path": p, "config": state["config"], "best": best,
                     "rows": deciding_rows(read_table(p / stage_table)),
                     "family": family_table(fam.get("members", []) if isinstance(fam, dict) else fam,
                                            read_table(p / TABLES["family"])),
                     "fidelity": read_run_json(p / "fidelity.json") if (p / "fidelity.json").is_file() else None})
    return runs


def check_comparable(runs: list[dict]) -> None:
    """A one-line ValueError naming the first setting that differs (and in which runs)."""
    ref = _defining(runs[0]["config"])
    for r in runs[1:]:
        other = _defining(r["config"])
        for k in sorted(set(ref) | set(other)):
            if ref.get(k) != other.get(k):
                raise ValueError(f"runs {runs[0]['path']} and {r['path']} differ in {k} "
                                 f"({ref.get(k)!r} vs {other.get(k)!r}): "
                                 "their coefficients are not comparable; allowed: runs that differ only in dataset "
                                 "and seed "
                                 "(e.g. one scalesearch -m dataset=... multirun)")


def confidence_set(rows: list[dict], best: dict) -> list[dict]:
    """The aggregate entries of the run's 95 % family-wise confidence set of the best: best.json's
    ``confidence_set`` when it has one, else recomputed from the deciding stage's ``rows`` by
    :func:`scalesearch.decide.stats.confidence_set` (accuracy resolution 1/``val_images`` from best.json)."""
    entries = {c["candidate"]: c for c in aggregate(rows)}
    members = best.get("confidence_set")
    if members is None:
        members = stats.confidence_set(per_seed(rows), best.get("val_images"))["members"]
    return [entries[m] for m in members if m in entries]


def _decided(best: dict, vs_runner_up: dict | None) -> str:
    """"yes" / "no" / "too few seeds" (best.json ``decided``; older runs: the runner-up comparison)."""
    if "decided" in best:
        return "yes" if best["decided"] else "no"
    if not vs_runner_up:
        return "—"
    return {True: "yes", False: "no", None: "too few seeds"}[vs_runner_up.get("distinguishable")]


def _label(run: dict) -> str:
    ds = run["config"]["dataset"]
    name = ds["name"] + (f" ({Path(ds['root']).name})" if ds.get("root") else "")
    return name + f", seed {run['config']['seed']}"


def compare_markdown(runs: list[dict], plots: dict) -> str:
    lines = ["# scalesearch: coefficients across datasets", "",
             f"{len(runs)} runs with the same proxy budget, search and validation settings (they differ only in "
             f"dataset and seed). Accuracies: mean over seeds with the 95 % t interval; the confidence set holds every "
             f"candidate "
             f"the run cannot tell from its winner (95 % family-wise: two-sided paired t-tests over the shared seeds, "
             f"Bonferroni α/(k−1); decided = the set holds one candidate). Paper: "
             f"(α, β, γ) = ({PAPER.alpha}, {PAPER.beta}, {PAPER.gamma}).", "",
             "| dataset | α | β | γ | accuracy | decided by | vs the paper's point | decided (95 % family-wise) | "
             "τ (fidelity) | "
             "confidence set (α, β, γ) | run |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        b = r["best"]
        vp, vr = b.get("vs_paper"), b.get("vs_runner_up")
        paper = ("is the paper's point" if vp and vp.get("same") else "not evaluated" if not vp else
                 f"{vp['mean']:+.3f} [{vp['low']:+.3f}, {vp['high']:+.3f}]" if vp.get("low") is not None else
                 f"{vp['mean']:+.3f} (1 seed)")
        paper += " — outside the set of the best" if vp and vp.get("in_set") is False else ""
        dist = _decided(b, vr)
        tau = (r["fidelity"] or {}).get("kendall_tau")
        cs = ", ".join(f"({c['alpha']:g}, {c['beta']:g}, {c['gamma']:g})" for c in r["confidence"])
        acc = fmt_mean_ci({"accuracy_mean": b["accuracy_mean"], "accuracy_low": b.get("accuracy_low"),
                           "accuracy_high": b.get("accuracy_high"), "n_seeds": b["n_seeds"]})
        lines.append(f"| {_label(r)} | {b['alpha']:g} | {b['beta']:g} | {b['gamma']:g} | {acc} | {b['decided_by']} | "
                     f"{paper} | {dist} | {'—' if tau is None else f'{tau:+.2f}'} | {cs} | `{r['path']}` |")
    lines += ["", f"![coefficients per dataset]({plots['coefficients']})", ""] + _shares_part(runs)
    if "families" in plots:
        lines += [f"![family accuracy per dataset]({plots['families']})", ""]
    return "\n".join(lines)


def _shares_part(runs: list[dict]) -> list[str]:
    """Each run's model over shares side by side: the effect of moving a doubling's share into each dimension, and
    the shares (and coefficients) where the compute peaks when a run located an optimum."""
    lines = ["## How the compute splits, per dataset", "",
             f"Effect per unit share moved into the dimension, with its 95 % interval ({SHARE_METHOD}).", "",
             "| dataset | depth | width | resolution | matters | shares' F test p | candidates | where it peaks |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        d = r["best"].get("shares")
        if not d or d["status"] != "fitted":
            why = d["sentence"] if d else "not computed (a run from before the model over shares)"
            lines.append(f"| {_label(r)} | {why} | | | | | | |")
            continue
        m = ShareModel.from_dict(d)
        eff = [f"{e.estimate:+.3f} [{e.low:+.3f}, {e.high:+.3f}]" for e in m.effects]
        o = m.optimum
        peak = "—" if o is None or o.status != "located" else "d {:.2f} / w {:.2f} / r {:.2f}".format(*o.shares)
        if o is not None and o.status == "located" and o.alpha:
            peak += f" (α={o.alpha.estimate:g}, β={o.beta.estimate:g}, γ={o.gamma.estimate:g})"
        lines.append(f"| {_label(r)} | {' | '.join(eff)} | {', '.join(m.matters) or 'none'} | {m.shares_p:.2g} | "
                     f"{m.n_candidates} | {peak} |")
    return lines + [""]


def plot_coefficients(runs: list[dict], path: Path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    labels = [_label(r) for r in runs]
    for ax, key, paper, sym in zip(axes, ("alpha", "beta", "gamma"), (PAPER.alpha, PAPER.beta, PAPER.gamma), "αβγ"):
        for i, r in enumerate(runs):
            vals = [c[key] for c in r["confidence"]]
            ax.plot([min(vals), max(vals)], [i, i], c="tab:blue", lw=6, alpha=0.25,
                    label="confidence set" if i == 0 else None)
            ax.scatter([r["best"][key]], [i], c="tab:red", marker="*", s=120, zorder=3,
                       label="recommended" if i == 0 else None)
        ax.axvline(paper, color="0.4", ls="--", lw=1, label="paper")
        ax.set_xlabel(f"{sym} ({key})")
        ax.grid(alpha=0.3)
    axes[0].set_yticks(range(len(runs)), labels, fontsize=8)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Coefficients found per dataset (bar: the candidates not distinguishable from the winner)")
    save_png(fig, path)
    return fig


def plot_families(runs: list[dict], path: Path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for r in runs:
        pts = sorted((e for e in r["family"] if e.get("accuracy") is not None), key=lambda e: e["macs"])
        if not pts:
            continue
        line = ax.errorbar([e["macs_ratio"] for e in pts], [100 * e["accuracy"] for e in pts], yerr=error_bars(pts),
                           marker="o", capsize=3, label=_label(r))
        ax.axhline(100 / r["best"]["num_classes"], color=line[0].get_color(), ls=":", lw=1)
    log_x_axis(ax)
    ax.set_xlabel("MACs relative to the run's B0 proxy (log scale)")
    ax.set_ylabel("proxy validation accuracy (%, 95 % CI; dotted: chance)")
    ax.set_title("Trained families per dataset")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_png(fig, path)
    return fig


def run_compare_app(cfg: CompareAppConfig, out_dir: Path) -> dict:
    """The ``scalesearch-compare`` job: the runs read and checked, then compare.md / .json / plots written into
    ``out_dir`` (held for this process; another app's run is refused)."""
    runs = load_runs(find_runs(list(cfg.runs)))
    check_comparable(runs)
    for r in runs:
        r["confidence"] = confidence_set(r["rows"], r["best"]) or [r["best"]]
    elsewhere = "another out_dir" if cfg.out_dir else "another hydra.run.dir"
    with claim(Path(cfg.out_dir) if cfg.out_dir else Path(out_dir), COMPARE, elsewhere=elsewhere) as out:
        return _write_comparison(runs, out)


def _write_comparison(runs: list[dict], out: Path) -> dict:
    plots = {"coefficients": "plots/compare_coefficients.png"}
    plot_coefficients(runs, out / plots["coefficients"])
    if any(e.get("accuracy") is not None for r in runs for e in r["family"]):
        plots["families"] = "plots/compare_families.png"
        plot_families(runs, out / plots["families"])
    atomic_write_text(out / "compare.md", compare_markdown(runs, plots))
    doc = {"runs": [{"path": str(r["path"]), "label": _label(r), "dataset": r["config"]["dataset"],
                     **{k: r["best"].get(k) for k in ("alpha", "beta", "gamma", "accuracy_mean", "accuracy_low",
                                                      "accuracy_high", "n_seeds", "decided_by", "vs_paper",
                                                      "vs_runner_up", "decided", "shares")},
                     "kendall_tau": (r["fidelity"] or {}).get("kendall_tau"),
                     "confidence_set": [[c["alpha"], c["beta"], c["gamma"]] for c in r["confidence"]]} for r in runs],
           "paper": [PAPER.alpha, PAPER.beta, PAPER.gamma]}
    atomic_write_json(out / "compare.json", doc)
    log.info("compared %d runs: %s", len(runs), out / "compare.md")
    print((out / "compare.md").read_text(), flush=True)
    return doc
