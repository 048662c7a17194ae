"""A simulated cluster (issue 37): N nodes started with `ray start` on 127.0.0.1 (one CPU each, each in its own
temp dir; no directory shared between nodes but the declared ``cluster.storage``), one grid search of many small
trainings per size through the documented command (``scalesearch cluster.address=… cluster.storage=…``), then the
same command with ``resume=true`` on the finished run. Per size: trials per minute, the per-trial orchestration
overhead ((stage wall × slots − Σ trial wall) / trials), the driver's CPU seconds and peak memory (``wait4`` of the
driver process), the time to resume the finished run, and on how many nodes the trainings ran.

    python benchmarks/cluster_scale.py                               # 1, 2, 4, 8 nodes × 200 trainings
    python benchmarks/cluster_scale.py --nodes 1 2 4 --trainings 120

On one machine the nodes share its cores: this measures how the orchestration grows with nodes and trials, not a
speed-up. Results: benchmarks/results/cluster_scale.json (command, date, machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import RAY_ENV, ray_cluster  # noqa: E402  (the suite's own real `ray start` cluster)

from scalesearch.io import atomic_write_json, read_json  # noqa: E402
from scalesearch.results import read_table  # noqa: E402

SMALL = ["proxy.epochs=1", "dataset.train_size=40", "dataset.val_size=20", "proxy.batch_size=20",
         "dataset.image_size=32", "report.enabled=false", "family.train=false", "validate.enabled=false",
         "trials.measure_device_costs=false", "verbose=0"]


def driver(args: list[str], env: dict) -> dict:
    """Run the search app as the user does; its wall, CPU seconds and peak RSS (this process only)."""
    cmd = [sys.executable, "-c", "import sys; from scalesearch.cli import search_main as m; "
           "sys.argv[0]='scalesearch'; m()", *args]
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    err = p.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"the search failed (exit {p.returncode}):\n{err[-3000:]}")
    return {"wall_s": round(time.time() - t0, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def one_size(nodes: int, trainings: int, seeds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cs") as tmp:
        tmp = Path(tmp)
        run, storage = tmp / "run", tmp / "storage"
        with ray_cluster(tmp, head_cpus=1, workers=nodes - 1) as (address, _workers):
            env = {**os.environ, **RAY_ENV}
            args = [*SMALL, f"search.n_seeds={seeds}", f"search.max_points={trainings // seeds}",
                    f"cluster.address={address}", f"cluster.storage={storage}", f"hydra.run.dir={run}"]
            first = driver(args, env)
            rows = read_table(run / "results.csv")
            stage = read_json(run / "search.json")["stages"]["search"]
            resumed = driver([*args, "resume=true"], env)
            again = read_table(run / "results.csv")
        stage_s = stage["finished"] - stage["started"]
        trial_s = sum(r["wall_s"] for r in rows)
        retrained = sum(a["trial_id"] != b["trial_id"] for a, b in zip(rows, again))
        return {"nodes": nodes, "trainings": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
                "nodes_used": len({r["node"] for r in rows}), "stage_s": round(stage_s, 2),
                "trials_per_min": round(len(rows) / stage_s * 60, 1),
                "overhead_per_trial_s": round((stage_s * nodes - trial_s) / len(rows), 3),
                "sum_trial_s": round(trial_s, 2), "driver": first, "resume": resumed,
                "retrained_on_resume": retrained}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--trainings", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cluster_scale.json"))
    a = ap.parse_args()
    sizes = []
    for n in a.nodes:
        print(f"{n} node(s), {a.trainings} trainings ...", file=sys.stderr, flush=True)
        sizes.append(one_size(n, a.trainings, a.seeds))
        print(json.dumps(sizes[-1]), file=sys.stderr, flush=True)
    atomic_write_json(a.out, {"command": "python benchmarks/cluster_scale.py " + " ".join(sys.argv[1:]),
                              "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
                              f"{os.cpu_count()} cores", "settings": SMALL, "sizes": sizes})
    print(f"{'nodes':>5} {'trainings':>9} {'used':>4} {'trials/min':>10} {'overhead/trial s':>16} "
          f"{'driver CPU s':>12} {'driver peak MiB':>15} {'resume s':>8}")
    for s in sizes:
        print(f"{s['nodes']:>5} {s['trainings']:>9} {s['nodes_used']:>4} {s['trials_per_min']:>10} "
              f"{s['overhead_per_trial_s']:>16} {s['driver']['cpu_s']:>12} {s['driver']['peak_rss_mib']:>15} "
              f"{s['resume']['wall_s']:>8}")


if __name__ == "__main__":
    main()
