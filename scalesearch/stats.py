"""The statistics a researcher needs to trust a ranking of proxy trainings.

* :func:`t_quantile` — the two-sided Student-t critical value, computed exactly (the t CDF through
  the regularised incomplete beta function, evaluated by its continued fraction, then inverted by
  bisection), so that intervals over 2, 3 or 5 seeds are right — not the normal 1.96.
* :func:`mean_ci` — mean of per-seed accuracies with its t interval (a single seed has no spread:
  its interval is None, never "± 0").
* :func:`paired_difference` — the difference of two configurations over the seeds both ran; paired,
  because a seed's data order and initialisation move both accuracies together.
* :func:`kendall_tau`, :func:`spearman_rho` — rank agreement (e.g. proxy ranking vs full-training
  ranking), with ties handled; :func:`bootstrap_ci` — a percentile bootstrap interval for either.
* :func:`seeds_to_separate` — how many seeds a paired comparison needs to tell two configurations apart.

numpy and the standard library only; every result is a plain float/int/None or a dict of them.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from statistics import NormalDist

import numpy as np

__all__ = ["t_quantile", "mean_ci", "paired_difference", "kendall_tau", "spearman_rho", "bootstrap_ci",
           "seeds_to_separate"]

_CF_EPS = 1e-15
_CF_MAXIT = 100_000
_TINY = 1e-300
_LARGE_DF = 1e7  # beyond this the t quantile equals z + (z³ + z)/(4 df) to ~1e-14


# ---------------------------------------------------------------- validation helpers
def _check_level(level: float, name: str = "level") -> float:
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


# ---------------------------------------------------------------- Student t
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _CF_MAXIT + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _CF_EPS:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0, T ~ Student t with ``df`` degrees of freedom."""
    return 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))


@functools.lru_cache(maxsize=4096)
def _t_ppf(p: float, df: float) -> float:
    """The one-sided Student-t quantile: t with P(T <= t) = p (0 < p < 1)."""
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -_t_ppf(1.0 - p, df)
    if df > _LARGE_DF:
        z = NormalDist().inv_cdf(p)
        return z + (z ** 3 + z) / (4.0 * df)
    q = 1.0 - p  # wanted upper tail
    lo, hi = 0.0, max(1.0, NormalDist().inv_cdf(p))
    while _t_upper_tail(hi, df) > q:
        lo, hi = hi, hi * 2.0
    for _ in range(200):  # bisection: the tail is strictly decreasing in t
        mid = 0.5 * (lo + hi)
        if _t_upper_tail(mid, df) > q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-14 * hi:
            break
    return 0.5 * (lo + hi)


def t_quantile(df: int, level: float = 0.95) -> float:
    """Two-sided Student-t critical value: t with P(|T| <= t) = ``level`` for ``df`` degrees of freedom.

    Examples: df=1 → 12.706, df=2 → 4.303, df=4 → 2.776, df=30 → 2.042, large df → 1.960 (level 0.95).
    Exact to ~1e-12 relative (t CDF from the regularised incomplete beta function, inverted by bisection).
    """
    if isinstance(df, bool) or not isinstance(df, numbers.Integral) or df < 1:
        raise ValueError(f"df must be an integer >= 1, got {df!r}")
    level = _check_level(level)
    return float(_t_ppf((1.0 + level) / 2.0, float(df)))


# ---------------------------------------------------------------- intervals
def mean_ci(values: Iterable[float], level: float = 0.95) -> dict:
    """Mean of ``values`` with its Student-t confidence interval.

    Returns {"n", "mean", "std" (sample, ddof=1), "half_width", "low", "high"}; with one value the
    spread is unknown, so std/half_width/low/high are None. No values → ValueError.
    """
    level = _check_level(level)
    xs = _finite_floats(values)
    n = len(xs)
    if n == 0:
        raise ValueError("values must hold at least one number, got none")
    mean = math.fsum(xs) / n
    if n < 2:
        return {"n": 1, "mean": mean, "std": None, "half_width": None, "low": None, "high": None}
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1, level) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "half_width": half, "low": mean - half, "high": mean + half}


def _sorted_keys(keys: Iterable) -> list:
    """Keys sorted naturally, or by their text when they do not compare (mixed types)."""
    keys = list(keys)
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=str)


def paired_difference(a: Mapping, b: Mapping, level: float = 0.95) -> dict:
    """Paired difference a − b over the seeds both have (``a``, ``b``: seed → accuracy).

    Returns {"n", "seeds", "mean", "std", "low", "high", "distinguishable"}: the t interval of the
    mean per-seed difference; distinguishable is True when the interval excludes 0, False when it
    contains 0, None when there is no interval (fewer than 2 common seeds). No common seed → n 0 and
    None everywhere else.
    """
    level = _check_level(level)
    seeds = _sorted_keys(set(a) & set(b))
    diffs = _finite_floats((a[s] - b[s] for s in seeds), "accuracies")
    if not seeds:
        return {"n": 0, "seeds": [], "mean": None, "std": None, "low": None, "high": None,
                "distinguishable": None}
    ci = mean_ci(diffs, level)
    distinguishable = None if ci["low"] is None else bool(ci["low"] > 0.0 or ci["high"] < 0.0)
    return {"n": ci["n"], "seeds": seeds, "mean": ci["mean"], "std": ci["std"], "low": ci["low"],
            "high": ci["high"], "distinguishable": distinguishable}


# ---------------------------------------------------------------- rank correlations
def _pair_arrays(x, y) -> tuple[np.ndarray, np.ndarray]:
    """x and y as float arrays of one length, else a one-line ValueError."""
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    return xa, ya


def kendall_tau(x, y) -> float:
    """Kendall's tau-b of paired sequences (ties handled: tau-b's denominator drops tied pairs).

    tau_b = (concordant − discordant) / sqrt((n0 − ties_x) · (n0 − ties_y)), n0 = n(n−1)/2.
    nan when undefined: fewer than 2 points, a constant input, or a nan in the input.
    """
    xa, ya = _pair_arrays(x, y)
    n = xa.size
    if n < 2 or not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        return float("nan")
    iu = np.triu_indices(n, k=1)
    sx = np.sign(xa[:, None] - xa[None, :])[iu]
    sy = np.sign(ya[:, None] - ya[None, :])[iu]
    untied_x, untied_y = np.count_nonzero(sx), np.count_nonzero(sy)
    if untied_x == 0 or untied_y == 0:
        return float("nan")
    return float(np.sum(sx * sy) / math.sqrt(float(untied_x) * float(untied_y)))


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the average of their ranks."""
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    ranks = np.empty(a.size, dtype=float)
    start = 0
    for end in range(1, a.size + 1):
        if end == a.size or sorted_a[end] != sorted_a[start]:
            ranks[order[start:end]] = 0.5 * (start + end - 1) + 1.0
            start = end
    return ranks


def spearman_rho(x, y) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks (ties get their average rank).

    nan when undefined: fewer than 2 points, a constant input, or a nan in the input.
    """
    xa, ya = _pair_arrays(x, y)
    if xa.size < 2 or not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        return float("nan")
    rx, ry = _average_ranks(xa), _average_ranks(ya)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    sxx, syy = float(np.dot(dx, dx)), float(np.dot(dy, dy))
    if sxx == 0.0 or syy == 0.0:
        return float("nan")
    return float(np.dot(dx, dy) / math.sqrt(sxx * syy))


def bootstrap_ci(stat: Callable, x, y, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of ``stat(x, y)``, resampling (x_i, y_i) pairs with replacement.

    Deterministic: a numpy Generator seeded by ``seed``. Replicates where the statistic is nan (e.g. a
    resample with a constant input) are dropped; when fewer than half of the replicates (or fewer
    than 2) remain, or there are fewer than 2 pairs, the interval is (None, None) — conditioning on
    the rare non-degenerate resamples would give a misleading interval.
    """
    level = _check_level(level)
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    xa, ya = _pair_arrays(x, y)
    n = xa.size
    if n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_boot), n))
    reps = np.array([float(stat(xa[i], ya[i])) for i in idx], dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size < max(2, math.ceil(0.5 * n_boot)):
        return None, None
    low, high = np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


# ---------------------------------------------------------------- power
def seeds_to_separate(diff_mean: float, diff_std: float | None, level: float = 0.95,
                      power: float = 0.8) -> int | None:
    """How many seeds a paired comparison needs to separate two configurations.

    Given the true mean of the per-seed differences ``diff_mean`` (d) and their standard deviation
    ``diff_std`` (s), a two-sided paired t test at confidence ``level`` (α = 1 − level) detects the
    difference with probability ``power`` once

        n ≥ ((t_{1−α/2, n−1} + t_{power, n−1}) · s / |d|)²

    (t_{q, ν}: the q-quantile of Student t with ν degrees of freedom). Starting from the normal
    approximation n₀ = ceil(((z_{1−α/2} + z_{power}) · s / |d|)²) and iterating
    n ← ceil(((t_{1−α/2, n−1} + t_{power, n−1}) · s / |d|)²) until it is stable gives the smallest n
    that satisfies the inequality; it is at least 2 (one seed has no spread to test with).
    Example: d = s = 0.02 at 95 % and power 0.8 → the normal approximation says 7.85, the t
    correction gives 10 seeds.

    None when it cannot be computed: d = 0 (no difference to detect) or s unknown (None/nan).
    s = 0 with d ≠ 0 → 2.
    """
    level = _check_level(level)
    if isinstance(power, bool) or not isinstance(power, numbers.Real) or not 0.5 <= float(power) < 1.0:
        raise ValueError(f"power must be a number in [0.5, 1), got {power!r}")
    if diff_std is None or diff_mean is None:
        return None
    d, s = float(diff_mean), float(diff_std)
    if math.isnan(d) or math.isnan(s) or d == 0.0 or math.isinf(s):
        return None
    if s < 0.0:
        raise ValueError(f"diff_std must be >= 0, got {diff_std!r}")
    if s == 0.0 or math.isinf(d):
        return 2
    ratio = s / abs(d)
    p_test, p_power = (1.0 + level) / 2.0, float(power)

    def needed(n: int) -> float:
        """((t_{1−α/2, n−1} + t_{power, n−1}) · s/|d|)²: the seeds a test with n seeds calls for."""
        return ((_t_ppf(p_test, float(n - 1)) + _t_ppf(p_power, float(n - 1))) * ratio) ** 2

    z = NormalDist().inv_cdf
    n0 = max(2, math.ceil(((z(p_test) + z(p_power)) * ratio) ** 2))
    # needed(n) falls as n grows (t quantiles shrink with df), so "n >= needed(n)" holds from the
    # smallest solution on: that solution is the stable point of the iteration. n0 <= it (t >= z), and
    # hi = ceil(needed(n0)) satisfies it (needed(hi) <= needed(n0) <= hi): bisect between them.
    if n0 >= needed(n0):
        return int(n0)
    lo, hi = n0, max(n0 + 1, math.ceil(needed(n0)))
    while hi - lo > 1:  # invariant: lo fails, hi satisfies
        mid = (lo + hi) // 2
        if mid >= needed(mid):
            hi = mid
        else:
            lo = mid
    return int(hi)
