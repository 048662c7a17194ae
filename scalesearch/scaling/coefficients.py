"""The compound-scaling coefficients and what a member φ may be: (α, β, γ) with :data:`PAPER`, the dropout and
resolution rounding of a member, φ fitted to multipliers, the resolution solved for a target cost on whole pixels
(:func:`solve_resolution`), the limits a buildable member keeps and the φ checks made before anything is built,
and the names of members and candidates. Plain Python; :mod:`scalesearch.scaling.scaler` builds the members.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .spec import ModelSpec

__all__ = ["Coefficients", "PAPER", "MIN_RESOLUTION", "MAX_RESOLUTION", "MAX_BLOCKS", "MAX_CHANNELS", "power",
           "dropout_for_phi", "round_resolution", "fit_phi", "Solved", "solve_resolution", "check_member_dims",
           "phi_range", "check_phi", "check_family_phis", "member_name", "candidate_id"]

MIN_RESOLUTION = 16  # below this the five stride-2 stages leave almost nothing
# the largest member that is built at all (a larger φ is refused before anything starts): its input size is what
# the resolution solver tries at most; 2^14 blocks is 1024x B0's 16; a 1x1 conv between two layers of 2^16
# channels holds 2^32 weights (16 GiB in fp32), beyond what one accelerator trains
MAX_RESOLUTION = 8192
MAX_BLOCKS = 2**14
MAX_CHANNELS = 2**16


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
        return power(self.alpha, phi), power(self.beta, phi), power(self.gamma, phi)


def power(c: float, phi: float) -> float:
    """``c**phi``, inf where the power overflows."""
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
    d, w, r = (power(c, phi) for c in coeffs)
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


def candidate_id(alpha: float, beta: float, gamma: float | None = None) -> str:
    """A candidate's stable name: its coefficients (γ is the effective one in the measured constraint)."""
    return f"a{alpha:g}-b{beta:g}" + ("" if gamma is None else f"-g{gamma:g}")
