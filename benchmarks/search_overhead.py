"""Orchestration overhead of a search: search wall time vs the sum of the trials' own
training time, with one trial at a time (``max_concurrent_trials=1``).

    python benchmarks/search_overhead.py [--points 6] [--epochs 2] [--out benchmarks/results/search_overhead.json]

overhead = wall / sum(trial wall_s) - 1, where wall is Tuner.fit() (Ray already started) and
trial wall_s is measured inside train_proxy (data to device, model build, training, evaluation).
A second figure adds Ray start-up and everything else run_search does (load data, cost of
candidates, family emission) from the outside.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import compose_search  # noqa: E402  (real Hydra composition)

from scalesearch.io import read_json  # noqa: E402
from scalesearch.results import read_results  # noqa: E402
from scalesearch.search import run_search  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "search_overhead.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_search(f"search.max_points={args.points}", "search.max_concurrent_trials=1",
                             f"proxy.epochs={args.epochs}", "report.enabled=false", "verbose=0")
        t0 = time.time()
        run_search(cfg, Path(tmp))
        total = time.time() - t0
        rows = read_results(Path(tmp) / "results.csv")
        state = read_json(Path(tmp) / "search.json")
    trial_s = sum(r["wall_s"] for r in rows)
    fit_s = state["wall_s"]
    res = {
        "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
        "trials": len(rows), "epochs": args.epochs, "sum_trial_s": round(trial_s, 2), "tune_fit_s": fit_s,
        "run_search_s": round(total, 2), "overhead_fit": round(fit_s / trial_s - 1, 4),
        "overhead_total": round(total / trial_s - 1, 4),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
