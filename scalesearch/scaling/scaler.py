"""Compound scaling: the family generator, the one owner of how a network is built at a given cost.

Two ways to hold a member at its cost (``constraint``):

* ``nominal`` (the paper): member φ has depth α^φ, width β^φ and resolution round(base·γ^φ); its
  cost is whatever the rounded network measures (the nominal product (α·β²·γ²)^φ is a promise).
* ``measured``: depth α^φ and width β^φ as the builder rounds them, and the resolution solved on
  whole pixels (multiples of ``resolution_multiple``) so that the *measured* cost of the built
  member over the baseline's at the base resolution is as close to target^φ as the pixel grid
  allows (:func:`~scalesearch.scaling.coefficients.solve_resolution`). The effective γ = (resolution / base)^(1/φ)
  is recorded.

The coefficients, the limits and the φ checks are in :mod:`scalesearch.scaling.coefficients`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Callable

from .coefficients import (MAX_RESOLUTION, MIN_RESOLUTION, PAPER, Coefficients, Solved, candidate_id, check_phi,
                           dropout_for_phi, fit_phi, member_name, power, round_resolution, solve_resolution)
from .spec import B0, OFFICIAL, ModelSpec, scale

__all__ = ["CONSTRAINTS", "FAMILY_COSTS", "DEVICE_COSTS", "FamilyMember", "Scaler", "family", "family_markdown",
           "load_family"]

log = logging.getLogger("scalesearch")
CONSTRAINTS = ("measured", "nominal")
FAMILY_COSTS = ("macs", "activations")  # costs a member is held at without a device (counted on the meta device)
DEVICE_COSTS = ("latency", "train_step")  # measured on a device (ms), through a measurer


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
        return self.build(power(alpha, phi), power(beta, phi))

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
        nominal = self.nominal_resolution(power(coeffs.gamma, phi))
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
