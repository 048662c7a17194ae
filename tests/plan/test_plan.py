"""What to train: the scaler's candidates at equal measured cost, the grid's farthest-point selection,
the Optuna define-by-run space, and the job builders of every stage.

Costs are recounted here with ``spec_cost`` on specs built with ``scale`` (whose equality with the whole
built model is tested in tests/scaling/test_model_family.py); resolutions and ratios are checked against their pixel
neighbours and, where the range is small, against a brute-force search over every allowed resolution."""

import dataclasses
import json
import math
import pickle

import optuna
import pytest

from scalesearch.config import ProxyConfig
from scalesearch.scaling.model import spec_cost
from scalesearch.plan.jobs import (SEARCH_ROW, OptunaSpace, ablation_jobs, budget_with_epochs_mult, family_jobs, is_paper,
                              job, search_jobs, select_grid, validation_jobs)
from scalesearch.decide.results import aggregate
from scalesearch.plan.jobs import train_id
from scalesearch.scaling.coefficients import PAPER, Coefficients, candidate_id
from scalesearch.scaling.scaler import Scaler, family
from scalesearch.plan.space import load_space
from scalesearch.scaling.spec import B0, ModelSpec, scale

SPACE = load_space("compound")
NUM_CLASSES = 10
TARGET, TOL = 2.0, 0.1


class RecordingScaler(Scaler):
    """The real scaler; remembers the order in which the grid asked for candidates."""

    def candidate(self, alpha, beta, gamma=None, phi=1.0):
        c = super().candidate(alpha, beta, gamma, phi)
        self.__dict__.setdefault("asked", []).append(c)
        return c


def planner(base: int, constraint: str = "measured", depth_rounding: str = "total", num_classes: int = NUM_CLASSES,
            cls=Scaler, **kw) -> Scaler:
    """The search's scaler as the default config builds it: γ range [1, 1.5], every pixel."""
    return cls(B0, base, num_classes, 3, constraint=constraint, gamma_range=(1.0, 1.5), resolution_multiple=1,
               depth_rounding=depth_rounding, **kw)


def measured_planner(base: int, cls=Scaler, **kw) -> Scaler:
    return planner(base, cls=cls, **kw)


@pytest.fixture(scope="module", params=[32, 64, 224])
def measured_grid(request):
    base = request.param
    planner = measured_planner(base, RecordingScaler)
    chosen, infeasible = select_grid(SPACE, planner, max_points=5)
    return base, planner, chosen, infeasible


def _ratio_fn(spec: ModelSpec, base: int):
    base_macs = spec_cost(B0, base, NUM_CLASSES).macs
    return lambda r: spec_cost(spec, r, NUM_CLASSES).macs / base_macs


def test_measured_grid_candidates_sit_within_a_pixel_of_the_target(measured_grid):
    """The rule, for every feasible candidate of the default grid (compound space, max_points=5, resolution_multiple 1,
    gamma range [1, 1.5]) at base 32, 64 and 224: its resolution r lies in [base, round(1.5 * base)], and either the
    target 2 lies within r's pixel step — between the MACs ratio one cost step below r and the ratio at r + 1 (a
    stride-2 map ceil(r/2) makes costs come in plateaus of 2 px; the solver keeps the top of a plateau, so r - 1 may
    cost the same as r: "one step below" is the nearest resolution under r that costs less) — or r is an end of that
    range and its ratio is within the tolerance (10 %) of 2. Either way no allowed resolution is closer in log ratio
    (neighbours checked always; every resolution of the range at base 32 and 64). Its gamma is the effective one,
    round(r / base, 4) (phi 1), and its recorded costs are spec_cost's at r."""
    base, planner, chosen, infeasible = measured_grid
    lo, hi = base, round(1.5 * base)
    assert chosen, f"no feasible candidate at base {base}"
    assert len(chosen) <= 5 and [(c["alpha"], c["beta"]) for c in chosen] == sorted((c["alpha"], c["beta"]) for c in chosen)
    for c in chosen + infeasible:
        spec = scale(B0, c["alpha"], c["beta"], "total")
        assert c["spec"] == spec.to_dict() and c["blocks"] == spec.num_blocks
        ratio_at = _ratio_fn(spec, base)
        r = c["resolution"]
        assert lo <= r <= hi
        ratio = ratio_at(r)
        assert c["cost_ratio"] == round(ratio, 4) and c["cost_target"] == TARGET and c["cost"] == "macs"
        cost = spec_cost(spec, r, NUM_CLASSES)
        assert (c["params"], c["macs"], c["activations"]) == (cost.params, cost.macs, cost.activations)
        assert c["gamma"] == round(r / base, 4) and c["candidate"] == candidate_id(c["alpha"], c["beta"], c["gamma"])
        assert c["product"] == round(c["alpha"] * c["beta"] ** 2 * c["gamma"] ** 2, 4)
        off = abs(math.log(ratio / TARGET))
        others = range(lo, hi + 1) if base <= 64 else [x for x in (r - 1, r + 1) if lo <= x <= hi]
        for x in others:
            other = ratio_at(x)
            assert off <= abs(math.log(other / TARGET)) + 1e-12, (c["candidate"], r, x)
            if x > r:  # equal cost higher up: the solver keeps the most pixels
                assert other != ratio, (c["candidate"], r, x)
        if c in chosen:
            assert c["cost_flag"] == "ok" and c["reason"] == "" and abs(ratio / TARGET - 1) <= TOL
            below = next(ratio_at(x) for x in range(r - 1, 0, -1) if ratio_at(x) != ratio)
            brackets = below <= TARGET <= ratio_at(r + 1)
            assert brackets or r in (lo, hi), (c["candidate"], r, below, ratio, ratio_at(r + 1))
        else:
            assert c["cost_flag"] == "infeasible" and abs(ratio / TARGET - 1) > TOL
            assert c["reason"] and "search.cost_tolerance=0.1" in c["reason"] and "\n" not in c["reason"]


def test_measured_grid_is_farthest_point_sampling_from_the_paper(measured_grid):
    """The first (α, β) solved is the paper's (1.2, 1.1); each later pick is a remaining lattice pair farthest (in
    log α, log β, log nominal γ) from the feasible candidates chosen so far (from the paper while none is); the grid
    stops at 5 feasible ones. The paper's pair is among the chosen exactly when it is feasible."""
    base, planner, chosen, infeasible = measured_grid
    asked = planner.asked
    assert (asked[0]["alpha"], asked[0]["beta"]) == (PAPER.alpha, PAPER.beta)
    pairs = {(c.alpha, c.beta) for c in SPACE.lattice()}

    def coords(p):
        a, b = p
        return (math.log(a), math.log(b), 0.5 * math.log(TARGET / (a * b * b)))

    picked = [(c["alpha"], c["beta"]) for c in asked]
    assert len(set(picked)) == len(picked) and set(picked) <= pairs
    feasible_so_far = []
    for k, c in enumerate(asked):
        if k:
            ref = [coords(p) for p in feasible_so_far] or [coords(picked[0])]
            left = pairs - set(picked[:k])
            dist = lambda p: min(math.dist(coords(p), o) for o in ref)  # noqa: E731
            assert dist(picked[k]) >= max(dist(p) for p in left) - 1e-12, (k, picked[k])
        if c["cost_flag"] == "ok":
            feasible_so_far.append(picked[k])
    assert sorted(feasible_so_far) == sorted((c["alpha"], c["beta"]) for c in chosen)
    assert [c["candidate"] for c in infeasible] == [c["candidate"] for c in asked if c["cost_flag"] != "ok"]
    assert len(chosen) == 5 or len(asked) == len(pairs)
    paper_ok = asked[0]["cost_flag"] == "ok"
    assert any(is_paper(c, "measured") for c in chosen) == paper_ok
    if base == 224:  # the paper's (α, β) can be matched there (effective γ ≈ 1.15)
        assert paper_ok and next(c for c in chosen if is_paper(c, "measured"))["resolution"] == 258


def test_measured_grid_at_small_base_flags_coarse_pixel_steps():
    """At base 32 the five stride-2 stages leave 1x1 maps: 32 -> 33 px multiplies B0's MACs by ~2.4, so B0 itself
    (α = β = 1) cannot be brought to 2x; the planner says so instead of training it off-target."""
    p = measured_planner(32)
    c = p.candidate(1.0, 1.0)
    assert c["cost_flag"] == "infeasible" and "off the target" in c["reason"]
    ratio_at = _ratio_fn(B0, 32)
    assert ratio_at(32) == 1.0 and ratio_at(33) > 2.2


def test_scaler_phi_and_a_device_cost_hook():
    # phi 2: the target is 2^2, depth and width are α², β², the effective γ is (r / base)^(1/2)
    c = measured_planner(64).candidate(1.2, 1.1, phi=2.0)
    assert c["cost_target"] == 4.0 and c["spec"] == scale(B0, 1.2**2, 1.1**2, "total").to_dict()
    assert c["gamma"] == round((c["resolution"] / 64) ** 0.5, 4)
    assert 64 <= c["resolution"] <= round(64 * 1.5**2)
    # a device cost goes through the measure hook; a stand-in proportional to MACs solves the same resolution
    calls = []

    def measure(spec, resolution):
        calls.append((spec, resolution))
        return spec_cost(spec, resolution, NUM_CLASSES).macs / 1e6

    by_hook = measured_planner(64, cost="latency", measure=measure).candidate(1.2, 1.1)
    by_macs = measured_planner(64).candidate(1.2, 1.1)
    assert calls and by_hook["resolution"] == by_macs["resolution"] and by_hook["cost"] == "latency"
    assert by_hook["cost_ratio"] == by_macs["cost_ratio"]
    with pytest.raises(ValueError, match="cost='latency' is measured on a device, but no device measurer was given"):
        measured_planner(64, cost="latency")
    # the hook talks to Ray on the driver: it is not pickled with the planner (Optuna's space is shipped)
    assert pickle.loads(pickle.dumps(measured_planner(64, cost="latency", measure=measure))).measure is None


# ---------------------------------------------------------------- nominal
def test_nominal_grid_reproduces_the_paper_rule():
    """constraint=nominal: the lattice's (α, β, γ) points as before, resolution round(base·γ), the measured
    cost ratio reported and flagged "off" beyond the tolerance, never infeasible."""
    base = 64
    scaler = planner(base, "nominal", "stage")
    chosen, infeasible = select_grid(SPACE, scaler, max_points=5)
    assert infeasible == []
    pts = SPACE.grid(max_points=5)
    assert [(c["alpha"], c["beta"], c["gamma"]) for c in chosen] == [(p.alpha, p.beta, p.gamma) for p in pts]
    assert sum(is_paper(c, "nominal") for c in chosen) == 1
    flags = set()
    for c in chosen:
        spec = scale(B0, c["alpha"], c["beta"], "stage")
        assert c["resolution"] == round(base * c["gamma"]) and c["spec"] == spec.to_dict()
        ratio = _ratio_fn(spec, base)(c["resolution"])
        assert c["cost_ratio"] == round(ratio, 4) and c["product"] == round(c["alpha"] * c["beta"] ** 2 * c["gamma"] ** 2, 4)
        assert c["cost_flag"] == ("ok" if abs(ratio / TARGET - 1) <= TOL else "off")
        assert c["candidate"] == candidate_id(c["alpha"], c["beta"], c["gamma"])
        flags.add(c["cost_flag"])
    assert "ok" in flags
    # the paper's point at 224: round(224 * 1.15) = 258 px
    paper = planner(224, "nominal", "stage", num_classes=1000).candidate(1.2, 1.1, 1.15)
    assert paper["resolution"] == 258 and paper["gamma"] == 1.15 and is_paper(paper, "nominal")
    assert not is_paper({**paper, "gamma": 1.2}, "nominal") and is_paper({**paper, "gamma": 1.2}, "measured")


# ---------------------------------------------------------------- optuna
@pytest.mark.parametrize("constraint", ["measured", "nominal"])
def test_optuna_space_returns_planned_candidates(constraint):
    base = 64
    scaler = planner(base, constraint)
    space = OptunaSpace(SPACE, scaler)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    a_lo, a_hi = SPACE.alpha_bounds()
    seen = set()
    for _ in range(6):
        trial = study.ask()
        out = space(trial)
        json.dumps(out)  # constants only: Tune stores them as the trial's config
        assert "spec" not in out and set(SEARCH_ROW) <= set(out) and "resolution" in out
        a, b = out["alpha"], out["beta"]
        assert a == round(trial.params["alpha"], 4) and a_lo - 1e-4 <= a <= a_hi + 1e-4
        b_lo, b_hi = SPACE.beta_bounds(a)
        assert b_lo - 1e-4 <= b <= b_hi + 1e-4
        nominal_gamma = math.sqrt(TARGET / (a * b * b))  # on the surface α·β²·γ² = 2, γ in range
        assert 1.0 - 1e-3 <= nominal_gamma <= 1.5 + 1e-3
        spec = ModelSpec.from_dict(json.loads(out["spec_json"]))
        assert spec == scale(B0, a, b, "total")
        r = out["resolution"]
        assert base <= r <= round(1.5 * base)
        if constraint == "measured":
            assert r == scaler.candidate(a, b)["resolution"]  # solved, not round(base·γ)
            assert out["gamma"] == round(r / base, 4)
        else:
            assert out["gamma"] == pytest.approx(nominal_gamma, abs=1e-4) and r == round(base * out["gamma"])
            assert out["product"] == pytest.approx(TARGET, abs=2e-3)
        assert out["cost_ratio"] == round(_ratio_fn(spec, base)(r), 4)
        seen.add((a, b))
        study.tell(trial, 0.5)
    assert len(seen) == 6


# ---------------------------------------------------------------- jobs
BUDGET = ProxyConfig(epochs=2)


def test_train_id_is_deterministic_and_covers_what_changes_a_training():
    spec = B0.to_dict()
    t = train_id(spec, 40, 0, BUDGET, "fp")
    assert t == train_id(json.loads(json.dumps(spec)), 40, 0, ProxyConfig(epochs=2), "fp") and len(t) == 16
    changed = {
        "seed": train_id(spec, 40, 1, BUDGET, "fp"),
        "epochs": train_id(spec, 40, 0, dataclasses.replace(BUDGET, epochs=3), "fp"),
        "lr": train_id(spec, 40, 0, dataclasses.replace(BUDGET, lr=1e-3), "fp"),
        "steps": train_id(spec, 40, 0, dataclasses.replace(BUDGET, steps=10), "fp"),
        "fingerprint": train_id(spec, 40, 0, BUDGET, "other"),
        "resolution": train_id(spec, 41, 0, BUDGET, "fp"),
        "spec": train_id(scale(B0, 1.2, 1.0).to_dict(), 40, 0, BUDGET, "fp"),
    }
    assert t not in changed.values() and len(set(changed.values())) == len(changed)
    # how many threads, test faults and evaluation frequency do not change what is trained
    same = dataclasses.replace(BUDGET, threads=3, eval_every=1)
    assert train_id(spec, 40, 0, same, "fp") == t


def test_search_jobs_keys_rows_and_ids(measured_grid):
    base, _, chosen, _ = measured_grid
    jobs = search_jobs(chosen, [0, 1], BUDGET, "fp")
    assert len(jobs) == 2 * len(chosen) and [j["index"] for j in jobs] == list(range(len(jobs)))
    assert len({j["key"] for j in jobs}) == len(jobs) and len({j["train_id"] for j in jobs}) == len(jobs)
    for j in jobs:
        c = next(c for c in chosen if j["key"] == f"{c['candidate']}/s{j['seed']}")
        assert j["spec"] == c["spec"] and j["resolution"] == c["resolution"] and (j["epochs"], j["steps"]) == (2, None)
        assert j["row"] == {**{k: c[k] for k in SEARCH_ROW}, "index": j["index"]}
        assert j["train_id"] == train_id(c["spec"], c["resolution"], j["seed"], BUDGET, "fp")
    assert [j["train_id"] for j in search_jobs(chosen, [0, 1], BUDGET, "fp")] == [j["train_id"] for j in jobs]
    assert all(a["train_id"] != b["train_id"] for a, b in zip(jobs, search_jobs(chosen, [0, 1], BUDGET, "fp2")))


def _search_rows(cands: list[dict]) -> list[dict]:
    """Search-table rows: candidate k has accuracy 0.3 + 0.05 k (+ a seed wobble); seed 2 of candidate 1 failed."""
    rows = []
    for k, c in enumerate(cands):
        for s in (0, 1, 2):
            failed = (k, s) == (1, 2)
            rows.append({**c, "seed": s, "status": "error" if failed else "ok",
                         "accuracy": None if failed else 0.3 + 0.05 * k + 0.01 * s})
    return rows


def test_validation_jobs_top_k_and_seeded_random_k():
    planner = measured_planner(64)
    pairs = [(1.0, 1.4), (1.15, 1.35), (1.25, 1.0), (1.5, 1.1), (2.0, 1.0), (1.4, 1.15), (1.0, 1.3)]
    cands = [{k: v for k, v in planner.candidate(a, b).items() if k != "spec"} for a, b in pairs]
    rows = _search_rows(cands)
    ranked = aggregate(rows)
    assert [c["candidate"] for c in ranked] == [c["candidate"] for c in reversed(cands)]
    v_budget = budget_with_epochs_mult(BUDGET, 4.0)
    spec_of = lambda a, b: planner.spec(a, b).to_dict()  # noqa: E731

    def pick(seed, top_k=2, random_k=2):
        jobs = validation_jobs(ranked, rows, top_k, random_k, seed, v_budget, "fp", spec_of)
        roles = {}
        for j in jobs:
            roles.setdefault(j["row"]["selected_as"], []).append(j["row"]["candidate"])
        return jobs, {k: sorted(set(v)) for k, v in roles.items()}

    jobs, roles = pick(0)
    top = [c["candidate"] for c in ranked[:2]]
    assert roles["top"] == sorted(top) and len(roles["random"]) == 2 and not set(roles["random"]) & set(top)
    assert set(roles["random"]) <= {c["candidate"] for c in ranked[2:]}
    assert len({j["key"] for j in jobs}) == len(jobs) and [j["index"] for j in jobs] == list(range(len(jobs)))
    by_cand = {c["candidate"]: c for c in ranked}
    for j in jobs:
        c = by_cand[j["row"]["candidate"]]
        ok_seeds = [r["seed"] for r in rows if r["candidate"] == c["candidate"] and r["status"] == "ok"]
        assert j["seed"] in ok_seeds and j["key"] == f"{c['candidate']}/s{j['seed']}"
        assert j["spec"] == spec_of(c["alpha"], c["beta"]) and j["resolution"] == c["resolution"]
        assert j["epochs"] == 8 and j["row"]["budget_epochs"] == 8 and j["row"]["proxy_mean"] == round(c["accuracy_mean"], 6)
        assert j["train_id"] == train_id(j["spec"], j["resolution"], j["seed"], v_budget, "fp")
    # each selected candidate with every seed it was searched with (the failed seed 2 of candidate 1 is not retrained)
    for cand in roles["top"] + roles["random"]:
        assert sorted(j["seed"] for j in jobs if j["row"]["candidate"] == cand) == [
            r["seed"] for r in rows if r["candidate"] == cand and r["status"] == "ok"]
    # deterministic for a seed; other seeds pick other random candidates, never the top ones
    assert pick(0)[0] == jobs
    randoms = {tuple(pick(s)[1]["random"]) for s in range(12)}
    assert len(randoms) > 1 and all(not set(r) & set(top) for r in randoms)
    # asking for more random ones than there are: all the rest
    assert sorted(pick(0, top_k=1, random_k=50)[1]["random"]) == sorted(c["candidate"] for c in ranked[1:])


def test_family_and_ablation_jobs():
    coeffs = Coefficients(1.2, 1.1, 1.15)
    members = family(coeffs, base_resolution=40, phis=[0, 1, 2, 3], num_classes=NUM_CLASSES, constraint="measured",
                     depth_rounding="total", gamma_range=(1.0, 1.5))
    searched = family_jobs("searched", coeffs, members, 2, [0, 1], BUDGET, "fp")
    paper = family_jobs("paper", PAPER, members, 2, [0, 1], BUDGET, "fp", start=len(searched))
    jobs = searched + paper
    assert len(searched) == 6 and [j["index"] for j in jobs] == list(range(12))
    assert len({j["key"] for j in jobs}) == 12
    assert searched[0]["key"] == "searched:a1.2-b1.1-g1.15/b0/s0" and {j["row"]["name"] for j in jobs} == {"b0", "b1", "b2"}
    for j in searched:
        m = next(m for m in members if m.name == j["row"]["name"])
        assert j["spec"] == m.spec and j["resolution"] == m.resolution and j["row"]["macs"] == m.macs
        assert j["train_id"] == train_id(m.spec, m.resolution, j["seed"], BUDGET, "fp")
    # the same network, seed and budget in two stages has the same train_id (the runner reuses the result)
    assert [j["train_id"] for j in searched] == [j["train_id"] for j in paper]

    variants = [{"method": "depth", "phi": 1, "depth": 2.0, "width": 1.0, "resolution": 40, "nominal": 2.0},
                {"method": "width", "phi": 1, "depth": 1.0, "width": 1.4, "resolution": 40, "nominal": 1.96},
                {"method": "depth", "phi": -1, "depth": 0.5, "width": 1.0, "resolution": 40, "nominal": 0.5}]
    abl = ablation_jobs(variants, [0, 1], BUDGET, "fp", planner(40))
    assert [j["key"] for j in abl] == ["depth/b1/s0", "depth/b1/s1", "width/b1/s0", "width/b1/s1", "depth/b-1/s0",
                                       "depth/b-1/s1"]
    for j, v in zip(abl[::2], variants):
        spec = scale(B0, v["depth"], v["width"], "total")
        c = spec_cost(spec, v["resolution"], NUM_CLASSES)
        assert j["spec"] == spec.to_dict() and (j["row"]["params"], j["row"]["macs"]) == (c.params, c.macs)


def test_job_and_budget_helpers():
    j = job("k", 3, B0.to_dict(), 40.0, 5, {"a": 1}, BUDGET, "fp")
    assert j["resolution"] == 40 and isinstance(j["resolution"], int) and j["row"] == {"a": 1, "index": 3}
    assert budget_with_epochs_mult(BUDGET, 4.0).epochs == 8 and budget_with_epochs_mult(BUDGET, 1.3).epochs == 3
    steps = dataclasses.replace(BUDGET, steps=10)
    assert budget_with_epochs_mult(steps, 1.5) == dataclasses.replace(steps, steps=15)
    assert budget_with_epochs_mult(steps, 1.01).steps == 11 and budget_with_epochs_mult(steps, 1.01).epochs == 2


# ---------------------------------------------------------------- the solver itself
def test_solve_resolution_equals_a_brute_force_search():
    """On random non-decreasing step functions (plateaus, jumps) the bisection picks what an exhaustive search over
    the grid picks: the closest cost in log ratio, ties and plateaus to the largest resolution; and it is feasible
    exactly when the target lies between the costs one grid step beyond the range's ends."""
    import random

    from scalesearch.scaling.coefficients import solve_resolution

    rng = random.Random(0)
    for _ in range(3000):
        jumps = [rng.choice([1.0, 1.0, 1.01, 1.1, 1.5, 2.0]) for _ in range(600)]
        costs = [0.3]
        for j in jumps:
            costs.append(costs[-1] * j)
        cost = lambda r: costs[r]  # noqa: E731
        multiple = rng.choice([1, 1, 2, 8])
        low = rng.randint(1, 200)
        high = low + rng.randint(multiple, 200)
        target = rng.choice([rng.uniform(0.1, 50.0), costs[rng.randint(1, 500)]])
        grid = [r for r in range(low, high + 1) if r % multiple == 0]
        s = solve_resolution(cost, target, low, high, multiple)
        best = min(grid, key=lambda r: (abs(math.log(cost(r) / target)), -r))
        assert (s.resolution, s.ratio, s.target) == (best, cost(best), target)
        floor = cost(grid[0] - multiple) if grid[0] - multiple >= 1 else 0.0
        assert s.feasible == (floor <= target <= cost(grid[-1] + multiple))
        assert (s.reason == "") == s.feasible
    with pytest.raises(ValueError, match="no resolution that is a multiple of 8 lies in"):
        solve_resolution(lambda r: r, 1.0, 17, 23, 8)


def test_a_member_whose_timing_cannot_be_solved_falls_back_to_macs_and_says_so(caplog):
    """Timings need not grow with the resolution (a CPU at small inputs is overhead-bound): here the stand-in
    timing grows with depth and width but not with pixels, and saturates at twice B0's. B1 of a candidate whose
    width alone doubles it is held at latency (the candidate's rule); B2 (4x) cannot be and is solved on MACs, its
    ``cost`` says so, and a warning names it."""
    cap = 2.0 * spec_cost(B0, 40, NUM_CLASSES).macs

    def flat_in_pixels(spec, resolution):
        return min(cap, float(spec_cost(spec, 40, NUM_CLASSES).macs))

    scaler = measured_planner(40, cost="latency", measure=flat_in_pixels)
    by_macs = measured_planner(40)
    coeffs = Coefficients(1.0, 1.4, 1.0)  # width alone ~2x: feasible on this timing at any resolution
    assert scaler.candidate(1.0, 1.4)["cost_flag"] == "ok"
    with caplog.at_level("WARNING", logger="scalesearch"):
        b0, b1, b2 = scaler.family(coeffs, [0, 1, 2])
    assert (b0.cost, b1.cost, b2.cost) == ("latency", "latency", "macs")
    assert b1.resolution == scaler.candidate(1.0, 1.4)["resolution"]
    assert b2.resolution == by_macs.family(coeffs, [2])[0].resolution and b2.cost_ratio == b2.macs_ratio
    assert any("family member b2: its latency cannot be held" in r.message for r in caplog.records)


def test_the_surface_design_spreads_distinct_points_of_the_shares_triangle():
    """search=surface: every feasible lattice point built, points with the same realized shares counted once (the
    paper's kept), farthest-point over the triangle — the all-depth corner (the farthest from the paper's shares)
    comes second; with no limit, one candidate per distinct point."""
    from helpers import compose_search
    from scalesearch.plan.jobs import shares_design
    from scalesearch.decide.shares import share_table

    s = Scaler(base_resolution=40, num_classes=NUM_CLASSES, constraint="measured", resolution_multiple=1,
               gamma_range=(SPACE.gamma.low, SPACE.gamma.high))
    key = lambda c: (c["alpha"], c["beta"], c["resolution"])  # noqa: E731
    every, _ = select_grid(SPACE, s, max_points=None)
    table = share_table(s, {key(c) for c in every})
    props = lambda cs: [tuple(round(p, 3) for p in table[key(c)].proportions) for c in cs]  # noqa: E731
    all_points, _ = shares_design(SPACE, s)
    assert len(props(all_points)) == len(set(props(all_points))) == len(set(props(every))) < len(every)
    twelve, _ = select_grid(SPACE, s, max_points=12, design="shares")
    assert len(twelve) == 12 and len(set(props(twelve))) == 12 and set(props(twelve)) <= set(props(all_points))
    assert any((c["alpha"], c["beta"]) == (PAPER.alpha, PAPER.beta) for c in twelve)
    assert (1.0, 0.0, 0.0) in props(twelve)
    cfg = compose_search("search=surface")
    assert (cfg.search.strategy, cfg.search.design, cfg.search.max_points, cfg.search.n_seeds) == \
        ("grid", "shares", 12, 3)
