"""Compound scaling: coefficients, the constraint, and the B0…B7 generator."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .spec import B0, ModelSpec

__all__ = [
    "Coefficients",
    "OfficialVariant",
    "OFFICIAL",
    "PAPER",
    "official",
    "dropout_for_phi",
    "round_resolution",
    "FamilyMember",
    "family",
]


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
                raise ValueError(f"{k}={v} is below 1; allowed: {k} >= 1 (scaling never shrinks B0)")

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
        """(depth, width, resolution) multipliers at compound coefficient ``phi``."""
        if phi < 0:
            raise ValueError(f"phi={phi} is negative; allowed: phi >= 0")
        return self.alpha**phi, self.beta**phi, self.gamma**phi


PAPER = Coefficients(1.2, 1.1, 1.15)


@dataclass(frozen=True)
class OfficialVariant:
    width: float
    depth: float
    resolution: int
    dropout: float


# The published table (Tan & Le 2019; TF reference efficientnet_builder.py).
OFFICIAL: dict[str, OfficialVariant] = {
    "b0": OfficialVariant(1.0, 1.0, 224, 0.2),
    "b1": OfficialVariant(1.0, 1.1, 240, 0.2),
    "b2": OfficialVariant(1.1, 1.2, 260, 0.3),
    "b3": OfficialVariant(1.2, 1.4, 300, 0.3),
    "b4": OfficialVariant(1.4, 1.8, 380, 0.4),
    "b5": OfficialVariant(1.6, 2.2, 456, 0.4),
    "b6": OfficialVariant(1.8, 2.6, 528, 0.5),
    "b7": OfficialVariant(2.0, 3.1, 600, 0.5),
}


def official(name: str) -> OfficialVariant:
    key = str(name).lower().removeprefix("efficientnet_").removeprefix("efficientnet-")
    if key not in OFFICIAL:
        raise ValueError(f"unknown official variant {name!r}; allowed: {', '.join(OFFICIAL)}")
    return OFFICIAL[key]


def dropout_for_phi(phi: float) -> float:
    """Dropout as the official table grows it: 0.2 at φ∈[0,2), +0.1 every 2 units, capped at 0.5."""
    return round(min(0.5, 0.2 + 0.1 * math.floor(phi / 2)), 3)


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
    macs_ratio: float
    ideal_ratio: float
    phi_fit: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def family(
    coeffs: Coefficients = PAPER,
    *,
    base_resolution: int = 224,
    phis=range(8),
    mode: str = "formula",
    num_classes: int = 1000,
    baseline: ModelSpec = B0,
    resolution_multiple: int = 8,
) -> list[FamilyMember]:
    """Emit the scaled family with measured params and MACs.

    ``mode="formula"``: member φ has depth α^φ, width β^φ, resolution
    round(base·γ^φ) to ``resolution_multiple``; dropout from :func:`dropout_for_phi`.
    ``mode="official"``: the published B0…B7 table (``phis`` index it), with
    ``phi_fit`` — the φ of ``coeffs`` that best fits each member — beside it.
    """
    from .cost import model_cost

    if mode not in ("formula", "official"):
        raise ValueError(f"mode={mode!r} is unknown; allowed: formula, official")
    if base_resolution < 16:
        raise ValueError(f"base_resolution={base_resolution} is too small; allowed: >= 16")
    members = []
    base_macs = None
    for phi in phis:
        if phi < 0:
            raise ValueError(f"phi={phi} is negative; allowed: phi >= 0")
        if mode == "formula":
            d, w, r = coeffs.multipliers(phi)
            res = round_resolution(base_resolution * r, resolution_multiple)
            dropout, phi_fit = dropout_for_phi(phi), None
            name = f"b{phi:g}" if float(phi).is_integer() else f"phi{phi:g}"
        else:
            if not float(phi).is_integer() or f"b{int(phi)}" not in OFFICIAL:
                raise ValueError(f"phi={phi} has no official variant; allowed: 0..7 in mode=official")
            name = f"b{int(phi)}"
            v = OFFICIAL[name]
            d, w, dropout = v.depth, v.width, v.dropout
            res = round(base_resolution * v.resolution / OFFICIAL["b0"].resolution)
            phi_fit = round(fit_phi(d, w, v.resolution / OFFICIAL["b0"].resolution, coeffs), 3)
        cost = model_cost(res, spec=baseline, depth=d, width=w, dropout=dropout, num_classes=num_classes)
        if base_macs is None:
            base_macs = model_cost(base_resolution, spec=baseline, num_classes=num_classes).macs
        members.append(
            FamilyMember(
                name=name,
                phi=float(phi),
                depth_mult=round(d, 4),
                width_mult=round(w, 4),
                resolution=int(res),
                dropout=dropout,
                params=cost.params,
                macs=cost.macs,
                macs_ratio=round(cost.macs / base_macs, 4),
                ideal_ratio=round(coeffs.product ** (phi_fit if phi_fit is not None else phi), 4),
                phi_fit=phi_fit,
            )
        )
    return members


def family_markdown(members: list[FamilyMember], title: str | None = None) -> str:
    """A table a person reads."""
    has_fit = any(m.phi_fit is not None for m in members)
    head = ["name", "φ"] + (["φ fit"] if has_fit else []) + [
        "depth", "width", "resolution", "dropout", "params (M)", "MACs (G)", "MACs / B0", "ideal"]
    rows = []
    for m in members:
        row = [m.name, f"{m.phi:g}"] + ([f"{m.phi_fit:.2f}"] if has_fit else []) + [
            f"{m.depth_mult:.3f}", f"{m.width_mult:.3f}", str(m.resolution), f"{m.dropout:.1f}",
            f"{m.params / 1e6:.3f}", f"{m.macs / 1e9:.4f}", f"{m.macs_ratio:.2f}", f"{m.ideal_ratio:.2f}"]
        rows.append(row)
    lines = ([f"## {title}", ""] if title else []) + [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ] + ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
