"""Two measurements of a search's own cost, each a ratio against a reference in the same run.

1. Orchestration overhead of the search stage: its wall time vs the sum of the trials' own training time, one
   trial at a time (``max_concurrent_trials=1``), for ``trials.reuse_actors=false`` (the reference: a new Ray worker
   process per trial) and ``true`` (the default). overhead = stage wall / sum(trial wall_s) − 1, where a trial's
   wall_s is measured inside train_proxy. Goal (issue 4): < 15 % with reuse.
2. The default job vs the landed code (``--reference-commit``, default bdbe665, the code before the runner): the
   command ``scalesearch`` with no arguments, run from a git worktree of that commit and from this checkout, one
   after the other on the same machine; wall time of each and the ratio. Goal (issue 12): no slower. The two defaults
   do different work (the old one: 6 candidates x 1 seed and the family trained in the driver; the new one:
   5 candidates x 2 seeds, validation, the family as trials): the table says what each ran.

    python benchmarks/search_overhead.py                 # both (~12 min on 2 cores)
    python benchmarks/search_overhead.py --skip-default  # only 1 (~3 min)
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import compose_search  # noqa: E402  (real Hydra composition)

from scalesearch.io import atomic_write_json, read_json  # noqa: E402
from scalesearch.decide.results import read_table  # noqa: E402
from scalesearch.pipeline import run_search  # noqa: E402


def overhead(points: int, epochs: int, reuse: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_search(f"search.max_points={points}", "search.n_seeds=1", "trials.max_concurrent_trials=1",
                             f"proxy.epochs={epochs}", f"trials.reuse_actors={str(reuse).lower()}", "report.enabled=false",
                             "family.train=false", "validate.enabled=false", "trials.measure_device_costs=false",
                             "verbose=0")
        t0 = time.time()
        run_search(cfg, Path(tmp))
        total = time.time() - t0
        rows = read_table(Path(tmp) / "results.csv")
        stage = read_json(Path(tmp) / "search.json")["stages"]["search"]
    trial_s = sum(r["wall_s"] for r in rows)
    stage_s = stage["finished"] - stage["started"]
    return {"reuse_actors": reuse, "trials": len(rows), "sum_trial_s": round(trial_s, 2), "stage_s": round(stage_s, 2),
            "run_search_s": round(total, 2), "overhead_stage": round(stage_s / trial_s - 1, 4),
            "overhead_total": round(total / trial_s - 1, 4)}


def default_run(python_path: Path | None, cwd: Path) -> dict:
    """``scalesearch`` with no arguments (the console entry point of the code at ``python_path``)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    if python_path is not None:
        env["PYTHONPATH"] = str(python_path)
    run = Path(tempfile.mkdtemp(prefix="default-"))
    t0 = time.time()
    p = subprocess.run([sys.executable, "-c", "import scalesearch, sys; print(scalesearch.__file__, file=sys.stderr); "
                        "from scalesearch.apps.cli import search_main; search_main()", f"hydra.run.dir={run}"],
                       cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.time() - t0
    if p.returncode != 0:
        raise SystemExit(f"default run failed ({p.returncode}):\n{p.stderr[-3000:]}")
    best = read_json(run / "best.json")
    trials = sum(len(read_table(run / n)) for n in ("results.csv", "validation.csv", "family_results.csv"))
    return {"code": p.stderr.splitlines()[0].split()[0], "wall_s": round(wall, 1), "trainings": trials,
            "best": [best["alpha"], best["beta"], best["gamma"]], "run_dir": str(run)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--reference-commit", default="bdbe665")
    ap.add_argument("--skip-default", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "search_overhead.json"))
    args = ap.parse_args()
    res = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "points": args.points, "epochs": args.epochs,
           "overhead": [overhead(args.points, args.epochs, reuse) for reuse in (False, True)]}
    print("| reuse_actors | trials | sum of trial s | search stage s | overhead (stage) | run_search s | overhead (total) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in res["overhead"]:
        print(f"| {r['reuse_actors']} | {r['trials']} | {r['sum_trial_s']:.1f} | {r['stage_s']:.1f} | "
              f"{100 * r['overhead_stage']:.1f} % | {r['run_search_s']:.1f} | {100 * r['overhead_total']:.1f} % |")
    if not args.skip_default:
        with tempfile.TemporaryDirectory() as tmp:
            ref = Path(tmp) / "ref"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(ref), args.reference_commit],
                           check=True, capture_output=True)
            try:
                old = default_run(ref, ref)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref)], capture_output=True)
        new = default_run(None, ROOT)
        res["default"] = {"reference": {**old, "commit": args.reference_commit}, "this": new,
                          "ratio": round(new["wall_s"] / old["wall_s"], 3)}
        print(f"\ndefault `scalesearch`: {args.reference_commit} {old['wall_s']} s ({old['trainings']} trainings) -> "
              f"this checkout {new['wall_s']} s ({new['trainings']} trainings): ratio {res['default']['ratio']}")
    atomic_write_json(args.out, res)


if __name__ == "__main__":
    main()
