"""The paper's Fig. 8 experiment on your data: scale B0 in one dimension, or compoundly, to the same
nominal cost and compare proxy accuracy at the *measured* MACs.

At compound coefficient φ every variant targets a nominal cost of 2^φ × B0:

* depth-only       d = 2^φ           (MACs ∝ d)
* width-only       w = 2^(φ/2)       (MACs ∝ w²)
* resolution-only  r = 2^(φ/2)       (MACs ∝ r²), resolution round(base · r)
* compound         (α^φ, β^φ, γ^φ)   with α·β²·γ² ≈ 2 (the searched best and/or the paper's)

Rounding (ceil of repeats, channels to multiples of 8, feature-map sizes) moves the measured MACs
off the nominal ones, so the table and plot use the measured numbers. Every variant is trained with
the same proxy budget, data and seeds (:func:`train_over_seeds`).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from pathlib import Path

from .config import AblateAppConfig
from .io import atomic_write_json, atomic_write_text, read_json, save_png
from .scaling import PAPER, Coefficients
from .spec import B0, ModelSpec

log = logging.getLogger("scalesearch")

__all__ = ["ablation_variants", "train_over_seeds", "run_ablation", "ablation_markdown", "plot_ablation",
           "write_ablation", "run_ablate_app", "compound_coefficients", "macs_unit", "log_x_axis", "AblateAppConfig"]

SINGLE = ("depth-only", "width-only", "resolution-only")
COMPOUND_SOURCES = ("best", "paper")


def macs_unit(values) -> tuple[float, str]:
    """(divisor, unit) to print MACs in: G when the largest is at least 1e9, else M."""
    return (1e9, "G") if max(values, default=0) >= 1e9 else (1e6, "M")


def log_x_axis(ax) -> None:
    """Log x axis with plain numbers (20, 30, 50) at the major and, over short ranges, minor ticks."""
    from matplotlib.ticker import LogFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.5)))


def ablation_variants(base_resolution: int, phis=(1, 2), compound: dict[str, Coefficients] | None = None) -> list[dict]:
    """B0 (φ = 0) and, for each φ, the single-dimension and compound variants at nominal cost 2^φ."""
    if not phis or any(p <= 0 for p in phis):
        raise ValueError(f"phis={list(phis)}; allowed: a non-empty list of values > 0")
    out = [dict(method="baseline", phi=0.0, depth=1.0, width=1.0, resolution=base_resolution, nominal=1.0)]
    for phi in phis:
        half = 2 ** (phi / 2)
        out += [
            dict(method="depth-only", phi=float(phi), depth=2.0**phi, width=1.0, resolution=base_resolution),
            dict(method="width-only", phi=float(phi), depth=1.0, width=half, resolution=base_resolution),
            dict(method="resolution-only", phi=float(phi), depth=1.0, width=1.0,
                 resolution=int(round(base_resolution * half))),
        ]
        for v in out[-3:]:
            v["nominal"] = 2.0**phi
        for label, c in (compound or {}).items():
            d, w, r = c.multipliers(phi)
            out.append(dict(method=f"compound {label}", phi=float(phi), depth=d, width=w,
                            resolution=int(round(base_resolution * r)), nominal=c.product**phi,
                            coefficients=[c.alpha, c.beta, c.gamma]))
    return out


def train_over_seeds(depth: float, width: float, resolution: int, data, budget, *, seeds=(0,),
                     baseline: ModelSpec = B0) -> dict:
    """Proxy-train one (depth, width, resolution) with every seed; mean ± std accuracy over the ``ok`` seeds."""
    from .proxy import Candidate, train_proxy

    runs = [train_proxy(Candidate(depth=depth, width=width, resolution=int(resolution)), data, budget, seed=s,
                        baseline=baseline) for s in seeds]
    ok = [r for r in runs if r["status"] == "ok"]
    accs = [r["accuracy"] for r in ok]
    return {
        "seeds": list(seeds),
        "accuracies": [r["accuracy"] if r["status"] == "ok" else None for r in runs],
        "accuracy": statistics.fmean(accs) if accs else None,
        "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0 if accs else None,
        "loss": statistics.fmean(r["loss"] for r in ok) if ok else None,
        "status": "ok" if len(ok) == len(runs) else "diverged" if not ok else "partly diverged",
        "params": runs[0]["params"],
        "macs": runs[0]["macs"],
        "activations": runs[0]["activations"],
        "wall_s": round(sum(r["wall_s"] for r in runs), 3),
    }


def run_ablation(data, budget, *, phis=(1, 2), compound: dict[str, Coefficients] | None = None, seeds=(0,),
                 baseline: ModelSpec = B0) -> dict:
    """Train every variant of :func:`ablation_variants` on ``data`` with ``budget``; the result is what
    ``ablation.json`` holds."""
    variants = ablation_variants(data.base_resolution, phis, compound)
    rows = []
    for i, v in enumerate(variants, 1):
        m = train_over_seeds(v["depth"], v["width"], v["resolution"], data, budget, seeds=seeds, baseline=baseline)
        rows.append({**v, **m})
        log.info("ablation [%d/%d] %s φ=%g (depth %.3f, width %.3f, %d px): accuracy %s", i, len(variants), v["method"],
                 v["phi"], v["depth"], v["width"], v["resolution"],
                 "n/a" if m["accuracy"] is None else f"{m['accuracy']:.4f}")
    base_macs = rows[0]["macs"]
    for r in rows:
        r["macs_ratio"] = r["macs"] / base_macs
    return {"dataset": data.name, "dataset_fingerprint": data.fingerprint, "base_resolution": data.base_resolution,
            "budget": dataclasses.asdict(budget) if dataclasses.is_dataclass(budget) else dict(budget),
            "seeds": list(seeds), "phis": [float(p) for p in phis], "rows": rows}


def _fmt_acc(r: dict) -> str:
    if r.get("accuracy") is None:
        return f"n/a ({r.get('status')})"
    return f"{r['accuracy']:.4f}" + (f" ± {r['accuracy_std']:.4f}" if len(r.get("seeds", [])) > 1 else "")


def ablation_markdown(result: dict) -> str:
    """The ablation table and, per φ, which variant won."""
    rows = result["rows"]
    div, unit = macs_unit([r["macs"] for r in rows])
    lines = [
        "## Ablation: single-dimension vs compound scaling (the paper's Fig. 8)", "",
        f"Variants of the baseline at a nominal cost of 2^φ × B0, proxy-trained on {result['dataset']} with the same "
        f"budget and seed(s) {result['seeds']}. depth-only: d = 2^φ; width-only: w = 2^(φ/2); resolution-only: "
        f"r = 2^(φ/2). Measured MACs are of the built (rounded) proxy model. Accuracy is a fraction.", "",
        f"| φ | method | depth | width | resolution (px) | nominal MACs / B0 | MACs ({unit}) | measured MACs / B0 | "
        "params (M) | accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['phi']:g} | {r['method']} | {r['depth']:.3f} | {r['width']:.3f} | {r['resolution']} | "
                     f"{r['nominal']:.2f} | {r['macs'] / div:.3f} | {r['macs_ratio']:.2f} | {r['params'] / 1e6:.3f} | "
                     f"{_fmt_acc(r)} |")
    lines.append("")
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

    rows = result["rows"]
    div, unit = macs_unit([r["macs"] for r in rows])
    base = rows[0]
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "baseline"))
    for method in methods:
        pts = [base] + sorted((r for r in rows if r["method"] == method), key=lambda r: r["phi"])
        pts = [p for p in pts if p["accuracy"] is not None]
        ax.errorbar([p["macs"] / div for p in pts], [100 * p["accuracy"] for p in pts],
                    yerr=[100 * (p["accuracy_std"] or 0) for p in pts], marker="o", capsize=3,
                    ls="-" if method.startswith("compound") else "--", label=method)
    if base["accuracy"] is not None:
        ax.scatter([base["macs"] / div], [100 * base["accuracy"]], marker="s", s=60, c="k", zorder=3, label="B0")
    log_x_axis(ax)
    ax.set_xlabel(f"MACs per image ({unit}, log scale; measured)")
    ax.set_ylabel("proxy validation accuracy (%)")
    ax.set_title(f"Scaling one dimension vs compound scaling ({result['dataset']})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if path is not None:
        save_png(fig, Path(path))
    return fig


def write_ablation(result: dict, out_dir: str | Path) -> Path:
    """ablation.json, ablation.md and plots/ablation.png in ``out_dir`` (atomic); returns ablation.md."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "ablation.json", result)
    plot_ablation(result, out_dir / "plots" / "ablation.png")
    md = ablation_markdown(result) + "\n![accuracy vs MACs per scaling method](plots/ablation.png)\n"
    return atomic_write_text(out_dir / "ablation.md", md)


def compound_coefficients(best: Coefficients | None, paper: bool = True) -> dict[str, Coefficients]:
    """The compound variants by label: the searched ``best`` and/or the paper's (once when they are equal)."""
    out = {}
    if best is not None:
        out[f"best ({best.alpha}, {best.beta}, {best.gamma})" + (" = paper" if best == PAPER else "")] = best
    if paper and best != PAPER:
        out[f"paper ({PAPER.alpha}, {PAPER.beta}, {PAPER.gamma})"] = PAPER
    return out


def compound_sources(names: list[str] | None, run_dir: Path | None) -> dict[str, Coefficients]:
    """The compound variants named in ``names`` (``best``: from run_dir/best.json, ``paper``);
    None: both, or the paper's alone without a run directory."""
    if names is None:
        names = (["best"] if run_dir is not None else []) + ["paper"]
    for name in names:
        if name not in COMPOUND_SOURCES:
            raise ValueError(f"compound contains {name!r}; allowed: {', '.join(COMPOUND_SOURCES)}")
    best = None
    if "best" in names:
        if run_dir is None:
            raise ValueError("compound=[best] needs run_dir=<a search run directory>; allowed: run_dir=..., or compound=[paper]")
        if not (run_dir / "best.json").is_file():
            raise ValueError(f"run_dir={run_dir} has no best.json; allowed: a finished search run directory")
        b = read_json(run_dir / "best.json")
        best = Coefficients(b["alpha"], b["beta"], b["gamma"])
    return compound_coefficients(best, paper="paper" in names)


def run_ablate_app(cfg: AblateAppConfig, out_dir: Path) -> dict:
    """The ``scalesearch-ablate`` job. With ``run_dir`` set, the searched best is one compound variant
    and the artifacts go into that run directory (the report links them); otherwise into ``out_dir``."""
    from .data import load_data
    from .generate import load_baseline

    if cfg.seeds < 1:
        raise ValueError(f"seeds={cfg.seeds}; allowed: >= 1")
    run_dir = None
    if cfg.run_dir:
        run_dir = Path(cfg.run_dir)
        if not run_dir.is_dir():
            raise ValueError(f"run_dir={cfg.run_dir} is not a directory; allowed: a search run directory, or null")
    compound = compound_sources(cfg.compound, run_dir)
    best = read_json(run_dir / "best.json") if run_dir and (run_dir / "best.json").is_file() else {}
    data = load_data(cfg.dataset)
    if best.get("dataset_fingerprint") not in (None, data.fingerprint):
        log.warning("the data (fingerprint %s) differ from the search's (%s): pass the search's dataset overrides to "
                    "compare on the same data", data.fingerprint, best["dataset_fingerprint"])
    result = run_ablation(data, cfg.proxy, phis=cfg.phis, compound=compound,
                          seeds=[cfg.seed + k for k in range(cfg.seeds)], baseline=load_baseline(best.get("baseline")))
    result["same_data_as_search"] = None if not best else best.get("dataset_fingerprint") == data.fingerprint
    md = write_ablation(result, run_dir or out_dir)
    log.info("wrote %s", md)
    return result
