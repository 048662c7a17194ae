"""How much the cost models disagree, and how repeatable the measured ones are (issue 13).

For the candidates of the default grid and for every feasible (α, β) of the default space at equal MACs (the
measured constraint, base 40 px, synthetic data shape), on this machine's CPU with one torch thread:
MACs and conv activations (counted on the meta device), inference latency (batch 8) and training-step time (batch
32) — each measured ``--repeats`` times (warm-up, then the median of timed repeats over ``--min-run-time`` s:
scalesearch.scaling.cost.measure_latency / measure_train_step).

It reports the Spearman correlation of MACs vs latency, MACs vs training step and activations vs latency over the
candidates, the spread of latency among candidates whose MACs are within ±10 % of the target (the "equal-FLOPs,
unequal-runtime" effect, Dollár et al. 2021), and the repeatability of the measurement: the largest relative
deviation of a repeat from its candidate's median.

    python benchmarks/cost_models.py [--repeats 5] [--min-run-time 0.2]   # ~4 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from scalesearch.scaling.cost import measure_latency, measure_train_step
from scalesearch.io import atomic_write_json
from scalesearch.scaling.model import EfficientNet, spec_cost
from scalesearch.plan.jobs import select_grid
from scalesearch.scaling.scaler import Scaler
from scalesearch.plan.space import load_space
from scalesearch.scaling.spec import B0, ModelSpec
from scalesearch.decide.ranks import bootstrap_ci, spearman_rho


def measure(spec: ModelSpec, resolution: int, repeats: int, min_run_time: float) -> dict:
    model = EfficientNet(spec, num_classes=10)
    lat = [measure_latency(model, resolution, batch=8, min_run_time=min_run_time, threads=1) for _ in range(repeats)]
    step = [measure_train_step(EfficientNet(spec, num_classes=10), resolution, 10, batch=32, min_run_time=min_run_time,
                               threads=1) for _ in range(repeats)]
    med_l, med_s = statistics.median(lat), statistics.median(step)
    return {"latency_ms": med_l, "train_step_ms": med_s, "latency_repeats": lat, "train_step_repeats": step,
            "latency_dev": max(abs(x / med_l - 1) for x in lat), "train_step_dev": max(abs(x / med_s - 1) for x in step)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-run-time", type=float, default=0.2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cost_models.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = load_space("compound")
    planner = Scaler(B0, args.base, 10, 3, constraint="measured", gamma_range=(1.0, 1.5), resolution_multiple=1,
                     depth_rounding="total")
    default, _ = select_grid(space, planner, max_points=5)
    pairs = sorted({(c.alpha, c.beta) for c in space.lattice()})
    cands = [c for c in (planner.candidate(a, b) for a, b in pairs) if c["cost_flag"] == "ok"]
    default_ids = {c["candidate"] for c in default}
    base = measure(B0, args.base, args.repeats, args.min_run_time)
    rows = []
    t0 = time.time()
    for c in cands:
        spec = ModelSpec.from_dict(c["spec"])
        m = measure(spec, c["resolution"], args.repeats, args.min_run_time)
        cost = spec_cost(spec, c["resolution"], 10)
        rows.append({"candidate": c["candidate"], "default_grid": c["candidate"] in default_ids, "resolution": c["resolution"],
                     "blocks": c["blocks"], "macs_ratio": c["cost_ratio"],
                     "activations_ratio": cost.activations / spec_cost(B0, args.base, 10).activations,
                     "latency_ratio": m["latency_ms"] / base["latency_ms"],
                     "train_step_ratio": m["train_step_ms"] / base["train_step_ms"], **m})
        print(f"{c['candidate']:>18} {c['resolution']:>3} px  MACs {c['cost_ratio']:.2f}x  act "
              f"{rows[-1]['activations_ratio']:.2f}x  latency {rows[-1]['latency_ratio']:.2f}x  train step "
              f"{rows[-1]['train_step_ratio']:.2f}x  (repeat dev {100 * m['latency_dev']:.1f} % / "
              f"{100 * m['train_step_dev']:.1f} %)", flush=True)

    def rho(a, b, subset):
        x, y = [r[a] for r in subset], [r[b] for r in subset]
        return {"rho": round(spearman_rho(x, y), 3), "ci": [None if v is None else round(v, 3) for v in bootstrap_ci(spearman_rho, x, y)]}

    equal = [r for r in rows if abs(r["macs_ratio"] / 2 - 1) <= 0.1]
    summary = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, 1 thread", "base_resolution": args.base, "repeats": args.repeats,
        "min_run_time_s": args.min_run_time, "n_candidates": len(rows), "wall_s": round(time.time() - t0, 1),
        "spearman": {"macs_vs_latency": rho("macs_ratio", "latency_ratio", rows),
                     "macs_vs_train_step": rho("macs_ratio", "train_step_ratio", rows),
                     "activations_vs_latency": rho("activations_ratio", "latency_ratio", rows),
                     "latency_vs_train_step": rho("latency_ratio", "train_step_ratio", rows),
                     "blocks_vs_latency": rho("blocks", "latency_ratio", rows),
                     "resolution_vs_latency": rho("resolution", "latency_ratio", rows)},
        "equal_macs": {"n": len(equal), "latency_ratio_range": [round(min(r["latency_ratio"] for r in equal), 3),
                                                              round(max(r["latency_ratio"] for r in equal), 3)],
                       "train_step_ratio_range": [round(min(r["train_step_ratio"] for r in equal), 3),
                                                  round(max(r["train_step_ratio"] for r in equal), 3)]},
        "repeatability": {"latency_max_dev": round(max(r["latency_dev"] for r in rows), 4),
                          "latency_median_dev": round(statistics.median(r["latency_dev"] for r in rows), 4),
                          "train_step_max_dev": round(max(r["train_step_dev"] for r in rows), 4),
                          "train_step_median_dev": round(statistics.median(r["train_step_dev"] for r in rows), 4)},
        "default_grid": [r for r in rows if r["default_grid"]], "baseline": base, "rows": rows,
    }
    atomic_write_json(args.out, summary)
    s, e, r = summary["spearman"], summary["equal_macs"], summary["repeatability"]
    print(f"\n{len(rows)} candidates at equal MACs (measured constraint, base {args.base} px):")
    for k, v in s.items():
        print(f"  Spearman {k}: {v['rho']} (95 % bootstrap CI {v['ci']})")
    print(f"  within ±10 % of 2x MACs ({e['n']}): latency {e['latency_ratio_range']}x B0, train step {e['train_step_ratio_range']}x B0")
    print(f"  repeatability over {args.repeats} repeats: latency median {100 * r['latency_median_dev']:.1f} %, max "
          f"{100 * r['latency_max_dev']:.1f} %; train step median {100 * r['train_step_median_dev']:.1f} %, max "
          f"{100 * r['train_step_max_dev']:.1f} %")


if __name__ == "__main__":
    main()
