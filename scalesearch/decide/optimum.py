"""Where a doubling of compute should go: the optimum of the model over shares, a 95 % region around it, the
coefficients that build it, and what it gains (issue 36).

The linear model (:mod:`scalesearch.decide.shares`) says which dimension pays; it has no optimum inside the
triangle. When the data show curvature — the Scheffé quadratic blending terms reject at 5 % in the shares model's
partial F test — the seed-adjusted candidate means are refitted with them
(``f = b0 + b_w·w + b_r·r + b_dw·d·w + b_dr·d·r + b_wr·w·r``, ordinary least squares, the means' scatter as the noise)
and:

* **the optimum** is the fitted surface's stationary point when it is a maximum (negative-definite Hessian on the
  triangle) and lies inside the searched shares (the convex hull of the candidates' proportions: the surface is not
  extrapolated). A saddle, a minimum or a peak outside the hull is said so, and nothing is located.
* **its 95 % region** (Box & Hunter 1954): the shares x where the fitted gradient g(x) is not distinguishable from 0,
  ``g(x)'[G(x) V G(x)']⁻¹ g(x) / 2 <= F(0.95; 2, df)``, V the coefficients' covariance. The true stationary point is
  in it with probability 95 % under normal errors whatever the data say (an exact test inverted, not a bootstrap).
* **the coefficients**: among the buildable options inside the hull (the space's lattice as the product builds it,
  their realized shares), the one with the highest fitted accuracy, and a 95 % confidence set of the *best*
  option (:func:`best_options`, Hsu's multiple comparisons with the best): the truly best buildable option is in
  it in at least 95 % of runs — exactly 95 % when the options tie, more when the best stands apart, as for every
  confidence set of a maximum; α, β and γ range over it. On the same event, the options whose shortfall to the
  best is bounded by δ (search.delta, 0.01 when unset) are "within δ of the best", and the cheapest of them by
  the run's cost is named. (The region's projection is not used: the best *buildable* option can lie outside the
  region of the continuous optimum when the lattice is coarse — on a lattice of 8-pixel resolutions it covered the
  best option in 82 % of 100 simulated runs.)
* **gains** of the optimum over the paper's candidate and over the best trained candidate, 95 % intervals
  ``estimate ± c·se`` whose critical value c (:func:`gain_bound`) is the 95 % quantile of the largest |t| of that
  contrast over the region's points and the optimum (Monte Carlo over the coefficients' multivariate t, 4,000
  draws, fixed seed). The optimum is chosen from the same data, so a pointwise t interval is too short (the fitted
  peak reads high: it covered 90–95 % in simulation) and a Scheffé-simultaneous one over every contrast too long
  (99.2–100 %); the optimum is always in its region, and the region is where it can move.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as st
from scipy.spatial import Delaunay

__all__ = ["OPTIMUM_METHOD", "Interval", "Option", "Optimum", "BestSet", "best_options", "gain_bound", "locate_optimum",
           "quadratic_design"]

OPTIMUM_METHOD = (
    "where the shares model's curvature test rejects at 5 %, the candidates' means are refitted with the Scheffé "
    "quadratic terms (d·w, d·r, w·r); the optimum is the fitted maximum inside the searched shares (the candidates' "
    "convex hull); its 95 % region is the Box–Hunter set of shares whose fitted gradient is not distinguishable from "
    "0 (F test, 2 df); α, β, γ range over the 95 % confidence set of the best buildable option (Hsu's multiple "
    "comparisons with the best, Monte Carlo) and, on the same 95 % event, the options 'within δ of the best' are "
    "those whose shortfall bound is at most δ; gains' 95 % intervals are simultaneous over the region's "
    "points (max-|t|, Monte Carlo), so they hold for an optimum chosen from the same data")
_DRAWS = 4000  # Monte Carlo draws of the critical values (fixed seed 0)
WITHIN = 0.01  # δ when search.delta is unset: options within one accuracy point of the best
_LATTICE = 40  # the region is drawn and reported on the triangle's lattice of step 1/40


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Option:
    """A buildable candidate of the run's space: its name, coefficients and realized proportions (d, w, r)."""

    candidate: str
    alpha: float
    beta: float
    gamma: float
    proportions: tuple[float, float, float]
    cost: float | None = None  # the run's cost measure (search.cost) of the built network over B0's


@dataclass(frozen=True)
class Optimum:
    """``status``: "located" (a maximum inside the searched shares), "outside" (the fitted maximum lies beyond
    them), "no_maximum" (a saddle or a minimum), "flat" (no curvature at 95 %), "not_identified" (the design cannot
    fit the quadratic terms); ``sentence`` says it."""

    status: str
    sentence: str
    shares: tuple[float, ...] = ()  # the fitted optimum (d, w, r)
    region: tuple[tuple[float, ...], ...] = ()  # the lattice's shares inside the 95 % region and the hull
    candidate: str | None = None  # the best buildable option by the fitted surface
    trained: bool = False  # whether that option is one of the run's candidates
    alpha: Interval | None = None
    beta: Interval | None = None
    gamma: Interval | None = None
    gain_over_paper: Interval | None = None
    gain_over_best: Interval | None = None
    best: str | None = None  # the best trained candidate by its seed-adjusted mean
    held: int = 0  # how many buildable options the 95 % set of the best keeps
    delta: float | None = None  # δ of ``within``
    within: tuple[str, ...] = ()  # the options within δ of the best at 95 % (MCB), best first
    cheapest: tuple = ()  # among them, the cheapest by the run's cost: (candidate, α, β, γ, cost)
    coefficients: tuple[float, ...] = ()  # b0, b_w, b_r, b_dw, b_dr, b_wr
    unscaled_cov: tuple[tuple[float, ...], ...] = ()
    residual_sd: float | None = None
    df: int = 0
    method: str = OPTIMUM_METHOD

    @property
    def brief(self) -> str:
        """A located optimum in one short sentence (summary.md's top): where, what builds it, its gain over the best
        trained candidate; ``sentence`` adds the region, the set of the best option and what lies within δ."""
        where = ", ".join(f"{n} {v:.2f}" for n, v in zip(("depth", "width", "resolution"), self.shares))
        built = "" if self.alpha is None else (f"; built as α={self.alpha.estimate:g}, β={self.beta.estimate:g}, "
                                               f"γ={self.gamma.estimate:g}" + ("" if self.trained else
                                                                              " (not trained yet)"))
        g = self.gain_over_best
        return (f"shares {where}{built}; gain over the best trained candidate {g.estimate:+.3f} [{g.low:+.3f}, "
                f"{g.high:+.3f}] (95 %, simultaneous).")

    @classmethod
    def from_dict(cls, d: dict) -> "Optimum":
        d = dict(d)
        for k in ("alpha", "beta", "gamma", "gain_over_paper", "gain_over_best"):
            d[k] = Interval(**d[k]) if d.get(k) else None
        for k in ("region", "unscaled_cov"):
            d[k] = tuple(tuple(r) for r in d.get(k, ()))
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def predict(self, proportions) -> float:
        return float(quadratic_design([proportions])[0] @ np.array(self.coefficients))

    def in_region(self, proportions, level: float = 0.95) -> bool:
        """Whether the fitted gradient at ``proportions`` is not distinguishable from 0 (the region's test)."""
        return bool(_gradient_stat(np.array(self.coefficients), self.residual_sd**2 * np.array(self.unscaled_cov),
                                   proportions)[0] <= float(st.f.ppf(level, 2, self.df)))


def quadratic_design(props) -> np.ndarray:
    """Rows (1, w, r, d·w, d·r, w·r) of the Scheffé quadratic mixture model (depth the reference)."""
    return np.array([(1.0, w, r, d * w, d * r, w * r) for d, w, r in props])


def _gradient_rows(w, r) -> np.ndarray:
    """G(x) for each x (arrays of w, r; d = 1 − w − r): the surface's gradient along (w, r) is G(x) @ coefficients."""
    w, r = np.broadcast_arrays(np.asarray(w, float), np.asarray(r, float))
    zero, one = np.zeros_like(w), np.ones_like(w)
    return np.stack([np.stack([zero, one, zero, 1 - 2 * w - r, -r, r], -1),
                     np.stack([zero, zero, one, -w, 1 - w - 2 * r, w], -1)], -2)


def _gradient_stat(coef: np.ndarray, V: np.ndarray, x) -> np.ndarray:
    """g(x)'[G V G']⁻¹ g(x) / 2 for each row x (d, w, r): F(2, df) where x is the true stationary point."""
    x = np.atleast_2d(np.asarray(x, float))
    G = _gradient_rows(x[:, 1], x[:, 2])
    g = G @ coef
    return np.einsum("ni,ni->n", g, np.linalg.solve(G @ V @ np.swapaxes(G, 1, 2), g[..., None])[..., 0]) / 2


def _lattice() -> list[tuple[float, float, float]]:
    n = _LATTICE
    return [((n - i - j) / n, i / n, j / n) for i in range(n + 1) for j in range(n + 1 - i)]


def _r(x: float) -> float:
    return round(float(x), 6)


def locate_optimum(points: list[tuple], curvature_p: float | None, options: Callable[[], list[Option]],
                   paper: str | None, level: float = 0.95, depends: bool = True, delta: float = WITHIN) -> Optimum:
    """The optimum of the quadratic over ``points`` ((candidate, d, w, r, seed-adjusted mean) per candidate), when
    the shares model's gate passed (``depends``: the accuracy depends on the shares at all) and ``curvature_p`` (its
    test of the quadratic terms) rejects at 1 − ``level``; ``options()``: the buildable candidates, asked for only
    when an optimum is located; ``delta``: the shortfall the options "within δ of the best" may have."""
    if curvature_p is None:
        return Optimum("not_identified", "Where the compute peaks is not estimated: the design does not identify "
                       "curvature (it needs 10 candidates spread over the triangle).")
    if not depends:
        return Optimum("flat", "No optimum: the accuracy does not depend on the shares at 95 % (the model's gate).")
    if curvature_p >= 1 - level:
        return Optimum("flat", f"No optimum inside the searched shares: the surface is not curved at 95 % "
                       f"(curvature p = {curvature_p:.2g}).")
    props = [tuple(p[1:4]) for p in points]
    X, y = quadratic_design(props), np.array([p[4] for p in points])
    xtx_inv = np.linalg.pinv(X.T @ X)
    coef = xtx_inv @ X.T @ y
    df = len(y) - int(np.linalg.matrix_rank(X))
    s2 = float((y - X @ coef) @ (y - X @ coef) / df)
    V = s2 * xtx_inv
    c3, c4, c5 = coef[3:]
    H = np.array([[-2 * c3, -c3 - c4 + c5], [-c3 - c4 + c5, -2 * c4]])
    fit = dict(coefficients=tuple(_r(c) for c in coef), unscaled_cov=tuple(tuple(float(v) for v in row)
               for row in xtx_inv), residual_sd=math.sqrt(s2), df=int(df))
    if not np.all(np.linalg.eigvalsh(H) < 0):
        return Optimum("no_maximum", "The surface is curved but has no maximum (the fit is a saddle or a minimum): "
                       "the compute pays most at an edge of the searched shares.", **fit)
    w, r = np.linalg.solve(H, -np.array([coef[1] + c3, coef[2] + c4]))
    x_hat = (1 - w - r, w, r)
    hull = Delaunay(np.array([p[1:] for p in props]))
    inside = lambda x: bool(hull.find_simplex(np.array([x[1:]]))[0] >= 0)  # noqa: E731
    grid = np.array(_lattice())
    grid = grid[hull.find_simplex(grid[:, 1:]) >= 0]
    kept = _gradient_stat(coef, V, grid) <= float(st.f.ppf(level, 2, df)) if len(grid) else np.zeros(0, bool)
    region = tuple(tuple(_r(v) for v in x) for x in grid[kept])
    if not inside(x_hat):
        where = ", ".join(f"{n} {v:.2f}" for n, v in zip(("depth", "width", "resolution"), x_hat))
        return Optimum("outside", f"The fitted surface peaks outside the searched shares (at {where}): widen the "
                       "space toward it before trusting a split.", tuple(_r(v) for v in x_hat), region, **fit)
    return _located(x_hat, region, coef, xtx_inv, df, points, options, paper, inside, fit, level, delta)


@dataclass(frozen=True)
class BestSet:
    """Hsu's multiple comparisons with the best over the buildable options: ``held``, the 95 % confidence set of
    the best (best first); ``within``, the options whose simultaneous lower bound on their shortfall to the best
    is within ``delta`` (best first)."""

    held: tuple[Option, ...]
    within: tuple[Option, ...]


def best_options(options: list[Option], coef: np.ndarray, xtx_inv: np.ndarray, s: float, df: int,
                 delta: float = WITHIN, level: float = 0.95, draws: int = _DRAWS, seed: int = 0) -> BestSet:
    """Hsu's multiple comparisons with the best (MCB) of ``options`` under the fitted quadratic (coefficients
    ``coef``, unscaled covariance ``xtx_inv``, residual sd ``s`` on ``df``). Option i is held unless some option j
    beats it by more than ``d_i·se(j − i)``, d_i the ``level`` quantile of max over j of the one-sided t of the
    contrasts j − i (Monte Carlo over the coefficients' multivariate t, fixed seed): the truly best option is held
    with probability ≥ ``level``, exactly when the options tie. On that same event every option's shortfall to the
    best is at least ``min(0, min over held j ≠ i of f_i − f_j − d_j·se(i − j))``; ``within`` holds the options where
    that bound is ≥ −``delta``. Scheffé's bound over the 5 slopes (≥ every d_i) screens first, so d_i is simulated
    only for options it keeps."""
    if not options:
        return BestSet((), ())
    Z = quadratic_design([o.proportions for o in options])
    f = Z @ coef
    D = Z[None, :, :] - Z[:, None, :]  # D[i, j] = z_j − z_i: option j against option i
    se = s * np.sqrt(np.maximum(np.einsum("ijk,ijk->ij", D @ xtx_inv, D), 0.0))
    scheffe = math.sqrt(5 * float(st.f.ppf(level, 5, df)))
    screened = np.flatnonzero(np.all(f[None, :] - f[:, None] <= scheffe * se + 1e-12, axis=1))
    E = _t_draws(xtx_inv, df, draws, seed)
    d = {}
    for i in screened:
        apart = se[i] > 1e-12  # options built identically to i are not contrasts
        d[i] = float(np.quantile(((D[i][apart] @ E) / (se[i][apart, None] / s)).max(axis=0), level)) \
            if apart.any() else 0.0
    held = [i for i in screened if np.all(f - f[i] <= d[i] * se[i] + 1e-12)]
    bound = [min([0.0] + [f[i] - f[j] - d[j] * se[j, i] for j in held if j != i]) for i in range(len(options))]
    order = lambda idx: tuple(options[i] for i in sorted(idx, key=lambda i: -f[i]))  # noqa: E731
    return BestSet(order(held), order([i for i in range(len(options)) if bound[i] >= -delta]))


def _t_draws(xtx_inv: np.ndarray, df: int, draws: int, seed: int) -> np.ndarray:
    """``draws`` columns of the coefficients' standardized multivariate t errors (covariance ``xtx_inv``, ``df``
    degrees of freedom): the Monte Carlo both critical values read."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(xtx_inv + 1e-12 * np.trace(xtx_inv) * np.eye(len(xtx_inv)))
    return chol @ rng.standard_normal((len(xtx_inv), draws)) / np.sqrt(rng.chisquare(df, draws) / df)


def gain_bound(xtx_inv: np.ndarray, df: int, shares: np.ndarray, ref, level: float = 0.95,
               draws: int = _DRAWS, seed: int = 0) -> float:
    """The critical value of the gains' intervals: the ``level`` quantile of max over ``shares`` (the 95 % region's
    points and the optimum) of |t| of the contrast against ``ref``, Monte Carlo over the fitted coefficients'
    multivariate t (``xtx_inv``, ``df``). The located optimum is always in the region, so its gain's interval
    ``estimate ± bound·se`` is not chosen after the data as a pointwise one would be."""
    D = quadratic_design(shares) - quadratic_design([ref])[0]
    se = np.sqrt(np.maximum(np.einsum("bi,ij,bj->b", D, xtx_inv, D), 1e-30))
    T = np.abs(D @ _t_draws(xtx_inv, df, draws, seed)) / se[:, None]
    return float(np.quantile(T.max(axis=0), level))


def _located(x_hat, region, coef, xtx_inv, df, points, options, paper, inside, fit, level, delta) -> Optimum:
    buildable = [o for o in options() if inside(o.proportions)]
    V = fit["residual_sd"] ** 2 * xtx_inv
    best_set = best_options(buildable, coef, xtx_inv, fit["residual_sd"], df, delta, level)
    held = list(best_set.held)
    top = held[0] if held else None
    span = {k: (Interval(_r(getattr(top, k)), _r(min(getattr(o, k) for o in held)),
                         _r(max(getattr(o, k) for o in held))) if top else None)
            for k in ("alpha", "beta", "gamma")}

    by = {p[0]: tuple(p[1:4]) for p in points}
    near = np.array(region + (tuple(x_hat),))

    def gain(ref) -> Interval:
        dz = quadratic_design([x_hat])[0] - quadratic_design([ref])[0]
        est, se = float(dz @ coef), math.sqrt(float(dz @ V @ dz))
        half = gain_bound(xtx_inv, df, near, ref, level) * se
        return Interval(_r(est), _r(est - half), _r(est + half))

    best = max(points, key=lambda p: p[4])[0]
    g_paper = gain(by[paper]) if paper in by else None
    g_best = gain(by[best])
    trained = top is not None and top.candidate in by
    where = ", ".join(f"{n} {v:.2f}" for n, v in zip(("depth", "width", "resolution"), x_hat))
    said = f"The compute peaks at shares {where} (95 % region: {len(region)} of the triangle's lattice points)"
    if top is not None:
        said += (f"; built as α={top.alpha:g}, β={top.beta:g}, γ={top.gamma:g} (95 % set of the best buildable "
                 f"option, {len(held)} of {len(buildable)}: α {span['alpha'].low:g}–{span['alpha'].high:g}, β "
                 f"{span['beta'].low:g}–{span['beta'].high:g}, γ {span['gamma'].low:g}–{span['gamma'].high:g})"
                 + ("" if trained else ", not trained yet: its accuracy is the model's"))
    said += (f"; gain over the best trained candidate {g_best.estimate:+.3f} [{g_best.low:+.3f}, {g_best.high:+.3f}]"
             + (f", over the paper's {g_paper.estimate:+.3f} [{g_paper.low:+.3f}, {g_paper.high:+.3f}]"
                if g_paper else "") + ".")
    priced = [o for o in best_set.within if o.cost is not None]
    c = min(priced, key=lambda o: o.cost) if priced else None
    cheap = (c.candidate, c.alpha, c.beta, c.gamma, _r(c.cost)) if c else ()
    if top is not None and not best_set.within:
        said += f" No buildable option is shown within {delta:g} of the best at 95 %."
    elif best_set.within:
        said += f" Within {delta:g} of the best at 95 %: {len(best_set.within)} of the options" + (
            f"; the cheapest by the run's cost is α={c.alpha:g}, β={c.beta:g}, γ={c.gamma:g} ({c.cost:.3g}× B0's"
            + (f", the top's {top.cost:.3g}×)." if top.cost is not None else ").") if c is not None else ".")
    return Optimum("located", said, tuple(_r(v) for v in x_hat), region, top.candidate if top else None, trained,
                   span["alpha"], span["beta"], span["gamma"], g_paper, g_best, best, len(held), delta,
                   tuple(o.candidate for o in best_set.within), cheap, **fit)
