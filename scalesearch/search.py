"""The main job: plan → search → validate → decide → family → (paper family, ablation) → artifacts.

``run_search(cfg, run_dir)`` checks every setting, loads the data once, and runs each stage's
trainings through one :class:`~scalesearch.runner.Runner` (Ray Tune trials; a 2-node cluster runs
them on both nodes). Every stage's table is written as it grows; ``search.json`` says which stages
are done, so an interrupted run (SIGKILL, SIGINT, SIGTERM) resumes with ``resume=true`` and trains
only what no table records. The report only reads the tables and renders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from .config import SearchAppConfig, check_search_app
from .data import accuracy_half_width, load_data
from .generate import load_baseline, write_family
from .io import atomic_write_json, atomic_write_text, read_json
from .plan import (OptunaSpace, Planner, budget_with_epochs_mult, family_jobs, is_paper, make_optuna_job, search_jobs,
                   select_grid, validation_jobs)
from .results import (FAMILY_COLUMNS, SEARCH_COLUMNS, TABLES, VALIDATION_COLUMNS, aggregate)
from .scaling import PAPER, Coefficients, check_member_dims, family
from .space import load_space
from .verdict import decide, fidelity, pooled_sd, summary_markdown, verdict

log = logging.getLogger("scalesearch")

__all__ = ["run_search", "check_environment", "config_fingerprint", "settings_diff", "prepare_run_dir",
           "depth_rounding", "budget_str", "run_context", "find_resumable"]

# settings that define a run's results (a resume must keep them); the rest may change between attempts
RESULT_KEYS = ("dataset", "proxy", "search", "model", "seed")
RESOURCE_KEYS = ("cpus_per_trial", "gpus_per_trial", "max_concurrent_trials", "max_failures", "reuse_actors")


# ---------------------------------------------------------------- settings and the run directory
def _result_settings(config: dict) -> dict:
    d = {k: json.loads(json.dumps(config.get(k), default=str)) for k in RESULT_KEYS}
    for k in RESOURCE_KEYS:
        (d.get("search") or {}).pop(k, None)
    (d.get("proxy") or {}).pop("threads", None)
    return d


def config_fingerprint(cfg: SearchAppConfig) -> str:
    blob = json.dumps(_result_settings(dataclasses.asdict(cfg)), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def settings_diff(stored: dict, cfg: SearchAppConfig) -> list[str]:
    """The result-defining settings that differ: ['search.n_seeds: 2 there, 3 here', ...]."""
    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            if isinstance(v, dict) and v:
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(_result_settings(stored)), flat(_result_settings(dataclasses.asdict(cfg)))
    return [f"{k}: {a.get(k)!r} there, {b.get(k)!r} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def read_state(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "search.json"
    if not path.is_file():
        return None
    try:
        state = read_json(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON ({str(e).splitlines()[0]}); allowed: the search.json a search "
                         "wrote (or a new hydra.run.dir)") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise ValueError(f"{path} holds no search settings; allowed: the search.json a search wrote")
    return state


def find_resumable(parent: Path, cfg: SearchAppConfig) -> Path | None:
    """The run under ``parent`` to continue: the newest unfinished one with these settings, else the newest
    finished one (whose missing stages are then run)."""
    found = []
    for state_file in Path(parent).glob("*/search.json"):
        try:
            state = read_state(state_file.parent)
        except ValueError:
            continue
        if state and not settings_diff(state["config"], cfg):
            found.append((state.get("status") != "complete", state_file.parent.stat().st_mtime, state_file.parent))
    return max(found)[2] if found else None


def prepare_run_dir(cfg: SearchAppConfig, run_dir: Path) -> dict | None:
    """Check that ``run_dir`` may be written (a new run, or ``resume=true`` of the run it holds, same
    settings); returns the run's state (None for a new run)."""
    state = read_state(run_dir)
    if state is not None and not cfg.resume:
        raise ValueError(f"{run_dir} already holds a search; allowed: resume=true to continue or extend it, or a new "
                         "hydra.run.dir")
    if state is None and cfg.resume:
        raise ValueError(f"resume=true but {run_dir} holds no search with these settings; allowed: resume=true with the "
                         "settings of an earlier run (the newest such run beside it is continued) or "
                         "hydra.run.dir=<that run>")
    if state is not None:
        diff = settings_diff(state["config"], cfg)
        if diff:
            raise ValueError(f"resume=true but {run_dir} holds a search with other settings ({'; '.join(diff[:3])}); "
                             "allowed: the same settings")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()
    except OSError as e:
        raise ValueError(f"run directory {run_dir} is not writable ({e.strerror}); allowed: a writable hydra.run.dir") from None
    return state


def check_environment(cfg: SearchAppConfig) -> None:
    """What can be checked about this machine / the cluster address before anything is written."""
    from .config import check_address

    c, s = cfg.cluster, cfg.search
    if c.address:
        check_address(c.address)
        return  # the cluster's resources are checked once connected
    gpus = c.num_gpus if c.num_gpus is not None else torch.cuda.device_count()
    if s.gpus_per_trial > gpus:
        raise ValueError(f"search.gpus_per_trial={s.gpus_per_trial} but this machine has {gpus} GPU(s) for Ray; "
                         "allowed: 0 here, or cluster.address of a cluster with GPUs")
    cpus = c.num_cpus if c.num_cpus is not None else os.cpu_count() or 1
    if s.cpus_per_trial > cpus:
        raise ValueError(f"search.cpus_per_trial={s.cpus_per_trial} but Ray gets {cpus} CPU(s) here; allowed: <= {cpus}")
    if cfg.proxy.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"proxy.device={cfg.proxy.device!r} but this machine has no CUDA GPU; allowed: cpu or auto")


def check_family_phis(cfg: SearchAppConfig, space, baseline) -> None:
    """Negative φ members must keep every dimension above its minimum for any coefficients of the space
    (checked before the search: the coefficients are not known yet)."""
    for phi in cfg.family_phis:
        if phi < 0:
            a, b, g = space.alpha.high, space.beta.high, space.gamma.high
            check_member_dims(baseline, a**phi, b**phi, cfg.dataset.base_resolution * g**phi,
                              f"family_phis contains {phi:g} (with alpha up to {a:g}, beta up to {b:g}, gamma up to {g:g})")


def depth_rounding(cfg) -> str:
    r = cfg.model.depth_rounding
    return r if r != "auto" else ("total" if cfg.search.constraint == "measured" else "stage")


def budget_str(p) -> str:
    size = f"{p.steps} steps" if p.steps else f"{p.epochs} epochs"
    return f"{size}, batch {p.batch_size}, {p.optimizer} lr {p.lr:g}"


def trial_budget(cfg: SearchAppConfig):
    """The proxy budget as trials run it: torch threads = proxy.threads, else search.cpus_per_trial."""
    p = cfg.proxy
    return p if p.threads is not None else dataclasses.replace(p, threads=max(1, int(cfg.search.cpus_per_trial)))


def run_context(cfg: SearchAppConfig, data) -> dict:
    """What summary, best.json and the report say about the run's setting."""
    s = cfg.search
    n_val = len(data.val_y)
    text = (f"every candidate built at depth α^φ and width β^φ with its resolution solved so that its measured {s.cost} "
            f"is target^φ (± search.cost_tolerance={s.cost_tolerance:g}) of the baseline proxy's"
            if s.constraint == "measured" else
            "the paper's α·β²·γ² = target with the proxy at round(base·γ^φ); measured cost reported beside it")
    return {"dataset": data.name, "dataset_fingerprint": data.fingerprint, "num_classes": data.num_classes,
            "chance": 1.0 / data.num_classes, "base_resolution": data.base_resolution, "val_images": n_val,
            "val_half_width": round(accuracy_half_width(n_val), 4), "strategy": s.strategy, "constraint": s.constraint,
            "constraint_text": text, "cost": s.cost, "phi": s.phi, "budget": budget_str(cfg.proxy),
            "seeds": [cfg.seed + k for k in range(s.n_seeds)], "depth_rounding": depth_rounding(cfg),
            "resolution_multiple": s.resolution_multiple}


# ---------------------------------------------------------------- stages
class _State:
    """search.json: the settings, the fingerprint, the status and every stage's progress (atomic)."""

    def __init__(self, run_dir: Path, cfg: SearchAppConfig, old: dict | None):
        self.path, self.cfg = run_dir / "search.json", cfg
        self.doc = {"fingerprint": config_fingerprint(cfg), "started": time.time(), "stages": {},
                    **(old or {}), "config": dataclasses.asdict(cfg), "status": "running"}
        self.doc.pop("interrupted", None)
        self.write()

    def write(self):
        atomic_write_json(self.path, self.doc)

    def stage(self, name: str, status: str, **extra):
        now = time.time()
        when = {"started": now} if status == "running" else {"finished": now}
        self.doc["stages"][name] = {**self.doc["stages"].get(name, {}), "status": status, **when, **extra}
        self.write()


def _describe(r: dict) -> str:
    if r.get("family"):
        return f"{r['family']} {r.get('name')} seed {r.get('seed')}"
    if r.get("method"):
        return f"{r['method']} φ={r.get('phi'):g} seed {r.get('seed')}"
    return f"α={r.get('alpha')} β={r.get('beta')} γ={r.get('gamma')} seed {r.get('seed')}"


def _search_stage(cfg, run_dir, space, planner, ctx, data, Stage):
    """The search stage (grid jobs or an Optuna searcher) and the infeasible candidates met."""
    s = cfg.search
    seeds = [cfg.seed + k for k in range(s.n_seeds)]
    budget = ctx.budget
    scheduler = None
    if s.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="epoch", max_t=max(budget.epochs, s.grace_period), grace_period=s.grace_period,
                                  reduction_factor=s.reduction_factor)
    common = dict(name="search", table=run_dir / TABLES["search"], columns=SEARCH_COLUMNS, scheduler=scheduler,
                  describe=_describe)
    if s.strategy == "grid":
        plan_file = run_dir / "candidates.json"
        if plan_file.is_file():  # the plan of an interrupted attempt: the same jobs (device costs are noisy)
            plan = read_json(plan_file)
        else:
            chosen, infeasible = select_grid(space, planner, s.thin, s.max_points, s.include_paper)
            plan = {"candidates": chosen, "infeasible": [{k: v for k, v in c.items() if k != "spec"} for c in infeasible]}
            atomic_write_json(plan_file, plan)
        if not plan["candidates"]:
            raise ValueError(f"no grid candidate can be built within search.cost_tolerance={s.cost_tolerance:g} of the "
                             f"target cost at base {data.base_resolution} px ({len(plan['infeasible'])} tried: "
                             f"{plan['infeasible'][0]['reason'] if plan['infeasible'] else 'none'}); allowed: a larger "
                             "search.cost_tolerance, a larger dataset.base_resolution, or search.constraint=nominal")
        log.info("grid: %d candidates x %d seed(s) = %d trials (%d infeasible met: %s)", len(plan["candidates"]),
                 len(seeds), len(plan["candidates"]) * len(seeds), len(plan["infeasible"]),
                 ", ".join(c["candidate"] for c in plan["infeasible"]) or "none")
        jobs = search_jobs(plan["candidates"], seeds, budget, data.fingerprint)
        return Stage(ctx=dataclasses.replace(ctx, fault_stage=True), jobs=jobs, **common), plan["infeasible"]
    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    sampler_cls = getattr(optuna.samplers, s.sampler)
    kwargs = dict(s.sampler_kwargs)
    if "seed" in sampler_cls.__init__.__code__.co_varnames:
        kwargs.setdefault("seed", cfg.seed)
    storage = None
    if s.storage:
        url = s.storage
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            url = "sqlite:///" + str(run_dir / url[len("sqlite:///"):])
        storage = optuna.storages.RDBStorage(url)
    searcher = OptunaSearch(space=OptunaSpace(space, planner), metric=s.metric, mode="max", sampler=sampler_cls(**kwargs),
                            seed=cfg.seed, storage=storage,
                            study_name=f"scalesearch-{config_fingerprint(cfg)}" if storage else None)
    alg = Repeater(searcher, repeat=s.n_seeds) if s.n_seeds > 1 else searcher
    log.info("optuna (%s): %d samples x %d seed(s)", s.sampler, s.num_samples, s.n_seeds)
    ctx = dataclasses.replace(ctx, job_from_config=make_optuna_job(cfg.seed, budget, data.fingerprint))
    return Stage(ctx=ctx, searcher=alg, num_samples=s.num_samples * s.n_seeds, **common), []


def _with_table(rows: list[dict], name: str) -> list[dict]:
    return [{**r, "_table": name} for r in rows]


def run_search(cfg: SearchAppConfig, run_dir: Path) -> dict | None:
    """Run (or resume) the whole job; returns best.json's content (None when nothing finished ok)."""
    from .runner import Runner, Stage, TrialContext

    check_search_app(cfg)  # bad input fails here, in seconds: before the run dir, the data and Ray
    space = load_space(cfg.search.space)
    if cfg.search.strategy == "optuna":
        space.alpha_bounds()
    baseline = load_baseline(cfg.model.baseline)
    check_family_phis(cfg, space, baseline)
    check_environment(cfg)
    run_dir = Path(run_dir).resolve()
    old = prepare_run_dir(cfg, run_dir)
    log.info("run directory: %s%s", run_dir, " (resumed)" if old else "")
    data = load_data(cfg.dataset)
    log.info("dataset %s: %d train / %d validation images, %d classes, base resolution %d px", data.name,
             len(data.train_y), len(data.val_y), data.num_classes, data.base_resolution)
    state = _State(run_dir, cfg, old)
    s, t0 = cfg.search, time.time()
    context = run_context(cfg, data)
    budget = trial_budget(cfg)
    if s.scheduler == "asha":
        budget = dataclasses.replace(budget, eval_every=1)
    with Runner(cfg.cluster, s, run_dir, cfg.verbose) as runner:
        runner.share(data)
        ctx = TrialContext(budget=budget, num_classes=data.num_classes, in_channels=data.in_channels, metric=s.metric,
                           gpus_per_trial=s.gpus_per_trial, device_costs=s.measure_device_costs,
                           latency_batch=s.latency_batch, cost_min_run_time=s.cost_min_run_time)
        planner = Planner(baseline, data.base_resolution, data.num_classes, data.in_channels, s.constraint, s.cost,
                          space.target, s.phi, s.cost_tolerance, (space.gamma.low, space.gamma.high),
                          s.resolution_multiple, depth_rounding(cfg),
                          runner.measurer(ctx, s.cost, run_dir / "costs.json") if s.cost in ("latency", "train_step")
                          else None)
        # 1. the search
        stage, infeasible = _search_stage(cfg, run_dir, space, planner, ctx, data, Stage)
        state.stage("search", "running")
        rows = runner.run(stage)
        state.stage("search", "complete", trials=len(rows))
        ranked = aggregate(rows)
        if not ranked:
            _write_summary(run_dir, context, None, ranked, rows, infeasible, None, None, None)
            raise ValueError(f"no trial of the search finished ok (see {run_dir / TABLES['search']}); nothing to select")
        # 2. the proxy-fidelity audit
        v_rows, v_ranked, fid = [], None, None
        if cfg.validate.enabled:
            v_budget = budget_with_epochs_mult(budget, cfg.validate.epochs_mult)
            jobs = validation_jobs(ranked, rows, cfg.validate.top_k, cfg.validate.random_k, cfg.seed, v_budget,
                                   data.fingerprint, lambda a, b: planner.spec(a, b).to_dict())
            state.stage("validation", "running")
            log.info("validation: %d candidates x their seeds at %s (%d trainings)", len({j["row"]["candidate"] for j in jobs}),
                     budget_str(v_budget), len(jobs))
            v_rows = runner.run(Stage("validation", run_dir / TABLES["validation"], VALIDATION_COLUMNS,
                                      dataclasses.replace(ctx, budget=v_budget, device_costs=False), jobs=jobs,
                                      describe=_describe))
            state.stage("validation", "complete", trials=len(v_rows))
            v_ranked = aggregate(v_rows) or None
            fid = fidelity(ranked, v_rows, cfg.validate.top_k, seed=cfg.seed)
            atomic_write_json(run_dir / "fidelity.json", {**fid, "proxy_budget": budget_str(budget),
                                                          "validation_budget": budget_str(v_budget)})
        # 3. the decision and the verdict
        best, decided_by = decide(ranked, v_ranked)
        d_ranked, d_rows = (v_ranked, v_rows) if decided_by == "validation" else (ranked, rows)
        paper = next((c["candidate"] for c in d_ranked if is_paper(c, s.constraint)), None)
        v = verdict(d_ranked, d_rows, decided_by, paper=paper, fid=fid, chance=context["chance"],
                    budget=budget_str(budget_with_epochs_mult(budget, cfg.validate.epochs_mult))
                    if decided_by == "validation" else budget_str(budget), val_n=context["val_images"],
                    half_width=context["val_half_width"], proxy_budget=budget_str(budget), constraint=s.constraint)
        coeffs = Coefficients(best["alpha"], best["beta"], best["gamma"])
        members = family(coeffs, base_resolution=data.base_resolution, phis=cfg.family_phis,
                         num_classes=data.num_classes, baseline=baseline, resolution_multiple=s.resolution_multiple,
                         constraint=s.constraint, target=space.target,
                         cost=s.cost if s.cost in ("macs", "activations") else "macs",
                         depth_rounding=depth_rounding(cfg), in_channels=data.in_channels,
                         gamma_range=(space.gamma.low, space.gamma.high), tolerance=s.cost_tolerance)
        # 4. the family (searched, and the paper's) and the ablation
        f_rows = []
        r = cfg.report
        if r.train_family or r.compare_paper:
            seeds = [cfg.seed + k for k in range(r.family_seeds)]
            jobs = []
            if r.train_family:
                jobs += family_jobs("searched", coeffs, members, r.max_phi, seeds, budget, data.fingerprint)
            if r.compare_paper and paper != best["candidate"]:
                paper_members = family(PAPER, base_resolution=data.base_resolution, phis=cfg.family_phis,
                                       num_classes=data.num_classes, baseline=baseline,
                                       resolution_multiple=s.resolution_multiple, constraint=s.constraint,
                                       target=space.target, cost="macs" if s.cost not in ("activations",) else s.cost,
                                       depth_rounding=depth_rounding(cfg), in_channels=data.in_channels,
                                       gamma_range=(space.gamma.low, space.gamma.high), tolerance=s.cost_tolerance)
                jobs += family_jobs("paper", PAPER, paper_members, r.max_phi, seeds, budget, data.fingerprint,
                                    start=len(jobs))
            state.stage("family", "running")
            log.info("family: %d trainings (members %s, %d seed(s))", len(jobs),
                     ", ".join(dict.fromkeys(j["row"]["name"] for j in jobs)), len(seeds))
            f_rows = runner.run(Stage("family", run_dir / TABLES["family"], FAMILY_COLUMNS, ctx, jobs=jobs,
                                      reuse=_with_table(rows, TABLES["search"]), describe=_describe))
            state.stage("family", "complete", trials=len(f_rows))
        if r.ablation:
            from .ablation import run_ablation_stage

            state.stage("ablation", "running")
            run_ablation_stage(runner, run_dir, data, budget, ctx, baseline, coeffs, phis=list(r.ablation_phis),
                               seeds=[cfg.seed + k for k in range(s.n_seeds)], depth_rounding=depth_rounding(cfg),
                               reuse=_with_table(rows, TABLES["search"]) + _with_table(f_rows, TABLES["family"]))
            state.stage("ablation", "complete")

    # 5. the artifacts
    wall = time.time() - t0
    best_json = {
        "candidate": best["candidate"], "alpha": best["alpha"], "beta": best["beta"], "gamma": best["gamma"],
        "product": best["product"], "resolution": best["resolution"], "cost": s.cost, "cost_ratio": best["cost_ratio"],
        "accuracy_mean": best["accuracy_mean"], "accuracy_std": best["accuracy_std"],
        "accuracy_low": best["accuracy_low"], "accuracy_high": best["accuracy_high"], "n_seeds": best["n_seeds"],
        "decided_by": decided_by, "proxy_pick": ranked[0]["candidate"],
        "validation_pick": v_ranked[0]["candidate"] if v_ranked else None, "paper_candidate": paper,
        "verdict": v["text"], "vs_runner_up": v.get("vs_runner_up"), "vs_paper": v.get("vs_paper"),
        "seeds_needed": v.get("seeds_needed"), "noise_sd": pooled_sd(ranked),
        "n_trials": len(rows), "n_ok": sum(x["status"] == "ok" for x in rows), "n_infeasible": len(infeasible),
        **context, "proxy_budget": dataclasses.asdict(cfg.proxy),
        "validation_budget": dataclasses.asdict(budget_with_epochs_mult(cfg.proxy, cfg.validate.epochs_mult))
        if cfg.validate.enabled else None,
        "target": space.target, "cost_tolerance": s.cost_tolerance, "seed": cfg.seed, "baseline": cfg.model.baseline,
        "family_phis": list(cfg.family_phis), "search_wall_s": round(wall, 2),
    }
    atomic_write_json(run_dir / "best.json", best_json)
    write_family(members, run_dir, f"Family for α={coeffs.alpha:g}, β={coeffs.beta:g}, γ={coeffs.gamma:g} on "
                 f"{data.name} (base resolution {data.base_resolution} px, {data.num_classes} classes, constraint "
                 f"{s.constraint})", num_classes=data.num_classes,
                 extra={"coefficients": [coeffs.alpha, coeffs.beta, coeffs.gamma], "base_resolution": data.base_resolution,
                        "constraint": s.constraint, "depth_rounding": depth_rounding(cfg),
                        "resolution_multiple": s.resolution_multiple, "target": space.target,
                        "in_channels": data.in_channels})
    _write_summary(run_dir, context, v, ranked, rows, infeasible, paper, fid, v_ranked)
    log.info("best: %s (decided by %s) — %s", best["candidate"], decided_by, v["text"].split(" — ")[0].strip("*"))
    if cfg.report.enabled:
        from .report import write_report

        state.stage("report", "running")
        write_report(run_dir, cfg.report)
        state.stage("report", "complete")
    state.doc.update(status="complete", wall_s=round(wall, 2))
    state.write()
    log.info("done in %.0f s: %s", time.time() - t0, run_dir / "summary.md")
    return best_json


def _write_summary(run_dir, context, v, ranked, rows, infeasible, paper, fid, v_ranked) -> None:
    atomic_write_text(run_dir / "summary.md", summary_markdown(context, v, ranked, rows, infeasible, paper, fid, v_ranked))
