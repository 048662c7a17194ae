"""How each doubling of compute should split between depth, width and resolution: one model over every training.

The pairwise verdict compares grid points; on real data at proxy budgets it rarely separates them. The same
trainings answer the user's question — *where does the compute pay?* — once they are pooled in one model over
the candidates' **shares** of the cost (issue 36):

* :func:`realized_shares` — a candidate's shares as built: the MACs each dimension alone buys over the
  baseline's (log2; depth and width as the builder rounds them, the resolution as solved), as proportions of
  their sum (a point of the triangle depth + width + resolution = 1).
* :func:`fit_share_model` — the model: one value per (candidate, seed), its budgets averaged after their paired
  offsets (a race's rungs continue one training, so they are never counted as separate points); seed-adjusted
  candidate means (two-way least squares, candidate + seed, so seed effects shared by all candidates cancel);
  ordinary least squares of those means on the proportions. The residual scatter of the *means* is the noise, so
  lack of fit counts in every interval; lack of fit, curvature and a shift of the slopes between the first and
  the last budget (paired differences) are tested and stated; when the slopes shift, the last budget's alone.

Effects are in accuracy per unit share: the change when a whole doubling's share moves into the dimension from
the other two in equal parts (the three effects sum to 0). Each has a 95 % Student-t interval. Every claim — a
dimension matters, an optimum is located — passes one **gate** first, a 5 % test that the accuracy depends on
the shares at all: the linear shares' F test at 4 % or the F test of every shape term (quadratic included) at 1 %
(Bonferroni; where the design does not identify curvature, the linear F test at 5 %). So on a flat surface at most
5 % of runs claim anything (the linear and the curvature tests each at 5 % made "something" 5–7 % together,
benchmarks/README.md); behind the gate each hypothesis is tested at 5 % (closed testing). A dimension *matters*
when the gate and the F test of the linear shares reject and its interval excludes 0 (protected: with three
effects that sum to 0 at most one can be null while the others are not). Where the data show curvature,
:mod:`scalesearch.decide.optimum` locates the optimum with a 95 % region (``ShareModel.optimum``);
:mod:`scalesearch.plan.confirm` trains it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, astuple, dataclass

import numpy as np
from scipy import stats as st

from .optimum import WITHIN, Option, Optimum, locate_optimum

__all__ = ["DIMENSIONS", "GATE", "SHARE_LEVEL", "SHARE_METHOD", "MIN_DF", "Shares", "SharePoint", "Effect",
           "ShareModel", "realized_shares", "share_table", "fit_share_model", "run_share_model"]

DIMENSIONS = ("depth", "width", "resolution")
SHARE_LEVEL = 0.95
# residual degrees of freedom the model needs before it says anything (7 candidates): at 2 df (5 candidates × 3
# seeds, the default grid) a claim had the wrong sign in up to 3.2 % of simulated runs, and the true effect was
# found in 10-16 % — claims there were as likely chance as signal (benchmarks/README.md)
MIN_DF = 4
SHARE_METHOD = (
    "model over shares: each candidate's shares are the MACs each dimension alone buys over the baseline's (log2, "
    "as built), as proportions of their sum; a candidate's budgets are averaged per seed after their paired "
    "offsets; seed-adjusted candidate means (two-way least squares, candidate + seed) are fitted by ordinary least "
    "squares on the proportions, so lack of fit counts as noise; an effect is the accuracy change when a whole "
    "doubling's share moves into the dimension from the other two equally; 95 % Student-t intervals; every claim "
    "passes one gate at 5 %, the test that the accuracy depends on the shares at all (the linear shares' F test at "
    "4 % or every shape term's, quadratic included, at 1 %; where curvature is not identified, the linear F at "
    "5 %), so on a flat surface at most 5 % of runs claim anything; a dimension matters when the gate and the F "
    "test of the linear shares (5 %) reject and its interval excludes 0")

# the gate every claim passes first, at 5 % in all (Bonferroni): the linear shares' F test at 4 % or every shape
# term's (linear and quadratic) at 1 %; where the design does not identify curvature, the linear F test at 5 %
GATE = (0.04, 0.01)

# each effect as a contrast of the slopes on (width, resolution) proportions, depth being the reference
_CONTRASTS = {"depth": (-0.5, -0.5), "width": (1.0, -0.5), "resolution": (-0.5, 1.0)}


@dataclass(frozen=True)
class Shares:
    """log2 of the cost each dimension alone buys over the baseline at its base resolution."""

    depth: float
    width: float
    resolution: float

    @property
    def proportions(self) -> tuple[float, float, float]:
        total = self.depth + self.width + self.resolution
        if not total > 0:
            raise ValueError(f"shares {self} do not add to a cost above the baseline's: no proportions")
        return self.depth / total, self.width / total, self.resolution / total


def realized_shares(scaler, alpha: float, beta: float, resolution: int, phi: float = 1.0) -> Shares:
    """A candidate's shares as built by ``scaler`` (a :class:`~scalesearch.scaling.scaler.Scaler`): depth α^φ and width
    β^φ each alone as the builder rounds them, the resolution alone as solved, each at the baseline's other two."""
    return share_table(scaler, [(alpha, beta, resolution)], phi)[(alpha, beta, resolution)]


def share_table(scaler, points: Iterable[tuple[float, float, int]], phi: float = 1.0) -> dict[tuple, Shares]:
    """:func:`realized_shares` of many (α, β, resolution), each dimension's cost counted once per value."""
    base = scaler.base_shape.macs
    log = lambda macs: round(math.log2(macs / base), 6)  # noqa: E731
    depth, width, res, out = {}, {}, {}, {}
    for a, b, r in points:
        if a not in depth:
            depth[a] = log(scaler.shape_cost(scaler.build(a**phi, 1.0), scaler.base_resolution).macs)
        if b not in width:
            width[b] = log(scaler.shape_cost(scaler.build(1.0, b**phi), scaler.base_resolution).macs)
        if r not in res:
            res[r] = log(scaler.shape_cost(scaler.baseline, int(r)).macs)
        out[(a, b, r)] = Shares(depth[a], width[b], res[r])
    return out


@dataclass(frozen=True)
class SharePoint:
    """One finished training: its candidate's proportions, seed, budget label and accuracy."""

    candidate: str
    proportions: tuple[float, float, float]
    seed: int
    budget: str
    accuracy: float


@dataclass(frozen=True)
class Effect:
    dimension: str
    estimate: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class ShareModel:
    """What the model over shares says (``status`` "fitted" or "not_estimable", and why in ``sentence``)."""

    status: str
    sentence: str
    effects: tuple[Effect, ...] = ()
    matters: tuple[str, ...] = ()
    shares_p: float | None = None  # the F test that no share matters
    lack_of_fit_p: float | None = None  # the means' scatter about the model against the seeds' own
    curvature_p: float | None = None  # quadratic terms added (None: not identified by the design)
    budget_shift_p: float | None = None  # the slopes differ between budgets (None: one budget)
    budgets: tuple[str, ...] = ()
    n_candidates: int = 0
    n_trainings: int = 0
    df: int = 0
    residual_sd: float | None = None
    level: float = SHARE_LEVEL
    method: str = SHARE_METHOD
    coefficients: tuple[float, ...] = ()  # intercept, width and resolution slopes (depth the reference)
    unscaled_cov: tuple[tuple[float, ...], ...] = ()  # (X'X)^-1 of the means' design
    points: tuple[tuple, ...] = ()  # (candidate, depth, width, resolution proportions, seed-adjusted mean)
    optimum: Optimum | None = None  # where the compute peaks, when the data show curvature
    surface_p: float | None = None  # the F test that no shape term (linear or quadratic) matters (the gate's 2nd)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ShareModel":
        """The model back from best.json's ``shares``."""
        d = dict(d)
        d["effects"] = tuple(Effect(**e) for e in d.get("effects", ()))
        d["unscaled_cov"] = tuple(tuple(r) for r in d.get("unscaled_cov", ()))
        d["points"] = tuple(tuple(r) for r in d.get("points", ()))
        d["optimum"] = Optimum.from_dict(d["optimum"]) if d.get("optimum") else None
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def predict(self, proportions: tuple[float, float, float], level: float = SHARE_LEVEL) -> tuple[float, ...]:
        """(estimate, low, high): a level prediction interval for the seed mean of a new candidate at these
        proportions, trained like the fitted ones (its lack of fit and seed noise included)."""
        if self.status != "fitted":
            raise ValueError(f"the model over shares is {self.status}: it predicts nothing")
        x = np.array([1.0, proportions[1], proportions[2]])
        est = float(x @ np.array(self.coefficients))
        half = float(st.t.ppf(0.5 + level / 2, self.df)) * self.residual_sd * math.sqrt(
            1 + float(x @ np.array(self.unscaled_cov) @ x))
        return est, est - half, est + half


# ---------------------------------------------------------------- stage 1: one value per (candidate, seed)
def _units(points: list[SharePoint], budgets: list[str]) -> tuple[list[SharePoint], dict]:
    """One value per (candidate, seed): the mean over the budgets it was trained at of its accuracy less the
    budget's offset (the mean paired difference to the first budget over the units trained at both). A race's
    rungs continue one training, so a candidate's budgets are not independent looks: they are averaged, never
    counted as separate points."""
    first = {(p.candidate, p.seed): p.accuracy for p in points if p.budget == budgets[0]}
    offsets = {budgets[0]: 0.0}
    for b in budgets[1:]:
        d = [p.accuracy - first[(p.candidate, p.seed)] for p in points if p.budget == b and (p.candidate, p.seed)
             in first]
        offsets[b] = float(np.mean(d)) if d else float("nan")
    acc: dict[tuple, list] = {}
    props = {}
    for p in points:
        if math.isfinite(offsets[p.budget]):
            acc.setdefault((p.candidate, p.seed), []).append(p.accuracy - offsets[p.budget])
            props[p.candidate] = p.proportions
    units = [SharePoint(c, props[c], s, "pooled", float(np.mean(v))) for (c, s), v in acc.items()]
    return units, offsets


def _adjusted_means(points: list[SharePoint]) -> tuple[dict, float, int, float]:
    """Per candidate: its least-squares mean with seed effects removed (candidate + seed additive model), the
    pooled residual variance of that model and its df, and the harmonic mean of the seeds per candidate."""
    cands = sorted({p.candidate for p in points})
    seeds = sorted({p.seed for p in points})
    ci, si = {c: i for i, c in enumerate(cands)}, {s: i for i, s in enumerate(seeds)}
    n, k = len(points), len(cands)
    X = np.zeros((n, k + len(seeds) - 1))
    y = np.array([p.accuracy for p in points])
    for row, p in enumerate(points):
        X[row, ci[p.candidate]] = 1.0
        if si[p.seed] > 0:
            X[row, k + si[p.seed] - 1] = 1.0
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    df = n - int(np.linalg.matrix_rank(X))
    seed_effects = np.concatenate([[0.0], coef[k:]])
    means = {c: float(coef[ci[c]] + seed_effects.mean()) for c in cands}
    counts = [sum(p.candidate == c for p in points) for c in cands]
    n_h = len(counts) / sum(1 / c for c in counts)
    return means, float(resid @ resid / df) if df > 0 else float("nan"), df, n_h


# ---------------------------------------------------------------- stage 2: least squares over the means
def _ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Coefficients, (X'X)^-1, residual variance and residual df."""
    xtx_inv = np.linalg.pinv(X.T @ X)
    coef = xtx_inv @ X.T @ y
    resid = y - X @ coef
    df = X.shape[0] - int(np.linalg.matrix_rank(X))
    return coef, xtx_inv, float(resid @ resid / df) if df > 0 else float("nan"), df


def _partial_f(X_small: np.ndarray, X_big: np.ndarray, y: np.ndarray) -> float | None:
    """p of the F test that the columns ``X_big`` adds to ``X_small`` are all 0 (None: not identified)."""
    extra = int(np.linalg.matrix_rank(X_big)) - int(np.linalg.matrix_rank(X_small))
    _, _, s2_big, df_big = _ols(X_big, y)
    if extra < 1 or df_big < MIN_DF or not s2_big > 0:
        return None
    _, _, s2_small, df_small = _ols(X_small, y)
    f = ((s2_small * df_small - s2_big * df_big) / extra) / s2_big
    return float(st.f.sf(max(f, 0.0), extra, df_big))


def _design(props: list[tuple]) -> np.ndarray:
    """An intercept, then the width and resolution proportions (depth the reference)."""
    return np.array([(1.0, w, r) for _, w, r in props])


def _curved(X: np.ndarray, props: list[tuple]) -> np.ndarray:
    """``X`` with the three quadratic blending terms of a Scheffé mixture model (d·w, d·r, w·r)."""
    return np.hstack([X, np.array([(d * w, d * r, w * r) for d, w, r in props])])


def _budget_shift(points: list[SharePoint], budgets: list[str]) -> float | None:
    """p of the F test that the shares' slopes differ between the first and the last budget: the paired
    differences (last − first, per candidate and seed) regressed on the shares."""
    if len(budgets) < 2:
        return None
    first = {(p.candidate, p.seed): p.accuracy for p in points if p.budget == budgets[0]}
    diffs = [SharePoint(p.candidate, p.proportions, p.seed, "diff", p.accuracy - first[(p.candidate, p.seed)])
             for p in points if p.budget == budgets[-1] and (p.candidate, p.seed) in first]
    if len({p.candidate for p in diffs}) < 3 + MIN_DF:
        return None
    means, *_ = _adjusted_means(diffs)
    props = {p.candidate: p.proportions for p in diffs}
    X, y = _design([props[c] for c in means]), np.array(list(means.values()))
    if np.linalg.matrix_rank(X) < 3:
        return None
    return _partial_f(X[:, :1], X, y)


def _not_estimable(why: str, n_cand: int, n_train: int, budgets) -> ShareModel:
    return ShareModel("not_estimable", f"The model over shares says nothing here: {why}.", budgets=tuple(budgets),
                      n_candidates=n_cand, n_trainings=n_train)


def fit_share_model(points: Iterable[SharePoint], level: float = SHARE_LEVEL,
                    options: Callable[[], list[Option]] = list, paper: str | None = None,
                    delta: float = WITHIN) -> ShareModel:
    """The model over shares of all ``points`` (finished trainings); see the module docstring. ``options``: the
    space's buildable candidates, asked for only when an optimum is located; ``paper``: the paper's candidate."""
    points = [p for p in points if math.isfinite(p.accuracy)]
    budgets = list(dict.fromkeys(p.budget for p in points))
    n_cand, n_train = len({p.candidate for p in points}), len(points)
    if not points:
        return _not_estimable("no training finished", 0, 0, budgets)
    shift_p = _budget_shift(points, budgets)
    note = ""
    if shift_p is not None and shift_p < 1 - level:  # the slopes differ by budget: the last budget's alone
        points = [p for p in points if p.budget == budgets[-1]]
        note = (f" These are the last budget's ({budgets[-1]}) effects: the slopes differ between budgets "
                f"(F test p = {shift_p:.2g}).")
    units, _ = _units(points, list(dict.fromkeys(p.budget for p in points)))
    means, pe_var, pe_df, n_h = _adjusted_means(units)
    props = {p.candidate: p.proportions for p in units}
    X, y = _design([props[c] for c in means]), np.array(list(means.values()))
    need = 3 + MIN_DF
    if len(means) < need:
        return _not_estimable(f"it needs {need} candidates and has {len(means)} (many candidates with few seeds "
                              "answer how to split the compute: search=surface)", n_cand, n_train, budgets)
    if np.linalg.matrix_rank(X) < 3:
        return _not_estimable("the candidates' shares lie on one line of the triangle, so the three effects are "
                              "not identified", n_cand, n_train, budgets)
    coef, xtx_inv, s2, df = _ols(X, y)
    if not s2 > 0:
        return _not_estimable("the candidates' means fit the shares exactly (no residual scatter)", n_cand,
                              n_train, budgets)
    cov, slopes = s2 * xtx_inv[1:, 1:], coef[1:]
    shares_p = float(st.f.sf(float(slopes @ np.linalg.solve(cov, slopes)) / 2, 2, df))
    t = float(st.t.ppf(0.5 + level / 2, df))
    effects = []
    for dim in DIMENSIONS:
        L = np.array(_CONTRASTS[dim])
        est, se = float(L @ slopes), float(math.sqrt(L @ cov @ L))
        p = float(2 * st.t.sf(abs(est) / se, df))
        effects.append(Effect(dim, round(est, 6), round(est - t * se, 6), round(est + t * se, 6), round(p, 6)))
    Xq = _curved(X, [props[c] for c in means])
    curv_p = _partial_f(X, Xq, y)
    surface_p = None if curv_p is None else _partial_f(X[:, :1], Xq, y)  # every shape term at once
    depends = shares_p < 1 - level if surface_p is None else (shares_p < GATE[0] or surface_p < GATE[1])
    matters = tuple(e.dimension for e in effects if depends and shares_p < 1 - level and (e.low > 0 or e.high < 0))
    lof_p = _lack_of_fit(s2, df, pe_var, pe_df, n_h)
    table = tuple((c, *props[c], round(m, 6)) for c, m in means.items())
    sentence = _sentence(effects, matters, shares_p, surface_p, len(means), depends)
    return ShareModel("fitted", sentence + note, tuple(effects), matters,
                      round(shares_p, 6), lof_p, None if curv_p is None else round(curv_p, 6),
                      None if shift_p is None else round(shift_p, 6), tuple(budgets), n_cand, n_train, int(df),
                      math.sqrt(s2), level, SHARE_METHOD, tuple(float(c) for c in coef),
                      tuple(tuple(float(v) for v in row) for row in xtx_inv), table,
                      locate_optimum(list(table), curv_p, options, paper, level, depends, delta),
                      None if surface_p is None else round(surface_p, 6))


def _lack_of_fit(s2: float, df: int, pe_var: float, pe_df: int, n_h: float) -> float | None:
    """p of the means' residual variance against what the seeds alone give a mean (pure error / n)."""
    if pe_df < 1 or not pe_var > 0:
        return None
    return round(float(st.f.sf(s2 / (pe_var / n_h), df, pe_df)), 6)


def _sentence(effects: list[Effect], matters: tuple[str, ...], shares_p: float, surface_p: float | None,
              n_cand: int, depends: bool) -> str:
    if not depends:
        tests = f"F test p = {shares_p:.2g}" + ("" if surface_p is None else f", with curvature p = {surface_p:.2g}")
        return (f"The accuracy does not depend on the shares at this budget ({tests}, {n_cand} candidates): these "
                "trainings do not say how to split the compute.")
    if not matters:
        return (f"The shares' effects are not distinguishable from 0 at this budget (F test p = {shares_p:.2g}, "
                f"{n_cand} candidates): these trainings do not say how to split the compute.")
    by = {e.dimension: e for e in effects}
    told = "; ".join(f"{d} {by[d].estimate:+.3f} [{by[d].low:+.3f}, {by[d].high:+.3f}]" for d in matters)
    best = max(effects, key=lambda e: e.estimate)
    lead = (f"Compute pays most in {best.dimension}" if best.dimension in matters and best.estimate > 0
            else "The split of compute matters")
    return f"{lead}: accuracy per unit share moved into a dimension — {told} (F test p = {shares_p:.2g})."


# ---------------------------------------------------------------- a run's trainings
def _budget(row: dict, stage: str) -> tuple[float, str]:
    rung = row.get("rung")
    if stage == "validation":
        return math.inf, "validation"
    if rung in (None, "") or (isinstance(rung, float) and math.isnan(rung)):
        return 0.0, "search"
    return float(rung), f"rung {float(rung):g}"


def run_share_model(rows: list[dict], validation_rows: list[dict], scaler, phi: float = 1.0,
                    options: Callable[[], list[dict]] = list, paper: str | None = None,
                    delta: float | None = None) -> ShareModel:
    """The model over shares of a run's finished trainings: the search's (a race's rungs as budgets) and the
    validation's, each candidate's shares as ``scaler`` builds it at ``phi``; ``options``: candidate rows
    (candidate, alpha, beta, gamma, resolution, cost_ratio) of the space's buildable lattice; ``paper``: the paper's
    candidate; ``delta``: the shortfall of the options "within δ of the best" (None: optimum.WITHIN)."""
    done = [(r, stage) for stage, rs in (("search", rows), ("validation", validation_rows or []))
            for r in rs if r.get("status") == "ok" and isinstance(r.get("accuracy"), (int, float))]
    table = share_table(scaler, sorted({(float(r["alpha"]), float(r["beta"]), int(r["resolution"]))
                                        for r, _ in done}), phi)
    done = [(r, st_) for r, st_ in done
            if sum(astuple(table[(float(r["alpha"]), float(r["beta"]), int(r["resolution"]))])) > 0]
    done.sort(key=lambda x: _budget(*x)[0])
    points = [SharePoint(r["candidate"], table[(float(r["alpha"]), float(r["beta"]), int(r["resolution"]))]
                         .proportions, int(r["seed"]), _budget(r, stage)[1], float(r["accuracy"])) for r, stage in done]

    def buildable() -> list[Option]:
        rows = [(o, (float(o["alpha"]), float(o["beta"]), int(o["resolution"]))) for o in options()]
        built = share_table(scaler, {k for _, k in rows}, phi)
        return [Option(o["candidate"], k[0], k[1], float(o["gamma"]), built[k].proportions,
                       float(o["cost_ratio"]) if isinstance(o.get("cost_ratio"), (int, float)) else None)
                for o, k in rows
                if sum(astuple(built[k])) > 0]
    return fit_share_model(points, options=buildable, paper=paper, delta=WITHIN if delta is None else delta)
