"""Rendering shared by every app's artifacts: the plot helpers (axes, error bars, chance line, log-cost axis) and
the Fig. 8 ablation's table and plot. Markdown tables themselves are :func:`scalesearch.decide.results.md_table`.
matplotlib is imported inside the functions (``import scalesearch.report.render`` stays light)."""

from __future__ import annotations

from pathlib import Path

from ..io import save_png
from ..decide.results import md_table

__all__ = ["macs_unit", "log_x_axis", "error_bars", "chance_line", "finish", "finish_axes", "ablation_markdown",
           "plot_ablation"]

SINGLE = ("depth-only", "width-only", "resolution-only")


def macs_unit(values) -> tuple[float, str]:
    """(divisor, unit) to print MACs in: G when the largest is at least 1e9, else M."""
    return (1e9, "G") if max(values, default=0) >= 1e9 else (1e6, "M")


def log_x_axis(ax) -> None:
    """Log x axis with plain numbers (20, 30, 50) at the major and, over short ranges, minor ticks."""
    from matplotlib.ticker import LogFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.5)))


def error_bars(entries: list[dict]) -> list[list[float]]:
    """Asymmetric error bars (percentage points) from the 95 % intervals (of ``accuracy`` or ``accuracy_mean``); 0
    where there is none (one seed)."""
    def mean(e):
        return e["accuracy"] if "accuracy" in e else e["accuracy_mean"]

    lo = [100 * (mean(e) - e["accuracy_low"]) if e.get("accuracy_low") is not None else 0 for e in entries]
    hi = [100 * (e["accuracy_high"] - mean(e)) if e.get("accuracy_high") is not None else 0 for e in entries]
    return [lo, hi]


def chance_line(ax, chance: float | None) -> None:
    if chance:
        ax.axhline(100 * chance, color="0.5", ls=":", lw=1, label=f"chance ({100 * chance:.0f} %)")


def finish(fig, path):
    """Save ``fig`` to ``path`` (atomic; None: not saved) and return it."""
    if path is not None:
        save_png(fig, Path(path))
    return fig


def finish_axes(fig, ax, path, xlabel: str, ylabel: str, title: str, grid: dict | None = None, **legend):
    """A plot's axis labels, title, grid (``grid``: its extra keywords) and legend (``legend``: its keywords,
    fontsize 8 when none), then saved (:func:`finish`)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, **(grid or {}))
    ax.legend(**(legend or {"fontsize": 8}))
    return finish(fig, path)


def _fmt_acc(r: dict) -> str:
    if r.get("accuracy") is None:
        return f"n/a ({r.get('status')})"
    if r.get("accuracy_low") is None:
        return f"{r['accuracy']:.4f} (1 seed, no spread)"
    return f"{r['accuracy']:.4f} [{r['accuracy_low']:.4f}, {r['accuracy_high']:.4f}]"


def ablation_markdown(result: dict) -> str:
    """The ablation table and, per φ, which variant won."""
    rows = result["rows"]
    div, unit = macs_unit([r["macs"] or 0 for r in rows])
    lines = [
        "## Ablation: single-dimension vs compound scaling (the paper's Fig. 8)", "",
        f"Variants of the baseline at a nominal cost of 2^φ × B0, proxy-trained on {result['dataset']} with the same "
        f"budget and seed(s) {result['seeds']}. depth-only: d = 2^φ; width-only: w = 2^(φ/2); resolution-only: "
        f"r = 2^(φ/2). Measured MACs are of the built (rounded) proxy model. Accuracy is a fraction: mean over seeds "
        f"with its 95 % t interval (chance {1 / result.get('num_classes', 10):.3f}).", "",
        md_table(["φ", "method", "depth", "width", "resolution (px)", "nominal MACs / B0", f"MACs ({unit})",
                  "measured MACs / B0", "params (M)", "accuracy"],
                 [[f"{r['phi']:g}", r["method"], f"{r['depth']:.3f}", f"{r['width']:.3f}", r["resolution"],
                   f"{r['nominal']:.2f}", f"{(r['macs'] or 0) / div:.3f}", f"{r['macs_ratio']:.2f}",
                   f"{(r['params'] or 0) / 1e6:.3f}", _fmt_acc(r)] for r in rows]),
        "",
    ]
    for phi in result["phis"]:
        at = [r for r in rows if r["phi"] == phi and r["accuracy"] is not None]
        if not at:
            continue
        win = max(at, key=lambda r: r["accuracy"])
        single = [r for r in at if r["method"] in SINGLE]
        comp = [r for r in at if r["method"].startswith("compound")]
        verdict = ""
        if single and comp:
            best_c, best_s = max(comp, key=lambda r: r["accuracy"]), max(single, key=lambda r: r["accuracy"])
            diff = best_c["accuracy"] - best_s["accuracy"]
            verdict = (f"; best compound ({best_c['method']}) minus best single dimension ({best_s['method']}): "
                       f"{diff:+.4f} ({'compound wins' if diff > 0 else 'compound does not win'})")
        lines.append(f"- φ = {phi:g}: most accurate is {win['method']} ({win['accuracy']:.4f}){verdict}.")
    return "\n".join(lines) + "\n"


def plot_ablation(result: dict, path: str | Path | None = None):
    """Accuracy vs measured MACs (log x): one line per scaling method from B0 through φ = 1, 2, ..."""
    from matplotlib.figure import Figure

    rows = [r for r in result["rows"] if r.get("macs")]
    div, unit = macs_unit([r["macs"] for r in rows])
    base = rows[0]
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "baseline"))
    for method in methods:
        pts = [base] + sorted((r for r in rows if r["method"] == method), key=lambda r: r["phi"])
        pts = [p for p in pts if p["accuracy"] is not None]
        lo = [100 * (p["accuracy"] - p["accuracy_low"]) if p.get("accuracy_low") is not None else 0 for p in pts]
        hi = [100 * (p["accuracy_high"] - p["accuracy"]) if p.get("accuracy_high") is not None else 0 for p in pts]
        ax.errorbar([p["macs"] / div for p in pts], [100 * p["accuracy"] for p in pts], yerr=[lo, hi], marker="o",
                    capsize=3, ls="-" if method.startswith("compound") else "--", label=method)
    if base["accuracy"] is not None:
        ax.scatter([base["macs"] / div], [100 * base["accuracy"]], marker="s", s=60, c="k", zorder=3, label="B0")
    ax.axhline(100 / result.get("num_classes", 10), color="0.5", ls=":", lw=1, label="chance")
    log_x_axis(ax)
    ax.set_xlabel(f"MACs per image ({unit}, log scale; measured)")
    ax.set_ylabel("proxy validation accuracy (%, 95 % CI over seeds)")
    ax.set_title(f"Scaling one dimension vs compound scaling ({result['dataset']})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if path is not None:
        save_png(fig, Path(path))
    return fig




def _triangle_xy(d: float, w: float, r: float) -> tuple[float, float]:
    """A point of the shares' triangle in the plane: depth at (0, 0), width at (1, 0), resolution at the top."""
    del d
    return w + r / 2, r * 0.8660254037844386


def plot_shares(model, path: str | Path | None = None, paper: tuple[float, float, float] | None = None):
    """The shares' triangle: the candidates (colour: seed-adjusted mean accuracy), the model's fitted accuracy as
    contours (a linear model: parallel lines; the quadratic where an optimum was fitted, with the optimum and its 95 %
    region), the paper's point. ``model``: a ``shares.ShareModel``."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.tri import Triangulation

    fig = Figure(figsize=(6, 5.2), layout="constrained")
    ax = fig.add_subplot()
    corners = [_triangle_xy(1, 0, 0), _triangle_xy(0, 1, 0), _triangle_xy(0, 0, 1)]
    ax.fill(*zip(*corners), fc="none", ec="0.3", lw=1)
    for (x, y), name, ha in zip(corners, ("depth", "width", "resolution"), ("right", "left", "center")):
        ax.annotate(f"all {name}", (x, y), xytext=(0, -12) if name != "resolution" else (8, -4),
                    textcoords="offset points", ha=ha if name != "resolution" else "left", fontsize=9)
    opt = model.optimum if model.optimum is not None and model.optimum.coefficients else None
    if model.status == "fitted":
        g = np.linspace(0, 1, 41)
        dw = [(1 - w - r, w, r) for w in g for r in g if w + r <= 1 + 1e-9]
        xy = np.array([_triangle_xy(*p) for p in dw])
        c0, cw, cr = model.coefficients
        z = np.array([100 * (opt.predict(p) if opt else c0 + cw * p[1] + cr * p[2]) for p in dw])
        cs = ax.tricontour(Triangulation(xy[:, 0], xy[:, 1]), z, levels=8, colors="0.55", linewidths=0.8)
        ax.clabel(cs, fontsize=7, fmt="%.1f")
    if opt is not None and opt.region:
        xy = np.array([_triangle_xy(*p) for p in opt.region])
        ax.scatter(xy[:, 0], xy[:, 1], s=10, c="tab:orange", alpha=0.35, linewidths=0, zorder=2,
                   label="95 % region of the optimum")
    if opt is not None and opt.shares:
        ax.scatter(*_triangle_xy(*opt.shares), marker="P", s=150, c="tab:orange", edgecolors="k", zorder=5,
                   label="fitted optimum")
    if model.points:
        xy = np.array([_triangle_xy(*p[1:4]) for p in model.points])
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=[100 * p[4] for p in model.points], cmap="viridis", s=45,
                        edgecolors="k", linewidths=0.5, zorder=3)
        fig.colorbar(sc, ax=ax, label="candidate's mean accuracy (%, seed-adjusted)")
    if paper is not None:
        ax.scatter(*_triangle_xy(*paper), marker="*", s=180, c="tab:red", zorder=4, label="paper's (α, β)")
    if paper is not None or opt is not None:
        ax.legend(fontsize=8, loc="upper right")
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Shares of a doubling of compute and the model's fit\n(contours, %; "
                 "beyond the candidates: extrapolated)", fontsize=9, pad=14)
    return finish(fig, path)
