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

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable

from .spec import B0, OFFICIAL, ModelSpec, scale

__all__ = ["Coefficients", "PAPER", "CONSTRAINTS", "MIN_RESOLUTION", "dropout_for_phi", "round_resolution", "fit_phi",
           "Solved", "solve_resolution", "check_member_dims", "check_family_phis", "member_name", "FamilyMember", "family",
           "family_markdown", "load_family"]

CONSTRAINTS = ("measured", "nominal")
MIN_RESOLUTION = 16  # below this the five stride-2 stages leave almost nothing
FAMILY_COSTS = ("macs", "activations")  # costs the generator can hold members at without a device


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
        """(depth, width, resolution) multipliers at compound coefficient ``phi`` (negative: below B0)."""
        return self.alpha**phi, self.beta**phi, self.gamma**phi


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


def check_member_dims(baseline: ModelSpec, depth: float, width: float, resolution: float, where: str) -> None:
    """A member must not scale a dimension below its minimum (where rounding could not shrink it further,
    so the member would not be what φ says): depth keeps the deepest stage ≥ 1 block, width keeps the
    narrowest stage ≥ 8 channels, resolution ≥ ``MIN_RESOLUTION``."""
    deepest = max(s.repeats for s in baseline.stages)
    narrowest = min(s.out_channels for s in baseline.stages)
    if depth * deepest < 1:
        raise ValueError(f"{where}: depth multiplier {depth:.3f} leaves the deepest stage ({deepest} blocks) below one "
                         f"block; allowed: depth >= {1 / deepest:.3f} (a smaller |phi|)")
    if width * narrowest < 8:
        raise ValueError(f"{where}: width multiplier {width:.3f} takes the narrowest stage ({narrowest} channels) below "
                         f"8; allowed: width >= {8 / narrowest:.3f} (a smaller |phi|)")
    if resolution < MIN_RESOLUTION:
        raise ValueError(f"{where}: resolution {resolution:.1f} px is below {MIN_RESOLUTION}; allowed: >= "
                         f"{MIN_RESOLUTION} px (a smaller |phi| or a larger base resolution)")


def check_family_phis(phis, baseline: ModelSpec, base_resolution: int, highs: tuple[float, float, float],
                      key: str = "family_phis") -> None:
    """Negative φ members must keep every dimension above its minimum for any coefficients up to ``highs``
    (the space's α, β, γ upper bounds): checked before a search, when the coefficients are not known yet."""
    a, b, g = highs
    for phi in phis:
        if phi < 0:
            check_member_dims(baseline, a**phi, b**phi, base_resolution * g**phi,
                              f"{key} contains {phi:g} (with alpha up to {a:g}, beta up to {b:g}, gamma up to {g:g})")


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

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def model_spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self.spec, where=f"family member {self.name}")


def family(
    coeffs: Coefficients = PAPER,
    *,
    base_resolution: int = 224,
    phis=range(8),
    mode: str = "formula",
    num_classes: int = 1000,
    baseline: ModelSpec = B0,
    resolution_multiple: int = 8,
    constraint: str = "nominal",
    target: float = 2.0,
    cost: str = "macs",
    depth_rounding: str = "stage",
    in_channels: int = 3,
    gamma_range: tuple[float, float] | None = None,
    tolerance: float = 0.1,
) -> list[FamilyMember]:
    """Emit the scaled family with each member's full spec and measured params, MACs and activations.

    ``mode="formula"``: member φ has depth α^φ and width β^φ; its resolution is round(base·γ^φ) to
    ``resolution_multiple`` (``constraint="nominal"``) or solved so that its measured ``cost`` ratio to
    the baseline is target^φ (``constraint="measured"``; within ``gamma_range``^φ of the base resolution when
    reachable there — the search passes its space's γ range); dropout from :func:`dropout_for_phi`.
    ``mode="official"``: the published B0…B7 table (``phis`` index it), with ``phi_fit`` — the φ of
    ``coeffs`` that best fits each member — beside it.
    """
    from .model import spec_cost  # torch: only when a family is built (the checks above it are plain Python)

    if mode not in ("formula", "official"):
        raise ValueError(f"mode={mode!r} is unknown; allowed: formula, official")
    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint={constraint!r} is unknown; allowed: {', '.join(CONSTRAINTS)}")
    if cost not in FAMILY_COSTS:
        raise ValueError(f"family cost={cost!r} cannot be measured without a device; allowed: {', '.join(FAMILY_COSTS)}")
    if base_resolution < MIN_RESOLUTION:
        raise ValueError(f"base_resolution={base_resolution} is too small; allowed: >= {MIN_RESOLUTION}")
    phis = list(phis)
    if not phis:
        raise ValueError("phis=[] is empty; allowed: a non-empty list of compound coefficients, e.g. [0, 1, 2, 3]")
    base = spec_cost(baseline, base_resolution, num_classes, in_channels)
    members = []
    for phi in phis:
        if mode == "formula":
            d, w, r = coeffs.multipliers(phi)
            where = f"phi={phi:g} ({member_name(phi)})"
            check_member_dims(baseline, d, w, base_resolution * r, where)
            spec = scale(baseline, d, w, depth_rounding)
            res = round_resolution(base_resolution * r, resolution_multiple)
            if constraint == "measured" and phi != 0:
                res = _solve_member(spec, base, phi, target, cost, base_resolution * r, resolution_multiple,
                                    num_classes, in_channels, where, base_resolution, gamma_range, tolerance)
            dropout, phi_fit, name = dropout_for_phi(phi), None, member_name(phi)
        else:
            if not float(phi).is_integer() or f"b{int(phi)}" not in OFFICIAL:
                raise ValueError(f"phi={phi} has no official variant; allowed: 0..7 in mode=official")
            name = f"b{int(phi)}"
            v = OFFICIAL[name]
            d, w, dropout = v.depth, v.width, v.dropout
            spec = scale(baseline, d, w)
            res = round(base_resolution * v.resolution / OFFICIAL["b0"].resolution)
            phi_fit = round(fit_phi(d, w, v.resolution / OFFICIAL["b0"].resolution, coeffs), 3)
        spec = replace(spec, dropout=dropout)
        c = spec_cost(spec, res, num_classes, in_channels)
        members.append(FamilyMember(
            name=name, phi=float(phi), depth_mult=round(d, 4), width_mult=round(w, 4), resolution=int(res),
            dropout=dropout, params=c.params, macs=c.macs, activations=c.activations,
            macs_ratio=round(c.macs / base.macs, 4), activations_ratio=round(c.activations / base.activations, 4),
            ideal_ratio=round((target if constraint == "measured" else coeffs.product) ** (phi_fit if phi_fit is not None
                                                                                          else phi), 4),
            spec=spec.to_dict(), phi_fit=phi_fit, constraint=constraint if mode == "formula" else "official",
        ))
    return members


def _solve_member(spec, base, phi, target, cost, nominal_res, multiple, num_classes, in_channels, where,
                  base_resolution: int, gamma_range: tuple[float, float] | None, tolerance: float) -> int:
    """The member's resolution at cost target^φ (the measured constraint): within the search space's γ range
    scaled to φ (so that B1 is the searched candidate itself) when it is reachable there, else anywhere."""
    from .model import spec_cost

    goal = target**phi
    ratio_at = lambda r: getattr(spec_cost(spec, r, num_classes, in_channels), cost) / getattr(base, cost)  # noqa: E731
    if gamma_range is not None:
        lo, hi = sorted(round_resolution(base_resolution * g**phi, multiple) for g in gamma_range)
        s = solve_resolution(ratio_at, goal, max(MIN_RESOLUTION, lo), max(MIN_RESOLUTION, hi), multiple)
        if s.feasible or abs(s.ratio / goal - 1) <= tolerance:  # the planner's rule: B1 is the searched candidate
            return s.resolution
    low = max(MIN_RESOLUTION, multiple)
    high = max(low, round_resolution(nominal_res, multiple))
    while ratio_at(high) < goal:
        if high > 8192:
            raise ValueError(f"{where}: no resolution up to 8192 px reaches cost {goal:.3g}x; allowed: coefficients "
                             "whose depth and width leave room for it")
        high *= 2
    s = solve_resolution(ratio_at, goal, low, high, multiple)
    if not s.feasible:
        raise ValueError(f"{where}: {s.reason}; allowed: a smaller |phi| or constraint=nominal")
    return s.resolution


def family_markdown(members: list[FamilyMember], title: str | None = None) -> str:
    """A table a person reads (every cost of every member)."""
    has_fit = any(m.phi_fit is not None for m in members)
    head = ["name", "φ"] + (["φ fit"] if has_fit else []) + [
        "depth", "width", "resolution", "dropout", "blocks", "params (M)", "MACs (G)", "MACs / B0", "activations (M)",
        "act. / B0", "target"]
    rows = []
    for m in members:
        blocks = sum(s["repeats"] for s in m.spec["stages"])
        row = [m.name + (" (below B0)" if m.phi < 0 else ""), f"{m.phi:g}"] + ([f"{m.phi_fit:.2f}"] if has_fit else []) + [
            f"{m.depth_mult:.3f}", f"{m.width_mult:.3f}", str(m.resolution), f"{m.dropout:.1f}", str(blocks),
            f"{m.params / 1e6:.3f}", f"{m.macs / 1e9:.4f}", f"{m.macs_ratio:.2f}", f"{m.activations / 1e6:.3f}",
            f"{m.activations_ratio:.2f}", f"{m.ideal_ratio:.2f}"]
        rows.append(row)
    lines = ([f"## {title}", ""] if title else []) + [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ] + ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


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
            raise ValueError(f"{p}: member {i} is incomplete ({err}); allowed: a family.json of scalesearch >= 0.2") from None
        m.model_spec  # noqa: B018 — validates the spec with a one-line error
        out.append(m)
    return out
