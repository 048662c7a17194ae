"""Every check of an app's settings that spans groups, run before the run directory, the data or Ray are touched:
the search app (this machine or the cluster address, the race's rule, the sampler and storage), NAS and the
generator; and the keys that moved (``MOVED``: refused with their new name on the command line, migrated in the
settings an older run stored). Each check raises one ``ValueError`` line naming the setting and what is allowed."""

from __future__ import annotations

import math
import os
import re

from ..config import (ALLOWED, MAX_SEED, ClusterConfig, FamilyConfig, GenerateConfig, NASAppConfig, ProxyConfig,
                      ReportConfig, SearchAppConfig, TrialsConfig, ValidateConfig)
from .samplers import check_storage, nas_sampler, search_sampler

__all__ = ["check_environment", "check_search_app", "check_race", "check_nas", "check_generate", "ray_address",
           "check_address", "check_allowed", "check_all", "check_seeds", "check_proxy", "check_resources", "check_phis",
           "check_family", "check_report", "check_validate", "check_tune_storage", "MOVED", "check_moved",
           "migrate_settings"]


# ---------------------------------------------------------------- checks
def ray_address(cluster: "ClusterConfig") -> tuple[str | None, str]:
    """The Ray cluster a run joins and where that was said: ``cluster.address``; unset, ``$RAY_ADDRESS`` (as
    ``ray.init`` reads it, so a run inside a Ray job or beside ``ray start`` joins it); neither: (None, ""), a new
    local Ray."""
    if cluster.address:
        return cluster.address, "cluster.address"
    env = os.environ.get("RAY_ADDRESS", "").strip()
    return (env, "RAY_ADDRESS (cluster.address unset)") if env else (None, "")


def check_address(address: str, where: str = "cluster.address") -> None:
    """A Ray address (``where`` says whose) is host:port of something listening (or auto / ray://)."""
    import socket

    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{where}={address!r} is not host:port; allowed: host:port, auto, "
                         "or null (start locally)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ValueError(f"{where}={address!r} is unreachable ({e.strerror or e}); allowed: the address of a "
                         "running Ray head (ray start --head), or null to start Ray locally"
                         + (" (unset RAY_ADDRESS)" if where.startswith("RAY_ADDRESS") else "")) from None


def check_allowed(key: str, value) -> None:
    """``value`` is one of ``ALLOWED[key]``."""
    if value not in ALLOWED[key]:
        raise ValueError(f"{key}={value!r} is unknown; allowed: {', '.join(ALLOWED[key])}")


def check_all(items) -> None:
    """Each ``(name, value, ok, allowed)``: a one-line ValueError at the first that is not ok."""
    for name, value, ok, allowed in items:
        if not ok:
            raise ValueError(f"{name}={value}; allowed: {allowed}")


def check_seeds(first: int, key: str, count: int = 1, count_key: str = "") -> None:
    """Seeds ``first`` .. ``first + count - 1`` (``count_key``: the setting that asks for ``count``) lie in
    [0, MAX_SEED]: numpy's RandomState (Optuna's samplers) takes no other (torch.manual_seed: up to 2^64 - 1)."""
    last = first + max(count, 1) - 1
    if first >= 0 and last <= MAX_SEED:
        return
    if first < 0 or count <= 1:
        raise ValueError(f"{key}={first}; allowed: 0 <= {key} <= {MAX_SEED} (2^32 - 1, numpy's and Optuna's seed "
                         "range)")
    raise ValueError(f"{key}={first} with {count_key}={count} uses seeds up to {last}; allowed: 0 <= {key} and {key} + "
                     f"{count_key} - 1 <= {MAX_SEED} (2^32 - 1, numpy's and Optuna's seed range)")


def check_proxy(p: ProxyConfig, gpus_per_trial: float = 0.0) -> None:
    for key in ("optimizer", "schedule", "compile"):
        check_allowed(f"proxy.{key}", getattr(p, key))
    if p.device not in ("auto", "cpu") and not str(p.device).startswith("cuda"):
        raise ValueError(f"proxy.device={p.device!r} is not a device; allowed: auto, cpu, cuda, cuda:N")
    if str(p.device).startswith("cuda") and gpus_per_trial == 0:
        raise ValueError(f"proxy.device={p.device!r} needs trials.gpus_per_trial > 0 (Ray hides GPUs from trials "
                         "without a GPU share); allowed: proxy.device=cpu|auto, or a GPU share")
    check_all([
        ("proxy.epochs", p.epochs, p.epochs >= 1, ">= 1"),
        ("proxy.batch_size", p.batch_size, p.batch_size >= 1, ">= 1"),
        ("proxy.eval_batch_size", p.eval_batch_size, p.eval_batch_size >= 1, ">= 1"),
        ("proxy.lr", p.lr, p.lr > 0 and math.isfinite(p.lr), "> 0"),
        ("proxy.weight_decay", p.weight_decay, p.weight_decay >= 0, ">= 0"),
        ("proxy.label_smoothing", p.label_smoothing, 0 <= p.label_smoothing < 1, "in [0, 1)"),
        ("proxy.warmup_epochs", p.warmup_epochs, p.warmup_epochs >= 0, ">= 0"),
        ("proxy.bn_recalibration", p.bn_recalibration, p.bn_recalibration >= 0, ">= 0"),
        ("proxy.eval_every", p.eval_every, p.eval_every >= 0, ">= 0 (0: after the last epoch only)"),
        ("proxy.steps", p.steps, p.steps is None or p.steps >= 1, ">= 1 or null"),
        ("proxy.threads", p.threads, p.threads is None or p.threads >= 1, ">= 1 or null"),
        ("proxy.dropout", p.dropout, p.dropout is None or 0 <= p.dropout < 1, "in [0, 1) or null"),
        ("proxy.drop_path", p.drop_path, p.drop_path is None or 0 <= p.drop_path < 1, "in [0, 1) or null"),
    ])


def check_resources(t: TrialsConfig) -> None:
    """The Ray settings of a stage's trials (search, validation, family, ablation, NAS)."""
    check_all([
        ("trials.cpus_per_trial", t.cpus_per_trial, t.cpus_per_trial > 0, "> 0"),
        ("trials.gpus_per_trial", t.gpus_per_trial, t.gpus_per_trial >= 0, ">= 0"),
        ("trials.max_failures", t.max_failures, t.max_failures >= 0, ">= 0"),
        ("trials.max_concurrent_trials", t.max_concurrent_trials,
         t.max_concurrent_trials is None or t.max_concurrent_trials >= 1, ">= 1 or null"),
        ("trials.latency_batch", t.latency_batch, t.latency_batch >= 1, ">= 1"),
        ("trials.cost_min_run_time", t.cost_min_run_time, t.cost_min_run_time > 0, "> 0 (seconds)"),
    ])


def check_phis(phis, key: str) -> None:
    if not list(phis):
        raise ValueError(f"{key}=[] is empty; allowed: a non-empty list of compound coefficients, e.g. [0, 1, 2, 3]")
    if len(set(phis)) != len(list(phis)):
        raise ValueError(f"{key}={list(phis)} repeats a value; allowed: distinct compound coefficients")


def check_family(f: FamilyConfig) -> None:
    check_phis(f.phis, "family.phis")
    check_all([
        ("family.max_phi", f.max_phi, f.max_phi >= 0, ">= 0"),
        ("family.seeds", f.seeds, f.seeds >= 1, ">= 1"),
        ("family.ablation_phis", list(f.ablation_phis), bool(f.ablation_phis) and all(p > 0 for p in f.ablation_phis),
         "a non-empty list of values > 0"),
    ])


def check_report(r: ReportConfig) -> None:
    check_allowed("report.pick_rule", r.pick_rule)
    check_all([
        ("report.top_k", r.top_k, r.top_k >= 1, ">= 1"),
        ("report.min_gain_per_doubling", r.min_gain_per_doubling, math.isfinite(r.min_gain_per_doubling), "a number"),
    ])


def check_validate(v: ValidateConfig) -> None:
    check_all([
        ("validate.top_k", v.top_k, v.top_k >= 2, ">= 2 (the search's top two are compared at the longer budget)"),
        ("validate.random_k", v.random_k, v.random_k >= 0, ">= 0"),
        ("validate.epochs_mult", v.epochs_mult, v.epochs_mult >= 1 and math.isfinite(v.epochs_mult),
         ">= 1 (the validation budget is proxy.epochs x epochs_mult)"),
    ])


def check_tune_storage(storage: str | None) -> None:
    """``cluster.storage`` is null, an absolute path or a URI with a scheme (Ray Tune's ``storage_path``)."""
    if storage is not None and not (os.path.isabs(storage) or re.match(r"^[a-z][a-z0-9+.-]*://.", storage)):
        raise ValueError(f"cluster.storage={storage!r} is neither an absolute path nor a URI; allowed: null "
                         "(<run dir>/tune, one node), a path every node sees (/mnt/nfs/scalesearch), or a URI "
                         "(s3://bucket/scalesearch, gs://...)")

def check_environment(cfg: SearchAppConfig) -> None:
    """What can be checked about this machine / the cluster address before anything is written."""
    c, s = cfg.cluster, cfg.trials
    check_tune_storage(c.storage)
    address, where = ray_address(c)
    if address:
        check_address(address, where.split(" ")[0])
        return  # the cluster's resources are checked once connected
    wants_gpu = s.gpus_per_trial > 0 or str(cfg.proxy.device).startswith("cuda")
    if not wants_gpu:
        gpus = None
    else:
        import torch  # only when a GPU is asked for

        gpus = c.num_gpus if c.num_gpus is not None else torch.cuda.device_count()
    if gpus is not None and s.gpus_per_trial > gpus:
        raise ValueError(f"trials.gpus_per_trial={s.gpus_per_trial} but this machine has {gpus} GPU(s) for Ray; "
                         "allowed: 0 here, or cluster.address of a cluster with GPUs")
    cpus = c.num_cpus if c.num_cpus is not None else os.cpu_count() or 1
    if s.cpus_per_trial > cpus:
        raise ValueError(f"trials.cpus_per_trial={s.cpus_per_trial} but Ray gets {cpus} CPU(s) here; "
                         f"allowed: <= {cpus}")
    if gpus is not None and cfg.proxy.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"proxy.device={cfg.proxy.device!r} but this machine has no CUDA GPU; allowed: cpu or auto")


def check_search_app(cfg: SearchAppConfig) -> None:
    """Every setting of the search app, before the run directory, the data or Ray are touched."""
    s = cfg.search
    for key in ("strategy", "scheduler", "constraint", "cost"):
        check_allowed(f"search.{key}", getattr(s, key))
    check_allowed("model.depth_rounding", cfg.model.depth_rounding)
    check_proxy(cfg.proxy, cfg.trials.gpus_per_trial)
    check_resources(cfg.trials)
    check_seeds(cfg.dataset.seed, "dataset.seed")
    seeds = max((s.n_seeds, "search.n_seeds"), (cfg.family.seeds, "family.seeds"))
    check_seeds(cfg.seed, "seed", *seeds)
    check_all([
        ("search.n_seeds", s.n_seeds, s.n_seeds >= 1, ">= 1"),
        ("search.num_samples", s.num_samples, s.num_samples >= 1, ">= 1"),
        ("search.cost_tolerance", s.cost_tolerance, s.cost_tolerance > 0, "> 0 (relative)"),
        ("search.phi", s.phi, s.phi > 0 and math.isfinite(s.phi), "> 0"),
        ("search.resolution_multiple", s.resolution_multiple, s.resolution_multiple >= 1, ">= 1"),
        ("search.thin", s.thin, s.thin >= 1, ">= 1"),
        ("search.max_points", s.max_points, s.max_points is None or s.max_points >= 1, ">= 1 or null"),
        ("search.delta", s.delta, s.delta is None or 0 <= s.delta < 1, "in [0, 1) (accuracy) or null"),
        ("search.design", s.design, s.design in ("spread", "shares"), "spread | shares"),
        ("search.grace_period", s.grace_period, s.grace_period >= 1, ">= 1"),
        ("search.reduction_factor", s.reduction_factor, s.reduction_factor >= 2, ">= 2"),
        ("dataset.base_resolution", cfg.dataset.base_resolution, cfg.dataset.base_resolution >= 16, ">= 16"),
    ])
    if s.metric != "accuracy":
        raise ValueError(f"search.metric={s.metric!r}; allowed: accuracy")
    if s.constraint == "nominal" and s.cost != "macs":
        raise ValueError(f"search.cost={s.cost!r} with search.constraint=nominal: the nominal constraint is on "
                         "alpha*beta^2*gamma^2 and holds no cost; allowed: search.constraint=measured, "
                         "or search.cost=macs")
    if s.strategy == "race":
        check_race(cfg)
    for key, v in (("search.budget", s.budget), ("search.eta", s.eta)):
        if s.strategy != "race" and v is not None:
            raise ValueError(f"{key}={v:g} applies to the race only (search.strategy={s.strategy} would ignore it); "
                             f"allowed: search=race, or {key}=null")
    if s.strategy == "optuna":
        search_sampler(cfg)
        if s.storage:
            check_storage(s.storage)
    check_validate(cfg.validate)
    check_family(cfg.family)
    check_report(cfg.report)


def check_race(cfg: SearchAppConfig) -> None:
    """The race's rule (scalesearch.plan.race.RaceRule checks it) and what it cannot be combined with."""
    from .race import RaceRule

    s = cfg.search
    RaceRule(tuple(s.rungs), s.n_seeds, s.max_seeds, s.seed_step, s.budget, delta=s.delta, eta=s.eta)
    if not 0 <= s.cooldown < 1:
        raise ValueError(f"search.cooldown={s.cooldown}; allowed: a fraction in [0, 1) "
                         "(0: separate trainings per rung)")
    check_seeds(cfg.seed, "seed", s.max_seeds, "search.max_seeds")
    if s.scheduler != "none":
        raise ValueError(f"search.scheduler={s.scheduler!r} with search.strategy=race: the race decides which "
                         "trainings go on; allowed: search.scheduler=none")


def check_nas(cfg: NASAppConfig) -> None:
    n = cfg.nas
    check_allowed("nas.objective", n.objective)
    check_allowed("nas.cost", n.cost)
    check_proxy(cfg.proxy, cfg.trials.gpus_per_trial)
    check_resources(cfg.trials)
    check_seeds(cfg.dataset.seed, "dataset.seed")
    check_seeds(n.seed, "nas.seed")
    items = [("nas.num_samples", n.num_samples, n.num_samples >= 1, ">= 1"),
             ("nas.w", n.w, math.isfinite(n.w), "a finite number (MnasNet: -0.07)"),
             ("nas.latency_batch", n.latency_batch, n.latency_batch >= 1, ">= 1"),
             ("nas.latency_min_run_time", n.latency_min_run_time, n.latency_min_run_time > 0, "> 0 (seconds)")]
    for key in ("target_macs", "target_latency_ms"):
        v = getattr(n, key)
        items.append((f"nas.{key}", v, v is None or v > 0, "> 0 or null (B0's cost)"))
    check_all(items)
    nas_sampler(n)
    check_phis(cfg.chain.family_phis, "chain.family_phis")


def check_generate(cfg: GenerateConfig) -> None:
    for key in ("mode", "constraint"):
        check_allowed(key, getattr(cfg, key))
    check_phis(cfg.phis, "phis")
    check_all([("num_classes", cfg.num_classes, cfg.num_classes >= 1, ">= 1"),
             ("resolution_multiple", cfg.resolution_multiple, cfg.resolution_multiple >= 1, ">= 1")])
    if cfg.base_resolution < 16:
        raise ValueError(f"base_resolution={cfg.base_resolution} is too small; allowed: >= 16")
    if cfg.mode == "formula":
        _check_generate_phis(cfg)


def _check_generate_phis(cfg: GenerateConfig) -> None:
    """Every member of the formula family is buildable (scaling.check_phi)."""
    from ..scaling.coefficients import Coefficients, check_phi, member_name
    from ..scaling.spec import load_baseline

    c = Coefficients(cfg.alpha, cfg.beta, cfg.gamma)
    baseline = load_baseline(cfg.baseline)
    for phi in cfg.phis:
        check_phi(phi, f"phis contains {phi:g} ({member_name(phi)})", baseline, cfg.base_resolution,
                  (c.alpha, c.beta, c.gamma), "phis")


# keys of scalesearch 0.2 and where they live in 0.3: refused on the command line with one line naming the new
# place (check_moved), moved in the settings an older run stored (migrate_settings), so its runs resume and compare
MOVED = {
    **{f"search.{k}": f"trials.{k}" for k in ("cpus_per_trial", "gpus_per_trial", "max_concurrent_trials",
                                              "max_failures", "reuse_actors", "measure_device_costs",
                                              "latency_batch", "cost_min_run_time")},
    "report.train_family": "family.train", "report.max_phi": "family.max_phi", "report.family_seeds": "family.seeds",
    "report.compare_paper": "family.compare_paper", "report.ablation": "family.ablation",
    "report.ablation_phis": "family.ablation_phis", "family_phis": "family.phis",
}


def check_moved(overrides: list[str]) -> None:
    """A command line override of a moved key (``report.train_family=false``): one line naming its new place."""
    for arg in overrides:
        key = arg.partition("=")[0].lstrip("+~")
        if key in MOVED:
            raise ValueError(f"{key} moved to {MOVED[key]}; allowed: {MOVED[key]}=" + arg.partition("=")[2])


# result-defining keys added since runs were first recorded, with the value that reproduces what a run without the
# key did: a stored run lacking one resumes, extends and compares as the same settings
ADDED = {"search.design": "spread"}


def migrate_settings(config: dict) -> dict:
    """A copy of an app's stored settings (search.json) with every moved key in its new place (a stored value of the
    new key wins) and every added key at the value older runs had (:data:`ADDED`); settings of this version come
    back equal."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for added, value in ADDED.items():
        group, _, key = added.rpartition(".")
        if isinstance(out.get(group), dict):
            out[group].setdefault(key, value)
    for old, new in MOVED.items():
        group, _, key = old.rpartition(".")
        source = out.get(group) if group else out
        if not isinstance(source, dict) or key not in source:
            continue
        value = source.pop(key)
        new_group, _, new_key = new.rpartition(".")
        out.setdefault(new_group, {})
        if isinstance(out[new_group], dict):
            out[new_group].setdefault(new_key, value)
    return out
