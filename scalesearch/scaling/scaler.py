"""Compound scaling: coefficients, the constraint, equal measured cost, and the family generator.

Two ways to hold a member at its cost (``constraint``):

* ``nominal`` (the paper): member φ has depth α^φ, width β^φ and resolution round(base·γ^φ); its
  cost is whatever the rounded network measures (the nominal product (α·β²·γ²)^φ is a promise).
* ``measured``: depth α^φ and width β^φ as the builder rounds them, and the resolution solved on
  whole pixels (multiples of ``resolution_multiple``) so that the *measured* cost of the built
  member over the baseline's at the base resolution is as close to target^φ as the pixel grid
  allows (:func:`solve_resolution`). The effective γ = (resolution / base)^(1/φ) is recorded.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Callable

from .spec import B0, OFFICIAL, ModelSpec, scale

__all__ = ["Coefficients", "PAPER", "CONSTRAINTS", "MIN_RESOLUTION", "MAX_RESOLUTION", "MAX_BLOCKS", "MAX_CHANNELS",
           "FAMILY_COSTS", "DEVICE_COSTS",
           "dropout_for_phi", "round_resolution", "fit_phi", "Solved", "solve_resolution", "check_member_dims",
           "phi_range", "check_phi", "check_family_phis", "member_name", "candidate_id", "FamilyMember", "Scaler",
           "family", "family_markdown",
           "load_family"]

log = logging.getLogger("scalesearch")
CONSTRAINTS = ("measured", "nominal")
MIN_RESOLUTION = 16  # below this the five stride-2 stages leave almost nothing
# the largest member that is built at all (a larger φ is refused before anything starts): its input size is what
# the resolution solver tries at most; 2^14 blocks is 1024x B0's 16; a 1x1 conv between two layers of 2^16
# channels holds 2^32 weights (16 GiB in fp32), beyond what one accelerator trains
MAX_RESOLUTION = 8192
MAX_BLOCKS = 2**14
MAX_CHANNELS = 2**16
FAMILY_COSTS = ("macs", "activations")  # costs a member is held at without a device (counted on the meta device)
DEVICE_COSTS = ("latency", "train_step")  # measured on a device (ms), through a measurer


@dataclass(frozen=True)
class Coefficients:
    """Depth ``alpha``, width ``beta``, resolution ``gamma``: at compound coefficient φ
    the network has depth α^φ, width β^φ and resolution γ^φ times the baseline's;
    MACs grow as (α·β²·γ²)^φ."""

    alpha: float
    beta: float
    gamma: float

    def __post_init__(self):
        for k in ("alpha", "beta", "gamma"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{k}={v!r} is not a number; allowed: a finite number >= 1")
            if v < 1:
                raise ValueError(f"{k}={v} is below 1; allowed: {k} >= 1 (scaling up never shrinks a dimension; "
                                 "scale down with a negative phi)")

    @property
    def product(self) -> float:
        """The nominal cost multiple per unit of φ: α·β²·γ²."""
        return self.alpha * self.beta**2 * self.gamma**2

    def satisfies(self, target: float = 2.0, tolerance: float = 0.1) -> bool:
        return abs(self.product - target) <= tolerance

    def check(self, target: float = 2.0, tolerance: float = 0.1) -> None:
        """Raise ``ValueError`` if α·β²·γ² is outside ``target ± tolerance``."""
        if not self.satisfies(target, tolerance):
            raise ValueError(
                f"alpha*beta^2*gamma^2 = {self.product:.4f} for ({self.alpha}, {self.beta}, {self.gamma}) "
                f"is outside target {target} ± {tolerance}; allowed: |product - target| <= tolerance "
                f"(or allow_off_constraint=true)"
            )

    def multipliers(self, phi: float) -> tuple[float, float, float]:
        """(depth, width, resolution) multipliers at compound coefficient ``phi`` (negative: below B0; inf where the
        power overflows)."""
        return _power(self.alpha, phi), _power(self.beta, phi), _power(self.gamma, phi)


def _power(c: float, phi: float) -> float:
    try:
        return c**phi
    except OverflowError:
        return math.inf


PAPER = Coefficients(1.2, 1.1, 1.15)


def dropout_for_phi(phi: float) -> float:
    """Dropout as the official table grows it: 0.2 at φ < 2, +0.1 every 2 units, capped at 0.5."""
    return round(min(0.5, 0.2 + 0.1 * max(0, math.floor(phi / 2))), 3)


def round_resolution(resolution: float, multiple: int = 8) -> int:
    """Round to the nearest multiple of ``multiple`` (1 keeps the plain rounding)."""
    return max(multiple, int(round(resolution / multiple)) * multiple)


def fit_phi(depth: float, width: float, resolution_mult: float, coeffs: Coefficients) -> float:
    """φ that best explains (depth, width, resolution) multipliers under ``coeffs``:
    least squares in log space, Σ(log m_i − φ·log c_i)²."""
    pairs = [(depth, coeffs.alpha), (width, coeffs.beta), (resolution_mult, coeffs.gamma)]
    num = sum(math.log(m) * math.log(c) for m, c in pairs)
    den = sum(math.log(c) ** 2 for _, c in pairs)
    return num / den if den > 0 else 0.0


# ---------------------------------------------------------------- equal measured cost
@dataclass(frozen=True)
class Solved:
    """A resolution solved for a target cost ratio. ``feasible``: the target lies within one step of
    the pixel grid of ``resolution`` (between its neighbours' costs); otherwise ``reason`` says why."""

    resolution: int
    ratio: float
    target: float
    feasible: bool
    reason: str = ""
    step_ratio: float | None = None  # the largest cost change to a neighbouring resolution


def solve_resolution(ratio_at: Callable[[int], float], target: float, low: int, high: int,
                     multiple: int = 1) -> Solved:
    """The resolution in ``[low, high]`` (multiples of ``multiple``) whose cost ratio ``ratio_at(r)`` is
    closest to ``target`` (in log ratio; equal costs: the larger resolution). ``ratio_at`` must be
    non-decreasing in r (MACs and activations are). Bisection: O(log(range)) cost evaluations."""
    grid = list(range(math.ceil(low / multiple) * multiple, high + 1, multiple))
    if not grid:
        raise ValueError(f"no resolution that is a multiple of {multiple} lies in [{low}, {high}]")
    cache: dict[int, float] = {}

    def cost(r: int) -> float:
        if r not in cache:
            cache[r] = ratio_at(r)
        return cache[r]

    lo, hi = 0, len(grid) - 1
    if cost(grid[hi]) < target:
        i = hi
    else:  # first index with cost >= target
        while lo < hi:
            mid = (lo + hi) // 2
            if cost(grid[mid]) >= target:
                hi = mid
            else:
                lo = mid + 1
        i = lo
        if i > 0 and abs(math.log(cost(grid[i - 1]) / target)) < abs(math.log(cost(grid[i]) / target)):
            i -= 1
    while i + 1 < len(grid) and cost(grid[i + 1]) == cost(grid[i]):  # a plateau: keep the most pixels
        i += 1
    r, ratio = grid[i], cost(grid[i])
    # feasible: the target lies within one grid step beyond the range's ends (then the pick is within a step)
    floor = cost(grid[0] - multiple) if grid[0] - multiple >= 1 else 0.0
    ceiling = cost(grid[-1] + multiple)
    feasible = floor <= target <= ceiling
    reason = ""
    if target < floor:
        reason = (f"costs {ratio:.2f}x already at the lowest allowed resolution {r} px (target {target:.3g}x): "
                  "depth and width alone exceed the target")
    elif target > ceiling:
        reason = (f"costs only {ratio:.2f}x at the highest allowed resolution {r} px (target {target:.3g}x): "
                  "the resolution range cannot make up for the depth and width")
    step = max(cost(r + multiple) - ratio, ratio - (cost(r - multiple) if r - multiple >= 1 else 0.0))
    return Solved(r, ratio, target, feasible, reason, step)


def _widest(spec: ModelSpec) -> int:
    """Channels of the widest layer: the stem, the head, a stage's output or a block's expansion."""
    widths, cin = [spec.stem_channels, spec.head_channels], spec.stem_channels
    for s in spec.stages:
        widths += [s.out_channels, cin * s.expand_ratio] + ([s.out_channels * s.expand_ratio] if s.repeats > 1 else [])
        cin = s.out_channels
    return max(widths)


def _limits(baseline: ModelSpec) -> dict[str, tuple[float, float, str, str]]:
    """Depth and width: the lowest and highest multiplier a member may have, and what bounds them."""
    deepest = max(s.repeats for s in baseline.stages)
    narrowest = min(s.out_channels for s in baseline.stages)
    blocks, widest = baseline.num_blocks, _widest(baseline)
    return {"depth": (1 / deepest, MAX_BLOCKS / blocks, f"the deepest stage ({deepest} blocks) below one block",
                      f"the network ({blocks} blocks) above {MAX_BLOCKS} blocks"),
            "width": (8 / narrowest, MAX_CHANNELS / widest, f"the narrowest stage ({narrowest} channels) below 8",
                      f"the widest layer ({widest} channels) above {MAX_CHANNELS}")}


def check_member_dims(baseline: ModelSpec, depth: float, width: float, resolution: float, where: str,
                      allowed: str | None = None) -> None:
    """A member must keep every dimension buildable (:data:`MAX_BLOCKS`, :data:`MAX_CHANNELS`,
    :data:`MAX_RESOLUTION`) and must not scale one below its minimum (where rounding could not shrink it further, so
    the member would not be what φ says): the deepest stage ≥ 1 block, the narrowest ≥ 8 channels, resolution ≥
    ``MIN_RESOLUTION``. ``allowed`` replaces the message's default "allowed:" part."""
    lim = _limits(baseline)
    (d_lo, d_hi, d_low, d_high), (w_lo, w_hi, w_low, w_high) = lim["depth"], lim["width"]
    problems = [
        (depth < d_lo, f"depth multiplier {depth:.3f} leaves {d_low}", f"depth >= {d_lo:.3f} (a smaller |phi|)"),
        (depth > d_hi, f"depth multiplier {depth:.3g} takes {d_high}", f"depth <= {d_hi:.4g} (a smaller phi)"),
        (width < w_lo, f"width multiplier {width:.3f} takes {w_low}", f"width >= {w_lo:.3f} (a smaller |phi|)"),
        (width > w_hi, f"width multiplier {width:.3g} takes {w_high}", f"width <= {w_hi:.4g} (a smaller phi)"),
        (resolution < MIN_RESOLUTION, f"resolution {resolution:.1f} px is below {MIN_RESOLUTION}",
         f">= {MIN_RESOLUTION} px (a smaller |phi| or a larger base resolution)"),
        (resolution > MAX_RESOLUTION, f"resolution {resolution:.4g} px is above {MAX_RESOLUTION}",
         f"<= {MAX_RESOLUTION} px (a smaller phi or a smaller base resolution)"),
    ]
    for bad, what, ok in problems:
        if bad:
            raise ValueError(f"{where}: {what}; allowed: {allowed or ok}")


def phi_range(baseline: ModelSpec, base_resolution: float, coeffs: tuple[float, float, float]) -> tuple[float, float]:
    """The φ interval in which the member scaled by ``coeffs`` (α, β, γ)^φ passes :func:`check_member_dims`
    (a coefficient of 1 bounds nothing)."""
    lim = _limits(baseline)
    bounds = [lim["depth"][:2], lim["width"][:2], (MIN_RESOLUTION / base_resolution, MAX_RESOLUTION / base_resolution)]
    lo, hi = -math.inf, math.inf
    for c, (low, high) in zip(coeffs, bounds):
        if c > 1:
            lo, hi = max(lo, math.log(low) / math.log(c)), min(hi, math.log(high) / math.log(c))
    return lo, hi


def check_phi(phi: float, where: str, baseline: ModelSpec, base_resolution: float,
              coeffs: tuple[float, float, float], key: str = "phi", positive: bool = False) -> None:
    """A φ whose member (``coeffs`` (α, β, γ)^φ of ``baseline`` at ``base_resolution``) is buildable: a one-line
    ValueError naming the dimension and the φ range allowed (``positive``: the range as ``0 < key <= high``)."""
    lo, hi = phi_range(baseline, base_resolution, coeffs)
    if lo - 1e-9 <= phi <= hi + 1e-9:
        return
    low, high = math.ceil(lo * 100) / 100, math.floor(hi * 100) / 100
    span = f"0 < {key} <= {high:g}" if positive else f"{key} within [{low:g}, {high:g}]"
    allowed = (f"{span} (where a member keeps its deepest stage >= 1 block, <= {MAX_BLOCKS} blocks, 8..{MAX_CHANNELS} "
               f"channels, {MIN_RESOLUTION}..{MAX_RESOLUTION} px)")
    d, w, r = (_power(c, phi) for c in coeffs)
    check_member_dims(baseline, d, w, base_resolution * r, where, allowed)
    raise ValueError(f"{where}: outside the buildable range; allowed: {allowed}")


def check_family_phis(phis, baseline: ModelSpec, base_resolution: int, highs: tuple[float, float, float],
                      key: str = "family.phis") -> None:
    """Every member must stay buildable for any coefficients up to ``highs`` (the largest α, β, γ of the space):
    checked before a search, when the coefficients are not known yet."""
    a, b, g = highs
    for phi in phis:
        if phi != 0:
            check_phi(phi, f"{key} contains {phi:g} (with alpha up to {a:.3g}, beta up to {b:.3g}, gamma up to "
                           f"{g:.3g})", baseline, base_resolution, highs, key)


def member_name(phi: float) -> str:
    """b0, b1, … and, below B0, b-1, b-2 (φ < 0); non-integer φ: phi1.5."""
    phi = float(phi) + 0.0  # -0.0 -> 0.0
    return f"b{phi:g}" if phi.is_integer() else f"phi{phi:g}"


# ---------------------------------------------------------------- the family
@dataclass(frozen=True)
class FamilyMember:
    name: str
    phi: float
    depth_mult: float
    width_mult: float
    resolution: int
    dropout: float
    params: int
    macs: int
    activations: int
    macs_ratio: float
    activations_ratio: float
    ideal_ratio: float
    spec: dict
    phi_fit: float | None = None
    constraint: str = "nominal"
    cost: str = "macs"  # the cost the member is held at (the search's own with a device measurer)
    cost_ratio: float | None = None  # that cost over the baseline's at the base resolution

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def model_spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self.spec, where=f"family member {self.name}")


def candidate_id(alpha: float, beta: float, gamma: float | None = None) -> str:
    """A candidate's stable name: its coefficients (γ is the effective one in the measured constraint)."""
    return f"a{alpha:g}-b{beta:g}" + ("" if gamma is None else f"-g{gamma:g}")


@dataclass(frozen=True)
class Scaler:
    """The one owner of the rule *how a network is built at a given cost*: the spec at φ (depth α^φ, width β^φ as
    the builder rounds them), its resolution under the constraint, and from these a search candidate, a family
    member and a family. The search, its family, the ablation, the generator and the official table all use it.

    ``constraint="nominal"``: resolution round(base·γ^φ) to ``resolution_multiple``. ``"measured"``: solved on
    whole pixels so that the measured ``cost`` over the baseline's is target^φ — within ``gamma_range``^φ of the
    base resolution (a search candidate: off by more than ``tolerance`` there, it is infeasible), a family member
    falling back to any resolution. ``cost`` ``latency`` / ``train_step`` are measured by ``measure(spec, px)``
    (ms; the runner's calibration task), so that a family is held at the search's own cost."""

    baseline: ModelSpec = B0
    base_resolution: int = 224
    num_classes: int = 1000
    in_channels: int = 3
    constraint: str = "nominal"
    cost: str = "macs"
    target: float = 2.0
    tolerance: float = 0.1
    gamma_range: tuple[float, float] | None = None
    resolution_multiple: int = 8
    depth_rounding: str = "stage"
    measure: Callable[[ModelSpec, int], float] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"constraint={self.constraint!r} is unknown; allowed: {', '.join(CONSTRAINTS)}")
        if self.cost not in FAMILY_COSTS + DEVICE_COSTS:
            raise ValueError(f"cost={self.cost!r} is unknown; allowed: {', '.join(FAMILY_COSTS + DEVICE_COSTS)}")
        if self.cost in DEVICE_COSTS and self.measure is None:
            raise ValueError(f"cost={self.cost!r} is measured on a device, but no device measurer was given; allowed "
                             f"without one: {', '.join(FAMILY_COSTS)}")
        if self.base_resolution < MIN_RESOLUTION:
            raise ValueError(f"base_resolution={self.base_resolution} is too small; allowed: >= {MIN_RESOLUTION}")

    def __getstate__(self):  # the measurer talks to Ray on the driver: never shipped with a pickled space
        return {**self.__dict__, "measure": None}

    # ------------------------------------------------------------ costs
    def shape_cost(self, spec: ModelSpec, resolution: int):
        """Params, MACs and activations of ``spec`` at ``resolution`` (counted on the meta device)."""
        from .model import spec_cost  # torch: only when something is built (the checks are plain Python)

        return spec_cost(spec, resolution, self.num_classes, self.in_channels)

    def cost_of(self, spec: ModelSpec, resolution: int) -> float:
        if self.cost in DEVICE_COSTS:
            return self.measure(spec, resolution)
        return getattr(self.shape_cost(spec, resolution), self.cost)

    @cached_property
    def base_shape(self):
        return self.shape_cost(self.baseline, self.base_resolution)

    @cached_property
    def base_cost(self) -> float:
        return self.cost_of(self.baseline, self.base_resolution)

    def ratio(self, spec: ModelSpec, resolution: int) -> float:
        """``spec``'s cost at ``resolution`` over the baseline's at the base resolution."""
        return self.cost_of(spec, resolution) / self.base_cost

    # ------------------------------------------------------------ the rule
    def build(self, depth: float, width: float) -> ModelSpec:
        """The baseline with depth and width multiplied, as the builder rounds them."""
        return scale(self.baseline, depth, width, self.depth_rounding)

    def spec(self, alpha: float, beta: float, phi: float = 1.0) -> ModelSpec:
        """The network at φ: depth α^φ and width β^φ."""
        return self.build(_power(alpha, phi), _power(beta, phi))

    def nominal_resolution(self, multiplier: float) -> int:
        """round(base · multiplier) to ``resolution_multiple``."""
        return round_resolution(self.base_resolution * multiplier, self.resolution_multiple)

    def solve_in_range(self, spec: ModelSpec, phi: float) -> Solved:
        """The resolution within ``gamma_range``^φ of the base whose cost ratio is closest to target^φ."""
        lo, hi = sorted(max(MIN_RESOLUTION, self.nominal_resolution(g**phi)) for g in self.gamma_range)
        return solve_resolution(lambda r: self.ratio(spec, r), self.target**phi, lo, hi, self.resolution_multiple)

    def off(self, ratio: float, phi: float) -> float:
        """How far a cost ratio is from target^φ, relative."""
        return abs(ratio / self.target**phi - 1)

    def candidate(self, alpha: float, beta: float, gamma: float | None = None, phi: float = 1.0) -> dict:
        """A search candidate's identity row (coefficients, spec, resolution, costs, feasibility); measured: γ is
        the effective one, (resolution / base)^(1/φ)."""
        spec, goal = self.spec(alpha, beta, phi), self.target**phi
        flag, reason = "ok", ""
        if self.constraint == "measured":
            s = self.solve_in_range(spec, phi)
            res, ratio = s.resolution, s.ratio
            if self.off(ratio, phi) > self.tolerance:  # within it: as close as the range and the pixel grid allow
                flag = "infeasible"
                reason = s.reason or (f"the closest the pixel grid allows is {ratio:.2f}x at {res} px, "
                                      f"{100 * self.off(ratio, phi):.0f} % off the target {goal:.3g}x")
                reason += f" (search.cost_tolerance={self.tolerance:g})"
            gamma = round((res / self.base_resolution) ** (1 / phi), 4)
        else:
            if gamma is None:
                raise ValueError("the nominal constraint builds a candidate at round(base*gamma^phi): "
                                 "gamma is required")
            res = self.nominal_resolution(gamma**phi)
            ratio = self.ratio(spec, res)
            flag = "ok" if self.off(ratio, phi) <= self.tolerance else "off"
        c = self.shape_cost(spec, res)
        return {
            "candidate": candidate_id(alpha, beta, gamma), "alpha": alpha, "beta": beta, "gamma": gamma,
            "product": round(alpha * beta**2 * gamma**2, 4), "resolution": res, "blocks": spec.num_blocks,
            "cost": self.cost, "cost_ratio": round(ratio, 4), "cost_target": round(goal, 4), "cost_flag": flag,
            "reason": reason, "params": c.params, "macs": c.macs, "activations": c.activations, "spec": spec.to_dict(),
        }

    def member_resolution(self, spec: ModelSpec, coeffs: Coefficients, phi: float, where: str) -> int:
        """A family member's resolution: nominal round(base·γ^φ); measured, the candidate's rule (within the γ
        range, so that B1 *is* the searched candidate) when it holds there, else solved at any resolution."""
        nominal = self.nominal_resolution(_power(coeffs.gamma, phi))
        if self.constraint == "nominal" or phi == 0:
            return nominal
        held = self.held_in_range(spec, phi)
        if held is not None:
            return held
        goal = self.target**phi
        low = max(MIN_RESOLUTION, self.resolution_multiple)
        high = max(low, nominal)
        while self.ratio(spec, high) < goal:
            if high > MAX_RESOLUTION:
                raise ValueError(f"{where}: no resolution up to {MAX_RESOLUTION} px reaches cost {goal:.3g}x; "
                                 "allowed: coefficients whose depth and width leave room for it")
            high *= 2
        s = solve_resolution(lambda r: self.ratio(spec, r), goal, low, high, self.resolution_multiple)
        if not s.feasible:
            raise ValueError(f"{where}: {s.reason}; allowed: a smaller |phi| or constraint=nominal")
        return s.resolution

    def member(self, coeffs: Coefficients, phi: float, timed: bool = True) -> FamilyMember:
        """Member φ of ``coeffs``' family (the formula): its spec, resolution, dropout and every cost. ``timed=False``:
        a device cost is not measured for it (a member that is never trained: solved on MACs, its ``cost`` says so)."""
        where = f"phi={phi:g} ({member_name(phi)})"
        check_phi(phi, where, self.baseline, self.base_resolution, (coeffs.alpha, coeffs.beta, coeffs.gamma))
        spec = self.spec(coeffs.alpha, coeffs.beta, phi)
        scaler = self
        if self.cost in DEVICE_COSTS and not timed:
            scaler = replace(self, cost="macs", measure=None)
        elif self.cost in DEVICE_COSTS and self.constraint == "measured" and phi != 0 and \
                self.held_in_range(spec, phi) is None:
            # timings are noisy and need not grow with the resolution: beyond the range the bisection cannot be
            # trusted, so such a member is solved on MACs, and its ``cost`` says so (B1 always holds: the
            # candidate's own rule)
            log.warning("family member %s: its %s cannot be held at %.3gx within the γ range (measured timings, "
                        "within search.cost_tolerance=%g); solved on MACs instead", member_name(phi), self.cost,
                        self.target**phi, self.tolerance)
            scaler = replace(self, cost="macs", measure=None)
        res = scaler.member_resolution(spec, coeffs, phi, where)
        ideal = (self.target if self.constraint == "measured" else coeffs.product) ** phi
        d, w, _ = coeffs.multipliers(phi)
        return scaler._member(member_name(phi), phi, d, w, spec, res, dropout_for_phi(phi), ideal, None,
                              self.constraint)

    def held_in_range(self, spec: ModelSpec, phi: float) -> int | None:
        """The candidate's rule applied to a member: its resolution within the γ range when the cost holds there
        (within a pixel step or the tolerance), else None."""
        if self.gamma_range is None:
            return None
        s = self.solve_in_range(spec, phi)
        return s.resolution if s.feasible or self.off(s.ratio, phi) <= self.tolerance else None

    def official(self, coeffs: Coefficients, phi: float) -> FamilyMember:
        """The published B0…B7 row ``phi`` at this base resolution, with ``phi_fit`` (the φ of ``coeffs`` that best
        fits it)."""
        if not float(phi).is_integer() or f"b{int(phi)}" not in OFFICIAL:
            raise ValueError(f"phi={phi} has no official variant; allowed: 0..7 in mode=official")
        v, b0 = OFFICIAL[f"b{int(phi)}"], OFFICIAL["b0"]
        spec = scale(self.baseline, v.depth, v.width)
        phi_fit = round(fit_phi(v.depth, v.width, v.resolution / b0.resolution, coeffs), 3)
        res = round(self.base_resolution * v.resolution / b0.resolution)
        ideal = (self.target if self.constraint == "measured" else coeffs.product) ** phi_fit
        return self._member(f"b{int(phi)}", phi, v.depth, v.width, spec, res, v.dropout, ideal, phi_fit, "official")

    def _member(self, name, phi, d, w, spec, res, dropout, ideal, phi_fit, constraint) -> FamilyMember:
        spec = replace(spec, dropout=dropout)
        c, base = self.shape_cost(spec, res), self.base_shape
        return FamilyMember(
            name=name, phi=float(phi), depth_mult=round(d, 4), width_mult=round(w, 4), resolution=int(res),
            dropout=dropout, params=c.params, macs=c.macs, activations=c.activations,
            macs_ratio=round(c.macs / base.macs, 4), activations_ratio=round(c.activations / base.activations, 4),
            ideal_ratio=round(ideal, 4), spec=spec.to_dict(), phi_fit=phi_fit, constraint=constraint,
            cost=self.cost, cost_ratio=round(self.ratio(spec, res), 4))

    def family(self, coeffs: Coefficients = PAPER, phis=range(8), mode: str = "formula",
               timed_up_to: float | None = None) -> list[FamilyMember]:
        """The scaled family: :meth:`member` for every φ (``mode="formula"``) or the published table's rows
        (``mode="official"``, ``phis`` index it). ``timed_up_to``: with a device cost, only members up to this φ
        (those that train) are solved on measured timings; timing a B7 on a CPU takes minutes per point of the
        bisection, and a member that never trains needs no timing to be emitted."""
        if mode not in ("formula", "official"):
            raise ValueError(f"mode={mode!r} is unknown; allowed: formula, official")
        phis = list(phis)
        if not phis:
            raise ValueError("phis=[] is empty; allowed: a non-empty list of compound coefficients, e.g. [0, 1, 2, 3]")
        if mode == "official":
            return [self.official(coeffs, phi) for phi in phis]
        return [self.member(coeffs, phi, timed_up_to is None or phi <= timed_up_to) for phi in phis]


def family(coeffs: Coefficients = PAPER, *, phis=range(8), mode: str = "formula", **scaler) -> list[FamilyMember]:
    """The family of ``coeffs`` (:meth:`Scaler.family`); ``scaler``: the :class:`Scaler`'s fields (base_resolution,
    constraint, cost, ...; a cost measured on a device needs its ``measure``)."""
    return Scaler(**scaler).family(coeffs, phis, mode)


def family_markdown(members: list[FamilyMember], title: str | None = None) -> str:
    """A table a person reads (every cost of every member)."""
    from ..decide.results import md_table  # (scipy through stats: not on the pre-checks' path)

    has_fit = any(m.phi_fit is not None for m in members)
    head = ["name", "φ"] + (["φ fit"] if has_fit else []) + [
        "depth", "width", "resolution", "dropout", "blocks", "params (M)", "MACs (G)", "MACs / B0", "activations (M)",
        "act. / B0", "target"]
    rows = []
    for m in members:
        blocks = sum(s["repeats"] for s in m.spec["stages"])
        row = ([m.name + (" (below B0)" if m.phi < 0 else ""), f"{m.phi:g}"]
               + ([f"{m.phi_fit:.2f}"] if has_fit else [])) + [
            f"{m.depth_mult:.3f}", f"{m.width_mult:.3f}", str(m.resolution), f"{m.dropout:.1f}", str(blocks),
            f"{m.params / 1e6:.3f}", f"{m.macs / 1e9:.4f}", f"{m.macs_ratio:.2f}", f"{m.activations / 1e6:.3f}",
            f"{m.activations_ratio:.2f}", f"{m.ideal_ratio:.2f}"]
        rows.append(row)
    return "\n".join(([f"## {title}", ""] if title else []) + [md_table(head, rows)]) + "\n"


def load_family(path) -> list[FamilyMember]:
    """The members of a ``family.json`` written by the generator or a search, each with its exact spec
    (``build_model(spec=m.model_spec, num_classes=...)`` rebuilds it)."""
    import json
    from pathlib import Path

    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: cannot read a family.json ({str(e).splitlines()[0]}); allowed: a family.json "
                         "written by scalesearch-generate or a search") from None
    entries = raw.get("members") if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{p}: no members; allowed: a family.json written by scalesearch-generate or a search")
    names = {f for f in FamilyMember.__dataclass_fields__}
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "spec" not in e:
            raise ValueError(f"{p}: member {i} has no 'spec'; allowed: a family.json of scalesearch >= 0.2")
        try:
            m = FamilyMember(**{k: v for k, v in e.items() if k in names})
        except TypeError as err:
            raise ValueError(f"{p}: member {i} is incomplete ({err}); "
                             "allowed: a family.json of scalesearch >= 0.2") from None
        m.model_spec  # noqa: B018 — validates the spec with a one-line error
        out.append(m)
    return out
