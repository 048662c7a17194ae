"""Is a decided family pick the right member? (issue 35, item 4) — simulation of ``report.pick_cost_effective``.

Members b0..b4 at MACs doubling each step, acc = 0.80 − B·(2^i)^(−p) for four curve shapes whose right member (the
walk on the true gains: the first member whose next step gains < 0.01 per doubling) is b0, b2, b3 and b3 on a
steeper curve; seed noise normal, Student t(3) scaled to the sd, or normal plus a seed effect (sd 0.01) shared by
the members trained with that seed; accuracies quantised to 1/400; 1, 3 or 10 seeds per member; the search's noise
sd passed as an estimate with 20 df (as the product passes it) or not at all (the members' own spread). For the rule
and for the old rule (no precision gate, on the same bounds): P(decided), P(decided and wrong), P(right | decided)
with its counts. Also the power figures of the small-noise scenarios of tests/decide/test_family_sim.py.

The harness is tests/decide/test_family_sim.py (loaded by path).

    python benchmarks/family_pick_sim.py [--reps 2000] [--sds 0.02 0.01 0.005 0.002] [--out OUT.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "family_pick_sim.json"


def harness():
    """tests/decide/test_family_sim.py as a module (the simulation the tests assert on)."""
    sys.path.insert(0, str(ROOT / "tests"))
    spec = importlib.util.spec_from_file_location("test_family_sim", ROOT / "tests" / "test_family_sim.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rates(c: dict, prefix: str = "") -> dict:
    d, w = c[prefix + "decided"], c[prefix + "wrong"]
    return {"decided": d, "wrong": w, "p_decided": d / c["reps"], "p_wrong_and_decided": w / c["reps"],
            "p_right_given_decided": None if d == 0 else (d - w) / d}


def run(reps: int, sds: list[float]) -> dict:
    h = harness()
    cells = []
    for sd in sds:
        for shape in h.SHAPES:
            for kind in h.NOISES:
                for n in (1, 3, 10):
                    for given in (True, False):
                        c = h.simulate_shape(shape, kind, sd, n, given, reps=reps)
                        cells.append({"sd": sd, "shape": shape, "noise": kind, "seeds": n, "noise_sd_given": given,
                                      "reps": reps, "new": rates(c), "old": rates(c, "old_")})
    power = {f"{right}, sd 0.002, 3 seeds": h.simulate(right, 0.002, 3, reps=reps)
             for right in ("b3", "b1", "b0")}
    shapes = {s: {"B": B, "p": p, "gains_per_doubling": np.round(np.diff(h.shape_truth(s)), 4).tolist(),
                  "right": f"b{h.right_member(s)}"} for s, (B, p) in h.SHAPES.items()}
    return {"threshold": h.THRESHOLD, "ceiling": h.CEILING, "quantum": h.QUANTUM, "noise_df": h.NOISE_DF,
            "shared_sd": h.SHARED_SD, "shapes": shapes, "cells": cells, "summary": summary(cells), "power": power}


def summary(cells: list[dict]) -> dict:
    """Per seed sd and rule: decided runs, wrong ones, the lowest P(right | decided) over cells with ≥ 20 decided,
    the largest P(decided and wrong)."""
    out = {}
    for sd in sorted({c["sd"] for c in cells}, reverse=True):
        for rule in ("new", "old"):
            cs = [c[rule] for c in cells if c["sd"] == sd]
            cond = [c["p_right_given_decided"] for c in cs if c["decided"] >= 20]
            out[f"sd {sd} {rule}"] = {"decided": sum(c["decided"] for c in cs), "wrong": sum(c["wrong"] for c in cs),
                                      "min_p_right_given_decided_20plus": min(cond, default=None),
                                      "max_p_wrong_and_decided": max(c["p_wrong_and_decided"] for c in cs)}
    return out


def fmt(r: dict) -> str:
    d = r["decided"]
    cond = "—" if d == 0 else f"{100 * r['p_right_given_decided']:.0f} % ({d - r['wrong']}/{d})"
    return f"{100 * r['p_decided']:.2f} % / {100 * r['p_wrong_and_decided']:.2f} % / {cond}"


def table(res: dict, sd: float) -> str:
    lines = ["| shape | noise | seeds | noise sd | old: P(dec) / P(wrong & dec) / P(right given dec) | new: same |",
             "|---|---|---:|---|---|---|"]
    for c in res["cells"]:
        if c["sd"] == sd:
            lines.append(f"| {c['shape']} | {c['noise']} | {c['seeds']} | {'given' if c['noise_sd_given'] else 'own'} "
                         f"| {fmt(c['old'])} | {fmt(c['new'])} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--sds", type=float, nargs="+", default=[0.02, 0.01, 0.005, 0.002])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run(a.reps, a.sds)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    for sd in a.sds:
        print(f"\nseed sd {sd}\n" + table(res, sd))
    print("\n" + json.dumps(res["summary"], indent=1) + "\n" + json.dumps(res["power"], indent=1))
    print(f"wrote {a.out} in {res['wall_s']} s")


if __name__ == "__main__":
    main()
