"""The model over shares (scalesearch.decide.shares) against known truths, and on the committed CIFAR-10 recording.

**Simulation.** The design is the recording's 20 candidates as the product builds them (CIFAR-10 at base 40 px,
their realized shares); a truth gives each candidate a mean accuracy from its proportions (d, w, r):

* ``flat`` — 0.60 everywhere: no dimension matters;
* ``linear`` — 0.60 + 0.01·w + 0.06·r (resolution pays, as on CIFAR-10);
* ``curved`` — 0.62 − 0.15·‖p − p_paper‖², the optimum at the paper's candidate's shares;
* ``ridge`` — 0.62 − 0.10·(r − 0.3)²: flat along depth ↔ width;
* ``interaction`` — 0.60 + 0.03·r + 0.12·w·r (asymmetric).

Each training is truth + noise, quantised to 1/400: ``normal`` N(0, 0.02); ``t3`` Student t (3 df) scaled to sd
0.02; ``shared`` N(0, 0.02) plus a seed offset N(0, 0.01) shared by all candidates. Designs: ``20x3``, ``10x3``
and ``7x3`` (random candidates per replicate; 7 is the fewest the model speaks on, shares.MIN_DF) at one budget,
and ``race20x3`` — two budgets where the
second continues the first (its noise 0.7 × the first's + the rest fresh, +0.05 offset), as a race's rungs do.
The model is called as the product calls it (``run_share_model`` on result rows). The target of each printed
interval is the effect of the truth's best linear approximation over the replicate's candidates (for a linear
truth: the effect itself). Measured: each effect's interval coverage, "some dimension matters" (false on the flat
truth), a claim "matters" with the sign opposite to a nonzero target, and — on the same trainings — how often today's
pairwise verdict (the confidence set of the best, the deciding look's rows) says "decided".

**CIFAR-10 recording** (benchmarks/results/race_record_cifar.csv, 20 candidates × 8 seeds × rungs 1, 2): random
subsets of 3 seeds per candidate — the resolution effect reported as mattering and its sign, with both rungs (a
race's trainings) and with rung 2 alone; leave-one-candidate-out: the 95 % prediction interval of the model fitted
on the 19 others (3 seeds, rung 2) against the held-out candidate's 8-seed mean.

Run: ``python benchmarks/shares_sim.py --reps 1000 --out benchmarks/results/shares_sim.json`` (about 4 min on
one core); tests/decide/test_shares.py runs the same functions with fewer replicates.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from scalesearch.scaling.scaler import Scaler
from scalesearch.decide.shares import DIMENSIONS, run_share_model, share_table
from scalesearch.decide.stats import confidence_set

RECORDING = Path(__file__).resolve().parent / "results" / "race_record_cifar.csv"
NOISES = ("normal", "t3", "shared")
TRUTHS = ("flat", "linear", "curved", "ridge", "interaction")
DESIGNS = ("20x3", "10x3", "7x3", "race20x3")
SD, SEED_SD, QUANT = 0.02, 0.01, 400
PAPER, PEAK = "a1.2-b1.1-g1.45", (0.40, 0.25, 0.35)


@lru_cache(maxsize=1)
def recording() -> list[dict]:
    with open(RECORDING, newline="") as f:
        return [r for r in csv.DictReader(f) if r["status"] == "ok"]


@lru_cache(maxsize=1)
def scaler() -> Scaler:
    return Scaler(base_resolution=40, num_classes=10)


@lru_cache(maxsize=1)
def candidates() -> tuple[dict, ...]:
    """The recording's candidates: name, α, β, resolution and realized proportions."""
    seen = {}
    for r in recording():
        seen.setdefault(r["candidate"], (float(r["alpha"]), float(r["beta"]), int(r["resolution"])))
    table = share_table(scaler(), seen.values())
    return tuple({"candidate": c, "alpha": a, "beta": b, "resolution": res, "p": table[(a, b, res)].proportions}
                 for c, (a, b, res) in sorted(seen.items()))


def paper_p() -> tuple[float, float, float]:
    return next(c["p"] for c in candidates() if c["candidate"] == PAPER)


def truth(name: str, p) -> float:
    d, w, r = p
    if name == "flat":
        return 0.60
    if name == "linear":
        return 0.60 + 0.01 * w + 0.06 * r
    if name == "curved":
        return 0.62 - 0.15 * sum((x - y) ** 2 for x, y in zip(p, paper_p()))
    if name == "ridge":
        return 0.62 - 0.10 * (r - 0.3) ** 2
    if name == "interaction":
        return 0.60 + 0.03 * r + 0.12 * w * r
    if name == "peaked":  # benchmarks/optimum_sim.py: a clear interior optimum near the paper's shares
        return 0.62 - 0.5 * sum((x - y) ** 2 for x, y in zip(p, PEAK))
    raise ValueError(name)


def target_effects(name: str, cands: list[dict]) -> dict[str, float]:
    """The effects of the truth's least-squares linear approximation over these candidates."""
    X = np.array([(1.0, c["p"][1], c["p"][2]) for c in cands])
    y = np.array([truth(name, c["p"]) for c in cands])
    _, cw, cr = np.linalg.lstsq(X, y, rcond=None)[0]
    return {"depth": -(cw + cr) / 2, "width": cw - cr / 2, "resolution": cr - cw / 2}


def _noise(kind: str, rng, shape) -> np.ndarray:
    if kind == "t3":
        return rng.standard_t(3, shape) * SD / np.sqrt(3.0)
    e = rng.normal(0, SD, shape)
    if kind == "shared":
        e = e + rng.normal(0, SEED_SD, shape[-1])  # one offset per seed, shared by every candidate
    return e


def _rows(cands: list[dict], accs: np.ndarray, rung: float | None) -> list[dict]:
    return [{"candidate": c["candidate"], "alpha": c["alpha"], "beta": c["beta"], "resolution": c["resolution"],
             "seed": s, "rung": rung, "status": "ok", "accuracy": float(accs[i, s])}
            for i, c in enumerate(cands) for s in range(accs.shape[1])]


def replicate(name: str, kind: str, design: str, rng, seeds: int = 3, options=list) -> tuple:
    """One simulated run: (the model, the target effects, today's pairwise verdict decided, the deciding rows);
    ``options``: the space's buildable candidate rows, as the product passes them (benchmarks/optimum_sim.py)."""
    cands = list(candidates())
    if design in ("10x3", "7x3"):
        n = int(design.split("x")[0])
        cands = [cands[i] for i in sorted(rng.choice(len(cands), n, replace=False))]
    mu = np.array([truth(name, c["p"]) for c in cands])[:, None]
    e1 = _noise(kind, rng, (len(cands), seeds))
    q = lambda a: np.round(a * QUANT) / QUANT  # noqa: E731
    if design == "race20x3":
        e2 = 0.7 * e1 + np.sqrt(1 - 0.49) * _noise(kind, rng, (len(cands), seeds))
        rows = _rows(cands, q(mu + e1), 1.0) + _rows(cands, q(mu + 0.05 + e2), 2.0)
    else:
        rows = _rows(cands, q(mu + e1), None)
    last = [r for r in rows if r["rung"] in (None, 2.0)]  # the pairwise verdict reads the deciding look's rows
    by: dict = {}
    for r in last:
        by.setdefault(r["candidate"], {})[r["seed"]] = r["accuracy"]
    decided = confidence_set(by, n_val=QUANT)["decided"]
    model = run_share_model(rows, [], scaler(), options=options, paper=PAPER)
    return model, target_effects(name, cands), decided, last


def simulate(name: str, kind: str, design: str, reps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng([seed, TRUTHS.index(name), NOISES.index(kind), DESIGNS.index(design)])
    covered = {d: 0 for d in DIMENSIONS}
    fitted = any_matters = wrong = decided = 0
    for _ in range(reps):
        model, target, set_decided, _ = replicate(name, kind, design, rng)
        decided += set_decided
        if model.status != "fitted":
            continue
        fitted += 1
        any_matters += bool(model.matters)
        for e in model.effects:
            covered[e.dimension] += e.low <= target[e.dimension] <= e.high
            if e.dimension in model.matters and e.estimate * target[e.dimension] < 0 and abs(target[e.dimension]) > 1e-9:
                wrong += 1
    return {"truth": name, "noise": kind, "design": design, "reps": reps, "fitted": fitted,
            "coverage": {d: round(v / max(fitted, 1), 4) for d, v in covered.items()},
            "some_dimension_matters": round(any_matters / max(fitted, 1), 4),
            "wrong_sign_claims": round(wrong / max(fitted, 1), 4), "pairwise_decided": round(decided / reps, 4)}


def _cifar_rows(rungs, seeds: dict, cands: set) -> list[dict]:
    return [{**r, "seed": int(r["seed"]), "rung": float(r["rung"]), "accuracy": float(r["accuracy"])}
            for r in recording() if r["rung"] in rungs and r["candidate"] in cands
            and int(r["seed"]) in seeds[r["candidate"]]]


def cifar_subsets(rungs: tuple[str, ...], reps: int, n_seeds: int = 3, seed: int = 0) -> dict:
    """Random 3-seed subsets of the recording: how often resolution is said to matter, and with which sign."""
    rng = np.random.default_rng([seed, len(rungs)])
    names = [c["candidate"] for c in candidates()]
    positive = negative = 0
    for _ in range(reps):
        seeds = {c: set(rng.choice(8, n_seeds, replace=False).tolist()) for c in names}
        m = run_share_model(_cifar_rows(rungs, seeds, set(names)), [], scaler())
        if "resolution" in m.matters:
            e = next(e for e in m.effects if e.dimension == "resolution")
            positive += e.estimate > 0
            negative += e.estimate < 0
    return {"rungs": list(rungs), "reps": reps, "seeds": n_seeds, "resolution_matters_positive": positive / reps,
            "resolution_matters_negative": negative / reps}


def cifar_loo(reps: int, n_seeds: int = 3, seed: int = 0) -> dict:
    """Leave one candidate out (rung 2, 3 random seeds each): the 95 % prediction interval from the 19 others
    against the held-out candidate's 8-seed mean."""
    rng = np.random.default_rng([seed, 99])
    by = {c["candidate"]: c for c in candidates()}
    full = {c: np.mean([float(r["accuracy"]) for r in recording() if r["candidate"] == c and r["rung"] == "2.0"])
            for c in by}
    hits = total = 0
    for _ in range(reps):
        seeds = {c: set(rng.choice(8, n_seeds, replace=False).tolist()) for c in by}
        for out in by:
            m = run_share_model(_cifar_rows(("2.0",), seeds, set(by) - {out}), [], scaler())
            if m.status != "fitted":
                continue
            _, low, high = m.predict(by[out]["p"])
            hits += low <= full[out] <= high
            total += 1
    return {"reps": reps, "predictions": total, "coverage": round(hits / max(total, 1), 4), "level": 0.95}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/results/shares_sim.json")
    args = ap.parse_args(argv)
    t0 = time.time()
    out = {"reps": args.reps, "sim": [simulate(t, k, d, args.reps) for t in TRUTHS for k in NOISES for d in DESIGNS],
           "cifar": [cifar_subsets(("2.0",), args.reps), cifar_subsets(("1.0", "2.0"), args.reps)],
           "cifar_loo": cifar_loo(max(args.reps // 10, 10))}
    out["wall_s"] = round(time.time() - t0, 1)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("| truth | noise | design | coverage d / w / r | some dimension matters | wrong sign | pairwise decided |")
    print("|---|---|---|---|---:|---:|---:|")
    for s in out["sim"]:
        cov = " / ".join(f"{s['coverage'][d]:.3f}" for d in DIMENSIONS)
        print(f"| {s['truth']} | {s['noise']} | {s['design']} | {cov} | {s['some_dimension_matters']:.3f} | "
              f"{s['wrong_sign_claims']:.3f} | {s['pairwise_decided']:.3f} |")
    print(json.dumps(out["cifar"]), json.dumps(out["cifar_loo"]), f"{out['wall_s']} s")


if __name__ == "__main__":
    main()
