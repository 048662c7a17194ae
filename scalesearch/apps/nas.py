"""Architecture search for the baseline (MnasNet-style), then optionally the coefficient search on it.

EfficientNet-B0 came from a multi-objective search maximising ``ACC(m) × [cost(m) / T]^w``
(w = −0.07). ``scalesearch-nas`` does the same for the user's data and budget:

* :class:`~scalesearch.plan.blocks.BlockSpace` — a block-level space (``search_spaces/blocks.yaml``): per stage kernel,
  expansion, repeats, SE ratio and output channels; stage count and strides fixed. Every point is a
  :class:`~scalesearch.scaling.spec.ModelSpec` for :func:`scalesearch.scaling.model.build_model`; B0 is one point.
  :meth:`BlockSpace.define_by_run` is the Optuna define-by-run space.
* :func:`run_nas` — Optuna on Ray Tune (``OptunaSearch``), one proxy training per candidate
  (``train_proxy`` with the candidate as the baseline, unscaled, at the base resolution).
  ``nas.objective=weighted``: one objective ``accuracy × (cost / target)^w`` (TPE by default);
  ``nas.objective=pareto``: two objectives, max accuracy and min cost (NSGA-II by default).
  The cost is the measured MACs per image (``nas.cost=macs``) or the measured inference latency on the
  trial's device (``nas.cost=latency``). Writes ``results.csv``, ``pareto.json``/``.md``,
  ``plots/pareto.png`` and ``baseline.json`` (the ok trial with the best weighted objective: always a
  point of the Pareto front), which ``model.baseline=…/baseline.json`` feeds to the coefficient search.
* :func:`run_nas_app` — the Hydra job; with ``chain.search=true`` it then runs
  :func:`scalesearch.pipeline.run_search` on the found baseline in ``<run_dir>/coefficients``
  (results, best coefficients, the scaled family).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from pathlib import Path

from ..config import FamilyConfig, ModelConfig, NASAppConfig, ReportConfig, SearchAppConfig, ValidateConfig
from ..plan.preflight import check_nas
from ..plan.samplers import nas_sampler
from ..io import atomic_write_csv, atomic_write_json, atomic_write_text, read_run_json, save_png
from ..scaling.model import spec_cost
from ..run.rundir import NAS, check_same_data, claim, data_summary
from ..scaling.spec import B0
from ..plan.blocks import BlockSpace, arch_string, load_block_space

log = logging.getLogger("scalesearch")

__all__ = ["objective_value", "pareto_front", "check_nas_app", "run_nas", "run_nas_app", "check_nas_data", "COLUMNS"]

OBJECTIVES = ("weighted", "pareto")
COSTS = {"macs": "MACs per image", "latency": "ms per batch"}


# ---------------------------------------------------------------- objective, front, latency
def objective_value(accuracy: float, cost: float, target: float, w: float) -> float:
    """MnasNet's reward ``accuracy × (cost / target)^w``."""
    return float(accuracy) * (float(cost) / float(target)) ** float(w)


def _dominates(a: dict, b: dict) -> bool:
    return (a["accuracy"] >= b["accuracy"] and a["cost"] <= b["cost"]
            and (a["accuracy"] > b["accuracy"] or a["cost"] < b["cost"]))


def pareto_front(rows: list[dict]) -> list[dict]:
    """The ``ok`` rows no other ``ok`` row dominates (higher or equal accuracy at lower or equal
    cost, strictly better in one), by increasing cost."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("accuracy") is not None and r.get("cost") is not None]
    return sorted((r for r in ok if not any(_dominates(o, r) for o in ok)), key=lambda r: (r["cost"], -r["accuracy"]))


# ---------------------------------------------------------------- config
def coefficient_config(cfg: NASAppConfig, baseline_json: Path | str) -> SearchAppConfig:
    """The coefficient search's config for the chain: same data, budget, cluster; the found baseline."""
    return SearchAppConfig(dataset=cfg.dataset, proxy=cfg.proxy, trials=cfg.trials, cluster=cfg.cluster,
                           search=cfg.search, report=ReportConfig(enabled=cfg.chain.report),
                           family=FamilyConfig(phis=list(cfg.chain.family_phis), train=cfg.chain.report),
                           validate=ValidateConfig(enabled=cfg.chain.report),
                           model=ModelConfig(baseline=str(baseline_json)),
                           seed=cfg.nas.seed, resume=cfg.resume, verbose=cfg.verbose)


def check_nas_app(cfg: NASAppConfig) -> BlockSpace:
    """Reject bad values before anything starts (one-line ValueErrors); warn on a positive w. Returns the space."""
    from ..plan.preflight import check_search_app

    check_nas(cfg)
    if cfg.nas.w > 0:
        warnings.warn(f"nas.w={cfg.nas.w} is positive: the objective accuracy × (cost/target)^w then rewards cost "
                      "(MnasNet uses w=-0.07)", UserWarning, stacklevel=2)
    if cfg.chain.search:
        check_search_app(coefficient_config(cfg, "baseline.json"))
    if cfg.search.scheduler != "none" and not cfg.chain.search:
        log.warning("search.scheduler=%s applies to the chained coefficient search only; NAS trials run to the end",
                    cfg.search.scheduler)
    return load_block_space(cfg.nas.space)


# ---------------------------------------------------------------- the trials (through the runner)
COLUMNS = ["key", "trial_id", "arch", "is_b0", "blocks", "accuracy", "loss", "epochs", "params", "macs", "activations",
           "cost_kind", "cost", "objective", "pareto", "latency_ms", "train_step_ms", "device", "images_per_s",
           "wall_s", "status", "error", "failures", "node", "finished_at", "train_id", "reused_from", "seed",
           "resolution", "spec_json"]


def nas_job(config: dict, space: BlockSpace, seed: int, budget, fingerprint: str, resolution: int, num_classes: int,
            in_channels: int, cost_kind: str) -> dict:
    """The job of one NAS trial: the candidate spec (unscaled) at the base resolution, its measured cost."""
    from ..plan.jobs import job

    spec = space.spec(config)
    c = spec_cost(spec, resolution, num_classes, in_channels)
    row = {"arch": arch_string(spec), "is_b0": spec == B0, "blocks": spec.num_blocks, "params": c.params,
           "macs": c.macs, "activations": c.activations, "cost_kind": cost_kind,
           "spec_json": json.dumps(spec.to_dict())}
    return job(config["__trial_id__"], None, spec.to_dict(), resolution, seed, row, budget, fingerprint)


def nas_metrics(result: dict, cost_kind: str, target: float, w: float) -> dict:
    """The NAS objective of a trial's result: its cost (MACs, or latency measured on the trial's device) and
    accuracy × (cost / target)^w."""
    cost = result.get("latency_ms") if cost_kind == "latency" else result.get("macs")
    if cost is None or result.get("accuracy") is None:
        return {}
    return {"cost": float(cost), "objective": objective_value(result["accuracy"], cost, target, w)}


# ---------------------------------------------------------------- artifacts
def _cost_label(cfg: NASAppConfig, resolution: int) -> str:
    if cfg.nas.cost == "macs":
        return f"MACs per image at {resolution} px"
    return f"inference latency, ms per batch of {cfg.nas.latency_batch} at {resolution} px"


def _fmt_cost(kind: str, v: float) -> str:
    return f"{v / 1e6:.2f} M MACs" if kind == "macs" else f"{v:.2f} ms"


def _describe(r: dict, kind: str) -> str:
    macs = "" if kind == "macs" else f", {r['macs'] / 1e6:.2f} M MACs"
    return (f"accuracy {r['accuracy']:.4f}, {_fmt_cost(kind, r['cost'])}{macs}, {r['params'] / 1e6:.3f} M params, "
            f"objective {r['objective']:.4f}")


def plot_pareto(rows: list[dict], front: list[dict], chosen: dict, path: Path, xlabel: str, log_x: bool) -> Path:
    """Scatter of every ok trial, the Pareto front as a step line, B0 and the chosen baseline marked."""
    from matplotlib.figure import Figure

    ok = [r for r in rows if r["status"] == "ok"]
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter([r["cost"] for r in ok], [r["accuracy"] for r in ok], s=18, c="0.6", label="trials")
    ax.plot([r["cost"] for r in front], [r["accuracy"] for r in front], "o-", c="tab:red", drawstyle="steps-post",
            label="Pareto front")
    b0 = [r for r in ok if r.get("is_b0") in (True, "True")]
    if b0:
        ax.scatter([b0[0]["cost"]], [b0[0]["accuracy"]], marker="s", s=70, facecolors="none", edgecolors="k",
                   label="B0")
    ax.scatter([chosen["cost"]], [chosen["accuracy"]], marker="*", s=180, c="tab:blue", zorder=3,
               label="chosen baseline (max objective)")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel + (" (log scale)" if log_x else ""))
    ax.set_ylabel("validation accuracy (top-1, fraction)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    return save_png(fig, path)


def _pareto_markdown(front: list[dict], rows: list[dict], chosen: dict, b0: dict | None, meta: dict) -> str:
    kind = meta["cost_kind"]
    lines = [
        "# NAS: Pareto front (accuracy vs cost)", "",
        f"- cost used: **{kind}** ({meta['cost_label']}); target {_fmt_cost(kind, meta['target'])}"
        f"{' (B0 on this data)' if meta['target_is_b0'] else ''}",
        f"- search: {meta['search_objective']} ({meta['objective_text']}), sampler {meta['sampler']}, "
        f"{len(rows)} trials ({sum(r['status'] == 'ok' for r in rows)} ok), space {meta['space']}",
        f"- data: {meta['dataset']}, base resolution {meta['base_resolution']}, budget {meta['budget']}",
        f"- chosen baseline (max accuracy × (cost/target)^{meta['w']} over the ok trials): {_describe(chosen, kind)}",
    ]
    if b0 is not None:
        lines.append(f"- B0 in this search: {_describe(b0, kind)}")
    lines += ["", "Proxy accuracies come from one short training per candidate (one seed): differences of a few "
              "points are within proxy noise.", "",
              "| # | accuracy | cost | MACs (M) | params (M) | objective | "
              "architecture (repeats×MBconv-kernel-channels) |",
              "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(front, 1):
        mark = " **(chosen)**" if r["trial_id"] == chosen["trial_id"] else ""
        lines.append(f"| {i} | {r['accuracy']:.4f} | {_fmt_cost(kind, r['cost'])} | {r['macs'] / 1e6:.2f} | "
                     f"{r['params'] / 1e6:.3f} | {r['objective']:.4f} | `{r['arch']}`{mark} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main jobs
def _reference_cost(cfg: NASAppConfig, data, runner, ctx) -> tuple[float, bool]:
    """The objective's target in the cost's unit: the configured one, else B0's cost on this data (latency:
    measured by a task with the trials' resources, so on their kind of device)."""
    n = cfg.nas
    given = n.target_macs if n.cost == "macs" else n.target_latency_ms
    if given is not None:
        return float(given), False
    if n.cost == "macs":
        return float(spec_cost(B0, data.base_resolution, data.num_classes, data.in_channels).macs), True
    import ray

    from ..run.trial import measure_task

    task = ray.remote(measure_task).options(num_cpus=cfg.trials.cpus_per_trial, num_gpus=cfg.trials.gpus_per_trial)
    return float(ray.get(task.remote(B0.to_dict(), data.base_resolution, ctx, ("latency",)))["latency_ms"]), True


def run_nas(cfg: NASAppConfig, run_dir: Path, space: BlockSpace | None = None, runner=None) -> dict:
    """The architecture search; writes nas.json (the data it runs on), results.csv, pareto.json/.md,
    plots/pareto.png, baseline.json in ``run_dir`` (held for this process) and returns baseline.json's content.
    ``runner``: an open Runner (else one is opened here)."""
    space = space or check_nas_app(cfg)
    with claim(run_dir, NAS) as run_dir:
        data = _start(cfg, run_dir)
        if runner is None:
            from ..run.runner import Runner

            with Runner(cfg.cluster, cfg.trials, run_dir, cfg.verbose) as r:
                return _run_nas(cfg, run_dir, space, r, data)
        return _run_nas(cfg, run_dir, space, runner, data)


def _start(cfg: NASAppConfig, run_dir: Path):
    """The checks of a held NAS directory before Ray starts (a new run or resume=true; the same data); the data."""
    from ..train.data import load_data

    if (run_dir / "tune").exists() and not cfg.resume:
        raise ValueError(f"{run_dir} already holds a NAS run; allowed: resume=true to continue it, "
                         "or a new hydra.run.dir")
    data = load_data(cfg.dataset)  # (decoded once per process)
    check_nas_data(run_dir, data, cfg.resume)
    return data


def check_nas_data(run_dir: Path, data, resume: bool) -> None:
    """nas.json holds the data summary of the run's first attempt; a resume on other data is refused (a run from
    before nas.json: checked against its baseline.json's fingerprint and classes, when it has one)."""
    path, summary = run_dir / "nas.json", data_summary(data)
    stored = None
    if resume and path.is_file():
        doc = read_run_json(path)
        stored = doc.get("data") if isinstance(doc, dict) else None
    elif resume and (run_dir / "baseline.json").is_file():
        b = read_run_json(run_dir / "baseline.json")
        stored = {"fingerprint": b.get("dataset_fingerprint"), "classes": b.get("num_classes")} if isinstance(b, dict) \
            else None
    check_same_data(stored, summary)
    if stored is None or not path.is_file():
        atomic_write_json(path, {"data": summary})


def _nas_trial_context(cfg: NASAppConfig, data):
    """The trials' budget (proxy.threads: the trial's CPUs when unset) and their :class:`TrialContext`."""
    from ..run.trial import trial_context

    n, t = cfg.nas, cfg.trials
    ctx = trial_context(cfg.proxy, t, data, device_costs=n.cost == "latency" or t.measure_device_costs,
                        latency_batch=n.latency_batch, cost_min_run_time=n.latency_min_run_time)
    return ctx.budget, ctx


def _score_trials(rows: list[dict], n, target: float) -> list[dict]:
    """Each ok row's cost and objective, its cost kind, whether it is on the Pareto front; returns the front."""
    for r in rows:
        r.update(nas_metrics(r, n.cost, target, n.w) if r["status"] == "ok" else {})
        r.setdefault("cost_kind", n.cost)
    front = pareto_front(rows)
    on_front = {r["trial_id"] for r in front}
    for r in rows:
        r["pareto"] = r["trial_id"] in on_front if r["status"] == "ok" else None
    return front


def _write_nas_artifacts(cfg: NASAppConfig, run_dir: Path, data, rows: list[dict], front: list[dict],
                         ok: list[dict], meta: dict, wall: float) -> dict:
    """pareto.json, pareto.md, plots/pareto.png and baseline.json (the ok trial with the best objective);
    returns baseline.json's content."""
    n = cfg.nas
    on_front = {r["trial_id"] for r in front}
    chosen = max(ok, key=lambda r: (r["objective"], -r["cost"]))
    b0 = next((r for r in ok if r["is_b0"] in (True, "True")), None)
    spec_of = {r["trial_id"]: r for r in rows}

    def spec_dict(r: dict) -> dict:
        return json.loads(spec_of[r["trial_id"]]["spec_json"])

    def point(r: dict) -> dict:
        return {k: r[k] for k in ("trial_id", "arch", "accuracy", "cost", "macs", "params", "objective")}

    atomic_write_json(run_dir / "pareto.json", {**meta, "points": [{**point(r), "spec": spec_dict(r)} for r in front]})
    atomic_write_text(run_dir / "pareto.md", _pareto_markdown(front, rows, chosen, b0, meta))
    plot_pareto(rows, front, chosen, run_dir / "plots" / "pareto.png", _cost_label(cfg, data.base_resolution),
                log_x=n.cost == "macs")
    baseline = {
        "spec": spec_dict(chosen), "arch": chosen["arch"], "accuracy": chosen["accuracy"], "macs": chosen["macs"],
        "params": chosen["params"], "cost": chosen["cost"], "objective": chosen["objective"], **meta,
        "b0": point(b0) if b0 else None, "on_pareto_front": chosen["trial_id"] in on_front,
        "num_classes": data.num_classes, "dataset_fingerprint": data.fingerprint, "seed": n.seed,
        "n_trials": len(rows), "n_ok": len(ok), "search_wall_s": round(wall, 2),
    }
    atomic_write_json(run_dir / "baseline.json", baseline)
    log.info("NAS: chose %s — accuracy %.4f, %s, objective %.4f%s; artifacts in %s", chosen["arch"],
             chosen["accuracy"], _fmt_cost(n.cost, chosen["cost"]), chosen["objective"],
             f" (B0: accuracy {b0['accuracy']:.4f}, objective {b0['objective']:.4f})" if b0 else "", run_dir)
    return baseline


def _run_nas(cfg: NASAppConfig, run_dir: Path, space: BlockSpace, runner, data) -> dict:
    from functools import partial

    from ray.tune.search.optuna import OptunaSearch

    from ..run.runner import SearcherStage
    from ..run.resume import budget_str

    n = cfg.nas
    runner.share(data)
    budget, ctx = _nas_trial_context(cfg, data)
    target, target_is_b0 = _reference_cost(cfg, data, runner, ctx)
    if n.cost == "latency" and cfg.trials.max_concurrent_trials != 1:
        log.warning("nas.cost=latency: latencies measured while other trials train are inflated and noisy; "
                    "trials.max_concurrent_trials=1 gives clean figures")
    metric, mode = (["accuracy", "cost"], ["max", "min"]) if n.objective == "pareto" else ("objective", "max")
    points = [space.params_of(B0)] if n.include_b0 and space.contains(B0) else None
    sampler = nas_sampler(n)
    sampler_name = type(sampler).__name__
    searcher = OptunaSearch(space=space.define_by_run, metric=metric, mode=mode, sampler=sampler,
                            points_to_evaluate=points)
    log.info("NAS on %s (%d train images, base resolution %d): %s over %s (%.2g architectures), %s, cost %s, "
             "target %s, %d samples", data.name, len(data.train_y), data.base_resolution, n.objective, space.name,
             space.size, sampler_name, n.cost, _fmt_cost(n.cost, target), n.num_samples)
    ctx = dataclasses.replace(
        ctx, metric="objective" if n.objective == "weighted" else "accuracy",
        job_from_config=partial(nas_job, space=space, seed=n.seed, budget=budget, fingerprint=data.fingerprint,
                                resolution=data.base_resolution, num_classes=data.num_classes,
                                in_channels=data.in_channels, cost_kind=n.cost),
        extra_metrics=partial(nas_metrics, cost_kind=n.cost, target=target, w=n.w))
    t0 = time.time()
    rows = runner.run(SearcherStage("nas", run_dir / "results.csv", COLUMNS, ctx, searcher=searcher,
                                    num_samples=n.num_samples, tune_metric=None,
                                    describe=lambda r: r.get("arch") or r.get("key")))
    wall = time.time() - t0
    front = _score_trials(rows, n, target)
    atomic_write_csv(run_dir / "results.csv", rows, COLUMNS)
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise ValueError(f"no NAS trial finished ok (see {run_dir / 'results.csv'}); nothing to choose")
    meta = {
        "search_objective": n.objective, "w": n.w, "cost_kind": n.cost,
        "cost_label": _cost_label(cfg, data.base_resolution),
        "target": target, "target_is_b0": target_is_b0, "sampler": sampler_name, "space": space.name,
        "objective_text": "accuracy × (cost/target)^w" if n.objective == "weighted" else "max accuracy, min cost",
        "dataset": data.name, "base_resolution": data.base_resolution, "budget": budget_str(cfg.proxy),
    }
    return _write_nas_artifacts(cfg, run_dir, data, rows, front, ok, meta, wall)


def run_nas_app(cfg: NASAppConfig, run_dir: Path) -> dict:
    """The ``scalesearch-nas`` job: the NAS, then (``chain.search=true``) the coefficient search on the found
    baseline in ``run_dir/coefficients``, one Ray session for both."""
    space = check_nas_app(cfg)
    with claim(run_dir, NAS) as run_dir:  # (run_nas claims it again: re-entrant)
        _start(cfg, run_dir)
        from ..run.runner import Runner
        from ..pipeline import run_search

        with Runner(cfg.cluster, cfg.trials, run_dir, cfg.verbose) as runner:
            baseline = run_nas(cfg, run_dir, space, runner)
            if cfg.chain.search:
                log.info("chain: coefficient search on the found baseline in %s", run_dir / "coefficients")
                best = run_search(coefficient_config(cfg, run_dir / "baseline.json"), run_dir / "coefficients")
                baseline = {**baseline, "coefficients": best}
    return baseline
