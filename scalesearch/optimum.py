"""Where a doubling of compute should go: the optimum of the model over shares, a 95 % region around it, the
coefficients that build it, and what it gains (issue 36).

The linear model (:mod:`scalesearch.shares`) says which dimension pays; it has no optimum inside the triangle. When
the data show curvature — the Scheffé quadratic blending terms reject at 5 % in the shares model's partial F test —
the seed-adjusted candidate means are refitted with them (``f = b0 + b_w·w + b_r·r + b_dw·d·w + b_dr·d·r +
b_wr·w·r``, ordinary least squares, the means' scatter as the noise) and:

* **the optimum** is the fitted surface's stationary point when it is a maximum (negative-definite Hessian on the
  triangle) and lies inside the searched shares (the convex hull of the candidates' proportions: the surface is not
  extrapolated). A saddle, a minimum or a peak outside the hull is said so, and nothing is located.
* **its 95 % region** (Box & Hunter 1954): the shares x where the fitted gradient g(x) is not distinguishable from 0,
  ``g(x)'[G(x) V G(x)']⁻¹ g(x) / 2 <= F(0.95; 2, df)``, V the coefficients' covariance. The true stationary point is
  in it with probability 95 % under normal errors whatever the data say (an exact test inverted, not a bootstrap).
* **the coefficients**: among the buildable options inside the hull (the space's lattice as the product builds it,
  their realized shares), the one with the highest fitted accuracy, and a 95 % confidence set of the *best*
  option: those that no other option beats by more than its Scheffé-simultaneous 95 % bound (every contrast of
  the quadratic's 5 slopes at once), so the truly best buildable option is in it in at least 95 % of runs; α, β
  and γ range over it. (The region's projection is not used: the best *buildable* option can lie outside the
  region of the continuous optimum when the lattice is coarse — on a lattice of 8-pixel resolutions it covered the
  best option in 82 % of 100 simulated runs.)
* **gains** of the optimum over the paper's candidate and over the best trained candidate: Scheffé-simultaneous
  95 % intervals over the quadratic's 5 contrasts, so they hold for an optimum chosen from the same data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as st
from scipy.spatial import Delaunay

__all__ = ["OPTIMUM_METHOD", "Interval", "Option", "Optimum", "best_options", "locate_optimum", "quadratic_design"]

OPTIMUM_METHOD = (
    "where the shares model's curvature test rejects at 5 %, the candidates' means are refitted with the Scheffé "
    "quadratic terms (d·w, d·r, w·r); the optimum is the fitted maximum inside the searched shares (the candidates' "
    "convex hull); its 95 % region is the Box–Hunter set of shares whose fitted gradient is not distinguishable from "
    "0 (F test, 2 df); α, β, γ range over the 95 % confidence set of the best buildable option (the options no "
    "other beats by more than a Scheffé-simultaneous bound); gains are Scheffé-simultaneous 95 % intervals (they "
    "hold for an optimum chosen from the same data)")
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
    coefficients: tuple[float, ...] = ()  # b0, b_w, b_r, b_dw, b_dr, b_wr
    unscaled_cov: tuple[tuple[float, ...], ...] = ()
    residual_sd: float | None = None
    df: int = 0
    method: str = OPTIMUM_METHOD

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
        return _gradient_stat(np.array(self.coefficients), self.residual_sd**2 * np.array(self.unscaled_cov),
                              proportions) <= float(st.f.ppf(level, 2, self.df))


def quadratic_design(props) -> np.ndarray:
    """Rows (1, w, r, d·w, d·r, w·r) of the Scheffé quadratic mixture model (depth the reference)."""
    return np.array([(1.0, w, r, d * w, d * r, w * r) for d, w, r in props])


def _gradient_rows(w: float, r: float) -> np.ndarray:
    """G(x): the gradient of the surface along (w, r) (d = 1 − w − r) is G(x) @ coefficients."""
    return np.array([(0.0, 1.0, 0.0, 1 - 2 * w - r, -r, r), (0.0, 0.0, 1.0, -w, 1 - w - 2 * r, w)])


def _gradient_stat(coef: np.ndarray, V: np.ndarray, x) -> float:
    """g(x)'[G V G']⁻¹ g(x) / 2: F(2, df) where x is the true stationary point."""
    G = _gradient_rows(x[1], x[2])
    g = G @ coef
    return float(g @ np.linalg.solve(G @ V @ G.T, g)) / 2


def _lattice() -> list[tuple[float, float, float]]:
    n = _LATTICE
    return [((n - i - j) / n, i / n, j / n) for i in range(n + 1) for j in range(n + 1 - i)]


def _r(x: float) -> float:
    return round(float(x), 6)


def locate_optimum(points: list[tuple], curvature_p: float | None, options: Callable[[], list[Option]],
                   paper: str | None, level: float = 0.95, depends: bool = True) -> Optimum:
    """The optimum of the quadratic over ``points`` ((candidate, d, w, r, seed-adjusted mean) per candidate), when
    the shares model's gate passed (``depends``: the accuracy depends on the shares at all) and ``curvature_p`` (its
    test of the quadratic terms) rejects at 1 − ``level``; ``options()``: the buildable candidates, asked for only
    when an optimum is located."""
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
    f_crit = float(st.f.ppf(level, 2, df))

    def in_region(x) -> bool:
        return _gradient_stat(coef, V, x) <= f_crit

    region = tuple(tuple(_r(v) for v in x) for x in _lattice() if inside(x) and in_region(x))
    if not inside(x_hat):
        where = ", ".join(f"{n} {v:.2f}" for n, v in zip(("depth", "width", "resolution"), x_hat))
        return Optimum("outside", f"The fitted surface peaks outside the searched shares (at {where}): widen the "
                       "space toward it before trusting a split.", tuple(_r(v) for v in x_hat), region, **fit)
    return _located(x_hat, region, coef, V, df, points, options, paper, inside, fit, level)


def best_options(options: list[Option], coef: np.ndarray, V: np.ndarray, bound: float) -> list[Option]:
    """The confidence set of the best of ``options`` under the fitted quadratic (coefficients ``coef``, covariance
    ``V``): the options that no other beats by more than ``bound`` standard errors of the contrast, best first."""
    if not options:
        return []
    Z = quadratic_design([o.proportions for o in options])
    f = Z @ coef
    D = Z[None, :, :] - Z[:, None, :]  # D[i, j] = z_j − z_i: option j against option i
    se = np.sqrt(np.maximum(np.einsum("ijk,kl,ijl->ij", D, V, D), 0.0))
    kept = np.all(f[None, :] - f[:, None] <= bound * se + 1e-12, axis=1)
    return [options[i] for i in np.argsort(-f) if kept[i]]


def _located(x_hat, region, coef, V, df, points, options, paper, inside, fit, level) -> Optimum:
    buildable = [o for o in options() if inside(o.proportions)]
    scheffe = math.sqrt(5 * float(st.f.ppf(level, 5, df)))
    held = best_options(buildable, coef, V, scheffe)
    top = held[0] if held else None
    span = {k: (Interval(_r(getattr(top, k)), _r(min(getattr(o, k) for o in held)),
                         _r(max(getattr(o, k) for o in held))) if top else None)
            for k in ("alpha", "beta", "gamma")}

    def gain(ref) -> Interval:
        dz = quadratic_design([x_hat])[0] - quadratic_design([ref])[0]
        est, half = float(dz @ coef), scheffe * math.sqrt(float(dz @ V @ dz))
        return Interval(_r(est), _r(est - half), _r(est + half))

    by = {p[0]: tuple(p[1:4]) for p in points}
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
    return Optimum("located", said, tuple(_r(v) for v in x_hat), region, top.candidate if top else None, trained,
                   span["alpha"], span["beta"], span["gamma"], g_paper, g_best, best, **fit)
