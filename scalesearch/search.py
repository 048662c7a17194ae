"""The coefficient search on Ray Tune: candidates → proxy trials → results → best → family.

``run_search(cfg, run_dir)`` is the main job. One Ray Tune trial per (candidate, seed);
the grid enumerates the constrained lattice, Optuna samples the surface
(``OptunaSearch`` + ``Repeater`` for seeds). Results are written atomically to
``results.csv`` as trials report; the Tune experiment lives in ``run_dir/tune`` so an
interrupted search resumes with ``resume=true``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import socket
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .config import SearchAppConfig
from .cost import model_cost
from .generate import load_baseline, write_family
from .io import atomic_write_csv, atomic_write_json, atomic_write_text, read_json
from .results import COLUMNS, read_results, select_best, summary_markdown
from .scaling import Coefficients, family, round_resolution
from .space import load_space

log = logging.getLogger("scalesearch")

__all__ = ["run_search", "validate", "candidate_cost"]

STRATEGIES = ("grid", "optuna")
SCHEDULERS = ("none", "asha")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle")
COMPILE = ("off", "auto", "on")


# ---------------------------------------------------------------- validation
def validate(cfg: SearchAppConfig) -> None:
    """Reject bad values before anything starts (one-line ValueErrors)."""
    s, p = cfg.search, cfg.proxy
    if s.strategy not in STRATEGIES:
        raise ValueError(f"search.strategy={s.strategy!r} is unknown; allowed: {', '.join(STRATEGIES)}")
    if s.scheduler not in SCHEDULERS:
        raise ValueError(f"search.scheduler={s.scheduler!r} is unknown; allowed: {', '.join(SCHEDULERS)}")
    for name, value, allowed in (("proxy.optimizer", p.optimizer, OPTIMIZERS), ("proxy.schedule", p.schedule, SCHEDULES),
                                 ("proxy.compile", p.compile, COMPILE)):
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is unknown; allowed: {', '.join(allowed)}")
    dev = p.device
    if dev not in ("auto", "cpu") and not dev.startswith("cuda"):
        raise ValueError(f"proxy.device={dev!r} is not a device; allowed: auto, cpu, cuda, cuda:N")
    if dev.startswith("cuda") and s.gpus_per_trial == 0:
        raise ValueError(f"proxy.device={dev!r} needs search.gpus_per_trial > 0 (Ray hides GPUs from trials without a "
                         "GPU share); allowed: proxy.device=cpu|auto, or a GPU share")
    checks = [
        ("search.n_seeds", s.n_seeds, s.n_seeds >= 1, ">= 1"),
        ("search.num_samples", s.num_samples, s.num_samples >= 1, ">= 1"),
        ("search.cpus_per_trial", s.cpus_per_trial, s.cpus_per_trial > 0, "> 0"),
        ("search.gpus_per_trial", s.gpus_per_trial, s.gpus_per_trial >= 0, ">= 0"),
        ("search.max_failures", s.max_failures, s.max_failures >= 0, ">= 0"),
        ("search.cost_tolerance", s.cost_tolerance, s.cost_tolerance >= 0, ">= 0"),
        ("search.resolution_multiple", s.resolution_multiple, s.resolution_multiple >= 1, ">= 1"),
        ("search.thin", s.thin, s.thin >= 1, ">= 1"),
        ("proxy.epochs", p.epochs, p.epochs >= 1, ">= 1"),
        ("proxy.batch_size", p.batch_size, p.batch_size >= 1, ">= 1"),
        ("proxy.lr", p.lr, p.lr > 0, "> 0"),
        ("dataset.base_resolution", cfg.dataset.base_resolution, cfg.dataset.base_resolution >= 16, ">= 16"),
    ]
    if p.steps is not None:
        checks.append(("proxy.steps", p.steps, p.steps >= 1, ">= 1 or null"))
    if s.max_points is not None:
        checks.append(("search.max_points", s.max_points, s.max_points >= 1, ">= 1 or null"))
    if s.max_concurrent_trials is not None:
        checks.append(("search.max_concurrent_trials", s.max_concurrent_trials, s.max_concurrent_trials >= 1, ">= 1 or null"))
    for name, value, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{name}={value}; allowed: {allowed}")
    if cfg.report.enabled:
        from .report import validate_report_config

        validate_report_config(cfg.report)
    if s.sampler:
        import optuna

        if not isinstance(getattr(optuna.samplers, s.sampler, None), type):
            raise ValueError(f"search.sampler={s.sampler!r} is not an optuna sampler; allowed: TPESampler, RandomSampler, "
                             "CmaEsSampler, QMCSampler, GPSampler, ... (a class in optuna.samplers)")


def check_environment(cfg: SearchAppConfig) -> None:
    """What can be checked about this machine / the cluster address before the run directory is
    touched, data are decoded or Ray starts (so that such errors come back in seconds)."""
    c, s = cfg.cluster, cfg.search
    if c.address:
        _check_address(c.address)
        return  # the cluster's resources are checked once connected (check_resources)
    gpus = c.num_gpus if c.num_gpus is not None else torch.cuda.device_count()
    if s.gpus_per_trial > gpus:
        raise ValueError(f"search.gpus_per_trial={s.gpus_per_trial} but this machine has {gpus} GPU(s) for Ray; "
                         "allowed: 0 here, or cluster.address of a cluster with GPUs")
    cpus = c.num_cpus if c.num_cpus is not None else os.cpu_count() or 1
    if s.cpus_per_trial > cpus:
        raise ValueError(f"search.cpus_per_trial={s.cpus_per_trial} but Ray gets {cpus} CPU(s) here; allowed: <= {cpus}")
    if cfg.proxy.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"proxy.device={cfg.proxy.device!r} but this machine has no CUDA GPU; allowed: cpu or auto")


def config_fingerprint(cfg: SearchAppConfig) -> str:
    """Hash of everything that defines the search's results (not resume/verbosity/cluster)."""
    d = dataclasses.asdict(cfg)
    for k in ("resume", "verbose", "cluster", "report"):
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- cost of a candidate
def candidate_resolution(coeffs: Coefficients, base_resolution: int, multiple: int = 1) -> int:
    return round_resolution(base_resolution * coeffs.gamma, multiple)


def candidate_cost(coeffs: Coefficients, base_resolution: int, num_classes: int, baseline, multiple: int = 1,
                   in_channels: int = 3, _base_cache: dict = {}) -> tuple[int, float]:
    """(resolution, measured MACs ratio of the rounded proxy model vs the baseline proxy)."""
    res = candidate_resolution(coeffs, base_resolution, multiple)
    key = (base_resolution, num_classes, baseline, in_channels)
    if key not in _base_cache:
        _base_cache[key] = model_cost(base_resolution, in_channels, spec=baseline, num_classes=num_classes).macs
    macs = model_cost(res, in_channels, spec=baseline, depth=coeffs.alpha, width=coeffs.beta, num_classes=num_classes).macs
    return res, macs / _base_cache[key]


def cost_flag(ratio: float, target: float, tolerance: float) -> str:
    return "ok" if abs(ratio / target - 1) <= tolerance else "off"


# ---------------------------------------------------------------- the trial
def proxy_trial(config: dict, data_ref=None, settings: SearchAppConfig = None, target: float = 2.0,
                recorded: dict | None = None) -> None:
    """One Ray Tune trial: train the proxy of one candidate with one seed, report every epoch.

    ``recorded`` (on resume) maps trial ids and grid indices to the finished rows of the interrupted
    search's results.csv: a trial found there reports its row again instead of training (Ray's
    experiment state, saved every few seconds, may be older than results.csv)."""
    import ray
    from ray import tune

    from .data import ProxyData
    from .proxy import Candidate, train_proxy

    t = config.get("trial", config)
    index = t.get("index")
    row = _recorded_row(recorded, tune.get_context().get_trial_id(), index)
    if row is not None:
        tune.report({settings.search.metric: row.get(settings.search.metric) or 0.0, "epoch": row.get("epochs") or 0,
                     "final": row["status"] != "stopped", "recorded_row": row})
        return
    coeffs = Coefficients(float(t["alpha"]), float(t["beta"]), float(t["gamma"]))
    seed = settings.seed + int(t.get("seed_index", config.get("__trial_index__", 0)))
    fault = settings.proxy.fault
    if index is not None and index in fault.fail_trials:
        raise RuntimeError(f"injected failure in trial {index} (proxy.fault.fail_trials)")
    budget = settings.proxy
    if index is not None and index in fault.diverge_trials:
        budget = dataclasses.replace(budget, lr=budget.lr * 1e6)
    if budget.threads is None:
        budget = dataclasses.replace(budget, threads=max(1, int(settings.search.cpus_per_trial)))

    with warnings.catch_warnings():  # zero-copy views of the shared object-store arrays (read-only)
        warnings.simplefilter("ignore", UserWarning)
        data = ProxyData(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in data_ref.items()})
    baseline = load_baseline(settings.model.baseline)
    res, ratio = candidate_cost(coeffs, data.base_resolution, data.num_classes, baseline,
                                settings.search.resolution_multiple, data.in_channels)
    static = {
        "alpha": coeffs.alpha, "beta": coeffs.beta, "gamma": coeffs.gamma, "seed": seed, "trial_index": index,
        "product": round(coeffs.product, 4), "resolution": res, "cost_ratio": round(ratio, 4),
        "cost_flag": cost_flag(ratio, target, settings.search.cost_tolerance),
        "node": ray.get_runtime_context().get_node_id()[:12],
    }
    if settings.search.filter_measured and static["cost_flag"] == "off":
        tune.report({**static, "accuracy": 0.0, "epoch": 0, "status": "filtered", "final": True,
                     "error": f"measured cost ratio {ratio:.2f} is off target {target}"})
        return
    candidate = Candidate(depth=coeffs.alpha, width=coeffs.beta, resolution=res)
    share = settings.search.gpus_per_trial
    if share > 0 and torch.cuda.is_available():
        check_gpu_memory(coeffs, res, data, baseline, budget.batch_size, share)
    # the last epoch is reported once, with the final metrics: a scheduler stopping trials at max_t
    # (ASHA) would otherwise stop a trial that has trained in full before its final report
    n = len(data.train_y)
    last_epoch = math.ceil(budget.steps / max(1, n // min(budget.batch_size, n))) if budget.steps else budget.epochs

    def report(m):
        if m["epoch"] < last_epoch:
            tune.report({**static, **m, "final": False})

    try:
        final = train_proxy(candidate, data, budget, seed=seed, baseline=baseline, report=report)
    except torch.cuda.OutOfMemoryError:
        raise RuntimeError(
            f"CUDA out of memory training alpha={coeffs.alpha} beta={coeffs.beta} gamma={coeffs.gamma} at {res}px, "
            f"batch {budget.batch_size}, with search.gpus_per_trial={share} ({_share_note(share)}); lower "
            "proxy.batch_size or raise search.gpus_per_trial") from None
    tune.report({**static, **final, "final": True})


def _share_note(share: float) -> str:
    return f"{int(1 / share)} trials per GPU" if share < 1 else "one GPU per trial"


def check_gpu_memory(coeffs, res, data, baseline, batch_size, share) -> None:
    """Refuse a trial whose estimated training memory exceeds its share of the GPU."""
    from .cost import estimate_train_memory

    cost = model_cost(res, data.in_channels, spec=baseline, depth=coeffs.alpha, width=coeffs.beta,
                      num_classes=data.num_classes)
    need = estimate_train_memory(cost, batch_size)
    have = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory * min(1.0, share)
    if need > have:
        raise RuntimeError(
            f"trial needs about {need / 2**30:.1f} GiB of GPU memory (alpha={coeffs.alpha}, beta={coeffs.beta}, {res}px, "
            f"batch {batch_size}) but search.gpus_per_trial={share} gives it {have / 2**30:.1f} GiB "
            f"({_share_note(share)}); lower proxy.batch_size or raise search.gpus_per_trial")


# ---------------------------------------------------------------- live results
FINISHED = ("ok", "diverged", "filtered", "stopped")  # statuses with results: never trained again on resume


def _recorded_row(recorded: dict | None, trial_id: str, index) -> dict | None:
    if not recorded:
        return None
    return recorded.get(trial_id) or (recorded.get(int(index)) if index is not None else None)


def read_recorded(path: Path) -> dict:
    """Finished rows of an interrupted search's results.csv, by trial id and by grid index."""
    if not path.exists():
        return {}
    out = {}
    for r in read_results(path):
        if r["status"] in FINISHED:
            if isinstance(r.get("finished_at"), float) and r["finished_at"].is_integer():
                r["finished_at"] = int(r["finished_at"])  # Ray's integer timestamp, written back unchanged
            out[r["trial_id"]] = r
            if r["trial_index"] is not None:
                out[r["trial_index"]] = r
    return out


def _trial_row(trial, ended: str | None = None, recorded: dict | None = None) -> dict:
    """One results.csv row from a Tune trial. ``ended`` ("complete" | "error") is passed by the
    callbacks, which fire before Tune updates the trial's status. A trial that an interrupted run
    recorded as finished (``recorded``, see :func:`read_recorded`) keeps that row."""
    r = dict(trial.last_result or {})
    t = trial.config.get("trial", trial.config)
    status = {"complete": "TERMINATED", "error": "ERROR"}.get(ended, trial.status)
    if r.get("recorded_row"):
        return dict(r["recorded_row"])
    old = _recorded_row(recorded, trial.trial_id, t.get("index")) if status not in ("TERMINATED", "ERROR") else None
    if old is not None:
        return dict(old)
    row = {k: r.get(k) for k in COLUMNS}
    row.update(trial_id=trial.trial_id, alpha=r.get("alpha", t.get("alpha")), beta=r.get("beta", t.get("beta")),
               gamma=r.get("gamma", t.get("gamma")))
    if row["trial_index"] is None:
        row["trial_index"] = t.get("index")
    row["failures"] = trial.num_failures
    row["finished_at"] = r.get("timestamp") if status in ("TERMINATED", "ERROR") else None
    if status == "ERROR":
        row["status"] = "error"
        err = trial.get_error() if hasattr(trial, "get_error") else None
        lines = [ln.strip() for ln in str(err or "unknown error").splitlines() if ln.strip()]
        row["error"] = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1])[:300]
    elif status == "TERMINATED":
        row["status"] = r.get("status", "ok") if r.get("final") else "stopped"
    else:
        row["status"] = status.lower()
    if row["status"] == "stopped":
        row["epochs"] = r.get("epoch")
        row["error"] = f"stopped early by the scheduler after epoch {r.get('epoch')}"
    for k in ("accuracy", "loss", "images_per_s", "wall_s", "cost_ratio"):
        if isinstance(row.get(k), float):
            row[k] = round(row[k], 6)
    return row


def _sort_key(row):
    return (row["trial_index"] if row["trial_index"] is not None else 1 << 30, row["trial_id"])


def make_results_writer(path: Path, total: int):
    from ray.tune import Callback

    class ResultsWriter(Callback):
        """Rewrites results.csv (atomically) from all trials whenever one reports or ends;
        logs one progress line per finished trial. On resume, the rows that results.csv already
        holds as finished stay there until their trials have reported them again."""

        def __init__(self, path: str, total: int):
            self.path, self.total, self._last, self.recorded = str(path), total, 0.0, {}

        def setup(self, **info):
            self.recorded = read_recorded(Path(self.path))

        def _write(self, trials, ended=None, how=None):
            rows = sorted((_trial_row(t, how if t is ended else None, self.recorded) for t in trials), key=_sort_key)
            atomic_write_csv(self.path, rows, COLUMNS)
            return rows

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if time.time() - self._last > 2.0:
                self._last = time.time()
                self._write(trials)

        def _ended(self, trials, trial, how):
            rows = self._write(trials, trial, how)
            done = sum(r["status"] in ("error", *FINISHED) for r in rows)
            r = _trial_row(trial, how)
            acc = "" if r["accuracy"] is None else f" accuracy {r['accuracy']:.4f}"
            log.info("[%d/%d] alpha=%s beta=%s gamma=%s seed=%s: %s%s", done, self.total, r["alpha"], r["beta"],
                     r["gamma"], r["seed"], r["status"], acc)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._ended(trials, trial, "complete")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._ended(trials, trial, "error")

    return ResultsWriter(path, total)


# ---------------------------------------------------------------- Ray
def _check_address(address: str) -> None:
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"cluster.address={address!r} is not host:port; allowed: host:port, auto, or null (start locally)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ValueError(f"cluster.address={address!r} is unreachable ({e.strerror or e}); allowed: the address of a "
                         "running Ray head (ray start --head), or null to start Ray locally") from None


def init_ray(cfg: SearchAppConfig) -> bool:
    """Start or join Ray. Returns True when this call started it (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    c = cfg.cluster
    kwargs = dict(log_to_driver=cfg.verbose >= 2, configure_logging=True, logging_level=logging.WARNING)
    if c.address:
        _check_address(c.address)
        ray.init(address=c.address, **kwargs)
    else:  # "local": a new local Ray, never the last `ray start` cluster of this machine (which may be dead)
        ray.init(address="local", num_cpus=c.num_cpus, num_gpus=c.num_gpus, include_dashboard=c.include_dashboard,
                 dashboard_host=c.dashboard_host, **kwargs)
    return True


def check_resources(cfg: SearchAppConfig) -> None:
    import ray

    res = ray.cluster_resources()
    gpus, cpus = res.get("GPU", 0), res.get("CPU", 0)
    if cfg.search.gpus_per_trial > 0 and gpus < cfg.search.gpus_per_trial:
        raise ValueError(f"search.gpus_per_trial={cfg.search.gpus_per_trial} but the Ray cluster has {gpus:g} GPU(s); "
                         f"allowed: 0 here, or run on a cluster with GPUs")
    if cfg.search.cpus_per_trial > cpus:
        raise ValueError(f"search.cpus_per_trial={cfg.search.cpus_per_trial} but the Ray cluster has {cpus:g} CPU(s); "
                         f"allowed: <= {cpus:g}")


# ---------------------------------------------------------------- run directory
def _prepare_run_dir(cfg: SearchAppConfig, run_dir: Path) -> Path:
    """Pick the directory to write into; on resume, find the interrupted run."""
    fp = config_fingerprint(cfg)
    state = run_dir / "search.json"
    has_search = (run_dir / "tune").exists()
    if has_search and not cfg.resume:
        raise ValueError(f"{run_dir} already holds a search; allowed: resume=true to continue it, or a new hydra.run.dir")
    if cfg.resume and state.exists():
        # this run dir holds the interrupted search (tune/ is missing if it stopped before Ray started)
        if read_json(state).get("fingerprint") != fp:
            raise ValueError(f"resume=true but {run_dir} holds a search with different settings; allowed: the same settings")
    elif cfg.resume and not has_search:
        # a fresh Hydra run dir: continue the newest unfinished sibling run of the same config
        siblings = []
        for d in run_dir.parent.glob("*/search.json"):
            try:
                s = read_json(d)
            except (OSError, ValueError):
                continue
            if s.get("fingerprint") == fp and s.get("status") != "complete":
                siblings.append(d.parent)
        if not siblings:
            raise ValueError(f"resume=true but no unfinished search with this configuration was found in {run_dir.parent}; "
                             "allowed: resume=true with the same settings (and hydra.run.dir) as the interrupted search")
        run_dir = max(siblings, key=lambda d: d.stat().st_mtime)
        log.info("resuming the interrupted search in %s", run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()
    except OSError as e:
        raise ValueError(f"run directory {run_dir} is not writable ({e.strerror}); allowed: a writable hydra.run.dir") from None
    return run_dir


def _budget_str(cfg: SearchAppConfig) -> str:
    p = cfg.proxy
    return f"{p.steps} steps" if p.steps else f"{p.epochs} epochs" + f", bs {p.batch_size}, {p.optimizer} lr {p.lr}"


# ---------------------------------------------------------------- main job
def run_search(cfg: SearchAppConfig, run_dir: Path) -> dict | None:
    """Run (or resume) a search; write results.csv, best.json, family.json/.md, summary.md."""
    validate(cfg)  # bad input fails here, in seconds: before the run dir, the data and Ray
    space = load_space(cfg.search.space)
    if cfg.search.strategy == "optuna":
        space.alpha_bounds()  # a space whose product can never equal the target
    baseline = load_baseline(cfg.model.baseline)
    check_environment(cfg)
    run_dir = _prepare_run_dir(cfg, Path(run_dir).resolve())

    import ray
    from ray import tune

    from .data import load_data

    fp = config_fingerprint(cfg)
    log.info("loading dataset %s", cfg.dataset.name)
    data = load_data(cfg.dataset)
    log.info("dataset %s: %d train / %d val images, %d classes, base resolution %d", data.name, len(data.train_y),
             len(data.val_y), data.num_classes, data.base_resolution)

    s = cfg.search
    if s.strategy == "grid":
        points = space.grid(thin=s.thin, max_points=s.max_points, include_paper=s.include_paper)
        kept, dropped = [], []
        for c in points:
            _, ratio = candidate_cost(c, data.base_resolution, data.num_classes, baseline, s.resolution_multiple,
                                      data.in_channels)
            (dropped if s.filter_measured and cost_flag(ratio, space.target, s.cost_tolerance) == "off" else kept).append(c)
        if dropped:
            log.warning("search.filter_measured: dropped %d of %d candidates whose measured cost ratio is off %s ± %s",
                        len(dropped), len(points), space.target, s.cost_tolerance)
        if not kept:
            raise ValueError("every grid candidate is off the measured cost target; allowed: a larger search.cost_tolerance "
                             "or search.filter_measured=false")
        trials = [{"alpha": c.alpha, "beta": c.beta, "gamma": c.gamma, "seed_index": k, "index": i * s.n_seeds + k}
                  for i, c in enumerate(kept) for k in range(s.n_seeds)]
        param_space = {"trial": tune.grid_search(trials)}
        search_alg, num_samples, total = None, 1, len(trials)
        log.info("grid: %d candidates x %d seed(s) = %d trials (lattice: %d feasible points)", len(kept), s.n_seeds,
                 total, len(space.lattice()))
    else:
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
        # metric and mode here: Tune passes TuneConfig's to a searcher only together with a param_space
        searcher = OptunaSearch(space=space.define_by_run, metric=s.metric, mode="max", sampler=sampler_cls(**kwargs),
                                seed=cfg.seed, storage=storage, study_name=f"scalesearch-{fp}" if storage else None)
        search_alg = Repeater(searcher, repeat=s.n_seeds) if s.n_seeds > 1 else searcher
        param_space, num_samples, total = {}, s.num_samples * s.n_seeds, s.num_samples * s.n_seeds
        log.info("optuna (%s): %d samples x %d seed(s) = %d trials", s.sampler, s.num_samples, s.n_seeds, total)

    # from here on the run dir holds a search (resume=true finds it by this file)
    record = {"fingerprint": fp, "started": time.time(), "config": dataclasses.asdict(cfg)}
    atomic_write_json(run_dir / "search.json", {**record, "status": "running"})
    started = init_ray(cfg)
    try:
        check_resources(cfg)
        data_ref = {f.name: getattr(data, f.name).numpy() if torch.is_tensor(getattr(data, f.name)) else getattr(data, f.name)
                    for f in dataclasses.fields(data)}
        tune_dir = run_dir / "tune"
        restore = tune.Tuner.can_restore(str(tune_dir))
        recorded = read_recorded(run_dir / "results.csv") if restore else {}
        trainable = tune.with_resources(
            tune.with_parameters(proxy_trial, data_ref=data_ref, settings=cfg, target=space.target, recorded=recorded),
            {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial},
        )
        scheduler = None
        if s.scheduler == "asha":
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler(time_attr="epoch", max_t=max(cfg.proxy.epochs, s.grace_period),
                                      grace_period=s.grace_period, reduction_factor=s.reduction_factor)
        writer = make_results_writer(run_dir / "results.csv", total)
        if restore:
            log.info("restoring the Ray Tune experiment in %s (%d finished trials are kept)", tune_dir,
                     len({r["trial_id"] for r in recorded.values()}))
            tuner = tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False,
                                       param_space=param_space or None)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(metric=s.metric, mode="max", search_alg=search_alg, scheduler=scheduler,
                                            num_samples=num_samples, max_concurrent_trials=s.max_concurrent_trials,
                                            reuse_actors=s.reuse_actors),
                run_config=tune.RunConfig(
                    name="tune", storage_path=str(run_dir), callbacks=[writer], verbose=min(cfg.verbose, 1),
                    failure_config=tune.FailureConfig(max_failures=s.max_failures),
                ),
            )
        t0 = time.time()
        grid = tuner.fit()
        wall = time.time() - t0
        rows = sorted((_trial_row(r) for r in _trials_of(grid, tuner)), key=_sort_key)
    finally:
        if started:
            ray.shutdown()

    atomic_write_csv(run_dir / "results.csv", rows, COLUMNS)
    best = select_best(rows)
    context = {"dataset": data.name, "strategy": s.strategy, "budget": _budget_str(cfg), "target": space.target,
               "cost_tolerance": s.cost_tolerance}
    atomic_write_text(run_dir / "summary.md", summary_markdown(rows, best, context))
    if best is None:
        atomic_write_json(run_dir / "search.json", {**record, "status": "complete", "wall_s": round(wall, 2)})
        raise ValueError(f"no trial of the search finished ok (see {run_dir / 'results.csv'}); nothing to select")
    coeffs = Coefficients(best["alpha"], best["beta"], best["gamma"])
    best_json = {
        **{k: best[k] for k in ("alpha", "beta", "gamma", "product", "cost_ratio", "accuracy_mean", "accuracy_std", "n_seeds")},
        "n_trials": len(rows),
        "n_ok": sum(r["status"] == "ok" for r in rows),
        "dataset": data.name, "dataset_fingerprint": data.fingerprint, "num_classes": data.num_classes,
        "base_resolution": data.base_resolution, "budget": dataclasses.asdict(cfg.proxy),
        "strategy": s.strategy, "seed": cfg.seed, "target": space.target, "search_wall_s": round(wall, 2),
        "baseline": cfg.model.baseline,
    }
    atomic_write_json(run_dir / "best.json", best_json)
    members = family(coeffs, base_resolution=data.base_resolution, phis=cfg.family_phis, num_classes=data.num_classes,
                     baseline=baseline)
    write_family(members, run_dir, f"Family for α={coeffs.alpha}, β={coeffs.beta}, γ={coeffs.gamma} on {data.name} "
                 f"(base resolution {data.base_resolution}, {data.num_classes} classes)")
    atomic_write_json(run_dir / "search.json", {**record, "status": "complete", "wall_s": round(wall, 2),
                                                "trial_s": round(sum(r["wall_s"] or 0 for r in rows), 2)})
    log.info("best: alpha=%s beta=%s gamma=%s accuracy %.4f ± %.4f (%d seeds) — artifacts in %s", coeffs.alpha,
             coeffs.beta, coeffs.gamma, best["accuracy_mean"], best["accuracy_std"], best["n_seeds"], run_dir)
    if cfg.report.enabled:
        from .report import write_report

        write_report(run_dir, cfg.report, settings=cfg)
    return best_json


def _trials_of(grid, tuner):
    """The Trial objects behind a ResultGrid (status and error detail live there)."""
    return grid._experiment_analysis.trials
