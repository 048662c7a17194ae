"""Structured configs (plain dataclasses). ``cli`` registers them with Hydra's
ConfigStore so every YAML in ``conf/`` is validated against these types; library
code takes them (or duck-typed equivalents) without importing Hydra."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = [
    "DatasetConfig",
    "ProxyConfig",
    "FaultConfig",
    "SearchConfig",
    "ClusterConfig",
    "ReportConfig",
    "ModelConfig",
    "SearchAppConfig",
    "GenerateConfig",
    "ReportAppConfig",
    "AblateAppConfig",
]


@dataclass
class DatasetConfig:
    # synthetic | imagefolder | cifar10 | cifar100 | svhn | fashionmnist
    name: str = "synthetic"
    root: Optional[str] = None
    # the proxy's base resolution: B0 proxies train at this size, candidates at round(base·γ)
    base_resolution: int = 32
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
    train_size: int = 2000
    val_size: int = 500


@dataclass
class FaultConfig:
    """Test-only fault injection (see docs/RELIABILITY.md)."""

    # trial indices (0-based, in submission order) that raise on every attempt
    fail_trials: list[int] = field(default_factory=list)
    # trial indices whose learning rate is blown up so the loss diverges
    diverge_trials: list[int] = field(default_factory=list)
    # sleep this long (s) after every epoch: lets a test kill a search mid-way
    epoch_sleep: float = 0.0


@dataclass
class ProxyConfig:
    epochs: int = 3
    # when set, the budget is this many optimizer steps instead of epochs
    steps: Optional[int] = None
    batch_size: int = 128
    eval_batch_size: int = 512
    optimizer: str = "sgd"  # sgd (nesterov) | adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.5
    schedule: str = "cosine"  # cosine | onecycle
    augment: bool = True
    dropout: Optional[float] = None  # None: the spec's (0.2)
    drop_path: Optional[float] = None  # None: the spec's (0.2)
    # images (a fixed random subset of the training split) whose batch statistics replace the BN
    # running averages before each evaluation ("precise BN"; 0: off)
    bn_recalibration: int = 512
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True  # on CUDA and CPU (~2x faster there for this net)
    compile: str = "off"  # off | auto | on (torch.compile on a fixed shape)
    threads: Optional[int] = None  # torch CPU threads per trial (None: cpus_per_trial)
    fault: FaultConfig = field(default_factory=FaultConfig)


@dataclass
class SearchConfig:
    strategy: str = "grid"  # grid | optuna
    space: str = "compound"  # a file in search_spaces/ (name or path)
    n_seeds: int = 1
    # grid: keep every k-th feasible point (1 = all) and/or at most max_points evenly spaced
    thin: int = 1
    max_points: Optional[int] = None
    # always evaluate the paper's (1.2, 1.1, 1.15) if it is on the lattice
    include_paper: bool = True
    # optuna
    num_samples: int = 20
    sampler: str = "TPESampler"  # any optuna.samplers class name
    sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    storage: Optional[str] = None  # e.g. sqlite:///optuna.db (relative paths: in the run dir)
    # measured cost ratio (rounded proxy vs B0 proxy) allowed off the target
    cost_tolerance: float = 0.5
    filter_measured: bool = False  # drop candidates off the measured target instead of flagging
    # proxy resolution = round(base_resolution * gamma) to a multiple of this (1: nearest pixel)
    resolution_multiple: int = 1
    # Ray Tune
    scheduler: str = "none"  # none | asha
    grace_period: int = 1
    reduction_factor: int = 2
    max_concurrent_trials: Optional[int] = None
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_failures: int = 1
    metric: str = "accuracy"
    # run the next trial in the finished trial's worker process (no new process, no re-import of
    # torch): the per-trial overhead of short proxies drops by seconds (benchmarks/search_overhead.py)
    reuse_actors: bool = True


@dataclass
class ClusterConfig:
    address: Optional[str] = None  # None: start Ray locally; "auto" or "host:port" to join
    num_cpus: Optional[int] = None
    num_gpus: Optional[int] = None
    include_dashboard: bool = False
    dashboard_host: str = "127.0.0.1"


@dataclass
class ReportConfig:
    enabled: bool = True
    train_family: bool = False
    max_phi: int = 3
    compare_paper: bool = False
    pick_rule: str = "marginal"  # marginal | knee
    min_gain_per_doubling: float = 0.01
    family_seeds: int = 1  # proxy seeds per trained family member (mean ± std when > 1)
    top_k: int = 5  # candidates in the seed-spread table
    ablation: bool = False  # also run the Fig. 8 ablation (as scalesearch-ablate) into the run dir


@dataclass
class ModelConfig:
    baseline: Optional[str] = None  # path to a baseline.json (from scalesearch-nas); None: B0


@dataclass
class SearchAppConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    resume: bool = False
    verbose: int = 1
    family_phis: list[int] = field(default_factory=lambda: list(range(8)))


@dataclass
class GenerateConfig:
    alpha: float = 1.2
    beta: float = 1.1
    gamma: float = 1.15
    mode: str = "formula"  # formula | official
    base_resolution: int = 224
    num_classes: int = 1000
    phis: list[float] = field(default_factory=lambda: list(range(8)))
    target: float = 2.0
    tolerance: float = 0.1
    allow_off_constraint: bool = False
    resolution_multiple: int = 8
    baseline: Optional[str] = None


@dataclass
class ReportAppConfig:
    """``scalesearch-report``: re-render (and, with report.train_family, complete) a run's report."""

    run_dir: Optional[str] = None  # required: a search run directory (results.csv, best.json, family.json)
    report: ReportConfig = field(default_factory=ReportConfig)
    verbose: int = 1


@dataclass
class AblateAppConfig:
    """``scalesearch-ablate``: depth-, width-, resolution-only vs compound scaling of B0 at matched MACs."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    run_dir: Optional[str] = None  # a search run: its best.json gives the compound variant; results go there
    phis: list[int] = field(default_factory=lambda: [1, 2])  # nominal cost 2^φ
    compound: Optional[list[str]] = None  # best (run_dir's best.json) and/or paper; None: both (paper alone without run_dir)
    seeds: int = 1
    seed: int = 0
    verbose: int = 1
