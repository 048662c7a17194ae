"""The paper's Fig. 8 experiment on your data: scale B0 in one dimension, or compoundly, to the same
nominal cost and compare proxy accuracy at the *measured* MACs.

At compound coefficient φ every variant targets a nominal cost of 2^φ × B0:

* depth-only       d = 2^φ           (MACs ∝ d)
* width-only       w = 2^(φ/2)       (MACs ∝ w²)
* resolution-only  r = 2^(φ/2)       (MACs ∝ r²), resolution round(base · r)
* compound         (α^φ, β^φ, γ^φ)   with α·β²·γ² ≈ 2 (the searched best and/or the paper's)

Rounding (repeats, channels to multiples of 8, feature-map sizes) moves the measured MACs off the
nominal ones, so the table and plot use the measured numbers. Every variant is trained with the same
proxy budget, data and seeds, as Ray Tune trials through the runner (``ablation_results.csv``;
resumable; on every node of a cluster); ``ablation.json`` holds the mean and 95 % interval per variant.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..config import AblateAppConfig
from ..io import atomic_write_json, atomic_write_text, read_json
from ..report.render import ablation_markdown, plot_ablation
from ..decide.results import ABLATION_COLUMNS, TABLES
from .rundir import ABLATE, claim
from ..scaling.coefficients import PAPER, Coefficients
from ..scaling.scaler import Scaler
from ..scaling.spec import ModelSpec
from ..decide.stats import mean_ci

log = logging.getLogger("scalesearch")

__all__ = ["ablation_scaler", "ablation_variants", "summarize_ablation", "run_ablation_stage", "write_ablation",
           "run_ablate_app", "compound_coefficients", "AblateAppConfig"]
COMPOUND_SOURCES = ("best", "paper")


def ablation_variants(scaler: Scaler, phis=(1, 2), compound: dict[str, Coefficients] | None = None) -> list[dict]:
    """B0 (φ = 0) and, for each φ, the single-dimension and compound variants at nominal cost 2^φ (resolutions by
    ``scaler``'s nominal rule)."""
    if not phis or any(p <= 0 for p in phis):
        raise ValueError(f"phis={list(phis)}; allowed: a non-empty list of values > 0")
    base = scaler.base_resolution
    out = [dict(method="baseline", phi=0.0, depth=1.0, width=1.0, resolution=base, nominal=1.0)]
    for phi in phis:
        half = 2 ** (phi / 2)
        out += [
            dict(method="depth-only", phi=float(phi), depth=2.0**phi, width=1.0, resolution=base),
            dict(method="width-only", phi=float(phi), depth=1.0, width=half, resolution=base),
            dict(method="resolution-only", phi=float(phi), depth=1.0, width=1.0,
                 resolution=scaler.nominal_resolution(half)),
        ]
        for v in out[-3:]:
            v["nominal"] = 2.0**phi
        for label, c in (compound or {}).items():
            d, w, r = c.multipliers(phi)
            out.append(dict(method=f"compound {label}", phi=float(phi), depth=d, width=w,
                            resolution=scaler.nominal_resolution(r), nominal=c.product**phi,
                            coefficients=[c.alpha, c.beta, c.gamma]))
    return out


def summarize_ablation(variants: list[dict], rows: list[dict], meta: dict) -> dict:
    """ablation.json: every variant with its measured cost and mean accuracy over its ``ok`` seeds (95 % t
    interval), from the stage's rows."""
    from ..scaling.coefficients import member_name

    by_key: dict = {}
    for r in rows:
        by_key.setdefault((r["method"], member_name(r["phi"])), []).append(r)
    out = []
    for v in variants:
        rs = by_key.get((v["method"], member_name(v["phi"])), [])
        ok = sorted((r for r in rs if r["status"] == "ok" and r["accuracy"] is not None), key=lambda r: r["seed"])
        ci = mean_ci([r["accuracy"] for r in ok]) if ok else None
        first = rs[0] if rs else {}
        out.append({**v, "seeds": [r["seed"] for r in ok], "accuracies": [r["accuracy"] for r in ok],
                    "accuracy": ci["mean"] if ci else None, "accuracy_std": ci["std"] if ci else None,
                    "accuracy_low": ci["low"] if ci else None, "accuracy_high": ci["high"] if ci else None,
                    "status": "ok" if ok and len(ok) == len(rs) else ("missing" if not rs else "partly failed"),
                    "params": first.get("params"), "macs": first.get("macs"), "activations": first.get("activations"),
                    "latency_ms": first.get("latency_ms")})
    base_macs = out[0]["macs"] or 1
    for r in out:
        r["macs_ratio"] = (r["macs"] or 0) / base_macs
    return {**meta, "rows": out}


def ablation_scaler(baseline: ModelSpec, data, depth_rounding: str = "stage") -> Scaler:
    """The ablation's rule (the paper's Fig. 8): nominal costs, resolutions on every pixel."""
    return Scaler(baseline, data.base_resolution, data.num_classes, data.in_channels, resolution_multiple=1,
                  depth_rounding=depth_rounding)


def run_ablation_stage(runner, out_dir: Path, data, budget, ctx, baseline: ModelSpec, best: Coefficients | None, *,
                       phis=(1.0, 2.0), seeds=(0,), depth_rounding: str = "stage", reuse=(), paper: bool = True,
                       compound: dict[str, Coefficients] | None = None) -> dict:
    """Train every variant (:func:`ablation_variants`) through ``runner`` into ``ablation_results.csv`` and write
    ablation.json / ablation.md / plots/ablation.png in ``out_dir``; returns ablation.json's content."""
    from ..plan.jobs import ablation_jobs
    from .runner import JobStage

    compound = compound if compound is not None else compound_coefficients(best, paper=paper)
    scaler = ablation_scaler(baseline, data, depth_rounding)
    variants = ablation_variants(scaler, phis, compound)
    jobs = ablation_jobs(variants, list(seeds), budget, data.fingerprint, scaler)
    log.info("ablation: %d variants x %d seed(s)", len(variants), len(seeds))
    rows = runner.run(JobStage("ablation", Path(out_dir) / TABLES["ablation"], ABLATION_COLUMNS, ctx, jobs=jobs,
                            reuse=list(reuse),
                            describe=lambda r: f"{r.get('method')} φ={r.get('phi'):g} seed {r.get('seed')}"))
    meta = {"dataset": data.name, "dataset_fingerprint": data.fingerprint, "base_resolution": data.base_resolution,
            "num_classes": data.num_classes, "budget": dataclasses.asdict(budget), "seeds": list(seeds),
            "phis": [float(p) for p in phis], "depth_rounding": depth_rounding}
    result = summarize_ablation(variants, rows, meta)
    write_ablation(result, out_dir)
    return result


def write_ablation(result: dict, out_dir: str | Path) -> Path:
    """ablation.json, ablation.md and plots/ablation.png in ``out_dir`` (atomic); returns ablation.md."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "ablation.json", result)
    plot_ablation(result, out_dir / "plots" / "ablation.png")
    md = ablation_markdown(result) + "\n![accuracy vs MACs per scaling method](plots/ablation.png)\n"
    return atomic_write_text(out_dir / "ablation.md", md)


def compound_coefficients(best: Coefficients | None, paper: bool = True) -> dict[str, Coefficients]:
    """The compound variants by label: the searched ``best`` and/or the paper's (once when they are equal)."""
    out = {}
    if best is not None:
        out[f"best ({best.alpha}, {best.beta}, {best.gamma})" + (" = paper" if best == PAPER else "")] = best
    if paper and best != PAPER:
        out[f"paper ({PAPER.alpha}, {PAPER.beta}, {PAPER.gamma})"] = PAPER
    return out


def compound_sources(names: list[str] | None, run_dir: Path | None) -> dict[str, Coefficients]:
    """The compound variants named in ``names`` (``best``: from run_dir/best.json, ``paper``);
    None: both, or the paper's alone without a run directory."""
    if names is None:
        names = (["best"] if run_dir is not None else []) + ["paper"]
    for name in names:
        if name not in COMPOUND_SOURCES:
            raise ValueError(f"compound contains {name!r}; allowed: {', '.join(COMPOUND_SOURCES)}")
    best = None
    if "best" in names:
        if run_dir is None:
            raise ValueError("compound=[best] needs run_dir=<a search run directory>; allowed: run_dir=..., "
                             "or compound=[paper]")
        if not (run_dir / "best.json").is_file():
            raise ValueError(f"run_dir={run_dir} has no best.json; allowed: a finished search run directory")
        b = read_json(run_dir / "best.json")
        best = Coefficients(b["alpha"], b["beta"], b["gamma"])
    return compound_coefficients(best, paper="paper" in names)


def run_ablate_app(cfg: AblateAppConfig, out_dir: Path) -> dict:
    """The ``scalesearch-ablate`` job. With ``run_dir`` set, the searched best is one compound variant and
    the artifacts go into that run directory (the report links them); otherwise into ``out_dir``. The
    directory is held for this process (a search run's while nothing else runs in it; else an ablation's own)."""
    from ..plan.preflight import check_proxy, check_resources, check_seeds

    check_proxy(cfg.proxy, cfg.trials.gpus_per_trial)
    check_resources(cfg.trials)
    if cfg.seeds < 1:
        raise ValueError(f"seeds={cfg.seeds}; allowed: >= 1")
    check_seeds(cfg.dataset.seed, "dataset.seed")
    check_seeds(cfg.seed, "seed", cfg.seeds, "seeds")
    if not cfg.phis or any(p <= 0 for p in cfg.phis):
        raise ValueError(f"phis={list(cfg.phis)}; allowed: a non-empty list of values > 0")
    run_dir = None
    if cfg.run_dir:
        run_dir = Path(cfg.run_dir)
        if not run_dir.is_dir():
            raise ValueError(f"run_dir={cfg.run_dir} is not a directory; allowed: a search run directory, or null")
    compound = compound_sources(cfg.compound, run_dir)
    held = claim(run_dir, ABLATE, guest=True, elsewhere="run_dir=<a scalesearch run directory>") if run_dir else \
        claim(out_dir, ABLATE)
    with held:
        return _ablate(cfg, run_dir, Path(out_dir), compound)


def _ablate(cfg: AblateAppConfig, run_dir: Path | None, out_dir: Path, compound: dict) -> dict:
    """The ablation trained in the held directory (``run_dir``, else ``out_dir``)."""
    from ..train.data import load_data
    from ..scaling.spec import load_baseline
    from .runner import Runner
    from .trial import trial_context

    best = read_json(run_dir / "best.json") if run_dir and (run_dir / "best.json").is_file() else {}
    target = run_dir or out_dir
    if (target / TABLES["ablation"]).is_file() and not cfg.resume and run_dir is None:
        raise ValueError(f"{target} already holds an ablation; allowed: resume=true to continue it, "
                         "or a new hydra.run.dir")
    data = load_data(cfg.dataset)
    if best.get("dataset_fingerprint") not in (None, data.fingerprint):
        log.warning("the data (fingerprint %s) differ from the search's (%s): pass the search's dataset overrides to "
                    "compare on the same data", data.fingerprint, best["dataset_fingerprint"])
    ctx = trial_context(cfg.proxy, cfg.trials, data)
    with Runner(cfg.cluster, cfg.trials, target, cfg.verbose) as runner:
        runner.share(data)
        result = run_ablation_stage(runner, target, data, ctx.budget, ctx, load_baseline(best.get("baseline")), None,
                                    phis=cfg.phis, seeds=[cfg.seed + k for k in range(cfg.seeds)],
                                    depth_rounding=best.get("depth_rounding", "stage"), compound=compound)
    result["same_data_as_search"] = None if not best else best.get("dataset_fingerprint") == data.fingerprint
    atomic_write_json(target / "ablation.json", result)
    log.info("wrote %s", target / "ablation.md")
    return result
