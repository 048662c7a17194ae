"""Structured configs (plain dataclasses): the one source of truth for every setting, its default and, where the
values form a fixed set, its allowed values (``ALLOWED``).

``apps/cli`` registers the app configs with Hydra's ConfigStore, so every YAML in ``conf/`` is validated against
these types; the shipped YAML defaults equal the dataclass defaults (tested). Library code takes the dataclasses
without importing Hydra. The checks of the values, one ``ValueError`` line each before anything trains, are
``scalesearch.plan.preflight``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

__all__ = [
    "DatasetConfig", "FaultConfig", "ProxyConfig", "SearchConfig", "TrialsConfig", "FamilyConfig", "ClusterConfig",
    "ModelConfig", "ValidateConfig", "ReportConfig", "SearchAppConfig", "GenerateConfig", "ReportAppConfig",
    "ValidateAppConfig", "AblateAppConfig", "NASConfig", "ChainConfig", "NASAppConfig", "CompareAppConfig", "ALLOWED",
    "MAX_SEED", "trial_budget", "flatten",
]

MAX_SEED = 2**32 - 1  # the largest seed numpy's RandomState (Optuna's samplers) takes

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


