"""What to train: candidates at equal cost, and the jobs of every stage.

:class:`scalesearch.scaling.scaler.Scaler` (the rule's one owner) turns (α, β[, γ]) into a buildable candidate: its
spec (depth α^φ, width β^φ, rounded as the builder rounds them) and its proxy resolution —

* ``constraint=measured``: solved on whole pixels (multiples of ``search.resolution_multiple``) so
  that the measured cost (``search.cost``) of the built proxy over the baseline proxy's is as close to
  target^φ as the pixel grid allows (:func:`scalesearch.scaling.coefficients.solve_resolution`); a candidate whose
  closest cost is further than ``search.cost_tolerance`` from the target is ``infeasible`` (with the
  reason) and never trained. The effective γ = (resolution / base)^(1/φ) is what is recorded.
* ``constraint=nominal`` (the paper): resolution round(base·γ^φ); the measured cost is reported and
  flagged when it is off.

MACs and activations are counted on the meta device; latency and training-step time are measured by the
scaler's ``measure`` (the runner's calibration task on a worker with the trials' resources), cached per
(spec, resolution, device) in the run directory's ``costs.json``.

The grid keeps the lattice's (α, β) pairs and picks at most ``max_points`` by farthest-point
sampling in log(α, β, γ) from the paper's point, solving each pick as it goes: infeasible picks are
recorded and replaced. Optuna samples (α, β) (:class:`OptunaSpace`) and the same scaler solves γ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from functools import partial
from typing import Callable

from ..config import ProxyConfig
from ..scaling.coefficients import PAPER, Coefficients, candidate_id, member_name
from ..scaling.scaler import Scaler
from ..decide.shares import share_table

__all__ = ["select_grid", "shares_design", "OptunaSpace", "search_jobs", "validation_jobs", "family_jobs",
           "ablation_jobs", "job", "train_id", "is_paper", "budget_with_epochs_mult", "optuna_job"]


def is_paper(c: dict, constraint: str) -> bool:
    """The paper's point: (1.2, 1.1, 1.15) under the nominal constraint; its (α, β) under the measured one."""
    same = math.isclose(c["alpha"], PAPER.alpha) and math.isclose(c["beta"], PAPER.beta)
    return same and (constraint == "measured" or math.isclose(c["gamma"], PAPER.gamma))


def select_grid(space, scaler: Scaler, phi: float = 1.0, thin: int = 1, max_points: int | None = None,
                include_paper: bool = True, design: str = "spread") -> tuple[list[dict], list[dict]]:
    """(feasible candidates to train at ``phi``, infeasible ones met) of the grid strategy; ``design`` "shares":
    the points spread over the candidates' realized shares instead (:func:`shares_design`)."""
    if design == "shares":
        return shares_design(space, scaler, phi, thin, max_points, include_paper)
    if scaler.constraint == "nominal":
        pts = space.grid(thin=thin, max_points=max_points, include_paper=include_paper)
        return [scaler.candidate(c.alpha, c.beta, c.gamma, phi) for c in pts], []
    pairs = sorted({(c.alpha, c.beta) for c in space.lattice()})[::thin]
    if include_paper and (PAPER.alpha, PAPER.beta) not in pairs and any(
            (c.alpha, c.beta) == (PAPER.alpha, PAPER.beta) for c in space.lattice()):
        pairs.append((PAPER.alpha, PAPER.beta))
    nominal_gamma = lambda a, b: math.sqrt(space.target / (a * b * b))  # noqa: E731
    logs = {p: (math.log(p[0]), math.log(p[1]), math.log(nominal_gamma(*p))) for p in pairs}
    limit = max_points or len(pairs)
    chosen, infeasible, left = [], [], list(pairs)
    first = (PAPER.alpha, PAPER.beta) if include_paper and (PAPER.alpha, PAPER.beta) in left else left[0]
    while left and len(chosen) < limit:
        if not chosen and first in left:
            pick = first
        else:
            ref = [logs[(c["alpha"], c["beta"])] for c in chosen] or [logs[first]]
            pick = max(left, key=lambda p: (min(math.dist(logs[p], o) for o in ref), p))
        left.remove(pick)
        c = scaler.candidate(*pick, phi=phi)
        (chosen if c["cost_flag"] == "ok" else infeasible).append(c)
    return sorted(chosen, key=lambda c: (c["alpha"], c["beta"])), infeasible


def shares_design(space, scaler: Scaler, phi: float = 1.0, thin: int = 1, max_points: int | None = None,
                  include_paper: bool = True) -> tuple[list[dict], list[dict]]:
    """The design for the model over shares (``search=surface``): every feasible lattice point is built, points
    that build the same realized shares count once (per-stage rounding makes many α alike; the first in (α, β)
    order, the paper's when it is one of them), and at most ``max_points`` are picked by farthest-point sampling
    over the shares' triangle from the paper's point (else the first) — so the picks reach its corners and edges
    before they fill its middle, and no training repeats a point of the triangle."""
    feasible, infeasible = select_grid(space, scaler, phi, thin, None, include_paper)
    key = lambda c: (float(c["alpha"]), float(c["beta"]), int(c["resolution"]))  # noqa: E731
    table = share_table(scaler, {key(c) for c in feasible}, phi)
    paper = [c for c in feasible if (c["alpha"], c["beta"]) == (PAPER.alpha, PAPER.beta)] if include_paper else []
    points: dict[tuple, dict] = {}
    for c in paper + feasible:
        shares = table[key(c)]
        if shares.depth + shares.width + shares.resolution > 0:
            points.setdefault(tuple(round(p, 3) for p in shares.proportions), c)
    left = list(points)
    chosen = [left.pop(0)] if left else []
    while left and len(chosen) < (max_points or len(points)):
        pick = max(left, key=lambda p: min(math.dist(p, o) for o in chosen))
        left.remove(pick)
        chosen.append(pick)
    return sorted((points[p] for p in chosen), key=lambda c: (c["alpha"], c["beta"])), infeasible


class OptunaSpace:
    """Optuna define-by-run on the surface: sample α, then β inside the bounds that keep the nominal γ in
    range; the scaler solves (measured) or derives (nominal) γ. Returns the candidate (at ``phi``) as constants."""

    def __init__(self, space, scaler: Scaler, phi: float = 1.0):
        self.space, self.scaler, self.phi = space, scaler, phi

    def __call__(self, trial) -> dict:
        a_lo, a_hi = self.space.alpha_bounds()
        alpha = round(trial.suggest_float("alpha", a_lo, a_hi), 4)
        b_lo, b_hi = self.space.beta_bounds(alpha)
        beta = round(trial.suggest_float("beta", b_lo, b_hi), 4) if b_hi > b_lo else round(b_lo, 4)
        gamma = min(max(self.space.derive_gamma(alpha, beta), self.space.gamma.low), self.space.gamma.high)
        c = self.scaler.candidate(alpha, beta, round(gamma, 4), self.phi)
        return {**{k: v for k, v in c.items() if k != "spec"}, "spec_json": json.dumps(c["spec"])}


# ---------------------------------------------------------------- jobs
def train_id(spec: dict, resolution: int, seed: int, budget: ProxyConfig, data_fingerprint: str) -> str:
    """The identity of one training: the same network, input size, seed, budget and data train the same."""
    b = {k: v for k, v in dataclasses.asdict(budget).items() if k not in ("threads", "fault", "eval_every")}
    blob = json.dumps([spec, int(resolution), int(seed), b, data_fingerprint], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def job(key: str, index: int, spec: dict, resolution: int, seed: int, row: dict, budget: ProxyConfig,
        data_fingerprint: str) -> dict:
    return {"key": key, "index": index, "spec": spec, "resolution": int(resolution), "seed": int(seed),
            "epochs": budget.epochs, "steps": budget.steps, "row": {**row, "index": index},
            "train_id": train_id(spec, resolution, seed, budget, data_fingerprint)}


SEARCH_ROW = ("candidate", "alpha", "beta", "gamma", "product", "blocks", "cost", "cost_ratio", "cost_target",
              "cost_flag", "params", "macs", "activations")


def search_jobs(candidates: list[dict], seeds: list[int], budget: ProxyConfig, fingerprint: str) -> list[dict]:
    out = []
    for c in candidates:
        for s in seeds:
            out.append(job(f"{c['candidate']}/s{s}", len(out), c["spec"], c["resolution"], s,
                           {k: c[k] for k in SEARCH_ROW}, budget, fingerprint))
    return out


def optuna_job(config: dict, base_seed: int, budget: ProxyConfig, fingerprint: str) -> dict:
    """The job of an Optuna trial (its config holds the planned candidate; Repeater adds __trial_index__)."""
    spec = json.loads(config["spec_json"])
    seed = base_seed + int(config.get("__trial_index__", 0))
    row = {k: config.get(k) for k in SEARCH_ROW}
    if row["cost_flag"] == "infeasible":
        row["error"] = config.get("reason")
    return job(config["__trial_id__"], None, spec, config["resolution"], seed, row, budget, fingerprint)


def make_optuna_job(base_seed: int, budget: ProxyConfig, fingerprint: str):
    return partial(optuna_job, base_seed=base_seed, budget=budget, fingerprint=fingerprint)


def budget_with_epochs_mult(budget: ProxyConfig, mult: float) -> ProxyConfig:
    """The longer validation budget: epochs (or steps) × ``mult``."""
    if budget.steps:
        return dataclasses.replace(budget, steps=int(math.ceil(budget.steps * mult)))
    return dataclasses.replace(budget, epochs=int(math.ceil(budget.epochs * mult)))


def validation_jobs(ranked: list[dict], search_rows: list[dict], top_k: int, random_k: int, seed: int,
                    budget: ProxyConfig, fingerprint: str, spec_of: Callable[[float, float], dict],
                    paper: str | None = None) -> list[dict]:
    """The top ``top_k`` candidates by proxy mean, ``random_k`` others in addition (chosen by ``seed``) and the
    paper's candidate ``paper`` (its id in ``ranked``) when it is not among them, each with the seeds the search
    trained it with, at ``budget``; ``spec_of(alpha, beta)`` rebuilds a candidate's spec."""
    top = ranked[:top_k]
    rest = [c for c in ranked[top_k:] if c["candidate"] != paper]
    rnd = random.Random(seed).sample(rest, min(random_k, len(rest)))
    chosen = {c["candidate"] for c in top + rnd}
    extra = [c for c in ranked if c["candidate"] == paper and paper not in chosen]
    by_candidate: dict = {}
    for r in search_rows:
        if r.get("status") == "ok":
            by_candidate.setdefault(r["candidate"], []).append(r)
    out = []
    for role, group in (("top", top), ("random", rnd), ("paper", extra)):
        for c in group:
            rows = sorted(by_candidate.get(c["candidate"], []), key=lambda r: r["seed"])
            spec = spec_of(c["alpha"], c["beta"])
            for r in rows:
                # device costs: measured by the search already
                ident = {k: c.get(k) for k in ("candidate", "alpha", "beta", "gamma", "cost", "cost_ratio",
                                               "latency_ms", "train_step_ms")}
                ident.update(selected_as=role, proxy_mean=round(c["accuracy_mean"], 6), budget_epochs=budget.epochs,
                             params=c.get("params"), macs=c.get("macs"), activations=c.get("activations"))
                out.append(job(f"{c['candidate']}/s{r['seed']}", len(out), spec, c["resolution"], r["seed"], ident,
                               budget, fingerprint))
    return out


def family_jobs(label: str, coeffs: Coefficients, members: list, max_phi: float, seeds: list[int],
                budget: ProxyConfig, fingerprint: str, start: int = 0) -> list[dict]:
    """Trainings of the family members with φ <= ``max_phi`` (each with every seed)."""
    out = []
    tag = candidate_id(coeffs.alpha, coeffs.beta, coeffs.gamma)
    for m in members:
        if m.phi > max_phi:
            continue
        for s in seeds:
            row = {"family": label, "name": m.name, "phi": m.phi, "alpha": coeffs.alpha, "beta": coeffs.beta,
                   "gamma": coeffs.gamma, "depth_mult": m.depth_mult, "width_mult": m.width_mult,
                   "macs_ratio": m.macs_ratio, "params": m.params, "macs": m.macs, "activations": m.activations}
            out.append(job(f"{label}:{tag}/{m.name}/s{s}", start + len(out), m.spec, m.resolution, s, row, budget,
                           fingerprint))
    return out


def family_probes(scaler: Scaler, coeffs: list[Coefficients], phi: float) -> list[dict]:
    """Member ``phi`` of each family in ``coeffs`` as a job-like dict (key, resolution, row with params, MACs and
    activations) for the memory check before the search trains: the spec the family builds, at the nominal
    resolution round(base·γ^φ) (the family stage solves the exact one, and checks it again)."""
    out = []
    for c in coeffs:
        spec = scaler.spec(c.alpha, c.beta, phi)
        res = scaler.nominal_resolution(c.gamma**phi)
        cost = scaler.shape_cost(spec, res)
        key = f"{member_name(phi)} of α={c.alpha:g}, β={c.beta:g}, γ={c.gamma:g}"
        out.append({"key": key, "resolution": res, "coefficients": c,
                    "row": {"params": cost.params, "macs": cost.macs, "activations": cost.activations}})
    return out


def ablation_jobs(variants: list[dict], seeds: list[int], budget: ProxyConfig, fingerprint: str,
                  scaler: Scaler) -> list[dict]:
    out = []
    for v in variants:
        spec = scaler.build(v["depth"], v["width"])
        c = scaler.shape_cost(spec, v["resolution"])
        for s in seeds:
            row = {k: v[k] for k in ("method", "phi", "depth", "width", "nominal")}
            row.update(params=c.params, macs=c.macs, activations=c.activations)
            key = f"{v['method']}/{member_name(v['phi'])}/s{s}"
            out.append(job(key, len(out), spec.to_dict(), v["resolution"], s, row, budget, fingerprint))
    return out
