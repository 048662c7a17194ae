"""Declarative search spaces (``search_spaces/*.yaml``): the constrained lattice for the
grid, and the Optuna define-by-run space on the surface α·β²·γ² = target.

A space file::

    alpha: {low: 1.0, high: 2.0}
    beta:  {low: 1.0, high: 1.5}
    gamma: {low: 1.0, high: 1.5}
    step: 0.05          # lattice step (grid)
    target: 2.0         # α·β²·γ² per unit of φ
    tolerance: 0.1      # |α·β²·γ² − target| allowed on the grid
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from .preflight import check_environment, check_search_app
from ..scaling.coefficients import PAPER, Coefficients, check_family_phis, check_phi
from ..scaling.spec import load_baseline

__all__ = ["Range", "CompoundSpace", "load_space", "check_search_inputs", "SPACES_DIR"]

from ..paths import SPACES_DIR  # packaged search_spaces/ (wheel) or <repo>/search_spaces
_KEYS = {"alpha", "beta", "gamma", "step", "target", "tolerance", "description"}


@dataclass(frozen=True)
class Range:
    low: float
    high: float

    def values(self, step: float) -> list[float]:
        n = int(math.floor((self.high - self.low) / step + 1e-9))
        return [round(self.low + i * step, 6) for i in range(n + 1)]


@dataclass(frozen=True)
class CompoundSpace:
    alpha: Range
    beta: Range
    gamma: Range
    step: float = 0.05
    target: float = 2.0
    tolerance: float = 0.1
    name: str = "compound"

    def __post_init__(self):
        for k in ("alpha", "beta", "gamma"):
            r = getattr(self, k)
            if not (1 <= r.low <= r.high):
                raise ValueError(f"space {self.name}: {k} range [{r.low}, {r.high}] is invalid; "
                                 "allowed: 1 <= low <= high")
        if self.step <= 0:
            raise ValueError(f"space {self.name}: step={self.step}; allowed: step > 0")
        if self.target <= 1 or self.tolerance < 0:
            raise ValueError(f"space {self.name}: target={self.target}, tolerance={self.tolerance}; "
                             "allowed: target > 1, tolerance >= 0")
        lo = self.alpha.low * self.beta.low**2 * self.gamma.low**2
        hi = self.alpha.high * self.beta.high**2 * self.gamma.high**2
        if hi < self.target - self.tolerance or lo > self.target + self.tolerance:
            raise ValueError(
                f"space {self.name}: alpha*beta^2*gamma^2 spans [{lo:.3f}, {hi:.3f}] and never reaches "
                f"target {self.target} ± {self.tolerance}; allowed: ranges whose product can reach the target"
            )

    def highest(self) -> tuple[float, float, float]:
        """The largest α, β, γ a candidate can have: within its range, and with the other two at their lows the
        product α·β²·γ² no more than target + tolerance."""
        top, a, b, g = self.target + self.tolerance, self.alpha, self.beta, self.gamma
        return (min(a.high, top / (b.low**2 * g.low**2)), min(b.high, math.sqrt(top / (a.low * g.low**2))),
                min(g.high, math.sqrt(top / (a.low * b.low**2))))

    # ---------------------------------------------------------------- grid
    def lattice(self) -> list[Coefficients]:
        """Every lattice point with |α·β²·γ² − target| <= tolerance, in (α, β, γ) order."""
        pts = []
        for a in self.alpha.values(self.step):
            for b in self.beta.values(self.step):
                for g in self.gamma.values(self.step):
                    c = Coefficients(a, b, g)
                    if abs(c.product - self.target) <= self.tolerance + 1e-9:
                        pts.append(c)
        if not pts:
            raise ValueError(f"space {self.name}: no lattice point with step {self.step} satisfies the constraint; "
                             "allowed: a smaller step or a larger tolerance")
        return pts

    def grid(self, thin: int = 1, max_points: int | None = None, include_paper: bool = True) -> list[Coefficients]:
        """The lattice, optionally thinned: every ``thin``-th point, then at most ``max_points``
        chosen by farthest-point sampling in log(α, β, γ) so a small grid still covers the
        surface (depth-heavy, width-heavy, resolution-heavy and balanced points). The
        paper's (1.2, 1.1, 1.15) is kept when ``include_paper`` and it is on the lattice."""
        if thin < 1:
            raise ValueError(f"search.thin={thin}; allowed: >= 1")
        if max_points is not None and max_points < 1:
            raise ValueError(f"search.max_points={max_points}; allowed: >= 1 or null")
        full = self.lattice()
        pts = full[::thin]
        if include_paper and PAPER in full and PAPER not in pts:
            pts.append(PAPER)
        if max_points is None or len(pts) <= max_points:
            return pts
        logs = {c: (math.log(c.alpha), math.log(c.beta), math.log(c.gamma)) for c in pts}
        chosen = [PAPER if include_paper and PAPER in pts else pts[0]]
        while len(chosen) < max_points:
            chosen.append(max(pts, key=lambda c: min(math.dist(logs[c], logs[o]) for o in chosen)))
        return sorted(chosen, key=lambda c: (c.alpha, c.beta, c.gamma))

    # ---------------------------------------------------------------- optuna
    def alpha_bounds(self) -> tuple[float, float]:
        """α range for which some β in range gives γ = sqrt(target/(α·β²)) in range."""
        t, b, g = self.target, self.beta, self.gamma
        lo = max(self.alpha.low, t / (b.high**2 * g.high**2))
        hi = min(self.alpha.high, t / (b.low**2 * g.low**2))
        if lo > hi:
            raise ValueError(f"space {self.name}: no alpha in [{self.alpha.low}, {self.alpha.high}] reaches "
                             f"target {t} exactly; "
                             "allowed: ranges whose product can equal the target")
        return lo, hi

    def beta_bounds(self, alpha: float) -> tuple[float, float]:
        """β range, given α, that keeps the derived γ inside its range."""
        t, g = self.target, self.gamma
        lo = max(self.beta.low, math.sqrt(t / (alpha * g.high**2)))
        hi = min(self.beta.high, math.sqrt(t / (alpha * g.low**2)))
        return lo, max(lo, hi)

    def derive_gamma(self, alpha: float, beta: float) -> float:
        return math.sqrt(self.target / (alpha * beta**2))

    def define_by_run(self, trial) -> dict:
        """Optuna define-by-run space: sample α, then β within the bounds that keep γ in
        range, and derive γ on the surface. No candidate outside the ranges is ever
        proposed, so none is trained and thrown away."""
        a_lo, a_hi = self.alpha_bounds()
        alpha = trial.suggest_float("alpha", a_lo, a_hi)
        b_lo, b_hi = self.beta_bounds(alpha)
        beta = trial.suggest_float("beta", b_lo, b_hi) if b_hi > b_lo else b_lo
        gamma = min(max(self.derive_gamma(alpha, beta), self.gamma.low), self.gamma.high)
        return {"alpha": round(alpha, 4), "beta": round(beta, 4), "gamma": round(gamma, 4)}


def compound_spaces() -> list[str]:
    """Names of the built-in compound spaces (block-level NAS spaces have a ``stages`` key)."""
    return sorted(f.stem for f in SPACES_DIR.glob("*.yaml") if "stages" not in (yaml.safe_load(f.read_text()) or {}))


def load_space(name_or_path: str) -> CompoundSpace:
    """Load ``search_spaces/<name>.yaml`` or a path to a YAML file."""
    p = Path(name_or_path)
    if not p.suffix:
        p = SPACES_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        raise ValueError(f"search.space={name_or_path!r} not found; allowed: {', '.join(compound_spaces())} "
                         "or a path to a .yaml file")
    try:
        raw = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ValueError(f"search space {p} is not valid YAML{at} ({getattr(e, 'problem', None) or type(e).__name__}); "
                         f"allowed: a mapping with keys {sorted(_KEYS)}") from None
    except OSError as e:
        raise ValueError(f"search space {p} cannot be read ({e.strerror}); allowed: a readable .yaml file") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"search space {p} is empty or not a mapping; allowed: keys {sorted(_KEYS)}")
    if "stages" in raw:
        raise ValueError(f"search.space={name_or_path!r} is a block-level (NAS) space, not a compound one; "
                         f"use it with scalesearch-nas; allowed here: {', '.join(compound_spaces())}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ValueError(f"search space {p}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    try:
        ranges = {k: Range(float(raw[k]["low"]), float(raw[k]["high"])) for k in ("alpha", "beta", "gamma")}
        numbers = {k: float(raw.get(k, d)) for k, d in (("step", 0.05), ("target", 2.0), ("tolerance", 0.1))}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"search space {p}: alpha, beta and gamma each need numeric low and high, and step, target, "
                         f"tolerance must be numbers ({type(e).__name__}: {e}); "
                         "allowed: e.g. alpha: {low: 1.0, high: 2.0}") from None
    try:
        return CompoundSpace(**ranges, **numbers, name=p.stem)
    except ValueError as e:  # name the file, not only its stem
        raise ValueError(str(e).replace(f"space {p.stem}:", f"search space {p}:", 1)) from None


def check_search_inputs(cfg) -> tuple[CompoundSpace, object]:
    """Every check of the search app's settings and inputs (space, baseline, family φ, machine / cluster), in about
    a second and without torch, data or Ray: the CLI runs it before Hydra makes a run directory and ``run_search``
    before it writes anything. Returns the loaded space and baseline spec."""
    check_search_app(cfg)
    space = load_space(cfg.search.space)
    if cfg.search.strategy == "optuna":
        space.alpha_bounds()
    baseline = load_baseline(cfg.model.baseline)
    _check_buildable(cfg, space, baseline)
    check_environment(cfg)
    return space, baseline


def _check_buildable(cfg, space: CompoundSpace, baseline) -> None:
    """The candidates at search.phi, the family members and the ablation's variants can be built, whatever
    coefficients the space yields."""
    highs, base = space.highest(), cfg.dataset.base_resolution
    where = f"search.phi={cfg.search.phi:g} (alpha, beta, gamma up to {', '.join(f'{h:.3g}' for h in highs)})"
    check_phi(cfg.search.phi, where, baseline, base, highs, "search.phi", positive=True)
    check_family_phis(cfg.family.phis, baseline, base, highs, "family.phis")
    if cfg.family.ablation:  # its one-dimension variants scale depth by 2^phi, width and resolution by 2^(phi/2)
        worst = tuple(max(h, c) for h, c in zip(highs, (2.0, math.sqrt(2), math.sqrt(2))))
        check_family_phis(cfg.family.ablation_phis, baseline, base, worst, "family.ablation_phis")
