"""A race's continued rungs against separate cosine trainings of the same length (issue 22, item 2).

For every (candidate, seed) the rungs are trained twice: as the race trains them (one trunk at constant learning
rate continued from rung to rung, each rung's last ``cooldown`` of the steps annealed on a copy and evaluated:
``scalesearch.train.proxy.train_rung``), and as separate trainings with the proxy's cosine schedule
(``train_proxy``) of each rung's length. Reported per rung: the mean of (continued − cosine) over the pairs with
its 95 % paired t interval and the seed sd (agreement within seed noise?), and the epochs each way (the compute
saved). Real images: the shared CIFAR-10 JPEGs.

    python benchmarks/cooldown_vs_cosine.py --per-class 100 --candidates 3 --seeds 3 --rungs 1 2 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from scalesearch.config import DatasetConfig, ProxyConfig
from scalesearch.train.data import load_data
from scalesearch.train.proxy import rung_steps, train_batch, train_proxy, train_rung
from scalesearch.scaling.spec import B0, scale
from scalesearch.decide.stats import mean_ci, paired_difference

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
CANDIDATES = [(1.2, 1.1, 58), (1.0, 1.4, 42), (1.55, 1.0, 48), (1.4, 1.2, 40)]  # (α, β, px): ~2× B0 at a 40-px base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--candidates", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rungs", type=float, nargs="+", default=[1, 2, 4])
    ap.add_argument("--epochs", type=int, default=1, help="proxy.epochs (rung 1x)")
    ap.add_argument("--cooldown", type=float, default=0.2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cooldown_vs_cosine.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    budget = dataclasses.replace(OmegaConf.to_object(OmegaConf.merge(
        OmegaConf.structured(ProxyConfig), OmegaConf.load(ROOT / "conf" / "proxy" / "cpu_smoke.yaml"))), threads=1)
    data = load_data(DatasetConfig(name="imagefolder", root=str(ARCHIVE), train_per_class=a.per_class,
                                   val_per_class=a.per_class, base_resolution=40))
    spe = len(data.train_y) // train_batch(budget.batch_size, len(data.train_y))
    lengths = [max(1, round(a.epochs * m)) for m in a.rungs]
    cont, cos, spent = {}, {}, {"continued": 0.0, "separate": 0.0}
    t0 = time.time()
    for ci, (al, be, px) in enumerate(CANDIDATES[: a.candidates]):
        spec = scale(B0, al, be, depth_rounding="total")
        for seed in range(a.seeds):
            state, below = None, 0
            for r, e in enumerate(lengths):
                trunk, cool = rung_steps(e * spe, a.cooldown)
                saved = {}
                out = train_rung(spec, px, data, budget, seed=seed, trunk_steps=trunk, cooldown_steps=cool,
                                 start=state, on_trunk=lambda st: saved.update(_copy(st)))
                state = saved
                spent["continued"] += (trunk - below + cool) / spe
                below = trunk
                sep = train_proxy(spec, px, data, dataclasses.replace(budget, epochs=e), seed=seed)
                spent["separate"] += e
                cont[(ci, seed, r)], cos[(ci, seed, r)] = out["accuracy"], sep["accuracy"]
                print(f"cand {ci} seed {seed} rung {e} ep: continued {out['accuracy']:.4f} cosine {sep['accuracy']:.4f}"
                      f" ({time.time() - t0:.0f} s)", flush=True)
    per_rung = []
    for r, e in enumerate(lengths):
        keys = [k for k in cont if k[2] == r]
        d = paired_difference({k: cont[k] for k in keys}, {k: cos[k] for k in keys})
        sd = np.mean([np.std([cos[(c, s, r)] for s in range(a.seeds)], ddof=1) for c in range(a.candidates)])
        per_rung.append({"epochs": e, "pairs": len(keys), "continued_mean": mean_ci(cont[k] for k in keys)["mean"],
                         "cosine_mean": mean_ci(cos[k] for k in keys)["mean"], "diff_mean": d["mean"],
                         "diff_ci95": [d["low"], d["high"]], "seed_sd": float(sd)})
    res = {"command": "python benchmarks/cooldown_vs_cosine.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(a).items()
        if k != "out"), "train_images": len(data.train_y), "val_images": len(data.val_y), "cooldown": a.cooldown,
        "rungs": per_rung, "epochs": spent, "saved": 1 - spent["continued"] / spent["separate"],
        "wall_s": round(time.time() - t0, 1)}
    print(json.dumps(res, indent=1))
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


def _copy(state: dict) -> dict:
    import copy

    return copy.deepcopy(state)


if __name__ == "__main__":
    main()
