"""The generator job: coefficients → family.json + family.md + one spec file per member (specs/).

Every member carries its full :class:`~scalesearch.scaling.spec.ModelSpec`, so ``load_family(path)`` and
``build_model(spec=...)`` rebuild the exact network, and ``specs/<name>.json`` hands it to another
code base (torchvision's ``MBConvConfig`` rows, timm's ``arch_def``; README "The generator").
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from ..config import GenerateConfig
from ..plan.preflight import check_generate
from ..io import atomic_write_json, atomic_write_text
from ..scaling.model import timm_arch_def
from ..run.rundir import GENERATE, claim
from ..scaling.coefficients import Coefficients
from ..scaling.scaler import family, family_markdown
from ..scaling.spec import load_baseline  # noqa: F401  (re-exported: generate.load_baseline)

log = logging.getLogger("scalesearch")

__all__ = ["load_baseline", "write_family", "member_export", "run_generate"]


def member_export(m, num_classes: int) -> dict:
    """One member as another code base needs it: the spec, its input size, and the torchvision / timm forms."""
    spec = m.model_spec
    tv = None
    if all(st.se_ratio == 0.25 for st in spec.stages):
        tv = [[st.expand_ratio, st.kernel, st.stride, cin, st.out_channels, st.repeats]
              for st, cin in zip(spec.stages, [spec.stem_channels] + [s.out_channels for s in spec.stages])]
    return {
        "name": m.name, "phi": m.phi, "resolution": m.resolution, "num_classes": num_classes, "params": m.params,
        "macs": m.macs, "spec": m.spec,
        "torchvision": None if tv is None else {
            "inverted_residual_setting": "MBConvConfig(expand_ratio, kernel, stride, input_channels, out_channels, "
                                         "num_layers) per row, width_mult=depth_mult=1",
            "rows": tv, "dropout": spec.dropout, "last_channel": spec.head_channels},
        "timm": {"arch_def": timm_arch_def(spec), "stem_size": spec.stem_channels, "num_features": spec.head_channels,
                 "drop_rate": spec.dropout},
    }


def write_family(members, out_dir: Path, title: str, num_classes: int = 1000, extra: dict | None = None) -> str:
    """Write family.json (settings + members with their specs), family.md and specs/<name>.json; return the
    markdown."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "family.json", {**(extra or {}), "num_classes": num_classes,
                                                "members": [m.to_dict() for m in members]})
    for m in members:
        atomic_write_json(out_dir / "specs" / f"{m.name}.json", member_export(m, num_classes))
    md = family_markdown(members, title=title)
    atomic_write_text(out_dir / "family.md", md)
    return md


def run_generate(cfg: GenerateConfig, out_dir: Path) -> list:
    """The ``scalesearch-generate`` job: every value checked, then the family written into ``out_dir`` (a new
    directory or an earlier generator's; another app's run is refused, as is a directory in use)."""
    coeffs, baseline = _checked(cfg)
    with claim(out_dir, GENERATE) as out_dir:
        log.info("emitting %d members (%s, constraint %s)", len(cfg.phis), cfg.mode, cfg.constraint)
        members = family(
            coeffs, base_resolution=cfg.base_resolution, mode=cfg.mode, num_classes=cfg.num_classes,
            phis=[int(p) if float(p).is_integer() else float(p) for p in cfg.phis], baseline=baseline,
            resolution_multiple=cfg.resolution_multiple, constraint=cfg.constraint, target=cfg.target,
            depth_rounding=cfg.depth_rounding,
        )
        title = (f"EfficientNet family, mode={cfg.mode}, constraint={cfg.constraint}, alpha={coeffs.alpha}, "
                 f"beta={coeffs.beta}, gamma={coeffs.gamma} (product {coeffs.product:.3f}), base resolution "
                 f"{cfg.base_resolution}")
        md = write_family(members, out_dir, title, cfg.num_classes,
                          extra={"coefficients": [coeffs.alpha, coeffs.beta, coeffs.gamma], "mode": cfg.mode,
                                 "constraint": cfg.constraint, "base_resolution": cfg.base_resolution,
                                 "resolution_multiple": cfg.resolution_multiple, "depth_rounding": cfg.depth_rounding,
                                 "target": cfg.target})
        print(md, flush=True)
        log.info("wrote %s, %s and %s", out_dir / "family.json", out_dir / "family.md", out_dir / "specs")
        return members


def _checked(cfg: GenerateConfig) -> tuple:
    """(coefficients, baseline spec) once every value is checked (one-line ValueErrors; nothing written):
    :func:`~scalesearch.plan.preflight.check_generate` (the CLI's check before Hydra), then the coefficients'
    constraint."""
    check_generate(cfg)
    coeffs = Coefficients(cfg.alpha, cfg.beta, cfg.gamma)
    if cfg.mode == "formula" and not coeffs.satisfies(cfg.target, cfg.tolerance):
        if not cfg.allow_off_constraint:
            coeffs.check(cfg.target, cfg.tolerance)
        warnings.warn(
            f"alpha*beta^2*gamma^2 = {coeffs.product:.4f} is outside {cfg.target} ± {cfg.tolerance} "
            "(allow_off_constraint=true): each φ step will not multiply MACs by the target",
            stacklevel=1,
        )
    return coeffs, load_baseline(cfg.baseline)
