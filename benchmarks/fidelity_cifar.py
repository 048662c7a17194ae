"""Evidence for "answers you can trust" (issue 11) on real images: the shared CIFAR-10 JPEGs.

The default grid (5 candidates) with 3 seeds, in both constraint modes, on ``--train-per-class`` (>= 300)
training images per class and ``--val-per-class`` test images per class, base resolution 40 px; every candidate
is then retrained at 4x the epochs with the same seeds (the validation stage with top_k = all, random_k = 0), so that
the short proxy's ranking can be compared with the longer one over all five candidates. Reported per mode: each
candidate's measured cost ratio, proxy and validation accuracy (mean, 95 % t interval), the pooled seed noise,
Kendall τ and Spearman ρ between the two rankings with bootstrap intervals, the top-1 regret, the verdict.

    python benchmarks/fidelity_cifar.py                     # ~80 min on 2 cores
    python benchmarks/fidelity_cifar.py --modes measured --train-per-class 300 --seeds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CIFAR_TAR, compose_search, extract_cifar  # noqa: E402

from scalesearch.io import atomic_write_json, read_json  # noqa: E402
from scalesearch.decide.results import aggregate, fmt_mean_ci, read_table  # noqa: E402
from scalesearch.pipeline import run_search  # noqa: E402
from scalesearch.decide.verdict import pooled_sd  # noqa: E402


def one_mode(root: Path, mode: str, args) -> dict:
    run = Path(tempfile.mkdtemp(prefix=f"fidelity-{mode}-"))
    cfg = compose_search("dataset=imagefolder", f"dataset.root={root}", f"dataset.base_resolution={args.base}",
                         f"search.constraint={mode}", f"search.max_points={args.points}", f"search.n_seeds={args.seeds}",
                         f"validate.top_k={args.points}", "validate.random_k=0", f"validate.epochs_mult={args.mult}",
                         "report.enabled=false", "family.train=false", "trials.measure_device_costs=false",
                         "verbose=1")
    t0 = time.time()
    best = run_search(cfg, run)
    wall = time.time() - t0
    rows, vrows = read_table(run / "results.csv"), read_table(run / "validation.csv")
    proxy, val = aggregate(rows), {c["candidate"]: c for c in aggregate(vrows)}
    fid = read_json(run / "fidelity.json")
    cands = [{"candidate": c["candidate"], "alpha": c["alpha"], "beta": c["beta"], "gamma": c["gamma"],
              "resolution": c["resolution"], "cost_ratio": c["cost_ratio"], "proxy": fmt_mean_ci(c),
              "proxy_mean": c["accuracy_mean"], "validation": fmt_mean_ci(val[c["candidate"]]) if c["candidate"] in val else None,
              "validation_mean": val[c["candidate"]]["accuracy_mean"] if c["candidate"] in val else None} for c in proxy]
    return {"mode": mode, "run_dir": str(run), "wall_s": round(wall, 1), "candidates": cands,
            "noise_sd_proxy": pooled_sd(proxy), "noise_sd_validation": pooled_sd(list(val.values())),
            "kendall_tau": fid["kendall_tau"], "tau_p": fid["tau_p"], "spearman_rho": fid["spearman_rho"],
            "rho_p": fid["rho_p"], "top1_regret": fid["top1_regret"], "decided": best["candidate"],
            "proxy_pick": best["proxy_pick"], "verdict": best["verdict"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="nominal,measured")
    ap.add_argument("--train-per-class", type=int, default=300)
    ap.add_argument("--val-per-class", type=int, default=100)
    ap.add_argument("--base", type=int, default=40)
    ap.add_argument("--points", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--mult", type=float, default=4.0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fidelity_cifar.json"))
    args = ap.parse_args()
    if not CIFAR_TAR.exists():
        raise SystemExit(f"{CIFAR_TAR} not found (../shared is needed)")
    with tempfile.TemporaryDirectory() as tmp:
        root = extract_cifar(Path(tmp) / "cifar", args.train_per_class, args.val_per_class)
        res = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "settings": vars(args), "modes": [one_mode(root, m, args) for m in args.modes.split(",")]}
    atomic_write_json(args.out, res)
    for m in res["modes"]:
        print(f"\n### {m['mode']} ({m['wall_s']:.0f} s): τ = {m['kendall_tau']} (p {m['tau_p']}), ρ = {m['spearman_rho']} "
              f"(p {m['rho_p']}), top-1 regret {m['top1_regret']}, seed sd {m['noise_sd_proxy']:.3f} (proxy) / "
              f"{m['noise_sd_validation']:.3f} (4x)")
        print("| candidate | resolution | measured cost | proxy (2 epochs) | 4x epochs |\n|---|---:|---:|---|---|")
        for c in m["candidates"]:
            print(f"| {c['alpha']:g}, {c['beta']:g}, {c['gamma']:g} | {c['resolution']} | {c['cost_ratio']:.2f} | "
                  f"{c['proxy']} | {c['validation']} |")
        print(m["verdict"])


if __name__ == "__main__":
    main()
