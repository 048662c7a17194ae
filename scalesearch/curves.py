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
Least squares on the per-member mean accuracies by variable projection: for each p on a grid (200
values log-spaced in [0.01, 3]) the model is linear in (A, B); that least-squares problem with the
constraints B ≥ 0, A ≤ 1 is solved exactly (a two-variable active set: the unconstrained solution
if feasible, else the best of the faces B = 0 and A = 1). The best grid p is then refined by golden
section between its grid neighbours.

When the data do not pin p down — two members fit exactly for every feasible p, and a flat curve
(B = 0) fits equally for every p — p is taken as the fitting value closest (in log) to 0.5, the
exponent of EfficientNet B0..B7 on ImageNet (error floor ≈ 15 %, excess error falling ~ C^−0.5);
the fit then says so in its "note".

The interval (:func:`fit_curve`, :func:`predict`)
-------------------------------------------------
A parametric bootstrap of the *seed noise*: in each replicate a member with ≥ 2 seeds gets the mean
of its seeds resampled with replacement; a member with one seed gets its accuracy plus Gaussian
noise of sd ``noise_sd`` (given by the caller — the pooled seed sd measured elsewhere — or else the
pooled sd of the members here with ≥ 2 seeds, or else the residual sd of the fit when there is a
residual degree of freedom, i.e. ≥ 4 members). Each replicate is refitted; the interval of a
prediction is the percentile interval of the replicates' predictions.

It is an interval for the *expected* (seed-mean) accuracy of the curve, and it carries only seed
noise: whether the form itself is right (model-form error) is not in it. With 2 or 3 members the
curve has no residual degree of freedom, so nothing in the data can reveal a wrong form — the
held-out check of :func:`holdout` (≥ 4 members to keep 3 in the fit) is the only evidence then.
Resampling 2 or 3 seeds understates their spread (the bootstrap variance of a mean of n seeds is
(n−1)/n of s²/n, and few distinct resamples exist): pass ``noise_sd`` from more seeds when you have it.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["FORM", "fit_curve", "predict", "holdout"]

FORM = "acc = A - B*(C/C0)^(-p)"
P_GRID = np.logspace(math.log10(0.01), math.log10(3.0), 200)
P_REF = 0.5  # the exponent chosen when the data leave p undetermined (see the module docstring)
_GOLDEN_STEPS = 40
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


# ---------------------------------------------------------------- input
def _members(points: list[dict]) -> list[dict]:
    """Validated members sorted by cost: {"name", "cost", "accuracies" (np.ndarray), "mean"}."""
    if not isinstance(points, (list, tuple)) or len(points) < 2:
        n = len(points) if isinstance(points, (list, tuple)) else points
        raise ValueError(f"need at least 2 points (family members) to fit a curve, got {n!r}")
    out = []
    for pt in points:
        if not isinstance(pt, dict):
            raise ValueError(f"each point must be a dict with name, cost and accuracies, got {pt!r}")
        name = pt.get("name")
        cost = pt.get("cost")
        if isinstance(cost, bool) or not isinstance(cost, numbers.Real) or not math.isfinite(cost) or cost <= 0:
            raise ValueError(f"cost of {name!r} must be a finite number > 0, got {cost!r}")
        accs = pt.get("accuracies")
        if accs is None or len(accs) == 0:
            raise ValueError(f"accuracies of {name!r} must hold at least one value, got {accs!r}")
        for a in accs:
            if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0.0 <= float(a) <= 1.0:
                raise ValueError(f"accuracies of {name!r} must be fractions in [0, 1], got {a!r}")
        arr = np.asarray(accs, dtype=float)
        out.append({"name": name, "cost": float(cost), "accuracies": arr, "mean": float(arr.mean())})
    out.sort(key=lambda m: m["cost"])
    if len({m["cost"] for m in out}) < 2:
        raise ValueError(f"need at least 2 distinct costs to fit a curve, got only {out[0]['cost']!r}")
    return out


def _pooled_sd(members: list[dict]) -> float | None:
    """Pooled sample sd of the members with >= 2 seeds (None if none has)."""
    ss, dof = 0.0, 0
    for m in members:
        a = m["accuracies"]
        if a.size >= 2:
            ss += float(np.sum((a - a.mean()) ** 2))
            dof += a.size - 1
    return math.sqrt(ss / dof) if dof else None


# ---------------------------------------------------------------- the fit
def _solve_ab(u: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constrained least squares of y ≈ A − B·u (B >= 0, A <= 1) along the last axis.

    ``u`` and ``y`` broadcast to (..., n). Returns A, B and the squared error, each of shape (...).
    Exact: a convex problem in two variables, so its minimum is the unconstrained one when that is
    feasible, else the best of the faces B = 0 (A = min(mean y, 1)) and A = 1 (B = max(0, LS)).
    """
    u, y = np.broadcast_arrays(u, y)
    ubar, ybar = u.mean(-1), y.mean(-1)
    du, dy = u - ubar[..., None], y - ybar[..., None]
    sxx = np.sum(du * du, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b0 = np.where(sxx > 0, -np.sum(du * dy, -1) / sxx, 0.0)
    a0 = ybar + b0 * ubar
    sse0 = np.sum((y - a0[..., None] + b0[..., None] * u) ** 2, -1)
    sse0 = np.where((b0 >= 0) & (a0 <= 1.0), sse0, np.inf)
    a1 = np.minimum(ybar, 1.0)  # face B = 0
    b1 = np.zeros_like(a1)
    sse1 = np.sum((y - a1[..., None]) ** 2, -1)
    uu = np.sum(u * u, -1)  # face A = 1 (u > 0, so uu > 0)
    b2 = np.maximum(0.0, np.sum(u * (1.0 - y), -1) / uu)
    a2 = np.ones_like(b2)
    sse2 = np.sum((y - 1.0 + b2[..., None] * u) ** 2, -1)
    sse = np.stack([sse0, sse1, sse2])
    k = np.argmin(sse, axis=0)
    pick = lambda *v: np.choose(k, v)  # noqa: E731
    return pick(a0, a1, a2), pick(b0, b1, b2), pick(sse0, sse1, sse2)


def _fit_rows(x: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit every row of ``Y`` (R, n) at relative costs ``x`` (n,): A, B, p, sse (R,) and tie flags.

    Variable projection over P_GRID, then golden section between the best grid point's neighbours.
    A row whose minimum is attained on several grid points (p not determined by the data) keeps P_REF
    if it fits as well, else the tied grid p closest to P_REF in log, unrefined; its tie flag is True.
    """
    R = Y.shape[0]
    logx = np.log(x)
    U = np.exp(-P_GRID[:, None] * logx[None, :])  # (P, n)
    _, _, sse = _solve_ab(U[None, :, :], Y[:, None, :])  # (R, P)
    sst = np.sum((Y - Y.mean(1, keepdims=True)) ** 2, 1)
    best = sse.min(1)
    tol = 1e-24 + 1e-14 * sst
    tied = sse <= (best + tol)[:, None]
    tie = tied.sum(1) > 1
    dist = np.where(tied, np.abs(np.log(P_GRID) - math.log(P_REF))[None, :], np.inf)
    i = np.where(tie, np.argmin(dist, 1), np.argmin(sse, 1))
    p = P_GRID[i]
    sse_best = sse[np.arange(R), i]
    if tie.any():  # P_REF itself when it fits as well as the tied grid points
        sse_ref_p = _solve_ab(np.exp(-P_REF * logx), Y)[2]
        use_ref = tie & (sse_ref_p <= best + tol)
        p, sse_best = np.where(use_ref, P_REF, p), np.where(use_ref, sse_ref_p, sse_best)

    def f(pv: np.ndarray) -> np.ndarray:
        return _solve_ab(np.exp(-pv[:, None] * logx[None, :]), Y)[2]

    a = P_GRID[np.maximum(i - 1, 0)]
    b = P_GRID[np.minimum(i + 1, P_GRID.size - 1)]
    c, d = b - _INV_PHI * (b - a), a + _INV_PHI * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(_GOLDEN_STEPS):
        left = fc < fd  # the minimum lies in [a, d]
        a, b = np.where(left, a, c), np.where(left, d, b)
        new = np.where(left, b - _INV_PHI * (b - a), a + _INV_PHI * (b - a))
        fnew = f(new)
        c, d, fc, fd = (np.where(left, new, d), np.where(left, c, new),
                        np.where(left, fnew, fd), np.where(left, fc, fnew))
    p_gold, sse_gold = np.where(fc < fd, c, d), np.minimum(fc, fd)
    better = ~tie & (sse_gold < sse_best)
    p = np.where(better, p_gold, p)
    A, B, sse_final = _solve_ab(np.exp(-p[:, None] * logx[None, :]), Y)
    return A, B, p, sse_final, tie


def _curve(A: float | np.ndarray, B: float | np.ndarray, p: float | np.ndarray, x: float) -> float | np.ndarray:
    """acc at relative cost x = C/C0."""
    return A - B * np.exp(-p * math.log(x))


def fit_curve(points: list[dict], noise_sd: float | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Fit ``acc = A − B·(C/C0)^(−p)`` to the per-member mean accuracies, with a bootstrap for intervals.

    ``points``: [{"name", "cost" (> 0), "accuracies": [per-seed accuracy in [0, 1], ...]}], ≥ 2 with
    distinct costs. ``noise_sd``: the per-seed accuracy sd for members with a single seed (None: the
    pooled sd of the members with ≥ 2 seeds, else the fit's residual sd when ≥ 4 members, else no
    interval). ``n_boot`` replicates (0: none), numpy Generator seeded by ``seed``.

    Returns a JSON-serialisable dict: {"form", "params": {"A", "B", "p", "C0"}, "n_points", "rmse",
    "noise_sd" (used; None if none), "noise_source", "boot" (successful bootstrap fits), "note",
    "members": [{"name", "cost", "mean", "n_seeds"}], "_boot_params": [[A, B, p], ...] (private)}.
    """
    members = _members(points)
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    if noise_sd is not None and (isinstance(noise_sd, bool) or not isinstance(noise_sd, numbers.Real)
                                 or not math.isfinite(noise_sd) or noise_sd < 0):
        raise ValueError(f"noise_sd must be a finite number >= 0 or None, got {noise_sd!r}")
    c0 = members[0]["cost"]
    x = np.array([m["cost"] / c0 for m in members])
    y = np.array([m["mean"] for m in members])
    n = len(members)
    A, B, p, sse, tie = (float(v[0]) for v in _fit_rows(x, y[None, :]))
    rmse = math.sqrt(max(sse, 0.0) / n)

    notes = []
    if tie:
        notes.append(f"p is not determined by the data (2 members, or a flat curve): p = {p:.3g} was "
                     f"taken as the fitting value closest to {P_REF}")
    if n <= 3:
        notes.append(f"{n} members leave no residual degree of freedom for the 3 parameters: the interval "
                     "carries only seed noise, not model-form error (check it with holdout on >= 4 members)")
    single = [m for m in members if m["accuracies"].size < 2]
    sd, source = (float(noise_sd), "given") if noise_sd is not None else (None, None)
    if sd is None:
        pooled = _pooled_sd(members)
        if pooled is not None:
            sd, source = pooled, "pooled seed sd"
        elif n > 3:
            sd, source = math.sqrt(max(sse, 0.0) / (n - 3)), "residual sd of the fit"
    boot_params: list[list[float]] = []
    if single and sd is None:
        notes.append("no interval: single-seed members and no noise estimate (pass noise_sd, add seeds, or "
                     "train >= 4 members)")
    elif n_boot > 0:
        rng = np.random.default_rng(seed)
        Y = np.empty((int(n_boot), n))
        for j, m in enumerate(members):
            a = m["accuracies"]
            if a.size >= 2:
                Y[:, j] = a[rng.integers(0, a.size, size=(int(n_boot), a.size))].mean(1)
            else:
                Y[:, j] = a[0] + rng.normal(0.0, sd, size=int(n_boot))
        bA, bB, bp, _, _ = _fit_rows(x, Y)
        ok = np.isfinite(bA) & np.isfinite(bB) & np.isfinite(bp)
        boot_params = [[float(u), float(v), float(w)] for u, v, w in zip(bA[ok], bB[ok], bp[ok])]
    return {
        "form": FORM,
        "params": {"A": A, "B": B, "p": p, "C0": c0},
        "n_points": n,
        "rmse": rmse,
        "noise_sd": sd,
        "noise_source": source,
        "boot": len(boot_params),
        "note": "; ".join(notes) or None,
        "members": [{"name": m["name"], "cost": m["cost"], "mean": m["mean"], "n_seeds": int(m["accuracies"].size)}
                    for m in members],
        "_boot_params": boot_params,
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
            n_boot: int = 1000) -> dict | None:
    """Fit on all but the largest-cost member and predict it: how good is the extrapolation?

    Returns {"held_out", "measured" (its seed mean), "predicted", "low", "high", "error" (predicted −
    measured), "inside", "n_fit", "measurement_sd", "note" (the fit's)}, or None with fewer than 3 members. low/high is a
    prediction interval for the measured seed mean: the curve's bootstrap predictions plus Gaussian
    measurement noise of sd noise_sd/√(held-out seeds) (noise_sd as resolved by the fit); None (and
    inside None) when the fit has no noise estimate.
    """
    level = _check_level(level)
    members = _members(points)
    if len(members) < 3:
        return None
    held = members[-1]
    rest = [{"name": m["name"], "cost": m["cost"], "accuracies": m["accuracies"].tolist()} for m in members[:-1]]
    fit = fit_curve(rest, noise_sd=noise_sd, n_boot=n_boot, seed=seed)
    predicted = predict(fit, [held["cost"]], level)[0]["accuracy"]
    measured = held["mean"]
    low = high = inside = msd = None
    if fit["boot"] >= 2 and fit["noise_sd"] is not None:
        msd = fit["noise_sd"] / math.sqrt(held["accuracies"].size)
        rng = np.random.default_rng((int(seed), 1))  # a stream apart from the fit's
        preds = _boot_predictions(fit, held["cost"])
        low, high = _interval(preds + rng.normal(0.0, msd, size=preds.size), level)
        inside = bool(low <= measured <= high)
    return {"held_out": held["name"], "measured": measured, "predicted": predicted, "low": low, "high": high,
            "error": predicted - measured, "inside": inside, "n_fit": len(rest), "measurement_sd": msd,
            "note": fit["note"]}
