"""Correctness of the GPU path (issue 6): the same candidate, data and budget trained on two
devices (default: cpu and cuda) over several seeds; the mean accuracies must agree within noise.

    python benchmarks/gpu_vs_cpu.py                          # on the GPU machine: cpu vs cuda
    python benchmarks/gpu_vs_cpu.py --devices cpu,cpu        # CPU-only smoke of the script itself

The GPU side runs as a GPU proxy does (bf16 autocast, channels_last, fused AdamW); the CPU side
in fp32. Pass criterion: |mean_a − mean_b| ≤ max(0.03, 2·sqrt(sd_a²/n + sd_b²/n)).
Writes benchmarks/results/gpu_vs_cpu.json (exit 1 when the criterion fails).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import compose_search  # noqa: E402  (real Hydra composition)

from scalesearch.train.data import load_data  # noqa: E402
from scalesearch.io import atomic_write_json  # noqa: E402
from scalesearch.train.proxy import train_proxy  # noqa: E402
from scalesearch.scaling.spec import B0, scale  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--depth", type=float, default=1.2)
    ap.add_argument("--width", type=float, default=1.1)
    ap.add_argument("--resolution", type=int, default=37)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_vs_cpu.json"))
    args = ap.parse_args()
    cfg = compose_search("proxy=cpu_smoke", f"proxy.epochs={args.epochs}", f"dataset.train_size={args.train_size}")
    data = load_data(cfg.dataset)
    spec = scale(B0, args.depth, args.width)
    sides = []
    for dev in args.devices.split(","):
        budget = dataclasses.replace(cfg.proxy, device=dev, amp=dev.startswith("cuda"), channels_last=True)
        accs = []
        for seed in range(args.seeds):
            t = time.time()
            r = train_proxy(spec, args.resolution, data, budget, seed=seed)
            accs.append(r["accuracy"])
            print(f"{dev} seed {seed}: accuracy {r['accuracy']:.4f} ({time.time() - t:.1f} s)", flush=True)
        sides.append({"device": dev, "accuracies": accs, "mean": statistics.fmean(accs),
                      "std": statistics.stdev(accs) if len(accs) > 1 else 0.0})
    a, b = sides[0], sides[1]
    n = args.seeds
    tol = max(0.03, 2 * ((a["std"] ** 2 + b["std"] ** 2) / n) ** 0.5)
    diff = abs(a["mean"] - b["mean"])
    res = {"date": time.strftime("%Y-%m-%d"), "candidate": {"depth": args.depth, "width": args.width, "resolution": args.resolution}, "budget": dataclasses.asdict(cfg.proxy),
           "sides": sides, "abs_diff": diff, "tolerance": tol, "pass": diff <= tol}
    atomic_write_json(args.out, res)
    print(f"{a['device']} {a['mean']:.4f} ± {a['std']:.4f} vs {b['device']} {b['mean']:.4f} ± {b['std']:.4f}: "
          f"|diff| {diff:.4f} {'<=' if res['pass'] else '>'} tolerance {tol:.4f} -> {'PASS' if res['pass'] else 'FAIL'}")
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
