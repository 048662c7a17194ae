"""Orchestration overhead of a search: search wall time vs the sum of the trials' own
training time, with one trial at a time (``max_concurrent_trials=1``), in one run for
``search.reuse_actors=false`` (the reference: a new Ray worker process per trial) and ``true``
(the default: the next trial runs in the finished trial's process).

    python benchmarks/search_overhead.py [--points 6] [--epochs 2] [--out benchmarks/results/search_overhead.json]

overhead_fit = Tuner.fit() wall / sum(trial wall_s) - 1, where trial wall_s is measured inside
train_proxy (data to device, model build, training, evaluation). overhead_total adds Ray
start-up and everything else run_search does (data, candidate costs, family emission), measured
from the outside. Goal (issue 4): overhead_fit < 15 %.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import compose_search  # noqa: E402  (real Hydra composition)

from scalesearch.io import atomic_write_json, read_json  # noqa: E402
from scalesearch.results import read_results  # noqa: E402
from scalesearch.search import run_search  # noqa: E402


def measure(points: int, epochs: int, reuse: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_search(f"search.max_points={points}", "search.max_concurrent_trials=1", f"proxy.epochs={epochs}",
                             f"search.reuse_actors={str(reuse).lower()}", "report.enabled=false", "verbose=0")
        t0 = time.time()
        run_search(cfg, Path(tmp))
        total = time.time() - t0
        rows = read_results(Path(tmp) / "results.csv")
        fit_s = read_json(Path(tmp) / "search.json")["wall_s"]
    trial_s = sum(r["wall_s"] for r in rows)
    return {"reuse_actors": reuse, "trials": len(rows), "sum_trial_s": round(trial_s, 2), "tune_fit_s": fit_s,
            "run_search_s": round(total, 2), "overhead_fit": round(fit_s / trial_s - 1, 4),
            "overhead_total": round(total / trial_s - 1, 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "search_overhead.json"))
    args = ap.parse_args()
    runs = [measure(args.points, args.epochs, reuse) for reuse in (False, True)]
    res = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "points": args.points, "epochs": args.epochs, "runs": runs}
    atomic_write_json(args.out, res)
    print(json.dumps(res, indent=2))
    print("\n| reuse_actors | trials | sum of trial s | Tuner.fit s | overhead (fit) | run_search s | overhead (total) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['reuse_actors']} | {r['trials']} | {r['sum_trial_s']:.1f} | {r['tune_fit_s']:.1f} | "
              f"{100 * r['overhead_fit']:.1f} % | {r['run_search_s']:.1f} | {100 * r['overhead_total']:.1f} % |")


if __name__ == "__main__":
    main()
