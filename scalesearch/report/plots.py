"""The run report's plots: the search landscape, the seed spread of the top candidates, the proxy's fidelity, the
scaled family's accuracy vs MACs (with the fitted curve, its predictions and the pick) and the Optuna history.
Every accuracy plot shows its uncertainty over seeds and the dataset's chance level. matplotlib (and numpy) are
imported inside the functions (``import scalesearch.report.plots`` stays light)."""

from __future__ import annotations

import math

from ..decide.curves import predict
from ..decide.results import aggregate
from .render import chance_line, error_bars, finish_axes, log_x_axis, macs_unit

__all__ = ["plot_landscape", "plot_seed_spread", "plot_fidelity", "plot_family", "plot_optuna_history",
           "STATUS_MARKERS"]

STATUS_MARKERS = {"ok": "o", "stopped": "v", "diverged": "X", "infeasible": "s", "error": "P"}


def _figure(size=(7, 4.5)):
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def plot_landscape(ranked: list[dict], rows: list[dict], best: dict | None = None, path=None, paper: str | None = None):
    """Every evaluated candidate in the (α, β) plane (γ printed beside), coloured by mean accuracy over its ok
    seeds; marker by status; best and the paper's point marked."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig = _figure((7.5, 5.2))
    ax = fig.add_subplot()
    means = {c["candidate"]: c for c in ranked}
    accs = [100 * c["accuracy_mean"] for c in ranked]
    norm = Normalize(min(accs, default=0), max(accs, default=100))
    cmap = colormaps["viridis"]
    seen = {}
    for r in rows:
        seen.setdefault((r["status"], r["candidate"]), r)
    for status in sorted({s for s, _ in seen}):
        pts = [r for (s, _), r in seen.items() if s == status]
        colors = [cmap(norm(100 * means[r["candidate"]]["accuracy_mean"])) if r["candidate"] in means and status == "ok"
                  else (0.75, 0.75, 0.75, 1) for r in pts]
        marker = STATUS_MARKERS.get(status, "D")
        ax.scatter([r["alpha"] for r in pts], [r["beta"] for r in pts], c=colors, marker=marker, s=70, edgecolors="k",
                   linewidths=0.6)
        ax.plot([], [], marker=marker, ls="", mfc="0.85", mec="k", ms=8, label=f"{status} ({len(pts)} candidates)")
    for c in ranked:
        half = "" if c.get("half_width") is None else f" ±{100 * c['half_width']:.0f}"
        ax.annotate(f"γ={c['gamma']:g}, {100 * c['accuracy_mean']:.0f}{half} %", (c["alpha"], c["beta"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=7, color="0.3")
    if paper and paper in means:
        p = means[paper]
        ax.scatter([p["alpha"]], [p["beta"]], marker="D", s=160, facecolors="none", edgecolors="tab:blue",
                   linewidths=1.5, label="paper's point")
    if best is not None:
        ax.scatter([best["alpha"]], [best["beta"]], marker="*", s=420, facecolors="none", edgecolors="red",
                   linewidths=1.6, label=f"best (α={best['alpha']:g}, β={best['beta']:g}, γ={best['gamma']:g})")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax,
                 label="proxy accuracy (%: the search's mean over ok seeds)")
    return finish_axes(fig, ax, path, "α: depth multiplier per unit of φ (×)",
                        "β: width multiplier per unit of φ (×)",
                        "Search landscape (labels: effective γ, mean accuracy ± 95 % half-width)",
                        fontsize=8, loc="best")


def plot_seed_spread(ranked: list[dict], chance: float | None = None, path=None, k: int = 10):
    """Each top candidate's per-seed accuracies (dots) and its mean with the 95 % interval (bar)."""
    fig = _figure()
    ax = fig.add_subplot()
    top = ranked[:k]
    for i, c in enumerate(top):
        ax.scatter([i] * len(c["accuracies"]), [100 * a for a in c["accuracies"]], s=18, c="0.5", zorder=2,
                   label="a seed" if i == 0 else None)
        ax.errorbar([i], [100 * c["accuracy_mean"]], yerr=[[error_bars([c])[0][0]], [error_bars([c])[1][0]]]
                    if c.get("accuracy_low") is not None else None, marker="_", ms=18, capsize=4, c="tab:red",
                    zorder=3, label="mean, 95 % CI" if i == 0 else None)
    chance_line(ax, chance)
    ax.set_xticks(range(len(top)), [f"{c['alpha']:g}/{c['beta']:g}/{c['gamma']:g}" for c in top], rotation=30,
                  fontsize=7)
    return finish_axes(fig, ax, path, "candidate α/β/γ, best first", "proxy accuracy (%, the search's trainings)",
                        "Seed spread of the search's top candidates")


def plot_fidelity(proxy: list[dict], validation: list[dict], chance: float | None = None, best: str | None = None,
                  paper: str | None = None, path=None):
    """Proxy vs validation accuracy of the validated candidates, with 95 % intervals on both axes."""
    fig = _figure((6, 5))
    ax = fig.add_subplot()
    p = {c["candidate"]: c for c in proxy}
    pts = [(p[v["candidate"]], v) for v in validation if v["candidate"] in p]
    for pc, vc in pts:
        xerr = error_bars([pc]) if pc.get("accuracy_low") is not None else None
        yerr = error_bars([vc]) if vc.get("accuracy_low") is not None else None
        ax.errorbar([100 * pc["accuracy_mean"]], [100 * vc["accuracy_mean"]], xerr=xerr, yerr=yerr, marker="o",
                    c="tab:blue", capsize=3)
        ax.annotate(f"{pc['alpha']:g}/{pc['beta']:g}/{pc['gamma']:g}",
                    (100 * pc["accuracy_mean"], 100 * vc["accuracy_mean"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=7)
    for name, marker, color, label in ((best, "*", "red", "recommended"), (paper, "D", "tab:green", "paper's point")):
        hit = [(pc, vc) for pc, vc in pts if pc["candidate"] == name]
        if hit:
            ax.scatter([100 * hit[0][0]["accuracy_mean"]], [100 * hit[0][1]["accuracy_mean"]], marker=marker, s=260,
                       facecolors="none", edgecolors=color, linewidths=1.6, zorder=3, label=label)
    if chance:
        ax.axvline(100 * chance, color="0.5", ls=":", lw=1)
        chance_line(ax, chance)
    return finish_axes(fig, ax, path, "proxy accuracy (%, search budget)", "validation accuracy (%, longer budget)",
                        "Proxy fidelity: does the short ranking hold?")


def plot_family(curves: dict[str, list[dict]], pick: dict | None = None, path=None, chance: float | None = None,
                analysis: dict | None = None):
    """Accuracy vs MACs (log x) of trained families with 95 % intervals; the fitted curve of the first family
    and its predictions (interval band) for the untrained members; ``pick`` starred (red and named the cost-effective
    pick only when ``pick["decided"]``, else grey as a best guess with its consistent range)."""
    fig = _figure()
    ax = fig.add_subplot()
    curves = {label: [e for e in entries if e.get("accuracy") is not None] for label, entries in curves.items()}
    allm = ([e["macs"] for es in curves.values() for e in es]
            + [p["macs"] for p in (analysis or {}).get("predictions", [])])
    div, unit = macs_unit(allm)
    _plot_family_curves(ax, curves, div, (analysis or {}).get("fit", {}).get("noise_sd"))
    if analysis:
        _plot_fit(ax, analysis, allm, div)
    if pick:
        _plot_pick(ax, pick, curves, analysis, div)
    chance_line(ax, chance)
    log_x_axis(ax)
    return finish_axes(fig, ax, path, f"MACs per image ({unit}, log scale)",
                        "proxy validation accuracy (%, 95 % CI over seeds)", "Scaled family: accuracy vs cost",
                        grid={"which": "both"}, fontsize=7)


def _plot_family_curves(ax, curves: dict[str, list[dict]], div: float, noise: float | None) -> None:
    """Each trained family's members with their 95 % intervals (one seed: ±1.96 × ``noise``), named."""
    for (label, entries), style in zip(curves.items(), ("-", "--", ":")):
        pts = sorted(entries, key=lambda e: e["macs"])
        err = error_bars(pts)
        if noise:  # a member trained with one seed: ±1.96 × the search's pooled seed sd
            for k, e in enumerate(pts):
                if e.get("accuracy_low") is None:
                    err[0][k] = err[1][k] = 100 * 1.96 * noise
        line = ax.errorbar([e["macs"] / div for e in pts], [100 * e["accuracy"] for e in pts], yerr=err, marker="o",
                           ls=style, capsize=3, label=label + (" (1 seed: ±1.96·seed sd)" if noise and any(
                               e.get("accuracy_low") is None for e in pts) else ""))
        for e in pts:
            ax.annotate(e["name"], (e["macs"] / div, 100 * e["accuracy"]), textcoords="offset points", xytext=(4, -10),
                        fontsize=8, color=line[0].get_color())


def _plot_fit(ax, analysis: dict, allm: list[float], div: float) -> None:
    """The fitted curve over the plotted MACs with its interval band, and the untrained members' predictions."""
    import numpy as np

    fit = analysis["_fit"]
    lo_m, hi_m = min(allm), max(allm)
    xs = np.geomspace(lo_m, hi_m, 60)
    ys = predict(fit, list(xs))
    ax.plot(xs / div, [100 * y["accuracy"] for y in ys], c="0.3", lw=1, label=f"fit: {fit['form']}")
    if ys and ys[0]["low"] is not None:
        ax.fill_between(xs / div, [100 * y["low"] for y in ys], [100 * y["high"] for y in ys], color="0.3",
                        alpha=0.12, label="95 % interval (seed noise)")
    pr = analysis["predictions"]
    if pr:
        ax.scatter([p["macs"] / div for p in pr], [100 * p["accuracy"] for p in pr], marker="o", facecolors="none",
                   edgecolors="0.3", label="predicted (untrained)")
        for p in pr:
            ax.annotate(p["name"], (p["macs"] / div, 100 * p["accuracy"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color="0.3")


def _plot_pick(ax, pick: dict, curves: dict[str, list[dict]], analysis: dict | None, div: float) -> None:
    """The pick's legend entry and its star (red when decided, else grey)."""
    what = ("cost-effective pick" if pick.get("decided") else "best guess, not decided"
            + (f" (consistent: {pick['range'][0]}–{pick['range'][1]})" if pick.get("range") else ""))
    ax.plot([], [], marker="*", ls="", ms=14, mfc="none", mec="red" if pick.get("decided") else "0.4",
            label=f"{what}: {pick['name']} ({pick['rule']}, {pick.get('basis', 'measured')})")
    e = next((e for es in curves.values() for e in es if e["name"] == pick["name"]), None) or next(
        (p for p in (analysis or {}).get("predictions", []) if p["name"] == pick["name"]), None)
    if e:
        ax.scatter([e["macs"] / div], [100 * e["accuracy"]], marker="*", s=380, facecolors="none",
                   edgecolors="red" if pick.get("decided") else "0.4",
                   linewidths=1.6, zorder=3)


def plot_optuna_history(rows: list[dict], path=None, chance: float | None = None):
    """Optuna history: each trial's accuracy, its candidate's mean over seeds with the 95 % interval, and the
    best candidate mean so far, in creation order."""
    fig = _figure()
    ax = fig.add_subplot()
    agg = {c["candidate"]: c for c in aggregate(rows)}
    x = list(range(1, len(rows) + 1))
    ok = [(i, r) for i, r in zip(x, rows) if r["status"] == "ok" and r["accuracy"] is not None]
    ax.scatter([i for i, _ in ok], [100 * r["accuracy"] for _, r in ok], s=18, c="0.6", label="trial (one seed)")
    cands = [(i, agg[r["candidate"]]) for i, r in ok if r["candidate"] in agg]
    ax.errorbar([i for i, _ in cands], [100 * c["accuracy_mean"] for _, c in cands],
                yerr=error_bars([c for _, c in cands]), fmt="none", ecolor="tab:blue", alpha=0.5, capsize=2,
                label="its candidate: mean, 95 % CI")
    best, running = [], -math.inf
    for i, r in zip(x, rows):
        if r["status"] == "ok" and r.get("candidate") in agg:
            running = max(running, 100 * agg[r["candidate"]]["accuracy_mean"])
        best.append(running if running > -math.inf else float("nan"))
    ax.step(x, best, where="post", c="tab:red", label="best candidate mean so far")
    chance_line(ax, chance)
    return finish_axes(fig, ax, path, "trial number (in creation order)", "proxy accuracy (%, the search's trials)",
                        "Optuna optimisation history")
