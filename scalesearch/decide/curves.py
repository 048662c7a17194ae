"""Accuracy-vs-cost curves of a scaled family that extrapolate to the members nobody trained.

The search trains B0..B3 (compound coefficient φ = 0..3, cost about doubling per φ) on a short proxy
budget; this module predicts B4..B7 (costs known) with an interval, and measures how good such a
prediction is by holding out the largest trained member (:func:`holdout`).

The form
--------
``acc(C) = A − B · (C / C0)^(−p)``, with C0 the smallest trained cost, ceiling A ≤ 1, B ≥ 0, p > 0.

The error ``1 − acc`` is a power law in cost above an irreducible floor ``1 − A`` — the form that
empirical scaling-law studies find for error against model size and compute (Hestness et al. 2017,
"Deep Learning Scaling is Predictable, Empirically"; Rosenfeld et al. 2020, "A Constructive
Prediction of the Generalization Error Across Scales"). It saturates: each doubling of cost buys a
factor 2^(−p) less than the one before, accuracy never exceeds A, and with B ≥ 0 it never falls as
cost grows (a bigger member of the same family is not predicted to be worse). A logarithmic or
linear-in-log-cost curve would instead promise unbounded gains from B4..B7.

The fit (:func:`fit_curve`)
---------------------------
Bounded nonlinear least squares on the per-member mean accuracies with ``scipy.optimize.least_squares``
(trust-region reflective, analytic Jacobian, bounds A ≤ 1, B ≥ 0, p in [0.01, 3]), started from the
linear least-squares (A, B) at p = 0.1, 0.5 and 1.5; the flat curve B = 0, A = min(mean, 1) (the face
the interior method only approaches) is taken when it fits as well. The bootstrap refits start from the
point fit.

When the data do not pin p down — two distinct costs fit exactly for every p, and a flat curve
(B = 0) fits equally for every p — p is set to 0.5, the exponent of EfficientNet B0..B7 on ImageNet
(error floor ≈ 15 %, excess error falling ~ C^−0.5); the fit then says so in its "note".

The interval (:func:`fit_curve`, :func:`predict`)
-------------------------------------------------
A parametric bootstrap of the *seed noise*: in each replicate a member with ≥ 2 seeds gets the mean
of its seeds resampled with replacement; a member with one seed gets its accuracy plus Gaussian
noise of sd ``noise_sd`` (given by the caller — the pooled seed sd measured elsewhere — or else the
pooled sd of the members here with ≥ 2 seeds, or else the residual sd of the fit when there is a
residual degree of freedom, i.e. ≥ 4 members). Each replicate is refitted; the interval of a
prediction is the percentile interval of the replicates' predictions.

It is an interval for the *expected* (seed-mean) accuracy of the curve, and it carries only seed
noise: whether the form itself is right (model-form error) is not in it. The 3 parameters fitted to
n members leave n − 3 residual degrees of freedom; with n ≤ 3 none, so nothing in the data can reveal
a wrong form and the fit reports no rmse. :func:`holdout` therefore keeps ≥ 4 members in its fit
(≥ 5 trained) and otherwise says there is nothing to check. Resampling 2 or 3 seeds understates their
spread (the bootstrap variance of a mean of n seeds is (n−1)/n of s²/n): pass ``noise_sd`` from more
seeds when you have it.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.optimize import least_squares

__all__ = ["FORM", "fit_curve", "predict", "holdout", "MIN_HOLDOUT_MEMBERS"]

FORM = "acc = A - B*(C/C0)^(-p)"
P_BOUNDS = (0.01, 3.0)
P_REF = 0.5  # the exponent chosen when the data leave p undetermined (see the module docstring)
P_STARTS = (0.1, 0.5, 1.5)
N_PARAMS = 3
MIN_HOLDOUT_MEMBERS = N_PARAMS + 2  # 4 in the fit (1 residual df) + the held-out one


# ---------------------------------------------------------------- input
def _check_point(pt) -> dict:
    """One validated member: {"name", "cost", "accuracies" (np.ndarray), "mean"}."""
    if not isinstance(pt, dict):
        raise ValueError(f"each point must be a dict with name, cost and accuracies, got {pt!r}")
    name, cost, accs = pt.get("name"), pt.get("cost"), pt.get("accuracies")
    if isinstance(cost, bool) or not isinstance(cost, numbers.Real) or not math.isfinite(cost) or cost <= 0:
        raise ValueError(f"cost of {name!r} must be a finite number > 0, got {cost!r}")
    if accs is None or len(accs) == 0:
        raise ValueError(f"accuracies of {name!r} must hold at least one value, got {accs!r}")
    for a in accs:
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0.0 <= float(a) <= 1.0:
            raise ValueError(f"accuracies of {name!r} must be fractions in [0, 1], got {a!r}")
    arr = np.asarray(accs, dtype=float)
    return {"name": name, "cost": float(cost), "accuracies": arr, "mean": float(arr.mean())}


def _members(points: list[dict]) -> list[dict]:
    """Validated members sorted by cost, ≥ 2 with ≥ 2 distinct costs (else a one-line ValueError)."""
    if not isinstance(points, (list, tuple)) or len(points) < 2:
        n = len(points) if isinstance(points, (list, tuple)) else points
        raise ValueError(f"need at least 2 points (family members) to fit a curve, got {n!r}")
    out = sorted((_check_point(pt) for pt in points), key=lambda m: m["cost"])
    if len({m["cost"] for m in out}) < 2:
        raise ValueError(f"need at least 2 distinct costs to fit a curve, got only {out[0]['cost']!r}")
    return out


def _pooled_sd(members: list[dict]) -> float | None:
    """Pooled sample sd of the members with >= 2 seeds (None if none has)."""
    ss = sum(float(np.sum((m["accuracies"] - m["mean"]) ** 2)) for m in members)
    dof = sum(m["accuracies"].size - 1 for m in members)
    return math.sqrt(ss / dof) if dof else None


# ---------------------------------------------------------------- the fit
def _curve(A, B, p, x):
    """acc at relative cost x = C/C0 (arrays broadcast)."""
    return A - B * np.power(x, -p)


def _linear_ab(x: np.ndarray, y: np.ndarray, p: float) -> np.ndarray:
    """Least-squares (A, B) at fixed p, clipped into the bounds: a start for the nonlinear fit."""
    u = np.power(x, -p)
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(u), -u]), y, rcond=None)
    return np.array([min(a, 1.0), max(b, 0.0), p])


def _lsq(x: np.ndarray, y: np.ndarray, q0: np.ndarray, fix_p: bool) -> np.ndarray:
    """scipy least_squares (trf, analytic Jacobian) from q0 = (A, B, p) within A ≤ 1, B ≥ 0, p in P_BOUNDS;
    with ``fix_p`` only (A, B) move."""
    k = 2 if fix_p else 3

    def full(v):
        return np.append(v, q0[2]) if fix_p else v

    def res(v):
        q = full(v)
        return _curve(q[0], q[1], q[2], x) - y

    def jac(v):
        q = full(v)
        u = np.power(x, -q[2])
        return np.column_stack([np.ones_like(u), -u, q[1] * np.log(x) * u])[:, :k]

    lo, hi = np.array([-np.inf, 0.0, P_BOUNDS[0]])[:k], np.array([1.0, np.inf, P_BOUNDS[1]])[:k]
    v0 = np.clip(q0[:k], np.array([-np.inf, 1e-9, P_BOUNDS[0]])[:k], hi)
    r = least_squares(res, v0, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac",
                      ftol=1e-12, xtol=1e-12, gtol=1e-12)
    return full(r.x)


def _solve(x: np.ndarray, y: np.ndarray, starts: list[np.ndarray], fix_p: bool = False) -> tuple[np.ndarray, float]:
    """Best of :func:`_lsq` from each start and of the flat curve (B = 0, A = min(mean, 1), p = P_REF), which
    is kept on ties: (A, B, p) and its sum of squared residuals."""
    def sse(q):
        return float(np.sum((_curve(q[0], q[1], q[2], x) - y) ** 2))

    best = np.array([min(float(y.mean()), 1.0), 0.0, P_REF])
    best_sse = sse(best)
    tol = 1e-24 + 1e-12 * float(np.sum((y - y.mean()) ** 2))
    for q0 in starts:
        q = _lsq(x, y, q0, fix_p)
        if sse(q) < best_sse - tol:
            best, best_sse = q, sse(q)
    return best, best_sse


def _fit_point(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """The point fit: (A, B, p), sse, and whether p is undetermined (2 distinct costs, or a flat fit)."""
    if np.unique(x).size == 2:  # exact for every p: p fixed at P_REF, only (A, B) fitted
        q, sse = _solve(x, y, [_linear_ab(x, y, P_REF)], fix_p=True)
        return q, sse, True
    q, sse = _solve(x, y, [_linear_ab(x, y, p) for p in P_STARTS])
    return q, sse, bool(q[1] == 0.0)


def _boot_fits(x: np.ndarray, Y: np.ndarray, q0: np.ndarray) -> list[list[float]]:
    """Refit every bootstrap row of Y from the point fit q0 (p kept at P_REF when the point fit had 2 costs)."""
    fix_p = np.unique(x).size == 2
    out = []
    for y in Y:
        start = q0 if q0[1] > 0 else _linear_ab(x, y, P_REF)
        q, _ = _solve(x, y, [start], fix_p=fix_p)
        out.append([float(v) for v in q])
    return out


def _check_fit_args(noise_sd, n_boot) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    if noise_sd is not None and (isinstance(noise_sd, bool) or not isinstance(noise_sd, numbers.Real)
                                 or not math.isfinite(noise_sd) or noise_sd < 0):
        raise ValueError(f"noise_sd must be a finite number >= 0 or None, got {noise_sd!r}")


def _noise(members: list[dict], noise_sd: float | None, sse: float) -> tuple[float | None, str | None]:
    """The per-seed sd for the bootstrap and where it comes from (given, pooled seeds, residuals, none)."""
    if noise_sd is not None:
        return float(noise_sd), "given"
    pooled = _pooled_sd(members)
    if pooled is not None:
        return pooled, "pooled seed sd"
    n = len(members)
    if n > N_PARAMS:
        return math.sqrt(max(sse, 0.0) / (n - N_PARAMS)), "residual sd of the fit"
    return None, None


def _resample(members: list[dict], sd: float | None, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) bootstrap seed means: seeds resampled (≥ 2 seeds) or accuracy + N(0, sd) (1 seed)."""
    rng = np.random.default_rng(seed)
    Y = np.empty((n_boot, len(members)))
    for j, m in enumerate(members):
        a = m["accuracies"]
        if a.size >= 2:
            Y[:, j] = a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(1)
        else:
            Y[:, j] = a[0] + rng.normal(0.0, sd, size=n_boot)
    return Y


def _notes(n: int, tie: bool, p: float, no_interval: bool) -> list[str]:
    notes = []
    if tie:
        notes.append(f"p is not determined by the data (2 costs, or a flat curve): p = {p:.3g} was taken")
    if n <= N_PARAMS:
        notes.append(f"{n} members leave no residual degree of freedom for the {N_PARAMS} parameters: no fit "
                     "quality can be measured and the interval carries only seed noise, not model-form error "
                     f"(holdout checks the form with >= {MIN_HOLDOUT_MEMBERS} members)")
    if no_interval:
        notes.append("no interval: single-seed members and no noise estimate (pass noise_sd, add seeds, or "
                     f"train >= {N_PARAMS + 1} members)")
    return notes


def fit_curve(points: list[dict], noise_sd: float | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Fit ``acc = A − B·(C/C0)^(−p)`` to the per-member mean accuracies, with a bootstrap for intervals.

    ``points``: [{"name", "cost" (> 0), "accuracies": [per-seed accuracy in [0, 1], ...]}], ≥ 2 with
    distinct costs. ``noise_sd``: the per-seed accuracy sd for members with a single seed (None: the
    pooled sd of the members with ≥ 2 seeds, else the fit's residual sd when ≥ 4 members, else no
    interval). ``n_boot`` replicates (0: none), numpy Generator seeded by ``seed``.

    Returns a JSON-serialisable dict: {"form", "params": {"A", "B", "p", "C0"}, "n_points",
    "residual_df" (n − 3, at least 0), "rmse" (root mean squared residual; None with 0 residual df),
    "noise_sd" (used; None if none), "noise_source", "boot" (successful bootstrap fits), "note",
    "members": [{"name", "cost", "mean", "n_seeds"}], "_boot_params": [[A, B, p], ...] (private)}.
    """
    members = _members(points)
    _check_fit_args(noise_sd, n_boot)
    c0 = members[0]["cost"]
    x = np.array([m["cost"] / c0 for m in members])
    y = np.array([m["mean"] for m in members])
    n = len(members)
    q, sse, tie = _fit_point(x, y)
    sd, source = _noise(members, noise_sd, sse)
    no_interval = sd is None and any(m["accuracies"].size < 2 for m in members)
    boot = [] if no_interval or n_boot == 0 else _boot_fits(x, _resample(members, sd, int(n_boot), seed), q)
    boot = [b for b in boot if all(math.isfinite(v) for v in b)]
    df = max(n - N_PARAMS, 0)
    return {
        "form": FORM, "params": {"A": float(q[0]), "B": float(q[1]), "p": float(q[2]), "C0": c0}, "n_points": n,
        "residual_df": df, "rmse": math.sqrt(max(sse, 0.0) / n) if df else None, "noise_sd": sd,
        "noise_source": source, "boot": len(boot), "note": "; ".join(_notes(n, tie, float(q[2]), no_interval)) or None,
        "members": [{"name": m["name"], "cost": m["cost"], "mean": m["mean"], "n_seeds": int(m["accuracies"].size)}
                    for m in members],
        "_boot_params": boot,
    }


# ---------------------------------------------------------------- prediction
def _check_costs(costs) -> list[float]:
    """Costs as finite floats > 0, else a one-line ValueError."""
    out = []
    for c in costs:
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not math.isfinite(c) or c <= 0:
            raise ValueError(f"costs must be finite numbers > 0, got {c!r}")
        out.append(float(c))
    return out


def _boot_predictions(fit: dict, cost: float) -> np.ndarray:
    """The bootstrap replicates' predictions at ``cost`` (empty when there was no bootstrap)."""
    bp = np.asarray(fit.get("_boot_params") or [], dtype=float).reshape(-1, 3)
    return _curve(bp[:, 0], bp[:, 1], bp[:, 2], cost / fit["params"]["C0"])


def _interval(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """Percentile interval of samples, (None, None) with fewer than 2."""
    if samples.size < 2:
        return None, None
    lo, hi = np.quantile(samples, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
    return float(level)


def predict(fit: dict, costs: list[float], level: float = 0.95) -> list[dict]:
    """Predicted accuracy at each cost: [{"cost", "accuracy", "low", "high"}].

    low/high: the bootstrap percentile interval at ``level`` of the expected (seed-mean) accuracy —
    seed noise only, not model-form error; None when the fit has no bootstrap.
    """
    level = _check_level(level)
    pr = fit["params"]
    out = []
    for c in _check_costs(costs):
        low, high = _interval(_boot_predictions(fit, c), level)
        out.append({"cost": c, "accuracy": float(_curve(pr["A"], pr["B"], pr["p"], c / pr["C0"])),
                    "low": low, "high": high})
    return out


def holdout(points: list[dict], noise_sd: float | None = None, level: float = 0.95, seed: int = 0,
            n_boot: int = 1000) -> dict:
    """Fit on all but the largest-cost member and predict it: how good is the extrapolation?

    The fit must keep ≥ 4 members (≥ 1 residual degree of freedom for the 3 parameters), so the check
    needs ≥ MIN_HOLDOUT_MEMBERS (5) members; with fewer it returns {"held_out": None, "n_members", "note"}
    saying so — never an interval from a fit that matches its points by construction.

    Otherwise {"held_out", "measured" (its seed mean), "predicted", "low", "high", "error" (predicted −
    measured), "inside", "n_fit", "residual_df", "measurement_sd", "note" (the fit's)}. low/high is a
    prediction interval at ``level`` for the measured seed mean: the curve's bootstrap predictions plus
    Gaussian measurement noise of sd noise_sd/√(held-out seeds) (noise_sd as resolved by the fit); None
    (and inside None) when the fit has no noise estimate. It carries seed noise only, not model-form error.
    """
    level = _check_level(level)
    members = _members(points)
    if len(members) < MIN_HOLDOUT_MEMBERS:
        return {"held_out": None, "n_members": len(members),
                "note": f"nothing to check: the held-out check needs >= {MIN_HOLDOUT_MEMBERS} trained members "
                        f"({MIN_HOLDOUT_MEMBERS - 1} in the fit leave 1 residual degree of freedom for the "
                        f"{N_PARAMS} parameters); {len(members)} trained"}
    held = members[-1]
    rest = [{"name": m["name"], "cost": m["cost"], "accuracies": m["accuracies"].tolist()} for m in members[:-1]]
    fit = fit_curve(rest, noise_sd=noise_sd, n_boot=n_boot, seed=seed)
    predicted = predict(fit, [held["cost"]], level)[0]["accuracy"]
    low = high = inside = msd = None
    if fit["boot"] >= 2 and fit["noise_sd"] is not None:
        msd = fit["noise_sd"] / math.sqrt(held["accuracies"].size)
        rng = np.random.default_rng((int(seed), 1))  # a stream apart from the fit's
        preds = _boot_predictions(fit, held["cost"])
        low, high = _interval(preds + rng.normal(0.0, msd, size=preds.size), level)
        inside = bool(low <= held["mean"] <= high)
    return {"held_out": held["name"], "measured": held["mean"], "predicted": predicted, "low": low, "high": high,
            "error": predicted - held["mean"], "inside": inside, "n_fit": len(rest), "residual_df": fit["residual_df"],
            "measurement_sd": msd, "note": fit["note"]}
