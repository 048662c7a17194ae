"""The results table and the selection of the best coefficients (plain Python: no Ray).

``results.csv`` has one row per trial (one candidate × one seed). Only rows with
status ``ok`` are ranked: ``stopped`` (early-stopped by ASHA), ``error``, ``diverged``,
``filtered`` and unfinished trials never win.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

from .scaling import PAPER

__all__ = ["COLUMNS", "read_results", "aggregate", "select_best", "summary_markdown"]

COLUMNS = [
    "trial_id", "trial_index", "alpha", "beta", "gamma", "seed", "product", "resolution", "cost_ratio",
    "cost_flag", "accuracy", "loss", "epochs", "params", "macs", "activations", "images_per_s", "wall_s",
    "status", "error", "failures", "node", "finished_at",
]
NUMERIC = {"finished_at", "alpha", "beta", "gamma", "product", "cost_ratio", "accuracy", "loss", "images_per_s", "wall_s"}
INTEGER = {"failures", "trial_index", "seed", "resolution", "epochs", "params", "macs", "activations"}


def _parse(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if v in ("", None):
            out[k] = None
        elif k in NUMERIC:
            out[k] = float(v)
        elif k in INTEGER:
            out[k] = int(float(v))
        else:
            out[k] = v
    return out


def read_results(path: str | Path) -> list[dict]:
    """Rows of a results.csv with numbers parsed."""
    with open(path, newline="") as f:
        return [_parse(r) for r in csv.DictReader(f)]


def aggregate(rows: list[dict]) -> list[dict]:
    """Per candidate (α, β, γ): mean/std accuracy over its ``ok`` seeds, ranked best first.
    Candidates with no ``ok`` trial are left out."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("accuracy") is not None:
            groups.setdefault((r["alpha"], r["beta"], r["gamma"]), []).append(r)
    out = []
    for (a, b, g), rs in groups.items():
        accs = [r["accuracy"] for r in rs]
        out.append({
            "alpha": a, "beta": b, "gamma": g,
            "product": round(a * b * b * g * g, 4),
            "cost_ratio": rs[0].get("cost_ratio"),
            "cost_flag": rs[0].get("cost_flag"),
            "accuracy_mean": statistics.fmean(accs),
            "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "n_seeds": len(accs),
            "seeds": sorted(r["seed"] for r in rs),
            "accuracies": [r["accuracy"] for r in sorted(rs, key=lambda r: r["seed"])],
        })
    # best mean first; ties: cheaper measured cost, then smaller product
    out.sort(key=lambda c: (-c["accuracy_mean"], c["cost_ratio"] or math.inf, c["product"]))
    return out


def select_best(rows: list[dict]) -> dict | None:
    ranked = aggregate(rows)
    return ranked[0] if ranked else None


def _fmt(v, nd=3):
    return "" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def summary_markdown(rows: list[dict], best: dict | None, context: dict) -> str:
    ranked = aggregate(rows)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    lines = [
        "# scalesearch summary", "",
        f"- dataset: {context.get('dataset')}, strategy: {context.get('strategy')}, "
        f"budget: {context.get('budget')}",
        f"- trials: {len(rows)} ({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})",
        f"- cost ratio = measured MACs of the rounded proxy / MACs of the B0 proxy at base resolution; "
        f"flag `off` when it is more than {context.get('cost_tolerance')} (relative) from the target {context.get('target')}",
        "",
    ]
    if best is None:
        lines += ["**No trial completed successfully: no best coefficients.**", ""]
    else:
        lines += [
            f"**Best: α={best['alpha']}, β={best['beta']}, γ={best['gamma']}** "
            f"(α·β²·γ² = {best['product']:.3f}, measured cost ratio {_fmt(best['cost_ratio'], 2)}): "
            f"accuracy {best['accuracy_mean']:.4f} ± {best['accuracy_std']:.4f} over {best['n_seeds']} seed(s)", "",
        ]
    lines += ["## Top 10", "", "| rank | α | β | γ | α·β²·γ² | cost ratio | flag | accuracy (mean ± std) | seeds |",
              "|---|---|---|---|---|---|---|---|---|"]
    for i, c in enumerate(ranked[:10], 1):
        lines.append(f"| {i} | {c['alpha']} | {c['beta']} | {c['gamma']} | {c['product']:.3f} | "
                     f"{_fmt(c['cost_ratio'], 2)} | {c['cost_flag'] or ''} | {c['accuracy_mean']:.4f} ± {c['accuracy_std']:.4f} | {c['n_seeds']} |")
    lines.append("")
    paper = next((c for c in ranked if (c["alpha"], c["beta"], c["gamma"]) == (PAPER.alpha, PAPER.beta, PAPER.gamma)), None)
    lines.append("## Best vs the paper's (1.2, 1.1, 1.15)")
    lines.append("")
    if paper is None:
        lines.append("The paper's point was not evaluated (or no seed of it finished ok) in this search.")
    elif best is not None:
        rank = ranked.index(paper) + 1
        lines.append(f"The paper's point ranks {rank} of {len(ranked)}: accuracy {paper['accuracy_mean']:.4f} ± "
                     f"{paper['accuracy_std']:.4f} vs best {best['accuracy_mean']:.4f} "
                     f"(difference {best['accuracy_mean'] - paper['accuracy_mean']:+.4f}).")
    errors = [r for r in rows if r["status"] in ("error", "diverged", "filtered", "stopped")]
    if errors:
        lines += ["", "## Trials not ranked", "", "| trial | α | β | γ | seed | status | detail |", "|---|---|---|---|---|---|---|"]
        for r in errors:
            lines.append(f"| {r['trial_id']} | {r['alpha']} | {r['beta']} | {r['gamma']} | {r['seed']} | {r['status']} | "
                         f"{(r.get('error') or '').replace('|', '/')} |")
    return "\n".join(lines) + "\n"
