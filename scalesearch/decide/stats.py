"""The statistics a researcher needs to trust a ranking of proxy trainings — a thin layer over scipy.stats.

* :func:`t_quantile` — the two-sided Student-t critical value (``scipy.stats.t.ppf``).
* :func:`mean_ci` — mean of per-seed accuracies with its Student-t interval (one seed: no interval, never "± 0").
* :func:`paired_difference` — a − b over the seeds both ran, with a paired Student-t interval; the sd of the
  differences can be floored at the accuracy's resolution 1/n_val (accuracies are quantised, so equal
  differences would otherwise give sd 0 and an interval of zero width).
* :func:`confidence_set` — the candidates the data cannot tell from the best at a family-wise level
  (two-sided paired t-tests, Bonferroni over the k − 1 comparisons of each candidate). No P(best): a bootstrap
  share of "best" over resampled seeds read as a probability and was not one (it called picks best with ≥ 0.9
  that were the true best 43 % of the time in simulation, and contradicted the set).
* :func:`tost` — the two one-sided paired t-tests of equivalence within ± a margin.
* :func:`noise_sd_bound` — an upper confidence bound of the seed noise that holds for tails up to a Student t
  with 3 df (the two-way residual sd over a simulated quantile).
* :func:`seeds_to_decide` — how many seeds the confidence set needs to hold only the best, planned for the
  least favourable case (every rival a margin behind at once), with the selection this implies.

Every result is a plain float/int/None or a dict/list of them. The rank statistics (Kendall τ, Spearman ρ, their
bootstrap, the proxy's rank agreement) are in :mod:`scalesearch.decide.ranks`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Mapping
from functools import lru_cache

import numpy as np
from scipy import stats as st

__all__ = ["t_quantile", "mean_ci", "paired_difference", "confidence_set", "regret_bound", "tost",
           "noise_sd_bound", "pooled_residual_sd", "power_to_decide", "seeds_to_decide", "sd_ratio_quantile",
           "check_level", "MIN_SEEDS", "ADVICE_POWER", "NOISE_BOUND_LEVEL", "NOISE_TAILS_DF"]

MIN_SEEDS = 3  # shared seeds a decision (exclusion from the set, equivalence) needs
ADVICE_POWER = 0.8  # the power the seeds advice plans for
NOISE_BOUND_LEVEL = 0.95  # the level of the noise bound the seeds advice plans with


# ---------------------------------------------------------------- validation helpers
def check_level(level: float, name: str = "level") -> float:
    """``level`` as a float strictly between 0 and 1, else a one-line ValueError."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {level!r}")
    return float(level)


def _finite_floats(values: Iterable, name: str = "values") -> list[float]:
    """The values as a list of finite floats, else a one-line ValueError."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ValueError(f"{name} must be finite numbers, got {v!r}")
        out.append(float(v))
    return out


def _floor(n_val: int | None) -> float:
    """The accuracy's resolution 1/n_val (0 when unknown): the smallest sd a paired difference is given."""
    return 1.0 / n_val if n_val else 0.0


# ---------------------------------------------------------------- Student t
def t_quantile(df: int, level: float = 0.95) -> float:
    """Two-sided Student-t critical value: t with P(|T| <= t) = ``level`` (``scipy.stats.t.ppf``).

    Examples: df=1 → 12.706, df=2 → 4.303, df=4 → 2.776, df=30 → 2.042, large df → 1.960 (level 0.95).
    """
    if isinstance(df, bool) or not isinstance(df, numbers.Integral) or df < 1:
        raise ValueError(f"df must be an integer >= 1, got {df!r}")
    level = check_level(level)
    return float(st.t.ppf((1.0 + level) / 2.0, df))


def mean_ci(values: Iterable[float], level: float = 0.95) -> dict:
    """Mean of ``values`` with its two-sided Student-t confidence interval.

    Returns {"n", "mean", "std" (sample, ddof=1), "half_width", "low", "high"}; with one value the
    spread is unknown, so std/half_width/low/high are None. No values → ValueError.
    """
    level = check_level(level)
    xs = np.asarray(_finite_floats(values), dtype=float)
    if xs.size == 0:
        raise ValueError("values must hold at least one number, got none")
    mean = math.fsum(xs) / xs.size
    if xs.size < 2:
        return {"n": 1, "mean": mean, "std": None, "half_width": None, "low": None, "high": None}
    std = float(np.std(xs, ddof=1))
    half = t_quantile(xs.size - 1, level) * std / math.sqrt(xs.size)
    return {"n": int(xs.size), "mean": mean, "std": std, "half_width": half, "low": mean - half, "high": mean + half}


def _sorted_keys(keys: Iterable) -> list:
    """Keys sorted naturally, or by their text when they do not compare (mixed types)."""
    keys = list(keys)
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=str)


def _diffs(a: Mapping, b: Mapping) -> tuple[list, np.ndarray]:
    seeds = _sorted_keys(set(a) & set(b))
    return seeds, np.asarray(_finite_floats((a[s] - b[s] for s in seeds), "accuracies"), dtype=float)


def paired_difference(a: Mapping, b: Mapping, level: float = 0.95, n_val: int | None = None,
                      pooled: tuple[float, int] | None = None) -> dict:
    """Paired difference a − b over the seeds both have (``a``, ``b``: seed → accuracy).

    Two-sided paired Student-t interval at ``level`` (the interval of ``scipy.stats.ttest_rel``), its sd
    floored at 1/``n_val`` when given (``sd_used``; ``std`` stays the measured one). Returns {"n", "seeds",
    "mean", "std", "sd_used", "low", "high", "distinguishable", "level", "method"}: distinguishable is True
    when the interval excludes 0, False when it contains it, None without an interval (< 2 common seeds).
    ``pooled`` = (residual sd, df) of :func:`pooled_residual_sd`: the difference's sd is √2 × it, with its df.
    """
    level = check_level(level)
    seeds, d = _diffs(a, b)
    out = {"n": len(seeds), "seeds": seeds, "mean": None, "std": None, "sd_used": None, "low": None, "high": None,
           "distinguishable": None, "level": level, "method": f"paired Student-t interval, {100 * level:g} % two-sided"}
    if not seeds:
        return out
    out["mean"] = float(d.mean())
    if d.size < 2:
        return out
    sd = float(np.std(d, ddof=1))
    use, df = (math.sqrt(2.0) * pooled[0], int(pooled[1])) if pooled and pooled[0] is not None else (sd, d.size - 1)
    out.update(std=sd, sd_used=max(use, _floor(n_val)))
    half = t_quantile(df, level) * out["sd_used"] / math.sqrt(d.size)
    out.update(low=out["mean"] - half, high=out["mean"] + half)
    out["distinguishable"] = bool(out["low"] > 0.0 or out["high"] < 0.0)
    return out


# ---------------------------------------------------------------- the confidence set of the best
def _matrix(seeds: Mapping[str, Mapping]) -> tuple[list, np.ndarray]:
    """(candidates, k × S accuracies over the union of seeds, nan where a candidate lacks a seed)."""
    names = list(seeds)
    labels = _sorted_keys({s for v in seeds.values() for s in v})
    m = np.full((len(names), len(labels)), np.nan)
    for i, c in enumerate(names):
        for j, s in enumerate(labels):
            if s in seeds[c]:
                m[i, j] = float(seeds[c][s])
    return names, m


def pooled_residual_sd(m: np.ndarray) -> tuple[float | None, int]:
    """(residual sd, its degrees of freedom) of the two-way additive model accuracy = candidate + seed + noise,
    fitted on the candidates that have every seed of ``m`` (k × S): the seed noise pooled over all candidates,
    df = (k − 1)(S − 1). (None, 0) below 2 such candidates or 2 seeds."""
    full = m[np.all(np.isfinite(m), axis=1)]
    k, n = full.shape
    if k < 2 or n < 2:
        return None, 0
    resid = full - full.mean(axis=1, keepdims=True) - full.mean(axis=0, keepdims=True) + full.mean()
    df = (k - 1) * (n - 1)
    return float(math.sqrt(np.sum(resid**2) / df)), df


def _pairwise(m: np.ndarray, floor: float, pooled: bool = False) -> tuple[np.ndarray, ...]:
    """(mean[i, j], se[i, j], df[i, j], n[i, j]) of the paired difference x_j − x_i over the shared seeds of ``m``
    (k × S); sd floored at ``floor``. ``pooled``: every pair's sd is √2 × the two-way residual sd
    (:func:`pooled_residual_sd`), with its df."""
    d = m[None, :, :] - m[:, None, :]  # d[i, j, s] = x_j − x_i
    n = np.sum(np.isfinite(d), axis=2)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = np.nanmean(d, axis=2), np.nanstd(d, axis=2, ddof=1)
        df = np.maximum(n - 1, 1)
        if pooled:
            s, dfp = pooled_residual_sd(m)
            if s is not None:
                sd, df = np.full_like(sd, math.sqrt(2.0) * s), np.full_like(df, dfp)
        se = np.maximum(np.nan_to_num(sd), floor) / np.sqrt(n)
    return mean, se, df, n


def _pairwise_p(m: np.ndarray, floor: float, pooled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(p[i, j]: the two-sided paired t p-value of j − i when j is the better one (1 otherwise) over their shared
    seeds, n[i, j] shared seeds) from :func:`_pairwise`; p = 1 where fewer than MIN_SEEDS seeds are shared."""
    mean, se, df, n = _pairwise(m, floor, pooled)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        t = np.where(se > 0, mean / se, np.where(mean > 0, np.inf, 0.0))
        p = np.where(mean > 0, 2.0 * st.t.sf(t, df), 1.0)
    p = np.where(n >= MIN_SEEDS, p, 1.0)
    np.fill_diagonal(p, 1.0)
    return p, n


def regret_bound(seeds: Mapping[str, Mapping], pick: str, n_val: int | None = None, level: float = 0.95,
                 looks: int = 1, pooled: bool = False) -> dict:
    """How much better than ``pick`` the best of ``seeds`` (candidate → {seed: accuracy}) can be, at ``level``.

    Method: for every other candidate j, the one-sided upper confidence bound of j − pick (paired Student-t, the
    confidence set's sd and df: :func:`confidence_set`) at 1 − α/(looks·(k − 1)); the bound is the largest of
    these and 0. It is wrong only when the bound of the true best minus the pick misses — one of the true best's
    k − 1 comparisons, so with probability ≤ α/looks per look whichever candidate was picked from the data. The
    confidence set wrongly drops the true best only on such a miss too (its two-sided test at the same α_each is
    stricter), so the bound, the set and a race's drops and "decided" hold together at ``level`` over all looks.
    A candidate sharing fewer than MIN_SEEDS seeds with the pick leaves no bound (None). Returns {"bound", "vs"
    (the candidate that sets it), "alpha_each", "method"}."""
    level = check_level(level)
    names, m = _matrix(seeds)
    k = len(names)
    alpha_each = (1.0 - level) / max(k - 1, 1) / int(looks)
    out = {"bound": 0.0 if k == 1 else None, "vs": None, "alpha_each": alpha_each,
           "method": f"{100 * level:g} % family-wise upper bound on the best's lead over the pick: one-sided paired t "
                     f"bounds with the confidence set's sd, Bonferroni α/({int(looks)}·(k−1))"}
    if k < 2:
        return out
    i = names.index(pick)
    mean, se, df, n = _pairwise(m, _floor(n_val), pooled)
    others = [j for j in range(k) if j != i]
    if any(n[i, j] < MIN_SEEDS for j in others):
        return out
    upper = {names[j]: float(mean[i, j] + st.t.ppf(1.0 - alpha_each, df[i, j]) * se[i, j]) for j in others}
    vs = max(upper, key=upper.get)
    return {**out, "bound": max(0.0, upper[vs]), "vs": vs}


def confidence_set(seeds: Mapping[str, Mapping], n_val: int | None = None, level: float = 0.95,
                   looks: int = 1, pooled: bool = False) -> dict:
    """The candidates the data cannot tell from the best at ``level`` family-wise (``seeds``: candidate →
    {seed: accuracy}).

    Method: candidate i is excluded when some other j is better by a two-sided paired Student-t test over
    their shared seeds at α/(k − 1) (α = 1 − level; Bonferroni over the k − 1 comparisons that involve i,
    which equals Holm's first step), i.e. when j − i's Bonferroni interval at 1 − α/(k − 1) lies above 0.
    The true best is wrongly excluded only by one of its own k − 1 tests, so the set covers it with probability
    ≥ 1 − α/2 ≥ 1 − α; two-sided, so that two equal candidates are told apart (either way) with probability
    ≤ α/(k − 1) — "decided" among equal candidates stays ≤ α even for k = 2. The sd of each paired difference
    is floored at 1/n_val. Pairs sharing fewer than MIN_SEEDS (3) seeds exclude nothing. "Decided" only when
    one member is left. ``looks`` > 1 (a race: the same candidates tested again as seeds and rungs are added):
    Bonferroni over the looks too, α/(looks·(k − 1)) per test, so that the race's drops and its final set hold at
    ``level`` together, however the looks depend on each other. ``pooled`` (the race): each pair's sd is the seed
    noise pooled over all candidates (the two-way residual sd, df (k − 1)(S − 1)) instead of the pair's own (df
    S − 1): far more power with few seeds, assuming the candidates' seed noise is alike (checked by simulation with
    unequal noise).

    What it claims, and what it does not: the set holds the true best with probability ≥ ``level``. An exclusion is
    one test at α/(k − 1): "outside the set", not "worse at the family-wise level" — with k equal candidates some
    candidate is excluded in up to ~1/3 of runs at k = 20 (each exclusion is wrong, but the set still holds a best).

    Returns {"members" (best mean first), "excluded" {i: {"by", "p"}}, "decided", "k", "alpha_each",
    "max_shared", "level", "method", "note"}.
    """
    level = check_level(level)
    names, m = _matrix(seeds)
    k = len(names)
    if isinstance(looks, bool) or not isinstance(looks, numbers.Integral) or looks < 1:
        raise ValueError(f"looks must be an integer >= 1, got {looks!r}")
    alpha_each = (1.0 - level) / max(k - 1, 1) / int(looks)
    p, n = _pairwise_p(m, _floor(n_val), pooled) if k else (np.ones((0, 0)), np.zeros((0, 0), int))
    excluded = {}
    for i, c in enumerate(names):
        j = int(np.argmin(p[i])) if k > 1 else i
        if k > 1 and p[i, j] < alpha_each:
            excluded[c] = {"by": names[j], "p": float(p[i, j])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = dict(zip(names, np.nanmean(m, axis=1) if k else []))
    members = sorted((c for c in names if c not in excluded), key=lambda c: -means[c])
    pooled_sd = pooled_residual_sd(m) if pooled and k else (None, 0)
    max_shared = int(n[~np.eye(k, dtype=bool)].max()) if k > 1 else 0
    note = "" if k < 2 or max_shared >= MIN_SEEDS else \
        f"decisions need ≥ {MIN_SEEDS} shared seeds (at most {max_shared} here): every candidate stays in the set"
    return {"members": members, "excluded": excluded, "decided": len(members) == 1 and k > 1, "k": k,
            "alpha_each": alpha_each, "max_shared": max_shared, "level": level, "looks": int(looks),
            "pooled": bool(pooled), "pooled_sd": pooled_sd if pooled_sd[0] is not None else None,
            "method": set_method(level, looks, pooled), "note": note}


def set_method(level: float = 0.95, looks: int = 1, pooled: bool = False) -> str:
    """The confidence set's method in words (for the verdict text and best.json)."""
    over = "α/(k−1) per candidate (Holm's first step)" if looks == 1 else \
        f"α/({looks}·(k−1)) per candidate: also over the race's {looks} looks"
    sd = "the seed noise pooled over the candidates (two-way residual sd)" if pooled else "each pair's own sd"
    return (f"{100 * level:g} % family-wise confidence set of the best: two-sided paired t-tests over shared seeds "
            f"with {sd}, Bonferroni {over}, sd floored at 1/n_val, ≥ {MIN_SEEDS} seeds")


# ---------------------------------------------------------------- equivalence and noise bounds
def tost(a: Mapping, b: Mapping, margin: float = 0.01, level: float = 0.95, n_val: int | None = None) -> dict:
    """Equivalence of a and b within ± ``margin``: two one-sided paired Student-t tests (TOST), each at
    α = 1 − ``level``, sd floored at 1/n_val. Returns {"n", "mean", "sd_used", "p_value" (the larger of the
    two), "equivalent" (None with fewer than MIN_SEEDS shared seeds), "margin", "level", "method"}."""
    level = check_level(level)
    seeds, d = _diffs(a, b)
    out = {"n": len(seeds), "mean": float(d.mean()) if d.size else None, "sd_used": None, "p_value": None,
           "equivalent": None, "margin": margin, "level": level,
           "method": f"TOST: two one-sided paired t-tests at ±{margin:g}, {100 * level:g} %"}
    if d.size < MIN_SEEDS:
        return out
    sd = max(float(np.std(d, ddof=1)), _floor(n_val))
    se = sd / math.sqrt(d.size)
    p = max(st.t.sf((d.mean() + margin) / se, d.size - 1), st.t.sf((margin - d.mean()) / se, d.size - 1))
    return {**out, "sd_used": sd, "p_value": float(p), "equivalent": bool(p < 1.0 - level)}


NOISE_TAILS_DF = 3  # the noise bound holds for Student-t noise with this many df (and lighter tails: normal)


@lru_cache(maxsize=256)
def sd_ratio_quantile(k: int, n: int, q: float, reps: int = 4000) -> float:
    """The ``q`` quantile of (two-way residual sd / σ) over k × n tables of Student-t(NOISE_TAILS_DF) noise with sd
    σ (deterministic simulation, seeded by the shape)."""
    rng = np.random.default_rng([k, n, NOISE_TAILS_DF])
    e = rng.standard_t(NOISE_TAILS_DF, (reps, k, n)) / math.sqrt(NOISE_TAILS_DF / (NOISE_TAILS_DF - 2))
    r = e - e.mean(axis=2, keepdims=True) - e.mean(axis=1, keepdims=True) + e.mean(axis=(1, 2), keepdims=True)
    return float(np.quantile(np.sqrt(np.sum(r**2, axis=(1, 2)) / ((k - 1) * (n - 1))), q))


def noise_sd_bound(seeds: Mapping[str, Mapping], level: float = NOISE_BOUND_LEVEL) -> dict:
    """An upper confidence bound of the per-seed noise sd that holds for heavy-tailed noise (``seeds``: candidate →
    {seed: accuracy}).

    The noise is the residual of the two-way additive model accuracy = candidate + seed + noise over the candidates
    that have every seed (:func:`pooled_residual_sd`: a seed effect shared by all candidates — its data order —
    cancels, as it does in the paired tests). The bound is s / q, q the 1 − ``level`` quantile of s/σ for noise
    drawn from a Student t with NOISE_TAILS_DF (3) df over a table of the same shape (simulated once per shape):
    it is below σ with probability 1 − ``level`` for such noise, and less often for lighter tails (normal noise).
    Why not the χ² bound: it assumes normal noise, and under t(3) noise the sample sd is usually well below σ —
    the 80 % χ² bound was below the true sd in 30–56 % of simulated runs (Bonett's kurtosis-adjusted bound in up
    to 60 %: the sample kurtosis of a few heavy-tailed seeds is small too). Returns {"sd", "bound", "df", "level",
    "method"}; sd/bound None below 2 such candidates or 2 seeds."""
    level = check_level(level)
    names, m = _matrix(seeds)
    full = m[np.all(np.isfinite(m), axis=1)] if m.size else m
    sd, df = pooled_residual_sd(m) if m.size else (None, 0)
    out = {"sd": sd, "bound": None, "df": df, "level": level,
           "method": f"{100 * level:g} % upper bound of the two-way residual sd for noise with tails up to a Student "
                     f"t with {NOISE_TAILS_DF} df (simulated quantile)"}
    if sd is None:
        return out
    return {**out, "bound": sd / sd_ratio_quantile(*full.shape, round(1.0 - level, 6))}


# ---------------------------------------------------------------- power
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(48)  # ∫ φ(u) f(u) du = Σ w f(x) / Σ w
_GH_W = _GH_W / _GH_W.sum()


def power_to_decide(n: int, k: int, margin: float, sd_diff: float, alpha_each: float) -> float:
    """P(the best is told from each of its k − 1 rivals by its two-sided paired test at ``alpha_each``) with n
    seeds, when every rival is ``margin`` behind and the per-seed differences have sd ``sd_diff``.

    The k − 1 differences share the best's noise, so they are equicorrelated (ρ = ½): with Z_j = √ρ·U + √(1 − ρ)·V_j,
    P = ∫ φ(u) Φ((√n·margin/sd_diff + √ρ·u − c)/√(1 − ρ))^(k−1) du (Gauss–Hermite), c the Student-t critical value
    with n − 1 df. This is the runner-up *as selected*: the best must beat the largest of k − 1 noisy rivals."""
    if n < 2:
        return 0.0
    c = float(st.t.ppf(1.0 - alpha_each / 2.0, n - 1))
    mu = math.sqrt(n) * margin / sd_diff
    z = (mu + math.sqrt(0.5) * _GH_X - c) / math.sqrt(0.5)
    return float(np.sum(_GH_W * st.norm.cdf(z) ** max(k - 1, 1)))


def seeds_to_decide(k: int, margin: float, sd_diff: float | None, alpha_each: float,
                    power: float = ADVICE_POWER) -> int | None:
    """Seeds per candidate at which the confidence set holds only the best with probability ``power``, in the least
    favourable case for a lead of ``margin``: every one of the k − 1 rivals ``margin`` behind
    (:func:`power_to_decide`, which plans for the selected runner-up, not one pre-chosen pair). The smallest such
    n ≥ MIN_SEEDS (bisection); None when it cannot be computed (k < 2, margin ≤ 0, sd unknown or infinite)."""
    if k < 2 or sd_diff is None or not math.isfinite(sd_diff) or not margin > 0:
        return None
    if sd_diff <= 0:
        return MIN_SEEDS
    ok = lambda n: power_to_decide(n, k, margin, sd_diff, alpha_each) >= power  # noqa: E731
    lo, hi = MIN_SEEDS - 1, MIN_SEEDS
    while not ok(hi):  # invariant after the loop: lo fails (or is below MIN_SEEDS), hi satisfies
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return int(hi)
