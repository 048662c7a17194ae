"""Structured configs (plain dataclasses): the one source of truth for every setting, its default, its description
(``setting(default, help)``: the field's ``help`` metadata) and, where the values form a fixed set, its allowed values
(``ALLOWED``). A help's first line is its brief (``brief``): the comment beside the key in ``conf/*.yaml`` (or none)
and its ``--help`` line; ``setting_help(schema, "search.cost")`` finds a help (tests/apps/test_settings_help.py).

``apps/cli`` registers the app configs with Hydra's ConfigStore, so every YAML in ``conf/`` is validated against
these types; the shipped YAML defaults equal the dataclass defaults (tested). Library code takes the dataclasses
without importing Hydra. The checks of the values, one ``ValueError`` line each before anything trains, are
``scalesearch.plan.preflight``.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field, replace
from typing import Any, Optional

__all__ = [
    "DatasetConfig", "FaultConfig", "ProxyConfig", "SearchConfig", "TrialsConfig", "FamilyConfig", "ClusterConfig",
    "ModelConfig", "ValidateConfig", "ReportConfig", "SearchAppConfig", "GenerateConfig", "ReportAppConfig",
    "ValidateAppConfig", "AblateAppConfig", "NASConfig", "ChainConfig", "NASAppConfig", "CompareAppConfig", "ALLOWED",
    "MAX_SEED", "trial_budget", "flatten", "setting", "setting_help", "brief",
]

MAX_SEED = 2**32 - 1  # the largest seed numpy's RandomState (Optuna's samplers) takes

# the allowed values of every setting with a fixed set (one place; the checks and the help read it)
ALLOWED = {
    "search.strategy": ("grid", "optuna", "race"), "search.scheduler": ("none", "asha"),
    "search.constraint": ("measured", "nominal"), "search.cost": ("macs", "activations", "latency", "train_step"),
    "model.depth_rounding": ("auto", "stage", "total"), "proxy.optimizer": ("sgd", "adamw"),
    "proxy.schedule": ("cosine", "onecycle"), "proxy.compile": ("off", "auto", "on"),
    "report.pick_rule": ("marginal", "knee"), "nas.objective": ("weighted", "pareto"), "nas.cost": ("macs", "latency"),
    "mode": ("formula", "official"), "constraint": ("measured", "nominal"),
}


def setting(default: Any, help: str, **kw) -> Any:
    """A dataclass field with its description: ``help``'s first line is its brief (``brief``), the rest the details.
    A list or dict default is copied per instance; a dataclass (the class) is a nested group built by default."""
    meta = {"help": help}
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return field(default_factory=default, metadata=meta, **kw)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


def brief(help: str) -> str:
    """A setting's help in one line (its first line): the YAML comment beside its key and its ``--help`` line."""
    return help.partition("\n")[0].strip()


def setting_help(schema: type, key: str) -> str:
    """The help of a dotted key of a settings dataclass, through nested groups
    (``setting_help(SearchAppConfig, "search.cost")``); a key that is no field raises ``KeyError``."""
    obj, help = schema, ""
    for name in key.split("."):
        found = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
        if name not in found:
            raise KeyError(f"{key} is not a setting of {schema.__name__}")
        help, obj = found[name].metadata.get("help", ""), typing.get_type_hints(obj)[name]
    return help


_PHIS = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def _verbose() -> Any:
    return setting(1, "0: warnings only, 1: the tool's progress, 2: also Ray Tune's tables and worker logs")


@dataclass
class DatasetConfig:
    name: str = setting("synthetic", "synthetic | imagefolder (root: a folder or archive) | cifar10 | cifar100 | svhn"
                                     " | fashionmnist")
    root: Optional[str] = setting(None, "the data's folder, or a .tar/.tar.gz/.tgz/.zip of an image folder")
    base_resolution: int = setting(40, "the size the baseline (B0) proxy trains at; candidates at their solved size")
    cache_resolution: Optional[int] = setting(None, "decode and cache images once at this size (null: native)\n"
                                              "an image folder of mixed sizes: 2 x base_resolution")
    train_per_class: Optional[int] = setting(None, "cap training images per class, picked by seed (null: all)\n"
                                             "e.g. 500 keeps proxy runs short on big datasets")
    val_per_class: Optional[int] = setting(None, "cap validation images per class, picked by seed (null: all)")
    val_fraction: float = setting(0.2, "held-out fraction of a single-tree image folder (no train/ val/ test/)")
    download: bool = setting(False, "fetch a torchvision dataset into dataset.root")
    disk_cache: bool = setting(False, "keep the decoded uint8 tensors on disk next to the data (keyed by content)\n"
                               "in <root>/.scalesearch_cache/, keyed by the files, their sizes and mtimes")
    skip_corrupt: bool = setting(False, "skip unreadable images with a warning instead of failing")
    seed: int = setting(0, "the data's seed: the synthetic images and the per-class caps")
    num_classes: int = setting(10, "synthetic only: classes")
    image_size: int = setting(64, "synthetic only: the images' native size (px)")
    train_size: int = setting(500, "synthetic only: training images")
    val_size: int = setting(400, "synthetic only: validation images")


@dataclass
class FaultConfig:
    """Test-only fault injection (see docs/RELIABILITY.md)."""

    fail_trials: list[int] = setting([], "trial indices (0-based, in submission order) that raise on every attempt")
    diverge_trials: list[int] = setting([], "trial indices whose learning rate is blown up so the loss diverges")
    epoch_sleep: float = setting(0.0, "sleep this long (s) after every epoch: lets a test kill a run mid-way")
    hog_trials: list[int] = setting([], "trial indices that hold fault.hog_gb of memory up to 20 s before training"
                                        "\n(Ray's memory monitor test)")
    hog_gb: float = setting(0.0, "the memory (GB) each of fault.hog_trials holds")


@dataclass
class ProxyConfig:
    epochs: int = setting(2, "the proxy budget: training epochs per trial")
    steps: Optional[int] = setting(None, "the budget in optimizer steps instead of epochs (null: proxy.epochs)")
    batch_size: int = setting(32, "training batch size")
    eval_batch_size: int = setting(500, "evaluation batch size")
    optimizer: str = setting("adamw", "sgd (nesterov) | adamw")
    lr: float = setting(3e-3, "peak learning rate")
    momentum: float = setting(0.9, "SGD's momentum")
    weight_decay: float = setting(0.05, "weight decay")
    label_smoothing: float = setting(0.1, "label smoothing of the loss")
    warmup_epochs: float = setting(0.3, "learning-rate warmup, in epochs")
    schedule: str = setting("cosine", "learning-rate schedule: cosine | onecycle")
    augment: bool = setting(False, "random crop + flip\nslows learning in runs of a few hundred steps")
    dropout: Optional[float] = setting(0.0, "dropout before the classifier (null: the spec's, 0.2)")
    drop_path: Optional[float] = setting(0.0, "drop-path rate (null: the spec's, 0.2)")
    bn_recalibration: int = setting(128, 'images whose batch statistics replace BN\'s running averages ("precise BN")\n'
                                    "a fixed random subset of the training split, before each evaluation (0: off)")
    eval_every: int = setting(0, "evaluate every k epochs (0: only after the last; ASHA needs 1 and sets it)")
    device: str = setting("cpu", "auto | cpu | cuda | cuda:N")
    amp: bool = setting(True, "bf16 autocast on CUDA")
    channels_last: bool = setting(True, "channels_last memory format, on CUDA and CPU (~2x faster there for this net)")
    compile: str = setting("off", "torch.compile the training forward: off | auto (on CUDA) | on\n"
                           "it compiles for a fixed shape and pays off in long runs")
    threads: Optional[int] = setting(None, "torch CPU threads per trial (null: trials.cpus_per_trial)")
    fault: FaultConfig = setting(FaultConfig, "test-only fault injection")


@dataclass
class SearchConfig:
    strategy: str = setting("grid", "grid: the constrained lattice | optuna: sample the surface | race: the grid "
                                    "raced to a decision")
    space: str = setting("compound", "the coefficients' space: a file in search_spaces/ (name or path)")
    n_seeds: int = setting(3, "seeds per candidate (a decision needs >= 3; race: at its first look)")
    constraint: str = setting("measured", "measured: equal measured cost as built | nominal: the paper's "
                              "alpha*beta^2*gamma^2\nmeasured: every candidate at the target cost as built (resolution"
                              " solved on whole pixels); nominal: alpha*beta^2*gamma^2 = target with the proxy built "
                              "at round(base*gamma)")
    cost: str = setting("macs", "the cost held equal: macs | activations | latency | train_step\n"
                        "latency and train_step are measured on the trials' device")
    cost_tolerance: float = setting(0.1, "how far (relative) a candidate's cost may be from the target\n"
                                    "measured: candidates whose closest solvable cost is further are infeasible; "
                                    "nominal: those beyond it are flagged cost_flag=off")
    phi: float = setting(1.0, "the compound coefficient the candidates are built at (cost target^phi)\n"
                         "the coefficients are per unit of phi")
    thin: int = setting(1, "grid: keep every k-th feasible lattice point (1: all)")
    max_points: Optional[int] = setting(5, "grid: then at most this many, spread over the surface (null: all)")
    include_paper: bool = setting(True, "keep the paper's (1.2, 1.1, 1.15) (measured: its alpha, beta) when feasible")
    design: str = setting("spread", "how max_points are spread: spread | shares (the model over shares: search=surface)"
                          "\nspread: farthest-point in log alpha, beta, gamma; shares: farthest-point over the "
                          "candidates' realized shares, each point of the triangle once")
    rungs: list[float] = setting([1.0], "race: the rungs, as multiples of proxy.epochs\nthe first look runs n_seeds "
                                 "seeds; the top rung's looks add seed_step seeds up to max_seeds")
    max_seeds: int = setting(8, "race: the most seeds a candidate gets at the top rung")
    seed_step: int = setting(2, "race: seeds added per look at the top rung")
    budget: Optional[float] = setting(None, "race: epochs of training in all (null: no limit)")
    delta: Optional[float] = setting(None, "an accuracy difference not worth more trainings or compute\n"
                                     "the model over shares names the options within delta of the best (null: 0.01); "
                                     "a race stops when the leader is within delta of the best at the family-wise "
                                     "level (the indifference zone; null: off)")
    eta: Optional[float] = setting(None, "race: only the best 1/eta of the contenders go on after each look (null: off)"
                                   "\nsuccessive halving: after each look but the last the best ceil(n/eta) (at least "
                                   "2) go on; the others pause: untested, not excluded, so never \"decided\" while any "
                                   "is paused (a cheaper pick); e.g. 2.5")
    cooldown: float = setting(0.4, "race: the share of a rung's steps cooled down on a copy of the trunk\n"
                              "a rung trains one trunk at constant learning rate, the next rung continues it (0: every"
                              " rung a separate training with proxy.schedule); measured: 0.2 read 0.024 low at a "
                              "2-epoch rung (benchmarks/README.md)")
    drop: bool = setting(True, "race: false drops nothing (every candidate x rung x seed: benchmarks/race_replay.py)")
    num_samples: int = setting(20, "optuna: candidates sampled")
    sampler: str = setting("TPESampler", "optuna: any class in optuna.samplers")
    sampler_kwargs: dict[str, Any] = setting({}, "optuna: the sampler's keyword arguments")
    storage: Optional[str] = setting(None, "optuna: e.g. sqlite:///optuna.db (relative paths: in the run dir)")
    resolution_multiple: int = setting(1, "proxy resolutions on multiples of this (1: every pixel)")
    scheduler: str = setting("none", "Ray Tune's early stopping of single trials: none | asha")
    grace_period: int = setting(1, "asha: epochs a trial trains before it may be stopped")
    reduction_factor: int = setting(2, "asha: the reduction factor between its rungs")
    metric: str = setting("accuracy", "the trials' metric (accuracy)")


@dataclass
class TrialsConfig:
    """How every training runs as a Ray Tune trial, in every app that trains (search, validation, family, ablation,
    NAS): its resources, retries and worker reuse, and the device costs measured beside its accuracy. None of it
    defines a result, so a resume may change it (but for latency_batch when search.cost=latency)."""

    cpus_per_trial: float = setting(1, "Ray CPUs per trial (and its torch threads unless proxy.threads)")
    gpus_per_trial: float = setting(0, "Ray GPUs per trial, e.g. 0.25: four trials share a GPU")
    max_concurrent_trials: Optional[int] = setting(None, "null: as many as the cluster's resources allow")
    max_failures: int = setting(1, "retries of a failed trial (a raised error, a dead worker, a memory kill)")
    reuse_actors: bool = setting(True, "the next trial runs in the finished trial's worker (no re-import of torch)")
    measure_device_costs: bool = setting(True, "latency and training-step time of every trained network, on device")
    latency_batch: int = setting(8, "images per timed inference batch (also the latency cost of search.cost=latency)")
    cost_min_run_time: float = setting(0.1, "seconds of timed repeats per device-cost measurement")


@dataclass
class ClusterConfig:
    address: Optional[str] = setting(None, "host:port (or auto) of a Ray cluster (null: $RAY_ADDRESS, else Ray here)")
    num_cpus: Optional[int] = setting(None, "CPUs of the Ray started here (null: this machine's)")
    num_gpus: Optional[int] = setting(None, "GPUs of the Ray started here (null: this machine's)")
    include_dashboard: bool = setting(False, "start Ray's dashboard")
    dashboard_host: str = setting("127.0.0.1", "the dashboard's host")
    storage: Optional[str] = setting(None, "Ray Tune's experiments: null = <run dir>/tune; on several nodes a path "
                                     "all see or a URI\nwhat a resume restores; on several nodes (required there) an "
                                     "absolute path every node sees (NFS) or a pyarrow URI (s3://..., gs://...)")


@dataclass
class ModelConfig:
    baseline: Optional[str] = setting(None, "a baseline.json from scalesearch-nas (null: EfficientNet-B0)")
    depth_rounding: str = setting("auto", "stage (ceil per stage, the paper's) | total (distributed) | auto: total "
                                  "when measured\nhow depth multipliers become block counts: stage rounds up per stage "
                                  "(the paper's TF code), total rounds the total and distributes it over the stages")


@dataclass
class ValidateConfig:
    """The proxy-fidelity audit: the top-k candidates (>= 2: the runner-up is the search's #2), random others in
    addition, and the paper's point when it was searched, retrained longer."""

    enabled: bool = setting(True, "retrain the top top_k + random_k candidates epochs_mult times longer")
    top_k: int = setting(2, "top candidates retrained (>= 2: the runner-up is the search's #2)")
    random_k: int = setting(0, "random other candidates retrained")
    epochs_mult: float = setting(3.0, "the validation budget: proxy.epochs (or steps) x this")


@dataclass
class FamilyConfig:
    """What the search hands on: the members emitted in family.json, and what trains after the search (the family's
    proxy trainings, the paper's family beside it, the Fig. 8 ablation)."""

    phis: list[float] = setting(_PHIS, "the members emitted in family.json (negative: below B0)")
    train: bool = setting(True, "proxy-train the members up to max_phi (false: faster, no accuracy vs cost)")
    max_phi: int = setting(3, "the largest member proxy-trained")
    seeds: int = setting(1, "proxy seeds per trained member")
    compare_paper: bool = setting(False, "also train the paper's (1.2, 1.1, 1.15) family beside it")
    ablation: bool = setting(False, "also run the Fig. 8 ablation (as scalesearch-ablate) into the run directory")
    ablation_phis: list[float] = setting([1.0, 2.0], "the ablation's nominal costs 2^phi x B0")


@dataclass
class ReportConfig:
    """How the report renders a run's tables (it never trains)."""

    enabled: bool = setting(True, "write the report (report.md, plots/) after the search")
    pick_rule: str = setting("marginal", "how the cost-effective member is picked: marginal | knee\nmarginal: the last "
                             "member while the gain per doubling of MACs stays >= min_gain_per_doubling; knee: the "
                             "knee of accuracy vs log2(MACs) (farthest above the chord)")
    min_gain_per_doubling: float = setting(0.01, "the marginal rule's threshold: accuracy per doubling of MACs (0.01 = "
                                           "1 point)")
    top_k: int = setting(5, "rows of the ranking (the seed-spread table)")


@dataclass
class _TrainingAppConfig:
    """The first keys of every app that proxy-trains on Ray Tune (search, ablate, nas): the data, the proxy
    budget, how its trials run (trials) and the cluster."""

    dataset: DatasetConfig = setting(DatasetConfig, "the data (conf/dataset/)")
    proxy: ProxyConfig = setting(ProxyConfig, "the proxy training's budget (conf/proxy/)")
    trials: TrialsConfig = setting(TrialsConfig, "how every training runs on Ray Tune (resources, retries, device "
                                   "costs)")
    cluster: ClusterConfig = setting(ClusterConfig, "start Ray here or join a cluster (conf/cluster/)")


@dataclass
class SearchAppConfig(_TrainingAppConfig):
    search: SearchConfig = setting(SearchConfig, "what is searched and how (conf/search/)")
    model: ModelConfig = setting(ModelConfig, "the network that is scaled")
    validate: ValidateConfig = setting(ValidateConfig, "the proxy-fidelity audit: the top-k (+ random_k, + the "
                                       "paper's point) retrained longer")
    family: FamilyConfig = setting(FamilyConfig, "what the search hands on, and what trains after it")
    report: ReportConfig = setting(ReportConfig, "how the report renders the tables (it never trains)")
    seed: int = setting(0, "first seed; a candidate's seeds are seed, seed+1, ... (search.n_seeds)")
    resume: bool = setting(False, "continue or extend the newest run with these settings (or hydra.run.dir=RUN)")
    verbose: int = _verbose()


@dataclass
class GenerateConfig:
    alpha: float = setting(1.2, "the depth coefficient: layers x alpha^phi")
    beta: float = setting(1.1, "the width coefficient: channels x beta^phi")
    gamma: float = setting(1.15, "the resolution coefficient: resolution x gamma^phi")
    mode: str = setting("formula", "formula (pure compound scaling) | official (the published B0..B7 table)")
    constraint: str = setting("nominal", "nominal: resolution base*gamma^phi | measured: resolution solved so the MACs "
                              "are target^phi")
    base_resolution: int = setting(224, "B0's input size")
    num_classes: int = setting(1000, "the classifier's width")
    phis: list[float] = setting(_PHIS, "the members, e.g. [-1,0,1,2] (negative: below B0)")
    target: float = setting(2.0, "the cost factor per unit of phi (alpha*beta^2*gamma^2 ~ target)")
    tolerance: float = setting(0.1, "how far alpha*beta^2*gamma^2 may be from target")
    allow_off_constraint: bool = setting(False, "warn instead of refusing coefficients outside target +- tolerance")
    resolution_multiple: int = setting(8, "resolutions on multiples of this")
    depth_rounding: str = setting("stage", "stage (ceil per stage, as the official table) | total (distributed)")
    baseline: Optional[str] = setting(None, "a baseline.json from scalesearch-nas (null: EfficientNet-B0)")
    verbose: int = _verbose()


@dataclass
class ReportAppConfig:
    """``scalesearch-report``: re-render a run's report from its tables (never trains)."""

    run_dir: Optional[str] = setting(None, "required: the search run to re-render (results.csv, best.json, ...)")
    report: ReportConfig = setting(ReportConfig, "how the report renders the tables")
    verbose: int = _verbose()


@dataclass
class ValidateAppConfig:
    """``scalesearch-validate``: the validation stage on a finished run (then best, family, report again)."""

    run_dir: Optional[str] = setting(None, "required: a finished search run (the results go there)")
    validate: ValidateConfig = setting(ValidateConfig, "the proxy-fidelity audit: the top-k (+ random_k, + the "
                                       "paper's point) retrained longer")
    cluster: ClusterConfig = setting(ClusterConfig, "start Ray here or join a cluster (conf/cluster/)")
    verbose: int = _verbose()


@dataclass
class AblateAppConfig(_TrainingAppConfig):
    """``scalesearch-ablate``: depth-, width-, resolution-only vs compound scaling of B0 at matched cost."""

    run_dir: Optional[str] = setting(None, "a search run: its best.json is one compound variant; results go there")
    phis: list[float] = setting([1.0, 2.0], "nominal cost 2^phi x B0 per variant")
    compound: Optional[list[str]] = setting(None, "[best, paper] or one of them (null: both; paper alone without "
                                            "run_dir)")
    seeds: int = setting(1, "seeds per variant, from seed (mean and 95 % interval when > 1)")
    seed: int = setting(0, "the first seed")
    resume: bool = setting(False, "continue an interrupted ablation (hydra.run.dir=RUN)")
    verbose: int = _verbose()


@dataclass
class NASConfig:
    space: str = setting("blocks", "the block space: a file in search_spaces/ (name or path)")
    objective: str = setting("weighted", "weighted: accuracy x (cost/target)^w | pareto: max accuracy, min cost")
    w: float = setting(-0.07, "MnasNet's soft constraint (> 0 rewards cost: warned)")
    cost: str = setting("macs", "macs (per image at base resolution) | latency (ms per batch on the trial's device)")
    target_macs: Optional[float] = setting(None, "null: B0's MACs on this data at the base resolution")
    target_latency_ms: Optional[float] = setting(None, "null: B0's latency measured before the search")
    latency_batch: int = setting(8, "images per timed batch of nas.cost=latency")
    latency_min_run_time: float = setting(0.2, "seconds of timed repeats per latency measurement")
    num_samples: int = setting(20, "architectures tried")
    sampler: str = setting("auto", "auto: TPESampler (weighted) / NSGAIISampler (pareto); or any optuna.samplers class")
    sampler_kwargs: dict[str, Any] = setting({}, "the sampler's keyword arguments, e.g. "
                                             "+nas.sampler_kwargs.population_size=10")
    seed: int = setting(0, "the sampler's seed")
    include_b0: bool = setting(True, "evaluate B0 first, for the comparison")


@dataclass
class ChainConfig:
    search: bool = setting(False, "then search alpha, beta, gamma on the found baseline (run dir/coefficients)")
    report: bool = setting(False, "the coefficient search's validation, family training and report")
    family_phis: list[float] = setting(_PHIS, "the members of the found baseline's family")


@dataclass
class NASAppConfig(_TrainingAppConfig):
    search: SearchConfig = setting(SearchConfig, "the chained coefficient search (chain.search=true)")
    nas: NASConfig = setting(NASConfig, "the baseline's search")
    chain: ChainConfig = setting(ChainConfig, "what runs after it on the found baseline")
    resume: bool = setting(False, "continue an interrupted NAS (hydra.run.dir=RUN)")
    verbose: int = _verbose()


@dataclass
class CompareAppConfig:
    """``scalesearch-compare``: the best coefficients of several runs (datasets) side by side."""

    runs: list[str] = setting([], "a Hydra multirun directory and/or run directories")
    out_dir: Optional[str] = setting(None, "where compare.md, compare.json, plots/ go (null: the Hydra run directory)")
    verbose: int = _verbose()


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
