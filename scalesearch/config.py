"""Structured configs (plain dataclasses) and their checks: the one source of truth for every
setting, its default and its allowed values.

``cli`` registers the app configs with Hydra's ConfigStore, so every YAML in ``conf/`` is validated
against these types; the shipped YAML defaults equal the dataclass defaults (tested). Library code
takes the dataclasses without importing Hydra. ``check_*`` raise one-line ``ValueError``s naming
the setting and what is allowed, before anything is trained.
"""

from __future__ import annotations

import copyreg
import math
import os
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "DatasetConfig", "FaultConfig", "ProxyConfig", "SearchConfig", "TrialsConfig", "FamilyConfig", "ClusterConfig",
    "ModelConfig", "ValidateConfig", "ReportConfig", "SearchAppConfig", "GenerateConfig", "ReportAppConfig",
    "ValidateAppConfig", "AblateAppConfig", "NASConfig", "ChainConfig", "NASAppConfig", "CompareAppConfig", "ALLOWED",
    "check_search_app", "check_proxy", "check_resources", "check_family", "check_report", "MOVED", "migrate_settings",
    "check_moved", "check_validate", "check_nas", "check_phis", "check_address", "check_tune_storage", "ray_address",
    "check_environment", "check_generate", "check_seeds", "MAX_SEED", "AUTO_SAMPLERS", "check_sampler", "make_sampler",
    "search_sampler", "nas_sampler", "check_storage", "check_race", "trial_budget", "flatten",
]

MAX_SEED = 2**32 - 1  # the largest seed numpy's RandomState (Optuna's samplers) takes
AUTO_SAMPLERS = {"weighted": "TPESampler", "pareto": "NSGAIISampler"}  # nas.sampler=auto

# the allowed values of every setting with a fixed set (one place; the checks and the help read it)
ALLOWED = {
    "search.strategy": ("grid", "optuna", "race"),
    "search.scheduler": ("none", "asha"),
    "search.constraint": ("measured", "nominal"),
    "search.cost": ("macs", "activations", "latency", "train_step"),
    "model.depth_rounding": ("auto", "stage", "total"),
    "proxy.optimizer": ("sgd", "adamw"),
    "proxy.schedule": ("cosine", "onecycle"),
    "proxy.compile": ("off", "auto", "on"),
    "report.pick_rule": ("marginal", "knee"),
    "nas.objective": ("weighted", "pareto"),
    "nas.cost": ("macs", "latency"),
    "mode": ("formula", "official"),
    "constraint": ("measured", "nominal"),
}


@dataclass
class DatasetConfig:
    # synthetic | imagefolder | cifar10 | cifar100 | svhn | fashionmnist
    name: str = "synthetic"
    root: Optional[str] = None
    # the proxy's base resolution: the baseline proxy trains at this size, candidates at their solved size
    base_resolution: int = 40
    # size images are decoded and cached at (None: the dataset's native size)
    cache_resolution: Optional[int] = None
    # cap images per class (None: all); keeps proxy runs short on big datasets
    train_per_class: Optional[int] = None
    val_per_class: Optional[int] = None
    # for a single-tree imagefolder (no train/ val/ test/ subdirs): held-out fraction
    val_fraction: float = 0.2
    download: bool = False
    # keep the decoded uint8 cache on disk next to the data (keyed by content)
    disk_cache: bool = False
    # skip unreadable images with a warning instead of failing
    skip_corrupt: bool = False
    seed: int = 0
    # synthetic only
    num_classes: int = 10
    image_size: int = 64
    train_size: int = 500
    val_size: int = 400


@dataclass
class FaultConfig:
    """Test-only fault injection (see docs/RELIABILITY.md)."""

    # trial indices (0-based, in submission order) that raise on every attempt
    fail_trials: list[int] = field(default_factory=list)
    # trial indices whose learning rate is blown up so the loss diverges
    diverge_trials: list[int] = field(default_factory=list)
    # sleep this long (s) after every epoch: lets a test kill a run mid-way
    epoch_sleep: float = 0.0
    # trial indices that hold fault.hog_gb of memory for up to 20 s before training (Ray's memory monitor test)
    hog_trials: list[int] = field(default_factory=list)
    hog_gb: float = 0.0


@dataclass
class ProxyConfig:
    epochs: int = 2
    # when set, the budget is this many optimizer steps instead of epochs
    steps: Optional[int] = None
    batch_size: int = 32
    eval_batch_size: int = 500
    optimizer: str = "adamw"  # sgd (nesterov) | adamw
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.3
    schedule: str = "cosine"  # cosine | onecycle
    augment: bool = False  # random crop + flip: slows learning in runs of a few hundred steps
    dropout: Optional[float] = 0.0  # None: the spec's (0.2)
    drop_path: Optional[float] = 0.0  # None: the spec's (0.2)
    # images (a fixed random subset of the training split) whose batch statistics replace the BN
    # running averages before each evaluation ("precise BN"; 0: off)
    bn_recalibration: int = 128
    # evaluate every k epochs (0: only after the last one; ASHA needs 1 and sets it)
    eval_every: int = 0
    device: str = "cpu"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True  # on CUDA and CPU (~2x faster there for this net)
    compile: str = "off"  # off | auto | on (torch.compile on a fixed shape)
    threads: Optional[int] = None  # torch CPU threads per trial (None: trials.cpus_per_trial)
    fault: FaultConfig = field(default_factory=FaultConfig)


@dataclass
class SearchConfig:
    strategy: str = "grid"  # grid | optuna
    space: str = "compound"  # a file in search_spaces/ (name or path)
    n_seeds: int = 3
    # measured: every candidate at the target cost as built (resolution solved on whole pixels);
    # nominal: the paper's alpha*beta^2*gamma^2 = target with the proxy built at round(base*gamma)
    constraint: str = "measured"
    # the cost held equal: macs | activations | latency | train_step
    cost: str = "macs"
    # measured: candidates whose closest solvable cost is further than this (relative) from the target
    # are infeasible; nominal: candidates beyond it are flagged cost_flag=off
    cost_tolerance: float = 0.1
    # the compound coefficient the candidates are built at (cost target^phi); coefficients are per unit of phi
    phi: float = 1.0
    # grid: keep every k-th feasible point (1 = all) and/or at most max_points spread over the surface
    thin: int = 1
    max_points: Optional[int] = 5
    # always evaluate the paper's (1.2, 1.1, 1.15) (measured: its alpha, beta) when it is feasible
    include_paper: bool = True
    # how max_points are spread: spread (farthest-point in log alpha, beta, gamma) | shares (farthest-point over the
    # candidates' realized shares, each point of the triangle once: the design for the model over shares)
    design: str = "spread"
    # race (over the grid's candidates): rungs as multiples of proxy.epochs; the first look at n_seeds seeds, the
    # top rung's looks add seed_step seeds up to max_seeds; budget: epochs of training in all (null: none)
    rungs: list[float] = field(default_factory=lambda: [1.0])
    max_seeds: int = 8
    seed_step: int = 2
    budget: Optional[float] = None
    # an accuracy difference not worth more trainings or compute: the model over shares names the options within
    # delta of the best (null: 0.01); a race also stops at a top-rung look when the leader is within delta of the
    # best at the family-wise level (the indifference zone; null: off)
    delta: Optional[float] = None
    # race: successive halving of the contenders — after each look but the last only the best ceil(n/eta) (at least
    # 2) go on; the others pause: untested, not excluded, so not "decided" while any is paused (null: off)
    eta: Optional[float] = None
    # race: a rung trains one trunk at constant learning rate and cools down the last `cooldown` of its steps on a
    # copy; the next rung continues the trunk (0: every rung a separate training with proxy.schedule)
    cooldown: float = 0.4  # measured: 0.2 read 0.024 low at a 2-epoch rung (benchmarks/README.md)
    # race: false records every candidate at every rung and seed (the replay benchmark's table), dropping nothing
    drop: bool = True
    # optuna
    num_samples: int = 20
    sampler: str = "TPESampler"  # any optuna.samplers class name
    sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    storage: Optional[str] = None  # e.g. sqlite:///optuna.db (relative paths: in the run dir)
    # proxy resolution on multiples of this (1: every pixel)
    resolution_multiple: int = 1
    # Ray Tune's early stopping of single trials
    scheduler: str = "none"  # none | asha
    grace_period: int = 1
    reduction_factor: int = 2
    metric: str = "accuracy"


@dataclass
class TrialsConfig:
    """How every training runs as a Ray Tune trial, in every app that trains (search, validation, family, ablation,
    NAS): its resources, retries and worker reuse, and the device costs measured beside its accuracy. None of it
    defines a result, so a resume may change it (but for latency_batch when search.cost=latency)."""

    cpus_per_trial: float = 1
    gpus_per_trial: float = 0  # e.g. 0.25: four trials share a GPU
    max_concurrent_trials: Optional[int] = None  # None: as many as the cluster's resources allow
    max_failures: int = 1  # retries of a failed trial (a raised error, a dead worker, a memory kill)
    # run the next trial in the finished trial's worker process (no re-import of torch)
    reuse_actors: bool = True
    # measure inference latency and training-step time of every trained network on its device
    measure_device_costs: bool = True
    latency_batch: int = 8  # images per timed inference batch (the latency cost, search.cost=latency)
    cost_min_run_time: float = 0.1  # seconds of timed repeats per device-cost measurement


@dataclass
class ClusterConfig:
    # null: join $RAY_ADDRESS when it is set, else start Ray locally; "auto" or "host:port" to join
    address: Optional[str] = None
    num_cpus: Optional[int] = None
    num_gpus: Optional[int] = None
    include_dashboard: bool = False
    dashboard_host: str = "127.0.0.1"
    # Ray Tune's experiments (trial states, what a resume restores): null = <run dir>/tune on the driver (one node);
    # on several nodes an absolute path every node sees (NFS) or a pyarrow URI (s3://..., gs://...)
    storage: Optional[str] = None


@dataclass
class ModelConfig:
    baseline: Optional[str] = None  # path to a baseline.json (from scalesearch-nas); None: B0
    # how depth multipliers become block counts: stage (ceil per stage, the paper's TF code),
    # total (round the total, distribute over stages), auto (total when constraint=measured)
    depth_rounding: str = "auto"


@dataclass
class ValidateConfig:
    """The proxy-fidelity audit: the top-k candidates (>= 2: the runner-up is the search's #2), random others in
    addition, and the paper's point when it was searched, retrained longer."""

    enabled: bool = True
    top_k: int = 2
    random_k: int = 0
    epochs_mult: float = 3.0  # the validation budget: proxy.epochs (or steps) x this


@dataclass
class FamilyConfig:
    """What the search hands on: the members emitted in family.json, and what trains after the search (the family's
    proxy trainings, the paper's family beside it, the Fig. 8 ablation)."""

    phis: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])  # negative: below B0
    train: bool = True  # proxy-train the members up to max_phi (the report's accuracy-vs-cost table and pick)
    max_phi: int = 3
    seeds: int = 1  # proxy seeds per trained member
    compare_paper: bool = False  # also train the paper's (1.2, 1.1, 1.15) family beside it
    ablation: bool = False  # also run the Fig. 8 ablation (as scalesearch-ablate) into the run dir
    ablation_phis: list[float] = field(default_factory=lambda: [1.0, 2.0])  # its nominal costs 2^phi


@dataclass
class ReportConfig:
    """How the report renders a run's tables (it never trains)."""

    enabled: bool = True
    pick_rule: str = "marginal"  # marginal | knee
    min_gain_per_doubling: float = 0.01
    top_k: int = 5  # candidates in the seed-spread table


@dataclass
class _TrainingAppConfig:
    """The first keys of every app that proxy-trains on Ray Tune (search, ablate, nas): the data, the proxy
    budget, how its trials run (trials) and the cluster."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    trials: TrialsConfig = field(default_factory=TrialsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


@dataclass
class SearchAppConfig(_TrainingAppConfig):
    search: SearchConfig = field(default_factory=SearchConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    family: FamilyConfig = field(default_factory=FamilyConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    seed: int = 0
    resume: bool = False
    verbose: int = 1


@dataclass
class GenerateConfig:
    alpha: float = 1.2
    beta: float = 1.1
    gamma: float = 1.15
    mode: str = "formula"  # formula | official
    constraint: str = "nominal"  # nominal (resolution base*gamma^phi) | measured (resolution solved: cost target^phi)
    base_resolution: int = 224
    num_classes: int = 1000
    phis: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    target: float = 2.0
    tolerance: float = 0.1
    allow_off_constraint: bool = False
    resolution_multiple: int = 8
    depth_rounding: str = "stage"
    baseline: Optional[str] = None
    verbose: int = 1


@dataclass
class ReportAppConfig:
    """``scalesearch-report``: re-render a run's report from its tables (never trains)."""

    run_dir: Optional[str] = None
    report: ReportConfig = field(default_factory=ReportConfig)
    verbose: int = 1


@dataclass
class ValidateAppConfig:
    """``scalesearch-validate``: the validation stage on a finished run (then best, family, report again)."""

    run_dir: Optional[str] = None
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    verbose: int = 1


@dataclass
class AblateAppConfig(_TrainingAppConfig):
    """``scalesearch-ablate``: depth-, width-, resolution-only vs compound scaling of B0 at matched cost."""

    run_dir: Optional[str] = None  # a search run: its best.json gives the compound variant; results go there
    phis: list[float] = field(default_factory=lambda: [1.0, 2.0])  # nominal cost 2^phi
    compound: Optional[list[str]] = None  # best (run_dir's best.json) and/or paper; None: both
    seeds: int = 1
    seed: int = 0
    resume: bool = False
    verbose: int = 1


@dataclass
class NASConfig:
    space: str = "blocks"  # a file in search_spaces/ (name or path)
    objective: str = "weighted"  # weighted: accuracy x (cost/target)^w | pareto: max accuracy, min cost
    w: float = -0.07  # MnasNet's soft constraint; > 0 rewards cost (warned)
    cost: str = "macs"  # macs (measured, per image at base resolution) | latency (ms per batch, measured)
    target_macs: Optional[float] = None  # None: the MACs of B0 on this data at base resolution
    target_latency_ms: Optional[float] = None  # None: B0's latency measured before the search
    latency_batch: int = 8
    latency_min_run_time: float = 0.2
    num_samples: int = 20
    sampler: str = "auto"  # auto: TPESampler (weighted), NSGAIISampler (pareto); or any optuna.samplers class
    sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    include_b0: bool = True


@dataclass
class ChainConfig:
    search: bool = False  # then run the coefficient search on the found baseline (run_dir/coefficients)
    report: bool = False  # the coefficient search's report (report.enabled)
    family_phis: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])


@dataclass
class NASAppConfig(_TrainingAppConfig):
    search: SearchConfig = field(default_factory=SearchConfig)  # the chained coefficient search (chain.search)
    nas: NASConfig = field(default_factory=NASConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    resume: bool = False
    verbose: int = 1


@dataclass
class CompareAppConfig:
    """``scalesearch-compare``: the best coefficients of several runs (datasets) side by side."""

    runs: list[str] = field(default_factory=list)  # a Hydra multirun directory and/or run directories
    out_dir: Optional[str] = None  # None: the Hydra run directory
    verbose: int = 1


def trial_budget(proxy: ProxyConfig, trials: TrialsConfig) -> ProxyConfig:
    """The proxy budget as trials run it: torch threads = proxy.threads, else trials.cpus_per_trial."""
    return proxy if proxy.threads is not None else replace(proxy, threads=max(1, int(trials.cpus_per_trial)))


def flatten(settings: dict, prefix: str = "") -> dict:
    """Nested settings as dotted keys: {"search": {"n_seeds": 3}} -> {"search.n_seeds": 3} (an empty dict stays)."""
    out = {}
    for k, v in (settings or {}).items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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


def _allowed(key: str, value) -> None:
    if value not in ALLOWED[key]:
        raise ValueError(f"{key}={value!r} is unknown; allowed: {', '.join(ALLOWED[key])}")


def _checks(items) -> None:
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
        _allowed(f"proxy.{key}", getattr(p, key))
    if p.device not in ("auto", "cpu") and not str(p.device).startswith("cuda"):
        raise ValueError(f"proxy.device={p.device!r} is not a device; allowed: auto, cpu, cuda, cuda:N")
    if str(p.device).startswith("cuda") and gpus_per_trial == 0:
        raise ValueError(f"proxy.device={p.device!r} needs trials.gpus_per_trial > 0 (Ray hides GPUs from trials "
                         "without a GPU share); allowed: proxy.device=cpu|auto, or a GPU share")
    _checks([
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
    _checks([
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
    _checks([
        ("family.max_phi", f.max_phi, f.max_phi >= 0, ">= 0"),
        ("family.seeds", f.seeds, f.seeds >= 1, ">= 1"),
        ("family.ablation_phis", list(f.ablation_phis), bool(f.ablation_phis) and all(p > 0 for p in f.ablation_phis),
         "a non-empty list of values > 0"),
    ])


def check_report(r: ReportConfig) -> None:
    _allowed("report.pick_rule", r.pick_rule)
    _checks([
        ("report.top_k", r.top_k, r.top_k >= 1, ">= 1"),
        ("report.min_gain_per_doubling", r.min_gain_per_doubling, math.isfinite(r.min_gain_per_doubling), "a number"),
    ])


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


def check_validate(v: ValidateConfig) -> None:
    _checks([
        ("validate.top_k", v.top_k, v.top_k >= 2, ">= 2 (the search's top two are compared at the longer budget)"),
        ("validate.random_k", v.random_k, v.random_k >= 0, ">= 0"),
        ("validate.epochs_mult", v.epochs_mult, v.epochs_mult >= 1 and math.isfinite(v.epochs_mult),
         ">= 1 (the validation budget is proxy.epochs x epochs_mult)"),
    ])


def check_sampler(name: str, key: str) -> type:
    import optuna

    cls = getattr(optuna.samplers, name, None)
    if not isinstance(cls, type):
        raise ValueError(f"{key}={name!r} is not an optuna sampler; allowed: TPESampler, RandomSampler, CmaEsSampler, "
                         "QMCSampler, GPSampler, NSGAIISampler, ... (a class in optuna.samplers)")
    return cls


def make_sampler(name: str, kwargs: dict, prefix: str, seed: int | None = None):
    """The optuna sampler ``name(**kwargs)``, ``seed`` added where it takes one and kwargs set none: the one check
    of ``<prefix>.sampler`` and ``<prefix>.sampler_kwargs`` (the search and the NAS app), a one-line ValueError."""
    import inspect

    cls = check_sampler(name, f"{prefix}.sampler")
    params = [p for p in inspect.signature(cls).parameters if p not in ("args", "kwargs")]
    given = dict(kwargs)
    try:
        sampler = cls(**{**({"seed": seed} if "seed" in params and seed is not None else {}), **given})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{prefix}.sampler_kwargs={given} do not fit {prefix}.sampler={name!r} ({e}); allowed: "
                         f"keyword arguments of optuna.samplers.{name}: {', '.join(params) or 'none'}") from None
    if isinstance(getattr(sampler, "_thread_lock", None), type(threading.Lock())):
        copyreg.pickle(cls, _sampler_without_lock)
    return sampler


def _sampler_without_lock(sampler):
    """Ray Tune pickles its searcher, the sampler with it, into its experiment state; Optuna 5's genetic samplers
    (NSGAIISampler, NSGAIIISampler) hold a threading.Lock, which does not pickle: pickled without it, rebuilt with a
    new one (registered through copyreg, which pickle and Ray's cloudpickle both consult)."""
    return _rebuild_sampler, (type(sampler), {k: v for k, v in vars(sampler).items() if k != "_thread_lock"})


def _rebuild_sampler(cls, state: dict):
    sampler = cls.__new__(cls)
    sampler.__dict__.update(state)
    sampler._thread_lock = threading.Lock()
    return sampler


_STORAGES = ("sqlite:///optuna.db (in the run directory), sqlite:////abs/dir/optuna.db, or an SQLAlchemy URL "
             "dialect+driver://user:password@host/db whose driver is installed")


def check_storage(url: str, key: str = "search.storage") -> None:
    """An Optuna storage URL, checked without connecting: SQLAlchemy parses it, its dialect's driver imports, and a
    sqlite file lies in an existing writable directory (a relative path: in the run directory itself)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        u = make_url(url)
        u.get_dialect().import_dbapi()
    except NoSuchModuleError:  # an ArgumentError too
        raise ValueError(f"{key}={url!r}: SQLAlchemy knows no database {u.drivername!r}; "
                         f"allowed: {_STORAGES}") from None
    except (ArgumentError, ValueError):
        raise ValueError(f"{key}={url!r} is not a database URL; allowed: {_STORAGES}") from None
    except ImportError as e:
        raise ValueError(f"{key}={url!r} needs the {u.get_backend_name()} driver {e.name or e}, which is not "
                         f"installed; allowed: a URL whose driver is installed (install {e.name or 'it'}, or name "
                         "another as dialect+driver://...), or sqlite:///optuna.db (in the run directory)") from None
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        _check_sqlite_file(url, u.database, key)


def _check_sqlite_file(url: str, database: str, key: str) -> None:
    path = Path(database)
    if not path.is_absolute():
        if path.parent != Path("."):
            raise ValueError(f"{key}={url!r}: a relative path lies in the new run directory, which has no "
                             f"{path.parent}/; allowed: a file name (sqlite:///optuna.db) or an absolute path")
        return
    where = path.parent
    if not where.is_dir():
        raise ValueError(f"{key}={url!r}: the directory {where} does not exist; allowed: a file in an existing, "
                         f"writable directory, e.g. sqlite:///optuna.db (in the run directory)")
    if (path.exists() and not path.is_file()) or not os.access(where, os.W_OK | os.X_OK):
        raise ValueError(f"{key}={url!r}: {path} cannot be written; allowed: a file in an existing, writable "
                         "directory, e.g. sqlite:///optuna.db (in the run directory)")


def search_sampler(cfg: SearchAppConfig):
    """The search app's Optuna sampler (search.sampler with search.sampler_kwargs), seeded by ``seed`` whatever the
    class (search.sampler_kwargs.seed wins). Before, only samplers whose own ``__init__`` named ``seed`` got it: the
    default TPESampler (whose ``__init__`` optuna wraps) was unseeded, so the same seed gave other suggestions."""
    return make_sampler(cfg.search.sampler, cfg.search.sampler_kwargs, "search", cfg.seed)


def nas_sampler(n: NASConfig):
    """The NAS app's sampler: nas.sampler (auto: TPESampler for the weighted objective, NSGAIISampler for pareto)
    with nas.sampler_kwargs, seeded by nas.seed."""
    name = AUTO_SAMPLERS[n.objective] if n.sampler == "auto" else n.sampler
    return make_sampler(name, n.sampler_kwargs, "nas", n.seed)


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
        _allowed(f"search.{key}", getattr(s, key))
    _allowed("model.depth_rounding", cfg.model.depth_rounding)
    check_proxy(cfg.proxy, cfg.trials.gpus_per_trial)
    check_resources(cfg.trials)
    check_seeds(cfg.dataset.seed, "dataset.seed")
    seeds = max((s.n_seeds, "search.n_seeds"), (cfg.family.seeds, "family.seeds"))
    check_seeds(cfg.seed, "seed", *seeds)
    _checks([
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
    from .plan.race import RaceRule

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
    _allowed("nas.objective", n.objective)
    _allowed("nas.cost", n.cost)
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
    _checks(items)
    nas_sampler(n)
    check_phis(cfg.chain.family_phis, "chain.family_phis")


def check_generate(cfg: GenerateConfig) -> None:
    for key in ("mode", "constraint"):
        _allowed(key, getattr(cfg, key))
    check_phis(cfg.phis, "phis")
    _checks([("num_classes", cfg.num_classes, cfg.num_classes >= 1, ">= 1"),
             ("resolution_multiple", cfg.resolution_multiple, cfg.resolution_multiple >= 1, ">= 1")])
    if cfg.base_resolution < 16:
        raise ValueError(f"base_resolution={cfg.base_resolution} is too small; allowed: >= 16")
    if cfg.mode == "formula":
        _check_generate_phis(cfg)


def _check_generate_phis(cfg: GenerateConfig) -> None:
    """Every member of the formula family is buildable (scaling.check_phi)."""
    from .scaling.scaler import Coefficients, check_phi, member_name
    from .scaling.spec import load_baseline

    c = Coefficients(cfg.alpha, cfg.beta, cfg.gamma)
    baseline = load_baseline(cfg.baseline)
    for phi in cfg.phis:
        check_phi(phi, f"phis contains {phi:g} ({member_name(phi)})", baseline, cfg.base_resolution,
                  (c.alpha, c.beta, c.gamma), "phis")
