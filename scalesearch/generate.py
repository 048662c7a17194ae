"""The generator job: coefficients → family.json + family.md (+ the table on stdout)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .io import atomic_write_json, atomic_write_text, read_json
from .scaling import Coefficients, family, family_markdown
from .spec import B0, ModelSpec

log = logging.getLogger("scalesearch")


def load_baseline(path: str | None) -> ModelSpec:
    """B0, or a baseline spec written by ``scalesearch-nas`` (``baseline.json``)."""
    if not path:
        return B0
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"model.baseline={path!r} does not exist; allowed: a baseline.json written by scalesearch-nas")
    data = read_json(p)
    try:
        return ModelSpec.from_dict(data.get("spec", data))
    except TypeError as e:
        raise ValueError(f"model.baseline={path!r} is not a valid ModelSpec: {e}") from None


def write_family(members, out_dir: Path, title: str, extra: dict | None = None) -> str:
    """Write family.json (list of entries) and family.md; return the markdown."""
    atomic_write_json(out_dir / "family.json", [m.to_dict() for m in members])
    md = family_markdown(members, title=title)
    if extra:
        md += "\n" + "\n".join(f"- {k}: {v}" for k, v in extra.items()) + "\n"
    atomic_write_text(out_dir / "family.md", md)
    return md


def run_generate(cfg, out_dir: Path) -> list:
    coeffs = Coefficients(cfg.alpha, cfg.beta, cfg.gamma)
    if cfg.mode == "formula" and not coeffs.satisfies(cfg.target, cfg.tolerance):
        if not cfg.allow_off_constraint:
            coeffs.check(cfg.target, cfg.tolerance)
        warnings.warn(
            f"alpha*beta^2*gamma^2 = {coeffs.product:.4f} is outside {cfg.target} ± {cfg.tolerance} "
            "(allow_off_constraint=true): each φ step will not multiply MACs by the target",
            stacklevel=1,
        )
    for phi in cfg.phis:
        if phi < 0:
            raise ValueError(f"phis contains {phi}; allowed: phi >= 0")
    if cfg.num_classes < 1:
        raise ValueError(f"num_classes={cfg.num_classes}; allowed: >= 1")
    members = family(
        coeffs,
        base_resolution=cfg.base_resolution,
        phis=[int(p) if float(p).is_integer() else float(p) for p in cfg.phis],
        mode=cfg.mode,
        num_classes=cfg.num_classes,
        baseline=load_baseline(cfg.baseline),
        resolution_multiple=cfg.resolution_multiple,
    )
    title = (
        f"EfficientNet family, mode={cfg.mode}, alpha={coeffs.alpha}, beta={coeffs.beta}, gamma={coeffs.gamma} "
        f"(product {coeffs.product:.3f}), base resolution {cfg.base_resolution}"
    )
    md = write_family(members, out_dir, title)
    print(md, flush=True)
    log.info("wrote %s and %s", out_dir / "family.json", out_dir / "family.md")
    return members
