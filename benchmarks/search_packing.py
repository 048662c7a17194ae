"""Search throughput vs trials packed per device: proxy trials completed per device-hour.

The same small grid runs several times in one process, each time with a different number of
trials sharing the device, and the throughput is reported as a ratio to one trial at a time.

    # GPU (one call on the lent H100): 1, 2 and 4 trials per GPU
    python benchmarks/search_packing.py --device cuda --per-device 1,2,4 --points 8 --epochs 3
    # CPU (CI-free mode, 2 cores): 1 and 2 trials at a time, one core each
    python benchmarks/search_packing.py --device cpu --per-device 1,2 --points 4 --epochs 1

On GPU, k trials per device means ``trials.gpus_per_trial=1/k`` (Ray packs them on one GPU).
On CPU it means k concurrent trials with ``cores/k`` threads each. Writes
``benchmarks/results/search_packing-<device>.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import compose_search  # noqa: E402  (real Hydra composition)

from scalesearch.decide.results import read_table  # noqa: E402
from scalesearch.pipeline import run_search  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--per-device", default="1,2")
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    args = ap.parse_args()
    import ray
    import torch

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    runs = []
    for k in [int(v) for v in args.per_device.split(",")]:
        common = [f"search.max_points={args.points}", "search.n_seeds=1", f"proxy.epochs={args.epochs}",
                  "report.enabled=false", "family.train=false", "validate.enabled=false",
                  "trials.measure_device_costs=false",
                  f"dataset.train_size={args.train_size}", f"proxy.batch_size={args.batch_size}", "verbose=0",
                  "family.phis=[0]"]
        if args.device == "cuda":
            common += ["proxy=gpu", f"proxy.epochs={args.epochs}", f"trials.gpus_per_trial={1 / k}",
                       f"trials.cpus_per_trial={max(1, args.cpus // 4 // k)}", f"trials.max_concurrent_trials={k}"]
        else:
            common += ["proxy.device=cpu", f"trials.cpus_per_trial={args.cpus // k}", f"trials.max_concurrent_trials={k}"]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            run_search(compose_search(*common), Path(tmp))
            wall = time.time() - t0
            rows = read_table(Path(tmp) / "results.csv")
        ok = sum(r["status"] == "ok" for r in rows)
        runs.append({"per_device": k, "trials": len(rows), "ok": ok, "wall_s": round(wall, 2),
                     "trials_per_device_hour": round(ok / wall * 3600, 1),
                     "mean_trial_s": round(sum(r["wall_s"] for r in rows) / len(rows), 2)})
        print(runs[-1], flush=True)
    ray.shutdown()
    ref = runs[0]["trials_per_device_hour"]
    for r in runs:
        r["ratio_vs_first"] = round(r["trials_per_device_hour"] / ref, 3)
    dev = torch.cuda.get_device_name(0) if args.device == "cuda" else (platform.processor() or platform.machine())
    out = {"date": time.strftime("%Y-%m-%d"), "device": dev, "args": vars(args), "runs": runs}
    path = Path(__file__).parent / "results" / f"search_packing-{args.device}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    from scalesearch.io import atomic_write_json

    atomic_write_json(path, out)
    print("| trials per device | trials | wall s | trials / device-hour | ratio |\n|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['per_device']} | {r['trials']} | {r['wall_s']} | {r['trials_per_device_hour']} | {r['ratio_vs_first']} |")


if __name__ == "__main__":
    main()
