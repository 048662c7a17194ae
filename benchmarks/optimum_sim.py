"""The optimum of the model over shares (scalesearch.decide.optimum) against known truths.

Same simulated runs as benchmarks/shares_sim.py (the CIFAR-10 recording's 20 candidates as built, seed sd 0.02,
normal / t (3 df) / shared seed offsets, accuracies quantised to 1/400; one budget ``20x3`` or a race's two rungs
``race20x3``), on these truths:

* ``peaked`` — 0.62 − 0.5·‖p − p*‖², p* = (depth 0.40, width 0.25, resolution 0.35), near the paper's shares
  (0.44, 0.15, 0.40) and not a candidate: the optimum exists and is inside the searched shares;
* ``curved`` — 0.62 − 0.15·‖p − p_paper‖² (shares_sim's: the same shape, 3.3 × shallower);
* ``flat``, ``linear``, ``ridge``, ``interaction`` — no interior optimum (the ridge's maximum is a line).

Measured: how often an optimum is *located* (on the truths without one: a false optimum); on ``peaked`` and
``curved``, the coverage of the 95 % region (the true optimum passes the region's test) and of the two gains'
intervals (their targets: the truth at the located shares minus the truth at the paper's candidate, and at the best
trained candidate), and the located shares' distance to the truth's. The options are the compound space's whole
lattice as the product builds it (``select_grid``, their realized shares); the α, β, γ intervals' target is the
truth's best buildable option inside the searched shares (the one a user would build knowing the truth).

Run: ``python benchmarks/optimum_sim.py --reps 1000 --out benchmarks/results/optimum_sim.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.spatial import Delaunay

sys.path.insert(0, str(Path(__file__).resolve().parent))  # a script beside shares_sim.py
from shares_sim import (NOISES, PAPER, PEAK, QUANT, _noise, candidates, paper_p, replicate, scaler,  # noqa: E402
                        truth)

from scalesearch.plan.confirm import measured_gain  # noqa: E402
from scalesearch.plan.jobs import select_grid  # noqa: E402
from scalesearch.scaling.scaler import Scaler  # noqa: E402
from scalesearch.decide.shares import share_table  # noqa: E402
from scalesearch.plan.space import load_space  # noqa: E402
from scalesearch.decide.stats import confidence_set  # noqa: E402

TRUTHS = ("peaked", "curved", "flat", "linear", "ridge", "interaction")
DESIGNS = ("20x3", "race20x3")


@lru_cache(maxsize=1)
def lattice() -> tuple[dict, ...]:
    """The compound space's buildable candidates (rows as the product passes them: its lattice at base 40 px and
    the recording's 20), each with its realized shares ``p``; those outside the recording's candidates' convex hull
    are left out (the product never picks them)."""
    builder = Scaler(base_resolution=40, num_classes=10, resolution_multiple=1, gamma_range=(1.0, 1.5))
    rows = select_grid(load_space("compound"), builder, 1.0, 1, None, True)[0]
    known = {r["candidate"] for r in rows}  # and the recording's own candidates: they were built
    rows += [{**c, "gamma": float(c["candidate"].rsplit("-g", 1)[1])} for c in candidates()
             if c["candidate"] not in known]
    built = share_table(scaler(), {(float(r["alpha"]), float(r["beta"]), int(r["resolution"])) for r in rows})
    hull = Delaunay(np.array([c["p"][1:] for c in candidates()]))
    out = []
    for r in rows:
        p = built[(float(r["alpha"]), float(r["beta"]), int(r["resolution"]))].proportions
        if sum(p) > 0 and hull.find_simplex(np.array([p[1:]]))[0] >= 0:
            out.append({**r, "p": p})
    return tuple(out)


def _confirmed(name: str, kind: str, design: str, rng, last: list[dict], o) -> tuple:
    """(today's pick's shares, the shares the confirmation leaves): today's pick is the deciding rows' best mean; a
    located optimum (not a candidate: the simulation builds it exactly) is trained with the pick's seeds, fresh
    noise of the same kind; a race's at its deciding rung, with that rung's offset), and the confidence set of the
    best over the two decides, as confirm.confirm does."""
    by: dict = {}
    for r in last:
        by.setdefault(r["candidate"], {})[r["seed"]] = r["accuracy"]
    pick = max(by, key=lambda c: np.mean(list(by[c].values())))
    shares = {c["candidate"]: c["p"] for c in candidates()}
    if o is None:
        return shares[pick], shares[pick], None
    seeds = sorted(by[pick])
    offset = 0.05 if design.startswith("race") else 0.0  # shares_sim.replicate's second rung
    fresh = truth(name, o.shares) + offset + _noise(kind, rng, (1, len(seeds)))[0]
    mine = {s: float(np.round(a * QUANT) / QUANT) for s, a in zip(seeds, fresh)}
    members = confidence_set({"optimum": mine, pick: by[pick]}, n_val=QUANT)["members"]
    gain = measured_gain(mine, by[PAPER], n_val=QUANT)  # as confirm.confirm measures it
    covered = None if gain is None else gain.low <= truth(name, o.shares) - truth(name, paper_p()) <= gain.high
    return shares[pick], (o.shares if members == ["optimum"] else shares[pick]), covered


def simulate(name: str, kind: str, design: str, reps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng([seed, 7, TRUTHS.index(name), NOISES.index(kind), DESIGNS.index(design)])
    peak = PEAK if name == "peaked" else paper_p() if name == "curved" else None
    by = {c["candidate"]: c["p"] for c in candidates()}
    top = max(lattice(), key=lambda o: truth(name, o["p"]))  # the truth's best buildable option
    located = region = paper = best = stated = decided = switched = spanned = 0
    coefficient = {k: 0 for k in ("alpha", "beta", "gamma")}
    dist, regret_today, regret_confirmed, sizes, measured, within = [], [], [], [], [], []
    built = {o["candidate"]: o["p"] for o in lattice()}
    for _ in range(reps):
        model, _, set_decided, last = replicate(name, kind, design, rng, options=lattice)
        o = model.optimum
        is_located = o is not None and o.status == "located"
        stated += bool(model.matters) or is_located
        decided += set_decided
        if peak is not None:
            today, final, covered = _confirmed(name, kind, design, rng, last, o if is_located else None)
            if covered is not None:
                measured.append(covered)
            switched += final != today
            regret_today.append(truth(name, peak) - truth(name, today))
            regret_confirmed.append(truth(name, peak) - truth(name, final))
        if not is_located:
            continue
        located += 1
        if peak is None:
            continue
        region += o.in_region(peak)
        at = truth(name, o.shares)
        g = o.gain_over_paper
        paper += g.low <= at - truth(name, paper_p()) <= g.high
        g = o.gain_over_best
        best += g.low <= at - truth(name, by[o.best]) <= g.high
        dist.append(math.dist(o.shares, peak))
        if o.alpha is not None:
            spanned += 1
            sizes.append(o.held)
            within.append(all(truth(name, top["p"]) - truth(name, built[c]) <= o.delta + 1e-12 for c in o.within))
            for k in coefficient:
                iv = getattr(o, k)
                coefficient[k] += iv.low - 1e-9 <= float(top[k]) <= iv.high + 1e-9
    n = max(located, 1)
    out = {"truth": name, "noise": kind, "design": design, "reps": reps, "located": round(located / reps, 4),
           "stated": round(stated / reps, 4), "pairwise_decided": round(decided / reps, 4)}
    if peak is not None:
        out.update(regret_today=round(float(np.mean(regret_today)), 5),
                   regret_confirmed=round(float(np.mean(regret_confirmed)), 5), switched=round(switched / reps, 4))
        out.update(region_coverage=round(region / n, 4), gain_over_paper_coverage=round(paper / n, 4),
                   gain_over_best_coverage=round(best / n, 4),
                   median_distance=round(float(np.median(dist)), 4) if dist else None,
                   coefficients_given=round(spanned / n, 4),
                   coefficient_coverage={k: round(v / max(spanned, 1), 4) for k, v in coefficient.items()},
                   options=len(lattice()), median_set=float(np.median(sizes)) if sizes else None,
                   measured_gain_coverage=round(float(np.mean(measured)), 4) if measured else None,
                   within_holds=round(float(np.mean(within)), 4) if within else None)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/results/optimum_sim.json")
    args = ap.parse_args(argv)
    t0 = time.time()
    out = {"reps": args.reps, "sim": [simulate(t, k, d, args.reps) for t in TRUTHS for k in NOISES for d in DESIGNS]}
    out["wall_s"] = round(time.time() - t0, 1)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("| truth | noise | design | optimum located | region covers | gain over paper covers | gain over best "
          "covers | α β γ set covers | median set (of options) | within δ holds | measured gain over paper "
          "covers | median distance | regret today | regret confirmed | switched | stated | pairwise decided |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in out["sim"]:
        f = lambda k: "–" if s.get(k) is None else f"{s[k]:.3f}"  # noqa: E731
        g = lambda k: "–" if s.get(k) is None else f"{s[k]:.4f}"  # noqa: E731
        cover = lambda s: ("–" if not s.get("coefficients_given") else  # noqa: E731
                           " / ".join(f"{v:.3f}" for v in s["coefficient_coverage"].values()))
        size = lambda s: ("–" if s.get("median_set") is None  # noqa: E731
                          else f"{s['median_set']:g} of {s['options']}")
        print(f"| {s['truth']} | {s['noise']} | {s['design']} | {s['located']:.3f} | {f('region_coverage')} | "
              f"{f('gain_over_paper_coverage')} | {f('gain_over_best_coverage')} | {cover(s)} | {size(s)} | "
              f"{f('within_holds')} | {f('measured_gain_coverage')} | "
              f"{f('median_distance')} | "
              f"{g('regret_today')} | {g('regret_confirmed')} | {f('switched')} | {s['stated']:.3f} | "
              f"{s['pairwise_decided']:.3f} |")
    print(f"{out['wall_s']} s")


if __name__ == "__main__":
    main()
